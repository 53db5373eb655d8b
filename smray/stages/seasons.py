"""The seasons experiment (``smray experiment seasons``): train on ``paths.train`` (one year), test on
the days of ``experiment.months`` in ``paths.evaluate`` (another year), scored per season and month,
CNN / SVR / pixel-wise / physical side by side, into ``paths.experiment`` (:mod:`smray.seasons`).

:func:`run_all` is the command: the chain's twin and ingest stages first (each skipped when done;
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
from smray.stages.base import Progress, Stage, StageState, StageSummary, remove_tree
from smray.stages.experiment import train_models
from smray.stages.layout import TRAINABLE, Layout
from smray.storage import StorageConfig, join
from smray.train import run_state

NAME = "seasons"


class SeasonsStage(Stage):
    name = NAME

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
        differ = [k for k, v in want.items() if rec.get(k) != v]
        if sorted(rec.get("models") or {}) != sorted(ex.models):
            differ.append("models")
        if differ:
            return StageState(False, f"{url} was made with other {', '.join(differ[:4])}")
        for kind in (k for k in ex.models if k in TRAINABLE):
            st = run_state(cfg, kind, want["cube"], start, end, join(out, kind), storage)
            if not st.done:
                return StageState(False, st.why)
        return StageState(True, f"{url} matches ({', '.join(ex.models)}; {len(days)} test days)")

    def forget(self, cfg: Config, lay: Layout, unit: str, storage: StorageConfig, progress: Progress) -> None:
        out = lay.need("experiment")
        remove_tree(out, storage)
        progress(f"experiment seasons: forced: {out} removed; every model is trained from scratch")

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


def run_all(cfg: Config, progress: Progress = print, *, force: bool = False) -> StageSummary:
    """The command: the twin (when the archive is the twin's) and ingest stages of the chain, each
    skipped when done, then the seasons experiment."""
    from smray.stages.chain import run_chain

    run_chain(cfg, ["ingest"] if cfg.paths.tb else ["twin", "ingest"], progress=progress)
    return run(cfg, progress, force=force)
