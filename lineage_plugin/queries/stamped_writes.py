"""Write edges found in the tables' own Delta history (``reindex``, after the rebuild).

A commit stamped ``mlflow.runId`` (:mod:`lineage_plugin.delta.stamps`) by a run that exists
in MLflow but whose record has no output at that version (its client had no index, its tags
were lost, or the run ended before they were written) becomes a write edge of that run: the
index's graph then has it, as if the run had recorded it. Only tables that appear in the
recorded lineage (read or written by an indexed run) are read; never paths from elsewhere.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lineage_plugin.queries.workspace import Workspace
    from lineage_plugin.records import DeltaOutput
    from lineage_plugin.store.index import LineageIndex

#: ``engine`` of an output recovered from a stamp, by the commit's ``engineInfo``.
ENGINES = (("delta-rs", "deltalake"), ("Apache-Spark", "spark"))


def recover_stamped_writes(ws: Workspace, index: LineageIndex) -> int:
    """Add to ``index`` the stamped commits no recorded output names; returns how many.

    A table that cannot be read now (gone, or its log unreadable) is skipped: its recorded
    edges stay as they are.
    """
    from sqlalchemy import select, union

    from lineage_plugin.store.index_schema import tables

    t = tables()
    reads, writes = t["reads"], t["writes"]
    with index.begin() as conn:
        uris = sorted(
            conn.execute(union(select(reads.c.table_uri), select(writes.c.table_uri))).scalars()
        )
        known = {
            tuple(r)
            for r in conn.execute(select(writes.c.run_id, writes.c.table_uri, writes.c.version))
        }
    found: dict[str, list[DeltaOutput]] = {}
    for uri in uris:
        for run_id, output in _stamped(uri, known):
            found.setdefault(run_id, []).append(output)
    added = 0
    gone = ws.deleted_experiment_ids() if found else set()
    for run_id, outputs in sorted(found.items()):
        added += _record(ws, index, run_id, outputs, gone)
    return added


def _stamped(uri: str, known: set[tuple[str, str, int]]) -> list[tuple[str, DeltaOutput]]:
    """(run id, output) of each commit of the table stamped with a run id, but for those in
    ``known`` (run id, table URI, version): the recorded ones."""
    from lineage_plugin.delta.history import commit_infos_after
    from lineage_plugin.delta.log import resolve
    from lineage_plugin.delta.stamps import RUN_ID_KEY, operation_metrics, stamp_of

    try:
        infos = commit_infos_after(uri, -1)
    except Exception:  # gone or unreadable now: nothing to recover from it
        return []
    found = []
    for version, info in infos:
        run_id = stamp_of(info).get(RUN_ID_KEY)  # deltalake's custom metadata or Spark's
        if not isinstance(run_id, str) or not run_id or (run_id, uri, version) in known:
            continue
        try:
            resolved = resolve(uri, version)
        except Exception:
            continue
        engine = next((e for key, e in ENGINES if key in str(info.get("engineInfo"))), "delta")
        found.append(
            (run_id, resolved.to_output(engine=engine, operation_metrics=operation_metrics(info)))
        )
    return found


def _record(
    ws: Workspace, index: LineageIndex, run_id: str, outputs: list[Any], gone: set[str]
) -> int:
    """Re-record the run with its recorded outputs and the recovered ones (0: no such run)."""
    from lineage_plugin import tags as T
    from lineage_plugin.store.index_updates import run_row

    run = ws.run(run_id)
    if run is None:  # a stamp of a run MLflow no longer has (or never had)
        return 0
    record = T.run_lineage_from_tags(run_id, run.data.tags)
    outputs = sorted(outputs, key=lambda o: (o.uri, o.version))
    record = dataclasses.replace(record, outputs=(*record.outputs, *outputs))
    row = run_row(run.info, experiment_deleted=run.info.experiment_id in gone)
    index.record_run(record, row)
    return len(outputs)
