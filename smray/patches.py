"""9×9×C patches and their targets, cut lazily per day from the cube (the paper's training samples).

A sample is the ``size``×``size`` window of brightness temperatures (``patches.channels``, one pass,
or both passes stacked A then D) centred on a cell, scaled to [0, 1], and the cell's reference soil
moisture swvl1 (scaled to [0, 1]; ``y_raw`` keeps m³/m³). Only *valid centres* are drawn
(:func:`valid_centres`): land, reference present, no blocking QC flag, and the whole window finite
in the selected channels — so NaN never reaches a patch.

Splits (``patches.split``):

* ``random`` (the paper): per day, ``per_day`` valid centres are drawn at random (all if fewer);
  the first ``train_per_day`` are training, the next ``val_per_day`` validation (with fewer centres
  the train:val proportion is kept; centres beyond ``train_per_day + val_per_day`` are unused).
  Neighbouring patches share most of their pixels, so this split leaks.
* ``blocked`` (leakage-aware; the default): cells are grouped into ``block_deg``×``block_deg``
  blocks of the global grid (:func:`block_edge`: by default 5°, or two patch widths on coarser grids); a seeded ``val_block_fraction`` of the blocks holding land (fixed for all days) is
  validation. A centre is kept only when its whole window lies in train blocks (a training
  centre) or in val blocks (a validation centre), so no training and validation patch share a
  pixel; then up to ``train_per_day`` and ``val_per_day`` are drawn. Every ``val_day_every``-th
  day of the cube (day index i with (i + 1) % val_day_every == 0) is held out entirely: up to
  ``train_per_day + val_per_day`` centres, all validation.

Everything is deterministic for (``patches.seed``, date). The pure core (:func:`valid_centres`,
:func:`extract_patches`, :func:`plan_day`) works on numpy arrays; :func:`sample_day` reads one day
from the cube; :func:`patch_dataset` wires it into Ray Data, one day per task, nothing on the
driver::

    ds = patch_dataset(cube_url, storage, train_days, cfg.patches, cfg.qc.block, stats, split="train")
    for batch in ds.iter_torch_batches(batch_size=256):
        x, y = batch["x"], batch["y"]          # (256, 4, 9, 9) float32, (256,) float32, both in [0, 1]
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from smray import cube as cubemod
from smray.config import PatchConfig, to_dict
from smray.errors import SmrayError
from smray.grid import Grid
from smray.normalise import (LAND_MIN, NormStats, block_mask, block_names, map_days, scale_inputs, scale_target,
                             stats_digest, valid_pixels)
from smray.storage import StorageConfig, resolve_storage

SPLITS = ("train", "val", "all")
#: columns of :func:`patch_dataset` (all numeric, so ``iter_torch_batches`` takes them as they are)
COLUMNS = ("x", "y", "y_raw", "is_val", "day", "pass_index", "row", "col")


# --------------------------------------------------------------------------------------------
# Index math (pure)
# --------------------------------------------------------------------------------------------
def window_all(ok: np.ndarray, size: int, periodic: bool) -> np.ndarray:
    """bool ``(..., lat, lon)``: True where the ``size``×``size`` window centred on the cell is all
    True in ``ok`` ``(..., lat, lon)``. Rows beyond the top/bottom count as False; columns beyond the
    edges wrap around when ``periodic`` (a global longitude axis), else count as False."""
    ok = np.asarray(ok, dtype=bool)
    h = size // 2
    nx = ok.shape[-1]
    bad = (~ok).astype(np.int32)
    lead = [(0, 0)] * (bad.ndim - 2)
    if periodic:
        bad = bad[..., np.arange(-h, nx + h) % nx]
    else:
        bad = np.pad(bad, lead + [(0, 0), (h, h)], constant_values=1)
    bad = np.pad(bad, lead + [(h, h), (0, 0)], constant_values=1)
    c = np.cumsum(bad, axis=-1, dtype=np.int32)
    c = np.concatenate([np.zeros_like(c[..., :1]), c], axis=-1)
    s = c[..., size:] - c[..., :-size]
    c = np.cumsum(s, axis=-2, dtype=np.int32)
    c = np.concatenate([np.zeros_like(c[..., :1, :]), c], axis=-2)
    s = c[..., size:, :] - c[..., :-size, :]
    return s == 0


def valid_centres(day: dict[str, np.ndarray], land_fraction: np.ndarray, qc_block: int | Sequence[str],
                  size: int, periodic: bool, *, channels_idx: Sequence[int] | None = None,
                  land_min: float = LAND_MIN) -> np.ndarray:
    """Cells that may be a patch centre: bool ``(pass, lat, lon)`` for every pass of ``day``.

    True where the pixel is valid (:func:`smray.normalise.valid_pixels`: land fraction ≥
    ``land_min``, swvl1 finite, ``qc & block == 0``) and the whole ``size``×``size`` TB window of
    that pass is finite in the channels ``channels_idx`` (None: all) — wrapping at the longitude
    edges when ``periodic``, else excluding centres closer than ``size // 2`` to an edge; rows closer
    than ``size // 2`` to the top/bottom are always excluded.

    Args:
        day: ``tb`` float ``(pass, channel, lat, lon)`` K, ``qc`` uint16 ``(pass, lat, lon)``,
            ``swvl1`` ``(lat, lon)`` m³/m³ (:func:`smray.cube.read_day`).
        land_fraction: 0–1 ``(lat, lon)``.
        qc_block: blocking QC flag names or bit mask.
        size: window edge (odd).
        periodic: the grid spans all longitudes.
    """
    tb = np.asarray(day["tb"])
    if channels_idx is not None:
        tb = tb[:, list(channels_idx)]
    finite = np.isfinite(tb).all(axis=1)  # (pass, lat, lon)
    return valid_pixels(day, land_fraction, qc_block, land_min) & window_all(finite, size, periodic)


def extract_patches(tb_day: np.ndarray, rows: np.ndarray, cols: np.ndarray, pass_idx: np.ndarray | int,
                    channels_idx: Sequence[int], size: int, periodic: bool) -> np.ndarray:
    """The windows centred on (``rows``, ``cols``): ``(n, C, size, size)`` in ``tb_day``'s dtype.

    ``tb_day`` ``(pass, channel, lat, lon)``; ``rows``/``cols`` ``(n,)`` centre cells; ``pass_idx``
    ``(n,)`` or one pass for all; ``channels_idx`` the C channels in output order. Window row k,
    column l of patch i is ``tb_day[pass_i, :, rows_i - size//2 + k, cols_i - size//2 + l]`` (columns
    modulo the width when ``periodic``). One fancy-indexing gather, no loop over patches. Centres
    whose window leaves the grid (rows always; columns unless ``periodic``) raise SmrayError.
    """
    tb = np.asarray(tb_day)
    rows = np.asarray(rows, dtype=np.intp).ravel()
    cols = np.asarray(cols, dtype=np.intp).ravel()
    p = np.broadcast_to(np.asarray(pass_idx, dtype=np.intp), rows.shape)
    ch = np.asarray(channels_idx, dtype=np.intp)
    ny, nx = tb.shape[-2:]
    h = size // 2
    if rows.size:
        col_lo, col_hi = (0, nx) if periodic else (h, nx - h)
        if rows.min() < h or rows.max() >= ny - h or cols.min() < col_lo or cols.max() >= col_hi:
            raise SmrayError(f"extract_patches: a {size}x{size} window leaves the {ny}x{nx} grid "
                             f"(rows {rows.min()}..{rows.max()}, cols {cols.min()}..{cols.max()})")
    off = np.arange(-h, h + 1, dtype=np.intp)
    r = rows[:, None] + off
    c = cols[:, None] + off
    if periodic:
        c %= nx
    return tb[p[:, None, None, None], ch[None, :, None, None], r[:, None, :, None], c[:, None, None, :]]


def block_index(grid: Grid, block_deg: float) -> np.ndarray:
    """int64 ``(lat, lon)``: the ``block_deg``×``block_deg`` block of each cell centre, numbered on
    the global grid (row-major from 90°N, 180°W), so the numbering does not depend on the window."""
    brow = np.floor((90.0 - grid.lat) / block_deg).astype(np.int64)
    bcol = np.floor((grid.lon + 180.0) / block_deg).astype(np.int64)
    ncol = int(np.ceil(360.0 / block_deg - 1e-9))
    return brow[:, None] * ncol + bcol[None, :]


#: the smallest block edge of the blocked split's default (``patches.block_deg: 0``), degrees
AUTO_BLOCK_DEG = 5.0


def block_edge(cfg: PatchConfig, grid: Grid) -> float:
    """The blocked split's block edge on ``grid``, degrees: ``cfg.block_deg``, or by default
    :data:`AUTO_BLOCK_DEG` or two patch widths, whichever is larger (a 9-cell window is 2.25° at
    0.25°, 18° at 2°: a block must hold whole windows for validation patches to exist)."""
    return float(cfg.block_deg) if cfg.block_deg > 0 else max(AUTO_BLOCK_DEG, 2.0 * cfg.size * float(grid.res))


def validation_cells(grid: Grid, land_fraction: np.ndarray, cfg: PatchConfig, land_min: float = LAND_MIN
                     ) -> np.ndarray:
    """bool ``(lat, lon)``: cells in validation blocks of the blocked split. Of the blocks holding a
    land cell of ``grid``, ``round(val_block_fraction × n)`` (at least one and at most n − 1 when the
    fraction is strictly between 0 and 1 and n ≥ 2) are drawn with ``cfg.seed``; the same for every
    day."""
    blocks = block_index(grid, block_edge(cfg, grid))
    lf = np.asarray(land_fraction)
    land_blocks = np.unique(blocks[np.isfinite(lf) & (lf >= land_min)])
    n = land_blocks.size
    k = int(round(cfg.val_block_fraction * n))
    if 0.0 < cfg.val_block_fraction < 1.0 and n >= 2:
        k = min(max(k, 1), n - 1)
    rng = np.random.default_rng([cfg.seed % 2**32, 0xB10C])
    chosen = land_blocks[rng.permutation(n)[:k]]
    return np.isin(blocks, chosen)


def is_validation_day(day_index: int, val_day_every: int) -> bool:
    """Blocked split: the day with index ``day_index`` in the cube is held out entirely."""
    return val_day_every > 0 and (day_index + 1) % val_day_every == 0


def day_rng(seed: int, date: dt.date) -> np.random.Generator:
    """The sampling generator of one day: deterministic for (seed, date)."""
    return np.random.default_rng([seed % 2**32, cubemod.days_since_epoch(date) % 2**32])


@dataclass
class DayPlan:
    """The centres drawn for one day, training first, then validation.

    ``rows``/``cols`` ``(n,)`` cell indices of the cube grid; ``pass_idx`` ``(n,)`` cube pass index, or
    −1 when both passes are stacked; ``is_val`` ``(n,)``; ``n_valid`` candidate centres of the day.
    """

    rows: np.ndarray
    cols: np.ndarray
    pass_idx: np.ndarray
    is_val: np.ndarray
    n_valid: int

    @property
    def n_train(self) -> int:
        return int((~self.is_val).sum())

    @property
    def n_val(self) -> int:
        return int(self.is_val.sum())


def _draw(rng: np.random.Generator, n_candidates: int, k: int) -> np.ndarray:
    return rng.choice(n_candidates, size=min(k, n_candidates), replace=False) if n_candidates else \
        np.zeros(0, dtype=np.int64)


def plan_day(valid: np.ndarray, pass_idx: Sequence[int], cfg: PatchConfig, rng: np.random.Generator, *,
             day_index: int = 0, val_cells: np.ndarray | None = None, periodic: bool = False) -> DayPlan:
    """Draw one day's centres from ``valid`` ``(pass, lat, lon)`` (:func:`valid_centres`).

    ``pass_idx`` are the cube passes sampled (each a separate sample, or, with ``cfg.stack_passes``,
    one sample per cell valid in all of them). ``val_cells`` ``(lat, lon)`` are the validation cells
    of the blocked split (:func:`validation_cells`; required for ``cfg.split == "blocked"``);
    ``day_index`` the day's index in the cube (held-out days).
    """
    sel = np.asarray(valid, dtype=bool)[list(pass_idx)]
    if cfg.stack_passes:
        cand = sel.all(axis=0)[None]  # (1, lat, lon)
        passes = np.array([-1])
    else:
        cand = sel
        passes = np.asarray(pass_idx, dtype=np.int64)
    t, v = cfg.train_per_day, cfg.val_per_day

    def unravel(flat: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        p, r, c = np.unravel_index(flat, cand.shape)
        return passes[p], r, c

    held_out = cfg.split == "blocked" and is_validation_day(day_index, cfg.val_day_every)
    if cfg.split == "random" or held_out:
        flat = np.flatnonzero(cand)
        n_valid = flat.size
        if held_out:  # everything drawn is validation
            pick = flat[_draw(rng, n_valid, t + v)]
            n_train = 0
        else:
            pick = flat[_draw(rng, n_valid, cfg.per_day)]
            k = pick.size
            if k >= t + v:
                n_train = t
            else:
                n_train = int(np.floor(k * t / (t + v) + 0.5)) if t + v else 0
            pick = pick[:min(k, t + v)]
        is_val = np.arange(pick.size) >= n_train
    else:
        if val_cells is None:
            raise SmrayError("plan_day: the blocked split needs the validation cells")
        vc = np.asarray(val_cells, dtype=bool)
        in_val = window_all(vc, cfg.size, periodic)[None]
        in_train = window_all(~vc, cfg.size, periodic)[None]
        flat_t = np.flatnonzero(cand & in_train)
        flat_v = np.flatnonzero(cand & in_val)
        n_valid = flat_t.size + flat_v.size
        pick_t = flat_t[_draw(rng, flat_t.size, t)]
        pick_v = flat_v[_draw(rng, flat_v.size, v)]
        pick = np.concatenate([pick_t, pick_v])
        is_val = np.arange(pick.size) >= pick_t.size
    p, r, c = unravel(pick)
    return DayPlan(rows=r.astype(np.int32), cols=c.astype(np.int32), pass_idx=p.astype(np.int8), is_val=is_val,
                   n_valid=int(n_valid))


# --------------------------------------------------------------------------------------------
# One day from the cube
# --------------------------------------------------------------------------------------------
def plan_cube_day(cube_url: str, storage: StorageConfig | None, date: dt.date, cfg: PatchConfig,
                  qc_block: int | Sequence[str], land_min: float
                  ) -> tuple[cubemod.CubeInfo, dict[str, np.ndarray], DayPlan, list[int], list[int]]:
    """The cube's info, the day's arrays, its patch plan and the channel / pass indices of ``cfg``
    (what :func:`sample_day` cuts and :mod:`smray.predict` calibrates on)."""
    info = cubemod.info(cube_url, storage)
    index = info.index(date)
    missing = [c for c in cfg.channels if c not in info.channels]
    if missing:
        raise SmrayError(f"{cube_url}: patches.channels: the cube has no channel {missing[0]!r}")
    ch_idx = [info.channels.index(c) for c in cfg.channels]
    pass_idx = [i for i, p in enumerate(info.passes) if p in cfg.passes]  # cube order: A then D
    land = cubemod.read_static(cube_url, storage)["land_fraction"]
    day = cubemod.read_day(cube_url, storage, date)
    periodic = info.grid.is_periodic
    valid = valid_centres(day, land, qc_block, cfg.size, periodic, channels_idx=ch_idx, land_min=land_min)
    val_cells = validation_cells(info.grid, land, cfg, land_min) if cfg.split == "blocked" else None
    plan = plan_day(valid, pass_idx, cfg, day_rng(cfg.seed, date), day_index=index, val_cells=val_cells,
                    periodic=periodic)
    return info, day, plan, ch_idx, pass_idx


def sample_day(cube_url: str, storage: StorageConfig | None, date: dt.date, patch_cfg: PatchConfig,
               qc_block: int | Sequence[str], stats: NormStats, *, land_min: float = LAND_MIN
               ) -> dict[str, np.ndarray]:
    """One day's samples, training first then validation (see the module docstring for the splits).

    Returns numpy arrays, n samples:
        ``x`` float32 ``(n, C, size, size)`` in [0, 1] (C = len(channels), or × passes when stacked,
        A then D); ``y`` float32 ``(n,)`` in [0, 1]; ``y_raw`` float32 ``(n,)`` m³/m³; ``is_val`` bool;
        ``date`` datetime64[D]; ``pass`` str ('A', 'D', or 'AD' when stacked); ``row``/``col`` int32
        centre cell in the cube grid.
    """
    info, day, plan, ch_idx, pass_idx = plan_cube_day(cube_url, storage, date, patch_cfg, qc_block, land_min)
    periodic = info.grid.is_periodic
    tb = day["tb"]
    if patch_cfg.stack_passes:
        raw = np.concatenate([extract_patches(tb, plan.rows, plan.cols, p, ch_idx, patch_cfg.size, periodic)
                              for p in pass_idx], axis=1)
        channels = tuple(patch_cfg.channels) * len(pass_idx)
        pass_names = np.full(plan.rows.size, "".join(info.passes[p] for p in pass_idx))
    else:
        raw = extract_patches(tb, plan.rows, plan.cols, plan.pass_idx, ch_idx, patch_cfg.size, periodic)
        channels = tuple(patch_cfg.channels)
        pass_names = np.asarray(info.passes)[plan.pass_idx.astype(np.intp)] if plan.rows.size else \
            np.zeros(0, dtype="<U2")
    y_raw = day["swvl1"][plan.rows, plan.cols].astype(np.float32)
    x = scale_inputs(raw, stats, channels, axis=1)
    y = scale_target(y_raw, stats)
    if not (np.isfinite(x).all() and np.isfinite(y).all() and np.isfinite(y_raw).all()):
        raise SmrayError(f"{cube_url}: day {date}: a non-finite value reached a patch (valid-centre rules broken)")
    n = plan.rows.size
    return {"x": x, "y": y, "y_raw": y_raw, "is_val": plan.is_val,
            "date": np.full(n, np.datetime64(date, "D")), "pass": pass_names.astype("<U2"),
            "row": plan.rows, "col": plan.cols}


def day_counts(cube_url: str, storage: StorageConfig | None, date: dt.date, patch_cfg: PatchConfig,
               qc_block: int | Sequence[str], *, land_min: float = LAND_MIN) -> dict[str, Any]:
    """``{"date", "valid", "train", "val"}`` of one day without cutting patches (same draw as
    :func:`sample_day`): candidate centres and the training/validation samples it yields."""
    _, _, plan, _, _ = plan_cube_day(cube_url, storage, date, patch_cfg, qc_block, land_min)
    return {"date": date, "valid": plan.n_valid, "train": plan.n_train, "val": plan.n_val}


def _day_counts_at(date: dt.date, cube_url: str, storage: StorageConfig | None, patch_cfg: PatchConfig,
                   qc_block: int, land_min: float) -> dict[str, Any]:
    return day_counts(cube_url, storage, date, patch_cfg, qc_block, land_min=land_min)


def count_samples(cube_url: str, storage: StorageConfig | None, dates: Iterable[dt.date], patch_cfg: PatchConfig,
                  qc_block: int | Sequence[str], *, land_min: float = LAND_MIN,
                  use_ray: bool | None = None) -> dict[dt.date, dict[str, Any]]:
    """:func:`day_counts` of every date (Ray tasks when a runtime is initialised), by date — e.g. to
    know the samples of an epoch before streaming it."""
    storage = resolve_storage(storage)
    out = {c["date"]: c for c in map_days(_day_counts_at, list(dates), cube_url, storage, patch_cfg,
                                          block_mask(qc_block), land_min, use_ray=use_ray)}
    return dict(sorted(out.items()))


# --------------------------------------------------------------------------------------------
# The Ray Data stage
# --------------------------------------------------------------------------------------------
def _select(sample: dict[str, np.ndarray], split: str, passes: Sequence[str]) -> dict[str, np.ndarray]:
    keep = slice(None) if split == "all" else (sample["is_val"] if split == "val" else ~sample["is_val"])
    lookup = {p: i for i, p in enumerate(passes)}  # stacked ("AD") → -1
    return {
        "x": sample["x"][keep], "y": sample["y"][keep], "y_raw": sample["y_raw"][keep],
        "is_val": sample["is_val"][keep],
        "day": (sample["date"][keep] - np.datetime64(cubemod.EPOCH, "D")).astype(np.int32),
        "pass_index": np.array([lookup.get(p, -1) for p in sample["pass"][keep]], dtype=np.int8),
        "row": sample["row"][keep], "col": sample["col"][keep],
    }


def select_split(sample: dict[str, np.ndarray], split: str) -> dict[str, np.ndarray]:
    """The columns of :func:`patch_dataset` (:data:`COLUMNS`) for ``split`` ("train", "val" or
    "all") of one :func:`sample_day` result."""
    return _select(sample, split, cubemod.PASSES)


def _split_day(date: dt.date, cube_url: str, storage: StorageConfig | None, patch_cfg: PatchConfig, qc_block: int,
               stats: NormStats, land_min: float) -> dict[str, dict[str, np.ndarray]]:
    sample = sample_day(cube_url, storage, date, patch_cfg, qc_block, stats, land_min=land_min)
    return {split: select_split(sample, split) for split in ("train", "val")}


def day_sampler(cube_url: str, storage: StorageConfig | None, patch_cfg: PatchConfig, qc_block: int | Sequence[str],
                stats: NormStats, *, land_min: float = LAND_MIN) -> Callable[[dt.date], dict[str, dict[str, np.ndarray]]]:
    """``f(date)`` → ``{"train": columns, "val": columns}`` of that day (:func:`select_split` of
    :func:`sample_day`), picklable: the sampler of the patch shards (:func:`smray.shards.cut_shards`)."""
    return functools.partial(_split_day, cube_url=cube_url, storage=resolve_storage(storage), patch_cfg=patch_cfg,
                             qc_block=block_mask(qc_block), stats=stats, land_min=land_min)


def shard_signature(cube_url: str, dates: Iterable[dt.date], patch_cfg: PatchConfig, qc_block: int | Sequence[str],
                    stats: NormStats, *, land_min: float = LAND_MIN) -> dict[str, Any]:
    """What makes two cuts of patch shards the same: the cube, the days, the patch and QC settings,
    ``land_min`` and the scaling (a digest of the statistics)."""
    return {"cube": cube_url, "days": [d.isoformat() for d in sorted(dates)], "patches": to_dict(patch_cfg),
            "qc_block": list(block_names(qc_block)), "land_min": float(land_min), "norm_stats": stats_digest(stats)}


def _sample_batch(batch: dict[str, np.ndarray], *, cube_url: str, storage: StorageConfig | None,
                  patch_cfg: PatchConfig, qc_block: int, stats: NormStats, split: str,
                  land_min: float) -> Iterator[dict[str, np.ndarray]]:
    for days in batch["day"]:
        date = cubemod.date_of(int(days))
        out = _select(sample_day(cube_url, storage, date, patch_cfg, qc_block, stats, land_min=land_min), split,
                      cubemod.PASSES)
        if out["y"].size:
            yield out


def patch_dataset(cube_url: str, storage: StorageConfig | None, dates: Iterable[dt.date], patch_cfg: PatchConfig,
                  qc_block: int | Sequence[str], stats: NormStats, split: str = "train", *,
                  land_min: float = LAND_MIN, num_cpus: float = 1.0, max_concurrency: int | None = None,
                  day_seed: int | None = None) -> Any:
    """A lazy ``ray.data.Dataset`` of the samples of ``dates`` (one task per day calling
    :func:`sample_day`), keeping ``split`` ("train", "val" or "all").

    Columns (:data:`COLUMNS`): ``x`` float32 ``(C, size, size)`` and ``y`` float32 in [0, 1]; ``y_raw``
    m³/m³; ``is_val`` bool; ``day`` int32 days since 1970-01-01; ``pass_index`` int8 (index in the
    cube's passes A, D; −1 when stacked); ``row``/``col`` int32. Rows come day by day, training rows
    in random order within a day; shuffle across days downstream (e.g. ``local_shuffle_buffer_size``).
    Days come in calendar order, or with ``day_seed`` in a random order that is new on every
    consumption (epoch) and the same for the same seed (:func:`smray.raysupport.shuffle_blocks_every_run`).
    Nothing is read until the dataset is consumed; the driver holds only the dates. ``num_cpus`` are
    reserved per day task, at most ``max_concurrency`` day tasks run at once (None: as CPUs allow).
    """
    from smray.raysupport import dataset_from_items, map_batches, shuffle_blocks_every_run

    if split not in SPLITS:
        raise SmrayError(f"patch_dataset: split must be one of {', '.join(SPLITS)}, got {split!r}")
    dates = list(dates)
    if not dates:
        raise SmrayError(f"{cube_url}: patch_dataset: no dates given")
    info = cubemod.info(cube_url, storage)
    for d in dates:
        info.index(d)  # one-line error for a day outside the cube
    ds = dataset_from_items([{"day": cubemod.days_since_epoch(d)} for d in dates])
    if day_seed is not None:
        ds = shuffle_blocks_every_run(ds, day_seed)
    return map_batches(ds, _sample_batch, batch_size=1, num_cpus=num_cpus, max_concurrency=max_concurrency,
                       fn_kwargs={"cube_url": cube_url, "storage": resolve_storage(storage), "patch_cfg": patch_cfg,
                                  "qc_block": block_mask(qc_block), "stats": stats, "split": split,
                                  "land_min": land_min})
