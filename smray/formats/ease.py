"""EASE-Grid 1.0 global ("ML", 25 km) geolocation and area-weighted regridding (docs/formats.md §b).

The projection is taken from PROJ through pyproj, as the EPSG registry defines it: **EPSG:3410,
"NSIDC EASE-Grid Global"** (cylindrical equal-area on the authalic sphere R = 6371228 m, true
scale at ±30°). Nothing of the projection is typed in here. The *grid* is NSIDC's global 25 km
EASE-Grid 1.0 (Brodzik & Knowles, "EASE-Grid: a versatile set of equal-area projections and
grids", and the NSIDC-0301 user guide): 1383 columns × 586 rows, row 0 at the north edge,
column 0 at the 180° meridian (west edge), the map origin (x = 0, y = 0) between rows 292 and 293
and on the centre of column 691. The cell size is derived from the projection: the 1383 columns
span the equator exactly, so a cell is 2·x(180°E)/1383 ≈ 25 067.525 m.

Regridding between the EASE grid and a regular latitude/longitude :class:`~smray.grid.Grid` is
**area-weighted on the sphere**: both grids are separable in (latitude, longitude) (EASE rows are
latitude bands, its columns meridian bands of 360/1383°), and the area of the intersection of two
cells is (longitude overlap) × (overlap of sin latitude), so the weights are two sparse overlap
matrices. NaN cells carry no weight; an output cell is NaN where less than ``min_fraction`` of its
area is covered by valid input.
"""

from __future__ import annotations

import functools

import numpy as np

from smray.errors import SmrayError
from smray.grid import Grid

#: EPSG code of the EASE-Grid 1.0 global cylindrical equal-area projection (NSIDC).
EPSG = 3410
NROWS = 586  #: rows of the global 25 km grid (NSIDC-0301 "ML", AE_Land3)
NCOLS = 1383  #: columns of the global 25 km grid
SHAPE = (NROWS, NCOLS)


def _pyproj():
    try:
        import pyproj
    except ImportError as err:  # pragma: no cover - pyproj is a pinned dependency
        raise ImportError("EASE-Grid geolocation needs pyproj (pip install pyproj)") from err
    return pyproj


@functools.lru_cache(maxsize=1)
def _transformers():
    pyproj = _pyproj()
    fwd = pyproj.Transformer.from_crs(4326, EPSG, always_xy=True)
    inv = pyproj.Transformer.from_crs(EPSG, 4326, always_xy=True)
    return fwd, inv


@functools.lru_cache(maxsize=1)
def cell_size_m() -> float:
    """Cell size of the 25 km grid in metres: the equator's projected length / 1383."""
    fwd, _ = _transformers()
    x180, _ = fwd.transform(180.0, 0.0)
    return 2.0 * float(x180) / NCOLS


def xy_to_rowcol(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Fractional (row, col) of projected metres; cell centres at integer indices."""
    c = cell_size_m()
    col = np.asarray(x, dtype=np.float64) / c + (NCOLS - 1) / 2
    row = (NROWS / 2 - 0.5) - np.asarray(y, dtype=np.float64) / c
    return row, col


def latlon_to_rowcol(lat: np.ndarray, lon: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Fractional (row, col) of (lat, lon) degrees on the global 25 km grid (pyproj forward)."""
    fwd, _ = _transformers()
    lon = ((np.asarray(lon, dtype=np.float64) + 180.0) % 360.0) - 180.0
    x, y = fwd.transform(lon, np.asarray(lat, dtype=np.float64))
    return xy_to_rowcol(np.asarray(x), np.asarray(y))


def rowcol_to_latlon(row: np.ndarray, col: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(lat, lon) degrees of fractional (row, col) (pyproj inverse); NaN off the sphere."""
    _, inv = _transformers()
    c = cell_size_m()
    x = (np.asarray(col, dtype=np.float64) - (NCOLS - 1) / 2) * c
    y = ((NROWS / 2 - 0.5) - np.asarray(row, dtype=np.float64)) * c
    lon, lat = inv.transform(x, y)
    lat = np.where(np.isfinite(lat) & (np.abs(np.asarray(lat)) <= 90.0), lat, np.nan)
    return np.asarray(lat, dtype=np.float64), np.asarray(lon, dtype=np.float64)


@functools.lru_cache(maxsize=1)
def centres() -> tuple[np.ndarray, np.ndarray]:
    """(lat of each row, lon of each column) of the cell centres, degrees (read-only arrays)."""
    lat, _ = rowcol_to_latlon(np.arange(NROWS, dtype=np.float64), np.full(NROWS, (NCOLS - 1) / 2))
    _, lon = rowcol_to_latlon(np.full(NCOLS, NROWS / 2 - 0.5), np.arange(NCOLS, dtype=np.float64))
    for a in (lat, lon):
        a.setflags(write=False)
    return lat, lon


@functools.lru_cache(maxsize=1)
def edges() -> tuple[np.ndarray, np.ndarray]:
    """(lat of the NROWS+1 row edges, north first; lon of the NCOLS+1 column edges, west first)."""
    lat, _ = rowcol_to_latlon(np.arange(NROWS + 1, dtype=np.float64) - 0.5, np.zeros(NROWS + 1))
    _, lon = rowcol_to_latlon(np.zeros(NCOLS + 1), np.arange(NCOLS + 1, dtype=np.float64) - 0.5)
    for a in (lat, lon):
        a.setflags(write=False)
    return lat, lon


def lat_limit() -> float:
    """Latitude of the grid's outer edge (top of row 0), about 86.72°."""
    return float(edges()[0][0])


# --------------------------------------------------------------------------------------------
# Area weights
# --------------------------------------------------------------------------------------------
def overlap_matrix(dst_edges: np.ndarray, src_edges: np.ndarray):
    """Sparse (n_dst, n_src) matrix of the lengths by which interval ``i`` of ``dst_edges``
    overlaps interval ``j`` of ``src_edges`` (both monotonic, either direction)."""
    import scipy.sparse as sp

    d = np.sort(np.asarray(dst_edges, dtype=np.float64))
    s = np.sort(np.asarray(src_edges, dtype=np.float64))
    flip_d = dst_edges[0] > dst_edges[-1]
    flip_s = src_edges[0] > src_edges[-1]
    rows, cols, vals = [], [], []
    nd, ns = len(d) - 1, len(s) - 1
    j = 0
    for i in range(nd):
        lo, hi = d[i], d[i + 1]
        while j < ns and s[j + 1] <= lo:
            j += 1
        k = j
        while k < ns and s[k] < hi:
            ov = min(hi, s[k + 1]) - max(lo, s[k])
            if ov > 0:
                rows.append(nd - 1 - i if flip_d else i)
                cols.append(ns - 1 - k if flip_s else k)
                vals.append(ov)
            k += 1
    return sp.csr_matrix((vals, (rows, cols)), shape=(nd, ns))


def _latlon_edges(grid: Grid) -> tuple[np.ndarray, np.ndarray]:
    """Global lat edges (north first) and lon edges (west first) of ``grid``'s parent grid."""
    lat = 90.0 - grid.res * np.arange(grid.global_nlat + 1)
    lon = -180.0 + grid.res * np.arange(grid.global_nlon + 1)
    return lat, lon


@functools.lru_cache(maxsize=8)
def _weights(res: float, to_ease: bool):
    """(lat weights, lon weights, full cell areas) for the global grid at ``res`` ↔ EASE."""
    lat_ll, lon_ll = _latlon_edges(Grid(res))
    lat_e, lon_e = edges()
    s_ll, s_e = np.sin(np.deg2rad(lat_ll)), np.sin(np.deg2rad(lat_e))
    if to_ease:
        wr, wc = overlap_matrix(s_e, s_ll), overlap_matrix(lon_e, lon_ll)
        area = np.abs(np.diff(s_e))[:, None] * np.abs(np.diff(lon_e))[None, :]
    else:
        wr, wc = overlap_matrix(s_ll, s_e), overlap_matrix(lon_ll, lon_e)
        area = np.abs(np.diff(s_ll))[:, None] * np.abs(np.diff(lon_ll))[None, :]
    return wr, wc, area


def _apply(values: np.ndarray, wr, wc, area: np.ndarray, min_fraction: float) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64)
    valid = np.isfinite(values)
    filled = np.where(valid, values, 0.0)
    num = (wc @ (wr @ filled).T).T
    cover = (wc @ (wr @ valid.astype(np.float64)).T).T
    with np.errstate(invalid="ignore", divide="ignore"):
        out = num / cover
    out[cover < min_fraction * area - 1e-15] = np.nan
    return out


def ease_to_grid(values: np.ndarray, grid: Grid | None = None, min_fraction: float = 0.5) -> np.ndarray:
    """Area-weighted mean of a (586, 1383) EASE field on ``grid`` (default 0.25° global), float32.

    Each output cell averages the EASE cells it overlaps, weighted by the spherical area of the
    overlap; NaN where valid EASE cells cover less than ``min_fraction`` of its area (so cells
    poleward of the grid's ±86.72° edge are NaN)."""
    grid = grid or Grid(0.25)
    values = np.asarray(values)
    if values.shape != SHAPE:
        raise SmrayError(f"EASE-Grid field has shape {values.shape}, expected {SHAPE}")
    wr, wc, area = _weights(grid.res, False)
    out = _apply(values, wr, wc, area, min_fraction)
    return out[grid.window].astype(np.float32)


def grid_to_ease(values: np.ndarray, grid: Grid | None = None, min_fraction: float = 0.5) -> np.ndarray:
    """The other direction (used to write EASE files from lat/lon fields): area-weighted mean of a
    global ``grid`` field (or a window of it, NaN outside) on the (586, 1383) EASE grid, float32."""
    grid = grid or Grid(0.25)
    values = np.asarray(values)
    if values.shape == grid.shape and not grid.is_global:
        values = grid.embed(values, np.nan)
    if values.shape != grid.global_shape:
        raise SmrayError(f"field has shape {values.shape}, expected {grid.shape} or the global {grid.global_shape}")
    wr, wc, area = _weights(grid.res, True)
    return _apply(values, wr, wc, area, min_fraction).astype(np.float32)


__all__ = ["EPSG", "NROWS", "NCOLS", "SHAPE", "cell_size_m", "latlon_to_rowcol", "rowcol_to_latlon", "centres",
           "edges", "lat_limit", "overlap_matrix", "ease_to_grid", "grid_to_ease"]
