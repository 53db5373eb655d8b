"""ESA CCI SM reader on the real v04.2 PASSIVE file (2016-12-30) and orientation handling."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smray import storage
from smray.errors import SmrayError
from smray.formats.cci import orient_to_canonical, read_cci_sm, sensor_names
from smray.grid import Grid

CCI_NAME = "ESACCI-SOILMOISTURE-L3S-SSMV-PASSIVE-20161230000000-fv04.2.nc"


@pytest.fixture(scope="module")
def cci_path(real_data):
    return real_data / "esa_cci_sm_passive" / CCI_NAME


@pytest.fixture(scope="module")
def cci(cci_path):
    return read_cci_sm(str(cci_path))


def test_real_file_valid_count_and_range(cci):
    sm = cci.sm.values
    assert sm.dtype == np.float32 and sm.shape == (720, 1440)
    assert cci.sm.dims == ("lat", "lon")
    assert np.isfinite(sm).sum() == 54762  # PROVENANCE.md
    assert np.nanmin(sm) >= 0.0 and np.nanmax(sm) <= 1.0
    assert 0.15 < np.nanmean(sm) < 0.25
    assert not (sm == -9999).any()
    assert cci.sm.attrs["units"] == "m3 m-3"
    assert cci.attrs["date"] == "2016-12-30" and cci.attrs["source"] == CCI_NAME
    assert cci.time.values == np.datetime64("2016-12-30")


def test_real_file_grid_is_canonical(cci):
    g = Grid(0.25)
    np.testing.assert_array_equal(cci.lat.values, g.lat)
    np.testing.assert_array_equal(cci.lon.values, g.lon)
    assert cci.lat.values[0] == 89.875 and cci.lon.values[0] == -179.875


def test_real_file_geography(cci):
    def box(w, s, e, n):
        return cci.sm.sel(lat=slice(n, s), lon=slice(w, e)).values

    assert np.isnan(box(-160, -10, -130, 10)).all()  # central Pacific: ocean
    assert np.isnan(box(90, 60, 130, 70)).all()  # Siberia in December: frozen
    sahara = box(0, 20, 20, 30)
    assert np.isfinite(sahara).mean() > 0.5 and np.nanmean(sahara) < 0.1  # dry desert
    europe = box(0, 45, 20, 55)
    assert np.nanmean(europe) > 3 * np.nanmean(sahara)  # wet winter Europe


def test_real_file_flags_sensor_mode_t0(cci):
    valid = np.isfinite(cci.sm.values)
    sensors = set(np.unique(cci.sensor.values[valid]).tolist())
    assert sensors == {32, 64, 96}  # AMSR2, SMOS, AMSR2+SMOS
    assert {sensor_names(s) for s in sensors} == {"AMSR2", "SMOS", "AMSR2+SMOS"}
    assert set(np.unique(cci.mode.values[valid]).tolist()) <= {1, 2, 3}
    assert (cci.mode.values[~valid] == 0).mean() > 0.9  # flagged land cells keep their mode
    assert cci.flag.dtype == np.int8 and (cci.flag.values[valid] != 127).all()
    t0 = cci.t0.values[valid]
    assert not np.isnat(t0).any()
    assert t0.min() >= np.datetime64("2016-12-29T12:00") and t0.max() <= np.datetime64("2016-12-30T12:00")


def test_window(cci_path, cci):
    sub = Grid(0.25).subset((-10.0, 35.0, 30.0, 60.0))
    ds = read_cci_sm(str(cci_path), grid=sub)
    assert ds.sm.shape == sub.shape
    np.testing.assert_array_equal(ds.sm.values, cci.sm.values[sub.window])
    with pytest.raises(SmrayError, match="0.5 deg was requested"):
        read_cci_sm(str(cci_path), grid=Grid(0.5))


def test_storage_backends(cci_path, cci, storage_root):
    url = storage.join(storage_root, "cci", CCI_NAME)
    fs, path = storage.filesystem(url)
    storage.write_bytes(fs, path, cci_path.read_bytes())
    ds = read_cci_sm(url)
    np.testing.assert_array_equal(ds.sm.values, cci.sm.values)


def test_damaged_file_raises(tmp_path, cci_path):
    data = cci_path.read_bytes()
    bad = tmp_path / CCI_NAME
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(SmrayError, match=CCI_NAME) as err:
        read_cci_sm(str(bad))
    assert "\n" not in str(err.value)
    with pytest.raises(SmrayError, match="not found"):
        read_cci_sm(str(tmp_path / "absent.nc"))


# --------------------------------------------------------------------------------------------
# orientation of other layouts
# --------------------------------------------------------------------------------------------
@settings(max_examples=40, deadline=None)
@given(res=st.sampled_from([0.25, 1.0, 2.0, 5.0]), south_first=st.booleans(), lon360=st.booleans(),
       data=st.data())
def test_orient_to_canonical(res, south_first, lon360, data):
    g = Grid(res)
    i = data.draw(st.integers(0, g.nlat - 1))
    j = data.draw(st.integers(0, g.nlon - 1))
    canon = np.zeros(g.shape)
    canon[i, j] = 1.0
    lat, lon, field = g.lat, g.lon, canon
    if south_first:
        lat, field = lat[::-1], field[::-1]
    if lon360:
        lon = np.concatenate([lon[g.nlon // 2:], lon[: g.nlon // 2] + 360.0])
        field = np.concatenate([field[:, g.nlon // 2:], field[:, : g.nlon // 2]], axis=1)
        assert lon[0] == res / 2
    out, grid = orient_to_canonical(field, lat, lon)
    assert grid == g
    np.testing.assert_array_equal(out, canon)


def test_orient_rejects_non_cell_centre_grids():
    lat = np.linspace(90, -90, 721)  # ERA5 style: includes the poles
    lon = np.arange(1440) * 0.25
    with pytest.raises(SmrayError, match="not a supported cell-centre grid|not the global"):
        orient_to_canonical(np.zeros((721, 1440)), lat, lon, "era5.nc")
