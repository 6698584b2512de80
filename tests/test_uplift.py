"""Uplift estimators, metrics and targeting, checked on hand-built cases and on the randomised
campaign simulator, whose true per-customer effect is known."""

from __future__ import annotations

import joblib
import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone

from churnml.datasets import CAMPAIGN_FEATURES, CAMPAIGN_SEGMENTS, simulate_campaign
from churnml.errors import DataError, ModelError
from churnml.uplift import (
    ClassTransformation,
    TLearner,
    XLearner,
    auuc,
    captured_incremental_value,
    expected_incremental_value,
    qini_coefficient,
    qini_curve,
    uplift_at_k,
    uplift_curve,
)

FEATURES = list(CAMPAIGN_FEATURES)
ESTIMATORS = [TLearner, XLearner, ClassTransformation]
FAST = {"n_estimators": 50}


@pytest.fixture(scope="module")
def train():
    return simulate_campaign(6000, seed=1)


@pytest.fixture(scope="module")
def held_out():
    return simulate_campaign(20000, seed=2)


@pytest.fixture(scope="module")
def fitted(train):
    return {cls.__name__: cls(**FAST).fit(train[FEATURES], train["treatment"], train["retained"]) for cls in ESTIMATORS}


# --------------------------------------------------------------------------- simulator


def test_simulated_campaign_is_randomised_and_its_truth_is_consistent():
    d = simulate_campaign(40000, seed=7, treat_share=0.3)
    assert d["treatment"].sum() == 12000  # complete randomisation: exactly the share
    assert d["customer_id"].is_unique
    np.testing.assert_allclose(d["true_uplift"], d["p_retain_treated"] - d["p_retain_control"])
    np.testing.assert_allclose(d["churn_probability"], 1 - d["p_retain_control"])
    assert ((d["spend"] > 0) == (d["retained"] == 1)).all()
    assert (d["recency_days"] <= d["tenure_days"]).all() and (d["n_purchases"] >= 1).all()
    # randomised: the arms look alike before the campaign
    for col in ["recency_days", "churn_probability", "value_if_retained"]:
        a, b = d.loc[d["treatment"] == 1, col], d.loc[d["treatment"] == 0, col]
        assert abs(a.mean() - b.mean()) / d[col].std() < 0.05
    # the difference in retention between the arms estimates the mean true effect (within 4 SE)
    t, c = d.loc[d["treatment"] == 1, "retained"], d.loc[d["treatment"] == 0, "retained"]
    se = np.sqrt(t.var() / len(t) + c.var() / len(c))
    assert abs((t.mean() - c.mean()) - d["true_uplift"].mean()) < 4 * se
    pd.testing.assert_frame_equal(d, simulate_campaign(40000, seed=7, treat_share=0.3))
    assert not d.equals(simulate_campaign(40000, seed=8, treat_share=0.3))


def test_simulated_effect_is_heterogeneous_with_sleeping_dogs_and_lost_causes():
    d = simulate_campaign(40000, seed=3)
    by_segment = d.groupby("segment")["true_uplift"].mean()
    assert set(by_segment.index) == set(CAMPAIGN_SEGMENTS)
    assert by_segment["new"] < 0 < by_segment["regular"] < by_segment["deal_seeker"]  # by segment
    assert (d["true_uplift"] < 0).mean() > 0.1  # contact hurts some customers
    # by features within a segment: the same segment's effect varies across customers
    assert d.loc[d["segment"] == "regular", "true_uplift"].std() > 0.05
    # the riskiest customers are not the most persuadable: lost causes
    decile = pd.qcut(d["churn_probability"], 10, labels=False)
    effect = d.groupby(decile)["true_uplift"].mean()
    assert effect[9] < effect[4:9].max() - 0.02
    lost = d["churn_probability"] > 0.95
    assert lost.sum() > 50 and d.loc[lost, "true_uplift"].mean() < 0.5 * d["true_uplift"].mean()
    # stronger effects on request
    strong = simulate_campaign(40000, seed=3, effect_scale=2.0)
    assert strong["true_uplift"].abs().mean() > d["true_uplift"].abs().mean()
    assert (strong["p_retain_control"] == d["p_retain_control"]).all()


def test_simulator_rejects_bad_settings():
    with pytest.raises(ValueError, match="treat_share"):
        simulate_campaign(100, treat_share=1.0)
    with pytest.raises(ValueError, match="unknown segment"):
        simulate_campaign(100, segment_effects={"vip": 1.0})


# --------------------------------------------------------------------------- metrics on hand-built cases

# rows ranked 1..6 by score; treatment and retention by hand
Y = np.array([1, 0, 1, 1, 0, 0])
T = np.array([1, 0, 1, 0, 1, 0])
S = np.array([6, 5, 4, 3, 2, 1], dtype=float)


def test_qini_and_uplift_curves_by_hand():
    n, q = qini_curve(Y, T, S)
    np.testing.assert_array_equal(n, [0, 1, 2, 3, 4, 5, 6])
    # Q(n) = Y_T - Y_C * N_T / N_C: n=4 -> 2 - 1*2/2; n=5 -> 2 - 1*3/2; n=6 -> 2 - 1*3/3
    np.testing.assert_allclose(q, [0, 1, 1, 2, 1, 0.5, 1])
    n, u = uplift_curve(Y, T, S)
    # U(n) = (Y_T/N_T - Y_C/N_C) * n: n=5 -> (2/3 - 1/2) * 5; n=6 -> (2/3 - 1/3) * 6
    np.testing.assert_allclose(u, [0, 1, 2, 3, 2, 5 / 6, 2])


def test_curves_step_over_tied_scores():
    n, q = qini_curve(Y, T, np.array([1, 1, 1, 0, 0, 0]))
    np.testing.assert_array_equal(n, [0, 3, 6])
    np.testing.assert_allclose(q, [0, 2, 1])  # top 3: Y_T=2, N_T=2, Y_C=0
    # the row order inside a tie does not matter
    rev = slice(None, None, -1)
    np.testing.assert_allclose(qini_curve(Y[rev], T[rev], np.array([0, 0, 0, 1, 1, 1]))[1], q)


def test_qini_coefficient_and_auuc_by_hand():
    # area under the Qini curve (trapezoids) = 6; random line to (6, 1): 3;
    # perfect ranking (treated retained first, control retained last): points (0,0) (2,2) (5,2) (6,1), area 9.5
    assert qini_coefficient(Y, T, S) == pytest.approx((6 - 3) / (9.5 - 3))
    assert qini_coefficient(Y, T, S, normalize=False) == pytest.approx(6 / 36)
    # uplift curve area = 9 5/6, random 6; perfect ranking (2*(y==t) + t): (0,0) (2,2) (4,4) (5,10/3) (6,2), area 14 1/3
    assert auuc(Y, T, S) == pytest.approx((59 / 6 - 6) / (43 / 3 - 6))
    # a ranking that puts the treated responders last is worse than random
    assert qini_coefficient(Y, T, -S) < 0


def test_uplift_at_k_by_hand():
    assert uplift_at_k(Y, T, S, k=0.5) == pytest.approx(1.0)  # top 3: treated 2/2, control 0/1
    assert uplift_at_k(Y, T, S, k=0.8) == pytest.approx(2 / 3 - 1 / 2)  # top ceil(4.8) = 5
    assert uplift_at_k(Y, T, S, k=1.0) == pytest.approx(2 / 3 - 1 / 3)
    y10, t10 = np.tile(Y, 2)[:10], np.tile(T, 2)[:10]
    # 0.3 x 10 is 3 customers, not 4 (no float artefact)
    assert uplift_at_k(y10, t10, np.arange(10, 0, -1), k=0.3) == pytest.approx(1.0)
    with pytest.raises(DataError, match="no control"):
        uplift_at_k(Y, T, S, k=0.1)  # the top customer is treated


def test_metrics_reject_bad_input():
    with pytest.raises(DataError, match="treatment must be 0 or 1"):
        qini_curve(Y, [1, 0, 2, 0, 1, 0], S)
    with pytest.raises(DataError, match="both treated"):
        qini_coefficient(Y, np.ones(6), S)
    with pytest.raises(DataError, match="score has 5 values"):
        auuc(Y, T, S[:5])
    with pytest.raises(DataError, match="missing"):
        uplift_at_k(Y, T, np.r_[S[:5], np.nan])


def test_metrics_on_simulated_truth():
    d = simulate_campaign(200000, seed=5)
    y, t = d["retained"].to_numpy(), d["treatment"].to_numpy()
    rng = np.random.default_rng(0)
    random_q = [qini_coefficient(y, t, rng.random(len(d))) for _ in range(3)]
    assert max(abs(q) for q in random_q) < 0.01  # a random ranking's Qini coefficient is ~0
    oracle = d["true_uplift"].to_numpy()
    assert qini_coefficient(y, t, oracle) > 0.05 > max(random_q)
    assert auuc(y, t, oracle) > 0.05 > auuc(y, t, rng.random(len(d)))
    # the Qini curve's end point is the arms' difference on the treated arm's scale
    n, q = qini_curve(y, t, oracle)
    assert q[-1] == pytest.approx(y[t == 1].sum() - y[t == 0].sum() * (t == 1).sum() / (t == 0).sum())
    # uplift@30% of the true ranking estimates the true mean effect of the top 30% (within 4 SE)
    top = np.argsort(-oracle, kind="mergesort")[: int(0.3 * len(d))]
    yt, tt = y[top], t[top]
    se = np.sqrt(yt[tt == 1].var() / (tt == 1).sum() + yt[tt == 0].var() / (tt == 0).sum())
    assert abs(uplift_at_k(y, t, oracle, k=0.3) - oracle[top].mean()) < 4 * se
    assert oracle[top].mean() > 2 * oracle.mean()


# --------------------------------------------------------------------------- estimators


@pytest.mark.parametrize("name", [c.__name__ for c in ESTIMATORS])
def test_estimators_recover_the_true_uplift_on_held_out_customers(fitted, held_out, name):
    est = fitted[name]
    pred = est.predict(held_out)  # extra columns (treatment, truth) are ignored
    truth = held_out["true_uplift"].to_numpy()
    assert pred.shape == truth.shape and np.all(np.abs(pred) <= 1)
    assert np.corrcoef(pred, truth)[0, 1] > 0.6
    assert abs(pred.mean() - truth.mean()) < 0.03
    y, t = held_out["retained"], held_out["treatment"]
    rng = np.random.default_rng(0)
    random_q = max(qini_coefficient(y, t, rng.random(len(held_out))) for _ in range(5))
    assert qini_coefficient(y, t, pred) > random_q + 0.03
    assert qini_coefficient(y, t, pred) > qini_coefficient(y, t, held_out["churn_probability"])
    assert uplift_at_k(y, t, pred, k=0.3) > uplift_at_k(y, t, rng.random(len(held_out)), k=0.3) + 0.08


def test_uplift_targeting_recovers_more_true_value_than_risk_targeting(fitted, held_out):
    """Same budget (30% of the customers contacted, same cost each): ranking by estimated
    uplift x value (model trained on another campaign) keeps clearly more TRUE incremental
    value than ranking by churn probability x value, even with the exact churn probability."""
    value = held_out["value_if_retained"]
    truth = held_out["true_uplift"]
    risk = captured_incremental_value(held_out["churn_probability"] * value, truth, value, k=0.3)
    rand = captured_incremental_value(np.random.default_rng(0).random(len(held_out)), truth, value, k=0.3)
    best = captured_incremental_value(truth * value, truth, value, k=0.3)
    for name, est in fitted.items():
        score = expected_incremental_value(est, value, X=held_out, cost=1.0)
        got = captured_incremental_value(score, truth, value, k=0.3)
        assert got >= 1.2 * risk, name
        assert got >= 1.2 * rand, name
        assert got <= best


def test_class_transformation_handles_an_unequal_treatment_share():
    """With 20% treated, the plain transformation (as if 50/50) is biased; re-weighting and the
    transformed outcome are not."""
    tr, te = simulate_campaign(8000, seed=3, treat_share=0.2), simulate_campaign(8000, seed=4)
    X, t, y = tr[FEATURES], tr["treatment"], tr["retained"]
    truth = te["true_uplift"].mean()
    reweighted = ClassTransformation(**FAST).fit(X, t, y)
    assert reweighted.propensity_ == pytest.approx(0.2)
    assert abs(reweighted.predict(te).mean() - truth) < 0.03
    transformed = ClassTransformation(method="transformed_outcome", **FAST).fit(X, t, y)
    assert abs(transformed.predict(te).mean() - truth) < 0.03
    naive = ClassTransformation(propensity=0.5, **FAST).fit(X, t, y)
    assert abs(naive.predict(te).mean() - truth) > 0.1
    # the X-learner with an estimated propensity agrees with the known share
    share = XLearner(**FAST).fit(X, t, y).predict(te)
    est = XLearner(propensity="estimate", **FAST).fit(X, t, y).predict(te)
    assert np.corrcoef(share, est)[0, 1] > 0.95
    with pytest.raises(ValueError, match="method"):
        ClassTransformation(method="plain").fit(X, t, y)
    with pytest.raises(ValueError, match="propensity"):
        XLearner(propensity=1.5).fit(X, t, y)


def test_fit_validates_the_experiment(train):
    X, t, y = train[FEATURES], train["treatment"].to_numpy(), train["retained"].to_numpy()
    bad_t = t.copy()
    bad_t[[3, 9]] = 2
    with pytest.raises(ValueError, match=r"treatment must be 0 or 1.*2 row\(s\).*rows 3, 9"):
        TLearner(**FAST).fit(X, bad_t, y)
    with pytest.raises(DataError, match="no control"):
        TLearner(**FAST).fit(X, np.ones_like(t), y)
    with pytest.raises(DataError, match="every control customer has y = 1"):
        TLearner(**FAST).fit(X, t, np.where(t == 0, 1, y))
    with pytest.raises(DataError, match="y \\(retained\\) has 10 values"):
        XLearner(**FAST).fit(X, t, y[:10])
    with pytest.raises(DataError, match="y \\(retained\\) must be 0 or 1"):
        XLearner(**FAST).fit(X, t, np.where(np.arange(len(y)) == 5, np.nan, y))


def test_estimators_pickle_check_columns_and_follow_sklearn_conventions(fitted, train, held_out, tmp_path):
    for name, est in fitted.items():
        assert est.feature_names_ == FEATURES and "segment" in est.categories_
        path = tmp_path / f"{name}.joblib"
        joblib.dump(est, path)
        loaded = joblib.load(path)
        some = held_out.iloc[:500]
        np.testing.assert_array_equal(loaded.predict(some), est.predict(some))
        # column order does not matter, a segment never seen in training is handled
        shuffled = some[FEATURES[::-1]].assign(segment=["vip"] + list(some["segment"].iloc[1:]))
        assert np.isfinite(loaded.predict(shuffled)).all()
        np.testing.assert_array_equal(loaded.predict(shuffled)[1:], est.predict(some)[1:])
        with pytest.raises(ModelError, match=r"lacks feature column\(s\).*\['recency_days'\]"):
            loaded.predict(some.drop(columns="recency_days"))
        with pytest.raises(DataError, match="column 'tenure_days' must be numeric.*rows 0"):
            loaded.predict(some.assign(tenure_days=["n/a"] + [1.0] * (len(some) - 1)))
        # scikit-learn: parameters round-trip, clones are unfitted, seeds make fits repeatable
        params = est.get_params()
        assert params["seed"] == 42 and params["n_jobs"] == 1
        twin = clone(est)
        assert not hasattr(twin, "feature_names_")
        twin.fit(train[FEATURES], train["treatment"], train["retained"])
        np.testing.assert_array_equal(twin.predict(some), est.predict(some))
    # the customer id is never a feature, identifiers as text are left out with a reason
    X = train[FEATURES].assign(customer_id=np.arange(len(train)), email=[f"c{i}@x.org" for i in range(len(train))])
    est = TLearner(**FAST).fit(X, train["treatment"], train["retained"])
    assert est.feature_names_ == FEATURES and "email" in est.dropped_features_


def test_expected_incremental_value():
    np.testing.assert_allclose(expected_incremental_value([0.1, -0.2, 0.5], [100.0, 50.0, 10.0], cost=[1.0, 1.0, 2.0]),
                               [9.0, -11.0, 3.0])
    np.testing.assert_allclose(expected_incremental_value(np.array([0.1]), pd.Series([30.0])), [3.0])
    with pytest.raises(DataError, match="value_if_retained has missing"):
        expected_incremental_value([0.1, 0.2], [1.0, np.nan])
    with pytest.raises(DataError, match="expected 2"):
        expected_incremental_value([0.1, 0.2], [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="needs X"):
        expected_incremental_value(TLearner(), [1.0])
    assert captured_incremental_value([3, 2, 1], [0.1, 0.2, 0.3], [10, 10, 10], k=0.5) == pytest.approx(3.0)


def test_experiment_table_helpers(train):
    from churnml.uplift import evaluate_uplift, experiment_xy

    X, t, y = experiment_xy(train.drop(columns=["p_retain_control", "p_retain_treated", "true_uplift"]), exclude=["spend"])
    assert list(X.columns) == ["customer_id", *FEATURES]
    est = TLearner(**FAST).fit(X, t, y)
    assert est.feature_names_ == FEATURES  # customer_id left out
    with pytest.raises(DataError, match=r"lacks column\(s\) \['contacted'\]"):
        experiment_xy(train, treatment="contacted")
    m = evaluate_uplift(Y, T, S, k=0.5)
    assert m["uplift_at_k"] == pytest.approx(1.0) and m["ate"] == pytest.approx(1 / 3)
    assert m["qini"] == pytest.approx(qini_coefficient(Y, T, S)) and m["auuc"] == pytest.approx(auuc(Y, T, S))
