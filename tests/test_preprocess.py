"""smray.preprocess: screening, compositing and QC flags on synthetic arrays (no I/O, no Ray)."""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from smray.config import QCConfig
from smray.errors import SmrayError
from smray.preprocess import (CHANNELS, PASSES, composite, frozen_flags, preprocess_day, rfi_flags,
                              rfi_index, screen_tb, valid_centres, water_flags)
from smray.qc import FLAGS, QC_DTYPE, mask_of

CFG = QCConfig()
NAN = np.float32(np.nan)
#: A natural land pixel: 06H, 06V, 10H, 10V (K); RFI index −3 K in both polarisations.
LAND = np.array([250.0, 270.0, 253.0, 273.0], dtype=np.float32)
#: An ocean pixel (TB rises with frequency: index −5 K).
OCEAN = np.array([90.0, 160.0, 95.0, 165.0], dtype=np.float32)


def scene(nlat: int, nlon: int, pixel: np.ndarray = LAND) -> np.ndarray:
    return np.broadcast_to(pixel[:, None, None], (4, nlat, nlon)).astype(np.float32)


def random_tb(rng: np.random.Generator, shape: tuple[int, int], *, p_nan: float = 0.3,
              p_bad: float = 0.0) -> np.ndarray:
    """Plausible TBs with whole-pixel gaps, single-channel gaps and (``p_bad``) impossible values."""
    tb = rng.uniform(150.0, 300.0, (4, *shape)).astype(np.float32)
    tb[:, rng.random(shape) < p_nan] = np.nan
    tb[rng.random(tb.shape) < p_nan / 5] = np.nan
    bad = rng.random(tb.shape) < p_bad
    tb[bad] = rng.choice(np.array([-1.0, 0.0, 10.0, 400.0, 1e30, np.inf, -np.inf], np.float32), bad.sum())
    return tb


def bits(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a, dtype=np.float32).view(np.uint32)


def pixel_from(out: np.ndarray, src: np.ndarray) -> np.ndarray:
    """bool (nlat, nlon): all four channels of ``out`` bit-identical to ``src``."""
    return (bits(out) == bits(src)).all(axis=0)


# ----------------------------------------------------------------------------------------------
# screen_tb
# ----------------------------------------------------------------------------------------------
def test_screen_bounds_inclusive_and_all_channels_together():
    tb = scene(1, 8)
    tb[0, 0, 0] = CFG.tb_min_k  # exactly at the bounds: kept
    tb[3, 0, 1] = CFG.tb_max_k
    tb[1, 0, 2] = np.float32(CFG.tb_min_k) - np.float32(0.01)  # just outside: screened
    tb[2, 0, 3] = np.float32(CFG.tb_max_k) + np.float32(0.01)
    tb[0, 0, 4] = np.inf
    tb[3, 0, 5] = -np.inf
    tb[1, 0, 6] = np.nan  # not observed ≠ out of range
    tb[:, 0, 7] = np.nan
    before = tb.copy()
    out, oor = screen_tb(tb, CFG)
    assert out.dtype == np.float32 and out.shape == tb.shape
    assert oor.dtype == bool and oor.shape == (1, 8)
    np.testing.assert_array_equal(oor[0], [False, False, True, True, True, True, False, False])
    assert np.isnan(out[:, 0, 2:6]).all()  # every channel of a screened pixel
    assert pixel_from(out, before)[0, :2].all()
    np.testing.assert_array_equal(bits(out[:, 0, 6:]), bits(before[:, 0, 6:]))
    np.testing.assert_array_equal(bits(tb), bits(before))  # input untouched


def test_screen_custom_bounds_and_float64_input():
    cfg = dataclasses.replace(CFG, tb_min_k=100.0, tb_max_k=200.0)
    tb = np.array([150.0, 99.0, 150.0, 150.0])[:, None, None] * np.ones((1, 1, 2))
    tb[1, 0, 1] = 150.0
    out, oor = screen_tb(tb, cfg)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(oor, [[True, False]])
    np.testing.assert_array_equal(out[:, 0, 1], [150.0] * 4)


def test_screen_rejects_wrong_channel_count():
    with pytest.raises(SmrayError, match="screen_tb"):
        screen_tb(np.zeros((3, 2, 2), np.float32), CFG)


# ----------------------------------------------------------------------------------------------
# composite
# ----------------------------------------------------------------------------------------------
_TB_VALUE = st.one_of(st.just(float("nan")), st.floats(50.0, 330.0, width=32))


@st.composite
def _day_pair(draw):
    nlat = draw(st.integers(1, 5))
    nlon = draw(st.integers(1, 5))
    today = draw(hnp.arrays(np.float32, (4, nlat, nlon), elements=_TB_VALUE))
    previous = draw(st.one_of(st.none(), hnp.arrays(np.float32, (4, nlat, nlon), elements=_TB_VALUE)))
    # whole-pixel gaps are the common case: blank some pixels entirely
    for arr in (today, previous):
        if arr is not None:
            gap = draw(hnp.arrays(bool, (nlat, nlon)))
            arr[:, gap] = np.nan
    return today, previous


@settings(max_examples=200, deadline=None)
@given(_day_pair(), st.sampled_from([1, 2]))
def test_composite_invariants(pair, composite_days):
    today, previous = pair
    today_in = today.copy()
    prev_in = None if previous is None else previous.copy()
    out, filled, missing = composite(today, previous, composite_days)

    assert out.dtype == np.float32 and out.shape == today.shape
    assert filled.shape == missing.shape == today.shape[1:]
    obs_today = np.isfinite(today).all(axis=0)
    # observed pixels: bit-exact; inputs never modified
    assert pixel_from(out, today_in)[obs_today].all()
    np.testing.assert_array_equal(bits(today), bits(today_in))
    if previous is not None:
        np.testing.assert_array_equal(bits(previous), bits(prev_in))
    # every pixel is: today's four channels, the previous day's four channels, or four NaNs
    all_nan = np.isnan(out).all(axis=0)
    np.testing.assert_array_equal(all_nan, missing)
    assert not np.isnan(out[:, ~missing]).any()
    assert not (filled & missing).any()
    assert not (filled & obs_today).any()
    np.testing.assert_array_equal(obs_today | filled | missing, np.ones_like(missing))
    if composite_days == 1 or previous is None:
        assert not filled.any()
        np.testing.assert_array_equal(missing, ~obs_today)
    else:
        obs_prev = np.isfinite(previous).all(axis=0)
        np.testing.assert_array_equal(filled, ~obs_today & obs_prev)
        assert pixel_from(out, prev_in)[filled].all()


def test_composite_never_mixes_channels():
    today = scene(1, 3)
    previous = scene(1, 3, LAND + 7.0)
    today[2, 0, 0] = np.nan  # partial today, complete yesterday → whole pixel from yesterday
    today[:, 0, 1] = np.nan
    previous[0, 0, 1] = np.nan  # gap today, partial yesterday → no observation (not a mix)
    today[1, 0, 2] = np.nan  # partial today, no previous pixel → four NaNs
    previous[:, 0, 2] = np.nan
    out, filled, missing = composite(today, previous, 2)
    np.testing.assert_array_equal(out[:, 0, 0], LAND + 7.0)
    np.testing.assert_array_equal(filled[0], [True, False, False])
    np.testing.assert_array_equal(missing[0], [False, True, True])
    assert np.isnan(out[:, 0, 1:]).all()


def test_composite_one_day_fills_nothing():
    today = scene(2, 2)
    today[:, 0, 0] = np.nan
    out, filled, missing = composite(today, scene(2, 2, LAND + 1), 1)
    assert not filled.any()
    np.testing.assert_array_equal(missing, [[True, False], [False, False]])
    assert np.isnan(out[:, 0, 0]).all()


def test_composite_rejects_bad_arguments():
    with pytest.raises(SmrayError, match="composite_days"):
        composite(scene(1, 1), None, 3)
    with pytest.raises(SmrayError, match="previous"):
        composite(scene(1, 2), scene(2, 1), 2)


# ----------------------------------------------------------------------------------------------
# RFI
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("pol", ["H", "V"])
@pytest.mark.parametrize(("index_k", "suspect", "strong"), [
    (4.9, False, False), (5.1, True, False), (9.9, True, False), (10.1, True, True),
    (0.0, False, False), (-7.0, False, False), (-25.0, False, False),  # X-band RFI: negative, not caught
])
def test_rfi_thresholds(pol, index_k, suspect, strong):
    c06, c10 = (CHANNELS.index("06" + pol), CHANNELS.index("10" + pol))
    tb = scene(1, 1)
    tb[c06] = tb[c10] + np.float32(index_k)
    got_suspect, got_strong = rfi_flags(tb, CFG)
    assert got_suspect.dtype == bool and got_suspect.shape == (1, 1)
    assert bool(got_suspect[0, 0]) is suspect
    assert bool(got_strong[0, 0]) is strong


def test_rfi_index_and_nan_safety():
    tb = scene(1, 3)
    tb[0, 0, 1] = np.nan
    tb[:, 0, 2] = np.nan
    index_h, index_v = rfi_index(tb)
    np.testing.assert_allclose(index_h[0, 0], LAND[0] - LAND[2])
    np.testing.assert_allclose(index_v[0, 0], LAND[1] - LAND[3])
    assert np.isnan(index_h[0, 1]) and not np.isnan(index_v[0, 1])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        suspect, strong = rfi_flags(tb, CFG)
    assert not suspect.any() and not strong.any()


# ----------------------------------------------------------------------------------------------
# frozen, water
# ----------------------------------------------------------------------------------------------
def test_frozen_from_stl1_over_land_only():
    tb = scene(1, 4)
    stl1 = np.array([[273.0, 273.3, 250.0, 250.0]])
    lf = np.array([[1.0, 1.0, 0.7, 0.2]])  # the last is open water
    np.testing.assert_array_equal(frozen_flags(tb, stl1, lf, CFG), [[True, False, True, False]])


def test_frozen_fallback_cold_tb10v():
    tb = scene(1, 5)
    i10v = CHANNELS.index("10V")
    tb[i10v, 0] = [249.0, 251.0, 240.0, np.nan, 240.0]
    lf = np.array([[1.0, 1.0, 0.3, 1.0, 1.0]])
    np.testing.assert_array_equal(frozen_flags(tb, None, lf, CFG), [[True, False, False, False, True]])
    # a NaN soil temperature falls back to the TB test for that pixel only
    stl1 = np.array([[280.0, 260.0, 260.0, np.nan, np.nan]])
    np.testing.assert_array_equal(frozen_flags(tb, stl1, lf, CFG), [[False, True, False, False, True]])


def test_water_and_coastal_thresholds():
    lf = np.array([[0.0, 0.49, 0.5, 0.94, 0.95, 1.0, np.nan]])
    open_water, coastal = water_flags(lf, CFG)
    np.testing.assert_array_equal(open_water, [[True, True, False, False, False, False, True]])
    np.testing.assert_array_equal(coastal, [[False, False, True, True, False, False, False]])


# ----------------------------------------------------------------------------------------------
# preprocess_day
# ----------------------------------------------------------------------------------------------
def _hand_scene():
    """3×3, one rule per pixel (pass A); pass D has no files today nor yesterday.

    (0,0) reference_missing  (0,1) no_observation  (0,2) composited
    (1,0) tb_out_of_range    (1,1) rfi_suspect     (1,2) rfi_strong (+ suspect)
    (2,0) frozen_or_snow     (2,1) open_water      (2,2) coastal
    """
    today = scene(3, 3)
    previous = scene(3, 3, LAND + 2.0)
    today[:, 0, 1] = np.nan
    previous[:, 0, 1] = np.nan
    today[:, 0, 2] = np.nan
    today[2, 1, 0] = 400.0
    previous[:, 1, 0] = np.nan
    today[CHANNELS.index("06H"), 1, 1] = LAND[CHANNELS.index("10H")] + 7.0
    today[CHANNELS.index("06V"), 1, 2] = LAND[CHANNELS.index("10V")] + 15.0
    today[:, 2, 1] = OCEAN
    swvl1 = np.full((3, 3), 0.25)
    swvl1[0, 0] = np.nan
    swvl1[2, 1] = np.nan  # ERA has no soil moisture over the sea; open_water says why
    stl1 = np.full((3, 3), 290.0)
    stl1[2, 0] = 265.0
    lf = np.ones((3, 3))
    lf[2, 1] = 0.0
    lf[2, 2] = 0.8
    return today, previous, swvl1, stl1, lf


def test_hand_built_scene_sets_exactly_the_expected_bits():
    today, previous, swvl1, stl1, lf = _hand_scene()
    tb, qc = preprocess_day({"A": today}, {"A": previous}, swvl1, stl1, lf, CFG)
    F = FLAGS
    expected_a = np.array([
        [F["reference_missing"], F["no_observation"], F["composited"]],
        [F["tb_out_of_range"] | F["no_observation"], F["rfi_suspect"], F["rfi_suspect"] | F["rfi_strong"]],
        [F["frozen_or_snow"], F["open_water"] | F["reference_missing"], F["coastal"]],
    ], dtype=QC_DTYPE)
    np.testing.assert_array_equal(qc[0], expected_a)
    static = np.array([[F["reference_missing"], 0, 0], [0, 0, 0],
                       [F["frozen_or_snow"], F["open_water"] | F["reference_missing"], F["coastal"]]])
    np.testing.assert_array_equal(qc[1], (static | F["no_observation"]).astype(QC_DTYPE))

    # TBs: as observed, yesterday's where composited, NaN only where no observation
    np.testing.assert_array_equal(tb[0, :, 0, 2], LAND + 2.0)
    for i, j in [(0, 0), (1, 1), (1, 2), (2, 0), (2, 1), (2, 2)]:
        np.testing.assert_array_equal(bits(tb[0, :, i, j]), bits(today[:, i, j]))
    assert np.isnan(tb[0, :, 0, 1]).all() and np.isnan(tb[0, :, 1, 0]).all()
    assert np.isnan(tb[1]).all()


def test_out_of_range_today_can_be_filled_from_yesterday():
    today, previous, swvl1, stl1, lf = _hand_scene()
    previous[:, 1, 0] = LAND + 2.0
    tb, qc = preprocess_day({"A": today}, {"A": previous}, swvl1, stl1, lf, CFG)
    assert qc[0, 1, 0] == FLAGS["tb_out_of_range"] | FLAGS["composited"]
    np.testing.assert_array_equal(tb[0, :, 1, 0], LAND + 2.0)


def test_one_day_compositing_and_no_previous_day():
    today, previous, swvl1, stl1, lf = _hand_scene()
    one = dataclasses.replace(CFG, composite_days=1)
    for cfg, prev in [(one, {"A": previous}), (CFG, None)]:
        tb, qc = preprocess_day({"A": today}, prev, swvl1, stl1, lf, cfg)
        assert not (qc & FLAGS["composited"]).any()
        assert qc[0, 0, 2] == FLAGS["no_observation"]
        assert np.isnan(tb[0, :, 0, 2]).all()


def test_fallback_frozen_without_stl1():
    today, previous, swvl1, _, lf = _hand_scene()
    today[CHANNELS.index("10V"), 2, 0] = 240.0
    _, qc = preprocess_day({"A": today}, {"A": previous}, swvl1, None, lf, CFG)
    frozen = (qc & FLAGS["frozen_or_snow"]) != 0
    np.testing.assert_array_equal(frozen[0], [[False] * 3, [False] * 3, [True, False, False]])
    assert not frozen[1].any()  # no observation in pass D, so no TB to judge by


def test_previous_day_fills_only_the_same_pass():
    lf = np.ones((2, 2))
    gap = np.full((4, 2, 2), np.nan, np.float32)
    tb, qc = preprocess_day({"A": gap, "D": gap}, {"D": scene(2, 2, LAND + 1)}, np.full((2, 2), 0.2),
                            None, lf, CFG)
    assert (qc[0] == FLAGS["no_observation"]).all() and np.isnan(tb[0]).all()
    assert (qc[1] == FLAGS["composited"]).all()
    np.testing.assert_array_equal(tb[1], scene(2, 2, LAND + 1))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_outputs_dtype_shape_and_nan_only_where_flagged(seed):
    rng = np.random.default_rng(seed)
    shape = (7, 11)
    today = {p: random_tb(rng, shape, p_bad=0.02) for p in PASSES}
    previous = {p: random_tb(rng, shape, p_bad=0.02) for p in PASSES}
    swvl1 = np.where(rng.random(shape) < 0.1, np.nan, rng.uniform(0.05, 0.45, shape))
    stl1 = rng.uniform(255.0, 300.0, shape)
    lf = rng.choice([0.0, 0.3, 0.6, 0.9, 1.0], shape)
    tb, qc = preprocess_day(today, previous, swvl1, stl1, lf, CFG)
    assert tb.dtype == np.float32 and tb.shape == (2, 4, *shape)
    assert qc.dtype == QC_DTYPE and qc.shape == (2, *shape)
    assert int(qc.max()) < 2 * FLAGS["day_missing"] and not (qc & FLAGS["day_missing"]).any()

    any_nan = np.isnan(tb).any(axis=1)
    assert not (any_nan & ((qc & mask_of(["no_observation", "tb_out_of_range"])) == 0)).any()
    np.testing.assert_array_equal(np.isnan(tb).all(axis=1), any_nan)  # channels go together
    np.testing.assert_array_equal(any_nan, (qc & FLAGS["no_observation"]) != 0)
    assert np.isfinite(tb[~any_nan[:, None, :, :].repeat(4, axis=1)]).all()
    assert ((tb[~np.isnan(tb)] >= CFG.tb_min_k) & (tb[~np.isnan(tb)] <= CFG.tb_max_k)).all()
    # observed (complete, in-range) pixels of today come through bit-exactly and unflagged as composited
    for p, name in enumerate(PASSES):
        screened, _ = screen_tb(today[name], CFG)
        obs = np.isfinite(screened).all(axis=0)
        assert pixel_from(tb[p], today[name])[obs].all()
        assert not (qc[p][obs] & (FLAGS["composited"] | FLAGS["no_observation"])).any()


def test_inputs_are_not_modified():
    rng = np.random.default_rng(5)
    today = {p: random_tb(rng, (4, 4), p_bad=0.1) for p in PASSES}
    previous = {p: random_tb(rng, (4, 4), p_bad=0.1) for p in PASSES}
    copies = {k: (bits(today[k]).copy(), bits(previous[k]).copy()) for k in PASSES}
    preprocess_day(today, previous, np.full((4, 4), 0.2), None, np.ones((4, 4)), CFG)
    for k in PASSES:
        np.testing.assert_array_equal(bits(today[k]), copies[k][0])
        np.testing.assert_array_equal(bits(previous[k]), copies[k][1])


def test_preprocess_day_rejects_bad_inputs():
    lf = np.ones((2, 2))
    sm = np.full((2, 2), 0.2)
    with pytest.raises(SmrayError, match="unknown pass 'asc'"):
        preprocess_day({"asc": scene(2, 2)}, None, sm, None, lf, CFG)
    with pytest.raises(SmrayError, match=r"tb_today\['A'\]"):
        preprocess_day({"A": scene(2, 3)}, None, sm, None, lf, CFG)
    with pytest.raises(SmrayError, match="swvl1"):
        preprocess_day({"A": scene(2, 2)}, None, np.zeros((3, 2)), None, lf, CFG)


def test_valid_centres_uses_the_block_mask():
    today, previous, swvl1, stl1, lf = _hand_scene()
    _, qc = preprocess_day({"A": today}, {"A": previous}, swvl1, stl1, lf, CFG)
    ok = valid_centres(qc, mask_of(CFG.block))
    assert ok.dtype == bool and ok.shape == qc.shape
    # blocked: reference_missing, no_observation, out_of_range, rfi_strong, frozen, open_water
    np.testing.assert_array_equal(ok[0], [[False, False, True], [False, True, False], [False, False, True]])
    assert not ok[1].any()
    assert valid_centres(qc, 0).all()
    with pytest.raises(SmrayError):
        valid_centres(qc.astype(float), 1)
