"""The lineage graph of a page, as nodes and edges for :func:`graph_picture.layout`.

A model version's page draws its upstream (its training run, the table versions that read, the
runs that wrote those, back to the raw versions) and its downstream (the table versions its run
wrote, the runs that read them, their model versions). A table's page draws what is downstream
of its reads. Both walk the index's graph (:mod:`lineage_plugin.queries.graph`, one query per
hop level) in one transaction, plus one query for the runs and their model versions and one for
the tables' ids (their pages' addresses).

What the user may not read stays out: a run of an experiment they may not read is an anonymous
box without a link (the path through it stays, as ``impact``'s paths keep a hidden hop), a
version of a model they may not read is left out. Links need a request (``url_for``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from lineage_plugin.ui import visible
from lineage_plugin.ui.graph_picture import (
    MODEL_VERSION,
    RUN,
    TABLE_VERSION,
    GraphPicture,
    Node,
    layout,
)

from lineage_plugin.queries.graph import TableVersion, Walk, chunks, downstream, run_rows, upstream

if TYPE_CHECKING:
    from lineage_plugin.ui.access import ModelAccess

    from lineage_plugin.queries.workspace import Workspace

#: The label of a run the user may not read.
HIDDEN_RUN = "hidden run"


@dataclass
class EdgeWalk(Walk):
    """A :class:`Walk` that keeps every edge it sees, not only the first path to each node.

    Attributes:
        forward: Walking downstream (reads after writes) rather than upstream.
        edges: ``(from, to)`` node keys: table version -> run that read it, run -> table
            version it wrote.
    """

    forward: bool = False
    edges: set[tuple[str, str]] = field(default_factory=set)

    def add_table(self, node: TableVersion, name: str | None, via: str | None, depth: int) -> bool:
        """Record a table version and the edge from ``via`` (which wrote it walking forward,
        read it walking back)."""
        if via is not None:
            pair = (run_key(via), table_key(node))
            self.edges.add(pair if self.forward else pair[::-1])
        return super().add_table(node, name, via, depth)

    def add_run(self, run_id: str, via: TableVersion | None, depth: int) -> bool:
        """Record a run and the edge from ``via`` (which it read walking forward, wrote
        walking back)."""
        if via is not None:
            pair = (table_key(via), run_key(run_id))
            self.edges.add(pair if self.forward else pair[::-1])
        return super().add_run(run_id, via, depth)


def table_key(node: TableVersion) -> str:
    """The graph key of a table version."""
    return f"table:{node[0]}@{node[1]}"


def run_key(run_id: str) -> str:
    """The graph key of a run."""
    return f"run:{run_id}"


def model_key(name: str, version: Any) -> str:
    """The graph key of a model version."""
    return f"model:{name}/{version}"


def table_refs(conn: Any, uris: Iterable[str]) -> dict[str, str]:
    """Table URI -> how its page is addressed (its Delta table id, else its name), from the
    reads and writes the index has (one query per batch of URIs)."""
    from sqlalchemy import select, union

    from lineage_plugin.store.index_schema import tables

    t = tables()
    found: dict[str, str] = {}
    for batch in chunks(sorted(set(uris))):
        parts = [
            select(x.c.table_uri, x.c.table_id, x.c.table_name).where(x.c.table_uri.in_(batch))
            for x in (t["reads"], t["writes"])
        ]
        for uri, table_id, name in conn.execute(union(*parts)):
            if table_id or uri not in found:
                found[uri] = table_id or name or found.get(uri, "")
    return found


@dataclass
class _Parts:
    """What the walks reached, before it becomes nodes."""

    walks: list[EdgeWalk]
    runs: dict[str, Any]  # run id -> its index row (the first, for its model versions)
    model_versions: list[Any]  # index rows with a model version, of the runs that count
    refs: dict[str, str]


def _gather(conn: Any, walks: list[EdgeWalk], model_runs: set[str] | None) -> _Parts:
    reached = {rid for w in walks for rid in w.run_depth}
    rows = run_rows(conn, reached)
    runs: dict[str, Any] = {}
    mvs = []
    for r in rows:
        runs.setdefault(r.run_id, r)
        if r.name is not None and not r.deleted and (model_runs is None or r.run_id in model_runs):
            mvs.append(r)
    uris = {node[0] for w in walks for node in w.table_parent}
    return _Parts(walks, runs, mvs, table_refs(conn, uris))


def _picture(parts: _Parts, access: ModelAccess, start: str | None = None) -> GraphPicture:
    """Nodes with their links (hidden runs anonymous, unreadable models left out), laid out."""
    from lineage_plugin.ui.filters import link
    from lineage_plugin.ui.routes import stock_url

    nodes: list[Node] = []
    edges: set[tuple[str, str]] = set()
    for walk in parts.walks:
        edges |= walk.edges
        for node in walk.table_parent:
            name = walk.table_names.get(node[0]) or node[0]
            ref = parts.refs.get(node[0])
            href = link("lineage.table", ref=ref, version=node[1]) if ref else None
            nodes.append(Node(table_key(node), TABLE_VERSION, f"{name}@v{node[1]}", href))
        for run_id in walk.run_depth:
            row = parts.runs.get(run_id)
            experiment = getattr(row, "experiment_id", None)
            if row is not None and not visible.run_visible({"experiment_id": experiment}, access):
                nodes.append(Node(run_key(run_id), RUN, HIDDEN_RUN, None))
                continue
            label = (row.run_name if row is not None else None) or run_id[:8]
            linked = row is not None and experiment and not row.run_deleted
            href = stock_url("experiments", experiment, "runs", run_id) if linked else None
            nodes.append(Node(run_key(run_id), RUN, f"run {label}", href))
    for mv in parts.model_versions:
        if not access.may_read(mv.name):
            continue
        key = model_key(mv.name, mv.mv_version)
        href = link("lineage.version", name=mv.name, version=str(mv.mv_version))
        label = f"{mv.name} v{mv.mv_version}" + (" (this)" if key == start else "")
        nodes.append(Node(key, MODEL_VERSION, label, href))
        edges.add((run_key(mv.run_id), key))
    return layout(nodes, edges)


def version_graph(
    ws: Workspace, name: str, version: str, run_id: str | None, access: ModelAccess
) -> GraphPicture | None:
    """The graph around a model version: upstream of its training run, back to the raw table
    versions, and downstream of what that run wrote, on to the model versions trained on it.

    Args:
        ws: The server's stores.
        name: Registered model name.
        version: Its version number.
        run_id: Its training run (``None``: no graph).
        access: What the user may read.

    Returns:
        The laid-out picture, or ``None`` when the version has no run.
    """
    if not run_id:
        return None
    back, ahead = EdgeWalk(forward=False), EdgeWalk(forward=True)
    back.add_run(run_id, None, 1)
    ahead.add_run(run_id, None, 1)
    with ws.require_index().begin() as conn:
        upstream(conn, back, {run_id})
        downstream(conn, ahead, {run_id})
        # Model versions of the training run and of the runs downstream, not of those upstream.
        parts = _gather(conn, [back, ahead], set(ahead.run_depth))
    return _picture(parts, access, start=model_key(name, version))


def table_graph(
    ws: Workspace, uri: str, versions: tuple[int, int], access: ModelAccess
) -> GraphPicture:
    """What is downstream of a table's versions ``low..high`` (inclusive): the runs that read
    them, what those wrote, the runs that read that, and their model versions.

    Args:
        ws: The server's stores.
        uri: The table's recorded URI.
        versions: ``(low, high)``, the versions whose reads start the walk.
        access: What the user may read.

    Returns:
        The laid-out picture (no boxes when no run read those versions).
    """
    from sqlalchemy import select

    from lineage_plugin.store.index_schema import tables

    reads = tables()["reads"]
    low, high = versions
    walk = EdgeWalk(forward=True)
    with ws.require_index().begin() as conn:
        found = conn.execute(
            select(reads.c.run_id, reads.c.table_name, reads.c.version)
            .where(reads.c.table_uri == uri, reads.c.version.between(low, high))
            .distinct()
        ).all()
        for r in found:
            walk.add_table((uri, int(r.version)), r.table_name, None, 0)
            walk.add_run(r.run_id, (uri, int(r.version)), 1)
        downstream(conn, walk, {r.run_id for r in found})
        parts = _gather(conn, [walk], None)
    return _picture(parts, access)
