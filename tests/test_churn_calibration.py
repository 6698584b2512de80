"""Churn probability calibration: smoothed isotonic and Platt maps are continuous, strictly
increasing, never 0 or 1, and calibrated against known true probabilities."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from scipy.special import expit
from sklearn.isotonic import IsotonicRegression

from churnml.churn import PlattCalibrator, SmoothIsotonicCalibrator, _apply_calibrator, _fit_calibrator


def _simulate(n, rng, shape="logistic"):
    """Scores (log-odds up to an affine map) and the true churn probability behind each label."""
    z = rng.normal(1.5, 1.5, n)
    p = expit(z) if shape == "logistic" else 0.05 + 0.9 * expit(2.5 * z - 2) ** 0.5  # not logistic in the score
    y = (rng.uniform(size=n) < p).astype(int)
    return 0.7 * z - 0.3, p, y


def _ece_vs_truth(p_true, p_hat, n_bins=10):
    """Count-weighted |mean predicted - mean TRUE probability| over equal-width bins of the prediction."""
    bins = np.minimum((p_hat * n_bins).astype(int), n_bins - 1)
    return sum(abs(p_hat[bins == b].mean() - p_true[bins == b].mean()) * (bins == b).sum() for b in np.unique(bins)) / len(p_hat)


@pytest.mark.parametrize(
    ("kind", "shape"), [("isotonic", "logistic"), ("isotonic", "other"), ("sigmoid", "logistic")]
)
def test_calibration_is_strict_bounded_and_calibrated(kind, shape):
    rng = np.random.default_rng(7)
    s, _, y = _simulate(20_000, rng, shape)
    cal = _fit_calibrator(kind, s, y)
    st, pt, _ = _simulate(200_000, rng, shape)
    st[:3] = [st.min() - 50.0, st.max() + 50.0, st.max() + 1e6]  # far outside the calibration range
    pt[:3] = [pt.min(), pt.max(), pt.max()]
    p = _apply_calibrator(cal, st)
    assert len(np.unique(p)) == len(np.unique(st))  # calibration keeps every distinction of the score
    assert p.min() > 0 and p.max() < 1
    assert p.min() >= cal.eps_ and p.max() <= 1 - cal.eps_ and cal.eps_ == pytest.approx(1 / (2 * 20_000))
    order = np.argsort(st)
    assert np.all(np.diff(p[order]) > 0)  # strictly increasing in the score
    assert _ece_vs_truth(pt, p) < 0.02
    assert np.mean(np.abs(p - pt)) < 0.02


def test_smoothed_isotonic_beats_the_step_function_against_the_truth():
    rng = np.random.default_rng(3)
    errs = {"smooth": [], "step": []}
    for _ in range(3):
        s, _, y = _simulate(2_000, rng)
        st, pt, _ = _simulate(100_000, rng)
        errs["smooth"].append(np.mean(np.abs(SmoothIsotonicCalibrator().fit(s, y).predict(st) - pt)))
        step = IsotonicRegression(out_of_bounds="clip", y_min=0, y_max=1).fit(s, y)
        errs["step"].append(np.mean(np.abs(step.predict(st) - pt)))
    assert np.mean(errs["smooth"]) < np.mean(errs["step"])


def test_small_and_one_sided_calibration_sets_never_give_0_or_1():
    rng = np.random.default_rng(0)
    s = rng.normal(size=40)
    y = (s > 0).astype(int)  # perfectly separated: a plain isotonic fit gives exactly 0 and 1
    for kind in ("isotonic", "sigmoid"):
        cal = _fit_calibrator(kind, s, y)
        p = _apply_calibrator(cal, np.linspace(-3, 3, 10_001))
        assert 0 < p.min() and p.max() < 1 and np.all(np.diff(p) > 0)
        assert p[0] < 0.1 and p[-1] > 0.9  # still separates, with a finite slope
        p = _apply_calibrator(cal, np.linspace(-1e3, 1e3, 10_001))
        assert cal.eps_ <= p.min() and p.max() <= 1 - cal.eps_ and np.all(np.diff(p) >= 0)
        if kind == "isotonic":  # nearly flat tails that keep rising: absurd scores stay distinct
            assert np.all(np.diff(p) > 0)
    for y_const in (np.zeros(40, dtype=int), np.ones(40, dtype=int)):  # a single class
        for kind in ("isotonic", "sigmoid"):
            p = _apply_calibrator(_fit_calibrator(kind, s, y_const), np.sort(s))
            assert 0 < p.min() and p.max() < 1 and np.all(np.diff(p) > 0)
    with pytest.raises(ValueError, match="isotonic"):
        _fit_calibrator("beta", s, y)


def test_calibrators_pickle_and_score_a_million_customers():
    """A pickled calibrator scores a million customers exactly as the original (the speed of
    that is measured in benchmarks/, not asserted here)."""
    rng = np.random.default_rng(1)
    s, _, y = _simulate(20_000, rng)
    big = rng.normal(0.75, 1.2, 1_000_000)
    for cal in (SmoothIsotonicCalibrator().fit(s, y), PlattCalibrator().fit(s, y)):
        again = pickle.loads(pickle.dumps(cal))
        p = _apply_calibrator(again, big)
        np.testing.assert_array_equal(p, _apply_calibrator(cal, big))
        assert np.all((p > 0) & (p < 1)) and np.all(np.diff(p[np.argsort(big)]) >= 0)


def test_models_pickled_with_a_step_isotonic_still_score():
    s = np.linspace(-3, 3, 200)
    y = (np.arange(200) % 3 == 0).astype(int)
    old = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0).fit(s, y)
    p = _apply_calibrator(old, s)
    assert 0 < p.min() and p.max() < 1
