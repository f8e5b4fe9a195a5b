"""The lineage graph (issue 15, point 3): transitive ``impact`` from a bad raw version to the
model versions in use, each with its path; ``upstream`` back to the raw versions; cycles end.

A real three-stage pipeline: ``raw`` (deltalake) -> a feature run (reads raw, writes
``features``) -> a training run (reads features, registers ``churn``, Production), on a real
MLflow SQLite store with the lineage index.
"""

from __future__ import annotations

import json
from typing import Any

import mlflow
import pyarrow as pa
import pytest
from click.testing import CliRunner
from deltalake import DeltaTable, write_deltalake
from helpers import read_pandas
from mlflow import MlflowClient
from test_json_schema import README, documented_schemas, missing_top_level, undocumented

from lineage_plugin.cli import cli
from lineage_plugin.queries import impact, upstream

pytestmark = pytest.mark.usefixtures("lineage_tracking")


def cli_json(uri: str, *args: str) -> dict[str, Any]:
    result = CliRunner().invoke(cli, [*args, "--json", "--tracking-uri", uri])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def cli_text(uri: str, *args: str) -> str:
    result = CliRunner().invoke(cli, [*args, "--tracking-uri", uri])
    assert result.exit_code == 0, result.output
    return result.output


def build_pipeline(make_table, tmp_path) -> dict[str, str]:
    """raw v0 and v1 (the bad one); features v0 from raw@0, features v1 from raw@1; churn v1
    trained on features@0 (Staging), churn v2 on features@1 (Production, alias champion)."""
    raw = make_table("raw", commits=2)
    features = str(tmp_path / "features")
    client = MlflowClient()
    client.create_registered_model("churn")
    ids: dict[str, str] = {"raw": raw, "features": features}
    for n in (0, 1):
        with mlflow.start_run(run_name=f"features-{n}") as run:
            frame = read_pandas(DeltaTable(raw, version=n))
            mode = "overwrite" if n else "error"
            write_deltalake(features, pa.Table.from_pandas(frame), mode=mode)
        ids[f"features{n}"] = run.info.run_id
        with mlflow.start_run(run_name=f"train-{n}") as run:
            read_pandas(DeltaTable(features, version=n))
            client.create_model_version("churn", "s3://bucket/model", run_id=run.info.run_id)
        ids[f"train{n}"] = run.info.run_id
    client.transition_model_version_stage("churn", "1", "Staging")
    client.transition_model_version_stage("churn", "2", "Production")
    client.set_registered_model_alias("churn", "champion", "2")
    return ids


def hops(path: list[dict[str, Any]]) -> list[str]:
    out = []
    for h in path:
        if h["kind"] == "table_version":
            out.append(f"{h['name']}@{h['version']}")
        elif h["kind"] == "run":
            out.append(h["run_id"])
        else:
            out.append(f"{h['name']}/{h['version']}")
    return out


def test_a_bad_raw_version_reaches_the_production_model_with_its_path(
    lineage_tracking, make_table, tmp_path
):
    ids = build_pipeline(make_table, tmp_path)
    report = cli_json(lineage_tracking, "impact", ids["raw"], "--from-version", "1")
    [mv] = report["model_versions"]  # v1 was trained on features@0, from the good raw@0
    assert (mv["name"], mv["version"], mv["stage"], mv["aliases"], mv["in_use"]) == (
        "churn",
        "2",
        "Production",
        ["champion"],
        True,
    )
    assert mv["depth"] == 2 and mv["run_id"] == ids["train1"]
    assert hops(mv["path"]) == ["raw@1", ids["features1"], "features@1", ids["train1"], "churn/2"]
    assert {r["run_id"]: r["depth"] for r in report["runs"]} == {
        ids["train1"]: 2,
        ids["features1"]: 1,
    }
    assert [(w["name"], w["version"], w["run_id"], w["depth"]) for w in report["written"]] == [
        ("features", 1, ids["features1"], 1)
    ]
    schemas = documented_schemas(README.read_text(encoding="utf-8"))
    assert undocumented(report, schemas["impact"], schemas, "impact") == []
    # from raw@0: both model versions, the in-use one first
    everything = impact(ids["raw"], from_version=0, tracking_uri=lineage_tracking)
    assert [(m["version"], m["depth"]) for m in everything.model_versions] == [("2", 2), ("1", 2)]
    text = cli_text(lineage_tracking, "impact", ids["raw"], "--from-version", "1")
    assert f"raw@1 -> run {ids['features1'][:8]} -> features@1 -> run {ids['train1'][:8]}" in text
    assert "-> model churn/2" in text and "Table versions written downstream (1)" in text


def test_upstream_walks_from_the_model_to_the_raw_versions(lineage_tracking, make_table, tmp_path):
    ids = build_pipeline(make_table, tmp_path)
    report = cli_json(lineage_tracking, "upstream", "churn", "champion")
    assert report["version"] == "2" and report["run_id"] == ids["train1"]
    by_table = {(t["name"], t["version"]): t for t in report["tables"]}
    assert set(by_table) == {("features", 1), ("raw", 1)}
    raw = by_table[("raw", 1)]
    assert raw["raw"] is True and raw["depth"] == 2 and raw["read_by"] == ids["features1"]
    assert "written_by" not in raw
    features = by_table[("features", 1)]
    assert features["raw"] is False and features["written_by"] == ids["features1"]
    assert hops(raw["path"]) == ["churn/2", ids["train1"], "features@1", ids["features1"], "raw@1"]
    assert [(r["run_id"], r["depth"]) for r in report["runs"]] == [
        (ids["train1"], 1),
        (ids["features1"], 2),
    ]
    schemas = documented_schemas(README.read_text(encoding="utf-8"))
    assert undocumented(report, schemas["upstream"], schemas, "upstream") == []
    assert missing_top_level(report, schemas["upstream"], schemas) == set()
    text = cli_text(lineage_tracking, "upstream", "churn", "2")
    assert "Raw table versions (1)" in text
    assert f"model churn/2 -> run {ids['train1'][:8]} -> features@1" in text


def test_a_cycle_terminates(lineage_tracking, make_table):
    """A run that reads and writes the same table, and a second one doing it again: the walk
    reaches each run once and ends."""
    table = make_table("loop", commits=1)
    client = MlflowClient()
    client.create_registered_model("loopy")
    run_ids = []
    for _ in range(2):
        with mlflow.start_run() as run:
            frame = read_pandas(DeltaTable(table))
            write_deltalake(table, pa.Table.from_pandas(frame), mode="append")
            read_pandas(DeltaTable(table))  # reads what it wrote: an edge back to itself
            client.create_model_version("loopy", "s3://bucket/m", run_id=run.info.run_id)
        run_ids.append(run.info.run_id)
    report = impact(table, from_version=0, to_version=0, tracking_uri=lineage_tracking)
    assert {r["run_id"]: r["depth"] for r in report.runs} == {run_ids[0]: 1, run_ids[1]: 2}
    assert [m["version"] for m in report.model_versions] == ["2", "1"]
    back = upstream("loopy", "2", tracking_uri=lineage_tracking)
    assert [r["run_id"] for r in back.runs] == [run_ids[1], run_ids[0]]
    assert [(t["version"], t["raw"]) for t in back.tables if t["raw"]] == [(0, True)]


def test_reindex_recovers_write_edges_from_the_commit_stamps(
    lineage_tracking, make_table, tmp_path
):
    """A run that exists in MLflow but recorded nothing (its client had no plugin) stamped
    the features version the model was trained on: reindex finds the write in the table's own
    history; a stamp of a run MLflow does not have is ignored; recorded writes stay single."""
    from deltalake import CommitProperties

    from lineage_plugin.queries import reindex

    ids = build_pipeline(make_table, tmp_path)
    client = MlflowClient()
    experiment = mlflow.get_experiment_by_name("lineage-tests").experiment_id
    silent = client.create_run(experiment, run_name="no-plugin").info.run_id
    client.set_terminated(silent)
    scores = ids["features"]
    frame = pa.table({"id": [1], "x": [1.0], "y": [0.0]})  # not read: no pending read
    for run_id in (silent, "0" * 32):  # no active run: the plugin leaves these commits alone
        stamp = CommitProperties(custom_metadata={"mlflow.runId": run_id})
        write_deltalake(scores, frame, mode="overwrite", commit_properties=stamp)
    with mlflow.start_run(run_name="train-2") as run:
        read_pandas(DeltaTable(scores, version=2))
        client.create_model_version("churn", "s3://bucket/model", run_id=run.info.run_id)
    before = upstream("churn", "3", tracking_uri=lineage_tracking)
    assert [(t["version"], t["raw"]) for t in before.tables] == [(2, True)]
    summary = cli_json(lineage_tracking, "reindex")
    assert summary["stamped_writes"] == 1 and summary["writes"] == 2
    after = upstream("churn", "3", tracking_uri=lineage_tracking)
    [features] = after.tables
    assert (features["version"], features["raw"], features["written_by"]) == (2, False, silent)
    assert [r["run_id"] for r in after.runs] == [run.info.run_id, silent]
    report = impact(scores, from_version=2, to_version=2, tracking_uri=lineage_tracking)
    assert [m["version"] for m in report.model_versions] == ["3"]
    again = reindex(tracking_uri=lineage_tracking)  # idempotent: the same edge, once
    assert again.stamped_writes == 1
    assert [r["run_id"] for r in upstream("churn", "3", tracking_uri=lineage_tracking).runs] == [
        run.info.run_id,
        silent,
    ]


def test_timeline_lists_which_run_wrote_each_version(lineage_tracking, make_table, tmp_path):
    ids = build_pipeline(make_table, tmp_path)
    table = cli_json(lineage_tracking, "timeline", "--table", ids["features"])
    writes = [e for e in table["entries"] if e["kind"] == "write"]
    assert [(e["table_version"], e["run_id"], e["run_name"]) for e in writes] == [
        (0, ids["features0"], "features-0"),
        (1, ids["features1"], "features-1"),
    ]
    model = cli_json(lineage_tracking, "timeline", "--model", "churn")
    assert {
        (e["table_version"], e["run_id"]) for e in model["entries"] if e["kind"] == "write"
    } == {
        (0, ids["features0"]),
        (1, ids["features1"]),
    }  # who wrote the versions its runs read
    schemas = documented_schemas(README.read_text(encoding="utf-8"))
    assert undocumented(table, schemas["timeline"], schemas, "timeline") == []
    text = cli_text(lineage_tracking, "timeline", "--table", ids["features"])
    assert f"WRITE by run {ids['features1']}" in text


class OnlyExperiment:
    """A user who may read every model and the runs of one experiment only."""

    def __init__(self, experiment_id: str) -> None:
        self.experiment_id = experiment_id

    def may_read(self, name: str) -> bool:
        return True

    def may_read_experiment(self, experiment_id: str) -> bool:
        return experiment_id == self.experiment_id


def test_the_ui_hides_runs_on_paths_the_user_may_not_read(lineage_tracking, make_table, tmp_path):
    """The feature runs move to an experiment the user may not read: they leave the runs and
    the written versions, and stay on the model version's path as a hop without an id."""
    from lineage_plugin.ui import visible

    ids = build_pipeline(make_table, tmp_path)
    readable = mlflow.get_experiment_by_name("lineage-tests").experiment_id
    hidden = MlflowClient().create_experiment("features-team")
    report = impact(ids["raw"], from_version=1, tracking_uri=lineage_tracking).to_dict()
    for run in report["runs"]:  # as if the feature run were in the other experiment
        if run["run_id"] == ids["features1"]:
            run["experiment_id"] = hidden
    shown = visible.impact(report, OnlyExperiment(readable))
    assert [r["run_id"] for r in shown["runs"]] == [ids["train1"]]
    assert shown["written"] == []
    [mv] = shown["model_versions"]
    assert mv["path"][1] == {"kind": "run", "hidden": True}
    assert mv["path"][3] == {"kind": "run", "run_id": ids["train1"]}
    assert ids["features1"] not in json.dumps(shown)
