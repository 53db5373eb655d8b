"""Forward model of AMSR-E C- and X-band brightness temperatures (physics.md §1, §2 'Snow and freeze').

Pure, vectorised numpy: every argument broadcasts against the others, work is done in float64
(complex128 for permittivities), and nothing loops over pixels. The chain for a land pixel is

    Dobson ε(m_v) → Fresnel R_p → roughness r_p (Choudhury/Wang, n = 1) → τ-ω canopy → atmosphere,

and for open water Debye ε_w (+ ionic conductivity) → specular Fresnel → wind term → atmosphere.
Wang–Schmugge (1980) with the LPRM constants is here too: the physical retrieval baseline (§5 b)
uses it, so retrievals carry a realistic dielectric-model mismatch against the Dobson truth.

Units: temperatures in K unless a name ends in ``_celsius``; frequencies in Hz; soil moisture in
m³/m³; sand and clay as mass fractions 0–1; bulk density in g/cm³; conductivity in S/m; SWE in mm.
Complex permittivities follow ε = ε′ + jε″ with ε″ > 0 (lossy).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import numpy.typing as npt

from smray.errors import SmrayError

Band = Literal["C", "X"]

#: Centre frequencies of the AMSR-E channels, Hz.
FREQ: dict[str, float] = {"C": 6.925e9, "X": 10.65e9}
#: Earth incidence angle, degrees, and its cosine μ.
THETA_DEG = 55.0
MU = float(np.cos(np.deg2rad(THETA_DEG)))
SIN2_THETA = float(np.sin(np.deg2rad(THETA_DEG)) ** 2)

#: Vacuum permittivity, F/m.
EPS0 = 8.854187817e-12
#: Cosmic background, K.
T_COSMIC = 2.7
#: Ionic conductivity of sea water used for the ocean, S/m.
SIGMA_OCEAN = 4.5

#: Roughness cross-polarisation mixing Q per band (physics.md §1, [A]).
Q_BAND: dict[str, float] = {"C": 0.10, "X": 0.15}
#: Single-scattering albedo ω per band.
OMEGA_BAND: dict[str, float] = {"C": 0.06, "X": 0.07}
#: Zenith atmospheric opacity τ_a per band, nepers.
TAU_ATM_BAND: dict[str, float] = {"C": 0.012, "X": 0.018}
#: Default τ_X/τ_C (1.2 woody … 1.4 herbaceous).
TAU_RATIO_DEFAULT = 1.3
#: Wind emission increments (H, V), K per m/s, relative to calm water.
WIND_K_PER_MS: tuple[float, float] = (0.8, 0.3)
#: Choudhury et al. (1982) effective-temperature coefficient for λ < 4.4 cm.
C_TEFF = 0.802
#: Frozen soil sees at most this much liquid water, m³/m³.
FROZEN_MV_MAX = 0.04
#: Wet-snow emissivity (both polarisations).
WET_SNOW_EMISSIVITY = 0.95
#: Dry-snow scattering at X band: K per mm SWE, and its cap in K.
DRY_SNOW_K_PER_MM = 0.05
DRY_SNOW_CAP_K = 15.0
T_MELT = 273.15

# Dobson et al. (1985) constants.
_ALPHA = 0.65
_RHO_S = 2.66
_EPS_S = (1.01 + 0.44 * _RHO_S) ** 2 - 0.062


def _f64(x: npt.ArrayLike) -> np.ndarray:
    return np.asarray(x, dtype=np.float64)


def check_band(band: str) -> str:
    """Validate a band name ("C" = 6.9 GHz, "X" = 10.7 GHz)."""
    if band not in FREQ:
        raise SmrayError(f"band: expected 'C' or 'X', got {band!r}")
    return band


# --------------------------------------------------------------------------------------------
# Dielectric models
# --------------------------------------------------------------------------------------------
def debye_water(t_celsius: npt.ArrayLike, freq_hz: npt.ArrayLike, sigma: npt.ArrayLike = 0.0) -> np.ndarray:
    """Relative permittivity of liquid water (single Debye relaxation), complex, ε″ > 0.

    ``t_celsius`` water temperature in °C, ``freq_hz`` frequency in Hz, ``sigma`` ionic conductivity
    in S/m (4.5 for the ocean, 0 for fresh water); conductivity adds σ/(2π ε₀ f) to ε″.
    """
    t = _f64(t_celsius)
    f = _f64(freq_hz)
    eps_w0 = 88.045 - 0.4147 * t + 6.295e-4 * t**2 + 1.075e-5 * t**3
    two_pi_tau = 1.1109e-10 - 3.824e-12 * t + 6.938e-14 * t**2 - 5.096e-16 * t**3  # s
    x = two_pi_tau * f
    denom = 1.0 + x * x
    eps_r = 4.9 + (eps_w0 - 4.9) / denom
    eps_i = x * (eps_w0 - 4.9) / denom + _f64(sigma) / (2.0 * np.pi * EPS0 * f)
    return eps_r + 1j * eps_i


def dobson(mv: npt.ArrayLike, sand: npt.ArrayLike, clay: npt.ArrayLike, rho_b: npt.ArrayLike,
           t_celsius: npt.ArrayLike, freq_hz: npt.ArrayLike) -> np.ndarray:
    """Soil permittivity after Dobson et al. (1985), 1.4–18 GHz form, complex with ε″ > 0.

    ``mv`` volumetric moisture (m³/m³), ``sand``/``clay`` mass fractions (0–1), ``rho_b`` bulk density
    (g/cm³), ``t_celsius`` soil temperature (°C, for the free-water Debye term), ``freq_hz`` (Hz).
    The effective conductivity is clipped at 0 (sands give negative values) and its loss term uses
    m_v ≥ 0.001. No Peplinski correction (it belongs below 1.4 GHz).
    """
    mv = _f64(mv)
    s = _f64(sand)
    c = _f64(clay)
    rb = _f64(rho_b)
    f = _f64(freq_hz)
    beta_r = 1.2748 - 0.519 * s - 0.152 * c
    beta_i = 1.33797 - 0.603 * s - 0.166 * c
    sigma_eff = np.maximum(0.0, -1.645 + 1.939 * rb - 2.25622 * s + 1.594 * c)
    eps_fw = debye_water(t_celsius, f)
    mv_c = np.maximum(mv, 0.001)
    eps_fw_i = eps_fw.imag + sigma_eff * (_RHO_S - rb) / (2.0 * np.pi * EPS0 * f * _RHO_S * mv_c)
    mv_pos = np.maximum(mv, 0.0)
    eps_r = (1.0 + (rb / _RHO_S) * (_EPS_S**_ALPHA - 1.0) + mv_pos**beta_r * eps_fw.real**_ALPHA
             - mv_pos) ** (1.0 / _ALPHA)
    eps_i = (mv_pos**beta_i * eps_fw_i**_ALPHA) ** (1.0 / _ALPHA)
    return eps_r + 1j * eps_i


#: Wang–Schmugge constants as in the LPRM code (physics.md §5 b).
WS_EPS_ICE = 3.2 + 0.1j
WS_EPS_ROCK = 5.5 + 0.2j
WS_EPS_AIR = 1.0 + 0.0j


def wang_schmugge(mv: npt.ArrayLike, sand: npt.ArrayLike, clay: npt.ArrayLike, rho_b: npt.ArrayLike,
                  wilting_point: npt.ArrayLike, freq_hz: npt.ArrayLike,
                  t_celsius: npt.ArrayLike = 20.0) -> np.ndarray:
    """Soil permittivity after Wang & Schmugge (1980) with the LPRM constants, complex, ε″ > 0.

    ``mv`` (m³/m³), ``wilting_point`` (m³/m³), ``rho_b`` (g/cm³), ``freq_hz`` (Hz), ``t_celsius`` (°C)
    for the free-water Debye term. Porosity P = 1 − ρ_b/2.65, transition moisture
    W_t = 0.49 WP + 0.165, γ = −0.57 WP + 0.481, ice 3.2+0.1j (bound water), rock 5.5+0.2j.
    ``sand`` and ``clay`` are accepted for a uniform soil signature; the model reaches texture only
    through the wilting point.
    """
    del sand, clay  # texture enters through the wilting point only
    mv = np.maximum(_f64(mv), 0.0)
    wp = _f64(wilting_point)
    porosity = 1.0 - _f64(rho_b) / 2.65
    wt = 0.49 * wp + 0.165
    gamma = -0.57 * wp + 0.481
    eps_w = debye_water(t_celsius, freq_hz)
    eps_x_low = WS_EPS_ICE + (eps_w - WS_EPS_ICE) * (mv / wt) * gamma
    eps_low = mv * eps_x_low + (porosity - mv) * WS_EPS_AIR + (1.0 - porosity) * WS_EPS_ROCK
    eps_x_wt = WS_EPS_ICE + (eps_w - WS_EPS_ICE) * gamma
    eps_high = (wt * eps_x_wt + (mv - wt) * eps_w + (porosity - mv) * WS_EPS_AIR
                + (1.0 - porosity) * WS_EPS_ROCK)
    return np.where(mv <= wt, eps_low, eps_high)


# --------------------------------------------------------------------------------------------
# Surface reflectivity and emission
# --------------------------------------------------------------------------------------------
def fresnel(eps: npt.ArrayLike, mu: npt.ArrayLike = MU) -> tuple[np.ndarray, np.ndarray]:
    """Specular Fresnel power reflectivities (R_H, R_V) of a half-space of permittivity ``eps``.

    ``eps`` complex (or real, e.g. |ε| as LPRM feeds it) relative permittivity; ``mu`` = cos θ.
    """
    eps_c = np.asarray(eps, dtype=np.complex128)
    mu = _f64(mu)
    r = np.sqrt(eps_c - (1.0 - mu * mu))
    r_h = np.abs((mu - r) / (mu + r)) ** 2
    r_v = np.abs((eps_c * mu - r) / (eps_c * mu + r)) ** 2
    return r_h, r_v


def rough_reflectivity(r_h: npt.ArrayLike, r_v: npt.ArrayLike, h: npt.ArrayLike, q: npt.ArrayLike,
                       mu: npt.ArrayLike = MU) -> tuple[np.ndarray, np.ndarray]:
    """Rough-surface reflectivities (r_H, r_V), Choudhury (1979) / Wang & Choudhury (1981).

    r_H = [(1−Q) R_H + Q R_V]·exp(−h μⁿ) and H↔V, with n = 1 (the LPRM convention).
    """
    r_h = _f64(r_h)
    r_v = _f64(r_v)
    q = _f64(q)
    att = np.exp(-_f64(h) * _f64(mu))
    return ((1.0 - q) * r_h + q * r_v) * att, ((1.0 - q) * r_v + q * r_h) * att


def effective_temperature(t_soil: npt.ArrayLike, t_deep: npt.ArrayLike) -> np.ndarray:
    """Effective emitting temperature T_deep + 0.802 (T_soil − T_deep), K (Choudhury et al. 1982)."""
    t_deep = _f64(t_deep)
    return t_deep + C_TEFF * (_f64(t_soil) - t_deep)


def canopy_transmissivity(tau: npt.ArrayLike, mu: npt.ArrayLike = MU) -> np.ndarray:
    """One-way canopy transmissivity γ = exp(−τ/μ)."""
    return np.exp(-_f64(tau) / _f64(mu))


def canopy_tb(r_p: npt.ArrayLike, t_eff: npt.ArrayLike, t_canopy: npt.ArrayLike, tau: npt.ArrayLike,
              omega: npt.ArrayLike, mu: npt.ArrayLike = MU) -> np.ndarray:
    """τ-ω brightness temperature above the canopy, K.

    TB = T_eff (1−r)γ + T_c (1−ω)(1−γ)(1 + rγ), γ = exp(−τ/μ); ``r_p`` rough soil reflectivity,
    ``t_eff`` soil effective temperature (K), ``t_canopy`` (K), ``tau`` nadir optical depth, ``omega``.
    """
    r = _f64(r_p)
    gamma = canopy_transmissivity(tau, mu)
    return (_f64(t_eff) * (1.0 - r) * gamma
            + _f64(t_canopy) * (1.0 - _f64(omega)) * (1.0 - gamma) * (1.0 + r * gamma))


def atmosphere_toa(tb_surface: npt.ArrayLike, r_sky: npt.ArrayLike, t_air: npt.ArrayLike, band: Band,
                   mu: npt.ArrayLike = MU) -> np.ndarray:
    """Top-of-atmosphere brightness temperature, K.

    t_a = exp(−τ_a/μ) with τ_a = 0.012 (C) / 0.018 (X); T_up = T_dn = (T_air − 15)(1 − t_a);
    TB_toa = T_up + t_a [TB + r_sky (T_dn + 2.7 t_a)]. ``r_sky`` is the reflectivity the downwelling
    sky sees: the soil reflectivity times γ² (two-way canopy attenuation) over vegetation, R over water.
    """
    check_band(band)
    t_a = np.exp(-TAU_ATM_BAND[band] / _f64(mu))
    t_atm = (_f64(t_air) - 15.0) * (1.0 - t_a)
    return t_atm + t_a * (_f64(tb_surface) + _f64(r_sky) * (t_atm + T_COSMIC * t_a))


# --------------------------------------------------------------------------------------------
# Complete scenes
# --------------------------------------------------------------------------------------------
def land_tb(mv: npt.ArrayLike, sand: npt.ArrayLike, clay: npt.ArrayLike, rho_b: npt.ArrayLike,
            t_soil: npt.ArrayLike, t_deep: npt.ArrayLike, t_air: npt.ArrayLike, tau_c: npt.ArrayLike,
            h: npt.ArrayLike, band: Band, *, frozen: npt.ArrayLike | None = None,
            swe_mm: npt.ArrayLike | None = None, wet_snow: npt.ArrayLike | None = None,
            tau_ratio: npt.ArrayLike = TAU_RATIO_DEFAULT, q: npt.ArrayLike | None = None,
            omega: npt.ArrayLike | None = None, atmosphere: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Top-of-atmosphere land brightness temperatures (TB_H, TB_V) in K at ``band``.

    ``mv`` m³/m³; ``sand``, ``clay`` fractions; ``rho_b`` g/cm³; ``t_soil``, ``t_deep``, ``t_air`` K;
    ``tau_c`` C-band nadir vegetation optical depth (τ_X = ``tau_ratio``·τ_C, 1.2 woody … 1.4
    herbaceous); ``h`` roughness. Q and ω default to the band values (Q 0.10/0.15, ω 0.06/0.07);
    the canopy temperature is T_air and the Debye water temperature T_eff.

    ``frozen`` (bool): the soil sees ε = Dobson(min(m_v, 0.04)). ``wet_snow`` (bool): the snow pack
    emits with e_H = e_V = 0.95 at min(T_eff, 273.15 K) in place of the soil, under the canopy.
    ``swe_mm``: where the snow is dry, X band loses 0.05 K per mm SWE (at most 15 K), both
    polarisations; C band is unaffected. ``atmosphere=False`` returns the surface TB.
    """
    check_band(band)
    freq = FREQ[band]
    mv = _f64(mv)
    if frozen is not None:
        mv = np.where(np.asarray(frozen, dtype=bool), np.minimum(mv, FROZEN_MV_MAX), mv)
    t_eff = effective_temperature(t_soil, t_deep)
    eps = dobson(mv, sand, clay, rho_b, t_eff - 273.15, freq)
    r_h, r_v = rough_reflectivity(*fresnel(eps), h, Q_BAND[band] if q is None else q)
    t_emit = t_eff
    if wet_snow is not None:
        wet = np.asarray(wet_snow, dtype=bool)
        r_snow = 1.0 - WET_SNOW_EMISSIVITY
        r_h = np.where(wet, r_snow, r_h)
        r_v = np.where(wet, r_snow, r_v)
        t_emit = np.where(wet, np.minimum(t_eff, T_MELT), t_eff)
    tau = _f64(tau_c) * (1.0 if band == "C" else _f64(tau_ratio))
    om = OMEGA_BAND[band] if omega is None else omega
    t_canopy = _f64(t_air)
    tb_h = canopy_tb(r_h, t_emit, t_canopy, tau, om)
    tb_v = canopy_tb(r_v, t_emit, t_canopy, tau, om)
    if band == "X" and swe_mm is not None:
        drop = np.minimum(DRY_SNOW_K_PER_MM * np.maximum(_f64(swe_mm), 0.0), DRY_SNOW_CAP_K)
        if wet_snow is not None:
            drop = np.where(np.asarray(wet_snow, dtype=bool), 0.0, drop)
        tb_h = tb_h - drop
        tb_v = tb_v - drop
    if not atmosphere:
        return tb_h, tb_v
    gamma2 = canopy_transmissivity(tau) ** 2
    return (atmosphere_toa(tb_h, r_h * gamma2, t_air, band),
            atmosphere_toa(tb_v, r_v * gamma2, t_air, band))


def water_tb(t_water_k: npt.ArrayLike, t_air_k: npt.ArrayLike, band: Band, *, ocean: npt.ArrayLike = True,
             wind_ms: npt.ArrayLike = 7.0, atmosphere: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Top-of-atmosphere open-water brightness temperatures (TB_H, TB_V) in K at ``band``.

    Specular Fresnel surface (h = Q = τ = 0) over Debye water at ``t_water_k`` (K) with σ = 4.5 S/m
    where ``ocean`` is true and 0 for lakes; wind adds 0.8 K (H) and 0.3 K (V) per m/s of
    ``wind_ms`` relative to calm water. The sky is reflected with the wind-adjusted reflectivity
    1 − TB/T. ``atmosphere=False`` returns the surface TB.
    """
    check_band(band)
    t_w = _f64(t_water_k)
    sigma = np.where(np.asarray(ocean, dtype=bool), SIGMA_OCEAN, 0.0)
    r_h, r_v = fresnel(debye_water(t_w - 273.15, FREQ[band], sigma))
    wind = _f64(wind_ms)
    tb_h = (1.0 - r_h) * t_w + WIND_K_PER_MS[0] * wind
    tb_v = (1.0 - r_v) * t_w + WIND_K_PER_MS[1] * wind
    if not atmosphere:
        return tb_h, tb_v
    return (atmosphere_toa(tb_h, 1.0 - tb_h / t_w, t_air_k, band),
            atmosphere_toa(tb_v, 1.0 - tb_v / t_w, t_air_k, band))
