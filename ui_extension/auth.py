"""``mlflow server --app-name lineage-basic-auth``: the lineage app behind MLflow's basic auth.

MLflow's basic-auth app (``mlflow.server.auth.create_app``) checks every request in a
``before_request`` hook that looks its validator up in ``BEFORE_REQUEST_VALIDATORS`` by exact
path. The lineage routes carry a model name or table in their path, so that lookup cannot find
them, and with ``MLFLOW_BASIC_AUTH_FAIL_CLOSED`` on (MLflow's default) a route without a
validator is for admins only. This app therefore keeps MLflow's hook for every other path and
puts a lineage hook in front of it for paths under ``/lineage/``, with a table of validators
keyed by URL rule (:func:`validators`), following MLflow's pattern:

- no credentials, or wrong ones: MLflow's own 401 (every lineage path, the static files too);
- an admin: everything;
- a route with a ``<name>``: MLflow's ``validate_can_read_registered_model`` (READ on it), else a
  403 lineage error page that says who can grant it;
- the other routes (models list, tables, static files): any signed-in user; what they list is
  filtered to the models, and the runs of experiments, the user may READ (:class:`Permissions`);
- a path under ``/lineage/`` that no route matches: 403 for non-admins when fail-closed is on,
  else the lineage 404.

Run it with MLflow's auth settings (``MLFLOW_FLASK_SERVER_SECRET_KEY``,
``MLFLOW_AUTH_ADMIN_PASSWORD`` or ``MLFLOW_AUTH_CONFIG_PATH``); it needs MLflow's ``auth`` extra,
which the plugin's ``ui`` extra pulls in.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flask import Flask

Validator = Callable[[], bool]


class Permissions:
    """The signed-in user's READ permission on registered models and experiments, asked of
    MLflow's auth.

    Each is computed once per request (MLflow's own predicates for filtering its searches), so
    listing many models or runs costs one permission lookup, not one per row.
    """

    def may_read(self, name: str) -> bool:
        """Whether the request's user may read registered model ``name``."""
        return _predicate("registered_model")(name)

    def may_read_experiment(self, experiment_id: str) -> bool:
        """Whether the request's user may read the runs of experiment ``experiment_id``."""
        return _predicate("experiment")(str(experiment_id))


def _predicate(resource_type: str) -> Callable[[str], bool]:
    """The request's READ predicate for ``resource_type``, made once per request."""
    from flask import g
    from mlflow.server import auth

    made = g.setdefault("lineage_may_read", {})
    if resource_type not in made:
        username = g.get("mlflow_authenticated_user") or auth.authenticate_request().username
        if auth.store.get_user(username).is_admin:
            made[resource_type] = lambda resource_id: True
        else:
            # MLflow's predicate behind its filtered searches (roles, grants, workspaces, the
            # default permission): the same answer as its own pages.
            made[resource_type] = auth._role_based_read_predicate(username, resource_type)
    return made[resource_type]


def _signed_in() -> bool:
    # Any signed-in user: the route's answer is filtered by Permissions.
    return True


def validators(flask_app: Flask) -> dict[tuple[str, str], Validator]:
    """The validator of every lineage route, keyed by ``(URL rule, method)``.

    Args:
        flask_app: A Flask app with the lineage blueprint installed.

    Returns:
        Routes with a ``<name>`` need READ on that registered model (MLflow's
        ``validate_can_read_registered_model``, which reads the name from the URL); the others
        any signed-in user.
    """
    from mlflow.server.auth import validate_can_read_registered_model

    table: dict[tuple[str, str], Validator] = {}
    for rule in flask_app.url_map.iter_rules():
        if not rule.endpoint.startswith("lineage."):
            continue
        check = validate_can_read_registered_model if "name" in rule.arguments else _signed_in
        for method in rule.methods or ():
            if method != "OPTIONS":
                table[(rule.rule, method)] = check
    return table


def _check(table: dict[tuple[str, str], Validator]) -> Any:
    """MLflow's ``_before_request`` for a lineage path: None to go on, else the answer."""
    from flask import abort, g, request
    from mlflow.environment_variables import MLFLOW_BASIC_AUTH_FAIL_CLOSED
    from mlflow.server import auth
    from werkzeug.datastructures import Authorization

    authorization = auth.authenticate_request()
    if not isinstance(authorization, Authorization):
        return authorization  # MLflow's 401 (or the configured function's answer)
    g.mlflow_authenticated_user = authorization.username
    if auth.store.get_user(authorization.username).is_admin:
        return None
    rule = request.url_rule
    validator = table.get((rule.rule, request.method)) if rule is not None else None
    if validator is None:
        return auth.make_forbidden_response() if MLFLOW_BASIC_AUTH_FAIL_CLOSED.get() else None
    if not validator():
        # A lineage route: its error page (or JSON), with what to do about it.
        name = (request.view_args or {}).get("name", "")
        abort(
            403,
            f"You may not read registered model '{str(name)[:200]}'. An admin of this MLflow "
            "server can grant you READ on it.",
        )
    return None


def guard(flask_app: Flask) -> Flask:
    """Put the lineage check in front of MLflow's auth hook for paths under ``/lineage/``.

    Args:
        flask_app: MLflow's Flask app, after ``mlflow.server.auth.create_app`` and with the
            lineage blueprint installed.

    Returns:
        The same Flask app.

    Raises:
        LineageError: MLflow's auth hook is not installed on ``flask_app``.
    """
    from flask import request
    from lineage_plugin.ui.app import url_prefix
    from mlflow.server import auth

    from lineage_plugin.errors import LineageError

    hooks = flask_app.before_request_funcs.setdefault(None, [])
    if auth._before_request not in hooks:
        raise LineageError(
            "MLflow's basic-auth hook is not on this app: call mlflow.server.auth.create_app "
            "on it first."
        )
    mlflow_hook = auth._before_request
    table = validators(flask_app)
    prefix = url_prefix()

    def before_request() -> Any:
        path = request.path
        if path == prefix or path.startswith(prefix + "/"):
            return _check(table)
        return mlflow_hook()

    hooks[hooks.index(mlflow_hook)] = before_request
    return flask_app


def create_app() -> Any:
    """The ``lineage-basic-auth`` app: the ``lineage`` app composed with MLflow's basic auth.

    Returns:
        An ASGI app under uvicorn, MLflow's Flask app under gunicorn or waitress.

    Example:
        ``MLFLOW_FLASK_SERVER_SECRET_KEY=... MLFLOW_AUTH_ADMIN_PASSWORD=... mlflow server
        --app-name lineage-basic-auth --backend-store-uri lineage+sqlite:///mlflow.db``
    """
    from lineage_plugin.ui.app import install
    from mlflow.server import app as flask_app
    from mlflow.server.auth import create_app as with_basic_auth

    install(flask_app, Permissions())
    served = with_basic_auth(flask_app)
    guard(flask_app)
    return served
