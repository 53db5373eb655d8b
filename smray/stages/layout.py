"""Every URL and period of a run, resolved once from the ``paths`` section (:class:`~smray.config.PathsConfig`).

Each stage reads its inputs and outputs from :func:`layout` and nowhere else. Defaults, with
``root = paths.root``::

    twin        <root>/twin
    tb, ref     <twin>/amsr, <twin>/era_interim
    cube        <root>/cube.zarr
    models      <root>/models/{kind}        one training run directory per model kind
    maps        <root>/maps/{kind}.zarr     one map store per model kind
    report      <root>/report
    experiment  <root>/experiment
    ingest      the twin's days (when tb comes from the twin), else the cube's time axis
    train       starts on the first ingested day; its end is required by train and predict
    predict     the day after training .. the last ingested day
    evaluate    the days of maps

Local paths are made absolute (a Ray job runs in a copy of the working directory). A value a stage
needs but cannot be resolved fails with one line naming the ``paths`` field.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Sequence
from dataclasses import dataclass

from smray.config import KIND, REPROCESS_MODELS, Config, PathsConfig
from smray.errors import SmrayError
from smray.storage import join, local_path

#: models that are trained (the physical retrieval needs no training)
TRAINABLE = ("cnn", "pixel", "svr")

Span = tuple[dt.date, dt.date]


def day_after(d: dt.date, n: int = 1) -> dt.date:
    return d + dt.timedelta(days=n)


def days_of(span: Span) -> list[dt.date]:
    """Every day of ``span``, both ends included."""
    return [day_after(span[0], i) for i in range((span[1] - span[0]).days + 1)]


@dataclass(frozen=True)
class Layout:
    """The resolved ``paths`` section: absolute URLs (None where unset and without a default)
    and periods (None where they cannot be known yet)."""

    root: str | None
    twin: str | None
    tb: str | None
    ref: str | None
    cube: str | None
    models: str | None  #: template with {kind}, or one run directory
    maps: str | None  #: template with {kind}, or one store
    report: str | None
    experiment: str | None
    ismn: str | None
    cci: str | None
    scored_maps: tuple[str, ...]
    ingest: Span | None
    train: tuple[dt.date | None, dt.date | None]  #: start defaults to the first ingested day
    predict: tuple[dt.date | None, dt.date | None]  #: from paths.predict, else the day after training ..
    evaluate: tuple[dt.date | None, dt.date | None]  #: from paths.evaluate, else predict; None: the maps' days
    kinds: tuple[str, ...]  #: the models in play (reprocess.models)

    def need(self, name: str) -> str:
        """The URL of ``paths.<name>``; one-line error when it is unset and has no default."""
        value = getattr(self, name)
        if not value:
            raise SmrayError(f"paths.{name}: required value is missing (give it on the command line, or set "
                             f"paths.{name} or paths.root in the config)")
        return value

    def period(self, name: str) -> Span:
        """The period ``paths.<name>`` with both ends known; one-line error otherwise."""
        value = getattr(self, name)
        if value is None or value[0] is None or value[1] is None:
            what = "start" if value is None or value[0] is None else "end"
            raise SmrayError(f"paths.{name}.{what}: required value is missing")
        return value[0], value[1]

    @property
    def trainable(self) -> tuple[str, ...]:
        return tuple(k for k in self.kinds if k in TRAINABLE)

    def model_dir(self, kind: str) -> str:
        return _for_kind(self.need("models"), kind, "models", self.trainable)

    def map_store(self, kind: str) -> str:
        return _for_kind(self.need("maps"), kind, "maps", self.kinds)

    def map_range(self, kind: str, limit: int | None) -> Span:
        """The days of ``kind``'s maps: ``paths.predict`` (an unset end: the last ingested day; an
        unset start without a training period: the first), cut to ``limit`` days when given."""
        start = self.predict[0] or (self.ingest[0] if self.ingest and self.train[1] is None else None)
        end = self.predict[1] or (self.ingest[1] if self.ingest else None)
        if start is None or end is None:
            raise SmrayError(f"paths.predict.{'start' if start is None else 'end'}: required value is missing")
        if end < start:
            raise SmrayError(f"paths.predict.end: {end} is before paths.predict.start {start}")
        return start, (min(end, day_after(start, limit - 1)) if limit else end)

    def scored(self) -> list[str]:
        """The map stores evaluation scores: ``paths.scored_maps``, else the store of every model."""
        return list(self.scored_maps) or [self.map_store(k) for k in self.kinds]


def _for_kind(template: str, kind: str, name: str, kinds: Sequence[str]) -> str:
    if KIND in template:
        return template.replace(KIND, kind)
    if len(kinds) > 1:
        raise SmrayError(f"paths.{name}: {template!r} names one location but there are several models "
                         f"({', '.join(kinds)}); put {KIND} in it")
    return template


def absolute_url(url: str) -> str:
    """``url`` without a trailing slash; a local path made absolute."""
    path = local_path(url)
    return os.path.abspath(path) if path is not None else url.rstrip("/")


def _url(value: str | None) -> str | None:
    return absolute_url(value) if value else None


def layout(cfg: Config, *, cube_span: Span | None = None) -> Layout:
    """Resolve ``cfg.paths`` (no storage is touched; ``cube_span`` is the existing cube's first and
    last day, which the ingest period defaults to when the twin does not give it)."""
    p: PathsConfig = cfg.paths
    root = _url(p.root)
    twin = _url(p.twin) or (join(root, "twin") if root else None)
    tb = _url(p.tb) or (join(twin, "amsr") if twin else None)
    ref = _url(p.ref) or (join(twin, "era_interim") if twin else None)
    start, end = p.ingest.start, p.ingest.end
    if not p.tb and twin:  # the archive is the twin's: its days are the default
        start = start or cfg.synth.start
        end = end or day_after(cfg.synth.start, cfg.synth.days - 1)
    if cube_span is not None:
        start, end = start or cube_span[0], end or cube_span[1]
    ingest = (start, end) if start and end else None
    train = (p.train.start or start, p.train.end)
    pstart = p.predict.start or (day_after(p.train.end) if p.train.end else None)
    pend = p.predict.end or (end if pstart else None)
    predict = (pstart, pend)
    evaluate = (p.evaluate.start or pstart, p.evaluate.end or pend)
    kinds = tuple(k for k in cfg.reprocess.models if k in REPROCESS_MODELS)
    return Layout(root=root, twin=twin, tb=tb, ref=ref,
                  cube=_url(p.cube) or (join(root, "cube.zarr") if root else None),
                  models=_url(p.models) or (join(root, "models", KIND) if root else None),
                  maps=_url(p.maps) or (join(root, "maps", f"{KIND}.zarr") if root else None),
                  report=_url(p.report) or (join(root, "report") if root else None),
                  experiment=_url(p.experiment) or (join(root, "experiment") if root else None),
                  ismn=p.ismn, cci=p.cci, scored_maps=tuple(absolute_url(m) for m in p.scored_maps), ingest=ingest,
                  train=train, predict=predict, evaluate=evaluate, kinds=kinds)


def check_periods(lay: Layout, names: Sequence[str]) -> None:
    """The periods ``names`` (of train, predict, evaluate) lie inside the ingest period and end after
    they start (defaults included); one line naming the field otherwise."""
    spans = {"train": lay.train, "predict": lay.predict, "evaluate": lay.evaluate}  # ends may be None
    for name in names:
        span = spans[name]
        if lay.ingest is not None:
            first, last = lay.ingest
            for end, d in zip(("start", "end"), span):
                if d is not None and not first <= d <= last:
                    raise SmrayError(f"paths.{name}.{end}: {d} is outside the ingest period {first}..{last}")
        if span[0] and span[1] and span[1] < span[0]:
            raise SmrayError(f"paths.{name}.end: {span[1]} is before paths.{name}.start {span[0]} "
                             f"(maps start the day after paths.train.end unless paths.predict.start says otherwise)")
