"""CLV models against published numbers (Fader, Hardie & Lee 2005) and simulated truth."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import churnml.clv as clv_module

from churnml.clv import CLVModel
from churnml.clv_diagnostics import clv_diagnostics, plot_clv_diagnostics
from churnml.datasets import load_cdnow, simulate
from churnml.errors import DataError, ModelError
from churnml.features import calibration_holdout, rfm_summary

CAL_END, OBS_END = "1997-09-30", "1998-06-30"


@pytest.fixture(scope="module")
def cdnow_sample_tx():
    return load_cdnow("sample").rename(columns={"date": "timestamp", "dollar_value": "amount"})


@pytest.fixture(scope="module")
def cdnow_cal(cdnow_sample_tx):
    # the paper's convention: purchases counted per day, time in weeks; from the raw file
    return calibration_holdout(
        cdnow_sample_tx, calibration_end=CAL_END, observation_end=OBS_END, amount="amount", freq="D", freq_multiplier=7
    )


def _rfm(cal):
    return cal.rename(
        columns={"frequency_cal": "frequency", "recency_cal": "recency", "T_cal": "T", "monetary_value_cal": "monetary_value"}
    )[["frequency", "recency", "T", "monetary_value"]]


@pytest.fixture(scope="module")
def cdnow_model(cdnow_cal):
    return CLVModel().fit(_rfm(cdnow_cal))


def test_cdnow_sample_reproduces_published_bgnbd_and_gamma_gamma(cdnow_cal, cdnow_model):
    assert len(cdnow_cal) == 2357
    published = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426, "gg_p": 6.25, "gg_q": 3.74, "gg_v": 15.44}
    for name, value in published.items():
        assert cdnow_model.params_[name] == pytest.approx(value, rel=0.005), name
    assert cdnow_model.log_likelihood_ == pytest.approx(-9582.4, abs=0.5)
    assert cdnow_model.fit_rung_ == {"purchase": "default", "spend": "default"}
    # 1,016 distinct (frequency, recency, T) rows stand for 2,357 customers
    assert cdnow_model.n_fit_rows_ < cdnow_model.n_customers_ == 2357


def test_cdnow_holdout_forecast_and_tracking_plot(cdnow_model, cdnow_cal, cdnow_sample_tx, tmp_path):
    diag = clv_diagnostics(
        cdnow_model, cal_holdout=cdnow_cal, transactions=cdnow_sample_tx, calibration_end=CAL_END, observation_end=OBS_END
    )
    print(f"\nCDNOW holdout weeks 40-78: actual {diag.tracking_holdout_actual:,.0f} repeat purchase-days, "
          f"BG/NBD expected {diag.tracking_holdout_expected:,.1f} (conditional per-customer sum {diag.holdout_expected:,.1f})")
    assert diag.holdout_actual == 1882 and diag.tracking_holdout_actual == 1882
    assert diag.tracking_holdout_expected == pytest.approx(1664, rel=0.02)
    assert diag.holdout_expected == pytest.approx(1664, rel=0.02)
    # the model under-forecasts the holdout, as in the paper; it tracks the calibration period
    cal = diag.tracking[diag.tracking["in_calibration"]]
    assert abs(cal["expected_cumulative"].iloc[-1] / cal["actual_cumulative"].iloc[-1] - 1) < 0.03
    cvh = diag.calibration_vs_holdout
    assert cvh["customers"].sum() == 2357 and (cvh["expected"].diff().dropna() > 0).all()
    paths = plot_clv_diagnostics(diag, tmp_path)
    names = {p.name for p in paths}
    assert {"clv_tracking.png", "clv_calibration_holdout.png", "clv_p_alive.png", "clv_summary.json"} == names
    assert (tmp_path / "clv_tracking.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    m = diag.p_alive_matrix
    # more purchases at the same recency -> lower P(alive) when recency is old; all in [0, 1]
    assert ((m.to_numpy() >= 0) & (m.to_numpy() <= 1)).all()
    assert m.iloc[5, 0] < m.iloc[1, 0]


def test_weights_collapse_equals_raw_rows(cdnow_cal):
    rfm = _rfm(cdnow_cal)
    a = CLVModel(collapse=True).fit(rfm)
    b = CLVModel(collapse=False).fit(rfm)
    for k in ("r", "alpha", "a", "b"):
        assert a.params_[k] == pytest.approx(b.params_[k], rel=1e-4)
    assert a.log_likelihood_ == pytest.approx(b.log_likelihood_, abs=1e-3)
    assert b.n_fit_rows_ == 2357


@pytest.mark.parametrize(
    ("model", "published"),
    [
        # Pareto/NBD on the CDNOW sample, 39-week calibration (Fader, Hardie & Lee 2005, table 1)
        ("pareto_nbd", {"r": 0.553, "alpha": 10.578, "s": 0.606, "beta": 11.669}),
    ],
)
def test_other_purchase_models(cdnow_cal, model, published):
    m = CLVModel(purchase_model=model).fit(_rfm(cdnow_cal))
    for name, value in published.items():
        assert m.params_[name] == pytest.approx(value, rel=0.01), name
    pred = m.predict(_rfm(cdnow_cal))
    assert pred["p_alive"].between(0, 1).all()


def test_mbgnbd_fits_and_forecasts_close_to_bgnbd(cdnow_cal, cdnow_model):
    m = CLVModel(purchase_model="mbgnbd").fit(_rfm(cdnow_cal))
    bg = cdnow_model.predict(_rfm(cdnow_cal))["expected_purchases"].sum()
    mbg = m.predict(_rfm(cdnow_cal))["expected_purchases"].sum()
    assert mbg == pytest.approx(bg, rel=0.1)
    assert m.log_likelihood_ > cdnow_model.log_likelihood_ - 50


def test_parameter_recovery_from_simulated_data():
    truth_bg = {"r": 2.0, "alpha": 10.0, "a": 0.6, "b": 3.0}
    truth_gg = {"p": 6.0, "q": 4.0, "gamma": 15.0}
    tx, truth = simulate(50_000, "2020-01-01", "2023-01-01", truth_bg, truth_gg, seed=1)
    # hour-level periods: the simulated purchases are continuous in time
    rfm = rfm_summary(tx, amount="amount", observation_end="2023-01-01", freq="h", freq_multiplier=168)
    m = CLVModel().fit(rfm)
    for k, v in truth_bg.items():
        assert m.params_[k] == pytest.approx(v, rel=0.05), k
    for k, v in {"gg_p": 6.0, "gg_q": 4.0, "gg_v": 15.0}.items():
        assert m.params_[k] == pytest.approx(v, rel=0.05), k
    # P(alive) is informative about the true state at the end of the window
    pred = m.predict(rfm)
    alive = truth.loc[pred.index, "alive_at_end"].to_numpy()
    assert pred.loc[alive, "p_alive"].mean() > pred.loc[~alive, "p_alive"].mean() + 0.3


def test_no_purchase_probability_is_calibrated_on_simulated_data():
    tx, _ = simulate(20_000, "2020-01-01", "2022-07-01", {"r": 1.0, "alpha": 8.0, "a": 0.8, "b": 2.5}, seed=7)
    cut = pd.Timestamp("2022-01-01")
    rfm = rfm_summary(tx[tx.timestamp < cut], amount="amount", observation_end=cut, freq="h", freq_multiplier=168)
    m = CLVModel().fit(rfm)
    p_none = m.probability_no_purchase(rfm, horizon_days=90)
    later = tx[(tx.timestamp >= cut) & (tx.timestamp < cut + pd.Timedelta(days=90))]["customer_id"].unique()
    observed_none = ~rfm.index.isin(later)
    assert p_none.mean() == pytest.approx(observed_none.mean(), abs=0.02)
    # and it ranks: the 20% most likely to stay silent are silent far more often
    top = np.argsort(-p_none)[: len(p_none) // 5]
    assert observed_none[top].mean() > observed_none.mean() + 0.15


def test_predict_contract(cdnow_model, cdnow_cal):
    rfm = _rfm(cdnow_cal)
    pred = cdnow_model.predict(rfm)
    assert list(pred.columns) == ["p_alive", "expected_purchases", "expected_avg_spend", "predicted_clv", "value_if_retained"]
    assert pred.index.equals(rfm.index)
    p, q, v = (cdnow_model.params_[k] for k in ("gg_p", "gg_q", "gg_v"))
    one_timers = rfm["frequency"] == 0
    np.testing.assert_allclose(pred.loc[one_timers, "expected_avg_spend"], p * v / (q - 1))
    # undiscounted, margin 1: CLV = expected purchases x expected spend; discounting lowers it
    flat = CLVModel(discount_rate=0.0).fit(rfm).predict(rfm)
    np.testing.assert_allclose(flat["predicted_clv"], flat["expected_purchases"] * flat["expected_avg_spend"], rtol=1e-9)
    assert (pred["predicted_clv"] < flat["predicted_clv"] + 1e-12).all()
    half = CLVModel(discount_rate=0.0, margin=0.5).fit(rfm).predict(rfm)
    np.testing.assert_allclose(half["predicted_clv"], 0.5 * flat["predicted_clv"], rtol=1e-9)
    # value if retained: the Gamma posterior rate (r + x) / (alpha + T) over the horizon (weeks)
    r, alpha = cdnow_model.params_["r"], cdnow_model.params_["alpha"]
    rate = (r + rfm["frequency"]) / (alpha + rfm["T"])
    np.testing.assert_allclose(flat["value_if_retained"], rate * 365 / 7 * flat["expected_avg_spend"], rtol=1e-9)
    # staying active the whole horizon is worth at least the churn-weighted expectation
    assert (flat["value_if_retained"] >= flat["predicted_clv"] - 1e-9).all()
    one = CLVModel(discount_rate=0.0, horizon_days=30.4375)  # one month: discounted exactly once
    assert clv_module.mean_discount(30.4375, 0.1) == pytest.approx(1.1 ** (-1 / 12))
    assert clv_module.mean_discount(365.25, 0.0) == 1.0
    del one


def test_fit_ladder_moves_on_and_records(monkeypatch, cdnow_cal):
    import lifetimes

    import churnml.clv as clv_module

    calls = {"n": 0}
    original = clv_module._fit_lifetimes_likelihood

    def flaky(fitter, spec, *args, **kwargs):
        if spec.fitter == "BetaGeoFitter":
            calls["n"] += 1
            if calls["n"] == 1:
                raise lifetimes.utils.ConvergenceError("The model did not converge.")
        return original(fitter, spec, *args, **kwargs)

    monkeypatch.setattr(clv_module, "_fit_lifetimes_likelihood", flaky)
    m = CLVModel().fit(_rfm(cdnow_cal))
    assert m.fit_rung_["purchase"] == "rescaled_time"
    assert m.fit_attempts_["purchase"][0]["rung"] == "default" and "ConvergenceError" in m.fit_attempts_["purchase"][0]["error"]
    assert m.params_["r"] == pytest.approx(0.243, rel=0.005) and m.params_["alpha"] == pytest.approx(4.414, rel=0.005)


def _forced_params(monkeypatch, params_by_call):
    """Make the gradient rungs return given BG/NBD parameters, call by call (None: fit as usual)."""
    import churnml.clv as clv_module

    calls = {"n": 0}
    original = clv_module._fit_lifetimes_likelihood

    def forced(fitter, spec, *args, **kwargs):
        if spec.fitter == "BetaGeoFitter" and calls["n"] < len(params_by_call):
            calls["n"] += 1
            fitter.params_ = pd.Series(params_by_call[calls["n"] - 1], dtype=float)
            return
        original(fitter, spec, *args, **kwargs)

    monkeypatch.setattr(clv_module, "_fit_lifetimes_likelihood", forced)


def test_boundary_optimum_moves_down_the_ladder(monkeypatch, cdnow_cal):
    """A degenerate optimum (b -> infinity: nobody drops out) built explicitly, not left to where
    an optimiser happens to stop: the ladder records it and ships the next interior fit."""
    _forced_params(monkeypatch, [{"r": 0.3, "alpha": 4.0, "a": 0.8, "b": 2e6}])
    m = CLVModel().fit(_rfm(cdnow_cal))
    first = m.fit_attempts_["purchase"][0]
    assert first["rung"] == "default" and first["boundary"] is True
    assert m.fit_rung_["purchase"] == "rescaled_time" and not m.degenerate_
    assert m.params_["b"] == pytest.approx(2.426, rel=0.005)


def test_every_rung_at_a_boundary_ships_the_first_with_a_warning(monkeypatch, cdnow_cal):
    bound = {"r": 0.3, "alpha": 4.0, "a": 0.8, "b": 2e6}
    _forced_params(monkeypatch, [bound] * 10)
    monkeypatch.setattr("churnml.clv.minimize", lambda *a, **k: __import__("scipy").optimize.OptimizeResult(
        success=False, fun=np.nan, message="nope"))
    with pytest.warns(UserWarning, match="every BetaGeoFitter fit of the ladder ends at a boundary"):
        m = CLVModel().fit(_rfm(cdnow_cal).drop(columns="monetary_value"))
    assert m.degenerate_ and m.fit_rung_["purchase"] == "default"


def test_implausible_predictions_move_down_the_ladder(monkeypatch, cdnow_cal):
    """b = 1e16: lifetimes' hypergeometric term breaks down and gives 2.8e16 expected purchases
    per customer (the failure seen on a wholesale log): rejected, the reason recorded."""
    _forced_params(monkeypatch, [{"r": 0.3, "alpha": 4.0, "a": 0.8, "b": 1e16}])
    m = CLVModel().fit(_rfm(cdnow_cal))
    err = m.fit_attempts_["purchase"][0]["error"]
    assert "negative expected purchases" in err
    assert m.fit_rung_["purchase"] == "rescaled_time"
    pred = m.predict(_rfm(cdnow_cal))
    assert np.isfinite(pred.to_numpy()).all() and pred["expected_purchases"].max() < 100


def test_plausibility_rule_against_observed_rates():
    """Hand-built: the fastest customer made 4 repeat purchases in 10 weeks (0.4 per week), so a
    model expecting 20 x 0.4 = 8+ purchases per week for anyone is implausible; one expecting the
    observed rates is not; the population rule caps the total ahead at 20x the repeats so far."""
    class Fake:
        def __init__(self, rate):
            self.rate = rate

        def conditional_probability_alive(self, f, r, T):
            return np.ones_like(f)

        def conditional_expected_number_of_purchases_up_to_time(self, t, f, r, T):
            return self.rate * t * np.ones_like(f)

    cols = {"frequency": np.array([0.0, 4.0]), "recency": np.array([0.0, 9.0]), "T": np.array([10.0, 10.0])}
    w = np.ones(2)
    assert clv_module._prediction_problem(Fake(0.4), cols, w, False) is None
    assert "expected purchase rate up to 8.1" in clv_module._prediction_problem(Fake(8.1), cols, w, False)
    # population rule: 4 repeats so far; 2 customers x 2.1/week x 10 weeks = 42 > 20 x 4... only with a
    # lower per-customer ceiling: make the fastest customer faster
    cols2 = {"frequency": np.array([0.0, 40.0]), "recency": np.array([0.0, 9.0]), "T": np.array([10.0, 10.0])}
    assert clv_module._prediction_problem(Fake(4.5), cols2, w, False) is None  # 90 ahead vs 40 so far
    assert "repeat purchases in the next" in clv_module._prediction_problem(Fake(45.0), cols2, w, False)


def test_fit_matches_lifetimes_own_fit(cdnow_cal):
    """The Hessian-free fit path gives lifetimes' own estimates."""
    from lifetimes import BetaGeoFitter, GammaGammaFitter

    rfm = _rfm(cdnow_cal)
    ours = CLVModel(collapse=False).fit(rfm)
    bg = BetaGeoFitter().fit(rfm["frequency"], rfm["recency"], rfm["T"])
    rep = rfm[rfm["frequency"] > 0]
    gg = GammaGammaFitter().fit(rep["frequency"], rep["monetary_value"])
    for k in ("r", "alpha", "a", "b"):
        assert ours.params_[k] == pytest.approx(bg.params_[k], rel=1e-6)
    for k in ("p", "q", "v"):
        assert ours.params_[f"gg_{k}"] == pytest.approx(gg.params_[k], rel=1e-6)


def test_fit_ladder_exhausted_raises_with_advice(monkeypatch, cdnow_cal):
    import lifetimes
    import scipy.optimize

    import churnml.clv as clv_module

    def broken(*args, **kwargs):
        raise lifetimes.utils.ConvergenceError("The model did not converge.")

    monkeypatch.setattr(clv_module, "_fit_lifetimes_likelihood", broken)
    monkeypatch.setattr("churnml.clv.minimize", lambda *a, **k: scipy.optimize.OptimizeResult(success=False, fun=np.nan, message="nope"))
    with pytest.raises(ModelError, match="penalizer.*time_unit.*more history"):
        CLVModel().fit(_rfm(cdnow_cal))


def test_gamma_gamma_failure_modes(cdnow_cal):
    rfm = _rfm(cdnow_cal)
    few = rfm[(rfm.frequency == 0) | (rfm.index.isin(rfm[rfm.frequency > 0].index[:5]))]
    with pytest.raises(ModelError, match="only 5 repeat customers"):
        CLVModel().fit(few)
    bad = rfm.copy()
    bad.loc[bad[bad.frequency > 0].index[:3], "monetary_value"] = -1.0
    with pytest.warns(UserWarning, match="3 repeat customers have an average spend <= 0"):
        m = CLVModel().fit(bad)
    assert m.n_nonpositive_spend_ == 3


def test_frequency_monetary_correlation_warning(cdnow_cal):
    rfm = _rfm(cdnow_cal).copy()
    rep = rfm.frequency > 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        m = CLVModel().fit(rfm)  # CDNOW: r = 0.11, below the 0.3 threshold
    assert m.freq_monetary_corr_ == pytest.approx(0.11, abs=0.01)
    rfm.loc[rep, "monetary_value"] = 10 * rfm.loc[rep, "frequency"] + 5
    with pytest.warns(UserWarning, match=r"Pearson r = 1\.000 > 0\.3"):
        CLVModel().fit(rfm)


def test_bad_inputs():
    with pytest.raises(DataError, match="rfm_summary"):
        CLVModel().fit(pd.DataFrame({"frequency": [1.0]}))
    with pytest.raises(DataError, match="recency > T"):
        CLVModel().fit(pd.DataFrame({"frequency": [1.0], "recency": [5.0], "T": [3.0]}))
    with pytest.raises(ModelError, match="no customer has a repeat purchase"):
        CLVModel().fit(pd.DataFrame({"frequency": [0.0, 0.0], "recency": [0.0, 0.0], "T": [3.0, 4.0]}))
    with pytest.raises(ValueError, match="purchase_model"):
        CLVModel(purchase_model="nope").fit(pd.DataFrame({"frequency": [1.0], "recency": [1.0], "T": [3.0]}))
