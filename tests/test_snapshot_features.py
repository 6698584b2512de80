from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from churnml.config import FeaturesConfig
from churnml.errors import DataError
from churnml.features import snapshot_features

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
    assert a.monetary_value == pytest.approx((80 + 20) / 2)
    assert a.total_spend == 200 and a.net_spend == 185
    assert a.avg_order_value == 50
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


def _frame(rows, base):
    df = pd.DataFrame(rows, columns=["customer_id", "hours", "amount", "is_return"])
    df["timestamp"] = base + pd.to_timedelta(df.pop("hours"), unit="h")
    return df


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    past=st.lists(
        st.tuples(_customers, _offsets, st.floats(-50, 500, allow_nan=False), st.booleans()), min_size=1, max_size=40
    ),
    future=st.lists(
        st.tuples(st.sampled_from(["a", "b", "c", "d", "e", "new"]), _offsets, st.floats(-50, 500, allow_nan=False), st.booleans()),
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
    past_df.loc[len(past_df)] = ["a", 10.0, False, cutoff - pd.Timedelta(days=3)]
    future_df = _frame(future, cutoff)  # timestamps >= cutoff
    ev_past = pd.DataFrame(
        {"customer_id": ["a", "b"], "timestamp": [cutoff - pd.Timedelta(days=5)] * 2, "type": ["nps", "complaint"], "value": [7.0, np.nan]}
    )
    ev_future = pd.DataFrame(future_events, columns=["customer_id", "hours", "type", "value"])
    ev_future["timestamp"] = cutoff + pd.to_timedelta(ev_future.pop("hours"), unit="h")
    before = snapshot_features(past_df, cutoff, events=ev_past)
    after = snapshot_features(
        pd.concat([future_df, past_df], ignore_index=True),  # order must not matter either
        cutoff,
        events=pd.concat([ev_future, ev_past], ignore_index=True),
    )
    pd.testing.assert_frame_equal(before, after)
