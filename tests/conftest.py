"""Shared fixtures: real sample files, the local S3 endpoint, one Ray runtime per session."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
#: ../shared/data/real beside the checkout (never copied into the repo).
REAL_DATA = Path(os.environ.get("SMRAY_REAL_DATA", REPO.parent / "shared" / "data" / "real"))

# Local test clusters: no token auth, loopback only, no usage reporting.
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_DISABLE_DOCKER_CPU_WARNING", "1")


@pytest.fixture(scope="session")
def real_data() -> Path:
    """The real ERA/CCI/ISMN files in ../shared/data/real (fails loudly when absent)."""
    if not (REAL_DATA / "PROVENANCE.md").exists():
        pytest.fail(f"real sample data not found at {REAL_DATA} (set SMRAY_REAL_DATA)")
    return REAL_DATA


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory):
    """A real S3 endpoint (moto server) on 127.0.0.1, started once per session."""
    from smray.s3server import LocalS3

    server = LocalS3(port=0)
    server.start()
    old = {k: os.environ.get(k) for k in server.env()}
    os.environ.update(server.env())
    try:
        yield server
    finally:
        server.stop()
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@pytest.fixture
def s3_bucket(s3_server) -> str:
    """A fresh, empty bucket URL ``s3://test-<random>`` on the local endpoint."""
    import s3fs

    name = f"test-{uuid.uuid4().hex[:12]}"
    fs = s3fs.S3FileSystem(client_kwargs={"endpoint_url": s3_server.endpoint_url})
    fs.mkdir(name)
    return f"s3://{name}"


@pytest.fixture(params=["file", "memory", pytest.param("s3", marks=pytest.mark.s3)])
def storage_root(request, tmp_path) -> str:
    """One empty root URL per storage backend: a local directory, memory:// and the local S3."""
    if request.param == "file":
        return str(tmp_path / "store")
    if request.param == "memory":
        return f"memory://smray-test-{uuid.uuid4().hex[:12]}"
    return request.getfixturevalue("s3_bucket") + "/root"


@pytest.fixture(scope="session")
def ray_local():
    """One local Ray runtime for the session, 4 logical CPUs so actors never starve read tasks."""
    import ray

    if not ray.is_initialized():
        ray.init(num_cpus=4, include_dashboard=False, log_to_driver=False,
                 runtime_env={"env_vars": {"RAY_AUTH_MODE": "disabled"}})
    yield ray
    ray.shutdown()



@pytest.fixture
def ordered_data(ray_local):
    """Ray Data in order-preserving execution for one test, as ``run_torch_trainer`` runs training's
    datasets; the session's setting comes back afterwards."""
    import ray.data

    ctx = ray.data.DataContext.get_current()
    kept = ctx.execution_options.preserve_order
    ctx.execution_options.preserve_order = True
    yield ray_local
    ctx.execution_options.preserve_order = kept
