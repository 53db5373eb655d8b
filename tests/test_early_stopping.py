"""Early stopping on the validation loss, through Ray Train end to end: on a tiny twin (1,800
training patches) with a high learning rate the CNN's validation loss stops improving within a few
epochs; with ``patience: 1`` training ends one epoch after the best, long before ``epochs``, and the
artefact holds the best epoch's weights, not the last ones. A re-run of the stopped run trains
nothing more. One worker, a fixed seed and Ray Data's preserved order make the run deterministic
(here: best epoch 2, stopped after 3)."""

from __future__ import annotations

import datetime as dt
import json
import math

import numpy as np
import pytest

from smray.checkpoint import load_model
from smray.cli import main
from smray.config import load_config
from smray.testing import SMALL_RUN, build_twin_and_cube, merged, quiet, write_config
from smray.train import run_training, state_sha256

START = dt.date(2011, 7, 1)
DAYS = 3
END = START + dt.timedelta(days=DAYS - 1)
EPOCHS = 30
PATIENCE = 1

#: one worker, a fixed seed and few patches: deterministic and a few seconds an epoch; the paper's random
#: split (validation on the training places, where a high learning rate still improves for an epoch or two)
TRAIN = merged(SMALL_RUN, {"grid": {"res": 1.0}, "patches": {"per_day": 800, "train_per_day": 600, "val_per_day": 200,
                                                           "split": "random"},
                           "train": {"batch_size": 64, "lr": 0.003, "epochs": EPOCHS, "patience": PATIENCE, "seed": 0}})


@pytest.fixture(scope="module")
def stopped(tmp_path_factory, ray_local) -> dict:
    """A 1° twin of 3 days, its cube, and one CNN run that stops early."""
    root = tmp_path_factory.mktemp("early")
    _, cube_path = build_twin_and_cube(root, start=START, days=DAYS, res=1.0, seed=5)
    cfg_path = write_config(root / "train.yaml", base=TRAIN)
    cfg = load_config(cfg_path)
    out = root / "cnn"
    summary = run_training(cfg, str(cube_path), START, END, str(out), progress=quiet)
    record = json.loads((out / "training.json").read_text())
    return {"root": root, "cube": cube_path, "cfg": cfg, "cfg_path": cfg_path, "out": out, "summary": summary,
            "record": record}


@pytest.mark.ray
@pytest.mark.slow
def test_training_stops_one_patience_after_the_best_epoch(stopped: dict) -> None:
    rec, summary = stopped["record"], stopped["summary"]
    hist = rec["history"]
    epochs = [h["epoch"] for h in hist]
    assert epochs == list(range(1, len(hist) + 1))
    assert rec["stopped_early"] is True and summary.stopped_early
    assert rec["epochs_completed"] == len(hist) < EPOCHS
    val = np.array([h["val_loss"] for h in hist])
    assert np.isfinite(val).all()
    best = int(np.argmin(val)) + 1  # the first epoch with the lowest validation loss
    assert rec["best_epoch"] == summary.best_epoch == best
    assert best >= 2  # it did learn first: the stop is not the trivial "epoch 1 was best"
    assert rec["epochs_completed"] == best + PATIENCE  # stopped after `patience` epochs without improvement
    assert all(v >= val[best - 1] for v in val[best:])
    assert [h["stop"] for h in hist] == [False] * (len(hist) - 1) + [True]
    assert [h["improved"] for h in hist] == [bool(v < val[:i].min(initial=math.inf)) for i, v in enumerate(val)]
    assert rec["val_loss"] == pytest.approx(val[best - 1])


@pytest.mark.ray
@pytest.mark.slow
def test_artefact_holds_the_best_epochs_weights(stopped: dict) -> None:
    rec, cfg = stopped["record"], stopped["cfg"]
    model, ckpt = load_model(str(stopped["out"] / "model.pt"), cfg.model, cfg.patches)
    assert ckpt.epoch == rec["best_epoch"]
    assert ckpt.best_metric == pytest.approx(min(h["val_loss"] for h in rec["history"]))
    sha = state_sha256(model.state_dict())
    assert sha == rec["best_weights_sha256"]
    assert sha != rec["last_weights_sha256"]  # the epochs after the best changed the weights; they are not kept


@pytest.mark.ray
@pytest.mark.slow
def test_rerun_of_a_stopped_run_trains_nothing_more(stopped: dict, capsys) -> None:
    argv = ["train", "--cube", str(stopped["cube"]), "--train-start", START.isoformat(), "--train-end",
            END.isoformat(), "--out", str(stopped["out"]), "--config", str(stopped["cfg_path"])]
    before = {p.name: p.read_bytes() for p in stopped["out"].iterdir() if p.is_file()}
    assert main(argv) == 0
    assert "stage train:cnn: done already" in capsys.readouterr().out  # the train stage's rule: a stopped run is done
    assert {p.name: p.read_bytes() for p in stopped["out"].iterdir() if p.is_file()} == before
    again = json.loads((stopped["out"] / "training.json").read_text())
    rec = stopped["record"]
    assert again["epochs_completed"] == rec["epochs_completed"]
    assert again["history"] == rec["history"] and again["best_weights_sha256"] == rec["best_weights_sha256"]
