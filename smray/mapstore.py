"""The map store (``smray-maps-1``): daily soil-moisture maps as a CF-1.8 Zarr v3 group.

Same grid and lat/lon coordinates as the cube the maps were predicted from. Layout::

    soil_moisture(time, lat, lon)              float32 m³/m³, mean of the available passes   chunk (1, lat, lon)
    soil_moisture_asc / _desc(time, lat, lon)  float32 m³/m³, per pass (A 13:30, D 01:30)    chunk (1, lat, lon)
    soil_moisture_uncertainty(time, lat, lon)  float32 m³/m³, half-width of the central interval of nominal
                                               coverage ``attrs["coverage"]`` for the reference value
    qc(time, pass, lat, lon)                   uint16, carried from the cube                  chunk (1, 2, lat, lon)
    land_fraction(lat, lon), crs (scalar), time, time_bnds(time, nv), pass, lat, lon

It is written like the cube (:mod:`smray.cube`, whose helpers it reuses): the driver writes the
template (:func:`create_or_extend`), each day task writes its own chunks and then its completion
record ``_smray/days/YYYY-MM-DD.json`` (:func:`write_day`), a re-run skips recorded days,
:func:`census` proves every recorded day's chunks exist, and :func:`finalize` consolidates the
metadata. Every chunk of a recorded day is stored, even when all-missing (``write_empty_chunks``),
so the census can tell a missing chunk from an empty day. Appending later days resizes the time
axis and writes only new chunks.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import zarr

from smray import __version__
from smray import qc as qcmod
from smray.cube import PASSES
from smray.daystore import (EPOCH, RECORDS, DayAxis, consolidate, date_of, day_records, days_since_epoch,  # noqa: F401
                            exists, grow_time_axis, open_dataset, open_group, quiet, recorded_signature, survey,
                            write_record)
from smray.errors import SmrayError
from smray.grid import Grid
from smray.storage import StorageConfig, filesystem

MAP_FORMAT = "smray-maps-1"
#: the group attribute holding the settings every day of the store shares (JSON, see smray.predict)
SIGNATURE_ATTR = "smray_predict_signature"
#: the per-day soil-moisture variables, (time, lat, lon)
SM_VARS = ("soil_moisture", "soil_moisture_asc", "soil_moisture_desc", "soil_moisture_uncertainty")
TIME_VARS = (*SM_VARS, "qc")
#: the growable time-axis arrays besides the data (coordinate and its bounds)
AXIS_VARS = ("time", "time_bnds")
STANDARD_NAME = "volume_fraction_of_condensed_water_in_soil"
#: record status of a day whose maps were written ("ok") or are all missing for lack of valid input
STATUSES = ("ok", "no_input")
_WRITE_ALL = {"write_empty_chunks": True}
_LONG_NAMES = {
    "soil_moisture": "surface soil moisture (0-7 cm), mean of the available passes",
    "soil_moisture_asc": "surface soil moisture (0-7 cm), ascending pass A (13:30 local time)",
    "soil_moisture_desc": "surface soil moisture (0-7 cm), descending pass D (01:30 local time)",
}


@dataclass
class MapInfo(DayAxis):
    """What a map store's template says: grid, time axis and group attributes."""

    WHAT: ClassVar[str] = "map store"

    attrs: dict[str, Any] = field(default_factory=dict)

    @property
    def signature(self) -> dict[str, Any]:
        """What every day of the store shares (:data:`SIGNATURE_ATTR`; {} when not recorded)."""
        try:
            return recorded_signature(self.attrs, SIGNATURE_ATTR)
        except SmrayError as err:
            raise SmrayError(f"{self.url}: {err}") from None


def info(url: str, storage: StorageConfig | None = None) -> MapInfo:
    """The template of the map store at ``url`` (SmrayError when there is none)."""
    g = open_group(url, storage)
    attrs = dict(g.attrs)
    if attrs.get("smray_format") != MAP_FORMAT:
        raise SmrayError(f"{url}: not an smray map store (attribute smray_format is {attrs.get('smray_format')!r})")
    times = g["time"][:]
    return MapInfo(url=url, grid=Grid(**json.loads(attrs["smray_grid"])), start=date_of(times[0]),
                   end=date_of(times[-1]), attrs=attrs)


# --------------------------------------------------------------------------------------------
# Template
# --------------------------------------------------------------------------------------------
def _static_arrays(g: zarr.Group, grid: Grid, static: dict[str, np.ndarray]) -> None:
    def arr(name: str, values: np.ndarray, dims: tuple[str, ...], attrs: dict[str, Any], fill: Any) -> None:
        a = g.create_array(name, shape=values.shape, chunks=values.shape or None, dtype=values.dtype,
                           fill_value=fill, dimension_names=dims, attributes=attrs)
        a[...] = values

    lat = np.asarray(static.get("lat", grid.lat), dtype=np.float64)
    lon = np.asarray(static.get("lon", grid.lon), dtype=np.float64)
    arr("lat", lat, ("lat",), {"standard_name": "latitude", "long_name": "latitude", "units": "degrees_north",
                               "axis": "Y"}, np.nan)
    arr("lon", lon, ("lon",), {"standard_name": "longitude", "long_name": "longitude", "units": "degrees_east",
                               "axis": "X"}, np.nan)
    arr("pass", np.array(PASSES, dtype="<U1"), ("pass",),
        {"long_name": "satellite pass", "flag_meanings": "A=ascending_13:30 D=descending_01:30"}, "")
    arr("land_fraction", np.asarray(static["land_fraction"], dtype=np.float32), ("lat", "lon"),
        {"long_name": "land area fraction (lakes excluded)", "standard_name": "land_area_fraction", "units": "1",
         "grid_mapping": "crs"}, np.nan)
    g.create_array("crs", shape=(), dtype="int32", fill_value=0, dimension_names=(),
                   attributes={"grid_mapping_name": "latitude_longitude", "semi_major_axis": 6378137.0,
                               "inverse_flattening": 298.257223563, "long_name": "WGS 84 latitude/longitude"})


def _sm_attrs(name: str, coverage: float, uncertainty: dict[str, Any] | None) -> dict[str, Any]:
    common = {"units": "m3 m-3", "grid_mapping": "crs", "coordinates": "time lat lon"}
    if name == "soil_moisture_uncertainty":
        u = uncertainty or {}
        return {**common, "long_name": f"half-width of the central {100 * coverage:g}% prediction interval of "
                                       f"the reference surface soil moisture",
                "coverage": float(coverage), "method": str(u.get("method", "none")),
                "calibration": json.dumps(u.get("calibration", {}))}
    attrs = {**common, "standard_name": STANDARD_NAME, "long_name": _LONG_NAMES[name],
             "valid_min": 0.0, "valid_max": 1.0}
    if name == "soil_moisture":
        attrs.update({"ancillary_variables": "soil_moisture_uncertainty qc", "cell_methods": "time: mean"})
    else:
        attrs["cell_methods"] = "time: point"
    return attrs


def _time_arrays(g: zarr.Group, grid: Grid, ntime: int, coverage: float, uncertainty: dict[str, Any] | None) -> None:
    ny, nx = grid.shape
    tchunk = max(ntime, 4096)
    g.create_array("time", shape=(ntime,), chunks=(tchunk,), dtype="int64", fill_value=0, dimension_names=("time",),
                   attributes={"standard_name": "time", "long_name": "time", "units": "days since 1970-01-01",
                               "calendar": "proleptic_gregorian", "axis": "T", "bounds": "time_bnds"})
    g.create_array("time_bnds", shape=(ntime, 2), chunks=(tchunk, 2), dtype="int64", fill_value=0,
                   dimension_names=("time", "nv"),
                   attributes={"units": "days since 1970-01-01", "calendar": "proleptic_gregorian"})
    for name in SM_VARS:
        g.create_array(name, shape=(ntime, ny, nx), chunks=(1, ny, nx), dtype="float32", fill_value=np.nan,
                       dimension_names=("time", "lat", "lon"), attributes=_sm_attrs(name, coverage, uncertainty))
    g.create_array("qc", shape=(ntime, len(PASSES), ny, nx), chunks=(1, len(PASSES), ny, nx), dtype=qcmod.QC_DTYPE,
                   fill_value=qcmod.FLAGS["day_missing"], dimension_names=("time", "pass", "lat", "lon"),
                   attributes={**qcmod.cf_attrs(), "grid_mapping": "crs", "coordinates": "time pass lat lon"})


def _set_axis(g: zarr.Group, first: int, start_day: int, end_day: int) -> None:
    """Fill ``time``/``time_bnds`` from index ``first`` for the days ``start_day``..``end_day``."""
    days = np.arange(start_day, end_day + 1, dtype=np.int64)
    g["time"][first:] = days
    g["time_bnds"][first:] = np.stack([days, days + 1], axis=1)


def create_or_extend(url: str, storage: StorageConfig | None, grid: Grid, start: dt.date, end: dt.date,
                     static: dict[str, np.ndarray], attrs: dict[str, Any], *, coverage: float = 0.9,
                     uncertainty: dict[str, Any] | None = None) -> MapInfo:
    """Write the template for ``start``..``end``, or extend an existing store's time axis to ``end``.

    ``static``: ``land_fraction`` (and ``lat``/``lon``) of the cube. An existing store must have the
    same grid and cannot gain days before its first one. ``attrs`` become the group attributes of a
    new store (an existing store keeps its own; see :func:`update_attrs`).
    """
    if end < start:
        raise SmrayError(f"paths.predict.end: {end} is before paths.predict.start {start}")
    if exists(url, storage):
        old = info(url, storage)
        if old.grid != grid:
            raise SmrayError(f"{url}: map store grid {old.grid.to_dict()} differs from the cube's {grid.to_dict()}")
        if start < old.start:
            raise SmrayError(f"{url}: map store starts {old.start}; cannot add earlier days ({start}); "
                             f"use --new-store (predict.new_store) to start a new store")
        if end > old.end:
            grow_time_axis(url, storage, old, end, TIME_VARS, bounds="time_bnds")
        return info(url, storage)
    g = open_group(url, storage, mode="w")
    with quiet():
        _static_arrays(g, grid, static)
        _time_arrays(g, grid, (end - start).days + 1, coverage, uncertainty)
        _set_axis(g, 0, days_since_epoch(start), days_since_epoch(end))
    g.attrs.update({
        "Conventions": "CF-1.8", "title": "smray daily surface soil moisture maps", "smray_format": MAP_FORMAT,
        "smray_version": __version__, "smray_grid": json.dumps(grid.to_dict()),
        "geospatial_lat_min": float(grid.bounds[1]), "geospatial_lat_max": float(grid.bounds[3]),
        "geospatial_lon_min": float(grid.bounds[0]), "geospatial_lon_max": float(grid.bounds[2]),
        **attrs,
    })
    return info(url, storage)


def update_attrs(url: str, storage: StorageConfig | None, attrs: dict[str, Any]) -> None:
    """Merge ``attrs`` into the group attributes."""
    with quiet():
        open_group(url, storage, mode="r+").attrs.update(attrs)


def remove(url: str, storage: StorageConfig | None = None) -> None:
    """Delete the store at ``url`` (``--new-store``); nothing there is fine."""
    fs, path = filesystem(url, storage)
    if fs.exists(path):
        fs.rm(path, recursive=True)
    fs.invalidate_cache(path)


# --------------------------------------------------------------------------------------------
# Day writes and completion records
# --------------------------------------------------------------------------------------------
def write_day(url: str, storage: StorageConfig | None, date: dt.date, maps: dict[str, np.ndarray], qc: np.ndarray,
              record: dict[str, Any], *, group: zarr.Group | None = None, index: int | None = None) -> None:
    """Write one day's chunks (every variable of :data:`TIME_VARS`, all stored even when all-missing),
    then its completion record ``{"status", "n_valid", ...}``.

    ``maps``: each of :data:`SM_VARS` float32 ``(lat, lon)`` m³/m³, NaN = missing; ``qc`` uint16
    ``(2, lat, lon)``; ``record["status"]`` one of :data:`STATUSES`. ``group``/``index`` (an open
    writable group and the day's time index) save the metadata reads of a long-lived writer.
    """
    if record.get("status") not in STATUSES:
        raise SmrayError(f"{url}: day {date}: record status must be one of {', '.join(STATUSES)}")
    if group is None or index is None:
        index = info(url, storage).index(date)
        group = open_group(url, storage, mode="r+")
    ny, nx = group["land_fraction"].shape
    for name in SM_VARS:
        a = np.asarray(maps[name], dtype=np.float32)
        if a.shape != (ny, nx):
            raise SmrayError(f"{url}: day {date}: {name} has shape {a.shape}, the grid is {ny}x{nx}")
        group[name].with_config(_WRITE_ALL)[index] = a
    group["qc"].with_config(_WRITE_ALL)[index] = np.asarray(qc, dtype=qcmod.QC_DTYPE)
    write_record(url, storage, date, record)


@dataclass
class Census:
    """Which days are written (ok / no_input) or pending, and which chunks of written days are absent."""

    ok: list[dt.date]
    no_input: list[dt.date]
    pending: list[dt.date]
    missing_chunks: list[str]

    @property
    def complete(self) -> bool:
        return not self.pending and not self.missing_chunks

    def pending_in(self, start: dt.date, end: dt.date) -> list[dt.date]:
        return [d for d in self.pending if start <= d <= end]


def census(url: str, storage: StorageConfig | None = None) -> Census:
    """Check every day of the time axis: recorded or pending, and that every chunk of every recorded
    day (ok and no_input alike: both are written whole) exists in the store."""
    sv = survey(url, storage, info(url, storage).dates, TIME_VARS)
    return Census(ok=sv.with_status("ok"), no_input=[d for d, rec in sv.records.items() if rec.get("status") != "ok"],
                  pending=sv.pending, missing_chunks=sv.missing_chunks)


def finalize(url: str, storage: StorageConfig | None = None, extra_attrs: dict[str, Any] | None = None) -> Census:
    """After all day tasks: day counts (and ``extra_attrs``) into the attributes, metadata
    consolidated. Returns the census."""
    result = census(url, storage)
    with quiet():
        g = open_group(url, storage, mode="r+")
        g.attrs.update({"days_ok": len(result.ok), "days_no_input": len(result.no_input),
                        "days_pending": len(result.pending),
                        "no_input_days": json.dumps([d.isoformat() for d in result.no_input]),
                        **(extra_attrs or {})})
        consolidate(url, storage)
    return result


def read_day(url: str, storage: StorageConfig | None, date: dt.date) -> dict[str, np.ndarray]:
    """One day as numpy: each of :data:`SM_VARS` ``(lat, lon)`` and ``qc`` ``(2, lat, lon)``."""
    i = info(url, storage).index(date)
    g = open_group(url, storage)
    return {name: g[name][i] for name in TIME_VARS}


def open_maps(url: str, storage: StorageConfig | None = None) -> Any:
    """The store as a lazy xarray Dataset (times decoded to datetime64); one-line SmrayError when it is
    not a Zarr store or not a map store (attribute ``smray_format``)."""
    ds = open_dataset(url, storage)
    fmt = ds.attrs.get("smray_format")
    if fmt != MAP_FORMAT:
        raise SmrayError(f"{url}: not a smray map store (attribute smray_format is {fmt!r}, expected "
                         f"{MAP_FORMAT!r})")
    return ds


__all__ = ["MAP_FORMAT", "SM_VARS", "TIME_VARS", "MapInfo", "Census", "info", "create_or_extend", "update_attrs",
           "remove", "write_day", "write_record", "census", "finalize", "read_day", "open_maps", "EPOCH", "RECORDS"]
