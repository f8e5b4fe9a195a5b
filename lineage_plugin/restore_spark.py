"""Delta RESTORE through Spark (``restore --engine spark``): Delta's own restore command.

Spark's RESTORE starts from the table's latest version, so it cannot be told to commit only on
the planned one. The commit it makes records the version it read (``readVersion``): when that
is not the planned version (someone committed between the last check and the RESTORE), the
RESTORE is reverted at once by a RESTORE to that version, so no commit outside the plan stays
undone, and the caller is told to plan again.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lineage_plugin.restore_plan import TableRestorePlan

_USER_METADATA = "spark.databricks.delta.commitInfo.userMetadata"
#: What a SparkSession needs to work with Delta (besides the jars).
DELTA_CONF = {
    "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
    "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
}


def default_engine() -> str:
    """``deltalake`` when it is installed (no JVM, fast), else ``spark``."""
    import importlib.util

    return "deltalake" if importlib.util.find_spec("deltalake") else "spark"


def spark_session() -> Any:
    """The active SparkSession, or a new local one with Delta configured.

    On a cluster the active (driver) session is used as it is configured.
    """
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is not None:
        return active
    builder = (
        SparkSession.builder.appName("mlflow-lineage")
        .config("spark.sql.extensions", "io.delta.sql.DeltaSparkSessionExtension")
        .config(
            "spark.sql.catalog.spark_catalog", "org.apache.spark.sql.delta.catalog.DeltaCatalog"
        )
        .config("spark.ui.showConsoleProgress", "false")
    )
    try:
        from delta import configure_spark_with_delta_pip

        builder = configure_spark_with_delta_pip(builder)
    except ImportError:  # the cluster provides the Delta jars
        pass
    return builder.getOrCreate()


def spark_location(uri: str) -> str:
    """The location Spark reads a normalised table URI at."""
    return uri.removeprefix("file://") if uri.startswith("file://") else uri


def restore_with_spark(t: TableRestorePlan, note: str) -> tuple[int, str | None]:
    """RESTORE one table with Spark.

    Args:
        t: The table's plan (its current version is the one the operator approved).
        note: The commit's user metadata (model version, reason).

    Returns:
        ``(new version, None)``, or ``(version after the revert, why)`` when the RESTORE
        started from another version than planned and was reverted.
    """
    spark = spark_session()
    table = f"delta.`{spark_location(t.uri)}`"
    before = spark.conf.get(_USER_METADATA, None)
    spark.conf.set(_USER_METADATA, note)
    try:
        spark.sql(f"RESTORE TABLE {table} TO VERSION AS OF {t.target_version}")
    finally:
        if before is None:
            spark.conf.unset(_USER_METADATA)
        else:
            spark.conf.set(_USER_METADATA, before)
    last = spark.sql(f"DESCRIBE HISTORY {table} LIMIT 1").first()
    read = last["readVersion"]
    if read is None or int(read) == t.current_version:
        return int(last["version"]), None
    spark.sql(f"RESTORE TABLE {table} TO VERSION AS OF {int(read)}")
    return int(last["version"]) + 1, (
        f"{t.name or t.uri} got commits v{t.current_version + 1}..v{read} just before the "
        f"RESTORE; the RESTORE (v{last['version']}) was reverted by v{int(last['version']) + 1}, "
        "so none of them stays undone."
    )
