"""A campaign log with a known effect, to test the read-out end to end.

:func:`simulate_customers` makes scores (churn probability, value, segment) and a transaction
log before the campaign start; after ``churnml campaign`` has planned, :func:`simulate_response`
draws every planned customer's purchases in the read-out window: a control customer buys again
with probability ``1 - churn_probability``, a treated one with ``1 - churn_probability x (1 -
r_segment)`` where ``r_segment`` is the true relative churn reduction of their segment
(heterogeneous by segment). The truth (per customer: retained, true effect on retention) is
returned with the log.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["TRUE_REDUCTION", "simulate_customers", "simulate_response"]

TRUE_REDUCTION = {"Save now": 0.40, "Protect": 0.20, "Grow": 0.0}


def simulate_customers(n: int = 2000, start: str = "2024-07-01", seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(scores, transactions before ``start``): ``n`` customers, each with 1-4 purchases in the
    180 days before ``start``; scores carry ``as_of = start`` and a segment-dependent churn
    probability (Save now ~0.7, Protect ~0.45, Grow ~0.2) and value if retained (currency)."""
    rng = np.random.default_rng(seed)
    seg = rng.choice(list(TRUE_REDUCTION), n)
    mean_p = pd.Series(seg).map({"Save now": 0.7, "Protect": 0.45, "Grow": 0.2}).to_numpy()
    p = np.clip(mean_p + rng.normal(0, 0.08, n), 0.02, 0.98)
    clv = rng.gamma(2.0, 150.0, n)
    ids = np.array([f"c{i:05d}" for i in range(n)])
    t0 = pd.Timestamp(start)
    scores = pd.DataFrame({"customer_id": ids, "as_of": t0, "churn_probability": p, "predicted_clv": clv,
                           "value_if_retained": clv, "value_at_risk": p * clv, "segment": seg,
                           "risk_tier": np.select([p >= 0.6, p >= 0.3], ["high", "medium"], "low"),
                           "value_tier": np.select([clv >= 400, clv >= 150], ["high", "medium"], "low")})
    k = rng.integers(1, 5, n)
    cust = np.repeat(ids, k)
    ts = t0 - pd.to_timedelta(rng.integers(1, 181, k.sum()), unit="D")
    tx = pd.DataFrame({"customer_id": cust, "timestamp": ts, "amount": np.round(rng.gamma(2.0, 25.0, k.sum()), 2)})
    return scores, tx.sort_values(["customer_id", "timestamp"]).reset_index(drop=True)


def simulate_response(plan: pd.DataFrame, start: str, days: int = 90, seed: int = 1,
                      reduction: dict[str, float] | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(transactions in ``[start, start + days)``, truth per plan customer: ``customer_id,
    group, segment, retained, true_effect``), ``true_effect`` = churn_probability x r_segment
    for treated customers (the retention they gain), 0 for control. A retained customer makes
    1-3 purchases in the window (amounts gamma, mean 50)."""
    red = reduction or TRUE_REDUCTION
    rng = np.random.default_rng(seed)
    p = plan["churn_probability"].to_numpy(dtype=float)
    r = plan["segment"].map(red).fillna(0.0).to_numpy(dtype=float)
    treated = plan["group"].to_numpy() == "treatment"
    effect = np.where(treated, p * r, 0.0)
    retained = rng.uniform(size=len(plan)) < 1 - p + effect
    ids = plan["customer_id"].astype(str).to_numpy()[retained]
    k = rng.integers(1, 4, len(ids))
    ts = pd.Timestamp(start) + pd.to_timedelta(rng.integers(0, days, k.sum()), unit="D")
    tx = pd.DataFrame({"customer_id": np.repeat(ids, k), "timestamp": ts, "amount": np.round(rng.gamma(2.0, 25.0, k.sum()), 2)})
    truth = pd.DataFrame({"customer_id": plan["customer_id"].astype(str).to_numpy(), "group": plan["group"].to_numpy(),
                          "segment": plan["segment"].to_numpy(), "retained": retained.astype(int), "true_effect": effect})
    return tx, truth
