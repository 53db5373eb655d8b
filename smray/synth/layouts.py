"""The brightness-temperature layouts the twin can write (``synth.tb_layout``).

* ``jaxa_l3`` (default): JAXA L3 daily HDF5, one file per day, pass and band
  (``amsr/YYYY/MM/GW1AM2_…_L3SGT{06,10}LA2220220.h5``), written by :mod:`smray.synth.twin`;
* ``nsidc_0302``: NSIDC quarter-degree flat binary, one file per day, pass and channel plus a
  ``.TIM`` per day and pass (``amsr/YYYY/DDD/ID2r1-AMSRE-D.25YYYYDDDp.v03.{06H,06V,10H,10V,TIM}``);
  a twin grid coarser than 0.25° (a multiple of it) is repeated onto the 0.25° cells, so the
  files hold the twin's own TBs rounded to the products' 0.1 K;
* ``nsidc_0301``: NSIDC global EASE-Grid ("ML", 25 km) flat binary, same naming with ``ML``
  (``ID2r3-AMSRE-MLYYYYDDDp.v03.…``); the twin's TBs are area-averaged onto the EASE cells
  (:func:`smray.formats.ease.grid_to_ease`), so reading them back is a round trip through two
  area-weighted regriddings (docs/formats.md gives the measured error);
* ``nsidc_ae_land3``: NSIDC AE_Land3 daily HDF-EOS2/HDF4, one file per day holding both passes
  (``amsr/YYYY.MM.DD/AMSR_E_L3_DailyLand_V06_YYYYMMDD.hdf``, the NSIDC DAAC's date folders), the
  twin's TBs area-averaged onto the global EASE-Grid 1.0 (:func:`smray.formats.ease.grid_to_ease`)
  as int16 0.1 K. **A land-only product**: like the real one (NSIDC's AE_Land3 data-fields page:
  −9999 = "no retrieval due to ... screening by land surface classification"), every EASE cell
  whose land fraction (the twin's land, lakes excluded, area-averaged the same way) is below
  :data:`LAND3_LAND_MIN` holds −9999 in every TB field; cells not observed (swath gaps) hold 9999.
  The real product's own land mask and its threshold are not documented there: this rule is the
  twin's, not NSIDC's.
* ``nsidc_ae_l2a``: NSIDC AE_L2A half-orbit swath HDF4 files
  (``amsr/YYYY.MM.DD/AMSR_E_L2A_BrightnessTemperatures_V12_YYYYMMDDhhmm_{A,D}.hdf``, named by the
  first scan's UTC time), ``Low_Res_Swath`` fields ``Time``/``Latitude``/``Longitude`` and the 6.9
  and 10.7 GHz ``…_Res.1_TB`` (int16, raw × 0.01 + 327.68 K, −32768 = no value). The swath is the
  twin's own orbit (:mod:`smray.synth.orbit`: the ground track every :data:`L2A_SCAN_S` s,
  :data:`L2A_PIXELS` footprints on the great circle through it perpendicular to the track, out to
  ±722.5 km, the half swath the coverage masks use); half-orbits run from the southernmost to the
  northernmost point (A) and back (D). Each footprint holds the twin's gridded TB of the pass (the
  very field the other layouts write) of the grid cell containing it, so footprints in a cell the
  twin does not observe (its centre is outside the swath) or outside a regional window hold −32768.
  **Twin choices, not NSIDC's**: the swath is thinned (73 footprints a scan, a scan every 3 s: about
  20 km apart both ways; the real files have 243 a scan every 1.5 s, about 10 km) to keep files
  small; scan lines are straight, not the conical scan's arcs; each day's task writes the scans of
  its own UTC day, so the half-orbit across midnight is two files (the second named ``…0000``),
  where a real archive has one file named on the first day (ingest reads both kinds); a regional
  twin writes only the scans that touch its window.
"""

from __future__ import annotations

import datetime as dt
import gzip
from collections.abc import Callable

import numpy as np

from smray.config import FLAT_TB_LAYOUTS, TB_LAYOUTS
from smray.errors import SmrayError
from smray.formats import nsidc_flat
from smray.grid import Grid

LAYOUTS = TB_LAYOUTS
FLAT_LAYOUTS = FLAT_TB_LAYOUTS
LAND3 = "nsidc_ae_land3"
#: EASE cells with a land fraction below this hold the AE_Land3 fill −9999 (ocean and lakes)
LAND3_LAND_MIN = 0.5
FLAT_CHANNELS = ("06H", "06V", "10H", "10V")
L2A = "nsidc_ae_l2a"
#: the twin's AE_L2A swath: footprints per scan line and seconds between scans (see the docstring)
L2A_PIXELS = 73
L2A_SCAN_S = 3.0


#: the last day of AMSR-E data (Aqua's antenna stopped 2011-10-04) and the first of AMSR2's L3 archive
AMSRE_LAST = dt.date(2011, 10, 4)
AMSR2_FIRST = dt.date(2012, 7, 3)
#: the layouts whose file names are AMSR2's (JAXA ``GW1AM2_…``); all the others are AMSR-E products
AMSR2_NAMED = ("jaxa_l3",)


def sensor_years_note(layout: str, first: dt.date, last: dt.date) -> str | None:
    """One line when ``layout`` names files after a sensor that did not fly on days in
    ``first``..``last`` (JAXA's AMSR2 names before AMSR2's first day, NSIDC's AMSR-E names after
    AMSR-E's last), else None. The twin writes them anyway: the line says which layout fits."""
    if layout in AMSR2_NAMED and first < AMSR2_FIRST:
        return (f"synth.tb_layout {layout} names its files as AMSR2's (GW1AM2_...), but {first} is before "
                f"AMSR2's first day ({AMSR2_FIRST}); nsidc_0302, nsidc_0301, nsidc_ae_land3 or nsidc_ae_l2a "
                f"write the AMSR-E archive's own names")
    if layout not in AMSR2_NAMED and last > AMSRE_LAST:
        return (f"synth.tb_layout {layout} names its files as AMSR-E's, but {last} is after AMSR-E's last "
                f"day ({AMSRE_LAST}); jaxa_l3 writes AMSR2's names")
    return None


def check_layout(layout: str) -> str:
    if layout not in LAYOUTS:
        raise SmrayError(f"synth.tb_layout: {layout!r} is not one of {', '.join(LAYOUTS)}")
    return layout


def flat_path(layout: str, day: dt.date, pass_: str, channel: str) -> str:
    """Archive path of one NSIDC flat file (the FTP tree's year/day-of-year folders)."""
    return f"amsr/{day:%Y}/{day.timetuple().tm_yday:03d}/{nsidc_flat.flat_filename(layout, day, pass_, channel)}"


def write_flat_day(layout: str, day: dt.date, tbs: dict[str, dict[str, np.ndarray]], grid: Grid,
                   write: Callable[[str, bytes], None], *, gz: bool = False) -> list[str]:
    """Write one day's NSIDC-0302/0301 files: for each pass the four channel files and the
    ``.TIM`` (cells without a TB hold the time anyway: the twin has no per-cell time gaps).
    ``tbs`` is pass → channel code (``"06H"`` …) → (nlat, nlon) K on ``grid``; ``write(path,
    bytes)`` stores a file; ``gz``: gzip-compressed with ``.gz`` added (``synth.gzip``; no time
    stamp in the gzip header, so the files are deterministic). Returns the paths written."""
    written = []

    def put(path: str, data: bytes) -> None:
        if gz:
            path, data = path + ".gz", gzip.compress(data, compresslevel=1, mtime=0)  # 3x faster than 6, 30 % larger
        write(path, data)
        written.append(path)

    for pass_, chans in tbs.items():
        for ch in FLAT_CHANNELS:
            put(flat_path(layout, day, pass_, ch), nsidc_flat.encode_tb(nsidc_flat.from_grid(chans[ch], layout, grid)))
        put(flat_path(layout, day, pass_, "TIM"), nsidc_flat.encode_time(nsidc_flat.overpass_minutes(pass_, layout)))
    return written


def land3_path(day: dt.date) -> str:
    """Archive path of one day's AE_Land3 file (NSIDC DAAC ``YYYY.MM.DD`` folders)."""
    return f"amsr/{day:%Y.%m.%d}/AMSR_E_L3_DailyLand_V06_{day:%Y%m%d}.hdf"


def land3_fields(tbs: dict[str, dict[str, np.ndarray]], grid: Grid, land: np.ndarray) -> dict[str, np.ndarray]:
    """The int16 TB fields (SDS name → (586, 1383) counts of 0.1 K) of one AE_Land3 day from
    ``tbs`` (pass → channel code → (nlat, nlon) K on ``grid``) and the land fraction ``land`` on
    ``grid``: area-weighted onto EASE, −9999 where the EASE cell's land fraction is below
    :data:`LAND3_LAND_MIN`, 9999 where no TB (a swath gap, or outside a regional twin)."""
    from smray.formats import ease
    from smray.formats.nsidc_land3 import GAP, SCREENED, field_name

    water = ~(ease.grid_to_ease(np.where(np.isfinite(land), land, 0.0), grid) >= LAND3_LAND_MIN)
    fields = {}
    for pass_, chans in tbs.items():
        for ch in FLAT_CHANNELS:
            k = ease.grid_to_ease(chans[ch], grid)
            counts = np.full(k.shape, GAP, dtype=np.int16)
            ok = np.isfinite(k)
            counts[ok] = np.rint(k[ok] * 10).astype(np.int16)
            counts[water] = SCREENED
            fields[field_name(pass_, ch.lower())] = counts
    return fields


def write_land3_day(day: dt.date, tbs: dict[str, dict[str, np.ndarray]], grid: Grid, land: np.ndarray,
                    write: Callable[[str, bytes], None]) -> list[str]:
    """Write one day's AE_Land3 file (both passes, 6.9/10.7 GHz H/V; see the module docstring)."""
    import os
    import tempfile

    from smray.formats.nsidc_land3 import write_nsidc_land3

    fd, tmp = tempfile.mkstemp(suffix=".hdf", prefix="smray-twin-land3-")
    os.close(fd)
    try:  # pyhdf writes only to a path
        write_nsidc_land3(tmp, land3_fields(tbs, grid, land))
        with open(tmp, "rb") as fh:
            data = fh.read()
    finally:
        os.remove(tmp)
    path = land3_path(day)
    write(path, data)
    return [path]


def l2a_path(start: dt.datetime, pass_: str) -> str:
    """Archive path of one AE_L2A half-orbit file (NSIDC DAAC ``YYYY.MM.DD`` folders)."""
    from smray.formats.nsidc_l2a import l2a_filename

    return f"amsr/{start:%Y.%m.%d}/{l2a_filename(start, pass_)}"


def l2a_swaths(day: dt.date, grid: Grid) -> list[dict[str, np.ndarray | str]]:
    """The twin's half-orbit segments of one UTC day: ``pass_``, ``seconds`` (scans,) UTC seconds
    of the day, ``lat``/``lon`` (scans, :data:`L2A_PIXELS`) degrees. Only scans with a footprint
    in ``grid``'s window (within one cell) are kept; segments left without a scan are dropped."""
    from smray.synth import orbit

    cycle_day = orbit.day_index(day) % orbit.CYCLE_DAYS
    sec = np.arange(0.0, 86400.0, L2A_SCAN_S)
    t = cycle_day * 86400.0 + sec

    def unit(tt: np.ndarray) -> np.ndarray:
        la, lo, _ = orbit.ground_track(tt)
        la, lo = np.deg2rad(la), np.deg2rad(lo)
        return np.stack([np.cos(la) * np.cos(lo), np.cos(la) * np.sin(lo), np.sin(la)], axis=-1)

    p = unit(t)
    cross = np.cross(p, unit(t + 0.5) - unit(t - 0.5))
    cross /= np.linalg.norm(cross, axis=-1, keepdims=True)
    a = np.linspace(-orbit.HALF_SWATH_KM, orbit.HALF_SWATH_KM, L2A_PIXELS) / orbit.EARTH_RADIUS_KM
    pts = np.cos(a)[None, :, None] * p[:, None, :] + np.sin(a)[None, :, None] * cross[:, None, :]
    lat = np.rad2deg(np.arcsin(np.clip(pts[..., 2], -1.0, 1.0)))
    lon = np.rad2deg(np.arctan2(pts[..., 1], pts[..., 0]))
    half = np.floor(2.0 * t / orbit.PERIOD_S + 0.5).astype(np.int64)  # even: ascending, odd: descending
    if not grid.is_global:
        w, s, e, n = grid.bounds
        m = grid.res
        inside = (lat >= s - m) & (lat <= n + m) & (((lon - (w - m)) % 360.0) <= (e - w + 2 * m))
        keep = inside.any(axis=1)
    else:
        keep = np.ones(len(t), dtype=bool)
    out: list[dict[str, np.ndarray | str]] = []
    for h in np.unique(half):
        sel = (half == h) & keep
        if sel.any():
            out.append({"pass_": "A" if h % 2 == 0 else "D", "seconds": sec[sel], "lat": lat[sel], "lon": lon[sel]})
    return out


def sample_cells(field: np.ndarray, grid: Grid, lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """``field`` (nlat, nlon) on ``grid`` at points: the value of the cell containing each point,
    NaN outside the window."""
    r = np.floor((90.0 - lat) / grid.res).astype(np.int64) - grid.row0
    c = np.floor((lon + 180.0) / grid.res).astype(np.int64) % grid.global_nlon - grid.col0
    ok = (r >= 0) & (r < grid.nlat) & (c >= 0) & (c < grid.nlon)
    out = np.full(lat.shape, np.nan, dtype=np.float64)
    out[ok] = field[np.minimum(r[ok], grid.nlat - 1), c[ok]]
    return out


def write_l2a_day(day: dt.date, tbs: dict[str, dict[str, np.ndarray]], grid: Grid,
                  write: Callable[[str, bytes], None]) -> list[str]:
    """Write one day's AE_L2A half-orbit files (see the module docstring): ``tbs`` is pass →
    channel code → (nlat, nlon) K on ``grid``. Returns the paths written."""
    import os
    import tempfile

    from smray.formats.nsidc_l2a import day_seconds, utc_seconds_to_tai93, write_l2a

    written = []
    day0 = dt.datetime.combine(day, dt.time())
    for seg in l2a_swaths(day, grid):
        pass_ = str(seg["pass_"])
        lat, lon = np.asarray(seg["lat"]), np.asarray(seg["lon"])
        values = {ch: sample_cells(tbs[pass_][ch], grid, lat, lon) for ch in FLAT_CHANNELS}
        seconds = np.asarray(seg["seconds"])
        tai = utc_seconds_to_tai93(day_seconds(day)[0] + seconds)
        start = day0 + dt.timedelta(seconds=float(seconds[0]))
        fd, tmp = tempfile.mkstemp(suffix=".hdf", prefix="smray-twin-l2a-")
        os.close(fd)
        try:  # pyhdf writes only to a path
            write_l2a(tmp, lat, lon, tai, values)
            with open(tmp, "rb") as fh:
                data = fh.read()
        finally:
            os.remove(tmp)
        path = l2a_path(start, pass_)
        write(path, data)
        written.append(path)
    return written
