"""``mlflow server --app-name lineage``: the stock MLflow server plus the lineage pages.

MLflow finds :func:`create_app` through the ``mlflow.app`` entry point ``lineage`` and calls it
in every server worker. Under uvicorn (MLflow's default) the result must be an ASGI app, so the
Flask app is wrapped the way MLflow wraps its own (``create_fastapi_app``: the FastAPI routers
and the host-header, CORS and security middleware stay); under ``--gunicorn-opts`` or
``--waitress-opts`` it is MLflow's Flask app itself, with the lineage routes added.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flask import Blueprint, Flask
    from lineage_plugin.ui.access import ModelAccess

#: Where the lineage pages live (under MLflow's ``--static-prefix``, when one is set).
URL_PREFIX = "/lineage"


def url_prefix() -> str:
    """The lineage pages' URL prefix: MLflow's static prefix (if any) plus ``/lineage``."""
    from mlflow.server.handlers import STATIC_PREFIX_ENV_VAR

    return os.environ.get(STATIC_PREFIX_ENV_VAR, "").rstrip("/") + URL_PREFIX


def install(flask_app: Flask, access: ModelAccess | None = None) -> Flask:
    """Add the lineage pages and their JSON API to MLflow's Flask app (once).

    Args:
        flask_app: MLflow's Flask app (``mlflow.server.app``).
        access: Which registered models the current request may read; everything by default.

    Returns:
        The same Flask app.
    """
    from lineage_plugin.ui.access import EVERYTHING

    state = flask_app.extensions.setdefault("lineage", {})
    state["access"] = access or state.get("access") or EVERYTHING
    if "lineage" not in flask_app.blueprints:
        flask_app.register_blueprint(blueprint(), url_prefix=url_prefix())
    return flask_app


def blueprint() -> Blueprint:
    """A new lineage blueprint: templates, static files, pages, JSON API, errors, headers."""
    from flask import Blueprint
    from lineage_plugin.ui import api, filters, views
    from lineage_plugin.ui.routes import error_response, security_headers

    bp = Blueprint(
        "lineage",
        __name__,
        template_folder="templates",
        static_folder="static",
        static_url_path="/static",
    )
    bp.register_error_handler(Exception, error_response)
    prefix = url_prefix()

    def lineage_headers(response: Any) -> Any:
        # Every answer under the prefix, also those routing gives (404, 405) before the
        # blueprint is known.
        from flask import request

        path = request.path
        if request.blueprint == "lineage" or path == prefix or path.startswith(prefix + "/"):
            return security_headers(response)
        return response

    bp.after_app_request(lineage_headers)
    filters.register(bp)
    views.register(bp)
    api.register(bp)
    return bp


def serving(flask_app: Flask) -> Any:
    """What the web server MLflow started needs: ASGI under uvicorn, else the Flask app."""
    from mlflow.environment_variables import _MLFLOW_SGI_NAME

    if _MLFLOW_SGI_NAME.get() == "uvicorn":
        from mlflow.server.fastapi_app import create_fastapi_app

        return create_fastapi_app(flask_app)
    return flask_app


def create_app() -> Any:
    """The ``lineage`` app: MLflow's server with the lineage pages under ``/lineage/``.

    Returns:
        An ASGI app under uvicorn, MLflow's Flask app under gunicorn or waitress.

    Example:
        ``mlflow server --app-name lineage --backend-store-uri lineage+sqlite:///mlflow.db``
    """
    from mlflow.server import app as flask_app

    return serving(install(flask_app))
