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
    "AuditResult",
    "CHECKS",
    "Finding",
    "audit",
    "check_actions",
    "check_churn_winner",
    "check_clv_history",
    "check_p_alive",
    "check_reasons",
    "check_value_winner",
]

SEVERITIES = ("fail", "warn", "note")
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
        idx = idx[np.argsort(-np.nan_to_num(o, nan=-np.inf), kind="stable")]
    shown = ", ".join(str(ids[i]) for i in idx[:N_EXAMPLES])
    return f"e.g. {shown}" + (" ..." if idx.size > N_EXAMPLES else "")


def customer_ids(scores: pd.DataFrame) -> np.ndarray:
    """The customer ids of a scores table (a ``customer_id`` column, else the index), as text."""
    if "customer_id" in scores.columns:
        return scores["customer_id"].astype(str).to_numpy(dtype=object)
    return scores.index.astype(str).to_numpy(dtype=object)


# --------------------------------------------------------------------------- checks


_OK, _FALSE, _LOWERS, _UNCHECKED = 0, 1, 2, 3
_REASON_SKIP = ("low risk: ", "no risk driver")


def _reason_codes_of(name: str, fields: list[dict], col, pop) -> tuple[np.ndarray, list[str]]:
    """For the sentences of template ``name`` (their parsed ``fields``): a code per sentence (ok,
    false, lowers risk, unchecked) and the feature columns it needed. ``col(c)``: column ``c`` at
    the sentences' rows (``None`` when the table lacks it); ``pop(c)``: its population median."""
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

    if name in ("recency_overdue", "recency_single", "old_single"):
        rec, ipt = get("recency_days"), get("ipt_mean_days")
        if rec is None or ipt is None:
            return np.full(n, _UNCHECKED), need
        d = f("recency", sg.parse_count)
        mark(false=np.round(rec) != d)
        if name == "recency_overdue":
            g = f("gap", sg.parse_count)
            mark(false=~np.isfinite(ipt) | (np.maximum(np.round(ipt), 1) != g), lowers=d <= g)
        else:
            mark(false=np.isfinite(ipt))
            ref = f("typical", sg.parse_count) if name == "recency_single" else np.full(n, pop("recency_days"))
            mark(lowers=~(d > ref))
    elif name == "recency_model":
        p0 = get("btyd_p_no_purchase")
        if p0 is None:
            return np.full(n, _UNCHECKED), need
        mark(false=~same_text(p0, f("p"), sg._pcts), lowers=~(f("p", sg.parse_pct) > 0.5))
    elif name in ("frequency_low", "old_frequency_only", "old_frequency"):
        fr, ten = get("frequency"), get("tenure_days")
        if fr is None or ten is None:
            return np.full(n, _UNCHECKED), need
        k = f("k", sg.parse_count)
        mark(false=(k != fr + 1) | ~same_text(np.maximum(ten, 1.0), f("tenure"), lambda x: sg._each(x, sg._span, 1)))
        if name == "frequency_low":
            mark(lowers=~(k < f("typical", lambda s: float(s.replace(",", "")))))
        elif name == "old_frequency":
            mark(lowers=np.ones(n, bool))
    elif name in ("tenure_short", "old_tenure"):
        ten = get("tenure_days")
        if ten is None:
            return np.full(n, _UNCHECKED), need
        in_days = sg._counted(np.maximum(np.round(ten), 1), "day")  # both in days when the typical is under 90 days
        mark(false=~same_text(ten, f("tenure"), lambda x: sg._each(x, sg._span, 1)) & (in_days != f("tenure")))
        mark(lowers=(name == "old_tenure") | ~(f("tenure", sg.parse_span_days) < f("typical", sg.parse_span_days)))
    elif name == "spend_negative" or name.startswith(("spend_low:", "old_spend_low:")):
        feat = "net_spend" if name == "spend_negative" else name.split(":", 1)[1]
        x, net = get(feat), col("net_spend")
        if x is None:
            return np.full(n, _UNCHECKED), need
        v = f("v", lambda s: float(s.replace(",", "")))
        mark(false=~same_text(x, f("v"), sg._amounts))
        if name == "spend_negative":
            mark(false=~(v < 0))
        else:
            if net is not None:
                mark(false=net < 0)  # such a customer reads "returned more than bought"
            mark(lowers=~(v < f("typical", lambda s: float(s.replace(",", "")))))
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
            mark(false=~same_text(x, f("v"), sg._amounts))
            v = f("v", lambda s: float(s.replace(",", "")))
            if name == "window_spend_negative":
                mark(false=~(v < 0))
            elif name == "window_spend_low":
                mark(lowers=~(v < f("typical", lambda s: float(s.replace(",", "")))))
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
            mark(false=~same_text(amt if amt is not None else np.full(n, np.nan), f("v"), sg._amounts))
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
            mark(false=~same_text(x, f("ago"), sg._ago))
        elif name == "event_value":
            mark(false=~same_text(x, f("v"), lambda a: sg._each(a, sg._number)),
                 lowers=~(f("v", lambda s: float(s.replace(",", ""))) < f("typical", lambda s: float(s.replace(",", "")))))
        else:
            k = f("k", sg.parse_count)
            mark(false=~(x == k), lowers=~(k > 0))
    elif name in ("generic", "generic_plain", "category"):
        for i, d in enumerate(fields):
            c = d["label"].replace(" ", "_")
            v = col(c)
            if v is None:
                code[i] = _UNCHECKED
                need.append(c)
            elif name == "category":
                s = v[i]
                shown = ("yes" if s else "no") if isinstance(s, (bool, np.bool_)) else str(s)
                code[i] = _OK if shown == d["value"] else _FALSE
            else:
                code[i] = _OK if sg._number(float(v[i])) == d["v"] else _FALSE
    else:  # a form the phrasing no longer writes because it lowers risk ("high ... spend", "last purchase today", ...)
        code[:] = _LOWERS
    return code, need


def _event_kind(noun: str, col) -> str | None:
    """The event type whose sentence noun is ``noun`` ("complaints" -> "complaint", "NPS answer" -> "nps")."""
    from churnml.segments import _EVENT_NOUNS, _plural

    for kind, forms in _EVENT_NOUNS.items():
        if noun in forms:
            return kind
    words = noun.split(" ")
    stems = {" ".join(words[:-1] + [w]) for w in (words[-1], words[-1][:-1], words[-1][:-2], words[-1][:-3] + "y")}
    for cand in sorted(stems, key=len, reverse=True):  # the singular whose plural is the noun first
        if _plural(cand) == noun:
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
    lacks the columns to check (e.g. a ``churnml score`` table without feature columns)."""
    from churnml.segments import parse_reason

    if "reasons" not in scores.columns:
        return [Finding("reasons", "note", "no reasons column: nothing to check")]
    ids = customer_ids(scores)
    reasons = scores["reasons"].to_numpy(dtype=object)
    order = scores["value_at_risk"].to_numpy(dtype=float) if "value_at_risk" in scores.columns else None
    cache: dict[str, tuple | None] = {}
    groups: dict[str, tuple[list[int], list[dict], list[str]]] = {}
    unknown_rows, unknown_text = [], []
    for i, r in enumerate(reasons):
        if not isinstance(r, str) or r.startswith(_REASON_SKIP) or not r:
            continue
        for s in r.split("; "):
            if s not in cache:
                cache[s] = parse_reason(s)
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

        codes, need = _reason_codes_of(name, fields, col, pop)
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


def check_p_alive(scores: pd.DataFrame, config: Config, report: dict | None = None) -> list[Finding]:
    """P(alive) agrees with what the log shows; a degenerate purchase model is said plainly."""
    return []


def check_clv_history(scores: pd.DataFrame, config: Config, report: dict | None = None) -> list[Finding]:
    """Customers with net past spend <= 0 never rank above the median CLV; no shared floor."""
    return []


def check_actions(scores: pd.DataFrame, config: Config, report: dict | None = None) -> list[Finding]:
    """Each recommended action has positive expected net value (profit) on stated assumptions."""
    return []


def check_churn_winner(scores: pd.DataFrame, config: Config, report: dict | None = None) -> list[Finding]:
    """The shipped churn scorer is not significantly worse than a baseline of its own backtest."""
    return []


def check_value_winner(scores: pd.DataFrame, config: Config, report: dict | None = None) -> list[Finding]:
    """The shipped value score is not worse than total / recent / rate spreadsheet answers."""
    return []


CHECKS: dict[str, Callable[[pd.DataFrame, Config, dict | None], list[Finding]]] = {
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
