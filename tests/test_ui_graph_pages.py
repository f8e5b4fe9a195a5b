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

import os
import xml.etree.ElementTree as ET
from urllib.parse import quote, unquote

import mlflow
import pyarrow as pa
import pytest
from deltalake import DeltaTable, write_deltalake
from helpers import read_pandas
from lineage_plugin.ui.graph_picture import RUN, TABLE_VERSION, Node, layout
from mlflow import MlflowClient
from test_graph import build_pipeline
from ui_registry import HOSTILE, HOSTILE_IMG, HOSTILE_MODEL, HOSTILE_RUN

import lineage_plugin as lp

SVG = "{http://www.w3.org/2000/svg}"


class _AnyHref:
    """Equal to any link (a node's href, where the test is about something else)."""

    def __eq__(self, other: object) -> bool:
        return isinstance(other, str)

    def __lt__(self, other: object) -> bool:
        return False

    def __gt__(self, other: object) -> bool:
        return False


ANY_HREF = _AnyHref()


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


# --- The pages, on a real pipeline -----------------------------------------------------------


@pytest.fixture
def pipeline(lineage_tracking, make_table, tmp_path, monkeypatch, lineage_flask_app):
    """``test_graph.build_pipeline``'s registry, served in-process; adds ``client`` and the
    experiment id ``exp`` of its runs."""
    from mlflow.server.constants import BACKEND_STORE_URI_ENV_VAR

    ids = build_pipeline(make_table, tmp_path)
    monkeypatch.setenv(BACKEND_STORE_URI_ENV_VAR, lineage_tracking)
    exp = mlflow.get_experiment_by_name("lineage-tests").experiment_id
    return {**ids, "exp": exp, "client": lineage_flask_app.test_client()}


def page(client, path: str) -> str:
    response = client.get(path)
    assert response.status_code == 200, response.get_data(as_text=True)[-2000:]
    return response.get_data(as_text=True)


def table_id(path: str) -> str:
    return DeltaTable(path).metadata().id


def test_version_page_draws_upstream_and_links_each_node(pipeline):
    p = pipeline
    html = page(p["client"], "/lineage/models/churn/versions/2")
    svg = svg_of(html, "version-graph")
    assert svg.get("aria-label") == "Lineage graph of churn version 2"
    raw, feats = table_id(p["raw"]), table_id(p["features"])
    assert sorted(nodes_of(svg)) == sorted(
        [
            ("node node-table-version", f"/lineage/tables/{raw}?version=1", "raw@v1"),
            ("node node-run", f"/#/experiments/{p['exp']}/runs/{p['features1']}", "run features-1"),
            ("node node-table-version", f"/lineage/tables/{feats}?version=1", "features@v1"),
            ("node node-run", f"/#/experiments/{p['exp']}/runs/{p['train1']}", "run train-1"),
            ("node node-model-version", "/lineage/models/churn/versions/2", "churn v2 (this)"),
        ]
    )
    assert len(svg.findall(f"{SVG}path")) == 4  # raw -> run -> features -> run -> model
    # Each link leads to a page that answers.
    for _, href, _ in nodes_of(svg):
        if href.startswith("/lineage/"):
            page(p["client"], href)


def test_version_page_draws_what_was_trained_downstream_of_its_run(pipeline):
    """A run downstream reads what the training run of churn v1 wrote and registers ``score``
    v1: it is on v1's picture, and on neither side of v2's."""
    p = pipeline
    scored = os.path.join(os.path.dirname(p["raw"]), "scored")
    with mlflow.start_run(run_id=p["train0"]):  # the training run writes its scores
        frame = read_pandas(DeltaTable(p["features"], version=0))
        write_deltalake(scored, pa.Table.from_pandas(frame))
    with mlflow.start_run(run_name="score") as run:
        read_pandas(DeltaTable(scored, version=0))
        MlflowClient().create_registered_model("score")
        MlflowClient().create_model_version("score", "s3://b/m", run_id=run.info.run_id)
    svg = svg_of(page(p["client"], "/lineage/models/churn/versions/1"), "version-graph")
    labels = {label for _, _, label in nodes_of(svg)}
    assert {"raw@v0", "run features-0", "features@v0", "run train-0", "churn v1 (this)"} <= labels
    assert {"scored@v0", "run score", "score v1"} <= labels
    hrefs = {label: href for _, href, label in nodes_of(svg)}
    assert hrefs["score v1"] == "/lineage/models/score/versions/1"
    assert hrefs["scored@v0"] == f"/lineage/tables/{table_id(scored)}?version=0"
    page(p["client"], hrefs["scored@v0"])
    v2 = svg_of(page(p["client"], "/lineage/models/churn/versions/2"), "version-graph")
    other = {label for _, _, label in nodes_of(v2)}
    assert "score v1" not in other and "raw@v0" not in other


def history_row(html: str, version: int) -> str:
    start = html.index(f'id="v{version}"')
    return html[start : html.index("</tr>", start)]


def test_table_page_draws_downstream_and_says_who_wrote_each_version(pipeline):
    p = pipeline
    feats, raw = table_id(p["features"]), table_id(p["raw"])
    html = page(p["client"], f"/lineage/tables/{feats}")
    svg = svg_of(html, "table-graph")
    assert svg.get("aria-label") == "Downstream lineage graph of features"
    run = f"/#/experiments/{p['exp']}/runs/"
    assert sorted(nodes_of(svg)) == sorted(
        [
            ("node node-table-version", f"/lineage/tables/{feats}?version=0", "features@v0"),
            ("node node-table-version", f"/lineage/tables/{feats}?version=1", "features@v1"),
            ("node node-run", run + p["train0"], "run train-0"),
            ("node node-run", run + p["train1"], "run train-1"),
            ("node node-model-version", "/lineage/models/churn/versions/1", "churn v1"),
            ("node node-model-version", "/lineage/models/churn/versions/2", "churn v2"),
        ]
    )
    assert len(svg.findall(f"{SVG}path")) == 4
    # Written by: the feature run that wrote each version, linked to its MLflow run page.
    assert "<th>Written by</th>" in html
    for version, writer in ((0, "features0"), (1, "features1")):
        row = history_row(html, version)
        assert f'<td class="writer"><a href="{run}{p[writer]}">features-{version}</a>' in row
    # The raw table: no run wrote it; its graph reaches through the features to the models.
    html = page(p["client"], f"/lineage/tables/{raw}?version=1")
    assert '<td class="writer"><span class="muted">-</span>' in history_row(html, 1)
    labels = [label for _, _, label in nodes_of(svg_of(html, "table-graph"))]
    assert sorted(labels) == ["churn v2", "features@v1", "raw@v1", "run features-1", "run train-1"]
    data = p["client"].get(f"/lineage/api/tables/{feats}").get_json()
    assert [v["written_by"]["run_id"] for v in data["versions"]] == [p["features1"], p["features0"]]


def test_a_table_no_run_read_has_no_graph(pipeline):
    p = pipeline
    html = page(p["client"], f"/lineage/tables/{table_id(p['raw'])}?version=0")
    assert 'id="table-graph"' in html  # raw@0 was read by features-0
    write_deltalake(p["raw"], pa.table({"id": [9], "x": [0.0], "y": [0.0]}), mode="append")
    html = page(p["client"], f"/lineage/tables/{table_id(p['raw'])}?version=2")
    assert 'id="table-graph-none"' in html and 'id="table-graph"' not in html


def test_hostile_table_paths_run_and_model_names_come_out_escaped(pipeline, tmp_path):
    p = pipeline
    table = str(tmp_path / f"raw{HOSTILE_IMG}{HOSTILE.replace('/', '')}")
    write_deltalake(table, pa.table({"id": [1, 2], "x": [0.5, 1.5]}))
    client = MlflowClient()
    client.create_registered_model(HOSTILE_MODEL)
    with mlflow.start_run(run_name=HOSTILE_RUN) as run:
        lp.log_delta_input(table)  # pyarrow cannot open files under such a directory
        client.create_model_version(HOSTILE_MODEL, "s3://b/m", run_id=run.info.run_id)
    name = os.path.basename(table)
    pages = [
        (f"/lineage/models/{quote(HOSTILE_MODEL, safe='')}/versions/1", "version-graph"),
        (f"/lineage/tables/{table_id(table)}", "table-graph"),
    ]
    for path, svg_id in pages:
        html = page(p["client"], path)
        assert "<script>alert" not in html and "<img src=x" not in html, path
        svg = svg_of(html, svg_id)  # well formed: every value escaped
        labels = {label for _, _, label in nodes_of(svg)}
        assert {f"{name}@v0", f"run {HOSTILE_RUN}"} <= labels
        hrefs = [unquote(href) for _, href, _ in nodes_of(svg)]
        assert f"/lineage/models/{HOSTILE_MODEL}/versions/1" in hrefs
        assert any(label.startswith(f"{HOSTILE_MODEL} v1") for label in labels)


class Restricted:
    """A user who may read the runs of one experiment only, and every model but ``churn``."""

    def __init__(self, experiment_id: str) -> None:
        self.experiment_id = experiment_id

    def may_read(self, name: str) -> bool:
        return name != "churn"

    def may_read_experiment(self, experiment_id: str) -> bool:
        return experiment_id == self.experiment_id


@pytest.fixture
def restricted(pipeline, lineage_flask_app):
    """The pages as a user who may read no run of the pipeline's experiment and not churn."""
    state = lineage_flask_app.extensions["lineage"]
    before = state["access"]
    other = MlflowClient().create_experiment("someone-else")
    state["access"] = Restricted(other)
    try:
        yield pipeline
    finally:
        state["access"] = before


def test_the_graph_hides_runs_and_models_the_user_may_not_read(restricted):
    p = restricted
    html = page(p["client"], f"/lineage/tables/{table_id(p['features'])}")
    svg = svg_of(html, "table-graph")
    assert sorted(nodes_of(svg)) == sorted(
        [
            ("node node-table-version", ANY_HREF, "features@v0"),
            ("node node-table-version", ANY_HREF, "features@v1"),
            ("node node-run node-unlinked", None, "hidden run"),
            ("node node-run node-unlinked", None, "hidden run"),
        ]
    )
    assert len(svg.findall(f"{SVG}path")) == 2  # each version to its (hidden) reader
    row = history_row(html, 1)
    assert "a run you may not read" in row
    for key in ("features0", "features1", "train0", "train1"):
        assert p[key] not in html
    assert "churn v" not in html
    data = p["client"].get(f"/lineage/api/tables/{table_id(p['features'])}").get_json()
    assert [v["written_by"] for v in data["versions"]] == [{"hidden": True}, {"hidden": True}]


def test_a_table_only_written_by_runs_has_a_page_with_its_writer(pipeline):
    """The training run of churn v1 writes its predictions, which no run reads: the version
    graph links the table, and its page answers (found through the index's writes)."""
    p = pipeline
    preds = os.path.join(os.path.dirname(p["raw"]), "predictions")
    with mlflow.start_run(run_id=p["train0"]):
        write_deltalake(preds, pa.table({"id": [1], "yhat": [0.5]}))
    svg = svg_of(page(p["client"], "/lineage/models/churn/versions/1"), "version-graph")
    hrefs = {label: href for _, href, label in nodes_of(svg)}
    assert hrefs["predictions@v0"] == f"/lineage/tables/{table_id(preds)}?version=0"
    html = page(p["client"], hrefs["predictions@v0"])
    run = f"/#/experiments/{p['exp']}/runs/{p['train0']}"
    assert f'<td class="writer"><a href="{run}">train-0</a>' in history_row(html, 0)
    assert 'id="table-graph-none"' in html and "No model version read it." in html
    assert page(p["client"], "/lineage/tables/predictions").count('id="v0"') == 1  # by name


@pytest.mark.slow
def test_clicking_a_graph_node_in_chromium_opens_its_page(pipeline, lineage_tracking, tmp_path):
    """A real ``mlflow server --app-name lineage`` over the pipeline's store, in Chromium: the
    version page's picture is drawn (no CSP violation), and clicking the features box, then
    the model version box on the table page, lands on their pages."""
    pytest.importorskip("playwright.sync_api")
    from browser import chromium
    from server import mlflow_server

    p = pipeline
    problems: list[str] = []
    with (
        mlflow_server(lineage_tracking, tmp_path, "--app-name", "lineage") as url,
        chromium() as browser,
    ):
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        tab = context.new_page()
        tab.on("console", lambda m: m.type == "error" and problems.append(m.text))
        tab.on("pageerror", lambda exc: problems.append(str(exc)))
        tab.goto(f"{url}/lineage/models/churn/versions/2", wait_until="load")
        graph = tab.locator("#version-graph")
        assert graph.evaluate("svg => svg.getBBox().width") > 500  # drawn, five columns
        graph.locator("a.node", has_text="features@v1").click()
        tab.wait_for_url(f"**/lineage/tables/{table_id(p['features'])}?version=1")
        assert tab.locator("#table-name").inner_text() == "features"
        assert "features-1" in tab.locator("#v1 td.writer").inner_text()
        tab.locator("#table-graph a.node", has_text="churn v2").click()
        tab.wait_for_url("**/lineage/models/churn/versions/2")
        assert tab.locator("#version-title").inner_text().startswith("churn version 2")
        context.close()
    assert problems == []
