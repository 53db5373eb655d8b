"""The twin's random fields, static fields, 12-hourly state model and reference analyses
(pure functions, no Ray)."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from smray.grid import Grid
from smray.synth import render
from smray.synth.fields import DESERTS, build_static, tau_c_on_day, vegetation_peak_doy
from smray.synth.grf import grf, smooth
from smray.synth.model import TwinModel

G = Grid(1.0)


@pytest.mark.parametrize("length", [300.0, 700.0])
def test_grf_correlation_is_gaussian_in_distance(length: float) -> None:
    g = Grid(0.5)
    z = grf(np.random.default_rng(0), g, length, n=6).astype(np.float64)
    assert z.shape == (6, *g.shape)
    np.testing.assert_allclose(z.std(axis=(1, 2)), 1.0, atol=1e-5)
    row = z[:, g.nlat // 2, :]  # the equator: a cell is 55.6 km
    for lag in (3, 6):
        d = lag * g.cell_km()
        r = np.mean([np.corrcoef(x, np.roll(x, lag))[0, 1] for x in row])
        assert r == pytest.approx(np.exp(-d * d / (2 * length**2)), abs=0.06)


def test_smooth_lon_wraps_on_global_grids_only() -> None:
    g = Grid(1.0)
    field = np.zeros(g.shape)
    field[:, 0] = 1.0  # a line at the dateline
    out = smooth(field, g, 0.0, 300.0)
    assert out[90, -1] > 0.1  # leaks across the dateline
    r = g.subset((-180, -30, 0, 30))
    out_r = smooth(np.zeros(r.shape) + (np.arange(r.nlon) == 0), r, 0.0, 300.0)
    assert out_r[10, -1] < 1e-6
    np.testing.assert_allclose(smooth(np.ones(g.shape), g, 200.0, 200.0), 1.0, atol=1e-9)


@pytest.fixture(scope="module")
def static():
    return build_static(G, seed=1)


def test_static_fields_are_physical(static) -> None:
    s = static
    land = s.land > 0.5
    assert (s.sand >= 0.05).all() and (s.sand <= 0.95).all()
    assert (s.clay >= 0.02).all() and (s.clay <= 0.6).all()
    assert (s.theta_min < s.theta_sat).all()
    assert (s.tau_peak >= 0).all() and (s.tau_peak <= 1.4).all()
    # deserts are dry and sandy, the tropics wet and forested
    lat, lon = G.lat[:, None], G.lon[None, :]
    w, so, e, n = DESERTS["Sahara"]
    sahara = land & (lat > so) & (lat < n) & (lon > w) & (lon < e)
    congo = land & (np.abs(lat) < 4) & (lon > 15) & (lon < 28)
    assert np.median(s.map_annual[sahara]) < 150 < 1200 < np.median(s.map_annual[congo])
    assert np.median(s.sand[sahara]) > np.median(s.sand[congo])
    assert np.median(s.tau_peak[congo]) > 0.8 > 0.2 > np.median(s.tau_peak[sahara])
    assert build_static(G, seed=1).sand.tobytes() == s.sand.tobytes()  # deterministic


def test_vegetation_peaks_in_the_local_summer(static) -> None:
    peak = vegetation_peak_doy(np.array([50.0, -50.0]))
    assert peak[0] == pytest.approx(215, abs=1) and peak[1] == pytest.approx(32.5, abs=1)
    lat = G.lat[:, None] * np.ones((1, G.nlon))
    nh = (lat > 40) & (lat < 60) & (static.land > 0.5) & (static.tau_peak > 0.3)
    assert tau_c_on_day(static, 215)[nh].mean() > tau_c_on_day(static, 30)[nh].mean()


def test_model_state_stays_physical_and_is_deterministic(static) -> None:
    start = dt.date(2011, 6, 20)
    m = TwinModel(G, static, seed=1, first_day=start)
    m.spin_up(10)
    days = [m.next_day() for _ in range(3)]
    land = static.land > 0.5
    for d in days:
        for p in ("A", "D"):
            ps = d.passes[p]
            assert (ps.sm[land] >= 0.01).all() and (ps.sm[land] <= static.theta_sat[land] + 1e-6).all()
            assert (ps.reference >= 0.05).all() and (ps.reference <= 0.47).all()
            assert (ps.t_soil > 180).all() and (ps.t_soil < 350).all()
        # 13:30 is warmer than 01:30 over land
        assert d.passes["A"].t_soil[land].mean() > d.passes["D"].t_soil[land].mean() + 5
        assert (d.rain_mm >= 0).all()
    m2 = TwinModel(G, static, seed=1, first_day=start)
    m2.spin_up(10)
    again = m2.next_day()
    np.testing.assert_array_equal(again.passes["A"].sm, days[0].passes["A"].sm)


def test_rain_responds_to_wet_soil(static) -> None:
    m = TwinModel(G, static, seed=2, first_day=dt.date(2011, 6, 1))
    m.spin_up(20)
    before = m.theta.copy()
    d = m.next_day()
    warm = (d.passes["D"].t_air > 278) & (d.passes["A"].t_air > 278) & (static.land > 0.5)
    unsaturated = before < static.theta_sat - 0.05  # a saturated bucket cannot get wetter
    wet = (d.rain_mm > 20) & warm & unsaturated  # cold cells get snow, which does not wet the soil
    assert wet.sum() > 50
    assert np.mean(d.passes["A"].sm[wet] > before[wet]) > 0.9


def test_analysis_fields_follow_local_time(static) -> None:
    """The 00 UTC analysis at 90°E (local 06:00) holds the day's 01:30 state; at 90°W (local 18:00 of
    the day before) the previous day's 13:30 state."""
    m = TwinModel(G, static, seed=3, first_day=dt.date(2011, 7, 1))
    prev, day, nxt = m.next_day(), m.next_day(), m.next_day()
    a = render.analysis_fields(prev, day, nxt, G)
    j_east = int(np.argmin(np.abs(G.lon - 90.5)))
    j_west = int(np.argmin(np.abs(G.lon + 89.5)))
    np.testing.assert_array_equal(a[0][:, j_east], day.passes["D"].reference[:, j_east])
    np.testing.assert_array_equal(a[0][:, j_west], prev.passes["A"].reference[:, j_west])
    # 18 UTC at 170°E is local 05:20 of the next day: the next day's 01:30 state
    j_far = int(np.argmin(np.abs(G.lon - 170.5)))
    np.testing.assert_array_equal(a[3][:, j_far], nxt.passes["D"].reference[:, j_far])


def test_degrade_to_era_grid_and_land_only_means(static) -> None:
    lat_e, lon_e = render.era_grid(1.0)
    assert lat_e[0] == 90 and lat_e[-1] == -90 and lon_e[0] == 0 and lon_e[-1] == 357
    land = static.land + static.lake
    field = np.where(land >= 0.5, 0.3, 9.0).astype(np.float32)  # the sea value must not leak
    out = render.degrade_to_era(field, land, G)
    assert np.nanmax(out) == pytest.approx(0.3, abs=1e-5)
    lsm = render.era_land_sea_mask(1.0)
    assert lsm.shape == (lat_e.size, lon_e.size) and 0 <= lsm.min() and lsm.max() <= 1


def test_era_area_covers_a_box_and_keeps_the_global_values_inside(static) -> None:
    """A regional grid's ERA area: the 3× lattice covering the box plus one point a side; points the
    global point grid held for that window have exactly its values, the others repeat the nearest."""
    g = G.subset((-10, 35, 30, 60))
    area = render.era_area(g)
    np.testing.assert_array_equal(area.lat, np.arange(63, 29, -3))
    np.testing.assert_array_equal(area.lon, np.arange(-15, 34, 3))
    lat_e, lon_e = render.era_grid(1.0)
    np.testing.assert_array_equal(lat_e[area.rows], area.lat)
    np.testing.assert_array_equal(lon_e[area.cols], area.lon % 360)
    land = (static.land + static.lake)[g.window]
    rng = np.random.default_rng(0)
    field = (0.2 + 0.05 * rng.standard_normal((2, *g.shape))).astype(np.float32)
    old = render.degrade_to_era(field, land, g)[..., area.rows, :][..., area.cols]  # global point grid
    new = render.degrade_to_era(field, land, g, area)
    held = np.isfinite(old).all(axis=0)
    assert held.sum() > 60
    np.testing.assert_array_equal(new[:, held], old[:, held])
    inside_r = area.src_rows == np.arange(area.lat.size)
    inside_c = area.src_cols == np.arange(area.lon.size)
    assert inside_r.sum() == 9 and inside_c.sum() == 13  # 36..60 and −9..27
    assert not held[~inside_r].any() and not held[:, ~inside_c].any()
    np.testing.assert_array_equal(new[:, 0], new[:, 1])  # the margin row repeats the nearest held row
    np.testing.assert_array_equal(new[:, :, -1], new[:, :, -3])  # 33 (and 30) repeat 27
    lsm = render.era_land_sea_mask(1.0)[np.ix_(area.rows, area.cols)]
    filled = render.fill_land_gaps(new, lsm)
    assert np.isfinite(filled[:, lsm >= 0.5]).all()
    np.testing.assert_array_equal(filled[np.isfinite(new)], new[np.isfinite(new)])


def test_era_area_at_the_antimeridian_and_the_pole() -> None:
    g = G.subset((-180, 80, -170, 90))
    area = render.era_area(g)
    assert area.lat[0] == 90 and area.lat[-1] == 75  # clipped at the pole
    np.testing.assert_array_equal(area.lon, np.arange(177, 196, 3))  # −183..−165 as 177..195, increasing
    whole = render.era_area(G.subset((-180, -30, 180, 30)))  # all longitudes: the global columns
    np.testing.assert_array_equal(whole.lon, np.arange(0, 360, 3))
