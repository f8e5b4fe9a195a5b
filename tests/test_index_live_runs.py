"""The live index of a run on a SQL backend: read from MLflow's own tables as the run writes its
lineage (``store.mlflow_tables.lineage_run``), row for row what ``reindex`` builds, mid-run and
after; and the index's tables, made in one transaction on SQLite too."""

from __future__ import annotations

import mlflow
import pyarrow as pa
import pytest
import sqlalchemy as sa
from deltalake import DeltaTable, write_deltalake
from helpers import read_pandas
from mlflow import MlflowClient
from postgres import SERVER_KINDS, on_backends
from test_lifecycle import assert_index_is_what_reindex_builds, index_rows

from lineage_plugin import tags as T
from lineage_plugin.store.index import LineageIndex, index_url
from lineage_plugin.store.index_schema import INDEX_SCHEMA_VERSION, tables
from lineage_plugin.store.mlflow_tables import lineage_run


def _run_rows(uri: str, run_id: str) -> dict[str, set[tuple]]:
    rows = index_rows(uri)
    return {k: {r for r in rows[k] if run_id in r} for k in ("runs", "reads", "writes")}


@on_backends(*SERVER_KINDS)
def test_a_run_is_indexed_as_it_reads_and_writes_and_matches_reindex(
    lineage_tracking, make_table, tmp_path
):
    uri = lineage_tracking
    raw = make_table("raw", commits=2)
    out = str(tmp_path / "features")
    with mlflow.start_run(run_name="features-job") as run:
        run_id = run.info.run_id
        frame = read_pandas(DeltaTable(raw, version=0))
        after_read = _run_rows(uri, run_id)
        write_deltalake(out, pa.Table.from_pandas(frame))
        after_write = _run_rows(uri, run_id)
    (indexed,) = after_read["runs"]
    assert "features-job" in indexed and "complete" in indexed
    assert run.info.start_time in indexed and run.info.user_id in indexed
    assert [r for r in after_read["reads"] if 0 in r and "raw" in r]  # version 0 of raw
    assert after_read["writes"] == set()
    assert len(after_write["writes"]) == 1 and after_write["reads"] == after_read["reads"]
    ended = _run_rows(uri, run_id)
    assert ended["reads"] == after_write["reads"] and ended["writes"] == after_write["writes"]
    rebuilt = assert_index_is_what_reindex_builds(uri)
    assert {r for r in rebuilt["runs"] if run_id in r} == ended["runs"]


def test_lineage_run_reads_a_runs_lineage_and_skips_runs_without_it(lineage_tracking, make_table):
    with mlflow.start_run(run_name="reader") as reader:
        read_pandas(DeltaTable(make_table("sales")))
    with mlflow.start_run() as plain:
        mlflow.log_param("p", 1)
    client = MlflowClient()
    client.set_tag(plain.info.run_id, "lineage.note", "not a lineage record")
    client.delete_run(reader.info.run_id)
    engine = sa.create_engine(index_url(lineage_tracking))
    with engine.connect() as conn:
        record, row = lineage_run(conn, reader.info.run_id)
        assert lineage_run(conn, plain.info.run_id) is None  # no lineage.status
        assert lineage_run(conn, "0" * 32) is None  # no such run
    engine.dispose()
    expected = client.get_run(reader.info.run_id)
    assert record == T.run_lineage_from_tags(reader.info.run_id, expected.data.tags)
    assert record.status == "complete" and len(record.inputs) == 1
    assert (row.run_name, row.start_time, row.user, row.deleted) == (
        "reader",
        expected.info.start_time,
        expected.info.user_id,
        True,
    )
    assert row.experiment_id == expected.info.experiment_id


def test_the_index_tables_are_made_all_at_once_or_not_at_all_on_sqlite(sqlite_uri):
    engine = sa.create_engine(sqlite_uri)
    with engine.begin() as conn:  # an index of the user's own with the name of one of ours
        conn.execute(sa.text("CREATE TABLE user_table (table_name TEXT)"))
        conn.execute(sa.text("CREATE INDEX lineage_writes_table_name ON user_table (table_name)"))
    with pytest.raises(sa.exc.OperationalError, match="already exists"):
        LineageIndex(sqlite_uri, engine=engine).ensure()  # lineage_writes is made last
    with engine.connect() as conn:
        names = set(sa.inspect(conn).get_table_names())
    assert "user_table" in names and not [n for n in names if n.startswith("lineage_")]
    with engine.begin() as conn:
        conn.execute(sa.text("DROP INDEX lineage_writes_table_name"))
    LineageIndex(sqlite_uri, engine=engine).ensure()
    with engine.connect() as conn:
        names = set(sa.inspect(conn).get_table_names())
        version = conn.execute(sa.text("SELECT value FROM lineage_index_meta")).scalar()
    engine.dispose()
    assert {n for n in names if n.startswith("lineage_")} == {t.name for t in tables().values()}
    assert version == str(INDEX_SCHEMA_VERSION)
