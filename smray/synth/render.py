"""Render one day of the twin: geophysical state → top-of-atmosphere brightness temperatures as
the sensor sees them, and the reference analyses as ERA-Interim stores them.

Pure functions of (state, static fields, grid, seed): no Ray, no storage. :mod:`smray.synth.twin`
wires them into tasks and writes the files.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import NamedTuple

import numpy as np
from scipy.interpolate import RegularGridInterpolator
from scipy.ndimage import distance_transform_edt, uniform_filter

from smray.grid import Grid, surface_fractions
from smray.synth import orbit, physics, sensor
from smray.synth.fields import StaticFields
from smray.synth.grf import grf
from smray.synth.model import PASSES, DayState, PassState

#: Sensor bands → JAXA L3 product band codes.
BAND_CODES = {"C": "06", "X": "10"}
#: Channels in the order the cube uses them.
CHANNELS = ("06H", "06V", "10H", "10V")
#: Physically possible range kept for brightness temperatures, K.
TB_RANGE = (2.7, 340.0)
#: Mean wind speed and its spread over water, m/s.
WIND_MEAN, WIND_SD = 7.0, 3.0
LAKE_MIN_K = 273.15
ERA_SEA_VALUE = 0.0026  #: what ERA's swvl1 holds over the sea (not a fill), m³/m³


def day_rng(seed: int, date: dt.date, stream: int) -> np.random.Generator:
    """Independent, order-free random stream per (seed, day, purpose)."""
    return np.random.default_rng([seed, 3, orbit.day_index(date), stream])


def render_pass(state: PassState, day: DayState, static: StaticFields, grid: Grid,
                rfi: sensor.RfiSources, rng: np.random.Generator, observed: np.ndarray
                ) -> dict[str, np.ndarray]:
    """Brightness temperatures (K, float32 (nlat, nlon), NaN where not observed) of one pass,
    keyed by channel ('06H', '06V', '10H', '10V'), plus 'rfi_06h' (the C-band H RFI added, K)."""
    wind = np.clip(WIND_MEAN + WIND_SD * grf(rng, grid, 500.0), 0.0, None)
    t_lake = np.maximum(state.t_air, LAKE_MIN_K)
    f_soil = static.land * (1.0 - day.wetland)
    f_water_in = static.lake + static.land * day.wetland
    out: dict[str, np.ndarray] = {}
    for band, code in BAND_CODES.items():
        land_h, land_v = physics.land_tb(state.sm, static.sand, static.clay, static.rho_b, state.t_soil,
                                         state.t_deep, state.t_air, day.tau_c, static.roughness_h, band,
                                         frozen=state.frozen, swe_mm=state.swe_mm, wet_snow=state.wet_snow,
                                         tau_ratio=static.tau_ratio)
        lake_h, lake_v = physics.water_tb(t_lake, state.t_air, band, ocean=False, wind_ms=wind)
        sea_h, sea_v = physics.water_tb(static.sst, state.t_air, band, ocean=True, wind_ms=wind)
        d_h, d_v = sensor.rfi_increment(rfi, grid, band, rng)
        for pol, land_tb, lake_tb, sea_tb, d_rfi in (("H", land_h, lake_h, sea_h, d_h),
                                                      ("V", land_v, lake_v, sea_v, d_v)):
            scene = f_soil * land_tb + f_water_in * lake_tb + static.ocean * sea_tb + d_rfi
            tb = sensor.add_noise(sensor.footprint_blur(scene, grid, band), band, rng)
            tb = np.clip(tb, *TB_RANGE)
            out[f"{code}{pol}"] = np.where(observed, tb, np.nan).astype(np.float32)
            if band == "C" and pol == "H":
                out["rfi_06h"] = sensor.footprint_blur(d_rfi, grid, band).astype(np.float32)
    return out


def render_day(day: DayState, static: StaticFields, grid: Grid, seed: int,
               rfi: sensor.RfiSources) -> dict[str, dict[str, np.ndarray]]:
    """Both passes of one day: {pass: {channel: TB}} (see :func:`render_pass`)."""
    cover = orbit.coverage(grid, orbit.day_index(day.date))
    return {p: render_pass(day.passes[p], day, static, grid, rfi, day_rng(seed, day.date, i), cover[i])
            for i, p in enumerate(PASSES)}


# --------------------------------------------------------------------------------------------
# The ERA-Interim-like reference
# --------------------------------------------------------------------------------------------
ANALYSIS_HOURS = (0, 6, 12, 18)


def analysis_fields(prev: DayState, day: DayState, nxt: DayState, grid: Grid, attr: str = "reference"
                    ) -> np.ndarray:
    """The four 00/06/12/18 UTC analyses of ``day`` at full resolution, float32 (4, nlat, nlon), of
    the :class:`PassState` field ``attr`` ('reference' → swvl1, 't_soil' → stl1).

    Each cell holds the state of its latest local step (01:30 → the descending step's
    value, 13:30 → the ascending one), so the analyses follow local time like a land model does.
    Needs the neighbouring days because local time crosses the UTC date line.
    """
    lon = grid.lon[None, :] * np.ones((grid.nlat, 1))
    days = {-1: prev, 0: day, 1: nxt}
    out = np.empty((len(ANALYSIS_HOURS), *grid.shape), np.float32)
    for k, hour in enumerate(ANALYSIS_HOURS):
        local = hour + lon / 15.0
        offset = np.floor(local / 24.0).astype(int)
        lh = local - 24.0 * offset
        value = np.zeros(grid.shape, np.float32)
        for off in (-1, 0, 1):
            here = offset == off
            if not here.any():
                continue
            d = days[off]
            value = np.where(here & (lh >= 13.5), getattr(d.passes["A"], attr), value)
            value = np.where(here & (lh >= 1.5) & (lh < 13.5), getattr(d.passes["D"], attr), value)
            if off - 1 >= -1:
                value = np.where(here & (lh < 1.5), getattr(days[off - 1].passes["A"], attr), value)
        out[k] = value
    return out


def era_grid(res: float) -> tuple[np.ndarray, np.ndarray]:
    """Point-registered reference grid at 3× the twin's spacing (0.75° for 0.25°): latitudes
    90 → −90 including the poles, longitudes 0 → 360 − Δ, like ERA-Interim's regular grids."""
    step = 3 * res
    nlat = round(180 / step) + 1
    nlon = round(360 / step)
    return 90.0 - step * np.arange(nlat), step * np.arange(nlon)


def degrade_to_era(fine: np.ndarray, land: np.ndarray, grid: Grid, area: EraArea | None = None) -> np.ndarray:
    """Reference fields (…, nlat, nlon) on ``grid`` → the global ERA point grid: 3×3 block-mean
    resolution over land (ocean cells excluded), bilinear to the ERA points; NaN where the window
    has no land or lies outside a regional grid. Returns float32 (…, nlat_era, nlon_era).

    With ``area`` (:func:`era_area`) → the area's points instead, (…, area.lat.size, area.lon.size):
    points inside the grid get the same values as on the global point grid, and every row/column
    outside it repeats the nearest row/column inside (``area.src_rows``/``src_cols``); when no row
    (column) lies inside, points are sampled at the nearest cell centre."""
    lat_e, lon_e = era_grid(grid.res)
    if area is not None:
        lat_e, lon_e = lat_e[area.rows], lon_e[area.cols]
    is_land = (land >= 0.5).astype(np.float64)
    lead = fine.shape[:-2]
    flat = fine.reshape(-1, *grid.shape).astype(np.float64)
    mode = "wrap" if grid.is_periodic else "nearest"
    weight = uniform_filter(is_land, size=3, mode=mode)
    # Sample cell-centre fields at ERA points: extend by a wrapped column for periodic grids.
    glat = grid.lat[::-1]  # ascending for the interpolator
    glon = grid.lon
    if grid.is_periodic:
        glon = np.concatenate([glon[-1:] - 360.0, glon, glon[:1] + 360.0])
    lon_q = ((lon_e + 180.0) % 360.0) - 180.0
    if area is not None and not grid.is_periodic:  # beyond the cell centres: the nearer end centre
        beyond = (lon_q < glon[0]) | (lon_q > glon[-1])
        to_first = np.abs((lon_q - glon[0] + 180.0) % 360.0 - 180.0)
        to_last = np.abs((lon_q - glon[-1] + 180.0) % 360.0 - 180.0)
        lon_q = np.where(beyond, np.where(to_first <= to_last, glon[0], glon[-1]), lon_q)
    lat_q = np.clip(lat_e, glat[0], glat[-1])
    qlat, qlon = np.meshgrid(lat_q, lon_q, indexing="ij")
    if area is None:
        inside = (qlon >= glon[0]) & (qlon <= glon[-1]) & (lat_e[:, None] >= grid.bounds[1]) & (
            lat_e[:, None] <= grid.bounds[3])
    else:
        inside = np.ones(qlat.shape, bool)
    pts = np.stack([qlat[inside], qlon[inside]], axis=-1)

    def sample(field: np.ndarray) -> np.ndarray:
        f = field[::-1]
        if grid.is_periodic:
            f = np.concatenate([f[:, -1:], f, f[:, :1]], axis=1)
        interp = RegularGridInterpolator((glat, glon), f, bounds_error=False, fill_value=np.nan)
        res = np.full(qlat.shape, np.nan)
        res[inside] = interp(pts)
        return res

    w_e = sample(weight)
    out = np.empty((flat.shape[0], lat_e.size, lon_e.size), np.float32)
    for i, f in enumerate(flat):
        num = uniform_filter(np.where(is_land > 0, f, 0.0), size=3, mode=mode)
        val = sample(num) / np.where(w_e > 1e-6, w_e, np.nan)
        out[i] = val
    out = out.reshape(*lead, lat_e.size, lon_e.size)
    if area is not None:
        out = out[..., area.src_rows, :][..., area.src_cols]
    return out


def era_land_sea_mask(res: float) -> np.ndarray:
    """Land–sea mask (0–1) on the ERA point grid: land(+lake) fraction of the surrounding
    3×3 block of the twin's global grid, sampled at the points."""
    g = Grid(res)
    frac = surface_fractions(g)
    land = (frac["land"] + frac["lake"]).astype(np.float64)
    lsm = degrade_to_era(land, np.ones_like(land), g)
    return np.clip(np.nan_to_num(lsm, nan=0.0), 0.0, 1.0).astype(np.float32)


def era_analyses_for_file(analyses_era: np.ndarray, lsm: np.ndarray) -> np.ndarray:
    """Apply ERA's conventions: sea points hold ~0 (not a fill); land points with no value stay
    missing (NaN → the file's fill value)."""
    return np.where(lsm[None] >= 0.5, analyses_era, ERA_SEA_VALUE).astype(np.float32)


class EraArea(NamedTuple):
    """An area retrieval (MARS/CDS ``area=N/W/S/E``) of the twin's ERA point grid for a regional grid:
    the points of the global ERA lattice covering the grid's bounds plus :data:`ERA_AREA_MARGIN`
    points on every side (clipped at the poles; all longitudes when the cover spans 360°).

    ``lat`` (north first) and ``lon`` (increasing; the grid's −180..180 convention, +360 when the
    cover starts west of −180°) are the file's axes; ``rows``/``cols`` index them in
    :func:`era_grid`'s global arrays; ``src_rows``/``src_cols`` index, per area row/column, the area
    row/column whose values it takes: itself inside the grid (rows within its bounds, columns within
    its outer cell centres, the points the global file holds), else the nearest one inside."""

    lat: np.ndarray
    lon: np.ndarray
    rows: np.ndarray
    cols: np.ndarray
    src_rows: np.ndarray
    src_cols: np.ndarray


#: ERA points added on every side of the points covering a regional grid, so bilinear regridding
#: onto each cell of the grid has neighbours all round.
ERA_AREA_MARGIN = 1


def era_area(grid: Grid) -> EraArea:
    """The ERA area retrieval that covers ``grid`` (see :class:`EraArea`)."""
    lat_g, lon_g = era_grid(grid.res)
    step = 3 * grid.res
    w, s, e, n = grid.bounds
    top = round(90 / step)  # row of latitude 0
    k_s = math.floor(s / step + 1e-9) - ERA_AREA_MARGIN
    k_n = math.ceil(n / step - 1e-9) + ERA_AREA_MARGIN
    rows = np.arange(max(0, top - k_n), min(lat_g.size - 1, top - k_s) + 1)
    k_w = math.floor(w / step + 1e-9) - ERA_AREA_MARGIN
    k_e = math.ceil(e / step - 1e-9) + ERA_AREA_MARGIN
    lon_in = np.ones(lon_g.size, bool)
    if not grid.is_periodic:
        lon_q = ((lon_g + 180.0) % 360.0) - 180.0
        lon_in = (lon_q >= grid.lon[0]) & (lon_q <= grid.lon[-1])
    circle = grid.is_periodic or k_e - k_w + 1 >= lon_g.size
    if circle:
        cols, lon = np.arange(lon_g.size), lon_g.copy()
    else:
        ks = np.arange(k_w, k_e + 1)
        cols = ks % lon_g.size
        lon = ks * step + (360.0 if ks[0] * step < -180.0 else 0.0)
    lat_in = (lat_g >= s) & (lat_g <= n)
    return EraArea(lat_g[rows], lon, rows, cols, _nearest_inside(lat_in[rows], circular=False),
                   _nearest_inside(lon_in[cols], circular=circle))


def _nearest_inside(inside: np.ndarray, circular: bool) -> np.ndarray:
    """Per position, the nearest position (index distance, wrapping when ``circular``) where
    ``inside`` holds; every position itself when none does."""
    idx = np.arange(inside.size)
    good = np.nonzero(inside)[0]
    if good.size == 0:
        return idx
    d = np.abs(idx[:, None] - good[None, :])
    if circular:
        d = np.minimum(d, inside.size - d)
    return good[np.argmin(d, axis=1)]


def fill_land_gaps(fields: np.ndarray, lsm: np.ndarray) -> np.ndarray:
    """Land points (``lsm`` ≥ 0.5) of (…, nlat, nlon) ``fields`` with no value in some field take
    every field's value at the nearest point (index distance) that has them all, as an area
    retrieval holds values over all its land. Unchanged when no point has values."""
    ok = np.isfinite(fields).reshape(-1, *lsm.shape).all(axis=0)
    gap = (lsm >= 0.5) & ~ok
    if not gap.any() or not ok.any():
        return fields
    near = distance_transform_edt(~ok, return_distances=False, return_indices=True)
    out = fields.copy()
    out[..., gap] = fields[..., near[0][gap], near[1][gap]]
    return out
