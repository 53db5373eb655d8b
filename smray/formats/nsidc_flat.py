"""NSIDC-0302 and NSIDC-0301: AMSR-E daily gridded brightness temperatures in flat binary files.

Product documentation followed: NSIDC, "AMSR-E/Aqua Daily EASE-Grid Brightness Temperatures
(NSIDC-0301) and AMSR-E/Aqua Daily Global Quarter-Degree Gridded Brightness Temperatures
(NSIDC-0302)", user guide (Knowles, Savoie, Armstrong & Brodzik 2006; nsidc.org/data/nsidc-0301,
nsidc0301_amsre_gridded_tb.gd.html). docs/formats.md §b lists what was checked against it.

**Verified against that guide** (its text, not a real file — none was at hand):

* one file per day, pass and channel, gridded from AE_L2A by inverse-distance squared;
* names ``ID2rx-AMSRE-aayyyydddp.vnn.ccc`` for the EASE grids (``aa`` = ``ML`` global,
  ``NL``/``SL`` polar; ``rx`` = ``r1``/``r3``), e.g. ``ID2r3-AMSRE-ML2005135D.v01.06H``, and
  ``ID2r1-AMSRE-D.25yyyydddp.vnn.ccc`` for the quarter-degree grid; ``ccc`` = band (06 10 18 23
  36 89) + polarisation (H/V); one time file per day and pass with the extension ``.TIM``;
  files are delivered gzip-compressed with ``.gz`` added (read here either way);
* TBs are two-byte unsigned integers in tenths of kelvin; time files two-byte signed integers;
* the EASE grids are 25 km; the quarter-degree grid is global cylindrical equidistant at 0.25°.

**Taken from secondary sources**: little-endian byte order (TPDC's redistribution notes of
NSIDC-0302); the global EASE grid is 1383 × 586 (NSIDC EASE-Grid 1.0 definition, as AE_Land3).

**Not verified (no real file)**, so written as single constants here and checked on the first
real file: the quarter-degree grid is 1440 × 720 with row 0 at the north edge (89.875°N) and
column 0 at 180°W (179.875°W centre); TB count 0 = no data; the meaning of the ``.TIM`` values
(read as raw int16, exposed but not used for the TBs).

:func:`read_flat` checks each file's size against its grid (a truncated file is an error naming
it) and the decoded values against any physical TB (a byte-swapped file gives mostly > 400 K).
"""

from __future__ import annotations

import datetime as dt
import gzip
import re
from typing import Any

import numpy as np

from smray.errors import SmrayError
from smray.formats import ease
from smray.formats.detect import PRODUCT_PATTERNS, basename, load_source
from smray.grid import Grid

QD = "nsidc_0302"  #: quarter-degree product id
EASE = "nsidc_0301"  #: EASE-Grid product id
PRODUCTS = (QD, EASE)
QD_SHAPE = (720, 1440)  #: quarter-degree rows × columns (unverified: north first, 180°W first)
QD_RES = 0.25
FILL = 0  #: TB count meaning "no data" (unverified)
SCALE = 0.1  #: K per count
MAX_K = 400.0  #: counts above this are no brightness temperature at any AMSR-E channel
MAX_BAD_SHARE = 0.01  #: more non-physical values than this → the file is rejected (byte order)
TIME_EXT = "TIM"
BANDS = ("06", "10", "18", "23", "36", "89")

#: file-name patterns (base name; ``.gz`` allowed). Groups: year, doy, pass_, version, channel.
QD_PATTERN = PRODUCT_PATTERNS[QD]
EASE_PATTERN = PRODUCT_PATTERNS[EASE]


def parse_flat_name(name: str) -> dict[str, Any] | None:
    """``{"product", "date", "pass_", "channel", "version", "area"}`` of an NSIDC-0301/0302 name
    (``channel`` like ``"06H"`` or ``"TIM"``; ``area`` ``"D.25"``, ``"ML"``, ``"NL"``, ``"SL"``), else None."""
    base = basename(name)
    for product, pattern in ((QD, QD_PATTERN), (EASE, EASE_PATTERN)):
        m = re.search(pattern, base)
        if m:
            try:
                day = dt.date(int(m["year"]), 1, 1) + dt.timedelta(days=int(m["doy"]) - 1)
            except ValueError:
                return None
            if day.year != int(m["year"]):
                return None
            return {"product": product, "date": day, "pass_": m["pass_"], "channel": m["channel"],
                    "version": m["version"], "area": m.groupdict().get("area") or "D.25"}
    return None


def flat_filename(product: str, day: dt.date, pass_: str, channel: str, version: str = "v03") -> str:
    """The NSIDC name of a file, e.g. ``flat_filename("nsidc_0302", date(2011,7,1), "A", "06H")``
    == ``"ID2r1-AMSRE-D.252011182A.v03.06H"``; ``channel`` ``"TIM"`` names the time file."""
    doy = day.timetuple().tm_yday
    channel = channel.upper()
    if product == QD:
        return f"ID2r1-AMSRE-D.25{day:%Y}{doy:03d}{pass_}.{version}.{channel}"
    if product == EASE:
        return f"ID2r3-AMSRE-ML{day:%Y}{doy:03d}{pass_}.{version}.{channel}"
    raise SmrayError(f"{product!r}: not an NSIDC flat product (expected {' or '.join(PRODUCTS)})")


def time_filename(tb_name: str) -> str:
    """The ``.TIM`` file that belongs to a TB file (same directory, day, pass and version)."""
    m = re.search(r"\.(?:06|10|18|23|36|89)[HV](\.gz)?$", tb_name)
    if not m:
        raise SmrayError(f"{basename(tb_name)}: not an NSIDC-0301/0302 brightness-temperature file name")
    return tb_name[:m.start()] + "." + TIME_EXT + (m.group(1) or "")


def native_shape(product: str, area: str = "ML") -> tuple[int, int]:
    """(rows, cols) of a product's grid; only the global grids are supported."""
    if product == QD:
        return QD_SHAPE
    if product == EASE and area == "ML":
        return ease.SHAPE
    raise SmrayError(f"{product} {area}: only the global grids (quarter-degree, EASE 'ML') are read")


# --------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------
def _raw(source: Any, name: str | None, dtype: str) -> tuple[np.ndarray, str, dict[str, Any]]:
    data, label = load_source(source, name=name)
    fname = basename(label)
    info = parse_flat_name(fname)
    if info is None:
        raise SmrayError(f"{fname}: not an NSIDC-0301/0302 file name (ID2r1-AMSRE-D.25yyyydddp.vnn.ccc or "
                         f"ID2rx-AMSRE-MLyyyydddp.vnn.ccc)")
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as err:
            raise SmrayError(f"{fname}: corrupt gzip file ({err})") from None
    shape = native_shape(info["product"], info["area"])
    expected = shape[0] * shape[1] * 2
    if len(data) != expected:
        what = "truncated" if len(data) < expected else "too long"
        raise SmrayError(f"{fname}: {len(data)} bytes, expected {expected} ({shape[1]} x {shape[0]} two-byte "
                         f"values): {what}, not a {info['product'].upper().replace('_', '-')} file")
    return np.frombuffer(data, dtype=dtype).reshape(shape), fname, info


def decode_tb(counts: np.ndarray, fname: str = "<array>") -> np.ndarray:
    """float32 K from uint16 tenths of kelvin; 0 → NaN. SmrayError when more than 1 % of the
    observed cells are above 400 K (the signature of a byte-swapped file)."""
    counts = np.asarray(counts)
    observed = counts != FILL
    bad = observed & (counts > MAX_K / SCALE)
    n = int(observed.sum())
    if n and bad.sum() > MAX_BAD_SHARE * n:
        raise SmrayError(f"{fname}: {bad.sum() / n:.0%} of the values are above {MAX_K:g} K, no physical "
                         f"brightness temperature (wrong byte order? the files are little-endian)")
    out = (counts.astype(np.float64) * SCALE).astype(np.float32)
    out[~observed | bad] = np.nan
    return out


def read_flat_native(source: Any, *, name: str | None = None) -> tuple[np.ndarray, dict[str, Any]]:
    """A TB file's float32 K on its own grid (NaN = no data) and its name fields."""
    counts, fname, info = _raw(source, name, "<u2")
    if info["channel"] == TIME_EXT:
        raise SmrayError(f"{fname}: a time file, not brightness temperatures")
    return decode_tb(counts, fname), info


def read_time(source: Any, *, name: str | None = None) -> np.ndarray:
    """A ``.TIM`` file's raw int16 values on its own grid (size checked; meaning unverified)."""
    values, fname, info = _raw(source, name, "<i2")
    if info["channel"] != TIME_EXT:
        raise SmrayError(f"{fname}: not a .TIM time file")
    return values.copy()


def to_grid(values: np.ndarray, product: str, grid: Grid) -> np.ndarray:
    """A native field (quarter-degree or EASE) on ``grid``, float32: the quarter-degree grid as
    it is (0.25°) or area-averaged to a coarser resolution; EASE area-weighted
    (:func:`smray.formats.ease.ease_to_grid`). NaN where less than half the cell is observed."""
    if product == EASE:
        return ease.ease_to_grid(values, grid)
    if grid.res < QD_RES - 1e-9:
        raise SmrayError(f"the quarter-degree grid is coarser than the cube grid {grid.res:g} deg")
    if abs(grid.res - QD_RES) > 1e-9:
        from smray.formats.jaxa_l3 import aggregate_area

        values = aggregate_area(values, grid.global_shape)
    return np.ascontiguousarray(values[grid.window], dtype=np.float32)


def read_flat(source: Any, grid: Grid | None = None, *, name: str | None = None) -> np.ndarray:
    """Read an NSIDC-0302 or NSIDC-0301 (global) TB file onto ``grid`` (default 0.25° global):
    float32 K, north first, longitudes −180 → 180, NaN = not observed. ``source`` is a path, URL
    or the file's bytes (then ``name`` gives the file name, which says the product)."""
    values, info = read_flat_native(source, name=name)
    return to_grid(values, info["product"], grid or Grid(QD_RES))


# --------------------------------------------------------------------------------------------
# Writing (the twin and the tests)
# --------------------------------------------------------------------------------------------
def encode_tb(values_k: np.ndarray, byteorder: str = "<") -> bytes:
    """Bytes of a TB file from float K on the native grid: round(K × 10) as uint16, NaN → 0."""
    values_k = np.asarray(values_k, dtype=np.float64)
    counts = np.zeros(values_k.shape, dtype=f"{byteorder}u2")
    ok = np.isfinite(values_k)
    counts[ok] = np.clip(np.rint(values_k[ok] / SCALE), 1, 65535).astype(np.uint16)
    return counts.tobytes()


def encode_time(values: np.ndarray) -> bytes:
    """Bytes of a ``.TIM`` file from int16 values on the native grid (little-endian)."""
    return np.asarray(values).astype("<i2").tobytes()


def from_grid(values: np.ndarray, product: str, grid: Grid) -> np.ndarray:
    """A ``grid`` field (window or global) on a product's native grid, for writing files: the
    quarter-degree grid repeats each cell of a coarser grid (whose resolution must be a multiple
    of 0.25°); EASE is area-weighted (:func:`smray.formats.ease.grid_to_ease`)."""
    values = np.asarray(values, dtype=np.float64)
    if values.shape == grid.shape and not grid.is_global:
        values = grid.embed(values, np.nan)
    if product == EASE:
        return ease.grid_to_ease(values, Grid(grid.res))
    k = grid.res / QD_RES
    if abs(k - round(k)) > 1e-9 or round(k) < 1:
        raise SmrayError(f"grid {grid.res:g} deg: the quarter-degree layout needs a multiple of 0.25 deg")
    k = int(round(k))
    return np.repeat(np.repeat(values, k, axis=0), k, axis=1)


def overpass_minutes(pass_: str, product: str) -> np.ndarray:
    """A plausible ``.TIM`` field for the twin: minutes of the day (UTC) of the 13:30 (A) / 01:30
    (D) local overpass at each cell's longitude, on the product's native grid (int16)."""
    if product == EASE:
        lon = np.asarray(ease.centres()[1])
        shape = ease.SHAPE
    else:
        lon = Grid(QD_RES).lon
        shape = QD_SHAPE
    local = 13.5 if pass_ == "A" else 1.5
    minutes = np.rint((local - lon / 15.0) * 60.0).astype(np.int16)
    return np.broadcast_to(minutes[None, :], shape).copy()


__all__ = ["QD", "EASE", "PRODUCTS", "QD_PATTERN", "EASE_PATTERN", "parse_flat_name", "flat_filename",
           "time_filename", "native_shape", "decode_tb", "read_flat_native", "read_time", "to_grid", "read_flat",
           "encode_tb", "encode_time", "from_grid", "overpass_minutes"]
