"""``smray experiment paper`` end to end on a tiny 2° twin: train on 28-30 July, test on 31 July;
all four models scored with finite metrics, R² reproducible from the saved predictions, the paper's
numbers in the Markdown table, and a re-run re-scores without retraining; ``--test-region blocks``
scores only patches inside the blocked split's validation blocks, beside the all-region report."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from pathlib import Path

import numpy as np
import pytest

from smray import cube as cubemod
from smray.cli import main
from smray.config import Config, PatchConfig, StorageConfig, to_dict
from smray.errors import SmrayError
from smray.experiment import (MODELS, PAPER, metrics, output_name, run_paper_experiment,
                              scoring_patch_config)
from smray.patches import validation_cells, window_all
from smray.testing import SMALL_RUN, build_twin_and_cube, merged, write_config

EXPERIMENT = merged(SMALL_RUN, {
    "grid": {"res": 2.0},
    "patches": {"per_day": 2000, "train_per_day": 1700, "val_per_day": 300, "block_deg": 40.0,
                "val_block_fraction": 0.3},
    "train": {"epochs": 2, "svr_max_samples": 1000},
})


def test_metrics_match_numpy() -> None:
    rng = np.random.default_rng(0)
    ref = rng.random(500)
    pred = ref + rng.normal(0, 0.1, 500)
    pred[:7] = np.nan
    m = metrics(pred, ref)
    ok = np.isfinite(pred)
    e = pred[ok] - ref[ok]
    assert m["n"] == 493
    assert m["rmse"] == pytest.approx(np.sqrt(np.mean(e ** 2)))
    assert m["r2"] == pytest.approx(1 - np.sum(e ** 2) / np.sum((ref[ok] - ref[ok].mean()) ** 2))
    assert m["bias"] == pytest.approx(e.mean())


def test_test_region_settings() -> None:
    p = PatchConfig(per_day=100, train_per_day=80, val_per_day=20, block_deg=10.0, seed=4)
    every = scoring_patch_config(p, 500, "all")
    assert (every.split, every.per_day, every.train_per_day, every.val_per_day) == ("random", 500, 500, 0)
    blocks = scoring_patch_config(p, 500, "blocks")
    assert (blocks.split, blocks.train_per_day, blocks.val_per_day, blocks.val_day_every) == ("blocked", 0, 500, 0)
    assert (blocks.block_deg, blocks.seed) == (10.0, 4)  # the blocks of the training config
    assert output_name("paper_experiment.json", "all") == "paper_experiment.json"
    assert output_name("paper_test_predictions.npz", "blocks") == "paper_test_predictions_blocks.npz"
    with pytest.raises(SmrayError, match="--test-region"):
        run_paper_experiment(Config(), "unused.zarr", "unused", "unused", test_region="west", progress=print)


def test_finished_run_depends_on_the_settings_that_change_the_weights(tmp_path: Path) -> None:
    """The experiment keeps a trained model by the train stage's one rule: a finished run stays
    finished when settings that do not shape the weights differ (a section written before it existed,
    Ray's CPUs, ``train.use_gpu``); another cube, patch, optimiser, worker count or qc.block setting
    makes it unfinished, and so does a missing artefact."""
    from smray.checkpoint import config_fingerprint
    from smray.serial import json_safe
    from smray.train import kind_config, run_state

    cfg = kind_config(Config(), "svr")
    start, end = dt.date(2011, 7, 1), dt.date(2011, 7, 30)
    (tmp_path / "svr.npz").write_bytes(b"artefact")
    record = {"kind": "svr", "cube": "c.zarr", "train_start": start.isoformat(), "train_end": end.isoformat(),
              "fingerprint": config_fingerprint(cfg.model, cfg.patches), "config": json_safe(to_dict(cfg))}
    del record["config"]["predict"]  # written before the section existed
    record["config"]["ray"]["num_cpus"] = 64
    record["config"]["train"]["use_gpu"] = True
    (tmp_path / "training.json").write_text(json.dumps(record))
    storage = StorageConfig()

    def done(c: Config, cube: str = "c.zarr") -> bool:
        return run_state(c, "svr", cube, start, end, str(tmp_path), storage).done

    assert done(cfg)
    assert not done(cfg, "other.zarr")
    for section, change in (("patches", {"seed": 7}), ("train", {"lr": 0.5}), ("train", {"workers": 2}),
                            ("qc", {"block": ("rfi_strong",)})):
        other = dataclasses.replace(cfg, **{section: dataclasses.replace(getattr(cfg, section), **change)})
        assert not done(other), (section, change)
    (tmp_path / "svr.npz").unlink()
    assert not done(cfg)


def test_a_run_recorded_before_the_day_order_setting_is_a_calendar_run(tmp_path: Path) -> None:
    """train.day_order / shuffle_buffer came after runs were recorded: a CNN run recorded without them
    read its days in calendar order, so it is current under ``day_order: calendar`` and out of date
    under the shuffled default; an SVR (one sample, no epochs) is current under either."""
    from smray.checkpoint import config_fingerprint
    from smray.serial import json_safe
    from smray.train import kind_config, run_state

    start, end = dt.date(2011, 7, 1), dt.date(2011, 7, 30)
    storage = StorageConfig()
    for kind, artefact in (("cnn", "model.pt"), ("svr", "svr.npz")):
        out = tmp_path / kind
        out.mkdir()
        (out / artefact).write_bytes(b"artefact")
        cfg = kind_config(Config(), kind)
        calendar = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, day_order="calendar"))
        record = {"kind": kind, "cube": "c.zarr", "train_start": start.isoformat(), "train_end": end.isoformat(),
                  "fingerprint": config_fingerprint(cfg.model, cfg.patches), "config": json_safe(to_dict(cfg)),
                  "epochs_completed": cfg.train.epochs}
        del record["config"]["train"]["day_order"], record["config"]["train"]["shuffle_buffer"]
        (out / "training.json").write_text(json.dumps(record))
        assert run_state(calendar, kind, "c.zarr", start, end, str(out), storage).done, kind
        state = run_state(cfg, kind, "c.zarr", start, end, str(out), storage)
        if kind == "svr":
            assert state.done
        else:
            assert not state.done and state.why.endswith("was trained with other train.day_order"), state


def test_svr_settings_and_runs_recorded_before_the_svr_search(tmp_path: Path) -> None:
    """A CNN run ignores the SVR's settings; an SVR run recorded before train.svr_features /
    svr_gamma_factor existed (centre pixel, C 1, ε 0.01) is current under those values, given as numbers
    or lists of one, and out of date under the default (the flattened patch, C and ε chosen on validation)."""
    from smray.checkpoint import config_fingerprint
    from smray.serial import json_safe
    from smray.train import kind_config, run_state

    start, end = dt.date(2011, 7, 1), dt.date(2011, 7, 30)
    storage = StorageConfig()
    old_svr = {"svr_c": 1.0, "svr_epsilon": 0.01}
    for kind, artefact in (("cnn", "model.pt"), ("svr", "svr.npz")):
        out = tmp_path / kind
        out.mkdir()
        (out / artefact).write_bytes(b"artefact")
        cfg = kind_config(Config(), kind)
        record = {"kind": kind, "cube": "c.zarr", "train_start": start.isoformat(), "train_end": end.isoformat(),
                  "fingerprint": config_fingerprint(cfg.model, cfg.patches), "config": json_safe(to_dict(cfg)),
                  "epochs_completed": cfg.train.epochs}
        train = record["config"]["train"]
        for key in ("svr_features", "svr_gamma_factor", "svr_search_samples"):
            del train[key]
        train.update(old_svr)
        (out / "training.json").write_text(json.dumps(record))

        def done(**change: object) -> bool:
            c = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, **change))
            return run_state(c, kind, "c.zarr", start, end, str(out), storage).done

        assert done(svr_features="centre", **old_svr), kind
        assert done(svr_features="centre", svr_c=(1.0,), svr_epsilon=[0.01]), kind
        if kind == "svr":
            assert not done() and not done(svr_features="centre")
            assert not done(svr_features="centre", svr_max_samples=5000, **old_svr)
        else:
            assert done() and done(svr_max_samples=5000, svr_c=(3.0, 30.0))


@pytest.mark.ray
@pytest.mark.slow
def test_paper_experiment_tiny_twin(tmp_path: Path, ray_local, capsys) -> None:
    out = tmp_path / "out"
    cfg = write_config(tmp_path / "cfg.yaml", base=EXPERIMENT)
    twin, cube = build_twin_and_cube(tmp_path, start=dt.date(2011, 7, 28), days=4, res=2.0, seed=0, spinup_days=5,
                                     config=cfg)
    argv = ["experiment", "paper", "--cube", str(cube), "--twin", str(twin), "--out", str(out), "--config", str(cfg),
            "--train-start", "2011-07-28", "--train-end", "2011-07-30", "--test-day", "2011-07-31",
            "--test-patches", "2000"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "| CNN |" in printed and "0.6512" in printed

    res = json.loads((out / "paper_experiment.json").read_text())
    assert list(res["models"]) == list(MODELS)
    assert 0 < res["n_test"] <= 2000
    for m, row in res["models"].items():
        for key in ("r2", "rmse_norm", "rmse_m3", "bias_m3", "truth_r2", "truth_rmse_m3"):
            assert row[key] is not None and np.isfinite(row[key]), (m, key)
        assert 0 < row["n"] <= res["n_test"]
    for m in ("cnn", "svr", "pixel"):
        assert res["models"][m]["n"] == res["n_test"]
    assert res["common"]["n"] == res["models"]["physical"]["n"]
    assert set(res["common"]["models"]) == set(MODELS)

    # R² and RMSE recomputed with plain numpy from the saved predictions
    z = np.load(out / "paper_test_predictions.npz")
    y, y_raw, truth = z["y"], z["y_raw"], z["truth"]
    assert len(y) == res["n_test"]
    for m in MODELS:
        p = z[f"pred_{m}"]
        ok = np.isfinite(p)
        r2 = 1 - np.sum((p[ok] - y[ok]) ** 2) / np.sum((y[ok] - y[ok].mean()) ** 2)
        assert res["models"][m]["r2"] == pytest.approx(r2, rel=1e-9, abs=1e-12)
        assert res["models"][m]["rmse_norm"] == pytest.approx(np.sqrt(np.mean((p[ok] - y[ok]) ** 2)))
        pm = z[f"pred_{m}_m3"]
        assert res["models"][m]["rmse_m3"] == pytest.approx(np.sqrt(np.mean((pm[ok] - y_raw[ok]) ** 2)))
        okt = ok & np.isfinite(truth)
        assert res["models"][m]["truth_rmse_m3"] == pytest.approx(np.sqrt(np.mean((pm[okt] - truth[okt]) ** 2)))

    md = (out / "paper_experiment.md").read_text()
    for m, paper in PAPER.items():
        assert f"{paper['r2']:.4f}" in md and f"{paper['rmse']:.4f}" in md
    assert "| pixel-wise |" in md and "| physical |" in md and "—" in md

    # a re-run finds the experiment current (the train stage's rule for every model) and retrains nothing
    before = {m: (out / m / "training.json").read_bytes() for m in ("cnn", "pixel", "svr")}
    assert main(argv) == 0
    assert "stage experiment: done already" in capsys.readouterr().out
    for m, data in before.items():
        assert (out / m / "training.json").read_bytes() == data, m
    again = json.loads((out / "paper_experiment.json").read_text())
    for m in MODELS:
        assert again["models"][m]["r2"] == pytest.approx(res["models"][m]["r2"])

    # the validation blocks only: a second report beside the first, the models untouched
    first = {n: (out / n).read_bytes() for n in ("paper_experiment.json", "paper_experiment.md")}
    assert main([*argv, "--test-region", "blocks"]) == 0
    assert "validation blocks" in capsys.readouterr().out
    for n, data in first.items():
        assert (out / n).read_bytes() == data, n
    blk = json.loads((out / "paper_experiment_blocks.json").read_text())
    assert blk["test_region"] == "blocks" and 2 <= blk["n_test"] < res["n_test"]
    zb = np.load(out / "paper_test_predictions_blocks.npz")
    static = cubemod.read_static(str(cube), None)
    info = cubemod.info(str(cube), None)
    val = validation_cells(info.grid, static["land_fraction"], PatchConfig(block_deg=40.0, val_block_fraction=0.3))
    inside = window_all(val, 9, info.grid.is_periodic)  # the whole 9×9 window in validation blocks
    assert inside[zb["row"], zb["col"]].all()
    z_all = np.load(out / "paper_test_predictions.npz")
    assert not inside[z_all["row"], z_all["col"]].all()  # the all-region test set reaches outside them
    for m in ("cnn", "svr", "pixel"):
        assert np.isfinite(blk["models"][m]["r2"]) and blk["models"][m]["n"] == blk["n_test"]
