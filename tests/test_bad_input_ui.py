"""Bad input by the thousand, at the registry UI's JSON API (issue 16, point 5): every
generated request naming nothing that exists, or malformed, is a 400 or a 404 with a JSON
error and no traceback, and writes nothing. MLflow's Flask app with the lineage pages, in this
process, on :mod:`hostile_registry`'s registry.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote, urlencode

import pytest
from bad_input import CASES, FUZZ, names, state, tables, times, versions
from hypothesis import given
from hypothesis import strategies as st

segment = st.one_of(names, st.sampled_from(["%2e%2e", "..%2F..%2Fetc", "%00", "%E2%80%AE"]))


def _path(text: str) -> str:
    return quote(text, safe="%") if "%" in text else quote(text, safe="")


def requests(root: Path) -> st.SearchStrategy[str]:
    """Paths under ``/lineage/api/``, each with bad input."""
    table = tables(root).map(_path)
    sales = quote(str(root / "sales"), safe="")
    bad_int = st.one_of(
        st.integers(max_value=-1).map(str),
        st.sampled_from(["1.5", "x", "0x10", "1e9", "١", "--1", "9" * 400]),
    )
    return st.one_of(
        segment.map(lambda n: f"models/{_path(n)}"),
        segment.map(lambda n: f"models/{_path(n)}/versions/1"),
        versions.map(lambda v: f"models/ridge/versions/{_path(v)}"),
        versions.map(lambda v: f"models/ridge/versions/{_path(v)}/check"),
        versions.map(lambda v: f"models/ridge/versions/1/diff/{_path(v)}"),
        versions.map(lambda v: f"models/ridge/versions/{_path(v)}/restore-plan"),
        segment.map(lambda n: f"models/{_path(n)}/timeline"),
        times.map(lambda t: f"models/ridge?{urlencode({'at': t})}"),
        times.map(lambda t: f"models/ridge/versions/1?{urlencode({'at': t})}"),
        times.map(lambda t: f"models/ridge/timeline?{urlencode({'since': t})}"),
        table.map(lambda t: f"tables/{t}"),
        table.map(lambda t: f"tables/{t}/impact"),
        table.map(lambda t: f"tables/{t}/timeline"),
        bad_int.map(lambda n: f"tables/{sales}/impact?{urlencode({'from_version': n})}"),
        bad_int.map(lambda n: f"tables/{sales}?{urlencode({'before': n})}"),
        times.map(lambda t: f"tables/{sales}/timeline?{urlencode({'until': t})}"),
    )


@pytest.fixture(scope="module")
def ui_case(hostile_registry):
    reg = hostile_registry
    assert reg["client"].get("/lineage/api/models/ridge/versions/1").status_code == 200
    return reg, state(reg["root"])


def test_generated_bad_requests_are_400_or_404_and_write_nothing(ui_case):
    reg, before = ui_case
    root = Path(reg["root"])
    client = reg["client"]
    seen: list[str] = []

    @FUZZ
    @given(requests(root))
    def case(path: str) -> None:
        seen.append(path)
        # Werkzeug redirects a path with an empty segment (//) to the merged one: followed,
        # it must stay in the API and end as a 400 or a 404 too.
        response = client.get(f"/lineage/api/{path}", follow_redirects=True)
        assert response.request.path.startswith("/lineage/api/"), path
        body = response.get_data(as_text=True)
        assert response.status_code in (400, 404), (path, response.status_code, body[:300])
        assert "Traceback" not in body, path
        if response.mimetype == "application/json":
            assert response.get_json()["error"], path  # it says why
        assert state(root) == before, path

    case()
    assert len(seen) >= CASES
