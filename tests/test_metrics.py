"""smray.metrics: the sums of pieces add up to the scores of the pooled pairs, equal to plain numpy."""

from __future__ import annotations

import math

import numpy as np
import pytest

from smray.metrics import (SUMS, PairSums, pair_metrics, pair_sums, pooled_anomaly, scores, triple_collocation,
                           triple_sums)


def _numpy_scores(est: np.ndarray, ref: np.ndarray) -> dict[str, float]:
    ok = np.isfinite(est) & np.isfinite(ref)
    e, r, p = est[ok] - ref[ok], ref[ok], est[ok]
    return {"n": int(ok.sum()), "bias": e.mean(), "mse": (e ** 2).mean(), "rmsd": math.sqrt((e ** 2).mean()),
            "ubrmsd": math.sqrt(((e - e.mean()) ** 2).mean()), "pearson_r": np.corrcoef(p, r)[0, 1],
            "r2": 1 - (e ** 2).sum() / ((r - r.mean()) ** 2).sum(), "mean_estimate": p.mean(),
            "mean_reference": r.mean()}


def test_pooled_sums_equal_numpy_on_the_pooled_pairs() -> None:
    rng = np.random.default_rng(4)
    ref = rng.uniform(0.05, 0.45, 1000)
    est = 0.8 * ref + 0.05 + rng.normal(0, 0.03, 1000)
    est[:9], ref[20:23] = np.nan, np.inf
    pieces = [slice(0, 100), slice(100, 130), slice(130, 1000)]  # unequal "workers"
    total = sum(pair_sums(est[s], ref[s], shift=0.25) for s in pieces)
    assert total.shape == (len(SUMS),)
    got, want = scores(total, shift=0.25), _numpy_scores(est, ref)
    assert got["n"] == want["n"] == 988
    for k in want:
        assert got[k] == pytest.approx(want[k], rel=1e-9, abs=1e-12), k
    assert pair_metrics(est, ref, shift=0.25) == pytest.approx(got)
    per_piece = np.mean([scores(pair_sums(est[s], ref[s], shift=0.25), shift=0.25)["r2"] for s in pieces])
    assert abs(per_piece - got["r2"]) > 1e-3  # averaging scores of pieces would be wrong


def test_per_pixel_sums_over_days_and_anomaly_r() -> None:
    rng = np.random.default_rng(5)
    clim = rng.uniform(0.1, 0.4, (3, 4))  # each pixel its own mean
    days = [clim + rng.normal(0, 0.05, (3, 4)) for _ in range(12)]
    est = [d + 0.3 * (clim - 0.25) + rng.normal(0, 0.02, (3, 4)) for d in days]
    acc, tot = PairSums.zeros((3, 4), shift=0.25), PairSums.zeros((), shift=0.25)
    for e, d in zip(est, days):
        acc.add(e, d)
        tot.add(e, d)
    E, D = np.stack(est), np.stack(days)
    assert acc.scores() == pytest.approx(tot.scores())
    assert acc.scores()["rmsd"] == pytest.approx(math.sqrt(((E - D) ** 2).mean()), rel=1e-12)
    mask = np.zeros((3, 4), bool)
    mask[0] = True
    assert acc.scores(mask)["pearson_r"] == pytest.approx(np.corrcoef(E[:, 0].ravel(), D[:, 0].ravel())[0, 1])
    ea, da = E - E.mean(axis=0), D - D.mean(axis=0)
    an = acc.anomaly(10)
    assert an["anomaly_pixels"] == 12 and an["anomaly_n"] == 144
    assert an["anomaly_r"] == pytest.approx(np.corrcoef(ea.ravel(), da.ravel())[0, 1], rel=1e-9)
    assert acc.anomaly(13) == {"anomaly_r": pytest.approx(math.nan, nan_ok=True), "anomaly_pixels": 0,
                               "anomaly_n": 0}


def test_pooled_anomaly_over_parts_and_per_element_fields() -> None:
    """One part per 'month': anomalies from each element's mean within its part, pooled; an element-part
    with too few pairs is left out. fields(): per-element scores equal numpy on each element's series."""
    rng = np.random.default_rng(6)
    ref = rng.uniform(0.1, 0.4, (20, 2, 3))
    ref[10:] += 0.1  # the second 'month' is wetter
    est = ref + rng.normal(0, 0.03, ref.shape)
    est[12:, 0, 0] = np.nan  # element (0, 0) has 2 pairs in the second part
    parts = [PairSums.zeros((2, 3), shift=0.25), PairSums.zeros((2, 3), shift=0.25)]
    for k in range(20):
        parts[k // 10].add(est[k], ref[k])
    ea, ra = [], []
    for half in (slice(0, 10), slice(10, 20)):
        e, r = est[half], ref[half]
        ok = np.isfinite(e)
        use = ok & (ok.sum(axis=0) >= 3)[None]
        n = np.maximum(use.sum(axis=0), 1)
        ea.append((e - np.where(use, e, 0).sum(axis=0) / n)[use])
        ra.append((r - np.where(use, r, 0).sum(axis=0) / n)[use])
    got = pooled_anomaly(parts, 3)
    assert got["anomaly_pixels"] == 11 and got["anomaly_n"] == 10 * 6 + 10 * 5
    assert got["anomaly_r"] == pytest.approx(np.corrcoef(np.concatenate(ea), np.concatenate(ra))[0, 1], rel=1e-9)
    assert pooled_anomaly(parts[:1], 3) == parts[0].anomaly(3)
    total = PairSums(parts[0].sums + parts[1].sums, 0.25)
    f = total.fields(min_n=3)
    for i, j in np.ndindex(2, 3):
        want = _numpy_scores(est[:, i, j], ref[:, i, j])
        assert f["n"][i, j] == want["n"]
        for k in ("bias", "rmsd", "ubrmsd", "pearson_r"):
            assert f[k][i, j] == pytest.approx(want[k], rel=1e-9), (k, i, j)
    few = PairSums.zeros((2,), 0.25)
    few.add(np.array([0.2, np.nan]), np.array([0.3, 0.3]))
    g = few.fields(min_n=3)
    assert g["n"].tolist() == [1, 0] and np.isnan(g["pearson_r"]).all() and np.isnan(g["bias"][1])
    assert g["bias"][0] == pytest.approx(-0.1)


def test_undefined_scores_are_nan() -> None:
    empty = scores(pair_sums(np.array([np.nan]), np.array([0.2])))
    assert empty["n"] == 0 and all(math.isnan(empty[k]) for k in empty if k != "n")
    flat = pair_metrics(np.array([0.1, 0.2, 0.3]), np.full(3, 0.2))  # constant reference
    assert math.isnan(flat["r2"]) and math.isnan(flat["pearson_r"])
    assert flat["bias"] == pytest.approx(0.0, abs=1e-15) and flat["rmsd"] == pytest.approx(math.sqrt(0.02 / 3))


def test_triple_collocation_recovers_known_error_levels() -> None:
    """Three series of one truth with independent errors (std 0.02, 0.04, 0.03; y rescaled): summed over
    'days' in pieces, the estimates are the covariance-notation formulas of numpy and near the truth."""
    rng = np.random.default_rng(8)
    truth = rng.normal(0.25, 0.06, (4000, 2))
    x = truth + rng.normal(0, 0.02, truth.shape)
    y = 0.1 + 0.7 * truth + rng.normal(0, 0.04, truth.shape)
    z = truth + rng.normal(0, 0.03, truth.shape)
    x[:50, 0] = np.nan
    sums = sum(triple_sums(x[k:k + 500], y[k:k + 500], z[k:k + 500], shift=0.25).sum(axis=1) for k in
               range(0, 4000, 500))
    got = triple_collocation(sums, min_n=100)
    for j in range(2):
        ok = np.isfinite(x[:, j])
        c = np.cov(np.stack([x[ok, j], y[ok, j], z[ok, j]]))
        want_ex = math.sqrt(c[0, 0] - c[0, 1] * c[0, 2] / c[1, 2])
        want_ry = math.sqrt(c[0, 1] * c[1, 2] / (c[1, 1] * c[0, 2]))
        assert got["err_x"][j] == pytest.approx(want_ex, rel=1e-6)
        assert got["r_y"][j] == pytest.approx(want_ry, rel=1e-6)
        assert got["n"][j] == ok.sum()
    assert got["err_x"] == pytest.approx(0.02, rel=0.15) and got["err_z"] == pytest.approx(0.03, rel=0.15)
    assert got["err_y"] == pytest.approx(0.04, rel=0.15)
    assert np.isnan(triple_collocation(sums, min_n=5000)["err_x"]).all()
