"""Exceptions churnml raises; the CLI maps them to exit codes: 2 bad input or config (fix the
data), 3 model problem (fix or retrain the model), 4 environment (I/O, tracking store: retry later
or fix the machine). Anything else is a bug: exit 1 with a traceback."""

from __future__ import annotations

__all__ = ["ChurnmlError", "ConfigError", "DataError", "EnvironmentFault", "ModelError"]


class ChurnmlError(Exception):
    """Base class of every error churnml raises on purpose."""

    exit_code = 1


class DataError(ChurnmlError, ValueError):
    """Bad input data: missing column, unparseable value, empty file, nothing in scope."""

    exit_code = 2


class ConfigError(ChurnmlError, ValueError):
    """Invalid configuration: unknown key, wrong type, missing file."""

    exit_code = 2


class ModelError(ChurnmlError):
    """A model is missing, fails to fit, or does not match the data's schema."""

    exit_code = 3


class EnvironmentFault(ChurnmlError):
    """The environment failed, not the data or the model: a file cannot be read or written (disk
    full, read-only file system, permission denied, a file where a folder should be), or the MLflow
    tracking store is unreachable, corrupt or unwritable. A scheduler may retry later."""

    exit_code = 4
