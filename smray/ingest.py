"""Archive → analysis-ready cube: one Ray Data task per day (``smray ingest``).

Flow::

    discover TB and reference files (driver)  →  cube template (driver)
      →  days without a finished record  →  Ray Data: ingest_day per day (one task each)
      →  progress per day  →  finalize: ingest log into the attributes, chunk census

:func:`ingest_day` is the pure per-day core (no Ray): read the day's TB files (and the day
before's, same pass, for compositing), read the reference's daily mean ``swvl1`` (and ``stl1``
when the file has it), regrid to the cube grid, screen and composite (:func:`smray.preprocess.preprocess_day`)
and write the day's own chunks (:func:`smray.cube.write_day`). Any bad input of the day (a
truncated or corrupt file, a file on an unexpected grid or missing its datasets, an unreadable
object, no file at all, nothing observed) skips the day: :func:`smray.cube.skip_day` removes its
chunks and records the file and reason, and the run goes on. Files of the day *before* only feed
compositing: when one is bad, its pass is simply not filled, and the record notes it.

A re-run processes the days that have no ``ok`` record: unfinished days (an interrupted run) and
days skipped before (their files may have been fixed). Finished days are never rewritten, so a
later ``--end`` appends without touching earlier chunks.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from smray import cube
from smray.config import Config, IngestConfig, QCConfig, to_dict
from smray.discovery import JAXA, NSIDC, NSIDC_FLAT, NSIDC_L2A, RefIndex, TbIndex, discover_ref, discover_tb
from smray.errors import SmrayError
from smray.formats import nsidc_l2a
from smray.formats.detect import basename, load_source
from smray.formats.era import read_era_native, regrid_era
from smray.formats.jaxa_l3 import aggregate_area, read_jaxa_l3_native
from smray.formats.nsidc_flat import read_flat_native, read_time, time_filename, to_grid
from smray.formats.nsidc_land3 import read_nsidc_land3
from smray.grid import Grid
from smray.preprocess import CHANNELS, PASSES, fill_water, preprocess_day
from smray.qc import FLAGS
from smray.storage import StorageConfig, check_reachable, filesystem, is_transient, local_path, resolve_storage

#: JAXA band → indices of its (H, V) channels in :data:`CHANNELS` order.
BAND_CHANNELS = {"06": (CHANNELS.index("06H"), CHANNELS.index("06V")),
                 "10": (CHANNELS.index("10H"), CHANNELS.index("10V"))}
#: Decoded TB files kept per worker (a day is 4 files; the next day's task reuses them as "previous").
TB_CACHE_FILES = 8
#: Decoded reference files (all days of a month, on the file's own grid) kept per worker.
REF_CACHE_FILES = 2


# --------------------------------------------------------------------------------------------
# What one day task gets and returns
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DayJob:
    """The files of one day, from discovery: ``tb``/``tb_previous`` are pass → band → URL for JAXA
    L3 (pass → channel or ``TIM`` → URL for NSIDC-0302/0301, pass → first-scan stamp → URL for
    AE_L2A half-orbits) and ``{"*": {"*": url}}`` for AE_Land3 (both passes in one file); ``ref``
    the reference URL."""

    date: dt.date
    product: str
    tb: dict[str, dict[str, str]]
    tb_previous: dict[str, dict[str, str]]
    ref: str | None
    #: all reference files of the day when it is assembled from one-analysis files (NCAR RDA)
    ref_parts: tuple[str, ...] = ()

    def to_json(self) -> str:
        return json.dumps({"date": self.date.isoformat(), "product": self.product, "tb": self.tb,
                           "tb_previous": self.tb_previous, "ref": self.ref, "ref_parts": list(self.ref_parts)})

    @classmethod
    def from_json(cls, text: str) -> DayJob:
        d = json.loads(text)
        return cls(date=dt.date.fromisoformat(d["date"]), product=d["product"], tb=d["tb"],
                   tb_previous=d["tb_previous"], ref=d["ref"], ref_parts=tuple(d.get("ref_parts", ())))


@dataclass(frozen=True)
class DayContext:
    """What every day task shares: the cube, its storage (resolved in the driver), grid and QC."""

    cube: str
    storage: StorageConfig
    grid: Grid
    qc: QCConfig


def make_job(date: dt.date, tb: TbIndex, ref: RefIndex, composite_days: int = 2) -> DayJob:
    """The :class:`DayJob` of ``date``: its TB files, the day before's (when compositing) and the reference."""
    prev = tb.day(date - dt.timedelta(days=1)) if composite_days == 2 else {}
    return DayJob(date=date, product=tb.product or JAXA, tb=tb.day(date), tb_previous=prev, ref=ref.files.get(date),
                  ref_parts=ref.parts.get(date, ()))


class DaySkip(Exception):
    """Bad input for a day: ``reason`` is one line naming the file, ``files`` the URLs at fault."""

    def __init__(self, reason: str, files: Iterable[str] = ()) -> None:
        super().__init__(reason)
        self.reason = " ".join(str(reason).split())
        self.files = [f for f in files if f]


@dataclass
class DayInputs:
    """A day's decoded inputs on the cube grid (see :func:`smray.preprocess.preprocess_day`)."""

    tb_today: dict[str, np.ndarray]
    tb_previous: dict[str, np.ndarray] | None
    swvl1: np.ndarray
    stl1: np.ndarray | None
    files: list[str] = field(default_factory=list)
    previous_files: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------------------------
# Reading (per-worker caches keyed by URL *and* the object's size/mtime, so a replaced file is re-read)
# --------------------------------------------------------------------------------------------
def _problem(url: str, err: BaseException, what: str) -> str:
    """One line: the reader's message (it names the file) or, for unexpected errors, name + type."""
    text = " ".join(str(err).split())
    name = basename(url)
    if isinstance(err, SmrayError):
        text = text.replace("<bytes>", name).replace(url, name)
        return f"{what} {text}" if name in text else f"{what} {name}: {text}"
    return f"{what} {name}: {type(err).__name__}: {text[:200]}"


def _object_token(url: str, storage: StorageConfig) -> tuple[Any, ...]:
    """(size, modification stamp) of an object; raises DaySkip when it cannot be looked at."""
    try:
        fs, path = filesystem(url, storage)
        info = fs.info(path)
    except FileNotFoundError:
        raise SmrayError(f"{url}: file not found") from None
    except Exception as err:  # noqa: BLE001 - storage backends raise many kinds
        if is_transient(err):
            raise  # the endpoint is down: the day fails and a re-run retries it; the input is not bad
        raise SmrayError(f"{url}: cannot read ({type(err).__name__}: {str(err).strip()[:160]})") from None
    if info.get("type") == "directory":
        raise SmrayError(f"{url}: is a directory, expected a file")
    return (info.get("size"), str(info.get("mtime") or info.get("LastModified") or info.get("ETag") or ""))


class _LRU:
    """A tiny per-process LRU cache (values are treated as read-only by their users)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.items: OrderedDict[Any, Any] = OrderedDict()

    def get(self, key: Any, make: Callable[[], Any]) -> Any:
        if key in self.items:
            self.items.move_to_end(key)
            return self.items[key]
        value = make()
        self.items[key] = value
        while len(self.items) > self.size:
            self.items.popitem(last=False)
        return value


_TB_CACHE = _LRU(TB_CACHE_FILES)
_REF_CACHE = _LRU(REF_CACHE_FILES)
_LAND_CACHE = _LRU(2)


def _read_jaxa(url: str, grid: Grid, storage: StorageConfig) -> tuple[np.ndarray, np.ndarray]:
    """(tb_h, tb_v) float32 K on ``grid`` from one JAXA L3 file. Files finer than the grid are
    averaged over its cells (area-weighted; NaN where less than half observed)."""
    def load() -> tuple[np.ndarray, np.ndarray]:
        data, _ = load_source(url, storage)
        native = read_jaxa_l3_native(data, name=url)
        file_res = float(native.attrs["native_res"])
        if file_res > grid.res + 1e-9:
            raise SmrayError(f"{basename(url)}: file grid is {file_res:g} deg, coarser than the cube grid "
                             f"{grid.res:g} deg")
        rows, cols = grid.window
        out = []
        for var in ("tb_h", "tb_v"):
            values = native[var].values
            if file_res < grid.res - 1e-9:
                values = aggregate_area(values, grid.global_shape).astype(np.float32)
            out.append(np.ascontiguousarray(values[rows, cols]))  # a copy: the cache keeps no global array
        return out[0], out[1]

    return _TB_CACHE.get(("jaxa", url, _object_token(url, storage), grid), load)


def _read_land3(url: str, grid: Grid, storage: StorageConfig) -> dict[str, np.ndarray]:
    """pass → float32 (4, nlat, nlon) K from one AE_Land3 file (both passes)."""
    def load() -> dict[str, np.ndarray]:
        local = local_path(url)
        source: Any = local if local is not None else load_source(url, storage)[0]
        ds = read_nsidc_land3(source, grid=grid, name=url)
        out = {}
        for i, p in enumerate(ds["pass"].values):
            out[str(p)] = np.stack([ds[f"tb_{c.lower()}"].values[i] for c in CHANNELS]).astype(np.float32)
        return out

    return _TB_CACHE.get(("land3", url, _object_token(url, storage), grid), load)


def _read_flat(url: str, grid: Grid, storage: StorageConfig) -> np.ndarray:
    """float32 K on ``grid`` from one NSIDC-0302/0301 channel file (size and byte order checked)."""
    def load() -> np.ndarray:
        data, _ = load_source(url, storage)
        values, info = read_flat_native(data, name=url)
        return to_grid(values, info["product"], grid)

    return _TB_CACHE.get(("flat", url, _object_token(url, storage), grid), load)


def _read_flat_pass(bands: dict[str, str], grid: Grid, storage: StorageConfig, what: str
                    ) -> tuple[np.ndarray, list[str]]:
    """(4, nlat, nlon) K of one pass of NSIDC-0302/0301 channel files; its ``.TIM`` file must be
    there and readable (a TB file without its time file is bad input). Missing channels are NaN."""
    first = next(bands[c] for c in sorted(bands) if c != "TIM") if set(bands) - {"TIM"} else bands["TIM"]
    tim = bands.get("TIM")
    if tim is None:
        raise DaySkip(f"{what} {basename(first)}: its time file {basename(time_filename(first))} is missing",
                      [first])
    stack = np.full((len(CHANNELS), *grid.shape), np.nan, dtype=np.float32)
    used = []
    for key, url in [("TIM", tim), *sorted((c, u) for c, u in bands.items() if c != "TIM")]:
        try:
            if key == "TIM":
                read_time(load_source(url, storage)[0], name=url)
            else:
                stack[CHANNELS.index(key)] = _read_flat(url, grid, storage)
        except Exception as err:  # noqa: BLE001 - every reader failure is bad input of the day
            if is_transient(err):
                raise
            raise DaySkip(_problem(url, err, what), [url]) from None
        used.append(url)
    return stack, used


def _read_l2a(url: str, storage: StorageConfig) -> dict[str, Any]:
    """One AE_L2A half-orbit file's swath (:func:`smray.formats.nsidc_l2a.read_l2a_swath`)."""
    local = local_path(url)
    source: Any = local if local is not None else load_source(url, storage)[0]
    return nsidc_l2a.read_l2a_swath(source, channels=CHANNELS, name=url)


def _read_l2a_pass(stamps: dict[str, str], date: dt.date, grid: Grid, storage: StorageConfig, what: str
                   ) -> tuple[np.ndarray, list[str]]:
    """(4, nlat, nlon) K of one pass of one UTC day from its AE_L2A half-orbit files (those named
    for the day must hold scans of it; the previous day's late files add their scans past
    midnight), gridded by inverse-distance squared (:func:`smray.formats.nsidc_l2a.grid_swaths`).
    Cached per worker by (files, day, grid): the next day reuses it for compositing."""
    urls = [stamps[k] for k in sorted(stamps)]
    tokens = []
    for url in urls:
        try:
            tokens.append((url, _object_token(url, storage)))
        except Exception as err:  # noqa: BLE001
            if is_transient(err):
                raise
            raise DaySkip(_problem(url, err, what), [url]) from None

    def load() -> np.ndarray:
        swaths = []
        for url in urls:
            try:
                sw = _read_l2a(url, storage)
                if sw["date"] == date:
                    nsidc_l2a.check_has_scans(sw)
            except Exception as err:  # noqa: BLE001 - every reader failure is bad input of the day
                if is_transient(err):
                    raise
                raise DaySkip(_problem(url, err, what), [url]) from None
            swaths.append(sw)
        return nsidc_l2a.grid_swaths(swaths, date, grid, CHANNELS)

    return _TB_CACHE.get(("l2a", tuple(tokens), date, grid), load), urls


def read_tb(files: dict[str, dict[str, str]], product: str, grid: Grid, storage: StorageConfig,
            what: str = "tb", date: dt.date | None = None) -> tuple[dict[str, np.ndarray], list[str]]:
    """The TBs of one day: pass → float32 (4, nlat, nlon) K in :data:`CHANNELS` order (NaN = not
    observed; a band without its file is NaN) and the URLs read. Raises :class:`DaySkip` naming the
    first bad file. AE_L2A needs ``date`` (the UTC day whose scans are gridded)."""
    out: dict[str, np.ndarray] = {}
    used: list[str] = []
    if product == NSIDC_L2A:
        if date is None:
            raise SmrayError("read_tb: AE_L2A swaths need the day to grid")
        for p in PASSES:
            if files.get(p):
                out[p], got = _read_l2a_pass(files[p], date, grid, storage, what)
                used += got
        return out, used
    if product == NSIDC:
        url = files.get("*", {}).get("*")
        if not url:
            return out, used
        try:
            out = {p: v for p, v in _read_land3(url, grid, storage).items() if p in PASSES}
        except Exception as err:  # noqa: BLE001 - every reader failure is bad input of the day
            if is_transient(err):
                raise
            raise DaySkip(_problem(url, err, what), [url]) from None
        return out, [url]
    for p in PASSES:
        bands = files.get(p, {})
        if not bands:
            continue
        if product == NSIDC_FLAT:
            out[p], got = _read_flat_pass(bands, grid, storage, what)
            used += got
            continue
        stack = np.full((len(CHANNELS), *grid.shape), np.nan, dtype=np.float32)
        for band, url in sorted(bands.items()):
            try:
                tb_h, tb_v = _read_jaxa(url, grid, storage)
            except Exception as err:  # noqa: BLE001
                if is_transient(err):
                    raise
                raise DaySkip(_problem(url, err, what), [url]) from None
            ih, iv = BAND_CHANNELS[band]
            stack[ih], stack[iv] = tb_h, tb_v
            used.append(url)
        out[p] = stack
    return out, used


@dataclass(frozen=True)
class _RefFile:
    """A reference file's daily means on its own grid (float64, as :func:`read_era_native` gives
    them): ERA-Interim at 0.75° is ≈ 1 MB per day and variable, so a month stays small."""

    swvl1: Any  # xr.Dataset
    stl1: Any | None  # xr.Dataset or None when the file has no soil temperature
    days: np.ndarray  # datetime64[D] (ndays,)


def _read_reference_file(url: str, storage: StorageConfig) -> _RefFile:
    """Every day of one reference file, native grid (cached per worker: a monthly file is decoded
    once per worker, not once per day)."""
    def load() -> _RefFile:
        data, _ = load_source(url, storage)
        swvl1 = read_era_native(data, daily=True, variable="swvl1")
        days = swvl1["time"].values.astype("datetime64[D]")
        try:
            stl1 = read_era_native(data, daily=True, variable="stl1").drop_vars("lsm", errors="ignore")
        except SmrayError as err:
            if "no stl1" not in str(err):
                raise
            stl1 = None
        return _RefFile(swvl1=swvl1, stl1=stl1, days=days)

    return _REF_CACHE.get((url, _object_token(url, storage)), load)


def read_reference(url: str, date: dt.date, grid: Grid, storage: StorageConfig
                   ) -> tuple[np.ndarray, np.ndarray | None]:
    """(swvl1 m³/m³, stl1 K or None) daily means of ``date`` regridded to ``grid``
    (:func:`smray.formats.era.regrid_era`), float32 (nlat, nlon). Raises :class:`DaySkip` naming
    the file when it is bad or lacks the day."""
    try:
        ref = _read_reference_file(url, storage)
        hit = np.nonzero(ref.days == np.datetime64(date, "D"))[0]
        if hit.size == 0:
            raise DaySkip(f"ref {basename(url)}: no analyses for {date}", [url])
        i = int(hit[0])
        swvl1 = regrid_era(ref.swvl1.isel(time=[i]).drop_vars("lsm", errors="ignore"), grid)["swvl1"].values[0]
        stl1 = None
        if ref.stl1 is not None:
            j = np.nonzero(ref.stl1["time"].values.astype("datetime64[D]") == np.datetime64(date, "D"))[0]
            if j.size:
                stl1 = regrid_era(ref.stl1.isel(time=[int(j[0])]), grid)["stl1"].values[0]
    except DaySkip:
        raise
    except Exception as err:  # noqa: BLE001 - every reader failure is bad input of the day
        if is_transient(err):
            raise
        raise DaySkip(_problem(url, err, "ref"), [url]) from None
    return swvl1.astype(np.float32), (stl1.astype(np.float32) if stl1 is not None else None)


def _land_fraction(ctx: DayContext) -> np.ndarray:
    return _LAND_CACHE.get((ctx.cube, ctx.storage, ctx.grid),
                           lambda: cube.read_static(ctx.cube, ctx.storage)["land_fraction"])


def load_day(job: DayJob, grid: Grid, storage: StorageConfig) -> DayInputs:
    """Read and regrid everything one day needs. Raises :class:`DaySkip` for bad input of the day."""
    if not job.tb:
        raise DaySkip(f"tb: no brightness-temperature file for {job.date}")
    tb_today, files = read_tb(job.tb, job.product, grid, storage, date=job.date)
    if not any(np.isfinite(v).any() for v in tb_today.values()):
        raise DaySkip(f"tb: no observed pixel in the day's files ({', '.join(basename(f) for f in files)})", files)
    if not job.ref:
        raise DaySkip(f"ref: no reference file covers {job.date}")
    notes = []
    if job.ref_parts:  # one analysis per file: the daily mean is the mean of the day's files
        got = [read_reference(u, job.date, grid, storage) for u in job.ref_parts]
        swvl1 = np.mean([s for s, _ in got], axis=0).astype(np.float32)
        stl1 = (np.mean([t for _, t in got], axis=0).astype(np.float32)
                if all(t is not None for _, t in got) else None)
        if len(got) < 4:
            notes.append(f"ref: {len(got)} analysis file(s) for {job.date}, daily mean of those")
    else:
        swvl1, stl1 = read_reference(job.ref, job.date, grid, storage)
    if job.product == JAXA:
        lost = [f"{p} {b}" for p in PASSES for b in BAND_CHANNELS if b not in job.tb.get(p, {})]
        if lost:
            notes.append(f"tb: no file for {', '.join(lost)} (those channels are gaps)")
    # the day before only fills gaps: a bad file there costs its pass the fill, not the day
    previous: dict[str, np.ndarray] = {}
    prev_files: list[str] = []
    parts = [job.tb_previous] if job.product == NSIDC else [{p: job.tb_previous[p]} for p in job.tb_previous]
    for part in parts:
        if not part:
            continue
        try:
            got, used = read_tb(part, job.product, grid, storage, what="previous-day tb",
                                date=job.date - dt.timedelta(days=1))
        except DaySkip as skip:
            notes.append(f"{skip.reason}; not composited")
            continue
        previous.update(got)
        prev_files += used
    return DayInputs(tb_today=tb_today, tb_previous=previous or None, swvl1=swvl1, stl1=stl1,
                     files=[*files, *(job.ref_parts or [job.ref])], previous_files=prev_files, notes=notes)


def ingest_day(job: DayJob, ctx: DayContext) -> dict[str, Any]:
    """Ingest one day into the cube (the per-day core; no Ray). Returns a small result:
    ``date``, ``status`` ("ok" or "skipped"), ``reason``, ``files``, ``observed`` (share of cells
    with a TB, both passes), ``composited`` (share filled from the day before), ``seconds``."""
    t0 = time.perf_counter()
    try:
        inputs = load_day(job, ctx.grid, ctx.storage)
    except DaySkip as skip:
        cube.skip_day(ctx.cube, ctx.storage, job.date, skip.reason, skip.files)
        return _result(job.date, "skipped", skip.reason, skip.files, 0.0, 0.0, t0)
    land = _land_fraction(ctx)
    tb, qc = preprocess_day(inputs.tb_today, inputs.tb_previous, inputs.swvl1, inputs.stl1, land, ctx.qc)
    observed = float(np.isfinite(tb[:, 0]).mean())  # before the coastal rule: what the files hold
    extra: dict[str, Any] = {}
    if fills_water(ctx.qc, job.product):  # the coastal rule: a land-only product's water from the nearest land
        tb, qc, extra["water_filled"] = fill_water(tb, qc, land, ctx.qc, periodic=ctx.grid.is_global)
    composited = float(((qc & FLAGS["composited"]) != 0).mean())
    seconds = time.perf_counter() - t0
    cube.write_day(ctx.cube, ctx.storage, job.date, tb, qc, inputs.swvl1,
                   record={"files": inputs.files, "previous_files": inputs.previous_files, "notes": inputs.notes,
                           "stl1": inputs.stl1 is not None, "observed": round(observed, 4),
                           "composited": round(composited, 4), "seconds_read_process": round(seconds, 2), **extra})
    return _result(job.date, "ok", "; ".join(inputs.notes), inputs.files, observed, composited, t0)


def _result(date: dt.date, status: str, reason: str, files: list[str], observed: float, composited: float,
            t0: float) -> dict[str, Any]:
    return {"date": date.isoformat(), "status": status, "reason": reason, "files": json.dumps(files),
            "observed": observed, "composited": composited, "seconds": time.perf_counter() - t0,
            "pid": os.getpid()}


def ingest_row(row: dict[str, Any], ctx: DayContext) -> dict[str, Any]:
    """Ray Data row function: ``{"job": DayJob JSON}`` → the day's result (:func:`ingest_day`).
    A failure that is not bad input (e.g. the cube's storage fails) comes back as status "error"
    so the other days finish; the day keeps no record and the next run retries it."""
    job = DayJob.from_json(row["job"])
    try:
        return ingest_day(job, ctx)
    except Exception as err:  # noqa: BLE001 - reported by the driver, which then fails the run
        return _result(job.date, "error", f"{type(err).__name__}: {' '.join(str(err).split())[:300]}", [],
                       0.0, 0.0, time.perf_counter())


# --------------------------------------------------------------------------------------------
# Driver
# --------------------------------------------------------------------------------------------
@dataclass
class IngestSummary:
    """What a run did: days written, skipped (bad input), already done before, and where the cube is."""

    out: str
    start: dt.date
    end: dt.date
    ok: list[dt.date] = field(default_factory=list)
    skipped: dict[dt.date, str] = field(default_factory=dict)
    already_done: list[dt.date] = field(default_factory=list)
    discovery: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def days_per_minute(self) -> float:
        n = len(self.ok) + len(self.skipped)
        return 60.0 * n / self.seconds if self.seconds > 0 else float("nan")

    def line(self) -> str:
        return (f"ingest: {len(self.ok)} days written, {len(self.skipped)} skipped, {len(self.already_done)} "
                f"already done ({self.start}..{self.end}) in {self.seconds:.0f} s -> {self.out}")


#: TB products that hold no TB over water (the ocean and lakes are filled): AE_Land3
LAND_ONLY_PRODUCTS = (NSIDC,)
#: qc settings added after cubes were first written: left out of :func:`qc_attr` at these values,
#: so a cube built before them is still current
QC_ADDED_DEFAULTS = {"water_fill": "land_only", "water_fill_cells": 6.0}


def fills_water(qc: QCConfig, product: str) -> bool:
    """Whether ingest applies the coastal rule (:func:`smray.preprocess.fill_water`) to ``product``."""
    return qc.water_fill == "always" or (qc.water_fill == "land_only" and product in LAND_ONLY_PRODUCTS)


def qc_attr(qc: QCConfig) -> str:
    """The cube's ``smray_qc`` attribute: the QC settings it was built with (JSON)."""
    d = {k: v for k, v in to_dict(qc).items() if QC_ADDED_DEFAULTS.get(k, object()) != v}
    return json.dumps(d, sort_keys=True)


def run_ingest(cfg: Config, tb_url: str, ref_url: str, out: str, start: dt.date, end: dt.date,
               progress: Callable[[str], None] = print) -> IngestSummary:
    """Build or extend the cube ``out`` for ``start..end`` on ``cfg.grid`` from the archives under
    ``tb_url`` and ``ref_url`` (absolute URLs: :mod:`smray.stages.ingest` resolves them from ``paths``).

    Starts a local Ray runtime (:func:`smray.raysupport.init_ray`) unless one is running. Raises
    :class:`SmrayError` (one line) when a required setting is missing, storage is unreachable,
    nothing is discovered, the cube was built with other QC settings, a day task failed for a
    reason other than bad input, or the final chunk census finds a finished day incomplete.
    """
    from smray.grid import surface_fractions
    from smray.raysupport import init_ray, shutdown_ray, wait_for_resources

    t0 = time.perf_counter()
    storage = resolve_storage(cfg.storage)
    for name, url, create in (("tb", tb_url, False), ("ref", ref_url, False), ("cube", out, True)):
        try:
            check_reachable(url, storage, create=create)
        except SmrayError as err:
            raise SmrayError(f"paths.{name}: {err}") from None

    tb_index = discover_tb(tb_url, storage, cfg.ingest.tb_pattern)
    if not tb_index.files:
        how = "ingest.tb_pattern" if cfg.ingest.tb_pattern else "JAXA L3, AE_Land3, AE_L2A or NSIDC-0301/0302 names"
        raise SmrayError(f"paths.tb: no brightness-temperature files under {tb_url} "
                         f"({len(tb_index.unrecognised) + len(tb_index.ignored)} files listed, none usable by {how})")
    ref_index = discover_ref(ref_url, storage, cfg.ingest.ref_pattern)
    if not ref_index.files:
        how = "ingest.ref_pattern" if cfg.ingest.ref_pattern else "a YYYYMMDD or YYYYMM netCDF/GRIB name"
        raise SmrayError(f"paths.ref: no reference files under {ref_url} "
                         f"({len(ref_index.unrecognised)} files listed, none named by {how})")
    summary = IngestSummary(out=out, start=start, end=end,
                            discovery=tb_index.report(start, end) + ref_index.report(start, end))
    for line in summary.discovery:
        progress(f"ingest: {line}")

    grid = cfg.grid.grid()
    qc_json = qc_attr(cfg.qc)
    if cube.exists(out, storage):
        old = cube.info(out, storage).attrs.get("smray_qc", qc_json)
        if old != qc_json:
            raise SmrayError(f"{out}: the cube was built with other qc settings ({old}); use the same qc section "
                             f"or write a new cube")
    cube.create_or_extend(out, storage, grid, start, end, surface_fractions(grid)["land"], attrs={"smray_qc": qc_json})
    records = cube.day_records(out, storage)
    days = [start + dt.timedelta(days=i) for i in range((end - start).days + 1)]
    summary.already_done = [d for d in days if records.get(d, {}).get("status") == "ok"]
    todo = [d for d in days if records.get(d, {}).get("status") != "ok"]
    progress(f"ingest: {len(todo)} day(s) to do, {len(summary.already_done)} already done; cube {out} "
             f"({grid.nlat}x{grid.nlon} at {grid.res:g} deg)")

    errors: dict[dt.date, str] = {}
    if todo:
        ctx = DayContext(cube=out, storage=storage, grid=grid, qc=cfg.qc)
        jobs = [make_job(d, tb_index, ref_index, cfg.qc.composite_days) for d in todo]
        started = init_ray(cfg.ray)
        try:
            wait_for_resources({"CPU": cfg.ingest.task_cpus, **(cfg.ingest.task_resources or {})},
                               what="the ingest day tasks", field="ray",
                               timeout_s=cfg.ray.resource_timeout_s, progress=progress)
            for n, res in enumerate(_run_jobs(jobs, ctx, cfg.ingest), start=1):
                day = dt.date.fromisoformat(res["date"])
                rate = 60.0 * n / max(time.perf_counter() - t0, 1e-9)
                if res["status"] == "ok":
                    summary.ok.append(day)
                    what = f"ok ({res['observed']:.0%} observed, {res['composited']:.0%} composited)"
                elif res["status"] == "skipped":
                    summary.skipped[day] = res["reason"]
                    what = f"SKIPPED: {res['reason']}"
                else:
                    errors[day] = res["reason"]
                    what = f"FAILED: {res['reason']}"
                progress(f"ingest: {day} {what} ({n}/{len(jobs)}, {rate:.1f} days/min)")
        finally:
            shutdown_ray(started)

    try:
        census = cube.finalize(out, storage, extra_attrs={"ingest_tb": tb_url, "ingest_ref": ref_url})
    except Exception as err:  # noqa: BLE001
        if not is_transient(err):
            raise
        raise SmrayError(f"{out}: cannot finalize the cube, the storage is unreachable ({type(err).__name__}); "
                         f"the finished days are kept: re-run to finish") from None
    summary.seconds = time.perf_counter() - t0
    if errors:
        first = min(errors)
        raise SmrayError(f"{out}: {len(errors)} day(s) failed (not bad input), e.g. {first}: {errors[first]}; "
                         f"re-run to retry them")
    if census.missing_chunks:
        raise SmrayError(f"{out}: chunk census: {len(census.missing_chunks)} chunk(s) of finished days are missing "
                         f"(e.g. {census.missing_chunks[0]}); re-run after removing those days' records")
    pending = [d for d in census.pending if start <= d <= end]
    if pending:
        raise SmrayError(f"{out}: chunk census: {len(pending)} day(s) of {start}..{end} have no record "
                         f"(e.g. {pending[0]}); re-run to finish them")
    progress(summary.line())
    return summary


def _run_jobs(jobs: list[DayJob], ctx: DayContext, ing: IngestConfig) -> Iterable[dict[str, Any]]:
    """The Ray edge: one Ray Data task per day; yields the small per-day results as they finish."""
    from smray.raysupport import dataset_from_items, map_rows

    ds = dataset_from_items([{"date": j.date.isoformat(), "job": j.to_json()} for j in jobs])
    ds = map_rows(ds, ingest_row, num_cpus=ing.task_cpus, max_concurrency=ing.max_concurrency,
                  fn_kwargs={"ctx": ctx}, eager=True, resources=ing.task_resources)
    yield from ds.iter_rows()


__all__ = ["DayJob", "DayContext", "DayInputs", "DaySkip", "IngestSummary", "make_job", "load_day", "read_tb",
           "read_reference", "ingest_day", "ingest_row", "run_ingest"]
