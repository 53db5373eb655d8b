"""Patches: index math (Hypothesis), valid-centre rules, the random and blocked splits, NaN safety,
and the Ray Data stage streaming from a local directory and from the local S3."""

from __future__ import annotations

import dataclasses
import datetime as dt

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from smray import cube, patches, qc
from smray.config import PatchConfig
from smray.errors import SmrayError
from smray.grid import Grid
from smray.normalise import NormStats, unscale_target

START = dt.date(2010, 7, 1)
BLOCK = qc.DEFAULT_BLOCKING
STATS = NormStats(channels=cube.CHANNELS, tb_lower_k=(100.0,) * 4, tb_upper_k=(320.0,) * 4, target_lower=0.0,
                  target_upper=0.6, start=START, end=START)
SMALL = PatchConfig(per_day=700, train_per_day=600, val_per_day=100, split="random")


def build_cube(url: str, *, grid: Grid, start: dt.date = START, days: int, seed: int, storage=None,
               nan_tb: float = 0.002, nan_ref: float = 0.0) -> None:
    """Seeded random days: ~60% of cells land, TBs 150–300 K, swvl1 0.05–0.5 m³/m³, a share of
    NaN TBs / reference gaps (flagged like ingest does) and some RFI-blocked pixels."""
    rng = np.random.default_rng(seed)
    ny, nx = grid.shape
    land = rng.uniform(0, 1, (ny, nx)).astype(np.float32) + 0.1
    cube.create_or_extend(url, storage, grid, start, start + dt.timedelta(days=days - 1), land)
    for i in range(days):
        tb = rng.uniform(150, 300, (2, 4, ny, nx)).astype(np.float32)
        tb[rng.uniform(size=tb.shape) < nan_tb] = np.nan
        sw = rng.uniform(0.05, 0.5, (ny, nx)).astype(np.float32)
        sw[rng.uniform(size=sw.shape) < nan_ref] = np.nan
        q = np.zeros((2, ny, nx), np.uint16)
        q[:, land < 0.5] |= qc.FLAGS["open_water"]
        q[rng.uniform(size=q.shape) < 0.03] |= qc.FLAGS["rfi_strong"]
        q[:, ~np.isfinite(sw)] |= qc.FLAGS["reference_missing"]
        cube.write_day(url, storage, start + dt.timedelta(days=i), tb, q, sw)


@pytest.fixture(scope="module")
def global_cube(tmp_path_factory) -> str:
    """Global 2° grid (90 × 180, periodic in longitude), 5 days."""
    url = str(tmp_path_factory.mktemp("patches") / "global.zarr")
    build_cube(url, grid=Grid(2.0), days=5, seed=11)
    return url


@pytest.fixture(scope="module")
def window_cube(tmp_path_factory) -> str:
    """A 0.25° regional window (40 × 48, not periodic), 3 days."""
    url = str(tmp_path_factory.mktemp("patches") / "window.zarr")
    build_cube(url, grid=Grid(0.25).subset((0.0, 40.0, 12.0, 50.0)), days=3, seed=12)
    return url


# --------------------------------------------------------------------------------------------
# Index math
# --------------------------------------------------------------------------------------------
@st.composite
def patch_problems(draw):
    size = draw(st.sampled_from([1, 3, 5, 9]))
    h = size // 2
    periodic = draw(st.booleans())
    ny = draw(st.integers(size, 16))
    nx = draw(st.integers(max(size, 2), 20))
    n = draw(st.integers(0, 12))
    rows = draw(st.lists(st.integers(h, ny - 1 - h), min_size=n, max_size=n))
    col_range = (0, nx - 1) if periodic else (h, nx - 1 - h)
    cols = draw(st.lists(st.integers(*col_range), min_size=n, max_size=n))
    passes = draw(st.lists(st.integers(0, 1), min_size=n, max_size=n))
    channels = draw(st.lists(st.integers(0, 3), min_size=1, max_size=4, unique=True))
    return size, periodic, ny, nx, np.array(rows, int), np.array(cols, int), np.array(passes, int), channels


@settings(max_examples=150, deadline=None)
@given(problem=patch_problems(), seed=st.integers(0, 2**31))
def test_extract_matches_the_cube_array(problem, seed) -> None:
    size, periodic, ny, nx, rows, cols, passes, channels = problem
    tb = np.random.default_rng(seed).uniform(100, 300, (2, 4, ny, nx)).astype(np.float32)
    out = patches.extract_patches(tb, rows, cols, passes, channels, size, periodic)
    assert out.shape == (rows.size, len(channels), size, size) and out.dtype == np.float32
    h = size // 2
    for i in range(rows.size):
        for k, ch in enumerate(channels):
            ref = tb[passes[i], ch]
            assert out[i, k, h, h] == ref[rows[i], cols[i]]  # centre
            for dr, dc in ((-h, -h), (-h, h), (h, -h), (h, h)):  # corners, wrapping in longitude
                assert out[i, k, h + dr, h + dc] == ref[rows[i] + dr, (cols[i] + dc) % nx]
            window = ref[rows[i] - h:rows[i] + h + 1][:, np.arange(cols[i] - h, cols[i] + h + 1) % nx]
            np.testing.assert_array_equal(out[i, k], window)


def test_extract_wraps_at_the_dateline_and_refuses_outside_windows() -> None:
    ny, nx = 90, 180  # the global 2° grid
    tb = np.broadcast_to(np.arange(nx, dtype=np.float32), (2, 4, ny, nx)).copy()  # value = column index
    out = patches.extract_patches(tb, np.array([45, 45]), np.array([0, nx - 1]), 0, [0], 9, True)
    np.testing.assert_array_equal(out[0, 0, 4], [176, 177, 178, 179, 0, 1, 2, 3, 4])
    np.testing.assert_array_equal(out[1, 0, 4], [175, 176, 177, 178, 179, 0, 1, 2, 3])
    with pytest.raises(SmrayError, match="leaves the"):
        patches.extract_patches(tb, np.array([45]), np.array([2]), 0, [0], 9, False)
    with pytest.raises(SmrayError, match="leaves the"):
        patches.extract_patches(tb, np.array([3]), np.array([50]), 0, [0], 9, True)


@settings(max_examples=100, deadline=None)
@given(ny=st.integers(1, 14), nx=st.integers(1, 14), size=st.sampled_from([1, 3, 5]), periodic=st.booleans(),
       seed=st.integers(0, 2**31), p_bad=st.floats(0.0, 0.2))
def test_window_all_equals_brute_force(ny, nx, size, periodic, seed, p_bad) -> None:
    ok = np.random.default_rng(seed).uniform(size=(2, ny, nx)) >= p_bad
    got = patches.window_all(ok, size, periodic)
    h = size // 2
    want = np.zeros_like(ok)
    for p in range(2):
        for r in range(ny):
            for c in range(nx):
                rr = np.arange(r - h, r + h + 1)
                cc = np.arange(c - h, c + h + 1)
                if rr.min() < 0 or rr.max() >= ny:
                    continue
                if periodic:
                    cc = cc % nx
                elif cc.min() < 0 or cc.max() >= nx:
                    continue
                want[p, r, c] = ok[p][np.ix_(rr, cc)].all()
    np.testing.assert_array_equal(got, want)


# --------------------------------------------------------------------------------------------
# Valid centres
# --------------------------------------------------------------------------------------------
def _clean_day(ny: int = 30, nx: int = 40) -> tuple[dict[str, np.ndarray], np.ndarray]:
    rng = np.random.default_rng(0)
    day = {"tb": rng.uniform(150, 300, (2, 4, ny, nx)).astype(np.float32),
           "qc": np.zeros((2, ny, nx), np.uint16), "swvl1": np.full((ny, nx), 0.2, np.float32)}
    return day, np.ones((ny, nx), np.float32)


def test_each_valid_centre_rule_excludes_what_it_should() -> None:
    day, land = _clean_day()
    base = patches.valid_centres(day, land, BLOCK, 9, False)
    assert base[:, 4:26, 4:36].all() and base.sum() == 2 * 22 * 32  # only the edges go
    periodic = patches.valid_centres(day, land, BLOCK, 9, True)
    assert periodic[:, 4:26].all() and not periodic[:, :4].any() and not periodic[:, 26:].any()

    land[10, 10] = 0.49
    day["swvl1"][12, 20] = np.nan
    day["qc"][0, 15, 15] |= qc.FLAGS["frozen_or_snow"]  # blocking, pass A only
    day["qc"][:, 16, 16] |= qc.FLAGS["coastal"] | qc.FLAGS["composited"]  # not blocking
    day["tb"][1, 3, 20, 30] = np.nan  # channel 10V of pass D: its whole window goes
    v = patches.valid_centres(day, land, BLOCK, 9, False)
    assert not v[:, 10, 10].any() and v[:, 10, 11].all()  # land
    assert not v[:, 12, 20].any() and v[:, 12, 21].all()  # reference present
    assert not v[0, 15, 15] and v[1, 15, 15]  # blocking flag, per pass
    assert v[:, 16, 16].all()  # non-blocking flags keep the pixel
    win = np.zeros((30, 40), bool)
    win[16:25, 26:35] = True  # centres within 4 cells of (20, 30)
    assert not v[1][win].any() and v[0, 20, 30]
    assert v[1, 15, 30] and v[1, 20, 25] and v[1, 25, 30]  # just outside the window
    # a NaN in a channel not selected does not matter
    only_h = patches.valid_centres(day, land, BLOCK, 9, False, channels_idx=[0, 2])
    assert only_h[1, 20, 30]
    # a custom blocking mask
    lax = patches.valid_centres(day, land, ("open_water",), 9, False)
    assert lax[0, 15, 15]


# --------------------------------------------------------------------------------------------
# Sampling one day
# --------------------------------------------------------------------------------------------
def test_random_split_counts_proportions_and_values(global_cube: str) -> None:
    s = patches.sample_day(global_cube, None, START, SMALL, BLOCK, STATS)
    n = s["y"].size
    assert n == 700 and s["is_val"].sum() == 100 and not s["is_val"][:600].any()  # train first
    assert s["x"].shape == (700, 4, 9, 9) and s["x"].dtype == np.float32 and s["y"].dtype == np.float32
    assert set(np.unique(s["pass"])) == {"A", "D"} and (s["date"] == np.datetime64(START)).all()
    assert 0 <= s["x"].min() and s["x"].max() <= 1 and 0 <= s["y"].min() and s["y"].max() <= 1
    # the samples are the cube's values
    day = cube.read_day(global_cube, None, START)
    np.testing.assert_array_equal(s["y_raw"], day["swvl1"][s["row"], s["col"]])
    np.testing.assert_allclose(unscale_target(s["y"], STATS), s["y_raw"], atol=1e-6)
    p = np.where(s["pass"] == "A", 0, 1)
    raw = patches.extract_patches(day["tb"], s["row"], s["col"], p, [0, 1, 2, 3], 9, True)
    np.testing.assert_allclose(s["x"], (raw - 100.0) / 220.0, atol=1e-6)
    assert len(set(zip(p, s["row"], s["col"]))) == 700  # drawn without replacement
    # fewer valid centres than per_day: all are used, keeping the train:val proportion
    big = PatchConfig(per_day=35000, train_per_day=30000, val_per_day=5000, split="random")
    counts = patches.day_counts(global_cube, None, START, big, BLOCK)
    total = counts["valid"]
    assert total < 35000 and counts["train"] + counts["val"] == total
    assert counts["val"] == total - round(total * 30000 / 35000)
    # channels and passes from the config
    one = patches.sample_day(global_cube, None, START, dataclasses.replace(SMALL, channels=("10V", "06H"),
                                                                        passes=("D",)), BLOCK, STATS)
    assert one["x"].shape == (700, 2, 9, 9) and set(one["pass"]) == {"D"}
    raw = patches.extract_patches(day["tb"], one["row"], one["col"], 1, [3, 0], 9, True)
    np.testing.assert_allclose(one["x"], (raw - 100.0) / 220.0, atol=1e-6)


def test_regional_window_keeps_centres_off_its_edges(window_cube: str) -> None:
    s = patches.sample_day(window_cube, None, START, SMALL, BLOCK, STATS)
    ny, nx = cube.info(window_cube).grid.shape
    assert s["y"].size == 700
    assert s["row"].min() >= 4 and s["row"].max() < ny - 4 and s["col"].min() >= 4 and s["col"].max() < nx - 4
    day = cube.read_day(window_cube, None, START)
    p = np.where(s["pass"] == "A", 0, 1)
    raw = patches.extract_patches(day["tb"], s["row"], s["col"], p, [0, 1, 2, 3], 9, False)
    np.testing.assert_allclose(s["x"], (raw - 100.0) / 220.0, atol=1e-6)


def test_deterministic_per_seed_and_date(global_cube: str) -> None:
    a = patches.sample_day(global_cube, None, START, SMALL, BLOCK, STATS)
    b = patches.sample_day(global_cube, None, START, SMALL, BLOCK, STATS)
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])
    other_seed = patches.sample_day(global_cube, None, START, dataclasses.replace(SMALL, seed=1), BLOCK, STATS)
    other_day = patches.sample_day(global_cube, None, START + dt.timedelta(days=1), SMALL, BLOCK, STATS)
    assert not np.array_equal(a["row"], other_seed["row"]) and not np.array_equal(a["row"], other_day["row"])


def test_stacked_passes(global_cube: str) -> None:
    cfg = dataclasses.replace(SMALL, stack_passes=True)
    s = patches.sample_day(global_cube, None, START, cfg, BLOCK, STATS)
    assert s["x"].shape == (700, 8, 9, 9) and set(s["pass"]) == {"AD"}
    day = cube.read_day(global_cube, None, START)
    for p in (0, 1):  # A then D
        raw = patches.extract_patches(day["tb"], s["row"], s["col"], p, [0, 1, 2, 3], 9, True)
        np.testing.assert_allclose(s["x"][:, 4 * p:4 * p + 4], (raw - 100.0) / 220.0, atol=1e-6)
    assert len(set(zip(s["row"], s["col"]))) == 700  # one sample per centre


def test_the_default_split_is_blocked_with_blocks_that_hold_whole_windows(global_cube: str) -> None:
    """The default (blocked, block_deg 0): 5° blocks at 0.25°, two patch widths on coarser grids, so a
    coarse cube still yields validation patches from blocks on days that are not held out."""
    cfg = PatchConfig(per_day=700, train_per_day=600, val_per_day=100)
    assert cfg.split == "blocked"
    assert patches.block_edge(cfg, Grid(0.25)) == 5.0 and patches.block_edge(cfg, Grid(2.0)) == 36.0
    assert patches.block_edge(dataclasses.replace(cfg, block_deg=10.0), Grid(2.0)) == 10.0
    counts = patches.count_samples(global_cube, None, cube.info(global_cube).dates, cfg, BLOCK, use_ray=False)
    first, held_out = list(counts.values())[0], list(counts.values())[4]  # day 5 of the cube: held out
    assert first["train"] == 600 and first["val"] == 100
    assert held_out["train"] == 0 and held_out["val"] == 700


def test_blocked_split_shares_no_pixel_and_holds_out_days(global_cube: str) -> None:
    cfg = PatchConfig(per_day=2000, train_per_day=1500, val_per_day=500, split="blocked", block_deg=20.0,
                      val_block_fraction=0.3, val_day_every=3, seed=4)
    nx = 180
    off = np.arange(-4, 5)
    blocks = patches.block_index(Grid(2.0), 20.0)
    land = cube.read_static(global_cube)["land_fraction"]
    val_blocks = set(np.unique(blocks[patches.validation_cells(Grid(2.0), land, cfg)]).tolist())
    for i in range(5):
        date = START + dt.timedelta(days=i)
        s = patches.sample_day(global_cube, None, date, cfg, BLOCK, STATS)
        if i == 2:  # (2 + 1) % 3 == 0: the whole day is validation
            assert s["is_val"].all() and s["y"].size == 2000
            continue
        assert (~s["is_val"]).sum() == 1500 and 0 < s["is_val"].sum() <= 500
        marks = np.zeros((2, 90, nx), bool)
        for flag in (False, True):
            sel = s["is_val"] == flag
            r = (s["row"][sel][:, None, None] + off[None, :, None])
            c = (s["col"][sel][:, None, None] + off[None, None, :]) % nx
            marks[int(flag)][np.broadcast_to(r, (sel.sum(), 9, 9)), np.broadcast_to(c, (sel.sum(), 9, 9))] = True
        assert not (marks[0] & marks[1]).any()  # no train and val patch share a pixel
        # validation centres lie in the (fixed, seeded) validation blocks, training centres never
        assert set(blocks[s["row"][s["is_val"]], s["col"][s["is_val"]]].tolist()) <= val_blocks
        assert not set(blocks[s["row"][~s["is_val"]], s["col"][~s["is_val"]]].tolist()) & val_blocks
    counts = patches.count_samples(global_cube, None, cube.info(global_cube).dates, cfg, BLOCK, use_ray=False)
    assert [c["val"] == c["train"] + c["val"] for c in counts.values()] == [False, False, True, False, False]


def test_nan_in_the_cube_never_reaches_a_patch(tmp_path) -> None:
    url = str(tmp_path / "holes.zarr")
    build_cube(url, grid=Grid(2.0), days=2, seed=13, nan_tb=0.01, nan_ref=0.2)
    for cfg in (SMALL, dataclasses.replace(SMALL, stack_passes=True),
                dataclasses.replace(SMALL, split="blocked", block_deg=10.0, val_day_every=2)):
        for i in range(2):
            s = patches.sample_day(url, None, START + dt.timedelta(days=i), cfg, BLOCK, STATS)
            assert s["y"].size > 0
            for key in ("x", "y", "y_raw"):
                assert np.isfinite(s[key]).all()
    cube.skip_day(url, None, START, "test: files missing")  # a skipped day yields nothing, quietly
    s = patches.sample_day(url, None, START, SMALL, BLOCK, STATS)
    assert s["x"].shape == (0, 4, 9, 9) and s["y"].size == 0


def test_bad_requests_are_one_line_errors(global_cube: str) -> None:
    with pytest.raises(SmrayError, match="outside the cube's time axis"):
        patches.sample_day(global_cube, None, dt.date(2001, 1, 1), SMALL, BLOCK, STATS)
    partial = NormStats(channels=("06H",), tb_lower_k=(1.0,), tb_upper_k=(2.0,), target_lower=0.0,
                        target_upper=1.0, start=START, end=START)
    with pytest.raises(SmrayError, match="no channel '06V'"):
        patches.sample_day(global_cube, None, START, SMALL, BLOCK, partial)
    with pytest.raises(SmrayError, match="split must be one of"):
        patches.patch_dataset(global_cube, None, [START], SMALL, BLOCK, STATS, split="test")


# --------------------------------------------------------------------------------------------
# The Ray Data stage
# --------------------------------------------------------------------------------------------
def _expected(url: str, dates: list[dt.date], cfg: PatchConfig, split: str, storage=None) -> int:
    counts = patches.count_samples(url, storage, dates, cfg, BLOCK, use_ray=False)
    return sum(c["train"] if split == "train" else c["val"] for c in counts.values())


@pytest.mark.ray
def test_ray_data_stage_streams_every_sample(global_cube: str, ray_local) -> None:
    dates = cube.info(global_cube).dates
    cfg = dataclasses.replace(SMALL, split="blocked", block_deg=20.0, val_day_every=2)
    ds = patches.patch_dataset(global_cube, None, dates, cfg, BLOCK, STATS, split="val")
    n, days = 0, set()
    for batch in ds.iter_batches(batch_size=500, batch_format="numpy"):
        assert set(batch) == set(patches.COLUMNS)
        assert batch["x"].shape[1:] == (4, 9, 9) and np.isfinite(batch["x"]).all()
        assert batch["is_val"].all()
        n += batch["y"].size
        days |= set(batch["day"].tolist())
    assert n == _expected(global_cube, dates, cfg, "val")
    assert days == {cube.days_since_epoch(d) for d in dates}
    ds = patches.patch_dataset(global_cube, None, dates, cfg, BLOCK, STATS)  # training rows, as torch
    n, days = 0, set()
    for batch in ds.iter_torch_batches(batch_size=256):
        assert batch["x"].shape[1:] == (4, 9, 9) and str(batch["x"].dtype) == "torch.float32"
        assert not batch["is_val"].any()
        n += batch["y"].shape[0]
        days |= set(batch["day"].tolist())
    assert n == _expected(global_cube, dates, cfg, "train")
    assert days == {cube.days_since_epoch(d) for i, d in enumerate(dates) if (i + 1) % 2}  # held-out days: none


@pytest.mark.ray
def test_day_seed_reads_the_days_in_a_new_order_every_epoch(global_cube: str, ordered_data) -> None:
    """train.day_order shuffled: each consumption of the dataset (an epoch, through the streaming split
    Ray Train hands a worker) reads every sample, the days in a new order (test_raysupport checks the
    seeding); without a seed, calendar order."""
    dates = cube.info(global_cube).dates
    days = [cube.days_since_epoch(d) for d in dates]

    def epochs(seed: int | None, n: int) -> list[tuple[list[int], int]]:
        ds = patches.patch_dataset(global_cube, None, dates, SMALL, BLOCK, STATS, split="val", day_seed=seed)
        shard = ds.streaming_split(1, equal=True)[0]
        out = []
        for _ in range(n):
            order, rows = [], 0
            for batch in shard.iter_batches(batch_size=512, batch_format="numpy"):
                rows += batch["y"].size
                order += [d for d in dict.fromkeys(batch["day"].tolist()) if d not in order]
            out.append((order, rows))
        return out

    shuffled, calendar = epochs(3, 2), epochs(None, 1)
    assert [sorted(order) for order, _ in shuffled] == [days, days] and shuffled[0][0] != shuffled[1][0]
    assert calendar[0][0] == days
    assert len({rows for _, rows in shuffled + calendar}) == 1  # every sample, every epoch


@pytest.mark.ray
@pytest.mark.s3
def test_ray_data_stage_on_s3(s3_bucket: str, ray_local) -> None:
    from smray.normalise import fit_stats, load_stats, save_stats

    url = s3_bucket + "/cube.zarr"
    build_cube(url, grid=Grid(0.25).subset((0.0, 40.0, 10.0, 48.0)), days=2, seed=14)
    stats = fit_stats(url, None, START, START + dt.timedelta(days=1), qc_block=BLOCK)  # Ray tasks
    save_stats(url, None, stats, "default")
    stats = load_stats(url, None, "default")
    cfg = PatchConfig(per_day=300, train_per_day=250, val_per_day=50)
    dates = cube.info(url).dates
    ds = patches.patch_dataset(url, None, dates, cfg, BLOCK, stats, split="val")
    n = sum(b["y"].size for b in ds.iter_batches(batch_size=64, batch_format="numpy"))
    assert n == _expected(url, dates, cfg, "val") == 100


# --------------------------------------------------------------------------------------------
# Patch shards (smray.shards): cut once, read every epoch
# --------------------------------------------------------------------------------------------
SHARD_CFG = dataclasses.replace(SMALL, split="blocked", block_deg=20.0, val_day_every=2)


def _cut(url: str, cube_url: str, dates, cfg: PatchConfig = SHARD_CFG, progress=lambda _: None):
    from smray.shards import cut_shards

    return cut_shards(url, None, dates, patches.shard_signature(cube_url, dates, cfg, BLOCK, STATS),
                      patches.day_sampler(cube_url, None, cfg, BLOCK, STATS), progress=progress)


def _rows(ds) -> dict[str, np.ndarray]:
    batches = list(ds.iter_batches(batch_size=None, batch_format="numpy"))
    return {k: np.concatenate([b[k] for b in batches]) for k in patches.COLUMNS}


@pytest.mark.ray
@pytest.mark.s3
def test_shards_hold_exactly_the_patches_cut_from_the_cube(global_cube: str, s3_bucket: str, ordered_data) -> None:
    """The cut (one Ray task a day, Parquet on the local S3) holds every column of every sample the
    cube stream gives, in the same order, x bit for bit; its census (one listing) equals the counts."""
    from smray import shards

    dates = cube.info(global_cube).dates
    url = s3_bucket + "/shards"
    census = _cut(url, global_cube, dates)
    counts = patches.count_samples(global_cube, None, dates, SHARD_CFG, BLOCK)
    assert census.counts == {d: (c["train"], c["val"]) for d, c in counts.items()} and census.cut_now == len(dates)
    assert census.n_val > 0 and census.counts[dates[1]][0] == 0  # day 2 is held out: no training file
    assert shards.census(url, None) == census.counts
    for split in ("train", "val"):
        got = _rows(shards.shard_dataset(None, census, split))
        want = _rows(patches.patch_dataset(global_cube, None, dates, SHARD_CFG, BLOCK, STATS, split=split))
        assert got["x"].shape[1:] == (4, 9, 9) and got["x"].dtype == np.float32
        for k in patches.COLUMNS:
            np.testing.assert_array_equal(got[k], want[k], err_msg=f"{split}: {k}")


@pytest.mark.ray
def test_shard_cut_resumes_and_refuses_a_store_of_another_run(global_cube: str, tmp_path, ordered_data) -> None:
    """A day whose record is gone (a cut killed halfway) is cut again, the others kept; a store cut
    for another config, or a directory that is no shard store, is refused in one line naming it."""
    from smray import shards

    dates = cube.info(global_cube).dates
    url = str(tmp_path / "shards")
    first = _cut(url, global_cube, dates)
    kept = (tmp_path / "shards" / "train" / f"{dates[0]}.parquet").stat().st_mtime_ns
    (tmp_path / "shards" / "train" / f"{dates[2]}.parquet").write_bytes(b"half a file")  # no record: cut again
    next((tmp_path / "shards" / "_smray" / "days").glob(f"{dates[2]}_*")).unlink()
    lines: list[str] = []
    again = _cut(url, global_cube, dates, progress=lines.append)
    assert again.cut_now == 1 and again.counts == first.counts
    assert lines == [f"train: cutting the patches of 1 of {len(dates)} days into {url} ({len(dates) - 1} there already)"]
    assert (tmp_path / "shards" / "train" / f"{dates[0]}.parquet").stat().st_mtime_ns == kept
    rows = _rows(shards.shard_dataset(None, again, "train"))
    assert rows["y"].size == again.n_train and np.isfinite(rows["x"]).all()
    other = dataclasses.replace(SHARD_CFG, per_day=650, train_per_day=550)
    with pytest.raises(SmrayError) as err:
        _cut(url, global_cube, dates, other)
    msg = str(err.value)
    assert msg.startswith(f"{url}: paths.shards: the patches there were cut for another training run (other "
                          "patches.per_day, patches.train_per_day)") and "\n" not in msg
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "notes.txt").write_text("mine")
    with pytest.raises(SmrayError, match="elsewhere: paths.shards: not empty and not a patch-shard store"):
        _cut(str(tmp_path / "elsewhere"), global_cube, dates)
    assert (tmp_path / "elsewhere" / "notes.txt").read_text() == "mine"


@pytest.mark.ray
def test_shard_files_come_in_a_new_order_every_epoch(global_cube: str, tmp_path, ordered_data) -> None:
    """With a seed, each consumption (epoch) reads the day files in a new order, the same sequence of
    orders for the same seed; every sample every epoch."""
    from smray import shards

    dates = cube.info(global_cube).dates
    census = _cut(str(tmp_path / "s"), global_cube, dates)

    def epochs(seed: int, n: int) -> list[list[int]]:
        ds = shards.shard_dataset(None, census, "val", seed=seed)
        out = []
        for _ in range(n):
            order, rows = [], 0
            for batch in ds.iter_batches(batch_size=None, batch_format="numpy"):
                rows += batch["y"].size
                order += [d for d in dict.fromkeys(batch["day"].tolist()) if d not in order]
            assert rows == census.n_val
            out.append(order)
        return out

    first = epochs(5, 2)
    assert all(sorted(o) == [cube.days_since_epoch(d) for d in dates] for o in first)
    assert first[0] != first[1] and epochs(5, 1) == first[:1]
