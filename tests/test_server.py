"""A real ``mlflow server --backend-store-uri lineage+sqlite:`` serves stock clients unchanged."""

from __future__ import annotations

import shutil
import urllib.request

import mlflow
import pytest
from deltalake import DeltaTable
from helpers import read_pandas, tracking_at
from mlflow import MlflowClient
from server import mlflow_server
from store_workout import workout

import lineage_plugin as lp

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def servers(tmp_path_factory, _migrated_sqlite):
    """Two real servers: one on lineage+sqlite, one on plain sqlite (the baseline)."""
    root = tmp_path_factory.mktemp("servers")
    (root / "lineage").mkdir()
    (root / "plain").mkdir()
    shutil.copyfile(_migrated_sqlite, root / "lineage" / "mlflow.db")
    shutil.copyfile(_migrated_sqlite, root / "plain" / "mlflow.db")
    with (
        mlflow_server(
            f"lineage+sqlite:///{root / 'lineage' / 'mlflow.db'}", root / "lineage"
        ) as lin,
        mlflow_server(f"sqlite:///{root / 'plain' / 'mlflow.db'}", root / "plain") as plain,
    ):
        yield {"lineage": lin, "plain": plain}


def test_stock_client_sees_the_same_behaviour_over_http(servers):
    assert workout(servers["lineage"]) == workout(servers["plain"])


def test_stock_ui_is_served(servers):
    with urllib.request.urlopen(servers["lineage"] + "/") as resp:
        page = resp.read().decode()
    assert resp.status == 200 and "<html" in page.lower()
    api = servers["lineage"] + "/ajax-api/2.0/mlflow/experiments/search?max_results=10"
    with urllib.request.urlopen(api) as resp:
        assert resp.status == 200 and b"experiments" in resp.read()


def test_server_attaches_lineage_for_a_stock_registry_client(servers, make_table, monkeypatch):
    """The client registers over plain http://; the server's lineage+ store attaches lineage."""
    path = make_table(commits=2)
    # Capture in the client; registration itself goes through the stock RestStore.
    with tracking_at(servers["lineage"]):
        mlflow.set_experiment("server-lineage")
        with mlflow.start_run() as run:
            read_pandas(DeltaTable(path, version=0))
        client = MlflowClient()
        client.create_registered_model("served")
        mv = client.create_model_version("served", f"runs:/{run.info.run_id}/m", run.info.run_id)
        tags = client.get_model_version("served", mv.version).tags
        assert tags["lineage.run_id"] == run.info.run_id
        assert tags["lineage.tables"] == "sales@v0"
        assert "lineage.manifest" in tags


def test_lineage_client_and_lineage_server_attach_once(servers, make_table):
    path = make_table(commits=1)
    with tracking_at("lineage+" + servers["lineage"]):
        mlflow.set_experiment("both-sides")
        with mlflow.start_run() as run:
            read_pandas(DeltaTable(path))
            mlflow.log_text("artifact through lineage+http", "notes.txt")
        client = MlflowClient()
        client.create_registered_model("both-sides")
        mv = client.create_model_version(
            "both-sides", f"runs:/{run.info.run_id}/m", run.info.run_id
        )
        assert mlflow.artifacts.load_text(f"runs:/{run.info.run_id}/notes.txt").startswith(
            "artifact"
        )
        lineage = lp.get_lineage("both-sides", mv.version)
        assert lineage.status == "complete"
        assert [i.version for i in lineage.inputs] == [0]
