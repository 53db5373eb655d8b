"""The archives' real names: NCAR RDA ERA-Interim analyses (one time per GRIB1 file, no
extension) read from a REAL ERA-Interim N128 GRIB file under its RDA name, user-named MARS/CDS
files, and an NSIDC-0302 day ingested against RDA analyses (no Ray)."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import numpy as np
import pytest

from smray import cube
from smray.config import QCConfig, StorageConfig
from smray.discovery import discover_ref, discover_tb, index_ref
from smray.formats import nsidc_flat
from smray.grid import Grid, surface_fractions
from smray.ingest import DayContext, ingest_day, make_job, read_reference
from smray.synth.layouts import flat_path

DAY = dt.date(2000, 1, 1)  # the real GRIB file's day
GRID = Grid(2.0)


def test_reference_names_out_of_the_box() -> None:
    names = ["r/ei.oper.an.sfc.regn128sc.2011070100", "r/ei.oper.an.sfc.regn128sc.2011070106",
             "r/ei.oper.an.sfc.regn128sc.2011070112", "r/ei.oper.an.sfc.regn128sc.2011070118",
             "r/ei.oper.an.sfc.regn128sc.2011070200",
             "r/era5_swvl1_2011-08.nc", "r/erai_2011_09_03.grib", "r/ERA-Interim_swvl1_201110.nc",
             "r/ID2r1-AMSRE-D.252011182A.v03.06H", "r/download.grib"]
    ix = index_ref(names, url="r")
    assert ix.parts[dt.date(2011, 7, 1)] == tuple(names[:4]) and ix.parts[dt.date(2011, 7, 2)] == (names[4],)
    assert ix.files[dt.date(2011, 8, 31)] == "r/era5_swvl1_2011-08.nc"  # monthly, dashed
    assert ix.files[dt.date(2011, 9, 3)] == "r/erai_2011_09_03.grib" and dt.date(2011, 9, 4) not in ix.files
    assert ix.files[dt.date(2011, 10, 1)] == "r/ERA-Interim_swvl1_201110.nc"
    assert ix.ignored == ["r/ID2r1-AMSRE-D.252011182A.v03.06H"] and ix.unrecognised == ["r/download.grib"]


@pytest.fixture
def archive(real_data: Path, tmp_path: Path) -> Path:
    """RDA-named copies of the real ERA-Interim GRIB (all four synoptic hours of 2000-01-01) and an
    NSIDC-0302 day of uniform 260 K land TBs."""
    src = real_data / "era_interim" / "ERA-Interim_OPER_0001_AN_20000101_0000.grb"
    ref = tmp_path / "rda" / "2000"
    ref.mkdir(parents=True)
    for h in (0, 6, 12, 18):
        shutil.copy(src, ref / f"ei.oper.an.sfc.regn128sc.20000101{h:02d}")
    for p in "AD":
        for ch in ("06H", "06V", "10H", "10V"):
            path = tmp_path / flat_path("nsidc_0302", DAY, p, ch)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(nsidc_flat.encode_tb(np.full(nsidc_flat.QD_SHAPE, 260.0 if "V" in ch else 250.0)))
        (tmp_path / flat_path("nsidc_0302", DAY, p, "TIM")).write_bytes(
            nsidc_flat.encode_time(nsidc_flat.overpass_minutes(p, "nsidc_0302")))
    return tmp_path


def test_rda_analyses_make_the_daily_reference(archive: Path) -> None:
    ref = discover_ref(str(archive / "rda"))
    assert len(ref.parts[DAY]) == 4 and not ref.unrecognised
    tb = discover_tb(str(archive / "amsr"))
    out = str(archive / "c.zarr")
    cube.create_or_extend(out, None, GRID, DAY, DAY, surface_fractions(GRID)["land"])
    ctx = DayContext(out, StorageConfig(), GRID, QCConfig(composite_days=1))
    job = make_job(DAY, tb, ref, composite_days=1)
    assert len(job.ref_parts) == 4 and job.to_json() and type(job).from_json(job.to_json()) == job
    res = ingest_day(job, ctx)
    assert res["status"] == "ok", res
    rec = cube.day_records(out)[DAY]
    assert sum("ei.oper.an.sfc.regn128sc.20000101" in f for f in rec["files"]) == 4
    one, _ = read_reference(ref.parts[DAY][0], DAY, GRID, StorageConfig())
    got = cube.read_day(out, None, DAY)["swvl1"]
    np.testing.assert_allclose(got, one, rtol=1e-6, equal_nan=True)  # four identical analyses
    assert 0.05 < np.nanmean(got) < 0.5
    # a corrupt analysis file: the day is skipped naming it
    bad = Path(ref.parts[DAY][2])
    bad.write_bytes(bad.read_bytes()[:5000])
    res = ingest_day(make_job(DAY, tb, discover_ref(str(archive / "rda")), composite_days=1), ctx)
    assert res["status"] == "skipped" and bad.name in res["reason"], res
