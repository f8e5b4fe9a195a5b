"""Live OpenLineage: runs send START and COMPLETE/FAIL/ABORT, checked by a real HTTP receiver on
loopback against the official schemas; the file transport; never breaking a run."""

from __future__ import annotations

import json
import os
import sys
import textwrap
import time
import uuid
from pathlib import Path

import mlflow
import pytest
from deltalake import DeltaTable
from helpers import read_pandas, run_python
from mlflow.tracking import MlflowClient
from openlineage_spec import Receiver, checked_facet_schemas, closed_port, problems

import lineage_plugin as lp
from lineage_plugin import openlineage as ol
from lineage_plugin.errors import LineageWarning, OpenLineageError
from lineage_plugin.openlineage import VERSION_FACET_SCHEMA_URL

pytest.importorskip("openlineage.client")
pytestmark = pytest.mark.usefixtures("lineage_tracking", "openlineage_env")

ISO_MS = "%Y-%m-%dT%H:%M:%S.%fZ"


@pytest.fixture
def openlineage_env() -> object:
    """Leave no OPENLINEAGE* variable behind: the client itself copies OPENLINEAGE_URL into
    OPENLINEAGE__TRANSPORT__* variables when it starts."""
    before = {k: v for k, v in os.environ.items() if k.startswith("OPENLINEAGE")}
    yield
    for key in [k for k in os.environ if k.startswith("OPENLINEAGE")]:
        del os.environ[key]
    os.environ.update(before)


@pytest.fixture
def receiver(monkeypatch: pytest.MonkeyPatch) -> object:
    server = Receiver()
    monkeypatch.setenv("OPENLINEAGE_URL", server.url)
    yield server
    server.close()


def kinds(events: list[dict]) -> list[str]:
    return [e["eventType"] for e in events]


def iso(ms: int) -> str:
    return ol.iso_time(ms)


def test_a_run_sends_start_and_complete_with_the_versions_it_read(
    receiver, make_table, no_lineage_warnings
):
    sales = make_table("sales", commits=2)
    customers = make_table("customers")
    with mlflow.start_run(run_name="first") as run:
        read_pandas(DeltaTable(sales, version=1))
        read_pandas(DeltaTable(customers))
    run_id = run.info.run_id
    info = mlflow.get_run(run_id).info

    events = receiver.of_run(run_id)
    assert receiver.rejected == [] and kinds(events) == ["START", "COMPLETE"]
    assert set(receiver.paths) == {"/api/v1/lineage"}
    start, complete = events
    assert start["run"]["runId"] == complete["run"]["runId"] == str(uuid.UUID(run_id))
    assert start["eventTime"] == iso(info.start_time)
    assert complete["eventTime"] == iso(info.end_time)
    assert start["inputs"] == []  # nothing read yet
    read = {(d["namespace"], d["name"]): d for d in complete["inputs"]}
    assert set(read) == {("file", sales), ("file", customers)}
    assert read[("file", sales)]["facets"]["version"]["datasetVersion"] == "1"
    assert read[("file", customers)]["facets"]["version"]["datasetVersion"] == "0"
    assert read[("file", sales)]["inputFacets"]["mlflowLineage_read"]["engine"] == "deltalake"
    assert complete["outputs"] == []

    job = complete["job"]
    assert job == start["job"]
    assert job["namespace"] == f"mlflow/{info.experiment_id}"
    assert job["name"] == ol.job_name(lp.get_run_lineage(run_id).code) != "first"
    assert job["facets"]["jobType"]["integration"] == "MLFLOW"
    record = complete["run"]["facets"]["mlflowLineage_record"]
    assert (record["runId"], record["runStatus"], record["status"]) == (
        run_id,
        "FINISHED",
        "complete",
    )
    assert start["run"]["facets"]["mlflowLineage_record"]["runStatus"] == "RUNNING"
    # Held to the official schemas, the version facet included; built with the client's classes.
    assert VERSION_FACET_SCHEMA_URL in checked_facet_schemas(complete)
    assert "tags" in complete["run"]["facets"]  # added by OpenLineageClient.emit itself
    assert "lineage.openlineage" not in mlflow.get_run(run_id).data.tags


def test_reads_made_before_the_run_are_in_its_start_event(receiver, make_table):
    path = make_table("features")
    read_pandas(DeltaTable(path))  # no run yet: attached to the next run
    with mlflow.start_run() as run:
        pass
    start, complete = receiver.of_run(run.info.run_id)
    assert [d["name"] for d in start["inputs"]] == [path] == [d["name"] for d in complete["inputs"]]


def test_a_failing_run_sends_fail_with_its_error(receiver, make_table):
    path = make_table()
    with pytest.raises(ValueError, match="training diverged"), mlflow.start_run() as run:
        read_pandas(DeltaTable(path))
        raise ValueError("training diverged")
    assert mlflow.get_run(run.info.run_id).info.status == "FAILED"

    events = receiver.of_run(run.info.run_id)
    assert receiver.rejected == [] and kinds(events) == ["START", "FAIL"]
    fail = events[1]
    assert [d["facets"]["version"]["datasetVersion"] for d in fail["inputs"]] == ["0"]
    error = fail["run"]["facets"]["errorMessage"]
    assert error["message"] == "ValueError: training diverged"
    assert error["programmingLanguage"] == "python"
    assert "training diverged" in error["stackTrace"] and "Traceback" in error["stackTrace"]
    assert fail["run"]["facets"]["mlflowLineage_record"]["runStatus"] == "FAILED"


def test_the_job_is_the_same_across_runs_and_not_the_run_name(receiver, make_table):
    path = make_table()
    run_ids = []
    for name in ("ridge-alpha-0.1", "ridge-alpha-1.0"):
        with mlflow.start_run(run_name=name) as run:
            read_pandas(DeltaTable(path))
        run_ids.append(run.info.run_id)
    mlflow.set_experiment("other-experiment")
    with mlflow.start_run(run_name="ridge-alpha-0.1") as other:
        pass

    jobs = {(e["job"]["namespace"], e["job"]["name"]) for r in run_ids for e in receiver.of_run(r)}
    assert len(jobs) == 1
    [(namespace, name)] = jobs
    assert name not in ("ridge-alpha-0.1", "ridge-alpha-1.0")
    assert {e["run"]["runId"] for r in run_ids for e in receiver.of_run(r)} == {
        str(uuid.UUID(r)) for r in run_ids
    }
    other_events = receiver.of_run(other.info.run_id)
    other_jobs = {(e["job"]["namespace"], e["job"]["name"]) for e in other_events}
    assert other_jobs == {(f"mlflow/{other.info.experiment_id}", name)} != jobs


def test_the_client_api_killed_is_abort_and_update_run_ends_a_run(receiver, lineage_tracking):
    client = MlflowClient(lineage_tracking)
    experiment = mlflow.get_experiment_by_name("lineage-tests").experiment_id
    killed = client.create_run(experiment).info.run_id
    client.set_terminated(killed, "KILLED")
    finished = client.create_run(experiment).info.run_id
    client.update_run(finished, name="renamed")  # a rename does not end the run
    assert kinds(receiver.of_run(finished)) == ["START"]
    client.update_run(finished, status="FINISHED")

    assert kinds(receiver.of_run(killed)) == ["START", "ABORT"]
    assert kinds(receiver.of_run(finished)) == ["START", "COMPLETE"]
    assert receiver.rejected == []


def test_endpoint_down_warns_tags_the_run_and_does_not_hold_it(monkeypatch, make_table):
    path = make_table()
    monkeypatch.setenv("OPENLINEAGE_URL", f"http://127.0.0.1:{closed_port()}")
    monkeypatch.setenv("MLFLOW_LINEAGE_OPENLINEAGE_TIMEOUT", "0.5")
    began = time.monotonic()
    with pytest.warns(LineageWarning) as caught, mlflow.start_run() as run:
        read_pandas(DeltaTable(path))
        mlflow.log_metric("rmse", 1.0)
    took = time.monotonic() - began

    info = mlflow.get_run(run.info.run_id)
    assert info.info.status == "FINISHED" and info.data.metrics == {"rmse": 1.0}
    messages = [str(w.message) for w in caught if "OpenLineage" in str(w.message)]
    assert len(messages) == 2
    assert "START event" in messages[0] and "COMPLETE event" in messages[1]
    tag = info.data.tags["lineage.openlineage"]
    assert tag.startswith("failed: START: not sent within 0.5 s")
    assert "; COMPLETE: not sent within 0.5 s" in tag
    assert info.data.tags["lineage.status"] == "complete"  # the lineage itself is whole
    assert took < 0.5 * 2 + 5  # two bounded waits, not the client's retries (about 9 s each)


def test_a_refused_connection_from_openlineage_yml_says_why(tmp_path, make_table):
    # The client finds openlineage.yml in the working directory (lineage_tracking chdirs there).
    (tmp_path / "openlineage.yml").write_text(
        f"transport:\n  type: http\n  url: http://127.0.0.1:{closed_port()}\n"
        "  retry:\n    total: 0\n"
    )
    with pytest.warns(LineageWarning, match="ConnectionError"), mlflow.start_run() as run:
        read_pandas(DeltaTable(make_table()))
    tag = mlflow.get_run(run.info.run_id).data.tags["lineage.openlineage"]
    assert tag.startswith("failed: START: ConnectionError") and "COMPLETE: ConnectionError" in tag


def test_strict_mode_raises(monkeypatch, tmp_path):
    (tmp_path / "openlineage.yml").write_text(
        f"transport:\n  type: http\n  url: http://127.0.0.1:{closed_port()}\n"
        "  retry:\n    total: 0\n"
    )
    monkeypatch.setenv("MLFLOW_LINEAGE_STRICT", "true")
    with pytest.raises(OpenLineageError, match="START event of run"):
        mlflow.start_run()
    [run] = mlflow.search_runs(output_format="list")
    assert run.data.tags["lineage.openlineage"].startswith("failed: START:")


def test_opting_out_sends_nothing(receiver, monkeypatch, make_table):
    monkeypatch.setenv("MLFLOW_LINEAGE_OPENLINEAGE", "false")
    with mlflow.start_run():
        read_pandas(DeltaTable(make_table()))
    assert receiver.events == [] and receiver.rejected == []


def test_client_not_installed_warns_and_tags(receiver, monkeypatch):
    monkeypatch.setitem(sys.modules, "openlineage", None)
    monkeypatch.setitem(sys.modules, "openlineage.client", None)
    missing = pytest.warns(LineageWarning, match="openlineage-python is not installed")
    with missing, mlflow.start_run() as run:
        pass
    tag = mlflow.get_run(run.info.run_id).data.tags["lineage.openlineage"]
    assert "pip install 'mlflow-delta-lineage[openlineage]'" in tag
    assert receiver.events == []


def test_a_run_that_writes_sends_its_outputs_with_the_version_written(receiver, make_table):
    import pandas as pd
    from deltalake import write_deltalake

    source = make_table("raw", commits=2)
    target = make_table("features")
    with mlflow.start_run() as run:
        frame = read_pandas(DeltaTable(source, version=1))
        write_deltalake(target, pd.DataFrame(frame), mode="append")
    start, complete = receiver.of_run(run.info.run_id)
    assert receiver.rejected == [] and start["outputs"] == []
    [output] = complete["outputs"]
    assert (output["namespace"], output["name"]) == ("file", target)
    assert output["facets"]["version"]["datasetVersion"] == "1"
    assert output["facets"]["mlflowLineage_deltaTable"]["operation"] == "WRITE"
    assert "inputFacets" not in output
    assert [d["facets"]["version"]["datasetVersion"] for d in complete["inputs"]] == ["1"]
    # The export builds the same event with the same code, with or without the client.
    record = lp.get_run_lineage(run.info.run_id)
    facts = ol.MlflowRunFacts.of(mlflow.get_run(run.info.run_id).info)
    for kit in (ol.client_kit(), ol.plain_kit()):
        event = kit.to_dict(ol.run_event(record, facts, kit=kit))
        assert problems(event) == []
        assert [o["facets"]["version"]["datasetVersion"] for o in event["outputs"]] == ["1"]


@pytest.mark.slow
def test_a_lineage_server_s_client_sends_the_events_once(
    receiver, tmp_path, _migrated_sqlite, make_table, monkeypatch
):
    """The client of an ``mlflow server`` on a lineage+ backend sends them; the server, though
    configured for the same receiver, sends nothing of its own."""
    import shutil

    from helpers import tracking_at
    from server import mlflow_server

    path = make_table()
    monkeypatch.setenv("MLFLOW_LINEAGE_HOME", str(tmp_path / "client-index"))
    shutil.copyfile(_migrated_sqlite, tmp_path / "server.db")
    backend = f"lineage+sqlite:///{tmp_path / 'server.db'}"
    server_env = {"OPENLINEAGE_URL": receiver.url}
    with mlflow_server(backend, tmp_path, env=server_env) as url, tracking_at(f"lineage+{url}"):
        mlflow.set_experiment("served")
        with mlflow.start_run() as run:
            read_pandas(DeltaTable(path))
        MlflowClient().set_tag(run.info.run_id, "reviewed", "yes")
    assert receiver.rejected == []
    assert kinds(receiver.events) == ["START", "COMPLETE"]
    complete = receiver.of_run(run.info.run_id)[1]
    assert [d["name"] for d in complete["inputs"]] == [path]


# --- in a process of its own: the file transport, the job across processes, the import -----

SCRIPT = """
import sys

import mlflow
import pyarrow.fs as pafs
from deltalake import DeltaTable

mlflow.set_tracking_uri(sys.argv[1])
mlflow.set_experiment("pipelines")
with mlflow.start_run() as run:
    DeltaTable(sys.argv[2]).to_pandas(
        filesystem=pafs.SubTreeFileSystem(sys.argv[2], pafs.LocalFileSystem()))
print(run.info.run_id, "openlineage" in sys.modules)
"""


@pytest.mark.slow
def test_file_transport_one_job_across_processes_and_no_import_when_off(
    tmp_path, make_table, lineage_tracking
):
    path = make_table()
    work = tmp_path / "pipeline"
    work.mkdir()
    (work / "train.py").write_text(textwrap.dedent(SCRIPT))

    def train() -> tuple[str, bool]:
        result = run_python("train.py", lineage_tracking, path, cwd=work)
        assert result.returncode == 0, result.stderr
        run_id, imported = result.stdout.split()[-2:]
        return run_id, imported == "True"

    quiet, imported = train()  # nothing configured: the client is not even imported
    assert imported is False
    assert "lineage.openlineage" not in mlflow.get_run(quiet).data.tags

    log = work / "events.jsonl"
    (work / "openlineage.yml").write_text(
        f"transport:\n  type: file\n  log_file_path: {log}\n  append: true\n"
    )
    first, imported = train()
    assert imported is True
    second, _ = train()

    events = [json.loads(line) for line in log.read_text().splitlines()]
    assert [problems(e) for e in events] == [[]] * 4
    by_run = {
        r: [e for e in events if uuid.UUID(e["run"]["runId"]).hex == r] for r in (first, second)
    }
    assert [kinds(by_run[r]) for r in (first, second)] == [["START", "COMPLETE"]] * 2
    experiment = mlflow.get_experiment_by_name("pipelines").experiment_id
    assert {(e["job"]["namespace"], e["job"]["name"]) for e in events} == {
        (f"mlflow/{experiment}", "train.py")
    }
    complete = by_run[second][1]
    assert complete["inputs"][0]["facets"]["version"]["datasetVersion"] == "0"
    assert Path(complete["inputs"][0]["name"]) == Path(path)
