"""Compiled (numba) ``rfm_summary`` for string customer ids of varying width in a raw log.

E-mails, UUIDs or ``"cust-7"`` in time order cannot become codes without hashing, and a
hash table of 1M customers is far bigger than the CPU cache: Arrow's ``dictionary_encode``
spends 3-5 s on 10M rows, nearly all of it waiting on memory. Here instead:

1. every id is hashed to 128 bits straight from the Arrow buffers (two 64-bit
   multiply-rotate chains over 8-byte words, the length mixed in; all cores);
2. rows are bucketed by the hash's top bits (one counting pass, one stable scatter), so
   each bucket's customers (a few thousand) fit in the L2 cache;
3. each bucket is summarised on its own (first/last period, distinct periods, spend after
   the first period), in row order, so sums are added in the same order as NumPy's
   ``bincount`` and equal to the last bit;
4. only the distinct ids (one row each) are copied out and sorted: their first 16 bytes
   by radix, read in order, and only ids that share them compared in full. Byte order of
   UTF-8 is code point order, the order pandas and lifetimes give.

Two ids are taken as one customer when both 64-bit hashes (and so their lengths) agree.
For 1M distinct ids the chance that two different ids agree on all 128 bits is about
``1e12 / 2**129`` (1e-27): far below the chance of a memory error. The result does not
depend on the number of threads or buckets (tested). Memory: about 32 bytes per row on top
of the log (10M rows: ~0.8 GB more at peak than Arrow's path). The kernels
(``churnml._strids_kernels``) compile on first use (about 15 s on a 2-core VM, once) and
are cached on disk by numba; ``churnml.features`` calls this module only for logs of at
least ``MIN_ROWS`` rows, where it pays.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from churnml.features import _string_chunks

# Rows from which rfm_summary takes this path. Measured (200k customers, varying-width ids):
# at 2M rows Arrow 0.77 s, compiled 0.25 s once loaded, 1.5 s on the first call in a process
# (importing numba and loading the cached machine code: ~1.1 s); at 10M rows Arrow 5-6 s,
# compiled 1.2-1.5 s (2.7 s on a first call).
MIN_ROWS = 2_000_000
MAX_THREADS = 8
PARALLEL_SORT_MIN = 100_000  # strings; below this one thread sorts
BUCKET_BITS = 0

__all__ = ["MIN_ROWS", "argsort_strings", "available", "summarise", "supports"]


def available() -> bool:
    """Whether the numba kernels import (numba is a dependency; if it is missing or broken,
    e.g. built for another NumPy, rfm_summary uses Arrow's hash table instead)."""
    global _AVAILABLE
    if _AVAILABLE is None:
        try:
            from churnml import _strids_kernels  # noqa: F401
        except Exception:  # noqa: BLE001 - any failure to import means: not available
            _AVAILABLE = False
        else:
            _AVAILABLE = True
    return _AVAILABLE


_AVAILABLE: bool | None = None


def threads() -> int:
    """Threads used: the cores this process may run on, at most ``MAX_THREADS``."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(cores, MAX_THREADS))


def argsort_strings(off: np.ndarray, data: np.ndarray, n_threads: int = 1) -> np.ndarray:
    """Indices that sort the strings given as Arrow offsets and UTF-8 bytes, in byte (= code
    point) order. With ``n_threads`` > 1 the strings are first split by their 8-byte prefix at
    sampled quantiles, and each part is sorted on its own thread (nothing to merge)."""
    from churnml import _strids_kernels as K

    off = np.asarray(off, dtype=np.int64)
    m = len(off) - 1
    if n_threads <= 1 or m < PARALLEL_SORT_MIN:
        return K._argsort_strings(off, data, np.arange(m, dtype=np.int64))
    keys = np.empty(m, np.uint64)
    K._prefixes(off, data, np.arange(m, dtype=np.int64), 0, m, 0, keys)
    sample = np.sort(keys[:: max(1, m // 4096)])
    splits = np.unique(sample[(np.arange(1, n_threads) * len(sample)) // n_threads])
    part = np.searchsorted(splits, keys, side="right")  # equal prefixes land in one part
    parts = [np.flatnonzero(part == t) for t in range(len(splits) + 1)]
    with ThreadPoolExecutor(len(parts)) as pool:
        done = list(pool.map(lambda ix: K._argsort_strings(off, data, ix), parts))
    return np.concatenate(done)


def _mark(timings, name):
    """Add the seconds since the last mark to ``timings[name]`` (profiling; None: off)."""
    import time

    if timings is not None:
        now = time.perf_counter()
        if name is not None:
            timings[name] = timings.get(name, 0.0) + now - timings["_t"]
        timings["_t"] = now


def supports(n_rows: int, periods: np.ndarray, end: int) -> bool:
    """Whether the compiled summary applies: numba present and row numbers and periods
    (relative to the first) fit in 32 bits."""
    return available() and n_rows < 2**31 and int(end) - int(periods.min()) < 2**31


def _aligned_words(data: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``data`` (bytes) and its whole 8-byte words as uint64, copying ``data`` if its start is
    not 8-byte aligned (Arrow's buffers are 64-byte aligned, so this is rare)."""
    if data.ctypes.data % 8:
        data = np.frombuffer(data.tobytes(), np.uint8)
    return data, data[: len(data) // 8 * 8].view(np.uint64)


def summarise(arr, periods: np.ndarray, values: np.ndarray | None, end: int, timings: dict | None = None):
    """Per customer of the string ids ``arr`` (a pyarrow string array without nulls, one row
    per transaction): the label, first and last period, number of distinct periods and, with
    ``values`` (one per row), the sum of the values in the periods after the customer's
    first. Rows with ``periods > end`` are left out (customers with only such rows too).

    Returns ``(labels, first, last, n_periods, repeat_spend)``: labels a pyarrow
    ``large_string`` array in ascending order, the rest NumPy arrays in the same order
    (``repeat_spend`` None without ``values``). ``timings`` collects seconds per stage.
    """
    import pyarrow as pa

    from churnml import _strids_kernels as K

    _mark(timings, None)
    chunks = [_aligned_words(data) + (off,) for off, data in _string_chunks(arr)]
    n = sum(len(off) - 1 for _, _, off in chunks)
    if not supports(n, periods, end):
        raise ValueError("rows or periods do not fit the compiled summary; check supports() first")
    nt = threads()
    pmin = int(periods.min())
    vals = np.ascontiguousarray(values, dtype=np.float64) if values is not None else np.empty(0)
    # 64-128k rows per bucket: fewer buckets make the scatter faster, more make each
    # bucket's customers fit the L2 cache (measured on 10M rows: 7 bits best, 5-9 within 15%)
    bits = BUCKET_BITS or int(min(10, max(1, (n // 65_536).bit_length())))
    n_buckets = 1 << bits
    shift = np.uint64(64 - bits)
    # row ranges within one chunk, several per thread so that a thread the OS holds up does
    # not hold up the rest: (data, words, offsets, first row in chunk, end, first global row, end)
    tasks, pos = [], 0
    per_task = max(1, -(-n // (8 * nt)))
    for data, words, off in chunks:
        m = len(off) - 1
        for lo in range(0, m, per_task):
            hi = min(m, lo + per_task)
            tasks.append((data, words, off, lo, hi, pos + lo, pos + hi))
        pos += m
    with ThreadPoolExecutor(nt) as pool:
        run = lambda f, items: list(pool.map(f, items))  # noqa: E731
        h1 = np.empty(n, np.uint64)
        h2 = np.empty(n, np.uint64)
        counts = np.zeros((len(tasks), n_buckets), np.int64)

        def hash_task(t):
            data, words, off, lo, hi, g0, g1 = tasks[t]
            K._hash_rows(off, data, words, lo, hi, h1[g0:g1], h2[g0:g1], periods[g0:g1], end, shift, counts[t])

        run(hash_task, range(len(tasks)))
        _mark(timings, "hash")
        # a stable counting sort by bucket: task t's rows go to pos[t, bucket] on
        starts = np.zeros(n_buckets + 1, np.int64)
        np.cumsum(counts.sum(axis=0), out=starts[1:])
        pos = starts[:-1] + np.cumsum(counts, axis=0) - counts
        rows = int(starts[-1])
        kb = np.empty((rows, 4 if values is not None else 3), np.uint64)
        vbits = vals.view(np.uint64)
        run(lambda t: K._scatter(h1, h2, periods, pmin, vbits, values is not None, end, shift, tasks[t][5], tasks[t][6],
                                 pos[t], kb), range(len(tasks)))
        del h1, h2
        _mark(timings, "scatter")
        # contiguous ranges of buckets with about equal rows, a few per thread
        cuts = np.searchsorted(starts, np.linspace(0, rows, 4 * nt + 1)[1:-1])
        bounds = [0, *sorted({int(c) for c in cuts}), n_buckets]
        kv = kb.view(np.float64)
        parts = run(lambda r: K._summarise_buckets(starts, kb, kv, values is not None, r[0], r[1]),
                    [(lo, hi) for lo, hi in zip(bounds, bounds[1:]) if hi > lo])
        del kb, kv
        first, last, n_periods, repeat, rep = (np.concatenate([p[j] for p in parts]) for j in range(5))
        m = len(first)
        _mark(timings, "summarise_buckets")
        # labels: each customer's first row copied out chunk by chunk, in row order ...
        chunk_rows = np.cumsum([0] + [len(off) - 1 for _, _, off in chunks])
        cid = np.searchsorted(chunk_rows, rep, side="right") - 1
        by_row = np.argsort(cid.astype(np.uint16 if len(chunks) < 2**16 else np.int64), kind="stable")
        rows_sorted = rep[by_row].astype(np.int64)
        seg = np.searchsorted(cid[by_row], np.arange(len(chunks) + 1))
        lens = np.empty(m, np.int64)
        for c, (_, _, off) in enumerate(chunks):
            loc = rows_sorted[seg[c] : seg[c + 1]] - chunk_rows[c]
            lens[seg[c] : seg[c + 1]] = off[loc + 1] - off[loc]
        out_off = np.zeros(m + 1, np.int64)
        np.cumsum(lens, out=out_off[1:])
        out_data = np.empty(int(out_off[-1]), np.uint8)
        run(lambda c: K._copy_strings(chunks[c][2], chunks[c][0], rows_sorted[seg[c] : seg[c + 1]] - chunk_rows[c],
                                    out_off, out_data, int(seg[c])),
            [c for c in range(len(chunks)) if seg[c + 1] > seg[c]])
        _mark(timings, "copy_labels")
        # ... sorted ...
        order = argsort_strings(out_off, out_data, nt)
        _mark(timings, "sort_labels")
        # ... and written in sorted order (read in their order, each written to its place)
        lab_off = np.zeros(m + 1, np.int64)
        np.cumsum(lens[order], out=lab_off[1:])
        lab_data = np.empty(int(lab_off[-1]), np.uint8)
        rank = np.empty(m, np.int64)
        rank[order] = np.arange(m)
        dest = lab_off[rank]
        cuts = np.linspace(0, m, nt + 1).astype(np.int64)
        run(lambda t: K._place_strings(out_off, out_data, cuts[t], cuts[t + 1], dest, lab_data), range(nt))
    labels = pa.LargeStringArray.from_buffers(m, pa.py_buffer(lab_off), pa.py_buffer(lab_data))
    customers = by_row[order]
    _mark(timings, "labels_out")
    return (labels, first[customers].astype(np.int64) + pmin, last[customers].astype(np.int64) + pmin,
            n_periods[customers].astype(np.int64), repeat[customers] if values is not None else None)
