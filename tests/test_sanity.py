"""churnml.sanity on hand-built scores: each broken output is named, a clean one passes."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from churnml.config import Config
from churnml.sanity import (
    CLV_SPEND_MULTIPLE, check_backtest, check_run_outputs, check_scores, churn_verdict, observed_rates, value_verdict,
)
from churnml.segments import assign_segments

AS_OF = pd.Timestamp("2021-01-01")
N = 200


def _transactions() -> pd.DataFrame:
    """N customers: ids c000..c199; c000-c039 buy once, the others 2-6 times over 2020."""
    rng = np.random.default_rng(0)
    rows = []
    for i in range(N):
        k = 1 if i < 40 else int(rng.integers(2, 7))
        days = np.sort(rng.uniform(0, 360, k))
        for d in days:
            rows.append((f"c{i:03d}", pd.Timestamp("2020-01-01") + pd.Timedelta(days=float(d)), float(np.round(rng.gamma(3, 15), 2))))
    return pd.DataFrame(rows, columns=["customer_id", "timestamp", "amount"])


@pytest.fixture()
def tx() -> pd.DataFrame:
    return _transactions()


@pytest.fixture()
def clean(tx) -> pd.DataFrame:
    """Plausible scores: probabilities inside (0, 1), CLV about a year of the customer's spend."""
    obs = observed_rates(tx, AS_OF)
    rng = np.random.default_rng(1)
    s = pd.DataFrame(index=obs.index)
    s["as_of"] = AS_OF
    s["churn_probability"] = rng.uniform(0.05, 0.95, N)
    s["p_alive"] = np.clip(1 - s["churn_probability"] + rng.normal(0, 0.02, N), 0.01, 0.99)
    s["expected_purchases"] = obs["purchase_rate"] * 365 * s["p_alive"]
    s["predicted_clv"] = obs["spend_rate"] * 365 * s["p_alive"]
    s["value_if_retained"] = obs["spend_rate"] * 365
    s["value_at_risk"] = s["churn_probability"] * s["value_if_retained"]
    s = assign_segments(s)
    return s.reset_index()


def test_clean_scores_pass(clean, tx):
    assert check_scores(clean, tx) == []
    # the descriptive columns of a scores table stand in for the transactions
    obs = observed_rates(tx, AS_OF)
    with_cols = clean.join(obs[["n_purchases", "tenure_days", "net_spend"]], on="customer_id")
    assert check_scores(with_cols) == []
    # tables without segments get those churnml score would add
    assert check_scores(clean.drop(columns=["risk_tier", "value_tier", "segment", "recommended_action"]), tx) == []
    # the customer id may be the index
    assert check_scores(clean.set_index("customer_id"), tx) == []


def test_nan_is_named_with_column_count_and_ids(clean, tx):
    clean.loc[clean["customer_id"] == "c077", "predicted_clv"] = np.nan
    clean.loc[clean["customer_id"] == "c078", "expected_purchases"] = np.inf
    problems = check_scores(clean, tx)
    clv = [p for p in problems if p.startswith("predicted_clv")]
    assert clv and "1 of 200" in clv[0] and "NaN 1" in clv[0] and "c077" in clv[0]
    ep = [p for p in problems if p.startswith("expected_purchases")]
    assert ep and "inf 1" in ep[0] and "c078" in ep[0]


def test_probability_of_one_for_everyone(clean, tx):
    clean["p_alive"] = 1.0
    problems = check_scores(clean, tx)
    assert any(p.startswith("p_alive: exactly 1 for everyone") for p in problems)
    one = [p for p in problems if "one-time buyers" in p]
    assert one and "all 40 one-time buyers" in one[0] and "c000" in one[0]
    assert any("the same value 1 for all 200" in p for p in problems)


def test_probability_at_the_edge_or_outside(clean, tx):
    clean.loc[3, "churn_probability"] = 0.0
    clean.loc[4, "churn_probability"] = 1.2
    clean["value_at_risk"] = clean["churn_probability"] * clean["value_if_retained"]
    problems = check_scores(clean, tx)
    assert any(p.startswith("churn_probability: exactly 0 for 1 of 200") and "c003" in p for p in problems)
    assert any(p.startswith("churn_probability: 1 of 200 customers outside [0, 1]") and "c004" in p for p in problems)


def test_one_time_buyers_may_not_all_be_certainly_alive(clean, tx):
    one = clean["customer_id"] < "c040"
    clean.loc[one, "p_alive"] = 1.0
    problems = check_scores(clean, tx)
    assert any("all 40 one-time buyers have P(alive) = 1.0" in p for p in problems)
    clean.loc[clean["customer_id"] == "c005", "p_alive"] = 0.97  # one of them is not certain: no longer "all"
    assert not any("one-time buyers" in p for p in check_scores(clean, tx))


def test_absurd_clv_and_purchases_are_flagged(clean, tx):
    i = clean.index[clean["customer_id"] == "c123"][0]
    clean.loc[i, "predicted_clv"] = 1e18
    clean.loc[i, "expected_purchases"] = 1e15
    problems = check_scores(clean, tx)
    clv = [p for p in problems if p.startswith("predicted_clv")]
    assert len(clv) == 1 and "1 of 200" in clv[0] and "worst c123" in clv[0] and "1.000e+18" in clv[0]
    ep = [p for p in problems if p.startswith("expected_purchases")]
    assert len(ep) == 1 and "c123" in ep[0]


def test_clv_threshold_is_relative_to_observed_spend(clean, tx):
    obs = observed_rates(tx, AS_OF)
    pop = obs["spend_rate"].quantile(0.99) * 365
    i = clean.index[clean["customer_id"] == "c150"][0]
    own = obs.loc["c150", "spend_rate"] * 365
    limit = CLV_SPEND_MULTIPLE * max(own, pop)
    clean.loc[i, "predicted_clv"] = 0.99 * limit
    assert not any(p.startswith("predicted_clv") for p in check_scores(clean, tx))
    clean.loc[i, "predicted_clv"] = 1.01 * limit
    assert any(p.startswith("predicted_clv") for p in check_scores(clean, tx))
    # a longer horizon allows proportionally more
    cfg = Config()
    cfg.clv.horizon_days = 730
    assert not any(p.startswith("predicted_clv") for p in check_scores(clean, tx, cfg))


def test_empty_save_now_while_high_risk_high_value_customers_exist(clean, tx):
    hh = (clean["risk_tier"] == "high") & (clean["value_tier"] == "high")
    assert hh.any()
    clean.loc[hh, "segment"] = "Win back"
    problems = check_scores(clean, tx)
    assert any(p.startswith("segment: 'Save now' is empty although") and f"{int(hh.sum())} customers are high risk and high value" in p
               for p in problems)
    assert any("not in their tiers' matrix cell" in p for p in problems)


def test_save_now_may_be_empty_when_nobody_is_high_risk_and_high_value(clean, tx):
    # value falls as risk rises: nobody is both high risk and high value, which is not a contradiction
    clean["predicted_clv"] = (1 - clean["churn_probability"]) * 100
    clean["value_if_retained"] = clean["predicted_clv"] * 1.5
    clean["value_at_risk"] = clean["churn_probability"] * clean["value_if_retained"]
    clean = assign_segments(clean.drop(columns=["risk_tier", "value_tier", "segment", "recommended_action"]))
    assert not (clean["segment"] == "Save now").any()
    assert not any(p.startswith("segment") for p in check_scores(clean, tx))


def test_unknown_segment_names(clean, tx):
    clean.loc[0, "segment"] = "Rescue"
    problems = check_scores(clean, tx)
    assert any("segment(s) ['Rescue'] that the config matrix does not name" in p and "c000" in p for p in problems)


def test_negative_values_and_inconsistent_value_at_risk(clean, tx):
    clean.loc[7, "expected_purchases"] = -0.5
    clean.loc[8, "value_at_risk"] = clean.loc[8, "value_at_risk"] + 10
    problems = check_scores(clean, tx)
    assert any(p.startswith("expected_purchases: 1 of 200 customers negative") and "c007" in p for p in problems)
    assert any(p.startswith("value_at_risk: 1 of 200") and "c008" in p for p in problems)


def test_empty_and_incomplete_tables(clean):
    assert check_scores(clean.iloc[:0]) == ["the scores table is empty: no customer was scored"]
    problems = check_scores(clean.drop(columns=["expected_purchases"]))
    assert any("missing output column(s) ['expected_purchases']" in p for p in problems)
    assert any(p.startswith("cannot check predicted_clv") for p in problems)


# --------------------------------------------------------------------------- backtests

def _churn_summary(auc, diffs_ci):
    """A churn backtest summary as the backtest writes it: ROC AUC per scorer; on the model row
    the AUC difference to each baseline and its paired 95% interval (``diffs_ci``: baseline ->
    (low, high))."""
    frame = pd.DataFrame({"roc_auc": auc, "pr_auc": 0.9}, index=pd.Index(["model", "recency", "logistic_rfm", "btyd"], name="scorer"))
    for b, (lo, hi) in diffs_ci.items():
        frame.loc["model", f"roc_auc_diff_vs_{b}"] = frame.loc["model", "roc_auc"] - frame.loc[b, "roc_auc"]
        frame.loc["model", f"roc_auc_diff_vs_{b}_ci_low"] = lo
        frame.loc["model", f"roc_auc_diff_vs_{b}_ci_high"] = hi
    return frame


CHURN = _churn_summary([0.82, 0.81, 0.80, 0.79], {"recency": (0.004, 0.016), "logistic_rfm": (0.01, 0.03), "btyd": (0.02, 0.04)})
VALUE = pd.DataFrame(
    {"spearman": [0.40, 0.43, 0.44, 0.44], "top_decile_capture": [0.55, 0.57, 0.56, 0.57], "total_ratio": [2.4, 0.96, 1.1, 1.03],
     "score": [0.475, 0.50, 0.50, 0.505],
     # judging half, shipped (blend) minus the row, paired 95% interval
     "score_diff": [0.03, 0.005, 0.005, 0.0], "score_diff_ci_low": [0.01, -0.01, -0.01, 0.0],
     "score_diff_ci_high": [0.05, 0.02, 0.02, 0.0]},
    index=["naive", "btyd", "ml", "blend"],
)
POINT_ONLY = VALUE.drop(columns=["score_diff", "score_diff_ci_low", "score_diff_ci_high"])


def test_backtest_verdict_when_models_win():
    v = check_backtest(CHURN, VALUE, "blend")
    assert v.beats_baselines is True and v.churn.beats and v.value.beats
    assert v.churn.outcome == "beats" and v.churn.worse_than == ()
    assert "the shipped churn scorer beats recency alone: ROC AUC 0.820 vs 0.810, difference +0.010 (95% interval +0.004 to +0.016)" in v.churn.sentence
    assert "it beats logistic RFM: ROC AUC 0.820 vs 0.800, difference +0.020 (95% interval +0.010 to +0.030)" in v.churn.sentence
    assert "(blend, score 0.505) beats every spreadsheet answer" in v.value.sentence
    assert "the naive spend rate 0.475 (difference +0.030, 95% interval [+0.010, +0.050])" in v.value.sentence
    assert v.sentence == f"{v.churn.sentence} {v.value.sentence}"


def test_churn_verdict_reads_the_interval_not_the_point_estimate():
    # a 0.001 point win whose interval includes 0 is no win
    tie = churn_verdict(_churn_summary([0.801, 0.800, 0.79, 0.79], {"recency": (-0.004, 0.006), "logistic_rfm": (0.001, 0.02), "btyd": (0.001, 0.02)}))
    assert tie.beats is False and tie.outcome == "no significant difference" and tie.worse_than == ()
    assert tie.diff == pytest.approx(0.001) and (tie.ci_low, tie.ci_high) == (-0.004, 0.006)
    assert "shows no significant difference from recency alone: ROC AUC 0.801 vs 0.800, difference +0.001 (95% interval -0.004 to +0.006)" in tie.sentence
    # a point loss whose interval lies entirely below 0: "is worse than"
    lose = churn_verdict(_churn_summary([0.712, 0.70, 0.728, 0.69], {"recency": (0.004, 0.02), "logistic_rfm": (-0.030, -0.002), "btyd": (0.01, 0.03)}))
    assert lose.beats is True and lose.worse_than == ("logistic_rfm",)  # beats recency, loses to logistic RFM
    assert "it is worse than logistic RFM: ROC AUC 0.712 vs 0.728, difference -0.016 (95% interval -0.030 to -0.002)" in lose.sentence
    worse = churn_verdict(_churn_summary([0.70, 0.75, 0.7, 0.7], {"recency": (-0.07, -0.03), "logistic_rfm": (-0.01, 0.01), "btyd": (-0.01, 0.01)}))
    assert worse.beats is False and worse.outcome == "worse" and worse.worse_than == ("recency",)
    assert "is worse than recency alone: ROC AUC 0.700 vs 0.750, difference -0.050 (95% interval -0.070 to -0.030)" in worse.sentence
    # an interval touching 0 from above or below is not significant
    edge = churn_verdict(_churn_summary([0.81, 0.80, 0.8, 0.8], {"recency": (0.0, 0.02)}))
    assert edge.outcome == "no significant difference" and edge.beats is False
    # no interval (bootstrap off): a point win cannot be told
    bare = churn_verdict(pd.DataFrame({"roc_auc": [0.9, 0.6, 0.6, 0.6]}, index=["model", "recency", "logistic_rfm", "btyd"]))
    assert bare.beats is None and bare.outcome is None and "no interval" in bare.sentence


def test_churn_verdict_after_the_run_shipped_a_baseline():
    summary = _churn_summary([0.70, 0.68, 0.73, 0.69], {"recency": (0.01, 0.03), "logistic_rfm": (-0.05, -0.01), "btyd": (0.0, 0.02)})
    v = churn_verdict(summary, {"override": True, "baseline": "logistic_rfm"})
    assert v.model == "logistic_rfm" and v.model_score == 0.73 and v.beats is None
    assert v.sentence.startswith("The held-out selection was worse than logistic RFM in the churn backtest (ROC AUC 0.700 vs 0.730, difference -0.030")
    assert "not an independent test" in v.sentence


def test_backtest_verdict_when_models_lose():
    churn = _churn_summary([0.70, 0.75, 0.7, 0.7], {"recency": (-0.07, -0.03), "logistic_rfm": (-0.01, 0.01), "btyd": (-0.01, 0.01)})
    value = POINT_ONLY.assign(score=[0.6, 0.5, 0.5, 0.5])  # an older report: no intervals
    v = check_backtest(churn, value, "btyd")
    assert v.beats_baselines is False
    assert "is worse than recency alone" in v.churn.sentence and "0.700 vs 0.750" in v.churn.sentence
    assert "does NOT beat the naive" in v.value.sentence
    # a tie is not a win
    assert churn_verdict(_churn_summary([0.8] * 4, {"recency": (-0.01, 0.01)})).beats is False
    # the naive forecast itself shipped: no model beats it
    naive = value_verdict(value, "naive")
    assert naive.beats is False and naive.sentence.startswith("No value model beats the naive spend-rate forecast")
    assert "the best model, btyd, scores 0.500" in naive.sentence


def test_backtest_verdict_without_backtests():
    v = check_backtest(None, None, "btyd")
    assert v.beats_baselines is None and v.churn.beats is None and v.value.beats is None
    assert v.churn.sentence.startswith("No churn backtest was possible")
    assert v.value.sentence.startswith("No value backtest was possible")
    # dicts as in run_report.json work too; a NaN AUC cannot be told
    assert churn_verdict(CHURN.to_dict("index")).beats is True
    assert churn_verdict(CHURN.assign(roc_auc=np.nan)).beats is None
    assert value_verdict(VALUE.to_dict("index"), "blend").beats is True
    assert value_verdict(VALUE, "something").beats is None
    # without an interval a point-estimate lead (0.505 vs 0.475) is not called a win
    lead = value_verdict(POINT_ONLY, "blend")
    assert lead.beats is None and "not shown to beat it" in lead.sentence


def test_value_verdict_can_say_does_not_beat_and_no_significant_difference():
    """Hand-built judging-half tables (shipped btyd minus each row, 95% interval)."""
    t = pd.DataFrame(
        {"score": [0.40, 0.45, 0.47, 0.44, 0.46, 0.43],
         "score_diff": [0.05, 0.0, -0.02, 0.01, -0.01, 0.02],
         "score_diff_ci_low": [0.02, 0.0, -0.035, -0.01, -0.03, 0.005],
         "score_diff_ci_high": [0.08, 0.0, -0.005, 0.03, 0.01, 0.04]},
        index=["naive", "btyd", "past_spend", "recent_spend", "ml", "blend"],
    )
    worse = value_verdict(t, "btyd")
    assert worse.beats is False and worse.baseline == "past_spend"
    assert "does NOT beat the spreadsheet answers" in worse.sentence
    assert "significantly worse than total past net spend 0.470 (difference -0.020, 95% interval [-0.035, -0.005])" in worse.sentence
    tie = t.assign(score_diff_ci_high=[0.08, 0.0, 0.01, 0.03, 0.01, 0.04])
    v = value_verdict(tie, "btyd")
    assert v.beats is False and "does not beat every spreadsheet answer" in v.sentence
    assert "no significant difference from total past net spend" in v.sentence and "(it beats the naive spend rate and the" not in v.sentence and "(it beats the naive spend rate)" in v.sentence
    # a spreadsheet answer shipped: no model beats it, and the sentence says which one ships
    sheet = value_verdict(t, "past_spend")
    assert sheet.beats is False and sheet.sentence.startswith("A spreadsheet answer ships: total past net spend scored best")
    assert "the best model, ml, scores 0.460 (total past net spend minus ml: -0.010, 95% interval [-0.030, +0.010]: no significant difference)" in sheet.sentence


def test_check_run_outputs(tmp_path, clean, tx):
    clean.set_index("customer_id").to_parquet(tmp_path / "customers.parquet")
    report = {"churn_backtest": CHURN.to_dict("index"), "value_backtest": {"metrics": VALUE.to_dict("index"), "chosen": "blend"}}
    (tmp_path / "run_report.json").write_text(json.dumps(report))
    res = check_run_outputs(tmp_path, transactions=tx)
    assert res.ok and res.problems == [] and res.verdict.beats_baselines is True and len(res.scores) == N


def test_one_interval_outcome_for_every_verdict():
    """interval_outcome is the single reading of a paired interval: the churn PairedDifference,
    the value backtest's difference_label and the value verdict all follow it."""
    from churnml.evaluation import BEATS, NO_DIFFERENCE, WORSE, interval_outcome
    from churnml.sanity import PairedDifference, value_verdict
    from churnml.value import difference_label

    cases = {(0.01, 0.05): BEATS, (-0.05, -0.01): WORSE, (-0.01, 0.01): NO_DIFFERENCE, (0.0, 0.02): NO_DIFFERENCE,
             (float("nan"), 0.1): None}
    old = {BEATS: "better", WORSE: "worse", NO_DIFFERENCE: "no significant difference", None: "unknown"}
    for (lo, hi), want in cases.items():
        assert interval_outcome(lo, hi) == want
        assert PairedDifference("recency", 0.8, 0.79, (lo + hi) / 2 if want else 0.01, lo, hi).outcome == want
        assert difference_label(lo, hi) == old[want]
        # btyd ships; it clearly beats the naive rate; its interval against past spend is (lo, hi)
        t = pd.DataFrame({"score": [0.5, 0.4, 0.45], "score_diff": [0.0, 0.1, 0.05], "score_diff_ci_low": [0.0, 0.05, lo],
                          "score_diff_ci_high": [0.0, 0.15, hi]}, index=["btyd", "naive", "past_spend"])
        v = value_verdict(t, "btyd")
        assert v.beats is (want == BEATS)
        assert ("does NOT beat" in v.sentence) == (want == WORSE)
