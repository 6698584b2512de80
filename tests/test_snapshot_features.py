from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from churnml.config import ColumnsConfig, FeaturesConfig
from churnml.errors import DataError
from churnml.features import snapshot_features
from churnml.io import prepare_transactions

CUTOFF = pd.Timestamp("2024-07-01")


def _tx():
    rows = [
        ("a", "2024-01-01 10:00", 100.0, False),
        ("a", "2024-03-01 10:00", 50.0, False),
        ("a", "2024-03-01 15:00", 30.0, False),  # second order the same day
        ("a", "2024-06-01 00:00", 20.0, False),
        ("a", "2024-06-10 00:00", -15.0, True),  # a return
        ("b", "2024-06-30 12:00", 40.0, False),
        ("c", "2024-08-01 00:00", 99.0, False),  # after the cutoff
        ("d", "2024-05-01 00:00", -5.0, True),  # only a return: not in scope
    ]
    df = pd.DataFrame(rows, columns=["customer_id", "timestamp", "amount", "is_return"])
    df["timestamp"] = pd.to_datetime(df["timestamp"])
    return df


def _events():
    rows = [
        ("a", "2024-06-20", "complaint", np.nan),
        ("a", "2024-03-01", "complaint", np.nan),
        ("a", "2024-05-01", "nps", 9.0),
        ("a", "2024-06-25", "nps", 3.0),
        ("a", "2024-07-05", "nps", 10.0),  # after the cutoff
        ("b", "2024-06-01", "support_ticket", np.nan),
        ("zz", "2024-06-01", "complaint", np.nan),  # unknown customer
    ]
    df = pd.DataFrame(rows, columns=["customer_id", "timestamp", "type", "value"])
    df["timestamp"] = pd.to_datetime(df["timestamp"])
    return df


def test_hand_computed_values():
    f = snapshot_features(_tx(), CUTOFF, events=_events())
    assert f.index.tolist() == ["a", "b"]
    a, b = f.loc["a"], f.loc["b"]
    assert a.recency_days == 30.0  # 2024-06-01 -> 2024-07-01
    assert a.tenure_days == pytest.approx(182 - 10 / 24)
    assert a.n_purchases == 4
    assert (a.frequency, a.recency, a["T"]) == (2, 152, 182)  # distinct days: Jan 1, Mar 1, Jun 1
    # repeat days Mar 1 (80) and Jun 1 (20), scaled by the net share 185 / 200 (the return of 15
    # is allocated proportionally over the purchases)
    assert a.monetary_value == pytest.approx((80 + 20) / 2 * 185 / 200)
    assert a.total_spend == 200 and a.net_spend == 185  # total_spend is gross
    assert a.avg_order_value == pytest.approx(185 / 4)
    assert a.n_purchases_30d == 1 and a.spend_30d == 5.0  # Jun 1 (20) and the return (-15)
    assert a.n_purchases_90d == 1 and a.n_purchases_180d == 3 and a.n_purchases_365d == 4 and a.spend_365d == 185
    assert a.ipt_mean_days == pytest.approx(76.0)  # gaps 60 and 92 days
    assert a.ipt_std_days == pytest.approx(np.std([60, 92], ddof=1))
    assert a.recency_ratio == pytest.approx(30 / 76)
    # last 90 days [Apr 2, Jul 1): 1 purchase, 5 spent; 90 before: 2 purchases, 80 spent
    assert a.purchase_trend == pytest.approx((1 - 2) / 3)
    assert a.spend_trend == pytest.approx((5 - 80) / 85)
    assert a.n_returns == 1 and a.return_amount == 15
    assert a.days_since_last_complaint == 11 and a.n_complaint_90d == 1 and a.n_complaint_total == 2
    assert a.last_nps == 3.0 and a.days_since_last_nps == 6
    assert np.isnan(a.days_since_last_support_ticket) and a.n_support_ticket_total == 0
    assert b.recency_days == 0.5 and b.frequency == 0 and np.isnan(b.ipt_mean_days)
    assert b.monetary_value == 0 and b.purchase_trend == 1.0
    assert b.days_since_last_support_ticket == 30 and np.isnan(b.last_nps)


def test_customer_attributes_are_joined():
    attrs = pd.DataFrame({"gender": [1, 0]}, index=pd.Index(["a", "b"], name="customer_id"))
    f = snapshot_features(_tx(), CUTOFF, customers=attrs)
    assert f["gender"].tolist() == [1, 0]


def test_windows_follow_config():
    f = snapshot_features(_tx(), CUTOFF, config=FeaturesConfig(windows_days=[7, 400]))
    assert {"n_purchases_7d", "spend_400d"} <= set(f.columns) and "spend_90d" not in f.columns


def test_nothing_before_cutoff_is_an_error():
    with pytest.raises(DataError, match="before the cutoff"):
        snapshot_features(_tx(), "2023-01-01")


# ---------------------------------------------------------------- no leakage (property test)

_customers = st.sampled_from(["a", "b", "c", "d", "e"])
_offsets = st.integers(min_value=0, max_value=400 * 24)  # hours
_cancel_after = st.one_of(st.none(), st.integers(min_value=0, max_value=800 * 24))  # hours after the row, or never


def _frame(rows, base):
    df = pd.DataFrame(rows, columns=["customer_id", "hours", "amount", "is_return", "cancel_hours"])
    df["timestamp"] = base + pd.to_timedelta(df.pop("hours"), unit="h")
    df["cancelled_at"] = df["timestamp"] + pd.to_timedelta(df.pop("cancel_hours").astype(float), unit="h")
    return df


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    past=st.lists(
        st.tuples(_customers, _offsets, st.floats(-50, 500, allow_nan=False), st.booleans(), _cancel_after),
        min_size=1,
        max_size=40,
    ),
    future=st.lists(
        st.tuples(
            st.sampled_from(["a", "b", "c", "d", "e", "new"]), _offsets, st.floats(-50, 500, allow_nan=False), st.booleans(),
            _cancel_after,
        ),
        min_size=1,
        max_size=40,
    ),
    future_events=st.lists(
        st.tuples(st.sampled_from(["a", "b", "new"]), _offsets, st.sampled_from(["complaint", "nps", "csat"]), st.floats(0, 10)),
        max_size=10,
    ),
)
def test_appending_data_after_the_cutoff_changes_no_feature(past, future, future_events):
    cutoff = pd.Timestamp("2024-01-01")
    past_df = _frame(past, cutoff - pd.Timedelta(days=401))
    past_df = past_df[past_df["timestamp"] < cutoff]
    # force at least one purchase before the cutoff
    past_df.loc[len(past_df)] = ["a", 10.0, False, cutoff - pd.Timedelta(days=3), pd.NaT]
    future_df = _frame(future, cutoff)  # timestamps >= cutoff
    # what was known at the cutoff: cancellations from the cutoff on had not happened yet
    known = past_df.copy()
    known.loc[known["cancelled_at"] >= cutoff, "cancelled_at"] = pd.NaT
    ev_past = pd.DataFrame(
        {"customer_id": ["a", "b"], "timestamp": [cutoff - pd.Timedelta(days=5)] * 2, "type": ["nps", "complaint"], "value": [7.0, np.nan]}
    )
    ev_future = pd.DataFrame(future_events, columns=["customer_id", "hours", "type", "value"])
    ev_future["timestamp"] = cutoff + pd.to_timedelta(ev_future.pop("hours"), unit="h")
    before = snapshot_features(known, cutoff, events=ev_past)
    after = snapshot_features(
        pd.concat([future_df, past_df], ignore_index=True),  # order must not matter either
        cutoff,
        events=pd.concat([ev_future, ev_past], ignore_index=True),
    )
    pd.testing.assert_frame_equal(before, after)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    past=st.lists(st.tuples(_customers, _offsets, st.sampled_from([5.0, 12.5, 30.0, -5.0, -12.5, -30.0, -4.0])), max_size=40),
    future=st.lists(
        st.tuples(st.sampled_from(["a", "b", "c", "new"]), _offsets, st.sampled_from([5.0, 12.5, -5.0, -12.5, -30.0])),
        min_size=1,
        max_size=30,
    ),
)
def test_appending_raw_lines_after_the_cutoff_changes_no_feature(past, future):
    """End to end through the loader: later returns may cancel earlier purchases (cancelled_at set
    after the cutoff), and the features at the cutoff must not move."""
    cutoff = pd.Timestamp("2024-01-01")
    start = cutoff - pd.Timedelta(days=401)
    past_rows = [(c, start + pd.Timedelta(hours=h), a) for c, h, a in past if start + pd.Timedelta(hours=h) < cutoff]
    past_rows.append(("a", cutoff - pd.Timedelta(days=3), 10.0))  # at least one purchase before the cutoff
    future_rows = [(c, cutoff + pd.Timedelta(hours=h), a) for c, h, a in future]
    cols = ColumnsConfig(customer_id="c", timestamp="t", amount="a")
    known, _ = prepare_transactions(pd.DataFrame(past_rows, columns=["c", "t", "a"]), columns=cols)
    full, _ = prepare_transactions(pd.DataFrame(future_rows + past_rows, columns=["c", "t", "a"]), columns=cols)
    pd.testing.assert_frame_equal(snapshot_features(known, cutoff), snapshot_features(full, cutoff))


# ---------------------------------------------------------------- cancellations and returns

_RETAIL = ColumnsConfig(customer_id="Customer ID", timestamp="InvoiceDate", order_id="Invoice", amount=None,
                        quantity="Quantity", unit_price="Price")


def _retail(rows):
    raw = pd.DataFrame(rows, columns=["Invoice", "Quantity", "InvoiceDate", "Price", "Customer ID"])
    tx, _ = prepare_transactions(raw.astype(str), columns=_RETAIL)
    return tx


def _huge_order_log():
    """Customer 16446 of a real retail log: two small orders (1.65, 1.25), then 80995 x 2.08 =
    168,469.60 at 09:15, cancelled by invoice C581484 at 09:27."""
    return _retail(
        [
            ("553573", 1, "2011-05-18 09:52", 1.65, "16446"),
            ("556000", 1, "2011-06-01 10:00", 1.25, "16446"),
            ("581483", 80995, "2011-12-09 09:15", 2.08, "16446"),
            ("C581484", -80995, "2011-12-09 09:27", 2.08, "16446"),
            ("560000", 3, "2011-07-01 12:00", 10.0, "12000"),
        ]
    )


def test_order_cancelled_before_the_cutoff_never_happened():
    f = snapshot_features(_huge_order_log(), "2011-12-10").loc["16446"]
    assert f.n_purchases == 2 and f.frequency == 1  # May 18 and Jun 1
    assert f.total_spend == pytest.approx(2.90) and f.net_spend == pytest.approx(2.90)
    assert f.avg_order_value == pytest.approx(1.45)
    assert f.monetary_value == pytest.approx(1.25)  # the repeat purchase of Jun 1
    assert f.recency_days == pytest.approx(191 + 14 / 24)  # Jun 1 10:00 -> Dec 10 00:00
    assert f.spend_30d == 0 and f.n_purchases_30d == 0
    assert f.n_returns == 0 and f.return_amount == 0  # the cancellation is no return either
    assert f.spend_per_year == pytest.approx(2.90 / (205 + 14 / 24 + 1 / 1440 * 8) * 365.25)  # tenure from May 18 09:52


@pytest.mark.parametrize("cutoff", ["2011-12-09 09:20", "2011-12-09 09:27"])
def test_order_cancelled_after_the_cutoff_still_counts(cutoff):
    # between the order (09:15) and its cancellation (09:27, not strictly before a 09:27 cutoff)
    f = snapshot_features(_huge_order_log(), cutoff).loc["16446"]
    big = 80995 * 2.08
    assert f.n_purchases == 3 and f.frequency == 2
    assert f.total_spend == pytest.approx(2.90 + big) and f.net_spend == pytest.approx(2.90 + big)
    assert f.avg_order_value == pytest.approx((2.90 + big) / 3)
    assert f.monetary_value == pytest.approx((1.25 + big) / 2)
    assert f.n_purchases_30d == 1 and f.spend_30d == pytest.approx(big)


def test_partial_returns_scale_every_spend_feature():
    tx = _retail(
        [
            ("1", 1, "2024-01-01", 100.0, "q"),
            ("2", 1, "2024-01-10", 60.0, "q"),
            ("3", 1, "2024-01-20", 40.0, "q"),
            ("C2", -1, "2024-01-25", 60.0, "q"),  # returns all of order 2: a cancellation
            ("R3", -1, "2024-01-26", 10.0, "q"),  # a partial return: no 10.00 purchase
            ("4", 1, "2024-01-01", 10.0, "neg"),
            ("5", 1, "2024-01-05", 10.0, "neg"),
            ("R6", -1, "2024-01-06", 30.0, "neg"),  # returns more than bought in the log
        ]
    )
    f = snapshot_features(tx, "2024-02-01")
    q, neg = f.loc["q"], f.loc["neg"]
    assert q.n_purchases == 2 and q.frequency == 1 and q.ipt_mean_days == 19  # Jan 1 and Jan 20
    assert q.total_spend == 140 and q.net_spend == 130
    assert q.avg_order_value == pytest.approx(130 / 2)
    assert q.monetary_value == pytest.approx(40 * 130 / 140)  # repeat spend x net share
    assert q.n_returns == 1 and q.return_amount == 10
    assert neg.net_spend == -10 and neg.total_spend == 20
    assert neg.avg_order_value == 0 and neg.monetary_value == 0  # net share clipped at 0
    # before the cancellation and the partial return nothing is netted yet
    g = snapshot_features(tx, "2024-01-22").loc["q"]
    assert g.n_purchases == 3 and g.total_spend == 200 and g.net_spend == 200
    assert g.monetary_value == pytest.approx((60 + 40) / 2) and g.avg_order_value == pytest.approx(200 / 3)
