"""Which recorded run wrote each version of a table (the table page's "written by" column).

From the lineage index's writes (one row per commit a run made), joined to its runs for their
names and experiments; a run of an experiment the user may not read is only ``hidden``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lineage_plugin.ui import visible

from lineage_plugin.records import drop_nulls

if TYPE_CHECKING:
    from lineage_plugin.ui.access import ModelAccess


def written_by(
    conn: Any, uri: str, low: int, high: int, access: ModelAccess
) -> dict[int, dict[str, Any]]:
    """Per version of ``uri`` in ``[low, high]`` that a recorded run wrote: that run.

    Args:
        conn: A connection to the lineage index.
        uri: The table's recorded URI.
        low: First version (inclusive).
        high: Last version (inclusive).
        access: What the user may read.

    Returns:
        Version -> ``run_id``, ``run_name``, ``experiment_id`` and ``deleted`` of the run that
        wrote it, or ``{"hidden": True}`` for a run the user may not read. Versions no recorded
        run wrote are absent.
    """
    from sqlalchemy import select

    from lineage_plugin.store.index_schema import tables

    t = tables()
    writes, runs = t["writes"], t["runs"]
    rows = conn.execute(
        select(
            writes.c.version,
            writes.c.run_id,
            runs.c.run_name,
            runs.c.experiment_id,
            runs.c.deleted,
        )
        .outerjoin(runs, runs.c.run_id == writes.c.run_id)
        .where(writes.c.table_uri == uri, writes.c.version.between(low, high))
        .order_by(writes.c.version, writes.c.run_id)
    ).all()
    found: dict[int, dict[str, Any]] = {}
    for r in rows:
        if int(r.version) in found:  # one commit, one writer: keep the first if ever two
            continue
        if not visible.run_visible({"experiment_id": r.experiment_id}, access):
            found[int(r.version)] = {"hidden": True}
            continue
        found[int(r.version)] = drop_nulls(
            {
                "run_id": r.run_id,
                "run_name": r.run_name,
                "experiment_id": r.experiment_id,
                "deleted": bool(r.deleted) or None,
            }
        )
    return found
