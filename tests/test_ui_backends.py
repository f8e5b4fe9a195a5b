"""The lineage pages on a ``file:`` backend (its index is a SQLite file beside the store),
in-process through MLflow's Flask app; SQLite and PostgreSQL are covered by the other UI tests."""

from __future__ import annotations

import pytest
from helpers import register_reader, tracking_at
from mlflow import MlflowClient


@pytest.fixture
def client():
    from lineage_plugin.ui.app import install
    from mlflow.server import app

    return install(app).test_client()


def test_pages_read_a_file_backend_through_its_index(tmp_path, make_table, client, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow 3.17 deprecates it
    uri = f"lineage+file://{tmp_path / 'mlruns'}"
    path = make_table(commits=2)
    with tracking_at(uri):
        import mlflow

        mlflow.set_experiment("ui-file")
        register_reader(path, "file-model", version=0)
        register_reader(path, "file-model", version=1)
        MlflowClient().set_registered_model_alias("file-model", "champion", "2")
    monkeypatch.setenv("_MLFLOW_SERVER_FILE_STORE", uri)

    page = client.get("/lineage/models/file-model")
    assert page.status_code == 200
    body = page.get_data(as_text=True)
    assert "sales" in body and "@champion" in body
    versions = client.get("/lineage/api/models/file-model").get_json()["versions"]
    assert [(v["version"], [t["version"] for t in v["tables"]]) for v in versions] == [
        ("2", [1]),
        ("1", [0]),
    ]
    assert versions[0]["aliases"] == ["champion"] and versions[0]["in_use"] is True
    table = client.get("/lineage/api/tables/sales").get_json()
    readers = {v["version"]: [m["version"] for r in v["readers"] for m in r["model_versions"]]
               for v in table["versions"]}  # fmt: skip
    assert readers == {1: ["2"], 0: ["1"]}
    assert client.get("/lineage/models/no-such-model").status_code == 404


def test_an_index_that_cannot_be_opened_is_a_503_without_its_password(
    tmp_path, client, monkeypatch, sqlite_uri
):
    monkeypatch.setenv("_MLFLOW_SERVER_FILE_STORE", f"lineage+{sqlite_uri}")
    uri = f"lineage+{sqlite_uri}"
    MlflowClient(uri, registry_uri=uri).create_registered_model("m")
    # A PostgreSQL URL nobody listens on, with a password in it.
    monkeypatch.setenv("MLFLOW_LINEAGE_INDEX_URI", "postgresql://u:s3cret@127.0.0.1:9/none")
    for path in ("/lineage/models/m", "/lineage/api/models/m"):
        answer = client.get(path)
        body = answer.get_data(as_text=True)
        assert answer.status_code == 503, body
        assert "Cannot open the lineage index" in body
        assert "s3cret" not in body and "Traceback" not in body
