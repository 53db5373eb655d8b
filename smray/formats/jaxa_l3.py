"""JAXA AMSR2 / AMSR-E (ver.4) Level-3 daily brightness temperature, HDF5 (formats.md §a).

One file per day, pass and frequency band, e.g. ``GW1AM2_20110701_01D_EQMA_L3SGT06LA2220220.h5``
(``EQMA`` = equirectangular, ascending; ``T06`` = 6.9 GHz; ``L`` = 0.25°, ``H`` = 0.1°).

Layout (as documented and as :func:`write_jaxa_l3` writes it):

* datasets ``Brightness Temperature (H)`` and ``Brightness Temperature (V)``, uint16, shape
  (nlat, nlon) = (720, 1440) at 0.25° or (1800, 3600) at 0.1°;
* TB [K] = DN × ``SCALE FACTOR`` (float32 0.01; 0.01 when the attribute is absent);
  DN 65534 = no observation, 65535 = fill;
* row 0 is the northernmost row; column 0 is the cell centred at +res/2 °E, columns run east to 360°.

:func:`read_jaxa_l3` returns the canonical smray orientation: north first, longitudes −180 → 180.
"""

from __future__ import annotations

import datetime as dt
import io
from typing import Any

import h5py
import numpy as np
import xarray as xr

from smray.errors import SmrayError
from smray.formats.detect import HDF5_MAGIC, basename, load_source, parse_name
from smray.grid import Grid

DATASETS = {"tb_h": "Brightness Temperature (H)", "tb_v": "Brightness Temperature (V)"}
SCALE_ATTR = "SCALE FACTOR"
DEFAULT_SCALE = 0.01
MISSING_DN = 65534  #: no observation
FILL_DN = 65535  #: fill (L1B convention; also invalid in L3)
MAX_VALID_DN = 65533
BANDS = ("06", "07", "10", "18", "23", "36", "89")
#: res code in the name → grid spacing in degrees
RES_CODES = {"L": 0.25, "H": 0.1}
_GZIP_LEVEL = 2


def jaxa_l3_filename(day: dt.date, pass_: str, band: str, res_code: str = "L") -> str:
    """The G-Portal name of a daily L3 TB file, e.g. ``GW1AM2_20110701_01D_EQMA_L3SGT06LA2220220.h5``.

    ``pass_`` is ``"A"`` (ascending) or ``"D"`` (descending); ``band`` one of :data:`BANDS`
    (``"06"`` = 6.9 GHz, ``"10"`` = 10.7 GHz, …); ``res_code`` ``"L"`` (0.25°) or ``"H"`` (0.1°).
    """
    pass_ = str(pass_).upper()
    band = f"{int(band):02d}" if str(band).isdigit() else str(band)
    if pass_ not in ("A", "D"):
        raise SmrayError(f"pass: expected 'A' or 'D', got {pass_!r}")
    if band not in BANDS:
        raise SmrayError(f"band: expected one of {', '.join(BANDS)}, got {band!r}")
    if res_code not in RES_CODES:
        raise SmrayError(f"res_code: expected 'L' (0.25 deg) or 'H' (0.1 deg), got {res_code!r}")
    return f"GW1AM2_{day:%Y%m%d}_01D_EQM{pass_}_L3SGT{band}{res_code}A2220220.h5"


# --------------------------------------------------------------------------------------------
# Orientation: canonical (−180 → 180) ↔ file (0 → 360)
# --------------------------------------------------------------------------------------------
def to_file_columns(values: np.ndarray) -> np.ndarray:
    """Roll (…, nlon) columns from −180 → 180 order to 0 → 360 order (nlon even)."""
    return np.roll(values, values.shape[-1] // 2, axis=-1)


def to_canonical_columns(values: np.ndarray) -> np.ndarray:
    """Roll (…, nlon) columns from 0 → 360 order to −180 → 180 order (nlon even)."""
    return np.roll(values, -(values.shape[-1] // 2), axis=-1)


# --------------------------------------------------------------------------------------------
# Writer
# --------------------------------------------------------------------------------------------
def encode_tb(tb: np.ndarray, what: str = "tb") -> np.ndarray:
    """uint16 DN = round(K × 100), :data:`MISSING_DN` where NaN. Raises on values outside 0–655.33 K."""
    tb = np.asarray(tb, dtype=np.float64)
    finite = np.isfinite(tb)
    if np.isinf(tb).any():
        raise SmrayError(f"{what}: infinite brightness temperature")
    dn = np.full(tb.shape, MISSING_DN, dtype=np.uint16)
    scaled = np.rint(tb[finite] * 100.0)
    if scaled.size and (scaled.min() < 0 or scaled.max() > MAX_VALID_DN):
        raise SmrayError(f"{what}: brightness temperature outside 0-{MAX_VALID_DN / 100:.2f} K "
                         f"(min {np.nanmin(tb):.2f}, max {np.nanmax(tb):.2f})")
    dn[finite] = scaled.astype(np.uint16)
    return dn


def _attr_value(value: Any) -> Any:
    if isinstance(value, str):
        return np.bytes_(value.encode("utf-8"))
    if isinstance(value, (dt.date, dt.datetime)):
        return np.bytes_(value.isoformat().encode())
    if isinstance(value, (bool, np.bool_)):
        return np.int8(value)
    if isinstance(value, (int, float, np.integer, np.floating)):
        return value
    raise SmrayError(f"attrs: value {value!r} is not a string or number")


def write_jaxa_l3(tb_h: np.ndarray, tb_v: np.ndarray, *, attrs: dict | None = None) -> bytes:
    """The bytes of a JAXA L3 TB HDF5 file holding ``tb_h`` and ``tb_v``.

    Inputs: brightness temperature in K, float, shape (nlat, nlon) with nlon = 2 × nlat, on the
    canonical smray orientation (row 0 north, column 0 at −180 + res/2); NaN = not observed.
    Stored as uint16 DN = round(K × 100) (65534 where NaN), ``SCALE FACTOR`` float32 0.01,
    ``UNIT`` "K", row 0 north, columns rolled to 0 → 360. gzip + shuffle + Fletcher-32 chunks.
    ``attrs`` (strings/numbers) become global attributes (GranuleID, ObservationStartDateTime, …).
    """
    tb_h = np.asarray(tb_h)
    tb_v = np.asarray(tb_v)
    if tb_h.ndim != 2 or tb_h.shape != tb_v.shape:
        raise SmrayError(f"write_jaxa_l3: tb_h {tb_h.shape} and tb_v {tb_v.shape} must be equal 2-D shapes")
    nlat, nlon = tb_h.shape
    if nlon != 2 * nlat:
        raise SmrayError(f"write_jaxa_l3: shape {tb_h.shape} is not a global grid (nlon must be 2 x nlat)")
    chunks = (min(nlat, 360), min(nlon, 720))
    bio = io.BytesIO()
    with h5py.File(bio, "w", libver="earliest") as f:
        for key, value in (attrs or {}).items():
            f.attrs[str(key)] = _attr_value(value)
        for var, tb in (("tb_h", tb_h), ("tb_v", tb_v)):
            dn = to_file_columns(encode_tb(tb, var))
            ds = f.create_dataset(DATASETS[var], data=dn, dtype=np.uint16, chunks=chunks,
                                  compression="gzip", compression_opts=_GZIP_LEVEL, shuffle=True,
                                  fletcher32=True)
            ds.attrs[SCALE_ATTR] = np.array([DEFAULT_SCALE], dtype=np.float32)
            ds.attrs["UNIT"] = np.bytes_(b"K")
    return bio.getvalue()


# --------------------------------------------------------------------------------------------
# Reader
# --------------------------------------------------------------------------------------------
def _scale(attrs: h5py.AttributeManager) -> float:
    """The scale factor as the decimal it stands for (float32 0.0099999998 → 0.01)."""
    if SCALE_ATTR not in attrs:
        return DEFAULT_SCALE
    raw = np.asarray(attrs[SCALE_ATTR]).ravel()
    if raw.size != 1 or not np.issubdtype(raw.dtype, np.number):
        raise ValueError(f"attribute {SCALE_ATTR!r} is not one number")
    value = raw[0]
    if isinstance(value, np.float32):
        return float(np.format_float_positional(value))  # shortest repr that round-trips
    return float(value)


def decode_dn(dn: np.ndarray, scale: float = DEFAULT_SCALE) -> np.ndarray:
    """float32 K from uint16 DN; 65534/65535 → NaN. Exactly ``float32(DN / 100)`` for scale 0.01."""
    dn = np.asarray(dn)
    out = dn.astype(np.float64)
    inv = 1.0 / scale
    if abs(inv - round(inv)) < 1e-6 * inv:  # 0.01 stored as float32/float64 → divide by 100 exactly
        out /= round(inv)
    else:
        out *= scale
    out[(dn == MISSING_DN) | (dn == FILL_DN)] = np.nan
    return out.astype(np.float32)


def _overlap_weights(n_coarse: int, n_fine: int) -> np.ndarray:
    """Dense (n_coarse, n_fine) overlap of 1-D cells spanning the same interval, in fine-cell units."""
    ce = np.arange(n_coarse + 1) * (n_fine / n_coarse)  # coarse edges in fine-cell units
    fe = np.arange(n_fine + 1, dtype=np.float64)
    lo = np.maximum(ce[:-1, None], fe[None, :-1])
    hi = np.minimum(ce[1:, None], fe[None, 1:])
    return np.clip(hi - lo, 0.0, None)


def aggregate_area(values: np.ndarray, out_shape: tuple[int, int], min_fraction: float = 0.5) -> np.ndarray:
    """Area-weighted mean of a (nlat, nlon) field onto a coarser grid with the same extent.

    Each coarse cell averages the fine cells it overlaps, weighted by the overlapping area
    (fractional at shared edges, e.g. 0.1° → 0.25° blocks of 2.5 × 2.5 cells); NaN cells are
    ignored; the result is NaN where less than ``min_fraction`` of the coarse cell is observed.
    """
    import scipy.sparse as sp

    values = np.asarray(values, dtype=np.float64)
    wr = sp.csr_matrix(_overlap_weights(out_shape[0], values.shape[0]))
    wc = sp.csr_matrix(_overlap_weights(out_shape[1], values.shape[1]))
    valid = np.isfinite(values)
    filled = np.where(valid, values, 0.0)
    num = (wc @ (wr @ filled).T).T
    area = (wc @ (wr @ valid.astype(np.float64)).T).T
    full = (values.shape[0] / out_shape[0]) * (values.shape[1] / out_shape[1])
    with np.errstate(invalid="ignore", divide="ignore"):
        out = num / area
    out[area < min_fraction * full - 1e-9] = np.nan
    return out


def read_jaxa_l3_native(source: Any, *, name: str | None = None) -> xr.Dataset:
    """Like :func:`read_jaxa_l3` but at the file's own resolution (0.1° files are not aggregated).

    ``tb_h``/``tb_v`` float32 K, dims (lat, lon), north first, longitudes −180 → 180 (the file's
    0 → 360 columns rolled), NaN for 65534/65535.
    """
    data, label = load_source(source, name=name)
    fname = basename(label)
    if not (data.startswith(HDF5_MAGIC) or any(data[o:o + 8] == HDF5_MAGIC for o in (512, 1024, 2048))):
        raise SmrayError(f"{fname}: not an HDF5 file ({len(data)} bytes, no HDF5 signature)")
    fields: dict[str, np.ndarray] = {}
    global_attrs: dict[str, Any] = {}
    try:
        with h5py.File(io.BytesIO(data), "r") as f:
            for var, dset_name in DATASETS.items():
                if dset_name not in f:
                    raise SmrayError(f"{fname}: dataset {dset_name!r} not found "
                                     f"(has: {', '.join(sorted(f.keys())) or 'nothing'})")
                dset = f[dset_name]
                if not isinstance(dset, h5py.Dataset) or dset.ndim != 2:
                    raise SmrayError(f"{fname}: {dset_name!r} is not a 2-D dataset")
                if dset.dtype.kind not in "ui":
                    raise SmrayError(f"{fname}: {dset_name!r} has dtype {dset.dtype}, expected uint16 DN")
                scale = _scale(dset.attrs)
                fields[var] = decode_dn(dset[()], scale)
            global_attrs = {k: _plain(v) for k, v in f.attrs.items()}
    except SmrayError:
        raise
    except Exception as err:  # h5py raises OSError/ValueError/KeyError/RuntimeError on damage
        raise SmrayError(f"{fname}: corrupt or truncated HDF5 file ({type(err).__name__}: "
                         f"{str(err).strip()[:160]})") from None
    shape = fields["tb_h"].shape
    if fields["tb_v"].shape != shape:
        raise SmrayError(f"{fname}: H {shape} and V {fields['tb_v'].shape} shapes differ")
    nlat, nlon = shape
    if nlon != 2 * nlat:
        raise SmrayError(f"{fname}: shape {shape} is not a global lat/lon grid (expected n x 2n)")
    try:
        native = Grid(round(180.0 / nlat, 9))
    except SmrayError:
        raise SmrayError(f"{fname}: shape {shape} gives {180.0 / nlat:g} deg cells, not a supported grid") from None
    attrs: dict[str, Any] = {"units": "K", "source": fname, "product": "jaxa_l3_tb",
                             "native_res": native.res, "res": native.res}
    parsed = parse_name(fname)
    if parsed["product"] == "jaxa_l3_tb":
        attrs.update({"pass": parsed["pass_"], "band": parsed["band"], "date": _iso(parsed["date"])})
    for k, v in global_attrs.items():
        if v is not None:
            attrs.setdefault(f"file_{k}", v)
    return _dataset({k: to_canonical_columns(v) for k, v in fields.items()}, native, attrs)


def _dataset(fields: dict[str, np.ndarray], grid: Grid, attrs: dict[str, Any]) -> xr.Dataset:
    coords = {"lat": ("lat", grid.lat, {"units": "degrees_north"}),
              "lon": ("lon", grid.lon, {"units": "degrees_east"})}
    data_vars = {
        "tb_h": (("lat", "lon"), fields["tb_h"], {"units": "K", "long_name": "brightness temperature, H pol"}),
        "tb_v": (("lat", "lon"), fields["tb_v"], {"units": "K", "long_name": "brightness temperature, V pol"}),
    }
    return xr.Dataset(data_vars, coords=coords, attrs=attrs)


def read_jaxa_l3(source: Any, *, grid: Grid | None = None, name: str | None = None) -> xr.Dataset:
    """Read a JAXA L3 daily TB file into ``tb_h``, ``tb_v`` (float32 K, dims (lat, lon), NaN = missing).

    ``source`` is a path/URL (read through :mod:`smray.storage`) or the file's bytes (``name`` then
    labels messages and attributes). The grid follows from the array shape: (720, 1440) → 0.25°;
    (1800, 3600) → 0.1°, aggregated area-weighted onto 0.25° (NaN where < half the cell is observed);
    any other global (n, 2n) shape → 180/n degrees. Output is north first with longitudes
    −180 → 180. ``grid`` (optional, same resolution as the output) selects its window.
    Attributes: ``units``, ``source``, ``res``, ``native_res`` and ``pass``/``band``/``date`` when
    the name is a G-Portal name, plus the file's global attributes as ``file_<name>``.
    """
    ds = read_jaxa_l3_native(source, name=name)
    fname = ds.attrs["source"]
    out_grid = Grid(ds.attrs["native_res"])
    fields = {k: ds[k].values for k in DATASETS}
    if out_grid.shape == (1800, 3600):
        out_grid = Grid(0.25)
        fields = {k: aggregate_area(v, out_grid.shape).astype(np.float32) for k, v in fields.items()}
    if grid is not None:
        if abs(grid.res - out_grid.res) > 1e-9:
            raise SmrayError(f"{fname}: file grid is {out_grid.res:g} deg but {grid.res:g} deg was requested")
        rows, cols = grid.window
        fields = {k: v[rows, cols] for k, v in fields.items()}
        out_grid = grid
    return _dataset(fields, out_grid, {**ds.attrs, "res": out_grid.res})


def _iso(yyyymmdd: str) -> str:
    return f"{yyyymmdd[:4]}-{yyyymmdd[4:6]}-{yyyymmdd[6:8]}"


def _plain(value: Any) -> str | int | float | None:
    """A global attribute as a str/int/float (1-element arrays unwrapped), or None if not simple."""
    arr = np.asarray(value)
    if arr.size != 1:
        return None
    v = arr.ravel()[0]
    if isinstance(v, bytes):
        return v.decode("utf-8", errors="replace").rstrip("\x00")
    if isinstance(v, str):
        return v
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, np.floating):
        return float(v)
    return None
