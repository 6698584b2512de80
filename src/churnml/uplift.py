"""Uplift modelling: who is worth contacting, as opposed to who is at risk.

A retention campaign pays for the customers it *changes*: the uplift (individual treatment
effect) of customer ``i`` is ``tau_i = P(retained | contacted, x_i) - P(retained | not
contacted, x_i)`` (probability points, in [-1, 1]; "retained" = bought within the campaign's
window). Risk targeting contacts customers with a high ``P(churn)``; many of them are lost
causes (nothing brings them back) and some react badly to contact (sleeping dogs, ``tau < 0``).
Uplift targeting ranks by expected *incremental* value ``tau_i x value_if_retained_i - cost_i``
(:func:`expected_incremental_value`).

Estimators (scikit-learn conventions: parameters in ``__init__``, learned state with a trailing
underscore; ``fit(X, treatment, y)``, ``predict(X)`` = estimated ``tau`` per row; LightGBM base
learners, ``deterministic=True``, seeded by ``seed``; ``n_jobs`` LightGBM threads, results are
reproducible for a fixed ``n_jobs``), all trained on a randomised experiment (a campaign with a
control group):

* :class:`TLearner`: one outcome classifier per arm, ``tau = p1(x) - p0(x)``.
* :class:`XLearner`: Künzel, Sekhon, Bickel & Yu (2019, PNAS): imputed effects regressed per
  arm and blended with the propensity.
* :class:`ClassTransformation`: Jaskowski & Jaroszewicz (2012): one classifier of ``Z = 1``
  when (treated and retained) or (control and not retained), ``tau = 2 P(Z=1|x) - 1``, with an
  unequal treatment share handled by re-weighting the arms to 50/50 (or the transformed-outcome
  regression of Athey & Imbens 2015).

Metrics (pure functions over arrays, arguments ``(y, treatment, score)``; customers are ranked
by ``score``, highest first; customers with equal scores form one step of the curves):

* :func:`qini_curve` (Radcliffe 2007): ``Q(n) = Y_T(n) - Y_C(n) N_T(n) / N_C(n)`` for the top
  ``n`` customers, where ``Y_T``/``Y_C`` are the retained customers and ``N_T``/``N_C`` the
  customers of the treated/control arm among them: incremental retained customers, on the
  scale of the treated arm (the ``Y_C`` term is 0 while ``N_C = 0``). Same as scikit-uplift's
  ``qini_curve``.
* :func:`uplift_curve`: ``U(n) = (Y_T(n)/N_T(n) - Y_C(n)/N_C(n)) x n``: incremental retained
  customers had all top-``n`` customers been contacted (a rate is 0 while its arm is empty).
  Same as scikit-uplift's ``uplift_curve`` (causalml calls it the gain curve).
* :func:`qini_coefficient`, :func:`auuc`: the area under the Qini / uplift curve minus the
  area under the random-targeting line (from (0, 0) to the curve's last point), divided by the
  same difference for the best ranking the observed outcomes allow; 0 = random, 1 = perfect,
  negative = worse than random. The normalisation of scikit-uplift's ``qini_auc_score``
  (with ``negative_effect=True``: the optimum puts treated responders first and control
  responders last) and ``uplift_auc_score``. ``normalize=False`` gives the raw area with both
  axes as shares of the customers (x: share targeted, y: curve / number of customers).
* :func:`uplift_at_k`: among the top ``ceil(k x n)`` customers by score, retention rate of the
  treated minus that of the control (scikit-uplift's ``uplift_at_k`` with
  ``strategy="overall"``); ties at the cut are broken by row order.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from churnml.churn import as_categories, category_levels, model_columns
from churnml.errors import DataError, ModelError

__all__ = [
    "ClassTransformation",
    "LEARNERS",
    "TLearner",
    "UpliftTraining",
    "load_uplift_model",
    "train_uplift",
    "UpliftEstimator",
    "XLearner",
    "auuc",
    "captured_incremental_value",
    "check_experiment",
    "evaluate_uplift",
    "expected_incremental_value",
    "experiment_xy",
    "qini_coefficient",
    "qini_curve",
    "uplift_at_k",
    "uplift_curve",
]

_ID_COLUMNS = {"customer_id"}


# --------------------------------------------------------------------------- input checks


def _examples(labels, mask: np.ndarray, limit: int = 3) -> str:
    picked = [str(v) for v in np.asarray(labels)[np.flatnonzero(mask)[:limit]]]
    more = int(mask.sum()) - len(picked)
    return ", ".join(picked) + (f" (+{more:,} more)" if more > 0 else "")


def _binary(values, name: str, labels, n: int) -> np.ndarray:
    """``values`` as an int array of 0/1 (booleans allowed); a DataError naming ``name`` and
    example rows otherwise."""
    arr = np.asarray(values.to_numpy() if isinstance(values, (pd.Series, pd.Index)) else values, dtype=object).reshape(-1)
    if arr.size != n:
        raise DataError(f"{name} has {arr.size:,} values but X has {n:,} rows")
    num = pd.to_numeric(pd.Series(arr), errors="coerce").to_numpy(dtype=float)
    bad = ~np.isin(num, (0.0, 1.0))
    if bad.any():
        raise DataError(f"{name} must be 0 or 1 (or true/false): {int(bad.sum()):,} row(s) are not, e.g. rows "
                        f"{_examples(labels, bad)} (values {[arr[i] for i in np.flatnonzero(bad)[:3]]})")
    return num.astype(np.int64)


def check_experiment(X, treatment, y) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Validate an experiment: ``X`` (DataFrame, or 2-D array: columns ``x0, x1, ...``),
    ``treatment`` (1 = contacted, 0 = control; both present) and ``y`` (1 = retained, 0 = not;
    both values in each arm), all of the same length. Returns ``(X, treatment, y)`` with
    ``treatment``/``y`` as int arrays; raises :class:`~churnml.errors.DataError` (a
    ``ValueError``) naming the problem and example rows."""
    X = _frame(X)
    n = len(X)
    if n == 0:
        raise DataError("the experiment has no rows")
    t = _binary(treatment, "treatment", X.index, n)
    yy = _binary(y, "y (retained)", X.index, n)
    for arm, name in ((1, "treated"), (0, "control")):
        if not (t == arm).any():
            raise DataError(f"treatment has no {name} customers ({'1' if arm else '0'}): an uplift model needs both arms")
        outcomes = np.unique(yy[t == arm])
        if outcomes.size < 2:
            raise DataError(f"every {name} customer has y = {int(outcomes[0])}: an uplift model needs both outcomes in each arm")
    return X, t, yy


def experiment_xy(table: pd.DataFrame, *, treatment: str = "treatment", outcome: str = "retained",
                  exclude=()) -> tuple[pd.DataFrame, pd.Series, pd.Series]:
    """Split an experiment table (one row per customer: features at the campaign start, the
    ``treatment`` column (1 contacted, 0 control) and the ``outcome`` column (1 retained in the
    window)) into ``(X, treatment, y)``. ``X`` is every other column but ``customer_id`` and
    ``exclude``: leave out anything measured after the campaign start (e.g. the window's
    spend), or the model learns from the outcome."""
    missing = [c for c in (treatment, outcome, *exclude) if c not in table.columns]
    if missing:
        raise DataError(f"the experiment table lacks column(s) {missing}; it has {list(table.columns)}")
    X = table.drop(columns=[treatment, outcome, *exclude])
    return X, table[treatment], table[outcome]


def _frame(X) -> pd.DataFrame:
    if isinstance(X, pd.DataFrame):
        return X
    arr = np.asarray(X)
    if arr.ndim != 2:
        raise DataError(f"X must be a table (DataFrame or 2-D array), got an array of shape {arr.shape}")
    return pd.DataFrame(arr, columns=[f"x{i}" for i in range(arr.shape[1])])


# --------------------------------------------------------------------------- estimators


class UpliftEstimator(BaseEstimator):
    """Common base of the uplift estimators: feature handling, LightGBM base learners, checks.

    Features are the numeric, boolean and text columns of ``X`` (``customer_id`` left out);
    text columns with few distinct values enter LightGBM as categoricals (``categories_``, as
    in :class:`churnml.churn.ChurnModel`), the others are left out and listed in
    ``dropped_features_`` with the reason. ``predict`` selects ``feature_names_`` from its
    input (extra columns are ignored) and raises :class:`~churnml.errors.ModelError` naming the
    missing ones.

    Subclasses implement ``_fit(M, t, y)`` and ``_predict(M)``; their parameters shared by all
    LightGBM base learners are ``n_estimators``, ``learning_rate``, ``num_leaves``,
    ``min_child_samples``, ``subsample`` (row share per tree), ``colsample_bytree``,
    ``reg_lambda``, ``seed`` and ``n_jobs``.
    """

    def _lgbm_params(self, offset: int) -> dict[str, Any]:
        return dict(
            n_estimators=self.n_estimators, learning_rate=self.learning_rate, num_leaves=self.num_leaves,
            min_child_samples=self.min_child_samples, subsample=self.subsample, subsample_freq=1 if self.subsample < 1 else 0,
            colsample_bytree=self.colsample_bytree, reg_lambda=self.reg_lambda, random_state=self.seed + offset,
            deterministic=True, force_row_wise=True, n_jobs=self.n_jobs, verbose=-1,
        )

    def _classifier(self, offset: int):
        import lightgbm as lgb

        return lgb.LGBMClassifier(objective="binary", **self._lgbm_params(offset))

    def _regressor(self, offset: int):
        import lightgbm as lgb

        return lgb.LGBMRegressor(objective="regression", **self._lgbm_params(offset))

    def _setup_features(self, X: pd.DataFrame) -> None:
        cols = [c for c in model_columns(X) if c not in _ID_COLUMNS]
        self.categories_, dropped = category_levels(X, cols)
        for c in X.columns:
            if c not in cols and c not in _ID_COLUMNS:
                dropped[c] = f"{X[c].dtype} column: not numeric, boolean or text"
        self.dropped_features_ = dropped
        self.feature_names_ = [c for c in cols if c not in dropped]
        if not self.feature_names_:
            raise DataError(f"X has no usable feature column (numeric, boolean or text with few values); columns: {list(X.columns)}")
        self.n_features_in_ = len(self.feature_names_)

    def _matrix(self, X) -> pd.DataFrame:
        X = _frame(X)
        missing = [c for c in self.feature_names_ if c not in X.columns]
        if missing:
            raise ModelError(f"the data lacks feature column(s) the uplift model was trained on: {missing} "
                             f"(it needs {self.feature_names_})")
        M = as_categories(X[self.feature_names_], self.categories_)
        for c in M.columns:
            if c in self.categories_:
                continue
            col = M[c]
            if pd.api.types.is_numeric_dtype(col.dtype) or pd.api.types.is_bool_dtype(col.dtype):
                M[c] = col.astype(float)
                continue
            num = pd.to_numeric(col.astype(object), errors="coerce")
            bad = num.isna().to_numpy() & col.notna().to_numpy()
            if bad.any():
                raise DataError(f"column {c!r} must be numeric: {int(bad.sum()):,} value(s) are not, e.g. rows "
                                f"{_examples(M.index, bad)} (values {col[bad].head(3).tolist()})")
            M[c] = num.astype(float)
        return M

    def fit(self, X, treatment, y) -> "UpliftEstimator":
        """Fit on a randomised experiment: ``X`` features at the campaign start, ``treatment``
        (1 contacted, 0 control), ``y`` (1 retained in the window, 0 not); see
        :func:`check_experiment`."""
        X, t, yy = check_experiment(X, treatment, y)
        self._setup_features(X)
        self.treatment_share_ = float(t.mean())
        self._fit(self._matrix(X), t, yy)
        return self

    def predict(self, X) -> np.ndarray:
        """Estimated uplift per row: ``P(retained | contacted) - P(retained | control)``
        (probability points, in [-1, 1])."""
        check_is_fitted(self, "feature_names_")
        M = self._matrix(X)
        if len(M) == 0:
            return np.zeros(0)
        return np.clip(np.asarray(self._predict(M), dtype=float), -1.0, 1.0)

    def _fit(self, M: pd.DataFrame, t: np.ndarray, y: np.ndarray) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _predict(self, M: pd.DataFrame) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def _propensity_value(self, t: np.ndarray) -> float:
        p = self.propensity
        if isinstance(p, str):
            if p != "share":
                raise ValueError(f"propensity must be 'share' or a probability in (0, 1), got {p!r}")
            return float(t.mean())
        p = float(p)
        if not 0.0 < p < 1.0:
            raise ValueError(f"propensity must be strictly between 0 and 1, got {p!r}")
        return p


class TLearner(UpliftEstimator):
    """Two-model uplift: a LightGBM classifier of retention on the control arm (``model_control_``)
    and one on the treated arm (``model_treated_``); ``predict`` = ``p_treated(x) - p_control(x)``.

    Simple and unbiased in a randomised experiment, but each model spends its capacity on the
    outcome's (large) variation, not on the (small) difference, so its uplift is noisy.
    """

    def __init__(self, *, n_estimators: int = 200, learning_rate: float = 0.05, num_leaves: int = 15,
                 min_child_samples: int = 50, subsample: float = 0.8, colsample_bytree: float = 0.8,
                 reg_lambda: float = 1.0, seed: int = 42, n_jobs: int = 1):
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.num_leaves = num_leaves
        self.min_child_samples = min_child_samples
        self.subsample = subsample
        self.colsample_bytree = colsample_bytree
        self.reg_lambda = reg_lambda
        self.seed = seed
        self.n_jobs = n_jobs

    def _fit(self, M, t, y):
        self.model_control_ = self._classifier(0).fit(M[t == 0], y[t == 0])
        self.model_treated_ = self._classifier(1).fit(M[t == 1], y[t == 1])

    def predict_outcomes(self, X) -> pd.DataFrame:
        """``p_control`` and ``p_treated`` per row: the estimated retention probabilities without
        and with contact."""
        check_is_fitted(self, "model_treated_")
        M = self._matrix(X)
        return pd.DataFrame({"p_control": self.model_control_.predict_proba(M)[:, 1],
                             "p_treated": self.model_treated_.predict_proba(M)[:, 1]}, index=M.index)

    def _predict(self, M):
        return self.model_treated_.predict_proba(M)[:, 1] - self.model_control_.predict_proba(M)[:, 1]


class XLearner(UpliftEstimator):
    """X-learner (Künzel, Sekhon, Bickel & Yu 2019).

    1. Outcome classifiers ``mu0`` (control arm) and ``mu1`` (treated arm).
    2. Imputed effects: ``D1 = y - mu0(x)`` for treated customers, ``D0 = mu1(x) - y`` for
       control customers; LightGBM regressions ``tau1`` (on the treated) and ``tau0`` (on the
       control) of them.
    3. ``tau(x) = g(x) tau0(x) + (1 - g(x)) tau1(x)`` with ``g`` the propensity (probability of
       being treated): ``propensity="share"`` (default) uses the treated share of the training
       data (a randomised campaign contacts everyone with the same probability), a float is a
       known assignment probability, ``"estimate"`` fits a LightGBM classifier of the treatment
       (``propensity_model_``; for assignment probabilities that vary with the features),
       clipped to [0.05, 0.95].

    Attributes: ``model_control_``, ``model_treated_`` (``mu0``, ``mu1``), ``effect_control_``,
    ``effect_treated_`` (``tau0``, ``tau1``), ``propensity_`` (the constant, or None when
    estimated).
    """

    def __init__(self, *, propensity: float | str = "share", n_estimators: int = 200, learning_rate: float = 0.05,
                 num_leaves: int = 15, min_child_samples: int = 50, subsample: float = 0.8,
                 colsample_bytree: float = 0.8, reg_lambda: float = 1.0, seed: int = 42, n_jobs: int = 1):
        self.propensity = propensity
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.num_leaves = num_leaves
        self.min_child_samples = min_child_samples
        self.subsample = subsample
        self.colsample_bytree = colsample_bytree
        self.reg_lambda = reg_lambda
        self.seed = seed
        self.n_jobs = n_jobs

    def _fit(self, M, t, y):
        if self.propensity == "estimate":
            self.propensity_ = None
            self.propensity_model_ = self._classifier(4).fit(M, t)
        else:
            self.propensity_ = self._propensity_value(t)
            self.propensity_model_ = None
        treated, control = t == 1, t == 0
        self.model_control_ = self._classifier(0).fit(M[control], y[control])
        self.model_treated_ = self._classifier(1).fit(M[treated], y[treated])
        d_treated = y[treated] - self.model_control_.predict_proba(M[treated])[:, 1]
        d_control = self.model_treated_.predict_proba(M[control])[:, 1] - y[control]
        self.effect_treated_ = self._regressor(2).fit(M[treated], d_treated)
        self.effect_control_ = self._regressor(3).fit(M[control], d_control)

    def _g(self, M) -> np.ndarray:
        if self.propensity_model_ is not None:
            return np.clip(self.propensity_model_.predict_proba(M)[:, 1], 0.05, 0.95)
        return np.full(len(M), self.propensity_)

    def _predict(self, M):
        g = self._g(M)
        return g * self.effect_control_.predict(M) + (1.0 - g) * self.effect_treated_.predict(M)


class ClassTransformation(UpliftEstimator):
    """Class-transformation uplift (Jaskowski & Jaroszewicz 2012).

    ``Z = 1`` for treated customers who were retained and control customers who were not. With
    a 50/50 randomisation, ``P(Z=1|x) = (p1(x) + 1 - p0(x)) / 2``, so ``tau(x) = 2 P(Z=1|x) - 1``:
    one LightGBM classifier (``model_``) learns the uplift directly.

    The identity needs each customer treated with probability 1/2. With another treatment share
    ``p`` (``propensity="share"``: the training data's, or a known float):

    * ``method="reweight"`` (default): treated rows weigh ``0.5 / p`` and control rows
      ``0.5 / (1 - p)``, so the weighted experiment is a 50/50 one and the identity holds;
    * ``method="transformed_outcome"``: a LightGBM regression (L2) of the transformed outcome
      ``y* = y (t - p) / (p (1 - p))``, whose conditional mean is ``tau(x)`` for any constant
      ``p`` (Athey & Imbens 2015); noisier, predictions clipped to [-1, 1].

    The assignment probability must not depend on the features (a randomised campaign).
    Attributes: ``model_``, ``propensity_``.
    """

    def __init__(self, *, method: str = "reweight", propensity: float | str = "share", n_estimators: int = 200,
                 learning_rate: float = 0.05, num_leaves: int = 15, min_child_samples: int = 50,
                 subsample: float = 0.8, colsample_bytree: float = 0.8, reg_lambda: float = 1.0,
                 seed: int = 42, n_jobs: int = 1):
        self.method = method
        self.propensity = propensity
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.num_leaves = num_leaves
        self.min_child_samples = min_child_samples
        self.subsample = subsample
        self.colsample_bytree = colsample_bytree
        self.reg_lambda = reg_lambda
        self.seed = seed
        self.n_jobs = n_jobs

    def _fit(self, M, t, y):
        if self.method not in ("reweight", "transformed_outcome"):
            raise ValueError(f"method must be 'reweight' or 'transformed_outcome', got {self.method!r}")
        p = self.propensity_ = self._propensity_value(t)
        if self.method == "reweight":
            z = (y == t).astype(np.int64)
            weight = np.where(t == 1, 0.5 / p, 0.5 / (1.0 - p))
            self.model_ = self._classifier(0).fit(M, z, sample_weight=weight)
        else:
            y_star = y * (t - p) / (p * (1.0 - p))
            self.model_ = self._regressor(0).fit(M, y_star)

    def _predict(self, M):
        if self.method == "reweight":
            return 2.0 * self.model_.predict_proba(M)[:, 1] - 1.0
        return self.model_.predict(M)


# --------------------------------------------------------------------------- metrics


def _metric_inputs(y, treatment, score) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    y = np.asarray(y)
    n = y.shape[0] if y.ndim else 0
    labels = np.arange(n)
    yy = _binary(y, "y", labels, n)
    t = _binary(treatment, "treatment", labels, n)
    s = np.asarray(score, dtype=float).reshape(-1)
    if s.size != n:
        raise DataError(f"score has {s.size:,} values but y has {n:,}")
    if n == 0:
        raise DataError("no customers to evaluate")
    if np.isnan(s).any():
        raise DataError(f"score has missing values, e.g. rows {_examples(labels, np.isnan(s))}")
    if not (t == 1).any() or not (t == 0).any():
        raise DataError("treatment needs both treated (1) and control (0) customers")
    return yy, t, s


def _cumulative(y, t, s):
    """Counts at each distinct score threshold (highest score first): n, N_T, Y_T, N_C, Y_C."""
    order = np.argsort(-s, kind="mergesort")
    y, t, s = y[order], t[order], s[order]
    ends = np.r_[np.flatnonzero(np.diff(s)), s.size - 1]  # last row of each group of equal scores
    n = (ends + 1).astype(float)
    n_t = np.cumsum(t)[ends].astype(float)
    y_t = np.cumsum(y * t)[ends].astype(float)
    n_c = n - n_t
    y_c = np.cumsum(y * (1 - t))[ends].astype(float)
    return n, n_t, y_t, n_c, y_c


def _ratio(a, b):
    return np.divide(a, b, out=np.zeros_like(a), where=b != 0)


def _qini_points(y, t, s):
    n, n_t, y_t, n_c, y_c = _cumulative(y, t, s)
    return np.r_[0.0, n], np.r_[0.0, y_t - y_c * _ratio(n_t, n_c)]


def _uplift_points(y, t, s):
    n, n_t, y_t, n_c, y_c = _cumulative(y, t, s)
    return np.r_[0.0, n], np.r_[0.0, (_ratio(y_t, n_t) - _ratio(y_c, n_c)) * n]


def qini_curve(y, treatment, score) -> tuple[np.ndarray, np.ndarray]:
    """Qini curve (Radcliffe 2007): ``(n, Q(n))`` at 0 and at each distinct score threshold,
    customers ranked by ``score`` (highest first): ``Q(n) = Y_T(n) - Y_C(n) N_T(n) / N_C(n)``,
    incremental retained customers among the top ``n`` on the treated arm's scale (see the
    module docstring)."""
    return _qini_points(*_metric_inputs(y, treatment, score))


def uplift_curve(y, treatment, score) -> tuple[np.ndarray, np.ndarray]:
    """Uplift curve: ``(n, U(n))`` at 0 and at each distinct score threshold:
    ``U(n) = (Y_T(n)/N_T(n) - Y_C(n)/N_C(n)) n``, the incremental retained customers had the
    top ``n`` all been contacted (see the module docstring)."""
    return _uplift_points(*_metric_inputs(y, treatment, score))


def _area(x, v) -> float:
    return float(np.sum(np.diff(x) * (v[1:] + v[:-1]) / 2.0))


def _normalised(curve, perfect_score, y, t, s, normalize: bool) -> float:
    x, v = curve(y, t, s)
    total = x[-1]
    if not normalize:
        return _area(x / total, v / total)
    random_area = total * v[-1] / 2.0
    px, pv = curve(y, t, perfect_score)
    denom = _area(px, pv) - random_area
    if denom <= 0:
        return float("nan")
    return float((_area(x, v) - random_area) / denom)


def qini_coefficient(y, treatment, score, *, normalize: bool = True) -> float:
    """Qini coefficient: (area under the Qini curve - area under the random line from (0, 0) to
    its last point) / (the same for the perfect ranking), where the perfect ranking puts treated
    retained customers first and control retained customers last (scikit-uplift's
    ``qini_auc_score`` with ``negative_effect=True``). 0 = random, 1 = perfect, < 0 worse than
    random; NaN when no ranking can beat random (no positive effect observed).
    ``normalize=False``: the raw area under the Qini curve with both axes divided by the number
    of customers."""
    y, t, s = _metric_inputs(y, treatment, score)
    perfect = (y * t - y * (1 - t)).astype(float)
    return _normalised(_qini_points, perfect, y, t, s, normalize)


def auuc(y, treatment, score, *, normalize: bool = True) -> float:
    """Area under the uplift curve, normalised like :func:`qini_coefficient`: (area - area
    under the random line) / (the same for the perfect ranking), the perfect ranking as in
    scikit-uplift's ``perfect_uplift_curve`` (treated retained and control not-retained first;
    then control retained before treated not-retained if there are more of them, else the
    reverse). ``normalize=False``: the raw area with both axes divided by the number of
    customers (random targeting gives half the average treatment effect)."""
    y, t, s = _metric_inputs(y, treatment, score)
    control_responders = int(np.sum((y == 1) & (t == 0)))
    treated_nonresponders = int(np.sum((y == 0) & (t == 1)))
    tail = y if control_responders > treated_nonresponders else t
    perfect = (2 * (y == t) + tail).astype(float)
    return _normalised(_uplift_points, perfect, y, t, s, normalize)


def uplift_at_k(y, treatment, score, k: float = 0.3) -> float:
    """Uplift among the top ``ceil(k x n)`` customers by ``score`` (``k`` a share in (0, 1]):
    their treated customers' retention rate minus their control customers' (probability
    points). Ties at the cut are broken by row order. A DataError when one arm has no customer
    in the top share."""
    y, t, s = _metric_inputs(y, treatment, score)
    if not 0.0 < float(k) <= 1.0:
        raise DataError(f"k must be a share in (0, 1], got {k!r}")
    top = np.argsort(-s, kind="mergesort")[: _top_count(k, s.size)]
    yt, tt = y[top], t[top]
    if not (tt == 1).any() or not (tt == 0).any():
        raise DataError(f"the top {k:.0%} ({top.size:,} customers) holds no {'treated' if not (tt == 1).any() else 'control'} "
                        "customer: uplift at k is undefined")
    return float(yt[tt == 1].mean() - yt[tt == 0].mean())


def evaluate_uplift(y, treatment, score, k: float = 0.3) -> dict[str, float]:
    """All ranking metrics of ``score`` on an experiment's outcomes: ``qini`` (coefficient),
    ``auuc`` (normalised), ``uplift_at_k`` and ``k``, plus ``ate`` (retention of the treated
    minus the control, all customers: what random targeting gets on average)."""
    y, t, s = _metric_inputs(y, treatment, score)
    return {
        "qini": qini_coefficient(y, t, s),
        "auuc": auuc(y, t, s),
        "uplift_at_k": uplift_at_k(y, t, s, k=k),
        "k": float(k),
        "ate": float(y[t == 1].mean() - y[t == 0].mean()),
    }


# --------------------------------------------------------------------------- targeting


def _top_count(k: float, n: int) -> int:
    """``ceil(k x n)``, without float artefacts (0.3 x 10 is 3, not 4)."""
    return math.ceil(round(float(k) * n, 9))


def _vector(values, name: str) -> np.ndarray:
    arr = np.asarray(values.to_numpy() if isinstance(values, (pd.Series, pd.Index)) else values, dtype=float).reshape(-1)
    return arr


def expected_incremental_value(model_or_uplift, value_if_retained, *, X=None, cost=0.0) -> np.ndarray:
    """Expected incremental value of contacting each customer (currency):
    ``uplift_i x value_if_retained_i - cost_i``, with ``uplift`` either given (array, probability
    points) or predicted by a fitted uplift estimator on ``X``. ``value_if_retained`` is the
    value a retained customer brings (currency, e.g. the spend or CLV over the campaign's
    horizon); ``cost`` the cost of contacting (currency, scalar or per customer). Rank by it,
    highest first, to spend a budget on the customers the campaign changes most."""
    if hasattr(model_or_uplift, "predict"):
        if X is None:
            raise ValueError("an uplift model needs X, the customers' features, to predict the uplift")
        uplift = np.asarray(model_or_uplift.predict(X), dtype=float)
    else:
        uplift = _vector(model_or_uplift, "uplift")
    value = _vector(value_if_retained, "value_if_retained")
    cost = _vector(cost, "cost") if np.ndim(cost) else np.full(value.size, float(cost))
    labels = X.index if isinstance(X, pd.DataFrame) else np.arange(value.size)
    for name, arr in (("uplift", uplift), ("value_if_retained", value), ("cost", cost)):
        if arr.size != value.size or arr.size != uplift.size:
            raise DataError(f"{name} has {arr.size:,} values, expected {uplift.size:,} (one per customer)")
        bad = ~np.isfinite(arr)
        if bad.any():
            raise DataError(f"{name} has missing or infinite values, e.g. rows {_examples(labels, bad)}")
    return uplift * value - cost


def captured_incremental_value(score, true_uplift, value_if_retained, k: float = 0.3) -> float:
    """TRUE incremental value (currency) of contacting the top ``ceil(k x n)`` customers by
    ``score``: ``sum(true_uplift x value_if_retained)`` over them. Only simulated data know
    ``true_uplift`` (:func:`churnml.datasets.simulate_campaign`); ties broken by row order."""
    s = _vector(score, "score")
    gain = _vector(true_uplift, "true_uplift") * _vector(value_if_retained, "value_if_retained")
    if s.size != gain.size:
        raise DataError(f"score has {s.size:,} values, true_uplift {gain.size:,}")
    if not 0.0 < float(k) <= 1.0:
        raise DataError(f"k must be a share in (0, 1], got {k!r}")
    top = np.argsort(-s, kind="mergesort")[: _top_count(k, s.size)]
    return float(gain[top].sum())


# --------------------------------------------------------------------------- train, save, load


LEARNERS = {"x": "XLearner", "t": "TLearner", "ct": "ClassTransformation"}


@dataclasses.dataclass
class UpliftTraining:
    """What :func:`train_uplift` produced: the model (refitted on every customer), its held-out
    metrics next to random targeting's, and the sizes."""

    model: UpliftEstimator
    metrics: dict[str, float]
    n_train: int
    n_test: int
    features: list[str]


def _test_rows(ids: pd.Series, share: float, seed: int) -> np.ndarray:
    """A persistent seeded hash split of customer ids: True = held out for evaluation."""
    import hashlib

    salt = f"uplift-test-{seed}:".encode()
    u = np.fromiter((int.from_bytes(hashlib.blake2b(salt + str(c).encode(), digest_size=8).digest(), "big") / 2**64
                     for c in ids), dtype=float, count=len(ids))
    return u < share


def train_uplift(table: pd.DataFrame, *, treatment: str = "treatment", outcome: str = "retained", learner: str = "x",
                 exclude=(), test_share: float = 0.3, k: float = 0.3, seed: int = 42, n_jobs: int = 1) -> UpliftTraining:
    """Train an uplift model on an experiment table (one row per customer; ``treatment`` 1/0,
    ``outcome`` 1/0 retained in the window, every other column but ``customer_id`` and ``exclude``
    a feature known at the campaign start). Evaluated on a seeded ``test_share`` of the customers
    held out of a first fit (Qini coefficient, AUUC, uplift at ``k``; random targeting gets about 0
    Qini and ``ate`` uplift at k), then refitted on all customers. ``learner``: ``x``, ``t`` or ``ct``."""
    if learner not in LEARNERS:
        raise DataError(f"--learner {learner!r}: use one of {sorted(LEARNERS)}")
    if not 0 < test_share < 1:
        raise DataError(f"--test-share {test_share!r}: a share in (0, 1)")
    X, t, y = experiment_xy(table, treatment=treatment, outcome=outcome, exclude=exclude)
    ids = table["customer_id"] if "customer_id" in table.columns else pd.Series(table.index.astype(str))
    test = _test_rows(ids, test_share, seed)
    cls = globals()[LEARNERS[learner]]
    first = cls(seed=seed, n_jobs=n_jobs).fit(X.loc[~test], np.asarray(t)[~test], np.asarray(y)[~test])
    metrics = evaluate_uplift(np.asarray(y)[test], np.asarray(t)[test], first.predict(X.loc[test]), k=k)
    model = cls(seed=seed, n_jobs=n_jobs).fit(X, t, y)
    return UpliftTraining(model, metrics, int((~test).sum()), int(test.sum()), list(model.feature_names_))


def load_uplift_model(uri: str) -> UpliftEstimator:
    """An uplift model from a ``.joblib`` file written by ``churnml uplift`` (or ``joblib.dump``) or
    an MLflow URI of a model logged with ``mlflow.sklearn``. Loading a pickle runs code from it:
    load only models you or your team wrote. Raises :class:`ModelError` when it cannot be loaded."""
    try:
        if uri.endswith(".joblib"):
            from pathlib import Path

            import joblib

            if not Path(uri).is_file():
                raise ModelError(f"uplift model not found: {uri}")
            model = joblib.load(uri)
        else:
            import mlflow.sklearn

            model = mlflow.sklearn.load_model(uri)
    except ModelError:
        raise
    except Exception as err:  # noqa: BLE001 - any failure: the URI is the problem
        raise ModelError(f"cannot load uplift model {uri}: {type(err).__name__}: {str(err)[:300]}") from None
    if not isinstance(model, UpliftEstimator):
        raise ModelError(f"{uri} is not a churnml uplift model (got {type(model).__name__})")
    return model
