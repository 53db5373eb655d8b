"""``ray job submit`` of the whole chain (pipelines/reprocess.py with cluster/configs/local.yaml)
against a real local head started with ``ray start --head``: the job ships the repository as its
working directory, its workers import smray from it, and it SUCCEEDS with a cube, a model, complete
map stores and a report. The head is stopped by killing exactly the processes it started."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from smray import cube as cubemod
from smray import mapstore

pytestmark = [pytest.mark.ray, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
CONFIG = "cluster/configs/local.yaml"
#: what the job must not upload (the .gitignore keeps .venv and .smray out too; this says it again)
EXCLUDES = [".git", ".venv", ".smray", ".pytest_cache", ".hypothesis"]


def free_ports(n: int) -> list[int]:
    socks = []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def head_processes(temp_dir: str) -> set[psutil.Process]:
    """The processes of the head whose session lives in ``temp_dir`` (their command lines name it),
    with all their descendants (workers)."""
    found: set[psutil.Process] = set()
    for p in psutil.process_iter(["cmdline"]):
        try:
            if any(temp_dir in arg for arg in (p.info["cmdline"] or [])):
                found.add(p)
                found.update(p.children(recursive=True))
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


def stop_head(temp_dir: str) -> None:
    procs = head_processes(temp_dir)
    for p in procs:
        try:
            p.terminate()
        except psutil.NoSuchProcess:
            pass
    _, alive = psutil.wait_procs(list(procs), timeout=15)
    for p in alive:
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(alive, timeout=5)


@pytest.fixture(scope="module")
def head() -> Iterator[dict]:
    temp_dir = tempfile.mkdtemp(prefix="rj", dir="/tmp")  # short: Ray's socket paths must stay < 108 chars
    gcs, dash, client, agent, agent_grpc, metrics, env_agent = free_ports(7)
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
           "RAY_USAGE_STATS_ENABLED": "0", "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    env.pop("RAY_ADDRESS", None)
    cmd = [str(BIN / "ray"), "start", "--head", "--port", str(gcs), "--node-ip-address", "127.0.0.1",
           "--dashboard-host", "127.0.0.1", "--dashboard-port", str(dash), "--include-dashboard", "true",
           "--ray-client-server-port", str(client), "--dashboard-agent-listen-port", str(agent),
           "--dashboard-agent-grpc-port", str(agent_grpc), "--metrics-export-port", str(metrics),
           "--runtime-env-agent-port", str(env_agent), "--num-cpus", "4", "--temp-dir", temp_dir,
           "--disable-usage-stats"]
    try:
        started = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
        assert started.returncode == 0, started.stdout + started.stderr
        yield {"address": f"http://127.0.0.1:{dash}", "env": env, "temp_dir": temp_dir}
    finally:
        stop_head(temp_dir)
        shutil.rmtree(temp_dir, ignore_errors=True)


def wait_for_job_server(address: str, timeout: float = 120.0) -> object:
    from ray.job_submission import JobSubmissionClient

    t0 = time.monotonic()
    while True:
        try:
            return JobSubmissionClient(address)
        except Exception:  # noqa: BLE001 - the dashboard comes up a few seconds after `ray start`
            if time.monotonic() - t0 > timeout:
                raise
            time.sleep(2)


def test_ray_job_submit_runs_the_whole_chain(head: dict, tmp_path: Path) -> None:
    root = tmp_path / "out"
    client = wait_for_job_server(head["address"])
    job_id = f"smray-test-{uuid.uuid4().hex[:8]}"
    cmd = [str(BIN / "ray"), "job", "submit", "--address", head["address"], "--submission-id", job_id,
           "--working-dir", ".", "--runtime-env-json", json.dumps({"excludes": EXCLUDES}), "--",
           "python", "-m", "pipelines.reprocess", "--config", CONFIG, "--root", str(root)]
    done = subprocess.run(cmd, cwd=REPO, env=head["env"], capture_output=True, text=True, timeout=600)
    status = client.get_job_status(job_id)
    logs = client.get_job_logs(job_id)
    assert str(status).endswith("SUCCEEDED"), done.stdout[-4000:] + done.stderr[-4000:]
    assert done.returncode == 0
    info = client.get_job_info(job_id)
    assert str(info.runtime_env["working_dir"]).startswith("gcs://")  # the repository was shipped
    last = [ln for ln in logs.splitlines() if ln.startswith("reprocess: done in ")]
    assert last and f"cube {root}/cube.zarr" in last[-1] and f"report {root}/report" in last[-1]
    for stage in ("twin", "ingest", "train:cnn", "predict:cnn", "predict:physical", "evaluate"):
        assert f"stage {stage}: running (" in logs
    # the outputs are there and valid
    census = cubemod.census(str(root / "cube.zarr"))
    assert census.complete and len(census.ok) == 3
    assert (root / "models/cnn/model.pt").exists()
    for kind in ("cnn", "physical"):
        mc = mapstore.census(str(root / "maps" / f"{kind}.zarr"))
        assert mc.complete and len(mc.ok) == 1, kind
    metrics = json.loads((root / "report/metrics.json").read_text())
    assert set(metrics["models"]) == {"cnn", "physical"}
    assert {"cube", "maps", "period", "models", "truth"} <= set(metrics)
    assert metrics["period"] == {"start": "2011-07-03", "end": "2011-07-03", "days": 1}
    for row in metrics["models"].values():
        assert row["n"] > 0 and {"r2", "rmse", "bias", "ubrmsd"} <= set(row)


def test_the_head_is_stopped_by_its_own_processes_only(head: dict) -> None:
    """The fixture's stop finds the head's processes by its temp dir: here they exist and are all
    this session's (gcs_server, raylet, dashboard ...), so stopping them touches no other cluster."""
    procs = head_processes(head["temp_dir"])
    names = {p.name() for p in procs}
    assert any("gcs_server" in n for n in names) and any("raylet" in n for n in names)
