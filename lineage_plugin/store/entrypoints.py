"""The functions MLflow's store registries call for ``lineage+`` URIs.

MLflow imports this module at start-up for every user who has the plugin installed, so it
imports nothing heavy: the wrapping code is imported when a ``lineage+`` store is built.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lineage_plugin.settings import autolog_requested_by_env

if TYPE_CHECKING:
    from mlflow.store.model_registry.abstract_store import AbstractStore as RegistryStore
    from mlflow.store.tracking.abstract_store import AbstractStore as TrackingStore


def tracking_store(store_uri: str, artifact_uri: str | None = None, **_: Any) -> TrackingStore:
    """Build the tracking store for a ``lineage+`` URI (MLflow's ``mlflow.tracking_store``)."""
    from lineage_plugin.store.wrapping import build_tracking_store

    return build_tracking_store(store_uri, artifact_uri)


def registry_store(store_uri: str, tracking_uri: str | None = None, **_: Any) -> RegistryStore:
    """Build the registry store for a ``lineage+`` URI (``mlflow.model_registry_store``)."""
    from lineage_plugin.store.wrapping import build_registry_store

    return build_registry_store(store_uri, tracking_uri)


def workspace_store(workspace_uri: str) -> Any:
    """Build MLflow's workspace store for the backend of a ``lineage+`` URI.

    ``mlflow server`` uses the backend store URI as the workspace URI when workspaces are on.
    """
    from mlflow.tracking._workspace.registry import _get_workspace_store_registry

    from lineage_plugin.store.uris import inner_uri

    backend = inner_uri(workspace_uri)
    return _get_workspace_store_registry().get_store_builder(backend)(workspace_uri=backend)


if autolog_requested_by_env():
    # Contract: MLFLOW_LINEAGE_AUTOLOG=true turns capture on for every run of every MLflow
    # process, whatever its tracking URI (as lineage_plugin.autolog() does). This only registers
    # post-import hooks; deltalake and polars are patched when the user imports them.
    from lineage_plugin.tracking.autolog import autolog

    autolog()
