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
