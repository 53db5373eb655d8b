"""Coastal land cells with a land-only TB product (AE_Land3) vs an ocean-observing one (JAXA L3).

A measurement, not a timed test (docs/formats.md "Coasts with land-only inputs" quotes its output).

What it does, in a temporary directory:

1. ``smray synth`` the same regional 0.25° twin (``--bbox``, same seed) twice: in the JAXA L3
   layout (ocean observed) and in the AE_Land3 layout (ocean and lakes filled with −9999 on the
   EASE grid, :mod:`smray.synth.layouts`);
2. ``smray ingest`` both onto the same 0.25° regional grid (default ``qc.water_fill: land_only``:
   the AE_Land3 cube gets the coastal rule of :func:`smray.preprocess.fill_water`);
3. on the last day, per pass, the share of land cells (land fraction ≥ 0.5) that have a valid
   9×9 window (the prediction rule, :func:`smray.predict.valid_inputs`, with ``qc.block``):
   *coastal* land cells (water within 4 cells, i.e. inside their window) and *interior* ones, for
   JAXA input, AE_Land3 without the rule (the filled cells set back to NaN: the same as
   ``qc.water_fill: never``) and AE_Land3 with it;
4. with ``--skill``: trains the CNN (small: ``--train-days`` days, 3,000 patches a day, 2
   epochs) on each cube and predicts the day after the training days; RMSE and R against the
   reference (the cube's ``swvl1``) on coastal and interior cells each model predicts.

Run::

    .venv/bin/python benchmarks/coastal_land3.py                     # ~1 min on 2 cores
    .venv/bin/python benchmarks/coastal_land3.py --skill --days 8    # + two small trainings
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

import numpy as np  # noqa: E402


def coastal_cells(land: np.ndarray, half: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """(coastal, interior) land cells: land with / without a water cell within ``half`` cells
    (Chebyshev), i.e. inside its 9×9 window; cells within ``half`` of the region's edge are left out
    of both (their window leaves the region, so no input can give them a retrieval)."""
    from scipy import ndimage

    is_land = np.isfinite(land) & (land >= 0.5)
    near_water = ndimage.maximum_filter((~is_land).astype(np.uint8), size=2 * half + 1, mode="constant",
                                        cval=0).astype(bool)
    inner = np.zeros(land.shape, dtype=bool)
    inner[half:-half, half:-half] = True
    return is_land & near_water & inner, is_land & ~near_water & inner


def recovery(cubes: dict[str, str], date: dt.date) -> dict[str, dict[str, float]]:
    from smray import cube as cubemod
    from smray.config import QCConfig
    from smray.predict import prediction_mask, valid_inputs
    from smray.qc import FLAGS

    mask = prediction_mask(QCConfig().block)
    out: dict[str, dict[str, float]] = {}
    for name, url in cubes.items():
        info = cubemod.info(url, None)
        land = cubemod.read_static(url, None)["land_fraction"]
        coastal, interior = coastal_cells(land)
        day = cubemod.read_day(url, None, date)
        variants = {name: day}
        if name == "ae_land3":
            filled = (np.asarray(day["qc"]) & FLAGS["water_filled"]) != 0
            tb = np.array(day["tb"], copy=True)
            for p in range(tb.shape[0]):
                tb[p][:, filled[p]] = np.nan
            variants = {"ae_land3_no_rule": {**day, "tb": tb}, "ae_land3_rule": day}
        for vname, d in variants.items():
            ok = valid_inputs(d, land, mask, list(range(4)), 9, periodic=info.grid.is_global)
            out[vname] = {"coastal_cells": int(coastal.sum()), "interior_cells": int(interior.sum()),
                          "coastal_valid_share": float(ok[:, coastal].mean()),
                          "interior_valid_share": float(ok[:, interior].mean())}
    return out


def skill(root: Path, cubes: dict[str, str], train: tuple[dt.date, dt.date], test: dt.date,
          bbox: str) -> dict[str, dict[str, float]]:
    from smray import cube as cubemod
    from smray.cli import main

    cfg = root / "train.yaml"
    cfg.write_text(f"grid:\n  res: 0.25\n  bbox: [{bbox}]\npatches:\n  per_day: 3000\n  train_per_day: 2500\n"
                   "  val_per_day: 500\ntrain:\n  epochs: 2\n  workers: 1\n")
    out: dict[str, dict[str, float]] = {}
    for name, url in cubes.items():
        run, maps = root / f"run_{name}", root / f"maps_{name}.zarr"
        t0 = time.perf_counter()
        assert main(["train", "--cube", url, "--train-start", train[0].isoformat(), "--train-end",
                     train[1].isoformat(), "--out", str(run), "--config", str(cfg)]) == 0
        assert main(["predict", "--cube", url, "--model", str(run), "--start", test.isoformat(), "--end",
                     test.isoformat(), "--out", str(maps), "--config", str(cfg)]) == 0
        import xarray as xr

        sm = xr.open_zarr(maps)["soil_moisture"].sel(time=str(test)).values
        ref = np.asarray(cubemod.read_day(url, None, test)["swvl1"])
        coastal, interior = coastal_cells(cubemod.read_static(url, None)["land_fraction"])
        row = {"train_seconds": round(time.perf_counter() - t0, 1)}
        for label, sel in (("coastal", coastal), ("interior", interior)):
            ok = sel & np.isfinite(sm) & np.isfinite(ref)
            d = sm[ok] - ref[ok]
            row[f"{label}_n"] = int(ok.sum())
            row[f"{label}_share_predicted"] = float(ok.sum() / max(1, sel.sum()))
            row[f"{label}_rmse"] = float(np.sqrt(np.mean(d ** 2))) if ok.any() else float("nan")
            row[f"{label}_r"] = float(np.corrcoef(sm[ok], ref[ok])[0, 1]) if ok.sum() > 2 else float("nan")
        out[name] = row
    return out


def main_(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bbox", default="-10,36,30,60", help="W,S,E,N (default: Europe, Baltic, Mediterranean)")
    ap.add_argument("--days", type=int, default=2)
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--skill", action="store_true", help="also train and score a small CNN on each cube")
    ap.add_argument("--keep", help="work directory to keep (default: a temporary one)")
    args = ap.parse_args(argv)

    import ray

    from smray.cli import main

    root = Path(args.keep or tempfile.mkdtemp(prefix="smray-coastal-"))
    root.mkdir(parents=True, exist_ok=True)
    start = dt.date(2011, 7, 1)
    end = start + dt.timedelta(days=args.days - 1)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    cfg = root / "grid.yaml"
    cfg.write_text(f"grid:\n  res: 0.25\n  bbox: [{args.bbox}]\n")
    cubes = {}
    t0 = time.perf_counter()
    for layout, name in (("jaxa_l3", "jaxa"), ("nsidc_ae_land3", "ae_land3")):
        twin = root / f"twin_{name}"
        assert main(["synth", "--out", str(twin), "--start", start.isoformat(), "--days", str(args.days),
                     "--res", "0.25", "--bbox", args.bbox, "--spinup-days", "10", "--seed", str(args.seed),
                     "--layout", layout]) == 0
        cubes[name] = str(root / f"cube_{name}.zarr")
        assert main(["ingest", "--tb", str(twin / "amsr"), "--ref", str(twin / "era_interim"), "--start",
                     start.isoformat(), "--end", end.isoformat(), "--out", cubes[name], "--config", str(cfg)]) == 0
    result = {"bbox": args.bbox, "days": args.days, "seed": args.seed, "day": end.isoformat(),
              "recovery": recovery(cubes, end), "seconds": round(time.perf_counter() - t0, 1),
              "load_average": os.getloadavg()}
    if args.skill:
        result["skill"] = skill(root, cubes, (start, end - dt.timedelta(days=1)), end, args.bbox)
    ray.shutdown()
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main_())
