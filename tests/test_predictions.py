"""Comparing predictions: exact by default, NaN-aware, within a tolerance, clear on misuse."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from deltalake import DeltaTable, write_deltalake

from lineage_plugin.delta.log import normalize_uri
from lineage_plugin.errors import VerificationError
from lineage_plugin.recovery.predictions import compare_predictions, read_table_version


def test_exact_equality_counts_rows_and_the_largest_difference():
    result = compare_predictions([1.0, 2.0, 3.0], np.array([1.0, 2.0 + 1e-12, 5.0]))
    assert (result.rows_compared, result.rows_identical) == (3, 1)
    assert result.max_difference == pytest.approx(2.0) and not result.identical


def test_a_tolerance_accepts_small_differences_only():
    result = compare_predictions([1.0, 2.0, 3.0], [1.0, 2.0 + 1e-12, 5.0], tolerance=1e-9)
    assert result.rows_identical == 2 and result.tolerance == 1e-9


def test_nan_equals_nan_but_not_a_number():
    result = compare_predictions([np.nan, np.nan, 1.0], [np.nan, 0.0, 1.0])
    assert result.rows_identical == 2 and result.max_difference == float("inf")


def test_multi_output_rows_must_match_in_every_column_and_labels_compare_as_values():
    a = pd.DataFrame({"p0": [0.1, 0.2], "p1": [0.9, 0.8]})
    b = pd.DataFrame({"p0": [0.1, 0.3], "p1": [0.9, 0.8]})
    assert compare_predictions(a, b).rows_identical == 1
    labels = compare_predictions(["cat", "dog"], ["cat", "cow"])
    assert labels.rows_identical == 1 and labels.max_difference is None


@pytest.mark.parametrize(
    ("a", "b", "tolerance", "message"),
    [
        ([1.0, 2.0], [1.0], 0.0, "different shapes"),
        ([1.0], [1.0], -1.0, "0 or more"),
    ],
)
def test_misuse_is_a_clear_error(a, b, tolerance, message):
    with pytest.raises(VerificationError, match=message):
        compare_predictions(a, b, tolerance=tolerance)


def test_reads_the_recorded_version_with_the_signature_columns(tmp_path):
    path = str(tmp_path / "t")
    write_deltalake(path, pd.DataFrame({"x": [1.0, 2.0], "y": [3.0, 4.0]}))
    write_deltalake(path, pd.DataFrame({"x": [9.0], "y": [9.0]}), mode="append")
    frame = read_table_version(normalize_uri(path), 0, ["x"])
    assert list(frame.columns) == ["x"] and sorted(frame["x"]) == [1.0, 2.0]
    with pytest.raises(VerificationError, match=r"needs columns \['z'\]"):
        read_table_version(normalize_uri(path), 0, ["x", "z"])
    assert DeltaTable(path).version() == 1
