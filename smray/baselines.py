"""Machine-learning baselines: an RBF support-vector regression on the patches' TBs.

The paper compares its CNN with an SVR but does not say which inputs the SVR saw. smray's default
(``train.svr_features: patch``) is the flattened ``size×size×C`` patch the CNN sees (C·size²
features); ``"centre"`` is the centre pixel's C scaled TBs (the same information as
:class:`~smray.models.PixelMLP`, the usual per-pixel retrieval, smray's default before issue 11) and
``"centre+mean3x3"`` adds the 3×3 neighbourhood mean of each channel (2C features). All take the
CNN's ``(n, C, S, S)`` patches; a 2-D ``(n, F)`` array is taken as features already computed.

The SVR is scikit-learn's ``SVR(kernel="rbf", C, epsilon, gamma)`` with ``gamma`` a multiple
(``train.svr_gamma_factor``) of scikit-learn's ``gamma="scale"``, resolved here with its formula
``1 / (F · var(X))`` and passed as a number so the value is known and stored. Its cost grows
quadratically with the sample count, so it is fitted on a deterministic subsample of at most
``train.svr_max_samples`` samples (seeded by ``train.seed``); the size used is returned and stored.

``train.svr_c``, ``svr_epsilon`` and ``svr_gamma_factor`` are one value each or lists. With more than
one combination (:func:`svr_grid`) the hyperparameters are chosen on validation patches, as the
CNN's epoch is by early stopping: every combination is fitted on a seeded subsample of
``train.svr_search_samples`` of the training subsample and scored (MSE) on as many validation
patches; the best is refitted on the whole subsample. The chosen values and every grid point's
validation score are stored with the model (:attr:`SVRRetrieval.search`).

The fitted model is kept as plain arrays (support vectors, dual coefficients, intercept, gamma)
and predicts in NumPy, ``f(x) = Σᵢ αᵢ exp(−γ‖x − svᵢ‖²) + b``; :func:`save_svr`/:func:`load_svr`
store those arrays in an ``.npz`` read with ``allow_pickle=False`` (no pickled objects).
"""

from __future__ import annotations

import io
import itertools
import json
import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.svm import SVR

from smray.config import SVR_FEATURES, ModelConfig, PatchConfig, TrainConfig, svr_values
from smray.errors import SmrayError
from smray.serial import json_safe
from smray.storage import filesystem, read_bytes, write_bytes

FORMAT = "smray-svr"
VERSION = 1
FEATURES = SVR_FEATURES


def svr_features(x: np.ndarray, features: str = "centre") -> np.ndarray:
    """SVR inputs from patches ``(n, C, S, S)`` (S odd): the whole patch flattened (``"patch"``, C·S²
    values, channel-major), or the centre pixel's C values, plus for ``"centre+mean3x3"`` each
    channel's 3×3 mean around the centre -> ``(n, F)`` float64. A 2-D ``(n, F)`` input is returned as
    float64 unchanged."""
    x = np.asarray(x)
    if x.ndim == 2:
        return x.astype(np.float64, copy=False)
    if x.ndim != 4 or x.shape[2] != x.shape[3] or x.shape[2] % 2 == 0:
        raise SmrayError(f"SVR input: expected (n, C, S, S) patches with odd S or (n, F) features, got {x.shape}")
    if features not in FEATURES:
        raise SmrayError(f"SVR features: must be one of {', '.join(FEATURES)}, got {features!r}")
    if features == "patch":
        return x.reshape(len(x), -1).astype(np.float64)
    c = x.shape[2] // 2
    out = [x[:, :, c, c]]
    if features == "centre+mean3x3":
        if x.shape[2] < 3:
            raise SmrayError("SVR features: centre+mean3x3 needs patches of at least 3×3")
        out.append(x[:, :, c - 1:c + 2, c - 1:c + 2].mean(axis=(2, 3)))
    return np.concatenate(out, axis=1).astype(np.float64)


def scale_gamma(features: np.ndarray) -> float:
    """scikit-learn's ``gamma="scale"``: ``1 / (F · var(X))`` (1.0 for constant X)."""
    var = float(features.var())
    return 1.0 / (features.shape[1] * var) if var != 0 else 1.0


@dataclass
class SVRRetrieval:
    """A fitted RBF SVR as arrays; predicts without scikit-learn."""

    support_vectors: np.ndarray  #: (m, F) float64
    dual_coef: np.ndarray  #: (m,) float64, αᵢ
    intercept: float  #: b
    gamma: float  #: RBF γ, 1/feature-unit²
    features: str  #: "patch", "centre" or "centre+mean3x3" (or "features": fitted on precomputed features)
    n_fitted: int  #: samples the SVR was fitted on
    signature: dict[str, Any] | None = None  #: smray.checkpoint.config_signature of the run (None: unknown)
    estimator: SVR | None = None  #: the scikit-learn model after a fit (not saved)
    c: float = math.nan  #: the C it was fitted with (NaN: a model saved before it was recorded)
    epsilon: float = math.nan  #: the ε it was fitted with (NaN: unknown)
    gamma_factor: float = math.nan  #: γ / scikit-learn's "scale" of the fitted subsample (NaN: unknown)
    #: the hyperparameter search: one row per grid point (:func:`svr_grid` order), with ``c``,
    #: ``epsilon``, ``gamma_factor``, ``gamma``, ``val_mse``, ``val_r2`` (scaled units), ``n_fit``,
    #: ``n_val``, ``seconds``; empty when a single combination was configured
    search: list[dict[str, Any]] = field(default_factory=list)

    @property
    def n_features(self) -> int:
        return int(self.support_vectors.shape[1])

    @property
    def fingerprint(self) -> str:
        """The config fingerprint (smray.checkpoint), "" when no signature is recorded."""
        from smray.checkpoint import signature_fingerprint

        return signature_fingerprint(self.signature) if self.signature is not None else ""

    def hyperparameters(self) -> str:
        """``C 10, ε 0.03, γ 1×scale (0.0123)``: what the model was fitted with."""
        return f"C {self.c:g}, ε {self.epsilon:g}, γ {self.gamma_factor:g}×scale ({self.gamma:.4g})"


def subsample_indices(n: int, max_samples: int, seed: int) -> np.ndarray:
    """Sorted indices of a deterministic subsample of ``min(n, max_samples)`` of ``range(n)``."""
    if n <= max_samples:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=max_samples, replace=False))


def svr_grid(train_cfg: TrainConfig) -> list[tuple[float, float, float]]:
    """Every ``(C, ε, γ factor)`` of ``train.svr_c × svr_epsilon × svr_gamma_factor``, in that order."""
    return list(itertools.product(svr_values(train_cfg.svr_c), svr_values(train_cfg.svr_epsilon),
                                  svr_values(train_cfg.svr_gamma_factor)))


def _finite(feats: np.ndarray, y: Any, what: str) -> tuple[np.ndarray, np.ndarray]:
    target = np.asarray(y, dtype=np.float64).reshape(-1)
    if len(target) != len(feats):
        raise SmrayError(f"SVR {what}: {len(feats)} samples but {len(target)} targets")
    ok = np.isfinite(feats).all(axis=1) & np.isfinite(target)
    return feats[ok], target[ok]


def _fit(feats: np.ndarray, target: np.ndarray, c: float, epsilon: float, gamma: float) -> SVR:
    return SVR(kernel="rbf", C=c, epsilon=epsilon, gamma=gamma, cache_size=500).fit(feats, target)


def search_svr(feats: np.ndarray, target: np.ndarray, val_feats: np.ndarray, val_target: np.ndarray,
               train_cfg: TrainConfig) -> list[dict[str, Any]]:
    """Score every :func:`svr_grid` point: fitted on a seeded subsample of ``train.svr_search_samples``
    of ``feats``/``target`` (finite features, already the training subsample), scored on at most as many
    of the validation samples. One row per point (see :attr:`SVRRetrieval.search`)."""
    idx = subsample_indices(len(target), train_cfg.svr_search_samples, train_cfg.seed + 1)
    f, t = feats[idx], target[idx]
    vidx = subsample_indices(len(val_target), train_cfg.svr_search_samples, train_cfg.seed + 2)
    vf, vt = val_feats[vidx], val_target[vidx]
    sst = float(((vt - vt.mean()) ** 2).sum())
    scale = scale_gamma(f)
    rows = []
    for c, eps, factor in svr_grid(train_cfg):
        t0 = time.perf_counter()
        pred = _fit(f, t, c, eps, factor * scale).predict(vf)
        sse = float(((pred - vt) ** 2).sum())
        rows.append({"c": c, "epsilon": eps, "gamma_factor": factor, "gamma": factor * scale,
                     "val_mse": sse / len(vt), "val_r2": 1.0 - sse / sst if sst > 0 else math.nan,
                     "n_fit": len(t), "n_val": len(vt), "seconds": time.perf_counter() - t0})
    return rows


def best_point(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The grid point of lowest validation MSE (the first of equals, in grid order)."""
    return min(rows, key=lambda r: r["val_mse"])


def fit_svr(x: np.ndarray, y: np.ndarray, train_cfg: TrainConfig, *, features: str | None = None,
            signature: dict[str, Any] | None = None, x_val: np.ndarray | None = None,
            y_val: np.ndarray | None = None) -> tuple[SVRRetrieval, int]:
    """Fit the SVR baseline on patches ``(n, C, S, S)`` or features ``(n, F)`` and targets ``(n,)``
    (scaled units). Non-finite samples are dropped first, then at most ``train.svr_max_samples`` are
    drawn (seed ``train.seed``). ``features``: default ``train.svr_features``. With more than one
    :func:`svr_grid` point, ``x_val``/``y_val`` (validation patches or features) choose the
    hyperparameters (:func:`search_svr`). ``signature``:
    ``smray.checkpoint.config_signature`` of the run, stored for the fingerprint check on load.
    Returns ``(model, fitted_n)``."""
    features = train_cfg.svr_features if features is None else features
    feats, target = _finite(svr_features(x, features), y, "input")
    if len(target) < 2:
        raise SmrayError(f"SVR input: need at least 2 finite samples, got {len(target)}")
    idx = subsample_indices(len(target), train_cfg.svr_max_samples, train_cfg.seed)
    feats, target = feats[idx], target[idx]
    grid = svr_grid(train_cfg)
    search: list[dict[str, Any]] = []
    if len(grid) > 1:
        if x_val is None or y_val is None:
            raise SmrayError(f"train.svr_c/svr_epsilon/svr_gamma_factor: a grid of {len(grid)} points is chosen on "
                             f"validation patches, and none were given")
        val_feats, val_target = _finite(svr_features(x_val, features), y_val, "validation")
        if len(val_target) < 2:
            raise SmrayError(f"SVR validation: need at least 2 finite samples, got {len(val_target)}")
        search = search_svr(feats, target, val_feats, val_target, train_cfg)
        best = best_point(search)
        c, eps, factor = best["c"], best["epsilon"], best["gamma_factor"]
    else:
        c, eps, factor = grid[0]
    gamma = factor * scale_gamma(feats)
    est = _fit(feats, target, c, eps, gamma)
    model = SVRRetrieval(support_vectors=np.asarray(est.support_vectors_, dtype=np.float64),
                         dual_coef=np.asarray(est.dual_coef_, dtype=np.float64).reshape(-1),
                         intercept=float(np.asarray(est.intercept_).reshape(-1)[0]), gamma=gamma,
                         features=features if np.asarray(x).ndim == 4 else "features",
                         n_fitted=len(target), signature=signature, estimator=est, c=c, epsilon=eps,
                         gamma_factor=factor, search=search)
    return model, len(target)


def predict_svr(model: SVRRetrieval, x: np.ndarray, chunk: int = 4096) -> np.ndarray:
    """Predictions ``(n,)`` float64 (scaled units) for patches or features; NaN for non-finite inputs."""
    if model.features not in FEATURES and np.ndim(x) != 2:
        raise SmrayError("SVR input: this model was fitted on precomputed features; pass (n, F) features")
    feats = svr_features(x, model.features if model.features in FEATURES else "centre")
    if feats.shape[1] != model.n_features:
        raise SmrayError(f"SVR input: model expects {model.n_features} features, got {feats.shape[1]}")
    out = np.full(len(feats), np.nan)
    ok = np.flatnonzero(np.isfinite(feats).all(axis=1))
    sv = model.support_vectors
    sv_sq = (sv * sv).sum(axis=1)
    for s in range(0, len(ok), chunk):
        f = feats[ok[s:s + chunk]]
        d2 = (f * f).sum(axis=1)[:, None] + sv_sq[None, :] - 2.0 * f @ sv.T
        np.maximum(d2, 0.0, out=d2)
        out[ok[s:s + chunk]] = np.exp(-model.gamma * d2) @ model.dual_coef + model.intercept
    return out


def _number(v: Any) -> float:
    """A stored hyperparameter (None or absent in a model saved before they were recorded: NaN)."""
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else math.nan


def save_svr(url: str, model: SVRRetrieval, *, storage: Any = None) -> None:
    """Write the model's arrays to an ``.npz`` at ``url`` (one whole-object write)."""
    buf = io.BytesIO()
    meta = {"format": FORMAT, "version": VERSION, "features": model.features, "n_fitted": int(model.n_fitted),
            "signature": model.signature, "fingerprint": model.fingerprint,
            **json_safe({"c": model.c, "epsilon": model.epsilon, "gamma_factor": model.gamma_factor,
                         "search": model.search})}
    np.savez(buf, support_vectors=model.support_vectors, dual_coef=model.dual_coef,
             intercept=np.float64(model.intercept), gamma=np.float64(model.gamma),
             meta=np.array(json.dumps(meta)))
    fs, path = filesystem(url, storage)
    write_bytes(fs, path, buf.getvalue())


def load_svr(url: str, model_cfg: ModelConfig | None = None, patch_cfg: PatchConfig | None = None, *,
             storage: Any = None) -> SVRRetrieval:
    """Read an ``.npz`` written by :func:`save_svr` (no pickle). With ``model_cfg``/``patch_cfg``, refuse
    a model whose stored fingerprint differs from theirs."""
    fs, path = filesystem(url, storage)
    try:
        data = read_bytes(fs, path)
    except FileNotFoundError:
        raise SmrayError(f"{url}: SVR model not found") from None
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            arrays = {k: z[k] for k in ("support_vectors", "dual_coef", "intercept", "gamma", "meta")}
        meta = json.loads(str(arrays["meta"]))
    except ValueError as err:
        if "pickle" in str(err):
            raise SmrayError(f"{url}: refusing to load: the SVR file holds pickled objects") from None
        raise SmrayError(f"{url}: SVR model is corrupt or truncated ({type(err).__name__})") from None
    except Exception as err:  # zip/npy errors of a damaged file have no common base
        raise SmrayError(f"{url}: SVR model is corrupt or truncated ({type(err).__name__})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT or meta.get("version") != VERSION:
        raise SmrayError(f"{url}: not a smray SVR model (format {FORMAT!r} version {VERSION} expected)")
    sv, dual = arrays["support_vectors"], arrays["dual_coef"]
    if sv.ndim != 2 or dual.shape != (sv.shape[0],) or sv.dtype.kind != "f" or dual.dtype.kind != "f":
        raise SmrayError(f"{url}: SVR model arrays have inconsistent shapes {sv.shape}, {dual.shape}")
    model = SVRRetrieval(support_vectors=sv.astype(np.float64), dual_coef=dual.astype(np.float64),
                         intercept=float(arrays["intercept"]), gamma=float(arrays["gamma"]),
                         features=str(meta["features"]), n_fitted=int(meta["n_fitted"]),
                         signature=meta.get("signature") if isinstance(meta.get("signature"), dict) else None,
                         c=_number(meta.get("c")), epsilon=_number(meta.get("epsilon")),
                         gamma_factor=_number(meta.get("gamma_factor")),
                         search=[r for r in meta.get("search") or [] if isinstance(r, dict)])
    if model.fingerprint != meta.get("fingerprint", ""):
        raise SmrayError(f"{url}: SVR model metadata is inconsistent (fingerprint does not match its signature)")
    if model_cfg is not None or patch_cfg is not None:
        if model_cfg is None or patch_cfg is None:
            raise SmrayError(f"{url}: checking the fingerprint needs both model_cfg and patch_cfg")
        from smray.checkpoint import config_signature, describe_mismatch, signature_fingerprint

        expected = config_signature(model_cfg, patch_cfg)
        if model.signature is None:
            raise SmrayError(f"{url}: SVR model records no configuration; cannot check it against this run")
        if model.fingerprint != signature_fingerprint(expected):
            raise SmrayError(f"{url}: {describe_mismatch(model.signature, expected)}")
    return model
