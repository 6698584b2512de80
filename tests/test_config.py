from __future__ import annotations

from pathlib import Path

import pytest

from churnml.config import Config, load_config
from churnml.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]


def test_shipped_configs_load():
    for name in ["default", "cdnow", "cdnow_sample", "apparel"]:
        cfg = load_config(REPO / "configs" / f"{name}.yaml")
        assert isinstance(cfg, Config)
    assert load_config(REPO / "configs" / "cdnow.yaml").data.transactions == "bundled:cdnow_master"


def test_default_yaml_documents_the_defaults():
    """configs/default.yaml must say what the code does: its values equal the model defaults."""
    loaded = load_config(REPO / "configs" / "default.yaml").model_dump()
    defaults = Config().model_dump()
    # relative paths in a config file resolve against its folder: the same "outputs", made absolute
    assert loaded["output"].pop("dir") == str((REPO / "configs" / defaults["output"].pop("dir")).resolve())
    assert loaded == defaults


def test_unknown_key_is_named(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("data:\n  colums:\n    customer_id: x\n")
    with pytest.raises(ConfigError, match=r"unknown key 'data\.colums'"):
        load_config(p)


def test_wrong_type_is_named(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("churn:\n  horizon_days: soon\n")
    with pytest.raises(ConfigError, match=r"churn\.horizon_days.*soon"):
        load_config(p)
    p.write_text("data:\n  returns: keep\n")
    with pytest.raises(ConfigError, match=r"data\.returns"):
        load_config(p)


def test_quantity_needs_unit_price(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("data:\n  columns:\n    quantity: Quantity\n")
    with pytest.raises(ConfigError, match="unit_price"):
        load_config(p)


def test_relative_paths_resolve_against_the_config_file(tmp_path):
    sub = tmp_path / "configs"
    sub.mkdir()
    p = sub / "c.yaml"
    p.write_text("data:\n  transactions: ../data/tx.csv\n  events: /abs/events.csv\n")
    cfg = load_config(p)
    assert cfg.data.transactions == str((tmp_path / "data" / "tx.csv").resolve())
    assert cfg.data.events == "/abs/events.csv"


def test_overrides_do_not_touch_the_original():
    cfg = Config()
    new = cfg.with_overrides(transactions="x.csv", tracking_uri="http://127.0.0.1:5000", model_name="m")
    assert (new.data.transactions, new.mlflow.tracking_uri, new.mlflow.model_name) == ("x.csv", "http://127.0.0.1:5000", "m")
    assert cfg.data.transactions is None and cfg.mlflow.model_name == "churnml"


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")
    p = tmp_path / "bad.yaml"
    p.write_text("data: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(p)
