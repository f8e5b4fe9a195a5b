"""``vacuum --engine spark``: Spark's VACUUM has no list of versions to keep, so the plugin
keeps everything from the oldest protected version on (a longer retention).

The table's history is aged for real: its commits' timestamps and its tombstones'
``deletionTimestamp`` are moved back days in the ``_delta_log`` files (as if the commits had
been made then), so a retention in days separates the versions.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import mlflow
import pytest
from helpers import register_reader
from test_vacuum import invoke, overwrite_table, readable

pytestmark = pytest.mark.slow

DAY_MS = 24 * 3600 * 1000
AGE_DAYS = {0: 10, 1: 8, 2: 6}  # v3 is now


def age(path: str) -> None:
    now = int(time.time() * 1000)
    for version, days in AGE_DAYS.items():
        log = Path(path, "_delta_log", f"{version:020d}.json")
        when = now - days * DAY_MS
        lines = []
        for line in log.read_text().splitlines():
            action = json.loads(line)
            for kind, key in (
                ("commitInfo", "timestamp"),
                ("remove", "deletionTimestamp"),
                ("add", "modificationTime"),
            ):
                if kind in action and key in action[kind]:
                    action[kind][key] = when
            lines.append(json.dumps(action))
        log.write_text("\n".join(lines) + "\n")
        os.utime(log, (when / 1000, when / 1000))
    for name in os.listdir(path):  # data files as old as the oldest commit
        if name.endswith(".parquet"):
            then = (now - AGE_DAYS[0] * DAY_MS) / 1000
            os.utime(os.path.join(path, name), (then, then))


@pytest.fixture
def aged(lineage_tracking, tmp_path):
    path = overwrite_table(tmp_path / "sales", versions=4)
    age(path)
    register_reader(path, "ridge", version=1)
    mlflow.MlflowClient().set_registered_model_alias("ridge", "champion", "1")
    return lineage_tracking, path


def test_spark_keeps_everything_from_the_oldest_protected_version_on(spark, aged):
    uri, path = aged
    args = (path, "--retention-hours", "0", "--keep-newest", "0", "--engine", "spark")
    plan = json.loads(invoke(uri, *args, "--dry-run", "--json").stdout)
    assert [k["version"] for k in plan["kept"]] == [1]
    assert plan["files"] == 1  # v0's file only: v2's is needed by nobody but kept
    assert 6 * 24 < plan["spark_retention_hours"] < 7 * 24
    assert any("keeps everything from v1" in n for n in plan["notes"])
    result = invoke(uri, *args, "--yes")
    assert result.exit_code == 0, result.output
    assert "Deleted 1 file(s)." in result.stdout
    assert readable(path, 4) == [1, 2, 3]


def test_deltalake_keeps_exactly_the_protected_versions_of_the_same_history(spark, aged):
    uri, path = aged
    result = invoke(uri, path, "--retention-hours", "0", "--keep-newest", "0", "--yes")
    assert result.exit_code == 0, result.output
    assert readable(path, 4) == [1, 3]
