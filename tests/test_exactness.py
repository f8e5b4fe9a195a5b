"""The version recorded is the version read, while another process keeps appending."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time

import mlflow
import polars as pl
import pyarrow as pa
import pytest
from deltalake import DeltaTable, write_deltalake
from helpers import read_pandas

import lineage_plugin as lp

pytestmark = [pytest.mark.usefixtures("lineage_tracking"), pytest.mark.slow]

WRITER = textwrap.dedent(
    """
    import sys, time
    import pyarrow as pa
    from deltalake import write_deltalake
    path, seconds = sys.argv[1], float(sys.argv[2])
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        write_deltalake(path, pa.table({"v": [1]}), mode="append")  # one row per version
    """
)


@pytest.fixture
def busy_table(tmp_path):
    """A table whose version v holds exactly v + 1 rows, appended to by another process."""
    path = str(tmp_path / "busy")
    write_deltalake(path, pa.table({"v": [1]}))
    writer = subprocess.Popen([sys.executable, "-c", WRITER, path, "20"])
    deadline = time.monotonic() + 30
    while DeltaTable(path).version() < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    yield path
    writer.terminate()
    writer.wait(timeout=30)


def test_recorded_versions_match_the_rows_read_under_concurrent_appends(busy_table):
    observed: set[int] = set()
    with mlflow.start_run() as run:
        for n in range(12):
            if n % 3 == 0:
                rows = len(read_pandas(DeltaTable(busy_table)))
            elif n % 3 == 1:
                rows = len(pl.read_delta(busy_table))
            else:
                inp = lp.log_delta_input(busy_table)
                rows = len(pl.read_delta(busy_table, version=inp.version))
            observed.add(rows - 1)  # the version whose rows were read
    recorded = {i.version for i in lp.get_run_lineage(run.info.run_id).inputs}
    assert len(observed) > 1, "the writer did not move the table during the test"
    assert recorded == observed


def test_lazy_scan_pins_the_version_it_resolved_at_collect(busy_table):
    with mlflow.start_run() as run:
        frame = pl.scan_delta(busy_table).collect()
    (inp,) = lp.get_run_lineage(run.info.run_id).inputs
    assert inp.version == len(frame) - 1
