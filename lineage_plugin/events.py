"""The registry's event log: stage transitions and alias changes, with the data behind them.

MLflow keeps only a model version's *current* stage and aliases. The plugin records every
change as a :class:`RegistryEvent` and writes it into MLflow itself, as one model-version tag per
event (``lineage.event.<time>-<id>``, so nothing is read, modified and written back), plus the
currently held aliases and stage as ``lineage.aliases`` and ``lineage.stage`` tags. MLflow hides
a deleted version's tags, so deleting a version moves its history onto the registered model: a
copy of each of its event tags, the aliases it took along, a ``version_deleted`` event and the
version's record (:mod:`lineage_plugin.deleted`). A rename is a ``model_renamed`` event on the
model.

This module only *plans* a change: given the registry's state before the call
(:class:`RegistryState`), it returns the events and tag writes (:class:`Change`). The stores
apply the plan (see :mod:`lineage_plugin.store.recording`).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from lineage_plugin import tags as T
from lineage_plugin.deleted import DeletedVersion
from lineage_plugin.records import (
    SCHEMA_VERSION,
    DeltaInput,
    TableRestore,
    Verification,
    drop_nulls,
    to_json,
)

EVENT_PREFIX = T.EVENT_PREFIX
ALIASES_TAG = T.ALIASES_TAG
STAGE_TAG = T.STAGE_TAG

STAGE_TRANSITION = "stage_transition"
ALIAS_SET = "alias_set"
ALIAS_DELETED = "alias_deleted"
RESTORE = "restore"
VERIFICATION = "verification"
VERSION_DELETED = "version_deleted"
MODEL_RENAMED = "model_renamed"
#: Event kinds this version of the plugin writes.
KINDS = (
    STAGE_TRANSITION,
    ALIAS_SET,
    ALIAS_DELETED,
    RESTORE,
    VERIFICATION,
    VERSION_DELETED,
    MODEL_RENAMED,
)
#: Events about the registered model as a whole; their ``version`` is ``MODEL_LEVEL``.
MODEL_KINDS = (MODEL_RENAMED,)
MODEL_LEVEL = "0"

ARCHIVED = "Archived"
NO_STAGE = "None"


@dataclass(frozen=True, kw_only=True)
class RegistryEvent:
    """One change of what a model version holds in the registry.

    Attributes:
        event_id: ``<13-digit epoch ms>-<8 hex>``; sorts in time order.
        kind: ``stage_transition``, ``alias_set``, ``alias_deleted``, ``restore`` (the
            version's training tables were restored), ``verification`` (it was retrained
            and its predictions compared), ``version_deleted`` or ``model_renamed``.
        name: Registered model name.
        version: The model version the event is about (``"0"``: the registered model itself,
            for ``model_renamed``).
        time: Epoch milliseconds.
        user: Who made the change, when known.
        stage: The stage the version moved to (transitions).
        previous_stage: The stage it held before (transitions).
        alias: The alias set or deleted.
        replaced: The versions that held the alias or stage before this change.
        cause: Why it happened when it was a side effect (``archive_existing_versions``,
            ``delete_model_version``).
        run_id: The version's source run.
        tables: The Delta table versions the model version was trained on.
        reason: Why the operator restored (restores).
        restores: The tables restored and the versions they got (restores).
        verification: The comparison of the retrained model with this one (verifications).
        previous_name: The model's name before a rename (``model_renamed``).
        schema_version: Layout version of this record.
    """

    event_id: str
    kind: str
    name: str
    version: str
    time: int
    user: str | None = None
    stage: str | None = None
    previous_stage: str | None = None
    alias: str | None = None
    replaced: tuple[str, ...] = ()
    cause: str | None = None
    run_id: str | None = None
    tables: tuple[DeltaInput, ...] = ()
    reason: str | None = None
    restores: tuple[TableRestore, ...] = ()
    verification: Verification | None = None
    previous_name: str | None = None
    schema_version: int = SCHEMA_VERSION

    @property
    def tag_key(self) -> str:
        """The MLflow tag key this event is written under."""
        return EVENT_PREFIX + self.event_id

    def to_dict(self) -> dict[str, Any]:
        """Return the event as a plain dict with sorted keys and no nulls."""
        data = {
            "schema_version": self.schema_version,
            "event_id": self.event_id,
            "kind": self.kind,
            "name": self.name,
            "version": self.version,
            "time": self.time,
            "user": self.user,
            "stage": self.stage,
            "previous_stage": self.previous_stage,
            "alias": self.alias,
            "replaced": list(self.replaced) or None,
            "cause": self.cause,
            "run_id": self.run_id,
            "tables": [t.to_dict() for t in self.tables] or None,
            "reason": self.reason,
            "restores": [r.to_dict() for r in self.restores] or None,
            "verification": self.verification.to_dict() if self.verification else None,
            "previous_name": self.previous_name,
        }
        return drop_nulls(data)

    def to_json(self) -> str:
        """The compact JSON written as the tag value (and as the index's payload)."""
        return self._json

    @functools.cached_property
    def _json(self) -> str:
        return to_json(self.to_dict())

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RegistryEvent:
        """Build an event from :meth:`to_dict` output (unknown keys are ignored)."""
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        known["version"] = str(known["version"])
        known["replaced"] = tuple(str(v) for v in known.get("replaced", ()))
        known["tables"] = tuple(DeltaInput.from_dict(t) for t in known.get("tables", ()))
        known["restores"] = tuple(TableRestore.from_dict(r) for r in known.get("restores", ()))
        if known.get("verification") is not None:
            known["verification"] = Verification.from_dict(known["verification"])
        return cls(**known)

    @classmethod
    def from_json(cls, text: str) -> RegistryEvent:
        """Parse a tag value written by :meth:`to_json`."""
        return cls.from_dict(json.loads(text))


def new_event_id(time_ms: int, seq: int = 0) -> str:
    """A unique, time-ordered event id (``seq`` orders the events of one call)."""
    return f"{time_ms:013d}-{seq % 256:02x}{secrets.token_hex(3)}"


def events_from_tags(tags: Mapping[str, str], *, name: str | None = None) -> list[RegistryEvent]:
    """The events written in ``lineage.event.*`` tags, in time order.

    Args:
        tags: The tags of a model version or registered model.
        name: The model's name now: an event recorded before a rename names the old one.
    """
    keys = sorted(k for k in tags if k.startswith(EVENT_PREFIX))
    events = [RegistryEvent.from_json(tags[k]) for k in keys]
    if name is not None:
        events = [e if e.name == name else dataclasses.replace(e, name=name) for e in events]
    return events


def collect_events(holders: Iterable[Any]) -> list[RegistryEvent]:
    """The events in the tags of model versions and registered models, once each, in order
    (named after the model that holds them now)."""
    events = {e.event_id: e for h in holders for e in events_from_tags(h.tags or {}, name=h.name)}
    return sorted(events.values(), key=lambda e: e.event_id)


@dataclass(frozen=True, kw_only=True)
class VersionState:
    """What a model version holds before a change, and the data behind it."""

    version: str
    aliases: tuple[str, ...] = ()
    run_id: str | None = None
    tables: tuple[DeltaInput, ...] = ()


class RegistryState(Protocol):
    """Read access to one registered model's state before a change."""

    def version(self, version: str) -> VersionState:
        """The aliases and data of one version."""

    def stage_of(self, version: str) -> str:
        """The stage one version is in."""

    def alias_holder(self, alias: str) -> str | None:
        """The version an alias points to, if any."""

    def versions_in_stage(self, stage: str) -> list[str]:
        """Every version currently in ``stage``."""

    def registration(self, version: str) -> Registration:
        """What a version was registered with (read before it is deleted)."""


@dataclass(frozen=True, kw_only=True)
class Registration:
    """A model version's registration, as a deletion must keep it.

    Attributes:
        created: Registration time (epoch ms).
        source: The model source URI.
        run_id: MLflow's run id of the version.
        stage: Its current stage.
        tags: Its ``lineage.*`` tags.
    """

    created: int | None = None
    source: str | None = None
    run_id: str | None = None
    stage: str | None = None
    tags: Mapping[str, str] = field(default_factory=dict)


@dataclass
class Change:
    """What a registry call changes, as the plugin records it.

    Attributes:
        events: The events, in the order they happened.
        version_tags: Per version, the tags to set (``None`` deletes the tag).
        model_tags: Tags to set on the registered model (events of deleted versions).
    """

    events: list[RegistryEvent] = field(default_factory=list)
    version_tags: dict[str, dict[str, str | None]] = field(default_factory=dict)
    model_tags: dict[str, str] = field(default_factory=dict)

    def tag_version(self, version: str, key: str, value: str | None) -> None:
        """Set (or, with ``None``, delete) a tag of one version."""
        self.version_tags.setdefault(version, {})[key] = value


def _data(state: VersionState) -> dict[str, Any]:
    tables = tuple(
        DeltaInput(
            uri=t.uri,
            version=t.version,
            engine=t.engine,
            table_id=t.table_id,
            name=t.name,
            commit_timestamp=t.commit_timestamp,
        )
        for t in state.tables
    )
    return {"run_id": state.run_id, "tables": tables}


def _aliases_value(aliases: set[str]) -> str | None:
    return ", ".join(sorted(aliases)) or None


class _Planner:
    def __init__(self, state: RegistryState, name: str, user: str | None, now: int) -> None:
        self.state = state
        self.name = name
        self.user = user
        self.now = now
        self.change = Change()

    def event(self, kind: str, vstate: VersionState, **fields: Any) -> RegistryEvent:
        event = RegistryEvent(
            event_id=new_event_id(self.now, len(self.change.events)),
            kind=kind,
            name=self.name,
            version=vstate.version,
            time=self.now,
            user=self.user,
            **_data(vstate),
            **fields,
        )
        self.change.events.append(event)
        return event

    def record_on_version(self, event: RegistryEvent) -> None:
        self.change.tag_version(event.version, event.tag_key, event.to_json())


def plan_alias_set(
    state: RegistryState, name: str, alias: str, version: str, *, user: str | None, now: int
) -> Change:
    """Plan ``set_registered_model_alias(name, alias, version)``."""
    p = _Planner(state, name, user, now)
    target = state.version(version)
    holder = state.alias_holder(alias)
    if holder == version:
        return p.change  # MLflow writes the same row again; nothing changed
    replaced = (holder,) if holder else ()
    p.record_on_version(p.event(ALIAS_SET, target, alias=alias, replaced=replaced))
    p.change.tag_version(version, ALIASES_TAG, _aliases_value({*target.aliases, alias}))
    if holder:
        before = state.version(holder)
        p.change.tag_version(holder, ALIASES_TAG, _aliases_value(set(before.aliases) - {alias}))
    return p.change


def plan_alias_delete(
    state: RegistryState, name: str, alias: str, *, user: str | None, now: int
) -> Change:
    """Plan ``delete_registered_model_alias(name, alias)``."""
    p = _Planner(state, name, user, now)
    holder = state.alias_holder(alias)
    if holder is None:
        return p.change  # MLflow deletes nothing
    before = state.version(holder)
    p.record_on_version(p.event(ALIAS_DELETED, before, alias=alias))
    p.change.tag_version(holder, ALIASES_TAG, _aliases_value(set(before.aliases) - {alias}))
    return p.change


def plan_transition(
    state: RegistryState,
    name: str,
    version: str,
    stage: str,
    archive_existing_versions: bool,
    *,
    user: str | None,
    now: int,
) -> Change:
    """Plan ``transition_model_version_stage``; ``stage`` must be canonical (``Production``)."""
    p = _Planner(state, name, user, now)
    target = state.version(version)
    # Without archive_existing_versions the other versions keep the stage: nothing replaced.
    holders = []
    if archive_existing_versions:
        holders = [v for v in state.versions_in_stage(stage) if v != version]
    event = p.event(
        STAGE_TRANSITION,
        target,
        stage=stage,
        previous_stage=state.stage_of(version),
        replaced=tuple(holders),
    )
    p.record_on_version(event)
    p.change.tag_version(version, STAGE_TAG, stage)
    for holder in holders:
        archived = p.event(
            STAGE_TRANSITION,
            state.version(holder),
            stage=ARCHIVED,
            previous_stage=stage,
            cause=f"archive_existing_versions: version {version} moved to {stage}",
        )
        p.record_on_version(archived)
        p.change.tag_version(holder, STAGE_TAG, ARCHIVED)
    return p.change


def plan_version_delete(
    state: RegistryState,
    name: str,
    version: str,
    *,
    user: str | None,
    now: int,
    limit: int = 5000,
) -> Change:
    """Plan ``delete_model_version``: the aliases it held are deleted with it, and its history
    moves to the registered model (see :mod:`lineage_plugin.deleted`).

    Args:
        limit: The longest registered-model tag value (``tags.registered_model_tag_value_limit``).
            An event longer than that is copied without its ``tables`` (the deleted-version
            record holds them, split over as many tags as it needs).
    """
    p = _Planner(state, name, user, now)
    before = state.version(version)
    reg = state.registration(version)

    def on_model(event: RegistryEvent) -> None:
        if len(event.to_json()) > limit:
            event = dataclasses.replace(event, tables=())
        p.change.model_tags[event.tag_key] = event.to_json()

    for event in events_from_tags(reg.tags):
        on_model(event)
    for alias in sorted(before.aliases):
        cause = f"delete_model_version: version {version}"
        on_model(p.event(ALIAS_DELETED, before, alias=alias, cause=cause))
    on_model(p.event(VERSION_DELETED, before, previous_stage=reg.stage))
    record = DeletedVersion(
        name=name,
        version=version,
        created=reg.created,
        deleted=now,
        user=user,
        source=reg.source,
        run_id=reg.tags.get(T.RUN_ID) or reg.run_id,
        status=reg.tags.get(T.STATUS),
        stage=reg.stage,
        manifest=T.join_value(reg.tags, T.MANIFEST),
    )
    p.change.model_tags.update(record.tags(limit))
    return p.change


def plan_rename(
    state: RegistryState, name: str, new_name: str, *, user: str | None, now: int
) -> Change:
    """Plan ``rename_registered_model(name, new_name)``: one ``model_renamed`` event, written
    on the model under its new name."""
    p = _Planner(state, new_name, user, now)
    event = p.event(MODEL_RENAMED, VersionState(version=MODEL_LEVEL), previous_name=name)
    p.change.model_tags[event.tag_key] = event.to_json()
    return p.change
