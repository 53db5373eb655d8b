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
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import numpy as np

from smray.config import TB_LAYOUTS
from smray.errors import SmrayError
from smray.formats import nsidc_flat
from smray.grid import Grid

LAYOUTS = TB_LAYOUTS
FLAT_LAYOUTS = ("nsidc_0302", "nsidc_0301")
LAND3 = "nsidc_ae_land3"
#: EASE cells with a land fraction below this hold the AE_Land3 fill −9999 (ocean and lakes)
LAND3_LAND_MIN = 0.5
FLAT_CHANNELS = ("06H", "06V", "10H", "10V")


def check_layout(layout: str) -> str:
    if layout not in LAYOUTS:
        raise SmrayError(f"synth.tb_layout: {layout!r} is not one of {', '.join(LAYOUTS)}")
    return layout


def flat_path(layout: str, day: dt.date, pass_: str, channel: str) -> str:
    """Archive path of one NSIDC flat file (the FTP tree's year/day-of-year folders)."""
    return f"amsr/{day:%Y}/{day.timetuple().tm_yday:03d}/{nsidc_flat.flat_filename(layout, day, pass_, channel)}"


def write_flat_day(layout: str, day: dt.date, tbs: dict[str, dict[str, np.ndarray]], grid: Grid,
                   write: Callable[[str, bytes], None]) -> list[str]:
    """Write one day's NSIDC-0302/0301 files: for each pass the four channel files and the
    ``.TIM`` (cells without a TB hold the time anyway: the twin has no per-cell time gaps).
    ``tbs`` is pass → channel code (``"06H"`` …) → (nlat, nlon) K on ``grid``; ``write(path,
    bytes)`` stores a file. Returns the paths written."""
    written = []
    for pass_, chans in tbs.items():
        for ch in FLAT_CHANNELS:
            native = nsidc_flat.from_grid(chans[ch], layout, grid)
            path = flat_path(layout, day, pass_, ch)
            write(path, nsidc_flat.encode_tb(native))
            written.append(path)
        path = flat_path(layout, day, pass_, "TIM")
        write(path, nsidc_flat.encode_time(nsidc_flat.overpass_minutes(pass_, layout)))
        written.append(path)
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
