"""Atomic file output: write to a temporary file in the target folder, then rename.

Temporary files are named ``.<target name>.<pid>@<host>.<random>.tmp``: unique per writer
(``tempfile.mkstemp``), so concurrent writers of the same target never share or delete each
other's; the last rename wins. A writer cleans up its own temporary file when it fails, and
removes the ones a killed writer left behind only when it can tell that writer is gone (same
host, process no longer running, file not locked); anything else is left alone.

Permissions (outputs hold personal data): a file that already exists keeps its mode when it is
rewritten (a list restricted to 0600 stays 0600); a new file gets the process-wide file mode,
0600 (owner only) unless :func:`set_file_mode` changed it (the CLI and ``jobs.run`` set it from
``output.file_mode``). The mode is applied exactly, not filtered by the umask. Folders that
``atomic_path`` creates get the same mode plus the execute bit wherever read is set (0600 ->
0700, 0640 -> 0750). Temporary files are created 0600 beside the target.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import socket
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pandas as pd

try:  # advisory lock held on a temporary file while its writer is alive (POSIX only)
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

__all__ = ["DEFAULT_FILE_MODE", "atomic_path", "file_mode", "json_safe", "json_text", "parse_mode", "set_file_mode",
           "write_json", "write_table"]

DEFAULT_FILE_MODE = 0o600
_file_mode = DEFAULT_FILE_MODE

_HOST = re.sub(r"[^A-Za-z0-9_-]", "_", socket.gethostname() or "host")


def parse_mode(text: str | int) -> int:
    """An octal permission string ("0600", "640", "0o644") as an int; ValueError when it is not
    one, grants more than rwxrwxrwx, or does not let the owner read and write."""
    if isinstance(text, bool) or not isinstance(text, str):
        raise ValueError(f"write the mode as a quoted octal string such as \"0640\", not {text!r}")
    raw = text.strip().lower().removeprefix("0o")
    if not re.fullmatch(r"[0-7]{3,4}", raw):
        raise ValueError(f"{text!r} is not an octal file mode such as \"0600\" or \"0640\"")
    mode = int(raw, 8)
    if mode > 0o777:
        raise ValueError(f"{text!r}: only permission bits (at most 0777), no setuid/setgid/sticky")
    if mode & 0o600 != 0o600:
        raise ValueError(f"{text!r}: the owner must be able to read and write (0600 at least)")
    return mode


def set_file_mode(mode: str | int | None) -> int:
    """Set the mode of files churnml creates from now on in this process (``None``: 0600);
    return the previous one. Existing files keep their own mode when rewritten."""
    global _file_mode
    previous = _file_mode
    if mode is None:
        _file_mode = DEFAULT_FILE_MODE
    elif isinstance(mode, int) and not isinstance(mode, bool):
        _file_mode = parse_mode(f"{mode:o}")
    else:
        _file_mode = parse_mode(mode)
    return previous


def file_mode() -> int:
    """The mode new output files get in this process."""
    return _file_mode


def _dir_mode(mode: int) -> int:
    return mode | ((mode & 0o444) >> 2)


def _make_dirs(folder: Path) -> None:
    """Create ``folder`` and missing parents with the directory mode (existing ones untouched)."""
    missing = []
    while not folder.exists():
        missing.append(folder)
        if folder.parent == folder:
            break
        folder = folder.parent
    for d in reversed(missing):
        try:
            d.mkdir()
        except FileExistsError:
            continue  # another writer made it
        os.chmod(d, _dir_mode(_file_mode))


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
    writer's temporary file and nothing else. The result keeps the mode of the file it replaces,
    else gets :func:`file_mode` (0600 by default); see the module docstring.
    """
    path = Path(path)
    _make_dirs(path.parent)
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
        try:  # a rewrite keeps the previous file's mode; a new file gets the configured one
            mode = stat.S_IMODE(os.stat(path).st_mode)
        except FileNotFoundError:
            mode = _file_mode
        os.chmod(tmp_path, mode)
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


def json_safe(obj):
    """``obj`` with every non-finite float (NaN, +-Infinity, numpy or Python, pandas NA/NaT)
    replaced by ``None``, numpy scalars and arrays as Python values, tuples and sets as lists;
    dicts and lists recursively. Other objects are left for ``default=str``."""
    if obj is None or isinstance(obj, (bool, int, str)):
        return obj
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set, frozenset)):
        return [json_safe(v) for v in obj]
    import numpy as np

    if isinstance(obj, np.ndarray):
        return json_safe(obj.tolist())
    if isinstance(obj, np.generic):
        return json_safe(obj.item())
    if obj is pd.NA or obj is pd.NaT:
        return None
    return obj


def json_text(obj, *, indent: int | None = 2) -> str:
    """Valid JSON text of ``obj`` (RFC 8259: no NaN or Infinity; those become ``null``, see
    :func:`json_safe`); objects JSON cannot hold are written as their ``str``."""
    return json.dumps(json_safe(obj), indent=indent, default=str, allow_nan=False)


def write_json(path: str | Path, obj, *, indent: int | None = 2) -> Path:
    """Write ``obj`` as valid JSON (:func:`json_text`) to ``path`` atomically; return the path."""
    path = Path(path)
    text = json_text(obj, indent=indent)
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return path


def write_table(df: pd.DataFrame, path: str | Path, *, index: bool = True) -> Path:
    """Write ``df`` as Parquet or CSV (by the file extension) atomically; return the path. CSV
    text cells that a spreadsheet would run as a formula get a leading quote
    (:func:`churnml.excel.neutralise_formulas`); Parquet keeps values as they are."""
    path = Path(path)
    suffixes = "".join(path.suffixes[-2:]).lower()
    with atomic_path(path) as tmp:
        if suffixes.endswith(".parquet"):
            df.to_parquet(tmp, index=index)
        elif suffixes.endswith(".csv") or suffixes.endswith(".csv.gz"):
            from churnml.excel import neutralise_formulas

            neutralise_formulas(df).to_csv(tmp, index=index, compression="gzip" if suffixes.endswith(".gz") else None)
        else:
            from churnml.errors import DataError

            raise DataError(f"cannot write {path}: use a .parquet, .csv or .csv.gz file name")
    return path
