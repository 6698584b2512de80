"""The decisions audit's frame: statuses, severities, the exit rule and where it runs."""

from __future__ import annotations

import pandas as pd
import pytest

from churnml import audit as audit_mod
from churnml.audit import AuditResult, Finding, audit
from churnml.config import Config


def test_finding_refuses_an_unknown_severity():
    with pytest.raises(ValueError, match="severity"):
        Finding("reasons", "bad", "x")


def test_status_is_the_worst_finding_per_check_and_only_fail_blocks(monkeypatch):
    monkeypatch.setitem(audit_mod.CHECKS, "reasons", lambda s, c, r: [Finding("reasons", "warn", "w"), Finding("reasons", "fail", "f")])
    monkeypatch.setitem(audit_mod.CHECKS, "p_alive", lambda s, c, r: [Finding("p_alive", "note", "n")])
    monkeypatch.setitem(audit_mod.CHECKS, "clv_history", lambda s, c, r: [])
    res = audit(pd.DataFrame({"customer_id": ["a"]}), Config(), None, checks=["reasons", "p_alive", "clv_history"])
    assert res.status == {"reasons": "fail", "p_alive": "note", "clv_history": "pass"}
    assert not res.ok and [f.message for f in res.of("fail")] == ["f"]
    d = res.to_dict()
    assert d["ok"] is False and len(d["findings"]) == 3
    warn_only = AuditResult([Finding("p_alive", "warn", "w")], {"p_alive": "warn"})
    assert warn_only.ok


def test_unknown_check_is_refused():
    with pytest.raises(ValueError, match="unknown audit check"):
        audit(pd.DataFrame({"customer_id": ["a"]}), Config(), None, checks=["nope"])


def test_examples_names_the_worst_first():
    text = audit_mod.examples(["a", "b", "c"], [True, False, True], order=[1.0, 5.0, 3.0])
    assert text == "e.g. c, a"


def test_a_shared_floor_fails_but_a_shared_zero_is_only_said():
    from churnml.audit import check_clv_history

    n = 100
    net = [50.0] * n
    floor = pd.DataFrame({"customer_id": [f"c{i}" for i in range(n)], "net_spend": net,
                          "predicted_clv": [425.0] * 60 + [500.0 + i for i in range(40)]})
    found = check_clv_history(floor, Config(), None)
    assert [f.severity for f in found] == ["fail"] and "floor" in found[0].message
    zero = floor.assign(predicted_clv=[0.0] * 60 + [10.0 + i for i in range(40)])
    found = check_clv_history(zero, Config(), {"value_model": "recent_spend"})
    assert [f.severity for f in found] == ["warn"] and "recent_spend" in found[0].message


def test_p_alive_of_one_time_buyers_at_one_is_not_an_uninformative_model():
    """BG/NBD gives every one-time buyer P(alive) = 1 by construction: with 96% one-timers the
    check judges the repeat customers, whose P(alive) ranks them."""
    import numpy as np

    from churnml.audit import check_p_alive

    n = 1000
    freq = np.r_[np.zeros(960), np.arange(1, 41)]
    p = np.r_[np.ones(960), np.linspace(0.05, 0.95, 40)]
    s = pd.DataFrame({"customer_id": [f"c{i}" for i in range(n)], "frequency": freq, "p_alive": p})
    assert [f for f in check_p_alive(s, Config(), None) if f.severity == "fail"] == []
    # the same table where the repeaters are at 1 too: uninformative, and nothing says why
    found = check_p_alive(s.assign(p_alive=1.0), Config(), None)
    assert any(f.severity == "fail" and "40 repeat customers" in f.message for f in found)
    # a degenerate fit that the run report states is said, not refused
    said = check_p_alive(s.assign(p_alive=1.0), Config(), {"clv_fit": {"degenerate": True}})
    assert [f.severity for f in said if f.check == "p_alive" and "P(alive) >=" in f.message] == ["warn"]


def test_coherence_fails_on_contradicting_numbers_and_coherent_repairs_them():
    import numpy as np

    from churnml.audit import check_coherence
    from churnml.pipeline import coherent

    s = pd.DataFrame({"customer_id": ["a", "b", "c"], "churn_probability": [0.68, 0.3, 0.9],
                      "p_alive": [0.116, 0.9, 0.2], "expected_purchases": [0.5, 2.0, 1.0],
                      "predicted_clv": [1700.84, 50.0, 10.0], "value_if_retained": [722.01, 80.0, 40.0],
                      "p_alive_source": "btyd"})
    found = check_coherence(s, Config(), None)
    assert [f.severity for f in found] == ["fail", "fail"]
    assert "worst a: P(alive) 11.6%, churn probability 68.0%" in found[0].message
    assert "worst a: 1,700.84 vs 722.01" in found[1].message
    fixed = coherent(s.copy())
    assert check_coherence(fixed, Config(), None) == []
    assert fixed["p_alive"].tolist() == pytest.approx([0.32, 0.9, 0.2])
    assert fixed["p_alive_source"].tolist() == ["churn_model", "btyd", "btyd"]
    assert fixed["expected_purchases"].tolist() == pytest.approx([0.5 * 0.32 / 0.116, 2.0, 1.0])
    assert fixed["value_if_retained"].tolist() == [1700.84, 80.0, 40.0]
    assert np.isfinite(fixed.select_dtypes("number").to_numpy()).all()
