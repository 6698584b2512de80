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
         "--model", str(tmp_path / "m.joblib"), "--out", str(tmp_path / "out")],
        capture_output=True, text=True, cwd=tmp_path, env=os.environ, timeout=600,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    assert "scored 2,357 customers on Spark" in res.stdout
    assert len(pd.read_parquet(tmp_path / "out")) == 2357
