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


def check_reasons(scores: pd.DataFrame, config: Config, report: dict | None = None) -> list[Finding]:
    """Every reason sentence is true of the customer and names a driver that raises their risk."""
    return []


def check_p_alive(scores: pd.DataFrame, config: Config, report: dict | None = None) -> list[Finding]:
    """P(alive) agrees with what the log shows; a degenerate purchase model is said plainly."""
    return []


def check_clv_history(scores: pd.DataFrame, config: Config, report: dict | None = None) -> list[Finding]:
    """Customers with net past spend <= 0 never rank above the median CLV; no shared floor."""
    return []


def check_actions(scores: pd.DataFrame, config: Config, report: dict | None = None) -> list[Finding]:
    """Each recommended action has positive expected net value (profit) on stated assumptions."""
    return []


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
