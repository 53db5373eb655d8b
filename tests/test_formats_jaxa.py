"""JAXA AMSR L3 daily TB (HDF5): writer ↔ reader exactness, orientation, fills, 0.1° aggregation,
damaged files, and every storage backend."""

from __future__ import annotations

import datetime as dt
import io

import h5py
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smray import storage
from smray.errors import SmrayError
from smray.formats.jaxa_l3 import (
    DATASETS,
    aggregate_area,
    jaxa_l3_filename,
    read_jaxa_l3,
    to_canonical_columns,
    to_file_columns,
    write_jaxa_l3,
)
from smray.grid import Grid

NAME = "GW1AM2_20110701_01D_EQMA_L3SGT06LA2220220.h5"


def _raw_file(h: np.ndarray, v: np.ndarray | None = None, *, scale: float | None = 0.01) -> bytes:
    """An HDF5 file written with plain h5py in the documented file layout (no smray code)."""
    bio = io.BytesIO()
    with h5py.File(bio, "w") as f:
        for key, arr in (("tb_h", h), ("tb_v", h if v is None else v)):
            d = f.create_dataset(DATASETS[key], data=np.asarray(arr, dtype=np.uint16))
            if scale is not None:
                d.attrs["SCALE FACTOR"] = np.array([scale], dtype=np.float32)
    return bio.getvalue()


# --------------------------------------------------------------------------------------------
# names
# --------------------------------------------------------------------------------------------
def test_filename_matches_the_gportal_pattern():
    day = dt.date(2011, 7, 1)
    assert jaxa_l3_filename(day, "A", "06") == NAME
    assert jaxa_l3_filename(day, "D", "10", "H") == "GW1AM2_20110701_01D_EQMD_L3SGT10HA2220220.h5"
    assert jaxa_l3_filename(day, "a", "89") == "GW1AM2_20110701_01D_EQMA_L3SGT89LA2220220.h5"
    for bad in (("X", "06", "L"), ("A", "11", "L"), ("A", "06", "M")):
        with pytest.raises(SmrayError):
            jaxa_l3_filename(day, *bad)


# --------------------------------------------------------------------------------------------
# exact round trip
# --------------------------------------------------------------------------------------------
def test_every_dn_round_trips_exactly():
    """All 65534 valid DN values, and random K values, read back as float32(round(K*100)/100)."""
    g = Grid(0.25)
    rng = np.random.default_rng(1)
    h = rng.uniform(0.0, 655.33, g.shape)
    h.ravel()[:65534] = np.arange(65534) / 100.0  # every valid DN once
    v = rng.uniform(100.0, 330.0, g.shape)
    v[rng.random(g.shape) < 0.3] = np.nan
    ds = read_jaxa_l3(write_jaxa_l3(h, v), name=NAME)
    for var, k in (("tb_h", h), ("tb_v", v)):
        expect = (np.round(k * 100) / 100).astype(np.float32)
        got = ds[var].values
        assert got.dtype == np.float32
        np.testing.assert_array_equal(got, expect)  # NaN positions must match too
    assert ds.tb_h.dims == ("lat", "lon")
    assert ds.attrs["units"] == "K" and ds.tb_h.attrs["units"] == "K"
    assert ds.attrs["source"] == NAME
    assert (ds.attrs["pass"], ds.attrs["band"], ds.attrs["date"]) == ("A", "06", "2011-07-01")


def test_written_layout_is_the_documented_one():
    g = Grid(1.0)
    h = np.full(g.shape, 200.0)
    h[0, 0] = np.nan
    data = write_jaxa_l3(h, h + 1, attrs={"GranuleID": "G1", "PlatformShortName": "GCOM-W1",
                                          "ObservationStartDateTime": "2011-07-01T00:00:00Z", "Orbit": 7})
    with h5py.File(io.BytesIO(data), "r") as f:
        d = f["Brightness Temperature (H)"]
        assert d.dtype == np.uint16 and d.shape == (180, 360)
        assert d.compression == "gzip" and d.shuffle
        scale = np.asarray(d.attrs["SCALE FACTOR"]).ravel()
        assert scale.dtype == np.float32 and scale[0] == np.float32(0.01)
        unit = d.attrs["UNIT"]
        assert (unit.decode() if isinstance(unit, bytes) else unit) == "K"
        raw = d[()]
        # canonical [0, 0] is centred at 179.5W = 180.5E, i.e. file column 180
        assert raw[0, 180] == 65534
        assert raw[0, 0] == 20000
        assert f.attrs["GranuleID"] == b"G1" and f.attrs["Orbit"] == 7
        assert f["Brightness Temperature (V)"][1, 1] == 20100
    ds = read_jaxa_l3(data)
    assert ds.attrs["file_PlatformShortName"] == "GCOM-W1"
    assert ds.attrs["res"] == 1.0 and ds.tb_h.shape == (180, 360)


def test_writer_rejects_out_of_range_and_bad_shapes():
    g = Grid(2.0)
    ok = np.full(g.shape, 250.0)
    with pytest.raises(SmrayError, match="outside"):
        write_jaxa_l3(ok * 3, ok)
    with pytest.raises(SmrayError, match="outside"):
        write_jaxa_l3(ok - 300, ok)
    with pytest.raises(SmrayError, match="shape"):
        write_jaxa_l3(ok, ok[:, :10])
    with pytest.raises(SmrayError, match="global"):
        write_jaxa_l3(ok[:, :10], ok[:, :10])


# --------------------------------------------------------------------------------------------
# orientation
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("lat,lon", [(10.125, 20.125), (-33.875, -70.625), (89.875, -179.875),
                                     (-89.875, 179.875), (0.125, 0.125), (0.125, -0.125)])
def test_hot_cell_lands_at_its_lat_lon(lat, lon):
    g = Grid(0.25)
    h = np.full(g.shape, 250.0)
    i = int(np.argmin(np.abs(g.lat - lat)))
    j = int(np.argmin(np.abs(g.lon - lon)))
    h[i, j] = 333.33
    data = write_jaxa_l3(h, h)
    # in the file: row 0 north, column 0 centred at 0.125E, running east to 360
    with h5py.File(io.BytesIO(data), "r") as f:
        raw = f[DATASETS["tb_h"]][()]
    row, col = np.unravel_index(np.argmax(raw), raw.shape)
    assert 90 - (row + 0.5) * 0.25 == lat
    assert (col + 0.5) * 0.25 == lon % 360
    ds = read_jaxa_l3(data)
    i2, j2 = np.unravel_index(int(np.argmax(ds.tb_h.values)), ds.tb_h.shape)
    assert float(ds.lat[i2]) == lat and float(ds.lon[j2]) == lon
    assert float(ds.tb_h.sel(lat=lat, lon=lon)) == np.float32(333.33)


def test_reader_orients_a_file_written_without_smray():
    """File row 0 = 89.875N, column 0 = 0.125E; read back north first with lon -180..180."""
    raw = np.full((720, 1440), 25000, dtype=np.uint16)
    raw[319, 80] = 30000  # 10.125N, 20.125E
    raw[0, 1439] = 31000  # 89.875N, 359.875E = 0.125W
    raw[719, 720] = 32000  # 89.875S, 180.125E = 179.875W
    ds = read_jaxa_l3(_raw_file(raw))
    assert float(ds.tb_h.sel(lat=10.125, lon=20.125)) == 300.0
    assert float(ds.tb_h.sel(lat=89.875, lon=-0.125)) == 310.0
    assert float(ds.tb_h.sel(lat=-89.875, lon=-179.875)) == 320.0
    assert float(ds.lat[0]) == 89.875 and float(ds.lon[0]) == -179.875
    assert np.count_nonzero(ds.tb_h.values != 250.0) == 3


@settings(max_examples=60, deadline=None)
@given(res=st.sampled_from([0.25, 0.5, 1.0, 2.0, 5.0]), data=st.data())
def test_roll_maps_file_longitude_to_canonical_longitude(res, data):
    g = Grid(res)
    col = data.draw(st.integers(0, g.nlon - 1))
    file_row = np.zeros(g.nlon)
    file_row[col] = 1
    j = int(np.argmax(to_canonical_columns(file_row)))
    file_lon = (col + 0.5) * res
    assert g.lon[j] == pytest.approx(((file_lon + 180) % 360) - 180)
    np.testing.assert_array_equal(to_file_columns(to_canonical_columns(file_row)), file_row)


# --------------------------------------------------------------------------------------------
# fills and scale
# --------------------------------------------------------------------------------------------
def test_missing_and_fill_dn_read_as_nan():
    raw = np.full((180, 360), 27315, dtype=np.uint16)
    raw[5, 5] = 65534
    raw[6, 6] = 65535
    raw[7, 7] = 65533  # largest valid DN
    ds = read_jaxa_l3(_raw_file(raw))
    tb = to_file_columns(ds.tb_h.values)
    assert np.isnan(tb[5, 5]) and np.isnan(tb[6, 6])
    assert tb[7, 7] == np.float32(655.33)
    assert np.isnan(tb).sum() == 2
    assert np.nanmin(tb) == np.float32(273.15)


def test_scale_attribute_is_used_and_defaults_to_0_01():
    raw = np.full((180, 360), 1000, dtype=np.uint16)
    assert float(read_jaxa_l3(_raw_file(raw, scale=None)).tb_h[0, 0]) == 10.0
    assert float(read_jaxa_l3(_raw_file(raw, scale=0.02)).tb_h[0, 0]) == 20.0
    # a float64 ScaleRatio as nansat reports it (0.0099999998) still decodes to DN / 100 exactly
    dn = np.arange(180 * 360, dtype=np.uint16).reshape(180, 360)
    bio = io.BytesIO()
    with h5py.File(bio, "w") as f:
        for key in DATASETS.values():
            f.create_dataset(key, data=dn).attrs["SCALE FACTOR"] = np.float64(0.0099999998)
    tb = to_file_columns(read_jaxa_l3(bio.getvalue()).tb_h.values)
    np.testing.assert_array_equal(tb, (dn / 100).astype(np.float32))


# --------------------------------------------------------------------------------------------
# 0.1 deg files → 0.25 deg, area weighted
# --------------------------------------------------------------------------------------------
def _brute_force(fine: np.ndarray, i: int, j: int) -> float:
    """Mean of the 0.1 cells under 0.25 cell (i, j), each weighted by its overlap area."""
    num = den = 0.0
    for r in range(fine.shape[0]):
        wr = max(0.0, min((i + 1) * 2.5, r + 1) - max(i * 2.5, r))
        if wr == 0:
            continue
        for c in range(fine.shape[1]):
            wc = max(0.0, min((j + 1) * 2.5, c + 1) - max(j * 2.5, c))
            if wc and np.isfinite(fine[r, c]):
                num += wr * wc * fine[r, c]
                den += wr * wc
    return num / den if den >= 0.5 * 6.25 else np.nan


def test_aggregate_area_matches_brute_force_with_gaps():
    rng = np.random.default_rng(3)
    fine = rng.uniform(200, 300, (10, 20))
    fine[rng.random(fine.shape) < 0.35] = np.nan
    fine[0:3, 0:3] = np.nan  # cell (0, 0) fully missing
    out = aggregate_area(fine, (4, 8))
    want = np.array([[_brute_force(fine, i, j) for j in range(8)] for i in range(4)])
    np.testing.assert_allclose(out, want, rtol=1e-12, equal_nan=True)
    assert np.isnan(out[0, 0])


def test_point_one_degree_file_is_aggregated_to_quarter_degree():
    fine = Grid(0.1)
    # linear in canonical lat and lon: an area-weighted mean gives the value at the coarse centre
    lat2, lon2 = np.meshgrid(fine.lat, fine.lon, indexing="ij")
    tb = 250.0 + 0.5 * lat2 + 0.1 * lon2
    tb[:, :3] = np.nan  # 0.3 deg of missing columns at 180W: 0.25 cell 0 empty, cell 1 only 0.2/0.25 seen
    tb[1000:1003, 2000:2002] = np.nan
    name = jaxa_l3_filename(dt.date(2011, 7, 2), "D", "10", "H")
    ds = read_jaxa_l3(write_jaxa_l3(tb, tb), name=name)
    g = Grid(0.25)
    assert ds.tb_h.shape == g.shape and ds.attrs["native_res"] == pytest.approx(0.1)
    assert ds.attrs["res"] == 0.25 and ds.attrs["pass"] == "D" and ds.attrs["band"] == "10"
    np.testing.assert_array_equal(ds.lat.values, g.lat)
    np.testing.assert_array_equal(ds.lon.values, g.lon)
    lat2c, lon2c = np.meshgrid(g.lat, g.lon, indexing="ij")
    want = 250.0 + 0.5 * lat2c + 0.1 * lon2c
    got = ds.tb_h.values
    assert np.isnan(got[:, 0]).all()
    # column 1 spans 0.1 columns 2.5..5 and column 2 is half missing: 80 % observed, kept
    assert np.isfinite(got[:, 1]).all()
    # the 3x2 hole: 0.25 cell (400, 800) spans 0.1 rows 1000..1002.5, cols 2000..2002.5 → 20 % seen
    assert np.isnan(got[400, 800])
    assert np.isfinite(got[401, 800]) and np.isfinite(got[400, 801])
    assert np.isnan(got).sum() == g.nlat + 1
    untouched = np.ones(g.shape, bool)
    untouched[:, :2] = False
    untouched[400:402, 800:802] = False
    # quantisation is 0.01 K; the linear field is reproduced to that
    np.testing.assert_allclose(got[untouched], want[untouched], atol=0.006)
    # a partly observed cell is the mean of what was seen (within the field's range over the cell)
    assert abs(got[401, 800] - want[401, 800]) < 0.5 * 0.25


# --------------------------------------------------------------------------------------------
# windows and unusual grids
# --------------------------------------------------------------------------------------------
def test_grid_window_selects_region():
    g = Grid(0.25)
    rng = np.random.default_rng(5)
    h = rng.uniform(150, 300, g.shape)
    data = write_jaxa_l3(h, h)
    sub = g.subset((-10.0, 30.0, 20.0, 50.0))
    ds = read_jaxa_l3(data, grid=sub)
    assert ds.tb_h.shape == sub.shape
    np.testing.assert_array_equal(ds.lat.values, sub.lat)
    np.testing.assert_array_equal(ds.lon.values, sub.lon)
    np.testing.assert_array_equal(ds.tb_h.values, (np.round(h[sub.window] * 100) / 100).astype(np.float32))
    with pytest.raises(SmrayError, match="1 deg was requested"):
        read_jaxa_l3(data, grid=Grid(1.0))


def test_coarse_twin_grid():
    g = Grid(0.5)
    h = np.full(g.shape, 260.0)
    ds = read_jaxa_l3(write_jaxa_l3(h, h))
    assert ds.tb_h.shape == (360, 720) and ds.attrs["res"] == 0.5


# --------------------------------------------------------------------------------------------
# damaged files
# --------------------------------------------------------------------------------------------
def _assert_one_line(err: pytest.ExceptionInfo, name: str) -> None:
    msg = str(err.value)
    assert "\n" not in msg and name in msg


@pytest.fixture(scope="module")
def good_file() -> bytes:
    g = Grid(0.25)
    rng = np.random.default_rng(7)
    h = rng.uniform(150, 300, g.shape)
    return write_jaxa_l3(h, h + 5)


@pytest.mark.parametrize("keep", [0.9, 0.5, 0.1, 0.001])
def test_truncated_file_raises(tmp_path, good_file, keep):
    path = tmp_path / NAME
    path.write_bytes(good_file[: int(len(good_file) * keep)])
    with pytest.raises(SmrayError, match="corrupt or truncated|not an HDF5") as err:
        read_jaxa_l3(str(path))
    _assert_one_line(err, NAME)


@pytest.mark.parametrize("where", [0.3, 0.5, 0.8])
def test_flipped_bytes_raise(tmp_path, good_file, where):
    data = bytearray(good_file)
    at = int(len(data) * where)
    for k in range(at, at + 64):
        data[k] ^= 0xFF
    path = tmp_path / NAME
    path.write_bytes(bytes(data))
    with pytest.raises(SmrayError, match="corrupt or truncated") as err:
        read_jaxa_l3(str(path))
    _assert_one_line(err, NAME)


def test_damaged_superblock_and_non_hdf5_raise(tmp_path, good_file):
    data = bytearray(good_file)
    data[0:8] = b"\x00" * 8
    with pytest.raises(SmrayError, match="not an HDF5") as err:
        read_jaxa_l3(bytes(data), name=NAME)
    _assert_one_line(err, NAME)
    data = bytearray(good_file)
    data[8:40] = bytes(32)  # superblock fields after the signature
    with pytest.raises(SmrayError, match="corrupt or truncated"):
        read_jaxa_l3(bytes(data), name=NAME)
    with pytest.raises(SmrayError, match="file not found"):
        read_jaxa_l3(str(tmp_path / "nope.h5"))


def test_missing_dataset_and_wrong_shape_raise():
    bio = io.BytesIO()
    with h5py.File(bio, "w") as f:
        f.create_dataset(DATASETS["tb_h"], data=np.zeros((180, 360), np.uint16))
    with pytest.raises(SmrayError, match=r"'Brightness Temperature \(V\)' not found") as err:
        read_jaxa_l3(bio.getvalue(), name=NAME)
    _assert_one_line(err, NAME)
    with pytest.raises(SmrayError, match="not a global"):
        read_jaxa_l3(_raw_file(np.zeros((100, 150), np.uint16)), name=NAME)
    with pytest.raises(SmrayError, match="not a supported grid"):
        read_jaxa_l3(_raw_file(np.zeros((7, 14), np.uint16)), name=NAME)


# --------------------------------------------------------------------------------------------
# storage backends
# --------------------------------------------------------------------------------------------
def test_read_from_every_storage_backend(storage_root):
    g = Grid(1.0)
    h = np.linspace(150, 300, g.nlat * g.nlon).reshape(g.shape)
    url = storage.join(storage_root, "L3", NAME)
    fs, path = storage.filesystem(url)
    storage.write_bytes(fs, path, write_jaxa_l3(h, h))
    ds = read_jaxa_l3(url)
    assert ds.attrs["source"] == NAME
    np.testing.assert_array_equal(ds.tb_h.values, (np.round(h * 100) / 100).astype(np.float32))
    with pytest.raises(SmrayError, match="not found"):
        read_jaxa_l3(storage.join(storage_root, "L3", "missing.h5"))
