"""What a Spark write wrote, and the stamp it carries (classic Spark with delta-spark).

The hooks (:mod:`lineage_plugin.tracking.spark_write_hooks`) describe each write call with
:func:`plan` before it runs and :func:`record` it after. Which run a write belongs to is
decided as for deltalake (:func:`~lineage_plugin.tracking.deltalake_writes.writing_run`);
without a run the call runs exactly as without the plugin: no Spark query is added, no commit
is stamped, nothing is recorded.

**Stamped: writer writes.** A ``DataFrameWriter`` or ``DataFrameWriterV2`` write gets the run's
stamp as JSON in the writer option ``userMetadata`` (it only affects that write's commit), and
the version it created is found by the stamp's write id. A user's own ``userMetadata`` (the
option, or the session conf ``spark.databricks.delta.commitInfo.userMetadata``, which the
option would override) is kept: that commit is not stamped, and the write is recorded from
the history as below. Two writer paths drop the writer's options, so their commits are not
stamped either and are found from the history: ``insertInto`` (never given the stamp), and
``saveAsTable`` creating the table (Delta's catalog creates it without the option; an append
to an existing table carries it). Measured with delta-spark 4.0.1.

**Recorded from the history: SQL and ``DeltaTable`` operations.** These can be stamped only
through the session conf, which every thread of the session shares: a commit of another thread
made meanwhile (with or without a run) would carry the stamp. So they are never stamped. The
table's latest version is read before and after the call; the write is recorded only when
exactly one commit landed in between and it is the call's: its ``operation`` is the call's,
its ``engineInfo`` is Spark's, its ``readVersion`` is the version before the call, its
``userMetadata`` is the session's at the call (or absent), and, for calls that return their
row counts (SQL DML, ``merge().execute()``), the commit's metrics give the same counts. No
commit: nothing is recorded (Delta makes none when nothing changed). Anything else (several
commits, or one that fails a check) marks the run incomplete with the reason: never a guess.
A commit of another writer that lands during a call which itself commits nothing, and that
passes every check, cannot be told from the call's: the one case this cannot exclude.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from lineage_plugin.delta import history
from lineage_plugin.delta import log as delta_log
from lineage_plugin.delta import spark as delta_spark
from lineage_plugin.delta.own_reads import not_recorded
from lineage_plugin.delta.stamps import WRITE_ID_KEY, Stamp, stamp_of
from lineage_plugin.errors import CaptureError, LineageError, LineageWarning
from lineage_plugin.tracking.deltalake_writes import record_found, writing_run
from lineage_plugin.tracking.spark_actions import catalog_table

ENGINE = "spark"
SESSION_USER_METADATA = "spark.databricks.delta.commitInfo.userMetadata"
WRITER_OPERATIONS = (
    "WRITE",
    "CREATE TABLE AS SELECT",
    "REPLACE TABLE AS SELECT",
    "CREATE OR REPLACE TABLE AS SELECT",
)
#: How a row count returned by a call is found in its commit's ``operationMetrics``.
_COUNTS = {
    "num_affected_rows": {
        "DELETE": ("numDeletedRows",),
        "UPDATE": ("numUpdatedRows",),
        "MERGE": ("numTargetRowsInserted", "numTargetRowsUpdated", "numTargetRowsDeleted"),
        "WRITE": ("numOutputRows",),
    },
}


@dataclass(frozen=True)
class SparkWrite:
    """One Spark write call under way.

    Attributes:
        what: The call, for messages (``spark.sql MERGE``).
        spark: Its SparkSession.
        table: The path, or the catalog name, written.
        uri: The table's location (``None`` until a new catalog table exists).
        name: Its catalog name, when it has one.
        after: The table's version before the call (-1: no table yet).
        run_id: The run that makes it.
        stamp: What its commit carries; ``None``: unstamped, found from the history.
        operations: The ``operation`` its commit has.
        user_metadata: The session's ``userMetadata`` at the call (unstamped writes).
    """

    what: str
    spark: Any
    table: str
    uri: str | None
    name: str | None
    after: int
    run_id: str
    stamp: Stamp | None
    operations: tuple[str, ...]
    user_metadata: str | None = None


def delta_table_at(spark: Any, table: str, by_path: bool) -> tuple[str, str | None] | None:
    """``(location, catalog name)`` of the Delta table at a path (``by_path``) or of a catalog
    name, ``None`` when there is none (yet). A local path is looked up in its log (no query)."""
    if by_path and delta_log.local_path(delta_log.normalize_uri(table)) is not None:
        try:
            delta_log.latest_version(table)
        except LineageError:  # no Delta table there (yet)
            return None
        return table, None
    return catalog_table(spark, delta_spark.table_sql(table) if by_path else table)


def _session_metadata(spark: Any) -> str | None:
    try:
        return spark.conf.get(SESSION_USER_METADATA, None) or None
    except Exception:
        return None


def plan(
    what: str,
    spark: Any,
    table: str,
    *,
    by_path: bool,
    operations: tuple[str, ...],
    stampable: bool,
    user_metadata: str | None = None,
    existing_only: bool = False,
) -> SparkWrite | None:
    """The write a call is about to make, or ``None`` when it is not recorded (no run).

    Args:
        what: The call, for messages.
        spark: Its SparkSession.
        table: A path (``by_path``) or a catalog name.
        by_path: Whether ``table`` is a path.
        operations: The ``operation`` its commit will have.
        stampable: Whether the call can carry a ``userMetadata`` option of its own.
        user_metadata: The ``userMetadata`` option the user gave the call.
        existing_only: Not recorded when there is no Delta table at ``table`` now.
    """
    target = writing_run(what)
    if target is None:
        return None
    with not_recorded():
        found = delta_table_at(spark, table, by_path)
        if found is None and existing_only:
            return None
        after = -1
        if found is not None:
            try:
                after = delta_spark.version_info(spark, found[0]).version
            except Exception:
                after = -1
        own = user_metadata if user_metadata is not None else _session_metadata(spark)
    stamp = Stamp.new(target.run_id, target.experiment_id) if stampable and own is None else None
    if by_path:
        uri, name = (found[0] if found is not None else table), None
    else:
        uri, name = found if found is not None else (None, None)
    return SparkWrite(what, spark, table, uri, name, after, target.run_id, stamp, operations, own)


def _commits_after(write: SparkWrite, uri: str) -> list[tuple[int, dict[str, Any]]]:
    if delta_log.local_path(delta_log.normalize_uri(uri)) is not None:
        return history.commit_infos_after(uri, write.after)
    rows = delta_spark.history(write.spark, uri, start=write.after + 1)
    return sorted((int(r["version"]), delta_spark.commit_info(r)) for r in rows)


def _counts_agree(operation: str, info: dict[str, Any], counts: dict[str, Any]) -> bool:
    metrics = info.get("operationMetrics") or {}
    for column, by_operation in _COUNTS.items():
        keys = by_operation.get(operation)
        if column not in counts or keys is None or not all(k in metrics for k in keys):
            continue
        if sum(int(metrics[k]) for k in keys) != int(counts[column]):
            return False
    return True


def _the_call_s(
    write: SparkWrite, found: list[tuple[int, dict[str, Any]]], counts: dict[str, Any]
) -> list[tuple[int, dict[str, Any]]]:
    """The commit an unstamped call made, checked (see the module doc)."""
    if not found:
        return []
    first, last = found[0][0], found[-1][0]
    if len(found) > 1:
        raise CaptureError(
            f"commits v{first}..v{last} landed during the call, so which one it made cannot "
            "be told; it is not recorded."
        )
    version, info = found[0]
    operation = info.get("operation")
    problems = []
    if operation not in write.operations:
        problems.append(f"its operation is {operation!r}, not {' or '.join(write.operations)}")
    if not str(info.get("engineInfo", "")).startswith("Apache-Spark"):
        problems.append(f"it was made by {info.get('engineInfo')!r}, not Spark")
    read = info.get("readVersion")
    if write.after >= 0 and read is not None and int(read) != write.after:
        problems.append(f"it read v{read}, not v{write.after}")
    if (info.get("userMetadata") or None) != write.user_metadata:
        problems.append("its userMetadata is not the session's at the call")
    if isinstance(operation, str) and not _counts_agree(operation, info, counts):
        problems.append(f"its metrics do not match the call's row counts {counts}")
    if problems:
        raise CaptureError(
            f"the one commit that landed during the call (v{version}) may be another "
            f"writer's: {'; '.join(problems)}. It is not recorded."
        )
    return found


def record(write: SparkWrite, counts: dict[str, Any] | None = None) -> None:
    """Record the version(s) the call created on its run: by its stamp, else checked from the
    history; ``counts``: the row counts the call returned (``num_affected_rows``...)."""
    uri, name = write.uri, write.name
    if name is not None or uri is None:  # a catalog table: the call may have (re)created it
        with not_recorded():
            found = delta_table_at(write.spark, write.table, False)
        if found is None:
            return  # not a Delta table (any more): Spark replaced it with another format
        uri, name = found

    def find() -> list[tuple[int, dict[str, Any]]]:
        commits = _commits_after(write, uri)
        if write.stamp is not None:
            stamp = write.stamp.write_id
            mine = [c for c in commits if stamp_of(c[1]).get(WRITE_ID_KEY) == stamp]
            if mine or not commits:
                return mine
            # The option did not reach the commit (a write path that drops writer options):
            # found as an unstamped write is.
        return _the_call_s(write, commits, counts or {})

    def describe(version: int) -> delta_log.VersionInfo:
        return delta_spark.version_info(write.spark, uri, version)

    record_found(write.what, write.run_id, ENGINE, find, describe, name)


def counts_of(result: Any) -> dict[str, Any]:
    """The row counts a DML call returned (its one-row DataFrame), ``{}`` when none."""
    columns = getattr(result, "columns", None)
    if not columns or "num_affected_rows" not in columns:
        return {}
    with not_recorded():
        row = result.first()
    return row.asDict() if row is not None else {}


def recorded(call: Callable[[], Any], write: SparkWrite | None) -> Any:
    """Make the call (its reads recorded by the action hooks), then record what it wrote."""
    if write is None:
        return call()
    try:
        result = call()
    except BaseException:
        with contextlib.suppress(LineageError):  # what it committed before failing
            record(write)
        raise
    record(write, counts_of(result))
    return result


def safely(what: str, make: Callable[[], SparkWrite | None]) -> SparkWrite | None:
    """``make()``; a bug of the plugin never breaks the write (a warning, not recorded)."""
    import warnings

    try:
        return make()
    except LineageError:
        raise  # strict mode
    except Exception as exc:
        warnings.warn(
            f"mlflow-delta-lineage: {what} hook failed, the write is not recorded: {exc!r}",
            LineageWarning,
            stacklevel=3,
        )
        return None
