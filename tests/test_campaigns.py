"""Segments, reasons, KPIs and the campaign planner's optimality."""

from __future__ import annotations


import numpy as np
import pandas as pd
import pytest

from churnml.campaigns import at_risk_list, control_mask, eligibility, plan_campaign, recommended_actions
from churnml.config import ActionConfig, CampaignConfig, Config, SegmentsConfig, TierConfig, config_from_dict
from churnml.errors import ConfigError, DataError
from churnml.pipeline import feature_reference, population_stability
from churnml.segments import assign_segments, kpis, reason_codes, tiers


def test_tiers_quantile_and_absolute():
    v = np.arange(10, dtype=float)
    q = tiers(v, TierConfig(method="quantile", thresholds=[0.5, 0.8], labels=["low", "medium", "high"]))
    assert list(q).count("high") == 2 and list(q).count("low") == 5
    a = tiers([0.1, 0.5, 0.7, 0.95], TierConfig(method="absolute", thresholds=[0.5, 0.9], labels=["l", "m", "h"]))
    assert list(a) == ["l", "m", "m", "h"]


def test_segments_follow_the_matrix_and_recommend_the_best_eligible_action():
    scores = pd.DataFrame({"churn_probability": [0.9, 0.9, 0.1, 0.5, 0.9], "predicted_clv": [200.0, 1.0, 100.0, 50.0, 3000.0]},
                          index=["a", "b", "c", "d", "e"])
    cfg = SegmentsConfig(risk=TierConfig(method="absolute", thresholds=[0.3, 0.7]),
                         value=TierConfig(method="absolute", thresholds=[10, 60]))
    s = assign_segments(scores, cfg)
    assert s["segment"].tolist() == ["Save now", "Let go", "VIP", "Nurture", "Save now"]
    # at stake = p x value: a 180, c 10, d 25, e 2700; default effects contact 0.080 / 25, checkin 0.067 / 6,
    # offer 0.064 / 8, reward 0.056 / 10; net = at stake x reduction - cost, by hand:
    # a: contact -10.6, checkin 6.06, offer 3.52, reward 0.08 -> checkin; b: Let go is left alone (playbook none);
    # c: every net <= 0 -> none; d: checkin -4.325, offer -6.4, reward -8.6 -> none (contact not allowed in Nurture);
    # e: contact 191, checkin 174.9, offer 164.8, reward 141.2 -> contact. No complaint column: complaint follow-up for nobody.
    assert s["recommended_action"].tolist() == ["proactive_checkin", "none", "none", "none", "personal_contact"]
    camp = CampaignConfig(actions=[ActionConfig(name="mail", cost=1, churn_reduction=0.05)])
    assert assign_segments(scores, cfg, camp)["recommended_action"].tolist() == ["mail", "none", "none", "mail", "mail"]


def test_reason_codes_in_words():
    feats = pd.DataFrame(
        {"recency_days": [210.0, 5.0], "ipt_mean_days": [45.0, np.nan], "n_complaint_90d": [2.0, 0.0],
         "last_nps": [3.0, 9.0], "tenure_days": [400.0, 30.0], "n_purchases": [8.0, 1.0], "frequency": [7.0, 0.0]},
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
            if a.segments != "all" and seg[i] not in a.segments:
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
        assert a.segments == "all" or row["segment_s"] in a.segments
        assert row["expected_saved_value"] == pytest.approx(row["churn_probability_s"] * row["predicted_clv_s"] * a.churn_reduction)
    optimum = _brute_force(scores, budget, ACTIONS)
    assert plan.objective <= optimum + 1e-6
    assert optimum <= plan.lp_bound + 1e-6
    assert optimum - plan.objective <= plan.gap + 1e-6
    if budget == 10_000:  # everything worth doing fits: the plan is exactly optimal
        assert plan.objective == pytest.approx(optimum) and plan.gap == pytest.approx(0)
    # relative gap on these instances is small
    assert plan.objective >= 0.9 * optimum


def test_control_group_is_a_hash_threshold_persistent_and_untouched():
    scores = _scores(n=500, seed=3)
    cfg = CampaignConfig(actions=ACTIONS, control_share=0.2, seed=7)
    plan = plan_campaign(scores, 1e9, cfg).plan
    control = plan[plan["group"] == "control"]
    treat = plan[plan["group"] == "treatment"]
    selected = len(plan)  # unlimited budget: every candidate is selected, treated or held out
    assert abs(len(control) - 0.2 * selected) <= 3 * np.sqrt(0.2 * 0.8 * selected)  # binomial
    assert (control["u"] < 0.2).all() and (treat["u"] >= 0.2).all()
    assert set(control["customer_id"]).isdisjoint(treat["customer_id"])
    assert (control["action"] == "none").all() and (control["cost"] == 0).all() and (control["expected_saved_value"] == 0).all()
    # with no budget limit the control group is what the plan would have done for them
    assert (control["planned_action"] == control["recommended_action"]).all()
    # the same seed holds out the same customers in a later campaign, whatever the row order
    again = plan_campaign(scores.sample(frac=1, random_state=1), 1e9, cfg).plan
    assert set(again.loc[again["group"] == "control", "customer_id"]) == set(control["customer_id"])
    other = plan_campaign(scores, 1e9, CampaignConfig(actions=ACTIONS, control_share=0.2, seed=8)).plan
    assert set(other.loc[other["group"] == "control", "customer_id"]) != set(control["customer_id"])
    assert control_mask(np.array(["x", "y"]), 0.0, 1).sum() == 0
    # a threshold, not a count: a customer's membership does not depend on who else is there
    ids = np.array([f"id{i}" for i in range(2000)])
    assert (control_mask(ids, 0.3, 5)[:700] == control_mask(ids[:700], 0.3, 5)).all()


def _population(n, seed, start=0):
    """Customers whose risk and value are correlated with nothing the hash sees."""
    rng = np.random.default_rng(seed)
    p = rng.beta(2, 2, n)
    v = rng.lognormal(4.5, 1.0, n)
    return pd.DataFrame({"customer_id": [f"s{i:06d}" for i in range(start, start + n)], "churn_probability": p,
                         "value_if_retained": v, "predicted_clv": v, "value_at_risk": p * v,
                         "segment": rng.choice(["Save now", "Protect", "Grow"], n)})


def _smd(a, b):
    return (np.mean(a) - np.mean(b)) / np.sqrt((np.var(a, ddof=1) + np.var(b, ddof=1)) / 2)


def test_control_is_drawn_within_the_selected_set_and_balanced():
    scores = _population(12_000, seed=11)
    cfg = CampaignConfig(actions=ACTIONS, control_share=0.25, seed=3)
    res = plan_campaign(scores, 15_000, cfg)
    plan = res.plan
    c, t = plan[plan["group"] == "control"], plan[plan["group"] == "treatment"]
    assert t["cost"].sum() <= 15_000 and res.marginal_ratio > 0  # the budget binds
    assert len(t) > 1000 and len(c) > 300
    for col in ["churn_probability", "value_at_risk"]:
        assert abs(_smd(c[col], t[col])) < 0.1, col
    assert abs(res.totals()["control_share_of_selected"] - 0.25) < 0.03
    # the held-out candidates as a whole (the old rule's pool) are far from the treated: the check has power
    held = scores.loc[control_mask(scores["customer_id"], 0.25, 3)]
    held = held.loc[recommended_actions(held, cfg).ne("none").to_numpy()]
    assert abs(_smd(held["value_at_risk"], t["value_at_risk"])) > 0.3
    # the control customers are exactly the held-out ones whose upgrade beats the marginal ratio
    assert (c["planned_expected_saved_value"] > 0).all() and set(c["planned_action"]) <= {a.name for a in ACTIONS}
    # totals and the bound are the treatment's: control costs nothing
    assert res.objective == pytest.approx(t["expected_saved_value"].sum() - t["cost"].sum())
    assert res.lp_bound >= res.objective


def test_control_membership_persists_when_candidates_and_budget_change():
    cfg = CampaignConfig(actions=ACTIONS, control_share=0.15, seed=21)
    first = _population(4000, seed=1)
    plan1 = plan_campaign(first, 6000, cfg).plan
    # a month later: 800 customers gone, 1200 new ones, scores moved, another budget
    rng = np.random.default_rng(2)
    later = first.sample(n=3200, random_state=3)
    later = later.assign(churn_probability=np.clip(later["churn_probability"] + rng.normal(0, 0.1, len(later)), 0.01, 0.99))
    later["value_at_risk"] = later["churn_probability"] * later["value_if_retained"]
    later = pd.concat([later, _population(1200, seed=4, start=10_000)], ignore_index=True)
    plan2 = plan_campaign(later, 9000, cfg).plan
    group1 = plan1.set_index("customer_id")["group"]
    group2 = plan2.set_index("customer_id")["group"]
    both = group1.index.intersection(group2.index)
    was_control = both[group1[both] == "control"]
    was_treated = both[group1[both] == "treatment"]
    assert len(was_control) >= 30 and len(was_treated) >= 300  # the test sees enough re-selected customers
    assert (group2[was_control] == "control").all()
    assert (group2[was_treated] == "treatment").all()


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


def _with_complaints(n=400, seed=5):
    s = _population(n, seed)
    rng = np.random.default_rng(seed)
    s["n_complaint_90d"] = np.where(rng.uniform(size=n) < 0.2, rng.integers(1, 4, n), 0).astype(float)
    s.loc[s.index[:5], "n_complaint_90d"] = np.nan  # unknown: fails every condition
    return s


COMPLAINT_ACTIONS = [
    ActionConfig(name="complaint_call", cost=5, churn_reduction=0.4, requires=["n_complaint_90d > 0"]),
    ActionConfig(name="offer", cost=6, churn_reduction=0.15),
    ActionConfig(name="call", cost=20, churn_reduction=0.35, segments=["Save now", "Protect"]),
]


def test_eligibility_rules_read_the_data():
    s = _with_complaints()
    cfg = CampaignConfig(actions=COMPLAINT_ACTIONS)
    el = eligibility(s, cfg)
    complained = (s["n_complaint_90d"] > 0).to_numpy()
    assert (el.mask[:, 0] == complained).all() and el.notes == []
    assert (el.mask[:, 2] == s["segment"].isin(["Save now", "Protect"]).to_numpy()).all()
    plan = plan_campaign(s, 1e9, cfg).plan
    got = plan.loc[plan["planned_action"] == "complaint_call", "customer_id"]
    assert len(got) > 20 and set(got) <= set(s.loc[complained, "customer_id"])
    # a NaN fails '!=' too
    ne = eligibility(s, CampaignConfig(actions=[ActionConfig(name="x", cost=1, churn_reduction=0.1, requires=["n_complaint_90d != 0"])]))
    assert (ne.mask[:, 0] == complained).all()
    # no events table, no complaint column: the action is for nobody and the plan says so
    bare = s.drop(columns="n_complaint_90d")
    res = plan_campaign(bare, 1e9, cfg)
    assert "complaint_call" not in set(res.plan["planned_action"])
    assert any(n.startswith("complaint_call: eligible for nobody: the scores have no column n_complaint_90d,") for n in res.notes)
    assert (recommended_actions(bare, cfg) != "complaint_call").all()
    with pytest.raises(DataError, match=r"requires 'n_complaint_90d > 0': column n_complaint_90d is not numeric"):
        eligibility(s.assign(n_complaint_90d="many"), cfg)


def test_default_complaint_rule_names_the_event_feature_of_the_default_config():
    from churnml.features import snapshot_features

    tx = pd.DataFrame({"customer_id": ["a", "a", "b", "c"], "amount": [10.0, 20, 30, 40],
                       "timestamp": pd.to_datetime(["2024-01-05", "2024-05-01", "2024-06-01", "2024-06-10"])})
    ev = pd.DataFrame({"customer_id": ["a", "b"], "timestamp": pd.to_datetime(["2024-06-20", "2023-12-01"]),
                       "type": ["complaint", "complaint"], "value": [np.nan, np.nan]})
    cfg = Config()
    assert cfg.campaign.required_columns() == ["n_complaint_90d"]
    f = snapshot_features(tx, pd.Timestamp("2024-07-01"), events=ev, config=cfg.features)
    el = eligibility(f, cfg.campaign, cfg.segments)
    j = [a.name for a in el.actions].index("fast_complaint_followup")
    assert el.mask[:, j].tolist() == [True, False, False]  # b's complaint is older than 90 days
    assert not eligibility(snapshot_features(tx, pd.Timestamp("2024-07-01"), config=cfg.features), cfg.campaign).mask[:, j].any()


@pytest.mark.parametrize("budget", [40, 300, 1e9])
def test_plan_actions_are_eligible_and_agree_with_recommended_action(budget):
    s = _with_complaints(n=300, seed=8)
    s["segment"] = np.random.default_rng(8).choice(["Save now", "Protect", "Grow", "Let go"], len(s))
    cfg = CampaignConfig(actions=COMPLAINT_ACTIONS, control_share=0.2, seed=1)
    book = {"Let go": "none", "Grow": ["offer"]}
    res = plan_campaign(s, budget, cfg, playbook=book)
    plan = res.plan.merge(s[["customer_id", "n_complaint_90d"]], on="customer_id")
    el = eligibility(s, cfg, book)
    names = [a.name for a in el.actions]
    pos = pd.Series(range(len(s)), index=s["customer_id"])
    cost = {a.name: a.cost for a in COMPLAINT_ACTIONS}
    for _, row in plan.iterrows():
        assert el.mask[pos[row["customer_id"]], names.index(row["planned_action"])]  # eligible
        assert row["recommended_action"] != "none"
        assert cost[row["planned_action"]] <= cost[row["recommended_action"]]  # on the way to the recommended one
    assert (plan.loc[plan["planned_action"] == "complaint_call", "n_complaint_90d"] > 0).all()
    assert not (plan["segment"] == "Let go").any()
    assert set(plan.loc[plan["segment"] == "Grow", "planned_action"]) <= {"offer"}
    rec = recommended_actions(s, cfg, book)
    assert (rec[s["segment"] == "Let go"] == "none").all()
    assert (plan["recommended_action"].to_numpy() == rec.set_axis(s["customer_id"])[plan["customer_id"]].to_numpy()).all()
    if budget == 1e9:  # nothing binds: the plan is the recommendation, for every customer it pays off for
        assert (plan["planned_action"] == plan["recommended_action"]).all()
        assert set(plan["customer_id"]) == set(s.loc[(rec != "none").to_numpy(), "customer_id"])
    t = res.plan[res.plan["group"] == "treatment"]
    assert (t["action_label"] == t["action"].str.replace("_", " ")).all()
    assert list(res.plan.columns[:9]) == ["customer_id", "group", "action", "cost", "expected_saved_value", "segment",
                                          "churn_probability", "value_if_retained", "value_at_risk"]
    assert {"action_label", "planned_action", "recommended_action"} <= set(res.plan.columns)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"campaign": {"actions": [{"name": "x", "cost": 1, "churn_reduction": 0.1, "segments": []}]}},
         r"campaign\.actions\.0\.segments: .*write all \(every segment\) or a non-empty list"),
        ({"campaign": {"actions": [{"name": "x", "cost": 1, "churn_reduction": 0.1, "segments": ["Savenow"]}]}},
         r"campaign\.actions\[x\]\.segments names \['Savenow'\]"),
        ({"campaign": {"actions": [{"name": "x", "cost": 1, "churn_reduction": 0.1, "requires": ["complaints > some"]}]}},
         r"campaign\.actions\.0\.requires: .*'<column> <op> <number>'"),
        ({"campaign": {"actions": [{"name": "x", "cost": 1, "churn_reduction": 0.1}] * 2}}, r"\['x'\] appear more than once"),
        ({"campaign": {"actions": [{"name": "none", "cost": 1, "churn_reduction": 0.1}]}}, r"reserved"),
        ({"segments": {"playbook": {"Save now": []}}}, r"segments\.playbook.*empty list.*write none"),
        ({"segments": {"playbook": {"Save now": "call"}}}, r"segments\.playbook\[Save now\] names \['call'\], not actions"),
        ({"segments": {"playbook": {"Savenow": "none"}}}, r"segments\.playbook names segment\(s\) \['Savenow'\]"),
        ({"features": {"event_count_window_days": 30}}, r"reads n_complaint_90d, but features\.event_count_window_days is 30: "
                                                         r"the column is n_complaint_30d"),
    ],
)
def test_config_rejects_ambiguous_or_unknown_action_settings(raw, message):
    with pytest.raises(ConfigError, match=message):
        config_from_dict(raw)


def test_config_action_rules_are_typed():
    cfg = config_from_dict({"campaign": {"actions": [{"name": "x", "cost": 1, "churn_reduction": 0.1, "requires": [" last_nps<=6", "n_complaint_90d>0"]}]},
                            "segments": {"playbook": {"Let go": "none", "Save now": "x", "VIP": "all"}}})
    a = cfg.campaign.actions[0]
    assert a.segments == "all" and a.requires == ["last_nps <= 6", "n_complaint_90d > 0"]
    assert a.conditions == [("last_nps", "<=", 6.0), ("n_complaint_90d", ">", 0.0)]
    assert cfg.segments.playbook == {"Let go": "none", "Save now": ["x"], "VIP": "all"}
    assert cfg.segments.allowed("Grow") == "all"


# --------------------------------------------------------------------------- honest economics (#22)

def _tiny(values):
    """Three customers, one segment; values are value_if_retained (currency)."""
    return pd.DataFrame({"customer_id": ["A", "B", "C"], "churn_probability": [0.5, 0.8, 0.2], "value_if_retained": values,
                         "predicted_clv": values, "value_at_risk": np.multiply([0.5, 0.8, 0.2], values), "segment": "Save now"})


CALL = CampaignConfig(actions=[ActionConfig(name="call", cost=10, churn_reduction=0.1)], control_share=0.0)


@pytest.mark.parametrize("values, value_margin", [([300.0, 600.0, 300.0], None), ([1000.0, 2000.0, 1000.0], 1.0)])
def test_plan_is_on_profit_at_the_stated_margin_hand_computed(values, value_margin):
    """Margin 0.3, applied once: already inside value_if_retained (value_margin None) or on revenue
    scores (value_margin 1.0, rescaled x 0.3). Profit values 300, 600, 300, by hand:
    A 0.5 x 0.1 x 300 = 15, net 5; B 0.8 x 0.1 x 600 = 48, net 38; C 0.2 x 0.1 x 300 = 6, net -4 (not selected;
    on revenue C would save 20 and be selected). Cost 20, saved 63, net 43, ROI 43 / 20 = 2.15."""
    plan = plan_campaign(_tiny(values), 100, CALL, margin=0.3, value_margin=value_margin)
    t = plan.totals()
    assert sorted(plan.plan["customer_id"]) == ["A", "B"]
    assert plan.plan.set_index("customer_id")["expected_saved_value"].to_dict() == pytest.approx({"A": 15.0, "B": 48.0})
    assert (t["cost"], t["expected_saved_value"], t["net_value"]) == pytest.approx((20.0, 63.0, 43.0))
    assert t["roi"] == pytest.approx(2.15)
    assert (t["margin"], t["roi_basis"]) == (0.3, "profit")
    assert plan.summary.loc["total", "roi"] == pytest.approx(2.15)
    assert (plan.plan["margin"] == 0.3).all()
    assert not any("revenue" in w for w in plan.warnings)
    # the one configured action is an assumption, and the plan says so on every row and in the summary
    assert (plan.plan["effect_source"] == "assumed: configured, not measured").all()
    assert plan.summary.loc["call", "effect_source"] == "assumed: configured, not measured"
    assert any("assumption" in w for w in plan.warnings)


def test_margin_one_is_said_to_be_revenue():
    """Margin 1.0 (the default): values unchanged, ROI on revenue, warned. Revenue values 1000, 2000, 1000:
    A 50 - 10, B 160 - 10, C 20 - 10: cost 30, saved 230, ROI 200 / 30 (vs 2.15 on profit at margin 0.3)."""
    plan = plan_campaign(_tiny([1000.0, 2000.0, 1000.0]), 100, CALL)
    t = plan.totals()
    assert t["roi"] == pytest.approx(200 / 30) and (t["margin"], t["roi_basis"]) == (1.0, "revenue")
    assert any(w.startswith("No margin is configured") and "revenue" in w for w in plan.warnings)


def test_campaign_cli_writes_margin_basis_and_warnings(tmp_path):
    import json

    import yaml
    from typer.testing import CliRunner

    from churnml.campaigns import ASSUMED_WARNING, REVENUE_WARNING
    from churnml.cli import app

    _tiny([300.0, 600.0, 300.0]).to_csv(tmp_path / "scores.csv", index=False)
    acts = [{"name": "call", "cost": 10, "churn_reduction": 0.1}]
    runner = CliRunner()
    for margin in (1.0, 0.3):
        (tmp_path / "c.yaml").write_text(yaml.safe_dump({"clv": {"margin": margin}, "campaign": {"control_share": 0.0, "actions": acts}}))
        res = runner.invoke(app, ["campaign", "--scores", str(tmp_path / "scores.csv"), "--budget", "100", "--config",
                                  str(tmp_path / "c.yaml"), "--out", str(tmp_path / "plan.csv")])
        assert res.exit_code == 0, res.output
        summary = json.loads((tmp_path / "plan.csv.summary.json").read_text())
        assert summary["margin"] == margin and summary["assumptions"]["actions"][0]["effect_source"].startswith("assumed")
        assert ASSUMED_WARNING in summary["warnings"]
        if margin == 1.0:
            assert REVENUE_WARNING in summary["warnings"] and summary["roi_basis"] == "revenue"
            assert f"WARNING: {REVENUE_WARNING}" in res.output and "on REVENUE" in res.output
            assert summary["roi"] == pytest.approx(2.15)
        else:  # no sidecar: the scores are taken to be on this config's margin (applied once, not again)
            assert REVENUE_WARNING not in summary["warnings"] and summary["roi_basis"] == "profit"
            assert summary["roi"] == pytest.approx(2.15) and "on profit at margin 0.3" in res.output
    # a sidecar saying the scores' values are on revenue: rescaled to margin 0.3 -> the hand-computed 2.15
    (tmp_path / "scores.csv.meta.json").write_text(json.dumps({"economics": {"margin": 1.0}}))
    _tiny([1000.0, 2000.0, 1000.0]).to_csv(tmp_path / "scores.csv", index=False)
    res = runner.invoke(app, ["campaign", "--scores", str(tmp_path / "scores.csv"), "--budget", "100", "--config",
                              str(tmp_path / "c.yaml"), "--out", str(tmp_path / "plan.csv")])
    assert res.exit_code == 0, res.output
    summary = json.loads((tmp_path / "plan.csv.summary.json").read_text())
    assert summary["roi"] == pytest.approx(2.15) and summary["treatment_customers"] == 2


def test_measured_effects_are_labelled_measured_after_apply_effects():
    from churnml.campaigns import ASSUMED_DEFAULT, ASSUMED_WARNING, apply_effects, assumptions, effect_source

    cfg = CampaignConfig(control_share=0.0)  # the default catalogue
    assert {effect_source(a) for a in cfg.actions} == {ASSUMED_DEFAULT}
    ro = pd.DataFrame({"level": ["action", "action"], "name": ["personal_contact", "proactive_checkin"],
                       "n_treatment": [300, 10], "n_control": [120, 5], "churn_reduction": [0.2, 0.5],
                       "churn_reduction_low": [0.12, 0.1], "churn_reduction_high": [0.28, 0.8]})
    new, _ = apply_effects(cfg, ro, source="readout.csv (2026-03-01)")
    src = {a.name: effect_source(a) for a in new.actions}
    assert src["personal_contact"] == ("measured: read-out readout.csv (2026-03-01), n=300 treated/120 control, measured 0.200, "
                                       "95% interval [0.120, 0.280], lower bound used")
    assert src["proactive_checkin"] == ASSUMED_DEFAULT  # too few customers: kept, still an assumption
    assert src["personalised_offer"] == ASSUMED_DEFAULT  # not in the read-out
    assert ASSUMED_WARNING in assumptions(cfg)["warnings"] and ASSUMED_WARNING not in assumptions(new)["warnings"]
    scores = pd.DataFrame({"customer_id": ["x"], "churn_probability": [0.9], "value_if_retained": [5000.0], "predicted_clv": [5000.0],
                           "value_at_risk": [4500.0], "segment": ["Save now"]})
    plan = plan_campaign(scores, 100, new, margin=0.3)
    # 0.9 x 0.12 x 5000 - 25 = 515 beats every assumed default: the plan row and summary say it is measured
    assert plan.plan.loc[0, "action"] == "personal_contact" and plan.plan.loc[0, "effect_source"].startswith("measured: read-out")
    assert plan.summary.loc["personal_contact", "effect_source"] == src["personal_contact"]


def test_low_risk_high_value_gets_personal_contact_only_when_it_pays():
    """Default catalogue (VIP may get contact 0.080/25, check-in 0.067/6, offer 0.064/8, reward 0.056/10).
    p 0.1, value 2000 (stake 200): contact 16 - 25 = -9 < 0, check-in 13.4 - 6 = 7.4, offer 4.8, reward 1.2
    -> check-in (under the old 0.30 default contact would have 'saved' 60 - 25 = 35 and won).
    p 0.1, value 100000 (stake 10000): contact 775 > check-in 664 > offer 632 > reward 550 -> contact.
    p 0.02, value 1000 (stake 20): every net < 0 -> none."""
    scores = pd.DataFrame({"customer_id": ["v1", "v2", "v3"], "churn_probability": [0.1, 0.1, 0.02],
                           "value_if_retained": [2000.0, 100000.0, 1000.0], "predicted_clv": [2000.0, 100000.0, 1000.0],
                           "value_at_risk": [200.0, 10000.0, 20.0], "segment": "VIP"})
    rec = recommended_actions(scores)
    assert rec.tolist() == ["proactive_checkin", "personal_contact", "none"]
    plan = plan_campaign(scores, 1000, CampaignConfig(control_share=0.0), margin=0.3, value_margin=1.0)
    # on profit at margin 0.3: v1 stake 60 -> check-in 4.02 - 6 < 0, nothing pays; v2 stake 3000 -> contact 215
    # vs check-in 195 -> contact; v3 nothing
    assert plan.plan.set_index("customer_id")["action"].to_dict() == {"v2": "personal_contact"}
    assert plan.plan.loc[0, "expected_saved_value"] == pytest.approx(0.1 * 0.08 * 30000.0)


def test_report_and_workbook_state_the_assumptions(tmp_path):
    """The report and at_risk.xlsx say what recommended actions rest on: the margin basis and each effect's source."""
    from openpyxl import load_workbook

    from churnml.campaigns import REVENUE_WARNING, assumptions
    from churnml.excel import economics_notes, write_list
    from churnml.report import actions_section

    econ = assumptions(CampaignConfig(), 1.0)
    page = actions_section(econ)
    assert REVENUE_WARNING in page and "judged on revenue, not profit" in page
    assert page.count("assumed: default catalogue") == len(CampaignConfig().actions) and "8.0%" in page
    assert "on profit at margin 0.3" in actions_section(assumptions(CampaignConfig(), 0.3))
    path = write_list(pd.DataFrame({"Customer ID": ["a"], "Recommended action": ["Personal contact"]}), tmp_path / "l.xlsx",
                      notes=economics_notes(econ))
    lines = [r[0] for r in load_workbook(path)["Assumptions"].iter_rows(values_only=True)]
    assert lines[0] == f"Warning: {REVENUE_WARNING}"
    assert "Personal contact: cost 25.00 per customer, churn reduction 8.0% (assumed: default catalogue)." in lines


def test_empty_plan_says_nothing_pays():
    """Stake 0.5 x 10 = 5: the best default action (check-in) nets 5 x 0.067 - 6 = -5.665; the plan says so."""
    s = pd.DataFrame({"customer_id": ["a"], "churn_probability": [0.5], "value_if_retained": [10.0], "predicted_clv": [10.0],
                      "value_at_risk": [5.0], "segment": ["Protect"]})
    plan = plan_campaign(s, 100)
    assert plan.plan.empty
    assert any(n.startswith("no action pays for any customer") and "(best expected net value -5.67)" in n for n in plan.notes)
