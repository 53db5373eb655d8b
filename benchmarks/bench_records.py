"""Completion records at decade scale: reading 3,395 day records (the AMSR-E mission) from the local S3
endpoint, one GET after another (what ``daystore.day_records`` did) vs the batched read it does now
(one listing, then ``fs.cat`` of every record, fetched concurrently by s3fs). Side by side in one run.

    .venv/bin/python benchmarks/bench_records.py [--days 3395]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import tempfile
import time


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--days", type=int, default=3395)
    args = ap.parse_args()
    from smray.daystore import RECORDS, day_records
    from smray.s3server import LocalS3
    from smray.storage import check_reachable, filesystem, join

    with tempfile.TemporaryDirectory() as tmp, LocalS3(data_dir=os.path.join(tmp, "s3")) as s3:
        os.environ.update(s3.env())
        url = "s3://bench/store.zarr"
        fs, path = filesystem(url)
        check_reachable(url, create=True)
        first = dt.date(2002, 6, 19)
        t0 = time.perf_counter()
        fs.pipe({join(path, RECORDS, f"{first + dt.timedelta(days=i)}.json"):
                 json.dumps({"date": str(first + dt.timedelta(days=i)), "status": "ok"}).encode()
                 for i in range(args.days)})
        put_s = time.perf_counter() - t0

        t0 = time.perf_counter()
        names = fs.ls(join(path, RECORDS), detail=False, refresh=True)
        sequential = {json.loads(fs.cat_file(n))["date"] for n in names}
        seq_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        batched = day_records(url)
        batch_s = time.perf_counter() - t0
        assert len(sequential) == len(batched) == args.days
        print(f"{args.days} records on the local S3 endpoint (written in {put_s:.1f} s)")
        print(f"  one GET after another : {seq_s:6.2f} s")
        print(f"  day_records (batched) : {batch_s:6.2f} s   ratio {seq_s / batch_s:.1f}x")


if __name__ == "__main__":
    main()
