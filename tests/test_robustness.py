"""The main job with DEFAULT settings on logs it was never tuned on gives numbers a marketer can act on.

Each case writes one log of the robustness corpus (:func:`churnml.datasets.corpus_log`) to a CSV,
maps only ``data.transactions`` and ``data.columns``, runs ``churnml.jobs.run(track=False)`` and
applies :mod:`churnml.sanity` to ``customers.parquet`` and the run report. The full corpus (whole
simulated logs, 9-month truncations of everything) runs in ``benchmarks/robustness.py``; this file
takes a subset that fits in about six minutes on 2 cores: CDNOW over its first 9 and 12 months,
apparel and grocery over their first 12 months, and every simulated regime over its first 12 months
(simulated with the benchmark's 5,000 customers, about 2,000 of whom arrive in those months).
"""

from __future__ import annotations

import warnings

import pytest

from churnml.datasets import CORPUS_CUSTOMERS, REGIMES, DataUnavailable, corpus_log
from churnml.jobs import run
from churnml.sanity import check_run_outputs

from conftest import SHARED_DATA, default_config_for

SHARED_LOGS = {"apparel_12m", "grocery_12m"}
LOGS = ["cdnow_9m", "cdnow_12m", "apparel_12m", "grocery_12m", *[f"sim_{r}_12m" for r in REGIMES]]
SIM_CUSTOMERS = CORPUS_CUSTOMERS  # the benchmark's size (benchmarks/robustness.py): 5,000


def _assert_churn_verdict_says_the_numbers(check, cfg) -> None:
    """The churn verdict quotes the run report's own backtest numbers and its word ("beats", "is
    worse than", "no significant difference") follows the paired interval; the shipped churn
    scorer is never significantly worse than a baseline without the run shipping the winner."""
    from churnml.audit import check_churn_winner

    report, churn = check.report, check.verdict.churn
    summary = report.get("churn_backtest")
    shipped = (report.get("churn_training") or {}).get("shipped_scorer") or {}
    assert [f.severity for f in check_churn_winner(check.scores, cfg, report) if f.severity == "fail"] == [], churn.sentence
    if summary is None:
        assert churn.beats is None and churn.sentence.startswith("No churn backtest was possible")
        return
    m, r = summary["model"], summary["recency"]
    lo, hi = m["roc_auc_diff_vs_recency_ci_low"], m["roc_auc_diff_vs_recency_ci_high"]
    if shipped.get("override"):
        b = shipped["baseline"]
        assert f"ROC AUC {m['roc_auc']:.3f} vs {summary[b]['roc_auc']:.3f}" in churn.sentence
        assert m[f"roc_auc_diff_vs_{b}_ci_high"] < 0 and "not an independent test" in churn.sentence
        return
    expected = "beats" if lo > 0 else "worse" if hi < 0 else "no significant difference"
    assert churn.outcome == expected and churn.beats is (expected == "beats")
    words = {"beats": "beats recency alone", "worse": "is worse than recency alone",
             "no significant difference": "shows no significant difference from recency alone"}[expected]
    assert (f"{words}: ROC AUC {m['roc_auc']:.3f} vs {r['roc_auc']:.3f}, difference {m['roc_auc_diff_vs_recency']:+.3f} "
            f"(95% interval {lo:+.3f} to {hi:+.3f})") in churn.sentence


def _param(name: str):
    marks = [pytest.mark.slow] + ([pytest.mark.shared_data] if name in SHARED_LOGS else [])
    return pytest.param(name, marks=marks, id=name)


@pytest.mark.parametrize("name", [_param(n) for n in LOGS])
def test_default_run_gives_sane_scores(name, tmp_path):
    try:
        df, description = corpus_log(name, SHARED_DATA, n_customers=SIM_CUSTOMERS)
    except DataUnavailable as err:
        pytest.skip(f"{name}: {err}")
    cfg = default_config_for(df, tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = run(cfg, out_dir=tmp_path / "out", track=False)
    check = check_run_outputs(result.out_dir, cfg, transactions=df)
    _assert_churn_verdict_says_the_numbers(check, cfg)
    assert check.problems == [], (
        f"{name} ({description}): {len(check.problems)} sanity problem(s):\n  - " + "\n  - ".join(check.problems)
        + f"\n{check.verdict.sentence}"
    )
