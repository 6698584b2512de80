"""Reading and validating transaction logs, customer attributes and customer events.

The output of this module is the data contract every other module relies on:

``transactions``
    one row per order (purchase event) with columns ``customer_id`` (str), ``timestamp``
    (datetime64, naive UTC), ``amount`` (float, currency of the file, net of returns inside the
    order), ``is_return`` (bool, an order whose net amount is negative), ``n_lines`` and
    ``cancelled_at`` (datetime64, NaT unless the order is one side of a matched cancellation,
    see :func:`prepare_transactions`); plus ``order_id`` when the file has one. Sorted by
    customer and time. Point-in-time readers keep the rows of :func:`active_rows` (a row
    cancelled before the cutoff never happened) and :func:`purchases`.
``customers``
    one row per customer, indexed by ``customer_id``, static attributes as given.
``events``
    ``customer_id, timestamp, type, value``: service signals (tickets, complaints, NPS, CSAT).

Bad input raises :class:`~churnml.errors.DataError` naming the file, the column and the
first offending rows with their line numbers.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from churnml.config import ColumnsConfig, Config, DataConfig, EventColumnsConfig
from churnml.datasets import resolve_path
from churnml.errors import DataError

__all__ = [
    "AMOUNT",
    "CANCELLED_AT",
    "CUSTOMER_ID",
    "Dataset",
    "IS_RETURN",
    "LoadReport",
    "TIMESTAMP",
    "active_rows",
    "cancelled_before",
    "load_dataset",
    "prepare_transactions",
    "purchases",
    "read_customers",
    "read_events",
    "read_table",
    "read_transactions",
]

CUSTOMER_ID = "customer_id"
TIMESTAMP = "timestamp"
AMOUNT = "amount"
IS_RETURN = "is_return"
CANCELLED_AT = "cancelled_at"
_EXAMPLES = 5


@dataclasses.dataclass
class LoadReport:
    """What happened while loading a transaction log; nothing is dropped without a count here.

    ``cancellations`` counts the purchase orders matched to a return order of the same amount
    (both rows stay, marked by ``cancelled_at``; see :func:`prepare_transactions`).
    """

    source: str
    rows_read: int = 0
    rows_missing_customer: int = 0
    rows_negative_dropped: int = 0
    order_lines: int = 0
    orders: int = 0
    purchase_events: int = 0
    return_events: int = 0
    cancellations: int = 0
    customers: int = 0
    first_timestamp: str | None = None
    last_timestamp: str | None = None
    returns: str = "net"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def __str__(self) -> str:
        d = self.to_dict()
        width = max(len(k) for k in d)
        return "\n".join(f"{k:<{width}}  {v}" for k, v in d.items())


@dataclasses.dataclass
class Dataset:
    """Validated inputs of one run: transactions plus optional customers and events."""

    transactions: pd.DataFrame
    report: LoadReport
    customers: pd.DataFrame | None = None
    events: pd.DataFrame | None = None


# --------------------------------------------------------------------------- raw reading


def _is_parquet(path: Path) -> bool:
    name = path.name.lower()
    return name.endswith((".parquet", ".pq", ".parquet.gz"))


def _sniff_sep(path: Path) -> str:
    import gzip

    opener = gzip.open if path.name.lower().endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8", errors="replace") as fh:
        first = fh.readline()
    if not first.strip():
        raise DataError(f"{path}: the file is empty")
    for sep in (",", "\t", ";", "|"):
        if sep in first:
            return sep
    return r"\s+"


def read_table(
    path: str | Path,
    *,
    usecols: list[str] | None = None,
    sep: str | None = None,
    names: list[str] | None = None,
) -> tuple[pd.DataFrame, int]:
    """Read a CSV (any common separator, optionally gzipped) or Parquet file as strings.

    Returns the frame and the line number of its first data row (for error messages;
    0 for Parquet, where row numbers are 0-based positions).
    """
    path = resolve_path(path)
    if not path.exists():
        raise DataError(f"{path}: file not found")
    if path.stat().st_size == 0:
        raise DataError(f"{path}: the file is empty")
    if _is_parquet(path):
        try:
            import pyarrow.parquet as pq

            schema_names = pq.read_schema(path).names
        except Exception as err:  # noqa: BLE001 - any reader failure is bad input
            raise DataError(f"{path}: cannot read as Parquet: {err}") from None
        _check_columns(path, schema_names, usecols or [])
        df = pd.read_parquet(path, columns=usecols)
        return df, 0
    sep = sep or _sniff_sep(path)
    header: int | None = None if names else 0
    try:
        head = pd.read_csv(path, sep=sep, nrows=0, header=header, names=names, engine="python" if sep == r"\s+" else "c")
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: the file is empty") from None
    _check_columns(path, list(head.columns), usecols or [])
    try:
        df = pd.read_csv(
            path,
            sep=sep,
            header=header,
            names=names,
            usecols=usecols,
            dtype=str,
            keep_default_na=False,
            na_values=[""],
            skipinitialspace=True,
        )
    except pd.errors.ParserError as err:
        hint = f"; data.csv_names lists {len(names)} columns" if names else ""
        raise DataError(f"{path}: cannot parse as CSV (separator {sep!r}){hint}: {err}") from None
    return df, 1 if names else 2


def _check_columns(path: Path | str, available: list[str], required: list[str]) -> None:
    missing = [c for c in required if c not in available]
    if missing:
        raise DataError(
            f"{path}: missing column(s) {', '.join(repr(c) for c in missing)}; "
            f"the file has: {', '.join(repr(c) for c in available)}. "
            "Map your column names under data.columns in the config."
        )


def _examples(df: pd.DataFrame, mask: np.ndarray | pd.Series, first_line: int, cols: list[str]) -> str:
    bad = df.loc[np.asarray(mask), cols].head(_EXAMPLES)
    where = "line" if first_line else "row"
    rows = []
    for idx, row in bad.iterrows():
        pos = df.index.get_loc(idx)
        values = ", ".join(f"{c}={row[c]!r}" for c in cols)
        rows.append(f"    {where} {pos + first_line}: {values}")
    n = int(np.asarray(mask).sum())
    return f"{n} row(s), first {len(rows)}:\n" + "\n".join(rows)


def _parse_timestamps(
    values: pd.Series, fmt: str | None, *, source: str, column: str, df: pd.DataFrame, first_line: int
) -> pd.Series:
    if pd.api.types.is_datetime64_any_dtype(values):
        ts = values
    else:
        try:
            ts = pd.to_datetime(values, format=fmt, errors="coerce")
        except (ValueError, TypeError):
            ts = pd.Series(pd.NaT, index=values.index)
        if fmt is None and (ts.isna() & values.notna()).any():
            # the format inferred from the first value does not fit every row: parse row by row
            ts = pd.to_datetime(values, format="mixed", errors="coerce")
    bad = ts.isna().to_numpy()
    if bad.any():
        hint = f" with format {fmt!r}" if fmt else "; set data.timestamp_format (e.g. '%Y%m%d')"
        raise DataError(
            f"{source}: column {column!r} has missing or unparseable timestamps{hint}: "
            + _examples(df, bad, first_line, [column])
        )
    if getattr(ts.dt, "tz", None) is not None:
        ts = ts.dt.tz_convert("UTC").dt.tz_localize(None)
    return ts.astype("datetime64[ns]")


def _parse_numbers(
    values: pd.Series, *, source: str, column: str, df: pd.DataFrame, first_line: int
) -> np.ndarray:
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        num = values.astype("float64")
    else:
        num = pd.to_numeric(values.astype("string").str.strip(), errors="coerce").astype("float64")
    bad = num.isna().to_numpy() | ~np.isfinite(num.fillna(0).to_numpy())
    if bad.any():
        raise DataError(
            f"{source}: column {column!r} has missing or non-numeric values: "
            + _examples(df, bad, first_line, [column])
        )
    return num.to_numpy()


# --------------------------------------------------------------------------- transactions

_NAT = np.iinfo(np.int64).min  # NaT as int64 nanoseconds


def _run_starts(values: pd.Series) -> np.ndarray:
    """True where a value differs from the previous one (and at 0): run starts of sorted ids."""
    n = len(values)
    out = np.empty(n, dtype=bool)
    if n == 0:
        return out
    out[0] = True
    if isinstance(values.dtype, (pd.StringDtype, pd.ArrowDtype)):
        import pyarrow as pa
        import pyarrow.compute as pc

        try:  # compare Arrow strings in Arrow: no Python objects for 10M ids
            arr = pa.array(values.array)  # zero copy for Arrow-backed strings
            if isinstance(arr, pa.ChunkedArray):
                arr = arr.combine_chunks()
            if arr.null_count == 0:
                out[1:] = pc.not_equal(arr.slice(1), arr.slice(0, n - 1)).to_numpy(zero_copy_only=False)
                return out
        except (TypeError, ValueError, pa.ArrowException):
            pass
    v = values.to_numpy()
    np.not_equal(v[1:], v[:-1], out=out[1:])
    return out


def _match_cancellations(codes: np.ndarray, ts_ns: np.ndarray, amount: np.ndarray, is_return: np.ndarray) -> np.ndarray:
    """``cancelled_at`` (int64 ns, ``_NAT`` for none) of every order, vectorised.

    ``codes`` are integer customer codes. A return order cancels the latest purchase order of the
    same customer placed at or before it (same timestamp included) that is not cancelled yet and
    whose amount is minus the return's to the cent (``round(|amount| * 100)`` equal: for amounts
    in whole cents, float noise included, that is ``|purchase + return| <= 0.005``); returns are
    taken in time order and each purchase is cancelled at most once. Both rows get the return's
    timestamp.

    Candidates are grouped by customer and amount in cents; inside a group, in time order
    (purchases before returns at the same timestamp), a purchase opens and a return closes, like
    parentheses: a return matches the latest unmatched purchase, i.e. the top of a stack. The
    stack depth is the running sum reflected at 0 (a return on an empty stack matches nothing),
    and a purchase that raises the depth to ``h`` is matched by the next return that lowers it
    from ``h``: sorted by (group, level, time), a matched pair is a purchase directly followed by
    a return.
    """
    n = len(amount)
    out = np.full(n, _NAT, dtype=np.int64)
    if n == 0 or not is_return.any():
        return out
    cents = np.rint(np.abs(amount) * 100.0)
    n_codes = int(codes.max()) + 1
    c_max = float(cents.max())
    if c_max < 2**52 and n_codes * (c_max + 1) < 2**62:
        key = codes.astype(np.int64) * np.int64(c_max + 1) + cents.astype(np.int64)
    else:  # amounts too large to pack: group (customer, cents) by hashing
        key = pd.MultiIndex.from_arrays([codes, cents]).factorize()[0].astype(np.int64)
    # only orders whose (customer, cents) group holds a return can be matched
    ret_keys = np.sort(key[is_return])
    pos = np.searchsorted(ret_keys, key)
    pos[pos == len(ret_keys)] = 0
    idx = np.flatnonzero(ret_keys[pos] == key)
    k, t, r = key[idx], ts_ns[idx], is_return[idx]
    order = np.lexsort((idx, r, t, k))  # group, then time, purchases first, then row order
    idx, k, t, r = idx[order], k[order], t[order], r[order]
    m = len(idx)
    start = np.empty(m, dtype=bool)
    start[0] = True
    np.not_equal(k[1:], k[:-1], out=start[1:])
    gid = np.cumsum(start) - 1
    x = np.where(r, -1, 1).astype(np.int64)
    s = np.cumsum(x)
    s -= (s - x)[start][gid]  # running sum inside each group
    big = 2 * m + 2  # running minimum per group: shift each group below all earlier ones
    low = np.minimum.accumulate(s - gid * big) + gid * big
    depth = s - np.minimum(low, 0)  # stack depth after each event
    depth_before = np.empty(m, dtype=np.int64)
    depth_before[0] = 0
    depth_before[1:] = depth[:-1]
    depth_before[start] = 0
    level = np.where(r, depth_before, depth)
    sel = np.flatnonzero(~r | (depth_before > 0))  # purchases and the returns that pop one
    sel = sel[np.lexsort((sel, level[sel], gid[sel]))]
    a, b = sel[:-1], sel[1:]
    pair = ~r[a] & r[b] & (gid[a] == gid[b]) & (level[a] == level[b])
    a, b = a[pair], b[pair]
    out[idx[a]] = t[b]
    out[idx[b]] = t[b]
    return out


def prepare_transactions(
    raw: pd.DataFrame,
    *,
    columns: ColumnsConfig | None = None,
    timestamp_format: str | None = None,
    returns: str = "net",
    source: str = "<DataFrame>",
    first_line: int = 0,
) -> tuple[pd.DataFrame, LoadReport]:
    """Validate raw order lines and collapse them to one purchase event per order.

    Orders are identified by ``order_id`` or, without one, by customer and timestamp.
    ``returns="net"`` keeps negative lines inside an order (netting them) and keeps whole
    return orders as ``is_return`` rows whose negative amount is netted against the
    customer's spend from the return's own date on; ``returns="drop"`` removes every
    negative line. Rows without a customer id are dropped and counted in the report.

    Cancellations (``returns="net"``): a return order whose amount is minus the amount of a
    purchase order of the same customer placed at or before it (equal to the cent, i.e.
    ``|sum| <= 0.005`` for amounts in cents) cancels the latest such purchase not cancelled
    yet (returns in time order, each purchase cancelled at most once). Both rows get
    ``cancelled_at`` = the return's timestamp (NaT elsewhere) and are counted in
    ``report.cancellations``; from ``cancelled_at`` on neither row exists (:func:`active_rows`),
    before it the purchase counts in full. Unmatched return orders (partial returns) keep
    netting. Vectorised (see ``_match_cancellations``): a few seconds on 10M orders.
    """
    columns = columns or ColumnsConfig()
    report = LoadReport(source=source, rows_read=len(raw), returns=returns)
    if len(raw) == 0:
        raise DataError(f"{source}: no rows (the file has a header but no data)")
    required = [columns.customer_id, columns.timestamp]
    if columns.order_id:
        required.append(columns.order_id)
    amount_cols: list[str] = []
    if columns.quantity and columns.unit_price:
        amount_cols = [columns.quantity, columns.unit_price]
    elif columns.amount:
        amount_cols = [columns.amount]
    _check_columns(source, list(raw.columns), required + amount_cols)

    cid = raw[columns.customer_id]
    if not pd.api.types.is_string_dtype(cid) or cid.dtype == object:
        cid = cid.astype("string")
    cid = cid.str.strip()
    missing = cid.isna() | (cid == "")
    report.rows_missing_customer = int(missing.sum())
    if report.rows_missing_customer:
        keep = ~missing.to_numpy()
        raw = raw.loc[keep]
        cid = cid[keep]
    if len(raw) == 0:
        raise DataError(f"{source}: every row lacks a customer id in column {columns.customer_id!r}")

    ts = _parse_timestamps(
        raw[columns.timestamp], timestamp_format, source=source, column=columns.timestamp, df=raw, first_line=first_line
    )
    if len(amount_cols) == 2:
        qty = _parse_numbers(raw[amount_cols[0]], source=source, column=amount_cols[0], df=raw, first_line=first_line)
        price = _parse_numbers(raw[amount_cols[1]], source=source, column=amount_cols[1], df=raw, first_line=first_line)
        amount = qty * price
        negative = (qty < 0) | (amount < 0)
    elif amount_cols:
        amount = _parse_numbers(raw[amount_cols[0]], source=source, column=amount_cols[0], df=raw, first_line=first_line)
        negative = amount < 0
    else:
        amount = np.zeros(len(raw))
        negative = np.zeros(len(raw), dtype=bool)

    lines = pd.DataFrame(
        {CUSTOMER_ID: cid.astype(str).to_numpy(), TIMESTAMP: ts.to_numpy(), AMOUNT: amount}, index=raw.index
    )
    if columns.order_id:
        lines["order_id"] = raw[columns.order_id].astype("string").str.strip().fillna("").to_numpy()
    if returns == "drop" and negative.any():
        report.rows_negative_dropped = int(negative.sum())
        lines = lines.loc[~negative]
        if lines.empty:
            raise DataError(f"{source}: every row is a return or cancellation (negative amount)")
    report.order_lines = len(lines)

    if columns.order_id:
        keys = [CUSTOMER_ID, "order_id"]
        orders = lines.groupby(keys, sort=False, observed=True).agg(
            timestamp=(TIMESTAMP, "min"), amount=(AMOUNT, "sum"), n_lines=(AMOUNT, "size")
        )
    else:
        keys = [CUSTOMER_ID, TIMESTAMP]
        orders = lines.groupby(keys, sort=False, observed=True).agg(
            amount=(AMOUNT, "sum"), n_lines=(AMOUNT, "size")
        )
    orders = orders.reset_index()
    orders[IS_RETURN] = orders[AMOUNT].to_numpy() < 0
    orders = orders.sort_values([CUSTOMER_ID, TIMESTAMP], kind="stable").reset_index(drop=True)
    is_ret = orders[IS_RETURN].to_numpy()
    cancelled = np.full(len(orders), _NAT, dtype=np.int64)
    if returns == "net" and is_ret.any():
        codes = np.cumsum(_run_starts(orders[CUSTOMER_ID])) - 1  # sorted: one run per customer
        ts_ns = orders[TIMESTAMP].to_numpy().astype("datetime64[ns]").view(np.int64)
        cancelled = _match_cancellations(codes, ts_ns, orders[AMOUNT].to_numpy(), is_ret)
    orders[CANCELLED_AT] = cancelled.view("datetime64[ns]")
    cols = [CUSTOMER_ID, TIMESTAMP, AMOUNT, IS_RETURN, "n_lines", CANCELLED_AT] + (["order_id"] if columns.order_id else [])
    orders = orders[cols]

    report.orders = len(orders)
    report.cancellations = int(((cancelled != _NAT) & ~is_ret).sum())
    report.return_events = int(orders[IS_RETURN].sum())
    report.purchase_events = report.orders - report.return_events
    report.customers = int(orders.loc[~orders[IS_RETURN], CUSTOMER_ID].nunique())
    if report.purchase_events == 0:
        raise DataError(f"{source}: no purchase events (every order has a negative net amount)")
    report.first_timestamp = str(orders[TIMESTAMP].min())
    report.last_timestamp = str(orders[TIMESTAMP].max())
    return orders, report


def read_transactions(
    path: str | Path,
    *,
    columns: ColumnsConfig | None = None,
    timestamp_format: str | None = None,
    returns: str = "net",
    sep: str | None = None,
    names: list[str] | None = None,
) -> tuple[pd.DataFrame, LoadReport]:
    """Read a transaction log (CSV/Parquet, gz allowed) into the canonical contract.

    See :func:`prepare_transactions` for the order and return handling.
    """
    columns = columns or ColumnsConfig()
    usecols = [c for c in (columns.customer_id, columns.timestamp, columns.order_id) if c]
    if columns.quantity and columns.unit_price:
        usecols += [columns.quantity, columns.unit_price]
    elif columns.amount:
        usecols.append(columns.amount)
    raw, first_line = read_table(path, usecols=usecols, sep=sep, names=names)
    return prepare_transactions(
        raw,
        columns=columns,
        timestamp_format=timestamp_format,
        returns=returns,
        source=str(resolve_path(path)),
        first_line=first_line,
    )


def cancelled_before(transactions: pd.DataFrame, at) -> np.ndarray:
    """Boolean mask of the rows cancelled strictly before ``at`` (``cancelled_at < at``).

    All False without a ``cancelled_at`` column. Times compare as wall times (a tz-aware column
    or ``at`` loses its zone), as in :func:`churnml.features.snapshot_features`.
    """
    if CANCELLED_AT not in transactions.columns:
        return np.zeros(len(transactions), dtype=bool)
    col = transactions[CANCELLED_AT]
    if not pd.api.types.is_datetime64_any_dtype(col.dtype):
        col = pd.to_datetime(col)
    if isinstance(col.dtype, pd.DatetimeTZDtype):
        col = col.dt.tz_localize(None)
    at = pd.Timestamp(at)
    if at.tzinfo is not None:
        at = at.tz_localize(None)
    return (col < at).to_numpy(dtype=bool)  # NaT compares False: never cancelled


def active_rows(transactions: pd.DataFrame, at) -> pd.DataFrame:
    """The rows that still exist as known at ``at``: every row except those cancelled before it.

    A purchase cancelled before ``at`` never happened, and neither did its cancellation; one
    cancelled at or after ``at`` still counts (nobody could know at ``at``). Use it for anything
    measured at a point in time: features at a cutoff (rows before the cutoff, ``at=cutoff``),
    outcomes in a window ``[start, end)`` (rows in the window, ``at=end``). Returns
    ``transactions`` itself when nothing is cancelled before ``at``.
    """
    drop = cancelled_before(transactions, at)
    if not drop.any():
        return transactions
    return transactions.loc[~drop]


def purchases(transactions: pd.DataFrame, at=None) -> pd.DataFrame:
    """The purchase events of a canonical transactions table (return orders removed).

    With ``at``, purchases cancelled before ``at`` are removed too (the purchase rows of
    :func:`active_rows`): ``purchases(tx, at=cutoff)`` restricted to ``timestamp < cutoff`` is
    the set :func:`churnml.features.snapshot_features` counts; ``purchases(tx, at=end)``
    restricted to ``[start, end)`` the purchases made in an outcome window (one cancelled
    inside the window is no purchase). Without ``at`` no cancellation is applied.
    """
    keep = None
    if IS_RETURN in transactions.columns:
        keep = ~transactions[IS_RETURN].to_numpy(dtype=bool)
    if at is not None:
        active = ~cancelled_before(transactions, at)
        keep = active if keep is None else keep & active
    if keep is None:
        return transactions
    return transactions.loc[keep]


# --------------------------------------------------------------------------- side tables


def read_customers(path: str | Path, *, id_column: str = CUSTOMER_ID, sep: str | None = None) -> pd.DataFrame:
    """Read the static customer-attributes table, indexed by ``customer_id`` (str)."""
    raw, first_line = read_table(path, sep=sep)
    source = str(resolve_path(path))
    _check_columns(source, list(raw.columns), [id_column])
    ids = raw[id_column].astype("string").str.strip()
    dup = ids.duplicated(keep=False).to_numpy() & ids.notna().to_numpy()
    if dup.any():
        raise DataError(f"{source}: column {id_column!r} has duplicate customer ids: " + _examples(raw, dup, first_line, [id_column]))
    out = raw.drop(columns=[id_column]).copy()
    for col in out.columns:
        converted = pd.to_numeric(out[col], errors="coerce")
        if converted.notna().sum() == out[col].notna().sum():
            out[col] = converted
    out.index = pd.Index(ids.astype(str).to_numpy(), name=CUSTOMER_ID)
    return out


def read_events(
    path: str | Path,
    *,
    columns: EventColumnsConfig | None = None,
    timestamp_format: str | None = None,
    sep: str | None = None,
) -> pd.DataFrame:
    """Read customer service events: ``customer_id, timestamp, type, value``.

    ``type`` is lower-cased and stripped (``"NPS "`` -> ``"nps"``); ``value`` is numeric or NaN
    (a ticket has no value; an NPS answer is 0-10, a CSAT answer 1-5 or 1-10).
    """
    columns = columns or EventColumnsConfig()
    usecols = [columns.customer_id, columns.timestamp, columns.type] + ([columns.value] if columns.value else [])
    raw, first_line = read_table(path, usecols=usecols, sep=sep)
    source = str(resolve_path(path))
    if raw.empty:
        raise DataError(f"{source}: no rows (the file has a header but no data)")
    cid = raw[columns.customer_id].astype("string").str.strip()
    keep = (cid.notna() & (cid != "")).to_numpy()
    raw, cid = raw.loc[keep], cid[keep]
    ts = _parse_timestamps(raw[columns.timestamp], timestamp_format, source=source, column=columns.timestamp, df=raw, first_line=first_line)
    out = pd.DataFrame(
        {
            CUSTOMER_ID: cid.astype(str).to_numpy(),
            TIMESTAMP: ts.to_numpy(),
            "type": raw[columns.type].astype("string").str.strip().str.lower().fillna("").astype(str).to_numpy(),
        }
    )
    if columns.value:
        values = raw[columns.value]
        num = pd.to_numeric(values, errors="coerce")
        bad = (num.isna() & values.notna()).to_numpy()
        if bad.any():
            raise DataError(f"{source}: column {columns.value!r} has non-numeric values: " + _examples(raw, bad, first_line, [columns.value]))
        out["value"] = num.astype("float64").to_numpy()
    else:
        out["value"] = np.nan
    return out.sort_values([CUSTOMER_ID, TIMESTAMP], kind="stable").reset_index(drop=True)


def load_dataset(config: Config | DataConfig) -> Dataset:
    """Load transactions (and the optional customers and events tables) named in a config."""
    data = config.data if isinstance(config, Config) else config
    if not data.transactions:
        raise DataError("no transaction file: set data.transactions in the config or pass --transactions")
    tx, report = read_transactions(
        data.transactions,
        columns=data.columns,
        timestamp_format=data.timestamp_format,
        returns=data.returns,
        sep=data.sep,
        names=data.csv_names,
    )
    customers = None
    if data.customers:
        customers = read_customers(data.customers, id_column=data.customers_id_column or data.columns.customer_id)
    events = None
    if data.events:
        events = read_events(data.events, columns=data.event_columns, timestamp_format=data.timestamp_format)
    return Dataset(transactions=tx, report=report, customers=customers, events=events)


def report_json(report: LoadReport) -> str:
    """The load report as indented JSON."""
    return json.dumps(report.to_dict(), indent=2)
