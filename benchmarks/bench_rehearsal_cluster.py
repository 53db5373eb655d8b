"""The decade rehearsal through ``ray job submit`` on an autoscaling cluster that starts from zero.

A Ray head with 0 CPUs on this machine whose autoscaler is Ray's fake multi-node provider
(``cluster/fake-autoscaler.yaml``: worker type ``cpu_worker``, 2 CPUs, ``min_workers: 0``, at most 2)
gets ``python -m pipelines.reprocess --config smray/configs/rehearsal.yaml --root WORK/out`` by
``ray job submit``, the repository shipped as the job's working_dir, as a user submits to a cloud
cluster. Prints the job's wall time, each stage's time (from its progress lines), the worker nodes
the autoscaler started (Ray's state API), the report's skill; then submits the same job again, which
must find all five stages done (the state checks over the decade, through the cluster).

With ``--s3-state`` the decade's outputs are then served by the local S3 endpoint (moto, on
127.0.0.1; WORK/out uploaded into it) and ``smray reprocess`` on the same config with
``--root s3://…`` is timed: the state checks of a decade against an object store (listings and
batched reads; every object is a moto request).

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
    args = ap.parse_args()
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


def s3_state(config: str, root: Path, work: Path) -> None:
    """Serve the decade's outputs from the local S3 endpoint and time ``smray reprocess`` over them."""
    from smray.s3server import LocalS3
    from smray.storage import check_reachable, filesystem

    n = sum(len(files) for _, _, files in os.walk(root))
    with LocalS3() as s3:
        env = {**os.environ, **s3.env(), "RAY_AUTH_MODE": "disabled"}
        env.pop("RAY_ADDRESS", None)
        os.environ.update(s3.env())
        check_reachable("s3://smray-rehearsal", create=True)
        fs, _ = filesystem("s3://smray-rehearsal")
        t0 = time.perf_counter()
        fs.put(str(root) + "/", "smray-rehearsal/", recursive=True)
        print(f"local S3: {n} objects uploaded in {time.perf_counter() - t0:.0f} s")
        t0 = time.perf_counter()
        done = subprocess.run([str(BIN / "smray"), "reprocess", "--config", config, "--root", "s3://smray-rehearsal"],
                              cwd=REPO, env=env, capture_output=True, text=True, timeout=3600)
        wall = time.perf_counter() - t0
        (work / "s3state.log").write_text(done.stdout + done.stderr)
        print(f"smray reprocess over s3://smray-rehearsal: exit {done.returncode} in {wall:.0f} s wall")
        for ln in done.stdout.splitlines():
            if ln.startswith(("stage ", "reprocess: done")):
                print(f"  {ln}")


if __name__ == "__main__":
    main()
