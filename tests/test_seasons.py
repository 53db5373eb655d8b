"""``smray experiment seasons`` end to end on a small regional twin (1°, the rehearsal's region):
train on 1-15 February 2011, score 21 February, 1 and 11 March (two seasons: every 10th day); the scores by
season, month and in all are recomputed from the saved predictions, the references equal the cube's,
a re-run neither retrains nor rescores, and a request that cannot be scored fails in one line before
anything trains."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pytest

from smray import cube as cubemod
from smray.cli import main
from smray.config import load_config
from smray.errors import SmrayError
from smray.metrics import pair_metrics
from smray.seasons import check_seasons, scored_days
from smray.serial import season_of
from smray.testing import SMALL_RUN, merged, write_config

pytestmark = [pytest.mark.ray]  # in CI (~60 s)

REPO = Path(__file__).resolve().parents[1]
SEASONS_YAML = REPO / "smray/configs/seasons.yaml"
DAYS = ["2011-02-21", "2011-03-01", "2011-03-11"]
TINY = merged(SMALL_RUN, {
    "grid": {"res": 1.0},
    "synth": {"start": "2011-02-01", "days": 39, "spinup_days": 3},
    "paths": {"train": {"start": "2011-02-01", "end": "2011-02-15"},
              "evaluate": {"start": "2011-02-16", "end": "2011-03-11"}},
    "experiment": {"models": ["cnn", "svr", "physical"], "months": [2, 3], "test_day_every": 10,
                   "test_patches": 300},
    "patches": {"per_day": 200, "train_per_day": 170, "val_per_day": 30, "block_deg": 5.0},
    "train": {"epochs": 1, "svr_max_samples": 300},
})


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    tmp = tmp_path_factory.mktemp("seasons")
    cfg = write_config(tmp / "seasons.yaml", base=SEASONS_YAML, **TINY)
    root = tmp / "out"
    assert main(["experiment", "seasons", "--config", str(cfg), "--root", str(root)]) == 0
    out = root / "experiment"
    return {"cfg": cfg, "root": root, "out": out, "json": json.loads((out / "seasons_experiment.json").read_text()),
            "npz": dict(np.load(out / "seasons_test_predictions.npz"))}


def test_test_days_are_every_nth_day_of_the_months() -> None:
    days = scored_days(dt.date(2011, 1, 15), dt.date(2011, 3, 31), (2, 3), 10)
    assert [d.isoformat() for d in days] == ["2011-02-01", "2011-02-11", "2011-02-21", "2011-03-01", "2011-03-11",
                                             "2011-03-21", "2011-03-31"]
    assert scored_days(dt.date(2010, 1, 1), dt.date(2010, 12, 31), (1, 4, 7, 10), 3)[:2] == [
        dt.date(2010, 1, 1), dt.date(2010, 1, 4)]
    assert [season_of(m) for m in (12, 1, 4, 7, 10)] == ["DJF", "DJF", "MAM", "JJA", "SON"]


def test_the_scores_by_season_month_and_in_all_come_from_the_saved_predictions(run: dict) -> None:
    res, npz = run["json"], run["npz"]
    assert res["test_days"] == DAYS and res["months"] == [2, 3]
    assert list(res["models"]) == ["cnn", "svr", "physical"] and set(res["seasons"]) == {"DJF", "MAM"}
    assert [str(d) for d in npz["days"]] == DAYS
    day_month = np.array([int(d[5:7]) for d in DAYS])[npz["day"]]
    lo, hi = res["target_lower"], res["target_upper"]
    for model, rows in res["models"].items():
        pred = npz[f"pred_{model}"]
        groups = {"all": np.ones(len(pred), bool), "months": {k: day_month == int(k) for k in ("02", "03")},
                  "seasons": {"DJF": day_month == 2, "MAM": day_month == 3}}
        checks = [(rows["all"], groups["all"])]
        checks += [(rows["months"][k], sel) for k, sel in groups["months"].items()]
        checks += [(rows["seasons"][k], sel) for k, sel in groups["seasons"].items()]
        for row, sel in checks:
            norm = pair_metrics(pred[sel], npz["y"][sel])
            m3 = pair_metrics(lo + pred[sel] * (hi - lo), npz["y_raw"][sel])
            truth = pair_metrics(lo + pred[sel] * (hi - lo), npz["truth"][sel])
            assert row["n"] == norm["n"] > 0
            assert row["r2"] == pytest.approx(norm["r2"], abs=1e-9)
            assert row["ubrmsd_m3"] == pytest.approx(m3["ubrmsd"], abs=1e-9)
            assert row["truth_r2"] == pytest.approx(truth["r2"], abs=1e-9)
        spread = max(rows["seasons"][s]["r2"] for s in ("DJF", "MAM")) - min(rows["seasons"][s]["r2"]
                                                                           for s in ("DJF", "MAM"))
        assert rows["season_spread_r2"] == pytest.approx(spread)
    assert res["n_test"] == len(npz["y"]) == sum(d["n"] for d in res["per_day"])
    md = (run["out"] / "seasons_experiment.md").read_text()
    assert "## By season" in md and "| CNN | DJF |" in md and "| SVR | 03 |" in md and "weakest season" in md


def test_the_references_are_the_cubes(run: dict) -> None:
    npz = run["npz"]
    cube = str(run["root"] / "cube.zarr")
    info = cubemod.info(cube)
    for i, day in enumerate(DAYS):
        sel = npz["day"] == i
        ref = cubemod.read_day(cube, None, dt.date.fromisoformat(day))["swvl1"]
        assert np.allclose(npz["y_raw"][sel], ref[npz["row"][sel], npz["col"][sel]], atol=1e-6)
    assert set(npz["pass_"].tolist()) <= set(info.passes)


def test_a_rerun_neither_retrains_nor_rescores(run: dict, capsys: pytest.CaptureFixture) -> None:
    model = run["out"] / "cnn" / "model.pt"
    before = (model.stat().st_mtime_ns, (run["out"] / "seasons_experiment.json").stat().st_mtime_ns)
    capsys.readouterr()
    assert main(["experiment", "seasons", "--config", str(run["cfg"]), "--root", str(run["root"])]) == 0
    out = capsys.readouterr().out
    assert "stage seasons: done already" in out and "stage twin: done already" in out
    assert (model.stat().st_mtime_ns, (run["out"] / "seasons_experiment.json").stat().st_mtime_ns) == before


def test_a_request_that_cannot_be_scored_is_one_line_before_training(run: dict, tmp_path: Path) -> None:
    cube = str(run["root"] / "cube.zarr")
    cfg = load_config(run["cfg"])
    train, test = (dt.date(2011, 2, 1), dt.date(2011, 2, 15)), (dt.date(2011, 2, 16), dt.date(2011, 3, 11))
    with pytest.raises(SmrayError, match=r"^paths.evaluate: test day 2011-02-11 lies inside the training period"):
        check_seasons(cfg, cube, train, (dt.date(2011, 2, 10), test[1]))
    april = load_config(run["cfg"], {"experiment": {"months": [2, 4]}})
    with pytest.raises(SmrayError, match=r"^experiment.months: month 4 has no day in paths.evaluate"):
        check_seasons(april, cube, train, test)
    with pytest.raises(SmrayError, match=r"^paths.evaluate: test day 2011-04-01 is not in the cube"):
        check_seasons(april, cube, train, (test[0], dt.date(2011, 4, 30)))
    with pytest.raises(SmrayError, match=r"^experiment.months: calendar months 1..12"):
        load_config(run["cfg"], {"experiment": {"months": [0, 7]}})
    # through the command: one error line, nothing trained or rewritten
    out = run["out"]
    before = sorted((p.name, p.stat().st_mtime_ns) for p in out.rglob("*") if p.is_file())
    bad = write_config(tmp_path / "bad.yaml", base=run["cfg"], paths={"evaluate": {"start": "2011-02-01"}})
    assert main(["experiment", "seasons", "--config", str(bad), "--root", str(run["root"])]) == 2
    assert sorted((p.name, p.stat().st_mtime_ns) for p in out.rglob("*") if p.is_file()) == before
