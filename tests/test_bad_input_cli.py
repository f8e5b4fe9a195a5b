"""Bad input by the thousand, at the CLI (issue 16, point 5): every generated command line
naming nothing that exists, or malformed, is exit 2 with a message and no traceback, and
writes nothing (the MLflow database's rows and the files of the tables are unchanged).

The registry is :mod:`hostile_registry`'s (real SQLite store, real Delta tables).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from bad_input import CASES, FUZZ, durations, names, state, tables, times, versions
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from lineage_plugin.cli import cli


def commands(root: Path) -> st.SearchStrategy[list[str]]:
    table = tables(root)
    sales = str(root / "sales")
    return st.one_of(
        st.tuples(st.sampled_from(["show", "check", "upstream"]), names, st.just("1")),
        st.tuples(st.sampled_from(["show", "check", "upstream"]), st.just("ridge"), versions),
        st.builds(lambda v: ["diff", "ridge", "1", v], versions),
        st.builds(lambda n: ["diff", n, "1", "2"], names),
        st.builds(lambda t: ["show", "ridge", "1", "--at", t], times),
        st.builds(lambda n: ["timeline", "--model", n], names),
        st.builds(lambda t: ["timeline", "--model", "ridge", "--since", t], times),
        st.builds(lambda t: ["timeline", "--table", t], table),
        st.builds(lambda t: ["impact", t], table),
        st.builds(
            lambda v: ["impact", sales, "--from-version", v],
            st.one_of(st.integers(max_value=-1), st.integers(min_value=10**6)).map(str),
        ),
        st.builds(lambda n, v: ["restore", n, v, "--dry-run"], names, st.just("1")),
        st.builds(lambda v: ["restore", "ridge", v, "--yes"], versions),
        st.builds(lambda t: ["vacuum", t, "--dry-run"], table),
        st.builds(lambda t: ["vacuum", t, "--yes", "--retention-hours", "0"], table),
        st.builds(lambda d: ["check", "--all", "--within", d], durations),
        st.builds(lambda n: ["reproduce", n, "1"], names),
    ).map(list)


@pytest.fixture(scope="module")
def cli_case(hostile_registry):
    reg = hostile_registry
    runner = CliRunner()
    runner.invoke(cli, ["show", "ridge", "1", "--tracking-uri", reg["uri"]])  # the index exists
    return reg, runner, state(reg["root"])


def test_generated_bad_command_lines_are_exit_2_and_write_nothing(cli_case):
    reg, runner, before = cli_case
    root = Path(reg["root"])
    seen: list[list[str]] = []

    @FUZZ
    @given(commands(root))
    def case(args: list[str]) -> None:
        seen.append(args)
        result = runner.invoke(cli, [*args, "--tracking-uri", reg["uri"]])
        assert result.exit_code == 2, (args, result.output)
        assert "Traceback" not in result.output, args
        assert result.exception is None or isinstance(result.exception, SystemExit), args
        assert result.stderr.strip() or result.stdout.strip(), args  # it says why
        assert state(root) == before, args

    case()
    assert len(seen) >= CASES
