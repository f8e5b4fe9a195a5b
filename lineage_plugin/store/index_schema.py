"""Tables of the lineage index, and their migrations.

The index lives in its own tables (all named ``lineage_*``), described by its own SQLAlchemy
``MetaData``: it never touches MLflow's tables or MLflow's alembic history. Its schema version
is kept in ``lineage_index_meta``; :func:`ensure_schema` creates or migrates it.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from lineage_plugin.errors import LineageError

if TYPE_CHECKING:
    from sqlalchemy import Column, MetaData, Table
    from sqlalchemy.engine import Connection, Engine

#: The schema version this code reads and writes.
INDEX_SCHEMA_VERSION = 5
SCHEMA_KEY = "schema_version"


@functools.cache
def tables() -> dict[str, Table]:
    """The index tables by short name (``runs``, ``reads``, ``model_versions``, ...)."""
    return _define()


def metadata() -> MetaData:
    """The ``MetaData`` that holds the index tables (not MLflow's)."""
    return tables()["meta"].metadata


def _version_columns(*, context: bool) -> list[Column]:
    """The columns of the table versions of a run: read (``context``) or written, in order."""
    from sqlalchemy import BigInteger, Column, Integer, String

    return [
        Column("run_id", String(32), primary_key=True),
        Column("position", Integer, primary_key=True),
        Column("table_uri", String(1024), nullable=False),
        Column("table_name", String(256)),
        Column("table_id", String(64)),
        Column("version", BigInteger, nullable=False),
        Column("commit_timestamp", BigInteger),
        Column("operation", String(64)),
        *([Column("context", String(64))] if context else []),
        Column("engine", String(32)),
        # The run's start time, copied here so "who read T in this window" is one index range.
        Column("run_start", BigInteger),
        # The version was a Delta RESTORE holding this version's content (reads: schema 3).
        Column("restored_from", BigInteger),
    ]


#: MySQL/MariaDB table options: keys compare byte for byte (``utf8mb4_bin``; the server's
#: default collation is case-insensitive, so ``/data/Sales`` would find ``/data/sales``), in
#: ``utf8mb4`` whatever the database's default character set. Other dialects ignore them.
_MYSQL_TABLE = {"mysql_charset": "utf8mb4", "mysql_collate": "utf8mb4_bin"}
#: An index on ``table_uri`` (up to 1024 characters, 4 bytes each in utf8mb4) keeps a prefix of
#: it on MySQL, whose keys hold at most 3072 bytes; lookups still compare the whole value.
_URI_PREFIX = {"mysql_length": {"table_uri": 700}}


def _define() -> dict[str, Table]:
    from sqlalchemy import BigInteger, Column, Index, Integer, MetaData, String, Table, Text

    md = MetaData()

    def table(name: str, *items: object) -> Table:
        return Table(name, md, *items, **_MYSQL_TABLE)

    meta = table(
        "lineage_index_meta",
        Column("key", String(64), primary_key=True),
        Column("value", String(256), nullable=False),
    )
    runs = table(
        "lineage_runs",
        Column("run_id", String(32), primary_key=True),
        Column("experiment_id", String(32)),
        Column("run_name", String(250)),
        Column("start_time", BigInteger),
        Column("end_time", BigInteger),
        Column("user", String(256)),
        Column("status", String(16), nullable=False),
        # 1 when MLflow soft-deleted the run or its experiment (schema 4).
        Column("deleted", Integer, default=0),
        Index("lineage_runs_experiment", "experiment_id"),
    )
    reads = table(
        "lineage_reads",
        *_version_columns(context=True),
        Index("lineage_reads_table_version", "table_uri", "version", **_URI_PREFIX),
        Index("lineage_reads_table_time", "table_uri", "run_start", **_URI_PREFIX),
        Index("lineage_reads_table_name", "table_name"),
        # A table's page is addressed by its Delta table id: its newest read, one seek (schema 5).
        Index("lineage_reads_table_id", "table_id", "run_start"),
    )
    # The graph's run -> table version edges: one row per commit a run made (schema 5).
    writes = table(
        "lineage_writes",
        *_version_columns(context=False),
        Index("lineage_writes_table_version", "table_uri", "version", **_URI_PREFIX),
        Index("lineage_writes_table_name", "table_name"),
    )
    model_versions = table(
        "lineage_model_versions",
        Column("name", String(256), primary_key=True),
        Column("version", Integer, primary_key=True),
        Column("run_id", String(32)),
        Column("created", BigInteger),
        Column("status", String(16)),
        Column("deleted", Integer, nullable=False, default=0),
        Index("lineage_model_versions_run", "run_id"),
    )
    events = table(
        "lineage_events",
        # (name, version, event_id): one B-tree serves the events of a model and of a version
        # (ids start with the time), so recording an event touches as few pages as possible.
        Column("name", String(256), primary_key=True),
        Column("version", Integer, primary_key=True),
        Column("event_id", String(32), primary_key=True),
        Column("kind", String(32), nullable=False),
        Column("time", BigInteger, nullable=False),
        Column("stage", String(32)),
        Column("alias", String(256)),
        Column("payload", Text, nullable=False),
    )
    holdings = table(
        "lineage_holdings",
        Column("name", String(256), primary_key=True),
        Column("kind", String(8), primary_key=True),  # 'alias' or 'stage'
        Column("label", String(256), primary_key=True),
        Column("version", Integer, primary_key=True),
        Column("since", BigInteger),
    )
    return {
        "meta": meta,
        "runs": runs,
        "reads": reads,
        "writes": writes,
        "model_versions": model_versions,
        "events": events,
        "holdings": holdings,
    }


def _migrate_1_to_2(conn: Connection) -> None:
    """Reads carry their run's start time; events are keyed by (model, version, id).

    Written with SQLAlchemy's portable operations only (no dialect-specific ALTERs beyond
    ADD COLUMN): the events table is copied out, re-created and filled again.
    """
    from sqlalchemy import Index, MetaData, inspect, select, text, update

    t = tables()
    reads, runs, events, holdings = t["reads"], t["runs"], t["events"], t["holdings"]
    inspector = inspect(conn)
    _add_column(conn, reads, "run_start")
    start = select(runs.c.start_time).where(runs.c.run_id == reads.c.run_id).scalar_subquery()
    conn.execute(update(reads).values(run_start=start))
    # A new Index(...) on one of tables() would join the shared layout for good (and be created
    # again by every later create_all): use the layout's own index, and a scratch copy to drop.
    for index in reads.indexes:
        if index.name == "lineage_reads_table_time":
            index.create(conn, checkfirst=True)
    old_holdings = holdings.to_metadata(MetaData())
    for name in {i["name"] for i in inspector.get_indexes(holdings.name)}:
        if name == "lineage_holdings_version":  # dropped in version 2 (one B-tree less)
            Index(name, old_holdings.c.name, old_holdings.c.version).drop(conn)
    old = [dict(r._mapping) for r in conn.execute(text(f"SELECT * FROM {events.name}"))]
    conn.execute(text(f"DROP TABLE {events.name}"))
    events.create(conn)
    if old:
        conn.execute(events.insert(), [{c.name: r[c.name] for c in events.columns} for r in old])


def _migrate_2_to_3(conn: Connection) -> None:
    """Reads say when the version read was a restored copy of another (``restored_from``).

    Reads indexed before stay without it until ``mlflow-lineage reindex`` (the runs' own
    records in MLflow carry it).
    """
    _add_column(conn, tables()["reads"], "restored_from")


def _add_column(conn: Connection, table: Table, name: str) -> None:
    """``ALTER TABLE ... ADD COLUMN`` of the layout's column ``name``, unless it is there."""
    from sqlalchemy import Column, inspect, text
    from sqlalchemy.schema import CreateColumn

    if name in {c["name"] for c in inspect(conn).get_columns(table.name)}:
        return
    # CreateColumn renders the name *and* the type (SQLite accepts a column without a type,
    # PostgreSQL and the others do not); a new Column leaves the shared layout untouched.
    column = CreateColumn(Column(name, table.c[name].type)).compile(dialect=conn.dialect)
    conn.execute(text(f"ALTER TABLE {table.name} ADD COLUMN {column}"))


def _migrate_3_to_4(conn: Connection) -> None:
    """Runs say whether MLflow deleted them (``deleted``), found by experiment.

    Runs indexed before count as not deleted until ``mlflow-lineage reindex``.
    """
    from sqlalchemy import update

    runs = tables()["runs"]
    _add_column(conn, runs, "deleted")
    conn.execute(update(runs).values(deleted=0))
    for index in runs.indexes:
        index.create(conn, checkfirst=True)


def _migrate_4_to_5(conn: Connection) -> None:
    """Schema 5: the table versions runs wrote (``lineage_writes``, with its indexes), and
    reads found by Delta table id (``lineage_reads_table_id``, for the table pages).

    Runs indexed before have no writes until ``mlflow-lineage reindex`` (a plugin before this
    version recorded none).
    """
    tables()["writes"].create(conn, checkfirst=True)  # creates its indexes with it
    for index in tables()["reads"].indexes:
        index.create(conn, checkfirst=True)


#: Migrations from version N to N+1, applied in order. The current version is created by
#: create_all; a test builds each older layout and migrates it.
_MIGRATIONS: dict[int, Callable[[Connection], None]] = {
    1: _migrate_1_to_2,
    2: _migrate_2_to_3,
    3: _migrate_3_to_4,
    4: _migrate_4_to_5,
}


def schema_version(conn: Connection) -> int | None:
    """The index's schema version, or ``None`` when there is no index in this database."""
    from sqlalchemy import inspect, select

    if not inspect(conn).has_table("lineage_index_meta"):
        return None
    meta = tables()["meta"]
    value = conn.execute(select(meta.c.value).where(meta.c.key == SCHEMA_KEY)).scalar()
    return int(value) if value is not None else None


#: How often creating the index is tried while other processes create it too.
SCHEMA_ATTEMPTS = 5


def ensure_schema(engine: Engine) -> None:
    """Create the index tables, or migrate them to :data:`INDEX_SCHEMA_VERSION`.

    Raises:
        LineageError: The index was written by a newer version of the plugin.
    """
    from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError

    for attempt in range(SCHEMA_ATTEMPTS):
        try:
            with engine.begin() as conn:
                _ddl_in_transaction(conn)
                _ensure(conn)
            return
        except (IntegrityError, OperationalError, ProgrammingError):
            # Another process is creating the tables at the same moment (MySQL answers "skipped
            # since its definition is being modified by concurrent DDL"); look again.
            if attempt == SCHEMA_ATTEMPTS - 1:
                raise
            time.sleep(0.1 * (attempt + 1))


def _ddl_in_transaction(conn: Connection) -> None:
    """On SQLite, open the DBAPI transaction now: Python's ``sqlite3`` runs DDL outside any
    transaction, so each ``CREATE`` would be its own commit (and disk sync) and a crash could
    leave half an index; in one transaction the tables come all at once, about 10x faster."""
    if conn.dialect.name != "sqlite":
        return
    dbapi = conn.connection.dbapi_connection
    if dbapi is not None and getattr(dbapi, "in_transaction", True) is False:
        conn.exec_driver_sql("BEGIN IMMEDIATE")  # a reader turned writer would deadlock


def _ensure(conn: Connection) -> None:
    current = schema_version(conn)
    if current == INDEX_SCHEMA_VERSION:
        return
    meta = tables()["meta"]
    if current is None:
        metadata().create_all(conn, checkfirst=True)
        conn.execute(meta.insert().values(key=SCHEMA_KEY, value=str(INDEX_SCHEMA_VERSION)))
        return
    if current > INDEX_SCHEMA_VERSION:
        raise LineageError(
            f"The lineage index has schema version {current}, newer than this plugin's "
            f"{INDEX_SCHEMA_VERSION}. Upgrade mlflow-delta-lineage."
        )
    for version in range(current, INDEX_SCHEMA_VERSION):
        _MIGRATIONS[version](conn)
    conn.execute(
        meta.update().where(meta.c.key == SCHEMA_KEY).values(value=str(INDEX_SCHEMA_VERSION))
    )
