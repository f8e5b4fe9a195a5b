"""``restore --engine spark``: Delta's own RESTORE through Spark, recorded like the default."""

from __future__ import annotations

import json
import shutil
import sys
from dataclasses import replace
from pathlib import Path

import mlflow
import pyarrow as pa
import pytest
from click.testing import CliRunner
from deltalake import DeltaTable, write_deltalake
from helpers import register_logged_model, run_python
from mlflow import MlflowClient

import lineage_plugin as lp
from lineage_plugin.cli import cli
from lineage_plugin.recovery.plan import plan_restore
from lineage_plugin.recovery.restore_spark import restore_with_spark

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("lineage_tracking")]


def ids(spark, path: str, version: int | None = None) -> list[int]:
    reader = spark.read.format("delta")
    if version is not None:
        reader = reader.option("versionAsOf", version)
    return sorted(r["id"] for r in reader.load(path).collect())


@pytest.fixture
def trained(spark, tmp_path):
    """A Spark table (v0, v1), a model version trained on v1 through Spark, then an UPDATE."""
    path = str(tmp_path / "clicks")
    spark.range(0, 4).write.format("delta").save(path)
    spark.range(4, 6).write.format("delta").mode("append").save(path)
    with mlflow.start_run() as run:
        spark.read.format("delta").load(path).count()
    MlflowClient().create_registered_model("clicks")
    MlflowClient().create_model_version("clicks", "s3://bucket/m", run_id=run.info.run_id)
    spark.sql(f"UPDATE delta.`{path}` SET id = id + 100 WHERE id < 2")
    return path


def test_spark_restores_and_the_restore_is_recorded(spark, trained):
    out = CliRunner().invoke(
        cli, ["restore", "clicks", "1", "--engine", "spark", "--yes", "--reason", "bad update"]
    )
    assert out.exit_code == 0, out.output
    assert "Restored clicks to v1: new version v3 (was v2)" in out.output
    assert ids(spark, trained) == list(range(6))
    last = spark.sql(f"DESCRIBE HISTORY delta.`{trained}` LIMIT 1").first()
    assert last["operation"] == "RESTORE" and "Apache-Spark" in last["engineInfo"]
    assert "bad update" in last["userMetadata"]
    tags = MlflowClient().get_model_version("clicks", "1").tags
    [event] = [lp.RegistryEvent.from_json(v) for k, v in tags.items() if "event." in k]
    assert event.kind == "restore" and event.restores[0].new_version == 3
    # Spark's RESTORE commit says which version it restored: later reads know it is a copy.
    with mlflow.start_run() as later:
        DeltaTable(trained).to_pyarrow_dataset()
    [read] = lp.get_run_lineage(later.info.run_id).inputs
    assert (read.version, read.restored_from) == (3, 1)


def test_a_commit_just_before_spark_restore_is_not_left_undone(spark, trained):
    """Spark's RESTORE starts from the latest version: one that moved is reverted at once."""
    stale = plan_restore("clicks", "1").tables[0]  # planned on v2
    spark.range(50, 51).write.format("delta").mode("append").save(trained)  # v3, unplanned
    version, moved = restore_with_spark(stale, "test")
    assert moved and "got commits v3..v3" in moved and "reverted" in moved
    assert version == 5  # v4 RESTORE to v1, v5 RESTORE back to v3
    assert ids(spark, trained) == ids(spark, trained, 3)  # nothing outside the plan undone
    ops = [r["operation"] for r in spark.sql(f"DESCRIBE HISTORY delta.`{trained}`").collect()]
    assert ops[:3] == ["RESTORE", "RESTORE", "WRITE"]


def test_reproduce_pins_the_reads_of_a_spark_training(
    spark, tmp_path, lineage_tracking, monkeypatch
):
    """A training that reads through Spark, reproduced after the table changed, unrestored."""
    tests = Path(__file__).resolve().parent
    path = str(tmp_path / "xy")
    spark.createDataFrame(
        [(float(i), 2.0 * i + 1) for i in range(20)], "x double, y double"
    ).write.format("delta").save(path)
    trained = run_python(
        str(tests / "spark_train.py"),
        path,
        str(tmp_path / "wh"),
        cwd=tmp_path,
        MLFLOW_TRACKING_URI=lineage_tracking,
        PYTHONPATH=str(tests),
    )
    run_id = trained.stdout.rsplit("run_id=", 1)[1].split()[0]
    version = register_logged_model(run_id, "xy")
    spark.sql(f"UPDATE delta.`{path}` SET y = 0 WHERE x < 10")  # the bad write, not restored

    monkeypatch.setenv("PYTHONPATH", str(tests))  # the training imports spark_session
    out = CliRunner().invoke(cli, ["reproduce", "xy", str(version), "--json"])  # recorded argv
    assert out.exit_code == 0, out.output
    report = json.loads(out.stdout)
    assert report["verified"] and report["pinned"] == {f"file://{path}": 0}
    [read] = lp.get_run_lineage(report["verification"]["reproduced_run_id"]).inputs
    assert (read.version, read.engine) == (0, "spark")


# --- tables only Spark reaches ---------------------------------------------------------------
# A Hadoop ``viewfs://`` mount: Spark (and the catalog) read and write it, the driver's
# deltalake cannot open it, like storage that only the cluster has credentials for.


def viewfs_mount(spark, directory) -> str:
    """A ``viewfs://NAME/data`` mount of ``directory`` in this Spark session; returns NAME."""
    mount = f"lin{abs(hash(str(directory))) % 10**8}"
    spark.conf.set(f"fs.viewfs.mounttable.{mount}.link./data", f"file://{directory}")
    return mount


def rewritten_file(spark, table: str, before: int, after: int) -> str:
    """The name of a data file of version ``before`` that ``after`` no longer has."""
    files = {
        v: set(spark.sql(f"SELECT * FROM {table} VERSION AS OF {v}").inputFiles())
        for v in (before, after)
    }
    return sorted(files[before] - files[after])[0].rsplit("/", 1)[1]


@pytest.fixture
def cluster_table(spark, tmp_path):
    """A catalog table at ``viewfs://…`` (v0, v1) read by a training run, version 1 of model
    ``sales`` registered on it, then a bad UPDATE (v2)."""
    mount = viewfs_mount(spark, tmp_path)
    location = f"viewfs://{mount}/data/sales"
    name = f"sales_{mount}"
    spark.range(0, 4).write.format("delta").save(location)
    spark.sql(f"CREATE TABLE {name} USING delta LOCATION '{location}'")
    spark.range(4, 6).write.format("delta").mode("append").saveAsTable(name)
    with mlflow.start_run() as run:
        spark.table(name).toPandas()
    MlflowClient().create_registered_model("sales")
    MlflowClient().create_model_version("sales", "s3://bucket/m", run_id=run.info.run_id)
    spark.sql(f"UPDATE {name} SET id = id + 100 WHERE id < 2")
    yield name, location, tmp_path / "sales"
    spark.sql(f"DROP TABLE IF EXISTS {name}")


def history_of(spark, name: str) -> list[tuple[int, str]]:
    rows = spark.sql(f"DESCRIBE HISTORY {name}").collect()
    return [(r["version"], r["operation"]) for r in rows]


def test_a_table_only_spark_reaches_is_planned_and_restored_through_spark(spark, cluster_table):
    name, location, _ = cluster_table
    [read] = lp.get_lineage("sales", 1).inputs
    assert (read.uri, read.version, read.name) == (location, 1, f"spark_catalog.default.{name}")
    with pytest.raises(Exception, match="viewfs"):
        DeltaTable(location)  # the driver's deltalake cannot open it

    plan = CliRunner().invoke(cli, ["restore", "sales", "1", "--dry-run"])
    assert plan.exit_code == 0, plan.output
    assert "now v2, restore to v1" in plan.output
    assert "Through Spark: deltalake cannot reach it" in plan.output
    assert "UPDATE" in plan.output and "numUpdatedRows=2" in plan.output
    assert history_of(spark, name)[0] == (2, "UPDATE")  # a dry run writes nothing

    out = CliRunner().invoke(cli, ["restore", "sales", "1", "--yes", "--reason", "bad update"])
    assert out.exit_code == 0, out.output
    assert "(spark)" in out.output and "Restored spark_catalog" in out.output
    assert sorted(r["id"] for r in spark.table(name).collect()) == list(range(6))
    assert history_of(spark, name)[0] == (3, "RESTORE")
    tags = MlflowClient().get_model_version("sales", "1").tags
    [event] = [lp.RegistryEvent.from_json(v) for k, v in tags.items() if "event." in k]
    assert (event.kind, event.restores[0].new_version, event.reason) == ("restore", 3, "bad update")

    with mlflow.start_run() as later:  # Spark's reads of the copy know it is one
        spark.table(name).count()
    [copy] = lp.get_run_lineage(later.info.run_id).inputs
    assert (copy.version, copy.restored_from, copy.operation) == (3, 1, "RESTORE")

    again = CliRunner().invoke(cli, ["restore", "sales", "1", "--yes", "--json"])
    assert again.exit_code == 0, again.output
    [table] = json.loads(again.stdout)["plan"]["tables"]
    assert (table["current_copy_of"], table["engine"]) == (1, "spark")
    assert json.loads(again.stdout)["restored"] == []


def test_the_deltalake_engine_is_refused_for_a_table_only_spark_reaches(spark, cluster_table):
    name, _, _ = cluster_table
    out = CliRunner().invoke(cli, ["restore", "sales", "1", "--engine", "deltalake", "--yes"])
    assert out.exit_code == 2
    assert "only Spark reaches it" in out.output and "--engine spark" in out.output
    assert history_of(spark, name)[0] == (2, "UPDATE")


def test_spark_restore_of_vacuumed_files_fails_cleanly_and_writes_nothing(spark, cluster_table):
    name, _, directory = cluster_table
    # The file the UPDATE replaced (a restore brings it back) goes, as a VACUUM would take it.
    (directory / rewritten_file(spark, name, 1, 2)).unlink()
    out = CliRunner().invoke(cli, ["restore", "sales", "1", "--yes"])
    assert out.exit_code == 2
    assert "Not all files from version 1" in out.output and "VACUUM" in out.output
    assert "The table was not changed." in out.output
    assert history_of(spark, name)[0] == (2, "UPDATE")
    assert "event." not in " ".join(MlflowClient().get_model_version("sales", "1").tags)


def test_spark_plans_refuse_a_recreated_table_and_a_missing_version(spark, cluster_table):
    from lineage_plugin.recovery.plan import plan_table_with_spark

    [read] = lp.get_lineage("sales", 1).inputs
    ok = plan_table_with_spark(read, "test")
    assert (ok.current_version, [c.version for c in ok.commits], ok.refusals) == (2, [2], ())
    assert ok.commits[0].operation == "UPDATE"

    other = plan_table_with_spark(replace(read, table_id="another-table"))
    assert "not the one recorded" in other.refusals[0] and "re-created" in other.refusals[0]
    future = plan_table_with_spark(replace(read, version=9))
    assert "Version 9" in future.refusals[0] and "latest version is 2" in future.refusals[0]
    gone = plan_table_with_spark(replace(read, uri="viewfs://nowhere/data/x"))
    assert gone.current_version is None and "cannot be read through Spark" in gone.refusals[0]


def test_verification_reads_a_table_only_spark_reaches_through_spark(spark, cluster_table):
    from lineage_plugin.recovery.predictions import read_table_version

    _, location, _ = cluster_table
    frame = read_table_version(location, 1, ["id"])  # deltalake cannot open it: Spark reads
    assert sorted(frame["id"]) == list(range(6))
    with pytest.raises(Exception, match="viewfs"):
        read_table_version(location, 1, ["id"], engine="deltalake")  # asked for: no fallback


def test_without_deltalake_on_the_driver_everything_goes_through_spark(spark, trained, monkeypatch):
    """A driver with only pyspark and delta-spark: the plan, the restore and the read."""
    from lineage_plugin.recovery.predictions import read_table_version

    monkeypatch.setitem(sys.modules, "deltalake", None)  # as if it were not installed
    out = CliRunner().invoke(cli, ["restore", "clicks", "1", "--yes", "--json"])
    assert out.exit_code == 0, out.output
    report = json.loads(out.stdout)
    [table] = report["plan"]["tables"]
    assert (table["engine"], table["unreachable"]) == (
        "spark",
        "the deltalake package is not installed",
    )
    assert [c["operation"] for c in table["commits"]] == ["UPDATE"]
    assert report["restored"][0]["new_version"] == 3
    assert ids(spark, trained) == list(range(6))
    frame = read_table_version(f"file://{trained}", 1, ["id"])
    assert sorted(frame["id"]) == list(range(6))


def test_check_asks_the_active_spark_session_about_a_table_only_spark_reaches(spark, cluster_table):
    name, location, directory = cluster_table
    report = lp.check("sales", 1)
    assert [p for p in report.problems if p["kind"] == "data"] == []
    # Re-created at the same location: other data, and check says so through Spark.
    spark.sql(f"DROP TABLE {name}")
    shutil.rmtree(directory)
    spark.range(0, 2).write.format("delta").save(location)
    [problem] = [p for p in lp.check("sales", 1).problems if p["kind"] == "data"]
    assert "not the one recorded" in problem["message"] and "re-created" in problem["message"]


def test_a_table_that_fails_after_another_was_restored_leaves_that_one_recorded(spark, tmp_path):
    """Two tables, one restored (deltalake), then the other's Spark RESTORE fails."""
    local = str(tmp_path / "a")
    write_deltalake(local, pa.table({"id": [0, 1]}))
    remote = f"viewfs://{viewfs_mount(spark, tmp_path)}/data/b"
    spark.range(0, 4).write.format("delta").save(remote)
    with mlflow.start_run() as run:
        DeltaTable(local).to_pyarrow_table()
        spark.read.format("delta").load(remote).count()
    MlflowClient().create_registered_model("pair")
    MlflowClient().create_model_version("pair", "s3://bucket/m", run_id=run.info.run_id)
    DeltaTable(local).update(predicate="id = 0", updates={"id": "9"})
    spark.sql(f"UPDATE delta.`{remote}` SET id = 9 WHERE id = 0")
    (tmp_path / "b" / rewritten_file(spark, f"delta.`{remote}`", 0, 1)).unlink()

    out = CliRunner().invoke(cli, ["restore", "pair", "1", "--yes"])
    assert out.exit_code == 2
    assert "Spark RESTORE of b to v0 failed" in out.output and "not changed" in out.output
    assert "Already restored: a (now v2)" in out.output
    assert sorted(DeltaTable(local).to_pyarrow_table()["id"].to_pylist()) == [0, 1]
    assert spark.sql(f"DESCRIBE HISTORY delta.`{remote}` LIMIT 1").first()["version"] == 1
    tags = MlflowClient().get_model_version("pair", "1").tags
    [event] = [lp.RegistryEvent.from_json(v) for k, v in tags.items() if "event." in k]
    assert [(r.name, r.new_version) for r in event.restores] == [("a", 2)]
