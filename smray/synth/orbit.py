"""AMSR-E-like swath coverage from a simple sun-synchronous orbit (physics.md §3 "Orbit").

Geometry
--------
Aqua flies a circular, sun-synchronous orbit: inclination i = 98.2°, 233 orbits in a 16-day
ground-track repeat, ascending ('A') equator crossing at 13:30 and descending ('D') at 01:30 local
solar time. With the argument of latitude u = 2πt/P (t in seconds since 00:00 UTC of day 0 of the
cycle, u = 0 at an ascending node) the sub-satellite point is

    lat = asin(sin i · sin u)
    lon = λ₀ + (Ω̇ − ω_E)·t + atan2(cos i · sin u, cos u)

with ω_E = 2π/86164 s (sidereal Earth rotation) and Ω̇ = 2π/365.24 d (nodal precession, equal to the
mean sun's motion, which is what makes the orbit sun-synchronous). The satellite is ascending where
cos u > 0. Because the node drifts westward at exactly the rate the mean sun does, the local solar
time of every ascending node is the same; t = 0 is put on an ascending node at 00:00 UTC, so
λ₀ = 13.5 h × 15°/h = 202.5° (= 157.5°W) puts it at 13:30 local mean solar time, and the
descending node half an orbit later falls at 01:30.

P is taken as exactly 16 d / 233 = 5933.05 s (98.88 min, Aqua's nodal period); physics.md rounds it to
98.8 min, which would leave the 16-day cycle open by ~0.2 orbit (a ~5° jump in the tracks when the
masks wrap from day 15 to day 0, and 2-day composites across the wrap falling to ~92 % at the
equator). With the exact value the ground track repeats to < 0.01° per cycle.

Coverage
--------
The track is sampled every 4 s. A cell (its centre) is observed on a pass when it lies within half
the 1445 km swath (722.5 km great-circle distance, Earth radius 6371 km) of a track sample of that
pass: a ``scipy.spatial.cKDTree`` of the samples' unit vectors is queried with the equivalent chord
2·sin(d/2R). The time of the nearest sample is kept as the cell's observation time.

Conventions
-----------
* Days are UTC days. Masks are (16, 2, nlat, nlon): [day in cycle, pass (0 = ascending 'A',
  1 = descending 'D'), lat, lon]. A pass-day holds the track samples of that pass whose time falls in
  that UTC day, so orbits straddling midnight are split between two days.
* An absolute day index (e.g. days since :data:`EPOCH`, 2000-01-01) maps to ``day_index % 16``.
  Since the orbit is sun-synchronous the local times do not depend on the date.
* Local time is local *mean* solar time, UTC + lon/15° (no equation of time).
* Masks are computed on the global grid of the requested resolution and cached, one file per
  resolution under the smray cache directory (``SMRAY_CACHE_DIR``, default ``~/.cache/smray``); a
  regional window is sliced out of them, so it sees exactly the global coverage.
"""

from __future__ import annotations

import datetime as _dt
import functools
import operator
import os
from pathlib import Path

import numpy as np
from scipy.spatial import cKDTree

from smray.grid import Grid, cache_dir

#: Days in the ground-track repeat cycle; masks are precomputed for these and cycled.
CYCLE_DAYS = 16
#: Orbits in one repeat cycle.
ORBITS_PER_CYCLE = 233
#: Orbit inclination, degrees.
INCLINATION_DEG = 98.2
#: Nodal period, seconds: exactly 16 d / 233 (98.88 min; physics.md's rounded value is 98.8 min).
PERIOD_S = CYCLE_DAYS * 86400.0 / ORBITS_PER_CYCLE
#: Local mean solar time of the ascending equator crossing, hours (descending: 12 h later, 01:30).
ASCENDING_NODE_LST_H = 13.5
#: Full swath width and the half-width a cell centre must lie within, km.
SWATH_KM = 1445.0
HALF_SWATH_KM = SWATH_KM / 2
#: Track sampling step, seconds.
SAMPLE_S = 4.0
#: Mean Earth radius, km (111.195 km per degree, as in the rest of smray).
EARTH_RADIUS_KM = 6371.0
#: Sidereal Earth rotation and nodal precession rates, rad/s.
OMEGA_EARTH = 2 * np.pi / 86164.0
OMEGA_NODE = 2 * np.pi / (365.24 * 86400.0)
#: Longitude of the ascending node at t = 0 (00:00 UTC of cycle day 0), radians.
LAMBDA0 = np.deg2rad(ASCENDING_NODE_LST_H * 15.0)
#: Pass labels, in the order of the pass axis.
PASSES = ("A", "D")
#: Day 0 of absolute day indices.
EPOCH = _dt.date(2000, 1, 1)

#: Observation times are stored as uint16 in these units (s); this value marks "not observed".
_TIME_UNIT_S = 2
_NO_TIME = np.iinfo(np.uint16).max
_CACHE_VERSION = 1
_PARAMS = np.array([CYCLE_DAYS, ORBITS_PER_CYCLE, INCLINATION_DEG, PERIOD_S, ASCENDING_NODE_LST_H, SWATH_KM,
                    SAMPLE_S, EARTH_RADIUS_KM, OMEGA_EARTH, OMEGA_NODE, _TIME_UNIT_S], dtype=np.float64)


def day_index(day: _dt.date) -> int:
    """Absolute day index of a date: days since :data:`EPOCH` (2000-01-01)."""
    if isinstance(day, _dt.datetime):
        day = day.date()
    return (day - EPOCH).days


def ground_track(t: np.ndarray | float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sub-satellite point at ``t`` seconds after 00:00 UTC of cycle day 0.

    Returns (lat, lon, ascending): degrees north, degrees east wrapped to [−180, 180), bool.
    """
    t = np.asarray(t, dtype=np.float64)
    u = 2 * np.pi * t / PERIOD_S
    inc = np.deg2rad(INCLINATION_DEG)
    lat = np.arcsin(np.sin(inc) * np.sin(u))
    lon = LAMBDA0 + (OMEGA_NODE - OMEGA_EARTH) * t + np.arctan2(np.cos(inc) * np.sin(u), np.cos(u))
    lon_deg = (np.rad2deg(lon) + 180.0) % 360.0 - 180.0
    return np.rad2deg(lat), lon_deg, np.cos(u) > 0


def _unit_vectors(lat_rad: np.ndarray, lon_rad: np.ndarray) -> np.ndarray:
    c = np.cos(lat_rad)
    return np.stack([c * np.cos(lon_rad), c * np.sin(lon_rad), np.sin(lat_rad)], axis=-1)


def _compute(res: float) -> np.ndarray:
    """uint16 (16, 2, nlat, nlon) observation times (UTC s of day / _TIME_UNIT_S) on the global grid."""
    g = Grid(res)
    la, lo = np.meshgrid(np.deg2rad(g.lat), np.deg2rad(g.lon), indexing="ij")
    cells = _unit_vectors(la.ravel(), lo.ravel())
    del la, lo
    n_steps = round(CYCLE_DAYS * 86400 / SAMPLE_S)
    t = np.arange(n_steps, dtype=np.float64) * SAMPLE_S
    lat, lon, ascending = ground_track(t)
    track = _unit_vectors(np.deg2rad(lat), np.deg2rad(lon))
    day = (t // 86400).astype(np.int64)
    chord = 2 * np.sin(HALF_SWATH_KM / EARTH_RADIUS_KM / 2)
    out = np.full((CYCLE_DAYS, 2) + g.shape, _NO_TIME, dtype=np.uint16)
    for d in range(CYCLE_DAYS):
        for p, sel in enumerate((ascending, ~ascending)):
            idx_pts = np.nonzero((day == d) & sel)[0]
            tree = cKDTree(track[idx_pts])
            dist, idx = tree.query(cells, k=1, distance_upper_bound=chord, workers=-1)
            ok = np.isfinite(dist)
            sec = t[idx_pts[idx[ok]]] - d * 86400
            plane = np.full(cells.shape[0], _NO_TIME, dtype=np.uint16)
            plane[ok] = np.round(sec / _TIME_UNIT_S).astype(np.uint16)
            out[d, p] = plane.reshape(g.shape)
    return out


def _cache_path(res: float) -> Path:
    return cache_dir() / f"orbit_swaths_{res:g}deg_v{_CACHE_VERSION}.npz"


def _load(path: Path, key: str, shape: tuple[int, ...]) -> np.ndarray | None:
    try:
        with np.load(path) as npz:
            if not np.array_equal(npz["params"], _PARAMS):
                return None
            arr = npz[key]
    except (OSError, ValueError, KeyError, EOFError):
        return None
    return arr if arr.shape == shape else None


def _build(res: float) -> np.ndarray:
    """Compute the global times, write the cache file atomically, return the times."""
    times = _compute(res)
    masks = np.packbits(times != _NO_TIME, axis=-1)
    path = _cache_path(res)
    tmp = path.with_name(f"{path.stem}.tmp{os.getpid()}.npz")
    try:
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, params=_PARAMS, masks=masks, times=times)
        os.replace(tmp, path)
    except OSError:
        pass  # read-only or full cache directory: keep the result in memory only
    finally:
        tmp.unlink(missing_ok=True)
    return times


@functools.lru_cache(maxsize=2)
def _global_masks(res: float) -> np.ndarray:
    g = Grid(res)
    packed_shape = (CYCLE_DAYS, 2, g.global_nlat, (g.global_nlon + 7) // 8)
    packed = _load(_cache_path(res), "masks", packed_shape)
    if packed is None:
        masks = _build(res) != _NO_TIME
    else:
        masks = np.unpackbits(packed, axis=-1, count=g.global_nlon).astype(bool)
    masks.setflags(write=False)
    return masks


@functools.lru_cache(maxsize=1)
def _global_times(res: float) -> np.ndarray:
    g = Grid(res)
    times = _load(_cache_path(res), "times", (CYCLE_DAYS, 2) + g.global_shape)
    if times is None:
        times = _build(res)
    times.setflags(write=False)
    return times


def _clear_memory_cache() -> None:
    """Forget the masks and times held in memory (the disk cache stays)."""
    _global_masks.cache_clear()
    _global_times.cache_clear()


def swath_masks(grid: Grid) -> np.ndarray:
    """Bool (16, 2, nlat, nlon): [day in cycle, pass (0 = 'A', 1 = 'D'), lat, lon], True = observed.

    Computed once per resolution on the global grid (~8 s at 0.25° on 2 cores), cached on disk, and
    windowed to ``grid``.
    """
    rows, cols = grid.window
    return _global_masks(grid.res)[:, :, rows, cols].copy()


def _cycle_day(day: int) -> int:
    return operator.index(day) % CYCLE_DAYS


def coverage(grid: Grid, day_index: int) -> np.ndarray:
    """Bool (2, nlat, nlon) coverage of the ascending and descending pass on absolute day ``day_index``
    (e.g. days since 2000-01-01, see :func:`day_index`); the cycle day is ``day_index % 16``."""
    rows, cols = grid.window
    return _global_masks(grid.res)[_cycle_day(day_index), :, rows, cols].copy()


def observation_times(grid: Grid) -> np.ndarray:
    """Float32 (16, 2, nlat, nlon) UTC time of observation, seconds after 00:00 UTC of that day,
    NaN where not observed (the time of the nearest track sample, to 4 s)."""
    rows, cols = grid.window
    raw = _global_times(grid.res)[:, :, rows, cols]
    out = raw.astype(np.float32) * _TIME_UNIT_S
    out[raw == _NO_TIME] = np.nan
    return out


def local_solar_time(grid: Grid, day_index: int) -> np.ndarray:
    """Float32 (2, nlat, nlon) local mean solar time of the A and D observations on absolute day
    ``day_index``, hours in [0, 24), NaN where not observed. Near 13:30 (A) and 01:30 (D) at low
    latitudes; ±~25 min across the swath at the equator, spreading toward the poles."""
    rows, cols = grid.window
    raw = _global_times(grid.res)[_cycle_day(day_index), :, rows, cols]
    hours = raw.astype(np.float64) * (_TIME_UNIT_S / 3600.0) + grid.lon / 15.0
    out = np.mod(hours, 24.0).astype(np.float32)
    out[out >= 24.0] = 0.0  # float32 rounding of 23.99999…
    out[raw == _NO_TIME] = np.nan
    return out
