"""A protocol beyond the paper's: train on one year, score months of every season of another year.

:func:`run_seasons_experiment` is the scoring half of ``smray experiment seasons``
(:mod:`smray.stages.seasons` trains the models first, by the train stage's rule):

1. The models (``cnn``, ``pixel``, ``svr``) are trained on ``paths.train`` (the seasons config: one
   whole year, so that every season is in the training stream) into ``<out>/<kind>/``.
2. The test days (:func:`scored_days`): the days of ``experiment.months`` (one month per season by
   default: January, April, July, October) inside ``paths.evaluate`` (another year), every
   ``experiment.test_day_every``-th day of each month from its first.
3. Each test day's patches are cut as the paper experiment cuts its test day (up to
   ``experiment.test_patches`` random valid centres, the training normalisation), every model
   predicts them, the physical retrieval runs on the day's cube TBs, and the twin's truth is read at
   the same (pass, cell).
4. Scores per model, for all test days, per meteorological season (``smray.serial.SEASONS``) and
   per month, from mergeable sums (:mod:`smray.metrics`): R² and RMSE in normalised units against
   the reference (the paper's Table 2 units), ubRMSD, bias and Pearson R in m³/m³ against the
   reference, and R² and ubRMSD against the twin's truth. The spread of each model's seasonal R²
   (max − min) is the protocol's headline next to the weakest season.

Outputs: ``<out>/seasons_experiment.json``, ``<out>/seasons_experiment.md`` (also printed) and
``<out>/seasons_test_predictions.npz`` (every test sample: day, pass, cell, reference, truth and
every model's prediction), from which every score can be recomputed.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import math
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from smray.config import Config, to_dict, validation_label
from smray.errors import SmrayError
from smray.experiment import (LABELS, MODELS, check_request, predict_trained, scoring_patch_config, shared_stats,
                              truth_and_physical)
from smray.metrics import pair_sums, scores
from smray.serial import SEASONS, json_safe, season_of
from smray.storage import filesystem, join, resolve_storage, write_bytes

JSON_FILE = "seasons_experiment.json"
MD_FILE = "seasons_experiment.md"
PREDICTIONS_FILE = "seasons_test_predictions.npz"
#: sums are accumulated about these constants (normalised units, m³/m³)
SHIFT_NORM, SHIFT_M3 = 0.5, 0.25
#: the scores of one row, and the sums each comes from: (key in the row, sums, score name)
ROW = (("r2", "norm", "r2"), ("rmse_norm", "norm", "rmsd"), ("ubrmsd_m3", "m3", "ubrmsd"), ("bias_m3", "m3", "bias"),
       ("r_m3", "m3", "pearson_r"), ("truth_r2", "truth", "r2"), ("truth_ubrmsd_m3", "truth", "ubrmsd"))


def scored_days(start: dt.date, end: dt.date, months: Sequence[int], every: int) -> list[dt.date]:
    """The days of ``months`` in ``start``..``end``, every ``every``-th day of each month from its first."""
    n = (end - start).days + 1
    return [d for d in (start + dt.timedelta(days=i) for i in range(max(n, 0)))
            if d.month in months and (d.day - 1) % every == 0]


def check_seasons(cfg: Config, cube_url: str, train: tuple[dt.date, dt.date], test: tuple[dt.date, dt.date]
                  ) -> tuple[list[str], list[dt.date]]:
    """Refuse a request that cannot be scored (one line, before anything trains); returns the kinds to
    train and the test days."""
    from smray import cube as cubemod

    ex = cfg.experiment
    days = scored_days(test[0], test[1], ex.months, ex.test_day_every)
    inside = [d for d in days if train[0] <= d <= train[1]]
    if inside:
        raise SmrayError(f"paths.evaluate: test day {inside[0]} lies inside the training period paths.train "
                         f"{train[0]}..{train[1]}")
    have = {d.month for d in days}
    missing = [m for m in ex.months if m not in have]
    if missing:
        raise SmrayError(f"experiment.months: month {missing[0]} has no day in paths.evaluate "
                         f"{test[0]}..{test[1]}")
    info = cubemod.info(cube_url, resolve_storage(cfg.storage))
    outside = [d for d in days if not info.start <= d <= info.end]
    if outside:
        raise SmrayError(f"paths.evaluate: test day {outside[0]} is not in the cube {cube_url} "
                         f"({info.start}..{info.end})")
    kinds = check_request(cfg, cube_url, ex.models, ex.test_patches, "all", train[0], train[1], days[0])
    return kinds, days


class _Sums:
    """Per model and group (``all``, a season, a month): the sums of normalised, m³/m³ and truth pairs."""

    def __init__(self) -> None:
        self.sums: dict[tuple[str, str], dict[str, np.ndarray]] = {}

    def add(self, model: str, groups: Sequence[str], pred_norm: np.ndarray, pred_m3: np.ndarray, y: np.ndarray,
            y_raw: np.ndarray, truth: np.ndarray) -> None:
        parts = {"norm": pair_sums(pred_norm, y, shift=SHIFT_NORM), "m3": pair_sums(pred_m3, y_raw, shift=SHIFT_M3),
                 "truth": pair_sums(pred_m3, truth, shift=SHIFT_M3)}
        for g in groups:
            acc = self.sums.setdefault((model, g), {k: np.zeros_like(v) for k, v in parts.items()})
            for k, v in parts.items():
                acc[k] += v

    def row(self, model: str, group: str) -> dict[str, Any]:
        acc = self.sums[(model, group)]
        sc = {k: scores(v, shift=SHIFT_NORM if k == "norm" else SHIFT_M3) for k, v in acc.items()}
        return {"n": sc["norm"]["n"], "truth_n": sc["truth"]["n"],
                **{key: sc[part][name] for key, part, name in ROW}}


def run_seasons_experiment(cfg: Config, cube_url: str, twin_url: str, out_url: str, *,
                           train: tuple[dt.date, dt.date], days: Sequence[dt.date], models: Sequence[str],
                           trained: Mapping[str, Any] | None = None,
                           progress: Callable[[str], None] = print) -> dict[str, Any]:
    """Score the models trained under ``<out_url>/<kind>`` on the test ``days`` (see the module
    docstring); returns what ``seasons_experiment.json`` holds."""
    from smray.patches import sample_day
    from smray.truth import TwinTruth

    t0 = time.perf_counter()
    storage = resolve_storage(cfg.storage)
    ex = cfg.experiment
    order = [m for m in MODELS if m in models]
    kinds = [m for m in order if m != "physical"]
    stats, stats_url = shared_stats(out_url, kinds, storage)
    lo, span = float(stats.target_lower), float(stats.target_upper - stats.target_lower)
    pcfg = scoring_patch_config(cfg.patches, ex.test_patches, "all")
    acc = _Sums()
    per_day: list[dict[str, Any]] = []
    kept: dict[str, list[np.ndarray]] = {}
    twin = TwinTruth.on_cube(twin_url, cube_url, storage)  # its grid mapping and static fields, read once
    for i, day in enumerate(days):
        sample = sample_day(cube_url, storage, day, pcfg, cfg.qc.block, stats)
        n = len(sample["y"])
        if n < 2:
            raise SmrayError(f"{cube_url}: test day {day} yields {n} valid patches")
        pred = predict_trained(out_url, order, sample["x"], stats, stats_url, storage)
        truth, phys = truth_and_physical(twin_url, cube_url, storage, day, sample, seed=cfg.train.seed,
                                         method=ex.physical, physical="physical" in order, twin=twin)
        if phys is not None:
            pred["physical"] = (phys - lo) / span  # not clipped, like the other models' outputs
        y, y_raw = sample["y"].astype(np.float64), sample["y_raw"].astype(np.float64)
        groups = ("all", season_of(day.month), f"{day.month:02d}")
        for m in order:
            acc.add(m, groups, pred[m], lo + pred[m] * span, y, y_raw, truth)
        per_day.append({"day": day.isoformat(), "n": n})
        for name, value in (("day", np.full(n, i, np.int32)), ("row", sample["row"]), ("col", sample["col"]),
                            ("pass_", sample["pass"].astype("<U2")), ("y", y), ("y_raw", y_raw), ("truth", truth),
                            *((f"pred_{m}", pred[m]) for m in order)):
            kept.setdefault(name, []).append(np.asarray(value))
        progress(f"experiment seasons: test day {day} ({i + 1}/{len(days)}): {n} patches")

    seasons = [s for s, months in SEASONS if any(d.month in months for d in days)]
    months = sorted({f"{d.month:02d}" for d in days})
    rows = {m: {"all": acc.row(m, "all"), "seasons": {s: acc.row(m, s) for s in seasons},
                "months": {k: acc.row(m, k) for k in months}} for m in order}
    for m in order:
        r2 = [rows[m]["seasons"][s]["r2"] for s in seasons]
        finite = [v for v in r2 if math.isfinite(v)]
        rows[m]["season_spread_r2"] = max(finite) - min(finite) if finite else math.nan
        rows[m]["weakest_season"] = seasons[int(np.nanargmin(r2))] if finite else None
    result: dict[str, Any] = {
        "cube": cube_url, "twin": twin_url, "out": out_url, "train_start": train[0].isoformat(),
        "train_end": train[1].isoformat(), "test_days": [d.isoformat() for d in days], "months": list(ex.months),
        "test_day_every": ex.test_day_every, "test_patches": ex.test_patches, "models_order": order,
        "n_test": int(sum(p["n"] for p in per_day)), "per_day": per_day,
        "seasons": {s: list(dict(SEASONS)[s]) for s in seasons},
        "target_lower": lo, "target_upper": float(stats.target_upper), "normalisation": stats_url,
        "validation": validation_label(cfg.patches), "physical_method": ex.physical if "physical" in order else None,
        "metrics": "normalised units: reference scaled with the training statistics, predictions not clipped; "
                   "m3/m3 against the cube's swvl1; truth: the twin's sm_true at the sample's pass and cell; "
                   "every score from the pooled pairs of its group (smray.metrics)",
        "models": rows, "training": dict(trained or {}), "config": to_dict(cfg), "seconds": 0.0,
    }
    result["seconds"] = time.perf_counter() - t0
    buf = io.BytesIO()
    np.savez(buf, models=np.array(order), days=np.array([d.isoformat() for d in days]),
             **{k: np.concatenate(v) for k, v in kept.items()})
    table = markdown_table(result)
    for name, data in ((PREDICTIONS_FILE, buf.getvalue()),
                       (JSON_FILE, json.dumps(json_safe(result), indent=1).encode()), (MD_FILE, table.encode())):
        fs, path = filesystem(join(out_url, name), storage)
        write_bytes(fs, path, data)
    progress(table)
    progress(f"experiment seasons: wrote {join(out_url, JSON_FILE)}, {MD_FILE} and {PREDICTIONS_FILE} in "
             f"{result['seconds']:.0f} s")
    return result


def _f(v: Any, digits: int = 3) -> str:
    return "—" if v is None or (isinstance(v, float) and not math.isfinite(v)) else f"{v:.{digits}f}"


HEAD = ("| model | {first} | R² (norm) | RMSE (norm) | ubRMSD (m³/m³) | bias (m³/m³) | R | R² vs truth | "
        "ubRMSD vs truth (m³/m³) | n |")


def _line(model: str, key: str, r: Mapping[str, Any]) -> str:
    return (f"| {LABELS.get(model, model)} | {key} | {_f(r['r2'])} | {_f(r['rmse_norm'])} | {_f(r['ubrmsd_m3'], 4)} | "
            f"{_f(r['bias_m3'], 4)} | {_f(r['r_m3'])} | {_f(r['truth_r2'])} | {_f(r['truth_ubrmsd_m3'], 4)} | "
            f"{r['n']} |")


def markdown_table(result: Mapping[str, Any]) -> str:
    """The Markdown report: per season, per month, the seasonal spread."""
    models = result["models"]
    seasons = ", ".join(f"{s} = months {'/'.join(str(m) for m in ms)}" for s, ms in result["seasons"].items())
    lines = [f"# Seasons experiment: train {result['train_start']}..{result['train_end']}, test months "
             f"{', '.join(f'{m:02d}' for m in result['months'])} of {result['test_days'][0][:4]}"
             f"{'' if result['test_days'][0][:4] == result['test_days'][-1][:4] else '..' + result['test_days'][-1][:4]}",
             "",
             f"{len(result['test_days'])} test days (each month's days 1, 1 + {result['test_day_every']}, …), up to "
             f"{result['test_patches']} patches a day: {result['n_test']} test patches. Reference: the "
             f"cube's swvl1; normalised units use the training statistics (target {_f(result['target_lower'], 4)}.."
             f"{_f(result['target_upper'], 4)} m³/m³). Model selection: {result['validation']}.", "",
             "## By season", "", f"Seasons: {seasons}.", "", HEAD.format(first="season"),
             "|---" * 10 + "|"]
    for m, r in models.items():
        lines += [_line(m, s, row) for s, row in r["seasons"].items()]
    lines += ["", "## By month", "", HEAD.format(first="month"), "|---" * 10 + "|"]
    for m, r in models.items():
        lines += [_line(m, k, row) for k, row in r["months"].items()]
    lines += ["", "## All test days", "", HEAD.format(first="days"), "|---" * 10 + "|"]
    lines += [_line(m, "all", r["all"]) for m, r in models.items()]
    lines += ["", "## Seasonal spread", "", "| model | weakest season | its R² | spread of the seasons' R² (max − min) |",
              "|---|---|---|---|"]
    for m, r in models.items():
        weak = r["weakest_season"]
        lines.append(f"| {LABELS.get(m, m)} | {weak or '—'} | "
                     f"{_f(r['seasons'][weak]['r2']) if weak else '—'} | {_f(r['season_spread_r2'])} |")
    return "\n".join(lines) + "\n"
