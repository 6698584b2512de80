from __future__ import annotations

import gzip

import numpy as np
import pandas as pd
import pytest

from churnml.config import ColumnsConfig, DataConfig
from churnml.errors import DataError
from churnml.io import load_dataset, prepare_transactions, read_customers, read_events, read_transactions

RETAIL_COLUMNS = ColumnsConfig(
    customer_id="Customer ID", timestamp="InvoiceDate", order_id="Invoice", amount=None,
    quantity="Quantity", unit_price="Price",
)


def _retail_csv(path):
    path.write_text(
        "Invoice,StockCode,Quantity,InvoiceDate,Price,Customer ID\n"
        "1001,A,2,2024-01-05 10:00,3.50,17\n"
        "1001,B,1,2024-01-05 10:00,10.00,17\n"
        "1002,A,1,2024-02-01 12:30,3.50,17\n"
        "C1003,A,-1,2024-02-10 09:00,3.50,17\n"
        "1004,C,5,2024-01-07 08:00,1.00,\n"
        "1005,C,4,2024-03-01 08:00,2.00,18\n"
        "1005,D,-1,2024-03-01 08:00,2.00,18\n"
    )
    return path


def test_order_lines_collapse_and_returns_net(tmp_path):
    tx, report = read_transactions(_retail_csv(tmp_path / "retail.csv"), columns=RETAIL_COLUMNS)
    assert report.rows_read == 7
    assert report.rows_missing_customer == 1
    assert report.order_lines == 6
    assert report.orders == 4 and report.purchase_events == 3 and report.return_events == 1
    assert report.customers == 2
    assert list(tx.columns[:5]) == ["customer_id", "timestamp", "amount", "is_return", "n_lines"]
    c17 = tx[tx.customer_id == "17"]
    assert c17["amount"].tolist() == [17.0, 3.5, -3.5]
    assert c17["is_return"].tolist() == [False, False, True]
    assert c17["n_lines"].tolist() == [2, 1, 1]
    # a negative line inside an order is netted in that order
    assert tx.loc[tx.customer_id == "18", "amount"].tolist() == [6.0]


def test_returns_drop(tmp_path):
    tx, report = read_transactions(_retail_csv(tmp_path / "retail.csv"), columns=RETAIL_COLUMNS, returns="drop")
    assert report.rows_negative_dropped == 2
    assert not tx["is_return"].any()
    assert tx.loc[tx.customer_id == "18", "amount"].tolist() == [8.0]
    assert report.return_events == 0 and report.orders == 3


def test_without_order_id_customer_and_timestamp_form_an_order():
    raw = pd.DataFrame(
        {"cust": ["a", "a", "a", "b"], "ts": ["2024-01-01 10:00", "2024-01-01 10:00", "2024-01-01 11:00", "2024-01-02"],
         "amt": ["1.5", "2", "4", "8"]}
    )
    tx, report = prepare_transactions(raw, columns=ColumnsConfig(customer_id="cust", timestamp="ts", amount="amt"))
    assert report.orders == 3
    assert tx["amount"].tolist() == [3.5, 4.0, 8.0]


def test_missing_column_lists_what_exists(tmp_path):
    p = _retail_csv(tmp_path / "retail.csv")
    with pytest.raises(DataError) as exc:
        read_transactions(p, columns=ColumnsConfig(customer_id="CustomerID", timestamp="InvoiceDate"))
    msg = str(exc.value)
    assert str(p) in msg and "'CustomerID'" in msg and "'Customer ID'" in msg and "'Invoice'" in msg


def test_unparseable_timestamps_show_line_numbers(tmp_path):
    p = tmp_path / "tx.csv"
    p.write_text("customer_id,timestamp,amount\na,2024-01-01,1\nb,not a date,2\nc,2024-01-03,3\nd,31/02/2024,4\n")
    with pytest.raises(DataError) as exc:
        read_transactions(p)
    msg = str(exc.value)
    assert "'timestamp'" in msg and "line 3" in msg and "not a date" in msg and "line 5" in msg
    assert "2 row(s)" in msg


def test_non_numeric_amounts_show_line_numbers(tmp_path):
    p = tmp_path / "tx.csv"
    p.write_text("customer_id,timestamp,amount\na,2024-01-01,1\nb,2024-01-02,12,5\n".replace("12,5", '"12,5"') + "c,2024-01-03,abc\n")
    with pytest.raises(DataError) as exc:
        read_transactions(p)
    msg = str(exc.value)
    assert "'amount'" in msg and "line 3" in msg and "'12,5'" in msg and "line 4" in msg and "'abc'" in msg


@pytest.mark.parametrize("content", ["", "customer_id,timestamp,amount\n"])
def test_empty_file(tmp_path, content):
    p = tmp_path / "tx.csv"
    p.write_text(content)
    with pytest.raises(DataError, match="empty|no rows"):
        read_transactions(p)


def test_all_customer_ids_missing(tmp_path):
    p = tmp_path / "tx.csv"
    p.write_text("customer_id,timestamp,amount\n,2024-01-01,1\n  ,2024-01-02,2\n")
    with pytest.raises(DataError, match="customer id"):
        read_transactions(p)


def test_gzip_parquet_and_whitespace_formats_agree(tmp_path):
    df = pd.DataFrame(
        {"customer_id": ["007", "007", "010"], "timestamp": ["20240101", "20240105", "20240103"], "amount": [1.0, 2.5, 4.0]}
    )
    csv = tmp_path / "tx.csv"
    df.to_csv(csv, index=False)
    gz = tmp_path / "tx.csv.gz"
    with gzip.open(gz, "wt") as fh:
        fh.write(csv.read_text())
    ws = tmp_path / "tx.txt"
    ws.write_text("\n".join(" ".join(map(str, r)) for r in [df.columns, *df.itertuples(index=False)]) + "\n")
    pq = tmp_path / "tx.parquet"
    df.to_parquet(pq)
    frames = [read_transactions(p, timestamp_format="%Y%m%d")[0] for p in (csv, gz, ws, pq)]
    for other in frames[1:]:
        pd.testing.assert_frame_equal(frames[0], other)
    # ids keep leading zeros: they are labels, not numbers
    assert frames[0]["customer_id"].tolist() == ["007", "007", "010"]


def test_parquet_missing_column(tmp_path):
    pq = tmp_path / "tx.parquet"
    pd.DataFrame({"cid": ["a"], "timestamp": [pd.Timestamp("2024-01-01")], "amount": [1.0]}).to_parquet(pq)
    with pytest.raises(DataError, match="'customer_id'.*the file has: 'cid'"):
        read_transactions(pq)


def test_timezone_aware_timestamps_become_utc():
    raw = pd.DataFrame({"customer_id": ["a"], "timestamp": ["2024-01-01T23:30:00+02:00"], "amount": [1]})
    tx, _ = prepare_transactions(raw)
    assert tx["timestamp"].iloc[0] == pd.Timestamp("2024-01-01 21:30")


def test_customers_and_events_tables(tmp_path):
    cust = tmp_path / "customers.csv"
    cust.write_text("Id,Gender,Channel\n1,0,web\n2,1,store\n")
    attrs = read_customers(cust, id_column="Id")
    assert attrs.index.tolist() == ["1", "2"] and attrs["Gender"].dtype.kind in "if"
    ev = tmp_path / "events.csv"
    ev.write_text(
        "customer_id,timestamp,type,value\n1,2024-01-02,NPS ,9\n1,2024-01-03,complaint,\n2,2024-01-04,csat,4\n"
    )
    events = read_events(ev)
    assert events["type"].tolist() == ["nps", "complaint", "csat"]
    assert np.isnan(events["value"].iloc[1]) and events["value"].iloc[0] == 9
    dup = tmp_path / "dup.csv"
    dup.write_text("Id,Gender\n1,0\n1,1\n")
    with pytest.raises(DataError, match="duplicate customer ids"):
        read_customers(dup, id_column="Id")
    bad = tmp_path / "bad_events.csv"
    bad.write_text("customer_id,timestamp,type,value\n1,2024-01-02,nps,nine\n")
    with pytest.raises(DataError, match="line 2.*'nine'"):
        read_events(bad)


def test_load_dataset_bundled_cdnow_sample():
    cfg = DataConfig(
        transactions="bundled:cdnow_sample",
        csv_names=["customer_id", "sample_id", "date", "number_of_cds", "dollar_value"],
        columns=ColumnsConfig(customer_id="customer_id", timestamp="date", amount="dollar_value"),
        timestamp_format="%Y%m%d",
    )
    ds = load_dataset(cfg)
    assert ds.report.customers == 2357
    assert ds.report.rows_read == 6919
    assert ds.transactions["timestamp"].min() == pd.Timestamp("1997-01-01")
    assert ds.transactions["timestamp"].max() == pd.Timestamp("1998-06-30")


def test_no_transaction_file():
    with pytest.raises(DataError, match="--transactions"):
        load_dataset(DataConfig())
