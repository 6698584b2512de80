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


# --------------------------------------------------------------------------- end to end through the CLI

START = "2024-07-01"


def _loop(tmp_path: Path, n=3000):
    """Scores + history -> `churnml campaign` -> plan.csv -> simulated response -> transactions file."""
    import yaml
    from typer.testing import CliRunner

    from churnml.campaign_sim import simulate_customers, simulate_response
    from churnml.cli import app

    scores, before = simulate_customers(n, START, seed=0)
    scores.to_csv(tmp_path / "scores.csv", index=False)
    cfg = {"data": {"transactions": "tx.csv"}, "churn": {"horizon_days": 90},
           "campaign": {"control_share": 0.3, "seed": 5, "actions": [
               {"name": "call", "cost": 20, "churn_reduction": 0.30, "segments": ["Save now", "Protect"]},
               {"name": "mail", "cost": 2, "churn_reduction": 0.10}]}}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    runner = CliRunner()
    res = runner.invoke(app, ["campaign", "--scores", str(tmp_path / "scores.csv"), "--budget", "20000", "--config",
                              str(tmp_path / "c.yaml"), "--out", str(tmp_path / "plan.csv")])
    assert res.exit_code == 0, res.output
    plan = pd.read_csv(tmp_path / "plan.csv", dtype={"customer_id": str})
    after, truth = simulate_response(plan, START, days=90, seed=1)
    pd.concat([before, after]).to_csv(tmp_path / "tx.csv", index=False)
    return runner, app, plan, truth, res


def test_end_to_end_plan_readout_next_plan(tmp_path):
    runner, app, plan, truth, res = _loop(tmp_path)
    # power lines in the campaign output and summary
    summary = json.loads((tmp_path / "plan.csv.summary.json").read_text())
    pw = summary["power"]
    assert summary["campaign_start"] == START
    assert pw["n_control"] == (plan.group == "control").sum() and pw["n_treatment"] == (plan.group == "treatment").sum()
    p = 1 - plan.churn_probability.mean()
    assert pw["min_detectable_difference"] == pytest.approx(2.8016 * np.sqrt(p * (1 - p) * (1 / pw["n_treatment"] + 1 / pw["n_control"])), rel=1e-3)
    assert "smallest retention difference the read-out can detect" in res.output

    out = tmp_path / "readout.csv"
    r = runner.invoke(app, ["readout", "--plan", str(tmp_path / "plan.csv"), "--config", str(tmp_path / "c.yaml"), "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert "Newcombe" in r.output and "Verdict" in r.output
    table = pd.read_csv(out).set_index(["level", "name"])
    t, c = truth[truth.group == "treatment"], truth[truth.group == "control"]
    row = table.loc[("overall", "all")]
    # the read-out measures exactly the simulated outcomes (start from the plan's summary, window 90 days)
    assert row["n_treatment"] == len(t) and row["n_control"] == len(c)
    assert row["retention_treatment"] == pytest.approx(t.retained.mean())
    assert row["retention_control"] == pytest.approx(c.retained.mean())
    # and its interval covers the true average effect on the treated
    assert row["retention_diff_low"] <= t.true_effect.mean() <= row["retention_diff_high"]
    for seg in ["Save now", "Protect", "Grow"]:
        s = table.loc[("segment", seg)]
        assert s["n_treatment"] == (t.segment == seg).sum()
        assert s["retention_treatment"] == pytest.approx(t.loc[t.segment == seg, "retained"].mean())
    assert table.loc[("segment", "Save now"), "verdict"] == "significant increase"  # true +~28 pp

    # the report's read-out section: one plot with a dot and an interval per row, the verdicts
    rep = runner.invoke(app, ["report", "--scores", str(tmp_path / "scores.csv"), "--config", str(tmp_path / "c.yaml"),
                              "--readout", str(out), "--out", str(tmp_path / "report.html")])
    assert rep.exit_code == 0, rep.output
    page = (tmp_path / "report.html").read_text()
    assert "<h2>Campaign read-out</h2>" in page and page.count("<circle ") == len(table)
    save = table.loc[("segment", "Save now")]
    assert f"{save['retention_diff'] * 100:+.1f} pp [{save['retention_diff_low'] * 100:+.1f}, {save['retention_diff_high'] * 100:+.1f}]" in page

    # next plan with measured effects: lower bounds replace the guesses
    r2 = runner.invoke(app, ["campaign", "--scores", str(tmp_path / "scores.csv"), "--budget", "20000", "--config",
                             str(tmp_path / "c.yaml"), "--out", str(tmp_path / "plan2.csv"), "--effects", str(out)])
    assert r2.exit_code == 0, r2.output
    for action in ("call", "mail"):
        a = table.loc[("action", action)]
        if min(a["n_treatment"], a["n_control"]) >= 30:
            assert f"{action}: churn_reduction" in r2.output
            assert f"-> {np.clip(a['churn_reduction_low'], 0, 1):.3f}" in r2.output
    changes = json.loads((tmp_path / "plan2.csv.summary.json").read_text())["effects"]["changes"]
    assert len(changes) == 2


def test_readout_cli_outcomes_table_and_bad_input(tmp_path):
    from typer.testing import CliRunner

    from churnml.cli import app

    df = _outcomes_frame(seed=4, n=1000)
    df.to_csv(tmp_path / "exp.csv", index=False)
    runner = CliRunner()
    out = tmp_path / "r.csv"
    args = ["readout", "--outcomes", str(tmp_path / "exp.csv"), "--group-column", "arm", "--treatment", "mailed",
            "--control", "holdout", "--outcome", "bought", "--value", "revenue", "--out", str(out)]
    r = runner.invoke(app, args)
    assert r.exit_code == 0, r.output
    row = pd.read_csv(out).iloc[0]
    t, c = df[df.arm == "mailed"], df[df.arm == "holdout"]
    assert row["n_treatment"] == len(t) and row["retention_diff"] == pytest.approx(t.bought.mean() - c.bought.mean())
    assert row["incremental_value"] == pytest.approx((t.revenue.mean() - c.revenue.mean()) * len(t))
    bad = runner.invoke(app, [a if a != "holdout" else "nobody" for a in args[:-1]] + [str(tmp_path / "bad.csv")])
    assert bad.exit_code == 2 and "'nobody' is not a value of column arm" in bad.output
    assert not (tmp_path / "bad.csv").exists()


def test_readout_cli_start_after_data_is_exit_2(tmp_path):
    runner, app, plan, truth, _ = _loop(tmp_path, n=400)
    out = tmp_path / "r.csv"
    r = runner.invoke(app, ["readout", "--plan", str(tmp_path / "plan.csv"), "--config", str(tmp_path / "c.yaml"),
                            "--start", "2030-01-01", "--out", str(out)])
    assert r.exit_code == 2 and "before the campaign start 2030-01-01" in r.output
    assert not out.exists()


def test_apply_effects_is_conservative_and_keeps_unmeasured_guesses():
    from churnml.campaigns import apply_effects
    from churnml.config import ActionConfig, CampaignConfig

    cfg = CampaignConfig(actions=[ActionConfig(name=n, cost=1, churn_reduction=0.2) for n in ("a", "b", "c", "d")])
    ro = pd.DataFrame({"level": ["overall", "action", "action", "action"], "name": ["all", "a", "b", "c"],
                       "n_treatment": [500, 300, 300, 20], "n_control": [200, 100, 100, 10],
                       "churn_reduction": [0.2, 0.35, 0.02, 0.5], "churn_reduction_low": [0.1, 0.15, -0.2, 0.1]})
    new, lines = apply_effects(cfg, ro)
    got = {a.name: a.churn_reduction for a in new.actions}
    assert got == {"a": 0.15, "b": 0.0, "c": 0.2, "d": 0.2}  # measured bound; not significant -> 0; too few / absent: kept
    assert any("c: kept 0.200 (measured on too few customers" in x for x in lines)
    assert cfg.actions[0].churn_reduction == 0.2  # the input config is untouched
    with pytest.raises(DataError, match="not a churnml read-out"):
        apply_effects(cfg, ro.drop(columns="churn_reduction_low"))


def test_power_mde_hand_computed_and_warnings():
    from churnml.campaigns import power
    from churnml.config import ActionConfig, CampaignConfig

    cfg = CampaignConfig(actions=[ActionConfig(name="x", cost=1, churn_reduction=0.2)])
    plan = pd.DataFrame({"group": ["treatment"] * 400 + ["control"] * 100, "action": ["x"] * 400 + ["none"] * 100,
                         "churn_probability": 0.5})
    pw = power(plan, cfg)
    # (1.959964 + 0.841621) * sqrt(0.25 * (1/400 + 1/100)) = 0.15660
    assert pw["min_detectable_difference"] == pytest.approx(0.15660, abs=1e-4)
    assert pw["expected_effect"] == pytest.approx(0.10)
    assert "larger than the plan's expected effect 10.0 pp" in pw["warning"]
    small = power(plan.iloc[:420], cfg)  # 20 control
    assert "has 20 customers (< 30)" in small["warning"]
    big = pd.concat([plan] * 10)
    assert power(big, cfg)["warning"] is None  # MDE 5.0 pp < 10 pp


def test_plan_readout_is_calibrated_over_repeated_randomised_campaigns():
    """One plan's selected customers, the hash redrawn 200 times (control share 0.3) and the
    outcomes drawn from the known per-segment effect: readout()'s 95% retention interval covers the
    true mean effect on the treated (overall, per segment, per action) in 90-99% of runs (binomial sd
    of a 95% coverage over 200 runs: 1.5 pp; +4/-5 pp allows six rows checked at once)."""
    from churnml.campaign_sim import TRUE_REDUCTION, simulate_customers
    from churnml.campaigns import plan_campaign
    from churnml.config import ActionConfig, CampaignConfig

    scores, _ = simulate_customers(1500, START, seed=0)
    acts = [ActionConfig(name="call", cost=20, churn_reduction=0.30, segments=["Save now", "Protect"]),
            ActionConfig(name="mail", cost=2, churn_reduction=0.10)]
    plan = plan_campaign(scores, 10000, CampaignConfig(actions=acts, control_share=0.0)).plan  # everyone the rule selects
    rng = np.random.default_rng(2024)
    p = plan["churn_probability"].to_numpy()
    eff = p * plan["segment"].map(TRUE_REDUCTION).to_numpy()
    action, seg = plan["planned_action"].to_numpy(), plan["segment"].to_numpy()
    hits: dict = {}
    for _ in range(200):
        ctrl = rng.uniform(size=len(plan)) < 0.3
        retained = rng.uniform(size=len(plan)) < 1 - p + np.where(ctrl, 0.0, eff)
        o = pd.DataFrame({"group": np.where(ctrl, "control", "treatment"), "arm_action": action, "segment": seg,
                          "retained": retained.astype(int)})
        for row in readout(o, n_boot=0).itertuples():
            keep = ~ctrl & {"overall": np.ones(len(plan), bool), "segment": seg == row.name, "action": action == row.name}[row.level]
            hits.setdefault((row.level, row.name), []).append(row.retention_diff_low <= eff[keep].mean() <= row.retention_diff_high)
    cover = {k: float(np.mean(v)) for k, v in hits.items()}
    assert len(cover) == 6 and all(0.90 <= c <= 0.99 for c in cover.values()), cover
