"""The forward model against physics.md §1 ("Sanity TBs", sensitivities) and basic physics.

How the sanity table is read (each choice was checked by computing the alternatives):

* Land rows are *surface* TBs, without the atmosphere, at h = 0.15, Q = 0.10 at both bands and
  T_soil = T_deep = T_air, with a loam of sand 0.4 / clay 0.2 / ρ_b 1.3 g/cm³ and a sand of
  0.9 / 0.05 / 1.3. With the atmosphere every H value rises (grass +2 K, wet loam +7 K) and the
  grass/sand rows fit worse; with the §2 bulk density of sand (1.2 + 0.35 S = 1.52) the dry-sand H
  falls 4.5 K below the table unless the atmosphere is added back, so ρ_b = 1.3 throughout.
  The land_tb defaults (Q = 0.15 at X, atmosphere on) are what the twin uses; the table is not.
* Ocean and "specular water" rows are at 293 K; the ocean row has the atmosphere (T_air = 293 K)
  and 7 m/s of wind, the specular row neither.
* Three rows do not follow from §1 as written; each is kept as a strict xfail at the §1 values,
  next to the reconstruction that reproduces it:
  - "wet bare loam": at τ = 0 the model gives 145/230 (C), 22 K below the table in H, and no
    dielectric constant at h = 0.15, Q = 0.1 fits both polarisations. Fitting (m_v, τ) returns
    m_v = 0.349 and τ_C = 0.049 (τ_X ≈ 1.3 τ_C): the "bare" row carried a residual τ_C ≈ 0.05.
  - "forest": ω = 0.06/0.07 give 276.6/278.5 (C) and 274.6/275.3 (X); ω = 0.05 at both bands gives
    279.3/281.1 and 280.3/280.9, i.e. the table (and the forest RFI index "−1 K") used ω = 0.05.
  - "frozen soil": ε = Dobson(0.04) gives 209.5/252.9 (C), 213.6/253.9 (X); V is 5–6 K above the
    table. V = 248 needs r_V ≈ 0.046, which at Q = 0.1 no physical ε reaches (the best fit is
    ε = 1.04 + 1.44j); it fits only with Q ≈ 0.15 and the Debye term at ~20 °C. Not reconstructed.
"""

from __future__ import annotations

import numpy as np
import pytest

from smray.errors import SmrayError
from smray.synth import physics as ph

LOAM = dict(sand=0.4, clay=0.2, rho_b=1.3)
SAND = dict(sand=0.9, clay=0.05, rho_b=1.3)
TOL_K = 3.0


def surface_tb(mv: float, soil: dict, t_k: float, tau_c: float, h: float, band: str, **kw) -> np.ndarray:
    """The sanity table's convention: surface TB (no atmosphere), Q = 0.1 at both bands."""
    tb = ph.land_tb(mv, soil["sand"], soil["clay"], soil["rho_b"], t_k, t_k, t_k, tau_c, h, band,
                    q=0.1, atmosphere=False, **kw)
    return np.array([float(tb[0]), float(tb[1])])


def assert_row(got: np.ndarray, want: tuple[float, float], tol: float = TOL_K) -> None:
    assert np.all(np.abs(got - np.array(want)) <= tol), f"got H/V {got.round(1)}, table {want}"


# --------------------------------------------------------------------------------------------
# Sanity table, physics.md §1
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("band,want", [("C", (81, 165)), ("X", (87, 170))])
def test_table_ocean_with_atmosphere_and_wind(band, want):
    tb = np.array(ph.water_tb(293.0, 293.0, band, ocean=True, wind_ms=7.0))
    assert_row(tb, want)


@pytest.mark.parametrize("band,want", [("C", (65, 157)), ("X", (67, 160))])
def test_table_specular_water_no_atmosphere(band, want):
    tb = np.array(ph.water_tb(293.0, 293.0, band, ocean=True, wind_ms=0.0, atmosphere=False))
    assert_row(tb, want)


@pytest.mark.parametrize("band,want", [("C", (244, 274)), ("X", (252, 276))])
def test_table_grass(band, want):
    assert_row(surface_tb(0.20, LOAM, 295.0, 0.3, 0.15, band), want)


def test_table_grass_fits_better_without_atmosphere():
    """Documents the reading of the land rows: the no-atmosphere TBs are the closer match."""
    want = {"C": np.array([244, 274]), "X": np.array([252, 276])}
    err_surface = err_toa = 0.0
    for band in "CX":
        toa = ph.land_tb(0.20, 0.4, 0.2, 1.3, 295.0, 295.0, 295.0, 0.3, 0.15, band, q=0.1)
        err_toa += float(np.abs(np.array(toa, dtype=float) - want[band]).sum())
        err_surface += float(np.abs(surface_tb(0.20, LOAM, 295.0, 0.3, 0.15, band) - want[band]).sum())
    assert err_surface < err_toa


@pytest.mark.parametrize("band,h,want", [("C", 0.1, (225, 291)), ("C", 0.5, (242, 295)),
                                         ("X", 0.1, (227, 292)), ("X", 0.5, (243, 295))])
def test_table_dry_sand(band, h, want):
    assert_row(surface_tb(0.03, SAND, 308.0, 0.0, h, band), want)


@pytest.mark.parametrize("band,want", [("C", (167, 239)), ("X", (174, 243))])
def test_table_wet_loam_reconstructed_with_residual_tau(band, want):
    assert_row(surface_tb(0.35, LOAM, 295.0, 0.05, 0.15, band), want)


@pytest.mark.xfail(strict=True, reason="table row 'wet bare loam' is not bare: it needs tau_C ~ 0.05 "
                                       "(at tau=0 the §1 model gives 145/230 at C)")
@pytest.mark.parametrize("band,want", [("C", (167, 239)), ("X", (174, 243))])
def test_table_wet_loam_bare_as_written(band, want):
    assert_row(surface_tb(0.35, LOAM, 295.0, 0.0, 0.15, band), want)


def test_table_forest_c_band():
    assert_row(surface_tb(0.25, LOAM, 295.0, 1.2, 0.15, "C"), (279, 281))


@pytest.mark.xfail(strict=True, reason="table forest row used omega=0.05; with the §1 omega_X=0.07 "
                                       "X band is 274.6/275.3 K")
def test_table_forest_x_band_spec_omega():
    assert_row(surface_tb(0.25, LOAM, 295.0, 1.2, 0.15, "X"), (280, 281))


@pytest.mark.parametrize("band,want", [("C", (279, 281)), ("X", (280, 281))])
def test_table_forest_reconstructed_with_omega_005(band, want):
    assert_row(surface_tb(0.25, LOAM, 295.0, 1.2, 0.15, band, omega=0.05), want, tol=1.0)


@pytest.mark.xfail(strict=True, reason="table frozen row (207/248) not reproducible from §1: "
                                       "V-pol is 5-6 K higher at Q=0.1 for any physical permittivity")
@pytest.mark.parametrize("band", ["C", "X"])
def test_table_frozen_soil(band):
    assert_row(surface_tb(0.25, LOAM, 260.0, 0.0, 0.15, band, frozen=True), (207, 248))


# --------------------------------------------------------------------------------------------
# Sensitivity, the built-in difficulty
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("tau,want", [(0.0, -2.5), (0.3, -0.9), (0.6, -0.34), (1.0, -0.10), (1.4, -0.03)])
def test_c_band_h_sensitivity_per_001(tau, want):
    """dTB_H/dm_v per 0.01 m³/m³ at m_v = 0.2 (loam, surface TB, T = 295 K), ±25%."""
    mv = np.array([0.195, 0.205])
    tb_h = ph.land_tb(mv, 0.4, 0.2, 1.3, 295.0, 295.0, 295.0, tau, 0.15, "C", atmosphere=False)[0]
    got = float(tb_h[1] - tb_h[0])
    assert got == pytest.approx(want, rel=0.25)


def test_sensitivity_shrinks_with_tau_and_is_smaller_at_x_band():
    mv = np.array([0.195, 0.205])
    tau = np.array([[0.0], [0.3], [0.6], [1.0], [1.4]])
    d_c = np.diff(ph.land_tb(mv, 0.4, 0.2, 1.3, 295.0, 295.0, 295.0, tau, 0.15, "C")[0], axis=-1)[:, 0]
    d_x = np.diff(ph.land_tb(mv, 0.4, 0.2, 1.3, 295.0, 295.0, 295.0, tau, 0.15, "X")[0], axis=-1)[:, 0]
    assert np.all(d_c < 0) and np.all(np.diff(np.abs(d_c)) < 0)
    assert np.all(np.abs(d_x[1:]) < np.abs(d_c[1:]))  # the X-band canopy is thicker


# --------------------------------------------------------------------------------------------
# Scene physics
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("band", ["C", "X"])
def test_forest_h_close_to_v(band):
    h, v = ph.land_tb(0.25, 0.4, 0.2, 1.34, 298.0, 296.0, 298.0, 1.2, 0.15, band)
    assert abs(float(v) - float(h)) < 3.0
    assert 260.0 < float(h) < 298.0


@pytest.mark.parametrize("band", ["C", "X"])
def test_ocean_h_far_below_land(band):
    ocean_h, ocean_v = ph.water_tb(293.0, 293.0, band)
    land_h, land_v = ph.land_tb(0.35, 0.4, 0.2, 1.34, 293.0, 293.0, 293.0, 0.0, 0.1, band)
    assert float(land_h) - float(ocean_h) > 60.0
    assert float(land_v) - float(ocean_v) > 50.0
    assert float(ocean_v) - float(ocean_h) > 70.0  # strongly polarised water


def test_lake_and_ocean_differ_by_conductivity():
    for band in "CX":
        lake = np.array(ph.water_tb(293.0, 293.0, band, ocean=False, wind_ms=0.0, atmosphere=False))
        sea = np.array(ph.water_tb(293.0, 293.0, band, ocean=True, wind_ms=0.0, atmosphere=False))
        assert np.all(np.abs(lake - sea) < 8.0) and np.all(lake > sea)  # brine is more reflective


def test_wind_adds_08_and_03_k_per_ms():
    calm = np.array(ph.water_tb(290.0, 290.0, "C", wind_ms=0.0, atmosphere=False))
    windy = np.array(ph.water_tb(290.0, 290.0, "C", wind_ms=10.0, atmosphere=False))
    np.testing.assert_allclose(windy - calm, [8.0, 3.0], atol=1e-9)


@pytest.mark.parametrize("band", ["C", "X"])
@pytest.mark.parametrize("tau", [0.0, 0.3, 0.8])
def test_wet_h_below_dry_h(band, tau):
    h = ph.land_tb(np.array([0.05, 0.15, 0.25, 0.35]), 0.4, 0.2, 1.34, 295.0, 293.0, 295.0, tau, 0.15, band)[0]
    assert np.all(np.diff(h) < 0)


@pytest.mark.parametrize("soil", [(0.9, 0.05, 1.5), (0.4, 0.2, 1.34), (0.15, 0.5, 1.25)])
@pytest.mark.parametrize("band", ["C", "X"])
def test_dobson_real_part_monotonic_in_mv(soil, band):
    mv = np.linspace(0.0, 0.5, 101)
    eps = ph.dobson(mv, *soil, 20.0, ph.FREQ[band])
    assert eps.dtype == np.complex128
    assert np.all(np.diff(eps.real) > 0)
    assert np.all(eps.imag >= 0)
    assert 2.0 < eps.real[0] < 4.5 and 15.0 < eps.real[70] < 30.0  # dry soil; m_v = 0.35


def test_dobson_conductivity_clip_and_floor():
    f = ph.FREQ["C"]
    # sands give a negative σ_eff: clipped to 0, so ε″ is the free-water loss alone and ~0 when dry
    assert ph.dobson(0.0, 0.9, 0.05, 1.5, 20.0, f).imag == pytest.approx(0.0, abs=1e-12)
    # a clay loam keeps a positive σ_eff: finite at m_v = 0 thanks to the m_v ≥ 0.001 floor
    eps = ph.dobson(np.array([0.0, 0.0005, 0.001]), 0.2, 0.4, 1.5, 20.0, f)
    assert np.all(np.isfinite(eps))


def test_debye_water_values():
    eps = ph.debye_water(20.0, ph.FREQ["C"])
    assert 67.0 < eps.real < 73.0 and 22.0 < eps.imag < 30.0  # τ_w = 9.3 ps at 20 °C
    sea = ph.debye_water(20.0, ph.FREQ["C"], sigma=4.5)
    assert sea.real == eps.real
    assert sea.imag - eps.imag == pytest.approx(4.5 / (2 * np.pi * ph.EPS0 * ph.FREQ["C"]))
    # relaxation: lower ε′ and higher loss at X band
    epsx = ph.debye_water(20.0, ph.FREQ["X"])
    assert epsx.real < eps.real and epsx.imag > eps.imag


def test_wang_schmugge_continuous_and_increasing():
    wp = 0.06774 - 0.064 * 0.4 + 0.478 * 0.2
    wt = 0.49 * wp + 0.165
    mv = np.array([0.0, wt - 1e-9, wt + 1e-9, 0.3, 0.45])
    eps = ph.wang_schmugge(mv, 0.4, 0.2, 1.34, wp, ph.FREQ["C"])
    porosity = 1 - 1.34 / 2.65
    assert eps[0] == pytest.approx(porosity * 1.0 + (1 - porosity) * (5.5 + 0.2j))
    assert abs(eps[2] - eps[1]) < 1e-6
    assert np.all(np.diff(eps.real) >= 0)
    # a realistic mismatch against Dobson, not a different world
    dob = ph.dobson(0.3, 0.4, 0.2, 1.34, 20.0, ph.FREQ["C"])
    assert 0.6 < eps[3].real / dob.real < 1.6


def test_fresnel_normal_incidence_and_brewster():
    eps = 25.0 + 0.0j
    r_h, r_v = ph.fresnel(eps, mu=1.0)
    want = ((1 - 5.0) / (1 + 5.0)) ** 2
    assert r_h == pytest.approx(want) and r_v == pytest.approx(want)
    r_h, r_v = ph.fresnel(np.array([3.0, 10.0, 30.0]))
    assert np.all(r_v < r_h) and np.all(np.diff(r_h) > 0)
    # Brewster angle of ε = tan²θ_B: R_V = 0
    theta_b = np.arctan(np.sqrt(4.0))
    assert ph.fresnel(4.0, mu=np.cos(theta_b))[1] == pytest.approx(0.0, abs=1e-12)


def test_rough_reflectivity_limits():
    r_h, r_v = ph.rough_reflectivity(0.4, 0.1, 0.0, 0.0)
    assert (r_h, r_v) == (pytest.approx(0.4), pytest.approx(0.1))
    r_h, r_v = ph.rough_reflectivity(0.4, 0.1, 0.2, 0.5)
    assert r_h == pytest.approx(r_v)
    assert r_h == pytest.approx(0.25 * np.exp(-0.2 * ph.MU))


def test_canopy_limits_and_effective_temperature():
    assert ph.canopy_tb(0.3, 290.0, 300.0, 0.0, 0.06) == pytest.approx(0.7 * 290.0)
    assert ph.canopy_tb(0.3, 290.0, 300.0, 50.0, 0.06) == pytest.approx(0.94 * 300.0)
    assert ph.effective_temperature(300.0, 290.0) == pytest.approx(290.0 + 0.802 * 10.0)


def test_atmosphere_is_small_and_larger_at_x():
    tb = np.array([100.0, 280.0])
    d_c = ph.atmosphere_toa(tb, np.array([0.6, 0.05]), 290.0, "C") - tb
    d_x = ph.atmosphere_toa(tb, np.array([0.6, 0.05]), 290.0, "X") - tb
    assert np.all(np.abs(d_c) < 10.0) and d_c[0] > 0
    assert np.all(np.abs(d_x) > np.abs(d_c))


def test_frozen_soil():
    mv = np.array([0.02, 0.30])
    wet = ph.land_tb(mv, 0.4, 0.2, 1.34, 262.0, 265.0, 262.0, 0.1, 0.15, "C")
    frz = ph.land_tb(mv, 0.4, 0.2, 1.34, 262.0, 265.0, 262.0, 0.1, 0.15, "C", frozen=True)
    assert frz[0][1] - wet[0][1] > 40.0  # the wet soil's water froze: much warmer H
    np.testing.assert_allclose(frz[0][0], wet[0][0])  # below 0.04 nothing changes
    # frozen == the same soil at m_v = 0.04
    ref = ph.land_tb(0.04, 0.4, 0.2, 1.34, 262.0, 265.0, 262.0, 0.1, 0.15, "C")
    assert frz[0][1] == pytest.approx(float(ref[0]))
    assert np.all(frz[1] > frz[0])


def test_wet_snow_emits_095_t():
    h, v = ph.land_tb(0.3, 0.4, 0.2, 1.34, 273.15, 273.15, 275.0, 0.0, 0.15, "C",
                      wet_snow=True, atmosphere=False)
    assert float(h) == pytest.approx(0.95 * 273.15) and float(v) == pytest.approx(0.95 * 273.15)


def test_dry_snow_x_band_only_capped():
    swe = np.array([0.0, 100.0, 1000.0])
    base_x = np.array(ph.land_tb(0.1, 0.4, 0.2, 1.34, 265.0, 268.0, 265.0, 0.2, 0.15, "X", frozen=True))
    snow_x = np.array(ph.land_tb(0.1, 0.4, 0.2, 1.34, 265.0, 268.0, 265.0, 0.2, 0.15, "X",
                                 frozen=True, swe_mm=swe))
    drop = base_x[:, None] - snow_x
    np.testing.assert_allclose(drop[:, 0], 0.0, atol=1e-9)
    np.testing.assert_allclose(drop[:, 1], 5.0 * np.exp(-ph.TAU_ATM_BAND["X"] / ph.MU), rtol=1e-6)
    np.testing.assert_allclose(drop[:, 2], 15.0 * np.exp(-ph.TAU_ATM_BAND["X"] / ph.MU), rtol=1e-6)
    c = ph.land_tb(0.1, 0.4, 0.2, 1.34, 265.0, 268.0, 265.0, 0.2, 0.15, "C", frozen=True, swe_mm=swe)
    assert np.ptp(c[0]) == 0.0
    wet = ph.land_tb(0.1, 0.4, 0.2, 1.34, 273.0, 273.0, 274.0, 0.0, 0.15, "X", swe_mm=100.0, wet_snow=True,
                     atmosphere=False)
    assert float(wet[0]) == pytest.approx(0.95 * 273.0)  # wet snow: no dry-snow scattering


def test_broadcasting_and_tau_ratio():
    mv = np.linspace(0.05, 0.4, 4)[None, :]
    tau = np.array([[0.2], [0.5], [0.9]])
    ratio = np.array([[1.2], [1.3], [1.4]])
    h, v = ph.land_tb(mv, 0.4, 0.2, 1.34, 295.0, 293.0, 294.0, tau, 0.15, "X", tau_ratio=ratio)
    assert h.shape == v.shape == (3, 4) and h.dtype == np.float64
    one = ph.land_tb(mv[0, 2], 0.4, 0.2, 1.34, 295.0, 293.0, 294.0, 0.9, 0.15, "X", tau_ratio=1.4)
    assert h[2, 2] == pytest.approx(float(one[0]))
    c = ph.land_tb(mv, 0.4, 0.2, 1.34, 295.0, 293.0, 294.0, tau, 0.15, "C", tau_ratio=ratio)[0]
    c13 = ph.land_tb(mv, 0.4, 0.2, 1.34, 295.0, 293.0, 294.0, tau, 0.15, "C")[0]
    np.testing.assert_array_equal(c, c13)  # the ratio only scales X band


def test_bad_band_raises():
    with pytest.raises(SmrayError):
        ph.land_tb(0.2, 0.4, 0.2, 1.3, 295.0, 295.0, 295.0, 0.3, 0.15, "L")  # type: ignore[arg-type]
    with pytest.raises(SmrayError):
        ph.water_tb(290.0, 290.0, "Ku")  # type: ignore[arg-type]
