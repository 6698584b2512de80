"""The main job with DEFAULT settings on logs it was never tuned on gives numbers a marketer can act on.

Each case writes one log of the robustness corpus (:func:`churnml.datasets.corpus_log`) to a CSV,
maps only ``data.transactions`` and ``data.columns``, runs ``churnml.jobs.run(track=False)`` and
applies :mod:`churnml.sanity` to ``customers.parquet`` and the run report. The full corpus (whole
simulated logs, 9-month truncations of everything) runs in ``benchmarks/robustness.py``; this file
takes a subset that fits in about six minutes on 2 cores: CDNOW over its first 9 and 12 months,
apparel and grocery over their first 12 months, and every simulated regime over its first 12 months
(simulated with 2,500 customers, about 1,000 of whom arrive in those months).
"""

from __future__ import annotations

import warnings

import pytest

from churnml.config import config_from_dict
from churnml.datasets import REGIMES, DataUnavailable, corpus_log
from churnml.jobs import run
from churnml.sanity import check_run_outputs

from conftest import SHARED_DATA

SHARED_LOGS = {"apparel_12m", "grocery_12m"}
LOGS = ["cdnow_9m", "cdnow_12m", "apparel_12m", "grocery_12m", *[f"sim_{r}_12m" for r in REGIMES]]
SIM_CUSTOMERS = 2500


def _param(name: str):
    marks = [pytest.mark.slow] + ([pytest.mark.shared_data] if name in SHARED_LOGS else [])
    return pytest.param(name, marks=marks, id=name)


@pytest.mark.parametrize("name", [_param(n) for n in LOGS])
def test_default_run_gives_sane_scores(name, tmp_path):
    try:
        df, description = corpus_log(name, SHARED_DATA, n_customers=SIM_CUSTOMERS)
    except DataUnavailable as err:
        pytest.skip(f"{name}: {err}")
    path = tmp_path / "log.csv"
    df.to_csv(path, index=False)
    columns = {"customer_id": "customer_id", "timestamp": "timestamp", "amount": "amount"}
    if "order_id" in df.columns:
        columns["order_id"] = "order_id"
    cfg = config_from_dict({"data": {"transactions": str(path), "columns": columns}})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = run(cfg, out_dir=tmp_path / "out", track=False)
    check = check_run_outputs(result.out_dir, cfg, transactions=df)
    assert check.verdict.churn.sentence and check.verdict.value.sentence
    assert check.problems == [], (
        f"{name} ({description}): {len(check.problems)} sanity problem(s):\n  - " + "\n  - ".join(check.problems)
        + f"\n{check.verdict.sentence}"
    )
