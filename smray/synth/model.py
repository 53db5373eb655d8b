"""The twin's weather, true soil moisture and ERA-Interim-like reference, stepped every 12 hours
at the local overpass times 01:30 (descending, 'D') and 13:30 (ascending, 'A'); physics.md §2, §4
and its calibration notes.

:class:`TwinModel` is sequential (each step depends on the last) and cheap next to rendering the
brightness temperatures, so one process steps it while other processes render finished days.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
from scipy.special import ndtr

from smray.grid import Grid
from smray.synth import fields as F
from smray.synth.grf import ar1, grf

PASSES = ("A", "D")  #: ascending 13:30, descending 01:30 local solar time
LOCAL_HOUR = {"D": 1.5, "A": 13.5}
STEP_DAYS = 0.5
T_FREEZE = 273.15

# Reference model (physics.md §4 with the calibration notes' values)
REF_BUCKET_MM = 70.0
REF_TAU_FACTOR = 1.7
REF_SWI_T_DAYS = 1.0
REF_ERROR_SIGMA = 0.012
REF_ERROR_MEMORY_DAYS = 10.0
TRUTH_BUCKET_MM = 50.0


@dataclass
class PassState:
    """The surface seen by one overpass; float32 (nlat, nlon) arrays, temperatures in K."""

    sm: np.ndarray  #: true surface (0–2 cm) soil moisture at the overpass, m³/m³
    t_soil: np.ndarray  #: soil (skin-layer) temperature
    t_deep: np.ndarray  #: deep soil temperature (30-day mean of air temperature)
    t_air: np.ndarray  #: air and canopy temperature
    frozen: np.ndarray  #: bool, soil frozen (T_soil < 273.15 K)
    swe_mm: np.ndarray  #: snow water equivalent, mm
    wet_snow: np.ndarray  #: bool, snow present and melting
    reference: np.ndarray  #: ERA-like swvl1 (0–7 cm) at this step, m³/m³, full resolution


@dataclass
class DayState:
    """One UTC day of the twin: both overpasses plus daily fields."""

    date: dt.date
    passes: dict[str, PassState]
    tau_c: np.ndarray  #: C-band vegetation optical depth
    wetland: np.ndarray  #: open-water fraction of the land part of each cell
    rain_mm: np.ndarray  #: true rain over the day, mm


def day_of_year(date: dt.date, hour: float = 0.0) -> float:
    return date.timetuple().tm_yday - 1 + hour / 24.0


class TwinModel:
    """Steps weather, snow, true soil moisture and the reference model every 12 hours.

    ``next_day()`` returns the :class:`DayState` of the next UTC day; call :meth:`spin_up` first.
    All randomness comes from one generator seeded with ``seed``, so a run is reproducible.
    """

    def __init__(self, grid: Grid, static: F.StaticFields, seed: int, first_day: dt.date) -> None:
        self.grid = grid
        self.s = static
        self.rng = np.random.default_rng([seed, 2])
        self.day = first_day
        self.lat = (grid.lat[:, None] * np.ones((1, grid.nlon))).astype(np.float32)
        shape = grid.shape
        doy = day_of_year(first_day)
        t0 = F.seasonal_air_temperature(static, self.lat, doy)
        self.theta = (static.theta_min + 0.3 * (static.theta_sat - static.theta_min)).astype(np.float32)
        self.theta_ref = self.theta.copy()
        self.swi = self.theta.copy()
        self.swi_gain = 1.0
        self.swe = np.where(t0 < T_FREEZE, 20.0, 0.0).astype(np.float32)
        self.swe_ref = self.swe.copy()
        self.t_deep = t0.copy()
        self.t_syn = np.zeros(shape, np.float32)
        # Rain random fields (truth, the reference's independent realisation) and error fields.
        g = self.rng
        self.z = {name: grf(g, grid, length) for name, length in self._RAIN_FIELDS.items()}

    #: AR(1) random fields: name → length scale, km.
    _RAIN_FIELDS = {"syn": 700.0, "c100": 100.0, "c250": 250.0, "depth": 150.0,
                    "i_syn": 700.0, "i_conv": 150.0, "i_depth": 150.0, "ref_rain_err": 500.0, "ref_err": 300.0}
    #: AR(1) coefficients per 12-hour step.
    _RHO = {"syn": 0.6, "c100": 0.3, "c250": 0.3, "depth": 0.3, "i_syn": 0.6, "i_conv": 0.3, "i_depth": 0.3,
            "ref_rain_err": 0.8, "ref_err": float(np.exp(-STEP_DAYS / REF_ERROR_MEMORY_DAYS))}

    # ------------------------------------------------------------------------------------------
    def spin_up(self, days: int) -> None:
        for _ in range(days):
            self.next_day()

    def next_day(self) -> DayState:
        date = self.day
        doy = day_of_year(date, 12.0)
        tau_c = F.tau_c_on_day(self.s, doy)
        # Daily synoptic temperature anomaly, halved in summer.
        phase = F.season_phase(self.lat, doy)
        self.t_syn = ar1(self.t_syn / 3.0, grf(self.rng, self.grid, 1000.0), 0.8) * 3.0
        passes = {}
        rain_total = np.zeros(self.grid.shape, np.float32)
        for pass_ in ("D", "A"):  # chronological within the local day
            state, rain = self._half_step(date, pass_, tau_c, phase)
            passes[pass_] = state
            rain_total += rain
        self.day = date + dt.timedelta(days=1)
        wet = F.wetland_fraction_on_day(self.s, doy, self.lat)
        return DayState(date=date, passes={p: passes[p] for p in PASSES}, tau_c=tau_c, wetland=wet,
                        rain_mm=rain_total)

    # ------------------------------------------------------------------------------------------
    def _advance_fields(self) -> None:
        for name, length in self._RAIN_FIELDS.items():
            self.z[name] = ar1(self.z[name], grf(self.rng, self.grid, length), self._RHO[name])

    def _rain(self, map_rate: np.ndarray, z_occ: np.ndarray, z_depth: np.ndarray) -> np.ndarray:
        """Rain in mm for one 12-h step: events where Φ(Z) > 1 − λ, exponential depths of mean α."""
        alpha = 6.0 + 6.0 * map_rate / 2000.0
        lam = np.clip(map_rate / (730.0 * alpha), 0.01, 0.6)
        u = np.clip(ndtr(z_depth), 1e-6, 1.0 - 1e-6)
        return np.where(ndtr(z_occ) > 1.0 - lam, alpha * -np.log(u), 0.0).astype(np.float32)

    def _half_step(self, date: dt.date, pass_: str, tau_c: np.ndarray, phase: np.ndarray
                   ) -> tuple[PassState, np.ndarray]:
        s, lat = self.s, self.lat
        doy = day_of_year(date, LOCAL_HOUR[pass_])
        self._advance_fields()
        z = self.z

        # --- temperatures ---------------------------------------------------------------------
        t_mean = F.seasonal_air_temperature(s, lat, doy) + self.t_syn * (1.0 - 0.5 * np.maximum(phase, 0.0))
        f_veg = np.minimum(1.0, tau_c / 0.8)
        wetness = np.clip(self.theta / s.theta_sat, 0.0, 1.0)
        a_d = 3.0 + 15.0 * (1.0 - f_veg) * (1.0 - wetness)
        daylen = F.day_length_hours(lat, doy)
        if pass_ == "A":
            anomaly = a_d * np.clip(daylen / 12.0, 0.3, 1.5)
        else:
            anomaly = -0.8 * a_d * np.clip((24.0 - daylen) / 12.0, 0.3, 1.5)
        t_soil = t_mean + 0.7 * anomaly
        t_air = t_mean + 0.6 * anomaly
        self.t_deep = self.t_deep + (1.0 - np.exp(-STEP_DAYS / 30.0)) * (t_air - self.t_deep)

        # --- rain: truth and the reference's forcing ---------------------------------------------
        map_rate = F.map_on_day(s, lat, doy)
        w_long = np.clip((np.abs(lat) - 25.0) / 20.0, 0.0, 1.0) * (1.0 - phase) / 2.0
        z_conv = np.sqrt(1.0 - w_long) * z["c100"] + np.sqrt(w_long) * z["c250"]
        rain = self._rain(map_rate, np.sqrt(0.7) * z["syn"] + np.sqrt(0.3) * z_conv, z["depth"])
        rain_indep = self._rain(map_rate, np.sqrt(0.7) * z["i_syn"] + np.sqrt(0.3) * z["i_conv"], z["i_depth"])
        sig = s.ref_sigma
        rain_ref = s.ref_w * rain + (1.0 - s.ref_w) * rain_indep * np.exp(sig * z["ref_rain_err"] - sig**2 / 2)

        # --- snow --------------------------------------------------------------------------------
        liquid, self.swe = _snow_step(rain, self.swe, t_air)
        liquid_ref, self.swe_ref = _snow_step(rain_ref, self.swe_ref, t_air)

        # --- true surface soil moisture (0–2 cm bucket) ---------------------------------------
        tau_d = np.clip(2.0 + 6.0 * np.minimum(s.map_annual / 1500.0, 1.0), 2.0, 10.0) * (
            1.0 + 0.5 * np.maximum(0.0, (288.0 - t_air) / 15.0))
        self.theta = _bucket(self.theta, s.theta_min, s.theta_sat, tau_d, liquid, TRUTH_BUCKET_MM)
        sm_obs = self.theta
        if pass_ == "A":  # daytime drying of the top layer, recovered overnight
            sm_obs = np.maximum(self.theta - 0.01 * (1.0 - f_veg), 0.01)

        # --- reference: thicker, slower layer, SWI filter, model climatology, AR error ---------
        self.theta_ref = _bucket(self.theta_ref, s.theta_min, s.theta_sat, REF_TAU_FACTOR * tau_d, liquid_ref,
                                 REF_BUCKET_MM)
        self.swi_gain = self.swi_gain / (self.swi_gain + np.exp(-STEP_DAYS / REF_SWI_T_DAYS))
        self.swi = self.swi + self.swi_gain * (self.theta_ref - self.swi)
        rel = np.clip((self.swi - s.theta_min) / (s.theta_sat - s.theta_min), 0.0, 1.0)
        reference = np.clip(0.10 + 0.34 * (s.ref_a + s.ref_b * rel) + REF_ERROR_SIGMA * z["ref_err"], 0.05, 0.47)

        f32 = np.float32
        state = PassState(sm=sm_obs.astype(f32), t_soil=t_soil.astype(f32), t_deep=self.t_deep.astype(f32),
                          t_air=t_air.astype(f32), frozen=t_soil < T_FREEZE, swe_mm=self.swe.astype(f32),
                          wet_snow=(self.swe > 5.0) & (t_air > T_FREEZE), reference=reference.astype(f32))
        return state, rain


def _snow_step(rain: np.ndarray, swe: np.ndarray, t_air: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Partition precipitation into snow (T_air < 273.15 K) and liquid; degree-day melt 3 mm/K/d.
    Returns (liquid water reaching the soil in mm, new SWE in mm)."""
    cold = t_air < T_FREEZE
    swe = swe + np.where(cold, rain, 0.0)
    melt = np.minimum(swe, 3.0 * np.maximum(t_air - T_FREEZE, 0.0) * STEP_DAYS)
    return (np.where(cold, 0.0, rain) + melt).astype(np.float32), (swe - melt).astype(np.float32)


def _bucket(theta: np.ndarray, theta_min: np.ndarray, theta_sat: np.ndarray, tau_d: np.ndarray,
            water_mm: np.ndarray, depth_mm: float) -> np.ndarray:
    """θ ← θ_min + (θ − θ_min)e^(−Δt/τ_d) + 0.6 P/z, capped at saturation."""
    out = theta_min + (theta - theta_min) * np.exp(-STEP_DAYS / tau_d) + 0.6 * water_mm / depth_mm
    return np.minimum(out, theta_sat).astype(np.float32)
