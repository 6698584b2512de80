"""Churn labels at cutoffs, stacked point-in-time training data, the LightGBM churn model with
calibration on held-out time, its baselines, and the rolling-cutoff backtest.

Time plan for a model evaluated (or used) at cutoff ``E`` with horizon ``h`` and step ``s``:

* calibration/early-stopping cutoff ``V = E - h`` (its label window ends at ``E``);
* training cutoffs ``V - h - i*s`` for ``i < n_cutoffs`` (label windows end by ``V``);
* every feature at a cutoff uses data strictly before it, including the BG/NBD and Gamma-Gamma
  outputs, which are refitted per cutoff on pre-cutoff data only.

So no label window of a training row overlaps the evaluation window, and the backtest at the
last K complete cutoffs scores exactly what a model trained then would have scored.
"""

from __future__ import annotations

import dataclasses
import hashlib
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.validation import check_is_fitted

from churnml.config import Config
from churnml.errors import DataError
from churnml.evaluation import bootstrap_replicates, churn_metrics, percentile_intervals
from churnml.io import CUSTOMER_ID, TIMESTAMP, purchases
from churnml.sampling import customer_half
from churnml.value import rfm_from_features, value_features

__all__ = [
    "BASELINES",
    "ChurnBacktest",
    "ChurnModel",
    "FeatureStore",
    "TimePlan",
    "backtest_shortfall",
    "min_days_to_train",
    "churn_backtest",
    "churn_labels",
    "cutoff_plan",
    "fit_churn_model",
    "lgb_threads",
    "model_columns",
    "category_levels",
    "as_categories",
]

BASELINES = ("recency", "logistic_rfm", "btyd")
_THREADS = 0  # predictions use every core (results do not depend on the thread count)


PARALLEL_MIN_ROWS = 100_000
"""With ``n_jobs: 0`` (auto), LightGBM trains on every core from this many rows on and on one
thread below: on small data the threads cost more than they save (and much more on a busy
machine). The trees are the same either way (deterministic mode)."""


def lgb_threads(n_jobs: int | None, n_rows: int | None = None) -> int:
    """LightGBM's ``n_jobs`` for churnml's ``n_jobs`` setting: a positive value as is; 0 or None
    = every core (-1) for ``n_rows >= PARALLEL_MIN_ROWS`` (or unknown), else 1."""
    if n_jobs and n_jobs > 0:
        return int(n_jobs)
    return -1 if n_rows is None or n_rows >= PARALLEL_MIN_ROWS else 1
_NON_FEATURES = {"cutoff", "churned", "as_of"}


def churn_labels(transactions: pd.DataFrame, cutoff, horizon_days: int, lookback_days: int | None = None) -> pd.Series:
    """1 if a customer in scope at ``cutoff`` makes no purchase in ``[cutoff, cutoff + horizon_days)``.

    In scope: at least one purchase before ``cutoff`` (within ``lookback_days`` if given).
    Raises when the log does not cover the whole outcome window.
    """
    cut = pd.Timestamp(cutoff)
    end = cut + pd.Timedelta(days=horizon_days)
    last = purchases(transactions)[TIMESTAMP].max()
    if last < end - pd.Timedelta(days=1):
        raise DataError(f"the outcome window {cut.date()} + {horizon_days} days is not complete (log ends {last})")
    known = purchases(transactions, at=cut)  # what the snapshot at the cutoff counts
    ts = known[TIMESTAMP]
    lo = cut - pd.Timedelta(days=lookback_days) if lookback_days else ts.min()
    scope = pd.Index(known.loc[((ts < cut) & (ts >= lo)).to_numpy(), CUSTOMER_ID].unique())
    later = purchases(transactions, at=end)  # a purchase cancelled inside the window is no purchase
    lts = later[TIMESTAMP]
    buyers = later.loc[((lts >= cut) & (lts < end)).to_numpy(), CUSTOMER_ID].unique()
    return pd.Series((~scope.isin(buyers)).astype(np.int8), index=scope.astype(str), name="churned").sort_index()


_MIN_STEP_DAYS = 7


@dataclasses.dataclass(frozen=True)
class TimePlan:
    """When a churn model used at ``eval_cutoff`` learns, stops early and is calibrated.

    ``mode="time"``: training cutoffs end their label windows by ``valid_cutoff = eval - h``,
    whose customers (another time) stop the boosting and calibrate: nothing learnt overlaps the
    evaluation window and calibration is out of time. ``mode="customers"`` (logs too short for
    that): the last labelled cutoff ``eval - h`` is both the latest training cutoff and the
    validation cutoff, and customers are cross-fitted: a seeded hash puts each customer in the
    training or the validation fold for every cutoff, so early stopping and calibration see
    customers the booster never saw. ``step_days`` is the spacing used (denser than
    ``churn.cutoff_step_days`` when the configured spacing leaves fewer than ``n_cutoffs``).
    """

    eval_cutoff: pd.Timestamp
    mode: str
    valid_cutoff: pd.Timestamp
    train_cutoffs: list[pd.Timestamp]
    step_days: int

    # unpacking as (valid, train) keeps the older two-value form working
    def __iter__(self):
        return iter((self.valid_cutoff, self.train_cutoffs))

    def describe(self) -> dict[str, Any]:
        return {
            "time_plan": self.mode,
            "train_cutoffs": [str(t.date()) for t in self.train_cutoffs],
            "valid_cutoff": str(self.valid_cutoff.date()),
            "cutoff_step_days": self.step_days,
        }


def min_days_to_train(horizon_days: int, min_history_days: int) -> int:
    """Days of history before a cutoff that a churn model used at that cutoff needs: minimal
    history plus one horizon of labels (cross-fitted on customers); two horizons allow a
    separate validation time window."""
    return int(min_history_days + horizon_days)


def _spaced(latest: pd.Timestamp, earliest: pd.Timestamp, step_days: int, n: int) -> tuple[list[pd.Timestamp], int]:
    """Up to ``n`` cutoffs from ``latest`` back to ``earliest``; denser than ``step_days`` (down
    to a week) when the configured spacing leaves fewer than ``n``."""
    room = (latest - earliest).days
    step = step_days
    if n > 1 and room < (n - 1) * step_days:
        step = max(_MIN_STEP_DAYS, room // (n - 1)) if room >= _MIN_STEP_DAYS else step_days
    cuts = [latest - pd.Timedelta(days=i * step) for i in range(n)]
    return sorted(c for c in cuts if c >= earliest), step


def cutoff_plan(eval_cutoff, *, horizon_days: int, step_days: int, n_cutoffs: int, first: pd.Timestamp, min_history_days: int) -> TimePlan:
    """The :class:`TimePlan` of a model evaluated (or used) at ``eval_cutoff``: a separate
    validation time window when the log allows it, cross-fitting on customers otherwise.
    Raises :class:`DataError` naming the settings when even one horizon of labels after
    ``min_history_days`` does not fit."""
    E = pd.Timestamp(eval_cutoff)
    h = pd.Timedelta(days=horizon_days)
    earliest = pd.Timestamp(first).normalize() + pd.Timedelta(days=min_history_days)
    valid = E - h
    if valid - h >= earliest:
        train, step = _spaced(valid - h, earliest, step_days, n_cutoffs)
        return TimePlan(E, "time", valid, train, step)
    if valid >= earliest:
        train, step = _spaced(valid, earliest, step_days, n_cutoffs)
        return TimePlan(E, "customers", valid, train, step)
    have = (E - pd.Timestamp(first).normalize()).days
    need = min_days_to_train(horizon_days, min_history_days)
    raise DataError(
        f"the log (from {pd.Timestamp(first).date()}) is too short to train a churn model used at {E.date()}: "
        f"it has {have} days of history, a model needs churn.min_history_days ({min_history_days}) + "
        f"churn.horizon_days ({horizon_days}) = {need} days; add {need - have} more days of data or lower "
        "churn.horizon_days / churn.min_history_days"
    )


class FeatureStore:
    """Point-in-time features (snapshot + per-cutoff BTYD) and labels per cutoff of one log,
    each computed once: the churn model, its backtest and the value model share them.

    ``snapshot(cutoff)``: :func:`churnml.features.snapshot_features`; ``value_features(cutoff)``:
    :func:`churnml.value.value_features` (snapshot + a CLV model fitted on the data before the
    cutoff); ``features(cutoff)``: those plus ``btyd_p_no_purchase`` over ``churn.horizon_days``,
    within ``churn.lookback_days``; ``labels(cutoff)``: :func:`churn_labels`, computed on integer
    customer codes prepared once. Returned frames are shared: copy before changing them.
    """

    def __init__(self, transactions: pd.DataFrame, config: Config, *, events=None, customers=None):
        self.transactions = transactions
        self.config = config
        self.events = events
        self.customers = customers
        self._cache: dict[pd.Timestamp, pd.DataFrame] = {}
        self._value: dict[pd.Timestamp, tuple[pd.DataFrame, Any]] = {}
        self._snap: dict[pd.Timestamp, pd.DataFrame] = {}
        self._arrays: dict[str, Any] | None = None

    def snapshot(self, cutoff) -> pd.DataFrame:
        from churnml.features import snapshot_features

        cut = pd.Timestamp(cutoff)
        if cut in self._value:
            return self._value[cut][0]
        if cut not in self._snap:
            self._snap[cut] = snapshot_features(
                self.transactions, cut, events=self.events, customers=self.customers, config=self.config.features
            )
        return self._snap[cut]

    def value_features(self, cutoff) -> tuple[pd.DataFrame, Any]:
        cut = pd.Timestamp(cutoff)
        if cut not in self._value:
            self._value[cut] = value_features(
                self.transactions, cut, clv=self.config.clv, features=self.config.features,
                events=self.events, customers=self.customers, snapshot=self._snap.pop(cut, None),
            )
        return self._value[cut]

    def features(self, cutoff) -> pd.DataFrame:
        cut = pd.Timestamp(cutoff)
        if cut not in self._cache:
            feats, model = self.value_features(cut)
            feats = feats.copy()
            rfm = rfm_from_features(feats, self.config.clv.time_unit)
            feats["btyd_p_no_purchase"] = model.probability_no_purchase(rfm, self.config.churn.horizon_days)
            if self.config.churn.lookback_days:
                feats = feats.loc[feats["recency_days"] <= self.config.churn.lookback_days]
            self._cache[cut] = feats
        return self._cache[cut]

    def _prepared(self) -> dict[str, Any]:
        """Customer codes, times (ns) and purchase flags of the log, once."""
        if self._arrays is None:
            from churnml.features import _as_ns
            from churnml.io import IS_RETURN

            tx = self.transactions
            codes, uniques = pd.factorize(tx[CUSTOMER_ID].astype(str), sort=False)
            ns = _as_ns(tx[TIMESTAMP])
            pur = ~tx[IS_RETURN].to_numpy(dtype=bool) if IS_RETURN in tx.columns else np.ones(len(tx), dtype=bool)
            self._arrays = {"codes": codes, "ids": pd.Index(uniques).astype(str), "ns": ns, "pur": pur}
        return self._arrays

    def labels(self, cutoff) -> pd.Series:
        """:func:`churn_labels` at ``cutoff`` (same values, same errors), vectorised on codes."""
        from churnml.features import _as_ns
        from churnml.io import cancelled_before

        c = self.config.churn
        a = self._prepared()
        cut = pd.Timestamp(cutoff)
        end = cut + pd.Timedelta(days=c.horizon_days)
        cut_ns, end_ns = (int(_as_ns(pd.Series([t]))[0]) for t in (cut, end))
        pur, ns, codes = a["pur"], a["ns"], a["codes"]
        if not pur.any() or ns[pur].max() < end_ns - 86_400 * 10**9:
            return churn_labels(self.transactions, cut, c.horizon_days, c.lookback_days)  # raises the same error
        before = pur & ~cancelled_before(self.transactions, cut) & (ns < cut_ns)
        if c.lookback_days:
            before &= ns >= cut_ns - c.lookback_days * 86_400 * 10**9
        n = len(a["ids"])
        in_scope = np.zeros(n, dtype=bool)
        in_scope[codes[before]] = True
        window = pur & ~cancelled_before(self.transactions, end) & (ns >= cut_ns) & (ns < end_ns)
        bought = np.zeros(n, dtype=bool)
        bought[codes[window]] = True
        scope = np.flatnonzero(in_scope)
        return pd.Series((~bought[scope]).astype(np.int8), index=a["ids"][scope], name="churned").sort_index()

    def labelled(self, cutoff, rows: np.ndarray | None = None) -> pd.DataFrame:
        """:meth:`features` with ``churned`` and ``cutoff`` columns (only ``rows``, a mask, if given)."""
        feats = self.features(cutoff)
        feats = feats.loc[rows] if rows is not None else feats.copy()
        y = self.labels(cutoff)
        feats["churned"] = y.reindex(feats.index).fillna(1).astype(np.int8).to_numpy()
        feats["cutoff"] = pd.Timestamp(cutoff)
        return feats

    def stacked(self, cutoffs, fraction: float = 1.0, seed=0) -> pd.DataFrame:
        """Labelled rows of every cutoff, stacked; with ``fraction < 1`` only the customers of a
        seeded sample of about that share (the same customers at every cutoff,
        :func:`churnml.sampling.fraction_mask`)."""
        from churnml.sampling import fraction_mask

        parts = []
        for c in cutoffs:
            rows = fraction_mask(self.features(c).index, fraction, seed) if fraction < 1 else None
            parts.append(self.labelled(c, rows))
        return pd.concat(parts)


MAX_CATEGORIES = 50
"""A text column (a customer attribute such as Country) becomes a LightGBM categorical when it has
at most this many distinct values; more (names, e-mails, free text) is not a category and the
column is left out, recorded in ``dropped_features_``."""


def _is_text(dt) -> bool:
    return isinstance(dt, pd.CategoricalDtype) or pd.api.types.is_string_dtype(dt) or dt == object


def model_columns(frame: pd.DataFrame) -> list[str]:
    """Feature columns of a feature frame: numeric, boolean and text/categorical (customer
    attributes), without labels and keys."""
    cols = []
    for c in frame.columns:
        if c in _NON_FEATURES:
            continue
        dt = frame[c].dtype
        if pd.api.types.is_numeric_dtype(dt) or pd.api.types.is_bool_dtype(dt) or _is_text(dt):
            cols.append(c)
    return cols


def category_levels(frame: pd.DataFrame, columns: list[str], max_categories: int = MAX_CATEGORIES) -> tuple[dict[str, list[str]], dict[str, str]]:
    """(levels of each usable text column, reason per text column left out). Levels are the
    sorted distinct non-missing values as strings; a column with more than ``max_categories``
    of them, or with a distinct value on more than half of the rows, is left out."""
    levels: dict[str, list[str]] = {}
    dropped: dict[str, str] = {}
    for c in columns:
        if c not in frame.columns or not _is_text(frame[c].dtype):
            continue
        values = frame[c].dropna().astype(str)
        cats = sorted(values.unique())
        if len(cats) > max_categories or (len(values) >= 20 and len(cats) > 0.5 * len(values)):
            dropped[c] = f"text column with {len(cats):,} distinct values (more than {max_categories}, or one per customer): not a category"
        elif cats:
            levels[c] = cats
        else:
            dropped[c] = "text column with no values"
    return levels, dropped


def as_categories(frame: pd.DataFrame, levels: dict[str, list[str]]) -> pd.DataFrame:
    """``frame`` with each column of ``levels`` as a pandas categorical on exactly those levels
    (values unseen in training become missing, which LightGBM routes like a missing value)."""
    out = frame.copy()
    for c, cats in levels.items():
        vals = out[c].astype("string")
        vals = vals.where(vals.isin(cats), pd.NA).astype(object).where(vals.notna() & vals.isin(cats), None)
        out[c] = pd.Categorical(vals, categories=cats)
    return out


_half = customer_half  # the old private name, kept for code written against it


RECENCY = "recency_days"


def _recency_score(X: pd.DataFrame) -> np.ndarray:
    """The naive churn score: log(1 + days since the last purchase)."""
    return np.log1p(np.clip(X[RECENCY].to_numpy(dtype=float), 0, None))


def _logit(p) -> np.ndarray:
    """log(p / (1 - p)), clipped only where float precision ends (so near-certain customers keep their order)."""
    p = np.clip(np.asarray(p, dtype=float), 1e-15, 1 - 1e-15)
    return np.log(p) - np.log1p(-p)


class ChurnModel(BaseEstimator, ClassifierMixin):
    """LightGBM churn classifier stacked with the BG/NBD prior and calibrated on held-out time.

    * LightGBM (scikit-learn API) learns churn from the snapshot features (BTYD outputs among
      them); boosting stops early on half of the validation cutoff's customers (a later cutoff
      than any training row).
    * On the same half, a logistic stacker weighs LightGBM's log-odds against the log-odds of
      ``prior`` (BG/NBD's P(no purchase in the horizon), refitted per cutoff), so what LightGBM
      learnt that does not carry over to a later time is shrunk towards the structural model.
    * On the other half, the stacked score is compared with the prior alone, the naive recency
      score and logistic regression on log RFM + tenure (fitted on the training rows: the
      backtest's ``logistic_rfm`` baseline) by ROC AUC: the best is kept (``chosen_``; LightGBM on
      a tie), so a LightGBM that loses to any baseline on held-out customers is never shipped
      silently; the kept score is calibrated (smoothed isotonic or Platt) into probabilities.

    Parameters mirror ``churn.*`` in the config; ``seed`` fixes bagging and the customer halves;
    ``n_jobs`` is LightGBM's thread count (0 = every core): deterministic mode makes the fitted
    trees the same for any value. ``select``: ``"auto"`` (the held-out choice above) or a scorer
    to ship whatever the held-out AUCs say (``"lightgbm"``, ``"prior"``, ``"recency"``,
    ``"logistic_rfm"``; :func:`churnml.pipeline.fit_pipeline` uses it when the backtest shows a
    baseline significantly ahead of the held-out choice).

    Text columns (customer attributes such as Country) enter LightGBM as categoricals
    (``categories_``: levels seen in training); text columns that are identifiers rather than
    categories are left out and listed in ``dropped_features_`` with the reason.

    Attributes: ``feature_names_``, ``categories_``, ``dropped_features_``, ``booster_`` (fitted ``LGBMClassifier``),
    ``best_iteration_``, ``stacker_``, ``chosen_`` ("lightgbm", "prior", "recency" or
    "logistic_rfm"), ``selection_auc_`` (held-out AUC of each), ``rfm_logit_`` (the logistic RFM
    pipeline), ``calibrator_``, ``classes_``; for reason codes (see
    :meth:`shipped_contributions`) ``prior_ref_``, ``recency_ref_`` and ``rfm_ref_`` (mean logit of
    the prior, mean recency score and mean log1p RFM row at the validation cutoff: the reference
    customer) and ``typical_`` (median of
    each numeric feature there, in the feature's units).
    """

    select = "auto"  # models pickled before ``select`` existed keep a value for get_params

    def __init__(self, *, n_estimators: int = 1000, learning_rate: float = 0.03, num_leaves: int = 15,
                 max_depth: int = 5, min_child_samples: int = 50, early_stopping_rounds: int = 50,
                 calibration: str = "isotonic", prior: str | None = "btyd_p_no_purchase", seed: int = 42,
                 n_jobs: int = 0, select: str = "auto"):
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.num_leaves = num_leaves
        self.max_depth = max_depth
        self.min_child_samples = min_child_samples
        self.early_stopping_rounds = early_stopping_rounds
        self.calibration = calibration
        self.prior = prior
        self.seed = seed
        self.n_jobs = n_jobs
        self.select = select

    def _matrix(self, X: pd.DataFrame) -> pd.DataFrame:
        missing = [c for c in self.feature_names_ if c not in X.columns]
        if missing:
            from churnml.errors import ModelError

            raise ModelError(f"the data lacks feature column(s) the model was trained on: {missing}")
        M = as_categories(X[self.feature_names_], self.categories_)
        for c in M.columns:
            if c not in self.categories_:
                M[c] = M[c].astype(float)
        return M

    def _prior(self, X: pd.DataFrame) -> np.ndarray:
        return _logit(X[self.prior]) if self.prior else np.zeros(len(X))

    def fit(self, X: pd.DataFrame, y, *, X_valid: pd.DataFrame, y_valid) -> "ChurnModel":
        import lightgbm as lgb
        from sklearn.metrics import roc_auc_score

        cols = model_columns(X)
        self.categories_, self.dropped_features_ = category_levels(X, cols)
        self.feature_names_ = [c for c in cols if c not in self.dropped_features_]
        y = np.asarray(y, dtype=int)
        y_valid = np.asarray(y_valid, dtype=int)
        stop = customer_half(X_valid.index, self.seed)
        if stop.all() or not stop.any():
            stop = np.arange(len(X_valid)) % 2 == 0
        if len(np.unique(y)) < 2 or len(np.unique(y_valid[stop])) < 2:
            raise DataError(
                f"the churn model cannot be trained: {'the training rows' if len(np.unique(y)) < 2 else 'the validation customers'} "
                f"all have the same outcome (churn rate {float(np.mean(y if len(np.unique(y)) < 2 else y_valid[stop])):.2f}); "
                "choose another churn.horizon_days (a horizon near the length of the log leaves no one who buys again, "
                "or no one who stops) or use a longer log"
            )
        self.booster_ = lgb.LGBMClassifier(
            objective="binary", n_estimators=self.n_estimators, learning_rate=self.learning_rate,
            num_leaves=self.num_leaves, max_depth=self.max_depth, min_child_samples=self.min_child_samples,
            subsample=0.8, subsample_freq=1,
            colsample_bytree=0.8, reg_lambda=1.0, random_state=self.seed, deterministic=True, force_row_wise=True,
            n_jobs=lgb_threads(self.n_jobs, len(X)), verbose=-1,
        )
        Xv = self._matrix(X_valid)
        prior_v = self._prior(X_valid)
        import inspect

        if "eval_X" in inspect.signature(self.booster_.fit).parameters:  # LightGBM >= 4.6
            eval_kw = {"eval_X": (Xv[stop],), "eval_y": (y_valid[stop],)}
        else:
            eval_kw = {"eval_set": [(Xv[stop], y_valid[stop])]}
        self.booster_.fit(
            self._matrix(X), y, eval_metric="binary_logloss",
            callbacks=[lgb.early_stopping(self.early_stopping_rounds, verbose=False)], **eval_kw,
        )
        self.best_iteration_ = int(self.booster_.best_iteration_ or self.n_estimators)
        boosted = self._boosted(Xv, prior_v)
        self.stacker_ = LogisticRegression().fit(np.column_stack([boosted, prior_v])[stop], y_valid[stop])
        stacked = self._stacked(boosted, prior_v)
        hold = ~stop
        both = 0 < y_valid[hold].mean() < 1
        scores = {"lightgbm": stacked, "prior": prior_v}
        if RECENCY in X_valid.columns:
            scores["recency"] = _recency_score(X_valid)
        self.rfm_logit_ = None
        if all(c in X.columns and c in X_valid.columns for c in _LOGIT_COLS):
            # the logistic RFM baseline of the backtest, on the same training rows: a candidate too
            self.rfm_logit_ = _rfm_logit(self.seed).fit(_rfm_matrix(X), y)
            scores["logistic_rfm"] = self.rfm_logit_.decision_function(_rfm_matrix(X_valid))
        self.selection_auc_ = {
            k: float(roc_auc_score(y_valid[hold], v[hold])) if both and (k != "prior" or self.prior) else float("nan")
            for k, v in scores.items()
        }
        if self.select == "auto":
            # LightGBM stays unless a simpler scorer beats it on the held-out customers
            self.chosen_ = max(self.selection_auc_, key=lambda k: (np.nan_to_num(self.selection_auc_[k], nan=-1.0), k == "lightgbm"))
        elif self.select in scores:
            self.chosen_ = self.select
        else:
            raise ValueError(f"select={self.select!r}: use 'auto' or one of {sorted(scores)} (the scorers this data allows)")
        score = scores[self.chosen_]
        self.calibrator_ = _fit_calibrator(self.calibration, score[hold], y_valid[hold])
        self.classes_ = np.array([0, 1])
        # the reference customer of the reason codes (see shipped_contributions): mean log-odds of
        # the prior and mean recency score at the validation cutoff, and typical (median) features
        self.prior_ref_ = float(np.mean(prior_v)) if self.prior and len(prior_v) else 0.0
        self.recency_ref_ = float(np.nanmean(scores["recency"])) if "recency" in scores and len(X_valid) else 0.0
        self.rfm_ref_ = _rfm_matrix(X_valid).mean(axis=0) if self.rfm_logit_ is not None and len(X_valid) else None
        num = [c for c in model_columns(X_valid) if pd.api.types.is_numeric_dtype(X_valid[c].dtype)
               and not pd.api.types.is_bool_dtype(X_valid[c].dtype)]
        self.typical_ = {c: float(v) for c, v in X_valid[num].median().items() if pd.notna(v)}
        if {"frequency", "tenure_days"} <= set(X_valid.columns) and len(X_valid):
            # the reasons' "typical" purchases (days with an order) per year of tenure
            rate = (X_valid["frequency"] + 1) / np.maximum(X_valid["tenure_days"], 1.0) * 365.25
            if rate.notna().any():
                self.typical_["purchase_days_per_year"] = float(rate.median())
        return self

    def _boosted(self, M: pd.DataFrame, prior: np.ndarray) -> np.ndarray:
        """Log-odds of the LightGBM model."""
        return self.booster_.predict(M, raw_score=True, num_iteration=self.best_iteration_, num_threads=_THREADS)

    def _stacked(self, boosted: np.ndarray, prior: np.ndarray) -> np.ndarray:
        return self.stacker_.decision_function(np.column_stack([boosted, prior]))

    def decision_function(self, X: pd.DataFrame) -> np.ndarray:
        """Uncalibrated log-odds of churn of the chosen scorer."""
        check_is_fitted(self, "calibrator_")
        prior = self._prior(X)
        if self.chosen_ == "prior":
            return prior
        if self.chosen_ == "recency":
            return _recency_score(X)
        if self.chosen_ == "logistic_rfm":
            return self.rfm_logit_.decision_function(_rfm_matrix(X))
        return self._stacked(self._boosted(self._matrix(X), prior), prior)

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        """Calibrated [P(stay), P(churn)] per row."""
        p = _apply_calibrator(self.calibrator_, self.decision_function(X))
        return np.column_stack([1 - p, p])

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return (self.predict_proba(X)[:, 1] >= 0.5).astype(int)

    def contributions(self, X: pd.DataFrame, method: str = "shap", *, leaves: np.ndarray | None = None) -> pd.DataFrame:
        """Per-customer contributions of each feature to LightGBM's log-odds of churn; they add
        up (with ``bias``) to the trees' raw score.

        ``method="shap"``: LightGBM ``pred_contrib`` (TreeSHAP, exact Shapley values; about
        0.2 ms per customer). ``method="path"``: the decision-path attribution (Saabas): each
        split on the way to a customer's leaf credits its feature with the change in the node's
        expected value; the same cost as a prediction, for batch scoring of millions.
        ``leaves``: the leaf of every row in every tree (:meth:`leaves`) if already computed.
        """
        check_is_fitted(self, "booster_")
        if method == "shap":
            c = self.booster_.predict(self._matrix(X), pred_contrib=True, num_iteration=self.best_iteration_, num_threads=_THREADS)
        elif method == "path":
            c = self._path_contributions(self.leaves(X) if leaves is None else leaves)
        else:
            raise ValueError("method must be 'shap' or 'path'")
        return pd.DataFrame(c, index=X.index, columns=[*self.feature_names_, "bias"])

    def _reference_score(self, X: pd.DataFrame, chosen: str, lgb_bias: float = 0.0) -> float:
        """The chosen scorer's decision value (uncalibrated log-odds) of the reference customer:
        the mean over the validation cutoff (the scored rows ``X`` for models saved before
        references were stored)."""
        prior_ref = getattr(self, "prior_ref_", None)
        if prior_ref is None:
            prior_ref = float(np.mean(self._prior(X))) if len(X) else 0.0
        if chosen == "prior":
            return prior_ref
        if chosen == "recency":
            ref = getattr(self, "recency_ref_", None)
            return float(np.mean(_recency_score(X))) if ref is None and len(X) else float(ref or 0.0)
        if chosen == "logistic_rfm":
            return float(self.rfm_logit_.decision_function(self.rfm_ref_.reshape(1, -1))[0])
        w_boost, w_prior = (float(w) for w in self.stacker_.coef_[0])
        return w_boost * lgb_bias + w_prior * prior_ref + float(self.stacker_.intercept_[0])

    def decision_contributions(self, X: pd.DataFrame, method: str = "shap", *, leaves: np.ndarray | None = None) -> pd.DataFrame:
        """Per-customer contributions of each feature to the chosen scorer's uncalibrated
        log-odds (:meth:`decision_function`), relative to the reference customer; ``base`` is the
        reference's decision value, and each row adds up to the customer's decision value.

        * ``chosen_ == "lightgbm"``: the stacker weight of LightGBM times LightGBM's contributions
          (``method``, see :meth:`contributions`), plus the stacker weight of the prior times
          ``logit(prior) - mean logit(prior)`` credited to the prior column (``btyd_p_no_purchase``);
          base = weight x LightGBM's expected log-odds + weight x mean logit(prior) + intercept.
        * ``"prior"``: everything to the prior column (BG/NBD's view of recency and frequency).
        * ``"recency"``: everything to ``recency_days``.
        * ``"logistic_rfm"``: each RFM column gets its weight x (its log1p value - the reference's).

        Columns: ``feature_names_`` (plus the prior or ``recency_days`` if not among them), ``base``.
        """
        check_is_fitted(self, "calibrator_")
        if method not in ("shap", "path"):
            raise ValueError("method must be 'shap' or 'path'")
        chosen = self.chosen_
        cols = list(self.feature_names_)
        extras = [self.prior if chosen in ("lightgbm", "prior") else None, RECENCY if chosen == "recency" else None]
        if chosen == "logistic_rfm":
            extras += _LOGIT_COLS
        for extra in extras:
            if extra and extra not in cols:
                cols.append(extra)
        D = np.zeros((len(X), len(cols) + 1))
        if chosen == "lightgbm":
            lgb = self.contributions(X, method=method, leaves=leaves).to_numpy()
            w_boost, w_prior = (float(w) for w in self.stacker_.coef_[0])
            bias = float(lgb[0, -1]) if len(lgb) else 0.0
            D[:, : len(self.feature_names_)] = w_boost * lgb[:, :-1]
            if self.prior:
                ref = getattr(self, "prior_ref_", None)
                lp = self._prior(X)
                D[:, cols.index(self.prior)] += w_prior * (lp - (np.mean(lp) if ref is None else ref))
            D[:, -1] = self._reference_score(X, chosen, bias)
        elif chosen == "prior":
            base = self._reference_score(X, chosen)
            if self.prior:
                D[:, cols.index(self.prior)] = self._prior(X) - base
            D[:, -1] = base
        elif chosen == "logistic_rfm":
            # linear on log1p of the RFM columns: weight / scale x (log1p(x) - reference), exactly
            scaler, lr = self.rfm_logit_[0], self.rfm_logit_[-1]
            w = lr.coef_[0] / scaler.scale_
            M = _rfm_matrix(X)
            for j, c in enumerate(_LOGIT_COLS):
                D[:, cols.index(c)] = w[j] * (M[:, j] - self.rfm_ref_[j])
            D[:, -1] = self._reference_score(X, chosen)
        else:
            base = self._reference_score(X, chosen)
            D[:, cols.index(RECENCY)] = _recency_score(X) - base
            D[:, -1] = base
        return pd.DataFrame(D, index=X.index, columns=[*cols, "base"])

    def shipped_contributions(self, X: pd.DataFrame, method: str = "shap", *, proba=None,
                              leaves: np.ndarray | None = None) -> pd.DataFrame:
        """Per-customer contributions of each feature to the log-odds of the SHIPPED churn
        probability, ``logit(predict_proba(X)[:, 1])``, whatever scorer was chosen: each row adds
        up (with ``base``) to that log-odds exactly (up to float rounding, ~1e-12).

        ``base`` is the log-odds of the reference customer: the calibrated probability of the
        reference's decision value (the population mean at the validation cutoff; see
        :meth:`decision_contributions`). A customer's decision-scale contributions ``D`` are all
        multiplied by the same ``s = (logit(p) - base) / sum(D)``, the slope of the (monotone
        increasing) calibration between the reference and the customer, so ``s >= 0``: every
        sign survives, a positive contribution raises the shipped risk above the reference's, and
        the order of the drivers is the decision scale's. A customer at the reference
        (``|sum(D)| < 1e-9``) gets zero contributions and ``base`` = their own log-odds.

        ``proba``: the shipped probabilities of ``X`` if already computed (batch scoring passes
        them, saving a prediction); ``method``: ``"shap"`` or ``"path"`` (see :meth:`contributions`).
        Vectorised: the cost is LightGBM's attribution (none when ``chosen_`` is not LightGBM).
        """
        D = self.decision_contributions(X, method=method, leaves=leaves)
        p = self.predict_proba(X)[:, 1] if proba is None else np.asarray(proba, dtype=float)
        if len(p) != len(X):
            raise ValueError(f"proba has {len(p)} values for {len(X)} rows")
        L = _logit(p)
        d = D.to_numpy()
        feats = d[:, :-1]
        ref = float(d[0, -1]) if len(d) else 0.0
        base = float(_logit(_apply_calibrator(self.calibrator_, np.array([ref])))[0])
        S = feats.sum(axis=1)
        delta = L - base
        moved = (np.abs(S) >= 1e-9) & (np.sign(S) == np.sign(delta))
        s = np.where(moved, delta / np.where(moved, S, 1.0), 0.0)
        out = np.empty_like(d)
        out[:, :-1] = feats * s[:, None]
        out[:, -1] = np.where(moved, base, L)
        return pd.DataFrame(out, index=X.index, columns=D.columns)

    def predict_proba_and_contributions(self, X: pd.DataFrame, method: str = "path") -> tuple[np.ndarray, pd.DataFrame]:
        """``(predict_proba(X)[:, 1], shipped_contributions(X, method))`` in one go: with
        ``method="path"`` the trees are walked once (the leaves give both the log-odds, summed
        in LightGBM's order, and the path attribution), the batch-scoring fast path."""
        check_is_fitted(self, "calibrator_")
        if self.chosen_ == "lightgbm" and method == "path":
            leaves = self.leaves(X)
            prior = self._prior(X)
            p = _apply_calibrator(self.calibrator_, self._stacked(self._raw_from_leaves(leaves), prior))
            return p, self.shipped_contributions(X, method, proba=p, leaves=leaves)
        p = self.predict_proba(X)[:, 1]
        return p, self.shipped_contributions(X, method, proba=p)

    def leaves(self, X: pd.DataFrame) -> np.ndarray:
        """The leaf index of every row in every tree used (rows x trees, int32)."""
        check_is_fitted(self, "booster_")
        out = self.booster_.predict(self._matrix(X), pred_leaf=True, num_iteration=self.best_iteration_, num_threads=_THREADS)
        return np.asarray(out, dtype=np.int32).reshape(len(X), -1)

    def _leaf_values(self) -> list[np.ndarray]:
        """Per tree, the output of each leaf (by leaf index)."""
        self._walk_trees()
        return self.leaf_values_

    def _raw_from_leaves(self, leaves: np.ndarray) -> np.ndarray:
        """LightGBM's raw score from the leaves: the tree outputs summed in tree order, as
        LightGBM sums them (the same float64 result)."""
        values = self._leaf_values()
        out = np.empty(len(leaves))
        for start in range(0, len(leaves), 8192):  # blocks of rows, trees contiguous
            lv = np.ascontiguousarray(leaves[start : start + 8192].T)
            acc = np.zeros(lv.shape[1])
            for t, v in enumerate(values):
                acc += v[lv[t]]
            out[start : start + 8192] = acc
        return out

    def _path_tables(self) -> list[tuple[np.ndarray, np.ndarray, float]]:
        """Per tree: (feature columns used, leaf x used-feature contribution table, bias)."""
        self._walk_trees()
        return self.path_tables_

    def _walk_trees(self) -> None:
        """One walk of the dumped trees for both per-leaf tables: ``leaf_values_`` (each leaf's
        output, exact) and ``path_tables_`` (the path attribution of each leaf)."""
        if getattr(self, "path_tables_", None) is not None and getattr(self, "leaf_values_", None) is not None:
            return
        dump = self.booster_.booster_.dump_model(num_iteration=self.best_iteration_)
        n_feat = len(self.feature_names_)
        tables, values = [], []
        for tree in dump["tree_info"]:
            root = tree["tree_structure"]
            if "leaf_index" in root or "split_feature" not in root:
                tables.append((np.array([], dtype=int), np.zeros((1, 0)), float(root.get("leaf_value", 0.0))))
                values.append(np.array([float(root["leaf_value"])]))
                continue
            rows: dict[int, np.ndarray] = {}
            leaf_value: dict[int, float] = {}

            def walk(node, acc):
                value = node.get("internal_value", node.get("leaf_value"))
                if "leaf_index" in node:
                    rows[node["leaf_index"]] = acc
                    leaf_value[node["leaf_index"]] = float(node["leaf_value"])
                    return
                for child in (node["left_child"], node["right_child"]):
                    step = acc.copy()
                    child_value = child.get("internal_value", child.get("leaf_value"))
                    step[node["split_feature"]] += child_value - value
                    walk(child, step)

            walk(root, np.zeros(n_feat))
            table = np.vstack([rows[i] for i in range(len(rows))])
            used = np.flatnonzero(np.any(table != 0, axis=0))
            tables.append((used, table[:, used], float(root["internal_value"])))
            values.append(np.array([leaf_value[i] for i in range(len(leaf_value))]))
        self.path_tables_ = tables
        self.leaf_values_ = values

    def _path_contributions(self, leaves: np.ndarray, block: int = 8192) -> np.ndarray:
        """Path attribution from the leaves, in blocks of rows whose accumulator stays in the
        CPU cache (each feature's column summed over the trees in tree order)."""
        tables = self._path_tables()
        n, k = len(leaves), len(self.feature_names_)
        out = np.empty((n, k + 1))
        bias = sum(b for _, _, b in tables)
        for start in range(0, n, block):
            lv = np.ascontiguousarray(leaves[start : start + block].T)
            acc = np.zeros((k + 1, lv.shape[1]))
            acc[-1] = bias
            for t, (used, table, _) in enumerate(tables):
                leaf = lv[t]
                for j, f in enumerate(used):
                    acc[f] += table[:, j][leaf]
            out[start : start + block] = acc.T
        return out

    def feature_importance(self) -> pd.Series:
        """Total gain per feature, largest first."""
        check_is_fitted(self, "booster_")
        imp = self.booster_.booster_.feature_importance(importance_type="gain", iteration=self.best_iteration_)
        return pd.Series(imp, index=self.feature_names_).sort_values(ascending=False)


class SmoothIsotonicCalibrator:
    """A smoothed isotonic map from a score to a probability: continuous, strictly increasing,
    never exactly 0 or 1.

    Fitting: the pool-adjacent-violators blocks of the isotonic fit; each block's churn rate is
    shrunk towards the overall rate, ``(sum y + prior x rate) / (n_block + prior)``, so a block
    of a few customers who all churned (or all stayed) gets no 0 or 1 (the shrunk rates are
    made monotone again, weighted by ``n_block + prior``). Each block becomes a knot at its mean
    score (block centre); a ramp of ``ramp`` (1e-4) of probability across the score range makes
    flat stretches strictly increasing; knots are scaled into ``[2 eps, 1 - 2 eps]`` with
    ``eps = 1 / (2 n)``.

    Prediction: linear interpolation between knots; beyond the outer knots the map keeps rising
    (falling) by at most ``ramp`` towards an asymptote, never crossing ``[eps, 1 - eps]``, so
    distinct scores keep distinct probabilities and ties are the score's own ties. One
    ``np.interp`` per call (about 20 ms per million customers); plain arrays, so it pickles.
    """

    def __init__(self, prior: float = 1.0, ramp: float = 1e-4):
        self.prior = prior
        self.ramp = ramp

    def fit(self, score, y) -> "SmoothIsotonicCalibrator":
        from sklearn.isotonic import isotonic_regression

        score = np.asarray(score, dtype=float)
        y = np.asarray(y, dtype=float)
        ok = np.isfinite(score) & np.isfinite(y)
        score, y = score[ok], y[ok]
        n = len(y)
        if n == 0:
            raise ValueError("cannot fit a calibration on no data")
        rate = float(y.mean())
        self.eps_ = 1.0 / (2.0 * n)
        uniq, inv = np.unique(score, return_inverse=True)
        cnt = np.bincount(inv).astype(float)
        sy = np.bincount(inv, weights=y)
        fitted = isotonic_regression(sy / cnt, sample_weight=cnt, increasing=True)
        block = np.cumsum(np.r_[True, np.diff(fitted) != 0]) - 1
        nb = np.bincount(block, weights=cnt)
        syb = np.bincount(block, weights=sy)
        centre = np.bincount(block, weights=uniq * cnt) / nb
        shrunk = (syb + self.prior * rate) / (nb + self.prior)
        shrunk = isotonic_regression(shrunk, sample_weight=nb + self.prior, increasing=True)
        span = centre[-1] - centre[0]
        t = (centre - centre[0]) / span if span > 0 else np.zeros(len(centre))
        v = (1.0 - self.ramp) * np.clip(shrunk, 0.0, 1.0) + self.ramp * t
        eps = self.eps_
        self.x_ = centre
        self.p_ = 2 * eps + (1 - 4 * eps) * v
        # tails: total rise ``ramp`` (at most half the way to the bound), scale = score spread
        self.tail_low_ = min(self.ramp, (self.p_[0] - eps) / 2)
        self.tail_high_ = min(self.ramp, (1 - eps - self.p_[-1]) / 2)
        spread = float(np.std(score))
        self.tail_scale_ = spread if spread > 0 else 1.0
        return self

    def predict(self, score) -> np.ndarray:
        s = np.asarray(score, dtype=float)
        p = np.interp(s, self.x_, self.p_)
        lo = s < self.x_[0]
        if lo.any():
            d = self.x_[0] - s[lo]
            p[lo] = self.p_[0] - self.tail_low_ * d / (self.tail_scale_ + d)
        hi = s > self.x_[-1]
        if hi.any():
            d = s[hi] - self.x_[-1]
            p[hi] = self.p_[-1] + self.tail_high_ * d / (self.tail_scale_ + d)
        return p


class PlattCalibrator:
    """Platt scaling ``expit(a x score + b)`` (logistic regression on the score with Platt's
    smoothed targets, ``a`` kept positive so the ranking survives), squeezed into ``[eps, 1 - eps]`` with ``eps = 1 / (2 n)``;
    strictly increasing, also far beyond the calibration data."""

    def fit(self, score, y) -> "PlattCalibrator":
        score = np.asarray(score, dtype=float)
        y = np.asarray(y, dtype=int)
        ok = np.isfinite(score)
        score, y = score[ok], y[ok]
        n = len(y)
        if n == 0:
            raise ValueError("cannot fit a calibration on no data")
        self.eps_ = 1.0 / (2.0 * n)
        if 0 < y.mean() < 1:
            # Platt's targets: (N+ + 1) / (N+ + 2) for churners, 1 / (N- + 2) for the others, so
            # separable calibration data give a finite slope (each row enters as both classes)
            n_pos = int(y.sum())
            t = np.where(y == 1, (n_pos + 1) / (n_pos + 2), 1 / (n - n_pos + 2))
            lr = LogisticRegression(C=1e6).fit(
                np.r_[score, score].reshape(-1, 1), np.r_[np.ones(n, dtype=int), np.zeros(n, dtype=int)], sample_weight=np.r_[t, 1 - t]
            )
            self.a_, self.b_ = float(lr.coef_[0, 0]), float(lr.intercept_[0])
        else:
            self.a_, self.b_ = 0.0, float(_logit(y.mean()))
        if not self.a_ > 0:  # the score does not rank on the calibration data: nearly flat
            self.a_ = 1e-6
            self.b_ = float(_logit(np.clip(y.mean(), self.eps_, 1 - self.eps_))) - self.a_ * float(np.mean(score))
        return self

    def predict(self, score) -> np.ndarray:
        from scipy.special import expit

        z = self.a_ * np.asarray(score, dtype=float) + self.b_
        # beyond |z| = 20 (P < 2e-9) the log-odds bend towards +-30, where float64 still tells
        # probabilities apart: extreme scores keep distinct probabilities instead of a flat 1 - eps
        far = np.abs(z) > 20
        if far.any():
            d = np.abs(z[far]) - 20
            z[far] = np.sign(z[far]) * (20 + 10 * d / (1 + d))
        return self.eps_ + (1 - 2 * self.eps_) * expit(z)


def _fit_calibrator(kind: str, score: np.ndarray, y: np.ndarray):
    """Map from a log-odds score to a probability, continuous, strictly increasing and never 0 or
    1: ``"isotonic"``, a :class:`SmoothIsotonicCalibrator`; ``"sigmoid"``, a :class:`PlattCalibrator`."""
    if kind == "isotonic":
        return SmoothIsotonicCalibrator().fit(score, y)
    if kind == "sigmoid":
        return PlattCalibrator().fit(score, y)
    raise ValueError(f"unknown calibration {kind!r}: use 'isotonic' or 'sigmoid'")


_TIE_BREAK = 1e-6


def _apply_calibrator(cal, score: np.ndarray) -> np.ndarray:
    """Calibrated probabilities from a monotone score. Calibrators of this version are strictly
    increasing maps; models pickled by older versions hold a step-function ``IsotonicRegression``
    (ties inside a step broken by the score itself, a change of at most 1e-6) or a
    ``LogisticRegression``, and keep scoring as they did."""
    score = np.asarray(score, dtype=float)
    if isinstance(cal, (SmoothIsotonicCalibrator, PlattCalibrator)):
        return cal.predict(score)
    if isinstance(cal, IsotonicRegression):
        tie = 0.5 + np.arctan(score) / np.pi
        return cal.predict(score) * (1 - _TIE_BREAK) + _TIE_BREAK * tie  # strictly inside (0, 1)
    return cal.predict_proba(score.reshape(-1, 1))[:, 1]


_LOGIT_COLS = ["recency_days", "n_purchases", "total_spend", "tenure_days"]


def _rfm_matrix(frame: pd.DataFrame) -> np.ndarray:
    return np.log1p(np.clip(frame[_LOGIT_COLS].to_numpy(dtype=float), 0, None))


def _rfm_logit(seed: int = 42):
    """The logistic RFM baseline: standardised log1p(recency days, purchases, spend, tenure days)."""
    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000, random_state=seed))


def fit_baselines(train: pd.DataFrame, valid: pd.DataFrame, seed: int = 42) -> dict[str, Any]:
    """Baselines fitted on the same rows: recency alone (isotonic map of days since the last
    purchase to a probability, fitted on the validation cutoff), logistic regression on log RFM
    + tenure, and BG/NBD's P(no purchase in the horizon) (no fitting beyond the BTYD per cutoff)."""
    iso = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0).fit(valid["recency_days"], valid["churned"])
    logit = _rfm_logit(seed).fit(_rfm_matrix(train), train["churned"])
    return {"recency": iso, "logistic_rfm": logit}


def baseline_scores(baselines: dict[str, Any], frame: pd.DataFrame) -> dict[str, np.ndarray]:
    return {
        "recency": _apply_calibrator(baselines["recency"], frame["recency_days"].to_numpy(dtype=float)),
        "logistic_rfm": baselines["logistic_rfm"].predict_proba(_rfm_matrix(frame))[:, 1],
        "btyd": frame["btyd_p_no_purchase"].to_numpy(dtype=float),
    }


def fit_churn_model(store: FeatureStore, eval_cutoff, *, select: str = "auto") -> tuple[ChurnModel, dict[str, Any], dict[str, Any]]:
    """Train the churn model (and baselines) for use at ``eval_cutoff`` following its
    :class:`TimePlan`; return the model, the baselines and a description of the training data
    (plan, cutoffs, rows, churn rates). ``select``: :class:`ChurnModel`'s ``select``."""
    cfg = store.config
    c = cfg.churn
    first = store.transactions[TIMESTAMP].min()
    plan = cutoff_plan(
        eval_cutoff, horizon_days=c.horizon_days, step_days=c.cutoff_step_days, n_cutoffs=c.n_cutoffs,
        first=first, min_history_days=c.min_history_days,
    )
    rows_all = sum(len(store.features(t)) for t in plan.train_cutoffs)
    fraction = 1.0
    if c.max_train_rows is not None and rows_all > c.max_train_rows:
        # a seeded sample of customers, the same ones at every cutoff, with about max_train_rows rows
        fraction = c.max_train_rows / rows_all
    train = store.stacked(plan.train_cutoffs, fraction=fraction, seed=f"rows-{c.seed}")
    valid = store.labelled(plan.valid_cutoff)
    if plan.mode == "customers":  # cross-fit: validation customers never train the booster
        in_valid = customer_half(valid.index, f"fold-{c.seed}")
        valid = valid.loc[in_valid]
        train = train.loc[~train.index.isin(valid.index)]
    if len(valid) < 2 or valid["churned"].nunique() < 2 or train["churned"].nunique() < 2:
        raise DataError(
            f"churn model at {pd.Timestamp(eval_cutoff).date()}: the training ({len(train)} rows) or validation "
            f"({len(valid)} rows) data hold a single class (churn rate {train['churned'].mean():.2f} / "
            f"{valid['churned'].mean():.2f}); lengthen or shorten churn.horizon_days"
        )
    model = ChurnModel(
        n_estimators=c.n_estimators, learning_rate=c.learning_rate, num_leaves=c.num_leaves, max_depth=c.max_depth,
        min_child_samples=c.min_child_samples, early_stopping_rounds=c.early_stopping_rounds,
        calibration=c.calibration, seed=c.seed, n_jobs=cfg.n_jobs, select=select,
    ).fit(train, train["churned"], X_valid=valid, y_valid=valid["churned"])
    baselines = fit_baselines(train, valid, seed=c.seed)
    info = {
        **plan.describe(),
        "train_rows": int(rows_all),
        "train_rows_used": int(len(train)),
        "valid_rows": int(len(valid)),
        "train_churn_rate": float(train["churned"].mean()),
        "valid_churn_rate": float(valid["churned"].mean()),
        "best_iteration": model.best_iteration_,
        "chosen": model.chosen_,
        "selection_auc": model.selection_auc_,
        "categorical_features": sorted(model.categories_),
        "dropped_features": dict(model.dropped_features_),
    }
    return model, baselines, info


RECENT = "recent_"  # column prefix of the metrics on recently active customers


@dataclasses.dataclass
class ChurnBacktest:
    """Metrics per evaluated cutoff and scorer (``model`` and every baseline), and their mean.

    Columns of ``per_cutoff`` (index ``(cutoff, scorer)``): every metric of
    :func:`churnml.evaluation.churn_metrics` over all customers in scope; ``<m>_ci_low`` /
    ``<m>_ci_high``, customer-level bootstrap 95% intervals of ``roc_auc``, ``pr_auc`` and
    ``brier``; on the ``model`` row ``roc_auc_diff_vs_<baseline>`` (model minus baseline) and its
    paired-bootstrap interval; then all of these again prefixed ``recent_`` for the customers who
    bought within ``2 x churn.horizon_days`` before the cutoff (where retention decisions are made).

    ``summary`` (index scorer): the mean over cutoffs of every metric; its interval columns are
    intervals of that mean (each bootstrap resample draws the same customers at every cutoff).

    The ``model`` row is what would ship: :class:`ChurnModel` is trained at each cutoff as of
    then and picks its scorer (LightGBM stack, prior, recency, logistic RFM) with its own rule, on
    held-out customers of the validation cutoff one horizon *before* the backtest cutoff; the
    backtest judges that choice on the later, disjoint outcome window. Selection and judgement
    use different data (see :func:`churnml.sanity.churn_verdict`).
    """

    per_cutoff: pd.DataFrame  # index (cutoff, scorer)
    summary: pd.DataFrame  # index scorer: mean over cutoffs
    training: dict[str, dict[str, Any]]
    predictions: pd.DataFrame  # customer_id, cutoff, churned, recent, model, baselines, value
    bootstrap: dict[str, Any] = dataclasses.field(default_factory=dict)  # resamples, level, seed, recent_days

    def to_dict(self) -> dict[str, Any]:
        return {
            "summary": self.summary.to_dict("index"),
            "per_cutoff": {f"{c}|{s}": row for (c, s), row in self.per_cutoff.to_dict("index").items()},
            "training": self.training,
            "bootstrap": self.bootstrap,
        }


def backtest_cutoffs(transactions: pd.DataFrame, config: Config, as_of=None) -> list[pd.Timestamp]:
    """Up to ``churn.backtest_cutoffs`` cutoffs, ``churn.cutoff_step_days`` apart and ending at
    the last one whose outcome window is complete, at which a model can be trained (see
    :func:`cutoff_plan`); ascending, possibly empty (see :func:`backtest_shortfall`)."""
    c = config.churn
    end = (pd.Timestamp(as_of) if as_of is not None else transactions[TIMESTAMP].max().normalize() + pd.Timedelta(days=1))
    latest = end - pd.Timedelta(days=c.horizon_days)
    first = transactions[TIMESTAMP].min().normalize()
    need = pd.Timedelta(days=min_days_to_train(c.horizon_days, c.min_history_days))
    cuts = [latest - pd.Timedelta(days=i * c.cutoff_step_days) for i in range(c.backtest_cutoffs)]
    return sorted(t for t in cuts if t - first >= need)


def backtest_shortfall(transactions: pd.DataFrame, config: Config, as_of=None) -> str | None:
    """Why no backtest cutoff fits and how many more days of data would allow one, or None."""
    if backtest_cutoffs(transactions, config, as_of):
        return None
    c = config.churn
    end = (pd.Timestamp(as_of) if as_of is not None else transactions[TIMESTAMP].max().normalize() + pd.Timedelta(days=1))
    have = (end - transactions[TIMESTAMP].min().normalize()).days
    need = min_days_to_train(c.horizon_days, c.min_history_days) + c.horizon_days
    return (
        f"no churn backtest was possible: the log covers {have} days and a backtest needs "
        f"churn.min_history_days ({c.min_history_days}) + 2 x churn.horizon_days ({c.horizon_days}) = {need} days "
        f"({need - have} more days of data, or a shorter churn.horizon_days); the model was trained without one"
    )


def _subset_metrics(y: np.ndarray, p: np.ndarray, value: np.ndarray, c, keys) -> dict[str, float]:
    if len(y) == 0:
        return {k: (0.0 if k == "n" else float("nan")) for k in keys}
    return churn_metrics(y, p, value=value, contact_cost=c.contact_cost, offer_acceptance=c.offer_acceptance, top_k_share=c.top_k_share)


def churn_backtest(store: FeatureStore, cutoffs: list[pd.Timestamp] | None = None, *, n_resamples: int | None = None) -> ChurnBacktest:
    """Train at each cutoff as of then, score the customers in scope, compare with the actual
    churn: model and baselines, metrics from :func:`churnml.evaluation.churn_metrics` for all
    customers and (``recent_`` columns) for those who bought within ``2 x churn.horizon_days``
    before the cutoff, with customer-level bootstrap intervals (``n_resamples``, default
    ``churn.bootstrap_resamples``; 0 = none; seeded with ``churn.seed``). See :class:`ChurnBacktest`."""
    cfg = store.config
    c = cfg.churn
    B = int(getattr(c, "bootstrap_resamples", 200) if n_resamples is None else n_resamples)
    recent_days = 2 * c.horizon_days
    cutoffs = cutoffs or backtest_cutoffs(store.transactions, cfg)
    if not cutoffs:
        raise DataError(backtest_shortfall(store.transactions, cfg) or "no backtest cutoff")
    rows, preds, training = [], [], {}
    reps: dict[str, list] = {}
    for cut in cutoffs:
        model, baselines, info = fit_churn_model(store, cut)
        test = store.labelled(cut)
        scores = {"model": model.predict_proba(test)[:, 1], **baseline_scores(baselines, test)}
        y = test["churned"].to_numpy()
        value = test["btyd_value"].to_numpy()
        recent = test["recency_days"].to_numpy(dtype=float) <= recent_days
        ids = test.index.to_numpy()
        out = {name: {"cutoff": str(cut.date()), "scorer": name} for name in scores}
        keys = None
        for prefix, mask in (("", np.ones(len(y), dtype=bool)), (RECENT, recent)):
            ys, vs = y[mask], value[mask]
            sub = {name: p[mask] for name, p in scores.items()}
            for name, p in sub.items():
                m = _subset_metrics(ys, p, vs, c, keys)
                keys = keys or list(m)
                out[name].update({prefix + k: v for k, v in m.items()})
            for name in sub:
                if name != "model":
                    out["model"][f"{prefix}roc_auc_diff_vs_{name}"] = out["model"][f"{prefix}roc_auc"] - out[name][f"{prefix}roc_auc"]
            if B > 0:
                r = bootstrap_replicates(ys, sub, ids=ids[mask], reference="model", n_resamples=B, seed=c.seed)
                reps.setdefault(prefix, []).append(r)
                ci = percentile_intervals(r)
                for name in sub:
                    out[name].update({prefix + k: v for k, v in ci.loc[name].items() if pd.notna(v)})
        rows.extend(out.values())
        training[str(cut.date())] = info
        preds.append(pd.DataFrame({"cutoff": cut, "churned": y, "recent": recent, "value": value, **scores}, index=test.index))
    per = pd.DataFrame(rows).set_index(["cutoff", "scorer"])
    summary = per.groupby(level="scorer", sort=False).mean()
    for prefix, per_cut in reps.items():  # intervals of the mean over cutoffs, resample by resample
        mean_reps = {
            name: {m: np.mean([r[name][m] for r in per_cut], axis=0) for m in per_cut[0][name]} for name in per_cut[0]
        }
        ci = percentile_intervals(mean_reps)
        for name in ci.index:
            for col, v in ci.loc[name].items():
                if pd.notna(v):
                    summary.loc[name, prefix + col] = v
    meta = {"resamples": B, "level": 0.95, "seed": c.seed, "method": "customer-level Poisson bootstrap, percentile",
            "recent_days": recent_days}
    return ChurnBacktest(per, summary, training, pd.concat(preds), meta)
