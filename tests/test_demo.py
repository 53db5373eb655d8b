"""`smray demo` end to end on a small config: local S3 endpoint, local Ray, twin → cube, and the
bucket persisted to disk when the endpoint stops."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from smray.cli import main

pytestmark = [pytest.mark.ray, pytest.mark.s3, pytest.mark.slow]

SMALL = """
grid: {res: 2.0}
synth: {out: s3://smray-demo/twin, start: 2011-07-01, days: 3, spinup_days: 3, overwrite: true}
ingest: {tb: s3://smray-demo/twin/amsr, ref: s3://smray-demo/twin/era_interim, out: s3://smray-demo/cube.zarr,
         start: 2011-07-01, end: 2011-07-03}
"""


def test_demo_writes_twin_and_cube_and_persists_them(tmp_path: Path, ray_local, capsys) -> None:
    cfg = tmp_path / "small.yaml"
    cfg.write_text(SMALL)
    data = tmp_path / "s3data"
    before = {k: os.environ.get(k) for k in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID")}
    assert main(["demo", "--config", str(cfg), "--data", str(data)]) == 0
    out = capsys.readouterr().out
    assert "s3://smray-demo/cube.zarr" in out and "demo: done" in out
    assert {k: os.environ.get(k) for k in before} == before  # the demo restores the environment
    twin = data / "smray-demo" / "twin"
    assert (twin / "twin.json").exists()
    assert len(list((twin / "amsr").rglob("*.h5"))) == 12
    cube = xr.open_zarr(data / "smray-demo" / "cube.zarr", consolidated=True)
    assert cube.sizes["time"] == 3 and cube.attrs["days_ok"] == 3
    assert np.isfinite(cube.tb.isel(time=1).values).any()
    # a second run restarts from the persisted bucket and skips the finished cube days
    assert main(["demo", "--config", str(cfg), "--data", str(data)]) == 0
    assert "ingest: 0 days written, 0 skipped, 3 already done" in capsys.readouterr().out
