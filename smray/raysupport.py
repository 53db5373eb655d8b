"""Everything version-sensitive about Ray lives here (style.md: one function per engine call)."""

from __future__ import annotations

import os
from typing import Any

from smray.config import RayConfig

#: Environment for runtimes smray starts itself: no token auth on local test clusters, no usage
#: reporting, loopback only.
LOCAL_ENV = {
    "RAY_AUTH_MODE": "disabled",
    "RAY_USAGE_STATS_ENABLED": "0",
    "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
}


def init_ray(cfg: RayConfig | None = None) -> bool:
    """Connect to (or start) Ray. Returns True when this call started the runtime (the caller then
    owns it and should :func:`shutdown_ray`). An already-initialised runtime is reused as is."""
    import ray

    if ray.is_initialized():
        return False
    cfg = cfg or RayConfig()
    address = cfg.address or os.environ.get("RAY_ADDRESS")
    if address in (None, "", "local"):
        for key, value in LOCAL_ENV.items():
            os.environ.setdefault(key, value)
        ray.init(num_cpus=cfg.num_cpus or os.cpu_count() or 2, include_dashboard=False,
                 configure_logging=True, logging_level="WARNING", log_to_driver=True)
    else:
        ray.init(address=address, logging_level="WARNING")
    return True


def shutdown_ray(started: bool) -> None:
    import ray

    if started and ray.is_initialized():
        ray.shutdown()


def remote(fn: Any, **options: Any) -> Any:
    """``ray.remote(**options)(fn)``."""
    import ray

    return ray.remote(**options)(fn)


def map_unordered(fn: Any, arg_tuples: Any, *, num_cpus: float = 1.0, max_in_flight: int | None = None,
                  max_retries: int = 2) -> Any:
    """``fn(*args)`` as one Ray task per tuple of ``arg_tuples``; yields the results in completion
    order, with at most ``max_in_flight`` tasks submitted at once (default: twice the cluster's CPUs),
    so results are consumed (e.g. merged) as they come and never pile up in the object store."""
    import ray

    task = ray.remote(num_cpus=num_cpus, max_retries=max_retries)(fn)
    limit = max_in_flight or max(1, 2 * int(ray.cluster_resources().get("CPU", 1)))
    pending: list[Any] = []
    for args in arg_tuples:
        if len(pending) >= limit:
            done, pending = ray.wait(pending, num_returns=1)
            yield ray.get(done[0])
        pending.append(task.remote(*args))
    while pending:
        done, pending = ray.wait(pending, num_returns=1)
        yield ray.get(done[0])


def dataset_from_items(items: list[Any], num_blocks: int | None = None) -> Any:
    """``ray.data.from_items`` with one block per item by default (the keyword was ``parallelism``
    before Ray 2.10, ``override_num_blocks`` since)."""
    import ray.data

    return ray.data.from_items(items, override_num_blocks=num_blocks or max(1, len(items)))


def map_batches(ds: Any, fn: Any, *, batch_size: int | None, num_cpus: float = 1.0,
                max_concurrency: int | None = None, fn_kwargs: dict[str, Any] | None = None,
                batch_format: str = "numpy") -> Any:
    """``ds.map_batches`` for a plain function (tasks, not actors): ``batch_size`` rows per call,
    ``num_cpus`` per task, at most ``max_concurrency`` tasks at once (None: as many as the CPUs
    allow). Ray 2.51+ deprecates ``concurrency=`` for ``compute=TaskPoolStrategy``."""
    import ray.data

    kwargs: dict[str, Any] = {"batch_size": batch_size, "batch_format": batch_format, "num_cpus": num_cpus}
    if fn_kwargs:
        kwargs["fn_kwargs"] = fn_kwargs
    if max_concurrency is not None:
        kwargs["compute"] = ray.data.TaskPoolStrategy(size=max_concurrency)
    return ds.map_batches(fn, **kwargs)


def map_rows(ds: Any, fn: Any, *, num_cpus: float = 1.0, max_concurrency: int | None = None,
             fn_kwargs: dict[str, Any] | None = None) -> Any:
    """``ds.map(fn)`` as stateless Ray Data tasks: ``fn(row, **fn_kwargs) -> row``, ``num_cpus``
    (fractional allowed) reserved per task, at most ``max_concurrency`` tasks at once (None: as many
    as the CPUs allow). Ray 2.60 deprecates ``map(concurrency=)`` for ``compute=TaskPoolStrategy``."""
    import ray.data

    kwargs: dict[str, Any] = {"num_cpus": num_cpus}
    if fn_kwargs:
        kwargs["fn_kwargs"] = fn_kwargs
    if max_concurrency is not None:
        kwargs["compute"] = ray.data.TaskPoolStrategy(size=max_concurrency)
    return ds.map(fn, **kwargs)
