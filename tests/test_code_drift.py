"""Code without git: the entry script and its local modules are hashed, ``check`` reports a
changed or missing file, ``reproduce`` names what differs when the predictions do.

The scenario is issue 12's own (tests/churn.py): a churn model trained by ``train.py`` in a
folder that is not a git repository. It lives in a temporary folder outside pytest's
``tmp_path`` (whose path contains ``pytest``, which would make the recorded command line look
like a test process that cannot be re-run).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import churn
import mlflow
import pytest
from click.testing import CliRunner
from deltalake import DeltaTable, write_deltalake
from helpers import read_pandas, run_python, tracking_at
from mlflow import MlflowClient

from lineage_plugin.cli import cli
from lineage_plugin.records import CodeVersion, RunLineage

pytestmark = pytest.mark.slow


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def invoke(uri: str, *args: str, code: int = 0):
    result = CliRunner().invoke(cli, [*args, "--tracking-uri", uri])
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    return result


def as_json(uri: str, *args: str, code: int = 0) -> dict:
    return json.loads(invoke(uri, *args, "--json", code=code).stdout)


@contextlib.contextmanager
def edited(path: Path, old: str, new: str) -> Iterator[None]:
    """``path`` with ``old`` replaced by ``new`` inside the block, as it was after."""
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))
    try:
        yield
    finally:
        path.write_text(text)


def outside_pytest_tmp(prefix: str) -> Iterator[Path]:
    where = Path(tempfile.mkdtemp(prefix=prefix)).resolve()
    try:
        yield where
    finally:
        shutil.rmtree(where, ignore_errors=True)


@pytest.fixture(scope="module")
def scenario(_migrated_sqlite) -> Iterator[churn.Churn]:
    """issue 12's churn scenario: v1 @champion on customers@v0, bad writes, v2 on v2."""
    for where in outside_pytest_tmp("code-drift-"):
        yield churn.build(where, _migrated_sqlite)


def run_of(uri: str, name: str, version: str):
    with tracking_at(uri):
        client = MlflowClient()
        return client.get_run(client.get_model_version(name, version).run_id)


# --- recording ---------------------------------------------------------------------------


def test_a_script_outside_git_records_the_hash_of_its_file(scenario):
    run = run_of(scenario.uri, "churn", "1")
    tags = run.data.tags
    assert "lineage.code.git_commit" not in tags
    assert json.loads(tags["lineage.code.files"]) == {"train.py": sha256(scenario.script)}
    with tracking_at(scenario.uri):
        manifest = json.loads(
            MlflowClient().get_model_version("churn", "1").tags["lineage.manifest"]
        )
    assert manifest["code"]["files"] == {"train.py": sha256(scenario.script)}
    # Nothing changed: the data of v1 is still readable, the code and libraries are the same.
    report = as_json(scenario.uri, "check", "churn", "1")
    assert report["ok"] is True, report["problems"]


SCRIPT = """
import sys, mlflow, polars as pl
import helpers_local
mlflow.set_tracking_uri(sys.argv[1])
with mlflow.start_run() as run:
    pl.read_delta(sys.argv[2])
    import late_local  # imported after the run started: hashed at the next write
    pl.read_delta(sys.argv[3])
print(run.info.run_id)
"""


def git(cwd: Path, *args: str) -> str:
    who = ["-c", "user.email=t@example.com", "-c", "user.name=t"]
    done = subprocess.run(["git", *who, *args], cwd=cwd, check=True, capture_output=True, text=True)
    return done.stdout.strip()


def test_a_clean_commit_records_no_hashes_uncommitted_changes_do(tmp_path, sqlite_uri, make_table):
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "train.py").write_text(SCRIPT)
    (repo / "helpers_local.py").write_text("X = 1\n")
    (repo / "late_local.py").write_text("Y = 2\n")
    git(repo, "init", "-q")
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "train")
    tables = [make_table("a"), make_table("b")]
    uri = f"lineage+{sqlite_uri}"

    def train() -> tuple[dict[str, str], subprocess.CompletedProcess]:
        result = run_python("train.py", uri, *tables, cwd=repo)
        assert result.returncode == 0, result.stderr
        with tracking_at(uri):
            return mlflow.get_run(result.stdout.split()[-1]).data.tags, result

    tags, _ = train()
    assert "lineage.code.files" not in tags and tags["lineage.code.git_dirty"] == "false"

    (repo / "helpers_local.py").write_text("X = 3\n")  # uncommitted
    tags, result = train()
    assert tags["lineage.code.git_dirty"] == "true"
    files = json.loads(tags["lineage.code.files"])
    assert files == {
        "train.py": sha256(repo / "train.py"),
        "helpers_local.py": sha256(repo / "helpers_local.py"),
        "late_local.py": sha256(repo / "late_local.py"),  # imported inside the run
    }
    assert "LineageWarning" not in result.stderr


def test_only_the_users_own_modules_are_hashed_within_the_caps(tmp_path):
    from lineage_plugin.tracking.environment import hash_code_files

    project = tmp_path / "project"
    (project / "pkg").mkdir(parents=True)
    (project / ".venv" / "lib" / "site-packages").mkdir(parents=True)
    (project / "build" / "site-packages").mkdir(parents=True)
    (project / "train.py").write_text("import pkg.util\n")
    (project / "pkg" / "__init__.py").write_text("")
    (project / "pkg" / "util.py").write_text("U = 1\n")
    (project / "big.py").write_text("#" * 5000)
    library = [
        project / ".venv" / "lib" / "site-packages" / "numpy_like.py",
        project / "build" / "site-packages" / "other.py",
        tmp_path / "elsewhere.py",
    ]
    for path in library:
        path.write_text("L = 1\n")
    modules = [str(p) for p in [*library, project / "pkg" / "__init__.py"]]
    modules += [str(project / "pkg" / "util.py"), str(project / "big.py"), None]

    files, skipped = hash_code_files(str(project / "train.py"), modules, max_bytes=4000)
    assert files == {
        "train.py": sha256(project / "train.py"),
        "pkg/__init__.py": sha256(project / "pkg" / "__init__.py"),
        "pkg/util.py": sha256(project / "pkg" / "util.py"),
    }
    assert skipped == ["big.py"]  # over the byte budget: reported, never read
    capped, skipped = hash_code_files(str(project / "train.py"), modules, max_files=2)
    assert list(capped) == ["train.py", "big.py"] and skipped == ["pkg/__init__.py", "pkg/util.py"]
    again, _ = hash_code_files(str(project / "train.py"), modules, known=capped, max_files=2)
    assert again == capped  # known files are kept and not read again


def test_a_record_without_file_hashes_is_still_read():
    old = {"run_id": "r", "status": "complete", "code": {"argv": ["train.py"], "cwd": "/w"}}
    code = RunLineage.from_dict(old).code
    assert code == CodeVersion(argv=("train.py",), cwd="/w") and code.files is None
    assert "files" not in code.to_dict()


# --- check and reproduce -----------------------------------------------------------------

FASTER_TREES = (
    "RandomForestClassifier(n_estimators=args.trees, random_state=args.seed)",
    "RandomForestClassifier(n_estimators=args.trees, random_state=args.seed, max_depth=2)",
)


def test_an_edited_script_is_drift_for_check_and_a_named_cause_for_reproduce(scenario):
    recorded = sha256(scenario.script)
    with edited(scenario.script, *FASTER_TREES):
        now = sha256(scenario.script)
        report = as_json(scenario.uri, "check", "churn", "1", code=1)
        assert report["ok"] is False
        assert report["problems"] == [
            {
                "kind": "code",
                "message": f"code: train.py changed since the run (sha256 {recorded[:12]} -> "
                f"{now[:12]})",
            }
        ]
        text = invoke(scenario.uri, "check", "churn", "1", code=1).output
        assert "[code] code: train.py changed since the run" in text

        out = invoke(scenario.uri, "reproduce", "churn", "1", code=1).output
        assert "Warning: code: train.py changed since the run" in out  # before training
        assert "Predictions DIFFERENT" in out
        causes = out[out.index("Likely causes:") :]
        assert f"- code: train.py differs (sha256 {recorded[:12]} -> {now[:12]})" in causes
        assert "parameters:" not in causes and "data:" not in causes
    # The file back as it was: no drift.
    assert as_json(scenario.uri, "check", "churn", "1")["ok"] is True


def test_other_trees_on_the_command_line_are_named_as_a_parameter_change(scenario):
    command = f"{sys.executable} {scenario.script} --trees 5"
    report = as_json(scenario.uri, "reproduce", "churn", "1", "--command", command, code=1)
    assert report["verified"] is False and report["warnings"] == []
    causes = report["likely_causes"]
    assert "parameters: trees 30 -> 5" in causes
    assert "code: command-line arguments (none) -> --trees 5" in causes
    assert not [c for c in causes if c.startswith(("data:", "environment:"))]
    assert not [c for c in causes if "train.py" in c]  # the same file


def test_reading_other_data_is_named_as_a_data_cause(scenario):
    report = as_json(scenario.uri, "reproduce", "churn", "1", "--no-pin", code=1)
    assert (
        "data: customers read at v0 by the original, at v2 by the reproduction"
        in (report["likely_causes"])
    )


def test_a_missing_script_is_drift(scenario):
    moved = scenario.script.with_name("train_moved.py")
    scenario.script.rename(moved)
    try:
        [problem] = as_json(scenario.uri, "check", "churn", "1", code=1)["problems"]
    finally:
        moved.rename(scenario.script)
    assert problem["kind"] == "code"
    assert problem["message"].startswith("code: train.py is missing (looked at ")


FEATURES = '''\
"""The user's feature preparation, imported by train.py."""
COLUMNS = ["tenure", "monthly_charges", "support_calls", "contract"]


def prepare(frame):
    return frame[COLUMNS]
'''


@pytest.fixture(scope="module")
def with_module(_migrated_sqlite) -> Iterator[churn.Churn]:
    """train.py imports features.py beside it; v1 seeded, v2 trained with an unseeded forest."""
    for where in outside_pytest_tmp("code-drift-module-"):
        shutil.copyfile(_migrated_sqlite, where / "mlflow.db")
        scenario = churn.Churn(
            where=where,
            uri=f"lineage+sqlite:///{where / 'mlflow.db'}",
            table=where / "customers",
            script=where / "train.py",
        )
        script = churn.TRAIN_SCRIPT.replace("TREES", "20").replace(
            'features = frame[["tenure", "monthly_charges", "support_calls", "contract"]]',
            "features = feature_set.prepare(frame)",
        )
        script = script.replace(
            "import mlflow\n", "import features as feature_set\nimport mlflow\n"
        )
        script = script.replace(
            "random_state=args.seed", "random_state=args.seed if args.seed >= 0 else None"
        )
        scenario.script.write_text(script)
        (where / "features.py").write_text(FEATURES)
        write_deltalake(str(scenario.table), churn.customers())
        scenario.train()
        scenario.train("--seed", "-1")
        yield scenario


def test_a_changed_local_module_is_named_by_check_and_reproduce(with_module):
    module = with_module.where / "features.py"
    recorded = sha256(module)
    files = json.loads(run_of(with_module.uri, "churn", "1").data.tags["lineage.code.files"])
    assert files == {"train.py": sha256(with_module.script), "features.py": recorded}
    assert as_json(with_module.uri, "check", "churn", "1")["ok"] is True
    with edited(module, "return frame[COLUMNS]", "return frame[COLUMNS].assign(tenure=0)"):
        now = sha256(module)
        [problem] = as_json(with_module.uri, "check", "churn", "1", code=1)["problems"]
        assert problem["message"] == (
            f"code: features.py changed since the run (sha256 {recorded[:12]} -> {now[:12]})"
        )
        report = as_json(with_module.uri, "reproduce", "churn", "1", code=1)
    assert f"code: features.py changed since the run (sha256 {recorded[:12]}" in (
        " ".join(report["warnings"])
    )
    assert report["likely_causes"] == [
        f"code: features.py differs (sha256 {recorded[:12]} -> {now[:12]})"
    ]


def test_nothing_differing_is_said_honestly(with_module):
    from lineage_plugin.recovery.mismatch import NOTHING_DIFFERS

    # v2 was trained with an unseeded forest: same code, parameters, data and libraries.
    report = as_json(with_module.uri, "reproduce", "churn", "2", code=1)
    assert report["verified"] is False and report["warnings"] == []
    assert report["likely_causes"] == [NOTHING_DIFFERS]
    assert "nondeterministic" in NOTHING_DIFFERS and "random_state" in NOTHING_DIFFERS


# --- nothing recorded: never OK ----------------------------------------------------------


def test_a_version_trained_in_a_test_process_has_no_code_recorded(lineage_tracking, make_table):
    path = make_table()
    with mlflow.start_run() as active:
        read_pandas(DeltaTable(path))
    client = MlflowClient()
    client.create_registered_model("inproc")
    client.create_model_version("inproc", "s3://bucket/model", run_id=active.info.run_id)
    assert "lineage.code.files" not in client.get_run(active.info.run_id).data.tags
    report = as_json(lineage_tracking, "check", "inproc", "1", code=1)
    assert report["ok"] is False and {p["kind"] for p in report["problems"]} == {"code"}
    problem = report["problems"][0]
    assert problem["message"].startswith("code not recorded: it was trained in a pytest process")
    assert "neither hashed nor re-run" in problem["message"]


def test_a_record_from_before_code_hashing_is_code_not_recorded(scenario):
    run = run_of(scenario.uri, "churn", "1")
    files = run.data.tags["lineage.code.files"]
    with tracking_at(scenario.uri):
        client = MlflowClient()
        client.delete_tag(run.info.run_id, "lineage.code.files")  # as a run recorded before
        try:
            client.create_registered_model("churn-old")
            client.create_model_version("churn-old", run.info.artifact_uri, run.info.run_id)
        finally:
            client.set_tag(run.info.run_id, "lineage.code.files", files)
    [problem] = as_json(scenario.uri, "check", "churn-old", "1", code=1)["problems"]
    assert problem["kind"] == "code"
    assert problem["message"] == (
        f"code not recorded: {scenario.script} was not in a git repository and no file hashes "
        "were recorded (a run recorded before code hashing, or its script was not found)"
    )


def test_diff_names_each_hashed_file_that_differs(scenario):
    """A version trained after train.py was edited: diff shows the file, not a raw dict."""
    recorded = sha256(scenario.script)
    with edited(scenario.script, *FASTER_TREES):
        now = sha256(scenario.script)
        scenario.train()  # registers the next version of churn itself
    latest = scenario.versions()[-1]
    report = as_json(scenario.uri, "diff", "churn", "1", latest)
    assert {"field": "files/train.py", "from": recorded, "to": now} in report["code"]
    text = invoke(scenario.uri, "diff", "churn", "1", latest).output
    assert "files/train.py" in text and "{" not in text.split("Code", 1)[1].split("Params")[0]


# --- likely causes on recorded runs -------------------------------------------------------


def test_likely_causes_name_libraries_re_created_tables_and_what_was_not_recorded(
    lineage_tracking,
):
    from mlflow.entities import Param, RunTag

    from lineage_plugin import tags as T
    from lineage_plugin.records import DeltaInput, Environment
    from lineage_plugin.recovery.mismatch import NOTHING_DIFFERS, likely_causes

    client = MlflowClient()
    experiment = mlflow.get_experiment_by_name("lineage-tests").experiment_id

    def recorded(sklearn: str, table_id: str, code: CodeVersion | None):
        run_id = client.create_run(experiment).info.run_id
        env = Environment(python="3.11.7", platform="linux", packages={"scikit-learn": sklearn})
        read = DeltaInput(
            uri="file:///d/customers",
            version=0,
            engine="deltalake",
            table_id=table_id,
            name="customers",
        )
        tags = {**T.environment_tags(env), T.input_key(0): json.dumps(read.to_dict())}
        tags.update(T.code_tags(code, 8000) if code else {})
        client.log_batch(
            run_id,
            params=[Param("trees", "30")],
            tags=[RunTag(k, v) for k, v in tags.items()],
        )
        return client.get_run(run_id)

    at_commit = CodeVersion(argv=("train.py",), git_commit="a" * 40, git_dirty=False)
    original = recorded("1.5.0", "id-1", at_commit)
    assert likely_causes(original, recorded("1.6.1", "id-2", at_commit)) == (
        "data: customers is another table in the reproduction (table id id-1 -> id-2): it was "
        "re-created",
        "environment: scikit-learn 1.5.0 -> 1.6.1",
    )
    unhashed = CodeVersion(argv=("train.py",))
    assert likely_causes(recorded("1.5.0", "id-1", unhashed), recorded("1.5.0", "id-1", None)) == (
        "code: not compared (the reproduction recorded no code version)",
        f"otherwise {NOTHING_DIFFERS}",
    )
    assert likely_causes(original, object())[0].startswith("could not compare the two runs (")
