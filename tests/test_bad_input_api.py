"""Bad input by the thousand, through the Python API (issue 16, point 5): every generated call
naming nothing that exists, or malformed, raises a ``LineageError`` (never another exception)
and writes nothing. The registry is :mod:`hostile_registry`'s.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from bad_input import CASES, FUZZ, files_state, names, state, tables, times, versions
from helpers import tracking_at
from hypothesis import given, settings
from hypothesis import strategies as st

import lineage_plugin as lp
from lineage_plugin.queries.times import parse_time

numbers = st.one_of(st.integers(max_value=-1), st.integers(min_value=10**6, max_value=10**40))


def calls(root: Path) -> st.SearchStrategy[tuple[str, object]]:
    """``(label, call)``: a zero-argument call of the public API with bad input."""
    table = tables(root)
    sales = str(root / "sales")

    def at(name: str, fn, *args, **kwargs):
        return (f"{name}{args}{kwargs}", lambda: fn(*args, **kwargs))

    return st.one_of(
        st.builds(lambda n: at("show", lp.show, n, "1"), names),
        st.builds(lambda v: at("show", lp.show, "ridge", v), versions),
        st.builds(lambda v: at("show", lp.show, "ridge", "1", at=parse_time(v)), times),
        st.builds(lambda v: at("diff", lp.diff, "ridge", "1", v), versions),
        st.builds(lambda n: at("check", lp.check, n, "2"), names),
        st.builds(lambda v: at("upstream", lp.upstream, "ridge", v), versions),
        st.builds(lambda v: at("get_lineage", lp.get_lineage, "ridge", v), versions),
        st.builds(lambda n: at("get_lineage", lp.get_lineage, n, 1), names),
        st.builds(lambda t: at("impact", lp.impact, t), table),
        st.builds(lambda n: at("impact", lp.impact, sales, from_version=n), numbers),
        st.builds(lambda n: at("timeline", lp.timeline, model=n), names),
        st.builds(lambda t: at("timeline", lp.timeline, table=t), table),
        st.builds(lambda n: at("plan_restore", lp.plan_restore, n, "1"), names),
        st.builds(lambda v: at("restore", lp.restore, "ridge", v, confirm=None), versions),
        st.builds(lambda t: at("vacuum", lp.vacuum, t, dry_run=True), table),
        st.builds(
            lambda n: at("check_all", lp.check_all, within_hours=n), st.integers(max_value=-1)
        ),
    )


def recordings(root: Path) -> st.SearchStrategy[tuple[str, object]]:
    """``log_delta_input`` of a bad table or version, in a run: it never breaks the run."""
    sales = str(root / "sales")
    return st.one_of(
        st.builds(lambda t: (f"log_delta_input({t!r})", {"table": t}), tables(root)),
        st.builds(
            lambda v: (f"log_delta_input(version={v})", {"table": sales, "version": v}), numbers
        ),
    )


@pytest.fixture(scope="module")
def api_case(hostile_registry):
    with tracking_at(hostile_registry["uri"]):
        lp.show("ridge", "1")  # the index exists
        yield hostile_registry, state(hostile_registry["root"])


def test_generated_bad_calls_raise_a_lineage_error_and_write_nothing(api_case):
    reg, before = api_case
    root = Path(reg["root"])
    seen: list[str] = []

    @FUZZ
    @given(st.data())
    def case(data: st.DataObject) -> None:
        try:
            label, call = data.draw(calls(root))
        except lp.LineageError:  # the bad time was refused while the call was being built
            seen.append("parse_time")
            return
        seen.append(label)
        with pytest.raises(lp.LineageError) as raised:
            call()
        assert str(raised.value).strip(), label  # it says why
        assert state(root) == before, label

    case()
    assert len(seen) >= CASES


def test_generated_bad_recordings_warn_and_record_nothing(api_case):
    """Inside one run (made before, so the run itself is not the write), each bad
    ``log_delta_input`` warns with the reason and returns None; the run gets no input."""
    import mlflow

    reg, _ = api_case
    root = Path(reg["root"])
    data = (reg["sales"], reg["feats"], reg["unrecorded"])
    before = files_state(*data)
    seen: list[str] = []
    with mlflow.start_run() as run:

        @settings(FUZZ, max_examples=300)  # beside the 1,000 calls above
        @given(recordings(root))
        def case(drawn: tuple[str, dict]) -> None:
            label, kwargs = drawn
            seen.append(label)
            with pytest.warns(lp.LineageWarning) as warned:
                assert lp.log_delta_input(**kwargs) is None, label
            assert any(str(w.message).strip() for w in warned), label
            assert files_state(*data) == before, label

        case()
    assert len(seen) >= 300
    recorded = mlflow.MlflowClient().get_run(run.info.run_id)
    assert recorded.inputs.dataset_inputs == []
    assert not [k for k in recorded.data.tags if k.startswith("lineage.input.")]
    assert recorded.data.tags["lineage.status"] == "incomplete"  # honest: reads were missed
