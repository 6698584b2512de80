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
