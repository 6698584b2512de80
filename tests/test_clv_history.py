"""Issue 22: a purchase model with no visible dropout is degenerate and its P(alive) is not shown as
informative; CLV respects net past spend; the audit's p_alive and clv_history checks."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import churnml.clv as clv_module
from churnml.audit import (
    CLV_FLOOR_SHARE, check_clv_history, check_p_alive,
)
from churnml.clv import NO_DROPOUT_SHARE, CLVModel
from churnml.config import CLVConfig, Config
from churnml.datasets import load_cdnow, simulate, simulate_regime
from churnml.features import calibration_holdout, rfm_summary
from churnml.value import ValueModel

CDNOW_GG = {"p": 6.25, "q": 3.74, "v": 15.44}  # Fader, Hardie & Lee 2005, CDNOW sample


@pytest.fixture(scope="module")
def cdnow_rfm():
    tx = load_cdnow("sample").rename(columns={"date": "timestamp", "dollar_value": "amount"})
    cal = calibration_holdout(tx, calibration_end="1997-09-30", observation_end="1998-06-30", amount="amount", freq="D",
                              freq_multiplier=7)
    return cal.rename(columns={"frequency_cal": "frequency", "recency_cal": "recency", "T_cal": "T",
                               "monetary_value_cal": "monetary_value"})[["frequency", "recency", "T", "monetary_value"]]


def _force(monkeypatch, params):
    """Every gradient rung returns ``params`` (BG/NBD family): a degenerate fit built explicitly."""
    def forced(fitter, spec, *args, **kwargs):
        if spec.fitter in ("BetaGeoFitter", "ModifiedBetaGeoFitter"):
            fitter.params_ = pd.Series(params, dtype=float)
            return
        return original(fitter, spec, *args, **kwargs)

    original = clv_module._fit_lifetimes_likelihood
    monkeypatch.setattr(clv_module, "_fit_lifetimes_likelihood", forced)


# ------------------------------------------------------------------ degenerate = no visible dropout


@pytest.mark.parametrize("purchase_model", ["bgnbd", "mbgnbd"])
def test_interior_fit_without_dropout_is_degenerate(monkeypatch, cdnow_rfm, purchase_model):
    """a = 1.4e-4, b = 1422 (what MBG/NBD gave on apparel 6 months): no parameter at a boundary,
    rung 'default', yet a dropout probability of 1e-7 per purchase: degenerate, and said."""
    _force(monkeypatch, {"r": 0.24, "alpha": 4.4, "a": 1.4e-4, "b": 1422.0})
    with pytest.warns(UserWarning, match="saw no dropout"):
        m = CLVModel(purchase_model=purchase_model).fit(cdnow_rfm)
    assert m.fit_rung_["purchase"] == "default" and not clv_module._at_boundary(m.purchase_model_.params_)
    assert m.no_dropout_ and m.degenerate_ and m.dropout_share_ < NO_DROPOUT_SHARE
    s = m.summary()
    assert s["no_dropout"] and s["degenerate"] and s["dropout_per_purchase"] < 1e-6
    assert "saw no dropout" in s["note"]
    assert (m.predict(cdnow_rfm)["p_alive"] > 0.99).mean() > 0.99  # (nearly) everyone


def test_published_cdnow_fit_sees_dropout(cdnow_rfm):
    m = CLVModel().fit(cdnow_rfm)
    assert not m.no_dropout_ and not m.degenerate_ and m.summary()["note"] is None
    # a = 0.793, b = 2.426 (published): a quarter of the repeat purchases end in a dropout
    assert m.summary()["dropout_per_purchase"] == pytest.approx(0.793 / (0.793 + 2.426), abs=0.01)
    assert m.dropout_share_ > 0.2


def _rfm_of(tx, end):
    return rfm_summary(tx, amount="amount", observation_end=end, freq="D", freq_multiplier=7)


def test_simulated_without_dropout_is_degenerate():
    """Nobody ever drops out (p = 0, regime no_dropout): whatever rung the fit stops at, the
    fitted model cannot estimate that 1% of repeaters have left."""
    tx, truth = simulate_regime("no_dropout", 3000, seed=3)
    assert (truth["p"] == 0).all()
    tx = tx.loc[tx["amount"] > 0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = CLVModel(purchase_model="mbgnbd").fit(_rfm_of(tx, "2022-06-01"))
    assert m.degenerate_ and m.no_dropout_


def test_simulated_with_dropout_recovers_the_share_that_left():
    """BG/NBD with known a = 0.8, b = 2.5: not degenerate, and the estimated share of repeaters
    already gone matches the simulated truth (who was not alive at the end)."""
    tx, truth = simulate(4000, start="2020-01-01", end="2021-07-01", seed=5)
    rfm = _rfm_of(tx, "2021-07-01")
    m = CLVModel().fit(rfm)
    assert not m.degenerate_ and not m.no_dropout_
    rep = rfm.index[rfm["frequency"] > 0]
    gone = 1.0 - truth.loc[rep, "alive_at_end"].mean()
    assert m.dropout_share_ == pytest.approx(gone, abs=0.05)
    assert m.params_["a"] / (m.params_["a"] + m.params_["b"]) == pytest.approx(0.8 / 3.3, abs=0.08)


# ------------------------------------------------------------------ what the value model ships


def _spend_model(rfm, gg=CDNOW_GG):
    m = CLVModel().fit(rfm)
    for k, v in gg.items():
        m.spend_model_.params_[k] = v
    return m


def test_expected_spend_respects_net_past_spend(cdnow_rfm):
    m = _spend_model(cdnow_rfm)
    p, q, v = CDNOW_GG["p"], CDNOW_GG["q"], CDNOW_GG["v"]
    rfm = pd.DataFrame({
        "frequency": [0.0, 0.0, 0.0, 2.0, 2.0, 3.0],
        "recency": [0.0, 0.0, 0.0, 10.0, 10.0, 20.0],
        "T": [30.0] * 6,
        "monetary_value": [0.0, 0.0, 0.0, 40.0, -5.0, 50.0],
        "net_spend": [15.0, 900.0, -841.0, 120.0, 30.0, 0.0],
    })
    got = m.expected_avg_spend(rfm)
    assert got[0] == pytest.approx(p * (v + 15.0) / (p + q - 1))  # one order of 15: one observation
    assert got[1] == pytest.approx(p * (v + 900.0) / (p + q - 1))
    assert got[2] == 0.0 and got[5] == 0.0  # spent 15, returned 856 / everything returned
    assert got[3] == pytest.approx(p * (v + 2 * 40.0) / (2 * p + q - 1))
    assert got[4] == pytest.approx(p * v / (2 * p + q - 1)) and got[4] < p * v / (q - 1)  # repeats returned: m = 0
    # without net_spend the textbook answer: one-time buyers get the population mean
    plain = m.expected_avg_spend(rfm.drop(columns="net_spend"))
    assert plain[0] == plain[1] == pytest.approx(p * v / (q - 1))


def _value_model(clv_model):
    vm = ValueModel(clv=CLVConfig())
    vm.clv_model_, vm.ml_model_, vm.chosen_, vm.horizon_fit_days_ = clv_model, None, "btyd", None
    return vm


def _feats(rfm, net):
    return pd.DataFrame({"frequency": rfm["frequency"], "recency": rfm["recency"] * 7, "T": rfm["T"] * 7,
                         "monetary_value": rfm["monetary_value"], "net_spend": net}, index=rfm.index)


def test_no_dropout_takes_p_alive_and_survival_from_the_churn_model(monkeypatch, cdnow_rfm):
    _force(monkeypatch, {"r": 0.24, "alpha": 4.4, "a": 1.4e-4, "b": 1422.0})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = CLVModel(purchase_model="mbgnbd").fit(cdnow_rfm)
    feats = _feats(cdnow_rfm, np.where(cdnow_rfm["frequency"] > 0, 50.0, 20.0))
    churn = np.random.default_rng(0).uniform(0.05, 0.95, len(feats))
    out = _value_model(m).predict_features(feats, churn_probability=churn)
    assert np.allclose(out["p_alive"], 1 - churn) and (out["p_alive_source"] == "churn_model").all()
    assert np.allclose(out["predicted_clv"], out["value_if_retained"] * (1 - churn))
    assert not np.allclose(out["predicted_clv"], out["value_if_retained"])
    # expected purchases move with P(alive): BTYD's (P(alive) ~ 1) times the churn model's survival
    btyd = _value_model(m).predict_features(feats)
    assert np.allclose(out["expected_purchases"], btyd["expected_purchases"] * (1 - churn) / btyd["p_alive"])
    # without the churn model's probabilities the BTYD answer is kept, and labelled as such
    assert (_value_model(m).predict_features(feats)["p_alive_source"] == "btyd").all()


def test_model_with_dropout_keeps_btyd_p_alive(cdnow_rfm):
    m = CLVModel().fit(cdnow_rfm)
    feats = _feats(cdnow_rfm, 30.0)
    out = _value_model(m).predict_features(feats, churn_probability=np.full(len(feats), 0.5))
    assert np.allclose(out["p_alive"], m.predict(cdnow_rfm)["p_alive"]) and (out["p_alive_source"] == "btyd").all()


def test_net_spend_at_most_zero_ranks_last(cdnow_rfm):
    m = CLVModel().fit(cdnow_rfm)
    net = np.where(np.arange(len(cdnow_rfm)) % 7 == 0, -841.0, 60.0)
    out = _value_model(m).predict_features(_feats(cdnow_rfm, net))
    clv = out["predicted_clv"].to_numpy()
    assert (clv[net <= 0] == 0).all() and (out["value_if_retained"].to_numpy()[net <= 0] == 0).all()
    assert (clv[net <= 0] <= np.median(clv)).all()
    assert not check_clv_history(pd.DataFrame({"predicted_clv": clv, "net_spend": net}, index=cdnow_rfm.index), Config())


# ------------------------------------------------------------------ audit checks on hand-built tables


def _table(n=600, p_alive=None, churn=0.63, seed=0):
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "customer_id": [f"C{i}" for i in range(n)],
        "churn_probability": np.full(n, churn),
        "p_alive": np.ones(n) if p_alive is None else p_alive,
        "frequency": np.full(n, 4.0), "ipt_mean_days": np.full(n, 20.0),
        "recency_days": rng.uniform(1, 30, n),
    })


def _sev(findings):
    return sorted(f.severity for f in findings)


def test_p_alive_all_one_fails_unless_said():
    t = _table()
    found = check_p_alive(t, Config(), None)
    assert "fail" in _sev(found) and "63%" in [f for f in found if f.severity == "fail"][0].message
    said = {"clv_fit": {"no_dropout": True, "degenerate": True}}
    assert _sev(check_p_alive(t, Config(), said)) == ["warn"]
    t["p_alive"] = np.full(len(t), 0.9999)
    assert "fail" in _sev(check_p_alive(t, Config(), {"clv_fit": {"no_dropout": False, "degenerate": False}}))


def test_p_alive_high_while_the_log_shows_dropout_fails():
    t = _table()
    gone = np.arange(len(t)) % 2 == 0  # half the repeaters silent for 300 days after buying every 20
    t.loc[gone, "recency_days"] = 300.0
    t["p_alive"] = np.where(gone, 0.97, 0.99)
    found = check_p_alive(t, Config(), None)
    assert [f.severity for f in found] == ["fail"] and "shows dropout" in found[0].message
    t["p_alive"] = np.where(gone, 0.05, 0.95)  # P(alive) that agrees with the log
    assert check_p_alive(t, Config(), None) == []


def test_p_alive_no_dropout_in_the_log_passes_and_few_repeaters_note():
    """Poisson buyers who never leave: their silences are as long as chance allows, nothing
    fails whatever informative P(alive) is shown."""
    rng = np.random.default_rng(1)
    n, k = 2000, 5
    rate = rng.gamma(2.0, 1 / 40.0, n)  # per day
    gaps = rng.exponential(1 / rate[:, None], (n, k))
    t = pd.DataFrame({"customer_id": np.arange(n).astype(str), "p_alive": rng.uniform(0.9, 0.998, n),
                      "frequency": float(k), "ipt_mean_days": gaps.mean(axis=1), "recency_days": rng.exponential(1 / rate)})
    assert check_p_alive(t, Config(), None) == []
    assert _sev(check_p_alive(t.head(20), Config(), None)) == ["note"]
    assert _sev(check_p_alive(t.drop(columns="p_alive"), Config(), None)) == ["note"]


def test_clv_history_fails_on_negative_net_spend_above_median():
    n = 100
    t = pd.DataFrame({"predicted_clv": np.linspace(10, 500, n), "net_spend": np.linspace(20, 900, n)},
                     index=pd.Index([f"C{i}" for i in range(n)], name="customer_id"))
    assert check_clv_history(t, Config(), None) == []
    t.loc["C90", "net_spend"] = -841.0  # spent 15, returned 856, CLV near the top
    found = check_clv_history(t, Config(), None)
    assert [f.severity for f in found] == ["fail"] and "C90" in found[0].message and "1 customers" in found[0].message


def test_clv_history_fails_on_a_shared_floor():
    n = 100
    clv = np.where(np.arange(n) < 60, 26.47, np.linspace(30, 300, n))  # 60% at the floor
    t = pd.DataFrame({"customer_id": np.arange(n).astype(str), "predicted_clv": clv, "net_spend": 50.0})
    found = check_clv_history(t, Config(), None)
    assert [f.severity for f in found] == ["fail"] and "floor" in found[0].message
    assert 0.6 > CLV_FLOOR_SHARE
    t.loc[t.index[:20], "predicted_clv"] = np.linspace(27, 29, 20)  # 40% at it: no floor
    assert check_clv_history(t, Config(), None) == []
    assert _sev(check_clv_history(t.drop(columns="predicted_clv"), Config(), None)) == ["note"]

