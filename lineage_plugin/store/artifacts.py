"""The ``mlflow-artifacts:`` repository, made to understand ``lineage+http(s)`` tracking URIs.

MLflow's ``MlflowArtifactsRepository`` finds the artifact server from the tracking URI and
accepts only ``http(s):``. This subclass hands it the backend URI inside ``lineage+``; for any
other tracking URI it is MLflow's class unchanged. Registered for the ``mlflow-artifacts``
scheme through the ``mlflow.artifact_repository`` entry point.
"""

from __future__ import annotations

from mlflow.store.artifact.mlflow_artifacts_repo import (
    MlflowArtifactsRepository as _MlflowArtifactsRepository,
)
from mlflow.tracking._tracking_service.utils import get_tracking_uri

from lineage_plugin.store.uris import PREFIX


def _strip(uri: str | None) -> str | None:
    while uri and uri.startswith(PREFIX):
        uri = uri[len(PREFIX) :]
    return uri


class MlflowArtifactsRepository(_MlflowArtifactsRepository):
    """MLflow's ``mlflow-artifacts:`` repository, given the backend URI of a lineage+ URI."""

    def __init__(
        self, artifact_uri: str, tracking_uri: str | None = None, registry_uri: str | None = None
    ) -> None:
        super().__init__(
            artifact_uri,
            tracking_uri=_strip(tracking_uri or get_tracking_uri()),
            registry_uri=_strip(registry_uri),
        )
