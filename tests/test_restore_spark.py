"""``restore --engine spark``: Delta's own RESTORE through Spark, recorded like the default."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import pytest
from click.testing import CliRunner
from deltalake import DeltaTable
from helpers import register_logged_model, run_python
from mlflow import MlflowClient

import lineage_plugin as lp
from lineage_plugin.cli import cli
from lineage_plugin.restore_plan import plan_restore
from lineage_plugin.restore_spark import restore_with_spark

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
