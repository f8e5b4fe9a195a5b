"""``mlflow-lineage``: which data built this model, and what did a bad write touch?

Every command takes ``--tracking-uri`` (default ``MLFLOW_TRACKING_URI``) and ``--json``.
Exit codes: 0 success, 1 a check found a difference, 2 bad input or a refused operation.
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from typing import Any

import click

from lineage_plugin.cli import render
from lineage_plugin.errors import LineageError


class CliError(click.ClickException):
    """A clean error message and exit code 2 (bad input or a refused operation)."""

    exit_code = 2

    def show(self, file: Any = None) -> None:
        click.echo(f"Error: {self.format_message()}", err=True)


def _boundary(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn the plugin's and MLflow's exceptions into clean messages (no tracebacks)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from mlflow.exceptions import MlflowException

        try:
            return fn(*args, **kwargs)
        except LineageError as exc:
            raise CliError(str(exc)) from exc
        except MlflowException as exc:
            raise CliError(f"MLflow: {exc.message}") from exc

    return wrapper


def common_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``--tracking-uri`` and ``--json``, shared by every command."""
    fn = click.option(
        "--json", "as_json", is_flag=True, help="Print JSON (the documented, stable schema)."
    )(fn)
    fn = click.option(
        "--tracking-uri",
        envvar="MLFLOW_TRACKING_URI",
        metavar="URI",
        help="MLflow tracking URI (default: MLFLOW_TRACKING_URI).",
    )(fn)
    return _boundary(fn)


def retraining_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``--command`` and ``--tolerance``, shared by ``reproduce`` and ``rollback``."""
    fn = click.option(
        "--tolerance",
        type=click.FloatRange(min=0),
        default=0.0,
        show_default=True,
        help="Largest difference between predictions counted as equal (0: exact).",
    )(fn)
    return click.option(
        "--command", metavar="CMD", help="Train with CMD instead of the recorded command."
    )(fn)


def _time(_ctx: click.Context, _param: click.Parameter, value: str | None) -> int | None:
    from lineage_plugin.queries.times import TimeFormatError, parse_time

    if value is None:
        return None
    try:
        return parse_time(value)
    except TimeFormatError as exc:
        raise click.BadParameter(str(exc)) from None


def _emit(as_json: bool, data: dict[str, Any], text: Callable[[dict[str, Any]], str]) -> None:
    if as_json:
        click.echo(json.dumps(data, indent=2, sort_keys=True))
    else:
        click.echo(text(data))


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="mlflow-delta-lineage")
def cli() -> None:
    """Lineage of MLflow models: the exact Delta table versions behind every model version.

    \b
    Examples:
      mlflow-lineage show diabetes 3
      mlflow-lineage show diabetes Production --at 2026-11-17
      mlflow-lineage diff diabetes 1 2
      mlflow-lineage impact /data/diabetes --from-version 4
      mlflow-lineage timeline --model diabetes --since 7d
      mlflow-lineage check diabetes champion
      mlflow-lineage restore diabetes champion --dry-run
      mlflow-lineage reproduce diabetes champion
      mlflow-lineage rollback diabetes 1 --alias champion
    """


@cli.command()
@click.argument("model")
@click.argument("version")
@click.option("--at", callback=_time, metavar="TIME", help="Resolve an alias or stage at TIME.")
@common_options
def show(model: str, version: str, at: int | None, tracking_uri: str | None, as_json: bool) -> None:
    """Show the tables, environment, code, stages and aliases of a model version.

    VERSION is a number, an alias (champion or @champion) or a stage (Production). With
    --at, the alias or stage is resolved as it was at that time, from the event log.

    \b
    Examples:
      mlflow-lineage show diabetes 3
      mlflow-lineage show diabetes @champion --json
      mlflow-lineage show diabetes Production --at "2026-11-17 09:00"
    """
    from lineage_plugin.queries import show as query

    _emit(as_json, query(model, version, at=at, tracking_uri=tracking_uri).to_dict(), render.show)


@cli.command()
@click.argument("model")
@click.argument("v1")
@click.argument("v2")
@common_options
def diff(model: str, v1: str, v2: str, tracking_uri: str | None, as_json: bool) -> None:
    """Show what differs between two model versions: data first, then libraries, code, params.

    For each table the versions read and the Delta commits between them (operation, rows
    changed, who committed).

    \b
    Examples:
      mlflow-lineage diff diabetes 1 2
      mlflow-lineage diff diabetes champion challenger --json
    """
    from lineage_plugin.queries import diff as query

    _emit(as_json, query(model, v1, v2, tracking_uri=tracking_uri).to_dict(), render.diff)


@cli.command()
@click.argument("table")
@click.option("--from-version", type=click.IntRange(min=0), help="First table version (incl.).")
@click.option("--to-version", type=click.IntRange(min=0), help="Last table version (incl.).")
@common_options
def impact(
    table: str,
    from_version: int | None,
    to_version: int | None,
    tracking_uri: str | None,
    as_json: bool,
) -> None:
    """List every run and model version that read TABLE, those in use first.

    TABLE is a path, URI or table name. This is the first question after a bad write.

    \b
    Examples:
      mlflow-lineage impact /data/diabetes --from-version 4
      mlflow-lineage impact s3://lake/sales --from-version 10 --to-version 12 --json
    """
    from lineage_plugin.queries import impact as query

    report = query(
        table, from_version=from_version, to_version=to_version, tracking_uri=tracking_uri
    )
    _emit(as_json, report.to_dict(), render.impact)


@cli.command()
@click.option("--model", help="A registered model.")
@click.option("--table", help="A table path, URI or name.")
@click.option("--since", callback=_time, metavar="TIME", help="From TIME (e.g. 7d, 2026-11-01).")
@click.option("--until", callback=_time, metavar="TIME", help="Up to TIME.")
@common_options
def timeline(
    model: str | None,
    table: str | None,
    since: int | None,
    until: int | None,
    tracking_uri: str | None,
    as_json: bool,
) -> None:
    """Merge Delta commits, runs, registrations, stage and alias changes in time order.

    Give exactly one of --model and --table. Which version held an alias or stage at a time
    is the last change before it (or ask directly: show MODEL ALIAS --at TIME).

    \b
    Examples:
      mlflow-lineage timeline --model diabetes --since 7d
      mlflow-lineage timeline --table /data/diabetes --since 2026-11-01 --until 2026-11-08
    """
    from lineage_plugin.queries import timeline as query

    if (model is None) == (table is None):
        raise click.UsageError("Give exactly one of --model NAME and --table TABLE.")
    report = query(model=model, table=table, since=since, until=until, tracking_uri=tracking_uri)
    _emit(as_json, report.to_dict(), render.timeline)


@cli.command()
@click.argument("model")
@click.argument("version")
@common_options
def check(model: str, version: str, tracking_uri: str | None, as_json: bool) -> None:
    """Would retraining now reproduce this model version? Exit 1 with the reasons if not.

    Compares today's library versions and code with the recorded ones, and checks that each
    recorded table version is still readable (files not vacuumed, log not cleaned up).

    \b
    Examples:
      mlflow-lineage check diabetes 3
      mlflow-lineage check diabetes Production --json
    """
    from lineage_plugin.queries import check as query

    report = query(model, version, tracking_uri=tracking_uri)
    _emit(as_json, report.to_dict(), render.check)
    if not report.ok:
        sys.exit(1)


@cli.command()
@common_options
def reindex(tracking_uri: str | None, as_json: bool) -> None:
    """Rebuild the lineage index from MLflow (runs, model versions, event tags).

    The index is a cache; MLflow's tags are the record. Safe to run at any time.

    \b
    Examples:
      mlflow-lineage reindex
      mlflow-lineage reindex --tracking-uri sqlite:///mlflow.db
    """
    from lineage_plugin.queries import reindex as query

    summary = query(tracking_uri=tracking_uri, progress=_progress).to_dict()
    _emit(as_json, summary, lambda d: render.summary("Rebuilt the lineage index:", d))


@cli.command()
@click.option("--model", help="Only this registered model (default: everything).")
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, writable=True),
    help="Archive to write (.tar.gz or .zip; default lineage-export-<time>.tar.gz).",
)
@common_options
def export(model: str | None, output: str | None, tracking_uri: str | None, as_json: bool) -> None:
    """Export lineage as JSON lines and OpenLineage run events, packed in one archive.

    The archive holds manifest.json, lineage.jsonl (runs, model versions, registry events)
    and openlineage.jsonl (one RunEvent per run, inputs with the dataset version facet).

    \b
    Examples:
      mlflow-lineage export --model diabetes -o diabetes-lineage.tar.gz
      mlflow-lineage export -o everything.zip --json
    """
    import time

    from lineage_plugin.queries.export import export as query

    target = output or time.strftime("lineage-export-%Y%m%d-%H%M%S.tar.gz")

    summary = query(target, model=model, tracking_uri=tracking_uri, progress=_progress).to_dict()
    _emit(as_json, summary, lambda d: render.summary("Exported lineage:", d))


@cli.command()
@click.argument("model")
@click.argument("version")
@click.option("--table", help="Only this table (path, URI or name); default: all it read.")
@click.option("--dry-run", is_flag=True, help="Show the plan; write nothing.")
@click.option("--yes", "-y", is_flag=True, help="Do not ask before writing.")
@click.option("--reason", metavar="TEXT", help="Why; recorded with the restore.")
@click.option(
    "--allow-missing-files",
    is_flag=True,
    help="Restore even if files of the target version were vacuumed (their rows are lost).",
)
@click.option(
    "--allow-undo-deletes",
    is_flag=True,
    help="Restore even if the commits undone deleted rows (they come back).",
)
@click.option(
    "--engine",
    type=click.Choice(["deltalake", "spark"]),
    help=(
        "Who writes the RESTORE (default: deltalake when it can open the table, else Delta's "
        "own RESTORE through Spark)."
    ),
)
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
    """
    from lineage_plugin.errors import RestoreRefusedError
    from lineage_plugin.restore import restore as run_restore

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
            confirm=None if (yes or dry_run) else _confirm_restore,
            progress=_progress,
            tracking_uri=tracking_uri,
        )
    except RestoreRefusedError as exc:
        if exc.plan is not None:
            click.echo(render.restore_plan(exc.plan.to_dict()), err=True)
        raise
    _emit(as_json, report.to_dict(), render.restore)


@cli.command()
@click.argument("model")
@click.argument("version")
@retraining_options
@click.option("--register", is_flag=True, help="Register the new model as a new version.")
@click.option(
    "--no-pin",
    is_flag=True,
    help="Read the tables as they are now instead of the recorded versions.",
)
@common_options
def reproduce(
    model: str,
    version: str,
    command: str | None,
    tolerance: float,
    register: bool,
    no_pin: bool,
    tracking_uri: str | None,
    as_json: bool,
) -> None:
    """Retrain a model version as recorded and check its predictions are identical.

    Runs the recorded training command (in its working directory, at its git commit) or
    --command, with every Delta read pinned to the recorded version by time travel, so it
    works whether or not the table was restored. Then compares the original and the new
    model's predictions on the recorded training data. Exit 1 when they differ.

    \b
    Examples:
      mlflow-lineage reproduce diabetes champion
      mlflow-lineage reproduce diabetes 3 --register
      mlflow-lineage reproduce diabetes 3 --tolerance 1e-9
      mlflow-lineage reproduce diabetes 3 --command "python train.py --alpha 0.1"
    """
    from lineage_plugin.reproduce import reproduce as run_reproduce

    report = run_reproduce(
        model,
        version,
        command=command,
        tolerance=tolerance,
        register=register,
        pin=not no_pin,
        progress=_progress,
        tracking_uri=tracking_uri,
    )
    _emit(as_json, report.to_dict(), render.reproduce)
    if not report.verified:
        sys.exit(1)


@cli.command()
@click.argument("model")
@click.argument("version")
@click.option("--alias", help="Point this alias at the reproduced version once verified.")
@click.option("--stage", help="Or move the reproduced version to this stage.")
@click.option("--yes", "-y", is_flag=True, help="Do not ask before restoring.")
@click.option("--reason", metavar="TEXT", help="Why; recorded with the restore.")
@retraining_options
@common_options
def rollback(
    model: str,
    version: str,
    alias: str | None,
    stage: str | None,
    yes: bool,
    reason: str | None,
    tolerance: float,
    command: str | None,
    tracking_uri: str | None,
    as_json: bool,
) -> None:
    """Restore, retrain, verify, then point an alias or stage at the rebuilt version.

    VERSION is the known-good version. Its training tables are restored (asking first,
    unless --yes), it is retrained with reads pinned to the recorded versions and
    registered, and its predictions are compared with VERSION's. Only when they are
    identical is --alias or --stage moved to the new version. Exit 1 when not verified.

    \b
    Examples:
      mlflow-lineage rollback diabetes 1 --alias champion
      mlflow-lineage rollback diabetes 1 --stage Production --yes --reason "bad MERGE"
    """
    from lineage_plugin.rollback import rollback as run_rollback

    if alias and stage:
        raise click.UsageError("Give --alias or --stage, not both.")
    report = run_rollback(
        model,
        version,
        alias=alias,
        stage=stage,
        reason=reason,
        confirm=None if yes else _confirm_restore,
        tolerance=tolerance,
        command=command,
        progress=_progress,
        tracking_uri=tracking_uri,
    )
    _emit(as_json, report.to_dict(), render.rollback)
    if not report.verified:
        sys.exit(1)


def _confirm_restore(plan: Any) -> bool:
    click.echo(render.restore_plan(plan.to_dict()), err=True)
    try:
        return click.confirm("Restore these tables now?", default=False, err=True)
    except click.Abort:
        return False


def _progress(message: str) -> None:
    click.echo(message, err=True)


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="mlflow-lineage")
