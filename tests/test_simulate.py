"""The simulator returns the truth, so P(alive) and CLV can be checked against it."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from churnml.clv import CLVModel
from churnml.datasets import simulate
from churnml.features import rfm_summary

BG = {"r": 1.5, "alpha": 10.0, "a": 0.7, "b": 3.0}
GG = {"p": 6.0, "q": 4.0, "gamma": 15.0}


def test_simulated_log_follows_its_parameters():
    tx, truth = simulate(20_000, "2020-01-01", "2022-01-01", BG, GG, seed=3)
    assert tx["customer_id"].nunique() == 20_000 and truth.index.is_unique
    # every customer's first purchase is in the log at their true first_purchase time
    first = tx.groupby("customer_id")["timestamp"].min()
    assert (first == truth.loc[first.index, "first_purchase"]).all()
    # means of the latent variables match the Gamma and Beta draws
    assert truth["lam"].mean() == pytest.approx(BG["r"] / BG["alpha"], rel=0.03)
    assert truth["p"].mean() == pytest.approx(BG["a"] / (BG["a"] + BG["b"]), rel=0.03)
    assert truth["mean_spend"].mean() == pytest.approx(GG["p"] * GG["gamma"] / (GG["q"] - 1), rel=0.03)
    # nobody buys after dropping out
    last = tx.groupby("customer_id")["timestamp"].max()
    assert (last <= truth.loc[last.index, "dropout_time"]).all()
    # same seed, same log
    tx2, _ = simulate(20_000, "2020-01-01", "2022-01-01", BG, GG, seed=3)
    pd.testing.assert_frame_equal(tx, tx2)


def test_p_alive_and_clv_against_truth():
    """Fit on the first 2 years, forecast the next year, compare with what the simulation did."""
    tx, truth = simulate(30_000, "2020-01-01", "2023-01-01", BG, GG, seed=11, acquisition_days=180)
    cut = pd.Timestamp("2022-01-01")
    rfm = rfm_summary(tx[tx["timestamp"] < cut], amount="amount", observation_end=cut, freq="h", freq_multiplier=168)
    model = CLVModel(horizon_days=365, discount_rate=0.0).fit(rfm)
    pred = model.predict(rfm)
    alive = (truth.loc[pred.index, "dropout_time"] > cut).to_numpy()
    # calibration of P(alive): predicted share alive equals the true share, by decile too
    assert pred["p_alive"].mean() == pytest.approx(alive.mean(), abs=0.02)
    deciles = pd.qcut(pred["p_alive"].rank(method="first"), 10, labels=False)
    by = pd.DataFrame({"p": pred["p_alive"], "alive": alive}).groupby(deciles.to_numpy()).mean()
    assert (by["p"] - by["alive"]).abs().max() < 0.06
    # CLV: the forecast total spend of the next year against the simulated spend
    future = tx[(tx["timestamp"] >= cut) & (tx["timestamp"] < cut + pd.Timedelta(days=365))]
    actual = future.groupby("customer_id")["amount"].sum().reindex(pred.index, fill_value=0.0)
    assert pred["predicted_clv"].sum() == pytest.approx(actual.sum(), rel=0.05)
    assert np.corrcoef(pred["predicted_clv"], actual)[0, 1] > 0.5
