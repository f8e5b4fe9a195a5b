"""Lineage exports: one archive with a manifest, the plugin's records and OpenLineage events."""

from __future__ import annotations

import dataclasses
import io
import json
import os
import re
import tarfile
import uuid
import zipfile
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from openlineage_spec import checked_facet_schemas, problems, schemas

import lineage_plugin
from lineage_plugin import openlineage as ol
from lineage_plugin.errors import LineageError
from lineage_plugin.events import ALIAS_SET, STAGE_TRANSITION, RegistryEvent
from lineage_plugin.queries import archive as ex
from lineage_plugin.records import (
    CodeVersion,
    DeltaInput,
    Environment,
    ModelVersionLineage,
    RunLineage,
)
from lineage_plugin.store.index import RunRow

RUN_ID = "0123456789abcdef0123456789abcdef"
SECOND_RUN_ID = uuid.uuid4().hex
THIRD_RUN_ID = uuid.uuid4().hex
START = 1_700_000_000_000
END = 1_700_000_065_432
ISO_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
UUID_TEXT = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
MEMBERS = ["manifest.json", "lineage.jsonl", "openlineage.jsonl"]


@pytest.fixture
def table_dir(tmp_path: Path) -> str:
    path = tmp_path / "warehouse" / "orders"
    path.mkdir(parents=True)
    return str(path)


@pytest.fixture
def records(table_dir: str) -> dict[str, Any]:
    """Three runs (full, no name/end/experiment, no times at all), two versions, three events."""
    local = DeltaInput(
        uri=f"file://{table_dir}",
        version=0,
        engine="deltalake",
        table_id="tbl-local-0001",
        name="orders",
        commit_timestamp=START - 5_000,
        timestamp_source="commitInfo.timestamp",
        operation="WRITE",
    )
    remote = DeltaInput(
        uri="s3://lake-bucket/sales/customers",
        version=7,
        engine="polars",
        context="evaluation",
        table_id="tbl-s3-0007",
        commit_timestamp=START - 1_000,
        operation="MERGE",
        columns=("id", "country"),
    )
    run1 = RunLineage(
        run_id=RUN_ID,
        status="complete",
        inputs=(local, remote),
        environment=Environment(
            python="3.11.9",
            platform="Linux-6.1-x86_64",
            packages={"mlflow": "3.17.2", "deltalake": "1.1.0"},
        ),
        code=CodeVersion(argv=("train.py", "--alpha", "0.1"), git_commit="a" * 40, git_dirty=False),
    )
    run2 = RunLineage(
        run_id=SECOND_RUN_ID,
        status="incomplete",
        inputs=(
            DeltaInput(uri="gs://gcs-bucket/features", version=12, engine="deltalake"),
            DeltaInput(
                uri="abfss://lake@acct.dfs.core.windows.net/silver/events",
                version=3,
                engine="manual",
            ),
        ),
        reasons=("a read could not be captured",),
    )
    run3 = RunLineage(run_id=THIRD_RUN_ID, status="missing")
    rows = [
        RunRow(
            experiment_id="42", run_name="train-ridge", start_time=START, end_time=END, user="ann"
        ),
        RunRow(start_time=START + 10),
        RunRow(experiment_id="42"),
    ]
    versions = [
        (ModelVersionLineage(name="ridge", version="1", status="complete", run=run1), START + 1),
        (ModelVersionLineage(name="ridge", version="2", status="missing"), None),
    ]
    events = [
        RegistryEvent(
            event_id=f"{START + 300:013d}-03abcdef",
            kind=ALIAS_SET,
            name="ridge",
            version="1",
            time=START + 300,
            alias="champion",
            run_id=RUN_ID,
            tables=(local,),
        ),
        RegistryEvent(
            event_id=f"{START + 100:013d}-01abcdef",
            kind=STAGE_TRANSITION,
            name="ridge",
            version="1",
            time=START + 100,
            stage="Staging",
            previous_stage="None",
        ),
        RegistryEvent(
            event_id=f"{START + 200:013d}-02abcdef",
            kind=STAGE_TRANSITION,
            name="ridge",
            version="1",
            time=START + 200,
            stage="Production",
            previous_stage="Staging",
            replaced=("2",),
            user="bob",
        ),
    ]
    return {
        "runs": list(zip([run1, run2, run3], rows, strict=True)),
        "versions": versions,
        "events": events,
    }


def export_to(path: Path, records: dict[str, Any]) -> ex.ExportSummary:
    return ex.write_export(
        path, runs=records["runs"], model_versions=records["versions"], events=records["events"]
    )


def raw_members(path: Path) -> dict[str, bytes]:
    """The archive's members in archive order, read without going through read_export."""
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            return {name: archive.read(name) for name in archive.namelist()}
    with tarfile.open(path, "r:gz") as archive:
        return {m.name: archive.extractfile(m).read() for m in archive.getmembers()}


def walk(value: Any) -> Iterator[Any]:
    yield value
    if isinstance(value, dict):
        for v in value.values():
            yield from walk(v)
    elif isinstance(value, list):
        for v in value:
            yield from walk(v)


def keys_sorted_everywhere(line: str) -> bool:
    """True when every object in the line has its keys in sorted order."""
    ok = True

    def hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        nonlocal ok
        keys = [k for k, _ in pairs]
        ok = ok and keys == sorted(keys)
        return dict(pairs)

    json.loads(line, object_pairs_hook=hook)
    return ok


def events_by_run(export: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {uuid.UUID(e["run"]["runId"]).hex: e for e in export["openlineage"]}


# --- the archive -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "is_zip"), [("lineage.tar.gz", False), ("lineage.zip", True), ("out.ZIP", True)]
)
def test_format_follows_the_suffix(tmp_path, records, name, is_zip):
    summary = export_to(tmp_path / name, records)

    assert summary.format == ("zip" if is_zip else "tar.gz")
    assert zipfile.is_zipfile(summary.path) is is_zip
    assert tarfile.is_tarfile(summary.path) is not is_zip
    assert list(raw_members(Path(summary.path))) == MEMBERS
    assert summary.bytes_written == os.path.getsize(summary.path) > 0


@pytest.mark.parametrize("name", ["lineage.tar.gz", "lineage.zip"])
def test_round_trip_counts_and_order(tmp_path, records, name):
    summary = export_to(tmp_path / name, records)
    export = ex.read_export(summary.path)

    assert summary.path == str(tmp_path / name)
    assert (summary.runs, summary.model_versions, summary.events) == (3, 2, 3)
    types = [r["type"] for r in export["lineage"]]
    assert types == ["run"] * 3 + ["model_version"] * 2 + ["event"] * 3
    assert [r["run_id"] for r in export["lineage"][:3]] == [RUN_ID, SECOND_RUN_ID, THIRD_RUN_ID]
    assert [r["version"] for r in export["lineage"][3:5]] == ["1", "2"]
    event_ids = [r["event_id"] for r in export["lineage"][5:]]
    assert event_ids == sorted(e.event_id for e in records["events"])
    assert len(export["openlineage"]) == 3
    assert sorted(os.listdir(tmp_path)) == sorted(["warehouse", name])  # no temp file left


def test_lines_have_sorted_keys_and_no_nulls(tmp_path, records):
    summary = export_to(tmp_path / "lineage.tar.gz", records)
    members = raw_members(Path(summary.path))

    for name in ("lineage.jsonl", "openlineage.jsonl"):
        lines = members[name].decode().splitlines()
        assert len(lines) == {"lineage.jsonl": 8, "openlineage.jsonl": 3}[name]
        for line in lines:
            assert keys_sorted_everywhere(line), line
            assert None not in list(walk(json.loads(line))), line
            compact = json.dumps(json.loads(line), sort_keys=True, separators=(",", ":"))
            assert line == compact


def test_records_read_back_equal_the_originals(tmp_path, records):
    export = ex.read_export(export_to(tmp_path / "lineage.zip", records).path)
    runs = export["lineage"][:3]
    versions = export["lineage"][3:5]
    events = export["lineage"][5:]

    for line, (record, row) in zip(runs, records["runs"], strict=True):
        assert RunLineage.from_dict(line) == record
        for field in ("experiment_id", "run_name", "start_time", "end_time", "user"):
            assert line.get(field) == getattr(row, field)
    assert runs[0]["inputs"][0]["version"] == 0
    assert runs[1]["reasons"] == ["a read could not be captured"]
    assert versions[0] == {
        **records["versions"][0][0].to_dict(),
        "created": START + 1,
        "type": "model_version",
    }
    assert "created" not in versions[1]
    originals = sorted(records["events"], key=lambda e: e.event_id)
    assert [RegistryEvent.from_dict(e) for e in events] == originals


def test_manifest(tmp_path, records):
    before = datetime.now(timezone.utc)
    export = ex.read_export(export_to(tmp_path / "lineage.tar.gz", records).path)
    manifest = export["manifest"]

    assert manifest["export_schema_version"] == ex.EXPORT_SCHEMA_VERSION == 1
    assert manifest["plugin_version"] == lineage_plugin.__version__
    assert manifest["counts"] == {"run": 3, "model_version": 2, "event": 3}
    assert ISO_MS.match(manifest["created"])
    created = datetime.strptime(manifest["created"], "%Y-%m-%dT%H:%M:%S.%fZ")
    assert abs(created.replace(tzinfo=timezone.utc) - before).total_seconds() < 60
    files = {f["name"]: f for f in manifest["files"]}
    assert set(files) == {"lineage.jsonl", "openlineage.jsonl"}
    assert files["lineage.jsonl"]["records"] == 8
    assert files["openlineage.jsonl"]["records"] == 3
    assert all(len(f["description"]) > 20 and len(f["sha256"]) == 64 for f in files.values())


def test_empty_export(tmp_path):
    summary = ex.write_export(tmp_path / "empty.tar.gz", runs=[], model_versions=[], events=[])
    export = ex.read_export(summary.path)

    assert summary.to_dict() == {
        "bytes_written": os.path.getsize(tmp_path / "empty.tar.gz"),
        "events": 0,
        "format": "tar.gz",
        "model_versions": 0,
        "path": str(tmp_path / "empty.tar.gz"),
        "runs": 0,
    }
    assert export["lineage"] == [] and export["openlineage"] == []
    assert export["manifest"]["counts"] == {"run": 0, "model_version": 0, "event": 0}


def test_iterables_are_consumed_once(tmp_path, records):
    summary = ex.write_export(
        tmp_path / "gen.zip",
        runs=(r for r in records["runs"]),
        model_versions=iter(records["versions"]),
        events=(e for e in records["events"]),
    )
    export = ex.read_export(summary.path)
    assert (summary.runs, summary.model_versions, summary.events) == (3, 2, 3)
    assert len(export["lineage"]) == 8


# --- OpenLineage -----------------------------------------------------------------------------


def test_openlineage_event_of_a_full_run(tmp_path, records, table_dir):
    export = ex.read_export(export_to(tmp_path / "lineage.tar.gz", records).path)
    event = events_by_run(export)[RUN_ID]

    assert event["run"]["runId"] == "01234567-89ab-cdef-0123-456789abcdef"
    assert event["eventType"] == "COMPLETE"
    assert event["eventTime"] == "2023-11-14T22:14:25.432Z"  # END, with its milliseconds
    assert event["producer"] == ol.PRODUCER
    assert (
        event["schemaURL"] == "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent"
    )
    # The job is the entry point (the same for every run of train.py), not the run's name.
    assert (event["job"]["namespace"], event["job"]["name"]) == ("mlflow/42", "train.py")
    assert event["job"]["facets"]["jobType"]["integration"] == "MLFLOW"
    assert event["outputs"] == []

    local, remote = event["inputs"]
    assert (local["namespace"], local["name"]) == ("file", table_dir)
    assert (remote["namespace"], remote["name"]) == ("s3://lake-bucket", "sales/customers")
    assert local["facets"]["version"]["datasetVersion"] == "0"
    assert remote["facets"]["version"]["datasetVersion"] == "7"
    assert local["facets"]["version"]["_schemaURL"] == (
        "https://openlineage.io/spec/facets/1-0-1/DatasetVersionDatasetFacet.json"
        "#/$defs/DatasetVersionDatasetFacet"
    )
    table = local["facets"]["mlflowLineage_deltaTable"]
    assert (table["tableId"], table["commitTimestamp"], table["operation"]) == (
        "tbl-local-0001",
        START - 5_000,
        "WRITE",
    )
    assert table["uri"] == f"file://{table_dir}"
    read = remote["inputFacets"]["mlflowLineage_read"]
    assert (read["context"], read["engine"], read["columns"]) == (
        "evaluation",
        "polars",
        ["id", "country"],
    )
    assert local["facets"]["storage"]["storageLayer"] == "delta"

    facets = event["run"]["facets"]
    assert facets["mlflowLineage_environment"]["python"] == "3.11.9"
    assert facets["mlflowLineage_environment"]["packages"] == {
        "deltalake": "1.1.0",
        "mlflow": "3.17.2",
    }
    assert facets["processing_engine"]["name"] == "mlflow"
    assert facets["processing_engine"]["version"] == "3.17.2"
    record = facets["mlflowLineage_record"]
    assert (record["runId"], record["experimentId"], record["status"]) == (RUN_ID, "42", "complete")
    assert record["code"]["git_commit"] == "a" * 40

    every_facet = [
        *event["run"]["facets"].values(),
        *(f for d in event["inputs"] for f in (*d["facets"].values(), *d["inputFacets"].values())),
    ]
    every_facet.append(event["job"]["facets"]["jobType"])
    assert len(every_facet) == 3 + 2 * 4 + 1  # run: 3; per input: 3 dataset + 1 input; job: 1
    for facet in every_facet:
        assert facet["_producer"] == ol.PRODUCER
        assert facet["_schemaURL"].startswith("https://") and "#/$defs/" in facet["_schemaURL"]


def test_run_ids_are_uuids_of_the_mlflow_run_id(tmp_path, records):
    export = ex.read_export(export_to(tmp_path / "lineage.zip", records).path)

    assert len(export["openlineage"]) == 3
    for event, (record, _) in zip(export["openlineage"], records["runs"], strict=True):
        run_id = event["run"]["runId"]
        assert UUID_TEXT.match(run_id), run_id
        assert uuid.UUID(run_id).hex == record.run_id
        assert event["run"]["facets"]["mlflowLineage_record"]["runId"] == record.run_id


def test_event_time_and_job_fallbacks(tmp_path, records):
    export = ex.read_export(export_to(tmp_path / "lineage.tar.gz", records).path)
    by_run = events_by_run(export)

    no_name = by_run[SECOND_RUN_ID]  # no end time, no name, no experiment
    assert no_name["eventTime"] == "2023-11-14T22:13:20.010Z"  # START + 10 ms
    assert (no_name["job"]["namespace"], no_name["job"]["name"]) == (
        "mlflow",
        ol.UNKNOWN_ENTRY_POINT,
    )
    assert "mlflowLineage_environment" not in no_name["run"]["facets"]
    assert "processing_engine" not in no_name["run"]["facets"]
    gcs, adls = no_name["inputs"]
    assert (gcs["namespace"], gcs["name"]) == ("gs://gcs-bucket", "features")
    assert (adls["namespace"], adls["name"]) == (
        "abfss://lake@acct.dfs.core.windows.net",
        "silver/events",
    )
    assert [d["facets"]["version"]["datasetVersion"] for d in no_name["inputs"]] == ["12", "3"]

    no_times = by_run[THIRD_RUN_ID]  # no time at all: the export's time
    assert no_times["eventTime"] == export["manifest"]["created"]
    assert no_times["inputs"] == []
    assert (no_times["job"]["namespace"], no_times["job"]["name"]) == (
        "mlflow/42",
        ol.UNKNOWN_ENTRY_POINT,
    )
    assert all(ISO_MS.match(e["eventTime"]) for e in export["openlineage"])


def test_custom_producer(tmp_path, records):
    producer = "https://example.com/lineage-exporter/1.0"
    summary = ex.write_export(
        tmp_path / "p.tar.gz",
        runs=records["runs"][:1],
        model_versions=[],
        events=[],
        producer=producer,
    )
    export = ex.read_export(summary.path)
    event = export["openlineage"][0]

    assert event["producer"] == producer == export["manifest"]["producer"]
    producers = {v["_producer"] for v in walk(event) if isinstance(v, dict) and "_producer" in v}
    assert producers == {producer}


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("file:///data/lake/orders", ("file", "/data/lake/orders")),
        ("file:///data/lake/orders/", ("file", "/data/lake/orders")),
        ("/data/lake/orders", ("file", "/data/lake/orders")),
        ("file://nas01/share/orders", ("file://nas01", "/share/orders")),
        ("s3://bucket/sales/orders", ("s3://bucket", "sales/orders")),
        ("s3a://bucket/sales/orders/", ("s3://bucket", "sales/orders")),
        ("s3://bucket", ("s3://bucket", "/")),
        ("gs://bucket/features", ("gs://bucket", "features")),
        (
            "abfss://ctr@acct.dfs.core.windows.net/gold/t",
            ("abfss://ctr@acct.dfs.core.windows.net", "gold/t"),
        ),
        (
            "abfs://ctr@acct.dfs.core.windows.net/gold/t",
            ("abfss://ctr@acct.dfs.core.windows.net", "gold/t"),
        ),
        ("hdfs://namenode:8020/warehouse/t", ("hdfs://namenode:8020", "/warehouse/t")),
        ("dbfs:/mnt/lake/t", ("dbfs", "/mnt/lake/t")),
    ],
)
def test_openlineage_dataset_naming(uri, expected):
    assert ol.openlineage_dataset(uri) == expected


def test_run_id_that_is_not_hex_gets_a_stable_uuid():
    first = ol.openlineage_run_id("not-an-mlflow-run-id")
    assert first == ol.openlineage_run_id("not-an-mlflow-run-id")
    assert UUID_TEXT.match(first)
    assert first != ol.openlineage_run_id("another-id")
    assert ol.openlineage_run_id(RUN_ID.upper()) == "01234567-89ab-cdef-0123-456789abcdef"


def test_iso_time_keeps_milliseconds():
    assert ol.iso_time(0) == "1970-01-01T00:00:00.000Z"
    assert ol.iso_time(START + 7) == "2023-11-14T22:13:20.007Z"
    assert ol.iso_time(1_700_000_000_999) == "2023-11-14T22:13:20.999Z"


def test_openlineage_events_match_the_official_schemas(tmp_path, records):
    pytest.importorskip("jsonschema")
    export = ex.read_export(export_to(tmp_path / "lineage.zip", records).path)

    assert len(export["openlineage"]) == 3
    for event in export["openlineage"]:
        assert problems(event) == []
    checked = checked_facet_schemas(export["openlineage"][0])
    assert ol.VERSION_FACET_SCHEMA_URL in checked and ol.STORAGE_FACET_SCHEMA_URL in checked
    assert any(url.startswith(ol.CUSTOM_FACETS_SCHEMA) for url in checked)  # our own facets

    # The check is not vacuous: a facet without _producer, a bad runId, a version that is not
    # text and a custom facet without its required field are all caught.
    broken = json.loads(json.dumps(export["openlineage"][0]))
    del broken["inputs"][0]["facets"]["storage"]["_producer"]
    broken["run"]["runId"] = RUN_ID
    broken["inputs"][1]["facets"]["version"]["datasetVersion"] = 7
    del broken["run"]["facets"]["mlflowLineage_record"]["status"]
    messages = " ".join(problems(broken))
    assert "inputs[0].facets.storage: '_producer' is a required property" in messages
    assert "is not a 'uuid'" in messages
    assert "7 is not of type 'string'" in messages
    assert "'status' is a required property" in messages


def test_custom_facet_schemas_are_named_by_this_version():
    jsonschema = pytest.importorskip("jsonschema")
    ours = schemas()[ol.CUSTOM_FACETS_SCHEMA]
    jsonschema.Draft202012Validator.check_schema(ours)
    assert ours["$id"] == ol.CUSTOM_FACETS_SCHEMA
    assert lineage_plugin.__version__ in ol.CUSTOM_FACETS_SCHEMA


@pytest.mark.parametrize(
    ("status", "event_type"),
    [
        ("FINISHED", "COMPLETE"),
        ("FAILED", "FAIL"),
        ("KILLED", "ABORT"),
        ("RUNNING", "RUNNING"),
        (None, "COMPLETE"),
    ],
)
def test_the_exported_event_type_is_the_run_status(records, status, event_type):
    record, row = records["runs"][0]
    event = ol.openlineage_event(record, dataclasses.replace(row, run_status=status))
    assert event["eventType"] == event_type
    assert event["run"]["facets"]["mlflowLineage_record"].get("runStatus") == status


def test_the_stand_in_builds_the_events_the_client_builds(records):
    pytest.importorskip("openlineage.client")
    for record, row in records["runs"]:
        for kind in ("START", "COMPLETE", "FAIL"):
            built = [
                kit.to_dict(ol.run_event(record, row, event_type=kind, default_time=END, kit=kit))
                for kit in (ol.client_kit(), ol.plain_kit())
            ]
            assert built[0] == built[1]
    assert ol.export_kit() is ol.client_kit()


@pytest.mark.parametrize(
    ("argv", "name"),
    [
        (("train.py", "--alpha", "0.1"), "train.py"),
        (("/home/ann/repo/pipelines/train.py",), "train.py"),
        (("C:\\repo\\pipelines\\train.py",), "train.py"),
        (("/repo/src/features/__main__.py", "--day", "1"), "features"),
        (("-c",), "python -c"),
        (("",), "python"),
        (
            ("/venv/lib/python3.11/site-packages/ipykernel_launcher.py", "-f", "k.json"),
            "ipykernel_launcher.py",
        ),
        ((), ol.UNKNOWN_ENTRY_POINT),
    ],
)
def test_job_name_is_the_entry_point(argv, name):
    assert ol.job_name(CodeVersion(argv=argv, cwd="/anywhere")) == name
    assert ol.job_name(None) == ol.UNKNOWN_ENTRY_POINT


# --- failures --------------------------------------------------------------------------------


def test_missing_directory_raises_and_writes_nothing(tmp_path, records):
    target = tmp_path / "no-such-dir" / "lineage.tar.gz"
    before = sorted(os.listdir(tmp_path))

    with pytest.raises(LineageError, match="does not exist"):
        export_to(target, records)
    assert not target.parent.exists()
    assert sorted(os.listdir(tmp_path)) == before


def test_path_that_is_a_directory_raises_and_writes_nothing(tmp_path, records):
    target = tmp_path / "exports.zip"
    target.mkdir()

    with pytest.raises(LineageError, match="is a directory"):
        export_to(target, records)
    assert target.is_dir() and os.listdir(target) == []
    assert sorted(os.listdir(tmp_path)) == ["exports.zip", "warehouse"]


def test_parent_that_is_a_file_raises(tmp_path, records):
    (tmp_path / "afile").write_text("x")
    with pytest.raises(LineageError, match="is not a directory"):
        export_to(tmp_path / "afile" / "lineage.tar.gz", records)
    assert (tmp_path / "afile").read_text() == "x"


def test_failing_input_leaves_existing_archive_untouched(tmp_path, records):
    target = tmp_path / "lineage.tar.gz"
    target.write_bytes(b"previous export")

    def runs():
        yield records["runs"][0]
        raise RuntimeError("index went away")

    with pytest.raises(RuntimeError, match="index went away"):
        ex.write_export(target, runs=runs(), model_versions=[], events=[])
    assert target.read_bytes() == b"previous export"
    assert sorted(os.listdir(tmp_path)) == ["lineage.tar.gz", "warehouse"]


@pytest.mark.parametrize("name", ["lineage.tar.gz", "lineage.zip"])
def test_failure_while_writing_removes_the_half_archive(tmp_path, records, monkeypatch, name):
    target = tmp_path / name
    target.write_bytes(b"previous export")
    seen: list[str] = []

    def fail_halfway(fh, *args):
        fh.write(b"half an archive")
        fh.flush()
        seen.extend(p for p in os.listdir(tmp_path) if p.endswith(".tmp"))
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(ex, "_write_zip" if name.endswith(".zip") else "_write_tar", fail_halfway)
    with pytest.raises(LineageError, match="No space left on device"):
        export_to(target, records)

    assert len(seen) == 1 and seen[0].startswith(f".{name}.")  # the temp file was beside it
    assert target.read_bytes() == b"previous export"
    assert sorted(os.listdir(tmp_path)) == [name, "warehouse"]


def test_existing_file_is_replaced(tmp_path, records):
    target = tmp_path / "lineage.zip"
    target.write_bytes(b"old")
    export_to(target, records)
    assert ex.read_export(target)["manifest"]["counts"]["run"] == 3


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ('"user":"ann"', '"user":"eve"', "does not match its SHA-256"),  # same size
        ('"complete"', '"incomplete"', r"has \d+ bytes, the manifest says \d+"),
    ],
)
def test_read_export_rejects_a_tampered_file(tmp_path, records, old, new, message):
    good = raw_members(Path(export_to(tmp_path / "good.zip", records).path))
    assert old.encode() in good["lineage.jsonl"]
    members = {
        **good,
        "lineage.jsonl": good["lineage.jsonl"].replace(old.encode(), new.encode(), 1),
    }
    tampered = tmp_path / "tampered.zip"
    with zipfile.ZipFile(tampered, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)

    with pytest.raises(LineageError, match=f"lineage.jsonl ({message})"):
        ex.read_export(tampered)


def test_read_export_checks_the_record_counts(tmp_path, records):
    members = raw_members(Path(export_to(tmp_path / "now.zip", records).path))
    manifest = json.loads(members["manifest.json"])
    manifest["files"][0]["records"] = 7
    members["manifest.json"] = json.dumps(manifest).encode()
    wrong = tmp_path / "wrong.zip"
    with zipfile.ZipFile(wrong, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)

    with pytest.raises(LineageError, match="lineage.jsonl holds 8 records, the manifest says 7"):
        ex.read_export(wrong)


def test_read_export_rejects_what_is_not_an_export(tmp_path, records):
    with pytest.raises(LineageError, match="no such file"):
        ex.read_export(tmp_path / "missing.tar.gz")

    (tmp_path / "notes.tar.gz").write_text("just text")
    with pytest.raises(LineageError, match=r"not a \.tar\.gz or \.zip export"):
        ex.read_export(tmp_path / "notes.tar.gz")

    partial = tmp_path / "partial.tar.gz"
    with tarfile.open(partial, "w:gz") as archive:
        info = tarfile.TarInfo("manifest.json")
        data = json.dumps({"export_schema_version": 1}).encode()
        info.size = len(data)
        archive.addfile(info, io.BytesIO(data))
    with pytest.raises(LineageError, match="lineage.jsonl, openlineage.jsonl missing"):
        ex.read_export(partial)


def test_read_export_refuses_a_newer_layout(tmp_path, records):
    members = raw_members(Path(export_to(tmp_path / "now.zip", records).path))
    manifest = json.loads(members["manifest.json"])
    manifest["export_schema_version"] = ex.EXPORT_SCHEMA_VERSION + 1
    members["manifest.json"] = json.dumps(manifest).encode()
    future = tmp_path / "future.zip"
    with zipfile.ZipFile(future, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)

    with pytest.raises(LineageError, match="Upgrade mlflow-delta-lineage"):
        ex.read_export(future)
