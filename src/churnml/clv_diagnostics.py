"""Diagnostics of a fitted :class:`~churnml.clv.CLVModel`, returned as data and drawn as PNG.

* ``calibration_vs_holdout``: mean actual vs expected holdout purchases by calibration frequency
  (Fader, Hardie & Lee 2005, figure 3);
* ``tracking``: cumulative repeat transactions per period, actual vs expected (figure 2); its
  holdout part (``tracking_holdout_expected``) is the aggregate forecast: on the CDNOW sample
  1,664 expected vs 1,882 actual repeat purchase-days in weeks 40-78;
* ``p_alive_matrix``: P(alive) over frequency x recency at a given age;
* the fitted parameters, log-likelihood, fit rung and frequency-monetary correlation.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from churnml._atomic import atomic_path, write_json
from churnml.clv import CLVModel
from churnml.features import _as_ns

__all__ = ["CLVDiagnostics", "calibration_vs_holdout", "clv_diagnostics", "p_alive_matrix", "plot_clv_diagnostics", "tracking"]

_DAY_NS = 86_400 * 10**9


def calibration_vs_holdout(model: CLVModel, cal_holdout: pd.DataFrame, max_frequency: int = 7) -> pd.DataFrame:
    """Actual and expected mean holdout repeat purchases by calibration frequency (capped bin
    ``max_frequency+``), from :func:`churnml.features.calibration_holdout` output in the model's unit."""
    rfm = cal_holdout.rename(columns={"frequency_cal": "frequency", "recency_cal": "recency", "T_cal": "T"})
    a = {c: rfm[c].to_numpy(dtype=float) for c in ("frequency", "recency", "T")}
    duration = cal_holdout["duration_holdout"].to_numpy(dtype=float)
    expected = model._expected(duration, a)
    df = pd.DataFrame(
        {
            "frequency_bin": np.minimum(a["frequency"], max_frequency).astype(int),
            "actual": cal_holdout["frequency_holdout"].to_numpy(dtype=float),
            "expected": expected,
        }
    )
    out = df.groupby("frequency_bin").agg(customers=("actual", "size"), actual=("actual", "mean"), expected=("expected", "mean"))
    return out


def tracking(
    model: CLVModel,
    transactions: pd.DataFrame,
    *,
    calibration_end,
    observation_end=None,
    customer_id: str = "customer_id",
    timestamp: str = "timestamp",
) -> pd.DataFrame:
    """Cumulative repeat transactions per period (the model's time unit), actual vs expected.

    Repeat transactions are purchase days after each customer's first (lifetimes' counting).
    The cohort is every customer whose first purchase is on or before ``calibration_end``; the
    expectation sums E[X(age)] over customers, with age measured from their first purchase day.
    """
    unit_days = model._unit_days
    ns = _as_ns(transactions[timestamp])
    day = ns // _DAY_NS
    days = pd.DataFrame({"c": transactions[customer_id].to_numpy(), "d": day}).drop_duplicates()
    first = days.groupby("c")["d"].transform("min").to_numpy()
    cal_day = int(_as_ns(pd.Series([pd.Timestamp(calibration_end)]))[0] // _DAY_NS)
    end_day = int(day.max()) if observation_end is None else int(_as_ns(pd.Series([pd.Timestamp(observation_end)]))[0] // _DAY_NS)
    cohort = first <= cal_day
    days = days.loc[cohort]
    first = first[cohort]
    start = int(first.min())
    n_periods = int(np.ceil((end_day - start + 1) / unit_days))
    edges = start + np.arange(1, n_periods + 1) * unit_days  # end of each period (exclusive), in days
    repeat = days["d"].to_numpy()[days["d"].to_numpy() > first]
    actual = np.searchsorted(np.sort(repeat), edges, side="left").astype(float)
    births, counts = np.unique(days.groupby("c")["d"].min().to_numpy(), return_counts=True)
    expected = np.empty(n_periods)
    for i, edge in enumerate(edges):
        age = np.clip(edge - births, 0, None) / unit_days
        expected[i] = float((model.expected_population_purchases(age) * counts).sum())
    period_start = pd.to_datetime((edges - unit_days) * _DAY_NS)
    return pd.DataFrame(
        {
            "period": np.arange(1, n_periods + 1),
            "period_start": period_start,
            "actual_cumulative": actual,
            "expected_cumulative": expected,
            "in_calibration": edges <= cal_day + 1,
        }
    )


def p_alive_matrix(model: CLVModel, max_frequency: int | None = None, max_recency: float | None = None, T: float | None = None) -> pd.DataFrame:
    """P(alive) on a frequency (rows) x recency (columns) grid for customers of age ``T``
    (default: the oldest fitted customer), in the model's time unit."""
    data = model.purchase_model_.data
    T = float(T if T is not None else data["T"].max())
    max_frequency = int(max_frequency if max_frequency is not None else max(1, data["frequency"].quantile(0.99)))
    max_recency = float(max_recency if max_recency is not None else T)
    freqs = np.arange(0, max_frequency + 1)
    recs = np.linspace(0, max_recency, 21)
    f, r = np.meshgrid(freqs, recs, indexing="ij")
    a = {"frequency": f.ravel().astype(float), "recency": r.ravel(), "T": np.full(f.size, T)}
    p = model._p_alive(a).reshape(f.shape)
    return pd.DataFrame(p, index=pd.Index(freqs, name="frequency"), columns=pd.Index(np.round(recs, 2), name="recency"))


@dataclasses.dataclass
class CLVDiagnostics:
    """Everything the diagnostics report, as data."""

    summary: dict[str, Any]
    calibration_vs_holdout: pd.DataFrame | None
    tracking: pd.DataFrame | None
    p_alive_matrix: pd.DataFrame
    holdout_actual: float | None = None
    holdout_expected: float | None = None
    tracking_holdout_actual: float | None = None
    tracking_holdout_expected: float | None = None

    def to_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in self.summary.items()}
        out["holdout_actual"] = self.holdout_actual
        out["holdout_expected"] = self.holdout_expected
        out["tracking_holdout_actual"] = self.tracking_holdout_actual
        out["tracking_holdout_expected"] = self.tracking_holdout_expected
        return out


def clv_diagnostics(
    model: CLVModel,
    *,
    cal_holdout: pd.DataFrame | None = None,
    transactions: pd.DataFrame | None = None,
    calibration_end=None,
    observation_end=None,
) -> CLVDiagnostics:
    """Collect the diagnostics; holdout and tracking parts need ``cal_holdout`` and
    ``transactions`` + ``calibration_end`` respectively."""
    cvh = calibration_vs_holdout(model, cal_holdout) if cal_holdout is not None else None
    tr = None
    if transactions is not None and calibration_end is not None:
        tr = tracking(model, transactions, calibration_end=calibration_end, observation_end=observation_end)
    h_act = h_exp = None
    if cvh is not None:
        h_act = float((cvh["actual"] * cvh["customers"]).sum())
        h_exp = float((cvh["expected"] * cvh["customers"]).sum())
    t_act = t_exp = None
    if tr is not None and tr["in_calibration"].any() and not tr["in_calibration"].all():
        last_cal = tr.loc[tr["in_calibration"]].iloc[-1]
        t_act = float(tr["actual_cumulative"].iloc[-1] - last_cal["actual_cumulative"])
        t_exp = float(tr["expected_cumulative"].iloc[-1] - last_cal["expected_cumulative"])
    return CLVDiagnostics(model.summary(), cvh, tr, p_alive_matrix(model), h_act, h_exp, t_act, t_exp)


def plot_clv_diagnostics(diag: CLVDiagnostics, out_dir: str | Path) -> list[Path]:
    """Write ``clv_calibration_holdout.png``, ``clv_tracking.png``, ``clv_p_alive.png`` and
    ``clv_summary.json`` (each atomically) to ``out_dir``; return the paths written."""
    from churnml.plots import _subplots

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []

    def save(fig, name: str) -> None:
        path = out / name
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
        written.append(path)

    if diag.calibration_vs_holdout is not None:
        c = diag.calibration_vs_holdout
        fig, ax = _subplots((6, 4))
        ax.plot(c.index, c["actual"], "o-", label="actual")
        ax.plot(c.index, c["expected"], "s--", label="model")
        ax.set_xlabel("purchases in calibration (last bin = and more)")
        ax.set_ylabel("mean purchases in holdout")
        ax.set_title("Calibration vs holdout")
        ax.legend()
        save(fig, "clv_calibration_holdout.png")
    if diag.tracking is not None:
        t = diag.tracking
        fig, ax = _subplots((7, 4))
        ax.plot(t["period"], t["actual_cumulative"], "-", label="actual")
        ax.plot(t["period"], t["expected_cumulative"], "--", label="model")
        cal_end = t.loc[t["in_calibration"], "period"].max()
        ax.axvline(cal_end, color="grey", linestyle=":", label="end of calibration")
        ax.set_xlabel(f"period ({diag.summary['time_unit']})")
        ax.set_ylabel("cumulative repeat transactions")
        ax.set_title("Tracking cumulative repeat transactions")
        ax.legend()
        save(fig, "clv_tracking.png")
    m = diag.p_alive_matrix
    fig, ax = _subplots((6, 4.5))
    im = ax.imshow(m.to_numpy(), origin="lower", aspect="auto", vmin=0, vmax=1, cmap="viridis",
                   extent=[m.columns.min(), m.columns.max(), m.index.min() - 0.5, m.index.max() + 0.5])
    fig.colorbar(im, ax=ax, label="P(alive)")
    ax.set_xlabel(f"recency ({diag.summary['time_unit']})")
    ax.set_ylabel("frequency (repeat purchases)")
    ax.set_title("P(alive) by frequency and recency")
    save(fig, "clv_p_alive.png")
    path = out / "clv_summary.json"
    write_json(path, diag.to_dict())
    written.append(path)
    return written
