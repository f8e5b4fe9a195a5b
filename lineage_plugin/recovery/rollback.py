"""Roll back after a bad write: restore, retrain, verify, then (only if verified) promote.

Each step runs only when the one before it succeeded, and a failure (or Ctrl-C) says what
state everything is in: which tables were restored, that nothing was registered, what the
aliases and stage point to. The registry changes only at the end, and only for a verified
model: the rebuilt version is registered, then the targets are pointed at it.

The targets are the ``--alias`` or ``--stage`` given or, by default, the aliases and stage the
known-good version held the last time it held any (from the event log; for example
``@champion`` after it was moved to a bad version). With none, the rollback refuses before
it does anything.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from lineage_plugin.errors import LineageError, OperationInterruptedError
from lineage_plugin.progress import Indented, status_lines
from lineage_plugin.records import drop_nulls

if TYPE_CHECKING:
    from lineage_plugin.queries.workspace import Workspace
    from lineage_plugin.recovery.reproduce import ReproduceReport
    from lineage_plugin.recovery.reproduce_runs import RetrainingPlan
    from lineage_plugin.recovery.restore import Confirm, RestoreReport

STEPS = 4


@dataclass(frozen=True, kw_only=True)
class Target:
    """An alias or a stage a rollback points at the rebuilt version.

    Attributes:
        alias: The alias (without ``@``), or ``None`` for a stage.
        stage: The stage, or ``None`` for an alias.
        holder: The version holding it when the rollback started (a stage: comma-separated).
    """

    alias: str | None = None
    stage: str | None = None
    holder: str | None = None

    @property
    def label(self) -> str:
        """``@alias`` or the stage."""
        return f"@{self.alias}" if self.alias else str(self.stage)

    def to_dict(self) -> dict[str, Any]:
        """The target as plain data (sorted keys, no nulls)."""
        return drop_nulls({"target": self.label, "previous_holder": self.holder})


@dataclass(frozen=True, kw_only=True)
class RollbackReport:
    """What a rollback did (or, for a dry run, would do).

    Attributes:
        name: Registered model name.
        version: The known-good version rolled back to.
        restore: The restore step (for a dry run, its plan).
        targets: What is pointed at the rebuilt version once verified.
        targets_from: Why these targets (``given``, or what the version held last).
        reproduce: The retrain-and-verify step (``None`` for a dry run).
        retraining: What would be retrained (dry runs only).
        pointed: The targets now held by the rebuilt version (empty unless verified).
        dry_run: Nothing was written on purpose.
    """

    name: str
    version: str
    restore: RestoreReport
    targets: tuple[Target, ...]
    targets_from: str
    reproduce: ReproduceReport | None = None
    retraining: RetrainingPlan | None = None
    pointed: tuple[Target, ...] = ()
    dry_run: bool = False

    @property
    def verified(self) -> bool:
        """The retrained model predicts like the known-good one."""
        return self.reproduce is not None and self.reproduce.verified

    def to_dict(self) -> dict[str, Any]:
        """The report as plain data (sorted keys, no nulls)."""
        return drop_nulls(
            {
                "name": self.name,
                "version": self.version,
                "verified": None if self.dry_run else self.verified,
                "dry_run": self.dry_run,
                "restore": self.restore.to_dict(),
                "reproduce": self.reproduce.to_dict() if self.reproduce else None,
                "retrain": self.retraining.to_dict() if self.retraining else None,
                "targets": [t.to_dict() for t in self.targets],
                "targets_from": self.targets_from,
                "pointed": ", ".join(t.label for t in self.pointed) or None,
                "previous_holder": ", ".join(t.holder for t in self.pointed if t.holder) or None,
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
    table: str | None = None,
    reason: str | None = None,
    dry_run: bool = False,
    allow_missing_files: bool = False,
    allow_undo_deletes: bool = False,
    engine: str | None = None,
    confirm: Confirm | None = None,
    tolerance: float = 0.0,
    command: str | None = None,
    upstream: bool = False,
    progress: Callable[[str], None] | None = None,
    tracking_uri: str | None = None,
) -> RollbackReport:
    """Restore a version's training tables, retrain it, verify, and point its aliases or stage.

    Args:
        name: Registered model name.
        version: The known-good version (number, alias or stage).
        alias: Point this alias at the rebuilt version once verified.
        stage: Or move the rebuilt version to this stage (archiving the others).
            Without either: the aliases and stage ``version`` held last.
        table: Restore only this table (path, URI or name).
        reason: Why; recorded with the restore.
        dry_run: Show the restore plan, what would be retrained and the targets; write
            nothing.
        allow_missing_files: As for :func:`~lineage_plugin.recovery.restore.restore`.
        allow_undo_deletes: As for :func:`~lineage_plugin.recovery.restore.restore`.
        engine: As for :func:`~lineage_plugin.recovery.restore.restore`.
        confirm: Asked with the restore plan before writing (``None``: yes).
        tolerance: Largest prediction difference counted as equal (0: exact).
        command: Retrain with this command instead of the recorded one.
        upstream: Restore the tables upstream of the version too (as
            :func:`~lineage_plugin.recovery.restore.restore` does with ``upstream``).
        progress: Receives one line per step.
        tracking_uri: Where MLflow is (default: MLflow's tracking URI).

    Returns:
        A :class:`RollbackReport`; when not ``verified``, nothing was registered or pointed.

    Raises:
        LineageError: Bad input (both ``alias`` and ``stage``, unknown model, version or
            stage; no target given and none held), before anything is done.
        RestoreRefusedError: The restore refuses (its ``go_ahead`` names the options).
        RollbackError: A later step failed (its cause is chained); the message gives the state.
        OperationInterruptedError: Ctrl-C; the message gives the state.

    Example:
        >>> report = rollback("diabetes", 1, reason="bad MERGE", allow_undo_deletes=True)
        >>> report.verified, report.to_dict()["pointed"]
    """
    from lineage_plugin.queries.show import resolve
    from lineage_plugin.queries.workspace import Workspace
    from lineage_plugin.recovery.reproduce import reproduce
    from lineage_plugin.recovery.reproduce_runs import plan_retraining
    from lineage_plugin.recovery.restore import restore

    if alias and stage:
        raise LineageError("Give --alias or --stage, not both.")
    say = status_lines(progress)
    ws = Workspace(tracking_uri)
    number = resolve(ws, name, str(version))
    ws.model_version(name, number)
    targets, targets_from = _targets(ws, name, number, alias, stage)
    labels = ", ".join(t.label for t in targets)
    say(f"Rollback of model {name} to version {number}; once verified, the rebuilt version")
    say(f"  gets {labels} ({targets_from}).")

    say(f"[1/{STEPS}] Restoring the tables model {name} version {number} was trained on")
    try:
        restored = restore(
            name,
            number,
            table=table,
            reason=reason or f"rollback of model '{name}' to version {number}",
            dry_run=dry_run,
            allow_missing_files=allow_missing_files,
            allow_undo_deletes=allow_undo_deletes,
            engine=engine,
            confirm=confirm,
            upstream=upstream,
            progress=Indented(progress, "      "),
            tracking_uri=ws.tracking_uri,
        )
    except KeyboardInterrupt:
        raise OperationInterruptedError(
            "Interrupted while restoring: a table may or may not have been restored. See "
            f"where they are with: mlflow-lineage restore {shlex.quote(name)} {number} "
            "--dry-run. Nothing was retrained, registered or pointed."
        ) from None
    base = {"name": name, "version": number, "targets": targets, "targets_from": targets_from}
    if dry_run:
        retraining = plan_retraining(ws, name, number, command=command)
        say(f"[2/{STEPS}] Would retrain: {shlex.join(retraining.command)}  (in {retraining.cwd})")
        say(f"[3/{STEPS}] Would compare predictions on {retraining.data.label}")
        say(f"[4/{STEPS}] Would point {labels} at the rebuilt version, once verified")
        return RollbackReport(**base, restore=restored, retraining=retraining, dry_run=True)
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
    except OperationInterruptedError as exc:
        raise OperationInterruptedError(f"{exc}\nState: {state} {_untouched(targets)}") from exc
    except KeyboardInterrupt:
        raise OperationInterruptedError(
            f"Interrupted while retraining.\nState: {state} {_untouched(targets)}"
        ) from None
    except LineageError as exc:
        raise RollbackError(
            f"Retraining failed: {exc}\nState: {state} {_untouched(targets)}"
        ) from exc

    new = reproduced.verification.reproduced_version
    say(f"[3/{STEPS}] Verifying predictions of the rebuilt model against version {number}")
    say(f"      {reproduced.verification.summary()}")
    report = RollbackReport(**base, restore=restored, reproduce=reproduced)
    if not reproduced.verified:
        say(f"[4/{STEPS}] Not verified. State: {state} {_untouched(targets)}")
        return report
    say(f"[4/{STEPS}] Registered as version {new}; pointing {labels} at it")
    _point(ws, name, str(new), targets)
    return RollbackReport(**base, restore=restored, reproduce=reproduced, pointed=targets)


def _untouched(targets: tuple[Target, ...]) -> str:
    held = ", ".join(f"{t.label} on version {t.holder or 'none'}" for t in targets)
    return f"Nothing was registered and nothing pointed ({held}, as before)."


def _targets(
    ws: Workspace, name: str, version: str, alias: str | None, stage: str | None
) -> tuple[tuple[Target, ...], str]:
    """What to point at the rebuilt version, and why those (refuses when there is nothing)."""
    from lineage_plugin.queries.history import SERVING_STAGES, canonical_stage, held_last
    from lineage_plugin.queries.history import model_events as events_of

    aliases_now = {a: str(v) for a, v in (ws.registered_model(name).aliases or {}).items()}
    if stage:
        canonical = canonical_stage(stage)
        if canonical not in SERVING_STAGES:
            raise LineageError(
                f"'{stage}' is not a stage to roll back to: use Staging or Production."
            )
        return (Target(stage=canonical, holder=_stage_holders(ws, name, canonical)),), "given"
    if alias:
        alias = alias.lstrip("@")
        return (Target(alias=alias, holder=aliases_now.get(alias)),), "given"
    try:
        aliases, serving = held_last(events_of(ws, name), version)
    except LineageError:  # no index: what the version holds now is all there is to go on
        aliases, serving = [], None
    if not aliases and not serving:
        mv = ws.model_version(name, version)
        aliases = sorted(a for a, v in aliases_now.items() if v == version)
        serving = mv.current_stage if mv.current_stage in SERVING_STAGES else None
    if not aliases and not serving:
        suggestion = sorted(aliases_now)[0] if aliases_now else "NAME"
        raise LineageError(
            f"Version {version} of model '{name}' never held an alias or a stage (none was "
            "recorded), so there is nothing to point at the rebuilt version; nothing was done. "
            "Say what to point: mlflow-lineage rollback "
            f"{shlex.quote(name)} {version} --alias {suggestion} (or --stage Production)."
        )
    found = [Target(alias=a, holder=aliases_now.get(a)) for a in aliases]
    if serving:
        found.append(Target(stage=serving, holder=_stage_holders(ws, name, serving)))
    return tuple(found), f"what version {version} held last"


def _stage_holders(ws: Workspace, name: str, stage: str) -> str | None:
    held = [str(mv.version) for mv in ws.model_versions(name) if mv.current_stage == stage]
    return ", ".join(sorted(held, key=int)) or None


def _restore_state(report: RestoreReport) -> str:
    if not report.restored:
        return "Every table was already at its recorded version."
    done = ", ".join(
        f"{r.name} v{r.from_version} -> v{r.new_version} (copy of v{r.to_version})"
        for r in report.restored
    )
    return f"Restored {done}."


def _point(ws: Workspace, name: str, version: str, targets: tuple[Target, ...]) -> None:
    store = ws.registry_store
    for t in targets:
        if t.alias:
            store.set_registered_model_alias(name, t.alias, version)
        else:
            store.transition_model_version_stage(
                name, version, t.stage, archive_existing_versions=True
            )
