"""Buy-till-you-die CLV: BG/NBD, Pareto/NBD or MBG/NBD purchases with Gamma-Gamma spend.

:class:`CLVModel` wraps the ``lifetimes`` fitters (Fader, Hardie & Lee 2005 "Counting your
customers the easy way" for BG/NBD; Schmittlein, Morrison & Colombo 1987 for Pareto/NBD;
Batislam, Denizel & Filiztekin 2007 for MBG/NBD; Fader, Hardie & Lee 2005 "RFM and CLV" for
Gamma-Gamma) and adds what real logs need:

* fitting on sufficient statistics: customers with equal ``(frequency, recency, T)`` collapse into
  one weighted row, so 1M customers cost what their distinct triples cost;
* a documented fit ladder for logs that break the optimiser (see :data:`FIT_LADDER`);
* discounted CLV over a horizon in days, with a margin.

Model assumptions (BG/NBD): while alive a customer buys as a Poisson process with rate
``lambda ~ Gamma(r, alpha)``; after each repeat purchase they drop out with probability
``p ~ Beta(a, b)``; ``lambda`` and ``p`` are independent across and within customers.
Gamma-Gamma: a customer's spend per purchase varies around a mean that is independent of their
purchase frequency (checked: :attr:`CLVModel.diagnostics_` ``freq_monetary_corr``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import io as _io
import warnings
from typing import Any

import numpy as np
import pandas as pd
from scipy.optimize import minimize
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from churnml.errors import DataError, ModelError

__all__ = [
    "CLVModel", "FIT_LADDER", "NO_DROPOUT_SHARE", "PURCHASE_MODELS", "expected_purchases_no_purchase_probability", "mean_discount",
]

_UNIT_DAYS = {"D": 1.0, "W": 7.0}
_DAYS_PER_MONTH = 365.25 / 12
_DAYS_PER_YEAR = 365.25

FIT_LADDER = (
    "default",  # lifetimes' fit as configured (BFGS from lifetimes' start values)
    "rescaled_time",  # time divided so the oldest customer's T is 10 units; rates converted back
    "moment_start",  # start values from the data's moments instead of lifetimes' 0.1s
    "penalizer_0.001",  # L2 penalizer steps: shrink parameters towards 0
    "penalizer_0.01",
    "penalizer_0.1",
    "penalizer_1",  # strong shrinkage: bounded parameters when nothing lighter is plausible
    "nelder_mead",  # derivative-free optimiser on the same likelihood
)
"""Rungs tried in order until one converges to finite, plausible parameters."""


@dataclasses.dataclass(frozen=True)
class _Spec:
    fitter: str
    params: tuple[str, ...]
    time_params: tuple[str, ...]  # rate parameters in time units: scale with the time unit
    log_space: bool  # does lifetimes' likelihood take log-parameters
    norm: str  # lifetimes divides the weighted NLL by sum ("sum") or mean ("mean") of weights


PURCHASE_MODELS: dict[str, _Spec] = {
    "bgnbd": _Spec("BetaGeoFitter", ("r", "alpha", "a", "b"), ("alpha",), True, "sum"),
    "mbgnbd": _Spec("ModifiedBetaGeoFitter", ("r", "alpha", "a", "b"), ("alpha",), True, "sum"),
    "pareto_nbd": _Spec("ParetoNBDFitter", ("r", "alpha", "s", "beta"), ("alpha", "beta"), False, "mean"),
}
_GG = _Spec("GammaGammaFitter", ("p", "q", "v"), (), True, "sum")


def mean_discount(horizon_days: float, annual_rate: float) -> float:
    """Mean discount factor of cash flows spread evenly over ``horizon_days``, each month's
    share discounted at its end at ``annual_rate`` per year (1.0 when the rate is 0)."""
    edges = np.append(np.arange(_DAYS_PER_MONTH, horizon_days, _DAYS_PER_MONTH), float(horizon_days))
    widths = np.diff(np.concatenate([[0.0], edges]))
    return float(np.sum(widths / (1.0 + annual_rate) ** (edges / _DAYS_PER_YEAR)) / horizon_days)


def _fitter_class(spec: _Spec):
    import lifetimes

    return getattr(lifetimes, spec.fitter)


def _quiet():
    """Silence lifetimes' prints and numerical warnings while fitting (they are recorded instead)."""
    stack = contextlib.ExitStack()
    stack.enter_context(contextlib.redirect_stdout(_io.StringIO()))
    stack.enter_context(warnings.catch_warnings())
    warnings.simplefilter("ignore")
    stack.enter_context(np.errstate(all="ignore"))
    return stack


def _plausible(params: pd.Series) -> bool:
    v = params.to_numpy(dtype=float)
    return bool(np.all(np.isfinite(v)) and np.all(v >= 0))


def _rounded(params: pd.Series) -> dict[str, float]:
    return {k: float(f"{v:.4g}") for k, v in params.items()}


def _at_boundary(params: pd.Series) -> bool:
    """Parameters run off to 0 or infinity: a degenerate optimum (e.g. nobody drops out, or
    every customer buys at the same rate); predictions can still be finite and useful."""
    v = params.to_numpy(dtype=float)
    return bool(np.any(v < 1e-6) or np.any(v > 1e6))


NO_DROPOUT_SHARE = 0.01
"""A fitted purchase model *sees no dropout* when it estimates that fewer than this share of
the repeat customers it was fitted on have already dropped out: the (count-weighted) mean of
``1 - P(alive)`` over customers with ``frequency > 0``, each at their own age ``T``, is below
1%. One-time buyers are left out because BG/NBD fixes their P(alive) at 1 by construction.
Such a model is :attr:`CLVModel.degenerate_` whatever its rung: its P(alive) is ~1 for (nearly)
everyone and says nothing about who has left (on BG/NBD and MBG/NBD this happens when the
dropout probability per repeat purchase ``a / (a + b)`` is ~0; on Pareto/NBD when the death
rate ``s / beta`` is ~0, an expected lifetime far beyond the log)."""


def _dropout_share(fitter, columns: dict[str, np.ndarray], weights: np.ndarray) -> float:
    """Estimated share of the repeat customers (``frequency > 0``) of the fit data who have
    already dropped out by their age ``T``: the weighted mean of ``1 - P(alive)`` (NaN without
    repeaters)."""
    rep = columns["frequency"] > 0
    if not rep.any():
        return float("nan")
    with _quiet():
        alive = np.asarray(
            fitter.conditional_probability_alive(columns["frequency"][rep], columns["recency"][rep], columns["T"][rep]),
            dtype=float,
        )
    return float(np.average(1.0 - np.clip(alive, 0.0, 1.0), weights=weights[rep]))


def _dropout_summary(spec: _Spec, params: pd.Series, unit_days: float) -> dict[str, float]:
    """The fitted dropout process in plain units: BG/NBD and MBG/NBD ``dropout_per_purchase``
    (the mean dropout probability after a repeat purchase, ``a / (a + b)``); Pareto/NBD
    ``mean_lifetime_days`` (the mean of the exponential lifetime, ``beta / (s - 1)`` time units
    in days; inf when ``s <= 1``)."""
    if "s" in spec.params:
        s, beta = float(params["s"]), float(params["beta"])
        return {"mean_lifetime_days": beta / (s - 1.0) * unit_days if s > 1 else float("inf")}
    a, b = float(params["a"]), float(params["b"])
    return {"dropout_per_purchase": a / (a + b) if a + b > 0 else float("nan")}


IMPLAUSIBLE_RATE_FACTOR = 20.0
"""A purchase model whose conditional expected purchase rate for some customer (over the
observation span) exceeds this multiple of the fastest observed repeat rate, or whose expected
repeat purchases of the whole population over the mean observed age exceed this multiple of
the repeats actually observed, is implausible: the fit ladder moves on. Gamma-Gamma: expected
spend per purchase above this multiple of the largest observed mean spend."""


def _prediction_problem(fitter, columns: dict[str, np.ndarray], weights: np.ndarray, is_spend: bool) -> str | None:
    """Why a fitted model's in-sample predictions cannot ship (non-finite or implausible), or None."""
    with _quiet():
        if is_spend:
            m = columns["monetary_value"]
            out = np.asarray(fitter.conditional_expected_average_profit(columns["frequency"], m), dtype=float)
            if not np.all(np.isfinite(out)):
                return "non-finite expected spend"
            if out.max() > IMPLAUSIBLE_RATE_FACTOR * m.max() or out.min() < 0:
                return f"expected spend per purchase up to {out.max():.4g} vs observed at most {m.max():.4g}"
            return None
        f, r, T = columns["frequency"], columns["recency"], columns["T"]
        span = float(np.max(T))
        alive = np.asarray(fitter.conditional_probability_alive(f, r, T), dtype=float)
        future = np.asarray(fitter.conditional_expected_number_of_purchases_up_to_time(span, f, r, T), dtype=float)
    if not (np.all(np.isfinite(alive)) and np.all(np.isfinite(future))):
        return "non-finite P(alive) or expected purchases"
    if alive.min() < -1e-9 or alive.max() > 1 + 1e-9 or future.min() < -1e-9:
        return "P(alive) outside [0, 1] or negative expected purchases"
    observed = f / np.maximum(T, 1.0)
    fastest = max(float(observed.max()), 1.0 / span)
    rate = future / span
    if rate.max() > IMPLAUSIBLE_RATE_FACTOR * fastest:
        return (
            f"expected purchase rate up to {rate.max():.4g} per time unit while the fastest customer "
            f"bought {fastest:.4g} per unit"
        )
    age = float(np.average(T, weights=weights))
    with _quiet():
        ahead = np.asarray(fitter.conditional_expected_number_of_purchases_up_to_time(age, f, r, T), dtype=float)
    past = float(np.sum(weights * f))
    if np.sum(weights * ahead) > IMPLAUSIBLE_RATE_FACTOR * max(past, 1.0):
        return (
            f"the population would make {np.sum(weights * ahead):.4g} repeat purchases in the next {age:.3g} time "
            f"units after {past:.4g} so far"
        )
    return None


def _fit_lifetimes_likelihood(fitter, spec: _Spec, arrays: tuple, weights: np.ndarray, penalizer: float, init, tol: float) -> None:
    """What lifetimes' ``fit`` does for BG/NBD, MBG/NBD and Gamma-Gamma (its likelihood, its
    autograd gradient, BFGS from its start values, its internal time scaling), without the
    autograd Hessian it computes afterwards for standard errors churnml never reads (about 40%
    of the fit time on 1M customers)."""
    from autograd import value_and_grad

    from lifetimes.utils import ConvergenceError

    cls = type(fitter)
    if spec is _GG:
        internal = 1.0
        args = (*arrays, weights, penalizer)
    else:  # lifetimes scales time so that the oldest customer's T is 1
        internal = 1.0 / float(np.max(arrays[2]))
        args = (arrays[0], arrays[1] * internal, arrays[2] * internal, weights, penalizer)
    x0 = 0.1 * np.ones(len(spec.params)) if init is None else np.asarray(init, dtype=float)
    res = minimize(value_and_grad(cls._negative_log_likelihood), x0, jac=True, tol=tol, args=args, options={"disp": False})
    if not res.success:
        raise ConvergenceError(f"The model did not converge ({res.message}).")
    params = pd.Series(np.exp(res.x), index=list(spec.params), dtype=float)
    for p in spec.time_params:
        params[p] /= internal
    fitter.params_ = params
    fitter._negative_log_likelihood_ = float(res.fun)


def _make_picklable(fitter) -> None:
    """lifetimes binds lambdas onto the fitted instance (``generate_new_data``), which plain
    pickle/joblib cannot store; drop them (the class methods stay available)."""
    for attr in ("generate_new_data", "predict"):
        fitter.__dict__.pop(attr, None)


def _weighted_ll(spec: _Spec, fitter, args: tuple) -> float:
    """Total log-likelihood of the data at the fitted parameters (no penalty)."""
    params = fitter.params_[list(spec.params)].to_numpy(dtype=float)
    # lifetimes' likelihoods want time-rate parameters in the units of the data passed in
    x = np.log(params) if spec.log_space else params
    *data, weights = args
    with _quiet():
        nll = type(fitter)._negative_log_likelihood(x, *data, weights, 0.0)
    norm = weights.sum() if spec.norm == "sum" else weights.mean()
    return float(-nll * norm)


def _moment_start(spec: _Spec, freq: np.ndarray, T: np.ndarray, w: np.ndarray) -> np.ndarray:
    rate = max(float(np.average(freq, weights=w)) / max(float(np.average(T, weights=w)), 1e-9), 1e-6)
    if spec is _GG:
        start = np.array([2.0, 3.0, 1.0])
    elif "s" in spec.params:
        start = np.array([1.0, 1.0 / rate, 1.0, float(np.average(T, weights=w))])
    else:
        start = np.array([1.0, 1.0 / rate, 1.0, 3.0])
    return np.log(start) if spec.log_space else start


def _set_params(fitter, spec: _Spec, values: np.ndarray, scale: float, data: dict) -> None:
    params = pd.Series(np.exp(values) if spec.log_space else values, index=list(spec.params), dtype=float)
    for p in spec.time_params:
        params[p] *= scale
    fitter.params_ = params
    fitter.data = pd.DataFrame(data)
    if hasattr(fitter, "conditional_expected_number_of_purchases_up_to_time"):
        fitter.predict = fitter.conditional_expected_number_of_purchases_up_to_time


def _fit_ladder(spec: _Spec, penalizer: float, columns: dict[str, np.ndarray], weights: np.ndarray, tol: float):
    """Fit through :data:`FIT_LADDER`; return (fitter, rung, attempts, ll)."""
    cls = _fitter_class(spec)
    is_spend = spec is _GG
    attempts: list[dict[str, Any]] = []
    fallback = None
    if is_spend:
        arrays = (columns["frequency"], columns["monetary_value"])
    else:
        arrays = (columns["frequency"], columns["recency"], columns["T"])
    for rung in FIT_LADDER:
        pen = penalizer
        scale = 1.0
        init = None
        if rung == "rescaled_time" and is_spend:
            continue
        if rung == "rescaled_time":
            scale = float(np.max(columns["T"])) / 10.0 or 1.0
        if rung == "moment_start":
            init = _moment_start(spec, columns["frequency"], columns.get("T", columns["frequency"] + 1), weights)
        if rung.startswith("penalizer_"):
            pen = max(penalizer, float(rung.split("_", 1)[1]))
        fitter = cls(penalizer_coef=pen)
        try:
            with _quiet():
                if rung == "nelder_mead":
                    if is_spend:
                        args = (*arrays, weights, pen)
                    else:
                        scale = float(np.max(columns["T"])) or 1.0
                        args = (arrays[0], arrays[1] / scale, arrays[2] / scale, weights, pen)
                    x0 = _moment_start(spec, columns["frequency"], args[2] if not is_spend else arrays[0] + 1, weights)
                    res = minimize(
                        cls._negative_log_likelihood, x0, args=args, method="Nelder-Mead",
                        options={"maxiter": 20_000, "xatol": 1e-9, "fatol": 1e-12},
                    )
                    if not res.success or not np.isfinite(res.fun):
                        raise RuntimeError(f"Nelder-Mead did not converge: {res.message}")
                    _set_params(fitter, spec, res.x, scale, {**columns, "weights": weights})
                elif spec.log_space:
                    scaled = arrays if is_spend else (arrays[0], arrays[1] / scale, arrays[2] / scale)
                    _fit_lifetimes_likelihood(fitter, spec, scaled, weights, pen, init, tol)
                    for p in spec.time_params:
                        fitter.params_[p] *= scale
                    fitter.data = pd.DataFrame({**columns, "weights": weights})
                else:
                    scaled = (arrays[0], arrays[1] / scale, arrays[2] / scale)
                    fitter.fit(*scaled, weights=weights, initial_params=init, tol=tol)
                    if scale != 1.0:
                        for p in spec.time_params:
                            fitter.params_[p] *= scale
                        fitter.data = pd.DataFrame({**columns, "weights": weights})
            if not _plausible(fitter.params_):
                raise RuntimeError(f"implausible parameters {fitter.params_.round(6).to_dict()}")
            problem = _prediction_problem(fitter, columns, weights, is_spend)
            if problem:
                raise RuntimeError(f"{problem} at parameters {_rounded(fitter.params_)}")
            ll_args = (*arrays, weights)
            ll = _weighted_ll(spec, fitter, ll_args)
            if not np.isfinite(ll):
                raise RuntimeError("log-likelihood is not finite at the fitted parameters")
        except Exception as err:  # noqa: BLE001 - every failure moves to the next rung
            attempts.append({"rung": rung, "penalizer": pen, "error": f"{type(err).__name__}: {err}".strip()[:300]})
            continue
        _make_picklable(fitter)
        boundary = _at_boundary(fitter.params_)
        attempts.append({"rung": rung, "penalizer": pen, "error": None, "boundary": boundary})
        if not boundary:
            return fitter, rung, attempts, ll
        if fallback is None:  # a degenerate optimum: look further down the ladder for an interior one
            fallback = (fitter, rung, ll)
    if fallback is not None:
        fitter, rung, ll = fallback
        warnings.warn(
            f"every {spec.fitter} fit of the ladder ends at a boundary of the parameter space; using rung {rung!r} "
            f"({_rounded(fitter.params_)}): the model is degenerate on this log (e.g. no visible dropout) and is "
            "judged by the value/churn backtests against the baselines",
            UserWarning,
            stacklevel=4,
        )
        return fitter, rung, attempts, ll
    tried = "; ".join(f"{a['rung']}: {a['error']}" for a in attempts)
    raise ModelError(
        f"the {spec.fitter} fit did not converge on any rung of the fit ladder ({tried}). "
        "Try a larger penalizer (clv.penalizer 0.01-0.1), weeks instead of days (clv.time_unit: W), "
        "or more history per customer."
    )


def _as_arrays(rfm: pd.DataFrame, need_monetary: bool = False) -> dict[str, np.ndarray]:
    cols = ["frequency", "recency", "T"] + (["monetary_value"] if need_monetary else [])
    missing = [c for c in cols if c not in rfm.columns]
    if missing:
        raise DataError(
            f"CLV input lacks column(s) {missing}; pass the output of churnml.features.rfm_summary "
            f"(it has {list(rfm.columns)})"
        )
    out = {c: rfm[c].to_numpy(dtype=np.float64) for c in cols}
    bad = ~np.isfinite(out["frequency"]) | (out["frequency"] < 0) | (out["recency"] > out["T"] + 1e-9) | (out["recency"] < 0)
    if bad.any():
        raise DataError(f"invalid RFM rows (negative, non-finite or recency > T): {rfm.loc[bad].head().to_dict('index')}")
    return out


def expected_purchases_no_purchase_probability(model: "CLVModel", rfm: pd.DataFrame, horizon_days: float) -> np.ndarray:
    """BG/NBD-family P(no purchase in the next ``horizon_days``) for each customer.

    For BG/NBD and MBG/NBD a customer who is alive stays alive until their next purchase, so
    P(none) = 1 - P(alive) + P(alive) * ((alpha + T) / (alpha + T + h)) ** (r + x), the Gamma
    posterior of the purchase rate. For Pareto/NBD the same expression is used with its own
    P(alive), which ignores a dropout during the horizon (a conservative upper bound on buying).
    """
    check_is_fitted(model, "purchase_model_")
    a = _as_arrays(rfm)
    h = horizon_days / model._unit_days
    r, alpha = model.purchase_model_.params_["r"], model.purchase_model_.params_["alpha"]
    with np.errstate(all="ignore"):
        p_alive = np.asarray(model._p_alive(a), dtype=float)
        stay = ((alpha + a["T"]) / (alpha + a["T"] + h)) ** (r + a["frequency"])
    return np.clip(1.0 - p_alive + p_alive * stay, 0.0, 1.0)


class CLVModel(BaseEstimator):
    """BTYD customer lifetime value: a purchase model plus a Gamma-Gamma spend model.

    Parameters
    ----------
    purchase_model : {"bgnbd", "pareto_nbd", "mbgnbd"}, default "bgnbd"
    time_unit : {"W", "D"}, default "W"
        Unit of ``recency`` and ``T`` in the RFM input (weeks: ``rfm_summary(freq="D",
        freq_multiplier=7)``; days: ``freq_multiplier=1``). Rates are per this unit.
    horizon_days : float, default 365
        Horizon of ``expected_purchases`` and ``predicted_clv``, in days.
    discount_rate : float, default 0.10
        Annual discount rate; cash flows are discounted at the end of each month.
    margin : float, default 1.0
        Profit margin applied to spend (1.0 = revenue CLV).
    penalizer, spend_penalizer : float, default 0.0
        L2 penalizer of the purchase and spend fits (the ladder may raise them; see ``fit_rung_``).
    corr_threshold : float, default 0.3
        Warn when |corr(frequency, monetary_value)| among repeaters exceeds this (Gamma-Gamma
        assumes independence).
    min_repeaters : int, default 20
        Fewer repeat customers with positive spend than this is an error for Gamma-Gamma.
    collapse : bool, default True
        Fit on distinct ``(frequency, recency, T)`` rows with counts as weights.
    tol : float, default 1e-7
        Optimiser tolerance.
    max_customers : int or None, default None
        Fit the parameters on a seeded random sample of at most this many customers
        (:func:`churnml.sampling.sample_mask`); predictions are for every customer as usual.
    seed : int, default 42
        Seed of that sample.

    Attributes
    ----------
    purchase_model_, spend_model_ : fitted lifetimes fitters (``spend_model_`` is None when the
        input has no ``monetary_value``)
    params_ : dict of fitted parameters (purchase and spend)
    log_likelihood_ : float, total log-likelihood of the purchase model
    spend_log_likelihood_ : float or None
    fit_rung_ : dict, the fit-ladder rung that succeeded for each model
    degenerate_ : bool, the purchase model's parameters are at a boundary (every rung was) or it
        saw no dropout (``no_dropout_``), whatever its rung
    no_dropout_ : bool, the fit estimates that fewer than :data:`NO_DROPOUT_SHARE` of its repeat
        customers have dropped out: its P(alive) is ~1 for everyone and uninformative
    dropout_share_ : float, that estimated share (weighted mean of 1 - P(alive) over repeaters)
    fit_attempts_ : dict of lists, every rung tried and its error
    n_customers_, n_fit_rows_ : customers the purchase model was fitted on (the sample, with
        ``max_customers``) and their (collapsed) rows
    freq_monetary_corr_ : float, Pearson correlation of frequency and monetary value among repeaters
    n_nonpositive_spend_ : int, repeaters with spend <= 0 (left out of the spend fit)
    population_mean_spend_ : float, the Gamma-Gamma mean spend per purchase, p * v / (q - 1)
    """

    def __init__(
        self,
        *,
        purchase_model: str = "bgnbd",
        time_unit: str = "W",
        horizon_days: float = 365.0,
        discount_rate: float = 0.10,
        margin: float = 1.0,
        penalizer: float = 0.0,
        spend_penalizer: float = 0.0,
        corr_threshold: float = 0.3,
        min_repeaters: int = 20,
        collapse: bool = True,
        tol: float = 1e-7,
        max_customers: int | None = None,
        seed: int = 42,
    ):
        self.purchase_model = purchase_model
        self.time_unit = time_unit
        self.horizon_days = horizon_days
        self.discount_rate = discount_rate
        self.margin = margin
        self.penalizer = penalizer
        self.spend_penalizer = spend_penalizer
        self.corr_threshold = corr_threshold
        self.min_repeaters = min_repeaters
        self.collapse = collapse
        self.tol = tol
        self.max_customers = max_customers
        self.seed = seed

    # ------------------------------------------------------------------ fit

    def _validate_params(self) -> None:
        if self.purchase_model not in PURCHASE_MODELS:
            raise ValueError(f"purchase_model must be one of {sorted(PURCHASE_MODELS)}, got {self.purchase_model!r}")
        if self.time_unit not in _UNIT_DAYS:
            raise ValueError(f"time_unit must be 'W' or 'D', got {self.time_unit!r}")
        if self.horizon_days <= 0 or self.discount_rate < 0 or self.margin <= 0:
            raise ValueError("horizon_days and margin must be positive and discount_rate non-negative")

    @property
    def _unit_days(self) -> float:
        return _UNIT_DAYS[self.time_unit]

    def fit(self, rfm: pd.DataFrame, y=None) -> "CLVModel":
        """Fit the purchase model on ``frequency, recency, T`` and, when ``monetary_value`` is
        present, Gamma-Gamma on repeat customers with positive spend. Returns self."""
        self._validate_params()
        if len(rfm) == 0:
            raise DataError("cannot fit a CLV model on zero customers")
        if self.max_customers is not None and len(rfm) > self.max_customers:
            from churnml.sampling import sample_mask

            rfm = rfm.loc[sample_mask(rfm.index, self.max_customers, self.seed)]
        a = _as_arrays(rfm)
        spec = PURCHASE_MODELS[self.purchase_model]
        if self.collapse:
            grouped = (
                pd.DataFrame(a).groupby(["frequency", "recency", "T"], sort=True).size().rename("weights").reset_index()
            )
            cols = {c: grouped[c].to_numpy(dtype=np.float64) for c in ("frequency", "recency", "T")}
            weights = grouped["weights"].to_numpy(dtype=np.float64)
        else:
            cols, weights = a, np.ones(len(rfm))
        if np.all(cols["frequency"] == 0):
            raise ModelError("no customer has a repeat purchase: the purchase model cannot be fitted")
        fitter, rung, attempts, ll = _fit_ladder(spec, self.penalizer, cols, weights, self.tol)
        self.purchase_model_ = fitter
        self.log_likelihood_ = ll
        self.fit_rung_ = {"purchase": rung}
        self.fit_attempts_ = {"purchase": attempts}
        self.n_customers_ = int(len(rfm))
        self.n_fit_rows_ = int(len(weights))
        self.params_ = {k: float(v) for k, v in fitter.params_.items()}
        self.dropout_share_ = _dropout_share(fitter, cols, weights)
        self.no_dropout_ = bool(not self.dropout_share_ >= NO_DROPOUT_SHARE)  # NaN (no repeaters) counts as none seen
        self.degenerate_ = bool(_at_boundary(fitter.params_) or self.no_dropout_)
        if self.no_dropout_:
            warnings.warn(
                f"the {self.purchase_model} purchase model saw no dropout on this log: it estimates that "
                f"{self.dropout_share_:.2%} of repeat customers have left ({_rounded(fitter.params_)}), so its P(alive) "
                "is ~1 for everyone and says nothing about who has left; churnml takes P(alive) and the CLV's "
                "survival from the churn model instead",
                UserWarning,
                stacklevel=2,
            )
        self.spend_model_ = None
        self.spend_log_likelihood_ = None
        self.freq_monetary_corr_ = float("nan")
        self.n_nonpositive_spend_ = 0
        self.population_mean_spend_ = float("nan")
        if "monetary_value" in rfm.columns:
            self._fit_spend(rfm)
        return self

    def _fit_spend(self, rfm: pd.DataFrame) -> None:
        freq = rfm["frequency"].to_numpy(dtype=np.float64)
        money = rfm["monetary_value"].to_numpy(dtype=np.float64)
        repeat = freq > 0
        positive = repeat & (money > 0)
        self.n_nonpositive_spend_ = int((repeat & ~positive).sum())
        if self.n_nonpositive_spend_:
            warnings.warn(
                f"{self.n_nonpositive_spend_} repeat customers have an average spend <= 0 (free orders, or returns netted); "
                "they are left out of the Gamma-Gamma fit; their expected spend is the Gamma-Gamma posterior with an "
                "average of 0 (0 when their net past spend is <= 0)",
                stacklevel=3,
            )
        n_rep = int(positive.sum())
        if n_rep < self.min_repeaters:
            raise ModelError(
                f"only {n_rep} repeat customers with positive spend; Gamma-Gamma needs at least "
                f"{self.min_repeaters} (clv min_repeaters). Use more history or a value model without it."
            )
        f, m = freq[positive], money[positive]
        varied = n_rep > 2 and np.ptp(f) > 0 and np.ptp(m) > 0
        self.freq_monetary_corr_ = float(np.corrcoef(f, m)[0, 1]) if varied else float("nan")
        if abs(self.freq_monetary_corr_) > self.corr_threshold:
            warnings.warn(
                f"frequency and monetary value are correlated among repeat customers "
                f"(Pearson r = {self.freq_monetary_corr_:.3f} > {self.corr_threshold}); the Gamma-Gamma "
                "independence assumption is doubtful: compare with the ML value model in the backtest",
                stacklevel=3,
            )
        spend, rung, attempts, ll = _fit_ladder(
            _GG, self.spend_penalizer, {"frequency": f, "monetary_value": m}, np.ones(n_rep), self.tol
        )
        self.spend_model_ = spend
        self.spend_log_likelihood_ = ll
        self.fit_rung_["spend"] = rung
        self.fit_attempts_["spend"] = attempts
        self.params_.update({f"gg_{k}": float(v) for k, v in spend.params_.items()})
        p, q, v = (float(spend.params_[k]) for k in ("p", "q", "v"))
        self.population_mean_spend_ = p * v / (q - 1) if q > 1 else float("inf")

    # ------------------------------------------------------------------ predict

    def _p_alive(self, a: dict[str, np.ndarray]) -> np.ndarray:
        with _quiet():
            return np.asarray(
                self.purchase_model_.conditional_probability_alive(a["frequency"], a["recency"], a["T"]), dtype=float
            )

    def _expected(self, t_units: float, a: dict[str, np.ndarray]) -> np.ndarray:
        with _quiet():
            return np.asarray(
                self.purchase_model_.conditional_expected_number_of_purchases_up_to_time(
                    t_units, a["frequency"], a["recency"], a["T"]
                ),
                dtype=float,
            )

    def expected_avg_spend(self, rfm: pd.DataFrame) -> np.ndarray:
        """Gamma-Gamma expected spend per future purchase (currency): the posterior mean
        ``(p (v + x m)) / (p x + q - 1)`` given ``x`` observed order values averaging ``m``.

        * Repeat customers: ``x = frequency``, ``m = max(monetary_value, 0)`` (mean net repeat
          spend; repeats all returned count as ``m = 0``, shrinking towards 0 as ``x`` grows,
          instead of the population mean).
        * One-time buyers: the population mean ``p v / (q - 1)`` (the textbook answer, which
          every one-time buyer shares) unless ``rfm`` has a ``net_spend`` column (net past spend,
          currency: purchases less returns, first purchase included); then their one order counts
          as one observation, ``x = 1, m = net_spend``, so a 15 order and a 900 order differ.
        * Customers with ``net_spend <= 0`` (everything returned, or more returned than bought in
          the window): 0, they have brought nothing so far and are ranked last.
        """
        check_is_fitted(self, "spend_model_")
        if self.spend_model_ is None:
            raise ModelError("the CLV model was fitted without monetary_value: no spend model")
        freq = rfm["frequency"].to_numpy(dtype=np.float64)
        money = rfm["monetary_value"].to_numpy(dtype=np.float64)
        p, q, v = (float(self.spend_model_.params_[k]) for k in ("p", "q", "v"))
        repeat = freq > 0
        x = np.where(repeat, freq, 0.0)
        m = np.where(repeat, np.clip(money, 0.0, None), 0.0)
        if "net_spend" in rfm.columns:
            net = rfm["net_spend"].to_numpy(dtype=np.float64)
            one = ~repeat & (net > 0)
            x = np.where(one, 1.0, x)
            m = np.where(one, net, m)
            return np.where(net > 0, (p * (v + x * m)) / (p * x + q - 1), 0.0)
        return (p * (v + x * m)) / (p * x + q - 1)

    def predict(self, rfm: pd.DataFrame) -> pd.DataFrame:
        """Per customer (index kept): ``p_alive``, ``expected_purchases`` over ``horizon_days``,
        ``expected_avg_spend`` (currency per purchase) and ``predicted_clv`` (discounted,
        times margin, over ``horizon_days``)."""
        check_is_fitted(self, "purchase_model_")
        a = _as_arrays(rfm)
        out = pd.DataFrame(index=rfm.index)
        out["p_alive"] = self._p_alive(a)
        horizon_units = self.horizon_days / self._unit_days
        out["expected_purchases"] = self._expected(horizon_units, a)
        if self.spend_model_ is not None and "monetary_value" in rfm.columns:
            spend = self.expected_avg_spend(rfm)
            out["expected_avg_spend"] = spend
            undiscounted = out["expected_purchases"].to_numpy() if self.discount_rate == 0 else None
            purchases = undiscounted if undiscounted is not None else self._discounted_purchases(a)
            out["predicted_clv"] = purchases * spend * self.margin
            out["value_if_retained"] = (
                self.purchase_rate_if_alive(rfm) * horizon_units * mean_discount(self.horizon_days, self.discount_rate)
                * spend * self.margin
            )
        return out

    def purchase_rate_if_alive(self, rfm: pd.DataFrame) -> np.ndarray:
        """Expected purchases per time unit of a customer who stays active: the posterior mean
        ``(r + x) / (alpha + T)`` of the Poisson purchase rate (Gamma prior ``r, alpha``), the
        same in BG/NBD, MBG/NBD and Pareto/NBD. Customers with little history are shrunk
        towards the population rate ``r / alpha``."""
        check_is_fitted(self, "purchase_model_")
        a = _as_arrays(rfm)
        r, alpha = (float(self.purchase_model_.params_[k]) for k in ("r", "alpha"))
        return (r + a["frequency"]) / (alpha + a["T"])

    def _discounted_purchases(self, a: dict[str, np.ndarray]) -> np.ndarray:
        """Sum over months m of (E[X(t_m)] - E[X(t_{m-1})]) / (1 + d) ** (t_m in years); with no
        discounting the sum telescopes to E[X(horizon)], computed directly."""
        if self.discount_rate == 0:
            return self._expected(self.horizon_days / self._unit_days, a)
        edges = np.arange(_DAYS_PER_MONTH, self.horizon_days, _DAYS_PER_MONTH).tolist() + [float(self.horizon_days)]
        total = np.zeros(len(a["frequency"]))
        prev = np.zeros(len(a["frequency"]))
        for day in edges:
            cur = self._expected(day / self._unit_days, a)
            total += (cur - prev) / (1.0 + self.discount_rate) ** (day / _DAYS_PER_YEAR)
            prev = cur
        return total

    def probability_no_purchase(self, rfm: pd.DataFrame, horizon_days: float | None = None) -> np.ndarray:
        """P(no purchase in the next ``horizon_days``) (default: the model's horizon); the BTYD
        churn baseline. See :func:`expected_purchases_no_purchase_probability`."""
        return expected_purchases_no_purchase_probability(self, rfm, horizon_days or self.horizon_days)

    def expected_population_purchases(self, t_units) -> np.ndarray:
        """Unconditional E[X(t)]: expected repeat purchases of a new customer by age ``t`` (time units)."""
        check_is_fitted(self, "purchase_model_")
        with _quiet():
            return np.asarray(self.purchase_model_.expected_number_of_purchases_up_to_time(np.asarray(t_units, dtype=float)))

    def no_dropout_note(self) -> str | None:
        """A sentence for reports when the purchase model saw no dropout (see
        :data:`NO_DROPOUT_SHARE`), else None."""
        if not getattr(self, "no_dropout_", False):
            return None
        return (
            f"The purchase model ({self.purchase_model}) saw no dropout on this log: it estimates that only "
            f"{self.dropout_share_:.2%} of repeat customers have left, so its P(alive) is about 1 for everyone and is "
            "not shown; p_alive is the churn model's probability of a purchase within the churn horizon, and "
            "its CLV (predicted_clv when the value model is btyd) is value_if_retained times that probability."
        )

    def summary(self) -> dict[str, Any]:
        """Fitted parameters, log-likelihoods, fit rungs, data sizes, the degenerate and
        no-dropout flags (``degenerate``, ``no_dropout``, ``dropout_share``: the estimated share
        of repeat customers already gone, ``dropout_per_purchase`` or ``mean_lifetime_days``, and
        ``note``: a sentence when no dropout was seen) as a plain dict."""
        check_is_fitted(self, "purchase_model_")
        return {
            "purchase_model": self.purchase_model,
            "time_unit": self.time_unit,
            "params": self.params_,
            "log_likelihood": self.log_likelihood_,
            "spend_log_likelihood": self.spend_log_likelihood_,
            "fit_rung": self.fit_rung_,
            "degenerate": getattr(self, "degenerate_", False),
            "no_dropout": getattr(self, "no_dropout_", False),
            "dropout_share": getattr(self, "dropout_share_", float("nan")),
            **_dropout_summary(PURCHASE_MODELS[self.purchase_model], self.purchase_model_.params_, self._unit_days),
            "note": self.no_dropout_note(),
            "n_customers": self.n_customers_,
            "n_fit_rows": self.n_fit_rows_,
            "freq_monetary_corr": self.freq_monetary_corr_,
            "n_nonpositive_spend": self.n_nonpositive_spend_,
            "population_mean_spend": self.population_mean_spend_,
        }
