"""The SVR baseline: fit on a deterministic subsample, NumPy prediction equal to scikit-learn's, and an
.npz round trip (no pickle) over every storage backend."""

from __future__ import annotations

import io

import numpy as np
import pytest
from sklearn.svm import SVR

from smray.baselines import (fit_svr, load_svr, predict_svr, save_svr, scale_gamma, subsample_indices,
                             svr_features)
from smray.checkpoint import config_signature
from smray.config import ModelConfig, PatchConfig, TrainConfig
from smray.errors import SmrayError
from smray.storage import filesystem, join, write_bytes


def pixel_problem(n: int, *, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Patches ``(n, 4, 9, 9)`` in [0, 1] and a target that is a smooth function of the centre pixel."""
    rng = np.random.default_rng(seed)
    x = rng.random((n, 4, 9, 9)).astype(np.float32)
    c = x[:, :, 4, 4].astype(np.float64)
    y = 0.6 * (1 - c[:, 0]) + 0.2 * c[:, 1] ** 2 + 0.2 * np.sin(3 * c[:, 2] * c[:, 3])
    return x, y.astype(np.float32)


CFG = TrainConfig(svr_max_samples=300, svr_c=1.0, svr_epsilon=0.01, seed=0)


def test_fit_predict_and_subsample_size():
    x, y = pixel_problem(500)
    model, n = fit_svr(x, y, CFG)
    assert n == 300 == model.n_fitted and model.n_features == 4
    xt, yt = pixel_problem(200, seed=1)
    pred = predict_svr(model, xt)
    r2 = 1 - np.sum((pred - yt) ** 2) / np.sum((yt - yt.mean()) ** 2)
    assert r2 > 0.9, r2
    small, n_small = fit_svr(x[:120], y[:120], CFG)
    assert n_small == 120


def test_numpy_prediction_equals_sklearn():
    x, y = pixel_problem(400)
    model, _ = fit_svr(x, y, CFG)
    xt, _ = pixel_problem(150, seed=2)
    np.testing.assert_allclose(predict_svr(model, xt, chunk=37), model.estimator.predict(svr_features(xt)),
                               rtol=0, atol=1e-10)
    # gamma is scikit-learn's gamma="scale", resolved
    feats = svr_features(x)[subsample_indices(400, 300, 0)]
    ref = SVR(kernel="rbf", C=1.0, epsilon=0.01, gamma="scale").fit(feats, y[subsample_indices(400, 300, 0)])
    assert model.gamma == pytest.approx(ref._gamma) == pytest.approx(scale_gamma(feats))
    np.testing.assert_allclose(predict_svr(model, xt), ref.predict(svr_features(xt)), rtol=0, atol=1e-10)


def test_subsample_is_deterministic_and_drops_nonfinite():
    assert np.array_equal(subsample_indices(1000, 100, 5), subsample_indices(1000, 100, 5))
    assert not np.array_equal(subsample_indices(1000, 100, 5), subsample_indices(1000, 100, 6))
    x, y = pixel_problem(200)
    x[0, 2, 4, 4] = np.nan
    y[1] = np.inf
    x[2, 0, 0, 0] = np.nan  # not a feature of the centre-pixel SVR: the sample stays
    a, n = fit_svr(x, y, TrainConfig(svr_max_samples=1000))
    assert n == 198
    b, _ = fit_svr(x, y, TrainConfig(svr_max_samples=1000))
    assert np.array_equal(a.support_vectors, b.support_vectors)
    pred = predict_svr(a, x[:3])
    assert np.isnan(pred[0]) and np.isfinite(pred[1:]).all()


def test_feature_options():
    x, _ = pixel_problem(5)
    assert svr_features(x).shape == (5, 4)
    both = svr_features(x, "centre+mean3x3")
    assert both.shape == (5, 8)
    np.testing.assert_allclose(both[:, 4:], x[:, :, 3:6, 3:6].mean(axis=(2, 3)), rtol=1e-6)
    with pytest.raises(SmrayError, match="features"):
        svr_features(x, "everything")


def test_npz_round_trip_equals_sklearn(storage_root):
    x, y = pixel_problem(300)
    signature = config_signature(ModelConfig(kind="svr"), PatchConfig())
    model, _ = fit_svr(x, y, CFG, features="centre+mean3x3", signature=signature)
    url = join(storage_root, "svr", "model.npz")
    save_svr(url, model)
    loaded = load_svr(url, ModelConfig(kind="svr"), PatchConfig())
    assert loaded.features == "centre+mean3x3" and loaded.n_fitted == 300 and loaded.estimator is None
    xt, _ = pixel_problem(100, seed=3)
    np.testing.assert_allclose(predict_svr(loaded, xt), model.estimator.predict(svr_features(xt, "centre+mean3x3")),
                               rtol=0, atol=1e-10)
    with pytest.raises(SmrayError, match="model trained for channels 06H,06V,10H,10V, cube has 10H,10V"):
        load_svr(url, ModelConfig(kind="svr"), PatchConfig(channels=("10H", "10V")))


def test_pickled_or_damaged_npz_is_refused(tmp_path):
    url = str(tmp_path / "evil.npz")
    buf = io.BytesIO()
    np.savez(buf, support_vectors=np.array([object()], dtype=object), dual_coef=np.zeros(1),
             intercept=np.float64(0), gamma=np.float64(1), meta=np.array("{}"))
    fs, path = filesystem(url)
    write_bytes(fs, path, buf.getvalue())
    with pytest.raises(SmrayError, match="pickled") as err:
        load_svr(url)
    assert url in str(err.value)
    x, y = pixel_problem(50)
    model, _ = fit_svr(x, y, CFG)
    good = str(tmp_path / "good.npz")
    save_svr(good, model)
    data = open(good, "rb").read()
    write_bytes(fs, path, data[: len(data) // 2])
    with pytest.raises(SmrayError, match="corrupt or truncated"):
        load_svr(url)
