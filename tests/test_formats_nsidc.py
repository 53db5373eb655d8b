"""NSIDC AE_Land3 (HDF-EOS2/HDF4): EASE-Grid v1 constants, resampling, fills, pass handling,
damaged files. Files are built with pyhdf to the documented layout (pyhdf is pinned in the ``test`` extra:
without it these tests fail, they do not skip)."""

from __future__ import annotations

import math
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smray import storage
from smray.errors import SmrayError
from smray.formats.nsidc_land3 import (
    DEFAULT_CHANNELS,
    EASE_SHAPE,
    ease_forward,
    ease_inverse,
    ease_lat_edge,
    ease_to_grid,
    field_name,
    grid_to_ease,
    read_nsidc_land3,
    write_nsidc_land3_for_tests,
)
from smray.grid import Grid

NAME = "AMSR_E_L3_DailyLand_V06_20110701.hdf"


def _all_fields(value: float = 250.0) -> dict[str, np.ndarray]:
    return {field_name(p, c): np.full(EASE_SHAPE, value) for p in "AD" for c in DEFAULT_CHANNELS}


def _ease_cell_nsidc(lat: float, lon: float) -> tuple[int, int]:
    """EASE-Grid v1 global 25 km cell of (lat, lon), written out from NSIDC's ezlh_convert formulas."""
    re_c = 6371.228 / 25.067525
    cos30 = math.cos(math.radians(30))
    r = 691.0 + re_c * math.radians(lon) * cos30
    s = 292.5 - re_c * math.sin(math.radians(lat)) / cos30
    return int(math.floor(s + 0.5)), int(math.floor(r + 0.5))


# --------------------------------------------------------------------------------------------
# projection
# --------------------------------------------------------------------------------------------
def test_ease_grid_constants():
    assert ease_lat_edge() == pytest.approx(86.72, abs=0.005)  # NSIDC: grid spans 86.72S..86.72N
    lat, lon = ease_inverse(np.array([-0.5, 585.5, 292.5]), np.array([-0.5, 1382.5, 691.0]))
    assert lat[0] == pytest.approx(86.7167, abs=1e-4) and lat[1] == pytest.approx(-86.7167, abs=1e-4)
    assert lon[0] == pytest.approx(-180.0, abs=1e-4) and lon[1] == pytest.approx(180.0, abs=1e-4)
    assert lat[2] == 0.0 and lon[2] == 0.0
    # map corners as in the HDF-EOS2 metadata (metres): x = (col - 691) * 25067.525 m
    row, col = ease_forward(np.array(lat[0]), np.array(lon[0]))
    assert (col - 691.0) * 25067.525 == pytest.approx(-17334193.5, abs=1.0)
    assert (292.5 - row) * 25067.525 == pytest.approx(7344784.8, abs=1.0)
    # cell width in longitude is constant: 360 deg / 1383 columns
    _, lons = ease_inverse(np.zeros(2), np.array([0.0, 1.0]))
    assert lons[1] - lons[0] == pytest.approx(360 / 1383, rel=1e-6)


@settings(max_examples=100, deadline=None)
@given(lat=st.floats(-86.7, 86.7), lon=st.floats(-179.99, 179.99))
def test_forward_inverse_round_trip(lat, lon):
    row, col = ease_forward(np.array(lat), np.array(lon))
    lat2, lon2 = ease_inverse(row, col)
    assert float(lat2) == pytest.approx(lat, abs=1e-9)
    assert float(lon2) == pytest.approx(lon, abs=1e-9)
    assert -0.5 <= float(row) <= 585.5 and -0.5 <= float(col) <= 1382.5
    assert (int(np.floor(row + 0.5)), int(np.floor(col + 0.5))) == _ease_cell_nsidc(lat, lon)


def test_resampling_is_nearest_ease_cell():
    rng = np.random.default_rng(0)
    ease = rng.uniform(100, 300, EASE_SHAPE).astype(np.float32)
    g = Grid(0.25)
    out = ease_to_grid(ease, g)
    assert out.shape == g.shape
    edge = ease_lat_edge()
    for _ in range(300):
        i, j = int(rng.integers(0, g.nlat)), int(rng.integers(0, g.nlon))
        lat, lon = g.lat[i], g.lon[j]
        if abs(lat) > edge:
            assert np.isnan(out[i, j])
        else:
            assert out[i, j] == ease[_ease_cell_nsidc(lat, lon)]
    assert np.isnan(out[:13]).all() and np.isnan(out[-13:]).all()  # 86.875 .. 89.875
    assert np.isfinite(out[13:-13]).all()


# --------------------------------------------------------------------------------------------
# files
# --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def land3_file(tmp_path_factory):
    """A file where each channel/pass has its own offset, a hot cell at 10.125N 20.125E, fills."""
    path = tmp_path_factory.mktemp("land3") / NAME
    fields = {}
    hot = _ease_cell_nsidc(10.125, 20.125)
    for k, p in enumerate("AD"):
        for m, c in enumerate(DEFAULT_CHANNELS):
            counts = np.full(EASE_SHAPE, 2500 + 100 * k + 10 * m, dtype=np.int16)
            counts[hot] = 3333
            counts[0, 0] = 3100  # north-west corner cell: 85.31N, 179.87W
            counts[300, 700] = 9999  # swath gap
            counts[301, 700] = -9999  # screened
            fields[field_name(p, c)] = counts
    write_nsidc_land3_for_tests(path, fields)
    return path


def test_reads_all_passes_and_channels(land3_file):
    ds = read_nsidc_land3(str(land3_file))
    g = Grid(0.25)
    assert list(ds.data_vars) == ["tb_06h", "tb_06v", "tb_10h", "tb_10v"]
    assert ds.tb_06h.dims == ("pass", "lat", "lon") and ds.tb_06h.shape == (2, *g.shape)
    assert list(ds["pass"].values) == ["A", "D"]
    np.testing.assert_array_equal(ds.lat.values, g.lat)
    np.testing.assert_array_equal(ds.lon.values, g.lon)
    assert ds.attrs["date"] == "2011-07-01" and ds.attrs["units"] == "K" and ds.attrs["source"] == NAME
    for k, p in enumerate("AD"):
        for m, c in enumerate(DEFAULT_CHANNELS):
            v = ds[f"tb_{c}"].sel({"pass": p}).values
            assert v.dtype == np.float32
            assert np.nanmedian(v) == np.float32((2500 + 100 * k + 10 * m) / 10)


def test_orientation_and_fills(land3_file):
    ds = read_nsidc_land3(str(land3_file), passes=("D",), channels=("10v",))
    tb = ds.tb_10v.sel({"pass": "D"})
    assert float(tb.sel(lat=10.125, lon=20.125)) == np.float32(333.3)
    hot = np.argwhere(tb.values == np.float32(333.3))
    # every 0.25 cell showing the hot EASE cell has its centre inside that EASE cell
    for i, j in hot:
        assert _ease_cell_nsidc(float(ds.lat[i]), float(ds.lon[j])) == _ease_cell_nsidc(10.125, 20.125)
    assert float(tb.sel(lat=85.125, lon=-179.875)) == np.float32(310.0)
    assert float(tb.sel(lat=85.125, lon=179.875)) != np.float32(310.0)  # not wrapped to the east edge
    lat_gap, lon_gap = ease_inverse(np.array(300.0), np.array(700.0))
    lat_scr, _ = ease_inverse(np.array(301.0), np.array(700.0))
    gap = tb.sel(lat=float(lat_gap), lon=float(lon_gap), method="nearest")
    scr = tb.sel(lat=float(lat_scr), lon=float(lon_gap), method="nearest")
    assert np.isnan(float(gap)) and np.isnan(float(scr))
    assert np.isnan(tb.values[:13]).all()


def test_linear_field_survives_the_round_trip(tmp_path):
    g = Grid(0.25)
    lat2, lon2 = np.meshgrid(g.lat, g.lon, indexing="ij")
    truth = 200.0 + 0.4 * lat2 + 0.1 * lon2
    ease = grid_to_ease(truth, g)
    path = tmp_path / NAME
    write_nsidc_land3_for_tests(path, {field_name("A", "06h"): ease}, struct_metadata=False)
    ds = read_nsidc_land3(path, passes=("A",), channels=("06h",))
    got = ds.tb_06h.values[0]
    ok = np.isfinite(got)
    assert ok[13:-13].all()
    # two nearest-neighbour hops: 0.25 centre -> its EASE cell (within half an EASE cell, whose
    # height grows as 1/cos(lat)) -> the 0.25 cell holding the EASE centre (within 0.125 deg)
    band = np.abs(g.lat) <= 70
    half_h = 0.5 * np.degrees(25.067525 * math.cos(math.radians(30)) / 6371.228
                              / np.cos(np.radians(np.abs(g.lat[band]) + 1.0)))
    bound = 0.4 * (half_h + 0.125) + 0.1 * (0.5 * 360 / 1383 + 0.125) + 0.05 + 1e-3  # + 0.1 K counts
    err = np.abs(got[band] - truth[band])
    assert (err <= bound[:, None]).all()
    assert err.mean() < 0.1


def test_window_and_coarse_grid(land3_file):
    sub = Grid(0.25).subset((0.0, 0.0, 30.0, 20.0))
    ds = read_nsidc_land3(land3_file, grid=sub, passes=("A",))
    assert ds.tb_06h.shape == (1, *sub.shape)
    assert float(ds.tb_06h.sel({"pass": "A"}).sel(lat=10.125, lon=20.125)) == np.float32(333.3)
    coarse = read_nsidc_land3(land3_file, grid=Grid(1.0), channels=("06v",))
    assert coarse.tb_06v.shape == (2, 180, 360)


def test_bytes_and_storage_backends(land3_file, storage_root):
    data = land3_file.read_bytes()
    ds = read_nsidc_land3(data, name=NAME, passes=("A",), channels=("06h",))
    assert ds.attrs["source"] == NAME and ds.attrs["date"] == "2011-07-01"
    url = storage.join(storage_root, NAME)
    fs, path = storage.filesystem(url)
    storage.write_bytes(fs, path, data)
    ds2 = read_nsidc_land3(url, passes=("A",), channels=("06h",))
    np.testing.assert_array_equal(ds.tb_06h.values, ds2.tb_06h.values)


# --------------------------------------------------------------------------------------------
# errors
# --------------------------------------------------------------------------------------------
def test_missing_field_names_the_field(tmp_path):
    path = tmp_path / NAME
    write_nsidc_land3_for_tests(path, {field_name("A", "06h"): np.full(EASE_SHAPE, 250.0)})
    with pytest.raises(SmrayError, match=r"'D_TB06.9H \(Res 1\)' not found") as err:
        read_nsidc_land3(path, channels=("06h",))
    assert NAME in str(err.value) and "\n" not in str(err.value)


def test_corrupt_and_missing_files_raise(tmp_path, land3_file):
    data = land3_file.read_bytes()
    bad = tmp_path / NAME
    bad.write_bytes(data[: len(data) // 3])
    with pytest.raises(SmrayError, match=NAME) as err:
        read_nsidc_land3(bad)
    assert "\n" not in str(err.value)
    bad.write_bytes(b"this is not hdf" * 100)
    with pytest.raises(SmrayError, match="not a readable HDF4"):
        read_nsidc_land3(bad)
    with pytest.raises(SmrayError, match="file not found"):
        read_nsidc_land3(tmp_path / "absent.hdf")
    with pytest.raises(SmrayError, match="channel"):
        field_name("A", "07h")


def test_missing_pyhdf_gives_install_hint(monkeypatch, land3_file):
    monkeypatch.setitem(sys.modules, "pyhdf", None)
    with pytest.raises(ImportError, match=r"pip install smray\[hdf4\]"):
        read_nsidc_land3(land3_file)
