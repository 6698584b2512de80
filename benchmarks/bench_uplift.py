"""Uplift estimators against each other, against risk targeting, a random ranking and the oracle.

    python benchmarks/bench_uplift.py                       # default: 3 seeds, ~1 min on 2 cores
    python benchmarks/bench_uplift.py --seeds 1 --train-customers 5000 --test-customers 10000   # smoke test

For each seed ``s`` (0..seeds-1): a training campaign ``simulate_campaign(train, seed=1000 + s)``
and a held-out campaign ``simulate_campaign(test, seed=2000 + s)`` (another customer base, same
generative model; see ``churnml.datasets.simulate_campaign``). Each estimator is fitted on the
training campaign's features (``CAMPAIGN_FEATURES``), treatment and retention, and scores the
held-out customers. Measured on the held-out campaign:

* Qini coefficient, AUUC (normalised: 0 random, 1 perfect ranking of the observed outcomes) and
  uplift@k (retention of the treated minus the control among the top k share) of the ranking by
  the score: the estimated uplift; ``churn_probability`` for risk; ``true_uplift`` for the oracle;
* true incremental value at k contacted: sum of ``true_uplift x value_if_retained`` over the top k
  share ranked by ``score x value_if_retained`` (risk: churn probability x value, the campaign
  planner's current rule; random: a random order), also as a share of the oracle's;
* fit time (seconds, wall clock, LightGBM on ``--n-jobs`` threads).

Figures are means over the seeds with the range (min-max) in brackets. Writes
``benchmarks/results/uplift.md`` and ``.json`` (atomically).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def _git() -> str:
    try:
        head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no", "src"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return head + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "n/a"


def _cpu() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--train-customers", type=int, default=20000)
    ap.add_argument("--test-customers", type=int, default=50000)
    ap.add_argument("--seeds", type=int, default=3, help="number of (train, test) campaign pairs")
    ap.add_argument("--n-estimators", type=int, default=200, help="trees per LightGBM base learner")
    ap.add_argument("--k", type=float, default=0.3, help="share of customers contacted")
    ap.add_argument("--n-jobs", type=int, default=1, help="LightGBM threads")
    ap.add_argument("--results", default=str(REPO / "benchmarks" / "results" / "uplift.md"), help="Markdown path ('-': stdout only)")
    args = ap.parse_args(argv)

    import lightgbm
    import pandas as pd
    import sklearn

    import churnml
    from churnml._atomic import atomic_path
    from churnml.datasets import CAMPAIGN_FEATURES, simulate_campaign
    from churnml.uplift import (
        ClassTransformation, TLearner, XLearner, auuc, captured_incremental_value, qini_coefficient, uplift_at_k,
    )

    t_start = time.perf_counter()
    features = list(CAMPAIGN_FEATURES)
    common = {"n_estimators": args.n_estimators, "n_jobs": args.n_jobs}
    models = {
        "T-learner": lambda: TLearner(**common),
        "X-learner": lambda: XLearner(**common),
        "class transformation (re-weighted)": lambda: ClassTransformation(**common),
        "class transformation (transformed outcome)": lambda: ClassTransformation(method="transformed_outcome", **common),
    }
    rows: dict[str, list[dict[str, float]]] = {name: [] for name in [*models, "risk (churn probability)", "random", "oracle (true uplift)"]}
    k = args.k
    for s in range(args.seeds):
        train = simulate_campaign(args.train_customers, seed=1000 + s)
        test = simulate_campaign(args.test_customers, seed=2000 + s)
        y, t = test["retained"].to_numpy(), test["treatment"].to_numpy()
        value, truth = test["value_if_retained"].to_numpy(), test["true_uplift"].to_numpy()
        oracle_value = captured_incremental_value(truth * value, truth, value, k=k)
        rng = np.random.default_rng(3000 + s)
        random_order = rng.random(len(test))
        scored: dict[str, tuple[np.ndarray, np.ndarray, float]] = {}
        for name, make in models.items():
            t0 = time.perf_counter()
            est = make().fit(train[features], train["treatment"], train["retained"])
            fit_s = time.perf_counter() - t0
            pred = est.predict(test)
            scored[name] = (pred, pred * value, fit_s)
            print(f"seed {s}: {name} fitted in {fit_s:.1f}s", flush=True)
        risk = test["churn_probability"].to_numpy()
        scored["risk (churn probability)"] = (risk, risk * value, float("nan"))
        scored["random"] = (random_order, random_order, float("nan"))
        scored["oracle (true uplift)"] = (truth, truth * value, float("nan"))
        for name, (score, value_score, fit_s) in scored.items():
            captured = captured_incremental_value(value_score, truth, value, k=k)
            rows[name].append({
                "qini": qini_coefficient(y, t, score),
                "auuc": auuc(y, t, score),
                "uplift_at_k": uplift_at_k(y, t, score, k=k),
                "value_at_k": captured,
                "value_share_of_oracle": captured / oracle_value,
                "corr_true_uplift": float(np.corrcoef(score, truth)[0, 1]),
                "fit_seconds": fit_s,
            })
    wall = time.perf_counter() - t_start

    def cell(vals: list[float], fmt: str) -> str:
        v = np.asarray(vals, dtype=float)
        if np.isnan(v).all():
            return "-"
        if len(v) == 1:
            return format(v[0], fmt)
        return f"{format(v.mean(), fmt)} [{format(v.min(), fmt)}, {format(v.max(), fmt)}]"

    pct = int(round(100 * k))
    header = (f"| ranking | Qini coefficient | AUUC | uplift@{pct}% | true incremental value at {pct}% contacted | "
              f"share of oracle (%) | corr. with true uplift | fit (s) |")
    lines = [header, "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for name, runs in rows.items():
        col = lambda key: [r[key] for r in runs]  # noqa: E731
        lines.append(
            f"| {name} | {cell(col('qini'), '.3f')} | {cell(col('auuc'), '.3f')} | {cell(col('uplift_at_k'), '.3f')} | "
            f"{cell(col('value_at_k'), ',.0f')} | {cell([100 * v for v in col('value_share_of_oracle')], '.0f')} | "
            f"{cell(col('corr_true_uplift'), '.2f')} | {cell(col('fit_seconds'), '.1f')} |"
        )
    table = "\n".join(lines)
    command = "python benchmarks/bench_uplift.py" + ("" if argv is None and len(sys.argv) == 1 else " " + " ".join(argv if argv is not None else sys.argv[1:]))
    meta = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "command": command,
        "train_customers": args.train_customers,
        "test_customers": args.test_customers,
        "seeds": [[1000 + s, 2000 + s] for s in range(args.seeds)],
        "k": k,
        "n_estimators": args.n_estimators,
        "n_jobs": args.n_jobs,
        "machine": f"{os.cpu_count()} cores ({_cpu()}), {platform.platform()}",
        "versions": (f"python {platform.python_version()}, numpy {np.__version__}, pandas {pd.__version__}, scikit-learn "
                     f"{sklearn.__version__}, lightgbm {lightgbm.__version__}, churnml {churnml.__version__} (git {_git()})"),
        "wall_seconds": round(wall, 1),
    }
    md = "\n".join([
        "# Uplift targeting benchmark",
        "",
        f"- date: {meta['date']}",
        f"- command: `{command}`",
        f"- data: per seed pair (train, test) in {meta['seeds']}: a training campaign `simulate_campaign({args.train_customers:,}, "
        f"seed=train)` and a held-out campaign `simulate_campaign({args.test_customers:,}, seed=test)` (50% treated, 90-day window); "
        f"features `{', '.join(features)}`",
        f"- estimators: LightGBM base learners, {args.n_estimators} trees, 15 leaves, learning rate 0.05, seed 42, "
        f"{args.n_jobs} thread(s)",
        f"- machine: {meta['machine']}",
        f"- {meta['versions']}",
        f"- benchmark wall time: {wall:.0f}s",
        "",
        f"Means over {args.seeds} seed pair(s), [min, max] in brackets. Qini coefficient, AUUC and uplift@{pct}% rank the "
        f"held-out customers by the score (estimated uplift; churn probability for risk; true uplift for the oracle) and "
        f"use only the observed outcomes; the true incremental value (currency) at {pct}% contacted ranks by score x "
        f"value_if_retained (risk: churn probability x value, random: a random order) and sums the simulation's "
        f"true_uplift x value_if_retained over the contacted.",
        "",
        table,
        "",
    ])
    print(md)
    if args.results != "-":
        res = Path(args.results)
        with atomic_path(res) as tmp:
            tmp.write_text(md)
        with atomic_path(res.with_suffix(".json")) as tmp:
            runs = {name: [{key: (None if np.isnan(v) else round(float(v), 6)) for key, v in r.items()} for r in rs]
                    for name, rs in rows.items()}  # NaN (no fit) -> null: strict JSON
            tmp.write_text(json.dumps({"meta": meta, "runs": runs}, indent=2))
        print(f"wrote {res} and {res.with_suffix('.json')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
