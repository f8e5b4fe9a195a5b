"""Delta tables through Spark SQL: the session, how a table is named, its detail and history.

Used where the plugin must work through Spark rather than the ``deltalake`` package: tables
that only the cluster can reach (storage the driver's ``deltalake`` cannot open, or a driver
without ``deltalake``), ``restore --engine spark`` and reads of remote tables by Spark.
``pyspark`` is imported only when a session is needed.
"""

from __future__ import annotations

import importlib.util
import sys
from typing import Any

#: What a SparkSession needs to work with Delta (besides the jars).
DELTA_CONF = {
    "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
    "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
}


def installed(package: str) -> bool:
    """Whether ``package`` can be imported (found without importing it)."""
    return importlib.util.find_spec(package) is not None


def default_engine() -> str:
    """``deltalake`` when it is installed (no JVM, fast), else ``spark``."""
    return "deltalake" if installed("deltalake") else "spark"


def active_session() -> Any | None:
    """The active SparkSession when this process already uses Spark; never starts one (and
    never imports ``pyspark`` for a process that did not)."""
    if "pyspark.sql" not in sys.modules:
        return None
    from pyspark.sql import SparkSession

    return SparkSession.getActiveSession()


def spark_session() -> Any:
    """The active SparkSession, or a new local one with Delta configured.

    On a cluster the active (driver) session is used as it is configured.
    """
    from pyspark.sql import SparkSession

    active = active_session()
    if active is not None:
        return active
    builder = SparkSession.builder.appName("mlflow-lineage").config(
        "spark.ui.showConsoleProgress", "false"
    )
    for key, value in DELTA_CONF.items():
        builder = builder.config(key, value)
    try:
        from delta import configure_spark_with_delta_pip

        builder = configure_spark_with_delta_pip(builder)
    except ImportError:  # the cluster provides the Delta jars
        pass
    return builder.getOrCreate()


def spark_location(uri: str) -> str:
    """The location Spark reads a normalised table URI at."""
    return uri.removeprefix("file://") if uri.startswith("file://") else uri


def table_sql(uri: str) -> str:
    """The SQL identifier of the table at ``uri``: ``delta.`location```."""
    return f"delta.`{spark_location(uri)}`"


def detail(spark: Any, uri: str) -> Any:
    """``DESCRIBE DETAIL`` of the table at ``uri`` (its id, location, format...)."""
    return spark.sql(f"DESCRIBE DETAIL {table_sql(uri)}").first()


def latest_commit(spark: Any, uri: str) -> Any:
    """The latest row of ``DESCRIBE HISTORY`` (version, operation, readVersion...)."""
    return spark.sql(f"DESCRIBE HISTORY {table_sql(uri)} LIMIT 1").first()


def history(spark: Any, uri: str, *, start: int = 0, end: int | None = None) -> list[Any]:
    """The ``DESCRIBE HISTORY`` rows of versions ``start`` to ``end`` (inclusive), latest first.

    The log keeps only commits within its retention: older versions are simply absent.
    """
    rows = spark.sql(f"DESCRIBE HISTORY {table_sql(uri)}").where(f"version >= {int(start)}")
    if end is not None:
        rows = rows.where(f"version <= {int(end)}")
    return rows.collect()


def commit_info(row: Any) -> dict[str, Any]:
    """A ``DESCRIBE HISTORY`` row as the ``commitInfo`` action it was read from.

    The timestamp becomes milliseconds since the epoch; empty fields are left out.
    """
    info = {k: v for k, v in row.asDict().items() if v is not None}
    if "timestamp" in info:
        info["timestamp"] = int(info["timestamp"].timestamp() * 1000)
    return info


def error_line(exc: BaseException) -> str:
    """The first line of a Spark error (the JVM stack trace follows it)."""
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__
