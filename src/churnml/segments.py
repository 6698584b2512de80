"""Risk x value segments, reason codes and the KPIs the business tracks."""

from __future__ import annotations

import numpy as np
import pandas as pd

from churnml.config import SegmentsConfig, TierConfig

__all__ = ["assign_segments", "kpis", "reason_codes", "tiers"]


def tiers(values, config: TierConfig) -> np.ndarray:
    """Tier label per value. ``quantile``: cut points at those shares of the population (ties
    go to the lower tier); ``absolute``: cut points are values. A value equal to a cut point
    belongs to the upper tier."""
    v = np.asarray(values, dtype=float)
    if config.method == "quantile":
        cuts = np.quantile(v, config.thresholds) if len(v) else np.array(config.thresholds)
        idx = np.searchsorted(cuts, v, side="right")
    else:
        idx = np.searchsorted(np.asarray(config.thresholds, dtype=float), v, side="right")
    return np.asarray(config.labels, dtype=object)[idx]


def assign_segments(scores: pd.DataFrame, config: SegmentsConfig | None = None) -> pd.DataFrame:
    """Add ``risk_tier`` (of ``churn_probability``), ``value_tier`` (of ``predicted_clv``),
    ``segment`` (the matrix cell's name) and ``recommended_action`` (the playbook's action)."""
    cfg = config or SegmentsConfig()
    out = scores.copy()
    out["risk_tier"] = tiers(out["churn_probability"], cfg.risk)
    out["value_tier"] = tiers(out["predicted_clv"], cfg.value)
    keys = out["risk_tier"].astype(str) + "|" + out["value_tier"].astype(str)
    out["segment"] = keys.map(cfg.matrix)
    out["recommended_action"] = out["segment"].map(cfg.playbook).fillna("none")
    return out


# --------------------------------------------------------------------------- reasons


def _num(frame: pd.DataFrame, col: str) -> pd.Series:
    return frame[col].astype(float) if col in frame.columns else pd.Series(np.nan, index=frame.index)


def _phrase(feature: str, f: pd.DataFrame) -> pd.Series:
    """A sentence a marketer reads for each customer, about one feature."""
    rec = _num(f, "recency_days").round().astype("Int64").astype(str)
    gap = _num(f, "ipt_mean_days")
    if feature in {"recency_days", "recency_ratio", "recency_share", "btyd_p_no_purchase", "btyd_p_alive", "T", "recency"}:
        usual = "usually buys every " + gap.round().astype("Int64").astype(str) + " days"
        text = "no purchase for " + rec + " days"
        return text.where(gap.isna(), text + ", " + usual).where(gap.notna(), text + " (one purchase day so far)")
    if feature in {"n_purchases", "frequency", "purchases_per_year", "btyd_expected_purchases", "ipt_mean_days", "ipt_std_days"}:
        months = (_num(f, "tenure_days") / 30.44).round().clip(lower=1).astype("Int64").astype(str)
        return "only " + _num(f, "n_purchases").astype("Int64").astype(str) + " purchase(s) in " + months + " months"
    if feature.startswith("n_purchases_") and feature.endswith("d"):
        w = feature[len("n_purchases_"):-1]
        return _num(f, feature).astype("Int64").astype(str) + f" purchase(s) in the last {w} days"
    if feature.startswith("spend_") and feature.endswith("d") and feature[6:-1].isdigit():
        return "spent " + _num(f, feature).round().astype("Int64").astype(str) + f" in the last {feature[6:-1]} days"
    if feature in {"spend_trend", "purchase_trend"}:
        what = "spend" if feature == "spend_trend" else "purchases"
        t = _num(f, feature)
        return pd.Series(np.where(t < 0, f"{what} falling vs the previous 90 days", f"{what} not growing"), index=f.index)
    if feature.startswith("n_") and feature.endswith("_90d") or feature.startswith("n_") and feature.endswith("_total"):
        base = feature[2:].rsplit("_", 1)[0]
        when = "in the last 90 days" if feature.endswith("_90d") else "so far"
        return _num(f, feature).astype("Int64").astype(str) + f" {base.replace('_', ' ')}(s) {when}"
    if feature.startswith("days_since_last_"):
        kind = feature[len("days_since_last_"):].replace("_", " ")
        d = _num(f, feature)
        return pd.Series(np.where(d.notna(), f"last {kind} " + d.round().astype("Int64").astype(str) + " days ago", f"no {kind} recorded"), index=f.index)
    if feature in {"last_nps", "last_csat"}:
        kind = feature[5:].upper()
        return f"last {kind} answer " + _num(f, feature).astype("Int64").astype(str)
    if feature in {"n_returns", "return_amount"}:
        return _num(f, "n_returns").astype("Int64").astype(str) + " return(s)"
    if feature in {"avg_order_value", "monetary_value", "total_spend", "net_spend", "spend_per_year", "btyd_expected_avg_spend", "btyd_value"}:
        return "spends " + _num(f, "avg_order_value").round().astype("Int64").astype(str) + " per order"
    if feature == "tenure_days":
        return "customer for " + (_num(f, "tenure_days") / 30.44).round().astype("Int64").astype(str) + " months"
    return feature + " = " + f[feature].astype(str) if feature in f.columns else pd.Series(feature, index=f.index)


def reason_codes(contributions: pd.DataFrame, features: pd.DataFrame, k: int = 3) -> pd.Series:
    """The ``k`` strongest drivers of each customer's churn risk, in words, joined by "; ".

    Drivers are the features with the largest positive contributions to the log-odds of churn
    (LightGBM ``pred_contrib``); features that describe the same fact (e.g. recency in days and
    as a ratio) give one sentence. Customers with no positive driver get "no risk driver".
    """
    c = contributions.drop(columns=[x for x in ("bias",) if x in contributions.columns])
    names = np.asarray(c.columns)
    vals = c.to_numpy(dtype=float)
    order = np.argsort(-vals, axis=1, kind="stable")[:, : min(3 * k, vals.shape[1])]
    top_vals = np.take_along_axis(vals, order, axis=1)
    phrases: dict[str, pd.Series] = {}
    result = [[] for _ in range(len(c))]
    feats = features.reindex(c.index)
    for j in range(order.shape[1]):
        for feat_idx in np.unique(order[:, j]):
            rows = np.flatnonzero((order[:, j] == feat_idx) & (top_vals[:, j] > 0))
            if not len(rows):
                continue
            name = names[feat_idx]
            if name not in phrases:
                phrases[name] = _phrase(name, feats).astype(str).to_numpy()
            text = phrases[name]
            for r in rows:
                lst = result[r]
                if len(lst) < k and text[r] not in lst:
                    lst.append(text[r])
    return pd.Series(["; ".join(x) if x else "no risk driver" for x in result], index=c.index, name="reasons")


# --------------------------------------------------------------------------- KPIs


def kpis(scores: pd.DataFrame, by: str | None = "segment") -> pd.DataFrame:
    """KPIs overall (row ``all``) and per ``by`` group, from a scores table.

    ``churn_rate`` is the expected share lost within the churn horizon (mean churn probability),
    ``retention_rate`` its complement; ``purchase_frequency`` purchases per year;
    ``avg_order_value`` currency per order; CLV mean / median / p90 / total; ``value_at_risk``
    total (currency); ``customers`` count and ``share``.
    """

    def one(g: pd.DataFrame) -> dict[str, float]:
        clv = g["predicted_clv"]
        return {
            "customers": float(len(g)),
            "churn_rate": float(g["churn_probability"].mean()),
            "retention_rate": float(1 - g["churn_probability"].mean()),
            "purchase_frequency": float(g["purchases_per_year"].mean()) if "purchases_per_year" in g else float("nan"),
            "avg_order_value": float(g["avg_order_value"].mean()) if "avg_order_value" in g else float("nan"),
            "clv_mean": float(clv.mean()),
            "clv_median": float(clv.median()),
            "clv_p90": float(clv.quantile(0.9)),
            "clv_total": float(clv.sum()),
            "value_at_risk": float(g["value_at_risk"].sum()),
        }

    rows = {"all": one(scores)}
    if by and by in scores.columns:
        for key, g in scores.groupby(by, sort=True):
            rows[str(key)] = one(g)
    out = pd.DataFrame(rows).T
    out.insert(1, "share", out["customers"] / len(scores) if len(scores) else np.nan)
    out.index.name = by or "group"
    return out
