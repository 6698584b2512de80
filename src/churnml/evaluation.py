"""Metrics of churn scores: ranking, probability quality and the economics of contacting the
top-k; customer-level bootstrap intervals of the main metrics and of differences between scorers."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, brier_score_loss, log_loss, roc_auc_score

__all__ = [
    "BEATS",
    "BOOTSTRAP_METRICS",
    "NO_DIFFERENCE",
    "WORSE",
    "bootstrap_intervals",
    "bootstrap_replicates",
    "bootstrap_weights",
    "churn_metrics",
    "expected_calibration_error",
    "interval_outcome",
    "lift_capture",
    "percentile_intervals",
]

BEATS, WORSE, NO_DIFFERENCE = "beats", "worse", "no significant difference"
"""Outcomes of a paired difference *shipped minus alternative* (:func:`interval_outcome`); the
verdict sentences say "beats", "is worse than" / "does NOT beat", "no significant difference"."""


def interval_outcome(low: float, high: float) -> str | None:
    """The outcome of a paired difference (shipped minus alternative) from its interval
    ``[low, high]``: :data:`BEATS` (interval above 0), :data:`WORSE` (below 0),
    :data:`NO_DIFFERENCE` (it contains 0), or None (no finite interval: it cannot be told)."""
    try:
        lo, hi = float(low), float(high)
    except (TypeError, ValueError):
        return None
    if not (np.isfinite(lo) and np.isfinite(hi)):
        return None
    if lo > 0:
        return BEATS
    if hi < 0:
        return WORSE
    return NO_DIFFERENCE


def expected_calibration_error(y, p, n_bins: int = 10) -> float:
    """Expected calibration error: the count-weighted mean |mean(p) - mean(y)| over ``n_bins``
    equal-width probability bins."""
    y = np.asarray(y, dtype=float)
    p = np.clip(np.asarray(p, dtype=float), 0, 1)
    bins = np.minimum((p * n_bins).astype(int), n_bins - 1)
    total = 0.0
    for b in range(n_bins):
        m = bins == b
        if m.any():
            total += m.sum() * abs(p[m].mean() - y[m].mean())
    return float(total / len(y))


def lift_capture(y, score, share: float = 0.1) -> tuple[float, float]:
    """Lift (churn rate in the top ``share`` by score / overall rate) and capture (share of all
    churners that the top ``share`` holds). Ties broken by position."""
    y = np.asarray(y, dtype=float)
    k = max(1, int(round(share * len(y))))
    top = np.argsort(-np.asarray(score, dtype=float), kind="stable")[:k]
    rate = y.mean()
    lift = float(y[top].mean() / rate) if rate > 0 else float("nan")
    capture = float(y[top].sum() / y.sum()) if y.sum() > 0 else float("nan")
    return lift, capture


def churn_metrics(
    y,
    p,
    *,
    value=None,
    contact_cost: float = 2.0,
    offer_acceptance: float = 0.2,
    top_k_share: float = 0.1,
) -> dict[str, float]:
    """ROC AUC, PR AUC, Brier score, log loss, lift and capture at the top ``top_k_share``,
    expected calibration error, and the realised profit of contacting the top-k:
    ``sum(churned x offer_acceptance x value) - contact_cost x k`` over the contacted (value in
    currency, e.g. each customer's predicted value over the horizon)."""
    y = np.asarray(y, dtype=float)
    p = np.clip(np.asarray(p, dtype=float), 0.0, 1.0)  # rank metrics see every distinct value
    lift, capture = lift_capture(y, p, top_k_share)
    out = {
        "roc_auc": float(roc_auc_score(y, p)) if 0 < y.mean() < 1 else float("nan"),
        "pr_auc": float(average_precision_score(y, p)) if y.sum() > 0 else float("nan"),
        "brier": float(brier_score_loss(y, p)),
        "log_loss": float(log_loss(y, np.clip(p, 1e-6, 1 - 1e-6), labels=[0, 1])),
        f"lift_top{int(round(top_k_share * 100))}": lift,
        f"capture_top{int(round(top_k_share * 100))}": capture,
        "ece": expected_calibration_error(y, p),
        "churn_rate": float(y.mean()),
        "n": float(len(y)),
    }
    if value is not None:
        v = np.nan_to_num(np.asarray(value, dtype=float))
        k = max(1, int(round(top_k_share * len(y))))
        top = np.argsort(-p, kind="stable")[:k]
        out["expected_profit_topk"] = float((y[top] * offer_acceptance * v[top]).sum() - contact_cost * k)
    return out


# --- customer-level bootstrap ------------------------------------------------------------------

BOOTSTRAP_METRICS = ("roc_auc", "pr_auc", "brier")
_CELLS = 2_000_000  # weights per chunk of resamples (bounds memory: ~16 MB per uint64 buffer)
_LUT_BITS = 20
# Poisson(1) inverse CDF on the top 20 bits of a uniform 64-bit integer (resolution 1e-6)
_POISSON1_CDF = np.cumsum([np.exp(-1.0) / np.prod(np.arange(1, k + 1, dtype=float)) for k in range(20)])
_POISSON1_LUT = np.searchsorted(_POISSON1_CDF, (np.arange(2**_LUT_BITS) + 0.5) / 2**_LUT_BITS, side="right").astype(np.uint8)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_FLOAT32_MAX_N = 4_000_000  # float32 weights sum exactly (integers < 2**24) up to about this many units


def _keys(ids, n: int) -> np.ndarray:
    """A 64-bit key per unit: a hash of its id (so a customer gets the same weights wherever it
    appears), or of its position without ids."""
    if ids is None:
        return pd.util.hash_array(np.arange(n, dtype=np.int64))
    ids = np.asarray(ids)
    if ids.dtype.kind in "iu":
        return pd.util.hash_array(ids.astype(np.int64))
    return pd.util.hash_array(ids.astype(str).astype(object))


def _mix(x: np.ndarray, tmp: np.ndarray | None = None) -> np.ndarray:
    """splitmix64 finaliser, in place (uint64 arithmetic wraps)."""
    tmp = np.empty_like(x) if tmp is None else tmp
    for shift, mult in ((30, 0xBF58476D1CE4E5B9), (27, 0x94D049BB133111EB), (31, None)):
        np.right_shift(x, np.uint64(shift), out=tmp)
        x ^= tmp
        if mult is not None:
            x *= np.uint64(mult)
    return x


def bootstrap_weights(n: int | None = None, *, ids=None, n_resamples: int = 200, seed: int = 0, start: int = 0,
                      dtype=np.float64) -> np.ndarray:
    """Poisson(1) bootstrap weights, shape ``(n_resamples, n)``: how often each unit is drawn in
    resamples ``start .. start + n_resamples - 1``.

    Each weight is a deterministic function of (``seed``, unit id, resample number): with ``ids``
    (e.g. customer ids) a customer has the same weight in resample ``b`` wherever it appears, so
    resamples of several cutoffs (or of a subset) are the SAME draw of customers and statistics
    across them can be combined per resample. Without ids the position is the unit."""
    if ids is not None:
        n = len(ids)
    if n is None:
        raise ValueError("give n or ids")
    return _weights(_keys(ids, int(n)), n_resamples, seed, start, dtype)


def _weights(keys: np.ndarray, n_resamples: int, seed: int, start: int, dtype) -> np.ndarray:
    with np.errstate(over="ignore"):
        salt = _mix(np.array([int(seed) & 0xFFFFFFFFFFFFFFFF], dtype=np.uint64) + _GOLDEN)
        rows = _mix(salt + np.arange(start, start + n_resamples, dtype=np.uint64) * _GOLDEN)
        u = np.empty((n_resamples, len(keys)), dtype=np.uint64)
        np.bitwise_xor(keys[None, :], rows[:, None], out=u)
        tmp = np.empty_like(u)
        _mix(u, tmp)
    np.right_shift(u, np.uint64(64 - _LUT_BITS), out=u)
    return _POISSON1_LUT.take(u).astype(dtype)


class _Ranked:
    """A score sorted once (ascending, ties grouped): weighted positives and negatives per
    distinct score, and their running sums, for many weight vectors at once. Every pass runs
    along rows in memory order."""

    def __init__(self, y: np.ndarray, score: np.ndarray):
        self.order = np.argsort(score, kind="mergesort")
        s = score[self.order]
        last = np.r_[s[1:] != s[:-1], True] if len(s) else np.array([], dtype=bool)
        self.ends = None if last.all() else np.flatnonzero(last)  # last unit of each distinct score
        self.y = y[self.order]

    def pos_neg(self, W: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(positives, negatives, cumulative positives, cumulative negatives) per distinct score
        (columns, ascending) and resample (rows)."""
        Wo = np.take(W, self.order, axis=1)
        pos = Wo * self.y.astype(W.dtype)
        cpos = np.cumsum(pos, axis=1)
        cw = np.cumsum(Wo, axis=1)
        if self.ends is None:  # no ties: one unit per distinct score
            Wo -= pos
            cw -= cpos
            return pos, Wo, cpos, cw
        cpos = cpos[:, self.ends]
        cw = cw[:, self.ends]
        cw -= cpos
        zero = np.zeros((len(W), 1), dtype=W.dtype)
        return np.diff(cpos, axis=1, prepend=zero), np.diff(cw, axis=1, prepend=zero), cpos, cw


def _auc_ap(pos: np.ndarray, neg: np.ndarray, cpos: np.ndarray, cneg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Weighted ROC AUC (ties count half) and average precision (sklearn's definition: thresholds
    at distinct scores, from the highest down) per row (resample), from positives, negatives and
    their running sums per distinct score (columns, ascending). Overwrites ``cpos`` and ``cneg``;
    sums accumulate in float64."""
    f8 = np.float64
    P, N = cpos[:, -1].astype(f8), cneg[:, -1].astype(f8)
    with np.errstate(invalid="ignore", divide="ignore"):
        auc = ((pos * cneg).sum(axis=1, dtype=f8) - 0.5 * (pos * neg).sum(axis=1, dtype=f8)) / (P * N)
        tp = np.subtract(cpos[:, -1:], cpos, out=cpos)  # positives scored >= this score: P - cpos + pos
        tp += pos
        den = np.subtract(cneg[:, -1:], cneg, out=cneg)  # + negatives scored >= this score
        den += neg
        den += tp
        prec = np.divide(tp, den, out=tp, where=den > 0)
        ap = (pos * prec).sum(axis=1, dtype=f8) / P
    auc[(P <= 0) | (N <= 0)] = np.nan
    ap[P <= 0] = np.nan
    return auc, ap


def bootstrap_replicates(
    y,
    scores: Mapping[str, np.ndarray],
    *,
    ids=None,
    reference: str | None = None,
    n_resamples: int = 200,
    seed: int = 0,
) -> dict[str, dict[str, np.ndarray]]:
    """Metrics of every scorer on ``n_resamples`` customer-level bootstrap resamples (see
    :func:`bootstrap_weights`): ``{scorer: {"roc_auc": array, "pr_auc": array, "brier": array}}``,
    and for ``reference`` also ``roc_auc_diff_vs_<other>`` (paired: both scorers on the same
    resample). Scores are probabilities (clipped to [0, 1], like :func:`churn_metrics`). A
    resample without both classes gives NaN. Vectorised over chunks of resamples."""
    y = np.asarray(y, dtype=float)
    probs = {k: np.clip(np.asarray(v, dtype=float), 0.0, 1.0) for k, v in scores.items()}
    n = len(y)
    out = {k: {m: np.full(n_resamples, np.nan) for m in BOOTSTRAP_METRICS} for k in probs}
    if n == 0 or n_resamples <= 0:
        return _with_diffs(out, reference)
    ranked = {k: _Ranked(y, p) for k, p in probs.items()}
    chunk = max(1, min(n_resamples, _CELLS // n))
    dtype = np.float32 if n <= _FLOAT32_MAX_N else np.float64
    sq = {k: ((p - y) ** 2).astype(dtype) for k, p in probs.items()}
    keys = _keys(ids, n)
    for b0 in range(0, n_resamples, chunk):
        b1 = min(n_resamples, b0 + chunk)
        W = _weights(keys, b1 - b0, seed, b0, dtype)
        total = W.sum(axis=1, dtype=np.float64)
        for k in probs:
            auc, ap = _auc_ap(*ranked[k].pos_neg(W))
            out[k]["roc_auc"][b0:b1] = auc
            out[k]["pr_auc"][b0:b1] = ap
            with np.errstate(invalid="ignore", divide="ignore"):
                out[k]["brier"][b0:b1] = (W @ sq[k]) / total
    return _with_diffs(out, reference)


def _with_diffs(reps: dict[str, dict[str, np.ndarray]], reference: str | None) -> dict[str, dict[str, np.ndarray]]:
    if reference is not None:
        if reference not in reps:
            raise ValueError(f"reference scorer {reference!r} is not among the scores {list(reps)}")
        for k in reps:
            if k != reference:
                reps[reference][f"roc_auc_diff_vs_{k}"] = reps[reference]["roc_auc"] - reps[k]["roc_auc"]
    return reps


def percentile_intervals(reps: Mapping[str, Mapping[str, np.ndarray]], level: float = 0.95) -> pd.DataFrame:
    """Percentile intervals of bootstrap replicates: index scorer, columns ``<metric>_ci_low`` and
    ``<metric>_ci_high`` (NaN replicates ignored; NaN where a scorer lacks a metric)."""
    a = (1 - level) / 2
    rows = {}
    for k, metrics in reps.items():
        row = {}
        for m, v in metrics.items():
            v = np.asarray(v, dtype=float)
            v = v[np.isfinite(v)]
            lo, hi = (np.quantile(v, [a, 1 - a]) if len(v) else (np.nan, np.nan))
            row[f"{m}_ci_low"], row[f"{m}_ci_high"] = float(lo), float(hi)
        rows[k] = row
    frame = pd.DataFrame.from_dict(rows, orient="index")
    frame.index.name = "scorer"
    return frame


def bootstrap_intervals(
    y,
    scores: Mapping[str, np.ndarray],
    *,
    ids=None,
    reference: str | None = None,
    n_resamples: int = 200,
    seed: int = 0,
    level: float = 0.95,
) -> pd.DataFrame:
    """Customer-level bootstrap ``level`` intervals (percentile) of ROC AUC, PR AUC and Brier
    score per scorer, and of the paired ROC AUC difference ``reference - other``
    (``roc_auc_diff_vs_<other>_ci_low/high`` on the reference row). See :func:`bootstrap_replicates`."""
    reps = bootstrap_replicates(y, scores, ids=ids, reference=reference, n_resamples=n_resamples, seed=seed)
    return percentile_intervals(reps, level)
