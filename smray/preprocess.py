"""Per-day screening and compositing of AMSR-E brightness temperatures (pure numpy, no I/O).

One day of one grid is processed as::

    screen today and the day before  →  composite per pass  →  QC flags on the composited TBs

* :func:`screen_tb` — impossible TBs (outside ``[qc.tb_min_k, qc.tb_max_k]``, or ±inf) become NaN.
* :func:`composite` — with ``qc.composite_days = 2`` a swath gap of today is filled from the day
  before, same pass (physics.md §3: the next day's swaths fall into the equatorial gaps).
* :func:`rfi_flags`, :func:`frozen_flags`, :func:`water_flags` — the per-pixel QC reasons.
* :func:`fill_water` — the coastal rule for land-only inputs (AE_Land3 fills the ocean): water and
  coastal cells without a TB take the TBs of the nearest observed land cell, flagged
  ``water_filled`` (and still ``no_observation``), so the 9×9 windows of coastal land cells are
  complete (ingest applies it, ``qc.water_fill``).
* :func:`preprocess_day` — all of it for both passes: ``tb (2, 4, nlat, nlon)`` float32 and
  ``qc (2, nlat, nlon)`` uint16 with the bits of :data:`smray.qc.FLAGS` (``day_missing`` is set by
  the ingest, not here).

Conventions: a TB array of one pass is float32 kelvin of shape ``(4, nlat, nlon)`` with channels in
:data:`CHANNELS` order and NaN = not observed. **The four channels of a pixel go together**: a pixel
counts as observed only when all four channels are valid; one impossible channel screens the whole
pixel, a partially observed pixel is a gap, and compositing copies whole pixels, never single
channels. So every returned pixel is either four valid TBs from one day, or four NaNs.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from smray.config import QCConfig
from smray.errors import SmrayError
from smray.qc import FLAGS, QC_DTYPE

__all__ = ["CHANNELS", "PASSES", "screen_tb", "composite", "rfi_index", "rfi_flags", "frozen_flags",
           "water_flags", "fill_water", "preprocess_day", "valid_centres"]

#: TB channels, in array order: 6.9 GHz H, V; 10.7 GHz H, V.
CHANNELS: tuple[str, ...] = ("06H", "06V", "10H", "10V")
#: Overpasses, in array order: ascending (13:30 local), descending (01:30 local).
PASSES: tuple[str, ...] = ("A", "D")

_I06H, _I06V, _I10H, _I10V = (CHANNELS.index(c) for c in CHANNELS)


def _check_tb(tb: np.ndarray, what: str) -> np.ndarray:
    arr = np.asarray(tb)
    if arr.ndim < 1 or arr.shape[0] != len(CHANNELS):
        raise SmrayError(f"{what}: expected shape ({len(CHANNELS)}, nlat, nlon) with channels "
                         f"{', '.join(CHANNELS)}, got {arr.shape}")
    return arr


def _observed(tb: np.ndarray) -> np.ndarray:
    """bool ``(nlat, nlon)``: all four channels finite."""
    return np.isfinite(tb).all(axis=0)


def screen_tb(tb: np.ndarray, cfg: QCConfig) -> tuple[np.ndarray, np.ndarray]:
    """Screen physically impossible brightness temperatures.

    Args:
        tb: TBs of one pass, K, shape ``(4, nlat, nlon)`` in :data:`CHANNELS` order, NaN = not observed.
        cfg: ``tb_min_k`` and ``tb_max_k`` (K) bound the possible values (inclusive).

    Returns:
        ``(screened, out_of_range)``: ``screened`` float32 ``(4, nlat, nlon)``, a copy of ``tb`` in which
        every pixel with a value outside ``[tb_min_k, tb_max_k]`` or ±inf in *any* channel has *all*
        four channels set to NaN; ``out_of_range`` bool ``(nlat, nlon)`` marks those pixels. NaN itself
        is "not observed", not out of range, and is left alone (a partially observed pixel is kept
        as it is; :func:`composite` treats it as a gap).
    """
    arr = _check_tb(tb, "screen_tb").astype(np.float32, copy=True)
    with np.errstate(invalid="ignore"):
        bad = ~np.isnan(arr) & ((arr < cfg.tb_min_k) | (arr > cfg.tb_max_k) | np.isinf(arr))
    out_of_range = bad.any(axis=0)
    arr[:, out_of_range] = np.nan
    return arr, out_of_range


def composite(today: np.ndarray, previous: np.ndarray | None,
              composite_days: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fill today's swath gaps of one pass from the day before (same pass), whole pixels only.

    Args:
        today: screened TBs of the day, K, float ``(4, nlat, nlon)``, NaN = not observed.
        previous: screened TBs of the same pass on the day before, same shape, or None (unknown).
        composite_days: 1 (the day only: nothing is filled) or 2 (fill from ``previous``).

    Returns:
        ``(tb, filled, missing)``: ``tb`` float32 ``(4, nlat, nlon)``; ``filled`` bool ``(nlat, nlon)``,
        the pixels taken from ``previous``; ``missing`` bool ``(nlat, nlon)``, the pixels without an
        observation after filling (all four channels NaN in ``tb``).

    A pixel is observed when all four channels are finite. Observed pixels of ``today`` are returned
    bit-exactly; a gap (any channel not finite) takes all four channels of ``previous`` where that
    pixel is observed there, and is otherwise set to NaN in all channels. Channels of two days are
    never mixed in one pixel.
    """
    if composite_days not in (1, 2):
        raise SmrayError(f"composite: composite_days must be 1 or 2, got {composite_days!r}")
    cur = _check_tb(today, "composite: today").astype(np.float32, copy=True)
    have = _observed(cur)
    filled = np.zeros(have.shape, dtype=bool)
    if composite_days == 2 and previous is not None:
        prev = _check_tb(previous, "composite: previous").astype(np.float32, copy=False)
        if prev.shape != cur.shape:
            raise SmrayError(f"composite: previous day has shape {prev.shape}, today {cur.shape}")
        filled = ~have & _observed(prev)
        cur[:, filled] = prev[:, filled]
    missing = ~(have | filled)
    cur[:, missing] = np.nan
    return cur, filled, missing


def rfi_index(tb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """RFI detection index per polarisation (Njoku et al. 2005).

    Args:
        tb: TBs of one pass, K, ``(4, nlat, nlon)`` in :data:`CHANNELS` order.

    Returns:
        ``(index_h, index_v)``, K, each ``(nlat, nlon)``: TB(6.9 GHz) − TB(10.7 GHz) in H and in V.
        Natural surfaces give −7..0 K; C-band RFI drives it positive. X-band RFI drives it negative
        and cannot be caught from one day's index. NaN where a channel is NaN.
    """
    arr = _check_tb(tb, "rfi_index")
    return arr[_I06H] - arr[_I10H], arr[_I06V] - arr[_I10V]


def rfi_flags(tb: np.ndarray, cfg: QCConfig) -> tuple[np.ndarray, np.ndarray]:
    """C-band RFI flags from the index of :func:`rfi_index`.

    Args:
        tb: TBs of one pass, K, ``(4, nlat, nlon)``.
        cfg: ``rfi_flag_k``, ``rfi_strong_k`` (K).

    Returns:
        ``(suspect, strong)`` bool ``(nlat, nlon)``: the index in H *or* V is strictly above
        ``rfi_flag_k`` (suspect) / ``rfi_strong_k`` (strong). NaN indices flag nothing. With the
        default thresholds a strong pixel is also suspect.
    """
    index_h, index_v = rfi_index(tb)
    with np.errstate(invalid="ignore"):
        suspect = (index_h > cfg.rfi_flag_k) | (index_v > cfg.rfi_flag_k)
        strong = (index_h > cfg.rfi_strong_k) | (index_v > cfg.rfi_strong_k)
    return np.asarray(suspect, dtype=bool), np.asarray(strong, dtype=bool)


def water_flags(land_fraction: np.ndarray, cfg: QCConfig) -> tuple[np.ndarray, np.ndarray]:
    """Open-water and coastal flags from the land fraction.

    Args:
        land_fraction: land fraction of the cell, 0–1, ``(nlat, nlon)``.
        cfg: ``land_fraction_min``, ``coastal_land_fraction``.

    Returns:
        ``(open_water, coastal)`` bool ``(nlat, nlon)``: ``open_water`` where the land fraction is below
        ``land_fraction_min`` (or not finite: an unknown surface is not land); ``coastal`` where it is not
        open water but below ``coastal_land_fraction`` (the footprint mixes in water, tens of K at H-pol).
    """
    lf = np.asarray(land_fraction, dtype=np.float64)
    finite = np.isfinite(lf)
    lf0 = np.where(finite, lf, 0.0)
    open_water = ~finite | (lf0 < cfg.land_fraction_min)
    coastal = ~open_water & (lf0 < cfg.coastal_land_fraction)
    return open_water, coastal


def frozen_flags(tb: np.ndarray, stl1: np.ndarray | None, land_fraction: np.ndarray,
                 cfg: QCConfig) -> np.ndarray:
    """Frozen ground or snow, over land (land fraction at least ``land_fraction_min``).

    Args:
        tb: TBs of one pass, K, ``(4, nlat, nlon)``.
        stl1: reference soil temperature (ERA level 1, daily mean), K, ``(nlat, nlon)``, or None.
        land_fraction: 0–1, ``(nlat, nlon)``.
        cfg: ``frozen_soil_k``, ``cold_tb10v_k``, ``land_fraction_min``.

    Returns:
        bool ``(nlat, nlon)``: land pixels with ``stl1 < frozen_soil_k``; where ``stl1`` is None or NaN,
        the fallback: land pixels with TB(10.7 V) ``< cold_tb10v_k``.

    Limitation of the fallback: 6.9/10.7 GHz alone detect frozen soil and snow poorly (dry snow is
    nearly transparent there, and a cold, dry, bare surface looks like frozen soil); a real system
    uses 36.5 GHz (e.g. the TB(36.5 V) − TB(18.7 V) spectral gradient) or a reanalysis temperature.
    Water in the footprint also lowers TB(10.7 V), so the fallback over-flags coastal land.
    """
    arr = _check_tb(tb, "frozen_flags")
    open_water, _ = water_flags(land_fraction, cfg)
    land = ~open_water
    with np.errstate(invalid="ignore"):
        cold_tb = arr[_I10V] < cfg.cold_tb10v_k
        if stl1 is None:
            frozen = cold_tb
        else:
            soil = np.asarray(stl1, dtype=np.float64)
            if soil.shape != land.shape:
                raise SmrayError(f"frozen_flags: stl1 has shape {soil.shape}, land_fraction {land.shape}")
            frozen = np.where(np.isnan(soil), cold_tb, soil < cfg.frozen_soil_k)
    return land & np.asarray(frozen, dtype=bool)


def fill_water(tb: np.ndarray, qc: np.ndarray, land_fraction: np.ndarray, cfg: QCConfig,
               periodic: bool = False) -> tuple[np.ndarray, np.ndarray, int]:
    """The coastal rule for land-only TB products: fill the water of a day from the nearest land.

    A land-only product (AE_Land3: −9999 over ocean and lakes) leaves every water cell NaN, and
    its own land mask blanks some cells that are land on the cube's grid too; so the 9×9 window of
    every land cell within 4 cells of a coast or lake is incomplete, and the cell can be neither a
    training centre nor predicted. This fills, per pass, every cell **without a TB whose land
    fraction is below** ``cfg.coastal_land_fraction`` (open water, and the mixed cells the
    ``coastal`` flag marks) with the four TBs of the nearest cell (Euclidean, in cells) that is
    observed and not such a cell, when that cell is at most ``cfg.water_fill_cells`` away (default
    6 ≥ 4·√2: every cell of a 9×9 window around an observed land centre is in reach).

    Filled cells get the ``water_filled`` bit and **keep** ``no_observation`` (nothing was observed
    there): with the default ``qc.block`` they are never a training centre, never predicted and never
    scored — they are window context only. Cells of land fraction ≥ ``coastal_land_fraction`` are
    never filled: a swath gap over land stays a gap. Longitudes wrap when ``periodic``.

    Args:
        tb: ``(2, 4, nlat, nlon)`` K (:func:`preprocess_day`'s output).
        qc: ``(2, nlat, nlon)`` its QC bits.
        land_fraction: ``(nlat, nlon)``, 0–1.
        cfg: ``coastal_land_fraction``, ``water_fill_cells``.
        periodic: wrap in longitude.

    Returns:
        ``(tb, qc, n)``: new arrays and the number of (pass, cell) values filled.
    """
    from scipy import ndimage

    tb = np.array(tb, dtype=np.float32, copy=True)
    qc = np.array(qc, dtype=QC_DTYPE, copy=True)
    lf = np.asarray(land_fraction, dtype=np.float64)
    fillable = ~(np.where(np.isfinite(lf), lf, 0.0) >= cfg.coastal_land_fraction)
    ny, nx = fillable.shape
    pad = min(nx, int(np.ceil(cfg.water_fill_cells))) if periodic else 0
    cols = np.arange(-pad, nx + pad) % nx
    total = 0
    for p in range(tb.shape[0]):
        observed = np.isfinite(tb[p]).all(axis=0)
        source = observed & ~fillable
        target = fillable & ~observed
        if not source.any() or not target.any():
            continue
        dist, (ii, jj) = ndimage.distance_transform_edt(~source[:, cols], return_indices=True)
        dist, ii, jj = dist[:, pad:pad + nx], ii[:, pad:pad + nx], cols[jj[:, pad:pad + nx]]
        fill = target & (dist <= cfg.water_fill_cells)
        if not fill.any():
            continue
        tb[p][:, fill] = tb[p][:, ii[fill], jj[fill]]
        qc[p][fill] |= QC_DTYPE(FLAGS["water_filled"])
        total += int(fill.sum())
    return tb, qc, total


def preprocess_day(tb_today: Mapping[str, np.ndarray], tb_previous: Mapping[str, np.ndarray] | None,
                   swvl1: np.ndarray, stl1: np.ndarray | None, land_fraction: np.ndarray,
                   cfg: QCConfig) -> tuple[np.ndarray, np.ndarray]:
    """Screen, composite and flag one day, both passes.

    Args:
        tb_today: pass (``"A"``/``"D"``) → TBs of the day, K, ``(4, nlat, nlon)``, NaN = not observed.
            A pass absent from the mapping (its files are missing) is all NaN / ``no_observation``.
        tb_previous: the same for the day before, or None (no previous day); used only with
            ``cfg.composite_days == 2``. A pass absent from it fills nothing.
        swvl1: reference volumetric soil moisture, m³/m³, ``(nlat, nlon)``, NaN = missing.
        stl1: reference soil temperature (daily mean), K, ``(nlat, nlon)``, or None.
        land_fraction: 0–1, ``(nlat, nlon)``.
        cfg: the QC settings.

    Returns:
        ``(tb, qc)``: ``tb`` float32 ``(2, 4, nlat, nlon)`` (:data:`PASSES` × :data:`CHANNELS`), the
        composited TBs; ``qc`` uint16 ``(2, nlat, nlon)`` with the :data:`smray.qc.FLAGS` bits
        ``no_observation`` (the returned pixel is NaN; after :func:`fill_water` it may hold the
        nearest land's TBs, flagged ``water_filled``), ``composited``, ``tb_out_of_range`` (today's
        TB of the pixel was impossible and screened; the pixel may still be filled from the day
        before, and then also carries ``composited``), ``rfi_suspect``, ``rfi_strong``,
        ``frozen_or_snow``, ``open_water``, ``coastal`` and ``reference_missing`` (swvl1 not finite).
        RFI and frozen flags are computed on the composited TBs. Flags never blank TBs; only
        screening does.
    """
    lf = np.asarray(land_fraction)
    if lf.ndim != 2:
        raise SmrayError(f"preprocess_day: land_fraction must be (nlat, nlon), got shape {lf.shape}")
    shape = (len(CHANNELS), *lf.shape)
    for name, arr in (("swvl1", swvl1), ("stl1", stl1)):
        if arr is not None and np.shape(arr) != lf.shape:
            raise SmrayError(f"preprocess_day: {name} has shape {np.shape(arr)}, land_fraction {lf.shape}")

    def get(tbs: Mapping[str, np.ndarray] | None, pass_: str, what: str) -> np.ndarray | None:
        if tbs is None:
            return None
        unknown = set(tbs) - set(PASSES)
        if unknown:
            raise SmrayError(f"preprocess_day: {what}: unknown pass {sorted(unknown)[0]!r} "
                             f"(known: {', '.join(PASSES)})")
        arr = tbs.get(pass_)
        if arr is not None and np.shape(arr) != shape:
            raise SmrayError(f"preprocess_day: {what}[{pass_!r}] has shape {np.shape(arr)}, expected {shape}")
        return arr

    open_water, coastal = water_flags(lf, cfg)
    static = np.zeros(lf.shape, dtype=QC_DTYPE)
    static[open_water] |= FLAGS["open_water"]
    static[coastal] |= FLAGS["coastal"]
    static[~np.isfinite(np.asarray(swvl1, dtype=np.float64))] |= FLAGS["reference_missing"]

    tb_out = np.full((len(PASSES), *shape), np.nan, dtype=np.float32)
    qc = np.empty((len(PASSES), *lf.shape), dtype=QC_DTYPE)
    for p, pass_ in enumerate(PASSES):
        raw = get(tb_today, pass_, "tb_today")
        today, out_of_range = (screen_tb(raw, cfg) if raw is not None
                               else (np.full(shape, np.nan, np.float32), np.zeros(lf.shape, bool)))
        raw_prev = get(tb_previous, pass_, "tb_previous")
        previous = screen_tb(raw_prev, cfg)[0] if raw_prev is not None else None
        tb, filled, missing = composite(today, previous, cfg.composite_days)
        suspect, strong = rfi_flags(tb, cfg)
        frozen = frozen_flags(tb, stl1, lf, cfg)

        q = static.copy()
        for name, mask in (("no_observation", missing), ("composited", filled),
                           ("tb_out_of_range", out_of_range), ("rfi_suspect", suspect),
                           ("rfi_strong", strong), ("frozen_or_snow", frozen)):
            q[mask] |= FLAGS[name]
        tb_out[p] = tb
        qc[p] = q
    return tb_out, qc


def valid_centres(qc: np.ndarray, block_mask: int) -> np.ndarray:
    """bool array of ``qc``'s shape: True where none of the bits in ``block_mask`` is set
    (``block_mask`` e.g. ``smray.qc.mask_of(cfg.qc.block)``)."""
    q = np.asarray(qc)
    if not np.issubdtype(q.dtype, np.integer):
        raise SmrayError(f"valid_centres: qc must be an integer bitmask, got dtype {q.dtype}")
    return (q & int(block_mask)) == 0
