"""The simulated regimes of the robustness corpus do what they claim, checked against their truth."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from churnml.datasets import (
    CANCEL_SHARE, CORPUS, HUGE_ORDER_AMOUNT, REGIMES, RETURN_SHARE, SEASON_MULTIPLIER, corpus, corpus_log, simulate_regime,
)

N = 20_000


@pytest.fixture(scope="module")
def regime():
    cache: dict[str, tuple[pd.DataFrame, pd.DataFrame]] = {}

    def get(name: str) -> tuple[pd.DataFrame, pd.DataFrame]:
        if name not in cache:
            cache[name] = simulate_regime(name, N, seed=7)
        return cache[name]

    return get


def _purchases(tx: pd.DataFrame) -> pd.DataFrame:
    return tx.loc[tx["amount"] > 0]


def _repeats(tx: pd.DataFrame, truth: pd.DataFrame) -> pd.Series:
    """Repeat purchases per customer (all purchases but the first)."""
    return _purchases(tx).groupby("customer_id").size().reindex(truth.index, fill_value=0) - 1


def _active_end(truth: pd.DataFrame) -> pd.Series:
    """End of each customer's active life inside the window (dropout or the window's end)."""
    end = pd.Timestamp(truth.attrs["end"])
    return truth["dropout_time"].fillna(end).clip(upper=end)


@pytest.mark.parametrize("name", list(REGIMES))
def test_every_regime_is_a_consistent_log(regime, name):
    tx, truth = regime(name)
    start, end = pd.Timestamp(truth.attrs["start"]), pd.Timestamp(truth.attrs["end"])
    assert list(tx.columns[:3]) == ["customer_id", "timestamp", "amount"]
    assert len(truth) == N and truth.index.is_unique
    assert set(tx["customer_id"]) == set(truth.index)
    assert tx["timestamp"].between(start, end, inclusive="left").all()
    assert np.isfinite(tx["amount"]).all() and (tx["amount"] != 0).all()
    # sorted by customer and time
    assert tx.equals(tx.sort_values(["customer_id", "timestamp"], kind="stable").reset_index(drop=True))
    pur = _purchases(tx)
    # every customer's first purchase is in the log at their true first-purchase time
    first = pur.groupby("customer_id")["timestamp"].min()
    assert (first.sub(truth.loc[first.index, "first_purchase"]).abs() <= pd.Timedelta(seconds=1)).all()
    # nobody buys after dropping out (never-dropping customers have NaT)
    last = pur.groupby("customer_id")["timestamp"].max()
    drop = truth.loc[last.index, "dropout_time"]
    assert (drop.isna() | (last <= drop + pd.Timedelta(seconds=1))).all()
    assert (truth["alive_at_end"] == (truth["dropout_time"].isna() | (truth["dropout_time"] >= end))).all()
    # same seed, same log; another seed, another log
    tx2, _ = simulate_regime(name, N, seed=7)
    pd.testing.assert_frame_equal(tx, tx2)
    tx3, _ = simulate_regime(name, N, seed=8)
    assert not tx3["amount"].head(100).equals(tx["amount"].head(100))


def test_unknown_regime_is_an_error():
    with pytest.raises(ValueError, match="unknown regime"):
        simulate_regime("steady", 100)


def test_baseline_draws_follow_the_textbook_parameters(regime):
    tx, truth = regime("baseline")
    assert truth["lam"].mean() == pytest.approx(0.75 / 35.0, rel=0.05)
    assert truth["p"].mean() == pytest.approx(0.8 / 3.3, rel=0.05)
    assert truth["mean_spend"].mean() == pytest.approx(6 * 15 / 3, rel=0.05)


def test_no_dropout_regime_never_loses_anyone(regime):
    tx, truth = regime("no_dropout")
    assert (truth["p"] == 0).all() and truth["dropout_time"].isna().all() and truth["alive_at_end"].all()
    # repeat purchases are Poisson(lam x time since the first purchase): totals match the truth
    exposure = (pd.Timestamp(truth.attrs["end"]) - truth["first_purchase"]) / pd.Timedelta(days=1)
    expected = (truth["lam"] * exposure).sum()
    assert _repeats(tx, truth).sum() == pytest.approx(expected, rel=0.03)


def test_frequent_regime_buys_weekly_to_daily(regime):
    tx, truth = regime("frequent")
    assert truth["lam"].between(1 / 7, 1.0).all()
    # observed repeat purchases per active day match the true rates (optional stopping: E N(tau) = lam E tau)
    active = (_active_end(truth) - truth["first_purchase"]) / pd.Timedelta(days=1)
    assert _repeats(tx, truth).sum() / (truth["lam"] * active).sum() == pytest.approx(1.0, abs=0.03)
    gaps = _purchases(tx).groupby("customer_id")["timestamp"].diff().dropna() / pd.Timedelta(days=1)
    assert 1.0 <= gaps.median() <= 7.0
    assert _repeats(tx, truth).median() >= 10


def _monthly_rate_ratio(tx: pd.DataFrame, truth: pd.DataFrame) -> float:
    """Repeat purchases per unit of true rate x exposure in the peak months over the other months."""
    start, end = pd.Timestamp(truth.attrs["start"]), pd.Timestamp(truth.attrs["end"])
    edges = pd.date_range(start, end, freq="MS")
    edges = edges.union([start, end])
    b = truth["first_purchase"].to_numpy()
    e = _active_end(truth).to_numpy()
    lam = truth["lam"].to_numpy()
    pur = _purchases(tx)
    first = pur.groupby("customer_id")["timestamp"].transform("min")
    rep = pur.loc[pur["timestamp"] > first, "timestamp"]
    peak_n = other_n = peak_x = other_x = 0.0
    for lo, hi in zip(edges[:-1], edges[1:]):
        overlap = (np.minimum(e, hi.to_datetime64()) - np.maximum(b, lo.to_datetime64())) / np.timedelta64(1, "D")
        exposure = float((lam * np.clip(overlap, 0, None)).sum())
        count = float(((rep >= lo) & (rep < hi)).sum())
        if SEASON_MULTIPLIER[lo.month] > 1:
            peak_n, peak_x = peak_n + count, peak_x + exposure
        else:
            other_n, other_x = other_n + count, other_x + exposure
    return (peak_n / peak_x) / (other_n / other_x)


def test_seasonal_regime_peaks_in_november_december(regime):
    tx, truth = regime("seasonal")
    assert truth.attrs["season"][12] == 4.0 and truth.attrs["season"][6] == 1.0
    # purchase rate x4 in the peak months, measured against each customer's true rate and active time
    assert _monthly_rate_ratio(tx, truth) == pytest.approx(4.0, rel=0.08)
    # acquisitions too: first purchases per day in Nov-Dec vs the rest
    fp = truth["first_purchase"]
    days = pd.date_range(truth.attrs["start"], truth.attrs["end"], freq="D", inclusive="left")
    peak_days = days.month.isin([11, 12]).sum()
    peak = fp.dt.month.isin([11, 12])
    assert (peak.sum() / peak_days) / ((~peak).sum() / (len(days) - peak_days)) == pytest.approx(4.0, rel=0.08)


def test_non_seasonal_regime_has_no_peak(regime):
    tx, truth = regime("baseline")
    assert _monthly_rate_ratio(tx, truth) == pytest.approx(1.0, abs=0.08)


def test_one_timers_regime_mostly_never_returns(regime):
    tx, truth = regime("one_timers")
    assert 0.70 <= truth["one_timer"].mean() <= 0.85
    n = _purchases(tx).groupby("customer_id").size().reindex(truth.index)
    ot = truth["one_timer"]
    assert (n[ot] == 1).all()
    assert (truth.loc[ot, "dropout_time"] == truth.loc[ot, "first_purchase"]).all()
    assert not truth.loc[ot, "alive_at_end"].any()
    # observed one-time buyers: the true one-timers plus repeaters who had no repeat yet
    assert 0.70 <= (n == 1).mean() <= 0.90


def _linked_negatives(tx: pd.DataFrame) -> pd.DataFrame:
    pos = tx.loc[tx["amount"] > 0].set_index("order_id")
    neg = tx.loc[tx["amount"] < 0].copy()
    neg["kind"] = neg["order_id"].str[0]
    neg["ref"] = neg["order_id"].str[1:]
    assert neg["ref"].isin(pos.index).all(), "every return/cancellation refers to an order in the log"
    orig = pos.loc[neg["ref"]]
    neg["orig_customer"] = orig["customer_id"].to_numpy()
    neg["delay"] = (neg["timestamp"].to_numpy() - orig["timestamp"].to_numpy()) / pd.Timedelta(minutes=1)
    neg["orig_amount"] = orig["amount"].to_numpy()
    return neg


@pytest.mark.parametrize("name", ["heavy_returns", "mixed_retail"])
def test_return_regimes_return_a_fifth_to_a_third_of_orders(regime, name):
    tx, truth = regime(name)
    assert tx["order_id"].is_unique
    neg = _linked_negatives(tx)
    assert (neg["orig_customer"] == neg["customer_id"]).all()
    assert (neg["delay"] > 0).all()
    assert (-neg["amount"] <= neg["orig_amount"] + 1e-9).all()
    ret, can = neg[neg["kind"] == "R"], neg[neg["kind"] == "C"]
    assert ret["delay"].between(24 * 60, 14 * 24 * 60).all()  # returns: 1-14 days later
    assert can["delay"].between(1, 30).all()  # cancellations: 1-30 minutes later
    assert np.allclose(-can["amount"], can["orig_amount"])  # cancellations are full
    assert (-ret["amount"] < ret["orig_amount"] - 0.005).any() and np.isclose(-ret["amount"], ret["orig_amount"]).any()
    # share of purchase orders followed by a return or cancellation, in the log and in the truth
    n_orders = (tx["amount"] > 0).sum()
    assert 0.20 <= len(neg) / n_orders <= 0.30
    assert (truth["n_returns"] + truth["n_cancellations"]).sum() == len(neg)
    assert (truth["n_returns"].sum() / truth["n_purchases"].sum()) == pytest.approx(RETURN_SHARE, abs=0.02)
    assert (truth["n_cancellations"].sum() / truth["n_purchases"].sum()) == pytest.approx(CANCEL_SHARE, abs=0.01)
    # one huge order, >= 1000x the median order, cancelled in full 12 minutes later
    assert HUGE_ORDER_AMOUNT >= 1000 * tx.loc[tx["amount"] > 0, "amount"].median()
    big = neg.loc[neg["orig_amount"] == HUGE_ORDER_AMOUNT]
    assert len(big) == 1 and big["kind"].iloc[0] == "C"
    assert big["delay"].iloc[0] == pytest.approx(12, abs=0.05)


@pytest.mark.parametrize("name", ["wholesale", "mixed_retail"])
def test_wholesale_regimes_mix_in_a_few_huge_buyers(regime, name):
    tx, truth = regime(name)
    ws = truth["kind"] == "wholesale"
    assert 0.002 <= ws.mean() <= 0.015
    aov = _purchases(tx).groupby("customer_id")["amount"].mean()
    ratio = aov[ws[ws].index].median() / aov[truth.index[~ws]].median()
    assert 100 <= ratio <= 1000
    # buy weekly to monthly
    w = truth.loc[ws & (truth["lam"] > 0), "lam"]
    assert w.between(1 / 30, 1 / 7).all()


def test_mixed_retail_has_every_departure(regime):
    tx, truth = regime("mixed_retail")
    assert 0.55 <= truth["one_timer"].mean() <= 0.75
    assert _monthly_rate_ratio(tx, truth) == pytest.approx(4.0, rel=0.15)
    assert (tx["amount"] < 0).mean() > 0.1


def test_regimes_simulate_every_customer():
    """Every simulated customer appears in the log (the speed of simulating 100,000 is measured
    in benchmarks/, not asserted here)."""
    tx, truth = simulate_regime("mixed_retail", 20_000, seed=1)
    assert tx["customer_id"].nunique() == 20_000 == len(truth)


# --------------------------------------------------------------------------- corpus


def test_corpus_names_and_truncation():
    assert {"cdnow_9m", "cdnow_12m", "apparel_12m", "grocery_12m", "sim_mixed_retail_12m"} <= set(CORPUS)
    assert all(f"sim_{r}" in CORPUS and f"sim_{r}_9m" in CORPUS for r in REGIMES)
    logs = corpus(["cdnow_9m", "cdnow_12m", "sim_heavy_returns_9m"], n_customers=2000)
    for name, (df, description) in logs.items():
        assert {"customer_id", "timestamp", "amount"} <= set(df.columns) and description
        months = 9 if name.endswith("_9m") else 12
        assert df["timestamp"].max() < df["timestamp"].min() + pd.DateOffset(months=months)
        assert df["timestamp"].max() >= df["timestamp"].min() + pd.DateOffset(months=months) - pd.Timedelta(days=31)
    assert logs["cdnow_9m"][0]["customer_id"].nunique() == 23_570  # the whole cohort arrives in Q1 1997
    assert "order_id" in logs["sim_heavy_returns_9m"][0].columns


def test_corpus_skips_shared_logs_without_the_folder(tmp_path):
    logs = corpus(["apparel_12m", "sim_baseline_12m"], shared_dir=tmp_path / "nowhere", n_customers=500)
    assert list(logs) == ["sim_baseline_12m"]
    assert "absent" in logs.skipped["apparel_12m"]


def test_corpus_shared_logs(shared_data):
    df, description = corpus_log("grocery_12m", shared_data)
    assert (df["amount"] == 1.0).all() and "amount 1.0" in description
    df, _ = corpus_log("apparel_9m", shared_data)
    assert df["customer_id"].nunique() == 600 and (df["amount"] >= 0).all()
