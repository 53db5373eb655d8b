"""Local Ray runtimes stay on the loopback interface."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.ray

SCRIPT = """
import ray  # imported before smray on purpose: the loopback switch must still apply
from smray.raysupport import init_ray, shutdown_ray
started = init_ray()
nodes = [n["NodeManagerAddress"] for n in ray.nodes()]
gcs = ray.get_runtime_context().gcs_address

@ray.remote
def where():
    return ray.util.get_node_ip_address()

print(nodes, gcs, ray.get(where.remote()))
shutdown_ray(started)
"""


def test_local_runtime_binds_loopback_only() -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "RAY_ADDRESS")}
    out = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stderr[-2000:]
    nodes, gcs, worker_ip = out.stdout.strip().rsplit("\n", 1)[-1].split(" ")
    assert nodes == "['127.0.0.1']"
    assert gcs.startswith("127.0.0.1:")
    assert worker_ip == "127.0.0.1"


def test_session_runtime_is_on_loopback(ray_local) -> None:
    assert {n["NodeManagerAddress"] for n in ray_local.nodes()} == {"127.0.0.1"}
