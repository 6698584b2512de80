"""What makes training at a million customers fast must not change what is learnt: shared
per-cutoff features, labels on integer codes, thread counts, seeded customer samples."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import churnml
from churnml.churn import ChurnModel, FeatureStore, churn_labels, fit_churn_model
from churnml.clv import CLVModel
from churnml.datasets import simulate
from churnml.features import rfm_summary
from churnml.sampling import sample_mask
from churnml.value import ValueModel


def _messy_log(seed: int = 0) -> pd.DataFrame:
    """Hourly purchases, returns and cancellations (some before, some after the cutoffs)."""
    rng = np.random.default_rng(seed)
    n = 6000
    cust = rng.integers(0, 400, n)
    ts = pd.Timestamp("2022-01-01") + pd.to_timedelta(rng.integers(0, 730 * 24, n), unit="h")
    tx = pd.DataFrame({"customer_id": [f"k{c}" for c in cust], "timestamp": ts, "amount": rng.gamma(2.0, 20.0, n)})
    ret = rng.random(n) < 0.08
    tx["is_return"] = ret
    tx.loc[ret, "amount"] *= -1
    cancelled = (rng.random(n) < 0.06) & ~ret
    tx["cancelled_at"] = pd.NaT
    tx.loc[cancelled, "cancelled_at"] = tx.loc[cancelled, "timestamp"] + pd.to_timedelta(rng.integers(1, 200, cancelled.sum()), unit="D")
    return tx.sort_values("timestamp", ignore_index=True)


@pytest.mark.parametrize("lookback", [None, 120])
def test_store_labels_equal_the_definition(lookback):
    tx = _messy_log()
    cfg = churnml.Config()
    cfg.churn.lookback_days = lookback
    store = FeatureStore(tx, cfg)
    for cut in ["2022-06-15", "2023-01-01", "2023-08-20 13:00"]:
        fast = store.labels(cut)
        ref = churn_labels(tx, cut, cfg.churn.horizon_days, lookback)
        pd.testing.assert_series_equal(fast, ref)
        assert 0 < fast.mean() < 1
    with pytest.raises(churnml.DataError, match="not complete"):
        store.labels("2023-12-01")


def _sim(n=3000, seed=1):
    tx, _ = simulate(n, "2021-01-01", "2023-07-01", {"r": 1.0, "alpha": 6.0, "a": 0.8, "b": 3.0}, seed=seed)
    return tx


def test_value_model_with_the_shared_store_equals_the_standalone_fit():
    tx = _sim()
    cfg = churnml.Config()
    cfg.clv.horizon_days = 120
    as_of = pd.Timestamp("2023-07-01")
    store = FeatureStore(tx, cfg)
    fit_churn_model(store, as_of)  # fills the store's caches at the churn cutoffs first
    shared = ValueModel(clv=cfg.clv, features=cfg.features, seed=3).fit(tx, as_of, store=store)
    alone = ValueModel(clv=cfg.clv, features=cfg.features, seed=3).fit(tx, as_of)
    assert shared.chosen_ == alone.chosen_
    pd.testing.assert_frame_equal(shared.backtest_.metrics, alone.backtest_.metrics)
    a, b = shared.predict(tx), alone.predict(tx)
    pd.testing.assert_frame_equal(a, b)


def _churn_data(n=4000, seed=0):
    rng = np.random.default_rng(seed)
    X = pd.DataFrame(rng.normal(size=(n, 6)), columns=[f"x{i}" for i in range(6)])
    X["btyd_p_no_purchase"] = 1 / (1 + np.exp(-X["x0"]))
    X["recency_days"] = np.exp(X["x1"]) * 30
    y = (X["x0"] + X["x2"] * X["x3"] + rng.normal(size=n) > 0).astype(int)
    X.index = [f"c{i}" for i in range(n)]
    return X, y


def test_churn_model_is_the_same_on_one_or_two_threads():
    X, y = _churn_data()
    Xv, yv = _churn_data(seed=1)
    Xv.index = [f"v{i}" for i in range(len(Xv))]
    one = ChurnModel(n_estimators=150, seed=5, n_jobs=1).fit(X, y, X_valid=Xv, y_valid=yv)
    two = ChurnModel(n_estimators=150, seed=5, n_jobs=2).fit(X, y, X_valid=Xv, y_valid=yv)
    assert one.best_iteration_ == two.best_iteration_
    np.testing.assert_allclose(one.decision_function(Xv), two.decision_function(Xv), rtol=0, atol=1e-12)


def test_sample_is_seeded_exact_nested_order_free_and_uniform():
    ids = pd.Index([f"cust-{i}" for i in range(20_000)])
    m = sample_mask(ids, 2_000, seed=7)
    assert m.sum() == 2_000
    np.testing.assert_array_equal(m, sample_mask(ids, 2_000, seed=7))
    rev = sample_mask(ids[::-1], 2_000, seed=7)[::-1]
    np.testing.assert_array_equal(m, rev)
    small = sample_mask(ids, 500, seed=7)
    assert (m[small]).all()  # the smaller sample is inside the larger one
    assert (m != sample_mask(ids, 2_000, seed=8)).any()
    # uniform: even numbers are half of the ids, and about half of the sample (4 s.e. band)
    even = np.arange(len(ids)) % 2 == 0
    share = even[m].mean()
    assert abs(share - 0.5) < 4 * np.sqrt(0.25 / 2_000)
    assert sample_mask(ids, None, 1).all() and sample_mask(ids, 10**6, 1).all()


def test_churn_training_rows_are_capped_by_customer():
    tx = _sim(n=2500)
    cfg = churnml.Config()
    cfg.churn.max_train_rows = 3000
    store = FeatureStore(tx, cfg)
    model, _, info = fit_churn_model(store, pd.Timestamp("2023-07-01"))
    assert info["train_rows"] > 3000 * 2
    assert 0.8 * 3000 <= info["train_rows_used"] <= 1.2 * 3000
    # the same customers at every cutoff: a sampled customer keeps all the cutoffs they were in scope at
    full = store.stacked([pd.Timestamp(t) for t in info["train_cutoffs"]])
    cfg2 = churnml.Config()
    cfg2.churn.max_train_rows = 3000
    again, _, info2 = fit_churn_model(FeatureStore(tx, cfg2), pd.Timestamp("2023-07-01"))
    assert info2["train_rows_used"] == info["train_rows_used"]
    np.testing.assert_array_equal(model.decision_function(full), again.decision_function(full))


def test_clv_fit_on_a_customer_sample_recovers_the_parameters():
    truth = {"r": 0.8, "alpha": 5.0, "a": 0.7, "b": 2.5}
    tx, _ = simulate(30_000, "2020-01-01", "2022-01-01", truth, seed=11)
    rfm = rfm_summary(tx, amount="amount", observation_end=pd.Timestamp("2022-01-01"), freq="D", freq_multiplier=7)
    m = CLVModel(purchase_model="bgnbd", max_customers=10_000, seed=3).fit(rfm)
    assert m.n_customers_ == 10_000
    # BG/NBD on 10,000 customers: each parameter within 25% of the truth (several s.e.)
    for k, v in truth.items():
        assert abs(m.params_[k] / v - 1) < 0.25, (k, m.params_[k], v)
    pred = m.predict(rfm)
    assert len(pred) == len(rfm) and np.isfinite(pred["p_alive"]).all()
