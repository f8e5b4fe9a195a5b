"""A model with more versions and history than its page shows, and the index behind the pages.

The model page lists the newest versions plus those in use, draws only those, shows the newest
history rows, and links to all of it; the JSON keeps everything. The "as of" table puts the
versions Archived then in one row. The queries behind the table page and the impact of a
version read only their range of the index. (``bench_ui_pages.py`` measures the pages at
size; here the limits are made small.)
"""

from __future__ import annotations

import os
import re
import shutil
import sqlite3
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from typing import Any

import pytest
from helpers import register_reader, tracking_at
from hostile_registry import Page, rows, table_id
from lineage_plugin.ui import model_pages
from lineage_plugin.ui.picture import LEFT
from mlflow import MlflowClient

VERSIONS = 8


@pytest.fixture(scope="module")
def long_model(
    tmp_path_factory: pytest.TempPathFactory, _migrated_sqlite: Any, lineage_flask_app: Any
) -> Iterator[dict[str, Any]]:
    """Model ``long``: version k read ``sales`` at v(k-1), went to Staging, then to Production
    (archiving the one before) and took ``@champion``; version 1 also holds ``@baseline``."""
    from deltalake import write_deltalake
    from mlflow.server.constants import BACKEND_STORE_URI_ENV_VAR

    root = tmp_path_factory.mktemp("long")
    shutil.copyfile(_migrated_sqlite, root / "mlflow.db")
    uri = f"lineage+sqlite:///{root / 'mlflow.db'}"
    sales = str(root / "sales")
    write_deltalake(sales, rows(0, 3))
    marks: dict[str, int] = {}
    with tracking_at(uri):
        client = MlflowClient()
        for k in range(1, VERSIONS + 1):
            if k > 1:
                write_deltalake(sales, rows(10 * k, 3), mode="append")
            version = register_reader(sales, "long")
            client.transition_model_version_stage("long", version, "Staging")
            client.transition_model_version_stage(
                "long", version, "Production", archive_existing_versions=True
            )
            client.set_registered_model_alias("long", "champion", version)
            if k == 1:
                client.set_registered_model_alias("long", "baseline", version)
            time.sleep(0.01)
            marks[version] = int(time.time() * 1000)
            time.sleep(0.01)
    before = os.environ.get(BACKEND_STORE_URI_ENV_VAR)
    os.environ[BACKEND_STORE_URI_ENV_VAR] = uri
    try:
        yield {
            "uri": uri,
            "sales": sales,
            "client": lineage_flask_app.test_client(),
            "marks": marks,
        }
    finally:
        if before is None:
            os.environ.pop(BACKEND_STORE_URI_ENV_VAR, None)
        else:
            os.environ[BACKEND_STORE_URI_ENV_VAR] = before


@pytest.fixture
def small_pages(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(model_pages, "VERSION_ROWS", 3)
    monkeypatch.setattr(model_pages, "HISTORY_ROWS", 5)


def page(reg: dict[str, Any], path: str) -> tuple[Page, str]:
    response = reg["client"].get(path)
    assert response.status_code == 200, response.text
    return Page(response.text), response.text


def listed(p: Page) -> list[str]:
    """The versions in the page's versions table, in order."""
    return [row[0].split()[0] for row in p.rows["versions"]]


def drawn(html: str) -> list[tuple[str, float]]:
    """(version, x) of every bar in the history picture."""
    svg = html.split('id="history-picture"', 1)[1].split("</svg>", 1)[0]
    return [
        (v, float(x))
        for v, x in re.findall(r'/versions/(\d+)">\s*<rect class="span" x="([\d.]+)"', svg)
    ]


def link(p: Page, text: str) -> str:
    """The href of the link whose id is ``text``."""
    return next(a["href"] or "" for tag, a in p.tags if tag == "a" and a.get("id") == text)


def test_the_page_lists_the_newest_versions_and_those_in_use(long_model, small_pages):
    p, _ = page(long_model, "/lineage/models/long")
    assert listed(p) == ["v8", "v7", "v6", "v1"]  # v1 holds @baseline
    assert "The newest 3 versions and those in use are listed" in p.text
    assert "Show all (4 more)" in p.text
    everything, _ = page(long_model, link(p, "versions-all"))
    assert listed(everything) == [f"v{k}" for k in range(VERSIONS, 0, -1)]
    assert "Show all (" not in " ".join(c for row in everything.rows["versions"] for c in row)
    # The JSON keeps every version and every event.
    data = long_model["client"].get("/lineage/api/models/long").get_json()
    assert [v["version"] for v in data["versions"]] == [str(k) for k in range(VERSIONS, 0, -1)]
    assert len(data["history"]) == len(p.rows["history"]) + int(
        re.search(r"Show all \((\d+) older\)", p.text).group(1)
    )


def test_the_history_shows_its_newest_rows_and_links_to_all(long_model, small_pages):
    p, _ = page(long_model, "/lineage/models/long")
    data = long_model["client"].get("/lineage/api/models/long").get_json()
    assert len(p.rows["history"]) == 5
    assert f"Show all ({len(data['history']) - 5} older)" in p.text
    newest = [row[0] for row in p.rows["history"]]
    assert newest == sorted(newest, reverse=True)
    full, _ = page(long_model, link(p, "history-all"))
    assert len(full.rows["history"]) == len(data["history"])
    assert len(full.rows["versions"]) == 4  # the versions table keeps its own limit
    both, _ = page(long_model, "/lineage/models/long?versions=all")
    assert "versions=all" in link(both, "history-all")


def test_the_picture_draws_the_versions_listed_from_the_oldest_of_the_newest(
    long_model, small_pages
):
    _, html = page(long_model, "/lineage/models/long")
    bars = drawn(html)
    assert {v for v, _ in bars} == {"8", "7", "6", "1"}
    # v1 took @baseline before v6 was registered: its bar starts at the picture's left edge.
    assert min(x for v, x in bars if v == "1") == LEFT
    assert min(x for v, x in bars if v == "6") > LEFT
    _, html = page(long_model, "/lineage/models/long?versions=all")
    assert {v for v, _ in drawn(html)} == {str(k) for k in range(1, VERSIONS + 1)}


def test_the_registry_as_of_puts_the_archived_versions_in_one_row(long_model, small_pages):
    at = datetime.fromtimestamp(long_model["marks"]["4"] / 1000, tz=timezone.utc)
    query = f"at={at.strftime('%Y-%m-%dT%H:%M:%S.%f')[:-3]}"
    p, _ = page(long_model, f"/lineage/models/long?{query}")
    held = {row[0]: row[1:] for row in p.rows["held-at"]}
    assert set(held) == {"@baseline", "@champion", "Production", "Archived"}
    assert held["@champion"][0] == "v4" and "sales v3" in held["@champion"][1]
    assert held["@baseline"][0] == "v1" and "sales v0" in held["@baseline"][1]
    assert re.fullmatch(r"v1 ?, v2 ?, v3", held["Archived"][0]) and held["Archived"][1] == (
        "not in use"
    )
    # The JSON lists each Archived version with its data.
    data = long_model["client"].get(f"/lineage/api/models/long?{query}").get_json()
    archived = [h for h in data["held_at"] if h["label"] == "Archived"]
    assert [h["version"] for h in archived] == ["1", "2", "3"]
    assert all(h["tables"][0]["name"] == "sales" for h in archived)


def test_the_events_read_for_the_picture_are_the_indexed_events(long_model):
    from lineage_plugin.queries.history import model_events
    from lineage_plugin.queries.workspace import Workspace

    ws = Workspace(long_model["uri"])
    events = model_events(ws, "long")
    marks = model_pages.event_marks(ws, "long")
    assert [tuple(m) for m in marks] == [
        (e.event_id, e.kind, e.version, e.time, e.stage, e.alias) for e in events
    ]
    some = [events[1].event_id, events[-1].event_id]
    assert model_events(ws, "long", ids=some) == [events[1], events[-1]]


# ------------------------------------------------------------------ the queries use the index


def plans(uri: str, action: Callable[[], object]) -> list[tuple[str, str]]:
    """(statement, SQLite's query plan) of each statement on ``lineage_reads`` the action ran."""
    from sqlalchemy import event

    from lineage_plugin.store.index import LineageIndex, index_url

    engine = LineageIndex(index_url(uri)).engine  # the engine the queries share
    seen: list[tuple[str, Any]] = []

    def record(conn, cursor, statement, parameters, context, executemany):  # noqa: ARG001
        if "lineage_reads" in statement and statement.lstrip().upper().startswith("SELECT"):
            seen.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", record)
    try:
        action()
    finally:
        event.remove(engine, "before_cursor_execute", record)
    con = sqlite3.connect(engine.url.database)
    try:
        return [
            (s, " / ".join(r[-1] for r in con.execute(f"EXPLAIN QUERY PLAN {s}", p)))
            for s, p in seen
        ]
    finally:
        con.close()


def test_the_impact_of_a_version_reads_only_the_versions_from_it(long_model):
    from lineage_plugin.queries.impact import impact

    report = None

    def ask() -> None:
        nonlocal report
        report = impact(long_model["sales"], from_version=5, tracking_uri=long_model["uri"])

    found = [plan for s, plan in plans(long_model["uri"], ask) if "coalesce" in s.lower()]
    assert found and all(
        "lineage_reads_table_version (table_uri=? AND version>?)" in plan for plan in found
    ), found
    assert sorted(m["version"] for m in report.model_versions) == ["6", "7", "8"]


def test_a_table_page_finds_its_table_by_id_through_the_index(long_model):
    ref = table_id(long_model["sales"])
    found = [
        plan
        for s, plan in plans(
            long_model["uri"], lambda: long_model["client"].get(f"/lineage/tables/{ref}")
        )
        if "table_id = ?" in s
    ]
    assert found and all("lineage_reads_table_id (table_id=?)" in plan for plan in found), found
