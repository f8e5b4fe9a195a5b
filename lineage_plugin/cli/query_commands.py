"""The query commands (read-only): show, diff, impact, upstream, timeline, check, reindex,
export."""

from __future__ import annotations

import sys
from typing import Any

import click

from lineage_plugin.cli import render, render_graph, render_risks
from lineage_plugin.cli.options import (
    common_options,
    duration_value,
    emit,
    keep_newest_option,
    time_value,
)
from lineage_plugin.cli.progress import terminal_progress


@click.command()
@click.argument("model")
@click.argument("version")
@click.option(
    "--at", callback=time_value, metavar="TIME", help="Resolve an alias or stage at TIME."
)
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

    emit(as_json, query(model, version, at=at, tracking_uri=tracking_uri).to_dict(), render.show)


@click.command()
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

    emit(as_json, query(model, v1, v2, tracking_uri=tracking_uri).to_dict(), render.diff)


@click.command()
@click.argument("table")
@click.option("--from-version", type=click.IntRange(min=0), help="First table version (incl.).")
@click.option("--to-version", type=click.IntRange(min=0), help="Last table version (incl.).")
@click.option(
    "--include-deleted",
    is_flag=True,
    help="Also list deleted runs and model versions (marked deleted).",
)
@common_options
def impact(
    table: str,
    from_version: int | None,
    to_version: int | None,
    include_deleted: bool,
    tracking_uri: str | None,
    as_json: bool,
) -> None:
    """List every run and model version that read TABLE, those in use first.

    TABLE is a path, URI or table name. This is the first question after a bad write.
    Deleted runs and model versions are left out unless --include-deleted is given.

    \b
    Examples:
      mlflow-lineage impact /data/diabetes --from-version 4
      mlflow-lineage impact s3://lake/sales --from-version 10 --to-version 12 --json
      mlflow-lineage impact sales --include-deleted
    """
    from lineage_plugin.queries import impact as query

    report = query(
        table,
        from_version=from_version,
        to_version=to_version,
        include_deleted=include_deleted,
        tracking_uri=tracking_uri,
    )
    emit(as_json, report.to_dict(), render_graph.impact)


@click.command()
@click.argument("model")
@click.argument("version")
@common_options
def upstream(model: str, version: str, tracking_uri: str | None, as_json: bool) -> None:
    """List the runs and table versions upstream of a model version, back to the raw ones.

    From the training run: the table versions it read, the runs that wrote them, what those
    runs read, and so on. A table version no recorded run wrote is raw.

    \b
    Examples:
      mlflow-lineage upstream churn 3
      mlflow-lineage upstream churn Production --json
    """
    from lineage_plugin.queries import upstream as query

    emit(as_json, query(model, version, tracking_uri=tracking_uri).to_dict(), render_graph.upstream)


@click.command()
@click.option("--model", help="A registered model.")
@click.option("--table", help="A table path, URI or name.")
@click.option(
    "--since", callback=time_value, metavar="TIME", help="From TIME (e.g. 7d, 2026-11-01)."
)
@click.option("--until", callback=time_value, metavar="TIME", help="Up to TIME.")
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
    emit(as_json, report.to_dict(), render.timeline)


@click.command()
@click.argument("model", required=False)
@click.argument("version", required=False)
@click.option(
    "--all",
    "check_all",
    is_flag=True,
    help="Check the data of every model version in use (alias, Staging or Production, the "
    "N newest, lineage.protect) and of the versions upstream of it. For a scheduled job.",
)
@click.option(
    "--within",
    "within_hours",
    default="3d",
    show_default=True,
    callback=duration_value,
    metavar="TIME",
    help="A table version that a plain VACUUM or log clean-up, with the table's own "
    "settings, can make unreadable within TIME (12h, 7d, 2w) is at risk.",
)
@keep_newest_option
@common_options
def check(
    model: str | None,
    version: str | None,
    check_all: bool,
    within_hours: float,
    keep_newest: int,
    tracking_uri: str | None,
    as_json: bool,
) -> None:
    """Would retraining now reproduce this model version? Exit 1 with the reasons if not.

    Compares today's library versions and code with the recorded ones, checks that each
    recorded table version is still readable (files not vacuumed, log not cleaned up), and
    says when a plain VACUUM or log clean-up with the table's settings can make it unreadable.

    With --all (no MODEL VERSION): the data of every model version in use, upstream versions
    included; exit 1 if any is unreadable or at risk within --within. --keep-newest counts
    for --all only.

    \b
    Examples:
      mlflow-lineage check diabetes 3
      mlflow-lineage check diabetes Production --json
      mlflow-lineage check --all --within 2d
    """
    if check_all:
        if model is not None:
            raise click.UsageError("Give either MODEL VERSION or --all, not both.")
        from lineage_plugin.queries.at_risk import check_all as query_all

        report = query_all(
            within_hours=within_hours, keep_newest=keep_newest, tracking_uri=tracking_uri
        )
        emit(as_json, report.to_dict(), render_risks.check_all)
    else:
        if model is None or version is None:
            raise click.UsageError("Give MODEL VERSION, or --all for every model version in use.")
        from lineage_plugin.queries import check as query

        report = query(model, version, within_hours=within_hours, tracking_uri=tracking_uri)
        emit(as_json, report.to_dict(), render.check)
    if not report.ok:
        sys.exit(1)


@click.command()
@click.option(
    "--source",
    type=click.Choice(["auto", "sql", "api"]),
    default="auto",
    show_default=True,
    help="Read MLflow's SQL tables directly (sql), through its API (api), or sql when the "
    "backend has a SQL database (auto).",
)
@click.option(
    "--check",
    "check_only",
    is_flag=True,
    help="Compare the index with MLflow without writing anything; exit 1 if they differ.",
)
@click.option(
    "--no-stamps",
    is_flag=True,
    help="Do not read the tables' Delta history for writes stamped by runs (mlflow.runId) "
    "that the runs' records lack.",
)
@common_options
def reindex(
    source: str, check_only: bool, no_stamps: bool, tracking_uri: str | None, as_json: bool
) -> None:
    """Rebuild the lineage index from MLflow (runs, model versions, event tags).

    The index is a cache; MLflow's tags are the record. Safe to run at any time. On SQL
    backends it reads MLflow's own tables directly (read-only, page by page); file: and
    http(s): backends are read through MLflow's API. With --check nothing is written: the
    index is compared with what a rebuild would write (runs, reads, writes, model versions,
    events, holdings), and any difference is listed, with exit code 1. Write edges are also
    recovered from the commit stamps (mlflow.runId) in the history of every table in the
    recorded lineage, for runs that exist in MLflow but did not record them.

    \b
    Examples:
      mlflow-lineage reindex
      mlflow-lineage reindex --tracking-uri sqlite:///mlflow.db
      mlflow-lineage reindex --source api --json
      mlflow-lineage reindex --check
    """
    progress = terminal_progress(as_json)
    if check_only:
        from lineage_plugin.queries.index_check import check_index

        report = check_index(tracking_uri=tracking_uri, source=source, progress=progress)
        emit(as_json, report.to_dict(), _index_check)
        if not report.in_sync:
            sys.exit(1)
        return
    from lineage_plugin.queries import reindex as query

    summary = query(
        tracking_uri=tracking_uri, progress=progress, source=source, stamps=not no_stamps
    ).to_dict()
    emit(as_json, summary, lambda d: render.summary("Rebuilt the lineage index:", d))


def _index_check(report: dict[str, Any]) -> str:
    """Text for ``reindex --check``: the tables that differ, with a few keys each."""
    from lineage_plugin.store.mlflow_database import safe_url

    how = "its tables, read directly" if report["source"] == "sql" else "its API"
    index_at = safe_url(report["index_url"])  # no password in the text
    drifted = [t for t in report["tables"] if t["missing"] or t["extra"] or t["different"]]
    out = [] if report["index_exists"] else [f"There is no lineage index at {index_at}."]
    if drifted:
        out.append(f"The lineage index differs from MLflow ({how}):")
    else:
        counts = ", ".join(f"{t['in_mlflow']} {t['table']}" for t in report["tables"])
        out.append(f"The lineage index is in sync with MLflow ({how}): {counts}.")
    for t in drifted:
        said = [f"{t[k]} {k} ({why})" for k, why in _DRIFT if t[k]]
        if t["different"]:
            where = ", ".join(f"{c} in {n}" for c, n in t["differing_columns"].items())
            said.append(f"{t['different']} different ({where})")
        out.append(
            f"  {t['table']}: {t['in_mlflow']} in MLflow, {t['indexed']} indexed; "
            + ", ".join(said)
        )
        for kind in ("missing", "extra"):
            keys = t[f"{kind}_keys"]
            out += [f"    {kind}: {_key_text(k)}" for k in keys] + _more(t[kind], len(keys))
        rows = t["different_rows"]
        out += [f"    different: {_key_text(r['key'])} ({', '.join(r['columns'])})" for r in rows]
        out += _more(t["different"], len(rows))
    in_sync = [t["table"] for t in report["tables"] if t not in drifted]
    if drifted and in_sync:
        out.append(f"  {', '.join(in_sync)}: in sync")
    out.append(f"  index: {index_at}")
    if report["ignored"]:
        out.append(
            f"  not compared (the index does not keep it current): {', '.join(report['ignored'])}"
        )
    if drifted:
        out.append("Run `mlflow-lineage reindex` to repair it.")
    return "\n".join(out)


_DRIFT = (("missing", "in MLflow, not in the index"), ("extra", "in the index, not in MLflow"))


def _key_text(key: dict[str, Any]) -> str:
    return " ".join(f"{k}={v}" for k, v in key.items())


def _more(total: int, shown: int) -> list[str]:
    return [f"    ... and {total - shown} more"] if total > shown else []


@click.command()
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

    summary = query(
        target, model=model, tracking_uri=tracking_uri, progress=terminal_progress(as_json)
    ).to_dict()
    emit(as_json, summary, lambda d: render.summary("Exported lineage:", d))
