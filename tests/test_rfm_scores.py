from __future__ import annotations

import itertools

import numpy as np
import pandas as pd

from churnml.config import RFMConfig, RFMSegmentRule
from churnml.rfm import rfm_scores, rfm_segment

NAMES = {
    "Champions", "Loyal Customers", "Potential Loyalists", "New Customers", "Promising", "Need Attention",
    "About to Sleep", "At Risk", "Can't Lose Them", "Hibernating", "Lost",
}


def test_default_grid_covers_every_cell_with_the_standard_names():
    cells = np.array(list(itertools.product(range(1, 6), range(1, 6))))
    seg = rfm_segment(cells[:, 0], cells[:, 1])
    assert "Other" not in set(seg)
    assert set(seg) == NAMES
    lookup = {(r, fm): s for (r, fm), s in zip(map(tuple, cells), seg)}
    assert lookup[(5, 5)] == "Champions"
    assert lookup[(1, 1)] == "Lost"
    assert lookup[(1, 5)] == "Can't Lose Them"
    assert lookup[(5, 1)] == "New Customers"
    assert lookup[(2, 3)] == "At Risk"
    assert lookup[(3, 3)] == "Need Attention"


def test_quintiles_are_equal_sized_and_ordered():
    rng = np.random.default_rng(0)
    n = 1000
    feats = pd.DataFrame(
        {"recency_days": rng.exponential(100, n), "n_purchases": rng.poisson(3, n) + 1, "net_spend": rng.gamma(2, 50, n)},
        index=[f"c{i}" for i in range(n)],
    )
    s = rfm_scores(feats)
    for col in ["r_score", "f_score", "m_score"]:
        assert s[col].value_counts().tolist() == [200] * 5
    # most recent customers get R = 5, biggest spenders M = 5
    assert feats.loc[s.r_score == 5, "recency_days"].max() <= feats.loc[s.r_score == 4, "recency_days"].min()
    assert feats.loc[s.m_score == 5, "net_spend"].min() >= feats.loc[s.m_score == 4, "net_spend"].max()
    assert (s.rfm_code == s.r_score.astype(str) + s.f_score.astype(str) + s.m_score.astype(str)).all()
    assert ((s.fm_score >= np.minimum(s.f_score, s.m_score)) & (s.fm_score <= np.maximum(s.f_score, s.m_score))).all()


def test_mapping_is_configurable():
    cfg = RFMConfig(bins=3, segments=[RFMSegmentRule(name="Gold", r=(3, 3), fm=(3, 3))])
    feats = pd.DataFrame({"recency_days": [1.0, 50.0, 100.0], "n_purchases": [9, 5, 1], "net_spend": [900.0, 50.0, 1.0]})
    s = rfm_scores(feats, config=cfg)
    assert s.rfm_segment.tolist() == ["Gold", "Other", "Other"]


def test_monetary_score_defaults_to_net_spend():
    # "big" ordered 168,470 gross but cancelled it: net 2.90, the least of the three
    feats = pd.DataFrame(
        {"recency_days": [1.0, 2.0, 3.0], "n_purchases": [1, 1, 1],
         "total_spend": [168472.9, 50.0, 10.0], "net_spend": [2.9, 50.0, 10.0]},
        index=["big", "mid", "low"],
    )
    cfg = RFMConfig(bins=3)
    assert rfm_scores(feats, config=cfg)["m_score"].tolist() == [1, 3, 2]
    assert rfm_scores(feats, monetary="total_spend", config=cfg)["m_score"].tolist() == [3, 2, 1]
