"""Replay the event log: what each version of a model held at a point in time."""

from __future__ import annotations

import json
from collections.abc import Collection
from dataclasses import dataclass, field

from lineage_plugin.errors import LineageError
from lineage_plugin.events import (
    ALIAS_DELETED,
    ALIAS_SET,
    NO_STAGE,
    STAGE_TRANSITION,
    VERSION_DELETED,
)
from lineage_plugin.events import RegistryEvent as Event
from lineage_plugin.queries.times import format_time
from lineage_plugin.queries.workspace import Workspace

STAGES = ("None", "Staging", "Production", "Archived")


@dataclass
class Held:
    """Aliases and stages of one registered model at one moment."""

    aliases: dict[str, str] = field(default_factory=dict)  # alias -> version
    stages: dict[str, str] = field(default_factory=dict)  # version -> stage

    def of(self, version: str) -> tuple[str, list[str]]:
        """The stage and aliases one version held."""
        aliases = sorted(a for a, v in self.aliases.items() if v == version)
        return self.stages.get(version, NO_STAGE), aliases

    def apply(self, e: Event) -> None:
        """Change what is held as event ``e`` did."""
        if e.kind == ALIAS_SET and e.alias:
            self.aliases[e.alias] = e.version
        elif e.kind == ALIAS_DELETED and self.aliases.get(e.alias or "") == e.version:
            del self.aliases[e.alias]
        elif e.kind == STAGE_TRANSITION and e.stage:
            self.stages[e.version] = e.stage
        elif e.kind == VERSION_DELETED:  # a deleted version holds nothing from then on
            self.stages.pop(e.version, None)
            for alias in [a for a, v in self.aliases.items() if v == e.version]:
                del self.aliases[alias]


def model_events(
    ws: Workspace,
    name: str,
    *,
    until: int | None = None,
    ids: Collection[str] | None = None,
) -> list[Event]:
    """The indexed events of a registered model, in time order.

    Args:
        ws: The stores and index.
        name: The registered model.
        until: Only the events up to this time (epoch ms).
        ids: Only the events of these ids; ``None``: all.
    """
    from sqlalchemy import select

    from lineage_plugin.store.index_schema import tables

    events = tables()["events"]
    query = select(events.c.payload).where(events.c.name == name).order_by(events.c.event_id)
    if until is not None:
        query = query.where(events.c.time <= until)
    if ids is not None:
        query = query.where(events.c.event_id.in_(sorted(ids)))
    with ws.require_index().begin() as conn:
        return [Event.from_dict(json.loads(p)) for p in conn.execute(query).scalars()]


def replay(events: list[Event]) -> Held:
    """What the model's versions held after ``events`` (in time order)."""
    held = Held()
    for e in events:
        held.apply(e)
    return held


#: Stages that mean "in use" (a version in None or Archived serves nobody).
SERVING_STAGES = ("Staging", "Production")


def held_last(events: list[Event], version: str) -> tuple[list[str], str | None]:
    """The aliases and serving stage ``version`` held the last time it held any.

    Args:
        events: The model's events, in time order.
        version: The version.

    Returns:
        ``(aliases, stage)``; ``([], None)`` when it never held an alias or a serving stage.
    """
    held = Held()
    last: tuple[list[str], str | None] = ([], None)
    for e in events:
        held.apply(e)
        stage, aliases = held.of(version)
        serving = stage if stage in SERVING_STAGES else None
        if aliases or serving:
            last = (aliases, serving)
    return last


def canonical_stage(text: str) -> str | None:
    """``production`` -> ``Production``; ``None`` when ``text`` is not a stage name."""
    for stage in STAGES:
        if text.lower() == stage.lower():
            return stage
    return None


def version_at(ws: Workspace, name: str, label: str, at: int) -> str:
    """The version that held alias or stage ``label`` at time ``at``, from the event log.

    Raises:
        LineageError: Nothing held it then, or the event log does not reach back that far.
    """
    events = model_events(ws, name, until=at)
    stage = canonical_stage(label)
    alias = label.lstrip("@")
    relevant = [
        e
        for e in events
        if (stage and e.kind == STAGE_TRANSITION)
        or (not stage and e.alias == alias and e.kind in (ALIAS_SET, ALIAS_DELETED))
    ]
    if not relevant:
        first = model_events(ws, name)
        since = ""
        if first:
            since = f" (the event log of '{name}' starts at {format_time(first[0].time)})"
        raise LineageError(
            f"No change of {'stage' if stage else 'alias'} '{label}' of model '{name}' was "
            f"recorded before {format_time(at)}{since}. Run `mlflow-lineage timeline --model "
            f"'{name}'` to see what was recorded."
        )
    held = replay(events)
    if stage:
        versions = sorted((v for v, s in held.stages.items() if s == stage), key=int)
        if versions:
            return versions[-1]
    elif alias in held.aliases:
        return held.aliases[alias]
    raise LineageError(
        f"No version of model '{name}' held {'stage' if stage else 'alias'} '{label}' at "
        f"{format_time(at)}."
    )
