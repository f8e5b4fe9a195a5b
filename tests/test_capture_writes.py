"""Capture of Delta writes through deltalake and polars (issue 15, points 1 and 2): each write
API records the version it created, and its commit carries the run's stamp; real lineage+sqlite
stores, real Delta tables, a real second writer process."""

from __future__ import annotations

import os
import sys
import threading
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import mlflow
import polars as pl
import pyarrow as pa
import pytest
from deltalake import CommitProperties, DeltaTable, write_deltalake
from helpers import lineage_tags, read_pandas, run_python, runs_in_other_threads

import lineage_plugin as lp
from lineage_plugin.delta import history
from lineage_plugin.delta.stamps import EXPERIMENT_ID_KEY, RUN_ID_KEY, WRITE_ID_KEY
from lineage_plugin.errors import CaptureError, LineageWarning
from lineage_plugin.records import DeltaOutput

pytestmark = pytest.mark.usefixtures("lineage_tracking")


def outputs_of(run_id: str) -> list[DeltaOutput]:
    return list(lp.get_run_lineage(run_id).outputs)


def commit_info(path: str, version: int) -> dict[str, Any]:
    """The history entry of ``version``, as ``DeltaTable.history()`` shows it."""
    return next(e for e in DeltaTable(path).history() if e["version"] == version)


def rows(first: int, n: int = 2) -> pa.Table:
    return pa.table({"id": list(range(first, first + n)), "x": [1.0] * n, "y": [0.0] * n})


def _merge(path: str) -> None:
    source = pa.table({"id": [3, 100], "x": [9.0, 9.0], "y": [1.0, 1.0]})
    (
        DeltaTable(path)
        .merge(source, "s.id = t.id", source_alias="s", target_alias="t")
        .when_matched_update_all()
        .when_not_matched_insert_all()
        .execute()
    )


def _repair(path: str) -> None:
    active = DeltaTable(path).get_add_actions(flatten=True).column("path").to_pylist()
    os.remove(os.path.join(path, active[0]))  # a data file of the table is gone
    DeltaTable(path).repair()


#: name -> (the write, on a table at v3 of two files, ids 3..8; operation; a metric; its value)
WRITES: dict[str, tuple[Callable[[str], Any], str, str, Any]] = {
    "write_deltalake append": (
        lambda p: write_deltalake(p, rows(10), mode="append"),
        "WRITE",
        "num_added_rows",
        2,
    ),
    "write_deltalake overwrite": (
        lambda p: write_deltalake(p, rows(10, 4), mode="overwrite"),
        "WRITE",
        "num_added_rows",
        4,
    ),
    "write_deltalake to a DeltaTable": (
        lambda p: write_deltalake(DeltaTable(p), rows(10, 1), mode="append"),
        "WRITE",
        "num_added_rows",
        1,
    ),
    "merge().execute()": (_merge, "MERGE", "num_target_rows_updated", 1),
    "update": (
        lambda p: DeltaTable(p).update(updates={"x": "x + 1"}, predicate="id = 4"),
        "UPDATE",
        "num_updated_rows",
        1,
    ),
    "delete": (lambda p: DeltaTable(p).delete("id >= 7"), "DELETE", "num_deleted_rows", 2),
    "restore": (lambda p: DeltaTable(p).restore(0), "RESTORE", "numRestoredFile", 1),
    "optimize.compact": (
        lambda p: DeltaTable(p).optimize.compact(),
        "OPTIMIZE",
        "numFilesRemoved",
        2,
    ),
    "optimize.z_order": (
        lambda p: DeltaTable(p).optimize.z_order(["x"]),
        "OPTIMIZE",
        "numFilesRemoved",
        2,
    ),
    "repair": (_repair, "FSCK", "dry_run", "false"),
    "create_write_transaction": (
        lambda p: DeltaTable(p).create_write_transaction(
            [], mode="append", schema=DeltaTable(p).schema()
        ),
        "WRITE",
        None,
        None,
    ),
}


@pytest.mark.parametrize("name", list(WRITES))
def test_each_write_api_records_the_version_it_made_and_stamps_its_commit(
    name, make_table, no_lineage_warnings
):
    write, operation, metric, value = WRITES[name]
    path = make_table(commits=3)  # v0..v2, three files
    DeltaTable(path).delete("id < 3")  # v3: two files left (made outside the run: no stamp)
    with mlflow.start_run() as run:
        write(path)
    (out,) = outputs_of(run.info.run_id)
    assert (out.version, out.operation, out.engine) == (4, operation, "deltalake")
    assert out.uri == f"file://{path}" and out.name == "sales"
    assert out.table_id == DeltaTable(path).metadata().id
    entry = commit_info(path, 4)
    assert out.commit_timestamp == entry["timestamp"]
    assert out.timestamp_source == "commitInfo.timestamp"
    if metric is not None:
        assert out.operation_metrics[metric] == value
    assert entry[RUN_ID_KEY] == run.info.run_id
    assert entry[EXPERIMENT_ID_KEY] == run.info.experiment_id
    assert len(entry[WRITE_ID_KEY]) == 32
    assert RUN_ID_KEY not in commit_info(path, 3)  # the write before the run: unstamped
    if name == "restore":
        assert out.restored_from == 0
    tags = lineage_tags(run.info.run_id)
    assert tags["lineage.written"] == "sales@v4"
    assert tags["lineage.status"] == "complete"


def test_a_new_table_is_recorded_at_version_zero(tmp_path):
    created, written = str(tmp_path / "created"), str(tmp_path / "written")
    with mlflow.start_run() as run:
        DeltaTable.create(created, pa.schema([("id", pa.int64())]))
        write_deltalake(written, rows(0))
    outs = outputs_of(run.info.run_id)
    assert [(o.name, o.version, o.operation) for o in outs] == [
        ("created", 0, "CREATE TABLE"),
        ("written", 0, "WRITE"),
    ]
    assert commit_info(created, 0)[RUN_ID_KEY] == run.info.run_id
    assert commit_info(written, 0)[RUN_ID_KEY] == run.info.run_id


def test_a_write_that_commits_nothing_records_nothing(make_table, no_lineage_warnings):
    path = make_table(commits=2)
    with mlflow.start_run() as run:
        DeltaTable(path).delete("id > 1000")  # no row matches: no commit
        DeltaTable(path).update(updates={"x": "0"}, predicate="id > 1000")
    assert outputs_of(run.info.run_id) == []
    assert DeltaTable(path).version() == 1


def test_the_users_commit_metadata_is_kept_and_their_object_untouched(make_table):
    path = make_table(commits=1)
    theirs = {"userMetadata": "nightly load", "team": "pricing", "mlflow.experimentId": "mine"}
    props = CommitProperties(custom_metadata=dict(theirs), max_commit_retries=3)
    with mlflow.start_run() as run:
        write_deltalake(path, rows(10), mode="append", commit_properties=props)
        DeltaTable(path).delete("id = 0", commit_properties=props)
    assert props.custom_metadata == theirs and props.max_commit_retries == 3
    for version in (1, 2):
        entry = commit_info(path, version)
        assert entry["userMetadata"] == "nightly load" and entry["team"] == "pricing"
        assert entry[EXPERIMENT_ID_KEY] == "mine"  # a key the user set stays theirs
        assert entry[RUN_ID_KEY] == run.info.run_id
    assert [o.version for o in outputs_of(run.info.run_id)] == [1, 2]


def test_polars_writes_are_recorded_once_as_polars(make_table, tmp_path):
    path = make_table(commits=2)
    features = str(tmp_path / "features")
    with mlflow.start_run() as run:
        pl.DataFrame({"id": [50], "x": [1.0], "y": [2.0]}).write_delta(path, mode="append")
        pl.scan_delta(path).filter(pl.col("id") > 1).sink_delta(features)
        merger = pl.DataFrame({"id": [50], "x": [5.0], "y": [5.0]}).write_delta(
            path,
            mode="merge",
            delta_merge_options={
                "predicate": "s.id = t.id",
                "source_alias": "s",
                "target_alias": "t",
            },
        )
        merger.when_matched_update_all().execute()
    lineage = lp.get_run_lineage(run.info.run_id)
    assert [(o.label, o.operation, o.engine) for o in lineage.outputs] == [
        ("sales@v2", "WRITE", "polars"),
        ("features@v0", "WRITE", "polars"),
        ("sales@v3", "MERGE", "polars"),
    ]
    # the lazy frame sunk into `features` read sales@v2 during the write
    assert [(i.label, i.engine) for i in lineage.inputs] == [("sales@v2", "polars")]
    assert commit_info(features, 0)[RUN_ID_KEY] == run.info.run_id


def test_a_run_that_reads_and_writes_one_table_records_both(make_table):
    path = make_table(commits=2)
    with mlflow.start_run() as run:
        frame = read_pandas(DeltaTable(path))
        frame["x"] = frame["x"] * 2
        write_deltalake(path, pa.Table.from_pandas(frame), mode="overwrite")
        read_pandas(DeltaTable(path))
    lineage = lp.get_run_lineage(run.info.run_id)
    assert [i.version for i in lineage.inputs] == [1, 2]
    assert [(o.version, o.operation) for o in lineage.outputs] == [(2, "WRITE")]
    assert lineage.inputs[0].table_id == lineage.outputs[0].table_id


def test_writes_outside_a_run_are_not_stamped_nor_kept_for_the_next_run(make_table):
    path = make_table(commits=1)
    write_deltalake(path, rows(10), mode="append")  # no active run
    DeltaTable(path).delete("id = 0")
    with mlflow.start_run() as run:
        read_pandas(DeltaTable(path))
    assert outputs_of(run.info.run_id) == []
    assert all(RUN_ID_KEY not in e and WRITE_ID_KEY not in e for e in DeltaTable(path).history())
    assert "lineage.written" not in lineage_tags(run.info.run_id)


def test_a_worker_thread_writes_for_the_one_active_run(make_table):
    path = make_table(commits=1)
    with mlflow.start_run() as run:
        worker = threading.Thread(target=lambda: write_deltalake(path, rows(10), mode="append"))
        worker.start()
        worker.join()
    assert [o.version for o in outputs_of(run.info.run_id)] == [1]
    assert commit_info(path, 1)[RUN_ID_KEY] == run.info.run_id


SECOND_WRITER = """
import sys
import pyarrow as pa
from deltalake import write_deltalake
path, count = sys.argv[1], int(sys.argv[2])
for n in range(count):
    write_deltalake(path, pa.table({"id": [1000 + n], "x": [0.0], "y": [0.0]}), mode="append")
"""


def _second_writer(path: str, cwd: Any, count: int = 1) -> None:
    """Another process appends ``count`` commits to ``path`` (no MLflow, no plugin)."""
    result = run_python("-c", SECOND_WRITER, path, str(count), cwd=cwd)
    assert result.returncode == 0, result.stderr


def test_a_commit_by_another_writer_right_after_the_runs_is_not_taken_for_it(
    make_table, tmp_path, monkeypatch
):
    """The second writer commits after the run's commit and before the plugin looks for it
    (in the window where a "latest version" answer would be the other writer's)."""
    path = make_table(commits=1)
    real = history.commits_with

    def after_a_second_writer(*args: Any, **kwargs: Any) -> Any:
        _second_writer(path, tmp_path, count=2)
        return real(*args, **kwargs)

    monkeypatch.setattr(history, "commits_with", after_a_second_writer)
    with mlflow.start_run() as run:
        write_deltalake(path, rows(10), mode="append")  # v1; the other writer: v2, v3
        stale = DeltaTable(path, version=1)
        write_deltalake(stale, rows(20), mode="append")  # a stale snapshot: lands at v4
    assert [o.version for o in outputs_of(run.info.run_id)] == [1, 4]
    assert DeltaTable(path).version() == 6
    stamped = {e["version"] for e in DeltaTable(path).history() if RUN_ID_KEY in e}
    assert stamped == {1, 4}


RACING_WRITER = """
import os, sys
import pyarrow as pa
from deltalake import write_deltalake
path, stop = sys.argv[1:]
print("ready", flush=True)
n = 0
while not os.path.exists(stop) and n < 5000:
    write_deltalake(path, pa.table({"id": [1000 + n], "x": [0.0], "y": [0.0]}), mode="append")
    n += 1
print(n, flush=True)
"""


def _wait_for_another_commit(path: str, timeout: float = 60.0) -> None:
    """Wait until one more commit file is in the log than now (the other writer's), looking at
    the files only: reading the table inside the run would record a read."""
    import time

    log = Path(path) / "_delta_log"
    before = len(list(log.glob("*.json")))
    deadline = time.monotonic() + timeout
    while len(list(log.glob("*.json"))) <= before:
        assert time.monotonic() < deadline, "the other writer stopped committing"
        time.sleep(0.005)


def test_writes_racing_a_second_writer_process_record_exactly_the_runs_commits(
    make_table, tmp_path
):
    import subprocess

    from helpers import child_env

    path, stop = make_table(commits=1), tmp_path / "stop"
    other = subprocess.Popen(
        [sys.executable, "-c", RACING_WRITER, path, str(stop)],
        cwd=tmp_path,
        env=child_env(),
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert other.stdout.readline().strip() == "ready"
        with mlflow.start_run() as run:
            for n in range(10):
                write_deltalake(path, rows(100 + n, 1), mode="append")
                _wait_for_another_commit(path)  # so the commits interleave, however loaded
    finally:
        stop.touch()
        theirs = int(other.stdout.readline())
        assert other.wait(timeout=120) == 0
    recorded = [o.version for o in outputs_of(run.info.run_id)]
    stamped = sorted(e["version"] for e in DeltaTable(path).history() if RUN_ID_KEY in e)
    assert recorded == stamped and len(recorded) == 10
    assert DeltaTable(path).version() == 10 + theirs
    gaps = [b - a for a, b in zip(recorded, recorded[1:], strict=False)]
    assert max(gaps) > 1, "the other writer never committed between the run's commits"


def test_a_failing_hook_keeps_the_write_and_marks_the_run_incomplete(make_table, monkeypatch):
    path = make_table(commits=1)

    def unreachable(*args: Any, **kwargs: Any) -> Any:
        raise OSError("the object store timed out")

    monkeypatch.setattr(history, "commits_with", unreachable)
    with mlflow.start_run() as run, pytest.warns(LineageWarning, match="timed out"):
        write_deltalake(path, rows(10), mode="append")
        mlflow.log_metric("rmse", 1.0)  # the run goes on
    assert DeltaTable(path).version() == 1  # the write happened, stamped
    assert commit_info(path, 1)[RUN_ID_KEY] == run.info.run_id
    lineage = lp.get_run_lineage(run.info.run_id)
    assert lineage.status == "incomplete" and lineage.outputs == ()
    assert "write_deltalake: could not find the version it wrote" in lineage.reasons[0]


def test_strict_mode_raises_after_the_write(make_table, monkeypatch):
    path = make_table(commits=1)

    def down(*args: Any, **kwargs: Any) -> Any:
        raise OSError("down")

    monkeypatch.setenv("MLFLOW_LINEAGE_STRICT", "true")
    monkeypatch.setattr(history, "commits_with", down)
    with mlflow.start_run(), pytest.raises(CaptureError, match="down"):
        DeltaTable(path).delete("id = 0")
    assert DeltaTable(path).version() == 1


def test_a_hook_that_fails_before_the_write_leaves_it_unstamped(make_table, monkeypatch):
    from lineage_plugin.delta import stamps

    path = make_table(commits=1)
    monkeypatch.setattr(stamps.Stamp, "new", classmethod(lambda cls, *a: 1 / 0))
    with mlflow.start_run() as run, pytest.warns(LineageWarning, match="not stamped"):
        write_deltalake(path, rows(10), mode="append")
    assert DeltaTable(path).version() == 1
    assert RUN_ID_KEY not in commit_info(path, 1)
    assert outputs_of(run.info.run_id) == []


def test_the_users_errors_are_the_users(make_table):
    path = make_table(commits=1)
    with mlflow.start_run() as run:
        with pytest.raises(Exception, match="already exists|exists"):
            write_deltalake(path, rows(10))  # mode="error" on an existing table
        with pytest.raises(TypeError):
            DeltaTable(path).delete(predicate="id = 0", no_such_argument=1)
    assert outputs_of(run.info.run_id) == []
    assert lp.get_run_lineage(run.info.run_id).status != "incomplete"


def test_commit_properties_by_position_are_passed_on_unstamped(make_table):
    path = make_table(commits=1)
    with mlflow.start_run() as run, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        DeltaTable(path).delete("id = 0", None, None, CommitProperties({"team": "a"}))
    said = {(w.category, "by position" in str(w.message)) for w in caught}
    assert {(LineageWarning, True), (DeprecationWarning, False)} <= said
    entry = commit_info(path, 1)
    assert entry["team"] == "a" and RUN_ID_KEY not in entry
    assert lp.get_run_lineage(run.info.run_id).status == "incomplete"


CHILD = """
import json, sys
import mlflow, pyarrow as pa
from deltalake import DeltaTable, write_deltalake
import lineage_plugin as lp

mode, lineage_uri, plain_uri, path = sys.argv[1:]
if mode == "disable":
    lp.autolog(disable=True)
mlflow.MlflowClient(lineage_uri).search_experiments()  # loads the lineage+ store
out = {}
for which, uri in (("plain", plain_uri), ("lineage", lineage_uri)):
    mlflow.set_tracking_uri(uri)
    with mlflow.start_run() as run:
        write_deltalake(path, pa.table({"id": [1]}), mode="append")
    out[which] = [run.info.run_id, DeltaTable(path).history(1)[0].get("mlflow.runId")]
print(json.dumps(out))
"""


@pytest.mark.parametrize("mode", ["lineage-store", "disable"])
def test_runs_capture_does_not_apply_to_leave_commits_as_they_were(
    mode, tmp_path, _migrated_sqlite
):
    import json
    import shutil

    for name in ("lineage.db", "plain.db"):
        shutil.copyfile(_migrated_sqlite, tmp_path / name)
    lineage_uri = f"lineage+sqlite:///{tmp_path / 'lineage.db'}"
    plain_uri = f"sqlite:///{tmp_path / 'plain.db'}"
    path = str(tmp_path / "t")
    write_deltalake(path, pa.table({"id": [0]}))
    result = run_python("-c", CHILD, mode, lineage_uri, plain_uri, path, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["plain"][1] is None  # a run on a plain URI: its commit as without the plugin
    if mode == "disable":
        assert out["lineage"][1] is None
    else:
        assert out["lineage"][1] == out["lineage"][0]


def test_a_write_while_several_runs_are_active_elsewhere_is_not_stamped(make_table):
    path = make_table(commits=1)
    warned = pytest.warns(LineageWarning, match="several runs are active")
    with runs_in_other_threads(2) as run_ids, warned:
        write_deltalake(path, rows(10), mode="append")
    assert RUN_ID_KEY not in commit_info(path, 1)
    assert all(outputs_of(r) == [] for r in run_ids)


FRESH = """
import json, sys
import lineage_plugin as lp
lp.autolog()  # before deltalake is imported: its read and write hooks both install on import
import mlflow, pyarrow as pa, pyarrow.fs as pafs
from deltalake import DeltaTable, write_deltalake

uri, path = sys.argv[1:]
mlflow.set_tracking_uri(uri)
with mlflow.start_run() as run:
    fs = pafs.SubTreeFileSystem(path, pafs.LocalFileSystem())
    DeltaTable(path).to_pandas(filesystem=fs)
    write_deltalake(path, pa.table({"id": [2]}), mode="append")
lineage = lp.get_run_lineage(run.info.run_id)
print(json.dumps([[i.label for i in lineage.inputs], [o.label for o in lineage.outputs]]))
"""


def test_deltalake_imported_after_autolog_gets_its_read_and_write_hooks(tmp_path, _migrated_sqlite):
    import json
    import shutil

    shutil.copyfile(_migrated_sqlite, tmp_path / "mlflow.db")
    path = str(tmp_path / "t")
    write_deltalake(path, pa.table({"id": [0]}))
    uri = f"lineage+sqlite:///{tmp_path / 'mlflow.db'}"
    result = run_python("-c", FRESH, uri, path, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == [["t@v0"], ["t@v1"]]
