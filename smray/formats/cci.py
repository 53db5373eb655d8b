"""ESA CCI Soil Moisture daily L3S files (COMBINED/ACTIVE/PASSIVE), netCDF4 (formats.md §c).

``ESACCI-SOILMOISTURE-L3S-SSMV-PASSIVE-20161230000000-fv04.2.nc``: dims (time 1, lat 720, lon 1440),
lat 89.875 → −89.875, lon −179.875 → 179.875 (the canonical smray grid), ``sm`` float32 m³/m³
with ``_FillValue`` −9999, and per-cell ``sm_uncertainty``, ``t0`` (observation time, days since
1970), ``flag`` (int8 bit flags, 127 = no data), ``dnflag``, ``freqbandID``, ``mode``
(1 ascending, 2 descending, 3 both) and ``sensor`` (8 AMSR-E, 32 AMSR2, 64 SMOS, … bit-combined).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
import xarray as xr

from smray.errors import SmrayError, first_line
from smray.formats.detect import basename, load_source, parse_date
from smray.grid import Grid

FLOAT_VARS = ("sm", "sm_uncertainty")
#: integer variables and the value used where the file has no data
INT_VARS = {"flag": 127, "dnflag": 0, "freqbandID": 0, "mode": 0, "sensor": 0}
SENSORS = {1: "SMMR", 2: "SSMI", 4: "TMI", 8: "AMSRE", 16: "WindSat", 32: "AMSR2", 64: "SMOS"}
MODES = {1: "ascending", 2: "descending", 3: "ascending+descending"}
EPOCH = np.datetime64("1970-01-01T00:00:00", "ns")


def orient_to_canonical(values: np.ndarray, lat: np.ndarray, lon: np.ndarray,
                        what: str = "field") -> tuple[np.ndarray, Grid]:
    """(values, grid) with (…, lat, lon) ``values`` flipped/rolled onto the canonical orientation
    (north first, longitudes −180 → 180). ``lat``/``lon`` are the file's cell-centre coordinates;
    they must form a whole global cell-centre grid (0–360 longitudes are rolled)."""
    lat = np.asarray(lat, dtype=np.float64)
    lon = np.asarray(lon, dtype=np.float64)
    if lat.size < 2 or lon.size < 2:
        raise SmrayError(f"{what}: lat/lon have fewer than 2 values")
    if lat[0] < lat[-1]:
        values, lat = values[..., ::-1, :], lat[::-1]
    if lon.max() > 180.0:
        lon = ((lon + 180.0) % 360.0) - 180.0
        k = int(np.argmin(lon))
        values, lon = np.roll(values, -k, axis=-1), np.roll(lon, -k)
    res = round(180.0 / lat.size, 9)
    try:
        grid = Grid(res)
    except SmrayError:
        raise SmrayError(f"{what}: {lat.size} latitudes is not a supported cell-centre grid") from None
    if grid.global_shape != (lat.size, lon.size) or not (
            np.allclose(lat, grid.lat, atol=1e-4) and np.allclose(lon, grid.lon, atol=1e-4)):
        raise SmrayError(f"{what}: lat/lon ({lat.size}x{lon.size}, lat {lat[0]:g}..{lat[-1]:g}, "
                         f"lon {lon[0]:g}..{lon[-1]:g}) are not the global {res:g} deg cell-centre grid")
    return np.ascontiguousarray(values), grid


def sensor_names(code: int) -> str:
    """'AMSR2+SMOS' for 96, '' for 0."""
    return "+".join(name for bit, name in SENSORS.items() if int(code) & bit)


def read_cci_sm(source: Any, *, grid: Grid | None = None, name: str | None = None) -> xr.Dataset:
    """Read one ESA CCI SM daily file onto the canonical grid.

    Returns ``sm`` and ``sm_uncertainty`` (float32 m³/m³, NaN where the file has its fill value),
    ``t0`` (datetime64[ns] observation time, NaT where missing), and ``flag`` (int8, 127 = no data),
    ``dnflag``, ``freqbandID``, ``mode`` (int8, 0 = no data) and ``sensor`` (int16, 0 = no data)
    as stored. Dims (lat, lon) for a one-day file (``time`` kept as a scalar coordinate), else
    (time, lat, lon). ``grid`` (optional, same resolution) selects a window.
    """
    import netCDF4

    data, label = load_source(source, name=name)
    fname = basename(label)
    try:
        nc = netCDF4.Dataset(fname, mode="r", memory=data)
    except Exception as err:
        raise SmrayError(f"{fname}: not a readable netCDF file ({first_line(err, 160)})") from None
    try:
        with nc:
            if "sm" not in nc.variables:
                raise SmrayError(f"{fname}: variable 'sm' not found (has: {', '.join(nc.variables)})")
            for need in ("lat", "lon"):
                if need not in nc.variables:
                    raise SmrayError(f"{fname}: coordinate {need!r} not found")
            lat = np.asarray(nc["lat"][:], dtype=np.float64)
            lon = np.asarray(nc["lon"][:], dtype=np.float64)
            times = _times(nc)
            raw: dict[str, np.ndarray] = {}
            for var in (*FLOAT_VARS, "t0", *INT_VARS):
                if var not in nc.variables:
                    continue
                v = nc[var]
                dims = v.dimensions[-2:]
                if dims != ("lat", "lon"):
                    raise SmrayError(f"{fname}: {var} has dims {v.dimensions}, expected (time, lat, lon)")
                v.set_auto_maskandscale(False)
                arr = np.asarray(v[:])
                fill = getattr(v, "_FillValue", None)
                if var in FLOAT_VARS or var == "t0":
                    bad = ~np.isfinite(arr)
                    if fill is not None:
                        bad |= arr == fill
                    vr = getattr(v, "valid_range", None)
                    if vr is not None and np.size(vr) == 2:
                        tol = 1e-6 if var == "t0" else 0.0  # t0 sits on its bounds to float64 noise
                        with np.errstate(invalid="ignore"):
                            bad |= (arr < vr[0] - tol) | (arr > vr[1] + tol)
                    if var == "t0":  # days since 1970 → datetime64, to the millisecond
                        out = np.full(arr.shape, np.datetime64("NaT", "ns"))
                        ms = np.round(arr[~bad].astype(np.float64) * 86400e3).astype(np.int64)
                        out[~bad] = EPOCH + ms.astype("timedelta64[ms]")
                    else:
                        out = arr.astype(np.float32)
                        out[bad] = np.nan
                else:
                    out = arr.copy()
                    if fill is not None and fill != INT_VARS[var]:
                        out[arr == fill] = INT_VARS[var]
                raw[var] = out
    except SmrayError:
        raise
    except Exception as err:
        raise SmrayError(f"{fname}: corrupt netCDF file ({first_line(err, 160)})") from None
    oriented = {}
    out_grid = None
    for var, arr in raw.items():
        if arr.ndim == 2:
            arr = arr[None]
        oriented[var], out_grid = orient_to_canonical(arr, lat, lon, fname)
    assert out_grid is not None
    if grid is not None:
        if abs(grid.res - out_grid.res) > 1e-9:
            raise SmrayError(f"{fname}: file grid is {out_grid.res:g} deg but {grid.res:g} deg was requested")
        rows, cols = grid.window
        oriented = {k: v[:, rows, cols] for k, v in oriented.items()}
        out_grid = grid
    ntime = oriented["sm"].shape[0]
    if times is None or len(times) != ntime:
        day = parse_date(fname)
        times = np.array([np.datetime64(day, "ns")] * ntime) if day else None
    units = {"sm": "m3 m-3", "sm_uncertainty": "m3 m-3"}
    data_vars = {}
    for var, arr in oriented.items():
        attrs = {"units": units[var]} if var in units else {}
        if var in INT_VARS:
            attrs["no_data"] = INT_VARS[var]
        if ntime == 1:
            data_vars[var] = (("lat", "lon"), arr[0], attrs)
        else:
            data_vars[var] = (("time", "lat", "lon"), arr, attrs)
    coords: dict[str, Any] = {"lat": ("lat", out_grid.lat, {"units": "degrees_north"}),
                              "lon": ("lon", out_grid.lon, {"units": "degrees_east"})}
    if times is not None:
        coords["time"] = ((), times[0]) if ntime == 1 else ("time", times)
    attrs: dict[str, Any] = {"source": fname, "product": "esa_cci_sm", "units": "m3 m-3",
                             "res": out_grid.res}
    day = parse_date(fname)
    if day is not None:
        attrs["date"] = day.isoformat()
    return xr.Dataset(data_vars, coords=coords, attrs=attrs)


def _times(nc: Any) -> np.ndarray | None:
    if "time" not in nc.variables:
        return None
    import netCDF4

    t = nc["time"]
    try:
        vals = netCDF4.num2date(t[:], t.units.replace(" UTC", ""), getattr(t, "calendar", "standard"),
                                only_use_cftime_datetimes=False, only_use_python_datetimes=True)
    except Exception:
        return None
    return np.array([np.datetime64(dt.datetime(v.year, v.month, v.day, v.hour, v.minute, v.second), "ns")
                     for v in np.atleast_1d(vals)])
