"""Training speed and model quality: the churn backtest on real logs and training at 1M customers.

    python benchmarks/bench_train.py --quality                 # CDNOW + apparel backtests (~2 min)
    python benchmarks/bench_train.py --scale 1000000           # fit_pipeline on 1M simulated customers
    python benchmarks/bench_train.py --quality --scale 100000 1000000 --results benchmarks/results/train.json

``--quality``: ``churn_backtest`` with the repository's configs (``configs/cdnow.yaml``,
``configs/apparel.yaml``; apparel needs ``../shared/data``) at their default cutoffs; reports the
mean over backtest cutoffs of the ROC AUC of the model and of each baseline, and the seconds.
``--scale N``: a BTYD-simulated log of N customers (~7 transactions each over 3 years, seed 0),
``fit_pipeline(..., backtest=False)`` as ``churnml train`` runs it, timed stage by stage; then
the held-out ROC AUC of the shipped model on the following 90 days (the simulation continues
past the training date). Each size and each log runs in its own process; peak RSS is that
process's (log included). Results go to stdout as JSON lines and, with ``--results``, to a JSON file.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def quality(name: str) -> dict:
    warnings.filterwarnings("ignore")
    from churnml.churn import FeatureStore, churn_backtest
    from churnml.config import load_config
    from churnml.io import load_dataset

    cfg = load_config(ROOT / "configs" / f"{name}.yaml")
    ds = load_dataset(cfg)
    t = time.perf_counter()
    bt = churn_backtest(FeatureStore(ds.transactions, cfg, events=ds.events, customers=ds.customers), n_resamples=0)
    out = {"log": name, "customers": int(ds.transactions["customer_id"].nunique()), "backtest_s": round(time.perf_counter() - t, 2)}
    for scorer, row in bt.summary.iterrows():
        out[f"auc_{scorer}"] = round(float(row["roc_auc"]), 5)
    out["auc_per_cutoff"] = {f"{c}": round(float(v), 5) for (c, s), v in bt.per_cutoff["roc_auc"].items() if s == "model"}
    out["peak_mb"] = round(rss_mb())
    return out


def scale(n: int, uncapped: bool = False) -> dict:
    warnings.filterwarnings("ignore")
    import numpy as np
    import pandas as pd
    from sklearn.metrics import roc_auc_score

    from churnml.churn import churn_labels
    from churnml.config import Config
    from churnml.datasets import simulate
    from churnml.io import Dataset, LoadReport
    from churnml.pipeline import fit_pipeline

    bg = {"r": 1.0, "alpha": 8.0, "a": 0.8, "b": 3.0}
    tx, _ = simulate(n, "2021-01-01", "2024-04-01", bg, seed=0)
    tx["is_return"] = False
    as_of = pd.Timestamp("2024-01-01")
    cfg = Config()
    cfg.clv.horizon_days = 180
    if uncapped:  # every row and customer in every fit, as before the caps existed
        cfg.churn.max_train_rows = cfg.clv.ml_max_train_rows = cfg.clv.max_fit_customers = None
    train = tx.loc[tx["timestamp"] < as_of].reset_index(drop=True)
    ds = Dataset(train, LoadReport(source="simulated", customers=n, orders=len(train)))
    out: dict = {"customers": n, "transactions": int(len(train)), "uncapped": uncapped}
    t = time.perf_counter()
    pipe, _ = fit_pipeline(ds, cfg, as_of=as_of, backtest=False)
    out["train_s"] = round(time.perf_counter() - t, 2)
    out["train_peak_mb"] = round(rss_mb())
    out["stages_s"] = pipe.timings
    out["train_rows"] = pipe.training.get("train_rows")
    out["train_rows_used"] = pipe.training.get("train_rows_used", pipe.training.get("train_rows"))
    out["best_iteration"] = pipe.training.get("best_iteration")
    out["value_model"] = pipe.value_model.chosen_
    out["clv_params"] = {k: round(v, 4) for k, v in pipe.value_model.clv_model_.params_.items()}
    feats = pipe.features(train, as_of)
    p = pipe.churn_model.predict_proba(feats)[:, 1]
    y = churn_labels(tx, as_of, cfg.churn.horizon_days).reindex(feats.index).to_numpy()
    out["heldout_auc"] = round(float(roc_auc_score(y, p)), 5)
    out["heldout_auc_recency"] = round(float(roc_auc_score(y, feats["recency_days"].to_numpy())), 5)
    out["peak_mb"] = round(rss_mb())
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quality", action="store_true")
    ap.add_argument("--logs", nargs="+", default=["cdnow", "apparel"])
    ap.add_argument("--scale", type=int, nargs="*", default=[])
    ap.add_argument("--uncapped", action="store_true", help="--scale without the row/customer caps (the old behaviour)")
    ap.add_argument("--results")
    ap.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        kind, arg = args.worker
        print(json.dumps(quality(arg) if kind == "quality" else scale(int(arg), args.uncapped)))
        return
    jobs = ([("quality", name) for name in args.logs] if args.quality else []) + [("scale", str(n)) for n in args.scale]
    rows = []
    for kind, arg in jobs:
        if kind == "quality" and arg == "apparel" and not (ROOT.parent / "shared" / "data" / "apparel").is_dir():
            print(f"skip apparel: ../shared/data/apparel not found", file=sys.stderr)
            continue
        t = time.perf_counter()
        cmd = [sys.executable, __file__, "--worker", kind, arg] + (["--uncapped"] if args.uncapped else [])
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=7200)
        if res.returncode != 0:
            print(res.stderr[-3000:], file=sys.stderr)
            raise SystemExit(f"{kind} {arg} failed")
        row = {"kind": kind, **json.loads(res.stdout.strip().splitlines()[-1]), "process_s": round(time.perf_counter() - t, 1)}
        row["load_avg_after"] = round(os.getloadavg()[0], 2)
        rows.append(row)
        print(json.dumps(row), flush=True)
    if args.results:
        Path(args.results).write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
