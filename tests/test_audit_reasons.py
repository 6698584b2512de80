"""The reasons audit: each sentence is parsed back with the phrasing's own templates and recomputed
from the customer's features; false or risk-lowering sentences fail, unknown ones warn."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from churnml.audit import check_reasons
from churnml.config import Config
from churnml.segments import REASON_TEMPLATES, parse_reason, reason_codes

_ROW = {"recency_days": 8.0, "ipt_mean_days": 167.0, "frequency": 4.0, "n_purchases": 7.0, "tenure_days": 430.0,
        "net_spend": 300.0, "total_spend": 300.0, "btyd_value": 127.0, "n_purchases_90d": 3.0, "spend_90d": 40.0,
        "purchase_trend": 0.2, "spend_trend": 0.1, "n_returns": 0.0, "return_amount": 0.0, "n_complaint_90d": 0.0,
        "value_at_risk": 10.0, "churn_probability": 0.45}


def _table(reasons: list[str], **overrides) -> pd.DataFrame:
    rows = []
    for r in reasons:
        row = dict(_ROW, reasons=r)
        row.update(overrides)
        rows.append(row)
    return pd.DataFrame(rows, index=pd.Index([f"c{i}" for i in range(len(rows))], name="customer_id"))


def _severities(findings):
    return sorted(f.severity for f in findings)


@pytest.mark.parametrize("sentence, why", [
    ("no purchase for 8 days, usually buys every 167 days", "lower"),  # recency below the usual gap
    ("no purchase for 30 days, usually buys every 10 days", "false"),  # not this customer's numbers
    ("no purchase for 8 days, usually buys every 5 days", "false"),  # the gap is 167 days
    ("only 7 purchases in 14 months (typical 9)", "false"),  # 7 orders, but 5 purchase days
    ("only 5 purchases in 14 months (typical 4)", "lower"),  # more than the stated typical
    ("customer for only 14 months (typical 4 months)", "lower"),  # longer than typical
    ("customer for 14 months (typical 4 months)", "lower"),  # the old form of the same
    ("customer for only 14 months (typical 2 months)", "false"),  # a typical under 90 days is stated in days
    ("customer for only 3 months (typical 7 months)", "false"),  # the tenure is 14 months
    ("high expected future spend (127, typical 31.74)", "lower"),  # high spend never a churn reason
    ("spent 300 in total, below the typical 200", "lower"),
    ("spent 250 in total, below the typical 400", "false"),
    ("only 3 purchases in the last 90 days", "false"),  # 3 orders: not a count of purchase days
    ("last purchase today, usually buys every 167 days", "lower"),
    ("no purchase in the last 90 days, after buying in the 90 days before", "false"),  # trend is up
    ("2 complaints in the last 90 days", "false"),  # none recorded
])
def test_false_or_risk_lowering_sentences_fail(sentence, why):
    scores = _table([sentence, "low risk: churn probability 4%"])
    found = check_reasons(scores, Config(), None)
    fails = [f for f in found if f.severity == "fail"]
    assert len(fails) == 1, found
    msg = fails[0].message
    assert ("false" in msg) == (why == "false") and ("does not raise" in msg) == (why == "lower")
    assert msg.startswith("1 of 1 reason sentences") and "e.g. c0" in msg and "c1" not in msg


def test_true_sentences_pass_and_counts_name_every_customer():
    scores = _table([
        "no purchase for 200 days, usually buys every 167 days; only 5 purchases in 14 months (typical 9)",
        "high total spend (300, typical 31); no purchase for 200 days, usually buys every 167 days",
        "no purchase for 200 days, usually buys every 167 days; the moon is full",
        "no single driver stands out: churn probability 45%, about as high as the typical customer's 48%",
    ], recency_days=200.0)
    found = check_reasons(scores, Config(), None)
    assert _severities(found) == ["fail", "warn"]
    fail = next(f for f in found if f.severity == "fail")
    assert fail.message.startswith("1 of 7 reason sentences state a fact that does not raise") and "e.g. c1" in fail.message
    warn = next(f for f in found if f.severity == "warn")
    assert "the moon is full" in warn.message and "e.g. c2" in warn.message
    short = _table(["customer for only 50 days (typical 62 days)"], tenure_days=50.0)
    assert check_reasons(short, Config(), None) == []
    assert "are false" in check_reasons(_table(["customer for only 2 months (typical 3 months)"], tenure_days=58.0), Config(), None)[0].message
    # the customer id may be a column (churnml score)
    flat = scores.reset_index()
    assert "e.g. c1" in next(f for f in check_reasons(flat, Config(), None) if f.severity == "fail").message


def test_a_table_without_the_feature_columns_says_what_it_cannot_check():
    scores = pd.DataFrame({"customer_id": ["a"], "reasons": ["no purchase for 200 days, usually buys every 167 days"]})
    found = check_reasons(scores, Config(), None)
    assert [f.severity for f in found] == ["note"] and "ipt_mean_days" in found[0].message and "recency_days" in found[0].message


def _population(n=3000, seed=0):
    """Simulated features with the same relations as snapshot_features (purchase days <= orders,
    gaps between purchase days, windows empty when recency exceeds them)."""
    rng = np.random.default_rng(seed)
    tenure = rng.uniform(0.3, 700, n)
    days = 1 + rng.poisson(rng.gamma(1.0, 2.0, n) * tenure / 365)
    days = np.minimum(days, np.floor(tenure) + 1)
    orders = days + rng.binomial(2, 0.15, n)
    last_span = np.where(days > 1, tenure * rng.uniform(0.2, 1.0, n), 0.0)
    recency = tenure - last_span
    ipt = np.where(days > 1, last_span / np.maximum(days - 1, 1), np.nan)
    net = rng.gamma(2, 60, n) * days - np.where(rng.uniform(size=n) < 0.05, 2000, 0)
    f = pd.DataFrame({
        "recency_days": recency, "tenure_days": tenure, "frequency": days - 1, "n_purchases": orders, "ipt_mean_days": ipt,
        "total_spend": np.maximum(net, 1.0), "net_spend": net, "avg_order_value": np.maximum(net, 0) / orders,
        "spend_per_year": net / np.maximum(tenure, 1) * 365.25, "purchases_per_year": orders / np.maximum(tenure, 1) * 365.25,
        "btyd_value": rng.gamma(2, 40, n), "btyd_p_no_purchase": rng.uniform(0, 1, n),
        "n_purchases_90d": np.where(recency >= 90, 0.0, rng.integers(1, 4, n)), "purchase_trend": rng.choice([-0.5, 0.0, 0.5], n),
        "spend_trend": rng.uniform(-1, 1, n), "n_returns": rng.poisson(0.3, n).astype(float),
        "n_complaint_90d": rng.poisson(0.3, n).astype(float), "last_nps": np.where(rng.uniform(size=n) < 0.5, np.nan, rng.integers(0, 11, n)),
        "days_since_last_complaint": np.where(rng.uniform(size=n) < 0.6, np.nan, rng.exponential(40, n)),
        "discount_share": rng.uniform(0, 1, n), "country": pd.Categorical(rng.choice(["DE", "FR"], n)),
    }, index=pd.Index([f"p{i}" for i in range(n)], name="customer_id"))
    f["spend_90d"] = np.where(f["n_purchases_90d"] > 0, rng.normal(60, 60, n), np.where(rng.uniform(size=n) < 0.05, -20.0, 0.0))
    f.loc[(f["n_purchases_90d"] == 0) & (rng.uniform(size=n) < 0.5), "purchase_trend"] = -1.0  # none now, some before
    f["return_amount"] = np.where(f["n_returns"] > 0, rng.gamma(1, 30, n), 0.0)
    c = pd.DataFrame(rng.normal(0, 1, (n, f.shape[1])), index=f.index, columns=f.columns)
    c["base"] = 0.0
    return f, c


def test_the_phrasings_own_output_passes_on_a_simulated_population():
    f, c = _population()
    r = reason_codes(c, f, k=3, low_risk=0.05, above_typical_only=False)
    scores = f.assign(reasons=r, churn_probability=1 / (1 + np.exp(-c.drop(columns="base").sum(axis=1))))
    assert check_reasons(scores, Config(), None) == []
    # and the sentences cover most of the templates (the audit is not passing on an empty set)
    names = {parse_reason(s)[0] for line in r if not line.startswith(("low risk", "no single driver")) for s in line.split("; ")}
    assert names <= set(REASON_TEMPLATES) | {"generic", "category"}
    assert len(names & set(REASON_TEMPLATES)) >= 15, names
    # the same sentences, moved to another customer, are caught: a different customer's numbers
    shifted = scores.assign(reasons=np.roll(r.to_numpy(), 1))
    found = check_reasons(shifted, Config(), None)
    assert any(x.severity == "fail" and "are false" in x.message for x in found)


def test_purchases_are_counted_in_one_unit():
    """5 orders on 3 purchase days, 100 days apart on average: the frequency and the recency
    sentences count purchase days, so "3 purchases" and "buys every 100 days" agree with the
    tenure (200 days between the first and the last)."""
    f = pd.DataFrame({"recency_days": [250.0], "tenure_days": [450.0], "frequency": [2.0], "n_purchases": [5.0],
                      "ipt_mean_days": [100.0], "n_purchases_90d": [0.0]}, index=["a"])
    c = pd.DataFrame({"recency_days": [1.0], "n_purchases": [0.9], "base": [0.0]}, index=["a"])
    r = reason_codes(c, f, typical={"purchase_days_per_year": 6.0}, low_risk=0.0)
    assert r["a"] == "no purchase for 250 days, usually buys every 100 days; only 3 purchases in 15 months (typical 7.4)"
    assert check_reasons(f.assign(reasons=r), Config(), None) == []


def _attributes(flag_dtype):
    """Customers-file attributes (``Age`` numeric, ``Country`` text) and features whose names
    start like the old forms ("no ...", "high ...") as the four drivers of every customer; every
    value differs from the next customer's."""
    f = pd.DataFrame({
        "Age": [34.0, 51.0, 27.0, 45.0], "Country": ["United Kingdom", "France", "Côte d'Ivoire", "Germany"],
        "no_show_count": [3.0, 0.0, 5.0, 1.0], "high_value_flag": np.array([1, 0, 1, 0]).astype(flag_dtype),
        "recency_days": [10.0, 20.0, 30.0, 40.0], "value_at_risk": [4.0, 3.0, 2.0, 1.0],
    }, index=pd.Index([f"a{i}" for i in range(4)], name="customer_id"))
    c = pd.DataFrame({"Age": [1.0, 0.8, 0.6, 0.4], "Country": [0.9, 0.7, 0.5, 0.3], "no_show_count": [0.8, 0.6, 0.4, 0.2],
                      "high_value_flag": [0.7, 0.5, 0.3, 0.1]}, index=f.index).assign(base=0.0)
    return f, c


@pytest.mark.parametrize("flag_dtype", [int, bool])
def test_attribute_and_event_feature_sentences_are_read_as_written(flag_dtype):
    f, c = _attributes(flag_dtype)
    r = reason_codes(c, f, k=4, low_risk=0.0)
    first = r.iloc[0].split("; ")
    flag = "high value flag: yes" if flag_dtype is bool else "high value flag 1 (typical 0.5)"
    assert first == ["Age 34 (typical 39.5)", "Country: United Kingdom", "no show count 3 (typical 2)", flag]
    # without the table the ambiguous ones read as forms the phrasing no longer writes; with it, as written
    assert parse_reason("no show count 3 (typical 2)")[0] == "old_none"
    assert parse_reason("high value flag 1 (typical 0.5)")[0] == "old_high"
    assert [parse_reason(s, f.columns)[0] for s in first] == ["generic", "category", "generic",
                                                              "category" if flag_dtype is bool else "generic"]
    assert parse_reason("no show count 3 (typical 2)", f.columns)[1] == {"label": "no show count", "v": "3", "typical": "2"}
    assert parse_reason("Country: Côte d'Ivoire", f.columns) == ("category", {"label": "Country", "value": "Côte d'Ivoire"})
    scores = f.assign(reasons=r)
    assert check_reasons(scores, Config(), None) == []
    assert check_reasons(scores.reset_index(), Config(), None) == []
    # the same sentences moved to the next customer: every one states another customer's value
    found = check_reasons(scores.assign(reasons=np.roll(r.to_numpy(), 1)), Config(), None)
    assert [x.severity for x in found] == ["fail"], found
    n_cat = 8 if flag_dtype is bool else 4
    msg = found[0].message
    assert msg.startswith("16 of 16 reason sentences are false of the customer's own features")
    assert f"generic {16 - n_cat}" in msg and f"category {n_cat}" in msg
    assert "4 customers" in found[0].message


def test_a_family_feature_named_like_a_generic_label_keeps_its_own_form():
    """A label that names a feature with a sentence of its own (an event's last value) is not
    read as the generic form, so its direction is still checked."""
    scores = _table(["last complaint 9 (typical 2)"], last_complaint=9.0)
    assert parse_reason("last complaint 9 (typical 2)", scores.columns)[0] == "event_value"
    found = check_reasons(scores, Config(), None)
    assert len(found) == 1 and found[0].severity == "fail" and "does not raise" in found[0].message


# --------------------------------------------------------------------------- issue 22: misleading sentences


def _fails(table):
    found = check_reasons(table, Config(), None)
    return [f.message for f in found if f.severity == "fail"]


@pytest.mark.parametrize("sentence, overrides, why", [
    # 1. "usually buys every" from one gap; the one-gap form needs exactly one gap
    ("no purchase for 272 days, usually buys every day", {"recency_days": 272.0, "ipt_mean_days": 1.0, "frequency": 1.0}, "false"),
    ("no purchase for 272 days, after 2 purchases 1 day apart", {"recency_days": 272.0, "ipt_mean_days": 1.0, "frequency": 3.0}, "false"),
    ("no purchase for 5 days, after 2 purchases 9 days apart", {"recency_days": 5.0, "ipt_mean_days": 9.0, "frequency": 1.0}, "lower"),
    # 2. repeat-purchase spend of a single-purchase customer
    ("repeat purchases worth 0 on average, below the typical 3.62", {"monetary_value": 0.0, "frequency": 0.0}, "false"),
    # 3. mixed units
    ("customer for only 38 days (typical 4 months)", {"tenure_days": 38.0}, "false"),
    ("customer for only 3 months (typical 122 days)", {"tenure_days": 95.0}, "false"),
    # 4. "after returns" with no returns
    ("spent 50 in total after returns, below the typical 200", {"net_spend": 50.0, "n_returns": 0.0, "return_amount": 0.0}, "false"),
    # 5. trivial differences
    ("customer for only 28 days (typical 29 days)", {"tenure_days": 28.0}, "lower"),
    ("expected spend per purchase 1.01, below the typical 1.05", {"btyd_expected_avg_spend": 1.01}, "lower"),
    ("only 5 purchases in 14 months (typical 5.3)", {}, "lower"),
    # 6. the summary: the row's own probability, and the comparison its numbers make
    ("no single driver stands out: churn probability 78%, below the typical customer's 80%", {"churn_probability": 0.78}, "false"),
    ("no single driver stands out: churn probability 60%, about as high as the typical customer's 80%", {"churn_probability": 0.6}, "false"),
    ("no single driver stands out: churn probability 70%, about as high as the typical customer's 80%", {"churn_probability": 0.78}, "false"),
    ("no risk driver: churn probability 78%, below the typical 80%", {"churn_probability": 0.78}, "lower"),  # the old form
])
def test_issue22_misleading_sentences_fail(sentence, overrides, why):
    msgs = _fails(_table([sentence], **overrides))
    assert len(msgs) == 1, msgs
    assert ("are false" in msgs[0]) == (why == "false") and ("does not raise" in msgs[0]) == (why == "lower")


@pytest.mark.parametrize("sentence, overrides", [
    ("no purchase for 272 days, after 2 purchases 1 day apart", {"recency_days": 272.0, "ipt_mean_days": 1.0, "frequency": 1.0}),
    ("no purchase for 272 days, usually buys every day", {"recency_days": 272.0, "ipt_mean_days": 1.0, "frequency": 2.0}),
    ("repeat purchases worth 1 on average, below the typical 3.62", {"monetary_value": 1.0, "frequency": 2.0}),
    ("customer for only 38 days (typical 122 days)", {"tenure_days": 38.0}),
    ("customer for only 10 months (typical 13 months)", {"tenure_days": 300.0}),
    ("spent 50 in total, below the typical 200", {"net_spend": 50.0, "total_spend": 50.0}),
    ("spent 50 in total after returns, below the typical 200", {"net_spend": 50.0, "n_returns": 1.0, "return_amount": 20.0}),
    ("customer for only 26 days (typical 29 days)", {"tenure_days": 26.0}),
    ("no single driver stands out: churn probability 78%, about as high as the typical customer's 80%", {"churn_probability": 0.78}),
    ("no single driver stands out: churn probability 60%, below the typical customer's 80%", {"churn_probability": 0.6}),
])
def test_issue22_true_forms_pass(sentence, overrides):
    assert check_reasons(_table([sentence], **overrides), Config(), None) == []
