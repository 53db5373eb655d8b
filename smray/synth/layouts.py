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
  area-weighted regriddings (docs/formats.md gives the measured error).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import numpy as np

from smray.errors import SmrayError
from smray.formats import nsidc_flat
from smray.grid import Grid

LAYOUTS = ("jaxa_l3", "nsidc_0302", "nsidc_0301")
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
