"""The Ray-free training loop: epochs over (patches, target) batches, validation metrics, early stopping.

Ray Train wraps this in a ``train_func(config)`` (smray.train) that builds the batches from its
dataset shard and reports/checkpoints in the :func:`fit` ``on_epoch`` callback; nothing here
imports Ray. Batches are ``(x, y)`` tensors: ``x`` ``(N, C, 9, 9)`` scaled TBs, ``y`` ``(N,)``
scaled soil moisture (both float32 in [0, 1]); loss and metrics are in those scaled units.

Non-finite values never reach the optimiser: samples with a NaN/inf anywhere in ``x`` or ``y`` are
dropped from their batch, and a batch whose loss or gradients are non-finite is skipped (no step);
both are counted. On CPU a run is deterministic for a seed (:func:`seed_everything`). Example::

    seed_everything(cfg.train.seed)
    model = build_model(cfg.model, input_channels(cfg.patches))
    history = fit(model, lambda epoch: array_batches(x_tr, y_tr, 256, shuffle=True, seed=epoch),
                  lambda epoch: array_batches(x_va, y_va, 4096), cfg.train)
"""

from __future__ import annotations

import copy
import math
import os
import random
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from smray.config import TrainConfig
from smray.inference import autocast
from smray.metrics import SUMS, error_sums, scores

Batch = tuple[Tensor, Tensor]
#: sums a float64 vector over all data-parallel workers (the identity on one worker)
Reducer = Callable[[Tensor], Tensor]
#: ``on_epoch(epoch, metrics, model, optimizer)``; return True to stop training after this epoch
EpochCallback = Callable[[int, dict[str, Any], nn.Module, torch.optim.Optimizer], bool | None]


def seed_everything(seed: int, deterministic: bool = True) -> None:
    """Seed Python, NumPy and torch; with ``deterministic`` ask torch for deterministic kernels
    (``warn_only``: ops without one still run)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False


def make_optimizer(model: nn.Module, train_cfg: TrainConfig) -> torch.optim.Optimizer:
    """Adam (``lr``, ``weight_decay``) or SGD (``lr``, ``momentum``, ``weight_decay``) per ``train.optimizer``."""
    params = [p for p in model.parameters() if p.requires_grad]
    if train_cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=train_cfg.lr, weight_decay=train_cfg.weight_decay)
    if train_cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=train_cfg.lr, momentum=train_cfg.momentum,
                               weight_decay=train_cfg.weight_decay)
    raise ValueError(f"unknown optimizer {train_cfg.optimizer!r}")


def array_batches(x: np.ndarray | Tensor, y: np.ndarray | Tensor, batch_size: int, *, shuffle: bool = False,
                  seed: int = 0) -> Iterator[Batch]:
    """``(x, y)`` float32 tensor batches from in-memory arrays; ``shuffle`` permutes with ``seed``."""
    xt = torch.as_tensor(np.asarray(x, dtype=np.float32)) if not isinstance(x, Tensor) else x.float()
    yt = torch.as_tensor(np.asarray(y, dtype=np.float32)) if not isinstance(y, Tensor) else y.float()
    n = len(yt)
    order = np.random.default_rng(seed).permutation(n) if shuffle else np.arange(n)
    for s in range(0, n, batch_size):
        idx = torch.as_tensor(order[s:s + batch_size])
        yield xt[idx], yt[idx]


def finite_samples(x: Tensor, y: Tensor) -> Tensor:
    """Bool ``(N,)``: samples whose every input value and target are finite."""
    return torch.isfinite(x.reshape(len(x), -1)).all(dim=1) & torch.isfinite(y.reshape(len(y), -1)).all(dim=1)


#: targets are scaled to [0, 1]; sums of squares are taken about this shift (float64, accurate SST)
TARGET_SHIFT = 0.5
#: layout of the float64 metric sums of :func:`train_epoch_dp` / :func:`eval_sums`: :data:`smray.metrics.SUMS`
#: and the samples dropped for a non-finite value
SUM_FIELDS = (*SUMS, "dropped")


def _grads_finite(model: nn.Module) -> bool:
    return all(bool(torch.isfinite(p.grad).all()) for p in model.parameters() if p.grad is not None)


def _add_sums(acc: Tensor, err: Tensor, y: Tensor) -> None:
    e = err.detach().double().reshape(-1).cpu().numpy()
    acc[:len(SUMS)] += torch.from_numpy(error_sums(e, y.detach().double().reshape(-1).cpu().numpy(),
                                                   shift=TARGET_SHIFT))


def train_epoch_dp(model: nn.Module, batches: Iterable[Batch], optimizer: torch.optim.Optimizer, *,
                   world_size: int = 1, reduce_sum: Reducer | None = None, precision: str = "fp32") -> dict[str, Any]:
    """One pass over this worker's ``batches`` ``(x (N, C, 9, 9), y (N,))``, one optimiser step per
    batch, minimising the mean squared error over the finite samples of the batch *on all workers*.

    With ``world_size`` > 1, ``model`` is wrapped in DistributedDataParallel (which averages the
    gradients over workers) and ``reduce_sum`` sums a tensor over workers; each worker's loss is its
    sum of squared errors × ``world_size`` / (finite samples on all workers), so the averaged
    gradient is exactly that of the global MSE. Every worker runs forward and backward for every
    batch — a worker whose batch has no finite sample contributes a zero gradient — so the
    gradient all-reduces stay in step; a batch with no finite sample anywhere, or non-finite
    gradients after the all-reduce, is skipped on every worker alike. All workers must yield the
    same number of batches (Ray Train's ``streaming_split(equal=True)`` does). ``precision`` "bf16"
    runs the forward passes under bf16 autocast (:func:`smray.inference.autocast`; loss, gradients
    and weights stay fp32).

    Returns ``sums`` (float64 ``(6,)`` in :data:`SUM_FIELDS` order, this worker's samples used, taken
    before each step), ``skipped_batches`` (the same on every worker) and ``steps``.
    """
    if world_size > 1 and reduce_sum is None:
        raise ValueError("train_epoch_dp: world_size > 1 needs reduce_sum")
    device = next(model.parameters()).device
    model.train()
    acc = torch.zeros(len(SUM_FIELDS), dtype=torch.float64)
    dropped, skipped, steps = 0, 0, 0
    for x, y in batches:
        x, y = x.to(device), y.to(device).reshape(-1)
        ok = finite_samples(x, y)
        n_ok = int(ok.sum())
        dropped += len(y) - n_ok
        n_all = n_ok
        if world_size > 1:
            n_all = int(reduce_sum(torch.tensor([float(n_ok)], dtype=torch.float64))[0])  # type: ignore[misc]
        if n_all == 0:
            skipped += 1
            continue
        optimizer.zero_grad(set_to_none=True)
        if n_ok:
            xs, ys = (x, y) if n_ok == len(y) else (x[ok], y[ok])
            with autocast(device, precision):
                pred = model(xs)
            err = pred.reshape(-1).float() - ys
            sse = (err * err).sum()
        else:  # nothing finite here, but the other workers step: join their all-reduce with zeros
            err = None
            with autocast(device, precision):
                zero = model(torch.zeros((1, *x.shape[1:]), dtype=x.dtype, device=device))
            sse = zero.float().sum() * 0.0
        loss = sse * (world_size / n_all)
        if world_size == 1 and not torch.isfinite(loss):
            skipped += 1
            continue
        loss.backward()
        if not _grads_finite(model):
            optimizer.zero_grad(set_to_none=True)
            skipped += 1
            continue
        optimizer.step()
        steps += 1
        if err is not None:
            _add_sums(acc, err, ys)
    acc[SUM_FIELDS.index("dropped")] = float(dropped)
    return {"sums": acc, "skipped_batches": skipped, "steps": steps}


def eval_sums(model: nn.Module, batches: Iterable[Batch], precision: str = "fp32") -> Tensor:
    """Validation sums over the finite samples of ``batches`` (float64 ``(6,)``, :data:`SUM_FIELDS`),
    to be added over workers before :func:`metrics_from_sums`. ``model`` is put in eval mode;
    ``precision`` as in :func:`train_epoch_dp`."""
    device = next(model.parameters()).device
    model.eval()
    acc = torch.zeros(len(SUM_FIELDS), dtype=torch.float64)
    dropped = 0
    with torch.no_grad():
        for x, y in batches:
            x, y = x.to(device), y.to(device).reshape(-1)
            ok = finite_samples(x, y)
            n_ok = int(ok.sum())
            dropped += len(y) - n_ok
            if n_ok == 0:
                continue
            xs, ys = (x, y) if n_ok == len(y) else (x[ok], y[ok])
            with autocast(device, precision):
                pred = model(xs)
            _add_sums(acc, pred.reshape(-1).double() - ys.double(), ys)
    acc[SUM_FIELDS.index("dropped")] = float(dropped)
    return acc


def metrics_from_sums(sums: Tensor | np.ndarray) -> dict[str, float]:
    """``loss`` (MSE), ``rmse``, ``r2`` (1 − SSE/SST, SST about the mean of all targets; NaN for fewer
    than 2 samples or constant targets), ``bias`` (mean prediction − target), ``n`` and
    ``skipped_nonfinite`` from sums added over workers (:data:`SUM_FIELDS`)."""
    s = np.asarray(sums, dtype=np.float64).reshape(len(SUM_FIELDS))
    m = scores(s[:len(SUMS)], shift=TARGET_SHIFT)
    return {"loss": m["mse"], "rmse": m["rmsd"], "r2": m["r2"], "bias": m["bias"], "n": m["n"],
            "skipped_nonfinite": int(s[SUM_FIELDS.index("dropped")])}


def train_epoch(model: nn.Module, batches: Iterable[Batch], optimizer: torch.optim.Optimizer,
                precision: str = "fp32") -> dict[str, Any]:
    """One pass over ``batches`` with one optimiser step per batch, minimising the MSE (the paper's
    Euclidean loss); :func:`train_epoch_dp` on one worker.

    Returns ``loss`` (MSE of the samples used, each taken before its step), ``n`` (samples used),
    ``skipped_nonfinite`` (samples dropped for a NaN/inf in x or y) and ``skipped_batches``
    (batches without a step: empty after dropping, or non-finite loss/gradient).
    """
    out = train_epoch_dp(model, batches, optimizer, precision=precision)
    m = metrics_from_sums(out["sums"])
    return {"loss": m["loss"], "n": m["n"], "skipped_nonfinite": m["skipped_nonfinite"],
            "skipped_batches": out["skipped_batches"]}


def evaluate(model: nn.Module, batches: Iterable[Batch], precision: str = "fp32") -> dict[str, Any]:
    """Validation metrics over all samples of ``batches`` (non-finite samples dropped and counted).

    ``loss`` = MSE, ``rmse`` = √MSE in the units of y, ``r2`` = 1 − SSE/SST with SST about the mean of
    all y (NaN when fewer than 2 samples or constant y), ``bias`` = mean(prediction − y), ``n``.
    Sums are accumulated in float64 (:func:`eval_sums`, :func:`metrics_from_sums`).
    """
    return metrics_from_sums(eval_sums(model, batches, precision))


class EarlyStopping:
    """Stop after ``patience`` epochs without the monitored loss falling by more than ``min_delta``
    (``patience`` 0: never stop). A NaN value never counts as an improvement."""

    def __init__(self, patience: int, min_delta: float = 0.0) -> None:
        self.patience = int(patience)
        self.min_delta = float(min_delta)
        self.best = math.inf
        self.best_epoch = -1
        self.bad_epochs = 0

    def step(self, value: float, epoch: int) -> bool:
        """Record ``value`` for ``epoch``; True when it is a new best."""
        if math.isfinite(value) and value < self.best - self.min_delta:
            self.best, self.best_epoch, self.bad_epochs = float(value), int(epoch), 0
            return True
        self.bad_epochs += 1
        return False

    @property
    def should_stop(self) -> bool:
        return self.patience > 0 and self.bad_epochs >= self.patience

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "best_epoch": self.best_epoch, "bad_epochs": self.bad_epochs}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best = float(state["best"])
        self.best_epoch = int(state["best_epoch"])
        self.bad_epochs = int(state["bad_epochs"])


def fit(model: nn.Module, train_batches_fn: Callable[[int], Iterable[Batch]],
        val_batches_fn: Callable[[int], Iterable[Batch]] | None, train_cfg: TrainConfig, *,
        optimizer: torch.optim.Optimizer | None = None,
        on_epoch: EpochCallback | None = None, start_epoch: int = 0, early_stopping: EarlyStopping | None = None,
        restore_best: bool = True) -> list[dict[str, Any]]:
    """Train for epochs ``start_epoch … train.epochs-1`` with early stopping on the validation loss.

    Args:
        train_batches_fn / val_batches_fn: ``epoch -> batches`` (a fresh iterable each epoch, so the
            caller controls shuffling per epoch). Without validation batches the training loss is
            monitored.
        optimizer: default :func:`make_optimizer`; pass a restored one to resume.
        on_epoch: called after every epoch with ``(epoch, metrics, model, optimizer)``, where Ray
            Train reports and checkpoints; returning True stops training.
        start_epoch / early_stopping: resume position and (restored) stopping state.
        restore_best: load the best epoch's weights into ``model`` at the end.

    Returns:
        One metrics dict per epoch run: ``epoch``, ``train_loss``, ``train_n``, ``skipped_nonfinite``,
        ``skipped_batches``, ``val_loss``, ``val_rmse``, ``val_r2``, ``val_bias``, ``val_n``,
        ``best_val_loss``, ``best_epoch``, ``improved``, ``stop``.
    """
    optimizer = optimizer or make_optimizer(model, train_cfg)
    stopper = early_stopping or EarlyStopping(train_cfg.patience)
    best_state: dict[str, Tensor] | None = None
    history: list[dict[str, Any]] = []
    for epoch in range(start_epoch, train_cfg.epochs):
        tr = train_epoch(model, train_batches_fn(epoch), optimizer, train_cfg.precision)
        va = evaluate(model, val_batches_fn(epoch), train_cfg.precision) if val_batches_fn is not None else None
        monitored = va["loss"] if va is not None else tr["loss"]
        improved = stopper.step(monitored, epoch)
        if improved and restore_best:
            best_state = copy.deepcopy(model.state_dict())
        metrics: dict[str, Any] = {
            "epoch": epoch, "train_loss": tr["loss"], "train_n": tr["n"],
            "skipped_nonfinite": tr["skipped_nonfinite"], "skipped_batches": tr["skipped_batches"],
            "val_loss": va["loss"] if va else math.nan, "val_rmse": va["rmse"] if va else math.nan,
            "val_r2": va["r2"] if va else math.nan, "val_bias": va["bias"] if va else math.nan,
            "val_n": va["n"] if va else 0, "best_val_loss": stopper.best, "best_epoch": stopper.best_epoch,
            "improved": improved, "stop": stopper.should_stop,
        }
        history.append(metrics)
        if on_epoch is not None and on_epoch(epoch, metrics, model, optimizer):
            metrics["stop"] = True
        if metrics["stop"]:
            break
    if restore_best and best_state is not None:
        model.load_state_dict(best_state)
    return history
