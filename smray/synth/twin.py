"""Generate the AMSR-E / ERA-Interim twin into an archive on any storage (docs/twin.md).

Layout under the archive root (the real products' layouts, formats.md):

* ``amsr/YYYY/MM/GW1AM2_YYYYMMDD_01D_EQM{A,D}_L3SGT{06,10}LA2220220.h5`` — JAXA L3 daily TB HDF5
  (``synth.tb_layout: jaxa_l3``), or NSIDC-0302 / NSIDC-0301 flat binary files under
  ``amsr/YYYY/DDD/`` (``nsidc_0302`` / ``nsidc_0301``), or AE_Land3 HDF4 with the ocean filled
  under ``amsr/YYYY.MM.DD/`` (``nsidc_ae_land3``), or AE_L2A half-orbit swath HDF4 files under
  ``amsr/YYYY.MM.DD/`` (``nsidc_ae_l2a``; :mod:`smray.synth.layouts`)
* ``era_interim/YYYY/ERA-Interim_swvl1_YYYYMM.nc`` — monthly grib_to_netcdf netCDF, 4 analyses a day,
  global, or for a regional grid an area retrieval covering the region (:func:`render.era_area`)
* ``truth/static.nc`` and ``truth/YYYY/MM/smray_twin_truth_YYYYMMDD.nc`` — the side files for scoring
* ``twin.json`` — the manifest, written last (an archive without it is incomplete)

Ray wiring: one actor steps the sequential model (weather → soil moisture → reference) and writes
the monthly reference files; one task per day renders and writes that day's brightness
temperatures and truth. The driver holds dates and object references only, and keeps at most
``synth.max_in_flight`` days in flight, so memory does not grow with the number of days.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import xarray as xr

from smray import __version__
from smray.config import Config, to_dict
from smray.errors import SmrayError
from smray.formats.era import write_era_netcdf
from smray.formats.jaxa_l3 import jaxa_l3_filename, write_jaxa_l3
from smray.grid import Grid
from smray.storage import StorageConfig, check_reachable, filesystem, is_empty, join, resolve_storage, write_bytes
from smray.synth import layouts, render, sensor
from smray.synth.fields import StaticFields, build_static
from smray.synth.model import PASSES, DayState, TwinModel
from smray.truth import MANIFEST, STATIC_PATH, truth_path

PRODUCT = "smray-twin"


# --------------------------------------------------------------------------------------------
# Paths
# --------------------------------------------------------------------------------------------
def amsr_path(date: dt.date, pass_: str, band_code: str) -> str:
    return f"amsr/{date:%Y}/{date:%m}/{jaxa_l3_filename(date, pass_, band_code)}"


def era_path(year: int, month: int) -> str:
    return f"era_interim/{year:04d}/ERA-Interim_swvl1_{year:04d}{month:02d}.nc"


# --------------------------------------------------------------------------------------------
# Encoders (pure)
# --------------------------------------------------------------------------------------------
def _coords(grid: Grid) -> dict[str, Any]:
    return {"lat": ("lat", grid.lat.astype(np.float32), {"units": "degrees_north", "standard_name": "latitude"}),
            "lon": ("lon", grid.lon.astype(np.float32), {"units": "degrees_east", "standard_name": "longitude"})}


#: int16 packing (scale factor) of the truth variables: resolution well below any retrieval error.
TRUTH_PACKING = {"sm_true": 1e-4, "reference_step": 1e-4, "t_eff": 0.01, "t_air": 0.01, "rfi_06h": 0.01,
                 "tau_c": 1e-4, "wetland": 1e-4, "rain": 0.1}


def _netcdf_bytes(ds: xr.Dataset, packing: dict[str, float] | None = None) -> bytes:
    enc: dict[str, dict] = {}
    for v in ds.data_vars:
        enc[v] = {"zlib": True, "complevel": 1, "shuffle": True}
        if packing and v in packing:
            enc[v].update(dtype="int16", scale_factor=packing[v], add_offset=0.0 if "t_" not in v else 250.0,
                          _FillValue=np.int16(-32767))
    return bytes(ds.to_netcdf(engine="h5netcdf", encoding=enc))


def encode_static(static: StaticFields, grid: Grid, seed: int) -> bytes:
    units = {"land": "1", "lake": "1", "ocean": "1", "coast_km": "km", "desert": "1", "map_factor": "1",
             "map_annual": "mm yr-1", "t_ann": "K", "seas_amp": "K", "sand": "1", "clay": "1", "rho_b": "g cm-3",
             "theta_sat": "m3 m-3", "wilting_point": "m3 m-3", "theta_min": "m3 m-3", "roughness_h": "1",
             "tau_peak": "1", "tau_ratio": "1", "doy_peak": "day", "wet_max": "1", "ref_w": "1",
             "ref_sigma": "1", "ref_a": "1", "ref_b": "1", "sst": "K"}
    ds = xr.Dataset({k: (("lat", "lon"), v, {"units": units.get(k, "1")}) for k, v in static.arrays().items()},
                    coords=_coords(grid))
    ds.attrs.update(title="smray twin static fields", product=PRODUCT, seed=seed,
                    grid=json.dumps(grid.to_dict()), smray_version=__version__)
    return _netcdf_bytes(ds)


def encode_truth(day: DayState, tbs: dict[str, dict[str, np.ndarray]], grid: Grid, land: np.ndarray) -> bytes:
    """The day's truth: true soil moisture and surface state per pass, on the twin's grid. Cells
    without land (``land`` fraction 0) hold the fill value; floats are int16-packed
    (:data:`TRUTH_PACKING`)."""
    p = list(PASSES)
    sea = land <= 0.0

    def stack(attr: str) -> np.ndarray:
        values = np.stack([getattr(day.passes[q], attr) for q in p])
        return np.where(sea, np.nan, values) if values.dtype.kind == "f" else values

    from smray.synth.physics import effective_temperature

    t_eff = np.where(sea, np.nan, np.stack([effective_temperature(day.passes[q].t_soil, day.passes[q].t_deep)
                                            for q in p]))
    ds = xr.Dataset(
        {
            "sm_true": (("pass", "lat", "lon"), stack("sm"),
                        {"units": "m3 m-3", "long_name": "true surface (0-2 cm) soil moisture at overpass"}),
            "t_eff": (("pass", "lat", "lon"), t_eff.astype(np.float32), {"units": "K"}),
            "t_air": (("pass", "lat", "lon"), stack("t_air"), {"units": "K"}),
            "frozen": (("pass", "lat", "lon"), stack("frozen").astype(np.uint8), {"units": "1"}),
            "snow": (("pass", "lat", "lon"), (stack("swe_mm") > 5.0).astype(np.uint8), {"units": "1"}),
            "reference_step": (("pass", "lat", "lon"), stack("reference"),
                               {"units": "m3 m-3", "long_name": "reference (swvl1-like) at the overpass step, "
                                                                "full resolution"}),
            "rfi_06h": (("pass", "lat", "lon"), np.stack([tbs[q]["rfi_06h"] for q in p]),
                        {"units": "K", "long_name": "RFI added to 6.9 GHz H after the footprint"}),
            "tau_c": (("lat", "lon"), np.where(sea, np.nan, day.tau_c),
                      {"units": "1", "long_name": "C-band vegetation optical depth"}),
            "wetland": (("lat", "lon"), np.where(sea, np.nan, day.wetland), {"units": "1"}),
            "rain": (("lat", "lon"), day.rain_mm, {"units": "mm day-1"}),
        },
        coords={**_coords(grid), "pass": ("pass", np.array(p))},
    )
    ds.attrs.update(title="smray twin truth", product=PRODUCT, date=day.date.isoformat(),
                    grid=json.dumps(grid.to_dict()))
    return _netcdf_bytes(ds, TRUTH_PACKING)


def jaxa_attrs(date: dt.date, pass_: str, band_code: str, sensor_name: str) -> dict[str, Any]:
    return {"GranuleID": jaxa_l3_filename(date, pass_, band_code)[:-3],
            "ObservationStartDateTime": f"{date:%Y-%m-%d}T00:00:00.000Z",
            "ObservationEndDateTime": f"{date:%Y-%m-%d}T23:59:59.999Z",
            "PlatformShortName": "Aqua" if sensor_name == "AMSR-E" else "GCOM-W1",
            "SensorShortName": sensor_name, "OrbitDirection": "Ascending" if pass_ == "A" else "Descending",
            "ProductName": "smray twin (synthetic) L3 brightness temperature"}


# --------------------------------------------------------------------------------------------
# Ray pieces
# --------------------------------------------------------------------------------------------
class _Stepper:
    """Ray actor: owns the sequential model, returns each day's state, writes the reference."""

    def __init__(self, grid: Grid, seed: int, start: dt.date, days: int, spinup: int, out: str,
                 storage: StorageConfig) -> None:
        self.grid, self.seed, self.out, self.storage = grid, seed, out, storage
        self.last = start + dt.timedelta(days=days - 1)
        self.static = build_static(grid, seed)
        self.model = TwinModel(grid, self.static, seed, start - dt.timedelta(days=spinup + 1))
        self.model.spin_up(spinup)
        self.prev: DayState | None = self.model.next_day()  # the day before ``start``
        self.cur: DayState | None = None
        # A global grid writes the global ERA point grid; a regional one an area retrieval around it.
        self.area = None if grid.is_global else render.era_area(grid)
        self.lsm = render.era_land_sea_mask(grid.res)
        if self.area is not None:
            self.lsm = self.lsm[np.ix_(self.area.rows, self.area.cols)]
        self.month: list[tuple[dt.date, np.ndarray, np.ndarray]] = []
        self.written: list[str] = []
        self.fs, self.root = filesystem(out, storage)
        write_bytes(self.fs, join(self.root, STATIC_PATH), encode_static(self.static, grid, seed))

    def static_fields(self) -> StaticFields:
        return self.static

    def next_day(self) -> DayState:
        day = self.model.next_day()
        if self.cur is not None:
            self._reference(self.prev, self.cur, day)
            self.prev = self.cur
        self.cur = day
        return day

    def finish(self) -> list[str]:
        """Emit the last day's reference (needs one day of look-ahead) and flush the month."""
        if self.cur is not None:
            self._reference(self.prev, self.cur, self.model.next_day())
        return self.written

    def _reference(self, prev: DayState, day: DayState, nxt: DayState) -> None:
        land = self.static.land + self.static.lake
        fine = np.stack([render.analysis_fields(prev, day, nxt, self.grid, attr) for attr in ("reference", "t_soil")])
        both = render.degrade_to_era(fine, land, self.grid, self.area)
        if self.area is not None:
            both = render.fill_land_gaps(both, self.lsm)
        swvl1, stl1 = both
        self.month.append((day.date, render.era_analyses_for_file(swvl1, self.lsm), stl1))
        tomorrow = day.date + dt.timedelta(days=1)
        if tomorrow.month != day.date.month or day.date >= self.last:
            self._write_month()

    def _write_month(self) -> None:
        if not self.month:
            return
        first = self.month[0][0]
        lat_e, lon_e = render.era_grid(self.grid.res) if self.area is None else self.area[:2]
        values = np.concatenate([a for _, a, _ in self.month])
        stl1 = np.concatenate([t for _, _, t in self.month])
        times = np.array([np.datetime64(d) + np.timedelta64(h, "h") for d, _, _ in self.month
                          for h in render.ANALYSIS_HOURS], dtype="datetime64[s]")
        data = write_era_netcdf(values, times, lat_e, lon_e, lsm=self.lsm, stl1=stl1,
                                history=f"smray twin {__version__} (synthetic ERA-Interim-like swvl1)")
        path = era_path(first.year, first.month)
        write_bytes(self.fs, join(self.root, path), data)
        self.written = [*self.written, path]
        self.month = []


def _amsr_layout(tb_layout: str, first: dt.date) -> str:
    """The manifest's description of the TB files (a pattern, or the first day's example)."""
    if tb_layout == "jaxa_l3":
        return "amsr/YYYY/MM/GW1AM2_YYYYMMDD_01D_EQM{A,D}_L3SGT{06,10}LA2220220.h5"
    if tb_layout == layouts.LAND3:
        return layouts.land3_path(first)
    if tb_layout == layouts.L2A:
        return "amsr/YYYY.MM.DD/AMSR_E_L2A_BrightnessTemperatures_V12_YYYYMMDDhhmm_{A,D}.hdf"
    return layouts.flat_path(tb_layout, first, "A", "06H")


def _render_and_write(day: DayState, static: StaticFields, grid: Grid, seed: int, out: str,
                      storage: StorageConfig, sensor_name: str, tb_layout: str = "jaxa_l3",
                      gz: bool = False) -> dict[str, Any]:
    """Ray task: render one day and write its TB files (in ``tb_layout``; ``gz``: the flat layouts
    gzip-compressed) and its truth file."""
    t0 = time.perf_counter()
    rfi = sensor.rfi_sources(seed)
    tbs = render.render_day(day, static, grid, seed, rfi)
    fs, root = filesystem(out, storage)
    written = []
    fill_global = not grid.is_global
    def put(path: str, data: bytes) -> None:
        write_bytes(fs, join(root, path), data)

    if tb_layout in layouts.FLAT_LAYOUTS:
        written += layouts.write_flat_day(tb_layout, day.date, {p: tbs[p] for p in PASSES}, grid, put, gz=gz)
    elif tb_layout == layouts.LAND3:
        written += layouts.write_land3_day(day.date, {p: tbs[p] for p in PASSES}, grid, static.land, put)
    elif tb_layout == layouts.L2A:
        written += layouts.write_l2a_day(day.date, {p: tbs[p] for p in PASSES}, grid, put)
    for pass_ in (PASSES if tb_layout == "jaxa_l3" else ()):
        for band, code in render.BAND_CODES.items():
            tb_h, tb_v = tbs[pass_][f"{code}H"], tbs[pass_][f"{code}V"]
            if fill_global:
                tb_h, tb_v = grid.embed(tb_h, np.nan), grid.embed(tb_v, np.nan)
            data = write_jaxa_l3(tb_h, tb_v, attrs=jaxa_attrs(day.date, pass_, code, sensor_name))
            path = amsr_path(day.date, pass_, code)
            write_bytes(fs, join(root, path), data)
            written.append(path)
    path = truth_path(day.date)
    write_bytes(fs, join(root, path), encode_truth(day, tbs, grid, static.land + static.lake))
    written.append(path)
    observed = {p: float(np.isfinite(tbs[p]["06H"]).mean()) for p in PASSES}
    return {"date": day.date.isoformat(), "files": written, "observed_fraction": observed,
            "seconds": time.perf_counter() - t0}


# --------------------------------------------------------------------------------------------
# Driver
# --------------------------------------------------------------------------------------------
@dataclass
class TwinSummary:
    out: str
    days: int
    files: list[str] = field(default_factory=list)
    seconds: float = 0.0
    observed_fraction: dict[str, float] = field(default_factory=dict)

    def days_per_minute(self) -> float:
        return 60.0 * self.days / self.seconds if self.seconds > 0 else float("nan")


def check_archive_target(out: str, storage: StorageConfig, overwrite: bool) -> None:
    """One-line errors before any work: storage unreachable, or an archive already there."""
    check_reachable(out, storage, create=True)
    if not overwrite and not is_empty(out, storage):
        raise SmrayError(f"{out}: already holds files; refusing to overwrite an existing archive "
                         f"(pass --overwrite to write into it)")


def generate_twin(cfg: Config, out: str, progress: Callable[[str], None] = print) -> TwinSummary:
    """Generate the twin described by ``cfg.synth`` on ``cfg.grid`` into the archive root ``out``.
    Ray must be initialised (see :func:`smray.raysupport.init_ray`)."""
    from smray import raysupport as rs

    syn, storage = cfg.synth, resolve_storage(cfg.storage)
    grid = cfg.grid.grid()
    check_archive_target(out, storage, syn.overwrite)
    t0 = time.perf_counter()
    dates = [syn.start + dt.timedelta(days=i) for i in range(syn.days)]
    progress(f"synth: {len(dates)} days {dates[0]}..{dates[-1]} on a {grid.nlat}x{grid.nlon} grid at "
             f"{grid.res} deg (seed {syn.seed}, spin-up {syn.spinup_days} d) -> {out}")
    note = layouts.sensor_years_note(syn.tb_layout, dates[0], dates[-1])
    if note:
        progress(f"synth: note: {note}")

    _warm_caches(grid)
    stepper = rs.start_actor(_Stepper, grid, syn.seed, syn.start, syn.days, syn.spinup_days, out, storage)
    static_ref = stepper.static_fields.remote()
    # the stepper advances the soil-moisture model one day per call, in order; a day's rendering task
    # is submitted only when the bounded window has room, so at most max_in_flight days are in memory
    days = ((stepper.next_day.remote(), static_ref, grid, syn.seed, out, storage, syn.sensor, syn.tb_layout,
             syn.gzip)
            for _ in dates)
    results: list[dict[str, Any]] = []
    for res in rs.map_unordered(_render_and_write, days, num_cpus=1, max_in_flight=syn.max_in_flight):
        results.append(res)
        rate = 60.0 * len(results) / (time.perf_counter() - t0)
        progress(f"synth: {res['date']} written ({len(results)}/{len(dates)}, {rate:.1f} days/min)")
    era_files = rs.get(stepper.finish.remote())
    rs.kill(stepper)

    files = sorted([f for r in results for f in r["files"]] + list(era_files) + [STATIC_PATH])
    obs = {p: float(np.mean([r["observed_fraction"][p] for r in results])) for p in PASSES}
    summary = TwinSummary(out=out, days=len(dates), files=files, seconds=time.perf_counter() - t0,
                          observed_fraction=obs)
    manifest = {
        "product": PRODUCT, "smray_version": __version__,
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "synth": to_dict(syn), "grid": grid.to_dict(), "dates": [d.isoformat() for d in dates],
        "layout": {"amsr": _amsr_layout(syn.tb_layout, dates[0]) + (".gz" if syn.gzip else ""),
                   "tb_layout": syn.tb_layout,
                   "era_interim": "era_interim/YYYY/ERA-Interim_swvl1_YYYYMM.nc",
                   "truth": "truth/YYYY/MM/smray_twin_truth_YYYYMMDD.nc", "static": STATIC_PATH},
        "files": files, "seconds": round(summary.seconds, 1),
    }
    fs, root = filesystem(out, storage)
    write_bytes(fs, join(root, MANIFEST), json.dumps(manifest, indent=1).encode())
    summary.files.append(MANIFEST)
    return summary


def _warm_caches(grid: Grid) -> None:
    """Build the land-fraction and orbit caches once, in a task, before days run in parallel."""
    from smray import raysupport as rs

    def warm(res: float) -> None:
        from smray.grid import Grid as G, surface_fractions
        from smray.synth import orbit

        surface_fractions(G(res))
        orbit.swath_masks(G(res))

    rs.run_task(warm, grid.res)
