"""Environment faults (exit 4) and refused consumer inputs (exit 2), issue #16 part A.

Faults are simulated: the tests run as root, so read-only folders are a patched os.replace /
tempfile.mkstemp / writer raising the OS error; a file in place of a parent folder and a folder
at the output path are built for real; an unreachable server is a free port on 127.0.0.1.
"""

from __future__ import annotations

import errno
import os
import socket
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from churnml.cli import app
from churnml.errors import ChurnmlError, DataError, EnvironmentFault, ModelError

runner = CliRunner()


def _scores(folder: Path, n: int = 60) -> Path:
    """A small scores file with the columns `churnml score` writes that the consumers need."""
    rng = np.random.default_rng(0)
    df = pd.DataFrame({
        "customer_id": [f"c{i}" for i in range(n)],
        "churn_probability": rng.uniform(0.05, 0.95, n),
        "predicted_clv": rng.uniform(10, 100, n),
        "value_if_retained": rng.uniform(10, 100, n),
        "segment": rng.choice(["high risk / high value", "low risk / low value"], n),
        "as_of": pd.Timestamp("2021-01-01"),
    })
    df["value_at_risk"] = df["churn_probability"] * df["value_if_retained"]
    df["risk_tier"] = np.where(df["churn_probability"] > 0.5, "high", "low")
    df["value_tier"] = np.where(df["value_if_retained"] > 50, "high", "low")
    df["p_alive"] = 1 - df["churn_probability"]
    df["expected_purchases"] = rng.uniform(0, 3, n)
    df["expected_avg_spend"] = rng.uniform(10, 40, n)
    df["action"] = "none"
    path = folder / "scores.parquet"
    df.to_parquet(path)
    return path


def _transactions(folder: Path) -> Path:
    from churnml.datasets import simulate

    tx, _ = simulate(60, start="2020-01-01", end="2021-01-01", seed=3)
    path = folder / "tx.csv"
    tx.to_csv(path, index=False)
    return path


def _one_line_error(res, code: int, *needles: str) -> str:
    assert res.exit_code == code, res.output
    assert res.exception is None or isinstance(res.exception, SystemExit), repr(res.exception)
    lines = [ln for ln in res.output.splitlines() if ln.startswith("error: ")]
    assert len(lines) == 1, res.output
    assert "Traceback" not in res.output
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


def _no_temp_files(folder: Path) -> None:
    assert not [p.name for p in folder.iterdir() if p.name.endswith(".tmp")]


def test_exit_codes_are_distinct_per_kind():
    assert EnvironmentFault.exit_code == 4 and issubclass(EnvironmentFault, ChurnmlError)
    assert {DataError.exit_code, ModelError.exit_code, EnvironmentFault.exit_code} == {2, 3, 4}
    assert not issubclass(EnvironmentFault, ValueError)  # not "bad input"


# ---- outputs: the previous file stays intact, exit 4 names the path and the OS reason ---------------------


def _fail_on(target: str, exc: OSError):
    real = {"replace": os.replace, "mkstemp": tempfile.mkstemp}

    def replace(src, dst, *a, **k):
        if target == "replace":
            raise exc.__class__(exc.errno, os.strerror(exc.errno), str(src), None, str(dst))
        return real["replace"](src, dst, *a, **k)

    def mkstemp(*a, **k):
        if target == "mkstemp":
            raise exc.__class__(exc.errno, os.strerror(exc.errno), str(Path(k.get("dir", ".")) / (k.get("prefix", "") + "x.tmp")))
        return real["mkstemp"](*a, **k)

    return replace, mkstemp


@pytest.mark.parametrize(
    "where, code, reason",
    [
        ("replace", errno.EROFS, "read-only file system"),
        ("mkstemp", errno.EACCES, "permission denied"),
        ("mkstemp", errno.EROFS, "read-only file system"),
        ("writer", errno.ENOSPC, "disk full"),
    ],
)
def test_unwritable_output_exits_4_and_keeps_the_old_file(tmp_path, monkeypatch, where, code, reason):
    scores = _scores(tmp_path)
    out = tmp_path / "kpis.csv"
    out.write_text("previous output\n")
    if where == "writer":  # the disk fills while the table is written
        def full(self, *a, **k):
            raise OSError(code, os.strerror(code))

        monkeypatch.setattr(pd.DataFrame, "to_csv", full)
    else:
        replace, mkstemp = _fail_on(where, OSError(code, os.strerror(code)))
        monkeypatch.setattr(os, "replace", replace)
        monkeypatch.setattr(tempfile, "mkstemp", mkstemp)
    res = runner.invoke(app, ["kpis", "-s", str(scores), "-o", str(out)])
    line = _one_line_error(res, 4, reason, errno.errorcode[code])
    if where != "writer":  # the OS named a file: the message names the target, not a temporary file
        assert str(out) in line and ".tmp" not in line
    assert out.read_text() == "previous output\n"
    _no_temp_files(tmp_path)


def test_output_under_a_file_exits_4(tmp_path):
    scores = _scores(tmp_path)
    blocker = tmp_path / "reports"
    blocker.write_text("i am a file")
    res = runner.invoke(app, ["kpis", "-s", str(scores), "-o", str(blocker / "kpis.csv")])
    _one_line_error(res, 4, "reports", "not a folder")
    assert blocker.read_text() == "i am a file"


def test_output_path_that_is_a_folder_exits_4_and_the_folder_stays(tmp_path):
    scores = _scores(tmp_path)
    out = tmp_path / "list.csv"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    res = runner.invoke(app, ["at-risk", "-s", str(scores), "-o", str(out)])
    _one_line_error(res, 4, str(out), "EISDIR")
    assert (out / "keep.txt").read_text() == "x"
    _no_temp_files(tmp_path)


def test_output_under_a_nonexistent_root_exits_4(tmp_path, monkeypatch):
    """A missing mount point (root may create folders anywhere, so the refusal is simulated)."""
    scores = _scores(tmp_path)
    real_mkdir = os.mkdir

    def mkdir(path, *a, **k):
        if str(path).startswith("/no-such-mount"):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))
        return real_mkdir(path, *a, **k)

    monkeypatch.setattr(os, "mkdir", mkdir)
    res = runner.invoke(app, ["kpis", "-s", str(scores), "-o", "/no-such-mount/x/kpis.csv"])
    _one_line_error(res, 4, "/no-such-mount", "permission denied")
    assert not Path("/no-such-mount").exists()


def test_report_on_a_full_disk_keeps_the_old_report(tmp_path, monkeypatch):
    scores = _scores(tmp_path)
    out = tmp_path / "report.html"
    out.write_text("<p>old</p>")
    replace, _ = _fail_on("replace", OSError(errno.ENOSPC, "x"))
    monkeypatch.setattr(os, "replace", replace)
    res = runner.invoke(app, ["report", "-s", str(scores), "-o", str(out)])
    _one_line_error(res, 4, "disk full", str(out))
    assert out.read_text() == "<p>old</p>"


def test_unreadable_input_exits_4_but_a_missing_one_exits_2(tmp_path, monkeypatch):
    import builtins

    tx = _transactions(tmp_path)
    real_open = builtins.open

    def deny(file, *a, **k):
        if str(file) == str(tx):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(file))
        return real_open(file, *a, **k)

    monkeypatch.setattr(builtins, "open", deny)
    res = runner.invoke(app, ["validate", "-t", str(tx)])
    _one_line_error(res, 4, str(tx), "Permission denied")
    monkeypatch.setattr(builtins, "open", real_open)
    res = runner.invoke(app, ["validate", "-t", str(tmp_path / "nope.csv")])
    _one_line_error(res, 2, "nope.csv", "not found")


def test_a_programming_error_is_not_turned_into_exit_4(tmp_path, monkeypatch):
    import churnml.segments

    def broken(*a, **k):
        raise TypeError("bug")

    monkeypatch.setattr(churnml.segments, "kpis", broken)
    res = runner.invoke(app, ["kpis", "-s", str(_scores(tmp_path))])
    assert res.exit_code == 1 and isinstance(res.exception, TypeError)


# ---- consumers of scores and bad flags: exit 2 with a message, nothing written -------------------------------


def test_truncated_parquet_is_bad_input_for_kpis_and_report(tmp_path):
    good = _scores(tmp_path).read_bytes()
    cut = tmp_path / "cut.parquet"
    cut.write_bytes(good[: len(good) // 2])
    res = runner.invoke(app, ["kpis", "-s", str(cut)])
    _one_line_error(res, 2, str(cut), "truncated")
    out = tmp_path / "report.html"
    res = runner.invoke(app, ["report", "-s", str(cut), "-o", str(out)])
    _one_line_error(res, 2, str(cut))
    assert not out.exists()


@pytest.mark.parametrize(
    "args, needles",
    [
        (["kpis", "--by", "region"], ["--by 'region'", "segment"]),
        (["at-risk", "--top", "-5", "-o", "{tmp}/list.csv"], ["--top -5"]),
        (["at-risk", "--top", "0", "-o", "{tmp}/list.csv"], ["--top 0"]),
        (["campaign", "--budget", "nan", "-o", "{tmp}/plan.csv"], ["--budget nan", "finite"]),
        (["campaign", "--budget", "inf", "-o", "{tmp}/plan.csv"], ["--budget inf", "finite"]),
        (["campaign", "--budget", "-1", "-o", "{tmp}/plan.csv"], ["--budget -1"]),
    ],
)
def test_consumers_refuse_bad_flags(tmp_path, args, needles):
    scores = _scores(tmp_path)
    before = set(tmp_path.iterdir())
    res = runner.invoke(app, [args[0], "-s", str(scores), *[a.format(tmp=tmp_path) for a in args[1:]]])
    _one_line_error(res, 2, *needles)
    assert set(tmp_path.iterdir()) == before  # nothing written


def test_rfm_observation_end_before_all_data(tmp_path):
    tx = _transactions(tmp_path)
    first = pd.read_csv(tx, parse_dates=["timestamp"])["timestamp"].min()
    out = tmp_path / "rfm.csv"
    res = runner.invoke(app, ["rfm", "-t", str(tx), "-o", str(out), "--observation-end", "2019-06-30"])
    _one_line_error(res, 2, "--observation-end 2019-06-30", str(first.date()))
    assert not out.exists()
    res = runner.invoke(app, ["rfm", "-t", str(tx), "-o", str(out), "--observation-end", str(first.date())])
    assert res.exit_code == 0, res.output  # the first day itself is a valid (short) study


def test_train_as_of_not_a_date(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    tx = _transactions(tmp_path)
    res = runner.invoke(app, ["train", "-t", str(tx), "--as-of", "notadate", "--tracking-uri", f"sqlite:///{tmp_path}/m.db"])
    _one_line_error(res, 2, "--as-of 'notadate'", "YYYY-MM-DD")
    assert not (tmp_path / "m.db").exists()


def test_score_spark_on_csv_is_refused_before_loading_anything(tmp_path):
    tx = _transactions(tmp_path)
    out = tmp_path / "scores"
    res = runner.invoke(app, ["score", "-m", str(tmp_path / "absent.joblib"), "-t", str(tx), "-o", str(out), "--engine", "spark"])
    _one_line_error(res, 2, "--engine spark reads Parquet", str(tx))
    assert not out.exists()


# ---- tracking store: exit 4 naming the URI or the store path, fast -------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def no_training(monkeypatch):
    """Training must not start when the store is unusable: fitting is an assertion failure (exit 1)."""
    import churnml.pipeline

    def fit(*a, **k):
        raise AssertionError("training started although the tracking store is unusable")

    monkeypatch.setattr(churnml.pipeline, "fit_pipeline", fit)


@pytest.mark.parametrize("cmd", ["train", "promote"])
def test_unreachable_tracking_server_exits_4_fast(tmp_path, monkeypatch, no_training, cmd):
    monkeypatch.chdir(tmp_path)
    uri = f"http://127.0.0.1:{_free_port()}"
    args = [cmd, "--tracking-uri", uri] + (["-t", str(_transactions(tmp_path))] if cmd == "train" else [])
    t0 = time.monotonic()
    res = runner.invoke(app, args)
    _one_line_error(res, 4, uri, "unreachable")
    assert time.monotonic() - t0 < 30


@pytest.mark.parametrize("cmd", ["train", "promote"])
@pytest.mark.parametrize("garbage", [b"\x00garbage\xff" * 400, b"SQLite format 3\x00" + b"\xde\xad" * 4000])
def test_corrupt_sqlite_store_exits_4_and_is_left_alone(tmp_path, monkeypatch, no_training, cmd, garbage):
    monkeypatch.chdir(tmp_path)
    db = tmp_path / "mlflow.db"
    db.write_bytes(garbage)
    uri = f"sqlite:///{db}"
    args = [cmd, "--tracking-uri", uri] + (["-t", str(_transactions(tmp_path))] if cmd == "train" else [])
    res = runner.invoke(app, args)
    _one_line_error(res, 4, str(db))
    assert db.read_bytes() == garbage


@pytest.mark.parametrize("cmd", ["train", "promote"])
def test_default_store_in_a_read_only_working_directory(tmp_path, monkeypatch, no_training, cmd):
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    tx = _transactions(tmp_path)
    real = tempfile.mkstemp

    def mkstemp(*a, **k):
        if Path(k.get("dir") or ".").resolve() == work.resolve():
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(work))
        return real(*a, **k)

    monkeypatch.setattr(tempfile, "mkstemp", mkstemp)
    res = runner.invoke(app, [cmd] + (["-t", str(tx)] if cmd == "train" else []))
    _one_line_error(res, 4, str(work.resolve() / "mlflow.db"), "read-only", "mlflow.tracking_uri")
    assert list(work.iterdir()) == []


def test_store_errors_map_store_failures_and_pass_mlflow_answers_through():
    import sqlalchemy.exc
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import RESOURCE_DOES_NOT_EXIST

    from churnml.tracking import _store_errors

    with pytest.raises(EnvironmentFault, match="sqlite:///x.db"):
        with _store_errors("sqlite:///x.db"):
            raise sqlalchemy.exc.OperationalError("SELECT 1", {}, Exception("disk I/O error"))
    with pytest.raises(EnvironmentFault, match="http://127.0.0.1:1"):
        with _store_errors("http://127.0.0.1:1"):
            raise MlflowException("API request to http://127.0.0.1:1/api failed with exception Max retries exceeded")
    with pytest.raises(MlflowException):  # "no such model" is an answer, not a fault
        with _store_errors("sqlite:///x.db"):
            raise MlflowException("Registered Model with name=m not found", error_code=RESOURCE_DOES_NOT_EXIST)
