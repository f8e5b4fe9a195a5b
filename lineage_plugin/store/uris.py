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


def inner_uri(uri: str) -> str:
    """Return the backend URI wrapped by a ``lineage+`` URI.

    Args:
        uri: A URI such as ``lineage+sqlite:///mlflow.db``.

    Returns:
        The backend URI, e.g. ``sqlite:///mlflow.db``.

    Raises:
        UnsupportedURIError: ``uri`` does not start with ``lineage+``, wraps another ``lineage+``
            URI, or wraps a backend the plugin does not support.

    Example:
        >>> inner_uri("lineage+postgresql+psycopg2://db/mlflow")
        'postgresql+psycopg2://db/mlflow'
    """
    if not is_lineage_uri(uri):
        raise UnsupportedURIError(f"'{uri}' is not a lineage URI: it must start with '{PREFIX}'.")
    inner = uri[len(PREFIX) :]
    if is_lineage_uri(inner):
        raise UnsupportedURIError(
            f"'{uri}' wraps a lineage URI in another one. Use a single prefix: "
            f"'{PREFIX}{inner_uri(inner)}'."
        )
    scheme = urlparse(inner).scheme.lower()
    if scheme not in SUPPORTED_SCHEMES:
        raise UnsupportedURIError(
            f"'{uri}' wraps the unsupported backend scheme '{scheme or '(none)'}'. "
            f"Supported: {', '.join(supported_uri_schemes())}."
        )
    return inner
