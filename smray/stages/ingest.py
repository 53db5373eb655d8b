"""The ingest stage: the TB and reference archives (``paths.tb``, ``paths.ref``) → the cube
(``paths.cube``) for the days of ``paths.ingest`` (:mod:`smray.ingest`).

Current when the cube is on the configured grid, was built with the same QC settings, and every day
of the period has a completion record with all chunks of its ``ok`` days present (skipped days count
as done: ``force`` retries them). ``force`` removes the period's records; those days are rewritten."""

from __future__ import annotations

from typing import Any

from smray.config import Config
from smray.stages.base import Progress, Stage, StageState, forget_records, store_state
from smray.stages.layout import Layout
from smray.storage import StorageConfig

NAME = "ingest"


class IngestStage(Stage):
    name = NAME

    def unit_state(self, cfg: Config, lay: Layout, unit: str, storage: StorageConfig) -> StageState:
        from smray import cube as cubemod
        from smray.ingest import qc_attr

        url, span = lay.need("cube"), lay.period("ingest")
        if not cubemod.exists(url, storage):
            return StageState(False, f"no cube at {url}")
        info = cubemod.info(url, storage)
        if info.grid != cfg.grid.grid():
            return StageState(False, f"{url} is on another grid")  # ingest says how to proceed
        if info.attrs.get("smray_qc", qc_attr(cfg.qc)) != qc_attr(cfg.qc):
            return StageState(False, f"{url} was built with other qc settings")
        return store_state(url, "cube", cubemod.census(url, storage), info.dates, span)

    def forget(self, cfg: Config, lay: Layout, unit: str, storage: StorageConfig, progress: Progress) -> None:
        from smray import cube as cubemod

        url = lay.need("cube")
        if cubemod.exists(url, storage):
            n = forget_records(url, storage, lay.period("ingest"))
            progress(f"ingest: forced: {n} day record(s) of {url} removed; those days are rewritten")

    def run_unit(self, cfg: Config, lay: Layout, unit: str, storage: StorageConfig, st: StageState,
                 progress: Progress) -> Any:
        return ingest_days(cfg, progress, lay)


def ingest_days(cfg: Config, progress: Progress = print, lay: Layout | None = None) -> Any:
    """:func:`smray.ingest.run_ingest` on the archives, cube and days of ``cfg.paths`` (every day
    without an ``ok`` record is ingested; no stage-level check); returns its summary."""
    from smray.ingest import run_ingest
    from smray.stages.base import resolve

    lay = lay or resolve(cfg)
    start, end = lay.period("ingest")
    return run_ingest(cfg, lay.need("tb"), lay.need("ref"), lay.need("cube"), start, end, progress=progress)


STAGE = IngestStage()
run, state = STAGE.run, STAGE.state
