"""NSIDC-0302 / NSIDC-0301 flat binary files and EASE-Grid 1.0 geolocation (no Ray): real files
written to disk in the documented layout, read back; real corrupt files (truncated, byte-swapped,
wrong time file); names; the area-weighted EASE ↔ lat/lon regridding."""

from __future__ import annotations

import datetime as dt
import gzip
from pathlib import Path

import numpy as np
import pytest

from smray.discovery import NSIDC_FLAT, index_tb
from smray.errors import SmrayError
from smray.formats import ease, nsidc_flat
from smray.formats.detect import detect_product, parse_date, parse_pass
from smray.formats.nsidc_land3 import ease_forward, ease_inverse
from smray.grid import Grid

DAY = dt.date(2005, 5, 15)  # day of year 135, the user guide's example


# --------------------------------------------------------------------------------------------
# Names (the user guide's own examples)
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name, product, channel", [
    ("ID2r1-AMSRE-D.252005135D.v01.89V", "nsidc_0302", "89V"),
    ("ID2r3-AMSRE-SL2005135D.v01.89V", "nsidc_0301", "89V"),
    ("ID2r3-AMSRE-SL2005135D.v01.TIM", "nsidc_0301", "TIM"),
    ("ID2r3-AMSRE-ML2005135D.v01.06H.gz", "nsidc_0301", "06H"),
    ("ID2r1-AMSRE-D.252005135D.v03.TIM", "nsidc_0302", "TIM"),
])
def test_user_guide_names(name: str, product: str, channel: str) -> None:
    assert detect_product(name) == product
    assert parse_date(name) == DAY and parse_pass(name) == "D"
    info = nsidc_flat.parse_flat_name(name)
    assert info is not None and info["product"] == product and info["channel"] == channel
    assert nsidc_flat.flat_filename("nsidc_0302", DAY, "D", "89v", "v01") == "ID2r1-AMSRE-D.252005135D.v01.89V"
    assert nsidc_flat.time_filename("a/ID2r3-AMSRE-ML2005135D.v01.06H.gz") == "a/ID2r3-AMSRE-ML2005135D.v01.TIM.gz"


def test_other_archive_names_are_recognised() -> None:
    assert detect_product("AMSR_E_L2A_BrightnessTemperatures_V12_201110032238_D.hdf") == "nsidc_ae_l2a"
    assert detect_product("ei.oper.an.sfc.regn128sc.2011070106") == "era_rda"
    assert parse_date("ei.oper.an.sfc.regn128sc.2011070106") == dt.date(2011, 7, 1)
    assert nsidc_flat.parse_flat_name("ID2r1-AMSRE-D.252005366D.v01.06H") is None  # 2005 has 365 days


def test_discovery_takes_one_grid_per_day_and_skips_polar_files() -> None:
    names = []
    for i, product in enumerate(("nsidc_0302", "nsidc_0301", "nsidc_0302")):
        d = DAY + dt.timedelta(days=i)
        for p in "AD":
            names += [f"a/{nsidc_flat.flat_filename(product, d, p, c)}" for c in ("06H", "06V", "10H", "10V", "TIM")]
    names += [f"a/{nsidc_flat.flat_filename('nsidc_0301', DAY, 'A', '06H')}",  # 0302 wins on day 1
              "a/ID2r3-AMSRE-NL2005135A.v01.06H", "a/ID2r1-AMSRE-D.252005135A.v01.36V"]
    ix = index_tb(names, url="a")
    assert ix.product == NSIDC_FLAT and len(ix.files) == 30
    assert set(ix.day(DAY)) == {"A", "D"} and ix.day(DAY)["A"]["06H"].endswith("ID2r1-AMSRE-D.252005135A.v03.06H")
    assert ix.day(DAY + dt.timedelta(days=1))["D"]["TIM"].endswith("ID2r3-AMSRE-ML2005136D.v03.TIM")
    assert len(ix.ignored) == 3 and not ix.unrecognised
    del names[4]  # day 1, pass A: no .TIM
    assert index_tb(names).incomplete_days(DAY, DAY) == {DAY: ["A TIM"]}


# --------------------------------------------------------------------------------------------
# EASE-Grid 1.0 geolocation (pyproj, EPSG:3410)
# --------------------------------------------------------------------------------------------
def test_ease_grid_geometry_matches_nsidc_definition() -> None:
    assert ease.cell_size_m() == pytest.approx(25067.525, abs=0.01)  # NSIDC's nominal 25.067525 km
    assert ease.lat_limit() == pytest.approx(86.72, abs=0.005)
    row, col = ease.latlon_to_rowcol(np.array([0.0]), np.array([0.0]))
    assert row[0] == pytest.approx(292.5) and col[0] == pytest.approx(691.0)  # map origin
    lat, lon = ease.centres()
    assert lat[0] > lat[-1] and lon[0] == pytest.approx(-180 + 180 / 1383)  # north first, 180°W first
    # the AE_Land3 reader's closed-form EASE formulas agree with PROJ to well under a cell
    lat_cf, _ = ease_inverse(np.arange(586), np.zeros(586))
    assert np.abs(lat_cf - lat).max() < 1e-3
    r, c = ease_forward(np.array([40.0, -33.9]), np.array([-105.0, 151.2]))
    r2, c2 = ease.latlon_to_rowcol(np.array([40.0, -33.9]), np.array([-105.0, 151.2]))
    np.testing.assert_allclose(np.r_[r, c], np.r_[r2, c2], atol=1e-3)


def test_area_weighted_regridding() -> None:
    const = np.full(ease.SHAPE, 250.0)
    out = ease.ease_to_grid(const)
    assert out.shape == (720, 1440)
    inside = np.abs(Grid(0.25).lat) < 86.5
    np.testing.assert_allclose(out[inside], 250.0, rtol=0, atol=1e-4)
    assert np.isnan(out[~(np.abs(Grid(0.25).lat) < 86.75)]).all()  # beyond the EASE grid's edge
    # a field linear in longitude is reproduced (area weights are exact in longitude)
    _, lon = ease.centres()
    got = ease.ease_to_grid(np.broadcast_to(lon, ease.SHAPE).copy(), Grid(1.0))
    np.testing.assert_allclose(got[45], Grid(1.0).lon, atol=0.02)
    # NaN carries no weight; less than half covered → NaN
    half = const.copy()
    half[:, :691] = np.nan
    g = ease.ease_to_grid(half, Grid(1.0))
    assert np.isnan(g[90, :179]).all() and np.isfinite(g[90, 181:]).all()
    # a regional window is the global result cut
    win = Grid(1.0).subset((0, 30, 20, 50))
    np.testing.assert_array_equal(ease.ease_to_grid(const, win), ease.ease_to_grid(const, Grid(1.0))[win.window])


# --------------------------------------------------------------------------------------------
# Files
# --------------------------------------------------------------------------------------------
def _tb_field(shape: tuple[int, int]) -> np.ndarray:
    rng = np.random.default_rng(1)
    tb = rng.uniform(150, 300, size=shape)
    tb[rng.random(shape) < 0.2] = np.nan  # swath gaps
    return tb


def test_quarter_degree_file_round_trip_and_orientation(tmp_path: Path) -> None:
    tb = _tb_field(nsidc_flat.QD_SHAPE)
    tb[4, 8] = 271.3  # a marker at 88.875°N, 177.875°W
    path = tmp_path / nsidc_flat.flat_filename("nsidc_0302", DAY, "A", "06H")
    path.write_bytes(nsidc_flat.encode_tb(tb))
    assert path.stat().st_size == 720 * 1440 * 2
    raw = np.fromfile(path, dtype="<u2").reshape(720, 1440)
    assert raw[4, 8] == 2713 and (raw[np.isnan(tb)] == 0).all()  # tenths of K, 0 = no data
    got = nsidc_flat.read_flat(path)
    np.testing.assert_allclose(got, tb, rtol=0, atol=0.05 + 1e-4)
    assert np.array_equal(np.isnan(got), np.isnan(tb))
    g = Grid(0.25)
    assert g.lat[4] == 88.875 and g.lon[8] == -177.875 and got[4, 8] == pytest.approx(271.3, abs=1e-4)
    # gzip-delivered file reads the same; coarser cube grid = area mean
    gz = tmp_path / (path.name + ".gz")
    gz.write_bytes(gzip.compress(path.read_bytes()))
    np.testing.assert_array_equal(nsidc_flat.read_flat(gz), got)
    assert nsidc_flat.read_flat(path, Grid(1.0)).shape == (180, 360)


def test_ease_file_round_trip(tmp_path: Path) -> None:
    tb = _tb_field(ease.SHAPE)
    path = tmp_path / nsidc_flat.flat_filename("nsidc_0301", DAY, "D", "10V")
    path.write_bytes(nsidc_flat.encode_tb(tb))
    assert path.stat().st_size == 1383 * 586 * 2
    native, info = nsidc_flat.read_flat_native(path)
    assert info["product"] == "nsidc_0301"
    np.testing.assert_allclose(native, tb, rtol=0, atol=0.05 + 1e-4)
    tim = tmp_path / nsidc_flat.flat_filename("nsidc_0301", DAY, "D", "TIM")
    tim.write_bytes(nsidc_flat.encode_time(nsidc_flat.overpass_minutes("D", "nsidc_0301")))
    assert nsidc_flat.read_time(tim).dtype == np.int16


def test_corrupt_files_give_one_line_naming_the_file(tmp_path: Path) -> None:
    tb = _tb_field(nsidc_flat.QD_SHAPE)
    data = nsidc_flat.encode_tb(tb)
    name = nsidc_flat.flat_filename("nsidc_0302", DAY, "A", "06H")
    trunc = tmp_path / "t" / name
    trunc.parent.mkdir()
    trunc.write_bytes(data[:-1000])
    with pytest.raises(SmrayError, match=rf"{name}: 2072600 bytes, expected 2073600 .*truncated") as err:
        nsidc_flat.read_flat(trunc)
    assert "\n" not in str(err.value)
    swapped = tmp_path / "s" / name
    swapped.parent.mkdir()
    swapped.write_bytes(nsidc_flat.encode_tb(tb, byteorder=">"))
    with pytest.raises(SmrayError, match=rf"{name}: 9\d% of the values are above 400 K.*wrong byte order"):
        nsidc_flat.read_flat(swapped)
    badgz = tmp_path / (name + ".gz")
    badgz.write_bytes(gzip.compress(data)[:5000])
    with pytest.raises(SmrayError, match=rf"{name}.gz: corrupt gzip file"):
        nsidc_flat.read_flat(badgz)
    with pytest.raises(SmrayError, match="a time file, not brightness temperatures"):
        nsidc_flat.read_flat(data, name=nsidc_flat.flat_filename("nsidc_0302", DAY, "A", "TIM"))
    with pytest.raises(SmrayError, match="not an NSIDC-0301/0302 file name"):
        nsidc_flat.read_flat(data, name="tb.bin")
    with pytest.raises(SmrayError, match="only the global grids"):
        nsidc_flat.read_flat(data, name="ID2r3-AMSRE-NL2005135A.v01.06H")


def test_inspect_describes_each_new_product(tmp_path: Path, capsys) -> None:
    from smray.cli import main
    from smray.inspect import inspect_url

    qd = tmp_path / nsidc_flat.flat_filename("nsidc_0302", DAY, "A", "06H")
    qd.write_bytes(nsidc_flat.encode_tb(np.full(nsidc_flat.QD_SHAPE, 231.4)))
    ml = tmp_path / (nsidc_flat.flat_filename("nsidc_0301", DAY, "D", "10V") + ".gz")
    ml.write_bytes(gzip.compress(nsidc_flat.encode_tb(np.full(ease.SHAPE, 250.0))))
    tim = tmp_path / nsidc_flat.flat_filename("nsidc_0301", DAY, "D", "TIM")
    tim.write_bytes(nsidc_flat.encode_time(nsidc_flat.overpass_minutes("D", "nsidc_0301")))
    a = inspect_url(str(qd))
    assert a["product"] == "nsidc_0302" and a["pass"] == "A" and a["date"] == "2005-05-15"
    assert a["grid"]["shape"] == [720, 1440] and a["stats"]["mean"] == pytest.approx(231.4, abs=1e-3)
    b = inspect_url(str(ml))
    assert b["product"] == "nsidc_0301" and b["grid"]["shape"] == [586, 1383] and "EPSG:3410" in b["grid"]["kind"]
    assert b["stats"]["mean"] == pytest.approx(250.0)
    c = inspect_url(str(tim))
    assert c["main_variable"] == "time" and "int16" in c["variables"][0]["dtype"]
    assert main(["inspect", str(qd)]) == 0
    assert "NSIDC-0302" in capsys.readouterr().out
    qd.write_bytes(qd.read_bytes()[:100])
    assert main(["inspect", str(qd)]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and qd.name in err[0] and "truncated" in err[0]



def test_proj_works_after_eccodes_in_a_fresh_process(real_data: Path) -> None:
    """Importing smray loads PROJ before anything loads ecCodes: with the pinned wheels, ecCodes
    first (any xarray open, through cfgrib's entry point, or a GRIB read) made the first EASE-Grid
    transform abort the interpreter (std::bad_alloc). A fresh interpreter reads a real netCDF and a
    real GRIB file, then geolocates on the EASE grid."""
    import subprocess
    import sys

    code = ("import smray, xarray as xr, sys\n"
            "from smray.formats.era import read_era_native\n"
            f"xr.open_dataset({str(real_data / 'era5' / 'example_downloaded_raw.nc')!r}).close()\n"
            f"read_era_native({str(real_data / 'era_interim' / 'example_downloaded_raw.grb')!r})\n"
            "assert 'eccodes' in sys.modules\n"
            "from smray.formats import ease\n"
            "print(round(ease.cell_size_m(), 3))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "25067.526"


def test_twin_writes_gzip_files_as_nsidc_delivers_them(tmp_path: Path) -> None:
    """``synth.gzip``: the same bytes compressed, ``.gz`` added, deterministic, read back alike and
    indexed with their .TIM files; a regional day is mostly zeros, so its files are small."""
    from smray.synth.layouts import write_flat_day

    grid = Grid(0.25).subset((-10.0, 30.0, 30.0, 55.0))
    rng = np.random.default_rng(0)
    tbs = {p: {c: rng.uniform(150.0, 300.0, grid.shape).astype(np.float32) for c in ("06H", "06V", "10H", "10V")}
           for p in ("A", "D")}
    day = dt.date(2005, 7, 1)
    files: dict[str, dict[str, bytes]] = {"plain": {}, "gz": {}}
    for kind in files:
        write_flat_day("nsidc_0302", day, tbs, grid, files[kind].__setitem__, gz=kind == "gz")
    assert sorted(files["gz"]) == sorted(p + ".gz" for p in files["plain"])
    for path, data in files["plain"].items():
        packed = files["gz"][path + ".gz"]
        assert gzip.decompress(packed) == data and len(packed) < len(data) / 20
        if not path.endswith(".TIM"):
            np.testing.assert_array_equal(nsidc_flat.read_flat(packed, grid, name=path.rsplit("/", 1)[1] + ".gz"),
                                          nsidc_flat.read_flat(data, grid, name=path.rsplit("/", 1)[1]))
    again: dict[str, bytes] = {}
    write_flat_day("nsidc_0302", day, tbs, grid, again.__setitem__, gz=True)
    assert again == files["gz"]  # no time stamp in the gzip header
    index = index_tb(sorted(files["gz"]))
    assert index.product == NSIDC_FLAT and not index.unrecognised
    assert set(index.day(day)) == {"A", "D"} and index.day(day)["D"]["TIM"].endswith(".v03.TIM.gz")
    assert len(index.day(day)["A"]) == 5 and not index.incomplete_days(day, day)


def test_gzip_only_for_the_flat_layouts() -> None:
    from smray.config import SynthConfig

    assert SynthConfig(tb_layout="nsidc_0301", gzip=True).gzip
    with pytest.raises(SmrayError, match="synth.gzip: only the NSIDC flat layouts"):
        SynthConfig(tb_layout="jaxa_l3", gzip=True)
