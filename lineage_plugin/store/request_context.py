"""Who is calling, and who records: the little the registry needs to know about a request.

Kept free of heavy imports: MLflow loads the request-header provider (which uses this module)
in every process that has the plugin installed.
"""

from __future__ import annotations

import contextvars
import os
import sys
from typing import Any

#: Header a recording client sends with its registry calls (and the user it records).
CLIENT_RECORDS_HEADER = "X-MLflow-Lineage-Client-Records"
USER_HEADER = "X-MLflow-Lineage-User"

#: True while this process sends a registry call whose events it records itself.
client_recording: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "lineage_client_recording", default=False
)


def current_user() -> str | None:
    """Who is making the change.

    In a server request: the authenticated user, else the user a plugin client named in its
    header, else unknown (``None``). Elsewhere: ``MLFLOW_TRACKING_USERNAME`` or the OS user.
    """
    request = _flask_request()
    if request is not None:
        auth = request.authorization
        if auth is not None and auth.username:
            return auth.username
        return request.headers.get(USER_HEADER)
    from mlflow.tracking.context.default_context import _get_user

    return os.environ.get("MLFLOW_TRACKING_USERNAME") or _get_user()


def _flask_request() -> Any:
    flask = sys.modules.get("flask")
    if flask is None or not flask.has_request_context():
        return None
    return flask.request


def in_server_request() -> bool:
    """Whether this code runs inside a request served by ``mlflow server``."""
    return _flask_request() is not None


def client_records_events() -> bool:
    """Whether the request being served comes from a client that records its own events."""
    request = _flask_request()
    return request is not None and request.headers.get(CLIENT_RECORDS_HEADER) == "true"
