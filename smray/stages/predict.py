"""The predict stage: one map store per model of ``reprocess.models`` in ``paths.maps`` (``{kind}``
→ the kind) for the days of ``paths.predict`` (cut per model by ``reprocess.predict_days``), from
the cube ``paths.cube`` and the training run ``paths.models`` (:mod:`smray.predict`).

Current when the store is a map store of this cube and of the model's current weights (the store
signature: checkpoint SHA-256, fingerprint, grid, QC and interval settings, and the arithmetic
``predict.precision`` resolves to on this cluster) and every day of the model's range has a
completion record with its chunks present. A store written by another model or
settings is replaced; ``force`` removes the range's records and those days are rewritten."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from smray.config import Config
from smray.errors import SmrayError
from smray.stages.base import Progress, Stage, StageState, forget_records, store_state
from smray.stages.layout import TRAINABLE, Layout, Span
from smray.storage import StorageConfig

NAME = "predict"
PHYSICAL = "physical"


def model_url(lay: Layout, kind: str) -> str:
    """The training run a kind's maps come from ("physical" needs none)."""
    return lay.model_dir(kind) if kind in TRAINABLE else PHYSICAL


def map_range(cfg: Config, lay: Layout, kind: str) -> Span:
    return lay.map_range(kind, getattr(cfg.reprocess.predict_days, kind))


def model_kind(url: str, storage: StorageConfig) -> str:
    """The kind of the model at ``url`` (a training run directory, or "physical")."""
    from smray.serial import read_json
    from smray.checkpoint import TRAINING_FILE

    if url.strip().lower() == PHYSICAL:
        return PHYSICAL
    try:
        kind = read_json(f"{url.rstrip('/')}/{TRAINING_FILE}", storage).get("kind")
    except FileNotFoundError:
        raise SmrayError(f"--model: {url} holds no {TRAINING_FILE} (not a training run directory)") from None
    if kind not in TRAINABLE:
        raise SmrayError(f"--model: {url}/{TRAINING_FILE} names an unknown model kind {kind!r}")
    return kind


class PredictStage(Stage):
    name = NAME

    def units(self, lay: Layout) -> list[str]:
        return list(lay.kinds)

    def unit_state(self, cfg: Config, lay: Layout, unit: str, storage: StorageConfig) -> StageState:
        from smray import cube as cubemod
        from smray import mapstore
        from smray.predict import describe_model, plan_precision, store_signature
        from smray.train import kind_config

        url, cube = lay.map_store(unit), lay.need("cube")
        if not cubemod.exists(url, storage):
            return StageState(False, f"no map store at {url}")
        try:
            minfo = mapstore.info(url, storage)
            theirs = json.loads(minfo.attrs.get("smray_predict_signature", "{}"))
        except (SmrayError, ValueError) as err:
            return StageState(False, f"{url} is not a readable map store ({err}); replacing it", replace=True)
        cinfo = cubemod.info(cube, storage)
        source = describe_model(model_url(lay, unit), storage, cinfo)
        kcfg = kind_config(cfg, unit)
        ours = store_signature(source, cube, cinfo, kcfg, plan_precision(kcfg, source.kind))
        differ = [k for k in sorted(set(ours) | set(theirs)) if ours.get(k) != theirs.get(k)]
        if differ:
            return StageState(False, f"{url} was written with another {', '.join(differ[:3])}; replacing it",
                              replace=True)
        return store_state(url, "map store", mapstore.census(url, storage), minfo.dates, map_range(cfg, lay, unit))

    def forget(self, cfg: Config, lay: Layout, unit: str, storage: StorageConfig, progress: Progress) -> None:
        from smray import cube as cubemod

        url = lay.map_store(unit)
        if cubemod.exists(url, storage):
            n = forget_records(url, storage, map_range(cfg, lay, unit))
            progress(f"predict: forced: {n} day record(s) of {url} removed; those days are rewritten")

    def run_unit(self, cfg: Config, lay: Layout, unit: str, storage: StorageConfig, st: StageState,
                 progress: Progress) -> Any:
        from smray.predict import run_predict
        from smray.train import kind_config

        start, end = map_range(cfg, lay, unit)
        kcfg = kind_config(cfg, unit)
        if st.replace:
            kcfg = dataclasses.replace(kcfg, predict=dataclasses.replace(kcfg.predict, new_store=True))
        return run_predict(kcfg, lay.need("cube"), model_url(lay, unit), lay.map_store(unit), start, end, progress,
                           twin_url=lay.twin)


STAGE = PredictStage()
run, state = STAGE.run, STAGE.state
