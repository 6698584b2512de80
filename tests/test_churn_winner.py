"""The shipped churn scorer is never significantly worse than a baseline of its own backtest:
the ship-the-winner rule (:func:`churnml.pipeline.ship_decision`, :func:`churnml.pipeline.fit_pipeline`)
and the audit check :func:`churnml.audit.check_churn_winner`, on hand-built backtest summaries
(intervals including / excluding 0) and on a simulated log whose churn is exactly recency."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from churnml.audit import check_churn_winner
from churnml.config import Config
from churnml.pipeline import ship_decision


def _summary(auc, diffs_ci):
    """Backtest summary: ROC AUC of model, recency, logistic_rfm, btyd; on the model row the
    difference to each baseline and its paired 95% interval (baseline -> (low, high))."""
    s = pd.DataFrame({"roc_auc": auc}, index=pd.Index(["model", "recency", "logistic_rfm", "btyd"], name="scorer"))
    for b, (lo, hi) in diffs_ci.items():
        s.loc["model", f"roc_auc_diff_vs_{b}"] = s.loc["model", "roc_auc"] - s.loc[b, "roc_auc"]
        s.loc["model", f"roc_auc_diff_vs_{b}_ci_low"] = lo
        s.loc["model", f"roc_auc_diff_vs_{b}_ci_high"] = hi
    return s


NOT_WORSE = _summary([0.72, 0.70, 0.72, 0.71], {"recency": (0.01, 0.03), "logistic_rfm": (-0.01, 0.01), "btyd": (-0.002, 0.02)})
LOSES = _summary([0.70, 0.71, 0.716, 0.69], {"recency": (-0.02, -0.001), "logistic_rfm": (-0.03, -0.002), "btyd": (0.0, 0.02)})


def _report(summary, shipped, cutoffs=2):
    return {"churn_backtest": summary.to_dict("index") if summary is not None else None,
            "churn_training": {"shipped_scorer": shipped, "backtest": {f"2020-0{i + 1}-01": {} for i in range(cutoffs)}}}


def test_ship_decision_keeps_the_selection_unless_a_baseline_is_significantly_ahead():
    select, info = ship_decision(NOT_WORSE, 2)
    assert select == "auto" and info["override"] is False and info["baseline"] is None
    assert info["vs_baselines"]["logistic_rfm"]["outcome"] == "no significant difference"
    assert info["vs_baselines"]["recency"]["outcome"] == "beats"
    # two baselines significantly ahead: the one with the higher backtest AUC ships (logistic RFM, 0.716 > 0.71)
    select, info = ship_decision(LOSES, 2)
    assert select == "logistic_rfm" and info["override"] is True and info["baseline"] == "logistic_rfm"
    assert "significantly worse than logistic RFM" in info["sentence"] and "difference -0.016 (95% interval -0.030 to -0.002)" in info["sentence"]
    # recency ahead alone: the raw recency scorer ships; BG/NBD ahead: the prior ships
    only_recency = _summary([0.70, 0.75, 0.6, 0.6], {"recency": (-0.08, -0.02), "logistic_rfm": (0.05, 0.15), "btyd": (0.05, 0.15)})
    assert ship_decision(only_recency, 2)[0] == "recency"
    only_btyd = _summary([0.70, 0.6, 0.6, 0.73], {"recency": (0.05, 0.15), "logistic_rfm": (0.05, 0.15), "btyd": (-0.05, -0.01)})
    assert ship_decision(only_btyd, 1)[0] == "prior"
    # no backtest: nothing to decide on
    select, info = ship_decision(None, 0)
    assert select == "auto" and "No churn backtest" in info["sentence"]


def test_check_churn_winner_fails_when_the_loser_ships():
    cfg = Config()
    loser = {"override": False, "baseline": None, "scorer": "lightgbm", "backtest_cutoffs": 2}
    found = check_churn_winner(pd.DataFrame(), cfg, _report(LOSES, loser))
    assert [f.severity for f in found] == ["fail"]
    assert "significantly worse than logistic RFM" in found[0].message and "-0.030 to -0.002" in found[0].message
    # a report without shipped_scorer (older runs) ships the model row: the same failure
    assert [f.severity for f in check_churn_winner(pd.DataFrame(), cfg, _report(LOSES, None))] == ["fail"]
    # shipping a baseline that is ahead, but not the best one, still fails
    wrong = {"override": True, "baseline": "recency", "backtest_cutoffs": 2}
    assert [f.severity for f in check_churn_winner(pd.DataFrame(), cfg, _report(LOSES, wrong))] == ["fail"]


def test_check_churn_winner_passes_when_the_winner_ships_or_nobody_wins():
    cfg = Config()
    winner = {"override": True, "baseline": "logistic_rfm", "backtest_cutoffs": 2}
    assert check_churn_winner(pd.DataFrame(), cfg, _report(LOSES, winner)) == []
    assert check_churn_winner(pd.DataFrame(), cfg, _report(NOT_WORSE, {"override": False, "backtest_cutoffs": 2})) == []


def test_check_churn_winner_warns_when_it_cannot_be_told():
    cfg = Config()
    for report in (None, {"churn_backtest": None, "churn_training": {"backtest_note": "no churn backtest was possible: too short"}}):
        found = check_churn_winner(pd.DataFrame(), cfg, report)
        assert [f.severity for f in found] == ["warn"] and "cannot tell" in found[0].message
    assert "too short" in check_churn_winner(pd.DataFrame(), cfg, {"churn_backtest": None, "churn_training": {"backtest_note": "too short"}})[0].message
    one = check_churn_winner(pd.DataFrame(), cfg, _report(NOT_WORSE, {"override": False, "backtest_cutoffs": 1}, cutoffs=1))
    assert [f.severity for f in one] == ["warn"] and "1 cutoff" in one[0].message
    bare = pd.DataFrame({"roc_auc": [0.9, 0.6, 0.6, 0.6]}, index=["model", "recency", "logistic_rfm", "btyd"])
    found = check_churn_winner(pd.DataFrame(), cfg, _report(bare, {"override": False, "backtest_cutoffs": 2}))
    assert [f.severity for f in found] == ["warn"] and "no paired interval" in found[0].message
