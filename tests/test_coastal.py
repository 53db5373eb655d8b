"""The coastal rule for land-only TB products (smray.preprocess.fill_water, qc.water_fill) and the
twin's AE_Land3 fields (ocean and lakes −9999 on the EASE grid). Pure numpy, no Ray; the end-to-end
twin → AE_Land3 file → ingest → cube check is in tests/test_ingest_nsidc_flat.py."""

from __future__ import annotations

import json

import numpy as np
import pytest

from smray.config import QCConfig
from smray.discovery import JAXA, NSIDC
from smray.errors import SmrayError
from smray.grid import Grid, surface_fractions
from smray.ingest import fills_water, qc_attr
from smray.predict import valid_inputs
from smray.preprocess import fill_water
from smray.qc import FLAGS


def _day(ny: int = 12, nx: int = 16) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Land in columns 0–6 (TB 200 + column), water in 7–15 (NaN, no_observation), as a land-only product."""
    lf = np.zeros((ny, nx))
    lf[:, :7] = 1.0
    tb = np.full((2, 4, ny, nx), np.nan, np.float32)
    tb[:, :, :, :7] = 200.0 + np.arange(7, dtype=np.float32)
    qc = np.zeros((2, ny, nx), np.uint16)
    qc[:, :, 7:] = FLAGS["no_observation"] | FLAGS["open_water"]
    return tb, qc, lf


def test_water_takes_the_nearest_observed_land_and_is_flagged() -> None:
    tb, qc, lf = _day()
    tb[0, :, 5, 6] = np.nan  # a swath gap on land, pass A: stays a gap, and is no source
    qc[0, 5, 6] |= FLAGS["no_observation"]
    out, q, n = fill_water(tb, qc, lf, QCConfig(water_fill_cells=6))
    # columns 7..12 are within 6 cells of column 6 (the coast); 13..15 are not
    assert (np.isfinite(out[1][:, :, 7:13]).all() and np.isnan(out[1][:, :, 13:]).all())
    np.testing.assert_array_equal(out[1][:, 3, 7:13], np.full((4, 6), 206.0))
    assert np.isnan(out[0][:, 5, 6]).all()  # land gaps are never filled
    assert np.isfinite(out[0][:, 5, 7]).all() and out[0][0, 5, 7] in (205.0, 206.0)  # nearest observed land
    filled = (q & FLAGS["water_filled"]) != 0
    assert n == int(filled.sum()) and filled[1][:, 7:13].all() and not filled[:, :, :7].any()
    assert (q[filled] & FLAGS["no_observation"]).all()  # context only: nothing was observed there
    assert (q[1][:, 13:] & FLAGS["no_observation"]).all()
    np.testing.assert_array_equal(tb[1][:, :, 7:], np.nan)  # inputs untouched


def test_coastal_land_the_product_blanked_is_filled_but_never_a_centre() -> None:
    """A mixed cell (land fraction 0.7: land on the cube's grid, water to the product's mask) without
    a TB is filled as context; it keeps no_observation, so it is no centre; a land cell of fraction
    ≥ qc.coastal_land_fraction with a gap is left alone."""
    tb, qc, lf = _day(20, 24)
    lf[:, 6] = 0.7
    tb[:, :, :, 6] = np.nan
    qc[:, :, 6] |= FLAGS["no_observation"]
    tb[:, :, 10, 2] = np.nan
    qc[:, 10, 2] |= FLAGS["no_observation"]
    out, q, _ = fill_water(tb, qc, lf, QCConfig())
    assert np.isfinite(out[:, :, :, 6]).all() and (q[:, :, 6] & FLAGS["water_filled"]).all()
    np.testing.assert_array_equal(out[0][:, 3, 6], np.full(4, 205.0))  # the neighbour inland
    assert np.isnan(out[:, :, 10, 2]).all()
    mask = FLAGS["no_observation"] | FLAGS["open_water"]
    ok = valid_inputs({"tb": out, "qc": q}, lf, mask, [0, 1, 2, 3], 9, periodic=False)
    assert not ok[:, :, 6].any() and ok[:, 15:-4, 4:6].all()


def test_water_fill_wraps_in_longitude_only_on_a_global_grid() -> None:
    tb, qc, lf = _day()
    cfg = QCConfig(water_fill_cells=3)
    wrapped, _, _ = fill_water(tb, qc, lf, cfg, periodic=True)
    flat, _, _ = fill_water(tb, qc, lf, cfg, periodic=False)
    assert np.isfinite(wrapped[0][0, :, 13:]).all() and (wrapped[0][0, :, 13:] == 200.0).all()  # from column 0
    assert np.isnan(flat[0][0, :, 13]).all()


def test_the_rule_makes_coastal_windows_complete_and_never_makes_water_a_centre() -> None:
    tb, qc, lf = _day(20, 24)
    mask = FLAGS["no_observation"] | FLAGS["open_water"]
    before = valid_inputs({"tb": tb, "qc": qc}, lf, mask, [0, 1, 2, 3], 9, periodic=False)
    out, q, _ = fill_water(tb, qc, lf, QCConfig())
    after = valid_inputs({"tb": out, "qc": q}, lf, mask, [0, 1, 2, 3], 9, periodic=False)
    assert not before[:, 4:-4, 3:7].any()  # land within 4 cells of the coast: no complete window
    assert after[:, 4:-4, 4:7].all()  # the coastal land cells come back (columns 0-3 lack western context)
    assert not after[:, :, 7:].any()  # water cells stay open_water: never predicted


def test_water_fill_setting_and_the_cube_attribute() -> None:
    assert fills_water(QCConfig(), NSIDC) and not fills_water(QCConfig(), JAXA)
    assert fills_water(QCConfig(water_fill="always"), JAXA)
    assert not fills_water(QCConfig(water_fill="never"), NSIDC)
    with pytest.raises(SmrayError, match="qc.water_fill: must be one of"):
        QCConfig(water_fill="nearest")
    with pytest.raises(SmrayError, match="qc.water_fill_cells"):
        QCConfig(water_fill_cells=-1)
    # a cube built before the setting existed (its smray_qc has no water_fill keys) stays current
    assert "water_fill" not in json.loads(qc_attr(QCConfig()))
    assert json.loads(qc_attr(QCConfig(water_fill="never")))["water_fill"] == "never"


def test_twin_land3_fields_fill_ocean_and_lakes() -> None:
    """The twin's AE_Land3 counts: −9999 on EASE cells that are mostly water, 9999 in swath gaps,
    TB × 10 elsewhere (a 2° field, area-weighted onto EASE)."""
    from smray.formats import ease
    from smray.formats.nsidc_land3 import GAP, SCREENED, field_name
    from smray.synth.layouts import LAND3_LAND_MIN, land3_fields

    grid = Grid(2.0)
    land = surface_fractions(grid)["land"]
    tb = np.full(grid.shape, 250.0, np.float32)
    tb[:, 90:] = np.nan  # the eastern hemisphere not observed
    fields = land3_fields({"A": {c: tb for c in ("06H", "06V", "10H", "10V")}}, grid, land)
    assert set(fields) == {field_name("A", c) for c in ("06h", "06v", "10h", "10v")}
    counts = fields[field_name("A", "06h")]
    assert counts.shape == ease.SHAPE and counts.dtype == np.int16
    water = ~(ease.grid_to_ease(land, grid) >= LAND3_LAND_MIN)
    assert (counts[water] == SCREENED).all() and 0.6 < water.mean() < 0.8  # about 70 % of the Earth
    _, lon = ease.centres()
    west, east = ~water & (lon[None, :] < -1), ~water & (lon[None, :] > 1)
    assert (counts[west] == 2500).all() and (counts[east] == GAP).all()
