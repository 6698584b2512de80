"""One rule for relative paths: those written in a config file resolve against the config file's
folder (data, output.dir, a sqlite:/// tracking URI, the default mlflow.db); those given on the
command line resolve against the working directory. A scheduled job gives the same result from
any working directory."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from churnml.cli import app
from churnml.config import load_config
from churnml.datasets import load_cdnow
from churnml.tracking import tracking_uri_for

runner = CliRunner()


def _project(root: Path, extra: str = "") -> Path:
    (root / "data").mkdir(parents=True)
    tx = load_cdnow("sample").rename(columns={"date": "timestamp", "dollar_value": "amount"})[["customer_id", "timestamp", "amount"]]
    tx.to_csv(root / "data" / "tx.csv", index=False)
    cfg = root / "job.yaml"
    cfg.write_text(textwrap.dedent("""
        data: {transactions: data/tx.csv}
        churn: {horizon_days: 90, n_estimators: 100}
        output: {dir: out}
    """) + extra)
    return cfg


def test_config_paths_resolve_against_the_config_folder(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    cfg_path = _project(tmp_path / "project", "mlflow: {tracking_uri: 'sqlite:///store/m.db'}\n")
    monkeypatch.chdir(tmp_path)
    cfg = load_config(cfg_path)
    base = (tmp_path / "project").resolve()
    assert cfg.data.transactions == str(base / "data" / "tx.csv")
    assert cfg.output.dir == str(base / "out")
    assert tracking_uri_for(cfg) == f"sqlite:///{base / 'store' / 'm.db'}"
    # the command line wins, relative to the working directory as for any command
    assert tracking_uri_for(cfg.with_overrides(tracking_uri="sqlite:///cli.db")) == "sqlite:///cli.db"


def test_default_store_is_next_to_the_config_and_env_still_wins(tmp_path, monkeypatch):
    cfg_path = _project(tmp_path / "p")
    cfg = load_config(cfg_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert tracking_uri_for(cfg) == f"sqlite:///{(tmp_path / 'p').resolve() / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5999")
    assert tracking_uri_for(cfg) == "http://127.0.0.1:5999"
    # without a config file: the working directory
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    monkeypatch.chdir(tmp_path)
    assert tracking_uri_for(load_config(None)) == f"sqlite:///{tmp_path.resolve() / 'mlflow.db'}"


@pytest.mark.slow
def test_scheduled_job_from_another_working_directory(tmp_path, monkeypatch):
    """`churnml run` started from an unrelated folder (cron starts jobs in $HOME) writes its outputs,
    the MLflow store and its artifacts next to the config, and nothing where it was started."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    cfg_path = _project(tmp_path / "project")
    elsewhere = tmp_path / "cron_home"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    res = runner.invoke(app, ["run", "--config", str(cfg_path)])
    assert res.exit_code == 0, res.output
    project = tmp_path / "project"
    assert (project / "out" / "customers.parquet").is_file()
    assert (project / "mlflow.db").is_file()
    assert any((project / "mlruns").rglob("pipeline.joblib"))
    assert list(elsewhere.iterdir()) == []
    # a relative --out on the command line is relative to the working directory
    res = runner.invoke(app, ["rfm", "--config", str(cfg_path), "--out", "rfm.csv"])
    assert res.exit_code == 0, res.output
    assert len(pd.read_csv(elsewhere / "rfm.csv")) == 2357
