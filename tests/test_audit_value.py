"""audit.check_value_winner: the shipped value score against the spreadsheet answers of the value
backtest's judging half (paired 95% intervals of shipped minus answer)."""

from __future__ import annotations

import pandas as pd

from churnml.audit import audit, check_value_winner
from churnml.config import Config

SCORES = pd.DataFrame({"customer_id": ["a", "b"], "value_model": ["btyd", "btyd"]})


def _report(lo_hi: dict[str, tuple[float, float, float]], chosen: str = "btyd") -> dict:
    metrics = {chosen: {"score": 0.5, "score_diff": 0.0, "score_diff_ci_low": 0.0, "score_diff_ci_high": 0.0}}
    for c, (d, lo, hi) in lo_hi.items():
        metrics[c] = {"score": 0.5 - d, "score_diff": d, "score_diff_ci_low": lo, "score_diff_ci_high": hi}
    return {"value_model": chosen, "value_backtest": {"chosen": chosen, "metrics": metrics}}


def test_beats_every_spreadsheet_answer_passes():
    rep = _report({"naive": (0.05, 0.02, 0.08), "past_spend": (0.03, 0.01, 0.05), "recent_spend": (0.01, -0.01, 0.03)})
    assert check_value_winner(SCORES, Config(), rep) == []
    assert audit(SCORES, Config(), rep, checks=["value_winner"]).status == {"value_winner": "pass"}


def test_significantly_worse_fails_and_unclear_warns():
    rep = _report({"naive": (0.05, 0.02, 0.08), "past_spend": (-0.03, -0.05, -0.01), "recent_spend": (-0.01, -0.03, 0.01)})
    found = check_value_winner(SCORES, Config(), rep)
    by = {f.severity: f.message for f in found}
    assert sorted(f.severity for f in found) == ["fail", "warn"]
    assert "significantly worse than a spreadsheet answer" in by["fail"] and "total past net spend" in by["fail"]
    assert "[-0.050, -0.010]" in by["fail"]
    assert "recent-window spend" in by["warn"] and "cannot be told" in by["warn"]
    assert not audit(SCORES, Config(), rep, checks=["value_winner"]).ok


def test_no_backtest_is_a_note_and_no_interval_a_warning():
    for rep in (None, {"value_backtest": None, "value_model": "btyd"}):
        found = check_value_winner(SCORES, Config(), rep)
        assert [f.severity for f in found] == ["note"] and "no value backtest ran" in found[0].message
    old = {"value_backtest": {"chosen": "btyd", "metrics": {"btyd": {"score": 0.5}, "naive": {"score": 0.4}}}}
    found = check_value_winner(SCORES, Config(), old)
    assert [f.severity for f in found] == ["warn"] and "no paired intervals" in found[0].message


def test_scores_shipping_another_model_than_the_backtest_chose_warn():
    rep = _report({"naive": (0.05, 0.02, 0.08)}, chosen="ml")
    found = check_value_winner(SCORES, Config(), rep)
    assert [f.severity for f in found] == ["warn"] and "the backtest chose 'ml'" in found[0].message
