"""The compiled summary for string ids (``churnml._strids``, used by ``rfm_summary`` on large
raw logs) must equal lifetimes' ``summary_data_from_transaction_data`` row by row, whatever
the Arrow layout, row order, number of threads or buckets. ``MIN_ROWS`` is set to 0 here so
that small logs take the compiled path; each test checks that it did."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from churnml import _strids
from churnml.features import rfm_summary
from tests.test_rfm_summary import _VARYING_IDS, _assert_equals_lifetimes, _log_with_ids, _logs


@pytest.fixture
def compiled(monkeypatch):
    """Route every string-id log through the compiled summary and count the calls."""
    calls = []
    real = _strids.summarise

    def spy(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(_strids, "MIN_ROWS", 0)
    monkeypatch.setattr(_strids, "summarise", spy)
    return calls


def _arrow_path(log, **kwargs):
    """rfm_summary through Arrow's hash table (the path used below MIN_ROWS)."""
    old = _strids.MIN_ROWS
    _strids.MIN_ROWS = 10**15
    try:
        return rfm_summary(log, amount="amount", **kwargs)
    finally:
        _strids.MIN_ROWS = old


@pytest.mark.parametrize("freq", ["D", "W", "h"])
@pytest.mark.parametrize("order", ["time", "shuffled"])
def test_varying_width_ids_equal_lifetimes(compiled, freq, order):
    log = _log_with_ids(_VARYING_IDS, n_rows=3000, seed=1)
    if order == "time":
        log = log.sort_values("timestamp", kind="stable").reset_index(drop=True)
    else:  # a customer's rows go back in time: the distinct-period set, not the run count
        log = log.sample(frac=1.0, random_state=2).reset_index(drop=True)
    log["customer_id"] = log["customer_id"].astype("str")
    _assert_equals_lifetimes(log, freq=freq, observation_end=pd.Timestamp("2022-11-30 12:00"))
    assert compiled


def test_cdnow_with_text_ids_equals_lifetimes(compiled, cdnow_master):
    from lifetimes.utils import summary_data_from_transaction_data

    log = cdnow_master.copy()
    ids = log["customer_id"].astype(int)
    # unpadded numbers (lexical order != numeric), e-mail-like and non-ASCII ids
    text = np.where(ids % 3 == 0, "cust-" + ids.astype(str), np.where(ids % 3 == 1, "zoë." + ids.astype(str) + "@shop.test", "顧客-" + ids.astype(str)))
    log["customer_id"] = pd.array(text, dtype="str")
    for freq, mult in [("D", 1), ("D", 7), ("W", 1)]:
        expected = summary_data_from_transaction_data(log, "customer_id", "date", "dollar_value", freq=freq, freq_multiplier=mult).sort_index()
        got = rfm_summary(log, timestamp="date", amount="dollar_value", freq=freq, freq_multiplier=mult)
        assert len(got) == 23_570
        assert list(got.index) == list(expected.index)
        for col in ["frequency", "recency", "T"]:
            np.testing.assert_array_equal(got[col].to_numpy(), expected[col].to_numpy(), err_msg=col)
        np.testing.assert_allclose(got["monetary_value"], expected["monetary_value"], rtol=1e-10, atol=1e-9)
    assert len(compiled) == 3


def _many_customers_log(n_customers=5000, n_rows=40_000, seed=3):
    rng = np.random.default_rng(seed)
    names = np.array([f"user{i}@mail.example" if i % 2 else f"c-{i}" for i in range(n_customers)], dtype=object)
    who = rng.integers(0, n_customers, n_rows)
    days = np.sort(rng.integers(0, 700, n_rows))
    return pd.DataFrame(
        {
            "customer_id": pd.array(names[who], dtype="str"),
            "timestamp": np.datetime64("2021-01-01") + days.astype("timedelta64[D]"),
            "amount": np.round(rng.gamma(2.0, 15.0, n_rows), 2),
        }
    )


def test_threads_buckets_and_table_growth_do_not_change_the_result(compiled, monkeypatch):
    log = _many_customers_log()
    reference = _arrow_path(log)
    for bits, threads in [(1, 1), (1, 4), (6, 2), (0, 3)]:
        # 1 bit: 2 buckets of ~2,500 customers, so each bucket's table grows from 1,024 slots
        monkeypatch.setattr(_strids, "BUCKET_BITS", bits)
        monkeypatch.setattr(_strids, "MAX_THREADS", threads)
        got = rfm_summary(log, amount="amount")
        pd.testing.assert_frame_equal(got, reference, check_exact=True)
    assert len(compiled) == 4
    _assert_equals_lifetimes(log)


def _chunked(log, pieces=5, slice_chunks=True, large=True):
    """The id column as a pyarrow-backed string column of several chunks; with
    ``slice_chunks`` each chunk is a slice of a bigger array (non-zero offset)."""
    typ = pa.large_string() if large else pa.string()
    values = list(log["customer_id"].astype(object))
    bounds = np.linspace(0, len(values), pieces + 1).astype(int)
    chunks = []
    for lo, hi in zip(bounds, bounds[1:]):
        if slice_chunks:
            padded = pa.array(["pad-before"] * 3 + values[lo:hi] + ["pad-after"], type=typ)
            chunks.append(padded.slice(3, hi - lo))
        else:
            chunks.append(pa.array(values[lo:hi], type=typ))
    return pa.chunked_array(chunks, type=typ)


@pytest.mark.parametrize("layout", ["large_string_sliced_chunks", "string_int32_offsets", "object", "unaligned_buffer"])
def test_arrow_layouts_equal_the_arrow_path_and_lifetimes(compiled, layout):
    log = _log_with_ids(_VARYING_IDS + [f"customer-with-a-long-id-{i}" for i in range(40)], n_rows=2800, seed=7)
    if layout == "object":
        log["customer_id"] = log["customer_id"].astype(object)
        assert log["customer_id"].dtype == object
    if layout == "large_string_sliced_chunks":
        log["customer_id"] = pd.Series(pd.arrays.ArrowStringArray(_chunked(log)), index=log.index)
    elif layout == "string_int32_offsets":
        log["customer_id"] = pd.Series(_chunked(log, large=False, slice_chunks=True).to_pandas(types_mapper=pd.ArrowDtype), index=log.index)
    elif layout == "unaligned_buffer":
        arr = pa.array(list(log["customer_id"]), type=pa.large_string())
        _, offsets, data = arr.buffers()
        raw = np.frombuffer(b"\x00" + data.to_pybytes(), np.uint8)[1:]  # starts 1 byte past alignment
        assert raw.ctypes.data % 8
        moved = pa.LargeStringArray.from_buffers(len(arr), offsets, pa.py_buffer(raw))
        log["customer_id"] = pd.Series(pd.arrays.ArrowStringArray(moved), index=log.index)
    got = rfm_summary(log, amount="amount")
    assert len(compiled) == 1
    reference = _arrow_path(log)  # same input through Arrow's hash table: same labels, same dtype
    pd.testing.assert_frame_equal(got, reference, check_exact=True)
    _assert_equals_lifetimes(log)


def test_periods_that_do_not_fit_32_bits_fall_back_to_arrow(compiled):
    log = _log_with_ids(_VARYING_IDS, n_rows=500, seed=8)
    log.loc[::50, "timestamp"] = pd.Timestamp("1901-06-01")  # seconds since then: more than 2**31
    assert not _strids.supports(len(log), (log["timestamp"].astype("int64") // 10**9).to_numpy(), 2 * 10**9)
    _assert_equals_lifetimes(log, freq="s")
    assert not compiled  # fell back before hashing


_TRICKY = [
    "", "\x00", "a", "a\x00", "a\x00\x00", "ab", "b", "ü", "u", "顧客", "顧", "zz", "z",
    "x" * 7, "x" * 8, "x" * 9, "x" * 8 + "\x00", "x" * 16, "x" * 17 + "a", "x" * 17,
    *[f"same-long-prefix-{i}" for i in [1, 10, 2, 100, 20, 3]],
    *[f"customer-{i:012d}" for i in range(60, 0, -1)],  # a run of >24 equal 8-byte prefixes
]


@pytest.mark.parametrize("n_threads", [1, 2])
def test_argsort_strings_is_code_point_order(monkeypatch, n_threads):
    monkeypatch.setattr(_strids, "PARALLEL_SORT_MIN", 0)
    rng = np.random.default_rng(9)
    words = list(rng.permutation(np.array(_TRICKY, dtype=object)))
    arr = pa.array(words, type=pa.large_string())
    _, ob, db = arr.buffers()
    order = _strids.argsort_strings(np.frombuffer(ob, np.int64), np.frombuffer(db, np.uint8), n_threads)
    assert [words[i] for i in order] == sorted(words)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(log=_logs(), freq=st.sampled_from(["D", "W", "h"]), cut=st.booleans())
def test_random_text_logs_equal_lifetimes(compiled, log, freq, cut):
    if not pd.api.types.is_string_dtype(log["customer_id"]) or pd.api.types.is_integer_dtype(log["customer_id"]):
        return  # integer ids never take the compiled path
    log["customer_id"] = log["customer_id"].astype("str")
    end = log["timestamp"].sort_values().iloc[len(log) // 2] if cut else None
    _assert_equals_lifetimes(log, freq=freq, observation_end=end)


def test_without_numba_rfm_summary_uses_arrow(compiled, monkeypatch):
    monkeypatch.setattr(_strids, "_AVAILABLE", False)  # as if numba failed to import
    log = _log_with_ids(_VARYING_IDS, n_rows=700, seed=10)
    _assert_equals_lifetimes(log)
    assert not compiled
