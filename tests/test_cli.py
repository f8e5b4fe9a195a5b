"""``mlflow-lineage`` on a real registry: two ridge models, a bad UPDATE between them."""

from __future__ import annotations

import json
import os
import shutil
import time
import warnings

import mlflow
import pyarrow as pa
import pytest
from click.testing import CliRunner
from deltalake import DeltaTable, write_deltalake
from helpers import read_pandas, tracking_at
from mlflow import MlflowClient
from sklearn.linear_model import Ridge

from lineage_plugin.cli import cli


def _train(path: str, alpha: float) -> None:
    with mlflow.start_run():
        mlflow.log_param("alpha", alpha)
        frame = read_pandas(DeltaTable(path))
        model = Ridge(alpha=alpha).fit(frame[["x"]].to_numpy(), frame["y"].to_numpy())
        mlflow.sklearn.log_model(model, name="model", registered_model_name="ridge")


@pytest.fixture(scope="module")
def scenario(tmp_path_factory, _migrated_sqlite):
    """v1 trained on sales@v0 (champion, Production); an UPDATE of 10 rows; v2 on sales@v1."""
    root = tmp_path_factory.mktemp("cli")
    shutil.copyfile(_migrated_sqlite, root / "mlflow.db")
    uri = f"lineage+sqlite:///{root / 'mlflow.db'}"
    path = str(root / "sales")
    write_deltalake(
        path, pa.table({"x": [float(i) for i in range(30)], "y": [2.0 * i for i in range(30)]})
    )
    cwd = os.getcwd()
    os.chdir(root)
    times = {}
    try:
        with tracking_at(uri), warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            mlflow.set_experiment("cli")
            client = MlflowClient()
            _train(path, 1.0)
            client.set_registered_model_alias("ridge", "champion", "1")
            client.transition_model_version_stage("ridge", "1", "Production")
            time.sleep(0.05)
            times["v1_champion"] = int(time.time() * 1000)
            time.sleep(0.05)
            DeltaTable(path).update(predicate="x % 3 = 0", updates={"y": "0.0"})
            _train(path, 0.5)
            client.set_registered_model_alias("ridge", "champion", "2")
            client.transition_model_version_stage("ridge", "2", "Production", True)
            times["v2_champion"] = int(time.time() * 1000)
    finally:
        os.chdir(cwd)
        os.environ.pop("MLFLOW_EXPERIMENT_ID", None)
        mlflow.tracking.fluent._active_experiment_id = None
    return {"uri": uri, "path": path, "root": root, "times": times}


def run(scenario, *args: str, code: int = 0):
    result = CliRunner().invoke(cli, [*args, "--tracking-uri", scenario["uri"]])
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    return result


def as_json(scenario, *args: str, code: int = 0):
    return json.loads(run(scenario, *args, "--json", code=code).stdout)


def test_show_names_the_data_environment_code_and_history(scenario):
    text = run(scenario, "show", "ridge", "1").output
    assert "sales" in text and "WRITE" in text and "scikit-learn==" in text
    assert "None -> Production" in text and "@champion" in text
    data = as_json(scenario, "show", "ridge", "1")
    assert data["run"]["inputs"][0]["version"] == 0
    assert data["stage"] == "Archived" and data["aliases"] == []
    assert [(e["kind"], e["role"], e["version"]) for e in data["history"]] == [
        ("alias_set", "subject", "1"),
        ("stage_transition", "subject", "1"),
        ("alias_set", "replaced", "2"),  # v2 took the champion alias from v1
        ("stage_transition", "replaced", "2"),  # and Production, archiving v1
        ("stage_transition", "subject", "1"),
    ]
    assert "lost @champion to v2" in text
    assert as_json(scenario, "show", "ridge", "@champion")["version"] == "2"
    assert as_json(scenario, "show", "ridge", "production")["version"] == "2"


def test_show_at_answers_which_version_held_an_alias_or_stage_then(scenario):
    t = scenario["times"]
    then = as_json(scenario, "show", "ridge", "champion", "--at", str(t["v1_champion"]))
    assert then["version"] == "1"
    assert then["held_at"] == {"stage": "Production", "aliases": ["champion"]}
    assert (
        as_json(scenario, "show", "ridge", "Production", "--at", str(t["v1_champion"]))["version"]
        == "1"
    )
    assert (
        as_json(scenario, "show", "ridge", "champion", "--at", str(t["v2_champion"]))["version"]
        == "2"
    )
    before = run(scenario, "show", "ridge", "champion", "--at", "2001-01-01", code=2)
    assert "event log" in before.output


def test_diff_puts_the_table_change_first(scenario):
    data = as_json(scenario, "diff", "ridge", "1", "2")
    [table] = data["data"]
    assert (table["name"], table["from"], table["to"], table["change"]) == (
        "sales",
        0,
        1,
        "changed",
    )
    [commit] = table["commits"]
    assert commit["operation"] == "UPDATE" and commit["version"] == 1
    assert commit["metrics"]["num_updated_rows"] == 10  # a number, not the log's text
    assert data["params"] == [{"from": "1.0", "key": "alpha", "to": "0.5"}]
    assert data["identical"] is False
    text = run(scenario, "diff", "ridge", "1", "2").output
    assert text.index("Data") < text.index("Libraries") < text.index("Code") < text.index("Params")
    assert "num_updated_rows=10" in text
    assert as_json(scenario, "diff", "ridge", "1", "1")["identical"] is True


def test_impact_lists_readers_in_use_first(scenario):
    bad = as_json(scenario, "impact", scenario["path"], "--from-version", "1")
    assert [(m["name"], m["version"], m["in_use"]) for m in bad["model_versions"]] == [
        ("ridge", "2", True)
    ]
    assert bad["model_versions"][0]["aliases"] == ["champion"]
    everything = as_json(scenario, "impact", "sales")
    assert [m["version"] for m in everything["model_versions"]] == ["2", "1"]
    assert len(everything["runs"]) == 2
    only_v0 = as_json(scenario, "impact", "sales", "--from-version", "0", "--to-version", "0")
    assert [m["version"] for m in only_v0["model_versions"]] == ["1"]
    assert "in use" in run(scenario, "impact", "sales").output


def test_timeline_merges_commits_runs_registrations_and_events(scenario):
    data = as_json(scenario, "timeline", "--model", "ridge")
    kinds = [e["kind"] for e in data["entries"]]
    assert kinds[0] == "commit" and kinds.count("commit") == 2
    assert kinds.count("run") == 2 and kinds.count("registration") == 2
    assert kinds.count("alias_set") == 2 and kinds.count("stage_transition") == 3
    times = [e["time_ms"] for e in data["entries"]]
    assert times == sorted(times)
    later = as_json(
        scenario, "timeline", "--model", "ridge", "--since", str(scenario["times"]["v1_champion"])
    )
    assert [e["kind"] for e in later["entries"]].count("registration") == 1
    table = as_json(scenario, "timeline", "--table", scenario["path"])
    assert [e["table_version"] for e in table["entries"] if e["kind"] == "commit"] == [0, 1]
    assert [e["table_versions"] for e in table["entries"] if e["kind"] == "run"] == [[0], [1]]


def test_check_finds_the_data_readable_then_gone(scenario, tmp_path):
    # The versions were trained inside this pytest process, whose code can be neither hashed
    # nor re-run: check says "code not recorded" (never OK); the data is what this test is about.
    report = as_json(scenario, "check", "ridge", "1", code=1)
    assert report["tables_checked"] == 1
    # (Plus the git state of the working directory, which depends on the checkout tests run in.)
    assert {p["kind"] for p in report["problems"]} == {"code"}, report["problems"]
    assert report["problems"][0]["message"].startswith("code not recorded: it was trained in a")
    copy = tmp_path / "sales"
    shutil.copytree(scenario["path"], copy)
    try:
        DeltaTable(scenario["path"]).vacuum(
            retention_hours=0, enforce_retention_duration=False, dry_run=False
        )
        failed = as_json(scenario, "check", "ridge", "1", code=1)
        assert failed["ok"] is False
        assert [p["kind"] for p in failed["problems"]][:2] == ["data", "code"]
        assert "sales@v0" in failed["problems"][0]["message"]
        kinds = [p["kind"] for p in as_json(scenario, "check", "ridge", "2", code=1)["problems"]]
        assert set(kinds) == {"code"}  # v2's data (sales@v1, the latest) is untouched by vacuum
    finally:
        shutil.rmtree(scenario["path"])
        shutil.copytree(copy, scenario["path"])


def test_reindex_rebuilds_the_same_answers(scenario):
    before = as_json(scenario, "impact", "sales")
    timeline_before = as_json(scenario, "timeline", "--model", "ridge")
    import sqlalchemy as sa

    engine = sa.create_engine(scenario["uri"].replace("lineage+", ""))
    with engine.begin() as conn:
        for table in ("lineage_reads", "lineage_runs", "lineage_model_versions", "lineage_events"):
            conn.execute(sa.text(f"DELETE FROM {table}"))
    run(scenario, "impact", "sales", code=2)  # the emptied index knows no table
    summary = as_json(scenario, "reindex")
    assert (summary["runs"], summary["model_versions"], summary["events"]) == (2, 2, 5)
    assert as_json(scenario, "impact", "sales") == before
    assert as_json(scenario, "timeline", "--model", "ridge") == timeline_before
    # Through MLflow's API instead of its tables: the same index.
    through_api = as_json(scenario, "reindex", "--source", "api")
    assert {k: v for k, v in through_api.items() if k != "seconds"} == {
        k: v for k, v in summary.items() if k != "seconds"
    }
    assert as_json(scenario, "impact", "sales") == before


def test_reindex_source_sql_refuses_a_backend_without_sql(tmp_path):
    (tmp_path / "mlruns" / ".trash").mkdir(parents=True)  # a file store (the CLI makes none)
    uri = f"lineage+file://{tmp_path / 'mlruns'}"
    result = CliRunner().invoke(cli, ["reindex", "--source", "sql", "--tracking-uri", uri])
    assert result.exit_code == 2, result.output
    assert "source='api'" in result.output and "Traceback" not in result.output


def test_export_packs_lineage_and_openlineage_in_one_archive(scenario, tmp_path):
    from openlineage_spec import problems

    from lineage_plugin.queries.archive import read_export

    target = tmp_path / "ridge.tar.gz"
    summary = as_json(scenario, "export", "--model", "ridge", "-o", str(target))
    assert (summary["runs"], summary["model_versions"], summary["events"]) == (2, 2, 5)
    archive = read_export(target)
    assert [r["type"] for r in archive["lineage"]].count("event") == 5
    versions = sorted(
        int(facets["version"]["datasetVersion"])
        for event in archive["openlineage"]
        for facets in (i["facets"] for i in event["inputs"])
    )
    assert versions == [0, 1]
    # The events live emission sends: valid, typed by the runs' status, one job for both runs.
    assert [problems(e) for e in archive["openlineage"]] == [[], []]
    assert {e["eventType"] for e in archive["openlineage"]} == {"COMPLETE"}
    assert len({(e["job"]["namespace"], e["job"]["name"]) for e in archive["openlineage"]}) == 1
    assert not list(tmp_path.glob(".*tmp"))
    run(scenario, "export", "--model", "nosuch", "-o", str(tmp_path / "x.tar.gz"), code=2)
    assert not (tmp_path / "x.tar.gz").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["show", "nosuch", "1"], "no registered model 'nosuch'"),
        (["show", "ridge", "99"], "has no version 99"),
        (["show", "ridge", "@nosuch"], "has no alias 'nosuch'"),
        (["impact", "nosuch"], "No run in the lineage index read the table 'nosuch'"),
        (["impact", "sales", "--from-version", "3", "--to-version", "1"], "swap them"),
        (["timeline", "--model", "ridge", "--since", "last tuesday"], "Cannot read the time"),
        (["timeline"], "exactly one of --model"),
        (["diff", "ridge", "1", "7"], "has no version 7"),
        (["check", "nosuch", "1"], "no registered model"),
    ],
)
def test_bad_input_is_a_clean_error_with_exit_2(scenario, args, message):
    assert message in run(scenario, *args, code=2).output


@pytest.mark.parametrize(
    "command",
    [
        "show",
        "diff",
        "impact",
        "timeline",
        "check",
        "reindex",
        "export",
        "restore",
        "reproduce",
        "rollback",
    ],
)
def test_every_command_has_help_with_examples(command):
    result = CliRunner().invoke(cli, [command, "--help"])
    assert result.exit_code == 0
    assert "Examples:" in result.output and "--json" in result.output
    assert "--tracking-uri" in result.output


def test_check_reports_library_and_code_drift_with_exit_1(lineage_tracking, make_table):
    """A version trained with another numpy, from a commit that is not checked out."""
    from lineage_plugin import tags as T
    from lineage_plugin.tracking.environment import current_environment

    path = make_table()
    client = MlflowClient()
    with mlflow.start_run() as active:
        read_pandas(DeltaTable(path))  # captured: sales@v0, today's environment and code
    run_id = active.info.run_id
    client.set_tag(run_id, f"{T.PKG_PREFIX}numpy", "0.0.1")
    client.set_tag(run_id, f"{T.CODE_PREFIX}git_commit", "0" * 40)
    client.create_registered_model("drifted")
    client.create_model_version("drifted", "s3://bucket/model", run_id=run_id)
    result = CliRunner().invoke(
        cli, ["check", "drifted", "1", "--json", "--tracking-uri", lineage_tracking]
    )
    assert result.exit_code == 1, result.output
    report = json.loads(result.stdout)
    # Every message of a kind (code has several when the checkout has uncommitted changes).
    messages = {p["kind"]: "" for p in report["problems"]}
    for p in report["problems"]:
        messages[p["kind"]] += p["message"] + "\n"
    now = current_environment().packages["numpy"]
    assert messages["environment"] == f"numpy: recorded 0.0.1, now {now}\n"
    assert "recorded git commit 0000000000000000000000000000000000000000" in messages["code"]
    assert "data" not in messages and report["tables_checked"] == 1
