"""Reduced-precision CPU inference side by side in one run (numbers in docs/benchmarks.md).

For each ``predict.precision`` the CPU supports (fp32, bf16, int8, int8_bf16), on the same global
map (one pass, the land pixels with valid inputs) of one cube day: the model time of the masked
fully convolutional forward (``Predictor.predict_scaled``, best of ``--reps``, the precisions
interleaved so machine load hits them alike), and the largest and RMS difference from the fp32 map in
m³/m³. Then the skill on held-out days: R² and RMSE of the combined daily maps against the cube's
reference ``swvl1`` over ``--skill-start``..``--skill-end``, per precision, and the change from fp32.

Needs a cube and a CNN trained on it (``smray train``)::

    nice -n 10 .venv/bin/python benchmarks/bench_precision.py --cube CUBE --cnn RUN_DIR \\
        --day 2011-08-04 --skill-start 2011-07-31 --skill-end 2011-08-04
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import time

import numpy as np
import torch

from smray import cube as cubemod
from smray.config import load_config
from smray.inference import cpu_flags, cpu_supports
from smray.predict import Predictor, day_inputs, describe_model, predict_maps, prediction_mask

PRECISIONS = ("fp32", "bf16", "int8", "int8_bf16")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cube", required=True)
    ap.add_argument("--cnn", required=True, help="training run directory (model.pt)")
    ap.add_argument("--day", default=None, help="day of the map timings (default: the cube's last day)")
    ap.add_argument("--skill-start", default=None, help="first held-out day scored (default: --day)")
    ap.add_argument("--skill-end", default=None, help="last held-out day scored (default: --day)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--precisions", default=",".join(PRECISIONS))
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    cfg = load_config(None)
    info = cubemod.info(args.cube)
    day = dt.date.fromisoformat(args.day) if args.day else info.end
    flags = sorted(f for f in cpu_flags() if "avx512" in f or "amx" in f or "vnni" in f)
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs ({' '.join(flags) or 'no AVX-512/AMX/VNNI'}), "
          f"torch {torch.__version__} ({args.threads} threads), load average {os.getloadavg()[0]:.1f}")
    print(f"cube {args.cube}: grid {info.grid.shape[0]}x{info.grid.shape[1]} ({info.grid.res} deg), map day {day}")
    source = describe_model(args.cnn, cfg.storage, info)
    wanted = [p for p in args.precisions.split(",") if p]
    skipped = [p for p in wanted if not cpu_supports(p)]
    preds = {p: Predictor(source, cfg.storage, precision=p) for p in wanted if p not in skipped}
    if skipped:
        print(f"not supported by this CPU (skipped): {', '.join(skipped)}")
    fp32 = preds["fp32"]
    span = fp32.stats.target_upper - fp32.stats.target_lower
    data, land = cubemod.read_day(args.cube, None, day), cubemod.read_static(args.cube)["land_fraction"]
    ch = [info.channels.index(c) for c in source.channels]
    mask = prediction_mask(cfg.qc.block)
    inp = day_inputs(data, land, source, fp32.stats, ch, mask, info.grid.is_periodic)[0]
    n = int(inp.valid.sum())

    times: dict[str, list[float]] = {p: [] for p in preds}
    maps: dict[str, np.ndarray] = {}
    for _ in range(args.reps):
        for p, pred in preds.items():
            t = time.perf_counter()
            maps[p] = pred.predict_scaled(inp)
            times[p].append(time.perf_counter() - t)
    print(f"\none global map (pass A, {n} land pixels with valid inputs), model time, best of {args.reps}:")
    print("| precision | s per map | vs fp32 | largest diff from fp32 (m3/m3) | RMS diff (m3/m3) |")
    print("|---|---|---|---|---|")
    t32 = min(times["fp32"])
    for p in preds:
        d = (maps[p][inp.valid] - maps["fp32"][inp.valid]).astype(np.float64) * span
        print(f"| {p} | {min(times[p]):.2f} | {t32 / min(times[p]):.2f}x | {np.abs(d).max():.2e} | "
              f"{np.sqrt(np.mean(d * d)):.2e} |")

    first = dt.date.fromisoformat(args.skill_start) if args.skill_start else day
    last = dt.date.fromisoformat(args.skill_end) if args.skill_end else day
    _, dates = cubemod.period_dates(args.cube, None, first, last)
    print(f"\nskill of the combined daily maps vs the reference swvl1, {dates[0]}..{dates[-1]} ({len(dates)} days):")
    print("| precision | pixel-days | R2 | RMSE (m3/m3) | R2 - R2(fp32) |")
    print("|---|---|---|---|---|")
    ref_r2 = None
    for p, pred in preds.items():
        obs, est = [], []
        for d in dates:
            dd = cubemod.read_day(args.cube, None, d)
            combined = predict_maps(pred, dd, land, ch, mask, info.grid.is_periodic)[1]
            ok = np.isfinite(combined) & np.isfinite(dd["swvl1"])
            obs.append(np.asarray(dd["swvl1"], np.float64)[ok])
            est.append(combined[ok].astype(np.float64))
        o, e = np.concatenate(obs), np.concatenate(est)
        r2 = 1.0 - np.sum((e - o) ** 2) / np.sum((o - o.mean()) ** 2)
        ref_r2 = r2 if ref_r2 is None else ref_r2
        print(f"| {p} | {o.size} | {r2:.4f} | {np.sqrt(np.mean((e - o) ** 2)):.4f} | {r2 - ref_r2:+.5f} |")
    print(f"\nload average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
