"""The decade rehearsal's scale behaviour: per stage, days/min and peak memory at several spans.

For each ``--years`` span (e.g. ``1,3,9.3``) the rehearsal config (``smray/configs/rehearsal.yaml``:
the Mediterranean region at 0.25°, NSIDC-0302 .gz, an ERA area retrieval, the CNN only) is cut to the
first ``span`` years from 2002-06-19, with the decade's proportions: training from 5.8 % to 70.3 %
of the days (the decade: 2003-01-01 .. 2008-12-31), evaluation on the last 29.7 % (2009-01-01 ..
2011-10-04), ingest and prediction of every day. Each stage runs on its own (``run_chain`` with one
stage) into ``--work/<span>y``, timed, with the peak memory of the driver and of the largest
other process of its tree, a Ray worker (``memtrack.PeakMemory``, PSS). Prints one table:
seconds, days/min (the days the stage covers) and memory per stage and span.

    nice -n 10 .venv/bin/python benchmarks/bench_rehearsal.py --years 1 --work /tmp/rehearsal
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import time
from pathlib import Path

import yaml

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from memtrack import PeakMemory  # noqa: E402

from smray.config import load_config  # noqa: E402
from smray.stages.chain import run_chain  # noqa: E402

REHEARSAL = Path(__file__).resolve().parent.parent / "smray/configs/rehearsal.yaml"
FIRST = dt.date(2002, 6, 19)
DECADE_DAYS = 3395
#: the decade's training and evaluation periods as fractions of its days
TRAIN_FROM, TRAIN_TO = 196 / DECADE_DAYS, 2388 / DECADE_DAYS
STAGES = ("twin", "ingest", "train", "predict", "evaluate")


def span_config(years: float, root: Path) -> tuple[Path, dict[str, int]]:
    """The rehearsal config cut to ``years`` from 2002-06-19, written under ``root``; the days
    each stage covers."""
    days = min(DECADE_DAYS, round(years * 365.25))
    day = lambda i: (FIRST + dt.timedelta(days=i)).isoformat()  # noqa: E731
    t0, t1 = int(days * TRAIN_FROM), int(days * TRAIN_TO)
    data = yaml.safe_load(REHEARSAL.read_text())
    data["paths"].update(root=str(root), ingest={"start": day(0), "end": day(days - 1)},
                         train={"start": day(t0), "end": day(t1 - 1)},
                         predict={"start": day(0), "end": day(days - 1)},
                         evaluate={"start": day(t1), "end": day(days - 1)})
    data["synth"]["days"] = days
    root.mkdir(parents=True, exist_ok=True)
    path = root / "rehearsal.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path, {"twin": days, "ingest": days, "train": t1 - t0, "predict": days, "evaluate": days - t1}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--years", default="1", help="comma-separated spans in years (e.g. 1,3,9.3)")
    ap.add_argument("--work", required=True, help="local directory for the runs")
    args = ap.parse_args()
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}, {time.strftime('%Y-%m-%d %H:%M')}")
    rows = []
    for years in (float(y) for y in args.years.split(",")):
        path, covered = span_config(years, Path(args.work).resolve() / f"{years:g}y")
        cfg = load_config(path)
        for stage in STAGES:
            with PeakMemory() as mem:
                t = time.perf_counter()
                run_chain(cfg, stages=[stage], progress=lambda line: None)
                secs = time.perf_counter() - t
            rows.append((years, stage, covered[stage], secs, mem.peak_driver_bytes, mem.peak_worker_bytes))
            print(f"  {years:g} y {stage}: {covered[stage]} days in {secs:.0f} s "
                  f"({60 * covered[stage] / secs:.1f} days/min), driver {mem.peak_driver_bytes / 2**30:.2f} GiB, "
                  f"largest other process {mem.peak_worker_bytes / 2**30:.2f} GiB, load {os.getloadavg()[0]:.1f}",
                  flush=True)
    print("\n| span | stage | days | s | days/min | driver peak (GiB) | largest worker peak (GiB) |")
    print("|---|---|---|---|---|---|---|")
    for years, stage, n, secs, driver, worker in rows:
        print(f"| {years:g} y | {stage} | {n} | {secs:.0f} | {60 * n / secs:.1f} | {driver / 2**30:.2f} | "
              f"{worker / 2**30:.2f} |")
    print(f"\nload average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
