"""smray.regrid: orientation/roll invariance, exactness on linear fields, masking, block means."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smray.errors import SmrayError
from smray.grid import Grid
from smray.regrid import bilinear, bilinear_to_grid, block_mean, reduced_gaussian_to_grid

#: ERA-style point-registered spacings (deg) that divide 360 and 180.
SPACINGS = [0.75, 1.0, 1.5, 2.5, 3.0, 5.0, 7.5, 10.0]


def era_axes(step: float) -> tuple[np.ndarray, np.ndarray]:
    """ERA layout: lat 90 → −90 including the poles, lon 0 → 360−step."""
    lat = np.linspace(90.0, -90.0, round(180 / step) + 1)
    lon = np.arange(round(360 / step)) * step
    return lat, lon


@settings(max_examples=25, deadline=None)
@given(step=st.sampled_from(SPACINGS), res=st.sampled_from([0.5, 1.0, 2.0, 2.5]),
       seed=st.integers(0, 2**31 - 1), ocean=st.floats(0.0, 0.7))
def test_flip_and_roll_invariance(step, res, seed, ocean):
    """North-first vs south-first and 0..360 vs −180..180 sources give the same result."""
    rng = np.random.default_rng(seed)
    lat, lon = era_axes(step)
    values = rng.random((2, lat.size, lon.size))
    valid = rng.random((lat.size, lon.size)) >= ocean
    grid = Grid(res)
    ref = bilinear_to_grid(values, lat, lon, grid, valid=valid)

    flipped = bilinear_to_grid(values[:, ::-1], lat[::-1], lon, grid, valid=valid[::-1])
    np.testing.assert_array_equal(np.isnan(flipped), np.isnan(ref))
    np.testing.assert_allclose(flipped, ref, rtol=0, atol=1e-12)

    half = lon.size // 2  # roll to −180 → 180−step
    rolled_lon = np.where(lon >= 180, lon - 360, lon)
    rolled = bilinear_to_grid(np.roll(values, -half, axis=-1), lat, np.roll(rolled_lon, -half), grid,
                              valid=np.roll(valid, -half, axis=-1))
    np.testing.assert_array_equal(np.isnan(rolled), np.isnan(ref))
    np.testing.assert_allclose(rolled, ref, rtol=0, atol=1e-12)


@settings(max_examples=25, deadline=None)
@given(step=st.sampled_from(SPACINGS), a=st.floats(-1, 1), b=st.floats(-0.01, 0.01),
       c=st.floats(-0.01, 0.01), west=st.integers(-170, 100), width=st.integers(30, 70))
def test_exact_on_linear_field_regional(step, a, b, c, west, width):
    """A field linear in (lat, lon) is reproduced exactly inside a regional (non-periodic) source."""
    lat = np.arange(60.0, -60.0 - 1e-9, -step)
    lon = west + np.arange(int(width / step) + 1) * step
    field = a + b * lat[:, None] + c * lon[None, :]
    dst_lat = np.linspace(lat[-1], lat[0], 17)
    dst_lon = np.linspace(lon[0], lon[-1], 23)
    out = bilinear(field, lat, np.mod(lon, 360.0), dst_lat, dst_lon)  # 0..360 labels of the same span
    expect = a + b * dst_lat[:, None] + c * dst_lon[None, :]
    np.testing.assert_allclose(out, expect, rtol=0, atol=1e-9)


@settings(max_examples=20, deadline=None)
@given(step=st.sampled_from(SPACINGS), a=st.floats(-1, 1), b=st.floats(-0.01, 0.01))
def test_exact_on_field_linear_in_lat_global(step, a, b):
    lat, lon = era_axes(step)
    field = np.broadcast_to(a + b * lat[:, None], (lat.size, lon.size))
    grid = Grid(0.5)
    out = bilinear_to_grid(field, lat, lon, grid)
    np.testing.assert_allclose(out, np.broadcast_to(a + b * grid.lat[:, None], grid.shape), atol=1e-12)


def test_longitude_wraps_around():
    """Targets between the last source longitude (355) and 360 interpolate with 0°E."""
    lat, lon = era_axes(5.0)
    field = np.zeros((lat.size, lon.size))
    field[:, 0] = 1.0  # 0°E
    out = bilinear(field, lat, lon, np.array([0.0]), np.array([-2.5, 2.5, 357.5 - 360, -177.5]))
    np.testing.assert_allclose(out[0], [0.5, 0.5, 0.5, 0.0])


def test_masked_points_do_not_bleed():
    """Ocean (invalid) values never enter; renormalised weights; NaN where no valid neighbour."""
    lat = np.array([10.0, 0.0])
    lon = np.array([0.0, 10.0, 20.0])
    values = np.array([[0.2, 0.4, 9.0], [0.3, 9.0, 9.0]])
    valid = np.array([[True, True, False], [True, False, False]])
    out = bilinear(values, lat, lon, np.array([5.0]), np.array([5.0, 15.0]), valid=valid)
    # cell (5, 5): valid corners 0.2, 0.4, 0.3, each weight 0.25 → renormalised mean
    assert out[0, 0] == pytest.approx((0.2 + 0.4 + 0.3) / 3)
    assert out[0, 1] == pytest.approx(0.4)  # only 0.4 is valid among (10,10),(10,20),(0,10),(0,20)
    nan_in = values.copy()
    nan_in[~valid] = np.nan  # NaN works like valid=False
    np.testing.assert_allclose(bilinear(nan_in, lat, lon, np.array([5.0]), np.array([5.0, 15.0])), out)
    all_ocean = bilinear(values, lat, lon, np.array([5.0]), np.array([25.0]), valid=valid)
    assert np.isnan(all_ocean).all()  # (regional source: 25°E is outside its span as well)


def test_regional_source_outside_is_nan_and_poles_covered():
    lat = np.array([50.0, 40.0, 30.0])
    lon = np.array([0.0, 10.0, 20.0])
    values = np.ones((3, 3))
    out = bilinear(values, lat, lon, np.array([55.0, 56.0, 45.0, 24.0]), np.array([-5.0, -6.0, 25.0, 26.0, 10.0]))
    expect_row = np.array([1.0, np.nan, 1.0, np.nan, 1.0])
    np.testing.assert_array_equal(out[0], expect_row)  # 55 is within half a spacing of 50
    assert np.isnan(out[1]).all() and np.isnan(out[3]).all()
    # a global ERA grid includes the poles: the polar cell centres of the 0.25° grid are covered
    glat, glon = era_axes(0.75)
    g = bilinear_to_grid(np.ones((glat.size, glon.size)), glat, glon, Grid(0.25))
    assert np.isfinite(g).all()
    # a cell-centre source (0.75° block means): its outer half cells still cover the 0.25° poles
    c = Grid(0.75)
    back = bilinear_to_grid(np.ones(c.shape), c.lat, c.lon, Grid(0.25))
    assert np.isfinite(back).all()


def test_block_mean_then_bilinear_back_is_smooth_identity_on_constant():
    g = Grid(0.25)
    rng = np.random.default_rng(1)
    field = rng.random(g.shape)
    field[:30] = np.nan
    coarse = block_mean(field, 3)
    assert coarse.shape == (240, 480)
    expect = np.nanmean(field[30:36].reshape(2, 3, 480, 3), axis=(1, 3))
    np.testing.assert_allclose(coarse[10:12], expect)
    assert np.isnan(coarse[:10]).all()
    np.testing.assert_allclose(block_mean(np.full((2, 6, 9), 0.3), 3), np.full((2, 2, 3), 0.3))
    with pytest.raises(SmrayError, match="divisible"):
        block_mean(np.ones((7, 9)), 3)


def _toy_reduced_gaussian(n: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """A reduced Gaussian grid N``n``: the 2n Gaussian latitudes (north first), fewer points per row
    towards the poles, each row starting at 0°E. Returns per-point (lats, lons)."""
    row_lat = np.degrees(np.arcsin(np.polynomial.legendre.leggauss(2 * n)[0]))[::-1]
    lats, lons = [], []
    for la in row_lat:
        k = max(8, int(round(4 * n * np.cos(np.radians(la)))))
        lons.append(np.arange(k) * 360.0 / k)
        lats.append(np.full(k, la))
    return np.concatenate(lats), np.concatenate(lons)


def test_reduced_gaussian_exact_in_latitude_and_rows():
    lats, lons = _toy_reduced_gaussian()
    grid = Grid(2.5)
    field = 0.1 + 0.002 * lats
    out = reduced_gaussian_to_grid(field[None], lats, lons, grid)[0]
    inside = np.abs(grid.lat) <= np.abs(lats).max()
    np.testing.assert_allclose(out[inside], np.broadcast_to((0.1 + 0.002 * grid.lat[inside])[:, None],
                                                            (inside.sum(), grid.nlon)), atol=1e-12)
    # poleward of the outermost rows the outermost row is used
    np.testing.assert_allclose(out[0], 0.1 + 0.002 * lats.max())
    assert np.isfinite(out).all()


def test_reduced_gaussian_masking_and_roll():
    lats, lons = _toy_reduced_gaussian()
    rng = np.random.default_rng(3)
    values = rng.random(lats.size)
    valid = rng.random(lats.size) > 0.4
    grid = Grid(2.0)
    ref = reduced_gaussian_to_grid(values, lats, lons, grid, valid=valid)
    # −180..180 labels and shuffled point order give the same result
    perm = rng.permutation(lats.size)
    lon_pm = np.where(lons >= 180, lons - 360, lons)
    other = reduced_gaussian_to_grid(values[perm], lats[perm], lon_pm[perm], grid, valid=valid[perm])
    np.testing.assert_array_equal(np.isnan(other), np.isnan(ref))
    np.testing.assert_allclose(other, ref, atol=1e-12)
    # invalid values never enter: replacing them changes nothing
    poisoned = np.where(valid, values, 99.0)
    np.testing.assert_allclose(reduced_gaussian_to_grid(poisoned, lats, lons, grid, valid=valid), ref,
                               atol=1e-12)
    finite = ref[np.isfinite(ref)]
    assert finite.min() >= values[valid].min() - 1e-12 and finite.max() <= values[valid].max() + 1e-12


def test_bad_inputs_raise_one_line():
    with pytest.raises(SmrayError, match="monotonic"):
        bilinear(np.ones((3, 2)), np.array([0.0, 1.0, 0.0]), np.array([0.0, 1.0]), np.zeros(1), np.zeros(1))
    with pytest.raises(SmrayError, match="shape"):
        bilinear(np.ones((3, 3)), np.array([0.0, 1.0]), np.array([0.0, 1.0]), np.zeros(1), np.zeros(1))
    with pytest.raises(SmrayError, match="repeat"):
        bilinear(np.ones((2, 2)), np.array([0.0, 1.0]), np.array([0.0, 360.0]), np.zeros(1), np.zeros(1))
