"""``export``: the lineage of a model, or of everything, in one archive (JSON lines and
OpenLineage run events), read from MLflow itself (the system of record)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from lineage_plugin import tags as T
from lineage_plugin.events import collect_events
from lineage_plugin.progress import status_lines, tracked
from lineage_plugin.queries.workspace import Workspace

if TYPE_CHECKING:
    from lineage_plugin.queries.archive import ExportSummary


def export(
    output: str | os.PathLike[str],
    *,
    model: str | None = None,
    tracking_uri: str | None = None,
    progress: Callable[[str], None] | None = None,
) -> ExportSummary:
    """Export lineage to ``output`` (``.tar.gz``, or ``.zip``).

    Args:
        output: The archive to write (replaced atomically when it exists).
        model: Only this registered model's versions, their runs and events; ``None`` for
            every run with lineage and every model version.
        tracking_uri: Where MLflow is (default: MLflow's tracking URI).
        progress: Called with a status line as each phase finishes.

    Returns:
        The :class:`~lineage_plugin.queries.archive.ExportSummary`.

    Raises:
        LineageError: Unknown model, or the output path cannot be written.

    Example:
        >>> export("diabetes-lineage.tar.gz", model="diabetes").runs
    """
    from lineage_plugin.queries.archive import write_export
    from lineage_plugin.store.index_updates import run_row

    say = status_lines(progress)
    ws = Workspace(tracking_uri)
    if model is not None:
        registered = [ws.registered_model(model)]
        versions = list(ws.model_versions(model))
        runs = list(_runs_of(ws, {v.tags.get(T.RUN_ID) or v.run_id for v in versions}))
    else:
        registered = list(ws.registered_models())
        versions = list(ws.model_versions())
        runs = list(ws.lineage_runs())
    say(f"read {len(runs)} runs and {len(versions)} model versions")
    with tracked(progress, "Exporting runs", len(runs)) as advance:

        def records() -> Iterator[tuple[Any, Any]]:
            for r in runs:
                yield T.run_lineage_from_tags(r.info.run_id, r.data.tags), run_row(r.info)
                advance(1)

        summary = write_export(
            output,
            runs=records(),
            model_versions=[(T.model_version_lineage(v), v.creation_timestamp) for v in versions],
            events=collect_events([*versions, *registered]),
        )
    say(f"wrote {summary.path}")
    return summary


def _runs_of(ws: Workspace, run_ids: set[str | None]) -> Iterator[Any]:
    for run_id in sorted(r for r in run_ids if r):
        run = ws.run(run_id)
        if run is not None:
            yield run
