"""Ray's fake multi-node provider, with one runtime-resources directory per node.

Ray's ``fake_multinode`` provider starts worker nodes as processes on this machine, all in the head's
session directory, so every node's runtime-env agent shares ``<session>/runtime_resources``. A
node's agent unpacks a job's ``working_dir`` the first time it needs it, and it does so with
``overwrite=True``: it deletes the directory and unpacks it again. On a shared directory that pulls
the job's code out from under the processes already running from it on the other nodes (the head's
job driver and Train controller included): imports fail (``No module named 'smray.formats...'``)
and ``getcwd()`` fails, which torch's static oneMKL reports as ``Intel oneMKL FATAL ERROR: Cannot
load .../libtorch_cpu.so`` before the process dies. On a cloud cluster every node has its own disk
and none of this happens; this provider gives each fake node its own directory, as a real node has.

Use it with ``provider: {type: external, module: fake_provider.SeparateDisksProvider}`` and this
folder on the ``PYTHONPATH`` of ``ray start --head`` (see fake-autoscaler.yaml)."""

from __future__ import annotations

import itertools

from ray._private import ray_constants
from ray.autoscaler._private.fake_multi_node.node_provider import FakeMultiNodeProvider

__all__ = ["SeparateDisksProvider"]


class SeparateDisksProvider(FakeMultiNodeProvider):
    """FakeMultiNodeProvider whose worker nodes each keep runtime envs in
    ``<session>/runtime_resources_node<N>`` (the head keeps ``runtime_resources``)."""

    _numbers = itertools.count(1)

    def _create_node_with_resources_and_labels(self, node_config, tags, count, resources, labels):
        # The parent builds RayParams without a runtime_env_dir_name, which falls back to this
        # module constant when the node is made: set it for exactly that node, under the
        # provider's (re-entrant) lock, which the parent takes too.
        with self.lock:
            default = ray_constants.DEFAULT_RUNTIME_ENV_DIR_NAME
            ray_constants.DEFAULT_RUNTIME_ENV_DIR_NAME = f"{default}_node{next(self._numbers)}"
            try:
                return super()._create_node_with_resources_and_labels(node_config, tags, count, resources,
                                                                     labels)
            finally:
                ray_constants.DEFAULT_RUNTIME_ENV_DIR_NAME = default
