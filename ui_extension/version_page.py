"""The data of a model version's page: its record, its ``check``, a diff and its restore plan.

Each part is the report the CLI prints for the same question (``show``, ``check``, ``diff``,
``restore --dry-run``), as its ``--json`` data; the page adds each read's commit (operation,
metrics, user) and the run's experiment, for links.
"""

from __future__ import annotations

from typing import Any

from lineage_plugin.errors import LineageError
from lineage_plugin.queries.times import json_output
from lineage_plugin.queries.workspace import Workspace


def show(uri: str, name: str, version: str, at: int | None = None) -> dict[str, Any]:
    """``show NAME VERSION [--at]`` as its JSON."""
    from lineage_plugin.queries.show import show as query

    return query(name, version, at=at, tracking_uri=uri).to_dict()


def check(uri: str, name: str, version: str) -> dict[str, Any]:
    """``check NAME VERSION`` as its JSON."""
    from lineage_plugin.queries.check import check as query

    return query(name, version, tracking_uri=uri).to_dict()


def diff(uri: str, name: str, version: str, other: str) -> dict[str, Any]:
    """``diff NAME VERSION OTHER`` as its JSON."""
    from lineage_plugin.queries.diff import diff as query

    return query(name, version, other, tracking_uri=uri).to_dict()


def restore_plan(uri: str, name: str, version: str) -> dict[str, Any]:
    """``restore NAME VERSION --dry-run`` as its JSON; nothing is written.

    A plan ``restore`` would refuse is an answer here, not an error: it comes back as the
    CLI's JSON error for it (``error``, ``refusals``, ``plan`` and, when options would let it
    go ahead, ``go_ahead``, the command line).
    """
    import shlex

    from lineage_plugin.errors import RestoreRefusedError
    from lineage_plugin.recovery.restore import restore

    try:
        return json_output(restore(name, version, dry_run=True, tracking_uri=uri).to_dict())
    except RestoreRefusedError as exc:
        data: dict[str, Any] = {"error": str(exc), "refusals": list(exc.refusals)}
        if exc.plan is not None:
            data["plan"] = json_output(exc.plan.to_dict())
        if exc.go_ahead:
            line = ["mlflow-lineage", "restore", name, version, *exc.go_ahead]
            data["go_ahead"] = shlex.join(line)
        return data


def _or_error(fn: Any, *args: Any) -> dict[str, Any]:
    """A part of the page that may fail on its own (e.g. a deleted version has no plan)."""
    try:
        return fn(*args)
    except LineageError as exc:
        return {"error": str(exc)}


def commits_read(record: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The commit behind each table version a record names, keyed ``<uri>@<version>``.

    Only tables named in the recorded lineage are opened (their recorded URI, never a path
    from the request). A commit that cannot be read is left out; ``check`` says why.
    """
    from lineage_plugin.delta.history import commits

    out: dict[str, dict[str, Any]] = {}
    for inp in record.get("run", {}).get("inputs", []):
        key = f"{inp['uri']}@{inp['version']}"
        if key in out:
            continue
        try:
            found = commits(inp["uri"], start=inp["version"], end=inp["version"])
        except LineageError:
            continue
        if found and found[0].available:
            out[key] = json_output(found[0].to_dict())
    return out


def other_versions(ws: Workspace, name: str, version: str) -> list[str]:
    """The model's other versions, newest first (the diff picker's choices)."""
    from sqlalchemy import select

    from lineage_plugin.store.index_schema import tables

    mvs = tables()["model_versions"]
    with ws.require_index().begin() as conn:
        found = conn.execute(
            select(mvs.c.version)
            .where(mvs.c.name == name, mvs.c.deleted == 0)
            .order_by(mvs.c.version.desc())
        ).scalars()
        return [str(v) for v in found if str(v) != version]


def version_page(uri: str, name: str, version: str, other: str | None) -> dict[str, Any]:
    """Everything a model version's page shows.

    Args:
        uri: The server's tracking URI.
        name: Registered model name.
        version: The version number.
        other: A version to diff against, if any.

    Returns:
        ``record`` (``show``), ``commits`` (see :func:`commits_read`), ``experiment_id``,
        ``check``, ``plan`` (``restore --dry-run``), ``versions`` (for the diff picker) and,
        with ``other``, ``diff``. A part that fails alone is ``{"error": message}``.

    Raises:
        LineageError: Unknown model or version (the page cannot be shown at all).
    """
    ws = Workspace(uri)
    record = show(uri, name, version)
    run_id = record.get("run", {}).get("run_id")
    run = ws.run(run_id) if run_id else None
    page = {
        "record": record,
        "commits": commits_read(record),
        "experiment_id": run.info.experiment_id if run is not None else None,
        "check": _or_error(check, uri, name, version),
        "plan": _or_error(restore_plan, uri, name, version),
        "versions": other_versions(ws, name, version),
    }
    if other is not None:
        page["diff"] = _or_error(diff, uri, name, version, other)
        page["other"] = other
    return page
