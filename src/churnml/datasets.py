"""Bundled data sets and path resolution (``bundled:NAME``).

CDNOW ships inside the ``lifetimes`` package: ``bundled:cdnow_master`` is the full log
(23,570 customers, 1997-01 to 1998-06, with a header row), ``bundled:cdnow_sample`` the
1/10 sample (2,357 customers, no header: master id, sample id, date, CDs, dollars).
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pandas as pd

from churnml.errors import DataError

__all__ = [
    "BUNDLED", "CORPUS", "Corpus", "DataUnavailable", "REGIMES", "bundled_path", "corpus", "corpus_log", "load_cdnow",
    "resolve_path", "simulate", "simulate_regime",
    "CAMPAIGN_FEATURES", "CAMPAIGN_SEGMENTS", "CAMPAIGN_TRUTH", "simulate_campaign",
]

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


# --------------------------------------------------------------------------- simulated regimes
#
# Each regime is the BG/NBD + Gamma-Gamma process of :func:`simulate` with one departure from
# it that real logs show and that the models were not tuned on. Rates are per DAY here.

REGIMES = {
    "baseline": "BG/NBD + Gamma-Gamma as the textbook assumes (control)",
    "no_dropout": "nobody ever drops out (p = 0): steady buyers at ~5 purchases a year",
    "frequent": "very frequent buyers: purchase rates between weekly and daily, ~30 purchases before dropping out",
    "seasonal": "purchase and acquisition rates x4 in November-December (x1 the rest of the year)",
    "one_timers": "~78% of customers never buy again after their first purchase; the rest follow BG/NBD",
    "heavy_returns": "~22% of orders are partly or fully returned 1-14 days later and ~3% cancelled 1-30 minutes later "
                     "(separate negative orders with their own order ids), plus one huge order cancelled 12 minutes later",
    "wholesale": "retail customers plus ~0.75% wholesale customers buying weekly to monthly with order values 100-1000x larger",
    "mixed_retail": "a retail shop: seasonal (x4 Nov-Dec), ~65% one-time buyers, ~0.5% wholesale customers, "
                    "returns and cancellations including one huge order cancelled 12 minutes later",
}
"""Regime name -> what departs from the textbook process (see :func:`simulate_regime`)."""

REGIME_START, REGIME_END = "2019-12-01", "2022-06-01"
"""Default window of :func:`simulate_regime`: 30 months from a December (like many retail
exports), so first-9- and first-12-month truncations hold a season peak."""

SEASON_MULTIPLIER = {m: (4.0 if m in (11, 12) else 1.0) for m in range(1, 13)}
"""Calendar month -> multiplier of the purchase (and acquisition) rate in seasonal regimes."""

# retail customers (rates per day): mean 0.15/week, P(drop after a repeat) ~ Beta(0.8, 2.5)
_RETAIL_BG = {"r": 0.75, "alpha": 35.0, "a": 0.8, "b": 2.5}
_GG = {"p": 6.0, "q": 4.0, "gamma": 15.0}  # mean order value ~ p * gamma / (q - 1) = 30
RETURN_SHARE = 0.22
"""Share of purchase orders followed by a (partial or full) return 1-14 days later (return regimes)."""
CANCEL_SHARE = 0.03
"""Share of purchase orders fully cancelled 1-30 minutes later (return regimes)."""
HUGE_ORDER_AMOUNT = 168_469.6
"""The huge wholesale order of the return regimes (cancelled 12 minutes later)."""
_DAY_S = 86_400.0


class _Clock:
    """Operational time of a seasonal rate: ``op(t) = integral of the month multiplier from the
    start to t`` (days). A Poisson process of rate ``lam x multiplier`` in calendar time is a
    homogeneous one of rate ``lam`` in operational time; ``cal`` maps back (exact, piecewise
    linear between month starts)."""

    def __init__(self, start: pd.Timestamp, window: float, season: dict[int, float] | None):
        self.season = season
        if not season:
            return
        months = pd.date_range(start.to_period("M").to_timestamp(), periods=int(window / 28) + 12 * 101, freq="MS")
        days = ((months - start) / pd.Timedelta(days=1)).to_numpy(dtype=float)
        mult = np.array([season[m] for m in months.month], dtype=float)
        grid = np.concatenate([[0.0], days[days > 0]])
        # multiplier on [grid[i], grid[i+1]): that of the month containing grid[i]
        seg_mult = mult[np.searchsorted(days, grid[:-1], side="right") - 1]
        self.grid = grid
        self.op_grid = np.concatenate([[0.0], np.cumsum(np.diff(grid) * seg_mult)])

    def op(self, t):
        return t if not self.season else np.interp(t, self.grid, self.op_grid)

    def cal(self, u):
        return u if not self.season else np.interp(u, self.op_grid, self.grid)


def _purchase_process(rng, birth, window, lam, k_death, clock: _Clock):
    """Repeat purchases of each customer after ``birth`` (days) until ``window``: a Poisson
    process of rate ``lam`` (per day) times the season multiplier, stopped after the
    ``k_death``-th repeat purchase. Only the kept purchases are drawn (the first ``k`` of ``n``
    uniform order statistics are cumulated exponential spacings over ``S_k + Gamma(n + 1 - k)``),
    so the cost is linear in the log's size. Returns (owner, time) of the kept purchases sorted
    by customer and time, and each customer's dropout time relative to birth (NaN: never)."""
    n = birth.size
    b_op = clock.op(birth)
    h_op = clock.op(np.full(n, window)) - b_op
    n_events = rng.poisson(lam * h_op)
    n_obs = np.minimum(n_events, k_death)
    owner = np.repeat(np.arange(n), n_obs)
    spacing = np.cumsum(rng.exponential(1.0, owner.size))
    first = np.cumsum(n_obs) - n_obs
    base = np.concatenate([[0.0], spacing])[first]  # cumulated spacings before each customer's block
    s = spacing - base[owner]
    s_k = np.zeros(n)
    has = n_obs > 0
    s_k[has] = s[first[has] + n_obs[has] - 1]
    total = s_k + rng.gamma((n_events - n_obs + 1).astype(float), 1.0)
    u = s / total[owner] * h_op[owner]  # operational time since birth
    t = clock.cal(b_op[owner] + u) - birth[owner]
    dropout = np.full(n, np.nan)
    dropout[k_death == 0] = 0.0
    seen = (k_death >= 1) & (k_death <= n_events)
    dropout[seen] = t[first[seen] + k_death[seen] - 1]
    later = (k_death > n_events) & (k_death < _NEVER)
    if later.any():
        extra = (k_death[later] - n_events[later]).astype(float)
        dropout[later] = clock.cal(b_op[later] + h_op[later] + rng.gamma(extra, 1.0 / lam[later])) - birth[later]
    return owner, t, dropout


_NEVER = np.iinfo(np.int64).max


def simulate_regime(
    name: str,
    n_customers: int = 4000,
    seed: int = 0,
    *,
    start=REGIME_START,
    end=REGIME_END,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A simulated transaction log of one named regime (see :data:`REGIMES`) and its truth.

    Customers arrive uniformly over the whole window (seasonally weighted in seasonal regimes);
    retail customers buy as a Poisson process with rate ``lam ~ Gamma(0.75, 35)`` per day (about
    0.15 a week), drop out after each repeat purchase with probability ``p ~ Beta(0.8, 2.5)``, and
    spend ``Gamma(6, nu)`` per order with ``nu ~ Gamma(4, 15)`` (mean ~30); each regime changes
    one part of this (several for ``mixed_retail``). Same ``seed``, same log. Vectorised: 100k
    customers take a few seconds.

    Returns ``(transactions, truth)``. Transactions: ``customer_id`` (``"S000123"``),
    ``timestamp``, ``amount`` (negative for returns and cancellations), plus ``order_id`` in
    the regimes with returns (``"C<order>"`` cancels and ``"R<order>"`` returns part or all of
    ``<order>``), sorted by customer and time. Truth, indexed by ``customer_id``:
    ``first_purchase``, ``lam`` (per day), ``p``, ``dropout_time`` (NaT: never; possibly after
    ``end``), ``alive_at_end``, ``mean_spend`` (per order), ``kind`` (``retail``/``wholesale``),
    ``one_timer`` (drops out right after the first purchase), ``n_purchases`` (purchase orders
    in the log), ``n_returns``, ``n_cancellations``, ``returned_amount`` (positive);
    ``truth.attrs`` holds the regime, window, rate unit and season table.
    """
    if name not in REGIMES:
        raise ValueError(f"unknown regime {name!r}; known: {', '.join(REGIMES)}")
    n = int(n_customers)
    if n < 10:
        raise ValueError("n_customers must be at least 10")
    rng = np.random.default_rng([seed, list(REGIMES).index(name)])
    start_ts, end_ts = pd.Timestamp(start), pd.Timestamp(end)
    start64 = np.datetime64(start_ts.to_datetime64(), "s")
    window = (end_ts - start_ts) / pd.Timedelta(days=1)

    seasonal = name in ("seasonal", "mixed_retail")
    season = SEASON_MULTIPLIER if seasonal else None
    with_returns = name in ("heavy_returns", "mixed_retail")
    wholesale_share = {"wholesale": 0.0075, "mixed_retail": 0.005}.get(name, 0.0)
    one_timer_share = {"one_timers": 0.78, "mixed_retail": 0.65}.get(name, 0.0)
    n_sim = n - 1 if with_returns else n  # the last customer places the huge cancelled order

    bg = dict(_RETAIL_BG)
    if name == "seasonal" or name == "mixed_retail":
        bg.update(alpha=50.0, r=1.0)  # base 0.02/day; x4 in Nov-Dec
    lam = rng.gamma(bg["r"], 1.0 / bg["alpha"], n_sim)
    p = rng.beta(bg["a"], bg["b"], n_sim)
    if name == "no_dropout":
        lam = rng.gamma(2.0, 1.0 / 140.0, n_sim)  # mean 0.1 a week, ~5 a year
        p = np.zeros(n_sim)
    elif name == "frequent":
        lam = np.exp(rng.uniform(np.log(1 / 7), np.log(1.0), n_sim))  # weekly to daily
        p = rng.beta(2.0, 60.0, n_sim)  # ~30 repeat purchases before dropping out
    kind = np.full(n_sim, "retail", dtype=object)
    spend_mult = np.ones(n_sim)
    if wholesale_share:
        ws = rng.uniform(size=n_sim) < wholesale_share
        ws[rng.integers(n_sim)] = True  # at least one
        kind[ws] = "wholesale"
        lam[ws] = rng.uniform(1 / 30, 1 / 7, ws.sum())  # weekly to monthly
        p[ws] = rng.beta(1.0, 80.0, ws.sum())
        spend_mult[ws] = np.exp(rng.uniform(np.log(100.0), np.log(1000.0), ws.sum()))
    one_timer = np.zeros(n_sim, dtype=bool)
    if one_timer_share:
        one_timer = (rng.uniform(size=n_sim) < one_timer_share) & (kind == "retail")
    nu = rng.gamma(_GG["q"], 1.0 / _GG["gamma"], n_sim)

    clock = _Clock(start_ts, window, season)
    birth = clock.cal(rng.uniform(0.0, 1.0, n_sim) * clock.op(window))
    k_death = np.full(n_sim, _NEVER, dtype=np.int64)
    drops = p > 0
    k_death[drops] = rng.geometric(p[drops])
    k_death[one_timer] = 0
    rep_owner, rep_t, dropout = _purchase_process(rng, birth, window, lam, k_death, clock)

    cust = np.concatenate([np.arange(n_sim), rep_owner])
    t = np.concatenate([birth, birth[rep_owner] + rep_t])
    amount = np.round(rng.gamma(_GG["p"], 1.0 / nu[cust]) * spend_mult[cust], 2)
    amount = np.maximum(amount, 0.01)
    n_purch = np.bincount(cust, minlength=n)

    neg_cust = np.empty(0, dtype=np.int64)
    neg_t = np.empty(0)
    neg_amount = np.empty(0)
    neg_of = np.empty(0, dtype=np.int64)  # index of the purchase a negative order refers to
    neg_kind = np.empty(0, dtype=object)
    if with_returns:
        # the huge wholesale order: a small purchase, the huge order 5 hours later, cancelled 12 minutes after it
        day = min(120.0, window / 3)
        big = n - 1
        cust = np.concatenate([cust, [big, big]])
        t = np.concatenate([t, [day + 10 / 24, day + 15 / 24]])
        amount = np.concatenate([amount, [2.95, HUGE_ORDER_AMOUNT]])
        n_purch[big] = 2
        u = rng.uniform(size=cust.size - 2)
        cancel = np.flatnonzero(u < CANCEL_SHARE)
        ret = np.flatnonzero((u >= CANCEL_SHARE) & (u < CANCEL_SHARE + RETURN_SHARE))
        frac = np.where(rng.uniform(size=ret.size) < 0.4, 1.0, rng.uniform(0.1, 0.9, ret.size))
        neg_of = np.concatenate([cancel, ret, [cust.size - 1]])
        neg_t = np.concatenate([
            t[cancel] + rng.uniform(1, 30, cancel.size) / 1440.0,
            t[ret] + rng.uniform(1.0, 14.0, ret.size),
            [t[-1] + 12 / 1440.0],
        ])
        neg_amount = -np.concatenate([amount[cancel], np.round(amount[ret] * frac, 2), [HUGE_ORDER_AMOUNT]])
        neg_amount = np.minimum(neg_amount, -0.01)
        neg_kind = np.array(["C"] * cancel.size + ["R"] * ret.size + ["C"], dtype=object)
        inside = neg_t < window
        neg_of, neg_t, neg_amount, neg_kind = neg_of[inside], neg_t[inside], neg_amount[inside], neg_kind[inside]
        neg_cust = cust[neg_of]

    width = len(str(n))
    ids = np.char.add("S", np.char.zfill(np.arange(n).astype(str), width))
    all_cust = np.concatenate([cust, neg_cust])
    all_t = np.concatenate([t, neg_t])
    all_amount = np.concatenate([amount, neg_amount])
    order = np.lexsort((all_t, all_cust))
    secs = np.round(all_t * _DAY_S).astype("int64")
    tx = pd.DataFrame({
        "customer_id": ids[all_cust[order]],
        "timestamp": (start64 + secs[order].astype("timedelta64[s]")).astype("datetime64[ns]"),
        "amount": all_amount[order],
    })
    if with_returns:
        # invoice numbers increase with time, like a till's
        by_time = np.argsort(t, kind="stable")
        number = np.empty(t.size, dtype=np.int64)
        number[by_time] = 500_000 + np.arange(t.size)
        pos_ids = number.astype(str).astype(object)
        neg_ids = (neg_kind + number[neg_of].astype(str).astype(object)).astype(object)
        tx["order_id"] = np.concatenate([pos_ids, neg_ids])[order]

    first_purchase = birth
    dropout_all, lam_all, p_all = dropout, lam, p
    mean_spend = _GG["p"] / nu * spend_mult
    if n_sim < n:  # the huge-order customer
        first_purchase = np.append(birth, day + 10 / 24)
        dropout_all = np.append(dropout, day + 15 / 24 - (day + 10 / 24))
        lam_all, p_all = np.append(lam, 0.0), np.append(p, 1.0)
        mean_spend = np.append(mean_spend, (2.95 + HUGE_ORDER_AMOUNT) / 2)
        kind = np.append(kind, "wholesale").astype(object)
        one_timer = np.append(one_timer, False)
    abs_dropout = first_purchase + dropout_all
    finite = np.isfinite(abs_dropout)
    drop_secs = np.where(finite, np.round(np.minimum(np.where(finite, abs_dropout, 0.0), 36525.0) * _DAY_S), 0).astype("int64")
    dropout_ts = pd.Series((start64 + drop_secs.astype("timedelta64[s]")).astype("datetime64[ns]"))
    dropout_ts[~finite] = pd.NaT
    n_ret = np.bincount(neg_cust[neg_kind == "R"], minlength=n) if with_returns else np.zeros(n, dtype=np.int64)
    n_can = np.bincount(neg_cust[neg_kind == "C"], minlength=n) if with_returns else np.zeros(n, dtype=np.int64)
    ret_amt = np.bincount(neg_cust, weights=-neg_amount, minlength=n) if with_returns else np.zeros(n)
    truth = pd.DataFrame(
        {
            "first_purchase": (start64 + np.round(first_purchase * _DAY_S).astype("int64").astype("timedelta64[s]")).astype("datetime64[ns]"),
            "lam": lam_all,
            "p": p_all,
            "dropout_time": dropout_ts.to_numpy(),
            "alive_at_end": ~finite | (abs_dropout >= window),
            "mean_spend": mean_spend,
            "kind": kind.astype(str),
            "one_timer": one_timer,
            "n_purchases": n_purch,
            "n_returns": n_ret,
            "n_cancellations": n_can,
            "returned_amount": np.round(ret_amt, 2),
        },
        index=pd.Index(ids, name="customer_id"),
    )
    truth.attrs.update(
        regime=name, description=REGIMES[name], start=str(start_ts), end=str(end_ts), lam_unit="per day",
        seed=int(seed), season={int(k): float(v) for k, v in (season or {}).items()},
    )
    return tx, truth


# --------------------------------------------------------------------------- robustness corpus


class DataUnavailable(DataError):
    """A corpus log whose source is not on this machine (e.g. ``../shared/data`` absent)."""


class Corpus(dict):
    """Name -> ``(transactions, description)`` in corpus order; ``skipped`` maps the names that
    could not be built to the reason."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.skipped: dict[str, str] = {}


CORPUS_MONTHS = (9, 12)
"""Truncations of every source (first N months of its log)."""
CORPUS_CUSTOMERS = 5000
"""Customers per simulated regime in the corpus (30 months; about 40% of them arrive in the first 12)."""
CORPUS_SEED = 20240601
"""Seed of the simulated regimes in the corpus."""


def _default_shared_dir() -> Path | None:
    import os

    env = os.environ.get("CHURNML_SHARED_DATA")
    if env:
        return Path(env)
    here = Path(__file__).resolve()
    # src layout: <repo>/src/churnml/datasets.py -> <repo>/../shared/data
    return here.parents[3] / "shared" / "data" if len(here.parents) > 3 else None


def _corpus_specs() -> dict[str, tuple[str, str, int | None]]:
    """name -> (source kind, source name, months or None for the whole log)."""
    specs: dict[str, tuple[str, str, int | None]] = {}
    for months in CORPUS_MONTHS:
        specs[f"cdnow_{months}m"] = ("cdnow", "master", months)
    for src in ("apparel", "grocery"):
        for months in CORPUS_MONTHS:
            specs[f"{src}_{months}m"] = ("shared", src, months)
    for regime in REGIMES:
        specs[f"sim_{regime}"] = ("regime", regime, None)
        for months in CORPUS_MONTHS:
            specs[f"sim_{regime}_{months}m"] = ("regime", regime, months)
    return specs


CORPUS = list(_corpus_specs())
"""Names of the robustness corpus logs, in order."""


def truncate_months(transactions: pd.DataFrame, months: int, column: str = "timestamp") -> pd.DataFrame:
    """The first ``months`` calendar months of a log: rows before ``first timestamp + months``."""
    first = transactions[column].min()
    end = first + pd.DateOffset(months=months)
    return transactions.loc[transactions[column] < end].reset_index(drop=True)


def _shared_source(src: str, shared_dir: Path | None) -> pd.DataFrame:
    if shared_dir is None or not Path(shared_dir).is_dir():
        raise DataUnavailable(f"shared data folder {shared_dir} is absent (only CI and developer machines have it)")
    if src == "apparel":
        path = Path(shared_dir) / "apparel" / "apparelTrans.csv"
        if not path.is_file():
            raise DataUnavailable(f"{path} is absent")
        raw = pd.read_csv(path, dtype={"Id": str})
        return pd.DataFrame({
            "customer_id": raw["Id"].to_numpy(), "timestamp": pd.to_datetime(raw["Date"]), "amount": raw["Price"].astype(float),
        })
    path = Path(shared_dir) / "grocery" / "groceryElog.csv"
    if not path.is_file():
        raise DataUnavailable(f"{path} is absent")
    raw = pd.read_csv(path, dtype={"cust": str})
    # the grocery log has purchase dates only: one unit of "spend" per purchase, so CLV reads as purchases
    return pd.DataFrame({"customer_id": raw["cust"].to_numpy(), "timestamp": pd.to_datetime(raw["date"]), "amount": 1.0})


@functools.lru_cache(maxsize=4)
def _cached_regime(name: str, n_customers: int, seed: int) -> pd.DataFrame:
    return simulate_regime(name, n_customers, seed)[0]


def corpus_log(
    name: str,
    shared_dir: str | Path | None = None,
    *,
    n_customers: int = CORPUS_CUSTOMERS,
    seed: int = CORPUS_SEED,
) -> tuple[pd.DataFrame, str]:
    """One corpus log by name (see :data:`CORPUS`): ``(transactions, description)``, the frame in
    the canonical raw columns ``customer_id`` (str), ``timestamp``, ``amount`` (and ``order_id``
    for the simulated regimes with returns), sorted by customer and time.

    ``cdnow_9m``/``cdnow_12m``: CDNOW master (one row per CD-order line, 0-dollar lines kept) over
    its first 9/12 months. ``apparel_*``/``grocery_*``: ``shared_dir`` (default
    ``$CHURNML_SHARED_DATA`` or ``<repo>/../shared/data``) apparel (``Id, Date, Price``) and grocery
    (``cust, date``: no amounts, so every purchase has amount 1.0) truncated likewise; raises
    :class:`DataUnavailable` when the folder is absent. ``sim_<regime>``: :func:`simulate_regime`
    with ``n_customers`` and ``seed`` over 30 months, ``sim_<regime>_9m``/``_12m`` its first 9/12
    months.
    """
    specs = _corpus_specs()
    if name not in specs:
        raise ValueError(f"unknown corpus log {name!r}; known: {', '.join(specs)}")
    kind, src, months = specs[name]
    if kind == "cdnow":
        raw = load_cdnow(src)
        df = pd.DataFrame({"customer_id": raw["customer_id"].astype(str), "timestamp": raw["date"], "amount": raw["dollar_value"].astype(float)})
        what = "CDNOW master (CD retailer, 1997-98 cohort acquired in Q1 1997)"
    elif kind == "shared":
        df = _shared_source(src, Path(shared_dir) if shared_dir is not None else _default_shared_dir())
        what = ("apparel retailer (CLVTools apparelTrans)" if src == "apparel"
                else "grocery purchase dates (BTYDplus groceryElog), amount 1.0 per purchase")
    else:
        df = _cached_regime(src, int(n_customers), int(seed)).copy()
        what = f"simulated {src}: {REGIMES[src]}"
    if months is not None:
        df = truncate_months(df, months)
        what += f", first {months} months"
    else:
        what += ", whole log"
    df = df.sort_values(["customer_id", "timestamp"], kind="stable").reset_index(drop=True)
    return df, what


def corpus(
    names: list[str] | None = None,
    shared_dir: str | Path | None = None,
    *,
    n_customers: int = CORPUS_CUSTOMERS,
    seed: int = CORPUS_SEED,
) -> Corpus:
    """The robustness corpus: name -> ``(transactions, description)`` for ``names`` (default all
    of :data:`CORPUS`); logs whose source is absent are left out and listed with the reason in
    ``.skipped``. See :func:`corpus_log`."""
    out = Corpus()
    for name in names or CORPUS:
        try:
            out[name] = corpus_log(name, shared_dir, n_customers=n_customers, seed=seed)
        except DataUnavailable as err:
            out.skipped[name] = str(err)
    return out


# --------------------------------------------------------------------------- randomised campaign

CAMPAIGN_SEGMENTS = {
    # name: (share, purchases a year, recency multiplier, order-value multiplier,
    #        baseline retention log-odds offset, effect of contact on the retention log-odds)
    "new": (0.20, 4.0, 1.0, 1.0, -0.3, -0.6),
    "regular": (0.35, 4.0, 1.0, 1.0, 0.0, 0.5),
    "loyal": (0.15, 12.0, 0.7, 1.3, 0.6, 0.1),
    "deal_seeker": (0.15, 5.0, 1.0, 0.6, -0.2, 1.3),
    "lapsing": (0.15, 2.0, 3.0, 1.0, -0.4, 0.9),
}
"""Segments of :func:`simulate_campaign`: share of customers, purchase rate (per year),
recency multiplier, order-value multiplier, baseline retention log-odds offset, and the
segment's effect of contact on the retention log-odds (negative: contact hurts)."""

CAMPAIGN_FEATURES = ("segment", "tenure_days", "recency_days", "n_purchases", "avg_order_value",
                     "churn_probability", "value_if_retained")
"""Columns of :func:`simulate_campaign` known at the campaign start (model features)."""

CAMPAIGN_TRUTH = ("true_uplift", "p_retain_control", "p_retain_treated")
"""Columns of :func:`simulate_campaign` no real data set has (the simulation's truth)."""


def simulate_campaign(
    n_customers: int = 20000,
    *,
    seed: int = 0,
    treat_share: float = 0.5,
    window_days: int = 90,
    effect_scale: float = 1.0,
    segment_effects: dict[str, float] | None = None,
) -> pd.DataFrame:
    """A randomised retention campaign with a known per-customer treatment effect.

    Generative model, per customer (vectorised; same ``seed``, same table):

    * ``segment`` drawn with the shares of :data:`CAMPAIGN_SEGMENTS`; ``tenure_days`` ~
      U(14, 120) for ``new``, 120 + Gamma(2, 400) (capped at 3000) otherwise; a purchase rate
      ``lam`` = the segment's rate x LogNormal(0, 0.4) (per year); ``n_purchases`` = 1 +
      Poisson(lam x tenure / 365); ``recency_days`` = min(tenure, Exp(mean 365 / lam) x the
      segment's recency multiplier); ``avg_order_value`` = 40 x LogNormal(0, 0.5) x the
      segment's multiplier (currency per order).
    * Baseline (no contact) probability of buying within ``window_days`` after the campaign
      start: ``logit p0 = 0.4 - 1.1 log(1 + recency / 30) + 0.6 log(1 + n_purchases)
      + segment offset + N(0, 0.5)``. ``churn_probability = 1 - p0`` (the exact risk: risk
      targeting gets the best churn model there is).
    * Effect of contact on the log-odds: ``delta = effect_scale x (segment effect
      + 0.8 bump(recency) - 0.3 z)`` with ``bump = exp(-log(recency / 75)^2 / 0.72)`` (customers
      a month to a few months past their last purchase are the persuadable ones) and ``z`` the
      standardised log order value (a discount moves small spenders more). ``p1 =
      sigmoid(logit p0 + delta)`` and ``true_uplift = p1 - p0``: negative for most ``new``
      customers (sleeping dogs: early contact makes them unsubscribe), and small for the
      highest-risk customers (p0 near 0: lost causes), so the riskiest customers are not those
      with the largest effect.
    * ``treatment``: complete randomisation, exactly ``round(treat_share x n)`` customers
      treated (1) at random, the rest control (0). ``retained`` (bought within the window) ~
      Bernoulli(p1 if treated else p0).
    * ``value_if_retained`` = avg_order_value x (1 + lam x window_days / 365) (currency: the
      expected spend in the window of a customer who buys in it); ``spend`` = retained x
      value_if_retained x Gamma(4, 1/4) (currency, in the window).

    ``segment_effects`` overrides segment effects (log-odds) by name. Returns one row per
    customer: ``customer_id`` (``"C000123"``), the features of :data:`CAMPAIGN_FEATURES`,
    ``treatment``, ``retained``, ``spend``, and the truth of :data:`CAMPAIGN_TRUTH`
    (``p_retain_control`` = p0, ``p_retain_treated`` = p1).
    """
    from scipy.special import expit, logit

    n = int(n_customers)
    if n < 10:
        raise ValueError("n_customers must be at least 10")
    if not 0.0 < float(treat_share) < 1.0:
        raise ValueError(f"treat_share must be strictly between 0 and 1, got {treat_share!r}")
    if window_days <= 0:
        raise ValueError(f"window_days must be positive, got {window_days!r}")
    effects = {name: spec[5] for name, spec in CAMPAIGN_SEGMENTS.items()}
    unknown = sorted(set(segment_effects or {}) - set(effects))
    if unknown:
        raise ValueError(f"segment_effects names unknown segment(s) {unknown}; known: {list(effects)}")
    effects.update(segment_effects or {})
    rng = np.random.default_rng([int(seed), 14])
    names = list(CAMPAIGN_SEGMENTS)
    spec = np.array([CAMPAIGN_SEGMENTS[s][:5] for s in names], dtype=float)
    seg = rng.choice(len(names), size=n, p=spec[:, 0] / spec[:, 0].sum())
    share, rate, rec_mult, aov_mult, offset = spec[seg].T

    is_new = seg == names.index("new")
    tenure = np.where(is_new, rng.uniform(14, 120, n), np.minimum(120 + rng.gamma(2.0, 400.0, n), 3000.0))
    lam = rate * rng.lognormal(0.0, 0.4, n)
    n_purchases = 1 + rng.poisson(lam * tenure / 365.0)
    recency = np.minimum(tenure, rng.exponential(365.0 / lam) * rec_mult)
    aov = 40.0 * rng.lognormal(0.0, 0.5, n) * aov_mult

    logit_p0 = 0.4 - 1.1 * np.log1p(recency / 30.0) + 0.6 * np.log1p(n_purchases) + offset + rng.normal(0.0, 0.5, n)
    p0 = expit(logit_p0)
    log_aov = np.log(aov)
    z = (log_aov - log_aov.mean()) / log_aov.std()
    bump = np.exp(-np.log(np.maximum(recency, 1.0) / 75.0) ** 2 / 0.72)
    seg_effect = np.array([effects[s] for s in names])[seg]
    delta = float(effect_scale) * (seg_effect + 0.8 * bump - 0.3 * z)
    p1 = expit(logit_p0 + delta)

    treatment = np.zeros(n, dtype=np.int64)
    treatment[rng.permutation(n)[: int(round(treat_share * n))]] = 1
    retained = (rng.uniform(size=n) < np.where(treatment == 1, p1, p0)).astype(np.int64)
    value = aov * (1.0 + lam * window_days / 365.0)
    spend = retained * value * rng.gamma(4.0, 0.25, n)

    width = len(str(n - 1))
    return pd.DataFrame(
        {
            "customer_id": np.char.add("C", np.char.zfill(np.arange(n).astype(str), max(width, 6))),
            "segment": np.asarray(names, dtype=object)[seg],
            "tenure_days": np.round(tenure, 1),
            "recency_days": np.round(recency, 1),
            "n_purchases": n_purchases.astype(np.int64),
            "avg_order_value": np.round(aov, 2),
            "churn_probability": 1.0 - p0,
            "value_if_retained": np.round(value, 2),
            "treatment": treatment,
            "retained": retained,
            "spend": np.round(spend, 2),
            "true_uplift": p1 - p0,
            "p_retain_control": p0,
            "p_retain_treated": p1,
        }
    )
