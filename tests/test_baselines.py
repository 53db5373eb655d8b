"""The SVR baseline: fit on a deterministic subsample, NumPy prediction equal to scikit-learn's, the
hyperparameters chosen on validation patches and stored with the model, and an .npz round trip (no
pickle) over every storage backend."""

from __future__ import annotations

import dataclasses
import io
import json
import math

import numpy as np
import pytest
import yaml
from sklearn.svm import SVR

from smray.baselines import (fit_svr, load_svr, predict_svr, save_svr, scale_gamma, subsample_indices,
                             svr_features, svr_grid)
from smray.checkpoint import config_signature
from smray.config import ModelConfig, PatchConfig, TrainConfig, dump_config, load_config
from smray.errors import SmrayError
from smray.storage import filesystem, join, write_bytes


def pixel_problem(n: int, *, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Patches ``(n, 4, 9, 9)`` in [0, 1] and a target that is a smooth function of the centre pixel."""
    rng = np.random.default_rng(seed)
    x = rng.random((n, 4, 9, 9)).astype(np.float32)
    c = x[:, :, 4, 4].astype(np.float64)
    y = 0.6 * (1 - c[:, 0]) + 0.2 * c[:, 1] ** 2 + 0.2 * np.sin(3 * c[:, 2] * c[:, 3])
    return x, y.astype(np.float32)


#: one combination (no search), on the centre pixel: smray's SVR before issue 11
CFG = TrainConfig(svr_max_samples=300, svr_c=1.0, svr_epsilon=0.01, svr_features="centre", seed=0)


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
    a, n = fit_svr(x, y, dataclasses.replace(CFG, svr_max_samples=1000))
    assert n == 198
    b, _ = fit_svr(x, y, dataclasses.replace(CFG, svr_max_samples=1000))
    assert np.array_equal(a.support_vectors, b.support_vectors)
    pred = predict_svr(a, x[:3])
    assert np.isnan(pred[0]) and np.isfinite(pred[1:]).all()


def test_feature_options():
    x, _ = pixel_problem(5)
    assert svr_features(x).shape == (5, 4)
    both = svr_features(x, "centre+mean3x3")
    assert both.shape == (5, 8)
    np.testing.assert_allclose(both[:, 4:], x[:, :, 3:6, 3:6].mean(axis=(2, 3)), rtol=1e-6)
    patch = svr_features(x, "patch")
    assert patch.shape == (5, 4 * 81) and np.array_equal(patch, x.reshape(5, -1).astype(np.float64))
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


def test_grid_picks_the_best_validation_point_and_records_it(tmp_path):
    """With several C/ε combinations each is fitted and scored on validation patches; the lowest
    validation MSE wins (here ε 0.3 and C 0.001 flatten the fit, so C 1, ε 0.01 is clearly best), the
    winner is refitted on the whole subsample, and the choice and every point's score are saved with it."""
    x, y = pixel_problem(500)
    xv, yv = pixel_problem(200, seed=4)
    cfg = dataclasses.replace(CFG, svr_c=(0.001, 1.0), svr_epsilon=(0.3, 0.01), svr_search_samples=150)
    assert svr_grid(cfg) == [(0.001, 0.3, 1.0), (0.001, 0.01, 1.0), (1.0, 0.3, 1.0), (1.0, 0.01, 1.0)]
    model, n = fit_svr(x, y, cfg, x_val=xv, y_val=yv)
    rows = model.search
    assert [(r["c"], r["epsilon"]) for r in rows] == [(c, e) for c, e, _ in svr_grid(cfg)]
    assert all(r["n_fit"] == 150 and r["n_val"] == 150 for r in rows)
    best = min(range(4), key=lambda i: rows[i]["val_mse"])
    assert best == 3 and rows[3]["val_r2"] > 0.8 > max(r["val_r2"] for r in rows[:3])
    assert (model.c, model.epsilon, model.gamma_factor, n) == (1.0, 0.01, 1.0, 300)
    # the winner refitted on the whole subsample: the single-point fit of those values
    single, _ = fit_svr(x, y, CFG)
    np.testing.assert_allclose(predict_svr(model, xv), predict_svr(single, xv), rtol=0, atol=1e-10)
    assert "C 1, ε 0.01, γ 1×scale" in model.hyperparameters()

    url = str(tmp_path / "svr.npz")
    save_svr(url, model)
    loaded = load_svr(url)
    assert (loaded.c, loaded.epsilon, loaded.gamma_factor) == (1.0, 0.01, 1.0)
    assert loaded.search == json.loads(json.dumps(rows))
    np.testing.assert_allclose(predict_svr(loaded, xv), predict_svr(model, xv), rtol=0, atol=1e-12)


def test_a_grid_needs_validation_patches():
    x, y = pixel_problem(50)
    with pytest.raises(SmrayError, match="a grid of 2 points is chosen on validation patches"):
        fit_svr(x, y, dataclasses.replace(CFG, svr_c=(1.0, 10.0)))


def test_a_model_saved_before_the_hyperparameters_were_recorded_loads(tmp_path):
    x, y = pixel_problem(60)
    model, _ = fit_svr(x, y, CFG)
    buf = io.BytesIO()
    meta = {"format": "smray-svr", "version": 1, "features": "centre", "n_fitted": 60, "signature": None,
            "fingerprint": ""}
    np.savez(buf, support_vectors=model.support_vectors, dual_coef=model.dual_coef,
             intercept=np.float64(model.intercept), gamma=np.float64(model.gamma), meta=np.array(json.dumps(meta)))
    url = str(tmp_path / "old.npz")
    fs, path = filesystem(url)
    write_bytes(fs, path, buf.getvalue())
    old = load_svr(url)
    assert math.isnan(old.c) and math.isnan(old.epsilon) and old.search == []
    np.testing.assert_allclose(predict_svr(old, x), predict_svr(model, x), rtol=0, atol=1e-12)


def test_svr_settings_one_value_or_a_list():
    """A config of the single values of before (svr_c: 1, svr_epsilon: 0.01) still loads as one grid point;
    lists (or comma-separated text) load as grids and survive a dump/load; bad values are one line."""
    old = load_config(None, {"train": {"svr_c": 1, "svr_epsilon": 0.01, "svr_max_samples": 300}}).train
    assert (old.svr_c, old.svr_epsilon, old.svr_gamma_factor) == (1.0, 0.01, 1.0)
    assert svr_grid(old) == [(1.0, 0.01, 1.0)]
    cfg = load_config(None, {"train": {"svr_c": [1, 10, 100], "svr_epsilon": "0.01,0.05"}})
    assert cfg.train.svr_c == (1.0, 10.0, 100.0) and cfg.train.svr_epsilon == (0.01, 0.05)
    assert len(svr_grid(cfg.train)) == 6
    assert load_config(None, yaml.safe_load(dump_config(cfg))).train == cfg.train
    for bad, msg in (({"svr_c": []}, "train.svr_c: must be a number > 0"),
                     ({"svr_epsilon": -0.1}, "train.svr_epsilon: must be a number >= 0"),
                     ({"svr_gamma_factor": [1, 0]}, "train.svr_gamma_factor: must be a number > 0"),
                     ({"svr_features": "all"}, "train.svr_features: must be one of patch, centre")):
        with pytest.raises(SmrayError, match=msg):
            load_config(None, {"train": bad})
