"""The whole chain as one Ray job: twin → ingest → train → predict → evaluate (``smray reprocess``,
``pipelines/reprocess.py``; docs/reprocess.md).

A loop over the stages of ``reprocess.stages`` (or ``--stages``): each stage skips the units that
its own rule finds done and computes the rest (:meth:`smray.stages.base.Stage.run`); ``--force
STAGE`` recomputes a stage. One Ray runtime serves every stage: connected only when some stage has
work, and stopped at the end only when this job started it. Before any work: every location the
stages write must be writable, the twin must not overwrite another archive, and the cluster must
have the GPUs asked for (one line each)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from types import ModuleType

from smray.config import REPROCESS_STAGES, Config
from smray.errors import SmrayError
from smray.stages import evaluate, ingest, predict, train, twin
from smray.stages.base import Progress, Stage, ray_runtime, resolve, unit_name
from smray.stages.layout import Layout, check_periods
from smray.storage import StorageConfig, check_reachable, protocol, resolve_storage

#: the chain's stages in the order they run
STAGES: dict[str, ModuleType] = {"twin": twin, "ingest": ingest, "train": train, "predict": predict,
                                 "evaluate": evaluate}


def parse_stages(text: str | Sequence[str], where: str = "--stages") -> tuple[str, ...]:
    """Stage names from ``"ingest,train"`` or a list, in the order they run; one-line SmrayError
    naming ``where`` for an unknown name."""
    names = [s.strip() for s in (text.split(",") if isinstance(text, str) else text) if s.strip()]
    for name in names:
        if name not in REPROCESS_STAGES:
            raise SmrayError(f"{where}: unknown stage {name!r} (known: {', '.join(REPROCESS_STAGES)})")
    if not names:
        raise SmrayError(f"{where}: no stage given (known: {', '.join(REPROCESS_STAGES)})")
    return tuple(s for s in REPROCESS_STAGES if s in names)


@dataclass(frozen=True)
class Plan:
    """The stages the job runs, those it recomputes, and where everything is."""

    stages: tuple[str, ...]
    force: frozenset[str]
    layout: Layout


def make_plan(cfg: Config, stages: Sequence[str] | None = None, force: Sequence[str] = (),
              storage: StorageConfig | None = None) -> Plan:
    """Resolve the run: ``stages`` overrides ``reprocess.stages``; ``force`` must name planned
    stages; every value a planned stage needs must resolve (one line naming the ``paths`` field)."""
    planned = parse_stages(list(stages) if stages is not None else list(cfg.reprocess.stages),
                           "--stages" if stages is not None else "reprocess.stages")
    forced = parse_stages(list(force), "--force") if force else ()
    for name in forced:
        if name not in planned:
            raise SmrayError(f"--force: stage {name!r} is not among the stages run ({', '.join(planned)})")
    if not cfg.paths.root:
        raise SmrayError("paths.root: required value is missing (where the cube, models, maps and the report go)")
    lay = resolve(cfg, storage or resolve_storage(cfg.storage))
    if "twin" in planned:
        lay.need("twin")
    if "ingest" in planned:
        for name in ("tb", "ref"):
            if getattr(lay, name) is None:
                raise SmrayError(f"paths.{name}: required value is missing (set paths.{name}, or run the twin "
                                 f"stage, which provides it)")
    if any(s in planned for s in ("ingest", "train", "predict", "evaluate")) and lay.ingest is None:
        raise SmrayError(f"paths.ingest: not set, and there is no cube at {lay.cube} to take the days from")
    if any(s in planned for s in ("train", "predict", "evaluate")):
        if lay.train[1] is None and cfg.paths.predict.start is None:
            raise SmrayError("paths.train.end: required value is missing (the last training day; maps start the "
                             "day after unless paths.predict.start says otherwise)")
        check_periods(lay, ("train", "predict", "evaluate"))
    if "train" in planned and lay.trainable:
        lay.period("train")
    return Plan(stages=planned, force=frozenset(forced), layout=lay)


def check_outputs(plan: Plan, storage: StorageConfig) -> None:
    """Every location the planned stages write must be reachable and writable (created when missing)."""
    lay = plan.layout
    targets = [("paths.root", lay.need("root"))]
    if "twin" in plan.stages:
        targets.append(("paths.twin", lay.need("twin")))
    if "ingest" in plan.stages:
        targets.append(("paths.cube", lay.need("cube")))
    for name, url in targets:
        try:
            check_reachable(url, storage, create=True)
        except SmrayError as err:
            raise SmrayError(f"{name}: {err}") from None
    torch_models = [k for k in lay.trainable if k != "svr"]
    if "train" in plan.stages and torch_models and protocol(lay.model_dir(torch_models[0])) == "memory":
        raise SmrayError(f"paths.models: {lay.models}: memory:// cannot hold Ray Train checkpoints; use a local "
                         f"path or s3://")


def check_resources(cfg: Config, plan: Plan) -> None:
    """Refuse before any work what the cluster can never provide: GPUs asked for (``train.use_gpu`` /
    ``predict.use_gpu`` true) on a local runtime without them or on a cluster none of whose node types
    has them (where Ray publishes the node types), and a ``predict.precision`` the device prediction
    will use cannot run (the driver's CPU flags stand for the CPU workers'). Resources that are merely
    not up yet are waited for by each stage when it needs them (an autoscaling cluster starts from
    zero). Ray must be initialised."""
    from smray import raysupport as rs

    lay = plan.layout
    asks = []
    if "train" in plan.stages and any(k != "svr" for k in lay.trainable) and cfg.train.use_gpu:
        asks.append(("train.use_gpu", f"the train stage's {cfg.train.workers} GPU worker(s)",
                     {"GPU": float(cfg.train.workers)}))
    if "predict" in plan.stages and any(k in ("cnn", "pixel") for k in lay.kinds) and cfg.predict.use_gpu:
        asks.append(("predict.use_gpu", "GPU prediction actors", {"GPU": 1.0}))
    for field_name, what, need in asks:
        rs.refuse_impossible(need, what=what, field=field_name)
    if "predict" in plan.stages and any(k in ("cnn", "pixel") for k in lay.kinds):
        from smray.predict import plan_precision

        plan_precision(cfg, "cnn")  # predict.precision the planned device cannot run: one line, before any stage


@dataclass
class ChainSummary:
    """What the job did and where its outputs are."""

    plan: Plan
    ran: list[str] = field(default_factory=list)  #: "stage" or "stage:kind" actually computed
    skipped: list[str] = field(default_factory=list)  #: the same, found done
    seconds: float = 0.0

    def outputs(self) -> list[tuple[str, str]]:
        """(name, URL) of every output of the planned stages, in the order they are made."""
        lay, stages = self.plan.layout, self.plan.stages
        out = [("twin", lay.twin)] if "twin" in stages and lay.twin else []
        out.append(("cube", lay.need("cube")))
        if "train" in stages:
            out += [(f"model {k}", lay.model_dir(k)) for k in lay.trainable]
        if "predict" in stages:
            out += [(f"maps {k}", lay.map_store(k)) for k in lay.kinds]
        if "evaluate" in stages:
            out.append(("report", lay.need("report")))
        return out

    def line(self) -> str:
        where = "; ".join(f"{name} {url}" for name, url in self.outputs())
        return (f"reprocess: done in {self.seconds:.0f} s (ran: {', '.join(self.ran) or 'nothing'}; "
                f"{len(self.skipped)} done already): {where}")


def pending(cfg: Config, plan: Plan, storage: StorageConfig) -> str | None:
    """The first unit that must run (forced or not done), or None when every planned stage is done."""
    for name in plan.stages:
        stage: Stage = STAGES[name].STAGE
        for unit in stage.units(plan.layout):
            if name in plan.force or not stage.unit_state(cfg, plan.layout, unit, storage).done:
                return unit_name(name, unit)
    return None


def run_chain(cfg: Config, stages: Sequence[str] | None = None, force: Sequence[str] = (),
              progress: Progress = print) -> ChainSummary:
    """Run the planned stages with one Ray runtime, skipping what is done unless forced (see the
    module docstring)."""
    t0 = time.perf_counter()
    storage = resolve_storage(cfg.storage)
    plan = make_plan(cfg, stages, force, storage)
    check_outputs(plan, storage)
    for name in plan.stages:
        STAGES[name].STAGE.check(cfg, plan.layout, storage, force=name in plan.force)
    summary = ChainSummary(plan=plan)
    progress(f"reprocess: stages {', '.join(plan.stages)}; models {', '.join(plan.layout.kinds)}; "
             f"root {plan.layout.root}")
    work = pending(cfg, plan, storage)
    if work is None:
        for name in plan.stages:
            done = STAGES[name].run(cfg, progress, lay=plan.layout, storage=storage)
            summary.skipped += done.skipped
    else:
        with ray_runtime(cfg.ray):
            check_resources(cfg, plan)
            for name in plan.stages:
                result = STAGES[name].run(cfg, progress, force=name in plan.force, storage=storage,
                                          lay=plan.layout)
                summary.ran += result.ran
                summary.skipped += result.skipped
    summary.seconds = time.perf_counter() - t0
    progress(summary.line())
    return summary


__all__ = ["STAGES", "Plan", "ChainSummary", "parse_stages", "make_plan", "check_outputs", "check_resources",
           "pending", "run_chain"]
