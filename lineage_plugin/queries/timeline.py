"""``timeline (--model NAME | --table TABLE) [--since T] [--until T]``: one history, in order.

Delta commits, the writes runs recorded (which run wrote which version), runs,
registrations, stage transitions and alias changes, merged in time order. For a model, the
commits shown are every commit of each table from the first to the
last version its runs read, read or not (the bad write no run read is the one to see);
``--table`` shows every commit of one table. Each commit entry says whether a run (of the
model, or any run for ``--table``) read the version it made, and which. Which version held an
alias or stage at a time T is the last ``alias_set`` / ``stage_transition`` entry before T
(``show --at T`` answers it directly).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from lineage_plugin.errors import LineageError
from lineage_plugin.events import MODEL_KINDS
from lineage_plugin.queries.impact import resolve_table
from lineage_plugin.queries.times import iso_utc, json_output
from lineage_plugin.queries.workspace import Workspace
from lineage_plugin.records import drop_nulls

_ORDER = {"commit": 0, "write": 1, "run": 2, "registration": 3}


@dataclass(frozen=True, kw_only=True)
class Timeline:
    """Entries about one model or one table, oldest first.

    Attributes:
        model: The registered model, in ``--model`` mode.
        table: The table's normalised URI, in ``--table`` mode.
        since: Window start (epoch ms, inclusive), if any.
        until: Window end (epoch ms, inclusive), if any.
        entries: Each with ``time`` (UTC ISO), ``time_ms`` and ``kind`` (``commit``,
            ``write``, ``run``, ``registration``, or an event kind); commits also with ``read``
            and ``read_by`` (the runs that read the version the commit made); a ``write`` is a
            recorded run's commit (``run_id``, ``table``, ``table_version``).
        warnings: What could not be read (e.g. a table's log), so the timeline lacks it.
    """

    model: str | None
    table: str | None
    since: int | None
    until: int | None
    entries: tuple[dict[str, Any], ...]
    warnings: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """The documented JSON of ``timeline --json`` (times as ISO strings with ``*_ms``,
        commit metrics as numbers)."""
        return json_output(
            drop_nulls(
                {
                    "model": self.model,
                    "table": self.table,
                    "since": self.since,
                    "until": self.until,
                    "entries": list(self.entries),
                    "warnings": list(self.warnings) or None,
                }
            )
        )


def _window(column: Any, since: int | None, until: int | None) -> list[Any]:
    conditions = []
    if since is not None:
        conditions.append(column >= since)
    if until is not None:
        conditions.append(column <= until)
    return conditions


def _entry(kind: str, time_ms: int | None, **fields: Any) -> dict[str, Any]:
    return drop_nulls({"time": iso_utc(time_ms), "time_ms": time_ms, "kind": kind, **fields})


def timeline(
    *,
    model: str | None = None,
    table: str | None = None,
    since: int | None = None,
    until: int | None = None,
    tracking_uri: str | None = None,
) -> Timeline:
    """The history of a model or of a table.

    Args:
        model: A registered model name (exactly one of ``model`` and ``table``).
        table: A table path, URI or name.
        since: Only entries at or after this time (epoch ms).
        until: Only entries at or before this time (epoch ms).
        tracking_uri: Where MLflow is (default: MLflow's tracking URI).

    Returns:
        A :class:`Timeline`.

    Raises:
        LineageError: Neither or both of ``model`` and ``table``, an empty window, or an
            unknown model or table.

    Example:
        >>> for e in timeline(model="diabetes").entries:
        ...     print(e["time"], e["kind"], e.get("version"))
    """
    if (model is None) == (table is None):
        raise LineageError("Give exactly one of --model NAME and --table TABLE.")
    if since is not None and until is not None and since > until:
        raise LineageError("--since is after --until; swap them.")
    ws = Workspace(tracking_uri)
    if model is not None:
        ws.registered_model(model)
        return _model_timeline(ws, model, since, until)
    return _table_timeline(ws, table, since, until)


def _model_timeline(ws: Workspace, name: str, since: int | None, until: int | None) -> Timeline:
    from sqlalchemy import select

    from lineage_plugin.store.index_schema import tables

    t = tables()
    mvs, runs, reads, events = t["model_versions"], t["runs"], t["reads"], t["events"]
    entries: list[dict[str, Any]] = []
    with ws.require_index().begin() as conn:
        versions = conn.execute(select(mvs).where(mvs.c.name == name)).all()
        run_ids = sorted({v.run_id for v in versions if v.run_id})
        for v in versions:
            if _inside(v.created, since, until):
                entries.append(_registration_entry(v))
        run_rows = conn.execute(
            select(runs).where(
                runs.c.run_id.in_(run_ids), *_window(runs.c.start_time, since, until)
            )
        ).all()
        by_run = {v.run_id: str(v.version) for v in versions}
        for r in run_rows:
            entries.append(_run_entry(r, model=name, version=by_run.get(r.run_id)))
        query = select(events.c.payload).where(
            events.c.name == name, *_window(events.c.time, since, until)
        )
        entries.extend(_event_entry(json.loads(p)) for p in conn.execute(query).scalars())
        read = conn.execute(
            select(reads.c.table_uri, reads.c.version, reads.c.run_id)
            .where(reads.c.run_id.in_(run_ids))
            .distinct()
        ).all()
        pairs = {(uri, version) for uri, version, _ in read}
        # what the model's runs wrote, and who wrote the versions they read
        entries.extend(
            e
            for e in _write_entries(conn, since, until, runs=run_ids, uris={u for u, _ in pairs})
            if e["run_id"] in run_ids or (e["table"], e["table_version"]) in pairs
        )
    readers: dict[str, dict[int, set[str]]] = {}
    for uri, version, run_id in read:
        readers.setdefault(uri, {}).setdefault(version, set()).add(run_id)
    warnings: list[str] = []
    for uri, by_version in sorted(readers.items()):
        span = (min(by_version), max(by_version))
        entries.extend(_commit_entries(uri, since, until, warnings, by_version, span=span))
    return Timeline(
        model=name,
        table=None,
        since=since,
        until=until,
        entries=_sorted(entries),
        warnings=tuple(warnings),
    )


def _table_timeline(ws: Workspace, table: str, since: int | None, until: int | None) -> Timeline:
    from sqlalchemy import select

    from lineage_plugin.store.index_schema import tables

    t = tables()
    mvs, runs, reads, events = t["model_versions"], t["runs"], t["reads"], t["events"]
    entries: list[dict[str, Any]] = []
    with ws.require_index().begin() as conn:
        uri = resolve_table(conn, table)
        rows = conn.execute(
            select(runs, reads.c.version.label("table_version"))
            .join(reads, reads.c.run_id == runs.c.run_id)
            .where(reads.c.table_uri == uri, *_window(reads.c.run_start, since, until))
        ).all()
        versions_read: dict[str, set[int]] = {}
        for r in rows:
            versions_read.setdefault(r.run_id, set()).add(r.table_version)
        seen: set[str] = set()
        for r in rows:
            if r.run_id not in seen:
                seen.add(r.run_id)
                entries.append(_run_entry(r, table_versions=sorted(versions_read[r.run_id])))
        readers = select(reads.c.run_id).where(reads.c.table_uri == uri).distinct()
        mv_rows = conn.execute(
            select(mvs).where(mvs.c.run_id.in_(readers), *_window(mvs.c.created, since, until))
        ).all()
        for v in mv_rows:
            entries.append(_registration_entry(v))
        trained = (events.c.name == mvs.c.name) & (events.c.version == mvs.c.version)
        query = (
            select(events.c.payload)
            .join(mvs, trained)
            .where(mvs.c.run_id.in_(readers), *_window(events.c.time, since, until))
        )
        entries.extend(_event_entry(json.loads(p)) for p in conn.execute(query).scalars())
        every_read = conn.execute(
            select(reads.c.version, reads.c.run_id).where(reads.c.table_uri == uri).distinct()
        ).all()
        entries.extend(_write_entries(conn, since, until, uris={uri}))
    by_version: dict[int, set[str]] = {}
    for version, run_id in every_read:
        by_version.setdefault(version, set()).add(run_id)
    warnings: list[str] = []
    entries.extend(_commit_entries(uri, since, until, warnings, by_version))
    return Timeline(
        model=None,
        table=uri,
        since=since,
        until=until,
        entries=_sorted(entries),
        warnings=tuple(warnings),
    )


def _inside(value: int | None, since: int | None, until: int | None) -> bool:
    if value is None:
        return since is None and until is None
    return (since is None or value >= since) and (until is None or value <= until)


def _registration_entry(v: Any) -> dict[str, Any]:
    return _entry(
        "registration",
        v.created,
        model=v.name,
        version=str(v.version),
        run_id=v.run_id,
        deleted=bool(v.deleted) or None,
    )


def _run_entry(r: Any, **fields: Any) -> dict[str, Any]:
    return _entry(
        "run",
        r.start_time,
        run_id=r.run_id,
        run_name=r.run_name,
        experiment_id=r.experiment_id,
        user=r.user,
        status=r.status,
        deleted=bool(r.deleted) or None,
        **fields,
    )


def _event_entry(event: dict[str, Any]) -> dict[str, Any]:
    return _entry(
        event["kind"],
        event["time"],
        model=event["name"],
        version=None if event["kind"] in MODEL_KINDS else str(event["version"]),
        previous_name=event.get("previous_name"),
        stage=event.get("stage"),
        previous_stage=event.get("previous_stage"),
        alias=event.get("alias"),
        replaced=event.get("replaced"),
        user=event.get("user"),
        cause=event.get("cause"),
        reason=event.get("reason"),
        restores=event.get("restores"),
        verification=event.get("verification"),
        event_id=event["event_id"],
    )


def _write_entries(
    conn: Any,
    since: int | None,
    until: int | None,
    *,
    runs: list[str] | None = None,
    uris: set[str] | None = None,
) -> list[dict[str, Any]]:
    """``write`` entries (a run wrote a table version) from the index: the writes of
    ``runs`` and the writes into ``uris``, at their commit time, in the window."""
    from sqlalchemy import or_, select

    from lineage_plugin.store.index_schema import tables

    t = tables()
    writes, runs_table = t["writes"], t["runs"]
    which = []
    if runs:
        which.append(writes.c.run_id.in_(runs))
    if uris:
        which.append(writes.c.table_uri.in_(sorted(uris)))
    if not which:
        return []
    query = (
        select(writes, runs_table.c.run_name, runs_table.c.experiment_id)
        .outerjoin(runs_table, runs_table.c.run_id == writes.c.run_id)
        .where(or_(*which), *_window(writes.c.commit_timestamp, since, until))
    )
    return [
        _entry(
            "write",
            w.commit_timestamp,
            table=w.table_uri,
            table_version=w.version,
            operation=w.operation,
            engine=w.engine,
            run_id=w.run_id,
            run_name=w.run_name,
            experiment_id=w.experiment_id,  # the UI shows it only to who may read the run
        )
        for w in conn.execute(query)
    ]


def _commit_entries(
    uri: str,
    since: int | None,
    until: int | None,
    warnings: list[str],
    readers: dict[int, set[str]],
    *,
    span: tuple[int, int] | None = None,
) -> list[dict[str, Any]]:
    """The table's commits in the window, each marked with the runs (of ``readers``) that read
    the version it made; with ``span``, only the commits of versions ``span[0]..span[1]``
    (from the first to the last version a model's runs read), read or not."""
    from lineage_plugin.delta.history import commits, commits_in_window

    try:
        if span is None:
            found = commits_in_window(uri, since=since, until=until)
        else:
            found = [
                c
                for c in commits(uri, start=span[0], end=span[1])
                if c.timestamp is not None and _inside(c.timestamp, since, until)
            ]
    except LineageError as exc:
        warnings.append(f"Commits of {uri} are not shown: {exc}")
        return []
    return [
        _entry(
            "commit",
            c.timestamp,
            table=uri,
            table_version=c.version,
            operation=c.operation,
            parameters=c.parameters or None,
            user=c.user,
            metrics=c.metrics or None,
            run_id=c.run_id,
            read=c.version in readers,
            read_by=sorted(readers.get(c.version, ())) or None,
        )
        for c in found
        if c.available
    ]


def _sorted(entries: list[dict[str, Any]]) -> tuple[dict[str, Any], ...]:
    def key(e: dict[str, Any]) -> tuple[int, int, str]:
        return (e.get("time_ms") or 0, _ORDER.get(e["kind"], 4), e.get("event_id", ""))

    return tuple(sorted(entries, key=key))
