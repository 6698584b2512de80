"""One fitted object from transactions to scores: features -> CLV/value -> churn -> (segments).

:func:`fit_pipeline` backtests the churn model on the last complete cutoffs, then fits the
models that ship (churn model for use at ``as_of``, value model, CLV) and returns a
:class:`ChurnPipeline`. ``ChurnPipeline.score`` turns a transaction log into one row per
customer in scope; it is what the MLflow pyfunc model and ``churnml score`` call.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import warnings
from typing import Any

import numpy as np
import pandas as pd

from churnml import __version__
from churnml.churn import (
    ChurnBacktest, ChurnModel, FeatureStore, backtest_cutoffs, backtest_shortfall, churn_backtest, fit_churn_model,
)
from churnml.config import Config
from churnml.errors import DataError, ModelError
from churnml.features import snapshot_features
from churnml.io import TIMESTAMP, Dataset
from churnml.value import ValueModel

__all__ = [
    "ChurnPipeline", "LeakageError", "check_point_in_time", "feature_reference", "fit_pipeline", "population_stability",
    "ship_decision",
]


class LeakageError(ModelError):
    """A feature at a cutoff changed when data after the cutoff was removed."""


def check_point_in_time(feature_fn, transactions: pd.DataFrame, cutoff, *, atol: float = 1e-9) -> None:
    """Leakage guard: ``feature_fn(transactions, cutoff)`` must give the same frame whether or
    not the log holds data on/after ``cutoff``. Raises :class:`LeakageError` naming the columns
    that differ."""
    cut = pd.Timestamp(cutoff)
    full = feature_fn(transactions, cut)
    past = feature_fn(transactions.loc[transactions[TIMESTAMP] < cut], cut)
    if not full.index.equals(past.index):
        raise LeakageError(f"customers at cutoff {cut.date()} depend on data after it")
    bad = []
    for col in full.columns:
        a, b = full[col], past[col]
        if pd.api.types.is_numeric_dtype(a):
            av, bv = a.to_numpy(dtype=float), b.to_numpy(dtype=float)
            same = np.isclose(av, bv, atol=atol, rtol=1e-9, equal_nan=True)
        else:
            same = (a.astype(str) == b.astype(str)).to_numpy()
        if not same.all():
            bad.append(col)
    if bad:
        raise LeakageError(f"feature(s) {bad} at cutoff {cut.date()} change when data after the cutoff is removed")


@dataclasses.dataclass
class ChurnPipeline:
    """Everything needed to score raw transactions: config, value model (CLV inside), churn
    model (LightGBM + stacker + calibrator), the training as-of date and its backtest summary."""

    config: Config
    value_model: ValueModel
    churn_model: ChurnModel
    as_of: pd.Timestamp
    training: dict[str, Any]
    backtest_summary: pd.DataFrame | None = None
    reference: dict[str, Any] | None = None
    version: str = __version__
    model_id: str = ""
    model_version: str = ""
    timings: dict[str, float] = dataclasses.field(default_factory=dict)  # seconds per training stage

    def drift(self, features: pd.DataFrame) -> pd.Series:
        """Population stability index of each feature against the training snapshot."""
        return population_stability(self.reference or {}, features)

    def model_report(self) -> dict[str, Any]:
        """What the fitted models say about themselves, under the keys of ``run_report.json``:
        ``churn_training`` (selection, shipped scorer), ``churn_backtest`` (summary by scorer),
        ``value_model``, ``value_backtest``, ``value_notes`` and ``clv_fit``. The decisions audit
        (:func:`churnml.audit.audit`) reads it, in ``run`` and in ``score`` alike."""
        vb = self.value_model.backtest_
        bs = self.backtest_summary
        return {
            "churn_training": self.training,
            "churn_backtest": bs.to_dict("index") if bs is not None else None,
            "value_model": self.value_model.chosen_,
            "value_backtest": vb.to_dict() if vb is not None else None,
            "value_notes": self.value_model.notes_,
            "clv_fit": self.value_model.clv_model_.summary(),
        }

    @property
    def feature_names(self) -> list[str]:
        return list(self.churn_model.feature_names_)

    def features(self, transactions: pd.DataFrame, as_of, *, events=None, customers=None) -> pd.DataFrame:
        """Point-in-time features at ``as_of`` plus the BTYD outputs of the fitted CLV model
        (no refit)."""
        cfg = self.config
        feats = snapshot_features(transactions, as_of, events=events, customers=customers, config=cfg.features)
        if cfg.churn.lookback_days:
            feats = feats.loc[feats["recency_days"] <= cfg.churn.lookback_days]
        return self.add_btyd(feats)

    def add_btyd(self, feats: pd.DataFrame) -> pd.DataFrame:
        """Add ``btyd_p_alive, btyd_expected_purchases, btyd_expected_avg_spend, btyd_value``
        (undiscounted spend over ``clv.horizon_days``) and ``btyd_p_no_purchase`` (over
        ``churn.horizon_days``) computed from the snapshot's lifetimes-style ``frequency,
        recency, T`` (days) and ``monetary_value`` with the fitted CLV model."""
        from churnml.value import btyd_columns

        return btyd_columns(feats, self.value_model.clv_model_, self.config)

    def score_features(self, feats: pd.DataFrame, as_of, *, churn_probability=None) -> pd.DataFrame:
        """Scores from a feature frame (see :meth:`score`); what distributed engines call per
        partition. ``churn_probability``: the churn model's probabilities of ``feats`` if already
        computed (e.g. by :meth:`churnml.churn.ChurnModel.predict_proba_and_contributions`)."""
        missing = [c for c in self.feature_names if c not in feats.columns]
        if missing:
            raise ModelError(
                f"the data does not match the model's feature schema: missing {missing} "
                "(a customers/events table the model was trained with?)"
            )
        out = pd.DataFrame(index=feats.index)
        out["as_of"] = pd.Timestamp(as_of)
        out["churn_probability"] = (
            self.churn_model.predict_proba(feats)[:, 1] if churn_probability is None else np.asarray(churn_probability, dtype=float)
        )
        value = self.value_model.predict_features(feats, churn_probability=out["churn_probability"].to_numpy(), as_of=as_of)
        for col in ["p_alive", "expected_purchases", "expected_avg_spend", "predicted_clv", "value_if_retained", "p_alive_source"]:
            out[col] = value[col].reindex(out.index).to_numpy()
        coherent(out)
        out["value_at_risk"] = out["churn_probability"] * out["value_if_retained"]
        return out.join(feats.drop(columns=[c for c in out.columns if c in feats.columns]), how="left")

    def score(self, transactions: pd.DataFrame, as_of=None, *, events=None, customers=None) -> pd.DataFrame:
        """One row per customer in scope at ``as_of`` (default: the day after the last
        transaction): ``churn_probability`` (no purchase in the next ``churn.horizon_days``),
        ``p_alive``, ``expected_purchases``, ``expected_avg_spend``, ``predicted_clv`` (expected
        value, currency, over ``clv.horizon_days``), ``value_if_retained`` (value over the same
        horizon if the customer stays active), ``value_at_risk`` = churn_probability x
        value_if_retained, and the features used. Raises :class:`ModelError` when a trained feature is missing."""
        last = transactions[TIMESTAMP].max()
        as_of = pd.Timestamp(as_of) if as_of is not None else last.normalize() + pd.Timedelta(days=1)
        return self.score_features(self.features(transactions, as_of, events=events, customers=customers), as_of)


def coherent(scores: pd.DataFrame) -> pd.DataFrame:
    """Make a scores frame's numbers agree with each other, in place (and return it):

    * a customer who buys within the churn horizon is still active, so ``p_alive`` is at least
      ``1 - churn_probability`` (the calibrated churn model's chance of a purchase): where the
      BTYD belief is lower it is raised to that bound, ``p_alive_source`` says ``churn_model``
      and ``expected_purchases`` moves with it (scaled by new / old P(alive), which the BTYD
      expectation is proportional to);
    * what a customer is expected to bring with churn counted (``predicted_clv``, the backtested
      value model) never exceeds what they bring if retained: ``value_if_retained`` is at least
      ``predicted_clv``.

    The decisions audit's ``coherence`` check tests both on every output."""
    stay = 1.0 - scores["churn_probability"].to_numpy(dtype=float)
    p_old = scores["p_alive"].to_numpy(dtype=float)
    p_new = np.fmax(p_old, stay)
    raised = p_new > p_old
    if raised.any():
        ratio = np.where(raised, p_new / np.maximum(p_old, 1e-6), 1.0)
        scores["expected_purchases"] = scores["expected_purchases"].to_numpy(dtype=float) * ratio
        scores["p_alive"] = p_new
        if "p_alive_source" in scores.columns:
            scores["p_alive_source"] = np.where(raised, "churn_model", scores["p_alive_source"].astype(object))
    clv = scores["predicted_clv"].to_numpy(dtype=float)
    scores["value_if_retained"] = np.fmax(scores["value_if_retained"].to_numpy(dtype=float), clv)
    return scores


def fit_pipeline(dataset: Dataset, config: Config, *, as_of=None, backtest: bool = True) -> tuple[ChurnPipeline, ChurnBacktest | None]:
    """Backtest (optional) and fit everything that ships, for scoring from ``as_of`` (default:
    the day after the last transaction). Checks the feature code for leakage on the first
    training cutoff."""
    import time

    clock = [time.perf_counter()]
    timings: dict[str, float] = {}

    def lap(name: str) -> None:
        now = time.perf_counter()
        timings[name] = round(now - clock[0], 3)
        clock[0] = now

    tx = dataset.transactions
    as_of = pd.Timestamp(as_of) if as_of is not None else tx[TIMESTAMP].max().normalize() + pd.Timedelta(days=1)
    store = FeatureStore(tx.loc[tx[TIMESTAMP] < as_of], config, events=dataset.events, customers=dataset.customers)
    bt = None
    no_backtest = backtest_shortfall(store.transactions, config, as_of) if backtest else "backtest not requested"
    if no_backtest is None:
        bt = churn_backtest(store, backtest_cutoffs(store.transactions, config, as_of))
    else:
        warnings.warn(no_backtest, UserWarning, stacklevel=2)
    lap("backtest_s")
    select, shipped = ship_decision(bt.summary if bt is not None else None, len(bt.training) if bt is not None else 0)
    model, _, info = fit_churn_model(store, as_of, select=select)
    lap("churn_model_s")
    info["backtest_note"] = no_backtest
    shipped["scorer"] = model.chosen_
    if not shipped["override"]:
        shipped["sentence"] = f"The churn scorer is {SCORER_NAMES.get(model.chosen_, model.chosen_)}, chosen on held-out customers. " + shipped["sentence"]
    info["shipped_scorer"] = shipped
    first_train = pd.Timestamp(info["train_cutoffs"][0])
    check_point_in_time(
        lambda t, c: snapshot_features(t, c, events=dataset.events, customers=dataset.customers, config=config.features),
        _customer_sample(tx, LEAKAGE_CHECK_CUSTOMERS, config.seed), first_train,
    )
    lap("leakage_check_s")
    value = ValueModel(clv=config.clv, features=config.features, seed=config.seed, n_jobs=config.n_jobs).fit(
        store.transactions, as_of, events=dataset.events, customers=dataset.customers, store=store
    )
    lap("value_model_s")
    info = {**info, "value_model": value.chosen_, "value_notes": value.notes_}
    if bt is not None:
        info["backtest"] = bt.training
    reference = feature_reference(_snapshot_for_reference(store, value, model, as_of))
    lap("reference_s")
    pipe = ChurnPipeline(config, value, model, as_of, info, bt.summary if bt is not None else None, reference)
    digest = hashlib.sha1(json.dumps(info, sort_keys=True, default=str).encode()).hexdigest()[:8]
    pipe.model_id = f"churnml-{__version__}-{as_of:%Y%m%d}-{digest}"
    pipe.model_version = pipe.model_id
    pipe.timings = timings  # not in the model id: the same data and config give the same id
    return pipe, bt


BASELINE_SCORER = {"recency": "recency", "logistic_rfm": "logistic_rfm", "btyd": "prior"}
"""The :class:`ChurnModel` scorer (``select``) that ships a backtest baseline: the same ranking
(recency: raw days since the last purchase, at least as fine as the backtest's isotonic steps)."""
SCORER_NAMES = {"lightgbm": "LightGBM stacked with the BG/NBD prior", "prior": "the BG/NBD prior",
                "recency": "recency alone", "logistic_rfm": "logistic RFM"}


def ship_decision(summary, n_cutoffs: int) -> tuple[str, dict[str, Any]]:
    """Which churn scorer ships, from the churn backtest ``summary`` over ``n_cutoffs`` cutoffs:
    ``("auto", ...)`` (the held-out selection of :class:`ChurnModel`, the rule the backtest
    evaluated in every fold) unless a baseline is significantly ahead of it (paired 95%
    interval of the ROC AUC difference, pooled over the cutoffs, entirely below 0); then the
    baseline with the highest backtest AUC among those ships (``override``; a tie goes to the
    simpler: recency, then logistic RFM, then BG/NBD). The dict is
    ``churn_training["shipped_scorer"]``: ``override``, ``baseline``, ``backtest_cutoffs``,
    ``vs_baselines`` (baseline -> diff, ci_low, ci_high, outcome) and a plain ``sentence``."""
    from churnml.sanity import CHURN_BASELINE_NAMES, WORSE, churn_differences

    diffs = churn_differences(summary) if summary is not None else {}
    out: dict[str, Any] = {
        "override": False, "baseline": None, "backtest_cutoffs": int(n_cutoffs),
        "vs_baselines": {b: {"diff": d.diff, "ci_low": d.ci_low, "ci_high": d.ci_high, "outcome": d.outcome} for b, d in diffs.items()},
    }
    if not diffs:
        out["sentence"] = "No churn backtest ran, so nobody knows whether it beats the baselines (recency, logistic RFM, BG/NBD)."
        return "auto", out
    ahead = [b for b, d in diffs.items() if d.outcome == WORSE and b in BASELINE_SCORER]
    if not ahead:
        told = [d for d in diffs.values() if d.outcome is not None]
        out["sentence"] = (
            f"In its backtest ({n_cutoffs} cutoff{'s' if n_cutoffs != 1 else ''}) the same selection rule is not significantly "
            "worse than any baseline." if len(told) == len(diffs)
            else "The backtest has no intervals for some baseline, so it cannot be told whether the churn scorer is worse than it."
        )
        return "auto", out
    best = max(ahead, key=lambda b: diffs[b].baseline_auc)
    d = diffs[best]
    name = CHURN_BASELINE_NAMES.get(best, best)
    out.update(override=True, baseline=best)
    out["sentence"] = (
        f"The churn model's held-out selection was significantly worse than {name} in its backtest ({d.phrase()}, "
        f"mean over {n_cutoffs} cutoff{'s' if n_cutoffs != 1 else ''}), so {name} ships as the churn scorer instead; "
        "that choice was made on this same backtest, so the backtest is not an independent test of it."
    )
    return BASELINE_SCORER[best], out


LEAKAGE_CHECK_CUSTOMERS = 50_000
"""The leakage guard of :func:`fit_pipeline` recomputes the features of a seeded sample of this
many customers with and without the data after the first training cutoff (the feature code is
the same for every customer; the sample keeps the check's cost fixed on any log)."""


def _customer_sample(tx: pd.DataFrame, k: int, seed: int) -> pd.DataFrame:
    """The rows of a seeded sample of ``k`` customers (all rows when there are fewer)."""
    from churnml.io import CUSTOMER_ID
    from churnml.sampling import sample_mask

    codes, ids = pd.factorize(tx[CUSTOMER_ID], sort=False)
    if len(ids) <= k:
        return tx
    keep = sample_mask(ids, k, seed)
    return tx.loc[keep[codes]]


def _snapshot_for_reference(store, value, model, as_of) -> pd.DataFrame:
    """The features the shipped model sees at ``as_of`` on the training data."""
    tmp = ChurnPipeline(store.config, value, model, as_of, {})
    feats = store.snapshot(as_of)
    if store.config.churn.lookback_days:
        feats = feats.loc[feats["recency_days"] <= store.config.churn.lookback_days]
    return tmp.add_btyd(feats)[model.feature_names_]


_PSI_BINS = 10


def feature_reference(features: pd.DataFrame) -> dict[str, Any]:
    """Decile edges and shares of each numeric feature (missing values as their own bin); for a
    text/categorical feature the shares of its most common levels, of other values and of missing."""
    ref = {}
    for col in features.columns:
        if _is_text(features[col].dtype):
            counts = features[col].astype("string").value_counts(dropna=False)
            levels = [str(k) for k in counts.index if pd.notna(k)][:_PSI_BINS * 2]
            ref[col] = {"levels": levels, "shares": _level_shares(features[col], levels).tolist()}
            continue
        v = pd.to_numeric(features[col], errors="coerce").to_numpy(dtype=float)
        finite = v[np.isfinite(v)]
        if len(finite) < 2 * _PSI_BINS:
            continue
        edges = np.unique(np.quantile(finite, np.linspace(0, 1, _PSI_BINS + 1)[1:-1]))
        ref[col] = {"edges": edges.tolist(), "shares": _shares(v, edges).tolist()}
    return ref


def _is_text(dt) -> bool:
    return isinstance(dt, pd.CategoricalDtype) or pd.api.types.is_string_dtype(dt) or dt == object


def _level_shares(values: pd.Series, levels: list[str]) -> np.ndarray:
    """Shares of each level, then of any other value, then of missing values."""
    v = values.astype("string")
    missing = v.isna().to_numpy()
    known = v.isin(levels).to_numpy() & ~missing
    pos = pd.Index(levels).get_indexer(v[known].astype(str))
    counts = np.bincount(pos, minlength=len(levels)).astype(float)
    counts = np.append(counts, [float((~known & ~missing).sum()), float(missing.sum())])
    return counts / max(len(v), 1)


def _shares(v: np.ndarray, edges: np.ndarray) -> np.ndarray:
    finite = np.isfinite(v)
    counts = np.bincount(np.searchsorted(edges, v[finite], side="right"), minlength=len(edges) + 1).astype(float)
    counts = np.append(counts, float((~finite).sum()))
    return counts / max(len(v), 1)


def population_stability(reference: dict[str, Any], features: pd.DataFrame) -> pd.Series:
    """PSI = sum (actual - expected) x ln(actual / expected) over the reference bins, per feature
    (shares floored at 1e-4). Above 0.2 is the usual "significant shift" threshold."""
    out = {}
    for col, ref in reference.items():
        if col not in features.columns:
            continue
        e = np.maximum(np.asarray(ref["shares"]), 1e-4)
        if "levels" in ref:
            a = np.maximum(_level_shares(features[col], ref["levels"]), 1e-4)
        else:
            a = np.maximum(_shares(pd.to_numeric(features[col], errors="coerce").to_numpy(dtype=float), np.asarray(ref["edges"])), 1e-4)
        out[col] = float(np.sum((a - e) * np.log(a / e)))
    return pd.Series(out, dtype=float).sort_values(ascending=False)


def require_in_scope(scores: pd.DataFrame, as_of) -> None:
    if scores.empty:
        raise DataError(f"no customer with a purchase before {pd.Timestamp(as_of).date()}")
