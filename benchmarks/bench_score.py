"""Batch scoring at scale: train on a simulated log, then score N simulated customers.

    python benchmarks/bench_score.py --customers 1000000 [--train-customers 50000] [--chunk 250000]

Measures wall time and peak RSS of the scoring job (`churnml.scoring.score_dataset` +
`write_scores`) on N customers (~6 transactions each over 3 years, BG/NBD + Gamma-Gamma
simulation), with the model trained on a smaller log from the same process (training time is
reported separately). Writes a Markdown row to benchmarks/results/score.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--customers", type=int, default=1_000_000)
    ap.add_argument("--train-customers", type=int, default=50_000)
    ap.add_argument("--chunk", type=int, default=250_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--reasons", choices=["shap", "path"], default="shap", help="score.reasons_method")
    ap.add_argument("--results", default=str(Path(__file__).parent / "results" / "score.md"))
    args = ap.parse_args()

    import churnml
    from churnml.config import Config
    from churnml.datasets import simulate
    from churnml.io import Dataset, LoadReport, prepare_transactions
    from churnml.pipeline import fit_pipeline
    from churnml.scoring import score_dataset, write_scores

    bg = {"r": 1.0, "alpha": 8.0, "a": 0.8, "b": 3.0}
    cfg = Config()
    cfg.clv.horizon_days = 180
    cfg.score.chunk_customers = args.chunk
    cfg.score.reasons_method = args.reasons

    t = time.perf_counter()
    train_tx, _ = simulate(args.train_customers, "2021-01-01", "2024-01-01", bg, seed=args.seed + 1)
    train_tx, rep = prepare_transactions(train_tx, source="simulated-train")
    pipe, _ = fit_pipeline(Dataset(train_tx, rep), cfg, backtest=False)
    t_train = time.perf_counter() - t
    print(f"trained on {args.train_customers:,} customers in {t_train:.1f}s", flush=True)

    t = time.perf_counter()
    tx, _ = simulate(args.customers, "2021-01-01", "2024-01-01", bg, seed=args.seed)
    tx["is_return"] = False
    t_sim = time.perf_counter() - t
    rss_before = rss_mb()
    print(f"simulated {args.customers:,} customers, {len(tx):,} transactions in {t_sim:.1f}s; rss {rss_before:,.0f} MB", flush=True)
    ds = Dataset(tx, LoadReport(source="simulated", orders=len(tx), customers=args.customers))
    t = time.perf_counter()
    result = score_dataset(pipe, ds, cfg)
    with tempfile.TemporaryDirectory() as tmp:
        write_scores(result, Path(tmp) / "scores.parquet")
    t_score = time.perf_counter() - t
    peak = rss_mb()
    line = (
        f"| {args.customers:,} | {len(tx):,} | {args.chunk:,} | {args.reasons} | {t_score:.1f} | {peak:,.0f} | {result.meta['timings']} | "
        f"trained on {args.train_customers:,} in {t_train:.0f}s |"
    )
    print(line)
    res = Path(args.results)
    res.parent.mkdir(parents=True, exist_ok=True)
    if not res.exists():
        res.write_text(
            "# Batch scoring benchmark\n\n"
            f"machine: {os.cpu_count()} cores, {platform.processor() or platform.machine()}, python {sys.version.split()[0]}, "
            f"pandas {pd.__version__}, churnml {churnml.__version__}\n\n"
            "command: `python benchmarks/bench_score.py --customers N`; peak RSS is the whole process "
            "(simulated log included)\n\n"
            "| customers | transactions | chunk | reasons | score + write s | peak RSS MB | stage timings | model |\n|---|---|---|---|---|---|---|---|\n"
        )
    with res.open("a") as fh:
        fh.write(line + "\n")


if __name__ == "__main__":
    main()
