"""End-to-end jobs composed from the public API; the CLI calls these and prints."""

from __future__ import annotations

import dataclasses
import json
import warnings
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from churnml._atomic import write_json, write_table
from churnml.config import Config
from churnml.errors import DataError
from churnml.features import snapshot_features
from churnml.io import Dataset, load_dataset
from churnml.rfm import rfm_scores

if TYPE_CHECKING:
    from churnml.churn import ChurnBacktest
    from churnml.clv_diagnostics import CLVDiagnostics
    from churnml.tracking import TrainResult

__all__ = ["RunResult", "audit_scores", "backtest", "clv_holdout_diagnostics", "train", "customer_snapshot", "resolve_cutoff", "run", "segment_summary"]


def resolve_cutoff(dataset: Dataset, cutoff=None, *, data=None) -> pd.Timestamp:
    """The snapshot cutoff: the given date, or the day after the last transaction (midnight),
    so that every transaction of the log is before it. A given date outside the plausible window
    of ``data`` (``config.data``: ``min_date`` .. ``max_date``; default 1970-01-01 .. the run
    date + 1 day) is a :class:`DataError` naming ``--cutoff``."""
    last = dataset.transactions["timestamp"].max()
    if cutoff is None:
        return (last + pd.Timedelta(days=1)).normalize()
    from churnml.io import date_setting

    ts = date_setting(cutoff, "--cutoff", data)  # an offset or zone is converted to UTC, the data's clock
    first = dataset.transactions["timestamp"].min()
    if ts <= first:
        raise DataError(f"cutoff {ts.date()} is on or before the first transaction ({first}); no customer is in scope")
    return ts


def customer_snapshot(dataset: Dataset, config: Config, cutoff=None) -> pd.DataFrame:
    """Snapshot features plus RFM scores and segment of every customer with a purchase before
    the cutoff (see :func:`churnml.features.snapshot_features`)."""
    cut = resolve_cutoff(dataset, cutoff, data=config.data)
    feats = snapshot_features(
        dataset.transactions, cut, events=dataset.events, customers=dataset.customers, config=config.features
    )
    scores = rfm_scores(feats, config=config.rfm)
    out = feats.join(scores)
    out.insert(0, "as_of", cut)
    return out


def segment_summary(snapshot: pd.DataFrame) -> pd.DataFrame:
    """Customers, share, mean recency (days), purchases per year and average order value
    (currency) per RFM segment, largest segment first."""
    years = (snapshot["tenure_days"].clip(lower=1.0)) / 365.25
    g = snapshot.assign(purchases_per_year=snapshot["n_purchases"] / years).groupby("rfm_segment")
    out = pd.DataFrame(
        {
            "customers": g.size(),
            "mean_recency_days": g["recency_days"].mean(),
            "purchases_per_year": g["purchases_per_year"].mean(),
            "avg_order_value": g["avg_order_value"].mean(),
            "total_spend": g["total_spend"].sum(),
        }
    )
    out.insert(1, "share", out["customers"] / out["customers"].sum())
    return out.sort_values("customers", ascending=False)


def clv_holdout_diagnostics(dataset: Dataset, config: Config, as_of) -> CLVDiagnostics:
    """Refit the shipped CLV model's specification on everything before ``as_of - h`` and
    diagnose it against the following ``h`` days (calibration vs holdout, tracking, P(alive)),
    ``h`` = the value backtest's horizon (:func:`churnml.value.backtest_horizon`: ``clv.horizon_days``
    when the log allows). Raises :class:`DataError` when the log is too short for a holdout."""
    from churnml.clv_diagnostics import clv_diagnostics
    from churnml.features import calibration_holdout
    from churnml.io import purchases
    from churnml.value import backtest_horizon, clv_model_from_config

    as_of = pd.Timestamp(as_of)
    pur = purchases(dataset.transactions, at=as_of)
    pur = pur.loc[pur["timestamp"] < as_of]
    h = backtest_horizon(pur["timestamp"].min(), as_of, config.clv.horizon_days)
    if h is None:
        raise DataError(f"the log ({pur['timestamp'].min().date()} to {as_of.date()}) is too short for a CLV holdout check")
    cal_cut = as_of - pd.Timedelta(days=h)
    mult = 7 if config.clv.time_unit == "W" else 1
    cal_end, obs_end = cal_cut - pd.Timedelta(days=1), as_of - pd.Timedelta(days=1)
    cal = calibration_holdout(
        pur, calibration_end=cal_end, observation_end=obs_end, amount="amount", freq="D", freq_multiplier=mult
    )
    rfm = cal.rename(columns={"frequency_cal": "frequency", "recency_cal": "recency", "T_cal": "T", "monetary_value_cal": "monetary_value"})
    with warnings.catch_warnings():  # a refit of the shipped specification: the shipped fit already warned
        warnings.simplefilter("ignore")
        model = clv_model_from_config(config.clv).fit(rfm[["frequency", "recency", "T", "monetary_value"]])
    return clv_diagnostics(model, cal_holdout=cal, transactions=pur, calibration_end=cal_end, observation_end=obs_end)


def shipped_clv_summary(pipe, diag: "CLVDiagnostics | None") -> dict:
    """The shipped CLV model's summary (parameters, fit rung, degenerate flag) plus the holdout
    check of the same specification refitted before the holdout (``holdout``: actual and expected
    repeat purchases, their ratio, the holdout length in days), or ``holdout: None``."""
    out = dict(pipe.value_model.clv_model_.summary())
    out["value_model"] = pipe.value_model.chosen_
    if diag is None:
        out["holdout"] = None
        return out
    d = diag.to_dict()
    actual, expected = d.get("tracking_holdout_actual"), d.get("tracking_holdout_expected")
    out["holdout"] = {
        "actual": actual,
        "expected": expected,
        "ratio": (expected / actual) if actual else None,
        "params_refitted": d.get("params"),
    }
    return out


def marketing_outputs(scores: pd.DataFrame, meta: dict, config: Config, out: Path, dataset: Dataset | None = None) -> list[Path]:
    """What marketing opens after a run: ``at_risk.xlsx`` (customers in ``output.at_risk_tiers``
    by value at risk, formatted, with customer attributes) and the HTML ``report.html``."""
    from churnml.campaigns import at_risk_list, at_risk_rows
    from churnml.excel import action_label, action_labels, economics_notes, write_list
    from churnml.report import write_report

    s = scores.reset_index() if "customer_id" not in scores.columns else scores
    picked = at_risk_rows(s, config.output.at_risk_tiers, config.output.at_risk_top)
    customers = dataset.customers if dataset is not None else None
    table = at_risk_list(picked, customers=customers)
    if "Recommended action" in table.columns:
        labels = action_labels(config.campaign)
        table["Recommended action"] = table["Recommended action"].map(lambda a: action_label(a, labels))
    ctx = {k: meta[k] for k in ("horizons", "currency", "tiers", "economics") if k in meta}
    cols = [c for c in s.columns if c in _REPORT_COLUMNS]
    report = write_report(s[cols], out / "report.html", title=config.report.title, context=ctx, at_risk=picked[cols],
                          at_risk_tiers=list(config.output.at_risk_tiers), action_labels=action_labels(config.campaign))
    return [write_list(table, out / "at_risk.xlsx", notes=economics_notes(meta.get("economics"))), report]


_REPORT_COLUMNS = {
    "customer_id", "as_of", "churn_probability", "p_alive", "expected_purchases", "predicted_clv", "value_if_retained",
    "value_at_risk", "risk_tier", "value_tier", "segment", "rfm_segment", "reasons", "recommended_action", "model_version",
    "purchases_per_year", "avg_order_value",
}


@dataclasses.dataclass
class RunResult:
    """What :func:`run` wrote, registered and measured (timings in seconds)."""

    out_dir: Path
    files: list[Path]
    customers: int
    as_of: str
    timings: dict[str, float]
    segments: pd.DataFrame
    value_metrics: pd.DataFrame | None
    value_model: str
    clv_summary: dict
    churn_backtest: pd.DataFrame | None
    model_uri: str | None
    tracking_uri: str | None
    churn_training: dict = dataclasses.field(default_factory=dict)
    audit: dict | None = None


def run(config: Config, *, cutoff=None, out_dir: str | Path | None = None, track: bool = True) -> RunResult:
    """The main job end to end: load and validate the data; backtest the churn model and its
    baselines; fit the models that ship (CLV, value model chosen by its backtest, churn model);
    log the run to MLflow and register the model (alias ``challenger``) unless ``track=False``;
    score every customer in scope at ``cutoff`` (default: the day after the last transaction).

    Writes to ``out_dir`` (default ``config.output.dir``), each file atomically:
    ``customers.parquet`` (one row per customer: churn probability, P(alive), expected purchases,
    predicted CLV, value at risk, RFM scores and segment, features), ``rfm_segments.csv``,
    ``churn_backtest.csv``, ``value_backtest.csv``, ``clv/`` diagnostics and ``run_report.json``.
    """
    from churnml.clv_diagnostics import plot_clv_diagnostics
    from churnml.pipeline import fit_pipeline

    timings: dict[str, float] = {}
    t = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal t
        now = time.perf_counter()
        timings[f"{name}_s"] = round(now - t, 3)
        t = now

    from churnml._atomic import set_file_mode

    set_file_mode(config.output.file_mode)  # new output files: output.file_mode (default 0600)
    dataset = load_dataset(config)
    as_of = resolve_cutoff(dataset, cutoff, data=config.data)
    lap("load")
    pipe, bt = fit_pipeline(dataset, config, as_of=as_of)
    lap("train")
    try:
        diag = clv_holdout_diagnostics(dataset, config, as_of)
    except DataError:
        diag = None
    lap("clv_diagnostics")
    from churnml.scoring import score_dataset

    # scored (and audited) before anything is registered: scores the audit refuses register no model
    scored = score_dataset(pipe, dataset, config, as_of=as_of, keep_features=True)
    scores = scored.scores
    seg = segment_summary(scores)
    lap("score")
    result = None
    if track:
        from churnml.tracking import log_training

        result = log_training(pipe, bt, dataset, config, clv_diagnostics=diag, audit=scored.meta.get("audit"))
        lap("mlflow")
    out = Path(out_dir or config.output.dir)
    # the same table shape as `churnml score` (customer_id a column), with every feature after it
    files = [write_table(scores, out / "customers.parquet", index=False), write_table(seg, out / "rfm_segments.csv")]
    meta_path = out / "customers.parquet.meta.json"  # horizons, tiers, currency: what the report states
    write_json(meta_path, scored.meta)
    files.append(meta_path)
    files += marketing_outputs(scored.scores, scored.meta, config, out, dataset)
    if bt is not None:
        files.append(write_table(bt.per_cutoff, out / "churn_backtest.csv"))
    metrics = pipe.value_model.backtest_.metrics if pipe.value_model.backtest_ is not None else None
    if metrics is not None:
        files.append(write_table(metrics, out / "value_backtest.csv"))
    if diag is not None:
        files += plot_clv_diagnostics(diag, out / "clv")
    lap("write")
    report = {
        "load_report": dataset.report.to_dict(),
        "as_of": str(as_of),
        "customers_in_scope": len(scores),
        **pipe.model_report(),
        "audit": scored.meta.get("audit"),
        "clv_holdout_diagnostics": diag.to_dict() if diag is not None else None,
        "mlflow": dataclasses.asdict(result) if result is not None else None,
        "timings": timings,
        "seed": config.seed,
        "economics": scored.meta.get("economics"),
    }
    report_path = out / "run_report.json"
    write_json(report_path, report)
    files.append(report_path)
    return RunResult(
        out, files, len(scores), str(as_of), timings, seg, metrics, pipe.value_model.chosen_, shipped_clv_summary(pipe, diag),
        bt.summary if bt is not None else None,
        result.registered_uri if result else None, result.tracking_uri if result else None, pipe.training,
        scored.meta.get("audit"),
    )


def backtest(config: Config, *, out_dir: str | Path | None = None) -> tuple["ChurnBacktest", list[Path]]:
    """Churn backtest over the last ``churn.backtest_cutoffs`` complete cutoffs: the model and
    every baseline; writes ``churn_backtest.csv`` (per cutoff) and ``churn_backtest.json``."""
    from churnml.churn import FeatureStore, churn_backtest

    dataset = load_dataset(config)
    store = FeatureStore(dataset.transactions, config, events=dataset.events, customers=dataset.customers)
    bt = churn_backtest(store)
    out = Path(out_dir or config.output.dir)
    files = [write_table(bt.per_cutoff, out / "churn_backtest.csv")]
    path = out / "churn_backtest.json"
    write_json(path, bt.to_dict())
    files.append(path)
    return bt, files


def train(config: Config, *, as_of=None) -> tuple["TrainResult", "ChurnBacktest"]:
    """Backtest, fit everything that ships, log the run to MLflow and register the model
    (alias ``challenger``). Returns the tracking result and the backtest."""
    from churnml.pipeline import fit_pipeline
    from churnml.tracking import log_training

    dataset = load_dataset(config)
    pipe, bt = fit_pipeline(dataset, config, as_of=as_of)
    try:
        diag = clv_holdout_diagnostics(dataset, config, pipe.as_of)
    except DataError:
        diag = None
    result = log_training(pipe, bt, dataset, config, clv_diagnostics=diag)
    return result, bt


def audit_scores(scores_path: str | Path, config: Config, report_path: str | Path | None = None):
    """The decisions audit (:func:`churnml.audit.audit`) of a scores file (``customers.parquet`` of
    ``churnml run`` or the output of ``churnml score``). What the models said about themselves is
    read from ``report_path``, else ``run_report.json`` beside the scores, else the scores'
    ``.meta.json`` (``model_report``); without any, the backtest checks say they cannot tell."""
    from churnml.audit import audit
    from churnml.scoring import read_scores

    path = Path(scores_path)
    scores = read_scores(path)
    report = None
    candidates = [Path(report_path)] if report_path is not None else [path.with_name("run_report.json")]
    for cand in candidates:
        if cand.is_file():
            report = json.loads(cand.read_text())
            break
    else:
        if report_path is not None:
            raise DataError(f"--report {report_path}: file not found")
        meta = path.with_name(path.name + ".meta.json")
        if meta.is_file():
            m = json.loads(meta.read_text())
            report = {**(m.get("model_report") or {}), "economics": m.get("economics")}
    return audit(scores, config, report)
