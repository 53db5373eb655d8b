"""Peak memory of a process tree (the driver plus every Ray process it started), sampled in a thread.

Proportional set size (PSS) is used so pages shared between processes (Ray's object store in
/dev/shm, shared libraries) are counted once; where PSS cannot be read, RSS is used instead.
"""

from __future__ import annotations

import os
import threading
import time

import psutil


class PeakMemory:
    """``with PeakMemory() as m: ...`` then ``m.peak_bytes`` (whole tree), ``m.peak_driver_bytes`` (the
    root process) and ``m.peak_worker_bytes`` (largest single process other than the driver)."""

    def __init__(self, interval_s: float = 0.5, root_pid: int | None = None) -> None:
        self.interval_s = interval_s
        self.root = psutil.Process(root_pid or os.getpid())
        self.peak_bytes = 0
        self.peak_driver_bytes = 0
        self.peak_worker_bytes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def _mem(proc: psutil.Process) -> int:
        try:
            try:
                return proc.memory_full_info().pss
            except (psutil.AccessDenied, AttributeError):
                return proc.memory_info().rss
        except (psutil.NoSuchProcess, psutil.ZombieProcess):
            return 0

    def sample(self) -> None:
        try:
            procs = [self.root, *self.root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return
        sizes = [self._mem(p) for p in procs]
        self.peak_bytes = max(self.peak_bytes, sum(sizes))
        self.peak_driver_bytes = max(self.peak_driver_bytes, sizes[0])
        if len(sizes) > 1:
            self.peak_worker_bytes = max(self.peak_worker_bytes, max(sizes[1:]))

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            time.sleep(self.interval_s)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()
