"""The registry UI's security (issue 14, point 4), in-process on ``tests/hostile_registry.py``'s
registry, every value of which that a page shows is hostile markup.

- Escaping: no page body holds the raw markup; each shows it as text.
- Headers: the strict Content-Security-Policy on every answer under ``/lineage/``; no inline
  script, no ``style=`` or ``on*=`` attribute in any page or template; static files typed.
- Read-only: every other method on every lineage route is a 405, and nothing changes.
- Input: a request's path or URI never opens a table; unknown things are 404, malformed input
  400, never a 500 or a traceback; a password in the backend's URLs is never shown.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from urllib.parse import quote

import pytest
from hostile_registry import (
    EVIL_MODEL,
    FEATS_DIR,
    HOSTILE,
    IMG,
    RUN_NAME,
    SCRIPT,
    USER,
    Page,
    table_id,
)
from lineage_plugin.ui.routes import CSP
from markupsafe import escape
from mlflow import MlflowClient

EVIL = quote(EVIL_MODEL, safe="")
UI = Path(__file__).resolve().parents[1] / "ui_extension"


@pytest.fixture(scope="module")
def reg(hostile_registry):
    return {
        **hostile_registry,
        "ids": {n: table_id(hostile_registry[n]) for n in ("sales", "feats")},
    }


def get(reg, url: str, status: int = 200):
    response = reg["client"].get(url)
    body = response.get_data(as_text=True)
    assert response.status_code == status, (url, body[-2000:])
    assert "Traceback" not in body
    return response, body


def pages(reg) -> list[tuple[str, int, list[str]]]:
    """Every page (and error page) with hostile data: its URL, status and the hostile values
    a person must read on it as text."""
    sales, feats = reg["ids"]["sales"], reg["ids"]["feats"]
    ridge = MlflowClient(reg["uri"]).get_registered_model("ridge").description
    return [
        ("/lineage/models", 200, [EVIL_MODEL]),
        (f"/lineage/models?q={quote(SCRIPT)}", 200, [SCRIPT]),
        ("/lineage/models/ridge", 200, [ridge, FEATS_DIR, USER]),
        ("/lineage/models/ridge?history=all&at=2099-01-01", 200, [ridge, FEATS_DIR, USER]),
        (f"/lineage/models/{EVIL}", 200, [EVIL_MODEL, SCRIPT, FEATS_DIR, USER]),
        ("/lineage/models/ridge/versions/1", 200, [FEATS_DIR, SCRIPT, IMG, USER]),
        ("/lineage/models/ridge/versions/1?diff=2", 200, [IMG, SCRIPT, USER]),
        ("/lineage/models/ridge/versions/2?diff=1", 200, [USER]),
        (f"/lineage/models/{EVIL}/versions/1", 200, [EVIL_MODEL, FEATS_DIR, IMG]),
        (f"/lineage/tables/{sales}", 200, [USER, RUN_NAME]),
        (f"/lineage/tables/{sales}?version=1", 200, [USER, RUN_NAME]),
        (f"/lineage/tables/{feats}", 200, [FEATS_DIR, IMG, RUN_NAME, EVIL_MODEL]),
        (f"/lineage/tables/{feats}?version=0", 200, [FEATS_DIR, EVIL_MODEL]),
        (f"/lineage/tables/{quote(FEATS_DIR, safe='')}", 200, [FEATS_DIR]),
        (f"/lineage/models/{quote(IMG, safe='')}", 404, [IMG]),
        (f"/lineage/models/{quote(IMG, safe='')}/versions/1", 404, [IMG]),
        (f"/lineage/tables/{quote(IMG, safe='')}", 404, [IMG]),
        (f"/lineage/models/ridge?at={quote(IMG)}", 400, [IMG]),
    ]


def test_every_hostile_value_is_shown_as_text_never_as_markup(reg):
    for url, status, shown in pages(reg):
        _, body = get(reg, url, status)
        for value in HOSTILE:
            assert value not in body, url
        lowered = body.lower()
        assert "<img" not in lowered and lowered.count("<script") == 1, url
        text = Page(body).text
        for value in shown:
            assert " ".join(value.split()) in text, (url, value)
            assert str(escape(value)) in body, (url, value)


def test_no_page_has_inline_script_style_or_event_handlers(reg):
    for url, status, _ in pages(reg):
        _, body = get(reg, url, status)
        parsed = Page(body)
        assert parsed.scripts == [""], url  # one script element, its code in a file
        assert [a.get("src") for t, a in parsed.tags if t == "script"] == [
            "/lineage/static/lineage.js"
        ]
        for tag, attrs in parsed.tags:
            assert tag != "style", url
            bad = [a for a in attrs if a == "style" or a.startswith("on")]
            assert bad == [], (url, tag, bad)
            for a in ("href", "src", "action"):
                assert not (attrs.get(a) or "").strip().lower().startswith("javascript:"), url


def test_the_templates_and_script_have_no_inline_code():
    """The source agrees with the pages: nothing inline a template branch could still emit."""
    for template in (UI / "templates" / "lineage").glob("*.html"):
        source = template.read_text()
        assert not re.search(r"<script(?![^>]*\bsrc=)", source), template.name
        assert not re.search(r"<style|\sstyle\s*=|\son[a-z]+\s*=", source, re.I), template.name
        assert "|safe" not in source and "autoescape false" not in source, template.name
    script = (UI / "static" / "lineage.js").read_text()
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
        assert sink not in script


def test_every_lineage_answer_has_the_strict_headers(reg):
    assert "script-src 'self'" in CSP and "default-src 'none'" in CSP
    assert "unsafe-inline" not in CSP and "unsafe-eval" not in CSP and "*" not in CSP
    urls = [url for url, _, _ in pages(reg)] + [
        "/lineage/api/models",
        f"/lineage/api/tables/{reg['ids']['sales']}",
        "/lineage/api/models/nosuch",
        "/lineage/static/lineage.css",
        "/lineage/tables/..%2F..%2Fetc",  # not routed: a 404 from routing
        "/lineage/nosuch",
    ]
    for url in urls:
        response = reg["client"].get(url)
        assert response.headers["Content-Security-Policy"] == CSP, url
        assert response.headers["X-Content-Type-Options"] == "nosniff", url
    posted = reg["client"].post("/lineage/models")  # a 405 from routing
    assert posted.headers["Content-Security-Policy"] == CSP
    stock = reg["client"].get("/health")  # the stock server's answers are its own
    assert "Content-Security-Policy" not in stock.headers


@pytest.mark.parametrize(
    ("name", "mimetype"),
    [("lineage.css", "text/css"), ("lineage.js", "text/javascript")],
)
def test_static_files_are_served_with_their_types(reg, name, mimetype):
    response, body = get(reg, f"/lineage/static/{name}")
    assert response.mimetype == mimetype and body == (UI / "static" / name).read_text()
    assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_json_is_never_served_as_html(reg):
    for url in ("/lineage/api/models", f"/lineage/api/models/{EVIL}", "/lineage/api/models/x%00"):
        response = reg["client"].get(url)
        assert response.mimetype == "application/json", url
        assert response.headers["X-Content-Type-Options"] == "nosniff"


# --- Read-only --------------------------------------------------------------------------------


def lineage_urls(reg, app) -> list[str]:
    """One concrete URL per lineage route."""
    values = {"name": "ridge", "number": "1", "version": "1", "other": "2",
              "ref": reg["ids"]["sales"], "filename": "lineage.css"}  # fmt: skip
    adapter = app.url_map.bind("localhost")
    rules = [r for r in app.url_map.iter_rules() if r.endpoint.startswith("lineage.")]
    return [adapter.build(r.endpoint, {k: values[k] for k in r.arguments}) for r in rules]


def state(reg) -> dict:
    """What a write could change: the registry's models, versions, tags, aliases and stages,
    every table's log, and the lineage index's events."""
    import sqlalchemy as sa

    client = MlflowClient(reg["uri"])
    models = {m.name: (m.description, m.tags, m.aliases) for m in client.search_registered_models()}
    versions = {
        (v.name, v.version): (v.current_stage, v.tags, v.description)
        for v in client.search_model_versions()
    }
    logs = {
        n: sorted(os.listdir(os.path.join(reg[n], "_delta_log")))
        for n in ("sales", "feats", "unrecorded")
    }
    engine = sa.create_engine(reg["uri"].removeprefix("lineage+"))
    try:
        with engine.connect() as conn:
            events = conn.execute(sa.text("SELECT COUNT(*) FROM lineage_events")).scalar()
    finally:
        engine.dispose()
    return {"models": models, "versions": versions, "logs": logs, "events": events}


def test_no_route_writes(reg, lineage_flask_app):
    urls = lineage_urls(reg, lineage_flask_app)
    assert len(urls) == 16 and any(u.endswith("/restore-plan") for u in urls)
    before = state(reg)
    assert before["events"] > 0 and len(before["versions"]) == 3
    for url in urls:
        assert reg["client"].get(url).status_code in (200, 302), url  # restore-plan included
        for method in ("POST", "PUT", "DELETE", "PATCH"):
            response = reg["client"].open(url, method=method, data={"stage": "Archived"})
            assert response.status_code == 405, (method, url)
            assert method not in response.headers["Allow"]
    assert state(reg) == before


# --- Input ------------------------------------------------------------------------------------


def test_no_path_or_uri_from_a_request_opens_a_table(reg, monkeypatch):
    """``unrecorded`` is a real Delta table (and, from the server's directory, a relative
    path) that no run read: it has no page, however it is named."""
    monkeypatch.chdir(reg["root"])
    path = reg["unrecorded"]
    refs = ["unrecorded", "file:unrecorded", table_id(path), f"file://{path}", path,
            reg["sales"], f"file://{reg['sales']}", "..%2F..%2Fetc%2Fpasswd"]  # fmt: skip
    for ref in refs:
        quoted = ref if "%" in ref else quote(ref, safe="")
        for url in (f"/lineage/tables/{quoted}", f"/lineage/api/tables/{quoted}",
                    f"/lineage/api/tables/{quoted}/impact?from_version=0",
                    f"/lineage/api/tables/{quoted}/timeline"):  # fmt: skip
            get(reg, url, 404)


@pytest.mark.parametrize(
    "url",
    [
        "/lineage/models/nosuch",
        "/lineage/models/nosuch/versions/1",
        "/lineage/models/ridge/versions/99",
        "/lineage/models/ridge/versions/0",
        "/lineage/tables/nosuch",
        "/lineage/tables/..",
        "/lineage/tables/%2e%2e",
        "/lineage/tables/..%2F..%2Fetc",
        "/lineage/static/..%2Fapp.py",
        "/lineage/static/%2e%2e/app.py",
        "/lineage/api/models/nosuch",
        "/lineage/api/models/nosuch/timeline",
        "/lineage/api/models/ridge/versions/99/restore-plan",
        "/lineage/api/models/ridge/versions/1/diff/99",
        "/lineage/api/tables/nosuch/timeline",
    ],
)
def test_unknown_things_are_404(reg, url):
    _, body = get(reg, url, 404)
    assert "def create_app" not in body


@pytest.mark.parametrize(
    "url",
    [
        "/lineage/models/ridge/versions/abc",
        "/lineage/models/ridge/versions/-1",
        "/lineage/models/ridge/versions/99999999999",
        "/lineage/models/ridge/versions/1.5",
        "/lineage/models/ridge/versions/%EF%BC%91",  # a full-width digit one
        "/lineage/api/models/ridge/versions/abc/check",
        "/lineage/api/models/ridge/versions/1/diff/-2",
        "/lineage/models/ridge?at=garbage",
        "/lineage/models/ridge?at=99999-01-01",
        "/lineage/models/ridge?at=2026-13-45",
        "/lineage/models/ridge?at=1e300",
        "/lineage/api/models/ridge/versions/1?at=yesterday-ish",
        "/lineage/api/models/ridge/timeline?since=nope",
        "/lineage/models/ridge/versions/1?diff=abc",
        "/lineage/tables/sales?before=-3",
        "/lineage/tables/sales?before=x",
        "/lineage/tables/sales?version=x",
        "/lineage/tables/sales?version=-1",
        "/lineage/api/tables/sales?before=-3",
        "/lineage/api/tables/sales/impact?from_version=x",
        "/lineage/api/tables/sales/impact?from_version=3&to_version=1",
        "/lineage/models/a%00b",
        "/lineage/tables/a%00b",
        "/lineage/api/models/a%00b/versions/1",
        "/lineage/models/" + "m" * 5000,
        "/lineage/tables/" + "t" * 5000,
        "/lineage/api/tables/" + "t" * 5000 + "/impact",
        "/lineage/models/%20",
    ],
)
def test_malformed_input_is_400(reg, url):
    response, body = get(reg, url, 400)
    if "/api/" in url:
        assert response.mimetype == "application/json" and set(response.get_json()) == {"error"}
    else:
        assert Page(body).rows == {} and "Bad request" in body
    assert len(body) < 20_000  # the input is not echoed back at length


def test_a_password_in_the_backends_urls_is_never_shown(reg, monkeypatch):
    """An index that cannot be opened (its URL with a password) is an error that names it
    without the password."""
    monkeypatch.setenv("MLFLOW_LINEAGE_INDEX_URI", "postgresql://lineage:s3cret@127.0.0.1:1/ix")
    for url in ("/lineage/models", "/lineage/api/models", "/lineage/models/ridge"):
        response = reg["client"].get(url)
        body = response.get_data(as_text=True)
        assert response.status_code in (400, 500, 503), url
        assert "s3cret" not in body and "Traceback" not in body
        assert response.headers["Content-Security-Policy"] == CSP
    assert "postgresql://lineage:***@127.0.0.1:1/ix" in body
