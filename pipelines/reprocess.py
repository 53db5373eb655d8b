"""Ray job: the whole chain (twin →) ingest → train → predict → evaluate, resumable stage by stage.

Example (a local head started with ``ray start --head``; see docs/reprocess.md)::

    ray job submit --address http://127.0.0.1:8265 --working-dir . -- \\
        python -m pipelines.reprocess --config cluster/configs/local.yaml

A stage whose outputs are already there and current is skipped ("stage X: done already (...),
skipped"); ``--force STAGE`` recomputes it. The last line says where the cube, models, maps and
report are. Bad input (an unknown stage, an output location that cannot be written, GPUs the
cluster lacks) fails with one line ``smray: error: ...`` and exit status 2 before any work.
"""

from __future__ import annotations

import argparse
import functools
import sys
from collections.abc import Sequence

from smray.errors import SmrayError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m pipelines.reprocess",
        description="Run the reprocessing chain as one Ray job: the stages of reprocess.stages (twin, ingest, "
                    "train, predict, evaluate) with one Ray runtime, each skipped when its outputs are already "
                    "there and current. Outputs under reprocess.root: models/<kind>, maps/<kind>.zarr, report/.")
    parser.add_argument("--config", required=True, help="YAML config (the reprocess section and every stage's)")
    parser.add_argument("--stages", help="comma-separated stages to run instead of reprocess.stages "
                                         "(twin,ingest,train,predict,evaluate)")
    parser.add_argument("--force", action="append", default=[], metavar="STAGE",
                        help="recompute STAGE even when its outputs are done (repeatable or comma-separated)")
    parser.add_argument("--root", help="output root URL, overriding reprocess.root")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    progress = functools.partial(print, flush=True)
    try:
        from smray.config import load_config
        from smray.reprocess import run_reprocess

        cfg = load_config(args.config, {"reprocess": {"root": args.root}} if args.root else None)
        force = [s for item in args.force for s in item.split(",") if s.strip()]
        stages = args.stages.split(",") if args.stages is not None else None
        run_reprocess(cfg, stages=stages, force=force, progress=progress)
    except SmrayError as err:
        print(f"smray: error: {err}", file=sys.stderr, flush=True)
        return 2
    except KeyboardInterrupt:
        print("smray: interrupted", file=sys.stderr, flush=True)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
