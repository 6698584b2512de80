"""The shipped churn scorer is never significantly worse than a baseline of its own backtest:
the ship-the-winner rule (:func:`churnml.pipeline.ship_decision`, :func:`churnml.pipeline.fit_pipeline`)
and the audit check :func:`churnml.audit.check_churn_winner`, on hand-built backtest summaries
(intervals including / excluding 0) and on a simulated log whose churn is exactly recency."""

from __future__ import annotations

import warnings

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


def _recency_log(n_active=300, n_lapsed=300, days=420, seed=0):
    """A log whose churn is exactly determined by recency at every cutoff after day 60: active
    customers buy every 5 days from their start (days 0-200) to the end of the log; lapsed
    customers make 1-3 purchases in days 0-49 and never return. At a cutoff ``t`` >= day 60 an
    active customer was last seen at most 5 days ago and buys within 5 days (not churned); a
    lapsed one was last seen more than 10 days ago and churns."""
    rng = np.random.default_rng(seed)
    start = pd.Timestamp("2022-01-01")
    rows = []
    for i in range(n_active):
        for d in range(int(rng.integers(0, 200)), days, 5):
            rows.append((f"a{i}", start + pd.Timedelta(days=d), float(rng.gamma(2, 20))))
    for i in range(n_lapsed):
        for d in sorted(rng.choice(50, size=int(rng.integers(1, 4)), replace=False)):
            rows.append((f"l{i}", start + pd.Timedelta(days=int(d)), float(rng.gamma(2, 20))))
    return pd.DataFrame(rows, columns=["customer_id", "timestamp", "amount"])


@pytest.mark.slow
def test_fit_pipeline_ships_the_baseline_that_wins_its_backtest(monkeypatch):
    """Recency is by construction a perfect scorer (churn is exactly "last seen more than 5 days
    ago"); inside every backtest fold the churn model is forced to ship the BG/NBD prior, which
    is replaced by seeded noise. The backtest must show the fold model significantly worse than
    recency, and the run must ship the best baseline of the backtest instead and say so; the
    audit then passes, and fails on the same report when the loser is said to have shipped."""
    import churnml.churn as churn_mod
    from churnml.config import config_from_dict
    from churnml.io import Dataset, prepare_transactions
    from churnml.pipeline import BASELINE_SCORER, fit_pipeline
    from churnml.sanity import churn_differences

    original_features = churn_mod.FeatureStore.features

    def noisy_prior(self, cutoff):
        f = original_features(self, cutoff)
        if "_noise" not in f.attrs:  # the cached frame is shared: replace the prior once
            rng = np.random.default_rng(pd.Timestamp(cutoff).toordinal())
            f["btyd_p_no_purchase"] = rng.uniform(0.05, 0.95, len(f))
            f.attrs["_noise"] = True
        return f

    original_fit = churn_mod.fit_churn_model
    monkeypatch.setattr(churn_mod.FeatureStore, "features", noisy_prior)
    # only the backtest calls churn.fit_churn_model; fit_pipeline's own fit is pipeline.fit_churn_model
    monkeypatch.setattr(churn_mod, "fit_churn_model", lambda store, cut, select="auto": original_fit(store, cut, select="prior"))
    tx, rep = prepare_transactions(_recency_log())
    cfg = config_from_dict({"churn": {"horizon_days": 30, "n_estimators": 30, "bootstrap_resamples": 100}})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pipe, bt = fit_pipeline(Dataset(tx, rep, None, None), cfg)
    assert bt is not None and all(info["chosen"] == "prior" for info in bt.training.values())
    diffs = churn_differences(bt.summary)
    assert diffs["recency"].baseline_auc == pytest.approx(1.0)
    assert diffs["recency"].ci_high < 0  # the fold model loses significantly to recency
    ahead = [b for b, d in diffs.items() if d.ci_high < 0]
    best = max(ahead, key=lambda b: diffs[b].baseline_auc)
    shipped = pipe.training["shipped_scorer"]
    assert shipped["override"] is True and shipped["baseline"] == best
    assert pipe.churn_model.chosen_ == BASELINE_SCORER[best] == shipped["scorer"]
    assert "so " in shipped["sentence"] and "ships as the churn scorer instead" in shipped["sentence"]
    report = {"churn_backtest": bt.summary.to_dict("index"), "churn_training": pipe.training}
    assert check_churn_winner(pd.DataFrame(), cfg, report) == []
    tampered = {**pipe.training, "shipped_scorer": {**shipped, "override": False, "baseline": None, "scorer": "prior"}}
    found = check_churn_winner(pd.DataFrame(), cfg, {"churn_backtest": bt.summary.to_dict("index"), "churn_training": tampered})
    assert [f.severity for f in found] == ["fail"]
