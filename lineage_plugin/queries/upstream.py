"""``upstream MODEL VERSION``: the table versions behind a model version, back to the raw ones.

From the version's training run, the table versions it read, the runs that wrote those, the
versions those runs read, and so on (the graph in :mod:`lineage_plugin.queries.graph`). A
table version no recorded run wrote is *raw*: where the model's data came from.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from lineage_plugin.errors import LineageError
from lineage_plugin.queries.graph import Walk, run_rows
from lineage_plugin.queries.graph import upstream as walk_upstream
from lineage_plugin.queries.show import resolve
from lineage_plugin.queries.times import json_output
from lineage_plugin.queries.workspace import Workspace
from lineage_plugin.records import drop_nulls


@dataclass(frozen=True, kw_only=True)
class UpstreamReport:
    """What a model version was built from, transitively.

    Attributes:
        name: Registered model name.
        version: Its version number.
        run_id: The training run.
        runs: The runs upstream (the training run at depth 1), nearest first.
        tables: The table versions upstream, each with who read and who wrote it; ``raw``
            for those no recorded run wrote.
    """

    name: str
    version: str
    run_id: str
    runs: tuple[dict[str, Any], ...]
    tables: tuple[dict[str, Any], ...]

    def to_dict(self) -> dict[str, Any]:
        """The documented JSON of ``upstream --json``."""
        return json_output(
            drop_nulls(
                {
                    "name": self.name,
                    "version": self.version,
                    "run_id": self.run_id,
                    "runs": list(self.runs),
                    "tables": list(self.tables),
                }
            )
        )


def upstream(name: str, version: str | int, *, tracking_uri: str | None = None) -> UpstreamReport:
    """The runs and table versions upstream of a model version, back to the raw versions.

    Args:
        name: Registered model name.
        version: A version number, ``@alias``, alias or stage name.
        tracking_uri: Where MLflow is (default: MLflow's tracking URI).

    Returns:
        An :class:`UpstreamReport`; each run and table version has its ``depth`` and its
        ``path`` from the model version (model version, run, table version, run, ...).

    Raises:
        LineageError: Unknown model or version, or a version without a training run.

    Example:
        >>> [t["uri"] for t in upstream("churn", "Production").tables if t["raw"]]
    """
    ws = Workspace(tracking_uri)
    number = resolve(ws, name, str(version))
    run_id = getattr(ws.model_version(name, number), "run_id", None)
    if not run_id:
        raise LineageError(f"Model '{name}' version {number} has no training run to start from.")
    walk = Walk()
    walk.add_run(run_id, None, 1)
    with ws.require_index().begin() as conn:
        walk_upstream(conn, walk, {run_id})
        info = {r.run_id: r for r in run_rows(conn, walk.run_depth)}
    mv_hop = {"kind": "model_version", "name": name, "version": number}
    runs = []
    for rid, depth in sorted(walk.run_depth.items(), key=lambda item: (item[1], item[0])):
        row = info.get(rid)
        runs.append(
            drop_nulls(
                {
                    "run_id": rid,
                    "run_name": row.run_name if row else None,
                    "experiment_id": row.experiment_id if row else None,
                    "start_time": row.start_time if row else None,
                    "user": row.user if row else None,
                    "deleted": bool(row and row.run_deleted) or None,
                    "depth": depth,
                    "path": [mv_hop, *walk.run_path(rid)],
                }
            )
        )
    tables = [
        drop_nulls(
            {
                "uri": node[0],
                "name": walk.table_names.get(node[0]),
                "version": node[1],
                "depth": walk.table_depth[node],
                "read_by": walk.table_parent[node],
                "written_by": walk.writers.get(node),
                "raw": node not in walk.writers,
                "path": [mv_hop, *walk.table_path(node)],
            }
        )
        for node in sorted(walk.table_parent, key=lambda n: (walk.table_depth[n], n))
    ]
    return UpstreamReport(
        name=name, version=number, run_id=run_id, runs=tuple(runs), tables=tuple(tables)
    )
