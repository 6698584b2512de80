"""MLflow: embedded store, registry alias, pyfunc in a fresh process, promote, export, server."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from churnml.cli import app

REPO = Path(__file__).resolve().parents[1]
SAMPLE = str(REPO / "configs" / "cdnow_sample.yaml")
runner = CliRunner()


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Train once on the bundled CDNOW sample with the embedded store in a fresh folder."""
    work = tmp_path_factory.mktemp("mlflow_embedded")
    old = Path.cwd()
    os.chdir(work)
    env_uri = os.environ.pop("MLFLOW_TRACKING_URI", None)
    try:
        res = runner.invoke(app, ["train", "--config", SAMPLE, "--model-name", "churnml-test"])
    finally:
        os.chdir(old)
        if env_uri:
            os.environ["MLFLOW_TRACKING_URI"] = env_uri
    assert res.exit_code == 0, res.output
    return work, res.output


def _client(work):
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=f"sqlite:///{work / 'mlflow.db'}", registry_uri=f"sqlite:///{work / 'mlflow.db'}")


def test_train_logs_everything_to_the_embedded_store(trained):
    work, output = trained
    assert (work / "mlflow.db").is_file() and (work / "mlruns").is_dir()
    assert "models:/churnml-test@challenger" in output.strip().splitlines()
    client = _client(work)
    mv = client.get_model_version_by_alias("churnml-test", "challenger")
    run = client.get_run(mv.run_id)
    p, m = run.data.params, run.data.metrics
    assert p["churn.horizon_days"] == "90" and "no purchase" in p["label"] and p["train_cutoffs"]
    assert {"model_roc_auc_mean", "btyd_roc_auc_mean", "recency_roc_auc_mean", "logistic_rfm_roc_auc_mean", "model_ece_mean"} <= set(m)
    assert m["customers_in_scope"] == 2357
    history = client.get_metric_history(run.info.run_id, "model_roc_auc")
    assert sorted(h.step for h in history) == [0, 1]  # one value per backtest cutoff
    assert run.data.tags["data.first"].startswith("1997-01-01")
    arts = {a.path for a in client.list_artifacts(run.info.run_id, "plots")}
    assert {"plots/roc.png", "plots/pr.png", "plots/calibration.png", "plots/lift.png", "plots/feature_importance.png"} <= arts
    assert {a.path for a in client.list_artifacts(run.info.run_id, "backtest")} >= {"backtest/backtest.csv", "backtest/backtest.json"}
    assert "clv/clv_tracking.png" in {a.path for a in client.list_artifacts(run.info.run_id, "clv")}
    import mlflow

    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{work / 'mlflow.db'}"
    try:
        model_info = mlflow.models.get_model_info("models:/churnml-test@challenger")
    finally:
        os.environ.pop("MLFLOW_TRACKING_URI")
    assert [c["name"] for c in model_info.signature.inputs.to_dict()] == ["customer_id", "timestamp", "amount"]
    assert "churn_probability" in [c["name"] for c in model_info.signature.outputs.to_dict()]


_SCORE = """
import sys, mlflow, pandas as pd
from churnml.datasets import load_cdnow
tx = load_cdnow("sample").rename(columns={"date": "timestamp", "dollar_value": "amount"})[["customer_id", "timestamp", "amount"]]
model = mlflow.pyfunc.load_model(sys.argv[1])
out = model.predict(tx, params={"as_of": "1998-07-01"})
out.to_csv(sys.argv[2], index=False)
"""


def test_registered_model_scores_in_a_fresh_process(trained, tmp_path):
    work, _ = trained
    out = tmp_path / "scores.csv"
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{work / 'mlflow.db'}"}
    subprocess.run([sys.executable, "-c", _SCORE, "models:/churnml-test@challenger", str(out)], env=env, check=True,
                   capture_output=True, cwd=tmp_path, timeout=300)
    scores = pd.read_csv(out, dtype={"customer_id": str})
    assert len(scores) == 2357 and scores["customer_id"].is_unique
    assert scores["churn_probability"].between(0, 1).all()
    assert (scores["value_at_risk"] - scores["churn_probability"] * scores["predicted_clv"]).abs().max() < 1e-9
    # the same numbers as the exported bundle scored in this process
    bundle = tmp_path / "m.joblib"
    res = runner.invoke(app, ["export", "--model", "models:/churnml-test@challenger", "--out", str(bundle),
                              "--tracking-uri", f"sqlite:///{work / 'mlflow.db'}"])
    assert res.exit_code == 0, res.output
    from churnml.datasets import load_cdnow
    from churnml.io import prepare_transactions
    from churnml.tracking import load_pipeline

    pipe = load_pipeline(str(bundle))
    tx, _ = prepare_transactions(load_cdnow("sample").rename(columns={"date": "timestamp", "dollar_value": "amount"}))
    local = pipe.score(tx, "1998-07-01")
    merged = scores.set_index("customer_id").join(local[["churn_probability"]], rsuffix="_local")
    assert (merged["churn_probability"] - merged["churn_probability_local"]).abs().max() < 1e-9


def test_promote_rules(trained, monkeypatch):
    work, _ = trained
    monkeypatch.chdir(work)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    first = runner.invoke(app, ["promote", "--config", SAMPLE, "--model-name", "churnml-test"])
    assert first.exit_code == 0 and first.output.startswith("promoted: no champion yet")
    again = runner.invoke(app, ["promote", "--config", SAMPLE, "--model-name", "churnml-test"])
    assert "already the champion" in again.output
    # a second training with the same data and seed scores the same: not better, so not promoted
    res = runner.invoke(app, ["train", "--config", SAMPLE, "--model-name", "churnml-test"])
    assert res.exit_code == 0, res.output
    same = runner.invoke(app, ["promote", "--config", SAMPLE, "--model-name", "churnml-test"])
    assert same.output.startswith("not promoted") and "does not beat" in same.output
    client = _client(work)
    assert str(client.get_model_version_by_alias("churnml-test", "champion").version) == "1"
    forced = runner.invoke(app, ["promote", "--config", SAMPLE, "--model-name", "churnml-test", "--force"])
    assert forced.output.startswith("promoted") and "--force" in forced.output
    assert str(client.get_model_version_by_alias("churnml-test", "champion").version) == "2"


def test_promote_without_training_is_a_model_error(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    res = runner.invoke(app, ["promote", "--config", SAMPLE, "--model-name", "nothing-here"])
    assert res.exit_code == 3 and "run `churnml train` first" in res.output


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_training_against_a_real_mlflow_server(tmp_path):
    port = _free_port()
    mlflow_exe = Path(sys.executable).parent / "mlflow"
    server = subprocess.Popen(
        [str(mlflow_exe), "server", "--host", "127.0.0.1", "--port", str(port),
         "--backend-store-uri", f"sqlite:///{tmp_path / 'server.db'}", "--artifacts-destination", str(tmp_path / "artifacts"),
         "--workers", "1"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tmp_path,
        # the server's background job runners (GenAI jobs) are not needed to track and register
        env={**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},
    )
    uri = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{uri}/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            assert server.poll() is None, "mlflow server exited"
            assert time.time() < deadline, "mlflow server did not start in 120 s"
            time.sleep(1)
        res = runner.invoke(app, ["train", "--config", SAMPLE, "--tracking-uri", uri, "--model-name", "served"])
        assert res.exit_code == 0, res.output
        assert f"tracking URI: {uri}" in res.output
        out = tmp_path / "scores.csv"
        env = {**os.environ, "MLFLOW_TRACKING_URI": uri}
        subprocess.run([sys.executable, "-c", _SCORE, "models:/served@challenger", str(out)], env=env, check=True,
                       capture_output=True, cwd=tmp_path, timeout=300)
        assert len(pd.read_csv(out)) == 2357
        assert not (tmp_path / "mlflow.db").exists()  # nothing went to the embedded store
        assert any((tmp_path / "artifacts").rglob("pipeline.joblib"))
    finally:
        server.terminate()
        server.wait(timeout=30)
