"""Point-in-time customer features: lifetimes-style RFM summaries and snapshot features.

Everything here is vectorised with NumPy over integer customer codes (no Python loop per
customer). ``rfm_summary`` sorts one packed (customer, period) key, 32 bits wide when it fits,
and everything after that sort is a sequential pass; on 10M rows and 1M customers
(``benchmarks/bench_rfm.py``) that is over 20x faster than
``lifetimes.utils.summary_data_from_transaction_data`` for integer ids, fixed-width string ids
("C0001234") and string ids already in order (``churnml.io``'s layout), which all become codes
without hashing. String ids of varying width in a large raw, time-ordered log (at least
``churnml._strids.MIN_ROWS`` rows) go to a compiled path instead (``churnml._strids``, numba,
all cores): hashed straight from the Arrow buffers and summarised bucket by bucket; smaller
logs are hashed by Arrow. See ``benchmarks/bench_rfm.py``,
``benchmarks/results/rfm_summary.md`` and the README."""

from __future__ import annotations

import numpy as np
import pandas as pd

from churnml.config import FeaturesConfig
from churnml.errors import DataError
from churnml.io import AMOUNT, CUSTOMER_ID, IS_RETURN, TIMESTAMP, cancelled_before

__all__ = ["AGGREGATE_COLUMNS", "calibration_holdout", "features_from_aggregates", "rfm_summary", "snapshot_features"]

_NS = {"D": 86_400 * 10**9, "W": 7 * 86_400 * 10**9, "h": 3_600 * 10**9, "min": 60 * 10**9, "s": 10**9}
_FREQ_ALIASES = {"D": "D", "W": "W", "W-SUN": "W", "h": "h", "H": "h", "min": "min", "T": "min", "s": "s", "S": "s"}
# Pandas' weekly periods ("W" = "W-SUN") run Monday..Sunday; 1970-01-01 was a Thursday,
# so the Monday that starts epoch week 0 is 3 days before the epoch.
_WEEK_SHIFT_NS = 3 * 86_400 * 10**9


def _freq(freq: str) -> str:
    try:
        return _FREQ_ALIASES[freq]
    except KeyError:
        raise DataError(f"freq={freq!r} is not supported; use one of {sorted(_FREQ_ALIASES)}") from None


def _naive_datetimes(values) -> np.ndarray:
    """Timestamps as a naive ``datetime64`` array in the column's own unit (wall time for
    tz-aware input; other values parsed with ``pd.to_datetime``)."""
    s = values if isinstance(values, pd.Series) else pd.Series(values)
    if isinstance(s.dtype, pd.DatetimeTZDtype):
        s = s.dt.tz_localize(None)
    if not pd.api.types.is_datetime64_dtype(s.dtype):
        s = pd.to_datetime(s)
    return s.to_numpy()


def _as_ns(values) -> np.ndarray:
    """Timestamps as int64 nanoseconds since the epoch (wall time for tz-aware input)."""
    arr = _naive_datetimes(values)
    if arr.dtype != np.dtype("datetime64[ns]"):
        arr = arr.astype("datetime64[ns]")
    return arr.view("int64")


def _to_period(ns: np.ndarray | int, freq: str) -> np.ndarray:
    """Integer period index of each timestamp (floor), as pandas' ``to_period(freq)``."""
    if freq == "W":
        return (ns + _WEEK_SHIFT_NS) // _NS["W"]
    return ns // _NS[freq]


_UNIT_NS = {"ns": 1, "us": 10**3, "ms": 10**6, "s": 10**9}


def _periods(values, freq: str) -> np.ndarray:
    """Integer period index of each timestamp, as ``_to_period(_as_ns(values), freq)`` but
    computed in the column's own unit (``datetime64[us]`` is divided by a day in microseconds),
    which skips the copy to nanoseconds."""
    arr = _naive_datetimes(values)
    unit = np.datetime_data(arr.dtype)[0]
    if unit not in _UNIT_NS:
        return _to_period(_as_ns(arr), freq)
    t = arr.view("int64")
    u = _UNIT_NS[unit]
    if freq == "W":
        return (t + _WEEK_SHIFT_NS // u) // (_NS["W"] // u)
    return t // (_NS[freq] // u)


def _encode(ids, *, compiled_strings: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Integer codes for customer ids and the label of each code, labels sorted ascending.

    Integer ids whose range is no larger than the number of rows are used directly as codes
    (offset by the minimum), which skips hashing; codes that never occur are filtered later.
    With ``compiled_strings``, string ids that would need hashing on a log of at least
    ``churnml._strids.MIN_ROWS`` rows are returned as ``(None, arrow_strings)`` for the
    compiled summary (``churnml._strids``) instead.
    """
    dtype = getattr(ids, "dtype", None)
    if pd.api.types.is_string_dtype(dtype) and isinstance(ids, (pd.Series, pd.Index)) and len(ids):
        strings = _arrow_strings(ids)
        if strings is not None:
            done = _encode_fixed_width(strings)
            if done is None:
                done = _encode_sorted_strings(strings, ids)
            if done is not None:
                return done
            if compiled_strings and _compiled_strings_apply(len(ids)):
                return None, strings
        arr = None  # strings: factorized as stored below, never converted to Python objects
    else:
        arr = ids.to_numpy() if isinstance(ids, (pd.Series, pd.Index)) else np.asarray(ids)
    if arr is not None and arr.dtype.kind in "iu" and len(arr):
        lo, hi = int(arr.min()), int(arr.max())
        if hi - lo + 1 <= max(len(arr), 1024):
            if lo == 0 and arr.dtype == np.int64:  # already codes: no copy
                codes = arr.view()
                codes.flags.writeable = False
            else:
                codes = arr.astype(np.int64, copy=True)
                codes -= lo
            return codes, np.arange(lo, hi + 1, dtype=arr.dtype)
    if isinstance(getattr(ids, "dtype", None), pd.CategoricalDtype):
        # already encoded (e.g. a dictionary-encoded Parquet column): reuse the codes
        cat = ids.array if isinstance(ids, (pd.Series, pd.Index)) else ids
        if (cat.codes < 0).any():
            raise DataError("customer id column has missing values")
        # customers come out in category order, as pandas sorts a categorical index
        return np.asarray(cat.codes, dtype=np.int64), np.asarray(cat.categories)
    # factorize the column as it is stored: Arrow-backed strings hash in Arrow without first
    # becoming Python objects (about 2x faster on 10M rows than factorizing an object array)
    values = ids.array if isinstance(ids, (pd.Series, pd.Index)) else arr
    codes, uniques = pd.factorize(values, sort=False)
    if (codes < 0).any():
        raise DataError("customer id column has missing values")
    if isinstance(uniques, np.ndarray):
        order = np.argsort(uniques, kind="stable")
        labels = uniques[order]
    else:  # an extension array (Arrow strings): sort and keep it as it is
        order = np.asarray(uniques.argsort(kind="stable"))
        labels = uniques.take(order)
    remap = np.empty(len(order), dtype=np.int64)
    remap[order] = np.arange(len(order))
    return remap[codes.astype(np.int64, copy=False)], labels


def _compiled_strings_apply(n_rows: int) -> bool:
    from churnml import _strids

    return n_rows >= _strids.MIN_ROWS and _strids.available()


def _arrow_strings(ids):
    """The pyarrow string array (or chunked array) behind a string column, without copying an
    Arrow-backed column; None for anything else or when there are nulls."""
    import pyarrow as pa

    try:
        arr = pa.array(ids.array)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError):
        return None
    if not (pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)) or arr.null_count:
        return None
    return arr


def _string_chunks(arr) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per non-empty chunk of an Arrow string array: the offsets (``m + 1``) and the data bytes,
    as NumPy views of the Arrow buffers (no copy)."""
    import pyarrow as pa

    out = []
    for c in arr.chunks if isinstance(arr, pa.ChunkedArray) else [arr]:
        if len(c):
            ow = np.dtype(np.int64 if pa.types.is_large_string(c.type) else np.int32)
            _, ob, db = c.buffers()
            off = np.frombuffer(ob, dtype=ow, count=len(c) + 1, offset=c.offset * ow.itemsize)
            out.append((off, np.frombuffer(db, np.uint8) if db is not None else np.zeros(0, np.uint8)))
    return out


def _encode_sorted_strings(arr, ids) -> tuple[np.ndarray, object] | None:
    """Codes for string ids that are already in ascending order, as ``churnml.io`` returns
    transactions (sorted by customer and time): each run of equal ids is one code, so there is
    nothing to hash. Two vectorised comparisons of neighbouring rows (about 0.2 s on 10M rows);
    None as soon as two neighbours are out of order (a sample of the first rows is checked
    first, so an unsorted log costs next to nothing)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    n = len(arr)
    head = arr.slice(0, min(n, 4096))
    if n > 1 and pc.any(pc.less(head.slice(1), head.slice(0, len(head) - 1))).as_py():
        return None
    new = np.ones(n, dtype=bool)
    if n > 1:
        if pc.any(pc.less(arr.slice(1), arr.slice(0, n - 1))).as_py():
            return None
        ne = pc.not_equal(arr.slice(1), arr.slice(0, n - 1))
        chunks = ne.chunks if isinstance(ne, pa.ChunkedArray) else [ne]
        pos = 1
        for c in chunks:
            new[pos : pos + len(c)] = c.to_numpy(zero_copy_only=False)
            pos += len(c)
    codes = np.cumsum(new, dtype=np.int64)
    codes -= 1
    return codes, ids.array.take(np.flatnonzero(new))


def _column_min_max(mat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-column min and max of a C-contiguous (m, w) uint8 matrix; reducing 64 rows at a
    time side by side keeps numpy's inner loop long (``mat.min(axis=0)`` runs 8 bytes at a time)."""
    m, w = mat.shape
    head = m // 64 * 64
    lo = np.full(w, 255, np.uint8)
    hi = np.zeros(w, np.uint8)
    if head:
        blk = mat[:head].reshape(-1, 64 * w)
        lo = np.minimum(lo, blk.min(axis=0).reshape(64, w).min(axis=0))
        hi = np.maximum(hi, blk.max(axis=0).reshape(64, w).max(axis=0))
    if head < m:
        lo = np.minimum(lo, mat[head:].min(axis=0))
        hi = np.maximum(hi, mat[head:].max(axis=0))
    return lo, hi


def _encode_fixed_width(arr) -> tuple[np.ndarray, object] | None:
    """Codes for fixed-width ASCII string ids ("C0001234", "0001234") without hashing.

    Each character position is a digit in its own base (max - min + 1 over the column), so the
    number keeps the strings' order; when its range is at most the number of rows it is the
    code (like the integer fast path) and labels are rebuilt from the codes. Works on the Arrow
    buffers chunk by chunk (no copy of the strings). Returns None for anything else (nulls,
    varying widths, non-ASCII, too wide a range).
    """
    import math

    import pyarrow as pa

    chunks = _string_chunks(arr)
    if not chunks:
        return None
    width = int(chunks[0][0][1] - chunks[0][0][0])
    if width == 0 or width > 32:
        return None
    mats = []
    for off, data in chunks:
        m = len(off) - 1
        if int(off[-1]) - int(off[0]) != m * width or not (np.diff(off) == width).all():
            return None
        mats.append(data[int(off[0]) : int(off[0]) + m * width].reshape(m, width))
    bounds = [_column_min_max(mat) for mat in mats]
    lo = np.min([b[0] for b in bounds], axis=0).astype(np.int64)
    hi = np.max([b[1] for b in bounds], axis=0).astype(np.int64)
    n = sum(len(mat) for mat in mats)
    if int(hi.max()) >= 128:
        return None
    radix = hi - lo + 1
    n_codes = math.prod(int(r) for r in radix)
    if n_codes > max(n, 1024):
        return None
    varying = [int(j) for j in np.flatnonzero(radix > 1)]
    offset = 0  # the Horner value of the minimum string, subtracted once at the end
    for j in varying:
        offset = offset * int(radix[j]) + int(lo[j])
    codes = np.zeros(n, np.int64)
    if varying:
        # Horner over the varying positions, 32k rows at a time so the accumulator stays in
        # cache (int32 when it fits: half the memory traffic of int64)
        adt = np.int32 if n_codes + offset < 2**31 else np.int64
        block = 32768
        acc = np.empty(block, adt)
        rad = [adt(radix[j]) for j in varying]
        pos = 0
        for mat in mats:
            for i in range(0, len(mat), block):
                sub = mat[i : i + block]
                a = acc[: len(sub)]
                a[:] = sub[:, varying[0]]
                for j, r in zip(varying[1:], rad[1:]):
                    a *= r
                    a += sub[:, j]
                a -= adt(offset)
                codes[pos : pos + len(sub)] = a
                pos += len(sub)
    # label of every code: digit j runs over lo[j]..hi[j] along its own axis (mixed radix)
    out = np.empty((n_codes, width), np.uint8)
    grid = out.reshape([int(r) for r in radix] + [width])
    for j in range(width):
        shape = [1] * width
        shape[j] = int(radix[j])
        grid[..., j] = (lo[j] + np.arange(radix[j])).astype(np.uint8).reshape(shape)
    labels = pa.FixedSizeBinaryArray.from_buffers(pa.binary(width), n_codes, [None, pa.py_buffer(out)])
    return codes, pd.array(labels.cast(pa.binary()).cast(pa.string()), dtype="string[pyarrow]")


class _PeriodStats:
    """Per present customer: ``code``, ``first`` and ``last`` period, ``n_periods`` (distinct
    periods with a purchase) and, when amounts were given, ``repeat_spend`` (the amounts of the
    rows after the customer's first period); and the distinct (customer code, period) pairs
    themselves, sorted (``key_code``, ``key_period``, built on first use)."""

    def __init__(self, key, new, starts, bits, pmin, code, first, last, n_periods, repeat_spend=None):
        self._key, self._new, self._bits, self._pmin = key, new, bits, pmin
        self.code, self.first, self.last, self.n_periods = code, first, last, n_periods
        self.repeat_spend = repeat_spend
        self._pairs = None

    def _distinct(self):
        if self._pairs is None:
            uk = self._key[self._new]
            kc = (uk >> uk.dtype.type(self._bits)).astype(np.int64)
            kp = (uk & uk.dtype.type((1 << self._bits) - 1)).astype(np.int64) + self._pmin
            self._pairs = (kc, kp)
        return self._pairs

    @property
    def key_code(self) -> np.ndarray:
        return self._distinct()[0]

    @property
    def key_period(self) -> np.ndarray:
        return self._distinct()[1]


def _period_stats(codes: np.ndarray, periods: np.ndarray, n_codes: int, values: np.ndarray | None = None) -> _PeriodStats:
    """First/last/number of distinct periods per customer code, by one sort of packed keys.

    ``(code << bits) | (period - min period)`` is packed into 32 bits when it fits (1M customers
    x 3 years of days does), else 64: sorting 10M uint32 takes a third of the time of int64.
    After the sort every step is a sequential pass. With ``values`` (amounts per row), also the
    sum per customer of the rows after its first period (one gather and one ``bincount``).
    """
    n = len(codes)
    pmin, pmax = int(periods.min()), int(periods.max())
    bits = (pmax - pmin).bit_length()
    cbits = max(int(n_codes) - 1, 0).bit_length()
    if bits + cbits > 64:
        raise ValueError("too many customers x periods to pack into one key; use a coarser freq")
    kdt = np.uint32 if bits + cbits <= 32 else np.uint64
    rel = np.empty(n, kdt)
    np.subtract(periods, pmin, out=rel, casting="unsafe")
    key = np.empty(n, kdt)
    np.left_shift(codes, bits, out=key, casting="unsafe")
    key |= rel
    key.sort()
    new = np.empty(n, dtype=bool)  # first row of each distinct (code, period)
    new[0] = True
    np.not_equal(key[1:], key[:-1], out=new[1:])
    cc = key >> kdt(bits)
    start = np.empty(n, dtype=bool)
    start[0] = True
    np.not_equal(cc[1:], cc[:-1], out=start[1:])
    starts = np.flatnonzero(start)
    del start
    ends = np.empty_like(starts)
    ends[:-1] = starts[1:] - 1
    ends[-1] = n - 1
    code = cc[starts].astype(np.intp)
    del cc
    mask = kdt((1 << bits) - 1)
    first_rel = key[starts] & mask
    last = (key[ends] & mask).astype(np.int64) + pmin
    n_periods = np.add.reduceat(new, starts, dtype=np.int64)
    repeat_spend = None
    if values is not None:
        first_of_code = np.zeros(int(n_codes), dtype=kdt)
        first_of_code[code] = first_rel
        later = rel != first_of_code[codes]
        del rel
        repeat_spend = np.bincount(codes, weights=np.where(later, values, 0.0), minlength=int(n_codes))[code]
    first = first_rel.astype(np.int64) + pmin
    return _PeriodStats(key, new, starts, bits, pmin, code, first, last, n_periods, repeat_spend)


def rfm_summary(
    transactions: pd.DataFrame,
    *,
    customer_id: str = CUSTOMER_ID,
    timestamp: str = TIMESTAMP,
    amount: str | None = None,
    observation_end=None,
    freq: str = "D",
    freq_multiplier: float = 1,
) -> pd.DataFrame:
    """Frequency, recency, T (and monetary value) per customer, with lifetimes' semantics.

    Purchases are counted once per ``freq`` period (days ``"D"``, weeks ``"W"``, hours ``"h"``);
    ``frequency`` is the number of *repeat* periods with a purchase, ``recency`` the time from
    the first to the last purchase period, ``T`` from the first purchase period to the period
    of ``observation_end`` (default: the last timestamp), both in periods divided by
    ``freq_multiplier`` (``freq="D", freq_multiplier=7`` gives weeks from day-level data, the
    BG/NBD paper's convention). ``monetary_value`` is the mean spend per repeat period, 0 for
    customers without repeats. Transactions in periods after ``observation_end``'s are ignored.
    Equal to ``lifetimes.utils.summary_data_from_transaction_data`` row by row, but vectorised.
    Customer ids that are integers of compact range, fixed-width ASCII strings, strings in
    ascending order or categoricals become codes without hashing; other string ids are hashed
    (Arrow), or, from ``churnml._strids.MIN_ROWS`` rows on, summarised by compiled code that
    hashes them from the Arrow buffers on all cores (same numbers, same order).

    Returns a float DataFrame indexed by customer id (sorted), columns
    ``frequency, recency, T[, monetary_value]``.
    """
    f = _freq(freq)
    for col in [customer_id, timestamp] + ([amount] if amount else []):
        if col not in transactions.columns:
            raise DataError(
                f"rfm_summary: missing column {col!r}; the data has {list(transactions.columns)}"
            )
    columns = ["frequency", "recency", "T"] + (["monetary_value"] if amount else [])
    if len(transactions) == 0:
        return pd.DataFrame(columns=columns, dtype=float, index=pd.Index([], name=customer_id))
    periods = _periods(transactions[timestamp], f)
    end_period = (
        int(periods.max()) if observation_end is None
        else int(_to_period(_as_ns(pd.Series([pd.Timestamp(observation_end)]))[0], f))
    )
    codes, labels = _encode(transactions[customer_id], compiled_strings=True)
    values = transactions[amount].to_numpy(dtype=np.float64) if amount else None
    if codes is None:  # string ids in a large raw log: hashed and summarised by compiled code
        from churnml import _strids

        if _strids.supports(len(periods), periods, end_period):
            return _rfm_from_strings(labels, transactions[customer_id], periods, end_period, values, freq_multiplier, columns)
        codes, labels = _encode(transactions[customer_id])  # e.g. seconds over 70 years: Arrow's hash table
    if periods.max() > end_period:
        keep = periods <= end_period
        codes, periods = codes[keep], periods[keep]
        values = values[keep] if values is not None else None
        if len(codes) == 0:
            return pd.DataFrame(columns=columns, dtype=float, index=pd.Index([], name=customer_id))
    stats = _period_stats(codes, periods, len(labels), values)
    index = pd.Index(labels[stats.code], name=customer_id)
    return _rfm_frame(index, stats.first, stats.last, stats.n_periods, stats.repeat_spend, end_period, freq_multiplier, columns)


def _rfm_from_strings(strings, ids: pd.Series, periods, end_period: int, values, freq_multiplier, columns) -> pd.DataFrame:
    """``rfm_summary``'s table from ``churnml._strids.summarise`` (same numbers, same order)."""
    from churnml import _strids

    if not (periods <= end_period).any():
        return pd.DataFrame(columns=columns, dtype=float, index=pd.Index([], name=ids.name))
    labels, *stats = _strids.summarise(strings, periods, values, end_period)
    return _rfm_frame(_labels_index(labels, ids), *stats, end_period, freq_multiplier, columns)


def _labels_index(labels, ids: pd.Series) -> pd.Index:
    """A pyarrow string array of customer ids as an Index in the id column's own dtype."""
    if isinstance(ids.dtype, pd.StringDtype):
        values = pd.array(labels, dtype=ids.dtype)
    elif isinstance(ids.dtype, pd.ArrowDtype):  # e.g. string[pyarrow] with int32 offsets
        values = pd.array(labels.cast(ids.dtype.pyarrow_dtype), dtype=ids.dtype)
    else:  # object column of Python strings: object labels, as pd.factorize gives
        values = labels.to_numpy(zero_copy_only=False)
    return pd.Index(values, name=ids.name)


def _rfm_frame(index, first, last, n_periods, repeat_spend, end_period: int, freq_multiplier, columns) -> pd.DataFrame:
    """The ``rfm_summary`` table from per-customer first/last period, distinct periods and
    spend after the first period (None: no amount column), in ``index``'s order."""
    frequency = (n_periods - 1).astype(np.float64)
    out = {
        "frequency": frequency,
        "recency": (last - first) / freq_multiplier,
        "T": (end_period - first) / freq_multiplier,
    }
    if repeat_spend is not None:
        with np.errstate(invalid="ignore", divide="ignore"):
            out["monetary_value"] = np.where(frequency > 0, repeat_spend / np.maximum(frequency, 1), 0.0)
    return pd.DataFrame(out, index=index)[columns].astype(float)


def calibration_holdout(
    transactions: pd.DataFrame,
    *,
    calibration_end,
    observation_end=None,
    customer_id: str = CUSTOMER_ID,
    timestamp: str = TIMESTAMP,
    amount: str | None = None,
    freq: str = "D",
    freq_multiplier: float = 1,
) -> pd.DataFrame:
    """Calibration summary (through ``calibration_end``) and holdout counts per customer.

    Follows ``lifetimes.utils.calibration_and_holdout_data``: calibration uses transactions
    with timestamp <= ``calibration_end`` (lifetimes semantics, suffix ``_cal``); the holdout
    counts repeat purchase periods in (``calibration_end``, ``observation_end``] as
    ``frequency_holdout`` and its length in periods / ``freq_multiplier`` as
    ``duration_holdout``. Only customers seen in calibration are returned. Unlike lifetimes,
    ``monetary_value_holdout`` is the mean spend per holdout *period* (the same definition as
    the calibration's ``monetary_value``), 0 without holdout purchases.
    """
    f = _freq(freq)
    cal_end = pd.Timestamp(calibration_end)
    ts = transactions[timestamp]
    obs_end = pd.Timestamp(observation_end) if observation_end is not None else ts.max()
    if obs_end <= cal_end:
        raise DataError(f"observation_end {obs_end} must be after calibration_end {cal_end}")
    cal_mask = (ts <= cal_end).to_numpy()
    if not cal_mask.any():
        raise DataError(f"no transaction on or before calibration_end {cal_end}")
    cal = rfm_summary(
        transactions.loc[cal_mask], customer_id=customer_id, timestamp=timestamp, amount=amount,
        observation_end=cal_end, freq=freq, freq_multiplier=freq_multiplier,
    )
    cal.columns = [f"{c}_cal" for c in cal.columns]
    hold_mask = ((ts > cal_end) & (ts <= obs_end)).to_numpy()
    hold = transactions.loc[hold_mask]
    out = cal.copy()
    out["frequency_holdout"] = 0.0
    if amount:
        out["monetary_value_holdout"] = 0.0
    if len(hold):
        per = pd.DataFrame(
            {
                "c": hold[customer_id].to_numpy(),
                "p": _to_period(_as_ns(hold[timestamp]), f),
                "a": hold[amount].to_numpy(dtype=float) if amount else 0.0,
            }
        ).groupby(["c", "p"], sort=False)["a"].sum()
        by_customer = per.groupby(level="c")
        counts = by_customer.size()
        idx = out.index.intersection(counts.index)
        out.loc[idx, "frequency_holdout"] = counts.loc[idx].astype(float).to_numpy()
        if amount:
            out.loc[idx, "monetary_value_holdout"] = by_customer.mean().loc[idx].to_numpy()
    delta = int(_to_period(_as_ns(pd.Series([obs_end]))[0], f)) - int(_to_period(_as_ns(pd.Series([cal_end]))[0], f))
    out["duration_holdout"] = delta / freq_multiplier
    return out


# --------------------------------------------------------------------------- snapshot


_DAY_NS = _NS["D"]


def _group_sum(codes: np.ndarray, values: np.ndarray | None, n: int) -> np.ndarray:
    return np.bincount(codes, weights=values, minlength=n)[:n].astype(np.float64)


def snapshot_features(
    transactions: pd.DataFrame,
    cutoff,
    *,
    events: pd.DataFrame | None = None,
    customers: pd.DataFrame | None = None,
    config: FeaturesConfig | None = None,
) -> pd.DataFrame:
    """Features of every customer with a purchase strictly before ``cutoff``, from that data only.

    ``transactions`` follows the :mod:`churnml.io` contract (``customer_id, timestamp, amount``
    and optionally ``is_return`` and ``cancelled_at``). All durations are in days (fractional)
    measured back from ``cutoff``; amounts are in the log's currency; windows are trailing
    ``[cutoff - w, cutoff)``.

    Point in time: only rows strictly before ``cutoff`` count, minus the rows cancelled before
    it (``cancelled_at < cutoff``, :func:`churnml.io.active_rows`): such a purchase never
    happened, so it is in no count, sum, day or gap. A purchase cancelled at or after the cutoff
    counts in full (nobody could know yet). Unmatched returns (partial returns) net: every spend
    feature derives from the same netted amounts.

    Columns: ``recency_days`` (since the last purchase), ``tenure_days`` (since the first),
    ``n_purchases`` (orders), ``frequency``/``recency``/``T``/``monetary_value`` (lifetimes
    semantics, days; ``monetary_value``, the Gamma-Gamma input, is the mean spend per repeat
    purchase day scaled by the customer's net share ``clip(net_spend / total_spend, 0, 1)``:
    returns allocated proportionally over the purchases), ``total_spend`` (gross purchases,
    returns not deducted), ``net_spend`` (purchases less returns), ``avg_order_value``
    (``max(net_spend, 0) / n_purchases``), ``n_purchases_{w}d`` and ``spend_{w}d`` (net) per
    window, ``ipt_mean_days`` and ``ipt_std_days`` (gaps between distinct purchase days), ``recency_ratio``
    (recency / mean gap), ``recency_share`` (recency / tenure), ``purchases_per_year`` and
    ``spend_per_year`` (per tenure), ``purchase_trend`` and ``spend_trend`` (last vs previous
    ``trend_window_days``, in [-1, 1]), ``n_returns``, ``return_amount``; from ``events``:
    ``days_since_last_{type}``, ``n_{type}_{w}d``, ``n_{type}_total`` and ``last_{type}`` for
    valued types (NPS, CSAT); from ``customers``: its columns joined as they are.
    """
    cfg = config or FeaturesConfig()
    cutoff = pd.Timestamp(cutoff)
    cut_ns = int(_as_ns(pd.Series([cutoff]))[0])
    ns_all = _as_ns(transactions[TIMESTAMP])
    before = ns_all < cut_ns
    cancelled = cancelled_before(transactions, cutoff)  # never happened, as known at the cutoff
    if cancelled.any():
        before &= ~cancelled
    tx = transactions.loc[before]
    ns = ns_all[before]
    if len(tx) == 0:
        raise DataError(f"no transaction before the cutoff {cutoff}")
    is_ret = tx[IS_RETURN].to_numpy(dtype=bool) if IS_RETURN in tx.columns else np.zeros(len(tx), dtype=bool)
    amt = tx[AMOUNT].to_numpy(dtype=np.float64) if AMOUNT in tx.columns else np.zeros(len(tx))
    pur = ~is_ret
    if not pur.any():
        raise DataError(f"no purchase before the cutoff {cutoff}")
    codes, labels = _encode(tx[CUSTOMER_ID])
    n = len(labels)
    pc, pns, pamt = codes[pur], ns[pur], amt[pur]

    stats = _period_stats(pc, pns // _DAY_NS, n)
    present = stats.code
    first_ns = np.full(n, np.iinfo(np.int64).max)
    last_ns = np.full(n, np.iinfo(np.int64).min)
    np.minimum.at(first_ns, pc, pns)
    np.maximum.at(last_ns, pc, pns)
    n_orders = _group_sum(pc, None, n)
    total = _group_sum(pc, pamt, n)
    first_of_code = np.full(n, np.iinfo(np.int64).min)
    first_of_code[present] = stats.first
    in_first = (pns // _DAY_NS) == first_of_code[pc]

    # gaps between distinct purchase days, per customer (the sorted distinct (customer, day)
    # pairs come from _period_stats; np.unique would hash them again, 10x slower on 7M rows)
    kc, kd = stats.key_code, stats.key_period
    same = kc[1:] == kc[:-1]
    gaps = np.diff(kd)[same].astype(np.float64)
    gc = kc[1:][same]

    tw = cfg.trend_window_days * _DAY_NS
    recent = ns >= cut_ns - tw
    prior = (ns >= cut_ns - 2 * tw) & ~recent
    agg: dict[str, np.ndarray] = {
        "first_ns": first_ns[present],
        "last_ns": last_ns[present],
        "n_orders": n_orders[present],
        "total": total[present],
        "n_days": stats.n_periods.astype(np.float64),
        "first_day": stats.first,
        "last_day": stats.last,
        "first_total": _group_sum(pc[in_first], pamt[in_first], n)[present],
        "net": _group_sum(codes, amt, n)[present],
        "g_n": _group_sum(gc, None, n)[present],
        "g_sum": _group_sum(gc, gaps, n)[present],
        "g_sq": _group_sum(gc, gaps * gaps, n)[present],
        "cnt_recent": _group_sum(codes[recent & pur], None, n)[present],
        "cnt_prior": _group_sum(codes[prior & pur], None, n)[present],
        "sp_recent": _group_sum(codes[recent], amt[recent], n)[present],
        "sp_prior": _group_sum(codes[prior], amt[prior], n)[present],
        "n_returns": _group_sum(codes[is_ret], None, n)[present],
        "return_sum": _group_sum(codes[is_ret], amt[is_ret], n)[present],
    }
    for w in cfg.windows_days:
        in_w = pns >= cut_ns - w * _DAY_NS
        agg[f"n_purchases_{w}d"] = _group_sum(pc[in_w], None, n)[present]
        in_w_all = ns >= cut_ns - w * _DAY_NS
        agg[f"spend_{w}d"] = _group_sum(codes[in_w_all], amt[in_w_all], n)[present]
    out = features_from_aggregates(agg, cut_ns, cfg)

    index = pd.Index(labels[present], name=CUSTOMER_ID)
    if index.dtype != object and not pd.api.types.is_string_dtype(index.dtype):
        index = index.astype(str)
    feats = pd.DataFrame(out, index=index)
    if events is not None and cfg.event_types:
        feats = feats.join(_event_features(events, cut_ns, feats.index, cfg))
    if customers is not None and len(customers.columns):
        feats = feats.join(customers, how="left")
    return feats


AGGREGATE_COLUMNS = (
    "first_ns", "last_ns", "n_orders", "total", "n_days", "first_day", "last_day", "first_total", "net",
    "g_n", "g_sum", "g_sq", "cnt_recent", "cnt_prior", "sp_recent", "sp_prior", "n_returns", "return_sum",
)
"""Per-customer sufficient statistics of the snapshot features (plus ``n_purchases_{w}d`` and
``spend_{w}d`` per window). Times in ns since the epoch, days as integer day numbers, amounts in
currency; any engine that computes these (pandas here, Spark in :mod:`churnml.spark`) gets the
same features from :func:`features_from_aggregates`."""


def features_from_aggregates(agg, cut_ns: int, cfg: FeaturesConfig) -> dict[str, np.ndarray]:
    """The snapshot features of :func:`snapshot_features` from per-customer aggregates.

    The aggregates are of the rows before the cutoff that are not cancelled before it; spend
    features are netted here from ``total`` (gross purchases) and ``net`` (purchases plus the
    negative return amounts), so every engine nets the same way."""
    a = {k: np.asarray(v) for k, v in (agg.items() if isinstance(agg, dict) else agg.items())}
    cut_day = cut_ns // _DAY_NS
    freq_d = a["n_days"].astype(np.float64) - 1
    n_orders = a["n_orders"].astype(np.float64)
    total = a["total"].astype(np.float64)
    out: dict[str, np.ndarray] = {}
    out["recency_days"] = (cut_ns - a["last_ns"].astype(np.int64)) / _DAY_NS
    out["tenure_days"] = (cut_ns - a["first_ns"].astype(np.int64)) / _DAY_NS
    out["n_purchases"] = n_orders
    out["frequency"] = freq_d
    out["recency"] = (a["last_day"] - a["first_day"]).astype(np.float64)
    out["T"] = (cut_day - a["first_day"]).astype(np.float64)
    net = a["net"].astype(np.float64)
    # returns (unmatched, i.e. partial) allocated proportionally over the customer's purchases:
    # every spend feature derives from the same netted amounts
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        net_share = np.where(total > 0, np.clip(net / np.where(total > 0, total, 1.0), 0.0, 1.0), 1.0)
    repeat_mean = np.where(freq_d > 0, (total - a["first_total"]) / np.maximum(freq_d, 1), 0.0)
    out["monetary_value"] = repeat_mean * net_share
    out["total_spend"] = total
    out["net_spend"] = net
    out["avg_order_value"] = np.maximum(net, 0.0) / n_orders
    for w in cfg.windows_days:
        out[f"n_purchases_{w}d"] = a[f"n_purchases_{w}d"].astype(np.float64)
        out[f"spend_{w}d"] = a[f"spend_{w}d"].astype(np.float64)
    g_n, g_sum, g_sq = (a[k].astype(np.float64) for k in ("g_n", "g_sum", "g_sq"))
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(g_n > 0, g_sum / np.maximum(g_n, 1), np.nan)
        var = np.where(g_n > 1, (g_sq - g_n * mean * mean) / np.maximum(g_n - 1, 1), np.nan)
        out["ipt_mean_days"] = mean
        out["ipt_std_days"] = np.sqrt(np.maximum(var, 0))
        out["recency_ratio"] = out["recency_days"] / out["ipt_mean_days"]
    # stationary versions of quantities that grow with time (comparable across cutoffs)
    tenure = np.maximum(out["tenure_days"], 1.0)
    out["recency_share"] = out["recency_days"] / tenure
    out["purchases_per_year"] = out["n_purchases"] / tenure * 365.25
    out["spend_per_year"] = out["net_spend"] / tenure * 365.25
    out["purchase_trend"] = _trend(a["cnt_recent"].astype(np.float64), a["cnt_prior"].astype(np.float64))
    out["spend_trend"] = _trend(a["sp_recent"].astype(np.float64), a["sp_prior"].astype(np.float64))
    out["n_returns"] = a["n_returns"].astype(np.float64)
    out["return_amount"] = -a["return_sum"].astype(np.float64)
    return out


def _trend(recent: np.ndarray, prior: np.ndarray) -> np.ndarray:
    """(recent - prior) / (|recent| + |prior|), 0 when both are 0: a bounded change in [-1, 1]."""
    denom = np.abs(recent) + np.abs(prior)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denom > 0, (recent - prior) / np.where(denom > 0, denom, 1), 0.0)


def _event_features(events: pd.DataFrame, cut_ns: int, index: pd.Index, cfg: FeaturesConfig) -> pd.DataFrame:
    ev_ns = _as_ns(events[TIMESTAMP])
    before = ev_ns < cut_ns
    ev = events.loc[before]
    ev_ns = ev_ns[before]
    pos = index.get_indexer(ev[CUSTOMER_ID].astype(str))
    known = pos >= 0
    ev, ev_ns, pos = ev.loc[known], ev_ns[known], pos[known]
    types = ev["type"].to_numpy()
    values = ev["value"].to_numpy(dtype=np.float64) if "value" in ev.columns else np.full(len(ev), np.nan)
    n = len(index)
    w = cfg.event_count_window_days
    out: dict[str, np.ndarray] = {}
    for t in cfg.event_types:
        m = types == t
        c, tns = pos[m], ev_ns[m]
        last = np.full(n, np.iinfo(np.int64).min)
        np.maximum.at(last, c, tns)
        has = last > np.iinfo(np.int64).min
        out[f"days_since_last_{t}"] = np.where(has, (cut_ns - last) / _DAY_NS, np.nan)
        in_w = tns >= cut_ns - w * _DAY_NS
        out[f"n_{t}_{w}d"] = np.bincount(c[in_w], minlength=n).astype(np.float64)
        out[f"n_{t}_total"] = np.bincount(c, minlength=n).astype(np.float64)
        if t in cfg.event_value_types:
            v = values[m]
            ok = ~np.isnan(v)
            # the latest valued answer per customer: sort by (customer, time), take each run's last
            vc, vt, vv = c[ok], tns[ok], v[ok]
            last_val = np.full(n, np.nan)
            if len(vc):
                order = np.lexsort((vt, vc))
                vc, vv = vc[order], vv[order]
                run_end = np.r_[vc[1:] != vc[:-1], True]
                last_val[vc[run_end]] = vv[run_end]
            out[f"last_{t}"] = last_val
    return pd.DataFrame(out, index=index)
