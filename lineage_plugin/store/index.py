"""The lineage index: a cache of lineage in SQL tables, for fast queries.

Where it lives (override with ``MLFLOW_LINEAGE_INDEX_URI``):

- SQL backends (``sqlite:``, ``postgresql:``, ``mysql:``, ``mssql:``): the backend's own
  database, in tables named ``lineage_*``;
- a ``file:`` backend: a SQLite file beside the store directory (``mlruns.lineage.db``);
- an ``http(s):`` server, seen from a client: a SQLite file in ``~/.mlflow-lineage/``, one per
  server.

It holds runs with the table versions they read and the ones they wrote, model versions and
their runs, registry events and what each version holds now. MLflow is the system of record:
``mlflow-lineage reindex`` rebuilds all of it from MLflow's tags.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from lineage_plugin.events import ALIAS_DELETED, ALIAS_SET, NO_STAGE, STAGE_TRANSITION
from lineage_plugin.store.index_schema import ensure_schema, tables
from lineage_plugin.store.uris import PREFIX

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine

    from lineage_plugin.events import RegistryEvent
    from lineage_plugin.records import RunLineage

INDEX_URI_ENV = "MLFLOW_LINEAGE_INDEX_URI"
HOME_ENV = "MLFLOW_LINEAGE_HOME"
_SQL_SCHEMES = ("sqlite", "postgresql", "mysql", "mssql")


def index_url(tracking_uri: str) -> str:
    """The SQLAlchemy URL of the lineage index for a tracking URI.

    Args:
        tracking_uri: A ``lineage+`` or plain MLflow tracking URI.

    Returns:
        ``MLFLOW_LINEAGE_INDEX_URI`` when set, else the location described in the module doc.

    Example:
        >>> index_url("lineage+sqlite:///mlflow.db")
        'sqlite:///mlflow.db'
    """
    override = os.environ.get(INDEX_URI_ENV)
    if override:
        return override
    backend = tracking_uri[len(PREFIX) :] if tracking_uri.startswith(PREFIX) else tracking_uri
    parsed = urlparse(backend)
    scheme = parsed.scheme.split("+", 1)[0].lower()
    if scheme in _SQL_SCHEMES:
        return backend
    if scheme in ("http", "https"):
        home = os.environ.get(HOME_ENV) or os.path.join(os.path.expanduser("~"), ".mlflow-lineage")
        server = re.sub(r"[^A-Za-z0-9._-]+", "_", f"{parsed.netloc}{parsed.path}").strip("_")
        return f"sqlite:///{os.path.join(home, server or 'server')}.lineage.db"
    path = parsed.path if scheme == "file" else backend
    root = os.path.abspath(os.path.expanduser(path)).rstrip(os.sep)
    return f"sqlite:///{root}.lineage.db"


@functools.lru_cache(maxsize=16)
def _engine(url: str) -> Engine:
    import sqlalchemy

    if url.startswith("sqlite:///"):
        from lineage_plugin.store.sqlite_engine import sqlite_index_engine

        return sqlite_index_engine(url)
    return sqlalchemy.create_engine(url, pool_pre_ping=True)


@dataclass(frozen=True, kw_only=True)
class RunRow:
    """What the index keeps about a run besides its reads."""

    experiment_id: str | None = None
    run_name: str | None = None
    start_time: int | None = None
    end_time: int | None = None
    user: str | None = None
    deleted: bool = False
    #: MLflow's status of the run (``FINISHED``...), when read from MLflow; not indexed.
    run_status: str | None = None


class LineageIndex:
    """The lineage index at one SQLAlchemy URL.

    Args:
        url: SQLAlchemy URL (see :func:`index_url`).
        engine: An engine for that URL to share (an MLflow SQL store's own), if any.
    """

    def __init__(self, url: str, *, engine: Engine | None = None) -> None:
        self.url = url
        self._engine = engine
        self._ready = False

    @property
    def engine(self) -> Engine:
        """The SQLAlchemy engine (created on first use)."""
        if self._engine is None:
            self._engine = _engine(self.url)
        return self._engine

    def ensure(self) -> None:
        """Create or migrate the index tables (once per instance)."""
        if not self._ready:
            ensure_schema(self.engine)
            self._ready = True

    @contextlib.contextmanager
    def begin(self) -> Iterator[Connection]:
        """A connection in a transaction, committed on success."""
        self.ensure()
        with self.engine.begin() as conn:
            yield conn

    @contextlib.contextmanager
    def _conn(self, conn: Connection | None) -> Iterator[Connection]:
        if conn is not None:
            yield conn
        else:
            with self.begin() as new:
                yield new

    def record_run(
        self, record: RunLineage, row: RunRow, *, conn: Connection | None = None
    ) -> None:
        """Insert or replace a run and the table versions it read and wrote."""
        t = tables()
        with self._conn(conn) as c:
            for name in ("reads", "writes", "runs"):
                c.execute(t[name].delete().where(t[name].c.run_id == record.run_id))
            c.execute(t["runs"].insert(), [_run_values(record, row)])
            if record.inputs:
                c.execute(t["reads"].insert(), _read_values(record, row))
            if record.outputs:
                c.execute(t["writes"].insert(), _write_values(record, row))

    def record_model_version(self, row: dict[str, Any], *, conn: Connection | None = None) -> None:
        """Insert or replace a model version (a row from ``index_updates.model_version_row``)."""
        mv = tables()["model_versions"]
        key = (mv.c.name == row["name"]) & (mv.c.version == row["version"])
        with self._conn(conn) as c:
            c.execute(mv.delete().where(key))
            c.execute(mv.insert().values(**row))

    def mark_deleted(
        self, name: str, version: str | int, *, conn: Connection | None = None
    ) -> None:
        """Remember that a model version was deleted (its lineage stays queryable)."""
        t = tables()
        mv, holdings = t["model_versions"], t["holdings"]
        with self._conn(conn) as c:
            c.execute(
                mv.update()
                .where((mv.c.name == name) & (mv.c.version == int(version)))
                .values(deleted=1)
            )
            c.execute(
                holdings.delete().where(
                    (holdings.c.name == name) & (holdings.c.version == int(version))
                )
            )

    def record_events(
        self,
        events: Iterable[RegistryEvent],
        *,
        conn: Connection | None = None,
        fresh: bool = False,
    ) -> int:
        """Insert events not yet indexed and update what each version holds.

        Args:
            events: The events.
            conn: A connection to write in (its transaction), else a new one.
            fresh: The events were just made here, so none can be indexed already.

        Returns:
            How many events were new.
        """
        from sqlalchemy import select

        events = sorted(events, key=lambda e: e.event_id)
        if not events:
            return 0
        table = tables()["events"]
        with self._conn(conn) as c:
            known: set[str] = set()
            if not fresh:
                for name in {e.name for e in events}:
                    ids = [e.event_id for e in events if e.name == name]
                    query = select(table.c.event_id).where(
                        table.c.name == name, table.c.event_id.in_(ids)
                    )
                    known.update(c.execute(query).scalars())
            new = [e for e in events if e.event_id not in known]
            if new:
                c.execute(_insert_event_statement(), [_event_values(e) for e in new])
                for event in new:
                    _apply_holding(c, event)
        return len(new)

    def rebuild(
        self,
        *,
        runs: Iterable[tuple[RunLineage, RunRow]],
        model_versions: Iterable[dict[str, Any]],
        events: Iterable[RegistryEvent],
        holdings: Iterable[dict[str, Any]],
        conn: Connection | None = None,
    ) -> None:
        """Replace the whole index content in one transaction (``reindex``).

        ``runs`` is consumed lazily and written in batches (it may be read from MLflow, page
        by page, inside this very transaction), so memory stays bounded by a batch. ``conn``:
        a connection to write in (its transaction), else a new one.
        """
        t = tables()
        with self._conn(conn) as c, _bulk_load(c, t["reads"], t["writes"]):
            for name in ("reads", "writes", "runs", "model_versions", "events", "holdings"):
                c.execute(t[name].delete())
            _insert_chunked(c, t["model_versions"], list(model_versions))
            _insert_chunked(c, t["events"], [_event_values(e) for e in events])
            _insert_chunked(c, t["holdings"], list(holdings))
            rows: dict[str, list[dict[str, Any]]] = {"runs": [], "reads": [], "writes": []}
            for record, row in runs:
                rows["runs"].append(_run_values(record, row))
                rows["reads"].extend(_read_values(record, row))
                rows["writes"].extend(_write_values(record, row))
                if max(len(r) for r in rows.values()) >= _BATCH:
                    for name, batch in rows.items():
                        _insert_chunked(c, t[name], batch)
                        batch.clear()
            for name, batch in rows.items():
                _insert_chunked(c, t[name], batch)


_BATCH = 5000


@contextlib.contextmanager
def _bulk_load(conn: Connection, *tables: Any) -> Iterator[None]:
    """On SQLite, the tables' secondary indexes are dropped for the load and made again after,
    in the same transaction (a rollback brings them back): one sort per index instead of a
    million random B-tree inserts, several times faster."""
    sqlite = conn.dialect.name == "sqlite"
    indexes = [index for table in tables for index in table.indexes] if sqlite else []
    for index in indexes:
        index.drop(conn, checkfirst=True)
    yield
    for index in indexes:
        index.create(conn, checkfirst=True)


def _insert_chunked(conn: Connection, table: Any, rows: list[dict[str, Any]]) -> None:
    if conn.dialect.name == "sqlite" and rows:
        # SQLAlchemy's per-row parameter handling costs about as much as SQLite's insert: the
        # rows go to the driver's executemany as tuples, in the compiled statement's order.
        compiled = table.insert().compile(dialect=conn.dialect, column_keys=list(rows[0]))
        sql, keys = str(compiled), compiled.positiontup

        def values(row: dict[str, Any]) -> tuple[Any, ...]:
            return tuple(row[k] for k in keys)

        for start in range(0, len(rows), _BATCH):
            conn.exec_driver_sql(sql, [values(r) for r in rows[start : start + _BATCH]])
        return
    for start in range(0, len(rows), _BATCH):
        conn.execute(table.insert(), rows[start : start + _BATCH])


def _run_values(record: RunLineage, row: RunRow) -> dict[str, Any]:
    return {
        "run_id": record.run_id,
        "experiment_id": row.experiment_id,
        "run_name": row.run_name,
        "start_time": row.start_time,
        "end_time": row.end_time,
        "user": row.user,
        "status": record.status,
        "deleted": int(row.deleted),
    }


def _edge_values(run_id: str, position: int, item: Any, row: RunRow) -> dict[str, Any]:
    """The columns reads and writes share, for one table version (a ``DeltaInput`` or a
    ``DeltaOutput``) of a run."""
    return {
        "run_id": run_id,
        "position": position,
        "table_uri": item.uri,
        "table_name": item.name,
        "table_id": item.table_id,
        "version": item.version,
        "commit_timestamp": item.commit_timestamp,
        "operation": item.operation,
        "engine": item.engine,
        "run_start": row.start_time,
        "restored_from": item.restored_from,
    }


def _read_values(record: RunLineage, row: RunRow) -> list[dict[str, Any]]:
    return [
        {**_edge_values(record.run_id, n, i, row), "context": i.context}
        for n, i in enumerate(record.inputs)
    ]


def _write_values(record: RunLineage, row: RunRow) -> list[dict[str, Any]]:
    return [_edge_values(record.run_id, n, o, row) for n, o in enumerate(record.outputs)]


def _event_values(event: RegistryEvent) -> dict[str, Any]:
    return {
        "event_id": event.event_id,
        "name": event.name,
        "version": int(event.version),
        "kind": event.kind,
        "time": event.time,
        "stage": event.stage,
        "alias": event.alias,
        "payload": event.to_json(),
    }


@functools.cache
def _insert_event_statement() -> Any:
    return tables()["events"].insert()


@functools.cache
def _holding_statements() -> dict[str, Any]:
    """Core statements, built once (bound names ``b_*``: UPDATE reserves the column names)."""
    from sqlalchemy import bindparam

    h = tables()["holdings"]
    model = h.c.name == bindparam("b_name")
    alias = model & (h.c.kind == "alias") & (h.c.label == bindparam("b_label"))
    stage = model & (h.c.kind == "stage") & (h.c.version == bindparam("b_version"))
    return {
        "move_alias": h.update()
        .where(alias)
        .values(version=bindparam("b_version"), since=bindparam("b_since")),
        "drop_alias": h.delete().where(alias & (h.c.version == bindparam("b_version"))),
        "move_stage": h.update()
        .where(stage)
        .values(label=bindparam("b_label"), since=bindparam("b_since")),
        "drop_stage": h.delete().where(stage),
        "insert": h.insert().values(
            name=bindparam("b_name"),
            kind=bindparam("b_kind"),
            label=bindparam("b_label"),
            version=bindparam("b_version"),
            since=bindparam("b_since"),
        ),
    }


def _apply_holding(conn: Connection, event: RegistryEvent) -> None:
    """Update what the event's version holds: one UPDATE, an INSERT only the first time."""
    sql = _holding_statements()
    at = {"b_name": event.name, "b_version": int(event.version), "b_since": event.time}
    if event.kind == ALIAS_SET:
        row = {**at, "b_kind": "alias", "b_label": event.alias}
        if conn.execute(sql["move_alias"], row).rowcount == 0:
            conn.execute(sql["insert"], row)
    elif event.kind == ALIAS_DELETED:
        conn.execute(sql["drop_alias"], {**at, "b_label": event.alias})
    elif event.kind == STAGE_TRANSITION:
        if not event.stage or event.stage == NO_STAGE:
            conn.execute(sql["drop_stage"], at)
            return
        row = {**at, "b_kind": "stage", "b_label": event.stage}
        if conn.execute(sql["move_stage"], row).rowcount == 0:
            conn.execute(sql["insert"], row)


def index_for(store: Any) -> LineageIndex:
    """The lineage index of a wrapped store (sharing the store's engine when it can)."""
    index = getattr(store, "_lineage_index", None)
    if index is None:
        url = index_url(store.lineage_uri)
        engine = getattr(store, "engine", None) if url == store.backend_uri else None
        index = LineageIndex(url, engine=engine)
        store._lineage_index = index
    return index
