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
    tmp_path: Path, sqlite_uri: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    """A ``lineage+sqlite`` tracking and registry URI with capture on; state reset after."""
    monkeypatch.chdir(tmp_path)
    uri = f"lineage+{sqlite_uri}"
    with tracking_at(uri):
        mlflow.set_experiment("lineage-tests")
        yield uri
        while mlflow.active_run():
            mlflow.end_run()
    # set_experiment() also exports MLFLOW_EXPERIMENT_ID; it must not leak into later tests.
    os.environ.pop("MLFLOW_EXPERIMENT_ID", None)
    mlflow.tracking.fluent._active_experiment_id = None


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
