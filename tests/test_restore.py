"""``mlflow-lineage restore``: Delta RESTORE to the recorded version, asked, refused, recorded."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow as pa
import pytest
from click.testing import CliRunner
from deltalake import DeltaTable, write_deltalake
from helpers import register_reader as register
from helpers import run_python
from mlflow import MlflowClient

import lineage_plugin as lp
from lineage_plugin.cli import cli
from lineage_plugin.errors import OperationCancelledError
from lineage_plugin.events import EVENT_PREFIX, RegistryEvent
from lineage_plugin.recovery.restore import restore

pytestmark = pytest.mark.usefixtures("lineage_tracking")


def invoke(*args: str, code: int = 0, stdin: str | None = None):
    result = CliRunner().invoke(cli, list(args), input=stdin)
    assert result.exit_code == code, result.output
    return result


def rows(path: str, version: int | None = None) -> list[dict]:
    frame = DeltaTable(path, version=version).to_pyarrow_table().sort_by("id")
    return frame.to_pylist()


def restore_events(name: str, version: str) -> list[RegistryEvent]:
    tags = MlflowClient().get_model_version(name, version).tags
    events = [RegistryEvent.from_json(v) for k, v in tags.items() if k.startswith(EVENT_PREFIX)]
    return [e for e in events if e.kind == "restore"]


def append_in_another_process(path: str, tmp_path) -> None:
    """A concurrent writer: a separate Python process commits one append to the table."""
    code = (
        "import sys, pyarrow as pa\n"
        "from deltalake import write_deltalake\n"
        "write_deltalake(sys.argv[1], pa.table({'id': [100], 'x': [1.0], 'y': [1.0]}),"
        " mode='append')\n"
    )
    before = DeltaTable(path).version()
    run_python("-c", code, path, cwd=tmp_path)
    assert DeltaTable(path).version() == before + 1


def test_restore_asks_first_then_restores_and_records_the_event(make_table):
    path = make_table(commits=1, rows=6)
    version = register(path)
    original = rows(path)
    DeltaTable(path).update(predicate="id < 3", updates={"y": "99.0"})

    out = invoke("restore", "ridge", version, stdin="n\n", code=2).output
    assert "now v1, restore to v0" in out and "UPDATE" in out and "num_updated_rows=3" in out
    assert "Nothing was restored" in out
    assert DeltaTable(path).version() == 1  # answering no writes nothing

    out = invoke("restore", "ridge", version, "--reason", "bad update", stdin="y\n").output
    assert "Restored sales to v0: new version v2 (was v1)" in out
    assert rows(path) == original
    again = invoke("restore", "ridge", version, "--yes").output
    assert "already at v2, a restored copy of v0" in again and "Nothing to restore" in again
    commit = DeltaTable(path).history(1)[0]
    assert commit["operation"] == "RESTORE" and "bad update" in commit["userMetadata"]

    [event] = restore_events("ridge", version)
    [done] = event.restores
    assert (done.from_version, done.to_version, done.new_version) == (1, 0, 2)
    assert event.reason == "bad update" and event.user and done.commits_undone == 1
    timeline = json.loads(invoke("timeline", "--model", "ridge", "--json").output)
    assert any(e.get("event_id") == event.event_id for e in timeline["entries"])


def test_a_later_run_reads_a_restored_copy_of_the_recorded_version(make_table):
    path = make_table(commits=2)
    version = register(path)  # version 1 reads v1
    write_deltalake(path, pa.table({"id": [9], "x": [9.0], "y": [9.0]}), mode="append")
    bad = register(path)  # version 2 reads the bad v2
    restore("ridge", version, confirm=None)
    retrained = register(path)  # version 3 reads v3, a copy of v1
    [read] = lp.get_lineage("ridge", retrained).inputs
    assert (read.version, read.operation, read.restored_from) == (3, "RESTORE", 1)
    assert read.label == "sales@v3 (restored copy of v1)"
    assert "restored copy of v1" in invoke("show", "ridge", retrained).output

    # impact counts a copy as the version it copies: the retrained version read good data.
    def impacted(*bounds: str) -> dict[str, dict]:
        report = json.loads(invoke("impact", "sales", *bounds, "--json").output)
        return {m["version"]: m for m in report["model_versions"]}

    assert set(impacted("--from-version", "2")) == {bad}
    good = impacted("--from-version", "1", "--to-version", "1")
    assert set(good) == {version, retrained}
    assert good[retrained]["table_versions"] == [3]
    assert good[retrained]["restored_copies"] == {"3": 1}
    assert "restored_copies" not in good[version]
    assert "3 (copy of 1)" in invoke("impact", "sales", "--from-version", "1").output


def test_dry_run_shows_the_plan_and_writes_nothing(make_table):
    path = make_table(commits=1, rows=6)
    version = register(path)
    DeltaTable(path).update(predicate="id = 1", updates={"y": "5.0"})
    plan = json.loads(invoke("restore", "ridge", version, "--dry-run", "--json").output)
    assert plan["dry_run"] is True and plan["restored"] == []
    [table] = plan["plan"]["tables"]
    assert (table["current_version"], table["target_version"]) == (1, 0)
    assert [c["operation"] for c in table["commits"]] == ["UPDATE"]
    assert DeltaTable(path).version() == 1 and restore_events("ridge", version) == []


def test_a_table_at_its_recorded_version_is_left_alone(make_table):
    path = make_table(commits=2)
    version = register(path)
    out = invoke("restore", "ridge", version, "--yes").output
    assert "already at v1" in out and "Nothing to restore" in out
    assert DeltaTable(path).version() == 1 and restore_events("ridge", version) == []


def test_undoing_deletes_needs_permission(make_table):
    path = make_table(commits=1, rows=6)
    version = register(path)
    original = rows(path)
    DeltaTable(path).delete("id = 4")
    out = invoke("restore", "ridge", version, "--yes", code=2).output
    assert "DELETED rows" in out and "--allow-undo-deletes" in out
    assert DeltaTable(path).version() == 1

    invoke("restore", "ridge", version, "--yes", "--allow-undo-deletes")
    assert rows(path) == original
    [event] = restore_events("ridge", version)
    assert event.restores[0].undid_deletes is True


def test_vacuumed_files_refuse_unless_allowed_and_the_loss_is_recorded(make_table):
    path = make_table(commits=2)
    version = register(path)
    write_deltalake(path, pa.table({"id": [7], "x": [1.0], "y": [1.0]}), mode="overwrite")
    DeltaTable(path).vacuum(retention_hours=0, enforce_retention_duration=False, dry_run=False)
    before = DeltaTable(path).version()

    out = invoke("restore", "ridge", version, "--yes", code=2).output
    assert "are gone" in out and "--allow-missing-files" in out
    assert DeltaTable(path).version() == before

    invoke("restore", "ridge", version, "--yes", "--allow-missing-files")
    [event] = restore_events("ridge", version)
    [done] = event.restores
    assert done.missing_files_allowed is True and done.new_version == before + 2
    ops = [h["operation"] for h in DeltaTable(path).history(2)]
    assert ops == ["FSCK", "RESTORE"]  # the missing files are dropped, the table reads again
    [read] = lp.get_lineage("ridge", register(path)).inputs
    assert read.operation == "FSCK" and read.restored_from is None  # not the same content


@pytest.mark.parametrize("case", ["recreated", "protocol"])
def test_refusals_leave_the_table_exactly_as_it_was(make_table, case):
    path = make_table(commits=2)
    version = register(path)
    if case == "recreated":
        shutil.rmtree(path)
        make_table(commits=3)
        expected = "re-created"
    else:
        DeltaTable(path).alter.set_table_properties({"delta.enableChangeDataFeed": "true"})
        expected = "downgrade the table protocol"
    log = sorted(p.name for p in (Path(path) / "_delta_log").iterdir())
    out = invoke("restore", "ridge", version, "--yes", "--allow-missing-files", code=2).output
    assert expected in out and "no table was changed" in out
    after = sorted(p.name for p in (Path(path) / "_delta_log").iterdir())
    assert after == log and restore_events("ridge", version) == []


def test_a_commit_during_the_question_means_a_new_plan_and_nothing_written(make_table, tmp_path):
    path = make_table(commits=1, rows=6)
    version = register(path)
    DeltaTable(path).update(predicate="id < 2", updates={"y": "7.0"})
    plans = []

    def confirm(plan):
        plans.append(plan)
        if len(plans) == 1:  # while the operator reads the plan, another process commits
            append_in_another_process(path, tmp_path)
        return True

    messages = []
    report = restore("ridge", version, confirm=confirm, progress=messages.append)
    first, second = plans
    assert [c.version for c in first.tables[0].commits] == [1]
    assert [(c.version, c.operation) for c in second.tables[0].commits] == [
        (1, "UPDATE"),
        (2, "WRITE"),
    ]
    assert any("moved from v1 to v2" in m and "Nothing was written" in m for m in messages)
    [done] = report.restored
    assert (done.from_version, done.new_version, done.commits_undone) == (2, 3, 2)
    assert [h["operation"] for h in DeltaTable(path).history()][:2] == ["RESTORE", "WRITE"]


def test_no_means_nothing_written_and_a_stale_plan_cannot_commit(make_table, tmp_path):
    path = make_table(commits=1, rows=6)
    version = register(path)
    DeltaTable(path).update(predicate="id < 2", updates={"y": "7.0"})
    with pytest.raises(OperationCancelledError):
        restore("ridge", version, confirm=lambda plan: False)
    assert DeltaTable(path).version() == 1

    # The commit guard: a restore planned on v1 cannot commit once someone committed v2,
    # however small the window between the last check and the commit.
    from lineage_plugin.recovery.plan import plan_restore
    from lineage_plugin.recovery.restore import _restore_table

    stale = plan_restore("ridge", version)
    append_in_another_process(path, tmp_path)
    with pytest.raises(Exception, match="got a commit after v1"):
        _restore_table(stale.tables[0], stale, None, False)
    assert DeltaTable(path).version() == 2
    assert DeltaTable(path).history(1)[0]["operation"] == "WRITE"
    assert restore_events("ridge", version) == []
