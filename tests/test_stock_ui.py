"""The stock MLflow UI, in a real headless Chromium, served by ``--backend-store-uri lineage+``.

The plugin changes nothing in the UI: it must load, and show the lineage the plugin wrote as
ordinary MLflow data (model-version tags, run tags, dataset inputs).
"""

from __future__ import annotations

import shutil

import mlflow
import pytest
from browser import chromium
from deltalake import DeltaTable
from helpers import read_pandas, tracking_at
from mlflow import MlflowClient
from server import mlflow_server

LINEAGE_UI = "http://mlflow.example:5000"
pytestmark = pytest.mark.slow

playwright_api = pytest.importorskip("playwright.sync_api")


@pytest.fixture(scope="module")
def browser():
    with chromium() as browser:
        yield browser


@pytest.fixture
def served_model(tmp_path, _migrated_sqlite, make_table):
    shutil.copyfile(_migrated_sqlite, tmp_path / "mlflow.db")
    path = make_table(commits=2)
    with (
        mlflow_server(
            f"lineage+sqlite:///{tmp_path / 'mlflow.db'}",
            tmp_path,
            env={"MLFLOW_LINEAGE_UI_URL": LINEAGE_UI},
        ) as url,
        tracking_at(url),
    ):
        mlflow.set_experiment("ui")
        with mlflow.start_run() as run:
            read_pandas(DeltaTable(path, version=1))
        client = MlflowClient()
        client.create_registered_model("ui-model")
        client.create_model_version("ui-model", f"runs:/{run.info.run_id}/m", run.info.run_id)
        yield url, run.info.run_id


def test_stock_ui_shows_the_lineage_of_a_model_version(browser, served_model):
    url, run_id = served_model
    page = browser.new_page()
    try:
        page.goto(f"{url}/#/models/ui-model/versions/1", wait_until="domcontentloaded")
        page.get_by_text("lineage.tables").first.wait_for(timeout=60_000)
        assert page.get_by_text("sales@v1").first.is_visible()
        # The description, rendered as Markdown, leads to the version's lineage page.
        link = page.get_by_role("link", name="Data lineage of this version")
        assert link.is_visible()
        assert link.get_attribute("href") == f"{LINEAGE_UI}/lineage/models/ui-model/versions/1"
        assert page.get_by_text("added by mlflow-delta-lineage").first.is_visible()
        experiment = mlflow.get_run(run_id).info.experiment_id
        page.goto(f"{url}/#/experiments/{experiment}/runs/{run_id}", wait_until="domcontentloaded")
        page.get_by_text("sales@v1").first.wait_for(timeout=60_000)  # the dataset input
        assert page.get_by_text("lineage.env.pkg.deltalake").first.is_visible()
    finally:
        page.close()
