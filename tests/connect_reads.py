"""Delta reads through Spark Connect (a local Connect server), in their own process: pinned
reader and Delta Connect ``DeltaTable`` reads, and the SQL and view reads it cannot see.

Usage: python connect_reads.py TABLE   (tracking URI from MLFLOW_TRACKING_URI; prints JSON)
"""

from __future__ import annotations

import json
import sys

import mlflow
from pyspark.sql import SparkSession

import lineage_plugin as lp
from lineage_plugin.delta.spark import DELTA_CONF


def main() -> None:
    path = sys.argv[1]
    builder = SparkSession.builder.remote("local[2]").config(
        "spark.jars.packages", "io.delta:delta-spark_2.13:4.0.1"
    )
    for key, value in {**DELTA_CONF, "spark.ui.showConsoleProgress": "false"}.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.range(0, 3).write.format("delta").save(path)  # v0
    spark.range(3, 4).write.format("delta").mode("append").save(path)  # v1
    with mlflow.start_run() as run:
        frame = spark.read.format("delta").load(path)  # pinned to v1
        spark.range(4, 6).write.format("delta").mode("append").save(path)  # v2
        pinned_count = frame.count()
        old_count = spark.read.format("delta").option("versionAsOf", 0).load(path).count()
    runs = {"reader": run.info.run_id}

    from delta.tables import DeltaTable  # Delta Connect's DeltaTable on this session

    with mlflow.start_run() as run:
        frame = DeltaTable.forPath(spark, path).toDF()  # pinned to v2
        spark.range(6, 7).write.format("delta").mode("append").save(path)  # v3
        table_count = frame.count()
        DeltaTable.forPath(spark, path).alias("t")  # derived: not read, nothing to say
        # A SQL command runs at once and reads nothing the run keeps: not a gap.
        spark.sql(f"CREATE OR REPLACE TEMP VIEW recent AS SELECT * FROM delta.`{path}`")
    runs["delta_table"] = run.info.run_id
    with mlflow.start_run() as run:
        spark.sql(f"SELECT * FROM delta.`{path}` WHERE id > 1").count()
    runs["sql"] = run.info.run_id
    with mlflow.start_run() as run:
        spark.table("recent").count()
    runs["view"] = run.info.run_id
    with mlflow.start_run() as run:
        DeltaTable.forPath(spark, path).alias("t").toDF()
    runs["derived"] = run.info.run_id

    report: dict = {
        "session": type(spark).__module__,
        "pinned_count": pinned_count,
        "old_count": old_count,
        "table_count": table_count,
    }
    for key, run_id in runs.items():
        lineage = lp.get_run_lineage(run_id)
        report[key] = {
            "inputs": [[i.version, i.engine] for i in lineage.inputs],
            "status": lineage.status,
            "reasons": list(lineage.reasons),
        }
    print(json.dumps(report))
    spark.stop()


if __name__ == "__main__":
    main()
