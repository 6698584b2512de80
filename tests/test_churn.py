"""Churn labels, time plan, leakage guard, model vs baselines."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import churnml
from churnml.churn import ChurnModel, FeatureStore, churn_backtest, churn_labels, cutoff_plan
from churnml.errors import DataError
from churnml.evaluation import churn_metrics, expected_calibration_error, lift_capture
from churnml.features import snapshot_features
from churnml.pipeline import LeakageError, check_point_in_time

REPO = Path(__file__).resolve().parents[1]


def _tx():
    rows = [
        ("a", "2024-01-10", 10.0), ("a", "2024-03-05", 10.0),  # buys inside the window
        ("b", "2023-06-01", 5.0),  # in scope, silent: churned
        ("c", "2024-03-01", 7.0),  # first purchase on the cutoff day: not in scope
        ("d", "2024-02-29", 3.0), ("d", "2024-05-30", 3.0),  # next purchase at cutoff + 90 days: outside
        ("e", "2024-06-30", 1.0),
    ]
    df = pd.DataFrame(rows, columns=["customer_id", "timestamp", "amount"])
    df["timestamp"] = pd.to_datetime(df["timestamp"])
    return df


def test_labels_hand_computed():
    y = churn_labels(_tx(), "2024-03-01", 90)
    assert y.to_dict() == {"a": 0, "b": 1, "d": 1}
    y = churn_labels(_tx(), "2024-03-01", 90, lookback_days=180)
    assert y.to_dict() == {"a": 0, "d": 1}  # b's last purchase is 274 days before the cutoff
    with pytest.raises(DataError, match="not complete"):
        churn_labels(_tx(), "2024-05-01", 90)


def test_cutoff_plan_never_overlaps_the_evaluation_window():
    first = pd.Timestamp("2020-01-01")
    plan = cutoff_plan("2022-01-01", horizon_days=90, step_days=30, n_cutoffs=6, first=first, min_history_days=60)
    valid, train = plan
    assert plan.mode == "time" and plan.step_days == 30
    assert valid + pd.Timedelta(days=90) == pd.Timestamp("2022-01-01")
    assert all(t + pd.Timedelta(days=90) <= valid for t in train)
    assert train == sorted(train) and len(train) == 6


def test_cutoff_plan_adapts_to_short_logs():
    first = pd.Timestamp("2024-01-01")
    h, hist = 90, 60
    # 9 months: a separate validation window still fits, with denser cutoffs: 4 in the 34 days
    # between the minimal history (2024-03-01) and the last training cutoff (2024-04-04)
    plan = cutoff_plan("2024-10-01", horizon_days=h, step_days=90, n_cutoffs=4, first=first, min_history_days=hist)
    assert plan.mode == "time" and len(plan.train_cutoffs) == 4 and plan.step_days == 34 // 3
    assert plan.train_cutoffs[-1] == pd.Timestamp("2024-04-04") and plan.train_cutoffs[0] == pd.Timestamp("2024-03-02")
    assert plan.train_cutoffs[-1] + pd.Timedelta(days=h) <= plan.valid_cutoff
    # 6 months: one horizon of labels after the minimal history: cross-fitted on customers
    plan = cutoff_plan("2024-07-01", horizon_days=h, step_days=90, n_cutoffs=4, first=first, min_history_days=hist)
    assert plan.mode == "customers"
    assert plan.valid_cutoff == plan.train_cutoffs[-1] == pd.Timestamp("2024-07-01") - pd.Timedelta(days=h)
    assert all(t >= first + pd.Timedelta(days=hist) for t in plan.train_cutoffs)
    # 4 months: too short; the message names the settings and the days missing
    with pytest.raises(DataError, match=r"churn.min_history_days \(60\) \+ churn.horizon_days \(90\) = 150 days; add 29 more days"):
        cutoff_plan("2024-05-01", horizon_days=h, step_days=90, n_cutoffs=4, first=first, min_history_days=hist)


def _short_log(days: int, n: int = 1500, seed: int = 3) -> pd.DataFrame:
    from churnml.datasets import simulate

    tx, _ = simulate(n, start="2023-01-01", end=str((pd.Timestamp("2023-01-01") + pd.Timedelta(days=days)).date()), seed=seed)
    return tx


@pytest.mark.slow
def test_cross_fitted_model_never_validates_on_its_training_customers(monkeypatch):
    """On a log too short for a separate validation window, early stopping and calibration use
    customers the booster never saw."""
    from churnml.churn import fit_churn_model

    seen = {}
    original = ChurnModel.fit

    def spy(self, X, y, *, X_valid, y_valid):
        seen["train"], seen["valid"] = set(X.index), set(X_valid.index)
        return original(self, X, y, X_valid=X_valid, y_valid=y_valid)

    monkeypatch.setattr(ChurnModel, "fit", spy)
    tx = _short_log(200)
    store = FeatureStore(tx, churnml.Config())
    model, _, info = fit_churn_model(store, pd.Timestamp("2023-07-20"))
    assert info["time_plan"] == "customers"
    assert seen["valid"] and seen["train"] and not (seen["train"] & seen["valid"])
    assert 0.3 < len(seen["valid"]) / len(seen["train"] | seen["valid"]) < 0.7
    assert np.isfinite(model.predict_proba(store.labelled(info["valid_cutoff"]))).all()


@pytest.mark.slow
def test_no_backtest_possible_trains_anyway_and_says_so():
    from churnml.io import Dataset, prepare_transactions
    from churnml.pipeline import fit_pipeline

    tx, rep = prepare_transactions(_short_log(200))
    with pytest.warns(UserWarning, match=r"no churn backtest was possible: the log covers 2\d\d days .* more days of data"):
        pipe, bt = fit_pipeline(Dataset(tx, rep, None, None), churnml.Config())
    assert bt is None and pipe.training["time_plan"] == "customers"
    assert "no churn backtest was possible" in pipe.training["backtest_note"]


def test_leakage_guard_catches_a_feature_that_sees_the_future():
    tx = _tx()
    check_point_in_time(lambda t, c: snapshot_features(t, c), tx, "2024-03-01")  # ours is clean

    def leaky(t, c):
        f = snapshot_features(t, c)
        f["days_to_end_of_log"] = (t["timestamp"].max() - pd.Timestamp(c)).days  # sees data after c
        return f

    with pytest.raises(LeakageError, match="days_to_end_of_log"):
        check_point_in_time(leaky, tx, "2024-03-01")


def test_metrics_hand_computed():
    y = np.array([1, 1, 0, 0, 1, 0, 0, 0, 0, 0])
    p = np.array([0.9, 0.8, 0.7, 0.1, 0.6, 0.1, 0.1, 0.1, 0.1, 0.1])
    lift, capture = lift_capture(y, p, 0.2)
    assert lift == pytest.approx(1.0 / 0.3) and capture == pytest.approx(2 / 3)
    assert expected_calibration_error([1, 0], [1.0, 0.0]) == 0.0
    assert expected_calibration_error([0, 0, 1, 1], [0.75, 0.75, 0.75, 0.75]) == pytest.approx(0.25)
    m = churn_metrics(y, p, value=np.full(10, 100.0), contact_cost=5, offer_acceptance=0.5, top_k_share=0.2)
    assert m["expected_profit_topk"] == pytest.approx(2 * 0.5 * 100 - 5 * 2)
    assert m["roc_auc"] == pytest.approx(20 / 21)


def _simulated_features(n=4000, seed=0):
    rng = np.random.default_rng(seed)
    X = pd.DataFrame(
        {
            "recency_days": rng.exponential(100, n),
            "n_purchases": rng.poisson(3, n) + 1.0,
            "total_spend": rng.gamma(2, 50, n),
            "tenure_days": rng.uniform(100, 700, n),
            "complaints": rng.poisson(0.3, n).astype(float),
        },
        index=[f"c{i}" for i in range(n)],
    )
    logit = -1.0 + 0.015 * X["recency_days"] - 0.3 * X["n_purchases"] + 0.9 * X["complaints"]
    p = 1 / (1 + np.exp(-logit))
    X["btyd_p_no_purchase"] = np.clip(1 / (1 + np.exp(-(-1.0 + 0.015 * X["recency_days"]))), 1e-6, 1 - 1e-6)
    y = (rng.uniform(size=n) < p).astype(int)
    return X, y, p.to_numpy()


@pytest.mark.slow
def test_churn_model_learns_beyond_the_prior_and_is_calibrated():
    X, y, _ = _simulated_features(seed=0)
    Xv, yv, _ = _simulated_features(seed=1)
    Xt, yt, pt = _simulated_features(seed=2)
    m = ChurnModel(seed=3).fit(X, y, X_valid=Xv, y_valid=yv)
    assert m.chosen_ == "lightgbm"  # complaints matter and the prior does not know them
    p = m.predict_proba(Xt)[:, 1]
    from sklearn.metrics import roc_auc_score

    assert roc_auc_score(yt, p) > roc_auc_score(yt, Xt["btyd_p_no_purchase"]) + 0.03
    assert roc_auc_score(yt, p) > roc_auc_score(yt, pt) - 0.03  # close to the true probabilities
    assert expected_calibration_error(yt, p) < 0.05
    contrib = m.contributions(Xt)
    assert list(contrib.columns) == [*m.feature_names_, "bias"]
    # SHAP values add up to LightGBM's raw log-odds
    raw = m.booster_.predict(m._matrix(Xt), raw_score=True, num_iteration=m.best_iteration_)
    np.testing.assert_allclose(contrib.sum(axis=1), raw, rtol=1e-6, atol=1e-6)
    # the fast decision-path attribution also adds up exactly, and mostly agrees on the top driver
    path = m.contributions(Xt, method="path")
    np.testing.assert_allclose(path.sum(axis=1), raw, rtol=1e-6, atol=1e-6)
    top_shap = contrib.drop(columns="bias").to_numpy().argmax(axis=1)
    top_path = path.drop(columns="bias").to_numpy().argmax(axis=1)
    assert (top_shap == top_path).mean() > 0.7
    # reproducible with the same seed
    p2 = ChurnModel(seed=3).fit(X, y, X_valid=Xv, y_valid=yv).predict_proba(Xt)[:, 1]
    np.testing.assert_array_equal(p, p2)


def test_churn_model_falls_back_to_the_prior_when_lightgbm_does_not_beat_it():
    """Built so that only the prior ranks the held-out (selection) half of the validation
    customers: on the training rows and on the early-stopping half churn is exactly "more than 100
    days since the last purchase", on the selection half it is exactly "prior above 0.5", and the
    prior is drawn independently of every other column. The prior ranks the selection half
    perfectly (AUC 1); LightGBM stacked on a recency signal, recency and logistic RFM cannot; so
    the prior must ship, and the shipped probabilities are a monotone map of it."""
    from sklearn.metrics import roc_auc_score

    from churnml.sampling import customer_half

    rng = np.random.default_rng(7)
    X, _, _ = _simulated_features(seed=0)
    X = X.assign(complaints=0.0, btyd_p_no_purchase=rng.uniform(0.05, 0.95, len(X)))
    y = (X["recency_days"] > 100).astype(int)
    Xv, _, _ = _simulated_features(seed=1)
    Xv = Xv.assign(complaints=0.0, btyd_p_no_purchase=rng.uniform(0.05, 0.95, len(Xv)))
    stop = customer_half(Xv.index, 1)
    yv = np.where(stop, Xv["recency_days"] > 100, Xv["btyd_p_no_purchase"] > 0.5).astype(int)
    m = ChurnModel(seed=1).fit(X, y, X_valid=Xv, y_valid=yv)
    assert set(m.selection_auc_) == {"lightgbm", "prior", "recency", "logistic_rfm"}
    assert m.selection_auc_["prior"] == 1.0
    assert max(m.selection_auc_[k] for k in ("lightgbm", "recency", "logistic_rfm")) < 0.75
    assert m.chosen_ == "prior"
    p = Xv["btyd_p_no_purchase"].to_numpy()
    np.testing.assert_allclose(m.decision_function(Xv), np.log(p / (1 - p)), rtol=1e-12)
    assert roc_auc_score(yv[~stop], m.predict_proba(Xv)[~stop, 1]) == 1.0
    # forcing the scorer ships it whatever the held-out AUCs say
    forced = ChurnModel(seed=1, select="recency").fit(X, y, X_valid=Xv, y_valid=yv)
    assert forced.chosen_ == "recency" and forced.selection_auc_ == m.selection_auc_


def test_churn_model_can_ship_logistic_rfm_with_exact_reasons():
    """On held-out customers churn is exactly a linear rule of log RFM + tenure that the training
    rows also follow, while the prior is noise and LightGBM is forced aside: logistic RFM, a
    candidate of the held-out selection, ships when selected, and its per-feature contributions
    add up exactly to its log-odds (weight x (log1p value - reference))."""
    rng = np.random.default_rng(3)
    X, _, _ = _simulated_features(seed=0)
    Xv, _, _ = _simulated_features(seed=1)
    for F in (X, Xv):
        F["btyd_p_no_purchase"] = rng.uniform(0.05, 0.95, len(F))
    rule = lambda F: (np.log1p(F["recency_days"]) - 0.8 * np.log1p(F["n_purchases"]) > 3.5).astype(int)
    m = ChurnModel(seed=1, select="logistic_rfm", n_estimators=20).fit(X, rule(X), X_valid=Xv, y_valid=rule(Xv))
    assert m.chosen_ == "logistic_rfm"
    assert m.selection_auc_["logistic_rfm"] > m.selection_auc_["prior"] + 0.3
    D = m.decision_contributions(Xv)
    assert {"recency_days", "n_purchases", "total_spend", "tenure_days", "base"} <= set(D.columns)
    np.testing.assert_allclose(D.sum(axis=1), m.decision_function(Xv), rtol=1e-9, atol=1e-9)
    # the driver that the rule raises risk with (recency) gets the larger positive share for the most recent-lapsed
    far = Xv["recency_days"].to_numpy().argmax()
    assert D["recency_days"].iloc[far] > 0


@pytest.mark.slow
def test_churn_model_ships_recency_when_it_beats_lightgbm_and_the_prior():
    """Training labels carry no signal and the prior is noise, while on held-out time churn
    follows days since the last purchase: the naive recency score must ship, not the loser."""
    rng = np.random.default_rng(5)
    X, _, _ = _simulated_features(seed=0)
    y = rng.integers(0, 2, len(X))
    Xv, _, _ = _simulated_features(seed=1)
    Xv["btyd_p_no_purchase"] = rng.uniform(0.05, 0.95, len(Xv))
    yv = (rng.uniform(size=len(Xv)) < 1 / (1 + np.exp(-(Xv["recency_days"] - 100) / 30))).astype(int)
    m = ChurnModel(seed=1).fit(X, y, X_valid=Xv, y_valid=yv)
    assert m.chosen_ == "recency"
    assert m.selection_auc_["recency"] > max(m.selection_auc_["lightgbm"], m.selection_auc_["prior"])
    p = m.predict_proba(Xv)[:, 1]
    order = np.argsort(Xv["recency_days"].to_numpy())
    assert np.all(np.diff(p[order]) >= 0)  # the shipped score is monotone in recency
    assert 0 < p.min() and p.max() < 1


def _backtest(name):
    cfg = churnml.load_config(REPO / "configs" / f"{name}.yaml")
    ds = churnml.load_dataset(cfg)
    return churn_backtest(FeatureStore(ds.transactions, cfg, events=ds.events, customers=ds.customers))


def _check_must_show(bt, name):
    s = bt.summary
    print(f"\n{name} churn backtest (mean over {list(bt.training)}):\n", s[["roc_auc", "pr_auc", "brier", "ece"]].round(4))
    best_baseline = s.loc[["recency", "logistic_rfm", "btyd"], "roc_auc"].max()
    assert s.loc["model", "roc_auc"] >= best_baseline
    assert s.loc["model", "ece"] <= 0.05
    assert set(s.index) == {"model", "recency", "logistic_rfm", "btyd"}


@pytest.mark.slow
def test_cdnow_master_backtest_model_beats_baselines_and_is_calibrated():
    _check_must_show(_backtest("cdnow"), "CDNOW master")


@pytest.mark.slow
def test_apparel_backtest_model_beats_recency_and_no_baseline_significantly(shared_data):
    """600 customers: the model must beat the naive recency baseline and no baseline may beat it
    significantly (paired bootstrap 95% interval of the AUC difference reaches 0); a point
    difference of a thousandth either way is noise at this size."""
    bt = _backtest("apparel")
    s = bt.summary
    print("\napparel churn backtest:\n", s[["roc_auc", "roc_auc_ci_low", "roc_auc_ci_high", "ece"]].round(4))
    assert s.loc["model", "roc_auc"] > s.loc["recency", "roc_auc"]
    assert s.loc["model", "roc_auc_diff_vs_recency_ci_low"] > 0
    for name in ("logistic_rfm", "btyd"):
        assert s.loc["model", f"roc_auc_diff_vs_{name}_ci_high"] >= 0, name
    assert s.loc["model", "ece"] <= 0.05


def test_a_purchase_cancelled_inside_the_outcome_window_is_no_purchase():
    from churnml.io import prepare_transactions

    raw = pd.DataFrame({
        "customer_id": ["a", "a", "a", "b", "b", "z"],
        "timestamp": pd.to_datetime(["2024-01-10 00:00", "2024-03-10 10:00", "2024-03-10 10:12", "2024-01-10 00:00", "2024-03-20 00:00",
                                     "2024-06-30 00:00"]),
        "amount": [20.0, 500.0, -500.0, 20.0, 30.0, 1.0],
    })
    tx, rep = prepare_transactions(raw)
    assert rep.cancellations == 1
    y = churn_labels(tx, "2024-03-01", 90)
    assert y.to_dict() == {"a": 1, "b": 0}  # a's only purchase in the window was cancelled 12 minutes later
    from churnml.value import value_targets

    assert value_targets(tx, "2024-03-01", 90).to_dict() == {"b": 30.0}
