"""Index transactions chosen as a deadlock's victim are run again, once each (the MariaDB case
of ``test_concurrency``: two server workers indexing new runs at once); other errors are not."""

from __future__ import annotations

import pymysql
import pytest
import sqlalchemy as sa

from lineage_plugin.store.deadlocks import ATTEMPTS, is_deadlock, retry_deadlocks

DEADLOCK = pymysql.err.OperationalError(
    1213, "Deadlock found when trying to get lock; try restarting transaction"
)


def counting_table(tmp_path):
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'index.db'}")
    meta = sa.MetaData()
    rows = sa.Table("rows", meta, sa.Column("n", sa.Integer))
    meta.create_all(engine)
    return engine, rows


def test_a_deadlock_victim_is_run_again_and_commits_once(tmp_path):
    engine, rows = counting_table(tmp_path)
    calls = []

    def transaction() -> str:
        with engine.begin() as conn:
            conn.execute(rows.insert(), [{"n": len(calls)}])
            calls.append(1)
            if len(calls) < ATTEMPTS:
                raise sa.exc.OperationalError("INSERT", {}, DEADLOCK)  # rolled back
        return "done"

    assert retry_deadlocks(transaction) == "done"
    with engine.connect() as conn:
        assert [r.n for r in conn.execute(sa.select(rows))] == [ATTEMPTS - 1]
    engine.dispose()


def test_other_errors_and_endless_deadlocks_are_raised(tmp_path):
    calls = []

    def broken() -> None:
        calls.append(1)
        raise sa.exc.OperationalError("INSERT", {}, pymysql.err.OperationalError(1146, "no table"))

    with pytest.raises(sa.exc.OperationalError, match="no table"):
        retry_deadlocks(broken)
    assert len(calls) == 1

    def always() -> None:
        calls.append(1)
        raise sa.exc.OperationalError("INSERT", {}, DEADLOCK)

    with pytest.raises(sa.exc.OperationalError):
        retry_deadlocks(always)
    assert len(calls) == 1 + ATTEMPTS
    assert is_deadlock(Exception("ERROR: deadlock detected"))  # PostgreSQL's words
