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
from churnml.evaluation import churn_metrics
from churnml.io import CUSTOMER_ID, TIMESTAMP, purchases
from churnml.value import rfm_from_features, value_features

__all__ = [
    "BASELINES",
    "ChurnBacktest",
    "ChurnModel",
    "FeatureStore",
    "churn_backtest",
    "churn_labels",
    "cutoff_plan",
    "fit_churn_model",
    "model_columns",
]

BASELINES = ("recency", "logistic_rfm", "btyd")
_THREADS = 0  # predictions use every core (results do not depend on the thread count); training stays on 1
_NON_FEATURES = {"cutoff", "churned", "as_of"}


def churn_labels(transactions: pd.DataFrame, cutoff, horizon_days: int, lookback_days: int | None = None) -> pd.Series:
    """1 if a customer in scope at ``cutoff`` makes no purchase in ``[cutoff, cutoff + horizon_days)``.

    In scope: at least one purchase before ``cutoff`` (within ``lookback_days`` if given).
    Raises when the log does not cover the whole outcome window.
    """
    cut = pd.Timestamp(cutoff)
    end = cut + pd.Timedelta(days=horizon_days)
    pur = purchases(transactions)
    ts = pur[TIMESTAMP]
    if ts.max() < end - pd.Timedelta(days=1):
        raise DataError(f"the outcome window {cut.date()} + {horizon_days} days is not complete (log ends {ts.max()})")
    lo = cut - pd.Timedelta(days=lookback_days) if lookback_days else ts.min()
    scope = pd.Index(pur.loc[((ts < cut) & (ts >= lo)).to_numpy(), CUSTOMER_ID].unique())
    buyers = pur.loc[((ts >= cut) & (ts < end)).to_numpy(), CUSTOMER_ID].unique()
    return pd.Series((~scope.isin(buyers)).astype(np.int8), index=scope.astype(str), name="churned").sort_index()


def cutoff_plan(eval_cutoff, *, horizon_days: int, step_days: int, n_cutoffs: int, first: pd.Timestamp, min_history_days: int) -> tuple[pd.Timestamp, list[pd.Timestamp]]:
    """(validation cutoff, training cutoffs ascending) for a model evaluated at ``eval_cutoff``."""
    h = pd.Timedelta(days=horizon_days)
    valid = pd.Timestamp(eval_cutoff) - h
    earliest = first + pd.Timedelta(days=min_history_days)
    train = [valid - h - pd.Timedelta(days=i * step_days) for i in range(n_cutoffs)]
    train = sorted(c for c in train if c >= earliest)
    if valid < earliest or not train:
        raise DataError(
            f"the log (from {first.date()}) is too short to train a churn model evaluated at "
            f"{pd.Timestamp(eval_cutoff).date()}: it needs {min_history_days} days of history before the first "
            f"training cutoff and two horizons ({2 * horizon_days} days) of labels after it"
        )
    return valid, train


class FeatureStore:
    """Point-in-time features (snapshot + per-cutoff BTYD) and labels per cutoff, computed once."""

    def __init__(self, transactions: pd.DataFrame, config: Config, *, events=None, customers=None):
        self.transactions = transactions
        self.config = config
        self.events = events
        self.customers = customers
        self._cache: dict[pd.Timestamp, pd.DataFrame] = {}

    def features(self, cutoff) -> pd.DataFrame:
        cut = pd.Timestamp(cutoff)
        if cut not in self._cache:
            feats, model = value_features(
                self.transactions, cut, clv=self.config.clv, features=self.config.features,
                events=self.events, customers=self.customers,
            )
            rfm = rfm_from_features(feats, self.config.clv.time_unit)
            feats["btyd_p_no_purchase"] = model.probability_no_purchase(rfm, self.config.churn.horizon_days)
            if self.config.churn.lookback_days:
                feats = feats.loc[feats["recency_days"] <= self.config.churn.lookback_days]
            self._cache[cut] = feats
        return self._cache[cut]

    def labelled(self, cutoff) -> pd.DataFrame:
        feats = self.features(cutoff).copy()
        y = churn_labels(self.transactions, cutoff, self.config.churn.horizon_days, self.config.churn.lookback_days)
        feats["churned"] = y.reindex(feats.index).fillna(1).astype(np.int8).to_numpy()
        feats["cutoff"] = pd.Timestamp(cutoff)
        return feats

    def stacked(self, cutoffs) -> pd.DataFrame:
        return pd.concat([self.labelled(c) for c in cutoffs])


def model_columns(frame: pd.DataFrame) -> list[str]:
    """Feature columns of a feature frame: numeric and categorical, without labels and keys."""
    cols = []
    for c in frame.columns:
        if c in _NON_FEATURES:
            continue
        dt = frame[c].dtype
        if pd.api.types.is_numeric_dtype(dt) or isinstance(dt, pd.CategoricalDtype) or pd.api.types.is_bool_dtype(dt):
            cols.append(c)
    return cols


def _half(index: pd.Index, seed: int) -> np.ndarray:
    """Deterministic 50/50 split of customer ids (hash of id and seed), stable across runs."""
    salt = str(seed).encode()
    return np.fromiter(
        (hashlib.blake2b(salt + str(i).encode(), digest_size=2).digest()[0] & 1 for i in index), dtype=bool, count=len(index)
    )


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
    * On the other half, the stacked score is compared with the prior alone (ROC AUC): the better
      one is kept (``chosen_``, so a LightGBM that loses to BG/NBD on held-out time is never
      shipped silently) and calibrated (isotonic or sigmoid) into probabilities.

    Parameters mirror ``churn.*`` in the config; ``seed`` fixes bagging and the customer halves.

    Attributes: ``feature_names_``, ``categories_``, ``booster_`` (fitted ``LGBMClassifier``),
    ``best_iteration_``, ``stacker_``, ``chosen_`` ("lightgbm" or "prior"), ``selection_auc_``
    (held-out AUC of both), ``calibrator_``, ``classes_``.
    """

    def __init__(self, *, n_estimators: int = 1000, learning_rate: float = 0.03, num_leaves: int = 15,
                 max_depth: int = 5, min_child_samples: int = 50, early_stopping_rounds: int = 50,
                 calibration: str = "isotonic", prior: str | None = "btyd_p_no_purchase", seed: int = 42):
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.num_leaves = num_leaves
        self.max_depth = max_depth
        self.min_child_samples = min_child_samples
        self.early_stopping_rounds = early_stopping_rounds
        self.calibration = calibration
        self.prior = prior
        self.seed = seed

    def _matrix(self, X: pd.DataFrame) -> pd.DataFrame:
        missing = [c for c in self.feature_names_ if c not in X.columns]
        if missing:
            from churnml.errors import ModelError

            raise ModelError(f"the data lacks feature column(s) the model was trained on: {missing}")
        M = X[self.feature_names_].copy()
        for c, cats in self.categories_.items():
            M[c] = pd.Categorical(M[c], categories=cats)
        for c in M.columns:
            if c not in self.categories_:
                M[c] = M[c].astype(float)
        return M

    def _prior(self, X: pd.DataFrame) -> np.ndarray:
        return _logit(X[self.prior]) if self.prior else np.zeros(len(X))

    def fit(self, X: pd.DataFrame, y, *, X_valid: pd.DataFrame, y_valid) -> "ChurnModel":
        import lightgbm as lgb
        from sklearn.metrics import roc_auc_score

        self.feature_names_ = model_columns(X)
        self.categories_ = {
            c: list(pd.Categorical(X[c]).categories) for c in self.feature_names_
            if isinstance(X[c].dtype, pd.CategoricalDtype) or X[c].dtype == object
        }
        y = np.asarray(y, dtype=int)
        y_valid = np.asarray(y_valid, dtype=int)
        stop = _half(X_valid.index, self.seed)
        if stop.all() or not stop.any():
            stop = np.arange(len(X_valid)) % 2 == 0
        self.booster_ = lgb.LGBMClassifier(
            objective="binary", n_estimators=self.n_estimators, learning_rate=self.learning_rate,
            num_leaves=self.num_leaves, max_depth=self.max_depth, min_child_samples=self.min_child_samples,
            subsample=0.8, subsample_freq=1,
            colsample_bytree=0.8, reg_lambda=1.0, random_state=self.seed, deterministic=True, force_row_wise=True,
            n_jobs=1, verbose=-1,
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
        self.selection_auc_ = {
            "lightgbm": float(roc_auc_score(y_valid[hold], stacked[hold])) if both else float("nan"),
            "prior": float(roc_auc_score(y_valid[hold], prior_v[hold])) if both and self.prior else float("nan"),
        }
        self.chosen_ = "prior" if self.selection_auc_["prior"] > self.selection_auc_["lightgbm"] else "lightgbm"
        score = stacked if self.chosen_ == "lightgbm" else prior_v
        self.calibrator_ = _fit_calibrator(self.calibration, score[hold], y_valid[hold])
        self.classes_ = np.array([0, 1])
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
        return self._stacked(self._boosted(self._matrix(X), prior), prior)

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        """Calibrated [P(stay), P(churn)] per row."""
        p = _apply_calibrator(self.calibrator_, self.decision_function(X))
        return np.column_stack([1 - p, p])

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return (self.predict_proba(X)[:, 1] >= 0.5).astype(int)

    def contributions(self, X: pd.DataFrame, method: str = "shap") -> pd.DataFrame:
        """Per-customer contributions of each feature to LightGBM's log-odds of churn; they add
        up (with ``bias``) to the trees' raw score.

        ``method="shap"``: LightGBM ``pred_contrib`` (TreeSHAP, exact Shapley values; about
        0.2 ms per customer). ``method="path"``: the decision-path attribution (Saabas): each
        split on the way to a customer's leaf credits its feature with the change in the node's
        expected value; the same cost as a prediction, for batch scoring of millions.
        """
        check_is_fitted(self, "booster_")
        M = self._matrix(X)
        if method == "shap":
            c = self.booster_.predict(M, pred_contrib=True, num_iteration=self.best_iteration_, num_threads=_THREADS)
        elif method == "path":
            c = self._path_contributions(M)
        else:
            raise ValueError("method must be 'shap' or 'path'")
        return pd.DataFrame(c, index=X.index, columns=[*self.feature_names_, "bias"])

    def _path_tables(self) -> list[tuple[np.ndarray, np.ndarray, float]]:
        """Per tree: (feature columns used, leaf x used-feature contribution table, bias)."""
        if getattr(self, "path_tables_", None) is not None:
            return self.path_tables_
        dump = self.booster_.booster_.dump_model(num_iteration=self.best_iteration_)
        n_feat = len(self.feature_names_)
        tables = []
        for tree in dump["tree_info"]:
            root = tree["tree_structure"]
            if "leaf_index" in root or "split_feature" not in root:
                tables.append((np.array([], dtype=int), np.zeros((1, 0)), float(root.get("leaf_value", 0.0))))
                continue
            rows: dict[int, np.ndarray] = {}

            def walk(node, acc):
                value = node.get("internal_value", node.get("leaf_value"))
                if "leaf_index" in node:
                    rows[node["leaf_index"]] = acc
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
        self.path_tables_ = tables
        return tables

    def _path_contributions(self, M: pd.DataFrame) -> np.ndarray:
        tables = self._path_tables()
        leaves = np.asarray(self.booster_.predict(M, pred_leaf=True, num_iteration=self.best_iteration_, num_threads=_THREADS)).reshape(len(M), -1)
        # column-major: each feature's column is contiguous, so every update is one gather + add
        out = np.zeros((len(M), len(self.feature_names_) + 1), order="F")
        out[:, -1] = sum(bias for _, _, bias in tables)
        for t, (used, table, _) in enumerate(tables):
            leaf = leaves[:, t]
            for j, f in enumerate(used):
                out[:, f] += table[:, j][leaf]
        return np.ascontiguousarray(out)

    def feature_importance(self) -> pd.Series:
        """Total gain per feature, largest first."""
        check_is_fitted(self, "booster_")
        imp = self.booster_.booster_.feature_importance(importance_type="gain", iteration=self.best_iteration_)
        return pd.Series(imp, index=self.feature_names_).sort_values(ascending=False)


def _fit_calibrator(kind: str, score: np.ndarray, y: np.ndarray):
    """Isotonic or sigmoid (Platt) map from a log-odds score to a probability."""
    score = np.asarray(score, dtype=float)
    if kind == "isotonic":
        return IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0).fit(score, y)
    return LogisticRegression(C=1e6).fit(score.reshape(-1, 1), y)


_TIE_BREAK = 1e-6


def _apply_calibrator(cal, score: np.ndarray) -> np.ndarray:
    """Calibrated probabilities from a monotone score. Isotonic maps are step functions: ties
    inside a step are broken by the score itself (a change of at most 1e-6), so calibration never
    discards the ranking."""
    score = np.asarray(score, dtype=float)
    if isinstance(cal, IsotonicRegression):
        tie = 0.5 + np.arctan(score) / np.pi
        return cal.predict(score) * (1 - _TIE_BREAK) + _TIE_BREAK * tie  # strictly inside (0, 1)
    return cal.predict_proba(score.reshape(-1, 1))[:, 1]


_LOGIT_COLS = ["recency_days", "n_purchases", "total_spend", "tenure_days"]


def _rfm_matrix(frame: pd.DataFrame) -> np.ndarray:
    return np.log1p(np.clip(frame[_LOGIT_COLS].to_numpy(dtype=float), 0, None))


def fit_baselines(train: pd.DataFrame, valid: pd.DataFrame, seed: int = 42) -> dict[str, Any]:
    """Baselines fitted on the same rows: recency alone (isotonic map of days since the last
    purchase to a probability, fitted on the validation cutoff), logistic regression on log RFM
    + tenure, and BG/NBD's P(no purchase in the horizon) (no fitting beyond the BTYD per cutoff)."""
    iso = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0).fit(valid["recency_days"], valid["churned"])
    logit = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000, random_state=seed)).fit(
        _rfm_matrix(train), train["churned"]
    )
    return {"recency": iso, "logistic_rfm": logit}


def baseline_scores(baselines: dict[str, Any], frame: pd.DataFrame) -> dict[str, np.ndarray]:
    return {
        "recency": _apply_calibrator(baselines["recency"], frame["recency_days"].to_numpy(dtype=float)),
        "logistic_rfm": baselines["logistic_rfm"].predict_proba(_rfm_matrix(frame))[:, 1],
        "btyd": frame["btyd_p_no_purchase"].to_numpy(dtype=float),
    }


def fit_churn_model(store: FeatureStore, eval_cutoff) -> tuple[ChurnModel, dict[str, Any], dict[str, Any]]:
    """Train the churn model (and baselines) for use at ``eval_cutoff``; return the model, the
    baselines and a description of the training data (cutoffs, rows, churn rates)."""
    cfg = store.config
    c = cfg.churn
    first = store.transactions[TIMESTAMP].min()
    valid_cut, train_cuts = cutoff_plan(
        eval_cutoff, horizon_days=c.horizon_days, step_days=c.cutoff_step_days, n_cutoffs=c.n_cutoffs,
        first=first, min_history_days=c.min_history_days,
    )
    train = store.stacked(train_cuts)
    valid = store.labelled(valid_cut)
    model = ChurnModel(
        n_estimators=c.n_estimators, learning_rate=c.learning_rate, num_leaves=c.num_leaves, max_depth=c.max_depth,
        min_child_samples=c.min_child_samples, early_stopping_rounds=c.early_stopping_rounds,
        calibration=c.calibration, seed=c.seed,
    ).fit(train, train["churned"], X_valid=valid, y_valid=valid["churned"])
    baselines = fit_baselines(train, valid, seed=c.seed)
    info = {
        "train_cutoffs": [str(t.date()) for t in train_cuts],
        "valid_cutoff": str(valid_cut.date()),
        "train_rows": int(len(train)),
        "valid_rows": int(len(valid)),
        "train_churn_rate": float(train["churned"].mean()),
        "valid_churn_rate": float(valid["churned"].mean()),
        "best_iteration": model.best_iteration_,
        "chosen": model.chosen_,
        "selection_auc": model.selection_auc_,
    }
    return model, baselines, info


@dataclasses.dataclass
class ChurnBacktest:
    """Metrics per evaluated cutoff and scorer (``model`` and every baseline), and their mean."""

    per_cutoff: pd.DataFrame  # index (cutoff, scorer)
    summary: pd.DataFrame  # index scorer: mean over cutoffs
    training: dict[str, dict[str, Any]]
    predictions: pd.DataFrame  # customer_id, cutoff, churned, model, baselines, value

    def to_dict(self) -> dict[str, Any]:
        return {
            "summary": self.summary.to_dict("index"),
            "per_cutoff": {f"{c}|{s}": row for (c, s), row in self.per_cutoff.to_dict("index").items()},
            "training": self.training,
        }


def backtest_cutoffs(transactions: pd.DataFrame, config: Config, as_of=None) -> list[pd.Timestamp]:
    """The last ``churn.backtest_cutoffs`` cutoffs whose outcome window is complete, ascending."""
    c = config.churn
    end = (pd.Timestamp(as_of) if as_of is not None else transactions[TIMESTAMP].max().normalize() + pd.Timedelta(days=1))
    latest = end - pd.Timedelta(days=c.horizon_days)
    return sorted(latest - pd.Timedelta(days=i * c.cutoff_step_days) for i in range(c.backtest_cutoffs))


def churn_backtest(store: FeatureStore, cutoffs: list[pd.Timestamp] | None = None) -> ChurnBacktest:
    """Train at each cutoff as of then, score the customers in scope, compare with the actual
    churn: model and baselines, metrics from :func:`churnml.evaluation.churn_metrics`."""
    cfg = store.config
    c = cfg.churn
    cutoffs = cutoffs or backtest_cutoffs(store.transactions, cfg)
    rows, preds, training = [], [], {}
    for cut in cutoffs:
        model, baselines, info = fit_churn_model(store, cut)
        test = store.labelled(cut)
        scores = {"model": model.predict_proba(test)[:, 1], **baseline_scores(baselines, test)}
        y = test["churned"].to_numpy()
        value = test["btyd_value"].to_numpy()
        for name, p in scores.items():
            m = churn_metrics(y, p, value=value, contact_cost=c.contact_cost, offer_acceptance=c.offer_acceptance, top_k_share=c.top_k_share)
            rows.append({"cutoff": str(cut.date()), "scorer": name, **m})
        training[str(cut.date())] = info
        preds.append(pd.DataFrame({"cutoff": cut, "churned": y, "value": value, **scores}, index=test.index))
    per = pd.DataFrame(rows).set_index(["cutoff", "scorer"])
    summary = per.groupby(level="scorer", sort=False).mean()
    return ChurnBacktest(per, summary, training, pd.concat(preds))
