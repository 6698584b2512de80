"""numba kernels of ``churnml._strids`` (imported on first use: numba takes ~0.5 s to import)."""

from __future__ import annotations

import numba as nb
import numpy as np

U = np.uint64
_P1 = U(11400714785074694791)
_P2 = U(14029467366897019727)
_P3 = U(1609587929392839161)
_P4 = U(9650029242287828579)
_P5 = U(2870177450012600261)


@nb.njit(inline="always")
def _rotl(x, r):
    return (x << U(r)) | (x >> U(64 - r))


@nb.njit(inline="always")
def _avalanche(h):
    h ^= h >> U(33)
    h *= _P2
    h ^= h >> U(29)
    h *= _P3
    h ^= h >> U(32)
    return h


@nb.njit(cache=True, nogil=True)
def _hash_rows(off, data, words, lo, hi, h1, h2, periods, end, shift, counts):
    """128-bit hash (``h1``, ``h2``) of strings ``lo..hi`` of one Arrow chunk (``words``
    is ``data``'s whole 8-byte words as little-endian uint64, for aligned loads), and the
    rows per bucket (top bits of ``h1``) among those with ``periods`` <= ``end``."""
    nw = len(words)
    for i in range(lo, hi):
        a = np.int64(off[i])
        b = np.int64(off[i + 1])
        ln = U(b - a)
        x = _P5 ^ (ln * _P1)
        y = _P4 ^ (ln * _P3)
        j = a
        q = a >> 3
        r = U(8 * (a & 7))
        rr = U(64) - r
        while j < b:
            # the 8 bytes from j on (zero past the string's end) as a little-endian word
            if q + 1 < nw:
                if r == U(0):
                    w = words[q]
                else:
                    w = (words[q] >> r) | (words[q + 1] << rr)
                if b - j < 8:
                    w &= (U(1) << U(8 * (b - j))) - U(1)
            else:  # the last bytes of the buffer: no whole word after them
                w = U(0)
                t = 0
                while t < 8 and j + t < b:
                    w |= U(data[j + t]) << U(8 * t)
                    t += 1
            x = _rotl(x ^ (w * _P2), 31) * _P1
            y = _rotl(y + (w * _P4), 27) * _P3
            j += 8
            q += 1
        x = _avalanche(x)
        h1[i - lo] = x
        h2[i - lo] = _avalanche(y)
        if periods[i - lo] <= end:
            counts[np.int64(x >> shift)] += 1


@nb.njit(cache=True, nogil=True)
def _scatter(h1, h2, periods, pmin, vbits, has_values, end, shift, lo, hi, pos, kb):
    """Rows ``lo..hi`` to their buckets, from ``pos[bucket]`` on (a stable counting sort),
    one 32-byte record per row in ``kb`` (one write stream per bucket): ``h1``, ``h2``,
    period relative to ``pmin`` << 32 | row, and the value's bits."""
    for i in range(lo, hi):
        p = periods[i]
        if p <= end:
            b = np.int64(h1[i] >> shift)
            k = pos[b]
            kb[k, 0] = h1[i]
            kb[k, 1] = h2[i]
            kb[k, 2] = (U(p - pmin) << U(32)) | U(i)
            if has_values:
                kb[k, 3] = vbits[i]
            pos[b] = k + 1


@nb.njit(cache=True, nogil=True)
def _summarise_buckets(starts, kb, kv, has_values, b_lo, b_hi):
    """Per customer of buckets ``b_lo..b_hi`` (numbered in bucket order, then by first
    row): first and last period, distinct periods, spend in the periods after the first,
    and the first row; from the records of ``_scatter`` (``kv``: ``kb`` viewed as float64)."""
    rows = starts[b_hi] - starts[b_lo]
    first = np.empty(rows, np.int32)
    last = np.empty(rows, np.int32)
    n_periods = np.empty(rows, np.int32)
    repeat_spend = np.zeros(rows if has_values else 0, np.float64)
    rep = np.empty(rows, np.int32)
    ck1 = np.empty(rows, np.uint64)
    ck2 = np.empty(rows, np.uint64)
    big = 16
    for b in range(b_lo, b_hi):
        big = max(big, starts[b + 1] - starts[b])
    lc = np.empty(big, np.int32)  # customer of each row of the bucket
    cap = 1024  # a bucket's table starts at 1,024 slots and doubles at half full
    while cap < 2 * big:
        cap *= 2
    tc = np.empty(cap, np.int32)  # hash slot -> customer (-1: empty)
    sp = np.empty(cap, np.int32)  # (customer, period) set, used when rows go back in time
    o = 0  # customers so far
    for b in range(b_lo, b_hi):
        a = starts[b]
        e = starts[b + 1]
        size = 1024
        mask = size - 1
        tc[:size] = -1
        m = 0
        in_order = True
        for k in range(a, e):
            x = kb[k, 0]
            y = kb[k, 1]
            p = np.int32(kb[k, 2] >> U(32))
            slot = np.int64(x & U(mask))
            while True:
                c = tc[slot]
                if c < 0:
                    c = o + m
                    m += 1
                    tc[slot] = c
                    ck1[c] = x
                    ck2[c] = y
                    first[c] = p
                    last[c] = p
                    n_periods[c] = 1
                    rep[c] = np.int32(kb[k, 2] & U(0xFFFFFFFF))
                    if 2 * m > size:  # grow the table and re-insert this bucket's customers
                        size *= 2
                        mask = size - 1
                        tc[:size] = -1
                        for c2 in range(o, o + m):
                            s2 = np.int64(ck1[c2] & U(mask))
                            while tc[s2] >= 0:
                                s2 = (s2 + 1) & mask
                            tc[s2] = c2
                    break
                if ck1[c] == x and ck2[c] == y:
                    if has_values and p != first[c]:  # exact while the rows are in time order
                        repeat_spend[c] += kv[k, 3]
                    if p > last[c]:  # a later period (rows in time order so far)
                        n_periods[c] += 1
                        last[c] = p
                    elif p < last[c]:
                        in_order = False
                        if p < first[c]:
                            first[c] = p
                    break
                slot = (slot + 1) & mask
            lc[k - a] = c
        if not in_order:
            # a customer's rows go back in time: count distinct (customer, period) pairs
            # with a set instead of counting changes
            for c in range(o, o + m):
                n_periods[c] = 0
            ssize = 16
            while ssize < 2 * (e - a):
                ssize *= 2
            smask = ssize - 1
            sp[:ssize] = -1
            for k in range(a, e):
                c = lc[k - a]
                p = np.int32(kb[k, 2] >> U(32))
                h = (U(c) * _P1) ^ (U(p) * _P2)
                slot = np.int64((h >> U(24)) & U(smask))
                while True:
                    j = sp[slot]
                    if j < 0:
                        sp[slot] = k - a
                        n_periods[c] += 1
                        break
                    if lc[j] == c and np.int32(kb[a + j, 2] >> U(32)) == p:
                        break
                    slot = (slot + 1) & smask
        if has_values and not in_order:  # first periods changed on the way: sum again
            for c in range(o, o + m):
                repeat_spend[c] = 0.0
            for k in range(a, e):
                c = lc[k - a]
                if np.int32(kb[k, 2] >> U(32)) != first[c]:
                    repeat_spend[c] += kv[k, 3]
        o += m
    return first[:o], last[:o], n_periods[:o], repeat_spend[:o] if has_values else repeat_spend, rep[:o]


@nb.njit(cache=True, nogil=True)
def _copy_strings(off, data, rows, out_off, out_data, dest):
    """Copy strings ``rows`` of one chunk to ``out_data`` at ``out_off[dest + t]``."""
    for t in range(len(rows)):
        i = rows[t]
        a = np.int64(off[i])
        b = np.int64(off[i + 1])
        p = out_off[dest + t]
        for j in range(a, b):
            out_data[p + j - a] = data[j]


@nb.njit(cache=True, nogil=True)
def _place_strings(off, data, lo, hi, dest, out_data):
    """Copy strings ``lo..hi`` to ``out_data[dest[i]:]``."""
    for i in range(lo, hi):
        a = np.int64(off[i])
        b = np.int64(off[i + 1])
        p = dest[i]
        for j in range(a, b):
            out_data[p + j - a] = data[j]


@nb.njit(inline="always")
def _run_end(keys, a, hi):
    """End of the run of keys equal to ``keys[a]`` that starts at ``a`` (at most ``hi``)."""
    e = a + 1
    while e < hi and keys[e] == keys[a]:
        e += 1
    return e


@nb.njit(inline="always")
def _prefix(off, data, i, byte):
    """Big-endian 8 bytes of string ``i`` from ``byte`` on, zero-padded past its end."""
    a = off[i] + byte
    b = off[i + 1]
    w = U(0)
    for t in range(8):
        w <<= U(8)
        if a + t < b:
            w |= U(data[a + t])
    return w


@nb.njit(inline="always")
def _less(off, data, i, j, byte):
    """String i < string j, given that their first ``byte`` bytes are equal."""
    a = off[i] + byte
    b = off[i + 1]
    c = off[j] + byte
    d = off[j + 1]
    n = min(b - a, d - c)
    for t in range(n):
        x = data[a + t]
        y = data[c + t]
        if x != y:
            return x < y
    return b - a < d - c


@nb.njit(cache=True, nogil=True)
def _prefixes(off, data, idx, lo, hi, byte, keys):
    for k in range(lo, hi):
        keys[k] = _prefix(off, data, idx[k], byte)


@nb.njit(cache=True, nogil=True)
def _radix_sort(keys, idx, aux, has_aux, lo, hi, tk, ti, ta):
    """Sort ``keys[lo:hi]`` (uint64) ascending, ``idx[lo:hi]`` (and with ``has_aux``
    ``aux[lo:hi]``) moved with them: LSD radix, 8 bits a pass, all histograms counted in one
    read, passes whose byte is the same for every key skipped, buffers swapped between
    passes (``tk``, ``ti``, ``ta``: scratch of at least ``hi - lo``); stable."""
    n = hi - lo
    if n < 2:
        return
    cnt = np.zeros((8, 257), np.int64)
    for k in range(lo, hi):
        x = keys[k]
        for d in range(8):
            cnt[d, np.int64((x >> U(8 * d)) & U(255)) + 1] += 1
    src_k = keys[lo:hi]
    src_i = idx[lo:hi]
    src_a = aux[lo:hi] if has_aux else aux[:0]
    dst_k = tk[:n]
    dst_i = ti[:n]
    dst_a = ta[:n] if has_aux else ta[:0]
    swapped = False
    for d in range(8):
        if cnt[d].max() == n:  # every key has the same byte here
            continue
        for v in range(256):
            cnt[d, v + 1] += cnt[d, v]
        sh = U(8 * d)
        for k in range(n):
            x = src_k[k]
            v = np.int64((x >> sh) & U(255))
            t = cnt[d, v]
            dst_k[t] = x
            dst_i[t] = src_i[k]
            if has_aux:
                dst_a[t] = src_a[k]
            cnt[d, v] = t + 1
        src_k, dst_k = dst_k, src_k
        src_i, dst_i = dst_i, src_i
        src_a, dst_a = dst_a, src_a
        swapped = not swapped
    if swapped:  # the sorted data is in the scratch buffers
        keys[lo:hi] = src_k
        idx[lo:hi] = src_i
        if has_aux:
            aux[lo:hi] = src_a


@nb.njit(cache=True, nogil=True)
def _resolve_ties(off, data, idx, keys, lo, hi, byte, tk, ti):
    """``idx[lo:hi]`` is sorted by ``keys`` (8 bytes of each string from ``byte`` on): order
    each run of equal keys by the rest of its strings, by full comparison when the run is
    short or no string of it goes on past these 8 bytes, else by the next 8 bytes (a stack)."""
    stack = [(lo, hi, byte)]
    while len(stack):
        lo, hi, byte = stack.pop()
        a = lo
        while a < hi:
            e = _run_end(keys, a, hi)
            if e - a > 1:
                nxt = byte + 8
                longer = False
                for k in range(a, e):
                    if off[idx[k] + 1] - off[idx[k]] > nxt:
                        longer = True
                        break
                if not longer or e - a <= 24:
                    for k in range(a + 1, e):
                        v = idx[k]
                        t = k - 1
                        while t >= a and _less(off, data, v, idx[t], byte):
                            idx[t + 1] = idx[t]
                            t -= 1
                        idx[t + 1] = v
                else:
                    for k in range(a, e):
                        keys[k] = _prefix(off, data, idx[k], nxt)
                    _radix_sort(keys, idx, keys, False, a, e, tk, ti, tk)
                    stack.append((a, e, nxt))
            a = e


@nb.njit(cache=True, nogil=True)
def _argsort_strings(off, data, idx):
    """``idx`` (string numbers) sorted by their strings. The first two 8-byte words of every
    string are read in ``idx`` order (sequentially) and sorted by radix, so only strings that
    share their first 16 bytes are compared in full (random access)."""
    m = len(idx)
    idx = idx.copy()
    k0 = np.empty(m, np.uint64)
    k1 = np.empty(m, np.uint64)
    tk = np.empty(m, np.uint64)
    ti = np.empty(m, np.int64)
    ta = np.empty(m, np.uint64)
    for k in range(m):
        k0[k] = _prefix(off, data, idx[k], 0)
        k1[k] = _prefix(off, data, idx[k], 8)
    _radix_sort(k0, idx, k1, True, 0, m, tk, ti, ta)
    a = 0
    while a < m:
        e = _run_end(k0, a, m)
        if e - a > 1:  # equal first 8 bytes: by the next 8 (already in k1), then the rest
            if e - a <= 24:
                for k in range(a + 1, e):
                    v = idx[k]
                    w = k1[k]
                    t = k - 1
                    while t >= a and k1[t] > w:
                        idx[t + 1] = idx[t]
                        k1[t + 1] = k1[t]
                        t -= 1
                    idx[t + 1] = v
                    k1[t + 1] = w
            else:
                _radix_sort(k1, idx, k1, False, a, e, tk, ti, ta)
            b = a
            while b < e:
                f = _run_end(k1, b, e)
                if f - b > 1:
                    _resolve_ties(off, data, idx, k1, b, f, 8, tk, ti)
                b = f
        a = e
    return idx
