"""Capture through polars and through MLflow's own dataset API (mlflow.log_input)."""

from __future__ import annotations

import json

import mlflow
import polars as pl
import pyarrow as pa
import pytest
from deltalake import DeltaTable, write_deltalake
from mlflow.data.delta_dataset_source import DeltaDatasetSource

import lineage_plugin as lp

pytestmark = pytest.mark.usefixtures("lineage_tracking")


def inputs_of(run_id: str):
    return list(lp.get_run_lineage(run_id).inputs)


def append(path: str, rows: int = 2) -> None:
    write_deltalake(
        path, pa.table({"id": [99] * rows, "x": [0.0] * rows, "y": [7.0] * rows}), mode="append"
    )


def test_read_delta_is_recorded_as_polars(make_table):
    path = make_table(commits=2)
    with mlflow.start_run() as run:
        df = pl.read_delta(path, columns=["id", "x"])
    assert df.shape == (6, 2)
    (inp,) = inputs_of(run.info.run_id)
    assert (inp.engine, inp.version) == ("polars", 1)
    assert inp.columns is not None and set(inp.columns) == {"id", "x"}


def test_read_delta_with_a_version(make_table):
    path = make_table(commits=3)
    with mlflow.start_run() as run:
        df = pl.read_delta(path, version=0)
    assert len(df) == 3
    assert [i.version for i in inputs_of(run.info.run_id)] == [0]


def test_lazy_scan_records_the_version_read_at_collect_not_at_build(make_table):
    path = make_table(commits=1)
    lazy = pl.scan_delta(path).filter(pl.col("id") >= 0)
    append(path)  # the table moves on between building and collecting the scan
    with mlflow.start_run() as run:
        df = lazy.collect()
    (inp,) = inputs_of(run.info.run_id)
    assert inp.version == 1
    assert len(df) == 3 + 2  # the rows of version 1: the version recorded is the version read


def test_lazy_scan_built_in_a_run_and_never_collected_records_nothing(make_table):
    path = make_table()
    with mlflow.start_run() as run:
        pl.scan_delta(path)
    assert inputs_of(run.info.run_id) == []


def test_scan_delta_of_a_deltatable_object(make_table):
    path = make_table(commits=2)
    with mlflow.start_run() as run:
        pl.scan_delta(DeltaTable(path, version=0)).collect()
    assert [(i.engine, i.version) for i in inputs_of(run.info.run_id)] == [("polars", 0)]


def test_log_input_of_delta_source_keeps_version_zero(make_table):
    path = make_table(commits=2)
    source = DeltaDatasetSource(path=path, delta_table_version=0)
    frame = pl.DataFrame({"id": [1, 2]}).to_pandas()
    dataset = mlflow.data.from_pandas(frame, source=source)
    with mlflow.start_run() as run:
        mlflow.log_input(dataset, context="training")
    assert [(i.engine, i.version) for i in inputs_of(run.info.run_id)] == [("mlflow", 0)]
    logged = [
        json.loads(d.dataset.source)
        for d in mlflow.get_run(run.info.run_id).inputs.dataset_inputs
        if d.dataset.digest == dataset.digest
    ]
    assert logged == [{"delta_table_version": 0, "path": path}]


def test_log_input_dataset_is_not_logged_twice(make_table):
    path = make_table(commits=1)
    source = DeltaDatasetSource(path=path, delta_table_version=0)
    with mlflow.start_run() as run:
        frame = pl.DataFrame({"a": [1]}).to_pandas()
        mlflow.log_input(mlflow.data.from_pandas(frame, source=source))
    assert len(mlflow.get_run(run.info.run_id).inputs.dataset_inputs) == 1
    assert [i.engine for i in inputs_of(run.info.run_id)] == ["mlflow"]


def test_log_input_of_catalog_name_only_marks_the_run_incomplete(make_table):
    source = DeltaDatasetSource(delta_table_name="main.sales.orders", delta_table_version=3)
    frame = pl.DataFrame({"a": [1]}).to_pandas()
    with mlflow.start_run() as run, pytest.warns(UserWarning, match="catalog"):
        mlflow.log_input(mlflow.data.from_pandas(frame, source=source))
    lineage = lp.get_run_lineage(run.info.run_id)
    assert lineage.status == "incomplete"
    assert "catalog" in lineage.reasons[0]


def test_lazy_frame_collected_in_two_runs_is_recorded_in_both(make_table):
    path = make_table(commits=1)
    lazy = pl.scan_delta(path)
    with mlflow.start_run() as first:
        lazy.collect()
    append(path)
    with mlflow.start_run() as second:
        frame = lazy.collect()  # the scan stays on the version it resolved first
    assert len(frame) == 3
    assert [i.version for i in inputs_of(first.info.run_id)] == [0]
    assert [i.version for i in inputs_of(second.info.run_id)] == [0]


def test_scan_of_a_deltatable_records_what_polars_reads_not_the_version_argument(make_table):
    path = make_table(commits=3)
    with mlflow.start_run() as run:
        # polars ignores version= for a DeltaTable source and reads the table's own snapshot.
        frame = pl.scan_delta(DeltaTable(path, version=2), version=0).collect()
    assert len(frame) == 9
    assert [i.version for i in inputs_of(run.info.run_id)] == [2]
