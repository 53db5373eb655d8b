"""Machine-learning baselines: an RBF support-vector regression on the centre pixel's TBs.

The paper compares its CNN with an SVR but does not say which inputs the SVR saw. smray's default
is the centre pixel's C scaled TBs (the same information as :class:`~smray.models.PixelMLP`), the
usual per-pixel retrieval; ``features="centre+mean3x3"`` adds the 3×3 neighbourhood mean of each
channel (2C features) as a cheap spatial-context option. Both take the CNN's ``(n, C, 9, 9)``
patches; a 2-D ``(n, F)`` array is taken as features already computed.

The SVR is scikit-learn's ``SVR(kernel="rbf", C=train.svr_c, epsilon=train.svr_epsilon,
gamma="scale")``. Its cost grows quadratically with the sample count, so it is fitted on a
deterministic subsample of at most ``train.svr_max_samples`` samples (seeded by ``train.seed``);
the size used is returned and stored. ``gamma="scale"`` is resolved here, with scikit-learn's
formula ``1 / (F · var(X))``, and passed as a number so the value is known and stored.

The fitted model is kept as plain arrays (support vectors, dual coefficients, intercept, gamma)
and predicts in NumPy, ``f(x) = Σᵢ αᵢ exp(−γ‖x − svᵢ‖²) + b``; :func:`save_svr`/:func:`load_svr`
store those arrays in an ``.npz`` read with ``allow_pickle=False`` (no pickled objects).
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.svm import SVR

from smray.config import ModelConfig, PatchConfig, TrainConfig
from smray.errors import SmrayError
from smray.storage import filesystem, read_bytes, write_bytes

FORMAT = "smray-svr"
VERSION = 1
FEATURES = ("centre", "centre+mean3x3")


def svr_features(x: np.ndarray, features: str = "centre") -> np.ndarray:
    """SVR inputs from patches ``(n, C, S, S)`` (S odd): the centre pixel's C values, plus for
    ``"centre+mean3x3"`` each channel's 3×3 mean around the centre -> ``(n, F)`` float64.
    A 2-D ``(n, F)`` input is returned as float64 unchanged."""
    x = np.asarray(x)
    if x.ndim == 2:
        return x.astype(np.float64, copy=False)
    if x.ndim != 4 or x.shape[2] != x.shape[3] or x.shape[2] % 2 == 0:
        raise SmrayError(f"SVR input: expected (n, C, S, S) patches with odd S or (n, F) features, got {x.shape}")
    if features not in FEATURES:
        raise SmrayError(f"SVR features: must be one of {', '.join(FEATURES)}, got {features!r}")
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
    features: str  #: "centre" or "centre+mean3x3"
    n_fitted: int  #: samples the SVR was fitted on
    signature: dict[str, Any] | None = None  #: smray.checkpoint.config_signature of the run (None: unknown)
    estimator: SVR | None = None  #: the scikit-learn model after a fit (not saved)

    @property
    def n_features(self) -> int:
        return int(self.support_vectors.shape[1])

    @property
    def fingerprint(self) -> str:
        """The config fingerprint (smray.checkpoint), "" when no signature is recorded."""
        from smray.checkpoint import signature_fingerprint

        return signature_fingerprint(self.signature) if self.signature is not None else ""


def subsample_indices(n: int, max_samples: int, seed: int) -> np.ndarray:
    """Sorted indices of a deterministic subsample of ``min(n, max_samples)`` of ``range(n)``."""
    if n <= max_samples:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=max_samples, replace=False))


def fit_svr(x: np.ndarray, y: np.ndarray, train_cfg: TrainConfig, *, features: str = "centre",
            signature: dict[str, Any] | None = None) -> tuple[SVRRetrieval, int]:
    """Fit the SVR baseline on patches ``(n, C, S, S)`` or features ``(n, F)`` and targets ``(n,)``
    (scaled units). Non-finite samples are dropped first, then at most ``train.svr_max_samples`` are
    drawn (seed ``train.seed``). ``signature``: ``smray.checkpoint.config_signature`` of the run,
    stored for the fingerprint check on load. Returns ``(model, fitted_n)``."""
    feats = svr_features(x, features)
    target = np.asarray(y, dtype=np.float64).reshape(-1)
    if len(target) != len(feats):
        raise SmrayError(f"SVR input: {len(feats)} samples but {len(target)} targets")
    ok = np.isfinite(feats).all(axis=1) & np.isfinite(target)
    feats, target = feats[ok], target[ok]
    if len(target) < 2:
        raise SmrayError(f"SVR input: need at least 2 finite samples, got {len(target)}")
    idx = subsample_indices(len(target), train_cfg.svr_max_samples, train_cfg.seed)
    feats, target = feats[idx], target[idx]
    gamma = scale_gamma(feats)
    est = SVR(kernel="rbf", C=train_cfg.svr_c, epsilon=train_cfg.svr_epsilon, gamma=gamma)
    est.fit(feats, target)
    model = SVRRetrieval(support_vectors=np.asarray(est.support_vectors_, dtype=np.float64),
                         dual_coef=np.asarray(est.dual_coef_, dtype=np.float64).reshape(-1),
                         intercept=float(np.asarray(est.intercept_).reshape(-1)[0]), gamma=gamma,
                         features=features if np.asarray(x).ndim == 4 else "features",
                         n_fitted=len(target), signature=signature, estimator=est)
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


def save_svr(url: str, model: SVRRetrieval, *, storage: Any = None) -> None:
    """Write the model's arrays to an ``.npz`` at ``url`` (one whole-object write)."""
    buf = io.BytesIO()
    meta = {"format": FORMAT, "version": VERSION, "features": model.features, "n_fitted": int(model.n_fitted),
            "signature": model.signature, "fingerprint": model.fingerprint}
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
                         signature=meta.get("signature") if isinstance(meta.get("signature"), dict) else None)
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
