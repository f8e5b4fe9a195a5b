"""Restore a model version's training tables to the versions it was trained on.

Each restore is a Delta RESTORE: a new commit whose content is the recorded version's, so
history is added, never rewritten. It writes only what the operator approved: the plan names
the table's current version and the commits that will be undone, and the commit is made on
exactly that version with no retries. If anyone commits in between, nothing is written and
the operator sees the new plan.

Every restore is recorded: a ``restore`` event on the model version (who, when, why, from,
to, the new table version) in MLflow and the lineage index, and the Delta commit carries the
model version and reason too. A later read of the new version is recorded as a "restored
copy of version N" (see :attr:`lineage_plugin.records.DeltaInput.restored_from`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from lineage_plugin.errors import (
    ConcurrentCommitError,
    LineageError,
    OperationCancelledError,
    RestoreRefusedError,
)
from lineage_plugin.progress import Progress, status_lines, tracked
from lineage_plugin.records import TableRestore, drop_nulls

if TYPE_CHECKING:
    from lineage_plugin.queries.workspace import Workspace
    from lineage_plugin.recovery.plan import RestorePlan, TableRestorePlan

#: Asked before writing, with the plan; returns whether to go ahead.
Confirm = Callable[["RestorePlan"], bool]


@dataclass(frozen=True, kw_only=True)
class RestoreReport:
    """What a restore did.

    Attributes:
        plan: The plan that was carried out (or, for a dry run, shown).
        restored: The tables restored, with their new versions.
        dry_run: Nothing was written on purpose.
        event_id: The ``restore`` event recorded on the model version.
    """

    plan: RestorePlan
    restored: tuple[TableRestore, ...] = ()
    dry_run: bool = False
    event_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The report as plain data (sorted keys, no nulls)."""
        return drop_nulls(
            {
                "plan": self.plan.to_dict(),
                "restored": [r.to_dict() for r in self.restored],
                "dry_run": self.dry_run,
                "event_id": self.event_id,
            }
        )


ENGINES = ("deltalake", "spark")


class _TableMoved(Exception):
    """A table is no longer at the version its plan saw; nothing of it was written."""


def restore(
    name: str,
    version: str | int,
    *,
    table: str | None = None,
    reason: str | None = None,
    dry_run: bool = False,
    allow_missing_files: bool = False,
    allow_undo_deletes: bool = False,
    engine: str | None = None,
    confirm: Confirm | None = None,
    upstream: bool = False,
    progress: Callable[[str], None] | None = None,
    tracking_uri: str | None = None,
) -> RestoreReport:
    """Restore the tables a model version was trained on to their recorded versions.

    Args:
        name: Registered model name.
        version: A version number, alias or stage.
        table: Only this table (path, URI or name); default every table the version read.
        reason: Why; recorded in the event and in the Delta commit.
        dry_run: Plan only; write nothing.
        allow_missing_files: Restore even when data files of the target version are gone
            (their rows are lost; recorded).
        allow_undo_deletes: Restore even when the commits undone deleted rows.
        engine: ``deltalake`` or ``spark`` (Delta's own RESTORE through the active or a new
            local Spark session). By default each table is restored with the engine that
            reaches it: ``deltalake`` when it can open the table, else Spark (storage only the
            cluster can open, or no ``deltalake`` on the driver).
        confirm: Asked with the plan before anything is written (and again with a new plan
            if a table moved meanwhile); ``None`` means yes, and a moved table then stops
            the restore.
        upstream: Restore the tables upstream of the version too (those its training
            tables were computed from, through the recorded pipeline runs), each to the
            version the run nearest the model read.
        progress: Receives one line per step.
        tracking_uri: Where MLflow is (default: MLflow's tracking URI).

    Returns:
        A :class:`RestoreReport`.

    Raises:
        RestoreRefusedError: A table refuses (files gone, protocol downgrade, re-created
            table, missing version, deletes undone without permission); nothing written.
        ConcurrentCommitError: A table moved after the plan and ``confirm`` is ``None``.
        OperationCancelledError: ``confirm`` said no.

    Example:
        >>> report = restore("diabetes", "champion", reason="bad MERGE of predictions")
        >>> [(r.name, r.from_version, r.to_version, r.new_version) for r in report.restored]
    """
    from lineage_plugin.queries.workspace import Workspace
    from lineage_plugin.recovery.plan import plan_in

    say = status_lines(progress)
    if engine is not None and engine not in ENGINES:
        raise LineageError(f"Unknown engine '{engine}': use one of {', '.join(ENGINES)}.")
    ws = Workspace(tracking_uri)
    plan = plan_in(ws, name, version, table=table, upstream=upstream)
    while True:
        _refuse_if_blocked(plan, allow_missing_files, allow_undo_deletes, engine)
        if dry_run or not plan.pending:
            if dry_run:
                return RestoreReport(plan=plan, dry_run=True)
            return _reconciled(ws, plan, reason)
        if confirm is not None and not confirm(plan):
            raise OperationCancelledError(
                "Nothing was restored: the restore was not confirmed (answer y, or pass --yes)."
            )
        try:
            _check_unmoved(plan)
        except _TableMoved as moved:
            plan = plan_in(ws, name, plan.version, table=table, upstream=upstream)
            message = f"{moved} Nothing was written."
            if confirm is None:
                raise ConcurrentCommitError(
                    f"{message} Look at the new plan (--dry-run) and run the restore again.",
                    plan,
                ) from None
            say(f"{message} Here is the new plan.")
            continue
        return _carry_out(ws, plan, reason, allow_missing_files, engine, progress)


def _reconciled(ws: Workspace, plan: RestorePlan, reason: str | None) -> RestoreReport:
    """Nothing to restore: record the restores that were committed but never recorded (the
    restoring process died in between), once; see :mod:`lineage_plugin.recovery.reconcile`."""
    from lineage_plugin.recovery.reconcile import unrecorded_restores

    found = unrecorded_restores(ws, plan)
    if not found:
        return RestoreReport(plan=plan)
    why = "recorded after the restore that committed it was interrupted"
    event_id = _record(ws, plan, list(found), f"{reason}; {why}" if reason else why)
    return RestoreReport(plan=plan, restored=found, event_id=event_id)


def _refuse_if_blocked(
    plan: RestorePlan, allow_missing: bool, allow_deletes: bool, engine: str | None
) -> None:
    reasons = [
        f"{t.name or t.uri}: {why}"
        for t in plan.tables
        for why in t.blockers(
            allow_missing_files=allow_missing, allow_undo_deletes=allow_deletes, engine=engine
        )
    ]
    if reasons:
        raise RestoreRefusedError(
            "The restore is refused; no table was changed.\n  " + "\n  ".join(reasons),
            plan,
            refusals=tuple(reasons),
            go_ahead=_go_ahead(plan, allow_missing, allow_deletes, engine),
        )


def _go_ahead(
    plan: RestorePlan, allow_missing: bool, allow_deletes: bool, engine: str | None
) -> tuple[str, ...]:
    """The options that would let a refused plan go ahead; empty when none would."""
    pending = plan.pending
    if any(t.refusals for t in plan.tables):
        return ()
    flags = []
    if not allow_missing and any(t.missing_files for t in pending):
        flags.append("--allow-missing-files")
    if not allow_deletes and any(t.deleting_commits for t in pending):
        flags.append("--allow-undo-deletes")
    if engine == "deltalake" and any(t.engine == "spark" for t in pending):
        flags += ["--engine", "spark"]
    return tuple(flags)


def _check_unmoved(plan: RestorePlan) -> None:
    for t in plan.pending:
        now = _latest_version(t)
        if now != t.current_version:
            raise _TableMoved(
                f"{t.name or t.uri} moved from v{t.current_version} to v{now} since the plan "
                "was made (someone committed meanwhile)."
            )


def _latest_version(t: TableRestorePlan) -> int:
    """The table's latest version now, read with the engine that reached it for the plan."""
    if t.engine == "spark":
        from lineage_plugin.delta.spark import latest_commit, spark_session

        return int(latest_commit(spark_session(), t.uri)["version"])
    from lineage_plugin.delta.log import resolve

    return resolve(t.uri).version


def _carry_out(
    ws: Workspace,
    plan: RestorePlan,
    reason: str | None,
    allow_missing: bool,
    engine: str | None,
    progress: Progress | None,
) -> RestoreReport:
    say = status_lines(progress)
    done: list[TableRestore] = []
    pending = plan.pending
    try:
        with tracked(
            progress, "Restoring tables", len(pending) if len(pending) > 1 else None
        ) as advance:
            for t in pending:
                with_engine = engine or t.engine
                advance(0, t.name or t.uri)
                say(
                    f"Restoring {t.name or t.uri} from v{t.current_version} to "
                    f"v{t.target_version} ({with_engine})"
                )
                done.append(_restore_table(t, plan, reason, allow_missing, with_engine))
                say(f"  committed v{done[-1].new_version}")
                advance(1)
    except (_TableMoved, LineageError) as stopped:
        # The tables restored before the stop stay restored: record them, and say so.
        event_id = _record(ws, plan, done, reason) if done else None
        restored = ", ".join(f"{r.name or r.uri} (now v{r.new_version})" for r in done)
        already = f" Already restored: {restored} (event {event_id})." if done else ""
        if isinstance(stopped, _TableMoved):
            raise ConcurrentCommitError(
                f"{stopped}{already} Run the restore again to see the new plan.", plan
            ) from None
        if done:
            raise LineageError(f"{stopped}{already}") from stopped
        raise
    return RestoreReport(plan=plan, restored=tuple(done), event_id=_record(ws, plan, done, reason))


def _restore_table(
    t: TableRestorePlan,
    plan: RestorePlan,
    reason: str | None,
    allow_missing: bool,
    engine: str = "deltalake",
) -> TableRestore:
    """One Delta RESTORE, committed on the planned version only (no retries)."""
    from lineage_plugin.store.request_context import current_user

    skip_missing = bool(allow_missing and t.missing_files)
    note = f"mlflow-lineage restore for model '{plan.name}' version {plan.version}"
    note = f"{note}: {reason}" if reason else note
    if engine == "spark":
        new_version = _restore_with_spark(t, note, skip_missing)
    else:
        new_version = restore_with_deltalake(t, plan, note, current_user(), skip_missing)
    return TableRestore(
        uri=t.uri,
        name=t.name,
        from_version=t.current_version if t.current_version is not None else -1,
        to_version=t.target_version,
        new_version=new_version,
        commits_undone=len(t.commits),
        undid_deletes=bool(t.deleting_commits),
        missing_files_allowed=skip_missing,
    )


def _restore_with_spark(t: TableRestorePlan, note: str, skip_missing: bool) -> int:
    from lineage_plugin.recovery.restore_spark import restore_with_spark

    if skip_missing:
        raise LineageError(
            f"{t.name or t.uri}: files of v{t.target_version} are gone, and Spark's RESTORE "
            "cannot skip them. Restore with --engine deltalake --allow-missing-files."
        )
    new_version, moved = restore_with_spark(t, note)
    if moved:
        raise _TableMoved(moved)
    return new_version


def restore_with_deltalake(
    t: TableRestorePlan, plan: RestorePlan, note: str, user: str | None, skip_missing: bool
) -> int:
    """RESTORE one planned table with ``deltalake``, committed on exactly the planned version;
    return the new version."""
    from deltalake import CommitProperties, DeltaTable

    from lineage_plugin.delta.log import PARTIAL_RESTORE_KEY

    metadata: dict[str, str] = {
        "userMetadata": note,
        "mlflowLineageModel": plan.name,
        "mlflowLineageModelVersion": plan.version,
        "user": user or "unknown",
    }
    if skip_missing:
        metadata[PARTIAL_RESTORE_KEY] = "true"
    dt = DeltaTable(t.uri, version=t.current_version)
    try:
        dt.restore(
            t.target_version,
            ignore_missing_files=skip_missing,
            commit_properties=CommitProperties(custom_metadata=metadata, max_commit_retries=0),
        )
        if skip_missing:
            # RESTORE keeps the missing files in the table; FSCK drops them, so the table
            # reads again (without their rows).
            dt.repair(commit_properties=CommitProperties(custom_metadata=metadata))
    except Exception as exc:
        if type(exc).__name__ == "CommitFailedError":
            raise _TableMoved(
                f"{t.name or t.uri} got a commit after v{t.current_version} while restoring; "
                "it was not written."
            ) from exc
        raise LineageError(
            f"Delta RESTORE of {t.name or t.uri} to v{t.target_version} failed: "
            f"{type(exc).__name__}: {exc}. The table was not changed."
        ) from exc
    return dt.version()


def _record(ws: Workspace, plan: RestorePlan, done: list[TableRestore], reason: str | None) -> str:
    from lineage_plugin.events import RESTORE, RegistryEvent, new_event_id
    from lineage_plugin.store.request_context import current_user

    mv = ws.model_version(plan.name, plan.version)
    event = RegistryEvent(
        event_id=new_event_id(int(time.time() * 1000)),
        kind=RESTORE,
        name=plan.name,
        version=plan.version,
        time=int(time.time() * 1000),
        user=current_user(),
        run_id=mv.run_id,
        reason=reason,
        restores=tuple(done),
    )
    ws.record_event(event)
    return event.event_id
