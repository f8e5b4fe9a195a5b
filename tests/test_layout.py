"""The tree shows the architecture: layers, no cycles, no private imports, small modules.

The rules are in ``tests/import_graph.py`` (and the README's "How it is built");
``python tests/import_graph.py`` prints the same report for people.
"""

from __future__ import annotations

import textwrap

import import_graph
import pytest


@pytest.fixture(scope="module")
def report() -> import_graph.Report:
    return import_graph.analyse()


def test_no_import_cycles(report):
    assert report.cycles == []


def test_no_module_imports_another_modules_private_names(report):
    assert report.private == []


def test_no_import_climbs_the_layers(report):
    assert report.climbs == []


def test_nothing_inside_imports_the_public_facade(report):
    assert report.facade_imports == []


def test_every_module_sits_in_a_layer(report):
    assert report.unplaced == []


def test_no_module_is_oversized(report):
    assert report.oversized == []


def test_the_checker_sees_each_kind_of_violation(tmp_path, monkeypatch):
    """A tree with one of each fault is reported, so a clean report means a clean tree."""
    pkg = tmp_path / "lineage_plugin"
    for sub in ("delta", "queries", "recovery", "tracking"):
        (pkg / sub).mkdir(parents=True)
        (pkg / sub / "__init__.py").write_text("")
    (tmp_path / "benchmarks").mkdir()
    files = {
        "__init__.py": "",
        "api.py": "",
        "records.py": "",
        "stray.py": "",  # in no layer
        "delta/log.py": "def _helper(): ...\n",
        # climbs: delta imports tracking
        "delta/spark.py": "from lineage_plugin.tracking import hooks\n",
        "tracking/hooks.py": (
            "from lineage_plugin.delta import log\n"
            "from lineage_plugin.delta.log import _helper\n"  # private import
            "log._helper()\n"  # private use through the module
        ),
        # cycle between queries modules, and an import of the facade
        "queries/a.py": "from lineage_plugin.queries import b\nfrom lineage_plugin import api\n",
        "queries/b.py": "from lineage_plugin.queries import a\n",
        "recovery/big.py": "x = 1\n" * (import_graph.MAX_LINES + 1),
    }
    for name, text in files.items():
        (pkg / name).write_text(textwrap.dedent(text))
    (tmp_path / "benchmarks" / "bench_x.py").write_text(
        "from lineage_plugin.delta.log import _helper\n"
    )
    monkeypatch.setattr(import_graph, "ROOT", tmp_path)
    found = import_graph.analyse()
    assert found.cycles == [["lineage_plugin.queries.a", "lineage_plugin.queries.b"]]
    assert len(found.private) == 3
    assert any("benchmarks/bench_x.py" in p for p in found.private)
    assert [c.split(" ")[0] for c in found.climbs] == ["lineage_plugin/delta/spark.py:1"]
    assert found.facade_imports == [
        "lineage_plugin/queries/a.py:2 imports the facade lineage_plugin.api"
    ]
    assert found.unplaced == ["lineage_plugin/stray.py"]
    assert found.oversized == [
        f"lineage_plugin/recovery/big.py: {import_graph.MAX_LINES + 1} lines"
    ]
