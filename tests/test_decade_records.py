"""Completion records at the mission's scale: the census of 3,395 days is one listing and one batched
read on the driver, not 3,395 reads one after another (timings: benchmarks/bench_records.py)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from fsspec.implementations.local import LocalFileSystem

from smray import daystore

FIRST, DAYS = dt.date(2002, 6, 19), 3395  # the AMSR-E mission


def test_census_of_a_decade_is_one_listing_and_one_batched_read(tmp_path: Path, monkeypatch) -> None:
    url = str(tmp_path / "store.zarr")
    dates = [FIRST + dt.timedelta(days=i) for i in range(DAYS)]
    for d in dates:
        daystore.write_record(url, None, d, {"status": "ok"})
    calls = {"ls": 0, "cat": 0}
    batch: list[int] = []

    def counted(name, method):
        def wrapper(self, *args, **kwargs):
            calls[name] += 1
            if name == "cat":
                batch.append(len(args[0]) if isinstance(args[0], list) else 1)
            return method(self, *args, **kwargs)
        return wrapper

    for name in calls:
        monkeypatch.setattr(LocalFileSystem, name, counted(name, getattr(LocalFileSystem, name)))
    records = daystore.day_records(url, None)
    assert sorted(records) == dates and all(r["status"] == "ok" for r in records.values())
    # one listing, and one batched read naming every record (s3fs fetches such a batch concurrently)
    assert calls == {"ls": 1, "cat": 1} and batch == [DAYS]
