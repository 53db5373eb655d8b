"""Static geophysical fields of the twin (physics.md §2): surface fractions, climate, soil texture,
roughness, vegetation peak and the reference model's climatology.

Everything is a float32 array on the twin's grid (nlat, nlon), north first, built deterministically
from ``(grid, seed)``. A regional grid gets its own random fields (they are not a window of the
global twin's), but the same deterministic climate geometry.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
from scipy.ndimage import distance_transform_edt
from scipy.special import ndtr

from smray.grid import Grid, surface_fractions
from smray.synth.grf import grf, smooth

#: Desert boxes (west, south, east, north) in degrees, where MAP is cut to 5–20 %.
DESERTS: dict[str, tuple[float, float, float, float]] = {
    "Sahara": (-15, 15, 35, 30),
    "Arabia": (35, 15, 60, 30),
    "Australia": (120, -32, 145, -20),
    "Gobi-Taklamakan": (75, 37, 110, 45),
    "Kalahari": (12, -28, 25, -18),
    "Atacama": (-72, -28, -68, -18),
}
#: Seasonal wetland regions (west, south, east, north): up to 20 % open water at the wet peak.
WETLANDS: dict[str, tuple[float, float, float, float]] = {
    "boreal-America": (-125, 50, -60, 70),
    "boreal-Eurasia": (25, 55, 140, 70),
    "Amazon": (-75, -10, -50, 3),
    "Congo": (15, -5, 30, 5),
}
#: Regions where the reference's rainfall forcing is well gauged (w=0.85, σ=0.3) or poorly (0.5, 0.8).
GAUGED = {"USA": (-125, 25, -67, 49), "Europe": (-10, 36, 30, 60), "Australia": (113, -39, 154, -11)}
UNGAUGED = {"Africa": (-18, -35, 52, 20), "Amazon": (-80, -20, -40, 8), "Siberia": (60, 50, 180, 75)}

KM_PER_DEG = 111.195


def box_indicator(grid: Grid, boxes: dict[str, tuple[float, float, float, float]],
                  soften_km: float = 0.0) -> np.ndarray:
    """1 inside any of the boxes, 0 outside, optionally softened with a Gaussian of ``soften_km``."""
    lat = grid.lat[:, None]
    lon = grid.lon[None, :]
    out = np.zeros(grid.shape, dtype=np.float64)
    for west, south, east, north in boxes.values():
        out = np.maximum(out, ((lat >= south) & (lat <= north) & (lon >= west) & (lon <= east)).astype(float))
    if soften_km > 0:
        out = np.clip(smooth(out, grid, soften_km), 0.0, 1.0)
    return out


def itcz_latitude(doy: float) -> float:
    """φ_I = 5 + 10 sin(2π(doy − 105)/365), degrees."""
    return 5.0 + 10.0 * np.sin(2 * np.pi * (doy - 105) / 365.0)


@dataclass
class StaticFields:
    """Time-invariant fields; every array is float32 (nlat, nlon) unless noted."""

    land: np.ndarray  #: land area fraction (lakes excluded)
    lake: np.ndarray  #: lake area fraction
    ocean: np.ndarray  #: ocean area fraction
    coast_km: np.ndarray  #: distance to the coast over land, km (0 over the ocean)
    desert: np.ndarray  #: desert indicator 0–1
    map_factor: np.ndarray  #: MAP multiplier (desert cut × e^(0.5 Z_500) × continentality)
    map_annual: np.ndarray  #: mean annual precipitation, mm/yr
    t_ann: np.ndarray  #: annual mean air temperature, K
    seas_amp: np.ndarray  #: seasonal air-temperature amplitude A_s, K
    sand: np.ndarray  #: sand fraction
    clay: np.ndarray  #: clay fraction
    rho_b: np.ndarray  #: bulk density, g/cm³
    theta_sat: np.ndarray  #: porosity / saturation, m³/m³
    wilting_point: np.ndarray  #: Wang–Schmugge wilting point, m³/m³
    theta_min: np.ndarray  #: residual soil moisture of the bucket, m³/m³
    roughness_h: np.ndarray  #: roughness parameter h
    tau_peak: np.ndarray  #: peak C-band vegetation optical depth
    tau_ratio: np.ndarray  #: τ_X / τ_C (1.2 woody … 1.4 herbaceous)
    doy_peak: np.ndarray  #: day of year of peak vegetation
    wet_max: np.ndarray  #: maximum seasonal wetland (open water) fraction of the land
    ref_w: np.ndarray  #: reference forcing: weight of the true rain
    ref_sigma: np.ndarray  #: reference forcing: lognormal error σ
    ref_a: np.ndarray  #: reference climatology offset a
    ref_b: np.ndarray  #: reference climatology gain b
    sst: np.ndarray  #: annual mean water temperature, K

    def arrays(self) -> dict[str, np.ndarray]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def build_static(grid: Grid, seed: int) -> StaticFields:
    """The static fields of the twin on ``grid`` (deterministic for ``seed``)."""
    rng = np.random.default_rng([seed, 1])
    frac = surface_fractions(grid)
    land, lake, ocean = frac["land"], frac["lake"], frac["ocean"]
    lat = grid.lat[:, None] * np.ones((1, grid.nlon))
    sinlat = np.sin(np.deg2rad(lat))

    landish = (land + lake) >= 0.5
    coast_cells = distance_transform_edt(landish)
    coast_km = (coast_cells * grid.cell_km()).astype(np.float32)

    z500, z800, z400, zclay, z300, z1000, zb, zveg, zdes = (
        grf(rng, grid, length) for length in (500.0, 800.0, 400.0, 400.0, 300.0, 1000.0, 1000.0, 500.0, 300.0))

    desert = box_indicator(grid, DESERTS, soften_km=150.0)
    desert_cut = 0.05 + 0.15 * ndtr(zdes)
    continentality = 0.4 + 0.6 * np.exp(-coast_km / 1500.0)
    map_factor = (1.0 - desert * (1.0 - desert_cut)) * continentality * np.exp(0.5 * z500)

    # Annual mean MAP: the seasonal ITCZ term averaged over the year.
    doys = np.arange(15, 365, 30)
    map_annual = np.mean([map_base(lat, itcz_latitude(d)) for d in doys], axis=0) * map_factor

    t_ann = 300.0 - 38.0 * sinlat**2 + 3.0 * z800
    nh = lat >= 0
    coastal_fade = np.clip((75.0 - lat) / 15.0, 0.0, 1.0)
    seas_amp = (1.0 + 18.0 * np.abs(sinlat)) * (1.0 - 0.5 * np.exp(-coast_km / 800.0) * coastal_fade)
    seas_amp = np.where(nh, seas_amp, 0.5 * seas_amp)

    sand = np.clip(0.35 + 0.2 * z400 + 0.45 * desert, 0.05, 0.95)
    clay = np.clip((1.0 - sand) * (0.3 + 0.1 * zclay), 0.02, 0.6)
    rho_b = 1.2 + 0.35 * sand
    theta_sat = 1.0 - rho_b / 2.65
    wilting_point = 0.06774 - 0.064 * sand + 0.478 * clay
    theta_min = 0.01 + 0.3 * wilting_point
    sand_sea = (desert > 0.5) & (sand > 0.7)
    roughness_h = 0.1 + 0.2 * ndtr(z300) + 0.1 * sand_sea

    pet = 1600.0 * np.clip((t_ann - 263.0) / 37.0, 0.1, 1.0)
    aridity = map_annual / pet
    tau_peak = (1.3 * np.minimum(aridity / 1.5, 1.0) ** 0.8 * np.clip((t_ann - 250.0) / 40.0, 0.3, 1.0)
                * np.exp(0.2 * zveg))
    tau_peak = np.clip(tau_peak, 0.0, 1.4)
    tau_ratio = 1.4 - 0.2 * np.clip(tau_peak / 1.2, 0.0, 1.0)
    doy_peak = vegetation_peak_doy(lat)

    wet_max = 0.2 * box_indicator(grid, WETLANDS, soften_km=200.0) * np.clip(aridity, 0.0, 1.0)

    gauged = box_indicator(grid, GAUGED, soften_km=200.0)
    ungauged = box_indicator(grid, UNGAUGED, soften_km=200.0) * (1.0 - gauged)
    ref_w = 0.7 + 0.15 * gauged - 0.2 * ungauged
    ref_sigma = 0.5 - 0.2 * gauged + 0.3 * ungauged
    ref_a = 0.05 + 0.05 * z1000
    ref_b = 0.8 + 0.1 * zb

    sst = np.clip(t_ann + 2.0, 271.4, 303.0)
    out = {k: np.asarray(v, dtype=np.float32) for k, v in dict(
        land=land, lake=lake, ocean=ocean, coast_km=coast_km, desert=desert, map_factor=map_factor,
        map_annual=map_annual, t_ann=t_ann, seas_amp=seas_amp, sand=sand, clay=clay, rho_b=rho_b,
        theta_sat=theta_sat, wilting_point=wilting_point, theta_min=theta_min, roughness_h=roughness_h,
        tau_peak=tau_peak, tau_ratio=tau_ratio, doy_peak=doy_peak, wet_max=wet_max, ref_w=ref_w,
        ref_sigma=ref_sigma, ref_a=ref_a, ref_b=ref_b, sst=sst).items()}
    return StaticFields(**out)


def map_base(lat: np.ndarray, phi_itcz: float) -> np.ndarray:
    """The latitudinal MAP profile in mm/yr before the spatial factors (physics.md §2)."""
    return (2200.0 * np.exp(-((lat - phi_itcz) ** 2) / 200.0)
            + 900.0 * np.exp(-((np.abs(lat) - 50.0) ** 2) / 288.0) + 150.0)


def map_on_day(static: StaticFields, lat: np.ndarray, doy: float) -> np.ndarray:
    """Precipitation climatology (mm/yr rate) for day-of-year ``doy`` with the seasonal ITCZ."""
    return (map_base(lat, itcz_latitude(doy)) * static.map_factor).astype(np.float32)


def vegetation_peak_doy(lat: np.ndarray) -> np.ndarray:
    """Day of year of peak greenness: 215 in the northern extratropics, half a year later in the
    southern, and 30 days after the ITCZ's rains in the tropics (blended over 15–30°)."""
    # Day the ITCZ passes this latitude heading north (φ_I spans −5…15°).
    s = np.clip((lat - 5.0) / 10.0, -1.0, 1.0)
    doy_itcz = 105.0 + 365.0 / (2 * np.pi) * np.arcsin(s) + 30.0
    extratropic = np.where(lat >= 0, 215.0, 215.0 - 182.5)
    w = np.clip((np.abs(lat) - 15.0) / 15.0, 0.0, 1.0)
    # Blend on the circle so 33 and 365 average sensibly.
    ang = 2 * np.pi / 365.0
    x = (1 - w) * np.cos(ang * doy_itcz) + w * np.cos(ang * extratropic)
    y = (1 - w) * np.sin(ang * doy_itcz) + w * np.sin(ang * extratropic)
    return (np.arctan2(y, x) / ang) % 365.0


def tau_c_on_day(static: StaticFields, doy: float) -> np.ndarray:
    """C-band vegetation optical depth τ_C(t) = τ_pk[1 − s(1 − g)] (physics.md §2)."""
    s = np.clip(0.8 - 0.5 * static.tau_peak, 0.15, 0.8)
    g = 0.5 * (1.0 + np.cos(2 * np.pi * (doy - static.doy_peak) / 365.0))
    return np.clip(static.tau_peak * (1.0 - s * (1.0 - g)), 0.0, 1.4).astype(np.float32)


def wetland_fraction_on_day(static: StaticFields, doy: float, lat: np.ndarray) -> np.ndarray:
    """Open-water fraction of the land part of a cell: peaks with the wet season."""
    g = 0.5 * (1.0 + np.cos(2 * np.pi * (doy - static.doy_peak + 30.0) / 365.0))
    return (static.wet_max * g).astype(np.float32)


def seasonal_air_temperature(static: StaticFields, lat: np.ndarray, doy: float) -> np.ndarray:
    """Daily mean air temperature climatology, K (peak doy 200 north, doy 17 south)."""
    phase = np.where(lat >= 0, np.cos(2 * np.pi * (doy - 200) / 365.0), np.cos(2 * np.pi * (doy - 17) / 365.0))
    return (static.t_ann + static.seas_amp * phase).astype(np.float32)


def season_phase(lat: np.ndarray, doy: float) -> np.ndarray:
    """+1 at the local summer peak, −1 at the winter trough."""
    return np.where(lat >= 0, np.cos(2 * np.pi * (doy - 200) / 365.0), np.cos(2 * np.pi * (doy - 17) / 365.0))


def day_length_hours(lat: np.ndarray, doy: float) -> np.ndarray:
    """Astronomical day length, hours."""
    decl = np.deg2rad(23.44) * np.sin(2 * np.pi * (doy - 80) / 365.0)
    x = -np.tan(np.deg2rad(np.clip(lat, -89.9, 89.9))) * np.tan(decl)
    return 24.0 / np.pi * np.arccos(np.clip(x, -1.0, 1.0))


# Keep ndtr importable for modules that sample uniform variates from Gaussian fields.
__all__ = ["StaticFields", "build_static", "map_on_day", "tau_c_on_day", "wetland_fraction_on_day",
           "seasonal_air_temperature", "season_phase", "day_length_hours", "ndtr", "box_indicator"]
