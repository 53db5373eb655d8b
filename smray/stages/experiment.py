"""The paper experiment (``smray experiment paper``): train on ``paths.train`` (default 1–30 July
2011), test on the single day ``paths.evaluate.start`` (default 31 July 2011), CNN / SVR / pixel /
physical side by side with the paper's Table 2, into ``paths.experiment`` (:mod:`smray.experiment`).

Current when the result file records the same cube, twin, period, test day, models and test settings
and every trained model is current by the train stage's rule; the models are trained (or kept) by
:func:`train_models` by the train stage's rule, so a re-run neither retrains nor rewrites them."""

from __future__ import annotations

import datetime as dt
from typing import Any

from smray.config import Config
from smray.errors import SmrayError
from smray.experiment import JSON_FILE, check_request, output_name, run_paper_experiment
from smray.serial import read_json
from smray.stages.base import Progress, Stage, StageState, ray_runtime, remove_tree
from smray.stages.layout import TRAINABLE, Layout
from smray.storage import StorageConfig, join, resolve_storage
from smray.train import run_state, train_kind

NAME = "experiment"
PAPER_TRAIN = (dt.date(2011, 7, 1), dt.date(2011, 7, 30))
PAPER_TEST_DAY = dt.date(2011, 7, 31)


def protocol(cfg: Config) -> tuple[dt.date, dt.date, dt.date]:
    """(first training day, last training day, test day): ``paths.train`` and ``paths.evaluate.start``,
    the paper's where unset."""
    p = cfg.paths
    return (p.train.start or PAPER_TRAIN[0], p.train.end or PAPER_TRAIN[1], p.evaluate.start or PAPER_TEST_DAY)


def train_models(cfg: Config, cube: str, start: dt.date, end: dt.date, out: str, kinds: list[str],
                 progress: Progress) -> dict[str, Any]:
    """Train every kind in ``kinds`` into ``<out>/<kind>`` unless its run is current (:func:`run_state`),
    with one Ray runtime; returns, per kind, whether it was trained and where it is."""
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


def record_state(cfg: Config, url: str, rec: dict[str, Any], want: dict[str, Any], train: tuple[dt.date, dt.date],
                 out: str, storage: StorageConfig, done_why: str) -> StageState:
    """The experiments' rule: the result record ``rec`` (read from ``url``) holds every value of ``want``
    (``want["cube"]`` the cube) and the models of ``experiment.models``, and every trained model under
    ``<out>/<kind>`` is current for the training period ``train`` by the train stage's rule."""
    ex = cfg.experiment
    differ = [k for k, v in want.items() if rec.get(k) != v]
    if sorted(rec.get("models") or {}) != sorted(ex.models):
        differ.append("models")
    if differ:
        return StageState(False, f"{url} was made with other {', '.join(differ[:4])}")
    for kind in (k for k in ex.models if k in TRAINABLE):
        st = run_state(cfg, kind, want["cube"], train[0], train[1], join(out, kind), storage)
        if not st.done:
            return StageState(False, st.why)
    return StageState(True, done_why)


class ExperimentStage(Stage):
    name = NAME
    label = "experiment"  #: the progress lines' prefix

    def unit_state(self, cfg: Config, lay: Layout, unit: str, storage: StorageConfig) -> StageState:
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
        return record_state(cfg, url, rec, want, (start, end), out, storage,
                            f"{url} matches ({', '.join(ex.models)}; test day {day})")

    def forget(self, cfg: Config, lay: Layout, unit: str, storage: StorageConfig, progress: Progress) -> None:
        out = lay.need("experiment")
        remove_tree(out, storage)
        progress(f"{self.label}: forced: {out} removed; every model is trained from scratch")

    def run_unit(self, cfg: Config, lay: Layout, unit: str, storage: StorageConfig, st: StageState,
                 progress: Progress) -> Any:
        ex = cfg.experiment
        start, end, day = protocol(cfg)
        cube, out = lay.need("cube"), lay.need("experiment")
        kinds = check_request(cfg, cube, ex.models, ex.test_patches, ex.test_region, start, end, day)
        trained = train_models(cfg, cube, start, end, out, kinds, progress)
        return run_paper_experiment(cfg, cube, lay.need("twin"), out, train_start=start, train_end=end,
                                    test_day=day, test_patches=ex.test_patches, models=ex.models,
                                    physical_method=ex.physical, test_region=ex.test_region, trained=trained,
                                    progress=progress)


STAGE = ExperimentStage()
run, state = STAGE.run, STAGE.state
