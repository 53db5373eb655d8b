"""Product detection from real names and headers, and ``inspect_url`` on every product."""

from __future__ import annotations

import datetime as dt
import json

import netCDF4
import numpy as np
import pytest

from smray import storage
from smray.errors import SmrayError
from smray.formats import detect
from smray.formats.detect import detect_product, parse_date, parse_pass
from smray.formats.jaxa_l3 import jaxa_l3_filename, write_jaxa_l3
from smray.grid import Grid
from smray.inspect import format_inspect, inspect_url

CCI = "esa_cci_sm_passive/ESACCI-SOILMOISTURE-L3S-SSMV-PASSIVE-20161230000000-fv04.2.nc"
STM = ("ismn/header_values/SCAN/AAMU-jtg/"
       "SCAN_SCAN_AAMU-jtg_sm_0.050800_0.050800_Hydraprobe-Analog-(2.5-Volt)_20070101_20131231.stm")


def _json(info: dict) -> dict:
    return json.loads(json.dumps(info, allow_nan=False))


# --------------------------------------------------------------------------------------------
# detection
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name,product,day,pass_", [
    ("GW1AM2_20110701_01D_EQMA_L3SGT06LA2220220.h5", "jaxa_l3_tb", dt.date(2011, 7, 1), "A"),
    ("s3://b/x/GW1AM2_20110702_01D_EQMD_L3SGT10HA2220220.h5", "jaxa_l3_tb", dt.date(2011, 7, 2), "D"),
    ("AMSR_E_L3_DailyLand_V06_20110701.hdf", "nsidc_ae_land3", dt.date(2011, 7, 1), None),
    ("AMSR_E_L3_DailyLand_B04_20050203.hdf", "nsidc_ae_land3", dt.date(2005, 2, 3), None),
    ("LPRM-AMSR_E_L3_A_SOILM3_V002_20110701.nc", "lprm_l3", dt.date(2011, 7, 1), "A"),
    ("/data/LPRM-AMSR_E_L3_D_SOILM3_V002_20100115.nc", "lprm_l3", dt.date(2010, 1, 15), "D"),
    ("ESACCI-SOILMOISTURE-L3S-SSMV-PASSIVE-20161230000000-fv04.2.nc", "esa_cci_sm", dt.date(2016, 12, 30), None),
    ("ESACCI-SOILMOISTURE-L3S-SSMV-COMBINED-20110701000000-fv06.1.nc", "esa_cci_sm", dt.date(2011, 7, 1), None),
    ("ERA-Interim_OPER_0001_AN_20000101_0000.grb", "era_grib", dt.date(2000, 1, 1), None),
    ("example_downloaded_raw.grb", "era_grib", None, None),
    ("era5_swvl1_2011.grib2", "era_grib", None, None),
    ("x.grib", "era_grib", None, None),
    ("x.grib1", "era_grib", None, None),
    ("SCAN_SCAN_AAMU-jtg_sm_0.050800_0.050800_Hydraprobe-Analog-(2.5-Volt)_20070101_20131231.stm",
     "ismn_stm", None, None),
    ("smray_twin_truth_20110701.nc", "smray_twin_truth", dt.date(2011, 7, 1), None),
    ("AMSR_E_L2A_BrightnessTemperatures_V12_200207010054_A.hdf", "nsidc_ae_l2a", dt.date(2002, 7, 1), "A"),
    ("ID2r1-AMSRE-D.252011182D.v03.06V", "nsidc_0302", dt.date(2011, 7, 1), "D"),
    ("README.txt", "unknown", None, None),
])
def test_names(name, product, day, pass_):
    assert detect_product(name) == product
    assert parse_date(name) == day
    assert parse_pass(name) == pass_


def test_contents_decide_for_ambiguous_names(real_data):
    era5 = (real_data / "era5" / "example_downloaded_raw.nc").read_bytes()[: detect.HEAD_BYTES]
    assert detect_product("download.nc", era5) == "era_netcdf"
    assert detect_product("download.nc") == "unknown"
    grib = (real_data / "era_interim" / "example_downloaded_raw.grb").read_bytes()[:64]
    assert detect_product("download.bin", grib) == "era_grib"
    cci = (real_data / CCI).read_bytes()[: detect.HEAD_BYTES]
    assert detect.container(cci) == "hdf5"
    assert detect.container(era5) == "netcdf3"
    mask = (real_data / "era5" / "landmask_0.25_0.25.nc").read_bytes()[: detect.HEAD_BYTES]
    assert detect_product("landmask_0.25_0.25.nc", mask) == "unknown"  # no swvl1 in it
    assert detect_product("truth.nc", b"CDF\x01" + b"\0" * 20 + b"smray_twin_truth") == "smray_twin_truth"
    jaxa = write_jaxa_l3(np.full((90, 180), 250.0), np.full((90, 180), 250.0))
    assert detect_product("renamed.h5", jaxa[: detect.HEAD_BYTES]) == "jaxa_l3_tb"


def test_patterns_are_configurable(monkeypatch):
    monkeypatch.setitem(detect.PRODUCT_PATTERNS, "jaxa_l3_tb",
                        r"^(?P<sat>GW1AM2|AMSRE)_(?P<date>\d{8})_01D_EQM(?P<pass_>[AD])_.*\.h5$")
    assert detect_product("AMSRE_20080101_01D_EQMD_L3SGT06LA0000000.h5") == "jaxa_l3_tb"
    assert parse_pass("AMSRE_20080101_01D_EQMD_L3SGT06LA0000000.h5") == "D"
    assert parse_date("AMSRE_20080101_01D_EQMD_L3SGT06LA0000000.h5") == dt.date(2008, 1, 1)


# --------------------------------------------------------------------------------------------
# inspect: JAXA, NSIDC, CCI, generic
# --------------------------------------------------------------------------------------------
def _jaxa_file() -> tuple[bytes, np.ndarray]:
    g = Grid(0.5)
    rng = np.random.default_rng(0)
    tb = rng.uniform(150.0, 300.0, g.shape)
    tb[: g.nlat // 4] = np.nan
    return write_jaxa_l3(tb, tb + 10, attrs={"ObservationStartDateTime": "2011-07-01T00:00:00Z"}), tb


def test_inspect_jaxa_on_every_backend(storage_root):
    data, tb = _jaxa_file()
    name = jaxa_l3_filename(dt.date(2011, 7, 1), "A", "06")
    url = storage.join(storage_root, name)
    fs, path = storage.filesystem(url)
    storage.write_bytes(fs, path, data)
    info = _json(inspect_url(url))
    assert info["product"] == "jaxa_l3_tb" and info["name"] == name and info["size_bytes"] == len(data)
    assert info["date"] == "2011-07-01" and info["pass"] == "A" and info["band"] == "06"
    g = info["grid"]
    assert g["shape"] == [360, 720] and g["res_deg"] == 0.5
    assert g["lat_range"] == [89.75, -89.75] and g["lat_order"] == "north first"
    assert g["lon_range"] == [0.25, 359.75] and g["lon_convention"] == "0..360"
    assert info["read_as"]["lon_range"] == [-179.75, 179.75]
    s = info["stats"]
    q = np.round(tb * 100) / 100
    assert info["main_variable"] == "tb_h" and s["units"] == "K"
    assert s["valid_count"] == np.isfinite(tb).sum() and s["total_count"] == tb.size
    assert s["min"] == pytest.approx(np.nanmin(q), abs=1e-4)
    assert s["max"] == pytest.approx(np.nanmax(q), abs=1e-4)
    assert s["mean"] == pytest.approx(np.nanmean(q), abs=1e-3)
    assert {v["name"] for v in info["variables"]} == {"tb_h", "tb_v"}
    assert info["time"]["first"].startswith("2011-07-01")
    text = format_inspect(info)
    assert name in text and "0..360" in text and "tb_h: min" in text and "north first" in text


def test_inspect_nsidc(tmp_path):
    from smray.formats.nsidc_land3 import EASE_SHAPE, field_name, write_nsidc_land3_for_tests

    path = tmp_path / "AMSR_E_L3_DailyLand_V06_20110701.hdf"
    fields = {}
    for p in "AD":
        counts = np.full(EASE_SHAPE, 2500 if p == "A" else 2510, dtype=np.int16)
        counts[:100] = 9999
        counts[100:110] = -9999
        fields.update({field_name(p, c): counts for c in ("06h", "06v")})
    write_nsidc_land3_for_tests(path, fields)
    info = _json(inspect_url(str(path)))
    assert info["product"] == "nsidc_ae_land3" and info["container"] == "hdf4"
    assert info["passes"] == ["A", "D"] and info["channels"] == ["06h", "06v"]
    assert info["grid"]["shape"] == [586, 1383]
    assert info["grid"]["lat_range"][0] == pytest.approx(86.72, abs=0.005)
    s = info["stats"]
    n = (586 - 110) * 1383
    assert s["valid_count"] == 2 * n and s["total_count"] == 2 * 586 * 1383
    assert s["min"] == pytest.approx(250.0) and s["max"] == pytest.approx(251.0)
    assert "A_TB06.9H (Res 1)" in format_inspect(info)


def test_inspect_cci_real(real_data):
    info = _json(inspect_url(str(real_data / CCI)))
    assert info["product"] == "esa_cci_sm" and info["date"] == "2016-12-30"
    s = info["stats"]
    assert s["variable"] == "sm" and s["valid_count"] == 54762 and s["total_count"] == 720 * 1440
    assert s["min"] == 0.0 and s["max"] == pytest.approx(0.98, abs=1e-6)
    assert 0.15 < s["mean"] < 0.25
    g = info["grid"]
    assert g["shape"] == [720, 1440] and g["res_deg"] == 0.25 and g["registration"] == "cell centres"
    assert g["lat_range"] == [89.875, -89.875] and g["lon_range"] == [-179.875, 179.875]
    assert info["time"]["steps"] == 1 and info["time"]["first"] == "2016-12-30"
    assert info["counts"]["sensor AMSR2"] + info["counts"]["sensor SMOS"] + info["counts"]["sensor AMSR2+SMOS"] == 54762
    sm = next(v for v in info["variables"] if v["name"] == "sm")
    assert sm["dtype"] == "float32" and sm["dims"] == ["time", "lat", "lon"]


def test_inspect_unknown_netcdf_land_mask(real_data):
    info = _json(inspect_url(str(real_data / "era5" / "landmask_0.25_0.25.nc")))
    assert info["product"] == "unknown"
    g = info["grid"]
    assert g["shape"] == [721, 1440] and g["registration"] == "grid points incl. poles"
    assert g["lon_convention"] == "0..360"
    assert info["main_variable"] == "land"
    assert info["stats"]["min"] == 0.0 and info["stats"]["max"] == 1.0


def test_inspect_lprm_layout(tmp_path):
    """An LPRM file laid out per the GES DISC CDL: (Longitude, Latitude) arrays, fill -32767."""
    path = tmp_path / "LPRM-AMSR_E_L3_D_SOILM3_V002_20110701.nc"
    g = Grid(0.25)
    with netCDF4.Dataset(path, "w") as nc:
        nc.createDimension("Longitude", g.nlon)
        nc.createDimension("Latitude", g.nlat)
        nc.createVariable("Longitude", "f4", ("Longitude",))[:] = g.lon
        nc.createVariable("Latitude", "f4", ("Latitude",))[:] = g.lat[::-1]
        v = nc.createVariable("soil_moisture_c", "i2", ("Longitude", "Latitude"), fill_value=-32767)
        v.units = "percent"
        arr = np.full((g.nlon, g.nlat), -32767, dtype=np.int16)
        arr[:10, :20] = 25
        arr[10:12, :20] = 35
        v[:] = arr
    info = _json(inspect_url(str(path)))
    assert info["product"] == "lprm_l3" and info["pass"] == "D" and info["date"] == "2011-07-01"
    assert info["grid"]["lat_order"] == "south first"
    s = info["stats"]
    assert info["main_variable"] == "soil_moisture_c" and s["valid_count"] == 240
    assert s["min"] == 25.0 and s["max"] == 35.0
    assert any("transpose" in n for n in info["notes"])


def test_inspect_errors(tmp_path):
    with pytest.raises(SmrayError, match="file not found"):
        inspect_url(str(tmp_path / "missing.nc"))
    junk = tmp_path / "junk.dat"
    junk.write_bytes(b"hello world" * 10)
    with pytest.raises(SmrayError, match="junk.dat: unrecognised file"):
        inspect_url(str(junk))
    data, _ = _jaxa_file()
    name = jaxa_l3_filename(dt.date(2011, 7, 1), "D", "10")
    bad = tmp_path / name
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(SmrayError, match=name) as err:
        inspect_url(str(bad))
    assert "\n" not in str(err.value)


# --------------------------------------------------------------------------------------------
# inspect: ERA (smray.formats.era) and ISMN (smray.formats.ismn), from the other readers
# --------------------------------------------------------------------------------------------
def test_inspect_era_interim_grib(real_data):
    info = _json(inspect_url(str(real_data / "era_interim" / "example_downloaded_raw.grb")))
    assert info["product"] == "era_grib" and info["container"] == "grib"
    assert info["grid"]["shape"] == [37, 72] and info["grid"]["res_deg"] == 5.0
    assert info["grid"]["lat_order"] == "north first" and info["grid"]["lon_convention"] == "0..360"
    assert info["time"]["steps"] == 4
    s = info["stats"]
    assert s["variable"] == "swvl1" and s["over"].startswith("land")
    assert s["max"] == pytest.approx(0.4722, abs=1e-3) and s["min"] >= 0.0
    land = info["counts"]["land cells (lsm >= 0.5)"]
    assert s["valid_count"] == s["total_count"] == 4 * land
    assert "over land" in format_inspect(info)


def test_inspect_era_interim_reduced_gaussian(real_data):
    info = _json(inspect_url(str(real_data / "era_interim" / "ERA-Interim_OPER_0001_AN_20000101_0000.grb")))
    assert info["grid"]["shape"] == [88838] and "256 latitude rows" in info["grid"]["kind"]
    assert info["date"] == "2000-01-01" and info["time"]["steps"] == 1
    assert info["stats"]["over"].startswith("land") and info["stats"]["max"] < 0.5


def test_inspect_era5_netcdf(real_data):
    info = _json(inspect_url(str(real_data / "era5" / "example_downloaded_raw.nc")))
    assert info["product"] == "era_netcdf" and info["container"] == "netcdf3"
    swvl1 = next(v for v in info["variables"] if v["name"] == "swvl1")
    assert swvl1["dtype"] == "int16" and swvl1["packed"]["scale_factor"] == pytest.approx(1.1454e-05, rel=1e-3)
    assert info["time"]["first"] == "2010-01-01" and info["time"]["steps"] == 4
    s = info["stats"]
    assert s["over"].startswith("land") and s["min"] >= 0.0
    assert s["max"] == pytest.approx(0.7474, abs=1e-3) and s["mean"] == pytest.approx(0.235, abs=0.01)


def test_inspect_ismn_stm(real_data):
    info = _json(inspect_url(str(real_data / STM)))
    assert info["product"] == "ismn_stm"
    assert info["time"]["first"].startswith("2007-03-22")
    s = info["stats"]
    assert s["valid_count"] > 40000 and 0.0 <= s["min"] and s["max"] <= 1.0
    text = json.dumps(info["station"])
    assert "34.78" in text and "AAMU-jtg" in text
    assert 0 < info["counts"]["good (ISMN flag G/U)"] < s["valid_count"]
