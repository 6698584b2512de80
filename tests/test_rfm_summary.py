"""rfm_summary must equal lifetimes' summary_data_from_transaction_data row by row."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from lifetimes.utils import summary_data_from_transaction_data

from churnml.features import rfm_summary
from tests.conftest import random_log


@pytest.mark.parametrize(("freq", "mult"), [("D", 1), ("W", 1), ("D", 7)])
def test_equals_lifetimes_on_cdnow_master(cdnow_master, freq, mult):
    expected = summary_data_from_transaction_data(
        cdnow_master, "customer_id", "date", "dollar_value", freq=freq, freq_multiplier=mult
    )
    got = rfm_summary(
        cdnow_master, customer_id="customer_id", timestamp="date", amount="dollar_value", freq=freq, freq_multiplier=mult
    )
    assert len(got) == len(expected) == 23_570
    expected = expected.sort_index()
    assert list(got.index) == list(expected.index)
    for col in ["frequency", "recency", "T"]:
        np.testing.assert_array_equal(got[col].to_numpy(), expected[col].to_numpy(), err_msg=col)
    np.testing.assert_allclose(got["monetary_value"], expected["monetary_value"], rtol=1e-10, atol=1e-9)


@pytest.mark.parametrize("freq", ["D", "W", "h"])
@pytest.mark.parametrize("id_kind", ["str", "dense_int", "sparse_int", "category"])
def test_equals_lifetimes_on_hourly_log_with_observation_end(freq, id_kind):
    log = random_log(seed=3)
    codes = log["customer_id"].str[1:].astype(int)
    if id_kind == "dense_int":
        log["customer_id"] = codes
    elif id_kind == "sparse_int":
        log["customer_id"] = codes * 1_000_003 + 17
    elif id_kind == "category":
        # categories in another order than sorted, and one category that never occurs
        cats = sorted(log["customer_id"].unique(), reverse=True) + ["zz-unused"]
        log["customer_id"] = pd.Categorical(log["customer_id"], categories=cats)
    end = pd.Timestamp("2022-06-15 13:00")
    expected = summary_data_from_transaction_data(
        log, "customer_id", "timestamp", "amount", observation_period_end=end, freq=freq
    ).sort_index()
    got = rfm_summary(log, amount="amount", observation_end=end, freq=freq)
    assert list(got.index) == list(expected.index)
    if id_kind == "category":  # lifetimes keeps a CategoricalIndex; ours holds the same labels in the same order
        expected.index = pd.Index(expected.index.astype(str), name=expected.index.name)
    pd.testing.assert_frame_equal(got, expected, check_exact=False, rtol=1e-10, check_names=False, check_index_type=False)


def test_without_amount_has_no_monetary_column():
    log = random_log(seed=1)
    got = rfm_summary(log)
    assert list(got.columns) == ["frequency", "recency", "T"]


def test_hand_computed_example():
    tx = pd.DataFrame(
        {
            "customer_id": ["a", "a", "a", "a", "b", "c"],
            "timestamp": pd.to_datetime(
                ["2024-01-01 09:00", "2024-01-01 18:00", "2024-01-05 00:00", "2024-01-11 00:00", "2024-01-03 00:00", "2024-01-20 00:00"]
            ),
            "amount": [10.0, 5.0, 20.0, 40.0, 7.0, 1.0],
        }
    )
    got = rfm_summary(tx, amount="amount", observation_end="2024-01-11")
    # a: days 1, 5, 11 -> 2 repeats, recency 10, T 10, repeat spend (20 + 40) / 2
    assert got.loc["a"].tolist() == [2.0, 10.0, 10.0, 30.0]
    assert got.loc["b"].tolist() == [0.0, 0.0, 8.0, 0.0]
    assert "c" not in got.index  # after observation_end
