"""Version resolution from the _delta_log: URIs, latest version, commit info, table id."""

from __future__ import annotations

import os

import pyarrow as pa
import pytest
from deltalake import DeltaTable, write_deltalake
from helpers import set_in_commit_timestamp

from lineage_plugin.delta import log as delta_log
from lineage_plugin.errors import DeltaLogError, TableNotFoundError


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("s3a://bucket/sales/", "s3://bucket/sales"),
        ("S3://bucket/sales", "s3://bucket/sales"),
        ("s3://bucket/a/sales", "s3://bucket/a/sales"),
        (
            "abfss://lake@Account.DFS.core.windows.net/t/",
            "abfss://lake@account.dfs.core.windows.net/t",
        ),
        ("gs://b/t", "gs://b/t"),
    ],
)
def test_object_store_uris_are_normalised(given, expected):
    assert delta_log.normalize_uri(given) == expected


def test_local_spellings_of_one_table_give_one_uri(tmp_path, monkeypatch):
    table = tmp_path / "with space"
    write_deltalake(str(table), pa.table({"x": [1]}))
    os.symlink(table, tmp_path / "link")
    monkeypatch.chdir(tmp_path)
    spellings = [
        str(table),
        str(table) + "/",
        "with space",
        "./with space/",
        str(tmp_path / "link"),
        table.as_uri(),
        DeltaTable(str(table)).table_uri,  # percent-encoded by deltalake
    ]
    assert {delta_log.normalize_uri(s) for s in spellings} == {f"file://{table}"}


def test_resolve_latest_and_a_given_version(make_table):
    path = make_table(commits=3)
    latest = delta_log.resolve(path)
    assert latest.version == 2
    assert latest.table_id == DeltaTable(path).metadata().id
    assert latest.commit.operation == "WRITE"
    assert delta_log.resolve(path, 0).version == 0
    with pytest.raises(TableNotFoundError, match="has no version 7"):
        delta_log.resolve(path, 7)


def test_resolve_follows_the_checkpoint(make_table):
    path = make_table(commits=3)
    DeltaTable(path).create_checkpoint()  # checkpoint at version 2
    write_deltalake(path, pa.table({"id": [9], "x": [0.0], "y": [0.0]}), mode="append")
    # Commits 0 and 1 are cleaned up: only the checkpoint knows the table id now.
    for v in (0, 1):
        os.remove(os.path.join(path, "_delta_log", f"{v:020d}.json"))
    delta_log.table_id_at.cache_clear()
    info = delta_log.resolve(path)
    assert info.version == 3
    assert info.table_id == DeltaTable(path).metadata().id


def test_recreated_table_is_told_apart(tmp_path):
    path = str(tmp_path / "t")
    write_deltalake(path, pa.table({"x": [1]}))
    first = delta_log.resolve(path).table_id
    import shutil

    shutil.rmtree(path)
    write_deltalake(path, pa.table({"x": [2]}))
    assert delta_log.resolve(path).table_id != first


def test_corrupt_last_checkpoint_is_a_delta_log_error(make_table):
    path = make_table()
    with open(os.path.join(path, "_delta_log", "_last_checkpoint"), "w") as fh:
        fh.write("{oops")
    with pytest.raises(DeltaLogError, match="_last_checkpoint is corrupt"):
        delta_log.resolve(path)


def test_commit_info_reads_in_commit_timestamp(make_table):
    path = make_table(commits=1)
    set_in_commit_timestamp(path, 0, 42)
    commit = delta_log.resolve(path).commit
    assert (commit.timestamp, commit.timestamp_source) == (42, "inCommitTimestamp")


@pytest.mark.parametrize("known", [-1, 0, 5])
def test_latest_version_search_finds_the_last_commit_for_any_count(known):
    from lineage_plugin.delta.log import _last_contiguous

    for latest in range(known, known + 70):
        probes: list[int] = []

        def exists(v: int, latest: int = latest, probes: list[int] = probes) -> bool:
            probes.append(v)
            return v <= latest

        assert _last_contiguous(exists, known) == latest
        assert len(probes) <= 2 * (latest - known + 2).bit_length() + 1
