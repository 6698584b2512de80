"""Sanity checks of what a marketer receives: scores that are numbers, probabilities that are
probabilities, values in proportion to what customers actually spend, segments that are the
configured ones, and backtests that say plainly whether the models beat the naive answers.

Every check is a pure function of the scores (and optionally the transactions and config) that
returns a list of problems, each a sentence naming the column, the count and example customer ids;
an empty list means the output passed. Thresholds are module constants:

``CLV_SPEND_MULTIPLE`` (50)
    a customer's ``predicted_clv`` may not exceed 50 x the larger of their own observed net spend
    rate and the population's ``CLV_POPULATION_QUANTILE`` (99th percentile) spend rate, both
    scaled to the CLV horizon (``clv.horizon_days``). Spend rate = max(net spend, 0) / max(tenure,
    ``MIN_TENURE_DAYS``) per day, tenure = days from the first purchase to the scoring date.
``PURCHASE_RATE_MULTIPLE`` (50)
    ``expected_purchases`` may not exceed 50 x the population's highest observed purchase rate
    (purchases / max(tenure, ``MIN_TENURE_DAYS``)) scaled to the horizon.
``MIN_TENURE_DAYS`` (30)
    floor of the tenure in those rates, so that a customer who bought yesterday does not have an
    infinite rate.
``MIN_CUSTOMERS_FOR_SPREAD`` (100)
    with at least this many customers, a score that is the same for everyone is a problem.

Probabilities (``PROBABILITY_COLUMNS``) must lie strictly inside (0, 1): "certainly gone" or
"certainly still a customer" is never what a model knows. One-time buyers must not all have
P(alive) = 1. If any customer is in the top risk tier and the top value tier, the matrix's cell for
them ("Save now" by default) must not be empty, and every segment must be the config matrix's cell
for the customer's tiers (tables without segments get those of :func:`churnml.segments.assign_segments`).
An empty "Save now" cell while nobody is both high risk and high value is not flagged: on a log where
low-rate buyers are the only ones at risk it is the right answer (``benchmarks/robustness.py`` reports
its size per log).
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from churnml.audit import customer_ids
from churnml.audit import examples as _examples
from churnml.config import Config
from churnml.evaluation import BEATS, NO_DIFFERENCE, WORSE, interval_outcome
from churnml.value import SPREADSHEET, SPREADSHEET_LABELS

__all__ = [
    "BacktestVerdict",
    "CLV_POPULATION_QUANTILE",
    "CLV_SPEND_MULTIPLE",
    "MIN_CUSTOMERS_FOR_SPREAD",
    "MIN_TENURE_DAYS",
    "PROBABILITY_COLUMNS",
    "PURCHASE_RATE_MULTIPLE",
    "RunCheck",
    "SCORE_COLUMNS",
    "Verdict",
    "check_backtest",
    "check_run_outputs",
    "check_scores",
    "churn_differences",
    "churn_verdict",
    "PairedDifference",
    "observed_rates",
    "value_verdict",
]

SCORE_COLUMNS = ("churn_probability", "p_alive", "expected_purchases", "predicted_clv", "value_at_risk")
"""Numeric outputs every scores table must have, all finite."""
OPTIONAL_SCORE_COLUMNS = ("expected_avg_spend", "value_if_retained", "expected_saved_value")
"""Numeric outputs checked when present."""
PROBABILITY_COLUMNS = ("churn_probability", "p_alive")
"""Columns that must lie strictly inside (0, 1)."""
NONNEGATIVE_COLUMNS = ("expected_purchases", "predicted_clv", "value_at_risk", "expected_avg_spend", "value_if_retained", "expected_saved_value")
"""Counts and values that cannot be negative."""
CLV_SPEND_MULTIPLE = 50.0
CLV_POPULATION_QUANTILE = 0.99
PURCHASE_RATE_MULTIPLE = 50.0
MIN_TENURE_DAYS = 30.0
MIN_CUSTOMERS_FOR_SPREAD = 100
CHURN_BASELINE = "recency"
VALUE_BASELINE = "naive"


# --------------------------------------------------------------------------- helpers


def _ids(scores: pd.DataFrame) -> pd.Index:
    return pd.Index(customer_ids(scores), name="customer_id")


def _fmt(x: float) -> str:
    if not np.isfinite(x):
        return str(x)
    return f"{x:.4g}" if abs(x) < 1e6 else f"{x:.3e}"


def observed_rates(transactions: pd.DataFrame, as_of=None) -> pd.DataFrame:
    """What each customer actually did before ``as_of`` (default: the day after the last
    transaction), from a raw or canonical log (``customer_id, timestamp, amount`` and optionally
    ``order_id`` / ``is_return`` / ``cancelled_at``): ``n_purchases`` (orders with a non-negative
    net amount), ``net_spend`` (all amounts, returns included), ``tenure_days`` (first purchase to
    ``as_of``), and the per-day ``purchase_rate`` and ``spend_rate`` (max(net spend, 0)) over
    max(tenure, :data:`MIN_TENURE_DAYS`). Indexed by ``customer_id`` (str). Cancellations apply as
    in the features: rows cancelled before ``as_of`` are left out (a raw log without
    ``cancelled_at`` is matched first by :func:`churnml.io.prepare_transactions`' rules), so a
    fully cancelled order is no purchase."""
    tx = _with_cancellations(transactions)
    ts = pd.to_datetime(tx["timestamp"])
    as_of = pd.Timestamp(as_of) if as_of is not None else ts.max().normalize() + pd.Timedelta(days=1)
    if "cancelled_at" in tx.columns:
        from churnml.io import active_rows

        tx = active_rows(tx, as_of)
        ts = pd.to_datetime(tx["timestamp"])
    keep = (ts < as_of).to_numpy()
    cid = tx["customer_id"].astype(str).to_numpy()[keep]
    ts = ts.to_numpy()[keep]
    amount = pd.to_numeric(tx["amount"], errors="coerce").fillna(0.0).to_numpy(dtype=float)[keep] if "amount" in tx else np.zeros(keep.sum())
    key = tx["order_id"].astype(str).to_numpy()[keep] if "order_id" in tx.columns else ts
    orders = pd.DataFrame({"customer_id": cid, "key": key, "timestamp": ts, "amount": amount})
    orders = orders.groupby(["customer_id", "key"], sort=False).agg(timestamp=("timestamp", "min"), amount=("amount", "sum"))
    orders = orders.reset_index()
    bought = orders.loc[orders["amount"] >= 0]
    g = bought.groupby("customer_id")
    out = pd.DataFrame({"n_purchases": g.size(), "first_purchase": g["timestamp"].min()})
    out["net_spend"] = orders.groupby("customer_id")["amount"].sum().reindex(out.index).fillna(0.0)
    out["tenure_days"] = (as_of - out["first_purchase"]) / pd.Timedelta(days=1)
    denom = np.maximum(out["tenure_days"].to_numpy(dtype=float), MIN_TENURE_DAYS)
    out["purchase_rate"] = out["n_purchases"] / denom
    out["spend_rate"] = np.maximum(out["net_spend"].to_numpy(dtype=float), 0.0) / denom
    out.index = out.index.astype(str)
    out.index.name = "customer_id"
    return out


def _with_cancellations(tx: pd.DataFrame) -> pd.DataFrame:
    """A raw log (no ``cancelled_at``) with amounts as canonical orders with cancellations marked;
    anything else (or a log the loader rejects) as it is."""
    if "cancelled_at" in tx.columns or "amount" not in tx.columns or "is_return" in tx.columns:
        return tx
    from churnml.config import ColumnsConfig
    from churnml.errors import DataError
    from churnml.io import prepare_transactions

    cols = ColumnsConfig(customer_id="customer_id", timestamp="timestamp", amount="amount",
                         order_id="order_id" if "order_id" in tx.columns else None)
    try:
        out, _ = prepare_transactions(tx[[c for c in ("customer_id", "timestamp", "order_id", "amount") if c in tx.columns]],
                                      columns=cols, max_abs_amount=None)
    except (DataError, ValueError, TypeError):
        return tx
    return out


def _observed_from_scores(scores: pd.DataFrame) -> pd.DataFrame | None:
    """The same as :func:`observed_rates` from the descriptive columns of a scores table."""
    spend_col = "net_spend" if "net_spend" in scores.columns else "total_spend" if "total_spend" in scores.columns else None
    if spend_col is None or "n_purchases" not in scores.columns or "tenure_days" not in scores.columns:
        return None
    out = pd.DataFrame(index=_ids(scores))
    out["n_purchases"] = scores["n_purchases"].to_numpy(dtype=float)
    out["net_spend"] = scores[spend_col].to_numpy(dtype=float)
    out["tenure_days"] = scores["tenure_days"].to_numpy(dtype=float)
    denom = np.maximum(out["tenure_days"].to_numpy(), MIN_TENURE_DAYS)
    out["purchase_rate"] = out["n_purchases"] / denom
    out["spend_rate"] = np.maximum(out["net_spend"].to_numpy(), 0.0) / denom
    return out


# --------------------------------------------------------------------------- scores


def check_scores(scores: pd.DataFrame, transactions: pd.DataFrame | None = None, config: Config | None = None) -> list[str]:
    """Problems a marketer would hit in a scores table (``customers.parquet`` of ``churnml run``
    or the output of ``churnml score``); empty when it passes. See the module docstring for the
    checks and thresholds. ``transactions`` (raw or canonical) gives each customer's observed
    purchases and spend; without it the table's ``n_purchases``, ``tenure_days`` and
    ``net_spend`` columns are used. ``config`` gives the CLV horizon and the segment matrix
    (defaults otherwise). Tables without ``segment`` get the tiers and segments ``churnml score``
    would add (:func:`churnml.segments.assign_segments`)."""
    cfg = config or Config()
    problems: list[str] = []
    n = len(scores)
    if n == 0:
        return ["the scores table is empty: no customer was scored"]
    ids = _ids(scores)
    missing = [c for c in SCORE_COLUMNS if c not in scores.columns]
    if missing:
        problems.append(f"missing output column(s) {missing}")
    num: dict[str, np.ndarray] = {}
    for col in [c for c in (*SCORE_COLUMNS, *OPTIONAL_SCORE_COLUMNS) if c in scores.columns]:
        v = pd.to_numeric(scores[col], errors="coerce").to_numpy(dtype=float)
        num[col] = v
        bad = ~np.isfinite(v)
        if bad.any():
            kinds = ", ".join(f"{k} {int(c)}" for k, c in (("NaN", np.isnan(v).sum()), ("inf", np.isinf(v).sum())) if c)
            problems.append(f"{col}: {int(bad.sum())} of {n} customers have a non-finite value ({kinds}), {_examples(ids, bad)}")
    for col in PROBABILITY_COLUMNS:
        if col not in num:
            continue
        v = num[col]
        fin = np.isfinite(v)
        outside = fin & ((v < 0) | (v > 1))
        if outside.any():
            problems.append(f"{col}: {int(outside.sum())} of {n} customers outside [0, 1] (range {_fmt(np.nanmin(v))} to {_fmt(np.nanmax(v))}), {_examples(ids, outside)}")
        for edge in (0.0, 1.0):
            hit = fin & (v == edge)
            if hit.any():
                who = "everyone" if hit.all() else f"{int(hit.sum())} of {n} customers"
                problems.append(f"{col}: exactly {edge:g} for {who} (a probability strictly inside (0, 1) expected), {_examples(ids, hit)}")
    for col in NONNEGATIVE_COLUMNS:
        if col in num:
            neg = np.isfinite(num[col]) & (num[col] < 0)
            if neg.any():
                problems.append(f"{col}: {int(neg.sum())} of {n} customers negative (min {_fmt(num[col][neg].min())}), {_examples(ids, neg, -num[col])}")
    if n >= MIN_CUSTOMERS_FOR_SPREAD:
        for col in ("churn_probability", "p_alive", "predicted_clv"):
            if col in num and np.isfinite(num[col]).all() and np.ptp(num[col]) == 0:
                problems.append(f"{col}: the same value {_fmt(num[col][0])} for all {n} customers (nothing to rank by)")
    # value at risk = churn probability x the value a retained customer brings (value_if_retained
    # when the table has it, else predicted_clv)
    base = "value_if_retained" if "value_if_retained" in num else "predicted_clv"
    if {"churn_probability", base, "value_at_risk"} <= set(num):
        expect = num["churn_probability"] * num[base]
        with np.errstate(invalid="ignore"):
            off = np.isfinite(expect) & np.isfinite(num["value_at_risk"]) & ~np.isclose(num["value_at_risk"], expect, rtol=1e-6, atol=1e-6)
        if off.any():
            problems.append(f"value_at_risk: {int(off.sum())} of {n} customers differ from churn_probability x {base}, {_examples(ids, off)}")

    # plausibility against what customers actually did
    as_of = pd.to_datetime(scores["as_of"]).max() if "as_of" in scores.columns else None
    obs = observed_rates(transactions, as_of) if transactions is not None else _observed_from_scores(scores)
    horizon = float(cfg.clv.horizon_days)
    if obs is None:
        problems.append("cannot check predicted_clv and expected_purchases against observed behaviour: "
                        "no transactions given and no n_purchases/tenure_days/net_spend columns")
    else:
        o = obs.reindex(ids)
        known = o["n_purchases"].notna().to_numpy()
        if not known.all():
            problems.append(f"{int((~known).sum())} of {n} scored customers have no purchase before the scoring date, {_examples(ids, ~known)}")
        spend_h = o["spend_rate"].to_numpy(dtype=float) * horizon
        pop = float(np.nanquantile(obs["spend_rate"].to_numpy(dtype=float), CLV_POPULATION_QUANTILE)) * horizon
        if "predicted_clv" in num and pop > 0:
            limit = CLV_SPEND_MULTIPLE * np.fmax(spend_h, pop)
            clv = num["predicted_clv"]
            over = known & np.isfinite(clv) & (clv > limit)
            if over.any():
                i = np.flatnonzero(over)[np.argmax(clv[over])]
                problems.append(
                    f"predicted_clv: {int(over.sum())} of {n} customers above {CLV_SPEND_MULTIPLE:g}x their observed spend over the "
                    f"{horizon:g}-day horizon (or {CLV_SPEND_MULTIPLE:g}x the population's p{CLV_POPULATION_QUANTILE * 100:g}, {_fmt(pop)}); "
                    f"worst {ids[i]}: predicted {_fmt(clv[i])} vs observed {_fmt(spend_h[i])}, {_examples(ids, over, clv)}"
                )
        if "expected_purchases" in num:
            max_rate = float(np.nanmax(obs["purchase_rate"].to_numpy(dtype=float))) * horizon
            limit = PURCHASE_RATE_MULTIPLE * max_rate
            ep = num["expected_purchases"]
            over = np.isfinite(ep) & (ep > limit)
            if over.any():
                problems.append(
                    f"expected_purchases: {int(over.sum())} of {n} customers above {PURCHASE_RATE_MULTIPLE:g}x the highest observed "
                    f"purchase rate over the {horizon:g}-day horizon ({_fmt(max_rate)} purchases); max {_fmt(np.nanmax(ep))}, "
                    f"{_examples(ids, over, ep)}"
                )
        if "p_alive" in num:
            one = known & (o["n_purchases"].to_numpy(dtype=float) == 1)
            if one.any() and (num["p_alive"][one] == 1.0).all():
                problems.append(f"p_alive: all {int(one.sum())} one-time buyers have P(alive) = 1.0, {_examples(ids, one)}")

    problems += _check_segments(scores, cfg, ids)
    return problems


def _check_segments(scores: pd.DataFrame, cfg: Config, ids: pd.Index) -> list[str]:
    seg_cfg = cfg.segments
    if "segment" not in scores.columns:
        if not {"churn_probability", "predicted_clv"} <= set(scores.columns):
            return []
        from churnml.segments import assign_segments

        cols = [c for c in ("churn_probability", "predicted_clv", "value_if_retained") if c in scores.columns]
        scores = assign_segments(scores[cols], seg_cfg)
    problems: list[str] = []
    n = len(scores)
    seg = scores["segment"].astype("string").fillna("<missing>").to_numpy(dtype=object)
    names = set(seg_cfg.matrix.values())
    unknown = ~np.isin(seg, list(names))
    if unknown.any():
        problems.append(f"segment: {int(unknown.sum())} of {n} customers in segment(s) {sorted(set(seg[unknown]))} that the config matrix "
                        f"does not name, {_examples(ids, unknown)}")
    if not {"risk_tier", "value_tier"} <= set(scores.columns):
        return problems + ["segment: no risk_tier/value_tier columns to check the segments against"]
    risk = scores["risk_tier"].astype(str).to_numpy(dtype=object)
    value = scores["value_tier"].astype(str).to_numpy(dtype=object)
    for col, tier, labels in (("risk_tier", risk, seg_cfg.risk.labels), ("value_tier", value, seg_cfg.value.labels)):
        bad = ~np.isin(tier, labels)
        if bad.any():
            problems.append(f"{col}: {int(bad.sum())} of {n} customers have tier(s) {sorted(set(tier[bad]))} not in {labels}, {_examples(ids, bad)}")
    expected = pd.Series(risk + "|" + value).map(seg_cfg.matrix).astype("string").fillna("<none>").to_numpy(dtype=object)
    wrong = expected != seg
    if wrong.any():
        problems.append(f"segment: {int(wrong.sum())} of {n} customers are not in their tiers' matrix cell, {_examples(ids, wrong)}")
    top_r, top_v = seg_cfg.risk.labels[-1], seg_cfg.value.labels[-1]
    save = seg_cfg.matrix.get(f"{top_r}|{top_v}")
    both = (risk == top_r) & (value == top_v)
    if save is not None and both.any() and not (seg == save).any():
        problems.append(f"segment: {save!r} is empty although {int(both.sum())} customers are {top_r} risk and {top_v} value, {_examples(ids, both)}")
    return problems


# --------------------------------------------------------------------------- backtests


@dataclasses.dataclass
class Verdict:
    """Whether a model beats its naive baseline in a backtest (``None``: could not be told).

    Churn verdicts also carry ``outcome`` ("beats", "worse", "no significant difference", or
    None when it cannot be told), the paired difference (model - baseline) with its 95%
    interval, and ``worse_than``: every baseline significantly ahead of the shipped scorer."""

    beats: bool | None
    model: str | None
    model_score: float
    baseline: str
    baseline_score: float
    sentence: str
    outcome: str | None = None
    diff: float = float("nan")
    ci_low: float = float("nan")
    ci_high: float = float("nan")
    worse_than: tuple[str, ...] = ()


CHURN_BASELINES = ("recency", "logistic_rfm", "btyd")
"""The churn backtest's baselines (scorers of :class:`churnml.churn.ChurnBacktest`)."""
CHURN_BASELINE_NAMES = {"recency": "recency alone", "logistic_rfm": "logistic RFM", "btyd": "the BG/NBD prior"}


@dataclasses.dataclass(frozen=True)
class PairedDifference:
    """ROC AUC of the backtest's ``model`` row minus a baseline's, the mean over the backtest
    cutoffs, with its paired customer-level bootstrap 95% interval (each resample draws the same
    customers for both scorers and at every cutoff)."""

    baseline: str
    model_auc: float
    baseline_auc: float
    diff: float
    ci_low: float
    ci_high: float

    @property
    def outcome(self) -> str | None:
        """"beats" (interval above 0), "worse" (below 0), "no significant difference" (it
        contains 0), None (no difference or no interval: it cannot be told)."""
        return interval_outcome(self.ci_low, self.ci_high) if math.isfinite(self.diff) else None

    def phrase(self) -> str:
        """"ROC AUC 0.712 vs 0.728, difference -0.016 (95% interval -0.030 to -0.002)"."""
        ci = (f" (95% interval {self.ci_low:+.3f} to {self.ci_high:+.3f})"
              if math.isfinite(self.ci_low) and math.isfinite(self.ci_high) else " (no interval: churn.bootstrap_resamples is 0)")
        return f"ROC AUC {self.model_auc:.3f} vs {self.baseline_auc:.3f}, difference {self.diff:+.3f}{ci}"


def churn_differences(summary) -> dict[str, PairedDifference]:
    """Model minus each baseline (:data:`CHURN_BASELINES` present in ``summary``): the churn
    backtest summary (DataFrame indexed by scorer, or its ``to_dict('index')`` as in
    ``run_report.json``); empty when there is no ``model`` row or no ``roc_auc``."""
    s = _as_frame(summary)
    if s is None or "roc_auc" not in s.columns or "model" not in s.index:
        return {}
    num = lambda name, col: float(pd.to_numeric(s.loc[name, col], errors="coerce")) if col in s.columns else float("nan")
    out = {}
    for b in CHURN_BASELINES:
        if b not in s.index:
            continue
        m, a = num("model", "roc_auc"), num(b, "roc_auc")
        d = num("model", f"roc_auc_diff_vs_{b}")
        if not math.isfinite(d):
            d = m - a
        out[b] = PairedDifference(b, m, a, d, num("model", f"roc_auc_diff_vs_{b}_ci_low"), num("model", f"roc_auc_diff_vs_{b}_ci_high"))
    return out


def _verdict_words(d: PairedDifference, subject: str) -> str:
    name = CHURN_BASELINE_NAMES.get(d.baseline, d.baseline)
    o = d.outcome
    if o == BEATS:
        return f"{subject} beats {name}: {d.phrase()}"
    if o == WORSE:
        return f"{subject} is worse than {name}: {d.phrase()}"
    if o == NO_DIFFERENCE:
        return f"{subject} shows no significant difference from {name}: {d.phrase()}"
    return f"{subject} cannot be judged against {name}: {d.phrase()}"


@dataclasses.dataclass
class BacktestVerdict:
    """Churn and value verdicts of one run, and one plain paragraph saying both."""

    churn: Verdict
    value: Verdict

    @property
    def beats_baselines(self) -> bool | None:
        """True when both models beat their baselines, False when either loses, else None."""
        flags = [self.churn.beats, self.value.beats]
        if False in flags:
            return False
        return True if all(f is True for f in flags) else None

    @property
    def sentence(self) -> str:
        return f"{self.churn.sentence} {self.value.sentence}"


def _as_frame(table) -> pd.DataFrame | None:
    if table is None:
        return None
    if isinstance(table, dict):
        table = pd.DataFrame.from_dict(table, orient="index")
    return table if len(table) else None


def churn_verdict(summary, shipped: dict | None = None) -> Verdict:
    """Is the shipped churn scorer ahead of recency alone (and of the other baselines)?

    ``summary``: the churn backtest summary (DataFrame indexed by scorer with ``roc_auc`` and, on
    the ``model`` row, ``roc_auc_diff_vs_<baseline>`` and its ``_ci_low`` / ``_ci_high``; or its
    ``to_dict('index')``), scorers ``model``, ``recency``, ``logistic_rfm``, ``btyd``; ``None``
    when no backtest ran. "Beats" only when the paired 95% interval of (model - baseline),
    pooled over the backtest cutoffs, lies above 0; "is worse than" when it lies below 0; "no
    significant difference" otherwise; without an interval it cannot be told (``beats`` None).

    Selection and judgement use different data: in every backtest fold the model's scorer is
    chosen (:class:`churnml.churn.ChurnModel`) on held-out customers of the validation cutoff,
    one churn horizon *before* the backtest cutoff that judges it (a later, disjoint outcome
    window). ``shipped``: ``churn_training["shipped_scorer"]`` of the run report; when the run
    shipped a baseline because the backtest showed it significantly ahead (``override``), the
    verdict is about that baseline and says that it was chosen on this same backtest.
    """
    s = _as_frame(summary)
    nan = float("nan")
    if s is None or "roc_auc" not in s.columns or "model" not in s.index or CHURN_BASELINE not in s.index:
        return Verdict(None, "model", nan, CHURN_BASELINE, nan,
                       "No churn backtest was possible on this log, so nobody knows whether the churn model beats recency alone.")
    diffs = churn_differences(s)
    rec = diffs[CHURN_BASELINE]
    m, b = rec.model_auc, rec.baseline_auc
    if not (math.isfinite(m) and math.isfinite(b)):
        return Verdict(None, "model", m, CHURN_BASELINE, b,
                       f"The churn backtest could not rank customers (ROC AUC model {m:.3f}, recency {b:.3f}), so it does not show the model beats recency alone.")
    worse = tuple(k for k, d in diffs.items() if d.outcome == WORSE)
    if shipped and shipped.get("override") and shipped.get("baseline") in diffs:
        base = shipped["baseline"]
        name = CHURN_BASELINE_NAMES.get(base, base)
        text = (f"The held-out selection was worse than {name} in the churn backtest ({diffs[base].phrase()}, "
                f"mean over the backtest cutoffs), so {name} ships as the churn scorer; it was chosen on this same "
                "backtest, so its figure is not an independent test.")
        # the backtest has no paired interval of this baseline against the others: not told
        return Verdict(None, base, diffs[base].baseline_auc, CHURN_BASELINE, b, text, None, nan, nan, nan, worse)
    parts = [_verdict_words(rec, "the shipped churn scorer")]
    parts += [_verdict_words(d, "it") for k, d in diffs.items() if k != CHURN_BASELINE]
    text = ("In the churn backtest (mean over the backtest cutoffs, paired customer-level bootstrap 95% intervals), "
            + "; ".join(parts) + ".")
    if rec.outcome == WORSE:
        text += " A list sorted by days since the last purchase ranks churners better on this log."
    beats = {BEATS: True, WORSE: False, NO_DIFFERENCE: False}.get(rec.outcome)
    return Verdict(beats, "model", m, CHURN_BASELINE, b, text, rec.outcome, rec.diff, rec.ci_low, rec.ci_high, worse)


VALUE_SPREADSHEET = SPREADSHEET
"""The value backtest's spreadsheet answers (:data:`churnml.value.SPREADSHEET`)."""


def _diff_text(t: pd.DataFrame, c: str) -> str:
    d, lo, hi = (float(t.loc[c, k]) for k in ("score_diff", "score_diff_ci_low", "score_diff_ci_high"))
    return f"{SPREADSHEET_LABELS.get(c, c)} {float(t.loc[c, 'score']):.3f} (difference {d:+.3f}, 95% interval [{lo:+.3f}, {hi:+.3f}])"


def _outcome(t: pd.DataFrame, c: str) -> str | None:
    """:func:`churnml.evaluation.interval_outcome` of row ``c``'s score difference interval."""
    return interval_outcome(t.loc[c, "score_diff_ci_low"], t.loc[c, "score_diff_ci_high"])


def value_verdict(metrics, chosen: str | None) -> Verdict:
    """Does the shipped value model beat the spreadsheet answers? ``metrics``: the value backtest
    table (index ``naive``/``btyd``/``ml``/``blend``/``past_spend``/``recent_spend``, columns
    ``spearman``, ``top_decile_capture``, ``total_ratio``, ``score`` and, from the judging half,
    ``score_diff``/``score_diff_ci_low``/``score_diff_ci_high``: shipped minus that row with its
    paired bootstrap 95% interval; or its dict), ``chosen``: the candidate that ships; ``None``
    when no backtest ran.

    "beats" only when every spreadsheet answer's interval lies above 0; "does NOT beat" when
    one lies below 0; otherwise "no significant difference" (``beats`` False). A shipped spreadsheet
    answer is not a model beating anything (``beats`` False); the sentence gives the best model's
    interval. The choice was made on the selection half and is not revisited. Without interval
    columns (an older report) a point-estimate lead is not called a win (``beats`` None)."""
    t = _as_frame(metrics)
    nan = float("nan")
    if t is None or "score" not in t.columns or VALUE_BASELINE not in t.index or chosen not in t.index:
        return Verdict(None, chosen, nan, VALUE_BASELINE, nan,
                       f"No value backtest was possible on this log, so nobody knows whether the shipped value model ({chosen}) "
                       "beats the naive spend-rate forecast.")
    m, b = float(t.loc[chosen, "score"]), float(t.loc[VALUE_BASELINE, "score"])
    if not (math.isfinite(m) and math.isfinite(b)):
        return Verdict(None, chosen, m, VALUE_BASELINE, b,
                       f"The value backtest could not score the models (score {chosen} {m:.3f}, naive {b:.3f}).")
    if {"score_diff_ci_low", "score_diff_ci_high", "score_diff"} <= set(t.columns):
        return _interval_value_verdict(t, chosen)

    def part(col: str, label: str) -> str:
        if col not in t.columns:
            return ""
        return f"{label} {float(t.loc[chosen, col]):.3f} vs {float(t.loc[VALUE_BASELINE, col]):.3f}"

    details = "; ".join(p for p in (part("spearman", "Spearman"), part("top_decile_capture", "top-decile capture")) if p)
    ratio = f"; predicted/actual total {float(t.loc[chosen, 'total_ratio']):.3g}" if "total_ratio" in t.columns else ""
    if chosen == VALUE_BASELINE:
        models = [c for c in t.index if c != VALUE_BASELINE and np.isfinite(float(t.loc[c, "score"]))]
        best = max(models, key=lambda c: float(t.loc[c, "score"])) if models else None
        vs = f"; the best model, {best}, scores {float(t.loc[best, 'score']):.3f}" if best else ""
        text = (f"No value model beats the naive spend-rate forecast in the backtest, so the naive forecast ships "
                f"(score {b:.3f}{vs}).")
        return Verdict(False, chosen, m, VALUE_BASELINE, b, text)
    if m > b:
        text = (f"The shipped value model ({chosen}) scores above the naive spend-rate forecast in the backtest: score {m:.3f} vs {b:.3f} "
                f"({details}{ratio}), but the backtest gave no interval, so it is not shown to beat it.")
        return Verdict(None, chosen, m, VALUE_BASELINE, b, text)
    text = (f"The shipped value model ({chosen}) does NOT beat the naive spend-rate forecast in the backtest: score {m:.3f} vs "
            f"{b:.3f} ({details}{ratio}); past spend rate x horizon ranks customers as well on this log.")
    return Verdict(False, chosen, m, VALUE_BASELINE, b, text)


def _interval_value_verdict(t: pd.DataFrame, chosen: str) -> Verdict:
    """:func:`value_verdict` from the judging half's paired intervals."""
    score = pd.to_numeric(t["score"], errors="coerce")
    m = float(score[chosen])
    sheets = [c for c in VALUE_SPREADSHEET if c in t.index and c != chosen]
    base = max(sheets, key=lambda c: np.nan_to_num(score[c], nan=-np.inf)) if sheets else VALUE_BASELINE
    b = float(score[base]) if base in score.index else float("nan")
    where = "on the judging half of the customers (the other half chose the model)"
    if chosen in VALUE_SPREADSHEET:
        models = [c for c in t.index if c not in VALUE_SPREADSHEET and math.isfinite(float(score[c]))]
        best = max(models, key=lambda c: float(score[c])) if models else None
        vs = ""
        if best is not None:
            d, lo, hi = (float(t.loc[best, k]) for k in ("score_diff", "score_diff_ci_low", "score_diff_ci_high"))
            lab = {BEATS: f"{SPREADSHEET_LABELS[chosen]} is significantly better", WORSE: f"{best} is significantly better",
                   NO_DIFFERENCE: NO_DIFFERENCE, None: "no interval"}[_outcome(t, best)]
            vs = (f"; the best model, {best}, scores {float(score[best]):.3f} ({SPREADSHEET_LABELS[chosen]} minus {best}: {d:+.3f}, "
                  f"95% interval [{lo:+.3f}, {hi:+.3f}]: {lab})")
        text = (f"A spreadsheet answer ships: {SPREADSHEET_LABELS[chosen]} scored best on the selection half of the customers; "
                f"on the judging half it scores {m:.3f}{vs}.")
        return Verdict(False, chosen, m, base, b, text)
    outcomes = {c: _outcome(t, c) for c in sheets}
    worse = [c for c in sheets if outcomes[c] == WORSE]
    unclear = [c for c in sheets if outcomes[c] in (NO_DIFFERENCE, None)]
    if not sheets:
        return Verdict(None, chosen, m, base, b, f"The value backtest has no spreadsheet answer to compare the shipped model ({chosen}) with.")
    if worse:
        text = (f"The shipped value model ({chosen}, score {m:.3f}) does NOT beat the spreadsheet answers {where}: it is significantly worse than "
                + "; ".join(_diff_text(t, c) for c in worse) + ".")
        return Verdict(False, chosen, m, base, b, text)
    if unclear:
        text = (f"The shipped value model ({chosen}, score {m:.3f}) does not beat every spreadsheet answer {where}: "
                f"no significant difference from " + "; ".join(_diff_text(t, c) for c in unclear)
                + (f" (it beats {' and '.join(SPREADSHEET_LABELS[c] for c in sheets if c not in unclear)})" if len(unclear) < len(sheets) else "") + ".")
        return Verdict(False, chosen, m, base, b, text)
    text = (f"The shipped value model ({chosen}, score {m:.3f}) beats every spreadsheet answer {where}: "
            + "; ".join(_diff_text(t, c) for c in sheets) + ".")
    return Verdict(True, chosen, m, base, b, text)


def check_backtest(churn_summary, value_metrics, value_chosen: str | None, churn_shipped: dict | None = None) -> BacktestVerdict:
    """Both verdicts: churn model vs recency (ROC AUC, paired intervals; see :func:`churn_verdict`),
    shipped value model vs the spreadsheet
    answers (score, judging half, paired intervals)."""
    return BacktestVerdict(churn_verdict(churn_summary, churn_shipped), value_verdict(value_metrics, value_chosen))


# --------------------------------------------------------------------------- a run's outputs


@dataclasses.dataclass
class RunCheck:
    """Sanity problems and backtest verdict of one ``churnml run`` output folder."""

    problems: list[str]
    verdict: BacktestVerdict
    scores: pd.DataFrame
    report: dict[str, Any]

    @property
    def ok(self) -> bool:
        return not self.problems


def check_run_outputs(out_dir: str | Path, config: Config | None = None, transactions: pd.DataFrame | None = None) -> RunCheck:
    """Read ``customers.parquet`` and ``run_report.json`` from a ``churnml run`` folder and check
    them: :func:`check_scores` and :func:`check_backtest`."""
    out = Path(out_dir)
    scores = pd.read_parquet(out / "customers.parquet")
    report = json.loads((out / "run_report.json").read_text())
    problems = check_scores(scores, transactions, config)
    vb = report.get("value_backtest") or {}
    verdict = check_backtest(report.get("churn_backtest"), vb.get("metrics"), vb.get("chosen") or report.get("value_model"),
                             churn_shipped=(report.get("churn_training") or {}).get("shipped_scorer"))
    return RunCheck(problems, verdict, scores, report)
