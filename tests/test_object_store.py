"""Tables on an object store: an S3-compatible server on loopback (moto's standalone server).

Covers the remote code path: URIs normalised (``s3a://`` -> ``s3://``), versions and table ids
read through deltalake, commit info read from the log through deltalake's object store, and
credentials (``storage_options``) used but never recorded.
"""

from __future__ import annotations

import json

import mlflow
import pyarrow as pa
import pytest
from deltalake import DeltaTable, write_deltalake
from server import moto_s3

import lineage_plugin as lp

pytest.importorskip("moto.server")

SECRET = "s3cr3t-never-recorded"


@pytest.fixture(scope="module")
def s3_options(tmp_path_factory):
    with moto_s3(tmp_path_factory.mktemp("moto"), secret=SECRET) as options:
        yield options


@pytest.fixture
def s3_table(s3_options, request):
    uri = f"s3a://lake/{request.node.name}"
    for n in range(3):
        write_deltalake(uri, pa.table({"x": [n]}), mode="append", storage_options=s3_options)
    return uri


@pytest.mark.usefixtures("lineage_tracking")
def test_reads_from_s3_are_recorded_without_credentials(s3_table, s3_options):
    with mlflow.start_run() as run:
        dt = DeltaTable(s3_table, version=1, storage_options=s3_options)
        dt.file_uris()
        inp = lp.log_delta_input(s3_table, storage_options=s3_options)
    assert inp is not None and inp.version == 2
    lineage = lp.get_run_lineage(run.info.run_id)
    assert {(i.uri, i.version) for i in lineage.inputs} == {
        (s3_table.replace("s3a://", "s3://"), 1),
        (s3_table.replace("s3a://", "s3://"), 2),
    }
    first = lineage.inputs[0]
    assert first.table_id == dt.metadata().id
    assert first.operation == "WRITE" and first.commit_timestamp is not None
    run_data = json.dumps(mlflow.get_run(run.info.run_id).to_dictionary())
    manifest = mlflow.artifacts.load_text(f"runs:/{run.info.run_id}/lineage/manifest.json")
    assert SECRET not in run_data and SECRET not in manifest


@pytest.mark.usefixtures("lineage_tracking")
def test_missing_s3_table_marks_the_run_incomplete(s3_options):
    with mlflow.start_run() as run, pytest.warns(UserWarning, match="not a Delta table"):
        lp.log_delta_input("s3://lake/nothing-here", storage_options=s3_options)
    assert lp.get_run_lineage(run.info.run_id).status == "incomplete"
