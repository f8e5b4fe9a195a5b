"""MLflow's SQL database behind a tracking URI, opened read-only for ``reindex``.

Which tracking URIs have one (:func:`sql_backend_url`), whether its schema holds what
:mod:`lineage_plugin.store.mlflow_tables` reads (:meth:`MlflowDatabase.check`), and the
connections a rebuild reads and writes through (:meth:`MlflowDatabase.rebuilding`).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import TYPE_CHECKING
from urllib.parse import quote, urlparse

from lineage_plugin.errors import LineageError
from lineage_plugin.store.mlflow_tables import COLUMNS, MlflowTables
from lineage_plugin.store.uris import inner_uri, is_lineage_uri

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from lineage_plugin.store.index import LineageIndex

SQL_SCHEMES = ("sqlite", "postgresql", "mysql", "mssql")


class MlflowDatabaseError(LineageError):
    """MLflow's database cannot be read directly, or lacks the tables MLflow 3.17 makes."""


def safe_url(url: str) -> str:
    """A SQLAlchemy URL without its password, for messages."""
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def sql_backend_url(tracking_uri: str) -> str | None:
    """The SQLAlchemy URL of MLflow's database behind ``tracking_uri``; ``None`` if not SQL.

    Example:
        >>> sql_backend_url("lineage+sqlite:///mlflow.db")
        'sqlite:///mlflow.db'
    """
    backend = inner_uri(tracking_uri) if is_lineage_uri(tracking_uri) else tracking_uri
    scheme = urlparse(backend).scheme.split("+", 1)[0].lower()
    if scheme not in SQL_SCHEMES:
        return None
    if scheme == "sqlite" and _sqlite_path(backend) is None:
        return None  # in memory: only the process holding it can read it
    return backend


def _sqlite_path(url: str) -> str | None:
    from sqlalchemy.engine import make_url

    database = make_url(url).database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return os.path.realpath(database)


def same_database(a: str, b: str) -> bool:
    """Whether two SQLAlchemy URLs name the same database (same SQLite file, host and name)."""
    from sqlalchemy.engine import make_url

    ua, ub = make_url(a), make_url(b)
    if ua.get_backend_name() != ub.get_backend_name():
        return False
    if ua.get_backend_name() == "sqlite":
        return _sqlite_path(a) is not None and _sqlite_path(a) == _sqlite_path(b)
    return (ua.host, ua.port, ua.database) == (ub.host, ub.port, ub.database)


def active_workspace() -> str:
    """The MLflow workspace the API path would read (``default`` unless workspaces are on).

    Raises:
        MlflowDatabaseError: Workspaces are on and none is set.
    """
    from mlflow.environment_variables import MLFLOW_ENABLE_WORKSPACES
    from mlflow.utils.workspace_context import get_request_workspace
    from mlflow.utils.workspace_utils import DEFAULT_WORKSPACE_NAME

    if not MLFLOW_ENABLE_WORKSPACES.get():
        return DEFAULT_WORKSPACE_NAME
    workspace = get_request_workspace()
    if not workspace:
        raise MlflowDatabaseError(
            "Workspaces are on (MLFLOW_ENABLE_WORKSPACES) but none is active. Set "
            "MLFLOW_WORKSPACE to the workspace to reindex, or call mlflow.set_workspace()."
        )
    return workspace


class MlflowDatabase:
    """MLflow's database at one SQLAlchemy URL, opened read-only for ``reindex``.

    Args:
        url: The backend URL (see :func:`sql_backend_url`).
    """

    def __init__(self, url: str) -> None:
        self.url = url

    @property
    def safe_url(self) -> str:
        """The URL without its password, for messages."""
        return safe_url(self.url)

    @contextlib.contextmanager
    def connect(self) -> Iterator[Connection]:
        """A read-only connection (a SQLite file is opened with ``mode=ro``).

        Raises:
            MlflowDatabaseError: The database cannot be opened.
        """
        import sqlalchemy

        path = _sqlite_path(self.url) if self.url.startswith("sqlite") else None
        try:
            if path is not None:
                import sqlite3

                uri = f"file:{quote(path)}?mode=ro"
                engine = sqlalchemy.create_engine(
                    "sqlite://",
                    creator=lambda: sqlite3.connect(uri, uri=True, timeout=30),
                    poolclass=sqlalchemy.pool.NullPool,
                )
            else:
                engine = sqlalchemy.create_engine(self.url, pool_pre_ping=True)
            conn = engine.connect()
        except Exception as exc:
            raise MlflowDatabaseError(
                f"Cannot open MLflow's database at {self.safe_url}: {exc}. Check the tracking "
                "URI (--tracking-uri or MLFLOW_TRACKING_URI)."
            ) from exc
        try:
            yield conn
        finally:
            conn.close()
            engine.dispose()

    def check(self) -> None:
        """Refuse a database without the tables and columns the reader selects.

        Raises:
            MlflowDatabaseError: Tables or columns are missing (saying which, and what to do).
        """
        from sqlalchemy import inspect

        with self.connect() as conn:
            inspector = inspect(conn)
            found = set(inspector.get_table_names())
            missing = [t for t in COLUMNS if t not in found]
            for name in (t for t in COLUMNS if t in found):
                have = {c["name"] for c in inspector.get_columns(name)}
                missing += [f"{name}.{c}" for c in COLUMNS[name] if c not in have]
        if not missing:
            return
        from importlib.metadata import version

        what = (
            "holds none of MLflow's tables"
            if not found & set(COLUMNS)
            else f"lacks MLflow {version('mlflow')}'s {', '.join(missing)}"
        )
        raise MlflowDatabaseError(
            f"The database at {self.safe_url} {what}, so reindex cannot read it directly. "
            "Check the tracking URI; if an older MLflow made this database, upgrade it first "
            f"with: mlflow db upgrade {self.safe_url} (or reindex through MLflow's API: "
            "reindex(source='api'))."
        )

    @contextlib.contextmanager
    def rebuilding(self, index: LineageIndex) -> Iterator[tuple[MlflowTables, Connection]]:
        """The reader, and a connection in the index's transaction to rebuild it in.

        When the index lives in this database, the reader uses that same connection: a second
        SQLite connection could not read while the rebuild's transaction holds its lock.
        """
        workspace = active_workspace()
        with index.begin() as write, contextlib.ExitStack() as stack:
            read = write if same_database(self.url, index.url) else None
            if read is None:
                read = stack.enter_context(self.connect())
            yield MlflowTables(read, workspace=workspace), write
