"""Capture failures never break the user's run; strict mode turns them into LineageErrors."""

from __future__ import annotations

import json
import os

import mlflow
import pyarrow as pa
import pytest
from deltalake import DeltaTable
from helpers import lineage_tags, read_pandas

import lineage_plugin as lp
from lineage_plugin.errors import CaptureError, DeltaLogError, LineageError, TableNotFoundError
from lineage_plugin.tracking.capture import LineageWarning

pytestmark = pytest.mark.usefixtures("lineage_tracking")


def test_non_delta_path_warns_and_marks_the_run_incomplete(tmp_path):
    plain = tmp_path / "plain"
    plain.mkdir()
    with mlflow.start_run() as run:
        with pytest.warns(LineageWarning, match="not a Delta table"):
            assert lp.log_delta_input(str(plain)) is None
        mlflow.log_metric("rmse", 1.0)  # the run goes on
    tags = lineage_tags(run.info.run_id)
    assert tags["lineage.status"] == "incomplete"
    assert "not a Delta table" in tags["lineage.reason"]
    assert mlflow.get_run(run.info.run_id).data.metrics == {"rmse": 1.0}


def test_missing_table_warns(tmp_path):
    with mlflow.start_run() as run, pytest.warns(LineageWarning, match="does not exist"):
        lp.log_delta_input(str(tmp_path / "nowhere"))
    assert lineage_tags(run.info.run_id)["lineage.status"] == "incomplete"


def test_version_that_does_not_exist_is_refused(make_table):
    path = make_table(commits=2)
    with mlflow.start_run() as run, pytest.warns(LineageWarning, match="has no version 5"):
        lp.log_delta_input(path, version=5)
    assert lp.get_run_lineage(run.info.run_id).inputs == ()


def test_corrupt_commit_during_a_hooked_read_keeps_the_read(make_table):
    path = make_table(commits=2)
    dt = DeltaTable(path)  # loaded before the log is damaged
    with open(os.path.join(path, "_delta_log", "00000000000000000001.json"), "w") as fh:
        fh.write("{not json")
    with mlflow.start_run() as run, pytest.warns(LineageWarning, match="corrupt"):
        df = read_pandas(dt)
    assert len(df) == 6  # the user's read succeeded
    lineage = lp.get_run_lineage(run.info.run_id)
    assert lineage.status == "incomplete"
    assert "corrupt" in lineage.reasons[0]


def test_unreadable_log_directory(make_table):
    path = make_table()
    log_dir = os.path.join(path, "_delta_log")
    os.rename(log_dir, log_dir + ".moved")
    os.makedirs(log_dir)
    with mlflow.start_run() as run, pytest.warns(LineageWarning):
        lp.log_delta_input(path)
    assert lineage_tags(run.info.run_id)["lineage.status"] == "incomplete"


def test_strict_mode_raises_a_lineage_error(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_LINEAGE_STRICT", "true")
    with mlflow.start_run(), pytest.raises(TableNotFoundError) as info:
        lp.log_delta_input(str(tmp_path / "nowhere"))
    assert isinstance(info.value, CaptureError) and isinstance(info.value, LineageError)


def test_strict_mode_raises_from_a_hooked_read(make_table, monkeypatch):
    path = make_table(commits=2)
    dt = DeltaTable(path)
    with open(os.path.join(path, "_delta_log", "00000000000000000001.json"), "w") as fh:
        fh.write("{not json")
    monkeypatch.setenv("MLFLOW_LINEAGE_STRICT", "true")
    with mlflow.start_run(), pytest.raises(DeltaLogError, match="corrupt"):
        read_pandas(dt)


def test_a_failure_and_a_success_in_one_run(make_table, tmp_path):
    path = make_table()
    with mlflow.start_run() as run:
        with pytest.warns(LineageWarning):
            lp.log_delta_input(str(tmp_path / "nowhere"))
        read_pandas(DeltaTable(path))
    lineage = lp.get_run_lineage(run.info.run_id)
    assert lineage.status == "incomplete"
    assert [i.name for i in lineage.inputs] == ["sales"]


def test_run_reading_200_tables_keeps_every_input(tmp_path):
    from deltalake import write_deltalake

    data = pa.table({"x": [1]})
    paths = []
    for n in range(200):
        p = str(tmp_path / f"customer_order_history_snapshot_table_with_a_long_name_{n:03d}")
        write_deltalake(p, data)
        paths.append(p)
    with mlflow.start_run() as run:
        for p in paths:
            lp.log_delta_input(p)
    tags = mlflow.get_run(run.info.run_id).data.tags
    lineage = lp.get_run_lineage(run.info.run_id)
    assert sorted(i.uri for i in lineage.inputs) == sorted(f"file://{p}" for p in paths)
    assert all(len(v) <= 8000 for v in tags.values())
    summary = tags["lineage.tables"]
    assert "more; see lineage.input.* tags)" in summary  # cut explicitly, never silently


def test_values_longer_than_the_tag_limit_are_split_not_truncated(make_table):
    path = make_table()
    columns = [f"a_really_quite_long_column_name_number_{i:04d}" for i in range(300)]
    from lineage_plugin.records import DeltaInput
    from lineage_plugin.tracking.capture import session

    with mlflow.start_run() as run:
        session().record(
            DeltaInput(uri=f"file://{path}", version=0, engine="test", columns=tuple(columns))
        )
    tags = mlflow.get_run(run.info.run_id).data.tags
    assert int(tags["lineage.input.000.parts"]) >= 2
    assert lp.get_run_lineage(run.info.run_id).inputs[0].columns == tuple(columns)
    manifest = json.loads(
        mlflow.artifacts.load_text(f"runs:/{run.info.run_id}/lineage/manifest.json")
    )
    assert manifest["inputs"][0]["columns"] == columns


def test_unreadable_commit_file_warns_instead_of_raising(make_table):
    path = make_table(commits=2)
    commit = os.path.join(path, "_delta_log", f"{1:020d}.json")
    os.remove(commit)
    os.mkdir(commit)  # reading it raises IsADirectoryError, not a LineageError
    with mlflow.start_run() as run, pytest.warns(LineageWarning, match="could not read"):
        assert lp.log_delta_input(path, version=1) is None
    assert lp.get_run_lineage(run.info.run_id).status == "incomplete"


def test_log_delta_input_of_something_else_is_a_type_error():
    with pytest.raises(TypeError, match="takes a table path or URI, or a deltalake.DeltaTable"):
        lp.log_delta_input(42)


def test_a_bug_in_a_hook_never_breaks_the_read(make_table, monkeypatch):
    from lineage_plugin.tracking import deltalake_hooks

    def broken(*args, **kwargs):
        raise RuntimeError("bug in the plugin")

    monkeypatch.setattr(deltalake_hooks, "ReadDetails", broken)
    path = make_table(commits=2)
    with mlflow.start_run(), pytest.warns(LineageWarning, match="hook failed"):
        df = read_pandas(DeltaTable(path))
    assert len(df) == 6
