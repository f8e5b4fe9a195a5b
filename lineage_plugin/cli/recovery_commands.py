"""The commands that write: restore, reproduce, rollback (after a bad write) and vacuum."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any, NoReturn

import click

from lineage_plugin.cli import render, render_vacuum
from lineage_plugin.cli.options import (
    common_options,
    emit,
    keep_newest_option,
    retraining_options,
)
from lineage_plugin.cli.progress import terminal_progress
from lineage_plugin.errors import RestoreRefusedError


def restore_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """The options of ``restore`` that ``rollback`` shares (they mean the same for both)."""
    for option in reversed(
        (
            click.option(
                "--table", help="Only this table (path, URI or name); default: all it read."
            ),
            click.option("--dry-run", is_flag=True, help="Show the plan; write nothing."),
            click.option("--yes", "-y", is_flag=True, help="Do not ask before restoring."),
            click.option("--reason", metavar="TEXT", help="Why; recorded with the restore."),
            click.option(
                "--allow-missing-files",
                is_flag=True,
                help="Restore even if files of the target version were vacuumed (their rows "
                "are lost).",
            ),
            click.option(
                "--allow-undo-deletes",
                is_flag=True,
                help="Restore even if the commits undone deleted rows (they come back).",
            ),
            click.option(
                "--upstream",
                is_flag=True,
                help="Restore the tables upstream too (those the training tables were "
                "computed from by recorded pipeline runs), each to the version read.",
            ),
            click.option(
                "--engine",
                type=click.Choice(["deltalake", "spark"]),
                help="Who writes the RESTORE (default: deltalake when it can open the table, "
                "else Delta's own RESTORE through Spark).",
            ),
        )
    ):
        fn = option(fn)
    return fn


@click.command()
@click.argument("model")
@click.argument("version")
@restore_options
@common_options
def restore(
    model: str,
    version: str,
    table: str | None,
    dry_run: bool,
    yes: bool,
    reason: str | None,
    allow_missing_files: bool,
    allow_undo_deletes: bool,
    upstream: bool,
    engine: str | None,
    tracking_uri: str | None,
    as_json: bool,
) -> None:
    """Restore the tables a model version was trained on to the versions it read.

    A Delta RESTORE per table: a new commit with the recorded version's content (history
    is kept). The plan (current version, target, the commits undone with who and when) is
    shown first, and nothing is written until you say yes. If someone commits to a table
    while you decide, nothing is written and you get the new plan.

    \b
    Examples:
      mlflow-lineage restore diabetes champion --dry-run
      mlflow-lineage restore diabetes 1 --reason "MERGE of predictions into target"
      mlflow-lineage restore diabetes 1 --table diabetes --yes --json
      mlflow-lineage restore diabetes 1 --engine spark --yes
      mlflow-lineage restore churn 2 --upstream --dry-run
    """
    from lineage_plugin.recovery.restore import restore as run_restore

    try:
        report = run_restore(
            model,
            version,
            table=table,
            reason=reason,
            dry_run=dry_run,
            allow_missing_files=allow_missing_files,
            allow_undo_deletes=allow_undo_deletes,
            engine=engine,
            confirm=None if (yes or dry_run) else confirm_restore,
            upstream=upstream,
            progress=terminal_progress(as_json),
            tracking_uri=tracking_uri,
        )
    except RestoreRefusedError as exc:
        refused(exc, as_json)
    emit(as_json, report.to_dict(), render.restore)


@click.command()
@click.argument("model")
@click.argument("version")
@retraining_options
@click.option(
    "--register",
    is_flag=True,
    help="Once verified, register the new model as a new version (what the training "
    "script registers itself goes to a scratch registry either way).",
)
@click.option(
    "--no-pin",
    is_flag=True,
    help="Read the tables as they are now instead of the recorded versions.",
)
@click.option(
    "--upstream",
    is_flag=True,
    help="First re-run the recorded pipeline runs that wrote the training's table versions "
    "(and those behind them), into scratch tables, never the real ones.",
)
@click.option(
    "--scratch",
    metavar="DIR",
    type=click.Path(file_okay=False),
    help="With --upstream: write the scratch tables to DIR (empty or new; kept). "
    "Default: a temporary directory, removed at the end.",
)
@common_options
def reproduce(
    model: str,
    version: str,
    command: str | None,
    tolerance: float,
    register: bool,
    no_pin: bool,
    upstream: bool,
    scratch: str | None,
    tracking_uri: str | None,
    as_json: bool,
) -> None:
    """Retrain a model version as recorded and check its predictions are identical.

    Runs the recorded training command (in its working directory, at its git commit) or
    --command, with every Delta read pinned to the recorded version by time travel, so it
    works whether or not the table was restored. Then compares the original and the new
    model's predictions on the recorded training data. Exit 1 when they differ.

    With --upstream, the pipeline runs that wrote the versions the training read are re-run
    first, in order, each reading what the ones before it rebuilt; every version they write
    is compared with the recorded one, and the training reads the rebuilt versions.

    \b
    Examples:
      mlflow-lineage reproduce diabetes champion
      mlflow-lineage reproduce diabetes 3 --register
      mlflow-lineage reproduce diabetes 3 --tolerance 1e-9
      mlflow-lineage reproduce diabetes 3 --command "python train.py --alpha 0.1"
      mlflow-lineage reproduce diabetes 3 --upstream --scratch /tmp/rebuilt
    """
    from lineage_plugin.recovery.reproduce import reproduce as run_reproduce

    if scratch and not upstream:
        raise click.UsageError("--scratch goes with --upstream.")

    report = run_reproduce(
        model,
        version,
        command=command,
        tolerance=tolerance,
        register=register,
        pin=not no_pin,
        upstream=upstream,
        scratch=scratch,
        progress=terminal_progress(as_json),
        tracking_uri=tracking_uri,
    )
    emit(as_json, report.to_dict(), render.reproduce)
    if not report.verified:
        sys.exit(1)


@click.command()
@click.argument("model")
@click.argument("version")
@click.option("--alias", help="Point this alias at the rebuilt version once verified.")
@click.option("--stage", help="Or move the rebuilt version to this stage once verified.")
@restore_options
@retraining_options
@common_options
def rollback(
    model: str,
    version: str,
    alias: str | None,
    stage: str | None,
    table: str | None,
    dry_run: bool,
    yes: bool,
    reason: str | None,
    allow_missing_files: bool,
    allow_undo_deletes: bool,
    upstream: bool,
    engine: str | None,
    tolerance: float,
    command: str | None,
    tracking_uri: str | None,
    as_json: bool,
) -> None:
    """Restore, retrain, verify, then point the aliases or stage at the rebuilt version.

    VERSION is the known-good version. Its training tables are restored (asking first,
    unless --yes; the restore options mean what they mean for `restore`), it is retrained
    with reads pinned to the recorded versions, and its predictions are compared with
    VERSION's. Only when they are identical is the rebuilt model registered and the targets
    pointed at it: --alias or --stage, or by default the aliases and stage VERSION held
    last (say, @champion before it moved to a bad version). With neither given nor held,
    it refuses before doing anything. --dry-run shows the restore plan, what would be
    retrained and the targets. Exit 1 when not verified (nothing registered or pointed).

    \b
    Examples:
      mlflow-lineage rollback diabetes 1 --dry-run
      mlflow-lineage rollback diabetes 1 --alias champion
      mlflow-lineage rollback diabetes 1 --yes --allow-undo-deletes
      mlflow-lineage rollback diabetes 1 --stage Production --yes --reason "bad MERGE"
      mlflow-lineage rollback churn 1 --upstream --alias champion --dry-run
    """
    from lineage_plugin.recovery.rollback import rollback as run_rollback

    if alias and stage:
        raise click.UsageError("Give --alias or --stage, not both.")
    try:
        report = run_rollback(
            model,
            version,
            alias=alias,
            stage=stage,
            table=table,
            reason=reason,
            dry_run=dry_run,
            allow_missing_files=allow_missing_files,
            allow_undo_deletes=allow_undo_deletes,
            engine=engine,
            confirm=None if (yes or dry_run) else confirm_restore,
            upstream=upstream,
            tolerance=tolerance,
            command=command,
            progress=terminal_progress(as_json),
            tracking_uri=tracking_uri,
        )
    except RestoreRefusedError as exc:
        refused(exc, as_json)
    emit(as_json, report.to_dict(), render.rollback)
    if not (report.verified or report.dry_run):
        sys.exit(1)


def refused(exc: RestoreRefusedError, as_json: bool) -> NoReturn:
    """Show a refused restore's plan on stderr (with --json it is in the JSON error), and
    raise the refusal on to the boundary."""
    if exc.plan is not None and not as_json:
        click.echo(render.restore_plan(exc.plan.to_dict()), err=True)
    raise exc


def confirm_restore(plan: Any) -> bool:
    click.echo(render.restore_plan(plan.to_dict()), err=True)
    return _ask("Restore these tables now?")


def _ask(question: str) -> bool:
    try:
        return click.confirm(question, default=False, err=True)
    except click.Abort as exc:
        if isinstance(exc.__context__, KeyboardInterrupt):
            raise  # Ctrl-C at the prompt: interrupted (exit 130), not a "no"
        return False  # no terminal to answer on (end of input): not confirmed


@click.command()
@click.argument("table")
@click.option(
    "--retention-hours",
    type=click.FloatRange(min=0),
    metavar="H",
    help="Delete unreferenced files older than H hours (default: the table's "
    "delta.deletedFileRetentionDuration, 7 days unless set).",
)
@keep_newest_option
@click.option(
    "--dry-run", is_flag=True, help="Show what would go and what is kept; delete nothing."
)
@click.option("--yes", "-y", is_flag=True, help="Do not ask before deleting.")
@click.option(
    "--engine",
    type=click.Choice(["deltalake", "spark"]),
    help="Who runs the VACUUM (default: deltalake, which keeps exactly the protected "
    "versions; Spark keeps everything from the oldest protected version on).",
)
@common_options
def vacuum(
    table: str,
    retention_hours: float | None,
    keep_newest: int,
    dry_run: bool,
    yes: bool,
    engine: str | None,
    tracking_uri: str | None,
    as_json: bool,
) -> None:
    """VACUUM a Delta table, keeping every version a model in use was trained on.

    Protected versions: those read by a model version that holds an alias or the Staging
    or Production stage, by one of each model's N newest versions, or by a version tagged
    lineage.protect=true, and the versions upstream of those (pipeline runs). It refuses
    (exit 2, nothing deleted) when a protected version is already unreadable.

    \b
    Examples:
      mlflow-lineage vacuum /data/churn --dry-run
      mlflow-lineage vacuum /data/churn --retention-hours 0 --keep-newest 1 --yes
      mlflow-lineage vacuum s3://lake/features --engine spark --dry-run --json
    """
    from lineage_plugin.errors import VacuumRefusedError
    from lineage_plugin.recovery.vacuum import vacuum as run_vacuum

    try:
        report = run_vacuum(
            table,
            retention_hours=retention_hours,
            keep_newest=keep_newest,
            dry_run=dry_run,
            engine=engine,
            confirm=None if (yes or dry_run) else confirm_vacuum,
            progress=terminal_progress(as_json),
            tracking_uri=tracking_uri,
        )
    except VacuumRefusedError as exc:
        if not as_json:  # with --json the refusals are in the JSON error
            click.echo("\n".join(f"Refused: {r}" for r in exc.refusals), err=True)
        raise
    emit(as_json, report.to_dict(), render_vacuum.vacuum)


def confirm_vacuum(plan: Any) -> bool:
    click.echo(render_vacuum.vacuum_plan(plan.to_dict()), err=True)
    return _ask("Delete these files now?")
