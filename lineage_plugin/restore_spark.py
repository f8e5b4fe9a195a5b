"""Restore through Spark: Delta's own RESTORE command, and plans for tables only Spark reaches.

``restore --engine spark`` uses it for any table; ``restore`` without ``--engine`` uses it for
the tables the driver's ``deltalake`` cannot open (storage only the cluster has credentials or
a file system for, or no ``deltalake`` installed), planned through ``DESCRIBE HISTORY``.

Spark's RESTORE starts from the table's latest version, so it cannot be told to commit only on
the planned one. The commit it makes records the version it read (``readVersion``): when that
is not the planned version (someone committed between the last check and the RESTORE), the
RESTORE is reverted at once by a RESTORE to that version, so no commit outside the plan stays
undone, and the caller is told to plan again.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lineage_plugin.errors import LineageError
from lineage_plugin.spark_delta import error_line

if TYPE_CHECKING:
    from lineage_plugin.records import DeltaInput
    from lineage_plugin.restore_plan import TableRestorePlan

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
    from lineage_plugin.spark_delta import spark_session, table_sql

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
    from lineage_plugin.spark_delta import latest_commit, table_sql

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


def plan_table_with_spark(inp: DeltaInput, unreachable: str | None = None) -> TableRestorePlan:
    """Plan restoring one table through Spark (``DESCRIBE DETAIL`` / ``DESCRIBE HISTORY``).

    For tables the driver's ``deltalake`` cannot reach (storage only the cluster can open, or
    no ``deltalake`` installed). It checks the table id (a re-created table refuses), that
    the version exists and that the log still reaches it. Two checks are Delta's own when
    the RESTORE runs: vacuumed data files make it fail without writing, and it never
    downgrades the protocol (it keeps the newer one).

    Args:
        inp: The recorded read of the table.
        unreachable: Why ``deltalake`` could not reach the table, shown with the plan.

    Returns:
        The table's plan, with ``engine="spark"``.
    """
    from lineage_plugin.delta_history import commits_from_history
    from lineage_plugin.restore_plan import TableRestorePlan
    from lineage_plugin.spark_delta import (
        commit_info,
        detail,
        history,
        latest_commit,
        spark_session,
    )
    from lineage_plugin.tracking.delta_log import _restored_from
    from lineage_plugin.tracking.patching import not_recorded

    base = {
        "uri": inp.uri,
        "name": inp.name,
        "target_version": inp.version,
        "engine": "spark",
        "unreachable": unreachable,
    }
    try:
        spark = spark_session()
        with not_recorded():
            described = detail(spark, inp.uri)
            # No rows from the target on: it is newer than the table.
            rows = history(spark, inp.uri, start=inp.version) or [latest_commit(spark, inp.uri)]
    except Exception as exc:
        why = error_line(exc)
        return TableRestorePlan(
            **base,
            current_version=None,
            refusals=(f"The table cannot be read through Spark: {why}",),
        )
    by_version = {int(r["version"]): commit_info(r) for r in rows}
    current = max(by_version)
    refusals = _spark_refusals(spark, inp, current, described["id"])
    if not refusals and _restored_from(by_version[current]) == inp.version:
        return TableRestorePlan(**base, current_version=current, current_copy_of=inp.version)
    undo = commits_from_history(by_version, inp.version + 1, current)
    return TableRestorePlan(
        **base, current_version=current, commits=tuple(undo), refusals=tuple(refusals)
    )


def _spark_refusals(spark: Any, inp: DeltaInput, current: int, table_id: str) -> list[str]:
    from lineage_plugin.delta_history import _recreated
    from lineage_plugin.spark_delta import table_sql
    from lineage_plugin.tracking.patching import not_recorded

    if inp.table_id is not None and table_id != inp.table_id:
        return [_recreated(inp.uri, inp.table_id, table_id, inp.version)]
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
