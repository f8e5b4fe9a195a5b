"""``vacuum TABLE``: Delta's VACUUM that keeps the versions models in use were trained on.

Real deltalake tables (each version overwrites the last, so every old version has files a
VACUUM can delete), a real SQLite MLflow store with registered model versions, the CLI
through click's runner.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from click.testing import CliRunner
from deltalake import DeltaTable, write_deltalake
from helpers import read_pandas, register_reader

from lineage_plugin.cli import cli

VERSIONS = 6  # v0..v5


def overwrite_table(path: Path, versions: int = VERSIONS) -> str:
    for v in range(versions):
        write_deltalake(
            str(path), pd.DataFrame({"v": [v] * 3, "x": [1.0, 2.0, 3.0]}), mode="overwrite"
        )
    return str(path)


def readable(path: str, versions: int = VERSIONS) -> list[int]:
    """Which of the versions written (not the VACUUM's own commits after them) can be read."""
    ok = []
    for v in range(versions):
        try:
            DeltaTable(path, version=v).to_pyarrow_table()
        except OSError:
            continue
        ok.append(v)
    return ok


def data_files(path: str) -> set[str]:
    return {n for n in os.listdir(path) if n.endswith(".parquet")}


def invoke(uri: str, *args: str, input: str | None = None) -> object:
    return CliRunner().invoke(cli, ["vacuum", *args, "--tracking-uri", uri], input=input)


@pytest.fixture
def registry(lineage_tracking, tmp_path):
    """A table v0..v5 and model versions reading v1 (alias), v2 (Production), v3 (tagged),
    and v4 (the newest): ``(uri, table path)``."""
    path = overwrite_table(tmp_path / "sales")
    client = mlflow.MlflowClient()
    for v in (1, 2, 3, 4):
        register_reader(path, "ridge", version=v)  # model versions 1..4 read v1..v4
    client.set_registered_model_alias("ridge", "champion", "1")
    client.transition_model_version_stage("ridge", "2", "Production")
    client.set_model_version_tag("ridge", "3", "lineage.protect", "true")
    return lineage_tracking, path


def test_every_kind_of_guard_keeps_its_version_and_the_rest_goes(registry):
    uri, path = registry
    result = invoke(uri, path, "--retention-hours", "0", "--keep-newest", "1", "--yes", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    why = {k["version"]: [g["why"] for g in k["protected_by"]] for k in report["kept"]}
    assert why == {
        1: [["alias champion"]],
        2: [["stage Production"]],
        3: [["tag lineage.protect"]],
        4: [["newest 1"]],
    }
    assert report["deleted"] == 1 and report["dry_run"] is False
    assert readable(path) == [1, 2, 3, 4, 5]  # only v0 went; v5 is the latest
    [commit] = [h for h in DeltaTable(path).history() if h["operation"] == "VACUUM END"]
    assert commit["mlflow_lineage.vacuum.kept_versions"] == "1,2,3,4"


def test_dry_run_lists_what_goes_and_who_keeps_what_and_deletes_nothing(registry):
    uri, path = registry
    before = data_files(path)
    result = invoke(uri, path, "--retention-hours", "0", "--keep-newest", "0", "--dry-run")
    assert result.exit_code == 0, result.output
    assert "files that go: 2 (" in result.stdout  # v0 and v4 (nothing protects v4 now)
    assert "v1: ridge v1 (alias champion)" in result.stdout
    assert "v2: ridge v2 (stage Production)" in result.stdout
    assert "shorter than the table's delta.deletedFileRetentionDuration (168 h)" in result.stdout
    assert "Dry run: nothing was deleted." in result.stdout
    assert data_files(path) == before
    data = json.loads(
        invoke(
            uri, path, "--retention-hours", "0", "--keep-newest", "0", "--dry-run", "--json"
        ).stdout
    )
    assert data["files"] == 2 and data["bytes"] > 0 and data["deleted"] == 0


def test_yes_reports_the_files_and_bytes_it_deleted_as_the_dry_run_planned(registry):
    uri, path = registry
    args = ("--retention-hours", "0", "--keep-newest", "0", "--json")
    planned = json.loads(invoke(uri, path, *args, "--dry-run").stdout)
    sizes = {n: os.path.getsize(os.path.join(path, n)) for n in data_files(path)}
    result = invoke(uri, path, *args, "--yes")
    assert result.exit_code == 0, result.output
    done = json.loads(result.stdout)
    gone = set(sizes) - data_files(path)
    assert len(gone) == done["files"] == done["deleted"] == planned["files"] == 2
    assert done["bytes"] == planned["bytes"] == sum(sizes[n] for n in gone)
    assert done["kept"] == planned["kept"] and readable(path) == [1, 2, 3, 5]  # v0, v4 went


def test_the_default_retention_is_the_tables_own_and_keeps_recent_files(registry):
    uri, path = registry
    result = invoke(uri, path, "--yes", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["files"] == 0 and report["table_retention_hours"] == 168.0
    assert readable(path) == list(range(VERSIONS))


def test_with_nothing_protected_it_deletes_what_deltas_own_vacuum_deletes(
    lineage_tracking, tmp_path
):
    ours = overwrite_table(tmp_path / "ours")
    theirs = overwrite_table(tmp_path / "theirs")
    expected = DeltaTable(theirs).vacuum(retention_hours=0, enforce_retention_duration=False)
    result = invoke(lineage_tracking, ours, "--retention-hours", "0", "--yes", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["kept"] == [] and report["deleted"] == len(expected) == VERSIONS - 1
    assert readable(ours) == [VERSIONS - 1]


def test_a_protected_version_already_unreadable_refuses_and_deletes_nothing(registry):
    uri, path = registry
    DeltaTable(path).vacuum(
        retention_hours=0, enforce_retention_duration=False, dry_run=False, keep_versions=[1, 2, 4]
    )  # v3 (tagged) lost behind the plugin's back
    before = data_files(path)
    result = invoke(uri, path, "--retention-hours", "0", "--keep-newest", "1", "--yes")
    assert result.exit_code == 2
    assert "Refused: v3 is already unreadable" in result.stderr
    assert "training data of ridge v3 (tag lineage.protect)" in result.stderr
    assert "Nothing was deleted" in result.stderr
    assert data_files(path) == before
    as_json = json.loads(invoke(uri, path, "--retention-hours", "0", "--json").stdout)
    assert any("ridge v3" in r for r in as_json["refusals"])


def test_no_is_the_default_answer(registry):
    uri, path = registry
    before = data_files(path)
    result = invoke(uri, path, "--retention-hours", "0", input="\n")
    assert result.exit_code == 2
    assert "Delete these files now? [y/N]" in result.stderr
    assert "not confirmed" in result.stderr
    assert data_files(path) == before


def test_a_version_registered_while_the_operator_decides_is_kept(registry):
    from lineage_plugin.recovery.vacuum import vacuum

    uri, path = registry

    def register_then_yes(plan):
        assert 0 not in plan.keep_versions
        register_reader(path, "late", version=0)
        return True

    report = vacuum(
        path, retention_hours=0, keep_newest=1, confirm=register_then_yes, tracking_uri=uri
    )
    assert report.deleted == ()
    assert 0 in readable(path)


def test_a_broken_manifest_falls_back_to_the_runs_record(registry):
    uri, path = registry
    client = mlflow.MlflowClient()
    client.set_model_version_tag("ridge", "1", "lineage.manifest", "{not json")
    result = invoke(
        uri, path, "--retention-hours", "0", "--keep-newest", "0", "--dry-run", "--json"
    )
    assert result.exit_code == 0, result.output
    assert 1 in [k["version"] for k in json.loads(result.stdout)["kept"]]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--retention-hours", "-1"], "-1"),
        (["--keep-newest", "-2"], "-2"),
        (["--engine", "duckdb"], "duckdb"),
    ],
)
def test_bad_options_are_usage_errors(registry, args, message):
    uri, path = registry
    before = data_files(path)
    result = invoke(uri, path, *args, "--yes")
    assert result.exit_code == 2 and message in result.output
    assert data_files(path) == before


def test_a_path_that_is_not_a_delta_table_and_an_unknown_name_are_clear_errors(
    lineage_tracking, tmp_path
):
    (tmp_path / "plain").mkdir()
    result = invoke(lineage_tracking, str(tmp_path / "plain"), "--yes")
    assert result.exit_code == 2 and "is not a Delta table" in result.stderr
    result = invoke(lineage_tracking, "nosuchtable", "--yes")
    assert result.exit_code == 2 and "give the path" not in result.stderr
    assert "No run in the lineage index read the table 'nosuchtable'" in result.stderr


def test_upstream_versions_of_a_protected_model_are_kept(lineage_tracking, tmp_path):
    raw = overwrite_table(tmp_path / "raw", versions=3)
    features = str(tmp_path / "features")
    with mlflow.start_run():  # the pipeline: raw v1 -> features v0
        df = read_pandas(DeltaTable(raw, version=1))
        write_deltalake(features, df.assign(x2=df.x * 2))
    register_reader(features, "churn", version=0)
    mlflow.MlflowClient().set_registered_model_alias("churn", "champion", "1")
    result = invoke(
        lineage_tracking, raw, "--retention-hours", "0", "--keep-newest", "0", "--yes", "--json"
    )
    assert result.exit_code == 0, result.output
    [kept] = json.loads(result.stdout)["kept"]
    assert kept["version"] == 1
    [guard] = kept["protected_by"]
    assert guard["name"] == "churn" and guard["via"]["version"] == 0
    assert guard["via"]["uri"].endswith("/features")
    assert readable(raw, 3) == [1, 2]


def test_the_json_is_what_the_readme_documents(registry, tmp_path):
    from test_json_schema import README, documented_schemas, missing_top_level, undocumented

    uri, path = registry
    raw = overwrite_table(tmp_path / "raw", versions=2)
    features = str(tmp_path / "features")
    with mlflow.start_run():
        write_deltalake(features, read_pandas(DeltaTable(raw, version=0)))
    register_reader(features, "churn", version=0)
    schemas = documented_schemas(README.read_text(encoding="utf-8"))
    for table in (path, raw):
        data = json.loads(invoke(uri, table, "--retention-hours", "0", "--yes", "--json").stdout)
        assert missing_top_level(data, schemas["vacuum"], schemas) == {"spark_retention_hours"}
        assert undocumented(data, schemas["vacuum"], schemas, "vacuum") == []
