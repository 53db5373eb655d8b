"""Discovery: product names → day indexes, missing days, duplicates, unrecognised files, overrides.

Pure functions over lists of names, plus the thin listing over a local directory and memory://."""

from __future__ import annotations

import datetime as dt
import posixpath
import uuid
from pathlib import Path

import fsspec
import pytest

from smray.discovery import (JAXA, NSIDC, discover_ref, discover_tb, index_ref, index_tb, list_files)
from smray.errors import SmrayError

D1, D2, D3, D4 = (dt.date(2011, 7, d) for d in (1, 2, 3, 4))


def jaxa(day: dt.date, p: str, band: str, res: str = "L", tail: str = "A2220220", folder: str = "amsr") -> str:
    return f"s3://b/{folder}/{day:%Y/%m}/GW1AM2_{day:%Y%m%d}_01D_EQM{p}_L3SGT{band}{res}{tail}.h5"


def full_day(day: dt.date) -> list[str]:
    return [jaxa(day, p, b) for p in "AD" for b in ("06", "10")]


# --------------------------------------------------------------------------------------------
# Brightness temperatures
# --------------------------------------------------------------------------------------------
def test_jaxa_index_missing_incomplete_duplicates_unrecognised() -> None:
    names = [*full_day(D1), *full_day(D2), *[n for n in full_day(D4) if "EQMD_L3SGT10" not in n],
             jaxa(D1, "A", "36"), jaxa(D1, "A", "89"),  # other bands: recognised, not used
             jaxa(D2, "A", "06", res="H"),  # the 0.1 deg file of a key that has the 0.25 deg one
             jaxa(D2, "D", "10", folder="copy"),  # the same name in a second folder
             "s3://b/amsr/README.txt", "s3://b/amsr/2011/07/GW1AM2_2011070_bad.h5"]
    idx = index_tb(names, url="s3://b/amsr")
    assert idx.product == JAXA
    assert idx.dates() == {D1, D2, D4}
    assert idx.missing_days(D1, D4) == [D3]
    assert idx.incomplete_days(D1, D4) == {D4: ["D 10"]}
    assert idx.files[(D2, "A", "06")] == jaxa(D2, "A", "06")  # L sorts after H: the 0.25 deg file is kept
    assert idx.files[(D2, "D", "10")] == jaxa(D2, "D", "10", folder="copy")  # same name: the URL sorting last
    dups = {d.key: d for d in idx.duplicates}
    assert set(dups) == {"2011-07-02 A 06", "2011-07-02 D 10"}
    assert dups["2011-07-02 A 06"].ignored == (jaxa(D2, "A", "06", res="H"),)
    assert sorted(idx.unrecognised) == ["s3://b/amsr/2011/07/GW1AM2_2011070_bad.h5", "s3://b/amsr/README.txt"]
    assert sorted(idx.ignored) == sorted([jaxa(D1, "A", "36"), jaxa(D1, "A", "89")])
    day = idx.day(D4)
    assert set(day) == {"A", "D"} and set(day["A"]) == {"06", "10"} and set(day["D"]) == {"06"}
    assert idx.day(D3) == {}
    text = "\n".join(idx.report(D1, D4))
    assert "1 missing day(s): 2011-07-03" in text
    assert "2011-07-04 lacks D 10" in text
    assert "2 duplicate key(s)" in text and "2 unrecognised" in text


def test_missing_days_are_reported_as_ranges() -> None:
    idx = index_tb(full_day(D1) + full_day(dt.date(2011, 7, 6)), url="x")
    assert idx.missing_days(D1, dt.date(2011, 7, 7)) == [dt.date(2011, 7, d) for d in (2, 3, 4, 5, 7)]
    assert "2011-07-02..2011-07-05, 2011-07-07" in "\n".join(idx.report(D1, dt.date(2011, 7, 7)))


def test_nsidc_daily_files_and_version_duplicates() -> None:
    names = ["/a/AMSR_E_L3_DailyLand_V06_20110701.hdf", "/a/AMSR_E_L3_DailyLand_B04_20110701.hdf",
             "/a/AMSR_E_L3_DailyLand_V06_20110703.hdf"]
    idx = index_tb(names)
    assert idx.product == NSIDC
    assert idx.files == {D1: "/a/AMSR_E_L3_DailyLand_V06_20110701.hdf", D3: "/a/AMSR_E_L3_DailyLand_V06_20110703.hdf"}
    assert idx.duplicates[0].ignored == ("/a/AMSR_E_L3_DailyLand_B04_20110701.hdf",)
    assert idx.missing_days(D1, D3) == [D2]
    assert idx.day(D1) == {"*": {"*": "/a/AMSR_E_L3_DailyLand_V06_20110701.hdf"}}


def test_mixed_products_use_the_one_with_more_days() -> None:
    names = full_day(D1) + full_day(D2) + ["/a/AMSR_E_L3_DailyLand_V06_20110701.hdf"]
    idx = index_tb(names)
    assert idx.product == JAXA
    assert idx.ignored == ["/a/AMSR_E_L3_DailyLand_V06_20110701.hdf"]


def test_tb_pattern_override() -> None:
    names = ["/x/tb_2011-07-01_A_06.h5", "/x/tb_2011-07-01_D_10.h5", "/x/tb_2011-07-02_A_06.h5",
             "/x/GW1AM2_20110703_01D_EQMA_L3SGT06LA2220220.h5"]
    pattern = r"^tb_(?P<year>\d{4})-(?P<month>\d\d)-(?P<day>\d\d)_(?P<pass_>[AD])_(?P<band>\d\d)\.h5$"
    idx = index_tb(names, pattern)
    assert idx.product == JAXA
    assert set(idx.files) == {(D1, "A", "06"), (D1, "D", "10"), (D2, "A", "06")}
    assert idx.unrecognised == ["/x/GW1AM2_20110703_01D_EQMA_L3SGT06LA2220220.h5"]  # the override replaces
    daily = index_tb(["/x/land_20110701.hdf", "/x/land_20110702.hdf"], r"land_(?P<date>\d{8})\.hdf$")
    assert daily.product == NSIDC and set(daily.files) == {D1, D2}


@pytest.mark.parametrize("pattern, message", [
    (r"tb_(\d{8", "not a valid regular expression"),
    (r"tb_\d{8}\.h5", "needs a named group"),
    (r"tb_(?P<date>\d{8})_(?P<pass_>[AD])\.h5", "need both groups"),
])
def test_bad_tb_pattern_names_the_field(pattern: str, message: str) -> None:
    with pytest.raises(SmrayError, match=rf"^ingest\.tb_pattern: .*{message}"):
        index_tb(["/x/a.h5"], pattern)


# --------------------------------------------------------------------------------------------
# Reference
# --------------------------------------------------------------------------------------------
def test_ref_monthly_covers_its_month_daily_wins() -> None:
    names = ["/e/2012/ERA-Interim_swvl1_201202.nc", "/e/2012/ERA-Interim_swvl1_201203.nc",
             "/e/2012/ERA5_swvl1_20120305.grib", "/e/2012/ERA5_swvl1_20120305_v2.grib",
             "/e/2012/notes.txt", "/e/smray_twin_truth_20120301.nc",
             "/e/LPRM-AMSR_E_L3_A_SOILM3_V002_20120301.nc"]
    idx = index_ref(names, url="/e")
    feb = [dt.date(2012, 2, d) for d in range(1, 30)]  # a leap year
    assert all(idx.files[d] == "/e/2012/ERA-Interim_swvl1_201202.nc" for d in feb)
    assert dt.date(2012, 2, 30 - 1) in idx.files and len([d for d in idx.files if d.month == 2]) == 29
    assert idx.files[dt.date(2012, 3, 5)] == "/e/2012/ERA5_swvl1_20120305_v2.grib"  # sorts last, beats monthly
    assert idx.files[dt.date(2012, 3, 6)] == "/e/2012/ERA-Interim_swvl1_201203.nc"
    keys = sorted(d.key for d in idx.duplicates)
    assert keys == ["2012-03-05", "2012-03-05"]  # two daily files, then daily over monthly
    assert idx.unrecognised == ["/e/2012/notes.txt"]
    assert sorted(idx.ignored) == ["/e/LPRM-AMSR_E_L3_A_SOILM3_V002_20120301.nc",
                                   "/e/smray_twin_truth_20120301.nc"]
    assert idx.monthly == {"/e/2012/ERA-Interim_swvl1_201202.nc", "/e/2012/ERA-Interim_swvl1_201203.nc"}
    assert idx.missing_days(dt.date(2012, 1, 30), dt.date(2012, 2, 2)) == [dt.date(2012, 1, 30), dt.date(2012, 1, 31)]
    assert "2 missing day(s): 2012-01-30..2012-01-31" in "\n".join(idx.report(dt.date(2012, 1, 30), dt.date(2012, 2, 2)))


def test_ref_daily_era_interim_analysis_names() -> None:
    idx = index_ref(["/e/ERA-Interim_OPER_0001_AN_20000101_0000.grb"])
    assert list(idx.files) == [dt.date(2000, 1, 1)]


def test_ref_pattern_override() -> None:
    names = ["/e/sm-2011-07.grib", "/e/sm-2011-08.grib", "/e/ERA-Interim_swvl1_201107.nc"]
    idx = index_ref(names, r"^sm-(?P<year>\d{4})-(?P<month>\d\d)\.grib$")
    assert idx.files[D1] == "/e/sm-2011-07.grib" and idx.files[dt.date(2011, 8, 31)] == "/e/sm-2011-08.grib"
    assert idx.unrecognised == ["/e/ERA-Interim_swvl1_201107.nc"]
    with pytest.raises(SmrayError, match=r"^ingest\.ref_pattern: .*named group"):
        index_ref(names, r"sm-\d+\.grib")


# --------------------------------------------------------------------------------------------
# Listing through the storage seam
# --------------------------------------------------------------------------------------------
def _touch_all(fs: fsspec.AbstractFileSystem, root: str, rels: list[str]) -> None:
    for rel in rels:
        fs.makedirs(posixpath.dirname(f"{root}/{rel}"), exist_ok=True)
        fs.pipe_file(f"{root}/{rel}", b"x")


RELS = ["amsr/2011/07/GW1AM2_20110701_01D_EQMA_L3SGT06LA2220220.h5",
        "amsr/2011/07/GW1AM2_20110702_01D_EQMD_L3SGT10LA2220220.h5",
        "amsr/2011/08/GW1AM2_20110801_01D_EQMA_L3SGT06LA2220220.h5",
        "era_interim/2011/ERA-Interim_swvl1_201107.nc", "twin.json"]


def test_discover_local_directory_recursively(tmp_path: Path) -> None:
    _touch_all(fsspec.filesystem("file"), str(tmp_path / "arch"), RELS)
    url = str(tmp_path / "arch")
    assert list_files(url) == sorted(f"{url}/{r}" for r in RELS)  # plain paths stay plain paths
    tb = discover_tb(url + "/amsr")
    assert tb.dates() == {D1, D2, dt.date(2011, 8, 1)}
    assert tb.files[(D1, "A", "06")] == f"{url}/amsr/2011/07/GW1AM2_20110701_01D_EQMA_L3SGT06LA2220220.h5"
    ref = discover_ref("file://" + url)  # the whole archive: TB files are not taken for references
    assert ref.files[D1] == f"file://{url}/era_interim/2011/ERA-Interim_swvl1_201107.nc"
    assert len(ref.files) == 31
    assert list_files(str(tmp_path / "nothing-here")) == []


def test_discover_memory_filesystem() -> None:
    root = f"memory://disc-{uuid.uuid4().hex[:8]}"
    _touch_all(fsspec.filesystem("memory"), root.split("://", 1)[1], RELS)
    tb = discover_tb(root)
    assert tb.product == JAXA and len(tb.files) == 3
    assert all(u.startswith(root + "/amsr/") for u in tb.files.values())
    assert {u.rsplit("/", 1)[-1] for u in tb.unrecognised} == {"ERA-Interim_swvl1_201107.nc", "twin.json"}
