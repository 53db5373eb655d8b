"""Patch shards: a training period's patches cut once into Parquet on the object store and read back
every epoch, instead of cutting every day of the cube again in every epoch (``paths.shards``).

Layout under the shard store's URL::

    signature.json                  what the shards were cut from (cube, days, patches, qc.block,
                                    land_min, a digest of the normalisation): a store is used only by
                                    a training run with the same signature
    train/YYYY-MM-DD.parquet        the day's training samples; val/YYYY-MM-DD.parquet its validation
                                    samples (no file for a split without samples that day)
    _smray/days/YYYY-MM-DD_t<n>_v<m>.done
                                    the day's completion record, written after its files; its name
                                    holds the day's sample counts, so one listing is the census

The store knows nothing of patches: a *sampler* gives a day's columns per split (for training,
:func:`smray.patches.day_sampler`: the very samples the cube stream of
:func:`smray.patches.patch_dataset` gives, in the same order, every column of
:data:`smray.patches.COLUMNS`, ``x`` as a ``(C, size, size)`` float32 tensor) and a *signature*
says what they were cut from (:func:`smray.patches.shard_signature`). Each day is one Ray task. The
cut is resumable: a day with a record is not cut again, a day cut halfway (files without a record)
is cut again and its files replaced whole. :func:`shard_dataset` reads a split's files with Ray
Data, in a new seeded file order every epoch (:func:`smray.raysupport.read_parquet`)::

    sampler = day_sampler(cube_url, storage, cfg.patches, cfg.qc.block, stats)
    sig = shard_signature(cube_url, days, cfg.patches, cfg.qc.block, stats)
    census = cut_shards(url, storage, days, sig, sampler)
    ds = shard_dataset(storage, census, "train", seed=1)
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import posixpath
import re
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from smray.errors import SmrayError
from smray.serial import differences, read_json, write_json
from smray.storage import StorageConfig, filesystem, join, resolve_storage, write_bytes

SIGNATURE_FILE = "signature.json"
RECORDS_DIR = "_smray/days"
SHARD_SPLITS = ("train", "val")
_RECORD = re.compile(r"^(\d{4}-\d{2}-\d{2})_t(\d+)_v(\d+)\.done$")


@dataclasses.dataclass(frozen=True)
class ShardCensus:
    """What a shard store holds for a period: the samples of every day, by split."""

    url: str
    counts: dict[dt.date, tuple[int, int]]  #: day → (training samples, validation samples)
    cut_now: int = 0  #: days cut by this call (the rest were there already)
    seconds: float = 0.0

    @property
    def n_train(self) -> int:
        return sum(t for t, _ in self.counts.values())

    @property
    def n_val(self) -> int:
        return sum(v for _, v in self.counts.values())

    def files(self, split: str) -> list[str]:
        """``split``'s day files, relative to the store, in calendar order (days without samples have none)."""
        i = SHARD_SPLITS.index(split)
        return [f"{split}/{d.isoformat()}.parquet" for d, c in sorted(self.counts.items()) if c[i]]


def check_signature(url: str, storage: StorageConfig | None, signature: dict[str, Any]) -> bool:
    """True when ``url`` holds shards of ``signature``, False when it holds none yet; a one-line
    SmrayError naming the store and what differs when it was cut for something else."""
    try:
        theirs = read_json(join(url, SIGNATURE_FILE), storage)
    except FileNotFoundError:
        fs, root = filesystem(url, storage)
        if fs.exists(root) and fs.ls(root, detail=False):
            raise SmrayError(f"{url}: paths.shards: not empty and not a patch-shard store (no {SIGNATURE_FILE}); "
                             f"choose another place") from None
        return False
    if not isinstance(theirs, dict):
        raise SmrayError(f"{join(url, SIGNATURE_FILE)}: not a patch-shard signature")
    diff = differences(theirs, signature)
    if diff:
        raise SmrayError(f"{url}: paths.shards: the patches there were cut for another training run (other "
                         f"{', '.join(diff[:4])}); choose another place or remove it")
    return True


def census(url: str, storage: StorageConfig | None) -> dict[dt.date, tuple[int, int]]:
    """Every finished day of the store and its (training, validation) samples: one listing."""
    fs, root = filesystem(url, storage)
    where = posixpath.join(root.rstrip("/"), RECORDS_DIR)
    try:
        fs.invalidate_cache(where)
        names = [posixpath.basename(p.rstrip("/")) for p in fs.ls(where, detail=False)]
    except (FileNotFoundError, NotADirectoryError):
        return {}
    out: dict[dt.date, tuple[int, int]] = {}
    for name in names:
        m = _RECORD.match(name)
        if m:
            out[dt.date.fromisoformat(m.group(1))] = (int(m.group(2)), int(m.group(3)))
    return out


def _parquet_bytes(table: Any) -> bytes:
    import pyarrow.parquet as pq

    buf = io.BytesIO()
    pq.write_table(table, buf, compression="zstd")
    return buf.getvalue()


def cut_day(url: str, storage: StorageConfig | None, date: dt.date,
            sampler: Callable[[dt.date], dict[str, dict[str, np.ndarray]]]) -> tuple[dt.date, int, int]:
    """Cut one day (``sampler(date)``: columns by split) into its split files, then write its
    record; (day, training samples, validation samples)."""
    from smray.raysupport import tensor_table

    by_split = sampler(date)
    fs, root = filesystem(url, storage)
    counts = []
    for split in SHARD_SPLITS:
        cols = by_split[split]
        n = int(len(next(iter(cols.values())))) if cols else 0
        counts.append(n)
        if n:
            write_bytes(fs, posixpath.join(root, split, f"{date.isoformat()}.parquet"),
                        _parquet_bytes(tensor_table(cols)))
    write_bytes(fs, posixpath.join(root, RECORDS_DIR, f"{date.isoformat()}_t{counts[0]}_v{counts[1]}.done"), b"")
    return date, counts[0], counts[1]


def cut_shards(url: str, storage: StorageConfig | None, dates: Sequence[dt.date], signature: dict[str, Any],
               sampler: Callable[[dt.date], dict[str, dict[str, np.ndarray]]], *, num_cpus: float = 1.0,
               progress: Callable[[str], None] = print) -> ShardCensus:
    """Cut ``dates`` into the shard store at ``url`` (one Ray task a day running ``sampler``; days
    already there are kept) and return its census of ``dates``, which is complete or a SmrayError.
    A store of another ``signature`` is refused before anything is cut."""
    from smray.raysupport import map_unordered

    t0 = time.perf_counter()
    storage = resolve_storage(storage)
    dates = sorted(dates)
    if not dates:
        raise SmrayError(f"{url}: paths.shards: no training days to cut")
    if not check_signature(url, storage, signature):
        write_json(join(url, SIGNATURE_FILE), storage, signature)
    have = census(url, storage)
    todo = [d for d in dates if d not in have]
    if todo:
        progress(f"train: cutting the patches of {len(todo)} of {len(dates)} days into {url} "
                 f"({len(dates) - len(todo)} there already)")
    done = 0
    for _ in map_unordered(cut_day, [(url, storage, d, sampler) for d in todo], num_cpus=num_cpus):
        done += 1
        if done % 50 == 0 and done < len(todo):
            progress(f"train: {done}/{len(todo)} days cut into {url}")
    have = census(url, storage)
    missing = [d for d in dates if d not in have]
    if missing:
        raise SmrayError(f"{url}: paths.shards: {len(missing)} day(s) without a record after the cut (first "
                         f"{missing[0]})")
    return ShardCensus(url=url, counts={d: have[d] for d in dates}, cut_now=len(todo),
                       seconds=time.perf_counter() - t0)


def shard_dataset(storage: StorageConfig | None, shard_census: ShardCensus, split: str, *,
                  seed: int | None = None, num_cpus: float = 1.0) -> Any:
    """A lazy ``ray.data.Dataset`` of ``split``'s samples (the columns of
    :func:`smray.patches.patch_dataset`), day files in calendar order, or with ``seed`` in a new
    random order every epoch (the same for the same seed)."""
    from smray.raysupport import read_parquet

    if split not in SHARD_SPLITS:
        raise SmrayError(f"shard_dataset: split must be train or val, got {split!r}")
    files = shard_census.files(split)
    if not files:
        raise SmrayError(f"{shard_census.url}: no {split} samples in the patch shards")
    fs, root = filesystem(shard_census.url, resolve_storage(storage))
    return read_parquet([posixpath.join(root, f) for f in files], fs, seed=seed, num_cpus=num_cpus)
