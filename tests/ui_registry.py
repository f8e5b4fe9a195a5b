"""A small registry for the UI tests, built through real MLflow APIs on a ``lineage+sqlite:`` store.

Three models (``churn``, ``forecast`` and one whose name is markup), their versions trained on
two Delta tables (``sales`` and ``stores``, written with ``deltalake``), stage and alias changes
in three groups about a second apart (``Registry.marks`` holds a whole second between each
group and the next, as an "as of" input can name it), then a bad write to ``sales`` and a
``restore`` of the champion, and a version trained on the restored copy.

Hostile values (:data:`HOSTILE`, :data:`HOSTILE_IMG`) are in a model name, a model
description, run names, run and model-version tags, a run parameter, a Delta commit's user and
the user of registry changes: the pages must show them as text.

What ``churn`` holds, group by group:

=========  ====================  ===================  ==============================
group      @champion             Production           trained on (champion)
=========  ====================  ===================  ==============================
1          v1                    v1                   sales v0, stores v0
2          v2 (@challenger v3)   v2 (v3 Staging)      sales v1, stores v0
3          v3                    v3                   sales v2, stores v1
=========  ====================  ===================  ==============================

Then ``sales`` v3 is a bad DELETE, v4 its restore to v2 (``restore churn 3``), and ``churn``
v4 is trained on v4, a restored copy of v2.
"""

from __future__ import annotations

import math
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import mlflow
from helpers import read_pandas, tracking_at

#: Markup that must render as text.
HOSTILE = "<script>alert(1)</script>"
HOSTILE_IMG = '"><img src=x onerror=alert(1)>'
#: A registered model whose name is markup (names cannot hold ``/`` or ``:``).
HOSTILE_MODEL = f"churn {HOSTILE_IMG}"
#: Who makes the group-3 registry changes and the bad write.
HOSTILE_USER = f"mallory{HOSTILE_IMG}"
#: The run name of ``churn`` v1, and a parameter value that differs between versions.
HOSTILE_RUN = f"train {HOSTILE}"


@dataclass(frozen=True)
class Table:
    """A Delta table of the registry."""

    name: str
    path: str
    table_id: str


@dataclass(frozen=True)
class Registry:
    """What the UI tests need to know about the registry they look at.

    Attributes:
        db: The MLflow SQLite database (the lineage index is in it too).
        tracking_uri: ``lineage+sqlite:///<db>``.
        experiment_id: The experiment every run is in.
        sales: The table with the bad write and the restore.
        stores: The other table.
        runs: Run id of each model version, keyed ``(model, version)``.
        marks: Epoch ms of a whole second after each group of registry changes ends and before
            the next begins, keyed by group (1, 2, 3).
        bad_write: The ``sales`` version of the bad write.
        restored: The ``sales`` version the restore made (a copy of v2).
    """

    db: Path
    tracking_uri: str
    experiment_id: str
    sales: Table
    stores: Table
    runs: dict[tuple[str, str], str] = field(default_factory=dict)
    marks: dict[int, int] = field(default_factory=dict)
    bad_write: int = 3
    restored: int = 4
    churn: str = "churn"
    forecast: str = "forecast"
    hostile_model: str = HOSTILE_MODEL


def _write(path: Path, start: int, rows: int) -> None:
    import pyarrow as pa
    from deltalake import write_deltalake

    ids = list(range(start, start + rows))
    write_deltalake(str(path), pa.table({"id": ids, "x": [float(i) for i in ids]}), mode="append")


def _bad_delete(path: Path, user: str) -> None:
    """A DELETE of most rows, committed as ``user``."""
    from deltalake import CommitProperties, DeltaTable

    props = CommitProperties(custom_metadata={"userName": user})
    DeltaTable(str(path)).delete("id > 0", commit_properties=props)


def _table(path: Path) -> Table:
    from deltalake import DeltaTable

    return Table(path.name, str(path), DeltaTable(str(path)).metadata().id)


def _train(client: Any, model: str, reads: list[tuple[Path, int]], **run: Any) -> tuple[str, str]:
    """A run reading each ``(table, version)``, registered as a new version of ``model``."""
    from deltalake import DeltaTable

    params = run.pop("params", {})
    with mlflow.start_run(**run) as active:
        for path, version in reads:
            read_pandas(DeltaTable(str(path), version=version))
        mlflow.log_params(params)
    run_id = active.info.run_id
    mv = client.create_model_version(model, f"runs:/{run_id}/model", run_id)
    return str(mv.version), run_id


def _next_second() -> int:
    """Wait until just past the next whole second; return that second as epoch ms."""
    mark = math.floor(time.time()) + 1
    time.sleep(max(mark + 0.15 - time.time(), 0))
    return mark * 1000


def build_registry(root: Path, template_db: Path) -> Registry:
    """Build the registry under ``root`` (a fresh directory) from a migrated MLflow database.

    Args:
        root: Where the database, the tables and the artifacts go.
        template_db: A migrated MLflow SQLite database (conftest's ``_migrated_sqlite``).

    Returns:
        The :class:`Registry`.
    """
    from mlflow import MlflowClient

    from lineage_plugin.recovery.restore import restore

    db = root / "mlflow.db"
    shutil.copyfile(template_db, db)
    uri = f"lineage+sqlite:///{db}"
    sales, stores = root / "sales", root / "stores"
    _write(sales, 0, 3)
    _write(sales, 3, 2)
    _write(stores, 0, 2)
    runs: dict[tuple[str, str], str] = {}
    marks: dict[int, int] = {}
    cwd = os.getcwd()
    os.chdir(root)
    try:
        with tracking_at(uri):
            experiment_id = mlflow.set_experiment("ui-registry").experiment_id
            client = MlflowClient()
            client.create_registered_model("churn", description="Predicts churn from sales.")
            client.create_registered_model("forecast")
            client.create_registered_model(HOSTILE_MODEL, description=f"{HOSTILE} {HOSTILE_IMG}")

            def train(model: str, reads: list[tuple[Path, int]], **run: Any) -> str:
                version, run_id = _train(client, model, reads, **run)
                runs[(model, version)] = run_id
                return version

            hostile_tags = {"note": HOSTILE, "owner": HOSTILE_IMG}
            train("churn", [(sales, 0), (stores, 0)], run_name=HOSTILE_RUN, tags=hostile_tags,
                  params={"alpha": HOSTILE})  # fmt: skip
            train("churn", [(sales, 1), (stores, 0)], params={"alpha": "0.5"})
            train("forecast", [(stores, 0)])
            train(HOSTILE_MODEL, [(sales, 1)], run_name=f"run {HOSTILE_IMG}")
            client.set_model_version_tag(HOSTILE_MODEL, "1", "note", HOSTILE)

            # Group 1: v1 is the champion.
            client.set_registered_model_alias("churn", "champion", "1")
            client.transition_model_version_stage("churn", "1", "Production")
            client.set_registered_model_alias("forecast", "champion", "1")
            client.set_registered_model_alias(HOSTILE_MODEL, "champion", "1")
            marks[1] = _next_second()

            # Group 2: new data, v2 the champion, v3 the challenger.
            _write(sales, 5, 2)
            _write(stores, 2, 2)
            train("churn", [(sales, 2), (stores, 1)], params={"alpha": "0.7"})
            train("forecast", [(stores, 1)])
            client.set_registered_model_alias("churn", "champion", "2")
            client.transition_model_version_stage("churn", "2", "Production", True)
            client.set_registered_model_alias("churn", "challenger", "3")
            client.transition_model_version_stage("churn", "3", "Staging")
            client.set_registered_model_alias("forecast", "challenger", "2")
            marks[2] = _next_second()

            # Group 3, by a user whose name is markup: v3 the champion.
            os.environ["MLFLOW_TRACKING_USERNAME"] = HOSTILE_USER
            try:
                client.set_registered_model_alias("churn", "champion", "3")
                client.delete_registered_model_alias("churn", "challenger")
                client.transition_model_version_stage("churn", "3", "Production", True)
                marks[3] = _next_second()
                # The bad write (a delete of rows still needed), then the restore of what the
                # champion was trained on.
                _bad_delete(sales, HOSTILE_USER)
                restore("churn", "3", reason="bad delete", allow_undo_deletes=True)
            finally:
                del os.environ["MLFLOW_TRACKING_USERNAME"]
            train("churn", [(sales, 4), (stores, 1)], params={"alpha": "0.7"})
    finally:
        os.chdir(cwd)
        # set_experiment() exports MLFLOW_EXPERIMENT_ID; it must not leak into other tests.
        os.environ.pop("MLFLOW_EXPERIMENT_ID", None)
        mlflow.tracking.fluent._active_experiment_id = None
    return Registry(
        db=db,
        tracking_uri=uri,
        experiment_id=experiment_id,
        sales=_table(sales),
        stores=_table(stores),
        runs=runs,
        marks=marks,
    )
