"""Patch shards vs the cube: the time of a training epoch when every epoch cuts the patches from the
cube again (the default) and when they were cut once into Parquet shards (``paths.shards``), side by
side in one run, on 1 and 2 Ray Train workers. Also the stream alone (every training batch of an
epoch read, no model) and the one-time cost of the cut.

Twin data (not real AMSR-E), CPU-sized: a global twin at ``--res`` degrees, ``--days`` training days,
``--per-day`` training patches a day (a fifth more for validation).

    .venv/bin/python benchmarks/bench_shards.py [--res 0.5] [--days 8] [--per-day 8500] [--epochs 2]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import tempfile
import time
from pathlib import Path


def stream_epoch_s(ds) -> tuple[float, int]:
    """Seconds to read every batch of ``ds`` once, and the rows read."""
    t0, n = time.perf_counter(), 0
    for batch in ds.iter_batches(batch_size=256, batch_format="numpy"):
        n += batch["y"].size
    return time.perf_counter() - t0, n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--res", type=float, default=0.5)
    ap.add_argument("--days", type=int, default=8)
    ap.add_argument("--per-day", type=int, default=8500, help="training patches a day (validation: a fifth)")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    import ray

    from smray.config import load_config
    from smray.normalise import fit_stats
    from smray.patches import day_sampler, patch_dataset, shard_signature
    from smray.shards import cut_shards, shard_dataset
    from smray.testing import build_twin_and_cube, write_config
    from smray.train import run_training

    start = dt.date(2011, 7, 1)
    end = start + dt.timedelta(days=args.days - 1)
    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at the start")
    with tempfile.TemporaryDirectory(prefix="smray-shards-") as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        _, cube = build_twin_and_cube(root, start=start, days=args.days, res=args.res, seed=args.seed,
                                      config=write_config(root / "ingest.yaml", grid={"res": args.res}))
        print(f"twin + cube: {args.days} days at {args.res} deg in {time.perf_counter() - t0:.0f} s")
        val = max(1, args.per_day // 5)
        base = {"grid": {"res": args.res},
                "patches": {"per_day": args.per_day + val, "train_per_day": args.per_day, "val_per_day": val},
                "train": {"epochs": args.epochs, "patience": 0, "batch_size": 256, "lr": 1e-3, "seed": args.seed,
                          "cpus_per_worker": 0.5},
                "ray": {"num_cpus": 4}}
        cfg = load_config(None, base)
        ray.init(num_cpus=4, include_dashboard=False, log_to_driver=False)
        try:
            dates = [start + dt.timedelta(days=i) for i in range(args.days)]
            stats = fit_stats(str(cube), None, start, end, cfg.normalise, cfg.qc.block, cfg.patches)
            t0 = time.perf_counter()
            census = cut_shards(str(root / "shards"), None, dates,
                                shard_signature(str(cube), dates, cfg.patches, cfg.qc.block, stats),
                                day_sampler(str(cube), None, cfg.patches, cfg.qc.block, stats), progress=lambda _: None)
            cut_s = time.perf_counter() - t0
            size = sum(f.stat().st_size for f in (root / "shards").rglob("*.parquet"))
            print(f"cut once: {census.n_train} training + {census.n_val} validation patches of {args.days} days in "
                  f"{cut_s:.1f} s, {size / 2**20:.0f} MiB of Parquet (zstd)")
            stream = {}
            for name, make in (("cube", lambda: patch_dataset(str(cube), None, dates, cfg.patches, cfg.qc.block,
                                                              stats, split="train", num_cpus=0.5, day_seed=1)),
                               ("shards", lambda: shard_dataset(None, census, "train", seed=1, num_cpus=0.5))):
                ds = make()
                runs = [stream_epoch_s(ds) for _ in range(2)]
                stream[name] = min(s for s, _ in runs)
                print(f"stream only, {name}: {[f'{s:.1f}' for s, _ in runs]} s an epoch, {runs[0][1]} rows")
        finally:
            ray.shutdown()
        rows = []
        for workers in (1, 2):
            for source in ("cube", "shards"):
                over = {**base, "train": {**base["train"], "workers": workers}}
                if source == "shards":
                    over["paths"] = {"shards": str(root / "shards")}
                run_cfg = load_config(None, over)
                out = root / f"model-{source}-{workers}"
                t0 = time.perf_counter()
                run_training(run_cfg, str(cube), start, end, str(out), progress=lambda _: None)
                wall = time.perf_counter() - t0
                rec = json.loads((out / "training.json").read_text())
                epoch_s = rec["timings"]["epoch_s"]
                rows.append((workers, source, epoch_s, wall, rec["val_r2"]))
                print(f"{workers} worker(s), {source}: epochs {[f'{s:.1f}' for s in epoch_s]} s, run {wall:.0f} s, "
                      f"val R² {rec['val_r2']:.3f}")
        print()
        print("| workers | from | epoch s (each) | mean epoch s | whole run s | val R² |")
        print("|---|---|---|---|---|---|")
        for w, src, ep, wall, r2 in rows:
            print(f"| {w} | {src} | {', '.join(f'{s:.1f}' for s in ep)} | {sum(ep) / len(ep):.1f} | {wall:.0f} | "
                  f"{r2:.3f} |")
        for w in (1, 2):
            c = next(r for r in rows if r[0] == w and r[1] == "cube")
            s = next(r for r in rows if r[0] == w and r[1] == "shards")
            print(f"{w} worker(s): epoch from shards / from the cube = {(sum(s[2]) / len(s[2])) / (sum(c[2]) / len(c[2])):.2f}")
        print(f"stream only: shards / cube = {stream['shards'] / stream['cube']:.2f}; the cut costs "
              f"{cut_s / stream['cube']:.1f} cube epochs of streaming")


if __name__ == "__main__":
    main()
