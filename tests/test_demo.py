"""The README's main job: the seed demo runs end to end and prints the right lineage."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import run_python

DEMO = Path(__file__).resolve().parents[1] / "demo_notebooks" / "train_two_versions.py"


@pytest.mark.slow
def test_demo_trains_two_versions_on_two_table_versions(tmp_path):
    result = run_python(str(DEMO), "--workdir", str(tmp_path / "demo"), cwd=tmp_path, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    assert "trained on diabetes version 0 (WRITE commit" in out
    assert "trained on diabetes version 1 (UPDATE commit" in out
    assert "Version 1 was trained on diabetes@v0, version 2 on diabetes@v1" in out
    assert (tmp_path / "demo" / "mlflow.db").exists()
    diff = out[out.index("$ mlflow-lineage diff") : out.index("$ mlflow-lineage impact")]
    assert "changed (v0 -> v1)" in diff and "UPDATE" in diff and "num_updated_rows=" in diff
    impact = out[out.index("$ mlflow-lineage impact") :]
    assert "Model versions (1)" in impact
