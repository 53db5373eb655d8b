"""ISMN header+values .stm files and zip archives, on the real SCAN/MAQU/SOILSCAPE samples."""

from __future__ import annotations

import zipfile

import numpy as np
import pandas as pd
import pytest

from smray.errors import SmrayError
from smray.formats.ismn import daily_means, read_ismn_stm, read_ismn_zip
from smray.storage import filesystem, join, write_bytes

AAMU = ("ismn/header_values/SCAN/AAMU-jtg/"
        "SCAN_SCAN_AAMU-jtg_sm_0.050800_0.050800_Hydraprobe-Analog-(2.5-Volt)_20070101_20131231.stm")
ZIP = "ismn/Data_header_values.zip"


@pytest.fixture(scope="module")
def aamu(real_data):
    return read_ismn_stm(real_data / AAMU)


def test_real_scan_station_header(aamu, real_data):
    raw = (real_data / AAMU).read_bytes()
    assert b"\r" in raw and b"\n" not in raw  # the CR-only line endings the reader must handle
    meta, _ = aamu
    assert meta["network"] == "SCAN" and meta["station"] == "AAMU-jtg"
    assert meta["lat"] == pytest.approx(34.783) and meta["lon"] == pytest.approx(-86.55)
    assert meta["elevation"] == pytest.approx(262.13)
    assert meta["depth_from"] == pytest.approx(0.0508) and meta["depth_to"] == pytest.approx(0.0508)
    assert meta["sensor"] == "Hydraprobe-Analog-(2.5-Volt)" and meta["variable"] == "sm"


def test_real_scan_station_values(aamu, real_data):
    meta, df = aamu
    assert len(df) == meta["n_obs"] == 42895
    assert df.index[0] == pd.Timestamp("2007-03-22 21:00") and df.index[-1] == pd.Timestamp("2013-09-23 09:00")
    assert df.index.is_monotonic_increasing
    july = df.loc["2011-07-01":"2011-07-31 23:59"]
    assert len(july) == 742
    first = df.loc["2011-07-01 00:00"]
    assert first["soil_moisture"] == pytest.approx(0.2640)
    assert first["ismn_flag"] == "U" and first["provider_flag"] == "M" and first["good"]
    assert df["soil_moisture"].between(0, 1).all()
    # flags: comma-joined codes are suspect unless every code is G/U; a missing provider flag is ''
    assert set(df.loc[df["good"], "ismn_flag"]) == {"U"}
    assert (df["ismn_flag"] == "D04,D05").sum() == 99 and not df.loc[df["ismn_flag"] == "D04,D05", "good"].any()
    assert (df["provider_flag"] == "").sum() == 125
    # an independent count of the U-flagged lines from the raw text
    lines = (real_data / AAMU).read_bytes().decode("latin-1").split("\r")[1:]
    assert df["good"].sum() == sum(1 for ln in lines if ln.split()[3:4] == ["U"])


def test_daily_means(aamu):
    _, df = aamu
    daily = daily_means(df)
    assert list(daily.columns) == ["soil_moisture", "n_obs"]
    day = df.loc["2011-07-15"]
    good = day[day["good"]]
    assert daily.loc["2011-07-15", "soil_moisture"] == pytest.approx(good["soil_moisture"].mean())
    assert daily.loc["2011-07-15", "n_obs"] == len(good)
    assert daily.index[0] == pd.Timestamp("2007-03-22") and daily.index.name == "time"
    every = daily_means(df, good_only=False)
    assert every["n_obs"].sum() == len(df) and daily["n_obs"].sum() == df["good"].sum()
    assert len(every) >= len(daily)


def test_zip_archive_has_eight_stations(real_data):
    stations = read_ismn_zip(real_data / ZIP)
    assert len(stations) == 8
    nets = [s.metadata["network"] for s in stations]
    assert nets.count("MAQU") == 2 and nets.count("SCAN") == 3 and nets.count("SOILSCAPE") == 3
    by_station = {s.metadata["station"]: s for s in stations}
    aamu = by_station["AAMU-jtg"]
    meta, df = aamu  # a station unpacks like read_ismn_stm's (metadata, data)
    assert meta["file"].startswith("SCAN/AAMU-jtg/") and len(df) == 42895
    adams = by_station["Adams_Ranch_#1"]
    assert ((adams.data.index.year == 2011) & (adams.data.index.month == 7)).sum() == 744
    for s in stations:
        assert s.metadata["depth_from"] in (0.05, 0.0508)
        assert -90 <= s.metadata["lat"] <= 90 and -180 <= s.metadata["lon"] <= 180
        assert len(s.data) == s.metadata["n_obs"] > 0
    maqu = by_station["CST_01"]
    assert maqu.data.index[0] == pd.Timestamp("2008-07-01 00:00")
    assert maqu.data.index[-1] == pd.Timestamp("2010-07-31 23:00")


def test_line_endings_and_bytes_source(real_data):
    raw = (real_data / AAMU).read_bytes()
    lf = raw.replace(b"\r", b"\n")
    crlf = raw.replace(b"\r", b"\r\n")
    ref_meta, ref = read_ismn_stm(raw, name="a.stm")
    for variant in (lf, crlf):
        meta, df = read_ismn_stm(variant, name="a.stm")
        assert meta == ref_meta
        pd.testing.assert_frame_equal(df, ref)


def test_bad_files_raise_one_line(tmp_path, real_data):
    bad_header = tmp_path / "bad_header.stm"
    bad_header.write_bytes(b"this is not an ismn header\r2011/07/01 00:00 0.2 U M\r")
    with pytest.raises(SmrayError) as err:
        read_ismn_stm(bad_header)
    assert "bad_header.stm" in str(err.value) and "\n" not in str(err.value)

    raw = (real_data / AAMU).read_bytes()
    lines = raw.split(b"\r")
    lines[100] = b"2011/13/45 99:99   0.2640 U M"
    garbled = tmp_path / "garbled.stm"
    garbled.write_bytes(b"\r".join(lines))
    with pytest.raises(SmrayError, match="garbled.stm.*2011/13/45"):
        read_ismn_stm(garbled)

    empty = tmp_path / "empty.stm"
    empty.write_bytes(b"")
    with pytest.raises(SmrayError, match="empty"):
        read_ismn_stm(empty)
    with pytest.raises(SmrayError, match="not found"):
        read_ismn_stm(tmp_path / "absent.stm")

    not_zip = tmp_path / "not.zip"
    not_zip.write_bytes(b"PK but not really")
    with pytest.raises(SmrayError, match="not.zip"):
        read_ismn_zip(not_zip)
    no_stm = tmp_path / "no_stm.zip"
    with zipfile.ZipFile(no_stm, "w") as zf:
        zf.writestr("readme.txt", "nothing here")
    with pytest.raises(SmrayError, match="no ISMN"):
        read_ismn_zip(no_stm)


def test_header_only_file_gives_empty_frame():
    meta, df = read_ismn_stm(b"NET NET Station 10.0 20.0 100.0 0.00 0.05 Sensor X\r", name="n.stm")
    assert meta["station"] == "Station" and meta["sensor"] == "Sensor X" and meta["n_obs"] == 0
    assert df.empty and list(df.columns) == ["soil_moisture", "ismn_flag", "provider_flag", "good"]
    assert daily_means(df).empty


def test_read_from_storage_backends(real_data, storage_root):
    url = join(storage_root, "ismn", "Data_header_values.zip")
    fs, path = filesystem(url)
    write_bytes(fs, path, (real_data / ZIP).read_bytes())
    stations = read_ismn_zip(url)
    assert len(stations) == 8
    stm_url = join(storage_root, "ismn", "station.stm")
    fs, path = filesystem(stm_url)
    write_bytes(fs, path, (real_data / AAMU).read_bytes())
    meta, df = read_ismn_stm(stm_url)
    assert meta["station"] == "AAMU-jtg" and len(df) == 42895
    assert np.isfinite(df["soil_moisture"]).all()
