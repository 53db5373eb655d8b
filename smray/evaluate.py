"""Evaluation of daily soil-moisture maps: ``metrics.json`` and ``report.md`` with PNG figures.

:func:`run_evaluate` is ``smray evaluate``. Every map store (schema ``smray-maps-1``, one per model,
named by its ``smray_model_kind``) is scored against the cube it was predicted from, side by side:

* **Reference**: the cube's ``swvl1``, on every scored day and pixel where both the map and the
  reference are finite (the maps are already NaN where QC blocked a pixel). Scored days are the days
  of both the store's and the cube's time axis, within ``--start``/``--end`` when given.
* **Metrics** (pytesmo's vocabulary): ``r2`` = 1 − SSE/SST with SST about the reference mean (the
  paper's R²); ``rmse`` (m³/m³) and ``rmse_norm`` = rmse / (upper − lower), the paper's normalised
  units (x − lower)/(upper − lower) from the store's ``smray_norm_stats`` (target_lower/upper; for a
  store without them the cube's stored default statistics; not clipped); ``bias`` = mean(pred − ref);
  ``ubrmsd`` = sqrt(rmse² − bias²); ``pearson_r``; ``clim_anomaly_r``: anomalies from a per-pixel
  monthly climatology of the evaluation period (each value minus the mean of its pixel and calendar
  month over all scored years; reference and prediction each against their own, on the same pairs),
  Pearson R over the pixel-months with at least ``evaluate.anomaly_min_days`` pairs; ``anomaly_r``:
  the same with one mean per pixel over all scored days (keeps the seasonal cycle); ``n`` pairs.
* **Over time**: the same scores per meteorological season (:data:`SEASONS`), calendar month and year
  (``seasons``, ``months``, ``years``), from sums kept per group as the days are scored.
* **Per pass**: ``soil_moisture_asc`` (A) and ``soil_moisture_desc`` (D) against the same reference.
* **Latitude bands** (pixel centre, south edge inclusive): :data:`LAT_BANDS`.
* **Vegetation classes** from the cube itself: the microwave polarisation difference index at
  10.7 GHz, MPDI = (V − H)/(V + H), its per-pixel median over both passes and (at most
  ``evaluate.vegetation_days``, evenly spread) scored days, binned by :data:`VEGETATION`
  (dense vegetation damps the polarisation difference, bare soil keeps it).
* **Truth** (``--truth``, a twin archive root): ``sm_true`` per pass from
  ``truth/YYYY/MM/smray_twin_truth_YYYYMMDD.nc`` mapped onto the store grid by nearest cell centre
  (as :func:`smray.experiment.truth_and_physical`); A against ``soil_moisture_asc``, D against
  ``soil_moisture_desc``, combined (mean of the passes) against ``soil_moisture``.
* **ISMN** (``--ismn``, a ``.stm`` file, an ISMN zip or a directory of either): surface sensors
  (soil moisture, 0 to :data:`SURFACE_DEPTH_M` m; SCAN's 2-inch sensors are 0.0508 m) of each
  station, daily (UTC) means of the good (G/U) observations averaged over the station's surface
  sensors, paired with the map's ``soil_moisture`` in the station's nearest grid cell on the same
  day: ``n_stations`` (with at least one pair), ``n_pairs``, ``pearson_r``, ``bias``, ``ubrmsd``,
  ``rmse``. On twin maps (:func:`twin_evidence`) the report opens with :data:`TWIN_BANNER` and
  the ISMN table is a plumbing check (``role``), not skill.

Everything is accumulated as per-pixel sums per calendar month present (the days are never held
together), by Ray tasks over batches of days (``evaluate.engine``/``days_per_task``) whose sums the
driver adds as they finish: 6 float64 fields per model and month (one month of global 0.25° maps:
50 MB a model; a year or more: 0.6 GB a model). Outputs under ``out_dir`` (path or URL):
``metrics.json``, ``report.md``, ``maps_<model>.png`` (prediction/reference/difference on the map day),
``pixels_<model>.png`` (per-pixel R and ubRMSD), ``scatter_<model>.png`` (2-D histogram),
``timeseries.png`` (daily spatial mean and RMSE) and ``pixel_metrics.nc`` (:data:`PIXEL_VARS` and ``n``
per model and pixel).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import json
import math
import re
import time
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from smray import __version__, package_versions
from smray.config import Config, to_dict
from smray.errors import SmrayError
from smray.grid import Grid
from smray.metrics import PairSums, pair_metrics, pair_sums, pooled_anomaly, scores, triple_collocation, triple_sums
from smray.serial import SEASONS, as_optional_date, season_of, write_json
from smray.storage import StorageConfig, filesystem, join, read_bytes, resolve_storage, write_bytes
from smray.truth import MANIFEST, TwinTruth

METRICS_FILE = "metrics.json"
REPORT_FILE = "report.md"
TIMESERIES_FILE = "timeseries.png"
#: the per-pixel metric fields of every model (netCDF, under the report directory)
PIXEL_FILE = "pixel_metrics.nc"
#: the variables of PIXEL_FILE, from :meth:`smray.metrics.PairSums.fields`
PIXEL_VARS = {"pearson_r": ("1", "Pearson R against the reference over the scored days"),
              "ubrmsd": ("m3 m-3", "unbiased RMSD against the reference over the scored days"),
              "bias": ("m3 m-3", "mean(prediction - reference) over the scored days"),
              "rmse": ("m3 m-3", "RMSE against the reference over the scored days")}
#: ESA CCI SM daily file names (product, day)
CCI_NAME = re.compile(r"ESACCI-SOILMOISTURE-L3S-SSMV-(COMBINED|ACTIVE|PASSIVE)-(\d{8})000000-fv[0-9.]+\.nc$")
#: the report's first line on twin data
TWIN_BANNER = "synthetic twin data: these scores measure the method on the twin, not skill on Earth"
PASS_VARS = {"A": "soil_moisture_asc", "D": "soil_moisture_desc"}
COMBINED_VAR = "soil_moisture"
#: (name, south, north) degrees; a pixel belongs to the band with south <= lat < north (90N inclusive)
LAT_BANDS: tuple[tuple[str, float, float], ...] = (
    ("90S-30S", -90.0, -30.0), ("30S-0", -30.0, 0.0), ("0-30N", 0.0, 30.0), ("30N-60N", 30.0, 60.0),
    ("60N-90N", 60.0, 90.0))
#: (class, lower, upper) of the pixel's median MPDI at 10.7 GHz; lower <= MPDI < upper
VEGETATION: tuple[tuple[str, float, float], ...] = (
    ("dense", -math.inf, 0.01), ("moderate", 0.01, 0.03), ("sparse", 0.03, 0.06), ("bare", 0.06, math.inf))
#: deepest sensor bottom that counts as surface soil moisture, m (SCAN's 2-inch sensors: 0.0508 m)
SURFACE_DEPTH_M = 0.051
#: bins per axis of the scatter-density histogram
SCATTER_BINS = 120
#: the paper's Table 2 (normalised units; test day 31 July 2011, 50,000 patches), for context only
PAPER = {"cnn": {"r2": 0.6512, "rmse_norm": 0.1272}, "svr": {"r2": 0.5598, "rmse_norm": 0.1817}}
#: values are accumulated about this constant (m³/m³) to keep the sums of squares well conditioned
SHIFT = 0.25
#: the breakdowns over time in metrics.json: key → the group of a day
PERIODS: dict[str, Callable[[dt.date], str]] = {
    "seasons": lambda d: season_of(d.month),  # the meteorological seasons, pooled over the years
    "months": lambda d: f"{d.month:02d}",
    "years": lambda d: f"{d.year}",
}
PACKAGES = ("smray", "ray", "torch", "numpy", "xarray", "zarr", "scikit-learn", "matplotlib")


# --------------------------------------------------------------------------------------------
# Metrics from sums (pure)
# --------------------------------------------------------------------------------------------
def report_scores(m: dict[str, Any], span: float | None = None) -> dict[str, Any]:
    """The report's scores from :func:`smray.metrics.scores` ``m``: r2, rmse (pytesmo's rmsd) and bias
    in m³/m³, ubrmsd, pearson_r, mean_pred, mean_ref, n, and rmse_norm = rmse / ``span`` (NaN without one)."""
    return {"r2": m["r2"], "rmse": m["rmsd"], "rmse_norm": m["rmsd"] / span if span else math.nan,
            "bias": m["bias"], "ubrmsd": m["ubrmsd"], "pearson_r": m["pearson_r"],
            "mean_pred": m["mean_estimate"], "mean_ref": m["mean_reference"], "n": m["n"]}


def sums_scores(sums: PairSums, mask: np.ndarray | None = None, span: float | None = None,
                anomaly_min_days: int | None = None) -> dict[str, Any]:
    """:func:`report_scores` of the pixels in ``mask``, plus anomaly R when ``anomaly_min_days``."""
    out = report_scores(sums.scores(mask), span)
    if anomaly_min_days is not None:
        out.update(sums.anomaly(anomaly_min_days, mask))
    return out


def pair_scores(pred: np.ndarray, ref: np.ndarray, span: float | None = None) -> dict[str, Any]:
    """:func:`report_scores` of the finite pairs of two arrays."""
    return report_scores(pair_metrics(pred, ref, shift=SHIFT), span)


# --------------------------------------------------------------------------------------------
# Pixel classes (pure)
# --------------------------------------------------------------------------------------------
def lat_band_masks(lat: np.ndarray, nlon: int) -> dict[str, np.ndarray]:
    """Band name → (lat, lon) mask of the pixels whose centre lies in the band (:data:`LAT_BANDS`)."""
    lat = np.asarray(lat, np.float64)
    out = {}
    for name, south, north in LAT_BANDS:
        rows = (lat >= south) & ((lat < north) | ((north >= 90.0) & (lat <= north)))
        out[name] = np.broadcast_to(rows[:, None], (len(lat), nlon))
    return out


def mpdi(tb_v: np.ndarray, tb_h: np.ndarray) -> np.ndarray:
    """Microwave polarisation difference index (V − H)/(V + H); NaN where either is missing."""
    v, h = np.asarray(tb_v, np.float64), np.asarray(tb_h, np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = (v - h) / (v + h)
    return np.where(np.isfinite(out), out, np.nan)


def vegetation_classes(median_mpdi: np.ndarray) -> dict[str, np.ndarray]:
    """Class name → mask of the pixels whose median MPDI falls in the class (:data:`VEGETATION`)."""
    m = np.asarray(median_mpdi, np.float64)
    ok = np.isfinite(m)
    return {name: ok & (m >= lo) & (m < hi) for name, lo, hi in VEGETATION}


def nanmedian_quiet(stack: np.ndarray, axis: int = 0) -> np.ndarray:
    """``np.nanmedian`` without the all-NaN warning (all-NaN pixels are NaN)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=RuntimeWarning)
        return np.nanmedian(stack, axis=axis)


def spread(days: Sequence[dt.date], k: int) -> list[dt.date]:
    """At most ``k`` of ``days``, evenly spread, first and last included."""
    days = list(days)
    if len(days) <= k:
        return days
    idx = np.unique(np.round(np.linspace(0, len(days) - 1, k)).astype(int))
    return [days[i] for i in idx]


# --------------------------------------------------------------------------------------------
# Where the data come from
# --------------------------------------------------------------------------------------------
def twin_evidence(cube_attrs: dict[str, Any], truth_url: str | None, storage: StorageConfig) -> str | None:
    """Why the cube (and so the maps predicted from it) is the twin's synthetic data, or None when nothing
    says so: a twin truth given (only the twin has one), or a twin manifest (``twin.json``) in or one
    level above an input the cube records (``ingest_tb``/``ingest_ref``, written by ``smray ingest``)."""
    if truth_url:
        return f"scored against the twin truth {truth_url}"
    for key in ("ingest_tb", "ingest_ref"):
        url = cube_attrs.get(key)
        if not isinstance(url, str) or not url:
            continue
        for root in (url.rstrip("/"), url.rstrip("/").rsplit("/", 1)[0]):
            try:
                fs, path = filesystem(join(root, MANIFEST), storage)
                found = fs.exists(path)
            except Exception:  # noqa: BLE001 - an input that is gone or unreachable says nothing
                found = False
            if found:
                return f"the cube's {key} {url} is a twin archive ({join(root, MANIFEST)})"
    return None


# --------------------------------------------------------------------------------------------
# Map stores
# --------------------------------------------------------------------------------------------
@dataclasses.dataclass
class MapStore:
    """One opened map store: its model name and kind, normalisation span and scored days."""

    url: str
    name: str
    kind: str
    ds: xr.Dataset | None  #: None in the light copy a day task gets (it opens the store itself)
    days: list[dt.date]  #: scored days (store ∩ cube ∩ period), ascending
    index: dict[dt.date, int]  #: day → position on the store's time axis
    target_lower: float | None
    target_upper: float | None
    norm_source: str | None

    @property
    def span(self) -> float | None:
        if self.target_lower is None or self.target_upper is None:
            return None
        return self.target_upper - self.target_lower

    def read(self, var: str, day: dt.date) -> np.ndarray:
        assert self.ds is not None
        return np.asarray(self.ds[var].isel(time=self.index[day]).values, dtype=np.float64)


def _norm_bounds(attrs: dict[str, Any], url: str, cube_url: str, storage: StorageConfig
                 ) -> tuple[float | None, float | None, str | None]:
    """(target_lower, target_upper, source) from the store's smray_norm_stats, else the cube's default."""
    raw = attrs.get("smray_norm_stats")
    data = raw
    if isinstance(raw, str):
        try:
            data = json.loads(raw) if raw.strip() else None
        except ValueError:
            raise SmrayError(f"{url}: attribute smray_norm_stats is not valid JSON") from None
    if isinstance(data, dict) and data.get("target_lower") is not None and data.get("target_upper") is not None:
        lo, hi = float(data["target_lower"]), float(data["target_upper"])
        if not (math.isfinite(lo) and math.isfinite(hi) and hi > lo):
            raise SmrayError(f"{url}: smray_norm_stats target_lower {lo} / target_upper {hi} (need lower < upper)")
        return lo, hi, "store"
    from smray.normalise import load_stats

    try:
        stats = load_stats(cube_url, storage)
    except SmrayError:
        return None, None, None
    return float(stats.target_lower), float(stats.target_upper), "cube default"


def open_map_store(url: str, storage: StorageConfig, cube_grid: dict[str, Any], cube_lat: np.ndarray,
                   cube_lon: np.ndarray) -> xr.Dataset:
    """Open ``url`` and check it is a smray map store on the cube's grid (one-line SmrayError)."""
    from smray.mapstore import open_maps

    ds = open_maps(url, storage)
    for var in (COMBINED_VAR, *PASS_VARS.values()):
        if var not in ds.data_vars:
            raise SmrayError(f"{url}: map store has no variable {var!r}")
    try:
        grid = json.loads(ds.attrs.get("smray_grid", "null"))
    except ValueError:
        raise SmrayError(f"{url}: attribute smray_grid is not valid JSON") from None
    lat, lon = np.asarray(ds["lat"].values, np.float64), np.asarray(ds["lon"].values, np.float64)
    same = (grid == cube_grid and lat.shape == cube_lat.shape and lon.shape == cube_lon.shape
            and np.allclose(lat, cube_lat) and np.allclose(lon, cube_lon))
    if not same:
        raise SmrayError(f"{url}: map store grid {grid} ({len(lat)}x{len(lon)}) differs from the cube's {cube_grid} "
                         f"({len(cube_lat)}x{len(cube_lon)})")
    return ds


def _name(kind: str, taken: dict[str, Any]) -> str:
    if kind not in taken:
        return kind
    k = 2
    while f"{kind}_{k}" in taken:
        k += 1
    return f"{kind}_{k}"


def open_stores(maps: Sequence[str], cube_url: str, storage: StorageConfig, cube_dates: Sequence[dt.date],
                start: dt.date | None, end: dt.date | None) -> dict[str, MapStore]:
    """Every map store by model name, with its scored days; SmrayError for a bad store or one
    without a day in common with the cube (and the period)."""
    from smray import cube as cubemod
    from smray.daystore import store_dates

    cinfo = cubemod.info(cube_url, storage)
    cst = cubemod.read_static(cube_url, storage)
    cube_grid = cinfo.grid.to_dict()
    in_cube = set(cube_dates)
    out: dict[str, MapStore] = {}
    for url in maps:
        ds = open_map_store(url, storage, cube_grid, cst["lat"], cst["lon"])
        kind = str(ds.attrs.get("smray_model_kind") or "")
        if not kind:
            raise SmrayError(f"{url}: map store has no attribute smray_model_kind")
        dates = store_dates(ds)
        days = sorted(d for d in set(dates) & in_cube if (start is None or d >= start) and (end is None or d <= end))
        if not days:
            span = f"{dates[0]}..{dates[-1]}" if dates else "no days"
            window = f" within {start or '…'}..{end or '…'}" if (start or end) else ""
            raise SmrayError(f"{url}: no day of the map store ({span}) overlaps the cube {cube_url} "
                             f"({cinfo.start}..{cinfo.end}){window}")
        lo, hi, source = _norm_bounds(dict(ds.attrs), url, cube_url, storage)
        name = _name(kind, out)
        out[name] = MapStore(url=url, name=name, kind=kind, ds=ds, days=days,
                             index={d: dates.index(d) for d in days}, target_lower=lo, target_upper=hi,
                             norm_source=source)
    return out


# --------------------------------------------------------------------------------------------
# ISMN stations
# --------------------------------------------------------------------------------------------
@dataclasses.dataclass
class Station:
    """One ISMN station's surface soil moisture: daily means (m³/m³) by day, and its grid cell."""

    network: str
    station: str
    lat: float
    lon: float
    daily: dict[dt.date, float]
    sensors: int
    row: int = -1
    col: int = -1


def _ismn_files(source: str, storage: StorageConfig) -> list[str]:
    fs, path = filesystem(source, storage)
    if not fs.exists(path):
        raise SmrayError(f"{source}: ISMN file or directory not found")
    if fs.isdir(path):
        names = sorted(p for p in fs.find(path) if p.lower().endswith((".stm", ".zip")))
        if not names:
            raise SmrayError(f"{source}: no ISMN .stm or .zip files in the directory")
        return [fs.unstrip_protocol(p) if "://" in source else p for p in names]
    return [source]


def read_stations(source: str, storage: StorageConfig) -> tuple[list[Station], int]:
    """The stations with surface soil-moisture sensors in ``source`` (file, zip or directory), and
    how many sensor records were read in all."""
    from smray.formats.ismn import daily_means, read_ismn_stm, read_ismn_zip

    records = []
    for f in _ismn_files(source, storage):
        records += read_ismn_zip(f) if f.lower().endswith(".zip") else [read_ismn_stm(f)]
    by_station: dict[tuple[str, str], list[Any]] = {}
    for meta, data in records:
        surface = (meta.get("variable", "sm") == "sm" and meta["depth_from"] >= 0.0
                   and meta["depth_to"] <= SURFACE_DEPTH_M)
        if surface:
            by_station.setdefault((meta["network"], meta["station"]), []).append((meta, daily_means(data)))
    stations = []
    for (network, name), sensors in by_station.items():
        merged = pd.concat([d["soil_moisture"] for _, d in sensors], axis=1).mean(axis=1)
        daily = {ts.date(): float(v) for ts, v in merged.items() if np.isfinite(v)}
        stations.append(Station(network=network, station=name, lat=float(sensors[0][0]["lat"]),
                                lon=float(sensors[0][0]["lon"]), daily=daily, sensors=len(sensors)))
    return stations, len(records)


def place_stations(stations: list[Station], lat: np.ndarray, lon: np.ndarray) -> list[Station]:
    """Set each station's nearest grid cell; returns the stations that lie on the grid."""
    lat, lon = np.asarray(lat, np.float64), np.asarray(lon, np.float64)
    dy = abs(float(lat[1] - lat[0])) if len(lat) > 1 else 180.0
    dx = abs(float(lon[1] - lon[0])) if len(lon) > 1 else 360.0
    on = []
    for s in stations:
        slon = ((s.lon + 180.0) % 360.0) - 180.0
        glon = ((lon + 180.0) % 360.0) - 180.0
        dlon = np.abs(((glon - slon) + 180.0) % 360.0 - 180.0)
        r, c = int(np.abs(lat - s.lat).argmin()), int(dlon.argmin())
        if abs(lat[r] - s.lat) <= dy / 2 + 1e-9 and dlon[c] <= dx / 2 + 1e-9:
            s.row, s.col = r, c
            on.append(s)
    return on


def ismn_metrics(pairs: list[tuple[int, dt.date, float, float]], stations: list[Station], n_files: int,
                 n_stations: int) -> dict[str, Any]:
    """Scores of (station index, day, in situ, map) pairs: n_stations with pairs, n_pairs, R, bias, ubRMSD.
    ``stations`` are those on the grid (the pairs index them), of ``n_stations`` read from ``n_files``."""
    obs = np.array([p[2] for p in pairs], np.float64)
    pred = np.array([p[3] for p in pairs], np.float64)
    m = pair_scores(pred, obs)
    used = sorted({p[0] for p in pairs})
    covered = [d for s in stations for d in s.daily]
    out = {"n_stations": len(used), "n_pairs": m["n"], "pearson_r": m["pearson_r"], "bias": m["bias"],
           "ubrmsd": m["ubrmsd"], "rmse": m["rmse"], "n_stations_read": n_stations, "n_sensor_files": n_files,
           "n_stations_on_grid": len(stations),
           "station_days": f"{min(covered)}..{max(covered)}" if covered else None,
           "stations": [{"network": stations[i].network, "station": stations[i].station, "lat": stations[i].lat,
                         "lon": stations[i].lon, "row": stations[i].row, "col": stations[i].col,
                         "n_pairs": sum(1 for p in pairs if p[0] == i)} for i in used]}
    if not pairs:
        out["note"] = "no station day overlaps a finite map value (stations cover " \
                      f"{out['station_days'] or 'no surface data'})"
    return out


# --------------------------------------------------------------------------------------------
# ESA CCI SM
# --------------------------------------------------------------------------------------------
def cci_files(source: str, storage: StorageConfig) -> dict[dt.date, str]:
    """Day → URL of the ESA CCI SM daily files in ``source`` (one file or a directory searched below)."""
    fs, path = filesystem(source, storage)
    if not fs.exists(path):
        raise SmrayError(f"{source}: ESA CCI file or directory not found")
    names = sorted(fs.find(path)) if fs.isdir(path) else [path]
    out: dict[dt.date, str] = {}
    for name in names:
        m = CCI_NAME.search(name.rsplit("/", 1)[-1])
        if m:
            out[dt.datetime.strptime(m[2], "%Y%m%d").date()] = fs.unstrip_protocol(name) if "://" in source else name
    if not out:
        raise SmrayError(f"{source}: no ESA CCI SM daily file (ESACCI-SOILMOISTURE-L3S-SSMV-<product>-YYYYMMDD000000-"
                         f"fv<version>.nc)")
    return out


def cci_on_grid(url: str, storage: StorageConfig, grid: Grid) -> np.ndarray:
    """The file's ``sm`` (m³/m³) on ``grid``: its global 0.25° cells averaged over each cell of the grid
    (NaN-aware block mean; NaN where no 0.25° cell has data), then the grid's window."""
    from smray.formats.cci import read_cci_sm
    from smray.regrid import block_mean

    fs, path = filesystem(url, storage)
    try:
        data = read_bytes(fs, path)
    except FileNotFoundError:
        raise SmrayError(f"{url}: ESA CCI file not found") from None
    sm = np.asarray(read_cci_sm(data, name=url.rsplit("/", 1)[-1])["sm"].values, np.float64)
    factor = grid.res / 0.25
    if abs(factor - round(factor)) > 1e-9:
        raise SmrayError(f"{url}: the cube's {grid.res:g} deg grid is not a whole multiple of CCI's 0.25 deg")
    return block_mean(sm, int(round(factor)))[grid.window]


# --------------------------------------------------------------------------------------------
# The evaluation
# --------------------------------------------------------------------------------------------
@dataclasses.dataclass
class ModelAcc:
    """Everything accumulated for one model over the scored days: per-pixel sums of the combined map per
    calendar month (their sum, :attr:`combined`, gives the overall, band, class, anomaly and per-pixel
    scores; the months apart give the climatology anomalies), total sums per season, month and year,
    per pass and against the truth, the scatter histogram, the daily rows, the ISMN pairs and the map
    day's fields."""

    shape: tuple[int, int]
    passes: dict[str, PairSums]
    truth: dict[str, PairSums]
    hist: np.ndarray
    daily: list[dict[str, Any]]
    pairs: list[tuple[int, dt.date, float, float]]
    map_fields: tuple[np.ndarray, np.ndarray] | None = None
    months: dict[int, PairSums] = dataclasses.field(default_factory=dict)  #: calendar month → per-pixel sums
    periods: dict[str, dict[str, PairSums]] = dataclasses.field(default_factory=dict)  #: PERIODS key → group → sums
    period_days: dict[str, dict[str, int]] = dataclasses.field(default_factory=dict)
    cci: PairSums = dataclasses.field(default_factory=lambda: PairSums.zeros((), SHIFT))  #: against ESA CCI SM
    cci_days: int = 0
    triples: np.ndarray | None = None  #: per-pixel sums of (map, reference, CCI) triplets (smray.metrics.TRIPLE_SUMS)

    def add_combined(self, day: dt.date, pred: np.ndarray, ref: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Add the day's combined map to its month's per-pixel sums and its season, month and year totals;
        returns (the mask of the pairs that counted, the day's total sums)."""
        if day.month not in self.months:
            self.months[day.month] = PairSums.zeros(self.shape, SHIFT)
        ok = self.months[day.month].add(pred, ref)
        total = pair_sums(pred, ref, shift=SHIFT)
        for key, group_of in PERIODS.items():
            group = group_of(day)
            sums = self.periods.setdefault(key, {}).setdefault(group, PairSums.zeros((), SHIFT))
            sums.sums += total
            days = self.period_days.setdefault(key, {})
            days[group] = days.get(group, 0) + 1
        return ok, total

    def merge(self, other: ModelAcc) -> None:
        """Add ``other`` (the same model on other days) into this one (its arrays may be read-only
        views of Ray's object store: they are copied, never added into)."""
        for m, sums in other.months.items():
            if m in self.months:
                self.months[m].sums += sums.sums
            else:
                self.months[m] = PairSums(sums.sums.copy(), sums.shift)
        for key, groups in other.periods.items():
            mine, days = self.periods.setdefault(key, {}), self.period_days.setdefault(key, {})
            for g, sums in groups.items():
                if g in mine:
                    mine[g].sums += sums.sums
                else:
                    mine[g] = PairSums(sums.sums.copy(), sums.shift)
                days[g] = days.get(g, 0) + other.period_days[key][g]
        for mine_d, theirs in ((self.passes, other.passes), (self.truth, other.truth)):
            for k, sums in theirs.items():
                mine_d[k].sums += sums.sums
        self.cci.sums += other.cci.sums
        if other.triples is not None:
            if self.triples is None:
                self.triples = other.triples.copy()
            else:
                self.triples += other.triples
        self.cci_days += other.cci_days
        self.hist += other.hist
        self.daily += other.daily
        self.pairs += other.pairs
        if other.map_fields is not None:
            self.map_fields = other.map_fields

    @functools.cached_property
    def combined(self) -> PairSums:
        """Per-pixel sums over all scored days (the months added; read once scoring is done)."""
        out = PairSums.zeros(self.shape, SHIFT)
        for m in self.months.values():
            out.sums += m.sums
        return out


def _scatter_edges(stores: dict[str, MapStore]) -> np.ndarray:
    lows = [s.target_lower for s in stores.values() if s.target_lower is not None]
    highs = [s.target_upper for s in stores.values() if s.target_upper is not None]
    lo = min([0.0, *lows])
    hi = max([0.6, *highs]) * 1.05
    return np.linspace(lo, hi, SCATTER_BINS + 1)


def vegetation_mpdi(cube_url: str, storage: StorageConfig, days: Sequence[dt.date], k: int) -> np.ndarray:
    """Per-pixel median MPDI at 10.7 GHz over both passes and at most ``k`` of ``days`` (NaN: no TB)."""
    from smray import cube as cubemod

    info = cubemod.info(cube_url, storage)
    iv, ih = info.channels.index("10V"), info.channels.index("10H")
    g = cubemod.open_group(cube_url, storage)
    stack = []
    for d in spread(days, k):
        tb = g["tb"][info.index(d)]  # (pass, channel, lat, lon) K
        stack += [mpdi(tb[p, iv], tb[p, ih]) for p in range(tb.shape[0])]
    return nanmedian_quiet(np.stack(stack), axis=0)


@dataclasses.dataclass(frozen=True)
class DayJob:
    """What scoring a batch of days needs, for a Ray task as for the local loop: URLs and small tables
    (the stores as light :class:`MapStore` copies without their dataset; each batch opens them itself)."""

    cube_url: str
    storage: StorageConfig
    stores: dict[str, MapStore]
    lat: np.ndarray
    lon: np.ndarray
    res: float
    truth_url: str | None
    edges: np.ndarray
    figure_day: dict[str, dt.date]
    grid: Grid | None = None
    cci: dict[dt.date, str] = dataclasses.field(default_factory=dict)  #: day → ESA CCI SM file


def new_acc(shape: tuple[int, int], truth: bool) -> ModelAcc:
    total = functools.partial(PairSums.zeros, (), SHIFT)
    return ModelAcc(shape=shape, passes={p: total() for p in PASS_VARS},
                    truth={k: total() for k in (*PASS_VARS, "combined")} if truth else {},
                    hist=np.zeros((SCATTER_BINS, SCATTER_BINS), np.float64), daily=[], pairs=[])


def score_days(job: DayJob, days: Sequence[dt.date], stations: dict[dt.date, list[tuple[int, int, int, float]]]
               ) -> dict[str, ModelAcc] | str:
    """Every model's sums over ``days`` (``stations``: the ISMN (index, row, col, value) of each day); a
    SmrayError's one line instead (so a Ray task hands it back as a value)."""
    from smray import cube as cubemod
    from smray.mapstore import open_maps

    try:
        cinfo = cubemod.info(job.cube_url, job.storage)
        g = cubemod.open_group(job.cube_url, job.storage)
        stores = {n: dataclasses.replace(s, ds=open_maps(s.url, job.storage)) for n, s in job.stores.items()}
        truth = TwinTruth(job.truth_url, job.storage, job.lat, job.lon, job.res) if job.truth_url else None
        accs = {name: new_acc((len(job.lat), len(job.lon)), truth is not None) for name in stores}
        for day in days:
            ref = np.asarray(g["swvl1"][cinfo.index(day)], np.float64)
            tru = truth.sm_true(day) if truth else None
            cci = cci_on_grid(job.cci[day], job.storage, job.grid) if day in job.cci and job.grid else None
            for name, s in stores.items():
                if day in s.index:
                    _score_day(accs[name], s, day, ref, tru, cci, job.edges, stations.get(day, []),
                               job.figure_day[name] == day)
    except SmrayError as err:
        return str(err)
    return accs


def batches(days: Sequence[dt.date], size: int) -> list[list[dt.date]]:
    """``days`` in consecutive batches of at most ``size``."""
    days = list(days)
    return [days[k:k + size] for k in range(0, len(days), size)]


def score_all(cfg: Config, job: DayJob, days: list[dt.date], stations: dict[dt.date, list[tuple[int, int, int, float]]],
              engine: str, progress: Callable[[str], None]) -> dict[str, ModelAcc]:
    """Every model's sums over ``days``: one Ray task per ``evaluate.days_per_task`` days, merged as they
    finish (``engine`` "ray"), or one loop here ("local")."""
    accs = {name: new_acc((len(job.lat), len(job.lon)), job.truth_url is not None) for name in job.stores}
    parts = batches(days, cfg.evaluate.days_per_task if engine == "ray" else len(days))
    args = [(job, b, {d: stations[d] for d in b if stations.get(d)}) for b in parts]
    started = False
    try:
        if engine == "local":
            results: Any = (score_days(*a) for a in args)
        else:
            from smray.raysupport import init_ray, map_unordered, wait_for_resources

            started = init_ray(cfg.ray)
            need = {"CPU": cfg.evaluate.task_cpus}
            wait_for_resources(need, what="the evaluate day tasks", field="ray",
                               timeout_s=cfg.ray.resource_timeout_s, progress=progress)
            results = map_unordered(score_days, args, num_cpus=cfg.evaluate.task_cpus)
        done = 0
        for k, res in enumerate(results, start=1):
            if isinstance(res, str):
                raise SmrayError(res)
            for name, acc in res.items():
                accs[name].merge(acc)
            done += len({r["date"] for acc in res.values() for r in acc.daily})
            progress(f"evaluate: {done}/{len(days)} days scored ({k}/{len(parts)} {engine} batches)")
    finally:
        if started:
            from smray.raysupport import shutdown_ray

            shutdown_ray(started)
    for acc in accs.values():
        acc.daily.sort(key=lambda r: r["date"])
        acc.pairs.sort(key=lambda p: (p[1], p[0]))
    return accs


def run_evaluate(cfg: Config, maps: Sequence[str], cube_url: str, out_dir: str, *, truth_url: str | None = None,
                 ismn: str | None = None, cci: str | None = None, start: dt.date | str | None = None,
                 end: dt.date | str | None = None,
                 map_day: dt.date | str | None = None, progress: Callable[[str], None] = print,
                 engine: str | None = None) -> dict[str, Any]:
    """Score every map store against the cube (and the truth / ISMN when given), side by side; write
    ``metrics.json``, ``report.md`` and the figures under ``out_dir``; return the metrics.json content.
    ``engine``: "ray" (Ray tasks over batches of days; starts a local runtime when none is connected and
    stops it after) or "local" (one loop in this process); default ``evaluate.engine``."""
    from smray import cube as cubemod

    t0 = time.perf_counter()
    maps = [str(m) for m in maps]
    if not maps:
        raise SmrayError("--maps: no map store given")
    if len(set(maps)) != len(maps):
        raise SmrayError(f"--maps: {next(m for m in maps if maps.count(m) > 1)} is given twice")
    if engine not in (None, "ray", "local"):
        raise SmrayError(f"engine: must be 'ray' or 'local', got {engine!r}")
    start, end = as_optional_date(start, "--start"), as_optional_date(end, "--end")
    day_req = as_optional_date(map_day, "--day")
    if start and end and end < start:
        raise SmrayError(f"--end: {end} is before --start {start}")
    storage = resolve_storage(cfg.storage)
    ecfg = cfg.evaluate
    cinfo = cubemod.info(cube_url, storage)
    stores = open_stores(maps, cube_url, storage, cinfo.dates, start, end)
    all_days = sorted({d for s in stores.values() for d in s.days})
    if day_req is not None:
        lacking = [s.url for s in stores.values() if day_req not in s.days]
        if lacking:
            raise SmrayError(f"--day: {day_req} is not a scored day of the map store {lacking[0]}")
    ismn_stations: list[Station] = []
    ismn_read = ismn_total = 0
    cst = cubemod.read_static(cube_url, storage)
    lat, lon = np.asarray(cst["lat"], np.float64), np.asarray(cst["lon"], np.float64)
    if ismn:
        all_stations, ismn_read = read_stations(ismn, storage)
        ismn_stations = place_stations(all_stations, lat, lon)
        ismn_total = len(all_stations)
        progress(f"evaluate: ISMN: {ismn_total} stations with surface sensors in {ismn_read} sensor "
                 f"files, {len(ismn_stations)} on the grid")
    cci_days: dict[dt.date, str] = {}
    if cci:
        found = cci_files(cci, storage)
        cci_days = {d: u for d, u in found.items() if d in set(all_days)}
        progress(f"evaluate: ESA CCI: {len(found)} daily files, {len(cci_days)} on scored days")
    if truth_url:  # a missing or misplaced truth is a one-line error before any work
        TwinTruth(truth_url, storage, lat, lon, float(cinfo.grid.res)).sm_true(all_days[0])
    synthetic = twin_evidence(cinfo.attrs, truth_url, storage)
    edges = _scatter_edges(stores)
    figure_day = {name: day_req or s.days[-1] for name, s in stores.items()}
    by_day = {d: [(i, st.row, st.col, st.daily[d]) for i, st in enumerate(ismn_stations) if d in st.daily]
              for d in all_days}
    light = {n: dataclasses.replace(s, ds=None) for n, s in stores.items()}
    job = DayJob(cube_url=cube_url, storage=storage, stores=light, lat=lat, lon=lon, res=float(cinfo.grid.res),
                 truth_url=truth_url, edges=edges, figure_day=figure_day, grid=cinfo.grid, cci=cci_days)
    accs = score_all(cfg, job, all_days, by_day, engine or ecfg.engine, progress)
    median_mpdi = vegetation_mpdi(cube_url, storage, all_days, ecfg.vegetation_days)
    result = _result(cfg, stores, accs, cube_url, maps, truth_url, ismn, lat, median_mpdi, figure_day,
                     ismn_stations, ismn_read, ismn_total, all_days, synthetic, cci)
    _write_outputs(result, stores, accs, edges, lat, lon, figure_day, out_dir, storage, progress)
    result["seconds"] = time.perf_counter() - t0
    write_json(join(out_dir, METRICS_FILE), storage, result)
    progress(f"evaluate: {len(stores)} model(s), {len(all_days)} days -> {join(out_dir, METRICS_FILE)}, "
             f"{REPORT_FILE} in {result['seconds']:.0f} s")
    return result


def _score_day(acc: ModelAcc, s: MapStore, day: dt.date, ref: np.ndarray, tru: dict[str, np.ndarray] | None,
               cci: np.ndarray | None, edges: np.ndarray, stations: list[tuple[int, int, int, float]],
               keep_maps: bool) -> None:
    pred = s.read(COMBINED_VAR, day)
    ok, total = acc.add_combined(day, pred, ref)
    per_pass = {p: s.read(var, day) for p, var in PASS_VARS.items()}
    for p, field in per_pass.items():
        acc.passes[p].add(field, ref)
    m = report_scores(scores(total, shift=SHIFT), s.span)
    acc.daily.append({"date": day.isoformat(), **{k: m[k] for k in ("n", "r2", "rmse", "bias", "pearson_r",
                                                                     "mean_pred", "mean_ref")}})
    lo, hi = edges[0], edges[-1]
    h, _, _ = np.histogram2d(np.clip(ref[ok], lo, hi), np.clip(pred[ok], lo, hi), bins=[edges, edges])
    acc.hist += h
    if tru is not None:
        for p in PASS_VARS:
            if p not in tru:
                raise SmrayError(f"twin truth of {day}: no pass {p!r}")
            acc.truth[p].add(per_pass[p], tru[p])
        acc.truth["combined"].add(pred, np.mean([tru[p] for p in PASS_VARS], axis=0))
    if cci is not None:
        acc.cci.add(pred, cci)
        acc.cci_days += 1
        t = triple_sums(pred, ref, cci, shift=SHIFT)
        if acc.triples is None:
            acc.triples = t
        else:
            acc.triples += t
    for i, row, col, obs in stations:
        if np.isfinite(pred[row, col]):
            acc.pairs.append((i, day, obs, float(pred[row, col])))
    if keep_maps:
        acc.map_fields = (pred, ref)


def tc_summary(triples: np.ndarray | None, min_days: int) -> dict[str, Any]:
    """Triple collocation of (map, reference, CCI) per pixel (:func:`smray.metrics.triple_collocation`):
    the pixels where every estimate is defined, and over them the median error standard deviation
    (m³/m³) and median correlation with the unknown truth of each of the three."""
    out: dict[str, Any] = {"min_days": min_days, "pixels": 0}
    if triples is None:
        return out
    tc = triple_collocation(triples, min_days)
    ok = np.logical_and.reduce([np.isfinite(tc[k]) for k in ("err_x", "err_y", "err_z", "r_x", "r_y", "r_z")])
    out["pixels"] = int(ok.sum())
    for key, label in (("x", "map"), ("y", "reference"), ("z", "cci")):
        out[f"error_std_{label}"] = float(np.median(tc[f"err_{key}"][ok])) if ok.any() else math.nan
        out[f"r_truth_{label}"] = float(np.median(tc[f"r_{key}"][ok])) if ok.any() else math.nan
    return out


def period_scores(acc: ModelAcc, span: float | None) -> dict[str, dict[str, dict[str, Any]]]:
    """The scores of the combined map per season (in :data:`SEASONS` order), calendar month and year with
    scored days, each with its ``days``: :data:`PERIODS` key → group → scores."""
    order = {name: k for k, (name, _) in enumerate(SEASONS)}
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for key in PERIODS:
        groups = acc.periods.get(key, {})
        out[key] = {g: {**report_scores(groups[g].scores(), span), "days": acc.period_days[key][g]}
                    for g in sorted(groups, key=lambda g: (order.get(g, 0), g))}
    return out


def climatology_anomaly(acc: ModelAcc, min_days: int) -> dict[str, Any]:
    """``clim_anomaly_r``: anomalies from a per-pixel monthly climatology over the scored days
    (:func:`smray.metrics.pooled_anomaly` with one part per calendar month), ``clim_anomaly_pixel_months``
    and ``clim_anomaly_n`` that counted."""
    m = pooled_anomaly([acc.months[k] for k in sorted(acc.months)], min_days)
    return {"clim_anomaly_r": m["anomaly_r"], "clim_anomaly_pixel_months": m["anomaly_pixels"],
            "clim_anomaly_n": m["anomaly_n"]}


def _result(cfg: Config, stores: dict[str, MapStore], accs: dict[str, ModelAcc], cube_url: str, maps: list[str],
            truth_url: str | None, ismn: str | None, lat: np.ndarray, median_mpdi: np.ndarray,
            figure_day: dict[str, dt.date], stations: list[Station], n_files: int, n_stations: int,
            all_days: list[dt.date], synthetic: str | None, cci: str | None = None) -> dict[str, Any]:
    ecfg = cfg.evaluate
    bands = lat_band_masks(lat, median_mpdi.shape[1])
    veg = vegetation_classes(median_mpdi)
    scored = np.logical_or.reduce([accs[n].combined.n > 0 for n in stores])  # pixels with a pair in some model
    models: dict[str, Any] = {}
    for name, s in stores.items():
        acc = accs[name]
        row: dict[str, Any] = {
            "kind": s.kind, "store": s.url,
            **sums_scores(acc.combined, span=s.span, anomaly_min_days=ecfg.anomaly_min_days),
            **climatology_anomaly(acc, ecfg.anomaly_min_days),
            "target_lower": s.target_lower, "target_upper": s.target_upper, "norm_source": s.norm_source,
            "days": len(s.days), "first_day": s.days[0].isoformat(), "last_day": s.days[-1].isoformat(),
            "map_day": figure_day[name].isoformat(),
            "model": s.ds.attrs.get("smray_model"), "fingerprint": s.ds.attrs.get("smray_model_fingerprint"),
            "validation": s.ds.attrs.get("smray_model_validation"),
            "per_pass": {p: {"variable": PASS_VARS[p], **sums_scores(acc.passes[p], span=s.span)} for p in PASS_VARS},
            "lat_bands": {b: sums_scores(acc.combined, m, span=s.span) for b, m in bands.items()},
            "vegetation": {c: sums_scores(acc.combined, m, span=s.span) for c, m in veg.items()},
            **period_scores(acc, s.span),
            "daily": acc.daily,
        }
        if acc.truth:
            row["truth"] = {k: {x: y for x, y in sums_scores(v).items() if x != "rmse_norm"}
                            for k, v in acc.truth.items()}
        if ismn:
            row["ismn"] = {**ismn_metrics(acc.pairs, stations, n_files, n_stations),
                           "role": "plumbing check" if synthetic else "independent reference"}
        if cci:
            row["cci"] = {**{x: y for x, y in sums_scores(acc.cci).items() if x != "rmse_norm"},
                          "days": acc.cci_days, "role": "plumbing check" if synthetic else "independent reference",
                          "triple_collocation": tc_summary(acc.triples, ecfg.tc_min_days)}
        models[name] = row
    return {
        "smray_version": __version__, "cube": cube_url, "maps": maps, "truth": truth_url, "ismn": ismn, "cci": cci,
        "period": {"start": all_days[0].isoformat(), "end": all_days[-1].isoformat(), "days": len(all_days)},
        "data": {"synthetic": synthetic is not None, "evidence": synthetic},
        "models": models,
        "definitions": {
            "reference": "the cube's swvl1 (m3/m3); pairs where prediction and reference are finite",
            "r2": "1 - SSE/SST, SST about the reference mean", "bias": "mean(prediction - reference)",
            "ubrmsd": "sqrt(rmse^2 - bias^2)",
            "rmse_norm": "rmse / (target_upper - target_lower): the paper's normalised units, not clipped",
            "anomaly_r": f"Pearson R of per-pixel anomalies from each pixel's own mean over the scored days; pixels "
                         f"with at least {ecfg.anomaly_min_days} pairs (over a season or more it keeps the seasonal "
                         f"cycle)",
            "clim_anomaly_r": f"Pearson R of anomalies from a per-pixel monthly climatology of the evaluation period: "
                              f"from each value the mean of its pixel and calendar month (all scored years) is "
                              f"subtracted, the reference's climatology from the reference and the prediction's "
                              f"from the prediction, both over the same pairs; a pixel-month counts with at least "
                              f"{ecfg.anomaly_min_days} pairs",
            "seasons": {name: list(months) for name, months in SEASONS},
            "months": "calendar months 01..12, all scored years together",
            "years": "calendar years",
            "lat_bands": {b: [lo, hi] for b, lo, hi in LAT_BANDS},
            "vegetation": {c: [None if not math.isfinite(lo) else lo, None if not math.isfinite(hi) else hi]
                           for c, lo, hi in VEGETATION},
            "vegetation_index": f"median MPDI = (TB10V - TB10H)/(TB10V + TB10H) over both passes and at most "
                                f"{ecfg.vegetation_days} scored days",
            "ismn": f"surface sensors (depth to <= {SURFACE_DEPTH_M} m), daily UTC mean of G/U observations, "
                    f"nearest grid cell, same day; against soil_moisture",
            "ismn_role": "independent reference on real maps; on twin maps a plumbing check only (real stations "
                         "against synthetic maps: reading, placing and pairing work; the numbers are not skill)",
            "synthetic": "the cube is the twin's when a twin truth is given or an input it records (ingest_tb, "
                         "ingest_ref) holds a twin manifest (twin.json), there or one level up",
            "pixel_metrics": f"per pixel over the scored days, from the per-pixel sums; Pearson R needs at least "
                             f"{ecfg.anomaly_min_days} pairs",
            "cci": "ESA CCI SM daily sm (m3/m3), its 0.25 deg cells averaged over each cube cell (NaN-aware), against "
                   "soil_moisture on the same day; on twin maps a plumbing check only",
            "triple_collocation": "covariance-notation triple collocation (McColl et al. 2014) of map, reference and "
                                  "CCI per pixel over the days all three are finite (pixels with at least "
                                  f"{ecfg.tc_min_days} such days and every estimate defined): medians over the "
                                  "pixels of each one's random error std (own units) and correlation with the truth",
            "truth": "twin sm_true per pass (A vs soil_moisture_asc, D vs soil_moisture_desc), combined = mean of "
                     "the passes vs soil_moisture",
        },
        "anomaly_min_days": ecfg.anomaly_min_days,
        "vegetation_pixels": {c: int((m & scored).sum()) for c, m in veg.items()},
        "paper": PAPER, "config": to_dict(cfg), "packages": package_versions(PACKAGES),
    }


def pixel_fields(sums: PairSums, min_pairs: int) -> dict[str, np.ndarray]:
    """Per-pixel ``pearson_r`` (NaN below ``min_pairs`` pairs), ``ubrmsd``, ``bias``, ``rmse`` and ``n``."""
    f = sums.fields(min_pairs)
    return {"pearson_r": f["pearson_r"], "ubrmsd": f["ubrmsd"], "bias": f["bias"], "rmse": f["rmsd"], "n": f["n"]}


def write_pixel_metrics(url: str, storage: StorageConfig, fields: dict[str, dict[str, np.ndarray]], lat: np.ndarray,
                        lon: np.ndarray, result: dict[str, Any]) -> None:
    """The per-pixel metric fields of every model as one small netCDF (model, lat, lon), written whole."""
    names = list(fields)
    data = {var: (("model", "lat", "lon"), np.stack([fields[n][var] for n in names]).astype(np.float32),
                  {"units": units, "long_name": long})
            for var, (units, long) in PIXEL_VARS.items()}
    data["n"] = (("model", "lat", "lon"), np.stack([fields[n]["n"] for n in names]).astype(np.int32),
                 {"units": "1", "long_name": "pairs (days with a finite prediction and reference)"})
    per = result["period"]
    ds = xr.Dataset(data, coords={"model": ("model", names), "lat": ("lat", lat, {"units": "degrees_north"}),
                                  "lon": ("lon", lon, {"units": "degrees_east"})},
                    attrs={"title": "smray evaluate: per-pixel metrics against the reference", "cube": result["cube"],
                           "period": f"{per['start']}..{per['end']}", "days": per["days"],
                           "pearson_r_min_pairs": int(result["anomaly_min_days"]),
                           "synthetic_twin_data": int(result["data"]["synthetic"]),
                           "smray_version": __version__})
    fs, path = filesystem(url, storage)
    write_bytes(fs, path, bytes(ds.to_netcdf(engine="h5netcdf")))


def _write_outputs(result: dict[str, Any], stores: dict[str, MapStore], accs: dict[str, ModelAcc],
                   edges: np.ndarray, lat: np.ndarray, lon: np.ndarray, figure_day: dict[str, dt.date], out_dir: str,
                   storage: StorageConfig, progress: Callable[[str], None]) -> None:
    from smray.plot import figure_maps, figure_pixel_metrics, figure_scatter, figure_timeseries

    figures: dict[str, dict[str, str]] = {}
    min_pairs = int(result["anomaly_min_days"])
    fields = {name: pixel_fields(accs[name].combined, min_pairs) for name in stores}
    write_pixel_metrics(join(out_dir, PIXEL_FILE), storage, fields, lat, lon, result)
    per = result["period"]
    for name in stores:
        acc, files = accs[name], {}
        if acc.map_fields is not None:
            files["maps"] = f"maps_{name}.png"
            figure_maps(*acc.map_fields, lat, lon, model=name, day=figure_day[name], url=join(out_dir, files["maps"]),
                        storage=storage)
        files["pixels"] = f"pixels_{name}.png"
        figure_pixel_metrics(fields[name]["pearson_r"], fields[name]["ubrmsd"], lat, lon, model=name,
                             min_pairs=min_pairs, period=f"{per['start']}..{per['end']}",
                             url=join(out_dir, files["pixels"]), storage=storage)
        files["scatter"] = f"scatter_{name}.png"
        figure_scatter(acc.hist, edges, model=name, stats=result["models"][name], url=join(out_dir, files["scatter"]),
                       storage=storage)
        figures[name] = files
    figure_timeseries({n: accs[n].daily for n in stores}, url=join(out_dir, TIMESERIES_FILE), storage=storage)
    result["figures"] = {"models": figures, "timeseries": TIMESERIES_FILE}
    result["pixel_metrics"] = PIXEL_FILE
    fs, path = filesystem(join(out_dir, REPORT_FILE), storage)
    write_bytes(fs, path, report_markdown(result).encode())
    progress(f"evaluate: wrote {REPORT_FILE}, {PIXEL_FILE} and {sum(len(f) for f in figures.values()) + 1} figures "
             f"to {out_dir}")


# --------------------------------------------------------------------------------------------
# The report
# --------------------------------------------------------------------------------------------
def _f(v: Any, digits: int = 4) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "—"
    return f"{v:.{digits}f}" if isinstance(v, float) else str(v)


ROW_KEYS = ("r2", "rmse_norm", "rmse", "bias", "ubrmsd", "pearson_r", "n")
ROW_HEAD = "| R² | RMSE (norm) | RMSE (m³/m³) | bias (m³/m³) | ubRMSD (m³/m³) | R | n |"


def _rows(title: str, first: str, data: dict[str, dict[str, Any]], inner: str, note: str = "") -> list[str]:
    lines = [f"## {title}", "", *([note, ""] if note else []), f"| model | {first} {ROW_HEAD}",
             "|---|---" + "|---" * len(ROW_KEYS) + "|"]
    for model, groups in data.items():
        for key, m in groups[inner].items():
            lines.append(f"| {model} | {key} | " + " | ".join(_f(m.get(k)) for k in ROW_KEYS) + " |")
    return lines + [""]


def report_markdown(result: dict[str, Any]) -> str:
    """The Markdown report: the side-by-side table with the paper's numbers for context, per pass,
    latitude bands, vegetation classes, truth and ISMN tables, and the figures."""
    models = result["models"]
    per = result["period"]
    d = result["definitions"]
    lines = [f"# Soil-moisture map evaluation, {per['start']}..{per['end']} ({per['days']} days)", ""]
    if result["data"]["synthetic"]:
        lines += [f"> **{TWIN_BANNER[0].upper()}{TWIN_BANNER[1:]}** ({result['data']['evidence']}).", ""]
    lines += [f"Reference: the cube `{result['cube']}` (swvl1). Map stores: "
              + ", ".join(f"`{m['store']}` ({n})" for n, m in models.items()) + ".", "",
              f"R² = {d['r2']}; RMSE (norm) = {d['rmse_norm']}; bias = {d['bias']}; ubRMSD = {d['ubrmsd']}; "
              f"anomaly R (clim.): {d['clim_anomaly_r']}. anomaly R (pixel mean): {d['anomaly_r']}.", "",
              "## All models side by side", "",
              "| model | R² | RMSE (norm) | RMSE (m³/m³) | bias (m³/m³) | ubRMSD (m³/m³) | R | anomaly R (clim.) "
              "| anomaly R (pixel mean) | n | days |",
              "|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, m in models.items():
        lines.append(f"| {name} | " + " | ".join(_f(m.get(k)) for k in (*ROW_KEYS[:-1], "clim_anomaly_r", "anomaly_r",
                                                                        "n", "days")) + " |")
    for name, p in result["paper"].items():
        lines.append(f"| paper {name.upper()} (Table 2, 31 July 2011, 50,000 patches) | {_f(p['r2'])} | "
                     f"{_f(p['rmse_norm'])} | — | — | — | — | — | — | — | — |")
    lines += ["", "The paper's numbers are for context: one test day of patches, not these maps.", ""]
    chosen = [(n, m["validation"]) for n, m in models.items() if m.get("validation")]
    if chosen:
        lines += ["Model selection (the validation patches of each trained model's early stopping):", ""]
        lines += [f"- {n}: {v}" for n, v in chosen] + [""]
    lines += _rows("Per pass (A = 13:30 ascending, D = 01:30 descending)", "pass", models, "per_pass")
    bands = ", ".join(f"{b}: [{lo}, {hi})" for b, (lo, hi) in d["lat_bands"].items())
    lines += _rows("By latitude band", "band", models, "lat_bands",
                   f"Bands by pixel centre latitude, south edge inclusive: {bands}.")
    veg = ", ".join(f"{c}: {lo if lo is not None else '−∞'} ≤ MPDI < {hi if hi is not None else '∞'} "
                    f"({result['vegetation_pixels'][c]} pixels)" for c, (lo, hi) in d["vegetation"].items())
    lines += _rows("By vegetation class", "class", models, "vegetation",
                   f"Classes of the {d['vegetation_index']}: {veg}.")
    seasons = ", ".join(f"{name} = months {'/'.join(str(x) for x in months)}" for name, months in d["seasons"].items())
    lines += _rows("By season", "season", models, "seasons",
                   f"Meteorological seasons of the scored days, all years together ({seasons}).")
    lines += _rows("By calendar month", "month", models, "months", "Calendar months, all scored years together.")
    lines += _rows("By year", "year", models, "years")
    if any("truth" in m for m in models.values()):
        lines += ["## Against the twin's truth", "", d["truth"] + ".", "",
                  "| model | pass | R² | RMSE (m³/m³) | bias (m³/m³) | ubRMSD (m³/m³) | R | n |",
                  "|---|---|---|---|---|---|---|---|"]
        for name, m in models.items():
            for k, t in m.get("truth", {}).items():
                lines.append(f"| {name} | {k} | " + " | ".join(_f(t.get(x)) for x in
                                                              ("r2", "rmse", "bias", "ubrmsd", "pearson_r", "n"))
                             + " |")
        lines.append("")
    if any("ismn" in m for m in models.values()):
        if result["data"]["synthetic"]:
            lines += ["## ISMN stations against twin maps: a plumbing check, not skill", "",
                      "Real stations scored against synthetic maps show that the files are read, the stations placed "
                      "and the days paired; their agreement is chance and says nothing about skill.", "",
                      d["ismn"] + ".", "",
                      "| model | stations | pairs | R (plumbing) | bias (plumbing) | ubRMSD (plumbing) "
                      "| RMSE (plumbing) |"]
        else:
            lines += ["## Against ISMN stations", "", d["ismn"] + ".", "",
                      "| model | stations | pairs | R | bias (m³/m³) | ubRMSD (m³/m³) | RMSE (m³/m³) |"]
        lines.append("|---|---|---|---|---|---|---|")
        for name, m in models.items():
            i = m.get("ismn")
            if i:
                lines.append(f"| {name} | {i['n_stations']} | {i['n_pairs']} | " + " | ".join(
                    _f(i.get(x)) for x in ("pearson_r", "bias", "ubrmsd", "rmse")) + " |")
        notes = {m["ismn"].get("note") for m in models.values() if m.get("ismn", {}).get("note")}
        lines += [""] + [f"Note: {n}." for n in sorted(notes)] + ([""] if notes else [])
    if any("cci" in m for m in models.values()):
        twin = result["data"]["synthetic"]
        lines += ["## ESA CCI SM against twin maps: a plumbing check, not skill" if twin else "## Against ESA CCI SM",
                  "", d["cci"] + ".", "",
                  "| model | days | pairs | R | bias (m³/m³) | ubRMSD (m³/m³) | RMSE (m³/m³) |",
                  "|---|---|---|---|---|---|---|"]
        for name, m in models.items():
            c = m.get("cci")
            if c:
                lines.append(f"| {name} | {c['days']} | {c['n']} | " + " | ".join(
                    _f(c.get(x)) for x in ("pearson_r", "bias", "ubrmsd", "rmse")) + " |")
        lines += ["", f"Triple collocation: {d['triple_collocation']}.", "",
                  "| model | pixels | error std: map | reference | CCI (m³/m³) | R with truth: map | reference | CCI |",
                  "|---|---|---|---|---|---|---|---|"]
        for name, m in models.items():
            t = m.get("cci", {}).get("triple_collocation")
            if t is not None:
                lines.append(f"| {name} | {t['pixels']} | " + " | ".join(
                    _f(t.get(f"{k}_{s}")) for k in ("error_std", "r_truth") for s in ("map", "reference", "cci"))
                    + " |")
        lines.append("")
    lines += ["## Figures", ""]
    figs = result.get("figures", {})
    for name, files in figs.get("models", {}).items():
        if "maps" in files:
            lines += [f"![{name}: prediction, reference and difference on {models[name]['map_day']}]"
                      f"({files['maps']})", ""]
        if "pixels" in files:
            lines += [f"![{name}: per-pixel R and ubRMSD over the scored days]({files['pixels']})", ""]
        lines += [f"![{name}: scatter density against the reference]({files['scatter']})", ""]
    if figs.get("timeseries"):
        lines += [f"![daily spatial mean and RMSE]({figs['timeseries']})", ""]
    if result.get("pixel_metrics"):
        lines += [f"Per-pixel R, ubRMSD, bias, RMSE and pairs of every model: `{result['pixel_metrics']}` (netCDF, "
                  f"model × lat × lon; {d['pixel_metrics']}).", ""]
    return "\n".join(lines)
