"""The batch-scoring job end to end: train, score by alias in a fresh process, lists, plan, failures."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import joblib
import pandas as pd
import pytest

from churnml.scoring import OUTPUT_COLUMNS
from conftest import local_sample_config

pytestmark = pytest.mark.slow  # integration tests of minutes: `bash scripts/test.sh --all` (CI) runs them

REPO = Path(__file__).resolve().parents[1]
SAMPLE = str(REPO / "configs" / "cdnow_sample.yaml")


def cli(*args, cwd, env=None, check=False):
    """Run the churnml CLI in a fresh process."""
    e = {**os.environ, **(env or {})}
    e.pop("MLFLOW_TRACKING_URI", None) if "MLFLOW_TRACKING_URI" not in (env or {}) else None
    res = subprocess.run([sys.executable, "-m", "churnml.cli", *args], cwd=cwd, env=e, capture_output=True, text=True, timeout=600)
    if check and res.returncode != 0:
        raise AssertionError(f"churnml {' '.join(args)} failed ({res.returncode}):\n{res.stdout}\n{res.stderr}")
    return res


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    w = tmp_path_factory.mktemp("scoring")
    cli("train", "--config", local_sample_config(w), "--model-name", "e2e", cwd=w, check=True)
    return w


@pytest.fixture(scope="module")
def scored(work):
    res = cli("score", "--config", str(work / "cdnow_sample.yaml"), "--model", "models:/e2e@challenger", "--out", "scores.parquet", cwd=work, check=True)
    return work / "scores.parquet", res


def test_score_by_alias_in_a_fresh_process(scored):
    path, res = scored
    s = pd.read_parquet(path)
    assert list(s.columns[: len(OUTPUT_COLUMNS)]) == OUTPUT_COLUMNS
    assert len(s) == 2357 and s["customer_id"].is_unique
    assert ((s["value_at_risk"] - s["churn_probability"] * s["value_if_retained"]).abs() < 1e-9).all()
    assert s["churn_probability"].between(0, 1).all() and s["p_alive"].between(0, 1).all()
    assert (s["model_version"] == "e2e/1").all() and (s["as_of"] == pd.Timestamp("1998-07-01")).all()
    assert set(s["risk_tier"]) == {"low", "medium", "high"} and s["segment"].notna().all()
    assert s["reasons"].str.len().gt(0).all() and s["rfm_segment"].notna().all()
    meta = json.loads(path.with_name(path.name + ".meta.json").read_text())
    assert meta["model_version"] == "e2e/1" and meta["rows"]["customers_scored"] == 2357
    assert meta["data"]["last_transaction"].startswith("1998-06-30") and "score_s" in meta["timings"]
    assert "event=score.done" in res.stderr  # structured log lines


def test_lists_and_plan_from_scores(scored, work):
    path, _ = scored
    cli("at-risk", "--scores", str(path), "--top", "100", "--out", "list.csv", cwd=work, check=True)
    lst = pd.read_csv(work / "list.csv", dtype={"Customer ID": str})
    assert len(lst) == 100 and lst["Value at risk"].is_monotonic_decreasing
    assert {"Customer ID", "Churn probability", "Predicted value", "Value at risk", "Risk drivers"} <= set(lst.columns)
    cli("at-risk", "--scores", str(path), "--segment", "VIP", "--segment", "Grow", "--min-value", "5", "--out", "list.xlsx",
        cwd=work, check=True)
    xl = pd.read_excel(work / "list.xlsx")
    assert set(xl["Segment"]) <= {"VIP", "Grow"} and (xl["Value if retained"] >= 5).all()
    # formatted for people: %, thousands separators, rounded values, a filter, a frozen header,
    # readable action names
    from openpyxl import load_workbook

    ws = load_workbook(work / "list.xlsx").active
    head = {c.value: c.column_letter for c in ws[1]}
    assert ws.freeze_panes == "A2" and ws.auto_filter.ref == f"A1:{ws.cell(1, ws.max_column).column_letter}{len(xl) + 1}"
    assert ws[f"{head['Churn probability']}2"].number_format == "0.0%"
    assert ws[f"{head['Value at risk']}2"].number_format == "#,##0.00"
    assert (xl["Value at risk"].round(2) == xl["Value at risk"]).all()
    assert ws.column_dimensions[head["Risk drivers"]].width > 30
    assert not xl["Recommended action"].astype(str).str.contains("_").any()
    budget = 300.0
    res = cli("campaign", "--scores", str(path), "--budget", str(budget), "--out", "plan.csv", cwd=work, check=True)
    plan = pd.read_csv(work / "plan.csv", dtype={"customer_id": str})
    assert list(plan.columns[:5]) == ["customer_id", "group", "action", "cost", "expected_saved_value"]
    treat, control = plan[plan["group"] == "treatment"], plan[plan["group"] == "control"]
    assert treat["cost"].sum() <= budget and treat["customer_id"].is_unique
    assert set(treat["customer_id"]).isdisjoint(control["customer_id"])
    assert (control["cost"] == 0).all() and (control["action"] == "none").all()
    summary = json.loads((work / "plan.csv.summary.json").read_text())
    assert summary["cost"] == pytest.approx(treat["cost"].sum()) and summary["lp_bound"] >= summary["net_value"] - 1e-9
    assert "ROI" in res.stdout
    k = cli("kpis", "--scores", str(path), cwd=work, check=True)
    assert "churn_rate" in k.stdout and "all" in k.stdout
    assert "2,357 " in k.stdout and "2,357.000" not in k.stdout  # counts print as counts
    bad = cli("at-risk", "--scores", str(path), "--segment", "Savenow", "--out", "typo.csv", cwd=work)
    assert bad.returncode == 2 and "unknown segment(s) ['Savenow']" in bad.stderr and "'Save now'" in bad.stderr
    assert not (work / "typo.csv").exists()


def test_exported_bundle_scores_the_same(scored, work):
    path, _ = scored
    cli("export", "--model", "models:/e2e@challenger", "--out", "models/e2e.joblib", cwd=work, check=True)
    cli("score", "--config", str(work / "cdnow_sample.yaml"), "--model", "models/e2e.joblib", "--out", "scores_bundle.csv", cwd=work, check=True)
    a = pd.read_parquet(path).set_index("customer_id")
    b = pd.read_csv(work / "scores_bundle.csv", dtype={"customer_id": str}).set_index("customer_id")
    assert (a["churn_probability"] - b.loc[a.index, "churn_probability"]).abs().max() < 1e-9
    assert (b["segment"] == a.loc[b.index, "segment"]).all()


def test_killed_scorer_leaves_no_partial_output(work):
    out = work / "crash.parquet"
    res = cli("score", "--config", str(work / "cdnow_sample.yaml"), "--model", "models:/e2e@challenger", "--out", str(out), cwd=work,
              env={"CHURNML_FAULT": "kill-before-rename"})
    assert res.returncode == -9  # SIGKILL while writing
    assert not out.exists()
    # with an older result in place, a killed run leaves it as it was
    out.write_bytes(b"old")
    res = cli("score", "--config", str(work / "cdnow_sample.yaml"), "--model", "models:/e2e@challenger", "--out", str(out), cwd=work,
              env={"CHURNML_FAULT": "kill-before-rename"})
    assert res.returncode == -9 and out.read_bytes() == b"old"
    # the next run replaces it and cleans up what the killed runs left behind
    cli("score", "--config", str(work / "cdnow_sample.yaml"), "--model", "models:/e2e@challenger", "--out", str(out), cwd=work, check=True)
    assert len(pd.read_parquet(out)) == 2357
    assert not list(work.glob(".crash.parquet.*.tmp"))


@pytest.mark.parametrize(
    ("case", "code", "needle"),
    [
        ("missing_column", 2, "missing column"),
        ("empty", 2, "empty"),
        ("future", 2, "in the future"),
        ("no_model", 3, "model bundle not found"),
        ("wrong_model", 3, "not a churnml model"),
        ("unknown_alias", 3, "cannot load model"),
    ],
)
def test_bad_inputs_exit_codes(work, tmp_path, case, code, needle):
    args = ["score", "--config", str(work / "cdnow_sample.yaml"), "--model", "models:/e2e@challenger", "--out", str(tmp_path / "s.parquet"),
            "--tracking-uri", f"sqlite:///{work / 'mlflow.db'}"]  # the other configs' default stores are elsewhere
    if case == "missing_column":
        bad = tmp_path / "tx.csv"
        bad.write_text("cust,date,dollar_value\n1,2024-01-01,3\n")
        args[2] = str(REPO / "configs" / "cdnow.yaml")
        args += ["--transactions", str(bad)]
    elif case == "empty":
        bad = tmp_path / "tx.csv"
        bad.write_text("")
        args[2] = str(REPO / "configs" / "cdnow.yaml")
        args += ["--transactions", str(bad)]
    elif case == "future":
        args += ["--as-of", "2005-01-01"]  # after the CDNOW sample ends (1998), inside the plausible window
    elif case == "no_model":
        args[4] = str(tmp_path / "nope.joblib")
    elif case == "wrong_model":
        joblib.dump({"not": "a model"}, tmp_path / "other.joblib")
        args[4] = str(tmp_path / "other.joblib")
        args.append("--trust-unverified")  # no digest: get past the bundle check to the type check
    elif case == "unknown_alias":
        args[4] = "models:/e2e@nonexistent"
    res = cli(*args, cwd=work)
    assert res.returncode == code, res.stderr
    assert needle in res.stderr and "Traceback" not in res.stderr
    assert not (tmp_path / "s.parquet").exists()


def test_model_refuses_data_without_its_feature_schema(tmp_path, shared_data):
    """Trained with the apparel customer attributes; scoring without them is a model problem."""
    cfg = REPO / "configs" / "apparel.yaml"
    store = ["--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}"]  # one store for configs in different folders
    cli("train", "--config", str(cfg), "--model-name", "app", *store, cwd=tmp_path, check=True)
    no_attrs = tmp_path / "noattrs.yaml"
    no_attrs.write_text(
        "data:\n  transactions: " + str(shared_data / "apparel" / "apparelTrans.csv")
        + "\n  columns: {customer_id: Id, timestamp: Date, amount: Price}\n"
    )
    res = cli("score", "--config", str(no_attrs), "--model", "models:/app@challenger", "--out", "s.csv", *store, cwd=tmp_path)
    assert res.returncode == 3 and "feature schema" in res.stderr and "Gender" in res.stderr
    ok = cli("score", "--config", str(cfg), "--model", "models:/app@challenger", "--out", "s.csv", *store, cwd=tmp_path, check=True)
    assert "scored 600 customers" in ok.stdout


def test_sanity_gate_blocks_absurd_numbers_and_notes_p_alive_one():
    """What a scheduled job must never write: a NaN, a churn probability of exactly 1, a CLV
    1e18 against a spend of 50 a year. P(alive) = 1 (no visible dropout) is only a note."""
    import numpy as np

    from churnml.config import Config
    from churnml.scoring import sanity_problems
    from churnml.segments import assign_segments

    n = 200
    rng = np.random.default_rng(0)
    p = rng.uniform(0.05, 0.95, n)
    v = rng.gamma(2, 20, n)
    base = pd.DataFrame({
        "customer_id": [f"c{i}" for i in range(n)], "as_of": pd.Timestamp("2024-01-01"),
        "churn_probability": p, "p_alive": rng.uniform(0.1, 0.9, n), "expected_purchases": rng.gamma(2, 1, n),
        "predicted_clv": v * (1 - p), "value_if_retained": v, "value_at_risk": p * v,
        "n_purchases": rng.integers(1, 10, n).astype(float), "tenure_days": rng.uniform(60, 700, n),
        "net_spend": rng.gamma(2, 40, n),
    })
    base = assign_segments(base, Config().segments)
    assert sanity_problems(base, Config()) == ([], [])
    bad = base.copy()
    bad.loc[3, "predicted_clv"] = np.nan
    bad.loc[4, "churn_probability"] = 1.0
    bad.loc[4, "value_at_risk"] = bad.loc[4, "value_if_retained"]
    bad.loc[5, "predicted_clv"] = 1e18
    blocking, notes = sanity_problems(bad, Config())
    text = "\n".join(blocking)
    assert "predicted_clv: 1 of 200 customers have a non-finite value" in text and "c3" in text
    assert "churn_probability: exactly 1" in text and "c4" in text
    assert "predicted_clv: 1 of 200 customers above 50x" in text and "c5" in text
    alive = base.assign(p_alive=1.0)
    blocking, notes = sanity_problems(alive, Config())
    assert blocking == [] and any(n.startswith("p_alive: exactly 1") for n in notes)
