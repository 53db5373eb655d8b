"""The decade rehearsal through ``ray job submit`` on an autoscaling cluster that starts from zero.

A Ray head with 0 CPUs on this machine whose autoscaler is Ray's fake multi-node provider
(``cluster/fake-autoscaler.yaml``: worker type ``cpu_worker``, 2 CPUs, ``min_workers: 0``, at most 2)
gets ``python -m pipelines.reprocess --config smray/configs/rehearsal.yaml --root WORK/out`` by
``ray job submit``, the repository shipped as the job's working_dir, as a user submits to a cloud
cluster. Prints the job's wall time, each stage's time (from its progress lines), the worker nodes
the autoscaler started (Ray's state API), the report's skill; then submits the same job again, which
must find all five stages done (the state checks over the decade, through the cluster).

With ``--s3-state`` the decade's outputs are then served by the local S3 endpoint (moto, on
127.0.0.1; WORK/out uploaded into it) and every stage's state check on the same config with
``paths.root`` there is timed in this process, with the S3 requests it makes, as are the censuses of
the cube and the map store: what "is this stage done?" costs over 3,395 days on an object store. The
training record and the map store's signature name the cube by its URL, so over the copy the train
and predict stages report another cube (a relocated run retrains); the day-scale checks are timed
all the same. ``--s3-only`` skips the job and times the checks over an earlier run's WORK/out.

    .venv/bin/python benchmarks/bench_rehearsal_cluster.py --work /tmp/rehearsal-cluster [--s3-state]

The head and every node it started are stopped by their own process ids when the script ends.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
CONFIG = "smray/configs/rehearsal.yaml"
STAGES = ("twin", "ingest", "train:cnn", "predict:cnn", "evaluate")


def submit(head: dict, config: str, root: Path, log: Path, timeout: float) -> tuple[str, float, str]:
    """``ray job submit`` of the chain into ``root``; (status, wall seconds, the job's log)."""
    from smray.testing import JOB_EXCLUDES, job_client

    client = job_client(head["address"])
    job_id = f"smray-rehearsal-{uuid.uuid4().hex[:8]}"
    cmd = [str(BIN / "ray"), "job", "submit", "--address", head["address"], "--submission-id", job_id,
           "--working-dir", ".", "--runtime-env-json", json.dumps({"excludes": JOB_EXCLUDES}), "--",
           "python", "-m", "pipelines.reprocess", "--config", config, "--root", str(root)]
    t0 = time.perf_counter()
    with log.open("w") as out:
        subprocess.run(cmd, cwd=REPO, env=head["env"], stdout=out, stderr=subprocess.STDOUT, timeout=timeout)
    wall = time.perf_counter() - t0
    return str(client.get_job_status(job_id)), wall, client.get_job_logs(job_id)


def stage_seconds(logs: str) -> dict[str, str]:
    """Each stage's time from its progress lines: ``stage X: finished in N s`` or ``done already``."""
    out: dict[str, str] = {}
    for name in STAGES:
        m = re.search(rf"^stage {re.escape(name)}: finished in (\d+) s", logs, re.M)
        if m:
            out[name] = m.group(1)
        elif re.search(rf"^stage {re.escape(name)}: done already", logs, re.M):
            out[name] = "skipped (done)"
        else:
            out[name] = "-"
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, required=True, help="a new directory: outputs, logs")
    ap.add_argument("--config", default=CONFIG, help="the chain's config (default: %(default)s)")
    ap.add_argument("--timeout", type=float, default=3 * 3600, help="seconds the first job may take")
    ap.add_argument("--s3-state", action="store_true",
                    help="then time the state checks of the decade against the local S3 endpoint")
    ap.add_argument("--s3-only", action="store_true", help="only the S3 state checks, over an earlier WORK/out")
    args = ap.parse_args()
    if args.s3_only:
        s3_state(args.config, args.work.resolve() / "out", args.work.resolve())
        return
    from ray.util.state import list_nodes

    from smray.testing import fake_autoscaling_cluster

    work = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    root = work / "out"
    with fake_autoscaling_cluster(REPO, bin_dir=BIN) as head:
        status, wall, logs = submit(head, args.config, root, work / "job1.log", args.timeout)
        (work / "job1.joblog").write_text(logs)
        nodes = list_nodes(address=head["address"], detail=True, limit=1000)
        workers = [n for n in nodes if not n.is_head_node]
        print(f"job 1 (the decade): {status} in {wall:.0f} s wall")
        for name, sec in stage_seconds(logs).items():
            print(f"  stage {name:12s} {sec} s")
        for ln in logs.splitlines():
            if " up after " in ln and ln.startswith("ray: "):
                print(f"  {ln}")
        print(f"  worker nodes the autoscaler started: {len(workers)} "
              f"({', '.join(sorted({str(n.resources_total.get('CPU')) + ' CPU ' + str(n.state) for n in workers}))}); "
              f"head CPUs {[n.resources_total.get('CPU', 0) for n in nodes if n.is_head_node]}")
        done = [ln for ln in logs.splitlines() if ln.startswith("reprocess: done in ")]
        print(f"  {done[-1] if done else 'no summary line: see ' + str(work / 'job1.joblog')}")
        if not status.endswith("SUCCEEDED"):
            sys.exit(1)
        status2, wall2, logs2 = submit(head, args.config, root, work / "job2.log", 1800)
        (work / "job2.joblog").write_text(logs2)
        print(f"job 2 (the same, again): {status2} in {wall2:.0f} s wall; "
              f"{sum(v == 'skipped (done)' for v in stage_seconds(logs2).values())} of {len(STAGES)} stages done already")
        done2 = [ln for ln in logs2.splitlines() if ln.startswith("reprocess: done in ")]
        print(f"  {done2[-1] if done2 else '-'}")
    metrics = json.loads((root / "report/metrics.json").read_text())
    cnn = metrics["models"]["cnn"]
    print(f"report: CNN R² {cnn['r2']:.3f}, ubRMSD {cnn['ubrmsd']:.4f} over {metrics['period']}")
    for group in ("seasons", "years"):
        print(f"  {group}: " + ", ".join(f"{k} {v['r2']:.3f}" for k, v in cnn[group].items()))
    if args.s3_state:
        s3_state(args.config, root, work)


class RequestCount:
    """Counts the S3 requests this process makes through s3fs (every ``_call_s3``), by operation."""

    def __init__(self) -> None:
        import collections

        import s3fs

        self.ops: collections.Counter[str] = collections.Counter()
        original = s3fs.S3FileSystem._call_s3

        async def counted(fs: Any, method: str, *args: Any, **kwargs: Any) -> Any:
            self.ops[method] += 1
            return await original(fs, method, *args, **kwargs)

        s3fs.S3FileSystem._call_s3 = counted

    def take(self) -> str:
        out = ", ".join(f"{n} {op}" for op, n in self.ops.most_common()) or "none"
        self.ops.clear()
        return out


def s3_state(config: str, root: Path, work: Path) -> None:
    """Serve the decade's outputs from the local S3 endpoint; time each stage's state check over them
    (in this process, counting S3 requests) and the censuses of the cube and the map store."""
    from smray import cube as cubemod
    from smray import mapstore
    from smray.config import load_config
    from smray.s3server import LocalS3
    from smray.stages.chain import STAGES
    from smray.stages.layout import layout
    from smray.storage import check_reachable, filesystem, resolve_storage

    # everything but the twin's archive files (its manifest is what the twin stage's state reads)
    parts = [p for p in sorted(root.iterdir()) if p.name != "twin"] + [root / "twin" / "twin.json"]
    n = sum(1 if p.is_file() else sum(len(files) for _, _, files in os.walk(p)) for p in parts)
    with LocalS3() as s3:
        os.environ.update(s3.env())
        check_reachable("s3://smray-rehearsal", create=True)
        fs, _ = filesystem("s3://smray-rehearsal")
        t0 = time.perf_counter()
        for p in parts:
            dest = f"smray-rehearsal/{p.relative_to(root).as_posix()}"
            fs.put(str(p) + ("/" if p.is_dir() else ""), dest + ("/" if p.is_dir() else ""), recursive=p.is_dir())
        print(f"local S3 ({s3.endpoint_url}): {n} objects uploaded in {time.perf_counter() - t0:.0f} s "
              f"(WORK/out without the twin's archive files)")
        cfg = load_config(config, {"paths": {"root": "s3://smray-rehearsal"}})
        storage = resolve_storage(cfg.storage)
        lay = layout(cfg)
        count = RequestCount()
        print("state checks over s3://smray-rehearsal (a fresh s3fs cache each; S3 requests by operation):")
        for name in cfg.reprocess.stages:
            fs.invalidate_cache()
            t0 = time.perf_counter()
            st = STAGES[name].STAGE.state(cfg, storage=storage)
            print(f"  {name:9s} {time.perf_counter() - t0:6.1f} s  [{count.take()}]  done={st.done}: {st.why}")
        for what, census, url in (("cube census", cubemod.census, lay.need("cube")),
                                  ("map store census", mapstore.census, lay.map_store("cnn"))):
            fs.invalidate_cache()
            t0 = time.perf_counter()
            c = census(url, storage)
            print(f"  {what:17s} {time.perf_counter() - t0:6.1f} s  [{count.take()}]  {len(c.ok)} days ok, "
                  f"complete={c.complete}")


if __name__ == "__main__":
    main()
