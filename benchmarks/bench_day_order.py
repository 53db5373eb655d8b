"""Training day order: the same CNN trained on the same twin cube with ``train.day_order: calendar``
(every epoch reads the training days first to last) and ``shuffled`` (a new seeded random order every
epoch), side by side in one run. Prints each epoch's validation R², the spread (sd) of the last five,
and R²/RMSE on held-out days the training never saw (the patches drawn on those days, against the
reference).

Twin data (not real AMSR-E), CPU-sized: a global twin at ``--res`` degrees.

    .venv/bin/python benchmarks/bench_day_order.py [--res 1.0] [--train-days 12] [--test-days 3] [--epochs 10]
"""

from __future__ import annotations

import argparse
import datetime as dt
import tempfile
import time
from pathlib import Path

import numpy as np


def held_out_score(cube: str, model_dir: Path, dates: list[dt.date], cfg) -> tuple[float, float, int]:
    import dataclasses

    import torch

    from smray.checkpoint import load_model
    from smray.normalise import NormStats
    from smray.patches import sample_day

    model, ckpt = load_model(str(model_dir / "model.pt"))
    stats = NormStats.from_dict(ckpt.norm_stats)
    every = dataclasses.replace(cfg.patches, split="random")
    ys, ps = [], []
    for d in dates:
        s = sample_day(cube, None, d, every, cfg.qc.block, stats)
        with torch.no_grad():
            ps.append(model(torch.from_numpy(s["x"])).reshape(-1).numpy())
        ys.append(s["y"])
    y, p = np.concatenate(ys), np.concatenate(ps)
    r2 = 1.0 - float(np.sum((p - y) ** 2) / np.sum((y - y.mean()) ** 2))
    span = stats.target_upper - stats.target_lower
    return r2, float(np.sqrt(np.mean((p - y) ** 2)) * span), int(y.size)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--res", type=float, default=1.0)
    ap.add_argument("--train-days", type=int, default=12)
    ap.add_argument("--test-days", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--per-day", type=int, default=2500, help="training patches a day (validation: a fifth)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    from smray.config import load_config
    from smray.testing import build_twin_and_cube, write_config
    from smray.train import run_training

    start = dt.date(2011, 7, 1)
    days = args.train_days + args.test_days
    with tempfile.TemporaryDirectory(prefix="smray-order-") as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        _, cube = build_twin_and_cube(root, start=start, days=days, res=args.res, seed=args.seed,
                                      config=write_config(root / "ingest.yaml", grid={"res": args.res}))
        print(f"twin + cube: {days} days at {args.res} deg in {time.perf_counter() - t0:.0f} s")
        train_end = start + dt.timedelta(days=args.train_days - 1)
        test = [train_end + dt.timedelta(days=i + 1) for i in range(args.test_days)]
        val = max(1, args.per_day // 5)
        rows = []
        for order in ("calendar", "shuffled"):
            cfg = load_config(None, {
                "grid": {"res": args.res},
                "patches": {"per_day": args.per_day + val, "train_per_day": args.per_day, "val_per_day": val},
                "train": {"epochs": args.epochs, "patience": 0, "workers": 1, "cpus_per_worker": 1.0,
                          "batch_size": 128, "lr": 1e-3, "seed": args.seed, "day_order": order},
                "ray": {"num_cpus": 4}})
            out = root / f"model-{order}"
            summary = run_training(cfg, str(cube), start, train_end, str(out), progress=lambda _: None)
            r2s = [h["val_r2"] for h in summary.history]
            r2, rmse, n = held_out_score(str(cube), out, test, cfg)
            rows.append((order, r2s, summary.seconds, r2, rmse, n))
            print(f"{order:9s} val R2 by epoch: {' '.join(f'{v:.3f}' for v in r2s)}", flush=True)
        print()
        print("| day order | val R² sd, last 5 epochs | val R² range, last 5 | epochs worse than the one before "
              "(largest drop) | best val R² | held-out days R² | held-out RMSE (m³/m³) | held-out patches | "
              "training s |")
        print("|---|---|---|---|---|---|---|---|---|")
        for order, r2s, seconds, r2, rmse, n in rows:
            last = np.asarray(r2s[-5:])
            drops = -np.diff(np.asarray(r2s))
            worse = int((drops > 0).sum())
            print(f"| {order} | {last.std(ddof=1):.4f} | {last.min():.3f}–{last.max():.3f} | "
                  f"{worse} ({max(drops.max(), 0.0):.3f}) | {max(r2s):.3f} | {r2:.4f} | {rmse:.4f} | {n} | "
                  f"{seconds:.0f} |")
        sd = [np.asarray(r[1][-5:]).std(ddof=1) for r in rows]
        print(f"\nsd ratio calendar/shuffled: {sd[0] / sd[1]:.2f}; held-out R² shuffled - calendar: "
              f"{rows[1][3] - rows[0][3]:+.4f}")


if __name__ == "__main__":
    main()
