"""Why a reproduction's predictions differ: what the two runs recorded differently.

:func:`likely_causes` compares the original run with the run that retrained it: their
parameters, their code (git commit, the SHA-256 of the entry script and its local modules,
the command-line arguments), the data they read (tables, versions, table ids) and their
environment (Python and library versions). Each difference is one line for people, its kind
first (``parameters: trees 30 -> 5``). When nothing recorded differs, it says so, and that
the training is then probably nondeterministic.

Example:
    >>> from lineage_plugin.recovery.mismatch import likely_causes
    >>> likely_causes(original_run, reproduced_run)
    ('code: train.py differs (sha256 3f2a9c01d4e5 -> 8b7c6d5e4f3a)',)
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from typing import Any

from lineage_plugin import tags as T
from lineage_plugin.records import CodeVersion, DeltaInput, Environment, RunLineage

#: What is said when nothing recorded differs.
NOTHING_DIFFERS = (
    "nothing recorded differs (parameters, code, data read, environment): the training is "
    "probably nondeterministic, e.g. an unseeded random state (random_state=None), "
    "thread-dependent floating-point sums or a GPU; seed it and reproduce again"
)


def likely_causes(
    original: Any,
    reproduced: Any,
    *,
    original_lineage: RunLineage | None = None,
    reproduced_lineage: RunLineage | None = None,
) -> tuple[str, ...]:
    """Name what differs between the original run and its reproduction.

    Args:
        original: The original MLflow ``Run`` (``None`` when the model version has no run).
        reproduced: The MLflow ``Run`` the reproduction recorded.
        original_lineage: The original's lineage record (default: read from its tags).
        reproduced_lineage: The reproduction's lineage record (default: read from its tags).

    Returns:
        One line per difference, its kind first (``parameters``, ``code``, ``data``,
        ``environment``), then what could not be compared; :data:`NOTHING_DIFFERS` when no
        difference was found. Never raises: a failure to compare is itself a line.
    """
    try:
        a = original_lineage or _lineage(original)
        b = reproduced_lineage or _lineage(reproduced)
        causes: list[str] = []
        unknown: list[str] = []
        if original is None:
            unknown.append("parameters: not compared (the original model version has no run)")
        else:
            causes += [f"parameters: {c}" for c in _changes(_params(original), _params(reproduced))]
        _code(a.code if a else None, b.code if b else None, causes, unknown)
        causes += _data(a.inputs if a else (), b.inputs if b else ())
        _environment(a.environment if a else None, b.environment if b else None, causes, unknown)
    except Exception as exc:  # an explanation must never hide the verification's result
        return (f"could not compare the two runs ({type(exc).__name__}: {exc})",)
    if not causes:
        return (*unknown, NOTHING_DIFFERS if not unknown else f"otherwise {NOTHING_DIFFERS}")
    return (*causes, *unknown)


def _lineage(run: Any) -> RunLineage | None:
    return None if run is None else T.run_lineage_from_tags(run.info.run_id, run.data.tags)


def _params(run: Any) -> dict[str, str]:
    return dict(run.data.params) if run is not None else {}


def _changes(left: Mapping[str, str], right: Mapping[str, str]) -> list[str]:
    """``key a -> b`` for a changed value, ``key=a removed`` / ``key=b added`` otherwise."""
    out = []
    for key in sorted(set(left) | set(right)):
        a, b = left.get(key), right.get(key)
        if a == b:
            continue
        if b is None:
            out.append(f"{key}={a} removed in the reproduction")
        elif a is None:
            out.append(f"{key}={b} added in the reproduction")
        else:
            out.append(f"{key} {a} -> {b}")
    return out


def _unrecorded(kind: str, what: str, a: object, b: object, unknown: list[str]) -> bool:
    """Whether a side recorded no ``what``; then ``kind`` is noted as not compared."""
    if a is not None and b is not None:
        return False
    which = "original" if a is None else "reproduction"
    unknown.append(f"{kind}: not compared (the {which} recorded no {what})")
    return True


def _code(
    a: CodeVersion | None, b: CodeVersion | None, causes: list[str], unknown: list[str]
) -> None:
    if _unrecorded("code", "code version", a, b, unknown):
        return
    assert a is not None and b is not None
    if a.git_commit and b.git_commit and a.git_commit != b.git_commit:
        causes.append(f"code: git commit {a.git_commit[:12]} -> {b.git_commit[:12]}")
    if a.files and b.files:
        causes += [f"code: {c}" for c in _file_changes(a.files, b.files)]
    elif not (a.git_commit and b.git_commit):
        blind = [
            w for w, c in (("original", a), ("reproduction", b)) if not (c.git_commit or c.files)
        ]
        unknown.append(
            f"code: not compared (the {' and the '.join(blind)} recorded neither a git commit "
            "nor file hashes)"
            if blind
            else "code: not compared (one run recorded a git commit, the other file hashes)"
        )
    elif b.git_dirty and not a.git_dirty:
        causes.append("code: the reproduction ran with uncommitted changes, the original did not")
    if a.argv[1:] != b.argv[1:]:
        causes.append(
            f"code: command-line arguments {shlex.join(a.argv[1:]) or '(none)'} -> "
            f"{shlex.join(b.argv[1:]) or '(none)'}"
        )


def _file_changes(a: Mapping[str, str], b: Mapping[str, str]) -> list[str]:
    out = []
    for rel in sorted(set(a) | set(b)):
        if rel not in b:
            out.append(f"{rel} was imported by the original only")
        elif rel not in a:
            out.append(f"{rel} was imported by the reproduction only")
        elif a[rel] != b[rel]:
            out.append(f"{rel} differs (sha256 {a[rel][:12]} -> {b[rel][:12]})")
    return out


def _data(a: tuple[DeltaInput, ...], b: tuple[DeltaInput, ...]) -> list[str]:
    left, right = _reads(a), _reads(b)
    out = []
    for uri in sorted(set(left) | set(right)):
        x, y = left.get(uri, []), right.get(uri, [])
        label = (x or y)[0].name or uri
        versions_x = ", ".join(f"v{v}" for v in sorted({i.version for i in x}))
        versions_y = ", ".join(f"v{v}" for v in sorted({i.version for i in y}))
        ids_x = {i.table_id for i in x if i.table_id}
        ids_y = {i.table_id for i in y if i.table_id}
        if not y:
            out.append(f"data: {label} was read by the original only ({versions_x})")
        elif not x:
            out.append(f"data: {label} was read by the reproduction only ({versions_y})")
        elif ids_x and ids_y and ids_x != ids_y:
            out.append(
                f"data: {label} is another table in the reproduction (table id "
                f"{', '.join(sorted(ids_x))} -> {', '.join(sorted(ids_y))}): it was re-created"
            )
        elif versions_x != versions_y:
            out.append(
                f"data: {label} read at {versions_x} by the original, at {versions_y} by the "
                "reproduction"
            )
        elif {_shape(i) for i in x} != {_shape(i) for i in y}:
            out.append(f"data: {label} read with other filters, partitions or columns")
    return out


def _reads(inputs: tuple[DeltaInput, ...]) -> dict[str, list[DeltaInput]]:
    out: dict[str, list[DeltaInput]] = {}
    for inp in inputs:
        out.setdefault(inp.uri, []).append(inp)
    return out


def _shape(inp: DeltaInput) -> tuple[Any, ...]:
    return (inp.filters, inp.partitions, inp.columns, inp.change_data_from)


def _environment(
    a: Environment | None, b: Environment | None, causes: list[str], unknown: list[str]
) -> None:
    if _unrecorded("environment", "environment", a, b, unknown):
        return
    assert a is not None and b is not None
    left = {"python": a.python, **a.packages}
    right = {"python": b.python, **b.packages}
    causes += [f"environment: {c}" for c in _changes(left, right)]
