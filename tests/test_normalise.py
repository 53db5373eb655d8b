"""Normalisation: statistics over the training period only, equal to a plain-numpy computation;
[0, 1] scaling; storage inside the cube on every backend."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from smray import cube, normalise, qc
from smray.config import NormConfig, PatchConfig
from smray.errors import SmrayError
from smray.grid import Grid
from smray.normalise import NormStats

START = dt.date(2010, 6, 1)
DAYS = 6
TRAIN = (START + dt.timedelta(days=1), START + dt.timedelta(days=3))  # days 1..3; 0, 4, 5 are outside
BLOCK = qc.DEFAULT_BLOCKING


def build_cube(url: str, *, grid: Grid, start: dt.date, days: int, seed: int, storage=None,
               extreme_days: tuple[int, ...] = ()) -> dict[str, np.ndarray]:
    """A small cube of seeded random days: ~half the cells land (open_water flagged elsewhere),
    NaN TBs and reference gaps, blocked pixels carrying absurd TBs, coastal (non-blocking) pixels.
    Days in ``extreme_days`` carry values far outside everything else. Returns the arrays written."""
    rng = np.random.default_rng(seed)
    ny, nx = grid.shape
    land = rng.uniform(0, 1, (ny, nx)).astype(np.float32)
    cube.create_or_extend(url, storage, grid, start, start + dt.timedelta(days=days - 1), land)
    tbs, qcs, refs = [], [], []
    for i in range(days):
        tb = rng.uniform(160, 300, (2, 4, ny, nx)).astype(np.float32)
        sw = rng.uniform(0.05, 0.45, (ny, nx)).astype(np.float32)
        q = np.zeros((2, ny, nx), np.uint16)
        q[:, land < 0.5] |= qc.FLAGS["open_water"]
        tb[:, :, land < 0.5] = rng.uniform(90, 140, (2, 4, int((land < 0.5).sum())))  # ocean TBs: low
        q[rng.uniform(size=q.shape) < 0.1] |= qc.FLAGS["coastal"]  # not blocking
        rfi = rng.uniform(size=q.shape) < 0.05
        q[rfi] |= qc.FLAGS["rfi_strong"]
        tb[:, 0][rfi] = 330.0  # blocked pixels carry extreme TBs that must not count
        tb[rng.uniform(size=tb.shape) < 0.02] = np.nan
        gaps = rng.uniform(size=sw.shape) < 0.05
        sw[gaps] = np.nan
        q[:, gaps] |= qc.FLAGS["reference_missing"]
        if i in extreme_days:
            tb[:] = np.where(np.isfinite(tb), rng.choice([20.0, 390.0], tb.shape), np.nan)
            sw[:] = np.where(np.isfinite(sw), rng.choice([0.0, 0.99], sw.shape), np.nan)
        cube.write_day(url, storage, start + dt.timedelta(days=i), tb, q, sw)
        tbs.append(tb), qcs.append(q), refs.append(sw)
    return {"land": land, "tb": np.stack(tbs), "qc": np.stack(qcs), "swvl1": np.stack(refs)}


def numpy_values(arrays: dict[str, np.ndarray], days: range, passes=(0, 1)) -> tuple[list[np.ndarray], np.ndarray]:
    """Plain numpy: the valid-pixel TBs per channel and swvl1 values of ``days``."""
    mask = qc.mask_of(BLOCK)
    tb_vals: list[list[np.ndarray]] = [[] for _ in range(4)]
    y_vals = []
    for i in days:
        for p in passes:
            ok = (arrays["land"] >= 0.5) & np.isfinite(arrays["swvl1"][i]) & ((arrays["qc"][i, p] & mask) == 0)
            y_vals.append(arrays["swvl1"][i][ok])
            for c in range(4):
                v = arrays["tb"][i, p, c][ok]
                tb_vals[c].append(v[np.isfinite(v)])
    return [np.concatenate(v) for v in tb_vals], np.concatenate(y_vals)


@pytest.fixture(scope="module")
def small_cube(tmp_path_factory) -> tuple[str, dict[str, np.ndarray]]:
    url = str(tmp_path_factory.mktemp("norm") / "cube.zarr")
    arrays = build_cube(url, grid=Grid(2.0), start=START, days=DAYS, seed=3, extreme_days=(0, 4, 5))
    return url, arrays


def test_minmax_equals_numpy_over_training_days_only(small_cube) -> None:
    url, arrays = small_cube
    stats = normalise.fit_stats(url, None, *TRAIN, NormConfig(), BLOCK, PatchConfig(), use_ray=False)
    tb_vals, y = numpy_values(arrays, range(1, 4))
    assert stats.channels == cube.CHANNELS
    for c in range(4):
        assert stats.tb_lower_k[c] == pytest.approx(float(tb_vals[c].min()), abs=0)
        assert stats.tb_upper_k[c] == pytest.approx(float(tb_vals[c].max()), abs=0)
        assert stats.n_pixels[c] == tb_vals[c].size
        assert 160 <= stats.tb_lower_k[c] < stats.tb_upper_k[c] <= 300  # no ocean, RFI or extreme day
    assert stats.target_lower == float(y.min()) and stats.target_upper == float(y.max())
    assert stats.n_target == y.size and stats.n_days == 3
    assert (stats.start, stats.end) == TRAIN and stats.qc_block == BLOCK
    # the extreme days do change a fit that includes them
    wide = normalise.fit_stats(url, None, START, START + dt.timedelta(days=DAYS - 1), use_ray=False)
    assert wide.tb_lower_k[0] == 20.0 and wide.target_upper == pytest.approx(0.99)


def test_one_pass_counts_only_its_pixels(small_cube) -> None:
    url, arrays = small_cube
    stats = normalise.fit_stats(url, None, *TRAIN, NormConfig(), BLOCK, PatchConfig(passes=("D",)), use_ray=False)
    tb_vals, y = numpy_values(arrays, range(1, 4), passes=(1,))
    assert stats.passes == ("D",)
    assert stats.tb_upper_k[2] == float(tb_vals[2].max()) and stats.n_target == y.size


def test_percentiles_from_merged_histograms(small_cube) -> None:
    url, arrays = small_cube
    norm = NormConfig(lower_percentile=2.0, upper_percentile=98.0)
    stats = normalise.fit_stats(url, None, *TRAIN, norm, BLOCK, PatchConfig(), use_ray=False)
    tb_vals, y = numpy_values(arrays, range(1, 4))
    for c in range(4):
        for got, p in ((stats.tb_lower_k[c], 2.0), (stats.tb_upper_k[c], 98.0)):
            want = np.percentile(tb_vals[c].astype(np.float64), p, method="inverted_cdf")
            assert abs(got - want) <= normalise.TB_BIN_K
    assert abs(stats.target_lower - np.percentile(y, 2.0, method="inverted_cdf")) <= normalise.TARGET_BIN
    assert abs(stats.target_upper - np.percentile(y, 98.0, method="inverted_cdf")) <= normalise.TARGET_BIN
    # lower 0 stays the exact minimum even when the upper one needs histograms
    mixed = normalise.fit_stats(url, None, *TRAIN, NormConfig(0.0, 99.0), BLOCK, PatchConfig(), use_ray=False)
    assert mixed.tb_lower_k[1] == float(tb_vals[1].min())


def test_percentile_bounds_ignore_a_few_outliers_and_clipping_is_counted(tmp_path) -> None:
    """Robust scaling: a few absurd TBs (0.2 % of the valid pixels of one training day, at 390 K) move
    the min/max bound by 90 K but the 0.5/99.5-percentile bounds by less than 0.5 K (their share of
    the period, ~0.07 %, shifts a percentile a little: 0.05 K here); every planted pixel is clipped to
    1 and counted by outside_range, never NaN."""
    clean_url, dirty_url = str(tmp_path / "clean.zarr"), str(tmp_path / "dirty.zarr")
    arrays = build_cube(clean_url, grid=Grid(2.0), start=START, days=DAYS, seed=8)
    build_cube(dirty_url, grid=Grid(2.0), start=START, days=DAYS, seed=8)
    day = START + dt.timedelta(days=2)
    data = cube.read_day(dirty_url, None, day)
    tb, q = data["tb"].copy(), data["qc"]
    ok = (arrays["land"] >= 0.5) & np.isfinite(arrays["swvl1"][2]) & ((q[0] & qc.mask_of(BLOCK)) == 0) \
        & np.isfinite(tb[0]).all(axis=0)
    rows, cols = np.nonzero(ok)
    pick = np.random.default_rng(1).choice(rows.size, max(1, rows.size // 1000 * 2), replace=False)
    tb[0, :, rows[pick], cols[pick]] = 390.0
    cube.write_day(dirty_url, None, day, tb, q, data["swvl1"])
    robust = NormConfig(lower_percentile=0.5, upper_percentile=99.5)
    fits = {(name, url): normalise.fit_stats(url, None, *TRAIN, norm, BLOCK, PatchConfig(), use_ray=False)
            for name, norm in (("minmax", NormConfig()), ("robust", robust))
            for url in (clean_url, dirty_url)}
    assert fits["minmax", dirty_url].tb_upper_k[0] == 390.0 < 400 and fits["minmax", clean_url].tb_upper_k[0] < 301
    for c in range(4):
        assert abs(fits["robust", dirty_url].tb_upper_k[c] - fits["robust", clean_url].tb_upper_k[c]) < 0.5
        assert abs(fits["robust", dirty_url].tb_lower_k[c] - fits["robust", clean_url].tb_lower_k[c]) < 0.5
    stats = fits["robust", dirty_url]
    x = tb[0][:, rows[pick], cols[pick]]  # (channel, n) of the planted pixels
    assert normalise.outside_range(x, stats, cube.CHANNELS, axis=0).all()
    scaled = normalise.scale_inputs(x, stats, cube.CHANNELS, axis=0)
    assert (scaled == 1.0).all() and np.isfinite(scaled).all()


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**31), p=st.floats(0.5, 99.5), scale=st.sampled_from([1.0, 50.0, 300.0]))
def test_histogram_percentile_within_one_bin(seed: int, p: float, scale: float) -> None:
    values = np.random.default_rng(seed).uniform(0, scale, 997).astype(np.float32)
    hist = normalise._hist(values, normalise.TB_RANGE_K, normalise.TB_BIN_K)
    got = normalise.percentile_of_histogram(hist, p, normalise.TB_RANGE_K, normalise.TB_BIN_K,
                                            float(values.min()), float(values.max()))
    want = np.percentile(values.astype(np.float64), p, method="inverted_cdf")
    assert abs(got - want) <= normalise.TB_BIN_K


def test_summaries_merge_exactly() -> None:
    rng = np.random.default_rng(1)
    day = {"tb": rng.uniform(150, 300, (2, 4, 10, 12)), "qc": np.zeros((2, 10, 12), np.uint16),
           "swvl1": rng.uniform(0, 0.5, (10, 12))}
    land = np.ones((10, 12))
    a = normalise.summarise_day(day, land, BLOCK, (0,), True)
    b = normalise.summarise_day(day, land, BLOCK, (1,), True)
    both = normalise.summarise_day(day, land, BLOCK, (0, 1), True)
    merged = a + b
    assert np.array_equal(merged.tb_hist, both.tb_hist) and np.array_equal(merged.y_hist, both.y_hist)
    assert np.array_equal(merged.tb_min, both.tb_min) and merged.y_max == both.y_max
    assert merged.n_days == 2


def test_scaling_maps_bounds_and_clips() -> None:
    stats = NormStats(channels=("06H", "06V", "10H", "10V"), tb_lower_k=(100.0, 150.0, 200.0, 250.0),
                      tb_upper_k=(200.0, 250.0, 300.0, 350.0), target_lower=0.1, target_upper=0.5,
                      start=START, end=START)
    x = np.array([[100.0, 200.0, 50.0, np.nan], [200.0, 300.0, 400.0, 150.0]])  # (2 channels, 4)
    out = normalise.scale_inputs(x, stats, ("06H", "10H"), axis=0)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out[0, :3], [0.0, 1.0, 0.0])
    assert np.isnan(out[0, 3])
    np.testing.assert_array_equal(out[1], [0.0, 1.0, 1.0, 0.0])
    patches = np.full((3, 8, 9, 9), 225.0)  # stacked passes: channel names repeat
    scaled = normalise.scale_inputs(patches, stats, stats.channels * 2)
    np.testing.assert_allclose(scaled[0, :, 4, 4], [1.0, 0.75, 0.25, 0.0] * 2)
    y = np.array([0.1, 0.5, 0.3, 0.0, 0.9])
    y01 = normalise.scale_target(y, stats)
    np.testing.assert_allclose(y01, [0.0, 1.0, 0.5, 0.0, 1.0])
    # where scale_inputs clips: any channel outside its bounds; on a bound or NaN is not outside
    np.testing.assert_array_equal(normalise.outside_range(x, stats, ("06H", "10H"), axis=0),
                                  [False, False, True, True])
    np.testing.assert_allclose(normalise.unscale_target(y01[:3], stats), y[:3], rtol=1e-6)
    assert normalise.unscale_target(np.array([1.5]), stats)[0] == pytest.approx(0.7)  # not clipped
    with pytest.raises(SmrayError, match="no channel '36V'"):
        normalise.scale_inputs(x, stats, ("06H", "36V"), axis=0)


def test_stats_round_trip_in_the_cube(storage_root: str) -> None:
    url = storage_root + "/cube.zarr"
    build_cube(url, grid=Grid(0.25).subset((10.0, 40.0, 14.0, 44.0)), start=START, days=2, seed=5)
    stats = normalise.fit_stats(url, None, START, START + dt.timedelta(days=1), NormConfig(1.0, 99.0),
                                BLOCK, PatchConfig(), use_ray=False)
    path = normalise.save_stats(url, None, stats, "train-2010")
    assert path.endswith("_smray/normalisation/train-2010.json")
    back = normalise.load_stats(url, None, "train-2010")
    assert back == stats and back.to_dict() == stats.to_dict()
    assert NormStats.from_json(stats.to_json()) == stats
    with pytest.raises(SmrayError, match="no normalisation statistics stored"):
        normalise.load_stats(url, None, "other")
    with pytest.raises(SmrayError, match="normalisation name"):
        normalise.save_stats(url, None, stats, "../escape")


def test_bad_periods_and_records_are_one_line_errors(small_cube) -> None:
    url, _ = small_cube
    cases = [(TRAIN[1], TRAIN[0], "is empty"), (dt.date(2001, 1, 1), dt.date(2001, 2, 1), "not inside"),
             (START, START + dt.timedelta(days=DAYS), "not inside")]
    for start, end, msg in cases:
        with pytest.raises(SmrayError, match=msg) as err:
            normalise.fit_stats(url, None, start, end, use_ray=False)
        assert "\n" not in str(err.value)
    with pytest.raises(SmrayError, match="no valid pixel"):  # no cell counts as land
        normalise.fit_stats(url, None, *TRAIN, land_min=1.5, use_ray=False)
    good = NormStats(channels=("06H",), tb_lower_k=(1.0,), tb_upper_k=(2.0,), target_lower=0.0, target_upper=1.0,
                     start=START, end=START).to_dict()
    with pytest.raises(SmrayError, match="unknown key 'bogus'"):
        NormStats.from_dict({**good, "bogus": 1})
    with pytest.raises(SmrayError, match="need finite lower < upper"):
        NormStats.from_dict({**good, "tb_upper_k": [1.0]})
    with pytest.raises(SmrayError, match="not valid JSON"):
        NormStats.from_json("{")


@pytest.mark.ray
def test_ray_fit_equals_plain_loop(small_cube, ray_local) -> None:
    url, _ = small_cube
    norm = NormConfig(1.0, 100.0)
    local = normalise.fit_stats(url, None, *TRAIN, norm, BLOCK, PatchConfig(), use_ray=False)
    remote = normalise.fit_stats(url, None, *TRAIN, norm, BLOCK, PatchConfig())  # Ray is initialised
    assert remote == local
