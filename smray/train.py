"""Training the retrieval models: the CNN (or the pixel MLP) data-parallel on Ray Train, and the SVR baseline.

:func:`run_training` is ``smray train``. On the driver it only checks, configures and collects:

1. The training period must lie inside the cube and yield enough patches
   (:func:`smray.patches.count_samples`); otherwise one-line :class:`SmrayError` before anything trains.
2. The [0, 1] scaling is fitted on the training period (:func:`smray.normalise.fit_stats`).
3. Training and validation patches are two lazy Ray Data datasets over the same days
   (:func:`smray.patches.patch_dataset`, ``split="train"`` / ``"val"`` of ``patches.split``), streamed
   from the cube to the workers; nothing is materialised on the driver.
4. ``cnn``/``pixel``: a ``TorchTrainer`` runs :func:`train_func` on ``train.workers`` workers (GPU when
   the cluster has GPUs, else CPU). ``train_func`` is a thin shell around the Ray-free loop below
   (:func:`smray.trainloop.train_epoch_dp`, :func:`~smray.trainloop.eval_sums`) and :mod:`smray.trainloop`'s optimiser, seeding and
   :class:`~smray.trainloop.EarlyStopping`. Every epoch it reports training and validation loss, RMSE
   and R² — from sums of squared errors, target sums and counts added up over all workers, never
   averaged per worker — and rank 0 checkpoints the weights, optimiser state, epoch, early-stopping
   state, history, normalisation statistics and config fingerprint. A failed worker group is
   restarted from the latest checkpoint (``train.max_failures``); the run has a fixed name under
   ``<out>/ray_train``, so running the same command again resumes where it stopped.
5. ``svr``: a deterministic subsample of at most ``train.svr_max_samples`` training patches is
   pulled to the driver, :func:`smray.baselines.fit_svr` is fitted and validated on the same split
   (validation sums computed in Ray Data tasks). When ``train.svr_c``/``svr_epsilon``/
   ``svr_gamma_factor`` give more than one combination, up to ``train.svr_search_samples`` validation
   patches are pulled too and choose them (:func:`smray.baselines.search_svr`); the choice and every
   combination's validation score go to ``svr.npz`` and ``training.json`` and one progress line.

Everything the run writes lives under ``out``::

    model.pt, model.pt.json   best weights, normalisation statistics, config fingerprint (smray.checkpoint)
    svr.npz                   the SVR baseline (smray.baselines), for --model svr
    normalisation.json        the NormStats of the training period
    training.json             history per epoch, config without secrets, timings, samples/s
    ray_train/smray/epoch_NNNN/last.pt, best.pt     Ray Train checkpoints (resume, retries)

Non-finite values never reach the optimiser: samples with NaN/inf in ``x`` or ``y`` are dropped
from their batch and counted, and a step whose gradients are non-finite (after the all-reduce, so
the same on every worker) is skipped on every worker. Every worker takes part in every gradient
all-reduce even when its own batch is empty after dropping, so one bad batch cannot hang the others.
On one worker a run is deterministic for ``train.seed``. Example::

    cfg = load_config("smray.yaml")
    summary = run_training(cfg, "s3://bucket/cube.zarr", "2011-07-01", "2011-07-28", "s3://bucket/models/cnn")
    print(summary.line())
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import math
import os
import posixpath
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from smray import cube as cubemod
from smray.checkpoint import Checkpoint as ModelCheckpoint
from smray.checkpoint import (MODEL_FILE, NORMALISATION_FILE, SVR_FILE, TRAINING_FILE, config_fingerprint,
                              config_signature, load_checkpoint, make_checkpoint,
                              restore_optimizer, save_checkpoint)
from smray.config import Config, svr_values, to_dict, validation_label
from smray.errors import SmrayError
from smray.metrics import pair_sums
from smray.models import build_model, input_channels
from smray.normalise import NormStats, block_names, fit_stats, stats_digest
from smray.serial import as_date, differences, json_safe, read_json, write_json
from smray.stages.base import StageState
from smray.storage import StorageConfig, check_reachable, filesystem, join, local_path, protocol, resolve_storage
from smray.trainloop import (SUM_FIELDS, TARGET_SHIFT, EarlyStopping, eval_sums, make_optimizer, metrics_from_sums,
                             seed_everything, train_epoch_dp)

#: Ray Train's storage folder inside ``out`` and the run's fixed name (a re-run resumes it)
RAY_TRAIN_DIR = "ray_train"
RUN_NAME = "smray"
#: files inside ``out`` and inside each Ray Train checkpoint directory
LAST_FILE = "last.pt"
BEST_FILE = "best.pt"
#: training / validation patches a period must yield (at least, and at least one per worker)
MIN_TRAIN_PATCHES = 100
MIN_VAL_PATCHES = 10
#: batches fetched ahead of the training loop
PREFETCH_BATCHES = 4
#: validation batch size (no gradients, so larger than training batches)
EVAL_BATCH_SIZE = 2048
#: CPUs that must stay free for the patch-reading tasks beside the Ray Train workers
MIN_READER_CPUS = 0.25
#: Ray Train checkpoints kept (the latest ones)
CHECKPOINTS_KEPT = 2
#: test only: ``"<epoch>:<marker_path>"`` makes rank 0 raise once after reporting that epoch (the marker
#: file records that it did), to prove the retry from the latest checkpoint; read on the driver
FAIL_ONCE_ENV = "SMRAY_TEST_FAIL_ONCE"
Batch = tuple[Tensor, Tensor]


# --------------------------------------------------------------------------------------------
# The Ray-free core: data-parallel-safe epochs and exact metric sums
# --------------------------------------------------------------------------------------------
def epoch_metrics(epoch: int, train_sums: Tensor, val_sums: Tensor, *, skipped_batches: int,
                  target_span: float) -> dict[str, Any]:
    """The reported metrics of one epoch (1-based ``epoch``) from worker-summed sums;
    ``target_span`` (m³/m³ per scaled unit) converts the validation RMSE to m³/m³."""
    tr, va = metrics_from_sums(train_sums), metrics_from_sums(val_sums)
    return {
        "epoch": int(epoch), "train_loss": tr["loss"], "train_rmse": tr["rmse"], "train_r2": tr["r2"],
        "train_n": tr["n"], "val_loss": va["loss"], "val_rmse": va["rmse"], "val_r2": va["r2"],
        "val_bias": va["bias"], "val_n": va["n"], "val_rmse_m3": va["rmse"] * target_span,
        "skipped_nonfinite": tr["skipped_nonfinite"] + va["skipped_nonfinite"],
        "skipped_batches": int(skipped_batches),
    }


def state_sha256(state: dict[str, Tensor]) -> str:
    """SHA-256 of a ``state_dict``'s names, shapes, dtypes and values (to tell weights apart)."""
    h = hashlib.sha256()
    for name in sorted(state):
        t = state[name].detach().to("cpu").contiguous()
        h.update(f"{name}:{tuple(t.shape)}:{t.dtype};".encode())
        h.update(t.numpy().tobytes() if t.dtype != torch.bfloat16 else t.float().numpy().tobytes())
    return h.hexdigest()


# --------------------------------------------------------------------------------------------
# The Ray Train worker function
# --------------------------------------------------------------------------------------------
def _allreduce_sum(t: Tensor) -> Tensor:
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return t
    device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")
    out = t.detach().to(device, dtype=torch.float64, copy=True)
    dist.all_reduce(out)
    return out.cpu()


def _xy(batches: Iterable[dict[str, Tensor]]) -> Iterator[Batch]:
    for b in batches:
        yield b["x"], b["y"]


def _shuffle_seed(seed: int, epoch: int, rank: int) -> int:
    return (seed * 1_000_003 + epoch * 1009 + rank) % 2**31


@dataclass
class _Resume:
    epoch: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    stopper: dict[str, Any] | None = None
    model_state: dict[str, Tensor] | None = None
    best_state: dict[str, Tensor] | None = None
    ckpt: ModelCheckpoint | None = None


def _read_resume(directory: str, cfg: Config) -> _Resume:
    where = f"Ray Train checkpoint {directory}"
    last = load_checkpoint(os.path.join(directory, LAST_FILE), cfg.model, cfg.patches)
    best = load_checkpoint(os.path.join(directory, BEST_FILE), cfg.model, cfg.patches)
    extra = last.extra
    if not isinstance(extra.get("history"), list) or not isinstance(extra.get("early_stopping"), dict):
        raise SmrayError(f"{where}: not written by smray train (history / early-stopping state missing)")
    return _Resume(epoch=last.epoch, history=list(extra["history"]), stopper=extra["early_stopping"],
                   model_state=last.model_state, best_state=best.model_state, ckpt=last)


def _write_checkpoint(directory: str, model: nn.Module, best_state: dict[str, Tensor], optimizer: torch.optim.Optimizer,
                      cfg: Config, *, epoch: int, stopper: EarlyStopping, history: list[dict[str, Any]],
                      norm_stats: dict[str, Any], run: dict[str, Any]) -> None:
    extra = {"history": history, "early_stopping": stopper.state_dict(), "run": run}
    last = make_checkpoint(model, cfg.model, cfg.patches, epoch=epoch, best_metric=stopper.best,
                           norm_stats=norm_stats, optimizer=optimizer, extra=extra)
    save_checkpoint(os.path.join(directory, LAST_FILE), last)
    best = dataclasses.replace(last, model_state={k: v.detach().cpu() for k, v in best_state.items()},
                               optimizer_state=None, epoch=max(stopper.best_epoch, 0),
                               extra={"run": run})
    save_checkpoint(os.path.join(directory, BEST_FILE), best)


def train_func(config: dict[str, Any]) -> dict[str, Any]:
    """The Ray Train per-worker function: restore from the run's latest checkpoint when there is one,
    then per epoch train on the ``train`` shard, evaluate on the ``val`` shard, add the metric sums
    over workers, step the early stopping, and report (rank 0 with a checkpoint).

    ``config``: ``cfg`` (:class:`Config`), ``in_channels``, ``norm_stats`` (``NormStats.to_dict()``),
    ``target_span`` (m³/m³ per scaled unit), ``run`` (:func:`run_signature`), and optionally
    ``fail_once`` ``(epoch, marker_path)`` from :data:`FAIL_ONCE_ENV` (test only): raise once after
    reporting that epoch.
    Returns (rank 0's is the result's ``return_value``) the start epoch and weight hashes.
    """
    from smray import raysupport as rs

    cfg: Config = config["cfg"]
    tc = cfg.train
    rank, world = rs.train_context()
    seed_everything(tc.seed)
    model = build_model(cfg.model, int(config["in_channels"]))
    with rs.latest_train_checkpoint() as directory:
        resume = _read_resume(directory, cfg) if directory is not None else _Resume()
    if resume.model_state is not None:
        model.load_state_dict(resume.model_state, strict=True)
    start_sha = state_sha256(model.state_dict())
    net = rs.prepare_torch_model(model)  # moves `model` to the device; DDP wrapper when world > 1
    optimizer = make_optimizer(model, tc)
    if resume.ckpt is not None:
        restore_optimizer(optimizer, resume.ckpt, "Ray Train checkpoint")
    stopper = EarlyStopping(tc.patience)
    if resume.stopper is not None:
        stopper.load_state_dict(resume.stopper)
    best_state = resume.best_state or {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    history = resume.history
    reduce = _allreduce_sum if world > 1 else None
    train_shard, val_shard = rs.dataset_shard("train"), rs.dataset_shard("val")
    fail_once = config.get("fail_once")
    epochs_run = 0
    for epoch in range(resume.epoch + 1, tc.epochs + 1):  # 1-based: epochs completed after this one
        if stopper.should_stop:
            break
        t0 = time.perf_counter()
        batches = rs.iter_torch_batches(train_shard, batch_size=tc.batch_size, shuffle_buffer=tc.shuffle_buffer or None,
                                        shuffle_seed=_shuffle_seed(tc.seed, epoch, rank),
                                        prefetch_batches=PREFETCH_BATCHES)
        tr = train_epoch_dp(net, _xy(batches), optimizer, world_size=world, reduce_sum=reduce, precision=tc.precision)
        t1 = time.perf_counter()
        va = eval_sums(model, _xy(rs.iter_torch_batches(val_shard, batch_size=EVAL_BATCH_SIZE)), tc.precision)
        t2 = time.perf_counter()
        sums = torch.cat([tr["sums"], va])
        if reduce is not None:
            sums = reduce(sums)
        m = epoch_metrics(epoch, sums[:len(SUM_FIELDS)], sums[len(SUM_FIELDS):],
                          skipped_batches=tr["skipped_batches"], target_span=float(config["target_span"]))
        improved = stopper.step(m["val_loss"], epoch)
        if improved:
            best_state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
        m.update({"improved": bool(improved), "best_val_loss": stopper.best, "best_epoch": stopper.best_epoch,
                  "stop": bool(stopper.should_stop), "train_s": t1 - t0, "val_s": t2 - t1,
                  "samples_per_s": m["train_n"] / (t1 - t0) if t1 > t0 else math.nan, "workers": world,
                  "torch_threads": torch.get_num_threads(),
                  "steps": tr["steps"]})
        history.append(m)
        epochs_run += 1
        with tempfile.TemporaryDirectory(prefix="smray-ckpt-") as tmp:
            if rank == 0:
                _write_checkpoint(tmp, model, best_state, optimizer, cfg, epoch=epoch, stopper=stopper,
                                  history=history, norm_stats=config["norm_stats"], run=config["run"])
                print(f"train: epoch {epoch}/{tc.epochs}: train loss {m['train_loss']:.5f}, val loss "
                      f"{m['val_loss']:.5f}, val RMSE {m['val_rmse_m3']:.4f} m3/m3, R² {m['val_r2']:.3f}, "
                      f"{m['samples_per_s']:.0f} samples/s", flush=True)
            rs.report_train({k: (float(v) if isinstance(v, (int, float, bool)) else v) for k, v in m.items()},
                            tmp if rank == 0 else None, f"epoch_{epoch:04d}")
        if fail_once is not None and rank == 0 and epoch == int(fail_once[0]) and not os.path.exists(fail_once[1]):
            with open(fail_once[1], "w") as fh:
                fh.write("failed once\n")
            raise RuntimeError(f"injected worker failure after epoch {epoch}")
    return {"start_epoch": resume.epoch, "start_weights_sha256": start_sha, "epochs_run": epochs_run,
            "last_weights_sha256": state_sha256(model.state_dict())}


# --------------------------------------------------------------------------------------------
# The driver
# --------------------------------------------------------------------------------------------
@dataclass
class TrainSummary:
    """What a training run did. Losses/RMSE in scaled units unless ``_m3``; R² dimensionless."""

    kind: str  #: cnn, pixel or svr
    out: str  #: output URL
    artefact: str  #: URL of model.pt or svr.npz
    n_train: int  #: training patches per epoch (drawn; before the equal split across workers)
    n_val: int  #: validation patches
    val_loss: float  #: best validation MSE (scaled units)
    val_rmse: float
    val_r2: float
    val_rmse_m3: float  #: validation RMSE in m³/m³
    seconds: float  #: wall time of run_training
    epochs_completed: int = 0  #: epochs in the model's history (all runs)
    resumed_from: int = 0  #: epochs completed before this run started (0: fresh)
    best_epoch: int = 0  #: the epoch whose weights are in model.pt (1-based)
    stopped_early: bool = False
    samples_per_s: float = math.nan  #: training samples per second over this run's epochs (all workers)
    n_fitted: int = 0  #: SVR: samples the SVR was fitted on
    svr: str = ""  #: SVR: the hyperparameters it was fitted with (chosen on validation when a grid was given)
    workers: int = 1
    history: list[dict[str, Any]] = field(default_factory=list)

    def line(self) -> str:
        if self.kind == "svr":
            return (f"train: svr ({self.svr}) fitted on {self.n_fitted} patches: "
                    f"validation RMSE {self.val_rmse_m3:.4f} m3/m3, "
                    f"R² {self.val_r2:.3f} ({self.n_val} patches) in {self.seconds:.0f} s -> {self.artefact}")
        resumed = f" (resumed after epoch {self.resumed_from})" if self.resumed_from else ""
        stopped = ", stopped early" if self.stopped_early else ""
        return (f"train: {self.kind}, {self.epochs_completed} epochs{resumed}{stopped} on {self.workers} worker(s), "
                f"best epoch {self.best_epoch}: validation RMSE {self.val_rmse_m3:.4f} m3/m3, R² {self.val_r2:.3f}; "
                f"{self.samples_per_s:.0f} samples/s; {self.seconds:.0f} s -> {self.artefact}")




def training_period(cube_url: str, storage: StorageConfig | None, start: dt.date, end: dt.date,
                    channels: Iterable[str]) -> list[dt.date]:
    """The days of the period after checking it is not empty, lies inside the cube and the cube has
    the channels asked for (one-line SmrayError naming the field otherwise)."""
    cube, dates = cubemod.period_dates(cube_url, storage, start, end, fields=("train_start", "train_end"))
    missing = [c for c in channels if c not in cube.channels]
    if missing:
        raise SmrayError(f"patches.channels: the cube {cube_url} has no channel {missing[0]!r}")
    return dates


def check_sample_counts(counts: dict[dt.date, dict[str, Any]], workers: int, where: str) -> tuple[int, int]:
    """(training, validation) patches of the period; SmrayError when too few to train on."""
    n_train = sum(int(c["train"]) for c in counts.values())
    n_val = sum(int(c["val"]) for c in counts.values())
    n_valid = sum(int(c["valid"]) for c in counts.values())
    need_train, need_val = max(MIN_TRAIN_PATCHES, workers), max(MIN_VAL_PATCHES, workers)
    if n_train < need_train:
        raise SmrayError(f"{where} yields {n_train} training patches ({n_valid} valid centres), need at least "
                         f"{need_train}: choose a longer period or raise patches.train_per_day")
    if n_val < need_val:
        raise SmrayError(f"{where} yields {n_val} validation patches, need at least {need_val}: choose a longer "
                         f"period or raise patches.val_per_day")
    return n_train, n_val


def run_signature(cfg: Config, cube_url: str, start: dt.date, end: dt.date, stats: NormStats) -> dict[str, Any]:
    """What a resumed run must share with the checkpoint it resumes: the cube and period, the model
    and patch configuration, the scaling, and the optimiser settings."""
    tc = cfg.train
    return {
        "cube": cube_url, "train_start": start.isoformat(), "train_end": end.isoformat(),
        "fingerprint": config_fingerprint(cfg.model, cfg.patches), "patches": to_dict(cfg.patches),
        "normalise": to_dict(cfg.normalise), "qc_block": list(block_names(cfg.qc.block)),
        "optimiser": {k: getattr(tc, k) for k in ("optimizer", "lr", "weight_decay", "momentum", "batch_size", "seed",
                                                  "day_order", "shuffle_buffer")},
        "norm_stats": stats_digest(stats),
    }


def _checkpoint_dirs(out_url: str, storage: StorageConfig) -> tuple[Any, str, list[str]]:
    fs, root = filesystem(out_url, storage)
    run_dir = posixpath.join(root.rstrip("/"), RAY_TRAIN_DIR, RUN_NAME)
    try:
        fs.invalidate_cache(run_dir)
        names = sorted(posixpath.basename(p.rstrip("/")) for p in fs.ls(run_dir, detail=False))
    except (FileNotFoundError, NotADirectoryError):
        names = []
    return fs, run_dir, [n for n in names if n.startswith("epoch_")]


def existing_run(out_url: str, storage: StorageConfig, cfg: Config,
                 run: dict[str, Any]) -> tuple[str, int, bool] | None:
    """The latest Ray Train checkpoint under ``out`` (name, epochs completed, finished: all
    ``train.epochs`` done or stopped early), verified to be intact and from a compatible run; None
    when there is none. A corrupt or incompatible one is refused with one line saying how to start
    over."""
    fs, run_dir, names = _checkpoint_dirs(out_url, storage)
    if not names:
        return None
    name = names[-1]
    where = join(out_url, RAY_TRAIN_DIR, RUN_NAME, name)
    how = f"remove {join(out_url, RAY_TRAIN_DIR)} or choose another --out to start over"
    try:
        ckpt = load_checkpoint((fs, join(run_dir, name, LAST_FILE)), cfg.model, cfg.patches)
        load_checkpoint((fs, join(run_dir, name, BEST_FILE)), cfg.model, cfg.patches)
    except SmrayError as err:
        raise SmrayError(f"cannot resume: {err}; {how}") from None
    diff = differences(ckpt.extra.get("run"), run)
    if diff:
        raise SmrayError(f"cannot resume from {where}: it was trained with other settings ({', '.join(diff[:4])}); "
                         f"{how}")
    stopper = EarlyStopping(cfg.train.patience)
    try:
        stopper.load_state_dict(ckpt.extra["early_stopping"])
    except (KeyError, TypeError, ValueError):
        raise SmrayError(f"cannot resume from {where}: early-stopping state missing; {how}") from None
    return name, int(ckpt.epoch), int(ckpt.epoch) >= cfg.train.epochs or stopper.should_stop


def _storage_for_ray(out_url: str, storage: StorageConfig) -> tuple[str, Any]:
    from smray import raysupport as rs

    path = local_path(out_url)
    if path is not None:
        return os.path.join(os.path.abspath(path), RAY_TRAIN_DIR), None
    fs, path = filesystem(out_url, storage)
    return posixpath.join(path.rstrip("/"), RAY_TRAIN_DIR), rs.pyarrow_filesystem(fs)




def _fail_once_from_env() -> tuple[int, str] | None:
    """The test-only fault injection of :data:`FAIL_ONCE_ENV` as ``(epoch, marker_path)``; None when unset."""
    value = os.environ.get(FAIL_ONCE_ENV, "")
    if not value:
        return None
    epoch, sep, marker = value.partition(":")
    if not sep or not epoch.strip().isdigit() or not marker:
        raise SmrayError(f"{FAIL_ONCE_ENV}: expected <epoch>:<marker_path>, got {value!r}")
    return int(epoch), marker


def _resources(cfg: Config, progress: Callable[[str], None]) -> tuple[bool, float]:
    """(use GPU, CPUs per patch-reading task). Asks the cluster for the workers and the readers and
    waits until they are up (an autoscaling cluster starts them; :func:`smray.raysupport.wait_for_resources`);
    SmrayError when the workers would leave the readers no CPU (they would wait forever) or the cluster
    can never hold them."""
    from smray import raysupport as rs

    tc = cfg.train
    gpus = rs.cluster_resource("GPU")
    limits = rs.cluster_limits() or {}
    use_gpu = (gpus >= 1 or limits.get("GPU", 0.0) >= tc.workers) if tc.use_gpu is None else bool(tc.use_gpu)
    workers = f"the train stage's {tc.workers} {'GPU' if use_gpu else 'CPU'} worker(s) and patch readers"
    if use_gpu:
        need = {"GPU": float(tc.workers), "CPU": tc.workers * tc.cpus_per_worker + MIN_READER_CPUS}
        bundles = [{"GPU": 1.0, "CPU": tc.cpus_per_worker}] * tc.workers + [{"CPU": MIN_READER_CPUS}]
    else:
        need = {"CPU": tc.workers * tc.cpus_per_worker + MIN_READER_CPUS}
        bundles = [{"CPU": tc.cpus_per_worker}] * tc.workers + [{"CPU": MIN_READER_CPUS}]
    field = "train.use_gpu" if use_gpu else "train.cpus_per_worker"
    have = rs.wait_for_resources(need, bundles=bundles, what=workers, field=field,
                                 timeout_s=cfg.ray.resource_timeout_s, progress=progress)
    left = have.get("CPU", 0.0) - tc.workers * tc.cpus_per_worker
    return use_gpu, min(1.0, left)


def run_training(cfg: Config, cube_url: str, train_start: dt.date | str, train_end: dt.date | str, out_url: str,
                 model_kind: str | None = None, workers: int | None = None,
                 progress: Callable[[str], None] = print) -> TrainSummary:
    """Train ``model_kind`` (default ``model.kind``) on the patches of ``train_start``..``train_end``
    (inclusive) of the cube and write the artefacts to ``out_url`` (see the module docstring).

    ``workers`` overrides ``train.workers``. Starts a local Ray runtime when none is connected (and
    stops it again). Everything that can be checked before training is (period, patch counts,
    storage, CPUs, a resumable checkpoint) and fails with one line.
    """
    from smray.raysupport import init_ray, shutdown_ray

    t_start = time.perf_counter()
    if model_kind is not None:
        cfg = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, kind=model_kind))
    if workers is not None:
        cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, workers=int(workers)))
    kind = cfg.model.kind
    start, end = as_date(train_start, "train_start"), as_date(train_end, "train_end")
    storage = resolve_storage(cfg.storage)
    if kind != "svr" and protocol(out_url) == "memory":
        raise SmrayError(f"{out_url}: memory:// cannot hold Ray Train checkpoints (each worker is its own process); "
                         f"use a local path or s3://")
    dates = training_period(cube_url, storage, start, end, cfg.patches.channels)
    check_reachable(out_url, storage, create=True)
    started = init_ray(cfg.ray)
    try:
        from smray.patches import count_samples

        use_gpu, reader_cpus = _resources(cfg, progress) if kind != "svr" else (False, 1.0)
        where = f"{cube_url}: training period {start}..{end}"
        shards_url = cfg.paths.shards
        if not shards_url:  # count before any work; with shards the cut's census counts exactly
            counts = count_samples(cube_url, storage, dates, cfg.patches, cfg.qc.block)
            n_train, n_val = check_sample_counts(counts, cfg.train.workers if kind != "svr" else 1, where)
        t0 = time.perf_counter()
        stats = fit_stats(cube_url, storage, start, end, cfg.normalise, cfg.qc.block, cfg.patches)
        stats_s = time.perf_counter() - t0
        shards = None
        if shards_url:
            from smray.patches import day_sampler, shard_signature
            from smray.shards import cut_shards

            shards = cut_shards(shards_url, storage, dates,
                                shard_signature(cube_url, dates, cfg.patches, cfg.qc.block, stats),
                                day_sampler(cube_url, storage, cfg.patches, cfg.qc.block, stats),
                                num_cpus=reader_cpus, progress=progress)
            counts = {d: {"train": t, "val": v, "valid": t + v} for d, (t, v) in shards.counts.items()}
            n_train, n_val = check_sample_counts(counts, cfg.train.workers if kind != "svr" else 1, where)
            progress(f"train: patch shards {shards_url}: {n_train} training and {n_val} validation patches of "
                     f"{len(dates)} days ({shards.cut_now} cut now, {shards.seconds:.0f} s)")
        progress(f"train: {where}: {n_train} training and {n_val} validation patches per epoch; "
                 f"{validation_label(cfg.patches)}")
        common = {"cube": cube_url, "train_start": start.isoformat(), "train_end": end.isoformat(), "out": out_url,
                  "kind": kind, "config": to_dict(cfg), "n_train": n_train, "n_val": n_val,
                  "days": len(dates), "stats_s": stats_s, "validation": validation_label(cfg.patches),
                  "shards": shards_url}
        if kind == "svr":
            summary = _run_svr(cfg, cube_url, storage, dates, stats, out_url, n_train, n_val, common, progress,
                               shards=shards)
        else:
            summary = _run_torch(cfg, cube_url, storage, dates, stats, out_url, n_train, n_val, common, progress,
                                 use_gpu=use_gpu, reader_cpus=reader_cpus, shards=shards)
    finally:
        shutdown_ray(started)
    summary.seconds = time.perf_counter() - t_start
    return summary


def patch_stream(cfg: Config, cube_url: str, storage: StorageConfig, dates: list[dt.date], stats: NormStats,
                 split: str, *, shards: Any = None, num_cpus: float = 1.0, day_seed: int | None = None) -> Any:
    """``split``'s samples as a lazy Ray Dataset: read from the patch shards when ``shards`` (their
    :class:`smray.shards.ShardCensus`), else cut from the cube day by day; days (shard files) in a
    new random order every epoch with ``day_seed``."""
    if shards is not None:
        from smray.shards import shard_dataset

        return shard_dataset(storage, shards, split, seed=day_seed, num_cpus=num_cpus)
    from smray.patches import patch_dataset

    return patch_dataset(cube_url, storage, dates, cfg.patches, cfg.qc.block, stats, split=split, num_cpus=num_cpus,
                         day_seed=day_seed)


def _run_torch(cfg: Config, cube_url: str, storage: StorageConfig, dates: list[dt.date], stats: NormStats,
               out_url: str, n_train: int, n_val: int, common: dict[str, Any], progress: Callable[[str], None], *,
               use_gpu: bool, reader_cpus: float, shards: Any = None) -> TrainSummary:
    from smray import raysupport as rs

    tc = cfg.train
    run = run_signature(cfg, cube_url, dates[0], dates[-1], stats)
    previous = existing_run(out_url, storage, cfg, run)
    resumed_from = previous[1] if previous else 0
    write_json(join(out_url, NORMALISATION_FILE), storage, stats.to_dict())
    storage_path, storage_fs = _storage_for_ray(out_url, storage)
    if previous and previous[2]:
        progress(f"train: {join(out_url, RAY_TRAIN_DIR, RUN_NAME)} already finished after epoch {resumed_from}; "
                 f"nothing to train")
        return _finish_torch(cfg, stats, out_url, storage, previous[0], resumed_from, n_train, n_val, common,
                             use_gpu=use_gpu, fit_s=0.0, ret={}, storage_path=storage_path)
    if previous:
        progress(f"train: resuming {join(out_url, RAY_TRAIN_DIR, RUN_NAME)} after epoch {resumed_from}")

    # a new day order every epoch, the same for the same seed; a resumed run continues from another
    # seed (the epochs' orders are counted from the start of each run)
    day_seed = _shuffle_seed(tc.seed, resumed_from, 0) if tc.day_order == "shuffled" else None

    def dataset(split: str) -> Any:
        ds = patch_stream(cfg, cube_url, storage, dates, stats, split, shards=shards, num_cpus=reader_cpus,
                          day_seed=day_seed if split == "train" else None)
        return rs.select_columns(ds, ["x", "y"])

    span = float(stats.target_upper - stats.target_lower)
    config = {"cfg": cfg, "in_channels": input_channels(cfg.patches), "norm_stats": stats.to_dict(),
              "target_span": span, "run": run, "fail_once": _fail_once_from_env()}
    progress(f"train: {cfg.model.kind} on Ray Train, {tc.workers} {'GPU' if use_gpu else 'CPU'} worker(s), "
             f"up to {tc.epochs} epochs -> {storage_path}")
    t0 = time.perf_counter()
    try:
        result = rs.run_torch_trainer(train_func, config, datasets={"train": dataset("train"), "val": dataset("val")},
                                      num_workers=tc.workers, use_gpu=use_gpu, cpus_per_worker=tc.cpus_per_worker,
                                      storage_path=storage_path, storage_filesystem=storage_fs, name=RUN_NAME,
                                      max_failures=tc.max_failures, num_to_keep=CHECKPOINTS_KEPT)
    except Exception as err:
        cause = rs.training_failure(err)
        if cause is None:
            raise
        if isinstance(cause, SmrayError):
            raise SmrayError(str(cause)) from None
        lines = str(cause).strip().splitlines()
        raise SmrayError(f"training failed after {tc.max_failures} retries: {type(cause).__name__}: "
                         f"{lines[-1] if lines else ''}") from None
    fit_s = time.perf_counter() - t0
    name = rs.result_checkpoint_name(result) or (previous[0] if previous else None)
    if name is None:
        raise SmrayError(f"{out_url}: training reported no checkpoint")
    return _finish_torch(cfg, stats, out_url, storage, name, resumed_from, n_train, n_val, common, use_gpu=use_gpu,
                         fit_s=fit_s, ret=getattr(result, "return_value", None) or {}, storage_path=storage_path)


def _finish_torch(cfg: Config, stats: NormStats, out_url: str, storage: StorageConfig, name: str, resumed_from: int,
                  n_train: int, n_val: int, common: dict[str, Any], *, use_gpu: bool, fit_s: float,
                  ret: dict[str, Any], storage_path: str) -> TrainSummary:
    """model.pt (best weights + statistics) and training.json from the run's checkpoint ``name``."""
    tc = cfg.train
    fs, run_dir, _ = _checkpoint_dirs(out_url, storage)
    last = load_checkpoint((fs, join(run_dir, name, LAST_FILE)), cfg.model, cfg.patches)
    best = load_checkpoint((fs, join(run_dir, name, BEST_FILE)), cfg.model, cfg.patches)
    history = list(last.extra.get("history", []))
    stopper = last.extra.get("early_stopping", {})
    best_epoch = int(stopper.get("best_epoch", 0))
    best_row = next((h for h in history if h["epoch"] == best_epoch), history[-1] if history else {})
    this_run = [h for h in history if h["epoch"] > resumed_from]
    train_s = sum(h.get("train_s", 0.0) for h in this_run)
    samples = sum(h.get("train_n", 0) for h in this_run)
    summary = TrainSummary(
        kind=cfg.model.kind, out=out_url, artefact=join(out_url, MODEL_FILE), n_train=n_train, n_val=n_val,
        val_loss=float(best_row.get("val_loss", math.nan)), val_rmse=float(best_row.get("val_rmse", math.nan)),
        val_r2=float(best_row.get("val_r2", math.nan)), val_rmse_m3=float(best_row.get("val_rmse_m3", math.nan)),
        seconds=0.0, epochs_completed=last.epoch, resumed_from=resumed_from, best_epoch=best_epoch,
        stopped_early=bool(history and history[-1].get("stop")) and last.epoch < tc.epochs,
        samples_per_s=samples / train_s if train_s > 0 else math.nan, workers=tc.workers, history=history)
    extra = {"best_epoch": best_epoch, "epochs_completed": last.epoch, "history": history,
             "val_loss": summary.val_loss, "val_rmse": summary.val_rmse, "val_r2": summary.val_r2,
             "val_rmse_m3": summary.val_rmse_m3, "run": last.extra.get("run")}
    artefact = ModelCheckpoint(model_state=best.model_state, in_channels=best.in_channels,
                               signature=config_signature(cfg.model, cfg.patches), epoch=best_epoch,
                               best_metric=float(stopper.get("best", math.nan)), norm_stats=stats.to_dict(),
                               optimizer_state=None, extra=json_safe(extra))
    save_checkpoint(join(out_url, MODEL_FILE), artefact, storage=storage)
    write_json(join(out_url, TRAINING_FILE), storage, {
        **common, "model": MODEL_FILE, "fingerprint": artefact.fingerprint, "workers": tc.workers,
        "use_gpu": use_gpu, "epochs_completed": last.epoch, "resumed_from": resumed_from, "best_epoch": best_epoch,
        "stopped_early": summary.stopped_early, "val_loss": summary.val_loss, "val_rmse": summary.val_rmse,
        "val_r2": summary.val_r2, "val_rmse_m3": summary.val_rmse_m3, "history": history,
        "samples_per_s": summary.samples_per_s, "samples_per_s_end_to_end": samples / fit_s if fit_s > 0 else None,
        "timings": {"fit_s": fit_s, "train_s": train_s, "epoch_s": [h.get("train_s", 0.0) + h.get("val_s", 0.0)
                                                                    for h in this_run]},
        "start_epoch": ret.get("start_epoch", resumed_from),
        "start_weights_sha256": ret.get("start_weights_sha256") or (None if ret else state_sha256(last.model_state)),
        "last_weights_sha256": state_sha256(last.model_state), "best_weights_sha256": state_sha256(best.model_state),
        "ray_train": {"storage_path": storage_path, "name": RUN_NAME, "checkpoint": name},
    })
    return summary


# --------------------------------------------------------------------------------------------
# The SVR baseline
# --------------------------------------------------------------------------------------------
def _splitmix_uniform(*keys: np.ndarray, seed: int) -> np.ndarray:
    """A uniform [0, 1) number per row, a fixed function of the integer ``keys`` and ``seed``."""
    with np.errstate(over="ignore"):
        h = np.full(np.broadcast_shapes(*(np.shape(k) for k in keys)), np.uint64(seed % 2**63) ^ np.uint64(0x5DEECE66D))
        for k in keys:
            h = h * np.uint64(0x9E3779B97F4A7C15) + np.asarray(k).astype(np.int64).astype(np.uint64)
            h ^= h >> np.uint64(30)
            h *= np.uint64(0xBF58476D1CE4E5B9)
            h ^= h >> np.uint64(27)
            h *= np.uint64(0x94D049BB133111EB)
            h ^= h >> np.uint64(31)
    return (h >> np.uint64(11)).astype(np.float64) / float(2**53)


def _keep_fraction(batch: dict[str, np.ndarray], *, fraction: float, seed: int) -> dict[str, np.ndarray]:
    u = _splitmix_uniform(batch["day"], batch["pass_index"], batch["row"], batch["col"], seed=seed)
    keep = u < fraction
    return {"x": batch["x"][keep], "y": batch["y"][keep]}


def _svr_sums(batch: dict[str, np.ndarray], *, model: Any) -> dict[str, np.ndarray]:
    from smray.baselines import predict_svr

    pred = predict_svr(model, batch["x"])
    y = np.asarray(batch["y"], dtype=np.float64)
    dropped = float((~(np.isfinite(pred) & np.isfinite(y))).sum())
    return {"sums": np.append(pair_sums(pred, y, shift=TARGET_SHIFT), dropped)[None, :]}


def _run_svr(cfg: Config, cube_url: str, storage: StorageConfig, dates: list[dt.date], stats: NormStats,
             out_url: str, n_train: int, n_val: int, common: dict[str, Any],
             progress: Callable[[str], None], *, shards: Any = None) -> TrainSummary:
    from smray import raysupport as rs
    from smray.baselines import fit_svr, save_svr, svr_grid

    tc = cfg.train
    write_json(join(out_url, NORMALISATION_FILE), storage, stats.to_dict())

    def subsample(split: str, want: int, available: int) -> dict[str, np.ndarray]:
        # a little more than needed, then the first `want`
        fraction = min(1.0, 1.1 * want / available + 20.0 / available)
        ds = patch_stream(cfg, cube_url, storage, dates, stats, split, shards=shards)
        ds = rs.map_batches(ds, _keep_fraction, batch_size=None, fn_kwargs={"fraction": fraction, "seed": tc.seed})
        batch = rs.take_batch(ds, want)
        if not batch or len(batch["y"]) < 2:
            raise SmrayError(f"{cube_url}: the SVR's {split} subsample of {dates[0]}..{dates[-1]} is empty")
        return batch

    grid = svr_grid(tc)
    t0 = time.perf_counter()
    batch = subsample("train", min(tc.svr_max_samples, n_train), n_train)
    val_batch = subsample("val", min(tc.svr_search_samples, n_val), n_val) if len(grid) > 1 else {}
    if len(grid) > 1:
        progress(f"train: svr ({tc.svr_features} features) choosing C, ε, γ among {len(grid)} combinations, each "
                 f"fitted on {min(tc.svr_search_samples, len(batch['y']))} training and scored on "
                 f"{len(val_batch['y'])} validation patches")
    model, n_fitted = fit_svr(batch["x"], batch["y"], tc, signature=config_signature(cfg.model, cfg.patches),
                              x_val=val_batch.get("x"), y_val=val_batch.get("y"))
    fit_s = time.perf_counter() - t0
    span = float(stats.target_upper - stats.target_lower)
    if model.search:
        progress(search_line(model, span))
    save_svr(join(out_url, SVR_FILE), model, storage=storage)
    shipped = dataclasses.replace(model, estimator=None)
    t1 = time.perf_counter()
    val = patch_stream(cfg, cube_url, storage, dates, stats, "val", shards=shards)
    val = rs.map_batches(rs.select_columns(val, ["x", "y"]), _svr_sums, batch_size=None, fn_kwargs={"model": shipped})
    sums = np.zeros(len(SUM_FIELDS))
    for b in rs.iter_numpy_batches(val):
        sums += np.asarray(b["sums"], dtype=np.float64).reshape(-1, len(SUM_FIELDS)).sum(axis=0)
    val_s = time.perf_counter() - t1
    m = metrics_from_sums(sums)
    summary = TrainSummary(kind="svr", out=out_url, artefact=join(out_url, SVR_FILE), n_train=n_train, n_val=n_val,
                           val_loss=m["loss"], val_rmse=m["rmse"], val_r2=m["r2"], val_rmse_m3=m["rmse"] * span,
                           seconds=0.0, n_fitted=n_fitted, workers=1, svr=model.hyperparameters())
    write_json(join(out_url, TRAINING_FILE), storage, json_safe({
        **common, "model": SVR_FILE, "fingerprint": model.fingerprint, "n_fitted": n_fitted,
        "n_support": int(model.support_vectors.shape[0]), "gamma": model.gamma, "features": model.features,
        "svr_c": model.c, "svr_epsilon": model.epsilon, "svr_gamma_factor": model.gamma_factor,
        "svr_search": model.search,
        "val_loss": m["loss"], "val_rmse": m["rmse"], "val_r2": m["r2"], "val_bias": m["bias"], "val_n": m["n"],
        "val_rmse_m3": m["rmse"] * span, "timings": {"fit_s": fit_s, "val_s": val_s,
                                                     "search_s": sum(r["seconds"] for r in model.search)},
        "samples_per_s": n_fitted / fit_s if fit_s > 0 else None,
    }))
    return summary


def search_line(model: Any, span: float) -> str:
    """One progress line: every grid point's validation R² / RMSE (m³/m³) and the one chosen."""
    from smray.baselines import best_point

    best = best_point(model.search)
    points = "; ".join(f"C {r['c']:g} ε {r['epsilon']:g} γ {r['gamma_factor']:g}×: R² {r['val_r2']:.3f}, "
                       f"{math.sqrt(r['val_mse']) * span:.4f}" + (" *" if r is best else "") for r in model.search)
    return (f"train: svr grid (validation R², RMSE m3/m3, {best['n_val']} patches; fitted on {best['n_fit']}): "
            f"{points} -> chosen {model.hyperparameters()}, refitted on {model.n_fitted}")


# --------------------------------------------------------------------------------------------
# When a run is current: the one rule of the train stage, ``smray experiment`` and ``smray predict``
# --------------------------------------------------------------------------------------------
#: config sections whose every setting changes the trained weights
WEIGHT_SECTIONS = ("normalise", "patches", "model")
#: train settings that say where and how robustly training runs, not what it learns
TRAIN_INFRASTRUCTURE = ("use_gpu", "cpus_per_worker", "max_failures")
#: train settings of the epoch stream (a CNN's or pixel model's; the SVR fits one sample, in no order)
TRAIN_STREAM = ("day_order", "shuffle_buffer")
#: train settings of the SVR only (a CNN's or pixel model's run ignores them)
TRAIN_SVR = ("svr_max_samples", "svr_features", "svr_c", "svr_epsilon", "svr_gamma_factor", "svr_search_samples")
#: train settings that are one number or a list of them (a list of one is that number)
TRAIN_GRID = ("svr_c", "svr_epsilon", "svr_gamma_factor")
#: train settings added after runs were first recorded, with the value that does what a run recorded
#: without them did (so such a run stays current under that value)
TRAIN_ADDED = {"day_order": "calendar", "shuffle_buffer": 8192, "svr_features": "centre", "svr_gamma_factor": 1.0,
               "svr_search_samples": 4000}


def _train_value(name: str, value: Any) -> Any:
    if name in TRAIN_GRID and isinstance(value, (int, float, list, tuple)) and not isinstance(value, bool):
        return svr_values(value)
    return value


def kind_config(cfg: Config, kind: str) -> Config:
    """``cfg`` with ``model.kind = kind`` (unchanged for "physical", which is not a trained model)."""
    if kind not in ("cnn", "pixel", "svr"):
        return cfg
    return dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, kind=kind))


def run_state(cfg: Config, kind: str, cube: str, start: dt.date, end: dt.date, out: str,
              storage: StorageConfig) -> StageState:
    """Whether ``out`` holds a finished, current training run of ``kind`` (see the module docstring)."""
    try:
        rec = read_json(join(out, TRAINING_FILE), storage)
    except (FileNotFoundError, SmrayError):
        return StageState(False, f"no {TRAINING_FILE} in {out}")
    fs, path = filesystem(join(out, SVR_FILE if kind == "svr" else MODEL_FILE), storage)
    if not fs.exists(path):
        return StageState(False, f"{out}: {TRAINING_FILE} without its model")
    kcfg = kind_config(cfg, kind)
    want = {"kind": kind, "cube": cube, "train_start": start.isoformat(), "train_end": end.isoformat(),
            "fingerprint": config_fingerprint(kcfg.model, kcfg.patches)}
    differ = [k for k, v in want.items() if rec.get(k) != v]
    old, now = rec.get("config") or {}, json_safe(to_dict(kcfg))
    differ += [s for s in WEIGHT_SECTIONS if old.get(s) != now[s]]
    if (old.get("qc") or {}).get("block") != now["qc"]["block"]:
        differ.append("qc.block")
    ignored = TRAIN_INFRASTRUCTURE + (TRAIN_STREAM if kind == "svr" else TRAIN_SVR)
    trained = {**TRAIN_ADDED, **(old.get("train") or {})}
    differ += [f"train.{k}" for k in now["train"]
               if k not in ignored and _train_value(k, trained.get(k)) != _train_value(k, now["train"][k])]
    if differ:
        return StageState(False, f"{out} was trained with other {', '.join(differ[:4])}")
    if kind != "svr":
        history = rec.get("history") or []
        stopped = bool(history and history[-1].get("stop"))
        if int(rec.get("epochs_completed", 0)) < cfg.train.epochs and not stopped:
            return StageState(False, f"{out}: {rec.get('epochs_completed')} of {cfg.train.epochs} epochs")
    return StageState(True, f"{out}/{TRAINING_FILE} matches ({kind}, {want['train_start']}..{want['train_end']})")


def train_kind(cfg: Config, kind: str, cube: str, start: dt.date, end: dt.date, out: str,
               progress: Callable[[str], None]) -> TrainSummary:
    """Train (or resume) ``kind`` into ``out``; returns the training summary."""
    result = run_training(kind_config(cfg, kind), cube, start, end, out, progress=progress)
    progress(result.line())
    return result
