"""The train stage: one training run per trainable model of ``reprocess.models`` (cnn, pixel, svr)
in ``paths.models`` (``{kind}`` → the kind) on the cube's days ``paths.train`` (:mod:`smray.train`).

One rule says a run is current (:func:`smray.train.run_state`, also used by ``smray experiment``):
``training.json`` and the model artefact exist for the same kind, cube, training period and model
fingerprint, with the same settings that change the weights (:data:`smray.train.WEIGHT_SECTIONS`,
``qc.block`` and every ``train`` setting but :data:`smray.train.TRAIN_INFRASTRUCTURE`), and a CNN/pixel run finished all
epochs or stopped early (an unfinished run is resumed from its Ray Train checkpoint by
:func:`smray.train.run_training`). ``force`` removes the run directory: training starts from scratch."""

from __future__ import annotations

from typing import Any

from smray.config import Config
from smray.stages.base import Progress, Stage, StageState, remove_tree
from smray.stages.layout import Layout
from smray.storage import StorageConfig
from smray.train import run_state, train_kind

NAME = "train"
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
