"""Real logs from ../shared/data (skipped with a reason where that folder is absent)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import pandas as pd
from lifetimes.utils import summary_data_from_transaction_data

from churnml.config import ColumnsConfig, load_config
from churnml.features import rfm_summary
from churnml.io import load_dataset, read_transactions
from churnml.jobs import customer_snapshot

REPO = Path(__file__).resolve().parents[1]


def test_apparel_loads_with_attributes_and_matches_lifetimes(shared_data):
    cfg = load_config(REPO / "configs" / "apparel.yaml")
    ds = load_dataset(cfg)
    assert ds.report.rows_read == 3187 and ds.report.customers == 600
    assert ds.report.rows_missing_customer == 0
    assert set(ds.customers.columns) == {"Gender", "Channel"}
    snap = customer_snapshot(ds, cfg)
    assert len(snap) == 600 and snap["Gender"].notna().all()
    raw = pd.read_csv(shared_data / "apparel" / "apparelTrans.csv", parse_dates=["Date"])
    raw["Id"] = raw["Id"].astype(str)
    expected = summary_data_from_transaction_data(raw, "Id", "Date", "Price", freq="W").sort_index()
    got = rfm_summary(ds.transactions, amount="amount", freq="W")
    np.testing.assert_array_equal(got[["frequency", "recency", "T"]].to_numpy(), expected[["frequency", "recency", "T"]].to_numpy())
    np.testing.assert_allclose(got["monetary_value"], expected["monetary_value"], rtol=1e-9)


def test_grocery_log_without_amounts(shared_data):
    tx, report = read_transactions(
        shared_data / "grocery" / "groceryElog.csv", columns=ColumnsConfig(customer_id="cust", timestamp="date", amount=None)
    )
    assert report.customers == 1525
    assert (tx["amount"] == 0).all()
    s = rfm_summary(tx)
    assert len(s) == 1525 and s["frequency"].max() > 10


def test_apparel_pareto_nbd_reproduces_clvtools(shared_data):
    """CLVTools vignette: Pareto/NBD without covariates, 104-week estimation split, weeks."""
    from churnml.clv import CLVModel

    raw = pd.read_csv(shared_data / "apparel" / "apparelTrans.csv", parse_dates=["Date"])
    raw["Id"] = raw["Id"].astype(str)
    split = raw["Date"].min() + pd.Timedelta(weeks=104)
    rfm = rfm_summary(
        raw[raw["Date"] <= split], customer_id="Id", timestamp="Date", amount="Price",
        observation_end=split, freq="D", freq_multiplier=7,
    )
    m = CLVModel(purchase_model="pareto_nbd").fit(rfm)
    published = {"r": 1.449, "alpha": 48.636, "s": 0.5613, "beta": 46.884}
    for k, v in published.items():
        assert m.params_[k] == pytest.approx(v, rel=0.005), k
