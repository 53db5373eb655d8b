"""The QC bitmask of the cube (``qc(time, pass, lat, lon)``, uint16) and its CF attributes.

One bit per reason; a pixel may carry several. Which flags block a pixel from being a patch
centre (or from scoring) is configurable (``qc.block``).
"""

from __future__ import annotations

import numpy as np

#: flag name → bit value. Order is the CF ``flag_meanings`` order.
FLAGS: dict[str, int] = {
    "no_observation": 1,  # no TB on the day nor, when compositing, on the day before (same pass)
    "composited": 2,  # TB taken from the previous day of the same pass (swath-gap fill)
    "tb_out_of_range": 4,  # a physically impossible TB in some channel (screened to NaN)
    "rfi_suspect": 8,  # RFI index TB(6.9) − TB(10.7) above qc.rfi_flag_k in H or V
    "rfi_strong": 16,  # RFI index above qc.rfi_strong_k
    "frozen_or_snow": 32,  # frozen ground or snow (reference soil temperature, or a cold-TB fallback)
    "open_water": 64,  # land fraction below qc.land_fraction_min (ocean, lakes)
    "coastal": 128,  # land fraction below qc.coastal_land_fraction: footprint mixes in water
    "reference_missing": 256,  # no reference swvl1 for the cell and day
    "day_missing": 512,  # the whole day was skipped at ingest (see the ingest log)
    # no TB and land fraction below qc.coastal_land_fraction (a land-only input's water): the nearest
    # observed land cell's TBs, as window context only (the cell keeps no_observation)
    "water_filled": 1024,
}

DEFAULT_BLOCKING: tuple[str, ...] = ("no_observation", "tb_out_of_range", "rfi_strong", "frozen_or_snow",
                                     "open_water", "reference_missing", "day_missing")
QC_DTYPE = np.uint16


def mask_of(names: tuple[str, ...] | list[str]) -> int:
    """OR of the named flags' bits (unknown names raise KeyError naming the flag)."""
    out = 0
    for name in names:
        if name not in FLAGS:
            raise KeyError(f"unknown QC flag {name!r} (known: {', '.join(FLAGS)})")
        out |= FLAGS[name]
    return out


def cf_attrs() -> dict[str, object]:
    """CF-1.8 attributes of the ``qc`` variable."""
    return {
        "long_name": "quality control bitmask",
        "standard_name": "status_flag",
        "flag_masks": np.array(list(FLAGS.values()), dtype=QC_DTYPE).tolist(),
        "flag_meanings": " ".join(FLAGS),
        "valid_range": [0, int(sum(FLAGS.values()))],
    }


def describe(value: int) -> list[str]:
    """Names of the flags set in ``value``."""
    return [name for name, bit in FLAGS.items() if value & bit]
