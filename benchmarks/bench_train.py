"""What does Ray Train cost? Training samples/s of the CNN through Ray Train (1 and 2 workers) next to
a bare single-process torch loop on the same patches.

Builds a tiny twin (1° global, ``--days`` days) and its cube with the CLI in a temporary directory
(or uses ``--cube``), then trains the paper's CNN for ``--epochs`` epochs on the same training
patches (``patches.per_day``/``train_per_day``, batch ``--batch``, Adam, seed 0) three ways:

* **bare**: the training patches are cut in this process (:func:`smray.patches.sample_day`, timed
  apart) and held in memory; :func:`smray.train.train_epoch_dp` loops over shuffled numpy batches
  with as many torch threads as a Ray Train worker gets (and once more with torch's default);
* **ray 1**: :func:`smray.train.run_training` with one worker — patches streamed from the cube by
  Ray Data every epoch, validation, metrics, checkpoints, all included;
* **ray 2**: the same with two data-parallel workers (DDP over gloo).

Printed side by side: training samples/s per epoch (first epoch apart: it includes the pipeline's
start), the steady-state ratio bare / Ray Train (target ≤ 1.3), and end-to-end samples/s including
worker start-up. Example::

    .venv/bin/python benchmarks/bench_train.py --days 4 --epochs 3
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

START = dt.date(2011, 7, 1)


def build_cube(root: Path, days: int) -> str:
    from smray.cli import main

    twin, out = root / "twin", root / "cube.zarr"
    cfg = root / "grid.yaml"
    cfg.write_text("grid:\n  res: 1.0\n")
    end = START + dt.timedelta(days=days - 1)
    assert main(["synth", "--out", str(twin), "--start", START.isoformat(), "--days", str(days), "--res", "1",
                 "--spinup-days", "3"]) == 0
    assert main(["ingest", "--tb", f"{twin}/amsr", "--ref", f"{twin}/era_interim", "--start", START.isoformat(),
                 "--end", end.isoformat(), "--out", str(out), "--config", str(cfg)]) == 0
    return str(out)


def bare_loop(cfg, cube_url: str, dates: list[dt.date], epochs: int, threads: int | None) -> dict:
    """Cut the training patches in-process, then train the CNN on them in memory."""
    import torch

    from smray.models import build_model, input_channels
    from smray.normalise import fit_stats
    from smray.patches import sample_day
    from smray.train import train_epoch_dp
    from smray.trainloop import array_batches, make_optimizer, seed_everything

    t0 = time.perf_counter()
    stats = fit_stats(cube_url, None, dates[0], dates[-1], cfg.normalise, cfg.qc.block, cfg.patches, use_ray=False)
    parts = [sample_day(cube_url, None, d, cfg.patches, cfg.qc.block, stats) for d in dates]
    x = np.concatenate([p["x"][~p["is_val"]] for p in parts])
    y = np.concatenate([p["y"][~p["is_val"]] for p in parts])
    prep_s = time.perf_counter() - t0
    old = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        seed_everything(cfg.train.seed)
        model = build_model(cfg.model, input_channels(cfg.patches))
        opt = make_optimizer(model, cfg.train)
        rates = []
        for epoch in range(epochs):
            t = time.perf_counter()
            out = train_epoch_dp(model, array_batches(x, y, cfg.train.batch_size, shuffle=True, seed=epoch), opt)
            rates.append(float(out["sums"][0]) / (time.perf_counter() - t))
        used = torch.get_num_threads()
    finally:
        torch.set_num_threads(old)
    return {"n": len(y), "rates": rates, "prep_s": prep_s, "threads": used}


def ray_run(cfg, cube_url: str, end: dt.date, out: str, workers: int) -> dict:
    """run_training on ``workers`` Ray Train workers; rates from its training.json."""
    from smray.checkpoint import read_training_json
    from smray.train import run_training

    t = time.perf_counter()
    summary = run_training(cfg, cube_url, START, end, out, workers=workers, progress=lambda _: None)
    wall = time.perf_counter() - t
    info = read_training_json(out)
    hist = info["history"]
    return {"n": hist[0]["train_n"], "rates": [h["samples_per_s"] for h in hist], "wall_s": wall,
            "fit_s": info["timings"]["fit_s"], "end_to_end": sum(h["train_n"] for h in hist) / info["timings"]["fit_s"],
            "threads": hist[0].get("torch_threads"), "val_r2": summary.val_r2}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--days", type=int, default=4, help="days of the twin / training period")
    ap.add_argument("--epochs", type=int, default=3, help="epochs per run (the first includes pipeline start)")
    ap.add_argument("--batch", type=int, default=256, help="batch size per worker")
    ap.add_argument("--per-day", type=int, default=8000, help="training patches per day")
    ap.add_argument("--num-cpus", type=int, default=4, help="logical CPUs of the local Ray runtime")
    ap.add_argument("--cube", help="use this cube instead of building a twin (its first --days days)")
    args = ap.parse_args(argv)
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")

    from smray.config import RayConfig, load_config
    from smray.raysupport import init_ray, shutdown_ray

    root = Path(tempfile.mkdtemp(prefix="smray-bench-train-"))
    try:
        cube_url = args.cube or build_cube(root, args.days)  # the CLI starts and stops its own Ray runtime
        cfg = load_config(None, {
            "patches": {"per_day": args.per_day + 200, "train_per_day": args.per_day, "val_per_day": 200},
            "train": {"epochs": args.epochs, "batch_size": args.batch, "patience": 0, "cpus_per_worker": 1.0}})
        dates = [START + dt.timedelta(days=i) for i in range(args.days)]
        # the bare loops first, while no Ray runtime is running beside them
        bare = bare_loop(cfg, cube_url, dates, args.epochs, threads=1)
        bare_default = bare_loop(cfg, cube_url, dates, args.epochs, threads=None)
        started = init_ray(RayConfig(num_cpus=args.num_cpus))
        try:
            r1 = ray_run(cfg, cube_url, dates[-1], str(root / "ray1"), 1)
            r2 = ray_run(cfg, cube_url, dates[-1], str(root / "ray2"), 2)
        finally:
            shutdown_ray(started)
    finally:
        shutil.rmtree(root, ignore_errors=True)

    def steady(rates: list[float]) -> float:
        rest = rates[1:] or rates
        return float(np.mean(rest))

    print(f"CNN, {args.days} days x {args.per_day} training patches = {bare['n']} per epoch, batch {args.batch}, "
          f"{args.epochs} epochs, {os.cpu_count()} cores, Ray runtime {args.num_cpus} logical CPUs")
    print(f"{'run':<28}{'threads':>8}{'epoch 1':>10}{'steady':>10}{'end-to-end':>12}   (training samples/s)")
    rows = [
        (f"bare loop ({bare['threads']} thread)", bare["threads"], bare["rates"][0], steady(bare["rates"]), None),
        (f"bare loop (default, {bare_default['threads']} thr)", bare_default["threads"], bare_default["rates"][0],
         steady(bare_default["rates"]), None),
        ("Ray Train, 1 worker", r1["threads"], r1["rates"][0], steady(r1["rates"]), r1["end_to_end"]),
        ("Ray Train, 2 workers", r2["threads"], r2["rates"][0], steady(r2["rates"]), r2["end_to_end"]),
    ]
    for name, thr, first, st, e2e in rows:
        print(f"{name:<28}{thr!s:>8}{first:>10.0f}{st:>10.0f}{(f'{e2e:.0f}' if e2e else '-'):>12}")
    print(f"bare patch cutting (in-process, not in the rates): {bare['prep_s']:.1f} s; Ray Train wall time "
          f"1 worker {r1['wall_s']:.0f} s (fit {r1['fit_s']:.0f} s), 2 workers {r2['wall_s']:.0f} s "
          f"(fit {r2['fit_s']:.0f} s)")
    ratio = steady(bare["rates"]) / steady(r1["rates"])
    print(f"overhead bare / Ray Train (1 worker, steady state, same threads): {ratio:.2f}x (target <= 1.3x)"
          + ("" if r1["threads"] == bare["threads"] else f" [threads differ: {r1['threads']} vs {bare['threads']}]"))
    print(f"speed-up 2 workers / 1 worker (steady state): {steady(r2['rates']) / steady(r1['rates']):.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
