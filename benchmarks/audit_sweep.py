"""Audit sweep: the main job with DEFAULT settings on every log we have, at several history lengths
and churn horizons, then the decisions audit (:mod:`churnml.audit`) of what a marketer receives.

For each log (CDNOW, apparel, grocery, and simulated regimes: baseline, no dropout, wholesale-like
rare big orders, heavy returns with cancellations, one-timers) and each (months of history,
churn horizon days) of the grid: keep the log's first ``months`` months, write a config that maps
only the file's columns and sets ``churn.horizon_days`` (every other setting default; the audit set
to ``warn`` so that its findings are recorded rather than refused), run ``churnml.jobs.run`` in a
fresh process, then audit ``customers.parquet`` + ``run_report.json`` with THIS tree's audit.

    python benchmarks/audit_sweep.py                        # -> results/audit_sweep.md (+ .json)
    python benchmarks/audit_sweep.py --only cdnow,sim_no_dropout --grid 6x60,12x90
    python benchmarks/audit_sweep.py --code-root /path/to/old/checkout --out results/audit_sweep_before.md

``--code-root`` runs the JOB with another checkout's ``src`` (e.g. the commit before the audit)
while the AUDIT stays this tree's: the "before" table of the same checks. ``--jobs 2`` runs two
logs at once. Exit status 0 when every case passes the audit (or is refused with a plain error).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
DEFAULT_OUT = HERE / "results" / "audit_sweep.md"
LOGS = ["cdnow", "apparel", "grocery", "sim_baseline", "sim_no_dropout", "sim_wholesale", "sim_heavy_returns", "sim_one_timers"]
GRID = [(3, 30), (6, 30), (6, 60), (9, 60), (9, 90), (12, 90)]
"""(months of history, churn horizon days) per log."""
SIM_CUSTOMERS = 5000
SIM_SEED = 20240601
"""Simulated logs: customers over 30 months and the seed (the robustness corpus's size)."""


# --------------------------------------------------------------------------- worker (one case, own process)


def _worker(workdir: Path) -> int:
    import warnings

    import yaml

    from churnml.config import Config, load_config
    from churnml.jobs import run

    raw = yaml.safe_load((workdir / "config.yaml").read_text())
    if "audit" in Config.model_fields:  # older trees have no audit section
        raw["audit"] = {"on_fail": "warn"}
    (workdir / "config.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    cfg = load_config(workdir / "config.yaml")
    res: dict = {}
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            run(cfg, out_dir=workdir / "out", track=False)
            res["trained"] = True
        except Exception as err:  # noqa: BLE001 - the sweep reports any failure
            res["trained"] = False
            res["error_type"] = type(err).__name__
            res["error"] = str(err).splitlines()[0][:400]
            res["exit_code"] = getattr(err, "exit_code", 1)
            res["traceback"] = traceback.format_exc(limit=-4)
    res["seconds"] = round(time.perf_counter() - t0, 1)
    (workdir / "result.json").write_text(json.dumps(res, indent=2, default=str))
    return 0


# --------------------------------------------------------------------------- driver


def load_source(name: str, shared_dir: Path | None):
    import pandas as pd

    from churnml.datasets import load_cdnow, simulate_regime

    if name == "cdnow":
        raw = load_cdnow("master")
        df = pd.DataFrame({"customer_id": raw["customer_id"].astype(str), "timestamp": raw["date"], "amount": raw["dollar_value"].astype(float)})
        return df, "CDNOW master (CD retailer, 1997-98)"
    if name in ("apparel", "grocery"):
        base = shared_dir or REPO.parent / "shared" / "data"
        if name == "apparel":
            raw = pd.read_csv(base / "apparel" / "apparelTrans.csv")
            df = pd.DataFrame({"customer_id": raw["Id"].astype(str), "timestamp": pd.to_datetime(raw["Date"]), "amount": raw["Price"].astype(float)})
            return df, "apparel retailer (CLVTools apparelTrans)"
        raw = pd.read_csv(base / "grocery" / "groceryElog.csv")
        df = pd.DataFrame({"customer_id": raw["cust"].astype(str), "timestamp": pd.to_datetime(raw["date"]), "amount": 1.0})
        return df, "grocery purchase dates (BTYDplus groceryElog), amount 1.0 each"
    if name.startswith("sim_"):
        df = simulate_regime(name[4:], SIM_CUSTOMERS, SIM_SEED)[0]
        return df, f"simulated {name[4:]} ({SIM_CUSTOMERS:,} customers over 30 months)"
    raise ValueError(f"unknown log {name!r}")


def _status_row(case: dict) -> str:
    from churnml.audit import CHECKS

    st = case.get("status") or {}
    cells = []
    for name in CHECKS:
        v = st.get(name, "-")
        cells.append({"pass": "pass", "fail": "**FAIL**", "warn": "warn", "note": "note"}.get(v, v))
    return " | ".join(cells)


def audit_case(work: Path, info: dict) -> dict:
    """Audit one case's outputs (``work/out``) with this tree's audit; ``info`` gains ``status``,
    ``ok`` and ``findings``."""
    import pandas as pd

    from churnml.audit import audit
    from churnml.config import load_config

    if info.get("trained"):
        scores = pd.read_parquet(work / "out" / "customers.parquet")
        report = json.loads((work / "out" / "run_report.json").read_text())
        cfg = load_config(work / "config.yaml")
        res = audit(scores, cfg, report)
        info["status"] = res.status
        info["ok"] = res.ok
        info["findings"] = [f"[{f.check}] {f.severity}: {f.message}"[:500] for f in res.findings]
        info["p_alive_one_share"] = float((scores["p_alive"] >= 0.999).mean()) if "p_alive" in scores else None
    else:
        # a plain refusal (bad input / too little data: exit 2) says why; a crash or a model error does not pass
        info["ok"] = info.get("exit_code") == 2
    return info


def run_case(name: str, df, months: int, horizon: int, code_root: Path, timeout: float, keep: Path | None = None) -> dict:
    """Run the job on one case in a fresh process and audit it; ``keep``: a folder to keep the
    case's log, config and outputs in (``--reaudit`` audits them again later)."""
    import contextlib

    import yaml

    from churnml.datasets import truncate_months

    cut = truncate_months(df, months)
    info = {"log": name, "months": months, "horizon": horizon, "customers": int(cut["customer_id"].nunique()), "rows": int(len(cut))}
    if keep is not None:
        (keep / f"{name}_{months}m_{horizon}d").mkdir(parents=True, exist_ok=True)
    ctx = contextlib.nullcontext(str(keep / f"{name}_{months}m_{horizon}d")) if keep is not None else \
        tempfile.TemporaryDirectory(prefix=f"sweep-{name}-{months}-{horizon}-")
    with ctx as tmp:
        work = Path(tmp)
        cut.to_csv(work / "log.csv", index=False)
        cols = {"customer_id": "customer_id", "timestamp": "timestamp", "amount": "amount"}
        if "order_id" in cut.columns:
            cols["order_id"] = "order_id"
        (work / "config.yaml").write_text(yaml.safe_dump({"data": {"transactions": "log.csv", "columns": cols},
                                                          "churn": {"horizon_days": horizon}}, sort_keys=False))
        env = {**os.environ, "PYTHONWARNINGS": "ignore", "MPLBACKEND": "Agg", "PYTHONPATH": str(code_root / "src")}
        t0 = time.perf_counter()
        try:
            proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--worker", str(work)], cwd=work,
                                  capture_output=True, text=True, timeout=timeout, env=env)
            if (work / "result.json").is_file():
                info.update(json.loads((work / "result.json").read_text()))
            else:
                info.update(trained=False, error_type="crash", error=(proc.stderr or proc.stdout)[-400:])
        except subprocess.TimeoutExpired:
            info.update(trained=False, error_type="timeout", error=f"over {timeout:.0f} s")
        info["wall_s"] = round(time.perf_counter() - t0, 1)
        (work / "case.json").write_text(json.dumps(info, default=str))
        return audit_case(work, info)


def _git_commit(root: Path) -> str:
    try:
        sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "src"], cwd=root, capture_output=True, text=True).stdout.strip()
        return sha + (" (uncommitted changes in src/)" if dirty else "")
    except Exception:  # noqa: BLE001
        return "unknown"


def write_results(cases: list[dict], out: Path, meta: dict) -> None:
    from churnml.audit import CHECKS

    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps({"meta": meta, "cases": cases}, indent=2, default=str))
    ok = sum(bool(c.get("ok")) for c in cases)
    lines = [
        "# Decisions audit sweep", "",
        f"`python benchmarks/audit_sweep.py {meta['args']}` on {meta['date']}; job code {meta['job_commit']}, audit code "
        f"{meta['audit_commit']}; DEFAULT settings (only the file's columns and churn.horizon_days set; audit.on_fail: warn).",
        "", f"**{ok} of {len(cases)} cases pass** (every check pass/warn/note, or the job refused the log with a plain "
        "error, exit 2).", "",
        "| log | months | horizon (days) | customers | " + " | ".join(CHECKS) + " | result | seconds |",
        "|---|---:|---:|---:|" + "---|" * len(CHECKS) + "---|---:|",
    ]
    for c in cases:
        if c.get("trained"):
            res = "pass" if c.get("ok") else "FAIL"
            row = _status_row(c)
        else:
            res = ("refused (exit 2): " if c.get("exit_code") == 2 else f"FAILED ({c.get('error_type')}): ") + str(c.get("error", ""))[:140]
            row = " | ".join("-" for _ in CHECKS)
        lines.append(f"| {c['log']} | {c['months']} | {c['horizon']} | {c['customers']:,} | {row} | {res} | {c.get('wall_s', '')} |")
    lines += ["", "## Findings (fail and warn) per case", ""]
    for c in cases:
        found = [f for f in c.get("findings", []) if "] note:" not in f]
        if found:
            lines.append(f"- **{c['log']} {c['months']}m / {c['horizon']}d**")
            lines += [f"  - {f}" for f in found]
    lines += ["", "## Notes (checks that cannot hold, said plainly)", ""]
    for c in cases:
        notes = [f for f in c.get("findings", []) if "] note:" in f]
        if notes:
            lines.append(f"- {c['log']} {c['months']}m / {c['horizon']}d: " + "; ".join(n.split("note: ", 1)[1][:200] for n in notes))
    out.write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--worker", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--only", help="comma-separated logs (default: all): " + ",".join(LOGS))
    ap.add_argument("--grid", help="comma-separated MONTHSxHORIZON cases (default: " + ",".join(f"{m}x{h}" for m, h in GRID) + ")")
    ap.add_argument("--code-root", type=Path, default=REPO, help="checkout whose src/ runs the job (default: this one)")
    ap.add_argument("--shared-dir", type=Path, default=None, help="folder with apparel/ and grocery/ (default ../shared/data)")
    ap.add_argument("--jobs", type=int, default=1, help="cases run at once")
    ap.add_argument("--timeout", type=float, default=900.0)
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--keep", type=Path, default=None, help="keep each case's log, config and outputs in this folder")
    ap.add_argument("--reaudit", type=Path, default=None, help="audit the cases kept in this folder again (no job runs)")
    a = ap.parse_args(argv)
    if a.worker:
        return _worker(a.worker)
    meta = {"date": dt.date.today().isoformat(), "args": " ".join(argv if argv is not None else sys.argv[1:]),
            "job_commit": _git_commit(a.code_root), "audit_commit": _git_commit(REPO), "python": sys.version.split()[0]}
    if a.reaudit:
        cases = []
        for case in sorted(a.reaudit.glob("*/case.json")):
            info = json.loads(case.read_text())
            cases.append(audit_case(case.parent, info))
        order = {n: i for i, n in enumerate(LOGS)}
        cases.sort(key=lambda c: (order.get(c["log"], 99), c["months"], c["horizon"]))
        if (a.reaudit / "meta.json").is_file():
            meta["job_commit"] = json.loads((a.reaudit / "meta.json").read_text())["job_commit"]
        meta["args"] = meta["args"] + " (jobs of the kept cases re-audited)"
        write_results(cases, a.out, meta)
        print(f"wrote {a.out}", file=sys.stderr)
        return 0 if all(c.get("ok") for c in cases) else 1
    if a.keep:
        a.keep.mkdir(parents=True, exist_ok=True)
        (a.keep / "meta.json").write_text(json.dumps(meta))
    logs = a.only.split(",") if a.only else LOGS
    grid = [tuple(int(x) for x in g.split("x")) for g in a.grid.split(",")] if a.grid else GRID
    cases = []
    todo = []
    for name in logs:
        try:
            df, what = load_source(name, a.shared_dir)
        except FileNotFoundError as err:
            print(f"skip {name}: {err}", file=sys.stderr)
            continue
        for months, horizon in grid:
            todo.append((name, df, months, horizon))

    def one(t):
        name, df, months, horizon = t
        c = run_case(name, df, months, horizon, a.code_root.resolve(), a.timeout, a.keep.resolve() if a.keep else None)
        print(f"{name} {months}m/{horizon}d: {'ok' if c.get('ok') else 'NOT OK'} {c.get('status') or c.get('error', '')} ({c.get('wall_s')} s)",
              file=sys.stderr, flush=True)
        return c

    with ThreadPoolExecutor(max_workers=max(1, a.jobs)) as pool:
        cases = list(pool.map(one, todo))
    write_results(cases, a.out, meta)
    print(f"wrote {a.out}", file=sys.stderr)
    return 0 if all(c.get("ok") for c in cases) else 1


if __name__ == "__main__":
    sys.exit(main())
