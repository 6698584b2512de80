"""The batch-scoring job: a registered (or exported) model scores every customer in scope.

Output: one row per customer with ``customer_id, as_of, churn_probability, p_alive,
expected_purchases, predicted_clv, value_if_retained, value_at_risk, risk_tier, value_tier, segment, rfm_segment,
reasons, recommended_action, model_version`` plus a few descriptive columns (recency, purchases,
order value) that the KPIs and lists use. Customers are scored in chunks so memory stays bounded
on large logs; segment tiers and RFM quintiles are computed over the whole scored population.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from churnml._atomic import write_json, write_table
from churnml.audit import AUDIT_COLUMNS, audit
from churnml.config import Config
from churnml.errors import DataError, ModelError
from churnml.io import CUSTOMER_ID, TIMESTAMP, Dataset
from churnml.rfm import rfm_scores
from churnml.segments import assign_segments, low_risk_cut, reason_codes

__all__ = ["OUTPUT_COLUMNS", "ScoreResult", "resolve_as_of", "score_dataset", "write_scores"]

log = logging.getLogger("churnml.score")

OUTPUT_COLUMNS = [
    "customer_id", "as_of", "churn_probability", "p_alive", "expected_purchases", "predicted_clv", "value_if_retained",
    "value_at_risk",
    "risk_tier", "value_tier", "segment", "rfm_segment", "reasons", "recommended_action", "model_version",
]
EXTRA_COLUMNS = [
    "p_alive_source", "expected_avg_spend", "recency_days", "tenure_days", "n_purchases", "purchases_per_year", "avg_order_value",
    "total_spend", "net_spend", "r_score", "f_score", "m_score",
    "frequency", "ipt_mean_days",  # what the reason sentences state (purchases, usual gap): the audit rechecks them
]


def resolve_as_of(transactions: pd.DataFrame, as_of=None, *, data=None) -> pd.Timestamp:
    """The scoring date: the given one, or the end of the last date in the data (the next
    midnight, so that date's purchases count). A date with a time zone or offset is converted
    to UTC, the data's clock (:func:`churnml.io.parse_date`). A date after the end of the data,
    on/before the first transaction, outside the plausible window of ``data`` (``config.data``:
    ``min_date`` .. ``max_date``; default 1970-01-01 .. the run date + 1 day), or not a date is bad
    input naming ``--as-of``."""
    from churnml.io import date_setting

    first = transactions[TIMESTAMP].min()
    end = transactions[TIMESTAMP].max().normalize() + pd.Timedelta(days=1)
    if as_of is None:
        return end
    ts = date_setting(as_of, "--as-of", data)
    shown = ts.date() if ts == ts.normalize() else ts
    if ts > end:
        raise DataError(f"--as-of {shown} is in the future of the data: the log ends {end.date() - pd.Timedelta(days=1)}")
    if ts <= first:
        raise DataError(f"--as-of {shown} is on or before the first transaction ({first}); no customer is in scope")
    return ts


@dataclasses.dataclass
class ScoreResult:
    scores: pd.DataFrame
    meta: dict[str, Any]


def score_dataset(
    pipe,
    dataset: Dataset,
    config: Config,
    *,
    as_of=None,
    progress: Callable[[int, int], None] | None = None,
    keep_features: bool = False,
) -> ScoreResult:
    """Score every customer in scope at ``as_of`` with a fitted pipeline; see the module docstring.
    ``progress(done, total)`` is called after each chunk; ``keep_features`` keeps every feature
    column after the output columns."""
    t0 = time.perf_counter()
    tx = dataset.transactions
    as_of = resolve_as_of(tx, as_of, data=config.data)
    tx = tx.loc[tx[TIMESTAMP] < as_of]
    # customers in id order, chunk k = the k-th block of chunk_customers of them: one factorize of
    # the id column, then each chunk's rows are an integer comparison (no string matching per chunk)
    codes, ids = pd.factorize(tx[CUSTOMER_ID].astype(str), sort=True)
    size = max(int(config.score.chunk_customers), 1)
    n_chunks = max(1, -(-len(ids) // size))
    row_chunk = codes // size
    log.info("event=score.start customers=%d chunks=%d as_of=%s model=%s", len(ids), n_chunks, as_of.date(), pipe.model_version)
    ev = dataset.events
    ev_chunk = None
    if ev is not None and n_chunks > 1:
        pos = pd.Index(ids).get_indexer(ev[CUSTOMER_ID].astype(str))
        ev_chunk = np.where(pos >= 0, pos // size, -1)
    method = config.score.reasons_method
    parts, drift_parts = [], []
    for n in range(1, n_chunks + 1):
        ctx = tx.loc[row_chunk == n - 1] if n_chunks > 1 else tx
        cev = ev.loc[ev_chunk == n - 1] if ev_chunk is not None else ev
        feats = pipe.features(ctx, as_of, events=cev, customers=dataset.customers)
        proba, contrib = pipe.churn_model.predict_proba_and_contributions(feats, method)
        scored = pipe.score_features(feats, as_of, churn_probability=proba)
        scored["reasons"] = reason_codes(contrib, scored, typical=getattr(pipe.churn_model, "typical_", None),
                                         low_risk=low_risk_cut(config.segments), trend_days=config.features.trend_window_days,
                                         above_typical_only=False)
        keep = [c for c in dict.fromkeys(["as_of", "churn_probability", "p_alive", "p_alive_source", "expected_purchases", "predicted_clv",
                                          "value_if_retained", "value_at_risk", "reasons", *EXTRA_COLUMNS,
                                          *config.campaign.required_columns(), *AUDIT_COLUMNS]) if c in scored.columns]
        model_feats = scored[[c for c in pipe.feature_names if c in scored.columns]]
        drift_parts.append(model_feats.sample(n=50_000, random_state=0) if len(model_feats) > 50_000 else model_feats)
        parts.append(scored if keep_features else scored[keep])
        log.info("event=score.chunk chunk=%d/%d customers=%d", n, n_chunks, len(scored))
        if progress:
            progress(n, n_chunks)
    scores = pd.concat(parts) if parts else pd.DataFrame()
    if scores.empty:
        raise DataError(f"no customer with a purchase before {as_of.date()}")
    t_score = time.perf_counter()
    scores = assign_segments(scores, config.segments, config.campaign)
    scores = scores.join(rfm_scores(scores, config=config.rfm)[["r_score", "f_score", "m_score", "rfm_segment"]])
    scores["model_version"] = pipe.model_version
    scores.index.name = CUSTOMER_ID
    scores = scores.reset_index()
    kept = scores.columns if keep_features else [*EXTRA_COLUMNS, *config.campaign.required_columns()]  # + what action rules read
    extra = [c for c in dict.fromkeys(kept) if c in scores.columns and c not in OUTPUT_COLUMNS]
    model_report = pipe.model_report()
    audited = audit(scores, config, model_report)
    scores = scores[OUTPUT_COLUMNS + extra]
    blocking, notes = sanity_problems(scores, config)
    if blocking:
        raise ModelError(
            f"model {pipe.model_version}: its scores fail the sanity checks, nothing was written:\n  - "
            + "\n  - ".join(blocking)
        )
    if not audited.ok and config.audit.on_fail == "error":
        raise ModelError(
            f"model {pipe.model_version}: its scores fail the decisions audit (they would mislead a marketer), nothing was "
            "written (audit.on_fail: warn writes them with the failures reported):\n  - "
            + "\n  - ".join(str(f) for f in audited.of("fail"))
        )
    from churnml.campaigns import assumptions

    psi = pipe.drift(pd.concat(drift_parts)) if pipe.reference else pd.Series(dtype=float)
    drifted = psi[psi > config.score.psi_threshold]
    meta = {
        "model_version": pipe.model_version,
        "model_id": pipe.model_id,
        "trained_as_of": str(pipe.as_of.date()),
        "as_of": str(as_of.date()),
        "data": {
            "source": dataset.report.source,
            "first_transaction": str(tx[TIMESTAMP].min()),
            "last_transaction": str(tx[TIMESTAMP].max()),
            "transactions": int(len(tx)),
        },
        "rows": {"customers_scored": int(len(scores)), "chunks": n_chunks, "load_report": dataset.report.to_dict()},
        "segments": scores["segment"].value_counts().to_dict(),
        "horizons": {"churn_days": pipe.config.churn.horizon_days, "clv_days": pipe.config.clv.horizon_days},
        "currency": config.report.currency,
        "tiers": {"risk": config.segments.risk.model_dump(), "value": config.segments.value.model_dump()},
        # what recommended_action rests on: the margin inside value_if_retained, the effects and their sources
        "economics": assumptions(config.campaign, pipe.config.clv.margin),
        "sanity_notes": notes,
        "audit": audited.to_dict(),
        "model_report": model_report,
        "drift": {"psi_threshold": config.score.psi_threshold, "psi": psi.round(4).to_dict(), "drifted": drifted.round(4).to_dict()},
        "timings": {"score_s": round(t_score - t0, 3), "segments_s": round(time.perf_counter() - t_score, 3)},
    }
    return ScoreResult(scores, meta)


_NOTES_ONLY = ("p_alive: exactly 1", "p_alive: all ", "p_alive: the same value")
"""Sanity findings reported in the sidecar but not blocking: a purchase model with no visible
dropout (or a user-chosen BG/NBD for one-time buyers) legitimately says P(alive) = 1."""


def sanity_problems(scores: pd.DataFrame, config: Config) -> tuple[list[str], list[str]]:
    """(blocking problems, notes) of :func:`churnml.sanity.check_scores` on a scores table: a
    non-finite, negative or out-of-range number, a churn probability of exactly 0 or 1, a CLV or
    expected purchases far beyond what customers actually did, or segments that contradict the
    matrix block the output; P(alive) = 1 is a note."""
    from churnml.sanity import check_scores

    found = check_scores(scores, config=config)
    notes = [p for p in found if p.startswith(_NOTES_ONLY)]
    return [p for p in found if p not in notes], notes


def write_scores(result: ScoreResult, out: str | Path) -> tuple[Path, Path]:
    """Write the scores (``.parquet`` or ``.csv`` by extension) and the sidecar
    ``<out>.meta.json``, each atomically; return both paths."""
    out = Path(out)
    t = time.perf_counter()
    write_table(result.scores, out, index=False)
    result.meta["timings"]["write_s"] = round(time.perf_counter() - t, 3)
    meta_path = out.with_name(out.name + ".meta.json")
    write_json(meta_path, result.meta)
    return out, meta_path


def read_scores(path: str | Path) -> pd.DataFrame:
    """Read a scores file written by :func:`write_scores` (Parquet or CSV)."""
    from churnml.errors import DataError, ModelError

    p = Path(path)
    if not p.is_file():
        raise DataError(f"scores file not found: {p}")
    try:
        if p.suffix.lower() in {".parquet", ".pq"}:
            df = pd.read_parquet(p)
        else:  # a churnml CSV quotes text a spreadsheet would run as a formula: ids round-trip
            from churnml.excel import restore_formulas

            df = restore_formulas(pd.read_csv(p, dtype={"customer_id": str}))
    except OSError as err:
        if err.errno is not None:  # the OS refused (permission, I/O): the environment's fault, exit 4 at the CLI
            raise
        raise DataError(f"{p}: damaged or truncated scores file, cannot read it: {str(err)[:200]}") from None
    except (ValueError, pd.errors.ParserError, UnicodeDecodeError) as err:  # ArrowInvalid is a ValueError
        raise DataError(f"{p}: damaged or truncated scores file, cannot read it: {str(err)[:200]}") from None
    if "customer_id" not in df.columns and df.index.name == "customer_id":  # customers.parquet of `churnml run`
        df = df.reset_index()
    missing = [c for c in ("customer_id", "churn_probability", "predicted_clv", "value_at_risk", "segment") if c not in df.columns]
    if missing:
        raise DataError(f"{p}: not a churnml scores file, missing column(s) {missing}; the file has {list(df.columns)}")
    _check_score_values(df, p)
    return df


def _check_score_values(df: pd.DataFrame, p: Path) -> None:
    """Refuse a scores table whose values changed meaning: customer ids that are not one scalar
    each, a ``churn_probability`` that is not a number in [0, 1], or ``predicted_clv`` /
    ``value_at_risk`` that are not finite numbers (currency). Numeric columns read as text are
    converted in place (ids are kept as written)."""
    from churnml.io import _examples, normalise_ids

    rows = df.reset_index(drop=True)
    first_line = 2 if p.suffix.lower() not in {".parquet", ".pq"} else 0  # CSV: line 1 is the header
    if rows["customer_id"].dtype == object:  # refuses list-typed ids (Parquet) naming the rows
        normalise_ids(rows["customer_id"], source=str(p), column="customer_id", df=rows, first_line=first_line)
    for col in ("churn_probability", "predicted_clv", "value_at_risk"):
        raw = df[col]
        num = pd.to_numeric(raw, errors="coerce").astype("float64") if not pd.api.types.is_numeric_dtype(raw) else raw.astype("float64")
        arr = num.to_numpy()
        missing = raw.isna().to_numpy()
        if col == "churn_probability":
            bad = ~missing & ~((arr >= 0) & (arr <= 1))
            what = "values that are not probabilities between 0 and 1"
        else:
            bad = ~missing & ~np.isfinite(arr)
            what = "non-numeric or infinite values (currency amounts expected)"
        if bad.any():
            raise DataError(f"{p}: column {col!r} has {what}: " + _examples(rows, bad, first_line, ["customer_id", col]))
        if missing.any() and col == "churn_probability":
            raise DataError(f"{p}: column {col!r} has missing values: " + _examples(rows, missing, first_line, ["customer_id", col]))
        df[col] = arr


def _psi_warning(meta: dict[str, Any]) -> str | None:
    drifted = meta["drift"]["drifted"]
    if not drifted:
        return None
    items = ", ".join(f"{k} {v:.2f}" for k, v in drifted.items())
    return f"feature drift since training (PSI > {meta['drift']['psi_threshold']}): {items}"


def drift_warning(meta: dict[str, Any]) -> str | None:
    """The drift warning to show for a scoring run, or None."""
    return _psi_warning(meta)

