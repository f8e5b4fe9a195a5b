"""Planning a restore (read-only): what would be undone, and when a restore must refuse."""

from __future__ import annotations

import json
import shutil

import mlflow
import pyarrow as pa
import pytest
from deltalake import DeltaTable, write_deltalake
from helpers import read_pandas
from helpers import register_reader as register
from mlflow import MlflowClient

from lineage_plugin.errors import LineageError
from lineage_plugin.recovery.plan import plan_restore

pytestmark = pytest.mark.usefixtures("lineage_tracking")


def test_plan_lists_the_commits_to_undo_and_flags_deletes(make_table):
    path = make_table(commits=1, rows=6)
    version = register(path)
    DeltaTable(path).update(predicate="id < 2", updates={"y": "9.0"})
    DeltaTable(path).delete("id = 5")
    before = DeltaTable(path).version()
    plan = plan_restore("ridge", version)
    [table] = plan.tables
    assert (table.target_version, table.current_version) == (0, 2)
    assert [(c.version, c.operation) for c in table.commits] == [(1, "UPDATE"), (2, "DELETE")]
    assert table.commits[0].metrics["num_updated_rows"] == "2"
    assert [c.version for c in table.deleting_commits] == [2]
    assert not plan.refused and table.to_dict()["undoes_deletes"] is True
    [blocker] = table.blockers(allow_missing_files=False, allow_undo_deletes=False)
    assert "deleted rows (v2)" in blocker and "--allow-undo-deletes" in blocker
    assert table.blockers(allow_missing_files=False, allow_undo_deletes=True) == []
    assert DeltaTable(path).version() == before  # planning writes nothing


def test_a_table_at_its_recorded_version_has_nothing_to_undo(make_table):
    path = make_table(commits=2)
    plan = plan_restore("ridge", register(path))
    [table] = plan.tables
    assert table.up_to_date and table.commits == () and not plan.refused


def test_vacuumed_target_files_refuse(make_table):
    path = make_table(commits=1)
    version = register(path)
    write_deltalake(path, pa.table({"id": [9], "x": [1.0], "y": [1.0]}), mode="overwrite")
    DeltaTable(path).vacuum(retention_hours=0, enforce_retention_duration=False, dry_run=False)
    [table] = plan_restore("ridge", version).tables
    assert table.refusals == () and "gone" in table.missing_files
    assert "gone" in table.blockers(allow_missing_files=False, allow_undo_deletes=False)[0]
    assert table.blockers(allow_missing_files=True, allow_undo_deletes=False) == []


def test_a_recreated_table_refuses(make_table):
    path = make_table(commits=2)
    version = register(path)
    shutil.rmtree(path)
    make_table(commits=3)
    [table] = plan_restore("ridge", version).tables
    assert any("re-created" in r for r in table.refusals)


def test_a_recorded_version_that_does_not_exist_refuses(make_table):
    path = make_table(commits=2)
    with mlflow.start_run() as run:
        pass
    recorded = {"uri": f"file://{path}", "version": 7, "engine": "manual", "name": "sales"}
    MlflowClient().set_tag(run.info.run_id, "lineage.input.000", json.dumps(recorded))
    MlflowClient().create_registered_model("future")
    MlflowClient().create_model_version("future", "s3://bucket/m", run_id=run.info.run_id)
    [table] = plan_restore("future", "1").tables
    assert table.current_version == 1 and table.refusals
    assert "7" in table.refusals[0]


def test_choosing_a_table_and_bad_choices(make_table):
    sales = make_table("sales", commits=2)
    stock = make_table("stock", commits=1)
    with mlflow.start_run() as run:
        read_pandas(DeltaTable(sales))
        read_pandas(DeltaTable(stock))
    MlflowClient().create_registered_model("two")
    MlflowClient().create_model_version("two", "s3://bucket/m", run_id=run.info.run_id)
    assert [t.name for t in plan_restore("two", "1").tables] == ["sales", "stock"]
    assert [t.name for t in plan_restore("two", "1", table="stock").tables] == ["stock"]
    assert [t.name for t in plan_restore("two", "1", table=stock).tables] == ["stock"]
    with pytest.raises(LineageError, match="was not trained on 'orders'"):
        plan_restore("two", "1", table="orders")
    with pytest.raises(LineageError, match="no version 9"):
        plan_restore("two", "9")


def test_a_restore_that_would_downgrade_the_protocol_refuses(make_table):
    path = make_table(commits=1)
    version = register(path)
    before = DeltaTable(path).protocol()
    DeltaTable(path).alter.set_table_properties({"delta.enableChangeDataFeed": "true"})
    after = DeltaTable(path).protocol()
    assert after.min_writer_version > before.min_writer_version  # the table really moved up
    [table] = plan_restore("ridge", version).tables
    assert len(table.refusals) == 1 and "downgrade the table protocol" in table.refusals[0]


def test_a_version_without_recorded_tables_has_nothing_to_restore():
    MlflowClient().create_registered_model("bare")
    MlflowClient().create_model_version("bare", "s3://bucket/m")
    with pytest.raises(LineageError, match="no recorded Delta tables"):
        plan_restore("bare", "1")
