"""Regressions from the decisions-audit sweep (``benchmarks/audit_sweep.py``): short histories and
horizons on which the main job, with DEFAULT settings, used to ship outputs that mislead a marketer
(false reasons, P(alive) = 1 for everyone, CLV above the median for customers who returned
everything, actions that lose money, a churn scorer worse than logistic RFM). Each case now runs
with the default ``audit.on_fail: error``, so a failing audit would raise instead of writing; the
case also checks the specific thing that failed before."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest

from churnml.datasets import CORPUS_CUSTOMERS, CORPUS_SEED, DataUnavailable, corpus_log, simulate_regime, truncate_months
from churnml.jobs import run

from conftest import SHARED_DATA, default_config_for


def _source(name: str) -> pd.DataFrame:
    """The whole source log: a simulated regime at the corpus's size, or the first 12 months of CDNOW,
    apparel or grocery (every case keeps at most 9 of them)."""
    if name.startswith("sim_"):
        return simulate_regime(name[4:], CORPUS_CUSTOMERS, CORPUS_SEED)[0]
    return corpus_log(f"{name}_12m", SHARED_DATA)[0]


CASES = [  # (log, months of history, churn horizon days, what failed before)
    ("apparel", 6, 60, "p_alive"),
    ("cdnow", 6, 60, "churn_winner"),
    ("grocery", 9, 90, "churn_winner"),
    ("sim_no_dropout", 6, 60, "p_alive"),
    ("sim_wholesale", 6, 30, "reasons"),
]


@pytest.mark.slow
@pytest.mark.parametrize("name,months,horizon,failed", [
    pytest.param(*c, marks=[pytest.mark.shared_data] if c[0] in ("apparel", "grocery") else [], id=f"{c[0]}_{c[1]}m_{c[2]}d")
    for c in CASES
])
def test_default_run_passes_the_decisions_audit(name, months, horizon, failed, tmp_path):
    try:
        df = truncate_months(_source(name), months)
    except DataUnavailable as err:
        pytest.skip(f"{name}: {err}")
    cfg = default_config_for(df, tmp_path, churn={"horizon_days": horizon})
    assert cfg.audit.on_fail == "error"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = run(cfg, out_dir=tmp_path / "out", track=False)  # raises ModelError if the audit fails
    report = json.loads((result.out_dir / "run_report.json").read_text())
    audit = report["audit"]
    assert audit["ok"] and audit["status"][failed] != "fail", audit
    scores = pd.read_parquet(result.out_dir / "customers.parquet")
    # P(alive) is never 1.0 for everyone without the run saying the purchase model saw no dropout
    if (scores["p_alive"] >= 0.999).mean() > 0.95:
        assert report["clv_fit"].get("no_dropout"), report["clv_fit"]
    # nobody who returned everything ranks above the median CLV
    nothing = scores["net_spend"] <= 0
    assert not (scores.loc[nothing, "predicted_clv"] > scores["predicted_clv"].median()).any()
    # every recommended action pays on the stated margin and the catalogue's (assumed) effects
    acted = scores["recommended_action"] != "none"
    assert np.isfinite(scores.loc[acted, "value_if_retained"]).all()
    assert report["economics"]["warnings"], "the plan's assumptions (revenue ROI, assumed effects) are said"
