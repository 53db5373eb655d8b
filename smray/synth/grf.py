"""Gaussian smoothing on a lat/lon grid and Gaussian random fields (physics.md §2).

Smoothing is separable: along latitude with ``scipy.ndimage.gaussian_filter1d`` (σ in cells is the
same on every row), along longitude with an FFT per row whose σ in cells grows as 1/cos φ, so a
length scale in km stays the same at every latitude. On a grid spanning all longitudes the
longitude filter wraps around; on a regional window the rows are mirror-padded.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter1d

from smray.grid import Grid

KM_PER_DEGREE = 111.195
#: cos φ is floored here so the longitude σ stays finite at the poles.
MIN_COS_LAT = 0.02


def lon_sigma_cells(grid: Grid, sigma_km: float) -> np.ndarray:
    """σ along longitude in cells for each row (nlat,), for a length ``sigma_km``."""
    coslat = np.maximum(np.cos(np.deg2rad(grid.lat)), MIN_COS_LAT)
    return sigma_km / (grid.cell_km() * coslat)


def smooth_lon(field: np.ndarray, sigma_cells: np.ndarray | float, periodic: bool) -> np.ndarray:
    """Gaussian filter along the last axis with a per-row σ (cells), shape (..., nlat, nlon).

    Done in Fourier space: cost does not depend on σ. Non-periodic rows are mirror-padded.
    """
    field = np.asarray(field, dtype=np.float64)
    nlon = field.shape[-1]
    sig = np.broadcast_to(np.asarray(sigma_cells, dtype=np.float64), field.shape[-2:-1])
    if periodic:
        work, n = field, nlon
    else:
        work = np.concatenate([field, field[..., ::-1]], axis=-1)  # even extension: no edge jump
        n = 2 * nlon
    k = np.fft.rfftfreq(n)  # cycles per cell
    transfer = np.exp(-2.0 * (np.pi * k[None, :] * sig[:, None]) ** 2)  # (nlat, nk)
    out = np.fft.irfft(np.fft.rfft(work, axis=-1) * transfer, n=n, axis=-1)
    return out[..., :nlon]


def smooth(field: np.ndarray, grid: Grid, sigma_lat_km: float, sigma_lon_km: float | None = None) -> np.ndarray:
    """Gaussian smoothing of (..., nlat, nlon) ``field`` with σ given in km along each axis."""
    if sigma_lon_km is None:
        sigma_lon_km = sigma_lat_km
    out = np.asarray(field, dtype=np.float64)
    s_lat = sigma_lat_km / grid.cell_km()
    if s_lat > 0.05:
        out = gaussian_filter1d(out, s_lat, axis=-2, mode="reflect", truncate=4.0)
    if sigma_lon_km > 0:
        out = smooth_lon(out, lon_sigma_cells(grid, sigma_lon_km), grid.is_periodic)
    return out


def grf(rng: np.random.Generator, grid: Grid, length_km: float, n: int | None = None) -> np.ndarray:
    """A standardised Gaussian random field with correlation exp(−d²/2L²), L = ``length_km``.

    White noise filtered with σ = L/√2 along each axis, then standardised per field to mean 0 and
    standard deviation 1. Returns (nlat, nlon), or (n, nlat, nlon) when ``n`` is given.
    """
    shape = grid.shape if n is None else (n, *grid.shape)
    z = smooth(rng.standard_normal(shape), grid, length_km / np.sqrt(2.0))
    axes = (-2, -1)
    z -= z.mean(axis=axes, keepdims=True)
    z /= z.std(axis=axes, keepdims=True) + 1e-12
    return z.astype(np.float32)


def ar1(previous: np.ndarray, innovation: np.ndarray, rho: float) -> np.ndarray:
    """One step of Z_t = ρ Z_{t−1} + √(1−ρ²) ε (keeps unit variance)."""
    return (rho * previous + np.sqrt(1.0 - rho * rho) * innovation).astype(np.float32)
