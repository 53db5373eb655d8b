"""Read → compute → write over a sequence of keys with the I/O overlapping the compute.

:func:`pipelined` runs ``read(key)`` for the next key and ``write(key, result)`` for the previous
one in two background threads while ``compute(key, data)`` runs in the caller's thread on the
current one: at most one input read ahead and one output waiting to be written, so memory stays at
three days' worth. Reads and writes of object storage and Zarr (de)compression release the GIL, as
do torch's kernels, so the three overlap on separate cores. Results come back in key order, each
after its write has finished (a yielded key is durable). The first exception of any stage is
raised in the caller after the in-flight write is finished; no later key is written.

``overlap=False`` runs the same three calls one after the other (the baseline the benchmark
compares against, and what a one-key call does anyway). Example::

    for key, summary in pipelined(days, read_day, predict_day, write_day):
        print(key, summary)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

K = TypeVar("K")


def pipelined(keys: Iterable[K], read: Callable[[K], Any], compute: Callable[[K, Any], Any],
              write: Callable[[K, Any], Any], *, overlap: bool = True) -> Iterator[tuple[K, Any]]:
    """Yield ``(key, write(key, compute(key, read(key))))`` for every key in order (see the module
    docstring); with ``overlap`` the next read and the previous write run during each compute."""
    keys = list(keys)
    if not overlap or len(keys) < 2:
        for k in keys:
            yield k, write(k, compute(k, read(k)))
        return
    with ThreadPoolExecutor(1, thread_name_prefix="smray-read") as reader, \
            ThreadPoolExecutor(1, thread_name_prefix="smray-write") as writer:
        pending: tuple[K, Future[Any]] | None = None
        nxt = reader.submit(read, keys[0])
        try:
            for i, k in enumerate(keys):
                data = nxt.result()
                if i + 1 < len(keys):
                    nxt = reader.submit(read, keys[i + 1])
                result = compute(k, data)
                del data
                if pending is not None:
                    yield pending[0], pending[1].result()
                pending = (k, writer.submit(write, k, result))
            if pending is not None:
                done, pending = pending, None
                yield done[0], done[1].result()
        finally:
            nxt.cancel()
            if pending is not None:  # an error elsewhere: let the write in flight finish, never half-done
                pending[1].exception()


__all__ = ["pipelined"]
