"""The table versions runs wrote, beyond the run (issue 15, points 1 and 2): the lineage
index's write edges (kept live, rebuilt by ``reindex``, migrated from schema 4, following the
run's lifecycle), ``show`` with the training run's outputs, and the record's layouts."""

from __future__ import annotations

import json
from typing import Any

import mlflow
import pyarrow as pa
import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from deltalake import DeltaTable, write_deltalake
from helpers import read_pandas
from mlflow import MlflowClient
from test_json_schema import README, documented_schemas, undocumented
from test_lifecycle import assert_index_is_what_reindex_builds
from test_reindex_sql import both_ways, index_contents

import lineage_plugin as lp
from lineage_plugin.cli import cli
from lineage_plugin.queries import reindex
from lineage_plugin.records import SCHEMA_VERSION, DeltaOutput, RunLineage
from lineage_plugin.store.index import LineageIndex, index_url
from lineage_plugin.store.index_schema import INDEX_SCHEMA_VERSION
from lineage_plugin.tracking.capture import session

pytestmark = pytest.mark.usefixtures("lineage_tracking")


def rows(first: int, n: int = 2) -> pa.Table:
    return pa.table({"id": list(range(first, first + n)), "x": [1.0] * n, "y": [0.0] * n})


def writes_in(uri: str) -> list[tuple]:
    """The index's write edges: (run, position, table, version, operation, engine)."""
    engine = sa.create_engine(index_url(uri))
    with engine.connect() as conn:
        found = conn.execute(
            sa.text(
                "SELECT run_id, position, table_name, version, operation, engine "
                "FROM lineage_writes ORDER BY run_id, position"
            )
        ).all()
    engine.dispose()
    return [tuple(r) for r in found]


def pipeline(make_table, tmp_path) -> dict[str, str]:
    """A feature run (reads raw, writes features twice), a run that only writes, and a run
    whose one output is longer than MLflow's tag limit (split over .partN tags)."""
    raw = make_table("raw", commits=2)
    features = str(tmp_path / "features")
    runs = {}
    with mlflow.start_run() as run:
        frame = read_pandas(DeltaTable(raw))
        write_deltalake(features, pa.Table.from_pandas(frame))
        DeltaTable(features).delete("id = 0")
    runs["features"] = run.info.run_id
    with mlflow.start_run() as run:
        write_deltalake(raw, rows(100), mode="append")
    runs["writer"] = run.info.run_id
    with mlflow.start_run() as run:
        wide = {f"metric_{n}": "x" * 40 for n in range(300)}  # > 8000 characters of JSON
        out = DeltaOutput(
            uri=f"file://{raw}", version=9, engine="test", name="raw", operation_metrics=wide
        )
        session().record_output(out, run_id=run.info.run_id)
    runs["split"] = run.info.run_id
    return runs


def test_the_index_keeps_write_edges_live_and_reindex_rebuilds_them(
    lineage_tracking, make_table, tmp_path
):
    uri = lineage_tracking
    runs = pipeline(make_table, tmp_path)
    expected = sorted(
        [
            (runs["features"], 0, "features", 0, "WRITE", "deltalake"),
            (runs["features"], 1, "features", 1, "DELETE", "deltalake"),
            (runs["writer"], 0, "raw", 2, "WRITE", "deltalake"),
            (runs["split"], 0, "raw", 9, None, "test"),
        ]
    )
    assert writes_in(uri) == expected  # indexed as the runs wrote their tags
    live = index_contents(index_url(uri))
    split = mlflow.get_run(runs["split"]).data.tags
    assert int(split["lineage.output.000.parts"]) >= 2
    engine = sa.create_engine(index_url(uri))
    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM lineage_writes"))
    engine.dispose()
    by_api, by_sql, _ = both_ways(uri)
    assert by_api == by_sql == live
    summary = reindex(tracking_uri=uri)
    assert (summary.runs, summary.reads, summary.writes) == (3, 1, 4)
    assert writes_in(uri) == expected


def test_the_write_edges_follow_the_runs_lifecycle(lineage_tracking, make_table, tmp_path):
    uri = lineage_tracking
    runs = pipeline(make_table, tmp_path)
    client = MlflowClient()
    client.delete_run(runs["writer"])
    assert_index_is_what_reindex_builds(uri)
    client.restore_run(runs["writer"])
    client.delete_run(runs["features"])
    store = mlflow.tracking._tracking_service.utils._get_store(uri)
    store._hard_delete_run(runs["features"])  # what `mlflow gc` does
    assert {r[0] for r in writes_in(uri)} == {runs["writer"], runs["split"]}
    assert_index_is_what_reindex_builds(uri)


def test_an_index_of_schema_4_is_migrated_and_filled_by_reindex(
    lineage_tracking, make_table, tmp_path
):
    uri = lineage_tracking
    runs = pipeline(make_table, tmp_path)
    engine = sa.create_engine(index_url(uri))
    with engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE lineage_writes"))  # its indexes go with it
        conn.execute(sa.text("UPDATE lineage_index_meta SET value = '4'"))
    LineageIndex(index_url(uri)).ensure()
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT value FROM lineage_index_meta")).scalar() == str(
            INDEX_SCHEMA_VERSION
        )
        indexes = {i["name"] for i in sa.inspect(conn).get_indexes("lineage_writes")}
        assert conn.execute(sa.text("SELECT COUNT(*) FROM lineage_writes")).scalar() == 0
    engine.dispose()
    assert indexes == {"lineage_writes_table_version", "lineage_writes_table_name"}
    reindex(tracking_uri=uri)
    assert {r[0] for r in writes_in(uri)} == set(runs.values())


def _cli(uri: str, *args: str) -> Any:
    result = CliRunner().invoke(cli, [*args, "--tracking-uri", uri])
    assert result.exit_code == 0, result.output
    return result


def test_show_includes_what_the_training_run_wrote_before_and_after_registration(
    lineage_tracking, make_table, tmp_path
):
    features = make_table("features", commits=2)
    scores = str(tmp_path / "scores")
    client = MlflowClient()
    client.create_registered_model("churn")
    with mlflow.start_run() as run:
        frame = read_pandas(DeltaTable(features))
        write_deltalake(scores, pa.Table.from_pandas(frame))  # before the registration
        client.create_model_version("churn", "s3://bucket/model", run_id=run.info.run_id)
        DeltaTable(scores).update(updates={"x": "x * 2"}, predicate="id < 3")  # after it
    report = json.loads(_cli(lineage_tracking, "show", "churn", "1", "--json").stdout)
    outputs = report["run"]["outputs"]
    assert [(o["name"], o["version"], o["operation"]) for o in outputs] == [
        ("scores", 0, "WRITE"),
        ("scores", 1, "UPDATE"),
    ]
    assert outputs[1]["operation_metrics"]["num_updated_rows"] == 3
    assert outputs[0]["commit_timestamp_ms"] == DeltaTable(scores).history()[-1]["timestamp"]
    schemas = documented_schemas(README.read_text(encoding="utf-8"))
    assert undocumented(report, schemas["show"], schemas, "show") == []
    text = _cli(lineage_tracking, "show", "churn", "1").output
    assert "Written by the run" in text and "num_updated_rows=3" in text
    # the version's own record is what the run had when it was registered
    attached = json.loads(client.get_model_version("churn", "1").tags["lineage.manifest"])
    assert [o["version"] for o in attached["outputs"]] == [0]
    assert [o.version for o in lp.get_lineage("churn", "1").outputs] == [0]
    assert [o.version for o in lp.get_run_lineage(run.info.run_id).outputs] == [0, 1]


def test_show_of_a_version_whose_run_only_wrote(lineage_tracking, tmp_path):
    client = MlflowClient()
    client.create_registered_model("writer")
    with mlflow.start_run() as run:
        write_deltalake(str(tmp_path / "out"), rows(0))
    client.create_model_version("writer", "s3://bucket/model", run_id=run.info.run_id)
    report = json.loads(_cli(lineage_tracking, "show", "writer", "1", "--json").stdout)
    assert report["status"] == "missing"  # nothing says what it was trained on
    assert [o["name"] for o in report["run"]["outputs"]] == ["out"]


def test_records_of_both_layouts_load():
    old = {"schema_version": 1, "run_id": "r", "status": "complete", "inputs": []}
    record = RunLineage.from_dict(old)
    assert (record.schema_version, record.outputs) == (1, ())
    out = DeltaOutput(uri="file:///t", version=0, engine="deltalake", operation_metrics={"n": 1})
    new = RunLineage(run_id="r", status="complete", outputs=(out,))
    data = new.to_dict()
    assert data["schema_version"] == SCHEMA_VERSION == 2
    assert data["outputs"] == [
        {"engine": "deltalake", "operation_metrics": {"n": 1}, "uri": "file:///t", "version": 0}
    ]
    assert RunLineage.from_dict(json.loads(json.dumps(data))) == new
    assert "outputs" not in RunLineage(run_id="r", status="complete").to_dict()
