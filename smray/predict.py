"""Batch inference: a trained model (or the physical retrieval) → daily global maps in the map store.

:func:`run_predict` is ``smray predict``. The driver checks, plans and collects:

1. The model (a training run directory: ``model.pt`` for cnn/pixel, ``svr.npz`` for svr; or the word
   ``physical``) must take channels the cube has; the date range must lie inside the cube; an
   existing store must come from the same model and settings (``--new-store`` replaces it). All of
   this fails with one line before any work.
2. The uncertainty table is calibrated once per model and cached beside it (:func:`calibrate`).
3. The store template is written (or its time axis extended); days with a completion record are
   skipped.
4. A Ray Data actor pool (``map_batches`` with the callable class :class:`PredictDay`, an
   ``ActorPoolStrategy`` of ``predict.actors``; GPU actors when the cluster has GPUs, else
   ``predict.actor_cpus`` CPUs each) predicts one day per call: the model is loaded once per actor,
   the day read from the cube, predicted per pass and combined, and the actor writes the day's
   chunks and then its record straight to the store. A crashed actor is restarted and its day
   retried: Ray Data 2.60 creates pool actors with ``max_restarts=-1`` and ``max_task_retries=-1``
   by default (``ActorPoolMapOperator._apply_default_remote_args``; passing them again is
   deprecated), which ``tests/test_predict.py`` checks by killing an actor mid-run.
5. The census proves every day of the range has its record and all its chunks; the metadata is
   consolidated.

Validity is the training patches' (:func:`smray.patches.valid_centres`) without the reference: a
cell is predicted in a pass when it is land (``land_fraction >= 0.5``), carries no blocking QC flag
of ``qc.block`` other than ``reference_missing``, and the whole 9×9 window of the model's channels
is finite in that pass. The window rule is applied exactly as for training (rows beyond the poles
or region edges count as invalid; longitudes wrap on a global grid), and the image is padded by 4
cells the same way (wrapped in longitude when global, NaN elsewhere) so an edge cell reads the
window its training patch would have. ``soil_moisture`` is the mean of the passes predicted;
a stacked-pass model (``patches.stack_passes``) gives only the combined map.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import math
import os
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from smray import __version__, package_versions
from smray import cube as cubemod
from smray import mapstore
from smray.config import Config, config_from_dict, to_dict, validation_label
from smray.daystore import signature_differences
from smray.errors import SmrayError
from smray.normalise import LAND_MIN, NormStats, block_mask, block_names, outside_range, scale_inputs, unscale_target
from smray.patches import window_all
from smray.qc import FLAGS
from smray.serial import as_optional_date, read_json
from smray.storage import StorageConfig, check_reachable, filesystem, join, read_bytes, resolve_storage, write_bytes

PHYSICAL = "physical"
#: model kinds that are torch networks (predict.precision and predict.use_gpu apply to them)
TORCH_KINDS = ("cnn", "pixel")
UNCERTAINTY_FILE = "uncertainty.json"
UNCERTAINTY_FORMAT = "smray-uncertainty-1"
#: calibration: at most this many quantile bins of the predicted value per pass-count group, and at
#: least this many residuals per bin (a group with fewer than one bin's worth uses the pooled table)
MAX_BINS = 10
MIN_PER_BIN = 200
#: the physical retrieval's ancillary-noise seed (as smray.experiment: seed, day, pass)
PHYSICAL_METHOD = "lprm"
#: packages whose versions go into the store attributes
PACKAGES = ("smray", "ray", "torch", "numpy", "xarray", "zarr", "scikit-learn")


# --------------------------------------------------------------------------------------------
# The model and what it needs
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ModelSource:
    """A model as the driver sees it (metadata only; actors load the weights)."""

    kind: str  #: cnn, pixel, svr or physical
    url: str  #: the run directory, or "physical"
    artefact: str | None  #: model.pt / svr.npz URL (None: physical)
    sha256: str | None  #: SHA-256 of the artefact's bytes
    fingerprint: str  #: config fingerprint (smray.checkpoint) or a digest of the physical method
    channels: tuple[str, ...]  #: cube channels the model reads, in input order
    stack_passes: bool  #: both passes stacked into one input
    size: int  #: patch edge
    norm_stats: dict[str, Any] | None  #: NormStats.to_dict() the model was trained with
    validation: str = ""  #: how the model's validation patches were drawn (config.validation_label; "" physical)


def _validation(model_url: str, storage: StorageConfig) -> str:
    """How the model's validation patches were drawn, from its training record ("" without one)."""
    from smray.checkpoint import TRAINING_FILE

    try:
        rec = read_json(join(model_url, TRAINING_FILE), storage)
    except (FileNotFoundError, SmrayError):
        return ""
    if rec.get("validation"):
        return str(rec["validation"])
    patches = (rec.get("config") or {}).get("patches")
    return validation_label(patches) if isinstance(patches, dict) else ""


def _sha256(fs: Any, path: str) -> str:
    return hashlib.sha256(read_bytes(fs, path)).hexdigest()


def describe_model(model_url: str, storage: StorageConfig, cube: cubemod.CubeInfo) -> ModelSource:
    """Read the model's metadata and check it against the cube's channels (one-line SmrayError)."""
    from smray.checkpoint import read_metadata
    from smray.checkpoint import MODEL_FILE, NORMALISATION_FILE, SVR_FILE

    if model_url.strip().lower() == PHYSICAL:
        need = ("06H", "06V")
        missing = [c for c in need if c not in cube.channels]
        if missing:
            raise SmrayError(f"physical: the LPRM retrieval needs channel {missing[0]}, the cube {cube.url} has "
                             f"{','.join(cube.channels)}")
        digest = hashlib.sha256(json.dumps({"physical": PHYSICAL_METHOD}).encode()).hexdigest()
        return ModelSource(kind=PHYSICAL, url=PHYSICAL, artefact=None, sha256=None, fingerprint=digest,
                           channels=cube.channels, stack_passes=False, size=1, norm_stats=None)
    fs, root = filesystem(model_url, storage)
    pt, npz = join(model_url, MODEL_FILE), join(model_url, SVR_FILE)
    if fs.exists(join(root, MODEL_FILE)):
        meta = read_metadata(pt, storage=storage)
        sig, kind, in_channels = meta["signature"], str(meta["kind"]), int(meta["in_channels"])
        artefact, sha, fingerprint, stats = pt, meta["pt_sha256"], meta["fingerprint"], meta.get("norm_stats")
    elif fs.exists(join(root, SVR_FILE)):
        from smray.baselines import load_svr

        svr = load_svr(npz, storage=storage)
        if svr.signature is None:
            raise SmrayError(f"{npz}: the SVR records no configuration (channels unknown); retrain it")
        sig, kind, in_channels = svr.signature, "svr", -1
        artefact, sha, fingerprint, stats = npz, _sha256(fs, join(root, SVR_FILE)), svr.fingerprint, None
    else:
        raise SmrayError(f"{model_url}: no {MODEL_FILE} or {SVR_FILE} here (is it a training run directory "
                         f"written by smray train, or the word 'physical'?)")
    if stats is None:
        try:
            stats = read_json(join(model_url, NORMALISATION_FILE), storage)
        except FileNotFoundError:
            raise SmrayError(f"{join(model_url, NORMALISATION_FILE)}: not found; the model's normalisation is "
                             f"unknown") from None
    patches = sig.get("patches", {})
    channels = tuple(patches.get("channels", ()))
    stack = bool(patches.get("stack_passes", False))
    missing = [c for c in channels if c not in cube.channels]
    if missing or not channels:
        raise SmrayError(f"{model_url}: model trained for channels {','.join(channels) or '(none)'}, the cube "
                         f"{cube.url} has {','.join(cube.channels)}")
    if kind != "svr" and in_channels != len(channels) * (2 if stack else 1):
        raise SmrayError(f"{model_url}: the model takes {in_channels} input channels but was trained for channels "
                         f"{','.join(channels)}{' (passes stacked)' if stack else ''}")
    if stack and len(cube.passes) < 2:
        raise SmrayError(f"{model_url}: a stacked-pass model needs both passes, the cube has {cube.passes}")
    return ModelSource(kind=kind, url=model_url, artefact=artefact, sha256=sha, fingerprint=fingerprint,
                       channels=channels, stack_passes=stack, size=int(patches.get("size", 9)),
                       norm_stats=stats, validation=_validation(model_url, storage))


# --------------------------------------------------------------------------------------------
# The pure per-day core
# --------------------------------------------------------------------------------------------
def prediction_mask(qc_block: int | Iterable[str]) -> int:
    """The QC bits that block a prediction: ``qc.block`` without ``reference_missing`` (the
    reference is not an input)."""
    return block_mask(qc_block if isinstance(qc_block, int) else tuple(qc_block)) & ~FLAGS["reference_missing"]


def valid_inputs(day: dict[str, np.ndarray], land_fraction: np.ndarray, mask: int, ch_idx: list[int], size: int,
                 periodic: bool, land_min: float = LAND_MIN) -> np.ndarray:
    """bool ``(pass, lat, lon)``: land, no blocking QC bit of ``mask``, and the whole ``size``×``size``
    window finite in the channels ``ch_idx`` (the rule of :func:`smray.patches.valid_centres`)."""
    lf = np.asarray(land_fraction)
    land = np.isfinite(lf) & (lf >= land_min)
    clean = (np.asarray(day["qc"]) & mask) == 0
    finite = np.isfinite(np.asarray(day["tb"])[:, ch_idx]).all(axis=1)
    return clean & land[None] & window_all(finite, size, periodic)


def pad_image(img: np.ndarray, h: int, periodic: bool) -> np.ndarray:
    """``(C, H, W)`` → ``(C, H+2h, W+2h)``: columns wrapped when ``periodic`` (else NaN), rows NaN —
    the windows :func:`smray.patches.extract_patches` cuts at the edges."""
    if h == 0:
        return img
    c, ny, nx = img.shape
    if periodic:
        img = img[:, :, np.arange(-h, nx + h) % nx]
    else:
        img = np.pad(img, ((0, 0), (0, 0), (h, h)), constant_values=np.nan)
    return np.pad(img, ((0, 0), (h, h), (0, 0)), constant_values=np.nan)


@dataclass
class DayInput:
    """One model input of a day: ``label`` the cube pass index (−1: passes stacked), ``image`` the
    padded scaled TBs ``(C, H+size-1, W+size-1)``, ``valid`` bool ``(H, W)``, ``clipped`` the valid
    cells with a TB outside the range the model's scaling was fitted on (clipped to it)."""

    label: int
    image: np.ndarray
    valid: np.ndarray
    clipped: int = 0


def day_inputs(day: dict[str, np.ndarray], land_fraction: np.ndarray, source: ModelSource, stats: NormStats,
               ch_idx: list[int], mask: int, periodic: bool) -> list[DayInput]:
    """The model inputs of one day: one per pass, or one stacked input (A then D)."""
    valid = valid_inputs(day, land_fraction, mask, ch_idx, source.size, periodic)
    h = source.size // 2
    tb = np.asarray(day["tb"])
    if source.stack_passes:
        raw = np.concatenate([tb[p][ch_idx] for p in range(tb.shape[0])], axis=0)
        channels = source.channels * tb.shape[0]
        img = scale_inputs(raw, stats, channels, axis=0)
        ok = valid.all(axis=0)
        return [DayInput(-1, pad_image(img, h, periodic), ok,
                         int((outside_range(raw, stats, channels, axis=0) & ok).sum()))]
    inputs = []
    for p in range(tb.shape[0]):
        raw = tb[p][ch_idx]
        inputs.append(DayInput(p, pad_image(scale_inputs(raw, stats, source.channels, axis=0), h, periodic), valid[p],
                               int((outside_range(raw, stats, source.channels, axis=0) & valid[p]).sum())))
    return inputs


class Predictor:
    """A loaded model: ``predict(inp)`` → ``(H, W)`` float32 m³/m³, NaN where not valid."""

    def __init__(self, source: ModelSource, storage: StorageConfig, *, band_rows: int = 16,
                 use_gpu: bool = False, precision: str = "fp32") -> None:
        self.source = source
        self.band_rows = band_rows
        self.stats = NormStats.from_dict(source.norm_stats or {}, f"{source.url} normalisation")
        self.precision = "fp32"
        if source.kind in ("cnn", "pixel"):
            from smray import inference
            from smray.checkpoint import load_model

            self.device = inference.select_device(bool(use_gpu), "predict.use_gpu")
            self.precision = inference.resolve_precision(precision, self.device)
            model, _ = load_model(source.artefact, storage=storage)
            self.model = inference.prepare_for_inference(model, self.precision, self.device)
        else:
            from smray.baselines import load_svr

            self.model = load_svr(source.artefact, storage=storage)

    def predict(self, inp: DayInput) -> np.ndarray:
        out01 = self.predict_scaled(inp)
        return unscale_target(out01, self.stats)

    def predict_scaled(self, inp: DayInput) -> np.ndarray:
        if self.source.kind in ("cnn", "pixel"):
            from smray.inference import autocast
            from smray.models import fcn_forward

            with autocast(self.device, self.precision):
                return fcn_forward(self.model, inp.image, inp.valid, band_rows=self.band_rows)
        from smray.baselines import predict_svr
        from smray.patches import extract_patches

        s = self.source.size
        out = np.full(inp.valid.shape, np.nan, dtype=np.float32)
        rows, cols = np.nonzero(inp.valid)
        ch = list(range(inp.image.shape[0]))
        for k in range(0, rows.size, 20000):  # bounds the (n, C, 9, 9) patch array
            r, c = rows[k:k + 20000], cols[k:k + 20000]
            patches = extract_patches(inp.image[None], r + s // 2, c + s // 2, 0, ch, s, False)
            out[r, c] = predict_svr(self.model, patches)
        return out


class PhysicalPredictor:
    """The LPRM-like retrieval (:func:`smray.physical.retrieve_day`) with the twin's ancillary data:
    static fields from ``truth/static.nc`` and the day's ``t_eff``, mapped to the cube grid by
    nearest cell centre (as :func:`smray.experiment.truth_and_physical`)."""

    def __init__(self, twin_url: str, cube_url: str, storage: StorageConfig, seed: int) -> None:
        from smray.truth import TwinTruth

        self.seed = seed
        cinfo = cubemod.info(cube_url, storage)
        self.truth = TwinTruth.on_cube(twin_url, cube_url, storage)
        self.static = self.truth.static()
        self.channels = cinfo.channels
        self.grid = cinfo.grid

    def predict_day(self, day: dict[str, np.ndarray], date: dt.date, valid: np.ndarray) -> np.ndarray:
        """``(pass, H, W)`` float32 m³/m³ for the cube day ``day`` where ``valid``."""
        from smray.physical import retrieve_day
        from smray.synth.fields import StaticFields, tau_c_on_day

        passes_t, fields = self.truth.day(date, ("t_eff",))
        t_eff = fields["t_eff"]
        doy = date.timetuple().tm_yday
        tau = tau_c_on_day(StaticFields(**self.static), doy)
        extra: dict[str, Any] = {}
        try:  # the ancillary open-water correction, as smray.experiment applies it
            from smray.physical import open_water
        except ImportError:
            pass
        else:
            extra["water"] = open_water(self.static, self.grid, "C", doy)
        out = np.full(valid.shape, np.nan, dtype=np.float32)
        for pi, p in enumerate(cubemod.PASSES):
            if p not in passes_t or not valid[pi].any():
                continue
            tb = {ch: np.where(valid[pi], np.asarray(day["tb"][pi, k], np.float64), np.nan)
                  for k, ch in enumerate(self.channels)}
            theta = retrieve_day(tb, self.static, t_eff[passes_t.index(p)], tau,
                                 [self.seed % 2**32, cubemod.days_since_epoch(date) % 2**32, pi],
                                 method=PHYSICAL_METHOD, **extra)
            out[pi] = np.where(valid[pi], theta, np.nan)
        return out


def combine(per_pass: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mean of the finite passes, number of finite passes) of ``(pass, H, W)``; NaN where none."""
    n = np.isfinite(per_pass).sum(axis=0)
    with np.errstate(invalid="ignore"):
        mean = np.where(n > 0, np.nansum(per_pass, axis=0) / np.maximum(n, 1), np.nan)
    return mean.astype(np.float32), n.astype(np.int8)


# --------------------------------------------------------------------------------------------
# Uncertainty: split-conformal residual quantiles, cached beside the model
# --------------------------------------------------------------------------------------------
def conformal_quantile(residuals: np.ndarray, coverage: float) -> float:
    """The split-conformal half-width: the ⌈(n+1)·coverage⌉-th smallest |residual| (inf when n is
    too small for the coverage)."""
    r = np.sort(np.abs(np.asarray(residuals, dtype=np.float64)))
    k = math.ceil((r.size + 1) * coverage)
    return float(r[k - 1]) if 1 <= k <= r.size else math.inf


def fit_table(pred: np.ndarray, resid: np.ndarray, coverage: float) -> dict[str, Any]:
    """Quantile bins of the predicted value (up to :data:`MAX_BINS`, ≥ :data:`MIN_PER_BIN` residuals
    each) and the conformal half-width of each."""
    nb = int(max(1, min(MAX_BINS, pred.size // MIN_PER_BIN)))
    edges = np.quantile(pred, np.linspace(0.0, 1.0, nb + 1))
    b = np.clip(np.searchsorted(edges[1:-1], pred, side="right"), 0, nb - 1)
    half = [conformal_quantile(resid[b == i], coverage) for i in range(nb)]
    return {"edges": [float(e) for e in edges], "halfwidth": half, "n": [int((b == i).sum()) for i in range(nb)]}


def lookup(table: dict[str, Any], pred: np.ndarray) -> np.ndarray:
    """Half-width for each predicted value from a :func:`fit_table` table (edge bins open-ended)."""
    edges = np.asarray(table["edges"], dtype=np.float64)
    half = np.asarray(table["halfwidth"], dtype=np.float64)
    b = np.clip(np.searchsorted(edges[1:-1], pred, side="right"), 0, half.size - 1)
    return half[b]


def halfwidth_map(calibration: dict[str, Any] | None, combined: np.ndarray, n_pass: np.ndarray) -> np.ndarray:
    """The per-pixel half-width of the combined map (NaN where no prediction or no calibration)."""
    out = np.full(combined.shape, np.nan, dtype=np.float32)
    if not calibration:
        return out
    ok = np.isfinite(combined)
    for g in np.unique(n_pass[ok]):
        sel = ok & (n_pass == g)
        table = calibration["groups"].get(str(int(g))) or calibration["pooled"]
        out[sel] = lookup(table, combined[sel].astype(np.float64))
    return out


def _calibration_days(days: list[dt.date], limit: int) -> list[dt.date]:
    if len(days) <= limit:
        return days
    idx = np.unique(np.round(np.linspace(0, len(days) - 1, limit)).astype(int))
    return [days[i] for i in idx]


def calibrate(source: ModelSource, predictor: Predictor, storage: StorageConfig, coverage: float,
              max_days: int, progress: Callable[[str], None] = print) -> dict[str, Any] | None:
    """The uncertainty calibration of a trained model, computed once and cached as
    ``<model>/uncertainty.json`` (rewritten when the model, coverage or day budget changes).

    The model's validation centres of its training period (``training.json``: cube, period and
    patch settings; :func:`smray.patches.plan_day` split ``val``, up to ``max_days`` days spread
    over the period) are predicted exactly as maps are (per pass, then combined), and
    |swvl1 − combined prediction| at those cells is binned by the predicted value, separately for
    cells with one and two passes; each bin's half-width is the split-conformal quantile. Their
    targets were never training targets. Returns None for the physical retrieval (no validation data).
    """
    if source.kind == PHYSICAL:
        return None
    from smray.patches import plan_cube_day
    from smray.checkpoint import read_training_json

    fs, root = filesystem(source.url, storage)
    key = {"model_sha256": source.sha256, "coverage": float(coverage), "max_days": int(max_days),
           "format": UNCERTAINTY_FORMAT}
    if predictor.precision != "fp32":  # calibrated on maps of the arithmetic they are written in
        key["precision"] = predictor.precision
    path = join(root, UNCERTAINTY_FILE)
    try:
        cached = read_json(join(source.url, UNCERTAINTY_FILE), storage)
        if isinstance(cached, dict) and all(cached.get(k) == v for k, v in key.items()):
            return cached
    except (FileNotFoundError, SmrayError):
        pass
    t0 = time.perf_counter()
    tj = read_training_json(source.url, storage)
    tcfg = config_from_dict({k: tj["config"][k] for k in ("patches", "qc") if k in tj.get("config", {})})
    cube_url = tj["cube"]
    start, end = dt.date.fromisoformat(tj["train_start"]), dt.date.fromisoformat(tj["train_end"])
    cinfo, period = cubemod.period_dates(cube_url, storage, start, end)
    days = _calibration_days(period, max_days)
    land = cubemod.read_static(cube_url, storage)["land_fraction"]
    ch_idx = [cinfo.channels.index(c) for c in source.channels]
    mask = prediction_mask(tcfg.qc.block)
    preds, resids, npass = [], [], []
    for d in days:
        _, day, plan, _, _ = plan_cube_day(cube_url, storage, d, tcfg.patches, tcfg.qc.block, LAND_MIN)
        cells = np.unique(np.stack([plan.rows[plan.is_val], plan.cols[plan.is_val]], axis=1), axis=0)
        if not cells.size:
            continue
        combined, n = predict_maps(predictor, day, land, ch_idx, mask, cinfo.grid.is_periodic)[1:3]
        r, c = cells[:, 0], cells[:, 1]
        ref = np.asarray(day["swvl1"], np.float64)[r, c]
        p = combined[r, c].astype(np.float64)
        ok = np.isfinite(ref) & np.isfinite(p)
        preds.append(p[ok])
        resids.append(np.abs(ref[ok] - p[ok]))
        npass.append(n[r, c][ok])
    if not preds or sum(a.size for a in preds) < MIN_PER_BIN:
        raise SmrayError(f"{source.url}: too few validation cells ({sum(a.size for a in preds)}) in the training "
                         f"period {start}..{end} of {cube_url} to calibrate the uncertainty (need {MIN_PER_BIN})")
    pred, resid, n = np.concatenate(preds), np.concatenate(resids), np.concatenate(npass)
    groups = {str(g): fit_table(pred[n == g], resid[n == g], coverage) for g in (1, 2)
              if (n == g).sum() >= MIN_PER_BIN}
    result = {**key, "method": "split conformal: |reference - prediction| quantile per bin of the predicted value "
                               "and number of passes, finite-sample corrected",
              "model": source.url, "cube": cube_url, "days": [d.isoformat() for d in days], "n": int(pred.size),
              "n_by_passes": {str(g): int((n == g).sum()) for g in (1, 2)},
              "groups": groups, "pooled": fit_table(pred, resid, coverage),
              "seconds": round(time.perf_counter() - t0, 2)}
    write_bytes(fs, path, json.dumps(result, indent=1).encode())
    progress(f"predict: calibrated the {100 * coverage:g}% interval on {pred.size} validation cells of "
             f"{len(days)} training day(s) in {result['seconds']:.0f} s -> {join(source.url, UNCERTAINTY_FILE)}")
    return result


# --------------------------------------------------------------------------------------------
# One day: predict and write
# --------------------------------------------------------------------------------------------
def predict_maps(predictor: Predictor, day: dict[str, np.ndarray], land: np.ndarray, ch_idx: list[int], mask: int,
                 periodic: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """(per pass ``(2, H, W)``, combined ``(H, W)``, passes used ``(H, W)``) m³/m³ for one cube day, and
    the model inputs (pass × cell) whose TBs were clipped to the fitted scaling range."""
    ny, nx = land.shape
    per_pass = np.full((len(cubemod.PASSES), ny, nx), np.nan, dtype=np.float32)
    combined = None
    clipped = 0
    for inp in day_inputs(day, land, predictor.source, predictor.stats, ch_idx, mask, periodic):
        if not inp.valid.any():
            continue
        clipped += inp.clipped
        out = predictor.predict(inp)
        if inp.label < 0:
            combined = out
        else:
            per_pass[inp.label] = out
    if combined is not None:  # stacked passes: one prediction from both
        n = np.where(np.isfinite(combined), 2, 0).astype(np.int8)
        return per_pass, combined, n, clipped
    combined, n = combine(per_pass)
    return per_pass, combined, n, clipped


@dataclass(frozen=True)
class PredictContext:
    """What every day task shares (picklable; the storage is resolved in the driver)."""

    cube: str
    out: str
    storage: StorageConfig
    source: ModelSource
    mask: int
    calibration: dict[str, Any] | None
    band_rows: int
    use_gpu: bool
    torch_threads: int
    twin: str | None
    seed: int
    precision: str = "fp32"  #: resolved predict.precision (smray.inference)
    overlap: bool = True  #: read the next day and write the last one while the model runs (smray.overlap)


class PredictDay:
    """The Ray Data actor: loads the model once, then per call predicts and writes the batch's days."""

    def __init__(self, ctx: PredictContext) -> None:
        if ctx.source.kind in ("cnn", "pixel"):
            import torch

            torch.set_num_threads(max(1, ctx.torch_threads))
        self.ctx = ctx
        cinfo = cubemod.info(ctx.cube, ctx.storage)
        self.periodic = cinfo.grid.is_periodic
        self.ch_idx = [cinfo.channels.index(c) for c in ctx.source.channels]
        self.land = cubemod.read_static(ctx.cube, ctx.storage)["land_fraction"]
        if ctx.source.kind == PHYSICAL:
            self.predictor: Any = PhysicalPredictor(ctx.twin or "", ctx.cube, ctx.storage, ctx.seed)
        else:
            self.predictor = Predictor(ctx.source, ctx.storage, band_rows=ctx.band_rows, use_gpu=ctx.use_gpu,
                                       precision=ctx.precision)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        rows = list(self.run_many([cubemod.date_of(int(d)) for d in batch["day"]]))
        return {k: np.array([r[k] for r in rows]) for k in ("day", "status", "n_valid", "seconds")}

    def run(self, date: dt.date) -> dict[str, Any]:
        """Predict ``date`` and write its chunks and record; returns the record's summary."""
        return next(self.run_many([date]))

    def run_many(self, dates: list[dt.date]) -> Iterator[dict[str, Any]]:
        """:meth:`run` for each of ``dates`` in order; with ``ctx.overlap`` the next day is read and the
        last one written while the model runs (:func:`smray.overlap.pipelined`)."""
        from smray.overlap import pipelined

        for _, summary in pipelined(dates, self.read, self.compute, self.write, overlap=self.ctx.overlap):
            yield summary

    def read(self, date: dt.date) -> tuple[float, dict[str, np.ndarray]]:
        """(start time, the cube day) — the input of :meth:`compute`."""
        return time.perf_counter(), cubemod.read_day(self.ctx.cube, self.ctx.storage, date)

    def compute(self, date: dt.date, read: tuple[float, dict[str, np.ndarray]]) -> tuple[float, dict[str, Any]]:
        """The day's maps, QC and record from :meth:`read`'s output (no I/O but the physical
        retrieval's ancillary file)."""
        t0, day = read
        ctx = self.ctx
        if ctx.source.kind == PHYSICAL:
            valid = valid_inputs(day, self.land, ctx.mask, self.ch_idx, 1, self.periodic)
            per_pass = self.predictor.predict_day(day, date, valid)
            combined, n = combine(per_pass)
            clipped = None  # the physical retrieval scales nothing
        else:
            per_pass, combined, n, clipped = predict_maps(self.predictor, day, self.land, self.ch_idx, ctx.mask,
                                                          self.periodic)
        maps = {"soil_moisture": combined, "soil_moisture_asc": per_pass[0], "soil_moisture_desc": per_pass[1],
                "soil_moisture_uncertainty": halfwidth_map(ctx.calibration, combined, n)}
        n_valid = int(np.isfinite(combined).sum())
        record = {"status": "ok" if n_valid else "no_input", "n_valid": n_valid,
                  "n_asc": int(np.isfinite(per_pass[0]).sum()), "n_desc": int(np.isfinite(per_pass[1]).sum()),
                  "n_two_passes": int((n == 2).sum()), "pid": os.getpid(),
                  "seconds": round(time.perf_counter() - t0, 3)}
        if clipped is not None:
            record["n_clipped_inputs"] = clipped
        return t0, {"maps": maps, "qc": day["qc"], "record": record}

    def write(self, date: dt.date, computed: tuple[float, dict[str, Any]]) -> dict[str, Any]:
        """Write :meth:`compute`'s chunks, then the record; returns the day's summary."""
        t0, out = computed
        mapstore.write_day(self.ctx.out, self.ctx.storage, date, out["maps"], out["qc"], out["record"])
        return {"day": cubemod.days_since_epoch(date), "status": out["record"]["status"],
                "n_valid": out["record"]["n_valid"], "seconds": time.perf_counter() - t0}


# --------------------------------------------------------------------------------------------
# The driver
# --------------------------------------------------------------------------------------------
@dataclass
class PredictSummary:
    """What a predict run did."""

    out: str  #: map store URL
    days_written: int  #: days predicted and written by this run (ok and no_input)
    days_skipped: int  #: days already finished before this run (not rewritten)
    days_no_input: int  #: days of this run with no valid input (written all-missing, status no_input)
    seconds: float  #: wall time of run_predict
    seconds_per_day: float  #: seconds / days written (nan when none)
    actors: int  #: actors in the pool (0: nothing to do)
    kind: str = ""  #: cnn, pixel, svr or physical
    no_input: list[dt.date] = field(default_factory=list)  #: the no_input days of this run
    calibration_n: int = 0  #: validation cells behind the uncertainty (0: none)

    def line(self) -> str:
        noin = f", {self.days_no_input} without valid input ({', '.join(d.isoformat() for d in self.no_input)})" \
            if self.days_no_input else ""
        return (f"predict: {self.kind}: wrote {self.days_written} day(s){noin}, {self.days_skipped} already done, "
                f"{self.actors} actor(s), {self.seconds:.1f} s ({self.seconds_per_day:.2f} s/day) -> {self.out}")


def store_signature(source: ModelSource, cube_url: str, cinfo: cubemod.CubeInfo, cfg: Config,
                    precision: str = "fp32") -> dict[str, Any]:
    """What every day of a store must share: model, cube, grid, validity and interval settings, and
    the arithmetic (``precision``, recorded when not fp32)."""
    extra = {"precision": precision} if precision != "fp32" else {}
    return {**extra, "model_kind": source.kind, "model": source.url, "model_sha256": source.sha256,
            "model_fingerprint": source.fingerprint, "cube": cube_url, "grid": cinfo.grid.to_dict(),
            "qc_block": list(block_names(prediction_mask(cfg.qc.block))), "coverage": float(cfg.predict.coverage),
            "seed": int(cfg.train.seed) if source.kind == PHYSICAL else None}


def check_store(out_url: str, storage: StorageConfig, signature: dict[str, Any], new_store: bool) -> None:
    """Refuse (one line) an existing store written by another model or with other settings, unless
    ``new_store``, which deletes it."""
    if not cubemod.exists(out_url, storage):
        return
    fmt = dict(cubemod.open_group(out_url, storage).attrs).get("smray_format")
    if fmt != mapstore.MAP_FORMAT:  # never delete a cube or anything else that is not a map store
        raise SmrayError(f"{out_url}: not an smray map store (smray_format {fmt!r}); refusing to write into or "
                         f"replace it; choose another --out")
    if new_store:
        mapstore.remove(out_url, storage)
        return
    old = mapstore.info(out_url, storage).attrs
    try:
        theirs = json.loads(old.get("smray_predict_signature", "{}"))
    except ValueError:
        theirs = {}
    diff = signature_differences(theirs, signature)
    if diff:
        shown = "; ".join(f"{k}: store has {theirs.get(k)!r}, this run {signature.get(k)!r}" for k in diff[:3])
        raise SmrayError(f"{out_url}: map store was written with a different model or settings ({shown}); "
                         f"use --new-store (predict.new_store) to replace it or choose another --out")


def _norm_stats_attr(source: ModelSource, cube_url: str, storage: StorageConfig) -> str:
    if source.norm_stats is not None:
        return json.dumps(source.norm_stats)
    from smray.normalise import load_stats

    try:
        return load_stats(cube_url, storage).to_json()
    except SmrayError:
        return "{}"


def _store_attrs(cfg: Config, source: ModelSource, cube_url: str, storage: StorageConfig, cinfo: cubemod.CubeInfo,
                 signature: dict[str, Any]) -> dict[str, Any]:
    return {
        "smray_model_kind": source.kind, "smray_model": source.url, "smray_model_fingerprint": source.fingerprint,
        "smray_checkpoint_sha256": source.sha256 or "", "smray_model_artefact": source.artefact or "",
        "smray_model_validation": source.validation, "smray_norm_stats": _norm_stats_attr(source, cube_url, storage), "smray_cube": cube_url,
        "smray_config": json.dumps(to_dict(cfg)), "smray_packages": json.dumps(package_versions(PACKAGES)),
        "smray_predict_signature": json.dumps(signature), "smray_channels": list(source.channels),
        "source": f"smray {__version__} predict ({source.kind})",
        "history": f"{dt.datetime.now(dt.timezone.utc).isoformat(timespec='seconds')}: smray predict",
    }


def _resources(cfg: Config, source: ModelSource, n_days: int,
               progress: Callable[[str], None]) -> tuple[bool, int, float]:
    """(GPU actors, actors, CPUs per actor). Waits until the cluster holds at least the actors asked
    for (``predict.actors``; else one), so an autoscaling cluster starts them; then sizes the pool to
    what is up."""
    from smray import raysupport as rs

    pc = cfg.predict
    gpus = rs.cluster_resource("GPU")
    torch_model = source.kind in ("cnn", "pixel")
    limits = rs.cluster_limits() or {}
    use_gpu = torch_model and ((gpus >= 1 or limits.get("GPU", 0.0) >= 1) if pc.use_gpu is None
                               else bool(pc.use_gpu))
    want = max(1, min(pc.actors or 1, n_days))
    unit = {"GPU": 1.0} if use_gpu else {"CPU": pc.actor_cpus}
    unit.update(pc.task_resources or {})
    have = rs.wait_for_resources({k: v * want for k, v in unit.items()}, bundles=[unit] * want,
                                 what=f"{want} prediction actor(s)", field="predict.use_gpu" if use_gpu
                                 else "predict.actors", timeout_s=cfg.ray.resource_timeout_s, progress=progress)
    gpus, cpus = have.get("GPU", 0.0), have.get("CPU", 0.0)
    if pc.actors is not None:
        actors = pc.actors
    elif use_gpu:
        actors = int(gpus)
    else:
        actors = max(1, int(cpus // max(1.0, pc.actor_cpus)))
    actors = max(1, min(actors, n_days))
    if not use_gpu and actors * pc.actor_cpus > cpus + 1e-9:
        raise SmrayError(f"predict.actors: {actors} actors x {pc.actor_cpus:g} CPUs exceed the cluster's {cpus:g} "
                         f"CPUs; lower predict.actors or predict.actor_cpus")
    return use_gpu, actors, pc.actor_cpus


def run_predict(cfg: Config, cube_url: str, model_url: str, out_url: str, start: dt.date | str | None = None,
                end: dt.date | str | None = None, progress: Callable[[str], None] = print, *,
                twin_url: str | None = None, engine: str = "ray") -> PredictSummary:
    """Predict the daily maps of ``start``..``end`` (default: the whole cube) with the model at
    ``model_url`` into the map store ``out_url`` (see the module docstring).

    ``engine``: "ray" (the actor pool; starts a local Ray runtime when none is connected and stops
    it again) or "local" (the same per-day work in a plain loop in this process, for comparisons).
    """
    t0 = time.perf_counter()
    if engine not in ("ray", "local"):
        raise SmrayError(f"engine: must be 'ray' or 'local', got {engine!r}")
    storage = resolve_storage(cfg.storage)
    pc = cfg.predict
    cinfo0 = cubemod.info(cube_url, storage)
    fields = ("paths.predict.start", "paths.predict.end")
    first, last = as_optional_date(start, fields[0], cinfo0.start), as_optional_date(end, fields[1], cinfo0.end)
    cinfo, dates = cubemod.period_dates(cube_url, storage, first, last, fields=fields)
    if out_url.rstrip("/") == cube_url.rstrip("/"):
        raise SmrayError(f"--out: {out_url} is the cube itself; choose another URL for the map store")
    source = describe_model(model_url, storage, cinfo)
    if source.kind == PHYSICAL:
        _check_twin(twin_url, storage)
    device = planned_device(cfg, engine) if source.kind in TORCH_KINDS else "cpu"
    precision = plan_precision(cfg, source.kind, engine)
    signature = store_signature(source, cube_url, cinfo, cfg, precision)
    check_store(out_url, storage, signature, pc.new_store)
    check_reachable(out_url, storage, create=True)
    calibration = None
    if source.kind != PHYSICAL:
        calibration = calibrate(source, calibration_predictor(source, storage, pc.band_rows, device, precision),
                                storage, pc.coverage, pc.calibration_days, progress)
    unc = {"method": calibration["method"] if calibration else "none (the physical retrieval has no validation "
                                                                 "data to calibrate on)",
           "calibration": {k: calibration[k] for k in ("n", "n_by_passes", "days", "groups", "pooled", "cube",
                                                       "model_sha256")} if calibration else {}}
    mapstore.create_or_extend(out_url, storage, cinfo.grid, dates[0], dates[-1], cubemod.read_static(cube_url, storage),
                              _store_attrs(cfg, source, cube_url, storage, cinfo, signature), coverage=pc.coverage,
                              uncertainty=unc)
    done = mapstore.day_records(out_url, storage)
    pending = [d for d in dates if d not in done]
    summary = PredictSummary(out=out_url, days_written=0, days_skipped=len(dates) - len(pending), days_no_input=0,
                             seconds=0.0, seconds_per_day=math.nan, actors=0, kind=source.kind,
                             calibration_n=int(calibration["n"]) if calibration else 0)
    if summary.days_skipped:
        progress(f"predict: {summary.days_skipped} of {len(dates)} day(s) already in {out_url}; skipping them")
    ctx = PredictContext(cube=cube_url, out=out_url, storage=storage, source=source,
                         mask=prediction_mask(cfg.qc.block), calibration=calibration, band_rows=pc.band_rows,
                         use_gpu=bool(pc.use_gpu) if engine == "local" else False,
                         torch_threads=max(1, round(pc.actor_cpus)) if engine == "ray" else (os.cpu_count() or 1),
                         twin=twin_url, seed=cfg.train.seed, precision=precision, overlap=pc.overlap)
    if pending:
        results = _run_ray(cfg, ctx, pending, summary, progress) if engine == "ray" else \
            _run_local(ctx, pending, summary)
        for res in results:
            date = cubemod.date_of(int(res["day"]))
            summary.days_written += 1
            if res["status"] == "no_input":
                summary.days_no_input += 1
                summary.no_input.append(date)
            rate = summary.days_written / max(time.perf_counter() - t0, 1e-9) * 60
            progress(f"predict: {date} {res['status']}, {int(res['n_valid'])} pixels ({summary.days_written}/"
                     f"{len(pending)}, {rate:.1f} days/min)")
    census = mapstore.finalize(out_url, storage, extra_attrs={"smray_config": json.dumps(to_dict(cfg))})
    if census.missing_chunks:
        raise SmrayError(f"{out_url}: chunk census: {len(census.missing_chunks)} chunk(s) of finished days are missing "
                         f"(e.g. {census.missing_chunks[0]})")
    left = census.pending_in(dates[0], dates[-1])
    if left:
        raise SmrayError(f"{out_url}: chunk census: {len(left)} day(s) of {dates[0]}..{dates[-1]} have no record "
                         f"(e.g. {left[0]}); re-run to finish them")
    summary.no_input.sort()
    summary.seconds = time.perf_counter() - t0
    summary.seconds_per_day = summary.seconds / summary.days_written if summary.days_written else math.nan
    progress(summary.line())
    return summary


def planned_device(cfg: Config, engine: str = "ray") -> str:
    """Where the torch models will run, "cuda" or "cpu", decided before any work. ``predict.use_gpu``
    true where there can be no GPU is one line naming the field: the local engine asks this machine
    for a CUDA device; Ray asks the connected cluster what it can ever hold
    (:func:`smray.raysupport.refuse_impossible`: a local runtime, or the node types an autoscaler
    publishes; GPUs merely not up yet are waited for by :func:`_resources`), or, before a local runtime
    is started, this machine (the runtime it will be). A cluster not connected yet (``ray.address``) is
    asked when it is. ``use_gpu`` null: GPUs when the cluster has or can have them (as
    :func:`_resources` decides)."""
    from smray import inference
    from smray import raysupport as rs

    pc = cfg.predict
    if engine == "local":
        return inference.select_device(bool(pc.use_gpu), "predict.use_gpu").type
    if rs.is_initialized():
        if pc.use_gpu:
            rs.refuse_impossible({"GPU": 1.0}, what="GPU prediction actors", field="predict.use_gpu")
            return "cuda"
        limits = rs.cluster_limits() or {}
        gpus = max(rs.cluster_resource("GPU"), limits.get("GPU", 0.0))
        return "cuda" if pc.use_gpu is None and gpus >= 1 else "cpu"
    if (cfg.ray.address or os.environ.get("RAY_ADDRESS")) not in (None, "", "local"):
        return "cuda" if pc.use_gpu else "cpu"
    import torch

    gpus = torch.cuda.device_count()
    if pc.use_gpu and gpus < 1:
        raise SmrayError("predict.use_gpu: GPU prediction actors need 1 GPU; this machine, where the local Ray "
                         "runtime starts, has no CUDA device")
    return "cuda" if pc.use_gpu or (pc.use_gpu is None and gpus >= 1) else "cpu"


def plan_precision(cfg: Config, kind: str, engine: str = "ray") -> str:
    """``predict.precision`` resolved for the device a model of ``kind`` will run on
    (:func:`planned_device`) before any work: one line naming ``predict.precision`` when that device
    cannot run it, or ``predict.use_gpu`` when it asks for a GPU that is not there; fp32 for models
    that are not torch networks (SVR, physical), which ignore the setting. GPU actors of a cluster
    joined later re-resolve it for CUDA (:func:`_run_ray`)."""
    from smray import inference

    if kind not in TORCH_KINDS:
        return "fp32"
    return inference.resolve_precision(cfg.predict.precision, planned_device(cfg, engine))


def calibration_predictor(source: ModelSource, storage: StorageConfig, band_rows: int, device: str,
                          precision: str) -> Predictor:
    """The driver's model for the calibration: the planned device and precision where the driver has
    them (a local runtime is this machine); a CPU driver of a GPU cluster calibrates on its CPU, in
    ``precision`` when the CPU runs it natively, else in fp32."""
    import torch

    from smray import inference

    on_gpu = device == "cuda" and torch.cuda.is_available()
    if not on_gpu and precision != "fp32" and not inference.cpu_supports(precision):
        precision = "fp32"
    return Predictor(source, storage, band_rows=band_rows, use_gpu=on_gpu, precision=precision)


def _check_twin(twin_url: str | None, storage: StorageConfig) -> None:
    from smray.truth import STATIC_PATH

    if not twin_url:
        raise SmrayError("--twin: the physical retrieval needs the twin archive root (its truth/static.nc and "
                         "truth/ t_eff files); none given")
    fs, path = filesystem(join(twin_url, STATIC_PATH), storage)
    if not fs.exists(path):
        raise SmrayError(f"{join(twin_url, STATIC_PATH)}: not found (is --twin the twin archive root?)")


def _run_local(ctx: PredictContext, pending: list[dt.date], summary: PredictSummary) -> Iterator[dict[str, Any]]:
    """The same per-day work in a plain loop (no Ray): the baseline of the benchmark."""
    summary.actors = 1
    yield from PredictDay(ctx).run_many(pending)


def _run_ray(cfg: Config, ctx: PredictContext, pending: list[dt.date], summary: PredictSummary,
             progress: Callable[[str], None]) -> Iterator[dict[str, Any]]:
    """The Ray edge: the actor pool over the pending days; yields each day's summary as it finishes."""
    from smray.raysupport import init_ray, shutdown_ray

    started = init_ray(cfg.ray)
    try:
        use_gpu, actors, actor_cpus = _resources(cfg, ctx.source, len(pending), progress)
        if use_gpu:
            from smray.inference import resolve_precision

            ctx = dataclasses.replace(ctx, use_gpu=True, precision=resolve_precision(cfg.predict.precision, "cuda"))
        summary.actors = actors
        progress(f"predict: {len(pending)} day(s) on {actors} {'GPU' if use_gpu else 'CPU'} actor(s) -> {ctx.out}")
        yield from actor_pool_rows(ctx, pending, actors, actor_cpus, use_gpu, cfg.predict.task_resources)
    finally:
        shutdown_ray(started)


def actor_pool_rows(ctx: PredictContext, dates: list[dt.date], actors: int, actor_cpus: float,
                    use_gpu: bool, resources: dict[str, float] | None = None) -> Iterator[dict[str, Any]]:
    """A pool of ``actors`` :class:`PredictDay` actors (:func:`smray.raysupport.map_batches_actors`) over
    one row per day (one day per call); yields the per-day rows. Custom ``resources`` pin the actors to
    the nodes that have them."""
    from smray import raysupport as rs

    ds = rs.dataset_from_items([{"day": cubemod.days_since_epoch(d)} for d in dates])
    ds = rs.map_batches_actors(ds, PredictDay, actors=actors, batch_size=1, constructor_kwargs={"ctx": ctx},
                               num_gpus=1 if use_gpu else None, num_cpus=None if use_gpu else actor_cpus,
                               resources=resources)
    for row in ds.iter_rows():
        yield {k: (v.item() if hasattr(v, "item") else v) for k, v in row.items()}


__all__ = ["PredictSummary", "PredictDay", "PredictContext", "ModelSource", "Predictor", "PhysicalPredictor",
           "run_predict", "planned_device", "plan_precision", "calibration_predictor", "describe_model", "calibrate",
           "valid_inputs", "pad_image", "day_inputs", "predict_maps",
           "combine", "conformal_quantile", "fit_table", "lookup", "halfwidth_map", "prediction_mask"]
