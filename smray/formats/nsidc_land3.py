"""NSIDC AMSR-E/Aqua daily L3 land product AE_Land3, HDF-EOS2 / HDF4 (formats.md §b).

Files ``AMSR_E_L3_DailyLand_V06_YYYYMMDD.hdf`` (also ``B04``) hold two HDF-EOS2 grids,
``Ascending_Land_Grid`` and ``Descending_Land_Grid``, on the global EASE-Grid v1 (cylindrical
equal-area, 25 km, 586 rows × 1383 columns, row 0 north). Fields carry an ``A_``/``D_`` prefix;
the resampled brightness temperatures are ``A_TB06.9H (Res 1)``, ``A_TB06.9V (Res 1)``,
``A_TB10.7H (Res 1)`` … int16 in 0.1 K, with 9999 = gap between swaths and −9999 = no retrieval.

:func:`read_nsidc_land3` finds the fields by SDS name (the HDF-EOS2 structure metadata is not
needed) and resamples them to the canonical 0.25° grid by taking, for every 0.25° cell, the EASE
cell that contains its centre. Cells poleward of the EASE grid's ±86.72° edge are NaN.

HDF4 needs ``pyhdf``, an optional dependency: ``pip install smray[hdf4]``.
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
import re
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import xarray as xr

from smray.errors import SmrayError, first_line
from smray.formats.detect import basename, load_source, parse_date, source_name
from smray.grid import Grid
from smray.storage import local_path

# --- EASE-Grid v1, global "ML" 25 km (NSIDC) --------------------------------------------------
EARTH_RADIUS_KM = 6371.228  #: authalic sphere radius of EASE-Grid v1
CELL_KM = 25.067525  #: nominal cell size of the 25 km global grid
STANDARD_PARALLEL_DEG = 30.0  #: true-scale latitude of the global cylindrical equal-area projection
EASE_NROWS = 586
EASE_NCOLS = 1383
R0 = (EASE_NCOLS - 1) / 2  #: column of 0°E (cell centres at integer column indices) = 691.0
S0 = (EASE_NROWS - 1) / 2  #: row of the equator = 292.5
EASE_SHAPE = (EASE_NROWS, EASE_NCOLS)

GRIDS = {"A": "Ascending_Land_Grid", "D": "Descending_Land_Grid"}
#: smray channel code → frequency label in the field names
CHANNELS = {"06": "06.9", "10": "10.7", "18": "18.7", "23": "23.8", "36": "36.5", "89": "89.0"}
DEFAULT_CHANNELS = ("06h", "06v", "10h", "10v")
#: pyhdf SDC type codes → numpy dtype names (for listings)
_HDF_TYPES = {3: "uchar8", 4: "char8", 5: "float32", 6: "float64", 20: "int8", 21: "uint8", 22: "int16",
              23: "uint16", 24: "int32", 25: "uint32"}
SCALE = 0.1  #: K per count
GAP = 9999  #: between swaths
SCREENED = -9999  #: no retrieval


def field_name(pass_: str, channel: str) -> str:
    """The SDS name of a TB field, e.g. ``field_name("A", "06h") == "A_TB06.9H (Res 1)"``."""
    pass_ = pass_.upper()
    band, pol = channel[:2], channel[2:].upper()
    if pass_ not in GRIDS or band not in CHANNELS or pol not in ("H", "V"):
        raise SmrayError(f"AE_Land3 channel {pass_}/{channel!r}: expected pass A/D and a channel like "
                         f"'06h' (bands {', '.join(CHANNELS)}, pol h/v)")
    return f"{pass_}_TB{CHANNELS[band]}{pol} (Res 1)"


# --------------------------------------------------------------------------------------------
# EASE-Grid v1 global projection
# --------------------------------------------------------------------------------------------
def ease_forward(lat: np.ndarray, lon: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(row, col) fractional EASE-Grid v1 global 25 km coordinates of (lat, lon) in degrees.

    Cell centres sit at integer (row, col); row 0 is north, column 691 is 0°E.
    """
    c = math.cos(math.radians(STANDARD_PARALLEL_DEG))
    lam = np.deg2rad(((np.asarray(lon, dtype=np.float64) + 180.0) % 360.0) - 180.0)
    phi = np.deg2rad(np.asarray(lat, dtype=np.float64))
    col = R0 + EARTH_RADIUS_KM / CELL_KM * lam * c
    row = S0 - EARTH_RADIUS_KM / CELL_KM * np.sin(phi) / c
    return row, col


def ease_inverse(row: np.ndarray, col: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(lat, lon) in degrees of fractional EASE-Grid v1 global coordinates (NaN lat off the sphere)."""
    c = math.cos(math.radians(STANDARD_PARALLEL_DEG))
    sinphi = (S0 - np.asarray(row, dtype=np.float64)) * CELL_KM * c / EARTH_RADIUS_KM
    with np.errstate(invalid="ignore"):
        lat = np.rad2deg(np.arcsin(np.where(np.abs(sinphi) <= 1.0, sinphi, np.nan)))
    lon = np.rad2deg((np.asarray(col, dtype=np.float64) - R0) * CELL_KM / (EARTH_RADIUS_KM * c))
    return lat, lon


def ease_lat_edge() -> float:
    """Latitude of the outer edge of the grid (top of row 0), about 86.72°."""
    return float(ease_inverse(np.array(-0.5), np.array(0.0))[0])


@functools.lru_cache(maxsize=8)
def _ease_index(res: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For the global grid at ``res``: EASE row (nlat,), EASE col (nlon,) and inside mask (nlat,)."""
    g = Grid(res)
    rows_f, _ = ease_forward(g.lat, np.zeros(g.nlat))
    _, cols_f = ease_forward(np.zeros(g.nlon), g.lon)
    rows = np.floor(rows_f + 0.5).astype(np.int64)
    cols = np.clip(np.floor(cols_f + 0.5).astype(np.int64), 0, EASE_NCOLS - 1)
    inside = (rows >= 0) & (rows < EASE_NROWS)
    rows = np.clip(rows, 0, EASE_NROWS - 1)
    for a in (rows, cols, inside):
        a.setflags(write=False)
    return rows, cols, inside


def ease_to_grid(values: np.ndarray, grid: Grid | None = None) -> np.ndarray:
    """Nearest-EASE-cell resampling of (…, 586, 1383) ``values`` to ``grid`` (default 0.25° global).

    Each output cell takes the EASE cell containing its centre. EASE cells have constant width
    in longitude (0.2603°) and constant area, so they are narrower in latitude near the equator
    (0.195°) and wider near the poles. Rows poleward of ±86.72° are NaN.
    """
    grid = grid or Grid(0.25)
    values = np.asarray(values)
    if values.shape[-2:] != EASE_SHAPE:
        raise SmrayError(f"EASE-Grid field has shape {values.shape[-2:]}, expected {EASE_SHAPE}")
    rows, cols, inside = _ease_index(grid.res)
    r, c = grid.window
    rows, cols, inside = rows[r], cols[c], inside[r]
    out = values[..., rows[:, None], cols[None, :]].astype(np.float32 if values.dtype.kind != "f" else values.dtype)
    out[..., ~inside, :] = np.nan
    return out


def grid_to_ease(values: np.ndarray, grid: Grid | None = None) -> np.ndarray:
    """The inverse direction, for building test files: each EASE cell takes the value of the
    ``grid`` cell (global, default 0.25°) containing its centre. Shape (…, 586, 1383)."""
    grid = grid or Grid(0.25)
    values = np.asarray(values)
    if values.shape[-2:] != grid.global_shape:
        raise SmrayError(f"field has shape {values.shape[-2:]}, expected the global {grid.global_shape}")
    lat, _ = ease_inverse(np.arange(EASE_NROWS), np.zeros(EASE_NROWS))
    _, lon = ease_inverse(np.zeros(EASE_NCOLS), np.arange(EASE_NCOLS))
    i = np.clip(np.floor((90.0 - lat) / grid.res).astype(np.int64), 0, grid.global_nlat - 1)
    j = np.clip(np.floor((lon + 180.0) / grid.res).astype(np.int64), 0, grid.global_nlon - 1)
    return values[..., i[:, None], j[None, :]]


# --------------------------------------------------------------------------------------------
# HDF4 access
# --------------------------------------------------------------------------------------------
def _pyhdf():
    try:
        from pyhdf import SD
    except ImportError as err:
        raise ImportError("reading NSIDC AE_Land3 (HDF4) files needs pyhdf: pip install smray[hdf4]") from err
    return SD


def decode_counts(counts: np.ndarray) -> np.ndarray:
    """float32 K from int16 counts of 0.1 K; 9999 (swath gap) and −9999 (screened) → NaN."""
    counts = np.asarray(counts)
    out = (counts.astype(np.float64) / 10.0).astype(np.float32)
    out[(counts == GAP) | (counts == SCREENED)] = np.nan
    return out


@contextlib.contextmanager
def hdf4_local_path(source: Any, name: str | None = None) -> Iterator[str]:
    """A local file path for ``source`` (pyhdf opens paths only): local paths as they are, URLs
    and bytes through a temporary file that is removed afterwards."""
    label = source_name(source, name)
    if not isinstance(source, (bytes, bytearray, memoryview)):
        local = local_path(os.fspath(source))
        if local is not None:
            if not os.path.exists(local):
                raise SmrayError(f"{label}: file not found")
            yield local
            return
    data, _ = load_source(source, name=name)
    fd, tmp = tempfile.mkstemp(suffix=".hdf", prefix="smray-land3-")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        yield tmp
    finally:
        os.remove(tmp)


@contextlib.contextmanager
def open_hdf4(source: Any, name: str | None = None) -> Iterator[Any]:
    """An open pyhdf ``SD`` of ``source``, ended afterwards. One-line SmrayErrors naming the file: not
    readable as HDF4, or corrupt while the body reads it (the body's own SmrayErrors pass as they are)."""
    SD = _pyhdf()
    fname = basename(source_name(source, name))
    with hdf4_local_path(source, name) as local:
        try:
            sd = SD.SD(local, SD.SDC.READ)
        except Exception as err:  # pyhdf raises HDF4Error for anything unreadable
            raise SmrayError(f"{fname}: not a readable HDF4 file ({first_line(err, 160)})") from None
        try:
            yield sd
        except SmrayError:
            raise
        except Exception as err:
            raise SmrayError(f"{fname}: corrupt HDF4 file ({first_line(err, 160)})") from None
        finally:
            sd.end()


def list_fields(source: Any, *, name: str | None = None) -> dict[str, tuple[tuple[int, ...], str]]:
    """SDS name → (shape, numpy dtype name) of every dataset in an HDF4 file."""
    with open_hdf4(source, name) as sd:
        return {sds_name: (tuple(int(n) for n in np.atleast_1d(shape)), _HDF_TYPES.get(hdf_type, str(hdf_type)))
                for sds_name, (_dims, shape, hdf_type, _index) in sd.datasets().items()}


def channels_in(fields: Mapping[str, Any]) -> tuple[list[str], list[str]]:
    """(passes, channels) of the TB fields present in a :func:`list_fields` result, e.g.
    (["A", "D"], ["06h", "06v", "10h", "10v"]); only channels present for every pass listed."""
    found: dict[str, set[str]] = {}
    for sds_name in fields:
        m = re.fullmatch(r"([AD])_TB(\d\d)\.\d([HV]) \(Res 1\)", sds_name)
        if m and m.group(2) in CHANNELS:
            found.setdefault(m.group(1), set()).add(f"{m.group(2)}{m.group(3).lower()}")
    passes = sorted(found)
    common = set.intersection(*found.values()) if found else set()
    return passes, sorted(common)


def read_nsidc_land3_native(source: Any, *, passes: Sequence[str] = ("A", "D"),
                            channels: Sequence[str] = DEFAULT_CHANNELS, name: str | None = None) -> xr.Dataset:
    """The TB fields on their own EASE-Grid: ``tb_<channel>`` float32 K, dims (pass, row, col) =
    (len(passes), 586, 1383), coordinates ``lat`` (row) and ``lon`` (col) of the cell centres."""
    label = source_name(source, name)
    fname = basename(label)
    passes = [p.upper() for p in passes]
    channels = [c.lower() for c in channels]
    wanted = {(p, ch): field_name(p, ch) for p in passes for ch in channels}
    raw: dict[tuple[str, str], np.ndarray] = {}
    with open_hdf4(source, name) as sd:
        available = sd.datasets()
        for key, sds_name in wanted.items():
            if sds_name not in available:
                tbs = sorted(n for n in available if "_TB" in n)
                raise SmrayError(f"{fname}: field {sds_name!r} not found "
                                 f"(TB fields present: {', '.join(tbs) or 'none'})")
            sds = sd.select(sds_name)
            try:
                arr = np.asarray(sds[:])
            finally:
                sds.endaccess()
            if arr.shape != EASE_SHAPE:
                raise SmrayError(f"{fname}: field {sds_name!r} has shape {arr.shape}, "
                                 f"expected EASE-Grid {EASE_SHAPE}")
            raw[key] = arr
    lat, _ = ease_inverse(np.arange(EASE_NROWS), np.zeros(EASE_NROWS))
    _, lon = ease_inverse(np.zeros(EASE_NCOLS), np.arange(EASE_NCOLS))
    data_vars = {}
    for ch in channels:
        stack = np.stack([decode_counts(raw[(p, ch)]) for p in passes])
        data_vars[f"tb_{ch}"] = (("pass", "row", "col"), stack,
                                 {"units": "K", "long_name": f"brightness temperature {CHANNELS[ch[:2]]} GHz "
                                                            f"{ch[2:].upper()} pol, resampled (Res 1)"})
    attrs: dict[str, Any] = {"units": "K", "source": fname, "product": "nsidc_ae_land3",
                             "native_grid": "EASE-Grid v1 global 25 km (586 x 1383)"}
    day = parse_date(fname)
    if day is not None:
        attrs["date"] = day.isoformat()
    coords = {"pass": ("pass", np.array(passes)),
              "lat": ("row", lat, {"units": "degrees_north"}),
              "lon": ("col", lon, {"units": "degrees_east"})}
    return xr.Dataset(data_vars, coords=coords, attrs=attrs)


def read_nsidc_land3(source: Any, *, grid: Grid | None = None, passes: Sequence[str] = ("A", "D"),
                     channels: Sequence[str] = DEFAULT_CHANNELS, name: str | None = None) -> xr.Dataset:
    """Read AE_Land3 brightness temperatures onto the canonical grid.

    Returns one float32 variable per channel, ``tb_06h``, ``tb_06v``, ``tb_10h``, ``tb_10v`` (by
    default; any of ``"{band}{pol}"`` with bands 06 10 18 23 36 89), in K, dims
    ``(pass, lat, lon)`` with coordinate ``pass`` = ``passes`` (``"A"`` ascending 13:30, ``"D"``
    descending 01:30). Both swath gaps (9999) and screened cells (−9999) are NaN.
    ``source`` is a local path, a URL (read through :mod:`smray.storage`) or the file's bytes.
    ``grid`` (0.25° by default, or any window/resolution of the global grid) is the output grid;
    each output cell takes the EASE cell containing its centre (:func:`ease_to_grid`).
    """
    grid = grid or Grid(0.25)
    native = read_nsidc_land3_native(source, passes=passes, channels=channels, name=name)
    data_vars = {var: (("pass", "lat", "lon"), ease_to_grid(da.values, grid), da.attrs)
                 for var, da in native.data_vars.items()}
    attrs = {**native.attrs, "resampling": "nearest EASE-Grid v1 25 km cell", "res": grid.res}
    coords = {"pass": native["pass"].values,
              "lat": ("lat", grid.lat, {"units": "degrees_north"}),
              "lon": ("lon", grid.lon, {"units": "degrees_east"})}
    return xr.Dataset(data_vars, coords=coords, attrs=attrs)


# --------------------------------------------------------------------------------------------
# Writing (the twin, test files)
# --------------------------------------------------------------------------------------------
def _struct_metadata() -> str:
    """A minimal HDF-EOS2 ``StructMetadata.0`` describing the two EASE grids."""
    parts = ["GROUP=SwathStructure\nEND_GROUP=SwathStructure\nGROUP=GridStructure"]
    for k, g in enumerate(GRIDS.values(), start=1):
        parts.append(
            f"\tGROUP=GRID_{k}\n\t\tGridName=\"{g}\"\n\t\tXDim={EASE_NCOLS}\n\t\tYDim={EASE_NROWS}\n"
            f"\t\tUpperLeftPointMtrs=(-17334193.536,7344784.807)\n"
            f"\t\tLowerRightMtrs=(17334193.536,-7344784.807)\n"
            f"\t\tProjection=GCTP_BCEA\n\t\tProjParams=(6371228,0,0,0,0,30000000,0,0,0,0,0,0,0)\n"
            f"\t\tSphereCode=-1\n\t\tGridOrigin=HDFE_GD_UL\n\tEND_GROUP=GRID_{k}")
    parts.append("END_GROUP=GridStructure\nGROUP=PointStructure\nEND_GROUP=PointStructure\nEND\n")
    return "\n".join(parts)


def write_nsidc_land3(path: str | os.PathLike, fields: Mapping[str, np.ndarray], *,
                      struct_metadata: bool = True, compress: bool = True) -> None:
    """Write an AE_Land3-like HDF4 file with pyhdf (the twin's AE_Land3 layout and test files).

    ``fields`` maps SDS names (``"A_TB06.9H (Res 1)"``, see :func:`field_name`) to (586, 1383)
    arrays: integer arrays are stored as they are (counts of 0.1 K, 9999 / −9999 fills); float
    arrays are taken as K and stored as round(K × 10), NaN → 9999. Dimensions are named
    ``YDim:<grid>``/``XDim:<grid>`` after the pass prefix, and ``StructMetadata.0`` is written
    unless ``struct_metadata`` is False.
    """
    SD = _pyhdf()
    sd = SD.SD(os.fspath(path), SD.SDC.WRITE | SD.SDC.CREATE | SD.SDC.TRUNC)
    try:
        if struct_metadata:
            attr = sd.attr("StructMetadata.0")
            attr.set(SD.SDC.CHAR8, _struct_metadata())
        for sds_name, arr in fields.items():
            arr = np.asarray(arr)
            if arr.shape != EASE_SHAPE:
                raise SmrayError(f"{sds_name}: shape {arr.shape}, expected {EASE_SHAPE}")
            if arr.dtype.kind == "f":
                counts = np.full(arr.shape, GAP, dtype=np.int16)
                ok = np.isfinite(arr)
                counts[ok] = np.rint(arr[ok] * 10).astype(np.int16)
            else:
                counts = arr.astype(np.int16)
            sds = sd.create(sds_name, SD.SDC.INT16, EASE_SHAPE)
            try:
                grid_name = GRIDS.get(sds_name[:1], "Land_Grid")
                sds.dim(0).setname(f"YDim:{grid_name}")
                sds.dim(1).setname(f"XDim:{grid_name}")
                if compress:
                    sds.setcompress(SD.SDC.COMP_DEFLATE, value=1)
                sds[:] = counts
            finally:
                sds.endaccess()
    finally:
        sd.end()


#: the writer's earlier name (tests build files with it)
write_nsidc_land3_for_tests = write_nsidc_land3
