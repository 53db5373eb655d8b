"""``ray job submit`` of the whole chain (pipelines/reprocess.py with cluster/configs/local.yaml)
to an autoscaling cluster that starts from zero: a head with no CPUs started with
``ray start --head --autoscaling-config cluster/fake-autoscaler.yaml`` (Ray's fake multi-node
provider, which starts worker nodes as local processes when work asks for them). The job ships the
repository as its working directory, its stages ask for what they need, the autoscaler brings the
worker nodes, and the job SUCCEEDS with a model, complete map stores, a report and a cube equal to
a single-node ingest of the same twin. The head (and the nodes its autoscaler started) is stopped by killing exactly
the processes of its session."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from smray import cube as cubemod
from smray import mapstore
from smray.testing import (JOB_EXCLUDES, fake_autoscaling_cluster, head_processes, ingest_twin, job_client,
                           write_config)

pytestmark = [pytest.mark.ray]  # in CI (~100 s): ray job submit on a fake autoscaling cluster

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
CONFIG = "cluster/configs/local.yaml"


@pytest.fixture(scope="module")
def head() -> Iterator[dict]:
    with fake_autoscaling_cluster(REPO, bin_dir=BIN) as cluster:
        yield cluster


def test_ray_job_submit_runs_the_whole_chain(head: dict, tmp_path: Path) -> None:
    root = tmp_path / "out"
    client = job_client(head["address"])
    job_id = f"smray-test-{uuid.uuid4().hex[:8]}"
    cmd = [str(BIN / "ray"), "job", "submit", "--address", head["address"], "--submission-id", job_id,
           "--working-dir", ".", "--runtime-env-json", json.dumps({"excludes": JOB_EXCLUDES}), "--",
           "python", "-m", "pipelines.reprocess", "--config", CONFIG, "--root", str(root)]
    done = subprocess.run(cmd, cwd=REPO, env=head["env"], capture_output=True, text=True, timeout=600)
    status = client.get_job_status(job_id)
    logs = client.get_job_logs(job_id)
    assert str(status).endswith("SUCCEEDED"), done.stdout[-4000:] + done.stderr[-4000:]
    assert done.returncode == 0
    info = client.get_job_info(job_id)
    assert str(info.runtime_env["working_dir"]).startswith("gcs://")  # the repository was shipped
    # ... and unpacked by the head (the driver) and by worker nodes, each in its own directory
    # (cluster/fake_provider.py: a shared one is re-unpacked under running processes by each new node)
    pkg = Path(str(info.runtime_env["working_dir"])[len("gcs://"):]).stem
    unpacked = sorted(p.parent.parent.name for p in
                      (Path(head["temp_dir"]) / "session_latest").glob(f"runtime_resources*/working_dir_files/{pkg}"))
    assert unpacked[0] == "runtime_resources" and unpacked[1:] and \
        all(n.startswith("runtime_resources_node") for n in unpacked[1:]), unpacked
    last = [ln for ln in logs.splitlines() if ln.startswith("reprocess: done in ")]
    assert last and f"cube {root}/cube.zarr" in last[-1] and f"report {root}/report" in last[-1]
    for stage in ("twin", "ingest", "train:cnn", "predict:cnn", "predict:physical", "evaluate"):
        assert f"stage {stage}: running (" in logs
    # the head has no CPUs: the stages asked, and the autoscaler started worker nodes for them
    assert "ray: the twin's day tasks: 2 CPU up after " in logs, logs[-3000:]
    from ray.util.state import list_nodes

    nodes = list_nodes(address=head["address"], detail=True)
    workers = [n for n in nodes if not n.is_head_node]
    assert workers, nodes
    assert all(n.resources_total.get("CPU") == 2 for n in workers)  # the cpu_worker type of the config
    assert [n for n in nodes if n.is_head_node][0].resources_total.get("CPU", 0) == 0
    # the outputs are there and valid, and the cube equals a single-node run of the same settings
    census = cubemod.census(str(root / "cube.zarr"))
    assert census.complete and len(census.ok) == 3
    single = tmp_path / "single.zarr"  # the job's twin ingested again on this machine's local runtime
    ingest_twin(root / "twin", single, start=dt.date(2011, 7, 1), end=dt.date(2011, 7, 3),
                config=write_config(tmp_path / "single.yaml", grid={"res": 2.0}))
    a, b = cubemod.open_cube(str(root / "cube.zarr")), cubemod.open_cube(str(single))
    for name in ("tb", "qc", "swvl1", "land_fraction"):
        np.testing.assert_array_equal(a[name].values, b[name].values, err_msg=name)
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


def test_what_the_cluster_never_brings_is_one_line_after_the_timeout(head: dict, tmp_path: Path) -> None:
    """GPUs from a cluster whose only worker type has none: the stage asks, waits ray.resource_timeout_s
    with progress lines, then ends in one line naming what was asked, what came and how long it waited."""
    script = tmp_path / "ask.py"
    script.write_text(
        "import sys\n"
        "from smray import raysupport as rs\n"
        "from smray.config import RayConfig\n"
        "from smray.errors import SmrayError\n"
        f"rs.init_ray(RayConfig(address={head['gcs']!r}))\n"
        "try:\n"
        "    rs.wait_for_resources({'GPU': 2.0}, what=\"the train stage's 2 GPU worker(s)\", field='train.use_gpu',\n"
        "                          timeout_s=4, poll_s=0.5, report_every_s=1.5)\n"
        "except SmrayError as err:\n"
        "    print('ERROR', err)\n"
        "    sys.exit(2)\n")
    env = {**head["env"], "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 2, done.stdout[-2000:] + done.stderr[-2000:]
    lines = done.stdout.splitlines()
    assert any(ln.startswith("waiting for the train stage's 2 GPU worker(s): 0/2 GPU up, ") for ln in lines), lines
    err = [ln for ln in lines if ln.startswith("ERROR ")]
    assert len(err) == 1 and err[0].startswith("ERROR train.use_gpu: waited ") and \
        err[0].endswith("for the train stage's 2 GPU worker(s) (2 GPU); the cluster brought 0 GPU "
                        "(ray.resource_timeout_s)"), err


def test_the_head_is_stopped_by_its_own_processes_only(head: dict) -> None:
    """The fixture's stop finds the head's processes by its temp dir: here they exist and are all
    this session's (gcs_server, raylet, dashboard ...), so stopping them touches no other cluster."""
    procs = head_processes(head["temp_dir"])
    names = {p.name() for p in procs}
    assert any("gcs_server" in n for n in names) and any("raylet" in n for n in names)
