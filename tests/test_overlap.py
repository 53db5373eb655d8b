"""smray.overlap.pipelined: the same results in the same order as the serial loop, the next read
and the last write really run during the compute, and a failure writes nothing after it."""

from __future__ import annotations

import threading
import time

import pytest

from smray.overlap import pipelined

STEP = 0.15  # seconds each of read, compute and write sleeps (sleep releases the GIL like I/O does)


def stages(log: list[tuple[str, int, float, float]]):
    def timed(kind: str, k: int, fn):
        t0 = time.perf_counter()
        out = fn()
        log.append((kind, k, t0, time.perf_counter()))
        return out

    def read(k: int) -> int:
        return timed("read", k, lambda: (time.sleep(STEP), k * 10)[1])

    def compute(k: int, data: int) -> int:
        assert threading.current_thread() is threading.main_thread()
        return timed("compute", k, lambda: (time.sleep(STEP), data + 1)[1])

    def write(k: int, result: int) -> str:
        return timed("write", k, lambda: (time.sleep(STEP), f"{k}:{result}")[1])

    return read, compute, write


def test_same_results_in_order_and_faster_than_the_sum_of_the_parts() -> None:
    keys = list(range(6))
    serial_log: list = []
    t0 = time.perf_counter()
    serial = list(pipelined(keys, *stages(serial_log), overlap=False))
    t_serial = time.perf_counter() - t0
    log: list = []
    t0 = time.perf_counter()
    got = list(pipelined(keys, *stages(log)))
    t_overlap = time.perf_counter() - t0
    assert got == serial == [(k, f"{k}:{10 * k + 1}") for k in keys]
    assert t_serial >= 3 * STEP * len(keys)
    assert t_overlap < 0.6 * t_serial  # ideal (n + 2) / 3n = 0.44
    span = {(kind, k): (a, b) for kind, k, a, b in log}
    for k in keys[1:-1]:  # while k is computed, k+1 is read and k-1 written
        c0, c1 = span[("compute", k)]
        for other in (("read", k + 1), ("write", k - 1)):
            o0, o1 = span[other]
            assert o0 < c1 and o1 > c0, (other, k)


def test_results_are_yielded_only_after_their_write() -> None:
    log: list = []
    for k, _ in pipelined(range(4), *stages(log)):
        assert ("write", k) in {(kind, kk) for kind, kk, *_ in log}


def test_a_failed_compute_writes_nothing_after_it_and_finishes_the_write_in_flight() -> None:
    log: list = []
    read, compute, write = stages(log)

    def failing(k: int, data: int) -> int:
        if k == 3:
            raise ValueError("bad day 3")
        return compute(k, data)

    seen = []
    with pytest.raises(ValueError, match="bad day 3"):
        for k, _ in pipelined(range(6), read, failing, write):
            seen.append(k)
    written = sorted(k for kind, k, *_ in log if kind == "write")
    assert seen == [0, 1] and written == [0, 1, 2]  # day 2's write, in flight, finished; nothing after 3
