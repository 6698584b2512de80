"""Scaling benchmark: features, CLV fit, churn training and end-to-end scoring at 10k, 100k, 1M customers.

    python benchmarks/bench_scale.py                       # 10k, 100k, 1M (about 15 minutes on 2 cores)
    python benchmarks/bench_scale.py --sizes 10000 100000  # quicker

Every size runs in its own process on a log simulated from BG/NBD + Gamma-Gamma
(`churnml.datasets.simulate`, ~7 transactions per customer over 3 years). Stages, timed in order:

* `features`: `snapshot_features` at the end of the log;
* `clv_fit`: `CLVModel` (BG/NBD + Gamma-Gamma, weights trick) on the weekly RFM;
* `train`: `fit_pipeline` (churn backtest off, 4 training cutoffs, CLV per cutoff, LightGBM, value model);
* `score`: `score_dataset` + `write_scores` (path reasons), the batch job end to end;
* reference, what a user would otherwise write: `lifetimes` summary utility + `BetaGeoFitter` +
  `GammaGammaFitter` on raw rows; and a pandas-only group-by RFM.

Writes `benchmarks/results/scale.md` (table) and `benchmarks/results/scale.png` (time vs size).
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

RESULTS = Path(__file__).parent / "results"


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def worker(n: int, seed: int) -> dict:
    warnings.filterwarnings("ignore")
    import tempfile

    import pandas as pd

    from churnml.clv import CLVModel
    from churnml.config import Config
    from churnml.datasets import simulate
    from churnml.features import rfm_summary, snapshot_features
    from churnml.io import Dataset, LoadReport
    from churnml.pipeline import fit_pipeline
    from churnml.scoring import score_dataset, write_scores

    out: dict = {"customers": n}
    bg = {"r": 1.0, "alpha": 8.0, "a": 0.8, "b": 3.0}
    tx, _ = simulate(n, "2021-01-01", "2024-01-01", bg, seed=seed)
    tx["is_return"] = False
    out["transactions"] = len(tx)
    as_of = pd.Timestamp("2024-01-01")
    cfg = Config()
    cfg.clv.horizon_days = 180
    cfg.score.reasons_method = "path"

    def stage(name, fn):
        t = time.perf_counter()
        res = fn()
        out[f"{name}_s"] = round(time.perf_counter() - t, 2)
        out[f"{name}_peak_mb"] = round(rss_mb())
        print(json.dumps({"n": n, name: out[f"{name}_s"]}), file=sys.stderr, flush=True)
        return res

    stage("features", lambda: snapshot_features(tx, as_of))
    rfm = stage("rfm_weeks", lambda: rfm_summary(tx, amount="amount", observation_end=as_of, freq="D", freq_multiplier=7))
    stage("clv_fit", lambda: CLVModel().fit(rfm))
    ds = Dataset(tx, LoadReport(source="simulated", customers=n, orders=len(tx)))
    pipe, _ = stage("train", lambda: fit_pipeline(ds, cfg, as_of=as_of, backtest=False))

    def score():
        res = score_dataset(pipe, ds, cfg, as_of=as_of)
        with tempfile.TemporaryDirectory() as tmp:
            write_scores(res, Path(tmp) / "s.parquet")
        return res

    stage("score", score)

    # the reference a user would otherwise write
    from lifetimes import BetaGeoFitter, GammaGammaFitter
    from lifetimes.utils import summary_data_from_transaction_data

    ref = stage("ref_lifetimes_summary", lambda: summary_data_from_transaction_data(
        tx, "customer_id", "timestamp", "amount", observation_period_end=as_of, freq="D", freq_multiplier=7))

    def ref_fit():
        BetaGeoFitter().fit(ref["frequency"], ref["recency"], ref["T"])
        rep = ref[(ref["frequency"] > 0) & (ref["monetary_value"] > 0)]
        GammaGammaFitter().fit(rep["frequency"], rep["monetary_value"])

    stage("ref_lifetimes_fit_raw", ref_fit)

    def pandas_rfm():
        d = tx.assign(day=tx["timestamp"].dt.floor("D"))
        per = d.groupby(["customer_id", "day"], sort=False)["amount"].sum().reset_index()
        g = per.groupby("customer_id")
        return pd.DataFrame({"n": g.size(), "first": g["day"].min(), "last": g["day"].max(), "spend": g["amount"].sum()})

    stage("ref_pandas_rfm", pandas_rfm)
    out["peak_mb"] = round(rss_mb())
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.seed)))
        return
    rows = []
    for n in args.sizes:
        res = subprocess.run([sys.executable, __file__, "--worker", str(n), "--seed", str(args.seed)],
                             capture_output=True, text=True, timeout=3600)
        if res.returncode != 0:
            print(res.stderr[-3000:], file=sys.stderr)
            raise SystemExit(f"size {n} failed")
        rows.append(json.loads(res.stdout.strip().splitlines()[-1]))
        print(rows[-1], flush=True)
    stages = ["features", "clv_fit", "train", "score", "ref_lifetimes_summary", "ref_lifetimes_fit_raw", "ref_pandas_rfm"]
    lines = [
        "# Scaling benchmark",
        "",
        f"command: `python benchmarks/bench_scale.py --sizes {' '.join(map(str, args.sizes))}`; {os.cpu_count()} cores; "
        "seconds per stage, each size in its own process; peak RSS is the whole process (log included).",
        "",
        "| customers | transactions | " + " | ".join(f"{s} s" for s in stages) + " | peak RSS MB |",
        "|---" * (len(stages) + 3) + "|",
    ]
    for r in rows:
        lines.append(f"| {r['customers']:,} | {r['transactions']:,} | " + " | ".join(f"{r.get(s + '_s', float('nan')):.2f}" for s in stages)
                     + f" | {r['peak_mb']:,} |")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "scale.md").write_text("\n".join(lines) + "\n")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4.5))
    ax = fig.subplots()
    sizes = [r["customers"] for r in rows]
    for s in stages:
        ax.plot(sizes, [r[s + "_s"] for r in rows], "o-" if not s.startswith("ref") else "s--", label=s)
    ax.set(xscale="log", yscale="log", xlabel="customers", ylabel="seconds", title="churnml stages vs size (2 cores)")
    ax.legend(fontsize=8)
    fig.savefig(RESULTS / "scale.png", dpi=110, bbox_inches="tight")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
