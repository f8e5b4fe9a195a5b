"""lineage+X is MLflow's store for X: same type checks, same behaviour, same errors."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import tomllib
from mlflow.exceptions import MlflowException
from mlflow.store.model_registry.file_store import FileStore as RegistryFileStore
from mlflow.store.model_registry.sqlalchemy_store import SqlAlchemyStore as RegistrySqlStore
from mlflow.store.tracking.file_store import FileStore
from mlflow.store.tracking.rest_store import RestStore
from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore
from mlflow.tracking._model_registry.utils import _get_store as registry_store
from mlflow.tracking._tracking_service.utils import _get_store as tracking_store
from postgres import SQL_BACKENDS, on_backends
from store_workout import workout

from lineage_plugin.errors import UnsupportedURIError
from lineage_plugin.store.uris import SUPPORTED_SCHEMES, inner_uri, supported_uri_schemes

ROOT = Path(__file__).resolve().parents[1]


@on_backends(*SQL_BACKENDS, "postgresql+psycopg")
def test_sql_stores_are_still_sqlalchemy_stores(backend_uri):
    tracking = tracking_store(f"lineage+{backend_uri}")
    registry = registry_store(f"lineage+{backend_uri}")
    assert isinstance(tracking, SqlAlchemyStore)
    assert isinstance(registry, RegistrySqlStore)
    assert tracking.db_uri == backend_uri  # MLflow's own engine, on the backend URI
    assert registry.engine.url.drivername == backend_uri.split("://")[0].replace("+pysqlite", "")


@pytest.fixture
def allow_file_store(monkeypatch):
    # MLflow 3.17 refuses the (deprecated) file store unless asked to allow it.
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")


def test_file_and_http_stores_keep_their_types(tmp_path, allow_file_store):
    uri = (tmp_path / "mlruns").as_uri()
    assert isinstance(tracking_store(f"lineage+{uri}"), FileStore)
    assert isinstance(registry_store(f"lineage+{uri}"), RegistryFileStore)
    rest = tracking_store("lineage+http://127.0.0.1:1")
    assert isinstance(rest, RestStore)
    # `mlflow gc` checks for hard deletes: a REST store must not seem to have them
    assert not hasattr(rest, "_hard_delete_run") and not hasattr(rest, "_hard_delete_experiment")
    assert hasattr(tracking_store(f"lineage+{uri}"), "_hard_delete_run")


@on_backends()
def test_workout_is_identical_on_sql_backends(backend_uri, twin_database):
    assert workout(f"lineage+{backend_uri}") == workout(twin_database)


def test_workout_is_identical_on_file_store(tmp_path, allow_file_store):
    stock = workout((tmp_path / "plain").as_uri())
    assert workout("lineage+" + (tmp_path / "wrapped").as_uri()) == stock


def test_entry_points_cover_every_supported_scheme():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["entry-points"]
    expected = set(supported_uri_schemes())
    assert set(config["mlflow.tracking_store"]) == expected
    assert set(config["mlflow.model_registry_store"]) == expected
    assert {"postgresql+psycopg2", "mysql+pymysql", "mssql+pyodbc"} <= set(SUPPORTED_SCHEMES)


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("lineage+sqlite:///m.db", "sqlite:///m.db"),
        ("lineage+postgresql+psycopg2://u:p@h:5432/db", "postgresql+psycopg2://u:p@h:5432/db"),
        ("lineage+file:///tmp/mlruns", "file:///tmp/mlruns"),
        ("lineage+https://mlflow.example.com", "https://mlflow.example.com"),
    ],
)
def test_inner_uri(uri, expected):
    assert inner_uri(uri) == expected


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("lineage+lineage+sqlite:///m.db", "Use a single prefix: 'lineage+sqlite:///m.db'"),
        ("lineage+nosuch://x", "unsupported backend scheme 'nosuch'"),
        ("sqlite:///m.db", "must start with 'lineage+'"),
    ],
)
def test_bad_lineage_uris_are_refused_with_what_to_do(uri, message):
    with pytest.raises(UnsupportedURIError, match=re.escape(message)) as info:
        inner_uri(uri)
    if "nosuch" in uri:
        assert "lineage+sqlite" in str(info.value) and "lineage+https" in str(info.value)


@pytest.mark.parametrize("uri", ["lineage+nosuch://x", "lineage+lineage+sqlite:///m.db"])
def test_mlflow_refuses_unknown_lineage_schemes_and_lists_the_supported_ones(uri):
    with pytest.raises(MlflowException) as info:
        tracking_store(uri)
    assert "lineage+sqlite" in info.value.message
    assert "lineage+postgresql+psycopg2" in info.value.message
