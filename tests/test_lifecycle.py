"""The record follows MLflow's whole lifecycle (issue 13): deleted, restored and purged runs and
experiments, deleted and copied model versions, renamed and deleted registered models, and the
caller's own ``lineage.*`` tags. After each step the live index is what ``reindex`` rebuilds.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import warnings
from typing import Any

import mlflow
import pandas as pd
import pytest
import sqlalchemy as sa
from mlflow import MlflowClient
from postgres import SERVER_KINDS, on_backends

import lineage_plugin as lp
from lineage_plugin.errors import LineageError, LineageWarning
from lineage_plugin.queries import impact, reindex, show, timeline
from lineage_plugin.queries.index_check import check_index
from lineage_plugin.store.index import LineageIndex, index_url
from lineage_plugin.store.index_schema import INDEX_SCHEMA_VERSION, tables

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")  # stages: deprecated, used


def _now() -> int:
    time.sleep(0.01)
    moment = int(time.time() * 1000)
    time.sleep(0.01)
    return moment


def index_rows(uri: str) -> dict[str, set[tuple]]:
    """Every row of every index table (the columns the live index keeps current)."""
    engine = sa.create_engine(index_url(uri))
    out: dict[str, set[tuple]] = {}
    with engine.connect() as conn:
        for key in ("runs", "reads", "writes", "model_versions", "events", "holdings"):
            table = tables()[key]
            out[key] = {tuple(r) for r in conn.execute(sa.select(table))}
    engine.dispose()
    return out


def assert_index_is_what_reindex_builds(uri: str) -> dict[str, set[tuple]]:
    """The live index equals a fresh ``reindex`` of MLflow, table by table: ``reindex
    --check`` finds no drift (and writes nothing), and a real reindex changes no row."""
    live = index_rows(uri)
    checked = check_index(tracking_uri=uri)
    assert checked.in_sync, checked.to_dict()
    assert index_rows(uri) == live
    reindex(tracking_uri=uri)
    rebuilt = index_rows(uri)
    for key in live:
        assert live[key] == rebuilt[key], (
            key,
            sorted(live[key] - rebuilt[key]),
            sorted(rebuilt[key] - live[key]),
        )
    return rebuilt


@pytest.fixture
def sales(tmp_path) -> str:
    """A real Delta table with versions 0, 1 and 2."""
    from deltalake import write_deltalake

    path = str(tmp_path / "sales")
    for n in range(3):
        frame = pd.DataFrame({"id": [n], "amount": [10.0 * n]})
        write_deltalake(path, frame, mode="append")
    return path


def _reader(path: str, version: int, name: str | None = None) -> str:
    with mlflow.start_run(run_name=name) as run:
        lp.log_delta_input(path, version=version)
    return run.info.run_id


def _registered(client: MlflowClient, model: str, run_id: str, **kwargs: Any) -> str:
    if not client.search_registered_models(f"name='{model}'"):
        client.create_registered_model(model)
    mv = client.create_model_version(model, f"runs:/{run_id}/model", run_id=run_id, **kwargs)
    return str(mv.version)


def _readers(report: Any) -> dict[str, bool]:
    return {r["run_id"]: bool(r.get("deleted")) for r in report.runs}


def _versions(report: Any) -> dict[tuple[str, str], dict[str, Any]]:
    return {(m["name"], m["version"]): m for m in report.model_versions}


@on_backends(*SERVER_KINDS)
def test_deleted_runs_leave_impact_come_back_restored_and_gc_removes_them(
    lineage_tracking, sales, tmp_path
):
    uri = lineage_tracking
    client = MlflowClient()
    kept, dropped = _reader(sales, 2, "kept"), _reader(sales, 2, "dropped")
    assert set(_readers(impact(sales, from_version=2))) == {kept, dropped}

    client.delete_run(dropped)
    assert _readers(impact(sales, from_version=2)) == {kept: False}
    assert _readers(impact(sales, from_version=2, include_deleted=True)) == {
        kept: False,
        dropped: True,
    }
    assert impact(sales, include_deleted=True).to_dict()["include_deleted"] is True
    assert_index_is_what_reindex_builds(uri)

    client.restore_run(dropped)
    assert _readers(impact(sales, from_version=2)) == {kept: False, dropped: False}
    assert_index_is_what_reindex_builds(uri)

    # `mlflow gc` through the lineage+ URI, as an operator runs it: the run leaves the index
    client.delete_run(dropped)
    gc = subprocess.run(
        [sys.executable, "-m", "mlflow", "gc", "--backend-store-uri", uri],
        capture_output=True,
        text=True,
        timeout=180,
        env={**os.environ, "MLFLOW_TRACKING_URI": uri},
        cwd=tmp_path,
    )
    assert gc.returncode == 0, gc.stderr
    assert _readers(impact(sales, from_version=2, include_deleted=True)) == {kept: False}
    assert dropped not in {r[0] for r in index_rows(uri)["runs"]}
    assert dropped not in {r[0] for r in index_rows(uri)["reads"]}
    assert_index_is_what_reindex_builds(uri)


@on_backends(*SERVER_KINDS)
def test_a_deleted_experiment_hides_its_runs_until_restored_and_gc_removes_them(
    lineage_tracking, sales
):
    uri = lineage_tracking
    client = MlflowClient()
    main = _reader(sales, 1, "main")
    other = client.create_experiment("side-project")
    with mlflow.start_run(experiment_id=other) as run:
        lp.log_delta_input(sales, version=1)
    side = run.info.run_id

    client.delete_experiment(other)
    assert _readers(impact(sales, from_version=1)) == {main: False}
    assert _readers(impact(sales, from_version=1, include_deleted=True))[side] is True
    assert_index_is_what_reindex_builds(uri)

    client.restore_experiment(other)
    assert set(_readers(impact(sales, from_version=1))) == {main, side}
    assert_index_is_what_reindex_builds(uri)

    client.delete_experiment(other)
    store = mlflow.tracking._tracking_service.utils._get_store(uri)
    store._hard_delete_run(side)  # what `mlflow gc` does, run by run, then the experiment
    store._hard_delete_experiment(other)
    assert _readers(impact(sales, from_version=1, include_deleted=True)) == {main: False}
    assert_index_is_what_reindex_builds(uri)


@on_backends(*SERVER_KINDS)
def test_a_deleted_model_version_leaves_impact_and_its_history_stays(lineage_tracking, sales):
    uri = lineage_tracking
    client = MlflowClient()
    first = _registered(client, "m", _reader(sales, 0))
    second_run = _reader(sales, 1)
    second = _registered(client, "m", second_run)
    client.set_registered_model_alias("m", "champion", second)
    client.transition_model_version_stage("m", second, "Production")
    while_second = _now()
    third = _registered(client, "m", _reader(sales, 2))
    # The version as a number: stock MLflow 3.17 on psycopg 3 fails to archive when given the
    # version string (mlflow/mlflow#24592).
    client.transition_model_version_stage("m", int(third), "Production", True)
    client.set_registered_model_alias("m", "champion", third)
    before_delete = _now()
    client.set_registered_model_alias("m", "fallback", second)

    client.delete_model_version("m", second)

    # impact: never in use, gone unless asked for, then marked
    assert ("m", second) not in _versions(impact(sales, from_version=1, to_version=1))
    with_deleted = _versions(impact(sales, from_version=1, to_version=1, include_deleted=True))
    assert with_deleted[("m", second)]["deleted"] is True
    assert with_deleted[("m", second)]["in_use"] is False
    assert set(_readers(impact(sales, from_version=1, to_version=1))) == {second_run}

    def answers() -> None:
        # what held Production and @champion while version 2 did, and on which data
        for label in ("Production", "champion", "@champion"):
            held = show("m", label, at=while_second)
            assert held.lineage.version == second
            assert [(i.uri.rsplit("/", 1)[-1], i.version) for i in held.lineage.inputs] == [
                ("sales", 1)
            ]
            assert held.deleted_at is not None and held.deleted_at > before_delete
            assert held.held_at == {"stage": "Production", "aliases": ["champion"]}
            kinds = [e["kind"] for e in held.history if e["role"] == "subject"]
            assert kinds[-1] == "version_deleted"
            assert {"alias_set", "stage_transition", "alias_deleted"} <= set(kinds)
        # after the deletion, Production and @fallback are not version 2 any more
        assert show("m", "Production", at=_now()).lineage.version == third
        with pytest.raises(LineageError, match="fallback"):
            show("m", "fallback", at=_now())
        entries = timeline(model="m").entries
        registrations = {
            e["version"]: e.get("deleted") for e in entries if e["kind"] == "registration"
        }
        assert registrations == {first: None, second: True, third: None}
        kinds = [(e["kind"], e.get("version")) for e in entries if e["kind"] != "commit"]
        assert ("version_deleted", second) in kinds
        assert ("alias_deleted", second) in kinds  # @fallback went with it
        assert ("stage_transition", second) in kinds

    answers()
    assert_index_is_what_reindex_builds(uri)
    answers()  # the same answers from the rebuilt index
    reindex(tracking_uri=uri, source="api")
    answers()


@on_backends(*SERVER_KINDS)
def test_a_rename_moves_the_index_and_history_and_is_an_event(lineage_tracking, sales):
    uri = lineage_tracking
    client = MlflowClient()
    version = _registered(client, "old-name", _reader(sales, 1))
    client.set_registered_model_alias("old-name", "champion", version)
    held = _now()
    gone = _registered(client, "old-name", _reader(sales, 2))
    client.delete_model_version("old-name", gone)

    client.rename_registered_model("old-name", "new-name")

    assert set(_versions(impact(sales, from_version=1))) == {("new-name", version)}
    entries = timeline(model="new-name").entries
    kinds = [e["kind"] for e in entries]
    assert {"registration", "alias_set", "version_deleted", "model_renamed"} <= set(kinds)
    [renamed] = [e for e in entries if e["kind"] == "model_renamed"]
    assert renamed["previous_name"] == "old-name" and "version" not in renamed
    assert all(e.get("model", "new-name") == "new-name" for e in entries)
    assert show("new-name", "champion", at=held).lineage.version == version
    assert show("new-name", gone).deleted_at is not None  # the deleted version moved too
    with pytest.raises(LineageError, match="no registered model 'old-name'"):
        timeline(model="old-name")
    assert_index_is_what_reindex_builds(uri)
    assert [e["kind"] for e in timeline(model="new-name").entries] == kinds


@on_backends(*SERVER_KINDS)
def test_deleting_a_registered_model_removes_it_from_the_index(lineage_tracking, sales):
    uri = lineage_tracking
    client = MlflowClient()
    run_id = _reader(sales, 1)
    version = _registered(client, "doomed", run_id)
    client.set_registered_model_alias("doomed", "champion", version)
    client.delete_registered_model("doomed")
    rows = index_rows(uri)
    assert not [r for key in ("model_versions", "events", "holdings") for r in rows[key]]
    assert _readers(impact(sales, from_version=1)) == {run_id: False}  # the run stays
    assert_index_is_what_reindex_builds(uri)


@on_backends(*SERVER_KINDS)
def test_a_callers_own_lineage_tags_are_kept_and_reserved_ones_warn(lineage_tracking, sales):
    uri = lineage_tracking
    client = MlflowClient()
    run_id = _reader(sales, 1)
    with warnings.catch_warnings():
        warnings.simplefilter("error", LineageWarning)
        version = _registered(client, "tagged", run_id, tags={"lineage.note": "mine"})
    tags = client.get_model_version("tagged", version).tags
    assert tags["lineage.note"] == "mine"
    assert tags["lineage.run_id"] == run_id  # and the lineage is attached as always

    with pytest.warns(LineageWarning, match=r"lineage\.status is a key the plugin writes"):
        reserved = _registered(client, "tagged", run_id, tags={"lineage.status": "audited"})
    assert client.get_model_version("tagged", reserved).tags["lineage.status"] == "audited"
    with pytest.warns(LineageWarning, match=r"lineage\.stage"):
        client.set_model_version_tag("tagged", version, "lineage.stage", "mine")
    assert client.get_model_version("tagged", version).tags["lineage.stage"] == "mine"
    with warnings.catch_warnings():
        warnings.simplefilter("error", LineageWarning)
        client.set_model_version_tag("tagged", version, "lineage.protect", "true")
    assert_index_is_what_reindex_builds(uri)


@on_backends(*SERVER_KINDS)
def test_a_copied_version_has_the_lineage_but_not_the_source_history(lineage_tracking, sales):
    uri = lineage_tracking
    client = MlflowClient()
    run_id = _reader(sales, 1)
    version = _registered(client, "source-model", run_id)
    client.set_registered_model_alias("source-model", "champion", version)
    client.transition_model_version_stage("source-model", version, "Staging")
    src = client.get_model_version("source-model", version)
    copy = client.copy_model_version(f"models:/source-model/{version}", "copied-model")
    tags = client.get_model_version("copied-model", copy.version).tags
    assert tags["lineage.run_id"] == run_id and "lineage.manifest" in tags
    assert not [k for k in tags if k.startswith("lineage.event.")]
    assert "lineage.aliases" not in tags and "lineage.stage" not in tags
    assert [k for k in src.tags if k.startswith("lineage.event.")]  # the source keeps its own
    assert ("copied-model", str(copy.version)) in _versions(impact(sales, from_version=1))
    kinds = {e["kind"] for e in timeline(model="copied-model").entries}
    assert kinds == {"commit", "run", "registration"}  # no alias or stage of the source
    assert_index_is_what_reindex_builds(uri)


def _migrated_from(uri: str, version: int, *undo: str) -> sa.Engine:
    """Make the index at ``uri`` a schema-``version`` one (``undo``: the statements that take
    the later layout away), migrate it in place, and check it reached the current schema."""
    engine = sa.create_engine(index_url(uri))
    with engine.begin() as conn:
        for statement in undo:
            conn.execute(sa.text(statement))
        conn.execute(sa.text(f"UPDATE lineage_index_meta SET value = '{version}'"))
    LineageIndex(index_url(uri)).ensure()
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT value FROM lineage_index_meta")).scalar() == str(
            INDEX_SCHEMA_VERSION
        )
    return engine


def test_an_index_from_before_keeps_working_after_the_migration(lineage_tracking, sales):
    """Schema 3 -> 4: runs gain ``deleted``; an index migrated in place answers as before."""
    run_id = _reader(sales, 1)
    engine = _migrated_from(
        lineage_tracking,
        3,
        "ALTER TABLE lineage_runs DROP COLUMN deleted",
        "DROP INDEX lineage_runs_experiment",
    )
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT deleted FROM lineage_runs")).scalar() == 0
    engine.dispose()
    assert _readers(impact(sales, from_version=1)) == {run_id: False}


def test_a_schema_4_index_gains_the_writes_and_the_table_id_index(lineage_tracking, sales):
    """Schema 4 -> 5: the writes table, and reads indexed by Delta table id (the table pages
    find them by it)."""
    run_id = _reader(sales, 1)
    engine = _migrated_from(
        lineage_tracking, 4, "DROP INDEX lineage_reads_table_id", "DROP TABLE lineage_writes"
    )
    with engine.connect() as conn:
        inspector = sa.inspect(conn)
        indexes = {i["name"]: i["column_names"] for i in inspector.get_indexes("lineage_reads")}
        assert "lineage_writes" in inspector.get_table_names()
    engine.dispose()
    assert indexes["lineage_reads_table_id"] == ["table_id", "run_start"]
    assert _readers(impact(sales, from_version=1)) == {run_id: False}


@pytest.mark.slow
def test_over_http_the_server_and_the_client_index_follow_the_lifecycle_once(
    tmp_path, _migrated_sqlite, sales, monkeypatch
):
    """A lineage+http client and a lineage+ server: each event once in MLflow, and both the
    server's index and the client's own index are what reindex builds."""
    import shutil

    from helpers import tracking_at
    from server import mlflow_server

    from lineage_plugin.events import EVENT_PREFIX, RegistryEvent

    monkeypatch.setenv("MLFLOW_LINEAGE_HOME", str(tmp_path / "client-index"))
    shutil.copyfile(_migrated_sqlite, tmp_path / "mlflow.db")
    server_uri = f"lineage+sqlite:///{tmp_path / 'mlflow.db'}"
    with mlflow_server(server_uri, tmp_path) as url, tracking_at(f"lineage+{url}"):
        client = MlflowClient()
        kept, dropped = _reader(sales, 1), _reader(sales, 2)
        first = _registered(client, "web", kept)
        second = _registered(client, "web", dropped)
        client.set_registered_model_alias("web", "champion", second)
        client.delete_model_version("web", second)
        client.delete_run(dropped)
        client.rename_registered_model("web", "web-renamed")
        model_tags = MlflowClient(url, url).get_registered_model("web-renamed").tags
        events = [
            RegistryEvent.from_json(v) for k, v in model_tags.items() if k.startswith(EVENT_PREFIX)
        ]
        kinds = sorted(e.kind for e in events)
        assert kinds == sorted(
            ["alias_set", "alias_deleted", "version_deleted", "model_renamed"]
        ), kinds  # once each: the client recorded them, the server did not again
        assert set(_versions(impact(sales))) == {("web-renamed", first)}
        assert _readers(impact(sales, include_deleted=True)) == {kept: False, dropped: True}
        assert_index_is_what_reindex_builds(f"lineage+{url}")  # the client's own index
    assert_index_is_what_reindex_builds(server_uri)  # the server's


@on_backends(*SERVER_KINDS)
def test_a_version_trained_on_many_tables_is_deleted_whole(lineage_tracking, tmp_path, caplog):
    """Its events and record are longer than a registered-model tag holds (5000 characters in
    MLflow's SQL column): the copies on the model drop their tables (the record, split over
    several tags, keeps them) and nothing fails, on PostgreSQL too."""
    from deltalake import write_deltalake

    uri = lineage_tracking
    client = MlflowClient()
    wide = str(tmp_path / "wide")
    for n in range(30):
        write_deltalake(wide, pd.DataFrame({"id": [n]}), mode="append")
    with mlflow.start_run() as run:
        for n in range(30):
            lp.log_delta_input(wide, version=n)
    version = _registered(client, "wide-model", run.info.run_id)
    client.set_registered_model_alias("wide-model", "champion", version)
    held = _now()
    tags = client.get_model_version("wide-model", version).tags
    [alias_set] = [v for k, v in tags.items() if k.startswith("lineage.event.")]
    assert len(alias_set) > 5000  # too long for the registered model's tag column
    client.delete_model_version("wide-model", version)

    assert "could not record" not in caplog.text
    model_tags = client.get_registered_model("wide-model").tags
    assert max(len(v) for v in model_tags.values()) <= 5000
    assert f"lineage.deleted.{version}.parts" in model_tags  # the record, split
    report = show("wide-model", "champion", at=held)
    assert sorted(i.version for i in report.lineage.inputs) == list(range(30))
    assert_index_is_what_reindex_builds(uri)


def test_on_a_file_store_the_index_follows_too(tmp_path, sales, monkeypatch):
    """The file store keeps a deleted experiment's runs active (SQL stores mark them): the
    index marks them deleted with their experiment either way, as reindex does."""
    from helpers import tracking_at

    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow 3.17 deprecates it
    uri = "lineage+" + (tmp_path / "mlruns").as_uri()
    with tracking_at(uri):
        client = MlflowClient()
        kept = _reader(sales, 1)
        other = client.create_experiment("side")
        with mlflow.start_run(experiment_id=other) as run:
            lp.log_delta_input(sales, version=1)
        side = run.info.run_id
        alone = _reader(sales, 1)
        version = _registered(client, "filed", kept)
        client.set_registered_model_alias("filed", "champion", version)
        client.delete_run(alone)
        client.delete_experiment(other)
        assert _readers(impact(sales)) == {kept: False}
        assert_index_is_what_reindex_builds(uri)
        client.restore_experiment(other)
        assert _readers(impact(sales, include_deleted=True)) == {
            kept: False,
            side: False,
            alone: True,
        }
        assert_index_is_what_reindex_builds(uri)
        client.delete_model_version("filed", version)
        assert _versions(impact(sales)) == {}
        assert show("filed", version).deleted_at is not None
        assert_index_is_what_reindex_builds(uri)


@on_backends(*SERVER_KINDS)
def test_a_renamed_or_finished_run_is_renamed_and_finished_in_the_index(lineage_tracking, sales):
    uri = lineage_tracking
    client = MlflowClient()
    with mlflow.start_run(run_name="first-name") as run:
        lp.log_delta_input(sales, version=1)
        assert_index_is_what_reindex_builds(uri)  # running: no end time on either side
    run_id = run.info.run_id
    client.set_tag(run_id, "mlflow.runName", "second-name")  # as the UI renames a run
    assert [r["run_name"] for r in impact(sales).runs] == ["second-name"]
    client.update_run(run_id, name="third-name")
    assert [r["run_name"] for r in impact(sales).runs] == ["third-name"]
    assert_index_is_what_reindex_builds(uri)  # end_time too
