"""`smray demo` end to end on a small config: local S3 endpoint, local Ray, the whole chain (twin →
cube → CNN and SVR → maps of CNN, SVR and physical → report), the bucket persisted to disk when the
endpoint stops, and a second run that restarts from the persisted bucket and skips every stage."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from smray.cli import main
from smray.config import load_config
from smray.reprocess import make_plan

pytestmark = [pytest.mark.ray, pytest.mark.s3, pytest.mark.slow]

SMALL = """
grid: {res: 2.0}
synth: {out: s3://smray-demo/twin, start: 2011-07-01, days: 3, spinup_days: 3, overwrite: true}
ingest: {tb: s3://smray-demo/twin/amsr, ref: s3://smray-demo/twin/era_interim, out: s3://smray-demo/cube.zarr,
         start: 2011-07-01, end: 2011-07-03}
patches: {per_day: 700, train_per_day: 500, val_per_day: 200}
train: {epochs: 1, patience: 0, workers: 1, cpus_per_worker: 0.5, batch_size: 128, svr_max_samples: 300}
predict: {actor_cpus: 0.5}
reprocess:
  stages: [twin, ingest, train, predict, evaluate]
  models: [cnn, svr, physical]
  root: s3://smray-demo
  train_end: 2011-07-02
"""


def test_demo_runs_the_whole_chain_and_persists_it(tmp_path: Path, ray_local, capsys) -> None:
    cfg = tmp_path / "small.yaml"
    cfg.write_text(SMALL)
    data = tmp_path / "s3data"
    before = {k: os.environ.get(k) for k in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID")}
    assert main(["demo", "--config", str(cfg), "--data", str(data)]) == 0
    out = capsys.readouterr().out
    assert {k: os.environ.get(k) for k in before} == before  # the demo restores the environment
    assert "demo: done" in out and "reprocess: done in " in out
    bucket = data / "smray-demo"
    assert f"{bucket}/report/report.md" in out  # says where the report is ...
    for kind in ("cnn", "svr", "physical"):  # ... and the maps
        assert f"s3://smray-demo/maps/{kind}.zarr  ->  {bucket}/maps/{kind}.zarr" in out
    twin = bucket / "twin"
    assert (twin / "twin.json").exists()
    assert len(list((twin / "amsr").rglob("*.h5"))) == 12
    cube = xr.open_zarr(bucket / "cube.zarr", consolidated=True)
    assert cube.sizes["time"] == 3 and cube.attrs["days_ok"] == 3
    assert np.isfinite(cube.tb.isel(time=1).values).any()
    for kind in ("cnn", "svr", "physical"):
        maps = xr.open_zarr(bucket / "maps" / f"{kind}.zarr", consolidated=True)
        assert maps.attrs["smray_model_kind"] == kind and maps.sizes["time"] == 1
        assert np.isfinite(maps.soil_moisture.isel(time=0).values).any()
    metrics = json.loads((bucket / "report" / "metrics.json").read_text())
    assert set(metrics["models"]) == {"cnn", "svr", "physical"}  # side by side
    report = (bucket / "report" / "report.md").read_text()
    assert all(k in report for k in ("cnn", "svr", "physical"))
    assert list((bucket / "report").glob("maps_*.png"))
    # a second run restarts from the persisted bucket and skips every finished stage
    assert main(["demo", "--config", str(cfg), "--data", str(data)]) == 0
    out = capsys.readouterr().out
    for unit in ("twin", "ingest", "train:cnn", "train:svr", "predict:cnn", "predict:svr", "predict:physical",
                 "evaluate"):
        assert f"stage {unit}: done already" in out
    assert "(ran: nothing; 8 done already)" in out


def test_the_embedded_default_runs_the_whole_chain() -> None:
    """demo.yaml (what `make demo` runs): every stage, CNN vs SVR vs physical, SVR maps of the test
    day only, everything on the local S3 endpoint."""
    from smray.cli import DEMO_CONFIG

    cfg = load_config(DEMO_CONFIG)
    plan = make_plan(cfg)
    assert plan.stages == ("twin", "ingest", "train", "predict", "evaluate")
    assert plan.models == ("cnn", "svr", "physical")
    assert plan.twin == cfg.synth.out == "s3://smray-demo/twin" and plan.cube == "s3://smray-demo/cube.zarr"
    assert str(plan.map_ranges["svr"][0]) == str(plan.map_ranges["svr"][1]) == "2011-07-31"
    assert str(plan.map_ranges["cnn"][1]) == "2011-08-04"
