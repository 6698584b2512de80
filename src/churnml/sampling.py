"""Seeded, order-free samples of customers, for fits whose cost should not grow with the log.

A customer is in the sample when the hash of ``(seed, customer id)`` is among the ``k``
smallest: the same ids and seed give the same sample on any machine and in any row order, and
a sample of ``k`` from a larger population contains the sample of any smaller ``k``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["customer_half", "customer_hash", "fraction_mask", "sample_mask"]


def customer_hash(ids, seed: int | str) -> np.ndarray:
    """uint64 SipHash of each id's text under a 16-character key derived from ``seed`` (an int,
    or text such as ``"fold-42"``; pandas' stable hash, the same on every platform)."""
    import hashlib

    key = hashlib.blake2b(str(seed).encode(), digest_size=8).hexdigest()
    values = pd.Index(ids).astype(str).to_numpy(dtype=object)
    return pd.util.hash_array(values, hash_key=key, categorize=False)


def customer_half(ids, seed: int | str) -> np.ndarray:
    """Deterministic 50/50 split of customer ids: True where the seeded :func:`customer_hash` of
    the id is odd. Stable across runs, machines and row orders."""
    return (customer_hash(ids, seed) & np.uint64(1)).astype(bool)


def sample_mask(ids, k: int | None, seed: int) -> np.ndarray:
    """Boolean mask selecting ``k`` of the (distinct) ``ids`` (all when ``k`` is None or at least
    their number), by :func:`customer_hash`; ties cannot occur for distinct ids in practice."""
    n = len(ids)
    if k is None or n <= k:
        return np.ones(n, dtype=bool)
    h = customer_hash(ids, seed)
    keep = np.zeros(n, dtype=bool)
    keep[np.argpartition(h, k - 1)[:k]] = True
    return keep


def fraction_mask(ids, fraction: float, seed) -> np.ndarray:
    """Boolean mask of the ids whose seeded hash falls in the lowest ``fraction`` of the hash
    range: about ``fraction`` of any set of ids, and the same customer is in or out in every
    set (every cutoff) hashed with the same seed."""
    if fraction >= 1:
        return np.ones(len(ids), dtype=bool)
    return customer_hash(ids, seed) < np.uint64(int(max(fraction, 0.0) * 2.0**64))
