"""The paper's experiment as one command: train on 1–30 July 2011, test on 31 July 2011, and print
Table 2 (R², RMSE in normalised units) beside the paper's numbers, plus the same in m³/m³.

:func:`run_paper_experiment` is ``smray experiment paper``:

1. ``cnn``, ``pixel`` and ``svr`` are trained into ``<out>/<model>/`` by the experiment stage
   (:func:`smray.stages.experiment.train_models`). A model whose training run is current by the
   train stage's rule (:func:`smray.train.run_state`) is not touched (so a re-run neither retrains
   nor rewrites it); an unfinished one is resumed. :func:`check_request` refuses a request before
   anything trains; :func:`run_paper_experiment` scores what was trained.
2. The test set: the patches of the test day cut by :func:`smray.patches.sample_day` with the
   training normalisation (``<out>/cnn/normalisation.json``; every trained model must carry the same
   statistics) and a ``random``-split :class:`~smray.config.PatchConfig` with ``per_day =
   train_per_day = test_patches``, ``val_per_day = 0`` (all valid centres when there are fewer).
3. Predictions: CNN and pixel MLP from ``model.pt`` (:func:`smray.checkpoint.load_model`), SVR
   from ``svr.npz``; ``physical`` is :func:`smray.physical.retrieve_day` (LPRM by default) on the
   cube's test-day TBs per pass, with the twin's static fields, the pass's ``t_eff`` and the
   climatological τ_C (:func:`smray.synth.fields.tau_c_on_day`), after the ancillary open-water
   correction (:func:`smray.physical.open_water`), sampled at the test patches' (pass, row, col).
   Pixels it cannot retrieve are NaN and left out of its metrics.
4. Metrics against the reference (the cube's ``swvl1``): R² = 1 − SSE/SST and RMSE in normalised
   units (the reference scaled with the training statistics, as in the paper) and in m³/m³, bias,
   n; against the twin's truth (``sm_true`` at the same pass and cell) R² and RMSE in m³/m³. Each
   model on its own finite samples and all models on the common subset where every one has a value.

Outputs: ``<out>/paper_experiment.json``, ``<out>/paper_experiment.md`` (the Markdown table, also
printed) and ``<out>/paper_test_predictions.npz`` (the test samples and every model's predictions).

``test_region="blocks"`` (``--test-region blocks``) scores only test patches whose whole window lies
in the validation blocks of the blocked split (:func:`smray.patches.validation_cells` with the
config's ``patches.block_deg``, ``val_block_fraction`` and ``seed``, whatever ``patches.split`` the
models were trained with): places a blocked-split model never trained on, while a random-split
model trained on the same places on other days. Its outputs carry a ``_blocks`` suffix
(``paper_experiment_blocks.json`` …) beside the all-region ones.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import json
import math
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from smray.checkpoint import MODEL_FILE, NORMALISATION_FILE, SVR_FILE
from smray.config import Config, PatchConfig, to_dict, validation_label
from smray.errors import SmrayError
from smray.metrics import pair_metrics
from smray.serial import as_date, json_safe
from smray.storage import StorageConfig, filesystem, join, read_bytes, resolve_storage, write_bytes

MODELS = ("cnn", "svr", "pixel", "physical")
TRAINED = ("cnn", "pixel", "svr")
#: Table 2 of the paper (normalised units), test day 31 July 2011, 50,000 patches
PAPER = {"cnn": {"r2": 0.6512, "rmse": 0.1272}, "svr": {"r2": 0.5598, "rmse": 0.1817}}
PAPER_TEST_PATCHES = 50000
JSON_FILE = "paper_experiment.json"
MD_FILE = "paper_experiment.md"
PREDICTIONS_FILE = "paper_test_predictions.npz"
PREDICT_BATCH = 4096
#: test regions: every valid centre, or only centres inside the blocked split's validation blocks
TEST_REGIONS = ("all", "blocks")
LABELS = {"cnn": "CNN", "svr": "SVR", "pixel": "pixel-wise", "physical": "physical"}


# --------------------------------------------------------------------------------------------
# Metrics (pure)
# --------------------------------------------------------------------------------------------
def metrics(pred: np.ndarray, ref: np.ndarray) -> dict[str, float]:
    """R² (1 − SSE/SST, SST about the mean of ``ref``), RMSE, bias (mean pred − ref) and n over the
    samples where both are finite (:func:`smray.metrics.pair_metrics`). NaN metrics when fewer than 2
    samples or SST = 0."""
    m = pair_metrics(pred, ref)
    return {"r2": m["r2"], "rmse": m["rmsd"], "bias": m["bias"], "n": m["n"]}


def score(pred_norm: np.ndarray, pred_m3: np.ndarray, y: np.ndarray, y_raw: np.ndarray, truth: np.ndarray,
          mask: np.ndarray | None = None) -> dict[str, Any]:
    """One model's row: normalised metrics against ``y``, m³/m³ against ``y_raw`` and ``truth``."""
    sel = slice(None) if mask is None else mask
    norm = metrics(pred_norm[sel], y[sel])
    m3 = metrics(pred_m3[sel], y_raw[sel])
    tr = metrics(pred_m3[sel], truth[sel])
    return {"r2": norm["r2"], "rmse_norm": norm["rmse"], "bias_norm": norm["bias"], "n": norm["n"],
            "r2_m3": m3["r2"], "rmse_m3": m3["rmse"], "bias_m3": m3["bias"],
            "truth_r2": tr["r2"], "truth_rmse_m3": tr["rmse"], "truth_bias_m3": tr["bias"], "truth_n": tr["n"]}


def _f(v: Any, digits: int = 4) -> str:
    return "—" if v is None or (isinstance(v, float) and not math.isfinite(v)) else f"{v:.{digits}f}"


def markdown_table(result: dict[str, Any]) -> str:
    """The Markdown report: Table 2 beside the paper's numbers, the truth columns, the common subset."""
    region = result.get("test_region", "all")
    where = "" if region == "all" else (f" inside the blocked split's validation blocks ({result['block_deg']:g}°, "
                                        f"{result['val_block_fraction']:g} of the land blocks)")
    lines = [f"# The paper's experiment: train {result['train_start']}..{result['train_end']}, "
             f"test {result['test_day']}{'' if region == 'all' else ', validation blocks only'}", "",
             f"Test patches{where}: {result['n_test']} of {result['test_patches']} asked "
             f"({result['n_valid_centres']} valid centres; the paper: {PAPER_TEST_PATCHES}). Reference: the cube's "
             f"swvl1; normalised units use the training statistics (target {_f(result['target_lower'])}.."
             f"{_f(result['target_upper'])} m³/m³).", "",
             *([f"Model selection (early stopping, SVR validation): {result['validation']}.", ""]
               if result.get("validation") else []),
             "| model | R² | RMSE (norm) | RMSE (m³/m³) | n | paper R² | paper RMSE | R² vs truth | "
             "RMSE vs truth (m³/m³) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for m, row in result["models"].items():
        paper = PAPER.get(m, {})
        lines.append(f"| {LABELS.get(m, m)} | {_f(row['r2'])} | {_f(row['rmse_norm'])} | {_f(row['rmse_m3'])} | "
                     f"{row['n']} | {_f(paper.get('r2'))} | {_f(paper.get('rmse'))} | {_f(row['truth_r2'])} | "
                     f"{_f(row['truth_rmse_m3'])} |")
    common = result.get("common") or {}
    if common.get("models"):
        lines += ["", f"Common subset (all of {', '.join(LABELS.get(m, m) for m in common['models'])} have a "
                      f"value): n = {common['n']}", "",
                  "| model | R² | RMSE (norm) | RMSE (m³/m³) | bias (m³/m³) | R² vs truth | RMSE vs truth (m³/m³) |",
                  "|---|---|---|---|---|---|---|"]
        for m, row in common["models"].items():
            lines.append(f"| {LABELS.get(m, m)} | {_f(row['r2'])} | {_f(row['rmse_norm'])} | {_f(row['rmse_m3'])} | "
                         f"{_f(row['bias_m3'])} | {_f(row['truth_r2'])} | {_f(row['truth_rmse_m3'])} |")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------------
# Predictions
# --------------------------------------------------------------------------------------------
def predict_torch(url: str, x: np.ndarray, storage: StorageConfig) -> tuple[np.ndarray, dict[str, Any]]:
    """Scaled predictions ``(n,)`` float64 of the ``model.pt`` at ``url`` and its normalisation dict."""
    import torch

    from smray.checkpoint import load_model

    model, ckpt = load_model(url, storage=storage)
    if x.shape[1] != ckpt.in_channels:
        raise SmrayError(f"{url}: the model takes {ckpt.in_channels} input channels, the test patches have "
                         f"{x.shape[1]}")
    out = np.empty(len(x), dtype=np.float64)
    with torch.no_grad():
        for s in range(0, len(x), PREDICT_BATCH):
            out[s:s + PREDICT_BATCH] = model(torch.from_numpy(np.ascontiguousarray(x[s:s + PREDICT_BATCH]))
                                             ).reshape(-1).double().numpy()
    return out, ckpt.norm_stats or {}


def truth_and_physical(twin_url: str, cube_url: str, storage: StorageConfig, day: dt.date, sample: dict[str, Any],
                       *, seed: int, method: str = "lprm", physical: bool = True, twin: Any = None
                       ) -> tuple[np.ndarray, np.ndarray | None]:
    """(``sm_true`` at each test sample, the physical retrieval at each test sample or None), m³/m³.

    The physical retrieval runs per pass on the whole cube grid (its TBs are the cube's) with the
    twin's static fields and ``t_eff``, mapped to the cube grid by nearest cell centre, and the
    open-water correction of :func:`smray.physical.open_water` (footprints more than half water are
    not retrieved). A stacked sample ('AD') gets the mean of its passes. ``twin``: the twin's
    :class:`~smray.truth.TwinTruth` on the cube's grid when the caller holds one (several days)."""
    from smray import cube as cubemod
    from smray.physical import open_water, retrieve_day
    from smray.synth.fields import StaticFields, tau_c_on_day
    from smray.truth import TwinTruth

    info = cubemod.info(cube_url, storage)
    twin = twin or TwinTruth.on_cube(twin_url, cube_url, storage)
    passes_t, fields = twin.day(day, ("sm_true", "t_eff"))  # (pass, lat, lon) on the cube grid
    sm_true, t_eff = fields["sm_true"], fields["t_eff"]

    rows, cols, names = np.asarray(sample["row"]), np.asarray(sample["col"]), np.asarray(sample["pass"]).astype(str)
    letters = sorted({c for name in names for c in name})
    missing = [p for p in letters if p not in passes_t]
    if missing:
        raise SmrayError(f"{twin_url}: the truth file of {day} has no pass {missing[0]!r}")

    def at(field: dict[str, np.ndarray]) -> np.ndarray:
        out = np.zeros(len(names))
        count = np.zeros(len(names))
        for p in letters:
            has = np.char.find(names, p) >= 0
            out[has] += field[p][rows[has], cols[has]]
            count[has] += 1
        with np.errstate(invalid="ignore", divide="ignore"):
            return out / count

    truth_at = at({p: sm_true[passes_t.index(p)] for p in letters})
    if not physical:
        return truth_at, None
    static_c = twin.static()
    tau_clim = tau_c_on_day(StaticFields(**static_c), day.timetuple().tm_yday)
    tb = cubemod.read_day(cube_url, storage, day)["tb"]  # (pass, channel, lat, lon)
    water = open_water(static_c, info.grid, "C" if method == "lprm" else "X", day.timetuple().tm_yday)
    retrieved: dict[str, np.ndarray] = {}
    for p in letters:
        pi = info.passes.index(p)
        tb_p = {ch: np.asarray(tb[pi, k], np.float64) for k, ch in enumerate(info.channels)}
        retrieved[p] = retrieve_day(tb_p, static_c, t_eff[passes_t.index(p)], tau_clim,
                                    [seed % 2**32, cubemod.days_since_epoch(day) % 2**32, pi], method=method,
                                    water=water)
    return truth_at, at(retrieved)


# --------------------------------------------------------------------------------------------
# The experiment
# --------------------------------------------------------------------------------------------
def _read_stats(url: str, storage: StorageConfig) -> Any:
    from smray.normalise import NormStats

    fs, path = filesystem(url, storage)
    try:
        return NormStats.from_json(read_bytes(fs, path), url)
    except FileNotFoundError:
        raise SmrayError(f"{url}: not found (did the training finish?)") from None


def shared_stats(out_url: str, kinds: Sequence[str], storage: StorageConfig) -> tuple[Any, str]:
    """(the training normalisation every model in ``kinds`` under ``<out_url>/<kind>`` carries, the URL
    read: the CNN's, else the first kind's); one line when a model's statistics differ."""
    stats_url = join(out_url, "cnn" if "cnn" in kinds else kinds[0], NORMALISATION_FILE)
    stats = _read_stats(stats_url, storage)
    for kind in kinds:
        other = _read_stats(join(out_url, kind, NORMALISATION_FILE), storage)
        if other != stats:
            raise SmrayError(f"{join(out_url, kind, NORMALISATION_FILE)}: normalisation differs from {stats_url}; "
                             f"the models were not trained on the same statistics")
    return stats, stats_url


def predict_trained(out_url: str, models: Sequence[str], x: np.ndarray, stats: Any, stats_url: str,
                    storage: StorageConfig) -> dict[str, np.ndarray]:
    """Scaled predictions (float64 ``(n,)``) of the trained models among ``models`` (CNN and pixel MLP
    from ``model.pt``, SVR from ``svr.npz`` under ``<out_url>/<kind>``) for patches ``x``."""
    from smray.baselines import load_svr, predict_svr
    from smray.normalise import NormStats

    pred: dict[str, np.ndarray] = {}
    for kind in ("cnn", "pixel"):
        if kind in models:
            url = join(out_url, kind, MODEL_FILE)
            pred[kind], ckpt_stats = predict_torch(url, x, storage)
            if ckpt_stats and NormStats.from_dict(ckpt_stats, url) != stats:
                raise SmrayError(f"{url}: the model's normalisation differs from {stats_url}")
    if "svr" in models:
        pred["svr"] = predict_svr(load_svr(join(out_url, "svr", SVR_FILE), storage=storage), x)
    return pred


def check_request(cfg: Config, cube_url: str, models: Sequence[str], test_patches: int, test_region: str,
                  train_start: dt.date | str, train_end: dt.date | str, test_day: dt.date | str) -> list[str]:
    """Refuse a request that cannot be scored (one line, before anything trains); returns the kinds
    to train, in :data:`TRAINED` order."""
    from smray import cube as cubemod

    models = tuple(dict.fromkeys(str(m).strip().lower() for m in models if str(m).strip()))
    unknown = [m for m in models if m not in MODELS]
    if unknown or not models:
        raise SmrayError(f"--models: unknown model {unknown[0]!r} (known: {', '.join(MODELS)})" if unknown
                         else "--models: no model given")
    if int(test_patches) < 1:
        raise SmrayError(f"--test-patches: must be >= 1, got {test_patches}")
    if test_region not in TEST_REGIONS:
        raise SmrayError(f"--test-region: must be one of {', '.join(TEST_REGIONS)}, got {test_region!r}")
    start, end = as_date(train_start, "train_start"), as_date(train_end, "train_end")
    day = as_date(test_day, "test_day")
    if start <= day <= end:
        raise SmrayError(f"test_day: {day} lies inside the training period {start}..{end}")
    cubemod.info(cube_url, resolve_storage(cfg.storage)).index(day)  # the test day must be in the cube
    kinds = [m for m in TRAINED if m in models]
    # the statistics come from training; the physical method alone still needs them
    if not kinds:
        raise SmrayError("--models: the physical method alone has no normalisation; add cnn, pixel or svr")
    return kinds


def run_paper_experiment(cfg: Config, cube_url: str, twin_url: str, out_url: str, *,
                         train_start: dt.date | str = dt.date(2011, 7, 1),
                         train_end: dt.date | str = dt.date(2011, 7, 30),
                         test_day: dt.date | str = dt.date(2011, 7, 31), test_patches: int = PAPER_TEST_PATCHES,
                         models: Sequence[str] = MODELS, physical_method: str = "lprm", test_region: str = "all",
                         trained: Mapping[str, Any] | None = None,
                         progress: Callable[[str], None] = print) -> dict[str, Any]:
    """Test and score the models trained in ``<out_url>/<kind>`` (see the module docstring; ``trained``
    is what the training step did, recorded as it is); returns what ``paper_experiment.json`` holds."""
    from smray import cube as cubemod
    from smray.patches import block_edge, day_counts, sample_day

    t0 = time.perf_counter()
    kinds = check_request(cfg, cube_url, models, test_patches, test_region, train_start, train_end, test_day)
    models = tuple(dict.fromkeys(str(m).strip().lower() for m in models if str(m).strip()))
    start, end = as_date(train_start, "train_start"), as_date(train_end, "train_end")
    day = as_date(test_day, "test_day")
    storage = resolve_storage(cfg.storage)
    trained = dict(trained or {})
    stats, stats_url = shared_stats(out_url, kinds, storage)

    pcfg = scoring_patch_config(cfg.patches, int(test_patches), test_region)
    edge = block_edge(cfg.patches, cubemod.info(cube_url, storage).grid)
    sample = sample_day(cube_url, storage, day, pcfg, cfg.qc.block, stats)
    counts = day_counts(cube_url, storage, day, pcfg, cfg.qc.block)
    # in the blocks region every centre inside a validation block is drawn when there are fewer than asked
    n_valid = int(counts["valid"] if test_region == "all" else max(counts["val"], len(sample["y"])))
    n = len(sample["y"])
    if n < 2:
        raise SmrayError(f"{cube_url}: test day {day} yields {n} valid patches")
    progress(f"experiment: test day {day}: {n} patches ({n_valid} valid centres, {test_patches} asked)")
    lo, span = float(stats.target_lower), float(stats.target_upper - stats.target_lower)
    y = sample["y"].astype(np.float64)
    y_raw = sample["y_raw"].astype(np.float64)

    pred_norm = predict_trained(out_url, models, sample["x"], stats, stats_url, storage)
    t_phys = time.perf_counter()
    truth, phys = truth_and_physical(twin_url, cube_url, storage, day, sample, seed=cfg.train.seed,
                                     method=physical_method, physical="physical" in models)
    if phys is not None:
        pred_norm["physical"] = (phys - lo) / span  # not clipped, like the other models' outputs
        progress(f"experiment: physical ({physical_method}) retrieved {int(np.isfinite(phys).sum())} of {n} test "
                 f"pixels in {time.perf_counter() - t_phys:.1f} s")
    order = [m for m in MODELS if m in models]
    pred_m3 = {m: lo + pred_norm[m] * span for m in order}

    rows = {m: score(pred_norm[m], pred_m3[m], y, y_raw, truth) for m in order}
    common_mask = np.isfinite(y) & np.isfinite(y_raw) & np.isfinite(truth)
    for m in order:
        common_mask &= np.isfinite(pred_norm[m])
    common = {"n": int(common_mask.sum()), "models": {m: score(pred_norm[m], pred_m3[m], y, y_raw, truth, common_mask)
                                                      for m in order}}
    result: dict[str, Any] = {
        "test_region": test_region, "block_deg": edge,
        "val_block_fraction": cfg.patches.val_block_fraction, "validation": validation_label(cfg.patches),
        "cube": cube_url, "twin": twin_url, "out": out_url, "train_start": start.isoformat(),
        "train_end": end.isoformat(), "test_day": day.isoformat(), "test_patches": int(test_patches),
        "n_test": n, "n_valid_centres": n_valid, "passes": sorted(set(sample["pass"].tolist())),
        "target_lower": lo, "target_upper": float(stats.target_upper), "normalisation": stats_url,
        "physical_method": physical_method if "physical" in models else None,
        "metrics": "R² = 1 − SSE/SST (SST about the reference mean); normalised units: reference scaled with the "
                   "training statistics (clipped to [0, 1]), predictions not clipped; m³/m³ against the cube's "
                   "swvl1; truth: the twin's sm_true at the sample's pass and cell",
        "paper": PAPER, "paper_test_patches": PAPER_TEST_PATCHES, "models": rows, "common": common,
        "training": trained, "config": to_dict(cfg), "seconds": 0.0,
    }
    result["seconds"] = time.perf_counter() - t0

    buf = io.BytesIO()
    np.savez(buf, y=y, y_raw=y_raw, truth=truth, row=sample["row"], col=sample["col"],
             pass_=sample["pass"].astype("<U2"), models=np.array(order),
             **{f"pred_{m}": pred_norm[m] for m in order}, **{f"pred_{m}_m3": pred_m3[m] for m in order})
    table = markdown_table(result)
    names = [output_name(n, test_region) for n in (PREDICTIONS_FILE, JSON_FILE, MD_FILE)]
    for name, data in zip(names, (buf.getvalue(), json.dumps(json_safe(result), indent=1).encode(),
                                  table.encode())):
        fs, path = filesystem(join(out_url, name), storage)
        write_bytes(fs, path, data)
    progress(table)
    progress(f"experiment: wrote {join(out_url, names[1])}, {names[2]} and {names[0]} in {result['seconds']:.0f} s")
    return result


def output_name(name: str, test_region: str) -> str:
    """``name`` of an output file for ``test_region`` (``paper_experiment_blocks.json`` for blocks)."""
    if test_region == "all":
        return name
    stem, dot, ext = name.rpartition(".")
    return f"{stem}_{test_region}{dot}{ext}"


def scoring_patch_config(patches: PatchConfig, test_patches: int, test_region: str) -> PatchConfig:
    """The :class:`~smray.config.PatchConfig` that draws the test day's patches: ``test_patches``
    random valid centres (``all``), or as many centres whose whole window lies in the blocked
    split's validation blocks (``blocks``; the blocks of ``patches``' block_deg, val_block_fraction
    and seed, no held-out days)."""
    if test_region == "all":
        return dataclasses.replace(patches, split="random", per_day=test_patches, train_per_day=test_patches,
                                   val_per_day=0)
    return dataclasses.replace(patches, split="blocked", per_day=test_patches, train_per_day=0,
                               val_per_day=test_patches, val_day_every=0)
