"""Environment and code capture: versions, installed distributions, git commit, entry point."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib import metadata

import mlflow
import pytest
from helpers import run_python

import lineage_plugin as lp
from lineage_plugin.records import SCHEMA_VERSION
from lineage_plugin.tracking.environment import installed_distributions

SCRIPT = """
import sys, mlflow, polars as pl
mlflow.set_tracking_uri(sys.argv[1])
with mlflow.start_run() as run:
    pl.read_delta(sys.argv[2])
print(run.info.run_id)
"""


def git(cwd, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, check=True, capture_output=True, text=True
    ).stdout.strip()


@pytest.fixture
def training_repo(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "train.py").write_text(SCRIPT)
    git(repo, "init", "-q")
    git(repo, "-c", "user.email=t@example.com", "-c", "user.name=t", "add", "train.py")
    git(repo, "-c", "user.email=t@example.com", "-c", "user.name=t", "commit", "-qm", "train")
    return repo


def test_training_script_records_code_and_environment(training_repo, sqlite_uri, make_table):
    table = make_table(commits=2)
    uri = f"lineage+{sqlite_uri}"
    result = run_python("train.py", uri, table, cwd=training_repo)
    assert result.returncode == 0, result.stderr
    run_id = result.stdout.strip().splitlines()[-1]
    mlflow.set_tracking_uri(uri)
    try:
        lineage = lp.get_run_lineage(run_id)
        assert lineage.code.git_commit == git(training_repo, "rev-parse", "HEAD")
        assert lineage.code.git_dirty is False
        assert lineage.code.argv == ("train.py", uri, table)
        assert lineage.code.cwd == str(training_repo)
        env = lineage.environment
        assert env.python == ".".join(map(str, sys.version_info[:3]))
        for dist in ("mlflow", "deltalake", "polars", "numpy", "pandas", "scikit-learn"):
            assert env.packages[dist] == metadata.version(dist)
        tags = mlflow.get_run(run_id).data.tags
        assert tags["lineage.env.pkg.mlflow"] == metadata.version("mlflow")
        listing = mlflow.artifacts.load_text(f"runs:/{run_id}/lineage/installed-distributions.txt")
        assert f"deltalake=={metadata.version('deltalake')}" in listing.splitlines()
        manifest = json.loads(mlflow.artifacts.load_text(f"runs:/{run_id}/lineage/manifest.json"))
        assert manifest["schema_version"] == SCHEMA_VERSION == 2
        assert manifest["inputs"][0]["version"] == 1
        assert manifest["code"]["git_commit"] == lineage.code.git_commit
    finally:
        mlflow.set_tracking_uri(None)


def test_script_outside_a_repository_has_no_commit(tmp_path, sqlite_uri, make_table):
    table = make_table()
    (tmp_path / "train.py").write_text(SCRIPT)
    result = run_python(
        "train.py",
        f"lineage+{sqlite_uri}",
        table,
        cwd=tmp_path,
        GIT_CEILING_DIRECTORIES=str(tmp_path),
    )
    assert result.returncode == 0, result.stderr
    mlflow.set_tracking_uri(f"lineage+{sqlite_uri}")
    try:
        code = lp.get_run_lineage(result.stdout.strip().splitlines()[-1]).code
        assert code.git_commit is None and code.argv[0] == "train.py"
    finally:
        mlflow.set_tracking_uri(None)


def test_installed_distributions_lists_everything_sorted():
    lines = installed_distributions().splitlines()
    names = [line.split("==")[0] for line in lines]
    assert names == sorted(names)
    assert "scikit-learn" in names  # canonical names, as pip spells them
    assert f"mlflow=={metadata.version('mlflow')}" in lines
    assert len(lines) > 50


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["train.py", "--alpha", "0.1"], ["train.py", "--alpha", "0.1"]),
        (["train.py", "--password", "hunter2", "--x"], ["train.py", "--password", "***", "--x"]),
        (["train.py", "--api-key=abc", "data"], ["train.py", "--api-key=***", "data"]),
        (
            ["t.py", "--aws_secret_access_key", "s", "--db-token=t"],
            ["t.py", "--aws_secret_access_key", "***", "--db-token=***"],
        ),
        (["t.py", "--token-file", "/x"], ["t.py", "--token-file", "***"]),
    ],
)
def test_secret_options_in_argv_are_redacted(argv, expected):
    from lineage_plugin.tracking.environment import redact_argv

    assert redact_argv(argv) == expected
