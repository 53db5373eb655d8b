"""What is in a data file: product, variables, grid, time steps and decoded statistics.

:func:`inspect_url` opens any file smray reads (local path or URL) with the reader of its product
(:func:`smray.formats.detect.detect_product`) and returns a JSON-serialisable dict;
:func:`format_inspect` renders that dict as text. Products without a reader of their own (LPRM,
plain netCDF such as a land mask, HDF5/HDF4 files of unknown layout) get a generic description.

    >>> info = inspect_url("s3://bucket/L3/GW1AM2_20110701_01D_EQMA_L3SGT06LA2220220.h5")
    >>> print(format_inspect(info))

Statistics are of decoded values: fill values masked, scale factors applied; for ERA files with a
land–sea mask they are over land (``lsm`` ≥ 0.5) only. The grid described is the file's own grid
in its own orientation; ``read_as`` says what smray's reader turns it into.
"""

from __future__ import annotations

import datetime as dt
import io
import math
from collections.abc import Callable
from typing import Any

import numpy as np

from smray.errors import SmrayError, first_line
from smray.formats.detect import (
    HEAD_BYTES,
    basename,
    container,
    detect_product,
    load_source,
    parse_date,
    parse_pass,
)
from smray.serial import iso_time, json_safe

DESCRIPTIONS = {
    "jaxa_l3_tb": "JAXA AMSR2/AMSR-E L3 daily brightness temperature (HDF5)",
    "nsidc_ae_land3": "NSIDC AMSR-E AE_Land3 daily land product (HDF-EOS2/HDF4, EASE-Grid 25 km)",
    "nsidc_0302": "NSIDC-0302 AMSR-E daily quarter-degree gridded TB (flat binary, uint16 0.1 K, little-endian)",
    "nsidc_0301": "NSIDC-0301 AMSR-E daily EASE-Grid 25 km TB (flat binary, uint16 0.1 K, little-endian)",
    "nsidc_ae_l2a": ("NSIDC AMSR-E AE_L2A resampled TB half-orbit swath (HDF-EOS2/HDF4, Low_Res_Swath; read and "
                     "gridded per pass by inverse-distance squared onto 0.25 deg)"),
    "era_rda": "ERA-Interim analysis from NCAR RDA ds627.0 (GRIB1, one time per file)",
    "lprm_l3": "LPRM AMSR-E L3 daily soil moisture (netCDF)",
    "era_grib": "ERA-Interim/ERA5 soil water (GRIB)",
    "era_netcdf": "ERA-Interim/ERA5 soil water (netCDF)",
    "esa_cci_sm": "ESA CCI Soil Moisture daily L3S (netCDF4)",
    "ismn_stm": "ISMN in-situ soil moisture time series (.stm)",
    "smray_twin_truth": "smray twin truth",
    "unknown": "unrecognised product",
}
PASS_NAMES = {"A": "ascending, 13:30 local", "D": "descending, 01:30 local"}
#: preferred main variable, in order, for generic netCDF files
MAIN_VARIABLE_PRIORITY = ("swvl1", "sm", "soil_moisture_c", "soil_moisture_x", "tb_h", "land", "lsm")
MAX_TIMES_LISTED = 24

Inspector = Callable[[bytes, str, str, Any], dict[str, Any]]


# --------------------------------------------------------------------------------------------
# public API
# --------------------------------------------------------------------------------------------
def inspect_url(url: str, storage: Any = None) -> dict[str, Any]:
    """Describe the file at ``url`` (path or fsspec URL; ``storage`` a
    :class:`~smray.storage.StorageConfig`). Returns a JSON-serialisable dict with keys ``url``,
    ``name``, ``size_bytes``, ``container``, ``product``, ``description``, ``date``, ``pass``,
    ``variables`` (name, dims, shape, dtype, units), ``grid`` (the file's own grid: shape,
    resolution, lat/lon range, orientation), ``read_as`` (the grid smray reads it onto), ``time``
    (steps, first, last), ``main_variable``, ``stats`` (decoded min/mean/max, valid count),
    ``variable_stats`` and ``notes``. Raises :class:`SmrayError` (one line) when the file cannot
    be read or is not recognised.
    """
    data, _ = load_source(url, storage)
    name = basename(url)
    head = data[:HEAD_BYTES]
    product = detect_product(name, head)
    day = parse_date(name)
    info: dict[str, Any] = {
        "url": str(url),
        "name": name,
        "size_bytes": len(data),
        "container": container(head),
        "product": product,
        "description": DESCRIPTIONS.get(product, product),
        "date": day.isoformat() if day else None,
        "pass": parse_pass(name),
        "notes": [],
    }
    inspector = INSPECTORS.get(product, _inspect_generic)
    try:
        found = inspector(data, name, str(url), storage)
    except SmrayError as err:
        raise SmrayError(str(err).replace("<bytes>", name)) from None
    notes = info["notes"] + found.pop("notes", [])
    info.update(found)
    info["notes"] = notes
    return json_safe(info)


def format_inspect(info: dict[str, Any]) -> str:
    """Multi-line text for an :func:`inspect_url` result."""
    lines = [f"{info.get('name')}  ({_size(info.get('size_bytes'))}, {info.get('container') or 'unknown container'})"]
    lines.append(f"  product    {info.get('product')}: {info.get('description')}")
    when = []
    if info.get("date"):
        when.append(f"date {info['date']}")
    if info.get("pass"):
        when.append(f"pass {info['pass']} ({PASS_NAMES.get(info['pass'], '')})")
    if when:
        lines.append("  " + "   ".join(when))
    grid = info.get("grid")
    if grid:
        lines.append(f"  grid       {_grid_text(grid)}")
    read_as = info.get("read_as")
    if read_as:
        lines.append(f"  read as    {_grid_text(read_as)}")
    t = info.get("time")
    if t:
        if t.get("steps", 0) == 0:
            lines.append("  time       none")
        else:
            span = t["first"] if t["first"] == t["last"] else f"{t['first']} .. {t['last']}"
            lines.append(f"  time       {t['steps']} step{'s' if t['steps'] != 1 else ''}: {span}")
    variables = info.get("variables") or []
    if variables:
        lines.append("  variables")
        width = max(len(v["name"]) for v in variables)
        for v in variables:
            dims = f"({', '.join(v.get('dims') or [])})" if v.get("dims") else ""
            shape = "x".join(str(n) for n in v.get("shape") or [])
            extra = f"  [{v['units']}]" if v.get("units") else ""
            label = f"  {v['long_name']}" if v.get("long_name") else ""
            lines.append(f"    {v['name']:<{width}}  {v.get('dtype', '')} {dims} {shape}{extra}{label}".rstrip())
    stats = info.get("stats")
    if stats:
        lines.append(f"  {info.get('main_variable')}: {_stats_text(stats)}")
    others = [s for s in info.get("variable_stats") or [] if s.get("variable") != info.get("main_variable")
              or s.get("label")]
    if others:
        lines.append("  other variables")
        for s in others:
            lines.append(f"    {s.get('label') or s.get('variable')}: {_stats_text(s)}")
    for key in ("station", "counts"):
        if info.get(key):
            lines.append(f"  {key:<10} " + ", ".join(f"{k}={v}" for k, v in info[key].items()))
    for note in info.get("notes") or []:
        lines.append(f"  note: {note}")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# building blocks
# --------------------------------------------------------------------------------------------
def value_stats(values: Any, *, variable: str = "", units: str | None = None, over: str = "all cells",
                mask: np.ndarray | None = None) -> dict[str, Any]:
    """min/mean/max/valid count of the finite values (``mask`` True = include)."""
    arr = np.asarray(values, dtype=np.float64)
    total = int(arr.size)
    if mask is not None:
        arr = arr[np.broadcast_to(mask, arr.shape)]
        total = int(arr.size)
    finite = arr[np.isfinite(arr)]
    out: dict[str, Any] = {"variable": variable, "units": units, "over": over, "valid_count": int(finite.size),
                           "total_count": total,
                           "valid_fraction": (finite.size / total) if total else None}
    if finite.size:
        out.update(min=float(finite.min()), mean=float(finite.mean()), max=float(finite.max()))
    else:
        out.update(min=None, mean=None, max=None)
    return out


def describe_latlon(lat: Any, lon: Any) -> dict[str, Any]:
    """The grid of 1-D lat/lon coordinates as stored: shape, spacing, ranges, orientation."""
    lat = np.asarray(lat, dtype=np.float64).ravel()
    lon = np.asarray(lon, dtype=np.float64).ravel()
    out: dict[str, Any] = {"kind": "regular lat/lon", "shape": [int(lat.size), int(lon.size)],
                           "lat_range": [float(lat[0]), float(lat[-1])] if lat.size else None,
                           "lon_range": [float(lon[0]), float(lon[-1])] if lon.size else None}
    if lat.size > 1:
        dlat = np.diff(lat)
        out["res_lat_deg"] = float(abs(np.median(dlat)))
        out["lat_order"] = "north first" if dlat[0] < 0 else "south first"
        regular = np.allclose(np.abs(dlat), abs(dlat[0]), rtol=1e-3)
        if not regular:
            out["kind"] = "lat/lon (irregular latitudes, e.g. Gaussian)"
        edge = float(np.max(np.abs(lat)))
        out["registration"] = ("grid points incl. poles" if math.isclose(edge, 90.0, abs_tol=1e-6)
                               else "cell centres")
    if lon.size > 1:
        out["res_lon_deg"] = float(abs(np.median(np.diff(lon))))
        out["lon_convention"] = "0..360" if lon.max() > 180.0 else "-180..180"
    if out.get("res_lat_deg") and math.isclose(out["res_lat_deg"], out.get("res_lon_deg", -1), rel_tol=1e-4):
        out["res_deg"] = out["res_lat_deg"]
    return out


def describe_smray_grid(ds: Any, how: str) -> dict[str, Any]:
    """``read_as`` entry for a Dataset with ``lat``/``lon`` on the canonical orientation."""
    g = describe_latlon(ds["lat"].values, ds["lon"].values)
    g["kind"] = f"smray grid ({how})"
    return g


def times_of(values: Any) -> dict[str, Any]:
    vals = [iso_time(v) for v in np.atleast_1d(np.asarray(values))]
    vals = [v for v in vals if v is not None]
    out: dict[str, Any] = {"steps": len(vals), "first": vals[0] if vals else None,
                           "last": vals[-1] if vals else None}
    if len(vals) <= MAX_TIMES_LISTED:
        out["values"] = vals
    return out


def variables_of(ds: Any) -> list[dict[str, Any]]:
    """Variable listing of an xarray Dataset."""
    out = []
    for name, da in ds.data_vars.items():
        out.append({"name": str(name), "dims": [str(d) for d in da.dims], "shape": list(da.shape),
                    "dtype": str(da.dtype), "units": da.attrs.get("units"),
                    "long_name": da.attrs.get("long_name")})
    return out



# --------------------------------------------------------------------------------------------
# per-product inspectors: (data, name, url, storage) -> partial info dict
# --------------------------------------------------------------------------------------------
def _inspect_jaxa(data: bytes, name: str, url: str, storage: Any) -> dict[str, Any]:
    from smray.formats.jaxa_l3 import read_jaxa_l3_native

    ds = read_jaxa_l3_native(data, name=name)
    res = float(ds.attrs["native_res"])
    nlat, nlon = ds.tb_h.shape
    file_lon = (np.arange(nlon) + 0.5) * res  # the file's 0 → 360 columns
    grid = describe_latlon(ds["lat"].values, file_lon)
    stats = [value_stats(ds[v].values, variable=v, units="K") for v in ("tb_h", "tb_v")]
    notes = ["DN x SCALE FACTOR; 65534 (no observation) and 65535 (fill) masked"]
    if (nlat, nlon) == (1800, 3600):
        notes.append("0.1 deg file: read_jaxa_l3 averages it area-weighted onto 0.25 deg")
        read_as = {"kind": "smray grid (area-weighted from 0.1 deg)", "shape": [720, 1440], "res_deg": 0.25,
                   "lat_range": [89.875, -89.875], "lon_range": [-179.875, 179.875],
                   "lat_order": "north first", "lon_convention": "-180..180"}
    else:
        read_as = describe_smray_grid(ds, "columns rolled to -180..180")
    t = ds.attrs.get("file_ObservationStartDateTime") or ds.attrs.get("date")
    file_attrs = {k[5:]: v for k, v in ds.attrs.items() if k.startswith("file_")}
    return {"variables": variables_of(ds), "grid": grid, "read_as": read_as,
            "time": times_of([t]) if t else {"steps": 0, "first": None, "last": None},
            "main_variable": "tb_h", "stats": stats[0], "variable_stats": stats,
            "band": ds.attrs.get("band"), "file_attributes": file_attrs, "notes": notes}


def _inspect_nsidc(data: bytes, name: str, url: str, storage: Any) -> dict[str, Any]:
    from smray.formats import nsidc_land3 as n3

    fields = n3.list_fields(data, name=name)
    passes, channels = n3.channels_in(fields)
    variables = [{"name": k, "dims": ["YDim", "XDim"] if len(s) == 2 else None, "shape": list(s), "dtype": d}
                 for k, (s, d) in fields.items()]
    lat, _ = n3.ease_inverse(np.array([-0.5, n3.EASE_NROWS - 0.5]), np.zeros(2))
    grid = {"kind": "EASE-Grid v1 global 25 km, cylindrical equal-area", "shape": list(n3.EASE_SHAPE),
            "cell_km": n3.CELL_KM, "lat_range": [float(lat[0]), float(lat[1])], "lon_range": [-180.0, 180.0],
            "lat_order": "north first", "lon_convention": "-180..180", "registration": "cell edges"}
    out: dict[str, Any] = {"variables": variables, "grid": grid,
                           "read_as": {"kind": "smray grid (nearest EASE cell)", "shape": [720, 1440],
                                       "res_deg": 0.25, "lat_order": "north first",
                                       "lon_convention": "-180..180"},
                           "time": times_of([parse_date(name)]) if parse_date(name) else {"steps": 0},
                           "notes": ["counts x 0.1 K; 9999 (swath gap) and -9999 (no retrieval) masked"]}
    if not channels:
        out["notes"].append("no brightness-temperature fields (X_TBnn.nP (Res 1)) found")
        return out
    ds = n3.read_nsidc_land3_native(data, passes=passes, channels=channels, name=name)
    stats = []
    for ch in channels:
        var = f"tb_{ch}"
        for k, p in enumerate(passes):
            s = value_stats(ds[var].values[k], variable=var, units="K")
            s["label"] = f"{n3.field_name(p, ch)}"
            stats.append(s)
    main = f"tb_{channels[0]}"
    out.update(main_variable=main, stats=value_stats(ds[main].values, variable=main, units="K",
                                                     over=f"all cells, passes {'+'.join(passes)}"),
               variable_stats=stats, passes=passes, channels=channels)
    return out


def _inspect_l2a(data: bytes, name: str, url: str, storage: Any) -> dict[str, Any]:
    from smray.formats import nsidc_l2a as l2a
    from smray.formats.nsidc_land3 import list_fields

    fields = list_fields(data, name=name)
    sw = l2a.read_l2a_swath(data, name=name)
    lat, lon, t = sw["lat"], sw["lon"], sw["time"]
    epoch = np.datetime64("1993-01-01T00:00:00", "s")
    valid_t = t[np.isfinite(t)]
    stamps = [epoch + np.timedelta64(int(round(v)), "s") for v in (valid_t.min(), valid_t.max())] if valid_t.size else []
    ok = np.isfinite(lat)
    grid = {"kind": f"swath {l2a.SWATH} (scans x pixels)", "shape": list(lat.shape),
            "lat_range": [float(np.nanmin(lat)), float(np.nanmax(lat))] if ok.any() else None,
            "lon_range": [float(np.nanmin(lon)), float(np.nanmax(lon))] if ok.any() else None}
    stats = []
    for ch, arr in sw["tb"].items():
        st = value_stats(arr, variable=f"tb_{ch.lower()}", units="K", over="all footprints")
        st["label"] = l2a.FIELDS[ch]
        stats.append(st)
    first = f"tb_{l2a.CHANNELS[0].lower()}"
    in_day = int(l2a.scans_in_day(sw, sw["date"]).sum())
    return {"variables": [{"name": k, "shape": list(s), "dtype": d} for k, (s, d) in fields.items()],
            "grid": grid,
            "read_as": {"kind": "smray grid (inverse-distance squared, 25 km radius, per pass and UTC day)",
                        "shape": [720, 1440], "res_deg": 0.25, "lat_order": "north first",
                        "lon_convention": "-180..180"},
            "time": {"steps": int(valid_t.size), "first": iso_time(stamps[0]) if stamps else None,
                     "last": iso_time(stamps[1]) if stamps else None},
            "main_variable": first, "stats": stats[0], "variable_stats": stats,
            "channels": [c.lower() for c in l2a.CHANNELS], "scans_in_named_day": in_day,
            "notes": [f"TB = raw x {l2a.SCALE:g} + {l2a.OFFSET:g} K; raw {l2a.FILL_RAW} = no data (assumed); "
                      f"Time = TAI93 seconds (assumed as AE_Land3); {in_day} of {t.size} scans on {sw['date']}"]}


def _inspect_nsidc_flat(data: bytes, name: str, url: str, storage: Any) -> dict[str, Any]:
    from smray.formats import ease, nsidc_flat as nf

    info = nf.parse_flat_name(name) or {}
    shape = nf.native_shape(info.get("product", ""), info.get("area", ""))
    if info.get("product") == nf.EASE:
        lat_e, _ = ease.edges()
        grid = {"kind": "EASE-Grid 1.0 global 25 km (EPSG:3410), cylindrical equal-area", "shape": list(shape),
                "cell_km": round(ease.cell_size_m() / 1000, 6), "lat_range": [float(lat_e[0]), float(lat_e[-1])],
                "lon_range": [-180.0, 180.0], "lat_order": "north first", "lon_convention": "-180..180",
                "registration": "cell edges"}
        how = "smray grid (area-weighted from EASE)"
    else:
        grid = {"kind": "regular lat/lon 0.25 deg (orientation assumed, unverified)", "shape": list(shape),
                "lat_range": [90.0, -90.0], "lon_range": [-180.0, 180.0], "lat_order": "north first",
                "lon_convention": "-180..180", "registration": "cell edges"}
        how = "smray grid (as stored)"
    out: dict[str, Any] = {"grid": grid, "channel": info.get("channel"), "version": info.get("version"),
                           "read_as": {"kind": how, "shape": [720, 1440], "res_deg": 0.25, "lat_order": "north first",
                                       "lon_convention": "-180..180"},
                           "time": times_of([info["date"]]) if info.get("date") else {"steps": 0}, "notes": []}
    if info.get("channel") == nf.TIME_EXT:
        values = nf.read_time(data, name=name)
        out["variables"] = [{"name": "time", "shape": list(shape), "dtype": "int16 (little-endian)"}]
        out.update(main_variable="time", stats=value_stats(values, variable="time", units="raw int16"))
        out["notes"].append("time file: raw int16 values (their unit is not verified against a real file)")
        return out
    values, _ = nf.read_flat_native(data, name=name)
    var = f"tb_{info['channel'].lower()}"
    out["variables"] = [{"name": var, "shape": list(shape), "dtype": "uint16 (little-endian)", "units": "0.1 K"}]
    out.update(main_variable=var, stats=value_stats(values, variable=var, units="K"))
    out["notes"].append("counts x 0.1 K; 0 = no data; needs its .TIM file beside it for ingest")
    return out


def _inspect_cci(data: bytes, name: str, url: str, storage: Any) -> dict[str, Any]:
    from smray.formats.cci import MODES, read_cci_sm, sensor_names

    overview = _netcdf_overview(data, name)
    ds = read_cci_sm(data, name=name)
    sm = ds.sm.values
    valid = np.isfinite(sm)
    stats = [value_stats(sm, variable="sm", units="m3 m-3")]
    if "sm_uncertainty" in ds:
        stats.append(value_stats(ds.sm_uncertainty.values, variable="sm_uncertainty", units="m3 m-3"))
    counts: dict[str, int] = {}
    if "sensor" in ds:
        codes, n = np.unique(ds.sensor.values[valid], return_counts=True)
        counts.update({f"sensor {sensor_names(c) or c}": int(k) for c, k in zip(codes, n, strict=True)})
    if "mode" in ds:
        codes, n = np.unique(ds.mode.values[valid], return_counts=True)
        counts.update({f"mode {MODES.get(int(c), c)}": int(k) for c, k in zip(codes, n, strict=True)})
    return {**overview, "read_as": describe_smray_grid(ds, "as stored"), "main_variable": "sm",
            "stats": stats[0], "variable_stats": stats, "counts": counts}


def _inspect_era(data: bytes, name: str, url: str, storage: Any) -> dict[str, Any]:
    try:
        from smray.formats import era
    except ImportError as err:
        raise SmrayError(f"{name}: ERA reader not available ({err})") from None
    reader = getattr(era, "read_era_native", None)
    if reader is not None:
        ds = reader(data, daily=False)
        native = True
    else:
        ds = era.read_era(data, daily=False)
        native = False
    out: dict[str, Any] = {"notes": []}
    if container(data[:16]) in ("netcdf3", "hdf5"):
        out.update({k: v for k, v in _netcdf_overview(data, name).items() if k in ("variables", "file_attributes")})
    else:
        out["variables"] = variables_of(ds)
    lat_name = "latitude" if "latitude" in ds.coords else "lat"
    lon_name = "longitude" if "longitude" in ds.coords else "lon"
    lat, lon = ds[lat_name].values, ds[lon_name].values
    if native and "values" in ds.dims:
        ulat = np.unique(lat)[::-1]
        out["grid"] = {"kind": f"reduced Gaussian ({ds.attrs.get('native_grid', 'reduced_gg')}), "
                               f"{len(ulat)} latitude rows", "shape": [int(ds.sizes["values"])],
                       "lat_range": [float(ulat[0]), float(ulat[-1])],
                       "lon_range": [float(np.min(lon)), float(np.max(lon))], "lat_order": "north first",
                       "lon_convention": "0..360" if np.max(lon) > 180 else "-180..180"}
    else:
        out["grid"] = describe_latlon(lat, lon)
    out["read_as"] = {"kind": "smray grid (regridded by read_era)", "shape": [720, 1440], "res_deg": 0.25,
                      "lat_order": "north first", "lon_convention": "-180..180"}
    out["time"] = times_of(ds["time"].values) if "time" in ds.coords else {"steps": 0}
    var = "swvl1" if "swvl1" in ds else next(iter(ds.data_vars))
    masked = bool(ds.attrs.get("ocean_masked"))
    over = "land (lsm >= 0.5)" if masked else "all cells (no land-sea mask in the file)"
    land = (np.asarray(ds["lsm"].values) >= 0.5) if masked else None

    def stats_of(values: np.ndarray) -> dict[str, Any]:
        return value_stats(values, variable=var, units=ds[var].attrs.get("units"), over=over, mask=land)

    main = stats_of(ds[var].values)
    stats = [main]
    if "time" in ds[var].dims and ds.sizes["time"] > 1:
        for k in range(ds.sizes["time"]):
            s = stats_of(ds[var].isel(time=k).values)
            s["label"] = f"{var} @ {iso_time(ds['time'].values[k])}"
            stats.append(s)
    if "lsm" in ds:
        lsm = np.asarray(ds["lsm"].values)
        out.setdefault("counts", {})["land cells (lsm >= 0.5)"] = int(np.count_nonzero(lsm >= 0.5))
    out["notes"].append("unpacked (scale_factor/add_offset), fills masked, negatives clipped to 0"
                        + ("; ocean (lsm < 0.5) masked" if masked else ""))
    out.update(main_variable=var, stats=main, variable_stats=stats,
               era_product=ds.attrs.get("product"), source_format=ds.attrs.get("source_format"))
    return out


def _inspect_ismn(data: bytes, name: str, url: str, storage: Any) -> dict[str, Any]:
    try:
        from smray.formats.ismn import read_ismn_stm
    except ImportError as err:
        raise SmrayError(f"{name}: ISMN reader not available ({err})") from None
    try:
        result = read_ismn_stm(data, name=name)
    except TypeError:  # a reader without ``name``
        result = read_ismn_stm(data)
    import pandas as pd
    import xarray as xr

    if isinstance(result, tuple) and len(result) == 2:  # (header, table)
        header, table = (result if isinstance(result[1], (pd.DataFrame, xr.Dataset)) else result[::-1])
    else:
        table, header = result, getattr(result, "attrs", {})
    if isinstance(table, xr.Dataset):
        table = table.to_dataframe()
    if not isinstance(table, pd.DataFrame):
        raise SmrayError(f"{name}: ISMN reader returned {type(table).__name__}, expected a table")
    station = {k: v for k, v in dict(header or getattr(table, "attrs", {}) or {}).items()
               if isinstance(v, (str, int, float, np.integer, np.floating))}
    variables = [{"name": str(c), "dims": ["time"], "shape": [len(table)], "dtype": str(table[c].dtype)}
                 for c in table.columns]
    value_col = next((c for c in ("soil_moisture", "sm", "value", "swvl1") if c in table.columns),
                     next((c for c in table.columns if np.issubdtype(table[c].dtype, np.number)), None))
    idx = table.index if isinstance(table.index, pd.DatetimeIndex) else (
        pd.DatetimeIndex(table["time"]) if "time" in table.columns else None)
    out: dict[str, Any] = {"variables": variables, "station": station,
                           "grid": {"kind": "point", "lat": station.get("lat", station.get("latitude")),
                                    "lon": station.get("lon", station.get("longitude"))}}
    if idx is not None and len(idx):
        out["time"] = {"steps": len(idx), "first": iso_time(idx[0]), "last": iso_time(idx[-1])}
    if value_col is not None:
        out.update(main_variable=str(value_col),
                   stats=value_stats(table[value_col].to_numpy(dtype=np.float64), variable=str(value_col),
                                     units="m3 m-3", over="all time steps"))
    counts: dict[str, int] = {}
    if "good" in table.columns:
        counts["good (ISMN flag G/U)"] = int(table["good"].astype(bool).sum())
    flag_col = next((c for c in table.columns if "flag" in str(c).lower()), None)
    if flag_col is not None:
        vc = table[flag_col].astype(str).value_counts()
        counts.update({f"{flag_col} {k}": int(v) for k, v in vc.head(12).items()})
    if counts:
        out["counts"] = counts
    return out


def _inspect_generic(data: bytes, name: str, url: str, storage: Any) -> dict[str, Any]:
    kind = container(data[:HEAD_BYTES])
    if kind in ("netcdf3", "hdf5"):
        try:
            return _netcdf_overview(data, name, with_stats=True)
        except SmrayError:
            if kind != "hdf5":
                raise
        return _hdf5_overview(data, name)
    if kind == "hdf4":
        from smray.formats import nsidc_land3 as n3

        fields = n3.list_fields(data, name=name)
        return {"variables": [{"name": k, "shape": list(s), "dtype": d} for k, (s, d) in fields.items()]}
    if kind == "grib":
        return _inspect_era(data, name, url, storage)
    raise SmrayError(f"{name}: unrecognised file (not a known product name, and not netCDF, HDF5, HDF4 or GRIB)")


#: product id → inspector; register more (e.g. the twin truth reader) by adding entries.
INSPECTORS: dict[str, Inspector] = {
    "jaxa_l3_tb": _inspect_jaxa,
    "nsidc_ae_land3": _inspect_nsidc,
    "nsidc_0302": _inspect_nsidc_flat,
    "nsidc_0301": _inspect_nsidc_flat,
    "nsidc_ae_l2a": _inspect_l2a,
    "era_rda": _inspect_era,
    "esa_cci_sm": _inspect_cci,
    "era_grib": _inspect_era,
    "era_netcdf": _inspect_era,
    "ismn_stm": _inspect_ismn,
    "lprm_l3": _inspect_generic,
    "smray_twin_truth": _inspect_generic,
}


# --------------------------------------------------------------------------------------------
# generic netCDF / HDF5
# --------------------------------------------------------------------------------------------
_LAT_NAMES = ("lat", "latitude", "Latitude", "LAT", "nav_lat")
_LON_NAMES = ("lon", "longitude", "Longitude", "LON", "nav_lon")
_TIME_NAMES = ("time", "valid_time", "Time")


def _netcdf_overview(data: bytes, name: str, *, with_stats: bool = False) -> dict[str, Any]:
    """Variables (as stored), grid, time and, optionally, decoded stats of a netCDF file."""
    import netCDF4

    try:
        nc = netCDF4.Dataset(name, mode="r", memory=data)
    except Exception as err:
        raise SmrayError(f"{name}: not a readable netCDF file ({first_line(err, 160)})") from None
    out: dict[str, Any] = {"notes": []}
    try:
        with nc:
            variables = []
            for vname, v in nc.variables.items():
                variables.append({"name": vname, "dims": list(v.dimensions), "shape": list(v.shape),
                                  "dtype": str(v.dtype), "units": getattr(v, "units", None),
                                  "long_name": getattr(v, "long_name", None)})
                if getattr(v, "scale_factor", None) is not None:
                    variables[-1]["packed"] = {"scale_factor": float(v.scale_factor),
                                               "add_offset": float(getattr(v, "add_offset", 0.0))}
            out["variables"] = variables
            out["file_attributes"] = {k: _attr(nc.getncattr(k)) for k in nc.ncattrs()[:40]}
            lat = next((nc[n] for n in _LAT_NAMES if n in nc.variables and nc[n].ndim == 1), None)
            lon = next((nc[n] for n in _LON_NAMES if n in nc.variables and nc[n].ndim == 1), None)
            if lat is not None and lon is not None:
                out["grid"] = describe_latlon(lat[:], lon[:])
            tvar = next((nc[n] for n in _TIME_NAMES if n in nc.variables), None)
            out["time"] = _nc_times(tvar) if tvar is not None else {"steps": 0, "first": None, "last": None}
            if with_stats:
                skip = set(_LAT_NAMES) | set(_LON_NAMES) | set(_TIME_NAMES)
                cands = [n for n, v in nc.variables.items()
                         if n not in skip and v.ndim >= 2 and v.dtype.kind in "fiu"]
                stats = []
                for vname in cands:
                    v = nc[vname]
                    v.set_auto_maskandscale(True)
                    arr = np.ma.asarray(v[:]).astype(np.float64).filled(np.nan)
                    stats.append(value_stats(arr, variable=vname, units=getattr(v, "units", None)))
                if stats:
                    main = next((n for n in MAIN_VARIABLE_PRIORITY if n in cands),
                                max(cands, key=lambda n: nc[n].size))
                    out.update(main_variable=main, stats=next(s for s in stats if s["variable"] == main),
                               variable_stats=stats)
                    if lat is not None and lon is not None:
                        dims = nc[main].dimensions
                        if dims[-2:] == (lon.dimensions[0], lat.dimensions[0]):
                            out["notes"].append(f"{main} is stored (lon, lat): transpose to (lat, lon)")
    except SmrayError:
        raise
    except Exception as err:
        raise SmrayError(f"{name}: corrupt netCDF file ({first_line(err, 160)})") from None
    return out


def _nc_times(tvar: Any) -> dict[str, Any]:
    import netCDF4

    try:
        units = tvar.units.replace(" UTC", "")
        vals = netCDF4.num2date(np.asarray(tvar[:]).ravel(), units, getattr(tvar, "calendar", "standard"),
                                only_use_cftime_datetimes=False, only_use_python_datetimes=True)
        return times_of([dt.datetime(v.year, v.month, v.day, v.hour, v.minute, v.second) for v in vals])
    except Exception:
        return {"steps": int(tvar.size), "first": None, "last": None}


def _hdf5_overview(data: bytes, name: str) -> dict[str, Any]:
    import h5py

    variables: list[dict[str, Any]] = []
    try:
        with h5py.File(io.BytesIO(data), "r") as f:
            def visit(path: str, obj: Any) -> None:
                if isinstance(obj, h5py.Dataset):
                    variables.append({"name": path, "shape": list(obj.shape), "dtype": str(obj.dtype)})
            f.visititems(visit)
    except Exception as err:
        raise SmrayError(f"{name}: corrupt or unreadable HDF5 file ({first_line(err, 160)})") from None
    return {"variables": variables, "notes": ["HDF5 file of unknown layout: listing only"]}


# --------------------------------------------------------------------------------------------
# small helpers
# --------------------------------------------------------------------------------------------

def _attr(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist() if value.size <= 8 else f"<array {value.shape}>"
    if isinstance(value, str) and len(value) > 300:
        return value[:300] + "…"
    return value



def _size(n: Any) -> str:
    if not isinstance(n, int):
        return "? bytes"
    for unit in ("bytes", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return f"{n}"


def _num(x: Any, units: str | None = None) -> str:
    if x is None:
        return "n/a"
    return f"{x:.4g}"


def _grid_text(g: dict[str, Any]) -> str:
    parts = [str(g.get("kind", "grid"))]
    shape = g.get("shape")
    if shape:
        parts.append("x".join(str(n) for n in shape))
    if g.get("res_deg"):
        parts.append(f"{g['res_deg']:g} deg")
    elif g.get("res_lat_deg"):
        parts.append(f"{g['res_lat_deg']:g} x {g.get('res_lon_deg', 0):g} deg")
    if g.get("cell_km"):
        parts.append(f"{g['cell_km']:g} km cells")
    if g.get("lat_range"):
        parts.append(f"lat {g['lat_range'][0]:g} .. {g['lat_range'][1]:g}")
    if g.get("lon_range"):
        parts.append(f"lon {g['lon_range'][0]:g} .. {g['lon_range'][1]:g}")
    orient = [g[k] for k in ("lat_order", "lon_convention", "registration") if g.get(k)]
    if orient:
        parts.append("(" + ", ".join(orient) + ")")
    if g.get("kind") == "point":
        parts = [f"point at lat {g.get('lat')}, lon {g.get('lon')}"]
    return ", ".join(parts[:2]) + (", " + ", ".join(parts[2:]) if len(parts) > 2 else "")


def _stats_text(s: dict[str, Any]) -> str:
    units = f" {s['units']}" if s.get("units") else ""
    frac = s.get("valid_fraction")
    pct = f" ({100 * frac:.1f} %)" if frac is not None else ""
    return (f"min {_num(s.get('min'))}  mean {_num(s.get('mean'))}  max {_num(s.get('max'))}{units};  "
            f"valid {s.get('valid_count')} / {s.get('total_count')}{pct} over {s.get('over')}")
