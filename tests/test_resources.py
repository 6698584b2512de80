"""Resources: inputs that would exhaust memory or block forever are refused at once (exit 2).

A YAML anchor bomb, an oversized config, and a named pipe given as a config or as data.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from churnml.cli import app
from churnml.config import MAX_CONFIG_BYTES, load_config
from churnml.errors import ConfigError, DataError
from churnml.io import read_table
from conftest import local_sample_config

REPO = Path(__file__).resolve().parents[1]
runner = CliRunner()


def _anchor_bomb(levels: int = 9, width: int = 9) -> str:
    """A "billion laughs" YAML: ``width ** levels`` leaves (9**9 = 387 million) from a few hundred bytes,
    written under a typed key (``data.columns``) so it would be expanded before validation."""
    lines = ['l0: &l0 "lol"']
    for i in range(1, levels + 1):
        lines.append(f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * width) + "]")
    lines.append(f"data:\n  columns: *l{levels}")
    return "\n".join(lines) + "\n"


def test_anchor_bomb_is_refused_through_validate(tmp_path):
    cfg = tmp_path / "bomb.yaml"
    cfg.write_text(_anchor_bomb())
    res = runner.invoke(app, ["validate", "--config", str(cfg)])
    assert res.exit_code == 2, res.output
    assert "aliases are not allowed" in res.output and "bomb.yaml" in res.output


def test_a_single_alias_is_refused_with_its_line(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("x: &name customer\ndata:\n  columns:\n    customer_id: *name\n")
    with pytest.raises(ConfigError, match=r"aliases are not allowed \(\*name on line 4\)"):
        load_config(cfg)


def test_oversized_config_is_refused_through_validate(tmp_path):
    cfg = tmp_path / "big.yaml"
    cfg.write_text("# padding\n" * (2_000_000 // 10))  # 2 MB of comments: valid YAML, but too large
    assert cfg.stat().st_size > MAX_CONFIG_BYTES
    res = runner.invoke(app, ["validate", "--config", str(cfg)])
    assert res.exit_code == 2, res.output
    assert "too large" in res.output and "big.yaml" in res.output


@pytest.mark.parametrize("name", sorted(p.name for p in (REPO / "configs").glob("*.yaml")))
def test_shipped_configs_still_load(name):
    path = REPO / "configs" / name
    assert load_config(path).model_dump() is not None
    # the same content as PyYAML's own safe loader reads it (no alias is used by a shipped config)
    assert yaml.safe_load(path.read_text()) is not None


def test_config_without_aliases_reads_as_before(tmp_path):
    cfg = local_sample_config(tmp_path)
    assert load_config(cfg).data.columns.customer_id == yaml.safe_load(Path(cfg).read_text())["data"]["columns"]["customer_id"]


def _cli(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    """``churnml ARGS`` in a subprocess, killed after 120 s so a blocking read fails the test instead of hanging it."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO / "src"), str(REPO / "tests")]))
    try:
        return subprocess.run(
            [sys.executable, "-m", "churnml", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"churnml {' '.join(args)} blocked on a named pipe")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes need POSIX")
def test_named_pipe_as_transactions_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "tx.csv"
    os.mkfifo(fifo)
    res = _cli(["validate", "--config", local_sample_config(tmp_path), "--transactions", str(fifo)], tmp_path)
    assert res.returncode == 2, res.stdout + res.stderr
    out = res.stdout + res.stderr
    assert "not a regular file" in out and str(fifo) in out


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes need POSIX")
def test_named_pipe_in_config_data_transactions_is_refused(tmp_path):
    fifo = tmp_path / "pipe.csv"
    os.mkfifo(fifo)
    raw = yaml.safe_load(Path(local_sample_config(tmp_path)).read_text())
    raw["data"]["transactions"] = "pipe.csv"
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump(raw))
    res = _cli(["validate", "--config", str(cfg)], tmp_path)
    assert res.returncode == 2, res.stdout + res.stderr
    assert "not a regular file" in res.stdout + res.stderr and "pipe.csv" in res.stdout + res.stderr


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes need POSIX")
def test_named_pipe_as_config_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "c.yaml"
    os.mkfifo(fifo)
    res = _cli(["validate", "--config", str(fifo)], tmp_path)
    assert res.returncode == 2, res.stdout + res.stderr
    assert "not a regular file" in res.stdout + res.stderr and "c.yaml" in res.stdout + res.stderr


@pytest.mark.skipif(not os.path.exists("/dev/null"), reason="needs /dev/null")
def test_device_is_refused_by_the_reader():
    with pytest.raises(DataError, match=r"/dev/null: is not a regular file"):
        read_table("/dev/null")


def test_directory_keeps_its_own_message(tmp_path):
    with pytest.raises(DataError, match="is a directory"):
        read_table(tmp_path)
