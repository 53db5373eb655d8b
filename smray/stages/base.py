"""What every stage shares: its state, its summary and the loop over its units.

A stage module (``smray.stages.twin``, ``ingest``, ``train``, ``predict``, ``evaluate``,
``experiment``) defines

``STAGE``, an instance of a :class:`Stage` subclass, and its face as module functions:

* ``run(cfg, progress, *, force=False) -> StageSummary``: compute what is not done;
* ``state(cfg) -> StageState``: done or not, and why, in one line.

A stage is made of units (one per model kind for train and predict); ``Stage.unit_state`` is the one
rule that says whether a unit's outputs are there and current, ``Stage.run_unit`` computes one,
``Stage.forget`` discards one for ``force``.

The command line, the ``pipelines/`` entrypoints and the chain (:mod:`smray.stages.chain`) call
the same ``run``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from smray.config import Config, RayConfig
from smray.stages.layout import Layout, layout
from smray.storage import StorageConfig, resolve_storage

Progress = Callable[[str], None]


@dataclass
class StageState:
    """Whether a stage's (or unit's) outputs are there and current, and why (one line)."""

    done: bool
    why: str
    replace: bool = False  #: the output belongs to another model/settings and is replaced when run


@dataclass
class StageSummary:
    """What a stage run did: units computed and units found done (``stage`` or ``stage:kind``)."""

    stage: str
    ran: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    seconds: float = 0.0
    results: dict[str, Any] = field(default_factory=dict)  #: unit → what its runner returned


def resolve(cfg: Config, storage: StorageConfig | None = None) -> Layout:
    """:func:`~smray.stages.layout.layout` of ``cfg``, with the ingest period taken from an
    existing cube when neither ``paths.ingest`` nor the twin gives it."""
    lay = layout(cfg)
    if lay.ingest is None and lay.cube:
        from smray import cube as cubemod

        storage = storage or resolve_storage(cfg.storage)
        try:
            found = cubemod.exists(lay.cube, storage)
        except Exception:  # noqa: BLE001 - an unreachable store: the stage that needs the days says so
            found = False
        if found:
            info = cubemod.info(lay.cube, storage)
            lay = layout(cfg, cube_span=(info.start, info.end))
    return lay


def unit_name(stage: str, unit: str) -> str:
    return f"{stage}:{unit}" if unit else stage


class Stage:
    """One stage: its units, the rule that says a unit is current, how to compute and forget one.
    Subclasses set ``name`` and implement :meth:`unit_state` and :meth:`run_unit`."""

    name = ""

    def units(self, lay: Layout) -> list[str]:
        """The units of work: ``[""]`` for a stage of one; model kinds for train and predict."""
        return [""]

    def unit_state(self, cfg: Config, lay: Layout, unit: str, storage: StorageConfig) -> StageState:
        raise NotImplementedError

    def run_unit(self, cfg: Config, lay: Layout, unit: str, storage: StorageConfig, st: StageState,
                 progress: Progress) -> Any:
        raise NotImplementedError

    def forget(self, cfg: Config, lay: Layout, unit: str, storage: StorageConfig, progress: Progress) -> None:
        """Discard what the unit did, so that a forced run recomputes it (default: nothing to discard)."""

    def check(self, cfg: Config, lay: Layout, storage: StorageConfig, *, force: bool = False) -> None:
        """Checks before any work (and before Ray starts); one-line SmrayError (default: none)."""

    def state(self, cfg: Config, lay: Layout | None = None, storage: StorageConfig | None = None) -> StageState:
        """Done when every unit is done; else the first pending unit's reason."""
        storage = storage or resolve_storage(cfg.storage)
        lay = lay or resolve(cfg, storage)
        units = self.units(lay)
        states = []
        for unit in units:
            st = self.unit_state(cfg, lay, unit, storage)
            if not st.done:
                return StageState(False, f"{unit_name(self.name, unit)}: {st.why}", st.replace)
            states.append(st)
        return StageState(True, states[0].why if len(states) == 1 else f"{len(states)} units done")

    def run(self, cfg: Config, progress: Progress = print, *, force: bool = False, lay: Layout | None = None,
            storage: StorageConfig | None = None) -> StageSummary:
        """Run every unit that is not done (all of them with ``force``, after :meth:`forget`), one
        progress line per unit; the chain and the single-stage commands share it."""
        t0 = time.perf_counter()
        storage = storage or resolve_storage(cfg.storage)
        lay = lay or resolve(cfg, storage)
        self.check(cfg, lay, storage, force=force)
        summary = StageSummary(stage=self.name)
        for unit in self.units(lay):
            name = unit_name(self.name, unit)
            st = StageState(False, "forced") if force else self.unit_state(cfg, lay, unit, storage)
            if st.done:
                progress(f"stage {name}: done already ({st.why}), skipped")
                summary.skipped.append(name)
                continue
            progress(f"stage {name}: {'forced, recomputing' if force else 'running'} ({st.why})")
            t1 = time.perf_counter()
            if force:
                self.forget(cfg, lay, unit, storage, progress)
            summary.results[name] = self.run_unit(cfg, lay, unit, storage, st, progress)
            progress(f"stage {name}: finished in {time.perf_counter() - t1:.0f} s")
            summary.ran.append(name)
        summary.seconds = time.perf_counter() - t0
        return summary


def store_state(url: str, what: str, census: Any, axis: list[dt.date], span: tuple[dt.date, dt.date]) -> StageState:
    """The state of a day-keyed store (cube or map store) for the days of ``span``: done when every
    day has a completion record and no chunk of a recorded day is missing (``census`` from
    ``cube.census``/``mapstore.census``, ``axis`` the store's days)."""
    from smray.stages.layout import days_of

    recorded = set(axis) - set(census.pending)
    pending = [d for d in days_of(span) if d not in recorded]
    start, end = span
    if pending or census.missing_chunks:
        return StageState(False, f"{url}: {len(pending)} day(s) of {start}..{end} unfinished, "
                                 f"{len(census.missing_chunks)} chunk(s) missing")
    return StageState(True, f"{what} census complete: {(end - start).days + 1} days {start}..{end} in {url}")


def forget_records(url: str, storage: StorageConfig, span: tuple[dt.date, dt.date]) -> int:
    """Remove the completion records of ``span`` from a cube or map store (the chunks stay until
    rewritten); returns how many were removed."""
    from smray.cube import record_path
    from smray.stages.layout import days_of
    from smray.storage import filesystem, join

    fs, path = filesystem(url, storage)
    keys = [join(path, record_path(d)) for d in days_of(span)]
    present = [k for k in keys if fs.exists(k)]
    if present:
        fs.rm(present)
    return len(present)


@contextlib.contextmanager
def ray_runtime(cfg: RayConfig) -> Iterator[None]:
    """A connected Ray runtime for the block: the one already connected, or a local one started
    here and stopped at the end."""
    from smray.raysupport import init_ray, shutdown_ray

    started = init_ray(cfg)
    try:
        yield
    finally:
        shutdown_ray(started)


def url_exists(url: str, storage: StorageConfig) -> bool:
    from smray.storage import filesystem

    fs, path = filesystem(url, storage)
    return bool(fs.exists(path))


def remove_tree(url: str, storage: StorageConfig) -> None:
    """Remove everything under ``url`` (nothing when it is not there)."""
    from smray.storage import filesystem

    fs, path = filesystem(url, storage)
    if fs.exists(path):
        fs.rm(path, recursive=True)
