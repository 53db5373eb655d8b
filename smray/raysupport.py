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
