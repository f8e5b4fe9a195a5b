"""Faults, injected for real (issue 16, point 3), on the servers the plugin talks to.

PostgreSQL stopped (``pg_ctl stop -m immediate``) while a run reads and logs, then started
again; ``mlflow server`` SIGKILLed during an alias move and during a registration, for a
``lineage+http`` client against a stock server (the client records: an intent before the call,
reconciled after) and for a plain client against a plugin server (the event is written in
MLflow's own transaction). After each: an honest record or MLflow's own clear error, each change
that happened has its event exactly once, and rerunning the operation works.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import threading
import warnings

import mlflow
import pytest
from click.testing import CliRunner
from deltalake import DeltaTable
from helpers import indexed_events, lineage_tags, read_pandas, tracking_at
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from postgres import PostgresUnavailable, find_bin_dir, postgres_server
from server import mlflow_server_process
from test_faults import HOLD_LOCK

import lineage_plugin as lp
from lineage_plugin.cli import cli
from lineage_plugin.errors import LineageError, LineageWarning
from lineage_plugin.events import RegistryEvent, collect_events
from lineage_plugin.store.index import index_url


def invoke(*args: str, code: int = 0):
    result = CliRunner().invoke(cli, list(args), prog_name="mlflow-lineage")
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    return result


@pytest.fixture(autouse=True)
def _no_experiment_left():
    """Each test starts with MLflow's default experiment (set_experiment exports its id)."""
    yield
    os.environ.pop("MLFLOW_EXPERIMENT_ID", None)
    mlflow.tracking.fluent._active_experiment_id = None


# ---- 1. PostgreSQL stopped during a run, then started again ----------------------------------


@pytest.fixture
def own_postgres():
    """A PostgreSQL cluster of this test's own (the test stops it), durable as in production."""
    try:
        bin_dir = find_bin_dir()
    except PostgresUnavailable as exc:
        pytest.fail(str(exc), pytrace=False)
    with postgres_server(bin_dir, durable=True) as server:
        yield server


@pytest.mark.slow
def test_postgres_stopped_during_a_run_records_every_read_once_it_is_back(
    own_postgres, make_table, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    path = make_table(commits=2)
    uri = f"lineage+{own_postgres.new_database()}"
    with tracking_at(uri):
        mlflow.set_experiment("outage")
        run = mlflow.start_run()
        read_pandas(DeltaTable(path, version=0))
        own_postgres.stop()
        with pytest.warns(LineageWarning, match="could not write lineage to run"):
            frame = read_pandas(DeltaTable(path))  # the user's read works: v1, not recorded yet
        assert sorted(frame["id"]) == [0, 1, 2, 3, 4, 5]
        with pytest.raises(MlflowException) as caught:  # MLflow's own call: its own error
            mlflow.log_param("alpha", 0.5)
        assert not isinstance(caught.value, LineageError)
        assert "Connection refused" in str(caught.value) or "connection" in str(caught.value)
        with pytest.raises(MlflowException):  # ending the run while the database is away
            mlflow.end_run()
        assert mlflow.active_run() is None  # MLflow let go of it; it stays RUNNING

        own_postgres.start_again()
        client = mlflow.MlflowClient()
        assert client.get_run(run.info.run_id).info.status == "RUNNING"
        assert lineage_tags(run.info.run_id)["lineage.tables"] == "sales@v0"  # not v1 yet
        client.log_param(run.info.run_id, "alpha", 0.5)
        with warnings.catch_warnings():
            warnings.simplefilter("error", LineageWarning)  # no lineage warning once it is back
            client.set_terminated(run.info.run_id)  # the end: what the outage left out is written
        finished = mlflow.get_run(run.info.run_id)
        assert finished.info.status == "FINISHED" and finished.data.params == {"alpha": "0.5"}
        tags = lineage_tags(run.info.run_id)
        record = lp.get_run_lineage(run.info.run_id)
        assert [(i.name, i.version) for i in record.inputs] == [("sales", 0), ("sales", 1)]
        assert tags["lineage.status"] == "complete" and "lineage.reason" not in tags
        assert tags["lineage.tables"] == "sales@v0, sales@v1"
        assert sorted(k for k in tags if k.startswith("lineage.input.")) == [
            "lineage.input.000",
            "lineage.input.001",
        ]
        impact = json.loads(invoke("impact", path, "--json", "--tracking-uri", uri).stdout)
        [indexed] = impact["runs"]  # the index agrees: one run, both versions
        assert (indexed["run_id"], indexed["table_versions"]) == (run.info.run_id, [0, 1])

        with mlflow.start_run() as after:  # a new run works normally
            read_pandas(DeltaTable(path))
        record = lp.get_run_lineage(after.info.run_id)
        assert [(i.name, i.version) for i in record.inputs] == [("sales", 1)]
        assert record.status == "complete"


# ---- 2. mlflow server killed during an alias move and a registration -----------------------


def registry_events(client: MlflowClient, name: str) -> list[RegistryEvent]:
    """Every event in MLflow's tags of model ``name``'s versions, by event id."""
    versions = client.search_model_versions(f"name='{name}'")
    return collect_events(client.get_model_version(name, mv.version) for mv in versions)


def alias_moves(events: list[RegistryEvent]) -> list[tuple]:
    return [(e.kind, e.alias, e.version, e.replaced) for e in events]


@pytest.fixture
def stock_backend(tmp_path, _migrated_sqlite, monkeypatch):
    """A stock server's SQLite backend (``sqlite:///...``) and the client set-up: MLflow's REST
    client gives up at once when the server is gone (no retries), the client's index is in
    ``tmp_path``."""
    shutil.copyfile(_migrated_sqlite, tmp_path / "mlflow.db")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "20")
    monkeypatch.setenv("MLFLOW_LINEAGE_HOME", str(tmp_path / "client-index"))
    monkeypatch.chdir(tmp_path)
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


def shown_reads(uri: str, name: str, version: str) -> list[tuple]:
    """The table versions ``mlflow-lineage show NAME VERSION`` says the version was built on."""
    report = json.loads(invoke("show", name, version, "--json", "--tracking-uri", uri).stdout)
    return [(i["name"], i["version"]) for i in report["run"]["inputs"]]


def two_versions(client: MlflowClient, name: str) -> None:
    client.create_registered_model(name)
    for _ in range(2):
        client.create_model_version(name, "s3://bucket/model")


@pytest.mark.slow
def test_a_lineage_http_client_whose_server_dies_before_the_event_write_records_it_once(
    stock_backend, tmp_path, monkeypatch, caplog
):
    """The kill lands between MLflow's change and the event tags: the alias moved, its event is
    written after the restart, with its original id, exactly once."""
    monkeypatch.setenv("MLFLOW_LINEAGE_INTENT_GRACE_SECONDS", "0")  # the rerun resolves it now
    from lineage_plugin.store import recording

    with mlflow_server_process(stock_backend, tmp_path) as server:
        uri = f"lineage+{server.url}"
        with tracking_at(uri):
            client = MlflowClient()
            two_versions(client, "ridge")
            client.set_registered_model_alias("ridge", "champion", "1")
            original = recording.write_events_with_api

            def kill_first(*args, **kwargs):
                server.kill()  # the change is made; the server dies before the event is written
                return original(*args, **kwargs)

            monkeypatch.setattr(recording, "write_events_with_api", kill_first)
            client.set_registered_model_alias("ridge", "champion", "2")  # MLflow's call worked
            assert "could not record a registry event" in caplog.text
            monkeypatch.setattr(recording, "write_events_with_api", original)

    with mlflow_server_process(stock_backend, tmp_path, port=server.port) as server:
        plain = MlflowClient(server.url, server.url)  # the same backend, seen without the plugin
        assert plain.get_model_version_by_alias("ridge", "champion").version == "2"  # happened
        tags = plain.get_registered_model("ridge").tags
        [intent] = [k for k in tags if k.startswith("lineage.intent.")]  # written before
        assert len(alias_moves(registry_events(plain, "ridge"))) == 1  # its event was lost
        lost = json.loads(tags[intent])["events"][0]["event_id"]

        with tracking_at(uri):
            client = MlflowClient()
            client.set_registered_model_alias("ridge", "champion", "2")  # the rerun
            events = registry_events(plain, "ridge")
            assert alias_moves(events) == [
                ("alias_set", "champion", "1", ()),
                ("alias_set", "champion", "2", ("1",)),
            ]  # the move once: the rerun changed nothing, the reconcile wrote the lost event
            assert events[1].event_id == lost  # with its original id
            assert not [k for k in plain.get_registered_model("ridge").tags if "intent" in k]
            assert plain.get_model_version("ridge", "2").tags["lineage.aliases"] == "champion"
            assert "lineage.aliases" not in plain.get_model_version("ridge", "1").tags
            indexed = indexed_events(index_url(uri), "ridge")
            assert [e.event_id for e in indexed] == [e.event_id for e in events]
            moves = [e for e in lp.timeline(model="ridge").entries if e["kind"] == "alias_set"]
            assert [(e["version"], e.get("replaced")) for e in moves] == [("1", None), ("2", ["1"])]

            # Killed after the intent, before the call: the move does not happen.
            with_intent = recording.write_intent

            def kill_after(*args, **kwargs):
                key = with_intent(*args, **kwargs)
                server.kill()
                return key

            monkeypatch.setattr(recording, "write_intent", kill_after)
            with pytest.raises(MlflowException) as caught:  # MLflow's own error, to the caller
                client.set_registered_model_alias("ridge", "champion", "1")
            assert not isinstance(caught.value, LineageError)
            monkeypatch.setattr(recording, "write_intent", with_intent)

    with mlflow_server_process(stock_backend, tmp_path, port=server.port):
        assert plain.get_model_version_by_alias("ridge", "champion").version == "2"
        assert [k for k in plain.get_registered_model("ridge").tags if "intent" in k]
        summary = json.loads(invoke("reindex", "--json", "--tracking-uri", uri).stdout)
        assert summary["events"] == 2  # reindex resolved it: it did not happen, no event
        assert not [k for k in plain.get_registered_model("ridge").tags if "intent" in k]
        with tracking_at(uri):
            MlflowClient().set_registered_model_alias("ridge", "champion", "1")  # the rerun
        assert alias_moves(registry_events(plain, "ridge"))[2:] == [
            ("alias_set", "champion", "1", ("2",))
        ]


def hold_database(database: str) -> subprocess.Popen:
    """Another process holding MLflow's SQLite database (WAL mode: readers go on, a writer
    waits) until it is killed."""
    with sqlite3.connect(database) as con:
        assert con.execute("PRAGMA journal_mode=WAL").fetchone() == ("wal",)
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, database, "120"], stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
    return holder


def killed_while_waiting(server, database: str, call) -> None:
    """Run ``call`` (a registry call to ``server``) while another process holds the database,
    and SIGKILL the server while MLflow's transaction waits for it."""
    holder = hold_database(database)
    errors: list[BaseException] = []

    def target() -> None:
        try:
            call()
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=target)
    try:
        thread.start()
        thread.join(timeout=2.5)
        assert thread.is_alive(), errors  # the server is blocked in its transaction
        server.kill()
        thread.join(timeout=60)
    finally:
        holder.kill()
        holder.wait(timeout=30)
    [error] = errors  # MLflow's own error: the connection went away
    assert isinstance(error, MlflowException) and not isinstance(error, LineageError)


@pytest.mark.slow
def test_a_plugin_server_killed_inside_mlflows_transaction_leaves_no_event_and_no_version(
    tmp_path, _migrated_sqlite, make_table, monkeypatch
):
    """A plain client, a ``lineage+sqlite`` server: the event is written in MLflow's own
    transaction, so a kill inside it leaves neither the change nor its event; the reruns work."""
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.chdir(tmp_path)
    database = str(tmp_path / "mlflow.db")
    shutil.copyfile(_migrated_sqlite, database)
    backend = f"lineage+sqlite:///{database}"
    path = make_table(commits=2)
    with mlflow_server_process(backend, tmp_path) as server:
        with tracking_at(f"lineage+{server.url}"), mlflow.start_run() as run:
            read_pandas(DeltaTable(path))  # a run that read sales v1
        client = MlflowClient(server.url, server.url)
        two_versions(client, "ridge")
        client.set_registered_model_alias("ridge", "champion", "1")
        killed_while_waiting(
            server, database, lambda: client.set_registered_model_alias("ridge", "champion", "2")
        )
    with mlflow_server_process(backend, tmp_path, port=server.port) as server:
        assert client.get_model_version_by_alias("ridge", "champion").version == "1"
        assert alias_moves(registry_events(client, "ridge")) == [
            ("alias_set", "champion", "1", ())
        ]  # neither the move nor its event
        client.set_registered_model_alias("ridge", "champion", "2")  # the rerun
        assert alias_moves(registry_events(client, "ridge"))[1:] == [
            ("alias_set", "champion", "2", ("1",))
        ]
        assert [e.kind for e in indexed_events(f"sqlite:///{database}", "ridge")] == [
            "alias_set",
            "alias_set",
        ]
        register = functools.partial(
            client.create_model_version, "ridge", "s3://bucket/model", run_id=run.info.run_id
        )
        killed_while_waiting(server, database, register)
    with mlflow_server_process(backend, tmp_path, port=server.port):
        assert [mv.version for mv in client.search_model_versions("name='ridge'")] == ["2", "1"]
        mv = register()  # the rerun registers it, with its lineage
        assert mv.version == "3" and mv.tags["lineage.tables"] == "sales@v1"
        with tracking_at(f"lineage+{server.url}"):
            [read] = lp.get_lineage("ridge", "3").inputs
            assert (read.name, read.version) == ("sales", 1)
            assert shown_reads(f"lineage+{server.url}", "ridge", "3") == [("sales", 1)]


@pytest.mark.slow
def test_a_registration_by_a_lineage_http_client_killed_in_the_servers_transaction_is_all_or_none(
    stock_backend, tmp_path, make_table
):
    """The client sends the lineage with the registration itself (one request, one transaction
    of the stock server): killed inside it, no version; the rerun registers it with lineage."""
    database = stock_backend.removeprefix("sqlite:///")
    path = make_table(commits=2)
    with mlflow_server_process(stock_backend, tmp_path) as server:
        uri = f"lineage+{server.url}"
        with tracking_at(uri):
            with mlflow.start_run() as run:
                read_pandas(DeltaTable(path, version=0))
            client = MlflowClient()
            client.create_registered_model("ridge")
            register = functools.partial(
                client.create_model_version, "ridge", "s3://bucket/model", run_id=run.info.run_id
            )
            killed_while_waiting(server, database, register)
    with mlflow_server_process(stock_backend, tmp_path, port=server.port), tracking_at(uri):
        client = MlflowClient()
        assert client.search_model_versions("name='ridge'") == []  # none, not half a version
        mv = register()  # the rerun
        assert mv.version == "1" and mv.tags["lineage.tables"] == "sales@v0"
        [read] = lp.get_lineage("ridge", "1").inputs
        assert (read.name, read.version) == ("sales", 0)
        assert shown_reads(uri, "ridge", "1") == [("sales", 0)]
