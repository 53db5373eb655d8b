"""Physical retrieval baselines (smray.physical; physics.md §5).

The [V] check of §5: with T_soil = T_canopy (t_soil = t_deep = t_air), no noise and no atmosphere,
both inversions recover the §1 model's τ and e_H exactly. SCA then recovers θ to the table's
interpolation error. LPRM recovers θ exactly only against its own dielectric model (Wang–Schmugge).
Against the Dobson truth it carries the intended model mismatch. Measured on 20 000 random pixels
(θ 0–θ_sat, τ 0–1, sand 0.05–0.95, T 275–310 K, ω 0.06, C band): θ bias +0.032, RMSE 0.042, r 0.98.
The bias runs +0.01 (θ < 0.05), +0.05 (0.05–0.25), +0.02 (> 0.35), and by sand +0.01 (< 0.3) to
+0.055 (> 0.6). Wang–Schmugge |ε| sits below Dobson's, e.g. 6.3 vs 8.3 at θ = 0.15. τ is then off
by up to 0.09. X band gives the same figures.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from smray import physical as R
from smray.errors import SmrayError
from smray.grid import Grid
from smray.synth import physics as P
from smray.synth.fields import seasonal_air_temperature, wetland_fraction_on_day
from smray.synth.sensor import footprint_blur


def _soils(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    sand = rng.uniform(0.05, 0.95, n)
    clay = np.clip((1.0 - sand) * rng.uniform(0.2, 0.4, n), 0.02, 0.6)
    rho_b = 1.2 + 0.35 * sand
    return dict(sand=sand, clay=clay, rho_b=rho_b, theta_sat=1.0 - rho_b / 2.65,
                wilting_point=0.06774 - 0.064 * sand + 0.478 * clay, h=rng.uniform(0.1, 0.4, n))


def _dobson_scene(rng: np.random.Generator, n: int, *, tau_max: float, **land_tb: object):
    """``n`` random C-band pixels of the §1 model (Dobson soil, T_soil = T_canopy = T, no atmosphere):
    soils, θ (0..θ_sat m³/m³), τ (0..``tau_max``), T (275..310 K), TB_H, TB_V (K)."""
    s = _soils(rng, n)
    theta = rng.uniform(0.0, 1.0, n) * s["theta_sat"]
    tau = rng.uniform(0.0, tau_max, n)
    t = rng.uniform(275.0, 310.0, n)
    tb_h, tb_v = P.land_tb(theta, s["sand"], s["clay"], s["rho_b"], t, t, t, tau, s["h"], "C", atmosphere=False,
                           **land_tb)
    return s, theta, tau, t, tb_h, tb_v


# --------------------------------------------------------------------------------------------
# Ancillary inputs
# --------------------------------------------------------------------------------------------
def test_ancillary_noise_statistics():
    n = 200_000
    t_eff = np.full(n, 290.0)
    tau = np.full(n, 0.5)
    t_anc, tau_anc = R.ancillary(t_eff, tau, np.random.default_rng(3))
    d = t_anc - t_eff
    assert abs(d.mean()) < 0.03 and abs(d.std() - 2.5) < 0.03
    ln = np.log(tau_anc / tau)
    assert abs(ln.mean()) < 0.003 and abs(ln.std() - 0.2) < 0.003
    assert np.all(tau_anc > 0)
    # Deterministic per seed, NaN-preserving, broadcasting.
    a = R.ancillary([290.0, np.nan], 0.3, np.random.default_rng(1))
    b = R.ancillary([290.0, np.nan], 0.3, np.random.default_rng(1))
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert np.isnan(a[0][1]) and np.isfinite(a[0][0]) and a[1].shape == (2,)


def test_fresnel_real_matches_physics():
    eps = np.linspace(1.0, 90.0, 1001)
    for got, want in zip(R.fresnel_real(eps), P.fresnel(eps)):
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-13)


# --------------------------------------------------------------------------------------------
# (a) SCA
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("band", ["C", "X"])
def test_sca_recovers_emissivity_and_theta_when_ts_equals_tc(band):
    rng = np.random.default_rng(11)
    n = 4000
    s = _soils(rng, n)
    theta = rng.uniform(0.0, 0.5, n)
    tau_c = rng.uniform(0.0, 1.2, n)
    t = rng.uniform(274.0, 315.0, n)
    ratio = rng.uniform(1.2, 1.4, n)
    tb_h, _ = P.land_tb(theta, s["sand"], s["clay"], s["rho_b"], t, t, t, tau_c, s["h"], band, q=0.0,
                        tau_ratio=ratio, atmosphere=False)
    tau_b = tau_c * (ratio if band == "X" else 1.0)
    # Step 1 gives the model's rough emissivity back exactly.
    eps = P.dobson(theta, s["sand"], s["clay"], s["rho_b"], t - 273.15, P.FREQ[band])
    r_h, _ = P.rough_reflectivity(*P.fresnel(eps), s["h"], 0.0)
    e_h = R.sca_emissivity(tb_h, t, tau_b, P.OMEGA_BAND[band])
    np.testing.assert_allclose(e_h, 1.0 - r_h, rtol=0, atol=1e-9)
    got = R.sca_retrieval(tb_h, t, tau_b, s["sand"], s["clay"], s["rho_b"], s["h"], band)
    assert np.all(np.isfinite(got))
    assert np.max(np.abs(got - theta)) < 0.003
    # Tabulating Re(ε) alone (ignoring ε″) would bias the wet end high by a few hundredths.
    real = R.sca_retrieval(tb_h, t, tau_b, s["sand"], s["clay"], s["rho_b"], s["h"], band, table="real")
    wet = theta > 0.3
    assert np.mean(real[wet] - theta[wet]) > 0.01


def test_sca_nan_handling_and_shapes():
    kw = dict(sand=0.4, clay=0.2, rho_b=1.34, h=0.2, band="X")
    # e_H ≥ 1 (TB above T), e_H ≤ 0 (TB far too cold), frozen, NaN TB, NaN τ → NaN; one valid.
    tb = np.array([[300.0, 50.0, 250.0], [np.nan, 250.0, 250.0]])
    t = np.array([[290.0, 290.0, 270.0], [290.0, 290.0, 290.0]])
    tau = np.array([[0.1, 0.1, 0.1], [0.1, np.nan, 0.1]])
    got = R.sca_retrieval(tb, t, tau, **kw)
    assert got.shape == (2, 3)
    assert np.isnan(got[0]).all() and np.isnan(got[1, :2]).all()
    assert 0.0 <= got[1, 2] <= 0.5
    # Scalars broadcast; extremes clip to the table ends.
    assert R.sca_retrieval(289.0, 290.0, 0.0, **kw) == 0.0
    very_wet = R.sca_retrieval(80.0, 290.0, 0.0, sand=0.4, clay=0.2, rho_b=1.34, h=0.2, band="C")
    assert very_wet == pytest.approx(0.5)
    with pytest.raises(SmrayError):
        R.sca_retrieval(250.0, 290.0, 0.1, **{**kw, "band": "L"})


# --------------------------------------------------------------------------------------------
# (b) LPRM
# --------------------------------------------------------------------------------------------
def _ws_scene(rng, n, band):
    """TBs from LPRM's own dielectric model (Wang–Schmugge, |ε| into Fresnel), θ on its grid."""
    s = _soils(rng, n)
    k = rng.integers(0, np.floor(s["theta_sat"] / R.THETA_STEP).astype(int) + 1)
    theta = np.round(k * R.THETA_STEP, 10)
    tau = rng.uniform(0.0, 1.2, n)
    t = rng.uniform(274.0, 315.0, n)
    eps = P.wang_schmugge(theta, s["sand"], s["clay"], s["rho_b"], s["wilting_point"], P.FREQ[band], t - 273.15)
    r_h, r_v = P.rough_reflectivity(*P.fresnel(np.abs(eps)), s["h"], P.Q_BAND[band])
    tb_h = P.canopy_tb(r_h, t, t, tau, R.LPRM_OMEGA)
    tb_v = P.canopy_tb(r_v, t, t, tau, R.LPRM_OMEGA)
    return s, theta, tau, t, tb_h, tb_v, 1.0 - r_h


@pytest.mark.parametrize("band", ["C", "X"])
def test_lprm_exact_against_its_own_dielectric_model(band):
    rng = np.random.default_rng(5)
    s, theta, tau, t, tb_h, tb_v, e_h = _ws_scene(rng, 3000, band)
    # The closed-form τ from MPDI is exact for T_s = T_c.
    mpdi = (tb_v - tb_h) / (tb_v + tb_h)
    e_v = 1.0 - P.rough_reflectivity(*P.fresnel(np.abs(P.wang_schmugge(
        theta, s["sand"], s["clay"], s["rho_b"], s["wilting_point"], P.FREQ[band], t - 273.15))),
        s["h"], P.Q_BAND[band])[1]
    np.testing.assert_allclose(R.lprm_tau(e_h, e_v, mpdi), tau, rtol=0, atol=1e-9)
    got, tau_got = R.lprm_retrieval(tb_h, tb_v, t, s["sand"], s["clay"], s["rho_b"], s["wilting_point"],
                                    s["theta_sat"], s["h"], band)
    np.testing.assert_allclose(got, theta, rtol=0, atol=1e-9)
    np.testing.assert_allclose(tau_got, tau, rtol=0, atol=1e-3)
    # … and so the emissivity at the retrieved θ is the model's.
    eps = P.wang_schmugge(got, s["sand"], s["clay"], s["rho_b"], s["wilting_point"], P.FREQ[band], t - 273.15)
    e_got = 1.0 - P.rough_reflectivity(*P.fresnel(np.abs(eps)), s["h"], P.Q_BAND[band])[0]
    np.testing.assert_allclose(e_got, e_h, rtol=0, atol=1e-9)


def test_lprm_against_dobson_truth_carries_model_mismatch():
    n = 4000
    s, theta, tau, t, tb_h, tb_v = _dobson_scene(np.random.default_rng(7), n, tau_max=1.0, omega=R.LPRM_OMEGA)
    got, tau_got = R.lprm_retrieval(tb_h, tb_v, t, s["sand"], s["clay"], s["rho_b"], s["wilting_point"],
                                    s["theta_sat"], s["h"], "C")
    assert np.all(np.isfinite(got))
    err = got - theta
    assert np.corrcoef(got, theta)[0, 1] >= 0.9
    assert 0.01 < err.mean() < 0.06  # Wang–Schmugge reads wetter than Dobson (see module docstring)
    assert np.sqrt(np.mean(err**2)) < 0.06
    assert np.max(np.abs(tau_got - tau)) < 0.15
    assert np.all(got <= s["theta_sat"] + 1e-9) and np.all(got >= 0)


def test_lprm_skips_low_mpdi_frozen_and_nan():
    kw = dict(sand=0.4, clay=0.2, rho_b=1.34, wilting_point=0.1, theta_sat=0.49, h=0.2)
    tb_h = np.array([250.0, 250.0, 250.0, np.nan, 250.0, 230.0])
    tb_v = np.array([250.0, 250.04, 270.0, 270.0, 270.0, 270.0])  # MPDI 0, 8e-5, ok, NaN, ok, ok
    t = np.array([290.0, 290.0, 272.0, 290.0, np.nan, 290.0])
    theta, tau = R.lprm_retrieval(tb_h, tb_v, t, **kw)
    assert np.isnan(theta[:5]).all() and np.isnan(tau[:5]).all()
    assert np.isfinite(theta[5]) and np.isfinite(tau[5])
    # Chunking does not change the answer; 2-D inputs keep their shape.
    rng = np.random.default_rng(2)
    s, _, _, t, tb_h, tb_v, _ = _ws_scene(rng, 60, "C")
    a = R.lprm_retrieval(tb_h, tb_v, t, s["sand"], s["clay"], s["rho_b"], s["wilting_point"], s["theta_sat"],
                         s["h"])
    b = R.lprm_retrieval(tb_h.reshape(6, 10), tb_v.reshape(6, 10), t.reshape(6, 10),
                         *(s[k].reshape(6, 10) for k in ("sand", "clay", "rho_b", "wilting_point",
                                                         "theta_sat", "h")), chunk=7)
    assert b[0].shape == (6, 10)
    np.testing.assert_array_equal(a[0], b[0].ravel())
    np.testing.assert_array_equal(a[1], b[1].ravel())


def test_lprm_vectorised_million_pixels():
    """One call over 10⁶ pixels runs in bounded memory (pixel chunks); ~7–15 s on 2 busy cores."""
    n = 1_000_000
    s, theta, _, t, tb_h, tb_v = _dobson_scene(np.random.default_rng(0), n, tau_max=1.2)
    got, tau = R.lprm_retrieval(tb_h, tb_v, t, s["sand"], s["clay"], s["rho_b"], s["wilting_point"],
                                s["theta_sat"], s["h"], "C")
    assert got.shape == tau.shape == (n,)
    assert np.isfinite(got).mean() > 0.999
    assert np.corrcoef(got, theta)[0, 1] > 0.9


# --------------------------------------------------------------------------------------------
# One pass-day on a grid
# --------------------------------------------------------------------------------------------
def _day(rng, shape=(12, 20)):
    n = shape[0] * shape[1]
    s = _soils(rng, n)
    static = {k: v.reshape(shape) for k, v in s.items() if k != "h"}
    static["roughness_h"] = s["h"].reshape(shape)
    static["tau_ratio"] = np.full(shape, 1.3)
    land = np.ones(shape)
    land[:, :3] = 0.0  # ocean columns
    land[0, 3] = 0.4  # mostly water
    static["land"] = land
    theta = (rng.uniform(0.05, 0.9, n).reshape(shape) * static["theta_sat"])
    tau_c = rng.uniform(0.0, 0.3, shape)
    t_eff = rng.uniform(285.0, 305.0, shape)
    tb = {}
    for band, ch in (("C", "06"), ("X", "10")):
        h_, v_ = P.land_tb(theta, static["sand"], static["clay"], static["rho_b"], t_eff, t_eff, t_eff, tau_c,
                           static["roughness_h"], band, tau_ratio=1.3, q=0.0 if band == "X" else None)
        tb[ch + "H"], tb[ch + "V"] = h_, v_
    return tb, static, theta, tau_c, t_eff


@pytest.mark.parametrize("method", ["lprm", "sca"])
def test_retrieve_day(method):
    rng = np.random.default_rng(9)
    tb, static, theta, tau_c, t_eff = _day(rng)
    tb["06H"][5, 5] = tb["10H"][5, 5] = np.nan  # not observed
    out = R.retrieve_day(tb, static, t_eff, tau_c, seed=4, method=method)
    assert out.shape == theta.shape
    water = static["land"] < 0.5
    assert np.isnan(out[water]).all()
    assert np.isnan(out[5, 5])
    ok = ~water
    ok[5, 5] = False
    assert np.isfinite(out[ok]).mean() > 0.95
    # Sparse vegetation, 2.5 K temperature and 20 % τ noise: still clearly tracks the truth.
    fin = ok & np.isfinite(out)
    assert np.corrcoef(out[fin], theta[fin])[0, 1] > 0.7
    # Deterministic per seed; a different seed draws other ancillary errors.
    again = R.retrieve_day(tb, static, t_eff, tau_c, seed=4, method=method)
    np.testing.assert_array_equal(out, again)
    other = R.retrieve_day(tb, static, t_eff, tau_c, seed=5, method=method)
    assert not np.array_equal(out[fin], other[fin])
    # Frozen ground is skipped, from T_anc and from an optional mask.
    frozen = np.zeros(theta.shape, bool)
    frozen[6, 6:9] = True
    cold = R.retrieve_day(tb, static, np.where(frozen, 260.0, t_eff), tau_c, 4, method, frozen=None)
    assert np.isnan(cold[frozen]).all()
    masked = R.retrieve_day(tb, static, t_eff, tau_c, 4, method, frozen=frozen)
    assert np.isnan(masked[frozen]).all() and np.isfinite(masked[7, 6:9]).all()


def test_retrieve_day_errors():
    rng = np.random.default_rng(1)
    tb, static, _, tau_c, t_eff = _day(rng, (3, 5))
    with pytest.raises(SmrayError, match="method"):
        R.retrieve_day(tb, static, t_eff, tau_c, 0, method="ann")
    with pytest.raises(SmrayError, match="06V"):
        R.retrieve_day({"06H": tb["06H"]}, static, t_eff, tau_c, 0, method="lprm")
    with pytest.raises(SmrayError, match="tau_ratio"):
        R.retrieve_day(tb, {k: v for k, v in static.items() if k != "tau_ratio"}, t_eff, tau_c, 0, method="sca")
    # C-band SCA needs no τ ratio.
    out = R.retrieve_day(tb, {k: v for k, v in static.items() if k != "tau_ratio"}, t_eff, tau_c, 0,
                         method="sca", band="C")
    assert np.isfinite(out[:, 3:]).any()


# --------------------------------------------------------------------------------------------
# Open water in the footprint
# --------------------------------------------------------------------------------------------
WATER_GRID = Grid(res=0.25, row0=160, row1=220, col0=700, col1=780)  # 60 × 80 cells at 40–50 N
WATER_DOY = 212  # 31 July
SOIL = dict(sand=0.4, clay=0.2, rho_b=1.34, wilting_point=0.06774 - 0.064 * 0.4 + 0.478 * 0.2,
            theta_sat=1.0 - 1.34 / 2.65, h=0.2)
THETA, T_SOIL, TAU = 0.2, 295.0, 0.3


def _water_static() -> dict[str, np.ndarray]:
    """Ocean in the west (with a partly-water coastal column), a lake with a one-cell island, a
    wetland region, land elsewhere."""
    shape = WATER_GRID.shape
    land, lake, ocean = np.ones(shape), np.zeros(shape), np.zeros(shape)
    ocean[:, :15], land[:, :15] = 1.0, 0.0
    ocean[:, 15], land[:, 15] = 0.45, 0.55
    lake[25:32, 40:48], land[25:32, 40:48] = 1.0, 0.0
    lake[28, 44], land[28, 44] = 0.0, 1.0  # the island: land, but its footprint is mostly lake
    wet_max = np.zeros(shape)
    wet_max[40:, 50:] = 0.2
    static = {"land": land, "lake": lake, "ocean": ocean, "wet_max": wet_max, "doy_peak": np.full(shape, 215.0),
              "sst": np.full(shape, 288.0), "t_ann": np.full(shape, 285.0), "seas_amp": np.full(shape, 10.0)}
    static.update({k: np.full(shape, v) for k, v in SOIL.items() if k != "h"})
    static["roughness_h"] = np.full(shape, SOIL["h"])
    return static


def _water_scene(static: dict[str, np.ndarray], band: str = "C") -> tuple[dict[str, np.ndarray], float, float]:
    """TBs as the twin renders them (area-weighted soil, inland water and ocean, blurred with the
    antenna pattern), with a uniform soil from LPRM's own model so the inversion can be exact."""
    eps = P.wang_schmugge(THETA, None, None, SOIL["rho_b"], SOIL["wilting_point"], P.FREQ[band], T_SOIL - 273.15)
    r_h, r_v = P.rough_reflectivity(*P.fresnel(np.abs(eps)), SOIL["h"], P.Q_BAND[band])
    soil_h = float(P.canopy_tb(r_h, T_SOIL, T_SOIL, TAU, R.LPRM_OMEGA))
    soil_v = float(P.canopy_tb(r_v, T_SOIL, T_SOIL, TAU, R.LPRM_OMEGA))
    lat = WATER_GRID.lat[:, None]
    wet = wetland_fraction_on_day(SimpleNamespace(**static), WATER_DOY, lat)
    t_in = np.maximum(seasonal_air_temperature(SimpleNamespace(**static), lat, WATER_DOY), 273.15)
    lake_h, lake_v = P.water_tb(t_in, t_in, band, ocean=False, wind_ms=R.WATER_WIND_MS)
    sea_h, sea_v = P.water_tb(static["sst"], t_in, band, ocean=True, wind_ms=R.WATER_WIND_MS)
    f_soil, f_in = static["land"] * (1.0 - wet), static["lake"] + static["land"] * wet
    ch = R.BAND_CHANNEL[band]
    tb = {f"{ch}H": footprint_blur(f_soil * soil_h + f_in * lake_h + static["ocean"] * sea_h, WATER_GRID, band),
          f"{ch}V": footprint_blur(f_soil * soil_v + f_in * lake_v + static["ocean"] * sea_v, WATER_GRID, band)}
    return tb, soil_h, soil_v


def test_open_water_correction_inverts_the_footprint_mixture_exactly():
    static = _water_static()
    tb, soil_h, soil_v = _water_scene(static)
    water = R.open_water(static, WATER_GRID, "C", WATER_DOY)
    assert water.soil.shape == WATER_GRID.shape
    assert np.all((water.soil > -1e-4) & (water.soil < 1 + 1e-4))  # the FFT blur rings at ~1e-5
    assert water.soil[30, 79] == pytest.approx(1.0, abs=1e-3)  # far from any water
    assert water.soil[28, 44] < 0.5 and water.soil[5, 5] < 0.05  # the lake, the ocean
    kept = water.soil >= 1.0 - R.MAX_WATER_FRACTION
    h, v = water.correct(tb["06H"], "H"), water.correct(tb["06V"], "V")
    assert np.isnan(h[~kept]).all() and np.isnan(v[~kept]).all()
    np.testing.assert_allclose(h[kept], soil_h, rtol=0, atol=1e-4)  # K
    np.testing.assert_allclose(v[kept], soil_v, rtol=0, atol=1e-4)
    # With the true temperature, LPRM on the corrected TBs gives back the soil's θ exactly …
    land = (static["land"] >= 0.5) & kept
    args = [SOIL[k] for k in ("sand", "clay", "rho_b", "wilting_point", "theta_sat", "h")]
    got, _ = R.lprm_retrieval(h[land], v[land], T_SOIL, *args, "C")
    np.testing.assert_allclose(got, THETA, rtol=0, atol=1e-9)
    # … and on the raw TBs it reads the water near coasts, lakes and wetlands as wet soil.
    near = land & (water.soil < 0.95)
    assert near.sum() > 300
    raw, _ = R.lprm_retrieval(tb["06H"][near], tb["06V"][near], T_SOIL, *args, "C")
    assert np.all(raw > THETA + 0.01) and raw.mean() > THETA + 0.05


@pytest.mark.parametrize("method", ["lprm", "sca"])
def test_retrieve_day_with_the_open_water_correction(method):
    static = _water_static()
    band = "C" if method == "lprm" else "X"
    tb, _, _ = _water_scene(static, band)
    if method == "sca":  # the SCA reads H only; tau_ratio 1 keeps the scene's τ at X
        static["tau_ratio"] = np.ones(WATER_GRID.shape)
    water = R.open_water(static, WATER_GRID, band, WATER_DOY)
    t_eff, tau_c = np.full(WATER_GRID.shape, T_SOIL), np.full(WATER_GRID.shape, TAU)
    fixed = R.retrieve_day(tb, static, t_eff, tau_c, seed=3, method=method, water=water)
    plain = R.retrieve_day(tb, static, t_eff, tau_c, seed=3, method=method)
    land = static["land"] >= 0.5
    mostly_water = land & (water.soil < 1.0 - R.MAX_WATER_FRACTION)
    assert mostly_water.any() and np.isnan(fixed[mostly_water]).all()
    assert np.isnan(fixed[~land]).all() and np.isnan(plain[~land]).all()
    near = land & (water.soil < 0.95) & np.isfinite(fixed)
    assert near.sum() > 300
    # The soil is the same everywhere: near water the corrected retrieval reads what it reads far
    # from it (only the ancillary noise differs), the plain one reads the water as wet soil.
    far = land & (water.soil > 0.999)
    assert far.sum() > 300
    assert abs(np.nanmean(fixed[near]) - np.nanmean(fixed[far])) < 0.01
    assert np.nanmean(plain[near]) > np.nanmean(fixed[near]) + 0.05
    if method == "lprm":  # the scene's soil is LPRM's own model: only the noise is left
        assert abs(np.nanmean(fixed[near]) - THETA) < 0.02


def test_open_water_errors():
    static = _water_static()
    water = R.open_water(static, WATER_GRID, "C", WATER_DOY)
    tb, _, _ = _water_scene(static)
    t_eff, tau_c = np.full(WATER_GRID.shape, T_SOIL), np.full(WATER_GRID.shape, TAU)
    with pytest.raises(SmrayError, match="band C"):
        R.retrieve_day({**tb, "10H": tb["06H"]}, {**static, "tau_ratio": np.ones(WATER_GRID.shape)}, t_eff, tau_c,
                       0, method="sca", water=water)
    with pytest.raises(SmrayError, match="wet_max"):
        R.open_water({k: v for k, v in static.items() if k != "wet_max"}, WATER_GRID, "C", WATER_DOY)
    with pytest.raises(SmrayError, match="not on the grid"):
        R.open_water({k: v[:10] for k, v in static.items()}, WATER_GRID, "C", WATER_DOY)
    with pytest.raises(SmrayError, match="band"):
        R.open_water(static, WATER_GRID, "L", WATER_DOY)
