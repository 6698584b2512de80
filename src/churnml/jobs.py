"""End-to-end jobs composed from the public API; the CLI calls these and prints."""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import pandas as pd

from churnml._atomic import atomic_path, write_table
from churnml.config import Config
from churnml.errors import DataError
from churnml.features import snapshot_features
from churnml.io import Dataset, load_dataset
from churnml.rfm import rfm_scores

__all__ = ["RunResult", "customer_snapshot", "resolve_cutoff", "run", "segment_summary"]


def resolve_cutoff(dataset: Dataset, cutoff=None) -> pd.Timestamp:
    """The snapshot cutoff: the given date, or the day after the last transaction (midnight),
    so that every transaction of the log is before it."""
    last = dataset.transactions["timestamp"].max()
    if cutoff is None:
        return (last + pd.Timedelta(days=1)).normalize()
    try:
        ts = pd.Timestamp(cutoff)
    except (ValueError, TypeError):
        raise DataError(f"cutoff {cutoff!r} is not a date (use YYYY-MM-DD)") from None
    first = dataset.transactions["timestamp"].min()
    if ts <= first:
        raise DataError(f"cutoff {ts.date()} is on or before the first transaction ({first}); no customer is in scope")
    return ts


def customer_snapshot(dataset: Dataset, config: Config, cutoff=None) -> pd.DataFrame:
    """Snapshot features plus RFM scores and segment of every customer with a purchase before
    the cutoff (see :func:`churnml.features.snapshot_features`)."""
    cut = resolve_cutoff(dataset, cutoff)
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


@dataclasses.dataclass
class RunResult:
    """What :func:`run` wrote and how long it took (seconds)."""

    snapshot_path: Path
    segments_path: Path
    report_path: Path
    customers: int
    as_of: str
    timings: dict[str, float]
    segments: pd.DataFrame


def run(config: Config, *, cutoff=None, out_dir: str | Path | None = None) -> RunResult:
    """The main job: load and validate the data, build the point-in-time customer snapshot with
    RFM scores and segments, and write ``customers.parquet``, ``rfm_segments.csv`` and
    ``run_report.json`` (each atomically) to ``out_dir`` (default ``config.output.dir``)."""
    t0 = time.perf_counter()
    dataset = load_dataset(config)
    t1 = time.perf_counter()
    snap = customer_snapshot(dataset, config, cutoff)
    seg = segment_summary(snap)
    t2 = time.perf_counter()
    out = Path(out_dir or config.output.dir)
    snap_path = write_table(snap, out / "customers.parquet")
    seg_path = write_table(seg, out / "rfm_segments.csv")
    timings = {"load_s": round(t1 - t0, 3), "features_s": round(t2 - t1, 3)}
    report = {
        "load_report": dataset.report.to_dict(),
        "as_of": str(snap["as_of"].iloc[0]),
        "customers_in_scope": len(snap),
        "timings": timings,
        "outputs": [str(snap_path), str(seg_path)],
    }
    report_path = out / "run_report.json"
    with atomic_path(report_path) as tmp:
        tmp.write_text(json.dumps(report, indent=2, default=str))
    return RunResult(snap_path, seg_path, report_path, len(snap), report["as_of"], timings, seg)
