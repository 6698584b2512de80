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
