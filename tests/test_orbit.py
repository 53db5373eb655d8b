"""Swath coverage of the simulated AMSR-E orbit against physics.md §3."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from smray.grid import Grid
from smray.synth import orbit

# physics.md §3 table, one pass, one UTC day: (|lat| band, fraction)
ONE_DAY_TABLE = [((0, 5), 0.55), ((25, 35), 0.62), ((40, 50), 0.76), ((55, 65), 0.98)]


def band(grid: Grid, lo: float, hi: float) -> np.ndarray:
    alat = np.abs(grid.lat)
    return (alat >= lo) & (alat <= hi)


@pytest.fixture(scope="module")
def global_masks() -> np.ndarray:
    """Canonical 0.25° masks, from the smray cache (built in ~8 s the first time)."""
    return orbit.swath_masks(Grid(0.25))


def runs(row: np.ndarray, value: bool) -> list[int]:
    """Lengths of the circular runs of ``value`` in a 1-D bool row."""
    start = int(np.argmax(row != value))  # begin inside a run of the other value
    x = np.roll(row, -start)
    out, n = [], 0
    for v in x:
        if v == value:
            n += 1
        elif n:
            out.append(n)
            n = 0
    if n:
        out.append(n)
    return out


def test_ground_track_nodes_and_local_time():
    t = np.arange(0, orbit.CYCLE_DAYS * 86400, 4.0)
    lat, lon, asc = orbit.ground_track(t)
    assert lat.max() == pytest.approx(180 - orbit.INCLINATION_DEG, abs=0.01)
    up = np.nonzero((lat[:-1] <= 0) & (lat[1:] > 0))[0]  # t = 0 is a node
    down = np.nonzero((lat[:-1] > 0) & (lat[1:] <= 0))[0]
    assert len(down) == orbit.ORBITS_PER_CYCLE
    assert len(up) == orbit.ORBITS_PER_CYCLE
    assert asc[up].all() and not asc[down].any()  # heading north on the ascending pass
    for idx, nominal in ((up, 13.5), (down, 1.5)):
        lst = np.mod(t[idx] / 3600 + lon[idx] / 15, 24)
        assert np.abs(lst - nominal).max() < 2 / 60  # within 2 min (4 s sampling)
    # 16-day repeat: the track closes on itself
    lat0, lon0, _ = orbit.ground_track(np.array([0.0, 1234.0]))
    lat1, lon1, _ = orbit.ground_track(np.array([0.0, 1234.0]) + orbit.CYCLE_DAYS * 86400)
    assert np.allclose(lat0, lat1, atol=1e-6) and np.allclose(lon0, lon1, atol=0.02)


def test_one_pass_day_coverage_table(global_masks):
    g = Grid(0.25)
    assert global_masks.shape == (16, 2, 720, 1440) and global_masks.dtype == bool
    for (lo, hi), expected in ONE_DAY_TABLE:
        frac = global_masks[:, :, band(g, lo, hi)].mean(axis=(-2, -1))  # (16, 2)
        assert abs(frac.mean() - expected) <= 0.05, (lo, hi, frac.mean())
        assert np.all(np.abs(frac - expected) <= 0.05), (lo, hi, frac.min(), frac.max())


def test_two_day_composite_and_both_passes(global_masks):
    g = Grid(0.25)
    prev = np.roll(global_masks, 1, axis=0)  # day d−1, wrapping 0 → 15 across the cycle
    two = global_masks | prev
    eq = band(g, 0, 5)
    assert two[:, :, eq].mean(axis=-1).min() >= 0.95
    assert (two | np.roll(global_masks, 2, axis=0))[:, :, eq].mean(axis=-1).min() >= 0.99
    mid = band(g, 25, 65)
    assert two[:, :, mid].mean(axis=-1).min() >= 0.995
    both = global_masks[:, 0] | global_masks[:, 1]
    assert abs(both[:, eq].mean() - 0.77) <= 0.05
    # every pass-day sees the whole 80–88° caps; beyond the apex (81.8°) + 722.5 km (6.5°) is a hole
    alat = np.abs(g.lat)
    assert global_masks[:, :, (alat > 80) & (alat < 88)].all()
    assert not global_masks[:, :, alat > 88.5].any()


def test_equatorial_gaps(global_masks):
    g = Grid(0.25)
    row = int(np.argmin(np.abs(g.lat - 0.125)))
    for d in (0, 7):
        for p in (0, 1):
            gaps = runs(global_masks[d, p, row], False)
            full = [n for n in gaps if n > 10]  # drop the sliver left by the orbit cut at midnight
            assert len(full) >= 13
            assert 43 <= np.median(full) <= 48, gaps  # ≈ 45 cells, 11°
            assert max(full) <= 50
            covered = runs(global_masks[d, p, row], True)
            assert 50 <= np.median(covered) <= 56  # 1445 km swath seen obliquely: ~53 cells


def test_regional_subset_is_slice_of_global(global_masks):
    region = Grid(0.25).subset((-10.0, 30.0, 40.0, 60.0))
    rows, cols = region.window
    sub = orbit.swath_masks(region)
    assert sub.shape == (16, 2) + region.shape
    assert np.array_equal(sub, global_masks[:, :, rows, cols])
    assert np.array_equal(orbit.coverage(region, 12345), global_masks[12345 % 16][:, rows, cols])


def test_coverage_cycles_by_day_index(global_masks):
    g = Grid(0.25)
    d = orbit.day_index(dt.date(2011, 7, 1))
    assert d == 4199
    cov = orbit.coverage(g, d)
    assert cov.shape == (2, 720, 1440)
    assert np.array_equal(cov, global_masks[d % 16])
    assert np.array_equal(orbit.coverage(g, d + 16), cov)
    assert np.array_equal(orbit.coverage(g, -1), global_masks[15])
    cov[:] = False  # a copy: the cached masks are untouched
    assert global_masks.any() and orbit.swath_masks(g).any()
    with pytest.raises(TypeError):
        orbit.coverage(g, 1.5)


def test_local_solar_time_and_heading(global_masks):
    g = Grid(0.25)
    lst = orbit.local_solar_time(g, 3)
    assert np.array_equal(np.isfinite(lst), global_masks[3])
    eq = band(g, 0, 1)
    asc, desc = lst[0, eq], lst[1, eq]
    asc, desc = asc[np.isfinite(asc)], desc[np.isfinite(desc)]
    assert abs(np.median(asc) - 13.5) < 5 / 60 and np.abs(asc - 13.5).max() < 0.5
    assert abs(np.median(desc) - 1.5) < 5 / 60 and np.abs(desc - 1.5).max() < 0.5
    # heading: on the ascending pass cells at 2°N are seen ~1 min after those at 2°S (same orbit)
    times = orbit.observation_times(g)[3]
    north, south = int(np.argmin(np.abs(g.lat - 2.125))), int(np.argmin(np.abs(g.lat + 2.125)))
    for p, sign in ((0, 1), (1, -1)):
        dtime = times[p, north] - times[p, south]
        same_orbit = np.isfinite(dtime) & (np.abs(dtime) < 600)
        assert same_orbit.sum() > 500
        assert np.all(sign * dtime[same_orbit] > 0)
        assert np.median(sign * dtime[same_orbit]) == pytest.approx(4.25 / 360 * orbit.PERIOD_S, rel=0.3)


def test_cache_file_determinism(tmp_path, monkeypatch):
    monkeypatch.setenv("SMRAY_CACHE_DIR", str(tmp_path))
    orbit._clear_memory_cache()
    try:
        g = Grid(2.0)
        first = orbit.swath_masks(g)
        files = sorted(p.name for p in tmp_path.iterdir())
        assert files == ["orbit_swaths_2deg_v1.npz"]  # versioned, no temporary left behind
        orbit._clear_memory_cache()
        again = orbit.swath_masks(g)  # from the cache file
        assert np.array_equal(first, again)
        recomputed = orbit._compute(2.0) != orbit._NO_TIME
        assert np.array_equal(first, recomputed)
        assert first.shape == (16, 2, 90, 180)
        # a damaged cache file is rebuilt, not trusted
        (tmp_path / "orbit_swaths_2deg_v1.npz").write_bytes(b"garbage")
        orbit._clear_memory_cache()
        assert np.array_equal(orbit.swath_masks(g), first)
    finally:
        orbit._clear_memory_cache()
