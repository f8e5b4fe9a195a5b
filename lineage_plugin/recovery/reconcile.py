"""Restores whose event was never recorded: the Delta commit happened, then the process died
(killed, the machine lost) before the event reached MLflow. A rerun of the restore finds them
by the commit's own stamp and records them, so a restore that happened has its event once."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lineage_plugin.records import TableRestore

if TYPE_CHECKING:
    from lineage_plugin.queries.workspace import Workspace
    from lineage_plugin.recovery.plan import RestorePlan, TableRestorePlan

#: The custom metadata keys ``restore_with_deltalake`` stamps on its RESTORE commits.
MODEL_KEY, VERSION_KEY = "mlflowLineageModel", "mlflowLineageModelVersion"


def unrecorded_restores(ws: Workspace, plan: RestorePlan) -> tuple[TableRestore, ...]:
    """The tables of ``plan`` that are at a RESTORE this model version's restore committed,
    but that no ``restore`` event of the model version names.

    Args:
        ws: Where MLflow is.
        plan: A restore plan (nothing pending, or some tables already restored).

    Returns:
        One :class:`TableRestore` per such table (undone commits as the RESTORE made them).
    """
    from lineage_plugin.events import RESTORE, events_from_tags

    candidates = [
        t
        for t in plan.tables
        if t.current_version is not None and t.current_copy_of == t.target_version
    ]
    if not candidates:
        return ()
    tags = ws.model_version(plan.name, plan.version).tags
    recorded = {
        (r.uri, r.new_version)
        for e in events_from_tags(tags)
        if e.kind == RESTORE
        for r in e.restores
    }
    return tuple(
        _as_restore(t)
        for t in candidates
        if (t.uri, t.current_version) not in recorded and _stamped_by(t, plan)
    )


def _stamped_by(t: TableRestorePlan, plan: RestorePlan) -> bool:
    """Whether ``t``'s current commit is a RESTORE made by a restore of ``plan``'s version."""
    from lineage_plugin.delta.history import commit_infos_after

    assert t.current_version is not None
    found = commit_infos_after(t.uri, t.current_version - 1)
    info: dict[str, Any] = found[0][1] if found and found[0][0] == t.current_version else {}
    return info.get(MODEL_KEY) == plan.name and str(info.get(VERSION_KEY)) == str(plan.version)


def _as_restore(t: TableRestorePlan) -> TableRestore:
    assert t.current_version is not None
    before = t.current_version - 1  # restores commit on the planned version, no retries
    return TableRestore(
        uri=t.uri,
        name=t.name,
        from_version=before,
        to_version=t.target_version,
        new_version=t.current_version,
        commits_undone=max(before - t.target_version, 0),
    )
