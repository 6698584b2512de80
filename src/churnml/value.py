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
from churnml.features import _as_ns, rfm_summary, snapshot_features
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
) -> tuple[pd.DataFrame, CLVModel]:
    """Snapshot features at ``cutoff`` plus the BTYD outputs of a CLV model fitted on the same
    pre-cutoff data (``btyd_p_alive``, ``btyd_expected_purchases``, ``btyd_expected_avg_spend``,
    ``btyd_value``: undiscounted expected spend over ``clv.horizon_days``). Returns the
    features and the fitted CLV model."""
    feats = snapshot_features(transactions, cutoff, events=events, customers=customers, config=features)
    rfm = rfm_at(transactions, cutoff, clv.time_unit)
    model = clv_model_from_config(clv, discount_rate=0.0, margin=1.0)
    model.fit(rfm)
    pred = model.predict(rfm)
    pred.index = pred.index.astype(str)
    feats["btyd_p_alive"] = pred["p_alive"].reindex(feats.index).to_numpy()
    feats["btyd_expected_purchases"] = pred["expected_purchases"].reindex(feats.index).to_numpy()
    feats["btyd_expected_avg_spend"] = pred["expected_avg_spend"].reindex(feats.index).to_numpy()
    feats["btyd_value"] = pred["predicted_clv"].reindex(feats.index).to_numpy()
    return feats, model


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
