"""The plugin's version, and the environment variables it reads (at call time, never cached)."""

from __future__ import annotations

import os

#: This plugin's version (the distribution's, in ``pyproject.toml``).
__version__ = "0.1.0"

AUTOLOG_ENV = "MLFLOW_LINEAGE_AUTOLOG"
STRICT_ENV = "MLFLOW_LINEAGE_STRICT"
#: Base URL of the server that serves the lineage pages (``mlflow server --app-name lineage``).
UI_URL_ENV = "MLFLOW_LINEAGE_UI_URL"
#: ``false`` keeps runs from sending OpenLineage events even where OpenLineage is configured;
#: ``true`` sends them wherever ``openlineage-python`` finds its configuration (or prints them).
OPENLINEAGE_ENV = "MLFLOW_LINEAGE_OPENLINEAGE"
#: The longest a run waits for one OpenLineage event to be sent, in seconds.
OPENLINEAGE_TIMEOUT_ENV = "MLFLOW_LINEAGE_OPENLINEAGE_TIMEOUT"
DEFAULT_OPENLINEAGE_TIMEOUT = 2.0

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}
#: Characters a base URL may not hold: they would end or break the Markdown link it goes in.
_UNSAFE_IN_URL = frozenset(' ()<>"`\\')
#: The invalid ``MLFLOW_LINEAGE_UI_URL`` values warned about already (each once per process).
_warned_ui_urls: set[str] = set()


def _flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in _TRUE


def autolog_requested_by_env() -> bool:
    """Whether ``MLFLOW_LINEAGE_AUTOLOG`` asks for capture in every MLflow process."""
    return _flag(AUTOLOG_ENV)


INTENT_GRACE_ENV = "MLFLOW_LINEAGE_INTENT_GRACE_SECONDS"


def intent_grace_ms() -> int:
    """How old (``MLFLOW_LINEAGE_INTENT_GRACE_SECONDS``, default 60) another client's intent
    must be before a registry change resolves it: a younger one may be a change under way."""
    try:
        return int(float(os.environ.get(INTENT_GRACE_ENV, "60")) * 1000)
    except ValueError:
        return 60_000


def strict() -> bool:
    """Whether ``MLFLOW_LINEAGE_STRICT`` turns capture failures into errors."""
    return _flag(STRICT_ENV)


def openlineage_choice() -> bool | None:
    """What ``MLFLOW_LINEAGE_OPENLINEAGE`` says: ``True`` (on), ``False`` (off) or ``None``
    (unset or another value: on when OpenLineage is configured)."""
    value = os.environ.get(OPENLINEAGE_ENV, "").strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    return None


def openlineage_timeout() -> float:
    """How long a run waits for one OpenLineage event, in seconds
    (``MLFLOW_LINEAGE_OPENLINEAGE_TIMEOUT``; :data:`DEFAULT_OPENLINEAGE_TIMEOUT` when unset or
    not a number of seconds between 0 and 3600)."""
    try:
        seconds = float(os.environ.get(OPENLINEAGE_TIMEOUT_ENV, ""))
    except ValueError:
        return DEFAULT_OPENLINEAGE_TIMEOUT
    return seconds if 0 < seconds < 3600 else DEFAULT_OPENLINEAGE_TIMEOUT


def lineage_ui_url() -> str | None:
    """The base URL of the lineage pages, from ``MLFLOW_LINEAGE_UI_URL``, or ``None`` (off).

    The value is an ``http(s)://host[:port][/path]`` URL, such as ``http://mlflow.example:5000``;
    a trailing slash is dropped. An empty or unset variable turns the links off. Any other value
    (another scheme, no host, credentials, a query or fragment, spaces or Markdown punctuation)
    is ignored, with one :class:`~lineage_plugin.errors.LineageWarning` per value and process.

    Returns:
        The normalised base URL (no trailing slash), or ``None``.

    Example:
        >>> import os
        >>> os.environ[UI_URL_ENV] = "http://mlflow.example:5000/"
        >>> lineage_ui_url()
        'http://mlflow.example:5000'
        >>> del os.environ[UI_URL_ENV]
    """
    raw = os.environ.get(UI_URL_ENV, "").strip()
    if not raw:
        return None
    problem = _ui_url_problem(raw)
    if problem is None:
        return raw.rstrip("/")
    if raw not in _warned_ui_urls:
        import warnings

        from lineage_plugin.errors import LineageWarning

        _warned_ui_urls.add(raw)
        warnings.warn(
            f"mlflow-delta-lineage: ignoring {UI_URL_ENV}={raw!r}: {problem}. Set it to the "
            "http(s) base URL of the server that serves the lineage pages, such as "
            "http://mlflow.example:5000, or unset it; until then no lineage links are added.",
            LineageWarning,
            stacklevel=2,
        )
    return None


def _ui_url_problem(raw: str) -> str | None:
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(raw)
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError as exc:
        return f"it is not a valid URL ({exc})"
    if parts.scheme.lower() not in ("http", "https"):
        return "only http:// and https:// URLs are accepted"
    if any(c in _UNSAFE_IN_URL or not c.isprintable() for c in raw):
        return "it holds spaces, parentheses, angle brackets, quotes or control characters"
    if not parts.hostname:
        return "it names no host"
    if parts.username is not None or parts.password is not None:
        return "it holds credentials, which every reader of the registry would see"
    if parts.query or parts.fragment or raw.endswith(("?", "#")):
        return "a base URL takes no query or fragment"
    return None
