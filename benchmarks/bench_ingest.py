"""Ingest benchmark (a target, not a timed test): days/minute at 0.25° with Ray at 1 and 2 CPUs, and
the peak memory of the Ray workers for a short and a long run.

Targets: throughput ratio (2 CPUs / 1 CPU) ≥ 1.7; worker peak memory for 30 days within 1.2× of
that for 10 days.

What it does, all in a temporary directory:

1. ``smray synth`` a global 0.25° twin of ``--days`` days (≈ 10 s per day on 2 cores) and a
   regional 0.25° twin (``--bbox``) of ``--mem-days`` days (files keep the global shape; the cube
   is the region);
2. throughput: for 1 and then 2 CPUs, a fresh local Ray runtime, one warmed-up worker per CPU
   (interpreter start and imports, no data) and a trivial Ray Data pipeline (Ray Data's one-time
   start on a cluster), then the timed ingest of the global twin
   (``smray.stages.ingest.ingest_days`` wall time: discovery, template, day tasks, finalize; not Ray's start-up)
   → days/minute;
3. memory: a fresh 2-CPU runtime per run, ingest ``--mem-days // 3`` and ``--mem-days`` days of the
   regional twin while a thread samples the RSS of every Ray worker process (psutil, every 50 ms)
   → the largest RSS seen.

Run::

    .venv/bin/python benchmarks/bench_ingest.py            # ~4 min on 2 cores
    .venv/bin/python benchmarks/bench_ingest.py --days 4 --mem-days 12 --bbox -10,35,30,60   # quicker
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # a local runtime stays on 127.0.0.1
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_DISABLE_DOCKER_CPU_WARNING", "1")

START = dt.date(2011, 7, 1)


def _ray_start(num_cpus: int) -> None:
    import logging

    import ray

    ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=False, logging_level="ERROR",
             runtime_env={"env_vars": {"RAY_AUTH_MODE": "disabled"}})
    from ray.data import DataContext

    DataContext.get_current().enable_progress_bars = False
    logging.getLogger("ray.data").setLevel(logging.WARNING)


def _warm_workers(num_cpus: int) -> None:
    """Start one worker per CPU and import the ingest stack there (Ray Data's tasks reuse them), and
    run one trivial Ray Data pipeline, so the timed run measures ingest, not interpreter or Ray Data
    start-up; no file is read, no cache is filled."""
    import ray
    import ray.data

    def warm() -> int:
        import h5py  # noqa: F401
        import xarray  # noqa: F401
        import zarr  # noqa: F401

        import smray.ingest  # noqa: F401

        time.sleep(1.0)
        return os.getpid()

    pids = ray.get([ray.remote(num_cpus=1)(warm).remote() for _ in range(num_cpus)])
    assert len(set(pids)) == num_cpus, pids
    # Ray Data's first pipeline on a cluster starts its stats actor (~1 s, once per cluster)
    ray.data.from_items([{"i": 0}]).map(lambda row: row, num_cpus=0.01).take_all()


def _ray_stop() -> None:
    import ray

    ray.shutdown()
    time.sleep(1.0)


def _synth(out: Path, days: int, bbox: str | None) -> float:
    from smray.cli import main

    argv = ["synth", "--out", str(out), "--start", START.isoformat(), "--days", str(days), "--res", "0.25",
            "--spinup-days", "3"]
    if bbox:
        argv += ["--bbox", bbox]
    t0 = time.perf_counter()
    _ray_start(2)
    try:
        if main(argv) != 0:
            raise SystemExit("synth failed")
    finally:
        _ray_stop()
    return time.perf_counter() - t0


def _config(twin: Path, out: Path, days: int, bbox: str | None):
    from smray.config import config_from_dict

    grid = {"res": 0.25}
    if bbox:
        grid["bbox"] = [float(v) for v in bbox.split(",")]
    end = START + dt.timedelta(days=days - 1)
    return config_from_dict({"grid": grid, "paths": {"tb": f"{twin}/amsr", "ref": f"{twin}/era_interim",
                                                     "cube": str(out), "ingest": {"start": START.isoformat(),
                                                                                  "end": end.isoformat()}}})





class WorkerMemory:
    """Samples the RSS of this driver's Ray worker processes (``ray::…`` titles, not the agents)."""

    def __init__(self, every_s: float = 0.05) -> None:
        import psutil

        self.psutil = psutil
        self.every_s = every_s
        self.peak: dict[int, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _workers(self) -> list:
        out = []
        for p in self.psutil.Process(os.getpid()).children(recursive=True):
            try:
                cmd = " ".join(p.cmdline())
            except (self.psutil.NoSuchProcess, self.psutil.AccessDenied):
                continue
            if ("default_worker.py" in cmd or cmd.startswith("ray::")) and "Agent" not in cmd:
                out.append(p)
        return out

    def _run(self) -> None:
        while not self._stop.is_set():
            for p in self._workers():
                try:
                    rss = p.memory_info().rss
                except self.psutil.NoSuchProcess:
                    continue
                self.peak[p.pid] = max(self.peak.get(p.pid, 0), rss)
            self._stop.wait(self.every_s)

    def __enter__(self) -> WorkerMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def max_rss(self) -> int:
        return max(self.peak.values(), default=0)


def throughput(twin: Path, work: Path, days: int, num_cpus: int) -> tuple[float, float, float]:
    """Ingest ``days`` global days with Ray at ``num_cpus`` → (days/minute end to end, seconds,
    steady days/minute between the first and the last finished day)."""
    import re


    stamps: list[float] = []

    def progress(line: str) -> None:
        if re.match(r"ingest: \d{4}-\d\d-\d\d ", line):
            stamps.append(time.perf_counter())

    from smray.stages.ingest import ingest_days

    _ray_start(num_cpus)
    try:
        _warm_workers(num_cpus)
        t0 = time.perf_counter()
        summary = ingest_days(_config(twin, work / f"cube-{num_cpus}cpu.zarr", days, None), progress)
        seconds = time.perf_counter() - t0
    finally:
        _ray_stop()
    assert len(summary.ok) == days, summary.line()
    steady = 60.0 * (len(stamps) - 1) / (stamps[-1] - stamps[0]) if len(stamps) > 1 else float("nan")
    return 60.0 * days / seconds, seconds, steady


def memory(twin: Path, work: Path, days: int, bbox: str, num_cpus: int = 2) -> tuple[int, float]:
    """(largest worker RSS in bytes, seconds) of ingesting ``days`` regional days on a fresh runtime."""
    from smray.stages.ingest import ingest_days

    _ray_start(num_cpus)
    try:
        with WorkerMemory() as mem:
            t0 = time.perf_counter()
            summary = ingest_days(_config(twin, work / f"mem-{days}.zarr", days, bbox), lambda _: None)
            seconds = time.perf_counter() - t0
    finally:
        _ray_stop()
    assert len(summary.ok) == days, summary.line()
    return mem.max_rss, seconds


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--days", type=int, default=24, help="global 0.25 deg days for the throughput runs (default 24)")
    ap.add_argument("--mem-days", type=int, default=30, help="regional days of the long memory run (default 30; "
                                                              "the short run is a third of it)")
    ap.add_argument("--bbox", default="-30,-40,60,70", help="region W,S,E,N of the memory runs")
    ap.add_argument("--work", help="working directory (default: a temporary one, removed afterwards)")
    ap.add_argument("--twin", help="an existing global 0.25 deg twin archive (e.g. .smray/s3/smray-demo/twin) to "
                                   "use for every run instead of generating twins; memory runs are then global")
    args = ap.parse_args(argv)
    n_cpu = os.cpu_count()
    print(f"bench_ingest: machine has {n_cpu} cores; Python {sys.version.split()[0]}")
    with tempfile.TemporaryDirectory(prefix="smray-bench-ingest-", dir=args.work) as tmp:
        work = Path(tmp)
        if args.twin:
            global_twin = region_twin = Path(args.twin).resolve()
            args.bbox = None
            print(f"twin: using {global_twin} for every run")
        else:
            global_twin, region_twin = work / "global", work / "region"
            s = _synth(global_twin, args.days, None)
            print(f"twin: {args.days} global 0.25 deg days generated in {s:.0f} s")
            s = _synth(region_twin, args.mem_days, args.bbox)
            print(f"twin: {args.mem_days} regional 0.25 deg days ({args.bbox}) generated in {s:.0f} s")

        rate1, sec1, steady1 = throughput(global_twin, work, args.days, 1)
        print(f"throughput, 1 CPU : {rate1:6.1f} days/min end to end ({args.days} global 0.25 deg days in "
              f"{sec1:.1f} s); {steady1:6.1f} days/min between first and last finished day")
        rate2, sec2, steady2 = throughput(global_twin, work, args.days, 2)
        print(f"throughput, 2 CPUs: {rate2:6.1f} days/min end to end ({args.days} global 0.25 deg days in "
              f"{sec2:.1f} s); {steady2:6.1f} days/min between first and last finished day")
        ratio = rate2 / rate1
        print(f"throughput ratio 2/1 CPUs: {ratio:.2f} end to end (target >= 1.7: {'met' if ratio >= 1.7 else 'NOT met'}"
              f"), {steady2 / steady1:.2f} steady state; end to end includes each worker's first day (cold "
              f"reads, first zarr write, ~1 s more than later days) and the driver's discovery/template/finalize")
        short = max(1, args.mem_days // 3)
        m_short, t_short = memory(region_twin, work, short, args.bbox)
        m_long, t_long = memory(region_twin, work, args.mem_days, args.bbox)
        mem_ratio = m_long / m_short
        print(f"worker peak RSS, {short:2d} days: {m_short / 2**20:7.1f} MiB ({t_short:.1f} s)")
        print(f"worker peak RSS, {args.mem_days:2d} days: {m_long / 2**20:7.1f} MiB ({t_long:.1f} s)")
        print(f"worker memory ratio {args.mem_days}/{short} days: {mem_ratio:.2f} "
              f"(target <= 1.2: {'met' if mem_ratio <= 1.2 else 'NOT met'}); memory runs use "
              + (f"a {args.bbox} region at 0.25 deg (a global 30-day twin takes too long to generate here)"
                 if args.bbox else "the global 0.25 deg grid"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
