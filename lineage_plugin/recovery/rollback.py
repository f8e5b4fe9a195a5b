"""Roll back after a bad write: restore, retrain, verify, then (only if verified) promote.

Each step runs only when the one before it succeeded, and a failure says what state
everything is in: which tables were restored, which version was registered, what the alias
or stage points to.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from lineage_plugin.errors import LineageError
from lineage_plugin.progress import Indented, status_lines
from lineage_plugin.records import drop_nulls

if TYPE_CHECKING:
    from lineage_plugin.recovery.reproduce import ReproduceReport
    from lineage_plugin.recovery.restore import Confirm, RestoreReport

STEPS = 4


@dataclass(frozen=True, kw_only=True)
class RollbackReport:
    """What a rollback did.

    Attributes:
        name: Registered model name.
        version: The known-good version rolled back to.
        restore: The restore step.
        reproduce: The retrain-and-verify step.
        pointed: ``@alias`` or the stage now held by the reproduced version; ``None`` when
            nothing was pointed (not asked, or not verified).
        previous_holder: The version that held the alias or stage before.
    """

    name: str
    version: str
    restore: RestoreReport
    reproduce: ReproduceReport
    pointed: str | None = None
    previous_holder: str | None = None

    @property
    def verified(self) -> bool:
        """The retrained model predicts like the known-good one."""
        return self.reproduce.verified

    def to_dict(self) -> dict[str, Any]:
        """The report as plain data (sorted keys, no nulls)."""
        return drop_nulls(
            {
                "name": self.name,
                "version": self.version,
                "verified": self.verified,
                "restore": self.restore.to_dict(),
                "reproduce": self.reproduce.to_dict(),
                "pointed": self.pointed,
                "previous_holder": self.previous_holder,
            }
        )


class RollbackError(LineageError):
    """A rollback step failed; the message says what state everything is in."""


def rollback(
    name: str,
    version: str | int,
    *,
    alias: str | None = None,
    stage: str | None = None,
    reason: str | None = None,
    confirm: Confirm | None = None,
    tolerance: float = 0.0,
    command: str | None = None,
    progress: Callable[[str], None] | None = None,
    tracking_uri: str | None = None,
) -> RollbackReport:
    """Restore a version's training tables, retrain it, verify, and point an alias or stage.

    Args:
        name: Registered model name.
        version: The known-good version (number, alias or stage).
        alias: Point this alias at the reproduced version once verified.
        stage: Or move the reproduced version to this stage (archiving the others).
        reason: Why; recorded with the restore.
        confirm: Asked with the restore plan before writing (``None``: yes).
        tolerance: Largest prediction difference counted as equal (0: exact).
        command: Retrain with this command instead of the recorded one.
        progress: Receives one line per step.
        tracking_uri: Where MLflow is (default: MLflow's tracking URI).

    Returns:
        A :class:`RollbackReport`; when not ``verified``, nothing was pointed.

    Raises:
        RollbackError: A step failed (its cause is chained); the message gives the state.
        LineageError: Bad input (both ``alias`` and ``stage``, unknown model or version).

    Example:
        >>> report = rollback("diabetes", 1, alias="champion", reason="bad MERGE")
        >>> report.verified, report.pointed
    """
    from lineage_plugin.queries.history import canonical_stage
    from lineage_plugin.queries.show import resolve
    from lineage_plugin.queries.workspace import Workspace
    from lineage_plugin.recovery.reproduce import reproduce
    from lineage_plugin.recovery.restore import restore

    if alias and stage:
        raise LineageError("Give --alias or --stage, not both.")
    target_stage = canonical_stage(stage) if stage else None
    if stage and target_stage is None:
        raise LineageError(f"'{stage}' is not a stage: use Staging, Production or Archived.")
    say = status_lines(progress)
    ws = Workspace(tracking_uri)
    number = resolve(ws, name, str(version))

    say(f"[1/{STEPS}] Restoring the tables model {name} version {number} was trained on")
    restored = restore(
        name,
        number,
        reason=reason or f"rollback of model '{name}' to version {number}",
        confirm=confirm,
        progress=Indented(progress, "      "),
        tracking_uri=ws.tracking_uri,
    )
    state = _restore_state(restored)
    say(f"      {state}")

    say(f"[2/{STEPS}] Retraining version {number} with its recorded data and code")
    try:
        reproduced = reproduce(
            name,
            number,
            command=command,
            tolerance=tolerance,
            register=True,
            progress=Indented(progress, "      "),
            tracking_uri=ws.tracking_uri,
        )
    except LineageError as exc:
        raise RollbackError(
            f"Retraining failed: {exc}\nState: {state} No alias or stage was changed."
        ) from exc

    new = reproduced.verification.reproduced_version
    say(f"[3/{STEPS}] Verifying predictions of version {new} against version {number}")
    say(f"      {reproduced.verification.summary()}")
    report = RollbackReport(name=name, version=number, restore=restored, reproduce=reproduced)
    if not reproduced.verified:
        say(
            f"[4/{STEPS}] Not verified: nothing pointed. State: {state} Version {new} is "
            "registered and tagged with the failed verification."
        )
        return report
    if not (alias or target_stage):
        say(f"[4/{STEPS}] Verified. No --alias or --stage given: nothing pointed.")
        return report
    label = f"@{alias.lstrip('@')}" if alias else str(target_stage)
    say(f"[4/{STEPS}] Pointing {label} at version {new}")
    previous = _point(ws, name, str(new), alias, target_stage)
    return RollbackReport(
        name=name,
        version=number,
        restore=restored,
        reproduce=reproduced,
        pointed=label,
        previous_holder=previous,
    )


def _restore_state(report: RestoreReport) -> str:
    if not report.restored:
        return "Every table was already at its recorded version."
    done = ", ".join(
        f"{r.name} v{r.from_version} -> v{r.new_version} (copy of v{r.to_version})"
        for r in report.restored
    )
    return f"Restored {done}."


def _point(ws: Any, name: str, version: str, alias: str | None, stage: str | None) -> str | None:
    store = ws.registry_store
    if alias:
        alias = alias.lstrip("@")
        held = store.get_registered_model(name).aliases or {}
        previous = held.get(alias)
        store.set_registered_model_alias(name, alias, version)
        return str(previous) if previous is not None else None
    before = [
        str(mv.version)
        for mv in ws.model_versions(name)
        if mv.current_stage == stage and str(mv.version) != version
    ]
    store.transition_model_version_stage(name, version, stage, archive_existing_versions=True)
    return ", ".join(before) or None
