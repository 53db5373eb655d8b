"""The whole chain as one Ray job: twin → ingest → train → predict → evaluate (``pipelines/reprocess.py``).

:func:`run_reprocess` connects to Ray once (:func:`smray.raysupport.init_ray`: a local runtime, or
the cluster of ``ray job submit``) and runs the stages in order with that one runtime; every
``run_*`` function it calls reuses a connected runtime instead of starting its own. Layout, with
``root = reprocess.root``::

    <root>/twin/                 the twin stage's archive (reprocess.twin overrides)
    <root>/cube.zarr             the cube (ingest.out overrides)
    <root>/models/<kind>/        one training run per trainable model (cnn, pixel, svr)
    <root>/maps/<kind>.zarr      one map store per model (cnn, pixel, svr, physical)
    <root>/report/               the evaluation of all map stores side by side (metrics.json, ...)

Every stage is skipped when its outputs are already there and current (:func:`stage_state`):

* twin: ``twin.json`` records the same grid, start, days, seed, spin-up and sensor;
* ingest: the cube has the grid and QC settings asked for and every day of the ingest range has a
  completion record, with all chunks present for the ``ok`` days (skipped days count as done:
  ``--force ingest`` retries them);
* train: ``training.json`` and the model artefact exist for the same kind, cube, training period,
  model fingerprint and training settings, and a CNN/pixel run finished all epochs or stopped early
  (an unfinished run is resumed from its Ray Train checkpoint by :func:`smray.train.run_training`);
* predict: the store is a ``smray-maps-1`` store of this cube and of the model's current weights
  (checkpoint SHA-256), and every day of the model's map range has a record, with the chunks of its
  ``ok`` days present;
* evaluate: ``metrics.json`` exists and is newer than every map store.

``force`` recomputes a stage even when it is done: the cube's and map stores' completion records of
the range are removed (their days are rewritten in place), a model directory is removed (training
starts from scratch), the twin is overwritten. Stages after it run only when their own check says so
(evaluate does after predict rewrote the maps). Bad input fails with one line before any work: an
unknown stage, an output location that cannot be written, GPUs asked for that the cluster lacks.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from smray.config import REPROCESS_STAGES, Config, StorageConfig
from smray.errors import SmrayError
from smray.storage import check_reachable, filesystem, join, protocol, read_bytes, resolve_storage

#: models trained by the train stage (the physical retrieval needs no training)
TRAINABLE = ("cnn", "pixel", "svr")
#: the twin's settings a finished twin must share with the config (twin.json ``synth``)
TWIN_KEYS = ("start", "days", "seed", "spinup_days", "sensor")
#: training settings a finished run must share with the config (``train`` section of training.json)
TRAIN_KEYS = ("optimizer", "lr", "weight_decay", "momentum", "batch_size", "epochs", "patience", "seed",
              "svr_max_samples", "svr_c", "svr_epsilon")
MAPS_FORMAT = "smray-maps-1"
METRICS_FILE = "metrics.json"


# --------------------------------------------------------------------------------------------
# The plan: every URL and date of the run, resolved before anything starts
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Plan:
    """What the job will do and where everything goes (URLs absolute for local paths)."""

    stages: tuple[str, ...]  #: stages to run, in order
    force: frozenset[str]  #: stages recomputed even when done
    models: tuple[str, ...]  #: cnn, pixel, svr, physical
    root: str
    twin: str | None  #: twin archive root (None: no twin configured)
    tb: str | None
    ref: str | None
    cube: str
    ingest_start: dt.date | None
    ingest_end: dt.date | None
    train_start: dt.date | None
    train_end: dt.date | None
    predict_start: dt.date | None
    predict_end: dt.date | None
    model_dirs: dict[str, str] = field(default_factory=dict)  #: trainable kind → run directory
    maps: dict[str, str] = field(default_factory=dict)  #: kind → map store
    map_ranges: dict[str, tuple[dt.date, dt.date]] = field(default_factory=dict)  #: kind → first, last day
    report: str = ""

    @property
    def trainable(self) -> tuple[str, ...]:
        return tuple(k for k in self.models if k in TRAINABLE)


def _absolute(url: str) -> str:
    if protocol(url) != "file":
        return url.rstrip("/")
    path = url[7:] if url.startswith("file://") else url
    return os.path.abspath(path)


def _day(d: dt.date, n: int) -> dt.date:
    return d + dt.timedelta(days=n)


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


def make_plan(cfg: Config, stages: Sequence[str] | None = None, force: Sequence[str] = ()) -> Plan:
    """Resolve every URL and date of the run from ``cfg`` (no storage is touched, except reading an
    existing cube's time axis when nothing else gives the ingest range). ``stages`` overrides
    ``reprocess.stages``; ``force`` must name planned stages."""
    rp = cfg.reprocess
    planned = parse_stages(list(stages) if stages is not None else list(rp.stages),
                           "--stages" if stages is not None else "reprocess.stages")
    forced = parse_stages(list(force), "--force") if force else ()
    for name in forced:
        if name not in planned:
            raise SmrayError(f"--force: stage {name!r} is not among the stages run ({', '.join(planned)})")
    if not rp.root:
        raise SmrayError("reprocess.root: required value is missing (where models, maps and the report go)")
    root = _absolute(rp.root)
    twin_configured = "twin" in rp.stages or "twin" in planned or rp.twin is not None
    twin = _absolute(rp.twin or join(root, "twin")) if twin_configured else None
    ing = cfg.ingest
    tb = _absolute(ing.tb) if ing.tb else (join(twin, "amsr") if twin else None)
    ref = _absolute(ing.ref) if ing.ref else (join(twin, "era_interim") if twin else None)
    cube = _absolute(ing.out) if ing.out else join(root, "cube.zarr")
    start, end = ing.start, ing.end
    if twin and start is None:
        start = cfg.synth.start
    if twin and end is None:
        end = _day(cfg.synth.start, cfg.synth.days - 1)
    if "ingest" in planned:
        for name, value in (("tb", tb), ("ref", ref)):
            if value is None:
                raise SmrayError(f"ingest.{name}: required value is missing (set ingest.{name}, or run the twin "
                                 f"stage, which provides it)")
    needs_dates = any(s in planned for s in ("train", "predict", "evaluate"))
    if (needs_dates or "ingest" in planned) and (start is None or end is None):
        start, end = _cube_range(cube, cfg.storage, start, end)
    train_start = rp.train_start or start
    train_end = rp.train_end
    if needs_dates and train_end is None and rp.predict_start is None:
        raise SmrayError("reprocess.train_end: required value is missing (the last training day; maps start the "
                         "day after unless reprocess.predict_start says otherwise)")
    predict_start = rp.predict_start or (_day(train_end, 1) if train_end else None)
    predict_end = rp.predict_end or end
    if needs_dates:
        _check_dates(train_start, train_end, predict_start, predict_end, start, end, planned)
    models_dir, maps_dir = join(root, "models"), join(root, "maps")
    model_dirs = {k: join(models_dir, k) for k in rp.models if k in TRAINABLE}
    maps = {k: join(maps_dir, f"{k}.zarr") for k in rp.models}
    ranges: dict[str, tuple[dt.date, dt.date]] = {}
    if predict_start and predict_end:
        for k in rp.models:
            n = getattr(rp.predict_days, k)
            ranges[k] = (predict_start, min(predict_end, _day(predict_start, n - 1)) if n else predict_end)
    return Plan(stages=planned, force=frozenset(forced), models=tuple(rp.models), root=root, twin=twin, tb=tb,
                ref=ref, cube=cube, ingest_start=start, ingest_end=end, train_start=train_start, train_end=train_end,
                predict_start=predict_start, predict_end=predict_end, model_dirs=model_dirs, maps=maps,
                map_ranges=ranges, report=join(root, "report"))


def _cube_range(cube: str, storage: StorageConfig, start: dt.date | None,
                end: dt.date | None) -> tuple[dt.date, dt.date]:
    from smray import cube as cubemod

    storage = resolve_storage(storage)
    try:
        found = cubemod.exists(cube, storage)
    except Exception:  # noqa: BLE001 - an unreachable store: say what is missing instead
        found = False
    if not found:
        raise SmrayError(f"ingest.start/ingest.end: not set, and there is no cube at {cube} to take them from")
    info = cubemod.info(cube, storage)
    return start or info.start, end or info.end


def _check_dates(train_start: dt.date | None, train_end: dt.date | None, predict_start: dt.date | None,
                 predict_end: dt.date | None, start: dt.date, end: dt.date, planned: Sequence[str]) -> None:
    def inside(name: str, d: dt.date | None) -> None:
        if d is not None and not start <= d <= end:
            raise SmrayError(f"reprocess.{name}: {d} is outside the ingest range {start}..{end}")

    for name, d in (("train_start", train_start), ("train_end", train_end), ("predict_start", predict_start),
                    ("predict_end", predict_end)):
        inside(name, d)
    if train_start and train_end and train_end < train_start:
        raise SmrayError(f"reprocess.train_end: {train_end} is before reprocess.train_start {train_start}")
    if predict_start and predict_end and predict_end < predict_start:
        raise SmrayError(f"reprocess.predict_end: {predict_end} is before reprocess.predict_start {predict_start} "
                         f"(maps start the day after reprocess.train_end by default)")
    if "train" in planned and train_end is None:
        raise SmrayError("reprocess.train_end: required value is missing (the last training day)")


# --------------------------------------------------------------------------------------------
# Checks before any work
# --------------------------------------------------------------------------------------------
def check_outputs(plan: Plan, storage: StorageConfig) -> None:
    """Every location the planned stages write must be reachable and writable (created when missing);
    one-line SmrayError naming the setting otherwise."""
    targets = [("reprocess.root", plan.root)]
    if "twin" in plan.stages and plan.twin:
        targets.append(("reprocess.twin", plan.twin))
    if "ingest" in plan.stages:
        targets.append(("ingest.out", plan.cube))
    for name, url in targets:
        try:
            check_reachable(url, storage, create=True)
        except SmrayError as err:
            raise SmrayError(f"{name}: {err}") from None
    if protocol(plan.root) == "memory" and "train" in plan.stages and any(k != "svr" for k in plan.trainable):
        raise SmrayError(f"reprocess.root: {plan.root}: memory:// cannot hold Ray Train checkpoints; use a local "
                         f"path or s3://")


def check_resources(cfg: Config, plan: Plan) -> None:
    """GPUs asked for (``train.use_gpu`` / ``predict.use_gpu`` true) must exist in the connected
    cluster; CPUs too. Ray must be initialised."""
    from smray import raysupport as rs

    gpus, cpus = rs.cluster_resource("GPU"), rs.cluster_resource("CPU")
    have = f"the Ray cluster has {cpus:g} CPU and {gpus:g} GPU"
    torch_models = [k for k in plan.trainable if k != "svr"]
    if "train" in plan.stages and torch_models and cfg.train.use_gpu and gpus < cfg.train.workers:
        raise SmrayError(f"train.use_gpu: true asks for {cfg.train.workers} GPU worker(s), but {have}")
    map_models = [k for k in plan.models if k in ("cnn", "pixel")]
    if "predict" in plan.stages and map_models and cfg.predict.use_gpu and gpus < 1:
        raise SmrayError(f"predict.use_gpu: true asks for GPU actors, but {have}")
    if cpus < 1:
        raise SmrayError(f"ray: {have}; the stages need at least one CPU")


# --------------------------------------------------------------------------------------------
# Is a stage done?
# --------------------------------------------------------------------------------------------
@dataclass
class StageState:
    """Whether a stage's outputs are there and current, and why (one line)."""

    done: bool
    why: str
    replace: bool = False  #: the output belongs to another model/settings and is replaced when run


def _read_json(url: str, storage: StorageConfig) -> dict[str, Any] | None:
    fs, path = filesystem(url, storage)
    try:
        data = json.loads(read_bytes(fs, path))
    except (FileNotFoundError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def twin_state(cfg: Config, plan: Plan, storage: StorageConfig) -> StageState:
    from smray.config import to_dict

    assert plan.twin is not None
    manifest = _read_json(join(plan.twin, "twin.json"), storage)
    if manifest is None:
        return StageState(False, f"no twin.json in {plan.twin}")
    want = to_dict(cfg.synth)
    differ = [k for k in TWIN_KEYS if manifest.get("synth", {}).get(k) != want[k]]
    if manifest.get("grid") != cfg.grid.grid().to_dict():
        differ.append("grid")
    if differ:
        return StageState(False, f"{plan.twin} holds a twin with other {', '.join(differ)}")
    return StageState(True, f"{plan.twin}/twin.json: {want['days']} days from {want['start']}")


def _store_days(url: str, storage: StorageConfig, start: dt.date, end: dt.date,
                variables: Sequence[str]) -> tuple[list[dt.date], list[str], int]:
    """(days of start..end without a completion record, chunks of ``ok`` days that are missing,
    days recorded) of a cube or map store: records ``_smray/days/*.json``, chunks ``<var>/c/<i>/...``
    with ``i`` the day's index on the store's time axis."""
    from smray import cube as cubemod

    g = cubemod.open_group(url, storage)
    first = cubemod.date_of(int(g["time"][0]))
    ntime = int(g["time"].shape[0])
    records = cubemod.day_records(url, storage)
    present = cubemod.time_chunks_present(url, storage, tuple(variables))
    pending, missing, recorded = [], [], 0
    for d in (_day(start, i) for i in range((end - start).days + 1)):
        i = (d - first).days
        rec = records.get(d)
        if rec is None or not 0 <= i < ntime:
            pending.append(d)
            continue
        recorded += 1
        if rec.get("status") == "ok":
            missing += [f"{var}/c/{i}" for var in variables if str(i) not in present[var]]
    return pending, missing, recorded


def ingest_state(cfg: Config, plan: Plan, storage: StorageConfig) -> StageState:
    from smray import cube as cubemod
    from smray.ingest import _qc_attr

    assert plan.ingest_start and plan.ingest_end
    if not cubemod.exists(plan.cube, storage):
        return StageState(False, f"no cube at {plan.cube}")
    info = cubemod.info(plan.cube, storage)
    if info.grid != cfg.grid.grid():
        return StageState(False, f"{plan.cube} is on another grid")  # ingest says how to proceed
    if info.attrs.get("smray_qc", _qc_attr(cfg.qc)) != _qc_attr(cfg.qc):
        return StageState(False, f"{plan.cube} was built with other qc settings")
    pending, missing, recorded = _store_days(plan.cube, storage, plan.ingest_start, plan.ingest_end,
                                             cubemod.TIME_VARS)
    if pending or missing:
        return StageState(False, f"{plan.cube}: {len(pending)} day(s) of {plan.ingest_start}..{plan.ingest_end} "
                                 f"unfinished, {len(missing)} chunk(s) missing")
    return StageState(True, f"cube census complete: {recorded} days {plan.ingest_start}..{plan.ingest_end} in "
                            f"{plan.cube}")


def kind_config(cfg: Config, kind: str) -> Config:
    """``cfg`` with ``model.kind = kind`` (unchanged for "physical", which is not a trained model)."""
    if kind not in TRAINABLE:
        return cfg
    return dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, kind=kind))


def train_state(cfg: Config, plan: Plan, kind: str, storage: StorageConfig) -> StageState:
    from smray.checkpoint import config_fingerprint
    from smray.config import to_dict
    from smray.experiment import _jsonable
    from smray.train import MODEL_FILE, SVR_FILE, TRAINING_FILE

    out = plan.model_dirs[kind]
    rec = _read_json(join(out, TRAINING_FILE), storage)
    if rec is None:
        return StageState(False, f"no {TRAINING_FILE} in {out}")
    fs, path = filesystem(join(out, SVR_FILE if kind == "svr" else MODEL_FILE), storage)
    if not fs.exists(path):
        return StageState(False, f"{out}: training.json without its model")
    kcfg = kind_config(cfg, kind)
    want = {"kind": kind, "cube": plan.cube, "train_start": plan.train_start.isoformat() if plan.train_start else None,
            "train_end": plan.train_end.isoformat() if plan.train_end else None,
            "fingerprint": config_fingerprint(kcfg.model, kcfg.patches)}
    differ = [k for k, v in want.items() if rec.get(k) != v]
    old = rec.get("config") or {}
    now = _jsonable(to_dict(kcfg))
    differ += [s for s in ("patches", "normalise") if old.get(s) != now[s]]
    if (old.get("qc") or {}).get("block") != now["qc"]["block"]:
        differ.append("qc.block")
    differ += [f"train.{k}" for k in TRAIN_KEYS if (old.get("train") or {}).get(k) != now["train"][k]]
    if differ:
        return StageState(False, f"{out} was trained with other {', '.join(differ[:4])}")
    if kind != "svr":
        history = rec.get("history") or []
        stopped = bool(history and history[-1].get("stop"))
        if int(rec.get("epochs_completed", 0)) < cfg.train.epochs and not stopped:
            return StageState(False, f"{out}: {rec.get('epochs_completed')} of {cfg.train.epochs} epochs")
    return StageState(True, f"{out}/{TRAINING_FILE} matches ({kind}, {want['train_start']}..{want['train_end']})")


def predict_state(cfg: Config, plan: Plan, kind: str, storage: StorageConfig) -> StageState:
    from smray import cube as cubemod
    from smray import mapstore
    from smray.predict import describe_model, store_signature

    url = plan.maps[kind]
    start, end = plan.map_ranges[kind]
    if not cubemod.exists(url, storage):
        return StageState(False, f"no map store at {url}")
    try:
        minfo = mapstore.info(url, storage)
        theirs = json.loads(minfo.attrs.get("smray_predict_signature", "{}"))
    except (SmrayError, ValueError) as err:
        return StageState(False, f"{url} is not a readable map store ({err}); replacing it", replace=True)
    cinfo = cubemod.info(plan.cube, storage)
    source = describe_model(plan.model_dirs.get(kind, "physical"), storage, cinfo)
    ours = store_signature(source, plan.cube, cinfo, kind_config(cfg, kind))
    differ = [k for k in sorted(set(ours) | set(theirs)) if ours.get(k) != theirs.get(k)]
    if differ:
        return StageState(False, f"{url} was written with another {', '.join(differ[:3])}; replacing it",
                          replace=True)
    census = mapstore.census(url, storage)
    outside = [d for d in (_day(start, i) for i in range((end - start).days + 1))
               if not minfo.start <= d <= minfo.end]
    pending = census.pending_in(start, end) + outside
    if pending or census.missing_chunks:
        return StageState(False, f"{url}: {len(pending)} day(s) of {start}..{end} unfinished, "
                                 f"{len(census.missing_chunks)} chunk(s) missing")
    return StageState(True, f"map store census complete: {(end - start).days + 1} days {start}..{end} in {url}")


def _mtime(info: dict[str, Any]) -> float:
    value = info.get("mtime") or info.get("LastModified") or info.get("last_modified") or info.get("created")
    if isinstance(value, dt.datetime):
        return value.timestamp()
    try:
        return float(value) if value is not None else 0.0
    except (TypeError, ValueError):
        return 0.0


def store_mtime(url: str, storage: StorageConfig) -> float:
    """The newest modification time (POSIX seconds) of a store's metadata and completion records."""
    from smray import cube as cubemod

    fs, path = filesystem(url, storage)
    newest = 0.0
    for sub in ("zarr.json", cubemod.RECORDS):
        try:
            fs.invalidate_cache(join(path, sub))
            entries = fs.ls(join(path, sub), detail=True) if sub == cubemod.RECORDS else [fs.info(join(path, sub))]
        except FileNotFoundError:
            continue
        newest = max([newest, *(_mtime(e) for e in entries)])
    return newest


def evaluate_state(cfg: Config, plan: Plan, storage: StorageConfig) -> StageState:
    url = join(plan.report, METRICS_FILE)
    fs, path = filesystem(url, storage)
    try:
        fs.invalidate_cache(path)
        written = _mtime(fs.info(path))
    except FileNotFoundError:
        return StageState(False, f"no {url}")
    metrics = _read_json(url, storage) or {}
    maps = [plan.maps[k] for k in plan.models]
    if metrics.get("maps") != maps or metrics.get("cube") != plan.cube:
        return StageState(False, f"{url} scores other map stores or another cube")
    for store in maps:
        if store_mtime(store, storage) > written:  # S3 times are whole seconds: equal counts as older
            return StageState(False, f"{store} is newer than {url}")
    return StageState(True, f"{url} is newer than the {len(maps)} map store(s) it scores")


# --------------------------------------------------------------------------------------------
# Forcing: forget what a stage did
# --------------------------------------------------------------------------------------------
def _forget_records(url: str, storage: StorageConfig, start: dt.date, end: dt.date) -> int:
    """Remove the completion records of start..end from a cube or map store (the chunks stay until
    rewritten); returns how many were removed."""
    from smray import cube as cubemod

    fs, path = filesystem(url, storage)
    n = 0
    for d in (_day(start, i) for i in range((end - start).days + 1)):
        key = join(path, cubemod.record_path(d))
        if fs.exists(key):
            fs.rm(key)
            n += 1
    return n


def _remove_tree(url: str, storage: StorageConfig) -> None:
    fs, path = filesystem(url, storage)
    if fs.exists(path):
        fs.rm(path, recursive=True)


# --------------------------------------------------------------------------------------------
# The run
# --------------------------------------------------------------------------------------------
@dataclass
class ReprocessSummary:
    """What the job did and where its outputs are."""

    plan: Plan
    ran: list[str] = field(default_factory=list)  #: "stage" or "stage:kind" actually computed
    skipped: list[str] = field(default_factory=list)  #: the same, found done
    seconds: float = 0.0
    metrics: dict[str, Any] | None = None

    def line(self) -> str:
        p = self.plan
        parts = [f"cube {p.cube}"]
        if p.model_dirs:
            parts.append(f"models {join(p.root, 'models')}/{{{','.join(p.model_dirs)}}}")
        if p.maps:
            parts.append(f"maps {join(p.root, 'maps')}/{{{','.join(p.maps)}}}.zarr")
        parts.append(f"report {p.report}")
        ran = ", ".join(self.ran) or "nothing"
        return f"reprocess: done in {self.seconds:.0f} s (ran: {ran}; {len(self.skipped)} done already): " \
               f"{'; '.join(parts)}"


def stage_units(cfg: Config, plan: Plan, storage: StorageConfig,
                stage: str) -> list[tuple[str, Callable[[], StageState]]]:
    """The units of a stage (one per model for train and predict) with their state checks."""
    if stage == "twin":
        return [("twin", lambda: twin_state(cfg, plan, storage))]
    if stage == "ingest":
        return [("ingest", lambda: ingest_state(cfg, plan, storage))]
    if stage == "train":
        return [(f"train:{k}", functools.partial(train_state, cfg, plan, k, storage)) for k in plan.trainable]
    if stage == "predict":
        return [(f"predict:{k}", functools.partial(predict_state, cfg, plan, k, storage)) for k in plan.models]
    return [("evaluate", lambda: evaluate_state(cfg, plan, storage))]


def first_pending(cfg: Config, plan: Plan, storage: StorageConfig) -> str | None:
    """The first unit that must run (forced or not done), or None when every planned stage is done."""
    for stage in plan.stages:
        for name, state in stage_units(cfg, plan, storage, stage):
            if stage in plan.force or not state().done:
                return name
    return None


def run_reprocess(cfg: Config, stages: Sequence[str] | None = None, force: Sequence[str] = (),
                  progress: Callable[[str], None] = print) -> ReprocessSummary:
    """Run the planned stages (``stages`` or ``reprocess.stages``) with one Ray runtime, skipping
    those already done unless in ``force`` (see the module docstring). Connects to Ray only when
    some stage has work (starting a local runtime only when none is connected, and stopping only
    one it started), and checks the cluster's resources before the first stage runs."""
    from smray.raysupport import init_ray, shutdown_ray

    t0 = time.perf_counter()
    plan = make_plan(cfg, stages, force)
    storage = resolve_storage(cfg.storage)
    check_outputs(plan, storage)
    if "twin" in plan.stages and "twin" not in plan.force:
        _check_twin_target(cfg, plan, storage)
    summary = ReprocessSummary(plan=plan)
    progress(f"reprocess: stages {', '.join(plan.stages)}; models {', '.join(plan.models)}; root {plan.root}")
    work = first_pending(cfg, plan, storage)
    started = init_ray(cfg.ray) if work is not None else False
    try:
        if work is not None:
            check_resources(cfg, plan)
        for stage in plan.stages:
            for name, state in stage_units(cfg, plan, storage, stage):
                st = StageState(False, "forced") if stage in plan.force else state()
                if st.done:
                    progress(f"stage {name}: done already ({st.why}), skipped")
                    summary.skipped.append(name)
                    continue
                progress(f"stage {name}: {'forced, recomputing' if stage in plan.force else 'running'} ({st.why})")
                t1 = time.perf_counter()
                RUNNERS[stage](cfg, plan, storage, name.partition(":")[2], st, progress)
                progress(f"stage {name}: finished in {time.perf_counter() - t1:.0f} s")
                summary.ran.append(name)
    finally:
        shutdown_ray(started)
    summary.seconds = time.perf_counter() - t0
    progress(summary.line())
    return summary


def _check_twin_target(cfg: Config, plan: Plan, storage: StorageConfig) -> None:
    """Before Ray starts: a twin that will be generated must not overwrite another archive."""
    from smray.synth.twin import check_archive_target

    assert plan.twin is not None
    if not twin_state(cfg, plan, storage).done:
        try:
            check_archive_target(plan.twin, storage, cfg.synth.overwrite)
        except SmrayError as err:
            raise SmrayError(f"reprocess.twin: {err} (or set synth.overwrite)") from None


Progress = Callable[[str], None]


def _run_twin(cfg: Config, plan: Plan, storage: StorageConfig, kind: str, st: StageState, progress: Progress) -> None:
    from smray.synth.twin import generate_twin

    synth = dataclasses.replace(cfg.synth, out=plan.twin, overwrite=cfg.synth.overwrite or "twin" in plan.force)
    result = generate_twin(dataclasses.replace(cfg, synth=synth), progress=progress)
    progress(f"twin: wrote {result.days} days to {result.out} in {result.seconds:.0f} s")


def _run_ingest(cfg: Config, plan: Plan, storage: StorageConfig, kind: str, st: StageState,
                progress: Progress) -> None:
    from smray import cube as cubemod
    from smray.ingest import run_ingest

    assert plan.ingest_start and plan.ingest_end
    if "ingest" in plan.force and cubemod.exists(plan.cube, storage):
        n = _forget_records(plan.cube, storage, plan.ingest_start, plan.ingest_end)
        progress(f"ingest: forced: {n} day record(s) of {plan.cube} removed; those days are rewritten")
    ing = dataclasses.replace(cfg.ingest, tb=plan.tb, ref=plan.ref, out=plan.cube, start=plan.ingest_start,
                              end=plan.ingest_end)
    run_ingest(dataclasses.replace(cfg, ingest=ing), progress=progress)


def _run_train(cfg: Config, plan: Plan, storage: StorageConfig, kind: str, st: StageState,
               progress: Progress) -> None:
    from smray.train import run_training

    out = plan.model_dirs[kind]
    if "train" in plan.force:
        _remove_tree(out, storage)
        progress(f"train: forced: {out} removed; training {kind} from scratch")
    result = run_training(kind_config(cfg, kind), plan.cube, plan.train_start, plan.train_end, out,
                          progress=progress)
    progress(result.line())


def _run_predict(cfg: Config, plan: Plan, storage: StorageConfig, kind: str, st: StageState,
                 progress: Progress) -> None:
    from smray import cube as cubemod
    from smray.predict import run_predict

    url = plan.maps[kind]
    start, end = plan.map_ranges[kind]
    kcfg = kind_config(cfg, kind)
    if st.replace:
        kcfg = dataclasses.replace(kcfg, predict=dataclasses.replace(kcfg.predict, new_store=True))
    elif "predict" in plan.force and cubemod.exists(url, storage):
        n = _forget_records(url, storage, start, end)
        progress(f"predict: forced: {n} day record(s) of {url} removed; those days are rewritten")
    run_predict(kcfg, plan.cube, plan.model_dirs.get(kind, "physical"), url, start, end, progress,
                twin_url=plan.twin)


def _run_evaluate(cfg: Config, plan: Plan, storage: StorageConfig, kind: str, st: StageState,
                  progress: Progress) -> None:
    from smray.evaluate import run_evaluate

    ecfg = cfg.evaluate
    run_evaluate(cfg, [plan.maps[k] for k in plan.models], plan.cube, plan.report, truth_url=ecfg.truth or plan.twin,
                 ismn=ecfg.ismn, start=ecfg.start or plan.predict_start, end=ecfg.end or plan.predict_end,
                 map_day=ecfg.map_day or plan.predict_start, progress=progress)


RUNNERS: dict[str, Callable[[Config, Plan, StorageConfig, str, StageState, Progress], None]] = {
    "twin": _run_twin, "ingest": _run_ingest, "train": _run_train, "predict": _run_predict, "evaluate": _run_evaluate,
}

__all__ = ["Plan", "StageState", "ReprocessSummary", "make_plan", "parse_stages", "check_outputs",
           "check_resources", "twin_state", "ingest_state", "train_state", "predict_state", "evaluate_state",
           "stage_units", "first_pending", "run_reprocess"]
