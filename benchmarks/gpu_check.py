"""GPU check: the paper's CNN on one device, fp32 vs bf16, printed as one table. torch only, no Ray.

Runs anywhere smray's torch code runs (``smray.models``, ``smray.trainloop``, ``smray.inference``
import no Ray, no zarr, no storage), so a bare GPU machine needs only torch, numpy and PyYAML:

1. **training samples/s** — Adam steps on patches held on the device (``trainloop.train_epoch_dp``,
   ``precision`` fp32 / bf16 = AMP autocast), batch ``--batch``;
2. **time to the paper's validation loss** — epochs over the cached training patches until the
   validation MSE (scaled units) reaches the paper's test RMSE 0.1272² = 0.0162 (Table 2), or
   ``--max-epochs``; wall time including validation;
3. **inference per global map** — one 0.25° image (720×1440, land mask of a summer day), model
   time of the batched patch-wise forward and of the masked fully convolutional forward
   (``fcn_forward``), fp32 and bf16, best of ``--reps``, and what that makes for the whole
   2002–2011 archive (3,395 days × 2 passes).

Cached patches: ``--patches FILE.npz`` with ``x`` (N, 4, 9, 9) float32 scaled TBs, ``y`` (N,) scaled
targets, and ``x_val``/``y_val``; without it, seeded synthetic patches with a learnable target (their
loss floor is ~0.004, below the paper's value). There is no export script: on a machine with the
cube, ``smray.patches.sample_day(cube, None, day, cfg.patches, cfg.qc.block,
smray.normalise.load_stats(cube, None))`` gives one day's ``x``, ``y`` and ``is_val`` (the training /
validation split); concatenate the days and ``np.savez`` them under those four names.

On a GPU machine (``--device cuda`` is the default when CUDA is present)::

    python benchmarks/gpu_check.py                        # full sizes
    python benchmarks/gpu_check.py --device cpu --small   # a CPU smoke run (tests/test_gpu_check.py)
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository's smray without installing

from smray.config import TrainConfig  # noqa: E402
from smray.inference import autocast, host_to_device, prepare_for_inference, synchronize  # noqa: E402
from smray.models import PaperCNN, fcn_forward, patchwise_forward  # noqa: E402
from smray.trainloop import eval_sums, make_optimizer, metrics_from_sums, seed_everything, train_epoch_dp  # noqa: E402

#: the paper's CNN test RMSE (normalised units, Table 2); its square is the validation-loss goal
PAPER_RMSE = 0.1272
#: AMSR-E days 2002-06-19 .. 2011-10-04 and passes: the archive the reprocessing covers
ARCHIVE_DAYS, PASSES = 3395, 2


def synthetic_patches(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` seeded (4, 9, 9) patches of smooth fields in [0, 1] and a nonlinear scaled target with
    noise (std 0.06, so the reachable MSE is ~0.004)."""
    rng = np.random.default_rng(seed)
    coarse = rng.random((n, 4, 3, 3)).astype(np.float32)
    x = np.kron(coarse, np.ones((3, 3), np.float32)) * 0.8 + 0.2 * rng.random((n, 4, 9, 9), dtype=np.float32)
    h, v = x[:, 0].mean(axis=(1, 2)), x[:, 1, 3:6, 3:6].mean(axis=(1, 2))
    y = 0.95 - 0.7 * h + 0.5 * (v - h) ** 2 + 0.15 * x[:, 2, 4, 4] + rng.normal(0, 0.06, n)
    return x, np.clip(y, 0, 1).astype(np.float32)


def load_patches(path: str | None, n: int, n_val: int) -> tuple[np.ndarray, ...]:
    if path:
        with np.load(path) as z:
            return tuple(np.asarray(z[k], np.float32) for k in ("x", "y", "x_val", "y_val"))
    x, y = synthetic_patches(n + n_val, 0)
    return x[:n], y[:n], x[n:], y[n:]


def device_batches(x: torch.Tensor, y: torch.Tensor, batch: int, seed: int):
    """Shuffled batches of patches already on the device (the cached-patch case: no host copies)."""
    g = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(y), generator=g).to(x.device)
    for s in range(0, len(y), batch):
        idx = order[s:s + batch]
        yield x[idx], y[idx]


def train_rate(x: torch.Tensor, y: torch.Tensor, precision: str, batch: int, device: torch.device,
               min_seconds: float) -> float:
    """Steady-state training samples/s (one warm-up epoch, then epochs until ``min_seconds``)."""
    seed_everything(0, deterministic=False)
    model = PaperCNN(4).to(device)
    opt = make_optimizer(model, TrainConfig(lr=3e-4))
    train_epoch_dp(model, device_batches(x[:batch * 8], y[:batch * 8], batch, 0), opt, precision=precision)
    synchronize(device)
    n, t0, epoch = 0, time.perf_counter(), 0
    while time.perf_counter() - t0 < min_seconds or epoch == 0:
        out = train_epoch_dp(model, device_batches(x, y, batch, epoch), opt, precision=precision)
        n += int(out["sums"][0])
        epoch += 1
    synchronize(device)
    return n / (time.perf_counter() - t0)


def time_to_loss(data: tuple[torch.Tensor, ...], precision: str, batch: int, device: torch.device,
                 max_epochs: int, goal: float) -> tuple[float, int, float]:
    """(seconds, epochs, best validation MSE) until the validation MSE ≤ ``goal`` (inf seconds when
    ``max_epochs`` pass first)."""
    x, y, xv, yv = data
    seed_everything(0, deterministic=False)
    model = PaperCNN(4).to(device)
    opt = make_optimizer(model, TrainConfig(lr=3e-4))
    best, t0 = math.inf, time.perf_counter()
    for epoch in range(1, max_epochs + 1):
        train_epoch_dp(model, device_batches(x, y, batch, epoch), opt, precision=precision)
        val = metrics_from_sums(eval_sums(model, device_batches(xv, yv, 8192, 0), precision))["loss"]
        best = min(best, val)
        if val <= goal:
            synchronize(device)
            return time.perf_counter() - t0, epoch, best
    return math.inf, max_epochs, best


def land_mask(ny: int, nx: int) -> np.ndarray:
    """Land of a summer day on a global grid (``global_land_mask`` when installed, 56°S–54°N; else a
    seeded blob mask of the same land fraction, ~16 % of the cells)."""
    lat = 90 - (np.arange(ny) + 0.5) * 180 / ny
    try:
        from global_land_mask import globe

        lon = -180 + (np.arange(nx) + 0.5) * 360 / nx
        land = globe.is_land(*np.meshgrid(lat, lon, indexing="ij"))
    except ImportError:
        rng = np.random.default_rng(0)
        coarse = rng.random((ny // 16 + 1, nx // 16 + 1)) < 0.28
        land = np.kron(coarse, np.ones((16, 16), bool))[:ny, :nx]
    return land & ((lat > -56) & (lat < 54))[:, None]


def time_maps(model: PaperCNN, img: np.ndarray, valid: np.ndarray, device: torch.device,
              reps: int) -> dict[tuple[str, str], float]:
    """Best model time per map of (patch-wise | fcn, fp32 | bf16)."""
    out: dict[tuple[str, str], float] = {}
    image = host_to_device(img, device)
    for precision in ("fp32", "bf16"):
        prepared = prepare_for_inference(model, precision, device)
        for name, fn in (("patch-wise", patchwise_forward), ("fully convolutional", fcn_forward)):
            best = math.inf
            for _ in range(reps + 1):  # the first is a warm-up (cuDNN autotuning, allocator)
                synchronize(device)
                t = time.perf_counter()
                with autocast(device, precision):
                    fn(prepared, image, valid)
                synchronize(device)
                best = min(best, time.perf_counter() - t)
            out[(name, precision)] = best
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--small", action="store_true", help="CPU-sized smoke run (seconds)")
    ap.add_argument("--patches", default=None, help="cached patches .npz (x, y, x_val, y_val)")
    ap.add_argument("--batch", type=int, default=256, help="training batch (the paper's pipeline: 256)")
    ap.add_argument("--max-epochs", type=int, default=None)
    ap.add_argument("--reps", type=int, default=None)
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    args = ap.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: this machine has no CUDA device (try --device cpu --small)")
    if args.threads:
        torch.set_num_threads(args.threads)
    n, n_val, ny, nx = (1024, 256, 64, 128) if args.small else (200_000, 20_000, 720, 1440)
    max_epochs = args.max_epochs or (2 if args.small else 30)
    reps = args.reps or (1 if args.small else 3)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU {platform.machine()}"
    bf16 = device.type != "cuda" or torch.cuda.is_bf16_supported()
    print(f"gpu_check: {name}, torch {torch.__version__}, {'small' if args.small else 'full'} sizes, "
          f"{torch.get_num_threads()} CPU threads, load average {os.getloadavg()[0]:.1f}, bf16 {bf16}", flush=True)

    data = tuple(host_to_device(a, device) for a in load_patches(args.patches, n, n_val))
    goal = PAPER_RMSE ** 2
    rows: list[tuple[str, str, str]] = []
    rate = {p: train_rate(data[0], data[1], p, args.batch, device, 0.3 if args.small else 10.0) for p in ("fp32", "bf16")}
    rows.append((f"training samples/s (batch {args.batch}, {len(data[1])} cached patches)",
                 f"{rate['fp32']:,.0f}", f"{rate['bf16']:,.0f}"))
    ttl = {p: time_to_loss(data, p, args.batch, device, max_epochs, goal) for p in ("fp32", "bf16")}
    rows.append((f"time to val MSE <= {goal:.4f} (paper RMSE {PAPER_RMSE}), s (epochs; best MSE)",
                 *(f"{s:.1f} ({e}; {b:.4f})" if math.isfinite(s) else f"not in {e} epochs (best {b:.4f})"
                   for s, e, b in (ttl["fp32"], ttl["bf16"]))))
    land = land_mask(ny, nx)
    valid = land[4:-4, 4:-4]
    img = np.random.default_rng(0).random((4, ny, nx), dtype=np.float32)
    model = PaperCNN(4).eval()
    maps = time_maps(model, img, valid, device, reps)
    for kind in ("patch-wise", "fully convolutional"):
        rows.append((f"inference per map {ny}x{nx} ({int(valid.sum())} land centres), {kind}, s",
                     f"{maps[(kind, 'fp32')]:.3f}", f"{maps[(kind, 'bf16')]:.3f}"))
    best = min(maps.values())
    rows.append((f"archive model time ({ARCHIVE_DAYS} days x {PASSES} passes, fastest), min",
                 f"{min(maps[(k, 'fp32')] for k in ('patch-wise', 'fully convolutional')) * ARCHIVE_DAYS * PASSES / 60:.1f}",
                 f"{min(maps[(k, 'bf16')] for k in ('patch-wise', 'fully convolutional')) * ARCHIVE_DAYS * PASSES / 60:.1f}"))
    width = max(len(r[0]) for r in rows)
    print(f"\n| {'measure':<{width}} | fp32 | bf16 |")
    print(f"|{'-' * (width + 2)}|---|---|")
    for r in rows:
        print(f"| {r[0]:<{width}} | {r[1]} | {r[2]} |")
    print(f"\nfastest map: {best:.3f} s; 'ray' imported: {'ray' in sys.modules}")


if __name__ == "__main__":
    main()
