"""One local Spark session with Delta for the whole test session (``local[2]``).

The Delta jars come from Maven Central through ``spark.jars.packages`` (delta-spark's
``configure_spark_with_delta_pip``), cached by Ivy after the first start.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def start_session(warehouse: Path) -> Any:
    """A ``local[2]`` SparkSession with the Delta extension and catalog, quiet and small."""
    from delta import configure_spark_with_delta_pip
    from pyspark.sql import SparkSession

    builder = (
        SparkSession.builder.master("local[2]")
        .appName("mlflow-delta-lineage-tests")
        .config("spark.sql.extensions", "io.delta.sql.DeltaSparkSessionExtension")
        .config(
            "spark.sql.catalog.spark_catalog", "org.apache.spark.sql.delta.catalog.DeltaCatalog"
        )
        .config("spark.sql.warehouse.dir", str(warehouse))
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.default.parallelism", "2")
        .config("spark.driver.memory", "2g")
        .config("spark.databricks.delta.snapshotPartitions", "2")
        # VACUUM lists and deletes files in this many tasks (10,000 by default: a minute here).
        .config("spark.sql.sources.parallelPartitionDiscovery.parallelism", "4")
        # Derby (the JDBC test's database) logs beside the warehouse, not in the working dir.
        .config("spark.driver.extraJavaOptions", f"-Dderby.stream.error.file={warehouse}/derby.log")
    )
    spark = configure_spark_with_delta_pip(builder).getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    return spark
