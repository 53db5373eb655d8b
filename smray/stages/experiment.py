"""The paper experiment (``smray experiment paper``): train on ``paths.train`` (default 1–30 July
2011), test on the single day ``paths.evaluate.start`` (default 31 July 2011), CNN / SVR / pixel /
physical side by side with the paper's Table 2, into ``paths.experiment`` (:mod:`smray.experiment`).

Current when the result file records the same cube, twin, period, test day, models and test settings
and every trained model is current by the train stage's rule; the models are trained (or kept) by
:func:`smray.stages.train.train_models`, so a re-run neither retrains nor rewrites them."""

from __future__ import annotations

import datetime as dt
from typing import Any

from smray.config import Config, StorageConfig
from smray.errors import SmrayError
from smray.stages.base import Progress, Stage, StageState, remove_tree
from smray.stages.layout import TRAINABLE, Layout
from smray.storage import join

NAME = "experiment"
PAPER_TRAIN = (dt.date(2011, 7, 1), dt.date(2011, 7, 30))
PAPER_TEST_DAY = dt.date(2011, 7, 31)


def protocol(cfg: Config) -> tuple[dt.date, dt.date, dt.date]:
    """(first training day, last training day, test day): ``paths.train`` and ``paths.evaluate.start``,
    the paper's where unset."""
    p = cfg.paths
    return (p.train.start or PAPER_TRAIN[0], p.train.end or PAPER_TRAIN[1], p.evaluate.start or PAPER_TEST_DAY)


class ExperimentStage(Stage):
    name = NAME

    def unit_state(self, cfg: Config, lay: Layout, unit: str, storage: StorageConfig) -> StageState:
        from smray.experiment import JSON_FILE, output_name
        from smray.serial import read_json
        from smray.stages.train import run_state

        out, ex = lay.need("experiment"), cfg.experiment
        url = join(out, output_name(JSON_FILE, ex.test_region))
        try:
            rec = read_json(url, storage)
        except (FileNotFoundError, SmrayError):
            return StageState(False, f"no {url}")
        start, end, day = protocol(cfg)
        want = {"cube": lay.need("cube"), "twin": lay.need("twin"), "train_start": start.isoformat(),
                "train_end": end.isoformat(), "test_day": day.isoformat(), "test_patches": ex.test_patches,
                "test_region": ex.test_region}
        differ = [k for k, v in want.items() if rec.get(k) != v]
        if sorted(rec.get("models") or {}) != sorted(ex.models):
            differ.append("models")
        if differ:
            return StageState(False, f"{url} was made with other {', '.join(differ[:4])}")
        for kind in (k for k in ex.models if k in TRAINABLE):
            st = run_state(cfg, kind, want["cube"], start, end, join(out, kind), storage)
            if not st.done:
                return StageState(False, st.why)
        return StageState(True, f"{url} matches ({', '.join(ex.models)}; test day {day})")

    def forget(self, cfg: Config, lay: Layout, unit: str, storage: StorageConfig, progress: Progress) -> None:
        out = lay.need("experiment")
        remove_tree(out, storage)
        progress(f"experiment: forced: {out} removed; every model is trained from scratch")

    def run_unit(self, cfg: Config, lay: Layout, unit: str, storage: StorageConfig, st: StageState,
                 progress: Progress) -> Any:
        from smray.experiment import run_paper_experiment

        ex = cfg.experiment
        start, end, day = protocol(cfg)
        return run_paper_experiment(cfg, lay.need("cube"), lay.need("twin"), lay.need("experiment"),
                                    train_start=start, train_end=end, test_day=day, test_patches=ex.test_patches,
                                    models=ex.models, physical_method=ex.physical, test_region=ex.test_region,
                                    progress=progress)


STAGE = ExperimentStage()
run, state = STAGE.run, STAGE.state
