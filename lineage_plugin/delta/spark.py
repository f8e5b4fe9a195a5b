"""Delta tables through Spark SQL: the session, table names, detail and history, versions.

Used where the plugin must work through Spark rather than the ``deltalake`` package: tables
that only the cluster can reach (storage the driver's ``deltalake`` cannot open, or a driver
without ``deltalake``), ``restore --engine spark`` and reads of remote tables by Spark.
``pyspark`` is imported only when a session is needed.
"""

from __future__ import annotations

import importlib.util
import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from lineage_plugin.delta import log as delta_log
from lineage_plugin.delta.own_reads import not_recorded
from lineage_plugin.delta.readability import recreated_reason
from lineage_plugin.errors import TableNotFoundError

if TYPE_CHECKING:
    from lineage_plugin.records import DeltaInput

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


def version_info(spark: Any, uri: str, version: int | None = None) -> delta_log.VersionInfo:
    """A table version with its id and commit: from the log for local tables, else Spark.

    Args:
        spark: The SparkSession to ask.
        uri: The table's location.
        version: The version; ``None`` resolves the latest now.

    Returns:
        The resolved version.

    Raises:
        TableNotFoundError: There is no such version.
    """
    norm = delta_log.normalize_uri(uri)
    if delta_log.local_path(norm) is not None:
        return delta_log.resolve(norm, version)
    if version is None:
        return remote_version(spark, uri, None)
    # A given version of a remote table never changes: described once per session, keyed by
    # the normalised URI (the plan names `s3a://b/t/` what the call named `s3a://b/t`).
    known = spark.__dict__.setdefault("_lineage_versions", {})
    if (norm, version) not in known:
        known[(norm, version)] = remote_version(spark, uri, version)
    return known[(norm, version)]


def remote_version(spark: Any, uri: str, version: int | None) -> delta_log.VersionInfo:
    """A table version through Spark SQL (``DESCRIBE DETAIL``/``DESCRIBE HISTORY``)."""
    with not_recorded():
        table_id = detail(spark, uri)["id"]
        if version is None:
            row = latest_commit(spark, uri)
        else:
            rows = history(spark, uri, start=version, end=version)
            row = rows[0] if rows else None
    if row is None:
        raise TableNotFoundError(f"'{uri}' has no version {version}.")
    commit = delta_log.commit_stamp(commit_info(row))
    return delta_log.VersionInfo(
        delta_log.normalize_uri(uri), int(row["version"]), table_id, commit
    )


def spark_refusals(spark: Any, inp: DeltaInput, current: int, table_id: str) -> list[str]:
    """Why a recorded read's table version cannot be read through Spark; ``[]`` when it can.

    Args:
        spark: The SparkSession to ask.
        inp: The recorded read.
        current: The table's latest version.
        table_id: The table's id now (``DESCRIBE DETAIL``).
    """
    if inp.table_id is not None and table_id != inp.table_id:
        return [recreated_reason(inp.uri, inp.table_id, table_id, inp.version)]
    if inp.version > current:
        return [
            f"Version {inp.version} of '{inp.uri}' does not exist: the latest version is "
            f"{current}. Check the recorded version; if the table was re-created, its history "
            "restarted."
        ]
    try:
        with not_recorded():
            spark.sql(f"SELECT * FROM {table_sql(inp.uri)} VERSION AS OF {inp.version}").schema  # noqa: B018
    except Exception as exc:
        return [
            f"Spark cannot read version {inp.version} of '{inp.uri}' any more: "
            f"{error_line(exc)} Its log was cleaned up (delta.logRetentionDuration); the "
            "version cannot be restored."
        ]
    return []


@dataclass(frozen=True)
class RecordedState:
    """What Spark says now of the table behind a recorded read.

    Attributes:
        current_version: The table's latest version; ``None`` when Spark cannot read it.
        commits: The ``commitInfo`` of each version from the recorded one on, by version.
        refusals: Why the recorded version cannot be read (re-created table, missing version,
            log cleaned up, or the table unreadable through Spark).
    """

    current_version: int | None
    commits: dict[int, dict[str, Any]] = field(default_factory=dict)
    refusals: tuple[str, ...] = ()


def recorded_state(inp: DeltaInput) -> RecordedState:
    """Ask Spark (the active session, or a new local one) about a recorded read's table.

    Args:
        inp: The recorded read.

    Returns:
        The table's latest version, the commits since the recorded version and the reasons
        the recorded version cannot be read, if any.
    """
    try:
        spark = spark_session()
        with not_recorded():
            described = detail(spark, inp.uri)
            # No rows from the target on: it is newer than the table.
            rows = history(spark, inp.uri, start=inp.version) or [latest_commit(spark, inp.uri)]
    except Exception as exc:
        why = f"The table cannot be read through Spark: {error_line(exc)}"
        return RecordedState(None, refusals=(why,))
    by_version = {int(r["version"]): commit_info(r) for r in rows}
    current = max(by_version)
    refusals = spark_refusals(spark, inp, current, described["id"])
    return RecordedState(current, by_version, tuple(refusals))
