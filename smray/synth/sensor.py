"""AMSR-E sensor effects on brightness-temperature fields (physics.md §3): footprint, noise, RFI.

Pure functions on (..., nlat, nlon) float fields of a :class:`smray.grid.Grid`. The order a caller
applies them in, per day and pass:

1. mix the surfaces: ``f_land·TB_land + f_lake·TB_lake + f_ocean·TB_ocean`` (K);
2. add the RFI increments of :func:`rfi_increment` (RFI is emitted at the surface, so it is seen
   through the antenna pattern like any other radiance);
3. :func:`footprint_blur` per band: coastal contamination and the RFI spread come from here;
4. :func:`add_noise` (NEΔT per cell and pass).

The RFI source list (:func:`rfi_sources`) is global and independent of the grid, so a regional twin
and the global twin see the same transmitters.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

from smray.errors import SmrayError
from smray.grid import Grid, surface_fractions
from smray.synth.grf import smooth

#: Footprint Gaussian σ in km, (along latitude = major axis, along longitude) per band:
#: FWHM 75×43 km (C) and 51×29 km (X) over 2.355.
FOOTPRINT_SIGMA_KM: dict[str, tuple[float, float]] = {"C": (31.8, 18.3), "X": (21.7, 12.3)}
#: Fraction of the antenna power in the sidelobe term, and its width relative to the main lobe.
SIDELOBE_FRACTION = 0.05
SIDELOBE_WIDTH = 3.0
#: Noise-equivalent ΔT per cell and pass, K (Kawanishi et al. 2003).
NEDT_K: dict[str, float] = {"C": 0.3, "X": 0.6}

#: RFI index thresholds (TB_C − TB_X, K): flag, and "high-level" RFI (Draper 2018).
RFI_FLAG_K = 5.0
RFI_STRONG_K = 10.0
#: Gaussian spread of one RFI source before the footprint blur: one 0.25° cell, km.
RFI_SPOT_SIGMA_KM = 0.25 * 111.195
#: Per-overpass presence probability and amplitude scaling of a source; V/H amplitude ratio range.
RFI_PRESENCE_P = 0.7
RFI_SCALE_RANGE = (0.5, 1.5)
RFI_V_RATIO_RANGE = (0.5, 1.0)
#: Lognormal source amplitude: median (K), σ of ln, cap (K).
RFI_MEDIAN_K = 5.0
RFI_SIGMA_LN = 0.9
RFI_CAP_K = 60.0

#: RFI source regions: name → (band, count, (west, south, east, north) degrees).
RFI_REGIONS: dict[str, tuple[str, int, tuple[float, float, float, float]]] = {
    "usa": ("C", 150, (-125.0, 25.0, -67.0, 49.0)),
    "japan_c": ("C", 30, (129.5, 31.0, 145.5, 43.5)),
    "middle_east": ("C", 40, (35.0, 15.0, 60.0, 38.0)),
    "europe": ("C", 20, (-5.0, 40.0, 25.0, 55.0)),
    "england": ("X", 15, (-5.5, 50.3, 1.5, 54.5)),
    "italy": ("X", 15, (8.0, 37.5, 18.0, 46.0)),
    "japan_x": ("X", 10, (129.5, 31.0, 145.5, 43.5)),
}
#: A candidate source site needs at least this land fraction in its 0.25° cell.
RFI_MIN_LAND_FRACTION = 0.5


def _check_band(band: str) -> str:
    if band not in FOOTPRINT_SIGMA_KM:
        raise SmrayError(f"band: expected 'C' or 'X', got {band!r}")
    return band


# --------------------------------------------------------------------------------------------
# Footprint and noise
# --------------------------------------------------------------------------------------------
def footprint_blur(field: np.ndarray, grid: Grid, band: str, *, sidelobe: float = SIDELOBE_FRACTION) -> np.ndarray:
    """Convolve (..., nlat, nlon) brightness temperatures (K) with the ``band`` antenna pattern.

    The main lobe is an anisotropic Gaussian, σ = :data:`FOOTPRINT_SIGMA_KM` (major axis N–S),
    kept at a constant size in km at every latitude; ``sidelobe`` of the power goes into a Gaussian
    3× wider (0 disables it). The input must be NaN-free: blur the area-weighted mixture of land,
    lake and ocean TBs, never a masked field (a NaN would spread over the whole kernel).
    Returns float64 of the same shape.
    """
    _check_band(band)
    if not 0.0 <= sidelobe < 1.0:
        raise SmrayError(f"sidelobe: power fraction must be in [0, 1), got {sidelobe!r}")
    field = np.asarray(field, dtype=np.float64)
    if field.shape[-2:] != grid.shape:
        raise SmrayError(f"footprint_blur: field shape {field.shape} does not end in the grid shape {grid.shape}")
    if not np.isfinite(field).all():
        raise SmrayError("footprint_blur: field holds NaN/inf; blur the NaN-free mixed surface field")
    s_lat, s_lon = FOOTPRINT_SIGMA_KM[band]
    out = smooth(field, grid, s_lat, s_lon)
    if sidelobe > 0.0:
        wide = smooth(field, grid, SIDELOBE_WIDTH * s_lat, SIDELOBE_WIDTH * s_lon)
        out = (1.0 - sidelobe) * out + sidelobe * wide
    return out


def add_noise(tb: np.ndarray, band: str, rng: np.random.Generator) -> np.ndarray:
    """``tb`` (K, any shape) plus independent N(0, NEΔT²) noise per element; NaN stays NaN."""
    _check_band(band)
    tb = np.asarray(tb, dtype=np.float64)
    return tb + rng.normal(0.0, NEDT_K[band], size=tb.shape)


# --------------------------------------------------------------------------------------------
# RFI
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RfiSources:
    """A fixed global set of RFI transmitters (read-only arrays of shape (n,)).

    ``lat``/``lon`` in degrees, ``amplitude_k`` the H-pol peak TB increment of the source's spot
    before the footprint blur (K), ``band`` "C" or "X", ``region`` a name of :data:`RFI_REGIONS`.
    """

    lat: np.ndarray
    lon: np.ndarray
    amplitude_k: np.ndarray
    band: np.ndarray
    region: np.ndarray

    def __len__(self) -> int:
        return int(self.lat.size)

    def select(self, band: str) -> RfiSources:
        """The sources of one band."""
        keep = self.band == _check_band(band)
        return RfiSources(*(_readonly(a[keep]) for a in
                            (self.lat, self.lon, self.amplitude_k, self.band, self.region)))


def _readonly(a: np.ndarray) -> np.ndarray:
    a = np.ascontiguousarray(a)
    a.flags.writeable = False
    return a


@functools.lru_cache(maxsize=8)
def rfi_sources(seed: int) -> RfiSources:
    """The global RFI source set for ``seed`` (deterministic, independent of any grid).

    Per :data:`RFI_REGIONS` (physics.md §3): C band 150 USA, 30 Japan, 40 Middle East, 20 Europe;
    X band 15 England, 15 Italy, 10 Japan. Sites are uniform in each box, kept only on land
    (≥ 50% land in their 0.25° cell). Amplitudes are lognormal, median 5 K, σ_ln 0.9, capped at 60 K.
    """
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0x5F1]))
    land = surface_fractions(Grid(0.25))["land"]
    cols_lat, cols_lon, cols_amp, cols_band, cols_region = [], [], [], [], []
    for name, (band, count, (west, south, east, north)) in RFI_REGIONS.items():
        lat_got: list[np.ndarray] = []
        lon_got: list[np.ndarray] = []
        n_got = 0
        for _ in range(200):
            lat = rng.uniform(south, north, 4 * count)
            lon = rng.uniform(west, east, 4 * count)
            row = np.clip(((90.0 - lat) / 0.25).astype(int), 0, land.shape[0] - 1)
            col = np.clip(((lon + 180.0) / 0.25).astype(int), 0, land.shape[1] - 1)
            ok = land[row, col] >= RFI_MIN_LAND_FRACTION
            lat_got.append(lat[ok])
            lon_got.append(lon[ok])
            n_got += int(ok.sum())
            if n_got >= count:
                break
        else:  # pragma: no cover - every box holds plenty of land
            raise SmrayError(f"rfi_sources: region {name} has too little land for {count} sources")
        cols_lat.append(np.concatenate(lat_got)[:count])
        cols_lon.append(np.concatenate(lon_got)[:count])
        amp = RFI_MEDIAN_K * np.exp(RFI_SIGMA_LN * rng.standard_normal(count))
        cols_amp.append(np.minimum(amp, RFI_CAP_K))
        cols_band.append(np.full(count, band))
        cols_region.append(np.full(count, name))
    return RfiSources(*(_readonly(np.concatenate(c)) for c in
                        (cols_lat, cols_lon, cols_amp, cols_band, cols_region)))


def overpass_amplitudes(sources: RfiSources, band: str, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """This overpass's (H, V) peak amplitudes (K) of the ``band`` sources, shape (n_band,) each.

    Each source is on with probability 0.7; when on, H = amplitude·U(0.5, 1.5) and V = H·U(0.5, 1);
    off sources give 0. Draws are made for every source of the band whatever the grid, so the same
    ``rng`` state gives the same transmitters on a regional and on the global grid.
    """
    sel = sources.select(band)
    n = len(sel)
    present = rng.random(n) < RFI_PRESENCE_P
    scale = rng.uniform(*RFI_SCALE_RANGE, n)
    v_ratio = rng.uniform(*RFI_V_RATIO_RANGE, n)
    amp_h = np.where(present, sel.amplitude_k * scale, 0.0)
    return amp_h, amp_h * v_ratio


def _margin_cells(grid: Grid, sigma_km: float) -> tuple[int, int]:
    """Rows and columns beyond which a spot of σ ``sigma_km`` is negligible (> 4σ) for ``grid``."""
    max_abs_lat = min(float(np.max(np.abs(grid.lat))) + grid.res, 85.0)
    m_lat = math.ceil(4.0 * sigma_km / grid.cell_km()) + 1
    m_lon = math.ceil(4.0 * sigma_km / (grid.cell_km() * math.cos(math.radians(max_abs_lat)))) + 1
    return m_lat, m_lon


def rfi_increment(sources: RfiSources, grid: Grid, band: str, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """RFI brightness-temperature increments (dH, dV) in K for one overpass, each (nlat, nlon).

    Each present source is a Gaussian spot of σ = 27.8 km whose peak is its amplitude
    (:func:`overpass_amplitudes`); add the increments to the surface TB field before
    :func:`footprint_blur`. Spots are built by splatting each source's spot integral bilinearly
    onto the grid and smoothing once, so on grids coarser than 0.25° a cell holds the spot's area
    mean. Sources farther than ~4σ outside a regional window contribute nothing; those just outside
    still leak their tails in, as they would on the global grid.
    """
    amp_h, amp_v = overpass_amplitudes(sources, band, rng)
    sel = sources.select(band)
    on = amp_h > 0.0
    lat, lon = sel.lat[on], sel.lon[on]
    amps = np.stack([amp_h[on], amp_v[on]])  # (2, n_on)

    if grid.is_periodic:
        work = grid
    else:
        m_lat, m_lon = _margin_cells(grid, RFI_SPOT_SIGMA_KM)
        work = Grid(grid.res, max(0, grid.row0 - m_lat), min(grid.global_nlat, int(grid.row1) + m_lat),
                    max(0, grid.col0 - m_lon), min(grid.global_nlon, int(grid.col1) + m_lon))
    mass = np.zeros((2, *work.shape))
    if lat.size:
        # fractional cell indices in the work window (cell centres at integers)
        y = (90.0 - lat) / work.res - 0.5 - work.row0
        x = (lon + 180.0) / work.res - 0.5 - work.col0
        if work.is_periodic:
            x = np.mod(x, work.nlon)
        # spot integral in cell units: a peak-A Gaussian of σ_y × σ_x cells holds 2π σ_y σ_x A
        s_y = RFI_SPOT_SIGMA_KM / work.cell_km()
        s_x = RFI_SPOT_SIGMA_KM / (work.cell_km() * np.maximum(np.cos(np.deg2rad(lat)), 0.02))
        weight = amps * (2.0 * np.pi * s_y * s_x)
        y0 = np.floor(y).astype(int)
        x0 = np.floor(x).astype(int)
        fy, fx = y - y0, x - x0
        for dy, wy in ((0, 1.0 - fy), (1, fy)):
            for dx, wx in ((0, 1.0 - fx), (1, fx)):
                yy, xx = y0 + dy, x0 + dx
                if work.is_periodic:
                    xx = np.mod(xx, work.nlon)
                ok = (yy >= 0) & (yy < work.nlat) & (xx >= 0) & (xx < work.nlon)
                for p in range(2):
                    np.add.at(mass[p], (yy[ok], xx[ok]), (weight[p] * wy * wx)[ok])
    if mass.any():
        # the FFT filter rings at the 1e-5 level; RFI only ever adds power
        field = np.maximum(smooth(mass, work, RFI_SPOT_SIGMA_KM, RFI_SPOT_SIGMA_KM), 0.0)
    else:
        field = mass
    r0, c0 = grid.row0 - work.row0, grid.col0 - work.col0
    field = field[:, r0:r0 + grid.nlat, c0:c0 + grid.nlon]
    return field[0], field[1]


def rfi_index(tb_c: np.ndarray, tb_x: np.ndarray) -> np.ndarray:
    """RFI index TB_C − TB_X (K), same polarisation; natural surfaces give about −7 to 0 K.

    Above :data:`RFI_FLAG_K` a cell is flagged, above :data:`RFI_STRONG_K` the RFI is strong.
    X-band RFI drives the index negative and is not caught by it.
    """
    return np.asarray(tb_c, dtype=np.float64) - np.asarray(tb_x, dtype=np.float64)
