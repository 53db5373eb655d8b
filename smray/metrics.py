"""Agreement of an estimate with a reference, under pytesmo's names: ``bias``, ``mse``, ``rmsd``,
``ubrmsd``, ``pearson_r``, plus ``r2`` (1 − SSE/SST, SST about the reference mean: the paper's R²).

One implementation for training (sums added over Ray Train workers), the paper experiment and the
evaluation (sums added over days, per pixel): every score comes from six **mergeable sums** over the
pairs where both values are finite, with ``e = estimate − reference`` and ``d = reference − shift``::

    SUMS = n, Σe, Σe², Σd, Σd², Σe·d

Sums of disjoint pieces add, and the scores of the total equal those of the pooled pairs (never an
average of per-piece scores). ``shift`` (a value near the reference mean) keeps Σd² well conditioned;
Σe² is the squared error itself, so the MSE never suffers cancellation. Example::

    s = pair_sums(pred_a, ref_a, shift=0.25) + pair_sums(pred_b, ref_b, shift=0.25)
    scores(s, shift=0.25)["ubrmsd"]          # == pair_metrics(concat(pred), concat(ref))["ubrmsd"]
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

#: the order of the sums (first axis of every sums array)
SUMS = ("n", "sum_err", "sum_err2", "sum_ref", "sum_ref2", "sum_err_ref")
#: the scores :func:`scores` returns
SCORES = ("n", "bias", "mse", "rmsd", "ubrmsd", "pearson_r", "r2", "mean_estimate", "mean_reference")


def error_sums(err: np.ndarray, reference: np.ndarray, *, shift: float = 0.0,
               per_element: bool = False) -> np.ndarray:
    """The :data:`SUMS` of errors ``err`` (estimate − reference) and their ``reference`` values over the
    pairs where both are finite: float64 ``(6,)``, or ``(6, *err.shape)`` element by element when
    ``per_element`` (pixels summed over days later)."""
    e = np.asarray(err, dtype=np.float64)
    r = np.asarray(reference, dtype=np.float64)
    ok = np.isfinite(e) & np.isfinite(r)
    e = np.where(ok, e, 0.0)
    d = np.where(ok, r - shift, 0.0)
    parts = (ok.astype(np.float64), e, e * e, d, d * d, e * d)
    if per_element:
        return np.stack(parts)
    return np.array([p.sum() for p in parts], dtype=np.float64)


def pair_sums(estimate: np.ndarray, reference: np.ndarray, *, shift: float = 0.0,
              per_element: bool = False) -> np.ndarray:
    """:func:`error_sums` of two arrays of the same shape."""
    est = np.asarray(estimate, dtype=np.float64)
    ref = np.asarray(reference, dtype=np.float64)
    return error_sums(est - ref, ref, shift=shift, per_element=per_element)


def _centred(s: np.ndarray) -> tuple[Any, Any, Any]:
    """(SSE about the means of e, Σ centred e·d, SST) per element of sums ``s`` (n > 0)."""
    n, se, see, sd, sdd, sed = s
    return see - se * se / n, sed - se * sd / n, sdd - sd * sd / n


def scores(sums: np.ndarray, *, shift: float = 0.0) -> dict[str, Any]:
    """The :data:`SCORES` of total sums (float64 ``(6,)``, :data:`SUMS` order, the same ``shift``).
    ``r2`` and ``pearson_r`` are NaN for fewer than 2 pairs or a constant series; everything is NaN
    (and ``n`` 0) without pairs."""
    s = np.asarray(sums, dtype=np.float64).reshape(len(SUMS))
    n, se, see, sd, sdd, sed = (float(v) for v in s)
    nan = math.nan
    if n < 1:
        return {"n": 0, **{k: nan for k in SCORES[1:]}}
    bias, mse = se / n, see / n
    var_e, cov_ed, sst = (float(v) for v in _centred(s))
    var_est = var_e + 2.0 * cov_ed + sst  # Σ (estimate − its mean)²
    cov = cov_ed + sst  # Σ (estimate − its mean)(reference − its mean)
    defined = n > 1 and sst > 1e-12 * max(sdd, 1e-300)
    return {
        "n": int(round(n)), "bias": bias, "mse": mse, "rmsd": math.sqrt(mse),
        "ubrmsd": math.sqrt(max(mse - bias * bias, 0.0)),
        "pearson_r": cov / math.sqrt(var_est * sst) if defined and var_est > 0 else nan,
        "r2": 1.0 - see / sst if defined else nan,
        "mean_estimate": (se + sd) / n + shift, "mean_reference": sd / n + shift,
    }


def pair_metrics(estimate: np.ndarray, reference: np.ndarray, *, shift: float = 0.0) -> dict[str, Any]:
    """:func:`scores` of the finite pairs of two arrays."""
    return scores(pair_sums(estimate, reference, shift=shift), shift=shift)


@dataclass
class PairSums:
    """Running :data:`SUMS` per element (``sums`` float64 ``(6, *shape)``; ``shape`` () for one total),
    e.g. per pixel over days."""

    sums: np.ndarray
    shift: float = 0.0

    @classmethod
    def zeros(cls, shape: tuple[int, ...] = (), shift: float = 0.0) -> PairSums:
        return cls(np.zeros((len(SUMS), *shape), np.float64), float(shift))

    @property
    def n(self) -> np.ndarray:
        """Pairs per element."""
        return self.sums[0]

    def add(self, estimate: np.ndarray, reference: np.ndarray) -> np.ndarray:
        """Add one piece of pairs (the element shape, or anything when the shape is ()); returns the
        mask of the pairs that counted."""
        per = pair_sums(estimate, reference, shift=self.shift, per_element=True)
        self.sums += per if self.sums.ndim > 1 else per.reshape(len(SUMS), -1).sum(axis=1)
        return per[0] > 0

    def total(self, mask: np.ndarray | None = None) -> np.ndarray:
        """The ``(6,)`` sums over the elements in ``mask`` (all when None)."""
        if self.sums.ndim == 1:
            return self.sums.copy()
        s = self.sums[:, mask] if mask is not None else self.sums
        return s.reshape(len(SUMS), -1).sum(axis=1)

    def scores(self, mask: np.ndarray | None = None) -> dict[str, Any]:
        """:func:`scores` over the elements in ``mask``."""
        return scores(self.total(mask), shift=self.shift)

    def anomaly(self, min_n: int, mask: np.ndarray | None = None) -> dict[str, Any]:
        """``anomaly_r``: Pearson R of the anomalies (each element's series minus its own mean) pooled
        over the elements with at least ``min_n`` pairs (and in ``mask``); ``anomaly_pixels`` and
        ``anomaly_n``, how many elements and pairs that was."""
        return pooled_anomaly([self], min_n, mask)

    def fields(self, min_n: int = 2) -> dict[str, np.ndarray]:
        """Scores per element (float64 arrays of the element shape): ``n``, ``bias``, ``rmsd``, ``ubrmsd``
        and ``pearson_r``; NaN without pairs, and ``pearson_r`` also below ``min_n`` pairs or for a
        constant series (as :func:`scores`, element by element)."""
        n, se, see, sd, sdd, sed = self.sums
        with np.errstate(invalid="ignore", divide="ignore"):
            bias, mse = se / n, see / n
            var_e, cov_ed, sst = _centred(self.sums)
            var_est = var_e + 2.0 * cov_ed + sst
            defined = (n >= max(min_n, 2)) & (sst > 1e-12 * np.maximum(sdd, 1e-300)) & (var_est > 0)
            r = np.where(defined, (cov_ed + sst) / np.sqrt(np.where(defined, var_est * sst, 1.0)), np.nan)
            ubrmsd = np.sqrt(np.maximum(mse - bias * bias, 0.0))
        has = n > 0
        return {"n": n.copy(), "bias": np.where(has, bias, np.nan), "rmsd": np.where(has, np.sqrt(mse), np.nan),
                "ubrmsd": np.where(has, ubrmsd, np.nan), "pearson_r": r}


def pooled_anomaly(parts: Sequence[PairSums], min_n: int, mask: np.ndarray | None = None) -> dict[str, Any]:
    """``anomaly_r``: Pearson R of the anomalies pooled over the elements of every part, an anomaly being
    a value minus the mean of its element's pairs *within its part* (estimate and reference separately):
    one part is each element's mean over all pairs; one part per calendar month (pairs of that month,
    all years) is a per-element monthly climatology. An element of a part counts with at least ``min_n``
    pairs there (and in ``mask``, of the element shape); ``anomaly_pixels`` and ``anomaly_n``: the
    element-parts and pairs that counted."""
    vp = cov = vr = 0.0
    used = pairs = 0
    for part in parts:
        use = part.n >= min_n
        if mask is not None:
            use = use & mask
        if not use.any():
            continue
        s = part.sums[:, use]
        var_e, cov_ed, sst = _centred(s)
        vr += float(sst.sum())
        cov += float((cov_ed + sst).sum())
        vp += float((var_e + 2.0 * cov_ed + sst).sum())
        used += int(use.sum())
        pairs += int(s[0].sum())
    if not used:
        return {"anomaly_r": math.nan, "anomaly_pixels": 0, "anomaly_n": 0}
    r = cov / math.sqrt(vp * vr) if vp > 0 and vr > 0 else math.nan
    return {"anomaly_r": r, "anomaly_pixels": used, "anomaly_n": pairs}


#: the sums of three collocated series x, y, z (each about ``shift``), in the order of
#: :func:`triple_sums`: n, Σx, Σy, Σz, Σx², Σy², Σz², Σxy, Σxz, Σyz
TRIPLE_SUMS = ("n", "sx", "sy", "sz", "sxx", "syy", "szz", "sxy", "sxz", "syz")


def triple_sums(x: np.ndarray, y: np.ndarray, z: np.ndarray, *, shift: float = 0.0) -> np.ndarray:
    """The :data:`TRIPLE_SUMS` per element (float64 ``(10, *shape)``) of the triplets where all three are
    finite; sums of disjoint pieces (e.g. days) add."""
    a, b, c = (np.asarray(v, np.float64) for v in (x, y, z))
    ok = np.isfinite(a) & np.isfinite(b) & np.isfinite(c)
    a, b, c = (np.where(ok, v - shift, 0.0) for v in (a, b, c))
    return np.stack([ok.astype(np.float64), a, b, c, a * a, b * b, c * c, a * b, a * c, b * c])


def triple_collocation(sums: np.ndarray, min_n: int) -> dict[str, np.ndarray]:
    """Triple collocation in covariance notation (McColl et al. 2014) per element of ``sums``
    (:data:`TRIPLE_SUMS`): ``err_x``/``err_y``/``err_z``, each series' random error standard deviation in
    its own units (σ²_x = Q_xx − Q_xy·Q_xz/Q_yz, …), and ``r_x``/``r_y``/``r_z``, its correlation with the
    unknown truth (R²_x = Q_xy·Q_xz/(Q_xx·Q_yz), …), from the sample covariances Q. NaN below ``min_n``
    triplets, where a covariance product is not positive, or where an estimate falls outside its range
    (a negative error variance, R² outside [0, 1]); ``n``."""
    n, sx, sy, sz, sxx, syy, szz, sxy, sxz, syz = np.asarray(sums, np.float64)
    use = n >= max(min_n, 3)
    with np.errstate(invalid="ignore", divide="ignore"):
        m = np.where(use, n, np.nan)

        def q(s2: np.ndarray, s1: np.ndarray, s3: np.ndarray) -> np.ndarray:
            return (s2 - s1 * s3 / m) / (m - 1)

        qxx, qyy, qzz = q(sxx, sx, sx), q(syy, sy, sy), q(szz, sz, sz)
        qxy, qxz, qyz = q(sxy, sx, sy), q(sxz, sx, sz), q(syz, sy, sz)
        ok = use & (qxy * qxz * qyz > 0)
        out: dict[str, np.ndarray] = {"n": n.copy()}
        for name, var, a, b, c in (("x", qxx, qxy, qxz, qyz), ("y", qyy, qxy, qyz, qxz), ("z", qzz, qxz, qyz, qxy)):
            err2 = var - a * b / c
            r2 = a * b / (var * c)
            out[f"err_{name}"] = np.where(ok & (err2 >= 0), np.sqrt(np.where(err2 >= 0, err2, 0.0)), np.nan)
            out[f"r_{name}"] = np.where(ok & (r2 >= 0) & (r2 <= 1), np.sqrt(np.clip(r2, 0.0, 1.0)), np.nan)
    return out
