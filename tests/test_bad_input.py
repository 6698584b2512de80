"""Every bad input is a one-line error naming the file and the setting or column (exit 2,
nothing written), or it is supported and read right; and atomic writes never touch another
writer's temporary file."""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from churnml import _atomic
from churnml._atomic import atomic_path
from churnml.config import ColumnsConfig, DataConfig
from churnml.errors import DataError
from churnml.io import load_dataset, parse_date, read_customers, read_events, read_transactions
from churnml.scoring import resolve_as_of

runner = CliRunner()
HEADER = "customer_id,timestamp,amount\n"
GOOD = HEADER + "a,2024-01-01,10\nb,2024-01-02,20\na,2024-02-01,5\n"


def _xlsx_bytes(df: pd.DataFrame, tmp: Path, **kw) -> bytes:
    p = tmp / "_scratch.xlsx"
    df.to_excel(p, index=False, **kw)
    data = p.read_bytes()
    p.unlink()
    return data


def _parquet_bytes(df: pd.DataFrame, tmp: Path) -> bytes:
    p = tmp / "_scratch.parquet"
    df.to_parquet(p)
    data = p.read_bytes()
    p.unlink()
    return data


def _random_log_gz(tmp: Path) -> bytes:
    rng = np.random.default_rng(0)
    rows = "".join(f"c{rng.integers(10**6)},2024-01-{rng.integers(1, 29):02d},{rng.random() * 100:.2f}\n" for _ in range(5000))
    return gzip.compress((HEADER + rows).encode())[:20000]


# name -> (file name, content (bytes, str, or a function of tmp_path), config lines, needles in the message)
ERRORS = {
    "binary_garbage": ("tx.csv", np.random.default_rng(1).bytes(3000), "", ["not a text CSV", "binary content"]),
    "plain_text_named_gz": ("tx.csv.gz", GOOD, "", ["named .gz but not gzip-compressed"]),
    "gzip_named_csv": ("tx.csv", gzip.compress(GOOD.encode()), "", ["gzip-compressed", "name it .csv.gz"]),
    "truncated_gzip": ("tx.csv.gz", _random_log_gz, "", ["damaged or truncated gzip"]),
    "parquet_named_csv": (
        "tx.csv",
        lambda tmp: _parquet_bytes(pd.DataFrame({"customer_id": ["a"], "timestamp": ["2024-01-01"], "amount": [1.0]}), tmp),
        "", ["it is a Parquet file"],
    ),
    "xlsx_named_csv": (
        "tx.csv",
        lambda tmp: _xlsx_bytes(pd.DataFrame({"customer_id": ["a"], "timestamp": ["2024-01-01"], "amount": [1.0]}), tmp),
        "", ["zip archive", ".xlsx"],
    ),
    "legacy_xls": ("tx.xls", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(500), "", [".xls files are not supported"]),
    "zip_compressed": ("tx.csv.zip", b"PK\x03\x04" + bytes(100), "", ["zip-compressed files are not supported"]),
    "only_a_bom": ("tx.csv", b"\xef\xbb\xbf", "", ["the file is empty"]),
    "mixed_encodings_in_ids": (
        "tx.csv", HEADER.encode() + b"ab\xff\xfe,2024-01-01,10\nM\xc3\xbcller,2024-01-02,20\n", "",
        ["mixed text encodings", "line 3", "line 2", "data.encoding"],
    ),
    "latin1_with_utf8_setting": (
        "tx.csv", (HEADER + "caf\xe9,2024-01-01,10\n").encode("latin-1"), "encoding: utf-8",
        ["cannot decode as utf-8", "data.encoding", "line 2"],
    ),
    "aware_mixed_with_naive": (
        "tx.csv", HEADER + "a,2024-01-01T10:00+02:00,10\nb,2024-06-01T10:00,20\n", "",
        ["'timestamp'", "data.timezone", "line 3", "2024-06-01T10:00"],
    ),
    "posix_style_offset": ("tx.csv", HEADER + "a,2024-01-01 10:00 GMT+2,10\n", "", ["'timestamp'", "POSIX sign", "+02:00", "line 2"]),
    "posix_style_offset_among_others": (
        "tx.csv", HEADER + "a,2024-01-01T10:00+02:00,10\nb,2024-01-01 10:00 UTC-3,10\n", "", ["POSIX sign", "line 3"],
    ),
    "year_2500": ("tx.csv", HEADER + "a,2024-01-01,10\nb,2500-01-01,20\n", "", ["'timestamp'", "outside the supported range", "line 3: timestamp='2500-01-01'"]),
    "year_0001": ("tx.csv", HEADER + "a,0001-01-01,10\nb,2024-01-02,20\n", "", ["'timestamp'", "outside the supported range", "line 2: timestamp='0001-01-01'"]),
    "amount_1e300": ("tx.csv", HEADER + "a,2024-01-01,10\nb,2024-01-02,1e300\nb,2024-01-02,1e300\n", "", ["'amount'", "data.max_abs_amount", "2 row(s)", "line 3: amount='1e300'"]),
    "amount_infinite": ("tx.csv", HEADER + "a,2024-01-01,inf\nb,2024-01-02,2\n", "", ["'amount'", "infinite", "line 2: amount='inf'"]),
    "quantity_times_price_absurd": (
        "tx.csv", "cid,ts,qty,price\na,2024-01-01,1,2\nb,2024-01-02,10000000,10000000\n",
        "columns: {customer_id: cid, timestamp: ts, amount: null, quantity: qty, unit_price: price}",
        ["'qty' x 'price'", "data.max_abs_amount", "line 3"],
    ),
    "ragged_short_row": ("tx.csv", HEADER + "a,2024-01-01,10\nb,2024-01-02\nc,2024-01-03,3\n", "", ["the header has 3 fields", "line 3: 'b,2024-01-02' (2 field(s))"]),
    "ragged_long_row": ("tx.csv", HEADER + "a,2024-01-01,10\nb,2024-01-02,20,99\n", "", ["the header has 3 fields", "line 3", "(4 field(s))"]),
    "every_row_longer_than_header": ("tx.csv", HEADER + "a,2024-01-01,10,x\nb,2024-01-02,20,y\n", "", ["2 row(s)", "line 2", "line 3"]),
    "ragged_whitespace_separated": ("tx.txt", "customer_id timestamp amount\na 2024-01-01 1\nc 2024-01-02\n", "", ["line 3", "(2 field(s))"]),
    "ragged_multichar_separator": ("tx.csv", "customer_id||timestamp||amount\na||2024-01-01||1\nc||2024-01-02\n", "", ["separator '||'", "line 3"]),
    "ragged_quoted_fields": ("tx.csv", HEADER + '"a","2024-01-01","1"\n"b","2024-01-02"\n', "", ["line 3", "(2 field(s))"]),
    "ragged_gzipped": ("tx.csv.gz", gzip.compress((HEADER + "a,2024-01-01,10\nb,2024-01-02\n").encode()), "", ["line 3", "(2 field(s))"]),
    "ragged_cr_line_ends": ("tx.csv", (HEADER + "a,2024-01-01,10\nb,2024-01-02\n").replace("\n", "\r"), "", ["line 3", "(2 field(s))"]),
    "ragged_with_quotes_after_spaces": (
        "tx.csv", 'customer_id, timestamp, amount\n"a", "2024-01-01", 1\n"b", "2024-01-02"\n', "", ["line 3", "(2 field(s))"],
    ),
    "footer_line": ("tx.csv", GOOD + "Exported by ShopSystem 3.1\n", "", ["line 5", "(1 field(s))"]),
    "duplicate_column": ("tx.csv", "customer_id,timestamp,amount,amount\na,2024-01-01,10,1\n", "", ["ambiguous header", "'amount' is column 3, 4"]),
    "unterminated_quote": ("tx.csv", HEADER + 'a,2024-01-01,"10\nb,2024-01-02,20\n', "", ["cannot parse as CSV", "data.sep"]),
    "unterminated_quote_in_unused_column": (
        "tx.csv", "customer_id,timestamp,amount,note\na,2024-01-01,10,ok\nb,2024-01-02,20,\"open\nc,2024-01-03,30,x\n", "",
        ["cannot parse as CSV", "EOF inside string"],
    ),
    "csv_names_count": (
        "tx.csv", "a,2024-01-01,10\n", "csv_names: [customer_id, timestamp, amount, extra]", ["data.csv_names lists 4 columns", "line 1"],
    ),
    "numbers_as_timestamps_parquet": (
        "tx.parquet",
        lambda tmp: _parquet_bytes(pd.DataFrame({"customer_id": ["a", "b"], "timestamp": [20240101, 20240105], "amount": [1.0, 2.0]}), tmp),
        "", ["'timestamp'", "holds numbers", "data.timestamp_format", "row 0: timestamp=20240101"],
    ),
    "excel_date_serials": (
        "tx.xlsx",
        lambda tmp: _xlsx_bytes(pd.DataFrame({"customer_id": ["a", "b"], "timestamp": [45292, 45293], "amount": [1.0, 2.0]}), tmp),
        "", ["'timestamp'", "holds numbers", "row 2: timestamp=45292"],
    ),
    "excel_sheet_missing": (
        "tx.xlsx",
        lambda tmp: _xlsx_bytes(pd.DataFrame({"customer_id": ["a"], "timestamp": [pd.Timestamp("2024-01-01")], "amount": [1.0]}), tmp, sheet_name="Orders"),
        "sheet: Nope", ["data.sheet 'Nope'", "['Orders']"],
    ),
    "excel_that_is_not": ("tx.xlsx", GOOD, "", ["not an Excel .xlsx workbook"]),
}


def _write(path: Path, content, tmp: Path) -> None:
    if callable(content):
        content = content(tmp)
    path.write_bytes(content if isinstance(content, bytes) else content.encode())


def _cli(tmp_path: Path, args: list[str], config: str = "") -> tuple[int, str]:
    cmd = list(args)
    if config:
        cfg = tmp_path / "c.yaml"
        cfg.write_text("data:\n" + "".join(f"  {line}\n" for line in config.splitlines()))
        cmd += ["--config", str(cfg)]
    res = runner.invoke(app_cli(), cmd)
    return res.exit_code, res.output


def app_cli():
    from churnml.cli import app

    return app


def _error_line(output: str) -> str:
    lines = [line for line in output.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, output
    return lines[0]


def _inputs_only(tmp_path: Path, inputs: set[str]) -> None:
    left = {str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")}
    assert left == inputs, f"left behind: {sorted(left - inputs)}"


@pytest.mark.parametrize("case", list(ERRORS))
def test_bad_transaction_file_exits_2_naming_file_and_rows(tmp_path, case):
    name, content, config, needles = ERRORS[case]
    tx = tmp_path / name
    _write(tx, content, tmp_path)
    out = tmp_path / "out.csv"
    code, output = _cli(tmp_path, ["rfm", "--transactions", str(tx), "--out", str(out)], config)
    assert code == 2, output
    assert "Traceback" not in output
    line = _error_line(output)
    assert name in line
    for needle in needles:
        assert needle in line, (needle, line)
    _inputs_only(tmp_path, {name} | ({"c.yaml"} if config else set()))


def test_directory_instead_of_a_file(tmp_path):
    (tmp_path / "tx.csv").mkdir()
    code, output = _cli(tmp_path, ["rfm", "--transactions", str(tmp_path / "tx.csv"), "--out", str(tmp_path / "o.csv")])
    assert code == 2 and "is a directory" in _error_line(output) and "data.transactions" in output
    _inputs_only(tmp_path, {"tx.csv"})


@pytest.mark.parametrize(
    ("setting", "needle"),
    [("encoding: klingon-8", "data.encoding"), ("timezone: Mars/Olympus", "data.timezone"), ("max_abs_amount: -1", "data.max_abs_amount"),
     ("sep: ''", "data.sep")],
)
def test_bad_reading_settings_exit_2_naming_the_key(tmp_path, setting, needle):
    tx = tmp_path / "tx.csv"
    tx.write_text(GOOD)
    code, output = _cli(tmp_path, ["validate", "--transactions", str(tx)], setting)
    assert code == 2 and needle in output and "Traceback" not in output


@pytest.mark.parametrize("command", ["validate", "features", "rfm", "backtest", "train", "run"])
def test_every_command_loads_through_the_same_checks(tmp_path, monkeypatch, command):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    tx = tmp_path / "tx.csv"
    tx.write_text(HEADER + "a,2024-01-01,10\nb,2024-01-02\n")
    args = [command, "--transactions", str(tx)]
    if command in ("features", "rfm"):
        args += ["--out", str(tmp_path / "o.parquet")]
    if command in ("backtest", "run"):
        args += ["--out-dir", str(tmp_path / "out")]
    code, output = _cli(tmp_path, args)
    assert code == 2, output
    assert "tx.csv" in _error_line(output) and "line 3" in output
    _inputs_only(tmp_path, {"tx.csv"})


def test_backtest_horizon_longer_than_the_log(tmp_path, monkeypatch):
    from conftest import random_log

    monkeypatch.chdir(tmp_path)
    tx = tmp_path / "tx.csv"
    random_log(100, 600, seed=3).to_csv(tx, index=False)  # two years
    cfg = tmp_path / "c.yaml"
    cfg.write_text("churn:\n  horizon_days: 1000\n  bootstrap_resamples: 0\n")
    res = runner.invoke(app_cli(), ["backtest", "--config", str(cfg), "--transactions", str(tx), "--out-dir", str(tmp_path / "out")])
    assert res.exit_code == 2, res.output
    line = _error_line(res.output)
    assert "churn.horizon_days (1000)" in line and "the log covers" in line and "Traceback" not in res.output
    _inputs_only(tmp_path, {"tx.csv", "c.yaml"})


@pytest.mark.parametrize(
    ("table", "content", "needles"),
    [
        ("events", "customer_id,timestamp,type,value\na,2024-01-01T10:00Z,nps,9\na,2024-01-02 10:00,nps,8\n", ["events.csv", "data.timezone", "line 3"]),
        ("events", "customer_id,timestamp,type,value\na,2024-01-01,nps,inf\n", ["events.csv", "'value'", "line 2"]),
        ("customers", "customer_id,segment\na,x\nb\n", ["customers.csv", "line 3"]),
        ("customers", b"customer_id,segment\n" + bytes(range(256)) * 4, ["customers.csv", "not a text"]),
    ],
)
def test_side_tables_follow_the_same_rules(tmp_path, table, content, needles):
    tx = tmp_path / "tx.csv"
    tx.write_text(GOOD)
    side = tmp_path / f"{table}.csv"
    _write(side, content, tmp_path)
    with pytest.raises(DataError) as exc:
        load_dataset(DataConfig(transactions=str(tx), **{table: str(side)}))
    msg = str(exc.value)
    assert "\n" not in msg
    for needle in needles:
        assert needle in msg, (needle, msg)


# ------------------------------------------------------------------ supported inputs


def _tx(path, **kw):
    return read_transactions(path, **kw)


def test_latin1_csv_is_read_as_windows_1252_with_a_note(tmp_path):
    p = tmp_path / "tx.csv"
    p.write_bytes((HEADER + "caf\xe9,2024-01-01,10\nM\xfcller,2024-01-02,20\nb,2024-01-03,1\n").encode("cp1252"))
    tx, report = _tx(p)
    assert sorted(tx["customer_id"]) == ["Müller", "b", "café"]
    assert report.encoding == "cp1252"
    assert len(report.notes) == 1 and "not valid UTF-8" in report.notes[0] and "line 2" in report.notes[0]
    assert "data.encoding" in report.notes[0] and "not valid UTF-8" in str(report)


def test_latin1_byte_undefined_in_cp1252_falls_back_to_latin1(tmp_path):
    p = tmp_path / "tx.csv"
    p.write_bytes(HEADER.encode() + b"x\x81y,2024-01-01,10\n")
    tx, report = _tx(p)
    assert tx["customer_id"].tolist() == ["x\x81y"] and report.encoding == "latin-1"


def test_explicit_encoding_setting(tmp_path):
    p = tmp_path / "tx.csv"
    p.write_bytes((HEADER + "\u0161ef,2024-01-01,10\n").encode("iso-8859-2"))
    tx, report = _tx(p, encoding="iso-8859-2")
    assert tx["customer_id"].tolist() == ["šef"] and report.encoding == "iso-8859-2" and report.notes == []


def _reference(tmp_path) -> pd.DataFrame:
    p = tmp_path / "ref.csv"
    p.write_text(HEADER + "café,2024-01-01 10:30,10.5\n007,2024-01-02 00:00,20\ncafé,2024-02-01 23:59,-3.25\n")
    return _tx(p)[0]


@pytest.mark.parametrize(
    ("encoding", "sep", "found"),
    [("utf-16", "\t", "utf-16"), ("utf-16", ",", "utf-16"), ("utf-16-le", ",", "utf-16-le"), ("utf-16-be", "\t", "utf-16-be"),
     ("utf-8-sig", ",", "utf-8-sig"), ("utf-32", ";", "utf-32")],
)
def test_utf16_and_bom_files_read_like_utf8(tmp_path, encoding, sep, found):
    text = (HEADER + "café,2024-01-01 10:30,10.5\n007,2024-01-02 00:00,20\ncafé,2024-02-01 23:59,-3.25\n").replace(",", sep)
    p = tmp_path / "tx.csv"
    p.write_bytes(text.encode(encoding))
    tx, report = _tx(p)
    pd.testing.assert_frame_equal(tx, _reference(tmp_path))
    assert report.encoding == found


def test_xlsx_equals_the_csv(tmp_path):
    ref = _reference(tmp_path)
    df = pd.DataFrame(
        {"customer_id": ["café", "007", "café"], "timestamp": pd.to_datetime(["2024-01-01 10:30", "2024-01-02 00:00", "2024-02-01 23:59"]),
         "amount": [10.5, 20, -3.25], "note": ["x", None, "z"]}
    )
    p = tmp_path / "tx.xlsx"
    with pd.ExcelWriter(p) as xw:
        pd.DataFrame({"about": ["cover sheet"]}).to_excel(xw, sheet_name="Cover", index=False)
        df.to_excel(xw, sheet_name="Orders", index=False)
    for sheet in ("Orders", 1):
        tx, report = _tx(p, sheet=sheet)
        pd.testing.assert_frame_equal(tx, ref)
        assert report.encoding is None
    with pytest.raises(DataError, match="missing column"):
        _tx(p)  # the first sheet is the cover


def test_xlsx_blank_rows_skipped_and_rows_named_by_sheet_row(tmp_path):
    p = tmp_path / "tx.xlsx"
    df = pd.DataFrame({"customer_id": ["a", None, "b"], "timestamp": ["2024-01-01", None, "not a date"], "amount": [1.0, None, 2.0]})
    df.to_excel(p, index=False)
    with pytest.raises(DataError) as exc:
        _tx(p)
    assert "row 4: timestamp='not a date'" in str(exc.value) and "1 row(s)" in str(exc.value)


def test_excel_numbers_with_a_timestamp_format(tmp_path):
    p = tmp_path / "tx.xlsx"
    pd.DataFrame({"customer_id": ["a", "b"], "timestamp": [20240101, 20240105], "amount": [1, 2]}).to_excel(p, index=False)
    tx, _ = _tx(p, timestamp_format="%Y%m%d")
    assert tx["timestamp"].tolist() == [pd.Timestamp("2024-01-01"), pd.Timestamp("2024-01-05")]


def test_mixed_offsets_are_converted_to_utc(tmp_path):
    p = tmp_path / "tx.csv"
    p.write_text(HEADER + "a,2024-01-01T10:00+02:00,1\nb,2024-06-01T10:00+03:00,2\nc,2024-03-01T10:00Z,3\nd,2024-03-02 23:30:00-05:00,4\n")
    tx, report = _tx(p)
    got = dict(zip(tx["customer_id"], tx["timestamp"]))
    assert got == {"a": pd.Timestamp("2024-01-01 08:00"), "b": pd.Timestamp("2024-06-01 07:00"),
                   "c": pd.Timestamp("2024-03-01 10:00"), "d": pd.Timestamp("2024-03-03 04:30")}
    assert tx["timestamp"].dtype == "datetime64[ns]"
    assert any("converted to UTC" in n and "+02:00" in n and "Z" in n for n in report.notes)


def test_timezone_setting_reads_naive_times_as_local(tmp_path):
    p = tmp_path / "tx.csv"
    # Helsinki: UTC+2 in winter, +3 in summer; 2024-03-31 03:30 does not exist, 2024-10-27 03:30 occurs twice
    p.write_text(HEADER + "a,2024-01-15 10:00,1\nb,2024-06-01 10:00,2\nc,2024-06-01T10:00+00:00,3\n"
                 "d,2024-03-31 03:30,4\ne,2024-10-27 03:30,5\n")
    tx, report = _tx(p, timezone="Europe/Helsinki")
    got = dict(zip(tx["customer_id"], tx["timestamp"]))
    assert got == {"a": pd.Timestamp("2024-01-15 08:00"), "b": pd.Timestamp("2024-06-01 07:00"), "c": pd.Timestamp("2024-06-01 10:00"),
                   "d": pd.Timestamp("2024-03-31 01:00"), "e": pd.Timestamp("2024-10-27 00:30")}
    assert any("Europe/Helsinki" in n for n in report.notes)
    # all naive: the same rule (fast path)
    p.write_text(HEADER + "a,2024-01-15 10:00,1\nb,2024-06-01 10:00,2\n")
    tx, _ = _tx(p, timezone="Europe/Helsinki")
    assert tx["timestamp"].tolist() == [pd.Timestamp("2024-01-15 08:00"), pd.Timestamp("2024-06-01 07:00")]
    # without the setting naive times are taken as they are
    assert _tx(p)[0]["timestamp"].tolist() == [pd.Timestamp("2024-01-15 10:00"), pd.Timestamp("2024-06-01 10:00")]


def test_tz_aware_parquet_is_converted_to_utc(tmp_path):
    p = tmp_path / "tx.parquet"
    ts = pd.to_datetime(["2024-01-01 00:30", "2024-07-01 00:30"]).tz_localize("Europe/Helsinki")
    pd.DataFrame({"customer_id": ["a", "b"], "timestamp": ts, "amount": [1.0, 2.0]}).to_parquet(p)
    tx, _ = _tx(p)
    assert tx["timestamp"].tolist() == [pd.Timestamp("2023-12-31 22:30"), pd.Timestamp("2024-06-30 21:30")]


@pytest.mark.parametrize(
    ("text", "sep"),
    [("customer_id||timestamp||amount\na||2024-01-01||1\nb||2024-01-02||2\n", None),
     ("customer_id::timestamp::amount\na::2024-01-01::1\nb::2024-01-02::2\n", None),
     ("customer_id~|~timestamp~|~amount\na~|~2024-01-01~|~1\nb~|~2024-01-02~|~2\n", "~|~")],
)
def test_multi_character_separators(tmp_path, text, sep):
    p = tmp_path / "tx.csv"
    p.write_text(text)
    tx, _ = _tx(p, sep=sep)
    assert tx["customer_id"].tolist() == ["a", "b"] and tx["amount"].tolist() == [1.0, 2.0]


@pytest.mark.parametrize("newline", ["\n", "\r\n", "\r"])
def test_line_ends_blank_lines_and_no_final_newline(tmp_path, newline):
    p = tmp_path / "tx.csv"
    p.write_bytes(newline.join(["customer_id,timestamp,amount", "a,2024-01-01,1", "", "  ", "b,2024-01-02,2"]).encode())
    tx, _ = _tx(p)
    assert tx["customer_id"].tolist() == ["a", "b"] and tx["amount"].tolist() == [1.0, 2.0]


def test_not_ragged_quoted_fields_spaces_and_blank_lines(tmp_path):
    p = tmp_path / "tx.csv"
    p.write_text('customer_id, timestamp, amount, note\n"a", "2024-01-01", 1, "x, y"\n\n   \nb, 2024-01-02, 2, "two\nlines"\n')
    tx, _ = _tx(p)
    assert tx["customer_id"].tolist() == ["a", "b"] and tx["amount"].tolist() == [1.0, 2.0]


TRICKY = (
    '\ufeffInvoice,Customer ID,InvoiceDate,Quantity,Price,Description,\r\n'
    '1001,17,2024-01-05 10:00,2,3.50,"cup, blue",\r\n'
    '1001,17,2024-01-05 10:00,1,10.00,"say ""hi""",\r\n'
    '1002,,2024-01-07 08:00,5,1.00,,\r\n'
    'C1003,17,2024-02-10 09:00,-1,3.50,"two\r\nlines",\r\n'
    '1005,18,2024-03-01 08:00,4,2.00,plain,\r\n'
    '\r\n'
)


def test_fast_reader_equals_the_pandas_reader(tmp_path, monkeypatch):
    from churnml import io as cio

    p = tmp_path / "retail.csv"
    p.write_text(TRICKY, newline="")
    cols = ColumnsConfig(customer_id="Customer ID", timestamp="InvoiceDate", order_id="Invoice", amount=None,
                         quantity="Quantity", unit_price="Price")
    used = []
    real = cio._read_csv_arrow
    monkeypatch.setattr(cio, "_read_csv_arrow", lambda *a, **k: used.append(1) or real(*a, **k))
    fast, fast_report = _tx(p, columns=cols)
    assert used, "the fast reader was not used"
    monkeypatch.setattr(cio, "_read_csv_arrow", lambda *a, **k: None)
    slow, slow_report = _tx(p, columns=cols)
    pd.testing.assert_frame_equal(fast, slow)
    assert fast_report.to_dict() == slow_report.to_dict()
    assert fast_report.rows_missing_customer == 1 and fast["amount"].tolist() == [17.0, -3.5, 8.0]


def test_fast_reader_equals_the_pandas_reader_on_a_whole_table(tmp_path, monkeypatch):
    from churnml import io as cio

    p = tmp_path / "customers.csv"
    p.write_text("customer_id,segment,,segment,score\n1,web,x,a,1.5\n2,,y,b,\n3,\"store, north\",z,c,2\n")
    fast = read_customers(p)
    monkeypatch.setattr(cio, "_read_csv_arrow", lambda *a, **k: None)
    slow = read_customers(p)
    pd.testing.assert_frame_equal(fast, slow)
    assert list(fast.columns) == ["segment", "Unnamed: 2", "segment.1", "score"]


def test_side_tables_latin1_and_xlsx(tmp_path):
    ev = tmp_path / "events.csv"
    ev.write_bytes("customer_id;timestamp;type;value\ncaf\xe9;2024-01-01T10:00+02:00;NPS;9\n".encode("latin-1"))
    events = read_events(ev)
    assert events["customer_id"].tolist() == ["café"] and events["timestamp"].tolist() == [pd.Timestamp("2024-01-01 08:00")]
    cust = tmp_path / "customers.xlsx"
    pd.DataFrame({"customer_id": ["007", "café"], "age": [30, 41]}).to_excel(cust, index=False)
    attrs = read_customers(cust)
    assert attrs.index.tolist() == ["007", "café"] and attrs["age"].tolist() == [30, 41]


def test_as_of_and_cutoff_with_a_time_zone_are_utc():
    tx = pd.DataFrame({"timestamp": pd.to_datetime(["2024-01-01", "2024-03-01"])})
    assert resolve_as_of(tx, "2024-02-01T00:00+02:00") == pd.Timestamp("2024-01-31 22:00")
    assert resolve_as_of(tx, "2024-02-01") == pd.Timestamp("2024-02-01")
    for bad, needle in [("", "not a date"), ("soon", "not a date"), ("2500-01-01", "outside the supported date range")]:
        with pytest.raises(DataError, match=f"--as-of.*{needle}"):
            resolve_as_of(tx, bad)
    assert parse_date("2024-02-01T12:00Z", setting="--cutoff") == pd.Timestamp("2024-02-01 12:00")


def test_cli_cutoff_with_an_offset(tmp_path):
    tx = tmp_path / "tx.csv"
    tx.write_text(GOOD)
    out = tmp_path / "f.csv"
    code, output = _cli(tmp_path, ["features", "--transactions", str(tx), "--cutoff", "2024-01-03T00:00+02:00", "--out", str(out)])
    assert code == 0, output
    assert pd.read_csv(out)["as_of"].unique().tolist() == ["2024-01-02 22:00:00"]


# ------------------------------------------------------------------ atomic writes


def _temp_name(target: Path, pid: int, host: str = _atomic._HOST) -> Path:
    return target.parent / f".{target.name}.{pid}@{host}.abc123.tmp"


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_temp_files_of_other_writers_survive_dead_ones_are_removed(tmp_path):
    target = tmp_path / "scores.csv"
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        keep = [
            _temp_name(target, live.pid),  # a writer still running
            _temp_name(target, _dead_pid(), host="otherhost"),  # another machine's: cannot tell
            tmp_path / f".{target.name}.legacy123.tmp",  # not our naming
        ]
        dead = _temp_name(target, _dead_pid())
        for p in [*keep, dead]:
            p.write_text("partial")
        with atomic_path(target) as tmp:
            tmp.write_text("new")
        assert target.read_text() == "new"
        assert all(p.read_text() == "partial" for p in keep)
        assert not dead.exists()
    finally:
        live.kill()
        live.wait()


def test_two_concurrent_writers_do_not_break_each_other(tmp_path):
    target = tmp_path / "out.csv"
    inside, release, errors = threading.Event(), threading.Event(), []

    def slow_writer():
        try:
            with atomic_path(target) as tmp:
                tmp.write_text("slow")
                inside.set()
                assert release.wait(10)
        except Exception as err:  # noqa: BLE001
            errors.append(err)

    t = threading.Thread(target=slow_writer)
    t.start()
    assert inside.wait(10)
    with atomic_path(target) as tmp:  # a second writer starts and finishes meanwhile
        tmp.write_text("fast")
    assert target.read_text() == "fast"
    release.set()
    t.join(10)
    assert errors == []
    assert target.read_text() == "slow"  # last rename wins, both complete
    assert [p.name for p in tmp_path.iterdir()] == ["out.csv"]


def test_failed_write_removes_only_its_own_temp_and_keeps_the_old_file(tmp_path):
    target = tmp_path / "out.csv"
    target.write_text("old")
    foreign = _temp_name(target, os.getppid())
    foreign.write_text("theirs")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("boom")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([foreign.name, "out.csv"])


def test_file_and_folder_are_fsynced_before_and_after_the_rename(tmp_path, monkeypatch):
    events = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        events.append(("fsync", os.path.realpath(f"/proc/self/fd/{fd}") if Path("/proc/self/fd").exists() else fd))
        real_fsync(fd)

    def replace(a, b):
        events.append(("replace", str(b)))
        real_replace(a, b)

    monkeypatch.setattr(_atomic.os, "fsync", fsync)
    monkeypatch.setattr(_atomic.os, "replace", replace)
    target = tmp_path / "out.csv"
    with atomic_path(target) as tmp:
        tmp.write_text("data")
    kinds = [e[0] for e in events]
    assert kinds == ["fsync", "replace", "fsync"]
    if Path("/proc/self/fd").exists():
        assert events[0][1].endswith(".tmp") and events[2][1] == str(tmp_path.resolve())
    assert target.read_text() == "data"
