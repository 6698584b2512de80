"""Campaign read-out: intervals calibrated on simulated randomised campaigns with a known
effect, numbers checked against hand-built cases, the CLI end to end."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from churnml.errors import DataError
from churnml.readout import (newcombe_interval, outcomes_table, plan_outcomes, readout, wilson_interval)

# true per-segment baseline retention (control) and additive effect of treatment
SEGMENTS = {"Save now": (0.35, 0.12), "Protect": (0.60, 0.05), "Grow": (0.80, 0.0)}


def _experiment(n_per_segment: int, reps: int, control_share: float, seed: int):
    """Vectorised randomised campaigns: ``reps`` replications, per segment retained counts of each arm."""
    rng = np.random.default_rng(seed)
    out = {}
    for s, (base, eff) in SEGMENTS.items():
        u = rng.uniform(size=(reps, n_per_segment))  # the hash: uniform, independent of the outcome
        ctrl = u < control_share
        p = np.where(ctrl, base, base + eff)
        y = rng.uniform(size=(reps, n_per_segment)) < p
        out[s] = ((y & ~ctrl).sum(1), (~ctrl).sum(1), (y & ctrl).sum(1), ctrl.sum(1))
    return out


def test_wilson_and_newcombe_match_published_values():
    # Newcombe (1998), Table II example (a): 56/70 vs 48/80, method 10: 0.0524 to 0.3339
    lo, hi = newcombe_interval(56, 70, 48, 80)
    assert lo == pytest.approx(0.0524, abs=5e-4) and hi == pytest.approx(0.3339, abs=5e-4)
    # Wilson for 81/263 (Newcombe 1998a): 0.2553 to 0.3662
    lo, hi = wilson_interval(81, 263)
    assert lo == pytest.approx(0.2553, abs=5e-4) and hi == pytest.approx(0.3662, abs=5e-4)


def test_retention_intervals_cover_the_true_effect_at_the_nominal_rate():
    """200 randomised campaigns: the 95% interval covers the true effect per segment and overall
    in 92-98% of runs (binomial sd of the coverage over 200 runs at 95%: 1.5 pp; 92-98% is +/-2 sd)."""
    reps = 200
    data = _experiment(n_per_segment=600, reps=reps, control_share=0.3, seed=7)
    cover_all = []
    for s, (x1, n1, x0, n0) in data.items():
        base, eff = SEGMENTS[s]
        lo, hi = newcombe_interval(x1, n1, x0, n0)
        cover = np.mean((lo <= eff) & (eff <= hi))
        assert 0.92 <= cover <= 0.98, (s, cover)
        cover_all.append((x1, n1, x0, n0))
    x1, n1, x0, n0 = (sum(v[i] for v in cover_all) for i in range(4))
    # true average effect over the treated (hash independent of segment, equal segment sizes)
    true = np.mean([e for _, e in SEGMENTS.values()])
    lo, hi = newcombe_interval(x1, n1, x0, n0)
    cover = np.mean((lo <= true) & (true <= hi))
    assert 0.92 <= cover <= 0.98, cover


def test_relative_churn_reduction_interval_covers_the_truth():
    """The churn_reduction interval (Katz log relative risk) covers 1 - churn_t / churn_c."""
    from churnml.readout import _churn_reduction

    base, eff = SEGMENTS["Save now"]
    truth = 1 - (1 - base - eff) / (1 - base)
    (x1, n1, x0, n0), = [_experiment(600, 200, 0.3, seed=11)["Save now"]]
    hits = [lo <= truth <= hi for lo, hi in (_churn_reduction(a, b, c, d)[1:] for a, b, c, d in zip(x1, n1, x0, n0))]
    assert 0.92 <= np.mean(hits) <= 0.98


def _outcomes_frame(seed=3, n=3000):
    rng = np.random.default_rng(seed)
    seg = rng.choice(list(SEGMENTS), n)
    ctrl = rng.uniform(size=n) < 0.3
    base = np.array([SEGMENTS[s][0] for s in seg])
    eff = np.array([SEGMENTS[s][1] for s in seg])
    y = rng.uniform(size=n) < np.where(ctrl, base, base + eff)
    spend = np.where(y, rng.gamma(2.0, 40.0, n) + np.where(ctrl, 0, 10), 0.0)
    return pd.DataFrame({"arm": np.where(ctrl, "holdout", "mailed"), "bought": y.astype(int), "revenue": spend, "seg": seg})


def test_readout_numbers_match_hand_computation_and_verdicts():
    df = _outcomes_frame()
    o = outcomes_table(df, group_column="arm", treatment="mailed", control="holdout", outcome="bought", value="revenue", segment="seg")
    r = readout(o, n_boot=500).set_index(["level", "name"])
    t, c = df[df.arm == "mailed"], df[df.arm == "holdout"]
    row = r.loc[("overall", "all")]
    assert row["n_treatment"] == len(t) and row["n_control"] == len(c)
    d = t.bought.mean() - c.bought.mean()
    assert row["retention_diff"] == pytest.approx(d)
    assert row["incremental_retained"] == pytest.approx(d * len(t))
    assert row["spend_diff"] == pytest.approx(t.revenue.mean() - c.revenue.mean())
    assert row["spend_diff_low"] < row["spend_diff"] < row["spend_diff_high"]
    assert row["churn_reduction"] == pytest.approx(1 - (1 - t.bought.mean()) / (1 - c.bought.mean()))
    # Save now: +12 pp on ~700 treated / ~300 control: significant; Grow: no effect
    assert r.loc[("segment", "Save now"), "verdict"] == "significant increase"
    # built cases for the other verdicts: equal rates (200/400 in both arms) and a wide interval (20/50 vs 20/50)
    def arms(x1, n1, x0, n0):
        return pd.DataFrame({"group": ["treatment"] * n1 + ["control"] * n0, "arm_action": "all", "segment": "all",
                             "retained": [1] * x1 + [0] * (n1 - x1) + [1] * x0 + [0] * (n0 - x0)})
    assert readout(arms(200, 400, 200, 400)).loc[0, "verdict"] == "not significant"
    assert readout(arms(20, 50, 20, 50)).loc[0, "verdict"] == "too small to tell (interval wider than 20 pp)"
    assert readout(arms(150, 400, 200, 400)).loc[0, "verdict"] == "significant decrease"
    small = readout(o.iloc[:40], n_boot=100)
    assert small.loc[0, "verdict"] == "too small to tell (n < 30 per arm)"


def test_bootstrap_spend_interval_covers_the_true_difference():
    """Spend: treated spend +10 on retained customers; the bootstrap interval covers the true mean difference."""
    hits = []
    for seed in range(40):
        rng = np.random.default_rng(seed)
        n = 400
        ctrl = rng.uniform(size=n) < 0.5
        y = rng.uniform(size=n) < 0.5
        spend = np.where(y, rng.gamma(2.0, 40.0, n) + np.where(ctrl, 0, 10), 0.0)
        o = pd.DataFrame({"group": np.where(ctrl, "control", "treatment"), "arm_action": "all", "segment": "all",
                          "retained": y.astype(int), "spend": spend})
        row = readout(o, n_boot=400, seed=seed).iloc[0]
        hits.append(row["spend_diff_low"] <= 5.0 <= row["spend_diff_high"])  # true difference: 0.5 x 10
    assert np.mean(hits) >= 0.85  # 40 runs: sd of the coverage 3.4 pp; 85% is 3 sd below 95%


def test_bad_outcomes_tables_are_data_errors():
    df = _outcomes_frame(n=200)
    with pytest.raises(DataError, match="--control 'ctrl' is not a value of column arm"):
        outcomes_table(df, group_column="arm", treatment="mailed", control="ctrl", outcome="bought", source="x.csv")
    with pytest.raises(DataError, match=r"x.csv: missing column\(s\) \['nope'\]"):
        outcomes_table(df, group_column="arm", treatment="mailed", control="holdout", outcome="nope", source="x.csv")
    with pytest.raises(DataError, match="column revenue must be 0/1"):
        outcomes_table(df, group_column="arm", treatment="mailed", control="holdout", outcome="revenue", source="x.csv")


def test_plan_outcomes_window_and_errors():
    plan = pd.DataFrame({"customer_id": ["a", "b", "c", "d"], "group": ["treatment", "treatment", "control", "control"],
                         "action": ["call", "mail", "none", "none"], "planned_action": ["call", "mail", "call", "mail"],
                         "segment": ["S", "S", "S", "T"]})
    tx = pd.DataFrame({"customer_id": ["a", "a", "b", "c", "d"],
                       "timestamp": pd.to_datetime(["2024-01-05", "2024-02-01", "2023-12-31", "2024-03-31", "2024-04-01"]),
                       "amount": [10.0, -4.0, 99.0, 7.0, 50.0], "is_return": [False, True, False, False, False]})
    o = plan_outcomes(plan, tx, "2024-01-01", 91).set_index("customer_id")  # window 2024-01-01 .. 2024-03-31
    assert o["retained"].tolist() == [1, 0, 1, 0]
    assert o["spend"].tolist() == [6.0, 0.0, 7.0, 0.0]
    assert o["arm_action"].tolist() == ["call", "mail", "call", "mail"]
    with pytest.raises(DataError, match="before the campaign start 2025-01-01"):
        plan_outcomes(plan, tx, "2025-01-01", 90)
    with pytest.raises(DataError, match="no 'control' rows"):
        plan_outcomes(plan.iloc[:2], tx, "2024-01-01", 90)
    with pytest.raises(DataError, match=r"missing column\(s\) \['planned_action'\]"):
        plan_outcomes(plan.drop(columns="planned_action"), tx, "2024-01-01", 90)
