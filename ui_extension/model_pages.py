"""The data of the models page and of a model's page, read from the lineage index.

Both pages answer from the index (a few indexed queries, whatever the number of versions) and
the registry store of the server they run in; neither opens a Delta table.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from lineage_plugin.events import MODEL_KINDS
from lineage_plugin.events import RegistryEvent as Event
from lineage_plugin.queries.history import SERVING_STAGES, model_events, replay
from lineage_plugin.queries.times import json_output
from lineage_plugin.queries.workspace import Workspace
from lineage_plugin.records import drop_nulls

#: Rows of the history table shown before "show all".
HISTORY_ROWS = 200


@dataclass(frozen=True)
class VersionRow:
    """One model version as a model's page lists it."""

    version: int
    run_id: str | None
    created: int | None
    deleted: bool
    stage: str | None
    aliases: tuple[str, ...]
    tables: tuple[dict[str, Any], ...]

    @property
    def in_use(self) -> bool:
        """Holds an alias or a serving stage (Staging, Production)."""
        return bool(self.aliases) or self.stage in SERVING_STAGES

    def to_dict(self) -> dict[str, Any]:
        """Plain data (times converted as in the CLI's ``--json``)."""
        return json_output(
            drop_nulls(
                {
                    "version": str(self.version),
                    "run_id": self.run_id,
                    "created": self.created,
                    "deleted": self.deleted or None,
                    "stage": self.stage,
                    "aliases": list(self.aliases),
                    "in_use": self.in_use,
                    "tables": list(self.tables),
                }
            )
        )


def _index_tables() -> dict[str, Any]:
    from lineage_plugin.store.index_schema import tables

    return tables()


def holdings(conn: Any, names: Iterable[str]) -> dict[str, dict[int, list[tuple[str, str]]]]:
    """What each version of the named models holds now: ``name -> version -> [(kind, label)]``."""
    from sqlalchemy import select

    h = _index_tables()["holdings"]
    out: dict[str, dict[int, list[tuple[str, str]]]] = {}
    rows = conn.execute(
        select(h.c.name, h.c.version, h.c.kind, h.c.label).where(h.c.name.in_(names))
    )
    for name, version, kind, label in rows:
        out.setdefault(name, {}).setdefault(version, []).append((kind, label))
    return out


def models(ws: Workspace, may_read: Callable[[str], bool], query: str = "") -> list[dict[str, Any]]:
    """Every registered model that the user may read, with its versions in use.

    Args:
        ws: The server's stores.
        may_read: Whether the user may read a registered model.
        query: Only models whose name contains this text (case-insensitive).

    Returns:
        One entry per model, sorted by name: ``name``, ``versions`` (how many, deleted ones
        left out), ``latest`` (the newest version number) and ``in_use`` (each version holding
        an alias or a serving stage, with what it holds).
    """
    from sqlalchemy import func, select

    from lineage_plugin import tags as T

    found = [
        m
        for m in ws.registered_models()
        if not T.is_prompt_version(m.tags or {})
        and query.casefold() in m.name.casefold()
        and may_read(m.name)
    ]
    names = [m.name for m in found]
    mvs = _index_tables()["model_versions"]
    with ws.require_index().begin() as conn:
        held = holdings(conn, names)
        counts = dict(
            conn.execute(
                select(mvs.c.name, func.count())
                .where(mvs.c.name.in_(names), mvs.c.deleted == 0)
                .group_by(mvs.c.name)
            ).all()
        )
        latest = dict(
            conn.execute(
                select(mvs.c.name, func.max(mvs.c.version))
                .where(mvs.c.name.in_(names), mvs.c.deleted == 0)
                .group_by(mvs.c.name)
            ).all()
        )
    out = []
    for m in sorted(found, key=lambda m: m.name.casefold()):
        in_use = [
            {"version": str(v), "holds": sorted(label for _, label in labels)}
            for v, labels in sorted(held.get(m.name, {}).items(), reverse=True)
            if any(k == "alias" or label in SERVING_STAGES for k, label in labels)
        ]
        out.append(
            {
                "name": m.name,
                "description": m.description or None,
                "versions": counts.get(m.name, 0),
                "latest": str(latest[m.name]) if m.name in latest else None,
                "in_use": in_use,
            }
        )
    return [drop_nulls(m) for m in out]


def version_rows(ws: Workspace, name: str) -> list[VersionRow]:
    """Every indexed version of a model, newest first, with its tables and what it holds."""
    from sqlalchemy import select

    t = _index_tables()
    mvs, reads = t["model_versions"], t["reads"]
    with ws.require_index().begin() as conn:
        versions = conn.execute(
            select(mvs).where(mvs.c.name == name).order_by(mvs.c.version.desc())
        ).all()
        run_ids = sorted({v.run_id for v in versions if v.run_id})
        read_rows = conn.execute(
            select(reads).where(reads.c.run_id.in_(run_ids)).order_by(reads.c.position)
        ).all()
        held = holdings(conn, [name]).get(name, {})
    by_run: dict[str, list[dict[str, Any]]] = {}
    for r in read_rows:
        by_run.setdefault(r.run_id, []).append(_read(r))
    rows = []
    for v in versions:
        labels = held.get(v.version, [])
        stages = [label for kind, label in labels if kind == "stage"]
        rows.append(
            VersionRow(
                version=v.version,
                run_id=v.run_id,
                created=v.created,
                deleted=bool(v.deleted),
                stage=stages[0] if stages else None,
                aliases=tuple(sorted(label for kind, label in labels if kind == "alias")),
                tables=tuple(by_run.get(v.run_id or "", ())),
            )
        )
    return rows


def _read(r: Any) -> dict[str, Any]:
    return drop_nulls(
        {
            "uri": r.table_uri,
            "name": r.table_name,
            "table_id": r.table_id,
            "version": r.version,
            "commit_timestamp": r.commit_timestamp,
            "operation": r.operation,
            "context": r.context,
            "restored_from": r.restored_from,
        }
    )


def held_at(events: list[Event], at: int, rows: list[VersionRow]) -> list[dict[str, Any]]:
    """Which version held each alias and stage at ``at`` (epoch ms), with its tables.

    Args:
        events: The model's events, oldest first.
        at: The moment.
        rows: The model's versions (for the tables each was trained on).

    Returns:
        One entry per alias and stage held then (``kind``, ``label``, ``version``, ``tables``),
        aliases first, each sorted by name.
    """
    held = replay([e for e in events if e.time <= at])
    tables = {str(r.version): list(r.tables) for r in rows}
    out = [
        {"kind": "alias", "label": alias, "version": v, "tables": tables.get(v, [])}
        for alias, v in sorted(held.aliases.items())
    ]
    out += [
        {"kind": "stage", "label": stage, "version": v, "tables": tables.get(v, [])}
        for v, stage in sorted(held.stages.items(), key=lambda item: (item[1], int(item[0])))
        if stage != "None"
    ]
    return out


def history_rows(events: list[Event], rows: list[VersionRow]) -> list[dict[str, Any]]:
    """The stage and alias history as table rows, newest first: who, when, what, which data."""
    tables = {str(r.version): list(r.tables) for r in rows}
    out = []
    for e in reversed(events):
        version = None if e.kind in MODEL_KINDS else e.version
        out.append(
            drop_nulls(
                {
                    "event_id": e.event_id,
                    "time": e.time,
                    "kind": e.kind,
                    "version": version,
                    "stage": e.stage,
                    "previous_stage": e.previous_stage,
                    "alias": e.alias,
                    "replaced": list(e.replaced) or None,
                    "user": e.user,
                    "cause": e.cause,
                    "previous_name": e.previous_name,
                    "tables": [t.to_dict() for t in e.tables] or tables.get(version or "", []),
                }
            )
        )
    return out


@dataclass(frozen=True)
class ModelPage:
    """A model's page: its data (the ``/lineage/api/models/<name>`` JSON) and, for the
    picture, its events and versions."""

    data: dict[str, Any]
    events: list[Event]
    rows: list[VersionRow]


def model(ws: Workspace, name: str, at: int | None) -> ModelPage:
    """Everything a model's page shows.

    Args:
        ws: The server's stores.
        name: The registered model.
        at: Epoch ms for the "as of" view, or ``None``.

    Returns:
        A :class:`ModelPage`; its ``data`` has ``name``, ``description``, ``versions`` (newest
        first), ``history`` (newest first) and, with ``at``, ``held_at``.

    Raises:
        UnknownModelError: No such registered model.
    """
    registered = ws.registered_model(name)
    rows = version_rows(ws, name)
    events = model_events(ws, name)
    data: dict[str, Any] = {
        "name": name,
        "description": registered.description or None,
        "at": at,
        "versions": [r.to_dict() for r in rows],
        "history": history_rows(events, rows),
    }
    if at is not None:
        data["held_at"] = held_at(events, at, rows)
    return ModelPage(data=json_output(drop_nulls(data)), events=events, rows=rows)
