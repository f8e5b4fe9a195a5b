"""``check --all`` and the retention risks of ``check`` and ``vacuum``: when a plain VACUUM or
log clean-up, with the table's own settings, will make a protected version unreadable.

Each prediction is then made to happen for real: deltalake's own ``vacuum()`` (retention
enforced) and ``cleanup_metadata()`` run on the table, and the version is read. Time is moved by
ageing the table for real: the removal times in the commit files (what VACUUM compares) and the
commit files' modification times (what log clean-up compares).
"""

from __future__ import annotations

import glob
import json
import os
import time
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from click.testing import CliRunner
from deltalake import DeltaTable, write_deltalake
from helpers import read_pandas, register_reader

from lineage_plugin.cli import cli
from lineage_plugin.delta.retention import retention_risks

HOUR_MS = 3_600_000
DAY_S = 86_400


def overwritten(path: Path, versions: int = 4, configuration: dict | None = None) -> str:
    for v in range(versions):
        write_deltalake(
            str(path),
            pd.DataFrame({"v": [v] * 3}),
            mode="overwrite",
            configuration=configuration if v == 0 else None,
        )
    return str(path)


def commit_path(table: str, version: int) -> str:
    return os.path.join(table, "_delta_log", f"{version:020d}.json")


def removal_time(table: str, version: int) -> int:
    """The deletionTimestamp of the files commit ``version`` removed."""
    with open(commit_path(table, version), encoding="utf-8") as fh:
        actions = [json.loads(line) for line in fh if line.strip()]
    return min(a["remove"]["deletionTimestamp"] for a in actions if "remove" in a)


def age_removals(table: str, days: float) -> None:
    """Move every removal in the log ``days`` into the past."""
    shift = int(days * DAY_S * 1000)
    for name in glob.glob(os.path.join(table, "_delta_log", "*.json")):
        with open(name, encoding="utf-8") as fh:
            actions = [json.loads(line) for line in fh if line.strip()]
        for a in actions:
            if "remove" in a:
                a["remove"]["deletionTimestamp"] -= shift
        stat = os.stat(name)
        with open(name, "w", encoding="utf-8") as fh:
            fh.write("".join(json.dumps(a) + "\n" for a in actions))
        os.utime(name, ns=(stat.st_atime_ns, stat.st_mtime_ns))


def age_commits(table: str, days: float) -> None:
    """Make every commit file ``days`` older (what log clean-up compares)."""
    for name in glob.glob(os.path.join(table, "_delta_log", "*.json")):
        old = os.stat(name).st_mtime - days * DAY_S
        os.utime(name, (old, old))


def can_read(table: str, version: int) -> bool:
    try:
        DeltaTable(table, version=version).to_pyarrow_table()
    except Exception:  # noqa: BLE001 - deltalake raises several kinds
        return False
    return True


def check_all(uri: str, *args: str) -> tuple[int, dict]:
    result = CliRunner().invoke(cli, ["check", "--all", *args, "--json", "--tracking-uri", uri])
    assert result.exit_code in (0, 1), result.output
    return result.exit_code, json.loads(result.stdout)


def versions_of(report: dict, table: str) -> dict[int, dict]:
    [entry] = [t for t in report["tables"] if t["uri"].endswith(os.path.basename(table))]
    return {v["version"]: v for v in entry["versions"]}


@pytest.fixture
def champion(lineage_tracking, tmp_path):
    """Table v0..v3 (each overwriting the last); ridge v1 (alias champion) read v1."""
    table = overwritten(tmp_path / "sales")
    register_reader(table, "ridge", version=1)
    mlflow.MlflowClient().set_registered_model_alias("ridge", "champion", "1")
    return lineage_tracking, table


def test_a_replaced_version_is_at_risk_from_its_removal_plus_the_file_retention(champion):
    uri, table = champion
    code, report = check_all(uri, "--within", "1d")
    assert code == 0 and report["ok"] is True and report["at_risk"] == 0
    v1 = versions_of(report, table)[1]
    assert v1["unreadable"] == [] and v1["protected_by"][0]["why"] == ["alias champion", "newest 3"]
    files = next(r for r in v1["risks"] if r["kind"] == "files")
    assert files["at_ms"] == removal_time(table, 2) + 168 * HOUR_MS and files["due"] is False
    assert "delta.deletedFileRetentionDuration is 168 h" in files["detail"]
    log = next(r for r in v1["risks"] if r["kind"] == "log")
    assert log["needs_checkpoint"] is True  # deltalake checkpoints every 100 commits
    # Seven days ahead, the same risk is due: exit 1.
    code, report = check_all(uri, "--within", "8d")
    assert code == 1 and report["at_risk"] == 1 and report["ok"] is False


def test_a_due_file_risk_is_what_a_plain_vacuum_then_deletes(champion):
    uri, table = champion
    age_removals(table, 8)
    code, report = check_all(uri, "--within", "0")
    assert code == 1 and report["at_risk"] == 1
    [files] = [r for r in versions_of(report, table)[1]["risks"] if r["kind"] == "files"]
    assert files["due"] is True and files["at_ms"] < time.time() * 1000
    DeltaTable(table).vacuum(dry_run=False)  # Delta's own, with the table's retention
    assert not can_read(table, 1)
    code, report = check_all(uri)
    assert code == 1 and report["unreadable"] == 1
    assert "are gone" in versions_of(report, table)[1]["unreadable"][0]


def test_a_longer_file_retention_keeps_the_version_from_a_plain_vacuum(champion):
    uri, table = champion
    DeltaTable(table).alter.set_table_properties(
        {"delta.deletedFileRetentionDuration": "interval 30 days"}
    )
    age_removals(table, 8)
    code, report = check_all(uri)
    assert code == 0, report
    [files] = [r for r in versions_of(report, table)[1]["risks"] if r["kind"] == "files"]
    assert "is 720 h" in files["detail"]
    DeltaTable(table).vacuum(dry_run=False)
    assert can_read(table, 1)


def test_a_due_log_risk_is_what_log_clean_up_then_deletes(champion):
    uri, table = champion
    DeltaTable(table).create_checkpoint()  # at v3: what lets clean-up delete v0..v2
    age_commits(table, 40)
    code, report = check_all(uri)
    assert code == 1
    [log] = [r for r in versions_of(report, table)[1]["risks"] if r["kind"] == "log"]
    assert log["due"] is True and "needs_checkpoint" not in log
    assert "delta.logRetentionDuration is 720 h" in log["detail"]
    DeltaTable(table).cleanup_metadata()
    assert not can_read(table, 1)
    code, report = check_all(uri)
    assert (
        code == 1
        and "no longer reaches version 1" in versions_of(report, table)[1]["unreadable"][0]
    )


def test_a_longer_log_retention_keeps_the_version_through_clean_up(lineage_tracking, tmp_path):
    keep = {"delta.logRetentionDuration": "interval 3650 days"}
    table = overwritten(tmp_path / "sales", configuration=keep)
    register_reader(table, "ridge", version=1)
    DeltaTable(table).create_checkpoint()
    age_commits(table, 40)
    age_removals(table, 1)
    code, report = check_all(lineage_tracking)
    assert code == 0, report
    [log] = [r for r in versions_of(report, table)[1]["risks"] if r["kind"] == "log"]
    assert "is 87600 h" in log["detail"]
    DeltaTable(table).cleanup_metadata()
    assert can_read(table, 1)


def test_a_version_whose_files_are_all_current_has_no_file_risk(lineage_tracking, tmp_path):
    table = str(tmp_path / "appended")
    for v in range(3):
        write_deltalake(table, pd.DataFrame({"v": [v]}), mode="append")
    report = retention_risks(table, [0, 1, 2])
    assert report.skipped is None
    assert sorted({(r.version, r.kind) for r in report.risks}) == [
        (0, "log"),
        (1, "log"),
        (2, "log"),
    ]


def test_upstream_versions_are_checked_too(lineage_tracking, tmp_path):
    raw = overwritten(tmp_path / "raw", versions=3)
    features = str(tmp_path / "features")
    with mlflow.start_run():  # the pipeline: raw v1 -> features v0
        write_deltalake(features, read_pandas(DeltaTable(raw, version=1)))
    register_reader(features, "churn", version=0)
    age_removals(raw, 8)
    code, report = check_all(lineage_tracking, "--keep-newest", "1")
    assert code == 1
    [guard] = versions_of(report, raw)[1]["protected_by"]
    assert guard["name"] == "churn" and guard["via"]["version"] == 0
    assert any(r["kind"] == "files" and r["due"] for r in versions_of(report, raw)[1]["risks"])
    text = CliRunner().invoke(
        cli, ["check", "--all", "--keep-newest", "1", "--tracking-uri", lineage_tracking]
    )
    assert text.exit_code == 1
    assert "[DUE] files: a plain VACUUM can delete" in text.stdout
    assert "upstream of features v0" in text.stdout


def test_check_of_one_version_lists_its_risks_and_fails_on_a_due_one(champion):
    uri, table = champion
    runner = CliRunner()
    fresh = json.loads(
        runner.invoke(cli, ["check", "ridge", "1", "--json", "--tracking-uri", uri]).stdout
    )
    assert {r["kind"] for r in fresh["risks"]} == {"files", "log"}
    assert all(not r["due"] and r["uri"].endswith("sales") for r in fresh["risks"])
    assert not [p for p in fresh["problems"] if p["kind"] == "retention"]
    age_removals(table, 8)
    result = runner.invoke(cli, ["check", "ridge", "1", "--tracking-uri", uri])
    assert result.exit_code == 1
    assert "[retention] sales@v1: a plain VACUUM can delete 1 of its data files" in result.stdout


def test_the_vacuum_plan_says_what_log_clean_up_will_take(champion):
    uri, table = champion
    result = CliRunner().invoke(
        cli, ["vacuum", table, "--dry-run", "--keep-newest", "0", "--tracking-uri", uri]
    )
    assert result.exit_code == 0, result.output
    assert "v1 is kept, but log clean-up can delete the commits it is rebuilt from" in result.stdout
    assert "raise delta.logRetentionDuration" in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["check", "--all", "ridge", "1"], "either MODEL VERSION or --all"),
        (["check"], "Give MODEL VERSION, or --all"),
        (["check", "ridge"], "Give MODEL VERSION, or --all"),
        (["check", "--all", "--within", "soon"], "Cannot read the length of time 'soon'"),
        (["check", "--all", "--within", "3d ago"], "Cannot read the length of time"),
        (["check", "--all", "--keep-newest", "-1"], "-1 is not in the range"),
    ],
)
def test_bad_check_options_are_refused_with_exit_2(champion, args, message):
    uri, table = champion
    before = sorted(os.listdir(os.path.join(table, "_delta_log")))
    result = CliRunner().invoke(cli, [*args, "--tracking-uri", uri])
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output
    assert sorted(os.listdir(os.path.join(table, "_delta_log"))) == before


def test_a_registry_without_models_in_use_is_ok(lineage_tracking, tmp_path):
    code, report = check_all(lineage_tracking)
    assert code == 0 and report["tables"] == [] and report["model_versions"] == []


def test_remote_tables_are_listed_as_not_assessed():
    report = retention_risks("s3://bucket/table", [1])
    assert report.risks == () and "only local tables" in report.skipped


def test_the_json_is_what_the_readme_documents(champion):
    from test_json_schema import README, documented_schemas, undocumented

    uri, _ = champion
    schemas = documented_schemas(README.read_text(encoding="utf-8"))
    _, report = check_all(uri)
    assert undocumented(report, schemas["check_all"], schemas, "check_all") == []
    one = json.loads(
        CliRunner().invoke(cli, ["check", "ridge", "1", "--json", "--tracking-uri", uri]).stdout
    )
    assert undocumented(one, schemas["check"], schemas, "check") == []
