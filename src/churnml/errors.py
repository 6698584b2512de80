"""Exceptions churnml raises; the CLI maps them to exit codes (2 bad input, 3 model problem)."""

from __future__ import annotations

__all__ = ["ChurnmlError", "ConfigError", "DataError", "ModelError"]


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
