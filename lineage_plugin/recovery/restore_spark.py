"""Restore through Spark: Delta's own RESTORE command.

``restore --engine spark`` uses it for any table; ``restore`` without ``--engine`` uses it for
the tables the driver's ``deltalake`` cannot open (storage only the cluster has credentials or
a file system for, or no ``deltalake`` installed; :mod:`lineage_plugin.recovery.plan` plans
them through ``DESCRIBE HISTORY``).

Spark's RESTORE starts from the table's latest version, so it cannot be told to commit only on
the planned one. The commit it makes records the version it read (``readVersion``): when that
is not the planned version (someone committed between the last check and the RESTORE), the
RESTORE is reverted at once by a RESTORE to that version, so no commit outside the plan stays
undone, and the caller is told to plan again.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lineage_plugin.delta.spark import error_line
from lineage_plugin.errors import LineageError

if TYPE_CHECKING:
    from lineage_plugin.recovery.plan import TableRestorePlan

_USER_METADATA = "spark.databricks.delta.commitInfo.userMetadata"


def restore_with_spark(t: TableRestorePlan, note: str) -> tuple[int, str | None]:
    """RESTORE one table with Spark.

    Args:
        t: The table's plan (its current version is the one the operator approved).
        note: The commit's user metadata (model version, reason).

    Returns:
        ``(new version, None)``, or ``(version after the revert, why)`` when the RESTORE
        started from another version than planned and was reverted.

    Raises:
        LineageError: The RESTORE failed (nothing written), or its check failed after it
            committed (the message says so).
    """
    from lineage_plugin.delta.spark import spark_session, table_sql

    label = t.name or t.uri
    spark = spark_session()
    before = spark.conf.get(_USER_METADATA, None)
    spark.conf.set(_USER_METADATA, note)
    try:
        spark.sql(f"RESTORE TABLE {table_sql(t.uri)} TO VERSION AS OF {t.target_version}")
    except Exception as exc:
        first = error_line(exc)
        hint = (
            " Data files of that version are gone (VACUUM); Spark's RESTORE cannot skip them."
            if "Not all files" in first
            else ""
        )
        raise LineageError(
            f"Spark RESTORE of {label} to v{t.target_version} failed: {first}{hint} "
            "The table was not changed."
        ) from exc
    finally:
        if before is None:
            spark.conf.unset(_USER_METADATA)
        else:
            spark.conf.set(_USER_METADATA, before)
    try:
        return _revert_if_moved(spark, t)
    except Exception as exc:
        raise LineageError(
            f"Spark's RESTORE of {label} to v{t.target_version} was committed, but checking it "
            f"failed: {error_line(exc)} Look at DESCRIBE HISTORY of the table before anything "
            "else; the restore is not recorded on the model version."
        ) from exc


def _revert_if_moved(spark: Any, t: TableRestorePlan) -> tuple[int, str | None]:
    """Check the RESTORE just committed started from the planned version; revert it if not."""
    from lineage_plugin.delta.spark import latest_commit, table_sql

    last = latest_commit(spark, t.uri)
    read = last["readVersion"]
    if read is None or int(read) == t.current_version:
        return int(last["version"]), None
    spark.sql(f"RESTORE TABLE {table_sql(t.uri)} TO VERSION AS OF {int(read)}")
    return int(last["version"]) + 1, (
        f"{t.name or t.uri} got commits v{t.current_version + 1}..v{read} just before the "
        f"RESTORE; the RESTORE (v{last['version']}) was reverted by v{int(last['version']) + 1}, "
        "so none of them stays undone."
    )
