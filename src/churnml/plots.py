"""Evaluation plots of a churn backtest, written as PNG (matplotlib, no display needed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from churnml._atomic import atomic_path

__all__ = ["plot_backtest", "plot_feature_importance"]


def _subplots(figsize):
    """A figure without pyplot: no global backend switch, nothing left open in a notebook."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize)
    return fig, fig.subplots()


def _save(fig, path: Path) -> Path:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    return path


def plot_backtest(predictions: pd.DataFrame, scorers: list[str], out_dir: str | Path) -> list[Path]:
    """ROC, precision-recall, calibration (reliability) and cumulative-lift curves of every
    scorer over all backtest cutoffs pooled. ``predictions`` has ``churned`` and one column of
    probabilities per scorer."""
    from sklearn.metrics import precision_recall_curve, roc_curve

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    y = predictions["churned"].to_numpy()
    paths = []

    fig, ax = _subplots((5.5, 5))
    for s in scorers:
        fpr, tpr, _ = roc_curve(y, predictions[s])
        ax.plot(fpr, tpr, label=s)
    ax.plot([0, 1], [0, 1], ":", color="grey")
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC (backtest cutoffs pooled)")
    ax.legend()
    paths.append(_save(fig, out / "roc.png"))

    fig, ax = _subplots((5.5, 5))
    for s in scorers:
        prec, rec, _ = precision_recall_curve(y, predictions[s])
        ax.plot(rec, prec, label=s)
    ax.axhline(y.mean(), linestyle=":", color="grey", label="churn rate")
    ax.set(xlabel="recall", ylabel="precision", title="Precision-recall")
    ax.legend()
    paths.append(_save(fig, out / "pr.png"))

    fig, ax = _subplots((5.5, 5))
    for s in scorers:
        p = predictions[s].to_numpy()
        bins = np.minimum((p * 10).astype(int), 9)
        df = pd.DataFrame({"b": bins, "p": p, "y": y}).groupby("b").mean()
        ax.plot(df["p"], df["y"], "o-", label=s)
    ax.plot([0, 1], [0, 1], ":", color="grey")
    ax.set(xlabel="predicted churn probability", ylabel="observed churn rate", title="Calibration")
    ax.legend()
    paths.append(_save(fig, out / "calibration.png"))

    fig, ax = _subplots((5.5, 5))
    share = np.arange(1, len(y) + 1) / len(y)
    for s in scorers:
        order = np.argsort(-predictions[s].to_numpy(), kind="stable")
        captured = np.cumsum(y[order]) / max(y.sum(), 1)
        ax.plot(share, captured, label=s)
    ax.plot([0, 1], [0, 1], ":", color="grey", label="random")
    ax.set(xlabel="share of customers contacted (by score)", ylabel="share of churners captured", title="Cumulative gains")
    ax.legend()
    paths.append(_save(fig, out / "lift.png"))
    return paths


def plot_feature_importance(importance: pd.Series, path: str | Path, top: int = 20) -> Path:
    """Horizontal bar chart of the ``top`` features by total gain."""
    imp = importance.head(top)[::-1]
    fig, ax = _subplots((6, 0.3 * len(imp) + 1))
    ax.barh(imp.index, imp.to_numpy())
    ax.set(xlabel="total gain", title="LightGBM feature importance")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return _save(fig, path)
