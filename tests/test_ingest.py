"""End-to-end tests of `smray ingest`: a tiny 2° twin → the Zarr cube, checked with plain h5py /
xarray; bad input with real corrupt files; kill-and-rerun; appending; the local S3 endpoint."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import xarray as xr

from smray import cube
from smray.config import QCConfig, StorageConfig
from smray.errors import SmrayError
from smray.formats.era import read_era
from smray.formats.jaxa_l3 import write_jaxa_l3
from smray.grid import Grid
from smray.qc import FLAGS
from smray.testing import build_twin, ingest_twin, write_config

REPO = Path(__file__).resolve().parents[1]
START = dt.date(2011, 7, 1)
DAYS = 9
RES = 2.0
GRID = Grid(RES)
CHANNELS = (("06", "H"), ("06", "V"), ("10", "H"), ("10", "V"))  # the cube's channel order
QC = QCConfig()


def day(i: int) -> dt.date:
    """Day ``i`` of the twin, 1-based."""
    return START + dt.timedelta(days=i - 1)


def amsr(root: Path, date: dt.date, pass_: str, band: str) -> Path:
    return root / f"amsr/{date:%Y}/{date:%m}/GW1AM2_{date:%Y%m%d}_01D_EQM{pass_}_L3SGT{band}LA2220220.h5"


def source_tb(root: Path, date: dt.date, pass_: str) -> np.ndarray:
    """(4, nlat, nlon) K of one pass-day decoded with plain h5py: DN × 0.01, fills → NaN, columns
    rolled from 0..360 to −180..180. All NaN when the files are absent."""
    out = np.full((4, *GRID.shape), np.nan, dtype=np.float32)
    for c, (band, pol) in enumerate(CHANNELS):
        path = amsr(root, date, pass_, band)
        if not path.exists():
            continue
        with h5py.File(path, "r") as f:
            raw = f[f"Brightness Temperature ({pol})"][()]
        tb = np.where(raw >= 65534, np.nan, raw * 0.01).astype(np.float32)
        out[c] = np.roll(tb, -(raw.shape[1] // 2), axis=1)
    return out


def valid(tb: np.ndarray) -> np.ndarray:
    """Pixels with all four channels observed and physically possible."""
    with np.errstate(invalid="ignore"):
        return (np.isfinite(tb) & (tb >= QC.tb_min_k) & (tb <= QC.tb_max_k)).all(axis=0)


@pytest.fixture(scope="module")
def twin(tmp_path_factory, ray_local) -> Path:
    return build_twin(tmp_path_factory.mktemp("twin") / "archive", start=START, days=DAYS, res=RES, seed=5)


@pytest.fixture(scope="module")
def config(tmp_path_factory) -> Path:
    return write_config(tmp_path_factory.mktemp("cfg") / "ingest.yaml", grid={"res": RES})


@pytest.fixture(scope="module")
def full_cube(twin: Path, config: Path, tmp_path_factory) -> Path:
    """The uninterrupted run over every day of the twin."""
    out = tmp_path_factory.mktemp("cubes") / "full.zarr"
    assert ingest_twin(twin, out, start=day(1), end=day(DAYS), config=config) == 0
    return out


# --------------------------------------------------------------------------------------------
# The cube
# --------------------------------------------------------------------------------------------
@pytest.mark.ray
def test_cube_round_trips_through_open_zarr(full_cube: Path) -> None:
    ds = xr.open_zarr(full_cube)
    assert dict(ds.sizes) == {"time": DAYS, "pass": 2, "channel": 4, "lat": 90, "lon": 180}
    assert ds["tb"].dims == ("time", "pass", "channel", "lat", "lon")
    assert ds["qc"].dims == ("time", "pass", "lat", "lon") and ds["qc"].dtype == np.uint16
    assert ds["swvl1"].dims == ("time", "lat", "lon")
    assert [str(t)[:10] for t in ds["time"].values] == [day(i).isoformat() for i in range(1, DAYS + 1)]
    np.testing.assert_allclose(ds["lat"].values, GRID.lat)
    np.testing.assert_allclose(ds["lon"].values, GRID.lon)
    assert list(ds["pass"].values) == ["A", "D"] and list(ds["channel"].values) == ["06H", "06V", "10H", "10V"]
    assert ds.attrs["Conventions"] == "CF-1.8"
    assert ds["tb"].attrs["units"] == "K" and ds["tb"].attrs["standard_name"] == "brightness_temperature"
    assert ds["swvl1"].attrs["units"] == "m3 m-3"
    assert ds["qc"].attrs["flag_meanings"].split() == list(FLAGS)
    assert ds["lat"].attrs["units"] == "degrees_north" and ds["lon"].attrs["units"] == "degrees_east"
    assert json.loads(ds.attrs["ingest_log"]) == [] and ds.attrs["days_ok"] == DAYS
    assert ds["tb"].encoding["chunks"] == (1, 2, 4, 90, 180)
    assert set(cube.day_records(str(full_cube))) == {day(i) for i in range(1, DAYS + 1)}


@pytest.mark.ray
def test_observed_pixels_equal_the_source_files(twin: Path, full_cube: Path) -> None:
    ds = xr.open_zarr(full_cube)
    checked = 0
    for i in (1, 2, DAYS):
        for p, pass_ in enumerate("AD"):
            src = source_tb(twin, day(i), pass_)
            ok = valid(src)
            got = ds["tb"].isel(time=i - 1, **{"pass": p}).values
            qc = ds["qc"].isel(time=i - 1, **{"pass": p}).values
            assert ok.mean() > 0.4
            np.testing.assert_array_equal(got[:, ok], src[:, ok])  # bit-exact, scale applied
            assert not (qc[ok] & FLAGS["composited"]).any()
            checked += int(ok.sum())
    assert checked > 10000


@pytest.mark.ray
def test_compositing_fills_from_the_day_before_same_pass_only(twin: Path, full_cube: Path) -> None:
    ds = xr.open_zarr(full_cube)
    first_qc = ds["qc"].isel(time=0).values
    assert not (first_qc & FLAGS["composited"]).any()  # no file for the day before the twin: nothing filled
    for i in (2, 5):
        for p, pass_ in enumerate("AD"):
            today, yesterday = source_tb(twin, day(i), pass_), source_tb(twin, day(i - 1), pass_)
            other = source_tb(twin, day(i - 1), "D" if pass_ == "A" else "A")
            got = ds["tb"].isel(time=i - 1, **{"pass": p}).values
            qc = ds["qc"].isel(time=i - 1, **{"pass": p}).values
            gap = ~np.isfinite(today).all(axis=0)
            fill = gap & valid(yesterday)
            assert fill.sum() > 100
            np.testing.assert_array_equal(got[:, fill], yesterday[:, fill])
            assert (qc[fill] & FLAGS["composited"]).all()
            assert (np.abs(other[:, fill] - yesterday[:, fill]) > 0.5).any()  # the other pass would differ
            empty = gap & ~np.isfinite(yesterday).all(axis=0)
            assert empty.any()
            assert np.isnan(got[:, empty]).all()
            assert (qc[empty] & FLAGS["no_observation"]).all()
            assert not (qc[~gap] & FLAGS["composited"]).any()


@pytest.mark.ray
def test_reference_is_the_daily_mean_on_the_cube_grid(twin: Path, full_cube: Path) -> None:
    ref = read_era(str(twin / "era_interim/2011/ERA-Interim_swvl1_201107.nc"), grid=GRID)
    ds = xr.open_zarr(full_cube)
    for i in (1, DAYS):
        want = ref["swvl1"].sel(time=np.datetime64(day(i), "ns")).values
        np.testing.assert_array_equal(ds["swvl1"].isel(time=i - 1).values, want)
    qc = ds["qc"].isel(time=0, **{"pass": 0}).values
    assert ((qc & FLAGS["reference_missing"]) != 0).sum() == np.isnan(want).sum()


@pytest.mark.ray  # the twin fixture uses Ray; ingest_day itself does not
def test_ingest_day_core_without_ray(twin: Path, tmp_path: Path) -> None:
    from smray.discovery import discover_ref, discover_tb
    from smray.grid import surface_fractions
    from smray.ingest import DayContext, ingest_day, make_job

    out = str(tmp_path / "core.zarr")
    cube.create_or_extend(out, None, GRID, day(1), day(3), surface_fractions(GRID)["land"])
    tb, ref = discover_tb(f"{twin}/amsr"), discover_ref(f"{twin}/era_interim")
    res = ingest_day(make_job(day(2), tb, ref), DayContext(out, StorageConfig(), GRID, QC))
    assert res["status"] == "ok" and res["composited"] > 0.05
    rec = cube.day_records(out)[day(2)]
    assert rec["status"] == "ok" and len(rec["files"]) == 5 and len(rec["previous_files"]) == 4
    got = cube.read_day(out, None, day(2))
    ok = valid(source_tb(twin, day(2), "D"))
    np.testing.assert_array_equal(got["tb"][1][:, ok], source_tb(twin, day(2), "D")[:, ok])
    # composite_days = 1: the day before is not even read, and nothing is filled
    job = make_job(day(3), tb, ref, composite_days=1)
    assert job.tb_previous == {}
    res = ingest_day(job, DayContext(out, StorageConfig(), GRID, QCConfig(composite_days=1)))
    assert res["status"] == "ok" and res["composited"] == 0.0
    qc = cube.read_day(out, None, day(3))["qc"]
    assert not (qc & FLAGS["composited"]).any()
    assert ((qc & FLAGS["no_observation"]) != 0).sum() == sum((~valid(source_tb(twin, day(3), p))).sum() for p in "AD")


@pytest.mark.ray  # the twin fixture uses Ray; ingest_day itself does not
def test_ingest_day_reads_nsidc_land3_daily_files(twin: Path, tmp_path: Path) -> None:
    """AE_Land3 (HDF4, EASE-Grid, both passes in one file) through the same per-day core."""
    from smray.discovery import NSIDC, discover_ref, discover_tb
    from smray.formats.nsidc_land3 import field_name, grid_to_ease, write_nsidc_land3_for_tests
    from smray.grid import surface_fractions
    from smray.ingest import DayContext, ingest_day, make_job

    land3 = tmp_path / "land3"
    land3.mkdir()
    for i in (1, 2):
        fields = {}
        for pass_ in "AD":
            tb = source_tb(twin, day(i), pass_)
            for c, (band, pol) in enumerate(CHANNELS):
                fields[field_name(pass_, f"{band}{pol.lower()}")] = grid_to_ease(tb[c], GRID)
        write_nsidc_land3_for_tests(land3 / f"AMSR_E_L3_DailyLand_V06_{day(i):%Y%m%d}.hdf", fields)
    (land3 / f"AMSR_E_L3_DailyLand_V06_{day(3):%Y%m%d}.hdf").write_text("not an HDF4 file")
    tb_index, ref = discover_tb(str(land3)), discover_ref(f"{twin}/era_interim")
    assert tb_index.product == NSIDC and len(tb_index.files) == 3
    out = str(tmp_path / "land3.zarr")
    cube.create_or_extend(out, None, GRID, day(1), day(3), surface_fractions(GRID)["land"])
    ctx = DayContext(out, StorageConfig(), GRID, QC)
    assert ingest_day(make_job(day(2), tb_index, ref), ctx)["status"] == "ok"
    got = cube.read_day(out, None, day(2))
    inside = np.abs(GRID.lat) < 85
    for p, pass_ in enumerate("AD"):
        src = source_tb(twin, day(2), pass_)
        ok = valid(src) & inside[:, None]
        np.testing.assert_allclose(got["tb"][p][:, ok], src[:, ok], rtol=0, atol=0.0501)  # stored in 0.1 K counts
        assert (got["qc"][p] & FLAGS["composited"]).any()  # filled from day 1's file, same pass
    res = ingest_day(make_job(day(3), tb_index, ref), ctx)
    assert res["status"] == "skipped" and "not a readable HDF4 file" in res["reason"]
    assert "AMSR_E_L3_DailyLand_V06_20110703.hdf" in res["reason"]


# --------------------------------------------------------------------------------------------
# Bad input: the day is skipped and recorded, the run completes, nothing half-written
# --------------------------------------------------------------------------------------------
def _corrupt_archive(src: Path, dst: Path) -> dict[int, tuple[str, str]]:
    """A copy of the twin with one kind of bad input per day → {day: (file name, reason text)}."""
    shutil.copytree(src / "amsr", dst / "amsr")
    shutil.copytree(src / "era_interim", dst / "era_interim")
    bad: dict[int, tuple[str, str]] = {}
    # day 2: a truncated HDF5 file
    f = amsr(dst, day(2), "A", "06")
    f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])
    bad[2] = (f.name, "corrupt or truncated HDF5")
    # day 3: a valid JAXA file on an unexpected (4 degree) grid
    f = amsr(dst, day(3), "D", "10")
    f.write_bytes(write_jaxa_l3(np.full((45, 90), 200.0), np.full((45, 90), 210.0)))
    bad[3] = (f.name, "coarser than the cube grid")
    # day 4: an HDF5 file missing its datasets
    f = amsr(dst, day(4), "A", "10")
    f.unlink()
    with h5py.File(f, "w") as h:
        h.create_dataset("Soil Moisture", data=np.zeros((90, 180), np.uint16))
    bad[4] = (f.name, "not found")
    # day 5: every file of the day removed
    for p in "AD":
        for band in ("06", "10"):
            amsr(dst, day(5), p, band).unlink()
    bad[5] = ("", "no brightness-temperature file")
    # day 6: a listed object that cannot be read (a dangling link)
    f = amsr(dst, day(6), "D", "06")
    f.unlink()
    f.symlink_to(dst / "gone" / f.name)
    bad[6] = (f.name, "file not found")
    # day 7: a corrupt netCDF reference (a daily file beats the monthly one for its day)
    monthly = dst / "era_interim/2011/ERA-Interim_swvl1_201107.nc"
    data = bytearray(monthly.read_bytes())
    data[4:200] = b"\xff" * 196
    f = monthly.with_name("ERA-Interim_swvl1_20110707.nc")
    f.write_bytes(bytes(data))
    bad[7] = (f.name, "corrupt netCDF")
    # day 8: an all-missing day (every pixel of every file is fill)
    for p in "AD":
        for band in ("06", "10"):
            amsr(dst, day(8), p, band).write_bytes(write_jaxa_l3(np.full((90, 180), np.nan),
                                                                 np.full((90, 180), np.nan)))
    bad[8] = ("", "no observed pixel")
    return bad


@pytest.mark.ray
def test_bad_input_days_are_skipped_and_recorded(twin: Path, config: Path, tmp_path: Path, capsys) -> None:
    archive = tmp_path / "bad"
    bad = _corrupt_archive(twin, archive)
    out = tmp_path / "bad.zarr"
    assert ingest_twin(archive, out, start=day(1), end=day(DAYS), config=config) == 0
    printed = capsys.readouterr().out
    assert f"{len(bad)} skipped" in printed
    ds = cube.open_cube(str(out))
    log = {e["date"]: e for e in json.loads(ds.attrs["ingest_log"])}
    assert set(log) == {day(i).isoformat() for i in bad}
    assert ds.attrs["days_skipped"] == len(bad) and ds.attrs["days_ok"] == DAYS - len(bad)
    for i, (name, why) in bad.items():
        entry = log[day(i).isoformat()]
        assert why in entry["reason"] and name in entry["reason"], entry
        assert "\n" not in entry["reason"]
        if name:
            assert [Path(u).name for u in entry["files"]] == [name]
        assert f"{day(i)} SKIPPED" in printed
        # no half-written day: its TB and reference chunks are absent, its QC says day_missing
        assert not (out / f"tb/c/{i - 1}/0/0/0/0").exists()
        assert not (out / f"swvl1/c/{i - 1}/0/0").exists()
        assert (ds["qc"].isel(time=i - 1).values == FLAGS["day_missing"]).all()
        assert np.isnan(ds["tb"].isel(time=i - 1).values).all()
    for i in (1, DAYS):
        assert (out / f"tb/c/{i - 1}/0/0/0/0").exists()
    # the day after the truncated file still ingests (it only loses that pass's fill) ...
    rec = cube.day_records(str(out))
    assert rec[day(1)]["status"] == "ok"
    assert rec[day(DAYS)]["status"] == "ok"  # ... and the day after the all-missing day too


@pytest.mark.ray
def test_previous_day_problems_cost_only_the_fill(twin: Path, full_cube: Path, config: Path, tmp_path: Path) -> None:
    archive = tmp_path / "prev"
    shutil.copytree(twin / "amsr", archive / "amsr")
    shutil.copytree(twin / "era_interim", archive / "era_interim")
    f = amsr(archive, day(2), "A", "06")
    f.write_bytes(f.read_bytes()[:1000])
    out = tmp_path / "prev.zarr"
    assert ingest_twin(archive, out, start=day(3), end=day(3), config=config) == 0
    rec = cube.day_records(str(out))[day(3)]
    assert rec["status"] == "ok" and any(f.name in n and "not composited" in n for n in rec["notes"])
    got, full = cube.read_day(str(out), None, day(3)), cube.read_day(str(full_cube), None, day(3))
    assert not (got["qc"][0] & FLAGS["composited"]).any()  # pass A: no fill from the bad day before
    np.testing.assert_array_equal(got["tb"][1], full["tb"][1])  # pass D: as in the clean run
    np.testing.assert_array_equal(got["qc"][1], full["qc"][1])


# --------------------------------------------------------------------------------------------
# Re-runs: appending, resuming after a kill
# --------------------------------------------------------------------------------------------
def _chunks(root: Path) -> dict[str, tuple[int, bytes]]:
    return {str(p.relative_to(root)): (p.stat().st_mtime_ns, p.read_bytes())
            for name in cube.TIME_VARS for p in (root / name / "c").rglob("*") if p.is_file()}


@pytest.mark.ray
def test_append_later_days_leaves_earlier_chunks_alone(twin: Path, config: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "append.zarr"
    assert ingest_twin(twin, out, start=day(1), end=day(3), config=config) == 0
    before = _chunks(out)
    assert len(before) == 3 * 3
    assert ingest_twin(twin, out, start=day(1), end=day(3), config=config) == 0  # a re-run does nothing
    assert "stage ingest: done already (cube census complete: 3 days" in capsys.readouterr().out
    assert ingest_twin(twin, out, start=day(4), end=day(5), config=config) == 0
    assert "2 days written, 0 skipped, 0 already done" in capsys.readouterr().out
    after = _chunks(out)
    assert {k: after[k] for k in before} == before  # same bytes, same mtimes
    assert len(after) == 5 * 3
    ds = xr.open_zarr(out)
    assert ds.sizes["time"] == 5 and str(ds["time"].values[-1])[:10] == day(5).isoformat()
    assert ds.attrs["days_ok"] == 5


def _session_members(sid: int) -> list:
    """Live (non-zombie) processes of the session ``sid``: the ingest we started and all it started."""
    import psutil

    out = []
    for proc in psutil.process_iter(["pid"]):
        try:
            if os.getsid(proc.pid) == sid and proc.status() != psutil.STATUS_ZOMBIE:
                out.append(proc)
        except (ProcessLookupError, PermissionError, psutil.NoSuchProcess):
            continue
    return out


@pytest.mark.ray
@pytest.mark.slow
def test_killed_ingest_rerun_equals_uninterrupted(twin: Path, full_cube: Path, config: Path, tmp_path: Path) -> None:
    import psutil

    out = tmp_path / "killed.zarr"
    slow = tmp_path / "one-at-a-time.yaml"
    write_config(slow, grid={"res": RES}, ingest={"max_concurrency": 1}, ray={"num_cpus": 1})
    cmd = [sys.executable, "-m", "pipelines.ingest", "--tb", f"{twin}/amsr", "--ref", f"{twin}/era_interim",
           "--start", day(1).isoformat(), "--end", day(DAYS).isoformat(), "--out", str(out), "--config", str(slow)]
    log = tmp_path / "killed.log"
    with open(log, "wb") as fh:
        proc = subprocess.Popen(cmd, cwd=REPO, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
    records = out / cube.RECORDS
    deadline = time.monotonic() + 120
    try:
        while not (records.exists() and len(list(records.glob("*.json"))) >= 2):
            assert proc.poll() is None, f"ingest ended before it could be killed:\n{log.read_text()[-2000:]}"
            assert time.monotonic() < deadline, "no completion records after 120 s"
            time.sleep(0.02)
    finally:
        members = _session_members(proc.pid)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        # Ray puts its workers in process groups of their own (same session): end them by PID too
        for p in members + _session_members(proc.pid):
            try:
                p.kill()
            except psutil.NoSuchProcess:
                pass
        until = time.monotonic() + 20
        while _session_members(proc.pid) and time.monotonic() < until:
            time.sleep(0.1)
        assert not _session_members(proc.pid), f"survivors of the killed ingest: {_session_members(proc.pid)}"
    done = len(list(records.glob("*.json")))
    assert 2 <= done < DAYS, f"kill came too late ({done} of {DAYS} days recorded)"

    assert ingest_twin(twin, out, start=day(1), end=day(DAYS), config=config) == 0
    a, b = xr.open_zarr(out), xr.open_zarr(full_cube)
    for name in ("tb", "qc", "swvl1", "land_fraction", "time", "lat", "lon", "pass", "channel"):
        np.testing.assert_array_equal(a[name].values, b[name].values, err_msg=name)  # NaN equals NaN
    assert a.attrs["ingest_log"] == b.attrs["ingest_log"] and a.attrs["days_ok"] == DAYS


# --------------------------------------------------------------------------------------------
# Settings and storage
# --------------------------------------------------------------------------------------------
def _cfg(**ingest: str):
    """A config with the ingest settings given as the old flags name them (tb, ref, out, start, end)."""
    from smray.config import load_config

    where = {"tb": "tb", "ref": "ref", "out": "cube"}
    paths = {where[k]: v for k, v in ingest.items() if k in where}
    paths["ingest"] = {k: v for k, v in ingest.items() if k in ("start", "end")}
    return load_config(None, {"grid": {"res": RES}, "paths": paths})


@pytest.mark.parametrize("drop", ["tb", "ref", "out", "start", "end"])
def test_missing_setting_fails_with_one_line(tmp_path: Path, drop: str) -> None:
    from smray.stages.ingest import ingest_days as run_ingest

    settings = {"tb": str(tmp_path), "ref": str(tmp_path), "out": str(tmp_path / "c.zarr"),
                "start": "2011-07-01", "end": "2011-07-02"}
    settings.pop(drop)
    with pytest.raises(SmrayError) as err:
        run_ingest(_cfg(**settings), progress=lambda _: None)
    field = {"out": "cube", "start": "ingest", "end": "ingest"}.get(drop, drop)
    assert str(err.value).startswith(f"paths.{field}") and "required value is missing" in str(err.value)
    assert "\n" not in str(err.value)


def test_nothing_discovered_fails_with_one_line(tmp_path: Path) -> None:
    from smray.stages.ingest import ingest_days as run_ingest

    (tmp_path / "tb").mkdir()
    (tmp_path / "tb" / "readme.txt").write_text("x")
    cfg = _cfg(tb=str(tmp_path / "tb"), ref=str(tmp_path), out=str(tmp_path / "c.zarr"), start="2011-07-01",
               end="2011-07-02")
    with pytest.raises(SmrayError, match=r"^paths\.tb: no brightness-temperature files under .*1 files listed"):
        run_ingest(cfg, progress=lambda _: None)
    assert not (tmp_path / "c.zarr" / "zarr.json").exists()


def test_unreachable_s3_fails_fast(tmp_path: Path, monkeypatch) -> None:
    import socket

    from smray.stages.ingest import ingest_days as run_ingest

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "k")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-to-be-printed")
    cfg = _cfg(tb="s3://nowhere/amsr", ref="s3://nowhere/era", out=str(tmp_path / "c"), start="2011-07-01",
               end="2011-07-02")
    t0 = time.monotonic()
    with pytest.raises(SmrayError) as err:
        run_ingest(cfg, progress=lambda _: None)
    text = str(err.value)
    assert text.startswith("paths.tb: s3://nowhere/amsr: cannot reach S3 endpoint") and f"127.0.0.1:{port}" in text
    assert "not-to-be-printed" not in text and time.monotonic() - t0 < 30


@pytest.mark.ray
def test_other_qc_settings_on_an_existing_cube_are_refused(twin: Path, full_cube: Path, tmp_path: Path) -> None:
    from smray.config import load_config
    from smray.stages.ingest import ingest_days as run_ingest

    other = tmp_path / "c.yaml"
    write_config(other, grid={"res": RES}, qc={"composite_days": 1})
    cfg = load_config(other, {"paths": {"tb": f"{twin}/amsr", "ref": f"{twin}/era_interim", "cube": str(full_cube),
                                        "ingest": {"start": day(1).isoformat(), "end": day(2).isoformat()}}})
    with pytest.raises(SmrayError, match="other qc settings"):
        run_ingest(cfg, progress=lambda _: None)


@pytest.mark.ray
@pytest.mark.s3
def test_twin_and_cube_on_local_s3(s3_bucket: str, ray_local, tmp_path: Path) -> None:
    import s3fs

    twin = f"{s3_bucket}/twin"
    build_twin(twin, start=START, days=2, res=RES, seed=0, spinup_days=2)
    out = f"{s3_bucket}/cube.zarr"
    config = write_config(tmp_path / "c.yaml", grid={"res": RES})
    assert ingest_twin(twin, out, start=day(1), end=day(2), config=config) == 0
    ds = cube.open_cube(out)
    assert ds.attrs["days_ok"] == 2 and ds.sizes["time"] == 2
    fs = s3fs.S3FileSystem()
    key = f"{twin.removeprefix('s3://')}/amsr/2011/07/GW1AM2_20110702_01D_EQMD_L3SGT10LA2220220.h5"
    with fs.open(key) as fh, h5py.File(fh, "r") as f:
        raw = f["Brightness Temperature (V)"][()]
    src = np.roll(np.where(raw >= 65534, np.nan, raw * 0.01).astype(np.float32), -90, axis=1)
    got = ds["tb"].isel(time=1, **{"pass": 1}, channel=3).values
    qc = ds["qc"].isel(time=1, **{"pass": 1}).values
    today = ((qc & (FLAGS["composited"] | FLAGS["no_observation"])) == 0) & np.isfinite(src)
    assert today.sum() > 1000
    np.testing.assert_array_equal(got[today], src[today])
    assert fs.exists(f"{out.removeprefix('s3://')}/{cube.RECORDS}/{day(2).isoformat()}.json")
