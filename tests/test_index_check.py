"""``mlflow-lineage reindex --check`` (issue 13, point 5): the index compared with MLflow.

Real stores (``lineage+`` on SQLite copies of the session's migrated database, and PostgreSQL),
real Delta tables, the real CLI. Drift is made on purpose behind the plugin's back (a plain
``sqlite:`` store, plain SQL) and must be reported with its key; ``reindex`` repairs it. The
check itself never writes: the live index is the same, row for row, before and after.
"""

from __future__ import annotations

import json
import warnings
from typing import Any

import mlflow
import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from deltalake import DeltaTable, write_deltalake
from helpers import read_pandas, tracking_at
from mlflow import MlflowClient
from postgres import SERVER_KINDS, on_backends
from test_json_schema import README, documented_schemas, missing_top_level, undocumented
from test_reindex_sql import index_contents

from lineage_plugin.cli import cli
from lineage_plugin.errors import LineageError
from lineage_plugin.events import EVENT_PREFIX
from lineage_plugin.queries.index_check import IGNORED, check_index
from lineage_plugin.store.index import index_url

REPAIR = "Run `mlflow-lineage reindex` to repair it."


def workflow(make_table) -> dict[str, str]:
    """Runs reading a real Delta table, two registrations, an alias set and moved, stage
    transitions (one archiving the other version), an alias set and deleted; and a third run
    nobody registered, which also writes a table."""
    sales = make_table("sales", commits=2)
    client = MlflowClient()
    runs = {}
    for name, version in (("first", 0), ("second", None), ("spare", 1)):
        with mlflow.start_run(run_name=name) as run:
            data = read_pandas(DeltaTable(sales, version=version))
            mlflow.log_metric("rmse", 0.5)
            if name == "spare":
                write_deltalake(sales + "_features", data)
        runs[name] = run.info.run_id
    client.create_registered_model("sales_model")
    client.create_model_version("sales_model", "s3://bucket/model", run_id=runs["first"])
    client.create_model_version("sales_model", "s3://bucket/model", run_id=runs["second"])
    client.set_registered_model_alias("sales_model", "champion", "1")
    client.set_registered_model_alias("sales_model", "champion", "2")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # stages are deprecated, still used
        client.transition_model_version_stage("sales_model", "1", "Production")
        client.transition_model_version_stage("sales_model", 2, "Production", True)  # int: PG
    client.set_registered_model_alias("sales_model", "old", "1")
    client.delete_registered_model_alias("sales_model", "old")
    return runs


def cli_run(uri: str, *args: str, code: int) -> Any:
    result = CliRunner().invoke(cli, ["reindex", *args, "--tracking-uri", uri])
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    return result


def as_json(uri: str, *args: str, code: int) -> dict[str, Any]:
    return json.loads(cli_run(uri, "--check", "--json", *args, code=code).stdout)


def drift(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The tables that differ, with their counts and keys."""
    keep = ("missing", "extra", "different", "missing_keys", "extra_keys", "different_rows")
    return {
        t["table"]: {k: t[k] for k in keep if t[k]}
        for t in report["tables"]
        if t["missing"] or t["extra"] or t["different"]
    }


def documented(report: dict[str, Any]) -> None:
    schemas = documented_schemas(README.read_text(encoding="utf-8"))
    assert missing_top_level(report, schemas["index_check"], schemas) == set()
    assert undocumented(report, schemas["index_check"], schemas, "index_check") == []


@on_backends(*SERVER_KINDS)
def test_after_a_normal_workflow_the_index_is_in_sync(lineage_tracking, make_table):
    workflow(make_table)
    before = index_contents(index_url(lineage_tracking))
    text = cli_run(lineage_tracking, "--check", code=0).output
    assert "The lineage index is in sync with MLflow (its tables, read directly)" in text
    assert "3 runs, 3 reads, 1 writes, 2 model_versions" in text and REPAIR not in text
    assert "reading MLflow's tables directly" in text  # reindex's progress lines (stderr)
    for source in ("sql", "api"):
        report = as_json(lineage_tracking, "--source", source, code=0)
        assert report["in_sync"] and report["index_exists"] and report["source"] == source
        counts = {t["table"]: (t["in_mlflow"], t["indexed"]) for t in report["tables"]}
        assert counts["runs"] == (3, 3) and counts["reads"] == (3, 3)
        assert counts["writes"] == (1, 1)
        assert counts["model_versions"] == (2, 2) and counts["holdings"][0] >= 3
        assert counts["events"][0] == counts["events"][1] >= 6
        assert report["ignored"] == []
        documented(report)
    assert index_contents(index_url(lineage_tracking)) == before  # the check wrote nothing


@on_backends(*SERVER_KINDS)
def test_drift_made_behind_the_plugins_back_is_reported_then_repaired(
    lineage_tracking, make_table, tmp_path
):
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    runs = workflow(make_table)
    plain = lineage_tracking.removeprefix("lineage+")
    # A run hard-deleted through a plain store: the index still has it and its read.
    SqlAlchemyStore(plain, str(tmp_path / "artifacts"))._hard_delete_run(runs["spare"])
    engine = sa.create_engine(plain)
    with engine.begin() as conn:
        # An event tag of version 1 deleted in MLflow: the index still has the event.
        key = conn.dialect.identifier_preparer.quote("key")  # a reserved word in MySQL
        event_key = conn.execute(
            sa.text(
                f"SELECT {key} FROM model_version_tags WHERE name = 'sales_model' "
                f"AND version = 1 AND {key} LIKE :p ORDER BY {key} LIMIT 1"
            ),
            {"p": f"{EVENT_PREFIX}%"},
        ).scalar_one()
        conn.execute(
            sa.text(f"DELETE FROM model_version_tags WHERE name = 'sales_model' AND {key} = :k"),
            {"k": event_key},
        )
        # Index rows deleted and changed: a read goes missing, a model version differs.
        conn.execute(sa.text("DELETE FROM lineage_reads WHERE run_id = :r"), {"r": runs["first"]})
        conn.execute(
            sa.text("UPDATE lineage_model_versions SET run_id = 'elsewhere' WHERE version = 2")
        )
    engine.dispose()
    before = index_contents(index_url(lineage_tracking))

    text = cli_run(lineage_tracking, "--check", code=1).output
    assert "The lineage index differs from MLflow" in text
    assert f"extra: run_id={runs['spare']}" in text
    assert f"extra: run_id={runs['spare']} position=0" in text
    assert f"missing: run_id={runs['first']} position=0" in text
    assert "different: name=sales_model version=2 (run_id)" in text
    event_id = event_key.removeprefix(EVENT_PREFIX)
    assert f"extra: name=sales_model version=1 event_id={event_id}" in text
    assert text.rstrip().endswith(REPAIR)

    found = {}
    for source in ("sql", "api"):
        report = as_json(lineage_tracking, "--source", source, code=1)
        assert not report["in_sync"]
        documented(report)
        found[source] = drift(report)
    assert found["api"] == found["sql"]
    tables = found["sql"]
    assert tables["runs"] == {"extra": 1, "extra_keys": [{"run_id": runs["spare"]}]}
    assert tables["reads"] == {
        "missing": 1,
        "extra": 1,
        "missing_keys": [{"run_id": runs["first"], "position": 0}],
        "extra_keys": [{"run_id": runs["spare"], "position": 0}],
    }
    assert tables["writes"] == {
        "extra": 1,
        "extra_keys": [{"run_id": runs["spare"], "position": 0}],
    }
    assert tables["model_versions"] == {
        "different": 1,
        "different_rows": [{"key": {"name": "sales_model", "version": "2"}, "columns": ["run_id"]}],
    }
    assert tables["events"]["extra_keys"] == [
        {"name": "sales_model", "version": "1", "event_id": event_id}
    ]
    assert index_contents(index_url(lineage_tracking)) == before  # the checks wrote nothing

    cli_run(lineage_tracking, code=0)  # reindex repairs it
    assert as_json(lineage_tracking, code=0)["in_sync"]


def test_the_text_shows_a_few_keys_and_counts_the_rest(lineage_tracking, make_table):
    workflow(make_table)
    engine = sa.create_engine(lineage_tracking.removeprefix("lineage+"))
    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM lineage_events"))
    engine.dispose()
    report = as_json(lineage_tracking, code=1)
    events = next(t for t in report["tables"] if t["table"] == "events")
    assert events["missing"] == events["in_mlflow"] >= 6 and events["indexed"] == 0
    assert len(events["missing_keys"]) == 5
    text = cli_run(lineage_tracking, "--check", code=1).output
    assert f"... and {events['missing'] - 5} more" in text
    assert "runs, reads, writes, model_versions, holdings: in sync" in text


def test_without_an_index_everything_is_missing_and_none_is_made(lineage_tracking, make_table):
    workflow(make_table)
    plain = lineage_tracking.removeprefix("lineage+")
    engine = sa.create_engine(plain)
    with engine.begin() as conn:
        for name in sa.inspect(conn).get_table_names():
            if name.startswith("lineage_"):
                conn.execute(sa.text(f"DROP TABLE {name}"))
    engine.dispose()
    for uri in (lineage_tracking, plain):
        for source in ("sql", "api"):
            report = as_json(uri, "--source", source, code=1)
            assert not report["index_exists"]
            assert {t["table"]: (t["missing"], t["indexed"]) for t in report["tables"]} == {
                t["table"]: (t["in_mlflow"], 0) for t in report["tables"]
            }
        text = cli_run(uri, "--check", code=1).output
        assert "There is no lineage index at" in text and text.rstrip().endswith(REPAIR)
    assert index_contents(index_url(lineage_tracking)) == {}  # no lineage_* table was made


def test_an_empty_store_without_an_index_is_in_sync(sqlite_uri):
    report = as_json(sqlite_uri, code=0)
    assert not report["index_exists"] and report["in_sync"]
    assert index_contents(sqlite_uri) == {}


def test_an_index_file_beside_a_file_store_is_checked(tmp_path, make_table, monkeypatch):
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    uri = f"lineage+file://{tmp_path / 'mlruns'}"
    with tracking_at(uri), mlflow.start_run():
        read_pandas(DeltaTable(make_table()))
    report = as_json(uri, code=0)
    assert report["source"] == "api" and report["index_exists"]
    assert report["index_url"].endswith("mlruns.lineage.db")
    runs = next(t for t in report["tables"] if t["table"] == "runs")
    assert (runs["in_mlflow"], runs["indexed"]) == (1, 1)
    cli_run(uri, "--check", "--source", "sql", code=2)  # no SQL database to read


@pytest.mark.parametrize(("version", "advice"), [(2, "reindex"), (99, "upgrade")])
def test_an_index_of_another_schema_version_is_refused(
    lineage_tracking, make_table, version, advice
):
    workflow(make_table)
    engine = sa.create_engine(lineage_tracking.removeprefix("lineage+"))
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE lineage_index_meta SET value = :v"), {"v": str(version)})
    engine.dispose()
    before = index_contents(index_url(lineage_tracking))
    result = cli_run(lineage_tracking, "--check", code=2)
    assert f"schema version {version}" in result.output
    assert ("Run `mlflow-lineage reindex`" in result.output) == (advice == "reindex")
    assert ("Upgrade mlflow-delta-lineage" in result.output) == (advice == "upgrade")
    assert "reading MLflow" not in result.output  # refused before MLflow is read
    assert index_contents(index_url(lineage_tracking)) == before


def test_an_unknown_source_is_refused():
    with pytest.raises(LineageError, match="Unknown reindex source 'tables'"):
        check_index(tracking_uri="sqlite:///nowhere.db", source="tables")


def test_every_ignored_column_is_a_column_with_a_reason():
    from lineage_plugin.store.index_schema import tables

    for table, columns in IGNORED.items():
        for column, reason in columns.items():
            assert column in tables()[table].c and len(reason) > 20


def test_every_column_but_the_ignored_ones_is_compared(lineage_tracking, make_table):
    """Derived from the table definitions: a change to any one column of any table is
    reported as that column, and a change to an ignored column is not."""
    from lineage_plugin.store.index_schema import tables

    workflow(make_table)
    engine = sa.create_engine(lineage_tracking.removeprefix("lineage+"))
    checked = []
    for name in ("runs", "reads", "writes", "model_versions", "events", "holdings"):
        table = tables()[name]
        keys = [c.name for c in table.primary_key.columns]
        for column in (c for c in table.columns if c.name not in keys):
            with engine.begin() as conn:
                row = conn.execute(sa.select(table).order_by(*table.primary_key)).first()
                old = getattr(row, column.name)
                new = (old or 0) + 1 if column.type.python_type is int else f"{old or ''}x"
                where = sa.and_(*(table.c[k] == getattr(row, k) for k in keys))
                conn.execute(table.update().where(where).values({column.name: new}))
            report = check_index(tracking_uri=lineage_tracking)
            found = {t.table: t for t in report.tables if not t.in_sync}
            if column.name in IGNORED.get(name, {}):
                assert found == {}, (name, column.name)
            else:
                assert list(found) == [name], (name, column.name)
                assert found[name].different_rows[0]["columns"] == [column.name]
                assert found[name].differing_columns == {column.name: 1}
                checked.append(f"{name}.{column.name}")
            with engine.begin() as conn:
                conn.execute(table.update().where(where).values({column.name: old}))
    engine.dispose()
    expected = {"runs.run_name", "reads.version", "writes.version", "events.payload"}
    assert expected | {"holdings.since"} <= set(checked)


def test_an_index_in_another_database_is_checked(
    lineage_tracking, make_table, tmp_path, monkeypatch
):
    elsewhere = f"sqlite:///{tmp_path / 'elsewhere' / 'index.db'}"
    monkeypatch.setenv("MLFLOW_LINEAGE_INDEX_URI", elsewhere)
    workflow(make_table)
    report = as_json(lineage_tracking, code=0)
    assert report["index_url"] == elsewhere and report["index_exists"]
    assert index_contents(lineage_tracking.removeprefix("lineage+")) == {}  # none in MLflow's
    engine = sa.create_engine(elsewhere)
    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM lineage_holdings WHERE kind = 'alias'"))
    engine.dispose()
    holdings = drift(as_json(lineage_tracking, code=1))["holdings"]
    assert holdings["missing_keys"] == [
        {"name": "sales_model", "kind": "alias", "label": "champion", "version": "2"}
    ]
