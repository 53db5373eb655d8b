"""Training on Ray Train end to end on a tiny twin: the CNN on 2 workers learns, survives a worker
failure, and a re-run of the same command resumes; NaN in the cube never reaches the weights; the
baselines run on the same split; bad periods fail before training; artefacts are refused when
corrupt or built for other channels; the same on the local S3. Plus the Ray-free core."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from smray import cube, testing
from smray.baselines import load_svr, svr_grid
from smray.checkpoint import load_model
from smray.cli import main
from smray.config import Config, PatchConfig, TrainConfig, load_config
from smray.errors import SmrayError
from smray.models import PixelMLP
from smray.patches import count_samples
from smray.testing import SMALL_RUN, build_twin_and_cube, merged, quiet
from smray.train import (FAIL_ONCE_ENV, LAST_FILE, RAY_TRAIN_DIR, RUN_NAME, SUM_FIELDS, eval_sums,
                         metrics_from_sums, run_training, train_epoch_dp)
from smray.trainloop import array_batches, make_optimizer, train_epoch

START = dt.date(2011, 7, 1)
DAYS = 4
END = START + dt.timedelta(days=DAYS - 1)
NAN_DAY = START + dt.timedelta(days=1)
RES = 1.0

#: the test's settings (the CLI reads the same file); epochs are set per run
TRAIN = merged(SMALL_RUN, {"grid": {"res": RES},
                           "patches": {"per_day": 3000, "train_per_day": 2500, "val_per_day": 500, "size": 9},
                           "train": {"workers": 2, "lr": 0.001, "max_failures": 1, "svr_max_samples": 1500,
                                     "svr_c": [1.0, 10.0], "svr_epsilon": [0.01, 0.03]}})  # the default search


def write_config(path: Path, *, shards: Path | None = None, **train: object) -> Path:
    return testing.write_config(path, base=TRAIN, train=train, **({"paths": {"shards": str(shards)}} if shards else {}))


# --------------------------------------------------------------------------------------------
# The Ray-free core
# --------------------------------------------------------------------------------------------
def _problem(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.random((n, 4, 9, 9)).astype(np.float32)
    y = (0.6 * x[:, 0, 4, 4] + 0.3 * x[:, 2].mean(axis=(1, 2))).astype(np.float32)
    return x, y


def test_nonfinite_samples_never_reach_the_optimiser() -> None:
    x, y = _problem(96, 0)
    x[3, 1, 2, 2] = np.nan
    x[40, 0, 4, 4] = np.inf
    y[50] = np.nan
    x[64:96] = np.nan  # the last batch of 32 holds nothing finite
    torch.manual_seed(0)
    model = PixelMLP(4, hidden=(16,))
    reference = PixelMLP(4, hidden=(16,))
    reference.load_state_dict(model.state_dict())
    cfg = TrainConfig(lr=1e-2, batch_size=32)
    out = train_epoch_dp(model, array_batches(x, y, 32), make_optimizer(model, cfg))
    ref = train_epoch(reference, array_batches(x, y, 32), make_optimizer(reference, cfg))
    assert all(torch.isfinite(p).all() for p in model.parameters())
    sums = dict(zip(SUM_FIELDS, out["sums"].tolist()))
    assert sums["dropped"] == 3 + 32 and sums["n"] == 96 - 35
    assert out["skipped_batches"] == 1 and out["steps"] == 2
    # one worker: exactly the Ray-free trainloop step (same loss, same updates)
    assert ref["skipped_nonfinite"] == 35 and ref["skipped_batches"] == 1
    for a, b in zip(model.parameters(), reference.parameters()):
        torch.testing.assert_close(a, b)


def test_worker_with_an_empty_batch_still_joins_the_step() -> None:
    """Two simulated workers: one's batch is all NaN. It still runs forward/backward (a zero
    gradient), the global step uses the other worker's samples only, and both stay in step."""
    x, y = _problem(32, 1)
    bad = np.full_like(x, np.nan)
    torch.manual_seed(0)
    a, b = PixelMLP(4, hidden=(8,)), PixelMLP(4, hidden=(8,))
    b.load_state_dict(a.state_dict())
    calls: list[float] = []

    def reduce_sum(t: torch.Tensor) -> torch.Tensor:  # both workers: n = 32 + 0
        calls.append(float(t[0]))
        return torch.tensor([32.0], dtype=torch.float64)

    opt_b = make_optimizer(b, TrainConfig(optimizer="sgd", lr=0.1, momentum=0.0))
    out = train_epoch_dp(b, array_batches(bad, y, 32), opt_b, world_size=2, reduce_sum=reduce_sum)
    assert calls == [0.0] and out["steps"] == 1 and out["skipped_batches"] == 0
    assert all(p.grad is None or float(p.grad.abs().max()) == 0.0 for p in b.parameters())
    for p, q in zip(a.parameters(), b.parameters()):  # zero gradient, plain SGD: unchanged
        torch.testing.assert_close(p, q)


def test_metrics_are_summed_over_workers_not_averaged() -> None:
    torch.manual_seed(0)
    model = PixelMLP(4, hidden=(8,)).eval()
    x, y = _problem(300, 2)
    parts = [(x[:40], y[:40]), (x[40:], y[40:])]  # two unequal "workers"
    total = sum(eval_sums(model, array_batches(px, py, 64)) for px, py in parts)
    m = metrics_from_sums(total)
    with torch.no_grad():
        pred = model(torch.as_tensor(x)).double().numpy()
    err = pred - y.astype(np.float64)
    sst = ((y - y.astype(np.float64).mean()) ** 2).sum()
    assert m["n"] == 300
    assert m["loss"] == pytest.approx((err ** 2).mean(), rel=1e-9)
    assert m["r2"] == pytest.approx(1 - (err ** 2).sum() / sst, rel=1e-9)
    assert m["bias"] == pytest.approx(err.mean(), rel=1e-9)
    per_worker = [metrics_from_sums(eval_sums(model, array_batches(px, py, 64)))["r2"] for px, py in parts]
    assert abs(np.mean(per_worker) - m["r2"]) > 1e-3  # averaging per worker would be wrong


def test_memory_output_is_refused_for_ray_train() -> None:
    with pytest.raises(SmrayError, match="memory://"):
        run_training(Config(), "unused.zarr", START, END, "memory://x/out", model_kind="cnn", progress=quiet)


# --------------------------------------------------------------------------------------------
# A tiny twin and its cube, with NaN and inf injected into one day
# --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def clean_cube(tmp_path_factory, ray_local) -> Path:
    return build_twin_and_cube(tmp_path_factory.mktemp("train"), start=START, days=DAYS, res=RES, seed=3)[1]


@pytest.fixture(scope="module")
def nan_cube(clean_cube: Path) -> Path:
    """A copy of the cube whose second day holds NaN and inf TBs and a NaN reference block (the
    QC flags left as they were, so only the values say they are bad). Every training run uses it."""
    out = clean_cube.parent / "nan.zarr"
    shutil.copytree(clean_cube, out)
    day = cube.read_day(str(out), None, NAN_DAY)
    tb, qc, sw = day["tb"].copy(), day["qc"].copy(), day["swvl1"].copy()
    tb[:, 0, 40:70, 200:260] = np.nan  # 06H of both passes over a block of land
    tb[0, 3, 100:110, :] = np.inf  # 10V of the ascending pass along a band
    tb[1, :, 20:30, 60:90] = np.nan
    sw[110:130, 250:300] = np.nan
    cube.write_day(str(out), None, NAN_DAY, tb, qc, sw)
    return out


# --------------------------------------------------------------------------------------------
# The CNN on two workers: failure, resume, loss
# --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def resumed(nan_cube: Path, tmp_path_factory) -> dict:
    """Run 1: 2 epochs on 2 workers, a worker fails after epoch 1 (retried from its checkpoint).
    Run 2: the same command with 4 epochs resumes after epoch 2. Both read the patch shards
    (paths.shards) that run 1 cuts."""
    root = tmp_path_factory.mktemp("cnn")
    out = root / "out"
    marker = root / "failed-once"
    shards = root / "shards"
    cfg1 = load_config(write_config(root / "cfg2.yaml", epochs=2, shards=shards))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(FAIL_ONCE_ENV, f"1:{marker}")
        first = run_training(cfg1, str(nan_cube), START, END, str(out), progress=quiet)
    run1 = json.loads((out / "training.json").read_text())
    last1 = sorted((out / RAY_TRAIN_DIR / RUN_NAME).glob("epoch_*"))[-1] / LAST_FILE
    cfg4 = write_config(root / "cfg4.yaml", epochs=4, shards=shards)
    argv = ["train", "--cube", str(nan_cube), "--train-start", START.isoformat(), "--train-end", END.isoformat(),
            "--out", str(out), "--config", str(cfg4)]
    assert main(argv) == 0
    run2 = json.loads((out / "training.json").read_text())
    return {"out": out, "marker": marker, "first": first, "run1": run1, "run2": run2, "last1": last1,
            "cfg": load_config(cfg4), "argv": argv, "shards": shards}


@pytest.mark.ray
@pytest.mark.slow
def test_cnn_on_two_workers_learns(resumed: dict) -> None:
    hist = resumed["run2"]["history"]
    assert [h["epoch"] for h in hist] == [1, 2, 3, 4]
    assert all(h["workers"] == 2 for h in hist)
    assert hist[0]["train_n"] == 10000 and hist[0]["val_n"] == 2000  # 4 days × 2500 / 500, split evenly
    # read from the patch shards, cut once by run 1 (one file a day and split)
    assert resumed["run1"]["shards"] == resumed["run2"]["shards"] == str(resumed["shards"])
    assert len(list((resumed["shards"] / "_smray" / "days").glob("*.done"))) == DAYS
    assert len(list((resumed["shards"] / "train").glob("*.parquet"))) == DAYS
    assert hist[-1]["train_loss"] < 0.8 * hist[0]["train_loss"]
    # validation: the best later epoch beats the first (with a new day order every epoch, a 4-day run's
    # last epoch need not be its best; model.pt holds the best)
    assert min(h["val_loss"] for h in hist[1:]) < hist[0]["val_loss"]
    assert max(h["val_r2"] for h in hist[1:]) > hist[0]["val_r2"]
    for h in hist:
        for key in ("train_loss", "train_rmse", "train_r2", "val_loss", "val_rmse", "val_r2"):
            assert math.isfinite(h[key]), (key, h)
        assert h["val_rmse"] == pytest.approx(math.sqrt(h["val_loss"]))
    best = min(hist, key=lambda h: h["val_loss"])
    assert resumed["run2"]["best_epoch"] == best["epoch"]
    model, ckpt = load_model(str(resumed["out"] / "model.pt"), resumed["cfg"].model, resumed["cfg"].patches)
    assert ckpt.epoch == best["epoch"] and ckpt.norm_stats["channels"] == list(cube.CHANNELS)
    assert ckpt.best_metric == pytest.approx(best["val_loss"])


@pytest.mark.ray
@pytest.mark.slow
def test_failed_worker_is_retried_from_the_latest_checkpoint(resumed: dict) -> None:
    run1 = resumed["run1"]
    assert resumed["marker"].exists()  # the worker did fail after epoch 1
    assert run1["start_epoch"] == 1  # the retry started from epoch 1's checkpoint, not from scratch
    assert [h["epoch"] for h in run1["history"]] == [1, 2] and run1["epochs_completed"] == 2
    assert resumed["first"].epochs_completed == 2 and resumed["first"].resumed_from == 0


@pytest.mark.ray
@pytest.mark.slow
def test_rerun_resumes_epoch_count_and_weights(resumed: dict) -> None:
    run1, run2 = resumed["run1"], resumed["run2"]
    assert run2["resumed_from"] == 2 and run2["start_epoch"] == 2 and run2["epochs_completed"] == 4
    assert run2["start_weights_sha256"] == run1["last_weights_sha256"]  # started from the saved weights
    assert run2["history"][:2] == run1["history"]  # earlier epochs kept, not rerun
    assert len(run2["timings"]["epoch_s"]) == 2  # only epochs 3 and 4 ran
    # running the finished command again trains nothing more and keeps the artefact
    assert main(resumed["argv"]) == 0
    run3 = json.loads((resumed["out"] / "training.json").read_text())
    assert run3 == run2  # the train stage finds the run current: training.json is not even rewritten


@pytest.mark.ray
@pytest.mark.slow
def test_nan_in_the_cube_never_reaches_the_weights(resumed: dict, clean_cube: Path, nan_cube: Path) -> None:
    day = cube.read_day(str(nan_cube), None, NAN_DAY)
    assert np.isnan(day["tb"]).sum() > 10000 and np.isinf(day["tb"]).any() and np.isnan(day["swvl1"]).any()
    patches = PatchConfig(per_day=3000, train_per_day=2500, val_per_day=500)
    block = resumed["cfg"].qc.block
    clean = count_samples(str(clean_cube), None, [NAN_DAY], patches, block)[NAN_DAY]
    dirty = count_samples(str(nan_cube), None, [NAN_DAY], patches, block)[NAN_DAY]
    assert dirty["valid"] < clean["valid"] - 1000  # the bad pixels are no centres and no window members
    model, _ = load_model(str(resumed["out"] / "model.pt"))
    assert all(torch.isfinite(p).all() for p in model.parameters())
    for h in resumed["run2"]["history"]:
        assert h["skipped_nonfinite"] == 0 and h["skipped_batches"] == 0  # counted and reported, none got through


@pytest.mark.ray
def test_artefact_for_other_channels_or_corrupt_is_refused(resumed: dict, tmp_path: Path) -> None:
    cfg: Config = resumed["cfg"]
    stacked = dataclasses.replace(cfg.patches, stack_passes=True)  # the model would need 8 channels
    with pytest.raises(SmrayError, match="stack_passes") as err:
        load_model(str(resumed["out"] / "model.pt"), cfg.model, stacked)
    assert "\n" not in str(err.value)
    bad = tmp_path / "model.pt"
    shutil.copy(resumed["out"] / "model.pt", bad)
    shutil.copy(resumed["out"] / "model.pt.json", tmp_path / "model.pt.json")
    data = bytearray(bad.read_bytes())
    data[len(data) // 2] ^= 0xFF
    bad.write_bytes(bytes(data))
    with pytest.raises(SmrayError, match="corrupt"):
        load_model(str(bad), cfg.model, cfg.patches)


@pytest.mark.ray
def test_incompatible_or_corrupt_checkpoint_is_refused_before_training(resumed: dict, tmp_path: Path,
                                                                       capsys) -> None:
    out = tmp_path / "copy"
    shutil.copytree(resumed["out"], out)
    argv = list(resumed["argv"])
    argv[argv.index("--out") + 1] = str(out)
    other = write_config(tmp_path / "lr.yaml", epochs=6, lr=0.01)
    assert main([*argv[:-1], str(other)]) == 2
    msg = capsys.readouterr().err.strip()
    assert "cannot resume" in msg and "optimiser.lr" in msg and "\n" not in msg
    last = sorted((out / RAY_TRAIN_DIR / RUN_NAME).glob("epoch_*"))[-1] / LAST_FILE
    last.write_bytes(last.read_bytes()[:-100])
    assert main([*argv[:-1], str(write_config(tmp_path / "six.yaml", epochs=6))]) == 2
    msg = capsys.readouterr().err.strip()
    assert "cannot resume" in msg and "truncated or corrupt" in msg and "\n" not in msg


# --------------------------------------------------------------------------------------------
# Baselines on the same split; the pixel model with cube and output on the local S3
# --------------------------------------------------------------------------------------------
@pytest.mark.ray
def test_svr_baseline_on_the_same_split(resumed: dict, nan_cube: Path, tmp_path: Path) -> None:
    cfg = resumed["cfg"]  # with the CNN's patch shards (the same cut: nothing is cut again)
    lines: list[str] = []
    svr = run_training(cfg, str(nan_cube), START, END, str(tmp_path / "svr"), model_kind="svr", progress=lines.append)
    assert any("patch shards" in line and "(0 cut now" in line for line in lines), lines
    from_cube = dataclasses.replace(cfg, paths=dataclasses.replace(cfg.paths, shards=None))
    again = run_training(from_cube, str(nan_cube), START, END, str(tmp_path / "svr2"), model_kind="svr",
                         progress=quiet)
    assert (svr.n_train, svr.n_val) == (resumed["run2"]["n_train"], resumed["run2"]["n_val"]) == (10000, 2000)
    info = json.loads((tmp_path / "svr" / "training.json").read_text())
    assert svr.n_fitted == info["n_fitted"] == 1500 and info["val_n"] == 2000 and info["n_support"] > 0
    assert math.isfinite(svr.val_rmse_m3) and math.isfinite(svr.val_r2) and svr.val_r2 > 0
    # a deterministic subsample: the same from the shards as cut from the cube (the validation sums
    # only add up in another order)
    assert svr.n_fitted == again.n_fitted and svr.val_rmse == pytest.approx(again.val_rmse, rel=1e-12)
    model = load_svr(str(tmp_path / "svr" / "svr.npz"), cfg.model.__class__(kind="svr"), cfg.patches)
    assert model.n_fitted == 1500 and model.features == info["features"] == cfg.train.svr_features
    # C, ε, γ chosen on validation patches among the default grid: every point's score recorded, with the model too
    grid = info["svr_search"]
    assert len(grid) == len(svr_grid(cfg.train)) > 1 and model.search == grid
    best = min(grid, key=lambda r: r["val_mse"])
    assert (info["svr_c"], info["svr_epsilon"], info["svr_gamma_factor"]) == (model.c, model.epsilon,
                                                                              model.gamma_factor)
    assert (best["c"], best["epsilon"], best["gamma_factor"]) == (model.c, model.epsilon, model.gamma_factor)
    assert all(r["n_fit"] == 1500 and r["n_val"] == 2000 for r in grid)
    search = [line for line in lines if line.startswith("train: svr grid")]
    assert len(search) == 1 and f"chosen {model.hyperparameters()}" in search[0], lines
    assert (tmp_path / "svr" / "normalisation.json").exists()


@pytest.mark.ray
@pytest.mark.s3
@pytest.mark.slow
def test_pixel_baseline_on_local_s3(resumed: dict, nan_cube: Path, s3_bucket: str, tmp_path: Path) -> None:
    """The pixel MLP through the same pipeline, the cube, its patch shards and every output on the
    local S3 (Ray Train's checkpoints through the S3 filesystem); the same split as the CNN; on one
    worker (days in calendar order) the same weights as a run on the local copy that cuts its
    patches from the cube every epoch (deterministic for the seed)."""
    import s3fs

    fs = s3fs.S3FileSystem()
    cube_url = f"{s3_bucket}/nan.zarr"
    fs.put(str(nan_cube), cube_url.removeprefix("s3://"), recursive=True)
    out = f"{s3_bucket}/models/pixel"
    base = resumed["cfg"]
    cfg = dataclasses.replace(base, train=dataclasses.replace(base.train, epochs=1, day_order="calendar"),
                              paths=dataclasses.replace(base.paths, shards=f"{s3_bucket}/shards"))
    pixel = run_training(cfg, cube_url, START, END, out, model_kind="pixel", workers=1, progress=quiet)
    assert len(fs.ls(f"{s3_bucket.removeprefix('s3://')}/shards/train")) == DAYS
    assert (pixel.n_train, pixel.n_val) == (resumed["run2"]["n_train"], resumed["run2"]["n_val"])
    assert pixel.epochs_completed == 1 and math.isfinite(pixel.val_r2) and math.isfinite(pixel.val_rmse_m3)
    assert pixel.history[0]["val_n"] == 2000 and pixel.history[0]["workers"] == 1
    pixel_cfg = dataclasses.replace(cfg.model, kind="pixel")
    model, ckpt = load_model(f"{out}/model.pt", pixel_cfg, cfg.patches)
    assert ckpt.model_config.kind == "pixel" and all(torch.isfinite(p).all() for p in model.parameters())
    info = json.loads(fs.cat_file(f"{out.removeprefix('s3://')}/training.json"))
    assert info["history"][0]["epoch"] == 1 and "secret" not in json.dumps(info["config"])
    ckpts = fs.ls(f"{out.removeprefix('s3://')}/{RAY_TRAIN_DIR}/{RUN_NAME}")
    assert any(p.endswith("epoch_0001") for p in ckpts)
    from_cube = dataclasses.replace(cfg, paths=dataclasses.replace(cfg.paths, shards=None))
    run_training(from_cube, str(nan_cube), START, END, str(tmp_path / "local"), model_kind="pixel", workers=1,
                 progress=quiet)
    local = json.loads((tmp_path / "local" / "training.json").read_text())
    assert local["best_weights_sha256"] == info["best_weights_sha256"]
    assert local["history"][0]["train_loss"] == info["history"][0]["train_loss"]


# --------------------------------------------------------------------------------------------
# Bad input fails before training, in one line
# --------------------------------------------------------------------------------------------
@pytest.mark.ray
@pytest.mark.parametrize("start, end, expected", [
    (dt.date(2011, 7, 3), dt.date(2011, 7, 2), "paths.train.end: 2011-07-02 is before start 2011-07-03"),
    (dt.date(2011, 6, 28), dt.date(2011, 7, 2), "not inside the time axis 2011-07-01..2011-07-04"),
    (dt.date(2011, 7, 3), dt.date(2011, 7, 9), "not inside the time axis"),
])
def test_bad_period_fails_before_training(clean_cube: Path, tmp_path: Path, capsys, start, end, expected) -> None:
    cfg = write_config(tmp_path / "c.yaml", epochs=1)
    out = tmp_path / "out"
    assert main(["train", "--cube", str(clean_cube), "--train-start", start.isoformat(), "--train-end",
                 end.isoformat(), "--out", str(out), "--config", str(cfg)]) == 2
    err = capsys.readouterr().err.strip()
    assert expected in err and "\n" not in err
    assert not (out / RAY_TRAIN_DIR).exists()


@pytest.mark.ray
def test_too_few_patches_fail_before_training(clean_cube: Path, tmp_path: Path) -> None:
    cfg = load_config(write_config(tmp_path / "c.yaml", epochs=1),
                      {"patches": {"per_day": 60, "train_per_day": 50, "val_per_day": 10}})
    with pytest.raises(SmrayError, match="yields 50 training patches .* need at least 100") as err:
        run_training(cfg, str(clean_cube), START, START, str(tmp_path / "out"), progress=quiet)
    assert "\n" not in str(err.value)
    assert not (tmp_path / "out" / RAY_TRAIN_DIR).exists()


@pytest.mark.ray
def test_workers_that_leave_no_cpu_for_reading_are_refused(clean_cube: Path, tmp_path: Path) -> None:
    cfg = load_config(write_config(tmp_path / "c.yaml", epochs=1, cpus_per_worker=2.0))
    with pytest.raises(SmrayError, match="train.cpus_per_worker"):
        run_training(cfg, str(clean_cube), START, END, str(tmp_path / "out"), progress=quiet)
