"""Faults during ingest: a Ray worker killed in the middle of a day task, and the S3 endpoint going
away for a while. Neither may cost a day or leave a corrupt store: the cube ends up equal to an
uninterrupted run's. (Corrupt input files are covered in tests/test_ingest.py:
test_bad_input_days_are_skipped_and_recorded and test_previous_day_problems_cost_only_the_fill.)

Ray Data retries a task whose worker died (its map tasks run with ``max_retries=-1``), and a
retried day task rewrites the same chunks before its completion record, so a kill needs no help
from smray. An S3 outage is met by botocore's retries (``storage.s3.max_attempts``); a day whose
requests still fail comes back as status "error" (an unreachable endpoint is never recorded as bad
input, :func:`smray.storage.is_transient`), the run ends with one line, and the re-run does every day
without an "ok" record. The outage here ends before the run's final census; a census while the
endpoint is down ends in one line too ("cannot finalize the cube … re-run to finish")."""

from __future__ import annotations

import datetime as dt
import shutil
import threading
import time
import uuid
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from smray import cube
from smray.config import load_config
from smray.errors import SmrayError
from smray.testing import build_twin

START = dt.date(2011, 7, 1)
DAYS = 6
END = START + dt.timedelta(days=DAYS - 1)
RES = 2.0

pytestmark = [pytest.mark.slow, pytest.mark.ray]


def _cfg(tb: str, ref: str, out: str, **ingest: object):
    return load_config(None, {"grid": {"res": RES}, "ingest": ingest,
                              "paths": {"tb": tb, "ref": ref, "cube": out,
                                        "ingest": {"start": START.isoformat(), "end": END.isoformat()}}})


def _assert_same_cube(got: str, want: Path) -> None:
    a, b = cube.open_cube(got), xr.open_zarr(want)
    assert a.attrs["days_ok"] == b.attrs["days_ok"] == DAYS
    for name in ("tb", "qc", "swvl1", "land_fraction", "time", "lat", "lon"):
        np.testing.assert_array_equal(a[name].values, b[name].values, err_msg=name)  # NaN equals NaN
    assert a.attrs["ingest_log"] == b.attrs["ingest_log"]


@pytest.fixture(scope="module")
def twin(tmp_path_factory, ray_local) -> Path:
    return build_twin(tmp_path_factory.mktemp("twin") / "archive", start=START, days=DAYS, res=RES, seed=11,
                      spinup_days=2)


@pytest.fixture(scope="module")
def uninterrupted(twin: Path, tmp_path_factory) -> Path:
    from smray.stages.ingest import ingest_days as run_ingest

    out = tmp_path_factory.mktemp("ref") / "cube.zarr"
    run_ingest(_cfg(f"{twin}/amsr", f"{twin}/era_interim", str(out)), progress=lambda _: None)
    return out


# --------------------------------------------------------------------------------------------
# (a) a worker process killed in the middle of a day task
# --------------------------------------------------------------------------------------------
class DayTaskKiller(threading.Thread):
    """Watches this process's Ray workers (descendants of this pytest process only: other Ray
    runtimes on the machine are never looked at) and SIGKILLs the first one running a day task."""

    def __init__(self) -> None:
        super().__init__(daemon=True, name="day-task-killer")
        self.stop = threading.Event()
        self.killed: list[tuple[int, str]] = []

    def run(self) -> None:
        import psutil

        me = psutil.Process()
        while not self.stop.is_set() and not self.killed:
            for proc in me.children(recursive=True):
                try:
                    title = " ".join(proc.cmdline())
                    if title.startswith("ray::") and "ingest_row" in title:
                        proc.kill()
                        self.killed.append((proc.pid, title))
                        break
                except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                    continue
            time.sleep(0.005)


def test_worker_killed_mid_day_task_loses_nothing(twin: Path, uninterrupted: Path, tmp_path: Path) -> None:
    import psutil

    from smray.stages.ingest import ingest_days as run_ingest

    out = tmp_path / "killed.zarr"
    lines: list[str] = []
    killer = DayTaskKiller()
    killer.start()
    try:
        summary = run_ingest(_cfg(f"{twin}/amsr", f"{twin}/era_interim", str(out)), progress=lines.append)
    finally:
        killer.stop.set()
        killer.join(timeout=5)
    assert killer.killed, "no day task was caught running (nothing was killed)"
    pid, title = killer.killed[0]
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    # the run itself finished every day: no re-run needed
    assert sorted(summary.ok) == [START + dt.timedelta(days=i) for i in range(DAYS)], lines
    assert not summary.skipped and not any("FAILED" in line for line in lines)
    _assert_same_cube(str(out), uninterrupted)


# --------------------------------------------------------------------------------------------
# (b) the S3 endpoint stopped for a while during ingest, then back on the same port and data
# --------------------------------------------------------------------------------------------
def _records(fs, root: str) -> int:
    try:
        return len([n for n in fs.ls(f"{root}/{cube.RECORDS}", refresh=True) if n.endswith(".json")])
    except FileNotFoundError:
        return 0


def _stop_endpoint_like_an_outage(server) -> None:
    """End the moto server without losing a write it acknowledged, as a real endpoint outage would.

    moto keeps objects in memory, and :meth:`LocalS3.stop` snapshots them before it ends the
    process: a write acknowledged between the two would be lost, which no real S3 does (a day's
    record could then outlive its chunks). So this process's Ray workers are paused (SIGSTOP) while
    the server drains, snapshots and stops, and resumed (SIGCONT) once it is gone: every request
    they make from then on meets a closed port."""
    import psutil

    workers = []
    for proc in psutil.Process().children(recursive=True):  # only this test's own Ray runtime
        try:
            if " ".join(proc.cmdline()).startswith("ray::"):
                proc.suspend()
                workers.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    try:
        time.sleep(1.0)  # requests already sent are answered before the snapshot lists the objects
        server.stop()  # snapshot into data_dir, then end the moto process by its PID
    finally:
        for proc in workers:
            try:
                proc.resume()
            except psutil.NoSuchProcess:
                pass


@pytest.mark.s3
def test_s3_outage_during_ingest_never_corrupts_the_cube(twin: Path, uninterrupted: Path, tmp_path: Path,
                                                         monkeypatch) -> None:
    import s3fs

    from smray.stages.ingest import ingest_days as run_ingest
    from smray.s3server import LocalS3

    bucket = f"faults-{uuid.uuid4().hex[:8]}"
    data = tmp_path / "s3data"
    shutil.copytree(twin, data / bucket / "twin")  # the archive is on the endpoint from its start
    server = LocalS3(port=0, data_dir=data).start()
    port = server.port
    for key, value in server.env().items():
        monkeypatch.setenv(key, value)
    out = f"s3://{bucket}/cube.zarr"
    cfg = _cfg(f"s3://{bucket}/twin/amsr", f"s3://{bucket}/twin/era_interim", out, max_concurrency=1)
    fs = s3fs.S3FileSystem(client_kwargs={"endpoint_url": server.endpoint_url})
    outcome: dict[str, object] = {}
    back = threading.Event()
    lines: list[str] = []

    def progress(line: str) -> None:
        lines.append(line)
        if f"({DAYS}/{DAYS}," in line:  # the last day is in: the outage ends before the final census
            back.wait(120)              # (a census during an outage: see the module docstring)

    def ingest() -> None:
        try:
            outcome["summary"] = run_ingest(cfg, progress=progress)
        except Exception as err:  # noqa: BLE001 - the outcome is checked below
            outcome["error"] = err

    runner = threading.Thread(target=ingest, daemon=True)
    try:
        runner.start()
        deadline = time.monotonic() + 120
        while _records(fs, out.removeprefix("s3://")) < 1:
            assert runner.is_alive(), f"ingest ended before the outage: {outcome}"
            assert time.monotonic() < deadline, "no day finished within 120 s"
            time.sleep(0.05)
        down_pid = server.pid
        _stop_endpoint_like_an_outage(server)
        was_running = runner.is_alive()
        time.sleep(4.0)
        server = LocalS3(port=port, data_dir=data).start()  # same port, same objects
        back.set()
        assert server.pid != down_pid
        runner.join(timeout=240)
        assert not runner.is_alive(), "ingest hung after the endpoint came back"
        assert was_running, "the outage came after ingest had finished"
        failed = [line for line in lines if "FAILED" in line]
        skipped = [line for line in lines if "SKIPPED" in line]  # input unreadable while the endpoint was down
        print(f"outage: {len(failed)} day(s) failed, {len(skipped)} skipped during it; first run "
              f"{'ended: ' + str(outcome['error']) if 'error' in outcome else 'succeeded'}")
        # an unreachable endpoint is not bad input: such a day fails (and is retried), never "skipped"
        assert not skipped, skipped
        if "error" in outcome:  # one clear line, and it says a re-run finishes the job
            err = outcome["error"]
            assert isinstance(err, SmrayError), f"not a one-line smray error: {type(err).__name__}: {err}"
            assert "\n" not in str(err) and "re-run to retry them" in str(err) and failed
        else:
            assert not failed and not outcome["summary"].skipped and len(outcome["summary"].ok) == DAYS
        # never a corrupt store: every day recorded ok has all its chunks
        census = cube.census(out)
        assert not census.missing_chunks, census.missing_chunks
        assert census.ok and not census.skipped and len(census.ok) + len(census.pending) == DAYS

        # the re-run does the days the outage cost (failed or skipped), and the cube equals the uninterrupted one
        again = run_ingest(cfg, progress=lambda _: None)
        assert sorted(again.already_done) == sorted(census.ok) and not again.skipped
        assert len(again.ok) + len(again.already_done) == DAYS
        assert cube.census(out).complete
        _assert_same_cube(out, uninterrupted)
    finally:
        back.set()
        server.stop()
