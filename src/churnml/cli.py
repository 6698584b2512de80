"""The ``churnml`` command: a thin Typer layer over the Python API.

Every command that reads data or models takes ``--config``, ``--transactions``,
``--tracking-uri`` and ``--model-name`` (flags override the config). Errors that churnml
raises on purpose are printed as one message and mapped to exit codes: 2 bad input or
config, 3 model problem, 4 environment (a file cannot be read or written, the tracking store is
unreachable, corrupt or unwritable: retry later or fix the machine); 1 with a traceback is a bug.
Heavy imports happen inside the commands so ``--help`` is fast.
"""

from __future__ import annotations

import contextlib
import datetime
import math
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from churnml import __version__

app = typer.Typer(
    name="churnml",
    help="Churn risk, customer value and retention lists from transaction logs.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

ConfigOpt = Annotated[Optional[Path], typer.Option("--config", "-c", help="YAML config (configs/*.yaml).")]
TransactionsOpt = Annotated[
    Optional[str], typer.Option("--transactions", "-t", help="Transaction file; overrides data.transactions.")
]
TrackingUriOpt = Annotated[
    Optional[str], typer.Option("--tracking-uri", help="MLflow tracking URI; overrides mlflow.tracking_uri.")
]
ModelNameOpt = Annotated[
    Optional[str], typer.Option("--model-name", help="Registered model name; overrides mlflow.model_name.")
]
UnusedTransactionsOpt = Annotated[
    Optional[str],
    typer.Option("--transactions", "-t", help="Accepted for uniform job scripts; this command reads no transactions."),
]
CutoffOpt = Annotated[
    Optional[str],
    typer.Option("--cutoff", help="Snapshot date (YYYY-MM-DD, exclusive); default: day after the last transaction."),
]


def _version(value: bool) -> None:
    if value:
        typer.echo(f"churnml {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """churnml: who is about to leave, what they are worth, whom to win back first."""
    import warnings

    _SHOWN.clear()
    warnings.showwarning = _show_warning_once


_SHOWN: set[str] = set()


def _show_warning_once(message, category, filename, lineno, file=None, line=None) -> None:
    """Warnings on the console as one line each, ``warning: ...``, each text once per command
    (a model refitted per cutoff must not repeat the same finding), without source lines."""
    text = str(message).strip()
    if text in _SHOWN:
        return
    _SHOWN.add(text)
    name = getattr(category, "__name__", "Warning")
    prefix = "warning" if name in ("UserWarning", "RuntimeWarning") else f"warning ({name})"
    try:
        (file or sys.stderr).write(f"{prefix}: {text}\n")
    except OSError:  # a closed stderr must not break the job
        pass


def _config(config: Path | None, transactions: str | None, tracking_uri: str | None, model_name: str | None):
    from churnml._atomic import set_file_mode
    from churnml.config import load_config

    cfg = load_config(config).with_overrides(
        transactions=transactions, tracking_uri=tracking_uri, model_name=model_name
    )
    set_file_mode(cfg.output.file_mode)  # new output files: output.file_mode (default 0600)
    return cfg


@contextlib.contextmanager
def _errors():
    """The command boundary: churnml's own errors become one message and their exit code; an
    operating-system error reading inputs or writing outputs (disk full, read-only file system,
    permission denied, a file where a folder should be, a folder where the file should be)
    becomes exit 4 naming the path and the reason. Anything else is a bug: a traceback, exit 1."""
    from churnml.errors import ChurnmlError, EnvironmentFault

    try:
        yield
    except ChurnmlError as err:
        _fail(err)
    except OSError as err:
        _fail(EnvironmentFault(_os_message(err)))


# errno -> what a person reads; the symbol follows so a log search finds it
_OS_REASONS = {
    "ENOSPC": "disk full",
    "EDQUOT": "disk quota exceeded",
    "EROFS": "read-only file system",
    "EACCES": "permission denied",
    "EPERM": "operation not permitted",
    "ENOTDIR": "a part of the path is a file, not a folder",
    "EISDIR": "a folder is in the way (the output path is a directory)",
    "ENOENT": "no such file or folder",
    "EIO": "input/output error",
    "ENAMETOOLONG": "file name too long",
    "EMFILE": "too many open files",
}


def _os_message(err: OSError) -> str:
    """One line: the path (the target, not an atomic writer's temporary file) and the OS reason."""
    import errno as _errno
    import re

    symbol = _errno.errorcode.get(err.errno or -1)
    reason = _OS_REASONS.get(symbol or "") or (err.strerror or str(err) or type(err).__name__)
    if symbol == "EEXIST" and err.filename is not None and Path(str(err.filename)).is_file():
        reason = "a file is in the way, not a folder"  # mkdir of an output's folder
    if symbol:
        reason = f"{reason} ({symbol})"
    path = err.filename2 if err.filename2 is not None else err.filename
    if path is not None:
        p = Path(str(path))
        m = re.fullmatch(r"\.(.+)\.\d+@[A-Za-z0-9_-]+\.[^.]+\.tmp", p.name)  # churnml._atomic's temporary file
        if m:
            p = p.with_name(m.group(1))
        return f"{p}: {reason}"
    detail = str(err).strip().replace("\n", " ")
    return f"{reason}: {detail}" if detail and detail != reason else reason


def _fail(err: Exception) -> None:
    from churnml.errors import ChurnmlError


    code = err.exit_code if isinstance(err, ChurnmlError) else 1
    typer.echo(f"error: {err}", err=True)
    raise typer.Exit(code)


@app.command()
def validate(
    config: ConfigOpt = None,
    transactions: TransactionsOpt = None,
    tracking_uri: TrackingUriOpt = None,
    model_name: ModelNameOpt = None,
) -> None:
    """Load and validate the data; print the load report (rows read, dropped, orders, customers)."""
    from churnml.io import load_dataset

    with _errors():
        cfg = _config(config, transactions, tracking_uri, model_name)
        ds = load_dataset(cfg)
    typer.echo(str(ds.report))


@app.command()
def features(
    out: Annotated[Path, typer.Option("--out", "-o", help="Output file (.parquet or .csv).")],
    config: ConfigOpt = None,
    transactions: TransactionsOpt = None,
    cutoff: CutoffOpt = None,
    tracking_uri: TrackingUriOpt = None,
    model_name: ModelNameOpt = None,
) -> None:
    """Write point-in-time snapshot features with RFM scores and segments, one row per customer."""
    from churnml._atomic import write_table
    from churnml.io import load_dataset
    from churnml.jobs import customer_snapshot

    with _errors():
        cfg = _config(config, transactions, tracking_uri, model_name)
        cutoff = _date_option("--cutoff", cutoff, cfg)
        snap = customer_snapshot(load_dataset(cfg), cfg, cutoff)
        write_table(snap, out)
    typer.echo(f"wrote {len(snap):,} customers as of {snap['as_of'].iloc[0]} to {out}")


def _day_after(date: str | None, default) -> "pd.Timestamp":
    """The moment after an inclusive last date (``--observation-end``), or after ``default``."""
    import pandas as pd

    from churnml.errors import DataError

    try:
        return (pd.Timestamp(date) if date else pd.Timestamp(default)).normalize() + pd.Timedelta(days=1)
    except (TypeError, ValueError):
        raise DataError(f"--observation-end {date!r} is not a date (use YYYY-MM-DD)") from None


def _date_option(flag: str, value: str | None, cfg=None) -> str | None:
    """``value`` if it is a date (YYYY-MM-DD) inside the plausible window of ``cfg.data``
    (``data.min_date`` .. ``data.max_date``, :func:`churnml.io.date_setting`, the window the log is
    checked against); DataError naming ``flag`` otherwise. Checked before any work or output."""
    from churnml.io import date_setting

    if value is None:
        return None
    date_setting(value, flag, cfg.data if cfg is not None else None)
    return value


@app.command()
def rfm(
    out: Annotated[Path, typer.Option("--out", "-o", help="Output file (.parquet or .csv).")],
    config: ConfigOpt = None,
    transactions: TransactionsOpt = None,
    observation_end: Annotated[
        Optional[str], typer.Option("--observation-end", help="Last date of the study (inclusive); default: last transaction.")
    ] = None,
    freq: Annotated[Optional[str], typer.Option("--freq", help="Period: D, W or h; overrides features.freq.")] = None,
    freq_multiplier: Annotated[
        Optional[float], typer.Option("--freq-multiplier", help="Divide durations by this (7 with D = weeks).")
    ] = None,
    tracking_uri: TrackingUriOpt = None,
    model_name: ModelNameOpt = None,
) -> None:
    """Write the lifetimes-style RFM summary (frequency, recency, T, monetary_value)."""
    from churnml._atomic import write_table
    from churnml.features import rfm_summary
    from churnml.io import load_dataset, purchases

    with _errors():
        cfg = _config(config, transactions, tracking_uri, model_name)
        observation_end = _date_option("--observation-end", observation_end, cfg)
        ds = load_dataset(cfg)
        end = _day_after(observation_end, ds.transactions["timestamp"].max())
        first = ds.transactions["timestamp"].min()
        if observation_end and end <= first:
            from churnml.errors import DataError

            raise DataError(f"--observation-end {observation_end} is before the first transaction ({first.date()} in "
                            f"{ds.report.source}): nothing to summarise; use a date on or after it")
        summary = rfm_summary(
            purchases(ds.transactions, at=end),
            amount="amount",
            observation_end=observation_end,
            freq=freq or cfg.features.freq,
            freq_multiplier=freq_multiplier or cfg.features.freq_multiplier,
        )
        write_table(summary, out)
    typer.echo(f"wrote {len(summary):,} customers to {out}")


@app.command()
def run(
    config: ConfigOpt = None,
    transactions: TransactionsOpt = None,
    cutoff: CutoffOpt = None,
    out_dir: Annotated[Optional[Path], typer.Option("--out-dir", help="Output folder; overrides output.dir.")] = None,
    track: Annotated[bool, typer.Option("--track/--no-track", help="Log and register the model in MLflow.")] = True,
    tracking_uri: TrackingUriOpt = None,
    model_name: ModelNameOpt = None,
) -> None:
    """The main job end to end: validate, backtest, train (CLV, value, churn), log to MLflow, score every customer."""
    from churnml.jobs import run as run_job

    with _errors():
        cfg = _config(config, transactions, tracking_uri, model_name)
        cutoff = _date_option("--cutoff", cutoff, cfg)
        if track:
            from churnml.tracking import check_store, tracking_uri_for

            check_store(tracking_uri_for(cfg))  # before minutes of training: an unusable store is exit 4 now
        res = run_job(cfg, cutoff=cutoff, out_dir=out_dir, track=track)
    fmt = lambda v: f"{v:,.4f}"  # noqa: E731
    typer.echo(f"customers in scope as of {res.as_of}: {res.customers:,}")
    typer.echo("\nRFM segments:\n" + res.segments.to_string(float_format=lambda v: f"{v:,.2f}"))
    c = res.clv_summary
    typer.echo(
        f"\nCLV shipped ({c['purchase_model']}, fit rung {c['fit_rung']}"
        + ((f", DEGENERATE: {c['note']}" if c.get("note") else ", DEGENERATE: parameters at a boundary") if c.get("degenerate") else "")
        + "): " + ", ".join(f"{k}={v:.4g}" for k, v in c["params"].items())
    )
    hold = c.get("holdout")
    if hold and hold.get("actual"):
        verdict = "" if 0.5 <= (hold["ratio"] or 0) <= 2 else "  <- OFF BY MORE THAN 2x: do not trust BTYD totals on this log"
        typer.echo(
            f"  holdout check (same model refitted before the holdout): repeat purchases actual {hold['actual']:,.0f}, "
            f"expected {hold['expected']:,.1f}{verdict}"
        )
    else:
        typer.echo("  holdout check: the log is too short for one")
    if res.value_metrics is not None:
        shown = [c for c in ("spearman", "top_decile_capture", "total_ratio", "score", "score_diff", "score_diff_ci_low",
                             "score_diff_ci_high", "selection_score") if c in res.value_metrics.columns]
        typer.echo(
            "\nvalue backtest, judging half (naive = spend rate x horizon; past_spend / recent_spend = total / recent-window "
            "net spend, one population factor; score_diff = shipped minus row, paired 95% interval; selection_score = "
            "the other half, which chose):\n" + res.value_metrics[shown].to_string(float_format=fmt)
        )
    typer.echo(f"value model shipped: {res.value_model}")
    attrs = _attributes_line(res.churn_training)
    if attrs:
        typer.echo(attrs)
    if res.churn_backtest is not None:
        cols = ["roc_auc", "pr_auc", "brier", "log_loss", "lift_top10", "ece", "expected_profit_topk"]
        cols = [c for c in cols if c in res.churn_backtest.columns]
        typer.echo("\nchurn backtest (mean over cutoffs):\n" + res.churn_backtest[cols].to_string(float_format=fmt))
    shipped = (res.churn_training or {}).get("shipped_scorer") or {}
    if shipped.get("sentence"):
        typer.echo(f"churn scorer shipped: {shipped.get('scorer')}. {shipped['sentence']}")
    else:
        typer.echo("\nchurn backtest: none possible on this log; the model was trained without one")
    if res.audit is not None:
        typer.echo("\n" + "\n".join(_audit_lines(res.audit)))
    if res.model_uri:
        typer.echo(f"\nMLflow: {res.tracking_uri}\nregistered model: {res.model_uri}")
    typer.echo(f"\nwrote {len(res.files)} files to {res.out_dir}")
    for name, what in (("at_risk.xlsx", "at-risk list (high risk, by value at risk)"), ("report.html", "report")):
        path = Path(res.out_dir) / name
        if path.exists():
            typer.echo(f"  {what}: {path}")


@app.command()
def backtest(
    config: ConfigOpt = None,
    transactions: TransactionsOpt = None,
    out_dir: Annotated[Optional[Path], typer.Option("--out-dir", help="Output folder; overrides output.dir.")] = None,
    tracking_uri: TrackingUriOpt = None,
    model_name: ModelNameOpt = None,
) -> None:
    """Backtest the churn model and its baselines on the last K complete cutoffs; print and write CSV/JSON."""
    from churnml.jobs import backtest as run_backtest

    with _errors():
        cfg = _config(config, transactions, tracking_uri, model_name)
        bt, files = run_backtest(cfg, out_dir=out_dir)
    typer.echo(_backtest_table(bt))
    typer.echo(f"\nwrote {', '.join(map(str, files))}")


def _attributes_line(training: dict) -> str:
    """Which text customer attributes the churn model uses as categories and which it left out."""
    used, dropped = training.get("categorical_features") or [], training.get("dropped_features") or {}
    parts = []
    if used:
        parts.append("customer attributes used as categories: " + ", ".join(used))
    if dropped:
        parts.append("left out: " + "; ".join(f"{k} ({v})" for k, v in dropped.items()))
    return "\n".join(parts)


def _backtest_table(bt) -> str:
    if bt is None:
        return "churn backtest: none possible on this log (see the warning above and the run's backtest_note)"
    cols = ["roc_auc", "pr_auc", "brier", "log_loss", "lift_top10", "capture_top10", "ece", "expected_profit_topk"]
    cols = [c for c in cols if c in bt.summary.columns]
    head = "churn backtest, mean over cutoffs " + ", ".join(bt.training) + ":\n"
    out = head + bt.summary[cols].to_string(float_format=lambda v: f"{v:,.4f}")
    ci = [c for c in ["roc_auc_ci_low", "roc_auc_ci_high", "recent_roc_auc", "recent_roc_auc_ci_low", "recent_roc_auc_ci_high",
                      "recent_n", "recent_ece"] if c in bt.summary.columns]
    if ci:
        days = (getattr(bt, "bootstrap", None) or {}).get("recent_days")
        out += ("\n\n95% bootstrap intervals; recent_ = customers who bought within "
                f"{days or '2 x horizon'} days before the cutoff:\n" + bt.summary[ci].to_string(float_format=lambda v: f"{v:,.4f}"))
    diffs = [c for c in bt.summary.columns if c.startswith("roc_auc_diff_vs_") and not c.endswith(("_low", "_high"))]
    if diffs and "model" in bt.summary.index:
        m = bt.summary.loc["model"]
        lines = [f"  model - {c[len('roc_auc_diff_vs_'):]}: {m[c]:+.4f} [{m.get(c + '_ci_low', float('nan')):+.4f}, "
                 f"{m.get(c + '_ci_high', float('nan')):+.4f}]" for c in diffs]
        out += "\n\nROC AUC difference, model minus baseline [95% paired bootstrap interval]:\n" + "\n".join(lines)
    return out


@app.command()
def train(
    config: ConfigOpt = None,
    transactions: TransactionsOpt = None,
    as_of: Annotated[Optional[str], typer.Option("--as-of", help="Train for scoring from this date (default: day after the last transaction).")] = None,
    tracking_uri: TrackingUriOpt = None,
    model_name: ModelNameOpt = None,
) -> None:
    """Backtest, train and log to MLflow; register the model with alias 'challenger' and print its URI."""
    from churnml.jobs import train as run_train

    with _errors():
        cfg = _config(config, transactions, tracking_uri, model_name)
        as_of = _date_option("--as-of", as_of, cfg)
        from churnml.tracking import check_store, tracking_uri_for

        check_store(tracking_uri_for(cfg))  # before minutes of training: an unusable store is exit 4 now
        result, bt = run_train(cfg, as_of=as_of)
    typer.echo(_backtest_table(bt))
    attrs = _attributes_line(result.training or {})
    if attrs:
        typer.echo("\n" + attrs)
    typer.echo(f"\ntracking URI: {result.tracking_uri}\nrun: {result.run_id}")
    typer.echo(f"registered {cfg.mlflow.model_name} version {result.version} as {result.registered_uri}")
    typer.echo(result.registered_uri)


@app.command()
def promote(
    config: ConfigOpt = None,
    transactions: UnusedTransactionsOpt = None,
    force: Annotated[bool, typer.Option("--force", help="Promote even if the challenger does not beat the champion.")] = False,
    tracking_uri: TrackingUriOpt = None,
    model_name: ModelNameOpt = None,
) -> None:
    """Move alias 'champion' to the challenger when its backtest ROC AUC beats the champion's (or --force)."""
    from churnml.tracking import promote as run_promote

    with _errors():
        cfg = _config(config, None, tracking_uri, model_name)
        ok, reason = run_promote(cfg, force=force)
    typer.echo(("promoted: " if ok else "not promoted: ") + reason)


TrustOpt = Annotated[bool, typer.Option("--trust-unverified", help="Load a .joblib bundle that has no .sha256 digest beside it. "
                                         "Loading a model runs code from it: only for bundles you know the origin of.")]


@app.command()
def export(
    model: Annotated[str, typer.Option("--model", "-m", help="Model URI (models:/NAME@champion, runs:/..., a .joblib).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output .joblib file (its SHA-256 goes to <out>.sha256).")] = Path("models/churnml.joblib"),
    config: ConfigOpt = None,
    transactions: UnusedTransactionsOpt = None,
    tracking_uri: TrackingUriOpt = None,
    model_name: ModelNameOpt = None,
    trust_unverified: TrustOpt = False,
) -> None:
    """Write a self-contained joblib bundle of a model and its SHA-256 digest (<out>.sha256), for places without a tracking server."""
    from churnml.tracking import export_model, tracking_uri_for

    with _errors():
        cfg = _config(config, None, tracking_uri, model_name)
        path = export_model(model, out, tracking_uri=tracking_uri_for(cfg), trust_unverified=trust_unverified)
    typer.echo(f"wrote {path}")


ScoresOpt = Annotated[Path, typer.Option("--scores", "-s", help="Scores file written by `churnml score`.")]


@app.command()
def score(
    model: Annotated[str, typer.Option("--model", "-m", help="models:/NAME@champion, a model URI or id, or an exported .joblib.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output file: .parquet or .csv.")],
    config: ConfigOpt = None,
    transactions: TransactionsOpt = None,
    as_of: Annotated[Optional[str], typer.Option("--as-of", help="Score as of this date (default: the end of the last date in the data).")] = None,
    engine: Annotated[str, typer.Option("--engine", help="pandas (default) or spark (Parquet in, Parquet partitions out; pip install churnml[spark]).")] = "pandas",
    master: Annotated[Optional[str], typer.Option("--master", help="Spark master for --engine spark (default: spark-submit's, else local[*]).")] = None,
    tracking_uri: TrackingUriOpt = None,
    model_name: ModelNameOpt = None,
    trust_unverified: TrustOpt = False,
) -> None:
    """Batch-score every customer in scope: churn risk, value, segment, reasons, action. Exit 2 bad input, 3 model problem, 4 environment."""
    if engine == "spark":
        _score_spark(model, out, config, transactions, as_of, master, tracking_uri, model_name, trust_unverified)
        return
    if engine != "pandas":
        typer.echo(f"error: --engine must be pandas or spark, not {engine!r}", err=True)
        raise typer.Exit(2)
    import logging
    import sys as _sys

    from churnml.io import load_dataset
    from churnml.scoring import drift_warning, score_dataset, write_scores
    from churnml.tracking import load_pipeline, tracking_uri_for

    logging.basicConfig(level=logging.INFO, stream=_sys.stderr, format="%(asctime)s level=%(levelname)s logger=%(name)s %(message)s")
    log = logging.getLogger("churnml.score")
    with _errors():
        cfg = _config(config, transactions, tracking_uri, model_name)
        as_of = _date_option("--as-of", as_of, cfg)
        if not (out.suffix.lower() in {".parquet", ".csv"} or out.name.lower().endswith(".csv.gz")):
            from churnml.errors import DataError

            raise DataError(f"--out {out}: use a .parquet or .csv file name")
        pipe = load_pipeline(model, tracking_uri=tracking_uri_for(cfg), trust_unverified=trust_unverified)
        log.info("event=model.loaded model=%s version=%s trained_as_of=%s", model, pipe.model_version, pipe.as_of.date())
        dataset = load_dataset(cfg)
        log.info("event=data.loaded source=%s orders=%d customers=%d", dataset.report.source, dataset.report.orders, dataset.report.customers)
        if _sys.stderr.isatty():
            with typer.progressbar(length=1, label="scoring", file=_sys.stderr) as bar:
                state = {"done": 0}

                def progress(done: int, total: int) -> None:
                    bar.length = total
                    bar.update(done - state["done"])
                    state["done"] = done

                result = score_dataset(pipe, dataset, cfg, as_of=as_of, progress=progress)
        else:
            result = score_dataset(pipe, dataset, cfg, as_of=as_of)
        paths = write_scores(result, out)
    warning = drift_warning(result.meta)
    if warning:  # once, as a structured log line a scheduler's log search finds
        log.warning("event=drift %s", warning)
    log.info("event=score.done rows=%d out=%s timings=%s", len(result.scores), paths[0], json_dumps(result.meta["timings"]))
    typer.echo(f"scored {len(result.scores):,} customers as of {result.meta['as_of']} with {pipe.model_version}: {paths[0]} (+ {paths[1].name})")
    if result.meta.get("audit"):
        typer.echo("\n".join(_audit_lines(result.meta["audit"])))


def _score_spark(model, out, config, transactions, as_of, master, tracking_uri, model_name, trust_unverified=False) -> None:
    from churnml.io import read_customers
    from churnml.tracking import load_pipeline, tracking_uri_for

    with _errors():
        cfg = _config(config, transactions, tracking_uri, model_name)
        if not cfg.data.transactions:
            from churnml.errors import DataError

            raise DataError("no transaction file: set data.transactions or pass --transactions (Parquet)")
        as_of = _date_option("--as-of", as_of, cfg)
        src = str(cfg.data.transactions)
        if not ("://" in src or Path(src).is_dir() or src.lower().endswith((".parquet", ".pq"))):
            from churnml.errors import DataError

            raise DataError(f"--engine spark reads Parquet (a .parquet file or a folder of them), not {src} "
                            "(data.transactions / --transactions): convert it, or use --engine pandas")
        try:
            from churnml.spark import local_session, score_spark
        except ImportError:  # pragma: no cover
            from churnml.errors import ConfigError

            raise ConfigError("--engine spark needs pyspark: pip install 'churnml[spark]'") from None
        pipe = load_pipeline(model, tracking_uri=tracking_uri_for(cfg), trust_unverified=trust_unverified)
        customers = None
        if cfg.data.customers:
            customers = read_customers(cfg.data.customers, id_column=cfg.data.customers_id_column or cfg.data.columns.customer_id)
        n = score_spark(pipe, cfg, cfg.data.transactions, out, as_of=as_of, spark=local_session(master), customers=customers)
    typer.echo(f"scored {n:,} customers on Spark with {pipe.model_version}: {out}/ (Parquet partitions)")


def json_dumps(obj) -> str:
    import json

    return json.dumps(obj, separators=(",", ":"))


@app.command()
def kpis(
    scores: ScoresOpt,
    by: Annotated[str, typer.Option("--by", help="Group by this column (segment, rfm_segment, risk_tier, value_tier).")] = "segment",
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Also write the table (.csv or .parquet).")] = None,
    config: ConfigOpt = None,
    transactions: UnusedTransactionsOpt = None,
    tracking_uri: TrackingUriOpt = None,
    model_name: ModelNameOpt = None,
) -> None:
    """KPIs overall and per segment: churn and retention rate, purchase frequency, order value, CLV, value at risk."""
    from churnml._atomic import write_table
    from churnml.scoring import read_scores
    from churnml.segments import kpis as compute_kpis

    with _errors():
        sc = read_scores(scores)
        if by and by not in sc.columns:
            from churnml.errors import DataError

            raise DataError(f"--by {by!r}: {scores} has no such column; group by one of "
                            f"{[c for c in ('segment', 'rfm_segment', 'risk_tier', 'value_tier') if c in sc.columns]}")
        table = compute_kpis(sc, by=by)
        if out:
            write_table(table, out)
    typer.echo(table.to_string(formatters={"customers": "{:,.0f}".format}, float_format=lambda v: f"{v:,.3f}"))


@app.command("at-risk")
def at_risk(
    scores: ScoresOpt,
    out: Annotated[Path, typer.Option("--out", "-o", help="list.csv or list.xlsx")],
    segment: Annotated[Optional[list[str]], typer.Option("--segment", help="Keep these segments (repeatable; risk x value or RFM names).")] = None,
    min_value: Annotated[Optional[float], typer.Option("--min-value", help="Keep customers whose value if retained is >= this (currency).")] = None,
    top: Annotated[Optional[int], typer.Option("--top", help="Keep the first N by value at risk.")] = None,
    config: ConfigOpt = None,
    transactions: UnusedTransactionsOpt = None,
    tracking_uri: TrackingUriOpt = None,
    model_name: ModelNameOpt = None,
) -> None:
    """At-risk list for marketing, sorted by value at risk, plain headers, customer attributes joined."""
    from churnml.campaigns import at_risk_list
    from churnml.excel import action_label, action_labels, write_list
    from churnml.errors import DataError
    from churnml.io import read_customers
    from churnml.scoring import read_scores

    with _errors():
        if top is not None and top < 1:
            raise DataError(f"--top {top}: must be a whole number of customers, at least 1")
        if min_value is not None and not math.isfinite(min_value):
            raise DataError(f"--min-value {min_value}: must be a finite amount (currency)")
        cfg = _config(config, None, tracking_uri, model_name)
        customers = None
        if cfg.data.customers:
            customers = read_customers(cfg.data.customers, id_column=cfg.data.customers_id_column or cfg.data.columns.customer_id)
        known = [*cfg.segments.matrix.values(), *(rule.name for rule in cfg.rfm.segments)]
        table = at_risk_list(
            read_scores(scores), segments=segment, min_value=min_value, top=top, customers=customers, known_segments=known
        )
        if out.suffix.lower() not in {".csv", ".xlsx"}:
            raise DataError(f"--out {out}: use a .csv or .xlsx file name")
        notes: list[str] = []
        if "Recommended action" in table.columns:
            from churnml.excel import economics_notes
            from churnml.report import report_context

            labels = action_labels(cfg.campaign)
            table["Recommended action"] = table["Recommended action"].map(lambda a: action_label(a, labels))
            notes = economics_notes(report_context(scores, cfg).get("economics"))
        write_list(table, out, notes=notes)
    typer.echo(f"wrote {len(table):,} customers to {out}")


def _audit_lines(audit: dict) -> list[str]:
    """The audit (:meth:`churnml.audit.AuditResult.to_dict`) in console lines: one with every
    check's status, then each finding."""
    lines = ["decisions audit: " + ", ".join(f"{k} {v}" for k, v in audit["status"].items())]
    lines += [f"  {f['severity'].upper()} [{f['check']}] {f['message']}" for f in audit["findings"]]
    return lines


@app.command()
def audit(
    scores: ScoresOpt,
    report: Annotated[Optional[Path], typer.Option("--report", help="run_report.json of the run (default: beside the scores, "
                                                   "else the scores' .meta.json).")] = None,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Write the findings as JSON here.")] = None,
    config: ConfigOpt = None,
    transactions: UnusedTransactionsOpt = None,
    tracking_uri: TrackingUriOpt = None,
    model_name: ModelNameOpt = None,
) -> None:
    """Check what a scores file tells a marketer: true reasons, P(alive) and CLV that agree with the log, actions that pay, shipped models not worse than baselines. Exit 3 when a check fails."""
    from churnml._atomic import write_json
    from churnml.jobs import audit_scores

    with _errors():
        cfg = _config(config, None, tracking_uri, model_name)
        result = audit_scores(scores, cfg, report)
        if out is not None:
            write_json(out, result.to_dict())
    typer.echo("\n".join(_audit_lines(result.to_dict())))
    if not result.ok:
        raise typer.Exit(3)


def _scores_margin(scores: Path) -> float | None:
    """The margin inside a scores file's value_if_retained, from its sidecar ``<file>.meta.json``
    (``economics.margin``, written by ``churnml run``/``score``); None when it does not say."""
    import json

    meta = scores.with_name(scores.name + ".meta.json")
    try:
        m = json.loads(meta.read_text()).get("economics", {}).get("margin") if meta.is_file() else None
    except (OSError, ValueError, AttributeError):
        return None
    return float(m) if isinstance(m, (int, float)) and m > 0 else None


@app.command()
def campaign(
    scores: ScoresOpt,
    budget: Annotated[float, typer.Option("--budget", "-b", help="Campaign budget (currency).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="plan.csv (or .parquet); a summary JSON is written beside it.")],
    effects: Annotated[
        Optional[Path],
        typer.Option("--effects", help="readout.csv of an earlier campaign: measured effects replace the catalog's churn_reduction "
                     "(lower 95% bound, clipped to [0, 1])."),
    ] = None,
    uplift_model: Annotated[
        Optional[str],
        typer.Option("--uplift-model", help="Uplift model (.joblib from `churnml uplift`, or an MLflow sklearn model URI): rank "
                     "by expected incremental value (uplift x value if retained) minus cost instead of risk x value."),
    ] = None,
    config: ConfigOpt = None,
    transactions: UnusedTransactionsOpt = None,
    tracking_uri: TrackingUriOpt = None,
    model_name: ModelNameOpt = None,
) -> None:
    """Plan a retention campaign within a budget: one action per customer, random control group held out."""
    import pandas as pd

    from churnml._atomic import write_json, write_table
    from churnml.campaigns import apply_effects, plan_campaign
    from churnml.campaigns import power as plan_power
    from churnml.errors import DataError
    from churnml.scoring import read_scores

    effect_lines: list[str] = []
    with _errors():
        cfg = _config(config, None, tracking_uri, model_name)
        if not math.isfinite(budget) or budget < 0:
            raise DataError(f"--budget {budget}: must be a finite amount (currency), not negative")
        camp = cfg.campaign
        if effects is not None:
            if not effects.is_file():
                raise DataError(f"--effects {effects}: file not found")
            try:
                measured = pd.read_csv(effects)
            except (ValueError, OSError) as err:
                raise DataError(f"--effects {effects}: cannot read it as CSV ({err})") from None
            try:
                stamp = datetime.date.fromtimestamp(effects.stat().st_mtime).isoformat()
                camp, effect_lines = apply_effects(camp, measured, source=f"{effects.name} ({stamp})")
            except DataError as err:
                raise DataError(f"{effects}: {err}") from None
        sc = read_scores(scores)
        uplift = None
        if uplift_model:
            from churnml.uplift import load_uplift_model

            um = load_uplift_model(uplift_model)
            uplift = um.predict(_uplift_features(sc, um, cfg, scores))
            effect_lines.append(f"targeting by {type(um).__name__} uplift from {uplift_model}: mean estimated uplift "
                                f"{uplift.mean() * 100:+.1f} pp, {(uplift < 0).mean() * 100:.0f}% of customers estimated to react badly")
        plan = plan_campaign(sc, budget, camp, playbook=cfg.segments.playbook, uplift=uplift, margin=cfg.clv.margin,
                             value_margin=_scores_margin(scores))
        pw = plan_power(plan.plan, camp)
        start = str(pd.Timestamp(sc["as_of"].iloc[0]).date()) if "as_of" in sc.columns and len(sc) else None
        write_table(plan.plan, out, index=False)
        summary_path = out.with_name(out.name + ".summary.json")
        write_json(summary_path, {"method": plan.method, **plan.totals(), "warnings": plan.warnings,
                                  "assumptions": plan.assumptions, "per_action": plan.summary.to_dict("index"),
                                  "notes": plan.notes, "campaign_start": start, "power": pw,
                                  "effects": {"file": str(effects), "changes": effect_lines} if effects else None})
    t = plan.totals()
    for line in effect_lines:
        typer.echo(f"effect: {line}")
    for note in plan.notes:
        typer.echo(f"note: {note}")
    for w in plan.warnings:
        typer.echo(f"WARNING: {w}")
    typer.echo("effects: " + "; ".join(f"{a['name']} {a['churn_reduction']:.3f} ({a['effect_source']})"
                                       for a in plan.assumptions["actions"]))
    typer.echo(plan.summary.to_string(float_format=lambda v: f"{v:,.3f}" if abs(v) < 1 else f"{v:,.2f}"))
    n_measured = sum(a["effect_source"].startswith("measured") for a in plan.assumptions["actions"])
    effects_basis = ("assumed (unmeasured) effects" if not n_measured else
                     f"{n_measured} measured and {len(plan.assumptions['actions']) - n_measured} assumed effects")
    basis = (f"on profit at margin {t['margin']:g}" if t["roi_basis"] == "profit"
             else "on REVENUE (no margin configured: clv.margin is 1.0)")
    typer.echo(
        f"\nbudget {t['budget']:,.2f}: cost {t['cost']:,.2f}, expected saved value {t['expected_saved_value']:,.2f}, "
        f"ROI {t['roi']:.2f} {basis}, on {effects_basis}; "
        f"treatment {t['treatment_customers']:,.0f}, control {t['control_customers']:,.0f} "
        f"(customers the plan would also have selected, held out by hash(seed, id) < {cfg.campaign.control_share:g})"
    )
    typer.echo(f"method: {plan.method}; objective within {t['gap_to_bound']:,.2f} of the LP upper bound {t['lp_bound']:,.2f}")
    if pw["min_detectable_difference"] is None:
        typer.echo(f"power: {pw['n_treatment']:,} treated and {pw['n_control']:,} control: no read-out possible")
    else:
        typer.echo(
            f"power: with {pw['n_treatment']:,} treated and {pw['n_control']:,} control at baseline retention "
            f"{pw['baseline_retention'] * 100:.1f}%, the smallest retention difference the read-out can detect "
            f"(alpha 0.05, power 0.8) is {pw['min_detectable_difference'] * 100:.1f} pp; the plan expects "
            f"{pw['expected_effect'] * 100:.1f} pp"
        )
    if pw["warning"]:
        typer.echo(f"warning: {pw['warning']}", err=True)
    typer.echo(f"wrote {out} and {summary_path.name}")


@app.command()
def readout(
    out: Annotated[Path, typer.Option("--out", "-o", help="readout.csv")],
    plan: Annotated[Optional[Path], typer.Option("--plan", help="plan.csv written by `churnml campaign`.")] = None,
    start: Annotated[Optional[str], typer.Option("--start", help="Campaign start (YYYY-MM-DD); default: the plan's (scores' as_of).")] = None,
    days: Annotated[Optional[float], typer.Option("--days", help="Read-out window in days; default: churn.horizon_days.")] = None,
    outcomes: Annotated[Optional[Path], typer.Option("--outcomes", help="An experiment table instead: one row per customer (.csv/.parquet).")] = None,
    group_column: Annotated[Optional[str], typer.Option("--group-column", help="--outcomes: the column naming the arm.")] = None,
    treatment: Annotated[Optional[str], typer.Option("--treatment", help="--outcomes: the treatment arm's label.")] = None,
    control: Annotated[Optional[str], typer.Option("--control", help="--outcomes: the control arm's label.")] = None,
    outcome: Annotated[Optional[str], typer.Option("--outcome", help="--outcomes: binary outcome column (1 = retained).")] = None,
    value: Annotated[Optional[str], typer.Option("--value", help="--outcomes: value per customer (currency), optional.")] = None,
    segment_column: Annotated[Optional[str], typer.Option("--segment-column", help="--outcomes: a column to break down by, optional.")] = None,
    config: ConfigOpt = None,
    transactions: TransactionsOpt = None,
    tracking_uri: TrackingUriOpt = None,
    model_name: ModelNameOpt = None,
) -> None:
    """Did the campaign work? Retention and spend of treatment vs control, overall, per action and segment, with 95% intervals."""
    import pandas as pd

    from churnml import readout as ro
    from churnml.errors import DataError

    with _errors():
        cfg = _config(config, transactions, tracking_uri, model_name)
        if (plan is None) == (outcomes is None):
            raise DataError("give either --plan (with --config) or --outcomes (with --group-column, --treatment, --control, --outcome)")
        if out.suffix.lower() != ".csv":
            raise DataError(f"--out {out}: use a .csv file name")
        if plan is not None:
            _, o, _, when, window = _past_plan(plan, start, days, cfg)
            head = f"read-out of {plan}: purchases from {pd.Timestamp(when).date()} for {window:g} days"
        else:
            _require("--outcomes", {"--group-column": group_column, "--treatment": treatment, "--control": control,
                                    "--outcome": outcome})
            df = _read_frame(outcomes, "--outcomes")
            o = ro.outcomes_table(df, group_column=group_column, treatment=treatment, control=control, outcome=outcome,
                                  value=value, segment=segment_column, source=str(outcomes))
            head = f"read-out of {outcomes}: {outcome} of {treatment!r} vs {control!r}"
        table = ro.readout(o, seed=cfg.campaign.seed)
        ro.write_readout(table, out)
    typer.echo(head + " (95% intervals: Newcombe for retention, bootstrap for value)")
    typer.echo(ro.print_table(table, cfg.report.currency or ""))
    typer.echo(f"wrote {out}")


def _read_frame(path: Path, flag: str, **csv_kw):
    """A table given on the command line (``flag``): Parquet by extension, else CSV."""
    import pandas as pd

    from churnml.errors import DataError

    if not path.is_file():
        raise DataError(f"{flag} {path}: file not found")
    return pd.read_parquet(path) if path.suffix.lower() == ".parquet" else pd.read_csv(path, **csv_kw)


def _require(flag: str, options: dict) -> None:
    """Refuse ``flag`` when one of the options it needs is not given."""
    from churnml.errors import DataError

    missing = [k for k, v in options.items() if not v]
    if missing:
        raise DataError(f"{flag} needs {', '.join(missing)}")


def _past_plan(plan: Path, start, days, cfg):
    """(plan table, per-customer outcomes, dataset, campaign start, window in days) of a past
    campaign's plan: outcomes from the config's transactions in [start, start + days), start
    defaulting to the one the plan recorded and days to ``churn.horizon_days``."""
    from churnml import readout as ro
    from churnml.errors import DataError
    from churnml.io import load_dataset

    p = _read_frame(plan, "--plan", dtype={"customer_id": str})
    when = start or ro.plan_start(plan)
    if when is None:
        raise DataError(f"--start is required: {plan} records no campaign start (no {plan.name}.summary.json with campaign_start)")
    ds = load_dataset(cfg)
    window = days if days is not None else float(cfg.churn.horizon_days)
    return p, ro.plan_outcomes(p, ds.transactions, when, window, source=str(plan)), ds, when, window


def _snapshot_at(ds, at, cfg):
    """Point-in-time snapshot features of the dataset's customers at ``at`` (data before it only)."""
    from churnml.features import snapshot_features

    return snapshot_features(ds.transactions, at, events=ds.events, customers=ds.customers, config=cfg.features)


def _uplift_features(scores, model, cfg, scores_path):
    """The uplift model's features for the scored customers: the scores' own columns, and the
    point-in-time snapshot features at the scores' as_of (from the config's data) for any it lacks."""
    from churnml.errors import ModelError

    missing = [c for c in model.feature_names_ if c not in scores.columns]
    if not missing:
        return scores
    if not cfg.data.transactions:
        raise ModelError(f"the uplift model needs column(s) {missing} that {scores_path} lacks; score with `churnml run` "
                         "(customers.parquet keeps every feature) or give --config with data.transactions to compute them")
    import pandas as pd

    from churnml.io import load_dataset

    feats = _snapshot_at(load_dataset(cfg), pd.Timestamp(scores["as_of"].iloc[0]), cfg)
    joined = scores.join(feats[[c for c in missing if c in feats.columns]], on="customer_id")
    still = [c for c in model.feature_names_ if c not in joined.columns]
    if still:
        raise ModelError(f"the uplift model needs column(s) {still}, neither in {scores_path} nor among the snapshot features")
    return joined


@app.command()
def uplift(
    out: Annotated[Path, typer.Option("--out", "-o", help="uplift.joblib (+ uplift.joblib.meta.json with the held-out metrics)")],
    plan: Annotated[Optional[Path], typer.Option("--plan", help="plan.csv of a past campaign (with --config): its customers, "
                                                  "their arm, outcomes from the transactions after --start.")] = None,
    experiment: Annotated[Optional[Path], typer.Option("--experiment", help="Or an experiment table: one row per customer (.csv/.parquet).")] = None,
    group_column: Annotated[Optional[str], typer.Option("--group-column", help="--experiment: the column naming the arm.")] = None,
    treatment: Annotated[Optional[str], typer.Option("--treatment", help="--experiment: the treatment arm's label.")] = None,
    control: Annotated[Optional[str], typer.Option("--control", help="--experiment: the control arm's label.")] = None,
    outcome: Annotated[Optional[str], typer.Option("--outcome", help="--experiment: binary outcome column (1 = retained).")] = None,
    exclude: Annotated[Optional[list[str]], typer.Option("--exclude", help="--experiment: columns measured after the start (repeatable).")] = None,
    start: Annotated[Optional[str], typer.Option("--start", help="Campaign start (YYYY-MM-DD); default: the plan's.")] = None,
    days: Annotated[Optional[float], typer.Option("--days", help="Outcome window in days; default: churn.horizon_days.")] = None,
    learner: Annotated[str, typer.Option("--learner", help="x (X-learner, default), t (T-learner) or ct (class transformation).")] = "x",
    config: ConfigOpt = None,
    transactions: TransactionsOpt = None,
    tracking_uri: TrackingUriOpt = None,
    model_name: ModelNameOpt = None,
) -> None:
    """Train an uplift model (who reacts to being contacted) on a past randomised campaign; print its held-out Qini vs random."""
    import joblib
    import pandas as pd

    from churnml._atomic import atomic_path, write_json
    from churnml.errors import DataError
    from churnml.uplift import train_uplift

    with _errors():
        cfg = _config(config, transactions, tracking_uri, model_name)
        if (plan is None) == (experiment is None):
            raise DataError("give either --plan (with --config) or --experiment (with --group-column, --treatment, --control, --outcome)")
        if out.suffix.lower() != ".joblib":
            raise DataError(f"--out {out}: use a .joblib file name")
        drop = list(exclude or [])
        if plan is not None:
            p, o, ds, when, window = _past_plan(plan, start, days, cfg)
            o = o.set_index("customer_id")
            feats = _snapshot_at(ds, pd.Timestamp(when).normalize(), cfg)
            known = p.set_index(p["customer_id"].astype(str))[[c for c in ("segment", "churn_probability", "value_if_retained")
                                                                if c in p.columns]]
            table = feats.join(known, how="inner", rsuffix="_plan").join(
                pd.DataFrame({"treatment": (o["group"] == "treatment").astype(int), "retained": o["retained"].astype(int)}), how="inner")
            table = table.drop(columns=["as_of", "cutoff"], errors="ignore").reset_index().rename(columns={"index": "customer_id"})
            source = f"{plan} (outcomes {pd.Timestamp(when).date()} + {window:g} days)"
        else:
            _require("--experiment", {"--group-column": group_column, "--treatment": treatment, "--control": control,
                                      "--outcome": outcome})
            df = _read_frame(experiment, "--experiment")
            for col in (group_column, outcome, *drop):
                if col not in df.columns:
                    raise DataError(f"{experiment}: no column {col!r}; the file has {list(df.columns)}")
            arms = df[group_column].astype(str)
            bad = ~arms.isin([treatment, control])
            if bad.any():
                raise DataError(f"{experiment}: column {group_column!r} has labels other than {treatment!r} and {control!r}, "
                                f"e.g. rows {list(df.index[bad][:3] + 2)}: {arms[bad].head(3).tolist()}")
            table = df.drop(columns=[group_column]).assign(treatment=(arms == treatment).astype(int))
            table = table.rename(columns={outcome: "retained"}) if outcome != "retained" else table
            source = str(experiment)
        res = train_uplift(table, treatment="treatment", outcome="retained", learner=learner, exclude=drop, seed=cfg.seed)
        meta = {"source": source, "learner": type(res.model).__name__, "features": res.features, "n_train": res.n_train,
                "n_test": res.n_test, "held_out_metrics": res.metrics}
        with atomic_path(out) as tmp:
            joblib.dump(res.model, tmp)
        meta_path = out.with_name(out.name + ".meta.json")
        write_json(meta_path, meta)
    m = res.metrics
    typer.echo(f"{type(res.model).__name__} on {source}: {res.n_train + res.n_test:,} customers, {len(res.features)} features")
    typer.echo(f"held out {res.n_test:,} customers: Qini coefficient {m['qini']:.3f} (random about 0), "
               f"uplift in the top {m['k']:.0%} {m['uplift_at_k'] * 100:+.1f} pp vs {m['ate'] * 100:+.1f} pp for everyone")
    typer.echo(f"wrote {out} (+ {out.name}.meta.json); use it with `churnml campaign --uplift-model {out}`")


@app.command()
def report(
    scores: ScoresOpt,
    out: Annotated[Path, typer.Option("--out", "-o", help="report.html")] = Path("report.html"),
    readout: Annotated[Optional[Path], typer.Option("--readout", help="readout.csv of `churnml readout`: adds a campaign read-out section.")] = None,
    config: ConfigOpt = None,
    transactions: UnusedTransactionsOpt = None,
    tracking_uri: TrackingUriOpt = None,
    model_name: ModelNameOpt = None,
) -> None:
    """Self-contained HTML report: KPI tiles, segment matrix, distributions, filterable at-risk table with CSV download."""
    from churnml.excel import action_labels
    from churnml.report import report_context, write_report
    from churnml.scoring import read_scores

    with _errors():
        cfg = _config(config, None, tracking_uri, model_name)
        table = None
        if readout is not None:
            import pandas as pd

            from churnml.errors import DataError
            from churnml.readout import READOUT_COLUMNS

            if not readout.is_file():
                raise DataError(f"--readout {readout}: file not found")
            table = pd.read_csv(readout)
            missing = [c for c in READOUT_COLUMNS if c not in table.columns]
            if missing:
                raise DataError(f"--readout {readout}: not a churnml read-out, missing column(s) {missing[:5]}")
        path = write_report(read_scores(scores), out, title=cfg.report.title, context=report_context(scores, cfg), readout=table,
                            at_risk_tiers=list(cfg.output.at_risk_tiers), at_risk_top=cfg.output.at_risk_top,
                            action_labels=action_labels(cfg.campaign))
    typer.echo(f"wrote {path}")


def main() -> None:
    """Console-script entry point (warnings: see ``_show_warning_once``)."""
    try:
        app()
    except KeyboardInterrupt:  # pragma: no cover
        sys.exit(130)


if __name__ == "__main__":  # pragma: no cover
    main()
