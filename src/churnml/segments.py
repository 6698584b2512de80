"""Risk x value segments, reason codes and the KPIs the business tracks."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
from scipy.special import expit

from churnml.config import CampaignConfig, SegmentsConfig, TierConfig
from churnml.phrasing import ago as _ago
from churnml.phrasing import amount as _amount
from churnml.phrasing import amounts as _amounts
from churnml.phrasing import counted as _counted
from churnml.phrasing import each as _each
from churnml.phrasing import event_noun as _event_noun
from churnml.phrasing import integer as _int
from churnml.phrasing import number as _number
from churnml.phrasing import pcts as _pcts
from churnml.phrasing import select as _sel
from churnml.phrasing import span as _span

__all__ = [
    "GENERIC_TEMPLATES",
    "LOW_RISK",
    "MATERIAL_SHARE",
    "NEAR_TYPICAL_POINTS",
    "REASON_TEMPLATES",
    "REASON_TEMPLATES_NEVER_WRITTEN",
    "assign_segments",
    "kpis",
    "low_risk_cut",
    "materially_below",
    "parse_ago",
    "parse_count",
    "parse_pct",
    "parse_reason",
    "parse_span_days",
    "reason_codes",
    "reason_column",
    "tiers",
]


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


MATERIAL_SHARE = 0.10
"""Share of the typical value by which a customer must be below it for a "below the typical" /
"only ... (typical ...)" sentence (tenure, purchases, spend, recent spend, an event's last value)
to be written: a smaller difference (28 days against 29) is no risk driver worth naming. Checked
on the values and on the numbers as shown (the audit recomputes it from the sentence)."""

NEAR_TYPICAL_POINTS = 5
"""Percentage points within which a customer with no driver to name reads "about as high as the
typical customer's" churn probability (else "below" / "above" it)."""


def materially_below(v, typical) -> np.ndarray:
    """Whether each ``v`` is below ``typical`` by at least :data:`MATERIAL_SHARE` of its size
    (``v <= typical - MATERIAL_SHARE * |typical|``, ``v < typical``; NaN: False)."""
    v, t = np.asarray(v, dtype=float), np.asarray(typical, dtype=float)
    with np.errstate(invalid="ignore"):
        return (v < t) & (v <= t - MATERIAL_SHARE * np.abs(t) + 1e-9 * np.maximum(np.abs(t), 1.0))


def _shown(texts) -> np.ndarray:
    """The numbers of shown texts ("1,234" -> 1234.0; "unknown" -> NaN)."""
    out = []
    for s in np.asarray(texts, dtype=object).ravel():
        try:
            out.append(float(str(s).replace(",", "")))
        except ValueError:
            out.append(np.nan)
    return np.array(out, dtype=float)


def no_driver_relation(p_pct: float, typical_pct: float) -> str:
    """ "about as high as" (within :data:`NEAR_TYPICAL_POINTS` points), "below" or "above": how a
    shown churn probability (0-1) compares with the typical customer's."""
    d = 100 * (p_pct - typical_pct)
    return "about as high as" if abs(d) <= NEAR_TYPICAL_POINTS + 1e-9 else "below" if d < 0 else "above"


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


def _fill(template: str, v: np.ndarray, **scalars: str) -> np.ndarray:
    """``template`` with ``{v}`` from the per-row strings ``v`` and other fields from ``scalars``."""
    pre, _, post = template.format(v="\0", **scalars).partition("\0")
    return pre + v + post


# ---- reason templates: one source of truth for the phrasing (here) and the audit's parser
# (churnml.audit.check_reasons). A template's fields are "{name:type}"; each type has the regex of
# the text the phrasing writes for it. "A purchase" is a day with at least one order everywhere
# (the unit of ``frequency`` + 1 and of the gaps ``ipt_mean_days``); "an order" is one order.

_FIELD_RE = {
    "days": r"1 day|[\d,]+ days",
    "purchases": r"1 purchase|[\d,]+ purchases",
    "returns": r"1 return|[\d,]+ returns",
    "every": r"day|[\d,]+ days",
    "relation": r"about as high as|below|above",
    "span": r"1 day|[\d,]+ days|\d+ months|\d+(?:\.\d)? years",
    "amount": r"-?[\d,]+(?:\.\d+)?",
    "number": r"-?[\d,]*\.?\d+(?:e[+-]?\d+)?",
    "pct": r"under 1%|over 99%|\d+%",
    "int": r"[\d,]+",
    "ago": r"today|yesterday|[\d,]+ days? ago",
    "noun": r"(?!purchases?\b)[A-Za-z][A-Za-z ]*?",
    # a feature's name in words (its "_" as spaces, case as in the column: "Age", "no show count")
    "label": r"[^\W_][\w .&'/+-]*?",
    "text": r".+?",
    "any": r".*?",
}

REASON_TEMPLATES: dict[str, str] = {
    # what the phrasing writes, each only when it is true and raises this customer's risk
    "recency_overdue": "no purchase for {recency:days}, usually buys every {gap:every}",
    "recency_pair": "no purchase for {recency:days}, after 2 purchases {gap:days} apart",
    "recency_single": "no purchase for {recency:days} after a single purchase (typical {typical:days})",
    "recency_model": "the purchase model expects no purchase soon ({p:pct} chance of none in the churn horizon)",
    "frequency_low": "only {k:purchases} in {tenure:span} (typical {typical:number})",
    "tenure_short": "customer for only {tenure:span} (typical {typical:span})",
    "spend_negative": "returned more than bought (net {v:amount})",
    "spend_low:avg_order_value": "orders worth {v:amount} on average, below the typical {typical:amount}",
    "spend_low:monetary_value": "repeat purchases worth {v:amount} on average, below the typical {typical:amount}",
    "spend_low:btyd_expected_avg_spend": "expected spend per purchase {v:amount}, below the typical {typical:amount}",
    "spend_low:total_spend": "spent {v:amount} in total, below the typical {typical:amount}",
    "spend_low:net_spend": "spent {v:amount} in total after returns, below the typical {typical:amount}",
    "spend_low:spend_per_year": "spends {v:amount} a year, below the typical {typical:amount}",
    "spend_low:btyd_value": "expected future spend {v:amount}, below the typical {typical:amount}",
    "window_one": "only {k:purchases} in the last {w:int} days",
    "window_spend_low": "spent {v:amount} in the last {w:int} days, below the typical {typical:amount}",
    "window_spend_negative": "returned more than bought in the last {w:int} days (net {v:amount})",
    "window_spend_zero": "bought and returned as much in the last {w:int} days (net 0)",
    "trend_stopped": "no purchase in the last {w:int} days, after buying in the {w2:int} days before",
    "trend_spend_down": "spent less in the last {w:int} days than in the {w2:int} days before",
    "returns_worth": "{k:returns} worth {v:amount}",
    "returns": "{k:returns}",
    "returned_worth": "returned goods worth {v:amount}",
    "event_window": "{k:int} {noun:noun} in the last {w:int} days",
    "event_total": "{k:int} {noun:noun} so far",
    "event_ago": "last {noun:noun} {ago:ago}",
    "event_value": "last {noun:noun} {v:number} (typical {typical:number})",
    # the whole reason of a customer at risk with no driver of their own to name
    "no_driver": "no single driver stands out: churn probability {p:pct}, {relation:relation} the typical customer's {typical:pct}",
}
"""Template name -> sentence template of every reason the phrasing writes."""

REASON_TEMPLATES_NEVER_WRITTEN: dict[str, str] = {
    # forms older versions wrote: recognised so that the audit says why they mislead
    "old_no_driver": "no risk driver: churn probability {p:pct}, {relation:text} the typical {typical:pct}",
    "old_recent": "last purchase {rest:text}",
    "old_single": "no purchase for {recency:days} (bought on a single day so far)",
    "old_frequency_only": "only {k:purchases} in {tenure:span}",
    "old_frequency": "{k:purchases} in {tenure:span}",
    "old_tenure": "customer for {tenure:span} (typical {typical:span})",
    "old_high": "high {what:text} ({rest:text})",
    "old_large": "large {what:text} ({rest:text})",
    "old_spend_low:btyd_expected_avg_spend": "expected order value {v:amount}, below the typical {typical:amount}",
    "old_spend_low:monetary_value": "repeat orders worth {v:amount} on average, below the typical {typical:amount}",
    "old_window_count": "{k:purchases} in the last {w:int} days",
    "old_window_none": "no purchase in the last {w:int} days",
    "old_window_spend": "spent {v:amount} in the last {w:int} days{rest:any}",
    "old_no_spend": "no spend in the last {w:int} days",
    "old_trend_up": "{what:text} in the last {w:int} days than in the {w2:int} days before",
    "old_trend_same": "{what:text} in the last {w:int} days as in the {w2:int} days before",
    "old_none": "no {what:text}",
    "old_plain_typical": "{what:text} (typical {typical:text})",  # tried after the generic forms
}
"""Forms the phrasing no longer writes (they were false or lowered risk): the audit flags them."""

GENERIC_TEMPLATES: dict[str, str] = {
    # features with no sentence of their own (tried last)
    "generic": "{label:label} {v:number} (typical {typical:number})",
    "generic_plain": "{label:label} {v:number}",
    "category": "{label:label}: {value:text}",
}


def _template_parts(template: str) -> list[tuple[str, str | None, str | None]]:
    import string

    return [(lit, name, spec) for lit, name, spec, _ in string.Formatter().parse(template)]


def _write(name: str, n: int, **fields) -> np.ndarray:
    """Template ``name`` filled with per-row string arrays (or one string) for ``n`` rows."""
    out = np.full(n, "", dtype=object)
    for lit, field, _ in _template_parts(REASON_TEMPLATES[name]):
        out = out + lit
        if field is not None:
            v = fields[field]
            out = out + (np.asarray(v, dtype=object) if not isinstance(v, str) else v)
    return out


def _regex(template: str, prefix: str) -> str:
    return "".join(re.escape(lit) + (f"(?P<{prefix}{f}>{_FIELD_RE[t]})" if f else "") for lit, f, t in _template_parts(template))


_ALL_TEMPLATES = {**REASON_TEMPLATES, **{k: v for k, v in REASON_TEMPLATES_NEVER_WRITTEN.items() if k != "old_plain_typical"},
                  **GENERIC_TEMPLATES, "old_plain_typical": REASON_TEMPLATES_NEVER_WRITTEN["old_plain_typical"]}
_NAMES = list(_ALL_TEMPLATES)
_PARSER = re.compile("|".join(f"(?P<T{i}>{_regex(t, f'F{i}_')})" for i, t in enumerate(_ALL_TEMPLATES.values())))


_GENERIC_PARSER = re.compile("|".join(f"(?P<T{i}>{_regex(t, f'F{i}_')})" for i, t in enumerate(GENERIC_TEMPLATES.values())))
_GENERIC_NAMES = list(GENERIC_TEMPLATES)
_OWN_SENTENCE = {"purchase_trend", "spend_trend", *_FAMILY_FEATURE}


def _match(parser: re.Pattern, names: list[str], sentence: str) -> tuple[str, dict[str, str]] | None:
    m = parser.fullmatch(sentence)
    if m is None:
        return None
    i = int(m.lastgroup[1:])
    pre = f"F{i}_"
    return names[i], {k[len(pre):]: v for k, v in m.groupdict().items() if k.startswith(pre) and v is not None}


def reason_column(label: str, columns) -> str | None:
    """The column of ``columns`` a generic sentence's ``label`` names: ``label`` with spaces as
    "_" ("no show count" -> ``no_show_count``, "Age" -> ``Age``), else a column whose name in
    words is ``label``; ``None`` when there is none."""
    cols = columns if isinstance(columns, (set, frozenset, dict)) else set(columns)
    c = label.replace(" ", "_")
    if c in cols:
        return c
    return next((x for x in cols if isinstance(x, str) and x.replace("_", " ") == label), None)


def _written_generically(feature: str) -> bool:
    """Whether :func:`_phrase` writes a numeric ``feature`` with the generic sentence (it has
    no sentence of its own: not recency, frequency, spend, returns, tenure, a window, a trend or
    an event)."""
    return feature not in _OWN_SENTENCE and _family(feature) == feature


def parse_reason(sentence: str, columns=None) -> tuple[str, dict[str, str]] | None:
    """The template name and field texts of one reason sentence (``None``: not a known form).

    ``columns``: the names of the table's columns (e.g. ``scores.columns``), to resolve the
    sentences of features with no sentence of their own: "Age 34 (typical 40)", "no show count 3
    (typical 1)", "Country: United Kingdom" are read as the generic forms (``generic``,
    ``generic_plain``, ``category``) when their label names a column that the phrasing writes
    that way, never as a form the phrasing no longer writes ("no ...", "high ...", "... (typical
    ...)"). Without ``columns`` the phrasing's own and the old forms are tried first."""
    if columns is not None:
        g = _match(_GENERIC_PARSER, _GENERIC_NAMES, sentence)
        if g is not None:
            c = reason_column(g[1]["label"], columns)
            if c is not None and (g[0] == "category" or _written_generically(c)):
                return g
    return _match(_PARSER, _NAMES, sentence)


def parse_span_days(text: str) -> float:
    """Days of a :func:`_span` text ("5 days", "7 months", "2.2 years")."""
    num = float(text.split()[0].replace(",", ""))
    return num * (30.44 if "month" in text else 365.25 if "year" in text else 1.0)


def parse_count(text: str) -> float:
    """The number of "3 purchases", "1 day", "day" (1), "1,204"."""
    head = text.split()[0]
    return 1.0 if head == "day" else float(head.replace(",", ""))


def parse_pct(text: str) -> float:
    """A probability from "83%", "under 1%" (0.005), "over 99%" (0.995)."""
    return 0.005 if text.startswith("under") else 0.995 if text.startswith("over") else float(text[:-1]) / 100


def parse_ago(text: str) -> float:
    return 0.0 if text == "today" else 1.0 if text == "yesterday" else parse_count(text)


def _number1(x: np.ndarray) -> np.ndarray:
    """A count of no fixed unit: one decimal under 10, whole from 10 on ("1.3", "5", "12")."""
    x = np.asarray(x, dtype=float)
    return _each(np.where(np.abs(x) < 10, np.round(x, 1), np.round(x)), _number)


_SPEND_LOW = {k.split(":", 1)[1] for k in REASON_TEMPLATES if k.startswith("spend_low:")}
class _Typical(dict):
    """Typical (median) value per feature: given ones first, else the median of ``frame``."""

    def __init__(self, given, frame: pd.DataFrame):
        super().__init__({k: float(v) for k, v in dict(given or {}).items() if v is not None and np.isfinite(v)})
        self.frame = frame

    def __missing__(self, col: str) -> float:
        if col == "purchase_days_per_year" and col not in self.frame.columns:
            fr, ten = dict.get(self, "frequency"), dict.get(self, "tenure_days")
            if fr is not None and ten is not None:  # a model saved without it: from its typical customer, not the chunk's
                self[col] = (fr + 1) / max(ten, 1.0) * 365.25
                return self[col]
            x = _purchase_rate(self.frame)
        else:
            x = _num(self.frame, col)
        v = float(np.nanmedian(x)) if np.isfinite(x).any() else float("nan")
        self[col] = v
        return v


def _purchase_rate(f: pd.DataFrame) -> np.ndarray:
    """Purchases (days with an order) per year of tenure: (``frequency`` + 1) / max(tenure, 1 day)."""
    return (_num(f, "frequency") + 1) / np.maximum(_num(f, "tenure_days"), 1.0) * 365.25


def _none(n: int) -> np.ndarray:
    return np.full(n, None, dtype=object)


def _recency(f: pd.DataFrame, typ) -> np.ndarray:
    """The recency fact, only when it raises risk: days since the last purchase above the
    customer's own usual gap between purchases ("no purchase for 210 days, usually buys every 45
    days", from 2 or more gaps, i.e. ``frequency`` >= 2; after exactly 2 purchase days "no
    purchase for 272 days, after 2 purchases 1 day apart"), or, after a single purchase, above the
    typical customer's days since the last purchase; without ``recency_days``, BG/NBD's P(no
    purchase in the churn horizon) when over 50%."""
    n = len(f)
    d = np.round(_num(f, "recency_days"))
    gap = np.round(_num(f, "ipt_mean_days"))
    fr = _num(f, "frequency")
    t = np.round(typ["recency_days"]) if np.isfinite(typ["recency_days"]) else np.nan
    every = _sel(gap <= 1, "day", _counted(gap, "day"))
    days = _counted(d, "day")
    out = _none(n)
    over = np.isfinite(d) & np.isfinite(gap) & (d > np.maximum(gap, 1))
    usual, pair = over & (fr >= 2), over & (fr == 1)
    out[usual] = _write("recency_overdue", int(usual.sum()), recency=days[usual], gap=every[usual])
    out[pair] = _write("recency_pair", int(pair.sum()), recency=days[pair], gap=_counted(np.maximum(gap[pair], 1), "day"))
    if np.isfinite(t):
        single = np.isfinite(d) & ~np.isfinite(gap) & (d > t)
        out[single] = _write("recency_single", int(single.sum()), recency=days[single], typical=_counted(np.array([t]), "day")[0])
    p0 = _num(f, "btyd_p_no_purchase")
    pct = _pcts(p0)
    model = ~np.isfinite(d) & np.isfinite(p0) & (np.round(100 * p0) > 50)
    out[model] = _write("recency_model", int(model.sum()), p=pct[model])
    return out


def _tenure_spans(ten: np.ndarray, t: float) -> tuple[np.ndarray, np.ndarray]:
    """Each tenure and the typical one (per row) as :func:`_span` texts, both in days when either
    is under 90 days ("38 days (typical 122 days)", "58 days (typical 62 days)", not "38 days
    (typical 4 months)"), both as :func:`_span` otherwise."""
    days = np.asarray(ten, dtype=float) < 90
    in_days = days | (t < 90)
    t_days = _counted(np.array([max(round(t), 1)]), "day")[0]
    spans = _sel(in_days, _counted(np.maximum(np.round(ten), 1), "day"), _each(ten, _span, 1))
    return spans, _sel(in_days, t_days, _span(t))


def _phrase(feature: str, f: pd.DataFrame, typical=None, trend_days: int = 90) -> pd.Series:
    """The sentence a marketer reads about ``feature`` for each customer (row of ``f``), or
    ``None`` where the fact it would state is not true or does not raise this customer's risk
    (the gate of each sentence kind: see :data:`REASON_TEMPLATES`). Plain words, units (days,
    months, currency amounts of the log), singular/plural counts; a purchase is a day with at
    least one order; amounts are compared with the typical (median) customer's
    ``typical[feature]`` (default: the median of ``f``). A family name ("recency", "frequency",
    "spend", "returns", "tenure") stands for its plainest feature. ``trend_days``: the window of
    ``purchase_trend`` / ``spend_trend``."""
    feature = _FAMILY_FEATURE.get(feature, feature)
    typ = typical if isinstance(typical, _Typical) else _Typical(typical, f)
    fam = _family(feature)
    x = _num(f, feature)
    n = len(f)

    def out(a) -> pd.Series:
        return pd.Series(np.asarray(a, dtype=object), index=f.index, dtype=object)

    label = feature.replace("_", " ")
    if feature in f.columns and (not pd.api.types.is_numeric_dtype(f[feature].dtype) or pd.api.types.is_bool_dtype(f[feature].dtype)):
        v = f[feature]
        if pd.api.types.is_bool_dtype(v.dtype):
            text = v.map({True: "yes", False: "no"}).to_numpy(dtype=object)
        else:
            text = v.astype(object).where(v.notna(), None).to_numpy(dtype=object)
        res = _none(n)
        ok = pd.notna(text) & (v.notna().to_numpy())
        res[ok] = [f"{label}: {s}" for s in text[ok]]
        return out(res)

    res = _none(n)
    m = _WINDOW.match(feature)
    if m:  # recent activity; an empty window (recency >= window) is the recency fact it is
        w = int(m.group(2))
        t = typ[feature]
        rec = _num(f, "recency_days")
        empty = (x == 0) & (rec >= w)
        if m.group(1) == "n_purchases":
            # counted in orders: stated only where orders and purchases (days) agree, i.e. 1
            one = (x == 1) & np.isfinite(t) & (t > 1)
            res[one] = _write("window_one", int(one.sum()), k="1 purchase", w=str(w))
        else:
            v = _amounts(x)
            neg, zero = x < 0, (x == 0) & (rec < w)
            low = (x > 0) & np.isfinite(t) & materially_below(x, t) & materially_below(_shown(v), _shown([_amount(t)])[0])
            res[neg] = _write("window_spend_negative", int(neg.sum()), w=str(w), v=v[neg])
            res[zero] = _write("window_spend_zero", int(zero.sum()), w=str(w))
            res[low] = _write("window_spend_low", int(low.sum()), w=str(w), v=v[low], typical=_amount(t))
        if empty.any():
            res[empty] = _recency(f.loc[empty], typ)
        return out(res)

    if fam == "recency":
        return out(_recency(f, typ))

    if fam == "frequency":
        if "frequency" not in f.columns:
            return out(res)
        k = _num(f, "frequency") + 1
        ten = np.maximum(_num(f, "tenure_days"), 1.0)
        t_rate = typ["purchase_days_per_year"]
        if not np.isfinite(t_rate):
            return out(res)
        t_text = _number1(t_rate * ten / 365.25)
        t_shown = np.array([float(s.replace(",", "")) if s != "unknown" else np.nan for s in t_text])
        low = np.isfinite(k) & (k >= 1) & materially_below(k, t_shown) & materially_below(k, t_rate * ten / 365.25)
        res[low] = _write("frequency_low", int(low.sum()), k=_counted(k[low], "purchase"), tenure=_each(ten[low], _span, 1),
                          typical=t_text[low])
        return out(res)

    if fam == "spend":
        net = _num(f, "net_spend")
        neg = net < 0
        res[neg] = _write("spend_negative", int(neg.sum()), v=_amounts(net[neg]))
        t = typ[feature]
        if feature in _SPEND_LOW and np.isfinite(t):
            v = _amounts(x)
            low = ~neg & np.isfinite(x) & materially_below(x, t) & materially_below(_shown(v), _shown([_amount(t)])[0])
            if feature == "monetary_value":  # no repeat purchase, no repeat-purchase spend
                low &= _num(f, "frequency") >= 1
            name = "spend_low:" + feature
            if feature == "net_spend":  # "after returns" only for customers with returns
                k_ret, amt_ret = _num(f, "n_returns"), _num(f, "return_amount")
                known = "n_returns" in f.columns or "return_amount" in f.columns
                no_returns = known & ~(k_ret > 0) & ~((amt_ret != 0) & np.isfinite(amt_ret))
                plain = low & no_returns
                res[plain] = _write("spend_low:total_spend", int(plain.sum()), v=v[plain], typical=_amount(t))
                low &= ~no_returns
            res[low] = _write(name, int(low.sum()), v=v[low], typical=_amount(t))
        return out(res)

    if fam == "returns":
        k = _num(f, "n_returns")
        amt = _num(f, "return_amount")
        worth, count, only_amt = (k > 0) & (amt > 0), (k > 0) & ~(amt > 0), ~(k > 0) & (amt > 0)
        res[worth] = _write("returns_worth", int(worth.sum()), k=_counted(k[worth], "return"), v=_amounts(amt[worth]))
        res[count] = _write("returns", int(count.sum()), k=_counted(k[count], "return"))
        res[only_amt] = _write("returned_worth", int(only_amt.sum()), v=_amounts(amt[only_amt]))
        return out(res)

    if fam == "tenure":
        col = "tenure_days" if "tenure_days" in f.columns else feature  # T: the same days, BTYD's name
        ten, t = _num(f, col), typ[col]
        if np.isfinite(t):
            spans, typical_span = _tenure_spans(ten, t)
            shown = materially_below([parse_span_days(a) for a in spans], [parse_span_days(b) for b in typical_span])
            short = np.isfinite(ten) & materially_below(ten, t) & shown
            res[short] = _write("tenure_short", int(short.sum()), tenure=spans[short], typical=typical_span[short])
        return out(res)

    if feature in {"purchase_trend", "spend_trend"}:
        W = str(int(trend_days))
        if feature == "purchase_trend":  # counted in orders: stated only where it is 0 purchases after some
            stopped = (x <= -1 + 1e-12) & ~(_num(f, f"n_purchases_{W}d") > 0)
            res[stopped] = _write("trend_stopped", int(stopped.sum()), w=W, w2=W)
        else:
            down = x < 0
            res[down] = _write("trend_spend_down", int(down.sum()), w=W, w2=W)
        return out(res)

    if fam.startswith("event:"):
        kind = fam[len("event:"):]
        one, many = _event_noun(kind)
        m = _EVENT.match(feature)
        t = typ[feature]
        if m.group("n"):
            some = (x > 0) & (~np.isfinite(t) | (x > t))
            noun = _sel(np.round(x) == 1, one, many)
            if m.group("w") == "total":
                res[some] = _write("event_total", int(some.sum()), k=_each(x[some], _int), noun=noun[some])
            else:
                res[some] = _write("event_window", int(some.sum()), k=_each(x[some], _int), noun=noun[some], w=m.group("w")[:-1])
        elif m.group("d"):
            seen = np.isfinite(x)
            res[seen] = _write("event_ago", int(seen.sum()), noun=one, ago=_ago(x[seen]))
        elif np.isfinite(t):
            v = _each(x, _number)
            low = np.isfinite(x) & materially_below(x, t) & materially_below(_shown(v), _shown([_number(t)])[0])
            res[low] = _write("event_value", int(low.sum()), noun=one, v=v[low], typical=_number(t))
        return out(res)

    return _generic(feature, f, typ)


def _generic(feature: str, f: pd.DataFrame, typ) -> pd.Series:
    """ "<feature in words> <value> (typical <median>)" for a feature with no sentence of its own
    (its direction is the model's: the sentence states the value, not that it is high or low)."""
    x = _num(f, feature)
    label = feature.replace("_", " ")
    res = _none(len(f))
    if feature in f.columns:
        t = typ[feature]
        ok = np.isfinite(x)
        text = label + " " + _each(x[ok], _number)
        res[ok] = text + (f" (typical {_number(t)})" if np.isfinite(t) else "")
    return pd.Series(res, index=f.index, dtype=object)


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
    the reference's), and a driver is named only when the fact its sentence states is true of
    the customer and raises risk (e.g. recency above the customer's usual gap, fewer purchases
    than typical for the tenure, spend below typical; never a high spend or a long tenure: see
    :func:`_phrase`); a driver whose sentence does not hold gives its slot to the next one. A
    purchase is a day with at least one order in every sentence. With a ``base`` column, a
    customer whose churn probability is below ``low_risk`` reads "low risk: churn probability
    12%", and (``above_typical_only``) one whose risk is not above the reference's reads "no
    single driver stands out: churn probability 78%, about as high as the typical customer's 80%"
    (within :data:`NEAR_TYPICAL_POINTS` points; else "below" it); neither gets drivers. A customer
    left with no true driver reads "no single driver stands out: churn probability 60%, above the
    typical customer's 52%". With ``above_typical_only=False`` the customers below the reference get the features
    that raise their risk even though others more than offset them. (Raw LightGBM contributions
    with a ``bias`` column are read as before, without these checks.)

    ``typical``: typical (median) value per feature, e.g. ``ChurnModel.typical_``, that amounts
    are compared with (missing ones: the median of ``features``); ``trend_days``: the window of the
    trend features (``features.trend_window_days``). Vectorised: each sentence is built once per
    feature and rank for the customers whose candidate driver it is.
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
    m = vals.shape[1]
    order = np.argsort(-vals, axis=1, kind="stable")
    positive = (np.take_along_axis(vals, order, axis=1) > 0) & at_risk[:, None]
    left = positive[:, ::-1].cumsum(axis=1)[:, ::-1]  # positive drivers from rank j on
    helpers = {"recency_days", "ipt_mean_days", "n_purchases", "frequency", "tenure_days", "purchases_per_year", "net_spend",
               "n_returns", "return_amount", "btyd_p_no_purchase", f"n_purchases_{int(trend_days)}d", f"spend_{int(trend_days)}d"}
    feats = features[[x for x in features.columns if x in helpers or x in c.columns]].reindex(c.index)
    typ = _Typical(typical, feats)
    import pyarrow as pa
    import pyarrow.compute as pc

    slots = [np.full(n, None, dtype=object) for _ in range(k)]
    filled = np.zeros(n, dtype=int)
    used = np.zeros((n, len(families)), dtype=bool)
    rows_all = np.arange(n)
    for j in range(m):
        open_ = filled < k
        if not (open_ & (left[:, j] > 0)).any():
            break
        fi_j = order[:, j]
        cand = positive[:, j] & open_ & ~used[rows_all, fam_of[fi_j]]
        for fi in np.unique(fi_j[cand]):
            rows = np.flatnonzero(cand & (fi_j == fi))
            text = _phrase(names[fi], feats.iloc[rows], typ, trend_days).to_numpy(dtype=object)
            ok = pd.notna(text)
            rows, text = rows[ok], text[ok]
            for s in range(k):
                at = filled[rows] == s
                slots[s][rows[at]] = text[at]
            used[rows, fam_of[fi]] = True
            filled[rows] += 1
    # "first; second; third" in one Arrow pass (not per customer in Python); a slot is filled only
    # when the one before is, so empty slots are trailing "; " separators, removed
    if k:
        arrs = [pa.array(s, type=pa.large_string()) for s in slots]
        sep = pa.scalar("; ", pa.large_string())
        joined = pc.binary_join_element_wise(*arrs, sep, null_handling="replace", null_replacement="")
        joined = pc.replace_substring_regex(joined, pattern=r"(; )+$", replacement="")
        out = np.asarray(joined.to_numpy(zero_copy_only=False), dtype=object)
    else:
        out = np.full(n, "", dtype=object)
    empty = out == ""
    out[empty] = "no risk driver"
    if base is not None:
        pcts, refs = _pcts(p), _pcts(p_ref)
        pairs, inv = np.unique((pcts + "|" + refs).astype(str), return_inverse=True)  # few distinct pairs
        rel = np.array([no_driver_relation(*(parse_pct(x) for x in q.split("|"))) for q in pairs] + [""], dtype=object)[:-1][inv.ravel()]
        summary = "no single driver stands out: churn probability " + pcts + ", " + rel + " the typical customer's " + refs
        out = np.where(~low & (~at_risk | empty), summary, out)
        out = np.where(low, "low risk: churn probability " + pcts, out)
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
