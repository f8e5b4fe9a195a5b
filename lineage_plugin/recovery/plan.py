"""Plan a restore of a model version's training tables: what would be undone, and what refuses.

This is the read-only half of ``mlflow-lineage restore``: it never writes. For each table the
model version was trained on it reports the recorded (target) version, the current version,
the commits a restore would undo (operation, rows affected, who, when), whether those include
deletes, and the reasons a restore must refuse (the target's files are vacuumed, its log is
cleaned up, the table was re-created, the version does not exist, the protocol would be
downgraded).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from lineage_plugin.errors import LineageError
from lineage_plugin.queries.times import json_output
from lineage_plugin.records import DeltaInput, drop_nulls

if TYPE_CHECKING:
    from lineage_plugin.delta.history import DeltaCommit
    from lineage_plugin.queries.workspace import Workspace

_DELETE_METRICS = ("num_deleted_rows", "numDeletedRows", "num_target_rows_deleted")


@dataclass(frozen=True, kw_only=True)
class TableRestorePlan:
    """What restoring one table to its recorded version would do.

    Attributes:
        uri: The table's normalised URI.
        name: Its display name.
        target_version: The version the model version was trained on.
        current_version: The table's latest version now (``None`` when it cannot be read).
        commits: The commits a restore would undo, oldest first.
        refusals: Why a restore must not run; empty when it may.
        missing_files: Set when data files of the target version are gone: a restore then
            needs ``allow_missing_files`` and loses their rows.
        current_copy_of: The current version is a restored copy of this version.
        engine: What reaches the table: ``deltalake``, or ``spark`` when only Spark can (the
            driver's ``deltalake`` cannot open its storage, or is not installed).
        unreachable: Why ``deltalake`` could not reach it, when ``engine`` is ``spark``.
    """

    uri: str
    name: str | None
    target_version: int
    current_version: int | None
    commits: tuple[DeltaCommit, ...] = ()
    refusals: tuple[str, ...] = ()
    missing_files: str | None = None
    current_copy_of: int | None = None
    engine: str = "deltalake"
    unreachable: str | None = None

    @property
    def up_to_date(self) -> bool:
        """The table holds its recorded version already (that version, or a restored copy
        of it as its latest version): nothing to undo."""
        return self.target_version in (self.current_version, self.current_copy_of)

    @property
    def deleting_commits(self) -> tuple[DeltaCommit, ...]:
        """The commits to undo that removed rows (a restore brings those rows back)."""
        return tuple(c for c in self.commits if _deletes_rows(c))

    def to_dict(self) -> dict[str, Any]:
        """The plan as plain data (sorted keys, no nulls; commit times as ISO strings with
        ``timestamp_ms``, commit metrics as numbers)."""
        return drop_nulls(
            {
                "uri": self.uri,
                "name": self.name,
                "target_version": self.target_version,
                "current_version": self.current_version,
                "current_copy_of": self.current_copy_of,
                "up_to_date": self.up_to_date,
                "commits": json_output([c.to_dict() for c in self.commits]),
                "undoes_deletes": bool(self.deleting_commits),
                "refusals": list(self.refusals),
                "missing_files": self.missing_files,
                "engine": self.engine,
                "unreachable": self.unreachable,
            }
        )

    def blockers(
        self, *, allow_missing_files: bool, allow_undo_deletes: bool, engine: str | None = None
    ) -> list[str]:
        """Why this table must not be restored with these permissions (and ``engine``, when
        one is asked for); empty when it may."""
        found = list(self.refusals)
        if engine == "deltalake" and self.engine == "spark" and not self.up_to_date:
            found.append(
                f"only Spark reaches it (deltalake: {self.unreachable}). Restore it with "
                "--engine spark, or without --engine."
            )
        if self.missing_files and not allow_missing_files:
            found.append(self.missing_files)
        if self.deleting_commits and not allow_undo_deletes and not self.up_to_date:
            versions = ", ".join(f"v{c.version}" for c in self.deleting_commits)
            found.append(
                f"The restore would undo commits that deleted rows ({versions}); rows removed "
                "on purpose (for privacy, say) would come back. Check them, then restore "
                "with --allow-undo-deletes."
            )
        return found


@dataclass(frozen=True, kw_only=True)
class RestorePlan:
    """The restore plan of a model version: one :class:`TableRestorePlan` per table."""

    name: str
    version: str
    tables: tuple[TableRestorePlan, ...]

    @property
    def refused(self) -> bool:
        """Whether any table refuses whatever the permissions."""
        return any(t.refusals for t in self.tables)

    @property
    def pending(self) -> tuple[TableRestorePlan, ...]:
        """The tables not at their recorded version (the ones a restore writes)."""
        return tuple(t for t in self.tables if not t.up_to_date)

    def to_dict(self) -> dict[str, Any]:
        """The plan as plain data (sorted keys, no nulls)."""
        return drop_nulls(
            {
                "name": self.name,
                "version": self.version,
                "refused": self.refused,
                "tables": [t.to_dict() for t in self.tables],
            }
        )


def _deletes_rows(commit: DeltaCommit) -> bool:
    if (commit.operation or "").upper() == "DELETE":
        return True
    return any(int(commit.metrics.get(k, "0") or 0) > 0 for k in _DELETE_METRICS)


def plan_restore(
    name: str,
    version: str | int,
    *,
    table: str | None = None,
    tracking_uri: str | None = None,
) -> RestorePlan:
    """Plan restoring the tables a model version was trained on (reads only, writes nothing).

    Args:
        name: Registered model name.
        version: A version number, alias or stage.
        table: Only this table (path, URI or name); default every table the version read.
        tracking_uri: Where MLflow is (default: MLflow's tracking URI).

    Returns:
        A :class:`RestorePlan`.

    Raises:
        LineageError: Unknown model or version, no recorded tables, or ``table`` is not one
            of them.

    Example:
        >>> plan = plan_restore("diabetes", "champion")
        >>> [(t.name, t.current_version, t.target_version) for t in plan.tables]
    """
    from lineage_plugin.queries.workspace import Workspace

    return plan_in(Workspace(tracking_uri), name, version, table=table)


def plan_in(
    ws: Workspace, name: str, version: str | int, *, table: str | None, upstream: bool = False
) -> RestorePlan:
    """:func:`plan_restore` in an open :class:`Workspace`; with ``upstream``, the tables
    upstream of the version too (:func:`~lineage_plugin.recovery.chain.upstream_inputs`)."""
    from lineage_plugin import tags as T
    from lineage_plugin.delta.log import normalize_uri
    from lineage_plugin.queries.show import resolve

    number = resolve(ws, name, str(version))
    recorded = _first_read_per_table(T.model_version_lineage(ws.model_version(name, number)))
    if not recorded:
        raise LineageError(
            f"Model '{name}' version {number} has no recorded Delta tables, so there is "
            "nothing to restore. See: mlflow-lineage show."
        )
    if upstream:
        from lineage_plugin.recovery.chain import upstream_inputs

        known = {i.uri for i in recorded}
        recorded += [i for i in upstream_inputs(ws, name, number) if i.uri not in known]
    inputs = recorded
    if table is not None:
        wanted = normalize_uri(table) if ("/" in table or "://" in table) else None
        inputs = [i for i in recorded if i.uri == wanted or i.name == table]
        if not inputs:
            raise LineageError(
                f"Model '{name}' version {number} was not trained on '{table}'. Its tables: "
                + ", ".join(i.label for i in recorded)
            )
    return RestorePlan(name=name, version=number, tables=tuple(plan_table(i) for i in inputs))


def _first_read_per_table(lineage: Any) -> list[DeltaInput]:
    seen: dict[str, DeltaInput] = {}
    for inp in lineage.inputs:
        seen.setdefault(inp.uri, inp)
    return list(seen.values())


def plan_table(inp: DeltaInput) -> TableRestorePlan:
    """Plan with ``deltalake`` when it reaches the table, else through Spark."""
    from lineage_plugin.delta.history import commits
    from lineage_plugin.delta.log import local_path, resolve
    from lineage_plugin.delta.readability import why_unreadable
    from lineage_plugin.delta.spark import installed
    from lineage_plugin.errors import DeltaLogError

    if not installed("deltalake"):
        return plan_table_with_spark(inp, "the deltalake package is not installed")
    try:
        latest = resolve(inp.uri)
    except LineageError as exc:
        # Storage only the cluster can open (its credentials, a Hadoop file system...).
        spark_only = isinstance(exc, DeltaLogError) and local_path(inp.uri) is None
        if spark_only and installed("pyspark"):
            return plan_table_with_spark(inp, str(exc).splitlines()[0])
        return TableRestorePlan(
            uri=inp.uri,
            name=inp.name,
            target_version=inp.version,
            current_version=None,
            refusals=(f"The table cannot be read: {exc}",),
        )
    current = latest.version
    if latest.commit.restored_from == inp.version and latest.table_id == inp.table_id:
        return TableRestorePlan(
            uri=inp.uri,
            name=inp.name,
            target_version=inp.version,
            current_version=current,
            current_copy_of=inp.version,
        )
    problems = why_unreadable(inp.uri, inp.version, table_id=inp.table_id)
    refusals = [p.reason for p in problems if not p.files_missing]
    missing = next((p.reason for p in problems if p.files_missing), None)
    undo: list[DeltaCommit] = []
    if inp.version < current:
        undo = commits(inp.uri, start=inp.version + 1, end=current)
    if not refusals and inp.version < current:
        refusals += _protocol_refusal(inp.uri, inp.version)
    return TableRestorePlan(
        uri=inp.uri,
        name=inp.name,
        target_version=inp.version,
        current_version=current,
        commits=tuple(undo),
        refusals=tuple(refusals),
        missing_files=missing,
    )


def _protocol_refusal(uri: str, version: int) -> list[str]:
    from deltalake import DeltaTable

    now = DeltaTable(uri).protocol()
    then = DeltaTable(uri, version=version).protocol()
    features_now = set(now.writer_features or ()) | set(now.reader_features or ())
    features_then = set(then.writer_features or ()) | set(then.reader_features or ())
    lower = (
        then.min_reader_version < now.min_reader_version
        or then.min_writer_version < now.min_writer_version
        or not features_now <= features_then
    )
    if not lower:
        return []
    return [
        f"Restoring to v{version} would downgrade the table protocol from reader "
        f"{now.min_reader_version}/writer {now.min_writer_version} to reader "
        f"{then.min_reader_version}/writer {then.min_writer_version}; readers and writers "
        "that rely on the newer features would break. Upgrade the target instead, or "
        "rebuild the data by hand."
    ]


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
    from lineage_plugin.delta.history import commits_from_history
    from lineage_plugin.delta.log import restored_from
    from lineage_plugin.delta.spark import recorded_state

    base = {
        "uri": inp.uri,
        "name": inp.name,
        "target_version": inp.version,
        "engine": "spark",
        "unreachable": unreachable,
    }
    state = recorded_state(inp)
    current = state.current_version
    if current is None:
        return TableRestorePlan(**base, current_version=None, refusals=state.refusals)
    if not state.refusals and restored_from(state.commits[current]) == inp.version:
        return TableRestorePlan(**base, current_version=current, current_copy_of=inp.version)
    undo = commits_from_history(state.commits, inp.version + 1, current)
    return TableRestorePlan(
        **base, current_version=current, commits=tuple(undo), refusals=state.refusals
    )
