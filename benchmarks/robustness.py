"""Robustness benchmark: the main job with DEFAULT settings on every log of the robustness corpus,
then the sanity checks of what a marketer would receive.

For each log of :func:`churnml.datasets.corpus` (CDNOW, apparel and grocery truncated to their first
9 and 12 months, and the simulated regimes whole and truncated): write it to a CSV, write a config
that maps only ``data.transactions`` and ``data.columns`` (nothing tuned), run
``churnml.jobs.run(config, out_dir=..., track=False)`` in a fresh process, read
``customers.parquet`` and ``run_report.json`` and apply :mod:`churnml.sanity`. One log at a time.

    python benchmarks/robustness.py                      # every log -> results/robustness.md (+ .json)
    python benchmarks/robustness.py --only sim_one_timers_12m,cdnow_9m
    python benchmarks/robustness.py --quick              # 12-month logs only, 2,000 simulated customers
    python benchmarks/robustness.py --out benchmarks/results/robustness_before.md

The exit status is 0 when every log trained and passed, 1 otherwise (the table is written either way).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
DEFAULT_OUT = HERE / "results" / "robustness.md"
QUICK_CUSTOMERS = 2000


# --------------------------------------------------------------------------- worker (one log, own process)


def _fallback(cfg, out: Path) -> str:
    """When ``jobs.run`` fails, fit and score with the public pieces it is made of
    (``fit_pipeline`` + ``ChurnPipeline.score``, no CLV holdout diagnostics; without the churn
    backtest if that is what fails) and write ``customers.parquet`` and a ``run_report.json`` with
    the same keys, so the sanity checks can still show what the models would have shipped.
    Returns what was left out."""
    from churnml.io import load_dataset
    from churnml.jobs import resolve_cutoff
    from churnml.pipeline import fit_pipeline
    from churnml.rfm import rfm_scores

    dataset = load_dataset(cfg)
    as_of = resolve_cutoff(dataset)
    try:
        pipe, bt = fit_pipeline(dataset, cfg, as_of=as_of)
        mode = "without the CLV holdout diagnostics"
    except Exception as err:  # noqa: BLE001
        pipe, bt = fit_pipeline(dataset, cfg, as_of=as_of, backtest=False)
        mode = f"without the CLV holdout diagnostics and without the churn backtest (with it: {type(err).__name__}: {err})"
    scores = pipe.score(dataset.transactions, as_of, events=dataset.events, customers=dataset.customers)
    scores = scores.join(rfm_scores(scores, config=cfg.rfm))
    out.mkdir(parents=True, exist_ok=True)
    scores.to_parquet(out / "customers.parquet")
    vb = pipe.value_model.backtest_
    report = {
        "churn_backtest": bt.to_dict()["summary"] if bt is not None else None,
        "churn_training": pipe.training,
        "value_model": pipe.value_model.chosen_,
        "value_backtest": vb.to_dict() if vb is not None else None,
        "value_notes": pipe.value_model.notes_,
        "clv_fit": pipe.value_model.clv_model_.summary(),
    }
    (out / "run_report.json").write_text(json.dumps(report, indent=2, default=str))
    return mode


def _worker(workdir: Path) -> int:
    import warnings

    import pandas as pd

    from churnml.config import load_config
    from churnml.jobs import run
    from churnml.sanity import check_run_outputs, observed_rates
    from churnml.segments import assign_segments

    res: dict = {"ok": False}
    cfg = load_config(workdir / "config.yaml")
    t0 = time.perf_counter()
    caught: list[str] = []
    out = workdir / "out"
    with warnings.catch_warnings(record=True) as ws:
        warnings.simplefilter("always")
        try:
            result = run(cfg, out_dir=out, track=False)
            res["trained"] = True
            res["run_timings"] = result.timings
        except Exception as err:  # noqa: BLE001 - the benchmark reports any failure
            res["trained"] = False
            res["error"] = f"{type(err).__name__}: {err}"
            res["traceback"] = traceback.format_exc(limit=-6)
            try:
                res["fallback_mode"] = _fallback(cfg, workdir / "fallback")
                out = workdir / "fallback"
                res["fallback"] = True
            except Exception as err2:  # noqa: BLE001
                res["fallback"] = False
                res["fallback_error"] = f"{type(err2).__name__}: {err2}"
        caught = [f"{w.category.__name__}: {w.message}" for w in ws]
    res["seconds"] = round(time.perf_counter() - t0, 1)
    res["warnings"] = _unique(caught)
    if res["trained"] or res.get("fallback"):
        raw = pd.read_csv(workdir / "log.csv", dtype={"customer_id": str, "order_id": str}, parse_dates=["timestamp"])
        check = check_run_outputs(out, cfg, transactions=raw)
        s = check.scores
        seg = s if "segment" in s.columns else assign_segments(
            s[[c for c in ("churn_probability", "predicted_clv", "value_if_retained") if c in s.columns]], cfg.segments)
        obs = observed_rates(raw, pd.to_datetime(s["as_of"]).max() if "as_of" in s.columns else None)
        v, c = check.verdict.value, check.verdict.churn
        rep = check.report
        res.update(
            ok=check.ok and res["trained"],
            problems=check.problems,
            verdict=check.verdict.sentence,
            churn={"beats": c.beats, "model_auc": _num(c.model_score), "recency_auc": _num(c.baseline_score)},
            value={"beats": v.beats, "chosen": v.model, "score": _num(v.model_score), "naive": _num(v.baseline_score)},
            scored=int(len(s)),
            save_now=int((seg["segment"] == cfg.segments.matrix[f"{cfg.segments.risk.labels[-1]}|{cfg.segments.value.labels[-1]}"]).sum()),
            segments_from="customers.parquet" if "segment" in s.columns else "assign_segments (customers.parquet has no segment column)",
            max_clv=_num(s["predicted_clv"].max()),
            max_expected_purchases=_num(s["expected_purchases"].max()),
            p_alive_one_share=_num((s["p_alive"] == 1.0).mean()),
            max_annual_spend=_num(obs["spend_rate"].max() * 365.25),
            value_notes=rep.get("value_notes"),
            clv_fit={k: v for k, v in (rep.get("clv_fit") or {}).items() if k in ("purchase_model", "fit_rung", "params", "freq_monetary_corr")},
            churn_scorer=(rep.get("churn_training") or {}).get("chosen"),
        )
    (workdir / "result.json").write_text(json.dumps(res, indent=2, default=str))
    return 0


def _num(x) -> float | None:
    import math

    x = float(x)
    return x if math.isfinite(x) else (None if math.isnan(x) else x)


def _unique(messages: list[str], limit: int = 8) -> list[str]:
    seen: dict[str, int] = {}
    for m in messages:
        m = m.splitlines()[0][:300]
        seen[m] = seen.get(m, 0) + 1
    return [f"{m} (x{k})" if k > 1 else m for m, k in list(seen.items())[:limit]]


# --------------------------------------------------------------------------- driver


def _git_commit() -> str:
    if not (REPO / ".git").exists():
        return "unknown (not a git checkout)"
    try:
        sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "src"], cwd=REPO, capture_output=True, text=True).stdout.strip()
        return sha + (" (uncommitted changes in src/)" if dirty else "")
    except Exception:  # noqa: BLE001
        return "unknown"


def _write_log(df, workdir: Path) -> None:
    import yaml

    df.to_csv(workdir / "log.csv", index=False)
    columns = {"customer_id": "customer_id", "timestamp": "timestamp", "amount": "amount"}
    if "order_id" in df.columns:
        columns["order_id"] = "order_id"
    (workdir / "config.yaml").write_text(yaml.safe_dump({"data": {"transactions": "log.csv", "columns": columns}}, sort_keys=False))


def run_log(name: str, df, description: str, timeout: float, keep: Path | None = None) -> dict:
    """Run the worker on one log in a fresh process; return its result plus the log's size."""
    base = Path(tempfile.mkdtemp(prefix=f"robust-{name}-", dir=keep)) if keep else None
    with tempfile.TemporaryDirectory(prefix=f"robust-{name}-") as tmp:
        workdir = base or Path(tmp)
        _write_log(df, workdir)
        days = (df["timestamp"].max() - df["timestamp"].min()).total_seconds() / 86400
        info = {
            "name": name, "description": description, "customers": int(df["customer_id"].nunique()), "rows": int(len(df)),
            "months": round(days / 30.44, 1), "negative_rows": int((df["amount"] < 0).sum()),
        }
        env = {**os.environ, "PYTHONWARNINGS": "ignore", "MPLBACKEND": "Agg"}
        t0 = time.perf_counter()
        try:
            proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--worker", str(workdir)], cwd=workdir,
                                  capture_output=True, text=True, timeout=timeout, env=env)
            out = workdir / "result.json"
            if out.is_file():
                info.update(json.loads(out.read_text()))
            else:
                info.update(trained=False, ok=False, error=f"worker exited {proc.returncode}: {proc.stderr.strip()[-600:]}")
        except subprocess.TimeoutExpired:
            info.update(trained=False, ok=False, error=f"timeout after {timeout:g} s")
        info["wall_seconds"] = round(time.perf_counter() - t0, 1)
    return info


def _f(x, fmt="{:.3f}") -> str:
    return "-" if x is None else fmt.format(x)


def _big(x) -> str:
    if x is None:
        return "-"
    return f"{x:,.0f}" if abs(x) < 1e7 else f"{x:.2e}"


def markdown(results: list[dict], skipped: dict[str, str], command: str, started: str, note: str | None = None) -> str:
    import multiprocessing

    lines = [
        "# Robustness of the main job on logs it was never tuned on",
        "",
        f"`{command}` — {started}, commit {_git_commit()}, {multiprocessing.cpu_count()} cores, Python {platform.python_version()}.",
        "",
        *([note, ""] if note else []),
        "Default settings (only `data.transactions` and `data.columns` mapped), `churnml.jobs.run(..., track=False)`, "
        "then `churnml.sanity.check_scores` on `customers.parquet` (segments from `churnml.segments.assign_segments` when "
        "the file has none, as `churnml score` adds them) and `churnml.sanity.check_backtest` on the run report. "
        "AUC: churn backtest ROC AUC of the shipped model vs recency alone. Value: the shipped candidate's backtest score "
        "(mean of Spearman and top-decile capture) vs the naive spend-rate forecast. Max CLV / max annual spend: the largest "
        "`predicted_clv` against the largest observed annualised net spend (net spend / max(tenure, 30 days) x 365.25).",
        "",
        "| log | customers | months | trained | churn AUC model / recency | value: chosen score / naive | sanity problems | Save now | max CLV / max annual spend | max expected purchases | P(alive)=1 share | seconds |",
        "|---|---:|---:|---|---|---|---:|---:|---|---:|---:|---:|",
    ]
    for r in results:
        scored = r.get("trained") or r.get("fallback")
        if scored:
            ch = r["churn"]
            if ch["model_auc"] is None or ch["recency_auc"] is None:
                churn = "no backtest possible"
            else:
                churn = f"{_f(ch['model_auc'])} / {_f(ch['recency_auc'])}" + (" ✗" if ch["beats"] is False else "")
            va = r["value"]
            value = "no backtest possible" if va["score"] is None else f"{va['chosen']} {_f(va['score'])} / {_f(va['naive'])}" + (" ✗" if va["beats"] is False else "")
            trained = "yes" if r.get("trained") else "**no**: " + r.get("error", "?").splitlines()[0].replace("|", "/")[:160] + " (columns to the right: fit_pipeline + score fallback)"
            row = [r["name"], f"{r['customers']:,}", f"{r['months']:g}", trained, churn, value, str(len(r["problems"])),
                   f"{r['save_now']:,}", f"{_big(r['max_clv'])} / {_big(r['max_annual_spend'])}", _big(r["max_expected_purchases"]),
                   _f(r["p_alive_one_share"], "{:.2f}"), _f(r.get("seconds"), "{:.0f}")]
        else:
            err = r.get("error", "?").splitlines()[0].replace("|", "/")
            row = [r["name"], f"{r['customers']:,}", f"{r['months']:g}", f"**no**: {err[:160]}", "-", "-", "-", "-", "-", "-", "-",
                   _f(r.get("seconds", r.get("wall_seconds")), "{:.0f}")]
        lines.append("| " + " | ".join(row) + " |")
    for name, why in skipped.items():
        lines.append(f"| {name} | - | - | skipped: {why} | - | - | - | - | - | - | - | - |")
    n_ok = sum(1 for r in results if r.get("ok"))
    n_run = sum(1 for r in results if r.get("trained"))
    lines += ["", f"**{n_ok} of {len(results)} logs trained and passed every sanity check; `jobs.run` completed on {n_run}.** "
              "✗: the model does not beat its naive baseline. When `jobs.run` failed, the columns right of *trained* come from "
              "`fit_pipeline` + `ChurnPipeline.score` (the run's own steps without the CLV holdout diagnostics), where that worked.",
              "", "## Details", ""]
    for r in results:
        lines.append(f"### {r['name']}")
        lines.append("")
        lines.append(f"{r['description']}; {r['rows']:,} rows ({r['negative_rows']:,} negative), {r['customers']:,} customers.")
        lines.append("")
        if not r.get("trained"):
            lines += ["`jobs.run` failed:", "", "```", r.get("error", "?")[:2000], "```", ""]
            if r.get("traceback"):
                lines += ["<details><summary>traceback</summary>", "", "```", r["traceback"][-3000:], "```", "", "</details>", ""]
            if r.get("fallback"):
                lines += [f"Fallback (`fit_pipeline` + `ChurnPipeline.score`, {r.get('fallback_mode', '')}): what the models would have shipped:", ""]
            elif "fallback_error" in r:
                lines += [f"The fallback failed too: `{r['fallback_error'][:600]}`", ""]
        if r.get("trained") or r.get("fallback"):
            lines.append(r["verdict"])
            lines.append("")
            if r["problems"]:
                lines += ["Sanity problems:", ""] + [f"- {p}" for p in r["problems"]] + [""]
            else:
                lines += ["No sanity problem.", ""]
            if r.get("value_notes"):
                lines += ["Value notes:", ""] + [f"- {n}" for n in r["value_notes"]] + [""]
            if r.get("churn_scorer"):
                lines += [f"Shipped churn scorer: {r['churn_scorer']}.", ""]
            if r.get("clv_fit"):
                lines += [f"CLV fit: `{json.dumps(r['clv_fit'], default=str)[:600]}`", ""]
        if r.get("warnings"):
            lines += ["Warnings during the run:", ""] + [f"- {w}" for w in r["warnings"]] + [""]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", help="comma-separated corpus log names (see churnml.datasets.CORPUS)")
    parser.add_argument("--quick", action="store_true", help=f"12-month logs only, {QUICK_CUSTOMERS:,} simulated customers")
    parser.add_argument("--customers", type=int, default=None, help="customers per simulated regime (default: the corpus's)")
    parser.add_argument("--shared-dir", default=None, help="folder with apparel/ and grocery/ (default ../shared/data)")
    parser.add_argument("--out", default=str(DEFAULT_OUT), help="markdown results (a .json with the same stem is written too)")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds per log")
    parser.add_argument("--keep", default=None, help="keep each log's CSV, config and outputs under this folder")
    parser.add_argument("--note", default=None, help="a line for the results header (e.g. which code was measured)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return _worker(Path(args.worker))

    from churnml.datasets import CORPUS, CORPUS_CUSTOMERS, corpus

    names = list(CORPUS)
    if args.only:
        names = [n.strip() for n in args.only.split(",") if n.strip()]
        unknown = [n for n in names if n not in CORPUS]
        if unknown:
            parser.error(f"unknown log(s) {unknown}; known: {', '.join(CORPUS)}")
    if args.quick:
        names = [n for n in names if n.endswith("_12m")]
    customers = args.customers or (QUICK_CUSTOMERS if args.quick else CORPUS_CUSTOMERS)
    started = dt.datetime.now().strftime("%Y-%m-%d %H:%M")
    command = "python benchmarks/robustness.py " + " ".join(argv if argv is not None else sys.argv[1:])
    logs = corpus(names, args.shared_dir, n_customers=customers)
    keep = Path(args.keep) if args.keep else None
    if keep:
        keep.mkdir(parents=True, exist_ok=True)
    results = []
    for name, (df, description) in logs.items():
        print(f"[{name}] {len(df):,} rows, {df['customer_id'].nunique():,} customers ...", flush=True)
        r = run_log(name, df, description, args.timeout, keep)
        results.append(r)
        if not r.get("trained"):
            print(f"[{name}] FAILED: {r.get('error', '?').splitlines()[0][:300]}", flush=True)
            if r.get("fallback_error"):
                print(f"[{name}] fallback failed too: {r['fallback_error'].splitlines()[0][:300]}", flush=True)
        if r.get("trained") or r.get("fallback"):
            print(f"[{name}] {'trained' if r.get('trained') else 'fallback'} in {r.get('seconds')} s; {len(r['problems'])} sanity problem(s); {r['verdict']}", flush=True)
            for p in r["problems"]:
                print(f"    - {p}", flush=True)
    for name, why in logs.skipped.items():
        print(f"[{name}] skipped: {why}")
    md = markdown(results, logs.skipped, command.strip(), started, args.note)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(md)
    out.with_suffix(".json").write_text(json.dumps({"command": command, "started": started, "results": results, "skipped": logs.skipped},
                                                   indent=2, default=str))
    print(md)
    print(f"written {out} and {out.with_suffix('.json')}")
    return 0 if results and all(r.get("ok") for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
