"""Reason codes: contributions that add up to the shipped churn score whatever scorer ships,
only risk-raising drivers, and plain sentences with units and plurals."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from churnml.churn import ChurnModel, PlattCalibrator, _fit_calibrator, _logit
from churnml.config import SegmentsConfig, TierConfig
from churnml.segments import LOW_RISK, _phrase, low_risk_cut, parse_reason, reason_codes


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
    # the phrasing's helper column: purchase days less one (orders are purchase days in this simulation)
    r = reason_codes(m.shipped_contributions(Xt), Xt.assign(frequency=Xt["n_purchases"] - 1), typical=m.typical_, low_risk=0.0)
    drivers = r[~r.str.startswith(("low risk", "no single driver"))]
    assert len(drivers) > 50
    assert drivers.str.match(r"^(no purchase for \d+ days|last purchase (today|yesterday))").all()
    assert not r.str.contains("customer for|orders|spent|complaint").any()


# --------------------------------------------------------------------------- reason_codes


def test_only_risk_raising_drivers_strongest_first_and_low_risk_texts():
    feats = pd.DataFrame(
        {"recency_days": [210.0, 5.0, 30.0, 100.0], "ipt_mean_days": [45.0, np.nan, 20.0, 30.0],
         "n_complaint_90d": [2.0, 0.0, 1.0, 1.0], "last_nps": [3.0, 9.0, 8.0, 8.0],
         "tenure_days": [400.0, 30.0, 300.0, 300.0], "n_purchases": [8.0, 1.0, 5.0, 5.0],
         "recency_ratio": [4.7, np.nan, 1.5, 3.3], "frequency": [7.0, 0.0, 4.0, 4.0]},
        index=list("abcd"),
    )
    base = _logit(0.4)
    contrib = pd.DataFrame(
        {"recency_days": [1.2, 0.3, 0.2, -0.2], "recency_ratio": [0.9, 0.0, 0.0, 0.0], "n_complaint_90d": [0.8, 0.0, 0.1, 0.5],
         "last_nps": [0.5, -0.1, 0.0, 0.0], "tenure_days": [0.3, -3.0, -0.5, 0.0], "n_purchases": [-0.2, -0.1, 0.0, 0.0],
         "base": [base] * 4},
        index=list("abcd"),
    )
    typ = {"last_nps": 8.0, "tenure_days": 300.0, "n_complaint_90d": 0.0}
    r = reason_codes(contrib, feats, typical=typ, low_risk=0.2)
    # a: the three strongest positive drivers; recency days and ratio are one fact
    assert r["a"] == "no purchase for 210 days, usually buys every 45 days; 2 complaints in the last 90 days; last NPS answer 3 (typical 8)"
    # b: a positive driver, but the shipped risk (4%) is low: no "why at risk"
    assert r["b"] == "low risk: churn probability 4%"
    # c: 0.3 of drivers against 0.5 of protection: risk 35% is not above the reference's 40% (within 5 points)
    assert r["c"] == "no single driver stands out: churn probability 35%, about as high as the typical customer's 40%"
    # d: above the reference; the negative recency contribution is not a reason
    assert r["d"] == "1 complaint in the last 90 days"
    assert reason_codes(contrib, feats, k=1, typical=typ, low_risk=0.2)["a"] == "no purchase for 210 days, usually buys every 45 days"
    # optionally, customers below the reference (but not low risk) get what raises their risk
    r = reason_codes(contrib, feats, typical=typ, low_risk=0.2, above_typical_only=False)
    assert r["c"] == "no purchase for 30 days, usually buys every 20 days; 1 complaint in the last 90 days"
    assert r["b"] == "low risk: churn probability 4%"


def test_a_driver_whose_sentence_is_not_true_gives_its_slot_to_the_next():
    """The model credits recency, tenure and spend, but for this customer recency (8 days, usually
    every 167), tenure (above the typical) and spend (high) do not raise risk: the sentence of the
    next driver that does is shown; with none left, the "no risk driver" form."""
    feats = pd.DataFrame({"recency_days": [8.0, 8.0], "ipt_mean_days": [167.0, 167.0], "frequency": [3.0, 3.0], "tenure_days": [400.0, 400.0],
                          "btyd_value": [127.0, 127.0], "net_spend": [500.0, 500.0], "n_complaint_90d": [1.0, 0.0]},
                         index=["x", "y"])
    contrib = pd.DataFrame({"recency_days": [2.0, 2.0], "tenure_days": [1.0, 1.0], "btyd_value": [0.8, 0.8],
                            "n_complaint_90d": [0.5, 0.5], "base": [0.0, 0.0]}, index=["x", "y"])
    typ = {"tenure_days": 60.0, "btyd_value": 31.74, "n_complaint_90d": 0.0}
    r = reason_codes(contrib, feats, typical=typ, low_risk=0.1)
    assert r["x"] == "1 complaint in the last 90 days"
    assert r["y"] == "no single driver stands out: churn probability 99%, above the typical customer's 50%"


def test_low_risk_cut_follows_absolute_risk_tiers():
    assert low_risk_cut(SegmentsConfig()) == 0.3
    quantile = SegmentsConfig(risk=TierConfig(method="quantile", thresholds=[0.5, 0.8]))
    assert low_risk_cut(quantile) == LOW_RISK


def _one(feature, typical=None, trend_days=90, **cols):
    f = pd.DataFrame({k: (v if isinstance(v, list) else [v]) for k, v in cols.items()})
    return _phrase(feature, f, typical, trend_days).tolist()


def test_recency_sentence_only_when_overdue():
    typ = {"recency_days": 40.0}
    got = _one("recency_days", typ, recency_days=[0.0, 1.0, 8.0, 300.0, 167.0, 168.0, 2.0, 50.0, 40.0],
               ipt_mean_days=[1.0, 7.0, 167.0, 1.0, 167.0, 167.0, np.nan, np.nan, np.nan],
               frequency=[5.0, 5.0, 2.0, 9.0, 2.0, 2.0, 0.0, 0.0, 0.0])
    assert got == [
        None, None,  # a purchase today / yesterday never raises risk
        None,  # "no purchase for 8 days, usually buys every 167 days": not overdue
        "no purchase for 300 days, usually buys every day",
        None,  # exactly the usual gap: not overdue
        "no purchase for 168 days, usually buys every 167 days",
        None,  # a single purchase 2 days ago, typical customer 40 days: not a risk
        "no purchase for 50 days after a single purchase (typical 40 days)",
        None,  # a single purchase as long ago as the typical customer's last
    ]
    # BG/NBD's prior reads as the same recency fact; without recency it says what the model expects (over 50% only)
    assert _one("btyd_p_no_purchase", recency_days=[40.0], ipt_mean_days=[12.0], frequency=[3.0], btyd_p_no_purchase=[0.8]) == [
        "no purchase for 40 days, usually buys every 12 days"]
    assert _one("btyd_p_no_purchase", btyd_p_no_purchase=[0.83, 0.4, 0.504]) == [
        "the purchase model expects no purchase soon (83% chance of none in the churn horizon)", None, None]


def test_frequency_counts_purchase_days_and_only_below_typical():
    """A purchase is a day with an order: 5 orders on 3 days read "3 purchases" (the unit of the
    usual gap); "only" compares with the typical customer's purchases over the same tenure."""
    typ = {"purchase_days_per_year": 4.0}
    assert _one("n_purchases", typ, n_purchases=[1.0, 5.0, 40.0], frequency=[0.0, 2.0, 39.0], tenure_days=[20.0, 430.0, 1000.0]) == [
        None,  # 1 purchase in 20 days: above the typical 0.2 in that time
        "only 3 purchases in 14 months (typical 4.7)",
        None,  # 40 purchases in 2.7 years: above the typical 11
    ]
    # exactly typical (4.0 a year over 365.25 days = 4): not "only"
    assert _one("purchases_per_year", typ, n_purchases=[4.0], frequency=[3.0], tenure_days=[365.25]) == [None]
    # without the purchase-day count the fact cannot be stated in purchases
    assert _one("n_purchases", typ, n_purchases=[1.0], tenure_days=[400.0]) == [None]


def test_tenure_only_when_shorter_than_typical():
    typ = {"tenure_days": 200.0}
    assert _one("tenure_days", typ, tenure_days=[1.0, 30.44, 800.0, 195.0, 199.0]) == [
        # under 90 days: both in days
        "customer for only 1 day (typical 200 days)", "customer for only 30 days (typical 200 days)",
        None,  # longer than typical: never a risk driver
        None,  # 195 days against 200: under MATERIAL_SHARE shorter, no driver
        None,  # shorter, but reads as the same 7 months
    ]
    assert _one("tenure_days", typ, tenure_days=[170.0]) == ["customer for only 6 months (typical 7 months)"]
    # a typical tenure under 90 days: both in days, not "58 days (typical 2 months)"
    assert _one("tenure_days", {"tenure_days": 62.4}, tenure_days=[50.0, 70.0, 61.9, 58.0]) == [
        "customer for only 50 days (typical 62 days)", None, None, None]  # 58 against 62.4: under 10% shorter


def test_spend_low_facts_only():
    typ = {"avg_order_value": 35.0, "total_spend": 1234.5, "btyd_value": 31.74}
    assert _one("avg_order_value", typ, avg_order_value=[12.5, 84236.4, 35.0, 34.999], net_spend=[25.0, 84236.4, 35.0, 35.0]) == [
        "orders worth 12.50 on average, below the typical 35", None, None, None]
    assert _one("total_spend", typ, total_spend=[99.999, 5000.0]) == ["spent 100 in total, below the typical 1,234", None]
    # high expected future spend is never a churn reason; low is
    assert _one("btyd_value", typ, btyd_value=[127.0, 10.0], net_spend=[50.0, 50.0]) == [
        None, "expected future spend 10, below the typical 31.74"]
    # negative net spend: the customer returned more than they bought, whatever spend feature drives
    assert _one("spend_per_year", typ, spend_per_year=[-4.0], net_spend=[-4.0]) == ["returned more than bought (net -4)"]
    assert _one("net_spend", net_spend=[-3.75]) == ["returned more than bought (net -3.75)"]


def test_returns_windows_and_trends():
    assert _one("n_returns", n_returns=[0.0, 1.0, 3.0], return_amount=[0.0, 45.5, 0.0]) == [
        None, "1 return worth 45.50", "3 returns"]
    typ = {"n_purchases_90d": 2.0, "spend_90d": 40.0, "recency_days": 60.0}
    # window counts are orders: only "1" is also a count of purchases (days); 3 orders is not stated
    assert _one("n_purchases_90d", typ, n_purchases_90d=[1.0, 3.0]) == ["only 1 purchase in the last 90 days", None]
    assert _one("spend_90d", typ, spend_90d=[-4.0, 0.0, 12.5, 40.0, 80.0], recency_days=[10.0, 10.0, 10.0, 10.0, 10.0],
                n_purchases_90d=[1.0, 2.0, 1.0, 2.0, 3.0]) == [
        "returned more than bought in the last 90 days (net -4)", "bought and returned as much in the last 90 days (net 0)",
        "spent 12.50 in the last 90 days, below the typical 40", None, None]
    # an empty window is the recency fact, gated as one
    assert _one("n_purchases_90d", typ, n_purchases_90d=[0.0, 0.0, 0.0], spend_90d=[0.0, 0.0, 0.0], recency_days=[179.0, 95.0, 100.0],
                ipt_mean_days=[37.0, np.nan, 150.0], frequency=[4.0, 0.0, 2.0]) == [
        "no purchase for 179 days, usually buys every 37 days", "no purchase for 95 days after a single purchase (typical 60 days)", None]
    f = pd.DataFrame({"recency_days": [179.0], "ipt_mean_days": [37.0], "frequency": [4.0], "n_purchases_90d": [0.0], "spend_90d": [0.0],
                      "n_complaint_90d": [1.0]})
    c = pd.DataFrame({"spend_90d": [0.9], "n_purchases_90d": [0.8], "recency_days": [0.7], "n_complaint_90d": [0.1], "base": [0.0]})
    assert reason_codes(c, f, typical={"n_complaint_90d": 0.0}, low_risk=0.0)[0] == (
        "no purchase for 179 days, usually buys every 37 days; 1 complaint in the last 90 days")
    # trends: only declines; purchases (counted in orders) only when the last window has none
    assert _one("purchase_trend", trend_days=60, purchase_trend=[-0.5, 0.0, 0.0, 0.2, -1.0], n_purchases_60d=[1.0, 0.0, 2.0, 3.0, 0.0]) == [
        None, None, None, None, "no purchase in the last 60 days, after buying in the 60 days before"]
    assert _one("spend_trend", spend_trend=[-1.0, 0.0, 0.3], spend_90d=[0.0, 0.0, 5.0]) == [
        "spent less in the last 90 days than in the 90 days before", None, None]


def test_event_sentences():
    typ = {"n_complaint_90d": 0.0, "n_support_ticket_total": 0.0, "n_nps_30d": 0.0, "last_nps": 8.0, "last_csat": 4.0}
    assert _one("n_complaint_90d", typ, n_complaint_90d=[0.0, 1.0, 2.0]) == [
        None, "1 complaint in the last 90 days", "2 complaints in the last 90 days"]
    # above the typical only
    assert _one("n_complaint_90d", {"n_complaint_90d": 1.0}, n_complaint_90d=[1.0, 2.0]) == [None, "2 complaints in the last 90 days"]
    assert _one("n_support_ticket_total", typ, n_support_ticket_total=[1.0, 4.0]) == ["1 support ticket so far", "4 support tickets so far"]
    assert _one("n_nps_30d", typ, n_nps_30d=[0.0, 2.0]) == [None, "2 NPS answers in the last 30 days"]
    assert _one("days_since_last_complaint", days_since_last_complaint=[np.nan, 0.2, 1.0, 12.0]) == [
        None, "last complaint today", "last complaint yesterday", "last complaint 12 days ago"]
    assert _one("last_nps", typ, last_nps=[3.0, 8.0, np.nan, 9.0]) == ["last NPS answer 3 (typical 8)", None, None, None]
    assert _one("last_csat", typ, last_csat=[2.5]) == ["last CSAT answer 2.5 (typical 4)"]


def test_other_features_read_plainly():
    assert _one("discount_share", {"discount_share": 0.1}, discount_share=[0.35]) == ["discount share 0.35 (typical 0.1)"]
    f = pd.DataFrame({"country": pd.Categorical(["DE", None], categories=["DE", "FR"])})
    assert _phrase("country", f).tolist() == ["country: DE", None]


def test_sentences_and_parser_share_their_templates():
    """Every template the phrasing writes parses back to itself and its fields."""
    from churnml.segments import REASON_TEMPLATES, parse_reason

    assert parse_reason("no purchase for 210 days, usually buys every 45 days") == (
        "recency_overdue", {"recency": "210 days", "gap": "45 days"})
    assert parse_reason("only 3 purchases in 14 months (typical 4.7)") == (
        "frequency_low", {"k": "3 purchases", "tenure": "14 months", "typical": "4.7"})
    assert parse_reason("2 NPS answers in the last 30 days")[0] == "event_window"
    assert parse_reason("3 purchases in the last 90 days")[0] == "old_window_count"  # not an event
    assert parse_reason("high expected future spend (127, typical 31.74)")[0] == "old_high"
    assert parse_reason("discount share 0.35 (typical 0.1)")[0] == "generic"
    assert parse_reason("the moon is full") is None
    assert len(REASON_TEMPLATES) >= 20


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
    gated = r.str.startswith(("low risk", "no single driver"))
    assert gated[contrib.drop(columns="base").sum(axis=1) <= 0].all() and not gated.all()


# --------------------------------------------------------------------------- issue 22: misleading sentences


def test_one_gap_is_not_a_usual_rhythm():
    """Bought on 1 and 2 Jan, then nothing for 272 days: one gap of 1 day is no "usually buys
    every day"; "usually buys every" needs 2 or more gaps (frequency >= 2)."""
    got = _one("recency_days", {"recency_days": 40.0}, recency_days=[272.0, 272.0, 10.0, 272.0],
               ipt_mean_days=[1.0, 1.0, 20.0, 30.0], frequency=[1.0, 2.0, 1.0, 1.0])
    assert got == ["no purchase for 272 days, after 2 purchases 1 day apart", "no purchase for 272 days, usually buys every day",
                   None,  # 10 days since, after a single gap of 20: not overdue
                   "no purchase for 272 days, after 2 purchases 30 days apart"]
    assert parse_reason(got[0]) == ("recency_pair", {"recency": "272 days", "gap": "1 day"})


def test_no_repeat_purchase_spend_for_single_purchase_customers():
    typ = {"monetary_value": 3.62}
    assert _one("monetary_value", typ, monetary_value=[0.0, 1.0, 3.5], frequency=[0.0, 2.0, 2.0], net_spend=[5.0, 9.0, 9.0]) == [
        None, "repeat purchases worth 1 on average, below the typical 3.62", None]  # 3.5 vs 3.62: not material


def test_tenure_and_its_typical_share_one_unit():
    """Either under 90 days: both in days; else both as spans."""
    assert _one("tenure_days", {"tenure_days": 122.0}, tenure_days=[38.0, 115.0]) == [
        "customer for only 38 days (typical 122 days)", None]  # 115 against 122: under 10% shorter
    assert _one("tenure_days", {"tenure_days": 400.0}, tenure_days=[38.0, 95.0, 300.0]) == [
        "customer for only 38 days (typical 400 days)", "customer for only 3 months (typical 13 months)",
        "customer for only 10 months (typical 13 months)"]


def test_after_returns_only_for_customers_with_returns():
    typ = {"net_spend": 200.0}
    got = _one("net_spend", typ, net_spend=[50.0, 50.0, 50.0], n_returns=[0.0, 2.0, 0.0], return_amount=[0.0, 30.0, 12.0])
    assert got == ["spent 50 in total, below the typical 200", "spent 50 in total after returns, below the typical 200",
                   "spent 50 in total after returns, below the typical 200"]


def test_trivial_differences_are_no_risk_driver():
    """Under MATERIAL_SHARE below the typical the sentence is gated out and the next driver takes the slot."""
    from churnml.segments import MATERIAL_SHARE, materially_below

    assert MATERIAL_SHARE == 0.10
    assert materially_below([90.0, 90.5, -11.0, -10.5], [100.0, 100.0, -10.0, -10.0]).tolist() == [True, False, True, False]
    assert _one("tenure_days", {"tenure_days": 29.0}, tenure_days=[28.0, 26.0]) == [None, "customer for only 26 days (typical 29 days)"]
    assert _one("btyd_expected_avg_spend", {"btyd_expected_avg_spend": 1.05}, btyd_expected_avg_spend=[1.01, 0.94], net_spend=[5.0, 5.0]) == [
        None, "expected spend per purchase 0.94, below the typical 1.05"]
    assert _one("n_purchases", {"purchase_days_per_year": 4.0}, n_purchases=[4.0], frequency=[3.0], tenure_days=[400.0]) == [None]  # 4 vs 4.4
    assert _one("last_nps", {"last_nps": 8.0}, last_nps=[7.5, 7.0]) == [None, "last NPS answer 7 (typical 8)"]
    f = pd.DataFrame({"tenure_days": [28.0], "n_complaint_90d": [1.0]})
    c = pd.DataFrame({"tenure_days": [1.0], "n_complaint_90d": [0.5], "base": [0.0]})
    assert reason_codes(c, f, typical={"tenure_days": 29.0, "n_complaint_90d": 0.0}, low_risk=0.0)[0] == "1 complaint in the last 90 days"


def test_no_driver_summary_says_how_the_risk_compares():
    f = pd.DataFrame({"recency_days": [5.0, 5.0, 5.0]}, index=list("abc"))
    base = _logit(0.8)
    c = pd.DataFrame({"recency_days": [_logit(0.78) - base, _logit(0.6) - base, _logit(0.9) - base], "base": [base] * 3},
                     index=list("abc"))
    r = reason_codes(c, f, low_risk=0.3)
    assert r.tolist() == ["no single driver stands out: churn probability 78%, about as high as the typical customer's 80%",
                          "no single driver stands out: churn probability 60%, below the typical customer's 80%",
                          "no single driver stands out: churn probability 90%, above the typical customer's 80%"]
    assert parse_reason(r["b"]) == ("no_driver", {"p": "60%", "relation": "below", "typical": "80%"})
    low = pd.DataFrame({"recency_days": [0.0] * 3, "base": [_logit(0.2)] * 3}, index=list("abc"))
    assert reason_codes(low, f, low_risk=0.3).tolist() == ["low risk: churn probability 20%"] * 3  # unchanged
