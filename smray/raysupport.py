"""Everything version-sensitive about Ray lives here (style.md: one function per engine call)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from typing import Any

from smray.config import RayConfig
from smray.errors import SmrayError

#: Environment for runtimes smray starts itself: no token auth on local test clusters, no usage
#: reporting, loopback only.
LOCAL_ENV = {
    "RAY_AUTH_MODE": "disabled",
    "RAY_USAGE_STATS_ENABLED": "0",
    "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
}


#: Ray waits a fixed 30 s for a new node's raylet to register; on a loaded 2-core machine that can
#: pass, so a local start is tried again before giving up.
LOCAL_START_ATTEMPTS = 2


def init_ray(cfg: RayConfig | None = None) -> bool:
    """Connect to (or start) Ray. Returns True when this call started the runtime (the caller then
    owns it and should :func:`shutdown_ray`). An already-initialised runtime is reused as is.

    A local runtime stays on the loopback interface: Ray reads RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0
    when it is imported (its processes get it from the environment), and the flag it sets is
    switched off here too in case Ray was imported before. Joining a cluster changes nothing.
    """
    cfg = cfg or RayConfig()
    address = cfg.address or os.environ.get("RAY_ADDRESS")
    local = address in (None, "", "local")
    if local:
        for key, value in LOCAL_ENV.items():
            os.environ.setdefault(key, value)
    import ray

    if ray.is_initialized():
        return False
    if local:
        from ray._private import ray_constants

        ray_constants.ENABLE_RAY_CLUSTER = False  # node IP = 127.0.0.1
        for attempt in range(LOCAL_START_ATTEMPTS):
            try:
                ray.init(num_cpus=cfg.num_cpus or os.cpu_count() or 2, include_dashboard=False,
                         configure_logging=True, logging_level="WARNING", log_to_driver=True)
                break
            except Exception as err:  # Ray raises a bare Exception when its raylet registers too late
                if "timed out during startup" not in str(err) or attempt + 1 == LOCAL_START_ATTEMPTS:
                    raise
                ray.shutdown()
    else:
        ray.init(address=address, logging_level="WARNING")
    return True


def _started_here() -> bool:
    """Whether the connected runtime is a local one this process started (no autoscaler behind it)."""
    import ray

    node = getattr(ray._private.worker, "_global_node", None)
    return node is not None and bool(getattr(node, "head", False))


def shutdown_ray(started: bool) -> None:
    import ray

    if started and ray.is_initialized():
        ray.shutdown()


def remote(fn: Any, **options: Any) -> Any:
    """``ray.remote(**options)(fn)``."""
    import ray

    return ray.remote(**options)(fn)


def start_actor(cls: Any, *args: Any, num_cpus: float = 0.0, **kwargs: Any) -> Any:
    """An actor of ``cls`` (its handle: call methods with ``handle.method.remote(...)``)."""
    import ray

    return ray.remote(num_cpus=num_cpus)(cls).remote(*args, **kwargs)


def get(ref: Any) -> Any:
    """``ray.get``: the value of an object reference (or a list of them)."""
    import ray

    return ray.get(ref)


def kill(actor: Any) -> None:
    import ray

    ray.kill(actor)


def run_task(fn: Any, *args: Any, num_cpus: float = 1.0) -> Any:
    """``fn(*args)`` as one Ray task, waited for."""
    import ray

    return ray.get(ray.remote(num_cpus=num_cpus)(fn).remote(*args))


def map_unordered(fn: Any, arg_tuples: Any, *, num_cpus: float = 1.0, max_in_flight: int | None = None,
                  max_retries: int = 2) -> Any:
    """``fn(*args)`` as one Ray task per tuple of ``arg_tuples``; yields the results in completion
    order, with at most ``max_in_flight`` tasks submitted at once (default: twice the cluster's CPUs),
    so results are consumed (e.g. merged) as they come and never pile up in the object store."""
    import ray

    task = ray.remote(num_cpus=num_cpus, max_retries=max_retries)(fn)
    window = _Window(max_in_flight)
    pending: list[Any] = []
    for args in arg_tuples:
        if len(pending) >= window.limit():
            done, pending = ray.wait(pending, num_returns=1)
            yield ray.get(done[0])
        pending.append(task.remote(*args))
    while pending:
        done, pending = ray.wait(pending, num_returns=1)
        yield ray.get(done[0])


class _Window:
    """Tasks in flight: ``fixed``, or twice the cluster's CPUs, looked at again at most once every
    :data:`WINDOW_REFRESH_S` so the window grows with an autoscaling cluster (1 while it has none)."""

    def __init__(self, fixed: int | None) -> None:
        self.fixed, self._limit, self._at = fixed, 1, -WINDOW_REFRESH_S

    def limit(self) -> int:
        if self.fixed:
            return self.fixed
        now = time.monotonic()
        if now - self._at >= WINDOW_REFRESH_S:
            self._limit, self._at = max(1, 2 * int(cluster_resource("CPU"))), now
        return self._limit


WINDOW_REFRESH_S = 2.0


def dataset_from_items(items: list[Any], num_blocks: int | None = None) -> Any:
    """``ray.data.from_items`` with one block per item by default (the keyword was ``parallelism``
    before Ray 2.10, ``override_num_blocks`` since)."""
    import ray.data

    return ray.data.from_items(items, override_num_blocks=num_blocks or max(1, len(items)))


def shuffle_blocks_every_run(ds: Any, seed: int) -> Any:
    """``ds`` with its blocks in a seeded random order that is new on every execution (every epoch
    of a Ray Train dataset): ``randomize_block_order`` with a ``RandomSeedConfig`` that reseeds from
    ``seed`` and the execution's index, so the n-th execution's order is the same in every run with
    this seed. Put it where blocks are small (e.g. a dataset of days, before they are read): it
    holds all the blocks of ``ds`` at once."""
    import ray.data

    return ds.randomize_block_order(seed=ray.data.RandomSeedConfig(seed=int(seed), reseed_after_execution=True))


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


def map_batches_actors(ds: Any, cls: Any, *, actors: int, batch_size: int | None,
                       constructor_kwargs: dict[str, Any] | None = None, num_cpus: float | None = None,
                       num_gpus: float | None = None, resources: dict[str, float] | None = None,
                       batch_format: str = "numpy") -> Any:
    """``ds.map_batches`` through a pool of ``actors`` instances of the callable class ``cls`` (built
    once per actor with ``constructor_kwargs``): ``batch_size`` rows per call, ``num_cpus`` or
    ``num_gpus`` and custom ``resources`` per actor. Every actor starts at once (no operator resource
    reservation). ``concurrency=`` is deprecated for this since Ray 2.51: ``compute=ActorPoolStrategy``."""
    import ray.data

    ds.context.op_resource_reservation_enabled = False
    kwargs: dict[str, Any] = {"batch_size": batch_size, "batch_format": batch_format,
                              "compute": ray.data.ActorPoolStrategy(size=actors)}
    if constructor_kwargs:
        kwargs["fn_constructor_kwargs"] = constructor_kwargs
    if num_gpus is not None:
        kwargs["num_gpus"] = num_gpus
    if num_cpus is not None:
        kwargs["num_cpus"] = num_cpus
    if resources:
        kwargs["resources"] = dict(resources)
    return ds.map_batches(cls, **kwargs)


def is_initialized() -> bool:
    """True when this process is connected to a Ray runtime (False when Ray is not installed)."""
    try:
        import ray
    except ImportError:
        return False
    return bool(ray.is_initialized())


def map_rows(ds: Any, fn: Any, *, num_cpus: float = 1.0, max_concurrency: int | None = None,
             fn_kwargs: dict[str, Any] | None = None, eager: bool = False,
             resources: dict[str, float] | None = None) -> Any:
    """``ds.map(fn)`` as stateless Ray Data tasks: ``fn(row, **fn_kwargs) -> row``, ``num_cpus``
    (fractional allowed) reserved per task, at most ``max_concurrency`` tasks at once (None: as many
    as the CPUs allow), plus any custom ``resources`` per task (which pins the tasks to the nodes
    that have them). Ray 2.60 deprecates ``map(concurrency=)`` for ``compute=TaskPoolStrategy``.

    ``eager``: for a one-operator pipeline of long tasks, turn off Ray Data's per-operator resource
    reservation (this dataset's context only); with it, a fresh pipeline runs one task at a time
    for its first seconds, which on a few CPUs costs a large share of a short run."""
    import ray.data

    if eager:
        ds.context.op_resource_reservation_enabled = False
    kwargs: dict[str, Any] = {"num_cpus": num_cpus}
    if resources:
        kwargs["resources"] = dict(resources)
    if fn_kwargs:
        kwargs["fn_kwargs"] = fn_kwargs
    if max_concurrency is not None:
        kwargs["compute"] = ray.data.TaskPoolStrategy(size=max_concurrency)
    return ds.map(fn, **kwargs)


# --------------------------------------------------------------------------------------------
# Ray Train (the V2 API, default since Ray 2.51: ray.train.report / get_checkpoint /
# get_dataset_shard / Checkpoint, RunConfig(storage_filesystem=...), FailureConfig(max_failures))
# --------------------------------------------------------------------------------------------
def cluster_resource(name: str) -> float:
    """Total amount of a resource ("CPU", "GPU") in the connected cluster (0 when absent)."""
    import ray

    return float(ray.cluster_resources().get(name, 0.0))


def cluster_resources() -> dict[str, float]:
    """Total resources of the nodes that are up now."""
    import ray

    return {k: float(v) for k, v in ray.cluster_resources().items()}


def cluster_limits() -> dict[str, float] | None:
    """The most of each resource the cluster could ever have, from the node types an autoscaler
    published (KubeRay and the v2 autoscaler do); None where Ray does not say (then only waiting tells)."""
    import ray

    try:
        limits = ray._private.state.state.get_max_resources_from_cluster_config()
    except Exception:  # noqa: BLE001 - a private API: absent or changed means "not known"
        return None
    return {k: float(v) for k, v in limits.items()} if limits else None


def describe(resources: dict[str, float]) -> str:
    return ", ".join(f"{resources.get(k, 0.0):g} {k}" for k in sorted(resources)) or "nothing"


def refuse_impossible(need: dict[str, float], *, what: str, field: str, have: dict[str, float] | None = None) -> None:
    """One-line SmrayError naming ``field`` when the cluster can never hold ``need``: a local runtime
    this process started that lacks it, or node types (where Ray publishes them) that add up to less."""
    have = cluster_resources() if have is None else have
    if all(have.get(k, 0.0) + 1e-9 >= v for k, v in need.items()):
        return
    if _started_here():
        raise SmrayError(f"{field}: {what} need {describe(need)}; the local Ray runtime this process "
                         f"started has {describe({k: have.get(k, 0.0) for k in need})} and cannot grow")
    limits = cluster_limits()
    if limits is not None and any(limits.get(k, 0.0) + 1e-9 < v for k, v in need.items()):
        raise SmrayError(f"{field}: {what} need {describe(need)}; the cluster's node types add up to at most "
                         f"{describe({k: limits.get(k, 0.0) for k in need})}")


def wait_for_resources(need: dict[str, float], *, what: str, timeout_s: float, field: str,
                       bundles: Sequence[dict[str, float]] | None = None,
                       progress: Callable[[str], None] = print, poll_s: float = 1.0,
                       report_every_s: float = 10.0) -> dict[str, float]:
    """Wait until the cluster's nodes add up to ``need`` (e.g. ``{"CPU": 1}``, ``{"GPU": 2}``), asking
    an autoscaler for ``bundles`` (default: ``need`` as one bundle) meanwhile; returns the totals.

    Work asks and the cluster brings it: on an autoscaling cluster whose workers scale from zero the
    request starts nodes, and a progress line (``waiting for 2 GPU workers: 0/2 GPU up, 40 s``) is
    given every ``report_every_s``. One-line SmrayError naming ``field`` at once when the cluster can
    never hold ``need`` (a local runtime this process started, or node types that Ray publishes), else
    after ``timeout_s``. The request is withdrawn when the wait ends, so idle nodes can go again; the
    next stage asks anew."""
    have = cluster_resources()
    if all(have.get(k, 0.0) + 1e-9 >= v for k, v in need.items()):
        return have
    refuse_impossible(need, what=what, field=field, have=have)
    from ray.autoscaler.sdk import request_resources

    request_resources(bundles=[dict(b) for b in (bundles or [need])])
    t0 = last = time.monotonic()
    try:
        while True:
            time.sleep(poll_s)
            have = cluster_resources()
            if all(have.get(k, 0.0) + 1e-9 >= v for k, v in need.items()):
                progress(f"ray: {what}: {describe({k: have.get(k, 0.0) for k in need})} up after "
                         f"{time.monotonic() - t0:.0f} s")
                return have
            waited = time.monotonic() - t0
            if waited >= timeout_s:
                raise SmrayError(f"{field}: waited {waited:.0f} s for {what} ({describe(need)}); the cluster "
                                 f"brought {describe({k: have.get(k, 0.0) for k in need})} (ray.resource_timeout_s)")
            if time.monotonic() - last >= report_every_s:
                last = time.monotonic()
                up = ", ".join(f"{have.get(k, 0.0):g}/{v:g} {k}" for k, v in sorted(need.items()))
                progress(f"waiting for {what}: {up} up, {waited:.0f} s")
    finally:
        request_resources(bundles=[])


def tensor_table(columns: dict[str, Any]) -> Any:
    """A ``pyarrow.Table`` of numpy ``columns``; a column of more than one dimension becomes Ray
    Data's tensor extension type, so that Parquet written from it reads back (:func:`read_parquet`)
    as numpy arrays of the same shape and dtype."""
    import numpy as np
    import pyarrow as pa
    from ray.data.extensions import ArrowTensorArray

    return pa.table({k: ArrowTensorArray.from_numpy(v) if np.ndim(v) > 1 else pa.array(v)
                     for k, v in columns.items()})


def read_parquet(paths: list[str], fs: Any, *, seed: int | None = None, num_cpus: float = 1.0) -> Any:
    """A lazy ``ray.data.Dataset`` of the Parquet files ``paths`` on the fsspec filesystem ``fs``,
    ``num_cpus`` per read task. With ``seed`` the files are read in a random order that is new on
    every execution (epoch) and the same for the same seed (``FileShuffleConfig``, reseeded after
    each execution); without, in the order given."""
    import ray.data

    shuffle = ray.data.FileShuffleConfig(seed=int(seed), reseed_after_execution=True) if seed is not None else None
    return ray.data.read_parquet(paths, filesystem=pyarrow_filesystem(fs), shuffle=shuffle, num_cpus=num_cpus,
                                 file_extensions=None)


def select_columns(ds: Any, columns: list[str]) -> Any:
    """``ds.select_columns(columns)`` (lazy)."""
    return ds.select_columns(columns)


def take_batch(ds: Any, n: int) -> dict[str, Any]:
    """The first ``n`` rows of ``ds`` (in order) as one numpy batch (``ds.limit(n).take_batch``);
    {} when empty."""
    small = ds.limit(n)
    small.context.execution_options.preserve_order = True  # the same rows on every run
    try:
        return small.take_batch(batch_size=n, batch_format="numpy")
    except ValueError:  # take_batch on an empty dataset
        return {}


def iter_numpy_batches(ds: Any, batch_size: int | None = None) -> Any:
    """``ds.iter_batches(batch_format="numpy")``: streamed to the caller, one batch at a time."""
    return ds.iter_batches(batch_size=batch_size, batch_format="numpy")


def pyarrow_filesystem(fs: Any) -> Any:
    """A ``pyarrow.fs.FileSystem`` over an fsspec filesystem (Ray Train's ``storage_filesystem``),
    so Ray Train's checkpoints go through the same S3 endpoint and credentials as everything else."""
    import pyarrow.fs

    return pyarrow.fs.PyFileSystem(pyarrow.fs.FSSpecHandler(fs))


def train_context() -> tuple[int, int]:
    """(world rank, world size) inside a Ray Train worker."""
    import ray.train

    ctx = ray.train.get_context()
    return int(ctx.get_world_rank()), int(ctx.get_world_size())


def dataset_shard(name: str) -> Any:
    """This worker's ``DataIterator`` over the trainer dataset ``name``."""
    import ray.train

    return ray.train.get_dataset_shard(name)


def iter_torch_batches(shard: Any, *, batch_size: int, shuffle_buffer: int | None = None,
                       shuffle_seed: int | None = None, prefetch_batches: int = 1) -> Any:
    """Dicts of float32 tensors from a dataset shard, on the worker's device (``device="auto"``),
    optionally through a seeded local shuffle buffer of ``shuffle_buffer`` rows, with
    ``prefetch_batches`` batches fetched ahead."""
    import torch

    return shard.iter_torch_batches(batch_size=batch_size, dtypes=torch.float32, device="auto",
                                    local_shuffle_buffer_size=shuffle_buffer, local_shuffle_seed=shuffle_seed,
                                    prefetch_batches=prefetch_batches)


def prepare_torch_model(model: Any) -> Any:
    """``ray.train.torch.prepare_model``: moved to the worker's device, wrapped in
    DistributedDataParallel when the world size is > 1."""
    import ray.train.torch

    return ray.train.torch.prepare_model(model)


def torch_device() -> Any:
    """The worker's torch device (``ray.train.torch.get_device``)."""
    import ray.train.torch

    return ray.train.torch.get_device()


def latest_train_checkpoint() -> Any:
    """A context manager giving a local directory with the latest reported checkpoint of this run
    (after a worker failure or on a re-run with the same name and storage), or None."""
    import contextlib

    import ray.train

    ckpt = ray.train.get_checkpoint()
    return ckpt.as_directory() if ckpt is not None else contextlib.nullcontext(None)


def report_train(metrics: dict[str, Any], checkpoint_dir: str | None = None, checkpoint_name: str | None = None) -> None:
    """``ray.train.report`` (a barrier: every worker calls it once per epoch); ``checkpoint_dir``, a
    local directory, is uploaded to the run's storage as ``checkpoint_name`` (given by one worker)."""
    import ray.train

    ckpt = ray.train.Checkpoint.from_directory(checkpoint_dir) if checkpoint_dir is not None else None
    ray.train.report(metrics, checkpoint=ckpt, checkpoint_dir_name=checkpoint_name if ckpt is not None else None)


def run_torch_trainer(train_func: Any, config: dict[str, Any], *, datasets: dict[str, Any], num_workers: int,
                      use_gpu: bool, cpus_per_worker: float, storage_path: str, storage_filesystem: Any = None,
                      name: str, max_failures: int, num_to_keep: int | None = 2,
                      preserve_order: bool = True) -> Any:
    """``TorchTrainer(train_func, ...).fit()`` data-parallel over ``num_workers`` workers, each
    reserving ``cpus_per_worker`` CPUs (and one GPU with ``use_gpu``); ``datasets`` are split across
    the workers (``streaming_split(equal=True)``), in a fixed order with ``preserve_order``.
    Checkpoints go to ``storage_path/name`` (on ``storage_filesystem`` when given); a run with the
    same name and storage resumes from its latest checkpoint, and a failed worker group is
    restarted from it up to ``max_failures`` times. Returns the ``Result``; raises
    ``ray.train.TrainingFailedError`` when training fails for good (see :func:`training_failure`)."""
    import ray.train
    from ray.data import DataContext, ExecutionOptions
    from ray.train.torch import TorchTrainer

    resources: dict[str, float] = {"CPU": float(cpus_per_worker)}
    if use_gpu:
        resources["GPU"] = 1.0
    current = DataContext.get_current().execution_options
    options = ExecutionOptions(resource_limits=current.resource_limits, preserve_order=preserve_order,
                               verbose_progress=False)
    trainer = TorchTrainer(
        train_func, train_loop_config=config,
        scaling_config=ray.train.ScalingConfig(num_workers=num_workers, use_gpu=use_gpu,
                                               resources_per_worker=resources),
        run_config=ray.train.RunConfig(
            name=name, storage_path=storage_path, storage_filesystem=storage_filesystem,
            failure_config=ray.train.FailureConfig(max_failures=max_failures),
            checkpoint_config=ray.train.CheckpointConfig(num_to_keep=num_to_keep)),
        datasets=datasets, dataset_config=ray.train.DataConfig(execution_options=options))
    return trainer.fit()


def result_checkpoint_name(result: Any) -> str | None:
    """The directory name (under ``storage_path/name``) of a Ray Train result's latest checkpoint."""
    ckpt = getattr(result, "checkpoint", None)
    if ckpt is None:
        return None
    return str(ckpt.path).rstrip("/").rsplit("/", 1)[-1]


def training_failure(err: BaseException) -> BaseException | None:
    """The exception behind a Ray Train failure (the lowest-ranked failing worker's own exception,
    or the controller's), or None when ``err`` is not a Ray Train failure."""
    from ray.train import TrainingFailedError

    if not isinstance(err, TrainingFailedError):
        return None
    failures = getattr(err, "worker_failures", None) or {}
    for _, exc in sorted(failures.items()):
        return getattr(exc, "cause", None) or exc  # a RayTaskError keeps the user exception as .cause
    return getattr(err, "controller_failure", None) or err
