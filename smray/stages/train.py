"""The train stage: one training run per trainable model of ``reprocess.models`` (cnn, pixel, svr)
in ``paths.models`` (``{kind}`` → the kind) on the cube's days ``paths.train`` (:mod:`smray.train`).

One rule says a run is current (:func:`run_state`, also used by ``smray experiment``):
``training.json`` and the model artefact exist for the same kind, cube, training period and model
fingerprint, with the same settings that change the weights (:data:`WEIGHT_SECTIONS`, ``qc.block``
and every ``train`` setting but :data:`TRAIN_INFRASTRUCTURE`), and a CNN/pixel run finished all
epochs or stopped early (an unfinished run is resumed from its Ray Train checkpoint by
:func:`smray.train.run_training`). ``force`` removes the run directory: training starts from scratch."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

from smray.config import Config, StorageConfig, to_dict
from smray.errors import SmrayError
from smray.stages.base import Progress, Stage, StageState, ray_runtime, remove_tree
from smray.stages.layout import Layout
from smray.storage import filesystem, join

NAME = "train"
#: config sections whose every setting changes the trained weights
WEIGHT_SECTIONS = ("normalise", "patches", "model")
#: train settings that say where and how robustly training runs, not what it learns
TRAIN_INFRASTRUCTURE = ("use_gpu", "cpus_per_worker", "max_failures")


def kind_config(cfg: Config, kind: str) -> Config:
    """``cfg`` with ``model.kind = kind`` (unchanged for "physical", which is not a trained model)."""
    if kind not in ("cnn", "pixel", "svr"):
        return cfg
    return dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, kind=kind))


def run_state(cfg: Config, kind: str, cube: str, start: dt.date, end: dt.date, out: str,
              storage: StorageConfig) -> StageState:
    """Whether ``out`` holds a finished, current training run of ``kind`` (see the module docstring)."""
    from smray.checkpoint import config_fingerprint
    from smray.serial import json_safe, read_json
    from smray.train import MODEL_FILE, SVR_FILE, TRAINING_FILE

    try:
        rec = read_json(join(out, TRAINING_FILE), storage)
    except (FileNotFoundError, SmrayError):
        return StageState(False, f"no {TRAINING_FILE} in {out}")
    fs, path = filesystem(join(out, SVR_FILE if kind == "svr" else MODEL_FILE), storage)
    if not fs.exists(path):
        return StageState(False, f"{out}: {TRAINING_FILE} without its model")
    kcfg = kind_config(cfg, kind)
    want = {"kind": kind, "cube": cube, "train_start": start.isoformat(), "train_end": end.isoformat(),
            "fingerprint": config_fingerprint(kcfg.model, kcfg.patches)}
    differ = [k for k, v in want.items() if rec.get(k) != v]
    old, now = rec.get("config") or {}, json_safe(to_dict(kcfg))
    differ += [s for s in WEIGHT_SECTIONS if old.get(s) != now[s]]
    if (old.get("qc") or {}).get("block") != now["qc"]["block"]:
        differ.append("qc.block")
    differ += [f"train.{k}" for k in now["train"]
               if k not in TRAIN_INFRASTRUCTURE and (old.get("train") or {}).get(k) != now["train"][k]]
    if differ:
        return StageState(False, f"{out} was trained with other {', '.join(differ[:4])}")
    if kind != "svr":
        history = rec.get("history") or []
        stopped = bool(history and history[-1].get("stop"))
        if int(rec.get("epochs_completed", 0)) < cfg.train.epochs and not stopped:
            return StageState(False, f"{out}: {rec.get('epochs_completed')} of {cfg.train.epochs} epochs")
    return StageState(True, f"{out}/{TRAINING_FILE} matches ({kind}, {want['train_start']}..{want['train_end']})")


def train_kind(cfg: Config, kind: str, cube: str, start: dt.date, end: dt.date, out: str,
               progress: Progress) -> Any:
    """Train (or resume) ``kind`` into ``out``; returns the training summary."""
    from smray.train import run_training

    result = run_training(kind_config(cfg, kind), cube, start, end, out, progress=progress)
    progress(result.line())
    return result


def train_models(cfg: Config, cube: str, start: dt.date, end: dt.date, out: str, kinds: list[str],
                 progress: Progress) -> dict[str, Any]:
    """Train every kind in ``kinds`` into ``<out>/<kind>`` unless its run is current (:func:`run_state`),
    with one Ray runtime; returns, per kind, whether it was trained and where it is."""
    from smray.storage import resolve_storage

    storage = resolve_storage(cfg.storage)
    done: dict[str, Any] = {}
    with ray_runtime(cfg.ray):
        for kind in kinds:
            where = join(out, kind)
            st = run_state(cfg, kind, cube, start, end, where, storage)
            if st.done:
                progress(f"experiment: {kind}: finished training found in {where}; not retraining")
                done[kind] = {"trained": False, "out": where}
                continue
            summary = train_kind(cfg, kind, cube, start, end, where, progress)
            done[kind] = {"trained": True, "out": where, "seconds": summary.seconds}
    return done


class TrainStage(Stage):
    name = NAME

    def units(self, lay: Layout) -> list[str]:
        return list(lay.trainable)

    def unit_state(self, cfg: Config, lay: Layout, unit: str, storage: StorageConfig) -> StageState:
        start, end = lay.period("train")
        return run_state(cfg, unit, lay.need("cube"), start, end, lay.model_dir(unit), storage)

    def forget(self, cfg: Config, lay: Layout, unit: str, storage: StorageConfig, progress: Progress) -> None:
        out = lay.model_dir(unit)
        remove_tree(out, storage)
        progress(f"train: forced: {out} removed; training {unit} from scratch")

    def run_unit(self, cfg: Config, lay: Layout, unit: str, storage: StorageConfig, st: StageState,
                 progress: Progress) -> Any:
        start, end = lay.period("train")
        return train_kind(cfg, unit, lay.need("cube"), start, end, lay.model_dir(unit), progress)


STAGE = TrainStage()
run, state = STAGE.run, STAGE.state
