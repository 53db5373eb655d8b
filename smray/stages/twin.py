"""The twin stage: the AMSR-E / ERA-Interim twin archive at ``paths.twin`` (:mod:`smray.synth.twin`).

Current when ``twin.json`` records the same grid and the same ``synth`` start, days, seed, spin-up,
sensor, TB layout and compression (a manifest without ``tb_layout`` was written as JAXA L3, without
``gzip`` uncompressed). ``force`` overwrites the archive."""

from __future__ import annotations

import dataclasses
from typing import Any

from smray.config import Config, to_dict
from smray.errors import SmrayError
from smray.stages.base import Progress, Stage, StageState, ray_runtime
from smray.stages.layout import Layout
from smray.storage import StorageConfig, join
from smray.truth import MANIFEST

NAME = "twin"
#: the twin's settings a finished twin must share with the config (twin.json ``synth``)
TWIN_KEYS = ("start", "days", "seed", "spinup_days", "sensor", "tb_layout", "gzip")
#: what a key missing from an older manifest meant
TWIN_DEFAULTS = {"tb_layout": "jaxa_l3", "gzip": False}


class TwinStage(Stage):
    name = NAME

    def unit_state(self, cfg: Config, lay: Layout, unit: str, storage: StorageConfig) -> StageState:
        from smray.serial import read_json

        twin = lay.need("twin")
        try:
            manifest = read_json(join(twin, MANIFEST), storage)
        except (FileNotFoundError, SmrayError):
            return StageState(False, f"no {MANIFEST} in {twin}")
        want = to_dict(cfg.synth)
        have = {**TWIN_DEFAULTS, **(manifest.get("synth") or {})}
        differ = [k for k in TWIN_KEYS if have.get(k) != want[k]]
        if manifest.get("grid") != cfg.grid.grid().to_dict():
            differ.append("grid")
        if differ:
            return StageState(False, f"{twin} holds a twin with other {', '.join(differ)}")
        return StageState(True, f"{twin}/{MANIFEST}: {want['days']} days from {want['start']}")

    def check(self, cfg: Config, lay: Layout, storage: StorageConfig, *, force: bool = False) -> None:
        """A twin that will be generated must not overwrite another archive, and a regional one must
        hold land (the twin is a land-surface twin: a window of sea has nothing to retrieve)."""
        from smray.storage import check_reachable
        from smray.synth.twin import check_archive_target

        if cfg.grid.bbox is not None:
            from smray.grid import surface_fractions

            if not (surface_fractions(cfg.grid.grid())["land"] >= 0.5).any():
                raise SmrayError(f"grid.bbox: {','.join(f'{v:g}' for v in cfg.grid.bbox)} holds no land cell "
                                 f"(land fraction >= 0.5) on the {cfg.grid.res:g} deg grid")

        try:  # an unreachable endpoint is said in one line before anything reads the manifest
            check_reachable(lay.need("twin"), storage, create=True)
        except SmrayError as err:
            raise SmrayError(f"paths.twin: {err}") from None
        if force or self.unit_state(cfg, lay, "", storage).done:
            return
        try:
            check_archive_target(lay.need("twin"), storage, cfg.synth.overwrite)
        except SmrayError as err:
            raise SmrayError(f"paths.twin: {err} (or set synth.overwrite)") from None

    def forget(self, cfg: Config, lay: Layout, unit: str, storage: StorageConfig, progress: Progress) -> None:
        progress(f"twin: forced: {lay.need('twin')} is overwritten")

    def run_unit(self, cfg: Config, lay: Layout, unit: str, storage: StorageConfig, st: StageState,
                 progress: Progress) -> Any:
        from smray.raysupport import wait_for_resources
        from smray.synth.twin import generate_twin

        synth = dataclasses.replace(cfg.synth, overwrite=cfg.synth.overwrite or st.why == "forced")
        with ray_runtime(cfg.ray):
            wait_for_resources({"CPU": 1.0}, what="the twin's day tasks", field="ray",
                               timeout_s=cfg.ray.resource_timeout_s, progress=progress)
            result = generate_twin(dataclasses.replace(cfg, synth=synth), lay.need("twin"), progress=progress)
        progress(f"twin: wrote {result.days} days to {result.out} in {result.seconds:.0f} s")
        return result


STAGE = TwinStage()
run, state = STAGE.run, STAGE.state
