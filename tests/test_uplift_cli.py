"""`churnml uplift` trains on a past randomised campaign; `churnml campaign --uplift-model` then
targets by expected incremental value and, on simulated customers with a known true effect,
keeps more true incremental value than risk x value targeting at the same budget."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from churnml.cli import app
from churnml.datasets import CAMPAIGN_TRUTH, simulate_campaign
from churnml.segments import assign_segments

runner = CliRunner()


def _experiment(n: int, seed: int) -> pd.DataFrame:
    """A past campaign as an outside team would hand it over: arm labels, outcome, post-campaign spend."""
    d = simulate_campaign(n, seed=seed).rename(columns={"segment": "cohort"})
    d["arm"] = np.where(d.pop("treatment") == 1, "mailed", "holdout")
    return d


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    folder = tmp_path_factory.mktemp("uplift_cli")
    past = _experiment(12000, seed=11)
    past.drop(columns=list(CAMPAIGN_TRUTH)).to_csv(folder / "past.csv", index=False)
    out = folder / "uplift.joblib"
    res = runner.invoke(app, ["uplift", "--experiment", str(folder / "past.csv"), "--group-column", "arm", "--treatment", "mailed",
                              "--control", "holdout", "--outcome", "retained", "--exclude", "spend", "--out", str(out)])
    assert res.exit_code == 0, res.output
    return folder, out, res


def test_uplift_command_trains_and_reports_held_out_qini(model):
    folder, out, res = model
    meta = json.loads((folder / "uplift.joblib.meta.json").read_text())
    assert meta["learner"] == "XLearner" and "spend" not in meta["features"] and "cohort" in meta["features"]
    assert meta["n_test"] > 3000 and meta["held_out_metrics"]["qini"] > 0.03  # random targeting: about 0
    assert "Qini coefficient" in res.output and "--uplift-model" in res.output


def test_uplift_command_refuses_bad_tables(model, tmp_path):
    folder, _, _ = model
    bad = pd.read_csv(folder / "past.csv")
    bad.loc[:4, "arm"] = "email"
    bad.to_csv(tmp_path / "bad.csv", index=False)
    res = runner.invoke(app, ["uplift", "--experiment", str(tmp_path / "bad.csv"), "--group-column", "arm", "--treatment", "mailed",
                              "--control", "holdout", "--outcome", "retained", "--out", str(tmp_path / "u.joblib")])
    assert res.exit_code == 2 and "'email'" in res.output and not (tmp_path / "u.joblib").exists()
    res = runner.invoke(app, ["uplift", "--experiment", str(folder / "past.csv"), "--group-column", "arm", "--treatment", "mailed",
                              "--control", "holdout", "--outcome", "no_such", "--out", str(tmp_path / "u.joblib")])
    assert res.exit_code == 2 and "no_such" in res.output


def test_campaign_with_uplift_model_keeps_more_true_incremental_value(model, tmp_path):
    folder, out, _ = model
    new = _experiment(6000, seed=12)  # a new customer base (other seed); the truth stays with the test
    v = new["value_if_retained"]
    scores = pd.DataFrame({
        "customer_id": new["customer_id"], "as_of": pd.Timestamp("2024-06-01"),
        "churn_probability": new["churn_probability"], "value_if_retained": v, "predicted_clv": v * (1 - new["churn_probability"]),
        "value_at_risk": new["churn_probability"] * v,
        **{c: new[c] for c in ("cohort", "tenure_days", "recency_days", "n_purchases", "avg_order_value")},
    })
    scores = assign_segments(scores)
    scores.to_parquet(tmp_path / "scores.parquet")
    budget = 6000 * 8 * 0.3  # a personalised offer (cost 8) for about 30% of the customers

    def true_value(plan_path):
        plan = pd.read_csv(plan_path, dtype={"customer_id": str})
        treated = plan.loc[plan["group"] == "treatment", "customer_id"]
        truth = new.set_index("customer_id").loc[treated]
        return float((truth["true_uplift"] * truth["value_if_retained"]).sum()), len(treated), float(plan.loc[plan["group"] == "treatment", "cost"].sum())

    risk = runner.invoke(app, ["campaign", "--scores", str(tmp_path / "scores.parquet"), "--budget", str(budget),
                               "--out", str(tmp_path / "risk.csv")])
    assert risk.exit_code == 0, risk.output
    up = runner.invoke(app, ["campaign", "--scores", str(tmp_path / "scores.parquet"), "--budget", str(budget),
                             "--uplift-model", str(out), "--out", str(tmp_path / "uplift.csv")])
    assert up.exit_code == 0, up.output
    assert "targeting by XLearner uplift" in up.output
    v_risk, n_risk, c_risk = true_value(tmp_path / "risk.csv")
    v_up, n_up, c_up = true_value(tmp_path / "uplift.csv")
    assert c_up <= budget + 1e-6 and c_risk <= budget + 1e-6
    # the same money buys clearly more true incremental value when targeted by estimated uplift
    assert v_up > 1.2 * v_risk, (v_up, v_risk, n_up, n_risk)
    # customers the model expects to react badly (new customers: contact drives them away) are left alone
    def hurt(plan_path):  # share of the treated whom contact drives away, by the simulation's truth
        plan = pd.read_csv(plan_path, dtype={"customer_id": str})
        treated = new.set_index("customer_id").loc[plan.loc[plan["group"] == "treatment", "customer_id"]]
        return float((treated["true_uplift"] < -0.02).mean())

    assert hurt(tmp_path / "uplift.csv") < 0.5 * hurt(tmp_path / "risk.csv"), (hurt(tmp_path / "uplift.csv"), hurt(tmp_path / "risk.csv"))


def test_campaign_uplift_model_errors(tmp_path, model):
    folder, out, _ = model
    scores = pd.DataFrame({"customer_id": ["a", "b"], "as_of": pd.Timestamp("2024-06-01"), "churn_probability": [0.5, 0.6],
                           "value_if_retained": [100.0, 50.0], "predicted_clv": [50.0, 20.0], "value_at_risk": [50.0, 30.0]})
    assign_segments(scores).to_parquet(tmp_path / "s.parquet")
    res = runner.invoke(app, ["campaign", "--scores", str(tmp_path / "s.parquet"), "--budget", "100", "--uplift-model", str(out),
                              "--out", str(tmp_path / "p.csv")])
    assert res.exit_code == 3 and "recency_days" in res.output and not (tmp_path / "p.csv").exists()
    res = runner.invoke(app, ["campaign", "--scores", str(tmp_path / "s.parquet"), "--budget", "100", "--uplift-model",
                              str(tmp_path / "missing.joblib"), "--out", str(tmp_path / "p.csv")])
    assert res.exit_code == 3 and "not found" in res.output
