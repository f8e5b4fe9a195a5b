"""Capture of Delta writes made with Spark (delta-spark): writer writes stamped, SQL DML and
``DeltaTable`` operations recorded from the history.

The test session's one local Spark session with the Delta jars, real Delta tables in
``tmp_path``, a real ``lineage+sqlite`` MLflow store.
"""

from __future__ import annotations

import json
import threading

import mlflow
import pytest

import lineage_plugin as lp
from lineage_plugin.delta.history import commits
from lineage_plugin.delta.log import normalize_uri
from lineage_plugin.delta.own_reads import not_recorded
from lineage_plugin.records import DeltaOutput

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("lineage_tracking")]

USER_METADATA = "spark.databricks.delta.commitInfo.userMetadata"


def frame(spark, values: list[int]):
    return spark.createDataFrame([(v,) for v in values], "id long")


def outputs_of(run) -> list[DeltaOutput]:
    return list(lp.get_run_lineage(run.info.run_id).outputs)


def history(spark, table: str) -> dict[int, object]:
    return {r["version"]: r for r in spark.sql(f"DESCRIBE HISTORY {table}").collect()}


def stamp(row) -> dict[str, str]:
    return json.loads(row["userMetadata"]) if row["userMetadata"] else {}


@pytest.fixture
def table(spark, tmp_path) -> str:
    """A Delta table at a path, written outside any run: v0 = [0, 1, 2]."""
    path = str(tmp_path / "events")
    frame(spark, [0, 1, 2]).write.format("delta").save(path)
    return path


def test_dataframe_writer_save_is_recorded_and_its_commit_stamped(spark, table):
    with mlflow.start_run() as run:
        frame(spark, [3, 4]).write.format("delta").mode("append").save(table)
        frame(spark, [5]).write.mode("overwrite").save(table, format="delta")
    outs = outputs_of(run)
    assert [(o.uri, o.version, o.operation, o.engine) for o in outs] == [
        (f"file://{table}", 1, "WRITE", "spark"),
        (f"file://{table}", 2, "WRITE", "spark"),
    ]
    assert outs[0].operation_metrics["numOutputRows"] == "2"
    assert outs[0].table_id == spark.sql(f"DESCRIBE DETAIL delta.`{table}`").first()["id"]
    rows = history(spark, f"delta.`{table}`")
    stamps = [stamp(rows[v]) for v in (1, 2)]
    assert all(s["mlflow.runId"] == run.info.run_id for s in stamps)
    assert all(s["mlflow.experimentId"] == run.info.experiment_id for s in stamps)
    assert stamps[0]["mlflow.lineage.writeId"] != stamps[1]["mlflow.lineage.writeId"]
    assert rows[0]["userMetadata"] is None  # written without a run
    # The plugin's own history reads the stamp too.
    assert [c.run_id for c in commits(table, start=0, end=2)] == [
        None,
        run.info.run_id,
        run.info.run_id,
    ]
    assert lp.get_run_lineage(run.info.run_id).status == "complete"


def test_save_as_table_and_insert_into_are_recorded_with_the_catalog_name(spark):
    spark.sql("DROP TABLE IF EXISTS default.written")
    with mlflow.start_run() as run:
        frame(spark, [1, 2]).write.format("delta").saveAsTable("default.written")
        frame(spark, [3]).write.insertInto("default.written")
        frame(spark, [4]).write.format("delta").mode("append").saveAsTable("default.written")
    location = spark.sql("DESCRIBE DETAIL default.written").first()["location"]
    outs = outputs_of(run)
    assert [(o.version, o.operation, o.name) for o in outs] == [
        (0, "CREATE TABLE AS SELECT", "spark_catalog.default.written"),
        (1, "WRITE", "spark_catalog.default.written"),
        (2, "WRITE", "spark_catalog.default.written"),
    ]
    assert outs[0].uri == normalize_uri(location)
    rows = history(spark, "default.written")
    # Creating a table (Delta's catalog) and insertInto drop the writer's options: these two
    # commits are found from the history; an append to an existing table carries the stamp.
    assert rows[0]["userMetadata"] is None and rows[1]["userMetadata"] is None
    assert stamp(rows[2])["mlflow.runId"] == run.info.run_id
    assert lp.get_run_lineage(run.info.run_id).status == "complete"


def test_writer_v2_writes_are_recorded_and_stamped(spark):
    spark.sql("DROP TABLE IF EXISTS default.v2")
    with mlflow.start_run() as run:
        frame(spark, [1]).writeTo("default.v2").using("delta").createOrReplace()
        frame(spark, [2]).writeTo("default.v2").append()
    outs = outputs_of(run)
    assert [o.version for o in outs] == [0, 1]
    assert outs[1].operation == "WRITE"
    rows = history(spark, "default.v2")
    assert {stamp(rows[v]).get("mlflow.runId") for v in (0, 1)} == {run.info.run_id}


def test_a_users_own_user_metadata_is_kept_and_the_write_still_recorded(spark, table):
    with mlflow.start_run() as run:
        frame(spark, [7]).write.format("delta").mode("append").option(
            "userMetadata", "nightly backfill"
        ).save(table)
        spark.conf.set(USER_METADATA, "session note")
        try:
            frame(spark, [8]).write.format("delta").mode("append").save(table)
        finally:
            spark.conf.unset(USER_METADATA)
    rows = history(spark, f"delta.`{table}`")
    assert rows[1]["userMetadata"] == "nightly backfill"
    assert rows[2]["userMetadata"] == "session note"
    assert [(o.version, o.operation) for o in outputs_of(run)] == [(1, "WRITE"), (2, "WRITE")]
    assert lp.get_run_lineage(run.info.run_id).status == "complete"


def test_sql_dml_is_recorded_from_the_history_unstamped(spark, table):
    spark.sql("CREATE OR REPLACE TEMP VIEW updates AS SELECT id, id * 10 AS v FROM range(2, 5)")
    with mlflow.start_run() as run:
        spark.sql(f"INSERT INTO delta.`{table}` VALUES (10), (11)")
        spark.sql(f"UPDATE delta.`{table}` SET id = id + 100 WHERE id = 10")
        spark.sql(f"DELETE FROM delta.`{table}` WHERE id = 0")
        spark.sql(
            f"MERGE INTO delta.`{table}` t USING updates s ON t.id = s.id "
            "WHEN MATCHED THEN DELETE WHEN NOT MATCHED THEN INSERT (id) VALUES (s.id)"
        )
        spark.sql(f"DELETE FROM delta.`{table}` WHERE id = 999")  # no commit: nothing recorded
    outs = outputs_of(run)
    assert [(o.version, o.operation) for o in outs] == [
        (1, "WRITE"),
        (2, "UPDATE"),
        (3, "DELETE"),
        (4, "MERGE"),
    ]
    assert outs[2].operation_metrics["numDeletedRows"] == "1"
    assert outs[3].operation_metrics["numTargetRowsDeleted"] == "1"
    assert outs[3].operation_metrics["numTargetRowsInserted"] == "2"
    rows = history(spark, f"delta.`{table}`")
    assert all(rows[v]["userMetadata"] is None for v in range(1, 5))  # never the session conf
    assert lp.get_run_lineage(run.info.run_id).status == "complete"


def test_delta_table_api_operations_are_recorded(spark, table):
    from delta.tables import DeltaTable

    with mlflow.start_run() as run:
        by_path = DeltaTable.forPath(spark, table)
        by_path.update("id = 1", {"id": "id + 50"})
        by_path.delete("id = 2")
        (
            by_path.alias("t")
            .merge(frame(spark, [0, 9]).alias("s"), "t.id = s.id")
            .whenMatchedDelete()
            .whenNotMatchedInsertAll()
            .execute()
        )
        by_path.optimize().executeCompaction()
        by_path.restoreToVersion(0)
    outs = outputs_of(run)
    assert [(o.version, o.operation) for o in outs] == [
        (1, "UPDATE"),
        (2, "DELETE"),
        (3, "MERGE"),
        (4, "OPTIMIZE"),
        (5, "RESTORE"),
    ]
    assert outs[4].restored_from == 0
    assert outs[2].operation_metrics["numTargetRowsInserted"] == "1"


def test_a_run_that_reads_and_writes_the_same_table_records_both(spark, table):
    with mlflow.start_run() as run:
        read = spark.read.format("delta").load(table)
        read.selectExpr("id + 100 AS id").write.format("delta").mode("append").save(table)
    lineage = lp.get_run_lineage(run.info.run_id)
    assert [(i.uri, i.version) for i in lineage.inputs] == [(f"file://{table}", 0)]
    assert [(o.uri, o.version) for o in lineage.outputs] == [(f"file://{table}", 1)]
    assert lineage.inputs[0].table_id == lineage.outputs[0].table_id


def test_a_write_outside_a_run_is_not_stamped_nor_recorded(spark, table):
    frame(spark, [5]).write.format("delta").mode("append").save(table)
    spark.sql(f"DELETE FROM delta.`{table}` WHERE id = 5")
    with mlflow.start_run() as run:
        pass
    rows = history(spark, f"delta.`{table}`")
    assert rows[1]["userMetadata"] is None and rows[2]["userMetadata"] is None
    assert outputs_of(run) == []


def test_a_thread_writing_without_a_run_while_a_run_writes_sql_is_not_stamped(spark, table):
    """SQL DML is never stamped through the session conf, so another thread's commit made
    during the run's statement carries nothing of the run."""
    done = threading.Event()
    other = str(table) + "_other"
    frame(spark, [0]).write.format("delta").save(other)

    def elsewhere() -> None:
        for _ in range(3):
            spark.sql(f"INSERT INTO delta.`{other}` VALUES (1)")
        done.set()

    with mlflow.start_run() as run:
        worker = threading.Thread(target=elsewhere)
        worker.start()
        spark.sql(f"UPDATE delta.`{table}` SET id = id + 1")
        worker.join()
    assert done.is_set()
    rows = history(spark, f"delta.`{other}`")
    assert all(rows[v]["userMetadata"] is None for v in range(1, 4))
    # The worker's writes go to the one run active in the process, as its reads would: each
    # found from the history of its own table.
    outs = {(o.uri, o.version, o.operation) for o in outputs_of(run)}
    assert (f"file://{table}", 1, "UPDATE") in outs


@pytest.fixture
def foreign_commit_during_calls(table, monkeypatch) -> None:
    """Another writer (which the plugin does not see) commits to ``table`` right after each
    Spark write call, before the plugin looks at the history."""
    import pyarrow as pa
    from deltalake import write_deltalake

    from lineage_plugin.tracking import spark_writes

    real = spark_writes.record

    def with_a_foreign_commit(write, counts=None):
        with not_recorded():
            write_deltalake(table, pa.table({"id": pa.array([42], pa.int64())}), mode="append")
        real(write, counts)

    monkeypatch.setattr(spark_writes, "record", with_a_foreign_commit)


def test_a_stamped_write_is_found_by_its_stamp_whatever_else_committed(
    spark, table, foreign_commit_during_calls
):
    with mlflow.start_run() as run:
        frame(spark, [7]).write.format("delta").mode("append").save(table)
    assert [(o.version, o.engine) for o in outputs_of(run)] == [(1, "spark")]  # v2: foreign
    assert lp.get_run_lineage(run.info.run_id).status == "complete"


@pytest.mark.usefixtures("foreign_commit_during_calls")
def test_concurrent_commits_during_an_unstamped_call_are_not_guessed(spark, table):
    """A commit of another writer landing during the call: the run is marked incomplete."""
    with mlflow.start_run() as run:
        spark.sql(f"DELETE FROM delta.`{table}` WHERE id = 1")  # v1, then the foreign v2
        spark.sql(f"DELETE FROM delta.`{table}` WHERE id = 999")  # no commit; the foreign v3
    lineage = lp.get_run_lineage(run.info.run_id)
    assert lineage.outputs == ()
    assert lineage.status == "incomplete"
    assert "commits v1..v2 landed during the call" in lineage.reasons[0]
    assert (
        "(v3) may be another writer's: its operation is 'WRITE', not DELETE" in (lineage.reasons[1])
    )


def test_sql_optimize_and_restore_on_a_catalog_table_are_recorded(spark):
    spark.sql("DROP TABLE IF EXISTS default.compacted")
    frame(spark, [1]).write.format("delta").saveAsTable("default.compacted")
    frame(spark, [2]).write.format("delta").mode("append").saveAsTable("default.compacted")
    with mlflow.start_run() as run:
        spark.sql("OPTIMIZE default.compacted")
        spark.sql("RESTORE TABLE default.compacted TO VERSION AS OF 0")
    outs = outputs_of(run)
    assert [(o.version, o.operation, o.name) for o in outs] == [
        (2, "OPTIMIZE", "spark_catalog.default.compacted"),
        (3, "RESTORE", "spark_catalog.default.compacted"),
    ]
    assert outs[1].restored_from == 0


@pytest.mark.parametrize(
    ("query", "target"),
    [
        ("MERGE INTO delta.`/d/t` t USING s ON t.id = s.id ...", ("MERGE", "/d/t", True)),
        ("  update `db`.`t` SET x = 1", ("UPDATE", "`db`.`t`", False)),
        ("DELETE FROM db.t WHERE id = 1", ("DELETE", "db.t", False)),
        ("INSERT INTO TABLE t VALUES (1)", ("INSERT", "t", False)),
        ("insert overwrite tables_x SELECT 1", ("INSERT", "tables_x", False)),
        ("RESTORE TABLE t TO VERSION AS OF 1", ("RESTORE", "t", False)),
        ("SELECT * FROM t", None),
        ("DESCRIBE HISTORY t", None),
    ],
)
def test_sql_write_statements_are_told_by_their_target(query, target):
    from lineage_plugin.tracking.spark_write_hooks import sql_target

    assert sql_target(query) == target


def test_a_thread_without_a_run_while_two_runs_are_active_writes_unstamped(spark, table):
    """Which run it belongs to would be a guess: not stamped, not recorded, a warning."""
    started, finish = threading.Event(), threading.Event()
    other_run: list[str] = []

    def second_run() -> None:
        with mlflow.start_run() as run:
            other_run.append(run.info.run_id)
            started.set()
            finish.wait(60)

    def no_run_writer() -> None:
        frame(spark, [9]).write.format("delta").mode("append").save(table)

    holder = threading.Thread(target=second_run)
    holder.start()
    started.wait(60)
    try:
        with mlflow.start_run() as run, pytest.warns(lp.LineageWarning, match="several runs"):
            writer = threading.Thread(target=no_run_writer)
            writer.start()
            writer.join()
    finally:
        finish.set()
        holder.join()
    assert history(spark, f"delta.`{table}`")[1]["userMetadata"] is None
    assert outputs_of(run) == []
    assert lp.get_run_lineage(other_run[0]).outputs == ()


def test_reindex_recovers_a_spark_stamped_write_whose_run_recorded_nothing(
    spark, table, lineage_tracking
):
    """A Spark commit stamped in ``userMetadata`` by a run whose record lost the write:
    ``reindex`` finds it in the table's history (as it does deltalake's stamps)."""
    from mlflow.tracking import MlflowClient

    from lineage_plugin.queries import reindex

    with mlflow.start_run() as reader:  # the table is in recorded lineage
        spark.read.format("delta").load(table).collect()
    client = MlflowClient()
    silent = client.create_run(reader.info.experiment_id, run_name="no-plugin").info.run_id
    client.set_terminated(silent)
    metadata = json.dumps({"mlflow.runId": silent})  # no active run: the plugin adds nothing
    frame(spark, [7]).write.format("delta").mode("append").option("userMetadata", metadata).save(
        table
    )
    assert outputs_of(mlflow.get_run(silent)) == []
    summary = reindex(tracking_uri=lineage_tracking)
    assert summary.stamped_writes == 1
    written = lp.timeline(table=table, tracking_uri=lineage_tracking).to_dict()["entries"]
    assert [(e["table_version"], e["run_id"]) for e in written if e["kind"] == "write"] == [
        (1, silent)
    ]
