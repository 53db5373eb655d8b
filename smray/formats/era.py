"""ERA-Interim / ERA5 volumetric soil water (``swvl1``, 0–7 cm, m³/m³): read and write.

Reading (:func:`read_era`) accepts every layout ECMWF has served swvl1 in:

* GRIB1/GRIB2 on a regular lat/lon or regular Gaussian grid (MARS, CDS ``format: grib``), via cfgrib;
  global, or an area retrieval (``area=N/W/S/E``: a smaller regular grid, NaN outside it once regridded);
* GRIB on the native reduced Gaussian grid (ERA-Interim N128, 88 838 points), via cfgrib;
* netCDF3 from ECMWF's legacy ``grib_to_netcdf`` (ERA-Interim web API, CDS before 2024): swvl1 int16
  packed with a per-file ``scale_factor``/``add_offset``, ``time`` in hours since 1900;
* netCDF4 from the 2024+ CDS converter (cfgrib based): ``valid_time`` in seconds since 1970, extra
  ``number``/``expver`` coordinates.

Whatever the layout, the analyses (4 a day, or ~124 in a monthly file) are averaged to daily means,
ocean points (``lsm`` < 0.5; ERA's ocean holds ≈0, not a fill value) are set to NaN, small negative
unpacking artefacts are clipped to 0, and the field is regridded to the smray cell-centre grid with
:mod:`smray.regrid` (bilinear, weights renormalised over land so ocean never bleeds into land).

Writing (:func:`write_era_netcdf`) produces the bytes of a file laid out exactly as ``grib_to_netcdf``
writes it (checked against the real ERA5 sample), so synthetic twins read through the same code path
as downloads.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import struct
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from smray.errors import SmrayError, first_line
from smray.grid import Grid
from smray.regrid import bilinear_to_grid, covered, lon_is_periodic, reduced_gaussian_to_grid
from smray.storage import filesystem, local_path, read_bytes

__all__ = ["write_era_netcdf", "read_era", "read_era_native", "regrid_era", "pack_int16",
           "ERA_TIME_UNITS", "ERA_FILL_INT16"]

#: ``time`` units exactly as grib_to_netcdf writes them (sic: seconds as "0.0").
ERA_TIME_UNITS = "hours since 1900-01-01 00:00:0.0"
#: Fill value of the int16-packed variables (``_FillValue`` = ``missing_value``).
ERA_FILL_INT16 = -32767
GRIB_TO_NETCDF = "grib_to_netcdf-2.6.0"
DEFAULT_HISTORY = "grib_to_netcdf smray_synthetic.grib -o smray_synthetic.nc -utime"

_EPOCH_1900 = np.datetime64("1900-01-01T00:00:00", "s")
_STAMP = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d GMT by ")

#: ECMWF MARS class → product name.
MARS_CLASS_PRODUCT = {"ei": "ERA-Interim", "ea": "ERA5", "l5": "ERA5-Land", "e4": "ERA-40"}

_SWVL_LONG_NAMES = {"swvl1": "Volumetric soil water layer 1", "swvl2": "Volumetric soil water layer 2",
                    "swvl3": "Volumetric soil water layer 3", "swvl4": "Volumetric soil water layer 4"}


# ==============================================================================================
# Writing: grib_to_netcdf layout
# ==============================================================================================
def pack_int16(values: np.ndarray) -> tuple[np.ndarray, float, float]:
    """Pack a float field into int16 exactly as grib_to_netcdf does (ecCodes ``compute_scale``).

    Over the finite values: ``scale = (max − min) / 65533`` and
    ``offset = ((max + min) − scale · (−32766 + 32767)) / 2``, so the minimum packs to −32766, the
    maximum to 32767 and −32767 stays free for the fill value (NaN); ``packed = rint((v − offset) /
    scale)``. A constant field packs to 0 with scale 1 (offset = the value); an all-NaN field to fill
    with scale 1, offset 0. Returns (packed int16 array of the same shape, scale_factor, add_offset).
    """
    shape = np.shape(values)
    v = np.asarray(values)
    v = v.reshape((1, -1)) if v.ndim < 2 else v
    vmin, vmax = np.inf, -np.inf
    for part in v:  # one leading slice at a time bounds the float64 temporaries
        part = np.asarray(part, dtype=np.float64)
        ok = np.isfinite(part)
        if ok.any():
            vmin = min(vmin, float(part.min(initial=np.inf, where=ok)))
            vmax = max(vmax, float(part.max(initial=-np.inf, where=ok)))
    packed = np.full(v.shape, ERA_FILL_INT16, dtype=np.int16)
    if vmin > vmax:  # no finite value
        return packed.reshape(shape), 1.0, 0.0
    scale = (vmax - vmin) / (32767.0 - -32766.0)
    offset = ((vmax + vmin) - scale * (-32766.0 + 32767.0)) / 2.0
    if vmax == vmin:
        scale = 1.0
    for i, part in enumerate(v):
        q = (np.asarray(part, dtype=np.float64) - offset) / scale
        ok = np.isfinite(q)
        np.rint(q, out=q)
        np.clip(q, -32766, 32767, out=q)
        packed[i] = np.where(ok, q, ERA_FILL_INT16)
    return packed.reshape(shape), scale, offset


def write_era_netcdf(swvl1: np.ndarray, times: np.ndarray, lat: np.ndarray, lon: np.ndarray, *,
                     lsm: np.ndarray | None = None, stl1: np.ndarray | None = None,
                     history: str = DEFAULT_HISTORY) -> bytes:
    """The bytes of a netCDF file laid out exactly as ECMWF's legacy ``grib_to_netcdf`` writes it.

    Parameters
    ----------
    swvl1 : float array (ntime, nlat, nlon), m³/m³; NaN is written as the fill value.
    times : datetime64 (ntime,), whole hours (stored as int32 hours since 1900-01-01).
    lat : (nlat,) degrees north, ERA order 90 → −90 (pole points included), or north first over an
        area retrieval's rows.
    lon : (nlon,) degrees east, ERA order 0 → 360−Δ, or increasing over an area retrieval's columns.
    lsm : optional land–sea mask (0–1), (nlat, nlon) or (ntime, nlat, nlon); written per time step
        like grib_to_netcdf does.
    stl1 : optional soil temperature level 1 (0–7 cm), K, (ntime, nlat, nlon) like ``swvl1``;
        written packed as ``stl1`` ("Soil temperature level 1", paramId 139) between swvl1 and lsm.
    history : the command part of the global ``history``; unless it already starts with a
        ``"YYYY-MM-DD HH:MM:SS GMT by "`` stamp it is prefixed by one (the last analysis time, so the
        bytes depend only on the arguments) and ``grib_to_netcdf-2.6.0:``.

    Layout: NETCDF3_64BIT_OFFSET; dims ``longitude``, ``latitude``, ``time`` (unlimited); float32
    ``longitude``/``latitude``; int32 ``time``; ``swvl1`` (and ``lsm``) int16 (time, latitude,
    longitude) with float64 ``scale_factor``/``add_offset`` (see :func:`pack_int16`), int16
    ``_FillValue`` = ``missing_value`` = −32767, in the attribute order of the real files.
    """
    data = _as_float(swvl1)
    lat = np.asarray(lat, dtype=np.float64)
    lon = np.asarray(lon, dtype=np.float64)
    times = np.asarray(times)
    if data.ndim != 3:
        raise SmrayError(f"write_era_netcdf: swvl1 must be (time, latitude, longitude), got shape {data.shape}")
    nt, ny, nx = data.shape
    if lat.shape != (ny,) or lon.shape != (nx,) or times.shape != (nt,):
        raise SmrayError(f"write_era_netcdf: swvl1 shape {data.shape} does not match times {times.shape}, "
                         f"latitude {lat.shape}, longitude {lon.shape}")
    if not np.issubdtype(times.dtype, np.datetime64):
        raise SmrayError(f"write_era_netcdf: times must be datetime64, got {times.dtype}")
    hours = (times.astype("datetime64[s]") - _EPOCH_1900) / np.timedelta64(1, "h")
    if nt and not np.allclose(hours, np.round(hours), rtol=0, atol=1e-9):
        raise SmrayError("write_era_netcdf: times must fall on whole hours (int32 hours since 1900)")

    if not _STAMP.match(history):
        stamp = (np.datetime_as_string(times.astype("datetime64[s]").max(), unit="s").replace("T", " ")
                 if nt else "1900-01-01 00:00:00")
        history = f"{stamp} GMT by {GRIB_TO_NETCDF}: {history}"

    packed, scale, offset = pack_int16(data)
    variables: list[_NcVar] = [
        _NcVar("longitude", ("longitude",), np.dtype(">f4"), lon.astype(np.float32),
               [("units", "degrees_east"), ("long_name", "longitude")]),
        _NcVar("latitude", ("latitude",), np.dtype(">f4"), lat.astype(np.float32),
               [("units", "degrees_north"), ("long_name", "latitude")]),
        _NcVar("time", ("time",), np.dtype(">i4"), np.round(hours).astype(np.int32),
               [("units", ERA_TIME_UNITS), ("long_name", "time"), ("calendar", "gregorian")]),
        _NcVar("swvl1", ("time", "latitude", "longitude"), np.dtype(">i2"), packed,
               _packed_attrs(scale, offset, "m**3 m**-3", "Volumetric soil water layer 1")),
    ]
    if stl1 is not None:
        temp = _as_float(stl1)
        if temp.shape != data.shape:
            raise SmrayError(f"write_era_netcdf: stl1 shape {temp.shape} differs from swvl1 {data.shape}")
        tpacked, tscale, toffset = pack_int16(temp)
        variables.append(_NcVar("stl1", ("time", "latitude", "longitude"), np.dtype(">i2"), tpacked,
                                _packed_attrs(tscale, toffset, "K", "Soil temperature level 1")))
    if lsm is not None:
        mask = _as_float(lsm)
        if mask.shape == (ny, nx):  # packing is elementwise: pack once, repeat per time step
            lpacked, lscale, loffset = pack_int16(mask)
            lpacked = np.broadcast_to(lpacked, (nt, ny, nx))
        elif mask.shape == (nt, ny, nx):
            lpacked, lscale, loffset = pack_int16(mask)
        else:
            raise SmrayError(f"write_era_netcdf: lsm shape {mask.shape} is neither (latitude, longitude) "
                             f"nor (time, latitude, longitude) of swvl1 {data.shape}")
        variables.append(_NcVar("lsm", ("time", "latitude", "longitude"), np.dtype(">i2"), lpacked,
                                _packed_attrs(lscale, loffset, "(0 - 1)", "Land-sea mask")
                                + [("standard_name", "land_binary_mask")]))
    dims = [("longitude", nx), ("latitude", ny), ("time", None)]
    return _netcdf3_bytes(dims, [("Conventions", "CF-1.6"), ("history", history)], variables, numrecs=nt)


def _as_float(values: np.ndarray) -> np.ndarray:
    """A float array with masked entries (numpy masked arrays, e.g. from netCDF4) as NaN."""
    if np.ma.isMaskedArray(values):
        return np.ma.filled(np.ma.asarray(values).astype(np.float64), np.nan)
    arr = np.asarray(values)
    return arr if np.issubdtype(arr.dtype, np.floating) else arr.astype(np.float64)


def _packed_attrs(scale: float, offset: float, units: str, long_name: str) -> list[tuple[str, Any]]:
    return [("scale_factor", np.float64(scale)), ("add_offset", np.float64(offset)),
            ("_FillValue", np.int16(ERA_FILL_INT16)), ("missing_value", np.int16(ERA_FILL_INT16)),
            ("units", units), ("long_name", long_name)]


# --- a minimal netCDF3 (64-bit offset) writer: full control of dimension and attribute order -----
@dataclass
class _NcVar:
    name: str
    dims: tuple[str, ...]
    dtype: np.dtype  # big-endian
    data: np.ndarray
    attrs: list[tuple[str, Any]] = field(default_factory=list)


_NC_TYPE = {np.dtype(">i1"): 1, np.dtype(">i2"): 3, np.dtype(">i4"): 4, np.dtype(">f4"): 5, np.dtype(">f8"): 6}


def _pad4(b: bytes) -> bytes:
    return b + b"\0" * (-len(b) % 4)


def _nc_name(name: str) -> bytes:
    raw = name.encode("utf-8")
    return struct.pack(">i", len(raw)) + _pad4(raw)


def _nc_attr(name: str, value: Any) -> bytes:
    if isinstance(value, str):
        raw = value.encode("utf-8")
        return _nc_name(name) + struct.pack(">ii", 2, len(raw)) + _pad4(raw)
    arr = np.atleast_1d(np.asarray(value))
    dt = arr.dtype.newbyteorder(">")
    if dt not in _NC_TYPE:
        raise TypeError(f"netCDF3 attribute {name}: unsupported type {arr.dtype}")
    return _nc_name(name) + struct.pack(">ii", _NC_TYPE[dt], arr.size) + _pad4(arr.astype(dt).tobytes())


def _nc_attr_list(attrs: list[tuple[str, Any]]) -> bytes:
    if not attrs:
        return b"\0" * 8
    return struct.pack(">ii", 0x0C, len(attrs)) + b"".join(_nc_attr(k, v) for k, v in attrs)


def _netcdf3_bytes(dims: list[tuple[str, int | None]], gattrs: list[tuple[str, Any]],
                   variables: list[_NcVar], *, numrecs: int) -> bytes:
    """Serialise a netCDF3 64-bit-offset file (CDF\\x02); ``None`` marks the record dimension.

    Data follow the header directly (like the ECMWF files): non-record variables in order, then
    ``numrecs`` records holding one slice of every record variable, each padded to 4 bytes.
    """
    dim_ids = {name: i for i, (name, _) in enumerate(dims)}
    record_dim = next((name for name, size in dims if size is None), None)
    is_rec = [bool(v.dims) and v.dims[0] == record_dim for v in variables]
    slice_bytes = []
    for v, rec in zip(variables, is_rec):
        shape = [s for (n, s) in (dims[dim_ids[d]] for d in v.dims[1 if rec else 0:])]
        slice_bytes.append(int(np.prod(shape, dtype=np.int64)) * v.dtype.itemsize)
    vsizes = [n + (-n % 4) for n in slice_bytes]
    single_rec = sum(is_rec) == 1

    def header(begins: list[int]) -> bytes:
        out = [b"CDF\x02", struct.pack(">i", numrecs)]
        out.append(struct.pack(">ii", 0x0A, len(dims)) if dims else b"\0" * 8)
        for name, size in dims:
            out.append(_nc_name(name) + struct.pack(">i", 0 if size is None else size))
        out.append(_nc_attr_list(gattrs))
        out.append(struct.pack(">ii", 0x0B, len(variables)) if variables else b"\0" * 8)
        for v, vsize, begin in zip(variables, vsizes, begins):
            out.append(_nc_name(v.name) + struct.pack(">i", len(v.dims))
                       + b"".join(struct.pack(">i", dim_ids[d]) for d in v.dims))
            out.append(_nc_attr_list(v.attrs))
            out.append(struct.pack(">iiq", _NC_TYPE[v.dtype], vsize, begin))
        return b"".join(out)

    head_len = len(header([0] * len(variables)))
    begins, pos = [0] * len(variables), head_len
    for i, rec in enumerate(is_rec):
        if not rec:
            begins[i], pos = pos, pos + vsizes[i]
    for i, rec in enumerate(is_rec):
        if rec:
            begins[i] = pos
            pos += slice_bytes[i] if single_rec else vsizes[i]

    body = io.BytesIO()
    body.write(header(begins))
    for v, rec, vsize in zip(variables, is_rec, vsizes):
        if not rec:
            raw = np.ascontiguousarray(v.data, dtype=v.dtype).tobytes()
            body.write(raw + b"\0" * (vsize - len(raw)))
    rec_vars = [(v, vsize, nb) for v, rec, vsize, nb in zip(variables, is_rec, vsizes, slice_bytes) if rec]
    for r in range(numrecs):
        for v, vsize, nb in rec_vars:
            raw = np.ascontiguousarray(v.data[r], dtype=v.dtype).tobytes()
            body.write(raw if single_rec else raw + b"\0" * (vsize - nb))
    return body.getvalue()


# ==============================================================================================
# Reading
# ==============================================================================================
#: Reads time steps ``idx`` (int array into the file's time axis) as float64 (len(idx), *spatial).
TakeFn = Callable[[np.ndarray], np.ndarray]


@dataclass
class _Native:
    """One variable on its native grid, read lazily one day at a time.

    ``take(idx)`` gives float64 (len(idx), nlat, nlon) for regular grids or (len(idx), npoints) for
    reduced Gaussian grids, NaN = missing; times datetime64[ns] (ntime,); lat/lon (nlat,)/(nlon,) or
    (npoints,) each; lsm like one time step, or None. ``attrs['product']`` None = guess from values.
    """

    take: TakeFn
    times: np.ndarray
    lat: np.ndarray
    lon: np.ndarray
    lsm: np.ndarray | None
    reduced: bool
    attrs: dict[str, Any]


def read_era(source: str | os.PathLike | bytes, *, grid: Grid | None = None, daily: bool = True,
             variable: str = "swvl1") -> xr.Dataset:
    """Read ERA-Interim/ERA5 soil water from GRIB or netCDF onto the smray grid.

    ``source`` is a path, an fsspec URL (``s3://``, ``memory://``, ``file://``) or the file's bytes;
    the format is told by its magic bytes (``GRIB``, ``CDF``, ``\\x89HDF``). With ``daily`` the
    analyses are averaged per UTC day (``time`` = the day at 00:00, coordinate ``n_analyses`` = how
    many were averaged). Ocean points (``lsm`` < 0.5, when the file holds ``lsm``) are NaN; negative
    unpacking artefacts are clipped to 0. The result is regridded to ``grid`` (default the global
    0.25° grid, 720 × 1440) with :func:`regrid_era`.

    Returns a Dataset with ``<variable>`` float32 (time, lat, lon) in m³/m³, ``lsm`` float32
    (lat, lon) when present, and attrs ``source``, ``product`` (ERA-Interim / ERA5 / unknown: a guess
    for netCDF), ``source_format``, ``native_grid``, ``regrid_method``, ``ocean_masked``.
    Raises :class:`SmrayError` (one line, naming the file) for truncated/corrupt files, a missing
    variable, an unexpected grid, or an area retrieval whose area holds no cell of ``grid``.
    """
    return regrid_era(read_era_native(source, daily=daily, variable=variable), grid or Grid(0.25))


def read_era_native(source: str | os.PathLike | bytes, *, daily: bool = True,
                    variable: str = "swvl1") -> xr.Dataset:
    """Like :func:`read_era` but on the file's own grid (no regridding).

    Regular grids give ``<variable>`` (time, latitude, longitude) with the file's orientation and
    longitude convention; reduced Gaussian grids give (time, values) with ``latitude``/``longitude``
    coordinates per point. float64, m³/m³, ocean NaN, clipped to ≥ 0.
    """
    name, data, path = _open_source(source)
    magic = data[:8] if data is not None else _head(path, 8)
    with contextlib.ExitStack() as stack:  # open files/temp copies live until the days are read
        if magic.startswith(b"GRIB"):
            if path is None:
                tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="smray-era-"))
                path = os.path.join(tmp, "source.grib")  # eccodes needs a real file
                with open(path, "wb") as fh:
                    fh.write(data)  # type: ignore[arg-type]
            nat = _read_grib(name, path, variable, stack)
        elif magic.startswith(b"CDF") or magic.startswith(b"\x89HDF"):
            if data is None:
                data = Path(path).read_bytes()  # type: ignore[arg-type]
            nat = _read_netcdf(name, data, variable, stack)
        else:
            raise SmrayError(f"{name}: not a GRIB or netCDF file (starts with {magic[:4]!r})")
        nat.attrs["source"] = name
        return _finish_native(nat, variable, daily)


# --- sources ------------------------------------------------------------------------------------
def _open_source(source: str | os.PathLike | bytes) -> tuple[str, bytes | None, str | None]:
    """(display name, bytes or None, local path or None) for a path, URL or bytes."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        if not data:
            raise SmrayError("<bytes>: empty input, not a GRIB or netCDF file")
        return "<bytes>", data, None
    url = os.fspath(source)
    path = local_path(url)
    if path is not None:
        if not os.path.isfile(path):
            raise SmrayError(f"{url}: file not found")
        if os.path.getsize(path) == 0:
            raise SmrayError(f"{url}: empty file, not a GRIB or netCDF file")
        return url, None, path
    try:
        fs, fpath = filesystem(url)
        data = read_bytes(fs, fpath)
    except FileNotFoundError:
        raise SmrayError(f"{url}: file not found") from None
    except SmrayError:
        raise
    except Exception as err:  # noqa: BLE001 - storage backends raise many kinds
        raise SmrayError(f"{url}: cannot read ({type(err).__name__}: {first_line(err)})") from None
    if not data:
        raise SmrayError(f"{url}: empty file, not a GRIB or netCDF file")
    return url, data, None


def _head(path: str | None, n: int) -> bytes:
    assert path is not None
    with open(path, "rb") as fh:
        return fh.read(n)


# --- GRIB ---------------------------------------------------------------------------------------
_GRIB_GRIDS = ("regular_ll", "regular_gg", "reduced_gg")


def _scan_grib(name: str, path: str) -> list[dict[str, Any]]:
    """Header keys of every message; SmrayError when a message is truncated or bytes are left over."""
    import eccodes

    keys = ("shortName", "gridType", "marsClass", "edition", "totalLength", "offset", "numberOfValues")
    out: list[dict[str, Any]] = []
    size = os.path.getsize(path)
    with open(path, "rb") as fh:
        while True:
            try:
                h = eccodes.codes_grib_new_from_file(fh)
            except Exception as err:  # noqa: BLE001 - eccodes raises GribInternalError subclasses
                raise SmrayError(f"{name}: truncated or corrupt GRIB after {len(out)} message(s) "
                                 f"({type(err).__name__})") from None
            if h is None:
                break
            try:
                msg = {}
                for k in keys:
                    try:
                        msg[k] = eccodes.codes_get(h, k)
                    except Exception:  # noqa: BLE001 - key absent in this edition/grid
                        msg[k] = None
                out.append(msg)
            finally:
                eccodes.codes_release(h)
    if not out:
        raise SmrayError(f"{name}: no GRIB message could be decoded (truncated or corrupt)")
    end = max(int(m["offset"] or 0) + int(m["totalLength"] or 0) for m in out)
    if end > size:
        raise SmrayError(f"{name}: truncated GRIB (last message needs {end} bytes, file has {size})")
    if end < size:
        with open(path, "rb") as fh:
            fh.seek(end)
            rest = fh.read()
        if rest.strip(b"\0"):
            raise SmrayError(f"{name}: {len(rest)} bytes after the last complete GRIB message "
                             f"(truncated or corrupt message)")
    return out


def _read_grib(name: str, path: str, variable: str, stack: contextlib.ExitStack) -> _Native:
    msgs = _scan_grib(name, path)
    names = sorted({str(m["shortName"]) for m in msgs})
    mine = [m for m in msgs if m["shortName"] == variable]
    if not mine:
        raise SmrayError(f"{name}: no {variable} in the GRIB file (found {', '.join(names)})")
    grids = {m["gridType"] for m in mine}
    if len(grids) != 1 or next(iter(grids)) not in _GRIB_GRIDS:
        raise SmrayError(f"{name}: unexpected grid {'/'.join(sorted(map(str, grids)))} for {variable} "
                         f"(expected one of {', '.join(_GRIB_GRIDS)})")
    if len({m["numberOfValues"] for m in mine}) != 1:
        raise SmrayError(f"{name}: {variable} messages are on grids of different sizes")
    grid_type = next(iter(grids))
    classes = {m["marsClass"] for m in msgs if m["marsClass"]}
    product = MARS_CLASS_PRODUCT.get(next(iter(classes)), "unknown") if len(classes) == 1 else "unknown"

    take, times, lat, lon = _cfgrib_field(name, path, variable, grid_type, stack)
    lsm = None
    if "lsm" in names and variable != "lsm":
        lmsgs = [m for m in msgs if m["shortName"] == "lsm"]
        if lmsgs[0]["gridType"] == grid_type and lmsgs[0]["numberOfValues"] == mine[0]["numberOfValues"]:
            ltake, _, llat, llon = _cfgrib_field(name, path, "lsm", grid_type, stack)
            if llat.shape == lat.shape and np.allclose(llat, lat) and np.allclose(llon, lon):
                lsm = ltake(np.array([0]))[0]
    editions = sorted({int(m["edition"]) for m in mine if m["edition"]})
    return _Native(take, times, lat, lon, lsm, grid_type == "reduced_gg",
                   {"product": product,
                    "source_format": f"GRIB{'/'.join(map(str, editions))}",
                    "native_grid": grid_type})


def _guarded(name: str, what: str, fn: TakeFn) -> TakeFn:
    """``fn`` with decoding errors (met while reading lazily) turned into one-line SmrayErrors."""
    def take(idx: np.ndarray) -> np.ndarray:
        try:
            return fn(idx)
        except SmrayError:
            raise
        except Exception as err:  # noqa: BLE001 - cfgrib/eccodes/netCDF backends raise many kinds
            raise SmrayError(f"{name}: cannot decode {what} ({type(err).__name__}: {first_line(err)})") from None
    return take


def _cfgrib_field(name: str, path: str, short_name: str, grid_type: str, stack: contextlib.ExitStack
                  ) -> tuple[TakeFn, np.ndarray, np.ndarray, np.ndarray]:
    """(take, times (ntime,), lat, lon) of one shortName, read lazily by cfgrib."""
    try:
        ds = xr.open_dataset(path, engine="cfgrib", decode_timedelta=True,
                             backend_kwargs={"filter_by_keys": {"shortName": short_name}, "indexpath": ""})
    except Exception as err:  # noqa: BLE001 - cfgrib/eccodes raise many kinds
        raise SmrayError(f"{name}: cannot decode {short_name} from GRIB ({type(err).__name__}: "
                         f"{first_line(err)})") from None
    stack.callback(ds.close)
    da = ds[short_name]
    spatial = ("values",) if "values" in da.dims else ("latitude", "longitude")
    if any(d not in da.dims for d in spatial):
        raise SmrayError(f"{name}: unexpected {grid_type} layout for {short_name} (dims {da.dims})")
    other = [d for d in da.dims if d not in spatial]
    if any(d not in ("time", "step") for d in other):
        raise SmrayError(f"{name}: unexpected dimension(s) {other} for {short_name} (an ensemble?)")
    lat = np.asarray(da["latitude"].values, dtype=np.float64)
    lon = np.asarray(da["longitude"].values, dtype=np.float64)
    vt = da["valid_time"] if "valid_time" in da.coords else da["time"]
    if len(other) <= 1:  # analyses: one message per time step, read only the steps asked for
        if not other:
            da = da.expand_dims("sample")
            other = ["sample"]
        dim = other[0]
        da = da.transpose(dim, *spatial)
        times = np.atleast_1d(np.asarray(vt.values, dtype="datetime64[ns]"))
        take = _guarded(name, short_name, lambda idx: np.asarray(da.isel({dim: idx}).values, dtype=np.float64))
        return take, times, lat, lon
    da = da.transpose(*other, *spatial)  # forecasts (time × step): load and flatten
    arr = _guarded(name, short_name, lambda _: np.asarray(da.values))(np.array([0]))
    arr = arr.reshape((-1,) + tuple(da.sizes[d] for d in spatial))
    times = np.asarray(vt.broadcast_like(da.isel({d: 0 for d in spatial}, drop=True)).transpose(*other).values,
                       dtype="datetime64[ns]").reshape(-1)
    return (lambda idx: arr[idx].astype(np.float64)), times, lat, lon


# --- netCDF -------------------------------------------------------------------------------------
_TIME_NAMES = ("time", "valid_time")
_LAT_NAMES = ("latitude", "lat")
_LON_NAMES = ("longitude", "lon")


def _open_netcdf(name: str, data: bytes, stack: contextlib.ExitStack) -> xr.Dataset:
    """Decoded (mask/scale, CF times), lazily read dataset from netCDF3 or netCDF4 bytes."""
    try:
        if data.startswith(b"CDF\x01") or data.startswith(b"CDF\x02"):
            # scipy reads every byte it maps, so a truncated file fails here instead of yielding zeros
            # (the netCDF-C library silently returns zeros past the end of a truncated netCDF3 file).
            ds = xr.open_dataset(io.BytesIO(data), engine="scipy", decode_timedelta=False)
        elif data.startswith(b"CDF"):
            import netCDF4

            nc = netCDF4.Dataset("inmemory.nc", memory=data)
            ds = xr.open_dataset(xr.backends.NetCDF4DataStore(nc), decode_timedelta=False)
        else:
            ds = xr.open_dataset(io.BytesIO(data), engine="h5netcdf", decode_timedelta=False)
    except Exception as err:  # noqa: BLE001 - backends raise OSError/ValueError/KeyError/...
        raise SmrayError(f"{name}: truncated or corrupt netCDF ({type(err).__name__}: "
                         f"{first_line(err)})") from None
    stack.callback(ds.close)
    return ds


def _read_netcdf(name: str, data: bytes, variable: str, stack: contextlib.ExitStack) -> _Native:
    ds = _open_netcdf(name, data, stack)
    if variable not in ds.data_vars:
        raise SmrayError(f"{name}: no {variable} variable in the netCDF file "
                         f"(found {', '.join(map(str, ds.data_vars)) or 'none'})")
    lat_name = next((n for n in _LAT_NAMES if n in ds.variables), None)
    lon_name = next((n for n in _LON_NAMES if n in ds.variables), None)
    if lat_name is None or lon_name is None:
        raise SmrayError(f"{name}: unexpected grid, no latitude/longitude coordinates")
    try:
        lat = np.asarray(ds[lat_name].values, dtype=np.float64)
        lon = np.asarray(ds[lon_name].values, dtype=np.float64)
    except Exception as err:  # noqa: BLE001 - lazy backends fail here on truncated files
        raise SmrayError(f"{name}: truncated or corrupt netCDF ({type(err).__name__}: "
                         f"{first_line(err)})") from None
    if lat.ndim != 1 or lon.ndim != 1 or lat.size < 2 or lon.size < 2:
        raise SmrayError(f"{name}: unexpected grid, latitude/longitude must be 1-D with ≥2 points "
                         f"(got {lat.shape}, {lon.shape})")
    if not (_monotonic(lat) and _monotonic(lon)) or np.abs(lat).max() > 90.0 + 1e-6:
        raise SmrayError(f"{name}: unexpected grid, latitude/longitude are not monotonic degree axes")
    take, times = _netcdf_field(name, ds, variable, lat_name, lon_name)
    lsm = None
    if "lsm" in ds.data_vars and variable != "lsm":
        lsm = _netcdf_lsm(name, ds, lat_name, lon_name)
    layout = "CDS netCDF4 (2024+)" if "valid_time" in ds.variables else "grib_to_netcdf"
    return _Native(take, times, lat, lon, lsm, False,
                   {"product": _netcdf_product(ds),
                    "source_format": f"{'netCDF3' if data.startswith(b'CDF') else 'netCDF4'} {layout}",
                    "native_grid": "regular_ll"})


def _monotonic(x: np.ndarray) -> bool:
    d = np.diff(x)
    return bool(np.all(d > 0) or np.all(d < 0))


def _netcdf_field(name: str, ds: xr.Dataset, var: str, lat_name: str, lon_name: str
                  ) -> tuple[TakeFn, np.ndarray]:
    """(take, times datetime64[ns] (ntime,)) of one variable on (time, lat, lon)."""
    da = ds[var]
    if lat_name not in da.dims or lon_name not in da.dims:
        raise SmrayError(f"{name}: {var} is not on the latitude/longitude grid (dims {da.dims})")
    tdim = next((d for d in _TIME_NAMES if d in da.dims), None)
    if tdim is None:
        tcoord = next((c for c in _TIME_NAMES if c in da.coords and da[c].ndim == 0), None)
        if tcoord is None:
            raise SmrayError(f"{name}: {var} has no time coordinate (time or valid_time)")
        da = da.expand_dims(tcoord)
        tdim = tcoord
    for d in [d for d in da.dims if d not in (tdim, lat_name, lon_name)]:
        if d == "expver" and da.sizes[d] > 1:
            # ERA5/ERA5T mix of the old CDS: each time step is valid in exactly one expver
            da = _guarded(name, var, lambda _: da.max("expver", skipna=True).load())(np.array([0]))
        elif da.sizes[d] == 1:
            da = da.isel({d: 0}, drop=True)
        else:
            raise SmrayError(f"{name}: unexpected dimension {d!r} (size {da.sizes[d]}) in {var}")
    da = da.transpose(tdim, lat_name, lon_name)
    times = da[tdim].values
    if not np.issubdtype(times.dtype, np.datetime64):
        raise SmrayError(f"{name}: cannot decode the {tdim} coordinate to dates "
                         f"(units {ds[tdim].attrs.get('units', '?')!r})")
    take = _guarded(name, var, lambda idx: np.asarray(da.isel({tdim: idx}).values, dtype=np.float64))
    return take, times.astype("datetime64[ns]")


def _netcdf_lsm(name: str, ds: xr.Dataset, lat_name: str, lon_name: str) -> np.ndarray | None:
    """The land-sea mask (lat, lon) from its first time step (it is invariant); None if off-grid."""
    da = ds["lsm"]
    if lat_name not in da.dims or lon_name not in da.dims:
        return None
    da = da.isel({d: 0 for d in da.dims if d not in (lat_name, lon_name)}).transpose(lat_name, lon_name)
    return _guarded(name, "lsm", lambda _: np.asarray(da.values, dtype=np.float64))(np.array([0]))


def _netcdf_product(ds: xr.Dataset) -> str | None:
    """A guess: netCDF keeps no MARS class. Stated names first, then the CDS-2024 converter (ERA5
    only); None leaves it to the value range (see :func:`_finish_native`)."""
    text = " ".join(str(ds.attrs.get(k, "")) for k in ("title", "history", "source", "product"))
    if re.search(r"ERA[-_ ]?Interim", text, re.I):
        return "ERA-Interim"
    if re.search(r"ERA5", text, re.I):
        return "ERA5"
    if "valid_time" in ds.variables:
        return "ERA5"
    return None


# --- common finishing ---------------------------------------------------------------------------
def _finish_native(nat: _Native, variable: str, daily: bool) -> xr.Dataset:
    """Read day by day: clip to ≥ 0, mask ocean (lsm < 0.5), average the analyses of each UTC day."""
    ocean = None
    if nat.lsm is not None and variable != "lsm":
        ocean = np.asarray(nat.lsm) < 0.5
    order = np.argsort(nat.times, kind="stable")
    stimes = nat.times[order]
    if daily:
        days, start, counts = np.unique(stimes.astype("datetime64[D]"), return_index=True, return_counts=True)
        groups = [order[s:s + n] for s, n in zip(start, counts)]
        times = days.astype("datetime64[ns]")
    else:
        groups = [order[i:i + 1] for i in range(order.size)]
        times, counts = stimes, np.ones(order.size, dtype=np.int64)
    spatial = (nat.lat.size,) if nat.reduced else (nat.lat.size, nat.lon.size)
    values = np.empty((len(groups),) + spatial, dtype=np.float64)
    for i, idx in enumerate(groups):
        block = nat.take(np.sort(idx))
        ok = np.isfinite(block)
        np.maximum(block, 0.0, out=block, where=ok)  # packing artefacts
        total = np.where(ok, block, 0.0).sum(axis=0)
        n = ok.sum(axis=0)
        values[i] = np.where(n > 0, total / np.maximum(n, 1), np.nan)
        if ocean is not None:
            values[i][ocean] = np.nan
    attrs = dict(nat.attrs)
    if attrs.get("product") is None:  # ERA-Interim's TESSEL saturates at 0.472 m³/m³; ERA5 goes above
        wettest = max((float(np.max(v, initial=0.0, where=np.isfinite(v))) for v in values), default=0.0)
        attrs["product"] = "ERA5" if wettest > 0.48 else "unknown"

    sdims = ("values",) if nat.reduced else ("latitude", "longitude")
    if nat.reduced:
        coords: dict[str, Any] = {"latitude": ("values", nat.lat), "longitude": ("values", nat.lon)}
    else:
        coords = {"latitude": nat.lat, "longitude": nat.lon}
    coords.update(time=times, n_analyses=("time", counts.astype(np.int16)))
    ds = xr.Dataset({variable: (("time", *sdims), values, _var_attrs(variable))}, coords=coords)
    if nat.lsm is not None:
        ds["lsm"] = (sdims, np.asarray(nat.lsm, dtype=np.float64), {"units": "1", "long_name": "Land-sea mask"})
    ds["n_analyses"].attrs["long_name"] = "number of analyses averaged"
    ds.attrs.update(attrs)
    ds.attrs["ocean_masked"] = int(ocean is not None)
    return ds


def _var_attrs(variable: str) -> dict[str, str]:
    if variable == "lsm":
        return {"units": "1", "long_name": "Land-sea mask"}
    return {"units": "m3 m-3", "long_name": _SWVL_LONG_NAMES.get(variable, variable)}


def regrid_era(native: xr.Dataset, grid: Grid) -> xr.Dataset:
    """Regrid a :func:`read_era_native` dataset to ``grid`` (cell centres, lat north-first, lon −180..180).

    Regular sources: bilinear in (lat, lon) (:func:`smray.regrid.bilinear_to_grid`), with longitude
    wrap-around for a global file; an area retrieval (MARS/CDS ``area``, a smaller regular grid) is
    regional: cells beyond its points (by more than half a spacing) are NaN, and a grid with no cell
    inside the area raises :class:`SmrayError` naming the file.
    Reduced Gaussian: linear along each Gaussian row, then linear between rows
    (:func:`smray.regrid.reduced_gaussian_to_grid`). In both, only valid (land, non-NaN) neighbours
    carry weight, renormalised; NaN where none is valid. ``lsm`` is interpolated the same way.
    """
    var = next(v for v in native.data_vars if "time" in native[v].dims)
    reduced = "values" in native[var].dims
    periodic = True
    if not reduced:  # an area retrieval (MARS/CDS area=N/W/S/E): regional, NaN outside its area
        lat, lon = native["latitude"].values, native["longitude"].values
        periodic = lon_is_periodic(lon)
        if not covered(lat, lon, grid).any():
            w, s, e, n = grid.bounds
            raise SmrayError(f"{native.attrs.get('source', '<bytes>')}: the file's area (latitude "
                             f"{lat.min():g}..{lat.max():g}, longitude {lon.min():g}..{lon.max():g}) covers no "
                             f"cell of the grid (W,S,E,N {w:g},{s:g},{e:g},{n:g})")

    def regrid(values: np.ndarray) -> np.ndarray:
        if reduced:
            return reduced_gaussian_to_grid(values, native["latitude"].values, native["longitude"].values, grid)
        return bilinear_to_grid(values, native["latitude"].values, native["longitude"].values, grid)

    data = {var: (("time", "lat", "lon"), regrid(native[var].values).astype(np.float32), dict(native[var].attrs))}
    if "lsm" in native and var != "lsm":
        data["lsm"] = (("lat", "lon"), regrid(native["lsm"].values).astype(np.float32), dict(native["lsm"].attrs))
    coords = {"time": native["time"].values, "lat": grid.lat, "lon": grid.lon,
              "n_analyses": ("time", native["n_analyses"].values, dict(native["n_analyses"].attrs))}
    ds = xr.Dataset(data, coords=coords, attrs=dict(native.attrs))
    ds["lat"].attrs.update(units="degrees_north", long_name="latitude of cell centre")
    ds["lon"].attrs.update(units="degrees_east", long_name="longitude of cell centre")
    ds.attrs["regrid_method"] = ("linear along Gaussian rows then between rows, land-renormalised" if reduced
                                 else "bilinear, land-renormalised, "
                                 + ("periodic in longitude" if periodic else "regional (NaN outside the file's area)"))
    ds.attrs["grid_res_deg"] = grid.res
    return ds
