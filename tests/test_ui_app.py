"""The registry UI's JSON is the CLI's ``--json``; and a real ``mlflow server --app-name lineage``.

In-process: MLflow's Flask app with the lineage pages (``lineage_flask_app``) serves
``tests/hostile_registry.py``'s registry (``hostile_registry``); each ``/lineage/api/`` answer is
compared with ``mlflow-lineage ... --json`` run through click on the same store. They are equal, but
for the documented differences, each of which keeps the server's backend (whose URI may hold a
password) and, under basic-auth, other users' models out of its answers:

- a refused restore plan's ``go_ahead`` is the bare command line (model, version, the options
  that let it go ahead), without the CLI user's ``--dry-run``, ``--json`` and ``--tracking-uri``;
- the error for an unknown model names neither the tracking URI nor the models there, and that
  for an unknown table does not list the index's tables.

Against a real server: ``mlflow server --app-name lineage`` (uvicorn) on ``lineage+postgresql:``
with a registry built through its REST API.
"""

from __future__ import annotations

import json
import os
import shlex
import urllib.error
import urllib.request
import warnings
from urllib.parse import quote

import mlflow
import pytest
from click.testing import CliRunner
from deltalake import DeltaTable, write_deltalake
from helpers import read_pandas, tracking_at
from hostile_registry import EVIL_MODEL, FEATS_DIR, IMG, SCRIPT, USER, Page, rows, table_id
from lineage_plugin.ui.routes import CSP
from mlflow import MlflowClient
from server import mlflow_server

from lineage_plugin.cli import cli


def cli_json(reg, *args: str, code: int = 0) -> dict:
    result = CliRunner().invoke(cli, [*args, "--json", "--tracking-uri", reg["uri"]])
    assert result.exit_code == code, result.output
    return json.loads(result.stdout)


def api(reg, path: str, status: int = 200) -> dict:
    response = reg["client"].get(f"/lineage/api/{path}")
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    return response.get_json()


EVIL = quote(EVIL_MODEL, safe="")
PASSWORD = "s3cret-in-the-uri"


@pytest.mark.parametrize(
    ("path", "args", "code"),
    [
        ("models/ridge/versions/1", ["show", "ridge", "1"], 0),
        ("models/ridge/versions/2", ["show", "ridge", "2"], 0),
        (f"models/{EVIL}/versions/1", ["show", EVIL_MODEL, "1"], 0),
        ("models/ridge/versions/1/diff/2", ["diff", "ridge", "1", "2"], 0),
        ("models/ridge/versions/2/diff/1", ["diff", "ridge", "2", "1"], 0),
        ("models/ridge/versions/1/check", ["check", "ridge", "1"], 1),
        (f"models/{EVIL}/versions/1/check", ["check", EVIL_MODEL, "1"], 1),
        ("models/ridge/timeline", ["timeline", "--model", "ridge"], 0),
        (f"models/{EVIL}/timeline", ["timeline", "--model", EVIL_MODEL], 0),
        ("models/ridge/versions/2/restore-plan", ["restore", "ridge", "2", "--dry-run"], 0),
    ],
)
def test_model_answers_equal_the_cli(hostile_registry, path, args, code):
    assert api(hostile_registry, path) == cli_json(hostile_registry, *args, code=code)


def test_as_of_and_since_equal_the_cli(hostile_registry):
    history = api(hostile_registry, "models/ridge")["history"]
    first = min(e["time_ms"] for e in history)
    at = next(e["time"] for e in history if e["time_ms"] == first)  # v1 took @champion then
    then = api(hostile_registry, f"models/ridge/versions/1?at={quote(at)}")
    assert then == cli_json(hostile_registry, "show", "ridge", "1", "--at", at)
    assert then["held_at"] == {"aliases": ["champion"], "stage": "None"}
    since = api(hostile_registry, f"models/ridge/timeline?since={quote(at)}")
    assert since == cli_json(hostile_registry, "timeline", "--model", "ridge", "--since", at)
    assert len(since["entries"]) < len(api(hostile_registry, "models/ridge/timeline")["entries"])


@pytest.mark.parametrize(
    ("query", "options"),
    [
        ("", []),
        ("?from_version=1", ["--from-version", "1"]),
        ("?from_version=0&to_version=0", ["--from-version", "0", "--to-version", "0"]),
        ("?from_version=1&include_deleted=true", ["--from-version", "1", "--include-deleted"]),
    ],
)
def test_table_impact_equals_the_cli(hostile_registry, query, options):
    sales = table_id(hostile_registry["sales"])
    web = api(hostile_registry, f"tables/{sales}/impact{query}")
    # impact echoes the table it was given: the page asks with the recorded URI.
    assert web["table"] == f"file://{hostile_registry['sales']}"
    assert web == cli_json(hostile_registry, "impact", web["table"], *options)
    if query == "?from_version=1":  # the bad write reached v2, which holds @champion
        assert [(m["name"], m["version"], m["in_use"]) for m in web["model_versions"]] == [
            ("ridge", "2", True)
        ]


@pytest.mark.parametrize("table", ["sales", "feats"])
def test_table_timeline_equals_the_cli(hostile_registry, table):
    ref = table_id(hostile_registry[table])
    web = api(hostile_registry, f"tables/{ref}/timeline")
    assert web == cli_json(hostile_registry, "timeline", "--table", hostile_registry[table])
    assert "commit" in [e["kind"] for e in web["entries"]]
    if table == "sales":  # a page takes a table's name too
        assert api(hostile_registry, "tables/sales/timeline") == web


@pytest.mark.parametrize(
    ("model", "allow"),
    [
        # sales would undo a DELETE; the feats table's v0 files were vacuumed
        ("ridge", ["--allow-missing-files", "--allow-undo-deletes"]),
        (EVIL_MODEL, ["--allow-undo-deletes"]),  # feats would undo a DELETE
    ],
)
def test_a_refused_restore_plan_is_the_clis_json_error(hostile_registry, model, allow):
    web = api(hostile_registry, f"models/{quote(model, safe='')}/versions/1/restore-plan")
    cli_error = cli_json(hostile_registry, "restore", model, "1", "--dry-run", code=2)
    assert set(web) == set(cli_error) == {"error", "refusals", "plan", "go_ahead"}
    assert {k: v for k, v in web.items() if k != "go_ahead"} == {
        k: v for k, v in cli_error.items() if k != "go_ahead"
    }
    assert web["plan"]["version"] == "1" and web["plan"]["tables"]
    assert {o for r in web["refusals"] for o in allow if o in r} == set(allow)
    # The documented difference: the bare command line, without the CLI user's own options.
    assert web["go_ahead"] == shlex.join(["mlflow-lineage", "restore", model, "1", *allow])
    said = shlex.split(cli_error["go_ahead"])
    assert said[:5] == ["mlflow-lineage", "restore", model, "1", "--dry-run"]
    assert [t for t in said if t.startswith("--allow-")] == allow


@pytest.mark.parametrize(
    ("path", "args"),
    [
        ("models/ridge/versions/99", ["show", "ridge", "99"]),
        ("models/ridge/versions/1/diff/7", ["diff", "ridge", "1", "7"]),
        ("models/ridge/versions/99/check", ["check", "ridge", "99"]),
    ],
)
def test_errors_carry_the_clis_message(hostile_registry, path, args):
    assert (
        api(hostile_registry, path, 404)["error"]
        == cli_json(hostile_registry, *args, code=2)["error"]
    )


@pytest.mark.parametrize(
    ("path", "args"),
    [
        ("models/nosuch/versions/1", ["show", "nosuch", "1"]),
        ("models/ridgee/timeline", ["timeline", "--model", "ridgee"]),
        ("models/nosuch/versions/1/check", ["check", "nosuch", "1"]),
        ("tables/nosuch/impact", ["impact", "nosuch"]),
    ],
)
def test_unknown_names_name_neither_the_backend_nor_the_rest(hostile_registry, path, args):
    """The documented difference: the CLI names the tracking URI and the models there (or the
    close ones), or the index's tables; the server's answer names none of them."""
    said = cli_json(hostile_registry, *args, code=2)["error"]
    assert "ridge" in said or hostile_registry["sales"] in said
    web = api(hostile_registry, path, 404)["error"]
    name = path.split("/")[1]
    if path.startswith("models/"):
        assert web.startswith(f"There is no registered model '{name}'.")
    else:
        assert web.startswith("No recorded lineage names a table 'nosuch'.")
    assert "ridge" not in web.replace(name, "") and "sqlite" not in web and "sales" not in web


def test_the_version_page_shows_the_diff_and_the_refused_plan(hostile_registry):
    """What the page shows is the JSON above, as a person reads it."""
    response = hostile_registry["client"].get("/lineage/models/ridge/versions/1?diff=2")
    assert response.status_code == 200
    shown = Page(response.get_data(as_text=True))
    sales, feats = shown.rows["diff-data"]
    assert sales[:4] == ["sales", "changed (forward)", "v0", "v1"]
    assert sales[4].startswith("v1 DELETE") and f"UTC · {USER} " in sales[4]
    assert "num_deleted_rows=10" in sales[4]
    assert feats[:4] == [FEATS_DIR, "removed", "v0", ""]
    text = shown.text
    assert f"Libraries evil: {SCRIPT} → -" in text  # a package the other version lacks
    assert f"Code git_commit: {IMG} → -" in text and f"Parameters alpha: {IMG} → 0.5" in text
    assert "Refused: sales: The restore would undo commits that deleted rows (v1)" in text
    assert (
        "To go ahead anyway: mlflow-lineage restore ridge 1 --allow-missing-files "
        "--allow-undo-deletes"
    ) in text


# --- A real server: mlflow server --app-name lineage (uvicorn) on lineage+postgresql ----------


def fetch(url: str, method: str = "GET", **headers: str) -> tuple[int, dict[str, str], str]:
    """Status, headers (lower-case names) and body of one request; errors are answers too."""
    request = urllib.request.Request(url, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=60) as resp:
            status, head, body = resp.status, resp.headers, resp.read()
    except urllib.error.HTTPError as exc:
        status, head, body = exc.code, exc.headers, exc.read()
    return status, {k.lower(): v for k, v in head.items()}, body.decode(errors="replace")


def build_through_the_server(url: str, sales: str) -> None:
    """forecast v1 on sales@v0 (@champion), an UPDATE of sales, forecast v2 on sales@v1
    (Staging, @champion moved to it); demand v1 on sales@v1: all through the REST API."""
    with tracking_at(url), warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        mlflow.set_experiment("served-ui")
        client = MlflowClient()

        def register(name: str) -> None:
            with mlflow.start_run() as run:
                read_pandas(DeltaTable(sales))
            run_id = run.info.run_id
            client.create_model_version(name, f"runs:/{run_id}/model", run_id=run_id)

        client.create_registered_model("forecast")
        client.create_registered_model("demand")
        register("forecast")
        client.set_registered_model_alias("forecast", "champion", "1")
        DeltaTable(sales).update(predicate="x < 5.0", updates={"y": "0.0"})
        register("forecast")
        client.set_registered_model_alias("forecast", "champion", "2")
        client.transition_model_version_stage("forecast", "2", "Staging")
        register("demand")
    os.environ.pop("MLFLOW_EXPERIMENT_ID", None)
    mlflow.tracking.fluent._active_experiment_id = None


@pytest.fixture(scope="module")
def served(postgres, tmp_path_factory):
    """The server on a fresh PostgreSQL database, with :func:`build_through_the_server`'s
    registry."""
    root = tmp_path_factory.mktemp("ui-server")
    sales = str(root / "sales")
    write_deltalake(sales, rows(0, 30))
    with postgres.database() as plain:
        # Trust authentication ignores the password: the backend's URI holds one all the same.
        db = plain.replace("postgres@", f"postgres:{PASSWORD}@", 1)
        with mlflow_server(f"lineage+{db}", root, "--app-name", "lineage") as url:
            build_through_the_server(url, sales)
            yield {"url": url, "uri": f"lineage+{db}", "sales": sales}


def page(served, path: str) -> Page:
    status, headers, body = fetch(served["url"] + path)
    assert status == 200, body
    assert headers["content-security-policy"] == CSP
    return Page(body)


def test_the_server_renders_the_models_model_and_version_pages(served):
    models = page(served, "/lineage/models").rows["models"]
    assert [row[0].split()[0] for row in models] == ["demand", "forecast"]
    assert models[1][1:3] == ["2", "v2"] and models[1][3].split() == ["v2", "Staging", "@champion"]
    assert models[0][3] == "none"

    versions = page(served, "/lineage/models/forecast").rows["versions"]
    assert [row[0].split()[0] for row in versions] == ["v2", "v1"]
    assert versions[0][2].split() == ["Staging", "@champion"] and versions[1][2] == ""
    assert versions[0][3].startswith("sales v1") and versions[0][3].endswith("UPDATE")
    assert versions[1][3].startswith("sales v0") and versions[1][3].endswith("WRITE")

    [data] = page(served, "/lineage/models/forecast/versions/2").rows["data"]
    assert data[0] == f"sales file://{served['sales']}"
    assert data[1] == "v1" and data[3] == "UPDATE" and "num_updated_rows=5" in data[4]
    assert data[6] == "training · deltalake"


def test_the_servers_json_equals_the_cli_on_postgresql(served):
    for path, args in [
        ("models/forecast/versions/1", ["show", "forecast", "1"]),
        ("models/forecast/versions/1/diff/2", ["diff", "forecast", "1", "2"]),
    ]:
        status, headers, body = fetch(f"{served['url']}/lineage/api/{path}")
        assert status == 200 and headers["content-type"] == "application/json"
        assert json.loads(body) == cli_json(served, *args)


def test_the_servers_errors_never_show_its_backend(served):
    for path in ("/lineage/models/nosuch", "/lineage/api/models/nosuch/versions/1",
                 "/lineage/tables/nosuch", "/lineage/models/forecast/versions/9"):  # fmt: skip
        status, _, body = fetch(served["url"] + path)
        assert status == 404 and "Traceback" not in body
        assert PASSWORD not in body and "postgresql" not in body and "demand" not in body


def test_the_stock_server_still_works(served):
    status, headers, body = fetch(served["url"] + "/")
    assert status == 200 and "<html" in body.lower() and "text/html" in headers["content-type"]
    status, _, body = fetch(served["url"] + "/api/2.0/mlflow/experiments/search?max_results=10")
    assert status == 200 and "served-ui" in [e["name"] for e in json.loads(body)["experiments"]]
    status, _, body = fetch(served["url"] + "/api/2.0/mlflow/registered-models/search")
    assert status == 200
    assert {m["name"] for m in json.loads(body)["registered_models"]} == {"demand", "forecast"}
    assert fetch(served["url"] + "/health")[:3:2] == (200, "OK")


@pytest.mark.parametrize(
    "path",
    ["/lineage/models", "/lineage/models/forecast", "/lineage/api/models",
     "/lineage/static/lineage.css", "/"],
)  # fmt: skip
def test_a_wrong_host_header_is_rejected_on_lineage_routes_too(served, path):
    host = served["url"].removeprefix("http://")
    assert fetch(served["url"] + path, Host=host)[0] == 200
    status, _, body = fetch(served["url"] + path, Host="evil.example")
    assert status == 403 and "forecast" not in body


def test_a_cors_preflight_from_a_foreign_origin_is_not_allowed(served):
    url = served["url"] + "/lineage/api/models"
    preflight = {"Access-Control-Request-Method": "GET"}
    status, headers, _ = fetch(url, "OPTIONS", Origin="http://evil.example", **preflight)
    assert status >= 400 and "access-control-allow-origin" not in headers
    status, headers, _ = fetch(url, Origin="http://evil.example")
    assert status == 200 and "access-control-allow-origin" not in headers
    # The same preflight from the local UI's own origin is allowed: the check is MLflow's.
    status, headers, _ = fetch(url, "OPTIONS", Origin="http://localhost:3000", **preflight)
    assert status == 200 and headers["access-control-allow-origin"] == "http://localhost:3000"
