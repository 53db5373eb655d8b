"""The evaluate stage: every map store scored side by side against the cube's reference (and the
twin's truth, ISMN stations) into ``paths.report`` (:mod:`smray.evaluate`).

The stores are ``paths.scored_maps``, else the store of every model of ``reprocess.models``; the
days ``paths.evaluate``. Current when ``metrics.json`` scores the same stores and cube and is newer
than every store's metadata and completion records."""

from __future__ import annotations

import datetime as dt
from typing import Any

from smray.config import Config
from smray.errors import SmrayError
from smray.stages.base import Progress, Stage, StageState, url_exists
from smray.stages.layout import Layout
from smray.storage import StorageConfig, filesystem, join
from smray.truth import MANIFEST

NAME = "evaluate"
METRICS_FILE = "metrics.json"


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
    from smray.cube import RECORDS

    fs, path = filesystem(url, storage)
    newest = 0.0
    for sub in ("zarr.json", RECORDS):
        try:
            fs.invalidate_cache(join(path, sub))
            entries = fs.ls(join(path, sub), detail=True) if sub == RECORDS else [fs.info(join(path, sub))]
        except FileNotFoundError:
            continue
        newest = max([newest, *(_mtime(e) for e in entries)])
    return newest


class EvaluateStage(Stage):
    name = NAME

    def unit_state(self, cfg: Config, lay: Layout, unit: str, storage: StorageConfig) -> StageState:
        from smray.serial import read_json

        url = join(lay.need("report"), METRICS_FILE)
        fs, path = filesystem(url, storage)
        try:
            fs.invalidate_cache(path)
            written = _mtime(fs.info(path))
            metrics = read_json(url, storage)
        except (FileNotFoundError, SmrayError):
            return StageState(False, f"no {url}")
        maps = lay.scored()
        if metrics.get("maps") != maps or metrics.get("cube") != lay.need("cube"):
            return StageState(False, f"{url} scores other map stores or another cube")
        for store in maps:
            if store_mtime(store, storage) > written:  # S3 times are whole seconds: equal counts as older
                return StageState(False, f"{store} is newer than {url}")
        return StageState(True, f"{url} is newer than the {len(maps)} map store(s) it scores")

    def run_unit(self, cfg: Config, lay: Layout, unit: str, storage: StorageConfig, st: StageState,
                 progress: Progress) -> Any:
        from smray.evaluate import run_evaluate

        start, end = lay.evaluate
        # the truth: a twin named in paths.twin, or the one under the root when it is there
        twin = lay.twin if cfg.paths.twin or (lay.twin and url_exists(join(lay.twin, MANIFEST), storage)) else None
        map_day = cfg.evaluate.map_day or start  # None: each model's last scored day
        return run_evaluate(cfg, lay.scored(), lay.need("cube"), lay.need("report"), truth_url=twin, ismn=lay.ismn,
                            cci=lay.cci, start=start, end=end, map_day=map_day, progress=progress)


STAGE = EvaluateStage()
run, state = STAGE.run, STAGE.state
