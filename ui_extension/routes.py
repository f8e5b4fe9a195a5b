"""What the lineage pages and their JSON API share: request arguments, errors, headers.

Every route is a GET: the UI never writes. Errors never show a traceback: an unknown model,
version or table is a 404, malformed input a 400, with the message a CLI user would see.
"""

from __future__ import annotations

import functools
import logging
import os
import re
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from lineage_plugin.errors import LineageError, LineageNotFoundError

if TYPE_CHECKING:
    from flask import Response

    from lineage_plugin.queries.workspace import Workspace

_logger = logging.getLogger(__name__)

#: The pages load only the app's own files; no inline script or style, no other origin.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'self'"
)
_VERSION = re.compile(r"[0-9]{1,10}")
# A date or date-time without an offset: the UI shows UTC, so its URLs mean UTC too.
_NAIVE = re.compile(r"\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?)?")
_MAX_NAME = 1000
# What ``quote(text, safe="")`` leaves unchanged.
_UNRESERVED = re.compile(r"[A-Za-z0-9_.~-]*")
# The password of a URL in a message (``postgresql://user:secret@host/db``): never shown.
_PASSWORD = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^/\s:@]*:)[^/\s@]+@")


class BadRequestError(LineageError):
    """Malformed input in a request (a 400)."""


def tracking_uri() -> str | None:
    """The tracking URI of the server this runs in (``--backend-store-uri``), else MLflow's."""
    from mlflow.server.constants import BACKEND_STORE_URI_ENV_VAR

    return os.environ.get(BACKEND_STORE_URI_ENV_VAR) or None


def workspace() -> Workspace:
    """The stores and lineage index of the server's backend."""
    from lineage_plugin.queries.workspace import Workspace

    return Workspace(tracking_uri())


def version_arg(text: str) -> str:
    """A model version from a URL: a number (aliases and stages are resolved by the pages)."""
    if not _VERSION.fullmatch(text):
        raise BadRequestError(f"'{text[:100]}' is not a model version number.")
    return str(int(text))


def name_arg(text: str) -> str:
    """A registered model name or table reference from a URL."""
    if not text.strip() or len(text) > _MAX_NAME or "\x00" in text:
        raise BadRequestError("That is not a registered model name or table reference.")
    return text


def int_arg(name: str) -> int | None:
    """A non-negative integer query parameter, or ``None`` when absent or empty."""
    from flask import request

    text = request.args.get(name, "").strip()
    if not text:
        return None
    if not _VERSION.fullmatch(text):
        raise BadRequestError(f"The parameter {name} must be a non-negative integer.")
    return int(text)


def time_arg(name: str) -> int | None:
    """A time query parameter (``?at=2026-11-17T09:00:00Z``) as epoch ms, or ``None``.

    Every form ``--at`` takes is accepted; a date or time without an offset is UTC (the pages
    show UTC), so a shared link means the same moment everywhere.
    """
    from flask import request

    from lineage_plugin.queries.times import TimeFormatError, parse_time

    text = request.args.get(name, "").strip()
    if not text:
        return None
    if _NAIVE.fullmatch(text):
        text += "T00:00:00+00:00" if len(text) == 10 else "+00:00"
    try:
        return parse_time(text[:100])
    except TimeFormatError:
        raise BadRequestError(
            f"Cannot read the time '{text[:100]}'. Use an ISO 8601 date or time such as "
            "2026-11-17 or 2026-11-17T09:30 (UTC unless an offset like +02:00 is given), epoch "
            "milliseconds, a relative time such as 12h or 7d (ago), or now/today/yesterday."
        ) from None
    except (ValueError, OverflowError, OSError):  # a date Python cannot represent
        raise BadRequestError(f"Cannot read the time '{text[:100]}'.") from None


class UnknownModelPageError(LineageNotFoundError):
    """No registered model of that name (a 404)."""


def require_model(name: str) -> Any:
    """Stop (403) when the request's user may not read registered model ``name``, and (404)
    when there is none.

    The 404 says only that: the CLI's message for it names the tracking URI (a database URL
    may hold a password) and other models (some the user may not read).

    Returns:
        MLflow's ``RegisteredModel``.
    """
    from flask import abort
    from lineage_plugin.ui.access import current
    from mlflow.exceptions import MlflowException

    if not current().may_read(name):
        abort(403)
    try:
        return workspace().registry_store.get_registered_model(name)
    except MlflowException as exc:
        # INVALID_PARAMETER_VALUE: a name MLflow cannot hold ('/', ':'), so no model has it.
        if exc.error_code not in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            raise
        raise UnknownModelPageError(
            f"There is no registered model '{name[:200]}'. The models page lists those you may "
            "read."
        ) from None


@functools.cache
def _static_prefix_variable() -> str:
    from mlflow.server.handlers import STATIC_PREFIX_ENV_VAR

    return STATIC_PREFIX_ENV_VAR


def _stock_prefix() -> str:
    return os.environ.get(_static_prefix_variable(), "").rstrip("/")


def stock_url(*parts: str) -> str:
    """A link to a page of the stock MLflow UI (``stock_url("models", "m", "versions", "2")``)."""
    # A table page links every reader's run: ids and numbers are left as they are, unquoted.
    path = "/".join(p if _UNRESERVED.fullmatch(p) else quote(p, safe="") for p in map(str, parts))
    return f"{_stock_prefix()}/#/{path}"


def stock_file(path: str) -> str:
    """A file the stock MLflow UI serves, such as its icon (``stock_file("favicon.ico")``)."""
    return f"{_stock_prefix()}/static-files/{quote(path)}"


def _status(exc: BaseException) -> int:
    from werkzeug.exceptions import HTTPException

    from lineage_plugin.queries.impact import UnknownTableError
    from lineage_plugin.queries.workspace import IndexUnavailableError

    if isinstance(exc, HTTPException):
        return exc.code or 500
    if isinstance(exc, (LineageNotFoundError, UnknownTableError)):
        return 404
    if isinstance(exc, IndexUnavailableError):
        return 503
    if isinstance(exc, LineageError):
        return 400
    return 500


def _message(exc: BaseException, status: int) -> str:
    from werkzeug.exceptions import HTTPException

    if isinstance(exc, HTTPException):
        return exc.description or exc.name
    if status == 500:
        return "The lineage page failed; the server's log has the details."
    return _PASSWORD.sub(r"\1***@", str(exc))


def error_response(exc: BaseException) -> Any:
    """A clean error page (or JSON under ``/api/``): the message, never a traceback."""
    import json

    from flask import render_template, request

    status = _status(exc)
    if status == 500:
        _logger.exception("lineage UI: %s %s failed", request.method, request.path)
    message = _message(exc, status)
    if "/api/" in request.path:
        body = json.dumps({"error": message}, sort_keys=True)
        return body, status, {"Content-Type": "application/json"}
    return render_template("lineage/error.html", status=status, message=message), status


def json_response(data: Any) -> Response:
    """JSON with sorted keys, as the CLI's ``--json`` prints it."""
    import json

    from flask import Response

    return Response(json.dumps(data, indent=2, sort_keys=True), mimetype="application/json")


def security_headers(response: Response) -> Response:
    """The lineage pages' headers: a strict Content-Security-Policy, no sniffing, no caching."""
    response.headers["Content-Security-Policy"] = CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    response.headers.setdefault("Cache-Control", "no-store")
    return response
