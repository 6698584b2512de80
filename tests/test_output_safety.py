"""Outputs safe to open (issue 23, item 3): no text cell of a .csv/.xlsx output runs as a
spreadsheet formula (OWASP CSV-injection rule), and every JSON output is valid JSON (no NaN or
Infinity)."""

from __future__ import annotations

import csv
import json

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from churnml._atomic import json_text, write_json, write_table
from churnml.cli import app
from churnml.excel import neutralise_formulas, restore_formulas, write_list

# (an id with a carriage return breaks any CSV row; the rule for it is tested on its own)
HOSTILE = ['=HYPERLINK("http://x","y")', "+1+1", "-2+3", "@SUM(A1)", "\tTAB"]
runner = CliRunner()


def _no_constants(name):
    raise ValueError(f"invalid JSON constant {name}")


def _scores(ids=HOSTILE + ["plain", "o'neil"]) -> pd.DataFrame:
    n = len(ids)
    p = np.linspace(0.9, 0.5, n)
    value = np.linspace(100.0, 20.0, n)
    return pd.DataFrame({"customer_id": ids, "churn_probability": p, "predicted_clv": value, "value_if_retained": value,
                         "value_at_risk": p * value, "segment": "Save now", "risk_tier": "high",
                         "balance": -np.arange(1.0, n + 1)})  # negative amounts: numbers, never quoted


def _csv_rows(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_neutralise_formulas_quotes_only_hostile_text():
    df = pd.DataFrame({"id": HOSTILE + ["\rCR", "plain", "-"], "amount": [-5.0, 1, 2, 3, 4, 5, 6, -7],
                       "label": pd.Categorical(["=1"] * 8)})
    out = neutralise_formulas(df)
    assert out["id"].tolist() == ["'" + s for s in HOSTILE] + ["'\rCR", "plain", "'-"]
    assert out["label"].tolist() == ["'=1"] * 8
    assert out["amount"].tolist() == df["amount"].tolist() and pd.api.types.is_float_dtype(out["amount"])
    assert df["id"].iloc[0] == HOSTILE[0]  # the input is not changed
    assert neutralise_formulas(out)["id"].tolist() == out["id"].tolist()  # idempotent
    assert restore_formulas(out)["id"].tolist() == df["id"].tolist()


def test_xlsx_list_stores_no_formula_and_keeps_negative_numbers(tmp_path):
    from openpyxl import load_workbook

    path = write_list(_scores(), tmp_path / "at_risk.xlsx", notes=["=cmd|' /C calc'!A0"])
    wb = load_workbook(path)
    ws = wb["At risk"]
    cells = [c for row in ws.iter_rows() for c in row]
    assert not [c.coordinate for c in cells if c.data_type == "f"]
    header = [c.value for c in ws[1]]
    ids = [r[header.index("customer_id")] for r in ws.iter_rows(min_row=2, values_only=True)]
    assert ids == ["'" + s for s in HOSTILE] + ["plain", "o'neil"]
    balances = [r[header.index("balance")] for r in ws.iter_rows(min_row=2, values_only=True)]
    assert all(isinstance(b, (int, float)) and b < 0 for b in balances)
    assert all(c.data_type != "f" for row in wb["Assumptions"].iter_rows() for c in row)
    assert wb["Assumptions"]["A1"].value.startswith("'=")


def test_csv_list_quotes_hostile_text_and_keeps_negative_numbers(tmp_path):
    rows = _csv_rows(write_list(_scores(), tmp_path / "at_risk.csv"))
    assert [r["customer_id"] for r in rows] == ["'" + s for s in HOSTILE] + ["plain", "o'neil"]
    assert all(not r[k][:1] in "=+@\t\r" for r in rows for k in r)
    assert [float(r["balance"]) for r in rows] == [-float(i) for i in range(1, len(rows) + 1)]
    assert all(not r["balance"].startswith("'") for r in rows)


def test_scores_csv_quotes_ids_and_reads_them_back_unchanged(tmp_path):
    from churnml.scoring import read_scores

    df = _scores()
    path = write_table(df, tmp_path / "scores.csv", index=False)
    rows = _csv_rows(path)
    assert [r["customer_id"] for r in rows] == ["'" + s for s in HOSTILE] + ["plain", "o'neil"]
    back = read_scores(path)
    assert back["customer_id"].tolist() == df["customer_id"].tolist()
    assert back["balance"].tolist() == df["balance"].tolist()
    pq = write_table(df, tmp_path / "scores.parquet", index=False)  # Parquet is data, kept exactly
    assert pd.read_parquet(pq)["customer_id"].tolist() == HOSTILE + ["plain", "o'neil"]


def test_csv_index_of_hostile_text_is_quoted(tmp_path):
    df = pd.DataFrame({"n": [1, -2]}, index=pd.Index(["=1+1", "ok"], name="segment"))
    rows = _csv_rows(write_table(df, tmp_path / "seg.csv"))
    assert [r["segment"] for r in rows] == ["'=1+1", "ok"] and [r["n"] for r in rows] == ["1", "-2"]


@pytest.mark.parametrize("suffix", [".csv", ".xlsx"])
def test_at_risk_cli_with_hostile_ids(tmp_path, suffix):
    from openpyxl import load_workbook

    write_table(_scores(), tmp_path / "scores.csv", index=False)  # as `churnml score` writes it
    out = tmp_path / f"list{suffix}"
    res = runner.invoke(app, ["at-risk", "-s", str(tmp_path / "scores.csv"), "-o", str(out)])
    assert res.exit_code == 0, res.output
    if suffix == ".csv":
        table = pd.read_csv(out, dtype=str, keep_default_na=False)
        ids = table.iloc[:, 0].tolist()
    else:
        ws = load_workbook(out).active
        assert not [c.coordinate for row in ws.iter_rows() for c in row if c.data_type == "f"]
        ids = [r[0] for r in ws.iter_rows(min_row=2, values_only=True)]
    # each hostile id is quoted once (not twice after the scores CSV round trip)
    assert sorted(ids) == sorted(["'" + s for s in HOSTILE] + ["plain", "o'neil"])


def test_report_csv_download_neutralises_formulas():
    from churnml.report import _JS

    assert "/^[=+\\-@\\t\\r]/.test(s)" in _JS and "s = \"'\" + s" in _JS


def test_json_helpers_write_null_for_non_finite_numbers(tmp_path):
    obj = {"roi": float("nan"), "up": np.inf, "down": np.float64(-np.inf), "arr": np.array([1.0, np.nan]),
           "ok": np.float32(0.5), "n": np.int64(3), "when": pd.Timestamp("2024-01-02"), "na": pd.NA, "t": (1, float("nan"))}
    back = json.loads(write_json(tmp_path / "x.json", obj).read_text(), parse_constant=_no_constants)
    assert back == {"roi": None, "up": None, "down": None, "arr": [1.0, None], "ok": 0.5, "n": 3,
                    "when": "2024-01-02 00:00:00", "na": None, "t": [1, None]}
    assert "NaN" not in json_text({"x": [float("nan")]})


def test_zero_cost_campaign_summary_is_valid_json(tmp_path):
    write_table(_scores(), tmp_path / "scores.csv", index=False)
    acts = [{"name": "free_mail", "cost": 0, "churn_reduction": 0.05}]
    (tmp_path / "c.yaml").write_text(yaml.safe_dump({"clv": {"margin": 0.3},
                                                     "campaign": {"control_share": 0.0, "actions": acts}}))
    res = runner.invoke(app, ["campaign", "--scores", str(tmp_path / "scores.csv"), "--budget", "100", "--config",
                              str(tmp_path / "c.yaml"), "--out", str(tmp_path / "plan.csv")])
    assert res.exit_code == 0, res.output
    text = (tmp_path / "plan.csv.summary.json").read_text()
    summary = json.loads(text, parse_constant=_no_constants)
    assert summary["cost"] == 0 and summary["roi"] is None  # ROI of a zero cost is undefined: null, not NaN
    plan = _csv_rows(tmp_path / "plan.csv")
    assert {r["customer_id"] for r in plan} == {"'" + s for s in HOSTILE} | {"plain", "o'neil"}
