"""Commit history of Delta tables and whether a recorded version can still be read.

Real tables written with deltalake: appends, UPDATE / DELETE / MERGE with their metrics, custom
commit metadata, log cleanup after a checkpoint, VACUUM after an overwrite, re-created tables;
and the same through an S3-compatible server (moto) for the object-store path.
"""

from __future__ import annotations

import json
import os
import shutil
import time

import pyarrow as pa
import pytest
from deltalake import CommitProperties, DeltaTable, write_deltalake
from helpers import set_in_commit_timestamp

from lineage_plugin.delta.history import (
    DeltaCommit,
    commits,
    commits_between,
    commits_in_window,
)
from lineage_plugin.delta.readability import check_version_readable
from lineage_plugin.errors import DeltaLogError, LineageError, TableNotFoundError


def _rows(ids: list[int], part: str | None = None) -> pa.Table:
    data = {"id": ids, "x": [float(i) for i in ids]}
    if part is not None:
        data["k"] = [part] * len(ids)
    return pa.table(data)


@pytest.fixture
def dml_table(tmp_path) -> str:
    """Versions: 0 WRITE (alice, run abc), 1 append, 2 UPDATE, 3 DELETE, 4 MERGE."""
    path = str(tmp_path / "dml")
    meta = CommitProperties(custom_metadata={"user": "alice", "mlflow.runId": "abc"})
    write_deltalake(path, _rows([1, 2, 3]), commit_properties=meta)
    write_deltalake(path, _rows([4]), mode="append")
    DeltaTable(path).update(updates={"x": "x + 1"}, predicate="id > 2")
    DeltaTable(path).delete("id = 1")
    (
        DeltaTable(path)
        .merge(_rows([2, 9]), "t.id = s.id", source_alias="s", target_alias="t")
        .when_matched_update_all()
        .when_not_matched_insert_all()
        .execute()
    )
    return path


def _log(path: str, version: int) -> str:
    return os.path.join(path, "_delta_log", f"{version:020d}.json")


# ---- commits ----


def test_commits_carry_operation_parameters_metrics_user_and_run(dml_table):
    found = commits(dml_table)
    assert [c.version for c in found] == [0, 1, 2, 3, 4]
    assert [c.operation for c in found] == ["WRITE", "WRITE", "UPDATE", "DELETE", "MERGE"]
    assert all(c.available and c.engine.startswith("delta-rs") for c in found)
    stamps = [c.timestamp for c in found]
    assert None not in stamps and stamps == sorted(stamps)

    first, _, update, delete, merge = found
    assert (first.user, first.run_id) == ("alice", "abc")
    assert first.parameters == {"mode": "ErrorIfExists"}
    assert first.metrics["num_added_rows"] == "3"
    assert update.parameters == {"predicate": "id > 2"}
    assert update.metrics["num_updated_rows"] == "2"
    assert delete.metrics["num_deleted_rows"] == "1"
    assert merge.parameters["mergePredicate"] == "t.id = s.id"
    assert merge.metrics["num_target_rows_updated"] == "1"
    assert merge.metrics["num_target_rows_inserted"] == "1"
    assert (update.user, update.run_id) == (None, None)


def test_commit_to_dict_is_sorted_without_nulls_or_empty_maps(dml_table):
    data = commits(dml_table, start=4)[0].to_dict()
    assert list(data) == sorted(data)
    assert {"user", "run_id"}.isdisjoint(data)
    assert data["version"] == 4 and data["available"] is True
    assert data["metrics"]["num_output_rows"] == "4"
    assert list(data["metrics"]) == sorted(data["metrics"])
    assert DeltaCommit(version=7, available=False).to_dict() == {"available": False, "version": 7}


def test_user_name_from_custom_metadata_and_precedence(tmp_path):
    path = str(tmp_path / "t")
    write_deltalake(path, _rows([1]), commit_properties=CommitProperties(custom_metadata={}))
    write_deltalake(
        path,
        _rows([2]),
        mode="append",
        commit_properties=CommitProperties(custom_metadata={"userName": "bob"}),
    )
    assert [c.user for c in commits(path)] == [None, "bob"]

    info = {
        "timestamp": 5,
        "userId": "42",
        "user": "alice",
        "clientVersion": "spark/3.5",
        "operationParameters": {"partitionBy": [], "isManaged": False, "n": None},
        "operationMetrics": {"numOutputRows": 10, "ratio": 0.5},
    }
    commit = DeltaCommit.from_commit_info(3, info)
    assert (commit.user, commit.engine, commit.timestamp) == ("42", "spark/3.5", 5)
    assert commit.parameters == {"partitionBy": "[]", "isManaged": "false"}
    assert commit.metrics == {"numOutputRows": "10", "ratio": "0.5"}
    assert DeltaCommit.from_commit_info(3, {**info, "userName": "carol"}).user == "carol"
    assert DeltaCommit.from_commit_info(3, {"user": "alice"}).user == "alice"


def test_in_commit_timestamp_wins(make_table):
    path = make_table(commits=2)
    set_in_commit_timestamp(path, 1, 42)
    assert commits(path, start=1)[0].timestamp == 42


def test_ranges_are_inclusive_and_any_spelling_of_the_table_works(make_table, tmp_path):
    path = make_table(commits=4)
    assert [c.version for c in commits(path, start=1, end=2)] == [1, 2]
    assert [c.version for c in commits(path, start=3)] == [3]
    assert [c.version for c in commits(path, end=0)] == [0]
    assert commits(f"file://{path}/", start=2, end=2) == commits(path, start=2, end=2)


@pytest.mark.parametrize(
    ("start", "end", "match"),
    [(3, 1, "start=3 is after end=1"), (-1, 2, "cannot be negative"), (0, -2, "negative")],
)
def test_bad_ranges_are_lineage_errors(make_table, start, end, match):
    path = make_table(commits=4)
    with pytest.raises(LineageError, match=match):
        commits(path, start=start, end=end)


def test_versions_past_the_latest_and_missing_tables(make_table, tmp_path):
    path = make_table(commits=2)
    with pytest.raises(TableNotFoundError, match="has no version 5 \\(latest is 1\\)"):
        commits(path, start=0, end=5)
    with pytest.raises(TableNotFoundError, match="has no version 2 \\(latest is 1\\)"):
        commits(path, start=2)
    with pytest.raises(TableNotFoundError, match="does not exist"):
        commits(str(tmp_path / "nowhere"))
    (tmp_path / "plain").mkdir()
    with pytest.raises(TableNotFoundError, match="is not a Delta table"):
        commits_in_window(str(tmp_path / "plain"), since=None, until=None)


def test_only_the_commit_info_line_is_parsed(make_table):
    path = make_table(commits=2)
    with open(_log(path, 1)) as fh:
        lines = fh.read().splitlines()
    assert json.loads(lines[0]).keys() == {"commitInfo"}
    with open(_log(path, 1), "w") as fh:  # the other actions are corrupt: never parsed
        fh.write("\n".join([lines[0], "{not json", *lines[1:]]) + "\n")
    assert commits(path, start=1)[0].operation == "WRITE"
    with open(_log(path, 1), "w") as fh:  # a commitInfo after other actions is still found
        fh.write("\n".join([*lines[1:], lines[0]]) + "\n")
    assert commits(path, start=1)[0].operation == "WRITE"
    with open(_log(path, 1), "w") as fh:
        fh.write('{"commitInfo": {oops\n')
    with pytest.raises(DeltaLogError, match="not valid JSON"):
        commits(path, start=1)
    with open(_log(path, 1), "w") as fh:
        fh.write("\n".join(lines[1:]) + "\n")  # no commitInfo at all
    assert commits(path, start=1) == [DeltaCommit(version=1)]


# ---- commits_between ----


def test_commits_between_in_both_directions(dml_table):
    forward = commits_between(dml_table, 1, 4)
    assert [(c.version, c.operation) for c in forward] == [
        (2, "UPDATE"),
        (3, "DELETE"),
        (4, "MERGE"),
    ]
    assert commits_between(dml_table, 4, 1) == forward
    assert [c.version for c in commits_between(dml_table, 0, 1)] == [1]
    assert commits_between(dml_table, 3, 3) == []
    with pytest.raises(LineageError, match="negative"):
        commits_between(dml_table, -1, 2)
    with pytest.raises(TableNotFoundError, match="has no version 9"):
        commits_between(dml_table, 2, 9)


# ---- commits_in_window ----


def test_window_is_inclusive_open_ended_and_tolerates_clock_skew(make_table):
    path = make_table(commits=5)
    for version, stamp in enumerate([1000, 2000, 3000, 2500, 4000]):  # v3's clock was behind
        set_in_commit_timestamp(path, version, stamp)

    def window(since, until):
        return [c.version for c in commits_in_window(path, since=since, until=until)]

    assert window(2000, 2600) == [1, 3]
    assert window(2500, 3000) == [2, 3]
    assert window(None, 1500) == [0]
    assert window(3500, None) == [4]
    assert window(None, None) == [0, 1, 2, 3, 4]
    assert window(4001, None) == []
    found = commits_in_window(path, since=4000, until=4000)
    assert found == commits(path, start=4)
    with pytest.raises(LineageError, match="since=5 is after until=4"):
        commits_in_window(path, since=5, until=4)


# ---- log cleanup ----


@pytest.fixture
def cleaned_table(tmp_path) -> str:
    """Versions 0-5; a checkpoint at 4; the commit files of versions 0-3 cleaned up."""
    path = str(tmp_path / "cleaned")
    config = {"delta.logRetentionDuration": "interval 0 days"}
    write_deltalake(path, _rows([0]), configuration=config)
    for i in range(1, 5):
        write_deltalake(path, _rows([i]), mode="append")
    time.sleep(0.01)  # the commits must be older than "now - 0 days"
    DeltaTable(path).create_checkpoint()
    DeltaTable(path).cleanup_metadata()
    write_deltalake(path, _rows([5]), mode="append")
    assert [os.path.exists(_log(path, v)) for v in range(6)] == [False] * 4 + [True] * 2
    return path


def test_cleaned_up_commits_are_unavailable(cleaned_table):
    found = commits(cleaned_table)
    assert [(c.version, c.available) for c in found] == [
        (0, False),
        (1, False),
        (2, False),
        (3, False),
        (4, True),
        (5, True),
    ]
    assert found[0] == DeltaCommit(version=0, available=False)
    assert found[4].operation == "WRITE"
    assert [c.version for c in commits_in_window(cleaned_table, since=0, until=None)] == [4, 5]


def test_cleaned_up_version_is_not_readable(cleaned_table):
    (reason,) = check_version_readable(cleaned_table, 2)
    assert "no longer reaches version 2" in reason
    assert "oldest version still readable is 4" in reason
    assert "delta.logRetentionDuration" in reason
    assert check_version_readable(cleaned_table, 4) == []
    assert check_version_readable(cleaned_table, 5) == []
    # Without its commit file, version 4 is still read from its checkpoint.
    os.remove(_log(cleaned_table, 4))
    assert not commits(cleaned_table, start=4, end=4)[0].available
    assert check_version_readable(cleaned_table, 4) == []
    (reason,) = check_version_readable(cleaned_table, 3)
    assert "oldest version still readable is 4" in reason


# ---- readability: vacuum, re-created tables, missing versions ----


def _vacuum(path: str) -> None:
    DeltaTable(path).vacuum(retention_hours=0, enforce_retention_duration=False, dry_run=False)


def test_vacuumed_files_are_counted(tmp_path):
    path = str(tmp_path / "t")
    write_deltalake(path, _rows([1, 2]))  # file A
    write_deltalake(path, _rows([10, 11]), mode="append")  # file B
    DeltaTable(path).delete("id >= 10")  # version 2: B removed
    assert check_version_readable(path, 1) == []
    _vacuum(path)

    (reason,) = check_version_readable(path, 1)
    assert reason.startswith(f"1 of 2 data files of version 1 of 'file://{path}' are gone")
    assert "--allow-missing-files" in reason
    example = reason.split("e.g. '")[1].split("'")[0]
    assert example.startswith(path + "/") and example.endswith(".parquet")
    assert not os.path.exists(example)
    assert os.path.basename(example) in {
        os.path.basename(uri) for uri in DeltaTable(path, version=1).file_uris()
    }
    assert check_version_readable(path, 0) == []
    assert check_version_readable(path, 2) == []


def test_tables_with_escaped_names_are_checked_on_the_right_files(tmp_path):
    # deltalake's file_uris() joins the percent-encoded table path ("my%20table") to the
    # decoded file path; the check must look where the files really are.
    path = str(tmp_path / "my table")
    write_deltalake(path, _rows([1], "a b"), partition_by=["k"])
    write_deltalake(path, _rows([2], "c%d"), mode="append", partition_by=["k"])
    assert any("%20" in uri for uri in DeltaTable(path).file_uris())
    assert check_version_readable(path, 1) == []
    write_deltalake(path, _rows([3], "z"), mode="overwrite", partition_by=["k"])
    _vacuum(path)
    (reason,) = check_version_readable(path, 1)
    assert reason.startswith("2 of 2 data files of version 1")
    assert check_version_readable(path, 2) == []


def test_recreated_table_is_reported(tmp_path):
    path = str(tmp_path / "t")
    write_deltalake(path, _rows([1]))
    write_deltalake(path, _rows([2]), mode="append")
    old_id = DeltaTable(path).metadata().id
    assert check_version_readable(path, 1, table_id=old_id) == []
    shutil.rmtree(path)
    write_deltalake(path, _rows([3]))
    new_id = DeltaTable(path).metadata().id

    (reason,) = check_version_readable(path, 0, table_id=old_id)
    assert "re-created" in reason and old_id in reason and new_id in reason
    (reason,) = check_version_readable(path, 1, table_id=old_id)  # past the new latest
    assert "re-created" in reason
    assert check_version_readable(path, 0, table_id=new_id) == []
    assert check_version_readable(path, 0) == []


def test_missing_versions_and_tables(make_table, tmp_path):
    path = make_table(commits=2)
    (reason,) = check_version_readable(path, 7)
    assert "Version 7" in reason and "does not exist" in reason and "latest version is 1" in reason
    (reason,) = check_version_readable(str(tmp_path / "gone"), 0)
    assert reason.startswith(f"There is no Delta table at 'file://{tmp_path}/gone'")
    assert "Check the path" in reason
    with pytest.raises(LineageError, match="negative"):
        check_version_readable(path, -1)


# ---- tables on an object store (moto's S3 server on loopback) ----


@pytest.fixture(scope="module")
def s3_options(tmp_path_factory):
    pytest.importorskip("moto.server")
    from server import moto_s3

    with moto_s3(tmp_path_factory.mktemp("moto")) as options:
        yield options


def test_remote_commits_are_labelled_by_their_own_version(s3_options, request):
    uri = f"s3a://lake/{request.node.name}"
    meta = CommitProperties(custom_metadata={"user": "alice", "mlflow.runId": "abc"})
    write_deltalake(uri, _rows([1, 2]), storage_options=s3_options)
    write_deltalake(uri, _rows([3]), mode="append", storage_options=s3_options)
    DeltaTable(uri, storage_options=s3_options).update(
        updates={"x": "x * 2"}, predicate="id = 3", commit_properties=meta
    )
    found = commits(uri, start=1, storage_options=s3_options)
    assert [(c.version, c.operation) for c in found] == [(1, "WRITE"), (2, "UPDATE")]
    assert found[1].metrics["num_updated_rows"] == "1"
    assert (found[1].user, found[1].run_id) == ("alice", "abc")
    assert commits_between(uri, 2, 0, storage_options=s3_options) == commits(
        uri, start=1, end=2, storage_options=s3_options
    )
    every = commits_in_window(uri, since=found[1].timestamp, until=None, storage_options=s3_options)
    assert [c.version for c in every] == [2]
    with pytest.raises(TableNotFoundError, match="has no version 3"):
        commits(uri, end=3, storage_options=s3_options)


def test_remote_readability(s3_options, request):
    uri = f"s3://lake/{request.node.name}"
    opts = s3_options
    write_deltalake(uri, _rows([1], "a b"), partition_by=["k"], storage_options=opts)
    write_deltalake(uri, _rows([2], "z"), mode="append", partition_by=["k"], storage_options=opts)
    table_id = DeltaTable(uri, storage_options=opts).metadata().id
    assert check_version_readable(uri, 1, table_id=table_id, storage_options=opts) == []
    write_deltalake(
        uri, _rows([3], "q"), mode="overwrite", partition_by=["k"], storage_options=opts
    )
    DeltaTable(uri, storage_options=opts).vacuum(
        retention_hours=0, enforce_retention_duration=False, dry_run=False
    )
    (reason,) = check_version_readable(uri, 1, storage_options=opts)
    assert reason.startswith(f"2 of 2 data files of version 1 of '{uri}' are gone")
    assert f"e.g. '{uri}/k=" in reason
    assert check_version_readable(uri, 2, storage_options=opts) == []
    (reason,) = check_version_readable(uri, 9, storage_options=opts)
    assert "does not exist" in reason
    (reason,) = check_version_readable(f"{uri}-nothing", 0, storage_options=opts)
    assert reason.startswith("There is no Delta table at")


def test_remote_cleaned_up_log(s3_options, request):
    uri = f"s3://lake/{request.node.name}"
    config = {"delta.logRetentionDuration": "interval 0 days"}
    write_deltalake(uri, _rows([0]), configuration=config, storage_options=s3_options)
    for i in range(1, 4):
        write_deltalake(uri, _rows([i]), mode="append", storage_options=s3_options)
    time.sleep(1.1)  # S3 modification times have one-second resolution
    DeltaTable(uri, storage_options=s3_options).create_checkpoint()
    DeltaTable(uri, storage_options=s3_options).cleanup_metadata()
    write_deltalake(uri, _rows([4]), mode="append", storage_options=s3_options)

    found = commits(uri, storage_options=s3_options)
    assert [c.available for c in found] == [False, False, False, True, True]
    assert [c.operation for c in found[3:]] == ["WRITE", "WRITE"]
    (reason,) = check_version_readable(uri, 1, storage_options=s3_options)
    assert "no longer reaches version 1" in reason
    assert "oldest version still readable is 3" in reason
    assert check_version_readable(uri, 3, storage_options=s3_options) == []
