"""Tell a plugin server that this client records the registry events of its call itself.

MLflow asks every registered request-header provider for headers on each REST call; this one
answers only while a ``lineage+http(s)`` registry store sends a call it records (see
:mod:`lineage_plugin.store.recording`), so each event is written exactly once.
"""

from __future__ import annotations

from mlflow.tracking.request_header.abstract_request_header_provider import (
    RequestHeaderProvider,
)

from lineage_plugin.store.request_context import (
    CLIENT_RECORDS_HEADER,
    USER_HEADER,
    client_recording,
    current_user,
)


class LineageRequestHeaderProvider(RequestHeaderProvider):
    """Adds the "client records" and user headers to registry calls the plugin records."""

    def in_context(self) -> bool:
        return client_recording.get()

    def request_headers(self) -> dict[str, str]:
        headers = {CLIENT_RECORDS_HEADER: "true"}
        user = current_user()
        if user:
            headers[USER_HEADER] = user
        return headers
