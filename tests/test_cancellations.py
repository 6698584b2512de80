"""Cancellations in every shape (issue 22): hand-built retail logs with invoice numbers and credit
notes ("C<number>", negative quantities), checked through the load report, the snapshot features
and the BTYD summary at cutoffs before, between and after the orders and their cancellation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from churnml.config import ColumnsConfig
from churnml.features import snapshot_features
from churnml.io import prepare_transactions, purchases
from churnml.pipeline import check_point_in_time
from churnml.sanity import observed_rates
from churnml.value import rfm_at

COLUMNS = ColumnsConfig(customer_id="Customer ID", timestamp="InvoiceDate", order_id="Invoice", amount=None,
                        quantity="Quantity", unit_price="Price")
NO_IDS = ColumnsConfig(customer_id="Customer ID", timestamp="InvoiceDate", order_id=None, amount=None,
                       quantity="Quantity", unit_price="Price")
AFTER = pd.Timestamp("2011-04-01")  # a cutoff after everything

# (customer, invoice, time, quantity, unit price): one row per order line
LINES = [
    # R: the case. An earlier order of 500, then 22,998 invoiced in two orders, cancelled by
    # one credit note and re-invoiced at 21,536 the same day
    ("R", "536001", "2011-01-20 10:00", 50, 10.0),
    ("R", "536100", "2011-03-01 09:00", 500, 10.0), ("R", "536100", "2011-03-01 09:00", 500, 10.0),  # 10,000
    ("R", "536101", "2011-03-01 11:00", 1000, 12.0), ("R", "536101", "2011-03-01 11:00", 1, 998.0),  # 12,998
    ("R", "C536110", "2011-03-01 15:00", -1000, 10.0), ("R", "C536110", "2011-03-01 15:00", -1000, 12.998),
    ("R", "536111", "2011-03-01 15:05", 1000, 21.536),  # the re-invoice
    # B: one credit note cancels two orders (no re-invoice); the January order stays
    ("B", "536002", "2011-01-05 12:00", 4, 10.0),  # 40.00
    ("B", "536200", "2011-02-01 12:00", 3, 8.5),  # 25.50
    ("B", "536201", "2011-02-03 12:00", 1, 74.5),  # 74.50
    ("B", "C536202", "2011-02-04 12:00", -1, 100.0),  # 25.50 + 74.50
    # P: partial cancellation of one order (one of its two lines), plus a later order
    ("P", "536300", "2011-02-01 12:00", 6, 10.0), ("P", "536300", "2011-02-01 12:00", 4, 10.0),  # 100.00
    ("P", "C536301", "2011-02-02 12:00", -4, 10.0),  # 40.00 of it
    ("P", "536302", "2011-02-10 12:00", 3, 10.0),  # 30.00
    # U: a credit note that matches no order (goodwill refund): a return from its own date
    ("U", "536400", "2011-02-01 12:00", 3, 10.0),
    ("U", "C536401", "2011-02-05 12:00", -1, 45.0),
    # O: the customer's only order, cancelled 12 minutes later
    ("O", "536500", "2011-02-01 12:00", 8, 10.0),
    ("O", "C536501", "2011-02-01 12:12", -8, 10.0),
    # Z: an order cancelled inside itself (its lines net to zero at the order's own time)
    ("Z", "536600", "2011-02-01 12:00", 8, 10.0), ("Z", "536600", "2011-02-01 12:00", -8, 10.0),
    # N: a partial cancellation inside the order (a negative line in the same invoice)
    ("N", "536700", "2011-02-01 12:00", 6, 10.0), ("N", "536700", "2011-02-01 12:00", -2, 10.0),
]


def _raw(lines=LINES) -> pd.DataFrame:
    return pd.DataFrame(lines, columns=["Customer ID", "Invoice", "InvoiceDate", "Quantity", "Price"])


@pytest.fixture(params=["with order ids", "without order ids"])
def loaded(request):
    cols = COLUMNS if request.param == "with order ids" else NO_IDS
    return prepare_transactions(_raw(), columns=cols)


def _feats(tx, cutoff):
    return snapshot_features(tx, pd.Timestamp(cutoff))


def test_load_report_counts_what_was_matched(loaded):
    tx, report = loaded
    # R: 2 orders by one credit note; B: 2 orders by one credit note; O: 1 order by one credit note
    assert report.cancellations == 5
    assert report.multi_order_credit_notes == 2
    assert report.orders_netting_to_zero == 1  # Z
    assert report.unmatched_returns == 2  # P's partial credit note, U's refund
    assert report.return_events == 5  # credit notes of R, B, P, U, O
    d = report.to_dict()
    assert {"multi_order_credit_notes", "orders_netting_to_zero", "unmatched_returns"} <= set(d)


def test_one_credit_note_cancels_two_orders_and_the_reinvoice_counts_once(loaded):
    tx, _ = loaded
    f = _feats(tx, AFTER)
    r, b = f.loc["R"], f.loc["B"]
    # R: the 500 order and the 21,536 re-invoice; the two cancelled orders and the credit note are gone
    assert r["n_purchases"] == 2 and r["frequency"] == 1 and r["recency"] == 40
    assert r["net_spend"] == pytest.approx(22_036.0) and r["total_spend"] == pytest.approx(22_036.0)
    assert r["n_returns"] == 0 and r["return_amount"] == 0
    assert r["monetary_value"] == pytest.approx(21_536.0)  # the repeat day at the new price
    # B: only January's 40.00 is left
    assert b["n_purchases"] == 1 and b["frequency"] == 0 and b["net_spend"] == pytest.approx(40.0)
    assert b["recency_days"] == pytest.approx((AFTER - pd.Timestamp("2011-01-05 12:00")) / pd.Timedelta(days=1))
    # the BTYD summary agrees (days, the run's lifetimes input)
    s = rfm_at(tx, AFTER, time_unit="D")
    assert s.loc["R", "frequency"] == 1 and s.loc["R", "recency"] == 40
    assert s.loc["R", "monetary_value"] == pytest.approx(21_536.0)
    assert s.loc["B", "frequency"] == 0 and s.loc["B", "T"] == (AFTER - pd.Timestamp("2011-01-05")).days


def test_what_a_cutoff_between_order_and_cancellation_sees(loaded):
    tx, _ = loaded
    # between the second order and the credit note: both orders stand in full (nobody knew yet)
    r = _feats(tx, "2011-03-01 12:00").loc["R"]
    assert r["n_purchases"] == 3 and r["net_spend"] == pytest.approx(23_498.0)
    # between the credit note and the re-invoice: the two orders never happened, nor the credit note
    r = _feats(tx, "2011-03-01 15:02").loc["R"]
    assert r["n_purchases"] == 1 and r["net_spend"] == pytest.approx(500.0) and r["n_returns"] == 0
    # B before its credit note: three purchases
    assert _feats(tx, "2011-02-04 00:00").loc["B", "n_purchases"] == 3
    for cut in ["2011-02-01 12:05", "2011-02-04 00:00", "2011-03-01 12:00", "2011-03-01 15:02", AFTER]:
        check_point_in_time(lambda t, c: snapshot_features(t, c), tx, cut)


@pytest.mark.parametrize("cut", ["2011-02-01 12:05", "2011-02-02 00:00", "2011-02-04 00:00", "2011-03-01 12:00",
                                 "2011-03-01 15:02", "2011-03-01 16:00"])
def test_loading_only_the_rows_before_a_cutoff_gives_the_same_features(cut):
    """The matching is point in time: a credit note's match depends on no row after it."""
    raw = _raw()
    cut = pd.Timestamp(cut)
    full, _ = prepare_transactions(raw, columns=COLUMNS)
    past, _ = prepare_transactions(raw.loc[pd.to_datetime(raw["InvoiceDate"]) < cut], columns=COLUMNS)
    pd.testing.assert_frame_equal(snapshot_features(past, cut), snapshot_features(full, cut))


def test_partial_cancellation_keeps_the_order_at_its_net_amount(loaded):
    tx, _ = loaded
    f = _feats(tx, AFTER)
    p, n = f.loc["P"], f.loc["N"]
    assert p["n_purchases"] == 2 and p["frequency"] == 1
    assert p["net_spend"] == pytest.approx(90.0) and p["total_spend"] == pytest.approx(130.0)
    assert p["n_returns"] == 1 and p["return_amount"] == pytest.approx(40.0)
    # before the credit note the order counted in full; the credit note nets from its own date
    assert _feats(tx, "2011-02-02 00:00").loc["P", "net_spend"] == pytest.approx(100.0)
    assert n["n_purchases"] == 1 and n["net_spend"] == pytest.approx(40.0) and n["n_returns"] == 0


def test_a_credit_note_matching_no_order_is_a_return(loaded):
    tx, _ = loaded
    u = _feats(tx, AFTER).loc["U"]
    assert u["n_purchases"] == 1 and u["net_spend"] == pytest.approx(-15.0)
    assert u["n_returns"] == 1 and u["return_amount"] == pytest.approx(45.0)


def test_a_fully_cancelled_only_order_is_no_purchase(loaded):
    tx, _ = loaded
    f = _feats(tx, AFTER)
    assert "O" not in f.index and "Z" not in f.index
    assert "O" not in rfm_at(tx, AFTER).index and "Z" not in rfm_at(tx, AFTER).index
    # between O's order and its cancellation it is a purchase (nobody knew yet); Z's never is
    between = _feats(tx, "2011-02-01 12:05")
    assert between.loc["O", "n_purchases"] == 1 and "Z" not in between.index
    assert not purchases(tx, at=AFTER)["customer_id"].isin(["O", "Z"]).any()
    # sanity's observed behaviour, from the canonical table or the raw lines, agrees
    canon = observed_rates(tx, AFTER)
    assert "O" not in canon.index and "Z" not in canon.index
    assert canon.loc["R", "n_purchases"] == 2 and canon.loc["B", "n_purchases"] == 1


def test_observed_rates_of_a_raw_log_applies_the_same_cancellations():
    raw = _raw()
    raw = pd.DataFrame({"customer_id": raw["Customer ID"], "timestamp": pd.to_datetime(raw["InvoiceDate"]),
                        "order_id": raw["Invoice"], "amount": raw["Quantity"] * raw["Price"]})
    obs = observed_rates(raw, AFTER)
    assert obs.loc["R", "n_purchases"] == 2 and obs.loc["R", "net_spend"] == pytest.approx(22_036.0)
    assert "O" not in obs.index and "Z" not in obs.index


def _orders(rows, **kw):
    raw = pd.DataFrame(rows, columns=["cust", "ts", "inv", "amt"])
    return prepare_transactions(raw, columns=ColumnsConfig(customer_id="cust", timestamp="ts", order_id="inv", amount="amt"), **kw)


def _marked(tx):
    return sorted(tx.loc[tx["cancelled_at"].notna() & ~tx["is_return"], "order_id"])


def test_the_set_with_fewest_and_most_recent_orders_wins():
    rows = [("a", "2024-01-01", "P1", 10.0), ("a", "2024-01-02", "P2", 20.0), ("a", "2024-01-03", "P3", 12.0),
            ("a", "2024-01-04", "P4", 18.0), ("a", "2024-01-05", "C5", -30.0)]
    tx, report = _orders(rows)
    assert _marked(tx) == ["P3", "P4"]  # {10, 20} and {12, 18} both add up: the more recent pair
    # three orders only when no pair adds up
    tx, _ = _orders(rows[:4] + [("a", "2024-01-05", "C5", -40.0)])
    assert _marked(tx) == ["P1", "P3", "P4"]  # 10 + 12 + 18 (20 + 12 + 18 = 50, 20 + 18 = 38)
    # a single equal order goes first, whatever pair also adds up
    tx, _ = _orders(rows[:4] + [("a", "2024-01-04", "P4b", 30.0), ("a", "2024-01-05", "C5", -30.0)])
    assert _marked(tx) == ["P4b"]


def test_the_window_limits_multi_order_matches():
    rows = [("a", "2024-01-01", "P1", 25.5), ("a", "2024-01-03", "P2", 74.5), ("a", "2024-02-15", "C3", -100.0)]
    tx, report = _orders(rows)  # 43 days after P1 > 30 days
    assert _marked(tx) == [] and report.unmatched_returns == 1 and report.multi_order_credit_notes == 0
    tx, report = _orders(rows, cancel_window_days=60)
    assert _marked(tx) == ["P1", "P2"] and report.multi_order_credit_notes == 1
    # orders after the credit note are never part of its set
    tx, _ = _orders([("a", "2024-01-01", "P1", 25.5), ("a", "2024-01-02", "C3", -100.0), ("a", "2024-01-03", "P2", 74.5)])
    assert _marked(tx) == []


def test_returns_drop_matches_no_sets():
    tx, report = _orders(_two_and_credit := [("a", "2024-01-01", "P1", 25.5), ("a", "2024-01-02", "P2", 74.5),
                                             ("a", "2024-01-03", "C3", -100.0)], returns="drop")
    assert tx["cancelled_at"].isna().all() and report.cancellations == 0 and report.multi_order_credit_notes == 0


def test_simulated_cancellations_are_all_matched():
    """In the heavy-returns regime every "C<order>" credit note cancels its order exactly: all are
    matched (to an order of that amount) and the customers' purchase counts match the truth."""
    from churnml.datasets import simulate_regime

    raw, truth = simulate_regime("heavy_returns", 400, seed=5)
    tx, report = prepare_transactions(raw, columns=ColumnsConfig(order_id="order_id"))
    is_c = tx["order_id"].str.startswith("C").to_numpy()
    assert tx.loc[is_c, "cancelled_at"].notna().all()
    assert report.cancellations >= int(is_c.sum())
    end = tx["timestamp"].max() + pd.Timedelta(days=1)
    n = purchases(tx, at=end).groupby("customer_id").size().reindex(truth.index).fillna(0).astype(int)
    # every purchase a "C" note cancels is gone ("R" notes return part or all of an order)
    assert (n <= truth["n_purchases"] - truth["n_cancellations"]).all()
    assert (n < truth["n_purchases"]).sum() >= (truth["n_cancellations"] > 0).sum()


def test_a_later_credit_note_does_not_change_an_earlier_match():
    """Credit notes are matched in time order: -30 on Jan 3 cancels 10 + 20; the -20 on Jan 4 then
    finds no open 20 and is a return. Matching the one-order credit notes of the whole log first
    would let the Jan 4 note take the 20 and leave the Jan 3 note unmatched: a snapshot on Jan 3
    would then depend on a row from Jan 4."""
    rows = [("a", "2024-01-01", "P1", 10.0), ("a", "2024-01-02", "P2", 20.0), ("a", "2024-01-03", "C3", -30.0),
            ("a", "2024-01-04", "C4", -20.0), ("a", "2024-01-05", "P5", 7.0), ("b", "2024-01-01", "Q1", 5.0)]
    tx, report = _orders(rows)
    assert _marked(tx) == ["P1", "P2"] and report.multi_order_credit_notes == 1 and report.unmatched_returns == 1
    for cut in ["2024-01-03 12:00", "2024-01-04 12:00", "2024-01-06"]:
        check_point_in_time(lambda t, c: snapshot_features(t, c), tx, cut)
        # the matching itself: loading only the rows before the cutoff gives the same features
        past, _ = _orders([r for r in rows if pd.Timestamp(r[1]) < pd.Timestamp(cut)])
        pd.testing.assert_frame_equal(snapshot_features(past, pd.Timestamp(cut)), snapshot_features(tx, pd.Timestamp(cut)))
    f = snapshot_features(tx, pd.Timestamp("2024-01-06")).loc["a"]
    assert f["n_purchases"] == 1 and f["net_spend"] == pytest.approx(-13.0)


# S: +50 on day 0, cancelled by a -50 line under the same invoice on day 3 (K: another customer)
SPANNING = [
    ("S", "537000", "2011-02-01 12:00", 5, 10.0),
    ("S", "537000", "2011-02-04 12:00", -5, 10.0),
    ("K", "537100", "2011-01-10 09:00", 2, 15.0),
]


@pytest.mark.parametrize("cut, n, spend", [
    ("2011-02-02 12:00", 1, 50.0),  # day 1
    ("2011-02-04 12:00", 1, 50.0),  # the -50 line is at the cutoff, not before it
    ("2011-02-04 12:01", 0, 0.0),
    ("2011-02-05 12:00", 0, 0.0),  # day 4
])
def test_an_order_netting_to_zero_later_is_a_purchase_until_it_does(cut, n, spend):
    """Cancelled when its last line makes it zero, not at its first line: a cutoff in between sees
    the purchase at its amount so far, and so does a log holding only the rows before the cutoff."""
    raw = _raw(SPANNING)
    cut = pd.Timestamp(cut)
    full, report = prepare_transactions(raw, columns=COLUMNS)
    assert report.orders_netting_to_zero == 1 and report.cancellations == 0
    f = snapshot_features(full, cut)
    if n:
        assert f.loc["S", "n_purchases"] == n and f.loc["S", "net_spend"] == pytest.approx(spend)
        assert f.loc["S", "recency_days"] == pytest.approx((cut - pd.Timestamp("2011-02-01 12:00")) / pd.Timedelta(days=1))
    else:
        assert "S" not in f.index  # no purchase left: the order never happened
    assert len(purchases(full, at=cut).query("customer_id == 'S'")) == n
    past, _ = prepare_transactions(raw.loc[pd.to_datetime(raw["InvoiceDate"]) < cut], columns=COLUMNS)
    pd.testing.assert_frame_equal(snapshot_features(past, cut), snapshot_features(full, cut))
    check_point_in_time(lambda t, c: snapshot_features(t, c), full, cut)
