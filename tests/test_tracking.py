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
from conftest import local_sample_config

REPO = Path(__file__).resolve().parents[1]
SAMPLE = str(REPO / "configs" / "cdnow_sample.yaml")
runner = CliRunner()


pytestmark = pytest.mark.slow  # integration tests of minutes: `bash scripts/test.sh --all` (CI) runs them

@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Train once on the bundled CDNOW sample with the embedded store in a fresh folder."""
    work = tmp_path_factory.mktemp("mlflow_embedded")
    old = Path.cwd()
    os.chdir(work)
    env_uri = os.environ.pop("MLFLOW_TRACKING_URI", None)
    try:
        res = runner.invoke(app, ["train", "--config", local_sample_config(work), "--model-name", "churnml-test"])
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
    names = [c["name"] for c in model_info.signature.inputs.to_dict()]
    # the config's names (CDNOW: date, dollar_value) and the canonical ones, plus optional order id, events
    assert names[:3] == ["customer_id", "date", "dollar_value"]
    assert {"timestamp", "amount", "order_id", "event_type", "event_value"} <= set(names)
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
    assert (scores["value_at_risk"] - scores["churn_probability"] * scores["value_if_retained"]).abs().max() < 1e-9
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
    first = runner.invoke(app, ["promote", "--config", str(work / "cdnow_sample.yaml"), "--model-name", "churnml-test"])
    assert first.exit_code == 0 and first.output.startswith("promoted: no champion yet")
    again = runner.invoke(app, ["promote", "--config", str(work / "cdnow_sample.yaml"), "--model-name", "churnml-test"])
    assert "already the champion" in again.output
    # a second training with the same data and seed scores the same: not better, so not promoted
    res = runner.invoke(app, ["train", "--config", str(work / "cdnow_sample.yaml"), "--model-name", "churnml-test"])
    assert res.exit_code == 0, res.output
    same = runner.invoke(app, ["promote", "--config", str(work / "cdnow_sample.yaml"), "--model-name", "churnml-test"])
    assert same.output.startswith("not promoted") and "does not beat" in same.output
    client = _client(work)
    assert str(client.get_model_version_by_alias("churnml-test", "champion").version) == "1"
    forced = runner.invoke(app, ["promote", "--config", str(work / "cdnow_sample.yaml"), "--model-name", "churnml-test", "--force"])
    assert forced.output.startswith("promoted") and "--force" in forced.output
    assert str(client.get_model_version_by_alias("churnml-test", "champion").version) == "2"


def test_promote_without_training_is_a_model_error(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    res = runner.invoke(app, ["promote", "--config", local_sample_config(tmp_path), "--model-name", "nothing-here"])
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


# --- promote compares champion and challenger on the same backtest cutoffs ----------------------


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    """An empty sqlite store, a client and a config pointing at it (model name set per test)."""
    from mlflow import MlflowClient

    from churnml.config import load_config

    work = tmp_path_factory.mktemp("mlflow_promote")
    uri = f"sqlite:///{work / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    exp = client.create_experiment("promote-tests", artifact_location=str(work / "artifacts"))
    base = load_config(SAMPLE)

    def config(model_name):
        return base.model_copy(update={"mlflow": base.mlflow.model_copy(update={"tracking_uri": uri, "model_name": model_name})})

    return client, exp, config, work


def _fake_run(client, exp, cutoffs=(), values=(), *, params=None, tags=None, table=None, tmp=None):
    """A run as log_training records a backtest: per-cutoff model_roc_auc at steps, the mean, the
    backtest_cutoffs param; or (``table``) only the backtest.json artifact of older runs."""
    import json

    rid = client.create_run(exp).info.run_id
    if cutoffs:
        client.log_param(rid, "backtest_cutoffs", ",".join(cutoffs))
    for step, v in enumerate(values):
        client.log_metric(rid, "model_roc_auc", v, step=step)
    if values:
        client.log_metric(rid, "model_roc_auc_mean", sum(values) / len(values))
    for k, v in (params or {}).items():
        client.log_param(rid, k, v)
    for k, v in (tags or {}).items():
        client.set_tag(rid, k, v)
    if table is not None:
        path = tmp / f"{rid}" / "backtest.json"
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps({"per_cutoff": table, "summary": {}, "training": {}}))
        client.log_artifact(rid, str(path), "backtest")
    client.set_terminated(rid)
    return rid


def _register(client, name, rid, alias, source=None):
    from mlflow.exceptions import MlflowException

    try:
        client.create_registered_model(name)
    except MlflowException:
        pass
    mv = client.create_model_version(name, source or f"runs:/{rid}/model", run_id=rid)
    client.set_registered_model_alias(name, alias, mv.version)
    return str(mv.version)


def test_promote_compares_on_the_common_cutoffs_not_on_each_runs_own_mean(registry):
    from churnml.tracking import promote

    client, exp, config, _ = registry
    champ = _fake_run(client, exp, ["2020-01-01", "2020-04-01"], [0.80, 0.70])  # mean 0.75
    _register(client, "common", champ, "champion")
    # the challenger's own mean (0.815) is higher, but on the shared cutoff it is worse
    chall = _fake_run(client, exp, ["2020-04-01", "2020-07-01"], [0.68, 0.95])
    _register(client, "common", chall, "challenger")
    ok, reason = promote(config("common"))
    assert not ok and "does not beat" in reason, reason
    assert "cutoffs 2020-04-01 (" in reason and "0.6800" in reason and "0.7000" in reason
    assert str(client.get_model_version_by_alias("common", "champion").version) == "1"
    better = _fake_run(client, exp, ["2020-04-01", "2020-07-01"], [0.72, 0.60])  # own mean 0.66 < 0.75
    _register(client, "common", better, "challenger")
    ok, reason = promote(config("common"))
    assert ok and "beats" in reason and "0.7200" in reason and "0.7000" in reason, reason
    assert str(client.get_model_version_by_alias("common", "champion").version) == "3"


def test_promote_reads_the_cutoffs_of_older_runs_from_their_backtest_table(registry, tmp_path):
    from churnml.tracking import promote, run_cutoff_metrics

    client, exp, config, _ = registry
    table = {"2020-01-01|model": {"roc_auc": 0.7}, "2020-01-01|btyd": {"roc_auc": 0.9},
             "2020-04-01|model": {"roc_auc": 0.8}}
    old = _fake_run(client, exp, table=table, tmp=tmp_path)
    assert run_cutoff_metrics(client, old) == {"2020-01-01": 0.7, "2020-04-01": 0.8}
    assert run_cutoff_metrics(client, old, "btyd_roc_auc_mean") == {"2020-01-01": 0.9}
    _register(client, "older", old, "champion")
    _register(client, "older", _fake_run(client, exp, ["2020-04-01"], [0.81]), "challenger")
    ok, reason = promote(config("older"))
    assert ok and "2020-04-01" in reason and "0.8100" in reason and "0.8000" in reason, reason


def test_promote_refuses_a_challenger_without_a_backtest_with_a_reason(registry):
    from churnml.tracking import promote

    client, exp, config, _ = registry
    _register(client, "nobt", _fake_run(client, exp, ["2020-01-01"], [0.7]), "champion")
    note = "no churn backtest was possible: the log covers 200 days"
    _register(client, "nobt", _fake_run(client, exp, params={"backtest_note": note}), "challenger")
    ok, reason = promote(config("nobt"))
    assert not ok and "has no backtest model_roc_auc" in reason and note in reason and "--force" in reason, reason
    ok, reason = promote(config("nobt"), force=True)
    assert ok and "promoted anyway (--force)" in reason


def test_promote_refuses_when_no_cutoff_is_shared_and_the_champion_cannot_be_retrained(registry):
    from churnml.tracking import promote

    client, exp, config, _ = registry
    _register(client, "disjoint", _fake_run(client, exp, ["2019-01-01"], [0.7]), "champion")  # no model behind it
    _register(client, "disjoint", _fake_run(client, exp, ["1998-03-01"], [0.9]), "challenger")
    ok, reason = promote(config("disjoint"))
    assert not ok and "share no backtest cutoff" in reason and "re-evaluating the champion" in reason, reason
    assert "--force" in reason and "1998-03-01" in reason and "2019-01-01" in reason
    # and runs that define churn differently are not compared at all
    _register(client, "horizons", _fake_run(client, exp, ["2020-01-01"], [0.7], params={"churn.horizon_days": "90"}), "champion")
    _register(client, "horizons", _fake_run(client, exp, ["2020-01-01"], [0.9], params={"churn.horizon_days": "60"}), "challenger")
    ok, reason = promote(config("horizons"))
    assert not ok and "churn.horizon_days 60 vs 90" in reason and "--force" in reason, reason


def test_promote_retrains_the_champion_at_the_challengers_cutoffs_when_none_is_shared(trained, registry, monkeypatch):
    """A real champion (the CLI-trained CDNOW sample model) and a challenger backtested only at
    1998-03-01: the champion's recipe is retrained there and both are compared on that cutoff."""
    import mlflow

    from churnml.tracking import promote

    work, _ = trained
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{work / 'mlflow.db'}")
    mlflow.set_tracking_uri(f"sqlite:///{work / 'mlflow.db'}")  # the registry resolves logged-model sources here
    real = _client(work)
    mv = real.get_model_version_by_alias("churnml-test", "challenger")
    run = real.get_run(mv.run_id)
    assert run.data.params["backtest_cutoffs"] and len(run.data.params["backtest_cutoffs"].split(",")) == 2
    uri = f"sqlite:///{work / 'mlflow.db'}"
    _, _, config, _ = registry
    cfg = config("reeval")
    cfg = cfg.model_copy(update={"mlflow": cfg.mlflow.model_copy(update={"tracking_uri": uri})})
    exp = real.get_experiment_by_name(cfg.mlflow.experiment) or real.get_experiment(run.info.experiment_id)
    _register(real, "reeval", mv.run_id, "champion", source=mv.source)
    tags = {"data.source": run.data.tags["data.source"]}
    chall = _fake_run(real, exp.experiment_id, ["1998-03-01"], [0.55], params={"churn.horizon_days": "90"}, tags=tags)
    _register(real, "reeval", chall, "challenger")
    ok, reason = promote(cfg)
    assert not ok and "does not beat" in reason and "retrained with its own config" in reason, reason
    assert "cutoffs 1998-03-01 (" in reason and "0.5500" in reason
    champion_auc = float(reason.split("model_roc_auc = ")[2].split(")")[0])
    assert 0.65 < champion_auc < 0.95
