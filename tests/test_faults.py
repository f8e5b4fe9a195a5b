"""Faults, injected for real (issue 16, point 3): one test per fault, real components.

The table deleted between plan and restore, a commit file corrupted or missing, the SQLite
database locked by another writer, the CLI killed (SIGKILL) during a restore and a vacuum, the
disk full while an export is written. After each: a clear error or an honest record, nothing
half written, an event recorded once, and the rerun works.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import pyarrow as pa
import pytest
from click.testing import CliRunner
from deltalake import DeltaTable, write_deltalake
from helpers import child_env, lineage_tags, read_pandas, register_reader, run_python
from mlflow import MlflowClient

import lineage_plugin as lp
from lineage_plugin.cli import cli
from lineage_plugin.errors import LineageError
from lineage_plugin.events import EVENT_PREFIX, RegistryEvent


def invoke(*args: str, code: int):
    result = CliRunner().invoke(cli, list(args), prog_name="mlflow-lineage")
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    return result


def events_of(name: str, version: str, kind: str) -> list[RegistryEvent]:
    tags = MlflowClient().get_model_version(name, version).tags
    events = [RegistryEvent.from_json(v) for k, v in tags.items() if k.startswith(EVENT_PREFIX)]
    return [e for e in events if e.kind == kind]


def rows(path: str, version: int | None = None) -> list[dict]:
    return DeltaTable(path, version=version).to_pyarrow_table().sort_by("id").to_pylist()


# ---- 1. the table deleted between plan and restore ------------------------------------------


def test_a_table_deleted_between_plan_and_restore_is_a_clear_error_and_nothing_recorded(
    lineage_tracking, make_table
):
    path = make_table(commits=1, rows=6)
    version = register_reader(path)
    DeltaTable(path).update(predicate="id < 3", updates={"y": "99.0"})
    saved = Path(path).with_name("sales.saved")
    shutil.copytree(path, saved)
    asked = []

    def delete_then_yes(plan: object) -> bool:
        asked.append(plan)
        shutil.rmtree(path)
        return True

    with pytest.raises(LineageError) as caught:
        lp.restore("ridge", version, confirm=delete_then_yes)
    message = str(caught.value)
    assert len(asked) == 1 and "Traceback" not in message
    assert f"{path}' does not exist" in message, message
    assert not os.path.exists(path) or not os.listdir(path)  # nothing half written
    assert events_of("ridge", version, "restore") == []

    shutil.copytree(saved, path)  # the table comes back: the rerun restores it
    report = lp.restore("ridge", version, confirm=None)
    [done] = report.restored
    assert (done.from_version, done.to_version, done.new_version) == (1, 0, 2)
    assert rows(path) == rows(path, 0)
    assert len(events_of("ridge", version, "restore")) == 1


# ---- 2. a commit file corrupted or missing --------------------------------------------------


@pytest.mark.parametrize("fault", ["corrupted", "missing"])
def test_a_corrupted_or_missing_commit_file_is_a_clear_error_and_never_a_false_record(
    lineage_tracking, make_table, fault
):
    path = make_table(commits=3)
    version = register_reader(path)  # reads v2
    commit = Path(path, "_delta_log", f"{1:020d}.json")
    if fault == "corrupted":
        commit.write_bytes(b"\x00\xff garbage {not json\n\x89PNG")
    else:
        commit.unlink()
    symptom = "is not UTF-8 text" if fault == "corrupted" else "Expected contiguous commit files"
    for args, code in ((["check", "ridge", version], 1), (["show", "ridge", version], 0),
                       (["restore", "ridge", version, "--dry-run"], 2)):  # fmt: skip
        out = invoke(*args, code=code).output
        assert "0: <unknown>" not in out  # no Rust backtrace either
        if args[0] == "show":  # the record says what was read, unchanged
            assert "sales  2 " in out
        else:
            assert "sales" in out and ("Json error" in out or symptom in out), out
    assert "The restore is refused; no table was changed" in out
    assert len(list(Path(path, "_delta_log").glob("*.json"))) == (3 if fault == "corrupted" else 2)

    with mlflow.start_run() as run:  # a new run that reads the broken table under autolog
        try:
            read_pandas(DeltaTable(path))
        except Exception as exc:  # deltalake itself cannot open it: a clear error
            assert "Traceback" not in str(exc)
        else:
            pytest.fail("deltalake read a table whose log is broken")
    tags = lineage_tags(run.info.run_id)
    assert lp.get_run_lineage(run.info.run_id).inputs == ()  # never a version it did not read
    assert tags.get("lineage.status", "incomplete") == "incomplete"


# ---- 3. the SQLite database locked by another writer for a while ----------------------------

HOLD_LOCK = """
import sqlite3, sys, time
con = sqlite3.connect(sys.argv[1], isolation_level=None)
con.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
con.execute("COMMIT")
"""


def test_a_run_whose_database_is_locked_for_a_while_records_its_read_once(
    lineage_tracking, sqlite_uri, make_table, tmp_path
):
    path = make_table(commits=2)
    database = sqlite_uri.removeprefix("sqlite:///")
    with mlflow.start_run() as run:
        holder = subprocess.Popen(
            [sys.executable, "-c", HOLD_LOCK, database, "3"],
            stdout=subprocess.PIPE, text=True, env=child_env(),
        )  # fmt: skip
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        started = time.monotonic()
        try:
            read_pandas(DeltaTable(path))
            mlflow.log_param("alpha", 0.5)
        finally:
            waited = time.monotonic() - started
            holder.wait(timeout=30)
    assert waited > 2.5  # the run really waited for the other writer
    tags = lineage_tags(run.info.run_id)
    [read] = lp.get_run_lineage(run.info.run_id).inputs  # recorded once
    assert (read.name, read.version) == ("sales", 1)
    assert [k for k in tags if k.startswith("lineage.input.")] == ["lineage.input.000"]
    assert tags["lineage.status"] == "complete" and tags["lineage.tables"] == "sales@v1"
    assert mlflow.get_run(run.info.run_id).data.params == {"alpha": "0.5"}


# ---- 4. the CLI killed (SIGKILL) during a restore and a vacuum ------------------------------


def cli_process(*args: str) -> subprocess.Popen:
    command = [sys.executable, "-c", "from lineage_plugin.cli import main; main()", *args]
    return subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=child_env()
    )


def kill_when(child: subprocess.Popen, happened, timeout: float = 60) -> None:
    """SIGKILL ``child`` the moment ``happened()`` is true (it must happen before it exits)."""
    deadline = time.monotonic() + timeout
    while not happened():
        assert child.poll() is None, child.communicate()
        assert time.monotonic() < deadline, "the operation never started"
        time.sleep(0.002)
    child.send_signal(signal.SIGKILL)
    child.communicate(timeout=30)
    assert child.returncode == -signal.SIGKILL


def test_a_restore_killed_after_its_commit_keeps_the_table_whole_and_the_rerun_records_it_once(
    lineage_tracking, sqlite_uri, make_table
):
    """The kill lands between the Delta commit and the event: another writer holds MLflow's
    database (in WAL mode, so the plan can still read), the restore commits, then waits."""
    path = make_table(commits=1, rows=6)
    version = register_reader(path)
    original = rows(path)
    DeltaTable(path).update(predicate="id < 3", updates={"y": "99.0"})
    database = sqlite_uri.removeprefix("sqlite:///")
    with sqlite3.connect(database) as con:
        assert con.execute("PRAGMA journal_mode=WAL").fetchone() == ("wal",)
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, database, "60"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        child = cli_process(
            "restore", "ridge", version, "--yes", "--tracking-uri", lineage_tracking
        )
        kill_when(child, Path(path, "_delta_log", f"{2:020d}.json").exists)
    finally:
        holder.kill()
        holder.wait(timeout=30)
    assert DeltaTable(path).version() == 2 and rows(path) == original  # whole, not half
    assert events_of("ridge", version, "restore") == []  # killed before the event

    out = invoke("restore", "ridge", version, "--yes", code=0).output
    assert "Recorded as event" in out and DeltaTable(path).version() == 2  # no second RESTORE
    [event] = events_of("ridge", version, "restore")
    [done] = event.restores
    assert (done.from_version, done.to_version, done.new_version) == (1, 0, 2)
    assert "interrupted" in (event.reason or "")
    out = invoke("restore", "ridge", version, "--yes", code=0).output
    assert "Nothing to restore" in out and len(events_of("ridge", version, "restore")) == 1


@pytest.mark.slow
def test_a_vacuum_killed_while_deleting_leaves_the_kept_versions_readable_and_reruns(
    lineage_tracking, tmp_path
):
    """v0 has 3,000 files (one per partition), which the VACUUM deletes one by one: the kill
    lands when the first of them is gone."""
    path = str(tmp_path / "sales")
    count = 3000
    write_deltalake(path, pa.table({"id": range(count), "p": range(count)}), partition_by=["p"])
    for v in (1, 2):
        write_deltalake(path, pa.table({"id": [v], "p": [v]}), mode="overwrite")
    register_reader(path, version=1)
    MlflowClient().set_registered_model_alias("ridge", "champion", "1")
    first = sorted(Path(path).rglob("*.parquet"))
    assert len(first) == count + 2
    args = ("vacuum", path, "--retention-hours", "0", "--keep-newest", "0", "--yes")
    child = cli_process(*args, "--tracking-uri", lineage_tracking)
    kill_when(child, lambda: not all(f.exists() for f in first[:100]))

    left = len(list(Path(path).rglob("*.parquet")))
    assert 2 < left < count + 2  # the kill landed in the middle of the deletions
    for v in (1, 2):  # the version kept and the latest read, whatever was deleted
        assert DeltaTable(path, version=v).to_pyarrow_table()["id"].to_pylist() == [v]
    operations = [h["operation"] for h in DeltaTable(path).history()]
    assert operations.count("VACUUM START") == 1 and "VACUUM END" not in operations

    report = json.loads(invoke(*args, "--json", code=0).stdout)
    # deltalake counts the files its plan lists, those the killed run deleted included
    assert report["deleted"] == count and [k["version"] for k in report["kept"]] == [1]
    assert len(list(Path(path).rglob("*.parquet"))) == 2
    [end] = [h for h in DeltaTable(path).history() if h["operation"] == "VACUUM END"]
    assert end["mlflow_lineage.vacuum.kept_versions"] == "1"
    assert DeltaTable(path, version=1).to_pyarrow_table()["id"].to_pylist() == [1]


TRAIN = Path(__file__).resolve().parents[1] / "demo_notebooks" / "train_diabetes.py"


@pytest.mark.slow
def test_a_reproduce_killed_while_retraining_records_nothing_false_and_reruns(tmp_path, sqlite_uri):
    """The CLI and its training process are killed together (their process group) once the
    retraining run exists: no verification is recorded, the dead run names only the version
    it read, and the rerun verifies and records its event once."""
    from helpers import register_logged_model, tracking_at
    from sklearn.datasets import load_diabetes

    uri, table = f"lineage+{sqlite_uri}", tmp_path / "diabetes"
    write_deltalake(str(table), load_diabetes(as_frame=True).frame.reset_index(names="row_id"))
    trained = run_python(str(TRAIN), "--table", str(table), "--model", "ridge",
                         cwd=tmp_path, MLFLOW_TRACKING_URI=uri)  # fmt: skip
    run_id = trained.stdout.rsplit("run_id=", 1)[1].split()[0]
    with tracking_at(uri):
        version = register_logged_model(run_id, "diabetes")
    DeltaTable(str(table)).update(predicate="row_id % 3 = 0", updates={"target": "0.0"})

    def retraining_started() -> bool:
        with sqlite3.connect(sqlite_uri.removeprefix("sqlite:///")) as con:
            return bool(
                con.execute("SELECT 1 FROM tags WHERE key = 'lineage.reproduces'").fetchall()
            )

    command = [sys.executable, "-c", "from lineage_plugin.cli import main; main()",
               "reproduce", "diabetes", version, "--tracking-uri", uri]  # fmt: skip
    child = subprocess.Popen(
        command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env=child_env(), start_new_session=True,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while not retraining_started():
        assert child.poll() is None and time.monotonic() < deadline, child.communicate()
        time.sleep(0.01)
    os.killpg(child.pid, signal.SIGKILL)
    child.communicate(timeout=30)

    with tracking_at(uri):
        assert events_of("diabetes", version, "verification") == []
        [dead] = mlflow.search_runs(
            filter_string=f"tags.`lineage.reproduces` = 'diabetes/{version}'",
            search_all_experiments=True, output_format="list",
        )  # fmt: skip
        assert dead.info.status == "RUNNING"  # killed: never marked finished
        assert all(i.version == 0 for i in lp.get_run_lineage(dead.info.run_id).inputs)
    report = json.loads(invoke("reproduce", "diabetes", version, "--json", "--tracking-uri", uri,
                               code=0).stdout)  # fmt: skip
    assert report["verified"] is True
    with tracking_at(uri):
        [event] = events_of("diabetes", version, "verification")
    assert event.event_id == report["event_id"]


# ---- 5. the disk full while an export is written --------------------------------------------


@pytest.fixture
def full_disk(tmp_path):
    """A 64 KiB tmpfs filled to the last byte: ``(directory, filler file)``."""
    mount = tmp_path / "small"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)],
        capture_output=True, text=True,
    )  # fmt: skip
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {done.stderr.strip()}")
    filler = mount / "filler"
    try:
        fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
        try:
            with pytest.raises(OSError, match="No space left"):
                for _ in range(1024):
                    os.write(fd, b"\0" * 4096)
        finally:
            os.close(fd)
        yield mount, filler
    finally:
        subprocess.run(["umount", str(mount)], check=True)


def test_an_export_onto_a_full_disk_is_exit_2_and_leaves_no_partial_archive(
    lineage_tracking, make_table, full_disk
):
    mount, filler = full_disk
    path = make_table(commits=2)
    register_reader(path)
    target = mount / "lineage.tar.gz"
    out = invoke("export", "-o", str(target), code=2)
    message = " ".join(out.output.split())
    assert "No space left on device" in message and str(target) in message, message
    assert sorted(p.name for p in mount.iterdir()) == ["filler"]  # no partial archive

    filler.unlink()  # space again: the rerun writes the whole archive
    invoke("export", "-o", str(target), code=0)
    assert sorted(p.name for p in mount.iterdir()) == ["lineage.tar.gz"]
    import tarfile

    with tarfile.open(target) as archive:
        assert {"manifest.json", "lineage.jsonl", "openlineage.jsonl"} <= set(archive.getnames())
