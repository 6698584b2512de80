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


# --------------------------------------------------------------------------- id kinds and code paths
# Every case below is checked against lifetimes (the contract), never against rfm_summary itself.

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from churnml.features import _arrow_strings, _encode, _encode_fixed_width, _encode_sorted_strings  # noqa: E402


def _assert_equals_lifetimes(log, freq="D", observation_end=None, mult=1):
    expected = summary_data_from_transaction_data(
        log, "customer_id", "timestamp", "amount", observation_period_end=observation_end, freq=freq, freq_multiplier=mult
    ).sort_index()
    got = rfm_summary(log, amount="amount", observation_end=observation_end, freq=freq, freq_multiplier=mult)
    assert list(got.index) == list(expected.index)
    for col in ["frequency", "recency", "T"]:
        np.testing.assert_array_equal(got[col].to_numpy(), expected[col].to_numpy(), err_msg=col)
    np.testing.assert_allclose(got["monetary_value"], expected["monetary_value"], rtol=1e-9, atol=1e-9)


_VARYING_IDS = [
    "cust-7", "cust-123456", "cust-10", "cust-1", "zoë.4711@shop.test", "anna.12@example.com",
    "顧客-12", "клиент-3", "0f3c9a1e-2b7d-4c1e-9a3b-5d6e7f8a9b0c", "a", "a\x00", "A", "", "ü", "u",
]


def _log_with_ids(ids, n_rows=2000, seed=0):
    rng = np.random.default_rng(seed)
    who = rng.integers(0, len(ids), n_rows)
    hours = rng.integers(0, 400 * 24, n_rows)
    hours[::7] = hours[1::7][: len(hours[::7])]  # ties: some rows share the hour of a neighbour
    ts = np.datetime64("2022-03-01T00") + hours.astype("timedelta64[h]")
    amount = np.round(rng.gamma(2.0, 20.0, n_rows), 2)
    return pd.DataFrame({"customer_id": np.array(ids, dtype=object)[who], "timestamp": ts.astype("datetime64[ns]"), "amount": amount})


@pytest.mark.parametrize("order", ["as_drawn", "sorted_by_customer"])
@pytest.mark.parametrize("freq", ["D", "W"])
def test_varying_width_and_non_ascii_ids_equal_lifetimes(order, freq):
    log = _log_with_ids(_VARYING_IDS)
    if order == "sorted_by_customer":  # churnml.io's layout: the sorted-run encoder applies
        log = log.sort_values(["customer_id", "timestamp"], kind="stable").reset_index(drop=True)
        assert _encode_sorted_strings(_arrow_strings(log["customer_id"]), log["customer_id"]) is not None
    else:
        assert _encode_sorted_strings(_arrow_strings(log["customer_id"]), log["customer_id"]) is None
    _assert_equals_lifetimes(log, freq=freq, observation_end=pd.Timestamp("2022-11-30 12:00"))


def test_fixed_width_ids_with_letters_and_digits_equal_lifetimes():
    # every position varies over a few letters/digits: the mixed-radix fixed-width encoder applies
    ids = [a + b + c for a in "AB" for b in "xyz" for c in "0123456789"]
    log = _log_with_ids(ids, seed=4)
    assert _encode_fixed_width(_arrow_strings(log["customer_id"])) is not None
    _assert_equals_lifetimes(log)


@pytest.mark.parametrize("unit", ["s", "ms", "us", "ns"])
def test_timestamp_units_and_dates_before_1970(unit):
    log = _log_with_ids([f"c{i}" for i in range(40)], n_rows=600, seed=5)
    log["timestamp"] = (log["timestamp"] - pd.Timedelta(days=365 * 53)).astype(f"datetime64[{unit}]")  # 1969..1970
    assert log["timestamp"].min() < pd.Timestamp("1970-01-01") < log["timestamp"].max()
    for freq in ["D", "W", "h"]:
        _assert_equals_lifetimes(log, freq=freq)


def test_wide_keys_use_64_bits_and_still_equal_lifetimes():
    # 1,000 customers (10 bits) x seconds over 2 years (26 bits) do not fit a 32-bit key
    rng = np.random.default_rng(6)
    n = 3000
    secs = rng.integers(0, 2 * 365 * 86_400, n)
    secs[::5] = secs[1::5][: len(secs[::5])]  # same-second ties
    log = pd.DataFrame(
        {
            "customer_id": rng.integers(0, 1000, n),
            "timestamp": np.datetime64("2021-01-01T00:00:00") + secs.astype("timedelta64[s]"),
            "amount": np.round(rng.gamma(2.0, 10.0, n), 2),
        }
    )
    _assert_equals_lifetimes(log, freq="s")
    _assert_equals_lifetimes(log, freq="s", mult=3600)


@pytest.mark.parametrize(
    "ids",
    [
        ["C0001234", "C0000001", "C0999999", "C0001234"],  # fixed width, digits
        ["cust-7", "cust-123456", "cust-7", "zoë@x.de", "顧客-1", "a\x00", "a"],  # varying width, unsorted
        ["a", "a", "a\x00", "b", "cust-1", "cust-10", "cust-2", "ü"],  # sorted (byte order)
    ],
)
def test_encode_codes_map_back_to_the_ids_and_labels_are_sorted(ids):
    s = pd.Series(ids, dtype="str")
    codes, labels = _encode(s)
    labels = list(labels)
    assert labels == sorted(set(ids))  # Python's str order (code points), as lifetimes' index
    assert [labels[c] for c in codes] == ids


_id_text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=10)


@st.composite
def _logs(draw):
    kind = draw(st.sampled_from(["text", "digits3", "sparse_int", "dense_int"]))
    n_ids = draw(st.integers(1, 8))
    if kind == "text":
        ids = draw(st.lists(_id_text, min_size=n_ids, max_size=n_ids, unique=True))
    elif kind == "digits3":
        ids = [f"{i:03d}" for i in draw(st.lists(st.integers(0, 999), min_size=n_ids, max_size=n_ids, unique=True))]
    else:
        top = 2**40 if kind == "sparse_int" else 30
        ids = draw(st.lists(st.integers(-top, top), min_size=n_ids, max_size=n_ids, unique=True))
    rows = draw(st.lists(st.tuples(st.integers(0, n_ids - 1), st.integers(-40 * 24, 40 * 24), st.integers(-500, 50_000)), min_size=1, max_size=40))
    log = pd.DataFrame(
        {
            "customer_id": [ids[i] for i, _, _ in rows],
            "timestamp": [pd.Timestamp("1970-01-01") + pd.Timedelta(hours=h) for _, h, _ in rows],
            "amount": [a / 100 for _, _, a in rows],
        }
    )
    if draw(st.booleans()):
        log = log.sort_values(["customer_id", "timestamp"], kind="stable").reset_index(drop=True)
    return log


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(log=_logs(), freq=st.sampled_from(["D", "W", "h"]))
def test_random_logs_equal_lifetimes(log, freq):
    _assert_equals_lifetimes(log, freq=freq)
