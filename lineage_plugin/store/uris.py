"""The ``lineage+<backend URI>`` scheme: which backends it wraps and how it is parsed."""

from __future__ import annotations

from urllib.parse import urlparse

from lineage_plugin.errors import UnsupportedURIError

PREFIX = "lineage+"

_DRIVERS: dict[str, tuple[str, ...]] = {
    "sqlite": ("pysqlite",),
    "postgresql": ("psycopg2", "psycopg", "pg8000", "psycopg2cffi"),
    "mysql": ("pymysql", "mysqldb", "mysqlconnector", "mariadbconnector", "cymysql"),
    "mssql": ("pyodbc", "pymssql"),
}

#: Backend schemes a ``lineage+`` URI may wrap (each has its own MLflow entry point, because
#: MLflow matches schemes exactly).
SUPPORTED_SCHEMES: tuple[str, ...] = tuple(
    s
    for base in ("sqlite", "postgresql", "mysql", "mssql", "file", "http", "https")
    for s in (base, *(f"{base}+{d}" for d in _DRIVERS.get(base, ())))
)


def supported_uri_schemes() -> list[str]:
    """Return every ``lineage+`` scheme the plugin registers, e.g. ``lineage+sqlite``."""
    return [PREFIX + s for s in SUPPORTED_SCHEMES]


def is_lineage_uri(uri: str | None) -> bool:
    """Whether ``uri`` uses the ``lineage+`` scheme."""
    return bool(uri) and uri.startswith(PREFIX)


def inner_uri(uri: str, *, origin: str | None = None) -> str:
    """Return the backend URI wrapped by a ``lineage+`` URI.

    Args:
        uri: A URI such as ``lineage+sqlite:///mlflow.db``.
        origin: Where the URI came from (e.g. ``--tracking-uri``), named in the error.

    Returns:
        The backend URI, e.g. ``sqlite:///mlflow.db``.

    Raises:
        UnsupportedURIError: ``uri`` does not start with ``lineage+``, wraps another ``lineage+``
            URI, or wraps a backend the plugin does not support (the message lists the supported
            schemes).

    Example:
        >>> inner_uri("lineage+postgresql+psycopg2://db/mlflow")
        'postgresql+psycopg2://db/mlflow'
    """
    named = f"'{uri}'" + (f" (from {origin})" if origin else "")
    if not is_lineage_uri(uri):
        raise UnsupportedURIError(f"{named} is not a lineage URI: it must start with '{PREFIX}'.")
    inner = uri[len(PREFIX) :]
    supported = f"Supported: {', '.join(supported_uri_schemes())}."
    if is_lineage_uri(inner):
        raise UnsupportedURIError(
            f"{named} wraps a lineage URI in another one. Use a single prefix: "
            f"'{_single_prefix(inner)}'. {supported}"
        )
    scheme = urlparse(inner).scheme.lower()
    if scheme not in SUPPORTED_SCHEMES:
        raise UnsupportedURIError(
            f"{named} wraps the unsupported backend scheme '{scheme or '(none)'}'. " + supported
        )
    return inner


def _single_prefix(uri: str) -> str:
    while is_lineage_uri(uri[len(PREFIX) :]):
        uri = uri[len(PREFIX) :]
    return uri


def backend_uri(uri: str, *, origin: str | None = None) -> str:
    """The backend URI behind a tracking URI (``uri`` itself when it is not ``lineage+``),
    after checking that a store handles its scheme.

    Args:
        uri: A plain or ``lineage+`` tracking URI, or a local path (a file store).
        origin: Where the URI came from (e.g. ``--tracking-uri``), named in the error.

    Raises:
        UnsupportedURIError: Neither MLflow nor the plugin has a store for the scheme; the
            message lists the schemes that work.

    Example:
        >>> backend_uri("sqlite:///mlflow.db")
        'sqlite:///mlflow.db'
    """
    from mlflow.tracking._tracking_service.utils import _tracking_store_registry
    from mlflow.utils.uri import get_uri_scheme

    if is_lineage_uri(uri):
        return inner_uri(uri, origin=origin)
    known = _tracking_store_registry._registry
    scheme = get_uri_scheme(uri)
    if scheme in known:
        return uri
    plain = sorted(s for s in known if s and not is_lineage_uri(s))
    raise UnsupportedURIError(
        f"'{uri}'" + (f" (from {origin})" if origin else "") + f" has the scheme '{scheme}', "
        f"which no MLflow tracking store handles. Use a path or one of: {', '.join(plain)} "
        "(SQL ones also with a driver, such as postgresql+psycopg2), or wrap one in "
        f"{PREFIX}: {', '.join(supported_uri_schemes())}."
    )
