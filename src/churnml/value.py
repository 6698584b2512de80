"""Customer value over a horizon: BTYD, a LightGBM value model, their blend, and the backtest
that chooses between them against the naive spreadsheet answer.

The naive baseline is the historical spend rate times the horizon:
``net_spend / max(tenure_days, 1) * horizon_days``. Every candidate is scored on the same
time split: features from data strictly before a cutoff, actual net spend in
``[cutoff, cutoff + horizon_days)``. Metrics: Spearman rank correlation with the actual spend,
top-decile capture (share of the actual spend that the top 10% by prediction bring),
mean absolute error and the ratio of predicted to actual total.
"""

from __future__ import annotations

import dataclasses
import warnings
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from churnml.clv import CLVModel, mean_discount
from churnml.config import CLVConfig, FeaturesConfig
from churnml.errors import DataError
from churnml.features import rfm_summary, snapshot_features
from churnml.io import AMOUNT, CUSTOMER_ID, TIMESTAMP, active_rows, purchases

__all__ = [
    "MLValueModel",
    "ValueBacktest",
    "clv_model_from_config",
    "rfm_at",
    "value_backtest",
    "value_features",
    "value_metrics",
    "value_targets",
]

_UNIT_MULT = {"W": 7, "D": 1}
CANDIDATES = ("naive", "btyd", "ml", "blend")
TOTAL_RATIO_BAND = (0.5, 2.0)
"""A candidate whose predicted total is off by more than 2x is not chosen by ``auto``: ranks
alone would ship a model whose currency figures are wrong."""


VALUE_MIN_HISTORY_DAYS = 90
"""History (days) a value model needs before its training cutoff."""
VALUE_MIN_HOLDOUT_DAYS = 56
"""Shortest holdout (days) worth a value backtest: eight weeks."""


def backtest_horizon(first, end, horizon_days: float) -> float | None:
    """The value backtest's horizon (days) on a log from ``first`` to ``end``: ``horizon_days``
    when two horizons plus :data:`VALUE_MIN_HISTORY_DAYS` fit (LightGBM is trained one horizon
    before the holdout), else the longest horizon that fits that way, else (naive vs BTYD only)
    the whole time after the minimal history; None below :data:`VALUE_MIN_HOLDOUT_DAYS`."""
    span = (pd.Timestamp(end) - pd.Timestamp(first).normalize()).days
    for room in ((span - VALUE_MIN_HISTORY_DAYS) // 2, span - VALUE_MIN_HISTORY_DAYS):
        if room >= VALUE_MIN_HOLDOUT_DAYS:
            return float(min(horizon_days, room))
    return None


def clv_model_from_config(cfg: CLVConfig, **overrides) -> CLVModel:
    """A :class:`CLVModel` with the config's parameters (``overrides`` win)."""
    params = dict(
        purchase_model=cfg.purchase_model, time_unit=cfg.time_unit, horizon_days=cfg.horizon_days,
        discount_rate=cfg.discount_rate, margin=cfg.margin, penalizer=cfg.penalizer,
        spend_penalizer=cfg.spend_penalizer, corr_threshold=cfg.corr_threshold, min_repeaters=cfg.min_repeaters,
        max_customers=cfg.max_fit_customers,
    )
    params.update(overrides)
    return CLVModel(**params)


def rfm_at(transactions: pd.DataFrame, cutoff, time_unit: str = "W") -> pd.DataFrame:
    """lifetimes-style RFM of purchases strictly before ``cutoff``, ``T`` measured to the cutoff
    day, in weeks (``"W"``: day-level purchases, durations / 7) or days (``"D"``)."""
    cut = pd.Timestamp(cutoff)
    pur = purchases(transactions, at=cut)
    before = pur.loc[pur[TIMESTAMP] < cut]
    if before.empty:
        raise DataError(f"no purchase before the cutoff {cut}")
    return rfm_summary(before, amount=AMOUNT, observation_end=cut, freq="D", freq_multiplier=_UNIT_MULT[time_unit])


def value_targets(transactions: pd.DataFrame, cutoff, horizon_days: float) -> pd.Series:
    """Actual net spend (purchases less returns, currency) per customer in
    ``[cutoff, cutoff + horizon_days)``; customers without activity are absent (0)."""
    cut = pd.Timestamp(cutoff)
    end = cut + pd.Timedelta(days=horizon_days)
    rows = active_rows(transactions, end)  # orders cancelled by the end of the window never happened
    ts = rows[TIMESTAMP]
    win = rows.loc[((ts >= cut) & (ts < end)).to_numpy()]
    return win.groupby(CUSTOMER_ID)[AMOUNT].sum()


def value_features(
    transactions: pd.DataFrame,
    cutoff,
    *,
    clv: CLVConfig,
    features: FeaturesConfig | None = None,
    events: pd.DataFrame | None = None,
    customers: pd.DataFrame | None = None,
    model: CLVModel | None = None,
    snapshot: pd.DataFrame | None = None,
) -> tuple[pd.DataFrame, CLVModel]:
    """Snapshot features at ``cutoff`` plus the BTYD outputs of a CLV model fitted on the same
    pre-cutoff data (or of the fitted ``model`` given, e.g. when scoring) (``btyd_p_alive``, ``btyd_expected_purchases``, ``btyd_expected_avg_spend``,
    ``btyd_value``: undiscounted expected spend over ``clv.horizon_days``). Returns the
    features and the fitted CLV model. ``snapshot``: the snapshot features at ``cutoff`` if
    already computed (not changed; a copy gets the BTYD columns)."""
    if snapshot is not None:
        feats = snapshot.copy()
    else:
        feats = snapshot_features(transactions, cutoff, events=events, customers=customers, config=features)
    rfm = rfm_from_features(feats, clv.time_unit)  # the snapshot already holds lifetimes' columns
    if model is None:
        model = clv_model_from_config(clv, discount_rate=0.0, margin=1.0)
        with warnings.catch_warnings():  # per-cutoff feature fits: the shipped model's fit warns once
            warnings.simplefilter("ignore", UserWarning)
            model.fit(rfm)
    else:
        model = clone_with(model, discount_rate=0.0, margin=1.0, horizon_days=clv.horizon_days)
    pred = model.predict(rfm)
    feats["btyd_p_alive"] = pred["p_alive"].reindex(feats.index).to_numpy()
    feats["btyd_expected_purchases"] = pred["expected_purchases"].reindex(feats.index).to_numpy()
    feats["btyd_expected_avg_spend"] = pred["expected_avg_spend"].reindex(feats.index).to_numpy()
    feats["btyd_value"] = pred["predicted_clv"].reindex(feats.index).to_numpy()
    return feats, model


def clone_with(model: CLVModel, **params) -> CLVModel:
    """A fitted CLV model's copy with prediction-time parameters changed (no refit)."""
    import copy

    new = copy.copy(model)
    for k, v in params.items():
        setattr(new, k, v)
    return new


def discount_factor(horizon_days: float, annual_rate: float) -> float:
    """Mean discount factor of spend spread evenly over the horizon, discounted monthly
    (:func:`churnml.clv.mean_discount`)."""
    return mean_discount(horizon_days, annual_rate)


def rfm_from_features(feats: pd.DataFrame, time_unit: str) -> pd.DataFrame:
    """The lifetimes-style RFM a CLV model wants, from snapshot features (days -> model unit),
    plus ``net_spend`` (currency, whole history) when the features have it: the spend model
    then ranks customers with net past spend <= 0 last and uses a one-time buyer's own order
    (:meth:`churnml.clv.CLVModel.expected_avg_spend`)."""
    mult = _UNIT_MULT[time_unit]
    cols = {
        "frequency": feats["frequency"].to_numpy(dtype=float),
        "recency": feats["recency"].to_numpy(dtype=float) / mult,
        "T": feats["T"].to_numpy(dtype=float) / mult,
        "monetary_value": feats["monetary_value"].to_numpy(dtype=float),
    }
    if "net_spend" in feats.columns:
        cols["net_spend"] = feats["net_spend"].to_numpy(dtype=float)
    return pd.DataFrame(cols, index=feats.index)


def btyd_columns(feats: pd.DataFrame, model: CLVModel, config) -> pd.DataFrame:
    """Snapshot features plus a fitted CLV model's outputs: ``btyd_p_alive``,
    ``btyd_expected_purchases``, ``btyd_expected_avg_spend``, ``btyd_value`` (undiscounted spend over
    ``clv.horizon_days``) and ``btyd_p_no_purchase`` (over ``churn.horizon_days``)."""
    rfm = rfm_from_features(feats, config.clv.time_unit)
    flat = clone_with(model, discount_rate=0.0, margin=1.0, horizon_days=config.clv.horizon_days)
    pred = flat.predict(rfm)
    out = feats.copy()
    out["btyd_p_alive"] = pred["p_alive"].to_numpy()
    out["btyd_expected_purchases"] = pred["expected_purchases"].to_numpy()
    out["btyd_expected_avg_spend"] = pred["expected_avg_spend"].to_numpy()
    out["btyd_value"] = pred["predicted_clv"].to_numpy()
    out["btyd_p_no_purchase"] = model.probability_no_purchase(rfm, config.churn.horizon_days)
    return out


def btyd_spend(model: CLVModel, feats: pd.DataFrame, time_unit: str, horizon_days: float) -> np.ndarray:
    """A fitted CLV model's undiscounted expected spend (margin 1) over ``horizon_days``."""
    flat = clone_with(model, discount_rate=0.0, margin=1.0, horizon_days=horizon_days)
    return flat.predict(rfm_from_features(feats, time_unit))["predicted_clv"].to_numpy()


def naive_value(feats: pd.DataFrame, horizon_days: float) -> np.ndarray:
    """Historical spend rate x horizon: net spend / max(tenure_days, 1) * horizon_days."""
    return feats["net_spend"].to_numpy() / np.maximum(feats["tenure_days"].to_numpy(), 1.0) * horizon_days


def value_metrics(predicted, actual) -> dict[str, float]:
    """Spearman correlation, top-decile capture, MAE and total ratio of a value prediction."""
    from scipy.stats import spearmanr

    p = np.asarray(predicted, dtype=float)
    y = np.asarray(actual, dtype=float)
    n_top = max(1, int(round(0.1 * len(p))))
    top = np.argsort(-p, kind="stable")[:n_top]
    positive = np.clip(y, 0, None)
    total = positive.sum()
    return {
        "spearman": float(spearmanr(p, y).statistic) if np.ptp(p) > 0 else 0.0,
        "top_decile_capture": float(positive[top].sum() / total) if total > 0 else float("nan"),
        "mae": float(np.mean(np.abs(p - y))),
        "total_ratio": float(p.sum() / y.sum()) if y.sum() != 0 else float("nan"),
    }


class MLValueModel(BaseEstimator):
    """LightGBM regression of the spend over the next ``horizon_days`` on snapshot features
    (Tweedie loss: many zeros, a long right tail). Text columns with few distinct values (customer
    attributes) are categoricals; identifier-like text columns are left out (``dropped_features_``).
    ``max_train_rows``: train on a seeded sample of at most this many customers (rows);
    ``n_jobs``: LightGBM threads (0 = every core; the result does not depend on it)."""

    def __init__(self, *, n_estimators: int = 300, learning_rate: float = 0.05, num_leaves: int = 15,
                 min_child_samples: int = 20, seed: int = 42, n_jobs: int = 0, max_train_rows: int | None = None):
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.num_leaves = num_leaves
        self.min_child_samples = min_child_samples
        self.seed = seed
        self.n_jobs = n_jobs
        self.max_train_rows = max_train_rows

    def fit(self, X: pd.DataFrame, y) -> "MLValueModel":
        import lightgbm as lgb

        from churnml.churn import category_levels, lgb_threads, model_columns
        from churnml.sampling import sample_mask

        y = np.asarray(y, dtype=float)
        if self.max_train_rows is not None and len(X) > self.max_train_rows:
            keep = sample_mask(X.index, self.max_train_rows, self.seed)
            X, y = X.loc[keep], y[keep]
        self.n_train_rows_ = int(len(X))
        self.categories_, self.dropped_features_ = category_levels(X, model_columns(X))
        cols = [
            c for c in X.columns
            if c in self.categories_ or (pd.api.types.is_numeric_dtype(X[c]) and not pd.api.types.is_bool_dtype(X[c]))
        ]
        self.feature_names_ = cols
        self.model_ = lgb.LGBMRegressor(
            objective="tweedie", n_estimators=self.n_estimators, learning_rate=self.learning_rate,
            num_leaves=self.num_leaves, min_child_samples=self.min_child_samples, subsample=0.8, subsample_freq=1,
            colsample_bytree=0.8, random_state=self.seed, deterministic=True, force_row_wise=True,
            n_jobs=lgb_threads(getattr(self, "n_jobs", 0), len(X)), verbose=-1,
        )
        self.model_.fit(self._matrix(X), np.clip(y, 0, None))
        return self

    def _matrix(self, X: pd.DataFrame) -> pd.DataFrame:
        from churnml.churn import as_categories

        cats = getattr(self, "categories_", {})
        M = as_categories(X[self.feature_names_], cats)
        for c in M.columns:
            if c not in cats:
                M[c] = M[c].astype(float)
        return M

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        check_is_fitted(self, "model_")
        from churnml.churn import _THREADS

        return self.model_.predict(self._matrix(X), num_threads=_THREADS)  # every core: same numbers


def _value_features_at(transactions, clv, features, events, customers, store):
    """cutoff -> (value features, fitted CLV model): the store's cached ones, or computed."""
    if store is not None:
        return store.value_features
    return lambda cut: value_features(transactions, cut, clv=clv, features=features, events=events, customers=customers)


@dataclasses.dataclass
class ValueBacktest:
    """Result of :func:`value_backtest`: metrics per candidate, the choice, and the predictions."""

    cutoff: pd.Timestamp
    train_cutoff: pd.Timestamp | None
    horizon_days: float
    metrics: pd.DataFrame
    chosen: str
    predictions: pd.DataFrame
    notes: list[str]

    def to_dict(self) -> dict[str, Any]:
        return {
            "cutoff": str(self.cutoff),
            "train_cutoff": str(self.train_cutoff) if self.train_cutoff is not None else None,
            "horizon_days": self.horizon_days,
            "chosen": self.chosen,
            "metrics": self.metrics.to_dict("index"),
            "notes": self.notes,
        }


def _score(m: pd.Series) -> float:
    return float(np.nanmean([m["spearman"], m["top_decile_capture"]]))


def value_backtest(
    transactions: pd.DataFrame,
    *,
    clv: CLVConfig,
    features: FeaturesConfig | None = None,
    cutoff=None,
    horizon_days: float | None = None,
    events: pd.DataFrame | None = None,
    customers: pd.DataFrame | None = None,
    seed: int = 42,
    n_jobs: int = 0,
    store=None,
) -> ValueBacktest:
    """Score naive, BTYD, LightGBM and blend value predictions on one time split.

    The horizon ``h`` (days) defaults to :func:`backtest_horizon` of the log (``clv.horizon_days``
    when the log is long enough, shorter otherwise, so a backtest runs on a one-year log); the
    evaluation cutoff to the last transaction day + 1 - ``h``. The ML model is trained one
    horizon earlier (features before ``cutoff - h``, target in ``[cutoff - h, cutoff)``), so
    nothing it sees overlaps the evaluation window. The choice under ``clv.value_model = auto``
    is the candidate among btyd, ml and blend with the best mean of Spearman and top-decile
    capture whose predicted total is within :data:`TOTAL_RATIO_BAND` of the actual; if the naive
    baseline beats it, a note and a warning say so.

    ``store``: a :class:`churnml.churn.FeatureStore` of the same log, whose per-cutoff
    features and CLV fits are reused instead of recomputed. ``n_jobs``: LightGBM threads.
    """
    at = _value_features_at(transactions, clv, features, events, customers, store)
    last = transactions[TIMESTAMP].max().normalize() + pd.Timedelta(days=1)
    first = transactions[TIMESTAMP].min()
    if horizon_days is None:
        horizon_days = clv.horizon_days if cutoff is not None else backtest_horizon(first, last, clv.horizon_days)
    if horizon_days is None:
        raise DataError(
            f"value backtest: the log ({first.date()} to {last.date()}) is too short: it needs "
            f"{VALUE_MIN_HISTORY_DAYS} days of history plus a holdout of at least {VALUE_MIN_HOLDOUT_DAYS} days"
        )
    h = float(horizon_days)
    cut = pd.Timestamp(cutoff) if cutoff is not None else last - pd.Timedelta(days=h)
    if cut <= first:
        raise DataError(f"value backtest: the log ({first.date()} to {last.date()}) is shorter than one horizon of {h:g} days")
    notes: list[str] = []
    if h < clv.horizon_days:
        notes.append(f"value backtest over {h:g} days (clv.horizon_days {clv.horizon_days:g} does not fit this log twice)")
    feats, model = at(cut)
    actual = value_targets(transactions, cut, h).reindex(feats.index, fill_value=0.0).to_numpy()
    preds = pd.DataFrame(index=feats.index)
    preds["actual"] = actual
    preds["naive"] = naive_value(feats, h)
    preds["btyd"] = btyd_spend(model, feats, clv.time_unit, h)
    train_cut = cut - pd.Timedelta(days=h)
    min_history = pd.Timedelta(days=VALUE_MIN_HISTORY_DAYS)
    if train_cut - first >= min_history:
        X_train, _ = at(train_cut)
        y_train = value_targets(transactions, train_cut, h).reindex(X_train.index, fill_value=0.0)
        ml = MLValueModel(seed=seed, n_jobs=n_jobs, max_train_rows=clv.ml_max_train_rows).fit(X_train, y_train)
        preds["ml"] = ml.predict(feats)
        preds["blend"] = 0.5 * (preds["ml"] + preds["btyd"])
    else:
        train_cut = None
        notes.append(
            f"ml/blend not evaluated: less than {min_history.days} days of history before the training cutoff "
            f"({(cut - pd.Timedelta(days=h)).date()}); shorten clv.horizon_days or add history"
        )
    metrics = pd.DataFrame({c: value_metrics(preds[c], actual) for c in CANDIDATES if c in preds}).T
    metrics["score"] = [_score(metrics.loc[c]) for c in metrics.index]
    if clv.value_model == "auto":
        pool = [c for c in ("btyd", "ml", "blend", "naive") if c in metrics.index]  # ties go to the models
        ratio = metrics["total_ratio"]
        calibrated = [c for c in pool if np.isfinite(ratio[c]) and TOTAL_RATIO_BAND[0] <= ratio[c] <= TOTAL_RATIO_BAND[1]]
        for c in sorted(set(pool) - set(calibrated)):
            notes.append(
                f"{c} left out of the auto choice: it predicts {ratio[c]:.3g}x the actual total spend "
                f"(allowed {TOTAL_RATIO_BAND[0]}-{TOTAL_RATIO_BAND[1]}x)"
            )
        chosen = max(calibrated or pool, key=lambda c: metrics.loc[c, "score"])
    else:
        chosen = clv.value_model if clv.value_model in metrics.index else "btyd"
        if chosen != clv.value_model:
            notes.append(f"value_model {clv.value_model!r} could not be evaluated; using btyd")
    if chosen == "naive":
        notes.append(
            f"the naive spend-rate answer is shipped: it scored {metrics.loc['naive', 'score']:.3f} in the backtest, "
            f"better than BTYD ({metrics.loc['btyd', 'score']:.3f})"
            + (f" and LightGBM ({metrics.loc['ml', 'score']:.3f})" if "ml" in metrics.index else "")
        )
    elif metrics.loc["naive", "score"] > metrics.loc[chosen, "score"]:
        msg = (
            f"the naive spend-rate baseline (score {metrics.loc['naive', 'score']:.3f}) beats the chosen "
            f"value model {chosen!r} (score {metrics.loc[chosen, 'score']:.3f}) on this log"
        )
        notes.append(msg)
        warnings.warn(msg, stacklevel=2)
    return ValueBacktest(cut, train_cut, h, metrics, chosen, preds, notes)


class ValueModel(BaseEstimator):
    """The value model churnml ships: BTYD, LightGBM or their blend, chosen by the backtest.

    ``fit(transactions, cutoff)`` runs :func:`value_backtest` on the data before ``cutoff``
    over :func:`backtest_horizon` days ``h`` (``clv.horizon_days`` when the log allows), picks
    the model (``clv.value_model``), fits the CLV model on all data before ``cutoff`` and, for
    ``ml``/``blend``, trains LightGBM on the last complete ``h`` days (features before
    ``cutoff - h``, spend in ``[cutoff - h, cutoff)``).

    ``predict`` returns per customer ``p_alive``, ``expected_purchases``, ``expected_avg_spend``,
    ``btyd_clv`` (discounted BTYD CLV), ``ml_value`` (LightGBM's undiscounted spend forecast
    over ``h``, when trained), ``predicted_clv``: the chosen model's expected discounted value
    times margin over ``clv.horizon_days`` (LightGBM's forecast scaled by
    ``clv.horizon_days / h`` and discounted as if spread evenly), and ``value_if_retained``:
    the value over ``clv.horizon_days`` if the customer stays active the whole horizon (BTYD
    purchase rate given alive x Gamma-Gamma spend, discounted, times margin; see
    :meth:`churnml.clv.CLVModel.purchase_rate_if_alive`).

    Attributes: ``chosen_``, ``backtest_`` (or None), ``horizon_fit_days_`` (``h``, or None),
    ``clv_model_``, ``ml_model_`` (or None), ``cutoff_``, ``notes_``.
    """

    def __init__(self, *, clv: CLVConfig | None = None, features: FeaturesConfig | None = None, seed: int = 42,
                 n_jobs: int = 0):
        self.clv = clv
        self.features = features
        self.seed = seed
        self.n_jobs = n_jobs

    def fit(self, transactions, cutoff, *, events=None, customers=None, store=None) -> "ValueModel":
        """Fit on the data before ``cutoff``. ``store``: a :class:`churnml.churn.FeatureStore`
        of exactly that data (``transactions`` before ``cutoff``), whose per-cutoff features and
        CLV fits are reused."""
        clv = self.clv or CLVConfig()
        cut = pd.Timestamp(cutoff)
        before = transactions.loc[transactions[TIMESTAMP] < cut] if store is None else store.transactions
        at = _value_features_at(before, clv, self.features, events, customers, store)
        self.cutoff_ = cut
        self.backtest_ = None
        self.horizon_fit_days_ = backtest_horizon(before[TIMESTAMP].min(), cut, clv.horizon_days)
        notes: list[str] = []
        if self.horizon_fit_days_ is None:
            self.chosen_ = "btyd"
            notes.append(
                f"value backtest not run: the log needs {VALUE_MIN_HISTORY_DAYS + VALUE_MIN_HOLDOUT_DAYS} days "
                "before the scoring date; using btyd unchecked"
            )
        else:
            h = self.horizon_fit_days_
            self.backtest_ = value_backtest(
                before, clv=clv, features=self.features, cutoff=cut - pd.Timedelta(days=h), horizon_days=h,
                events=events, customers=customers, seed=self.seed, n_jobs=self.n_jobs, store=store,
            )
            self.chosen_ = self.backtest_.chosen
        self.notes_ = notes + (self.backtest_.notes if self.backtest_ else [])
        snap = store.snapshot(cut) if store is not None else snapshot_features(before, cut, config=self.features)
        self.clv_model_ = clv_model_from_config(clv).fit(rfm_from_features(snap, clv.time_unit))
        self.ml_model_ = None
        if self.chosen_ in ("ml", "blend"):
            train_cut = cut - pd.Timedelta(days=self.horizon_fit_days_)
            X, _ = at(train_cut)
            y = value_targets(before, train_cut, self.horizon_fit_days_).reindex(X.index, fill_value=0.0)
            self.ml_model_ = MLValueModel(seed=self.seed, n_jobs=self.n_jobs, max_train_rows=clv.ml_max_train_rows).fit(X, y)
        return self

    def predict_features(self, feats: pd.DataFrame, churn_probability=None) -> pd.DataFrame:
        """:meth:`predict` from snapshot features that already hold the ``btyd_*`` columns.

        ``churn_probability``: the churn model's P(no purchase in the next ``churn.horizon_days``)
        of ``feats`` (aligned). When the purchase model saw no dropout
        (:attr:`churnml.clv.CLVModel.no_dropout_`) its P(alive) is ~1 for everyone and its CLV
        ignores churn risk; with ``churn_probability`` given, ``p_alive`` becomes ``1 -
        churn_probability`` (the churn model's probability of a purchase within the churn
        horizon) and the BTYD CLV ``value_if_retained x (1 - churn_probability)``;
        ``p_alive_source`` says which (``"btyd"`` or ``"churn_model"``). Whatever the model, a
        customer whose net past spend is <= 0 gets ``predicted_clv`` and ``value_if_retained``
        0 (they have brought nothing so far and rank last)."""
        check_is_fitted(self, "clv_model_")
        clv = self.clv or CLVConfig()
        btyd = self.clv_model_.predict(rfm_from_features(feats, clv.time_unit))
        out = btyd.rename(columns={"predicted_clv": "btyd_clv"})
        out["p_alive_source"] = "btyd"
        if getattr(self.clv_model_, "no_dropout_", False) and churn_probability is not None and "value_if_retained" in out:
            stay = 1.0 - np.clip(np.asarray(churn_probability, dtype=float), 0.0, 1.0)
            out["p_alive"] = stay
            out["btyd_clv"] = out["value_if_retained"].to_numpy() * stay
            out["p_alive_source"] = "churn_model"
        value = out["btyd_clv"].to_numpy()
        if self.ml_model_ is not None:
            ml = self.ml_model_.predict(feats)
            out["ml_value"] = ml
            scale = clv.horizon_days / self.horizon_fit_days_
            ml_clv = ml * scale * clv.margin * discount_factor(clv.horizon_days, clv.discount_rate)
            value = ml_clv if self.chosen_ == "ml" else 0.5 * (ml_clv + value)
        elif self.chosen_ == "naive":  # the backtest found the spreadsheet answer best: ship it, discounted
            value = naive_value(feats, clv.horizon_days) * clv.margin * discount_factor(clv.horizon_days, clv.discount_rate)
        if "net_spend" in feats.columns:
            nothing = feats["net_spend"].to_numpy(dtype=float) <= 0
            value = np.where(nothing, 0.0, value)
            if "value_if_retained" in out:
                out["value_if_retained"] = np.where(nothing, 0.0, out["value_if_retained"].to_numpy())
        out["predicted_clv"] = value
        out["value_model"] = self.chosen_
        return out

    def predict(self, transactions, cutoff=None, *, events=None, customers=None) -> pd.DataFrame:
        """Per customer with a purchase before ``cutoff`` (default: the fitting cutoff): BTYD
        outputs, ``btyd_clv``, ``ml_value`` (when trained) and ``predicted_clv``; no refit."""
        check_is_fitted(self, "clv_model_")
        cut = pd.Timestamp(cutoff) if cutoff is not None else self.cutoff_
        if self.ml_model_ is not None:
            feats, _ = value_features(
                transactions, cut, clv=self.clv or CLVConfig(), features=self.features, events=events,
                customers=customers, model=self.clv_model_,
            )
        else:  # BTYD needs only the lifetimes-style columns of the snapshot
            feats = snapshot_features(transactions, cut, config=self.features)
        return self.predict_features(feats)
