"""Two runs of one experiment that read the same table version at the same moment both log its
MLflow dataset; MLflow's SQL store inserts it twice and one ``log_inputs`` fails on the unique
key. The loser's lineage must still be written whole (found by ``test_concurrency`` on
PostgreSQL). Here the other run's insert is held open in a real PostgreSQL transaction, so the
plugin's ``log_inputs`` waits for it and loses, every time.
"""

from __future__ import annotations

import threading
import uuid

import mlflow
import sqlalchemy as sa
from deltalake import DeltaTable
from helpers import lineage_tags, read_pandas
from postgres import on_backends

from lineage_plugin import tags as T
from lineage_plugin.tracking.writer import ARTIFACT_DIR, MANIFEST_FILE

COPY_DATASET = sa.text(
    "INSERT INTO datasets (dataset_uuid, experiment_id, name, digest, dataset_source_type, "
    "dataset_source, dataset_schema, dataset_profile) SELECT :uuid, :experiment, name, digest, "
    "dataset_source_type, dataset_source, dataset_schema, dataset_profile FROM datasets"
)


@on_backends("postgresql")
def test_a_run_that_loses_the_race_for_its_dataset_still_records_it(
    lineage_tracking, backend_uri, make_table, no_lineage_warnings
):
    path = make_table()
    with mlflow.start_run():
        read_pandas(DeltaTable(path))  # the dataset sales@v0 exists in the first experiment
    second = mlflow.set_experiment("second").experiment_id
    engine = sa.create_engine(backend_uri)
    conn = engine.connect()
    other_run = conn.begin()
    conn.execute(COPY_DATASET, {"uuid": uuid.uuid4().hex, "experiment": int(second)})
    commit = threading.Timer(1.0, other_run.commit)  # while the plugin's insert waits on it
    commit.start()
    try:
        with mlflow.start_run() as run:
            read_pandas(DeltaTable(path))
    finally:
        commit.join()
        conn.close()
        engine.dispose()
    run_id = run.info.run_id
    assert lineage_tags(run_id)[T.STATUS] == "complete"
    logged = mlflow.get_run(run_id).inputs.dataset_inputs
    assert [d.dataset.name for d in logged] == ["sales@v0"]
    listed = mlflow.artifacts.list_artifacts(run_id=run_id, artifact_path=ARTIFACT_DIR)
    assert f"{ARTIFACT_DIR}/{MANIFEST_FILE}" in [a.path for a in listed]
