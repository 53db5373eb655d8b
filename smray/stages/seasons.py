"""The seasons experiment (``smray experiment seasons``): train on ``paths.train`` (one year), test on
the days of ``experiment.months`` in ``paths.evaluate`` (another year), scored per season and month,
CNN / SVR / pixel-wise / physical side by side, into ``paths.experiment`` (:mod:`smray.seasons`).

The command (``smray.cli``) runs the chain's twin and ingest stages first (each skipped when done;
the twin only when the archive is the twin's), then this stage. Current when the result file
records the same cube, twin, training period, test days, test patches and models, and every trained
model is current by the train stage's rule; the models are trained (or kept) by
:func:`smray.stages.experiment.train_models`, so a re-run neither retrains nor rewrites them."""

from __future__ import annotations

from typing import Any

from smray.config import Config
from smray.errors import SmrayError
from smray.seasons import JSON_FILE, check_seasons, run_seasons_experiment, scored_days
from smray.serial import read_json
from smray.stages.base import Progress, StageState
from smray.stages.experiment import ExperimentStage, record_state, train_models
from smray.stages.layout import Layout
from smray.storage import StorageConfig, join

NAME = "seasons"


class SeasonsStage(ExperimentStage):
    """The paper experiment's stage with another protocol: the same outputs' directory, the same rule
    (:func:`~smray.stages.experiment.record_state`) and the same ``forget``."""

    name = NAME
    label = "experiment seasons"

    def unit_state(self, cfg: Config, lay: Layout, unit: str, storage: StorageConfig) -> StageState:
        out, ex = lay.need("experiment"), cfg.experiment
        url = join(out, JSON_FILE)
        try:
            rec = read_json(url, storage)
        except (FileNotFoundError, SmrayError):
            return StageState(False, f"no {url}")
        (start, end), test = lay.period("train"), lay.period("evaluate")
        days = [d.isoformat() for d in scored_days(test[0], test[1], ex.months, ex.test_day_every)]
        want = {"cube": lay.need("cube"), "twin": lay.need("twin"), "train_start": start.isoformat(),
                "train_end": end.isoformat(), "test_days": days, "test_patches": ex.test_patches,
                "physical_method": ex.physical if "physical" in ex.models else None}
        return record_state(cfg, url, rec, want, (start, end), out, storage,
                            f"{url} matches ({', '.join(ex.models)}; {len(days)} test days)")

    def run_unit(self, cfg: Config, lay: Layout, unit: str, storage: StorageConfig, st: StageState,
                 progress: Progress) -> Any:
        train, test = lay.period("train"), lay.period("evaluate")
        cube, out = lay.need("cube"), lay.need("experiment")
        kinds, days = check_seasons(cfg, cube, train, test)
        progress(f"experiment seasons: train {train[0]}..{train[1]} ({', '.join(kinds)}); {len(days)} test days in "
                 f"months {', '.join(str(m) for m in cfg.experiment.months)} of {test[0]}..{test[1]}")
        trained = train_models(cfg, cube, train[0], train[1], out, kinds, progress)
        return run_seasons_experiment(cfg, cube, lay.need("twin"), out, train=train, days=days,
                                      models=cfg.experiment.models, trained=trained, progress=progress)


STAGE = SeasonsStage()
run, state = STAGE.run, STAGE.state

