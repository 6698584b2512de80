"""Classic RFM scores (quantile bins, 1 = worst, ``bins`` = best) and named RFM segments."""

from __future__ import annotations

import numpy as np
import pandas as pd

from churnml.config import RFMConfig

__all__ = ["rfm_scores", "rfm_segment"]


def _score(values: pd.Series, bins: int, *, higher_is_better: bool) -> np.ndarray:
    """Quantile score 1..bins; ties broken by row order so every bin has an equal share."""
    v = values.to_numpy(dtype=np.float64)
    v = np.where(np.isnan(v), -np.inf if higher_is_better else np.inf, v)
    key = v if higher_is_better else -v
    order = np.argsort(key, kind="stable")
    ranks = np.empty(len(v), dtype=np.float64)
    ranks[order] = np.arange(1, len(v) + 1)
    return np.ceil(ranks * bins / max(len(v), 1)).astype(np.int64).clip(1, bins)


def rfm_segment(r_score, fm_score, config: RFMConfig | None = None) -> np.ndarray:
    """Segment name of each (R, FM) score pair from the configured grid; first match wins.

    Pairs that no rule covers get ``"Other"`` (the default grid covers all 25 cells).
    """
    cfg = config or RFMConfig()
    r = np.asarray(r_score)
    fm = np.asarray(fm_score)
    out = np.full(len(r), "Other", dtype=object)
    done = np.zeros(len(r), dtype=bool)
    for rule in cfg.segments:
        m = ~done & (r >= rule.r[0]) & (r <= rule.r[1]) & (fm >= rule.fm[0]) & (fm <= rule.fm[1])
        out[m] = rule.name
        done |= m
    return out


def rfm_scores(
    features: pd.DataFrame,
    *,
    recency: str = "recency_days",
    frequency: str = "n_purchases",
    monetary: str = "net_spend",
    config: RFMConfig | None = None,
) -> pd.DataFrame:
    """R, F, M quantile scores (1..bins), the combined FM score, the ``"545"``-style code and
    the named segment for each customer of a snapshot (index kept).

    R scores low recency (days since the last purchase) high; F and M score high values high.
    M defaults to ``net_spend`` (purchases less returns, cancelled orders excluded), the same
    netted spend as every other spend feature; pass ``monetary="total_spend"`` for gross spend.
    ``fm_score`` is the rounded mean of F and M (``fm_combine="mean"``) or F alone.
    """
    cfg = config or RFMConfig()
    for col in (recency, frequency, monetary):
        if col not in features.columns:
            raise KeyError(f"rfm_scores: missing column {col!r}; available: {list(features.columns)}")
    r = _score(features[recency], cfg.bins, higher_is_better=False)
    f = _score(features[frequency], cfg.bins, higher_is_better=True)
    m = _score(features[monetary], cfg.bins, higher_is_better=True)
    fm = np.floor((f + m) / 2 + 0.5).astype(np.int64) if cfg.fm_combine == "mean" else f
    out = pd.DataFrame({"r_score": r, "f_score": f, "m_score": m, "fm_score": fm}, index=features.index)
    out["rfm_code"] = (  # vectorised: "545"
        pd.Series(np.asarray(r)).astype(str).to_numpy(dtype=object) + pd.Series(np.asarray(f)).astype(str).to_numpy(dtype=object)
        + pd.Series(np.asarray(m)).astype(str).to_numpy(dtype=object)
    )
    out["rfm_segment"] = rfm_segment(r, fm, cfg)
    return out
