"""Shared fixtures: real MLflow stores in tmp_path, real Delta tables written with deltalake."""

from __future__ import annotations

import os
import shutil
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import mlflow
import pytest
from helpers import tracking_at
from mariadb import MariadbServer, find_binaries, mariadb_server
from postgres import PostgresServer, find_bin_dir, fresh_database, postgres_server
from sql_server import binaries_or_fail

# Tests never reach the network: MLflow telemetry off.
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "true")


@pytest.fixture(scope="session")
def _migrated_sqlite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One MLflow SQLite database with every migration applied, copied by each test."""
    from mlflow.store.model_registry.sqlalchemy_store import SqlAlchemyStore as RegistryStore
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    path = tmp_path_factory.mktemp("template") / "mlflow.db"
    SqlAlchemyStore(f"sqlite:///{path}", str(path.parent / "artifacts"))
    RegistryStore(f"sqlite:///{path}")
    return path


@pytest.fixture
def sqlite_uri(tmp_path: Path, _migrated_sqlite: Path) -> str:
    """A fresh, fully migrated MLflow SQLite database in ``tmp_path``."""
    target = tmp_path / "mlflow.db"
    shutil.copyfile(_migrated_sqlite, target)
    return f"sqlite:///{target}"


@pytest.fixture
def lineage_tracking(
    tmp_path: Path, backend_uri: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    """A ``lineage+`` tracking and registry URI (on SQLite unless ``backend_uri`` is
    parametrized) with capture on; state reset after."""
    monkeypatch.chdir(tmp_path)
    uri = f"lineage+{backend_uri}"
    with tracking_at(uri):
        mlflow.set_experiment("lineage-tests")
        yield uri
        while mlflow.active_run():
            mlflow.end_run()
    # set_experiment() also exports MLFLOW_EXPERIMENT_ID; it must not leak into later tests.
    os.environ.pop("MLFLOW_EXPERIMENT_ID", None)
    mlflow.tracking.fluent._active_experiment_id = None


# --- PostgreSQL and MariaDB ------------------------------------------------------------------
# A real server of each for the whole session (tests/postgres.py, tests/mariadb.py), started
# only when a test asks for it; a fresh, MLflow-migrated database per test; and ``backend_uri``,
# the SQL database a store or index test runs on: SQLite, or each of postgres.SQL_BACKENDS with
# ``@postgres.on_backends()``.


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """The session's PostgreSQL server. Missing binaries fail the test: CI always has them."""
    with postgres_server(binaries_or_fail(find_bin_dir)) as server:
        yield server


@pytest.fixture(scope="session")
def mariadb() -> Iterator[MariadbServer]:
    """The session's MariaDB server. Missing binaries fail the test: CI always has them."""
    with mariadb_server(binaries_or_fail(find_binaries)) as server:
        yield server


@pytest.fixture
def mariadb_uri(mariadb: MariadbServer) -> Iterator[str]:
    """A fresh, fully migrated MLflow database on MariaDB (``mysql+pymysql://`` URL)."""
    with mariadb.database() as url:
        yield url


@pytest.fixture
def postgres_uri(postgres: PostgresServer) -> Iterator[str]:
    """A fresh, fully migrated MLflow database on PostgreSQL (plain ``postgresql://`` URL)."""
    with postgres.database() as url:
        yield url


@pytest.fixture
def backend_uri(request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh, fully migrated MLflow database: SQLite (``sqlite_uri``) unless parametrized
    indirectly with a dialect from ``postgres.SQL_BACKENDS``."""
    dialect = getattr(request, "param", "sqlite")
    if dialect == "sqlite":
        yield request.getfixturevalue("sqlite_uri")
        return
    with fresh_database(request, dialect) as url:
        yield url


@pytest.fixture
def twin_database(backend_uri: str, request: pytest.FixtureRequest) -> Iterator[str]:
    """A second fresh MLflow database of the same kind as ``backend_uri`` (a stock baseline)."""
    with fresh_database(request, backend_uri.split("://", 1)[0], "twin.db") as url:
        yield url


# --- end of PostgreSQL and MariaDB ----------------------------------------------------------


@pytest.fixture
def make_table(tmp_path: Path) -> Callable[..., str]:
    """Write a small Delta table with ``commits`` appends; returns its path."""
    import pyarrow as pa
    from deltalake import write_deltalake

    def make(name: str = "sales", commits: int = 1, rows: int = 3, **kwargs: object) -> str:
        path = str(tmp_path / name)
        for c in range(commits):
            data = pa.table(
                {
                    "id": list(range(c * rows, (c + 1) * rows)),
                    "x": [float(i) for i in range(rows)],
                    "y": [float(c)] * rows,
                }
            )
            write_deltalake(path, data, mode="append", **kwargs)
        return path

    return make


@pytest.fixture
def no_lineage_warnings() -> Iterator[None]:
    from lineage_plugin.tracking.capture import LineageWarning

    with warnings.catch_warnings():
        warnings.simplefilter("error", LineageWarning)
        yield


# --- Spark: one local session with the Delta jars for the whole test session ----------------


@pytest.fixture(scope="session")
def spark(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """The test session's SparkSession (``local[2]``, Delta extension and catalog)."""
    from spark_session import start_session

    session = start_session(tmp_path_factory.mktemp("spark-warehouse"))
    yield session
    session.stop()


# --- The registry UI in this process ---------------------------------------------------------
# MLflow's Flask app is a process-wide singleton: the lineage pages are installed on it once;
# each module that serves a registry from it points `mlflow server`'s variable at that registry.


@pytest.fixture(scope="session")
def lineage_flask_app() -> object:
    """MLflow's Flask app (``mlflow.server.app``) with the lineage pages installed."""
    from lineage_plugin.ui.app import install
    from mlflow.server import app

    return install(app)


@pytest.fixture(scope="module")
def hostile_registry(
    tmp_path_factory: pytest.TempPathFactory, _migrated_sqlite: Path, lineage_flask_app: object
) -> Iterator[dict[str, object]]:
    """``tests/hostile_registry.py``'s registry, served by ``lineage_flask_app`` for the module
    (``_MLFLOW_SERVER_FILE_STORE``, as ``mlflow server`` sets it); adds ``client``, a Flask
    test client."""
    from hostile_registry import build
    from mlflow.server.constants import BACKEND_STORE_URI_ENV_VAR

    built = build(tmp_path_factory.mktemp("ui"), _migrated_sqlite)
    before = os.environ.get(BACKEND_STORE_URI_ENV_VAR)
    os.environ[BACKEND_STORE_URI_ENV_VAR] = built["uri"]
    try:
        yield {**built, "client": lineage_flask_app.test_client()}
    finally:
        if before is None:
            os.environ.pop(BACKEND_STORE_URI_ENV_VAR, None)
        else:
            os.environ[BACKEND_STORE_URI_ENV_VAR] = before
