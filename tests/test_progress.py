"""Progress bars on a real terminal (a pty): shown for long work, never with --json or a pipe."""

from __future__ import annotations

import json

import mlflow
import pyarrow as pa
import pytest
from deltalake import DeltaTable, write_deltalake
from helpers import cli_on_terminal, read_pandas

from lineage_plugin.cli.progress import TerminalProgress
from lineage_plugin.progress import Indented, tracked


@pytest.fixture
def two_tables_restorable(lineage_tracking, tmp_path):
    """Model ``pair`` version 1 read two tables; each got a bad append after."""
    paths = []
    for name in ("left", "right"):
        path = str(tmp_path / name)
        write_deltalake(path, pa.table({"x": [1.0, 2.0, 3.0]}))
        paths.append(path)
    with mlflow.start_run() as run:
        for path in paths:
            read_pandas(DeltaTable(path))
    client = mlflow.MlflowClient()
    client.create_registered_model("pair")
    client.create_model_version("pair", "s3://bucket/model", run_id=run.info.run_id)
    for path in paths:
        write_deltalake(path, pa.table({"x": [99.0]}), mode="append")
    return {"uri": lineage_tracking, "paths": paths, "cwd": str(tmp_path)}


def test_a_multi_table_restore_draws_a_bar_on_a_terminal(two_tables_restorable):
    s = two_tables_restorable
    args = ["restore", "pair", "1", "--yes", "--tracking-uri", s["uri"]]
    code, _, terminal = cli_on_terminal(args, s["cwd"], tty=True)
    assert code == 0, terminal
    assert "Restoring tables" in terminal and "2/2" in terminal
    assert "Restoring left from v1 to v0" in terminal  # the status lines are still there
    assert [DeltaTable(p).version() for p in s["paths"]] == [2, 2]


def test_json_output_gets_no_bar_even_on_a_terminal(two_tables_restorable):
    s = two_tables_restorable
    args = ["restore", "pair", "1", "--yes", "--json", "--tracking-uri", s["uri"]]
    code, stdout, terminal = cli_on_terminal(args, s["cwd"], tty=True)
    assert code == 0, terminal
    assert "Restoring tables" not in terminal and "2/2" not in terminal
    assert len(json.loads(stdout)["restored"]) == 2  # stdout is the JSON alone


def test_a_pipe_gets_status_lines_and_no_bar(two_tables_restorable):
    s = two_tables_restorable
    args = ["export", "-o", "out.tar.gz", "--tracking-uri", s["uri"]]
    code, stdout, stderr = cli_on_terminal(args, s["cwd"], tty=False)
    assert code == 0, stderr
    assert "Exporting runs" not in stderr and "\r" not in stderr
    assert "read 1 runs" in stderr and "Exported lineage" in stdout


def test_export_draws_a_bar_on_a_terminal(two_tables_restorable):
    s = two_tables_restorable
    args = ["export", "-o", "out.tar.gz", "--tracking-uri", s["uri"]]
    code, _, terminal = cli_on_terminal(args, s["cwd"], tty=True)
    assert code == 0, terminal
    assert "Exporting runs" in terminal and "1/1" in terminal


def test_library_callers_get_status_lines_and_no_bar():
    """A plain callable (``print``) receives the lines; bars are only for the CLI's object."""
    lines: list[str] = []
    with tracked(lines.append, "Counting", 3) as advance:
        advance(1, "one")
    indented = Indented(lines.append, "  ")
    indented("step")
    assert lines == ["  step"]
    assert not hasattr(indented, "bar")


def test_a_bar_is_drawn_only_when_bars_are_on(capsys):
    quiet = TerminalProgress(bars=False)
    with tracked(quiet, "Counting", 2) as advance:
        advance(2)
        quiet("a line")
    assert capsys.readouterr().err == "a line\n"
    # Indented keeps the bar of the progress it wraps.
    assert Indented(TerminalProgress(bars=True), "  ").bar is not None


def test_reindex_draws_a_bar_on_a_terminal(two_tables_restorable):
    s = two_tables_restorable
    args = ["reindex", "--tracking-uri", s["uri"]]
    code, stdout, terminal = cli_on_terminal(args, s["cwd"], tty=True)
    assert code == 0, terminal
    assert "Indexing runs" in terminal and "1/1" in terminal
    code, stdout, terminal = cli_on_terminal([*args, "--json"], s["cwd"], tty=True)
    assert code == 0 and "Indexing runs" not in terminal
    assert json.loads(stdout)["runs"] == 1
