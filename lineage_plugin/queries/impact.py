"""``impact TABLE [--from-version N] [--to-version M]``: who read a bad table version, and,
transitively, who read what those runs wrote (the graph in :mod:`lineage_plugin.queries.graph`)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from lineage_plugin.errors import LineageError
from lineage_plugin.queries.graph import Walk, downstream, holdings_of, run_columns, run_rows
from lineage_plugin.queries.times import json_output
from lineage_plugin.queries.workspace import Workspace
from lineage_plugin.records import drop_nulls

IN_USE_STAGES = ("Production", "Staging")


class UnknownTableError(LineageError):
    """No run in the lineage index read the table."""


@dataclass(frozen=True, kw_only=True)
class ImpactReport:
    """The runs and model versions that read a table in a version range.

    Attributes:
        table: The table as given.
        uri: Its normalised URI.
        from_version: First version of the range (inclusive), if bounded.
        to_version: Last version of the range (inclusive), if bounded.
        model_versions: Affected model versions, those in use (a stage such as Production or
            Staging, or any alias) first.
        runs: Affected runs, those that produced a model version first, newest first.
        written: The table versions the affected runs wrote, nearest the bad versions first.
        include_deleted: Deleted runs and model versions are listed too (marked
            ``deleted``); by default they are left out, as MLflow's ``ACTIVE_ONLY`` does.
    """

    table: str
    uri: str
    from_version: int | None
    to_version: int | None
    model_versions: tuple[dict[str, Any], ...]
    runs: tuple[dict[str, Any], ...]
    written: tuple[dict[str, Any], ...] = ()
    include_deleted: bool = False

    def to_dict(self) -> dict[str, Any]:
        """The documented JSON of ``impact --json`` (times as ISO strings with ``*_ms``)."""
        return json_output(
            drop_nulls(
                {
                    "table": self.table,
                    "uri": self.uri,
                    "from_version": self.from_version,
                    "to_version": self.to_version,
                    "model_versions": list(self.model_versions),
                    "runs": list(self.runs),
                    "written": list(self.written),
                    "include_deleted": self.include_deleted or None,
                }
            )
        )


def resolve_table(conn: Any, table: str) -> str:
    """The normalised URI of a table given as a path, URI or name (its last path segment).

    Raises:
        UnknownTableError: No indexed run read it, or a name matches several tables.
    """
    from sqlalchemy import select

    from lineage_plugin.delta.log import normalize_uri
    from lineage_plugin.store.index_schema import tables

    reads = tables()["reads"]
    looks_like_path = "://" in table or os.sep in table or os.path.exists(table)
    if looks_like_path:
        uri = normalize_uri(table)
        hit = conn.execute(select(reads.c.run_id).where(reads.c.table_uri == uri).limit(1))
        if hit.first() is not None:
            return uri
        candidates: list[str] = []
    else:
        query = select(reads.c.table_uri).where(reads.c.table_name == table).distinct().limit(20)
        candidates = list(conn.execute(query).scalars())
        if len(candidates) == 1:
            return candidates[0]
        if len(candidates) > 1:
            raise UnknownTableError(
                f"Several tables are named '{table}'; give the path or URI of one of them: "
                + ", ".join(sorted(candidates))
            )
    known = list(conn.execute(select(reads.c.table_uri).distinct().limit(10)).scalars())
    hint = f" Tables in the index include: {', '.join(sorted(known))}." if known else ""
    raise UnknownTableError(
        f"No run in the lineage index read the table '{table}'.{hint} If runs read it before "
        "the index existed, rebuild the index with: mlflow-lineage reindex."
    )


def impact(
    table: str,
    *,
    from_version: int | None = None,
    to_version: int | None = None,
    include_deleted: bool = False,
    tracking_uri: str | None = None,
) -> ImpactReport:
    """Every run and model version that read ``table`` between two versions, transitively.

    The runs that read the versions, the table versions those runs wrote, the runs that read
    those, and so on (one query per hop level; each run reached once, by its shortest path,
    so cycles end), on to the model versions the runs produced and what they hold. Each run
    and model version has its ``depth`` (1: it read the table itself) and its ``path`` from
    the bad version (table version, run, table version, ..., run, model version).

    A read of a restored copy (a Delta RESTORE to version N) counts as a read of version N:
    after a rollback, the runs that read the restored table are not listed as having read the
    bad versions, and a copy of a bad version is listed. Such reads carry ``restored_copies``
    (version read -> version copied).

    Args:
        table: The table's path, URI or name.
        from_version: First version of the range (inclusive); ``None`` for no lower bound.
        to_version: Last version of the range (inclusive); ``None`` for no upper bound.
        include_deleted: Also list deleted runs and deleted model versions (marked
            ``deleted``). A deleted model version is never in use.
        tracking_uri: Where MLflow is (default: MLflow's tracking URI).

    Returns:
        An :class:`ImpactReport`.

    Raises:
        UnknownTableError: No run read the table.
        LineageError: The range is empty (``from_version`` > ``to_version``), or a bound is
            negative or past the table's latest version.

    Example:
        >>> report = impact("/data/diabetes", from_version=3)
        >>> [(m["name"], m["version"], m["aliases"]) for m in report.model_versions]
    """
    from sqlalchemy import and_, func, select

    from lineage_plugin.store.index_schema import tables

    negative = [f"{flag} {v}" for flag, v in _bounds(from_version, to_version) if v < 0]
    if negative:
        raise LineageError(f"Versions start at 0: {' and '.join(negative)} is not a version.")
    if from_version is not None and to_version is not None and from_version > to_version:
        raise LineageError(
            f"--from-version {from_version} is after --to-version {to_version}; swap them."
        )
    t = tables()
    reads, runs, mvs = t["reads"], t["runs"], t["model_versions"]
    with Workspace(tracking_uri).require_index().begin() as conn:
        uri = resolve_table(conn, table)
        _check_bounds(table, uri, from_version, to_version)
        # A restored copy holds the content of the version it copies: that one counts.
        content = func.coalesce(reads.c.restored_from, reads.c.version)
        where = [reads.c.table_uri == uri]
        if from_version is not None:
            # A restored copy is a later version than the one it copies (restored_from <
            # version), so content >= N implies version >= N: the (table_uri, version) index
            # then reads only the range instead of every read of the table.
            where += [content >= from_version, reads.c.version >= from_version]
        if to_version is not None:
            where.append(content <= to_version)
        query = (
            select(
                reads.c.run_id,
                reads.c.table_name,
                reads.c.version,
                reads.c.restored_from,
                *run_columns(),
            )
            .join(runs, runs.c.run_id == reads.c.run_id)
            .outerjoin(mvs, mvs.c.run_id == reads.c.run_id)
            .where(and_(*where))
        )
        rows = conn.execute(query).all()
        walk = Walk()
        for r in rows:
            walk.add_table((uri, int(r.version)), r.table_name, None, 0)
            walk.add_run(r.run_id, (uri, int(r.version)), 1)
        downstream(conn, walk, {r.run_id for r in rows})
        rows += _indirect_rows(conn, walk, {r.run_id for r in rows})
        held = holdings_of(conn, {r.name for r in rows if r.name is not None})
    return _report(table, uri, from_version, to_version, rows, held, include_deleted, walk)


def _bounds(from_version: int | None, to_version: int | None) -> list[tuple[str, int]]:
    """The bounds given, with their option names."""
    bounds = (("--from-version", from_version), ("--to-version", to_version))
    return [(flag, v) for flag, v in bounds if v is not None]


def _check_bounds(table: str, uri: str, from_version: int | None, to_version: int | None) -> None:
    """Refuse a bound past the table's latest version (the table as it is now, when readable)."""
    given = _bounds(from_version, to_version)
    if not given:
        return
    from lineage_plugin.delta.log import resolve

    try:
        latest = resolve(uri).version
    except Exception:  # gone or unreachable: the index still knows who read it
        return
    past = [f"{flag} {v}" for flag, v in given if v > latest]
    if past:
        raise LineageError(
            f"The table '{table}' is at version {latest} (its latest), so {' and '.join(past)} "
            f"names a version it does not have. Give versions from 0 to {latest}."
        )


def _report(
    table: str,
    uri: str,
    from_version: int | None,
    to_version: int | None,
    rows: list[Any],
    held: dict[tuple[str, int], list[tuple[str, str]]],
    include_deleted: bool,
    walk: Walk,
) -> ImpactReport:
    run_info: dict[str, dict[str, Any]] = {}
    model_versions: dict[tuple[str, int], dict[str, Any]] = {}
    hidden: dict[str, dict[str, Any]] = {}  # deleted runs, still the source of live versions
    for r in rows:
        runs_shown = run_info if include_deleted or not r.run_deleted else hidden
        run = runs_shown.setdefault(
            r.run_id,
            {
                "run_id": r.run_id,
                "run_name": r.run_name,
                "experiment_id": r.experiment_id,
                "start_time": r.start_time,
                "_start": r.start_time or 0,
                "user": r.user,
                "table_versions": set(),
                "restored_copies": {},
                "model_versions": set(),
                "deleted": bool(r.run_deleted) or None,
            },
        )
        run["table_versions"].add(r.version)
        if r.restored_from is not None:
            run["restored_copies"][str(r.version)] = r.restored_from
        if r.name is None or (r.deleted and not include_deleted):
            continue
        key = (r.name, r.mv_version)
        run["model_versions"].add(f"{r.name}/{r.mv_version}")
        holding = held.get(key, [])
        stage = next((label for kind, label in holding if kind == "stage"), None)
        aliases = sorted(label for kind, label in holding if kind == "alias")
        mv = model_versions.setdefault(
            key,
            {
                "name": r.name,
                "version": str(r.mv_version),
                "run_id": r.run_id,
                "created": r.created,
                "_created": r.created or 0,
                "stage": stage,
                "aliases": aliases,
                "in_use": not r.deleted and (bool(aliases) or stage in IN_USE_STAGES),
                "deleted": bool(r.deleted) or None,
                "table_versions": set(),
                "restored_copies": {},
            },
        )
        mv["table_versions"].add(r.version)
        if r.restored_from is not None:
            mv["restored_copies"][str(r.version)] = r.restored_from
    ordered_mvs = sorted(
        model_versions.values(), key=lambda m: (not m["in_use"], -m["_created"], m["name"])
    )
    ordered_runs = sorted(
        run_info.values(), key=lambda r: (not r["model_versions"], -r["_start"], r["run_id"])
    )
    for item in (*ordered_mvs, *ordered_runs):
        item.pop("_created", None)
        item.pop("_start", None)
        item["depth"] = walk.run_depth[item["run_id"]]
        item["table_versions"] = sorted(item["table_versions"])
        item["restored_copies"] = item["restored_copies"] or None
        if "model_versions" in item:
            item["model_versions"] = sorted(item["model_versions"])
    return ImpactReport(
        table=table,
        uri=uri,
        from_version=from_version,
        to_version=to_version,
        # paths after drop_nulls: they have no nulls, and are shared between items
        model_versions=tuple(
            {**drop_nulls(m), "path": [*walk.run_path(m["run_id"]), _mv_hop(m)]}
            for m in ordered_mvs
        ),
        runs=tuple({**drop_nulls(r), "path": walk.run_path(r["run_id"])} for r in ordered_runs),
        written=tuple(_written(walk, set(run_info))),
        include_deleted=include_deleted,
    )


def _indirect_rows(conn: Any, walk: Walk, direct: set[str]) -> list[Any]:
    """Rows shaped as the direct reads' for the runs reached through written versions: their
    ``version`` is the version of the bad table their path starts from."""
    from types import SimpleNamespace

    found = []
    for r in run_rows(conn, set(walk.run_depth) - direct):
        origin = walk.run_path(r.run_id)[0]["version"]
        found.append(SimpleNamespace(**r._asdict(), version=origin, restored_from=None))
    return found


def _mv_hop(mv: dict[str, Any]) -> dict[str, Any]:
    return {"kind": "model_version", "name": mv["name"], "version": mv["version"]}


def _written(walk: Walk, shown: set[str]) -> list[dict[str, Any]]:
    """The table versions the affected runs (those shown) wrote, nearest first."""
    found = []
    for node, via in walk.table_parent.items():
        if via is None or via not in shown:
            continue
        found.append(
            {
                "uri": node[0],
                "name": walk.table_names.get(node[0]),
                "version": node[1],
                "run_id": via,
                "depth": walk.table_depth[node],
                "path": walk.table_path(node),
            }
        )
    return sorted(found, key=lambda w: (w["depth"], w["uri"], w["version"]))
