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
    """Add ``risk_tier`` (of ``churn_probability``), ``value_tier`` (of ``value_if_retained``, the
    value a customer brings if they stay, so that risk and value are not the same fact twice;
    ``predicted_clv`` in older scores files without it),
    ``segment`` (the matrix cell's name) and ``recommended_action`` (the playbook's action)."""
    cfg = config or SegmentsConfig()
    out = scores.copy()
    out["risk_tier"] = tiers(out["churn_probability"], cfg.risk)
    value = "value_if_retained" if "value_if_retained" in out.columns else "predicted_clv"
    out["value_tier"] = tiers(out[value], cfg.value)
    keys = out["risk_tier"].astype(str) + "|" + out["value_tier"].astype(str)
    out["segment"] = keys.map(cfg.matrix)
    out["recommended_action"] = out["segment"].map(cfg.playbook).fillna("none")
    return out


# --------------------------------------------------------------------------- reasons


def _num(frame: pd.DataFrame, col: str) -> pd.Series:
    return frame[col].astype(float) if col in frame.columns else pd.Series(np.nan, index=frame.index)


_RECENCY = {"recency_days", "recency_ratio", "recency_share", "btyd_p_no_purchase", "btyd_p_alive", "T", "recency"}
_FREQUENCY = {"n_purchases", "frequency", "purchases_per_year", "btyd_expected_purchases", "ipt_mean_days", "ipt_std_days"}
_SPEND = {"avg_order_value", "monetary_value", "total_spend", "net_spend", "spend_per_year", "btyd_expected_avg_spend", "btyd_value"}


def _family(feature: str) -> str:
    """Features that describe the same fact share one sentence."""
    if feature in _RECENCY:
        return "recency"
    if feature in _FREQUENCY:
        return "frequency"
    if feature in _SPEND:
        return "spend"
    if feature in {"n_returns", "return_amount"}:
        return "returns"
    return feature


def _ints(x: pd.Series) -> pd.Series:
    return x.round().astype("Int64").astype(str)


def _phrase(family: str, f: pd.DataFrame) -> pd.Series:
    """A sentence a marketer reads for each customer (row of ``f``), about one fact."""
    if family == "recency":
        gap = _num(f, "ipt_mean_days")
        text = "no purchase for " + _ints(_num(f, "recency_days")) + " days"
        usual = text + ", usually buys every " + _ints(gap) + " days"
        return usual.where(gap.notna(), text + " (one purchase day so far)")
    if family == "frequency":
        months = (_num(f, "tenure_days") / 30.44).round().clip(lower=1)
        return "only " + _ints(_num(f, "n_purchases")) + " purchase(s) in " + _ints(months) + " months"
    if family == "spend":
        return "spends " + _ints(_num(f, "avg_order_value")) + " per order"
    if family == "returns":
        return _ints(_num(f, "n_returns")) + " return(s)"
    if family.startswith("n_purchases_") and family.endswith("d"):
        return _ints(_num(f, family)) + f" purchase(s) in the last {family[len('n_purchases_'):-1]} days"
    if family.startswith("spend_") and family.endswith("d") and family[6:-1].isdigit():
        return "spent " + _ints(_num(f, family)) + f" in the last {family[6:-1]} days"
    if family in {"spend_trend", "purchase_trend"}:
        what = "spend" if family == "spend_trend" else "purchases"
        return pd.Series(np.where(_num(f, family) < 0, f"{what} falling vs the previous 90 days", f"{what} not growing"), index=f.index)
    if family.startswith("n_") and (family.endswith("_90d") or family.endswith("_total")):
        base = family[2:].rsplit("_", 1)[0]
        when = "in the last 90 days" if family.endswith("_90d") else "so far"
        return _ints(_num(f, family)) + f" {base.replace('_', ' ')}(s) {when}"
    if family.startswith("days_since_last_"):
        kind = family[len("days_since_last_"):].replace("_", " ")
        d = _num(f, family)
        return pd.Series(np.where(d.notna(), f"last {kind} " + _ints(d) + " days ago", f"no {kind} recorded"), index=f.index)
    if family in {"last_nps", "last_csat"}:
        return f"last {family[5:].upper()} answer " + _ints(_num(f, family))
    if family == "tenure_days":
        return "customer for " + _ints(_num(f, "tenure_days") / 30.44) + " months"
    return family + " = " + f[family].astype(str) if family in f.columns else pd.Series(family, index=f.index)


def reason_codes(contributions: pd.DataFrame, features: pd.DataFrame, k: int = 3) -> pd.Series:
    """The ``k`` strongest drivers of each customer's churn risk, in words, joined by "; ".

    Drivers are the features with the largest positive contributions to the log-odds of churn
    (LightGBM ``pred_contrib`` or the decision-path attribution); features that describe the same
    fact (recency in days and as a ratio, say) give one sentence. Customers with no positive
    driver get "no risk driver". Vectorised: sentences are built per fact for the customers that
    need them.
    """
    c = contributions.drop(columns=[x for x in ("bias",) if x in contributions.columns])
    names = list(c.columns)
    families = sorted({_family(n) for n in names})
    fam_of = np.array([families.index(_family(n)) for n in names])
    vals = c.to_numpy(dtype=float)
    m = min(3 * k, vals.shape[1])
    order = np.argsort(-vals, axis=1, kind="stable")[:, :m]
    fam = fam_of[order]
    valid = np.take_along_axis(vals, order, axis=1) > 0
    for j in range(1, m):  # a fact already named by a stronger driver is not repeated
        valid[:, j] &= ~np.any((fam[:, :j] == fam[:, j : j + 1]) & valid[:, :j], axis=1)
    rank = np.cumsum(valid, axis=1)
    feats = features.reindex(c.index)
    n = len(c)
    out = np.full(n, "", dtype=object)
    for slot in range(1, k + 1):
        pick = valid & (rank == slot)
        has = pick.any(axis=1)
        col = np.where(has, pick.argmax(axis=1), 0)
        chosen = np.where(has, fam[np.arange(n), col], -1)
        text = np.full(n, "", dtype=object)
        for fi in np.unique(chosen[chosen >= 0]):
            rows = np.flatnonzero(chosen == fi)
            text[rows] = _phrase(families[fi], feats.iloc[rows]).astype(str).to_numpy()
        sep = np.where((out != "") & has, "; ", "")
        out = out + sep + text
    out[out == ""] = "no risk driver"
    return pd.Series(out, index=c.index, name="reasons")


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
