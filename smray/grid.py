"""Regular latitude/longitude cell-centre grids and the land/water fractions on them.

The canonical smray grid is the global 0.25° cell-centre grid of the AMSR L3 and ESA CCI products:
720 rows × 1440 columns, row 0 centred at 89.875°N (north first), column 0 centred at 179.875°W
(longitudes −180 → 180). Coarser grids (any resolution that divides 180° and is a whole number
of 30″ cells) and regional windows of them are used by tests and demos. A regional grid is a window
of its global parent, so it can always be placed back into the global product shape.
"""

from __future__ import annotations

import functools
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from smray.errors import SmrayError

#: Cells per degree of the packaged 30-arc-second land mask (global-land-mask / GLOBE).
MASK_CELLS_PER_DEGREE = 120

#: Lakes the GLOBE mask counts as land, cut out as ellipses (physics.md §2):
#: name → (centre lat, centre lon, half-axis lat, half-axis lon), degrees.
LAKES: dict[str, tuple[float, float, float, float]] = {
    "Caspian": (41.5, 50.5, 5.0, 2.5),
    "Superior": (47.7, -87.5, 0.7, 2.5),
    "Victoria": (-1.0, 33.0, 1.2, 1.3),
    "Baikal": (53.5, 108.0, 2.0, 0.6),
    "Tanganyika": (-6.0, 29.6, 3.0, 0.3),
    "Great Bear": (66.0, -121.0, 1.0, 2.5),
}


@dataclass(frozen=True)
class Grid:
    """A window ``[row0:row1, col0:col1]`` of the global cell-centre grid at ``res`` degrees."""

    res: float = 0.25
    row0: int = 0
    row1: int | None = None
    col0: int = 0
    col1: int | None = None

    def __post_init__(self) -> None:
        check_resolution(self.res)
        if self.row1 is None:
            object.__setattr__(self, "row1", self.global_nlat)
        if self.col1 is None:
            object.__setattr__(self, "col1", self.global_nlon)
        assert self.row1 is not None and self.col1 is not None
        if not (0 <= self.row0 < self.row1 <= self.global_nlat and 0 <= self.col0 < self.col1 <= self.global_nlon):
            raise SmrayError(f"grid window rows {self.row0}:{self.row1}, cols {self.col0}:{self.col1} is outside the "
                             f"{self.global_nlat}x{self.global_nlon} global grid at {self.res} deg")

    # --- sizes -------------------------------------------------------------------------------
    @property
    def global_nlat(self) -> int:
        return round(180 / self.res)

    @property
    def global_nlon(self) -> int:
        return round(360 / self.res)

    @property
    def nlat(self) -> int:
        return int(self.row1) - self.row0  # type: ignore[arg-type]

    @property
    def nlon(self) -> int:
        return int(self.col1) - self.col0  # type: ignore[arg-type]

    @property
    def shape(self) -> tuple[int, int]:
        return (self.nlat, self.nlon)

    @property
    def global_shape(self) -> tuple[int, int]:
        return (self.global_nlat, self.global_nlon)

    @property
    def is_global(self) -> bool:
        return self.shape == self.global_shape

    @property
    def is_periodic(self) -> bool:
        """True when the window spans all longitudes (filters may wrap around)."""
        return self.nlon == self.global_nlon

    @property
    def window(self) -> tuple[slice, slice]:
        """Slices of this window in the global (lat, lon) array."""
        return slice(self.row0, self.row1), slice(self.col0, self.col1)

    # --- coordinates -------------------------------------------------------------------------
    @property
    def lat(self) -> np.ndarray:
        """Cell-centre latitudes in degrees north, north first, shape (nlat,)."""
        rows = np.arange(self.row0, self.row1, dtype=np.float64)
        return 90.0 - (rows + 0.5) * self.res

    @property
    def lon(self) -> np.ndarray:
        """Cell-centre longitudes in degrees east, −180 → 180, shape (nlon,)."""
        cols = np.arange(self.col0, self.col1, dtype=np.float64)
        return -180.0 + (cols + 0.5) * self.res

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """(west, south, east, north) of the window's outer cell edges, degrees."""
        return (-180.0 + self.col0 * self.res, 90.0 - int(self.row1) * self.res,
                -180.0 + int(self.col1) * self.res, 90.0 - self.row0 * self.res)

    def cell_km(self) -> float:
        """North–south size of one cell in km."""
        return self.res * 111.195

    # --- derived grids ------------------------------------------------------------------------
    def global_grid(self) -> Grid:
        return Grid(self.res)

    def subset(self, bbox: tuple[float, float, float, float]) -> Grid:
        """The smallest window of this grid's global parent holding every cell centre inside
        ``bbox`` = (west, south, east, north) in degrees (−180..180, west < east)."""
        west, south, east, north = check_bbox(bbox)
        g = self.global_grid()
        lat, lon = g.lat, g.lon
        rows = np.nonzero((lat >= south) & (lat <= north))[0]
        cols = np.nonzero((lon >= west) & (lon <= east))[0]
        if rows.size == 0 or cols.size == 0:
            raise SmrayError(f"bbox {bbox} holds no cell centre of the {self.res} deg grid")
        return Grid(self.res, int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1)

    def coarsen(self, factor: int) -> Grid:
        """The grid ``factor`` times coarser covering the same window (window edges must align)."""
        if any(v % factor for v in (self.row0, int(self.row1), self.col0, int(self.col1))):
            raise SmrayError(f"grid window is not aligned to a coarsening factor of {factor}")
        return Grid(self.res * factor, self.row0 // factor, int(self.row1) // factor,
                    self.col0 // factor, int(self.col1) // factor)

    def embed(self, values: np.ndarray, fill: float | int) -> np.ndarray:
        """Place (..., nlat, nlon) ``values`` into the global (..., global_nlat, global_nlon) shape."""
        out = np.full(values.shape[:-2] + self.global_shape, fill, dtype=values.dtype)
        out[(..., *self.window)] = values
        return out

    def to_dict(self) -> dict:
        return {"res": self.res, "row0": self.row0, "row1": self.row1, "col0": self.col0, "col1": self.col1}


def check_resolution(res: float) -> float:
    """Validate a grid spacing in degrees: it must divide 180 and be a whole number of 30″ cells."""
    if not isinstance(res, (int, float)) or isinstance(res, bool) or not math.isfinite(res) or res <= 0:
        raise SmrayError(f"res: grid spacing must be a positive number of degrees, got {res!r}")
    n = 180 / res
    cells = res * MASK_CELLS_PER_DEGREE
    if abs(n - round(n)) > 1e-9 or abs(cells - round(cells)) > 1e-9:
        raise SmrayError(f"res: {res} deg does not divide 180 deg into a whole number of rows "
                         f"on the 30-arc-second land mask (try 0.25, 0.5, 1, 2)")
    return float(res)


def check_bbox(bbox: tuple[float, float, float, float] | list[float]) -> tuple[float, float, float, float]:
    """Validate (west, south, east, north) in degrees."""
    if len(bbox) != 4:
        raise SmrayError(f"bbox: expected W,S,E,N (4 numbers), got {bbox!r}")
    west, south, east, north = (float(v) for v in bbox)
    if not (-180 <= west < east <= 180 and -90 <= south < north <= 90):
        raise SmrayError(f"bbox: {bbox!r} is not W,S,E,N with -180<=W<E<=180 and -90<=S<N<=90")
    return west, south, east, north


def canonical() -> Grid:
    """The global 0.25° grid, 720 × 1440."""
    return Grid(0.25)


# --------------------------------------------------------------------------------------------
# Land, lake and ocean fractions from the packaged 30″ GLOBE mask
# --------------------------------------------------------------------------------------------
def cache_dir() -> Path:
    """smray's cache folder (``$SMRAY_CACHE_DIR``, else ``$XDG_CACHE_HOME/smray`` or ``~/.cache/smray``)."""
    root = os.environ.get("SMRAY_CACHE_DIR") or os.path.join(os.environ.get("XDG_CACHE_HOME") or
                                                             os.path.expanduser("~/.cache"), "smray")
    path = Path(root)
    path.mkdir(parents=True, exist_ok=True)
    return path


@functools.lru_cache(maxsize=1)
def _ocean_mask_30s() -> np.ndarray:
    """The GLOBE 30″ mask, bool (21600, 43200), True = ocean; rows from 90°N, cols from 180°W."""
    import global_land_mask

    path = Path(global_land_mask.__file__).with_name("globe_combined_mask_compressed.npz")
    with np.load(path) as npz:
        return npz["mask"]


def _lake_mask_rows(r0: int, r1: int) -> np.ndarray:
    """Bool (r1-r0, 43200) lake ellipses at 30″ for 30″ rows r0:r1."""
    cpd = MASK_CELLS_PER_DEGREE
    lat = 90.0 - (np.arange(r0, r1) + 0.5) / cpd
    lon = -180.0 + (np.arange(360 * cpd) + 0.5) / cpd
    out = np.zeros((r1 - r0, lon.size), dtype=bool)
    for clat, clon, dlat, dlon in LAKES.values():
        rows = np.nonzero(np.abs(lat - clat) <= dlat)[0]
        cols = np.nonzero(np.abs(lon - clon) <= dlon)[0]
        if rows.size == 0:
            continue
        yy = ((lat[rows] - clat) / dlat)[:, None]
        xx = ((lon[cols] - clon) / dlon)[None, :]
        out[np.ix_(rows, cols)] |= yy**2 + xx**2 <= 1.0
    return out


def _compute_fractions(res: float) -> np.ndarray:
    """float32 (3, nlat, nlon): land (lakes excluded), lake, ocean fractions of the global grid."""
    mask = _ocean_mask_30s()
    f = round(res * MASK_CELLS_PER_DEGREE)
    nlat, nlon = round(180 / res), round(360 / res)
    out = np.zeros((3, nlat, nlon), dtype=np.float32)
    band = max(1, 600 // f)  # output rows per pass, bounds memory to ~600 mask rows at a time
    for i0 in range(0, nlat, band):
        i1 = min(nlat, i0 + band)
        ocean = mask[i0 * f:i1 * f]
        lake = _lake_mask_rows(i0 * f, i1 * f) & ~ocean
        land = ~ocean & ~lake
        for k, m in enumerate((land, lake, ocean)):
            out[k, i0:i1] = m.reshape(i1 - i0, f, nlon, f).sum(axis=(1, 3), dtype=np.int32) / (f * f)
    return out


@functools.lru_cache(maxsize=8)
def _global_fractions(res: float) -> np.ndarray:
    path = cache_dir() / f"surface_fractions_{res:g}deg_v1.npy"
    if path.exists():
        try:
            arr = np.load(path)
            if arr.shape == (3, round(180 / res), round(360 / res)):
                return arr
        except (OSError, ValueError):
            pass
    arr = _compute_fractions(res)
    tmp = path.with_suffix(f".tmp{os.getpid()}.npy")
    np.save(tmp, arr)
    os.replace(tmp, path)
    return arr


def surface_fractions(grid: Grid) -> dict[str, np.ndarray]:
    """Land, lake and ocean area fractions (float32, (nlat, nlon), summing to 1) on ``grid``.

    From the packaged 30″ GLOBE mask, with the large lakes of :data:`LAKES` (which the mask counts as
    land) cut out as ellipses before block-averaging. Cached per resolution under ``SMRAY_CACHE_DIR``
    (default ``~/.cache/smray``).
    """
    arr = _global_fractions(grid.res)
    rows, cols = grid.window
    return {"land": arr[0, rows, cols], "lake": arr[1, rows, cols], "ocean": arr[2, rows, cols]}
