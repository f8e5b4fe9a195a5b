"""Errors that lead somewhere (issue 12, point 6), at the CLI boundary, on real stores.

The CLI never creates a database: a mistyped tracking URI is exit 2 naming the path it looked
at and where the URI came from. Unknown schemes list the supported ones, a misspelled model gets
the closest names, errors are JSON on stdout with ``--json``, a refusal names the command line
that would go ahead, a version past a table's latest is exit 2, and Ctrl-C is exit 130.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import click
import mlflow
import pytest
from click.testing import CliRunner
from deltalake import DeltaTable
from helpers import child_env, register_reader, tracking_at

from lineage_plugin.cli import cli
from lineage_plugin.cli.options import common_options, go_ahead_command
from lineage_plugin.errors import OperationInterruptedError, RestoreRefusedError

NEVER_CREATES = "it never creates one"


def invoke(*args: str, code: int, env: dict[str, str] | None = None):
    result = CliRunner().invoke(cli, list(args), env=env, prog_name="mlflow-lineage")
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    return result


def tables_of(path: Path) -> set[str]:
    with sqlite3.connect(path) as con:
        return {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}


# ---- the CLI never creates a database -------------------------------------------------------


@pytest.mark.parametrize("prefix", ["", "lineage+"])
@pytest.mark.parametrize("source", ["--tracking-uri", "MLFLOW_TRACKING_URI"])
def test_a_relative_sqlite_path_meant_as_absolute_is_refused_and_nothing_is_created(
    tmp_path, monkeypatch, prefix, source
):
    monkeypatch.chdir(tmp_path)
    uri = f"{prefix}sqlite:///data/mlflow.db"
    if source == "--tracking-uri":
        out = invoke("show", "churn", "1", "--tracking-uri", uri, code=2)
    else:
        out = invoke("show", "churn", "1", code=2, env={"MLFLOW_TRACKING_URI": uri})
    message = " ".join(out.stderr.split())
    assert f"The tracking URI {uri} (from {source})" in message
    assert (
        f"sqlite:/// is relative to the working directory, {tmp_path}/data/mlflow.db does not "
        f"exist; for an absolute path use {prefix}sqlite:////data/mlflow.db" in message
    )
    assert NEVER_CREATES in message
    assert list(tmp_path.iterdir()) == []  # no data/ folder, no database


def test_a_typo_in_the_file_name_names_the_db_files_there(tmp_path, monkeypatch, _migrated_sqlite):
    monkeypatch.chdir(tmp_path)
    shutil.copyfile(_migrated_sqlite, tmp_path / "mlflow.db")
    out = invoke("show", "churn", "1", "--tracking-uri", "sqlite:///mlflow.dbb", code=2)
    message = " ".join(out.stderr.split())
    assert f"{tmp_path}/mlflow.dbb does not exist" in message
    assert "Did you mean sqlite:///mlflow.db?" in message
    assert f"The .db files in {tmp_path}: mlflow.db." in message
    assert not (tmp_path / "mlflow.dbb").exists()


def test_two_slashes_are_a_host_part_that_sqlite_ignores(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    uri = "lineage+sqlite://mlflow.db"
    message = " ".join(invoke("show", "m", "1", "--tracking-uri", uri, code=2).stderr.split())
    assert "has a host part ('mlflow.db'), which SQLite ignores" in message
    assert "Did you mean lineage+sqlite:///mlflow.db?" in message


def test_an_absolute_path_in_a_missing_folder_says_so(tmp_path):
    uri = f"sqlite:///{tmp_path}/nowhere/mlflow.db"
    message = " ".join(invoke("reindex", "--tracking-uri", uri, code=2).stderr.split())
    assert f"{tmp_path}/nowhere/mlflow.db does not exist" in message
    assert f"The folder {tmp_path}/nowhere does not exist either" in message
    assert not (tmp_path / "nowhere").exists()


def test_files_that_are_not_mlflow_databases_are_refused_and_left_unchanged(
    tmp_path, _migrated_sqlite
):
    (tmp_path / "empty.db").touch()
    (tmp_path / "text.db").write_text("not a database at all\n")
    with sqlite3.connect(tmp_path / "other.db") as con:
        con.execute("CREATE TABLE customers (id INTEGER)")
    con.close()
    partial = tmp_path / "old.db"
    shutil.copyfile(_migrated_sqlite, partial)
    with sqlite3.connect(partial) as con:
        con.execute("DROP TABLE webhooks")
    con.close()
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    cases = {
        "empty.db": "which is not an MLflow database (none of MLflow's tables; it is empty)",
        "text.db": "which cannot be read as a database (file is not a database)",
        "other.db": "which is not an MLflow database (none of MLflow's tables; its tables: "
        "customers)",
        "old.db": "which lacks MLflow",
    }
    for name, expected in cases.items():
        out = invoke(
            "check", "churn", "1", "--tracking-uri", f"sqlite:///{tmp_path / name}", code=2
        )
        message = " ".join(out.stderr.split())
        assert f"names {tmp_path / name}, {expected}" in message, message
    assert "webhooks: an older MLflow made it. Upgrade it first with: mlflow db upgrade" in (
        " ".join(invoke("show", "m", "1", "--tracking-uri", f"sqlite:///{partial}", code=2)
                 .stderr.split())
    )  # fmt: skip
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before
    assert "webhooks" not in tables_of(partial)


@pytest.mark.parametrize("form", ["file:{}", "lineage+file:{}", "{}"])
def test_a_missing_file_store_folder_is_refused_and_not_created(tmp_path, form):
    uri = form.format(tmp_path / "mlruns")
    message = " ".join(invoke("timeline", "--model", "m", "--tracking-uri", uri, code=2)
                       .stderr.split())  # fmt: skip
    assert f"names the file store folder {tmp_path / 'mlruns'}, which does not exist" in message
    assert not (tmp_path / "mlruns").exists()


def test_a_folder_that_is_not_a_file_store_or_a_sqlite_file_given_as_a_path(
    tmp_path, _migrated_sqlite
):
    (tmp_path / "plain").mkdir()
    out = invoke("show", "m", "1", "--tracking-uri", f"file:{tmp_path / 'plain'}", code=2)
    assert "is not an MLflow file store" in out.stderr
    assert list((tmp_path / "plain").iterdir()) == []
    shutil.copyfile(_migrated_sqlite, tmp_path / "mlflow.db")
    out = invoke("show", "m", "1", "--tracking-uri", str(tmp_path / "mlflow.db"), code=2)
    assert f"It is a SQLite file: use sqlite:///{tmp_path / 'mlflow.db'}." in out.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["show", "m", "1"],
        ["diff", "m", "1", "2"],
        ["impact", "t", "--from-version", "1"],
        ["timeline", "--table", "t"],
        ["check", "m", "1"],
        ["reindex"],
        ["export", "-o", "x.tar.gz"],
        ["restore", "m", "1", "--yes"],
        ["reproduce", "m", "1"],
        ["rollback", "m", "1", "--alias", "champion", "--yes"],
    ],
)
def test_every_command_refuses_a_missing_database_before_doing_anything(
    tmp_path, monkeypatch, args
):
    monkeypatch.chdir(tmp_path)
    out = invoke(*args, "--tracking-uri", "lineage+sqlite:///mlflow.db", code=2)
    assert f"{tmp_path}/mlflow.db does not exist" in out.stderr
    assert list(tmp_path.iterdir()) == []


def test_no_uri_at_all_names_mlflows_default(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    mlflow.set_tracking_uri(None)
    out = invoke("show", "m", "1", code=2)
    message = " ".join(out.stderr.split())
    assert "(from MLflow's default: neither --tracking-uri nor MLFLOW_TRACKING_URI is set)" in (
        message
    )
    assert list(tmp_path.iterdir()) == []


def test_a_postgresql_database_without_mlflows_tables_is_refused_and_left_empty(postgres):
    import sqlalchemy

    with postgres.database(migrated=False) as url:
        out = invoke("show", "m", "1", "--tracking-uri", f"lineage+{url}", code=2)
        assert "which is not an MLflow database (none of MLflow's tables; it is empty)" in (
            " ".join(out.stderr.split())
        )
        engine = sqlalchemy.create_engine(url)
        try:
            assert sqlalchemy.inspect(engine).get_table_names() == []
        finally:
            engine.dispose()


def test_the_plugins_store_still_creates_a_database_as_mlflow_does(tmp_path):
    """Only the CLI refuses: MLflow's client on a lineage+ URI makes the database, as stock."""
    uri = f"lineage+sqlite:///{tmp_path / 'new.db'}"
    with tracking_at(uri):
        mlflow.MlflowClient().search_experiments()
    assert {"experiments", "registered_models"} <= tables_of(tmp_path / "new.db")


# ---- unknown and doubled schemes -------------------------------------------------------------


@pytest.mark.parametrize(
    ("uri", "says"),
    [
        ("lineage+foo:///mlflow.db", "wraps the unsupported backend scheme 'foo'"),
        ("lineage+lineage+sqlite:///mlflow.db", "Use a single prefix: 'lineage+sqlite:///mlf"),
        ("foo://host/mlflow", "has the scheme 'foo', which no MLflow tracking store handles"),
    ],
)
def test_unknown_and_doubled_schemes_list_the_supported_ones(tmp_path, monkeypatch, uri, says):
    monkeypatch.chdir(tmp_path)
    out = invoke("show", "churn", "1", "--tracking-uri", uri, code=2)
    message = " ".join(out.stderr.split())
    assert says in message and f"'{uri}' (from --tracking-uri)" in message
    assert "lineage+sqlite, " in message and "lineage+postgresql+psycopg2" in message
    assert "no registered model" not in message
    assert list(tmp_path.iterdir()) == []


# ---- on the scenario: a misspelled model, JSON errors, going ahead -----------------


@pytest.fixture(scope="module")
def churn(tmp_path_factory, _migrated_sqlite):
    import churn as scenario

    return scenario.build(tmp_path_factory.mktemp("churn"), _migrated_sqlite)


def test_a_misspelled_model_gets_the_closest_names(churn):
    out = invoke("show", "chrun", "1", "--tracking-uri", churn.uri, code=2)
    assert "Error: There is no registered model 'chrun'. Did you mean: churn?" in out.stderr
    out = invoke("check", "Churn", "1", "--tracking-uri", churn.uri, code=2)
    assert "Did you mean: churn?" in out.stderr
    out = invoke("show", "fraud", "1", "--tracking-uri", churn.uri, code=2)
    assert "There is no registered model 'fraud'" in out.stderr
    assert "The registered models are: churn." in out.stderr


def test_with_json_an_error_is_json_on_stdout_and_text_on_stderr(churn):
    out = invoke("show", "chrun", "1", "--json", "--tracking-uri", churn.uri, code=2)
    data = json.loads(out.stdout)
    assert data == {
        "error": "There is no registered model 'chrun'. Did you mean: churn?",
        "refusals": [],
    }
    assert out.stderr.startswith("Error: There is no registered model 'chrun'")
    # a usage error the command raises itself is JSON too
    usage = invoke("timeline", "--json", "--tracking-uri", churn.uri, code=2)
    assert "exactly one of --model" in json.loads(usage.stdout)["error"]


@pytest.mark.parametrize("bound", ["--from-version", "--to-version"])
def test_a_version_past_the_tables_latest_is_exit_2(churn, bound):
    out = invoke("impact", str(churn.table), bound, "99", "--tracking-uri", churn.uri, code=2)
    message = " ".join(out.stderr.split())
    assert f"is at version 2 (its latest), so {bound} 99 names a version it does not have" in (
        message
    )
    data = json.loads(
        invoke("impact", "customers", bound, "99", "--json", "--tracking-uri", churn.uri, code=2)
        .stdout
    )  # fmt: skip
    assert "Give versions from 0 to 2" in data["error"]
    # the latest version itself is in range: both versions that read v0 and v2 are listed
    ok = invoke("impact", "customers", "--to-version", "2", "--json", "--tracking-uri", churn.uri,
                code=0)  # fmt: skip
    assert [m["version"] for m in json.loads(ok.stdout)["model_versions"]] == ["2", "1"]


def test_go_ahead_replaces_an_option_given_with_another_value_and_quotes(monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///from-the-environment.db")
    restore = cli.commands["restore"]
    given = ["my model", "1", "--engine", "deltalake", "-y", "--reason", "bad update"]
    with cli.make_context("mlflow-lineage", ["restore", *given]) as root:
        ctx = restore.make_context("restore", list(given), parent=root)
        line = go_ahead_command(ctx, ("--allow-undo-deletes", "--engine", "spark"))
        with pytest.raises(ValueError, match="--nosuch is not an option"):
            go_ahead_command(ctx, ("--nosuch",))
    assert line == (
        "mlflow-lineage restore 'my model' 1 --yes --reason 'bad update' --allow-undo-deletes "
        "--engine spark"
    )  # the environment's tracking URI is not repeated: the shell still has it
    assert shlex.split(line)[2:4] == ["my model", "1"]


@click.command()
@click.argument("model")
@click.option("--force", is_flag=True)
@common_options
def refusing(model: str, force: bool, tracking_uri: str | None, as_json: bool) -> None:
    """A command whose refusal names an option it has, or (MODEL=other) one it lacks."""
    wanted = ("--force",) if model != "other" else ("--allow-undo-deletes",)
    raise RestoreRefusedError("Refused; nothing was changed.", go_ahead=wanted)


def test_go_ahead_puts_arguments_that_look_like_options_after_a_double_dash(sqlite_uri):
    env = {"MLFLOW_TRACKING_URI": sqlite_uri}
    out = CliRunner().invoke(refusing, ["--", "-m"], env=env)
    assert out.exit_code == 2, out.output
    # the URI from the environment is not repeated: the shell has it still
    assert out.stderr.endswith("To go ahead, run: mlflow-lineage --force -- -m\n")
    # a refusal whose option this command lacks: no command line, and no traceback
    out = CliRunner().invoke(refusing, ["other", "--tracking-uri", sqlite_uri, "--json"])
    assert out.exit_code == 2 and out.exception is not None
    assert "Traceback" not in out.output and "To go ahead" not in out.stderr
    assert json.loads(out.stdout) == {"error": "Refused; nothing was changed.", "refusals": []}


def test_a_refused_restore_says_how_to_go_ahead_and_that_command_line_does(churn):
    """The issue's case: restore churn 1 refuses because of the DELETE (and changes nothing)."""
    args = ("restore", "churn", "1", "--yes", "--tracking-uri", churn.uri)
    out = invoke(*args, "--json", code=2)
    data = json.loads(out.stdout)
    assert data["error"].startswith("The restore is refused; no table was changed.")
    assert data["refusals"] and all("customers" in r for r in data["refusals"])
    assert any("commits that deleted rows (v2)" in r for r in data["refusals"])
    assert data["plan"]["tables"][0]["current_version"] == 2
    expected = shlex.join(
        ["mlflow-lineage", "restore", "churn", "1", "--yes", "--allow-undo-deletes",
         "--tracking-uri", churn.uri, "--json"]
    )  # fmt: skip
    assert data["go_ahead"] == expected
    assert f"To go ahead, run: {expected}" in out.stderr
    assert DeltaTable(str(churn.table)).version() == 2

    text = invoke(*args, code=2)
    line = text.stderr.split("To go ahead, run: ", 1)[1].strip()
    assert line == expected.removesuffix(" --json")
    done = subprocess.run(
        shlex.split(line), capture_output=True, text=True, env=child_env(), timeout=300
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert DeltaTable(str(churn.table)).version() == 3  # the RESTORE commit
    assert DeltaTable(str(churn.table)).history(1)[0]["operation"] == "RESTORE"


# ---- interruptions ---------------------------------------------------------------------------


@click.command()
@common_options
def stopping(tracking_uri: str | None, as_json: bool) -> None:
    """A command that is interrupted after its work started (as reproduce is on Ctrl-C)."""
    raise OperationInterruptedError("Stopped. The table is at v3; nothing was registered.")


def test_an_interrupted_operation_keeps_its_exit_code_130(sqlite_uri):
    for extra in ([], ["--json"]):
        out = CliRunner().invoke(stopping, ["--tracking-uri", sqlite_uri, *extra])
        assert out.exit_code == 130, out.output
        assert "Error: Stopped. The table is at v3; nothing was registered." in out.stderr
    assert json.loads(out.stdout)["error"].startswith("Stopped.")


@pytest.mark.slow
def test_ctrl_c_in_a_real_process_is_interrupted_exit_130_without_a_traceback(
    tmp_path, sqlite_uri, make_table
):
    """SIGINT while a read hangs (the commit file is a FIFO: a stuck file system).

    polars (which MLflow imports) installs its SIGINT handler with SA_RESTART, so the read
    goes on until the file system answers; the Ctrl-C takes effect right then.
    """
    uri = f"lineage+{sqlite_uri}"
    path = make_table(commits=2)
    with tracking_at(uri):
        register_reader(path)
    commit = Path(path) / "_delta_log" / f"{1:020d}.json"
    commit.unlink()
    os.mkfifo(commit)
    child = subprocess.Popen(
        [sys.executable, "-c", "from lineage_plugin.cli import main; main()",
         "timeline", "--table", path, "--tracking-uri", uri],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=child_env(),
        # as from a terminal: SIGINT not ignored even if this test process ignores it
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while True:  # the write end opens once the child waits to read the commit file
            assert child.poll() is None and time.monotonic() < deadline, child.communicate()
            try:
                writer = os.open(commit, os.O_WRONLY | os.O_NONBLOCK)
                break
            except OSError:
                time.sleep(0.05)
        time.sleep(0.2)  # the child is now inside read()
        child.send_signal(signal.SIGINT)
        time.sleep(0.5)
        os.close(writer)  # the stuck read returns (empty)
        stdout, stderr = child.communicate(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
    assert child.returncode == 130, stderr
    assert stderr.strip().endswith("Error: Interrupted."), stderr
    assert "Traceback" not in stderr and "Aborted!" not in stderr
    assert stdout == ""
