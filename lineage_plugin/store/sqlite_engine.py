"""The SQLAlchemy engine of a lineage index kept in a SQLite file of its own.

Several processes of one user share that file (every ``lineage+http://`` client of a server
indexes into ``~/.mlflow-lineage``). With pysqlite's own transaction handling a transaction
starts as a reader and asks for the write lock at its first write; when another process holds
that lock, SQLite answers "database is locked" at once, without waiting out the busy timeout
(the two would deadlock). So each transaction here takes the write lock when it begins
(``BEGIN IMMEDIATE``), waiting up to the busy timeout for it.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

#: Seconds a process waits for another one's write to the index file to end.
BUSY_TIMEOUT = 30


def sqlite_index_engine(url: str) -> Engine:
    """An engine for the SQLite index file at ``url`` (``sqlite:///PATH``), its directory made.

    Args:
        url: A ``sqlite:///`` SQLAlchemy URL.

    Returns:
        The engine; every transaction begins with ``BEGIN IMMEDIATE``.
    """
    import sqlalchemy

    os.makedirs(os.path.dirname(os.path.abspath(url[len("sqlite:///") :])), exist_ok=True)
    engine = sqlalchemy.create_engine(url, connect_args={"timeout": BUSY_TIMEOUT})

    @sqlalchemy.event.listens_for(engine, "connect")
    def _no_implicit_transactions(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # SQLAlchemy's BEGIN below, not pysqlite's

    @sqlalchemy.event.listens_for(engine, "begin")
    def _take_the_write_lock(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine
