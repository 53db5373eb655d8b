"""The reprocessing job (smray.stages.chain: smray reprocess, pipelines/reprocess.py) end to end on a tiny twin: the whole
chain once (twin → ingest → train cnn+svr → predict cnn, svr, physical → evaluate), then a re-run that
skips every stage and rewrites nothing, ``--force predict`` that recomputes the maps (and the report
that scores them) but not the cube or the models, an interrupted training run and an interrupted
ingest that resume, and the bad inputs refused with one line before any work."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

import pytest
import xarray as xr
import yaml

from pipelines.reprocess import main
from smray import cube as cubemod
from smray import mapstore
from smray.config import load_config
from smray.errors import SmrayError
from smray.stages.chain import make_plan, run_chain as run_reprocess
from smray.testing import TINY_CHAIN, merged, write_config

pytestmark = [pytest.mark.ray, pytest.mark.slow]

START = dt.date(2011, 7, 1)
#: the chain's settings; ``paths.root`` is set per test
CHAIN = merged(TINY_CHAIN, {
    "synth": {"start": START.isoformat(), "days": 4, "spinup_days": 3, "seed": 5},
    "paths": {"train": {"end": "2011-07-02"}},
    "reprocess": {"stages": ["twin", "ingest", "train", "predict", "evaluate"], "models": ["cnn", "svr", "physical"],
                  "predict_days": {"svr": 1}},
})


def chain_config(path: Path, root: Path, **sections: dict) -> Path:
    """The chain's config with its outputs under ``root`` and ``sections`` on top, written to ``path``."""
    return write_config(path, base=merged(CHAIN, {"paths": {"root": str(root)}}), **sections)


def mtimes(root: Path, *parts: str) -> dict[str, int]:
    """Modification time (ns) of every file under ``root/part`` for each part."""
    out = {}
    for part in parts:
        for f in sorted((root / part).rglob("*")):
            if f.is_file():
                out[str(f.relative_to(root))] = f.stat().st_mtime_ns
    return out


class Lines(list):
    def __call__(self, line: str) -> None:
        self.append(line)

    def stage(self, name: str) -> str:
        return next((ln for ln in self if ln.startswith(f"stage {name}:")), "")


@pytest.fixture(scope="module")
def chain(tmp_path_factory, ray_local) -> dict:
    base = tmp_path_factory.mktemp("reprocess")
    root = base / "out"
    cfg_path = chain_config(base / "chain.yaml", root)
    lines = Lines()
    summary = run_reprocess(load_config(cfg_path), progress=lines)
    return {"root": root, "cfg_path": cfg_path, "lines": lines, "summary": summary, "base": base}


# --------------------------------------------------------------------------------------------
# The chain, then re-runs
# --------------------------------------------------------------------------------------------
def test_the_chain_writes_cube_models_maps_and_report(chain: dict) -> None:
    root, lines, summary = chain["root"], chain["lines"], chain["summary"]
    assert summary.ran == ["twin", "ingest", "train:cnn", "train:svr", "predict:cnn", "predict:svr",
                           "predict:physical", "evaluate"]
    assert summary.skipped == []
    assert lines[-1] == summary.line()
    assert lines[-1].startswith("reprocess: done in ")
    for where in (f"cube {root}/cube.zarr", f"model cnn {root}/models/cnn", f"model svr {root}/models/svr",
                  f"maps physical {root}/maps/physical.zarr", f"report {root}/report"):
        assert where in lines[-1]
    assert any(ln.startswith("ingest: 4 days written") for ln in lines)  # progress of the stages comes through
    census = cubemod.census(str(root / "cube.zarr"))
    assert census.complete and len(census.ok) == 4
    assert (root / "models/cnn/model.pt").exists() and (root / "models/svr/svr.npz").exists()
    for kind, days in (("cnn", 2), ("svr", 1), ("physical", 2)):
        store = str(root / "maps" / f"{kind}.zarr")
        mc = mapstore.census(store)
        assert mc.complete and len(mc.ok) + len(mc.no_input) == days, kind
        ds = xr.open_zarr(store, consolidated=True)
        assert ds.attrs["smray_model_kind"] == kind and ds.attrs["smray_cube"] == str(root / "cube.zarr")
        assert str(ds.time.values[0])[:10] == "2011-07-03"
    metrics = json.loads((root / "report/metrics.json").read_text())
    assert set(metrics["models"]) == {"cnn", "svr", "physical"}
    assert metrics["maps"] == [str(root / "maps" / f"{k}.zarr") for k in ("cnn", "svr", "physical")]
    assert metrics["truth"] == str(root / "twin")  # the twin's truth is scored too
    for row in metrics["models"].values():
        assert row["n"] > 0 and "r2" in row and "rmse" in row and "truth" in row
    assert (root / "report/report.md").exists()


def test_a_rerun_skips_every_stage_and_rewrites_nothing(chain: dict) -> None:
    root = chain["root"]
    before = mtimes(root, "twin", "cube.zarr", "models", "maps", "report")
    assert any("/c/" in k for k in before if k.startswith("maps/")) and any("/c/" in k for k in before)
    lines = Lines()
    summary = run_reprocess(load_config(chain["cfg_path"]), progress=lines)
    assert summary.ran == []
    assert summary.skipped == ["twin", "ingest", "train:cnn", "train:svr", "predict:cnn", "predict:svr",
                               "predict:physical", "evaluate"]
    for name in summary.skipped:
        assert "done already (" in lines.stage(name) and lines.stage(name).endswith("), skipped")
    assert "cube census complete" in lines.stage("ingest")
    assert "map store census complete" in lines.stage("predict:cnn")
    assert mtimes(root, "twin", "cube.zarr", "models", "maps", "report") == before


def test_force_predict_recomputes_the_maps_only(chain: dict, capsys) -> None:
    root = chain["root"]
    upstream = mtimes(root, "twin", "cube.zarr", "models")
    maps_before = {k: v for k, v in mtimes(root, "maps").items() if "/soil_moisture/c/" in k}
    assert len(maps_before) == 5  # 2 + 1 + 2 days
    assert main(["--config", str(chain["cfg_path"]), "--force", "predict"]) == 0
    out = capsys.readouterr().out
    for name in ("twin", "ingest", "train:cnn", "train:svr"):
        assert f"stage {name}: done already" in out
    for kind in ("cnn", "svr", "physical"):
        assert f"stage predict:{kind}: forced, recomputing" in out
    assert "stage evaluate: running (" in out and "is newer than" in out  # the report scores the new maps
    assert "reprocess: done in" in out.strip().splitlines()[-1]
    assert mtimes(root, "twin", "cube.zarr", "models") == upstream
    maps_after = {k: v for k, v in mtimes(root, "maps").items() if "/soil_moisture/c/" in k}
    assert maps_after.keys() == maps_before.keys()
    assert all(maps_after[k] > maps_before[k] for k in maps_before)
    for kind in ("cnn", "svr", "physical"):
        assert mapstore.census(str(root / "maps" / f"{kind}.zarr")).complete


def test_an_interrupted_training_run_resumes(chain: dict) -> None:
    """The state a kill leaves after the first epoch's checkpoint: Ray Train's epoch_0001 under
    models/cnn/ray_train, no model.pt or training.json. The re-run (2 epochs now) resumes it."""
    base, root = chain["base"], chain["root"]
    new_root = base / "resume"
    shutil.copytree(root / "models/cnn", new_root / "models/cnn")
    for name in ("model.pt", "model.pt.json", "training.json"):
        (new_root / "models/cnn" / name).unlink()
    cfg = load_config(chain_config(base / "resume.yaml", new_root, paths={"root": str(new_root), "cube": str(root / "cube.zarr"), "train": {"end": "2011-07-02"}},
                                   reprocess={"stages": ["train"], "models": ["cnn"]}, train={"epochs": 2}))
    lines = Lines()
    summary = run_reprocess(cfg, progress=lines)
    assert summary.ran == ["train:cnn"]
    assert "no training.json" in lines.stage("train:cnn")
    assert any("resuming" in ln and "after epoch 1" in ln for ln in lines)
    rec = json.loads((new_root / "models/cnn/training.json").read_text())
    assert rec["resumed_from"] == 1 and rec["epochs_completed"] == 2
    assert [h["epoch"] for h in rec["history"]] == [1, 2]
    # and then it is done
    again = run_reprocess(cfg, progress=Lines())
    assert again.ran == [] and again.skipped == ["train:cnn"]


def test_an_interrupted_ingest_resumes_the_missing_day(chain: dict) -> None:
    """A copy of the cube whose last day lost its record and chunks (killed while writing it)."""
    base, root = chain["base"], chain["root"]
    new_root = base / "ingest"
    shutil.copytree(root / "cube.zarr", new_root / "cube.zarr")
    cube = new_root / "cube.zarr"
    (cube / "_smray/days/2011-07-04.json").unlink()
    shutil.rmtree(cube / "tb/c/3")
    kept = mtimes(new_root, "cube.zarr/tb/c/0")
    assert kept  # day 0's TB chunk
    archive = {"root": str(new_root), "cube": str(cube), "tb": str(root / "twin/amsr"),
               "ref": str(root / "twin/era_interim"), "ingest": {"start": "2011-07-01", "end": "2011-07-04"}}
    cfg = load_config(chain_config(base / "ingest.yaml", new_root, paths=archive, reprocess={"stages": ["ingest"]}))
    lines = Lines()
    summary = run_reprocess(cfg, progress=lines)
    assert summary.ran == ["ingest"]
    assert "1 day(s) of 2011-07-01..2011-07-04 unfinished, 0 chunk(s) missing" in lines.stage("ingest")
    assert any(ln.startswith("ingest: 1 days written, 0 skipped, 3 already done") for ln in lines)
    assert cubemod.census(str(cube)).complete
    assert mtimes(new_root, "cube.zarr/tb/c/0") == kept  # finished days are not rewritten


# --------------------------------------------------------------------------------------------
# Bad input: one line, before any work
# --------------------------------------------------------------------------------------------
def test_a_stage_that_does_not_exist_is_refused(tmp_path: Path, capsys) -> None:
    cfg = chain_config(tmp_path / "bad.yaml", tmp_path / "out")
    data = yaml.safe_load(cfg.read_text())
    data["reprocess"]["stages"][1] = "injest"
    cfg.write_text(yaml.safe_dump(data))
    assert main(["--config", str(cfg)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("smray: error: reprocess.stages: unknown stage 'injest' (known: twin, ingest, train,")
    assert len(err.splitlines()) == 1
    good = chain_config(tmp_path / "good.yaml", tmp_path / "out")
    assert main(["--config", str(good), "--stages", "ingest,predcit"]) == 2
    assert "--stages: unknown stage 'predcit'" in capsys.readouterr().err
    assert main(["--config", str(good), "--stages", "ingest", "--force", "train"]) == 2
    assert "--force: stage 'train' is not among the stages run (ingest)" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_an_output_location_that_cannot_be_written_is_refused(tmp_path: Path, capsys) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory\n")
    cfg = chain_config(tmp_path / "c.yaml", blocker / "out")
    assert main(["--config", str(cfg)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"smray: error: paths.root: {blocker}/out: cannot create output directory")
    assert len(err.splitlines()) == 1
    assert blocker.read_text() == "not a directory\n"


@pytest.mark.parametrize("section,stage", [("train", "train"), ("predict", "predict")])
def test_gpus_the_cluster_lacks_are_refused_before_any_work(chain: dict, tmp_path: Path, ray_local, section: str,
                                                            stage: str) -> None:
    root = chain["root"]
    if ray_local.cluster_resources().get("GPU", 0) >= 1:
        pytest.skip("this machine has a GPU")
    new_root = tmp_path / "gpu"
    if stage == "predict":  # the trained model of the chain
        shutil.copytree(root / "models/cnn", new_root / "models/cnn")
    cfg = load_config(chain_config(tmp_path / "gpu.yaml", new_root, paths={"root": str(new_root), "cube": str(root / "cube.zarr"), "train": {"end": "2011-07-02"}},
                                   reprocess={"stages": [stage], "models": ["cnn"]}, **{section: {"use_gpu": True}}))
    before = sorted(p.name for p in new_root.rglob("*"))
    with pytest.raises(SmrayError, match=rf"^{section}\.use_gpu: .* need 1 GPU; the local Ray runtime this process "
                                         r"started has 0 GPU and cannot grow$"):
        run_reprocess(cfg, progress=Lines())
    assert sorted(p.name for p in new_root.rglob("*")) == before  # nothing written


def test_the_plan_resolves_the_layout(tmp_path: Path) -> None:
    cfg = load_config(chain_config(tmp_path / "c.yaml", tmp_path / "out"))
    lay = make_plan(cfg).layout
    out = str(tmp_path / "out")
    assert lay.twin == f"{out}/twin" and lay.tb == f"{out}/twin/amsr" and lay.ref == f"{out}/twin/era_interim"
    assert lay.cube == f"{out}/cube.zarr" and lay.report == f"{out}/report"
    assert {k: lay.model_dir(k) for k in lay.trainable} == {"cnn": f"{out}/models/cnn", "svr": f"{out}/models/svr"}
    assert lay.map_store("physical") == f"{out}/maps/physical.zarr"
    assert lay.ingest == (START, dt.date(2011, 7, 4))
    assert lay.train == (START, dt.date(2011, 7, 2))
    assert {k: lay.map_range(k, getattr(cfg.reprocess.predict_days, k)) for k in lay.kinds} == {
        "cnn": (dt.date(2011, 7, 3), dt.date(2011, 7, 4)), "svr": (dt.date(2011, 7, 3), dt.date(2011, 7, 3)),
        "physical": (dt.date(2011, 7, 3), dt.date(2011, 7, 4))}
    with pytest.raises(SmrayError, match=r"^paths.predict.start: 2011-08-01 is outside the ingest period"):
        make_plan(load_config(chain_config(tmp_path / "d.yaml", tmp_path / "out",
                                           paths={"root": str(tmp_path / "out"), "train": {"end": "2011-07-02"},
                                                  "predict": {"start": "2011-08-01"}})))
