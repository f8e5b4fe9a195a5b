"""Capture of reads through deltalake, with a real lineage+sqlite store and real Delta tables."""

from __future__ import annotations

import json
import threading
import warnings

import mlflow
import pyarrow as pa
import pyarrow.fs as pafs
import pytest
from deltalake import DeltaTable, QueryBuilder, write_deltalake
from helpers import lineage_tags, read_pandas, runs_in_other_threads, set_in_commit_timestamp

import lineage_plugin as lp
from lineage_plugin.records import DeltaInput
from lineage_plugin.tracking.capture import LineageWarning

pytestmark = pytest.mark.usefixtures("lineage_tracking")


def inputs_of(run_id: str) -> list[DeltaInput]:
    return list(lp.get_run_lineage(run_id).inputs)


def test_to_pandas_records_the_loaded_version_once(make_table, no_lineage_warnings):
    path = make_table(commits=3)
    with mlflow.start_run() as run:
        df = read_pandas(DeltaTable(path, version=1))
    assert len(df) == 6
    (inp,) = inputs_of(run.info.run_id)
    assert inp.version == 1
    assert inp.uri == f"file://{path}"
    assert inp.engine == "deltalake"
    assert inp.operation == "WRITE"
    assert inp.table_id == DeltaTable(path).metadata().id
    with open(f"{path}/_delta_log/00000000000000000001.json") as fh:
        first_commit = json.loads(fh.readline())
    assert inp.commit_timestamp == first_commit["commitInfo"]["timestamp"]
    assert inp.timestamp_source == "commitInfo.timestamp"
    tags = lineage_tags(run.info.run_id)
    assert tags["lineage.status"] == "complete"
    assert tags["lineage.tables"] == "sales@v1"


def test_version_zero_is_a_version(make_table):
    path = make_table(commits=2)
    with mlflow.start_run() as run:
        read_pandas(DeltaTable(path, version=0))
    assert inputs_of(run.info.run_id)[0].version == 0


@pytest.mark.parametrize(
    "read",
    [
        lambda dt: dt.to_pyarrow_table(
            filesystem=pafs.SubTreeFileSystem(dt.table_uri[7:], pafs.LocalFileSystem())
        ),
        lambda dt: dt.to_pyarrow_dataset(
            filesystem=pafs.SubTreeFileSystem(dt.table_uri[7:], pafs.LocalFileSystem())
        ),
        lambda dt: dt.file_uris(),
        lambda dt: dt.scan().read_all(),
        lambda dt: QueryBuilder().register("sales", dt).execute("select * from sales").read_all(),
    ],
    ids=["to_pyarrow_table", "to_pyarrow_dataset", "file_uris", "scan", "query_builder"],
)
def test_every_read_path_is_recorded(make_table, read):
    path = make_table(commits=2)
    with mlflow.start_run() as run:
        read(DeltaTable(path))
    assert [i.version for i in inputs_of(run.info.run_id)] == [1]


def test_metadata_calls_are_not_reads(make_table):
    path = make_table(commits=2)
    with mlflow.start_run() as run:
        dt = DeltaTable(path)
        dt.version(), dt.history(), dt.schema(), dt.metadata(), dt.protocol()
        dt.get_add_actions(flatten=True)
    assert inputs_of(run.info.run_id) == []
    assert "lineage.status" not in lineage_tags(run.info.run_id)


def test_same_read_twice_is_recorded_once_and_other_versions_separately(make_table):
    path = make_table(commits=3)
    with mlflow.start_run() as run:
        read_pandas(DeltaTable(path, version=2))
        read_pandas(DeltaTable(path, version=2))
        read_pandas(DeltaTable(path, version=1))
    assert [i.version for i in inputs_of(run.info.run_id)] == [2, 1]


def test_columns_and_filters_are_recorded_and_credentials_never(make_table):
    path = make_table(commits=2)
    secret = "AKIA-very-secret"
    with mlflow.start_run() as run:
        dt = DeltaTable(path, storage_options={"AWS_SECRET_ACCESS_KEY": secret})
        dt.to_pyarrow_table(
            columns=["id", "x"],
            filters=[("id", ">", 1)],
            filesystem=pafs.SubTreeFileSystem(path, pafs.LocalFileSystem()),
        )
    (inp,) = inputs_of(run.info.run_id)
    assert inp.columns == ("id", "x")
    assert inp.filters == "[('id', '>', 1)]"
    everything = json.dumps(mlflow.get_run(run.info.run_id).to_dictionary())
    assert secret not in everything


def test_change_data_feed_records_its_range(make_table):
    path = make_table(commits=1, configuration={"delta.enableChangeDataFeed": "true"})
    for i in range(2):
        write_deltalake(path, pa.table({"id": [100 + i], "x": [0.0], "y": [9.0]}), mode="append")
    with mlflow.start_run() as run:
        DeltaTable(path).load_cdf(starting_version=1, ending_version=2).read_all()
    (inp,) = inputs_of(run.info.run_id)
    assert (inp.change_data_from, inp.version) == (1, 2)


def test_query_builder_records_only_tables_the_query_names(make_table):
    a, b = make_table("a"), make_table("b", commits=2)
    with mlflow.start_run() as run:
        qb = QueryBuilder().register("a", DeltaTable(a)).register("b", DeltaTable(b))
        qb.execute("select count(*) from b").read_all()
    assert [(i.name, i.version) for i in inputs_of(run.info.run_id)] == [("b", 1)]


def test_reads_outside_a_run_attach_to_the_next_run(make_table):
    path = make_table(commits=2)
    read_pandas(DeltaTable(path, version=0))
    with mlflow.start_run() as first:
        pass
    with mlflow.start_run() as second:
        pass
    assert [i.version for i in inputs_of(first.info.run_id)] == [0]
    assert inputs_of(second.info.run_id) == []


def test_reads_in_worker_threads_attach_to_the_one_active_run(make_table):
    path = make_table(commits=2)
    with mlflow.start_run() as run:
        workers = [
            threading.Thread(target=read_pandas, args=(DeltaTable(path, version=v),))
            for v in (0, 1)
        ]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
    assert sorted(i.version for i in inputs_of(run.info.run_id)) == [0, 1]


def test_worker_read_with_several_active_runs_warns_instead_of_guessing(make_table):
    path = make_table(commits=1)
    warned = pytest.warns(LineageWarning, match="several runs are active")
    with runs_in_other_threads(2) as run_ids, warned:
        read_pandas(DeltaTable(path))
    assert all(inputs_of(r) == [] for r in run_ids)


def test_read_context_labels_evaluation_reads(make_table):
    train, test = make_table("train"), make_table("holdout")
    with mlflow.start_run() as run:
        read_pandas(DeltaTable(train))
        with lp.read_context("evaluation"):
            read_pandas(DeltaTable(test))
    contexts = {i.name: i.context for i in inputs_of(run.info.run_id)}
    assert contexts == {"train": "training", "holdout": "evaluation"}
    datasets = mlflow.get_run(run.info.run_id).inputs.dataset_inputs
    by_name = {d.dataset.name: {t.key: t.value for t in d.tags} for d in datasets}
    assert by_name["holdout@v0"]["mlflow.data.context"] == "evaluation"


def test_captured_reads_are_logged_as_mlflow_datasets_with_versions(make_table):
    path = make_table(commits=3)
    with mlflow.start_run() as run:
        read_pandas(DeltaTable(path, version=0))
        read_pandas(DeltaTable(path, version=2))
    datasets = mlflow.get_run(run.info.run_id).inputs.dataset_inputs
    sources = sorted(
        (d.dataset.source_type, json.loads(d.dataset.source)["delta_table_version"])
        for d in datasets
    )
    assert sources == [("delta_table", 0), ("delta_table", 2)]


def test_in_commit_timestamp_is_preferred(make_table):
    path = make_table(commits=1)
    set_in_commit_timestamp(path, 0, 1_700_000_000_123)
    with mlflow.start_run() as run:
        read_pandas(DeltaTable(path))
    (inp,) = inputs_of(run.info.run_id)
    assert (inp.commit_timestamp, inp.timestamp_source) == (1_700_000_000_123, "inCommitTimestamp")


def test_no_capture_after_autolog_disable(make_table):
    path = make_table()
    lp.autolog(disable=True)
    try:
        with mlflow.start_run() as run:
            read_pandas(DeltaTable(path))
        assert inputs_of(run.info.run_id) == []
    finally:
        lp.autolog()


def test_warnings_are_not_emitted_for_normal_reads(make_table):
    path = make_table()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with mlflow.start_run():
            read_pandas(DeltaTable(path))


def test_cdf_without_ending_version_is_pinned_to_the_latest_version(make_table):
    path = make_table(commits=1, configuration={"delta.enableChangeDataFeed": "true"})
    old = DeltaTable(path)  # loaded at version 0 ...
    for i in range(2):  # ... while the table moves on to version 2
        write_deltalake(path, pa.table({"id": [50 + i], "x": [0.0], "y": [1.0]}), mode="append")
    with mlflow.start_run() as run:
        changes = old.load_cdf(starting_version=1).read_all()
    assert set(changes.column("_commit_version").to_pylist()) == {1, 2}
    (inp,) = inputs_of(run.info.run_id)
    assert (inp.change_data_from, inp.version) == (1, 2)


def test_cdf_by_timestamp_is_not_guessed(make_table):
    path = make_table(commits=2, configuration={"delta.enableChangeDataFeed": "true"})
    with mlflow.start_run() as run, pytest.warns(LineageWarning, match="by timestamp"):
        DeltaTable(path).load_cdf(starting_timestamp="2000-01-01T00:00:00Z").read_all()
    lineage = lp.get_run_lineage(run.info.run_id)
    assert (lineage.status, lineage.inputs) == ("incomplete", ())


def test_query_builder_records_the_version_registered_not_the_refreshed_one(make_table):
    path = make_table(commits=1)
    dt = DeltaTable(path)
    qb = QueryBuilder().register("sales", dt)
    write_deltalake(path, pa.table({"id": [7], "x": [0.0], "y": [0.0]}), mode="append")
    dt.update_incremental()  # dt is at version 1 now; the query builder still reads version 0
    with mlflow.start_run() as run:
        rows = qb.execute("select * from sales").read_all().num_rows
    assert rows == 3
    assert [i.version for i in inputs_of(run.info.run_id)] == [0]
