"""`smray demo` end to end: the embedded default (smray/configs/demo.yaml) made small (a 2° twin of 3 days,
trained on 2, mapped on the third) runs on the local S3 endpoint and local Ray the whole chain it plans
(twin → cube → CNN and SVR → maps of CNN, SVR and physical → report), the bucket persisted to disk when
the endpoint stops, and a second run restarts from the persisted bucket and skips every stage."""

from __future__ import annotations

import contextlib
import io
import json
import os
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from smray import cube as cubemod, mapstore
from smray.cli import DEMO_CONFIG, main
from smray.config import load_config
from smray.stages.chain import make_plan
from smray.testing import TINY_CHAIN, merged, write_config

pytestmark = [pytest.mark.ray, pytest.mark.s3]  # in CI: the main job, end to end (~90 s)

#: what makes the embedded default small; its stages, models and places stay as they are
SMALLER = merged(TINY_CHAIN, {
    "paths": {"ingest": {"end": "2011-07-03"}, "train": {"end": "2011-07-02"},
              "predict": {"start": "2011-07-03", "end": "2011-07-03"}},
    "synth": {"days": 3, "spinup_days": 3},
    "predict": {"calibration_days": 10},  # both training days: one day of a 2° twin has too few validation cells
})
UNITS = ("twin", "ingest", "train:cnn", "train:svr", "predict:cnn", "predict:svr", "predict:physical", "evaluate")


@pytest.fixture(scope="module")
def demo(tmp_path_factory, ray_local) -> dict:
    """Two runs of ``smray demo`` on the small default: their exit codes and what they printed."""
    root = tmp_path_factory.mktemp("demo")
    cfg = write_config(root / "small.yaml", base=DEMO_CONFIG, **SMALLER)
    data = root / "s3data"
    env = ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID")
    before = {k: os.environ.get(k) for k in env}
    runs = []
    for _ in range(2):
        with contextlib.redirect_stdout(io.StringIO()) as out:
            code = main(["demo", "--config", str(cfg), "--data", str(data)])
        runs.append({"code": code, "out": out.getvalue(), "env": {k: os.environ.get(k) for k in env}})
    return {"config": cfg, "data": data, "bucket": data / "smray-demo", "env_before": before, "runs": runs}


def test_demo_runs_the_whole_chain_and_persists_it(demo: dict) -> None:
    first, second = demo["runs"]
    assert first["code"] == 0
    assert first["env"] == demo["env_before"]  # the demo restores the environment
    out = first["out"]
    assert "demo: done" in out and "reprocess: done in " in out
    bucket = demo["bucket"]
    assert f"{bucket}/report/report.md" in out  # says where the report is ...
    for kind in ("cnn", "svr", "physical"):  # ... and the maps
        assert f"s3://smray-demo/maps/{kind}.zarr  ->  {bucket}/maps/{kind}.zarr" in out
    twin = bucket / "twin"
    assert (twin / "twin.json").exists()
    # July 2011 is AMSR-E's: NSIDC-0302 names, 4 channels and a .TIM per day and pass, no AMSR2 (GW1AM2) file
    names = sorted(p.name for p in (twin / "amsr").rglob("*") if p.is_file())
    assert len(names) == 3 * 2 * 5 and "ID2r1-AMSRE-D.252011182A.v03.06H" in names
    assert "ID2r1-AMSRE-D.252011184D.v03.TIM" in names and not any("GW1AM2" in n for n in names)
    assert "synth: note" not in out  # the layout fits the days
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
    # the demo follows the paper's protocol, and the report says so for each trained model
    paper = "random split (the paper's protocol)"
    got = {n: (m.get("validation") or "")[:len(paper)] for n, m in metrics["models"].items()}
    assert got == {"cnn": paper, "svr": paper, "physical": ""}
    assert "- cnn: random split (the paper's protocol)" in report and "- svr: random split" in report
    assert list((bucket / "report").glob("maps_*.png"))
    # the second run restarts from the persisted bucket and skips every finished stage
    assert second["code"] == 0
    for unit in UNITS:
        assert f"stage {unit}: done already" in second["out"]
    assert "(ran: nothing; 8 done already)" in second["out"]


def test_the_embedded_default_runs_the_whole_chain(demo: dict) -> None:
    """demo.yaml (what `make demo` runs) plans every stage, CNN vs SVR vs physical, SVR maps of the test
    day only, everything on the local S3 endpoint; the small run above is that plan at a smaller size
    (same stages, models and places), and every unit of it ran and left complete outputs there."""
    default, small = make_plan(load_config(DEMO_CONFIG)), make_plan(load_config(demo["config"]))
    lay = default.layout
    assert default.stages == ("twin", "ingest", "train", "predict", "evaluate")
    assert lay.kinds == ("cnn", "svr", "physical")
    assert lay.twin == "s3://smray-demo/twin" and lay.cube == "s3://smray-demo/cube.zarr"
    assert [str(d) for d in lay.map_range("svr", 1)] == ["2011-07-31", "2011-07-31"]
    assert str(lay.map_range("cnn", None)[1]) == "2011-08-04"
    assert small.stages == default.stages
    for field in ("kinds", "twin", "tb", "ref", "cube", "models", "maps", "report"):
        assert getattr(small.layout, field) == getattr(lay, field), field
    first = demo["runs"][0]["out"]
    for unit in UNITS:
        assert f"stage {unit}: running (" in first, unit

    def on_disk(url: str) -> str:
        return str(demo["data"] / url.removeprefix("s3://"))

    assert (Path(on_disk(lay.twin)) / "twin.json").exists()
    census = cubemod.census(on_disk(lay.cube))
    assert census.complete and len(census.ok) == 3
    assert (Path(on_disk(lay.model_dir("cnn"))) / "model.pt").exists()
    assert (Path(on_disk(lay.model_dir("svr"))) / "svr.npz").exists()
    for kind in lay.kinds:
        maps = mapstore.census(on_disk(lay.map_store(kind)))
        assert maps.complete and len(maps.ok) == 1, kind
    metrics = json.loads((Path(on_disk(lay.report)) / "metrics.json").read_text())
    assert metrics["maps"] == [lay.map_store(k) for k in lay.kinds]
    for kind in lay.kinds:
        assert metrics["models"][kind]["n"] > 0, kind
