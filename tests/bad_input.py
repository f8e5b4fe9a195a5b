"""Hypothesis strategies of bad input, and the check that nothing was written.

Bad names, versions, times and table references as a hostile or careless user types them:
path traversal (``../``, percent-encoded), ``file://`` tricks, NUL bytes, very long and
non-ASCII text, negative and huge numbers. Each strategy only makes values that cannot name
anything in :mod:`hostile_registry`'s registry, so each must be refused.
"""

from __future__ import annotations

import hashlib
import os
import re
import sqlite3
from contextlib import closing
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

#: At least this many generated cases per suite (issue 16, point 5).
CASES = 1000
FUZZ = settings(
    max_examples=CASES,
    deadline=None,
    derandomize=True,  # the same cases on every run: a failure in CI is a failure here
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    database=None,
)

TRICKS = (
    "../../etc/passwd",
    "..%2f..%2fetc%2fpasswd",
    "%2e%2e%2f%2e%2e%2fetc",
    "file:///etc/passwd",
    "file://localhost/etc",
    "file:/etc",
    "file:////etc",
    "/etc",
    "/etc/../etc",
    "~root/.ssh",
    "s3://",
    "://",
    "http://127.0.0.1:1/x",
    "nul\x00byte",
    "\x00",
    " ",
    "\t\n",
    "..",
    "%00",
    "ridge\x00",
    "@",
    "@@nosuch",
    "ri dge",
    "RIDGE/..",
    "𝔯𝔦𝔡𝔤𝔢",
    "модель",
    "名前",
    "x" * 300,
    "y" * 5000,
)
_KNOWN_NAMES = {"ridge"}
_RESOLVABLE = re.compile(
    r"^\s*@*\s*(0*[12]|champion|production|staging|none|archived|latest)\s*$", re.IGNORECASE
)


def _not_a_model(text: str) -> bool:
    from hostile_registry import EVIL_MODEL

    return text.strip() not in _KNOWN_NAMES and text.strip() != EVIL_MODEL.strip()


def _not_a_version(text: str) -> bool:
    try:
        if int(text.strip().lstrip("@").strip()) in (1, 2):
            return False
    except ValueError:
        pass
    return not _RESOLVABLE.match(text)


_text = st.text(st.characters(codec="utf-8"), min_size=1, max_size=60)
names = st.one_of(st.sampled_from(TRICKS), _text).filter(_not_a_model)
versions = st.one_of(
    st.integers(max_value=-1).map(str),
    st.integers(min_value=3, max_value=10**40).map(str),
    st.sampled_from(["1.5", "NaN", "inf", "-0x1", "1e3", "v1", "@nosuch", "Production\x00", "1 2"]),
    st.sampled_from(TRICKS),
    _text,
).filter(_not_a_version)
times = st.one_of(
    st.sampled_from(
        [
            "yesterdayish",
            "2026-13-45",
            "2026-02-30T25:61",
            "99999999999999999999999",
            "-5d",
            "7x",
            "now now",
            "1e10",
            "\x00",
            "T",
            "2026-11-17T09:30+99:00",
        ]
    ),
    st.text(st.characters(codec="utf-8", exclude_characters="0123456789"), min_size=1, max_size=30),
).filter(lambda t: t.strip().lower() not in ("now", "today", "yesterday"))
durations = st.one_of(
    st.sampled_from(["soon", "-1d", "3 days", "1.5h", "3d ago", "\x00", "d", "7y"]),
    st.text(st.characters(codec="utf-8"), min_size=1, max_size=20),
).filter(lambda t: re.fullmatch(r"\s*(0|\d+\s*[smhdw])\s*", t.lower()) is None)


def tables(root: Path) -> st.SearchStrategy[str]:
    """Table references that are no table the lineage index knows."""
    missing = st.text(
        st.characters(codec="utf-8", exclude_characters="/\x00"), min_size=1, max_size=40
    )
    return st.one_of(
        st.sampled_from(TRICKS),
        missing.map(lambda n: str(root / "missing" / n)),
        missing.map(lambda n: f"file://{root}/../{n}"),
        _text,
    ).filter(lambda t: t.strip() not in ("sales", "ridge"))


def files_state(*roots: Path | str) -> str:
    """A digest of every file (name and size) under ``roots``, but MLflow's database."""
    digest = hashlib.sha256()
    for root in roots:
        for folder, dirs, files in sorted(os.walk(root)):
            dirs.sort()
            for name in sorted(files):
                if not name.startswith("mlflow.db"):
                    size = os.lstat(os.path.join(folder, name)).st_size
                    digest.update(f"{folder}/{name}:{size}".encode())
    return digest.hexdigest()


def state(root: Path) -> str:
    """A digest of everything a refused request must leave alone: the rows of every table of
    the MLflow database in ``root``, and every file under ``root``."""
    digest = hashlib.sha256()
    with closing(sqlite3.connect(root / "mlflow.db")) as con:
        for (table,) in con.execute("SELECT name FROM sqlite_master WHERE type='table' ORDER BY 1"):
            for row in con.execute(f'SELECT * FROM "{table}" ORDER BY 1'):  # noqa: S608
                digest.update(repr(row).encode())
    digest.update(files_state(root).encode())
    return digest.hexdigest()
