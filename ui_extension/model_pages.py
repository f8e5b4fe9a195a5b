"""The data of the models page and of a model's page, read from the lineage index.

Both pages answer from the index (a few indexed queries, whatever the number of versions) and
the registry store of the server they run in; neither opens a Delta table.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from lineage_plugin.events import MODEL_KINDS, NO_STAGE
from lineage_plugin.events import RegistryEvent as Event
from lineage_plugin.queries.history import SERVING_STAGES, Held, model_events, replay
from lineage_plugin.queries.times import json_output
from lineage_plugin.queries.workspace import Workspace
from lineage_plugin.records import drop_nulls

#: Rows of the history table shown before "show all".
HISTORY_ROWS = 200
#: The newest versions a model's page lists and draws before "show all" (older versions in use
#: are listed too). Each adds a table row and about 8 bars to the picture (where the versions
#: Archived one after the other stack up, a row each).
VERSION_ROWS = 25


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
            if _in_use(labels)
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


def _in_use(labels: Iterable[tuple[str, str]]) -> bool:
    """Whether ``(kind, label)`` holdings put a version in use (an alias or a serving stage)."""
    return any(kind == "alias" or label in SERVING_STAGES for kind, label in labels)


def version_rows(
    ws: Workspace, name: str, *, newest: int | None = None
) -> tuple[list[VersionRow], int]:
    """The indexed versions of a model, newest first, with their tables and what they hold.

    Args:
        ws: The server's stores.
        name: The registered model.
        newest: Only the newest this many, plus every older version in use; ``None``: every
            version.

    Returns:
        The rows, and how many versions were left out.
    """
    from sqlalchemy import select

    mvs = _index_tables()["model_versions"]
    with ws.require_index().begin() as conn:
        versions = conn.execute(
            select(mvs).where(mvs.c.name == name).order_by(mvs.c.version.desc())
        ).all()
        held = holdings(conn, [name]).get(name, {})
        total = len(versions)
        if newest is not None:
            keep = {v for v, labels in held.items() if _in_use(labels)}
            versions = [v for i, v in enumerate(versions) if i < newest or v.version in keep]
        by_run = _reads_by_run(conn, {v.run_id for v in versions if v.run_id})
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
    return rows, total - len(rows)


class EventMark(NamedTuple):
    """An event as the picture and the "as of" replay read it: no user, data or cause."""

    event_id: str
    kind: str
    version: str
    time: int
    stage: str | None
    alias: str | None


def event_marks(ws: Workspace, name: str) -> list[EventMark]:
    """The model's events, oldest first, from the index's columns (no payload is parsed)."""
    from operator import itemgetter

    from sqlalchemy import String, cast, select

    e = _index_tables()["events"]
    version = cast(e.c.version, String)  # as events have it
    query = select(e.c.event_id, e.c.kind, version, e.c.time, e.c.stage, e.c.alias)
    with ws.require_index().begin() as conn:
        rows = conn.execute(query.where(e.c.name == name)).all()
    # Tuples, not the rows: reading a row's fields by name costs 15 times more, and the
    # picture and the replay read each event's several times. Sorted here by id: the database
    # would sort them in a temporary B-tree.
    marks = list(map(EventMark._make, rows))
    marks.sort(key=itemgetter(0))
    return marks


def _reads_by_run(conn: Any, run_ids: Iterable[str]) -> dict[str, list[dict[str, Any]]]:
    """The tables each of these runs read (run id -> reads, in the order read)."""
    from sqlalchemy import select

    reads = _index_tables()["reads"]
    by_run: dict[str, list[dict[str, Any]]] = {}
    query = select(reads).where(reads.c.run_id.in_(sorted(run_ids))).order_by(reads.c.position)
    for r in conn.execute(query):
        by_run.setdefault(r.run_id, []).append(_read(r))
    return by_run


def trained_on(
    ws: Workspace, name: str, versions: Iterable[str]
) -> dict[str, list[dict[str, Any]]]:
    """The tables each of these versions of a model was trained on (version -> reads)."""
    from sqlalchemy import select

    mvs = _index_tables()["model_versions"]
    wanted = sorted({int(v) for v in versions})
    with ws.require_index().begin() as conn:
        pairs = conn.execute(
            select(mvs.c.version, mvs.c.run_id).where(mvs.c.name == name, mvs.c.version.in_(wanted))
        ).all()
        by_run = _reads_by_run(conn, {run for _, run in pairs if run})
    return {str(v): by_run.get(run or "", []) for v, run in pairs}


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


def held_at(held: Held, tables: Mapping[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Which version held each alias and stage at a moment, with its tables.

    Args:
        held: What the model's versions held then (:func:`replay` of the events up to then).
        tables: Version -> the tables it was trained on.

    Returns:
        One entry per alias and stage held then (``kind``, ``label``, ``version``, ``tables``),
        aliases first, each sorted by name.
    """
    out = [
        {"kind": "alias", "label": alias, "version": v, "tables": tables.get(v, [])}
        for alias, v in sorted(held.aliases.items())
    ]
    out += [
        {"kind": "stage", "label": stage, "version": v, "tables": tables.get(v, [])}
        for v, stage in sorted(held.stages.items(), key=lambda item: (item[1], int(item[0])))
        if stage != NO_STAGE
    ]
    return out


def history_rows(
    events: list[Event], tables: Mapping[str, list[dict[str, Any]]]
) -> list[dict[str, Any]]:
    """The stage and alias history as table rows, newest first: who, when, what, which data
    (the event's, else the version's from ``tables``)."""
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
    """A model's page: its data (the ``/lineage/api/models/<name>`` JSON when nothing is left
    out) and, for the picture, its events and the versions listed.

    Attributes:
        data: What the page shows.
        events: Every event of the model, oldest first (as :class:`EventMark` when the history
            shown is limited).
        rows: The versions listed.
        hidden_versions: Versions left out of ``rows``.
        hidden_history: Events left out of ``data["history"]``.
        since: Where the picture starts: the registration of the oldest of the newest versions
            listed, when versions are left out; else ``None`` (from the first event).
    """

    data: dict[str, Any]
    events: list[Event] | list[EventMark]
    rows: list[VersionRow]
    hidden_versions: int = 0
    hidden_history: int = 0
    since: int | None = None


def model(
    ws: Workspace,
    name: str,
    at: int | None,
    *,
    registered: Any | None = None,
    newest: int | None = None,
    history: int | None = None,
) -> ModelPage:
    """Everything a model's page shows.

    Args:
        ws: The server's stores.
        name: The registered model.
        at: Epoch ms for the "as of" view, or ``None``.
        registered: MLflow's ``RegisteredModel``, when the caller has read it already.
        newest: List only the newest this many versions, plus those in use now; ``None``: all.
        history: Only the newest this many history rows; ``None``: all.

    Returns:
        A :class:`ModelPage`; its ``data`` has ``name``, ``description``, ``versions`` (newest
        first), ``history`` (newest first) and, with ``at``, ``held_at``.

    Raises:
        UnknownModelError: No such registered model.
    """
    registered = registered or ws.registered_model(name)
    rows, hidden_versions = version_rows(ws, name, newest=newest)
    if history is None:
        events = shown = model_events(ws, name)
    else:
        events = event_marks(ws, name)
        shown = model_events(ws, name, ids=[e.event_id for e in events[-history:]])
    tables = {str(r.version): list(r.tables) for r in rows}
    # Each part is put in its JSON form once (the rows are already).
    head = {"name": name, "description": registered.description or None, "at": at}
    data: dict[str, Any] = {
        **json_output(drop_nulls(head)),
        "versions": [r.to_dict() for r in rows],
        "history": json_output(history_rows(shown, tables)),
    }
    if at is not None:
        then = replay([e for e in events if e.time <= at])
        # The data of the versions in use then (an Archived version's is not shown on the page;
        # with every version listed, every version's is known).
        in_use = {
            *then.aliases.values(),
            *(v for v, s in then.stages.items() if s in SERVING_STAGES),
        }
        missing = in_use - tables.keys()
        if missing:
            tables = {**tables, **trained_on(ws, name, missing)}
        data["held_at"] = json_output(held_at(then, tables))
    since = None
    if hidden_versions and newest:
        since = min((r.created for r in rows[:newest] if r.created is not None), default=None)
    return ModelPage(
        data=data,
        events=events,
        rows=rows,
        hidden_versions=hidden_versions,
        hidden_history=len(events) - len(shown),
        since=since,
    )
