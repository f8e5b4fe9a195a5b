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
    """Remove runs that MLflow removed for good, with the table versions they read."""
    t = tables()
    ids = list(run_ids)
    with index.begin() as c:
        for start in range(0, len(ids), 500):
            batch = ids[start : start + 500]
            c.execute(t["reads"].delete().where(t["reads"].c.run_id.in_(batch)))
            c.execute(t["runs"].delete().where(t["runs"].c.run_id.in_(batch)))


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

    Event payloads name the model too: they are rewritten, so every query sees one name.
    """
    from sqlalchemy import select

    t = tables()
    events = t["events"]
    with index.begin() as c:
        for key in ("model_versions", "holdings"):
            table = t[key]
            c.execute(table.update().where(table.c.name == name).values(name=new_name))
        rows = c.execute(
            select(events.c.event_id, events.c.version, events.c.payload).where(
                events.c.name == name
            )
        ).all()
        for event_id, version, payload in rows:
            data = json.loads(payload)
            data["name"] = new_name
            moved = RegistryEvent.from_dict(data)
            c.execute(
                events.update()
                .where(
                    (events.c.name == name)
                    & (events.c.version == version)
                    & (events.c.event_id == event_id)
                )
                .values(name=new_name, payload=moved.to_json())
            )


def replace_payloads(index: LineageIndex, events: Iterable[RegistryEvent]) -> None:
    """Store these events' payloads as MLflow now holds them (a copy may lack its tables)."""
    events_table = tables()["events"]
    with index.begin() as c:
        for e in events:
            key = (
                (events_table.c.name == e.name)
                & (events_table.c.version == int(e.version))
                & (events_table.c.event_id == e.event_id)
            )
            c.execute(events_table.update().where(key).values(payload=e.to_json()))


def forget_model(index: LineageIndex, name: str) -> None:
    """Remove a deleted registered model: its versions, events and holdings."""
    t = tables()
    with index.begin() as c:
        for key in ("model_versions", "events", "holdings"):
            table = t[key]
            c.execute(table.delete().where(table.c.name == name))
