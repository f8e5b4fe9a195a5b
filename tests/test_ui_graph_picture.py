"""The lineage graph picture's layout: columns by depth, no overlaps, the node cap."""

from __future__ import annotations

import itertools

from lineage_plugin.ui.graph_picture import (
    MODEL_VERSION,
    RUN,
    TABLE_VERSION,
    Node,
    layout,
)

RAW = Node("t:/raw@0", TABLE_VERSION, "/raw v0", "/lineage/tables?path=/raw")
A = Node("r:a", RUN, "run a", "/#/experiments/1/runs/a")
FEAT = Node("t:/feat@1", TABLE_VERSION, "/feat v1", "/lineage/tables?path=/feat")
B = Node("r:b", RUN, "run b", "/#/experiments/1/runs/b")
MV = Node("m:m/1", MODEL_VERSION, "m v1", "/lineage/models/m/versions/1")
EDGES = [(RAW.key, A.key), (A.key, FEAT.key), (FEAT.key, B.key), (B.key, MV.key)]


def test_pipeline_lays_out_left_to_right_in_columns() -> None:
    pic = layout([MV, B, FEAT, A, RAW], EDGES)
    columns = {box.node.key: box.column for box in pic.boxes}
    assert columns == {RAW.key: 0, A.key: 1, FEAT.key: 2, B.key: 3, MV.key: 4}
    xs = [box.x for box in sorted(pic.boxes, key=lambda b: b.column)]
    assert xs == sorted(xs) and len(set(xs)) == 5
    assert len(pic.lines) == 4
    assert all(line.x1 < line.x2 for line in pic.lines)
    assert pic.more == 0
    assert all(box.x + box.width <= pic.width for box in pic.boxes)


def test_same_column_nodes_do_not_overlap_and_order_is_deterministic() -> None:
    raws = [Node(f"t:/raw{i}@0", TABLE_VERSION, f"/raw{i} v0", None) for i in range(5)]
    edges = [(r.key, A.key) for r in raws]
    first = layout(raws + [A], edges)
    second = layout(list(reversed(raws + [A])), list(reversed(edges)))
    assert [(b.node.key, b.x, b.y) for b in first.boxes] == [
        (b.node.key, b.x, b.y) for b in second.boxes
    ]
    column0 = sorted((b for b in first.boxes if b.column == 0), key=lambda b: b.y)
    assert len(column0) == 5
    for upper, lower in itertools.pairwise(column0):
        assert upper.y + upper.height < lower.y
    assert all(b.y + b.height <= first.height for b in first.boxes)


def test_cap_counts_the_rest_and_drops_their_edges() -> None:
    raws = [Node(f"t:/raw{i:02d}@0", TABLE_VERSION, f"raw{i:02d}", None) for i in range(70)]
    pic = layout(raws + [A], [(r.key, A.key) for r in raws], max_nodes=60)
    assert len(pic.boxes) == 60
    assert pic.more == 11
    kept = {b.node.key for b in pic.boxes}
    assert A.key not in kept  # the run is in the second column, after all 70 sources
    assert pic.lines == []


def test_long_labels_are_cut_and_unknown_edges_dropped() -> None:
    long = Node("t:/x@1", TABLE_VERSION, "/a/very/long/path/" * 10, None)
    pic = layout([long], [(long.key, "nowhere"), (long.key, long.key)])
    assert len(pic.boxes[0].text) < len(long.label)
    assert pic.boxes[0].text.endswith("\u2026")
    assert pic.lines == []


def test_cycle_does_not_hang() -> None:
    pic = layout([A, B], [(A.key, B.key), (B.key, A.key)])
    assert len(pic.boxes) == 2
