"""smray evaluate end to end on a tiny regional twin: map stores written to the smray-maps-1 schema
(smray.testing.write_map_store: prediction = reference + known bias + noise) are scored, and every
number is recomputed here with plain numpy from the arrays written: overall, per pass, by latitude
band, by MPDI vegetation class, anomaly R, against the twin's truth and against ISMN stations (a
station written in the real ISMN format at a twin cell, the real SCAN file, a real station without
overlapping days, one off the grid). The report and its PNG figures exist and are images; bad inputs
are one-line CLI errors."""

from __future__ import annotations

import datetime as dt
import json
import math
import shutil
import warnings
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from smray import cube as cubemod
from smray.cli import main
from smray.config import load_config
from smray.evaluate import LAT_BANDS, VEGETATION, run_evaluate
from smray.testing import PNG_SIGNATURE, build_twin_and_cube, quiet, write_map_store, write_smooth_cube, write_stm

START = dt.date(2011, 7, 1)
DAYS = 4
END = START + dt.timedelta(days=DAYS - 1)
BBOX = (-130, 20, -60, 55)  # the contiguous US: the real SCAN stations lie inside
LOWER, UPPER = 0.05, 0.45
ANOMALY_MIN_DAYS = 3
MANDATORY = ("r2", "rmse", "rmse_norm", "bias", "ubrmsd", "pearson_r", "n")
SCAN_FILE = "ismn/header_values/SCAN/AAMU-jtg/SCAN_SCAN_AAMU-jtg_sm_0.050800_0.050800_Hydraprobe-Analog-(2.5-Volt)_" \
            "20070101_20131231.stm"

pytestmark = [pytest.mark.slow, pytest.mark.ray]


# --------------------------------------------------------------------------------------------
# Fixtures: one twin + cube, the stores, one evaluation (module scope)
# --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny(tmp_path_factory, ray_local) -> dict[str, Any]:
    """The twin and its cube. The ingest and the evaluations (Ray tasks over days) join the session's Ray
    runtime."""
    root = tmp_path_factory.mktemp("evaluate")
    twin, cube = build_twin_and_cube(root, start=START, days=DAYS, res=1.0, bbox=BBOX, seed=3)
    return {"root": root, "twin": twin, "cube": str(cube)}


@pytest.fixture(scope="module")
def stores(tiny: dict[str, Any]) -> dict[str, str]:
    root, cube = tiny["root"], tiny["cube"]
    out = {"cnn": str(root / "cnn.zarr"), "svr": str(root / "svr.zarr"), "physical": str(root / "physical.zarr"),
           "cnn_2": str(root / "cnn_copy.zarr")}
    write_map_store(out["cnn"], cube_url=cube, kind="cnn", seed=0, norm=(LOWER, UPPER))
    write_map_store(out["svr"], cube_url=cube, kind="svr", bias=(0.0, 0.03), noise=0.05, seed=1, norm=(LOWER, UPPER))
    write_map_store(out["physical"], cube_url=cube, kind="physical", bias=(-0.03, -0.02), noise=0.06, seed=2,
                    norm=None, days=[START + dt.timedelta(days=k) for k in range(1, DAYS)])
    shutil.copytree(out["cnn"], out["cnn_2"])
    return out


def _finite_cell(p: np.ndarray) -> tuple[int, int]:
    """A cell (row, col) whose combined prediction is finite on every day."""
    ok = np.isfinite(p).all(axis=0)
    rows, cols = np.nonzero(ok)
    k = len(rows) // 2
    return int(rows[k]), int(cols[k])


@pytest.fixture(scope="module")
def ismn_dir(tiny: dict[str, Any], stores: dict[str, str], real_data: Path) -> dict[str, Any]:
    """A station in the real ISMN layout at a twin cell (plus a deeper sensor and a flagged hour that
    must be left out), the real SCAN AAMU-jtg file and a real MAQU station (off this grid)."""
    d = tiny["root"] / "ismn"
    d.mkdir()
    maps = xr.open_zarr(stores["cnn"], consolidated=False)
    p = maps["soil_moisture"].values
    row, col = _finite_cell(p)
    lat, lon = float(maps["lat"][row]), float(maps["lon"][col])
    values = {START - dt.timedelta(days=1): 0.40, START: 0.21, START + dt.timedelta(days=1): 0.25,
              START + dt.timedelta(days=2): 0.18, START + dt.timedelta(days=3): 0.30}
    hours = []
    for day, v in values.items():
        for h, off in ((0, -0.02), (6, 0.0), (12, 0.02), (18, 0.0)):
            hours.append((f"{day:%Y/%m/%d} {h:02d}:00", v + off, "G"))
        hours.append((f"{day:%Y/%m/%d} 21:00", 0.95, "D02"))  # flagged: not counted
    write_stm(d, lat=lat + 0.3, lon=lon - 0.2, depth=(0.0, 0.05), hours=hours)
    write_stm(d, lat=lat + 0.3, lon=lon - 0.2, depth=(0.10, 0.10), station="TWIN-1",
              hours=[(f"{day:%Y/%m/%d} 12:00", 0.9, "G") for day in values])  # too deep: not surface
    shutil.copy(real_data / SCAN_FILE, d / Path(SCAN_FILE).name)
    with zipfile.ZipFile(real_data / "ismn" / "Data_header_values.zip") as zf:
        member = next(m for m in zf.namelist() if "CST-01" in m and m.endswith(".stm"))
        (d / Path(member).name).write_bytes(zf.read(member))
    return {"dir": str(d), "row": row, "col": col, "values": values}


@pytest.fixture(scope="module")
def evaluated(tiny: dict[str, Any], stores: dict[str, str], ismn_dir: dict[str, Any]) -> dict[str, Any]:
    cfg = load_config(None, {"evaluate": {"anomaly_min_days": ANOMALY_MIN_DAYS}})
    out = tiny["root"] / "report"
    maps = [stores[k] for k in ("cnn", "svr", "physical", "cnn_2")]
    result = run_evaluate(cfg, maps, tiny["cube"], str(out), truth_url=str(tiny["twin"]), ismn=ismn_dir["dir"],
                          progress=quiet)
    return {"result": result, "out": out, "json": json.loads((out / "metrics.json").read_text())}


# --------------------------------------------------------------------------------------------
# Plain-numpy expectations
# --------------------------------------------------------------------------------------------
def expected(p: np.ndarray, r: np.ndarray, span: float | None = None) -> dict[str, float]:
    ok = np.isfinite(p) & np.isfinite(r)
    p, r = p[ok].astype(np.float64), r[ok].astype(np.float64)
    e = p - r
    rmse = float(np.sqrt(np.mean(e ** 2)))
    bias = float(e.mean())
    return {"n": int(ok.sum()), "rmse": rmse, "bias": bias, "ubrmsd": float(np.sqrt(rmse ** 2 - bias ** 2)),
            "r2": float(1 - np.sum(e ** 2) / np.sum((r - r.mean()) ** 2)),
            "pearson_r": float(np.corrcoef(p, r)[0, 1]), "rmse_norm": rmse / span if span else math.nan}


def expected_anomaly_r(p: np.ndarray, r: np.ndarray, min_days: int) -> float:
    ok = np.isfinite(p) & np.isfinite(r)
    count = ok.sum(axis=0)
    use = ok & (count >= min_days)[None]
    pm = np.where(use, p, 0).sum(axis=0) / np.maximum(count, 1)
    rm = np.where(use, r, 0).sum(axis=0) / np.maximum(count, 1)
    ap, ar = (p - pm[None])[use], (r - rm[None])[use]
    return float(np.corrcoef(ap, ar)[0, 1])


def expected_clim_anomaly_r(p: np.ndarray, r: np.ndarray, months: np.ndarray, min_days: int) -> float:
    """Anomalies from each pixel's calendar-month mean (prediction and reference separately, on the pairs)."""
    ap, ar = [], []
    for m in np.unique(months):
        sel = months == m
        pm, rm = p[sel], r[sel]
        ok = np.isfinite(pm) & np.isfinite(rm)
        use = ok & (ok.sum(axis=0) >= min_days)[None]
        count = np.maximum(use.sum(axis=0), 1)
        ap.append((pm - np.where(use, pm, 0).sum(axis=0) / count)[use])
        ar.append((rm - np.where(use, rm, 0).sum(axis=0) / count)[use])
    return float(np.corrcoef(np.concatenate(ap), np.concatenate(ar))[0, 1])


def arrays(store: str, cube_url: str) -> dict[str, np.ndarray]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # zarr: the _smray records folder is not a Zarr node
        maps = xr.open_zarr(store, consolidated=False)
    ref = cubemod.open_cube(cube_url)["swvl1"].sel(time=maps["time"].values).values
    return {"p": maps["soil_moisture"].values, "A": maps["soil_moisture_asc"].values,
            "D": maps["soil_moisture_desc"].values, "r": ref, "lat": maps["lat"].values, "time": maps["time"].values}


def close(got: dict[str, Any], want: dict[str, float], keys: tuple[str, ...] = MANDATORY) -> None:
    for k in keys:
        w, g = want[k], got[k]
        if isinstance(w, float) and math.isnan(w):
            assert g is None or math.isnan(g), k
        else:
            assert g == pytest.approx(w, rel=1e-6, abs=1e-9), k


# --------------------------------------------------------------------------------------------
# Tests
# --------------------------------------------------------------------------------------------
def test_metrics_equal_numpy_for_every_model(evaluated: dict[str, Any], stores: dict[str, str],
                                             tiny: dict[str, Any]) -> None:
    models = evaluated["json"]["models"]
    assert list(models) == ["cnn", "svr", "physical", "cnn_2"]
    for name, url in stores.items():
        a = arrays(url, tiny["cube"])
        span = None if name == "physical" else UPPER - LOWER
        close(models[name], expected(a["p"], a["r"], span))
        assert models[name]["anomaly_r"] == pytest.approx(expected_anomaly_r(a["p"], a["r"], ANOMALY_MIN_DAYS),
                                                          rel=1e-6)
        months = pd.DatetimeIndex(a["time"]).month.values
        assert models[name]["clim_anomaly_r"] == pytest.approx(
            expected_clim_anomaly_r(a["p"], a["r"], months, ANOMALY_MIN_DAYS), rel=1e-6)
        assert models[name]["days"] == len(a["time"])
        for key, group in (("seasons", "JJA"), ("months", "07"), ("years", "2011")):  # one July: all in one group
            assert list(models[name][key]) == [group]
            close(models[name][key][group], expected(a["p"], a["r"], span))
    assert models["physical"]["rmse_norm"] is None and models["physical"]["norm_source"] is None
    assert models["cnn"]["norm_source"] == "store"
    assert models["cnn"]["rmse"] < models["svr"]["rmse"]  # the noisier maps score worse
    assert {k: v for k, v in models["cnn_2"].items() if k != "store"} == \
           {k: v for k, v in models["cnn"].items() if k != "store"}
    assert evaluated["json"]["period"] == {"start": START.isoformat(), "end": END.isoformat(), "days": DAYS}


def test_per_pass_and_lat_bands_match_numpy_on_the_subset(evaluated: dict[str, Any], stores: dict[str, str],
                                                          tiny: dict[str, Any]) -> None:
    m = evaluated["json"]["models"]["svr"]
    a = arrays(stores["svr"], tiny["cube"])
    for p in ("A", "D"):
        close(m["per_pass"][p], expected(a[p], a["r"], UPPER - LOWER))
    assert m["per_pass"]["D"]["bias"] == pytest.approx(0.03, abs=0.005)  # the bias written into pass D
    lat = a["lat"][None, :, None]
    nonempty = 0
    for name, south, north in LAT_BANDS:
        inband = np.broadcast_to((lat >= south) & (lat < north), a["p"].shape)
        sub = np.where(inband, a["p"], np.nan)
        got = m["lat_bands"][name]
        if not np.isfinite(sub).any():
            assert got["n"] == 0 and got["r2"] is None
            continue
        nonempty += 1
        close(got, expected(sub, a["r"], UPPER - LOWER))
    assert nonempty == 2  # 20-55N spans the 0-30N and 30N-60N bands


def test_vegetation_classes_from_the_cube_mpdi(evaluated: dict[str, Any], stores: dict[str, str],
                                               tiny: dict[str, Any]) -> None:
    cube = cubemod.open_cube(tiny["cube"])
    tb = cube["tb"].values.astype(np.float64)  # (time, pass, channel, lat, lon)
    ch = [str(c) for c in cube["channel"].values]
    v, h = tb[:, :, ch.index("10V")], tb[:, :, ch.index("10H")]
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN cells
        med = np.nanmedian(((v - h) / (v + h)).reshape(-1, *v.shape[2:]), axis=0)
    a = arrays(stores["cnn"], tiny["cube"])
    m = evaluated["json"]["models"]["cnn"]["vegetation"]
    counts = {}
    for name, lo, hi in VEGETATION:
        cls = np.isfinite(med) & (med >= lo) & (med < hi)
        sub = np.where(cls[None], a["p"], np.nan)
        counts[name] = int((np.isfinite(sub) & np.isfinite(a["r"])).sum())
        assert m[name]["n"] == counts[name]
        if counts[name] > 1:
            close(m[name], expected(sub, a["r"], UPPER - LOWER))
    total = evaluated["json"]["models"]["cnn"]["n"]
    assert sum(counts.values()) == total
    assert sum(1 for n in counts.values() if n > 0.05 * total) >= 3, counts  # the thresholds split the twin


def test_truth_per_pass_and_combined(evaluated: dict[str, Any], stores: dict[str, str], tiny: dict[str, Any]) -> None:
    a = arrays(stores["cnn"], tiny["cube"])
    truth = []
    for t in a["time"]:
        day = dt.date.fromisoformat(str(t)[:10])
        ds = xr.open_dataset(tiny["twin"] / f"truth/{day:%Y/%m}/smray_twin_truth_{day:%Y%m%d}.nc")
        truth.append(ds["sm_true"].sel(lat=a["lat"], lon=cubemod.open_cube(tiny["cube"])["lon"].values,
                                       method="nearest").transpose("pass", "lat", "lon").values)
    sm = np.stack(truth)  # (time, pass, lat, lon)
    got = evaluated["json"]["models"]["cnn"]["truth"]
    keys = ("r2", "rmse", "bias", "ubrmsd", "pearson_r", "n")
    close(got["A"], expected(a["A"], sm[:, 0]), keys)
    close(got["D"], expected(a["D"], sm[:, 1]), keys)
    close(got["combined"], expected(a["p"], sm.mean(axis=1)), keys)


def test_ismn_pairs_a_twin_station_and_the_real_scan_file(evaluated: dict[str, Any], stores: dict[str, str],
                                                          tiny: dict[str, Any], ismn_dir: dict[str, Any],
                                                          real_data: Path) -> None:
    from smray.formats.ismn import daily_means, read_ismn_stm

    a = arrays(stores["cnn"], tiny["cube"])
    days = [dt.date.fromisoformat(str(t)[:10]) for t in a["time"]]
    obs, pred = [], []
    for k, day in enumerate(days):  # the twin station: the written daily values, the flagged hour left out
        obs.append(ismn_dir["values"][day])
        pred.append(a["p"][k, ismn_dir["row"], ismn_dir["col"]])
    meta, data = read_ismn_stm(real_data / SCAN_FILE)
    lon = cubemod.open_cube(tiny["cube"])["lon"].values
    r, c = int(np.abs(a["lat"] - meta["lat"]).argmin()), int(np.abs(lon - meta["lon"]).argmin())
    dm = daily_means(data)
    scan_pairs = 0
    for k, day in enumerate(days):
        ts = pd.Timestamp(day)
        if ts in dm.index and np.isfinite(a["p"][k, r, c]):
            obs.append(float(dm.loc[ts, "soil_moisture"]))
            pred.append(a["p"][k, r, c])
            scan_pairs += 1
    assert scan_pairs >= 1  # the real station's record covers July 2011
    got = evaluated["json"]["models"]["cnn"]["ismn"]
    want = expected(np.array(pred), np.array(obs))
    assert got["n_pairs"] == want["n"] == DAYS + scan_pairs
    close(got, want, ("pearson_r", "bias", "ubrmsd", "rmse"))
    assert got["n_stations"] == 2 and got["n_stations_read"] == 3 and got["n_stations_on_grid"] == 2
    twin = next(s for s in got["stations"] if s["station"] == "TWIN-1")
    assert (twin["row"], twin["col"], twin["n_pairs"]) == (ismn_dir["row"], ismn_dir["col"], DAYS)


def test_real_station_without_overlap_is_reported_cleanly(tiny: dict[str, Any], stores: dict[str, str],
                                                          real_data: Path, tmp_path: Path, s3_bucket: str) -> None:
    """A real SOILSCAPE station (2012-2013, on this grid) has no day in July 2011: zero pairs, a note,
    and the report goes to the local S3."""
    import s3fs

    from smray.storage import s3_options

    with zipfile.ZipFile(real_data / "ismn" / "Data_header_values.zip") as zf:
        member = next(m for m in zf.namelist() if "node414" in m and m.endswith(".stm"))
        station = tmp_path / Path(member).name
        station.write_bytes(zf.read(member))
    out = f"{s3_bucket}/report"
    assert main(["evaluate", "--maps", stores["cnn"], "--cube", tiny["cube"], "--ismn", str(station), "--out", out,
                 "--day", "2011-07-02"]) == 0
    fs = s3fs.S3FileSystem(**s3_options())
    got = json.loads(fs.cat_file(f"{out}/metrics.json"))["models"]["cnn"]
    assert got["ismn"]["n_pairs"] == 0 and got["ismn"]["n_stations"] == 0
    assert got["ismn"]["n_stations_on_grid"] == 1 and "no station day overlaps" in got["ismn"]["note"]
    assert got["ismn"]["pearson_r"] is None
    assert got["map_day"] == "2011-07-02"
    assert fs.cat_file(f"{out}/maps_cnn.png").startswith(PNG_SIGNATURE)
    report = fs.cat_file(f"{out}/report.md").decode()  # no --truth: the cube's ingest_tb names the twin archive
    assert "ISMN stations against twin maps: a plumbing check, not skill" in report
    assert "Synthetic twin data: these scores measure the method on the twin" in report.split("\n")[2]


def test_metrics_json_has_the_mandatory_keys_and_the_report_its_figures(evaluated: dict[str, Any]) -> None:
    import matplotlib.image as mpimg

    data, out = evaluated["json"], evaluated["out"]
    for name, m in data["models"].items():
        assert all(k in m for k in MANDATORY), name
        assert set(m["per_pass"]) == {"A", "D"} and set(m["lat_bands"]) == {b for b, _, _ in LAT_BANDS}
        assert set(m["vegetation"]) == {c for c, _, _ in VEGETATION}
        assert "truth" in m and "ismn" in m
    assert data["cube"] and data["maps"] and data["period"]
    report = (out / "report.md").read_text()
    assert "| cnn |" in report and "0.6512" in report and "0.1817" in report and "By vegetation class" in report
    files = [f for figs in data["figures"]["models"].values() for f in figs.values()] + [data["figures"]["timeseries"]]
    assert len(files) == 4 * 3 + 1
    for name in files:
        assert f"]({name})" in report
        raw = (out / name).read_bytes()
        assert raw.startswith(PNG_SIGNATURE) and len(raw) > 10_000, name
        img = mpimg.imread(out / name)
        assert img.ndim == 3 and img.shape[0] > 200 and img.shape[1] > 200
        assert float(img[..., :3].std()) > 0.05, name  # not a blank canvas


def test_a_report_on_the_twin_says_so_and_scores_ismn_as_plumbing(evaluated: dict[str, Any],
                                                                   tiny: dict[str, Any]) -> None:
    data = evaluated["json"]
    assert data["data"]["synthetic"] is True and str(tiny["twin"]) in data["data"]["evidence"]
    lines = (evaluated["out"] / "report.md").read_text().split("\n")
    assert lines[0].startswith("# Soil-moisture map evaluation") and "Synthetic twin data: these scores measure " \
        "the method on the twin, not skill on Earth" in lines[2]
    report = "\n".join(lines)
    assert "## Against ISMN stations" not in report
    ismn = report.index("## ISMN stations against twin maps: a plumbing check, not skill")
    headline = report[report.index("## All models side by side"):report.index("## Per pass")]
    assert "ISMN" not in headline and ismn > report.index("## Per pass")
    table = report[ismn:report.index("## Figures")]
    assert "| R (plumbing) |" in table
    for name, m in data["models"].items():  # every model's row is there, after the label
        assert f"| {name} | {m['ismn']['n_stations']} | {m['ismn']['n_pairs']} |" in table
    assert all(m["ismn"]["role"] == "plumbing check" for m in data["models"].values())


@pytest.mark.parametrize("case, expected", [
    ("not_maps", "not a smray map store"),
    ("other_grid", "differs from the cube's"),
    ("no_overlap", "no day of the map store"),
    ("missing_day", "--day: 2011-07-01 is not a scored day of the map store"),
    ("end_before_start", "paths.evaluate.end: 2011-07-01 is before start 2011-07-03"),
    ("no_truth", "twin truth file not found"),
    ("no_cci", "ESA CCI file or directory not found"),
    ("missing_store", "no Zarr store here"),
])
def test_bad_inputs_are_one_line_cli_errors(case: str, expected: str, tiny: dict[str, Any], stores: dict[str, str],
                                            tmp_path: Path, capsys) -> None:
    base = ["evaluate", "--cube", tiny["cube"], "--out", str(tmp_path / "out")]
    maps = ["--maps", stores["cnn"]]
    if case == "not_maps":
        argv = base + ["--maps", tiny["cube"]]
    elif case == "other_grid":
        other = str(tmp_path / "other.zarr")
        write_map_store(other, cube_url=tiny["cube"], seed=0, crop=5)
        argv = base + maps + ["--maps", other]
    elif case == "no_overlap":
        argv = base + ["--maps", stores["physical"], "--start", "2011-07-01", "--end", "2011-07-01"]
    elif case == "missing_day":
        argv = base + maps + ["--maps", stores["physical"], "--day", "2011-07-01"]
    elif case == "end_before_start":
        argv = base + maps + ["--start", "2011-07-03", "--end", "2011-07-01"]
    elif case == "no_truth":
        argv = base + maps + ["--truth", str(tmp_path)]
    elif case == "no_cci":
        argv = base + maps + ["--cci", str(tmp_path / "cci")]
    else:
        argv = base + ["--maps", str(tmp_path / "absent.zarr")]
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("smray: error: ") and err.count("\n") == 1, err
    assert expected in err, err
    assert not (tmp_path / "out" / "metrics.json").exists()


def test_a_store_written_by_smray_predict(tiny: dict[str, Any], tmp_path: Path) -> None:
    """The physical retrieval predicted into a real map store (engine 'local', no Ray) scores like numpy;
    it has no normalisation of its own and the cube none stored, so rmse_norm is null."""
    from smray.predict import run_predict

    cfg = load_config(None, {"evaluate": {"anomaly_min_days": ANOMALY_MIN_DAYS}})
    maps = str(tmp_path / "physical.zarr")
    run_predict(cfg, tiny["cube"], "physical", maps, twin_url=str(tiny["twin"]), engine="local", progress=quiet)
    result = run_evaluate(cfg, [maps], tiny["cube"], str(tmp_path / "report"), truth_url=str(tiny["twin"]),
                          progress=quiet)
    got = json.loads((tmp_path / "report" / "metrics.json").read_text())["models"]["physical"]
    a = arrays(maps, tiny["cube"])
    assert np.isfinite(a["p"]).sum() > 1000
    close(got, expected(a["p"], a["r"]))
    assert got["anomaly_r"] == pytest.approx(expected_anomaly_r(a["p"], a["r"], ANOMALY_MIN_DAYS), rel=1e-6)
    assert got["rmse_norm"] is None and result["models"]["physical"]["kind"] == "physical"
    assert got["truth"]["combined"]["n"] > 1000


# --------------------------------------------------------------------------------------------
# Over seasons, months and years: a smooth cube written without Ray (smray.testing.write_smooth_cube)
# --------------------------------------------------------------------------------------------
WINTER_DAYS = [dt.date(2010, 11, 27) + dt.timedelta(days=k) for k in range(4)] + \
              [dt.date(2010, 12, 28) + dt.timedelta(days=k) for k in range(7)]  # SON/DJF, 11/12/01, 2010/2011


@pytest.fixture(scope="module")
def winter(tmp_path_factory, ray_local) -> dict[str, Any]:
    """Scored by Ray tasks of 3 days each (4 tasks, merged as they finish)."""
    root = tmp_path_factory.mktemp("winter")
    cube = write_smooth_cube(str(root / "cube.zarr"), start=WINTER_DAYS[0], days=(WINTER_DAYS[-1] - WINTER_DAYS[0]).days
                             + 1, res=2.0, bbox=(-10.0, 36.0, 10.0, 56.0))
    maps = str(root / "cnn.zarr")
    write_map_store(maps, cube_url=cube, kind="cnn", seed=5, noise=0.05, days=WINTER_DAYS, norm=(LOWER, UPPER))
    cfg = load_config(None, {"evaluate": {"anomaly_min_days": ANOMALY_MIN_DAYS, "days_per_task": 3}})
    lines: list[str] = []
    result = run_evaluate(cfg, [maps], cube, str(root / "report"), progress=lines.append)
    return {"cube": cube, "maps": maps, "out": root / "report", "result": result, "cfg": cfg, "root": root,
            "progress": lines}


def test_breakdowns_by_season_month_and_year_and_the_climatology_anomaly(winter: dict[str, Any]) -> None:
    m = json.loads((winter["out"] / "metrics.json").read_text())["models"]["cnn"]
    a = arrays(winter["maps"], winter["cube"])
    t = pd.DatetimeIndex(a["time"])
    labels = {"seasons": np.where(t.month.isin([12, 1, 2]), "DJF", "SON"), "months": np.asarray(t.strftime("%m")),
              "years": np.asarray(t.strftime("%Y"))}
    want = {"seasons": ["DJF", "SON"], "months": ["01", "11", "12"], "years": ["2010", "2011"]}
    for key, groups in want.items():
        assert list(m[key]) == groups, key
        for g in groups:
            sel = labels[key] == g
            close(m[key][g], expected(a["p"][sel], a["r"][sel], UPPER - LOWER))
            assert m[key][g]["days"] == int(sel.sum())
        assert sum(v["n"] for v in m[key].values()) == m["n"]
    clim = expected_clim_anomaly_r(a["p"], a["r"], t.month.values, ANOMALY_MIN_DAYS)
    assert m["clim_anomaly_r"] == pytest.approx(clim, rel=1e-6)
    assert m["anomaly_r"] == pytest.approx(expected_anomaly_r(a["p"], a["r"], ANOMALY_MIN_DAYS), rel=1e-6)
    assert abs(m["clim_anomaly_r"] - m["anomaly_r"]) > 1e-4  # the monthly means take out part of the trend
    report = (winter["out"] / "report.md").read_text()
    assert "ynthetic twin data" not in report  # a cube that records no twin input: no banner
    for line in ("## By season", "## By calendar month", "## By year", "| cnn | DJF |", "| cnn | 01 |",
                 "| cnn | 2011 |"):
        assert line in report


def test_per_pixel_r_and_ubrmsd_fields_and_figure(winter: dict[str, Any]) -> None:
    out, result = winter["out"], winter["result"]
    assert result["data"] == {"synthetic": False, "evidence": None}
    a = arrays(winter["maps"], winter["cube"])
    ok = np.isfinite(a["p"]) & np.isfinite(a["r"])
    with xr.open_dataset(out / result["pixel_metrics"], engine="h5netcdf") as ds:
        assert list(ds["model"].values) == ["cnn"] and ds["pearson_r"].dims == ("model", "lat", "lon")
        r, ub, n = (ds[v].values[0] for v in ("pearson_r", "ubrmsd", "n"))
    assert (n == ok.sum(axis=0)).all()
    checked = 0
    for i, j in zip(*np.nonzero(ok.any(axis=0))):
        sel = ok[:, i, j]
        e = a["p"][sel, i, j].astype(np.float64) - a["r"][sel, i, j]
        assert ub[i, j] == pytest.approx(e.std(), rel=1e-5, abs=1e-7)
        if sel.sum() >= ANOMALY_MIN_DAYS:
            assert r[i, j] == pytest.approx(np.corrcoef(a["p"][sel, i, j], a["r"][sel, i, j])[0, 1], rel=1e-4)
            checked += 1
        else:
            assert np.isnan(r[i, j])
    assert checked > 40 and np.isnan(ub[~ok.any(axis=0)]).all()
    png = out / result["figures"]["models"]["cnn"]["pixels"]
    assert png.read_bytes().startswith(PNG_SIGNATURE)
    report = (out / "report.md").read_text()
    assert f"]({png.name})" in report and "pixel_metrics.nc" in report


def test_ray_tasks_over_days_equal_the_local_loop(winter: dict[str, Any], real_data: Path) -> None:
    """... and a cube with no twin input scores ISMN as an independent reference (the real SCAN station
    lies off this European grid: no pairs, a note)."""
    assert "evaluate: 11/11 days scored (4/4 ray batches)" in winter["progress"]
    local = run_evaluate(winter["cfg"], [winter["maps"]], winter["cube"], str(winter["root"] / "local"),
                         ismn=str(real_data / SCAN_FILE), engine="local", progress=quiet)["models"]["cnn"]
    assert local["ismn"]["role"] == "independent reference" and local["ismn"]["n_pairs"] == 0
    report = (winter["root"] / "local" / "report.md").read_text()
    assert "## Against ISMN stations" in report and "plumbing" not in report and "| cnn | 0 | 0 |" in report
    ray_run = winter["result"]["models"]["cnn"]
    assert ray_run["daily"] == local["daily"]
    for key in ("r2", "rmse", "ubrmsd", "pearson_r", "anomaly_r", "clim_anomaly_r"):
        assert ray_run[key] == pytest.approx(local[key], rel=1e-9), key
    for key in ("seasons", "months", "years"):
        assert list(ray_run[key]) == list(local[key])
        for group, scores in local[key].items():
            assert ray_run[key][group] == pytest.approx(scores, rel=1e-9), (key, group)


def test_esa_cci_as_a_second_reference_with_the_real_file(tmp_path: Path, real_data: Path) -> None:
    """The real ESA CCI passive file (2016-12-30) against a store on a smooth 1° cube over Australia: its
    0.25° cells block-averaged onto the cube grid, paired on that day only; equal to numpy."""
    cci_dir = real_data / "esa_cci_sm_passive"
    day = dt.date(2016, 12, 30)
    cube = write_smooth_cube(str(tmp_path / "cube.zarr"), start=day, days=2, res=1.0, bbox=(112.0, -40.0, 154.0, -11.0))
    maps = str(tmp_path / "cnn.zarr")
    write_map_store(maps, cube_url=cube, kind="cnn", seed=7, norm=(LOWER, UPPER))
    cfg = load_config(None, {"evaluate": {"anomaly_min_days": 2}})
    got = run_evaluate(cfg, [maps], cube, str(tmp_path / "report"), cci=str(cci_dir), engine="local", progress=quiet)
    a = arrays(maps, cube)
    with xr.open_dataset(next(cci_dir.glob("ESACCI-*.nc"))) as ds:
        sm = ds["sm"].isel(time=0).sortby("lat", ascending=False).values.astype(np.float64)
    ok = np.isfinite(sm).reshape(180, 4, 360, 4)
    with np.errstate(invalid="ignore"):
        coarse = np.where(ok, sm.reshape(180, 4, 360, 4), 0).sum(axis=(1, 3)) / ok.sum(axis=(1, 3))
    rows = np.round((90.0 - a["lat"] - 0.5)).astype(int)
    cols = np.round((xr.open_zarr(maps, consolidated=False)["lon"].values + 180.0 - 0.5)).astype(int)
    ref = coarse[np.ix_(rows, cols)]
    want = expected(a["p"][0], ref)
    c = got["models"]["cnn"]["cci"]
    assert c["days"] == 1 and c["role"] == "independent reference" and want["n"] > 50
    close(c, want, ("n", "r2", "rmse", "bias", "ubrmsd", "pearson_r"))
    report = (tmp_path / "report" / "report.md").read_text()
    assert "## Against ESA CCI SM" in report and f"| cnn | 1 | {want['n']} |" in report


def _write_cci_day(directory: Path, day: dt.date, sm_1x: np.ndarray, lat: np.ndarray, lon: np.ndarray) -> None:
    """A daily file in the ESA CCI layout (global 0.25°, north first, −9999 fill) whose 0.25° cells hold
    the value of the cube cell (``lat``/``lon`` centres, any whole-multiple resolution) they lie in."""
    glat = 89.875 - 0.25 * np.arange(720)
    glon = -179.875 + 0.25 * np.arange(1440)
    res = abs(float(lat[1] - lat[0]))
    ri = np.floor((lat[0] + res / 2 - glat) / res).astype(int)
    ci = np.floor((glon - (lon[0] - res / 2)) / res).astype(int)
    inside = (ri[:, None] >= 0) & (ri[:, None] < len(lat)) & (ci[None] >= 0) & (ci[None] < len(lon))
    vals = sm_1x[np.clip(ri, 0, len(lat) - 1)][:, np.clip(ci, 0, len(lon) - 1)]
    sm = np.where(inside & np.isfinite(vals), vals, -9999.0).astype(np.float32)
    ds = xr.Dataset({"sm": (("time", "lat", "lon"), sm[None], {"units": "m3 m-3"})},
                    coords={"time": ("time", [float((day - dt.date(1970, 1, 1)).days)],
                                     {"units": "days since 1970-01-01 00:00:00 UTC"}),
                            "lat": ("lat", glat), "lon": ("lon", glon)})
    ds.to_netcdf(directory / f"ESACCI-SOILMOISTURE-L3S-SSMV-PASSIVE-{day:%Y%m%d}000000-fv04.2.nc",
                 encoding={"sm": {"_FillValue": np.float32(-9999.0)}, "time": {"dtype": "float64"}})


def test_triple_collocation_of_map_reference_and_cci(winter: dict[str, Any], tmp_path: Path) -> None:
    a = arrays(winter["maps"], winter["cube"])
    lon = xr.open_zarr(winter["maps"], consolidated=False)["lon"].values
    rng = np.random.default_rng(9)
    cci = a["r"] + rng.normal(0, 0.03, a["r"].shape)
    for k, t in enumerate(a["time"]):
        _write_cci_day(tmp_path, dt.date.fromisoformat(str(t)[:10]), cci[k], a["lat"], lon)
    cfg = load_config(None, {"evaluate": {"anomaly_min_days": ANOMALY_MIN_DAYS, "tc_min_days": 6}})
    got = run_evaluate(cfg, [winter["maps"]], winter["cube"], str(tmp_path / "report"), cci=str(tmp_path),
                       engine="local", progress=quiet)["models"]["cnn"]["cci"]
    close(got, expected(a["p"], cci), ("n", "bias", "ubrmsd", "pearson_r"))
    assert got["days"] == len(WINTER_DAYS)
    est: dict[str, list[float]] = {k: [] for k in ("ex", "ey", "ez", "rx", "ry", "rz")}
    for i, j in np.ndindex(*a["p"].shape[1:]):
        x, y, z = a["p"][:, i, j].astype(np.float64), a["r"][:, i, j].astype(np.float64), cci[:, i, j]
        ok = np.isfinite(x) & np.isfinite(y) & np.isfinite(z)
        if ok.sum() < 6:
            continue
        q = np.cov(np.stack([x[ok], y[ok], z[ok]]))
        if q[0, 1] * q[0, 2] * q[1, 2] <= 0:
            continue
        e = [q[0, 0] - q[0, 1] * q[0, 2] / q[1, 2], q[1, 1] - q[0, 1] * q[1, 2] / q[0, 2],
             q[2, 2] - q[0, 2] * q[1, 2] / q[0, 1]]
        r = [q[0, 1] * q[0, 2] / (q[0, 0] * q[1, 2]), q[0, 1] * q[1, 2] / (q[1, 1] * q[0, 2]),
             q[0, 2] * q[1, 2] / (q[2, 2] * q[0, 1])]
        if min(e) < 0 or min(r) < 0 or max(r) > 1:
            continue
        for key, v in zip(est, [*np.sqrt(e), *np.sqrt(r)]):
            est[key].append(float(v))
    tc = got["triple_collocation"]
    assert tc["pixels"] == len(est["ex"]) > 3
    for key, name in (("ex", "error_std_map"), ("ey", "error_std_reference"), ("ez", "error_std_cci"),
                      ("rx", "r_truth_map"), ("ry", "r_truth_reference"), ("rz", "r_truth_cci")):
        assert tc[name] == pytest.approx(float(np.median(est[key])), rel=1e-6), name
    assert tc["error_std_map"] > tc["error_std_cci"]  # the map's noise (0.05) exceeds the CCI's (0.03)
