"""``reproduce --upstream``: a feature pipeline and a training re-run into scratch tables.

The pipeline is the demo's: ``build_features.py`` reads the raw diabetes table and writes a
feature table, ``train_diabetes.py`` trains on the features. Both run as real child
processes against a real SQLite MLflow store; the scratch tables are real Delta tables.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from deltalake import DeltaTable, write_deltalake
from helpers import register_logged_model, run_python, tracking_at
from test_reproduce import bad_write, invoke, reproduce_json

import lineage_plugin as lp
from lineage_plugin.tracking.reproducing import REPRODUCE_ENV, ReproduceRequest, Scratch

DEMO = Path(__file__).resolve().parents[1] / "demo_notebooks"

pytestmark = pytest.mark.slow


def run_id_of(result) -> str:
    assert "run_id=" in result.stdout, result.stdout + result.stderr[-3000:]
    return result.stdout.rsplit("run_id=", 1)[1].split()[0]


def build_features(where: Path, uri: str) -> str:
    script = str(DEMO / "build_features.py")
    raw, features = str(where / "diabetes"), str(where / "features")
    result = run_python(
        script, "--raw", raw, "--features", features, cwd=where, MLFLOW_TRACKING_URI=uri
    )
    return run_id_of(result)


def train(where: Path, uri: str) -> str:
    script = str(DEMO / "train_diabetes.py")
    result = run_python(
        script, "--table", str(where / "features"), cwd=where, MLFLOW_TRACKING_URI=uri
    )
    return run_id_of(result)


def versions_now(where: Path) -> dict[str, int]:
    return {n: DeltaTable(str(where / n)).version() for n in ("diabetes", "features")}


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory, _migrated_sqlite):
    """raw@0 -> features@0 -> v1; a bad raw write (raw@1) -> features@1 -> v2."""
    from sklearn.datasets import load_diabetes

    where = tmp_path_factory.mktemp("upstream")
    shutil.copyfile(_migrated_sqlite, where / "mlflow.db")
    uri = f"lineage+sqlite:///{where / 'mlflow.db'}"
    data = load_diabetes(as_frame=True).frame.reset_index(names="row_id")
    write_deltalake(str(where / "diabetes"), data)
    runs = {"features1": build_features(where, uri)}
    with tracking_at(uri):
        good = register_logged_model(train(where, uri), "churn")
    bad_write(where)
    runs["features2"] = build_features(where, uri)
    with tracking_at(uri):
        bad = register_logged_model(train(where, uri), "churn")
    assert versions_now(where) == {"diabetes": 1, "features": 1}
    return where, uri, {"good": good, "bad": bad}, runs


def test_the_chain_is_rerun_into_scratch_and_verified(pipeline):
    where, uri, versions, runs = pipeline
    before = {p: os.listdir(where / p / "_delta_log") for p in ("diabetes", "features")}
    report = reproduce_json(uri, "churn", versions["good"], "--upstream")
    assert report["verified"] is True, report
    [step] = report["upstream"]
    assert step["run_id"] == runs["features1"] and step["identical"] is True
    [out] = step["outputs"]
    assert (out["version"], out["scratch_version"], out["identical"]) == (0, 0, True)
    assert out["rows"] == 442 and "scratch" not in report  # a temporary one, removed
    # The step read the recorded raw version; the training read the rebuilt features.
    with tracking_at(uri):
        [raw_read] = lp.get_run_lineage(step["reproduced_run_id"]).inputs
        [written] = lp.get_run_lineage(step["reproduced_run_id"]).outputs
        [read] = lp.get_run_lineage(report["verification"]["reproduced_run_id"]).inputs
    assert (raw_read.uri, raw_read.version) == (f"file://{where / 'diabetes'}", 0)
    assert written.uri == read.uri != f"file://{where / 'features'}" and read.version == 0
    assert not Path(written.uri.removeprefix("file://")).exists()
    # The real tables were not written.
    assert versions_now(where) == {"diabetes": 1, "features": 1}
    assert {p: os.listdir(where / p / "_delta_log") for p in before} == before


def test_a_later_version_starts_its_scratch_table_from_the_version_before(pipeline, tmp_path):
    """features@1 was an overwrite on top of features@0: the scratch table starts from a
    copy of features@0, and the re-run's write lands on it as scratch v1."""
    where, uri, versions, runs = pipeline
    scratch = tmp_path / "rebuilt"
    text = invoke(uri, "reproduce", "churn", versions["bad"], "--upstream", "--scratch", scratch)
    assert "upstream step 1: run " + runs["features2"] in text.output
    assert "-> scratch v1: identical" in text.output and f"kept in {scratch}" in text.output
    [table] = os.listdir(scratch)
    assert DeltaTable(str(scratch / table)).version() == 1  # the copy of v0, then the step
    assert versions_now(where) == {"diabetes": 1, "features": 1}


def test_a_vanished_feature_table_is_rebuilt_from_raw(pipeline):
    """Without the feature table, plain reproduce cannot read its data; --upstream re-makes
    it and compares the predictions on the rebuilt copy."""
    where, uri, versions, _ = pipeline
    aside = where / "features-aside"
    os.rename(where / "features", aside)
    try:
        refused = invoke(uri, "reproduce", "churn", versions["good"], code=2).output
        assert "cannot be read" in refused
        report = reproduce_json(uri, "churn", versions["good"], "--upstream")
        assert report["verified"] is True, report
        [out] = report["upstream"][0]["outputs"]
        assert out.get("identical") is None and "cannot be read" in out["note"]
        assert report["verification"]["rows_compared"] == 442
        assert not (where / "features").exists()  # nothing recreated the real table
    finally:
        os.rename(aside, where / "features")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--upstream", "--no-pin"), "cannot be combined with --no-pin"),
        (("--scratch", "somewhere"), "--scratch goes with --upstream"),
    ],
)
def test_contradictory_options_are_refused(pipeline, args, message):
    _, uri, versions, _ = pipeline
    out = invoke(uri, "reproduce", "churn", versions["good"], *args, code=2).output
    assert message in out


def test_a_scratch_directory_in_use_is_refused_before_anything_runs(pipeline, tmp_path):
    where, uri, versions, _ = pipeline
    (tmp_path / "precious.txt").write_text("keep me")
    args = ("reproduce", "churn", versions["good"], "--upstream", "--scratch", str(tmp_path))
    assert "is not empty" in invoke(uri, *args, code=2).output
    assert os.listdir(tmp_path) == ["precious.txt"]


WRITER = """
import sys
import lineage_plugin
lineage_plugin.autolog()
import pyarrow as pa
from deltalake import write_deltalake
try:
    write_deltalake(sys.argv[1], pa.table({"x": [1, 2]}))
except Exception as exc:
    print(type(exc).__name__, exc)
"""


def test_a_reproducing_child_writes_only_scratch_tables(tmp_path):
    """The redirect, in a real child process with the plugin's hooks: a mapped table's write
    lands in its scratch table; any other is refused and not created."""
    mapped, other, scratch = tmp_path / "mapped", tmp_path / "other", tmp_path / "scratch"
    request = ReproduceRequest(
        token="t",
        model="m",
        version="1",
        scratch={f"file://{mapped}": Scratch(path=str(scratch))},
        confined=True,
    )
    env = {REPRODUCE_ENV: request.to_env(), "MLFLOW_LINEAGE_AUTOLOG": "true"}
    done = run_python("-c", WRITER, str(mapped), cwd=tmp_path, **env)
    assert done.returncode == 0 and not done.stdout.strip(), done.stdout + done.stderr
    assert DeltaTable(str(scratch)).to_pyarrow_table().num_rows == 2 and not mapped.exists()
    refused = run_python("-c", WRITER, str(other), cwd=tmp_path, **env)
    assert refused.stdout.startswith("ReproduceRedirectError"), refused.stdout + refused.stderr
    assert f"refusing to write file://{other}" in refused.stdout and not other.exists()
    json.loads(request.to_env())  # the request round-trips as JSON


def test_restore_upstream_plans_the_raw_table_too(pipeline):
    where, uri, versions, _ = pipeline
    alone = json.loads(
        invoke(uri, "restore", "churn", versions["good"], "--dry-run", "--json").stdout
    )
    plan = json.loads(
        invoke(
            uri, "restore", "churn", versions["good"], "--upstream", "--dry-run", "--json"
        ).stdout
    )
    assert [t["uri"] for t in alone["plan"]["tables"]] == [f"file://{where / 'features'}"]
    assert {
        t["uri"]: (t["current_version"], t["target_version"]) for t in plan["plan"]["tables"]
    } == {
        f"file://{where / 'features'}": (1, 0),
        f"file://{where / 'diabetes'}": (1, 0),
    }
    assert versions_now(where) == {"diabetes": 1, "features": 1}  # a dry run writes nothing


def test_rollback_upstream_restores_both_tables_then_verifies(pipeline):
    """Last in the module: it writes the real tables."""
    where, uri, versions, _ = pipeline
    args = ("rollback", "churn", versions["good"], "--upstream", "--alias", "champion", "--yes")
    out = invoke(uri, *args).output
    assert "verified" in out.lower(), out
    assert versions_now(where) == {"diabetes": 2, "features": 2}
    for name in ("diabetes", "features"):
        restored = DeltaTable(str(where / name)).to_pandas().sort_values("row_id")
        recorded = DeltaTable(str(where / name), version=0).to_pandas().sort_values("row_id")
        assert restored.reset_index(drop=True).equals(recorded.reset_index(drop=True))
    with tracking_at(uri):
        from mlflow import MlflowClient

        champion = MlflowClient().get_model_version_by_alias("churn", "champion")
    assert champion.version not in (versions["good"], versions["bad"])
