"""The decisions audit: a machine check of the *meaning* of every output a marketer reads.

:mod:`churnml.sanity` asks whether numbers are finite and bounded; this module asks whether they
are true of the customer and whether acting on them pays:

``reasons``
    every reason sentence is recomputed from the customer's own features, is true, and names a
    driver that raises this customer's risk (e.g. "no purchase for N days, usually buys every M
    days" only when N > M).
``p_alive``
    P(alive) agrees with what the log shows: a purchase model that saw no dropout is flagged as
    degenerate, and then P(alive) is not shown as if it were informative.
``clv_history``
    CLV respects history: customers whose net past spend is <= 0 (or whose every order was
    returned) never rank above the median CLV, and no population floor is shared by everyone.
``actions``
    each recommended action has a positive expected net value (profit, on the stated margin and
    the catalogue's stated, assumed effects), and costly actions go to low-risk customers only
    when they still pay.
``churn_winner`` / ``value_winner``
    the shipped churn scorer is not significantly worse than any baseline of its own backtest
    (paired 95% interval), and the shipped value score is not worse than the spreadsheet answers
    (total past net spend, recent-window spend, spend rate).

Each check is a function ``check_<name>(scores, config, report) -> list[Finding]`` of the scores
table (``customers.parquet`` of ``churnml run`` / the output of ``churnml score``), the config and
(optionally) the run report (``run_report.json`` as a dict); an empty list means the check passed.
:func:`audit` runs them all. A finding's ``severity`` is ``"fail"`` (the output would mislead: the
job exits 3 where it would ship it), ``"warn"`` (shipped, said in the run report, MLflow and the
console) or ``"note"`` (the check cannot hold on this log, and the output says plainly why).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import numpy as np
import pandas as pd

from churnml.config import Config

__all__ = [
    "AUDIT_COLUMNS",
    "AuditResult",
    "CHECKS",
    "Finding",
    "audit",
    "check_actions",
    "check_churn_winner",
    "check_clv_history",
    "check_coherence",
    "check_p_alive",
    "check_reasons",
    "check_value_winner",
]

SEVERITIES = ("fail", "warn", "note")
AUDIT_COLUMNS = (
    "recency_days", "ipt_mean_days", "tenure_days", "n_purchases", "frequency", "purchases_per_year", "total_spend",
    "net_spend", "avg_order_value", "spend_per_year", "n_returns", "return_amount", "purchase_trend", "spend_trend",
    "n_purchases_30d", "spend_30d", "n_purchases_90d", "spend_90d", "n_purchases_180d", "spend_180d",
    "n_purchases_365d", "spend_365d", "btyd_p_no_purchase", "btyd_p_alive", "expected_avg_spend",
)
"""Feature columns the checks read besides the score columns: ``churnml score`` keeps them until
the audit has run (``churnml run``'s customers.parquet keeps every feature anyway)."""
N_EXAMPLES = 5


@dataclasses.dataclass(frozen=True)
class Finding:
    """One thing the audit found: which check, how bad, and a sentence naming the count and
    example customer ids."""

    check: str
    severity: str
    message: str

    def __post_init__(self) -> None:
        if self.severity not in SEVERITIES:
            raise ValueError(f"severity must be one of {SEVERITIES}, got {self.severity!r}")

    def __str__(self) -> str:
        return f"[{self.check}] {self.severity}: {self.message}"


@dataclasses.dataclass
class AuditResult:
    """Every finding of one audit, and each check's status (``pass``, ``fail``, ``warn``,
    ``note``: the worst finding of that check)."""

    findings: list[Finding]
    status: dict[str, str]

    @property
    def ok(self) -> bool:
        """No check failed (warnings and notes are allowed)."""
        return not any(f.severity == "fail" for f in self.findings)

    def of(self, severity: str) -> list[Finding]:
        return [f for f in self.findings if f.severity == severity]

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "status": dict(self.status), "findings": [dataclasses.asdict(f) for f in self.findings]}


def examples(ids, mask, order=None) -> str:
    """"e.g. a, b, c ..." for the first few ids where ``mask`` holds (by descending ``order``)."""
    ids = np.asarray(ids, dtype=object)
    idx = np.flatnonzero(np.asarray(mask, dtype=bool))
    if order is not None and idx.size:
        o = np.asarray(order, dtype=float)[idx]
        idx = idx[np.argsort(-np.nan_to_num(o, nan=-np.inf, posinf=np.inf), kind="stable")]
    shown = ", ".join(str(ids[i]) for i in idx[:N_EXAMPLES])
    return f"e.g. {shown}" + (" ..." if idx.size > N_EXAMPLES else "")


def customer_ids(scores: pd.DataFrame) -> np.ndarray:
    """The customer ids of a scores table (a ``customer_id`` column, else the index), as text."""
    if "customer_id" in scores.columns:
        return scores["customer_id"].astype(str).to_numpy(dtype=object)
    return scores.index.astype(str).to_numpy(dtype=object)


# --------------------------------------------------------------------------- checks


_OK, _FALSE, _LOWERS, _UNCHECKED = 0, 1, 2, 3
_REASON_SKIP = ("low risk: ",)
_NO_DRIVER_RAW = "no risk driver"  # raw LightGBM contributions without a reference: nothing to recompute


def _reason_codes_of(name: str, fields: list[dict], col, pop, columns=()) -> tuple[np.ndarray, list[str]]:
    """For the sentences of template ``name`` (their parsed ``fields``): a code per sentence (ok,
    false, lowers risk, unchecked) and the feature columns it needed. ``col(c)``: column ``c`` at
    the sentences' rows (``None`` when the table lacks it); ``pop(c)``: its population median;
    ``columns``: the table's column names (the columns generic sentences name)."""
    from churnml import phrasing as ph
    from churnml import segments as sg

    n = len(fields)
    code = np.full(n, _OK)
    need: list[str] = []

    def get(c):
        v = col(c)
        if v is None:
            need.append(c)
        return v

    def f(key, parse=None):
        vals = [d.get(key) for d in fields]
        return np.array([parse(v) if parse else v for v in vals], dtype=float if parse else object)

    def mark(false=None, lowers=None):
        nonlocal code
        if false is not None:
            code = np.where((code == _OK) & np.asarray(false, dtype=bool), _FALSE, code)
        if lowers is not None:
            code = np.where((code == _OK) & np.asarray(lowers, dtype=bool), _LOWERS, code)

    def same_text(x, texts, fmt):
        return np.asarray(fmt(np.asarray(x, dtype=float)), dtype=object) == texts

    def windowed(prefix):
        """Per sentence, the column ``{prefix}_{w}d`` at its row (NaN where missing)."""
        w = f("w", lambda s: float(s.replace(",", "")))
        out = np.full(n, np.nan)
        for wv in np.unique(w):
            v = get(f"{prefix}_{int(wv)}d")
            if v is not None:
                out[w == wv] = v[w == wv]
        return out

    def amount_of(key):
        return f(key, lambda s: float(s.replace(",", "")))

    def immaterial(v, typical):
        """A "below / only ... typical" comparison under MATERIAL_SHARE: no risk driver worth naming."""
        return ~sg.materially_below(v, typical)

    if name in ("recency_overdue", "recency_pair", "recency_single", "old_single"):
        rec, ipt = get("recency_days"), get("ipt_mean_days")
        fr = get("frequency") if name in ("recency_overdue", "recency_pair") else np.zeros(n)
        if rec is None or ipt is None or fr is None:
            return np.full(n, _UNCHECKED), need
        d = f("recency", sg.parse_count)
        mark(false=np.round(rec) != d)
        if name in ("recency_overdue", "recency_pair"):
            g = f("gap", sg.parse_count)
            # "usually buys every" needs 2 or more gaps; "after 2 purchases N days apart" exactly one
            mark(false=~np.isfinite(ipt) | (np.maximum(np.round(ipt), 1) != g) | ~((fr >= 2) if name == "recency_overdue" else (fr == 1)),
                 lowers=d <= g)
        else:
            mark(false=np.isfinite(ipt))
            ref = f("typical", sg.parse_count) if name == "recency_single" else np.full(n, pop("recency_days"))
            mark(lowers=~(d > ref))
    elif name == "recency_model":
        p0 = get("btyd_p_no_purchase")
        if p0 is None:
            return np.full(n, _UNCHECKED), need
        mark(false=~same_text(p0, f("p"), ph.pcts), lowers=~(f("p", sg.parse_pct) > 0.5))
    elif name in ("frequency_low", "old_frequency_only", "old_frequency"):
        fr, ten = get("frequency"), get("tenure_days")
        if fr is None or ten is None:
            return np.full(n, _UNCHECKED), need
        k = f("k", sg.parse_count)
        mark(false=(k != fr + 1) | ~same_text(np.maximum(ten, 1.0), f("tenure"), lambda x: ph.each(x, ph.span, 1)))
        if name == "frequency_low":
            mark(lowers=immaterial(k, amount_of("typical")))
        elif name == "old_frequency":
            mark(lowers=np.ones(n, bool))
    elif name in ("tenure_short", "old_tenure"):
        ten = get("tenure_days")
        if ten is None:
            return np.full(n, _UNCHECKED), need
        shown, typ_text = f("tenure"), f("typical")
        in_days = ph.counted(np.maximum(np.round(ten), 1), "day")
        as_span = np.asarray(ph.each(np.asarray(ten, dtype=float), ph.span, 1), dtype=object)
        typ_days = np.array([str(t).endswith(("day", "days")) for t in typ_text])
        typ_d = f("typical", sg.parse_span_days)
        # both in days when either is under 90 days, both as spans otherwise (no "38 days (typical 4 months)")
        want_days = (ten < 90) | (typ_d < 90) | typ_days
        mark(false=np.where(want_days, (in_days != shown) | ~typ_days, as_span != shown))
        mark(lowers=(name == "old_tenure") | immaterial(f("tenure", sg.parse_span_days), typ_d))
    elif name == "spend_negative" or name.startswith(("spend_low:", "old_spend_low:")):
        feat = "net_spend" if name == "spend_negative" else name.split(":", 1)[1]
        x, net = get(feat), col("net_spend")
        if x is None:
            return np.full(n, _UNCHECKED), need
        v = amount_of("v")
        k_ret, amt_ret = col("n_returns"), col("return_amount")
        has_returns = None
        if k_ret is not None or amt_ret is not None:
            has_returns = np.zeros(n, bool)
            if k_ret is not None:
                has_returns |= k_ret > 0
            if amt_ret is not None:
                has_returns |= np.isfinite(amt_ret) & (amt_ret != 0)
        ok_text = same_text(x, f("v"), ph.amounts)
        if feat == "total_spend" and net is not None and has_returns is not None:
            ok_text |= ~has_returns & same_text(net, f("v"), ph.amounts)  # a net spend without returns reads "in total"
        mark(false=~ok_text)
        if name == "spend_negative":
            mark(false=~(v < 0))
        else:
            if net is not None:
                mark(false=net < 0)  # such a customer reads "returned more than bought"
            if feat == "net_spend" and has_returns is not None:
                mark(false=~has_returns)  # "after returns" for a customer with none
            if feat == "monetary_value":
                fr = get("frequency")
                if fr is None:
                    return np.where(code == _OK, _UNCHECKED, code), need
                mark(false=~(fr >= 1))  # a single-purchase customer has no repeat purchases
            mark(lowers=immaterial(v, amount_of("typical")))
    elif name in ("window_one", "old_window_count", "old_window_none"):
        x = windowed("n_purchases")
        k = np.zeros(n) if name == "old_window_none" else f("k", sg.parse_count)
        mark(false=~(x == k))
        # a window count is in orders: it states purchases (days) only when it is 0 or 1
        mark(false=(name == "window_one") & (k != 1), lowers=np.full(n, name == "old_window_count"))
    elif name.startswith("window_spend") or name in ("old_window_spend", "old_no_spend"):
        x = windowed("spend")
        if name in ("window_spend_zero", "old_no_spend"):
            mark(false=~(x == 0))
            if name == "window_spend_zero":
                mark(false=~(windowed("n_purchases") > 0))
        else:
            mark(false=~same_text(x, f("v"), ph.amounts))
            v = f("v", lambda s: float(s.replace(",", "")))
            if name == "window_spend_negative":
                mark(false=~(v < 0))
            elif name == "window_spend_low":
                mark(lowers=immaterial(v, amount_of("typical")))
            else:
                mark(lowers=np.ones(n, bool))
    elif name in ("trend_stopped", "trend_spend_down", "old_trend_up", "old_trend_same"):
        what = f("what") if name.startswith("old_") else np.full(n, "", dtype=object)
        purchase = np.array([name == "trend_stopped" or "purchase" in str(w) for w in what])
        pt, st = col("purchase_trend"), col("spend_trend")
        x = np.where(purchase, pt if pt is not None else np.nan, st if st is not None else np.nan)
        if name == "trend_stopped":
            mark(false=~(x <= -1 + 1e-9) | (windowed("n_purchases") > 0))
        elif name == "trend_spend_down":
            mark(false=~(x < 0))
        else:
            down = np.array([str(w) in ("fewer purchases", "spent less") for w in what])
            mark(false=down & ~(x < 0), lowers=~down)
        if pt is None and purchase.any() or st is None and (~purchase).any():
            return np.where(code == _OK, _UNCHECKED, code), need + ["purchase_trend", "spend_trend"]
    elif name in ("returns_worth", "returns", "returned_worth"):
        k0, amt = get("n_returns"), col("return_amount")
        if k0 is None:
            return np.full(n, _UNCHECKED), need
        k = np.zeros(n) if name == "returned_worth" else f("k", sg.parse_count)
        mark(false=k0 != k)
        if name != "returns":
            mark(false=~same_text(amt if amt is not None else np.full(n, np.nan), f("v"), ph.amounts))
    elif name in ("event_window", "event_total", "event_ago", "event_value"):
        nouns = f("noun")
        x = np.full(n, np.nan)
        kinds = {}
        for i, noun in enumerate(nouns):
            kind = kinds.setdefault(noun, _event_kind(noun, col))
            c = None
            if kind is not None:
                c = (f"n_{kind}_{fields[i]['w'].replace(',', '')}d" if name == "event_window" else f"n_{kind}_total"
                     if name == "event_total" else f"days_since_last_{kind}" if name == "event_ago" else f"last_{kind}")
            v = col(c) if c else None
            if v is None:
                code[i] = _UNCHECKED
                need.append(c or noun)
            else:
                x[i] = v[i]
        if name == "event_ago":
            mark(false=~same_text(x, f("ago"), ph.ago))
        elif name == "event_value":
            mark(false=~same_text(x, f("v"), lambda a: ph.each(a, ph.number)),
                 lowers=immaterial(amount_of("v"), amount_of("typical")))
        else:
            k = f("k", sg.parse_count)
            mark(false=~(x == k), lowers=~(k > 0))
    elif name == "no_driver":  # the whole reason of a customer at risk with no driver to name
        p = get("churn_probability")
        if p is None:
            return np.full(n, _UNCHECKED), need
        rel = np.array([sg.no_driver_relation(a, b) for a, b in zip(f("p", sg.parse_pct), f("typical", sg.parse_pct))], dtype=object)
        mark(false=~same_text(p, f("p"), ph.pcts) | (rel != f("relation")))
    elif name in ("generic", "generic_plain", "category"):
        for i, d in enumerate(fields):
            c = sg.reason_column(d["label"], columns) or d["label"].replace(" ", "_")
            v = col(c)
            if v is None:
                code[i] = _UNCHECKED
                need.append(c)
            elif name == "category":  # a text, categorical or yes/no attribute: the row's own value
                s = v[i]
                shown = ("yes" if s else "no") if isinstance(s, (bool, np.bool_)) else str(s)
                code[i] = _OK if not pd.isna(s) and shown == d["value"] else _FALSE
            else:
                x = pd.to_numeric(pd.Series([v[i]]), errors="coerce").to_numpy(dtype=float, na_value=np.nan)[0]
                code[i] = _OK if np.isfinite(x) and ph.number(float(x)) == d["v"] else _FALSE
    else:  # a form the phrasing no longer writes because it lowers risk ("high ... spend", "last purchase today", ...)
        code[:] = _LOWERS
    return code, need


def _event_kind(noun: str, col) -> str | None:
    """The event type whose sentence noun is ``noun`` ("complaints" -> "complaint", "NPS answer" -> "nps")."""
    from churnml.phrasing import EVENT_NOUNS, plural

    for kind, forms in EVENT_NOUNS.items():
        if noun in forms:
            return kind
    words = noun.split(" ")
    stems = {" ".join(words[:-1] + [w]) for w in (words[-1], words[-1][:-1], words[-1][:-2], words[-1][:-3] + "y")}
    for cand in sorted(stems, key=len, reverse=True):  # the singular whose plural is the noun first
        if plural(cand) == noun:
            return cand.replace(" ", "_")
    return noun.replace(" ", "_")


def _column_at(scores: pd.DataFrame, c: str, rows: np.ndarray):
    """Column ``c`` at ``rows`` (floats for numeric columns), ``None`` when the table lacks it."""
    if c not in scores.columns:
        return None
    v = scores[c].to_numpy()[rows]
    if pd.api.types.is_numeric_dtype(scores[c].dtype) and not pd.api.types.is_bool_dtype(scores[c].dtype):
        return pd.to_numeric(pd.Series(v), errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    return v


def check_reasons(scores: pd.DataFrame, config: Config, report: dict | None = None) -> list[Finding]:
    """Every reason sentence is true of the customer and names a driver that raises their risk.

    Each sentence of the ``reasons`` column (joined by "; ") is parsed back with the templates the
    phrasing writes (:data:`churnml.segments.REASON_TEMPLATES`, one source of truth) and recomputed
    from the same row's feature columns (``recency_days``, ``ipt_mean_days``, ``frequency``,
    ``tenure_days``, spend and window columns, ...): "fail" for sentences that are false (e.g. a
    count that is not the customer's, a usual gap that is not theirs) or that state a fact lowering
    risk (e.g. "no purchase for 8 days, usually buys every 167 days", a high spend, a tenure above
    the typical); "warn" for sentences no template recognises; "note" for sentences the table
    lacks the columns to check (e.g. a ``churnml score`` table without feature columns). A
    sentence about a feature with no sentence of its own (a customers-file attribute, an event
    count: "Age 34 (typical 40)", "no show count 3 (typical 1)", "Country: United Kingdom") is read
    by the column its label names and is true when it states that row's value. A "below / only ...
    typical" comparison less than :data:`churnml.segments.MATERIAL_SHARE` below the typical fails
    as not raising risk; "usually buys every" needs ``frequency`` >= 2 (one gap reads "after 2
    purchases N days apart"), repeat-purchase spend ``frequency`` >= 1, "after returns" a return;
    a tenure and its typical are both in days when either is under 90 days; "no single driver
    stands out" states the row's churn probability and how it compares with the typical one."""
    from churnml.segments import parse_reason

    if "reasons" not in scores.columns:
        return [Finding("reasons", "note", "no reasons column: nothing to check")]
    ids = customer_ids(scores)
    columns = {c for c in scores.columns if isinstance(c, str)}  # a generic sentence names one of them
    reasons = scores["reasons"].to_numpy(dtype=object)
    order = scores["value_at_risk"].to_numpy(dtype=float) if "value_at_risk" in scores.columns else None
    cache: dict[str, tuple | None] = {}
    groups: dict[str, tuple[list[int], list[dict], list[str]]] = {}
    unknown_rows, unknown_text = [], []
    for i, r in enumerate(reasons):
        if not isinstance(r, str) or r.startswith(_REASON_SKIP) or r == _NO_DRIVER_RAW or not r:
            continue
        for s in r.split("; "):
            if s not in cache:
                cache[s] = parse_reason(s, columns)
            p = cache[s]
            if p is None:
                unknown_rows.append(i)
                unknown_text.append(s)
                continue
            g = groups.setdefault(p[0], ([], [], []))
            g[0].append(i)
            g[1].append(p[1])
            g[2].append(s)
    n = len(scores)
    medians: dict[str, float] = {}

    def pop(c):
        if c not in medians:
            medians[c] = float(np.nanmedian(pd.to_numeric(scores[c], errors="coerce"))) if c in scores.columns else float("nan")
        return medians[c]

    bad = {_FALSE: np.zeros(n, bool), _LOWERS: np.zeros(n, bool), _UNCHECKED: np.zeros(n, bool)}
    per_kind: dict[int, dict[str, int]] = {_FALSE: {}, _LOWERS: {}, _UNCHECKED: {}}
    sample: dict[int, str] = {}
    missing: set[str] = set()
    total = 0
    for name, (rows, fields, texts) in groups.items():
        rows_a = np.asarray(rows, dtype=int)
        total += len(rows_a)

        cols: dict[str, Any] = {}

        def col(c, rows_a=rows_a, cols=cols):
            if c not in cols:
                cols[c] = _column_at(scores, c, rows_a)
            return cols[c]

        codes, need = _reason_codes_of(name, fields, col, pop, columns)
        missing.update(need)
        for c in (_FALSE, _LOWERS, _UNCHECKED):
            hit = codes == c
            if hit.any():
                bad[c][rows_a[hit]] = True
                per_kind[c][name] = per_kind[c].get(name, 0) + int(hit.sum())
                sample.setdefault(c, texts[int(np.flatnonzero(hit)[0])])
    total += len(unknown_rows)
    out: list[Finding] = []

    def counts(c):
        return ", ".join(f"{k} {v}" for k, v in sorted(per_kind[c].items(), key=lambda kv: -kv[1]))

    if per_kind[_FALSE]:
        k = sum(per_kind[_FALSE].values())
        out.append(Finding("reasons", "fail", f"{k} of {total} reason sentences are false of the customer's own features "
                           f"({counts(_FALSE)}; e.g. \"{sample[_FALSE]}\"); {int(bad[_FALSE].sum())} customers, "
                           f"{examples(ids, bad[_FALSE], order)}"))
    if per_kind[_LOWERS]:
        k = sum(per_kind[_LOWERS].values())
        out.append(Finding("reasons", "fail", f"{k} of {total} reason sentences state a fact that does not raise the "
                           f"customer's risk ({counts(_LOWERS)}; e.g. \"{sample[_LOWERS]}\"); {int(bad[_LOWERS].sum())} "
                           f"customers, {examples(ids, bad[_LOWERS], order)}"))
    if unknown_rows:
        mask = np.zeros(n, bool)
        mask[unknown_rows] = True
        out.append(Finding("reasons", "warn", f"{len(unknown_rows)} of {total} reason sentences have no known form and "
                           f"were not checked (e.g. \"{unknown_text[0]}\"); {int(mask.sum())} customers, {examples(ids, mask, order)}"))
    if per_kind[_UNCHECKED]:
        k = sum(per_kind[_UNCHECKED].values())
        out.append(Finding("reasons", "note", f"{k} of {total} reason sentences could not be checked: the table lacks "
                           f"{', '.join(sorted(missing)) or 'their feature columns'} ({counts(_UNCHECKED)})"))
    return out


P_ALIVE_ONE = 0.999
"""P(alive) at or above this is "1" for :func:`check_p_alive`."""
P_ALIVE_UNINFORMATIVE_SHARE = 0.95
"""P(alive) is uninformative when at least this share of the customers have P(alive) >=
:data:`P_ALIVE_ONE` (or every customer has the same value): it ranks nobody."""
GAP_ALPHA = 0.05
"""A repeat customer's silence is *unusual* when a customer still buying at their own pace would
stay silent that long with probability below this: ``(1 + R / (n g)) ** -n`` for ``n`` gaps of
mean ``g`` days and ``R`` days since the last purchase (the chance that an exponential gap exceeds
``R`` when its rate is only known from ``n`` exponential gaps: exact for a Poisson buyer). Under
"nobody drops out" about this share of repeaters is unusual by chance."""
MIN_REPEATERS_FOR_DROPOUT = 50
"""Fewer repeat customers with a known gap than this: the dropout test cannot be judged (note)."""
MIN_VISIBLE_DROPOUT = 0.05
"""The log *shows dropout* when the 95% lower bound of the share of unusually silent repeaters
exceeds :data:`GAP_ALPHA` by at least this much (a lower bound on the share that has left)."""
DROPOUT_AGREEMENT = 0.5
"""P(alive) contradicts the log when the share of repeaters it says have left, mean(1 - P(alive)),
is below this fraction of the visible dropout's lower bound."""


def _said_no_dropout(scores: pd.DataFrame, report: dict | None) -> bool:
    """Does the output say the purchase model saw no dropout (run report or the table)?"""
    fit = (report or {}).get("clv_fit") or {}
    if fit.get("no_dropout") or fit.get("degenerate") or "no dropout" in str(fit.get("note") or ""):
        return True
    return "p_alive_source" in scores.columns and bool((scores["p_alive_source"].astype(str) == "churn_model").any())


def _visible_dropout(scores: pd.DataFrame) -> tuple[np.ndarray, float, int] | None:
    """(mask of repeaters tested, lower bound of the share that has left, repeaters tested), or
    None without ``frequency``, ``recency_days`` and ``ipt_mean_days`` columns."""
    if not {"frequency", "recency_days", "ipt_mean_days"} <= set(scores.columns):
        return None
    n = pd.to_numeric(scores["frequency"], errors="coerce").to_numpy(dtype=float)
    gap = pd.to_numeric(scores["ipt_mean_days"], errors="coerce").to_numpy(dtype=float)
    silent = pd.to_numeric(scores["recency_days"], errors="coerce").to_numpy(dtype=float)
    ok = np.isfinite(n) & (n > 0) & np.isfinite(gap) & (gap > 0) & np.isfinite(silent)
    k = int(ok.sum())
    if k == 0:
        return ok, 0.0, 0
    with np.errstate(all="ignore"):
        u = (1.0 + silent[ok] / (n[ok] * gap[ok])) ** (-n[ok])
    share = float(np.mean(u < GAP_ALPHA))
    lower = share - 1.96 * np.sqrt(share * (1 - share) / k)
    return ok, max(0.0, lower - GAP_ALPHA), k


def check_p_alive(scores: pd.DataFrame, config: Config, report: dict | None = None) -> list[Finding]:
    """P(alive) agrees with what the log shows; a degenerate purchase model is said plainly.

    * fail: P(alive) is uninformative (:data:`P_ALIVE_UNINFORMATIVE_SHARE` of the repeat
      customers, or of all customers without a ``frequency`` column, at >= :data:`P_ALIVE_ONE`,
      or one value for all) and neither the run report (``clv_fit``
      ``no_dropout``/``degenerate``) nor the table (``p_alive_source``) says the purchase model
      saw no dropout; warn when it is said;
    * fail: the log shows dropout (see :data:`GAP_ALPHA`, :data:`MIN_VISIBLE_DROPOUT`: repeaters
      silent far longer than their own pace) while P(alive) says that fewer than
      :data:`DROPOUT_AGREEMENT` of that share has left;
    * note: no ``p_alive`` column, or too few repeaters to judge the dropout.
    """
    if "p_alive" not in scores.columns:
        return [Finding("p_alive", "note", "no p_alive column: P(alive) cannot be checked")]
    ids = customer_ids(scores)
    p = pd.to_numeric(scores["p_alive"], errors="coerce").to_numpy(dtype=float)
    fin = np.isfinite(p)
    out: list[Finding] = []
    if not fin.any():
        return [Finding("p_alive", "note", "p_alive is missing for every customer: it is not shown, nothing to check")]
    # judged among repeat customers when the table says who they are: BG/NBD gives one-time buyers
    # P(alive) = 1 by construction, which says nothing about whether the model saw dropout
    judged = fin.copy()
    who = "customers"
    if "frequency" in scores.columns:
        rep = fin & (pd.to_numeric(scores["frequency"], errors="coerce").to_numpy(dtype=float) > 0)
        if rep.sum() >= 2:
            judged, who = rep, "repeat customers"
    one = judged & (p >= P_ALIVE_ONE)
    flat = float(np.ptp(p[judged])) == 0.0
    if one.sum() >= P_ALIVE_UNINFORMATIVE_SHARE * judged.sum() or (flat and judged.sum() > 1):
        what = (f"P(alive) >= {P_ALIVE_ONE} for {int(one.sum())} of {int(judged.sum())} {who}" if one.any()
                else f"P(alive) = {p[judged][0]:.4g} for all {int(judged.sum())} {who}")
        if _said_no_dropout(scores, report):
            out.append(Finding("p_alive", "warn", f"{what}: the purchase model saw no dropout, and the run says so"))
        else:
            churn = (f" (mean churn probability {np.nanmean(pd.to_numeric(scores['churn_probability'], errors='coerce')):.0%})"
                     if "churn_probability" in scores.columns else "")
            out.append(Finding(
                "p_alive", "fail",
                f"{what}{churn}: P(alive) ranks nobody and nothing says the purchase model saw no dropout, {examples(ids, one)}",
            ))
    seen = _visible_dropout(scores)
    if seen is None:
        out.append(Finding("p_alive", "note", "no frequency/recency_days/ipt_mean_days columns: P(alive) cannot be compared "
                                              "with the dropout the log shows"))
        return out
    mask, gone, k = seen
    if k < MIN_REPEATERS_FOR_DROPOUT:
        out.append(Finding("p_alive", "note", f"only {k} repeat customers (< {MIN_REPEATERS_FOR_DROPOUT}): whether P(alive) "
                                              "agrees with the dropout the log shows cannot be judged"))
        return out
    said_gone = float(np.nanmean(1.0 - p[mask])) if np.isfinite(p[mask]).any() else float("nan")
    if gone >= MIN_VISIBLE_DROPOUT and np.isfinite(said_gone) and said_gone < DROPOUT_AGREEMENT * gone:
        high = mask & fin & (p >= P_ALIVE_ONE)
        out.append(Finding(
            "p_alive", "fail",
            f"the log shows dropout (at least {gone:.0%} of {k} repeat customers silent far longer than their own pace, "
            f"95% lower bound) but P(alive) says only {said_gone:.1%} have left, {examples(ids, high if high.any() else mask)}",
        ))
    return out


CLV_FLOOR_SHARE = 0.5
"""A shared floor: more than this share of the customers with net past spend > 0 have a CLV
within :data:`CLV_FLOOR_TOLERANCE` of the lowest such CLV while others differ (or everyone has
the same CLV): the CLV does not rank most customers."""
CLV_FLOOR_TOLERANCE = 0.01
"""Relative distance (1%) to the minimum CLV that counts as "at the floor"."""


def check_clv_history(scores: pd.DataFrame, config: Config, report: dict | None = None) -> list[Finding]:
    """Customers with net past spend <= 0 never rank above the median CLV; no shared floor.

    * fail: any customer with ``net_spend <= 0`` (returned as much as they bought, or every
      order) has ``predicted_clv`` above the median (count and the highest examples);
    * fail: a floor shared by most customers (:data:`CLV_FLOOR_SHARE`, :data:`CLV_FLOOR_TOLERANCE`),
      judged among customers with net past spend > 0 (a warning when that floor is 0: a forecast
      that they bring nothing, not a value everyone shares);
    * note: no ``predicted_clv`` (or ``net_spend``) column.
    """
    if "predicted_clv" not in scores.columns:
        return [Finding("clv_history", "note", "no predicted_clv column: CLV cannot be checked against history")]
    ids = customer_ids(scores)
    clv = pd.to_numeric(scores["predicted_clv"], errors="coerce").to_numpy(dtype=float)
    fin = np.isfinite(clv)
    if not fin.any():
        return [Finding("clv_history", "note", "predicted_clv is missing for every customer")]
    out: list[Finding] = []
    median = float(np.median(clv[fin]))
    paying = np.ones(len(clv), dtype=bool)
    if "net_spend" in scores.columns:
        net = pd.to_numeric(scores["net_spend"], errors="coerce").to_numpy(dtype=float)
        nothing = np.isfinite(net) & (net <= 0)
        paying = ~nothing
        above = nothing & fin & (clv > median)
        if above.any():
            i = np.flatnonzero(above)[np.argmax(clv[above])]
            out.append(Finding(
                "clv_history", "fail",
                f"{int(above.sum())} customers with net past spend <= 0 rank above the median CLV ({median:,.2f}); "
                f"highest {ids[i]}: net spend {net[i]:,.2f}, CLV {clv[i]:,.2f}, {examples(ids, above, clv)}",
            ))
    else:
        out.append(Finding("clv_history", "note", "no net_spend column: CLV cannot be checked against net past spend"))
    pool = fin & paying
    if pool.sum() >= 2:
        v = clv[pool]
        low = float(v.min())
        at_floor = v <= low + CLV_FLOOR_TOLERANCE * max(abs(low), 1e-9)
        share = float(at_floor.mean())
        if share > CLV_FLOOR_SHARE:
            floor_mask = np.zeros(len(clv), dtype=bool)
            floor_mask[np.flatnonzero(pool)[at_floor]] = True
            what = "the same CLV for everyone" if np.ptp(v) == 0 else f"a floor: {share:.0%} of them within {CLV_FLOOR_TOLERANCE:.0%} of the lowest CLV"
            # a floor at 0 is no value shared by everyone: it says these customers are expected to
            # bring nothing (e.g. recent spend shipped and they spent nothing in its window); said, not refused
            zero = low == 0.0
            shipped = (report or {}).get("value_model")
            why = f" (the shipped value model, {shipped}, expects nothing from them)" if zero and shipped else ""
            out.append(Finding(
                "clv_history", "warn" if zero else "fail",
                f"{int(pool.sum())} customers with net past spend > 0 share {what} ({low:,.2f}){why}: the CLV does not rank them, "
                f"{examples(ids, floor_mask)}",
            ))
    return out


def _value_margin(config: Config, report: dict | None) -> float:
    """The margin inside the scores' value_if_retained: the run report's ``economics.margin``
    (the margin of the model that scored) when it says, else ``config.clv.margin``."""
    econ = (report or {}).get("economics") if isinstance(report, dict) else None
    m = econ.get("margin") if isinstance(econ, dict) else None
    return float(m) if isinstance(m, (int, float)) and m > 0 else float(config.clv.margin)


def check_actions(scores: pd.DataFrame, config: Config, report: dict | None = None) -> list[Finding]:
    """Each recommended action has positive expected net value (profit) on stated assumptions.

    For every customer whose ``recommended_action`` is not ``none``: churn_probability x the
    action's churn_reduction x value_if_retained (negative = 0; it already includes the margin of
    the run, rescaled to ``clv.margin`` when the run report states another) - the action's cost
    (currency) must be > 0: fail otherwise, and for actions the catalogue does not know. Warns when
    the margin is the 1.0 default (ROI on revenue) and when every effect used is an assumption."""
    from churnml.campaigns import effect_source

    name = "actions"
    if "recommended_action" not in scores.columns:
        return [Finding(name, "note", "The scores have no recommended_action column, so no action can be checked.")]
    value_col = "value_if_retained" if "value_if_retained" in scores.columns else "predicted_clv"
    if value_col not in scores.columns or "churn_probability" not in scores.columns:
        return [Finding(name, "note", f"The scores lack churn_probability or {value_col}, so action values cannot be recomputed.")]
    ids = customer_ids(scores)
    action = scores["recommended_action"].astype(str).to_numpy()
    acted = action != "none"
    catalogue = {a.name: a for a in config.campaign.actions}
    margin = float(config.clv.margin)
    scale = margin / _value_margin(config, report)
    p = pd.to_numeric(scores["churn_probability"], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    v = np.clip(pd.to_numeric(scores[value_col], errors="coerce").to_numpy(dtype=float, na_value=np.nan), 0, None) * scale
    red = np.array([catalogue[a].churn_reduction if a in catalogue else np.nan for a in action])
    cost = np.array([catalogue[a].cost if a in catalogue else np.nan for a in action])
    net = p * red * v - cost
    findings: list[Finding] = []
    unknown = acted & ~np.isin(action, list(catalogue))
    if unknown.any():
        names = sorted(set(action[unknown]))
        findings.append(Finding(name, "fail", f"{int(unknown.sum()):,} customers are recommended actions the catalogue does not "
                                              f"have ({', '.join(names[:5])}), {examples(ids, unknown)}."))
    losing = acted & ~unknown & ~(net > 0)
    if losing.any():
        basis = "profit" if margin != 1.0 else "revenue"
        findings.append(Finding(
            name, "fail",
            f"{int(losing.sum()):,} of {int(acted.sum()):,} recommended actions do not pay: expected saved value "
            f"(churn probability x churn reduction x value if retained, on {basis} at margin {margin:g}) is at most the "
            f"action's cost, {examples(ids, losing, order=-net)}."))
    if margin == 1.0:
        findings.append(Finding(name, "warn", "ROI is on revenue, not profit: no margin is configured (clv.margin is 1.0)."))
    used = [catalogue[a] for a in sorted(set(action[acted & ~unknown]))] or list(catalogue.values())
    if used and not any(effect_source(a).startswith("measured") for a in used):
        findings.append(Finding(name, "warn", "Every action effect is an assumption: no read-out has measured one."))
    return findings


MIN_CHURN_CUTOFFS = 2
"""Fewer backtest cutoffs than this: a churn verdict rests on one point in time (warned)."""


def check_churn_winner(scores: pd.DataFrame, config: Config, report: dict | None = None) -> list[Finding]:
    """The shipped churn scorer is not significantly worse than a baseline of its own backtest.

    From ``report`` (``run_report.json``): ``churn_backtest`` (the summary; on the ``model`` row
    the paired customer-level bootstrap 95% interval of the ROC AUC difference to each baseline,
    pooled over the cutoffs) and ``churn_training["shipped_scorer"]`` (what shipped). Fail when a
    baseline is significantly ahead (interval entirely below 0) and the run did not ship the best
    such baseline; warn when it cannot be told (no report or backtest, no intervals, fewer than
    :data:`MIN_CHURN_CUTOFFS` cutoffs); otherwise pass (``scores`` is not needed)."""
    from churnml.sanity import CHURN_BASELINE_NAMES, WORSE, churn_differences

    name = "churn_winner"
    if not report or not report.get("churn_backtest"):
        why = ((report or {}).get("churn_training") or {}).get("backtest_note") or "the run report has no churn backtest"
        return [Finding(name, "warn", f"cannot tell whether the shipped churn scorer loses to a baseline: {why}")]
    diffs = churn_differences(report["churn_backtest"])
    if not diffs:
        return [Finding(name, "warn", "cannot tell whether the shipped churn scorer loses to a baseline: the churn backtest has no model row")]
    training = report.get("churn_training") or {}
    shipped = training.get("shipped_scorer") or {}
    n_cut = shipped.get("backtest_cutoffs")
    if n_cut is None:
        n_cut = len(training.get("backtest") or {}) or None
    ahead = [b for b, d in diffs.items() if d.outcome == WORSE]
    if ahead:
        best = max(ahead, key=lambda b: diffs[b].baseline_auc)
        d = diffs[best]
        if shipped.get("override") and shipped.get("baseline") == best:
            return []
        label = CHURN_BASELINE_NAMES.get(best, best)
        got = shipped.get("baseline") if shipped.get("override") else (shipped.get("scorer") or "the held-out selection")
        return [Finding(name, "fail",
                        f"the shipped churn scorer ({got}) is significantly worse than {label} in its own backtest "
                        f"({d.phrase()}, mean over {n_cut or 'the'} cutoff(s)) and the run did not ship {label}")]
    found = []
    untold = [b for b, d in diffs.items() if d.outcome is None]
    if untold:
        found.append(Finding(name, "warn", "cannot tell whether the shipped churn scorer is worse than "
                             + ", ".join(CHURN_BASELINE_NAMES.get(b, b) for b in untold)
                             + ": the backtest has no paired interval (churn.bootstrap_resamples = 0?)"))
    if n_cut is not None and n_cut < MIN_CHURN_CUTOFFS:
        found.append(Finding(name, "warn", f"the churn backtest has {n_cut} cutoff(s) (fewer than {MIN_CHURN_CUTOFFS}): "
                             "its verdict against the baselines rests on one point in time"))
    return found


def check_value_winner(scores: pd.DataFrame, config: Config, report: dict | None = None) -> list[Finding]:
    """The shipped value score is not worse than total / recent / rate spreadsheet answers.

    Reads ``report["value_backtest"]``: its ``metrics`` (judging half) hold, per candidate, the
    score difference *shipped minus candidate* with a paired bootstrap 95% interval. ``fail``
    when a spreadsheet answer's interval lies entirely below 0 (the shipped value ranks
    significantly worse than a spreadsheet); ``warn`` when a spreadsheet answer scores higher but
    the interval contains 0, or there is no interval (cannot be told), or the scores table ships
    another value model than the backtest chose; ``note`` when no value backtest ran."""
    from churnml.evaluation import WORSE, interval_outcome
    from churnml.value import SPREADSHEET, SPREADSHEET_LABELS

    name = "value_winner"
    vb = (report or {}).get("value_backtest") if report is not None else None
    if not vb or not vb.get("metrics"):
        why = "no run report was given" if report is None else "the log was too short for a value backtest"
        return [Finding(name, "note", f"no value backtest ran ({why}), so nobody knows whether the shipped value beats "
                                      "total past spend, recent-window spend or the spend rate")]
    t = pd.DataFrame.from_dict(vb["metrics"], orient="index")
    chosen = vb.get("chosen") or report.get("value_model")
    out: list[Finding] = []
    if "value_model" in scores.columns:
        shipped = sorted(set(scores["value_model"].astype(str)))
        if chosen and shipped and shipped != [chosen]:
            out.append(Finding(name, "warn", f"the scores table ships value model(s) {shipped}, the backtest chose {chosen!r}"))
    if chosen not in t.index:
        return out + [Finding(name, "warn", f"the shipped value model {chosen!r} is not in the value backtest, so it cannot be told "
                                            "whether it beats the spreadsheet answers")]
    cols = ("score_diff", "score_diff_ci_low", "score_diff_ci_high")
    sheets = [c for c in SPREADSHEET if c in t.index and c != chosen]
    if not set(cols) <= set(t.columns):
        return out + [Finding(name, "warn", "the value backtest has no paired intervals (an older run report), so it cannot be told "
                                            "whether the shipped value ranks worse than " + ", ".join(SPREADSHEET_LABELS[c] for c in sheets))]
    score = pd.to_numeric(t["score"], errors="coerce")
    for c in sheets:
        d, lo, hi = (float(pd.to_numeric(pd.Series([t.loc[c, k]]), errors="coerce").iloc[0]) for k in cols)
        what = (f"{chosen!r} (score {score[chosen]:.3f}) vs {SPREADSHEET_LABELS[c]} (score {score[c]:.3f}) on the judging half: "
                f"difference {d:+.3f}, 95% interval [{lo:+.3f}, {hi:+.3f}]")
        outcome = interval_outcome(lo, hi)
        if outcome == WORSE:
            out.append(Finding(name, "fail", f"the shipped value ranks significantly worse than a spreadsheet answer: {what}"))
        elif outcome is None:
            out.append(Finding(name, "warn", f"cannot be told (no finite interval): {what}"))
        elif d < 0:
            out.append(Finding(name, "warn", f"a spreadsheet answer scores higher, not significantly (cannot be told): {what}"))
    return out


COHERENCE_TOLERANCE = 1e-9
"""Rounding allowed when the coherence check compares probabilities (and, relative, values)."""


def check_coherence(scores: pd.DataFrame, config: Config, report: dict | None = None) -> list[Finding]:
    """The numbers on one row agree with each other (see :func:`churnml.pipeline.coherent`):

    * fail: ``p_alive`` below ``1 - churn_probability`` ("still active 12%" next to "churn 68%":
      a customer who buys is active);
    * fail: ``predicted_clv`` above ``value_if_retained`` (more expected with churn counted than
      if the customer stays);
    * note: the columns are missing."""
    out: list[Finding] = []
    ids = customer_ids(scores)

    def num(col: str) -> np.ndarray:
        return pd.to_numeric(scores[col], errors="coerce").to_numpy(dtype=float)

    if {"p_alive", "churn_probability"} <= set(scores.columns):
        p, c = num("p_alive"), num("churn_probability")
        bad = np.isfinite(p) & np.isfinite(c) & (p < 1.0 - c - COHERENCE_TOLERANCE)
        if bad.any():
            i = np.flatnonzero(bad)[np.argmax((1.0 - c - p)[bad])]
            out.append(Finding("coherence", "fail",
                               f"{int(bad.sum())} customers have P(alive) below 1 - churn probability (a customer who buys is "
                               f"active); worst {ids[i]}: P(alive) {p[i]:.1%}, churn probability {c[i]:.1%}, {examples(ids, bad, 1.0 - c - p)}"))
    else:
        out.append(Finding("coherence", "note", "no p_alive/churn_probability columns to compare"))
    if {"predicted_clv", "value_if_retained"} <= set(scores.columns):
        v, r = num("predicted_clv"), num("value_if_retained")
        bad = np.isfinite(v) & np.isfinite(r) & (v > r + COHERENCE_TOLERANCE * np.maximum(np.abs(r), 1.0))
        if bad.any():
            i = np.flatnonzero(bad)[np.argmax((v - r)[bad])]
            out.append(Finding("coherence", "fail",
                               f"{int(bad.sum())} customers have a predicted value above their value if retained; worst {ids[i]}: "
                               f"{v[i]:,.2f} vs {r[i]:,.2f}, {examples(ids, bad, v - r)}"))
    return out


CHECKS: dict[str, Callable[[pd.DataFrame, Config, dict | None], list[Finding]]] = {
    "coherence": check_coherence,
    "reasons": check_reasons,
    "p_alive": check_p_alive,
    "clv_history": check_clv_history,
    "actions": check_actions,
    "churn_winner": check_churn_winner,
    "value_winner": check_value_winner,
}
"""Check name -> function, in the order the audit runs and reports them."""


def audit(scores: pd.DataFrame, config: Config | None = None, report: dict | None = None,
          checks: list[str] | None = None) -> AuditResult:
    """Run the decisions audit (every check of :data:`CHECKS`, or ``checks``) on a scores table."""
    cfg = config or Config()
    findings: list[Finding] = []
    status: dict[str, str] = {}
    for name in checks or list(CHECKS):
        if name not in CHECKS:
            raise ValueError(f"unknown audit check {name!r}; known: {', '.join(CHECKS)}")
        found = CHECKS[name](scores, cfg, report)
        findings += found
        worst = [s for s in SEVERITIES if any(f.severity == s for f in found)]
        status[name] = worst[0] if worst else "pass"
    return AuditResult(findings, status)
