"""Does patch sampling keep up with training? samples/s of the sampler next to the paper's CNN on CPU.

Builds a global 0.25° synthetic cube (720 × 1440, a few days, land from the packaged GLOBE mask,
~70% of land pixels valid: swath gaps, frozen high latitudes and RFI blocked) in a temporary
directory, then prints

* ``sample_day`` alone (one process, 35,000 patches per day as in the paper),
* the Ray Data stage (:func:`smray.patches.patch_dataset`) streamed with
  ``iter_torch_batches(batch_size=256)``,
* a plain torch training loop of a stand-in with the paper's layers (conv 20 2×2 → maxpool 2×2
  stride 1 → conv 100 2×2 → maxpool 2×2 stride 2 → conv 200 2×2 → fc 500 → fc 1, ReLU, Adam,
  batch 256) on the same CPUs,

and the ratio "patch sampling / training samples/s" (target ≥ 1). Example::

    .venv/bin/python benchmarks/bench_patches.py --days 4 --num-cpus 2
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import sys
import tempfile
import time

import numpy as np

from smray import cube, normalise, patches, qc
from smray.config import NormConfig, PatchConfig, RayConfig
from smray.grid import Grid, surface_fractions

START = dt.date(2011, 7, 1)


def build_global_cube(url: str, *, days: int, seed: int) -> float:
    """Write the synthetic global cube; returns the share of land pixels (pass, cell, day) left valid."""
    grid = Grid(0.25)
    ny, nx = grid.shape
    rng = np.random.default_rng(seed)
    land = surface_fractions(grid)["land"]
    is_land = land >= 0.5
    lat = grid.lat[:, None] * np.ones((1, nx))
    lon = np.ones((ny, 1)) * grid.lon[None, :]
    cube.create_or_extend(url, None, grid, START, START + dt.timedelta(days=days - 1), land)
    valid, total = 0, 0
    for i in range(days):
        base = 200.0 + 60.0 * np.cos(np.deg2rad(lat)) + rng.normal(0, 8, (ny, nx))
        tb = np.empty((2, 4, ny, nx), np.float32)
        for c, offset in enumerate((0.0, 15.0, 5.0, 18.0)):  # 06H, 06V, 10H, 10V
            tb[:, c] = np.where(is_land, base + offset, 120.0 + offset) + rng.normal(0, 2, (2, ny, nx))
        q = np.zeros((2, ny, nx), np.uint16)
        q[:, ~is_land] |= qc.FLAGS["open_water"]
        q[:, is_land & (land < 0.95)] |= qc.FLAGS["coastal"]
        for p in range(2):  # swath gaps: diagonal stripes without observation, ~10% of cells
            phase = (lon + 2.5 * lat + 37.0 * i + 90.0 * p) % 100.0
            gap = phase < 10.0
            tb[p][:, gap] = np.nan
            q[p][gap] |= qc.FLAGS["no_observation"]
        q[:, (lat > 75.0) | (lat < -80.0)] |= qc.FLAGS["frozen_or_snow"]  # Greenland, Arctic, inner Antarctica
        q[rng.uniform(size=q.shape) < 0.02] |= qc.FLAGS["rfi_strong"]
        sw = np.where(is_land, rng.uniform(0.05, 0.45, (ny, nx)), np.nan).astype(np.float32)
        cube.write_day(url, None, START + dt.timedelta(days=i), tb, q, sw)
        ok = (q & qc.mask_of(qc.DEFAULT_BLOCKING)) == 0
        valid += int((ok & is_land).sum())
        total += int(2 * is_land.sum())
    return valid / total


def paper_cnn(channels: int):
    import torch.nn as nn

    return nn.Sequential(
        nn.Conv2d(channels, 20, 2), nn.ReLU(), nn.MaxPool2d(2, stride=1),
        nn.Conv2d(20, 100, 2), nn.ReLU(), nn.MaxPool2d(2, stride=2),
        nn.Conv2d(100, 200, 2), nn.ReLU(), nn.Flatten(),
        nn.Linear(200 * 2 * 2, 500), nn.ReLU(), nn.Linear(500, 1))


def training_rate(channels: int, steps: int, batch: int = 256) -> float:
    """Training samples/s of the paper's CNN (forward, MSE, backward, Adam step) on random batches."""
    import torch

    torch.manual_seed(0)
    model = paper_cnn(channels)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x = torch.rand(batch, channels, 9, 9)
    y = torch.rand(batch, 1)
    loss_fn = torch.nn.MSELoss()

    def step() -> None:
        opt.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()

    for _ in range(5):
        step()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    return steps * batch / (time.perf_counter() - t0)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--days", type=int, default=4, help="days in the synthetic cube")
    ap.add_argument("--num-cpus", type=int, default=os.cpu_count() or 2, help="CPUs of the local Ray runtime")
    ap.add_argument("--train-steps", type=int, default=60, help="timed training steps of batch 256")
    ap.add_argument("--keep", help="write the cube here and keep it (default: a temporary directory)")
    args = ap.parse_args(argv)

    root = args.keep or tempfile.mkdtemp(prefix="smray-bench-")
    url = os.path.join(root, "cube.zarr")
    try:
        t0 = time.perf_counter()
        share = build_global_cube(url, days=args.days, seed=0)
        print(f"cube: global 0.25 deg 720x1440, {args.days} days, {share:.0%} of land pixels valid "
              f"(built in {time.perf_counter() - t0:.1f} s)")
        dates = cube.info(url).dates
        cfg = PatchConfig()  # 9x9x4, 35,000 per day: 30,000 train + 5,000 val
        t0 = time.perf_counter()
        stats = normalise.fit_stats(url, None, dates[0], dates[-1], NormConfig(), qc.DEFAULT_BLOCKING, cfg,
                                    use_ray=False)
        print(f"fit_stats (plain loop): {time.perf_counter() - t0:.2f} s for {len(dates)} days")

        n_all = n_train = 0
        t0 = time.perf_counter()
        for d in dates:
            s = patches.sample_day(url, None, d, cfg, qc.DEFAULT_BLOCKING, stats)
            n_all += s["y"].size
            n_train += int((~s["is_val"]).sum())
        dt_day = time.perf_counter() - t0
        rate_day = n_train / dt_day
        print(f"sample_day alone (1 process): {n_all / dt_day:,.0f} samples/s "
              f"({rate_day:,.0f} training samples/s; {dt_day / len(dates):.2f} s per day)")

        from smray.raysupport import init_ray, shutdown_ray

        started = init_ray(RayConfig(num_cpus=args.num_cpus))
        try:
            ds = patches.patch_dataset(url, None, dates, cfg, qc.DEFAULT_BLOCKING, stats, split="train")
            n = 0
            t0 = time.perf_counter()
            for batch in ds.iter_torch_batches(batch_size=256):
                n += batch["y"].shape[0]
            dt_ray = time.perf_counter() - t0
            rate_ray = n / dt_ray
            print(f"Ray Data stage, iter_torch_batches(256), {args.num_cpus} CPUs: {rate_ray:,.0f} training "
                  f"samples/s ({n:,} samples in {dt_ray:.1f} s, including start-up)")
        finally:
            shutdown_ray(started)

        import torch

        rate_train = training_rate(len(cfg.channels), args.train_steps)
        print(f"training, paper's CNN, batch 256, Adam, torch {torch.__version__} on "
              f"{torch.get_num_threads()} threads: {rate_train:,.0f} samples/s")
        print(f"patch sampling / training samples/s: sample_day {rate_day / rate_train:.1f}, "
              f"Ray Data stage {rate_ray / rate_train:.1f} (target >= 1)")
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
