"""A real two-node Ray cluster on this machine: two network namespaces joined by a veth pair, a head
in one and a worker in the other, 2 CPUs each; only the worker has the custom resource ``node_b``.
The driver runs ``smray synth``, ``smray ingest`` and ``smray predict`` (the physical retrieval: no
training) from the head's namespace with ``ingest.task_resources`` and ``predict.task_resources``
asking for ``node_b``; Ray's state API shows every day task and the predict actor ran on the second
node, and the cube and the maps equal a single-node run of the same input.

Needs root and ``ip netns`` (skipped otherwise). Traffic stays on the veth pair (10.213.x.0/30)
and loopback; the namespaces, the veth pair and every process in them are removed at the end.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

REPO = Path(__file__).resolve().parents[1]
RAY = str(Path(sys.executable).with_name("ray"))
START = dt.date(2011, 7, 1)
DAYS = 3
END = START + dt.timedelta(days=DAYS - 1)
RES = 2.0
GCS_PORT = 6390
DASHBOARD_PORT = 8265

pytestmark = [pytest.mark.slow, pytest.mark.ray]


@dataclass(frozen=True)
class TwoNodes:
    """A running two-node cluster: namespaces, addresses, and how to reach it."""

    ns_head: str
    ns_worker: str
    head_ip: str
    worker_ip: str
    temp_dir: Path

    @property
    def address(self) -> str:
        return f"{self.head_ip}:{GCS_PORT}"

    @property
    def dashboard(self) -> str:
        return f"http://{self.head_ip}:{DASHBOARD_PORT}"


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30, check=check)


def _ray_env() -> dict[str, str]:
    """The environment of the cluster's processes: no token auth, no usage reporting, and without
    the flag that pins a local runtime to 127.0.0.1 (conftest sets it; a cluster needs its node IPs)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "AWS_"))}
    env.update({"RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0", "PYTHONUNBUFFERED": "1"})
    return env


def _in_ns(ns: str, argv: list[str], timeout: float, cwd: Path = REPO) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", "netns", "exec", ns, *argv], cwd=cwd, env=_ray_env(), capture_output=True,
                          text=True, timeout=timeout)


def _ns_pids(ns: str) -> list[int]:
    out = _ip("netns", "pids", ns, check=False).stdout
    return [int(p) for p in out.split()]


def _stop_namespace_processes(namespaces: list[str]) -> None:
    """SIGTERM, then SIGKILL, every process inside our own namespaces (only this test puts any there)."""
    for sig, wait in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
        pids = [p for ns in namespaces for p in _ns_pids(ns)]
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        until = time.monotonic() + wait
        while any(_ns_pids(ns) for ns in namespaces) and time.monotonic() < until:
            time.sleep(0.1)


def _netns_usable() -> str | None:
    """None when network namespaces can be made here, else why not."""
    if shutil.which("ip") is None:
        return "the ip command is not installed"
    probe = f"smrayprobe{uuid.uuid4().hex[:6]}"
    made = _ip("netns", "add", probe, check=False)
    if made.returncode != 0:
        return f"ip netns add is not permitted here ({made.stderr.strip()[:120]})"
    _ip("netns", "del", probe, check=False)
    return None


@pytest.fixture(scope="module")
def two_nodes() -> Iterator[TwoNodes]:
    why = _netns_usable()
    if why:
        pytest.skip(why)
    tag = uuid.uuid4().hex[:6]
    net = random.randrange(1, 255)
    nodes = TwoNodes(ns_head=f"smray-a-{tag}", ns_worker=f"smray-b-{tag}", head_ip=f"10.213.{net}.1",
                     worker_ip=f"10.213.{net}.2", temp_dir=Path(f"/tmp/rn{tag}"))  # short: Unix socket paths
    veth_a, veth_b = f"sva{tag}", f"svb{tag}"
    made: list[str] = []
    try:
        for ns in (nodes.ns_head, nodes.ns_worker):
            _ip("netns", "add", ns)
            made.append(ns)
        _ip("link", "add", veth_a, "type", "veth", "peer", "name", veth_b)
        _ip("link", "set", veth_a, "netns", nodes.ns_head)
        _ip("link", "set", veth_b, "netns", nodes.ns_worker)
        for ns, dev, ip in ((nodes.ns_head, veth_a, nodes.head_ip), (nodes.ns_worker, veth_b, nodes.worker_ip)):
            _ip("-n", ns, "addr", "add", f"{ip}/30", "dev", dev)
            _ip("-n", ns, "link", "set", dev, "up")
            _ip("-n", ns, "link", "set", "lo", "up")
        nodes.temp_dir.mkdir()
        head = _in_ns(nodes.ns_head, [RAY, "start", "--head", "--node-ip-address", nodes.head_ip, "--port",
                                      str(GCS_PORT), "--num-cpus", "2", "--temp-dir", str(nodes.temp_dir),
                                      "--disable-usage-stats", "--include-dashboard=true", "--dashboard-host",
                                      nodes.head_ip, "--dashboard-port", str(DASHBOARD_PORT)], timeout=180)
        assert head.returncode == 0, f"ray start --head failed:\n{(head.stdout + head.stderr)[-3000:]}"
        worker = _in_ns(nodes.ns_worker, [RAY, "start", "--address", nodes.address, "--node-ip-address",
                                          nodes.worker_ip, "--num-cpus", "2", "--resources", '{"node_b": 100}',
                                          "--temp-dir", str(nodes.temp_dir), "--disable-usage-stats"], timeout=180)
        assert worker.returncode == 0, f"ray start (worker) failed:\n{(worker.stdout + worker.stderr)[-3000:]}"
        yield nodes
    finally:
        _stop_namespace_processes(made)
        for ns in made:
            _ip("netns", "del", ns, check=False)  # takes the veth pair with it
        shutil.rmtree(nodes.temp_dir, ignore_errors=True)
        leftover = [ns for ns in made if ns in _ip("netns", "list", check=False).stdout]
        assert not leftover, f"network namespaces left behind: {leftover}"


#: Runs in the head's namespace: the given smray commands against the cluster, then what Ray's
#: state API knows about the tasks (name, node IP, state) and the nodes, as JSON.
DRIVER = textwrap.dedent("""\
    import json, sys, time
    args = json.loads(sys.argv[1])
    from smray.cli import main
    for argv in args["commands"]:
        rc = main(argv)
        if rc != 0:
            sys.exit(f"driver: {argv[0]} exited {rc}")
    import ray
    from ray.util.state import list_tasks
    ray.init(address=args["address"], logging_level="WARNING")
    nodes = {n["NodeID"]: n["NodeManagerAddress"] for n in ray.nodes() if n["Alive"]}
    until = time.monotonic() + 30
    while True:  # task events reach the state API asynchronously
        tasks = [{"name": t.name, "node": nodes.get(t.node_id), "state": str(t.state)}
                 for t in list_tasks(address=args["dashboard"], limit=10000, raise_on_missing_output=False)]
        done = all(sum(name in t["name"] and t["state"].endswith("FINISHED") for t in tasks) >= n
                   for name, n in args["wait_for"])
        if done or time.monotonic() > until:
            break
        time.sleep(1)
    with open(args["out"], "w") as fh:
        json.dump({"nodes": sorted(nodes.values()), "tasks": tasks,
                   "resources": ray.cluster_resources()}, fh)
""")


def _write_config(path: Path, address: str | None) -> Path:
    """The two-node config asks for the worker-only resource ``node_b`` for every ingest day task and
    predict actor (the head has CPUs too, so only that resource keeps the work off it)."""
    if address:
        ray = (f"ray:\n  address: {address}\ningest:\n  task_resources: {{node_b: 1}}\n"
               f"predict:\n  task_resources: {{node_b: 1}}\n")
    else:
        ray = "ray:\n  num_cpus: 2\n"
    path.write_text(f"grid:\n  res: {RES}\n{ray}")
    return path


def _on_node(tasks: list[dict], name: str) -> list[str | None]:
    """Node IPs of the finished tasks whose name contains ``name``."""
    return [t["node"] for t in tasks if name in t["name"] and t["state"].endswith("FINISHED")]


def test_ingest_and_predict_on_the_second_node_equal_a_single_node_run(two_nodes: TwoNodes, tmp_path: Path,
                                                                       request) -> None:
    twin = tmp_path / "twin"
    cfg = _write_config(tmp_path / "cluster.yaml", two_nodes.address)
    span = ["--start", START.isoformat(), "--end", END.isoformat()]

    def ingest(out: Path, config: Path) -> list[str]:
        return ["ingest", "--tb", f"{twin}/amsr", "--ref", f"{twin}/era_interim", *span, "--out", str(out),
                "--config", str(config)]

    def predict(cube_url: Path, out: Path, config: Path) -> list[str]:  # the physical retrieval: no training
        return ["predict", "--cube", str(cube_url), "--model", "physical", "--twin", str(twin), *span,
                "--out", str(out), "--config", str(config)]

    (tmp_path / "driver.py").write_text(DRIVER)
    report = tmp_path / "report.json"
    args = {
        "address": two_nodes.address, "dashboard": two_nodes.dashboard, "out": str(report),
        "wait_for": [["ingest_row", DAYS], ["PredictDay", 1]],
        "commands": [
            ["synth", "--out", str(twin), "--start", START.isoformat(), "--days", str(DAYS), "--res", str(RES),
             "--spinup-days", "2", "--seed", "5", "--config", str(cfg)],
            ingest(tmp_path / "cube-2n.zarr", cfg),
            predict(tmp_path / "cube-2n.zarr", tmp_path / "maps-2n.zarr", cfg),
        ],
    }
    run = _in_ns(two_nodes.ns_head, [sys.executable, str(tmp_path / "driver.py"), json.dumps(args)], timeout=300)
    assert run.returncode == 0, f"driver failed:\n{(run.stdout + run.stderr)[-4000:]}"
    assert f"ingest: {DAYS} days written, 0 skipped" in run.stdout

    # the cluster really had two nodes with CPUs on both, and the work that asked for the worker-only
    # resource ran on the worker
    seen = json.loads(report.read_text())
    assert seen["nodes"] == sorted([two_nodes.head_ip, two_nodes.worker_ip])
    assert seen["resources"].get("node_b") == 100 and seen["resources"]["CPU"] == 4
    days_at = _on_node(seen["tasks"], "ingest_row")
    assert len(days_at) >= DAYS, f"state API saw {len(days_at)} finished day tasks: {seen['tasks']}"
    assert set(days_at) == {two_nodes.worker_ip}
    predict_at = set(_on_node(seen["tasks"], "PredictDay")) - {None}  # a task without a node id says nothing
    assert predict_at == {two_nodes.worker_ip}, seen["tasks"]

    # the same input on one node (a local runtime in this process) gives the same cube and maps
    request.getfixturevalue("ray_local")
    from smray.cli import main

    local = _write_config(tmp_path / "local.yaml", None)
    assert main(ingest(tmp_path / "cube-1n.zarr", local)) == 0
    assert main(predict(tmp_path / "cube-1n.zarr", tmp_path / "maps-1n.zarr", local)) == 0
    a, b = xr.open_zarr(tmp_path / "cube-2n.zarr"), xr.open_zarr(tmp_path / "cube-1n.zarr")
    assert a.attrs["days_ok"] == b.attrs["days_ok"] == DAYS
    for i in range(DAYS):  # day by day (NaN equals NaN)
        for name in ("tb", "qc", "swvl1"):
            np.testing.assert_array_equal(a[name].isel(time=i).values, b[name].isel(time=i).values,
                                          err_msg=f"{name} day {i}")
    for name in ("land_fraction", "time", "lat", "lon"):
        np.testing.assert_array_equal(a[name].values, b[name].values, err_msg=name)
    assert int(np.isfinite(a["tb"].values).sum()) > 1000  # the comparison is over real data

    m2, m1 = xr.open_zarr(tmp_path / "maps-2n.zarr"), xr.open_zarr(tmp_path / "maps-1n.zarr")
    assert sorted(m2.data_vars) == sorted(m1.data_vars) and m2.sizes["time"] == DAYS
    for name in m2.data_vars:
        if "time" not in m2[name].dims:  # grid mapping and other static variables
            np.testing.assert_array_equal(m2[name].values, m1[name].values, err_msg=f"maps {name}")
            continue
        for i in range(DAYS):
            np.testing.assert_array_equal(m2[name].isel(time=i).values, m1[name].isel(time=i).values,
                                          err_msg=f"maps {name} day {i}")
    sm = next(v for v in m2.data_vars if str(v).startswith("soil_moisture"))
    assert int(np.isfinite(m2[sm].values).sum()) > 100
