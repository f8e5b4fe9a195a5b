"""A small lineage DAG as a picture: layered columns from raw table versions on the left,
through the runs that read and wrote them, to model versions on the right.

Only geometry is computed here (as in ``picture.py``); a template draws it as SVG with no
script and no inline style. Nodes are capped; what is left out is counted for a "+N more" note.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

TABLE_VERSION = "table-version"
RUN = "run"
MODEL_VERSION = "model-version"
KINDS = (TABLE_VERSION, RUN, MODEL_VERSION)

MAX_NODES = 60
COLUMN_WIDTH = 200
NODE_WIDTH = 170
NODE_HEIGHT = 28
ROW_GAP = 12
MARGIN = 10
CHAR_WIDTH = 6.2  # px per character of an 11 px label, about: longer labels are cut


@dataclass(frozen=True)
class Node:
    """One vertex of the graph before layout.

    Attributes:
        key: Unique identity (e.g. ``"table:/p@3"``).
        kind: One of :data:`KINDS`.
        label: Text shown (cut to fit; the full text is the title).
        href: Where the node links, or ``None`` for a hidden node.
    """

    key: str
    kind: str
    label: str
    href: str | None


@dataclass
class Box:
    """A node placed in the picture."""

    node: Node
    column: int
    x: float
    y: float
    width: float
    height: float
    text: str


@dataclass
class Line:
    """An edge between two placed boxes (from the right side of one to the left of the other)."""

    x1: float
    y1: float
    x2: float
    y2: float


@dataclass
class GraphPicture:
    """Everything the template draws."""

    width: int
    height: int
    boxes: list[Box] = field(default_factory=list)
    lines: list[Line] = field(default_factory=list)
    more: int = 0  # nodes left out by the cap


def _depths(keys: Sequence[str], edges: Iterable[tuple[str, str]]) -> dict[str, int]:
    """Longest-path depth of each node from the sources (cycles are broken by ignoring
    edges back to a node still being visited)."""
    preds: dict[str, list[str]] = {k: [] for k in keys}
    for a, b in edges:
        if a in preds and b in preds and a != b:
            preds[b].append(a)
    depth: dict[str, int] = {}
    visiting: set[str] = set()

    def visit(key: str) -> int:
        if key in depth:
            return depth[key]
        visiting.add(key)
        best = 0
        for p in sorted(preds[key]):
            if p not in visiting:
                best = max(best, visit(p) + 1)
        visiting.discard(key)
        depth[key] = best
        return best

    for key in keys:
        visit(key)
    return depth


def _cut(label: str, width: float) -> str:
    room = max(int((width - 10) / CHAR_WIDTH), 4)
    return label if len(label) <= room else label[: room - 1] + "\u2026"


def layout(
    nodes: Iterable[Node],
    edges: Iterable[tuple[str, str]],
    max_nodes: int = MAX_NODES,
) -> GraphPicture:
    """Lay a DAG out in columns by longest path from its sources.

    Args:
        nodes: The vertices; duplicates by ``key`` keep the first.
        edges: ``(from_key, to_key)`` pairs; edges to unknown or cut nodes are dropped.
        max_nodes: At most this many nodes are drawn (kept in column, then kind, label, key
            order); the rest are counted in ``more``.

    Returns:
        The placed boxes and lines; same input gives the same picture.
    """
    unique: dict[str, Node] = {}
    for node in nodes:
        unique.setdefault(node.key, node)
    edge_list = sorted({(a, b) for a, b in edges if a in unique and b in unique and a != b})
    keys = sorted(unique)
    depth = _depths(keys, edge_list)
    order = sorted(
        keys,
        key=lambda k: (
            depth[k],
            KINDS.index(unique[k].kind) if unique[k].kind in KINDS else 9,
            unique[k].label,
            k,
        ),
    )
    kept = order[: max(max_nodes, 0)]
    picture = GraphPicture(width=0, height=0, more=len(order) - len(kept))
    columns = sorted({depth[k] for k in kept})
    column_of = {d: i for i, d in enumerate(columns)}
    rows: dict[int, int] = {}
    placed: dict[str, Box] = {}
    for key in kept:
        col = column_of[depth[key]]
        row = rows.get(col, 0)
        rows[col] = row + 1
        box = Box(
            node=unique[key],
            column=col,
            x=MARGIN + col * COLUMN_WIDTH,
            y=MARGIN + row * (NODE_HEIGHT + ROW_GAP),
            width=NODE_WIDTH,
            height=NODE_HEIGHT,
            text=_cut(unique[key].label, NODE_WIDTH),
        )
        placed[key] = box
        picture.boxes.append(box)
    for a, b in edge_list:
        if a in placed and b in placed:
            pa, pb = placed[a], placed[b]
            picture.lines.append(
                Line(pa.x + pa.width, pa.y + pa.height / 2, pb.x, pb.y + pb.height / 2)
            )
    picture.width = int(2 * MARGIN + max(len(columns) - 1, 0) * COLUMN_WIDTH + NODE_WIDTH)
    tallest = max(rows.values(), default=0)
    picture.height = int(2 * MARGIN + max(tallest * (NODE_HEIGHT + ROW_GAP) - ROW_GAP, 0))
    return picture
