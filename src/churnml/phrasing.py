"""Number and word formatting shared by the reason phrasing (:mod:`churnml.segments`) and the
reasons audit (:mod:`churnml.audit`), which recomputes each sentence's text from the customer's
features: one implementation, so that both write the same text for the same value.

Vectorised helpers (``each``, ``amounts``, ``pcts``, ``counted``, ``ago``) format each distinct
value once (1M customers have far fewer distinct values)."""

from __future__ import annotations

import numpy as np

__all__ = ["EVENT_NOUNS", "ago", "amount", "amounts", "counted", "each", "event_noun", "integer", "number", "pct", "pcts",
           "plural", "select", "span"]


def each(x: np.ndarray, fn, decimals: int | None = None) -> np.ndarray:
    """``fn`` of each value, called once per distinct value (rounded to ``decimals`` first: finer
    than any text shows)."""
    x = np.asarray(x, dtype=float)
    if not len(x):
        return np.empty(0, dtype=object)
    u, inv = np.unique(x if decimals is None else np.round(x, decimals), return_inverse=True)
    return np.array([fn(float(v)) for v in u] + [""], dtype=object)[:-1][inv.ravel()]


def amounts(x: np.ndarray) -> np.ndarray:
    """:func:`amount` of each value (quantised to what it shows first: few distinct values)."""
    x = np.asarray(x, dtype=float)
    return each(np.where(np.abs(x) >= 100, np.round(x), np.round(x, 2)), amount)


def pcts(p: np.ndarray) -> np.ndarray:
    """:func:`pct` of each probability (quantised to whole percents first)."""
    q = 100 * np.asarray(p, dtype=float)
    return each(np.where(q < 1, 0.001, np.where(q > 99, 0.999, np.round(q) / 100)), pct)


def amount(v: float) -> str:
    """Currency: "12.50", "35" (whole amounts without decimals), "1,234" (from 100 on, rounded)."""
    if not np.isfinite(v):
        return "unknown"
    if abs(v) >= 100:
        s = f"{v:,.0f}"
    else:
        r = round(v, 2)
        s = f"{r:.0f}" if r == round(r) else f"{r:.2f}"
    return "0" if s.lstrip("-").strip("0.") == "" else s


def integer(v: float) -> str:
    """A whole number with thousands separators ("1,204")."""
    return f"{int(round(v)):,}" if np.isfinite(v) else "unknown"


def number(v: float) -> str:
    """A number of no known unit: whole numbers as such, otherwise 3 significant digits."""
    if not np.isfinite(v):
        return "unknown"
    if abs(v) >= 1000 or v == round(v):
        return integer(v)
    return f"{v:.3g}"


def span(days: float) -> str:
    """A duration in days as days (< 60), months (< 24) or years (one decimal)."""
    if not np.isfinite(days):
        return "an unknown time"
    d = max(int(round(days)), 1)
    if d < 60:
        return f"{d} day" + ("" if d == 1 else "s")
    months = int(round(days / 30.44))
    if months < 24:
        return f"{months} months"
    y = round(days / 365.25, 1)
    return (f"{y:.0f}" if y == round(y) else f"{y:.1f}") + " years"


def pct(p: float) -> str:
    """A probability as a whole percent ("83%", "under 1%", "over 99%")."""
    if not np.isfinite(p):
        return "unknown"
    q = 100 * p
    return "under 1%" if q < 1 else "over 99%" if q > 99 else f"{int(round(q))}%"


def plural(word: str) -> str:
    """English plural of a noun ("purchase" -> "purchases", "inquiry" -> "inquiries")."""
    if word.endswith(("s", "x", "ch", "sh")):
        return word + "es"
    if word.endswith("y") and len(word) > 1 and word[-2] not in "aeiou":
        return word[:-1] + "ies"
    return word + "s"


def counted(x: np.ndarray, one: str, many: str | None = None) -> np.ndarray:
    """ "1 purchase", "3 purchases", "1,204 purchases" (rounded to whole numbers)."""
    r = np.round(np.asarray(x, dtype=float))
    return each(r, integer) + np.where(r == 1, " " + one, " " + (many or plural(one))).astype(object)


def select(cond, a, b) -> np.ndarray:
    """``np.where`` as an object (text) array."""
    return np.where(cond, a, b).astype(object)


def ago(d: np.ndarray) -> np.ndarray:
    """Days ago as text: "today", "yesterday", "5 days ago"."""
    r = np.round(d)
    return select(r <= 0, "today", select(r == 1, "yesterday", counted(r, "day") + " ago"))


EVENT_NOUNS: dict[str, tuple[str, str]] = {"nps": ("NPS answer", "NPS answers"), "csat": ("CSAT answer", "CSAT answers")}
"""Event type -> (singular, plural) noun where it is not the type's name in words."""


def event_noun(kind: str) -> tuple[str, str]:
    """Singular and plural noun of an event type ("support_ticket" -> "support ticket(s)")."""
    if kind in EVENT_NOUNS:
        return EVENT_NOUNS[kind]
    one = kind.replace("_", " ")
    return one, plural(one)
