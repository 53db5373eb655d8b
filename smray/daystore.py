"""The day-keyed Zarr v3 store that the cube (:mod:`smray.cube`) and the map store
(:mod:`smray.mapstore`) both are: a time axis of whole days (``time``, days since 1970-01-01), one
chunk per day of each time-dependent variable, and a completion record per finished day.

What they share lives here, once:

- opening: :func:`zarr_store`, :func:`open_group`, :func:`open_dataset` (any smray store as a lazy
  Dataset, one-line errors), :func:`quiet` (zarr's warnings about fixed-length string coordinates
  and consolidated metadata), :func:`consolidate`;
- the time axis: :data:`EPOCH`, :func:`days_since_epoch`, :func:`date_of`, :func:`store_dates`,
  :class:`DayAxis` (dates and index of a template), :func:`grow_time_axis` (append days);
- the records: ``_smray/days/YYYY-MM-DD.json`` (:func:`record_path`, :func:`write_record`,
  :func:`day_records`), written after the day's chunks, so a record proves a finished day;
- the census: :func:`survey` compares the records with the chunk keys actually stored
  (:func:`time_chunks_present`), so a day whose record exists but a chunk does not is found;
- the signature: :func:`recorded_signature` (the settings a store was written with, a JSON
  attribute) and :func:`signature_differences` (what a new run would change).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import zarr

from smray.errors import SmrayError, first_line
from smray.grid import Grid
from smray.storage import StorageConfig, filesystem, join, local_path, storage_options, write_bytes

EPOCH = dt.date(1970, 1, 1)
#: the completion records, under the store root
RECORDS = "_smray/days"
#: zarr's warning about fixed-length string coordinates (a FutureWarning, not a UserWarning)
UNSTABLE_DTYPE_WARNING = getattr(zarr.errors, "UnstableSpecificationWarning", UserWarning)


def days_since_epoch(date: dt.date) -> int:
    return (date - EPOCH).days


def date_of(days: int) -> dt.date:
    return EPOCH + dt.timedelta(days=int(days))


# --------------------------------------------------------------------------------------------
# Opening
# --------------------------------------------------------------------------------------------
def zarr_store(url: str, storage: StorageConfig | None, read_only: bool = False) -> Any:
    """The zarr store object for ``url``: a ``LocalStore`` for local paths, else an ``FsspecStore``."""
    path = local_path(url)
    if path is not None:
        return zarr.storage.LocalStore(path, read_only=read_only)
    return zarr.storage.FsspecStore.from_url(url, storage_options=storage_options(url, storage),
                                             read_only=read_only)


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """zarr's warnings about the fixed-length string coordinates and consolidated metadata."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=UserWarning)
        warnings.simplefilter("ignore", category=UNSTABLE_DTYPE_WARNING)
        yield


def open_group(url: str, storage: StorageConfig | None = None, mode: str = "r") -> zarr.Group:
    """The store's root group (``mode`` as :func:`zarr.open_group`; "w" writes a new one)."""
    try:
        with quiet():
            return zarr.open_group(zarr_store(url, storage, read_only=(mode == "r")), mode=mode, zarr_format=3)
    except (FileNotFoundError, zarr.errors.GroupNotFoundError):
        raise SmrayError(f"{url}: no smray cube here") from None


def exists(url: str, storage: StorageConfig | None = None) -> bool:
    fs, path = filesystem(url, storage)
    return fs.exists(join(path, "zarr.json"))


def consolidate(url: str, storage: StorageConfig | None) -> None:
    """Consolidate the store's metadata (after the template changed, or once all days are written)."""
    zarr.consolidate_metadata(zarr_store(url, storage))


def open_dataset(url: str, storage: StorageConfig | None = None) -> Any:
    """A smray store (cube or map store) as a lazy ``xarray.Dataset``, metadata consolidated or not
    (times decoded to datetime64). One-line SmrayError when nothing Zarr is at ``url``."""
    import xarray as xr

    try:
        with quiet():
            warnings.simplefilter("ignore", category=RuntimeWarning)  # consolidated=None falls back quietly
            return xr.open_zarr(zarr_store(url, storage, read_only=True), consolidated=None, zarr_format=3)
    except (FileNotFoundError, KeyError, zarr.errors.GroupNotFoundError, zarr.errors.NodeTypeValidationError):
        raise SmrayError(f"{url}: no Zarr store here (expected a smray cube or map store)") from None
    except ValueError as err:
        raise SmrayError(f"{url}: cannot open as a Zarr v3 store ({first_line(err, 120)})") from None


# --------------------------------------------------------------------------------------------
# The time axis
# --------------------------------------------------------------------------------------------
def store_dates(ds: Any) -> list[dt.date]:
    """The time axis of a Dataset as dates (decoded datetimes, or integer days since 1970-01-01)."""
    if "time" not in ds.coords and "time" not in ds:
        return []
    values = np.asarray(ds["time"].values)
    if np.issubdtype(values.dtype, np.datetime64):
        return [dt.date.fromisoformat(str(v)[:10]) for v in values.astype("datetime64[D]")]
    return [date_of(int(v)) for v in values]


@dataclass
class DayAxis:
    """What a store's template says: its grid and its days ``start``..``end``."""

    #: the store's name in messages
    WHAT: ClassVar[str] = "store"

    url: str
    grid: Grid
    start: dt.date
    end: dt.date

    @property
    def dates(self) -> list[dt.date]:
        return [self.start + dt.timedelta(days=i) for i in range((self.end - self.start).days + 1)]

    def index(self, date: dt.date) -> int:
        i = (date - self.start).days
        if not 0 <= i <= (self.end - self.start).days:
            raise SmrayError(f"{self.url}: {date} is outside the {self.WHAT}'s time axis {self.start}..{self.end}")
        return i


def grow_time_axis(url: str, storage: StorageConfig | None, old: DayAxis, end: dt.date,
                   names: Sequence[str], *, bounds: str | None = None) -> None:
    """Extend the time axis of the store at ``url`` from ``old.end`` to ``end``: the arrays ``names``
    grow along time (no data written), ``time`` (and the ``bounds`` array ``(time, 2)``, when given)
    gets the new days, and the metadata is consolidated again."""
    with quiet():
        g = open_group(url, storage, mode="r+")
        n_old, n_new = len(old.dates), (end - old.start).days + 1
        for name in names:
            shape = list(g[name].shape)
            shape[0] = n_new
            g[name].resize(tuple(shape))
        # one handle per axis array: a finalized store's consolidated metadata still has the old shape, so
        # a fresh g["time"] would be the old, shorter array and the new values would go nowhere
        days = np.arange(days_since_epoch(old.end) + 1, days_since_epoch(end) + 1, dtype=np.int64)
        time_arr = g["time"]
        time_arr.resize((n_new,))
        time_arr[n_old:] = days
        if bounds is not None:
            bnds = g[bounds]
            bnds.resize((n_new, 2))
            bnds[n_old:] = np.stack([days, days + 1], axis=1)
        consolidate(url, storage)  # for readers and the day tasks' open_group


# --------------------------------------------------------------------------------------------
# Completion records and the census
# --------------------------------------------------------------------------------------------
def record_path(date: dt.date) -> str:
    return f"{RECORDS}/{date.isoformat()}.json"


def write_record(url: str, storage: StorageConfig | None, date: dt.date, record: dict[str, Any]) -> None:
    """The day's completion record (one whole-object write), stamped with the date and the time written."""
    fs, path = filesystem(url, storage)
    body = {"date": date.isoformat(), "written": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            **record}
    write_bytes(fs, join(path, record_path(date)), json.dumps(body, default=str).encode())


def day_records(url: str, storage: StorageConfig | None = None) -> dict[dt.date, dict[str, Any]]:
    """Completion records by date."""
    fs, path = filesystem(url, storage)
    root = join(path, RECORDS)
    try:
        names = fs.ls(root, detail=False, refresh=True) if fs.exists(root) else []
    except FileNotFoundError:
        names = []
    wanted = [name for name in names if name.endswith(".json")]
    # one batched read: s3fs fetches the objects concurrently (a decade is ~3,400 records, which
    # sequential GETs would make a minute of round trips on the driver)
    blobs = fs.cat(wanted) if wanted else {}
    if not isinstance(blobs, dict):  # fsspec returns bare bytes for a single path it did not expand
        blobs = {wanted[0]: blobs}
    out = {}
    for data in blobs.values():  # a record names its own day
        rec = json.loads(data)
        out[dt.date.fromisoformat(rec["date"])] = rec
    return out


def time_chunks_present(url: str, storage: StorageConfig | None, names: Sequence[str]) -> dict[str, set[str]]:
    """For each variable in ``names``, the time indices (as strings) whose first chunk key exists:
    what a census compares with the completion records (one listing per variable, never cached)."""
    fs, path = filesystem(url, storage)
    present: dict[str, set[str]] = {}
    for name in names:
        base = join(path, name, "c")
        try:
            present[name] = {p.rstrip("/").rsplit("/", 1)[-1] for p in fs.ls(base, detail=False, refresh=True)}
        except FileNotFoundError:
            present[name] = set()
    return present


@dataclass
class Survey:
    """Every day of a time axis: its record (recorded days), the days without one, and the chunks
    (``name/c/<index>``) of recorded days that should be stored and are not."""

    records: dict[dt.date, dict[str, Any]]
    pending: list[dt.date]
    missing_chunks: list[str]

    def with_status(self, *statuses: str) -> list[dt.date]:
        """The recorded days whose record's status is one of ``statuses``, in date order."""
        return [d for d, rec in self.records.items() if rec.get("status") in statuses]


def survey(url: str, storage: StorageConfig | None, dates: Sequence[dt.date], names: Sequence[str], *,
           stored: Callable[[dict[str, Any]], bool] = lambda rec: True) -> Survey:
    """The census of ``dates`` (the store's time axis, index = position): recorded or pending, and for
    each recorded day whose record says its chunks are ``stored``, the chunks of ``names`` absent."""
    recs = day_records(url, storage)
    present = time_chunks_present(url, storage, names)
    records: dict[dt.date, dict[str, Any]] = {}
    pending, missing = [], []
    for i, d in enumerate(dates):
        rec = recs.get(d)
        if rec is None:
            pending.append(d)
            continue
        records[d] = rec
        if stored(rec):
            missing += [f"{name}/c/{i}" for name in names if str(i) not in present[name]]
    return Survey(records=records, pending=pending, missing_chunks=missing)


def recorded_signature(attrs: dict[str, Any], key: str) -> dict[str, Any]:
    """The signature (settings that every day must share) a store recorded in its JSON attribute
    ``key``; {} when it has none, SmrayError naming the attribute when it is not a JSON object."""
    try:
        theirs = json.loads(attrs.get(key) or "{}")
    except (TypeError, ValueError):
        theirs = None
    if not isinstance(theirs, dict):
        raise SmrayError(f"attribute {key} is not a JSON object")
    return theirs


def signature_differences(theirs: dict[str, Any], ours: dict[str, Any]) -> list[str]:
    """The keys, sorted, whose values differ between two signatures (a key only one has differs)."""
    return [k for k in sorted(set(theirs) | set(ours)) if theirs.get(k) != ours.get(k)]
