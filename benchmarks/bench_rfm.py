#!/usr/bin/env python
"""Benchmark ``churnml.features.rfm_summary`` against lifetimes, pandas, DuckDB and Polars.

One synthetic transaction log (hour-level timestamps over ~3 years, float amounts, fixed
seed) is written once to ``benchmarks/data/`` as Parquet; every engine then runs in its own
subprocess that reads that file (untimed), records its RSS, computes the lifetimes-style
RFM summary (timed, best of ``--repeat``), records its peak RSS and writes its output, which
the parent checks against churnml's (frequency/recency/T exactly, monetary_value within
1e-6 relative). Any mismatch or failed engine makes the exit status non-zero.

    python benchmarks/bench_rfm.py --customers 1000000 --transactions 10000000
    python benchmarks/bench_rfm.py --customers 20000 --transactions 200000 --profile   # quick

See benchmarks/README.md for what is measured and how.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import resource
import shlex
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
DATA_DIR = HERE / "data"
RESULTS = HERE / "results" / "rfm_summary.md"

ENGINES = ["churnml", "lifetimes", "pandas", "duckdb", "polars"]
ID_KINDS = ["int", "str", "varstr"]
REFERENCE = "churnml"
MONETARY_RTOL = 1e-6
MONETARY_ATOL = 1e-9
HOURS = 3 * 365 * 24  # ~3 years of hourly timestamps
START = np.datetime64("2022-01-01T00", "h")


# --------------------------------------------------------------------------- data


def data_path(args) -> Path:
    return DATA_DIR / f"rfm_{args.customers}c_{args.transactions}t_seed{args.seed}_{args.ts_unit}.parquet"


def make_log(n_customers: int, n_tx: int, seed: int, ts_unit: str):
    """A time-ordered log: every customer buys at least once (at their start hour), the
    remaining transactions go to customers with gamma-distributed propensity, uniformly in
    time between the customer's start and the end of the window. Returns a pyarrow Table with
    ``customer_id_int`` (shuffled dense 0..N-1), ``customer_id_str`` ("C0001234"),
    ``customer_id_varstr`` (ids of varying width, see :func:`varstr_labels`), ``timestamp`` and
    ``amount``."""
    import pyarrow as pa

    if n_tx < n_customers:
        raise SystemExit("--transactions must be >= --customers (every customer buys at least once)")
    rng = np.random.default_rng(seed)
    propensity = rng.gamma(0.6, 1.0, n_customers)
    extra = rng.multinomial(n_tx - n_customers, propensity / propensity.sum())
    start_hour = rng.integers(0, int(HOURS * 0.9), n_customers)
    cust = np.concatenate([np.arange(n_customers), np.repeat(np.arange(n_customers), extra)])
    begin = start_hour[cust[n_customers:]]
    later = begin + (rng.random(len(begin)) * (HOURS - begin)).astype(np.int64)
    hour = np.concatenate([start_hour, later])
    order = np.argsort(hour, kind="stable")
    cust, hour = cust[order], hour[order]
    perm = rng.permutation(n_customers)  # shuffled surrogate keys: id order != arrival order
    ids = perm[cust].astype(np.int64)
    width = max(7, len(str(n_customers - 1)))
    labels = pa.array([f"C{i:0{width}d}" for i in range(n_customers)], type=pa.string())
    ts = (START + hour.astype("timedelta64[h]")).astype(f"datetime64[{ts_unit}]")
    amount = np.round(rng.lognormal(3.0, 0.8, n_tx), 2)
    return pa.table(
        {
            "customer_id_int": pa.array(ids),
            "customer_id_str": labels.take(pa.array(ids)),
            "customer_id_varstr": varstr_labels(n_customers, seed).take(pa.array(ids)),
            "timestamp": pa.array(ts),
            "amount": pa.array(amount),
        }
    )


_NAMES = ["anna", "bo", "chiara", "dmitri", "eve", "françois", "günther", "hana", "ines", "józef", "kim", "zoë"]
_DOMAINS = ["example.com", "mail.example.org", "shop.test", "posteo.example.de"]


def varstr_labels(n_customers: int, seed: int):
    """Unique ids of varying width and shape, as a raw log's id column may hold: about 40%
    ``"cust-7"``..``"cust-999999"`` (unpadded numbers, so lexical order != numeric order), 30%
    e-mail-like (``"zoë.4711@shop.test"``, some non-ASCII), 25% UUID-like, 5% other scripts
    (``"顧客-123"``, ``"клиент-42"``). A pyarrow string array, label of customer ``i`` at ``i``."""
    import pyarrow as pa

    rng = np.random.default_rng(seed + 1)
    kind = rng.choice(4, size=n_customers, p=[0.40, 0.30, 0.25, 0.05])
    name = rng.integers(0, len(_NAMES), n_customers)
    dom = rng.integers(0, len(_DOMAINS), n_customers)
    hexes = rng.integers(0, 256, (n_customers, 16), dtype=np.uint8)
    other = ["顧客-", "клиент-", "عميل-"]
    out = []
    for i in range(n_customers):
        k = kind[i]
        if k == 0:
            out.append(f"cust-{i}")
        elif k == 1:
            out.append(f"{_NAMES[name[i]]}.{i}@{_DOMAINS[dom[i]]}")
        elif k == 2:
            h = hexes[i].tobytes().hex()
            out.append(f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{i:012x}")  # unique: the last group is i
        else:
            out.append(f"{other[i % 3]}{i}")
    return pa.array(out, type=pa.string())


def ensure_data(args) -> Path:
    import pyarrow.parquet as pq

    path = data_path(args)
    if path.exists() and not args.regenerate:
        have = set(pq.read_schema(path).names)
        if {f"customer_id_{k}" for k in ID_KINDS} <= have:
            log(f"data: reusing {path.relative_to(REPO)}")
            return path
        log(f"data: {path.relative_to(REPO)} lacks an id column of {ID_KINDS}; regenerating")
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    table = make_log(args.customers, args.transactions, args.seed, args.ts_unit)
    tmp = path.with_suffix(".tmp")
    pq.write_table(table, tmp)
    tmp.replace(path)
    log(f"data: wrote {path.relative_to(REPO)} ({path.stat().st_size / 2**20:.0f} MB) in {time.perf_counter() - t0:.1f}s")
    return path


# --------------------------------------------------------------------------- engines
# Each engine: load(path, id_column) -> native frame (untimed), run(frame) -> result (timed),
# to_pandas(result) -> DataFrame with columns customer_id, frequency, recency, T, monetary_value.


def _load_pandas(path, id_col):
    import pandas as pd

    df = pd.read_parquet(path, columns=[id_col, "timestamp", "amount"])
    return df.rename(columns={id_col: "customer_id"})


def run_churnml(df):
    from churnml.features import rfm_summary

    return rfm_summary(df, customer_id="customer_id", timestamp="timestamp", amount="amount", freq="D", freq_multiplier=1)


def run_lifetimes(df):
    from lifetimes.utils import summary_data_from_transaction_data

    return summary_data_from_transaction_data(df, "customer_id", "timestamp", "amount", freq="D")


def run_pandas(df):
    """Plain pandas: daily (customer, day) sums, then per customer count/first/last/mean repeat."""
    import pandas as pd

    day = df["timestamp"].dt.floor("D")
    per = (
        df[["customer_id", "amount"]].assign(day=day)
        .groupby(["customer_id", "day"], sort=True)["amount"].sum()
        .reset_index()
    )
    is_first = ~per["customer_id"].duplicated()  # rows are sorted by (customer, day)
    g = per.groupby("customer_id", sort=True)["day"].agg(["min", "max", "size"])
    one_day = pd.Timedelta(days=1)
    repeat = per["amount"].where(~is_first).groupby(per["customer_id"], sort=True).mean()
    return pd.DataFrame(
        {
            "frequency": (g["size"] - 1).astype(float),
            "recency": (g["max"] - g["min"]) / one_day,
            "T": (day.max() - g["min"]) / one_day,
            "monetary_value": repeat.fillna(0.0),
        }
    )


DUCKDB_SQL = """
WITH per AS (
    SELECT customer_id, CAST("timestamp" AS DATE) AS day, sum(amount) AS amt
    FROM tx
    GROUP BY ALL
)
SELECT
    customer_id,
    (count(*) - 1)::DOUBLE AS frequency,
    date_diff('day', min(day), max(day))::DOUBLE AS recency,
    date_diff('day', min(day), (SELECT CAST(max("timestamp") AS DATE) FROM tx))::DOUBLE AS "T",
    CASE WHEN count(*) > 1 THEN (sum(amt) - arg_min(amt, day)) / (count(*) - 1) ELSE 0.0 END AS monetary_value
FROM per
GROUP BY customer_id
"""


def run_duckdb(df):
    import duckdb

    con = duckdb.connect()
    if _THREADS:
        con.execute(f"SET threads = {_THREADS}")
    con.register("tx", df)
    try:
        return con.sql(DUCKDB_SQL).df()  # executes the query and materialises a pandas DataFrame
    finally:
        con.close()


def _load_polars(path, id_col):
    import polars as pl

    return pl.read_parquet(path, columns=[id_col, "timestamp", "amount"]).rename({id_col: "customer_id"})


def run_polars(df):
    import polars as pl

    end_day = df.get_column("timestamp").max().date()
    per = df.lazy().group_by("customer_id", pl.col("timestamp").dt.date().alias("day")).agg(pl.col("amount").sum().alias("amt"))
    n = pl.col("n")
    return (
        per.group_by("customer_id")
        .agg(
            n=pl.len(),
            first=pl.col("day").min(),
            last=pl.col("day").max(),
            total=pl.col("amt").sum(),
            first_amt=pl.col("amt").get(pl.col("day").arg_min()),
        )
        .select(
            "customer_id",
            frequency=(n - 1).cast(pl.Float64),
            recency=(pl.col("last") - pl.col("first")).dt.total_days().cast(pl.Float64),
            T=(pl.lit(end_day) - pl.col("first")).dt.total_days().cast(pl.Float64),
            monetary_value=pl.when(n > 1).then((pl.col("total") - pl.col("first_amt")) / (n - 1)).otherwise(0.0),
        )
        .collect()
    )


def _pandas_out(res):
    return res.rename_axis("customer_id").reset_index()[["customer_id", "frequency", "recency", "T", "monetary_value"]]


ENGINE_IMPL = {
    "churnml": (_load_pandas, run_churnml, _pandas_out, ["churnml.features"]),
    "lifetimes": (_load_pandas, run_lifetimes, _pandas_out, ["lifetimes.utils"]),
    "pandas": (_load_pandas, run_pandas, _pandas_out, ["pandas"]),
    "duckdb": (_load_pandas, run_duckdb, lambda r: r, ["duckdb"]),
    "polars": (_load_polars, run_polars, lambda r: r.to_pandas(), ["polars"]),
}
_THREADS = 0


def order_rows(frame, order: str):
    """``customer``: sort by (customer_id, timestamp), the layout churnml.io.prepare_transactions returns."""
    if order == "time":
        return frame
    if hasattr(frame, "reset_index"):  # pandas
        return frame.sort_values(["customer_id", "timestamp"], kind="stable").reset_index(drop=True)
    return frame.sort(["customer_id", "timestamp"], maintain_order=True)  # polars


# --------------------------------------------------------------------------- memory


def rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def reset_peak() -> bool:
    """Reset the RSS high-water mark (Linux >= 4.0), so ru_maxrss covers only what follows."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


# --------------------------------------------------------------------------- worker


def worker(args) -> None:
    import importlib

    global _THREADS
    _THREADS = args.threads
    load, run, to_pandas, modules = ENGINE_IMPL[args.worker]
    for m in modules:
        importlib.import_module(m)
    id_col = f"customer_id_{args.id_kind}"
    t0 = time.perf_counter()
    frame = order_rows(load(args.data, id_col), args.order)
    load_s = time.perf_counter() - t0
    gc.collect()
    load_peak = maxrss_mb()
    load_rss = rss_mb()
    peak_reset = reset_peak()
    times: list[float] = []
    cpu: list[float] = []
    res = None
    for _ in range(args.repeat):
        res = None
        gc.collect()
        r0 = resource.getrusage(resource.RUSAGE_SELF)
        t0 = time.perf_counter()
        res = run(frame)
        times.append(time.perf_counter() - t0)
        r1 = resource.getrusage(resource.RUSAGE_SELF)
        cpu.append(r1.ru_utime - r0.ru_utime + r1.ru_stime - r0.ru_stime)
    peak = maxrss_mb()
    out = to_pandas(res)
    out.to_parquet(args.out, index=False)
    info = {
        "engine": args.worker,
        "id_kind": args.id_kind,
        "times": times,
        "cpu_seconds": cpu,
        "seconds": min(times),
        "load_seconds": load_s,
        "rss_after_load_mb": load_rss,
        "peak_during_load_mb": load_peak,
        "peak_rss_mb": peak if peak_reset else max(peak, load_peak),
        "peak_reset": peak_reset,
        "rows_in": int(len(frame)),
        "rows_out": int(len(out)),
        "id_dtype": str(frame.schema["customer_id"] if args.worker == "polars" else frame["customer_id"].dtype),
        "ts_dtype": str(frame.schema["timestamp"] if args.worker == "polars" else frame["timestamp"].dtype),
    }
    print("RESULT " + json.dumps(info), flush=True)


# --------------------------------------------------------------------------- profile of churnml


def profile_worker(args) -> None:
    """Stage timings of churnml's rfm_summary on the benchmark data.

    The stages call ``churnml.features``' own helpers (``_periods``, ``_encode``,
    ``_period_stats``), so their times stay right when those helpers change; the DataFrame
    assembly, inline in ``rfm_summary``, is re-run here as written there. The "breakdown" rows
    (not part of the total) time the encoders ``_encode`` tries one by one, and the sub-steps of
    ``_period_stats`` by replicating its body as of the commit this benchmark was written
    against (they may drift from it).
    """
    import pandas as pd

    import churnml.features as F

    id_col = f"customer_id_{args.id_kind}"
    df = order_rows(_load_pandas(args.data, id_col), args.order)
    gc.collect()
    base_rss = rss_mb()

    def staged():
        t: dict[str, float] = {}
        mem: dict[str, float] = {}
        cpu: dict[str, float] = {}
        cpu0 = [time.process_time()]

        def mark(name, t0):
            t[name] = time.perf_counter() - t0
            now = time.process_time()
            cpu[name] = now - cpu0[0]
            mem[name] = maxrss_mb()
            cpu0[0] = time.process_time()
            return time.perf_counter()

        reset_peak()
        cpu0[0] = time.process_time()
        c = time.perf_counter()
        periods = F._periods(df["timestamp"], "D")
        c = mark("_periods (timestamps -> day numbers, in the column's unit)", c)
        end_period = int(periods.max())
        c = mark("end period (periods.max)", c)
        codes, labels = F._encode(df["customer_id"], compiled_strings=True)
        c = mark("_encode (customer ids -> codes, sorted labels)" if codes is not None
                 else "_encode (checks: string ids that need hashing -> compiled path)", c)
        values = df["amount"].to_numpy(dtype=np.float64)
        if periods.max() > end_period:
            raise RuntimeError("unexpected: transactions after the observation end")
        c = mark("amount to_numpy + observation-end check", c)
        if codes is None:  # varying-width string ids: churnml._strids (numba, all cores)
            from churnml import _strids

            tm: dict[str, float] = {}
            summary = _strids.summarise(labels, periods, values, end_period, timings=tm)
            tm.pop("_t", None)
            compiled_stages.append(tm)
            c = mark("_strids.summarise (hash, bucket, summarise, sort labels; all cores)", c)
            res = F._rfm_frame(F._labels_index(summary[0], df["customer_id"]), *summary[1:], end_period, 1,
                               ["frequency", "recency", "T", "monetary_value"])
            c = mark("_rfm_frame (frequency/recency/T/monetary_value, DataFrame)", c)
            return t, mem, cpu, res
        stats = F._period_stats(codes, periods, len(labels), values)
        c = mark("_period_stats (packed-key sort, runs, repeat spend)", c)
        frequency = (stats.n_periods - 1).astype(np.float64)
        out = {"frequency": frequency, "recency": (stats.last - stats.first) / 1, "T": (end_period - stats.first) / 1}
        with np.errstate(invalid="ignore", divide="ignore"):
            out["monetary_value"] = np.where(frequency > 0, stats.repeat_spend / np.maximum(frequency, 1), 0.0)
        c = mark("frequency/recency/T/monetary_value arrays", c)
        index = pd.Index(labels[stats.code], name="customer_id")
        res = pd.DataFrame(out, index=index)[["frequency", "recency", "T", "monetary_value"]].astype(float)
        c = mark("build DataFrame (labels[code] -> Index)", c)
        return t, mem, cpu, res

    compiled_stages: list[dict[str, float]] = []

    def breakdown():
        """Encoders one by one, and the sub-steps of _period_stats, replicated; for the
        compiled path, the stages ``_strids.summarise`` reports itself."""
        t: dict[str, float] = {}

        def mark(name, t0):
            t[name] = time.perf_counter() - t0
            return time.perf_counter()

        ids = df["customer_id"]
        if compiled_stages:
            labels_of = {
                "hash": "hash: 128-bit hash of each id from the Arrow buffers + rows per bucket (all cores)",
                "scatter": "scatter: rows to their hash bucket (stable counting sort, all cores)",
                "summarise_buckets": "summarise_buckets: first/last/distinct periods, repeat spend per customer (all cores)",
                "copy_labels": "copy_labels: each customer's first id copied out",
                "sort_labels": "sort_labels: ids sorted (first 16 bytes by radix, then ties; all cores)",
                "labels_out": "labels_out: ids written in sorted order, stats reordered",
            }
            for k, v in compiled_stages.pop().items():
                t["_strids.summarise: " + labels_of.get(k, k)] = v
            return t
        c = time.perf_counter()
        if ids.dtype.kind in "iu":
            arr = ids.to_numpy()
            lo, hi = int(arr.min()), int(arr.max())
            codes = arr if lo == 0 and arr.dtype == np.int64 else arr.astype(np.int64) - lo
            n_codes = hi - lo + 1
            c = mark("_encode: integer ids (min/max; used as codes)", c)
        else:
            strings = F._arrow_strings(ids)
            c = mark("_encode: _arrow_strings (the Arrow array behind the column)", c)
            fixed = F._encode_fixed_width(strings) if strings is not None else None
            c = mark("_encode: _encode_fixed_width" + (" (applies)" if fixed is not None else " (does not apply)"), c)
            if fixed is None and strings is not None:
                fixed = F._encode_sorted_strings(strings, ids)
                c = mark("_encode: _encode_sorted_strings" + (" (applies)" if fixed is not None else " (does not apply: not sorted)"), c)
            if fixed is None:
                fixed = F._encode(ids)
                c = mark("_encode: pd.factorize (Arrow hash table) + sort of the unique labels", c)
            codes, labels = fixed
            n_codes = len(labels)
        periods = F._periods(df["timestamp"], "D")
        values = df["amount"].to_numpy(dtype=np.float64)
        c = time.perf_counter()
        n = len(codes)
        pmin, pmax = int(periods.min()), int(periods.max())
        bits = (pmax - pmin).bit_length()
        kdt = np.uint32 if bits + max(n_codes - 1, 0).bit_length() <= 32 else np.uint64
        rel = np.empty(n, kdt)
        np.subtract(periods, pmin, out=rel, casting="unsafe")
        key = np.empty(n, kdt)
        np.left_shift(codes, bits, out=key, casting="unsafe")
        key |= rel
        c = mark(f"_period_stats: pack (code, day) into {np.dtype(kdt).name} keys", c)
        key.sort()
        c = mark(f"_period_stats: key.sort() ({np.dtype(kdt).name})", c)
        new = np.empty(n, dtype=bool)
        new[0] = True
        np.not_equal(key[1:], key[:-1], out=new[1:])
        cc = key >> kdt(bits)
        start = np.empty(n, dtype=bool)
        start[0] = True
        np.not_equal(cc[1:], cc[:-1], out=start[1:])
        starts = np.flatnonzero(start)
        code = cc[starts].astype(np.intp)
        first_rel = key[starts] & kdt((1 << bits) - 1)
        c = mark("_period_stats: runs of customers (starts, first/last day)", c)
        np.add.reduceat(new, starts, dtype=np.int64)
        c = mark("_period_stats: distinct days per customer (reduceat)", c)
        first_of_code = np.zeros(n_codes, dtype=kdt)
        first_of_code[code] = first_rel
        later = rel != first_of_code[codes]
        c = mark("_period_stats: rows after the first day (gather + compare)", c)
        np.bincount(codes, weights=np.where(later, values, 0.0), minlength=n_codes)
        c = mark("_period_stats: repeat spend (where + bincount)", c)
        return t

    best: dict[str, float] = {}
    best_cpu: dict[str, float] = {}
    mem: dict[str, float] = {}
    for _ in range(args.repeat):
        res = None
        gc.collect()
        t, m, cp, res = staged()
        for k, v in t.items():
            best[k] = min(best.get(k, float("inf")), v)
            best_cpu[k] = min(best_cpu.get(k, float("inf")), cp[k])
            mem[k] = max(mem.get(k, 0.0), m[k])
    del res
    sub: dict[str, float] = {}
    for _ in range(args.repeat):
        gc.collect()
        for k, v in breakdown().items():
            sub[k] = min(sub.get(k, float("inf")), v)
    gc.collect()
    whole = []
    for _ in range(args.repeat):
        ref = None
        gc.collect()
        t0 = time.perf_counter()
        ref = run_churnml(df)
        whole.append(time.perf_counter() - t0)
    info = {
        "id_kind": args.id_kind,
        "stages": best,
        "stages_cpu": best_cpu,
        "breakdown": sub,
        "peak_after_stage_mb": mem,
        "rss_after_load_mb": base_rss,
        "staged_peak_mb": max(mem.values()),
        "rfm_summary_seconds": min(whole),
        "rfm_summary_runs": whole,
        "rows_out": int(len(ref)),
    }
    print("RESULT " + json.dumps(info), flush=True)


# --------------------------------------------------------------------------- parent


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def spawn(argv: list[str], timeout: float, env=None) -> dict:
    proc = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), *argv],
        capture_output=True, text=True, timeout=timeout, env=env,
    )
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        tail = "\n".join((proc.stderr or "").strip().splitlines()[-15:])
        raise RuntimeError(f"worker exited with {proc.returncode}:\n{tail}")
    return json.loads(lines[-1][len("RESULT "):])


def compare(ref_path: Path, got_path: Path) -> str | None:
    """None when equal, else a short description of the first difference."""
    import pandas as pd

    ref = pd.read_parquet(ref_path).sort_values("customer_id", kind="stable").reset_index(drop=True)
    got = pd.read_parquet(got_path).sort_values("customer_id", kind="stable").reset_index(drop=True)
    if len(ref) != len(got):
        return f"{len(got)} rows, expected {len(ref)}"
    if ref["customer_id"].dtype.kind in "iu" or got["customer_id"].dtype.kind in "iu":
        ids_ok = np.array_equal(ref["customer_id"].to_numpy(np.int64), got["customer_id"].to_numpy(np.int64))
    else:
        ids_ok = np.array_equal(ref["customer_id"].to_numpy(str), got["customer_id"].to_numpy(str))
    if not ids_ok:
        return "customer ids differ"
    for col in ["frequency", "recency", "T"]:
        a, b = ref[col].to_numpy(np.float64), got[col].to_numpy(np.float64)
        bad = np.flatnonzero(a != b)
        if len(bad):
            i = bad[0]
            return f"{col} differs in {len(bad)} rows (e.g. {ref['customer_id'].iloc[i]!r}: {b[i]} vs {a[i]})"
    a, b = ref["monetary_value"].to_numpy(np.float64), got["monetary_value"].to_numpy(np.float64)
    bad = np.flatnonzero(~(np.abs(a - b) <= MONETARY_RTOL * np.abs(a) + MONETARY_ATOL))
    if len(bad):
        i = bad[0]
        return f"monetary_value differs in {len(bad)} rows (e.g. {ref['customer_id'].iloc[i]!r}: {b[i]} vs {a[i]})"
    return None


def machine_info() -> dict:
    import importlib.metadata as md

    cpu = "unknown"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        mem_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError):
        mem_gb = float("nan")
    versions = {}
    for pkg in ["churnml", "pandas", "numpy", "pyarrow", "lifetimes", "duckdb", "polars"]:
        try:
            versions[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            versions[pkg] = "not installed"
    git = {}
    try:
        git["commit"] = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "src"], cwd=REPO, capture_output=True, text=True).stdout.strip()
        git["src_dirty"] = bool(dirty)
    except OSError:
        pass
    return {
        "nproc": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "cpu": cpu,
        "mem_gb": round(mem_gb, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "versions": versions,
        "git": git,
    }


def fmt_table(rows: list[dict]) -> str:
    head = "| engine | id kind | seconds | CPU s | peak RSS MB | RSS after load MB | RSS increment MB | speed-up vs lifetimes | output check | all runs s | load avg at start |"
    sep = "|---|---|---:|---:|---:|---:|---:|---:|---|---|---:|"
    lines = [head, sep]
    lt = {r["id_kind"]: r["seconds"] for r in rows if r["engine"] == "lifetimes" and r.get("seconds") is not None}
    for r in rows:
        if r.get("seconds") is None:
            lines.append(f"| {r['engine']} | {r['id_kind']} | failed | | | | | | {r['check']} | | |")
            continue
        base = lt.get(r["id_kind"])
        speed = f"{base / r['seconds']:.1f}x" if base else "n/a"
        inc = r["peak_rss_mb"] - r["rss_after_load_mb"]
        best = r["times"].index(r["seconds"])
        lines.append(
            f"| {r['engine']} | {r['id_kind']} | {r['seconds']:.2f} | {r['cpu_seconds'][best]:.2f} | {r['peak_rss_mb']:.0f} | "
            f"{r['rss_after_load_mb']:.0f} | {inc:.0f} | {speed} | {r['check']} | {' / '.join(f'{t:.2f}' for t in r['times'])} | "
            f"{r.get('load', float('nan')):.2f} |"
        )
    return "\n".join(lines)


def fmt_profile(p: dict) -> str:
    total = sum(p["stages"].values())
    lines = [
        f"id kind `{p['id_kind']}`: whole `rfm_summary` call {p['rfm_summary_seconds']:.2f}s "
        f"(runs {' / '.join(f'{t:.2f}' for t in p['rfm_summary_runs'])}); sum of stages {total:.2f}s; "
        f"RSS after load {p['rss_after_load_mb']:.0f} MB, peak {p['staged_peak_mb']:.0f} MB",
        "",
        "| stage | seconds | CPU s | share | peak RSS of the run so far MB |",
        "|---|---:|---:|---:|---:|",
    ]
    for k, v in p["stages"].items():
        lines.append(f"| {k} | {v:.3f} | {p['stages_cpu'][k]:.3f} | {100 * v / total:.0f}% | {p['peak_after_stage_mb'][k]:.0f} |")
    for k, v in p.get("breakdown", {}).items():
        lines.append(f"| &nbsp;&nbsp;breakdown: {k} | {v:.3f} | | | |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--customers", type=int, default=1_000_000)
    ap.add_argument("--transactions", type=int, default=10_000_000)
    ap.add_argument("--id-kind", choices=[*ID_KINDS, "all", "both"], default="all",
                    help="int: dense int64 surrogate keys; str: fixed-width 'C0001234'; varstr: ids of varying width "
                    "(cust-7, e-mail-like, UUID-like, non-ASCII); all (alias both): every kind")
    ap.add_argument("--engines", default=",".join(ENGINES), help=f"comma-separated subset of {','.join(ENGINES)} (churnml always runs: it is the reference)")
    ap.add_argument("--repeat", type=int, default=3, help="timed runs per engine except lifetimes (best is reported)")
    ap.add_argument("--lifetimes-repeat", type=int, default=1, help="timed runs of lifetimes")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--ts-unit", choices=["us", "ns"], default="us", help="timestamp resolution stored in the Parquet file (pandas 3 reads it back as datetime64[unit])")
    ap.add_argument("--order", choices=["time", "customer"], default="time", help="row order given to the engines: as generated (time) or sorted by (customer_id, timestamp) like churnml.io's output; sorting is not timed")
    ap.add_argument("--threads", type=int, default=0, help="thread limit for duckdb/polars (0 = all cores)")
    ap.add_argument("--regenerate", action="store_true", help="rewrite the Parquet file even if it exists")
    ap.add_argument("--profile", action="store_true", help="also profile churnml's rfm_summary stage by stage")
    ap.add_argument("--timeout", type=float, default=1200, help="seconds per engine subprocess")
    ap.add_argument("--results", type=Path, default=RESULTS, help="Markdown file to write ('-' for none)")
    ap.add_argument("--note", default="", help="a line added to the results file (e.g. what else ran on the machine)")
    # internal: subprocess modes
    ap.add_argument("--worker", choices=ENGINES, help=argparse.SUPPRESS)
    ap.add_argument("--profile-worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.repeat < 1 or args.lifetimes_repeat < 1:
        ap.error("--repeat and --lifetimes-repeat must be >= 1")
    if args.worker:
        worker(args)
        return 0
    if args.profile_worker:
        profile_worker(args)
        return 0

    command = "python " + " ".join(shlex.quote(a) for a in ([str(Path(sys.argv[0]).resolve().relative_to(REPO))] + sys.argv[1:]))
    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    unknown = set(engines) - set(ENGINES)
    if unknown:
        ap.error(f"unknown engines {sorted(unknown)}")
    engines = [REFERENCE] + [e for e in ENGINES if e in engines and e != REFERENCE]
    kinds = ID_KINDS if args.id_kind in ("all", "both") else [args.id_kind]
    info = machine_info()
    log(f"{args.customers:,} customers, {args.transactions:,} transactions; engines {engines}; id kinds {kinds}")
    path = ensure_data(args)
    out_dir = DATA_DIR / "out"
    out_dir.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    if args.threads:
        env["POLARS_MAX_THREADS"] = str(args.threads)

    load_before = os.getloadavg()
    t_start = time.perf_counter()
    rows: list[dict] = []
    failed = False
    for kind in kinds:
        for eng in engines:
            out = out_dir / f"{eng}_{kind}.parquet"
            out.unlink(missing_ok=True)
            rep = args.lifetimes_repeat if eng == "lifetimes" else args.repeat
            wargv = ["--worker", eng, "--id-kind", kind, "--data", str(path), "--out", str(out), "--repeat", str(rep),
                     "--threads", str(args.threads), "--order", args.order]
            log(f"{eng} / {kind}: running ({rep} timed run{'s' if rep > 1 else ''}) ...")
            load_now = os.getloadavg()[0]
            try:
                r = spawn(wargv, args.timeout, env)
                r["load"] = load_now
            except (RuntimeError, subprocess.TimeoutExpired) as exc:
                log(f"{eng} / {kind}: FAILED: {exc}")
                rows.append({"engine": eng, "id_kind": kind, "seconds": None, "check": "engine failed"})
                failed = True
                continue
            if eng == REFERENCE:
                r["check"] = "reference"
            else:
                diff = compare(out_dir / f"{REFERENCE}_{kind}.parquet", out)
                r["check"] = "equal" if diff is None else f"MISMATCH: {diff}"
                failed |= diff is not None
            if r["rows_out"] != args.customers:
                r["check"] += f" ({r['rows_out']} customers, expected {args.customers})"
                failed = True
            rows.append(r)
            log(f"{eng} / {kind}: {r['seconds']:.2f}s (runs {', '.join(f'{t:.2f}' for t in r['times'])}; "
                f"cpu {', '.join(f'{t:.2f}' for t in r['cpu_seconds'])}), "
                f"peak {r['peak_rss_mb']:.0f} MB, after load {r['rss_after_load_mb']:.0f} MB, "
                f"id {r['id_dtype']}, ts {r['ts_dtype']}; load {r.get('load', float('nan')):.2f}; {r['check']}")
    bench_s = time.perf_counter() - t_start
    load_after = os.getloadavg()

    profiles = []
    if args.profile:
        for kind in kinds:
            log(f"profile churnml / {kind} ...")
            try:
                profiles.append(spawn(["--profile-worker", "--id-kind", kind, "--data", str(path), "--repeat", str(args.repeat), "--order", args.order], args.timeout))
            except (RuntimeError, subprocess.TimeoutExpired) as exc:
                log(f"profile / {kind}: FAILED (does it still match churnml.features' internals?): {exc}")
                failed = True

    table = fmt_table(rows)
    v = info["versions"]
    dtypes = sorted({f"{r['engine']}: id {r['id_dtype']}, timestamp {r['ts_dtype']}" for r in rows if r.get("seconds") is not None})
    md = [
        "# rfm_summary benchmark",
        "",
        f"- date: {datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}",
        f"- command: `{command}`",
        f"- data: {args.customers:,} customers, {args.transactions:,} transactions, hourly timestamps over ~3 years "
        f"(stored as timestamp[{args.ts_unit}]), seed {args.seed}; `{path.relative_to(REPO)}`; rows given to the engines "
        + ("in time order (a raw log)" if args.order == "time" else "sorted by (customer_id, timestamp), churnml.io's layout (sort not timed)"),
        f"- machine: {info['nproc']} cores ({info['cpu']}), {info['mem_gb']} GB RAM, {info['platform']}",
        f"- python {info['python']}, pandas {v['pandas']}, numpy {v['numpy']}, pyarrow {v['pyarrow']}, lifetimes {v['lifetimes']}, "
        f"duckdb {v['duckdb']}, polars {v['polars']}, churnml {v['churnml']} (git {info['git'].get('commit', '?')}"
        f"{', src/ has uncommitted changes' if info['git'].get('src_dirty') else ''})",
        f"- seconds: best of {args.repeat} runs (lifetimes: {args.lifetimes_repeat}) of the summary computation only "
        f"(Parquet read not timed); each engine in its own process. duckdb and polars use "
        f"{args.threads or 'all'} thread(s); pandas and lifetimes are single-threaded; churnml is single-threaded except for "
        "varying-width string ids in a large raw log, whose compiled path (churnml._strids) uses all cores.",
        "- CPU s: user+system CPU time of the fastest run (about equal to seconds for a single-threaded engine "
        "on an otherwise idle machine; up to 2x for the multi-threaded ones).",
        "- peak RSS: `ru_maxrss` of the engine's process over the timed runs (high-water mark reset after loading); "
        "increment = peak - RSS right after loading the data.",
        f"- output check: frequency/recency/T exactly and monetary_value within {MONETARY_RTOL:g} relative of churnml's, row by row.",
        f"- benchmark wall time: {bench_s:.0f}s; 1-min load average {load_before[0]:.2f} before, {load_after[0]:.2f} after "
        f"(anything else running on the {info['nproc']} cores shows up as noise between runs)",
    ]
    if args.note:
        md.append(f"- note: {args.note}")
    md += [
        "",
        table,
        "",
        "Input dtypes as loaded: " + "; ".join(dtypes),
    ]
    if profiles:
        md += ["", "## churnml rfm_summary, stage by stage", "",
               "Best of the runs per stage (wall and CPU time separately). Stages call churnml.features' helpers; the breakdown rows re-run the "
               "sub-steps of `_encode` and `_period_stats` separately, or, where the compiled path applies (varying-width string ids), "
               "list the stages `churnml._strids.summarise` times itself (wall time, best run; not included in the sum).", ""]
        for p in profiles:
            md += [fmt_profile(p), ""]
    text = "\n".join(md).rstrip() + "\n"
    print(text)
    if str(args.results) != "-":
        args.results.parent.mkdir(parents=True, exist_ok=True)
        args.results.write_text(text)
        log(f"wrote {args.results}")
    if failed:
        log("FAILED: an engine failed or its output differs from churnml's")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
