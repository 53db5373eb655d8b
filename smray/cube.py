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
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import xarray as xr
import zarr

from smray import __version__, qc as qcmod
# the shared day-store helpers; EPOCH, RECORDS and record_path are known as the cube's names too
from smray.daystore import (EPOCH, RECORDS, DayAxis, consolidate, date_of, day_records,  # noqa: F401
                            days_since_epoch, exists, grow_time_axis, open_dataset, open_group, quiet, record_path,
                            survey, write_record)
from smray.errors import SmrayError
from smray.grid import Grid
from smray.storage import StorageConfig, filesystem, join

CHANNELS = ("06H", "06V", "10H", "10V")
PASSES = ("A", "D")
CUBE_FORMAT = "smray-cube-1"
TIME_VARS = ("tb", "qc", "swvl1")
@dataclass
class CubeInfo(DayAxis):
    """What the template says: grid, time axis and variables."""

    WHAT: ClassVar[str] = "cube"

    channels: tuple[str, ...] = CHANNELS
    passes: tuple[str, ...] = PASSES
    attrs: dict[str, Any] = field(default_factory=dict)


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
        raise SmrayError(f"paths.ingest.end: {end} is before paths.ingest.start {start}")
    if exists(url, storage):
        old = info(url, storage)
        if old.grid != grid:
            raise SmrayError(f"{url}: cube grid {old.grid.to_dict()} differs from the requested {grid.to_dict()}")
        if start < old.start:
            raise SmrayError(f"{url}: cube starts {old.start}; cannot add earlier days ({start}); "
                             f"write a new cube")
        if end > old.end:
            grow_time_axis(url, storage, old, end, TIME_VARS)
        return info(url, storage)
    g = open_group(url, storage, mode="w")
    ntime = (end - start).days + 1
    with quiet():  # zarr: fixed-length string dtype is "unstable"
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
    write_record(url, storage, date, {"status": "ok", **(record or {})})


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
    write_record(url, storage, date, {"status": "skipped", "reason": reason, "files": files or []})


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


def census(url: str, storage: StorageConfig | None = None) -> Census:
    """Check every day of the time axis: recorded (ok/skipped) or pending, and for ok days that the
    TB, QC and reference chunks exist in the store."""
    cube = info(url, storage)
    sv = survey(url, storage, cube.dates, TIME_VARS, stored=lambda rec: rec["status"] == "ok")
    return Census(ok=sv.with_status("ok"), skipped=[d for d, rec in sv.records.items() if rec["status"] != "ok"],
                  pending=sv.pending, missing_chunks=sv.missing_chunks)


def finalize(url: str, storage: StorageConfig | None = None, extra_attrs: dict[str, Any] | None = None) -> Census:
    """After all day tasks: ingest log into the attributes, metadata consolidated. Returns the census."""
    result = census(url, storage)
    recs = day_records(url, storage)
    log = [{"date": d.isoformat(), "reason": recs[d].get("reason", ""), "files": recs[d].get("files", [])}
           for d in result.skipped]
    with quiet():  # re-saving consolidated string coords
        g = open_group(url, storage, mode="r+")
        g.attrs.update({"ingest_log": json.dumps(log), "days_ok": len(result.ok),
                        "days_skipped": len(result.skipped), "days_pending": len(result.pending),
                        **(extra_attrs or {})})
        consolidate(url, storage)
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
    return open_dataset(url, storage)
