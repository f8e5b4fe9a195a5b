"""Which runs capture applies to: one lineage+ store does not change runs on another URI.

Each scenario runs in a fresh child process (the bug needs a process that loaded a lineage+
store and never called ``autolog()``), on real SQLite stores and a real Delta table.
"""

from __future__ import annotations

import json

import pytest
from helpers import run_python
from mlflow import MlflowClient
from postgres import SERVER_KINDS, fresh_database

#: The child: optionally autolog() / autolog(disable=True), load a lineage+ store for one URI,
#: then runs that read the table (deltalake, polars, mlflow.log_input) on the URIs given.
SCRIPT = """
import json, sys
import mlflow, polars as pl, pyarrow.fs as pafs
from deltalake import DeltaTable
from mlflow.data.delta_dataset_source import DeltaDatasetSource
import lineage_plugin as lp

mode, lineage_uri, plain_uri, table, *order = sys.argv[1:]
if mode == "autolog":
    lp.autolog()
elif mode == "disable":
    lp.autolog(disable=True)
MlflowClient = mlflow.MlflowClient
MlflowClient(lineage_uri).search_experiments()  # loads the lineage+ store

def read(version):
    fs = pafs.SubTreeFileSystem(table, pafs.LocalFileSystem())
    DeltaTable(table, version=version).to_pandas(filesystem=fs)

runs = {}
for which in order:
    mlflow.set_tracking_uri(lineage_uri if which == "lineage" else plain_uri)
    if which == "explicit":  # an explicit log_delta_input, not a hooked read
        with mlflow.start_run() as run:
            lp.log_delta_input(table, version=1)
        runs[which] = run.info.run_id
        continue
    if which == "plain":
        read(3)  # outside any run: waits for the next run only when captured now
    with mlflow.start_run() as run:
        read(1)
        pl.read_delta(table, version=2)
        source = DeltaDatasetSource(path=table, delta_table_version=0)
        frame = pl.DataFrame({"id": [1]}).to_pandas()
        mlflow.log_input(mlflow.data.from_pandas(frame, source=source), context="training")
    runs[which] = run.info.run_id
print(json.dumps(runs))
"""


@pytest.fixture
def stores(request):
    """``(lineage+ URI, its backend URI, a plain URI)``: two real, migrated MLflow databases,
    SQLite unless parametrized (indirectly) with ``postgresql``."""
    dialect = getattr(request, "param", "sqlite")
    with (
        fresh_database(request, dialect, "lineage.db") as lineage,
        fresh_database(request, dialect, "plain.db") as plain,
    ):
        yield f"lineage+{lineage}", lineage, plain


@pytest.fixture
def table(make_table):
    """A real Delta table with versions 0..3."""
    return make_table(commits=4)


@pytest.fixture
def child(tmp_path, stores, table):
    """Run the child script; returns ``{"plain"|"lineage": run_id}``."""
    script = tmp_path / "train.py"
    script.write_text(SCRIPT)
    lineage_uri, _, plain_uri = stores

    def run(mode: str, *order: str, **env: str) -> dict[str, str]:
        env.setdefault("MLFLOW_LINEAGE_AUTOLOG", "false")
        result = run_python(
            str(script), mode, lineage_uri, plain_uri, table, *order, cwd=tmp_path, **env
        )
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout.strip().splitlines()[-1])

    return run


def lineage_tags(uri: str, run_id: str) -> dict[str, str]:
    tags = MlflowClient(uri).get_run(run_id).data.tags
    return {k: v for k, v in tags.items() if k.startswith("lineage.")}


def artifacts(uri: str, run_id: str) -> list[str]:
    return [a.path for a in MlflowClient(uri).list_artifacts(run_id)]


def logged_sources(uri: str, run_id: str) -> list[dict]:
    run = MlflowClient(uri).get_run(run_id)
    return [json.loads(d.dataset.source) for d in run.inputs.dataset_inputs]


def assert_untouched(uri: str, run_id: str, table: str) -> None:
    """A stock MLflow run: no lineage tag, no lineage artifact, only the user's own dataset
    input, serialised by MLflow itself (which drops version 0)."""
    assert lineage_tags(uri, run_id) == {}
    assert artifacts(uri, run_id) == []
    assert logged_sources(uri, run_id) == [{"path": table}]


def assert_captured(uri: str, run_id: str, table: str, *, waiting_read: bool = False) -> None:
    """Environment and code tags, the manifest, and the reads: deltalake v1, polars v2,
    ``mlflow.log_input`` v0 (kept as 0), and the read made outside a run when it waited."""
    tags = lineage_tags(uri, run_id)
    assert tags["lineage.status"] == "complete"
    assert any(k.startswith("lineage.env.") for k in tags)
    assert any(k.startswith("lineage.code.") for k in tags)
    reads = sorted(
        (json.loads(v)["engine"], json.loads(v)["version"])
        for k, v in tags.items()
        if k.startswith("lineage.input.")
    )
    expected = [("deltalake", 1), ("mlflow", 0), ("polars", 2)]
    assert reads == sorted(expected + [("deltalake", 3)] * waiting_read)
    assert "lineage" in artifacts(uri, run_id)
    assert {"delta_table_version": 0, "path": table} in logged_sources(uri, run_id)


@pytest.mark.parametrize("stores", SERVER_KINDS, indirect=True)
def test_a_loaded_lineage_store_leaves_runs_on_a_plain_uri_untouched(child, stores, table):
    _, lineage_backend, plain_uri = stores
    runs = child("store", "plain", "lineage")
    assert_untouched(plain_uri, runs["plain"], table)
    # The same process, back on the lineage+ URI, records as before; the read made outside a
    # run on the plain URI was not kept for it.
    assert_captured(lineage_backend, runs["lineage"], table)


def test_a_plain_run_after_a_lineage_run_is_untouched(child, stores, table):
    _, lineage_backend, plain_uri = stores
    runs = child("store", "lineage", "plain", "explicit")
    assert_captured(lineage_backend, runs["lineage"], table)
    assert_untouched(plain_uri, runs["plain"], table)
    # log_delta_input is an explicit call: it records on the plain URI too.
    tags = lineage_tags(plain_uri, runs["explicit"])
    assert tags["lineage.tables"] == "sales@v1"
    assert json.loads(tags["lineage.input.000"])["engine"] == "manual"


def test_autolog_captures_runs_on_a_plain_uri(child, stores, table):
    _, lineage_backend, plain_uri = stores
    runs = child("autolog", "plain", "lineage")
    assert_captured(plain_uri, runs["plain"], table, waiting_read=True)
    assert_captured(lineage_backend, runs["lineage"], table)


def test_autolog_env_var_captures_runs_on_a_plain_uri(child, stores, table):
    _, _, plain_uri = stores
    runs = child("store", "plain", MLFLOW_LINEAGE_AUTOLOG="true")
    assert_captured(plain_uri, runs["plain"], table, waiting_read=True)


def test_autolog_disable_captures_nothing_even_on_a_lineage_store(child, stores, table):
    _, lineage_backend, plain_uri = stores
    # disable=True before the store is loaded: loading it does not turn capture back on.
    runs = child("disable", "lineage", "plain")
    assert_untouched(lineage_backend, runs["lineage"], table)
    assert_untouched(plain_uri, runs["plain"], table)


@pytest.fixture
def only_lineage_stores():
    """Capture as a process that loaded a lineage+ store and never called ``autolog()`` has it
    (the test session turned it on for every run), restored after the test."""
    import lineage_plugin
    from lineage_plugin.tracking import scope

    before = (scope.hooks_on(), scope.explicit(), scope.disabled_by_user())
    lineage_plugin.autolog()  # the hooks, installed as the session installs them
    scope.set_scope(hooks=True, explicit=False)
    yield
    scope.set_scope(hooks=before[0], explicit=before[1], disabled=before[2])


@pytest.mark.slow
def test_spark_reads_on_a_plain_uri_are_neither_pinned_nor_recorded(
    spark, stores, tmp_path, only_lineage_stores
):
    import mlflow

    from lineage_plugin.tracking.capture import reset_session

    lineage_uri, lineage_backend, plain_uri = stores
    table = str(tmp_path / "events")
    spark.range(3).write.format("delta").save(table)
    out = {}
    reset_session()
    try:
        for which, uri in (("plain", plain_uri), ("lineage", lineage_uri)):
            mlflow.set_tracking_uri(uri)
            with mlflow.start_run() as run:
                frame = spark.read.format("delta").load(table)
                before = frame.count()
                spark.range(1).write.format("delta").mode("append").save(table)
                out[which] = {"run": run.info.run_id, "counts": [before, frame.count()]}
    finally:
        mlflow.set_tracking_uri(None)
        reset_session()
    # Plain URI: stock Spark, the DataFrame reads the latest version on every action.
    assert out["plain"]["counts"] == [3, 4]
    assert lineage_tags(plain_uri, out["plain"]["run"]) == {}
    # lineage+ URI: pinned to the version read (v1: 4 rows), and recorded.
    assert out["lineage"]["counts"] == [4, 4]
    assert lineage_tags(lineage_backend, out["lineage"]["run"])["lineage.tables"] == "events@v1"
