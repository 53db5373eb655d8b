"""Benchmark: generate the twin and report days/minute and peak memory against the targets
(issue: a 35-day global 0.25° twin in ≤ 10 min with ≤ 8 GB peak memory on 2 cores).

Also runs a shorter twin in the same process so the per-day rate (spin-up excluded) and the
memory growth with the number of days are measured side by side:

    .venv/bin/python benchmarks/bench_synth.py               # the target: 35 days, global 0.25°
    .venv/bin/python benchmarks/bench_synth.py --days 8 --res 1   # quick look
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from memtrack import PeakMemory  # noqa: E402

from smray.config import config_from_dict  # noqa: E402
from smray.raysupport import init_ray, shutdown_ray  # noqa: E402
from smray.synth.twin import generate_twin  # noqa: E402

GB = 1024**3


def run(out: str, days: int, res: float, spinup: int) -> tuple[float, float, float]:
    """(seconds, peak tree bytes, peak single-worker bytes) for one twin."""
    cfg = config_from_dict({"grid": {"res": res}, "synth": {"start": "2011-07-01", "days": days,
                                                          "spinup_days": spinup, "seed": 0}})
    with PeakMemory() as mem:
        t0 = time.perf_counter()
        generate_twin(cfg, out, progress=lambda _msg: None)
        seconds = time.perf_counter() - t0
    return seconds, mem.peak_bytes, mem.peak_worker_bytes


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--days", type=int, default=35)
    ap.add_argument("--short-days", type=int, default=10, help="the shorter twin for the side-by-side rate")
    ap.add_argument("--res", type=float, default=0.25)
    ap.add_argument("--spinup", type=int, default=60)
    ap.add_argument("--cpus", type=int, default=os.cpu_count() or 2)
    args = ap.parse_args()

    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; Ray num_cpus={args.cpus}")
    from smray.config import RayConfig

    started = init_ray(RayConfig(num_cpus=args.cpus))
    try:
        with tempfile.TemporaryDirectory(prefix="smray-bench-") as tmp:
            s_short, m_short, w_short = run(f"{tmp}/short", args.short_days, args.res, args.spinup)
            s_long, m_long, w_long = run(f"{tmp}/long", args.days, args.res, args.spinup)
            size = sum(p.stat().st_size for p in Path(tmp, "long").rglob("*") if p.is_file())
    finally:
        shutdown_ray(started)

    per_day = (s_long - s_short) / (args.days - args.short_days)
    print(f"twin {args.short_days:>3} days at {args.res} deg: {s_short:7.1f} s, peak memory {m_short / GB:.2f} GB "
          f"(largest worker {w_short / GB:.2f} GB)")
    print(f"twin {args.days:>3} days at {args.res} deg: {s_long:7.1f} s = {s_long / 60:.2f} min, "
          f"{60 * args.days / s_long:.1f} days/min, peak memory {m_long / GB:.2f} GB "
          f"(largest worker {w_long / GB:.2f} GB), archive {size / GB:.2f} GB")
    print(f"marginal rate (spin-up excluded): {60 / per_day:.1f} days/min ({per_day:.2f} s/day)")
    print(f"ratio time / target (10 min): {s_long / 600:.2f}   peak memory / target (8 GB): {m_long / (8 * GB):.2f}")
    print(f"memory growth {args.short_days} -> {args.days} days: x{m_long / m_short:.2f} (tree), "
          f"x{w_long / max(w_short, 1):.2f} (largest worker)")
    print(f"date: {dt.date.today()}; load average at the end (1/5/15 min): "
          f"{' '.join(f'{v:.1f}' for v in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
