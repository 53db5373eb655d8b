"""The canonical grid, its windows, and the land/lake/ocean fractions."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given, settings
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


def cell_centres(res: float) -> tuple[np.ndarray, np.ndarray]:
    """The global grid's cell centres (lat north to south, lon west to east), degrees, written out here."""
    return 90 - res * (np.arange(round(180 / res)) + 0.5), -180 + res * (np.arange(round(360 / res)) + 0.5)


@settings(max_examples=60, deadline=None)
@given(res=st.sampled_from([0.25, 0.5, 1.0, 2.0]),
       west=st.floats(-180, 170), width=st.floats(0.6, 100), south=st.floats(-90, 80), height=st.floats(0.6, 60))
def test_subset_embed_roundtrip(res: float, west: float, width: float, south: float, height: float) -> None:
    east, north = min(west + width, 180.0), min(south + height, 90.0)
    lat, lon = cell_centres(res)
    lat_in, lon_in = lat[(lat >= south) & (lat <= north)], lon[(lon >= west) & (lon <= east)]
    assume(lat_in.size and lon_in.size)  # boxes without a cell centre: test_a_box_between_cell_centres_is_refused
    g = Grid(res).subset((west, south, east, north))
    full = Grid(res)
    # the window is exactly the cell centres in the box: all of them lie inside, none outside is left out
    np.testing.assert_allclose(g.lat, lat_in, rtol=0, atol=1e-9)
    np.testing.assert_allclose(g.lon, lon_in, rtol=0, atol=1e-9)
    values = np.arange(g.nlat * g.nlon, dtype=np.float64).reshape(g.shape)
    embedded = g.embed(values, np.nan)
    assert embedded.shape == full.shape
    np.testing.assert_array_equal(embedded[g.window], values)
    assert np.isnan(embedded).sum() == full.nlat * full.nlon - values.size
    np.testing.assert_array_equal(full.lat[g.window[0]], g.lat)
    np.testing.assert_array_equal(full.lon[g.window[1]], g.lon)


@settings(max_examples=60, deadline=None)
@given(res=st.sampled_from([0.25, 0.5, 1.0, 2.0]), data=st.data(),
       lo=st.floats(0.05, 0.45), hi=st.floats(0.55, 0.95), across=st.sampled_from(["lon", "lat"]))
def test_a_box_between_cell_centres_is_refused(res: float, data, lo: float, hi: float, across: str) -> None:
    """A box that falls between two neighbouring cell centres (in longitude or in latitude) holds none:
    one line naming the box."""
    lat, lon = cell_centres(res)
    if across == "lon":
        j = data.draw(st.integers(0, lon.size - 2), label="column")
        bbox = (lon[j] + lo * res, -60.0, lon[j] + hi * res, 60.0)
    else:
        i = data.draw(st.integers(1, lat.size - 1), label="row")
        bbox = (-100.0, lat[i] + lo * res, 100.0, lat[i] + hi * res)
    with pytest.raises(SmrayError, match="holds no cell centre") as err:
        Grid(res).subset(bbox)
    assert str(bbox) in str(err.value) and "\n" not in str(err.value)


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
