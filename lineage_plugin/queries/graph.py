"""The lineage graph in the index: table version -> run (read), run -> table version (written).

Walked breadth first, one SQL query per hop level (the frontier's runs in one ``IN``), each
node kept once (its shortest path from where the walk started), so cycles (a run that reads
what it wrote, or what a run downstream of it wrote) terminate. A read joins the write that
created the version it read (``reads.version = writes.version``, on the index's
``(table_uri, version)`` indexes).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

#: Bound parameters per ``IN`` list (SQLite allows 32766 since 3.32; older ones 999).
CHUNK = 900

TableVersion = tuple[str, int]


@dataclass
class Walk:
    """What a walk reached.

    Attributes:
        run_depth: Run id -> its depth (1: next to the start).
        run_parent: Run id -> the table version it was reached through (none for a start).
        table_parent: Table version -> the run it was reached through (``None``: a start).
        table_names: Table URI -> its name, as the index has it.
        table_depth: Table version -> depth of the run it was reached through (0: a start).
        writers: Table version -> the recorded run that wrote it (for those reached).
        paths: Run id -> its path, once built (:meth:`run_path`).
    """

    run_depth: dict[str, int] = field(default_factory=dict)
    run_parent: dict[str, TableVersion] = field(default_factory=dict)
    table_parent: dict[TableVersion, str | None] = field(default_factory=dict)
    table_names: dict[str, str | None] = field(default_factory=dict)
    table_depth: dict[TableVersion, int] = field(default_factory=dict)
    writers: dict[TableVersion, str] = field(default_factory=dict)
    paths: dict[str, list[dict[str, Any]]] = field(default_factory=dict, repr=False)

    def add_table(self, node: TableVersion, name: str | None, via: str | None, depth: int) -> bool:
        """Record a table version; ``False`` when it was reached before."""
        if node in self.table_parent:
            return False
        self.table_parent[node] = via
        self.table_depth[node] = depth
        if name is not None or node[0] not in self.table_names:
            self.table_names[node[0]] = name
        return True

    def add_run(self, run_id: str, via: TableVersion | None, depth: int) -> bool:
        """Record a run (``via`` ``None``: a start); ``False`` when it was reached before."""
        if run_id in self.run_depth:
            return False
        self.run_depth[run_id] = depth
        if via is not None:
            self.run_parent[run_id] = via
        return True

    def table_hop(self, node: TableVersion) -> dict[str, Any]:
        """A table version as a hop of a path."""
        name = self.table_names.get(node[0])
        hop = {"kind": "table_version", "uri": node[0], "version": node[1]}
        return {**hop, "name": name} if name is not None else hop

    def run_path(self, run_id: str) -> list[dict[str, Any]]:
        """The hops from the start to ``run_id``: table version, run, table version, ..., run.

        Built from the path of the run it was reached through (kept: each path once).
        """
        known = self.paths.get(run_id)
        if known is not None:
            return known
        node = self.run_parent.get(run_id)
        via = self.table_parent.get(node) if node is not None else None
        before = self.run_path(via) if via is not None else []
        middle = [self.table_hop(node)] if node is not None else []
        path = [*before, *middle, {"kind": "run", "run_id": run_id}]
        self.paths[run_id] = path
        return path

    def table_path(self, node: TableVersion) -> list[dict[str, Any]]:
        """The hops from the start to a table version reached."""
        via = self.table_parent.get(node)
        return [*(self.run_path(via) if via is not None else []), self.table_hop(node)]


def chunks(values: Iterable[Any], size: int = CHUNK) -> Iterator[list[Any]]:
    """``values`` in lists of at most ``size`` (bound parameters of one ``IN``)."""
    batch: list[Any] = []
    for value in values:
        batch.append(value)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


@functools.cache
def _hop_query(forward: bool) -> Any:
    """One hop level as one statement (built once; SQLAlchemy caches its compiled form).

    Forward: the writes of the runs in ``:runs`` joined to the reads of the versions they
    created (``next``: a reader). Back: the reads of those runs joined to the writes that
    created the versions read (``next``: the writer). An outer join: a version with no next
    run is still reached.
    """
    from sqlalchemy import and_, bindparam, select

    from lineage_plugin.store.index_schema import tables

    t = tables()
    here, there = (t["writes"], t["reads"]) if forward else (t["reads"], t["writes"])
    on = and_(there.c.table_uri == here.c.table_uri, there.c.version == here.c.version)
    return (
        select(
            here.c.run_id,
            here.c.table_uri,
            here.c.table_name,
            here.c.version,
            there.c.run_id.label("next"),
        )
        .select_from(here.outerjoin(there, on))
        .where(here.c.run_id.in_(bindparam("runs", expanding=True)))
    )


def _follow(conn: Any, walk: Walk, frontier: set[str], *, forward: bool) -> Walk:
    query = _hop_query(forward)
    while frontier:
        found: set[str] = set()
        for batch in chunks(sorted(frontier)):
            for run_id, uri, name, version, following in conn.execute(query, {"runs": batch}):
                depth = walk.run_depth[run_id]
                node = (uri, int(version))
                walk.add_table(node, name, run_id, depth)
                writer = run_id if forward else following
                if writer is not None:
                    walk.writers.setdefault(node, writer)
                if following is not None and walk.add_run(following, node, depth + 1):
                    found.add(following)
        frontier = found
    return walk


def downstream(conn: Any, walk: Walk, frontier: set[str]) -> Walk:
    """Follow ``walk`` from the runs in ``frontier`` (already in it): the table versions they
    wrote, the runs that read those, and so on until nothing new is reached."""
    return _follow(conn, walk, frontier, forward=True)


def upstream(conn: Any, walk: Walk, frontier: set[str]) -> Walk:
    """Follow ``walk`` back from the runs in ``frontier``: the table versions they read, the
    runs that wrote those, and so on. A table version no recorded run wrote is a source."""
    return _follow(conn, walk, frontier, forward=False)


def run_columns() -> tuple[Any, ...]:
    """What a graph answer says of a run and its model versions (beside ``run_id``), from the
    index's runs outer-joined to its model versions."""
    from lineage_plugin.store.index_schema import tables

    t = tables()
    runs, mvs = t["runs"], t["model_versions"]
    return (
        runs.c.run_name,
        runs.c.experiment_id,
        runs.c.start_time,
        runs.c.user,
        runs.c.deleted.label("run_deleted"),
        mvs.c.name,
        mvs.c.version.label("mv_version"),
        mvs.c.created,
        mvs.c.deleted,
    )


@functools.cache
def _run_rows_query() -> Any:
    from sqlalchemy import bindparam, select

    from lineage_plugin.store.index_schema import tables

    t = tables()
    runs, mvs = t["runs"], t["model_versions"]
    return (
        select(runs.c.run_id, *run_columns())
        .outerjoin(mvs, mvs.c.run_id == runs.c.run_id)
        .where(runs.c.run_id.in_(bindparam("runs", expanding=True)))
    )


def run_rows(conn: Any, run_ids: Iterable[str]) -> list[Any]:
    """The index's runs with their model versions (one row per model version, or one)."""
    found: list[Any] = []
    for batch in chunks(sorted(set(run_ids))):
        found += conn.execute(_run_rows_query(), {"runs": batch}).all()
    return found


def holdings_of(conn: Any, names: Iterable[str]) -> dict[tuple[str, int], list[tuple[str, str]]]:
    """(model, version) -> its (kind, label) holdings: stages and aliases."""
    from sqlalchemy import select

    from lineage_plugin.store.index_schema import tables

    holdings = tables()["holdings"]
    held: dict[tuple[str, int], list[tuple[str, str]]] = {}
    for batch in chunks(sorted(set(names))):
        for h in conn.execute(select(holdings).where(holdings.c.name.in_(batch))):
            held.setdefault((h.name, h.version), []).append((h.kind, h.label))
    return held
