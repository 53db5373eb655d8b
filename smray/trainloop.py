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

Batch = tuple[Tensor, Tensor]
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


def _grads_finite(model: nn.Module) -> bool:
    return all(bool(torch.isfinite(p.grad).all()) for p in model.parameters() if p.grad is not None)


def train_epoch(model: nn.Module, batches: Iterable[Batch], optimizer: torch.optim.Optimizer,
                loss_fn: Callable[[Tensor, Tensor], Tensor] | None = None) -> dict[str, Any]:
    """One pass over ``batches`` with one optimiser step per batch.

    Returns ``loss`` (mean of the batch losses weighted by samples used), ``n`` (samples used),
    ``skipped_nonfinite`` (samples dropped for a NaN/inf in x or y) and ``skipped_batches``
    (batches without a step: empty after dropping, or non-finite loss/gradient).
    """
    loss_fn = loss_fn or nn.MSELoss()
    device = next(model.parameters()).device
    model.train()
    total, n, dropped, skipped = 0.0, 0, 0, 0
    for x, y in batches:
        x, y = x.to(device), y.to(device)
        ok = finite_samples(x, y)
        n_ok = int(ok.sum())
        dropped += len(y) - n_ok
        if n_ok == 0:
            skipped += 1
            continue
        if n_ok < len(y):
            x, y = x[ok], y[ok]
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(model(x), y.reshape(-1))
        if not torch.isfinite(loss):
            skipped += 1
            continue
        loss.backward()
        if not _grads_finite(model):
            optimizer.zero_grad(set_to_none=True)
            skipped += 1
            continue
        optimizer.step()
        total += float(loss.detach()) * n_ok
        n += n_ok
    return {"loss": total / n if n else math.nan, "n": n, "skipped_nonfinite": dropped, "skipped_batches": skipped}


def evaluate(model: nn.Module, batches: Iterable[Batch]) -> dict[str, Any]:
    """Validation metrics over all samples of ``batches`` (non-finite samples dropped and counted).

    ``loss`` = MSE, ``rmse`` = √MSE in the units of y, ``r2`` = 1 − SSE/SST with SST about the mean of
    all y (NaN when fewer than 2 samples or constant y), ``bias`` = mean(prediction − y), ``n``.
    Sums are accumulated in float64.
    """
    device = next(model.parameters()).device
    model.eval()
    n, sse, sum_err = 0, 0.0, 0.0
    shift: float | None = None  # sums about a shift (the first target) keep SST accurate
    sum_d, sum_d2, dropped = 0.0, 0.0, 0
    with torch.no_grad():
        for x, y in batches:
            x, y = x.to(device), y.to(device)
            ok = finite_samples(x, y)
            dropped += int((~ok).sum())
            if not bool(ok.any()):
                continue
            yv = y[ok].reshape(-1).double()
            err = model(x[ok]).double() - yv
            if shift is None:
                shift = float(yv[0])
            d = yv - shift
            n += len(yv)
            sse += float((err * err).sum())
            sum_err += float(err.sum())
            sum_d += float(d.sum())
            sum_d2 += float((d * d).sum())
    if n == 0:
        return {"loss": math.nan, "rmse": math.nan, "r2": math.nan, "bias": math.nan, "n": 0,
                "skipped_nonfinite": dropped}
    sst = sum_d2 - sum_d * sum_d / n
    mse = sse / n
    r2 = 1.0 - sse / sst if n > 1 and sst > 0 else math.nan
    return {"loss": mse, "rmse": math.sqrt(mse), "r2": r2, "bias": sum_err / n, "n": n,
            "skipped_nonfinite": dropped}


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
        optimizer: torch.optim.Optimizer | None = None, loss_fn: Callable[[Tensor, Tensor], Tensor] | None = None,
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
        tr = train_epoch(model, train_batches_fn(epoch), optimizer, loss_fn)
        va = evaluate(model, val_batches_fn(epoch)) if val_batches_fn is not None else None
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
