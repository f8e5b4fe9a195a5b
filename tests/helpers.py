"""Helpers shared by the tests."""

from __future__ import annotations

import os
from typing import Any

import mlflow


def read_pandas(table: Any) -> Any:
    """Read a local DeltaTable through a native pyarrow file system.

    deltalake's default (Rust object-store) file system makes the process abort at exit in this
    environment (see the README); the native one does not, and the read is still hooked.
    """
    import pyarrow.fs as pafs

    path = table.table_uri.removeprefix("file://").rstrip("/")
    return table.to_pandas(filesystem=pafs.SubTreeFileSystem(path, pafs.LocalFileSystem()))


def lineage_tags(run_id: str) -> dict[str, str]:
    """The ``lineage.*`` tags of a run."""
    tags = mlflow.get_run(run_id).data.tags
    return {k: v for k, v in tags.items() if k.startswith("lineage.")}


_MLFLOW_STATE_VARS = (
    "MLFLOW_EXPERIMENT_ID",
    "MLFLOW_EXPERIMENT_NAME",
    "MLFLOW_TRACKING_URI",
    "MLFLOW_REGISTRY_URI",
    "MLFLOW_RUN_ID",
)


def child_env(**extra: str) -> dict[str, str]:
    """The environment for a child process: this one's, without MLflow state set by tests."""
    env = {k: v for k, v in os.environ.items() if k not in _MLFLOW_STATE_VARS}
    return {**env, "MLFLOW_DISABLE_TELEMETRY": "true", **extra}
