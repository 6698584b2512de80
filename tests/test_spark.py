"""Scoring on Spark (local[2]) gives the same scores as pandas."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pyspark = pytest.importorskip("pyspark", reason="pyspark not installed (pip install 'churnml[spark]'; the dev extra has it)")

import churnml  # noqa: E402
from churnml.datasets import load_cdnow  # noqa: E402
from churnml.pipeline import fit_pipeline  # noqa: E402

pytestmark = pytest.mark.slow  # integration tests of minutes: `bash scripts/test.sh --all` (CI) runs them

REPO = Path(__file__).resolve().parents[1]
SCORES = ["churn_probability", "p_alive", "expected_purchases", "expected_avg_spend", "predicted_clv", "value_at_risk"]


@pytest.fixture(scope="module")
def spark():
    from churnml.spark import local_session

    s = local_session("local[2]")
    yield s
    s.stop()


def test_spark_scores_equal_pandas_scores(spark, tmp_path):
    from churnml.spark import score_spark

    cfg = churnml.load_config(REPO / "configs" / "cdnow_sample.yaml")
    ds = churnml.load_dataset(cfg)
    pipe, _ = fit_pipeline(ds, cfg, backtest=False)
    raw = load_cdnow("sample")[["customer_id", "date", "dollar_value"]]
    raw.to_parquet(tmp_path / "tx.parquet")
    n = score_spark(pipe, cfg, tmp_path / "tx.parquet", tmp_path / "scores", as_of="1998-05-01", spark=spark)
    local = pipe.score(ds.transactions, "1998-05-01")
    sp = pd.read_parquet(tmp_path / "scores").set_index("customer_id")
    assert n == len(sp) == len(local) and set(sp.index) == set(local.index)
    joined = sp.join(local[SCORES], rsuffix="_pandas")
    for col in SCORES:
        np.testing.assert_allclose(joined[col], joined[f"{col}_pandas"], rtol=1e-9, atol=1e-9, err_msg=col)
    assert list((tmp_path / "scores").glob("part-*.parquet"))  # written as Parquet partitions


def test_cli_score_engine_spark(tmp_path):
    """The same command a cluster job runs (`spark-submit` sets the master), here in local[2]."""
    cfg = churnml.load_config(REPO / "configs" / "cdnow_sample.yaml")
    ds = churnml.load_dataset(cfg)
    pipe, _ = fit_pipeline(ds, cfg, backtest=False)
    import joblib

    joblib.dump(pipe, tmp_path / "m.joblib")
    load_cdnow("sample")[["customer_id", "date", "dollar_value"]].to_parquet(tmp_path / "tx.parquet")
    conf = tmp_path / "c.yaml"
    conf.write_text("data:\n  transactions: tx.parquet\n  columns: {customer_id: customer_id, timestamp: date, amount: dollar_value}\n")
    res = subprocess.run(
        [sys.executable, "-m", "churnml.cli", "score", "--engine", "spark", "--master", "local[2]", "--config", str(conf),
         "--model", str(tmp_path / "m.joblib"), "--trust-unverified", "--out", str(tmp_path / "out")],
        capture_output=True, text=True, cwd=tmp_path, env=os.environ, timeout=600,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    assert "scored 2,357 customers on Spark" in res.stdout
    assert len(pd.read_parquet(tmp_path / "out")) == 2357


def _log_with_cancellations(seed: int = 3) -> pd.DataFrame:
    """Order lines with equal amounts, full cancellations (some at the order's own minute) and
    partial returns, so that matching has to pick among several equal purchases."""
    rng = np.random.default_rng(seed)
    rows = []
    for c in range(40):
        t = pd.Timestamp("2024-01-01") + pd.Timedelta(hours=int(rng.integers(0, 500)))
        for k in range(int(rng.integers(1, 8))):
            t = t + pd.Timedelta(minutes=int(rng.integers(0, 3)) * int(rng.integers(0, 20000)))
            amt = float(rng.choice([5.0, 12.5, 30.0, 99.99]))
            oid = f"{c}-{k}"
            rows.append((f"c{c:03d}", t, oid, 1, amt))
            u = rng.random()
            if u < 0.3:
                rows.append((f"c{c:03d}", t + pd.Timedelta(minutes=int(rng.integers(0, 3000))), "C" + oid, -1, amt))
            elif u < 0.45:
                rows.append((f"c{c:03d}", t + pd.Timedelta(minutes=int(rng.integers(0, 3000))), "R" + oid, -1, round(amt * 0.4, 2)))
    t = pd.Timestamp("2024-02-01 09:00")
    rows += [  # one credit note cancelling two orders, then a re-invoice; an order netting to zero inside itself
        ("c900", t, "m1", 3, 8.5), ("c900", t + pd.Timedelta(hours=2), "m2", 1, 74.5),
        ("c900", t + pd.Timedelta(hours=5), "Cm", -1, 100.0), ("c900", t + pd.Timedelta(hours=6), "m3", 1, 90.0),
        ("c901", t, "z1", 8, 10.0), ("c901", t, "z1", -8, 10.0),
        # orders netting to zero only at a later line of the same order id
        ("c902", t - pd.Timedelta(days=9), "k1", 1, 20.0),
        ("c902", t, "z2", 5, 10.0), ("c902", t + pd.Timedelta(days=3), "z2", -5, 10.0),
        ("c903", t, "z3", 2, 10.0), ("c903", t + pd.Timedelta(days=1), "z3", 3, 10.0), ("c903", t + pd.Timedelta(days=2), "z3", -5, 10.0),
    ]
    return pd.DataFrame(rows, columns=["cid", "ts", "oid", "qty", "price"])


@pytest.mark.parametrize("order_id", ["oid", None])
def test_spark_cancellations_and_features_equal_pandas(spark, tmp_path, order_id):
    from churnml.config import ColumnsConfig, Config
    from churnml.features import features_from_aggregates, snapshot_features
    from churnml.io import prepare_transactions
    from churnml.spark import spark_aggregates, spark_transactions

    raw = _log_with_cancellations()
    raw.to_parquet(tmp_path / "tx.parquet")
    cfg = Config()
    cfg.data.columns = ColumnsConfig(customer_id="cid", timestamp="ts", order_id=order_id, amount=None, quantity="qty", unit_price="price")
    tx, report = prepare_transactions(raw, columns=cfg.data.columns)
    assert report.cancellations > 10
    assert report.multi_order_credit_notes >= 1 and report.orders_netting_to_zero == (3 if order_id else 1)
    stx = spark_transactions(spark, str(tmp_path / "tx.parquet"), cfg).cache()
    marks = stx.toPandas()
    # the same orders carry the same cancellation marks (-1: none)
    cancelled_us = np.where(tx.cancelled_at.notna(), tx.cancelled_at.to_numpy().astype("datetime64[us]").astype("int64"), -1)
    want = sorted(zip(tx.customer_id, tx.timestamp.to_numpy().astype("datetime64[us]").astype("int64"), tx.amount.round(6), cancelled_us))
    got = sorted(zip(marks.customer_id, marks.us, marks.amount.round(6), marks.cancelled_us.fillna(-1).astype("int64")))
    assert got == want
    # some cancellations still ahead / between the lines of orders netting to zero later / all of them past
    for cut in ["2024-01-20", "2024-02-02 12:00", "2024-06-01"]:
        cut = pd.Timestamp(cut)
        pf = snapshot_features(tx, cut, config=cfg.features)
        agg = spark_aggregates(stx, cut.value // 1000, cfg).toPandas()
        a = {c: agg[c].to_numpy() for c in agg.columns if c != "customer_id"}
        a["first_ns"] = agg["first_us"].to_numpy(dtype=np.int64) * 1000
        a["last_ns"] = agg["last_us"].to_numpy(dtype=np.int64) * 1000
        sf = pd.DataFrame(features_from_aggregates(a, cut.value, cfg.features), index=agg["customer_id"].astype(str).to_numpy())
        sf = sf.sort_index()
        assert list(sf.index) == list(pf.index)
        np.testing.assert_allclose(sf.to_numpy(), pf[sf.columns].to_numpy(), rtol=1e-9, atol=1e-9)
    stx.unpersist()
