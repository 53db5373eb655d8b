"""End to end for the NSIDC-0302 / NSIDC-0301 / AE_Land3 layouts: the twin writes each layout
(`smray synth --layout`), `smray ingest` reads a *mixed* archive (0302 on some days, 0301 on
another) into one cube, real corrupt files (truncated, byte-swapped, a missing .TIM) skip only their
day, and the land-only AE_Land3 twin (ocean and lakes −9999) is ingested with the coastal rule.

Checks against the files decoded with plain numpy (uint16 little-endian tenths of K, 0 = no data):
quarter-degree days equal the twin's TBs to the products' 0.1 K (the 2° twin cell is repeated on
its 8 × 8 quarter-degree cells and averaged back: no regridding error); the EASE day went through
two area-weighted regriddings (2° → EASE 25 km → 2°), and its tolerance is stated below.
"""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import numpy as np
import pytest

from smray import cube
from smray.cli import main
from smray.config import QCConfig, StorageConfig
from smray.discovery import NSIDC_FLAT, discover_ref, discover_tb
from smray.formats.nsidc_flat import flat_filename
from smray.grid import Grid, surface_fractions
from smray.ingest import DayContext, ingest_day, make_job
from smray.predict import prediction_mask, valid_inputs
from smray.qc import FLAGS
from smray.synth.layouts import flat_path, land3_path
from smray.testing import observed, quarter_degree_tbs

START = dt.date(2011, 7, 1)
DAYS = 3
RES = 2.0
GRID = Grid(RES)
SEED = 5
CHANNELS = ("06H", "06V", "10H", "10V")
QC = QCConfig()
#: EASE round trip (2° → 25 km EASE → 2°, both area-weighted), on cells observed in both: stated
#: tolerance for the median, 90th and 99th percentile of |difference| in K. Measured (seed 5, day 2):
#: 0.08 / 2.4 / 9.7 K. The 2° cell edges do not fall on EASE cell edges, so each 2° cell gets
#: ~5-10 % of its neighbours' TB back (land/sea contrasts are ~100 K); the readers add no error.
EASE_MEDIAN_K, EASE_P90_K, EASE_P99_K = 0.25, 3.0, 12.0


def day(i: int) -> dt.date:
    return START + dt.timedelta(days=i - 1)


def synth(out: Path, layout: str) -> Path:
    assert main(["synth", "--out", str(out), "--start", START.isoformat(), "--days", str(DAYS), "--res", str(RES),
                 "--spinup-days", "3", "--seed", str(SEED), "--layout", layout]) == 0
    return out


@pytest.fixture(scope="module")
def twins(tmp_path_factory, ray_local) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("flat")
    return {layout: synth(root / layout, layout) for layout in ("nsidc_0302", "nsidc_0301")}


@pytest.fixture(scope="module")
def mixed(twins: dict[str, Path], tmp_path_factory) -> tuple[Path, Path]:
    """Days 1 and 3 from the quarter-degree twin, day 2 from the EASE twin; one `smray ingest`."""
    root = tmp_path_factory.mktemp("mixed")
    for i, layout in ((1, "nsidc_0302"), (2, "nsidc_0301"), (3, "nsidc_0302")):
        src = twins[layout] / flat_path(layout, day(i), "A", "06H")
        shutil.copytree(src.parent, root / "amsr" / src.parent.relative_to(twins[layout] / "amsr"))
    config = root / "ingest.yaml"
    config.write_text(f"grid:\n  res: {RES}\n")
    out = root / "cube.zarr"
    assert main(["ingest", "--tb", str(root / "amsr"), "--ref", str(twins["nsidc_0302"] / "era_interim"),
                 "--start", day(1).isoformat(), "--end", day(DAYS).isoformat(), "--out", str(out),
                 "--config", str(config)]) == 0
    return root, out


@pytest.mark.ray
def test_twin_writes_each_layout_with_real_names(twins: dict[str, Path]) -> None:
    for layout, area in (("nsidc_0302", "D.25"), ("nsidc_0301", "ML")):
        names = sorted(p.name for p in (twins[layout] / "amsr").rglob("ID2*"))
        assert len(names) == DAYS * 2 * 5  # 4 channels + .TIM per day and pass
        assert f"ID2r{'1' if area == 'D.25' else '3'}-AMSRE-{area}2011182A.v03.TIM" in names
        ix = discover_tb(str(twins[layout] / "amsr"))
        assert ix.product == NSIDC_FLAT and len(ix.files) == DAYS * 2 * 5 and not ix.unrecognised
    # the two layouts hold the same twin (same seed): the EASE files are its area-weighted average
    qd = np.fromfile(twins["nsidc_0302"] / flat_path("nsidc_0302", day(1), "D", "06V"), "<u2")
    assert (qd == 0).mean() < 0.5 and 1500 < np.median(qd[qd > 0]) < 3200  # tenths of K


@pytest.mark.ray
def test_mixed_archive_gives_one_consistent_cube(twins: dict[str, Path], mixed: tuple[Path, Path]) -> None:
    root, out = mixed
    records = cube.day_records(str(out))
    assert all(records[day(i)]["status"] == "ok" for i in range(1, DAYS + 1))
    assert all("ID2r1-AMSRE-D.25" in f for i in (1, 3) for f in records[day(i)]["files"][:-1])
    assert all("ID2r3-AMSRE-ML" in f for f in records[day(2)]["files"][:-1])
    assert len(records[day(1)]["files"]) == 2 * 5 + 1  # channels + .TIM per pass, and the reference
    for i in (1, 3):  # quarter-degree days: the twin's own TBs to the products' 0.1 K
        got = cube.read_day(str(out), None, day(i))["tb"]
        for p, pass_ in enumerate("AD"):
            src = quarter_degree_tbs(twins["nsidc_0302"], day(i), pass_, GRID)
            ok = observed(src, QC)
            assert ok.mean() > 0.4
            np.testing.assert_allclose(got[p][:, ok], src[:, ok], rtol=0, atol=1e-4)
    got = cube.read_day(str(out), None, day(2))["tb"]  # EASE day vs the same twin's quarter-degree files
    diffs = []
    for p, pass_ in enumerate("AD"):
        src = quarter_degree_tbs(twins["nsidc_0302"], day(2), pass_, GRID)
        ok = observed(src, QC) & np.isfinite(got[p]).all(axis=0)
        assert ok.sum() > 0.8 * observed(src, QC).sum()  # the round trip keeps almost every observed cell
        diffs.append(np.abs(got[p][:, ok] - src[:, ok]).ravel())
    d = np.concatenate(diffs)
    q = np.percentile(d, [50, 90, 99])
    assert q[0] < EASE_MEDIAN_K and q[1] < EASE_P90_K and q[2] < EASE_P99_K, q


@pytest.mark.ray
def test_corrupt_flat_files_skip_only_their_day(twins: dict[str, Path], tmp_path: Path) -> None:
    """Real corrupt files in a copy of the quarter-degree archive: each skips its day with one line
    naming the file, the record keeps it, and the other days are written."""
    arch = tmp_path / "amsr"
    shutil.copytree(twins["nsidc_0302"] / "amsr", arch)
    trunc = arch / flat_path("nsidc_0302", day(1), "A", "10V")[5:]
    trunc.write_bytes(trunc.read_bytes()[:-2])
    swapped = arch / flat_path("nsidc_0302", day(2), "D", "06H")[5:]
    swapped.write_bytes(np.fromfile(swapped, "<u2").astype(">u2").tobytes())
    (arch / flat_path("nsidc_0302", day(3), "A", "TIM")[5:]).unlink()
    out = str(tmp_path / "c.zarr")
    cube.create_or_extend(out, None, GRID, day(1), day(DAYS), surface_fractions(GRID)["land"])
    ctx = DayContext(out, StorageConfig(), GRID, QCConfig(composite_days=1))
    tb, ref = discover_tb(str(arch)), discover_ref(str(twins["nsidc_0302"] / "era_interim"))
    assert tb.incomplete_days(day(1), day(DAYS)) == {day(3): ["A TIM"]}
    res = {i: ingest_day(make_job(day(i), tb, ref, composite_days=1), ctx) for i in range(1, DAYS + 1)}
    expect = {1: (flat_filename("nsidc_0302", day(1), "A", "10V"), "truncated"),
              2: (flat_filename("nsidc_0302", day(2), "D", "06H"), "wrong byte order"),
              3: (flat_filename("nsidc_0302", day(3), "A", "06H"),
                  f"its time file {flat_filename('nsidc_0302', day(3), 'A', 'TIM')} is missing")}
    records = cube.day_records(out)
    for i, (name, why) in expect.items():
        assert res[i]["status"] == "skipped" and name in res[i]["reason"] and why in res[i]["reason"], res[i]
        assert "\n" not in res[i]["reason"]
        assert records[day(i)]["status"] == "skipped" and name in records[day(i)]["reason"]
    # fixing the files and re-running writes the days; nothing of the earlier state is lost
    shutil.copy(twins["nsidc_0302"] / flat_path("nsidc_0302", day(1), "A", "10V"), trunc)
    assert ingest_day(make_job(day(1), discover_tb(str(arch)), ref, composite_days=1), ctx)["status"] == "ok"
    assert cube.day_records(out)[day(2)]["status"] == "skipped"


@pytest.fixture(scope="module")
def land3(tmp_path_factory, ray_local) -> tuple[Path, Path]:
    """The same twin (seed, days, grid) in the AE_Land3 layout, ingested with the default
    ``qc.water_fill: land_only``."""
    root = synth(tmp_path_factory.mktemp("land3") / "twin", "nsidc_ae_land3")
    config = root.parent / "ingest.yaml"
    config.write_text(f"grid:\n  res: {RES}\n")
    out = root.parent / "cube.zarr"
    assert main(["ingest", "--tb", str(root / "amsr"), "--ref", str(root / "era_interim"), "--start",
                 day(1).isoformat(), "--end", day(DAYS).isoformat(), "--out", str(out), "--config", str(config)]) == 0
    return root, out


@pytest.mark.ray
def test_land3_twin_fills_the_ocean_and_ingest_fills_coastal_windows(twins: dict[str, Path],
                                                                    land3: tuple[Path, Path]) -> None:
    """AE_Land3 twin → cube: land TBs are the twin's (the quarter-degree twin of the same seed, to the
    products' 0.1 K: each 2° cell reads the EASE cell holding its centre, which lies inside it
    equatorward of 80°, where EASE rows are less than 1.1° tall); the
    file holds −9999 over water; ingest fills water from the nearest land (``water_filled``) so
    coastal land cells get complete windows, which they do not without the rule (filled cells keep
    no_observation: never centres)."""
    from smray.formats.nsidc_land3 import SCREENED, field_name, read_nsidc_land3_native

    root, out = land3
    names = sorted(p.relative_to(root).as_posix() for p in (root / "amsr").rglob("*.hdf"))
    assert names == [land3_path(day(i)) for i in range(1, DAYS + 1)]
    assert discover_tb(str(root / "amsr")).product == "nsidc_ae_land3"
    from pyhdf.SD import SD, SDC

    sd = SD(str(root / land3_path(day(2))), SDC.READ)
    counts = sd.select(field_name("D", "06v"))[:]
    sd.end()
    assert 0.6 < (counts == SCREENED).mean() < 0.8  # ocean and lakes: about 70 % of the EASE cells
    assert read_nsidc_land3_native(root / land3_path(day(2)))["tb_06v"].attrs["units"] == "K"

    records = cube.day_records(str(out))
    assert all(records[day(i)]["status"] == "ok" and records[day(i)]["water_filled"] > 0 for i in range(1, DAYS + 1))
    land = cube.read_static(str(out), None)["land_fraction"]
    is_land = land >= 0.5
    got = cube.read_day(str(out), None, day(2))
    for p, pass_ in enumerate("AD"):
        src = quarter_degree_tbs(twins["nsidc_0302"], day(2), pass_, GRID)
        qc = got["qc"][p]
        fresh = is_land & observed(src, QC) & ((qc & (FLAGS["composited"] | FLAGS["no_observation"])) == 0)
        assert fresh.sum() > 0.8 * (is_land & observed(src, QC)).sum()  # almost every observed land cell is there
        fresh &= np.abs(GRID.lat)[:, None] < 80  # poleward, an EASE row is > 1° tall: it mixes 2° rows
        np.testing.assert_allclose(got["tb"][p][:, fresh], src[:, fresh], rtol=0, atol=0.1 + 1e-4)
        filled = (qc & FLAGS["water_filled"]) != 0
        inland = land >= QC.coastal_land_fraction  # the rule's sources; never filled
        assert filled.any() and not (filled & inland).any() and ((qc[filled] & FLAGS["no_observation"]) != 0).all()
        land_values = set(np.round(got["tb"][p][0][inland & ~filled], 3).tolist())
        assert set(np.round(got["tb"][p][0][filled], 3).tolist()) <= land_values  # copies of land TBs
    # the rule's effect: land cells whose 9x9 window is complete, with it and without it
    tb_no_rule = np.array(got["tb"], copy=True)
    for p in range(2):
        tb_no_rule[p][:, (got["qc"][p] & FLAGS["water_filled"]) != 0] = np.nan
    mask = prediction_mask(QC.block)
    with_rule = valid_inputs(got, land, mask, [0, 1, 2, 3], 9, periodic=True)
    without = valid_inputs({**got, "tb": tb_no_rule}, land, mask, [0, 1, 2, 3], 9, periodic=True)
    assert not (without & ~with_rule).any() and with_rule.sum() > 2 * without.sum()
    filled_any = ((got["qc"] & FLAGS["water_filled"]) != 0)
    assert not (with_rule & filled_any).any()
