"""[0, 1] scaling of inputs and target, fitted on the training period only (as in the paper).

Every input channel (brightness temperature, K) and the target (reference soil moisture swvl1,
m³/m³) is mapped linearly so that its ``lower`` value goes to 0 and its ``upper`` value to 1, then
clipped to [0, 1]. ``lower``/``upper`` are the ``normalise.lower_percentile`` /
``upper_percentile`` of the *valid pixels* of the training period (:func:`valid_pixels`: land,
no blocking QC flag, reference present, and for a TB channel the TB itself finite); 0/100 (the
default, as in the paper) are the exact minimum and maximum.

The fit is one task per day (Ray when a runtime is initialised, else a plain loop), merged
exactly: minima/maxima by min/max, and — only when a percentile other than 0/100 is asked for —
fixed-bin histograms by addition. The histogram bins are :data:`TB_BIN_K` = 0.01 K over
[:data:`TB_RANGE_K`) and :data:`TARGET_BIN` = 1e-4 m³/m³ over [:data:`TARGET_RANGE`); a
percentile is therefore resolved to its bin (reported as the bin centre, clamped to the exact
minimum/maximum), and values outside the range count in the edge bins.

Statistics are stored inside the cube, ``<cube>/_smray/normalisation/<name>.json``
(:func:`save_stats` / :func:`load_stats`). Example::

    stats = fit_stats(cube_url, storage, start, end, cfg.normalise, cfg.qc.block, cfg.patches)
    save_stats(cube_url, storage, stats, "default")
    x01 = scale_inputs(tb_patches, stats, cfg.patches.channels)   # (n, C, 9, 9) float32 in [0, 1]
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import numpy as np

from smray import cube as cubemod
from smray import qc as qcmod
from smray.config import NormConfig, PatchConfig
from smray.errors import SmrayError
from smray.storage import StorageConfig, filesystem, join, read_bytes, resolve_storage, write_bytes

#: land fraction from which a cell counts as land (the QC default ``qc.land_fraction_min``)
LAND_MIN = 0.5
#: histogram bin width (K) and range [lo, hi) (K) of brightness temperatures
TB_BIN_K = 0.01
TB_RANGE_K = (0.0, 400.0)
#: histogram bin width (m³/m³) and range [lo, hi) (m³/m³) of the reference soil moisture
TARGET_BIN = 1e-4
TARGET_RANGE = (0.0, 1.0)
#: where normalisation statistics live inside a cube
STATS_DIR = "_smray/normalisation"
STATS_FORMAT = "smray-normstats-1"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


# --------------------------------------------------------------------------------------------
# Valid pixels
# --------------------------------------------------------------------------------------------
def block_mask(qc_block: int | Sequence[str]) -> int:
    """The QC bits that block a pixel: an int mask as is, or the OR of flag names (``qc.block``)."""
    if isinstance(qc_block, (int, np.integer)):
        return int(qc_block)
    try:
        return qcmod.mask_of(tuple(qc_block))
    except KeyError as err:
        raise SmrayError(f"qc.block: {err.args[0]}") from None


def block_names(qc_block: int | Sequence[str]) -> tuple[str, ...]:
    """Flag names of a blocking mask (in :data:`smray.qc.FLAGS` order)."""
    return tuple(qcmod.describe(block_mask(qc_block)))


def valid_pixels(day: dict[str, np.ndarray], land_fraction: np.ndarray, qc_block: int | Sequence[str],
                 land_min: float = LAND_MIN) -> np.ndarray:
    """Pixels that may be used at all: bool ``(pass, lat, lon)``.

    True where the cell is land (``land_fraction >= land_min``), the reference ``swvl1`` is finite
    and the pixel's QC carries none of the blocking bits. TB finiteness is not part of this (see
    :func:`smray.patches.valid_centres` for patch centres).

    Args:
        day: :func:`smray.cube.read_day` output: ``qc`` uint16 ``(pass, lat, lon)``, ``swvl1`` float
            m³/m³ ``(lat, lon)`` (``tb`` is not used).
        land_fraction: 0–1, ``(lat, lon)``; NaN counts as not land.
        qc_block: blocking flag names or bit mask.
    """
    lf = np.asarray(land_fraction)
    land = np.isfinite(lf) & (lf >= land_min)
    ref = np.isfinite(np.asarray(day["swvl1"]))
    clean = (np.asarray(day["qc"]) & block_mask(qc_block)) == 0
    return clean & (land & ref)[None]


# --------------------------------------------------------------------------------------------
# The statistics
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class NormStats:
    """[0, 1] scaling statistics, fitted on ``start``..``end`` (inclusive) of one cube."""

    channels: tuple[str, ...]  #: the cube channels, in cube order
    tb_lower_k: tuple[float, ...]  #: per channel: the value mapped to 0, K
    tb_upper_k: tuple[float, ...]  #: per channel: the value mapped to 1, K
    target_lower: float  #: swvl1 mapped to 0, m³/m³
    target_upper: float  #: swvl1 mapped to 1, m³/m³
    start: dt.date  #: first training day
    end: dt.date  #: last training day (inclusive)
    lower_percentile: float = 0.0  #: percentile behind the lower values (0 = minimum)
    upper_percentile: float = 100.0  #: percentile behind the upper values (100 = maximum)
    qc_block: tuple[str, ...] = qcmod.DEFAULT_BLOCKING  #: QC flags that excluded a pixel
    passes: tuple[str, ...] = cubemod.PASSES  #: passes whose pixels were counted
    land_min: float = LAND_MIN  #: land fraction from which a cell counted as land
    n_days: int = 0  #: days of the period read
    n_pixels: tuple[int, ...] = ()  #: per channel: valid (pass, cell, day) pixels counted
    n_target: int = 0  #: valid (pass, cell, day) pixels counted for the target
    tb_bin_k: float = TB_BIN_K  #: histogram bin width used for TB percentiles, K
    target_bin: float = TARGET_BIN  #: histogram bin width used for target percentiles, m³/m³
    cube: str = ""  #: URL of the cube fitted on (information only)
    created: str = field(default="", compare=False)  #: UTC time of the fit (information only)

    def __post_init__(self) -> None:
        n = len(self.channels)
        if len(self.tb_lower_k) != n or len(self.tb_upper_k) != n:
            raise SmrayError(f"normalisation statistics: {n} channels but {len(self.tb_lower_k)} lower / "
                             f"{len(self.tb_upper_k)} upper values")
        for ch, lo, hi in zip(self.channels, self.tb_lower_k, self.tb_upper_k):
            if not (np.isfinite(lo) and np.isfinite(hi) and hi > lo):
                raise SmrayError(f"normalisation statistics: channel {ch} has lower {lo} K, upper {hi} K "
                                 f"(need finite lower < upper)")
        if not (np.isfinite(self.target_lower) and np.isfinite(self.target_upper)
                and self.target_upper > self.target_lower):
            raise SmrayError(f"normalisation statistics: target lower {self.target_lower}, upper "
                             f"{self.target_upper} m3/m3 (need finite lower < upper)")

    # --- lookup ------------------------------------------------------------------------------
    def channel_bounds(self, channels: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """(lower, upper) float64 arrays in K for ``channels`` (names may repeat, e.g. stacked passes)."""
        idx = []
        for ch in channels:
            if ch not in self.channels:
                raise SmrayError(f"normalisation statistics: no channel {ch!r} (have {', '.join(self.channels)})")
            idx.append(self.channels.index(ch))
        return np.asarray(self.tb_lower_k, np.float64)[idx], np.asarray(self.tb_upper_k, np.float64)[idx]

    # --- serialisation -----------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out = {k: (list(v) if isinstance(v, tuple) else v) for k, v in out.items()}
        out["start"], out["end"] = self.start.isoformat(), self.end.isoformat()
        return {"format": STATS_FORMAT, **out}

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "normalisation statistics") -> NormStats:
        data = dict(data)
        fmt = data.pop("format", STATS_FORMAT)
        if fmt != STATS_FORMAT:
            raise SmrayError(f"{where}: format {fmt!r} is not {STATS_FORMAT!r}")
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise SmrayError(f"{where}: unknown key {unknown[0]!r}")
        kwargs: dict[str, Any] = {}
        try:
            for name, value in data.items():
                if name in ("start", "end"):
                    value = dt.date.fromisoformat(str(value))
                elif isinstance(value, list):
                    value = tuple(value)
                kwargs[name] = value
            return cls(**kwargs)
        except TypeError as err:
            raise SmrayError(f"{where}: {err}") from None
        except ValueError as err:
            raise SmrayError(f"{where}: {err}") from None

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1)

    @classmethod
    def from_json(cls, text: str | bytes, where: str = "normalisation statistics") -> NormStats:
        try:
            data = json.loads(text)
        except ValueError:
            raise SmrayError(f"{where}: not valid JSON") from None
        if not isinstance(data, dict):
            raise SmrayError(f"{where}: expected a JSON object")
        return cls.from_dict(data, where)


# --------------------------------------------------------------------------------------------
# Per-day summaries and their exact merge (the pure core of the fit)
# --------------------------------------------------------------------------------------------
def _n_bins(rng: tuple[float, float], width: float) -> int:
    return int(round((rng[1] - rng[0]) / width))


def _hist(values: np.ndarray, rng: tuple[float, float], width: float) -> np.ndarray:
    nb = _n_bins(rng, width)
    k = np.floor((values.astype(np.float64) - rng[0]) / width).astype(np.int64)
    return np.bincount(np.clip(k, 0, nb - 1), minlength=nb).astype(np.int64)


@dataclass
class DaySummary:
    """What one day contributes: counts, extremes and (optionally) histograms; merged with ``+``.

    ``tb_*`` are per cube channel ``(C,)`` (histograms ``(C, bins)``); ``y_*`` for swvl1.
    """

    n_days: int
    tb_n: np.ndarray
    tb_min: np.ndarray
    tb_max: np.ndarray
    y_n: int
    y_min: float
    y_max: float
    tb_hist: np.ndarray | None = None
    y_hist: np.ndarray | None = None

    def __add__(self, other: DaySummary) -> DaySummary:
        def add(a: np.ndarray | None, b: np.ndarray | None) -> np.ndarray | None:
            return None if a is None or b is None else a + b

        return DaySummary(n_days=self.n_days + other.n_days, tb_n=self.tb_n + other.tb_n,
                          tb_min=np.fmin(self.tb_min, other.tb_min), tb_max=np.fmax(self.tb_max, other.tb_max),
                          y_n=self.y_n + other.y_n, y_min=float(np.fmin(self.y_min, other.y_min)),
                          y_max=float(np.fmax(self.y_max, other.y_max)),
                          tb_hist=add(self.tb_hist, other.tb_hist), y_hist=add(self.y_hist, other.y_hist))


def summarise_day(day: dict[str, np.ndarray], land_fraction: np.ndarray, qc_block: int | Sequence[str],
                  pass_idx: Sequence[int], histograms: bool, land_min: float = LAND_MIN) -> DaySummary:
    """One day's contribution over its valid pixels (:func:`valid_pixels`) of the passes ``pass_idx``.

    TB channel c counts a valid pixel where its TB is finite; the target counts swvl1 once per valid
    (pass, cell) pixel. ``tb`` ``(pass, channel, lat, lon)`` K, ``swvl1`` ``(lat, lon)`` m³/m³.
    """
    tb = np.asarray(day["tb"])
    valid = valid_pixels(day, land_fraction, qc_block, land_min)[list(pass_idx)]  # (P, lat, lon)
    sel = tb[list(pass_idx)]  # (P, C, lat, lon)
    nc = tb.shape[1]
    tb_n = np.zeros(nc, np.int64)
    tb_min = np.full(nc, np.nan)
    tb_max = np.full(nc, np.nan)
    tb_hist = np.zeros((nc, _n_bins(TB_RANGE_K, TB_BIN_K)), np.int64) if histograms else None
    for c in range(nc):
        v = sel[:, c][valid]
        v = v[np.isfinite(v)]
        tb_n[c] = v.size
        if v.size:
            tb_min[c], tb_max[c] = float(v.min()), float(v.max())
            if tb_hist is not None:
                tb_hist[c] = _hist(v, TB_RANGE_K, TB_BIN_K)
    y = np.broadcast_to(np.asarray(day["swvl1"]), valid.shape)[valid]  # finite by valid_pixels
    return DaySummary(n_days=1, tb_n=tb_n, tb_min=tb_min, tb_max=tb_max, y_n=int(y.size),
                      y_min=float(y.min()) if y.size else np.nan, y_max=float(y.max()) if y.size else np.nan,
                      tb_hist=tb_hist, y_hist=_hist(y, TARGET_RANGE, TARGET_BIN) if histograms else None)


def percentile_of_histogram(hist: np.ndarray, p: float, rng: tuple[float, float], width: float,
                            vmin: float, vmax: float) -> float:
    """The ``p``-th percentile (numpy's ``inverted_cdf`` definition) resolved to its bin: the centre of
    the first bin whose cumulative count reaches ``p``% of the total, clamped to [vmin, vmax]
    (the exact extremes). p = 0 / 100 give vmin / vmax exactly."""
    if p <= 0.0:
        return float(vmin)
    if p >= 100.0:
        return float(vmax)
    cum = np.cumsum(hist)
    k = int(np.searchsorted(cum, p / 100.0 * cum[-1], side="left"))
    return float(np.clip(rng[0] + (k + 0.5) * width, vmin, vmax))


def _bounds(n: int, vmin: float, vmax: float, hist: np.ndarray | None, norm: NormConfig,
            rng: tuple[float, float], width: float) -> tuple[float, float]:
    if n == 0:
        return np.nan, np.nan
    lo = hi = None
    if norm.lower_percentile <= 0.0:
        lo = vmin
    if norm.upper_percentile >= 100.0:
        hi = vmax
    if lo is None or hi is None:
        assert hist is not None
        if lo is None:
            lo = percentile_of_histogram(hist, norm.lower_percentile, rng, width, vmin, vmax)
        if hi is None:
            hi = percentile_of_histogram(hist, norm.upper_percentile, rng, width, vmin, vmax)
    return float(lo), float(hi)


def stats_from_summary(total: DaySummary, norm: NormConfig, *, channels: Sequence[str], start: dt.date,
                       end: dt.date, qc_block: int | Sequence[str], passes: Sequence[str],
                       land_min: float = LAND_MIN, cube: str = "") -> NormStats:
    """The :class:`NormStats` of a merged summary. Raises SmrayError when a channel or the target has
    no valid pixel or is constant."""
    where = f"{cube or 'cube'}: training period {start}..{end}"
    if total.y_n == 0 or not total.tb_n.any():
        raise SmrayError(f"{where} has no valid pixel (land, reference present, no blocking QC flag); "
                         f"cannot fit the normalisation")
    tb_lo, tb_hi = [], []
    for c, ch in enumerate(channels):
        lo, hi = _bounds(int(total.tb_n[c]), float(total.tb_min[c]), float(total.tb_max[c]),
                         None if total.tb_hist is None else total.tb_hist[c], norm, TB_RANGE_K, TB_BIN_K)
        if not (hi > lo):
            raise SmrayError(f"{where}: channel {ch} has no valid TB or a constant one ({lo}..{hi} K); "
                             f"cannot scale it")
        tb_lo.append(lo)
        tb_hi.append(hi)
    y_lo, y_hi = _bounds(total.y_n, total.y_min, total.y_max, total.y_hist, norm, TARGET_RANGE, TARGET_BIN)
    if not (y_hi > y_lo):
        raise SmrayError(f"{where}: the reference swvl1 is constant ({y_lo} m3/m3); cannot scale it")
    return NormStats(channels=tuple(channels), tb_lower_k=tuple(tb_lo), tb_upper_k=tuple(tb_hi),
                     target_lower=y_lo, target_upper=y_hi, start=start, end=end,
                     lower_percentile=norm.lower_percentile, upper_percentile=norm.upper_percentile,
                     qc_block=block_names(qc_block), passes=tuple(passes), land_min=land_min,
                     n_days=total.n_days, n_pixels=tuple(int(v) for v in total.tb_n), n_target=int(total.y_n),
                     cube=cube, created=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"))


# --------------------------------------------------------------------------------------------
# The fit over a cube
# --------------------------------------------------------------------------------------------
def _summarise_cube_day(date: dt.date, cube_url: str, storage: StorageConfig | None, qc_block: int,
                        pass_idx: tuple[int, ...], histograms: bool, land_min: float) -> DaySummary:
    day = cubemod.read_day(cube_url, storage, date)
    land = cubemod.read_static(cube_url, storage)["land_fraction"]
    return summarise_day(day, land, qc_block, pass_idx, histograms, land_min)


def map_days(fn: Callable[..., Any], dates: Iterable[dt.date], *args: Any,
             use_ray: bool | None = None) -> Iterable[Any]:
    """``fn(date, *args)`` for every date, results in completion order: Ray tasks (bounded in flight)
    when ``use_ray`` (None: when a Ray runtime is initialised), else a plain loop."""
    dates = list(dates)
    from smray import raysupport as rs

    if use_ray is None:
        use_ray = rs.is_initialized()
    if not use_ray:
        return (fn(d, *args) for d in dates)
    return rs.map_unordered(fn, [(d, *args) for d in dates])


def stats_digest(stats: NormStats) -> str:
    """SHA-256 (hex) of the scaling ``stats`` define, without the fields that say when and from where
    they were fitted (``created``, ``cube``): equal for equal scaling."""
    d = stats.to_dict()
    for volatile in ("created", "cube"):
        d.pop(volatile, None)
    return hashlib.sha256(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()


def fit_stats(cube_url: str, storage: StorageConfig | None, start: dt.date, end: dt.date,
              norm_cfg: NormConfig | None = None, qc_block: int | Sequence[str] = qcmod.DEFAULT_BLOCKING,
              patch_cfg: PatchConfig | None = None, *, land_min: float = LAND_MIN,
              use_ray: bool | None = None) -> NormStats:
    """Fit the [0, 1] scaling on the valid pixels of ``start``..``end`` (inclusive) of the cube.

    Only the passes of ``patch_cfg.passes`` count; TB bounds are fitted for every cube channel.
    One task per day (Ray when ``use_ray``, default: when a runtime is initialised), merged exactly
    (see the module docstring). An empty period, one outside the cube, or one without a valid pixel
    raises SmrayError.
    """
    norm_cfg = norm_cfg or NormConfig()
    patch_cfg = patch_cfg or PatchConfig()
    _, dates = cubemod.period_dates(cube_url, storage, start, end)
    info = cubemod.info(cube_url, storage)
    pass_idx = tuple(i for i, p in enumerate(info.passes) if p in patch_cfg.passes)
    histograms = norm_cfg.lower_percentile > 0.0 or norm_cfg.upper_percentile < 100.0
    storage = resolve_storage(storage)
    total: DaySummary | None = None
    for part in map_days(_summarise_cube_day, dates, cube_url, storage, block_mask(qc_block), pass_idx,
                         histograms, land_min, use_ray=use_ray):
        total = part if total is None else total + part
    assert total is not None
    return stats_from_summary(total, norm_cfg, channels=info.channels, start=start, end=end, qc_block=qc_block,
                              passes=tuple(info.passes[i] for i in pass_idx), land_min=land_min, cube=cube_url)


# --------------------------------------------------------------------------------------------
# Storage inside the cube
# --------------------------------------------------------------------------------------------
def stats_path(name: str) -> str:
    """``_smray/normalisation/<name>.json`` (relative to the cube root)."""
    if not _NAME.match(name):
        raise SmrayError(f"normalisation name {name!r}: use letters, digits, '_', '-', '.'")
    return f"{STATS_DIR}/{name}.json"


def save_stats(cube_url: str, storage: StorageConfig | None, stats: NormStats, name: str = "default") -> str:
    """Store ``stats`` inside the cube; returns the object's path. Overwrites a previous fit of that name."""
    rel = stats_path(name)
    cubemod.info(cube_url, storage)  # a cube must be there
    fs, root = filesystem(cube_url, storage)
    path = join(root, rel)
    write_bytes(fs, path, stats.to_json().encode())
    return path


def load_stats(cube_url: str, storage: StorageConfig | None, name: str = "default") -> NormStats:
    """The statistics stored under ``name`` (SmrayError naming the path when absent or invalid)."""
    rel = stats_path(name)
    fs, root = filesystem(cube_url, storage)
    path = join(root, rel)
    where = f"{cube_url}/{rel}"
    try:
        data = read_bytes(fs, path)
    except FileNotFoundError:
        raise SmrayError(f"{where}: no normalisation statistics stored under this name "
                         f"(fit them first)") from None
    return NormStats.from_json(data, where)


# --------------------------------------------------------------------------------------------
# Scaling
# --------------------------------------------------------------------------------------------
def _bounds_along(x: np.ndarray, stats: NormStats, channels: Sequence[str], axis: int, caller: str
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """(x, lower, upper, channel axis), the bounds shaped to broadcast against ``x``."""
    x = np.asarray(x)
    ax = axis % x.ndim
    if x.shape[ax] != len(channels):
        raise SmrayError(f"{caller}: {len(channels)} channels given but x has {x.shape[ax]} along axis {axis}")
    lo, hi = stats.channel_bounds(channels)
    shape = [1] * x.ndim
    shape[ax] = len(channels)
    return x, lo.reshape(shape), hi.reshape(shape), ax


def scale_inputs(x: np.ndarray, stats: NormStats, channels: Sequence[str], axis: int = -3) -> np.ndarray:
    """TBs in K → float32 in [0, 1] (clipped): ``(x - lower) / (upper - lower)`` per channel.

    ``x`` has the channels ``channels`` (names of ``stats.channels``, may repeat) along ``axis``
    (default −3: ``(n, C, s, s)``, ``(C, s, s)`` or ``(C, lat, lon)``). NaN stays NaN.
    """
    x, lo, hi, _ = _bounds_along(x, stats, channels, axis, "scale_inputs")
    out = (x.astype(np.float64) - lo) / (hi - lo)
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def outside_range(x: np.ndarray, stats: NormStats, channels: Sequence[str], axis: int = -3) -> np.ndarray:
    """Where :func:`scale_inputs` clips: True where any channel along ``axis`` holds a finite TB
    below its fitted lower or above its upper value (the channel axis is reduced; NaN is not outside)."""
    x, lo, hi, ax = _bounds_along(x, stats, channels, axis, "outside_range")
    with np.errstate(invalid="ignore"):
        return ((x < lo) | (x > hi)).any(axis=ax)


def scale_target(y: np.ndarray, stats: NormStats) -> np.ndarray:
    """swvl1 in m³/m³ → float32 in [0, 1] (clipped)."""
    y = np.asarray(y, dtype=np.float64)
    return np.clip((y - stats.target_lower) / (stats.target_upper - stats.target_lower), 0.0, 1.0).astype(np.float32)


def unscale_target(y01: np.ndarray, stats: NormStats) -> np.ndarray:
    """Scaled values back to m³/m³ (float32; not clipped, so out-of-range predictions stay visible)."""
    y01 = np.asarray(y01, dtype=np.float64)
    return (stats.target_lower + y01 * (stats.target_upper - stats.target_lower)).astype(np.float32)
