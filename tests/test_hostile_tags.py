"""Hostile lineage tags written by another client (issue 16, point 5): a recorded "table" at
``/etc``, one at a real Delta table the user never named, broken JSON, and a 1 MB manifest
written straight into the database past MLflow's limits. The CLI and the UI answer cleanly (no
traceback, no 500), write nothing, and never restore a path the user did not confirm.
"""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest
from bad_input import files_state, state
from click.testing import CliRunner
from deltalake import DeltaTable, write_deltalake
from hostile_registry import rows
from mlflow import MlflowClient

from lineage_plugin.cli import cli

MODEL = "intruder"


@pytest.fixture(scope="module")
def intruder(hostile_registry):
    """Model ``intruder`` v1, registered by a stock MLflow client (no plugin) whose run carries
    hostile lineage tags; its model version has a 1 MB manifest."""
    reg = hostile_registry
    root = Path(reg["root"])
    victim = str(root / "victim")
    write_deltalake(victim, rows(0, 3))
    write_deltalake(victim, rows(10, 3), mode="overwrite")
    good = {"version": 0, "engine": "deltalake", "operation": "WRITE", "context": "training"}
    stock = MlflowClient(tracking_uri=reg["uri"].removeprefix("lineage+"))
    experiment = stock.get_experiment_by_name("ui").experiment_id
    run = stock.create_run(experiment)
    tags = {
        "lineage.schema_version": "2",
        "lineage.status": "complete",
        "lineage.input.000": json.dumps({**good, "uri": "file:///etc", "name": "etc"}),
        "lineage.input.001": json.dumps({**good, "uri": f"file://{victim}", "name": "victim"}),
        "lineage.input.002": "{not json",
        "lineage.tables": "etc@v0, victim@v0",
    }
    for key, value in tags.items():
        stock.set_tag(run.info.run_id, key, value)
    stock.set_terminated(run.info.run_id)
    stock.create_registered_model(MODEL)
    mv = stock.create_model_version(MODEL, "s3://bucket/m", run_id=run.info.run_id)
    with closing(sqlite3.connect(root / "mlflow.db")) as con, con:
        con.execute(
            "INSERT INTO model_version_tags (key, value, name, version) VALUES (?, ?, ?, ?)",
            ("lineage.manifest", "{" + "x" * 1_000_000, MODEL, int(mv.version)),
        )
    clean = stock.create_run(experiment)  # v2: no broken tag, so a restore gets to plan
    for key, value in tags.items():
        if key != "lineage.input.002":
            stock.set_tag(clean.info.run_id, key, value)
    stock.set_terminated(clean.info.run_id)
    stock.create_model_version(MODEL, "s3://bucket/m", run_id=clean.info.run_id)
    return {**reg, "victim": victim}


def cli_run(reg, *args: str, input: str | None = None):
    result = CliRunner().invoke(cli, [*args, "--tracking-uri", reg["uri"]], input=input)
    assert "Traceback" not in result.output, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


@pytest.mark.parametrize(
    "args",
    [
        ["show", MODEL, "1"],
        ["show", MODEL, "2"],
        ["show", MODEL, "1", "--json"],
        ["check", MODEL, "2"],
        ["restore", MODEL, "2", "--dry-run"],
        ["check", MODEL, "1"],
        ["upstream", MODEL, "1"],
        ["diff", MODEL, "1", "1"],
        ["restore", MODEL, "1", "--dry-run"],
        ["timeline", "--model", MODEL],
        ["check", "--all"],
    ],
)
def test_the_cli_answers_hostile_records_cleanly_and_writes_nothing(intruder, args):
    before = state(Path(intruder["root"]))
    result = cli_run(intruder, *args)
    assert result.exit_code in (0, 1, 2), result.output
    assert result.stdout.strip() or result.stderr.strip()
    assert len(result.output) < 200_000  # the 1 MB value is not echoed back
    assert state(Path(intruder["root"])) == before


def test_a_restore_not_confirmed_touches_neither_etc_nor_the_victim(intruder):
    victim = intruder["victim"]
    before = (DeltaTable(victim).version(), files_state(victim), files_state("/etc"))
    result = cli_run(intruder, "restore", MODEL, "2", input="\n")  # the default answer: no
    assert result.exit_code == 2, result.output
    assert (DeltaTable(victim).version(), files_state(victim), files_state("/etc")) == before


def test_a_confirmed_restore_is_refused_for_etc_and_names_it(intruder):
    before = files_state("/etc")
    result = cli_run(intruder, "restore", MODEL, "2", "--table", "/etc", "--yes")
    assert result.exit_code == 2, result.output
    assert "/etc" in result.output
    assert files_state("/etc") == before


@pytest.mark.parametrize(
    "path",
    [
        f"models/{MODEL}/versions/1",
        f"api/models/{MODEL}/versions/1",
        f"api/models/{MODEL}/versions/1/check",
        f"api/models/{MODEL}/versions/1/restore-plan",
        f"models/{MODEL}",
        "api/tables/etc",
    ],
)
def test_the_ui_answers_hostile_records_without_a_500(intruder, path):
    before = state(Path(intruder["root"]))
    response = intruder["client"].get(f"/lineage/{path}")
    body = response.get_data(as_text=True)
    assert response.status_code in (200, 400, 404), (response.status_code, body[:300])
    assert "Traceback" not in body and len(body) < 2_000_000
    assert state(Path(intruder["root"])) == before
