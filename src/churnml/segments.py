"""Risk x value segments, reason codes and the KPIs the business tracks."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
from scipy.special import expit

from churnml.config import CampaignConfig, SegmentsConfig, TierConfig

__all__ = ["LOW_RISK", "assign_segments", "kpis", "low_risk_cut", "reason_codes", "tiers"]


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


def assign_segments(scores: pd.DataFrame, config: SegmentsConfig | None = None, campaign: CampaignConfig | None = None) -> pd.DataFrame:
    """Add ``risk_tier`` (of ``churn_probability``), ``value_tier`` (of ``value_if_retained``, the
    value a customer brings if they stay, so that risk and value are not the same fact twice;
    ``predicted_clv`` in older scores files without it),
    ``segment`` (the matrix cell's name) and ``recommended_action``: the action of ``campaign``'s
    catalog (default catalog when ``None``) with the best expected net value among those the
    customer is eligible for (segment, ``config.playbook``, ``requires`` on the row's columns),
    ``"none"`` when none pays off (:func:`churnml.campaigns.recommended_actions`)."""
    from churnml.campaigns import recommended_actions

    cfg = config or SegmentsConfig()
    out = scores.copy()
    out["risk_tier"] = tiers(out["churn_probability"], cfg.risk)
    value = "value_if_retained" if "value_if_retained" in out.columns else "predicted_clv"
    out["value_tier"] = tiers(out[value], cfg.value)
    keys = out["risk_tier"].astype(str) + "|" + out["value_tier"].astype(str)
    out["segment"] = keys.map(cfg.matrix)
    out["recommended_action"] = recommended_actions(out, campaign, cfg.playbook)
    return out


# --------------------------------------------------------------------------- reasons

LOW_RISK = 0.3
"""Churn probability under which a customer's reason reads "low risk" instead of drivers: the
default low risk tier's bound (``segments.risk``)."""


def low_risk_cut(config: SegmentsConfig | None = None) -> float:
    """The churn probability under which reason codes say "low risk": the upper bound of the low
    risk tier when tiers are absolute (so a "low" risk tier never comes with "why at risk"
    drivers), else :data:`LOW_RISK`."""
    cfg = config or SegmentsConfig()
    if cfg.risk.method == "absolute" and len(cfg.risk.thresholds):
        return float(cfg.risk.thresholds[0])
    return LOW_RISK


def _num(frame: pd.DataFrame, col: str) -> np.ndarray:
    if col in frame.columns and pd.api.types.is_numeric_dtype(frame[col].dtype):
        return pd.to_numeric(frame[col], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    return np.full(len(frame), np.nan)


_RECENCY = {"recency_days", "recency_ratio", "recency_share", "btyd_p_no_purchase", "btyd_p_alive", "recency"}
_FREQUENCY = {"n_purchases", "frequency", "purchases_per_year", "btyd_expected_purchases", "ipt_mean_days", "ipt_std_days"}
_SPEND = {"avg_order_value", "monetary_value", "total_spend", "net_spend", "spend_per_year", "btyd_expected_avg_spend", "btyd_value"}
_RETURNS = {"n_returns", "return_amount"}
_TENURE = {"tenure_days", "T"}
_WINDOW = re.compile(r"^(n_purchases|spend)_(\d+)d$")
_EVENT = re.compile(r"^(?:n_(?P<n>.+)_(?P<w>\d+d|total)|days_since_last_(?P<d>.+)|last_(?P<v>.+))$")
# a family name given to _phrase stands for its plainest feature
_FAMILY_FEATURE = {"recency": "recency_days", "frequency": "n_purchases", "spend": "avg_order_value", "returns": "n_returns",
                   "tenure": "tenure_days"}


def _family(feature: str) -> str:
    """Features that describe the same fact share one sentence: recency and recent activity
    (days since the last purchase, as a ratio or share, BG/NBD's P(no purchase) and P(alive),
    purchases and spend in each trailing window), frequency, spend, returns, tenure, and each
    event type (its counts, days since the last one and its last value)."""
    if feature in _RECENCY:
        return "recency"
    if feature in _FREQUENCY:
        return "frequency"
    if feature in _SPEND:
        return "spend"
    if feature in _RETURNS:
        return "returns"
    if feature in _TENURE:
        return "tenure"
    if _WINDOW.match(feature):
        return "recency"
    m = _EVENT.match(feature)
    if m:
        return "event:" + next(g for g in (m.group("n"), m.group("d"), m.group("v")) if g)
    return feature


# ---- formatting: each distinct value is formatted once (1M customers have far fewer distinct values)


def _each(x: np.ndarray, fn, decimals: int | None = None) -> np.ndarray:
    """``fn`` of each value, called once per distinct value (rounded to ``decimals`` first: finer
    than any text shows)."""
    x = np.asarray(x, dtype=float)
    if not len(x):
        return np.empty(0, dtype=object)
    u, inv = np.unique(x if decimals is None else np.round(x, decimals), return_inverse=True)
    return np.array([fn(float(v)) for v in u] + [""], dtype=object)[:-1][inv.ravel()]


def _amounts(x: np.ndarray) -> np.ndarray:
    """:func:`_amount` of each value (quantised to what it shows first: few distinct values)."""
    x = np.asarray(x, dtype=float)
    return _each(np.where(np.abs(x) >= 100, np.round(x), np.round(x, 2)), _amount)


def _pcts(p: np.ndarray) -> np.ndarray:
    """:func:`_pct` of each probability (quantised to whole percents first)."""
    q = 100 * np.asarray(p, dtype=float)
    return _each(np.where(q < 1, 0.001, np.where(q > 99, 0.999, np.round(q) / 100)), _pct)


def _amount(v: float) -> str:
    """Currency: "12.50", "35" (whole amounts without decimals), "1,234" (from 100 on, rounded)."""
    if not np.isfinite(v):
        return "unknown"
    if abs(v) >= 100:
        s = f"{v:,.0f}"
    else:
        r = round(v, 2)
        s = f"{r:.0f}" if r == round(r) else f"{r:.2f}"
    return "0" if s.lstrip("-").strip("0.") == "" else s


def _int(v: float) -> str:
    return f"{int(round(v)):,}" if np.isfinite(v) else "unknown"


def _number(v: float) -> str:
    """A number of no known unit: whole numbers as such, otherwise 3 significant digits."""
    if not np.isfinite(v):
        return "unknown"
    if abs(v) >= 1000 or v == round(v):
        return _int(v)
    return f"{v:.3g}"


def _span(days: float) -> str:
    """A duration in days as days (< 60), months (< 24) or years (one decimal)."""
    if not np.isfinite(days):
        return "an unknown time"
    d = max(int(round(days)), 1)
    if d < 60:
        return f"{d} day" + ("" if d == 1 else "s")
    months = int(round(days / 30.44))
    if months < 24:
        return f"{months} months"
    y = round(days / 365.25, 1)
    return (f"{y:.0f}" if y == round(y) else f"{y:.1f}") + " years"


def _pct(p: float) -> str:
    if not np.isfinite(p):
        return "unknown"
    q = 100 * p
    return "under 1%" if q < 1 else "over 99%" if q > 99 else f"{int(round(q))}%"


def _plural(word: str) -> str:
    if word.endswith(("s", "x", "ch", "sh")):
        return word + "es"
    if word.endswith("y") and len(word) > 1 and word[-2] not in "aeiou":
        return word[:-1] + "ies"
    return word + "s"


def _counted(x: np.ndarray, one: str, many: str | None = None) -> np.ndarray:
    """ "1 purchase", "3 purchases", "1,204 purchases" (rounded to whole numbers)."""
    r = np.round(np.asarray(x, dtype=float))
    return _each(r, _int) + np.where(r == 1, " " + one, " " + (many or _plural(one))).astype(object)


def _sel(cond, a, b) -> np.ndarray:
    return np.where(cond, a, b).astype(object)


def _fill(template: str, v: np.ndarray, **scalars: str) -> np.ndarray:
    """``template`` with ``{v}`` from the per-row strings ``v`` and other fields from ``scalars``."""
    pre, _, post = template.format(v="\0", **scalars).partition("\0")
    return pre + v + post


_SPEND_TEXT = {  # feature: (below typical, above typical, no typical known)
    "avg_order_value": ("orders worth {v} on average, below the typical {t}", "large orders ({v} on average, typical {t})",
                        "orders worth {v} on average"),
    "monetary_value": ("repeat orders worth {v} on average, below the typical {t}",
                       "large repeat orders ({v} on average, typical {t})", "repeat orders worth {v} on average"),
    "btyd_expected_avg_spend": ("expected order value {v}, below the typical {t}", "high expected order value ({v}, typical {t})",
                                "expected order value {v}"),
    "total_spend": ("spent {v} in total, below the typical {t}", "high total spend ({v}, typical {t})", "spent {v} in total"),
    "net_spend": ("spent {v} in total after returns, below the typical {t}",
                  "high total spend after returns ({v}, typical {t})", "spent {v} in total after returns"),
    "spend_per_year": ("spends {v} a year, below the typical {t}", "high yearly spend ({v} a year, typical {t})",
                       "spends {v} a year"),
    "btyd_value": ("expected future spend {v}, below the typical {t}", "high expected future spend ({v}, typical {t})",
                   "expected future spend {v}"),
}
_EVENT_NOUNS = {"nps": ("NPS answer", "NPS answers"), "csat": ("CSAT answer", "CSAT answers")}


def _event_noun(kind: str) -> tuple[str, str]:
    if kind in _EVENT_NOUNS:
        return _EVENT_NOUNS[kind]
    one = kind.replace("_", " ")
    return one, _plural(one)


class _Typical(dict):
    """Typical (median) value per feature: given ones first, else the median of ``frame``."""

    def __init__(self, given, frame: pd.DataFrame):
        super().__init__({k: float(v) for k, v in dict(given or {}).items() if v is not None and np.isfinite(v)})
        self.frame = frame

    def __missing__(self, col: str) -> float:
        x = _num(self.frame, col)
        v = float(np.nanmedian(x)) if np.isfinite(x).any() else float("nan")
        self[col] = v
        return v


def _days_ago(d: np.ndarray, what: str) -> np.ndarray:
    """"last purchase today", "... yesterday", "... 5 days ago"."""
    r = np.round(d)
    return _sel(r <= 0, f"last {what} today", _sel(r == 1, f"last {what} yesterday", f"last {what} " + _counted(r, "day") + " ago"))


def _recency(f: pd.DataFrame) -> np.ndarray:
    """"no purchase for 210 days, usually buys every 45 days", "last purchase yesterday (bought on
    a single day so far)"; without ``recency_days``, BG/NBD's P(no purchase) in words."""
    d = np.round(_num(f, "recency_days"))
    gap = np.round(_num(f, "ipt_mean_days"))
    head = _sel(d <= 0, "last purchase today", _sel(d == 1, "last purchase yesterday", "no purchase for " + _counted(d, "day")))
    usual = _sel(gap <= 1, ", usually buys every day", ", usually buys every " + _counted(gap, "day"))
    text = head + _sel(np.isfinite(gap), usual, " (bought on a single day so far)")
    p0 = _num(f, "btyd_p_no_purchase")
    fallback = _sel(np.isfinite(p0), "the purchase model expects no purchase soon (" + _pcts(p0) + " chance of none in the churn horizon)",
                    "time since the last purchase unknown")
    return _sel(np.isfinite(d), text, fallback)


def _phrase(feature: str, f: pd.DataFrame, typical=None, trend_days: int = 90) -> pd.Series:
    """The sentence a marketer reads about ``feature`` for each customer (row of ``f``): plain
    words, units (days, months, currency amounts of the log), singular/plural counts, amounts
    compared with the typical (median) customer's ``typical[feature]`` (default: the median of
    ``f``). A family name ("recency", "frequency", "spend", "returns", "tenure") stands for its
    plainest feature. ``trend_days``: the window of ``purchase_trend`` / ``spend_trend``."""
    feature = _FAMILY_FEATURE.get(feature, feature)
    typ = typical if isinstance(typical, _Typical) else _Typical(typical, f)
    fam = _family(feature)
    x = _num(f, feature)

    def out(a) -> pd.Series:
        return pd.Series(np.asarray(a, dtype=object), index=f.index, dtype=object)

    if feature in f.columns and not pd.api.types.is_numeric_dtype(f[feature].dtype) or (
        feature in f.columns and pd.api.types.is_bool_dtype(f[feature].dtype)
    ):
        v = f[feature]
        if pd.api.types.is_bool_dtype(v.dtype):
            text = v.map({True: "yes", False: "no"})
        else:
            text = v.astype(object).where(v.notna(), "unknown").astype(str)
        return out(feature.replace("_", " ") + ": " + text.to_numpy(dtype=object))

    m = _WINDOW.match(feature)
    if m:  # recent activity; an empty window (recency >= window) reads as the recency fact it is
        w = int(m.group(2))
        t = typ[feature]
        if m.group(1) == "n_purchases":
            text = _sel((x < t) & (t > 0), "only ", "") + _counted(x, "purchase") + f" in the last {w} days"
            text = _sel(x == 0, f"no purchase in the last {w} days", text)
        else:
            v = _amounts(x)
            text = "spent " + v + f" in the last {w} days"
            if np.isfinite(t) and t > 0:
                text = text + _sel(x < t, f", below the typical {_amount(t)}", _sel(x > t, f", above the typical {_amount(t)}", ""))
            text = _sel(x < 0, f"returned more than bought in the last {w} days (net " + v + ")",
                        _sel(x == 0, f"no spend in the last {w} days", text))
        return out(_sel((x == 0) & (_num(f, "recency_days") >= w), _recency(f), text))

    if fam == "recency":
        return out(_recency(f))


    if fam == "frequency":
        k = _num(f, "n_purchases")
        ten = _num(f, "tenure_days")
        if not np.isfinite(k).any():
            return _generic(feature, f, typ)
        ppy = _num(f, "purchases_per_year") if "purchases_per_year" in f.columns else k / np.maximum(ten, 1.0) * 365.25
        text = _counted(k, "purchase") + " in " + _each(ten, _span, 1)
        return out(_sel(ppy < typ["purchases_per_year"], "only " + text, text))

    if fam == "spend":
        net = _num(f, "net_spend")
        if feature not in _SPEND_TEXT or not np.isfinite(x).any():
            return _generic(feature, f, typ)
        low, high, plain = _SPEND_TEXT[feature]
        t = typ[feature]
        v = _amounts(x)
        if np.isfinite(t):
            ts = _amount(t)
            text = _sel(x < t, _fill(low, v, t=ts), _sel(x > t, _fill(high, v, t=ts), _fill(plain, v) + f" (typical {ts})"))
        else:
            text = _fill(plain, v)
        return out(_sel(net < 0, "returned more than bought (net " + _amounts(net) + ")", text))

    if fam == "returns":
        k = _num(f, "n_returns")
        amt = _num(f, "return_amount")
        text = _counted(k, "return") + _sel(amt > 0, " worth " + _amounts(amt), "")
        return out(_sel(~(k > 0), _sel(amt > 0, "returned goods worth " + _amounts(amt), "no returns"), text))

    if fam == "tenure":
        col = "tenure_days" if "tenure_days" in f.columns else feature  # T: the same days, BTYD's name
        ten, t = _num(f, col), typ[col]
        spans = _each(ten, _span, 1)
        typical_text = f" (typical {_span(t)})" if np.isfinite(t) else ""
        return out(_sel(ten < t, "customer for only " + spans + typical_text, "customer for " + spans + typical_text))

    if feature in {"purchase_trend", "spend_trend"}:
        W = int(trend_days)
        if feature == "purchase_trend":
            less, more, same = "fewer purchases", "more purchases", f"as many purchases in the last {W} days as in the {W} days before"
            none = _num(f, f"n_purchases_{W}d") == 0
            none_text = f"no purchase in the last {2 * W} days"
        else:
            less, more, same = "spent less", "spent more", f"spent the same in the last {W} days as in the {W} days before"
            none = _num(f, f"spend_{W}d") == 0
            none_text = f"no spend in the last {2 * W} days"
        tail = f" in the last {W} days than in the {W} days before"
        return out(_sel(x < 0, less + tail, _sel(x > 0, more + tail, _sel(none, none_text, same))))

    if fam.startswith("event:"):
        kind = fam[len("event:"):]
        one, many = _event_noun(kind)
        m = _EVENT.match(feature)
        if m.group("n"):
            when = " so far" if m.group("w") == "total" else f" in the last {m.group('w')[:-1]} days"
            return out(_sel(x > 0, _counted(x, one, many) + when, f"no {many}{when}" if kind in _EVENT_NOUNS else f"no {one}{when}"))
        if m.group("d"):
            return out(_sel(np.isfinite(x), _days_ago(x, one), f"no {one} recorded"))
        t = typ[feature]
        v = _each(x, _number)
        typ_text = f" (typical {_number(t)})" if np.isfinite(t) else ""
        return out(_sel(np.isfinite(x), f"last {one} " + v + _sel(x != t, typ_text, ""), f"no {one} yet"))

    return _generic(feature, f, typ)


def _generic(feature: str, f: pd.DataFrame, typ) -> pd.Series:
    """ "<feature in words> <value> (typical <median>)" for a feature with no sentence of its own."""
    x = _num(f, feature)
    label = feature.replace("_", " ")
    if feature not in f.columns:
        return pd.Series(np.full(len(f), label, dtype=object), index=f.index, dtype=object)
    t = typ[feature]
    text = label + " " + _each(x, _number) + (f" (typical {_number(t)})" if np.isfinite(t) else "")
    return pd.Series(_sel(np.isfinite(x), text, label + " unknown"), index=f.index, dtype=object)


def reason_codes(
    contributions: pd.DataFrame,
    features: pd.DataFrame,
    k: int = 3,
    *,
    typical=None,
    low_risk: float = LOW_RISK,
    above_typical_only: bool = True,
    trend_days: int = 90,
) -> pd.Series:
    """Up to ``k`` drivers that raise each customer's churn risk, strongest first, as plain
    sentences joined by "; " (one sentence per fact: recency in days, as a ratio and BG/NBD's
    view of it are one fact).

    ``contributions``: per-customer feature contributions to the log-odds of churn, best those
    of :meth:`churnml.churn.ChurnModel.shipped_contributions`, whose ``base`` column is the
    reference (typical) customer's log-odds and whose rows add up to the shipped churn
    probability's log-odds. Only positive contributions are drivers (they raise the risk above
    the reference's). With a ``base`` column, a customer whose churn probability is below
    ``low_risk`` reads "low risk: churn probability 12%", and (``above_typical_only``) one whose
    risk is not above the reference's reads "no risk driver: churn probability 45%, below the
    typical 52%"; neither gets drivers. With ``above_typical_only=False`` the latter get the
    features that raise their risk even though others more than offset them. (Raw LightGBM
    contributions with a ``bias`` column are read as before, without these checks.)

    ``typical``: typical (median) value per feature, e.g. ``ChurnModel.typical_``, that amounts
    are compared with (missing ones: the median of ``features``); ``trend_days``: the window of the
    trend features (``features.trend_window_days``). Vectorised: each sentence is built once per
    feature for the customers whose driver it is.
    """
    base = contributions["base"].to_numpy(dtype=float) if "base" in contributions.columns else None
    c = contributions.drop(columns=[x for x in ("bias", "base") if x in contributions.columns])
    names = list(c.columns)
    families = sorted({_family(n) for n in names})
    fam_of = np.array([families.index(_family(n)) for n in names], dtype=int)
    vals = c.to_numpy(dtype=float)
    n = len(c)
    if base is not None:
        log_odds = vals.sum(axis=1) + base
        p, p_ref = expit(log_odds), expit(base)
        low = p < low_risk
        at_risk = ~low & ((log_odds > base) | (not above_typical_only))
    else:
        at_risk = np.ones(n, dtype=bool)
    m = min(3 * k, vals.shape[1])
    order = np.argsort(-vals, axis=1, kind="stable")[:, :m]
    fam = fam_of[order]
    valid = (np.take_along_axis(vals, order, axis=1) > 0) & at_risk[:, None]
    for j in range(1, m):  # a fact already named by a stronger driver is not repeated
        valid[:, j] &= ~np.any((fam[:, :j] == fam[:, j : j + 1]) & valid[:, :j], axis=1)
    rank = np.cumsum(valid, axis=1)
    helpers = {"recency_days", "ipt_mean_days", "n_purchases", "tenure_days", "purchases_per_year", "net_spend", "n_returns",
               "return_amount", "btyd_p_no_purchase", f"n_purchases_{int(trend_days)}d", f"spend_{int(trend_days)}d"}
    feats = features[[x for x in features.columns if x in helpers or x in c.columns]].reindex(c.index)
    typ = _Typical(typical, feats)
    import pyarrow as pa
    import pyarrow.compute as pc

    rows_all = np.arange(n)
    slots = []
    for slot in range(1, k + 1):
        pick = valid & (rank == slot)
        has = pick.any(axis=1)
        col = np.where(has, pick.argmax(axis=1), 0)
        chosen = np.where(has, order[rows_all, col] if m else -1, -1)
        text = np.full(n, None, dtype=object)
        for fi in np.unique(chosen[chosen >= 0]):
            rows = np.flatnonzero(chosen == fi)
            text[rows] = _phrase(names[fi], feats.iloc[rows], typ, trend_days).to_numpy(dtype=object)
        slots.append(pa.array(text, type=pa.large_string()))
    # "first; second; third" in one Arrow pass (not per customer in Python); a slot is filled only
    # when the one before is, so empty slots are trailing "; " separators, removed
    if slots:
        sep = pa.scalar("; ", pa.large_string())
        joined = pc.binary_join_element_wise(*slots, sep, null_handling="replace", null_replacement="")
        joined = pc.replace_substring_regex(joined, pattern=r"(; )+$", replacement="")
        out = np.asarray(joined.to_numpy(zero_copy_only=False), dtype=object)
    else:
        out = np.full(n, "", dtype=object)
    out[out == ""] = "no risk driver"
    if base is not None:
        pcts, refs = _pcts(p), _pcts(p_ref)
        out = np.where(low, "low risk: churn probability " + pcts, out)
        below = _sel(pcts == refs, ", about the typical ", ", below the typical ")
        out = np.where(~low & ~at_risk, "no risk driver: churn probability " + pcts + below + refs, out)
    return pd.Series(out, index=c.index, name="reasons", dtype=object)


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
