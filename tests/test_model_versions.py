"""Model versions carry their source run's lineage, attached in create_model_version."""

from __future__ import annotations

import mlflow
import numpy as np
import pytest
from deltalake import DeltaTable
from helpers import read_pandas
from mlflow import MlflowClient
from postgres import on_backends
from sklearn.linear_model import Ridge

import lineage_plugin as lp
from lineage_plugin.errors import LineageNotFoundError
from lineage_plugin.records import ModelVersionLineage

pytestmark = pytest.mark.usefixtures("lineage_tracking")


def train_on(path: str, version: int | None = None, **log_kwargs):
    frame = read_pandas(DeltaTable(path, version=version))
    model = Ridge().fit(frame[["x"]].to_numpy(), frame["y"].to_numpy())
    return mlflow.sklearn.log_model(model, name="model", **log_kwargs)


@on_backends()
def test_log_model_with_registered_name_attaches_lineage(make_table):
    path = make_table(commits=3)
    with mlflow.start_run() as run:
        train_on(path, version=1, registered_model_name="ridge")
    lineage = lp.get_lineage("ridge", 1)
    assert isinstance(lineage, ModelVersionLineage)
    assert lineage.status == "complete"
    assert lineage.run is not None and lineage.run.run_id == run.info.run_id
    assert [(i.name, i.version) for i in lineage.inputs] == [("sales", 1)]
    assert lineage.run.environment.packages["scikit-learn"]
    tags = MlflowClient().get_model_version("ridge", "1").tags
    assert tags["lineage.tables"] == "sales@v1"
    assert tags["lineage.run_id"] == run.info.run_id


def test_register_model_from_runs_uri(make_table):
    path = make_table(commits=2)
    with mlflow.start_run() as run:
        train_on(path)
    mv = mlflow.register_model(f"runs:/{run.info.run_id}/model", "ridge")
    assert [i.version for i in lp.get_lineage("ridge", mv.version).inputs] == [1]


def test_version_from_a_logged_model_without_run_id(make_table):
    path = make_table(commits=2)
    with mlflow.start_run():
        info = train_on(path, version=0)
    client = MlflowClient()
    client.create_registered_model("from-logged-model")
    mv = client.create_model_version("from-logged-model", source=f"models:/{info.model_id}")
    assert [i.version for i in lp.get_lineage("from-logged-model", mv.version).inputs] == [0]


def test_two_versions_trained_on_a_changing_table(make_table):
    from deltalake import write_deltalake

    path = make_table(commits=1)
    with mlflow.start_run():
        train_on(path, registered_model_name="ridge")
    import pyarrow as pa

    write_deltalake(path, pa.table({"id": [9], "x": [5.0], "y": [1.0]}), mode="append")
    with mlflow.start_run():
        train_on(path, registered_model_name="ridge")
    assert [lp.get_lineage("ridge", v).inputs[0].version for v in (1, 2)] == [0, 1]


def test_copy_model_version_keeps_lineage(make_table):
    path = make_table(commits=2)
    with mlflow.start_run() as run:
        train_on(path, version=1, registered_model_name="ridge")
    client = MlflowClient()
    copy = client.copy_model_version("models:/ridge/1", "ridge-prod")
    lineage = lp.get_lineage("ridge-prod", copy.version)
    assert lineage.run.run_id == run.info.run_id
    assert [i.version for i in lineage.inputs] == [1]


def test_source_run_without_lineage_registers_as_missing(tmp_path):
    with mlflow.start_run() as run:
        model = Ridge().fit(np.array([[0.0], [1.0]]), np.array([0.0, 1.0]))
        mlflow.sklearn.log_model(model, name="model")
    mv = mlflow.register_model(f"runs:/{run.info.run_id}/model", "no-data")
    lineage = lp.get_lineage("no-data", mv.version)
    assert lineage.status == "missing"
    assert lineage.inputs == ()
    tags = MlflowClient().get_model_version("no-data", mv.version).tags
    assert tags["lineage.status"] == "missing"


def test_prompt_versions_are_left_alone(make_table):
    make_table()
    from mlflow.tracking._model_registry.utils import _get_store

    mlflow.genai.register_prompt(name="greeting", template="Hello {{name}}")
    # The client hides prompts from get_model_version; the store shows every tag.
    tags = _get_store().get_model_version("greeting", "1").tags
    assert tags["mlflow.prompt.text"] == "Hello {{name}}"
    assert not any(k.startswith("lineage.") for k in tags)


def test_user_tags_are_kept(make_table):
    path = make_table()
    with mlflow.start_run() as run:
        train_on(path)
    client = MlflowClient()
    client.create_registered_model("tagged")
    mv = client.create_model_version(
        "tagged", f"runs:/{run.info.run_id}/model", run_id=run.info.run_id, tags={"team": "risk"}
    )
    tags = client.get_model_version("tagged", mv.version).tags
    assert tags["team"] == "risk"
    assert tags["lineage.status"] == "complete"


def test_get_lineage_of_unknown_version_is_a_clear_error():
    with pytest.raises(LineageNotFoundError, match="'nope' version 3 was not found"):
        lp.get_lineage("nope", 3)
