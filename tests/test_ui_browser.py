"""The lineage pages in a real headless Chromium, clicked through as a registry reviewer would.

One ``mlflow server --app-name lineage`` (uvicorn, the ASGI app) serves the registry of
``tests/ui_registry.py`` for the module; one more under gunicorn (the Flask app) for the last
test. Every lineage page visited must raise no dialog, log no console error (a CSP violation is
one) and contain no element injected by the hostile values; a full-page screenshot of each is
saved under ``test-output/screenshots/``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from browser import chromium
from server import mlflow_server
from ui_registry import (
    HOSTILE,
    HOSTILE_IMG,
    HOSTILE_MODEL,
    HOSTILE_RUN,
    HOSTILE_USER,
    Registry,
    build_registry,
)

pytestmark = pytest.mark.slow
pytest.importorskip("playwright.sync_api")

SCREENSHOTS = Path(__file__).resolve().parent.parent / "test-output" / "screenshots"
STOCK_TIMEOUT = 60_000  # ms: the stock UI's bundle is large, the machine small


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory, _migrated_sqlite: Path) -> Registry:
    return build_registry(tmp_path_factory.mktemp("ui-registry"), _migrated_sqlite)


@pytest.fixture(scope="module")
def server(registry: Registry) -> Iterator[str]:
    workdir = registry.db.parent
    with mlflow_server(registry.tracking_uri, workdir, "--app-name", "lineage") as url:
        yield url


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as browser:
        yield browser


@dataclass
class Reviewer:
    """A browser tab that records what must never happen on a lineage page."""

    page: Any
    base: str
    problems: list[str] = field(default_factory=list)

    def open(self, path: str, status: int = 200) -> None:
        """Go to ``path`` of the server; the response must have ``status``."""
        response = self.page.goto(self.base + path, wait_until="load")
        assert response is not None and response.status == status, (path, response)

    def lineage_page(self, shot: str) -> None:
        """The page shown is a lineage page: no dialog, console error, page error or injected
        element; its content type is HTML; save its screenshot as ``<shot>.png``."""
        self.page.wait_for_load_state("load")
        assert "/lineage/" in self.page.url
        assert self.page.locator("img[src=x], script:not([src])").count() == 0
        assert self.page.locator("header.top a.current").inner_text() == "Lineage"
        assert self.problems == []
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(SCREENSHOTS / f"{shot}.png"), full_page=True)

    def text(self, selector: str) -> str:
        """The visible text of the first element matching ``selector``."""
        return self.page.locator(selector).first.inner_text()


@pytest.fixture
def reviewer(browser: Any, server: str) -> Iterator[Reviewer]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    seen = Reviewer(page, server)

    def on_dialog(dialog: Any) -> None:
        seen.problems.append(f"dialog: {dialog.message}")
        dialog.dismiss()

    def on_console(message: Any) -> None:
        # A CSP violation is an error; so is a file that failed to load (the page's own status,
        # an expected 404 or 400, is asserted by Reviewer.open).
        document = message.location.get("url") == page.url
        if message.type == "error" and not (document and "Failed to load" in message.text):
            seen.problems.append(f"console: {message.text} ({message.location.get('url')})")

    page.on("dialog", on_dialog)
    page.on("console", on_console)
    page.on("pageerror", lambda exc: seen.problems.append(f"page error: {exc}"))
    yield seen
    context.close()


def as_input(ms: int) -> str:
    """Epoch ms as a ``datetime-local`` value (UTC, to the second)."""
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")


def as_shown(value: str) -> str:
    """A ``datetime-local`` value as Chromium hands it back: no seconds when they are zero."""
    return value.removesuffix(":00") if value.count(":") == 2 else value


# An element's text as words: each cell, list item and pill (stage, alias, tag: spans drawn apart
# by their margins) apart from the next.
_WORDS = """e => { const c = e.cloneNode(true);
  c.querySelectorAll("td, th, span, li, div").forEach(s => { s.before(" "); s.after(" "); });
  return c.textContent; }"""


# The history picture as the browser laid it out: label and bar widths, tick label extents.
_DRAWN = """svg => ({
  width: svg.width.baseVal.value,
  bars: [...svg.querySelectorAll("a")].map(a =>
    [a.querySelector("text").getBBox().width, a.querySelector("rect").width.baseVal.value]),
  ticks: [...svg.querySelectorAll(".tick-label")].map(t => {
    const b = t.getBBox(); return [b.x, b.x + b.width]; }),
})"""


def words(locator: Any) -> str:
    """The text of the element ``locator`` names, as a person reads it, whitespace collapsed."""
    return " ".join(locator.evaluate(_WORDS).split())


def row_text(r: Reviewer, table: str, first_cell: str) -> str:
    """The words of the one row of ``table`` whose first cell starts with the words
    ``first_cell``."""
    rows = r.page.locator(f"{table} tbody tr")
    found = [
        words(row)
        for row in rows.all()
        if f"{words(row.locator('td').first)} ".startswith(f"{first_cell} ")
    ]
    assert len(found) == 1, (table, first_cell, found)
    return found[0]


def model_row(r: Reviewer, name: str) -> str:
    """The text of the models page's row of model ``name``."""
    row = r.page.locator("#models tbody tr").filter(
        has=r.page.get_by_role("link", name=name, exact=True)
    )
    return words(row)


def test_models_page_lists_searches_and_leads_to_a_model(reviewer: Reviewer) -> None:
    r = reviewer
    r.open("/lineage/models")
    names = r.page.locator("#models a.model-link").all_inner_texts()
    assert names == ["churn", HOSTILE_MODEL, "forecast"]
    assert "v3 Production @champion" in model_row(r, "churn")
    assert "v2 @challenger ; v1 @champion" in model_row(r, "forecast")
    r.lineage_page("models")

    # Typing filters the list at once (script); submitting asks the server (?q=).
    r.page.locator("#model-search").fill("FORE")
    assert r.page.locator("#models tbody tr:visible").all_inner_texts()[0].startswith("forecast")
    assert r.page.locator("#models tbody tr:visible").count() == 1
    r.page.locator("#model-search").fill("nothing-like-it")
    assert r.page.locator("#no-match").is_visible()
    r.page.locator("#model-search").fill("fore")
    r.page.locator("#model-search").press("Enter")
    r.page.wait_for_url("**/lineage/models?q=fore")
    assert r.page.locator("#models a.model-link").all_inner_texts() == ["forecast"]
    r.lineage_page("models-search")
    r.open("/lineage/models?q=nothing-like-it")
    assert "No model matches “nothing-like-it”." in r.text("main")

    r.open("/lineage/models")
    r.page.get_by_role("link", name="churn", exact=True).click()
    r.page.wait_for_url("**/lineage/models/churn")
    assert r.text("#model-name").startswith("churn")


def test_model_page_shows_data_versions_and_the_registry_as_of_a_time(
    reviewer: Reviewer, registry: Registry
) -> None:
    r = reviewer
    r.open("/lineage/models/churn")
    assert r.text(".description") == "Predicts churn from sales."
    v3 = row_text(r, "#versions", "v3")
    assert "Production @champion" in v3
    assert re.search(r"sales v2 .*stores v1", v3), v3
    v4 = row_text(r, "#versions", "v4")
    assert "sales v4 restored copy of v2" in v4, v4
    assert "Archived" in row_text(r, "#versions", "v1")
    # The history: a picture (a lane per alias and stage) and a table with who and which data.
    lanes = r.page.locator("#history-picture .lane-label").all_text_contents()
    assert {"@champion", "@challenger", "Production", "Staging"} <= set(lanes), lanes
    assert r.page.locator("#history-picture a").count() >= 4
    # As drawn: each span's label within its bar, every tick label within the picture.
    drawn = r.page.locator("#history-picture").evaluate(_DRAWN)
    assert all(text <= bar for text, bar in drawn["bars"]), drawn
    assert drawn["ticks"], drawn
    assert all(left >= 0 and right <= drawn["width"] for left, right in drawn["ticks"]), drawn
    newest = " ".join(r.page.locator("#history tbody tr").first.inner_text().split())
    assert re.search(f"UTC restore v3 {re.escape(HOSTILE_USER)} sales v2 ", newest), newest
    assert r.page.locator("#history td", has_text="@champion set (was v2)").count() == 1
    assert r.page.get_by_text(HOSTILE_USER, exact=True).count() >= 4  # group 3 and the restore
    r.lineage_page("model")

    # Back to when v1 was the champion: type the time, submit.
    r.page.locator("#asof").fill(as_input(registry.marks[1]))
    r.page.get_by_role("button", name="Show").click()
    r.page.wait_for_url(re.compile(r".*/lineage/models/churn\?at=.+"))
    assert r.text("#held-at-title") == (
        f"The registry as of {as_input(registry.marks[1]).replace('T', ' ')} UTC"
    )
    champion = row_text(r, "#held-at", "@champion")
    assert re.search(r"^@champion v1 sales v0 .*stores v0", champion), champion
    assert re.search(r"^Production v1 sales v0", row_text(r, "#held-at", "Production"))
    assert r.page.locator("#held-at tbody tr").count() == 2  # nothing else was held then
    assert r.page.locator("#asof").input_value() == as_shown(as_input(registry.marks[1]))
    r.lineage_page("model-as-of")

    # A shared link (ISO 8601 with an offset) to when v2 was the champion, v3 the challenger.
    at = datetime.fromtimestamp(registry.marks[2] / 1000, tz=timezone.utc).isoformat()
    r.open(f"/lineage/models/churn?at={quote(at)}")
    assert re.search(r"^@champion v2 sales v1 .*stores v0", row_text(r, "#held-at", "@champion"))
    assert re.search(
        r"^@challenger v3 sales v2 .*stores v1", row_text(r, "#held-at", "@challenger")
    )
    assert row_text(r, "#held-at", "Staging").startswith("Staging v3")
    r.page.get_by_role("link", name="now", exact=True).click()
    r.page.wait_for_url("**/lineage/models/churn")
    assert r.page.locator("#held-at").count() == 0


def test_version_page_check_diff_and_restore_plan(reviewer: Reviewer) -> None:
    r = reviewer
    r.open("/lineage/models")
    r.page.locator("#models").get_by_role("link", name="v3").first.click()
    r.page.wait_for_url("**/lineage/models/churn/versions/3")
    assert r.text("#version-title").startswith("churn version 3")
    sales = row_text(r, "#data", "sales")
    assert re.match(r"sales file:///\S+/sales v2 \d{4}-\d\d-\d\d .* WRITE ", sales), sales
    assert "training · deltalake" in row_text(r, "#data", "stores")
    # check: the tables and libraries are there; the code, run under pytest, was not recorded.
    check = words(r.page.locator("#check"))
    assert check.startswith("Retraining now would not see the same inputs: code"), check
    assert "trained in a pytest process" in check and "data" not in check
    plan = r.text("#plan")
    assert plan.count("up to date") == 2 and "Refused" not in plan  # restored already
    r.lineage_page("version")

    # Diff against v1, picked from the list: the page submits itself.
    r.page.locator("#diff-with").select_option("1")
    r.page.wait_for_url("**/lineage/models/churn/versions/3?diff=1")
    assert r.text("#diff h3") == "v3 → v1"
    sales = row_text(r, "#diff-data", "sales")
    assert sales.startswith("sales changed (backward) v2 v0"), sales
    commits = r.page.locator("#diff-data tbody tr").first.locator("ul.commits li")
    assert [c.split(" · ")[0] for c in commits.all_inner_texts()] == ["v1 WRITE", "v2 WRITE"]
    assert row_text(r, "#diff-data", "stores").startswith("stores changed (backward) v1 v0")
    assert r.page.get_by_text(f"alpha: 0.7 → {HOSTILE}", exact=True).is_visible()
    r.lineage_page("version-diff")

    # v1's plan undoes the bad DELETE: refused, with the command that would go ahead.
    r.open("/lineage/models/churn/versions/1")
    plan = r.text("#plan")
    assert "Refused:" in plan and "undo commits that deleted rows" in plan, plan
    assert "mlflow-lineage restore churn 1 --allow-undo-deletes" in plan
    assert "v3 DELETE" in plan and HOSTILE_USER in plan
    r.lineage_page("version-refused-plan")


def test_table_page_history_readers_and_impact(reviewer: Reviewer, registry: Registry) -> None:
    r = reviewer
    r.open("/lineage/models/churn/versions/4")
    r.page.locator("#data").get_by_role("link", name="sales").click()
    r.page.wait_for_url(f"**/lineage/tables/{registry.sales.table_id}")
    assert r.text("#table-name") == "sales"
    assert r.page.locator("#table-history tbody tr").count() == 5
    assert row_text(r, "#table-history", "v4").startswith("v4 restored copy of v2")
    assert "read a restored copy of v2 → churn v4" in row_text(r, "#table-history", "v4")
    bad = row_text(r, "#table-history", "v3")
    assert "DELETE" in bad and HOSTILE_USER in bad and "not read by any run" in bad
    assert "→ churn v3 in use Production @champion" in row_text(r, "#table-history", "v2")
    assert r.page.get_by_text(HOSTILE_RUN, exact=True).is_visible()  # churn v1's run, v0
    r.lineage_page("table")

    # The impact of v2 onwards: the champion, and v4 (trained on a restored copy of v2).
    r.page.locator("#impact-version").select_option("2")
    r.page.wait_for_url(f"**/lineage/tables/{registry.sales.table_id}?version=2")
    assert r.text("#impact h2") == "Impact of v2 onwards"
    impacted = r.page.locator("#impact-models tbody tr td:first-child").all_inner_texts()
    assert impacted == ["churn v3", "churn v4"]
    assert "in use" in row_text(r, "#impact-models", "churn v3")
    r.lineage_page("table-impact")

    # A table is also addressed by its name.
    r.open("/lineage/tables/stores")
    assert r.text("#table-name") == "stores"
    assert r.page.locator("#table-history tbody tr").count() == 2
    assert "→ forecast v1 in use @champion" in row_text(r, "#table-history", "v0")


def test_stock_pages_of_a_model_version_and_of_a_run(
    reviewer: Reviewer, registry: Registry
) -> None:
    r = reviewer
    r.open("/lineage/models/churn/versions/3")
    r.page.get_by_role("link", name="Open in MLflow ↗").click()
    r.page.wait_for_url("**/#/models/churn/versions/3")
    r.page.get_by_text("lineage.tables").first.wait_for(timeout=STOCK_TIMEOUT)
    assert r.page.get_by_text("sales@v2").first.is_visible()
    r.page.go_back()
    r.page.wait_for_url("**/lineage/models/churn/versions/3")
    r.page.locator("#run-link").click()
    run_id = registry.runs[("churn", "3")]
    r.page.wait_for_url(f"**/#/experiments/{registry.experiment_id}/runs/{run_id}")
    r.page.get_by_text("lineage.env.pkg.deltalake").first.wait_for(timeout=STOCK_TIMEOUT)


def test_hostile_values_render_as_text(reviewer: Reviewer, registry: Registry) -> None:
    r = reviewer
    r.open("/lineage/models")
    r.page.get_by_role("link", name=HOSTILE_MODEL, exact=True).click()
    r.page.wait_for_url("**/lineage/models/churn*")
    assert r.text("#model-name").startswith(HOSTILE_MODEL)
    assert r.text(".description") == f"{HOSTILE} {HOSTILE_IMG}"
    assert r.page.locator(".crumbs").get_by_text(HOSTILE_MODEL).is_visible()
    assert r.page.title() == f"{HOSTILE_MODEL} · MLflow"
    r.lineage_page("hostile-model")
    r.page.locator("#versions").get_by_role("link", name="v1", exact=True).click()
    r.page.wait_for_url("**/versions/1")
    assert r.text("#version-title").startswith(f"{HOSTILE_MODEL} version 1")
    r.lineage_page("hostile-version")
    r.open(f"/lineage/tables/{registry.sales.table_id}")
    history = r.page.locator("#table-history")  # the graph above names them too
    assert history.get_by_text(f"run {HOSTILE_IMG}", exact=True).is_visible()
    assert history.get_by_text(f"{HOSTILE_MODEL} v1", exact=True).is_visible()
    # The JSON is JSON: the values as they are, served as application/json.
    response = r.page.request.get(r.base + "/lineage/api/models/" + quote(HOSTILE_MODEL))
    assert response.headers["content-type"] == "application/json"
    assert response.json()["description"] == f"{HOSTILE} {HOSTILE_IMG}"


@pytest.mark.parametrize(
    ("path", "status", "message"),
    [
        ("/lineage/models/no-such-model", 404, "There is no registered model 'no-such-model'."),
        ("/lineage/models/churn/versions/99", 404, "Model 'churn' has no version 99."),
        ("/lineage/tables/no-such-table", 404, "No recorded lineage names a table"),
        ("/lineage/models/churn?at=last-tuesday", 400, "Cannot read the time 'last-tuesday'."),
        ("/lineage/models/churn/versions/one", 400, "'one' is not a model version number."),
        ("/lineage/tables/sales?version=-1", 400, "must be a non-negative integer"),
    ],
)
def test_errors_show_the_message_and_no_traceback(
    reviewer: Reviewer, registry: Registry, path: str, status: int, message: str
) -> None:
    r = reviewer
    r.open(path, status)
    shown = r.text("#error-message")
    assert message in shown
    body = r.page.content()
    assert "Traceback" not in body and str(registry.db) not in body
    assert "forecast" not in body  # other models are not listed
    assert r.text("h1") == ("Not found" if status == 404 else "Bad request")
    r.lineage_page(f"error-{status}-" + re.sub(r"[^a-z0-9]+", "-", path.lower()).strip("-"))


def test_under_gunicorn_the_flask_app_serves_the_pages(browser: Any, registry: Registry) -> None:
    workdir = registry.db.parent
    opts = ("--app-name", "lineage", "--gunicorn-opts", "--workers 1")
    with mlflow_server(registry.tracking_uri, workdir, *opts) as url:
        log = max(workdir.glob("server-*.log"), key=lambda p: p.stat().st_mtime).read_text()
        assert "Starting gunicorn" in log and "Uvicorn running" not in log, log[-2000:]
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        try:
            page = context.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(f"{url}/lineage/models", wait_until="load")
            assert page.locator("#models a.model-link").count() == 3
            page.get_by_role("link", name="churn", exact=True).click()
            page.wait_for_url("**/lineage/models/churn")
            assert "Production @champion" in page.locator("#versions").inner_text()
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SCREENSHOTS / "gunicorn-model.png"), full_page=True)
            assert errors == []
        finally:
            context.close()
