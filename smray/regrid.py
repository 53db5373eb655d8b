"""Regridding onto the smray cell-centre grids (pure numpy).

* :func:`bilinear_to_grid` — regular, point-registered lat/lon sources (ERA 0.25°/0.75°/5°, regular
  Gaussian, cell-centre grids) in any orientation (north- or south-first) and longitude convention
  (0..360 or −180..180, periodic or regional).
* :func:`reduced_gaussian_to_grid` — ERA-Interim's native reduced Gaussian grid (N128): linear along
  each Gaussian latitude row (rows are periodic and have their own point counts), then linear
  between rows.
* :func:`block_mean` — NaN-aware mean over ``factor × factor`` blocks (0.25° → 0.75°).

Both interpolators weigh only *valid* neighbours (finite and, when given, ``valid``) and renormalise
the bilinear weights over them, so masked ocean points never bleed into land values; a target whose
valid neighbours all have zero weight is NaN. On a fully valid source they are plain bilinear
interpolation, exact for fields linear in (lat, lon) inside one longitude span.

Latitudes beyond the outermost source row are filled with that row when the row lies within one
source spacing of the pole (grids whose first row is the pole, or a Gaussian row), or within half a
spacing otherwise (the outermost cell of a cell-centre grid); further out the result is NaN, as it is
outside a regional source's longitude span (again up to half a spacing).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from smray.errors import SmrayError
from smray.grid import Grid

__all__ = ["bilinear_to_grid", "bilinear", "reduced_gaussian_to_grid", "block_mean", "covered",
           "lon_is_periodic"]

_EPS = 1e-9


class _AxisWeights(NamedTuple):
    """Two-point interpolation along one axis for each target: source indices i0, i1 (into the
    caller's original order), weights w0 + w1 = 1, and ``inside`` (False → target is NaN)."""

    i0: np.ndarray
    i1: np.ndarray
    w0: np.ndarray
    w1: np.ndarray
    inside: np.ndarray


def _lat_weights(src_lat: np.ndarray, dst_lat: np.ndarray, *, clamp: bool = False) -> _AxisWeights:
    """Linear weights in latitude; ``src_lat`` strictly monotonic in either direction."""
    src = np.asarray(src_lat, dtype=np.float64)
    dst = np.asarray(dst_lat, dtype=np.float64)
    if src.ndim != 1 or src.size < 2:
        raise SmrayError(f"regrid: source latitude must be 1-D with at least 2 rows, got shape {src.shape}")
    order = np.argsort(src, kind="stable")
    s = src[order]
    if not np.all(np.diff(s) > 0):
        raise SmrayError("regrid: source latitudes are not strictly monotonic (duplicate rows)")
    n = s.size
    lo_sp, hi_sp = s[1] - s[0], s[-1] - s[-2]
    lo_lim = -90.0 if s[0] + 90.0 <= lo_sp + _EPS else s[0] - lo_sp / 2
    hi_lim = 90.0 if 90.0 - s[-1] <= hi_sp + _EPS else s[-1] + hi_sp / 2
    t = np.clip(dst, s[0], s[-1])
    k = np.clip(np.searchsorted(s, t, side="right") - 1, 0, n - 2)
    w1 = (t - s[k]) / (s[k + 1] - s[k])
    inside = np.ones(dst.shape, bool) if clamp else (dst >= lo_lim - _EPS) & (dst <= hi_lim + _EPS)
    return _AxisWeights(order[k], order[k + 1], 1.0 - w1, w1, inside)


def _lon_weights(src_lon: np.ndarray, dst_lon: np.ndarray, *, periodic: bool | None = None) -> _AxisWeights:
    """Linear weights in longitude, any convention; periodic when the source spans 360° with even-ish
    gaps (largest gap ≤ 1.5 × median), or when ``periodic`` says so."""
    src = np.asarray(src_lon, dtype=np.float64)
    dst = np.asarray(dst_lon, dtype=np.float64)
    if src.ndim != 1 or src.size < 2:
        raise SmrayError(f"regrid: source longitude must be 1-D with at least 2 points, got shape {src.shape}")
    x = np.mod(src, 360.0)
    order = np.argsort(x, kind="stable")
    xs = x[order]
    gaps = np.diff(np.append(xs, xs[0] + 360.0))
    if np.any(gaps[:-1] <= 0) or gaps[-1] <= 0:
        raise SmrayError("regrid: source longitudes repeat (modulo 360°)")
    n = xs.size
    g = int(np.argmax(gaps))
    if periodic is None:
        periodic = _spans_globe(gaps)
    if periodic:
        xe = np.append(xs, xs[0] + 360.0)
        t = xs[0] + np.mod(dst - xs[0], 360.0)
        k = np.clip(np.searchsorted(xe, t, side="right") - 1, 0, n - 1)
        w1 = (t - xe[k]) / (xe[k + 1] - xe[k])
        return _AxisWeights(order[k], order[(k + 1) % n], 1.0 - w1, w1, np.ones(dst.shape, bool))
    # regional: the span starts after the largest gap
    order = np.roll(order, -(g + 1))
    xs = x[order]
    xs = xs[0] + np.mod(xs - xs[0], 360.0)
    h0, h1 = (xs[1] - xs[0]) / 2, (xs[-1] - xs[-2]) / 2
    t = xs[0] - h0 + np.mod(dst - (xs[0] - h0), 360.0)
    inside = t <= xs[-1] + h1 + _EPS
    t = np.clip(t, xs[0], xs[-1])
    k = np.clip(np.searchsorted(xs, t, side="right") - 1, 0, n - 2)
    w1 = (t - xs[k]) / (xs[k + 1] - xs[k])
    return _AxisWeights(order[k], order[k + 1], 1.0 - w1, w1, inside)


def _spans_globe(gaps: np.ndarray) -> bool:
    """Periodic rule on the gaps between sorted longitudes (the last one wrapping round 360°): no
    gap above 1.5 × the median. An area retrieval leaves one large gap and is regional."""
    return bool(gaps.max() <= 1.5 * np.median(gaps) + _EPS)


def lon_is_periodic(src_lon: np.ndarray) -> bool:
    """Whether :func:`bilinear` wraps ``src_lon`` round the globe (see :func:`_lon_weights`)."""
    x = np.sort(np.mod(np.asarray(src_lon, dtype=np.float64).ravel(), 360.0))
    if x.size < 2:
        raise SmrayError(f"regrid: source longitude must have at least 2 points, got {x.size}")
    return _spans_globe(np.diff(np.append(x, x[0] + 360.0)))


def covered(src_lat: np.ndarray, src_lon: np.ndarray, grid: Grid) -> np.ndarray:
    """Bool (grid.nlat, grid.nlon): the cells of ``grid`` inside a regular source's latitude and
    longitude span by the edge rules of the module docstring; :func:`bilinear_to_grid` gives NaN on
    every other cell whatever the values."""
    return _lat_weights(src_lat, grid.lat).inside[:, None] & _lon_weights(src_lon, grid.lon).inside[None, :]


def _combine_rows(num: np.ndarray, den: np.ndarray, lw: _AxisWeights) -> np.ndarray:
    """From per-source-row sums (…, nrow, nx) to targets (…, ny, nx) with latitude weights ``lw``."""
    n = num[..., lw.i0, :] * lw.w0[:, None] + num[..., lw.i1, :] * lw.w1[:, None]
    d = den[..., lw.i0, :] * lw.w0[:, None] + den[..., lw.i1, :] * lw.w1[:, None]
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(d > _EPS, n / np.where(d > _EPS, d, 1.0), np.nan)
    out[..., ~lw.inside, :] = np.nan
    return out


def bilinear(values: np.ndarray, src_lat: np.ndarray, src_lon: np.ndarray, dst_lat: np.ndarray,
             dst_lon: np.ndarray, *, valid: np.ndarray | None = None) -> np.ndarray:
    """Bilinear interpolation from a regular source grid to the tensor grid ``dst_lat × dst_lon``.

    values: (..., nlat_src, nlon_src); src_lat (nlat_src,), src_lon (nlon_src,) in degrees, any
    order/convention; dst_lat (ny,), dst_lon (nx,). ``valid``: optional bool broadcastable to
    ``values`` (False = masked, e.g. ocean). Returns float64 (..., ny, nx); see the module docstring
    for masking and edge rules.
    """
    vals = np.asarray(values, dtype=np.float64)
    if vals.ndim < 2 or vals.shape[-2:] != (np.size(src_lat), np.size(src_lon)):
        raise SmrayError(f"regrid: values shape {vals.shape} does not end with "
                         f"(nlat={np.size(src_lat)}, nlon={np.size(src_lon)})")
    lw = _lat_weights(src_lat, dst_lat)
    xw = _lon_weights(src_lon, dst_lon)
    ok_all = np.isfinite(vals)
    if valid is not None:
        ok_all = ok_all & np.broadcast_to(np.asarray(valid, dtype=bool), vals.shape)
    lead = vals.shape[:-2]
    flat_v = vals.reshape((-1,) + vals.shape[-2:])
    flat_ok = ok_all.reshape(flat_v.shape)
    rows = np.unique(np.concatenate([lw.i0, lw.i1]))  # only the source rows any target needs
    remap = np.full(vals.shape[-2], -1)
    remap[rows] = np.arange(rows.size)
    lw_local = lw._replace(i0=remap[lw.i0], i1=remap[lw.i1])
    out = np.empty((flat_v.shape[0], np.size(dst_lat), np.size(dst_lon)), dtype=np.float64)
    for i in range(flat_v.shape[0]):  # one 2-D field at a time bounds the temporaries
        v = np.where(flat_ok[i, rows], flat_v[i, rows], 0.0)
        ok = flat_ok[i, rows].astype(np.float64)
        a0, a1 = ok[:, xw.i0] * xw.w0, ok[:, xw.i1] * xw.w1
        num = v[:, xw.i0] * a0 + v[:, xw.i1] * a1
        out[i] = _combine_rows(num, a0 + a1, lw_local)
    out[..., ~xw.inside] = np.nan
    return out.reshape(lead + out.shape[-2:])


def bilinear_to_grid(values: np.ndarray, src_lat: np.ndarray, src_lon: np.ndarray, grid: Grid, *,
                     valid: np.ndarray | None = None) -> np.ndarray:
    """Bilinear interpolation of a regular point-registered source onto ``grid``'s cell centres.

    values: (..., nlat_src, nlon_src); src_lat (nlat_src,), src_lon (nlon_src,): any orientation,
    0..360 or −180..180, periodic in longitude when the source spans the globe. ``valid``: optional
    bool mask broadcastable to ``values``. Returns float64 (..., grid.nlat, grid.nlon), rows north
    first, longitudes −180 → 180.
    """
    return bilinear(values, src_lat, src_lon, grid.lat, grid.lon, valid=valid)


def reduced_gaussian_to_grid(values: np.ndarray, lats: np.ndarray, lons: np.ndarray, grid: Grid, *,
                             valid: np.ndarray | None = None) -> np.ndarray:
    """Interpolate a reduced Gaussian field (e.g. ERA-Interim N128) onto ``grid``'s cell centres.

    values: (..., npoints); lats, lons: (npoints,) degrees of every point (as cfgrib/eccodes give
    them; points of one row share one latitude, each row spans 360° evenly). Method: linear
    interpolation in longitude along the two Gaussian rows that bracket the target latitude (each row
    periodic, with its own number of points), then linear in latitude between the two rows; poleward
    of the outermost rows the outermost row is used. Only valid neighbours count, renormalised.
    Returns float64 (..., grid.nlat, grid.nlon).
    """
    vals = np.asarray(values, dtype=np.float64)
    lats = np.asarray(lats, dtype=np.float64)
    lons = np.asarray(lons, dtype=np.float64)
    if lats.shape != lons.shape or lats.ndim != 1 or vals.shape[-1:] != lats.shape:
        raise SmrayError(f"regrid: reduced Gaussian values {vals.shape} do not match latitude {lats.shape} "
                         f"and longitude {lons.shape} per point")
    ok_all = np.isfinite(vals)
    if valid is not None:
        ok_all = ok_all & np.broadcast_to(np.asarray(valid, dtype=bool), vals.shape)
    _, first, row_of = np.unique(np.round(lats, 6), return_index=True, return_inverse=True)
    row_lat = lats[first]  # points of a row share one latitude; grouping tolerates 1e-6° noise
    if row_lat.size < 2:
        raise SmrayError("regrid: reduced Gaussian grid needs at least 2 latitude rows")
    lw = _lat_weights(row_lat, grid.lat, clamp=True)
    nx = grid.nlon
    rows_needed = np.unique(np.concatenate([lw.i0, lw.i1]))
    lead = vals.shape[:-1]
    flat_v = vals.reshape(-1, vals.shape[-1])
    flat_ok = ok_all.reshape(flat_v.shape)
    num = np.zeros((flat_v.shape[0], row_lat.size, nx))
    den = np.zeros((flat_v.shape[0], row_lat.size, nx))
    for r in rows_needed:
        idx = np.nonzero(row_of == r)[0]
        if idx.size < 2:
            raise SmrayError(f"regrid: reduced Gaussian row at {row_lat[r]:.3f}° has fewer than 2 points")
        xw = _lon_weights(lons[idx], grid.lon, periodic=True)
        j0, j1 = idx[xw.i0], idx[xw.i1]
        ok0, ok1 = flat_ok[:, j0], flat_ok[:, j1]
        a0, a1 = ok0 * xw.w0, ok1 * xw.w1
        num[:, r] = np.where(ok0, flat_v[:, j0], 0.0) * a0 + np.where(ok1, flat_v[:, j1], 0.0) * a1
        den[:, r] = a0 + a1
    out = _combine_rows(num, den, lw)
    return out.reshape(lead + out.shape[-2:])


def block_mean(values: np.ndarray, factor: int) -> np.ndarray:
    """Mean over non-overlapping ``factor × factor`` blocks of the last two axes, ignoring NaN.

    values: (..., nlat, nlon) with nlat and nlon multiples of ``factor``. Returns float64
    (..., nlat/factor, nlon/factor); NaN where a block holds no finite value. On a cell-centre grid
    the result is the cell-centre grid ``factor`` times coarser (e.g. 0.25° → 0.75° for factor 3).
    """
    vals = np.asarray(values, dtype=np.float64)
    if not isinstance(factor, (int, np.integer)) or isinstance(factor, bool) or factor < 1:
        raise SmrayError(f"block_mean: factor must be a positive integer, got {factor!r}")
    if vals.ndim < 2 or vals.shape[-2] % factor or vals.shape[-1] % factor:
        raise SmrayError(f"block_mean: shape {vals.shape} is not divisible into {factor}x{factor} blocks")
    ny, nx = vals.shape[-2] // factor, vals.shape[-1] // factor
    blocks = vals.reshape(vals.shape[:-2] + (ny, factor, nx, factor))
    ok = np.isfinite(blocks)
    total = np.where(ok, blocks, 0.0).sum(axis=(-3, -1))
    count = ok.sum(axis=(-3, -1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)
