"""Faults, injected for real (issue 16, point 3): one test per fault, real components.

The table deleted between plan and restore, a commit file corrupted or missing, the SQLite
database locked by another writer, the CLI killed (SIGKILL) during a restore and a vacuum, the
disk full while an export is written. After each: a clear error or an honest record, nothing
half written, an event recorded once, and the rerun works.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import pyarrow as pa
import pytest
from click.testing import CliRunner
from deltalake import DeltaTable, write_deltalake
from helpers import child_env, lineage_tags, read_pandas, register_reader, run_python
from mlflow import MlflowClient

import lineage_plugin as lp
from lineage_plugin.cli import cli
from lineage_plugin.errors import LineageError
from lineage_plugin.events import EVENT_PREFIX, RegistryEvent


def invoke(*args: str, code: int):
    result = CliRunner().invoke(cli, list(args), prog_name="mlflow-lineage")
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    return result


def events_of(name: str, version: str, kind: str) -> list[RegistryEvent]:
    tags = MlflowClient().get_model_version(name, version).tags
    events = [RegistryEvent.from_json(v) for k, v in tags.items() if k.startswith(EVENT_PREFIX)]
    return [e for e in events if e.kind == kind]


def rows(path: str, version: int | None = None) -> list[dict]:
    return DeltaTable(path, version=version).to_pyarrow_table().sort_by("id").to_pylist()


# ---- 1. the table deleted between plan and restore ------------------------------------------


def test_a_table_deleted_between_plan_and_restore_is_a_clear_error_and_nothing_recorded(
    lineage_tracking, make_table
):
    path = make_table(commits=1, rows=6)
    version = register_reader(path)
    DeltaTable(path).update(predicate="id < 3", updates={"y": "99.0"})
    saved = Path(path).with_name("sales.saved")
    shutil.copytree(path, saved)
    asked = []

    def delete_then_yes(plan: object) -> bool:
        asked.append(plan)
        shutil.rmtree(path)
        return True

    with pytest.raises(LineageError) as caught:
        lp.restore("ridge", version, confirm=delete_then_yes)
    message = str(caught.value)
    assert len(asked) == 1 and "Traceback" not in message
    assert f"{path}' does not exist" in message, message
    assert not os.path.exists(path) or not os.listdir(path)  # nothing half written
    assert events_of("ridge", version, "restore") == []

    shutil.copytree(saved, path)  # the table comes back: the rerun restores it
    report = lp.restore("ridge", version, confirm=None)
    [done] = report.restored
    assert (done.from_version, done.to_version, done.new_version) == (1, 0, 2)
    assert rows(path) == rows(path, 0)
    assert len(events_of("ridge", version, "restore")) == 1
