"""Issue 23, values keep their meaning: customer ids spelt one way, shares above 1 refused naming
the key, and scores files whose probabilities are not probabilities refused before any list."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from churnml.cli import app
from churnml.config import config_from_dict, load_config
from churnml.errors import ConfigError, DataError
from churnml.io import normalise_ids, prepare_transactions, read_customers, read_transactions

REPO = Path(__file__).resolve().parents[1]
runner = CliRunner()


# --------------------------------------------------------------------------- ids


def _log(ids) -> pd.DataFrame:
    n = len(ids)
    return pd.DataFrame({"customer_id": ids, "timestamp": [f"2024-01-{d + 1:02d}" for d in range(n)],
                         "amount": [10.0 * (d + 1) for d in range(n)]})


def test_text_17850_and_17850_0_in_one_csv_are_one_customer(tmp_path):
    p = tmp_path / "tx.csv"
    _log(["17850", "17850.0", "13047"]).to_csv(p, index=False)
    tx, report = read_transactions(p)
    assert report.customers == 2
    assert sorted(tx["customer_id"].unique()) == ["13047", "17850"]
    assert tx.loc[tx["customer_id"] == "17850", "amount"].sum() == pytest.approx(30.0)


def test_float_parquet_ids_become_integer_text(tmp_path):
    p = tmp_path / "tx.parquet"
    _log([17850.0, 17850.0, 13047.0]).to_parquet(p)
    tx, report = read_transactions(p)
    assert set(tx["customer_id"]) == {"17850", "13047"} and report.customers == 2


def test_excel_like_mixed_object_ids_are_one_customer():
    raw = _log(pd.Series([17850.0, "17850", 17850], dtype=object))
    tx, report = prepare_transactions(raw)
    assert report.customers == 1 and set(tx["customer_id"]) == {"17850"}


def test_text_ids_that_are_not_numeric_looking_are_kept_as_written():
    # "C1.0" makes the column text ids: "17850.0" is then a spelling of its own, not a number
    out = normalise_ids(pd.Series(["C1.0", "17850.0", "007", None]))
    assert out.tolist()[:3] == ["C1.0", "17850.0", "007"] and out.isna().tolist()[3]
    # leading zeros are part of an id even in a numeric-looking column; only a ".0" tail is dropped
    assert normalise_ids(pd.Series(["007", "7.00", "12."])).tolist() == ["007", "7", "12"]
    # non-integral float ids keep their digits
    assert normalise_ids(pd.Series([1.5, 2.0])).tolist() == ["1.5", "2"]


def test_customers_table_ids_match_the_log_spelling(tmp_path):
    p = tmp_path / "customers.parquet"
    pd.DataFrame({"customer_id": [17850.0, 13047.0], "region": ["north", "south"]}).to_parquet(p)
    attrs = read_customers(p)
    assert list(attrs.index) == ["17850", "13047"]


def test_list_typed_parquet_id_is_refused_naming_file_and_column(tmp_path):
    p = tmp_path / "tx.parquet"
    _log([["a"], ["b"], ["a"]]).to_parquet(p)
    with pytest.raises(DataError) as err:
        read_transactions(p)
    msg = str(err.value)
    assert "tx.parquet" in msg and "'customer_id'" in msg and "non-scalar" in msg and "row 0" in msg


def test_list_typed_id_refused_by_validate_with_exit_2(tmp_path):
    p = tmp_path / "tx.parquet"
    _log([["a"], ["b"], ["a"]]).to_parquet(p)
    res = runner.invoke(app, ["validate", "--transactions", str(p)])
    assert res.exit_code == 2, res.output
    assert "tx.parquet" in res.output and "customer_id" in res.output


# --------------------------------------------------------------------------- config shares


@pytest.mark.parametrize(
    "raw, key, hint",
    [
        ({"clv": {"margin": 30}}, "clv.margin", "write 0.3, not 30"),
        ({"campaign": {"control_share": 30}}, "campaign.control_share", "write 0.3, not 30"),
        ({"churn": {"top_k_share": 10}}, "churn.top_k_share", "write 0.1, not 10"),
        ({"churn": {"offer_acceptance": 20}}, "churn.offer_acceptance", "write 0.2, not 20"),
        ({"segments": {"risk": {"method": "absolute", "thresholds": [30, 60]}}}, "segments.risk", "write 0.3, not 30"),
        ({"segments": {"risk": {"method": "quantile", "thresholds": [50, 80]}}}, "segments.risk", "write 0.5, not 50"),
        ({"segments": {"value": {"method": "quantile", "thresholds": [50, 80]}}}, "segments.value", "write 0.5, not 50"),
        ({"campaign": {"actions": [{"name": "call", "cost": 5, "churn_reduction": 8}]}},
         "campaign.actions[call].churn_reduction", "write 0.08, not 8"),
    ],
)
def test_percentages_refused_naming_the_key(raw, key, hint):
    with pytest.raises(ConfigError) as err:
        config_from_dict(raw)
    msg = str(err.value)
    assert key in msg and hint in msg


def test_shares_at_their_bounds_still_load():
    cfg = config_from_dict({"clv": {"margin": 1.0}, "churn": {"top_k_share": 1.0, "offer_acceptance": 1.0},
                            "campaign": {"control_share": 0.0},
                            "segments": {"risk": {"method": "absolute", "thresholds": [0.0, 1.0]}}})
    assert cfg.clv.margin == 1.0 and cfg.segments.risk.thresholds == [0.0, 1.0]
    with pytest.raises(ConfigError, match=r"campaign.control_share must be in \[0, 1\)"):
        config_from_dict({"campaign": {"control_share": 1.0}})


def test_absolute_value_tiers_are_currency_and_not_restricted():
    cfg = config_from_dict({"segments": {"value": {"method": "absolute", "thresholds": [50, 800]}}})
    assert cfg.segments.value.thresholds == [50, 800]


@pytest.mark.parametrize("path", sorted((REPO / "configs").glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_configs_still_load(path):
    load_config(path)


def test_percentage_margin_in_a_config_file_exits_2_naming_the_key(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("clv:\n  margin: 30\n")
    res = runner.invoke(app, ["validate", "--config", str(cfg), "--transactions", str(tmp_path / "none.csv")])
    assert res.exit_code == 2, res.output
    assert "clv.margin" in res.output and "write 0.3, not 30" in res.output


# --------------------------------------------------------------------------- scores files


def _scores(tmp_path: Path, prob, name: str = "scores.csv") -> Path:
    n = len(prob)
    df = pd.DataFrame({
        "customer_id": [f"C{i}" for i in range(n)],
        "churn_probability": prob,
        "predicted_clv": [100.0 + i for i in range(n)],
        "value_at_risk": [50.0 + i for i in range(n)],
        "segment": ["Save now"] * n,
        "risk_tier": ["high"] * n,
        "value_tier": ["high"] * n,
    })
    p = tmp_path / name
    df.to_parquet(p) if name.endswith(".parquet") else df.to_csv(p, index=False)
    return p


def _commands(scores: Path, tmp_path: Path) -> dict[str, list[str]]:
    return {
        "at-risk": ["at-risk", "--scores", str(scores), "--out", str(tmp_path / "list.csv")],
        "kpis": ["kpis", "--scores", str(scores)],
        "campaign": ["campaign", "--scores", str(scores), "--budget", "100", "--out", str(tmp_path / "plan.csv")],
    }


@pytest.mark.parametrize("command", ["at-risk", "kpis", "campaign"])
@pytest.mark.parametrize("bad, shown", [("abc", "'abc'"), (1.7, "1.7"), (-0.2, "-0.2")])
def test_commands_refuse_a_probability_that_is_not_one(tmp_path, command, bad, shown):
    p = _scores(tmp_path, [0.2, bad, 0.9])
    res = runner.invoke(app, _commands(p, tmp_path)[command])
    assert res.exit_code == 2, res.output
    out = res.output
    assert "scores.csv" in out and "churn_probability" in out
    assert "line 3" in out and "C1" in out and shown in out  # the example row: its line, id and value
    assert not (tmp_path / "list.csv").exists() and not (tmp_path / "plan.csv").exists()


def test_parquet_scores_with_text_probability_refused_naming_the_row(tmp_path):
    from churnml.scoring import read_scores

    p = _scores(tmp_path, ["0.1", "0.5", "high"], name="scores.parquet")
    with pytest.raises(DataError) as err:
        read_scores(p)
    msg = str(err.value)
    assert "scores.parquet" in msg and "'churn_probability'" in msg and "row 2" in msg and "'high'" in msg


def test_valid_scores_read_as_numbers(tmp_path):
    from churnml.scoring import read_scores

    p = _scores(tmp_path, [0.0, 0.5, 1.0])
    sc = read_scores(p)
    assert sc["churn_probability"].tolist() == [0.0, 0.5, 1.0]
    res = runner.invoke(app, _commands(p, tmp_path)["at-risk"])
    assert res.exit_code == 0, res.output


def test_scores_with_text_value_at_risk_refused(tmp_path):
    from churnml.scoring import read_scores

    p = _scores(tmp_path, [0.1, 0.2])
    df = pd.read_csv(p)
    df["value_at_risk"] = df["value_at_risk"].astype(object)
    df.loc[1, "value_at_risk"] = "twelve"
    df.to_csv(p, index=False)
    with pytest.raises(DataError, match=r"scores.csv: column 'value_at_risk' has non-numeric.*line 3"):
        read_scores(p)
