"""The logged MLflow model scores exactly like `churnml score`, on a log with order ids, returns,
cancellations, string customer attributes and service events; and it loads where churnml is not
installed (its code travels with the model)."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from churnml.cli import app
from churnml.datasets import load_cdnow

runner = CliRunner()
NUMBERS = ["churn_probability", "p_alive", "expected_purchases", "predicted_clv", "value_if_retained", "value_at_risk"]


pytestmark = pytest.mark.slow  # logs a model to MLflow: `bash scripts/test.sh --all` (CI) runs it

def _write_inputs(folder: Path) -> dict[str, Path]:
    """CDNOW sample as order lines with invoice numbers; partial returns inside orders, whole-order
    cancellations, customers with a Country (text) attribute, and complaint / NPS events."""
    rng = np.random.default_rng(3)
    tx = load_cdnow("sample").rename(columns={"customer_id": "Customer", "date": "Day", "dollar_value": "Value"})
    tx = tx[["Customer", "Day", "Value"]].reset_index(drop=True)
    tx["Day"] = pd.to_datetime(tx["Day"]).dt.strftime("%Y%m%d").astype(int)
    tx["Invoice"] = [f"INV{i:06d}" for i in range(len(tx))]
    # a second line on 20% of the invoices, some of them partial returns (negative lines)
    extra = tx.sample(frac=0.2, random_state=1).copy()
    extra["Value"] = np.where(rng.random(len(extra)) < 0.3, -0.3 * extra["Value"], 5.0).round(2)
    # 3% of invoices cancelled by a credit note a few days later
    cancel = tx.sample(frac=0.03, random_state=2).copy()
    cancel["Value"] = -cancel["Value"]
    cancel["Day"] = (pd.to_datetime(cancel["Day"].astype(str)) + pd.Timedelta(days=3)).dt.strftime("%Y%m%d").astype(int)
    cancel["Invoice"] = "C" + cancel["Invoice"]
    log = pd.concat([tx, extra, cancel], ignore_index=True)
    paths = {"tx": folder / "tx.csv", "customers": folder / "customers.csv", "events": folder / "events.csv"}
    log.to_csv(paths["tx"], index=False)
    ids = tx["Customer"].astype(str).unique()
    pd.DataFrame({"Customer": ids, "Country": rng.choice(["UK", "France", "Germany"], len(ids)),
                  "age": rng.integers(18, 80, len(ids))}).to_csv(paths["customers"], index=False)
    n = 1500
    ev = pd.DataFrame({"Customer": rng.choice(ids, n),
                       "Day": (pd.Timestamp("1997-01-01") + pd.to_timedelta(rng.integers(0, 540, n), unit="D")).strftime("%Y%m%d"),
                       "kind": rng.choice(["complaint", "nps"], n)})
    ev["score"] = np.where(ev["kind"] == "nps", rng.integers(0, 11, n), np.nan)
    ev.to_csv(paths["events"], index=False)
    cfg = folder / "cfg.yaml"
    cfg.write_text(textwrap.dedent(f"""
        data:
          transactions: {paths['tx']}
          columns: {{customer_id: Customer, timestamp: Day, amount: Value, order_id: Invoice}}
          timestamp_format: "%Y%m%d"
          customers: {paths['customers']}
          customers_id_column: Customer
          events: {paths['events']}
          event_columns: {{customer_id: Customer, timestamp: Day, type: kind, value: score}}
        churn:
          horizon_days: 90
          n_estimators: 200
        mlflow:
          tracking_uri: sqlite:///{folder / 'mlflow.db'}
          model_name: parity
    """))
    paths["cfg"] = cfg
    return paths


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    folder = tmp_path_factory.mktemp("parity")
    paths = _write_inputs(folder)
    res = runner.invoke(app, ["train", "--config", str(paths["cfg"])])
    assert res.exit_code == 0, res.output
    out = folder / "scores.csv"
    res = runner.invoke(app, ["score", "--config", str(paths["cfg"]), "--model", "models:/parity@challenger", "--out", str(out)])
    assert res.exit_code == 0, res.output
    return folder, paths, pd.read_csv(out, dtype={"customer_id": str}).set_index("customer_id")


def _model_input(paths) -> pd.DataFrame:
    """The same files as one frame, in the config's own column names: transactions, then events
    (event_type / event_value set), customer attributes as extra columns."""
    tx = pd.read_csv(paths["tx"], dtype={"Customer": str})
    ev = pd.read_csv(paths["events"], dtype={"Customer": str}).rename(columns={"kind": "event_type", "score": "event_value"})
    frame = pd.concat([tx, ev], ignore_index=True)
    attrs = pd.read_csv(paths["customers"], dtype={"Customer": str}).set_index("Customer")
    return frame.join(attrs, on="Customer")


def test_logged_model_keeps_every_input_column(trained):
    import mlflow

    folder, paths, _ = trained
    mlflow.set_tracking_uri(f"sqlite:///{folder / 'mlflow.db'}")
    sig = mlflow.models.get_model_info("models:/parity@challenger").signature
    names = {c["name"] for c in sig.inputs.to_dict()}
    assert {"Customer", "Day", "Value", "Invoice", "is_return", "event_type", "event_value", "Country", "age"} <= names


def test_pyfunc_scores_the_same_numbers_as_churnml_score(trained):
    import mlflow

    folder, paths, cli_scores = trained
    mlflow.set_tracking_uri(f"sqlite:///{folder / 'mlflow.db'}")
    model = mlflow.pyfunc.load_model("models:/parity@challenger")
    out = model.predict(_model_input(paths)).set_index("customer_id")
    assert len(out) == len(cli_scores) > 2000
    joined = cli_scores[NUMBERS].join(out[NUMBERS].add_suffix("_pyfunc"), how="outer")
    for col in NUMBERS:
        assert np.allclose(joined[col], joined[col + "_pyfunc"], rtol=1e-9, atol=1e-9), col
    # the inputs the issue named matter: without order ids the orders collapse differently
    # and without the events the complaint features are missing, so the numbers would differ
    canonical = _model_input(paths).rename(columns={"Customer": "customer_id", "Value": "amount"})
    canonical["timestamp"] = pd.to_datetime(canonical.pop("Day").astype(str), format="%Y%m%d")
    same = model.predict(canonical.rename(columns={"Invoice": "order_id"})).set_index("customer_id")
    assert np.allclose(same["churn_probability"], out["churn_probability"].reindex(same.index), rtol=1e-9, atol=1e-9)
    no_orders = model.predict(canonical.drop(columns=["Invoice"])).set_index("customer_id")
    assert not np.allclose(no_orders["churn_probability"], out["churn_probability"].reindex(no_orders.index))


def test_logged_model_loads_where_churnml_is_not_installed(trained, tmp_path):
    """A virtualenv that sees the third-party packages of this one but not churnml (its
    editable-install .pth is not processed there): MLflow puts the model's bundled code on the
    path and the model scores."""
    folder, paths, cli_scores = trained
    env_dir = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env_dir)], check=True, timeout=120)
    py = env_dir / "bin" / "python"
    site = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    Path(site, "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    model_input = tmp_path / "input.pkl"
    _model_input(paths).to_pickle(model_input)
    script = textwrap.dedent("""
        import importlib.util, sys
        assert importlib.util.find_spec("churnml") is None, "churnml must not be importable here"
        import mlflow, pandas as pd
        mlflow.set_tracking_uri(sys.argv[1])
        out = mlflow.pyfunc.load_model("models:/parity@challenger").predict(pd.read_pickle(sys.argv[2]))
        out.to_csv(sys.argv[3], index=False)
    """)
    out = tmp_path / "fresh.csv"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "MLFLOW_TRACKING_URI")}
    proc = subprocess.run([str(py), "-c", script, f"sqlite:///{folder / 'mlflow.db'}", str(model_input), str(out)],
                          capture_output=True, text=True, cwd=tmp_path, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    fresh = pd.read_csv(out, dtype={"customer_id": str}).set_index("customer_id")
    assert np.allclose(fresh["churn_probability"], cli_scores["churn_probability"].reindex(fresh.index), rtol=1e-9, atol=1e-9)
