"""The lineage index through MLflow's lifecycle: deleted, restored and purged runs and
experiments; deleted, renamed and removed registered models.

Each function changes the index the way ``reindex`` would find it after the same MLflow call,
in one transaction.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import TYPE_CHECKING

from lineage_plugin.events import RegistryEvent
from lineage_plugin.store.index_schema import tables

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from lineage_plugin.store.index import LineageIndex


def mark_runs(index: LineageIndex, run_ids: Iterable[str], *, deleted: bool) -> None:
    """Mark runs soft-deleted (or restored)."""
    runs = tables()["runs"]
    ids = list(run_ids)
    if not ids:
        return
    with index.begin() as c:
        for start in range(0, len(ids), 500):
            batch = ids[start : start + 500]
            c.execute(runs.update().where(runs.c.run_id.in_(batch)).values(deleted=int(deleted)))


def update_run(
    index: LineageIndex, run_id: str, *, run_name: str | None, end_time: int | None
) -> None:
    """Change an indexed run's name and end time (nothing when the run is not indexed)."""
    runs = tables()["runs"]
    with index.begin() as c:
        c.execute(
            runs.update()
            .where(runs.c.run_id == run_id)
            .values(run_name=run_name, end_time=end_time)
        )


def rename_run(index: LineageIndex, run_id: str, name: str) -> None:
    """Change an indexed run's name (nothing when the run is not indexed)."""
    runs = tables()["runs"]
    with index.begin() as c:
        c.execute(runs.update().where(runs.c.run_id == run_id).values(run_name=name))


def mark_experiment(index: LineageIndex, experiment_id: str, *, deleted: bool) -> None:
    """Mark every run of an experiment soft-deleted (or restored)."""
    runs = tables()["runs"]
    with index.begin() as c:
        c.execute(
            runs.update()
            .where(runs.c.experiment_id == str(experiment_id))
            .values(deleted=int(deleted))
        )


def forget_runs(index: LineageIndex, run_ids: Iterable[str]) -> None:
    """Remove runs that MLflow removed for good, with the table versions they read and wrote."""
    t = tables()
    ids = list(run_ids)
    with index.begin() as c:
        for start in range(0, len(ids), 500):
            batch = ids[start : start + 500]
            for name in ("reads", "writes", "runs"):
                c.execute(t[name].delete().where(t[name].c.run_id.in_(batch)))


def forget_experiment(index: LineageIndex, experiment_id: str) -> None:
    """Remove the runs of an experiment that MLflow removed for good."""
    from sqlalchemy import select

    runs = tables()["runs"]
    with index.begin() as c:
        query = select(runs.c.run_id).where(runs.c.experiment_id == str(experiment_id))
        ids = list(c.execute(query).scalars())
    forget_runs(index, ids)


def rename_model(index: LineageIndex, name: str, new_name: str) -> None:
    """Move a registered model's versions, events and holdings to its new name.

    Event payloads name the model too: they are rewritten (one statement for all), so every
    query sees one name.
    """
    from sqlalchemy import bindparam, select

    t = tables()
    events = t["events"]
    with index.begin() as c:
        for key in ("model_versions", "holdings"):
            table = t[key]
            c.execute(table.update().where(table.c.name == name).values(name=new_name))
        rows = [
            {
                "b_version": version,
                "b_id": event_id,
                "b_payload": RegistryEvent.from_dict({**json.loads(p), "name": new_name}).to_json(),
            }
            for version, event_id, p in c.execute(
                select(events.c.version, events.c.event_id, events.c.payload).where(
                    events.c.name == name
                )
            )
        ]
        if rows:
            key = (
                (events.c.name == name)
                & (events.c.version == bindparam("b_version"))
                & (events.c.event_id == bindparam("b_id"))
            )
            move = events.update().where(key).values(name=new_name, payload=bindparam("b_payload"))
            c.execute(move, rows)


def replace_payloads(conn: Connection, events: Iterable[RegistryEvent]) -> None:
    """Store these events' payloads as MLflow now holds them (a copy may lack its tables)."""
    from sqlalchemy import bindparam

    table = tables()["events"]
    rows = [
        {
            "b_name": e.name,
            "b_version": int(e.version),
            "b_id": e.event_id,
            "b_payload": e.to_json(),
        }
        for e in events
    ]
    if rows:
        key = (
            (table.c.name == bindparam("b_name"))
            & (table.c.version == bindparam("b_version"))
            & (table.c.event_id == bindparam("b_id"))
        )
        conn.execute(table.update().where(key).values(payload=bindparam("b_payload")), rows)


def forget_model(index: LineageIndex, name: str) -> None:
    """Remove a deleted registered model: its versions, events and holdings."""
    t = tables()
    with index.begin() as c:
        for key in ("model_versions", "events", "holdings"):
            table = t[key]
            c.execute(table.delete().where(table.c.name == name))
