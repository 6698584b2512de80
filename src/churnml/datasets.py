"""Bundled data sets and path resolution (``bundled:NAME``).

CDNOW ships inside the ``lifetimes`` package: ``bundled:cdnow_master`` is the full log
(23,570 customers, 1997-01 to 1998-06, with a header row), ``bundled:cdnow_sample`` the
1/10 sample (2,357 customers, no header: master id, sample id, date, CDs, dollars).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from churnml.errors import DataError

__all__ = ["BUNDLED", "bundled_path", "load_cdnow", "resolve_path"]

BUNDLED = {
    "cdnow_master": ("lifetimes", "datasets/CDNOW_master.txt"),
    "cdnow_sample": ("lifetimes", "datasets/CDNOW_sample.txt"),
}
CDNOW_SAMPLE_NAMES = ["customer_id", "sample_id", "date", "number_of_cds", "dollar_value"]


def bundled_path(name: str) -> Path:
    """Path of a bundled data set by name (see ``BUNDLED``)."""
    if name not in BUNDLED:
        raise DataError(f"unknown bundled data set {name!r}; known: {', '.join(sorted(BUNDLED))}")
    package, rel = BUNDLED[name]
    import importlib.util

    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise DataError(f"bundled data set {name!r} needs the {package!r} package installed")
    return Path(list(spec.submodule_search_locations)[0]) / rel


def resolve_path(path: str | Path) -> Path:
    """Turn ``bundled:NAME`` into the installed file's path; other paths pass through."""
    text = str(path)
    if text.startswith("bundled:"):
        return bundled_path(text.split(":", 1)[1])
    return Path(text)


def load_cdnow(which: str = "master") -> pd.DataFrame:
    """CDNOW as a raw DataFrame: ``customer_id`` (str), ``date`` (datetime), ``number_of_cds``,
    ``dollar_value`` (USD). ``which`` is ``"master"`` or ``"sample"``."""
    if which == "master":
        df = pd.read_csv(bundled_path("cdnow_master"), sep=r"\s+", dtype={"customer_id": str, "date": str})
    elif which == "sample":
        df = pd.read_csv(
            bundled_path("cdnow_sample"), sep=r"\s+", header=None, names=CDNOW_SAMPLE_NAMES,
            dtype={"customer_id": str, "sample_id": str, "date": str},
        )
    else:
        raise ValueError("which must be 'master' or 'sample'")
    df["date"] = pd.to_datetime(df["date"], format="%Y%m%d")
    return df


# --------------------------------------------------------------------------- simulation

_UNIT_DAYS = {"D": 1.0, "W": 7.0}


def simulate(
    n_customers: int,
    start="2020-01-01",
    end="2022-01-01",
    bgnbd_params: dict | None = None,
    gamma_gamma_params: dict | None = None,
    seed: int = 0,
    *,
    time_unit: str = "W",
    acquisition_days: float | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Draw a transaction log from the BG/NBD purchase and Gamma-Gamma spend processes.

    Each customer makes a first purchase at a uniform time in ``[start, start +
    acquisition_days)`` (default: the first quarter of the window), then repeat purchases as a
    Poisson process with rate ``lambda ~ Gamma(r, alpha)`` per ``time_unit`` ("W" weeks or "D"
    days); after each repeat purchase they drop out with probability ``p ~ Beta(a, b)``
    (Fader, Hardie & Lee 2005). Every purchase's amount is ``Gamma(p_gg, nu)`` with
    ``nu ~ Gamma(q, gamma)`` (Fader, Hardie & Lee 2005, "RFM and CLV"), so a customer's mean
    spend is ``p_gg / nu``. Purchases after ``end`` are not in the log.

    Returns ``(transactions, truth)``: transactions ``customer_id, timestamp, amount``;
    truth indexed by ``customer_id`` with ``first_purchase``, ``lam`` (per time unit), ``p``,
    ``dropout_time`` (when the customer became inactive, possibly after ``end``),
    ``alive_at_end`` and ``mean_spend`` (currency per purchase).
    """
    import numpy as np

    bg = {"r": 0.75, "alpha": 5.0, "a": 0.8, "b": 2.5, **(bgnbd_params or {})}
    gg = {"p": 6.0, "q": 4.0, "gamma": 15.0, **(gamma_gamma_params or {})}
    if time_unit not in _UNIT_DAYS:
        raise ValueError("time_unit must be 'D' or 'W'")
    rng = np.random.default_rng(seed)
    start_ts, end_ts = pd.Timestamp(start), pd.Timestamp(end)
    unit = pd.Timedelta(days=_UNIT_DAYS[time_unit])
    window = (end_ts - start_ts) / unit
    acq = (acquisition_days / _UNIT_DAYS[time_unit]) if acquisition_days is not None else window / 4
    n = int(n_customers)

    lam = rng.gamma(bg["r"], 1.0 / bg["alpha"], n)
    p = rng.beta(bg["a"], bg["b"], n)
    nu = rng.gamma(gg["q"], 1.0 / gg["gamma"], n)
    birth = rng.uniform(0.0, acq, n)
    horizon = window - birth  # time each customer is observed after the first purchase
    # repeat purchases before the end, if the customer never dropped out
    n_events = rng.poisson(lam * horizon)
    # the repeat purchase after which the customer drops out (geometric, >= 1)
    k_death = rng.geometric(p)
    n_obs = np.minimum(n_events, k_death)
    # event times given the count are uniform order statistics on (0, horizon]
    owner = np.repeat(np.arange(n), n_events)
    times = rng.uniform(0.0, 1.0, owner.size) * horizon[owner]
    order = np.lexsort((times, owner))
    owner, times = owner[order], times[order]
    rank = np.arange(owner.size) - np.repeat(np.cumsum(n_events) - n_events, n_events)
    keep = rank < n_obs[owner]
    rep_owner, rep_times = owner[keep], times[keep]
    # dropout time: the k-th purchase, observed or (memoryless) after the end
    dropped = k_death <= n_events
    dropout = np.full(n, np.nan)
    last_idx = np.cumsum(n_obs) - 1
    dropout[dropped] = rep_times[last_idx[dropped]]
    extra = k_death[~dropped] - n_events[~dropped]
    dropout[~dropped] = horizon[~dropped] + rng.gamma(extra, 1.0 / lam[~dropped])

    cust = np.concatenate([np.arange(n), rep_owner])
    t = np.concatenate([birth, birth[rep_owner] + rep_times])
    amount = rng.gamma(gg["p"], 1.0 / nu[cust])
    width = len(str(n))
    ids = np.char.add("S", np.char.zfill(np.arange(n).astype(str), width))
    ts = start_ts + pd.to_timedelta(np.round(t * unit.total_seconds()), unit="s")
    tx = pd.DataFrame({"customer_id": ids[cust], "timestamp": ts, "amount": np.round(amount, 2)})
    tx = tx.sort_values(["customer_id", "timestamp"], kind="stable").reset_index(drop=True)
    truth = pd.DataFrame(
        {
            "first_purchase": start_ts + pd.to_timedelta(np.round(birth * unit.total_seconds()), unit="s"),
            "lam": lam,
            "p": p,
            # dropouts far in the future (a tiny purchase rate) are capped at 100 years
            "dropout_time": start_ts
            + pd.to_timedelta(np.round(np.minimum(birth + dropout, 36525 / _UNIT_DAYS[time_unit]) * unit.total_seconds()), unit="s"),
            "alive_at_end": ~dropped,
            "mean_spend": gg["p"] / nu,
        },
        index=pd.Index(ids, name="customer_id"),
    )
    return tx, truth
