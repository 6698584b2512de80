"""Reason codes: contributions that add up to the shipped churn score whatever scorer ships,
only risk-raising drivers, and plain sentences with units and plurals."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from churnml.churn import ChurnModel, PlattCalibrator, _fit_calibrator, _logit
from churnml.config import SegmentsConfig, TierConfig
from churnml.segments import LOW_RISK, _phrase, low_risk_cut, reason_codes


def _features(n=1500, seed=0):
    """Simulated snapshot features; churn depends on recency, purchases and complaints."""
    rng = np.random.default_rng(seed)
    tenure = rng.uniform(100, 700, n)
    X = pd.DataFrame(
        {
            "recency_days": np.minimum(rng.exponential(100, n), tenure),
            "n_purchases": rng.poisson(3, n) + 1.0,
            "avg_order_value": rng.gamma(2, 25, n),
            "tenure_days": tenure,
            "n_complaint_90d": rng.poisson(0.3, n).astype(float),
        },
        index=[f"c{seed}_{i}" for i in range(n)],
    )
    X["ipt_mean_days"] = np.where(X["n_purchases"] > 1, tenure / X["n_purchases"], np.nan)
    logit = -1.0 + 0.015 * X["recency_days"] - 0.3 * X["n_purchases"] + 0.9 * X["n_complaint_90d"]
    X["btyd_p_no_purchase"] = np.clip(1 / (1 + np.exp(-(-1.0 + 0.015 * X["recency_days"]))), 1e-6, 1 - 1e-6)
    y = (rng.uniform(size=n) < 1 / (1 + np.exp(-logit))).astype(int)
    return X, y


@pytest.fixture(scope="module")
def fitted():
    X, y = _features(seed=0)
    Xv, yv = _features(seed=1)
    Xt, _ = _features(n=800, seed=2)
    m = ChurnModel(seed=3, n_estimators=200).fit(X, y, X_valid=Xv, y_valid=yv)
    return m, Xv, yv, Xt


def _as(model: ChurnModel, chosen: str, Xv, yv, calibration: str) -> ChurnModel:
    """The fitted model, shipping ``chosen`` with a calibrator fitted on that score (built by hand,
    so the case does not depend on which scorer wins the selection)."""
    import copy

    m = copy.deepcopy(model)
    m.chosen_ = chosen
    m.calibrator_ = _fit_calibrator(calibration, m.decision_function(Xv), np.asarray(yv))
    return m


@pytest.mark.parametrize("calibration", ["isotonic", "sigmoid"])
@pytest.mark.parametrize("chosen", ["lightgbm", "prior", "recency"])
def test_shipped_contributions_add_up_to_the_shipped_log_odds(fitted, chosen, calibration):
    model, Xv, yv, Xt = fitted
    m = _as(model, chosen, Xv, yv, calibration)
    target = _logit(m.predict_proba(Xt)[:, 1])
    for method in ("shap", "path"):
        c = m.shipped_contributions(Xt, method=method)
        assert c.columns[-1] == "base" and list(c.index) == list(Xt.index)
        assert np.abs(c.sum(axis=1).to_numpy() - target).max() < 1e-9
        # the same with the probabilities handed in (batch scoring)
        c2 = m.shipped_contributions(Xt, method=method, proba=m.predict_proba(Xt)[:, 1])
        assert np.abs(c2.sum(axis=1).to_numpy() - target).max() < 1e-9
        # signs are the decision scale's: the calibration only rescales each customer
        d = m.decision_contributions(Xt, method=method).drop(columns="base").to_numpy()
        s = c.drop(columns="base").to_numpy()
        moved = np.abs(d.sum(axis=1)) >= 1e-9
        assert np.all(np.sign(s[moved]) == np.sign(d[moved]))
        # base is one reference log-odds for everybody not at the reference
        assert np.ptp(c["base"].to_numpy()[moved]) < 1e-12
    feats = c.drop(columns="base")
    nonzero = set(feats.columns[(feats.abs() > 0).any()])
    if chosen == "prior":  # BG/NBD alone ships: it is the only reason, never tenure or spend
        assert nonzero == {"btyd_p_no_purchase"}
    elif chosen == "recency":
        assert nonzero == {"recency_days"}
    else:
        assert {"n_complaint_90d", "btyd_p_no_purchase"} <= nonzero


def test_secant_scaling_matches_a_hand_computed_linear_calibration(fitted):
    """With a linear calibration logit(p) = a x score + b, every customer's slope is a: the
    shipped contributions are a x the decision-scale ones, and base = a x reference + b."""
    model, Xv, yv, Xt = fitted
    a, b = 0.7, -0.4
    for chosen in ("lightgbm", "prior", "recency"):
        m = _as(model, chosen, Xv, yv, "sigmoid")
        cal = PlattCalibrator()
        cal.a_, cal.b_, cal.eps_ = a, b, 0.0
        m.calibrator_ = cal
        d = m.decision_contributions(Xt)
        c = m.shipped_contributions(Xt)
        np.testing.assert_allclose(c.drop(columns="base").to_numpy(), a * d.drop(columns="base").to_numpy(), atol=1e-9)
        np.testing.assert_allclose(c["base"], a * d["base"] + b, atol=1e-9)
    # recency by hand: a x (log1p(days) - mean log1p(days) at the validation cutoff)
    ref = np.log1p(Xv["recency_days"]).mean()
    np.testing.assert_allclose(c["recency_days"], a * (np.log1p(Xt["recency_days"]) - ref), atol=1e-9)
    # the stacker by hand: its prior weight x centred logit(prior) joins LightGBM's own credit
    m = _as(model, "lightgbm", Xv, yv, "sigmoid")
    m.calibrator_ = cal
    w_boost, w_prior = m.stacker_.coef_[0]
    lgb = m.contributions(Xt)
    lp = _logit(Xt["btyd_p_no_purchase"])
    expect = a * (w_boost * lgb["btyd_p_no_purchase"] + w_prior * (lp - _logit(Xv["btyd_p_no_purchase"]).mean()))
    np.testing.assert_allclose(m.shipped_contributions(Xt)["btyd_p_no_purchase"], expect, atol=1e-9)
    np.testing.assert_allclose(m.shipped_contributions(Xt)["n_complaint_90d"], a * w_boost * lgb["n_complaint_90d"], atol=1e-9)


def test_models_saved_before_references_still_add_up(fitted):
    model, Xv, yv, Xt = fitted
    m = _as(model, "lightgbm", Xv, yv, "isotonic")
    for attr in ("prior_ref_", "recency_ref_", "typical_"):
        delattr(m, attr)
    c = m.shipped_contributions(Xt, method="path")
    assert np.abs(c.sum(axis=1).to_numpy() - _logit(m.predict_proba(Xt)[:, 1])).max() < 1e-9


def test_a_customer_at_the_reference_gets_no_contribution(fitted):
    model, Xv, yv, Xt = fitted
    m = _as(model, "recency", Xv, yv, "isotonic")
    row = Xt.iloc[:2].copy()
    row["recency_days"] = [np.expm1(m.recency_ref_), 400.0]
    c = m.shipped_contributions(row)
    assert (c.iloc[0].drop("base").abs() < 1e-6).all()
    assert c["recency_days"].iloc[1] > 0  # 400 days: far above the typical recency score
    np.testing.assert_allclose(c.sum(axis=1), _logit(m.predict_proba(row)[:, 1]), atol=1e-9)


def test_reasons_when_the_prior_ships_talk_about_recency_only(fitted):
    model, Xv, yv, Xt = fitted
    m = _as(model, "prior", Xv, yv, "isotonic")
    r = reason_codes(m.shipped_contributions(Xt), Xt, typical=m.typical_, low_risk=0.0)
    drivers = r[~r.str.startswith(("low risk", "no risk driver"))]
    assert len(drivers) > 50
    assert drivers.str.match(r"^(no purchase for \d+ days|last purchase (today|yesterday))").all()
    assert not r.str.contains("customer for|orders|spent|complaint").any()


# --------------------------------------------------------------------------- reason_codes


def test_only_risk_raising_drivers_strongest_first_and_low_risk_texts():
    feats = pd.DataFrame(
        {"recency_days": [210.0, 5.0, 30.0, 100.0], "ipt_mean_days": [45.0, np.nan, 20.0, 30.0],
         "n_complaint_90d": [2.0, 0.0, 1.0, 1.0], "last_nps": [3.0, 9.0, 8.0, 8.0],
         "tenure_days": [400.0, 30.0, 300.0, 300.0], "n_purchases": [8.0, 1.0, 5.0, 5.0],
         "recency_ratio": [4.7, np.nan, 1.5, 3.3]},
        index=list("abcd"),
    )
    base = _logit(0.4)
    contrib = pd.DataFrame(
        {"recency_days": [1.2, 0.3, 0.2, -0.2], "recency_ratio": [0.9, 0.0, 0.0, 0.0], "n_complaint_90d": [0.8, 0.0, 0.1, 0.5],
         "last_nps": [0.5, -0.1, 0.0, 0.0], "tenure_days": [0.3, -3.0, -0.5, 0.0], "n_purchases": [-0.2, -0.1, 0.0, 0.0],
         "base": [base] * 4},
        index=list("abcd"),
    )
    r = reason_codes(contrib, feats, typical={"last_nps": 8.0, "tenure_days": 300.0}, low_risk=0.2)
    # a: the three strongest positive drivers; recency days and ratio are one fact
    assert r["a"] == "no purchase for 210 days, usually buys every 45 days; 2 complaints in the last 90 days; last NPS answer 3 (typical 8)"
    # b: a positive driver, but the shipped risk (4%) is low: no "why at risk"
    assert r["b"] == "low risk: churn probability 4%"
    # c: 0.3 of drivers against 0.5 of protection: risk 35% is not above the reference's 40%
    assert r["c"] == "no risk driver: churn probability 35%, below the typical 40%"
    # d: above the reference; the negative recency contribution is not a reason
    assert r["d"] == "1 complaint in the last 90 days"
    assert reason_codes(contrib, feats, k=1, low_risk=0.2)["a"] == "no purchase for 210 days, usually buys every 45 days"
    # optionally, customers below the reference (but not low risk) get what raises their risk
    r = reason_codes(contrib, feats, low_risk=0.2, above_typical_only=False)
    assert r["c"] == "no purchase for 30 days, usually buys every 20 days; 1 complaint in the last 90 days"
    assert r["b"] == "low risk: churn probability 4%"


def test_low_risk_cut_follows_absolute_risk_tiers():
    assert low_risk_cut(SegmentsConfig()) == 0.3
    quantile = SegmentsConfig(risk=TierConfig(method="quantile", thresholds=[0.5, 0.8]))
    assert low_risk_cut(quantile) == LOW_RISK


def _one(feature, typical=None, trend_days=90, **cols):
    f = pd.DataFrame({k: (v if isinstance(v, list) else [v]) for k, v in cols.items()})
    return _phrase(feature, f, typical, trend_days).tolist()


def test_recency_sentences():
    assert _one("recency_days", recency_days=[0.0, 1.0, 2.0, 300.0], ipt_mean_days=[1.0, 7.0, np.nan, 1.0]) == [
        "last purchase today, usually buys every day",
        "last purchase yesterday, usually buys every 7 days",
        "no purchase for 2 days (bought on a single day so far)",
        "no purchase for 300 days, usually buys every day",
    ]
    # BG/NBD's prior reads as the same recency fact; without recency it says what the model expects
    assert _one("btyd_p_no_purchase", recency_days=[40.0], ipt_mean_days=[12.0], btyd_p_no_purchase=[0.8]) == [
        "no purchase for 40 days, usually buys every 12 days"]
    assert _one("btyd_p_no_purchase", btyd_p_no_purchase=[0.83]) == [
        "the purchase model expects no purchase soon (83% chance of none in the churn horizon)"]


def test_frequency_and_tenure_sentences():
    typ = {"purchases_per_year": 4.0, "tenure_days": 200.0}
    assert _one("n_purchases", typ, n_purchases=[1.0, 3.0, 40.0], tenure_days=[20.0, 430.0, 1000.0]) == [
        "1 purchase in 20 days", "only 3 purchases in 14 months", "40 purchases in 2.7 years"]
    assert _one("tenure_days", typ, tenure_days=[1.0, 30.44, 800.0]) == [
        "customer for only 1 day (typical 7 months)", "customer for only 30 days (typical 7 months)", "customer for 2.2 years (typical 7 months)"]


def test_spend_sentences_compare_with_the_typical_customer():
    typ = {"avg_order_value": 35.0, "total_spend": 1234.5, "spend_per_year": 80.0}
    assert _one("avg_order_value", typ, avg_order_value=[12.5, 84236.4, 35.0], net_spend=[25.0, 84236.4, 35.0]) == [
        "orders worth 12.50 on average, below the typical 35",
        "large orders (84,236 on average, typical 35)",
        "orders worth 35 on average (typical 35)",
    ]
    assert _one("total_spend", typ, total_spend=[99.999, 5000.0]) == [
        "spent 100 in total, below the typical 1,234", "high total spend (5,000, typical 1,234)"]
    # negative net spend: the customer returned more than they bought, whatever spend feature drives
    assert _one("spend_per_year", typ, spend_per_year=[-4.0], net_spend=[-4.0]) == ["returned more than bought (net -4)"]
    assert _one("net_spend", net_spend=[-3.75]) == ["returned more than bought (net -3.75)"]


def test_returns_windows_and_trends():
    assert _one("n_returns", n_returns=[0.0, 1.0, 3.0], return_amount=[0.0, 45.5, 0.0]) == [
        "no returns", "1 return worth 45.50", "3 returns"]
    typ = {"n_purchases_90d": 2.0, "spend_90d": 40.0}
    assert _one("n_purchases_90d", typ, n_purchases_90d=[0.0, 1.0, 3.0]) == [
        "no purchase in the last 90 days", "only 1 purchase in the last 90 days", "3 purchases in the last 90 days"]
    assert _one("spend_90d", typ, spend_90d=[-4.0, 0.0, 12.5, 40.0]) == [
        "returned more than bought in the last 90 days (net -4)", "no spend in the last 90 days",
        "spent 12.50 in the last 90 days, below the typical 40", "spent 40 in the last 90 days"]
    # an empty window is the recency fact: it reads as one, and recency + window give one sentence
    assert _one("n_purchases_90d", n_purchases_90d=[0.0, 0.0], spend_90d=[0.0, 0.0], recency_days=[179.0, 95.0],
                ipt_mean_days=[37.0, np.nan]) == [
        "no purchase for 179 days, usually buys every 37 days", "no purchase for 95 days (bought on a single day so far)"]
    f = pd.DataFrame({"recency_days": [179.0], "ipt_mean_days": [37.0], "n_purchases_90d": [0.0], "spend_90d": [0.0],
                      "n_complaint_90d": [1.0]})
    c = pd.DataFrame({"spend_90d": [0.9], "n_purchases_90d": [0.8], "recency_days": [0.7], "n_complaint_90d": [0.1], "base": [0.0]})
    assert reason_codes(c, f, low_risk=0.0)[0] == "no purchase for 179 days, usually buys every 37 days; 1 complaint in the last 90 days"
    assert _one("purchase_trend", trend_days=60, purchase_trend=[-0.5, 0.0, 0.0, 0.2], n_purchases_60d=[1.0, 0.0, 2.0, 3.0]) == [
        "fewer purchases in the last 60 days than in the 60 days before",
        "no purchase in the last 120 days",
        "as many purchases in the last 60 days as in the 60 days before",
        "more purchases in the last 60 days than in the 60 days before",
    ]
    assert _one("spend_trend", spend_trend=[-1.0, 0.0], spend_90d=[0.0, 0.0]) == [
        "spent less in the last 90 days than in the 90 days before", "no spend in the last 180 days"]


def test_event_sentences():
    assert _one("n_complaint_90d", n_complaint_90d=[0.0, 1.0, 2.0]) == [
        "no complaint in the last 90 days", "1 complaint in the last 90 days", "2 complaints in the last 90 days"]
    assert _one("n_support_ticket_total", n_support_ticket_total=[1.0, 4.0]) == ["1 support ticket so far", "4 support tickets so far"]
    assert _one("n_nps_30d", n_nps_30d=[0.0, 2.0]) == ["no NPS answers in the last 30 days", "2 NPS answers in the last 30 days"]
    assert _one("days_since_last_complaint", days_since_last_complaint=[np.nan, 0.2, 1.0, 12.0]) == [
        "no complaint recorded", "last complaint today", "last complaint yesterday", "last complaint 12 days ago"]
    assert _one("last_nps", {"last_nps": 8.0}, last_nps=[3.0, 8.0, np.nan]) == [
        "last NPS answer 3 (typical 8)", "last NPS answer 8", "no NPS answer yet"]
    assert _one("last_csat", {"last_csat": 4.0}, last_csat=[2.5]) == ["last CSAT answer 2.5 (typical 4)"]


def test_other_features_read_plainly():
    assert _one("discount_share", {"discount_share": 0.1}, discount_share=[0.35]) == ["discount share 0.35 (typical 0.1)"]
    f = pd.DataFrame({"country": pd.Categorical(["DE", None], categories=["DE", "FR"])})
    assert _phrase("country", f).tolist() == ["country: DE", "country: unknown"]


def test_no_raw_floats_or_broken_plurals_on_a_random_population():
    rng = np.random.default_rng(0)
    n = 2000
    feats = pd.DataFrame(
        {"recency_days": rng.exponential(60, n), "ipt_mean_days": np.where(rng.uniform(size=n) < 0.3, np.nan, rng.gamma(2, 20, n)),
         "n_purchases": rng.poisson(2, n) + 1.0, "tenure_days": rng.uniform(0.2, 1500, n), "avg_order_value": rng.gamma(2, 30, n) * 1.000001,
         "net_spend": rng.normal(100, 80, n), "spend_90d": rng.normal(20, 40, n), "n_purchases_90d": rng.poisson(0.8, n).astype(float),
         "n_returns": rng.poisson(0.5, n).astype(float), "return_amount": rng.gamma(1, 20, n),
         "purchase_trend": rng.uniform(-1, 1, n), "n_complaint_90d": rng.poisson(0.4, n).astype(float),
         "days_since_last_complaint": np.where(rng.uniform(size=n) < 0.5, np.nan, rng.exponential(30, n))},
        index=[f"c{i}" for i in range(n)],
    )
    contrib = pd.DataFrame(rng.normal(0, 1, (n, feats.shape[1])), index=feats.index, columns=feats.columns)
    contrib["base"] = 0.5
    r = reason_codes(contrib, feats, k=3, low_risk=0.05)
    assert r.str.len().gt(0).all()
    text = " ".join(r)
    assert not re.search(r"\d\.\d{3}", text)  # no long floats
    assert not re.search(r"(?<![\d,])1 (days|purchases|returns|complaints|months)\b", text)
    assert not re.search(r"(?<![\d,.])(0|[2-9]|\d{2,}) (day|purchase|return|complaint|month)\b", text)
    assert "(s)" not in text and "nan" not in text.lower() and "unknown" not in text
    # a customer whose risk is not above the reference never gets drivers
    gated = r.str.startswith(("low risk", "no risk driver"))
    assert gated[contrib.drop(columns="base").sum(axis=1) <= 0].all() and not gated.all()
