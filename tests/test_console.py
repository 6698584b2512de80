"""The console a scheduled job's operator reads: each finding once, one line, no library chatter."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from churnml.cli import app
from churnml.datasets import load_cdnow

pytestmark = pytest.mark.slow  # integration tests of minutes: `bash scripts/test.sh --all` (CI) runs them

runner = CliRunner()


@pytest.fixture(scope="module")
def job(tmp_path_factory):
    """`churnml run` with MLflow tracking on the CDNOW sample where 5% of the orders are free
    (amount 0): no returns at all, but repeat customers whose average spend is 0."""
    folder = tmp_path_factory.mktemp("console")
    tx = load_cdnow("sample").rename(columns={"date": "timestamp", "dollar_value": "amount"})[["customer_id", "timestamp", "amount"]]
    rng = np.random.default_rng(0)
    tx.loc[rng.random(len(tx)) < 0.05, "amount"] = 0.0
    # a few repeat customers who only ever got free orders
    free = tx["customer_id"].value_counts().index[-40:]
    tx.loc[tx["customer_id"].isin(free), "amount"] = 0.0
    tx.to_csv(folder / "tx.csv", index=False)
    (folder / "cfg.yaml").write_text(textwrap.dedent(f"""
        data: {{transactions: {folder / 'tx.csv'}}}
        churn: {{horizon_days: 90, n_estimators: 200}}
        mlflow: {{tracking_uri: "sqlite:///{folder / 'mlflow.db'}", model_name: console}}
        output: {{dir: {folder / 'out'}}}
    """))
    res = runner.invoke(app, ["run", "--config", str(folder / "cfg.yaml")])
    assert res.exit_code == 0, res.output
    return folder, res


def test_each_warning_once_and_no_library_chatter(job):
    folder, res = job
    err = res.stderr
    lines = [x for x in err.splitlines() if x.startswith("warning")]
    assert len(lines) == len(set(lines)), err
    assert sum("spend <= 0" in x for x in lines) <= 1
    # MLflow's CloudPickle warning, its INFO lines and its registry prints do not reach the console
    for noise in ("CloudPickle", "Validating input example", "Registered model", "Created version", "mlflow.pyfunc"):
        assert noise not in res.output, noise
    # warnings are one line each: no source-code lines echoed after them
    assert "clv_model_from_config(" not in res.output and ".py:" not in err


def test_drift_warning_printed_once(job, tmp_path):
    folder, _ = job
    tx = pd.read_csv(folder / "tx.csv", dtype={"customer_id": str})
    tx["amount"] = tx["amount"] * 25  # prices moved: spend features drift
    tx.to_csv(tmp_path / "drifted.csv", index=False)
    # a real process: the structured log goes to stderr as it does for a scheduler
    proc = subprocess.run(
        [sys.executable, "-m", "churnml", "score", "--config", str(folder / "cfg.yaml"), "--transactions",
         str(tmp_path / "drifted.csv"), "--model", "models:/console@challenger", "--out", str(tmp_path / "s.csv")],
        capture_output=True, text=True, timeout=600, cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.count("feature drift since training") == 1, proc.stderr
    assert "avg_order_value" in proc.stderr
