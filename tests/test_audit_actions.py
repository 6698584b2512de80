"""The decisions audit's ``actions`` check: every recommended action pays on stated assumptions."""

from __future__ import annotations

import pandas as pd
import pytest

from churnml.audit import audit, check_actions
from churnml.config import ActionConfig, config_from_dict


def _scores():
    """Default catalogue (contact 0.080 / 25, check-in 0.067 / 6), by hand:
    x: 0.1 x 0.08 x 100 - 25 = -24.2 (loses); y: 0.9 x 0.08 x 3000 - 25 = 191 (pays);
    w: 0.5 x 0.08 x 1000 - 25 = 15 on these values, but 0.5 x 0.08 x 300 - 25 = -13 once revenue is
    turned into profit at margin 0.3; z: check-in 0.05 x 0.067 x 1000 - 6 = -2.65 (loses); n: none."""
    return pd.DataFrame({"churn_probability": [0.1, 0.9, 0.5, 0.05, 0.3],
                         "value_if_retained": [100.0, 3000.0, 1000.0, 1000.0, 10.0],
                         "recommended_action": ["personal_contact", "personal_contact", "personal_contact", "proactive_checkin", "none"]},
                        index=pd.Index(["x", "y", "w", "z", "n"], name="customer_id"))


def test_actions_that_do_not_pay_fail_with_count_and_examples():
    found = check_actions(_scores(), config_from_dict({"clv": {"margin": 0.3}}), None)
    fails = [f for f in found if f.severity == "fail"]
    assert len(fails) == 1
    assert fails[0].message.startswith("2 of 4 recommended actions do not pay")
    assert "e.g. x, z" in fails[0].message and "margin 0.3" in fails[0].message  # worst first: x -24.2, z -2.65
    # margin 0.3 is stated: no revenue warning; every effect is the default catalogue's: the assumption warning
    warns = [f.message for f in found if f.severity == "warn"]
    assert warns == ["Every action effect is an assumption: no read-out has measured one."]


def test_margin_is_applied_once_and_revenue_is_warned():
    cfg = config_from_dict({"clv": {"margin": 0.3}})
    # the run report says the scores' values are on revenue (margin 1.0): rescaled to 0.3, w now loses too
    found = check_actions(_scores(), cfg, {"economics": {"margin": 1.0}})
    assert [f.message[:35] for f in found if f.severity == "fail"] == ["3 of 4 recommended actions do not p"]
    # values already on margin 0.3 (report says so): not applied again, w pays
    found = check_actions(_scores(), cfg, {"economics": {"margin": 0.3}})
    assert [f.message[:35] for f in found if f.severity == "fail"] == ["2 of 4 recommended actions do not p"]
    warns = [f.message for f in check_actions(_scores(), config_from_dict({}), None) if f.severity == "warn"]
    assert "ROI is on revenue, not profit: no margin is configured (clv.margin is 1.0)." in warns


def test_paying_measured_actions_pass_and_unknown_actions_fail():
    s = _scores().loc[["y", "n"]]
    acts = [ActionConfig(name="personal_contact", cost=25, churn_reduction=0.08, effect_source="measured: read-out r.csv, n=300/120")]
    cfg = config_from_dict({"clv": {"margin": 0.5}})
    cfg = cfg.model_copy(update={"campaign": cfg.campaign.model_copy(update={"actions": acts})})
    assert check_actions(s, cfg, None) == []  # 0.9 x 0.08 x 3000 - 25 > 0, measured, margin stated
    res = audit(s.reset_index(), cfg, None, checks=["actions"])  # the score table shape (customer_id column)
    assert res.ok and res.status == {"actions": "pass"}
    odd = s.assign(recommended_action=["mystery_gift", "none"])
    fails = [f for f in check_actions(odd, cfg, None) if f.severity == "fail"]
    assert len(fails) == 1 and "mystery_gift" in fails[0].message and "e.g. y" in fails[0].message


def test_no_action_column_is_a_note():
    found = check_actions(_scores().drop(columns="recommended_action"), config_from_dict({}), None)
    assert [f.severity for f in found] == ["note"]


@pytest.mark.parametrize("p, value", [(0.18, 2500.0), (0.15, 5000.0)])
def test_recommended_actions_always_pass_the_audit(p, value):
    """Whatever recommended_actions picks under the defaults, the audit agrees it pays (no fail)."""
    from churnml.campaigns import recommended_actions

    s = pd.DataFrame({"churn_probability": [p, 0.7, 0.4], "value_if_retained": [value, 400.0, 50.0],
                      "segment": ["VIP", "Save now", "Nurture"]}, index=pd.Index(["a", "b", "c"], name="customer_id"))
    s["recommended_action"] = recommended_actions(s)
    assert not [f for f in check_actions(s, config_from_dict({"clv": {"margin": 0.3}}), None) if f.severity == "fail"]
    assert (s["recommended_action"] != "none").any()
