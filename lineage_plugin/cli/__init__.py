"""``mlflow-lineage``: which data built this model, and what did a bad write touch?

Every command takes ``--tracking-uri`` (default ``MLFLOW_TRACKING_URI``) and ``--json``.
Exit codes: 0 success, 1 a check found a difference, 2 bad input or a refused operation.
"""

from __future__ import annotations

import click

from lineage_plugin.cli import query_commands, recovery_commands


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
      mlflow-lineage upstream diabetes Production
      mlflow-lineage timeline --model diabetes --since 7d
      mlflow-lineage check diabetes champion
      mlflow-lineage restore diabetes champion --dry-run
      mlflow-lineage reproduce diabetes champion
      mlflow-lineage rollback diabetes 1 --alias champion
      mlflow-lineage vacuum /data/diabetes --dry-run
    """


for _command in (
    query_commands.show,
    query_commands.diff,
    query_commands.impact,
    query_commands.upstream,
    query_commands.timeline,
    query_commands.check,
    query_commands.reindex,
    query_commands.export,
    recovery_commands.restore,
    recovery_commands.reproduce,
    recovery_commands.rollback,
    recovery_commands.vacuum,
):
    cli.add_command(_command)


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="mlflow-lineage")
