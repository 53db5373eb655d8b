"""The Ray-free training loop: it learns, keeps NaN/inf away from the optimiser, stops early, reports
correct metrics and is deterministic for a seed."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from smray.config import TrainConfig
from smray.models import PaperCNN, PixelMLP
from smray.trainloop import (EarlyStopping, array_batches, evaluate, fit, make_optimizer, seed_everything,
                             train_epoch)


def smooth_problem(n: int, *, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Patches ``(n, 4, 9, 9)`` in [0, 1] (smooth random fields) and a target in [0, 1] that is a smooth
    function of the whole patch (centre, neighbourhood mean and a polarisation-like difference)."""
    rng = np.random.default_rng(seed)
    base = rng.random((n, 4, 1, 1))
    grad = rng.normal(0, 0.03, (n, 4, 2, 1, 1))
    ii, jj = np.meshgrid(np.arange(9) - 4, np.arange(9) - 4, indexing="ij")
    x = np.clip(base + grad[:, :, 0] * ii + grad[:, :, 1] * jj + rng.normal(0, 0.01, (n, 4, 9, 9)), 0, 1)
    centre = x[:, :, 4, 4]
    y = (0.5 * (1 - centre[:, 0]) + 0.3 * x[:, 1].mean(axis=(1, 2)) + 0.2 * np.abs(centre[:, 3] - centre[:, 2]))
    return x.astype(np.float32), y.astype(np.float32)


def _cfg(**kw) -> TrainConfig:
    base = dict(optimizer="adam", lr=3e-3, batch_size=32, epochs=6, patience=0, seed=0)
    base.update(kw)
    return TrainConfig(**base)


def test_loss_falls_on_a_smooth_problem():
    seed_everything(0)
    x, y = smooth_problem(512)
    xv, yv = smooth_problem(256, seed=1)
    model = PaperCNN(4, width=0.25)
    cfg = _cfg(epochs=6)
    before = evaluate(model, array_batches(xv, yv, 128))
    history = fit(model, lambda e: array_batches(x, y, cfg.batch_size, shuffle=True, seed=e),
                  lambda e: array_batches(xv, yv, 128), cfg)
    after = evaluate(model, array_batches(xv, yv, 128))
    assert len(history) == 6
    assert history[-1]["train_loss"] < 0.5 * history[0]["train_loss"]
    assert after["loss"] < 0.2 * before["loss"]
    assert after["r2"] > 0.8, after
    assert after["loss"] == pytest.approx(min(h["val_loss"] for h in history))  # best weights restored


def test_evaluate_metrics_match_numpy():
    torch.manual_seed(0)
    model = PixelMLP(4, hidden=(8,)).eval()
    x, y = smooth_problem(300)
    with torch.no_grad():
        pred = model(torch.as_tensor(x)).double().numpy()
    err = pred - y.astype(np.float64)
    m = evaluate(model, array_batches(x, y, 64))
    assert m["n"] == 300
    assert m["loss"] == pytest.approx(np.mean(err**2), rel=1e-9)
    assert m["rmse"] == pytest.approx(np.sqrt(np.mean(err**2)), rel=1e-9)
    assert m["r2"] == pytest.approx(1 - np.sum(err**2) / np.sum((y - y.mean()) ** 2), rel=1e-6)
    assert m["bias"] == pytest.approx(np.mean(err), rel=1e-6)
    constant = evaluate(model, array_batches(x[:5], np.full(5, 0.3, np.float32), 2))
    assert math.isnan(constant["r2"]) and constant["n"] == 5


class GuardedAdam(torch.optim.Adam):
    """Adam that fails the test if a non-finite parameter or gradient ever reaches ``step``."""

    steps = 0

    def step(self, closure=None):
        for group in self.param_groups:
            for p in group["params"]:
                assert torch.isfinite(p).all()
                if p.grad is not None:
                    assert torch.isfinite(p.grad).all(), "non-finite gradient reached the optimiser"
        GuardedAdam.steps += 1
        return super().step(closure)


def test_nonfinite_samples_never_reach_the_optimiser():
    torch.manual_seed(0)
    model = PaperCNN(4, width=0.25)
    opt = GuardedAdam(model.parameters(), lr=1e-3)
    x, y = smooth_problem(96)
    xt, yt = torch.as_tensor(x), torch.as_tensor(y)
    xt[3, 0, 0, 0] = math.nan
    xt[40, 2, 8, 8] = math.inf
    yt[41] = math.nan
    yt[70] = -math.inf
    all_bad_x = torch.full((4, 4, 9, 9), math.nan)
    overflow_x = torch.full((4, 4, 9, 9), 3e38)  # finite input, infinite activations and loss
    batches = [(xt[:32], yt[:32]), (xt[32:64], yt[32:64]), (all_bad_x, torch.zeros(4)),
               (overflow_x, torch.zeros(4)), (xt[64:], yt[64:])]
    GuardedAdam.steps = 0
    out = train_epoch(model, batches, opt)
    assert out["skipped_nonfinite"] == 4 + 4
    assert out["n"] == 96 - 4
    assert out["skipped_batches"] == 2  # the all-NaN one and the overflowing one
    assert GuardedAdam.steps == 3
    assert math.isfinite(out["loss"])
    assert all(torch.isfinite(p).all() for p in model.parameters())
    metrics = evaluate(model, batches)
    assert metrics["skipped_nonfinite"] == 8 and math.isfinite(metrics["loss"])


def test_early_stopping_rule():
    stop = EarlyStopping(patience=2, min_delta=0.01)
    assert stop.step(1.0, 0) and not stop.should_stop
    assert not stop.step(0.995, 1)  # within min_delta: not an improvement
    assert not stop.step(math.nan, 2) and stop.should_stop
    assert stop.best == 1.0 and stop.best_epoch == 0
    restored = EarlyStopping(2)
    restored.load_state_dict(stop.state_dict())
    assert restored.should_stop
    never = EarlyStopping(patience=0)
    for e in range(10):
        never.step(1.0, e)
    assert not never.should_stop


def test_fit_stops_early_and_calls_back():
    torch.manual_seed(0)
    x, y = smooth_problem(64)
    model = PixelMLP(4, hidden=(4,))
    seen = []

    def on_epoch(epoch, metrics, m, opt):
        seen.append((epoch, metrics["improved"], m is model, isinstance(opt, torch.optim.Optimizer)))

    cfg = _cfg(lr=1e-9, epochs=20, patience=2)
    history = fit(model, lambda e: array_batches(x, y, 16), lambda e: array_batches(x, y, 64), cfg,
                  on_epoch=on_epoch, early_stopping=EarlyStopping(2, min_delta=1e-3))
    assert [h["epoch"] for h in history] == [0, 1, 2] and history[-1]["stop"]
    assert seen == [(0, True, True, True), (1, False, True, True), (2, False, True, True)]
    resumed = fit(model, lambda e: array_batches(x, y, 16), None, cfg, start_epoch=18,
                  on_epoch=lambda *a: True)
    assert [h["epoch"] for h in resumed] == [18] and resumed[0]["stop"]


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_same_seed_same_weights(optimizer):
    x, y = smooth_problem(160)
    cfg = _cfg(optimizer=optimizer, epochs=2, lr=1e-2)

    def run() -> dict[str, torch.Tensor]:
        seed_everything(cfg.seed)
        model = PaperCNN(4, width=0.25, dropout=0.2)
        fit(model, lambda e: array_batches(x, y, cfg.batch_size, shuffle=True, seed=cfg.seed + e),
            lambda e: array_batches(x, y, 64), cfg, optimizer=make_optimizer(model, cfg))
        return model.state_dict()

    a, b = run(), run()
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
