"""Capture through Spark with delta-spark: pinned reads, SQL per action, catalog tables, interop.

A real local Spark session with the Delta jars (one per test session), real Delta tables
written by Spark and by deltalake, a real ``lineage+sqlite`` MLflow store.
"""

from __future__ import annotations

import mlflow
import pandas as pd
import pytest
from deltalake import DeltaTable, write_deltalake
from helpers import read_pandas

import lineage_plugin as lp

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("lineage_tracking")]


def write(spark, path: str, values: list[int], mode: str = "append") -> None:
    spark.createDataFrame([(v,) for v in values], "id long").write.format("delta").mode(mode).save(
        path
    )


@pytest.fixture
def table(spark, tmp_path) -> str:
    """A Delta table written by Spark: v0 = [0, 1, 2], v1 = + [3]."""
    path = str(tmp_path / "events")
    write(spark, path, [0, 1, 2])
    write(spark, path, [3])
    return path


def inputs(run) -> list[tuple[str, int, str]]:
    lineage = lp.get_run_lineage(run.info.run_id)
    return [(i.uri, i.version, i.engine) for i in lineage.inputs]


def test_reader_load_is_pinned_to_the_version_resolved_at_read_time(spark, table):
    with mlflow.start_run() as run:
        frame = spark.read.format("delta").load(table)
        write(spark, table, [4, 5])  # a concurrent writer: v2
        assert frame.count() == 4  # still v1: the read was pinned
        other = spark.read.load(table, format="delta").count()
    assert other == 6
    assert inputs(run) == [(f"file://{table}", 1, "spark"), (f"file://{table}", 2, "spark")]
    assert lp.get_run_lineage(run.info.run_id).status == "complete"


def test_explicit_time_travel_is_kept_and_recorded(spark, table):
    write(spark, table, [9])
    history = spark.sql(f"DESCRIBE HISTORY delta.`{table}`")
    v1_time = str(history.where("version = 1").first()["timestamp"])
    with mlflow.start_run() as run:
        assert spark.read.format("delta").option("versionAsOf", 0).load(table).count() == 3
        by_time = spark.read.format("delta").option("timestampAsOf", v1_time).load(table)
        assert by_time.count() == 4
    assert [v for _, v, _ in inputs(run)] == [0, 1]


def test_catalog_tables_are_recorded_by_location_and_name_and_pinned(spark, tmp_path):
    spark.sql("DROP TABLE IF EXISTS default.scores")
    spark.createDataFrame([(1,), (2,)], "id long").write.format("delta").saveAsTable(
        "default.scores"
    )
    location = spark.sql("DESCRIBE DETAIL default.scores").first()["location"]
    with mlflow.start_run() as run:
        via_reader = spark.read.table("default.scores")
        via_session = spark.table("default.scores")
        spark.sql("INSERT INTO default.scores VALUES (3)")
        assert via_reader.count() == via_session.count() == 2
        in_sql = spark.sql("SELECT * FROM default.scores").count()
    assert in_sql == 3
    reads = {(i.uri, i.version, i.name) for i in lp.get_run_lineage(run.info.run_id).inputs}
    name = "spark_catalog.default.scores"  # as Spark names it, in the API and in SQL
    assert reads == {(lp_uri(location), 0, name), (lp_uri(location), 1, name)}


def lp_uri(location: str) -> str:
    from lineage_plugin.delta.log import normalize_uri

    return normalize_uri(location)


def test_delta_table_to_df_is_pinned(spark, table):
    from delta.tables import DeltaTable as SparkDeltaTable

    spark.sql("DROP TABLE IF EXISTS default.named")
    spark.sql(f"CREATE TABLE default.named USING delta LOCATION '{table}'")
    with mlflow.start_run() as run:
        by_path = SparkDeltaTable.forPath(spark, table).toDF()
        by_name = SparkDeltaTable.forName(spark, "default.named").toDF()
        write(spark, table, [7])
        assert by_path.count() == by_name.count() == 4
    assert {(uri, v) for uri, v, _ in inputs(run)} == {(f"file://{table}", 1)}


def test_sql_is_recorded_per_action_with_the_version_it_scanned(spark, table):
    with mlflow.start_run() as run:
        query = spark.sql(f"SELECT * FROM delta.`{table}`")
        assert query.count() == 4  # scans v1
        write(spark, table, [8])
        assert len(query.collect()) == 5  # Delta on Spark: this action scans v2
        old = spark.sql(f"SELECT * FROM delta.`{table}` VERSION AS OF 0").toPandas()
    assert len(old) == 3
    assert sorted(v for _, v, _ in inputs(run)) == [0, 1, 2]
    assert lp.get_run_lineage(run.info.run_id).status == "complete"


def test_a_commit_during_an_sql_action_marks_the_run_incomplete(spark, table, tmp_path):
    """A Python UDF commits to the table while the action runs: the version is not guessed."""
    from pyspark.sql.functions import udf

    @udf("long")
    def commit_then(value: int) -> int:
        import pandas as pd_worker
        from deltalake import write_deltalake as write_worker

        write_worker(table, pd_worker.DataFrame({"id": [100 + value]}), mode="append")
        return value

    with mlflow.start_run() as run:
        query = spark.sql(f"SELECT * FROM delta.`{table}` WHERE id = 0")
        with pytest.warns(lp.LineageWarning, match="version it scanned is not known"):
            query.select(commit_then("id")).collect()
    lineage = lp.get_run_lineage(run.info.run_id)
    assert lineage.status == "incomplete" and lineage.inputs == ()
    assert "landed" in lineage.reasons[0]


def test_non_delta_reads_are_not_recorded(spark, tmp_path):
    spark.createDataFrame([(1,)], "id long").write.parquet(str(tmp_path / "plain"))
    with mlflow.start_run() as run:
        assert spark.read.parquet(str(tmp_path / "plain")).count() == 1
        assert spark.read.format("parquet").load(str(tmp_path / "plain")).count() == 1
    assert inputs(run) == []


@pytest.mark.parametrize("writer", ["spark", "deltalake"])
def test_the_same_table_has_the_same_versions_in_both_engines(spark, tmp_path, writer):
    path = str(tmp_path / f"by_{writer}")
    for values in ([1, 2], [3]):
        if writer == "spark":
            write(spark, path, values)
        else:
            write_deltalake(path, pd.DataFrame({"id": values}), mode="append")
    with mlflow.start_run() as by_spark:
        spark.read.format("delta").load(path).count()
    with mlflow.start_run() as by_deltalake:
        read_pandas(DeltaTable(path))
    spark_read = lp.get_run_lineage(by_spark.info.run_id).inputs[0]
    deltalake_read = lp.get_run_lineage(by_deltalake.info.run_id).inputs[0]
    same = ("uri", "version", "table_id", "commit_timestamp", "operation")
    assert {k: getattr(spark_read, k) for k in same} == {
        k: getattr(deltalake_read, k) for k in same
    }
    assert (spark_read.engine, deltalake_read.engine) == ("spark", "deltalake")
    assert spark_read.version == 1 and spark_read.table_id


def test_the_plugin_never_imports_pyspark_or_delta_itself():
    """MLflow itself imports pyspark when it is installed; the plugin's modules do not."""
    import subprocess
    import sys

    code = (
        "import sys, lineage_plugin, lineage_plugin.store.entrypoints,"
        " lineage_plugin.tracking.spark_hooks, lineage_plugin.tracking.autolog;"
        "print('pyspark' in sys.modules, 'delta' in sys.modules, 'mlflow' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.split() == ["False", "False", "False"], out.stderr[-2000:]


def test_a_reproduction_pins_spark_reads_to_the_recorded_version(spark, table, monkeypatch):
    from lineage_plugin.tracking.reproducing import REPRODUCE_ENV, ReproduceRequest

    request = ReproduceRequest(token="t", model="m", version="1", pins={f"file://{table}": 0})
    monkeypatch.setenv(REPRODUCE_ENV, request.to_env())
    with mlflow.start_run() as run:
        assert spark.read.format("delta").load(table).count() == 3  # v0, not the latest v1
        assert spark.read.format("delta").option("versionAsOf", 1).load(table).count() == 4
    assert [v for _, v, _ in inputs(run)] == [0, 1]
    assert mlflow.get_run(run.info.run_id).data.tags["lineage.reproduces"] == "m/1"


def test_versions_resolved_through_spark_sql_match_the_log(spark, table):
    """The path used for tables the plugin cannot read itself (object stores, catalogs)."""
    from lineage_plugin.delta import log as delta_log
    from lineage_plugin.delta.spark import remote_version

    for version in (None, 0, 1):
        through_spark = remote_version(spark, table, version)
        from_log = delta_log.resolve(table, version)
        assert through_spark.version == from_log.version
        assert through_spark.table_id == from_log.table_id
        assert through_spark.commit.operation == from_log.commit.operation
        assert abs(through_spark.commit.timestamp - from_log.commit.timestamp) < 1000
    with pytest.raises(delta_log.TableNotFoundError, match="no version 7"):
        remote_version(spark, table, 7)


def test_verification_reads_the_same_rows_through_spark_as_through_deltalake(spark, table):
    """Drivers without deltalake verify through Spark: the same version, the same data."""
    from lineage_plugin.errors import VerificationError
    from lineage_plugin.recovery.predictions import read_table_version

    uri = f"file://{table}"
    with mlflow.start_run() as run:
        by_spark = read_table_version(uri, 0, ["id"], engine="spark")
        by_deltalake = read_table_version(uri, 0, ["id"], engine="deltalake")
    assert sorted(by_spark["id"]) == sorted(by_deltalake["id"]) == [0, 1, 2]
    assert inputs(run) == []  # the plugin's own reads are not the run's
    with pytest.raises(VerificationError, match="needs columns"):
        read_table_version(uri, 0, ["id", "nope"], engine="spark")


def test_spark_connect_reads_are_pinned_and_recorded_and_sql_marks_incomplete(
    tmp_path, lineage_tracking
):
    """A real local Spark Connect server (no JVM on the client), in its own process."""
    import json
    from pathlib import Path

    from helpers import run_python

    tests = Path(__file__).resolve().parent
    result = run_python(
        str(tests / "connect_reads.py"),
        str(tmp_path / "connected"),
        cwd=tmp_path,
        timeout=600,
        MLFLOW_TRACKING_URI=lineage_tracking,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["session"] == "pyspark.sql.connect.session"
    assert (report["pinned_count"], report["old_count"], report["table_count"]) == (4, 3, 6)
    reader, delta_table = report["reader"], report["delta_table"]
    assert reader["inputs"] == [[1, "spark"], [0, "spark"]] and reader["status"] == "complete"
    assert delta_table == {"inputs": [[2, "spark"]], "status": "complete", "reasons": []}
    # What Connect cannot see is said, never guessed.
    for key, says in (
        ("sql", "ran a SQL query"),
        ("view", "it is a view"),
        ("derived", "derived table (alias()"),
    ):
        assert report[key]["inputs"] == [] and report[key]["status"] == "incomplete"
        [reason] = report[key]["reasons"]
        assert says in reason and "without a JVM" in reason and "spark.read.table" in reason


def test_plans_without_delta_scans_record_nothing_and_no_failure(spark, tmp_path):
    """Views over in-memory data and ranges: no read, no warning, the run stays complete."""
    spark.createDataFrame([(1,)], "id long").createOrReplaceTempView("in_memory")
    with mlflow.start_run() as run:
        assert spark.sql("SELECT * FROM in_memory").count() == 1
        assert spark.range(3).count() == 3
    lineage = lp.get_run_lineage(run.info.run_id)
    assert lineage.inputs == () and lineage.status != "incomplete"


def test_a_jdbc_relation_beside_a_delta_table_is_skipped_not_a_failure(spark, tmp_path):
    """JDBC relations have no file location: a join with one records the Delta table only.

    Derby ships with Spark: an in-memory database, no server.
    """
    path = str(tmp_path / "ids")
    spark.range(0, 4).write.format("delta").save(path)
    url = f"jdbc:derby:memory:lineage{abs(hash(str(tmp_path))) % 10**8};create=true"
    props = {"driver": "org.apache.derby.jdbc.EmbeddedDriver"}
    spark.createDataFrame([(1, "a"), (2, "b")], "id long, label string").write.jdbc(
        url, "LABELS", properties=props
    )
    spark.read.format("delta").load(path).createOrReplaceTempView("ids_view")
    spark.read.jdbc(url, "LABELS", properties=props).createOrReplaceTempView("labels")
    with mlflow.start_run() as run:
        rows = spark.sql("SELECT i.id, l.label FROM ids_view i JOIN labels l ON i.id = l.id")
        assert sorted(r["label"] for r in rows.collect()) == ["a", "b"]
    lineage = lp.get_run_lineage(run.info.run_id)
    assert [(i.uri, i.version) for i in lineage.inputs] == [(f"file://{path}", 0)]
    assert lineage.status == "complete" and lineage.reasons == ()


def test_sql_time_travel_by_timestamp_records_the_version_spark_resolved(spark, table):
    write(spark, table, [9])  # v2: the latest is not the one asked for
    history = spark.sql(f"DESCRIBE HISTORY delta.`{table}`")
    v1_time = str(history.where("version = 1").first()["timestamp"])
    with mlflow.start_run() as run:
        rows = spark.sql(f"SELECT * FROM delta.`{table}` TIMESTAMP AS OF '{v1_time}'").collect()
    assert len(rows) == 4
    assert inputs(run) == [(f"file://{table}", 1, "spark")]
    assert lp.get_run_lineage(run.info.run_id).status == "complete"
