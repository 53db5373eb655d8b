"""Sensor effects (physics.md §3): footprint blur, coastal contamination, noise, RFI."""

from __future__ import annotations

import numpy as np
import pytest

from smray.errors import SmrayError
from smray.grid import Grid, surface_fractions
from smray.synth import physics as ph
from smray.synth import sensor as se

KM_PER_DEG = 111.195
#: 10–90% rise of a Gaussian-blurred step, in σ: 2·Φ⁻¹(0.9).
RISE_10_90 = 2 * 1.2815515655446004


def rise_width(x: np.ndarray, y: np.ndarray) -> float:
    """10–90% width (in x units) of a monotone increasing profile y(x) from 0 to 1."""
    return float(np.interp(0.9, y, x) - np.interp(0.1, y, x))


# --------------------------------------------------------------------------------------------
# Footprint
# --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def mid_grid() -> Grid:
    """A 20° × 20° window at 30–50N, 0.25°."""
    return Grid(0.25).subset((-110.0, 30.0, -90.0, 50.0))


@pytest.mark.parametrize("band", ["C", "X"])
def test_blur_preserves_mean_and_mass(mid_grid, band):
    rng = np.random.default_rng(0)
    anomaly = np.zeros(mid_grid.shape)
    anomaly[20:-20, 20:-20] = 20.0 * rng.standard_normal((mid_grid.nlat - 40, mid_grid.nlon - 40))
    field = 250.0 + anomaly  # structure only far (≥ 5°) from the window edges
    out = se.footprint_blur(field, mid_grid, band)
    assert out.mean() == pytest.approx(field.mean(), abs=1e-9)
    assert out.std() < 0.6 * field.std()
    impulse = np.zeros(mid_grid.shape)
    impulse[40, 40] = 1.0
    assert se.footprint_blur(impulse, mid_grid, band).sum() == pytest.approx(1.0, abs=1e-9)
    np.testing.assert_allclose(se.footprint_blur(np.full(mid_grid.shape, 200.0), mid_grid, band), 200.0)


@pytest.mark.parametrize("band", ["C", "X"])
def test_blur_step_width_matches_sigma(band):
    """10–90% width of a blurred step against 2.563σ, sampled the same way (0.125° cells)."""
    from scipy.stats import norm

    g = Grid(0.125).subset((-104.0, 36.0, -96.0, 44.0))
    s_lat, s_lon = se.FOOTPRINT_SIGMA_KM[band]
    lat, lon = g.lat, g.lon
    # a step in latitude (0 north of 40N, 1 south of it): profile along a column
    lat_step = np.broadcast_to((lat < 40.0)[:, None], g.shape).astype(float)
    prof = se.footprint_blur(lat_step, g, band, sidelobe=0.0)[:, 32]
    x_km = (40.0 - lat) * KM_PER_DEG  # distance south of the step, increasing down the column
    w_lat = rise_width(x_km, prof)
    assert w_lat == pytest.approx(rise_width(x_km, norm.cdf(x_km / s_lat)), rel=0.03)
    assert w_lat == pytest.approx(RISE_10_90 * s_lat, rel=0.08)
    # a step in longitude at -100E: profile along the row at 40.0625N
    lon_step = np.broadcast_to((lon > -100.0)[None, :], g.shape).astype(float)
    row = int(np.argmin(np.abs(lat - 40.0625)))
    prof = se.footprint_blur(lon_step, g, band, sidelobe=0.0)[row]
    x_km = (lon + 100.0) * KM_PER_DEG * np.cos(np.deg2rad(lat[row]))
    w_lon = rise_width(x_km, prof)
    assert w_lon == pytest.approx(rise_width(x_km, norm.cdf(x_km / s_lon)), rel=0.03)
    assert w_lon == pytest.approx(RISE_10_90 * s_lon, rel=0.15)
    assert w_lat > 1.5 * w_lon  # major axis N–S


def test_sidelobe_widens_the_tails(mid_grid):
    step = np.broadcast_to((mid_grid.lat < 40.0)[:, None], mid_grid.shape).astype(float)
    plain = se.footprint_blur(step, mid_grid, "C", sidelobe=0.0)[:, 40]
    lobed = se.footprint_blur(step, mid_grid, "C")[:, 40]
    far = np.abs(mid_grid.lat - 40.0) > 1.2  # > 130 km from the step: beyond the main lobe
    assert np.all(np.abs(plain[far] - np.round(plain[far])) < 1e-4)
    assert np.max(np.abs(lobed[far] - np.round(lobed[far]))) > 1e-3


def test_sigma_table_is_fwhm_over_2355():
    assert se.FOOTPRINT_SIGMA_KM["C"] == pytest.approx((75 / 2.355, 43 / 2.355), abs=0.05)
    assert se.FOOTPRINT_SIGMA_KM["X"] == pytest.approx((51 / 2.355, 29 / 2.355), abs=0.05)


def test_blur_leading_axes_and_periodic_grid():
    g = Grid(1.0)
    rng = np.random.default_rng(1)
    stack = rng.standard_normal((2, 3, *g.shape))
    out = se.footprint_blur(stack, g, "X")
    assert out.shape == stack.shape
    np.testing.assert_allclose(out[1, 2], se.footprint_blur(stack[1, 2], g, "X"))
    # the dateline does not exist for a global grid: rolling commutes with the blur
    rolled = se.footprint_blur(np.roll(stack[0, 0], 7, axis=-1), g, "X")
    np.testing.assert_allclose(rolled, np.roll(out[0, 0], 7, axis=-1), atol=1e-10)


def test_blur_rejects_nan_and_bad_band(mid_grid):
    field = np.full(mid_grid.shape, 250.0)
    field[5, 5] = np.nan
    with pytest.raises(SmrayError):
        se.footprint_blur(field, mid_grid, "C")
    with pytest.raises(SmrayError):
        se.footprint_blur(np.zeros(mid_grid.shape), mid_grid, "K")
    with pytest.raises(SmrayError):
        se.footprint_blur(np.zeros((3, 3)), mid_grid, "C")


def test_coastal_contamination_tens_of_k(mid_grid):
    """A straight E–W coast at 40N, land to the south: mix, blur, look at the first land cells."""
    lat = mid_grid.lat
    f_land = np.broadcast_to((lat < 40.0)[:, None], mid_grid.shape).astype(float)
    land_h, land_v = ph.land_tb(0.2, 0.4, 0.2, 1.34, 295.0, 293.0, 295.0, 0.3, 0.15, "C")
    sea_h, sea_v = ph.water_tb(290.0, 293.0, "C")
    mixed_h = f_land * float(land_h) + (1.0 - f_land) * float(sea_h)
    mixed_v = f_land * float(land_v) + (1.0 - f_land) * float(sea_v)
    blur_h = se.footprint_blur(mixed_h, mid_grid, "C")[:, 40]
    blur_v = se.footprint_blur(mixed_v, mid_grid, "C")[:, 40]
    first_land = int(np.argmax(lat < 40.0))
    drop_h = float(land_h) - blur_h[first_land:first_land + 3]
    assert 40.0 < drop_h[0] < 120.0      # cell centre 14 km inland
    assert 10.0 < drop_h[1] < drop_h[0]  # 42 km inland: still tens of K
    assert (float(land_v) - blur_v[first_land]) < drop_h[0]  # V is less polarised: less contamination
    inland = lat < 40.0 - 300.0 / KM_PER_DEG
    assert np.all(float(land_h) - blur_h[inland] < 0.5)


# --------------------------------------------------------------------------------------------
# Noise
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("band", ["C", "X"])
def test_noise_std_matches_nedt(band):
    rng = np.random.default_rng(2)
    tb = np.full((400, 500), 250.0)
    tb[0, 0] = np.nan
    out = se.add_noise(tb, band, rng)
    d = (out - tb)[1:].ravel()
    assert np.isnan(out[0, 0])
    assert d.std() == pytest.approx(se.NEDT_K[band], rel=0.02)
    assert abs(d.mean()) < 0.01
    assert se.NEDT_K == {"C": 0.3, "X": 0.6}


# --------------------------------------------------------------------------------------------
# RFI sources
# --------------------------------------------------------------------------------------------
def test_rfi_sources_deterministic_and_read_only():
    a = se.rfi_sources(7)
    se.rfi_sources.cache_clear()
    b = se.rfi_sources(7)
    assert a is not b
    for name in ("lat", "lon", "amplitude_k", "band", "region"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    c = se.rfi_sources(8)
    assert not np.array_equal(a.lat, c.lat)
    with pytest.raises(ValueError):
        a.amplitude_k[0] = 1.0


def test_rfi_source_counts_boxes_and_land():
    src = se.rfi_sources(0)
    want = {"usa": 150, "japan_c": 30, "middle_east": 40, "europe": 20, "england": 15, "italy": 15, "japan_x": 10}
    for region, n in want.items():
        band, count, (west, south, east, north) = se.RFI_REGIONS[region]
        m = src.region == region
        assert m.sum() == n == count
        assert np.all(src.band[m] == band)
        assert np.all((src.lat[m] >= south) & (src.lat[m] <= north))
        assert np.all((src.lon[m] >= west) & (src.lon[m] <= east))
    assert (src.band == "C").sum() == 240 and (src.band == "X").sum() == 40
    assert se.RFI_REGIONS["usa"][2] == (-125.0, 25.0, -67.0, 49.0)
    assert se.RFI_REGIONS["middle_east"][2] == (35.0, 15.0, 60.0, 38.0)
    land = surface_fractions(Grid(0.25))["land"]
    row = ((90.0 - src.lat) / 0.25).astype(int)
    col = ((src.lon + 180.0) / 0.25).astype(int)
    assert np.all(land[row, col] >= se.RFI_MIN_LAND_FRACTION)


def test_rfi_amplitudes_lognormal_median_5k_capped():
    amps = np.concatenate([se.rfi_sources(s).amplitude_k for s in range(10)])
    assert np.median(amps) == pytest.approx(5.0, rel=0.08)
    assert amps.max() == se.RFI_CAP_K and np.all(amps > 0)
    uncapped = np.log(amps[amps < se.RFI_CAP_K])
    assert uncapped.std() == pytest.approx(0.9, rel=0.08)
    assert np.median(se.rfi_sources(0).amplitude_k) == pytest.approx(5.0, rel=0.3)


def test_rfi_overpass_presence_rate_and_scaling():
    src = se.rfi_sources(0)
    c = src.select("C")
    rng = np.random.default_rng(3)
    on, ratio_h, ratio_v = [], [], []
    for _ in range(200):
        h, v = se.overpass_amplitudes(src, "C", rng)
        present = h > 0
        on.append(present.mean())
        ratio_h.append(h[present] / c.amplitude_k[present])
        ratio_v.append(v[present] / h[present])
    assert np.mean(on) == pytest.approx(0.7, abs=0.01)
    rh, rv = np.concatenate(ratio_h), np.concatenate(ratio_v)
    assert rh.min() >= 0.5 and rh.max() <= 1.5 and rh.mean() == pytest.approx(1.0, abs=0.01)
    assert rv.min() >= 0.5 and rv.max() <= 1.0 and rv.mean() == pytest.approx(0.75, abs=0.01)


# --------------------------------------------------------------------------------------------
# RFI fields
# --------------------------------------------------------------------------------------------
def _one_source(lat: float, lon: float, amp: float, band: str = "C") -> se.RfiSources:
    return se.RfiSources(np.array([lat]), np.array([lon]), np.array([amp]), np.array([band]), np.array(["t"]))


def test_rfi_spot_peak_and_width():
    g = Grid(0.25).subset((-104.0, 36.0, -96.0, 44.0))
    src = _one_source(40.125, -100.125, 20.0)  # on a cell centre
    for seed in range(40):
        rng = np.random.default_rng(seed)
        h_amp, v_amp = se.overpass_amplitudes(src, "C", np.random.default_rng(seed))
        dh, dv = se.rfi_increment(src, g, "C", rng)
        if h_amp[0] > 0:
            break
    assert dh.max() == pytest.approx(h_amp[0], rel=0.03)
    assert dv.max() == pytest.approx(v_amp[0], rel=0.03)
    i, j = np.unravel_index(np.argmax(dh), dh.shape)
    assert (g.lat[i], g.lon[j]) == (40.125, -100.125)
    # one cell (27.8 km) north: exp(-1/2) of the peak
    assert dh[i - 1, j] / dh[i, j] == pytest.approx(np.exp(-0.5), rel=0.05)


def test_rfi_nothing_outside_window_and_other_band():
    src = se.rfi_sources(0)
    amazon = Grid(0.25).subset((-65.0, -10.0, -55.0, 0.0))
    dh, dv = se.rfi_increment(src, amazon, "C", np.random.default_rng(0))
    assert dh.shape == amazon.shape and not dh.any() and not dv.any()
    usa = Grid(0.25).subset((-100.0, 30.0, -85.0, 45.0))
    dh, _ = se.rfi_increment(src, usa, "X", np.random.default_rng(0))
    assert not dh.any()  # no X-band sources in the USA
    dh, dv = se.rfi_increment(src, usa, "C", np.random.default_rng(0))
    assert dh.max() > 5.0 and np.all(dv <= dh + 1e-3) and dh.min() >= 0.0


def test_rfi_regional_matches_global():
    src = se.rfi_sources(0)
    glob = Grid(0.25)
    region = glob.subset((-100.0, 30.0, -85.0, 45.0))
    gh, gv = se.rfi_increment(src, glob, "C", np.random.default_rng(5))
    rh, rv = se.rfi_increment(src, region, "C", np.random.default_rng(5))
    rows, cols = region.window
    assert gh[rows, cols].max() > 5.0
    np.testing.assert_allclose(rh, gh[rows, cols], atol=1e-2)
    np.testing.assert_allclose(rv, gv[rows, cols], atol=1e-2)


def test_rfi_coarse_grid_conserves_area_integral():
    src = se.rfi_sources(0)
    fine, coarse = Grid(0.25), Grid(1.0)
    fh, _ = se.rfi_increment(src, fine, "C", np.random.default_rng(9))
    ch, _ = se.rfi_increment(src, coarse, "C", np.random.default_rng(9))
    assert ch.sum() == pytest.approx(fh.sum() / 16.0, rel=0.02)


def test_rfi_index_flags_strong_c_sources_after_blur():
    """Natural scene + C-band RFI, blurred per band: index_V > 5 K at the strongest source."""
    src = se.rfi_sources(0)
    usa = src.region == "usa"
    k = int(np.argmax(np.where(usa, src.amplitude_k, 0.0)))
    lat0, lon0 = float(src.lat[k]), float(src.lon[k])
    assert src.amplitude_k[k] > 25.0
    g = Grid(0.25).subset((lon0 - 3.0, lat0 - 3.0, lon0 + 3.0, lat0 + 3.0))
    shape = g.shape
    scene = {b: ph.land_tb(np.full(shape, 0.2), 0.4, 0.2, 1.34, 295.0, 293.0, 295.0, 0.3, 0.15, b)
             for b in "CX"}
    i = int(np.argmin(np.abs(g.lat - lat0)))
    j = int(np.argmin(np.abs(g.lon - lon0)))
    flagged = 0
    for seed in range(10):
        rng = np.random.default_rng(seed)
        dh_c, dv_c = se.rfi_increment(src, g, "C", rng)
        dh_x, dv_x = se.rfi_increment(src, g, "X", rng)
        tb = {}
        for b, (dh, dv) in (("C", (dh_c, dv_c)), ("X", (dh_x, dv_x))):
            tb[b] = [se.footprint_blur(scene[b][0] + dh, g, b), se.footprint_blur(scene[b][1] + dv, g, b)]
        idx_h = se.rfi_index(tb["C"][0], tb["X"][0])
        idx_v = se.rfi_index(tb["C"][1], tb["X"][1])
        natural_v = float(scene["C"][1][0, 0] - scene["X"][1][0, 0])
        if dh_c[i, j] > 0.5 * src.amplitude_k[k]:  # the strong source is on in this overpass
            flagged += 1
            assert idx_v[i, j] > se.RFI_FLAG_K
            assert idx_h[i, j] - float(scene["C"][0][0, 0] - scene["X"][0][0, 0]) > se.RFI_FLAG_K
        assert abs(natural_v) < se.RFI_FLAG_K
        # cells with no RFI nearby keep their natural index: not flagged
        quiet = (dv_c < 1e-3) & (np.abs(idx_v - natural_v) < 1e-6)
        assert np.all(idx_v[quiet] < se.RFI_FLAG_K)
    assert flagged >= 4


def test_natural_surfaces_not_flagged():
    """Natural C−X differences of the twin's forward model stay below the 5 K flag."""
    scenes = {  # (m_v, sand, clay, ρ_b, T, τ_C, h)
        "wet loam": (0.35, 0.4, 0.2, 1.34, 295.0, 0.0, 0.15),
        "grass": (0.2, 0.4, 0.2, 1.34, 295.0, 0.3, 0.15),
        "dry sand": (0.03, 0.9, 0.05, 1.5, 308.0, 0.0, 0.3),
        "forest": (0.25, 0.4, 0.2, 1.34, 298.0, 1.2, 0.15),
    }
    for name, (mv, s, c, rb, t, tau, h) in scenes.items():
        tb_c = ph.land_tb(mv, s, c, rb, t, t, t, tau, h, "C")
        tb_x = ph.land_tb(mv, s, c, rb, t, t, t, tau, h, "X")
        for p in range(2):
            assert se.rfi_index(tb_c[p], tb_x[p]) < se.RFI_FLAG_K, name
