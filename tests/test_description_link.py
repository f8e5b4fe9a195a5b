"""The stock pages lead to the lineage pages (issue 14, point 3): with ``MLFLOW_LINEAGE_UI_URL``
set, a model version registered without a description gets a Markdown link to its lineage page
(``<base>/lineage/models/<name>/versions/<version>``), never over the user's own text. Real
stores (SQLite, PostgreSQL, ``file:``) and real ``mlflow server`` processes; no registry event
and no index drift come of it.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from urllib.parse import quote

import mlflow
import pytest
from click.testing import CliRunner
from deltalake import DeltaTable
from helpers import indexed_events, read_pandas, tracking_at
from mlflow import MlflowClient
from postgres import SERVER_KINDS, fresh_database
from server import mlflow_server

from lineage_plugin.cli import cli
from lineage_plugin.errors import LineageWarning
from lineage_plugin.settings import UI_URL_ENV, lineage_ui_url
from lineage_plugin.store.description_link import lineage_page_url, link_description
from lineage_plugin.store.index import index_url

UI = "http://mlflow.example:5000"
#: A space and a '#' (MLflow refuses '/' in names): both must be quoted in the link.
NAME = "sales forecast #2"
SENTENCE = "This link was added by mlflow-delta-lineage."


def expected_link(version: object, name: str = NAME, base: str = UI) -> str:
    url = f"{base}/lineage/models/{quote(name, safe='')}/versions/{version}"
    return f"[Data lineage of this version]({url}). {SENTENCE}"


@pytest.fixture(params=[*SERVER_KINDS, "file"])
def store_uri(request, tmp_path, monkeypatch):
    """A ``lineage+`` tracking and registry URI on each kind of store the plugin wraps."""
    monkeypatch.chdir(tmp_path)
    if request.param == "file":
        monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow 3.17 deprecates it
        yield f"lineage+file://{tmp_path / 'mlruns'}"
        return
    with fresh_database(request, request.param) as url:
        yield f"lineage+{url}"


def trained_run(table: str) -> str:
    """A run that read version 1 of a real Delta table (so the index has rows to compare)."""
    mlflow.set_experiment("description-link")
    with mlflow.start_run() as run:
        read_pandas(DeltaTable(table, version=1))
    return run.info.run_id


def register(client: MlflowClient, run_id: str, name: str = NAME, **kwargs: object) -> object:
    return client.create_model_version(name, f"runs:/{run_id}/model", run_id=run_id, **kwargs)


def assert_index_in_sync(uri: str) -> None:
    """``mlflow-lineage reindex --check`` finds the index in sync with MLflow (exit code 0)."""
    result = CliRunner().invoke(cli, ["reindex", "--check", "--tracking-uri", uri])
    assert result.exit_code == 0, result.output
    assert "in sync with MLflow" in result.output


def no_events(client: MlflowClient, name: str, versions: list[str]) -> None:
    """No registry event in MLflow (tags) for these versions."""
    for version in versions:
        tags = client.get_model_version(name, version).tags
        assert not [k for k in tags if k.startswith("lineage.event.")], tags


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("http://mlflow.example:5000", "http://mlflow.example:5000"),
        ("http://mlflow.example:5000/", "http://mlflow.example:5000"),
        ("  https://lake.example/mlflow//  ", "https://lake.example/mlflow"),
        ("http://[::1]:5000/", "http://[::1]:5000"),
        ("", None),
        ("   ", None),
    ],
)
def test_the_setting_is_normalised_and_read_at_call_time(monkeypatch, value, expected):
    monkeypatch.delenv(UI_URL_ENV, raising=False)
    assert lineage_ui_url() is None
    monkeypatch.setenv(UI_URL_ENV, value)
    with warnings.catch_warnings():
        warnings.simplefilter("error", LineageWarning)
        assert lineage_ui_url() == expected


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("javascript:alert(1)", "only http:// and https://"),
        ("ftp://x", "only http:// and https://"),
        ("mlflow.example:5000", "only http:// and https://"),
        ("http://", "names no host"),
        ("http://admin:hunter2@mlflow.example", "credentials"),
        ("http://mlflow.example/?next=1", "no query or fragment"),
        ("http://mlflow.example/a b", "spaces, parentheses"),
        ("http://mlflow.example/x)[y](http://evil.example", "spaces, parentheses"),
        ("http://mlflow.example:99999", "not a valid URL"),
    ],
)
def test_a_bad_value_is_ignored_with_one_warning(monkeypatch, value, why):
    # Once per value and process: no other test of this process uses these values.
    monkeypatch.setenv(UI_URL_ENV, value)
    with pytest.warns(LineageWarning, match=why) as caught:
        assert lineage_ui_url() is None
    assert UI_URL_ENV in str(caught[0].message) and "http://mlflow.example:5000" in str(
        caught[0].message
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error", LineageWarning)
        assert lineage_ui_url() is None  # not again


def test_the_page_url_quotes_the_whole_name():
    assert lineage_page_url(UI, "a/b c", 3) == f"{UI}/lineage/models/a%2Fb%20c/versions/3"
    assert link_description(UI, NAME, 1) == expected_link(1)


def test_an_empty_description_gets_the_link_and_the_users_text_is_kept(
    store_uri, make_table, monkeypatch
):
    monkeypatch.setenv(UI_URL_ENV, UI + "/")
    sales = make_table(commits=2)
    with tracking_at(store_uri):
        client = MlflowClient()
        run_id = trained_run(sales)
        client.create_registered_model(NAME)
        linked = register(client, run_id)
        blank = register(client, run_id, description="  \n ")
        mine = "Trained on March. See [the notes](http://wiki.example/notes)."
        kept = register(client, run_id, description=mine)
        copy = client.copy_model_version(f"models:/{NAME}/{linked.version}", "copied")

        # What the caller got back is what MLflow holds.
        assert linked.description == expected_link(linked.version)
        assert blank.description == expected_link(blank.version)
        assert kept.description == mine
        stored = {v: client.get_model_version(NAME, v) for v in ("1", "2", "3")}
        assert stored["1"].description == expected_link(1)
        assert stored["2"].description == expected_link(2)
        assert stored["3"].description == mine
        # A copy gets the link to itself, not the source's.
        assert client.get_model_version("copied", copy.version).description == expected_link(
            copy.version, "copied"
        )
        # The lineage is attached as always.
        assert stored["1"].tags["lineage.tables"] == "sales@v1"

        # Afterwards the description is the user's, emptied included.
        client.update_model_version(NAME, "1", "")
        assert not client.get_model_version(NAME, "1").description
        client.update_model_version(NAME, "2", "my own")
        assert client.get_model_version(NAME, "2").description == "my own"

        no_events(client, NAME, ["1", "2", "3"])
    assert indexed_events(index_url(store_uri), NAME) == []
    assert_index_in_sync(store_uri)


def test_unset_empty_or_bad_setting_adds_nothing_and_registration_succeeds(
    store_uri, make_table, monkeypatch, request
):
    sales = make_table(commits=2)
    bad = f"ftp://mlflow.example/{request.node.callspec.id}"  # its own value: warned once
    with tracking_at(store_uri):
        client = MlflowClient()
        run_id = trained_run(sales)
        client.create_registered_model(NAME)
        monkeypatch.delenv(UI_URL_ENV, raising=False)
        assert register(client, run_id).description is None
        monkeypatch.setenv(UI_URL_ENV, "")
        assert register(client, run_id).description is None
        monkeypatch.setenv(UI_URL_ENV, bad)
        with pytest.warns(LineageWarning, match="only http:// and https://"):
            assert register(client, run_id).description is None
        with warnings.catch_warnings():
            warnings.simplefilter("error", LineageWarning)  # once only
            assert register(client, run_id, description="mine").description == "mine"
        versions = client.search_model_versions(f"name = '{NAME}'")
        assert sorted((str(v.version), v.description) for v in versions) == [
            ("1", None),
            ("2", None),
            ("3", None),
            ("4", "mine"),
        ]
        assert all(v.tags["lineage.tables"] == "sales@v1" for v in versions)
    assert_index_in_sync(store_uri)


def test_a_prompt_version_gets_no_link(sqlite_uri, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(UI_URL_ENV, UI)
    with tracking_at(f"lineage+{sqlite_uri}"):
        prompt = mlflow.genai.register_prompt(name="greeting", template="Hello {{name}}")
        loaded = mlflow.genai.load_prompt(f"prompts:/greeting/{prompt.version}")
        assert loaded.commit_message is None  # a prompt version's description


def _server_log(url: str, workdir: Path) -> str:
    return (workdir / f"server-{url.rsplit(':', 1)[1]}.log").read_text()


@pytest.mark.slow
def test_through_mlflow_server_the_servers_setting_decides(
    tmp_path, _migrated_sqlite, make_table, monkeypatch
):
    """Stock and lineage+http clients of a lineage+ server: the server writes the link with its
    own base URL; a lineage+http client's own setting adds nothing over it."""
    import shutil

    monkeypatch.setenv("MLFLOW_LINEAGE_HOME", str(tmp_path / "client-index"))
    monkeypatch.setenv(UI_URL_ENV, "http://client.example")  # the client's: not used
    shutil.copyfile(_migrated_sqlite, tmp_path / "mlflow.db")
    backend = f"lineage+sqlite:///{tmp_path / 'mlflow.db'}"
    sales = make_table(commits=2)
    with mlflow_server(backend, tmp_path, env={UI_URL_ENV: UI + "/"}) as url:
        with tracking_at(f"lineage+{url}"):
            run_id = trained_run(sales)
            plugin_client = MlflowClient()
            plugin_client.create_registered_model(NAME)
            by_plugin_client = register(plugin_client, run_id)
        stock = MlflowClient(url, url)
        by_stock_client = register(stock, run_id)
        kept = register(stock, run_id, description="mine")
        assert by_plugin_client.description == expected_link(1)
        assert by_stock_client.description == expected_link(2)
        assert kept.description == "mine"
        stored = {v: stock.get_model_version(NAME, v) for v in ("1", "2", "3")}
        assert [stored[v].description for v in stored] == [
            expected_link(1),
            expected_link(2),
            "mine",
        ]
        assert stored["2"].tags["lineage.tables"] == "sales@v1"
        no_events(stock, NAME, ["1", "2", "3"])
    # (The lineage+http client's own index lacks the versions stock clients registered, by
    # design; the server's index is the one to compare.)
    assert indexed_events(index_url(backend), NAME) == []
    assert_index_in_sync(backend)  # the server's


@pytest.mark.slow
def test_a_bad_value_on_the_server_adds_nothing_and_warns_once(
    tmp_path, _migrated_sqlite, make_table, monkeypatch
):
    """The server ignores its bad value (one warning in its log); a lineage+http client with a
    good value of its own adds the link itself (update_model_version over REST)."""
    import shutil

    monkeypatch.setenv("MLFLOW_LINEAGE_HOME", str(tmp_path / "client-index"))
    monkeypatch.delenv(UI_URL_ENV, raising=False)
    shutil.copyfile(_migrated_sqlite, tmp_path / "mlflow.db")
    backend = f"lineage+sqlite:///{tmp_path / 'mlflow.db'}"
    sales = make_table(commits=2)
    with mlflow_server(backend, tmp_path, env={UI_URL_ENV: "javascript:alert(1)"}) as url:
        with tracking_at(f"lineage+{url}"):
            run_id = trained_run(sales)
        stock = MlflowClient(url, url)
        stock.create_registered_model(NAME)
        assert not register(stock, run_id).description  # '' over REST
        assert not register(stock, run_id).description
        log = _server_log(url, tmp_path)
        assert log.count(f"ignoring {UI_URL_ENV}='javascript:alert(1)'") == 1, log[-3000:]
        assert "only http:// and https://" in log

        monkeypatch.setenv(UI_URL_ENV, "https://client.example")
        with tracking_at(f"lineage+{url}"):
            by_plugin_client = register(MlflowClient(), run_id)
        client_link = expected_link(3, base="https://client.example")
        assert by_plugin_client.description == client_link
        assert stock.get_model_version(NAME, "3").description == client_link
        assert not any(stock.get_model_version(NAME, v).description for v in ("1", "2"))
        no_events(stock, NAME, ["1", "2", "3"])
    assert indexed_events(index_url(backend), NAME) == []
    assert_index_in_sync(backend)
