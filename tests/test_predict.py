"""Batch inference into the map store end to end on a tiny twin (1°, 8 days): a CNN trained on the
first 4 days predicts all 8 through the Ray Data actor pool; the store is CF, complete and
provenance-stamped; FCN equals patch-wise; re-runs skip, later ends append, an interrupted driver
or a killed actor changes nothing in the result; bad models, ranges and stores are refused before
work; a day without input is recorded; the 90% interval covers 85-95% on held-out days; SVR and
the physical retrieval write maps too."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import xarray as xr
import zarr

from smray import cube, mapstore
from smray.cli import main
from smray.config import load_config
from smray.errors import SmrayError
from smray.models import fcn_forward, patchwise_forward
from smray.predict import (PHYSICAL, Predictor, day_inputs, describe_model, prediction_mask, run_predict,
                           valid_inputs)
from smray.qc import FLAGS, cf_attrs
from smray.testing import SMALL_RUN, build_twin_and_cube, merged, quiet, write_config
from smray.train import run_training

pytestmark = [pytest.mark.ray, pytest.mark.slow]

START = dt.date(2011, 7, 1)
DAYS = 8
END = START + dt.timedelta(days=DAYS - 1)
TRAIN_END = START + dt.timedelta(days=4)  # days 1-5 train (and calibrate); days 6-8 are held out
HELD_OUT = 5  # index of the first held-out day
RES = 1.0
SECRET_KEY, SECRET = "AKIAPREDICTSENTINEL", "predict-secret-sentinel-value"

#: the run's settings; the storage section carries sentinel credentials that must never reach the store
PREDICT = merged(SMALL_RUN, {
    "grid": {"res": RES},
    "storage": {"s3": {"key": SECRET_KEY, "secret": SECRET}},
    "patches": {"per_day": 3000, "train_per_day": 2500, "val_per_day": 500, "split": "blocked", "block_deg": 10.0,
                "val_block_fraction": 0.2, "val_day_every": 5},
    "train": {"epochs": 2, "svr_max_samples": 1500},
    "predict": {"actors": 2},
})


@pytest.fixture(scope="module")
def setup(tmp_path_factory, ray_local) -> dict:
    root = tmp_path_factory.mktemp("predict")
    write_config(root / "cfg.yaml", base=PREDICT)
    twin, cube_url = build_twin_and_cube(root, start=START, days=DAYS, res=RES, seed=5, config=root / "cfg.yaml")
    cfg = load_config(root / "cfg.yaml")
    run_training(cfg, str(cube_url), START, TRAIN_END, str(root / "cnn"), progress=quiet)
    run_training(cfg, str(cube_url), START, TRAIN_END, str(root / "svr"), model_kind="svr", progress=quiet)
    full = root / "full.zarr"
    summary = run_predict(cfg, str(cube_url), str(root / "cnn"), str(full), START, END, progress=quiet)
    return {"root": root, "twin": twin, "cube": str(cube_url), "cnn": str(root / "cnn"), "svr": str(root / "svr"),
            "cfg": cfg, "cfg_path": root / "cfg.yaml", "full": str(full), "summary": summary}


def chunk_state(store: str, days: list[int]) -> dict[str, tuple[int, bytes]]:
    """mtime_ns and bytes of every chunk of the given day indices (one chunk a variable a day: all there)."""
    out = {}
    for name in mapstore.TIME_VARS:
        for i in days:
            for p in (Path(store) / name / "c" / str(i)).rglob("*"):
                if p.is_file():
                    out[str(p)] = (p.stat().st_mtime_ns, p.read_bytes())
    assert len(out) == len(days) * len(mapstore.TIME_VARS), f"{store}: chunks of days {days} missing"
    return out


def assert_same_maps(a: str, b: str, dates: list[dt.date], atol: float = 0.0) -> None:
    """Equal day by day: exactly (same torch threads) or within ``atol`` m3/m3 (other thread counts)."""
    for d in dates:
        x, y = mapstore.read_day(a, None, d), mapstore.read_day(b, None, d)
        np.testing.assert_array_equal(x["qc"], y["qc"], err_msg=f"qc {d}")
        for name in mapstore.SM_VARS:
            np.testing.assert_array_equal(np.isfinite(x[name]), np.isfinite(y[name]), err_msg=f"{name} {d}")
            np.testing.assert_allclose(x[name], y[name], rtol=0, atol=atol, equal_nan=True, err_msg=f"{name} {d}")


# --------------------------------------------------------------------------------------------
# The store
# --------------------------------------------------------------------------------------------
def test_actor_pool_writes_a_cf_store(setup: dict) -> None:
    s = setup["summary"]
    assert (s.days_written, s.days_skipped, s.days_no_input, s.actors) == (DAYS, 0, 0, 2)
    ds = xr.open_zarr(setup["full"], consolidated=False)
    assert ds.attrs["Conventions"] == "CF-1.8" and ds.attrs["smray_format"] == "smray-maps-1"
    assert ds.attrs["smray_model_kind"] == "cnn" and ds.attrs["smray_cube"] == setup["cube"]
    assert ds.attrs["smray_model_validation"].startswith("blocked split: validation on held-out blocks (10°;")
    assert ds["time"].dtype.kind == "M" and ds.sizes == {"time": DAYS, "lat": 180, "lon": 360, "pass": 2, "nv": 2}
    assert str(ds["time"].values[0])[:10] == START.isoformat() and str(ds["time"].values[-1])[:10] == END.isoformat()
    bnds = ds["time_bnds"].values
    np.testing.assert_array_equal(bnds[:, 1] - bnds[:, 0], np.timedelta64(1, "D"))
    np.testing.assert_array_equal(bnds[:, 0], ds["time"].values)
    assert ds["time"].attrs.get("bounds", ds["time"].encoding.get("bounds")) == "time_bnds"
    assert ds["crs"].attrs["grid_mapping_name"] == "latitude_longitude"
    assert ds["crs"].attrs["semi_major_axis"] == 6378137.0
    for name in mapstore.SM_VARS:
        v = ds[name]
        assert v.dtype == np.float32 and v.dims == ("time", "lat", "lon") and v.attrs["units"] == "m3 m-3"
        assert v.attrs["grid_mapping"] == "crs" and v.encoding["chunks"] == (1, 180, 360)
    sm = ds["soil_moisture"]
    assert sm.attrs["standard_name"] == "volume_fraction_of_condensed_water_in_soil"
    assert sm.attrs["ancillary_variables"] == "soil_moisture_uncertainty qc"
    assert sm.attrs["cell_methods"] == "time: mean"
    assert ds["soil_moisture_uncertainty"].attrs["coverage"] == 0.9
    assert ds["qc"].dtype == np.uint16 and ds["qc"].attrs["flag_meanings"] == cf_attrs()["flag_meanings"]
    assert list(ds["qc"].attrs["flag_masks"]) == cf_attrs()["flag_masks"]
    np.testing.assert_array_equal(ds["lat"].values, cube.read_static(setup["cube"])["lat"])
    np.testing.assert_array_equal(ds["land_fraction"].values, cube.read_static(setup["cube"])["land_fraction"])
    day = cube.read_day(setup["cube"], None, END)
    np.testing.assert_array_equal(ds["qc"].values[-1], day["qc"])
    # values: plausible, land only, combined = mean of the passes, uncertainty where predicted
    v = ds.isel(time=-1)
    sm_, asc, desc, unc = (v[n].values for n in mapstore.SM_VARS)
    ok = np.isfinite(sm_)
    assert ok.sum() > 3000 and np.nanmin(sm_) > -0.1 and np.nanmax(sm_) < 0.8
    assert np.all(cube.read_static(setup["cube"])["land_fraction"][ok] >= 0.5)
    np.testing.assert_allclose(sm_[ok], np.nanmean(np.stack([asc, desc]), axis=0)[ok], atol=1e-6)
    assert np.isfinite(unc[ok]).all() and (unc[ok] > 0).all() and np.isnan(unc[~ok]).all()
    recs = cube.day_records(setup["full"])
    assert sorted(recs) == [START + dt.timedelta(days=i) for i in range(DAYS)]
    assert all(r["status"] == "ok" and r["n_valid"] > 0 for r in recs.values())
    census = mapstore.census(setup["full"])
    assert census.complete and len(census.ok) == DAYS and not census.missing_chunks


def test_provenance_attributes_and_no_secrets(setup: dict) -> None:
    attrs = xr.open_zarr(setup["full"], consolidated=False).attrs
    sidecar = json.loads((Path(setup["cnn"]) / "model.pt.json").read_text())
    assert attrs["smray_checkpoint_sha256"] == sidecar["pt_sha256"]
    assert attrs["smray_model_fingerprint"] == sidecar["fingerprint"] and attrs["smray_model"] == setup["cnn"]
    stats = json.loads(attrs["smray_norm_stats"])
    assert stats["target_upper"] > stats["target_lower"] and stats == sidecar["norm_stats"]
    packages = json.loads(attrs["smray_packages"])
    assert set(packages) == {"smray", "ray", "torch", "numpy", "xarray", "zarr", "scikit-learn"}
    assert packages["torch"] == torch.__version__ and packages["zarr"] == zarr.__version__
    config = json.loads(attrs["smray_config"])
    assert config["predict"]["actors"] == 2 and config["storage"]["s3"]["endpoint_url"] is None
    # the config held S3 credentials: none of them in any metadata object or record of the store
    metadata = list(Path(setup["full"]).rglob("*.json"))
    assert len(metadata) > DAYS  # the group's and every array's zarr.json, every day's record
    for p in metadata:
        text = p.read_text()
        assert SECRET not in text and SECRET_KEY not in text, p


def test_fcn_equals_patchwise_on_a_predicted_day(setup: dict) -> None:
    cfg, d = setup["cfg"], START + dt.timedelta(days=5)
    info = cube.info(setup["cube"])
    source = describe_model(setup["cnn"], cfg.storage, info)
    pred = Predictor(source, cfg.storage)
    day, land = cube.read_day(setup["cube"], None, d), cube.read_static(setup["cube"])["land_fraction"]
    stored = mapstore.read_day(setup["full"], None, d)
    for inp, name in zip(day_inputs(day, land, source, pred.stats, [0, 1, 2, 3], prediction_mask(cfg.qc.block),
                                    info.grid.is_periodic), ("soil_moisture_asc", "soil_moisture_desc")):
        assert inp.image.shape == (4, 188, 368) and inp.valid.sum() > 3000
        fcn = fcn_forward(pred.model, inp.image, inp.valid)
        ref = patchwise_forward(pred.model, inp.image, inp.valid)
        span = pred.stats.target_upper - pred.stats.target_lower
        assert np.array_equal(np.isfinite(fcn), inp.valid) and np.array_equal(np.isfinite(ref), inp.valid)
        assert np.nanmax(np.abs(fcn - ref)) * span < 1e-5
        np.testing.assert_allclose(stored[name], pred.predict(inp), atol=1e-6, equal_nan=True)
    # edge cells wrap in longitude like training patches (window_all periodic), rows near the poles never
    valid = valid_inputs(day, land, prediction_mask(cfg.qc.block), [0, 1, 2, 3], 9, True)
    assert valid[:, :4].sum() == 0 and valid[:, -4:].sum() == 0
    assert valid[:, :, :4].any() or valid[:, :, -4:].any()


def test_records_count_the_inputs_clipped_to_the_fitted_range(setup: dict) -> None:
    """Each day's record counts the (pass, cell) inputs with a TB outside the range the model's scaling
    was fitted on: equal to a count made here from the cube, the valid cells and the model's bounds;
    with narrowed bounds, every valid input outside them is counted."""
    cfg = setup["cfg"]
    info = cube.info(setup["cube"])
    source = describe_model(setup["cnn"], cfg.storage, info)
    stats = Predictor(source, cfg.storage).stats
    land = cube.read_static(setup["cube"])["land_fraction"]
    mask = prediction_mask(cfg.qc.block)
    lo = np.asarray(stats.tb_lower_k)[:, None, None]
    hi = np.asarray(stats.tb_upper_k)[:, None, None]
    recs = cube.day_records(setup["full"])
    for i in range(DAYS):
        d = START + dt.timedelta(days=i)
        day = cube.read_day(setup["cube"], None, d)
        valid = valid_inputs(day, land, mask, [0, 1, 2, 3], 9, True)
        tb = np.asarray(day["tb"], dtype=np.float64)
        out = sum(int((((tb[p] < lo) | (tb[p] > hi)).any(axis=0) & valid[p]).sum()) for p in range(2))
        assert recs[d]["n_clipped_inputs"] == out, d
    d = START + dt.timedelta(days=6)
    day = cube.read_day(setup["cube"], None, d)
    mid = np.nanmedian(np.asarray(day["tb"], dtype=np.float64), axis=(0, 2, 3))
    narrow = dataclasses.replace(stats, tb_lower_k=tuple(mid - 1.0), tb_upper_k=tuple(mid + 1.0))
    for inp in day_inputs(day, land, source, narrow, [0, 1, 2, 3], mask, True):
        assert 0.5 * inp.valid.sum() < inp.clipped <= inp.valid.sum()


def test_rerun_skips_finished_days(setup: dict) -> None:
    before = chunk_state(setup["full"], list(range(DAYS)))
    s = run_predict(setup["cfg"], setup["cube"], setup["cnn"], setup["full"], START, END, progress=quiet)
    assert (s.days_written, s.days_skipped, s.actors) == (0, DAYS, 0)
    assert chunk_state(setup["full"], list(range(DAYS))) == before


def test_later_end_appends_without_rewriting(setup: dict, tmp_path: Path) -> None:
    out = str(tmp_path / "ext.zarr")
    mid = START + dt.timedelta(days=5)
    a = run_predict(setup["cfg"], setup["cube"], setup["cnn"], out, START + dt.timedelta(days=4), mid, progress=quiet)
    assert a.days_written == 2
    before = chunk_state(out, [0, 1])
    time.sleep(0.05)
    b = run_predict(setup["cfg"], setup["cube"], setup["cnn"], out, START + dt.timedelta(days=4), END, progress=quiet)
    assert (b.days_written, b.days_skipped) == (2, 2)
    assert chunk_state(out, [0, 1]) == before  # same bytes, same mtimes
    assert mapstore.info(out).end == END and mapstore.census(out).complete
    ds = xr.open_zarr(out)  # consolidated metadata updated to the longer axis
    assert ds.sizes["time"] == 4 and ds["time_bnds"].shape == (4, 2)
    assert_same_maps(out, setup["full"], [START + dt.timedelta(days=i) for i in range(4, DAYS)])


# --------------------------------------------------------------------------------------------
# Failures: driver killed, actor killed
# --------------------------------------------------------------------------------------------
def test_killed_driver_then_rerun_equals_uninterrupted(setup: dict, tmp_path: Path) -> None:
    out = tmp_path / "killed.zarr"
    cfg_path = write_config(tmp_path / "one_actor.yaml", base=PREDICT, predict={"actors": 1})
    argv = [sys.executable, "-m", "smray.cli", "predict", "--cube", setup["cube"], "--model", setup["cnn"],
            "--start", START.isoformat(), "--end", END.isoformat(), "--out", str(out), "--config", str(cfg_path)]
    proc = subprocess.Popen(argv, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    records = out / "_smray" / "days"
    n = 0
    deadline = time.monotonic() + 240
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            n = len(list(records.glob("*.json"))) if records.exists() else 0
            if n >= 1:
                os.killpg(proc.pid, signal.SIGKILL)
                break
            time.sleep(0.01)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    done = len(list(records.glob("*.json")))
    assert 1 <= n and done < DAYS, f"killed too late ({done} days done): {proc.stderr.read().decode()[-500:]}"
    finished = {f.name: f.stat().st_mtime_ns for f in records.glob("*.json")}
    chunks = {f: f.stat().st_mtime_ns for f in (out / "soil_moisture" / "c").rglob("*") if f.is_file()}
    assert main(argv[3:]) == 0
    # the re-run computes only the days without a record: no finished day is recomputed (0 % <= 5 %)
    assert {f.name: f.stat().st_mtime_ns for f in records.glob("*.json") if f.name in finished} == finished
    assert all(f.stat().st_mtime_ns == t for f, t in chunks.items()
               if f"{f.relative_to(out / 'soil_moisture' / 'c').parts[0]}" in
               {str((dt.date.fromisoformat(name[:-5]) - START).days) for name in finished})
    census = mapstore.census(str(out))
    assert census.complete and not census.missing_chunks and len(census.ok) == DAYS
    assert_same_maps(str(out), setup["full"], [START + dt.timedelta(days=i) for i in range(DAYS)])


def test_killed_actor_is_restarted_and_the_output_is_unchanged(setup: dict, tmp_path: Path) -> None:
    """The actor that wrote the first day (its PID is in the day's record; one actor in the pool) is
    SIGKILLed while it works on the next days; Ray Data restarts it and retries its day."""
    out = tmp_path / "actor.zarr"
    records = out / "_smray" / "days"
    killed: list[int] = []
    errors: list[BaseException] = []

    def killer() -> None:
        deadline = time.monotonic() + 240
        try:
            while time.monotonic() < deadline and not killed:
                recs = sorted(records.glob("*.json")) if records.exists() else []
                if recs:
                    pid = json.loads(recs[0].read_text())["pid"]
                    if len(recs) <= DAYS // 2:  # later would leave the restarted actor too little to do
                        os.kill(pid, signal.SIGKILL)
                        killed.append(pid)
                    break
                time.sleep(0.005)
        except BaseException as err:  # reported by the test, not lost in the thread
            errors.append(err)

    cfg = dataclasses.replace(setup["cfg"], predict=dataclasses.replace(setup["cfg"].predict, actors=1))
    t = threading.Thread(target=killer, daemon=True)
    t.start()
    s = run_predict(cfg, setup["cube"], setup["cnn"], str(out), START, END, progress=quiet)
    t.join(timeout=5)
    assert not errors and killed, f"no actor was killed ({errors})"
    pids = {json.loads(p.read_text())["pid"] for p in records.glob("*.json")}
    # the restarted actor (another process) wrote the days the killed one had not finished; a day
    # whose record was written just before the kill may be retried and rewritten too (same values)
    assert pids - {killed[0]}
    assert len(list(records.glob("*.json"))) == DAYS
    assert s.days_written == DAYS and mapstore.census(str(out)).complete
    assert_same_maps(str(out), setup["full"], [START + dt.timedelta(days=i) for i in range(DAYS)])


# --------------------------------------------------------------------------------------------
# Refused before work
# --------------------------------------------------------------------------------------------
def test_model_channels_the_cube_lacks_are_refused(setup: dict, tmp_path: Path) -> None:
    three = tmp_path / "three.zarr"
    shutil.copytree(setup["cube"], three)
    g = zarr.open_group(str(three), mode="r+")
    g.attrs["smray_channels"] = ["06H", "06V", "10H"]
    zarr.consolidate_metadata(str(three))
    out = tmp_path / "maps.zarr"
    with pytest.raises(SmrayError, match=r"model trained for channels 06H,06V,10H,10V, the cube .* has 06H,06V,10H"):
        run_predict(setup["cfg"], str(three), setup["cnn"], str(out), START, START, progress=quiet)
    assert not out.exists()
    # --new-store never deletes something that is not a map store (here a cube), nor the input cube
    cfg = dataclasses.replace(setup["cfg"], predict=dataclasses.replace(setup["cfg"].predict, new_store=True))
    with pytest.raises(SmrayError, match=r"three.zarr: not an smray map store \(smray_format 'smray-cube-1'\)"):
        run_predict(cfg, setup["cube"], setup["cnn"], str(three), START, START, progress=quiet)
    with pytest.raises(SmrayError, match="is the cube itself"):
        run_predict(cfg, setup["cube"], setup["cnn"], setup["cube"], START, START, progress=quiet)
    assert cube.info(str(three)).end == END and cube.info(setup["cube"]).end == END


def test_range_outside_the_cube_is_refused(setup: dict, tmp_path: Path, capsys) -> None:
    out = tmp_path / "maps.zarr"
    assert main(["predict", "--cube", setup["cube"], "--model", setup["cnn"], "--start", END.isoformat(),
                 "--end", (END + dt.timedelta(days=1)).isoformat(), "--out", str(out),
                 "--config", str(setup["cfg_path"])]) == 2
    err = capsys.readouterr().err.strip()
    assert "paths.predict.start/paths.predict.end" in err and "not inside the time axis" in err and "\n" not in err
    assert not out.exists()


@pytest.mark.parametrize("predict,line", [
    ({"precision": "int8"}, "predict.precision: int8 needs a CPU with one of the instructions avx512_vnni"),
    ({"use_gpu": True}, "predict.use_gpu: GPU prediction actors need 1 GPU; the local Ray runtime this process "
                        "started has 0 GPU and cannot grow")])
def test_precision_or_gpu_this_machine_lacks_is_one_line_before_work(setup: dict, tmp_path: Path, capsys,
                                                                     monkeypatch, predict: dict, line: str) -> None:
    """``smray predict`` with ``predict.precision: int8`` on a CPU without VNNI (this machine's flags
    replaced by an AVX2 machine's) or ``predict.use_gpu: true`` on a cluster without a GPU."""
    from smray import inference

    if predict.get("use_gpu") and torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    monkeypatch.setattr(inference, "cpu_flags", lambda: frozenset({"avx2", "fma"}))
    cfg_path = write_config(tmp_path / "cfg.yaml", base=PREDICT, predict=predict)
    out = tmp_path / "maps.zarr"
    assert main(["predict", "--cube", setup["cube"], "--model", setup["cnn"], "--start", END.isoformat(),
                 "--end", END.isoformat(), "--out", str(out), "--config", str(cfg_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"smray: error: {line}") and "\n" not in err, err
    assert not out.exists()


def test_reduced_precision_and_overlap_in_predict(setup: dict, tmp_path: Path) -> None:
    """The fastest precision this CPU has, without the overlap: maps within the stated tolerance of the
    actor pool's fp32 maps, the arithmetic in the store's signature and the same as the stage's rule
    plans; fp32 with the overlap (two days: the second read and the first write run during a model
    call): the pool's maps."""
    from smray.inference import TOLERANCE_M3, cpu_supports
    from smray.predict import plan_precision

    have = [p for p in ("int8_bf16", "int8", "bf16") if cpu_supports(p)]
    if not have:
        pytest.skip("this CPU has neither bf16 nor int8 instructions")
    precision = have[0]
    model = tmp_path / "cnn"
    shutil.copytree(setup["cnn"], model)  # its calibration, recomputed in this precision, stays out of the fixture's
    days = [END - dt.timedelta(days=1), END]
    base = setup["cfg"]
    cfg = dataclasses.replace(base, predict=dataclasses.replace(base.predict, precision=precision, overlap=False))
    low = tmp_path / "low.zarr"
    s = run_predict(cfg, setup["cube"], str(model), str(low), days[0], days[1], progress=quiet, engine="local")
    assert s.days_written == 2
    signature = json.loads(xr.open_zarr(str(low)).attrs["smray_predict_signature"])
    assert signature["precision"] == precision == plan_precision(cfg, "cnn")
    rms_tol, max_tol = TOLERANCE_M3[precision]
    for d in days:
        a, b = mapstore.read_day(str(low), None, d), mapstore.read_day(setup["full"], None, d)
        for name in ("soil_moisture_asc", "soil_moisture_desc", "soil_moisture"):
            assert np.array_equal(np.isfinite(a[name]), np.isfinite(b[name])), (d, name)
            diff = (a[name] - b[name])[np.isfinite(b[name])]
            assert np.sqrt(np.mean(diff ** 2)) <= rms_tol and np.abs(diff).max() <= max_tol, (d, name)
    assert json.loads((model / "uncertainty.json").read_text())["precision"] == precision
    both = tmp_path / "overlap.zarr"
    cfg = dataclasses.replace(base, predict=dataclasses.replace(base.predict, overlap=True))
    run_predict(cfg, setup["cube"], setup["cnn"], str(both), days[0], days[1], progress=quiet, engine="local")
    assert "precision" not in json.loads(xr.open_zarr(str(both)).attrs["smray_predict_signature"])
    assert_same_maps(str(both), setup["full"], days, atol=1e-5)


def test_store_of_another_model_is_refused_and_new_store_replaces_it(setup: dict, tmp_path: Path) -> None:
    out = tmp_path / "maps.zarr"
    run_predict(setup["cfg"], setup["cube"], setup["cnn"], str(out), END, END, progress=quiet, engine="local")
    before = chunk_state(str(out), [0])
    with pytest.raises(SmrayError, match=r"maps.zarr: map store was written with a different model .*model_kind: "
                                         r"store has 'cnn', this run 'svr'") as err:
        run_predict(setup["cfg"], setup["cube"], setup["svr"], str(out), END, END, progress=quiet)
    assert "\n" not in str(err.value) and chunk_state(str(out), [0]) == before  # nothing touched
    cfg = dataclasses.replace(setup["cfg"], predict=dataclasses.replace(setup["cfg"].predict, new_store=True))
    s = run_predict(cfg, setup["cube"], setup["svr"], str(out), END, END, progress=quiet, engine="local")
    assert s.days_written == 1 and s.kind == "svr"
    ds = xr.open_zarr(str(out))
    assert ds.attrs["smray_model_kind"] == "svr" and ds.sizes["time"] == 1
    sm = ds["soil_moisture"].values[0]
    cnn = mapstore.read_day(setup["full"], None, END)["soil_moisture"]
    assert np.array_equal(np.isfinite(sm), np.isfinite(cnn))  # same validity, another model
    assert np.nanmean(np.abs(sm - cnn)) < 0.1 and 0.0 < np.nanmin(sm) and np.nanmax(sm) < 0.8


def test_day_without_valid_input_is_recorded(setup: dict, tmp_path: Path) -> None:
    holey = tmp_path / "holey.zarr"
    shutil.copytree(setup["cube"], holey)
    gap = START + dt.timedelta(days=6)
    cube.skip_day(str(holey), None, gap, "test: the day is missing")
    out = tmp_path / "maps.zarr"
    s = run_predict(setup["cfg"], str(holey), setup["cnn"], str(out), gap - dt.timedelta(days=1), gap,
                    progress=quiet, engine="local")
    assert (s.days_written, s.days_no_input, s.no_input) == (2, 1, [gap])
    rec = cube.day_records(str(out))
    assert rec[gap]["status"] == "no_input" and rec[gap]["n_valid"] == 0
    assert rec[gap - dt.timedelta(days=1)]["status"] == "ok"
    census = mapstore.census(str(out))
    assert census.complete and census.no_input == [gap] and not census.missing_chunks
    day = mapstore.read_day(str(out), None, gap)
    assert all(np.isnan(day[n]).all() for n in mapstore.SM_VARS) and (day["qc"] & FLAGS["day_missing"]).all()
    assert json.loads(xr.open_zarr(str(out)).attrs["no_input_days"]) == [gap.isoformat()]


# --------------------------------------------------------------------------------------------
# Uncertainty and the other models
# --------------------------------------------------------------------------------------------
def test_interval_covers_85_to_95_percent_on_held_out_days(setup: dict) -> None:
    cal = json.loads((Path(setup["cnn"]) / "uncertainty.json").read_text())
    assert cal["days"] == [(START + dt.timedelta(days=i)).isoformat() for i in range(HELD_OUT)] and cal["n"] > 1000
    hits, n = 0, 0
    block = prediction_mask(setup["cfg"].qc.block)
    for i in range(HELD_OUT, DAYS):  # never seen in training or calibration
        d = START + dt.timedelta(days=i)
        maps, day = mapstore.read_day(setup["full"], None, d), cube.read_day(setup["cube"], None, d)
        ok = np.isfinite(maps["soil_moisture"]) & np.isfinite(day["swvl1"])
        err = np.abs(day["swvl1"][ok] - maps["soil_moisture"][ok])
        hits += int((err <= maps["soil_moisture_uncertainty"][ok]).sum())
        n += int(ok.sum())
        assert ((day["qc"] & block) == 0).any(axis=0)[ok].all()
    coverage = hits / n
    print(f"held-out coverage of the nominal 90% interval: {coverage:.3f} over {n} pixel-days")
    assert n > 10000 and 0.85 <= coverage <= 0.95, coverage


def test_physical_maps_for_one_day(setup: dict, tmp_path: Path) -> None:
    out = tmp_path / "phys.zarr"
    with pytest.raises(SmrayError, match="--twin: the physical retrieval needs the twin archive root"):
        run_predict(setup["cfg"], setup["cube"], PHYSICAL, str(out), END, END, progress=quiet)
    s = run_predict(setup["cfg"], setup["cube"], PHYSICAL, str(out), END, END, progress=quiet,
                    twin_url=str(setup["twin"]), engine="local")
    assert s.days_written == 1 and s.kind == "physical"
    ds = xr.open_zarr(str(out))
    assert ds.attrs["smray_model_kind"] == "physical" and ds.attrs["smray_checkpoint_sha256"] == ""
    sm = ds["soil_moisture"].values[0]
    assert np.isfinite(sm).sum() > 3000 and 0.0 <= np.nanmin(sm) and np.nanmax(sm) <= 0.6
    assert np.isnan(ds["soil_moisture_uncertainty"].values).all()
    assert ds["soil_moisture_uncertainty"].attrs["method"].startswith("none")
