"""Physical soil-moisture retrieval baselines (physics.md §5): SCA (Jackson 1993) and LPRM-like.

Both invert the τ-ω model of :mod:`smray.synth.physics` (reused, not duplicated) for one band and
polarisation set, with ancillary temperature and vegetation inputs standing in for what the real
algorithms take from other sources:

* :func:`ancillary` — T_anc = T_eff + N(0, 2.5 K), τ_anc = τ_C,clim · exp(N(0, 0.2)).
* :func:`sca_retrieval` — single-channel algorithm, H-pol, γ from τ_anc: e_H from the τ-ω model,
  Q = 0 roughness correction, Fresnel inversion to a real permittivity, then θ from each pixel's
  Dobson table (θ = 0 … 0.5 in 0.005 steps).
* :func:`lprm_retrieval` — Land Parameter Retrieval Model (Owe et al. 2001, 2008; Meesters et al.
  2005): for every θ on a 0.005 grid up to θ_sat, Wang–Schmugge ε (|ε| into Fresnel), rough e_H and
  e_V, τ from the observed MPDI in closed form, modelled TB_H; the θ with the smallest
  |TB_H,mod − TB_H,obs| wins. Wang–Schmugge is used on purpose: against the Dobson truth it carries
  a realistic dielectric-model mismatch.
* :func:`retrieve_day` — one pass-day on a grid from a dict of brightness temperatures.

Everything is vectorised over pixels (the only Python loops run over pixel chunks, to bound
memory); inputs broadcast against each other and the outputs take the broadcast shape. NaN marks
pixels that are not retrievable (missing input, frozen: T_anc < 273.15 K, LPRM: MPDI < 1e-4, SCA:
e_H outside (0, 1)).

Interpretations of the spec (see also ``tests/test_physical.py``):

* SCA step 3 as printed, ε′ = sin²θ + μ²((1−ρ)/(1+ρ))², gives ε′ < 1 for every ρ ∈ (0, 1) — the
  sign of ρ is flipped (the Fresnel amplitude (μ−r)/(μ+r) is negative over soil). The exact
  inverse of the real-ε Fresnel R_H is ε′ = sin²θ + μ²((1+ρ)/(1−ρ))², which is what is used.
* SCA step 4's table holds, per θ, the *Fresnel-equivalent real permittivity* of the Dobson soil —
  the real ε whose Fresnel R_H equals that of the complex Dobson ε — so the inversion is exact
  against the forward model. Tabulating Re(ε_Dobson) instead (``table="real"``) ignores ε″ and
  biases θ high (wet) by up to 0.02–0.03 (C) / 0.04–0.06 (X) m³/m³ at the wet end.
* The Debye water term of both dielectric models uses T_anc (°C); the SCA table is monotonised
  along θ with a running maximum before interpolation.
* LPRM τ: a < 0 (surface more polarised than the soil model allows) is clipped to a = 0, i.e. τ = 0.
* LPRM feeds |ε| (real) to Fresnel through :func:`fresnel_real`, the real-argument case of
  ``physics.fresnel`` (equal to 1e-13, tested), ~8× cheaper inside the grid search. One million
  pixels take ~7.5 s of CPU (one core, ~280 MB peak); the SCA ~6 s.

Open water (:func:`open_water`): the sensor sees the footprint-weighted mixture of soil, inland
water (lakes and seasonal wetlands) and ocean, blurred with the antenna pattern, sidelobes
included — tens of K at H-pol near coasts, lakes and wetlands, which both inversions would read as
wet soil (on the 0.25° demo twin, 31 July 2011, LPRM was +0.12 m³/m³ wet against the truth; about
+0.02 once corrected, the Wang–Schmugge mismatch). :func:`open_water` computes, from ancillary data
only (the static land/lake/ocean fractions, the wetland climatology, climatological water
temperatures, a 7 m/s wind), the soil share S of each footprint and the water's contribution W;
:func:`retrieve_day` with ``water=`` inverts TB_soil = (TB − W)/S and skips footprints with more
than :data:`MAX_WATER_FRACTION` water, as operational water-body corrections do.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Literal

import numpy as np
import numpy.typing as npt

from smray.errors import SmrayError
from smray.grid import Grid
from smray.synth import physics
from smray.synth.physics import FREQ, MU, OMEGA_BAND, Q_BAND, SIN2_THETA, T_MELT

#: Ancillary error: T_anc = T_eff + N(0, T_ANC_SIGMA); τ_anc = τ_clim · exp(N(0, TAU_ANC_SIGMA_LN)).
T_ANC_SIGMA = 2.5
TAU_ANC_SIGMA_LN = 0.2
#: Soil-moisture grid step of both inversions, m³/m³, and the SCA table's upper end.
THETA_STEP = 0.005
SCA_THETA_MAX = 0.5
#: LPRM skips pixels whose MPDI is below this (no polarisation signal).
MPDI_MIN = 1e-4
#: LPRM single-scattering albedo (both bands, as in the LPRM code).
LPRM_OMEGA = 0.06
#: Channel prefix of each band in the JAXA names ('06H', '10V', …).
BAND_CHANNEL = {"C": "06", "X": "10"}
#: Pixels per chunk of the (θ grid × pixels) work arrays (~110 × 2 000 complex ≈ 3.5 MB each).
CHUNK = 2_000
#: Open-water correction: footprints with more water than this share are not retrieved.
MAX_WATER_FRACTION = 0.5
#: Open-water correction: the wind assumed over water (the twin's mean), m/s.
WATER_WIND_MS = 7.0


def _f64(x: npt.ArrayLike) -> np.ndarray:
    return np.asarray(x, dtype=np.float64)


def fresnel_real(eps_abs: npt.ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """(R_H, R_V) at 55° for a *real* permittivity ≥ sin²θ, e.g. the |ε| LPRM feeds to Fresnel.

    The real-argument case of :func:`smray.synth.physics.fresnel` (identical to ~1e-15; the test
    suite checks it), written out because the complex-typed general form costs ~8× more inside the
    LPRM grid search.
    """
    e = _f64(eps_abs)
    r = np.sqrt(e - SIN2_THETA)
    return ((MU - r) / (MU + r)) ** 2, ((e * MU - r) / (e * MU + r)) ** 2


def _band(band: str) -> str:
    return physics.check_band(str(band).upper())


def _broadcast(*arrays: npt.ArrayLike) -> list[np.ndarray]:
    """float64 arrays broadcast to one shape and flattened (copies, safe to modify)."""
    b = np.broadcast_arrays(*(_f64(a) for a in arrays))
    return [np.array(x, dtype=np.float64).ravel() for x in b]


def ancillary(t_eff: npt.ArrayLike, tau_clim: npt.ArrayLike,
              rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Ancillary inputs of the physical baselines (physics.md §5), float64, broadcast shape.

    T_anc = T_eff + N(0, 2.5 K) (K) stands in for the Ka-band temperature; τ_anc =
    τ_C,clim · exp(N(0, 0.2)) for a vegetation climatology (C-band nadir optical depth; τ_clim is
    e.g. :func:`smray.synth.fields.tau_c_on_day`). NaN inputs stay NaN. ``rng`` is consumed for
    the T noise first, then the τ noise, each over the full broadcast shape.
    """
    t_eff, tau_clim = np.broadcast_arrays(_f64(t_eff), _f64(tau_clim))
    t_anc = t_eff + rng.normal(0.0, T_ANC_SIGMA, t_eff.shape)
    tau_anc = tau_clim * np.exp(rng.normal(0.0, TAU_ANC_SIGMA_LN, tau_clim.shape))
    return t_anc, tau_anc


# --------------------------------------------------------------------------------------------
# (a) Single-channel algorithm
# --------------------------------------------------------------------------------------------
def _real_eps_from_reflectivity(r_s: np.ndarray) -> np.ndarray:
    """Real permittivity whose specular H-pol Fresnel reflectivity at 55° is ``r_s`` (0 ≤ r_s < 1)."""
    rho = np.sqrt(r_s)
    return SIN2_THETA + MU * MU * ((1.0 + rho) / (1.0 - rho)) ** 2


def sca_table(sand: npt.ArrayLike, clay: npt.ArrayLike, rho_b: npt.ArrayLike, t_celsius: npt.ArrayLike,
              band: str = "X", table: Literal["fresnel", "real"] = "fresnel") -> tuple[np.ndarray, np.ndarray]:
    """Per-pixel monotone Dobson permittivity tables for the SCA, (θ grid (K,), ε′ (K, npix)).

    Pixel arrays are 1-D (npix,). ``table="fresnel"`` tabulates the Fresnel-equivalent real
    permittivity of the complex Dobson ε (exact against the forward model), ``"real"`` Re(ε).
    Made non-decreasing along θ with a running maximum.
    """
    band = _band(band)
    grid = np.round(np.arange(0.0, SCA_THETA_MAX + THETA_STEP / 2, THETA_STEP), 10)
    eps = physics.dobson(grid[:, None], _f64(sand)[None], _f64(clay)[None], _f64(rho_b)[None],
                         _f64(t_celsius)[None], FREQ[band])
    if table == "fresnel":
        r_h, _ = physics.fresnel(eps)
        eps_t = _real_eps_from_reflectivity(r_h)
    elif table == "real":
        eps_t = eps.real
    else:
        raise SmrayError(f"table: expected 'fresnel' or 'real', got {table!r}")
    return grid, np.maximum.accumulate(eps_t, axis=0)


def _interp_columns(x_obs: np.ndarray, table: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Per-column linear interpolation of θ at ``x_obs`` (n,) in non-decreasing ``table`` (K, n);
    values outside a column's range clip to its ends; flat segments take their lower end."""
    k_max = table.shape[0] - 1
    idx = np.clip((table < x_obs[None, :]).sum(axis=0), 1, k_max)  # table[idx-1] < x ≤ table[idx]
    cols = np.arange(table.shape[1])
    lo, hi = table[idx - 1, cols], table[idx, cols]
    span = hi - lo
    with np.errstate(invalid="ignore", divide="ignore"):
        w = np.where(span > 0, (x_obs - lo) / span, 0.0)
    w = np.clip(w, 0.0, 1.0)
    return grid[idx - 1] + w * (grid[idx] - grid[idx - 1])


def sca_emissivity(tb_h: npt.ArrayLike, t: npt.ArrayLike, tau: npt.ArrayLike,
                   omega: npt.ArrayLike) -> np.ndarray:
    """SCA step 1: rough-soil H emissivity from the τ-ω model with T_soil = T_canopy = ``t`` (K).

    e_H = [TB_H/T − (1−ω)(1−γ²)] / [γ(1 − (1−ω)(1−γ))], γ = exp(−τ/μ); not range-checked.
    """
    tb, t, om = _f64(tb_h), _f64(t), _f64(omega)
    gamma = physics.canopy_transmissivity(tau)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (tb / t - (1.0 - om) * (1.0 - gamma**2)) / (gamma * (1.0 - (1.0 - om) * (1.0 - gamma)))


def sca_retrieval(tb_h: npt.ArrayLike, t_anc: npt.ArrayLike, tau_anc: npt.ArrayLike, sand: npt.ArrayLike,
                  clay: npt.ArrayLike, rho_b: npt.ArrayLike, h: npt.ArrayLike, band: str = "X",
                  omega: float | npt.ArrayLike | None = None, *,
                  table: Literal["fresnel", "real"] = "fresnel") -> np.ndarray:
    """Single-channel algorithm (Jackson 1993; physics.md §5 a): soil moisture θ (m³/m³), NaN where
    not retrievable, in the broadcast shape of the inputs.

    ``tb_h`` H-pol TB at ``band`` (K); ``t_anc`` temperature (K) used for soil and canopy;
    ``tau_anc`` nadir vegetation optical depth *at the band* (for X pass τ_X = tau_ratio·τ_C);
    ``sand``, ``clay`` fractions; ``rho_b`` g/cm³; ``h`` roughness; ``omega`` defaults to the band's
    ω (0.06 C, 0.07 X). With γ = exp(−τ/μ):

    1. e_H = [TB_H/T − (1−ω)(1−γ²)] / [γ(1 − (1−ω)(1−γ))]  (NaN unless 0 < e_H < 1)
    2. R_s = (1 − e_H) e^(hμ)  (Q = 0; R_s ≥ 1 clips to the wet end of the table)
    3. ρ = √R_s, ε′ = sin²θ + μ²((1+ρ)/(1−ρ))²
    4. θ from the pixel's Dobson table θ = 0 … 0.5 (see :func:`sca_table`), clipped to its ends.

    Pixels with T_anc < 273.15 K (frozen) or a NaN input are NaN.
    """
    band = _band(band)
    om = OMEGA_BAND[band] if omega is None else omega
    shape = np.broadcast_shapes(*(np.shape(a) for a in (tb_h, t_anc, tau_anc, sand, clay, rho_b, h, om)))
    tb, t, tau, s, c, rb, hh, om = _broadcast(tb_h, t_anc, tau_anc, sand, clay, rho_b, h, om)
    e_h = sca_emissivity(tb, t, tau, om)
    with np.errstate(invalid="ignore", divide="ignore"):
        ok = (np.isfinite(e_h) & (e_h > 0.0) & (e_h < 1.0) & (t >= T_MELT)
              & np.isfinite(s) & np.isfinite(c) & np.isfinite(rb) & np.isfinite(hh))
        r_s = np.minimum((1.0 - e_h) * np.exp(hh * MU), 1.0 - 1e-12)
        eps_obs = _real_eps_from_reflectivity(np.where(ok, r_s, 0.0))
    out = np.full(tb.shape, np.nan)
    sel = np.flatnonzero(ok)
    for i in range(0, sel.size, CHUNK):
        p = sel[i:i + CHUNK]
        grid, tab = sca_table(s[p], c[p], rb[p], t[p] - 273.15, band, table)
        out[p] = _interp_columns(eps_obs[p], tab, grid)
    return out.reshape(shape)


# --------------------------------------------------------------------------------------------
# (b) LPRM-like
# --------------------------------------------------------------------------------------------
def lprm_tau(e_h: npt.ArrayLike, e_v: npt.ArrayLike, mpdi: npt.ArrayLike, omega: npt.ArrayLike = LPRM_OMEGA,
             mu: float = MU) -> np.ndarray:
    """Vegetation optical depth from MPDI and the soil emissivities (Meesters et al. 2005).

    a = ½[(e_V − e_H)/MPDI − e_V − e_H], d = ½ω/(1−ω), τ = μ ln(ad + √((ad)² + a + 1)); a < 0 is
    clipped to 0 (τ = 0). Exact for the τ-ω model with T_soil = T_canopy.
    """
    e_h, e_v, mpdi, omega = _f64(e_h), _f64(e_v), _f64(mpdi), _f64(omega)
    with np.errstate(invalid="ignore", divide="ignore"):
        a = np.maximum(0.5 * ((e_v - e_h) / mpdi - e_v - e_h), 0.0)
        ad = a * 0.5 * omega / (1.0 - omega)
        return mu * np.log(ad + np.sqrt(ad * ad + a + 1.0))


def lprm_retrieval(tb_h: npt.ArrayLike, tb_v: npt.ArrayLike, t_anc: npt.ArrayLike, sand: npt.ArrayLike,
                   clay: npt.ArrayLike, rho_b: npt.ArrayLike, wilting_point: npt.ArrayLike,
                   theta_sat: npt.ArrayLike, h: npt.ArrayLike, band: str = "C",
                   omega: float | npt.ArrayLike = LPRM_OMEGA, *, q: float | npt.ArrayLike | None = None,
                   chunk: int = CHUNK) -> tuple[np.ndarray, np.ndarray]:
    """LPRM-like retrieval (physics.md §5 b): (θ m³/m³, τ nadir optical depth at ``band``), NaN where
    not retrievable, in the broadcast shape of the inputs.

    ``tb_h``, ``tb_v`` TBs at ``band`` (K); ``t_anc`` (K) for soil and canopy; ``sand``, ``clay``
    (accepted for a uniform signature; Wang–Schmugge sees texture through ``wilting_point``),
    ``rho_b`` (porosity 1 − ρ_b/2.65), ``theta_sat`` (top of the θ grid), ``h`` roughness; ``q``
    defaults to the band's Q (0.10 C, 0.15 X), ``omega`` to LPRM's 0.06.

    For θ = 0, 0.005, … ≤ θ_sat: Wang–Schmugge ε → Fresnel(|ε|) → rough e_H, e_V → τ from MPDI
    (:func:`lprm_tau`) → TB_H,mod = T[e_Hγ + (1−ω)(1−γ)(1 + (1−e_H)γ)]; the θ (and its τ) with the
    smallest |TB_H,mod − TB_H,obs| is returned (no sub-grid refinement). Pixels with
    MPDI = (V−H)/(V+H) < 1e-4, T_anc < 273.15 K or a NaN input are NaN. Work arrays are
    (grid × ``chunk`` pixels).
    """
    band = _band(band)
    qq = Q_BAND[band] if q is None else q
    args = (tb_h, tb_v, t_anc, sand, clay, rho_b, wilting_point, theta_sat, h, omega, qq)
    shape = np.broadcast_shapes(*(np.shape(a) for a in args))
    tbh, tbv, t, _s, _c, rb, wp, tsat, hh, om, qq = _broadcast(*args)
    with np.errstate(invalid="ignore", divide="ignore"):
        mpdi = (tbv - tbh) / (tbv + tbh)
        ok = (np.isfinite(mpdi) & (mpdi >= MPDI_MIN) & np.isfinite(t) & (t >= T_MELT)
              & np.isfinite(rb) & np.isfinite(wp) & np.isfinite(tsat) & np.isfinite(hh)
              & np.isfinite(om) & np.isfinite(qq))
    theta = np.full(tbh.shape, np.nan)
    tau = np.full(tbh.shape, np.nan)
    sel = np.flatnonzero(ok)
    if sel.size == 0:
        return theta.reshape(shape), tau.reshape(shape)
    top = float(np.max(tsat[sel]))
    grid = np.round(np.arange(0.0, top + THETA_STEP / 2, THETA_STEP), 10)
    freq = FREQ[band]
    cols_all = np.arange(max(1, chunk))
    for i in range(0, sel.size, max(1, chunk)):
        p = sel[i:i + chunk]
        tp, omp = t[p][None], om[p][None]
        eps = physics.wang_schmugge(grid[:, None], None, None, rb[p][None], wp[p][None], freq,
                                    tp - 273.15)
        r_h, r_v = physics.rough_reflectivity(*fresnel_real(np.abs(eps)), hh[p][None], qq[p][None])
        e_h, e_v = 1.0 - r_h, 1.0 - r_v
        tau_g = lprm_tau(e_h, e_v, mpdi[p][None], omp)
        gamma = physics.canopy_transmissivity(tau_g)
        tb_mod = tp * (e_h * gamma + (1.0 - omp) * (1.0 - gamma) * (1.0 + r_h * gamma))
        cost = np.abs(tb_mod - tbh[p][None])
        cost = np.where(np.isfinite(cost) & (grid[:, None] <= tsat[p][None] + 1e-9), cost, np.inf)
        k = np.argmin(cost, axis=0)
        cols = cols_all[:p.size]
        good = np.isfinite(cost[k, cols])
        theta[p] = np.where(good, grid[k], np.nan)
        tau[p] = np.where(good, tau_g[k, cols], np.nan)
    return theta.reshape(shape), tau.reshape(shape)


# --------------------------------------------------------------------------------------------
# Open water in the footprint
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class OpenWater:
    """What the antenna sees of open water at one band, float64 (nlat, nlon).

    ``soil`` is the footprint-weighted soil share S (0–1) and ``tb_h``/``tb_v`` the water's
    footprint-weighted contribution W (K): TB_obs ≈ S·TB_soil + W where TB_soil varies little
    across the footprint.
    """

    band: str
    soil: np.ndarray
    tb_h: np.ndarray
    tb_v: np.ndarray

    def correct(self, tb: npt.ArrayLike, pol: str, max_water: float = MAX_WATER_FRACTION) -> np.ndarray:
        """TB_soil = (TB − W)/S; NaN where S < 1 − ``max_water`` (or S ≤ 0)."""
        w = self.tb_h if pol == "H" else self.tb_v
        keep = self.soil >= max(1.0 - float(max_water), 1e-6)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(keep, (_f64(tb) - w) / self.soil, np.nan)


def open_water(static: Mapping[str, npt.ArrayLike], grid: Grid, band: str, doy: float, *,
               wind_ms: float = WATER_WIND_MS) -> OpenWater:
    """Ancillary open-water correction of one band on ``grid`` (see the module docstring).

    ``static`` holds the twin's static fields on ``grid`` (``land``, ``lake``, ``ocean`` area
    fractions, ``wet_max`` and ``doy_peak`` of the wetland climatology, ``sst``, ``t_ann``,
    ``seas_amp``). The inland-water share is lake + land·wetland(doy); inland water emits at the
    climatological air temperature of the day (at least 273.15 K), the ocean at ``sst``, both with
    :func:`smray.synth.physics.water_tb` at ``wind_ms``; fractions and water TBs are blurred with
    the band's antenna pattern (:func:`smray.synth.sensor.footprint_blur`, sidelobes included).
    """
    from smray.synth.fields import seasonal_air_temperature, wetland_fraction_on_day
    from smray.synth.sensor import footprint_blur

    band = _band(band)
    need = ("land", "lake", "ocean", "wet_max", "doy_peak", "sst", "t_ann", "seas_amp")
    absent = [k for k in need if k not in static]
    if absent:
        raise SmrayError(f"open_water: static field(s) {', '.join(absent)} missing")
    st = {k: np.nan_to_num(_f64(static[k])) for k in need}
    if st["land"].shape != grid.shape:
        raise SmrayError(f"open_water: static fields of shape {st['land'].shape} are not on the grid {grid.shape}")
    lat = np.asarray(grid.lat, np.float64)[:, None]
    ns = SimpleNamespace(**st)
    wet = _f64(wetland_fraction_on_day(ns, doy, lat))  # type: ignore[arg-type]
    t_inland = np.maximum(_f64(seasonal_air_temperature(ns, lat, doy)), T_MELT)  # type: ignore[arg-type]
    f_inland = st["lake"] + st["land"] * wet
    lake_h, lake_v = physics.water_tb(t_inland, t_inland, band, ocean=False, wind_ms=wind_ms)
    sea_h, sea_v = physics.water_tb(st["sst"], t_inland, band, ocean=True, wind_ms=wind_ms)
    return OpenWater(band=band, soil=footprint_blur(st["land"] * (1.0 - wet), grid, band),
                     tb_h=footprint_blur(f_inland * lake_h + st["ocean"] * sea_h, grid, band),
                     tb_v=footprint_blur(f_inland * lake_v + st["ocean"] * sea_v, grid, band))


# --------------------------------------------------------------------------------------------
# One pass-day on a grid
# --------------------------------------------------------------------------------------------
def retrieve_day(tb: dict[str, npt.ArrayLike], static: dict[str, npt.ArrayLike], t_eff: npt.ArrayLike,
                 tau_clim: npt.ArrayLike, seed: int | list[int] | np.random.SeedSequence | None,
                 method: Literal["lprm", "sca"] = "lprm", *, band: str | None = None,
                 frozen: npt.ArrayLike | None = None, land_min: float = 0.5, water: OpenWater | None = None,
                 max_water: float = MAX_WATER_FRACTION) -> np.ndarray:
    """Physical retrieval of one pass-day: θ (nlat, nlon) m³/m³, float64, NaN where not retrieved.

    ``tb`` maps channels ('06H', '06V', '10H', '10V') to (nlat, nlon) TBs in K (NaN = not
    observed); ``static`` holds the twin's static fields (``sand``, ``clay``, ``rho_b``,
    ``wilting_point``, ``theta_sat``, ``roughness_h``, ``tau_ratio``, ``land``); ``t_eff`` the
    pass's effective temperature (K) and ``tau_clim`` the day's climatological C-band τ, from which
    :func:`ancillary` draws T_anc and τ_anc with ``np.random.default_rng(seed)``.

    ``method="lprm"`` (default band C, ω = 0.06) or ``"sca"`` (default band X, the band's ω,
    γ from τ_anc scaled to the band by ``tau_ratio`` at X). Only land pixels (``land`` ≥
    ``land_min``) are retrieved; frozen pixels (T_anc < 273.15 K, and where ``frozen`` is true if
    given) are skipped. With ``water`` (:func:`open_water` of the method's band) the TBs are
    corrected for the open water in the footprint first, and footprints with more than
    ``max_water`` water are skipped; without it every land pixel's TB is taken as all soil.
    """
    method = str(method).lower()
    if method not in ("lprm", "sca"):
        raise SmrayError(f"method: expected 'lprm' or 'sca', got {method!r}")
    band = _band(band or ("C" if method == "lprm" else "X"))
    ch = BAND_CHANNEL[band]
    need = [f"{ch}H"] + ([f"{ch}V"] if method == "lprm" else [])
    missing = [k for k in need if k not in tb]
    if missing:
        raise SmrayError(f"retrieve_day: channel(s) {', '.join(missing)} missing from tb")
    keys = ["sand", "clay", "rho_b", "roughness_h", "land"]
    keys += ["wilting_point", "theta_sat"] if method == "lprm" else (["tau_ratio"] if band == "X" else [])
    absent = [k for k in keys if k not in static]
    if absent:
        raise SmrayError(f"retrieve_day: static field(s) {', '.join(absent)} missing")
    st = {k: _f64(static[k]) for k in keys}
    tb_h = _f64(tb[f"{ch}H"])
    tb_v = _f64(tb[f"{ch}V"]) if method == "lprm" else None
    if water is not None:
        if water.band != band or water.soil.shape != tb_h.shape:
            raise SmrayError(f"retrieve_day: the open-water correction is for band {water.band} on "
                             f"{water.soil.shape}, the retrieval uses band {band} on {tb_h.shape}")
        tb_h = water.correct(tb_h, "H", max_water)
        tb_v = water.correct(tb_v, "V", max_water) if tb_v is not None else None
    shape = tb_h.shape
    t_anc, tau_anc = ancillary(np.broadcast_to(_f64(t_eff), shape), np.broadcast_to(_f64(tau_clim), shape),
                               np.random.default_rng(seed))
    mask = np.asarray(st["land"] >= land_min)
    if frozen is not None:
        mask = mask & ~np.asarray(frozen, dtype=bool)
    out = np.full(shape, np.nan)
    if not mask.any():
        return out
    px = {k: v[mask] for k, v in st.items()}
    if method == "lprm":
        assert tb_v is not None  # read above for LPRM
        theta, _tau = lprm_retrieval(tb_h[mask], tb_v[mask], t_anc[mask], px["sand"], px["clay"],
                                     px["rho_b"], px["wilting_point"], px["theta_sat"], px["roughness_h"],
                                     band)
    else:
        tau_b = tau_anc[mask] * (px["tau_ratio"] if band == "X" else 1.0)
        theta = sca_retrieval(tb_h[mask], t_anc[mask], tau_b, px["sand"], px["clay"], px["rho_b"],
                              px["roughness_h"], band)
    out[mask] = theta
    return out


__all__ = ["ancillary", "fresnel_real", "sca_emissivity", "sca_table", "sca_retrieval", "lprm_tau",
           "lprm_retrieval", "OpenWater", "open_water", "retrieve_day", "T_ANC_SIGMA", "TAU_ANC_SIGMA_LN",
           "THETA_STEP", "SCA_THETA_MAX", "MPDI_MIN", "LPRM_OMEGA", "BAND_CHANNEL", "MAX_WATER_FRACTION",
           "WATER_WIND_MS"]
