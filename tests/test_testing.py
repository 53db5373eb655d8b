"""smray.testing, the builders the other tests stand on: config files say what they were given and are
validated, sections merge key by key, and the Ray-free builders are deterministic for their seed."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from smray import cube as cubemod
from smray.config import load_config
from smray.errors import SmrayError
from smray.testing import SMALL_RUN, TINY_CHAIN, merged, write_config, write_map_store, write_smooth_cube


def test_merged_layers_win_key_by_key_and_share_nothing() -> None:
    base = {"train": {"epochs": 1, "lr": 0.1}, "grid": {"res": 2.0}}
    out = merged(base, {"train": {"epochs": 3}}, {"grid": None})
    assert out == {"train": {"epochs": 3, "lr": 0.1}, "grid": None}
    out["train"]["lr"] = 9.0
    assert base["train"]["lr"] == 0.1  # the layers are not changed through the result
    assert TINY_CHAIN["train"]["workers"] == SMALL_RUN["train"]["workers"] == 1


def test_write_config_holds_base_and_sections(tmp_path: Path) -> None:
    base = write_config(tmp_path / "base.yaml", grid={"res": 2.0}, train={"epochs": 5, "lr": 0.01})
    path = write_config(tmp_path / "c.yaml", base=base, train={"epochs": 2},
                        storage={"s3": {"key": "AKIATEST", "secret": "s3cret"}})
    cfg = load_config(path)
    assert (cfg.grid.res, cfg.train.epochs, cfg.train.lr) == (2.0, 2, 0.01)
    assert (cfg.storage.s3.key, cfg.storage.s3.secret) == ("AKIATEST", "s3cret")  # what the test ran with
    from_mapping = write_config(tmp_path / "m.yaml", base=TINY_CHAIN, train={"epochs": 4})
    assert load_config(from_mapping) == load_config(None, merged(TINY_CHAIN, {"train": {"epochs": 4}}))


def test_write_config_refuses_what_load_config_refuses(tmp_path: Path) -> None:
    with pytest.raises(SmrayError, match=r"^train\.epochs"):
        write_config(tmp_path / "bad.yaml", train={"epochs": "many"})
    assert not (tmp_path / "bad.yaml").exists()


def test_map_store_is_deterministic_for_its_seed(tmp_path: Path) -> None:
    start = dt.date(2011, 7, 1)
    cube = write_smooth_cube(str(tmp_path / "cube.zarr"), start=start, days=2, res=2.0, bbox=(-20, 30, 20, 60))
    assert cubemod.census(cube).complete
    a = write_map_store(str(tmp_path / "a.zarr"), cube_url=cube, seed=4)
    b = write_map_store(str(tmp_path / "b.zarr"), cube_url=cube, seed=4)
    c = write_map_store(str(tmp_path / "c.zarr"), cube_url=cube, seed=5)
    xr.testing.assert_identical(a, b)
    assert not np.array_equal(a["soil_moisture"].values, c["soil_moisture"].values, equal_nan=True)
    ref = cubemod.open_cube(cube)["swvl1"].values
    err = a["soil_moisture_asc"].values - ref
    assert abs(float(np.nanmean(err)) - 0.02) < 0.01  # the ascending pass's bias
