"""VACUUM through either engine, keeping the files of chosen versions.

deltalake (1.5.1 and newer) keeps the files of a list of versions (``keep_versions``) on top
of the retention threshold. Spark's VACUUM has no such list: the only way to keep a version's
files is a retention at least as long as the time since the version was replaced, so
:func:`spark_retention_hours` widens the retention to reach back to the oldest kept version.

``deltalake`` and ``pyspark`` are imported only inside these functions.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from lineage_plugin.delta import delta_rs
from lineage_plugin.errors import LineageError

if TYPE_CHECKING:
    from deltalake import DeltaTable

#: Delta's default ``delta.deletedFileRetentionDuration``: one week.
DEFAULT_RETENTION_HOURS = 168.0

_UNIT_HOURS = {
    "millisecond": 1 / 3_600_000,
    "second": 1 / 3600,
    "minute": 1 / 60,
    "hour": 1.0,
    "day": 24.0,
    "week": 168.0,
}
_INTERVAL = re.compile(r"^\s*(?:interval\s+)?(\d+(?:\.\d+)?)\s*([a-z]+?)s?\s*$", re.IGNORECASE)


def interval_hours(text: str | None, default: float) -> float:
    """Hours in a Delta interval table property such as ``"interval 7 days"``.

    Args:
        text: The property's value (``None`` when the table does not set it).
        default: What Delta uses when it is not set (or cannot be parsed).

    Returns:
        The interval in hours.
    """
    match = _INTERVAL.match(text or "")
    if match is None or match.group(2).lower() not in _UNIT_HOURS:
        return default
    return float(match.group(1)) * _UNIT_HOURS[match.group(2).lower()]


@dataclass(frozen=True, kw_only=True)
class TableSettings:
    """What a table's own properties say about keeping old versions.

    Attributes:
        file_retention_hours: ``delta.deletedFileRetentionDuration`` (a plain VACUUM keeps
            removed files younger than this).
        log_retention_hours: ``delta.logRetentionDuration`` (log clean-up keeps commits
            younger than this).
        log_cleanup: ``delta.enableExpiredLogCleanup`` (clean-up runs after checkpoints).
        checkpoint_interval: ``delta.checkpointInterval`` (commits between checkpoints).
    """

    file_retention_hours: float
    log_retention_hours: float
    log_cleanup: bool
    checkpoint_interval: int


def settings_from(configuration: Mapping[str, str | None]) -> TableSettings:
    """The :class:`TableSettings` of a table's ``metaData.configuration``."""
    interval = configuration.get("delta.checkpointInterval") or "10"
    return TableSettings(
        file_retention_hours=interval_hours(
            configuration.get("delta.deletedFileRetentionDuration"), DEFAULT_RETENTION_HOURS
        ),
        log_retention_hours=interval_hours(
            configuration.get("delta.logRetentionDuration"), 30 * 24.0
        ),
        log_cleanup=(configuration.get("delta.enableExpiredLogCleanup") or "true").lower()
        != "false",
        checkpoint_interval=int(interval) if interval.isdigit() and int(interval) > 0 else 10,
    )


def table_settings(uri: str) -> TableSettings:
    """The retention settings of the table at ``uri`` (its latest version).

    Raises:
        TableNotFoundError: There is no Delta table at ``uri``.
    """
    table = delta_rs.open_table(uri, None, None)
    return settings_from(table.metadata().configuration)


def deltalake_vacuum(
    uri: str,
    *,
    retention_hours: float | None,
    keep_versions: Iterable[int],
    dry_run: bool,
    note: Mapping[str, str] | None = None,
    table: DeltaTable | None = None,
) -> list[str]:
    """VACUUM with deltalake, never deleting a file one of ``keep_versions`` needs.

    Args:
        uri: The table.
        retention_hours: The retention threshold; ``None``: the table's own. A threshold
            below the table's ``delta.deletedFileRetentionDuration`` is the caller's choice.
        keep_versions: Versions whose files stay.
        dry_run: List the files only.
        note: Custom commit metadata of the VACUUM commits (ignored with ``dry_run``).
        table: The table at ``uri``, already open at its latest version (else it is opened);
            a VACUUM leaves it at the VACUUM's own commits.

    Returns:
        The files deleted (or, with ``dry_run``, that would be), relative to the table root.

    Raises:
        LineageError: deltalake refused or failed (nothing was deleted when it refused).
    """
    from deltalake import CommitProperties

    if table is None:
        table = delta_rs.open_table(uri, None, None)
    try:
        files = table.vacuum(
            retention_hours=None if retention_hours is None else math.ceil(retention_hours),
            dry_run=dry_run,
            enforce_retention_duration=retention_hours is None,
            keep_versions=sorted(set(keep_versions)) or None,
            commit_properties=None
            if dry_run
            else CommitProperties(custom_metadata=dict(note or {})),
        )
    except Exception as exc:
        raise LineageError(
            f"deltalake's VACUUM of {uri} failed: {type(exc).__name__}: {exc}"
        ) from exc
    return sorted(files)


def vacuumed_bytes(table: DeltaTable, deleted: int) -> int | None:
    """The size of the ``deleted`` files a deltalake VACUUM of ``table`` just deleted.

    deltalake's ``VACUUM START`` commit (one of the two it writes) records it
    (``operationMetrics.sizeOfDataToDelete``), so nothing is sized file by file, and the
    files need not exist any more. ``None`` when that commit is not among the table's last
    two (a concurrent writer, or a deltalake that does not record it).
    """
    if deleted == 0:
        return 0
    try:
        entries: list[dict[str, Any]] = table.history(2)
    except Exception:
        return None
    for entry in entries:
        metrics = entry.get("operationMetrics") or {}
        if entry.get("operation") == "VACUUM START" and metrics.get("numFilesToDelete") == deleted:
            size = metrics.get("sizeOfDataToDelete")
            return int(size) if isinstance(size, int | str) and str(size).isdigit() else None
    return None


def spark_retention_hours(
    retention_hours: float, oldest_kept_replaced_at: int | None, now_ms: int
) -> float:
    """The retention Spark needs so that the files of the oldest kept version stay.

    Args:
        retention_hours: The retention asked for.
        oldest_kept_replaced_at: When the commit after the oldest kept version was made
            (epoch ms: its files can only have been removed from then on); ``None``: no
            version to keep, or it is the latest.
        now_ms: The time of the VACUUM (epoch ms).

    Returns:
        ``retention_hours``, or the hours back to that commit plus one, whichever is longer.
    """
    if oldest_kept_replaced_at is None:
        return retention_hours
    needed = (now_ms - oldest_kept_replaced_at) / 3_600_000 + 1
    return max(retention_hours, float(math.ceil(needed)))


def spark_vacuum(uri: str, *, retention_hours: float, dry_run: bool) -> list[str]:
    """VACUUM with Spark (``VACUUM ... RETAIN n HOURS [DRY RUN]``).

    Spark's check that the retention is not shorter than the table's is turned off for the
    statement only when the retention asked for is shorter (and restored after).

    Returns:
        The files deleted or, with ``dry_run``, that would be (as Spark lists them: absolute).

    Raises:
        LineageError: Spark failed.
    """
    from lineage_plugin.delta.spark import error_line, spark_session, table_sql

    spark = spark_session()
    check = "spark.databricks.delta.retentionDurationCheck.enabled"
    before = spark.conf.get(check, None)
    spark.conf.set(check, "false")
    try:
        statement = f"VACUUM {table_sql(uri)} RETAIN {math.ceil(retention_hours)} HOURS"
        rows = spark.sql(statement + (" DRY RUN" if dry_run else "")).collect()
    except Exception as exc:
        raise LineageError(f"Spark's VACUUM of {uri} failed: {error_line(exc)}") from exc
    finally:
        if before is None:
            spark.conf.unset(check)
        else:
            spark.conf.set(check, before)
    return sorted(str(row[0]) for row in rows) if dry_run else []


def total_bytes(uri: str, files: Iterable[str]) -> int | None:
    """The size of ``files`` (relative to the table root, or absolute) of a local table;
    ``None`` for tables on object stores (sizing them is a request per file)."""
    from lineage_plugin.delta.log import local_path

    root = local_path(uri)
    if root is None:
        return None
    total = 0
    for name in files:
        name = name.removeprefix("file://").removeprefix("file:")
        path = name if os.path.isabs(name) else os.path.join(root, name)
        try:
            total += os.stat(path).st_size
        except OSError:
            continue
    return total
