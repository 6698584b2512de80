"""Atomic file output: write to a temporary file in the target folder, then rename.

Temporary files are named ``.<target name>.<pid>@<host>.<random>.tmp``: unique per writer
(``tempfile.mkstemp``), so concurrent writers of the same target never share or delete each
other's; the last rename wins. A writer cleans up its own temporary file when it fails, and
removes the ones a killed writer left behind only when it can tell that writer is gone (same
host, process no longer running, file not locked); anything else is left alone.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pandas as pd

try:  # advisory lock held on a temporary file while its writer is alive (POSIX only)
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

__all__ = ["atomic_path", "write_table"]

_HOST = re.sub(r"[^A-Za-z0-9_-]", "_", socket.gethostname() or "host")


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # exists (another user's), or cannot tell: treat as alive
    return True


def _locked(path: Path) -> bool:
    """True when another open file holds the writer's lock on ``path`` (or we cannot tell)."""
    if fcntl is None:  # pragma: no cover
        return False
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(fd)  # closing releases the lock we may have taken
    return False


def _remove_dead_temps(path: Path) -> None:
    """Remove temporary files of ``path`` left by writers on this host that no longer run."""
    prefix = _prefix(path)
    pattern = re.compile(re.escape(prefix) + r"(\d+)@([A-Za-z0-9_-]+)\.[^.]+\.tmp")
    for stale in path.parent.glob(f"{_glob_escape(prefix)}*@*.tmp"):
        m = pattern.fullmatch(stale.name)
        if not m or m.group(2) != _HOST or _alive(int(m.group(1))) or _locked(stale):
            continue
        with contextlib.suppress(FileNotFoundError):
            stale.unlink()


def _prefix(path: Path) -> str:
    return f".{path.name[:120]}."


def _glob_escape(text: str) -> str:
    return re.sub(r"([*?\[])", r"[\1]", text)


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDWR if os.name == "nt" else os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(folder: Path) -> None:
    """Persist a rename (POSIX); a no-op where directories cannot be opened or synced."""
    if os.name == "nt":  # pragma: no cover
        return
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # pragma: no cover
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover - e.g. some network file systems
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path`` atomically.

    The file is fsynced before the rename and the folder after it, so a crash or power loss
    leaves the previous file (or none) in place, never a partial one. An exception removes this
    writer's temporary file and nothing else.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_dead_temps(path)
    fd, tmp = tempfile.mkstemp(prefix=f"{_prefix(path)}{os.getpid()}@{_HOST}.", suffix=".tmp", dir=path.parent)
    tmp_path = Path(tmp)
    try:
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # a fresh file: never contended
        yield tmp_path
        if os.environ.get("CHURNML_FAULT") == "kill-before-rename":  # crash test hook
            import signal

            os.kill(os.getpid(), signal.SIGKILL)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp_path, 0o666 & ~umask)  # mkstemp makes 0600; outputs get the usual mode
        _fsync_file(tmp_path)
        os.close(fd)
        fd = -1
        os.replace(tmp_path, path)
        _fsync_dir(path.parent)
    finally:
        if fd >= 0:
            os.close(fd)
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()  # ours: left only when the write failed


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
