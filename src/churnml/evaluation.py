"""Metrics of churn scores: ranking, probability quality and the economics of contacting the top-k."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import average_precision_score, brier_score_loss, log_loss, roc_auc_score

__all__ = ["churn_metrics", "expected_calibration_error", "lift_capture"]


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
