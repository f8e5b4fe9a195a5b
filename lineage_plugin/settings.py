"""The plugin's version, and the environment variables it reads (at call time, never cached)."""

from __future__ import annotations

import os

#: This plugin's version (the distribution's, in ``pyproject.toml``).
__version__ = "0.1.0"

AUTOLOG_ENV = "MLFLOW_LINEAGE_AUTOLOG"
STRICT_ENV = "MLFLOW_LINEAGE_STRICT"

_TRUE = {"1", "true", "yes", "on"}


def _flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in _TRUE


def autolog_requested_by_env() -> bool:
    """Whether ``MLFLOW_LINEAGE_AUTOLOG`` asks for capture in every MLflow process."""
    return _flag(AUTOLOG_ENV)


def strict() -> bool:
    """Whether ``MLFLOW_LINEAGE_STRICT`` turns capture failures into errors."""
    return _flag(STRICT_ENV)
