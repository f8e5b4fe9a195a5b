"""Faults, injected for real (issue 16, point 3), on the servers the plugin talks to.

PostgreSQL stopped (``pg_ctl stop -m immediate``) while a run reads and logs, then started
again; ``mlflow server`` SIGKILLed during an alias move and during a registration, for a
``lineage+http`` client against a stock server (the client records: an intent before the call,
reconciled after) and for a plain client against a plugin server (the event is written in
MLflow's own transaction). After each: an honest record or MLflow's own clear error, each change
that happened has its event exactly once, and rerunning the operation works.
"""

from __future__ import annotations

import json
import warnings

import mlflow
import pytest
from click.testing import CliRunner
from deltalake import DeltaTable
from helpers import lineage_tags, read_pandas, tracking_at
from mlflow.exceptions import MlflowException
from postgres import PostgresUnavailable, find_bin_dir, postgres_server

import lineage_plugin as lp
from lineage_plugin.cli import cli
from lineage_plugin.errors import LineageError, LineageWarning


def invoke(*args: str, code: int = 0):
    result = CliRunner().invoke(cli, list(args), prog_name="mlflow-lineage")
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    return result


# ---- 1. PostgreSQL stopped during a run, then started again ----------------------------------


@pytest.fixture
def own_postgres():
    """A PostgreSQL cluster of this test's own (the test stops it), durable as in production."""
    try:
        bin_dir = find_bin_dir()
    except PostgresUnavailable as exc:
        pytest.fail(str(exc), pytrace=False)
    with postgres_server(bin_dir, durable=True) as server:
        yield server


@pytest.mark.slow
def test_postgres_stopped_during_a_run_records_every_read_once_it_is_back(
    own_postgres, make_table, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    path = make_table(commits=2)
    uri = f"lineage+{own_postgres.new_database()}"
    with tracking_at(uri):
        mlflow.set_experiment("outage")
        run = mlflow.start_run()
        read_pandas(DeltaTable(path, version=0))
        own_postgres.stop()
        with pytest.warns(LineageWarning, match="could not write lineage to run"):
            frame = read_pandas(DeltaTable(path))  # the user's read works: v1, not recorded yet
        assert sorted(frame["id"]) == [0, 1, 2, 3, 4, 5]
        with pytest.raises(MlflowException) as caught:  # MLflow's own call: its own error
            mlflow.log_param("alpha", 0.5)
        assert not isinstance(caught.value, LineageError)
        assert "Connection refused" in str(caught.value) or "connection" in str(caught.value)
        with pytest.raises(MlflowException):  # ending the run while the database is away
            mlflow.end_run()
        assert mlflow.active_run() is None  # MLflow let go of it; it stays RUNNING

        own_postgres.start_again()
        client = mlflow.MlflowClient()
        assert client.get_run(run.info.run_id).info.status == "RUNNING"
        assert lineage_tags(run.info.run_id)["lineage.tables"] == "sales@v0"  # not v1 yet
        client.log_param(run.info.run_id, "alpha", 0.5)
        with warnings.catch_warnings():
            warnings.simplefilter("error", LineageWarning)  # no lineage warning once it is back
            client.set_terminated(run.info.run_id)  # the end: what the outage left out is written
        finished = mlflow.get_run(run.info.run_id)
        assert finished.info.status == "FINISHED" and finished.data.params == {"alpha": "0.5"}
        tags = lineage_tags(run.info.run_id)
        record = lp.get_run_lineage(run.info.run_id)
        assert [(i.name, i.version) for i in record.inputs] == [("sales", 0), ("sales", 1)]
        assert tags["lineage.status"] == "complete" and "lineage.reason" not in tags
        assert tags["lineage.tables"] == "sales@v0, sales@v1"
        assert sorted(k for k in tags if k.startswith("lineage.input.")) == [
            "lineage.input.000",
            "lineage.input.001",
        ]
        impact = json.loads(invoke("impact", path, "--json", "--tracking-uri", uri).stdout)
        [indexed] = impact["runs"]  # the index agrees: one run, both versions
        assert (indexed["run_id"], indexed["table_versions"]) == (run.info.run_id, [0, 1])

        with mlflow.start_run() as after:  # a new run works normally
            read_pandas(DeltaTable(path))
        record = lp.get_run_lineage(after.info.run_id)
        assert [(i.name, i.version) for i in record.inputs] == [("sales", 1)]
        assert record.status == "complete"
