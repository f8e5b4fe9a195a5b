"""The registry event log: every stage transition and alias change, recorded exactly once."""

from __future__ import annotations

import json
import shutil
import warnings

import helpers
import pytest
import sqlalchemy as sa
from helpers import tracking_at
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from postgres import SERVER_KINDS, SQL_BACKENDS, fresh_database, on_backends
from server import mlflow_server

from lineage_plugin.errors import LineageError, LineageWarning
from lineage_plugin.events import EVENT_PREFIX, RegistryEvent
from lineage_plugin.store.index import LineageIndex, index_url
from lineage_plugin.store.index_schema import INDEX_SCHEMA_VERSION

SALES_V7 = json.dumps(
    {"uri": "file:///data/sales", "version": 7, "engine": "deltalake", "name": "sales"}
)


def registry_workout(client: MlflowClient, name: str = "m") -> None:
    """Two versions; alias set, moved, deleted; two transitions, the second archiving."""
    client.create_registered_model(name)
    experiment = client.create_experiment(f"{name}-training")
    run = client.create_run(experiment)
    client.set_tag(run.info.run_id, "lineage.input.000", SALES_V7)  # as capture writes it
    for _ in range(2):
        client.create_model_version(name, "s3://bucket/model", run_id=run.info.run_id)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # stages are deprecated, still used
        client.set_registered_model_alias(name, "champion", "1")
        client.set_registered_model_alias(name, "champion", "2")
        client.transition_model_version_stage(name, "1", "Production")
        # The version as a number: stock MLflow 3.17 on psycopg 3 (plain postgresql:// URLs)
        # fails to archive when given the version string (mlflow/mlflow#24592).
        client.transition_model_version_stage(name, 2, "Production", True)
    client.delete_registered_model_alias(name, "champion")


EXPECTED = [
    ("1", "alias_set", "champion", None, ()),
    ("2", "alias_set", "champion", None, ("1",)),
    ("1", "stage_transition", None, "Production", ()),
    ("2", "stage_transition", None, "Production", ("1",)),
    ("1", "stage_transition", None, "Archived", ()),
    ("2", "alias_deleted", "champion", None, ()),
]


def events_in_mlflow(client: MlflowClient, name: str = "m") -> list[RegistryEvent]:
    events = []
    for version in ("1", "2"):
        tags = client.get_model_version(name, version).tags
        events += [
            RegistryEvent.from_json(v) for k, v in tags.items() if k.startswith(EVENT_PREFIX)
        ]
    return sorted(events, key=lambda e: e.event_id)


def summary(events: list[RegistryEvent]) -> list[tuple]:
    return [(e.version, e.kind, e.alias, e.stage, e.replaced) for e in events]


def indexed_events(url: str, name: str = "m") -> list[RegistryEvent]:
    return helpers.indexed_events(url, name)


@pytest.fixture(params=[*SQL_BACKENDS, "file"])
def store_uri(request, tmp_path, monkeypatch):
    if request.param == "file":
        monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
        yield f"lineage+file://{tmp_path / 'mlruns'}"
        return
    with fresh_database(request, request.param) as url:
        yield f"lineage+{url}"


@pytest.fixture(params=SERVER_KINDS)
def empty_database(request):
    """An empty database on each SQL backend, for an index of its own."""
    with fresh_database(request, request.param, "index.db", migrated=False) as url:
        yield url


def test_every_change_is_an_event_in_mlflow_and_in_the_index(store_uri):
    with tracking_at(store_uri):
        client = MlflowClient()
        registry_workout(client)
        events = events_in_mlflow(client)
        assert summary(events) == EXPECTED
        first = events[0]
        assert first.user and first.run_id == client.get_model_version("m", "1").run_id
        assert [(t.name, t.version) for t in first.tables] == [("sales", 7)]
        archived = events[4]
        assert archived.previous_stage == "Production"
        assert "archive_existing_versions" in archived.cause
        # what each version holds now, as tags
        v1, v2 = client.get_model_version("m", "1"), client.get_model_version("m", "2")
        assert (v1.tags["lineage.stage"], v2.tags["lineage.stage"]) == ("Archived", "Production")
        assert "lineage.aliases" not in v1.tags and "lineage.aliases" not in v2.tags
        client.set_registered_model_alias("m", "best", "1")
        client.set_registered_model_alias("m", "prod", "1")
        assert client.get_model_version("m", "1").tags["lineage.aliases"] == "best, prod"
    assert summary(indexed_events(index_url(store_uri))) == [
        *EXPECTED,
        ("1", "alias_set", "best", None, ()),
        ("1", "alias_set", "prod", None, ()),
    ]


@on_backends(*SERVER_KINDS)
def test_deleting_a_version_records_the_aliases_it_took_along(lineage_tracking):
    client = MlflowClient()
    registry_workout(client)
    client.set_registered_model_alias("m", "old", "1")
    events_in_mlflow_before = events_in_mlflow(client)
    client.delete_model_version("m", "1")
    model_tags = client.get_registered_model("m").tags
    on_model = [
        RegistryEvent.from_json(v) for k, v in model_tags.items() if k.startswith(EVENT_PREFIX)
    ]
    # the version's own history moved onto the model (test_lifecycle checks it in full)
    before = {e.event_id for e in events_in_mlflow_before if e.version == "1"}
    assert before and before <= {e.event_id for e in on_model}
    event, gone = sorted((e for e in on_model if e.event_id not in before), key=lambda e: e.kind)
    assert (event.kind, event.version, event.alias) == ("alias_deleted", "1", "old")
    assert event.cause == "delete_model_version: version 1"
    assert (gone.kind, gone.version) == ("version_deleted", "1")
    url = index_url(lineage_tracking)
    with sa.create_engine(url).connect() as conn:
        deleted = conn.execute(
            sa.text("SELECT deleted FROM lineage_model_versions WHERE name='m' AND version=1")
        ).scalar()
        held = conn.execute(sa.text("SELECT * FROM lineage_holdings WHERE version=1")).all()
    assert deleted == 1 and held == []


@on_backends()
def test_a_refused_change_records_nothing(lineage_tracking):
    client = MlflowClient()
    registry_workout(client)
    before = summary(events_in_mlflow(client))
    with pytest.raises(MlflowException):
        client.set_registered_model_alias("m", "champion", "99")
    with pytest.raises(MlflowException):
        client.transition_model_version_stage("m", "1", "Archived", archive_existing_versions=True)
    with pytest.raises(MlflowException):
        client.transition_model_version_stage("m", "1", "Nonsense")
    assert summary(events_in_mlflow(client)) == before
    assert summary(indexed_events(index_url(lineage_tracking))) == before


def test_setting_the_same_alias_again_is_not_an_event(lineage_tracking):
    client = MlflowClient()
    registry_workout(client)
    client.set_registered_model_alias("m", "again", "2")
    client.set_registered_model_alias("m", "again", "2")
    assert [e.alias for e in events_in_mlflow(client)].count("again") == 1


@on_backends(*SERVER_KINDS)
def test_index_lives_in_its_own_tables_with_its_own_schema_version(backend_uri, lineage_tracking):
    engine = sa.create_engine(backend_uri)
    with engine.connect() as conn:
        alembic_before = conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()
    registry_workout(MlflowClient())
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar() == (
            alembic_before
        )
        meta = sa.table("lineage_index_meta", sa.column("key"), sa.column("value"))  # quoted
        version = conn.execute(
            sa.select(meta.c.value).where(meta.c.key == "schema_version")
        ).scalar()
        names = set(sa.inspect(conn).get_table_names())
    assert int(version) == INDEX_SCHEMA_VERSION
    ours = {n for n in names if n.startswith("lineage_")}
    assert ours == {
        "lineage_index_meta",
        "lineage_runs",
        "lineage_reads",
        "lineage_writes",
        "lineage_model_versions",
        "lineage_events",
        "lineage_holdings",
    }


def test_an_index_from_a_newer_plugin_is_refused(empty_database):
    index = LineageIndex(empty_database)
    index.ensure()
    with index.engine.begin() as conn:
        conn.execute(sa.text("UPDATE lineage_index_meta SET value='99'"))
    with pytest.raises(LineageError, match="Upgrade mlflow-delta-lineage"):
        LineageIndex(index.url, engine=index.engine).ensure()


def test_index_uri_override(tmp_path, monkeypatch, lineage_tracking):
    override = f"sqlite:///{tmp_path / 'elsewhere.db'}"
    monkeypatch.setenv("MLFLOW_LINEAGE_INDEX_URI", override)
    with tracking_at(lineage_tracking):  # stores built again, with the override
        registry_workout(MlflowClient(), name="other")
    assert summary(indexed_events(override, "other")) == EXPECTED


@pytest.fixture(scope="module")
def servers(tmp_path_factory, _migrated_sqlite):
    root = tmp_path_factory.mktemp("event-servers")
    for kind in ("lineage", "plain"):
        (root / kind).mkdir()
        shutil.copyfile(_migrated_sqlite, root / kind / "mlflow.db")
    with (
        mlflow_server(f"lineage+sqlite:///{root / 'lineage' / 'mlflow.db'}", root / "lineage") as a,
        mlflow_server(f"sqlite:///{root / 'plain' / 'mlflow.db'}", root / "plain") as b,
    ):
        yield {
            "lineage": (a, f"sqlite:///{root / 'lineage' / 'mlflow.db'}"),
            "plain": (b, f"sqlite:///{root / 'plain' / 'mlflow.db'}"),
        }


@pytest.mark.slow
@pytest.mark.parametrize(
    ("client_plugin", "server"),
    [(True, "plain"), (False, "lineage"), (True, "lineage")],
    ids=["plugin-client", "plugin-server", "both"],
)
def test_exactly_once_whichever_side_runs_the_plugin(
    servers, client_plugin, server, tmp_path, monkeypatch
):
    monkeypatch.setenv("MLFLOW_LINEAGE_HOME", str(tmp_path / "client-index"))
    url, server_db = servers[server]
    name = f"model-{client_plugin}-{server}"
    uri = f"lineage+{url}" if client_plugin else url
    with tracking_at(uri):
        registry_workout(MlflowClient(), name)
    events = events_in_mlflow(MlflowClient(url, url), name)
    assert summary(events) == EXPECTED  # each change once, not twice
    if client_plugin:
        assert summary(indexed_events(index_url(uri), name)) == EXPECTED
        assert {e.user for e in events} == {events[0].user} and events[0].user
    if server == "lineage":
        assert summary(indexed_events(server_db, name)) == EXPECTED


@pytest.mark.slow
def test_an_event_tag_written_by_a_client_is_indexed_by_the_server(servers):
    url, server_db = servers["lineage"]
    client = MlflowClient(url, url)
    client.create_registered_model("tagged")
    client.create_model_version("tagged", "s3://b/m")
    event = RegistryEvent(
        event_id="1700000000000-00abcdef", kind="alias_set", name="tagged", version="1",
        time=1700000000000, alias="x",
    )  # fmt: skip
    client.set_model_version_tag("tagged", "1", event.tag_key, event.to_json())
    assert [e.event_id for e in indexed_events(server_db, "tagged")] == [event.event_id]


def test_a_transition_without_archiving_replaces_nothing(lineage_tracking):
    client = MlflowClient()
    client.create_registered_model("both")
    for _ in range(2):
        client.create_model_version("both", "s3://bucket/model")
    client.transition_model_version_stage("both", "1", "Production")
    client.transition_model_version_stage("both", "2", "Production")  # v1 stays in Production
    events = events_in_mlflow(client, "both")
    assert [(e.version, e.stage, e.replaced) for e in events] == [
        ("1", "Production", ()),
        ("2", "Production", ()),
    ]
    assert client.get_model_version("both", "1").tags["lineage.stage"] == "Production"


def test_lineage_tags_changed_after_registration_are_what_later_events_carry(lineage_tracking):
    client = MlflowClient()
    registry_workout(client, "retagged")
    manifest = json.dumps(
        {"run_id": "r9", "status": "complete", "inputs": [json.loads(SALES_V7) | {"version": 9}]}
    )
    with pytest.warns(LineageWarning, match="lineage.manifest is a key the plugin writes"):
        client.set_model_version_tag("retagged", "1", "lineage.manifest", manifest)
    client.set_registered_model_alias("retagged", "fixed", "1")
    last = events_in_mlflow(client, "retagged")[-1]
    assert (last.alias, [t.version for t in last.tables]) == ("fixed", [9])


@on_backends("postgresql", "postgresql+psycopg2")
def test_an_event_the_database_refuses_never_breaks_the_registry_call(
    lineage_tracking, backend_uri, caplog
):
    """PostgreSQL aborts a transaction after a failed statement: the plugin's must not."""
    client = MlflowClient()
    registry_workout(client, "guarded")
    engine = sa.create_engine(backend_uri)
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "ALTER TABLE model_version_tags ADD CONSTRAINT no_lineage_events "
                "CHECK (key NOT LIKE 'lineage.event.%') NOT VALID"  # new rows only
            )
        )
    engine.dispose()
    client.set_registered_model_alias("guarded", "champion", "1")
    assert str(client.get_model_version_by_alias("guarded", "champion").version) == "1"
    assert "could not record a registry event" in caplog.text
    # nothing half-written: no event, no holding tag, nothing in the index
    assert summary(events_in_mlflow(client, "guarded")) == EXPECTED
    assert "lineage.aliases" not in client.get_model_version("guarded", "1").tags
    assert summary(indexed_events(backend_uri, "guarded")) == EXPECTED


V1_LAYOUT = """
CREATE TABLE lineage_index_meta ("key" VARCHAR(64) PRIMARY KEY, value VARCHAR(256) NOT NULL);
INSERT INTO lineage_index_meta VALUES ('schema_version', '1');
CREATE TABLE lineage_runs (run_id VARCHAR(32) PRIMARY KEY, experiment_id VARCHAR(32),
  run_name VARCHAR(250), start_time BIGINT, end_time BIGINT, "user" VARCHAR(256),
  status VARCHAR(16) NOT NULL);
CREATE TABLE lineage_reads (run_id VARCHAR(32), position INTEGER, table_uri VARCHAR(1024)
  NOT NULL, table_name VARCHAR(256), table_id VARCHAR(64), version BIGINT NOT NULL,
  commit_timestamp BIGINT, operation VARCHAR(64), context VARCHAR(64), engine VARCHAR(32),
  PRIMARY KEY (run_id, position));
CREATE INDEX lineage_reads_table_version ON lineage_reads (table_uri, version);
CREATE INDEX lineage_reads_table_name ON lineage_reads (table_name);
CREATE TABLE lineage_model_versions (name VARCHAR(256), version INTEGER, run_id VARCHAR(32),
  created BIGINT, status VARCHAR(16), deleted INTEGER NOT NULL, PRIMARY KEY (name, version));
CREATE INDEX lineage_model_versions_run ON lineage_model_versions (run_id);
CREATE TABLE lineage_events (event_id VARCHAR(32) PRIMARY KEY, name VARCHAR(256) NOT NULL,
  version INTEGER NOT NULL, kind VARCHAR(32) NOT NULL, time BIGINT NOT NULL,
  stage VARCHAR(32), alias VARCHAR(256), payload TEXT NOT NULL);
CREATE INDEX lineage_events_model_time ON lineage_events (name, time);
CREATE TABLE lineage_holdings (name VARCHAR(256), kind VARCHAR(8), label VARCHAR(256),
  version INTEGER, since BIGINT, PRIMARY KEY (name, kind, label, version));
CREATE INDEX lineage_holdings_version ON lineage_holdings (name, version);
INSERT INTO lineage_runs VALUES ('r1', '0', 'train', 1700000000000, NULL, 'me', 'complete');
INSERT INTO lineage_reads VALUES ('r1', 0, 'file:///data/sales', 'sales', NULL, 7, NULL, NULL,
  'training', 'deltalake');
INSERT INTO lineage_events VALUES ('1700000000001-00abcdef', 'm', 1, 'alias_set',
  1700000000001, NULL, 'champion', '{"event_id":"1700000000001-00abcdef","kind":"alias_set",
  "name":"m","version":"1","time":1700000000001,"alias":"champion"}');
"""


def test_an_index_of_schema_version_1_is_migrated_in_place(empty_database, tmp_path):
    url = empty_database
    layout = V1_LAYOUT
    setup = sa.create_engine(url)  # its own: the session's sql_mode must not reach the index
    with setup.begin() as conn:
        if conn.dialect.name == "mysql":
            # The layout as MySQL takes it: "quoted" names, an index on a prefix of the URI
            # (3072 bytes at most per key), keys compared exactly, as the plugin makes them.
            conn.exec_driver_sql("SET SESSION sql_mode = CONCAT(@@sql_mode, ',ANSI_QUOTES')")
            conn.exec_driver_sql("ALTER DATABASE COLLATE utf8mb4_bin")
            layout = layout.replace("(table_uri, version)", "(table_uri(700), version)")
        for statement in layout.split(";"):
            if statement.strip():
                conn.exec_driver_sql(statement)
    setup.dispose()
    engine = sa.create_engine(url)
    index = LineageIndex(url, engine=engine)
    index.ensure()
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT value FROM lineage_index_meta")).scalar() == str(
            INDEX_SCHEMA_VERSION
        )
        assert conn.execute(sa.text("SELECT restored_from FROM lineage_reads")).scalar() is None
        assert conn.execute(sa.text("SELECT run_start FROM lineage_reads")).scalar() == (
            1700000000000
        )
        assert conn.execute(sa.text("SELECT COUNT(*) FROM lineage_writes")).scalar() == 0
        [event] = conn.execute(sa.text("SELECT name, version, event_id FROM lineage_events"))
        assert tuple(event) == ("m", 1, "1700000000001-00abcdef")
        pk = sa.inspect(conn).get_pk_constraint("lineage_events")["constrained_columns"]
        holdings_indexes = sa.inspect(conn).get_indexes("lineage_holdings")
        reads_indexes = {i["name"] for i in sa.inspect(conn).get_indexes("lineage_reads")}
    assert pk == ["name", "version", "event_id"]
    assert holdings_indexes == []
    assert "lineage_reads_table_id" in reads_indexes  # schema 5
    assert [e.alias for e in indexed_events(url)] == ["champion"]
    # and the migrated index takes new events like a fresh one
    again = RegistryEvent.from_json(indexed_events(url)[0].to_json())
    assert index.record_events([again]) == 0
    # migrating left this process's layout as it was: a new index is still made as before
    fresh = LineageIndex(f"sqlite:///{tmp_path / 'fresh.db'}")
    fresh.ensure()
    with fresh.engine.connect() as conn:
        assert sa.inspect(conn).get_indexes("lineage_holdings") == []
        assert len(sa.inspect(conn).get_indexes("lineage_reads")) == 4


@on_backends()
def test_a_broken_index_never_breaks_the_registry_call(lineage_tracking, monkeypatch, caplog):
    client = MlflowClient()
    registry_workout(client, "sturdy")
    engine = sa.create_engine(index_url(lineage_tracking))
    with engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE lineage_holdings"))  # the index breaks under us
    client.set_registered_model_alias("sturdy", "champion", "1")
    assert str(client.get_model_version_by_alias("sturdy", "champion").version) == "1"
    assert "could not record a registry event" in caplog.text
    # MLflow, the record, still has the event: reindex can rebuild the index from it
    assert summary(events_in_mlflow(client, "sturdy"))[-1] == (
        "1",
        "alias_set",
        "champion",
        None,
        (),
    )
    # strict mode: the plugin's error fails the call, and MLflow's change is rolled back
    monkeypatch.setenv("MLFLOW_LINEAGE_STRICT", "true")
    with pytest.raises(MlflowException, match="Could not record a registry event"):
        client.set_registered_model_alias("sturdy", "champion", "2")
    assert str(client.get_model_version_by_alias("sturdy", "champion").version) == "1"
