"""Figures: the quick-look map of any cube or map store (``smray plot``) and the evaluation report's
figures (prediction/reference/difference maps, per-pixel R and ubRMSD, scatter density, daily time series).

Everything draws on :class:`matplotlib.figure.Figure` with the Agg canvas (no pyplot, no display)
and is written as PNG bytes through :func:`smray.storage.write_bytes`, so the target may be a
local path or an ``s3://`` URL and a reader never sees half a file.

``--var`` names a variable of the store; a variable with a ``pass`` and/or ``channel`` axis needs
their values after colons, in axis order: ``tb:A:06H`` (cube brightness temperature, pass A,
6.9 GHz H), ``qc:D`` (QC bitmask of the descending pass). Defaults: ``swvl1`` for a cube,
``soil_moisture`` for a map store.
"""

from __future__ import annotations

import datetime as dt
import io
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr
from matplotlib.figure import Figure

from smray.cube import CUBE_FORMAT
from smray.daystore import open_dataset, store_dates
from smray.errors import SmrayError
from smray.mapstore import MAP_FORMAT
from smray.serial import as_date
from smray.storage import StorageConfig, filesystem, write_bytes

DEFAULT_VAR = {CUBE_FORMAT: "swvl1", MAP_FORMAT: "soil_moisture"}
#: axes that need a value after ':' in --var, in the order they are given
SELECT_DIMS = ("pass", "channel")
SM_CMAP = "YlGnBu"
DIFF_CMAP = "RdBu"
DPI = 110


# --------------------------------------------------------------------------------------------
# Opening stores
# --------------------------------------------------------------------------------------------
def store_format(ds: xr.Dataset, url: str) -> str:
    """``smray-cube-1`` or ``smray-maps-1`` (SmrayError naming the attribute otherwise)."""
    fmt = ds.attrs.get("smray_format")
    if fmt not in DEFAULT_VAR:
        raise SmrayError(f"{url}: not a smray cube or map store (attribute smray_format is {fmt!r})")
    return str(fmt)


# --------------------------------------------------------------------------------------------
# Drawing helpers
# --------------------------------------------------------------------------------------------
def _extent(lat: np.ndarray, lon: np.ndarray) -> tuple[float, float, float, float]:
    """imshow extent (left, right, bottom, top) of cell-centre coordinates (edges at ± half a cell)."""
    dy = abs(float(lat[1] - lat[0])) if len(lat) > 1 else 1.0
    dx = abs(float(lon[1] - lon[0])) if len(lon) > 1 else 1.0
    return (float(lon.min()) - dx / 2, float(lon.max()) + dx / 2, float(lat.min()) - dy / 2,
            float(lat.max()) + dy / 2)


def _north_up(field: np.ndarray, lat: np.ndarray) -> np.ndarray:
    return field if len(lat) < 2 or lat[0] > lat[-1] else field[::-1]


def _finite_window(fields: Sequence[np.ndarray], lat: np.ndarray, lon: np.ndarray, margin: int = 2
                   ) -> tuple[float, float, float, float] | None:
    """(lon_min, lon_max, lat_min, lat_max) around the cells finite in any of ``fields`` (None: none)."""
    ok = np.zeros(fields[0].shape, dtype=bool)
    for f in fields:
        ok |= np.isfinite(f)
    if not ok.any():
        return None
    rows, cols = np.nonzero(ok.any(axis=1))[0], np.nonzero(ok.any(axis=0))[0]
    r0, r1 = max(rows[0] - margin, 0), min(rows[-1] + margin, len(lat) - 1)
    c0, c1 = max(cols[0] - margin, 0), min(cols[-1] + margin, len(lon) - 1)
    la, lo = lat[[r0, r1]], lon[[c0, c1]]
    dy = abs(float(lat[1] - lat[0])) / 2 if len(lat) > 1 else 0.5
    dx = abs(float(lon[1] - lon[0])) / 2 if len(lon) > 1 else 0.5
    return float(lo.min()) - dx, float(lo.max()) + dx, float(la.min()) - dy, float(la.max()) + dy


def draw_field(fig: Figure, ax: Any, field: np.ndarray, lat: np.ndarray, lon: np.ndarray, *, title: str,
               label: str, cmap: str = "viridis", vmin: float | None = None, vmax: float | None = None,
               window: tuple[float, float, float, float] | None = None) -> None:
    """One lat/lon field (lat, lon) on ``ax`` with a colorbar labelled ``label``."""
    data = np.ma.masked_invalid(np.asarray(_north_up(np.asarray(field, dtype=np.float64), lat)))
    im = ax.imshow(data, extent=_extent(lat, lon), origin="upper", cmap=cmap, vmin=vmin, vmax=vmax,
                   interpolation="nearest", aspect="auto")
    ax.set_facecolor("0.92")
    if window is not None:
        ax.set_xlim(window[0], window[1])
        ax.set_ylim(window[2], window[3])
    ax.set_xlabel("longitude (°E)")
    ax.set_ylabel("latitude (°N)")
    ax.set_title(title, fontsize=9)
    fig.colorbar(im, ax=ax, label=label, shrink=0.85)


def png_bytes(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight")
    return buf.getvalue()


def save_png(fig: Figure, url: str, storage: StorageConfig | None = None) -> str:
    """Write ``fig`` as PNG to ``url`` (local path or URL) atomically; returns ``url``."""
    fs, path = filesystem(url, storage)
    write_bytes(fs, path, png_bytes(fig))
    return url


def _robust_range(values: Sequence[np.ndarray], lo_q: float = 1.0, hi_q: float = 99.0) -> tuple[float, float]:
    v = np.concatenate([np.asarray(a, np.float64)[np.isfinite(a)].ravel() for a in values])
    if v.size == 0:
        return 0.0, 1.0
    lo, hi = np.percentile(v, [lo_q, hi_q])
    return (float(lo), float(hi)) if hi > lo else (float(lo) - 0.5, float(lo) + 0.5)


# --------------------------------------------------------------------------------------------
# smray plot
# --------------------------------------------------------------------------------------------
def _parse_var(spec: str) -> tuple[str, list[str]]:
    parts = [p.strip() for p in str(spec).split(":")]
    if not parts[0] or any(not p for p in parts[1:]):
        raise SmrayError(f"--var: {spec!r} is not NAME or NAME:PASS[:CHANNEL] (e.g. tb:A:06H)")
    return parts[0], parts[1:]


def select_field(ds: xr.Dataset, url: str, spec: str, date: dt.date | None) -> tuple[np.ndarray, str]:
    """The 2-D (lat, lon) field named by ``spec`` on ``date`` and a label for it. SmrayError (one
    line, naming the store and field) for an unknown variable, a missing axis value or date."""
    name, picks = _parse_var(spec)
    variables = [v for v in ds.data_vars if {"lat", "lon"} <= set(ds[v].dims)]
    if name not in variables:
        raise SmrayError(f"--var: {name!r} is not a map variable of {url} (known: {', '.join(sorted(variables))})")
    da = ds[name]
    extra = [d for d in SELECT_DIMS if d in da.dims]
    other = [d for d in da.dims if d not in ("time", "lat", "lon", *SELECT_DIMS)]
    if other:
        raise SmrayError(f"--var: {name} has the axis {other[0]!r}, which smray plot cannot select")
    if len(picks) != len(extra):
        example = ":".join([name] + [str(ds[d].values[0]) for d in extra])
        need = " and ".join(extra) if extra else "no axis values"
        raise SmrayError(f"--var: {name} needs {need} after ':' (e.g. {example}), got {spec!r}")
    label_parts = [name]
    for dim, value in zip(extra, picks):
        known = [str(v) for v in ds[dim].values]
        if value not in known:
            raise SmrayError(f"--var: {dim} {value!r} is not in {url} (known: {', '.join(known)})")
        da = da.isel({dim: known.index(value)})
        label_parts.append(f"{dim} {value}")
    if "time" in da.dims:
        dates = store_dates(ds)
        if date is None:
            raise SmrayError(f"--date: {name} has a time axis; give a day {dates[0]}..{dates[-1]}")
        if date not in dates:
            span = f"{dates[0]}..{dates[-1]}" if dates else "empty"
            raise SmrayError(f"--date: {date} is not in the time axis ({span}) of {url}")
        da = da.isel(time=dates.index(date))
    return np.asarray(da.values, dtype=np.float64), ", ".join(label_parts)


def plot_map(store_url: str, date: dt.date | str, out_png: str, var: str | None = None,
             storage: StorageConfig | None = None) -> str:
    """A quick-look map of one variable of a cube or map store on one day, with a colorbar and a
    title naming the store, variable, date and units; zoomed to the cells with data (land).
    Writes ``out_png`` (path or URL) and returns it."""
    day = as_date(date, "--date")
    ds = open_dataset(store_url, storage)
    fmt = store_format(ds, store_url)
    spec = var or DEFAULT_VAR[fmt]
    field, label = select_field(ds, store_url, spec, day)
    name = spec.split(":", 1)[0]
    attrs = ds[name].attrs
    units = str(attrs.get("units", "1"))
    lat, lon = np.asarray(ds["lat"].values, np.float64), np.asarray(ds["lon"].values, np.float64)
    if not np.isfinite(field).any():
        raise SmrayError(f"--date: {spec} has no data on {day} in {store_url}")
    if name.startswith("soil_moisture") or name == "swvl1":
        cmap, (vmin, vmax) = SM_CMAP, _robust_range([field], 0.0, 100.0)
    else:
        cmap, (vmin, vmax) = "viridis", _robust_range([field], 1.0, 99.0)
    fig = Figure(figsize=(10, 5.2))
    ax = fig.add_subplot(1, 1, 1)
    store_name = os.path.basename(store_url.rstrip("/")) or store_url
    long_name = attrs.get("long_name", name)
    draw_field(fig, ax, field, lat, lon, title=f"{store_name}: {label} on {day.isoformat()} [{units}]\n{long_name}",
               label=f"{name} ({units})", cmap=cmap, vmin=vmin, vmax=vmax, window=_finite_window([field], lat, lon))
    return save_png(fig, out_png, storage)


# --------------------------------------------------------------------------------------------
# Report figures (smray.evaluate)
# --------------------------------------------------------------------------------------------
def figure_maps(pred: np.ndarray, ref: np.ndarray, lat: np.ndarray, lon: np.ndarray, *, model: str,
                day: dt.date, url: str, storage: StorageConfig | None = None) -> str:
    """Prediction, reference and difference (prediction − reference) on ``day``, m³/m³, side by side."""
    vmin, vmax = _robust_range([pred, ref], 0.0, 100.0)
    diff = pred - ref
    d = _robust_range([np.abs(diff)], 0.0, 98.0)[1] or 0.05
    window = _finite_window([pred, ref], lat, lon)
    fig = Figure(figsize=(18, 4.8))
    axes = fig.subplots(1, 3)
    draw_field(fig, axes[0], pred, lat, lon, title=f"{model}: predicted soil moisture, {day}",
               label="m³/m³", cmap=SM_CMAP, vmin=vmin, vmax=vmax, window=window)
    draw_field(fig, axes[1], ref, lat, lon, title=f"reference (cube swvl1), {day}", label="m³/m³", cmap=SM_CMAP,
               vmin=vmin, vmax=vmax, window=window)
    draw_field(fig, axes[2], diff, lat, lon, title=f"{model} − reference, {day}", label="m³/m³", cmap=DIFF_CMAP,
               vmin=-d, vmax=d, window=window)
    return save_png(fig, url, storage)


def figure_pixel_metrics(r: np.ndarray, ubrmsd: np.ndarray, lat: np.ndarray, lon: np.ndarray, *, model: str,
                         min_pairs: int, period: str, url: str, storage: StorageConfig | None = None) -> str:
    """Per-pixel Pearson R and ubRMSD (m³/m³) of a model against the reference over the scored days, side
    by side; pixels with fewer than ``min_pairs`` pairs are blank in the R panel."""
    window = _finite_window([ubrmsd], lat, lon)
    top = _robust_range([ubrmsd], 0.0, 98.0)[1] or 0.05
    fig = Figure(figsize=(13, 4.8))
    axes = fig.subplots(1, 2, gridspec_kw={"wspace": 0.3})
    draw_field(fig, axes[0], r, lat, lon, title=f"{model}: Pearson R per pixel, {period} (>= {min_pairs} pairs)",
               label="R", cmap="RdYlBu", vmin=-1.0, vmax=1.0, window=window)
    draw_field(fig, axes[1], ubrmsd, lat, lon, title=f"{model}: ubRMSD per pixel, {period}", label="m³/m³",
               cmap="magma_r", vmin=0.0, vmax=top, window=window)
    return save_png(fig, url, storage)


def figure_scatter(hist: np.ndarray, edges: np.ndarray, *, model: str, stats: dict[str, Any], url: str,
                   storage: StorageConfig | None = None) -> str:
    """Scatter density: a 2-D histogram of (reference, prediction) pairs, log colour scale, 1:1 line."""
    from matplotlib.colors import LogNorm

    fig = Figure(figsize=(5.6, 5))
    ax = fig.add_subplot(1, 1, 1)
    counts = np.ma.masked_less_equal(hist.T, 0)
    if counts.count():
        mesh = ax.pcolormesh(edges, edges, counts, cmap="magma_r", norm=LogNorm(vmin=1, vmax=max(float(counts.max()),
                                                                                                 1.0)))
        fig.colorbar(mesh, ax=ax, label="pixel-days per bin")
    ax.plot(edges[[0, -1]], edges[[0, -1]], color="0.3", lw=0.8, ls="--")
    ax.set_xlim(edges[0], edges[-1])
    ax.set_ylim(edges[0], edges[-1])
    ax.set_aspect("equal")
    ax.set_xlabel("reference swvl1 (m³/m³)")
    ax.set_ylabel(f"{model} (m³/m³)")

    def f(key: str) -> str:
        v = stats.get(key)
        return "—" if v is None or not np.isfinite(v) else f"{v:.3f}"

    ax.set_title(f"{model}: R² {f('r2')}, RMSE {f('rmse')} m³/m³, R {f('pearson_r')}, n {stats.get('n', 0)}",
                 fontsize=9)
    return save_png(fig, url, storage)


def figure_timeseries(daily: dict[str, list[dict[str, Any]]], *, url: str,
                      storage: StorageConfig | None = None) -> str:
    """Per model and day: the spatial mean of prediction and reference (top) and the RMSE (bottom)."""
    import matplotlib.dates as mdates

    fig = Figure(figsize=(10, 6.5))
    top, bottom = fig.subplots(2, 1, sharex=True)
    locator = mdates.AutoDateLocator(minticks=3, maxticks=10)
    bottom.xaxis.set_major_locator(locator)
    bottom.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    ref_drawn = False
    for model, rows in daily.items():
        days = pd.to_datetime([r["date"] for r in rows])
        mp = np.array([np.nan if r["mean_pred"] is None else r["mean_pred"] for r in rows], np.float64)
        rm = np.array([np.nan if r["rmse"] is None else r["rmse"] for r in rows], np.float64)
        line = top.plot(days, mp, marker="o", ms=3, label=model)[0]
        bottom.plot(days, rm, marker="o", ms=3, color=line.get_color(), label=model)
        if not ref_drawn:
            mr = np.array([np.nan if r["mean_ref"] is None else r["mean_ref"] for r in rows], np.float64)
            top.plot(days, mr, color="k", lw=1.2, ls="--", label=f"reference (on {model}'s pixels)")
            ref_drawn = True
    top.set_ylabel("spatial mean (m³/m³)")
    top.legend(fontsize=8)
    top.set_title("daily spatial mean over the scored pixels, and daily RMSE against the reference", fontsize=9)
    bottom.set_ylabel("RMSE (m³/m³)")
    bottom.set_xlabel("day")
    return save_png(fig, url, storage)

