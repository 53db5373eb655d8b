"""NSIDC AE_L2A: AMSR-E/Aqua L2A global swath spatially-resampled brightness temperatures
(HDF-EOS2 swaths in HDF4), read and gridded per pass onto the 0.25° grid (docs/formats.md, AE_L2A).

Product documentation followed: NSIDC, "AMSR-E/Aqua L2A Global Swath Spatially-Resampled
Brightness Temperatures" (AE_L2A), data-fields page (nsidc.org/data/docs/daac/ae_l2a_tbs/data.html),
and the OPeNDAP listing of a real V12 granule (eosdap.hdfgroup.org, ``AMSR_E_L2A_Brightness
Temperatures_V12_201110032238_D.hdf.info``), both read through the ``search`` tool; **no real file
was at hand**.

**Verified against those pages** (their text):

* one file per half-orbit, named ``AMSR_E_L2A_BrightnessTemperatures_Vnn_YYYYMMDDhhmm_{A|D}.hdf``
  with the start time of its first scan (the V12 listing: ``RangeBeginningTime 22:38:15.89Z``,
  ``NumberofScans 1994``, ``OrbitDirection Descending`` for ``…_201110032238_D.hdf``);
* swath ``Low_Res_Swath``: TB fields int16, 243 values per scan, **TB = raw × 0.01 + 327.68 K**
  (the data-fields page's scale factor and offset; it adds that each file's local attributes hold
  them, so attributes named like ``SCALE_FACTOR``/``OFFSET`` on a field are used when present);
* the smray channels are ``6.9H_Res.1_TB``, ``6.9V_Res.1_TB``, ``10.7H_Res.1_TB``, ``10.7V_Res.1_TB``
  (resampled to the 6.9 GHz footprint, "Res.1"; the NSIDC-0301/0302 grids are made from them by
  inverse-distance squared, "ID2", per the NSIDC-0301/0302 guide).

**Taken from a sibling product's page**: ``Time`` is float64 seconds of International Atomic Time
since 1993-01-01 00:00:00 (TAI93), one value per scan (AE_Land3's data-fields page defines its
``A_Time`` so; assumed the same for AE_L2A, whose scan times it is built from). TAI93 → UTC uses
the leap seconds after 1993 (:data:`LEAP_SECONDS`).

**Not verified (no real file; one constant each here)**:

* fill: raw **−32768** (the int16 minimum, decodes to exactly 0.00 K, which no AMSR-E channel can
  measure) is "no data" (:data:`FILL_RAW`); no fill value is stated on the pages read. Any other
  decoded value outside 0–400 K is also dropped (counted, so a byte-swapped file is an error);
* geolocation: ``Latitude``/``Longitude`` float32 degrees, (scans, 243) like the TB fields; values
  outside ±90°/±180° (e.g. a −9999 fill) or not finite are missing. When several SDS carry a
  geolocation name (the high-resolution swaths have their own), the one whose shape equals the TB
  fields' is taken;
* the fields are found by SDS name; the HDF-EOS2 structure metadata is not parsed.

**Which scans make a day.** A half-orbit file is named by its first scan, so the last file of a
UTC day runs past midnight. :func:`grid_day` keeps, from all files given, the scans whose time is
in the requested UTC day (ingest passes the day's files and the previous day's files that start
after :data:`STRADDLE_START_H` h). A file **named for the day** with no valid scan in it (all times
missing, or all on another day) is bad input: :class:`SmrayError` naming the file.

**Gridding rule (smray's, documented choice).** Per pass, every 0.25° cell centre takes the
inverse-distance-squared mean of the valid samples within :data:`RADIUS_KM` = 25 km (great-circle,
on a sphere of 6371 km; about the 0.25° cell size and the EASE-Grid cell of NSIDC-0301), at most
the :data:`MAX_SAMPLES` = 16 nearest, each channel on its own valid samples; weights
1/max(d, 1 km)². NSIDC documents ID2 but not its search radius: the radius here is smray's. A cell
with no sample within the radius is NaN. A cube grid coarser than 0.25° (a multiple of it) is the
area-weighted mean of its 0.25° cells (:func:`smray.formats.jaxa_l3.aggregate_area`; NaN where less
than half the cell is observed), as for NSIDC-0302. Vectorised with ``scipy.spatial.cKDTree`` on
unit vectors.

HDF4 needs ``pyhdf``, an optional dependency: ``pip install smray[hdf4]``.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from smray.errors import SmrayError
from smray.formats.detect import PRODUCT_PATTERNS, basename, source_name
from smray.grid import Grid

PRODUCT = "nsidc_ae_l2a"
SWATH = "Low_Res_Swath"
#: smray channel code → SDS name of the resampled (Res.1) TB field
FIELDS = {"06H": "6.9H_Res.1_TB", "06V": "6.9V_Res.1_TB", "10H": "10.7H_Res.1_TB", "10V": "10.7V_Res.1_TB"}
CHANNELS = tuple(FIELDS)
SCALE = 0.01  #: K per count (data-fields page)
OFFSET = 327.68  #: K (data-fields page)
FILL_RAW = -32768  #: raw value taken as "no data" (unverified; decodes to 0 K)
MAX_K = 400.0  #: decoded values above this (or ≤ 0) are no brightness temperature
MAX_BAD_SHARE = 0.01  #: more non-physical values than this share → the file is rejected
TAI93 = dt.datetime(1993, 1, 1)
#: UTC dates from which TAI − UTC grew by one more second after 1993-01-01 (IERS Bulletin C)
LEAP_SECONDS = (dt.datetime(1993, 7, 1), dt.datetime(1994, 7, 1), dt.datetime(1996, 1, 1),
                dt.datetime(1997, 7, 1), dt.datetime(1999, 1, 1), dt.datetime(2006, 1, 1),
                dt.datetime(2009, 1, 1), dt.datetime(2012, 7, 1), dt.datetime(2015, 7, 1),
                dt.datetime(2017, 1, 1))
#: a file of the previous day starting at or after this hour (UTC) may hold scans of the day
STRADDLE_START_H = 23.0
GRID_RES = 0.25  #: the grid the swaths are gridded onto first
RADIUS_KM = 25.0  #: ID2 search radius (smray's choice)
MAX_SAMPLES = 16  #: at most this many nearest samples per cell
MIN_DIST_KM = 1.0  #: distances below this count as this (a sample on the cell centre)
EARTH_RADIUS_KM = 6371.0
CHUNK_CELLS = 200_000  #: grid cells queried at once (memory bound)
NAME_PATTERN = PRODUCT_PATTERNS[PRODUCT]
_NAME_RX = re.compile(r"^AMSR_E_L2A_BrightnessTemperatures_(?P<version>\w+?)_(?P<stamp>\d{12})_(?P<pass_>[AD])\.hdf$")


# --------------------------------------------------------------------------------------------
# Names and time
# --------------------------------------------------------------------------------------------
def parse_l2a_name(name: str) -> dict[str, Any] | None:
    """``{"start" (UTC datetime of the first scan, to the minute), "date", "pass_", "version"}``
    of an AE_L2A file name, else None."""
    m = _NAME_RX.search(basename(name))
    if not m:
        return None
    try:
        start = dt.datetime.strptime(m["stamp"], "%Y%m%d%H%M")
    except ValueError:
        return None
    return {"start": start, "date": start.date(), "pass_": m["pass_"], "version": m["version"]}


def l2a_filename(start: dt.datetime, pass_: str, version: str = "V12") -> str:
    """The NSIDC name of a half-orbit file starting at ``start`` (UTC; seconds are dropped)."""
    if pass_ not in ("A", "D"):
        raise SmrayError(f"AE_L2A pass {pass_!r}: expected 'A' or 'D'")
    return f"AMSR_E_L2A_BrightnessTemperatures_{version}_{start:%Y%m%d%H%M}_{pass_}.hdf"


def _leaps_before(utc: np.ndarray) -> np.ndarray:
    """Leap seconds inserted after 1993-01-01 and before each UTC time (seconds since TAI93 epoch, naive)."""
    edges = np.array([(d - TAI93).total_seconds() for d in LEAP_SECONDS])
    return np.searchsorted(edges, utc, side="right").astype(np.float64)


def tai93_to_utc_seconds(tai: np.ndarray) -> np.ndarray:
    """UTC seconds since 1993-01-01 00:00:00 of TAI93 times (leap seconds removed); NaN stays NaN."""
    tai = np.asarray(tai, dtype=np.float64)
    edges = np.array([(d - TAI93).total_seconds() for d in LEAP_SECONDS])
    # the k-th leap second is at UTC edge_k, i.e. TAI93 edge_k + k (k = 1, 2, ...)
    tai_edges = edges + np.arange(1, len(edges) + 1)
    return tai - np.searchsorted(tai_edges, tai, side="right")


def utc_seconds_to_tai93(utc: np.ndarray) -> np.ndarray:
    """The inverse of :func:`tai93_to_utc_seconds` (for writing files)."""
    utc = np.asarray(utc, dtype=np.float64)
    return utc + _leaps_before(utc)


def day_seconds(day: dt.date) -> tuple[float, float]:
    """[start, end) of a UTC day in UTC seconds since 1993-01-01."""
    s = (dt.datetime.combine(day, dt.time()) - TAI93).total_seconds()
    return s, s + 86400.0


# --------------------------------------------------------------------------------------------
# Reading one file
# --------------------------------------------------------------------------------------------
def _pyhdf():
    try:
        from pyhdf import SD
    except ImportError as err:
        raise ImportError("reading NSIDC AE_L2A (HDF4) files needs pyhdf: pip install smray[hdf4]") from err
    return SD


def _scale_offset(attrs: Mapping[str, Any]) -> tuple[float, float]:
    """The field's own scale factor and offset when its attributes name them, else the documented ones."""
    scale, offset = SCALE, OFFSET
    for key, value in attrs.items():
        k = re.sub(r"[^a-z]", "", key.lower())
        try:
            v = float(np.atleast_1d(value)[0])
        except (TypeError, ValueError, IndexError):
            continue
        if k in ("scalefactor", "scale"):
            scale = v
        elif k in ("offset", "addoffset"):
            offset = v
    return scale, offset


def decode_tb(raw: np.ndarray, scale: float = SCALE, offset: float = OFFSET,
              fname: str = "<array>") -> np.ndarray:
    """float32 K from int16 counts: raw × scale + offset; :data:`FILL_RAW` → NaN; values ≤ 0 or
    above :data:`MAX_K` → NaN, and SmrayError when they are more than 1 % of the non-fill values
    (a byte-swapped or mis-scaled file)."""
    raw = np.asarray(raw)
    present = raw != FILL_RAW
    k = raw.astype(np.float64) * scale + offset
    bad = present & ((k <= 0.0) | (k > MAX_K))
    n = int(present.sum())
    if n and bad.sum() > MAX_BAD_SHARE * n:
        raise SmrayError(f"{fname}: {bad.sum() / n:.0%} of the TB values are outside 0-{MAX_K:g} K "
                         f"(wrong byte order or scaling?)")
    out = k.astype(np.float32)
    out[~present | bad] = np.nan
    return out


def _datasets(sd: Any) -> dict[str, list[tuple[int, tuple[int, ...], list[str]]]]:
    """SDS name → [(index, shape, dimension names)] (HDF4 allows several SDS of one name)."""
    n = sd.info()[0]
    out: dict[str, list[tuple[int, tuple[int, ...], list[str]]]] = {}
    for i in range(n):
        sds = sd.select(i)
        try:
            name, rank, dims, _type, _nattr = sds.info()
            shape = tuple(int(d) for d in np.atleast_1d(dims))
            dim_names = [sds.dim(k).info()[0] for k in range(rank)]
        finally:
            sds.endaccess()
        out.setdefault(name, []).append((i, shape, dim_names))
    return out


def _pick(found: dict, name: str, shape: tuple[int, ...] | None, fname: str) -> int:
    """Index of the SDS ``name`` of the low-resolution swath (by shape, then by dimension names)."""
    cands = found.get(name, [])
    if shape is not None:
        cands = [c for c in cands if c[1][:len(shape)] == shape] or []
    if not cands:
        have = ", ".join(sorted(n for n in found if "TB" in n or n in ("Latitude", "Longitude", "Time"))) or "none"
        want = f" of shape {shape}" if shape else ""
        raise SmrayError(f"{fname}: field {name!r}{want} not found ({SWATH} fields present: {have})")
    for c in cands:
        if any(d.endswith(f":{SWATH}") for d in c[2]):
            return c[0]
    return cands[0][0]


def read_l2a_swath(source: Any, *, channels: Sequence[str] = CHANNELS, name: str | None = None
                   ) -> dict[str, Any]:
    """One AE_L2A half-orbit file's low-resolution swath: ``{"lat", "lon"}`` float64 (scans, pixels)
    degrees (NaN = missing), ``"time"`` float64 (scans,) UTC seconds since 1993-01-01 (NaN =
    missing), ``"tb"`` channel code → float32 (scans, pixels) K (NaN = fill), and the name's
    ``"pass_"``, ``"start"``, ``"date"``. ``source`` is a path, URL or the file's bytes."""
    from smray.formats.nsidc_land3 import open_hdf4  # the one way smray opens an HDF4 file

    label = source_name(source, name)
    fname = basename(label)
    info = parse_l2a_name(fname)
    if info is None:
        raise SmrayError(f"{fname}: not an AE_L2A file name (AMSR_E_L2A_BrightnessTemperatures_Vnn_"
                         f"YYYYMMDDhhmm_A|D.hdf)")
    channels = [c.upper() for c in channels]
    unknown = [c for c in channels if c not in FIELDS]
    if unknown:
        raise SmrayError(f"AE_L2A channels {unknown}: expected some of {', '.join(FIELDS)}")
    raw: dict[str, Any] = {}
    with open_hdf4(source, name) as sd:
        found = _datasets(sd)
        shape = None
        for ch in channels:
            sds = sd.select(_pick(found, FIELDS[ch], shape, fname))
            try:
                arr = np.asarray(sds[:])
                attrs = sds.attributes()
            finally:
                sds.endaccess()
            if arr.ndim != 2 or (shape is not None and arr.shape != shape):
                raise SmrayError(f"{fname}: field {FIELDS[ch]!r} has shape {arr.shape}, expected "
                                 f"(scans, pixels){' ' + str(shape) if shape else ''}")
            shape = arr.shape
            raw[ch] = (arr, _scale_offset(attrs))
        for geo in ("Latitude", "Longitude"):
            sds = sd.select(_pick(found, geo, shape, fname))
            try:
                raw[geo] = np.asarray(sds[:], dtype=np.float64)
            finally:
                sds.endaccess()
        sds = sd.select(_pick(found, "Time", shape[:1] if shape else None, fname))
        try:
            raw["Time"] = np.asarray(sds[:], dtype=np.float64).reshape(shape[0], -1)[:, 0]
        finally:
            sds.endaccess()
    lat, lon = raw["Latitude"], raw["Longitude"]
    with np.errstate(invalid="ignore"):
        bad_geo = ~(np.isfinite(lat) & np.isfinite(lon) & (np.abs(lat) <= 90.0) & (np.abs(lon) <= 180.0))
        t = raw["Time"]
        t = np.where(np.isfinite(t) & (t > 0), tai93_to_utc_seconds(np.where(np.isfinite(t), t, 0.0)), np.nan)
    lat = np.where(bad_geo, np.nan, lat)
    lon = np.where(bad_geo, np.nan, lon)
    tb = {ch: decode_tb(arr, *so, fname=fname) for ch, (arr, so) in ((c, raw[c]) for c in channels)}
    return {"lat": lat, "lon": lon, "time": t, "tb": tb, "name": fname, **info}


def scans_in_day(swath: Mapping[str, Any], day: dt.date) -> np.ndarray:
    """Bool (scans,): scans whose time is in the UTC ``day``."""
    s0, s1 = day_seconds(day)
    t = swath["time"]
    with np.errstate(invalid="ignore"):
        return np.isfinite(t) & (t >= s0) & (t < s1)


def check_has_scans(swath: Mapping[str, Any]) -> None:
    """SmrayError naming the file when a file has no valid scan on the day in its name."""
    keep = scans_in_day(swath, swath["date"])
    if not keep.any():
        n = swath["time"].shape[0]
        valid = np.isfinite(swath["time"])
        what = "no valid scan time" if not valid.any() else "none of them on that day"
        raise SmrayError(f"{swath['name']}: no scans for {swath['date']} ({n} scans in the file, {what})")


# --------------------------------------------------------------------------------------------
# Gridding
# --------------------------------------------------------------------------------------------
def _unit(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    la, lo = np.deg2rad(lat), np.deg2rad(lon)
    c = np.cos(la)
    return np.stack([c * np.cos(lo), c * np.sin(lo), np.sin(la)], axis=-1)


def fine_grid(grid: Grid) -> Grid:
    """The 0.25° window with the extent of ``grid`` (whose resolution must be a multiple of 0.25°)."""
    k = grid.res / GRID_RES
    if abs(k - round(k)) > 1e-9 or round(k) < 1:
        raise SmrayError(f"grid {grid.res:g} deg: AE_L2A is gridded at 0.25 deg; the cube grid must be a multiple")
    k = int(round(k))
    return Grid(GRID_RES, grid.row0 * k, int(grid.row1) * k, grid.col0 * k, int(grid.col1) * k)


def grid_samples(lat: np.ndarray, lon: np.ndarray, values: np.ndarray, grid: Grid) -> np.ndarray:
    """Inverse-distance-squared gridding of samples (``lat``, ``lon`` (n,) degrees; ``values``
    (c, n), NaN = no value for that channel) onto the centres of ``grid`` (any resolution):
    float32 (c, nlat, nlon), NaN where a channel has no sample within :data:`RADIUS_KM`."""
    from scipy.spatial import cKDTree

    values = np.atleast_2d(np.asarray(values, dtype=np.float64))
    out = np.full((values.shape[0], *grid.shape), np.nan, dtype=np.float32)
    ok = np.isfinite(lat) & np.isfinite(lon) & np.isfinite(values).any(axis=0)
    if not ok.any():
        return out
    pts = _unit(lat[ok], lon[ok])
    vals = values[:, ok]
    tree = cKDTree(pts)
    chord = 2.0 * np.sin(RADIUS_KM / EARTH_RADIUS_KM / 2.0)
    flat = out.reshape(values.shape[0], -1)
    lon_c = grid.lon
    for r0 in range(0, grid.nlat, max(1, CHUNK_CELLS // grid.nlon)):  # bounded memory: rows in chunks
        r1 = min(grid.nlat, r0 + max(1, CHUNK_CELLS // grid.nlon))
        la, lo = np.meshgrid(grid.lat[r0:r1], lon_c, indexing="ij")
        dist, idx = tree.query(_unit(la.ravel(), lo.ravel()), k=MAX_SAMPLES, distance_upper_bound=chord,
                               workers=-1)
        dist, idx = dist.reshape(la.size, -1), idx.reshape(la.size, -1)
        hit = np.isfinite(dist)
        cells = np.nonzero(hit.any(axis=1))[0]
        if cells.size == 0:
            continue
        dist, idx, hit = dist[cells], idx[cells], hit[cells]
        km = 2.0 * EARTH_RADIUS_KM * np.arcsin(np.minimum(np.where(hit, dist, 0.0) / 2.0, 1.0))
        w = np.where(hit, 1.0 / np.maximum(km, MIN_DIST_KM) ** 2, 0.0)
        safe = np.where(hit, idx, 0)
        for c in range(values.shape[0]):
            v = vals[c][safe]
            wc = np.where(hit & np.isfinite(v), w, 0.0)
            num = (wc * np.where(wc > 0, v, 0.0)).sum(axis=1)
            den = wc.sum(axis=1)
            with np.errstate(invalid="ignore", divide="ignore"):
                flat[c, r0 * grid.nlon + cells] = np.where(den > 0, num / den, np.nan)
    return out


def grid_swaths(swaths: Sequence[Mapping[str, Any]], day: dt.date, grid: Grid,
                channels: Sequence[str] = CHANNELS) -> np.ndarray:
    """One pass of one UTC day onto ``grid``: float32 (len(channels), nlat, nlon) K, from the scans
    of ``swaths`` (:func:`read_l2a_swath` results, all of one pass) whose time is in ``day``,
    gridded at 0.25° (:func:`grid_samples`) and area-averaged to a coarser ``grid``."""
    from smray.formats.jaxa_l3 import aggregate_area

    fine = fine_grid(grid)
    lats, lons, vals = [], [], []
    for sw in swaths:
        keep = scans_in_day(sw, day)
        if not keep.any():
            continue
        lats.append(sw["lat"][keep].ravel())
        lons.append(sw["lon"][keep].ravel())
        vals.append(np.stack([sw["tb"][c][keep].ravel() for c in channels]))
    if not lats:
        return np.full((len(channels), *grid.shape), np.nan, dtype=np.float32)
    lat, lon, v = np.concatenate(lats), np.concatenate(lons), np.concatenate(vals, axis=1)
    # only samples that can reach the window (the radius is < 0.25 deg of latitude)
    w, s, e, n = fine.bounds
    margin = RADIUS_KM / 111.0 + 1e-6
    near = np.isfinite(lat) & (lat >= s - margin) & (lat <= n + margin)
    if not fine.is_periodic:
        cos = np.maximum(np.cos(np.deg2rad(np.minimum(np.abs(lat), 89.0))), 1e-3)
        dlon = margin / cos
        with np.errstate(invalid="ignore"):
            near &= (((lon - (w - dlon)) % 360.0) <= (e - w + 2 * dlon))
    values = grid_samples(lat[near], lon[near], v[:, near], fine)
    if fine.res == grid.res:
        return values
    return np.stack([aggregate_area(values[c], grid.shape) for c in range(len(channels))]).astype(np.float32)


def grid_day(sources: Sequence[Any], day: dt.date, grid: Grid | None = None, *,
             channels: Sequence[str] = CHANNELS) -> dict[str, np.ndarray]:
    """Read AE_L2A files (paths/URLs) and grid them per pass (the pass in each name) for the UTC
    ``day``: pass → float32 (len(channels), nlat, nlon) K on ``grid`` (default 0.25° global). Files
    named for ``day`` must hold scans of it (:func:`check_has_scans`); files of other days only
    contribute their scans that fall in ``day``."""
    grid = grid or Grid(GRID_RES)
    by_pass: dict[str, list[dict[str, Any]]] = {}
    for src in sources:
        sw = read_l2a_swath(src, channels=channels)
        if sw["date"] == day:
            check_has_scans(sw)
        by_pass.setdefault(sw["pass_"], []).append(sw)
    return {p: grid_swaths(sws, day, grid, channels) for p, sws in sorted(by_pass.items())}


# --------------------------------------------------------------------------------------------
# Writing (the twin, test files)
# --------------------------------------------------------------------------------------------
def encode_tb(values_k: np.ndarray) -> np.ndarray:
    """int16 counts of K: round((K − 327.68) / 0.01), NaN → :data:`FILL_RAW`."""
    values_k = np.asarray(values_k, dtype=np.float64)
    out = np.full(values_k.shape, FILL_RAW, dtype=np.int16)
    ok = np.isfinite(values_k)
    out[ok] = np.clip(np.rint((values_k[ok] - OFFSET) / SCALE), FILL_RAW + 1, 32767).astype(np.int16)
    return out


def write_l2a(path: str | os.PathLike, lat: np.ndarray, lon: np.ndarray, time_tai93: np.ndarray,
              tbs: Mapping[str, np.ndarray], *, compress: bool = True) -> None:
    """Write an AE_L2A-like HDF4 file with pyhdf: ``Latitude``/``Longitude`` float32 (scans,
    pixels), ``Time`` float64 (scans,) TAI93 seconds, and the TB fields of ``tbs`` (channel code
    → (scans, pixels); float arrays are K and encoded by :func:`encode_tb`, integer arrays are
    stored as they are) with ``SCALE_FACTOR``/``OFFSET`` attributes. Dimensions are named
    ``DataTrack_lo:Low_Res_Swath`` / ``DataXTrack_lo:Low_Res_Swath`` like HDF-EOS2 swath fields."""
    SD = _pyhdf()
    lat = np.asarray(lat, dtype=np.float32)
    shape = lat.shape
    sd = SD.SD(os.fspath(path), SD.SDC.WRITE | SD.SDC.CREATE | SD.SDC.TRUNC)
    try:
        sd.attr("StructMetadata.0").set(SD.SDC.CHAR8, f"GROUP=SwathStructure\n\tGROUP=SWATH_1\n\t\t"
                                                      f"SwathName=\"{SWATH}\"\n\tEND_GROUP=SWATH_1\n"
                                                      f"END_GROUP=SwathStructure\nEND\n")
        items = [("Latitude", SD.SDC.FLOAT32, lat), ("Longitude", SD.SDC.FLOAT32, np.asarray(lon, np.float32)),
                 ("Time", SD.SDC.FLOAT64, np.asarray(time_tai93, np.float64))]
        for ch, arr in tbs.items():
            arr = np.asarray(arr)
            items.append((FIELDS[ch.upper()], SD.SDC.INT16, encode_tb(arr) if arr.dtype.kind == "f"
                          else arr.astype(np.int16)))
        for sds_name, kind, arr in items:
            if arr.shape != (shape if arr.ndim == 2 else shape[:1]):
                raise SmrayError(f"{sds_name}: shape {arr.shape} does not match the swath {shape}")
            sds = sd.create(sds_name, kind, arr.shape)
            try:
                for k, dim in enumerate(("DataTrack_lo", "DataXTrack_lo")[:arr.ndim]):
                    sds.dim(k).setname(f"{dim}:{SWATH}")
                if kind == SD.SDC.INT16:
                    sds.attr("SCALE_FACTOR").set(SD.SDC.FLOAT32, SCALE)
                    sds.attr("OFFSET").set(SD.SDC.FLOAT32, OFFSET)
                    sds.attr("UNIT").set(SD.SDC.CHAR8, "Kelvin")
                if compress and arr.ndim == 2:
                    sds.setcompress(SD.SDC.COMP_DEFLATE, value=1)
                sds[:] = arr
            finally:
                sds.endaccess()
    finally:
        sd.end()


__all__ = ["PRODUCT", "FIELDS", "CHANNELS", "parse_l2a_name", "l2a_filename", "tai93_to_utc_seconds",
           "utc_seconds_to_tai93", "day_seconds", "decode_tb", "read_l2a_swath", "scans_in_day", "check_has_scans",
           "fine_grid", "grid_samples", "grid_swaths", "grid_day", "encode_tb", "write_l2a"]
