"""Campaign read-out: did the campaign work, for whom, by how much (treatment vs control).

Outcomes per customer (:func:`plan_outcomes`): ``retained`` = at least one purchase in the
window ``[start, start + days)`` (days; purchases as known at the window's end, cancelled ones
excluded), ``spend`` = the customer's net amount in that window (currency; returns subtract).
An experiment table from elsewhere gives them directly (:func:`outcomes_table`).

Comparison (:func:`readout`), overall, per action and per segment (treatment rows by their
``action``, control rows by ``planned_action``, the action the plan would have given them, so
each per-action row compares like with like):

* retention difference treatment - control with a 95% **Newcombe hybrid score interval**
  (Newcombe 1998, method 10: Wilson intervals of each rate combined), p-value of the pooled
  two-proportion z-test;
* mean spend difference with a 95% **percentile bootstrap** interval (arms resampled
  separately, ``n_boot`` resamples, seeded);
* ``incremental_retained`` = retention difference x n_treatment (customers) and
  ``incremental_value`` = spend difference x n_treatment (currency), with the intervals scaled
  the same way;
* ``churn_reduction`` = 1 - churn_t / churn_c, the relative reduction of churn the catalog's
  ``churn_reduction`` means, with a 95% log relative-risk (Katz) interval (0.5 added to the
  churner counts when one is 0);
* ``verdict``: ``too small to tell (n < 30 per arm)`` when an arm has fewer than ``min_n``
  customers; else ``significant increase`` / ``significant decrease`` when the retention
  interval excludes 0; else ``too small to tell (interval wider than 20 pp)`` when the interval
  is wider than ``max_width``; else ``not significant`` (no effect larger than about +/-10 pp).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from churnml.errors import DataError

__all__ = [
    "MIN_N", "MAX_WIDTH", "READOUT_COLUMNS", "newcombe_interval", "outcomes_table", "plan_outcomes", "plan_start",
    "print_table", "readout", "wilson_interval", "write_readout",
]

MIN_N = 30
MAX_WIDTH = 0.20
Z = float(stats.norm.ppf(0.975))

READOUT_COLUMNS = [
    "level", "name", "n_treatment", "n_control", "retention_treatment", "retention_control", "retention_diff",
    "retention_diff_low", "retention_diff_high", "p_value", "incremental_retained", "incremental_retained_low",
    "incremental_retained_high", "spend_treatment", "spend_control", "spend_diff", "spend_diff_low", "spend_diff_high",
    "incremental_value", "incremental_value_low", "incremental_value_high", "churn_reduction", "churn_reduction_low",
    "churn_reduction_high", "verdict",
]


# --------------------------------------------------------------------------- statistics


def wilson_interval(x, n, z: float = Z):
    """Wilson score interval of a proportion ``x / n`` (arrays); NaN where ``n == 0``."""
    x = np.asarray(x, dtype=float)
    n = np.asarray(n, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = x / n
        den = 1 + z**2 / n
        mid = (p + z**2 / (2 * n)) / den
        half = z * np.sqrt(p * (1 - p) / n + z**2 / (4 * n**2)) / den
    return mid - half, mid + half


def newcombe_interval(x1, n1, x0, n0, z: float = Z):
    """Newcombe hybrid score interval (method 10) of ``x1/n1 - x0/n0`` (arrays, vectorised)."""
    x1, n1, x0, n0 = (np.asarray(a, dtype=float) for a in (x1, n1, x0, n0))
    with np.errstate(invalid="ignore", divide="ignore"):
        p1, p0 = x1 / n1, x0 / n0
    l1, u1 = wilson_interval(x1, n1, z)
    l0, u0 = wilson_interval(x0, n0, z)
    d = p1 - p0
    low = d - np.sqrt((p1 - l1) ** 2 + (u0 - p0) ** 2)
    high = d + np.sqrt((u1 - p1) ** 2 + (p0 - l0) ** 2)
    return low, high


def _p_value(x1, n1, x0, n0) -> float:
    """Two-sided pooled two-proportion z-test; 1 when the pooled rate is 0 or 1."""
    p = (x1 + x0) / (n1 + n0)
    se = np.sqrt(p * (1 - p) * (1 / n1 + 1 / n0))
    if not se > 0:
        return 1.0
    return float(2 * stats.norm.sf(abs(x1 / n1 - x0 / n0) / se))


def _churn_reduction(x1, n1, x0, n0, z: float = Z) -> tuple[float, float, float]:
    """1 - churn_t / churn_c with a Katz log relative-risk interval (0.5 added to zero counts)."""
    c1, c0 = n1 - x1, n0 - x0  # churners
    if c0 == 0 and c1 == 0:
        return float("nan"), float("nan"), float("nan")
    a, b = (c1 + 0.5, c0 + 0.5) if c1 == 0 or c0 == 0 else (c1, c0)
    rr = (c1 / n1) / (c0 / n0) if c0 > 0 else float("inf")
    se = np.sqrt(1 / a - 1 / n1 + 1 / b - 1 / n0)
    log_rr = np.log((a / n1) / (b / n0))
    return float(1 - rr), float(1 - np.exp(log_rr + z * se)), float(1 - np.exp(log_rr - z * se))


def _bootstrap_diff(v1: np.ndarray, v0: np.ndarray, n_boot: int, rng: np.random.Generator) -> tuple[float, float]:
    """95% percentile bootstrap interval of mean(v1) - mean(v0), arms resampled separately."""
    out = np.empty(n_boot)
    chunk = max(1, 2_000_000 // max(len(v1) + len(v0), 1))
    for s in range(0, n_boot, chunk):
        k = min(chunk, n_boot - s)
        m1 = v1[rng.integers(0, len(v1), (k, len(v1)))].mean(axis=1)
        m0 = v0[rng.integers(0, len(v0), (k, len(v0)))].mean(axis=1)
        out[s:s + k] = m1 - m0
    lo, hi = np.quantile(out, [0.025, 0.975])
    return float(lo), float(hi)


def _verdict(n1: int, n0: int, low: float, high: float, min_n: int, max_width: float) -> str:
    if min(n1, n0) < min_n:
        return f"too small to tell (n < {min_n} per arm)"
    if low > 0:
        return "significant increase"
    if high < 0:
        return "significant decrease"
    if high - low > max_width:
        return f"too small to tell (interval wider than {max_width * 100:.0f} pp)"
    return "not significant"


# --------------------------------------------------------------------------- outcomes


def _need(df: pd.DataFrame, cols, source: str) -> None:
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise DataError(f"{source}: missing column(s) {missing}; the file has {list(df.columns)}")


def plan_start(plan_path: str | Path) -> pd.Timestamp | None:
    """The campaign start recorded beside a plan (``<plan>.summary.json``: ``campaign_start``,
    the scores' ``as_of``, the first day after the scored data), or None."""
    p = Path(plan_path)
    meta = p.with_name(p.name + ".summary.json")
    if not meta.is_file():
        return None
    try:
        value = json.loads(meta.read_text()).get("campaign_start")
    except (OSError, ValueError):
        return None
    return pd.Timestamp(value) if value else None


def plan_outcomes(plan: pd.DataFrame, transactions: pd.DataFrame, start, days: float, *, source: str = "plan") -> pd.DataFrame:
    """Per plan customer: ``customer_id, group, arm_action`` (treatment: action, control:
    planned_action), ``segment``, ``retained`` (0/1: a purchase in ``[start, start + days)``) and
    ``spend`` (net amount in that window, currency). ``transactions`` is the canonical table of
    :func:`churnml.io.load_dataset`."""
    from churnml.io import active_rows

    _need(plan, ["customer_id", "group", "action", "planned_action"], source)
    groups = set(plan["group"].astype(str))
    if "control" not in groups:
        raise DataError(f"{source}: column group has no 'control' rows (values: {sorted(groups)}); nothing to compare with")
    if "treatment" not in groups:
        raise DataError(f"{source}: column group has no 'treatment' rows (values: {sorted(groups)})")
    bad = plan.loc[~plan["group"].isin(["treatment", "control"]), "group"]
    if len(bad):
        raise DataError(f"{source}: column group must be 'treatment' or 'control', e.g. rows {list(bad.index[:3] + 2)}: {bad.head(3).tolist()}")
    try:
        start = pd.Timestamp(start).normalize()
    except (TypeError, ValueError):
        raise DataError(f"--start {start!r} is not a date (use YYYY-MM-DD)") from None
    if not days > 0:
        raise DataError(f"--days must be positive, not {days}")
    end = start + pd.Timedelta(days=float(days))
    last = transactions["timestamp"].max() if len(transactions) else pd.NaT
    if pd.isna(last) or start > last:
        raise DataError(f"the transactions end on {getattr(last, 'date', lambda: last)()}, before the campaign start {start.date()}: "
                        "nothing to read out yet (wait, or check --start)")
    if last < end - pd.Timedelta(days=1):
        import warnings

        warnings.warn(f"the transactions end on {last.date()}, before the window's last day {(end - pd.Timedelta(days=1)).date()}: "
                      "retention is measured on a partial window", stacklevel=2)
    tx = active_rows(transactions, end)
    tx = tx.loc[(tx["timestamp"] >= start) & (tx["timestamp"] < end)]
    ids = plan["customer_id"].astype(str)
    is_purchase = ~tx["is_return"].to_numpy(dtype=bool) if "is_return" in tx.columns else np.ones(len(tx), dtype=bool)
    bought = set(tx.loc[is_purchase, "customer_id"].astype(str))
    spend = tx.groupby(tx["customer_id"].astype(str))["amount"].sum()
    treat = plan["group"].astype(str).to_numpy() == "treatment"
    out = pd.DataFrame({
        "customer_id": ids.to_numpy(),
        "group": plan["group"].astype(str).to_numpy(),
        "arm_action": np.where(treat, plan["action"].astype(str), plan["planned_action"].astype(str)),
        "segment": plan["segment"].astype(str).to_numpy() if "segment" in plan.columns else "all",
        "retained": ids.isin(bought).to_numpy().astype(int),
        "spend": spend.reindex(ids).fillna(0.0).to_numpy(dtype=float),
    })
    return out


def outcomes_table(df: pd.DataFrame, *, group_column: str, treatment: str, control: str, outcome: str,
                   value: str | None = None, segment: str | None = None, source: str = "outcomes") -> pd.DataFrame:
    """An experiment table from elsewhere (one row per customer) as outcomes: rows labelled
    ``treatment`` / ``control`` in ``group_column`` (other labels are left out), ``outcome`` a
    binary column (0/1, true/false), ``value`` an optional amount per customer (currency)."""
    _need(df, [c for c in (group_column, outcome, value, segment) if c], source)
    g = df[group_column].astype(str)
    labels = sorted(set(g))
    for name, label in (("--treatment", treatment), ("--control", control)):
        if label not in labels:
            raise DataError(f"{source}: {name} {label!r} is not a value of column {group_column} (values: {labels[:10]})")
    df = df.loc[g.isin([treatment, control])]
    y = df[outcome]
    if y.dtype == bool:
        y = y.astype(int)
    else:
        y = pd.to_numeric(y, errors="coerce")
    bad = ~y.isin([0, 1])
    if bad.any():
        raise DataError(f"{source}: column {outcome} must be 0/1, e.g. rows {list(df.index[bad.to_numpy()][:3] + 2)}: "
                        f"{df.loc[bad, outcome].head(3).tolist()}")
    out = pd.DataFrame({
        "group": np.where(df[group_column].astype(str) == treatment, "treatment", "control"),
        "arm_action": "all",
        "segment": df[segment].astype(str).to_numpy() if segment else "all",
        "retained": y.to_numpy(dtype=int),
    })
    if value:
        v = pd.to_numeric(df[value], errors="coerce")
        if v.isna().any():
            bad = v.isna().to_numpy()
            raise DataError(f"{source}: column {value} is not numeric, e.g. rows {list(df.index[bad][:3] + 2)}: {df.loc[bad, value].head(3).tolist()}")
        out["spend"] = v.to_numpy(dtype=float)
    return out


# --------------------------------------------------------------------------- the read-out


def _row(level: str, name: str, treat: np.ndarray, y: np.ndarray, spend: np.ndarray | None, rng, n_boot: int,
         min_n: int, max_width: float) -> dict:
    """One read-out row from the rows' arm (``treat``), retained (0/1) and spend arrays."""
    n1 = int(treat.sum())
    n0 = int(len(treat) - n1)
    x1 = int(y[treat].sum())
    x0 = int(y[~treat].sum())
    nan = float("nan")
    r: dict = {"level": level, "name": name, "n_treatment": n1, "n_control": n0}
    if n1 == 0 or n0 == 0:
        r.update({k: nan for k in READOUT_COLUMNS if k not in r})
        r["verdict"] = "no " + ("control" if n0 == 0 else "treatment") + " customers"
        return r
    lo, hi = newcombe_interval(x1, n1, x0, n0)
    d = x1 / n1 - x0 / n0
    cr = _churn_reduction(x1, n1, x0, n0)
    r.update({
        "retention_treatment": x1 / n1, "retention_control": x0 / n0, "retention_diff": d,
        "retention_diff_low": float(lo), "retention_diff_high": float(hi), "p_value": _p_value(x1, n1, x0, n0),
        "incremental_retained": d * n1, "incremental_retained_low": float(lo) * n1, "incremental_retained_high": float(hi) * n1,
        "churn_reduction": cr[0], "churn_reduction_low": cr[1], "churn_reduction_high": cr[2],
    })
    if spend is not None and n_boot > 0:
        v1, v0 = spend[treat], spend[~treat]
        sd = v1.mean() - v0.mean()
        slo, shi = _bootstrap_diff(v1, v0, n_boot, rng)
        r.update({"spend_treatment": v1.mean(), "spend_control": v0.mean(), "spend_diff": sd, "spend_diff_low": slo,
                  "spend_diff_high": shi, "incremental_value": sd * n1, "incremental_value_low": slo * n1,
                  "incremental_value_high": shi * n1})
    else:
        r.update({k: nan for k in READOUT_COLUMNS[13:21]})
    r["verdict"] = _verdict(n1, n0, float(lo), float(hi), min_n, max_width)
    return r


def readout(outcomes: pd.DataFrame, *, n_boot: int = 2000, seed: int = 0, min_n: int = MIN_N,
            max_width: float = MAX_WIDTH) -> pd.DataFrame:
    """Treatment vs control overall, per action (``arm_action``) and per segment: one row each
    with the columns :data:`READOUT_COLUMNS` (see the module docstring for the methods).
    ``n_boot = 0`` skips the spend columns (NaN)."""
    rng = np.random.default_rng(seed)
    treat = outcomes["group"].to_numpy() == "treatment"
    y = outcomes["retained"].to_numpy(dtype=int)
    spend = outcomes["spend"].to_numpy(dtype=float) if "spend" in outcomes.columns else None
    args = (rng, n_boot, min_n, max_width)
    rows = [_row("overall", "all", treat, y, spend, *args)]
    for level, col in (("action", "arm_action"), ("segment", "segment")):
        labels = outcomes[col].astype(str).to_numpy()
        for name in sorted(set(labels) - {"all"}):
            m = labels == name
            rows.append(_row(level, name, treat[m], y[m], None if spend is None else spend[m], *args))
    return pd.DataFrame(rows)[READOUT_COLUMNS]


def write_readout(table: pd.DataFrame, path: str | Path) -> Path:
    """Write the read-out as CSV atomically."""
    from churnml._atomic import write_table

    return write_table(table, path, index=False)


def print_table(table: pd.DataFrame, currency: str = "") -> str:
    """The read-out for people: plain headers, rates in %, amounts in currency, intervals in brackets."""
    cur = f" ({currency})" if currency else ""
    pct = lambda v: "" if pd.isna(v) else f"{v * 100:.1f}%"  # noqa: E731
    pp = lambda v, lo, hi: "" if pd.isna(v) else f"{v * 100:+.1f} pp [{lo * 100:+.1f}, {hi * 100:+.1f}]"  # noqa: E731
    money = lambda v, lo, hi: "" if pd.isna(v) else f"{v:+,.2f} [{lo:+,.2f}, {hi:+,.2f}]"  # noqa: E731
    num = lambda v, lo, hi: "" if pd.isna(v) else f"{v:+,.1f} [{lo:+,.1f}, {hi:+,.1f}]"  # noqa: E731
    t = table
    out = pd.DataFrame({
        "Group": t["level"].where(t["level"] == "overall", t["level"] + ": " + t["name"].astype(str)),
        "Treated": t["n_treatment"].map("{:,}".format),
        "Control": t["n_control"].map("{:,}".format),
        "Retention treated": t["retention_treatment"].map(pct),
        "Retention control": t["retention_control"].map(pct),
        "Difference [95% CI]": [pp(*v) for v in zip(t["retention_diff"], t["retention_diff_low"], t["retention_diff_high"])],
        "Extra customers retained": [num(*v) for v in zip(t["incremental_retained"], t["incremental_retained_low"],
                                                          t["incremental_retained_high"])],
        f"Extra value{cur}": [money(*v) for v in zip(t["incremental_value"], t["incremental_value_low"], t["incremental_value_high"])],
        "Churn reduction": [pp(*v).replace(" pp", "%").replace("+", "") if not pd.isna(v[0]) else ""
                            for v in zip(t["churn_reduction"], t["churn_reduction_low"], t["churn_reduction_high"])],
        "Verdict": t["verdict"],
    })
    return out.to_string(index=False)
