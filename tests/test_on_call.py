"""The on-call path of issue 12, as a new user meets it: ``reproduce`` and ``rollback`` on the
churn scenario (tests/churn.py), whose training script registers its model itself.

Real stores, a real Delta table with a bad UPDATE and a DELETE, real training processes, the
real CLI (in process and as a process on a terminal for Ctrl-C). The tests share one scenario
and run in order: reproductions first (the registry must not change), then the rollback's
refusal, its dry run, the rollback itself, and a Ctrl-C during a second one.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time

import churn
import pytest
from click.testing import CliRunner
from deltalake import DeltaTable
from helpers import child_env, register_logged_model, tracking_at

from lineage_plugin.cli import cli

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def scenario(tmp_path_factory, _migrated_sqlite) -> churn.Churn:
    return churn.build(tmp_path_factory.mktemp("on-call"), _migrated_sqlite)


def invoke(scenario: churn.Churn, *args: str, code: int = 0):
    result = CliRunner().invoke(cli, [*args, "--tracking-uri", scenario.uri])
    assert result.exit_code == code, result.output
    return result


def table_version(scenario: churn.Churn) -> int:
    return DeltaTable(str(scenario.table)).version()


def test_a_reproduction_keeps_what_the_script_registers_out_of_the_registry(scenario):
    before = scenario.versions()
    report = json.loads(invoke(scenario, "reproduce", "churn", "1", "--json").stdout)
    assert report["verified"] is True
    assert report["verification"]["rows_compared"] == churn.ROWS
    # train.py registered "churn" again, into the scratch registry: the real one has no new
    # version, and the verified model is registered only with --register.
    assert scenario.versions() == before == ["1", "2"]
    assert "reproduced_version" not in report["verification"]
    with tracking_at(scenario.uri):
        from mlflow import MlflowClient

        run = MlflowClient().get_run(report["verification"]["reproduced_run_id"])
    assert run.data.tags["lineage.reproduces"] == "churn/1"  # the run stays in the real store


def test_a_failed_reproduction_leaves_the_registry_exactly_as_it_was(scenario):
    before = scenario.registry_state()
    other = f"{sys.executable} train.py --trees 3"
    result = invoke(scenario, "reproduce", "churn", "1", "--command", other, "--register", code=1)
    assert "Predictions DIFFERENT" in result.output
    assert "The registry was left as it was" in result.output
    assert scenario.registry_state() == before  # versions, stages, tags and aliases
    run_id = result.output.split("retrained by run ", 1)[1].split(":")[0]
    with tracking_at(scenario.uri):
        from mlflow import MlflowClient

        tags = MlflowClient().get_run(run_id).data.tags
    assert json.loads(tags["lineage.verification"])["verified"] is False


def test_rollback_refuses_the_delete_and_names_the_command_that_goes_ahead(scenario):
    at = table_version(scenario)
    before = scenario.registry_state()
    refused = invoke(scenario, "rollback", "churn", "1", "--yes", code=2)
    assert "deleted rows" in refused.output and "--allow-undo-deletes" in refused.output
    go_ahead = refused.output.split("To go ahead, run: ", 1)[1].splitlines()[0]
    assert shlex.split(go_ahead)[:4] == ["mlflow-lineage", "rollback", "churn", "1"]
    assert "--allow-undo-deletes" in shlex.split(go_ahead)
    as_json = invoke(scenario, "rollback", "churn", "1", "--yes", "--json", code=2)
    error = json.loads(as_json.stdout)
    assert error["refusals"] and "--allow-undo-deletes" in error["go_ahead"]
    assert table_version(scenario) == at and scenario.registry_state() == before


def test_rollback_dry_run_shows_the_plan_the_retraining_and_the_targets(scenario):
    at = table_version(scenario)
    before = scenario.registry_state()
    args = ("rollback", "churn", "1", "--allow-undo-deletes", "--dry-run")
    report = json.loads(invoke(scenario, *args, "--json").stdout)
    assert report["dry_run"] is True and "verified" not in report
    [table] = report["restore"]["plan"]["tables"]
    assert (table["current_version"], table["target_version"]) == (2, 0)
    assert [c["version"] for c in table["commits"]] == [1, 2]
    assert report["targets"] == [{"target": "@champion", "previous_holder": "2"}]
    assert report["targets_from"] == "what version 1 held last"
    assert report["retrain"]["command"][1:] == [str(scenario.script)]
    assert report["retrain"]["pinned"] == {f"file://{scenario.table}": 0}
    text = invoke(scenario, *args).output
    assert "Would retrain version 1" in text and "@champion (now version 2)" in text
    assert table_version(scenario) == at and scenario.registry_state() == before


def test_rollback_without_a_target_refuses_before_any_work(scenario):
    """A version that never held an alias or a stage: nothing to point, nothing done."""
    with tracking_at(scenario.uri):
        from mlflow import MlflowClient

        run_id = MlflowClient().get_model_version("churn", "1").run_id
        register_logged_model(run_id, "churn-shadow")
    at = table_version(scenario)
    result = invoke(scenario, "rollback", "churn-shadow", "1", "--yes", code=2)
    assert "never held an alias or a stage" in result.output
    assert "mlflow-lineage rollback churn-shadow 1 --alias" in result.output
    assert table_version(scenario) == at  # not restored


def test_rollback_goes_all_the_way_with_one_new_version(scenario):
    before = scenario.versions()
    result = invoke(scenario, "rollback", "churn", "1", "--yes", "--allow-undo-deletes", "--json")
    report = json.loads(result.stdout)
    assert report["verified"] is True and report["pointed"] == "@champion"
    assert report["previous_holder"] == "2"
    [restored] = report["restore"]["restored"]
    assert (restored["from_version"], restored["to_version"]) == (2, 0)
    assert restored["undid_deletes"] is True
    new = report["reproduce"]["verification"]["reproduced_version"]
    # One version for the rollback, none for what train.py registered itself.
    assert scenario.versions() == [*before, new] and new == str(int(before[-1]) + 1)
    assert scenario.registry_state()["aliases"] == {"champion": int(new)}
    assert "[4/4] Registered as version" in result.stderr


def test_ctrl_c_during_a_rollback_stops_the_training_and_says_what_state_things_are_in(
    scenario, tmp_path
):
    """A real SIGINT to the CLI's process group, as a terminal's Ctrl-C sends it, while the
    rollback's retraining runs (after the rollback above: the table is restored already)."""
    pid_file = tmp_path / "child.pid"
    slow = tmp_path / "slow_train.py"
    slow.write_text(
        "import os, sys, time\n"
        f"open({str(pid_file)!r}, 'w').write(str(os.getpid()))\n"
        "print('training...', flush=True)\n"
        "time.sleep(120)\n"
    )
    before = scenario.registry_state()
    command = f"{sys.executable} {slow}"
    cli_process = subprocess.Popen(
        [sys.executable, "-c", "from lineage_plugin.cli import main; main()"]
        + ["rollback", "churn", "1", "--yes", "--command", command]
        + ["--tracking-uri", scenario.uri],
        cwd=scenario.where,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=child_env(),
        start_new_session=True,  # its own process group: the "terminal" of this test
        # A terminal's foreground process has Ctrl-C's default action even when this test
        # runs in the background (where SIGINT is inherited as ignored).
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.monotonic() + 120
    while not pid_file.exists() or not pid_file.read_text():
        assert cli_process.poll() is None, cli_process.communicate()
        assert time.monotonic() < deadline, "the training never started"
        time.sleep(0.2)
    child_pid = int(pid_file.read_text())
    os.killpg(cli_process.pid, signal.SIGINT)
    out, err = cli_process.communicate(timeout=60)
    assert cli_process.returncode == 130, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err
    assert "Interrupted" in err and "was stopped" in err
    assert "State: Every table was already at its recorded version." in err
    assert "Nothing was registered and nothing pointed (@champion on version 3, as before)" in err
    assert "Could not load the model" not in err
    with pytest.raises(ProcessLookupError):
        os.kill(child_pid, 0)  # the training is gone, not orphaned
    assert scenario.registry_state() == before
