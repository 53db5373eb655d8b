"""Global inference, measured side by side in one run (numbers in docs/predict.md).

(a) one global 0.25° map (one pass, the land pixels with valid inputs): the masked fully
    convolutional forward (``fcn_forward``) vs a plain batched patch-wise torch forward
    (``patchwise_forward``), same model, same threads;
(b) the SVR baseline on the same land pixels (``smray.baselines.predict_svr``, the RBF kernel
    expansion the pipeline uses);
(c) ``run_predict`` over N days on the Ray Data actor pool vs the same per-day work (reads,
    inference, writes) in a plain single-process loop (``engine="local"``), both into fresh stores.

Uses the demo cube and trained models when present (``.smray/paper``), else builds a small twin,
cube and models under ``--work``::

    nice -n 10 .venv/bin/python benchmarks/bench_infer.py --days 5
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from smray import cube as cubemod
from smray.config import load_config
from smray.models import fcn_forward, patchwise_forward
from smray.predict import Predictor, calibrate, day_inputs, describe_model, prediction_mask, run_predict
from smray.raysupport import init_ray, shutdown_ray


def best(fn, reps: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(reps):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return min(times), out


def build_small(work: Path) -> tuple[str, str, str]:
    """A 1° twin of 10 days, its cube, a 2-epoch CNN and an SVR on the first 5 days."""
    from smray.cli import main
    from smray.train import run_training

    twin, cube = work / "twin", work / "cube.zarr"
    cfg = work / "cfg.yaml"
    cfg.write_text("grid:\n  res: 1.0\ntrain:\n  epochs: 2\n  cpus_per_worker: 0.5\n  svr_max_samples: 2000\n"
                   "patches:\n  per_day: 3000\n  train_per_day: 2500\n  val_per_day: 500\n")
    main(["synth", "--out", str(twin), "--days", "10", "--res", "1.0", "--spinup-days", "3"])
    main(["ingest", "--tb", f"{twin}/amsr", "--ref", f"{twin}/era_interim", "--start", "2011-07-01",
          "--end", "2011-07-10", "--out", str(cube), "--config", str(cfg)])
    c = load_config(cfg)
    run_training(c, str(cube), "2011-07-01", "2011-07-05", str(work / "cnn"))
    run_training(c, str(cube), "2011-07-01", "2011-07-05", str(work / "svr"), model_kind="svr")
    return str(cube), str(work / "cnn"), str(work / "svr")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cube", default=".smray/paper/cube.zarr")
    ap.add_argument("--cnn", default=".smray/paper/run_lr3e-4/cnn")
    ap.add_argument("--svr", default=".smray/paper/run_lr3e-4/svr")
    ap.add_argument("--day", default=None, help="day of the single-map timings (default: the cube's last day)")
    ap.add_argument("--days", type=int, default=5, help="days of the pipeline comparison (the cube's last N)")
    ap.add_argument("--threads", type=int, default=2, help="torch threads of (a) and of the plain loop")
    ap.add_argument("--actors", type=int, default=2, help="actors of the Ray pool (1 CPU, 1 torch thread each)")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--work", default=None, help="scratch directory (default: a temporary one)")
    ap.add_argument("--parts", default="abc", help="which measurements to run (default abc)")
    args = ap.parse_args()

    work = Path(args.work or tempfile.mkdtemp(prefix="smray-bench-infer-"))
    work.mkdir(parents=True, exist_ok=True)
    if not (Path(args.cube).exists() and Path(args.cnn, "model.pt").exists()):
        print(f"demo cube/model not found; building a small one under {work}")
        args.cube, args.cnn, args.svr = build_small(work)
    torch.set_num_threads(args.threads)
    cfg = load_config(None, {"predict": {"actors": args.actors, "actor_cpus": 1.0},
                             "ray": {"num_cpus": os.cpu_count() or 2}})
    info = cubemod.info(args.cube)
    day = dt.date.fromisoformat(args.day) if args.day else info.end
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__} "
          f"({args.threads} threads), cuda: {torch.cuda.is_available()}, load average {os.getloadavg()[0]:.1f}")
    print(f"cube {args.cube}: grid {info.grid.shape[0]}x{info.grid.shape[1]} ({info.grid.res}°), day {day}")

    source = describe_model(args.cnn, cfg.storage, info)
    pred = Predictor(source, cfg.storage)
    data, land = cubemod.read_day(args.cube, None, day), cubemod.read_static(args.cube)["land_fraction"]
    ch = [info.channels.index(c) for c in source.channels]
    inp = day_inputs(data, land, source, pred.stats, ch, prediction_mask(cfg.qc.block), info.grid.is_periodic)[0]
    n = int(inp.valid.sum())
    if "a" in args.parts:
        bench_map(args, pred, inp, n)
    if "b" in args.parts and Path(args.svr, "svr.npz").exists():
        bench_svr(args, cfg, info, inp, n)
    if "c" in args.parts:
        bench_pipeline(args, cfg, info, source, pred, work)
    if not args.work:
        shutil.rmtree(work, ignore_errors=True)


def bench_map(args: argparse.Namespace, pred: Predictor, inp, n: int) -> float:
    """(a) one global map, FCN masked vs patch-wise; returns the FCN seconds."""
    t_fcn, fcn = best(lambda: fcn_forward(pred.model, inp.image, inp.valid), args.reps)
    t_pw, pw = best(lambda: patchwise_forward(pred.model, inp.image, inp.valid), args.reps)
    span = pred.stats.target_upper - pred.stats.target_lower
    diff = float(np.nanmax(np.abs(fcn - pw))) * span
    print(f"(a) one global map, pass A, {n} land pixels with valid inputs:")
    print(f"    FCN masked        {t_fcn:7.2f} s")
    print(f"    patch-wise torch  {t_pw:7.2f} s   -> FCN is {t_pw / t_fcn:.1f}x faster; max |diff| {diff:.1e} m3/m3")
    return t_fcn


def bench_svr(args: argparse.Namespace, cfg, info, inp, n: int) -> float:
    """(b) the SVR baseline on the same pixels."""
    spred = Predictor(describe_model(args.svr, cfg.storage, info), cfg.storage)
    t_svr, _ = best(lambda: spred.predict_scaled(inp), 1)
    print(f"(b) SVR ({spred.model.support_vectors.shape[0]} support vectors, numpy RBF expansion) on the same {n} "
          f"pixels: {t_svr:7.2f} s")
    return t_svr


def bench_pipeline(args: argparse.Namespace, cfg, info, source, pred: Predictor, work: Path) -> None:
    """(c) the Ray pipeline vs a plain loop over the same days."""
    t = time.perf_counter()
    calibrate(source, pred, cfg.storage, cfg.predict.coverage, cfg.predict.calibration_days)
    print(f"    (uncertainty calibration, cached beside the model: {time.perf_counter() - t:.1f} s)")
    dates = [info.end - dt.timedelta(days=i) for i in range(args.days)][::-1]
    quiet = lambda _: None  # noqa: E731
    started = init_ray(cfg.ray)
    try:
        t_ray_all = time.perf_counter()
        ray_sum = run_predict(cfg, args.cube, args.cnn, str(work / "ray.zarr"), dates[0], dates[-1], progress=quiet)
        t_ray = time.perf_counter() - t_ray_all
    finally:
        shutdown_ray(started)
    local_cfg = dataclasses.replace(cfg, predict=dataclasses.replace(cfg.predict, actor_cpus=float(args.threads)))
    t = time.perf_counter()
    loc = run_predict(local_cfg, args.cube, args.cnn, str(work / "local.zarr"), dates[0], dates[-1], progress=quiet,
                      engine="local")
    t_loc = time.perf_counter() - t
    print(f"(c) {len(dates)} days {dates[0]}..{dates[-1]} (read, predict both passes + combined + uncertainty, write):")
    print(f"    Ray Data actor pool ({ray_sum.actors} actors x 1 CPU): {t_ray:7.2f} s ({t_ray / len(dates):.2f} s/day)")
    print(f"    plain loop (1 process, {args.threads} threads):        {t_loc:7.2f} s ({t_loc / len(dates):.2f} s/day)")
    print(f"    ratio Ray / loop: {t_ray / t_loc:.2f}  (days written {ray_sum.days_written} / {loc.days_written})")


if __name__ == "__main__":
    main()
