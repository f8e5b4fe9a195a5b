"""The data of a table's page: its Delta history, newest first, with who read each version.

A table has a page only when it is in recorded lineage: the page's reference (a Delta table id
or a table name) is looked up in the lineage index, and only the URI recorded there is opened.
No path or URI from a request ever opens a table.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lineage_plugin.ui import visible
from lineage_plugin.ui.writes import written_by

from lineage_plugin.errors import LineageError
from lineage_plugin.queries.history import SERVING_STAGES
from lineage_plugin.queries.impact import UnknownTableError
from lineage_plugin.queries.times import json_output
from lineage_plugin.queries.workspace import Workspace
from lineage_plugin.records import drop_nulls

if TYPE_CHECKING:
    from lineage_plugin.ui.access import ModelAccess

#: Table versions per page.
PER_PAGE = 50


class AmbiguousTableError(LineageError):
    """Several recorded tables answer to one name; the message lists them by id."""


def recorded_table(conn: Any, ref: str) -> dict[str, Any]:
    """The recorded table a page reference names: a Delta table id, else a table name (as a
    run's read recorded it, else a run's write).

    Returns:
        ``uri``, ``name`` and ``table_id`` as the newest read recorded them.

    Raises:
        UnknownTableError: No recorded read names it.
        AmbiguousTableError: A name that several tables have.
    """
    from sqlalchemy import select

    from lineage_plugin.store.index_schema import tables

    row = None
    for edges in (tables()["reads"], tables()["writes"]):  # a table only written has one too
        columns = (edges.c.table_uri, edges.c.table_name, edges.c.table_id)
        newest = (edges.c.run_start.desc(),)
        row = conn.execute(
            select(*columns).where(edges.c.table_id == ref).order_by(*newest).limit(1)
        ).first()
        if row is None:
            found = conn.execute(select(*columns).where(edges.c.table_name == ref).distinct())
            found = found.all()
            uris = {r.table_uri for r in found}
            if len(uris) > 1:
                ids = ", ".join(sorted({r.table_id or r.table_uri for r in found}))
                raise AmbiguousTableError(
                    f"Several recorded tables are named '{ref}'; open one by its table id: {ids}."
                )
            row = found[0] if found else None
        if row is not None:
            break
    if row is None:
        raise UnknownTableError(
            f"No recorded lineage names a table '{ref}'. Tables get a page once a run's read "
            "of them is recorded (or after `mlflow-lineage reindex`)."
        )
    return {"uri": row.table_uri, "name": row.table_name, "table_id": row.table_id}


def _latest_version(uri: str) -> int:
    from lineage_plugin.delta import log as delta_log
    from lineage_plugin.delta.history import commits

    path = delta_log.local_path(uri)
    if path is not None:
        return delta_log.latest_local_version(delta_log.log_dir_of(path))
    return commits(uri)[-1].version


def _readers(
    conn: Any, uri: str, low: int, high: int, access: ModelAccess
) -> dict[int, list[dict[str, Any]]]:
    """Per table version in ``[low, high]``: the runs that read it (those the user may read),
    each with its model versions (those of models the user may read) and whether they are in
    use."""
    from sqlalchemy import select

    from lineage_plugin.store.index_schema import tables

    t = tables()
    reads, runs, mvs, held = t["reads"], t["runs"], t["model_versions"], t["holdings"]
    in_range = (reads.c.table_uri == uri, reads.c.version.between(low, high))
    rows = conn.execute(
        select(reads.c.version, reads.c.restored_from, runs)
        .join(runs, runs.c.run_id == reads.c.run_id)
        .where(*in_range)
        .distinct()
    ).all()
    # The readers as a subquery, not a list of ids: a page's readers can be thousands.
    versions = conn.execute(
        select(mvs.c.name, mvs.c.version, mvs.c.run_id, mvs.c.deleted).where(
            mvs.c.run_id.in_(select(reads.c.run_id).where(*in_range))
        )
    ).all()
    names = sorted({v.name for v in versions})
    holding: dict[tuple[str, int], list[str]] = {}
    for h in conn.execute(select(held).where(held.c.name.in_(names))):
        if h.kind == "alias" or h.label in SERVING_STAGES:
            holding.setdefault((h.name, h.version), []).append(h.label)
    by_run: dict[str, list[dict[str, Any]]] = {}
    for v in versions:
        if not access.may_read(v.name):
            continue
        holds = sorted(holding.get((v.name, v.version), []))
        by_run.setdefault(v.run_id, []).append(
            drop_nulls(
                {
                    "name": v.name,
                    "version": str(v.version),
                    "deleted": bool(v.deleted) or None,
                    "holds": holds,
                    "in_use": bool(holds) and not v.deleted,
                }
            )
        )
    out: dict[int, list[dict[str, Any]]] = {}
    for r in rows:
        if not visible.run_visible({"experiment_id": r.experiment_id}, access):
            continue
        model_versions = by_run.get(r.run_id, [])
        out.setdefault(r.version, []).append(
            _present(  # its model versions have no nulls already
                {
                    "run_id": r.run_id,
                    "run_name": r.run_name,
                    "experiment_id": r.experiment_id,
                    "user": r.user,
                    "start_time": r.start_time,
                    "deleted": bool(r.deleted) or None,
                    "restored_from": r.restored_from,
                    "model_versions": model_versions,
                    "in_use": any(m["in_use"] for m in model_versions),
                }
            )
        )
    for readers in out.values():
        readers.sort(key=lambda r: (not r["in_use"], -(r.get("start_time") or 0)))
    return out


def table_page(
    ws: Workspace, ref: str, *, before: int | None, access: ModelAccess
) -> dict[str, Any]:
    """A page of a recorded table's history, newest first.

    Args:
        ws: The server's stores.
        ref: A Delta table id or a table name from recorded lineage.
        before: Show the versions up to this one (the next page); default the newest.
        access: What the user may read (other models' versions and runs are hidden).

    Returns:
        ``table`` (uri, name, table_id), ``latest``, ``versions`` (each with its commit and
        ``readers``), ``older`` (the ``before`` of the next page, if any) and ``warnings``.

    Raises:
        UnknownTableError: The reference names no recorded table.
        AmbiguousTableError: A name several tables have.
    """
    from lineage_plugin.delta.history import commits

    with ws.require_index().begin() as conn:
        table = recorded_table(conn, ref)
        warnings: list[str] = []
        try:
            latest = _latest_version(table["uri"])
        except LineageError as exc:
            latest = None
            warnings.append(f"The table's log cannot be read now: {exc}")
        top = latest if before is None or latest is None else min(before, latest)
        if top is None:  # the log is unreadable: show what the index knows
            high = conn.execute(_max_read_version(table["uri"])).scalar() or 0
            top = high if before is None else min(before, high)
        low = max(top - PER_PAGE + 1, 0)
        readers = _readers(conn, table["uri"], low, top, access)
        writers = written_by(conn, table["uri"], low, top, access)
    found: dict[int, dict[str, Any]] = {}
    if latest is not None:
        try:
            found = {c.version: c.to_dict() for c in commits(table["uri"], start=low, end=top)}
        except LineageError as exc:
            warnings.append(f"Commits of {table['uri']} are not shown: {exc}")
    # The readers and commits have no nulls already: only these dicts' own values are checked.
    versions = [
        _present(
            {
                "version": v,
                "commit": found.get(v),
                "restore_of": _restore_of(found.get(v)),
                "readers": readers.get(v, []),
                "written_by": writers.get(v),
                "in_use": any(r["in_use"] for r in readers.get(v, [])),
            }
        )
        for v in range(top, low - 1, -1)
    ]
    page = {
        "table": drop_nulls(table),
        "latest": latest,
        "versions": versions,
        "older": low - 1 if low > 0 else None,
        "warnings": warnings or None,
    }
    return json_output(_present(page))


def _present(data: dict[str, Any]) -> dict[str, Any]:
    """``data`` without its ``None`` values (not looking inside them, as ``drop_nulls`` does)."""
    return {k: v for k, v in data.items() if v is not None}


def _max_read_version(uri: str) -> Any:
    from sqlalchemy import func, select

    from lineage_plugin.store.index_schema import tables

    reads = tables()["reads"]
    return select(func.max(reads.c.version)).where(reads.c.table_uri == uri)


def _restore_of(commit: dict[str, Any] | None) -> int | None:
    """The version a RESTORE commit restored (its ``version`` parameter), if it is one."""
    if not commit or (commit.get("operation") or "").upper() != "RESTORE":
        return None
    value = commit.get("parameters", {}).get("version")
    return int(value) if value is not None and str(value).isdigit() else None


def visible_impact(
    uri: str,
    tracking_uri: str | None,
    access: ModelAccess,
    *,
    from_version: int | None,
    to_version: int | None = None,
    include_deleted: bool = False,
) -> dict[str, Any]:
    """``impact URI --from-version N [--to-version M]`` as its JSON, without the model versions
    and runs the user may not read."""
    from lineage_plugin.queries.impact import impact

    report = impact(
        uri,
        from_version=from_version,
        to_version=to_version,
        include_deleted=include_deleted,
        tracking_uri=tracking_uri,
    ).to_dict()
    return visible.impact(report, access)
