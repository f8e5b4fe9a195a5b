"""``reindex`` from MLflow's own tables (the SQL path) builds the index the API path builds."""

from __future__ import annotations

import contextlib
import sqlite3
import warnings

import mlflow
import pytest
import sqlalchemy as sa
from deltalake import DeltaTable
from helpers import read_pandas, tracking_at
from mlflow import MlflowClient
from postgres import fresh_database, on_backends

import lineage_plugin as lp
from lineage_plugin.errors import LineageError
from lineage_plugin.events import EVENT_PREFIX, RegistryEvent
from lineage_plugin.queries.reindex import reindex
from lineage_plugin.records import DeltaInput
from lineage_plugin.store.index import index_url
from lineage_plugin.tracking.capture import LineageWarning, session

WIDE = tuple(f"a_really_quite_long_column_name_number_{i:04d}" for i in range(300))


def index_contents(url: str) -> dict[str, list[tuple]]:
    """Every row of every ``lineage_*`` table at ``url``, sorted."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            names = [n for n in sa.inspect(conn).get_table_names() if n.startswith("lineage_")]
            return {
                n: sorted(tuple(r) for r in conn.execute(sa.text(f"SELECT * FROM {n}")))
                for n in sorted(names)
            }
    finally:
        engine.dispose()


def both_ways(uri: str) -> tuple[dict, dict, list[str]]:
    """The index contents after an API reindex, after a SQL one, and the SQL run's lines."""
    url = index_url(uri)
    api = reindex(tracking_uri=uri, source="api")
    by_api = index_contents(url)
    lines: list[str] = []
    sql = reindex(tracking_uri=uri, source="sql", progress=lines.append)
    assert {**sql.to_dict(), "seconds": 0} == {**api.to_dict(), "seconds": 0}
    return by_api, index_contents(url), lines


def a_registry(make_table, tmp_path) -> dict[str, str]:
    """Runs logged with the plugin (one deleted, one without lineage, one split over .partN
    tags, one incomplete), two models with aliases, stages and a deleted version, a prompt."""
    sales, customers = make_table("sales", commits=3), make_table("customers", commits=2)
    client = MlflowClient()
    runs = {}
    with mlflow.start_run() as run:
        read_pandas(DeltaTable(sales, version=0))
        read_pandas(DeltaTable(customers))
    runs["two_tables"] = run.info.run_id
    with mlflow.start_run() as run:
        read_pandas(DeltaTable(sales))
    runs["latest"] = run.info.run_id
    with mlflow.start_run() as run:  # one input longer than MLflow's tag limit
        session().record(DeltaInput(uri=f"file://{sales}", version=1, engine="test", columns=WIDE))
    runs["split"] = run.info.run_id
    with mlflow.start_run() as run, pytest.warns(LineageWarning):
        lp.log_delta_input(str(tmp_path / "not-a-table"))
        read_pandas(DeltaTable(customers, version=0))
    runs["incomplete"] = run.info.run_id
    with mlflow.start_run() as run:
        mlflow.log_param("alpha", 0.5)
    runs["no_lineage"] = run.info.run_id
    with mlflow.start_run() as run:
        read_pandas(DeltaTable(sales, version=2))
    runs["deleted"] = run.info.run_id
    client.delete_run(run.info.run_id)

    client.create_registered_model("m")
    for key in ("two_tables", "latest", "split"):
        client.create_model_version("m", "s3://bucket/model", run_id=runs[key])
    client.create_registered_model("n")
    client.create_model_version("n", "s3://bucket/model", run_id=runs["deleted"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # stages are deprecated, still used
        client.set_registered_model_alias("m", "champion", "1")
        client.transition_model_version_stage("m", "1", "Production")
        client.set_registered_model_alias("m", "champion", "2")
        client.transition_model_version_stage("m", 2, "Production", True)
        client.transition_model_version_stage("m", "3", "Staging")
        client.transition_model_version_stage("n", "1", "Staging")
    client.set_registered_model_alias("m", "challenger", "3")
    client.set_registered_model_alias("m", "old", "1")
    client.delete_registered_model_alias("m", "old")
    client.delete_model_version("m", "3")  # its aliases' events go on the registered model
    mlflow.genai.register_prompt(name="greeting", template="Hello {{name}}")
    mlflow.genai.register_prompt(name="greeting", template="Hi {{name}}")
    mlflow.genai.set_prompt_alias("greeting", "production", 1)
    client.delete_prompt_version("greeting", "1")  # an event on the prompt: left out too
    return runs


@on_backends()
def test_the_sql_path_builds_the_index_the_api_path_builds(lineage_tracking, make_table, tmp_path):
    runs = a_registry(make_table, tmp_path)
    engine = sa.create_engine(lineage_tracking.removeprefix("lineage+"))
    with engine.begin() as conn:  # as older MLflow left it: the name only in mlflow.runName
        conn.execute(
            sa.text("UPDATE runs SET name = '' WHERE run_uuid = :r"), {"r": runs["latest"]}
        )
    engine.dispose()
    by_api, by_sql, lines = both_ways(lineage_tracking)
    assert by_sql == by_api
    assert lines[0].startswith("reading MLflow's tables directly")
    # ... and that index holds what was logged, so the comparison is not of two empty ones
    indexed = {r[0]: r[6] for r in by_sql["lineage_runs"]}
    assert set(indexed) == set(runs.values()) - {runs["no_lineage"]}  # the deleted run too
    assert indexed[runs["incomplete"]] == "incomplete"
    deleted = {r[0] for r in by_sql["lineage_runs"] if r[7]}
    assert deleted == {runs["deleted"]}
    kept = {(r[0], r[1]): r[5] for r in by_sql["lineage_model_versions"]}
    assert kept[("m", 3)] == 1  # the deleted version, from the record it left on its model
    names = {r[0]: r[2] for r in by_sql["lineage_runs"]}
    assert names[runs["latest"]] == mlflow.get_run(runs["latest"]).data.tags["mlflow.runName"]
    reads = {(r[0], r[1]): r for r in by_sql["lineage_reads"]}
    assert len([k for k in reads if k[0] == runs["two_tables"]]) == 2
    assert reads[(runs["split"], 0)][5] == 1  # the input split over .partN tags
    assert [(r[0], r[1]) for r in by_sql["lineage_model_versions"]] == [
        ("m", 1),
        ("m", 2),
        ("m", 3),  # deleted, kept from the record it left on its model
        ("n", 1),
    ]
    held = {(r[0], r[1], r[2], r[3]) for r in by_sql["lineage_holdings"]}
    assert held == {
        ("m", "alias", "champion", 2),
        ("m", "stage", "Archived", 1),
        ("m", "stage", "Production", 2),
        ("n", "stage", "Staging", 1),
    }
    payloads = [RegistryEvent.from_json(r[-1]) for r in by_sql["lineage_events"]]
    deleted = [e for e in payloads if e.cause and e.cause.startswith("delete_model_version")]
    assert [(e.version, e.alias) for e in deleted] == [("3", "challenger")]
    assert [e.version for e in payloads if e.kind == "version_deleted"] == ["3"]
    assert not [e for e in payloads if e.name == "greeting"]


@on_backends("sqlite", "postgresql")
def test_the_api_path_is_still_there_and_auto_takes_the_tables(lineage_tracking, make_table):
    path = make_table()
    with mlflow.start_run():
        read_pandas(DeltaTable(path))
    lines: list[str] = []
    assert reindex(tracking_uri=lineage_tracking, source="api", progress=lines.append).runs == 1
    assert lines[0].startswith("reading MLflow through its API")
    lines.clear()
    assert reindex(tracking_uri=lineage_tracking, progress=lines.append).reads == 1
    assert lines[0].startswith("reading MLflow's tables directly")
    assert lines[-1].startswith("wrote the index at")


def test_an_index_in_another_database_is_rebuilt_the_same(
    lineage_tracking, make_table, tmp_path, monkeypatch
):
    """The index elsewhere (MLFLOW_LINEAGE_INDEX_URI): MLflow's file is read through a
    read-only connection of its own."""
    path = make_table(commits=2)
    with mlflow.start_run() as run:
        read_pandas(DeltaTable(path, version=0))
    MlflowClient().create_registered_model("m")
    MlflowClient().create_model_version("m", "s3://bucket/model", run_id=run.info.run_id)
    MlflowClient().set_registered_model_alias("m", "champion", "1")
    monkeypatch.setenv("MLFLOW_LINEAGE_INDEX_URI", f"sqlite:///{tmp_path / 'index.db'}")
    by_api, by_sql, _ = both_ways(lineage_tracking)
    assert by_sql == by_api
    assert len(by_sql["lineage_events"]) == 1 and len(by_sql["lineage_reads"]) == 1


@pytest.mark.parametrize("dialect", ["sqlite", "postgresql"])
def test_a_database_without_mlflows_tables_is_a_clear_error(request, dialect):
    with fresh_database(request, dialect, "empty.db", migrated=False) as url:
        if dialect == "sqlite":
            with contextlib.closing(sqlite3.connect(url.removeprefix("sqlite:///"))) as con:
                con.execute("CREATE TABLE notes (x)")
        for source in ("auto", "sql"):
            with pytest.raises(LineageError) as caught:
                reindex(tracking_uri=f"lineage+{url}", source=source)
            message = str(caught.value)
            assert "holds none of MLflow's tables" in message
            assert "mlflow db upgrade" in message and "source='api'" in message
        engine = sa.create_engine(url)
        with engine.connect() as conn:  # refused before the index was made
            assert not [t for t in sa.inspect(conn).get_table_names() if "lineage" in t]
        engine.dispose()


def test_a_database_missing_one_of_mlflows_tables_names_it(sqlite_uri):
    with contextlib.closing(sqlite3.connect(sqlite_uri.removeprefix("sqlite:///"))) as con:
        con.execute("DROP TABLE registered_model_aliases")
    with pytest.raises(LineageError, match="lacks MLflow .*'s registered_model_aliases"):
        reindex(tracking_uri=f"lineage+{sqlite_uri}")


def test_sql_needs_a_sql_backend_and_the_source_must_be_known(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    uri = f"lineage+file://{tmp_path / 'mlruns'}"
    with tracking_at(uri):
        with pytest.raises(LineageError, match="source='api'"):
            reindex(tracking_uri=uri, source="sql")
        lines: list[str] = []
        assert reindex(tracking_uri=uri, progress=lines.append).runs == 0
        assert lines[0].startswith("reading MLflow through its API")
    with pytest.raises(LineageError, match="Unknown reindex source 'fast'"):
        reindex(tracking_uri=uri, source="fast")


def test_event_tags_are_read_back_identically(lineage_tracking, make_table):
    """Event tags as MLflow holds them: the payloads in the index are the tags' values."""
    path = make_table()
    with mlflow.start_run() as run:
        read_pandas(DeltaTable(path))
    client = MlflowClient()
    client.create_registered_model("m")
    client.create_model_version("m", "s3://bucket/model", run_id=run.info.run_id)
    client.set_registered_model_alias("m", "champion", "1")
    reindex(tracking_uri=lineage_tracking, source="sql")
    tags = client.get_model_version("m", "1").tags
    expected = sorted(v for k, v in tags.items() if k.startswith(EVENT_PREFIX))
    indexed = index_contents(index_url(lineage_tracking))["lineage_events"]
    assert sorted(r[-1] for r in indexed) == expected


@on_backends()
def test_vacuums_registry_read_from_mlflows_tables_is_what_the_api_gives(
    lineage_tracking, make_table, tmp_path
):
    from lineage_plugin.queries.protected import registry_versions
    from lineage_plugin.queries.workspace import Workspace
    from lineage_plugin.store import registry_tables
    from lineage_plugin.store.mlflow_database import MlflowDatabase, sql_backend_url

    a_registry(make_table, tmp_path)
    MlflowClient().set_model_version_tag("n", "1", "lineage.protect", "true")
    ws = Workspace(lineage_tracking)
    with MlflowDatabase(sql_backend_url(lineage_tracking)).connect() as conn:
        direct = registry_tables.registry_versions(conn, workspace="default")
    api = registry_tables.from_api(ws.model_versions(), ws.registered_models())
    assert direct == api
    assert registry_versions(ws) == direct == registry_versions(ws, direct=False)
    by = {(v.name, v.version): v for v in direct}
    assert list(by) == [("m", "2"), ("m", "1"), ("n", "1")]  # m v3 deleted, the prompt left out
    assert by["m", "2"].aliases == ("champion",) and by["m", "2"].current_stage == "Production"
    assert by["m", "1"].aliases == () and by["m", "1"].current_stage == "Archived"
    assert by["n", "1"].tags["lineage.protect"] == "true"
    assert all(v.run_id and v.source == "s3://bucket/model" for v in direct)
    assert all(any(k.startswith("lineage.manifest") for k in v.tags) for v in direct)
    assert not any(k.startswith(EVENT_PREFIX) for v in direct for k in v.tags)
