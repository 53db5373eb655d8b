"""The canonical grid, its windows, and the land/lake/ocean fractions."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smray.errors import SmrayError
from smray.grid import Grid, canonical, check_bbox, check_resolution, surface_fractions


def test_canonical_grid_matches_the_products() -> None:
    g = canonical()
    assert g.shape == (720, 1440) and g.is_global and g.is_periodic
    assert g.lat[0] == 89.875 and g.lat[-1] == -89.875
    assert g.lon[0] == -179.875 and g.lon[-1] == 179.875
    assert np.allclose(np.diff(g.lat), -0.25) and np.allclose(np.diff(g.lon), 0.25)
    assert g.bounds == (-180.0, -90.0, 180.0, 90.0)


@pytest.mark.parametrize("res", [0.1, 0.25, 0.5, 1.0, 2.0, 5.0])
def test_resolutions_that_divide_180(res: float) -> None:
    g = Grid(res)
    assert g.shape == (round(180 / res), round(360 / res))


@pytest.mark.parametrize("res", [0.7, 0.35, 7.0, 0.0, -1.0, float("nan")])
def test_bad_resolutions_fail_with_one_line(res: float) -> None:
    with pytest.raises(SmrayError, match="res") as err:
        check_resolution(res)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("bbox", [(10, 0, 5, 10), (0, 10, 5, 5), (-200, 0, 0, 10), (0, 0, 1)])
def test_bad_bbox(bbox) -> None:
    with pytest.raises(SmrayError, match="bbox"):
        check_bbox(bbox)


def test_subset_is_a_window_of_the_global_grid() -> None:
    g = canonical().subset((-105, 30, -90, 45))
    assert g.shape == (60, 60)
    assert g.bounds == (-105.0, 30.0, -90.0, 45.0)
    assert g.lat[0] == 44.875 and g.lon[0] == -104.875
    assert not g.is_periodic


@settings(max_examples=60, deadline=None)
@given(res=st.sampled_from([0.25, 0.5, 1.0, 2.0]),
       west=st.floats(-180, 170), width=st.floats(0.6, 100), south=st.floats(-90, 80), height=st.floats(0.6, 60))
def test_subset_embed_roundtrip(res: float, west: float, width: float, south: float, height: float) -> None:
    east, north = min(west + width, 180.0), min(south + height, 90.0)
    try:
        g = Grid(res).subset((west, south, east, north))
    except SmrayError:
        return  # box holds no cell centre at this resolution
    full = Grid(res)
    # every window cell centre lies in the box, and the window is the smallest holding them all
    assert (g.lat >= south).all() and (g.lat <= north).all() and (g.lon >= west).all() and (g.lon <= east).all()
    values = np.arange(g.nlat * g.nlon, dtype=np.float64).reshape(g.shape)
    embedded = g.embed(values, np.nan)
    assert embedded.shape == full.shape
    np.testing.assert_array_equal(embedded[g.window], values)
    assert np.isnan(embedded).sum() == full.nlat * full.nlon - values.size
    np.testing.assert_array_equal(full.lat[g.window[0]], g.lat)
    np.testing.assert_array_equal(full.lon[g.window[1]], g.lon)


def test_coarsen() -> None:
    g = Grid(0.25).coarsen(4)
    assert g == Grid(1.0)
    with pytest.raises(SmrayError):
        Grid(0.25, 1, 9, 0, 8).coarsen(4)


def test_surface_fractions_global_quarter_degree() -> None:
    f = surface_fractions(canonical())
    total = f["land"] + f["lake"] + f["ocean"]
    np.testing.assert_allclose(total, 1.0, atol=1e-6)
    lat = canonical().lat[:, None]
    some_land = ((f["land"] + f["lake"]) > 0) & (lat > -60)
    # physics.md: 265,503 cells with land north of 60S before the lakes are cut out
    assert abs(int(some_land.sum()) - 265_503) < 300
    g = canonical()

    def cell(lat_: float, lon_: float) -> dict[str, float]:
        i = int((90 - lat_) / 0.25)
        j = int((lon_ + 180) / 0.25)
        return {k: float(v[i, j]) for k, v in f.items()}

    assert cell(41.5, 50.5)["lake"] > 0.9  # Caspian: a lake, not land
    assert cell(47.7, -87.5)["lake"] > 0.9  # Superior
    assert cell(-1.0, 33.0)["lake"] > 0.9  # Victoria
    assert cell(48.0, 2.0)["land"] == 1.0  # Paris
    assert cell(0.0, -140.0)["ocean"] == 1.0  # Pacific
    assert g.shape == f["land"].shape


def test_regional_fractions_are_the_global_window() -> None:
    g = Grid(1.0)
    r = g.subset((-20, -10, 40, 30))
    full = surface_fractions(g)
    part = surface_fractions(r)
    for k in full:
        np.testing.assert_array_equal(part[k], full[k][r.window])
