"""MLflow features that parse the raw backend URI themselves, with lineage+ URIs.

- ``mlflow db upgrade``: works (SQLAlchemy dialect entry points ``lineage.<db>``).
- ``mlflow gc``: works (the store is MLflow's own class).
- gateway and webhooks ``isinstance`` checks: work (see test_store_equivalence).
- ``mlflow-artifacts:`` with a ``lineage+http`` client: works (see test_server).
- workspace and scorer stores: work (their own entry points).
- server job execution: off, with a warning that says what to do (MLflow reads the raw URI).
"""

from __future__ import annotations

import logging
import sqlite3
import subprocess

import pytest
from helpers import run_python
from mlflow import MlflowClient


def cli(*args: str, cwd, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return run_python("-m", "mlflow", *args, cwd=cwd, **(env or {}))


def test_db_upgrade_accepts_a_lineage_uri(tmp_path):
    db = tmp_path / "fresh.db"
    result = cli("db", "upgrade", f"lineage+sqlite:///{db}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    with sqlite3.connect(db) as conn:
        assert conn.execute("select count(*) from alembic_version").fetchone()[0] == 1
        tables = {r[0] for r in conn.execute("select name from sqlite_master")}
    assert {"runs", "registered_models", "model_versions"} <= tables


def test_gc_hard_deletes_through_a_lineage_uri(tmp_path, sqlite_uri):
    uri = f"lineage+{sqlite_uri}"
    client = MlflowClient(uri)
    exp = client.create_experiment("gc", artifact_location=str(tmp_path / "art"))
    keep, drop = client.create_run(exp), client.create_run(exp)
    client.delete_run(drop.info.run_id)
    result = cli("gc", "--backend-store-uri", uri, cwd=tmp_path, env={"MLFLOW_TRACKING_URI": uri})
    assert result.returncode == 0, result.stderr
    with sqlite3.connect(sqlite_uri[len("sqlite:///") :]) as conn:
        left = {r[0] for r in conn.execute("select run_uuid from runs")}
    assert left == {keep.info.run_id}


def test_workspace_and_scorer_stores_resolve_lineage_uris(sqlite_uri):
    from mlflow.genai.scorers.registry import MlflowTrackingStore, _scorer_store_registry
    from mlflow.store.workspace.sqlalchemy_store import SqlAlchemyStore as WorkspaceStore
    from mlflow.tracking._workspace.registry import _get_workspace_store_registry

    assert isinstance(
        _get_workspace_store_registry().get_store(f"lineage+{sqlite_uri}"), WorkspaceStore
    )
    assert isinstance(
        _scorer_store_registry.get_store(f"lineage+{sqlite_uri}"), MlflowTrackingStore
    )


def test_server_backend_warns_that_jobs_need_a_plain_uri(sqlite_uri, monkeypatch, caplog):
    from lineage_plugin.store.wrapping import build_tracking_store

    uri = f"lineage+{sqlite_uri}"
    monkeypatch.setenv("_MLFLOW_SERVER_FILE_STORE", uri)
    with caplog.at_level(logging.WARNING):
        build_tracking_store(uri)
    assert f"mlflow server --backend-store-uri {sqlite_uri}" in caplog.text
    caplog.clear()
    monkeypatch.setenv("_MLFLOW_SERVER_FILE_STORE", "sqlite:///other.db")
    with caplog.at_level(logging.WARNING):
        build_tracking_store(uri)  # a client process: nothing to say
    assert "job runner" not in caplog.text


def test_registry_store_signature_keeps_local_model_path(sqlite_uri):
    import inspect

    from mlflow.store.model_registry.sqlalchemy_store import SqlAlchemyStore
    from mlflow.tracking._model_registry.utils import _get_store

    wrapped = _get_store(f"lineage+{sqlite_uri}")
    assert list(inspect.signature(wrapped.create_model_version).parameters) == list(
        inspect.signature(SqlAlchemyStore(sqlite_uri).create_model_version).parameters
    )


@pytest.mark.parametrize("flag", ["true", "1"])
def test_env_var_turns_capture_on_at_mlflow_import(tmp_path, flag, make_table):
    """MLFLOW_LINEAGE_AUTOLOG=true, plain sqlite: URI, no plugin import in the user's code."""
    path = make_table(commits=2)
    code = f"""
import mlflow, pyarrow.fs as fs
from deltalake import DeltaTable
mlflow.set_tracking_uri("sqlite:///{tmp_path}/env.db")
with mlflow.start_run() as run:
    DeltaTable({path!r}, version=1).to_pandas(
        filesystem=fs.SubTreeFileSystem({path!r}, fs.LocalFileSystem()))
print(mlflow.get_run(run.info.run_id).data.tags.get("lineage.tables"))
"""
    result = run_python("-c", code, cwd=tmp_path, MLFLOW_LINEAGE_AUTOLOG=flag)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "sales@v1"


def test_plugin_load_imports_no_engine(tmp_path):
    engines = "('deltalake','polars','pyspark','pyarrow','pandas','sklearn')"
    stock = run_python(
        "-c",
        f"import sys, mlflow; print(sorted(m for m in {engines} if m in sys.modules))",
        cwd=tmp_path,
    )
    code = (
        "import sys, mlflow; from mlflow.tracking._model_registry.utils import _get_store_registry;"
        f" _get_store_registry(); print(sorted(m for m in {engines} if m in sys.modules));"
        " print('lineage_plugin' in sys.modules)"
    )
    result = run_python("-c", code, cwd=tmp_path, MLFLOW_LINEAGE_AUTOLOG="true")
    assert result.returncode == 0, result.stderr
    loaded, plugin_loaded = result.stdout.strip().splitlines()[-2:]
    assert plugin_loaded == "True"  # the entry points were loaded, capture is on ...
    # ... and no engine beyond what MLflow 3.17 imports itself (polars, pyarrow, and pyspark
    # when it is installed); never deltalake.
    assert loaded == stock.stdout.strip().splitlines()[-1] and "deltalake" not in loaded
