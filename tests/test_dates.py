"""Dates are read one way per column or refused (issue 23, item 1): one format per column,
day-first vs month-first decided by the values or refused naming data.timestamp_format,
mixed formats and time-only values refused, dates outside a plausible window refused; every
refusal is one line naming the file, the column and example rows, exit 2, nothing written."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from churnml.config import DataConfig
from churnml.errors import ConfigError, DataError
from churnml.io import date_window, prepare_events, prepare_transactions, read_events, read_transactions

runner = CliRunner()
HEADER = "customer_id,timestamp,amount\n"


def _csv(tmp_path, rows: list[str], name: str = "tx.csv"):
    p = tmp_path / name
    p.write_text(HEADER + "".join(f"c{i},{ts},{i + 1}\n" for i, ts in enumerate(rows)))
    return p


def _dates(tx: pd.DataFrame) -> list[str]:
    return sorted(tx["timestamp"].dt.strftime("%Y-%m-%d %H:%M"))


def _refused(p, *needles, **kw) -> str:
    with pytest.raises(DataError) as exc:
        read_transactions(p, **kw)
    msg = str(exc.value)
    assert "\n" not in msg and str(p) in msg and "'timestamp'" in msg, msg
    for needle in needles:
        assert needle in msg, (needle, msg)
    return msg


# --------------------------------------------------------------------------- day/month order


def test_day_first_column_is_read_day_first_everywhere(tmp_path):
    # the case: before, 05/03 became May 3 while 13/02 was Feb 13 (the log "ended" 2024-05-03)
    tx, _ = read_transactions(_csv(tmp_path, ["13/02/2024", "05/03/2024", "01/02/2024"]))
    assert _dates(tx) == ["2024-02-01 00:00", "2024-02-13 00:00", "2024-03-05 00:00"]


def test_day_over_12_late_in_the_file_decides_for_the_rows_before_it(tmp_path):
    rows = [f"{d:02d}/03/2024" for d in range(1, 13)] * 3 + ["25/03/2024"]
    tx, _ = read_transactions(_csv(tmp_path, rows))
    assert tx["timestamp"].max() == pd.Timestamp("2024-03-25")
    assert set(tx["timestamp"].dt.month) == {3}  # 05/03 is March 5, not May 3


def test_month_first_column_with_times_and_dots(tmp_path):
    tx, _ = read_transactions(_csv(tmp_path, ["05/03/2024 10:30", "01/22/2024 08:00"]))
    assert _dates(tx) == ["2024-01-22 08:00", "2024-05-03 10:30"]
    tx, _ = read_transactions(_csv(tmp_path, ["13.02.2024", "01.02.2024"]))
    assert _dates(tx) == ["2024-02-01 00:00", "2024-02-13 00:00"]


def test_ambiguous_order_is_refused_naming_the_setting_and_rows(tmp_path):
    p = _csv(tmp_path, ["05/03/2024", "01/02/2024", "02/02/2024", "03/02/2024"])
    msg = _refused(p, "day-first and month-first", "data.timestamp_format", "line 2: timestamp='05/03/2024'", "line 3")
    assert msg.count("line ") <= 3  # up to 3 example rows


def test_ambiguous_order_reads_with_an_explicit_format(tmp_path):
    p = _csv(tmp_path, ["05/03/2024", "01/02/2024"])
    assert _dates(read_transactions(p, timestamp_format="%d/%m/%Y")[0]) == ["2024-02-01 00:00", "2024-03-05 00:00"]
    assert _dates(read_transactions(p, timestamp_format="%m/%d/%Y")[0]) == ["2024-01-02 00:00", "2024-05-03 00:00"]


def test_column_mixing_day_first_and_month_first_is_refused(tmp_path):
    _refused(_csv(tmp_path, ["13/02/2024", "02/13/2024"]), "day-first", "month-first", "line 2", "line 3")


# --------------------------------------------------------------------------- mixed formats, times


def test_mixed_formats_are_refused_with_one_row_per_format(tmp_path):
    p = _csv(tmp_path, ["2024-01-02", "03/04/2024", "5 Jan 2024", "20240107"])
    _refused(
        p, "mixes date formats", "data.timestamp_format",
        "line 2: timestamp='2024-01-02'", "line 3: timestamp='03/04/2024'", "line 4: timestamp='5 Jan 2024'",
        "YYYYMMDD (20240131): '20240107'",  # the 4th format is named; example rows stop at 3
    )


def test_a_second_format_deep_in_a_large_column_is_found(tmp_path):
    n = 60_000
    ts = pd.date_range("2021-01-01", periods=n, freq="7min").strftime("%Y-%m-%d %H:%M:%S").to_numpy(dtype=object)
    ts[45_678] = "03/04/2024"  # past the sampled head: found when the ISO parse misses it
    df = pd.DataFrame({"customer_id": (np.arange(n) % 999).astype(str), "timestamp": ts, "amount": 1.0})
    with pytest.raises(DataError) as exc:
        prepare_transactions(df)
    assert "mixes date formats" in str(exc.value) and "row 45678: timestamp='03/04/2024'" in str(exc.value)


def test_time_only_value_is_refused(tmp_path):
    _refused(_csv(tmp_path, ["2024-01-02", "10:00", "2024-01-03"]), "times without a date", "line 3: timestamp='10:00'")


def test_unparseable_text_is_still_named_as_unparseable(tmp_path):
    _refused(_csv(tmp_path, ["2024-01-02", "not a date"]), "unparseable", "line 3: timestamp='not a date'")


@pytest.mark.parametrize(
    ("rows", "expected"),
    [
        (["2024-01-02", "2024-01-03 10:00", "2024-01-04T11:30:00"], ["2024-01-02 00:00", "2024-01-03 10:00", "2024-01-04 11:30"]),
        (["2024-01-02T10:00:00+02:00", "2024-01-03T10:00:00-05:00"], ["2024-01-02 08:00", "2024-01-03 15:00"]),
        (["2024-01-02T10:00:00Z", "2024-01-03T10:00:00Z"], ["2024-01-02 10:00", "2024-01-03 10:00"]),
        (["20240105", "20240217"], ["2024-01-05 00:00", "2024-02-17 00:00"]),
        (["5 Jan 2024", "17 Feb 2024"], ["2024-01-05 00:00", "2024-02-17 00:00"]),
    ],
)
def test_one_format_per_column_keeps_working(tmp_path, rows, expected):
    assert _dates(read_transactions(_csv(tmp_path, rows))[0]) == expected


def test_explicit_cdnow_format_keeps_working(tmp_path):
    p = tmp_path / "cdnow.txt"
    p.write_text("00001 19970101 1 11.77\n00002 19970112 1 12.00\n00002 19970326 2 77.00\n")
    from churnml.config import ColumnsConfig

    tx, _ = read_transactions(
        p, sep="\\s+", names=["customer_id", "date", "qty", "amount"], timestamp_format="%Y%m%d",
        columns=ColumnsConfig(customer_id="customer_id", timestamp="date", amount="amount"),
    )
    assert _dates(tx) == ["1997-01-01 00:00", "1997-01-12 00:00", "1997-03-26 00:00"]


# --------------------------------------------------------------------------- plausible window


@pytest.mark.parametrize("stray", ["1900-01-01", "2200-01-01", "1969-12-31"])
def test_dates_outside_the_default_window_are_refused(tmp_path, stray):
    _refused(_csv(tmp_path, ["2024-01-02", stray]), "plausible window 1970-01-01", "data.max_date", f"line 3: timestamp='{stray}'")


def test_default_window_ends_the_day_after_the_run_date(tmp_path):
    today = pd.Timestamp.now(tz="UTC").tz_localize(None).normalize()
    lo, hi = date_window()
    assert lo == pd.Timestamp("1970-01-01") and today + pd.Timedelta(days=1) < hi < today + pd.Timedelta(days=2)
    tomorrow, later = (today + pd.Timedelta(days=1)).strftime("%Y-%m-%d"), (today + pd.Timedelta(days=2)).strftime("%Y-%m-%d")
    assert len(read_transactions(_csv(tmp_path, ["2024-01-02", tomorrow]))[0]) == 2
    _refused(_csv(tmp_path, ["2024-01-02", later]), f"line 3: timestamp='{later}'")


def test_window_is_configurable_and_inclusive(tmp_path):
    p = _csv(tmp_path, ["1960-05-01", "2024-01-02 23:59"])
    tx, _ = read_transactions(p, min_date="1960-01-01", max_date="2024-01-02")
    assert _dates(tx) == ["1960-05-01 00:00", "2024-01-02 23:59"]
    _refused(p, "2000-01-01 .. 2024-01-01", "line 3", min_date="2000-01-01", max_date="2024-01-01")


def test_events_are_checked_against_the_same_window(tmp_path):
    p = tmp_path / "events.csv"
    p.write_text("customer_id,timestamp,type,value\na,2024-01-01,nps,9\nb,2200-01-01,nps,8\n")
    with pytest.raises(DataError) as exc:
        read_events(p)
    assert "events.csv" in str(exc.value) and "line 3: timestamp='2200-01-01'" in str(exc.value)
    raw = pd.DataFrame({"customer_id": ["a"], "timestamp": ["2030-01-01"], "type": ["nps"], "value": [1]})
    assert len(prepare_events(raw, max_date="2030-12-31")) == 1


def test_window_config_keys_are_validated():
    assert DataConfig(min_date="1990-01-01").min_date == "1990-01-01"
    import datetime

    assert DataConfig(max_date=datetime.date(2030, 1, 2)).max_date == "2030-01-02"  # YAML reads dates unquoted
    for bad in ({"min_date": "01/02/2024"}, {"max_date": "2024-02-30"}, {"min_date": "2024-01-02", "max_date": "2024-01-01"}):
        with pytest.raises(Exception):
            DataConfig(**bad)


# --------------------------------------------------------------------------- CLI: exit 2, one line, nothing written


@pytest.mark.parametrize(
    ("rows", "config", "needles"),
    [
        (["05/03/2024", "01/02/2024"], "", ["data.timestamp_format", "line 2"]),
        (["2024-01-02", "03/04/2024", "5 Jan 2024", "20240107"], "", ["mixes date formats", "line 4", "'20240107'"]),
        (["2024-01-02", "10:00"], "", ["times without a date", "line 3"]),
        (["2024-01-02", "2200-01-01"], "", ["plausible window", "line 3"]),
        (["2024-01-02", "2023-01-01"], "data:\n  min_date: 2023-06-01\n", ["2023-06-01", "line 3"]),
    ],
)
def test_cli_refuses_dates_with_exit_2_and_writes_nothing(tmp_path, rows, config, needles):
    from churnml.cli import app

    tx = _csv(tmp_path, rows)
    args = ["rfm", "--transactions", str(tx), "--out", str(tmp_path / "out.csv")]
    inputs = {"tx.csv"}
    if config:
        (tmp_path / "c.yaml").write_text(config)
        args += ["--config", str(tmp_path / "c.yaml")]
        inputs.add("c.yaml")
    res = runner.invoke(app, args)
    assert res.exit_code == 2, res.output
    lines = [line for line in res.output.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "tx.csv" in lines[0] and "'timestamp'" in lines[0], res.output
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    assert {p.name for p in tmp_path.iterdir()} == inputs


def test_bad_window_key_in_config_is_a_config_error(tmp_path):
    from churnml.config import load_config

    (tmp_path / "c.yaml").write_text("data:\n  max_date: tomorrow\n")
    with pytest.raises(ConfigError) as exc:
        load_config(tmp_path / "c.yaml")
    assert "max_date" in str(exc.value)


# --------------------------------------------------------------------------- --as-of / --cutoff: the same window


def _log(tmp_path):
    return _csv(tmp_path, [f"2024-01-{d:02d}" for d in range(2, 20)])


@pytest.mark.parametrize(
    ("cmd", "flag", "value"),
    [
        (["score", "--model", "models:/m@challenger", "--out", "s.parquet"], "--as-of", "2200-01-01"),
        (["train", "--model-name", "m"], "--as-of", "2200-01-01"),
        (["features", "--out", "f.parquet"], "--cutoff", "1900-01-01"),
        (["run", "--no-track", "--out-dir", "out"], "--cutoff", "1900-01-01"),
        (["run", "--no-track", "--out-dir", "out"], "--cutoff", "2200-01-01"),
        (["rfm", "--out", "r.csv"], "--observation-end", "1900-01-01"),
    ],
)
def test_date_flags_outside_the_window_exit_2_naming_the_flag(tmp_path, monkeypatch, cmd, flag, value):
    from churnml.cli import app

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    tx = _log(tmp_path)
    res = runner.invoke(app, [*cmd, "--transactions", str(tx), flag, value])
    assert res.exit_code == 2, res.output
    lines = [line for line in res.output.splitlines() if line.startswith("error:")]
    hi = date_window()[1].date()
    assert len(lines) == 1, res.output
    assert f"{flag} {value} is outside the plausible window 1970-01-01 .. {hi}" in lines[0], lines[0]
    assert "data.min_date / data.max_date" in lines[0]
    assert {p.name for p in tmp_path.iterdir()} == {"tx.csv"}  # no output, no store, no folder


def test_configured_window_applies_to_cutoff_and_its_closing_midnight_is_inside(tmp_path, monkeypatch):
    from churnml.cli import app

    monkeypatch.chdir(tmp_path)
    tx = _log(tmp_path)
    (tmp_path / "c.yaml").write_text("data:\n  max_date: 2024-01-19\n")
    base = ["features", "--config", str(tmp_path / "c.yaml"), "--transactions", str(tx)]
    res = runner.invoke(app, [*base, "--out", "late.parquet", "--cutoff", "2024-01-21"])
    assert res.exit_code == 2 and "--cutoff 2024-01-21 is outside the plausible window 1970-01-01 .. 2024-01-19" in res.output
    assert not (tmp_path / "late.parquet").exists()
    res = runner.invoke(app, [*base, "--out", "f.parquet", "--cutoff", "2024-01-20"])  # exclusive: the day after max_date
    assert res.exit_code == 0, res.output
    assert (pd.read_parquet(tmp_path / "f.parquet")["as_of"] == pd.Timestamp("2024-01-20")).all()


def test_date_inside_the_window_still_works(tmp_path, monkeypatch):
    from churnml.cli import app

    monkeypatch.chdir(tmp_path)
    tx = _log(tmp_path)
    res = runner.invoke(app, ["features", "--transactions", str(tx), "--cutoff", "2024-01-10", "--out", "f.parquet"])
    assert res.exit_code == 0, res.output
    snap = pd.read_parquet(tmp_path / "f.parquet")
    assert (snap["as_of"] == pd.Timestamp("2024-01-10")).all()
    assert len(snap) == 8  # c0..c7 bought 2024-01-02..09, before the cutoff


def test_resolve_as_of_and_cutoff_check_the_configured_window():
    from churnml.io import Dataset, LoadReport
    from churnml.jobs import resolve_cutoff
    from churnml.scoring import resolve_as_of

    tx = pd.DataFrame({"customer_id": ["a", "b"], "timestamp": pd.to_datetime(["2024-01-02", "2024-01-05"]),
                       "amount": [1.0, 2.0]})
    data = DataConfig(min_date="2024-01-01", max_date="2024-01-31")
    with pytest.raises(DataError, match=r"--as-of 1990-01-01 is outside the plausible window 2024-01-01 \.\. 2024-01-31"):
        resolve_as_of(tx, "1990-01-01", data=data)
    assert resolve_as_of(tx, "2024-01-04", data=data) == pd.Timestamp("2024-01-04")
    ds = Dataset(transactions=tx, report=LoadReport.__new__(LoadReport))
    with pytest.raises(DataError, match=r"--cutoff 2024-03-01 is outside the plausible window 2024-01-01 \.\. 2024-01-31"):
        resolve_cutoff(ds, "2024-03-01", data=data)
    assert resolve_cutoff(ds, "2024-01-04", data=data) == pd.Timestamp("2024-01-04")
