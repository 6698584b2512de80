"""Customer-level bootstrap intervals of churn metrics (churnml.evaluation)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import norm
from sklearn.metrics import average_precision_score, roc_auc_score

from churnml.evaluation import (
    _auc_ap,
    _Ranked,
    bootstrap_intervals,
    bootstrap_replicates,
    bootstrap_weights,
)


def test_weighted_auc_and_average_precision_equal_sklearn():
    rng = np.random.default_rng(0)
    n = 3000
    y = (rng.uniform(size=n) < 0.7).astype(float)
    for s in (rng.normal(y, 1.0), np.round(rng.normal(y, 1.0), 1)):  # continuous, and many ties
        W = np.vstack([np.ones(n), rng.poisson(1.0, n), rng.integers(0, 4, n)]).astype(float)
        auc, ap = _auc_ap(*_Ranked(y, s).pos_neg(W))
        auc32, ap32 = _auc_ap(*_Ranked(y, s).pos_neg(W.astype(np.float32)))  # what the bootstrap runs on
        for i in range(len(W)):
            assert auc[i] == pytest.approx(roc_auc_score(y, s, sample_weight=W[i]), abs=1e-12)
            assert ap[i] == pytest.approx(average_precision_score(y, s, sample_weight=W[i]), abs=1e-12)
            assert auc32[i] == pytest.approx(auc[i], abs=1e-6) and ap32[i] == pytest.approx(ap[i], abs=1e-6)


def test_weights_are_poisson_and_the_same_customer_draw_everywhere():
    ids = np.array([f"c{i}" for i in range(5000)])
    w = bootstrap_weights(ids=ids, n_resamples=100, seed=42)
    assert w.shape == (100, 5000)
    assert w.mean() == pytest.approx(1.0, abs=0.01) and w.var() == pytest.approx(1.0, abs=0.02)
    # a subset, another order, later resamples: the same weights per (customer, resample)
    sub = ids[[4000, 17, 2500]]
    np.testing.assert_array_equal(bootstrap_weights(ids=sub, n_resamples=100, seed=42), w[:, [4000, 17, 2500]])
    np.testing.assert_array_equal(bootstrap_weights(ids=ids, n_resamples=40, seed=42, start=60), w[60:])
    assert not np.array_equal(bootstrap_weights(ids=ids, n_resamples=100, seed=43), w)


def test_interval_of_a_zero_difference_covers_zero_at_the_nominal_rate():
    """Two equally good scorers with independent errors: the true ROC AUC difference is 0, and
    each AUC is Phi(d / sqrt 2) (binormal); 95% intervals should cover them ~95% of the time."""
    rng = np.random.default_rng(11)
    d, n, sims = 1.0, 400, 150
    true_auc = norm.cdf(d / np.sqrt(2))
    cover_diff = cover_auc = 0
    for i in range(sims):
        y = (rng.uniform(size=n) < 0.3).astype(float)
        scores = {"model": y * d + rng.normal(size=n), "other": y * d + rng.normal(size=n)}
        scores = {k: 1 / (1 + np.exp(-v)) for k, v in scores.items()}  # probabilities: same ranks
        ci = bootstrap_intervals(y, scores, reference="model", n_resamples=200, seed=i)
        lo, hi = ci.loc["model", ["roc_auc_diff_vs_other_ci_low", "roc_auc_diff_vs_other_ci_high"]]
        cover_diff += lo <= 0 <= hi
        lo, hi = ci.loc["model", ["roc_auc_ci_low", "roc_auc_ci_high"]]
        cover_auc += lo <= true_auc <= hi
    assert 0.88 <= cover_diff / sims <= 0.99
    assert 0.88 <= cover_auc / sims <= 0.99


def test_replicates_are_paired_and_degenerate_resamples_are_nan():
    rng = np.random.default_rng(2)
    y = (rng.uniform(size=500) < 0.5).astype(float)
    p = rng.uniform(size=500)
    reps = bootstrap_replicates(y, {"model": p, "same": p.copy()}, reference="model", n_resamples=50, seed=0)
    np.testing.assert_array_equal(reps["model"]["roc_auc_diff_vs_same"], np.zeros(50))  # same resamples
    one = bootstrap_replicates(np.ones(30), {"model": p[:30]}, n_resamples=20, seed=0)
    assert np.isnan(one["model"]["roc_auc"]).all() and np.isfinite(one["model"]["brier"]).all()
    ci = bootstrap_intervals(np.ones(30), {"model": p[:30]}, n_resamples=20)
    assert np.isnan(ci.loc["model", "roc_auc_ci_low"])


@pytest.mark.slow
def test_churn_backtest_reports_the_recent_subset_and_intervals():
    """CDNOW sample: every metric also for customers active within 2 horizons, 95% intervals, and
    paired model-minus-baseline differences; summary indexed by scorer as before."""
    import json
    from pathlib import Path

    import churnml
    from churnml.churn import BASELINES, FeatureStore, churn_backtest

    cfg = churnml.load_config(Path(__file__).resolve().parents[1] / "configs" / "cdnow_sample.yaml")
    ds = churnml.load_dataset(cfg)
    bt = churn_backtest(FeatureStore(ds.transactions, cfg, events=ds.events, customers=ds.customers))
    per, s = bt.per_cutoff, bt.summary
    assert per.index.names == ["cutoff", "scorer"] and list(s.index) == ["model", *BASELINES]
    for prefix in ("", "recent_"):
        for m in ("roc_auc", "pr_auc", "brier"):
            lo, hi = per[f"{prefix}{m}_ci_low"], per[f"{prefix}{m}_ci_high"]
            assert (lo < hi).all() and ((lo <= per[prefix + m]) & (per[prefix + m] <= hi)).all()
        assert {f"{prefix}log_loss", f"{prefix}ece", f"{prefix}lift_top10", f"{prefix}expected_profit_topk"} <= set(per.columns)
        for b in BASELINES:
            diff = per.xs("model", level="scorer")[f"{prefix}roc_auc_diff_vs_{b}"]
            expect = per.xs("model", level="scorer")[f"{prefix}roc_auc"] - per.xs(b, level="scorer")[f"{prefix}roc_auc"]
            np.testing.assert_allclose(diff, expect)
            assert s.loc["model", f"{prefix}roc_auc_diff_vs_{b}_ci_low"] <= s.loc["model", f"{prefix}roc_auc_diff_vs_{b}_ci_high"]
            assert np.isnan(s.loc[b, f"{prefix}roc_auc_diff_vs_{b}"])
    # the recent subset is who bought within 2 x 90 days before the cutoff
    pred = bt.predictions
    for cut, g in pred.groupby("cutoff"):
        row = per.loc[(str(cut.date()), "model")]
        assert row["recent_n"] == g["recent"].sum() < row["n"]
        assert row["recent_churn_rate"] == pytest.approx(g.loc[g["recent"], "churned"].mean())
    # the summary's interval is of the mean over cutoffs: narrower than a single cutoff's
    width = s["roc_auc_ci_high"] - s["roc_auc_ci_low"]
    per_width = (per["roc_auc_ci_high"] - per["roc_auc_ci_low"]).groupby(level="scorer").mean()
    assert (width < per_width.reindex(width.index)).all()
    json.dumps(bt.to_dict(), default=str)
    assert bt.bootstrap["resamples"] == 200 and bt.bootstrap["recent_days"] == 180
