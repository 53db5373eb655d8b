"""The analysis-ready cube: a Zarr v3 store on any storage, written template-first.

Layout (CF-1.8 attributes on every variable)::

    tb(time, pass, channel, lat, lon)  float32 K, NaN = no observation      chunk (1, 2, 4, lat, lon)
    swvl1(time, lat, lon)              float32 m³/m³, NaN = missing         chunk (1, lat, lon)
    qc(time, pass, lat, lon)           uint16 bitmask (smray.qc)            chunk (1, 2, lat, lon)
    land_fraction(lat, lon)            float32
    time (days since 1970-01-01), pass ('A', 'D'), channel ('06H', '06V', '10H', '10V'), lat, lon

One day is one chunk of each time-dependent variable, so day tasks write disjoint chunks and never
race. The driver writes the template (:func:`create_or_extend`), each task writes its day
(:func:`write_day` / :func:`skip_day`) and then the day's completion record
``_smray/days/YYYY-MM-DD.json``; a re-run skips days with a record; :func:`census` proves every
finished day's chunks exist; :func:`finalize` puts the ingest log into the attributes and
consolidates the metadata. Appending later days resizes the time axis and writes only new chunks.
"""

from __future__ import annotations

import datetime as dt
import json
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import xarray as xr
import zarr

from smray import __version__, qc as qcmod
from smray.config import StorageConfig
from smray.errors import SmrayError
from smray.grid import Grid
from smray.storage import filesystem, join, local_path, storage_options, write_bytes

CHANNELS = ("06H", "06V", "10H", "10V")
PASSES = ("A", "D")
EPOCH = dt.date(1970, 1, 1)
RECORDS = "_smray/days"
CUBE_FORMAT = "smray-cube-1"
TIME_VARS = ("tb", "qc", "swvl1")
#: zarr's warning about fixed-length string coordinates (a FutureWarning, not a UserWarning)
_UNSTABLE_DTYPE = getattr(zarr.errors, "UnstableSpecificationWarning", UserWarning)


def _store(url: str, storage: StorageConfig | None, read_only: bool = False) -> Any:
    path = local_path(url)
    if path is not None:
        return zarr.storage.LocalStore(path, read_only=read_only)
    return zarr.storage.FsspecStore.from_url(url, storage_options=storage_options(url, storage),
                                             read_only=read_only)


def open_group(url: str, storage: StorageConfig | None = None, mode: str = "r") -> zarr.Group:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", category=UserWarning)
            warnings.simplefilter("ignore", category=_UNSTABLE_DTYPE)
            return zarr.open_group(_store(url, storage, read_only=(mode == "r")), mode=mode, zarr_format=3)
    except (FileNotFoundError, zarr.errors.GroupNotFoundError):
        raise SmrayError(f"{url}: no smray cube here") from None


def exists(url: str, storage: StorageConfig | None = None) -> bool:
    fs, path = filesystem(url, storage)
    return fs.exists(join(path, "zarr.json"))


def days_since_epoch(date: dt.date) -> int:
    return (date - EPOCH).days


def date_of(days: int) -> dt.date:
    return EPOCH + dt.timedelta(days=int(days))


@dataclass
class CubeInfo:
    """What the template says: grid, time axis and variables."""

    url: str
    grid: Grid
    start: dt.date
    end: dt.date
    channels: tuple[str, ...] = CHANNELS
    passes: tuple[str, ...] = PASSES
    attrs: dict[str, Any] = field(default_factory=dict)

    @property
    def dates(self) -> list[dt.date]:
        return [self.start + dt.timedelta(days=i) for i in range((self.end - self.start).days + 1)]

    def index(self, date: dt.date) -> int:
        i = (date - self.start).days
        if not 0 <= i < len(self.dates):
            raise SmrayError(f"{self.url}: {date} is outside the cube's time axis {self.start}..{self.end}")
        return i


def info(url: str, storage: StorageConfig | None = None) -> CubeInfo:
    g = open_group(url, storage)
    attrs = dict(g.attrs)
    if attrs.get("smray_format") != CUBE_FORMAT:
        raise SmrayError(f"{url}: not an smray cube (attribute smray_format is {attrs.get('smray_format')!r})")
    grid = Grid(**json.loads(attrs["smray_grid"]))
    times = g["time"][:]
    return CubeInfo(url=url, grid=grid, start=date_of(times[0]), end=date_of(times[-1]),
                    channels=tuple(attrs.get("smray_channels", CHANNELS)), passes=tuple(attrs.get("smray_passes",
                                                                                              PASSES)),
                    attrs=attrs)


def period_dates(url: str, storage: StorageConfig | None, start: dt.date, end: dt.date, *,
                 fields: tuple[str, str] = ("start", "end")) -> tuple[CubeInfo, list[dt.date]]:
    """The cube's info and the days ``start``..``end``; one-line SmrayError, naming the ``fields``
    the dates came from, when the period is empty or not inside the cube's time axis."""
    if end < start:
        raise SmrayError(f"{fields[1]}: {end} is before {fields[0]} {start} (the period is empty)")
    cube = info(url, storage)
    if start < cube.start or end > cube.end:
        raise SmrayError(f"{fields[0]}/{fields[1]}: {start}..{end} is not inside the time axis {cube.start}.."
                         f"{cube.end} of the cube {url}")
    return cube, [start + dt.timedelta(days=i) for i in range((end - start).days + 1)]


# --------------------------------------------------------------------------------------------
# Template
# --------------------------------------------------------------------------------------------
def _coord_arrays(g: zarr.Group, grid: Grid, land_fraction: np.ndarray) -> None:
    def arr(name: str, values: np.ndarray, dims: tuple[str, ...], attrs: dict[str, Any], fill: Any) -> None:
        a = g.create_array(name, shape=values.shape, chunks=values.shape, dtype=values.dtype, fill_value=fill,
                           dimension_names=dims, attributes=attrs)
        a[...] = values

    arr("lat", grid.lat.astype(np.float64), ("lat",), {"standard_name": "latitude", "units": "degrees_north",
                                                          "axis": "Y"}, np.nan)
    arr("lon", grid.lon.astype(np.float64), ("lon",), {"standard_name": "longitude", "units": "degrees_east",
                                                          "axis": "X"}, np.nan)
    arr("pass", np.array(PASSES, dtype="<U1"), ("pass",),
        {"long_name": "satellite pass", "flag_meanings": "A=ascending_13:30 D=descending_01:30"}, "")
    arr("channel", np.array(CHANNELS, dtype="<U3"), ("channel",),
        {"long_name": "radiometer channel (frequency GHz band code, polarisation)"}, "")
    arr("land_fraction", land_fraction.astype(np.float32), ("lat", "lon"),
        {"long_name": "land area fraction (lakes excluded)", "standard_name": "land_area_fraction", "units": "1"},
        np.nan)


def _time_arrays(g: zarr.Group, grid: Grid, ntime: int) -> None:
    ny, nx = grid.shape
    np_, nc = len(PASSES), len(CHANNELS)
    g.create_array("time", shape=(ntime,), chunks=(max(ntime, 4096),), dtype="int64", fill_value=0,
                   dimension_names=("time",),
                   attributes={"standard_name": "time", "units": "days since 1970-01-01",
                               "calendar": "proleptic_gregorian", "axis": "T"})
    g.create_array("tb", shape=(ntime, np_, nc, ny, nx), chunks=(1, np_, nc, ny, nx), dtype="float32",
                   fill_value=np.nan, dimension_names=("time", "pass", "channel", "lat", "lon"),
                   attributes={"long_name": "brightness temperature", "standard_name": "brightness_temperature",
                               "units": "K", "coordinates": "time pass channel lat lon"})
    g.create_array("swvl1", shape=(ntime, ny, nx), chunks=(1, ny, nx), dtype="float32", fill_value=np.nan,
                   dimension_names=("time", "lat", "lon"),
                   attributes={"long_name": "volumetric soil water layer 1 (0-7 cm), daily mean of the analyses",
                               "standard_name": "volume_fraction_of_condensed_water_in_soil",
                               "units": "m3 m-3"})
    g.create_array("qc", shape=(ntime, np_, ny, nx), chunks=(1, np_, ny, nx), dtype=qcmod.QC_DTYPE,
                   fill_value=qcmod.FLAGS["day_missing"], dimension_names=("time", "pass", "lat", "lon"),
                   attributes=qcmod.cf_attrs())


def create_or_extend(url: str, storage: StorageConfig | None, grid: Grid, start: dt.date, end: dt.date,
                     land_fraction: np.ndarray, attrs: dict[str, Any] | None = None) -> CubeInfo:
    """Write the template, or extend an existing cube's time axis to ``end``.

    An existing cube must have the same grid; days before its first day cannot be added (the time
    axis only grows at the end). Returns the cube's :class:`CubeInfo` after the change.
    """
    if end < start:
        raise SmrayError(f"ingest.end: {end} is before ingest.start {start}")
    if exists(url, storage):
        old = info(url, storage)
        if old.grid != grid:
            raise SmrayError(f"{url}: cube grid {old.grid.to_dict()} differs from the requested {grid.to_dict()}")
        if start < old.start:
            raise SmrayError(f"{url}: cube starts {old.start}; cannot add earlier days ({start}); "
                             f"write a new cube")
        if end > old.end:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", category=UserWarning)
                warnings.simplefilter("ignore", category=_UNSTABLE_DTYPE)  # re-saving consolidated string coords
                g = open_group(url, storage, mode="r+")
                n_old = len(old.dates)
                n_new = (end - old.start).days + 1
                for name in TIME_VARS:
                    shape = list(g[name].shape)
                    shape[0] = n_new
                    g[name].resize(tuple(shape))
                # one handle: a finalized cube's consolidated metadata still has the old shape, so a
                # fresh g["time"] would be the old, shorter array and the new values would go nowhere
                time_arr = g["time"]
                time_arr.resize((n_new,))
                time_arr[n_old:] = np.arange(days_since_epoch(old.end) + 1, days_since_epoch(end) + 1)
                # bring the consolidated metadata up to date for readers and the day tasks' open_group
                zarr.consolidate_metadata(_store(url, storage))
        return info(url, storage)
    g = open_group(url, storage, mode="w")
    ntime = (end - start).days + 1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=UserWarning)  # zarr: fixed-length string dtype is "unstable"
        warnings.simplefilter("ignore", category=_UNSTABLE_DTYPE)
        _coord_arrays(g, grid, land_fraction)
    _time_arrays(g, grid, ntime)
    g["time"][:] = np.arange(days_since_epoch(start), days_since_epoch(end) + 1)
    g.attrs.update({
        "Conventions": "CF-1.8",
        "title": "smray analysis-ready cube: AMSR brightness temperatures and reference soil moisture",
        "smray_format": CUBE_FORMAT, "smray_version": __version__, "smray_grid": json.dumps(grid.to_dict()),
        "smray_channels": list(CHANNELS), "smray_passes": list(PASSES),
        "geospatial_lat_min": float(grid.bounds[1]), "geospatial_lat_max": float(grid.bounds[3]),
        "geospatial_lon_min": float(grid.bounds[0]), "geospatial_lon_max": float(grid.bounds[2]),
        "ingest_log": "[]", **(attrs or {}),
    })
    return info(url, storage)


# --------------------------------------------------------------------------------------------
# Day writes and completion records
# --------------------------------------------------------------------------------------------
def record_path(date: dt.date) -> str:
    return f"{RECORDS}/{date.isoformat()}.json"


def write_day(url: str, storage: StorageConfig | None, date: dt.date, tb: np.ndarray, qc: np.ndarray,
              swvl1: np.ndarray, record: dict[str, Any] | None = None) -> None:
    """Write one finished day (its own chunks only), then its completion record.

    ``tb`` float32 (2, 4, nlat, nlon) K; ``qc`` uint16 (2, nlat, nlon); ``swvl1`` float32 (nlat, nlon).
    """
    cube = info(url, storage)
    i = cube.index(date)
    ny, nx = cube.grid.shape
    if tb.shape != (2, 4, ny, nx) or qc.shape != (2, ny, nx) or swvl1.shape != (ny, nx):
        raise SmrayError(f"{url}: day {date} arrays {tb.shape}/{qc.shape}/{swvl1.shape} do not fit the cube grid "
                         f"{ny}x{nx}")
    g = open_group(url, storage, mode="r+")
    g["tb"][i] = tb.astype(np.float32)
    g["qc"][i] = qc.astype(qcmod.QC_DTYPE)
    g["swvl1"][i] = swvl1.astype(np.float32)
    _write_record(url, storage, date, {"status": "ok", **(record or {})})


def skip_day(url: str, storage: StorageConfig | None, date: dt.date, reason: str,
             files: list[str] | None = None) -> None:
    """Record a day that could not be ingested: its TB/reference chunks are removed (no half-written
    day), its QC chunk says ``day_missing``, and the record holds the file and reason."""
    cube = info(url, storage)
    i = cube.index(date)
    fs, path = filesystem(url, storage)
    for name in ("tb", "swvl1"):
        key = join(path, name, "c", str(i), *(["0"] * (4 if name == "tb" else 2)))
        if fs.exists(key):
            fs.rm(key)
    g = open_group(url, storage, mode="r+")
    ny, nx = cube.grid.shape
    g["qc"][i] = np.full((2, ny, nx), qcmod.FLAGS["day_missing"], dtype=qcmod.QC_DTYPE)
    _write_record(url, storage, date, {"status": "skipped", "reason": reason, "files": files or []})


def _write_record(url: str, storage: StorageConfig | None, date: dt.date, record: dict[str, Any]) -> None:
    fs, path = filesystem(url, storage)
    body = {"date": date.isoformat(), "written": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            **record}
    write_bytes(fs, join(path, record_path(date)), json.dumps(body, default=str).encode())


def day_records(url: str, storage: StorageConfig | None = None) -> dict[dt.date, dict[str, Any]]:
    """Completion records by date ('ok' and 'skipped' days)."""
    fs, path = filesystem(url, storage)
    root = join(path, RECORDS)
    try:
        names = fs.ls(root, detail=False, refresh=True) if fs.exists(root) else []
    except FileNotFoundError:
        names = []
    out = {}
    for name in names:
        if not name.endswith(".json"):
            continue
        rec = json.loads(fs.cat_file(name))
        out[dt.date.fromisoformat(rec["date"])] = rec
    return out


@dataclass
class Census:
    """Which days are finished, skipped or missing, and which chunks of finished days are absent."""

    ok: list[dt.date]
    skipped: list[dt.date]
    pending: list[dt.date]
    missing_chunks: list[str]

    @property
    def complete(self) -> bool:
        return not self.pending and not self.missing_chunks


def time_chunks_present(url: str, storage: StorageConfig | None, names: tuple[str, ...]) -> dict[str, set[str]]:
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


def census(url: str, storage: StorageConfig | None = None) -> Census:
    """Check every day of the time axis: recorded (ok/skipped) or pending, and for ok days that the
    TB, QC and reference chunks exist in the store."""
    cube = info(url, storage)
    recs = day_records(url, storage)
    present = time_chunks_present(url, storage, TIME_VARS)
    ok, skipped, pending, missing = [], [], [], []
    for i, d in enumerate(cube.dates):
        rec = recs.get(d)
        if rec is None:
            pending.append(d)
        elif rec["status"] == "ok":
            ok.append(d)
            missing += [f"{name}/c/{i}" for name in TIME_VARS if str(i) not in present[name]]
        else:
            skipped.append(d)
    return Census(ok=ok, skipped=skipped, pending=pending, missing_chunks=missing)


def finalize(url: str, storage: StorageConfig | None = None, extra_attrs: dict[str, Any] | None = None) -> Census:
    """After all day tasks: ingest log into the attributes, metadata consolidated. Returns the census."""
    result = census(url, storage)
    recs = day_records(url, storage)
    log = [{"date": d.isoformat(), "reason": recs[d].get("reason", ""), "files": recs[d].get("files", [])}
           for d in result.skipped]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=UserWarning)
        warnings.simplefilter("ignore", category=_UNSTABLE_DTYPE)  # re-saving consolidated string coords
        g = open_group(url, storage, mode="r+")
        g.attrs.update({"ingest_log": json.dumps(log), "days_ok": len(result.ok),
                        "days_skipped": len(result.skipped), "days_pending": len(result.pending),
                        **(extra_attrs or {})})
        zarr.consolidate_metadata(_store(url, storage))
    return result


# --------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------
def read_day(url: str, storage: StorageConfig | None, date: dt.date,
             group: zarr.Group | None = None) -> dict[str, np.ndarray]:
    """One day as numpy: ``tb`` (2, 4, nlat, nlon) K, ``qc`` (2, nlat, nlon), ``swvl1`` (nlat, nlon)."""
    cube = info(url, storage)
    i = cube.index(date)
    g = group or open_group(url, storage)
    return {"tb": g["tb"][i], "qc": g["qc"][i], "swvl1": g["swvl1"][i]}


def read_static(url: str, storage: StorageConfig | None = None) -> dict[str, np.ndarray]:
    g = open_group(url, storage)
    return {"land_fraction": g["land_fraction"][...], "lat": g["lat"][...], "lon": g["lon"][...]}


def open_cube(url: str, storage: StorageConfig | None = None) -> xr.Dataset:
    """The cube as an xarray Dataset (lazy; zarr v3, metadata consolidated by :func:`finalize` or not)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=UserWarning)
        warnings.simplefilter("ignore", category=_UNSTABLE_DTYPE)
        return xr.open_zarr(_store(url, storage, read_only=True), consolidated=None, zarr_format=3)
