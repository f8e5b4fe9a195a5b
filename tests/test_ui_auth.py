"""``mlflow server --app-name lineage-basic-auth``: the lineage pages behind MLflow's basic auth.

Real servers over ``tests/ui_registry.py``'s registry, each with its own auth database where
the default permission is NO_PERMISSIONS, ``rita`` may READ ``churn`` and the experiment of
every run, and ``nora`` may READ ``churn`` only:

- uvicorn (the ASGI app) with ``MLFLOW_BASIC_AUTH_FAIL_CLOSED`` as MLflow 3.17 ships it (on);
- gunicorn (the Flask app) with it off.

Without credentials every lineage path (pages, JSON, static files, unknown paths) is a 401;
``rita`` sees ``churn`` and nothing of the other models, anywhere; ``nora`` sees no run either;
the admin sees everything;
MLflow's own routes stay guarded as before. Last, a reviewer signs in with Chromium.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import requests
from browser import chromium
from server import mlflow_server
from ui_registry import HOSTILE_MODEL, Registry, build_registry

pytestmark = pytest.mark.slow

ADMIN = ("admin", "admin-password-1234")
RITA = ("rita", "rita-password-1234")
NORA = ("nora", "nora-password-1234")
SCREENSHOTS = Path(__file__).resolve().parent.parent / "test-output" / "screenshots"


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory, _migrated_sqlite: Path) -> Registry:
    return build_registry(tmp_path_factory.mktemp("auth-registry"), _migrated_sqlite)


def _auth_env(workdir: Path, fail_closed: bool) -> dict[str, str]:
    config = workdir / "basic_auth.ini"
    config.write_text(
        "[mlflow]\n"
        "default_permission = NO_PERMISSIONS\n"
        f"database_uri = sqlite:///{workdir / 'auth.db'}\n"
        f"admin_username = {ADMIN[0]}\n"
        f"admin_password = {ADMIN[1]}\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
    )
    return {
        "MLFLOW_AUTH_CONFIG_PATH": str(config),
        "MLFLOW_FLASK_SERVER_SECRET_KEY": "lineage-test-secret",
        "MLFLOW_BASIC_AUTH_FAIL_CLOSED": "true" if fail_closed else "false",
    }


def _add_user(url: str, user: tuple[str, str], grants: dict[str, str]) -> None:
    """A user with READ on ``grants`` (resource type: id) and, by the default permission,
    nothing else."""
    from mlflow.server.auth.routes import CREATE_USER, GRANT_USER_PERMISSION

    login = {"username": user[0], "password": user[1]}
    created = requests.post(url + CREATE_USER, json=login, auth=ADMIN)
    assert created.status_code == 200, created.text
    for resource_type, resource_id in grants.items():
        grant = {"resource_type": resource_type, "resource_id": resource_id, "permission": "READ"}
        granted = requests.post(
            url + GRANT_USER_PERMISSION, json={"username": user[0], **grant}, auth=ADMIN
        )
        assert granted.status_code == 200, granted.text


@pytest.fixture(scope="module", params=["uvicorn-fail-closed", "gunicorn-fail-open"])
def server(request: pytest.FixtureRequest, registry: Registry) -> Iterator[tuple[str, bool]]:
    """``(url, fail_closed)`` of a ``lineage-basic-auth`` server."""
    fail_closed = request.param.endswith("closed")
    workdir = registry.db.parent / request.param
    workdir.mkdir()
    extra: tuple[str, ...] = ("--app-name", "lineage-basic-auth")
    if request.param.startswith("gunicorn"):
        extra += ("--gunicorn-opts", "--workers 1")
    env = _auth_env(workdir, fail_closed)
    with mlflow_server(registry.tracking_uri, workdir, *extra, env=env) as url:
        _add_user(url, RITA, {"registered_model": "churn", "experiment": registry.experiment_id})
        _add_user(url, NORA, {"registered_model": "churn"})
        yield url, fail_closed


def get(url: str, path: str, auth: tuple[str, str] | None) -> requests.Response:
    return requests.get(url + path, auth=auth, timeout=60, allow_redirects=False)


def routes(registry: Registry, model: str) -> list[str]:
    """Every lineage route that names ``model``, page and JSON."""
    m = "/models/" + quote(model, safe="")
    paths = [m, f"{m}/versions/1", f"{m}/versions/1?diff=1"]
    api = [m, f"{m}/timeline", f"{m}/versions/1", f"{m}/versions/1/check"]
    api += [f"{m}/versions/1/diff/1", f"{m}/versions/1/restore-plan"]
    return [f"/lineage{p}" for p in paths] + [f"/lineage/api{p}" for p in api]


def unnamed_routes(registry: Registry) -> list[str]:
    """The lineage routes that name no model."""
    sales = registry.sales.table_id
    return [
        "/lineage/",
        "/lineage/models",
        "/lineage/api/models",
        f"/lineage/tables/{sales}",
        f"/lineage/tables/{sales}?version=2",
        f"/lineage/api/tables/{sales}",
        f"/lineage/api/tables/{sales}/timeline",
        f"/lineage/api/tables/{sales}/impact?from_version=0",
        "/lineage/static/lineage.css",
        "/lineage/static/lineage.js",
    ]


def test_every_lineage_path_needs_credentials(server: tuple[str, bool], registry: Registry) -> None:
    url, _ = server
    paths = unnamed_routes(registry) + routes(registry, "churn") + ["/lineage/no-such-page"]
    for path in paths:
        for auth in (None, (RITA[0], "wrong-password"), ("nobody", RITA[1])):
            response = get(url, path, auth)
            assert response.status_code == 401, (path, auth, response.status_code)
            assert response.headers["WWW-Authenticate"] == 'Basic realm="mlflow"'
            assert "churn" not in response.text and "sales" not in response.text


def test_a_reader_sees_only_the_models_they_may_read(
    server: tuple[str, bool], registry: Registry
) -> None:
    url, _ = server
    assert [m["name"] for m in get(url, "/lineage/api/models", RITA).json()["models"]] == ["churn"]
    page = get(url, "/lineage/models", RITA)
    assert page.status_code == 200 and "churn" in page.text
    assert "forecast" not in page.text and "onerror" not in page.text
    for path in routes(registry, "churn"):
        assert get(url, path, RITA).status_code == 200, path

    # The other models: a 403 on every route that names them, saying what to do.
    for model in ("forecast", HOSTILE_MODEL):
        for path in routes(registry, model):
            response = get(url, path, RITA)
            assert response.status_code == 403, (path, response.status_code)
            assert "can grant you READ" in response.text, path
            assert "Traceback" not in response.text
    assert "Permission denied" in get(url, "/lineage/models/forecast", RITA).text
    assert (
        get(url, "/lineage/api/models/forecast", RITA)
        .json()["error"]
        .startswith("You may not read registered model 'forecast'.")
    )

    # Tables: the readers and the impact leave out the versions of models rita may not read.
    sales = get(url, f"/lineage/api/tables/{registry.sales.table_id}", RITA).json()
    readers = {
        m["name"] for v in sales["versions"] for r in v["readers"] for m in r["model_versions"]
    }
    assert readers == {"churn"}, readers
    stores = get(url, f"/lineage/tables/{registry.stores.table_id}", RITA)
    assert stores.status_code == 200 and "churn v" in stores.text and "forecast" not in stores.text
    impact = f"/lineage/api/tables/{registry.stores.table_id}/impact?from_version=0"
    assert {m["name"] for m in get(url, impact, RITA).json()["model_versions"]} == {"churn"}
    timeline = get(url, f"/lineage/api/tables/{registry.sales.table_id}/timeline", RITA).json()
    kinds = {e["kind"] for e in timeline["entries"]}
    assert {"commit", "run", "registration"} <= kinds, kinds
    assert {e["model"] for e in timeline["entries"] if "model" in e} == {"churn"}


def test_runs_of_experiments_a_user_may_not_read_are_left_out(
    server: tuple[str, bool], registry: Registry
) -> None:
    url, _ = server
    sales = registry.sales.table_id
    # nora may read churn, but not the experiment its runs are in.
    assert get(url, "/lineage/models/churn", NORA).status_code == 200
    page = get(url, f"/lineage/api/tables/{sales}", NORA).json()
    assert page["versions"] and all(v["readers"] == [] for v in page["versions"])
    html = get(url, f"/lineage/tables/{sales}", NORA).text
    # No run names (as the page escapes them: `run "><img ...`) and no run ids; the graph's
    # run boxes are anonymous.
    assert "train " not in html and "run &#34;" not in html
    assert not any(run_id in html for run_id in registry.runs.values())
    assert "<title>hidden run</title>" in html
    impact = get(url, f"/lineage/api/tables/{sales}/impact?from_version=0", NORA).json()
    assert impact["runs"] == [] and {m["name"] for m in impact["model_versions"]} == {"churn"}
    timeline = get(url, f"/lineage/api/tables/{sales}/timeline", NORA).json()
    assert "run" not in {e["kind"] for e in timeline["entries"]}
    assert {"commit", "registration"} <= {e["kind"] for e in timeline["entries"]}
    # rita, who may read the experiment, sees the same runs as the admin.
    runs = [
        get(url, f"/lineage/api/tables/{sales}/impact?from_version=0", who).json()["runs"]
        for who in (RITA, ADMIN)
    ]
    assert runs[0] == runs[1] and len(runs[0]) >= 5


def test_an_admin_sees_every_model(server: tuple[str, bool], registry: Registry) -> None:
    url, _ = server
    names = [m["name"] for m in get(url, "/lineage/api/models", ADMIN).json()["models"]]
    assert names == ["churn", HOSTILE_MODEL, "forecast"]
    for model in ("churn", "forecast", HOSTILE_MODEL):
        for path in routes(registry, model):
            assert get(url, path, ADMIN).status_code == 200, path
    impact = f"/lineage/api/tables/{registry.stores.table_id}/impact?from_version=0"
    assert {m["name"] for m in get(url, impact, ADMIN).json()["model_versions"]} == {
        "churn",
        "forecast",
    }


def test_unknown_paths_and_names(server: tuple[str, bool]) -> None:
    url, fail_closed = server
    # An unmatched lineage path: admins-only when fail-closed, else the lineage 404.
    assert get(url, "/lineage/no-such-page", RITA).status_code == (403 if fail_closed else 404)
    assert get(url, "/lineage/no-such-page", ADMIN).status_code == 404
    # A model nobody granted (it does not exist): rita may not read it; the admin gets a 404.
    assert get(url, "/lineage/models/no-such-model", RITA).status_code == 403
    missing = get(url, "/lineage/api/models/no-such-model", ADMIN)
    assert missing.status_code == 404 and "no registered model" in missing.json()["error"]
    # Bad input is still a 400, for anyone allowed to ask.
    assert get(url, "/lineage/models/churn?at=last-tuesday", RITA).status_code == 400
    assert get(url, "/lineage/models/churn/versions/one", RITA).status_code == 400


def test_mlflow_routes_stay_guarded(server: tuple[str, bool]) -> None:
    url, _ = server
    stock = "/api/2.0/mlflow/registered-models/get?name="
    assert get(url, stock + "churn", None).status_code == 401
    assert get(url, stock + "churn", RITA).status_code == 200
    assert get(url, stock + "forecast", RITA).status_code == 403
    assert get(url, stock + "forecast", ADMIN).status_code == 200
    search = get(url, "/api/2.0/mlflow/registered-models/search", RITA).json()
    assert [m["name"] for m in search["registered_models"]] == ["churn"]
    assert get(url, "/health", None).status_code == 200


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as browser:
        yield browser


def test_a_reviewer_signs_in_with_a_browser(
    browser: Any, server: tuple[str, bool], registry: Registry
) -> None:
    url, fail_closed = server
    if not fail_closed:
        pytest.skip("one browser run is enough: the uvicorn server")
    # Without credentials the browser is asked for them (headless Chromium then gives up on
    # the navigation); its request API shows the answer.
    anonymous = browser.new_context()
    try:
        with pytest.raises(Exception, match="ERR_INVALID_AUTH_CREDENTIALS"):
            anonymous.new_page().goto(url + "/lineage/models")
        response = anonymous.request.get(url + "/lineage/models")
        assert response.status == 401 and "churn" not in response.text()
    finally:
        anonymous.close()

    context = browser.new_context(
        viewport={"width": 1280, "height": 900},
        http_credentials={"username": RITA[0], "password": RITA[1]},
    )
    try:
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.goto(url + "/lineage/models", wait_until="load")
        assert page.locator("#models a.model-link").all_inner_texts() == ["churn"]
        # The page's styles and script came through the same credentials.
        assert page.locator("header.top").evaluate("e => getComputedStyle(e).display") != "none"
        page.get_by_role("link", name="churn", exact=True).click()
        page.wait_for_url("**/lineage/models/churn")
        assert "Production @champion" in page.locator("#versions").inner_text()
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / "basic-auth-model.png"), full_page=True)
        page.goto(f"{url}/lineage/tables/{registry.stores.table_id}", wait_until="load")
        assert "forecast" not in page.locator("main").inner_text()
        response = page.goto(url + "/lineage/models/forecast", wait_until="load")
        assert response is not None and response.status == 403
        assert "can grant you READ" in page.locator("#error-message").inner_text()
        page.screenshot(path=str(SCREENSHOTS / "basic-auth-403.png"), full_page=True)
        assert [e for e in errors if "403" not in e] == []
    finally:
        context.close()
