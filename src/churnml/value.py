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

from churnml.clv import CLVModel
from churnml.config import CLVConfig, FeaturesConfig
from churnml.errors import DataError
from churnml.features import rfm_summary, snapshot_features
from churnml.io import AMOUNT, CUSTOMER_ID, TIMESTAMP, purchases

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


def clv_model_from_config(cfg: CLVConfig, **overrides) -> CLVModel:
    """A :class:`CLVModel` with the config's parameters (``overrides`` win)."""
    params = dict(
        purchase_model=cfg.purchase_model, time_unit=cfg.time_unit, horizon_days=cfg.horizon_days,
        discount_rate=cfg.discount_rate, margin=cfg.margin, penalizer=cfg.penalizer,
        spend_penalizer=cfg.spend_penalizer, corr_threshold=cfg.corr_threshold, min_repeaters=cfg.min_repeaters,
    )
    params.update(overrides)
    return CLVModel(**params)


def rfm_at(transactions: pd.DataFrame, cutoff, time_unit: str = "W") -> pd.DataFrame:
    """lifetimes-style RFM of purchases strictly before ``cutoff``, ``T`` measured to the cutoff
    day, in weeks (``"W"``: day-level purchases, durations / 7) or days (``"D"``)."""
    cut = pd.Timestamp(cutoff)
    pur = purchases(transactions)
    before = pur.loc[pur[TIMESTAMP] < cut]
    if before.empty:
        raise DataError(f"no purchase before the cutoff {cut}")
    return rfm_summary(before, amount=AMOUNT, observation_end=cut, freq="D", freq_multiplier=_UNIT_MULT[time_unit])


def value_targets(transactions: pd.DataFrame, cutoff, horizon_days: float) -> pd.Series:
    """Actual net spend (purchases less returns, currency) per customer in
    ``[cutoff, cutoff + horizon_days)``; customers without activity are absent (0)."""
    cut = pd.Timestamp(cutoff)
    end = cut + pd.Timedelta(days=horizon_days)
    ts = transactions[TIMESTAMP]
    win = transactions.loc[((ts >= cut) & (ts < end)).to_numpy()]
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
) -> tuple[pd.DataFrame, CLVModel]:
    """Snapshot features at ``cutoff`` plus the BTYD outputs of a CLV model fitted on the same
    pre-cutoff data (or of the fitted ``model`` given, e.g. when scoring) (``btyd_p_alive``, ``btyd_expected_purchases``, ``btyd_expected_avg_spend``,
    ``btyd_value``: undiscounted expected spend over ``clv.horizon_days``). Returns the
    features and the fitted CLV model."""
    feats = snapshot_features(transactions, cutoff, events=events, customers=customers, config=features)
    rfm = rfm_from_features(feats, clv.time_unit)  # the snapshot already holds lifetimes' columns
    if model is None:
        model = clv_model_from_config(clv, discount_rate=0.0, margin=1.0)
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
    """Mean discount factor of spend spread evenly over the horizon, discounted monthly."""
    months = np.arange(1, int(np.ceil(horizon_days / (365.25 / 12))) + 1) * (365.25 / 12)
    months = np.minimum(months, horizon_days)
    return float(np.mean(1.0 / (1.0 + annual_rate) ** (months / 365.25)))


def rfm_from_features(feats: pd.DataFrame, time_unit: str) -> pd.DataFrame:
    """The lifetimes-style RFM a CLV model wants, from snapshot features (days -> model unit)."""
    mult = _UNIT_MULT[time_unit]
    return pd.DataFrame(
        {
            "frequency": feats["frequency"].to_numpy(dtype=float),
            "recency": feats["recency"].to_numpy(dtype=float) / mult,
            "T": feats["T"].to_numpy(dtype=float) / mult,
            "monetary_value": feats["monetary_value"].to_numpy(dtype=float),
        },
        index=feats.index,
    )


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
    (Tweedie loss: many zeros, a long right tail). Non-numeric columns are dropped."""

    def __init__(self, *, n_estimators: int = 300, learning_rate: float = 0.05, num_leaves: int = 15,
                 min_child_samples: int = 20, seed: int = 42):
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.num_leaves = num_leaves
        self.min_child_samples = min_child_samples
        self.seed = seed

    def fit(self, X: pd.DataFrame, y) -> "MLValueModel":
        import lightgbm as lgb

        cols = [c for c in X.columns if pd.api.types.is_numeric_dtype(X[c]) and not pd.api.types.is_bool_dtype(X[c])]
        self.feature_names_ = cols
        self.model_ = lgb.LGBMRegressor(
            objective="tweedie", n_estimators=self.n_estimators, learning_rate=self.learning_rate,
            num_leaves=self.num_leaves, min_child_samples=self.min_child_samples, subsample=0.8, subsample_freq=1,
            colsample_bytree=0.8, random_state=self.seed, deterministic=True, force_row_wise=True, n_jobs=1, verbose=-1,
        )
        self.model_.fit(X[cols].astype(float), np.clip(np.asarray(y, dtype=float), 0, None))
        return self

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        check_is_fitted(self, "model_")
        return self.model_.predict(X[self.feature_names_].astype(float))


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
    events: pd.DataFrame | None = None,
    customers: pd.DataFrame | None = None,
    seed: int = 42,
) -> ValueBacktest:
    """Score naive, BTYD, LightGBM and blend value predictions on one time split.

    The evaluation cutoff defaults to the last transaction day + 1 - ``clv.horizon_days``; the
    ML model is trained one horizon earlier (features before ``cutoff - horizon``, target in
    ``[cutoff - horizon, cutoff)``), so nothing it sees overlaps the evaluation window. The
    choice under ``clv.value_model = auto`` is the candidate among btyd, ml and blend with the
    best mean of Spearman and top-decile capture whose predicted total is within
    :data:`TOTAL_RATIO_BAND` of the actual; if the naive baseline beats it, a note and a warning
    say so.
    """
    h = float(clv.horizon_days)
    last = transactions[TIMESTAMP].max().normalize() + pd.Timedelta(days=1)
    first = transactions[TIMESTAMP].min()
    cut = pd.Timestamp(cutoff) if cutoff is not None else last - pd.Timedelta(days=h)
    if cut <= first:
        raise DataError(f"value backtest: the log ({first.date()} to {last.date()}) is shorter than one horizon of {h:g} days")
    notes: list[str] = []
    feats, _ = value_features(transactions, cut, clv=clv, features=features, events=events, customers=customers)
    actual = value_targets(transactions, cut, h).reindex(feats.index, fill_value=0.0).to_numpy()
    preds = pd.DataFrame(index=feats.index)
    preds["actual"] = actual
    preds["naive"] = naive_value(feats, h)
    preds["btyd"] = feats["btyd_value"].to_numpy()
    train_cut = cut - pd.Timedelta(days=h)
    min_history = pd.Timedelta(days=min(h, 90))
    if train_cut - first >= min_history:
        X_train, _ = value_features(transactions, train_cut, clv=clv, features=features, events=events, customers=customers)
        y_train = value_targets(transactions, train_cut, h).reindex(X_train.index, fill_value=0.0)
        ml = MLValueModel(seed=seed).fit(X_train, y_train)
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
        pool = [c for c in ("btyd", "ml", "blend") if c in metrics.index]
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
    if metrics.loc["naive", "score"] > metrics.loc[chosen, "score"]:
        msg = (
            f"the naive spend-rate baseline (score {metrics.loc['naive', 'score']:.3f}) beats the chosen "
            f"value model {chosen!r} (score {metrics.loc[chosen, 'score']:.3f}) on this log"
        )
        notes.append(msg)
        warnings.warn(msg, stacklevel=2)
    return ValueBacktest(cut, train_cut, h, metrics, chosen, preds, notes)


class ValueModel(BaseEstimator):
    """The value model churnml ships: BTYD, LightGBM or their blend, chosen by the backtest.

    ``fit(transactions, cutoff)`` runs :func:`value_backtest` one horizon before ``cutoff``
    (when the log is long enough), picks the model (``clv.value_model``), fits the CLV model on
    all data before ``cutoff`` and, for ``ml``/``blend``, trains LightGBM on the last complete
    horizon (features before ``cutoff - horizon``, spend in ``[cutoff - horizon, cutoff)``).

    ``predict`` returns per customer ``p_alive``, ``expected_purchases``, ``expected_avg_spend``,
    ``btyd_clv`` (discounted BTYD CLV), ``ml_value`` (undiscounted LightGBM spend forecast, when
    trained) and ``predicted_clv``: the chosen model's discounted value times margin over
    ``clv.horizon_days`` (ML spend is discounted as if spread evenly over the horizon).

    Attributes: ``chosen_``, ``backtest_`` (or None), ``clv_model_``, ``ml_model_`` (or None), ``cutoff_``.
    """

    def __init__(self, *, clv: CLVConfig | None = None, features: FeaturesConfig | None = None, seed: int = 42):
        self.clv = clv
        self.features = features
        self.seed = seed

    def fit(self, transactions, cutoff, *, events=None, customers=None) -> "ValueModel":
        clv = self.clv or CLVConfig()
        cut = pd.Timestamp(cutoff)
        h = pd.Timedelta(days=clv.horizon_days)
        self.cutoff_ = cut
        self.backtest_ = None
        notes: list[str] = []
        try:
            self.backtest_ = value_backtest(
                transactions.loc[transactions[TIMESTAMP] < cut], clv=clv, features=self.features,
                cutoff=cut - h, events=events, customers=customers, seed=self.seed,
            )
            self.chosen_ = self.backtest_.chosen
        except DataError as err:
            self.chosen_ = "btyd"
            notes.append(f"value backtest not run ({err}); using btyd")
        self.notes_ = notes + (self.backtest_.notes if self.backtest_ else [])
        self.clv_model_ = clv_model_from_config(clv).fit(rfm_at(transactions, cut, clv.time_unit))
        self.ml_model_ = None
        if self.chosen_ in ("ml", "blend"):
            train_cut = cut - h
            X, _ = value_features(transactions, train_cut, clv=clv, features=self.features, events=events, customers=customers)
            y = value_targets(transactions, train_cut, clv.horizon_days).reindex(X.index, fill_value=0.0)
            self.ml_model_ = MLValueModel(seed=self.seed).fit(X, y)
        return self

    def predict_features(self, feats: pd.DataFrame) -> pd.DataFrame:
        """:meth:`predict` from snapshot features that already hold the ``btyd_*`` columns."""
        check_is_fitted(self, "clv_model_")
        clv = self.clv or CLVConfig()
        btyd = self.clv_model_.predict(rfm_from_features(feats, clv.time_unit))
        out = btyd.rename(columns={"predicted_clv": "btyd_clv"})
        value = out["btyd_clv"].to_numpy()
        if self.ml_model_ is not None:
            ml = self.ml_model_.predict(feats)
            out["ml_value"] = ml
            ml_clv = ml * clv.margin * discount_factor(clv.horizon_days, clv.discount_rate)
            value = ml_clv if self.chosen_ == "ml" else 0.5 * (ml_clv + value)
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
