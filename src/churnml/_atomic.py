"""Atomic file output: write to a temporary file in the target folder, then rename."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pandas as pd

__all__ = ["atomic_path", "write_table"]


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path`` atomically.

    A crash or exception leaves the previous file (or none) in place, never a partial one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in path.parent.glob(f".{path.name}.*.tmp"):  # left by a killed run
        stale.unlink(missing_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        if os.environ.get("CHURNML_FAULT") == "kill-before-rename":  # crash test hook
            import signal

            os.kill(os.getpid(), signal.SIGKILL)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp_path, 0o666 & ~umask)  # mkstemp makes 0600; outputs get the usual mode
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_table(df: pd.DataFrame, path: str | Path, *, index: bool = True) -> Path:
    """Write ``df`` as Parquet or CSV (by the file extension) atomically; return the path."""
    path = Path(path)
    suffixes = "".join(path.suffixes[-2:]).lower()
    with atomic_path(path) as tmp:
        if suffixes.endswith(".parquet"):
            df.to_parquet(tmp, index=index)
        elif suffixes.endswith(".csv") or suffixes.endswith(".csv.gz"):
            df.to_csv(tmp, index=index, compression="gzip" if suffixes.endswith(".gz") else None)
        else:
            from churnml.errors import DataError

            raise DataError(f"cannot write {path}: use a .parquet, .csv or .csv.gz file name")
    return path
