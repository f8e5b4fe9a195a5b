"""``reproduce`` and ``rollback``: real training processes, real models, honest verification.

The training is the demo's own script (``demo_notebooks/train_diabetes.py``), run as a child
process, on scikit-learn's diabetes data in a Delta table. Every verification here can fail,
and the tests show that it does when it should: other data, another seed, other
hyper-parameters.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import mlflow
import pytest
from click.testing import CliRunner
from deltalake import DeltaTable, write_deltalake
from helpers import cli_on_terminal, register_logged_model, run_python, tracking_at
from mlflow import MlflowClient

import lineage_plugin as lp
from lineage_plugin.cli import cli
from lineage_plugin.errors import LineageWarning
from lineage_plugin.events import EVENT_PREFIX, RegistryEvent

TRAIN = Path(__file__).resolve().parents[1] / "demo_notebooks" / "train_diabetes.py"

pytestmark = pytest.mark.slow


def train(where: Path, uri: str, *args: str) -> str:
    """Run the training script in a child process; returns its run id."""
    result = run_python(
        str(TRAIN), "--table", str(where / "diabetes"), *args, cwd=where, MLFLOW_TRACKING_URI=uri
    )
    assert "run_id=" in result.stdout, result.stdout + result.stderr[-3000:]
    return result.stdout.rsplit("run_id=", 1)[1].split()[0]


def register(uri: str, run_id: str, name: str) -> str:
    """Register the model a run logged; returns the version."""
    with tracking_at(uri):
        return register_logged_model(run_id, name)


def bad_write(where: Path) -> None:
    """The model's own kind of mistake: a third of the targets overwritten."""
    DeltaTable(str(where / "diabetes")).update(
        predicate="row_id % 3 = 0", updates={"target": "target * 0.5 + 40.0"}
    )


@pytest.fixture(scope="module")
def registry(tmp_path_factory, _migrated_sqlite):
    """Ridge (v1) and a subsampled GBM (v2) trained on diabetes@v0; then a bad write (v1)."""
    from sklearn.datasets import load_diabetes

    where = tmp_path_factory.mktemp("reproduce")
    shutil.copyfile(_migrated_sqlite, where / "mlflow.db")
    uri = f"lineage+sqlite:///{where / 'mlflow.db'}"
    data = load_diabetes(as_frame=True).frame.reset_index(names="row_id")
    write_deltalake(str(where / "diabetes"), data)
    ridge = train(where, uri, "--model", "ridge", "--alpha", "0.1")
    gbm = train(where, uri, "--model", "gbm", "--alpha", "0.1", "--seed", "7")
    versions = {"ridge": register(uri, ridge, "diabetes"), "gbm": register(uri, gbm, "diabetes")}
    bad_write(where)
    return where, uri, versions


def invoke(uri: str, *args: str, code: int = 0):
    result = CliRunner().invoke(cli, [*args, "--tracking-uri", uri])
    assert result.exit_code == code, result.output
    return result


def reproduce_json(uri: str, *args: str, code: int = 0) -> dict:
    out = invoke(uri, "reproduce", *args, "--json", code=code).stdout
    return json.loads(out)


def events(uri: str, name: str, version: str, kind: str) -> list[RegistryEvent]:
    with tracking_at(uri):
        tags = MlflowClient().get_model_version(name, version).tags
    found = [RegistryEvent.from_json(v) for k, v in tags.items() if k.startswith(EVENT_PREFIX)]
    return [e for e in found if e.kind == kind]


def test_pinned_reads_reproduce_exactly_although_the_table_changed(registry):
    where, uri, versions = registry
    assert DeltaTable(str(where / "diabetes")).version() == 1  # the bad write is there
    report = reproduce_json(uri, "diabetes", versions["ridge"])
    v = report["verification"]
    assert report["verified"] is True and v["rows_compared"] == v["rows_identical"] == 442
    assert v["max_difference"] == 0.0 and report["pinned"] == {f"file://{where / 'diabetes'}": 0}
    with tracking_at(uri):
        [read] = lp.get_run_lineage(v["reproduced_run_id"]).inputs
        tags = MlflowClient().get_run(v["reproduced_run_id"]).data.tags
    assert read.version == 0  # the child read the recorded version, not the latest
    assert tags["lineage.reproduces"] == f"diabetes/{versions['ridge']}"
    [event] = events(uri, "diabetes", versions["ridge"], "verification")
    assert event.verification.verified and event.event_id == report["event_id"]
    timeline = invoke(uri, "timeline", "--model", "diabetes").output
    assert "verification" in timeline and "Predictions IDENTICAL (exactly)" in timeline


def test_data_that_differs_fails_verification(registry):
    """Not restored and not pinned: the retraining reads the bad write and must not pass."""
    _, uri, versions = registry
    report = reproduce_json(uri, "diabetes", versions["ridge"], "--no-pin", code=1)
    v = report["verification"]
    assert report["verified"] is False and report["pinned"] == {}
    assert v["rows_identical"] < v["rows_compared"] == 442 and v["max_difference"] > 1.0


def test_other_hyper_parameters_fail_verification(registry):
    where, uri, versions = registry
    command = f"{sys.executable} {TRAIN} --table {where / 'diabetes'} --alpha 0.5"
    out = invoke(uri, "reproduce", "diabetes", versions["ridge"], "--command", command, code=1)
    assert "Predictions DIFFERENT (exactly): 0 of 442 rows equal" in out.output


def test_a_seeded_model_reproduces_with_its_seed_only(registry):
    where, uri, versions = registry
    same = reproduce_json(uri, "diabetes", versions["gbm"])
    assert same["verified"] is True and same["verification"]["max_difference"] == 0.0
    other_seed = (
        f"{sys.executable} {TRAIN} --table {where / 'diabetes'} --model gbm --alpha 0.1 --seed 8"
    )
    other = reproduce_json(uri, "diabetes", versions["gbm"], "--command", other_seed, code=1)
    assert other["verification"]["max_difference"] > 0
    lenient = reproduce_json(
        uri, "diabetes", versions["gbm"], "--command", other_seed, "--tolerance", "1000"
    )
    assert lenient["verified"] is True and lenient["verification"]["tolerance"] == 1000


def test_register_tags_the_new_version_with_what_it_reproduces(registry):
    _, uri, versions = registry
    # As if the version had been trained with another numpy: reproduce warns before training.
    with tracking_at(uri):
        client = MlflowClient()
        manifest = json.loads(
            client.get_model_version("diabetes", versions["ridge"]).tags["lineage.manifest"]
        )
        manifest["environment"]["packages"]["numpy"] = "1.0.0"
        with pytest.warns(LineageWarning, match="lineage.manifest"):  # a reserved key: kept
            client.set_model_version_tag(
                "diabetes", versions["ridge"], "lineage.manifest", json.dumps(manifest)
            )
    report = reproduce_json(uri, "diabetes", versions["ridge"], "--register")
    assert any("numpy" in w and "1.0.0" in w for w in report["warnings"]), report["warnings"]
    new = report["verification"]["reproduced_version"]
    with tracking_at(uri):
        tags = MlflowClient().get_model_version("diabetes", new).tags
    assert tags["lineage.reproduces"] == versions["ridge"]
    assert json.loads(tags["lineage.verification"])["verified"] is True
    [event] = [
        e
        for e in events(uri, "diabetes", versions["ridge"], "verification")
        if e.event_id == report["event_id"]
    ]
    assert event.verification.reproduced_version == new


def test_the_run_and_model_decide_not_the_exit_code(registry, tmp_path):
    """A training that logs its model, then dies at exit (the pyarrow hazard), still counts."""
    where, uri, versions = registry
    crash = tmp_path / "train_then_crash.py"
    crash.write_text(
        "import os, runpy, sys\n"
        f"sys.argv = [{str(TRAIN)!r}, '--table', {str(where / 'diabetes')!r}]\n"
        f"runpy.run_path({str(TRAIN)!r}, run_name='__main__')\n"
        "os._exit(134)\n"
    )
    report = reproduce_json(
        uri, "diabetes", versions["ridge"], "--command", f"{sys.executable} {crash}"
    )
    assert report["verified"] is True and report["exit_code"] == 134
    assert any("exited with code 134" in w for w in report["warnings"])


@pytest.mark.parametrize(
    ("command", "message"),
    [
        (f"{sys.executable} -c print(1)", "recorded no MLflow run"),
        ("no-such-program-xyz", "Could not start the training"),
    ],
)
def test_a_training_that_records_nothing_is_a_clean_error(registry, command, message):
    _, uri, versions = registry
    before = len(events(uri, "diabetes", versions["ridge"], "verification"))
    out = invoke(uri, "reproduce", "diabetes", versions["ridge"], "--command", command, code=2)
    assert message in out.output
    assert len(events(uri, "diabetes", versions["ridge"], "verification")) == before


def test_a_version_trained_in_a_test_process_needs_a_command(lineage_tracking, tmp_path):
    from sklearn.linear_model import Ridge

    path = tmp_path / "t"
    write_deltalake(str(path), __import__("pandas").DataFrame({"x": [1.0, 2.0], "y": [1.0, 2.0]}))
    with mlflow.start_run():
        frame = DeltaTable(str(path)).to_pandas(
            filesystem=__import__("pyarrow.fs").fs.SubTreeFileSystem(
                str(path), __import__("pyarrow.fs").fs.LocalFileSystem()
            )
        )
        mlflow.sklearn.log_model(
            Ridge().fit(frame[["x"]], frame["y"]), name="model", registered_model_name="inproc"
        )
    out = invoke(lineage_tracking, "reproduce", "inproc", "1", code=2)
    assert "interactive or test process" in out.output and "--command" in out.output


def test_rollback_moves_the_alias_only_when_verified(tmp_path, _migrated_sqlite):
    from sklearn.datasets import load_diabetes

    shutil.copyfile(_migrated_sqlite, tmp_path / "mlflow.db")
    uri = f"lineage+sqlite:///{tmp_path / 'mlflow.db'}"
    table = tmp_path / "diabetes"
    write_deltalake(str(table), load_diabetes(as_frame=True).frame.reset_index(names="row_id"))
    good = register(uri, train(tmp_path, uri), "diabetes")
    bad_write(tmp_path)
    bad = register(uri, train(tmp_path, uri), "diabetes")
    with tracking_at(uri):
        MlflowClient().set_registered_model_alias("diabetes", "champion", bad)

    def rollback_with(command: str, code: int) -> str:
        args = ("rollback", "diabetes", good, "--alias", "champion", "--yes", "--command", command)
        return invoke(uri, *args, code=code).output

    # Retraining with other hyper-parameters: restored, but not verified, so nothing moves.
    out = rollback_with(f"{sys.executable} {TRAIN} --table {table} --alpha 3", code=1)
    assert "Restored diabetes v1 -> v2 (copy of v0)" in out
    assert "Not verified: nothing was registered and @champion (now version" in out
    champion = json.loads(invoke(uri, "show", "diabetes", "champion", "--json").stdout)
    assert champion["version"] == bad

    # A retraining that records nothing stops the rollback and says what state things are in.
    out = rollback_with(f"{sys.executable} -c print(1)", code=2)
    assert "Retraining failed: The training recorded no MLflow run" in out
    assert "State: Every table was already at its recorded version. Nothing was registered" in out

    # The recorded training: identical predictions, then @champion moves to the new version.
    out = invoke(uri, "rollback", "diabetes", good, "--alias", "champion", "--yes").output
    assert "Every table was already at its recorded version" in out
    assert "[3/4] Verifying" in out and "Predictions IDENTICAL (exactly): 442 of 442" in out
    champion = json.loads(invoke(uri, "show", "diabetes", "champion", "--json").stdout)
    assert champion["version"] not in (good, bad)
    assert f"@champion now points at version {champion['version']} (was version {bad})" in out
    [read] = champion["run"]["inputs"]
    assert read["version"] == 0  # pinned to what the good version read
    (restore,) = events(uri, "diabetes", good, "restore")
    assert restore.restores[0].new_version == 2 and "rollback" in restore.reason

    # --stage: the verified reproduction goes to Production.
    out = invoke(uri, "rollback", "diabetes", good, "--stage", "production", "--yes").output
    assert "[4/4] Registered as version" in out and "pointing Production at it" in out


def test_a_training_that_hangs_is_stopped_at_the_timeout(registry):
    from lineage_plugin.errors import VerificationError
    from lineage_plugin.recovery.reproduce import reproduce

    _, uri, versions = registry
    hang = f'{sys.executable} -c "import time; time.sleep(60)"'
    with pytest.raises(VerificationError, match="longer than 2 s"):
        reproduce("diabetes", versions["ridge"], command=hang, timeout=2, tracking_uri=uri)


def test_retraining_draws_a_bar_on_a_terminal_and_none_in_json(registry):
    where, uri, versions = registry
    args = ["reproduce", "diabetes", versions["ridge"], "--tracking-uri", uri]
    code, stdout, terminal = cli_on_terminal(args, where)
    assert code == 0, terminal
    assert f"Reproducing version {versions['ridge']}" in terminal and "3/3" in terminal
    assert "  | " in terminal  # the training's own output is still relayed
    code, stdout, terminal = cli_on_terminal([*args, "--json"], where)
    assert code == 0, terminal
    assert "Reproducing version" not in terminal and json.loads(stdout)["verified"] is True
