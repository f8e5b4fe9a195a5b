"""``reindex --check``: compare the lineage index with what MLflow holds, writing nothing.

What a ``reindex`` would write is built into a scratch SQLite index (MLflow read the way
``reindex`` reads it: its tables directly, or its API); the live index is read (read-only) into
a second scratch file beside it; the two are compared table by table in SQLite, by each table's
primary key (runs: ``run_id``; reads and writes: ``run_id, position``; model versions:
``name, version``; events: ``name, version, event_id``; holdings: ``name, kind, label,
version``) and by every other column of the table's definition except those in
:data:`IGNORED`, so a column added to the index later is compared too. Neither MLflow nor
the live index is written; the scratch files are removed after.

When there is no index yet, every row MLflow has is reported as missing (in sync only when
MLflow has no lineage either). An index of another schema version is refused: ``reindex``
rebuilds it.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from lineage_plugin.errors import LineageError
from lineage_plugin.progress import status_lines
from lineage_plugin.queries.reindex import SOURCES, reindex
from lineage_plugin.queries.workspace import Workspace

if TYPE_CHECKING:
    from sqlalchemy import Table
    from sqlalchemy.engine import Connection, Engine

#: The index tables compared, by their short names (``index_schema.tables()``).
TABLES = ("runs", "reads", "writes", "model_versions", "events", "holdings")

#: Columns the live index is not meant to keep current, with why; not compared. None today:
#: the stores keep every column current (a run's name and end time follow update_run_info).
IGNORED: dict[str, dict[str, str]] = {}

#: How many keys of each kind of drift a table's result names.
EXAMPLES = 5

_COPY_BATCH = 5000


class IndexCheckError(LineageError):
    """The index cannot be compared (another schema version, or it cannot be read)."""


@dataclass(frozen=True, kw_only=True)
class TableDrift:
    """How one index table differs from what MLflow holds.

    Attributes:
        table: The short name (``runs``, ``reads``, ``writes``, ``model_versions``,
            ``events``, ``holdings``).
        in_mlflow: Rows a ``reindex`` would write.
        indexed: Rows the index has.
        missing: Rows MLflow has and the index lacks.
        extra: Rows the index has and MLflow does not.
        different: Rows both have, with a compared column that differs.
        missing_keys: The keys of the first few missing rows.
        extra_keys: The keys of the first few extra rows.
        different_rows: The first few different rows: ``{"key": ..., "columns": [...]}``.
        differing_columns: For each column that differs, in how many rows.
    """

    table: str
    in_mlflow: int
    indexed: int
    missing: int
    extra: int
    different: int
    missing_keys: list[dict[str, Any]]
    extra_keys: list[dict[str, Any]]
    different_rows: list[dict[str, Any]]
    differing_columns: dict[str, int]

    @property
    def in_sync(self) -> bool:
        """No row missing, extra or different."""
        return not (self.missing or self.extra or self.different)


@dataclass(frozen=True, kw_only=True)
class IndexCheck:
    """The lineage index compared with MLflow (``reindex --check``)."""

    index_url: str
    index_exists: bool
    source: str
    tables: list[TableDrift]
    ignored: list[str]
    seconds: float

    @property
    def in_sync(self) -> bool:
        """Every table holds what a ``reindex`` would write."""
        return all(t.in_sync for t in self.tables)

    def to_dict(self) -> dict[str, Any]:
        """The documented JSON of ``reindex --check --json``."""
        return {**asdict(self), "in_sync": self.in_sync}


def check_index(
    *,
    tracking_uri: str | None = None,
    source: str = "auto",
    progress: Callable[[str], None] | None = None,
) -> IndexCheck:
    """Compare the lineage index with what a ``reindex`` would build from MLflow, writing nothing.

    Args:
        tracking_uri: Where MLflow is (default: MLflow's tracking URI).
        source: How to read MLflow, as for :func:`~lineage_plugin.queries.reindex.reindex`.
        progress: Called with a status line as each phase finishes.

    Returns:
        An :class:`IndexCheck`; ``in_sync`` says whether anything differs.

    Raises:
        LineageError: ``source`` is unknown or cannot read this backend, MLflow's database
            lacks its tables, or the index has another schema version (run reindex).

    Example:
        >>> check_index(tracking_uri="sqlite:///mlflow.db").in_sync
        True
    """
    from lineage_plugin.store.mlflow_database import safe_url, sql_backend_url

    if source not in SOURCES:
        raise LineageError(f"Unknown reindex source '{source}': use one of {', '.join(SOURCES)}.")
    started = time.perf_counter()
    ws = Workspace(tracking_uri)
    live_url = ws.index.url
    used = "sql" if source != "api" and sql_backend_url(ws.tracking_uri) else "api"
    with tempfile.TemporaryDirectory(prefix="lineage-check-") as scratch:
        exists, drifts = _build_and_compare(ws, source, progress, scratch)
    return IndexCheck(
        index_url=safe_url(live_url),
        index_exists=exists,
        source=used,
        tables=drifts,
        ignored=[f"{t}.{c}" for t, cols in IGNORED.items() for c in cols],
        seconds=round(time.perf_counter() - started, 3),
    )


def _build_and_compare(
    ws: Workspace, source: str, progress: Callable[[str], None] | None, scratch: str
) -> tuple[bool, list[TableDrift]]:
    """Copy the live index into ``scratch``, build what reindex would write beside it and
    compare them; returns whether there was a live index, and each table's drift."""
    from lineage_plugin.store.index import LineageIndex
    from lineage_plugin.store.mlflow_database import safe_url

    live = os.path.join(scratch, "index.db")
    exists = _copy_live_index(ws.index.url, live)  # first: an index it cannot compare is refused
    with _sqlite_engine(os.path.join(scratch, "mlflow.db")) as built:
        into = LineageIndex(built.url.render_as_string(), engine=built)
        reindex(tracking_uri=ws.tracking_uri, progress=progress, source=source, into=into)
        status_lines(progress)(f"comparing with the index at {safe_url(ws.index.url)}")
        with built.connect() as conn:
            conn.exec_driver_sql("ATTACH DATABASE ? AS live", (live,))
            try:
                return exists, [_compare(conn, name) for name in TABLES]
            finally:
                conn.exec_driver_sql("DETACH DATABASE live")


@contextlib.contextmanager
def _sqlite_engine(path: str) -> Iterator[Engine]:
    import sqlalchemy

    engine = sqlalchemy.create_engine(f"sqlite:///{path}", poolclass=sqlalchemy.pool.NullPool)
    try:
        yield engine
    finally:
        engine.dispose()


def _copy_live_index(url: str, path: str) -> bool:
    """Copy the live index's tables into a SQLite file at ``path``, reading it read-only.

    Returns:
        Whether there was an index (else the copy has the tables, empty).

    Raises:
        IndexCheckError: The index has another schema version than this plugin's.
    """
    from lineage_plugin.store.index_schema import (
        INDEX_SCHEMA_VERSION,
        metadata,
        schema_version,
        tables,
    )
    from lineage_plugin.store.mlflow_database import MlflowDatabase, safe_url

    with _sqlite_engine(path) as engine:
        metadata().create_all(engine)
        if not _may_exist(url):
            return False
        with MlflowDatabase(url).connect() as live, engine.begin() as copy:
            found = schema_version(live)
            if found is None:
                return False
            if found != INDEX_SCHEMA_VERSION:
                what = (
                    "Upgrade mlflow-delta-lineage: a newer version wrote this index."
                    if found > INDEX_SCHEMA_VERSION
                    else "Run `mlflow-lineage reindex` to rebuild it."
                )
                raise IndexCheckError(
                    f"The lineage index at {safe_url(url)} has schema version {found}, and this "
                    f"plugin compares version {INDEX_SCHEMA_VERSION}. {what}"
                )
            for name in TABLES:
                _copy_table(live, copy, tables()[name])
    return True


def _may_exist(url: str) -> bool:
    """False for a SQLite index whose file is not there (opening it would create it)."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return True
    database = parsed.database or ""
    return database.startswith("file:") or os.path.exists(database)


def _copy_table(live: Connection, copy: Connection, table: Table) -> None:
    from sqlalchemy import select

    names = [c.name for c in table.columns]
    insert = "INSERT INTO {} ({}) VALUES ({})".format(
        table.name, ", ".join(_q(n) for n in names), ", ".join("?" for _ in names)
    )
    result = live.execution_options(stream_results=True).execute(select(*table.columns))
    while rows := result.fetchmany(_COPY_BATCH):
        copy.exec_driver_sql(insert, [tuple(r) for r in rows])


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _compare(conn: Connection, name: str) -> TableDrift:
    """One table: ``main`` (what MLflow holds) against ``live`` (the index)."""
    from lineage_plugin.store.index_schema import tables

    table = tables()[name]
    keys = [c.name for c in table.primary_key.columns]
    compared = [
        c.name for c in table.columns if c.name not in keys and c.name not in IGNORED.get(name, {})
    ]
    t = _q(table.name)
    on = " AND ".join(f"a.{_q(k)} = b.{_q(k)}" for k in keys)
    key_list = ", ".join(f"a.{_q(k)}" for k in keys)

    def count(sql: str) -> int:
        return int(conn.exec_driver_sql(sql).scalar() or 0)

    def absent(a: str, b: str) -> tuple[int, list[dict[str, Any]]]:
        where = f"FROM {a}.{t} a WHERE NOT EXISTS (SELECT 1 FROM {b}.{t} b WHERE {on})"
        rows = conn.exec_driver_sql(
            f"SELECT {key_list} {where} ORDER BY {key_list} LIMIT {EXAMPLES}"
        )
        return count(f"SELECT COUNT(*) {where}"), [_key(name, keys, r) for r in rows]

    missing, missing_keys = absent("main", "live")
    extra, extra_keys = absent("live", "main")
    different, rows, columns = 0, [], {}
    if compared:
        differs = [f"(a.{_q(c)} IS NOT b.{_q(c)})" for c in compared]
        where = f"FROM main.{t} a JOIN live.{t} b ON {on} WHERE {' OR '.join(differs)}"
        sums = conn.exec_driver_sql(
            f"SELECT COUNT(*), {', '.join(f'SUM{d}' for d in differs)} {where}"
        ).one()
        different = int(sums[0])
        columns = {c: int(n) for c, n in zip(compared, sums[1:], strict=True) if n}
        found = conn.exec_driver_sql(
            f"SELECT {key_list}, {', '.join(differs)} {where} ORDER BY {key_list} LIMIT {EXAMPLES}"
        )
        rows = [
            {
                "key": _key(name, keys, r[: len(keys)]),
                "columns": [c for c, d in zip(compared, r[len(keys) :], strict=True) if d],
            }
            for r in found
        ]
    return TableDrift(
        table=name,
        in_mlflow=count(f"SELECT COUNT(*) FROM main.{t}"),
        indexed=count(f"SELECT COUNT(*) FROM live.{t}"),
        missing=missing,
        extra=extra,
        different=different,
        missing_keys=missing_keys,
        extra_keys=extra_keys,
        different_rows=rows,
        differing_columns=columns,
    )


def _key(table: str, keys: list[str], values: Any) -> dict[str, Any]:
    """A row's key; a model version number as a string (the JSON's convention)."""
    key = dict(zip(keys, values, strict=True))
    if table not in ("reads", "writes") and "version" in key:
        key["version"] = str(key["version"])
    return key
