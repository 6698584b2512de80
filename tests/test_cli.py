from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import churnml
from churnml.cli import app
from conftest import local_sample_config

REPO = Path(__file__).resolve().parents[1]
SAMPLE = str(REPO / "configs" / "cdnow_sample.yaml")
runner = CliRunner()
COMMANDS = ["validate", "features", "rfm", "run", "backtest", "train", "promote", "export", "audit"]


def test_version():
    res = runner.invoke(app, ["--version"])
    assert res.exit_code == 0 and res.output.strip() == f"churnml {churnml.__version__}"


@pytest.mark.parametrize("cmd", COMMANDS)
def test_every_command_has_help_and_the_shared_flags(cmd):
    res = runner.invoke(app, [cmd, "--help"])
    assert res.exit_code == 0
    for flag in ["--config", "--transactions", "--tracking-uri", "--model-name"]:
        assert flag in res.output


def test_console_script_runs_in_a_subprocess():
    exe = shutil.which("churnml") or str(Path(sys.executable).parent / "churnml")
    out = subprocess.run([exe, "--help"], capture_output=True, text=True, check=True).stdout
    for cmd in COMMANDS:
        assert cmd in out


@pytest.mark.slow
def test_run_main_job_on_bundled_sample(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    local = local_sample_config(tmp_path)
    res = runner.invoke(app, ["run", "--config", local, "--out-dir", str(tmp_path / "out")])
    assert res.exit_code == 0, res.output
    out = tmp_path / "out"
    snap = pd.read_parquet(out / "customers.parquet")
    assert len(snap) == 2357
    assert snap["rfm_segment"].isin(["Champions", "Lost", "At Risk", "Loyal Customers"]).any()
    assert (snap["as_of"] == pd.Timestamp("1998-07-01")).all()
    for col in ["churn_probability", "p_alive", "expected_purchases", "expected_avg_spend", "predicted_clv",
                "value_if_retained", "value_at_risk"]:
        assert np.isfinite(snap[col]).all(), col
    # churn counted once: value at risk = P(churn) x the value kept if the customer stays
    assert ((snap["value_at_risk"] - snap["churn_probability"] * snap["value_if_retained"]).abs() < 1e-9).all()
    assert snap["churn_probability"].between(0, 1, inclusive="neither").all()
    assert (snap["segment"] == "Save now").sum() > 0
    assert snap.loc[snap["n_purchases"] == 1, "p_alive"].max() < 1.0  # one-time buyers: the model's P(alive)
    seg = pd.read_csv(out / "rfm_segments.csv", index_col=0)
    assert seg["customers"].sum() == 2357
    report = json.loads((out / "run_report.json").read_text())
    assert report["load_report"]["customers"] == 2357 and report["customers_in_scope"] == 2357
    from churnml.value import CANDIDATES

    assert report["value_model"] in CANDIDATES
    assert set(report["value_backtest"]["metrics"]) == {"naive", "btyd", "ml", "blend", "past_spend", "recent_spend", "hybrid"}
    assert set(report["churn_backtest"]) == {"model", "recency", "logistic_rfm", "btyd"}
    assert report["mlflow"]["registered_uri"] == "models:/churnml@challenger"
    assert (tmp_path / "mlflow.db").is_file()  # the embedded store in the config's folder
    assert sorted(p.name for p in out.iterdir()) == [
        "at_risk.xlsx", "churn_backtest.csv", "clv", "customers.parquet", "customers.parquet.meta.json", "report.html",
        "rfm_segments.csv", "run_report.json", "value_backtest.csv",
    ]
    assert sorted(p.name for p in (out / "clv").iterdir()) == [
        "clv_calibration_holdout.png", "clv_p_alive.png", "clv_summary.json", "clv_tracking.png"
    ]
    # the two README commands end with something marketing opens: the at-risk list and the report
    lst = pd.read_excel(out / "at_risk.xlsx", dtype={"Customer ID": str})
    high = snap.loc[snap["risk_tier"] == "high"]
    # output.at_risk_top, by value at risk, ties broken by customer id as the list does
    top = high.astype({"customer_id": str}).sort_values(
        ["value_at_risk", "customer_id"], ascending=[False, True], kind="stable").set_index("customer_id").head(1000)
    assert len(lst) == min(len(high), 1000) > 0 and lst["Customer ID"].tolist() == top.index.tolist()
    assert lst["Value at risk"].is_monotonic_decreasing
    page = (out / "report.html").read_text()
    # the report's at-risk table: the workbook's customers in the workbook's order
    import re

    rows = json.loads(re.search(r'<script id="data" type="application/json">(.*?)</script>', page, re.S).group(1))["rows"]
    assert [str(r[0]) for r in rows] == lst["Customer ID"].tolist()
    # `run` writes the table shape of `churnml score`: customer_id a column, the score columns first
    from churnml.scoring import OUTPUT_COLUMNS

    assert list(snap.columns[: len(OUTPUT_COLUMNS)]) == OUTPUT_COLUMNS
    assert report["audit"]["status"] and set(report["audit"]["status"]) >= {"reasons", "p_alive", "clv_history"}
    # the audit alone gives the run's verdict again
    res_a = runner.invoke(app, ["audit", "--scores", str(out / "customers.parquet"), "--config", local])
    assert res_a.exit_code == (0 if report["audit"]["ok"] else 3), res_a.output
    assert "decisions audit:" in res_a.output
    assert "Risk tiers: absolute churn probability" in page and "no purchase in the next 90 days" in page
    assert "at-risk list" in res.output and "report.html" in res.output
    # re-running is safe and gives the same scores (fixed seeds)
    res2 = runner.invoke(app, ["run", "--config", local, "--out-dir", str(out)])
    assert res2.exit_code == 0
    pd.testing.assert_frame_equal(snap, pd.read_parquet(out / "customers.parquet"))


def test_features_with_cutoff_and_transactions_override(tmp_path):
    tx = tmp_path / "tx.csv"
    tx.write_text("customer_id,timestamp,amount\na,2024-01-01,10\na,2024-02-01,20\nb,2024-03-01,5\n")
    out = tmp_path / "f.csv"
    res = runner.invoke(app, ["features", "--transactions", str(tx), "--cutoff", "2024-02-15", "--out", str(out)])
    assert res.exit_code == 0, res.output
    f = pd.read_csv(out, index_col="customer_id")
    assert f.index.tolist() == ["a"] and f.loc["a", "n_purchases"] == 2


def test_rfm_command_weeks(tmp_path):
    out = tmp_path / "rfm.parquet"
    res = runner.invoke(app, ["rfm", "--config", SAMPLE, "--freq", "D", "--freq-multiplier", "7", "--out", str(out)])
    assert res.exit_code == 0, res.output
    s = pd.read_parquet(out)
    assert len(s) == 2357 and s["T"].max() < 79


def _bad_tx(tmp_path):
    tx = tmp_path / "bad.csv"
    tx.write_text("customer_id,timestamp,amount\na,2024-01-01,10\nb,yesterday,20\n")
    return tx


def test_bad_input_exits_2_with_message_and_no_partial_output(tmp_path):
    out = tmp_path / "f.parquet"
    res = runner.invoke(app, ["features", "--transactions", str(_bad_tx(tmp_path)), "--out", str(out)])
    assert res.exit_code == 2
    assert "line 3" in res.output and "yesterday" in res.output and "bad.csv" in res.output
    assert "Traceback" not in res.output
    assert list(tmp_path.iterdir()) == [tmp_path / "bad.csv"]


@pytest.mark.slow
def test_run_bad_input_leaves_previous_output_untouched(tmp_path):
    good = runner.invoke(app, ["run", "--config", SAMPLE, "--no-track", "--out-dir", str(tmp_path / "out")])
    assert good.exit_code == 0
    def files():
        return {str(p): p.read_bytes() for p in sorted((tmp_path / "out").rglob("*")) if p.is_file()}

    before = files()
    assert len(before) == 12  # scores + sidecar, list, report, segments, backtests, run report, 4 CLV files
    res = runner.invoke(app, ["run", "--config", SAMPLE, "--no-track", "--transactions", str(_bad_tx(tmp_path)), "--out-dir", str(tmp_path / "out")])
    assert res.exit_code == 2
    assert files() == before


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--cutoff", "1990-01-01"], "on or before the first transaction"),
        (["--cutoff", "not-a-date"], "not a date"),
        (["--transactions", "/nonexistent/tx.csv"], "file not found"),
    ],
)
def test_other_bad_inputs_exit_2(tmp_path, args, needle):
    res = runner.invoke(app, ["run", "--config", SAMPLE, "--no-track", "--out-dir", str(tmp_path), *args])
    assert res.exit_code == 2, res.output
    assert needle in res.output


def test_unknown_config_key_exits_2(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("data:\n  transaction: x.csv\n")
    res = runner.invoke(app, ["validate", "--config", str(cfg)])
    assert res.exit_code == 2 and "unknown key 'data.transaction'" in res.output


def test_validate_prints_load_report():
    res = runner.invoke(app, ["validate", "--config", SAMPLE])
    assert res.exit_code == 0
    assert "rows_read" in res.output and "6919" in res.output
