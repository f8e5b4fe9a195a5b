"""The lineage graph as a picture on the pages (issue 15, point 6): the SVG partial, the model
version page's upstream and downstream graph, the table page's downstream graph and its
"written by" column.

Data from a real 2-stage pipeline (``test_graph.build_pipeline``): feature runs read the raw
Delta table and write ``features`` (deltalake, captured under a ``lineage+sqlite:`` URI), training
runs read ``features`` and register ``churn``. The pages are served in-process by MLflow's Flask
app with the lineage pages (``lineage_flask_app``), and once by a real ``mlflow server`` clicked
through in Chromium.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from lineage_plugin.ui.graph_picture import RUN, TABLE_VERSION, Node, layout

SVG = "{http://www.w3.org/2000/svg}"


def svg_of(html: str, svg_id: str) -> ET.Element:
    """The ``<svg id=svg_id>`` element of a page, parsed as XML (it must be well formed)."""
    start = html.index(f'<svg id="{svg_id}"')
    end = html.index("</svg>", start) + len("</svg>")
    return ET.fromstring(html[start:end])


def nodes_of(svg: ET.Element) -> list[tuple[str, str | None, str]]:
    """Each drawn node as (class, href or None, full label from its title)."""
    found = []
    for el in svg:
        if el.tag in (f"{SVG}a", f"{SVG}g") and "node" in el.get("class", "").split():
            title = el.find(f"{SVG}rect/{SVG}title")
            text = title.text if title is not None else ""
            found.append((el.get("class", ""), el.get("href"), text))
    return found


def render_partial(app, picture, label: str) -> str:
    from flask import render_template_string

    with app.test_request_context():
        return render_template_string(
            '{% include "lineage/graph.html" %}', graph=picture, graph_id="g", graph_label=label
        )


def test_the_partial_draws_linked_boxes_edges_and_escapes_labels(lineage_flask_app):
    evil = '<script>alert(1)</script>"&'
    table = Node("t", TABLE_VERSION, f"{evil}@v0", "/lineage/tables/x?version=0")
    run = Node("r", RUN, "hidden run", None)
    html = render_partial(lineage_flask_app, layout([table, run], [("t", "r")]), f"Graph {evil}")
    assert "<script>" not in html and "&lt;script&gt;" in html
    svg = svg_of(html, "g")
    assert svg.get("role") == "img" and svg.get("aria-label") == f"Graph {evil}"
    assert svg.find(f"{SVG}title").text == f"Graph {evil}"
    assert nodes_of(svg) == [
        ("node node-table-version", "/lineage/tables/x?version=0", f"{evil}@v0"),
        ("node node-run node-unlinked", None, "hidden run"),
    ]
    [edge] = svg.findall(f"{SVG}path")
    assert edge.get("class") == "edge" and edge.get("d").startswith("M 180")
    assert "style=" not in html and "graph-more" not in html


def test_the_partial_says_how_many_nodes_the_cap_left_out(lineage_flask_app):
    many = [Node(f"t{i:02d}", TABLE_VERSION, f"t{i:02d}", None) for i in range(65)]
    html = render_partial(lineage_flask_app, layout(many, []), "many")
    assert len(nodes_of(svg_of(html, "g"))) == 60
    assert "+5 more not drawn" in html
    assert render_partial(lineage_flask_app, layout([], []), "none").strip() == ""
