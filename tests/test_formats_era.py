"""ERA-Interim / ERA5 swvl1: the grib_to_netcdf writer and the GRIB/netCDF reader, on the real files."""

from __future__ import annotations

import smray  # noqa: F401  -- first: it loads PROJ before ecCodes (smray/__init__.py), or pyproj aborts later

import eccodes
import netCDF4
import numpy as np
import pytest

from smray.errors import SmrayError
from smray.formats.era import ERA_TIME_UNITS, pack_int16, read_era, read_era_native, write_era_netcdf
from smray.grid import Grid
from smray.storage import filesystem, join, write_bytes

GRB_5DEG = "era_interim/example_downloaded_raw.grb"
GRB_N128 = "era_interim/ERA-Interim_OPER_0001_AN_20000101_0000.grb"
NC_ERA5 = "era5/example_downloaded_raw.nc"


# ---------------------------------------------------------------------------------------------
# independent references (eccodes / netCDF4 directly, no smray code)
# ---------------------------------------------------------------------------------------------
def grib_fields(path) -> dict[str, list[tuple[int, np.ndarray]]]:
    """shortName → [(dataTime, values (numberOfValues,))] straight from eccodes."""
    out: dict[str, list[tuple[int, np.ndarray]]] = {}
    with open(path, "rb") as fh:
        while (h := eccodes.codes_grib_new_from_file(fh)) is not None:
            try:
                out.setdefault(eccodes.codes_get(h, "shortName"), []).append(
                    (eccodes.codes_get(h, "dataTime"), eccodes.codes_get_values(h)))
            finally:
                eccodes.codes_release(h)
    return out


def nc_layout(ds: netCDF4.Dataset) -> list:
    """An ``ncdump -h``-like description: format, dims, global attr names, per variable name, dtype,
    dims and (attribute name, attribute type) in order."""
    return [ds.file_format,
            [(d.name, d.isunlimited()) for d in ds.dimensions.values()],
            list(ds.ncattrs()),
            [(v.name, str(v.dtype), v.dimensions,
              [(a, type(v.getncattr(a)).__name__) for a in v.ncattrs()]) for v in ds.variables.values()]]


def bilinear_by_hand(field: np.ndarray, lat: np.ndarray, lon: np.ndarray, la: float, lo: float) -> float:
    """Plain bilinear interpolation at one point on an ERA 90→−90, 0→360−Δ grid (all corners valid)."""
    step_lat, step_lon = lat[0] - lat[1], lon[1] - lon[0]
    lo = lo % 360.0
    i = int((lat[0] - la) // step_lat)
    j = int(lo // step_lon)
    fy = (lat[i] - la) / step_lat
    fx = (lo - lon[j]) / step_lon
    j1 = (j + 1) % lon.size
    return float((1 - fy) * ((1 - fx) * field[i, j] + fx * field[i, j1])
                 + fy * ((1 - fx) * field[i + 1, j] + fx * field[i + 1, j1]))


# ---------------------------------------------------------------------------------------------
# writer
# ---------------------------------------------------------------------------------------------
def test_writer_reproduces_the_real_grib_to_netcdf_file_byte_for_byte(real_data):
    real = real_data / NC_ERA5
    with netCDF4.Dataset(real) as ds:
        swvl1 = ds["swvl1"][:].filled(np.nan)
        lsm = ds["lsm"][:].filled(np.nan)
        lat, lon, history = ds["latitude"][:], ds["longitude"][:], ds.history
        times = netCDF4.num2date(ds["time"][:], ds["time"].units, only_use_cftime_datetimes=False,
                                 only_use_python_datetimes=True)
    times = np.array(times, dtype="datetime64[h]")
    out = write_era_netcdf(swvl1, times, lat, lon, lsm=lsm, history=history)
    assert out == real.read_bytes()


def test_writer_layout_matches_real_file(real_data):
    rng = np.random.default_rng(0)
    lat = np.linspace(90, -90, 241)
    lon = np.arange(480) * 0.75
    times = np.array(["2003-07-01T00", "2003-07-01T06"], dtype="datetime64[h]")
    field = rng.uniform(0.02, 0.45, (2, 241, 480))
    out = write_era_netcdf(field, times, lat, lon, lsm=(rng.random((241, 480)) > 0.6).astype(float))
    assert out[:4] == b"CDF\x02"
    with netCDF4.Dataset(real_data / NC_ERA5) as real, netCDF4.Dataset("mine.nc", memory=out) as mine:
        assert nc_layout(mine) == nc_layout(real)
        assert mine["time"].units == real["time"].units == ERA_TIME_UNITS
        assert mine["swvl1"].units == "m**3 m**-3"
        assert mine.history.startswith("2003-07-01 06:00:00 GMT by grib_to_netcdf-2.6.0: ")
        mine.set_auto_maskandscale(False)
        packed = mine["swvl1"][:]
        assert packed.min() == -32766 and packed.max() == 32767  # full int16 range like ECMWF
        np.testing.assert_array_equal(mine["time"][:], [907224, 907230])  # 37801 days since 1900 ×24
        decoded = netCDF4.num2date(mine["time"][:], mine["time"].units, mine["time"].calendar,
                                   only_use_cftime_datetimes=False, only_use_python_datetimes=True)
        np.testing.assert_array_equal(np.array(decoded, dtype="datetime64[h]"), times)


def test_pack_int16_conventions():
    packed, scale, offset = pack_int16(np.array([0.0, 0.5, 1.0, np.nan]))
    assert scale == pytest.approx(1 / 65533) and offset == pytest.approx(0.5 - 0.5 / 65533)
    np.testing.assert_array_equal(packed, [-32766, 0, 32767, -32767])
    packed, scale, offset = pack_int16(np.full(3, 0.3))
    assert (scale, offset) == (1.0, 0.3) and not packed.any()


def test_write_read_roundtrip_within_half_a_packing_step():
    rng = np.random.default_rng(42)
    lat = np.linspace(90, -90, 37)
    lon = np.arange(72) * 5.0
    times = np.arange("2011-07-01T00", "2011-07-03T00", 6, dtype="datetime64[h]")  # 8 analyses, 2 days
    field = rng.uniform(0.0, 0.47, (8, 37, 72))
    lsm = (rng.random((37, 72)) > 0.5).astype(float)
    li, lj = np.argwhere(lsm >= 0.5)[10]
    field[3, li, lj] = np.nan  # a missing analysis at a land point
    data = write_era_netcdf(field, times, lat, lon, lsm=lsm)
    _, scale, _ = pack_int16(field)

    inst = read_era_native(data, daily=False)
    assert inst.attrs["source"] == "<bytes>" and inst.attrs["source_format"].startswith("netCDF3")
    np.testing.assert_array_equal(inst["time"].values, times.astype("datetime64[ns]"))
    got = inst["swvl1"].values
    expect = np.where(lsm[None] >= 0.5, field, np.nan)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(expect))
    assert np.nanmax(np.abs(got - expect)) <= scale / 2 * (1 + 1e-9)

    daily = read_era_native(data)
    np.testing.assert_array_equal(daily["n_analyses"].values, [4, 4])
    np.testing.assert_array_equal(daily["time"].values,
                                  np.array(["2011-07-01", "2011-07-02"], dtype="datetime64[ns]"))
    land = lsm >= 0.5
    np.testing.assert_allclose(daily["swvl1"].values[0][land], np.nanmean(got[:4][:, land], axis=0), atol=1e-12)
    assert np.isnan(daily["swvl1"].values[:, ~land]).all()
    assert daily["swvl1"].values[0, li, lj] == pytest.approx(np.mean(got[[0, 1, 2], li, lj]))


def test_monthly_file_with_124_analyses_becomes_31_daily_means():
    lat = np.linspace(90, -90, 19)
    lon = np.arange(36) * 10.0
    times = np.arange("2004-01-01T00", "2004-02-01T00", 6, dtype="datetime64[h]")
    day = np.arange(times.size) // 4
    field = np.broadcast_to((0.1 + 0.005 * day)[:, None, None], (times.size, 19, 36)).copy()
    field += np.tile([0.0, 0.01, 0.02, 0.03], 31)[:, None, None]
    ds = read_era(write_era_netcdf(field, times, lat, lon), grid=Grid(10.0))
    assert ds.sizes["time"] == 31 and (ds["n_analyses"].values == 4).all()
    np.testing.assert_allclose(ds["swvl1"].values[:, 5, 5], 0.1 + 0.005 * np.arange(31) + 0.015, atol=2e-6)
    assert ds["swvl1"].dtype == np.float32 and ds.attrs["ocean_masked"] == 0


# ---------------------------------------------------------------------------------------------
# real ERA-Interim GRIB, regular 5°
# ---------------------------------------------------------------------------------------------
def test_grib_regular_daily_mean_equals_eccodes_mean(real_data):
    path = real_data / GRB_5DEG
    raw = grib_fields(path)
    assert [t for t, _ in raw["swvl1"]] == [0, 600, 1200, 1800]
    mean = np.mean([v for _, v in raw["swvl1"]], axis=0).reshape(37, 72)
    land = raw["lsm"][0][1].reshape(37, 72) >= 0.5

    nat = read_era_native(path)
    assert nat.attrs["product"] == "ERA-Interim" and nat.attrs["native_grid"] == "regular_ll"
    assert int(nat["n_analyses"][0]) == 4
    got = nat["swvl1"].values[0]
    np.testing.assert_allclose(got[land], np.maximum(mean[land], 0.0), rtol=0, atol=1e-12)
    assert np.isnan(got[~land]).all()
    assert np.nanmax(got) <= 0.4722443 and np.nanmin(got) >= 0.0

    lat, lon = np.linspace(90, -90, 37), np.arange(72) * 5.0
    ds = read_era(path, grid=Grid(1.0))
    assert ds["swvl1"].shape == (1, 180, 360) and ds.attrs["product"] == "ERA-Interim"
    g = Grid(1.0)
    checked = 0
    for i in range(0, 180, 7):
        for j in range(0, 360, 11):
            la, lo = g.lat[i], g.lon[j]
            r0 = int((90 - la) // 5)
            c0 = int((lo % 360) // 5)
            corners = land[[r0, r0, r0 + 1, r0 + 1], [c0, (c0 + 1) % 72, c0, (c0 + 1) % 72]]
            value = float(ds["swvl1"].values[0, i, j])
            if corners.all():
                assert value == pytest.approx(bilinear_by_hand(mean, lat, lon, la, lo), abs=1e-6)
                checked += 1
            elif not corners.any():
                assert np.isnan(value)  # ocean all round: no bleeding of ocean ≈0 into the result
    assert checked > 50
    assert np.nanmax(ds["swvl1"].values) <= 0.4722443


def grib2_message(short_name: str, values: np.ndarray, hour: int, *, south_first: bool) -> bytes:
    """One GRIB2 message on the 5° ERA grid from eccodes' sample, rows south→north if asked."""
    h = eccodes.codes_grib_new_from_samples("regular_ll_sfc_grib2")
    try:
        eccodes.codes_set(h, "centre", "ecmf")
        eccodes.codes_set(h, "shortName", short_name)
        for key, val in [("Ni", 72), ("Nj", 37), ("iDirectionIncrementInDegrees", 5.0),
                         ("jDirectionIncrementInDegrees", 5.0), ("longitudeOfFirstGridPointInDegrees", 0.0),
                         ("longitudeOfLastGridPointInDegrees", 355.0), ("jScansPositively", int(south_first)),
                         ("latitudeOfFirstGridPointInDegrees", -90.0 if south_first else 90.0),
                         ("latitudeOfLastGridPointInDegrees", 90.0 if south_first else -90.0),
                         ("dataDate", 20000101), ("dataTime", hour * 100), ("bitsPerValue", 16)]:
            eccodes.codes_set(h, key, val)
        eccodes.codes_set_values(h, (values[::-1] if south_first else values).ravel())
        return eccodes.codes_get_message(h)
    finally:
        eccodes.codes_release(h)


def test_grib2_south_first_equals_grib1(real_data, tmp_path):
    raw = grib_fields(real_data / GRB_5DEG)
    lsm = raw["lsm"][0][1].reshape(37, 72)
    parts = [grib2_message("swvl1", v.reshape(37, 72), t // 100, south_first=True) for t, v in raw["swvl1"]]
    path = tmp_path / "south_first.grib2"
    path.write_bytes(b"".join(parts) + grib2_message("lsm", lsm, 0, south_first=True))
    grid = Grid(2.5)
    mine = read_era(path, grid=grid)
    ref = read_era(real_data / GRB_5DEG, grid=grid)
    assert mine.attrs["source_format"] == "GRIB2" and int(mine["n_analyses"][0]) == 4
    np.testing.assert_array_equal(np.isnan(mine["swvl1"].values), np.isnan(ref["swvl1"].values))
    np.testing.assert_allclose(mine["swvl1"].values, ref["swvl1"].values, atol=1e-5)  # 16-bit repacking


# ---------------------------------------------------------------------------------------------
# real ERA-Interim GRIB, reduced Gaussian N128
# ---------------------------------------------------------------------------------------------
def test_grib_reduced_gaussian_n128(real_data):
    path = real_data / GRB_N128
    nat = read_era_native(path)
    assert nat.attrs["native_grid"] == "reduced_gg" and nat["swvl1"].shape == (1, 88838)
    land_mean = float(np.nanmean(nat["swvl1"].values))
    assert 0.2 < land_mean < 0.35  # TESSEL: wilting 0.17, saturation 0.47

    grid = Grid(0.25).subset((-20.0, -35.0, 60.0, 40.0))  # Africa and Europe, land and sea
    ds = read_era(path, grid=grid)
    values = ds["swvl1"].values[0]
    assert np.nanmax(values) <= 0.4723 and np.nanmin(values) >= 0.0

    rng = np.random.default_rng(7)
    rows, cols = np.nonzero(np.isfinite(values))
    pick = rng.choice(rows.size, 60, replace=False)
    with open(path, "rb") as fh:
        h = eccodes.codes_grib_new_from_file(fh)  # swvl1 is the first message
        hl = None
        while (m := eccodes.codes_grib_new_from_file(fh)) is not None:
            if eccodes.codes_get(m, "shortName") == "lsm":
                hl = m
                break
            eccodes.codes_release(m)
        try:
            within, diffs = 0, []
            for k in pick:
                la, lo = float(grid.lat[rows[k]]), float(grid.lon[cols[k]])
                near = eccodes.codes_grib_find_nearest(h, la, lo % 360, npoints=4)
                lmask = eccodes.codes_grib_find_nearest(hl, la, lo % 360, npoints=4)
                land_vals = [n.value for n, lm in zip(near, lmask) if lm.value >= 0.5]
                assert land_vals, "a finite regridded value needs a land neighbour"
                v = values[rows[k], cols[k]]
                within += min(land_vals) - 1e-6 <= v <= max(land_vals) + 1e-6
                nearest = min(zip(near, lmask), key=lambda p: p[0].distance)
                if nearest[1].value >= 0.5:
                    diffs.append(abs(v - nearest[0].value))
        finally:
            eccodes.codes_release(h)
            eccodes.codes_release(hl)
    assert within >= 0.9 * len(pick)  # a convex combination of its land neighbours
    assert np.median(diffs) < 0.03


# ---------------------------------------------------------------------------------------------
# real ERA5 netCDF (grib_to_netcdf, int16 packed)
# ---------------------------------------------------------------------------------------------
def test_era5_netcdf_land_mean_and_clipping(real_data):
    path = real_data / NC_ERA5
    with netCDF4.Dataset(path) as ds:
        raw = ds["swvl1"][:].filled(np.nan)
        lsm = ds["lsm"][0].filled(np.nan)
    assert raw.min() < 0  # the unpacking artefact the reader must clip
    land = lsm >= 0.5
    expect = np.maximum(raw, 0).mean(axis=0)

    nat = read_era_native(path)
    got = nat["swvl1"].values[0]
    assert float(np.nanmean(got)) == pytest.approx(0.235, abs=0.001)
    np.testing.assert_allclose(got[land], expect[land], atol=1e-12)
    assert np.isnan(got[~land]).all() and np.nanmin(got) >= 0.0
    assert nat.attrs["product"] == "ERA5"
    np.testing.assert_array_equal(nat["time"].values, np.array(["2010-01-01"], dtype="datetime64[ns]"))

    ds = read_era(path)
    assert ds["swvl1"].shape == (1, 720, 1440) and ds["lsm"].shape == (720, 1440)
    assert ds["swvl1"].attrs["units"] == "m3 m-3"
    assert np.nanmin(ds["swvl1"].values) >= 0.0 and np.nanmax(ds["swvl1"].values) <= 0.7474


# ---------------------------------------------------------------------------------------------
# the 2024+ CDS netCDF4 layout
# ---------------------------------------------------------------------------------------------
def write_cds2024(path, field, times, lat, lon, lsm=None, *, expver=True) -> None:
    """netCDF4 as the new (cfgrib-based) CDS converter writes it: ``valid_time`` int64 seconds since
    1970, float64 coordinates with ``stored_direction``, scalar ``number``, per-time ``expver``
    strings, float32 data with NaN fill, compressed."""
    with netCDF4.Dataset(path, "w", format="NETCDF4") as ds:
        ds.setncatts({"GRIB_centre": "ecmf", "GRIB_centreDescription": "European Centre for Medium-Range "
                      "Weather Forecasts", "GRIB_subCentre": 0, "Conventions": "CF-1.7",
                      "institution": "European Centre for Medium-Range Weather Forecasts",
                      "history": "2024-10-01T10:00 GRIB to CDM+CF via cfgrib-0.9.14.1/ecCodes-2.36.0 "
                                 "with {\"source\": \"data.grib\", \"filter_by_keys\": {}, \"encode_cf\": "
                                 "[\"parameter\", \"time\", \"geography\", \"vertical\"]}"})
        ds.createDimension("valid_time", len(times))
        ds.createDimension("latitude", lat.size)
        ds.createDimension("longitude", lon.size)
        number = ds.createVariable("number", "i8")
        number.setncatts({"long_name": "ensemble member numerical id", "units": "1",
                          "standard_name": "realization"})
        number.assignValue(0)
        vt = ds.createVariable("valid_time", "i8", ("valid_time",))
        vt.setncatts({"long_name": "time", "standard_name": "time", "units": "seconds since 1970-01-01",
                      "calendar": "proleptic_gregorian"})
        vt[:] = (times.astype("datetime64[s]") - np.datetime64("1970-01-01T00:00:00")).astype(np.int64)
        la = ds.createVariable("latitude", "f8", ("latitude",))
        la.setncatts({"units": "degrees_north", "standard_name": "latitude", "long_name": "latitude",
                      "stored_direction": "decreasing" if lat[0] > lat[-1] else "increasing"})
        la[:] = lat
        lo = ds.createVariable("longitude", "f8", ("longitude",))
        lo.setncatts({"units": "degrees_east", "standard_name": "longitude", "long_name": "longitude"})
        lo[:] = lon
        if expver:
            ev = ds.createVariable("expver", str, ("valid_time",))
            ev.setncatts({"long_name": "model experiment version"})
            for k in range(len(times)):
                ev[k] = "0001"
        names = [("swvl1", field, "m**3 m**-3", "Volumetric soil water layer 1")]
        if lsm is not None:
            names.append(("lsm", np.broadcast_to(lsm, field.shape), "(0 - 1)", "Land-sea mask"))
        for name, data, units, long_name in names:
            v = ds.createVariable(name, "f4", ("valid_time", "latitude", "longitude"), zlib=True,
                                  fill_value=np.float32(np.nan))
            v.setncatts({"GRIB_paramId": 39, "GRIB_gridType": "regular_ll", "units": units,
                         "long_name": long_name, "coordinates": "number valid_time latitude longitude expver"})
            v[:] = data


@pytest.mark.parametrize("orientation", ["north_first_0_360", "south_first_pm180"])
def test_cds2024_layout(tmp_path, orientation):
    rng = np.random.default_rng(5)
    lat = np.linspace(90, -90, 37)
    lon = np.arange(72) * 5.0
    times = np.arange("2020-06-01T00", "2020-06-02T00", 6, dtype="datetime64[h]")
    field = rng.uniform(0.05, 0.6, (4, 37, 72)).astype(np.float32)
    lsm = (rng.random((37, 72)) > 0.5).astype(np.float32)
    reference = read_era(write_era_netcdf(field, times, lat, lon, lsm=lsm), grid=Grid(2.0))
    if orientation == "south_first_pm180":
        order = np.argsort(np.where(lon >= 180, lon - 360, lon))
        lat, field, lsm = lat[::-1], field[:, ::-1], lsm[::-1]
        lon, field, lsm = np.where(lon >= 180, lon - 360, lon)[order], field[..., order], lsm[:, order]
    path = tmp_path / "cds2024.nc"
    write_cds2024(path, field, times, lat, lon, lsm)
    ds = read_era(str(path), grid=Grid(2.0))
    assert ds.attrs["product"] == "ERA5" and "CDS" in ds.attrs["source_format"]
    assert int(ds["n_analyses"][0]) == 4
    np.testing.assert_array_equal(np.isnan(ds["swvl1"].values), np.isnan(reference["swvl1"].values))
    # the reference went through int16 packing: equal within a packing step
    np.testing.assert_allclose(ds["swvl1"].values, reference["swvl1"].values, atol=2e-5, equal_nan=True)


def test_cds2024_single_time_without_expver(tmp_path):
    lat = np.linspace(90, -90, 19)
    lon = np.arange(36) * 10.0
    times = np.array(["2021-01-05T12"], dtype="datetime64[h]")
    field = np.full((1, 19, 36), 0.3, dtype=np.float32)
    field[0, :, 3] = np.nan
    path = tmp_path / "one.nc"
    write_cds2024(path, field, times, lat, lon, expver=False)
    ds = read_era_native(path.read_bytes(), daily=False)
    assert ds.attrs["source_format"].startswith("netCDF4")
    np.testing.assert_array_equal(ds["time"].values, times.astype("datetime64[ns]"))
    assert np.isnan(ds["swvl1"].values[0, :, 3]).all() and np.nanmax(ds["swvl1"].values) == pytest.approx(0.3)


# ---------------------------------------------------------------------------------------------
# bad input
# ---------------------------------------------------------------------------------------------
def assert_one_line_naming(err: pytest.ExceptionInfo, name: str) -> None:
    msg = str(err.value)
    assert "\n" not in msg and name in msg, msg


@pytest.mark.parametrize("rel", [GRB_5DEG, GRB_N128, NC_ERA5])
@pytest.mark.parametrize("keep", [0.999, 0.6, 0.02])  # 0.5 would cut the 5° file between messages
def test_truncated_real_files_raise(real_data, tmp_path, rel, keep):
    data = (real_data / rel).read_bytes()
    bad = tmp_path / f"truncated_{rel.split('/')[-1]}"
    bad.write_bytes(data[:int(len(data) * keep)])
    with pytest.raises(SmrayError) as err:
        read_era(bad, grid=Grid(5.0))
    assert_one_line_naming(err, bad.name)


def test_corrupt_files_raise(real_data, tmp_path):
    grib = bytearray((real_data / GRB_5DEG).read_bytes())
    grib[60:400] = b"\xff" * 340  # overwrite section headers of the first message
    bad = tmp_path / "corrupt.grb"
    bad.write_bytes(bytes(grib))
    with pytest.raises(SmrayError) as err:
        read_era(bad, grid=Grid(5.0))
    assert_one_line_naming(err, "corrupt.grb")

    junk = tmp_path / "junk.grb"
    junk.write_bytes((real_data / GRB_5DEG).read_bytes() + b"GRIB garbage after the last message")
    with pytest.raises(SmrayError) as err:
        read_era(junk, grid=Grid(5.0))
    assert_one_line_naming(err, "junk.grb")

    with pytest.raises(SmrayError, match="not a GRIB or netCDF"):
        read_era(b"hello world, not a file format")
    with pytest.raises(SmrayError, match="not found"):
        read_era(tmp_path / "missing.nc")


def test_missing_variable_and_unexpected_grid(real_data, tmp_path):
    with pytest.raises(SmrayError) as err:
        read_era(real_data / GRB_5DEG, variable="swvl3")
    assert "no swvl3" in str(err.value) and "lsm, swvl1" in str(err.value)

    lat, lon = np.linspace(90, -90, 19), np.arange(36) * 10.0
    times = np.array(["2021-01-05T12"], dtype="datetime64[h]")
    only_lsm = tmp_path / "lsm_only.nc"
    with netCDF4.Dataset(only_lsm, "w") as ds:
        ds.createDimension("time", 1)
        ds.createDimension("latitude", 19)
        ds.createDimension("longitude", 36)
        ds.createVariable("lsm", "f4", ("time", "latitude", "longitude"))[:] = 1.0
    with pytest.raises(SmrayError) as err:
        read_era(only_lsm)
    assert_one_line_naming(err, "lsm_only.nc")
    assert "no swvl1" in str(err.value)

    scrambled = lat.copy()
    scrambled[[3, 4]] = scrambled[[4, 3]]
    data = write_era_netcdf(np.full((1, 19, 36), 0.2), times, scrambled, lon)
    with pytest.raises(SmrayError, match="unexpected grid"):
        read_era(data)


# ---------------------------------------------------------------------------------------------
# storage backends
# ---------------------------------------------------------------------------------------------
def test_read_from_every_storage_backend(real_data, storage_root):
    grid = Grid(5.0)
    for rel in (GRB_5DEG, NC_ERA5):
        url = join(storage_root, "era", rel.split("/")[-1])
        fs, path = filesystem(url)
        write_bytes(fs, path, (real_data / rel).read_bytes())
        remote = read_era(url, grid=grid)
        local = read_era(real_data / rel, grid=grid)
        assert remote.attrs["source"] == url
        np.testing.assert_array_equal(remote["swvl1"].values, local["swvl1"].values)
        np.testing.assert_array_equal(remote["n_analyses"].values, [4])
    with pytest.raises(SmrayError, match="not found"):
        read_era(join(storage_root, "era", "absent.grb"))


def test_bytes_source_equals_path_source(real_data):
    data = (real_data / GRB_N128).read_bytes()
    grid = Grid(2.0)
    a = read_era(data, grid=grid)
    b = read_era(bytearray(data), grid=grid)
    c = read_era(real_data / GRB_N128, grid=grid)
    np.testing.assert_array_equal(a["swvl1"].values, c["swvl1"].values)
    np.testing.assert_array_equal(b["lsm"].values, c["lsm"].values)


def test_truncated_cds2024_netcdf4_raises(tmp_path):
    lat, lon = np.linspace(90, -90, 37), np.arange(72) * 5.0
    times = np.arange("2020-06-01T00", "2020-06-02T00", 6, dtype="datetime64[h]")
    path = tmp_path / "cds.nc"
    write_cds2024(path, np.full((4, 37, 72), 0.25, np.float32), times, lat, lon)
    data = path.read_bytes()
    assert data[:4] == b"\x89HDF"
    cut = tmp_path / "cds_truncated.nc"
    cut.write_bytes(data[:int(len(data) * 0.9)])
    with pytest.raises(SmrayError) as err:
        read_era(cut)
    assert_one_line_naming(err, "cds_truncated.nc")


def test_static_2d_lsm_and_instantaneous_grib(real_data, tmp_path):
    import xarray as xr

    lat, lon = np.linspace(90, -90, 19), np.arange(36) * 10.0
    times = np.array(["2021-01-05T00", "2021-01-05T12"], dtype="datetime64[ns]")
    lsm = np.zeros((19, 36))
    lsm[:, :18] = 1.0
    ds = xr.Dataset({"swvl1": (("time", "latitude", "longitude"), np.full((2, 19, 36), 0.2)),
                     "lsm": (("latitude", "longitude"), lsm)},
                    coords={"time": times, "latitude": lat, "longitude": lon})
    path = tmp_path / "static_lsm.nc"
    ds.to_netcdf(path, engine="h5netcdf")
    nat = read_era_native(path)
    assert np.isnan(nat["swvl1"].values[0, :, 18:]).all() and (nat["swvl1"].values[0, :, :18] == 0.2).all()

    inst = read_era_native(real_data / GRB_5DEG, daily=False)
    assert inst.sizes["time"] == 4 and (inst["n_analyses"].values == 1).all()
    np.testing.assert_array_equal(inst["time"].values.astype("datetime64[h]"),
                                  np.arange("2000-01-01T00", "2000-01-02T00", 6, dtype="datetime64[h]"))


# ---------------------------------------------------------------------------------------------
# area retrievals (MARS/CDS area=N/W/S/E): a smaller regular grid, regional in longitude
# ---------------------------------------------------------------------------------------------
AREA_LAT = np.arange(63.0, 29.0, -3.0)  # 63 → 30, north first
AREA_LON = np.arange(-15.0, 34.0, 3.0)  # −15 → 33


def write_area_file(path, *, lon=AREA_LON) -> np.ndarray:
    """swvl1 linear in (lat, lon) over the area, two analyses of one day, all land."""
    field = 0.1 + 0.002 * (AREA_LAT[:, None] - 30) + 0.001 * (lon[None, :] + 15)
    times = np.array(["2011-07-01T00", "2011-07-01T12"], dtype="datetime64[s]")
    path.write_bytes(write_era_netcdf(np.stack([field, field]), times, AREA_LAT, lon,
                                      lsm=np.ones(field.shape)))
    return field


def test_area_retrieval_is_regional_and_nan_outside(tmp_path):
    from smray.regrid import lon_is_periodic

    path = tmp_path / "ERA5_area_20110701.nc"
    write_area_file(path)
    assert not lon_is_periodic(AREA_LON) and lon_is_periodic(np.arange(0.0, 360.0, 3.0))
    nat = read_era_native(path)
    np.testing.assert_array_equal(nat["longitude"].values, AREA_LON)
    # a cube bigger than the area: values inside it (bilinear, exact for a linear field), NaN outside
    g = Grid(1.0).subset((-30, 20, 60, 70))
    ds = read_era(path, grid=g)
    assert "regional" in ds.attrs["regrid_method"]
    v = ds["swvl1"].values[0]
    in_lat = (g.lat >= 30) & (g.lat <= 63)
    in_lon = (g.lon >= -15) & (g.lon <= 33)
    expect = 0.1 + 0.002 * (g.lat[:, None] - 30) + 0.001 * (g.lon[None, :] + 15)
    inside = in_lat[:, None] & in_lon[None, :]
    np.testing.assert_allclose(v[inside], expect[inside], atol=1e-5)  # packing steps
    beyond = ((g.lat < 28.5) | (g.lat > 64.5))[:, None] | ((g.lon < -16.5) | (g.lon > 34.5))[None, :]
    assert beyond.sum() > 1000 and np.isnan(v[beyond]).all()  # no wrap-around from the far side
    # onto a global 3° grid: finite on exactly the cells within half a spacing (1.5°) of the area
    whole = read_era(path, grid=Grid(3.0))
    assert np.isfinite(whole["swvl1"].values).sum() == ((np.abs(Grid(3.0).lat - 46.5) <= 18)[:, None]
                                                       & (np.abs(Grid(3.0).lon - 9) <= 25.5)[None, :]).sum()


def test_area_retrieval_outside_the_grid_raises_naming_the_file(tmp_path):
    path = tmp_path / "ERA5_area_20110701.nc"
    write_area_file(path)
    with pytest.raises(SmrayError) as err:
        read_era(path, grid=Grid(1.0).subset((100, 0, 120, 20)))
    assert_one_line_naming(err, path.name)
    assert "covers no cell of the grid" in str(err.value)
    with pytest.raises(SmrayError) as err:  # bytes: named by the caller (ingest puts the file name in)
        read_era(path.read_bytes(), grid=Grid(1.0).subset((100, 0, 120, 20)))
    assert_one_line_naming(err, "<bytes>")
