"""Overlapped I/O in predict, side by side in one run (numbers in docs/benchmarks.md).

``run_predict(engine="local")`` over the same ``--days`` days of a cube into fresh map stores, with
``predict.overlap`` false (read, compute, write one after the other) and true (the next day read and
the last one written in two threads while the model runs, :mod:`smray.overlap`). Every call of
:class:`smray.predict.PredictDay`'s ``read`` (the cube day), ``compute`` (both passes through the
model, the combined map, QC and uncertainty) and ``write`` (the day's chunks and record) is timed,
so each run gives:

* days/min over the day loop (first read started to last write finished: no model loading, no
  calibration, no store template, no finalize — those are the same in both modes);
* the sum of the parts: read + compute + write, each summed over the days;
* with the overlap, how close it gets to its bound, the slowest part alone (on a 2-core machine
  the threads share the cores with the model's torch threads, so the bound is optimistic).

Modes run in the order of ``--order`` (default ``serial,overlap,overlap,serial``: ABBA, so a change of
machine load during the run hits both alike); the table reports each run and the ratios of the
means. The stores of both modes are compared day by day (they must be equal).

Needs a cube and a CNN trained on it, e.g. the demo-sized chain without predict::

    .venv/bin/smray reprocess --config demo_local.yaml --stages twin,ingest,train   # paths.root: a local dir
    nice -n 10 .venv/bin/python benchmarks/bench_overlap.py --cube ROOT/cube.zarr --cnn ROOT/models/cnn \\
        --start 2011-07-02 --days 30
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import os
import platform
import shutil
import statistics
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

from smray import mapstore
from smray.config import load_config
from smray.predict import PredictDay, run_predict

PARTS = ("read", "compute", "write")


def timed_parts(log: dict[str, list[tuple[float, float]]]) -> None:
    """Wrap PredictDay.read/compute/write (class attributes: the local engine's instance uses them)
    so every call appends its (start, end) to ``log[part]``."""
    for part in PARTS:
        original = getattr(PredictDay, f"_bench_{part}", None) or getattr(PredictDay, part)
        setattr(PredictDay, f"_bench_{part}", original)

        def wrapper(self, *args, _fn=original, _part=part):
            t0 = time.perf_counter()
            try:
                return _fn(self, *args)
            finally:
                log[_part].append((t0, time.perf_counter()))

        setattr(PredictDay, part, wrapper)


def one_run(cfg, cube: str, cnn: str, out: Path, start: dt.date, end: dt.date, overlap: bool) -> dict[str, float]:
    log: dict[str, list[tuple[float, float]]] = defaultdict(list)
    timed_parts(log)
    cfg = dataclasses.replace(cfg, predict=dataclasses.replace(cfg.predict, overlap=overlap, new_store=True))
    load0 = os.getloadavg()[0]
    t0 = time.perf_counter()
    summary = run_predict(cfg, cube, cnn, str(out), start, end, progress=lambda _: None, engine="local")
    total = time.perf_counter() - t0
    n = summary.days_written
    assert n == len(log["write"]) == len(log["read"]), (n, {k: len(v) for k, v in log.items()})
    loop = max(b for _, b in log["write"]) - min(a for a, _ in log["read"])
    row = {"days": n, "loop_s": loop, "total_s": total, "days_per_min": n / loop * 60, "load": load0}
    for part in PARTS:
        row[part] = sum(b - a for a, b in log[part])
    row["parts"] = sum(row[p] for p in PARTS)
    return row


def compare(a: Path, b: Path, dates: list[dt.date]) -> float:
    """The largest difference between two stores over ``dates`` (NaN where both are NaN is equal)."""
    worst = 0.0
    for d in dates:
        x, y = mapstore.read_day(str(a), None, d), mapstore.read_day(str(b), None, d)
        assert np.array_equal(x["qc"], y["qc"]), d
        for name in mapstore.SM_VARS:
            assert np.array_equal(np.isfinite(x[name]), np.isfinite(y[name])), (d, name)
            diff = np.abs(x[name] - y[name])
            worst = max(worst, float(np.nanmax(diff)) if np.isfinite(diff).any() else 0.0)
    return worst


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cube", required=True)
    ap.add_argument("--cnn", required=True, help="training run directory")
    ap.add_argument("--start", required=True, help="first day")
    ap.add_argument("--days", type=int, default=30)
    ap.add_argument("--order", default="serial,overlap,overlap,serial")
    ap.add_argument("--precision", default="fp32", help="predict.precision of both modes")
    ap.add_argument("--config", default=None, help="config file (default: the built-in defaults)")
    ap.add_argument("--work", default=None, help="where the map stores go (default: a temporary directory)")
    args = ap.parse_args()

    cfg = load_config(args.config, {"predict": {"precision": args.precision}})
    start = dt.date.fromisoformat(args.start)
    dates = [start + dt.timedelta(days=i) for i in range(args.days)]
    work = Path(args.work or tempfile.mkdtemp(prefix="bench_overlap_"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; "
          f"cube {args.cube}, {args.days} days from {start}, precision {args.precision}")
    # warm-up: model load, calibration (cached in the run directory), imports; not timed
    run_predict(dataclasses.replace(cfg, predict=dataclasses.replace(cfg.predict, new_store=True)), args.cube,
                args.cnn, str(work / "warmup.zarr"), start, start, progress=lambda _: None, engine="local")
    rows: list[tuple[str, dict[str, float]]] = []
    stores: dict[str, Path] = {}
    for i, mode in enumerate(m.strip() for m in args.order.split(",")):
        if mode not in ("serial", "overlap"):
            raise SystemExit(f"--order: serial or overlap, got {mode!r}")
        out = work / f"{mode}_{i}.zarr"
        row = one_run(cfg, args.cube, args.cnn, out, dates[0], dates[-1], overlap=mode == "overlap")
        stores.setdefault(mode, out)
        rows.append((mode, row))
        print(f"  run {i + 1} {mode}: {row['days_per_min']:.2f} days/min ({row['loop_s']:.1f} s loop, "
              f"{row['total_s']:.1f} s with start/finish), parts {row['parts']:.1f} s "
              f"(read {row['read']:.1f}, compute {row['compute']:.1f}, write {row['write']:.1f}), "
              f"load {row['load']:.1f}", flush=True)

    print(f"\n{args.days} days, per run (s/day: sums of each part over the days / days):")
    print("| run | mode | days/min | loop s/day | read s/day | compute s/day | write s/day | sum of parts s/day |"
          " load avg |")
    print("|---|---|---|---|---|---|---|---|---|")
    for i, (mode, r) in enumerate(rows):
        n = r["days"]
        print(f"| {i + 1} | {mode} | {r['days_per_min']:.2f} | {r['loop_s'] / n:.2f} | {r['read'] / n:.2f} | "
              f"{r['compute'] / n:.2f} | {r['write'] / n:.2f} | {r['parts'] / n:.2f} | {r['load']:.1f} |")

    def mean(mode: str, key: str) -> float:
        return statistics.mean(r[key] for m, r in rows if m == mode)

    if {"serial", "overlap"} <= {m for m, _ in rows}:
        serial_parts = {p: mean("serial", p) for p in PARTS}
        sum_parts = sum(serial_parts.values())
        bound = max(serial_parts.values())
        print("\nratios (means over the runs of each mode):")
        print(f"- days/min, overlap / serial: {mean('overlap', 'days_per_min') / mean('serial', 'days_per_min'):.2f}x")
        print(f"- overlap loop / sum of the parts (serial runs' read + compute + write): "
              f"{mean('overlap', 'loop_s') / sum_parts:.2f}")
        print(f"- serial loop / sum of its parts: {mean('serial', 'loop_s') / sum_parts:.3f}")
        print(f"- bound (slowest part alone, {max(serial_parts, key=serial_parts.get)}) / sum of the parts: "
              f"{bound / sum_parts:.2f}; overlap loop / bound: {mean('overlap', 'loop_s') / bound:.2f}")
        print(f"- compute s/day with the overlap / without: {mean('overlap', 'compute') / mean('serial', 'compute'):.2f}"
              f" (the I/O threads share the cores)")
        worst = compare(stores["serial"], stores["overlap"], dates)
        print(f"- largest difference between the stores: {worst:.3g} m3/m3")
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")
    if not args.work:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
