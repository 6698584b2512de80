"""Segments, reasons, KPIs and the campaign planner's optimality."""

from __future__ import annotations


import numpy as np
import pandas as pd
import pytest

from churnml.campaigns import at_risk_list, control_mask, plan_campaign
from churnml.config import ActionConfig, CampaignConfig, SegmentsConfig, TierConfig
from churnml.pipeline import feature_reference, population_stability
from churnml.segments import assign_segments, kpis, reason_codes, tiers


def test_tiers_quantile_and_absolute():
    v = np.arange(10, dtype=float)
    q = tiers(v, TierConfig(method="quantile", thresholds=[0.5, 0.8], labels=["low", "medium", "high"]))
    assert list(q).count("high") == 2 and list(q).count("low") == 5
    a = tiers([0.1, 0.5, 0.7, 0.95], TierConfig(method="absolute", thresholds=[0.5, 0.9], labels=["l", "m", "h"]))
    assert list(a) == ["l", "m", "m", "h"]


def test_segments_follow_the_matrix_and_playbook():
    scores = pd.DataFrame({"churn_probability": [0.9, 0.9, 0.1, 0.5], "predicted_clv": [100.0, 1.0, 100.0, 50.0]},
                          index=["a", "b", "c", "d"])
    cfg = SegmentsConfig(risk=TierConfig(method="absolute", thresholds=[0.3, 0.7]),
                         value=TierConfig(method="absolute", thresholds=[10, 60]))
    s = assign_segments(scores, cfg)
    assert s["segment"].tolist() == ["Save now", "Let go", "VIP", "Nurture"]
    assert s["recommended_action"].tolist() == ["personal_contact", "none", "loyalty_reward", "personalised_offer"]


def test_reason_codes_in_words():
    feats = pd.DataFrame(
        {"recency_days": [210.0, 5.0], "ipt_mean_days": [45.0, np.nan], "n_complaint_90d": [2.0, 0.0],
         "last_nps": [3.0, 9.0], "tenure_days": [400.0, 30.0], "n_purchases": [8.0, 1.0]},
        index=["a", "b"],
    )
    contrib = pd.DataFrame(
        {"recency_days": [1.2, -0.5], "ipt_mean_days": [0.1, 0.0], "n_complaint_90d": [0.8, 0.0], "last_nps": [0.5, -0.1],
         "tenure_days": [-0.2, -0.3], "n_purchases": [0.0, -0.1], "bias": [1.0, 1.0]},
        index=["a", "b"],
    )
    r = reason_codes(contrib, feats)
    assert r["a"] == "no purchase for 210 days, usually buys every 45 days; 2 complaints in the last 90 days; last NPS answer 3 (typical 6)"
    assert r["b"] == "no risk driver"


def test_kpis_hand_computed():
    s = pd.DataFrame(
        {"churn_probability": [0.2, 0.6, 0.4], "predicted_clv": [100.0, 50.0, 10.0], "value_at_risk": [20.0, 30.0, 4.0],
         "purchases_per_year": [4.0, 1.0, 1.0], "avg_order_value": [25.0, 50.0, 10.0], "segment": ["A", "B", "B"]}
    )
    k = kpis(s)
    assert k.loc["all", "churn_rate"] == pytest.approx(0.4) and k.loc["all", "retention_rate"] == pytest.approx(0.6)
    assert k.loc["B", "customers"] == 2 and k.loc["B", "share"] == pytest.approx(2 / 3)
    assert k.loc["B", "value_at_risk"] == 34 and k.loc["all", "clv_total"] == 160
    assert k.loc["A", "purchase_frequency"] == 4 and k.loc["B", "avg_order_value"] == 30


def _scores(n=40, seed=0):
    rng = np.random.default_rng(seed)
    p = rng.uniform(0.05, 0.95, n)
    v = rng.gamma(2, 60, n)
    return pd.DataFrame(
        {"customer_id": [f"c{i:03d}" for i in range(n)], "churn_probability": p, "predicted_clv": v, "value_at_risk": p * v,
         "segment": rng.choice(["Save now", "Protect", "Grow"], n), "rfm_segment": rng.choice(["Lost", "Champions"], n)}
    )


ACTIONS = [
    ActionConfig(name="call", cost=20, churn_reduction=0.35, segments=["Save now", "Protect"]),
    ActionConfig(name="offer", cost=6, churn_reduction=0.15),
    ActionConfig(name="mail", cost=1, churn_reduction=0.03),
]


def _brute_force(scores, budget, actions):
    """Exact optimum by dynamic programming over integer costs (all costs are integers here)."""
    seg = scores["segment"].to_numpy()
    var = scores["churn_probability"].to_numpy() * scores["predicted_clv"].to_numpy()
    B = int(budget)
    best = np.zeros(B + 1)
    for i in range(len(scores)):
        new = best.copy()
        for a in actions:
            if a.segments and seg[i] not in a.segments:
                continue
            net = var[i] * a.churn_reduction - a.cost
            if net <= 0:
                continue
            c = int(a.cost)
            if c > B:
                continue
            new[c:] = np.maximum(new[c:], best[: B + 1 - c] + net)
        best = new
    return best[B]


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("budget", [15, 60, 200, 10_000])
def test_planner_is_feasible_and_near_optimal(seed, budget):
    scores = _scores(seed=seed)
    cfg = CampaignConfig(actions=ACTIONS, control_share=0.0)
    plan = plan_campaign(scores, budget, cfg)
    t = plan.plan[plan.plan["group"] == "treatment"]
    assert t["cost"].sum() <= budget + 1e-9
    assert t["customer_id"].is_unique
    merged = t.merge(scores, on="customer_id", suffixes=("", "_s"))
    for _, row in merged.iterrows():
        a = next(x for x in ACTIONS if x.name == row["action"])
        assert not a.segments or row["segment_s"] in a.segments
        assert row["expected_saved_value"] == pytest.approx(row["churn_probability_s"] * row["predicted_clv_s"] * a.churn_reduction)
    optimum = _brute_force(scores, budget, ACTIONS)
    assert plan.objective <= optimum + 1e-6
    assert optimum <= plan.lp_bound + 1e-6
    assert optimum - plan.objective <= plan.gap + 1e-6
    if budget == 10_000:  # everything worth doing fits: the plan is exactly optimal
        assert plan.objective == pytest.approx(optimum) and plan.gap == pytest.approx(0)
    # relative gap on these instances is small
    assert plan.objective >= 0.9 * optimum


def test_control_group_is_random_exact_size_persistent_and_untouched():
    scores = _scores(n=500, seed=3)
    cfg = CampaignConfig(actions=ACTIONS, control_share=0.2, seed=7)
    plan = plan_campaign(scores, 1e9, cfg).plan
    control = plan[plan["group"] == "control"]
    treat = plan[plan["group"] == "treatment"]
    candidates = len(control) + len(treat)  # unlimited budget: every candidate is treated or control
    assert len(control) == round(0.2 * candidates)
    assert set(control["customer_id"]).isdisjoint(treat["customer_id"])
    assert (control["action"] == "none").all() and (control["cost"] == 0).all()
    # the same seed holds out the same customers in a later campaign, whatever the row order
    again = plan_campaign(scores.sample(frac=1, random_state=1), 1e9, cfg).plan
    assert set(again.loc[again["group"] == "control", "customer_id"]) == set(control["customer_id"])
    other = plan_campaign(scores, 1e9, CampaignConfig(actions=ACTIONS, control_share=0.2, seed=8)).plan
    assert set(other.loc[other["group"] == "control", "customer_id"]) != set(control["customer_id"])
    assert control_mask(np.array(["x", "y"]), 0.0, 1).sum() == 0


def test_at_risk_list_filters_sorts_and_joins():
    scores = _scores(n=30, seed=1)
    attrs = pd.DataFrame({"Channel": ["web"] * 30}, index=scores["customer_id"])
    lst = at_risk_list(scores, segments=["Save now"], min_value=50, top=5, customers=attrs)
    assert list(lst.columns[:3]) == ["Customer ID", "Segment", "RFM segment"] and "Channel" in lst.columns
    assert len(lst) <= 5 and (lst["Segment"] == "Save now").all() and (lst["Predicted value"] >= 50).all()
    assert lst["Value at risk"].is_monotonic_decreasing
    rfm = at_risk_list(scores, segments=["Lost"])
    assert (rfm["RFM segment"] == "Lost").all()


def test_population_stability_index():
    rng = np.random.default_rng(0)
    ref = pd.DataFrame({"x": rng.normal(0, 1, 20_000), "y": rng.exponential(1, 20_000)})
    same = pd.DataFrame({"x": rng.normal(0, 1, 20_000), "y": rng.exponential(1, 20_000)})
    shifted = pd.DataFrame({"x": rng.normal(1, 1, 20_000), "y": rng.exponential(1, 20_000)})
    reference = feature_reference(ref)
    assert population_stability(reference, same).max() < 0.01
    psi = population_stability(reference, shifted)
    assert psi["x"] > 0.2 and psi["y"] < 0.01


def test_at_risk_list_refuses_unknown_segment_names_and_accepts_empty_known_ones():
    from churnml.errors import DataError

    scores = _scores(n=30, seed=1)
    with pytest.raises(DataError, match=r"unknown segment\(s\) \['Savenow'\]; valid segment names: \[.*'Save now'"):
        at_risk_list(scores, segments=["Savenow"], known_segments=["Save now", "VIP"])
    lst = at_risk_list(scores.loc[scores["segment"] != "VIP"], segments=["VIP"], known_segments=["Save now", "VIP"])
    assert len(lst) == 0  # a configured segment with nobody in it is an empty list, not an error
