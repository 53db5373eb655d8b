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


def _epochs(seed: int | None, n: int) -> list[list[int]]:
    """Row order of ``n`` consumptions of one streaming-split shard (how Ray Train hands a worker its
    data every epoch); the caller runs Ray Data in order-preserving execution (``ordered_data``)."""
    from smray.raysupport import dataset_from_items, map_batches, shuffle_blocks_every_run

    ds = dataset_from_items([{"day": d} for d in range(12)])
    if seed is not None:
        ds = shuffle_blocks_every_run(ds, seed)
    ds = map_batches(ds, lambda b: {"day": b["day"]}, batch_size=1, num_cpus=0.25)
    shard = ds.streaming_split(1, equal=True)[0]
    return [[int(r["day"]) for r in shard.iter_rows()] for _ in range(n)]


def test_blocks_come_in_a_new_seeded_order_every_epoch(ordered_data) -> None:
    first, again, other = _epochs(7, 3), _epochs(7, 3), _epochs(8, 1)
    assert first == again  # the same orders for the same seed
    assert all(sorted(o) == list(range(12)) for o in first)
    assert len({tuple(o) for o in first}) == 3 and list(range(12)) not in first  # new every epoch
    assert other[0] != first[0]
    assert _epochs(None, 1) == [list(range(12))]
