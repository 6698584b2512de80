"""The README's model figures, regenerated: the main job (``churnml.jobs.run``, no MLflow) on the
project's configs (CDNOW: ``configs/cdnow.yaml``; apparel: ``configs/apparel.yaml`` when
``../shared/data`` is there), then per log the churn backtest (every scorer, intervals, the shipped
scorer), the value backtest (judging half, paired intervals, what shipped), the decisions audit,
P(alive)'s source and the reason sentences by kind.

    python benchmarks/readme_figures.py          # -> benchmarks/results/readme_figures.md (+ .json)

Every number the README quotes for these logs is in that file, with the commit it was made from.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import subprocess
import sys
import tempfile
import warnings
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
OUT = HERE / "results" / "readme_figures.md"
CONFIGS = {"cdnow": REPO / "configs" / "cdnow.yaml", "apparel": REPO / "configs" / "apparel.yaml"}


def _commit() -> str:
    try:
        sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "src", "configs"], cwd=REPO, capture_output=True, text=True).stdout.strip()
        return sha + (" (uncommitted changes)" if dirty else "")
    except Exception:  # noqa: BLE001
        return "unknown"


def one_log(name: str, config_path: Path) -> tuple[list[str], dict]:
    import pandas as pd

    from churnml.config import load_config
    from churnml.jobs import run
    from churnml.segments import parse_reason

    cfg = load_config(config_path)
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = run(cfg, out_dir=Path(tmp) / "out", track=False)
        report = json.loads((res.out_dir / "run_report.json").read_text())
        scores = pd.read_parquet(res.out_dir / "customers.parquet")
    lines = [f"## {name} (`{config_path.relative_to(REPO)}`, as of {report['as_of'][:10]}, {report['customers_in_scope']:,} customers)", ""]
    bt = report.get("churn_backtest")
    training = report.get("churn_training") or {}
    shipped = (training.get("shipped_scorer") or {})
    lines.append(f"Churn scorer shipped: `{training.get('chosen')}`" + (f"; {shipped.get('sentence')}" if shipped.get("sentence") else ""))
    if bt:
        lines += ["", "| scorer | ROC AUC [95% CI] | recent ROC AUC | PR AUC | Brier | ECE |", "|---|---|---|---|---|---|"]
        for scorer, r in bt.items():
            lines.append(f"| {scorer} | {r['roc_auc']:.4f} [{r.get('roc_auc_ci_low', float('nan')):.3f}, {r.get('roc_auc_ci_high', float('nan')):.3f}] | "
                         f"{r.get('recent_roc_auc', float('nan')):.3f} | {r.get('pr_auc', float('nan')):.4f} | {r.get('brier', float('nan')):.4f} | "
                         f"{r.get('ece', float('nan')):.3f} |")
        m = bt.get("model", {})
        diffs = [f"{b}: {m[f'roc_auc_diff_vs_{b}']:+.4f} [{m[f'roc_auc_diff_vs_{b}_ci_low']:+.4f}, {m[f'roc_auc_diff_vs_{b}_ci_high']:+.4f}]"
                 for b in ("recency", "logistic_rfm", "btyd") if f"roc_auc_diff_vs_{b}" in m]
        lines += ["", "Model minus baseline, ROC AUC (paired 95% interval, mean over cutoffs): " + "; ".join(diffs)]
    vb = report.get("value_backtest") or {}
    metrics = vb.get("metrics") or {}
    if metrics:
        lines += ["", f"Value model shipped: `{report.get('value_model')}` (chosen on the selection half; the table is the judging half)", "",
                  "| candidate | Spearman | top-decile capture | predicted / actual total | score | shipped minus candidate [95% CI] |",
                  "|---|---|---|---|---|---|"]
        for cand, r in metrics.items():
            diff = (f"{r['score_diff']:+.3f} [{r['score_diff_ci_low']:+.3f}, {r['score_diff_ci_high']:+.3f}]"
                    if r.get("score_diff") is not None and r.get("score_diff_ci_low") is not None else "")
            lines.append(f"| {cand} | {r.get('spearman', float('nan')):.3f} | {r.get('top_decile_capture', float('nan')):.3f} | "
                         f"{r.get('total_ratio', float('nan')):.2f} | {r.get('score', float('nan')):.3f} | {diff} |")
        if "predicted_clv" in scores.columns:
            zero = int((scores["predicted_clv"].to_numpy(dtype=float) == 0).sum())
            lines += ["", f"predicted_clv exactly 0 for {zero:,} of {len(scores):,} customers ({zero / max(len(scores), 1):.1%})"]
    audit = report.get("audit") or {}
    lines += ["", "Decisions audit: " + ", ".join(f"{k} {v}" for k, v in (audit.get("status") or {}).items())]
    src = scores["p_alive_source"].value_counts().to_dict() if "p_alive_source" in scores.columns else {}
    fit = report.get("clv_fit") or {}
    lines += ["", f"CLV fit: {fit.get('purchase_model')}, rung {fit.get('fit_rung')}, no dropout {fit.get('no_dropout')}, "
                  f"dropout share {fit.get('dropout_share')}; p_alive source: {src}"]
    kinds: Counter = Counter()
    with_drivers = 0
    for text in scores["reasons"].astype(str):
        if text.startswith(("low risk", "no risk driver", "no single driver")):
            continue
        with_drivers += 1
        for sentence in text.split("; "):
            parsed = parse_reason(sentence, scores.columns)
            kinds[parsed[0] if parsed else "unparsed"] += 1
    tiers = scores["risk_tier"].value_counts().to_dict()
    lines += ["", f"Reasons: {with_drivers:,} of {len(scores):,} customers get risk drivers; risk tiers {tiers}", "",
              "| sentence kind | customers with drivers |", "|---|---|"]
    lines += [f"| {k} | {v / max(with_drivers, 1):.0%} |" for k, v in kinds.most_common(12)]
    examples = scores.loc[scores["risk_tier"] == "high"].sort_values("value_at_risk", ascending=False)["reasons"].head(5).tolist()
    lines += ["", "Reasons of the five high-risk customers with the most value at risk:", ""] + [f"- {e}" for e in examples]
    return lines + [""], {"report": {k: report.get(k) for k in ("churn_backtest", "value_backtest", "value_model", "audit", "clv_fit")},
                          "reason_kinds": dict(kinds), "with_drivers": with_drivers, "customers": len(scores)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=OUT)
    a = ap.parse_args(argv)
    lines = ["# README figures", "", f"`python benchmarks/readme_figures.py` on {dt.date.today().isoformat()}, commit {_commit()}, "
             f"Python {sys.version.split()[0]}; default settings of each config.", ""]
    data = {}
    for name, path in CONFIGS.items():
        if name == "apparel" and not (REPO.parent / "shared" / "data" / "apparel").is_dir():
            lines += [f"## {name}: skipped (../shared/data absent)", ""]
            continue
        part, d = one_log(name, path)
        lines += part
        data[name] = d
        print(f"{name} done", file=sys.stderr)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text("\n".join(lines) + "\n")
    a.out.with_suffix(".json").write_text(json.dumps(data, indent=2, default=str))
    print(f"wrote {a.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
