"""The fast batch-scoring path gives what the plain calls give: chunks, one tree walk, reasons."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import churnml
from churnml.churn import _logit
from churnml.datasets import simulate
from churnml.io import Dataset, LoadReport
from churnml.pipeline import fit_pipeline
from churnml.scoring import score_dataset


@pytest.fixture(scope="module")
def fitted():
    tx, _ = simulate(1500, "2021-01-01", "2023-07-01", {"r": 1.0, "alpha": 6.0, "a": 0.8, "b": 3.0}, seed=4)
    tx = tx.sort_values("timestamp", ignore_index=True)
    cfg = churnml.Config()
    cfg.clv.horizon_days = 120
    ds = Dataset(tx, LoadReport(source="simulated", customers=1500, orders=len(tx)))
    pipe, _ = fit_pipeline(ds, cfg, backtest=False)
    return pipe, ds, cfg


def test_chunked_scores_equal_one_chunk_and_the_plain_model_calls(fitted):
    pipe, ds, cfg = fitted
    one = score_dataset(pipe, ds, cfg).scores.set_index("customer_id")
    cfg_small = cfg.model_copy(deep=True)
    cfg_small.score.chunk_customers = 170  # 9 chunks, the last one short
    many = score_dataset(pipe, ds, cfg_small)
    assert many.meta["rows"]["chunks"] == -(-len(one) // 170)
    pd.testing.assert_frame_equal(many.scores.set_index("customer_id"), one)
    # the one-walk probability is the model's own predict_proba, bit for bit
    feats = pipe.features(ds.transactions, one["as_of"].iloc[0])
    np.testing.assert_array_equal(pipe.churn_model.predict_proba(feats)[:, 1], one.loc[feats.index, "churn_probability"].to_numpy())


def test_path_reasons_add_up_and_mostly_agree_with_treeshap(fitted):
    pipe, ds, cfg = fitted
    m = pipe.churn_model
    feats = pipe.features(ds.transactions, pd.Timestamp("2023-07-01"))
    p, c = m.predict_proba_and_contributions(feats, "path")
    np.testing.assert_allclose(c.sum(axis=1).to_numpy(), _logit(p), atol=1e-9)
    if m.chosen_ == "lightgbm":
        shap = m.shipped_contributions(feats, "shap").drop(columns="base")
        path = c.drop(columns="base")
        risky = p > np.median(p)
        same_top = (shap.to_numpy().argmax(axis=1) == path.to_numpy().argmax(axis=1))[risky]
        assert same_top.mean() > 0.5  # the two attributions name the same strongest driver for most
