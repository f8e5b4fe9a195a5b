"""The README's main job: the demo notebook runs end to end and tells the whole story."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import run_python

DEMO = Path(__file__).resolve().parents[1] / "demo_notebooks" / "run_demo.py"


@pytest.mark.slow
def test_demo_notebook_finds_the_bad_write_and_rolls_back_exactly(tmp_path):
    workdir = tmp_path / "demo"
    result = run_python(str(DEMO), "--workdir", str(workdir), cwd=tmp_path, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout
    # The champion was trained on the table as written, version 0.
    assert "version 1 was trained on diabetes@v0 (WRITE commit" in out
    # The bad write filled about a third of the targets with predictions.
    assert "MERGE updated 148 of 442 rows; table version 1" in out
    before = out.split("for row 42 (was ", 1)[1].split(")", 1)[0]
    after = out.split("champion (version 2) predicts ", 1)[1].split(" ", 1)[0]
    assert before != after  # the next model predicts differently
    # diff names the table change: versions, the MERGE commit, the rows it updated.
    diff = out[out.index("$ mlflow-lineage diff") : out.index("$ mlflow-lineage impact")]
    assert "diabetes: changed (v0 -> v1)" in diff
    assert "MERGE" in diff and "num_target_rows_updated=148" in diff
    # rollback: restored, retrained with pinned reads, identical, alias moved.
    assert "Restored diabetes v1 -> v2 (copy of v0)." in out
    assert "Predictions IDENTICAL (exactly): 442 of 442 rows equal" in out
    assert "[4/4] Registered as version 3; pointing @champion at it" in out
    assert f"predicts {before} for row 42; version 1 predicted {before}: identical=True" in out
    assert "v2: RESTORE" in out
    # The executed notebook is kept, with its outputs.
    executed = json.loads((workdir / "rollback_after_a_bad_write.ipynb").read_text())
    assert all(c.get("outputs") is not None for c in executed["cells"] if c["cell_type"] == "code")
    assert not (tmp_path / "mlruns").exists()  # artifacts stay in the demo's directory
