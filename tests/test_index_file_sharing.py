"""A lineage index in a SQLite file of its own is shared by every process of the user (all
``lineage+http://`` clients of one server index into ``~/.mlflow-lineage``): processes that
create it, and write to it, at the same moment all succeed (found by ``test_concurrency``:
one client got "database is locked" creating the tables and lost its run's index rows).
"""

from __future__ import annotations

import threading

import pytest
import sqlalchemy as sa

from lineage_plugin.store.index import LineageIndex
from lineage_plugin.store.sqlite_engine import sqlite_index_engine

WRITERS = 8


def at_once(work) -> list[BaseException]:
    """Run ``work(n)`` in ``WRITERS`` threads released together; the exceptions they raised."""
    start, errors = threading.Barrier(WRITERS), []

    def run(n: int) -> None:
        start.wait()
        try:
            work(n)
        except BaseException as exc:  # noqa: BLE001 - collected for the assertion
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(n,)) for n in range(WRITERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    return errors


@pytest.mark.parametrize("attempt", range(5))
def test_processes_creating_one_index_file_at_once_all_succeed(tmp_path, attempt):
    url = f"sqlite:///{tmp_path / 'server.lineage.db'}"
    # one engine per writer, as each process has its own
    engines = [sqlite_index_engine(url) for _ in range(WRITERS)]
    try:
        assert at_once(lambda n: LineageIndex(url, engine=engines[n]).ensure()) == []
        with engines[0].connect() as conn:
            names = set(sa.inspect(conn).get_table_names())
        assert {"lineage_index_meta", "lineage_runs", "lineage_events"} <= names
    finally:
        for engine in engines:
            engine.dispose()


def test_read_then_write_transactions_of_many_processes_all_commit(tmp_path):
    url = f"sqlite:///{tmp_path / 'server.lineage.db'}"
    engines = [sqlite_index_engine(url) for _ in range(WRITERS)]
    meta = sa.MetaData()
    counter = sa.Table("counter", meta, sa.Column("n", sa.Integer))
    with engines[0].begin() as conn:
        meta.create_all(conn)
        conn.execute(counter.insert(), [{"n": 0}])

    def increment(n: int) -> None:
        for _ in range(10):
            with engines[n].begin() as conn:  # read, then write what was read plus one
                value = conn.execute(sa.select(counter.c.n)).scalar_one()
                conn.execute(counter.update().values(n=value + 1))

    try:
        assert at_once(increment) == []
        with engines[0].connect() as conn:
            assert conn.execute(sa.select(counter.c.n)).scalar_one() == WRITERS * 10  # none lost
    finally:
        for engine in engines:
            engine.dispose()
