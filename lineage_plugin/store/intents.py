"""Write the intent before the call, reconcile after: registry events for stores that record
around the call (``lineage+http(s)`` clients, ``file:`` stores).

Such a store makes MLflow's change with one call and writes the event tags with the next ones,
so a process or server that dies between them would lose the event of a change that happened.
Before the call, the planned change is written on the registered model as a
``lineage.intent.<event id>`` tag (its events, with their ids); after the event tags are
written, the intent is removed. A leftover intent is resolved the next time the plugin records a
change on that model (:func:`reconcile_intents`): if the registry shows that the change happened
(the alias points at the version, the version is in the stage, the alias left the version), its
events are written with their *original* ids (an event already there is not written again), else
the intent is dropped. So a change that happened has its event exactly once.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import time
from typing import Any

from lineage_plugin import tags as T
from lineage_plugin.events import (
    ALIAS_DELETED,
    ALIAS_SET,
    STAGE_TRANSITION,
    Change,
    RegistryEvent,
)

_logger = logging.getLogger(__name__)

#: The event kinds whose change the registry's current state tells (happened or not).
RECONCILABLE = (ALIAS_SET, ALIAS_DELETED, STAGE_TRANSITION)
_PART = re.compile(r"\.(parts|part\d+)$")


def intent_keys(tags: dict[str, str]) -> list[str]:
    """The intents among a registered model's tags (their first keys), oldest first."""
    return sorted(k for k in tags if k.startswith(T.INTENT_PREFIX) and not _PART.search(k))


def write_intent(store: Any, name: str, change: Change) -> str | None:
    """Write ``change`` as an intent on the registered model ``name``, before the call (inside
    the recording's ``own_tag_writes``, as every write here).

    Returns:
        The intent's key, or ``None`` when there is nothing to reconcile (no events, or a kind
        whose happening the registry cannot tell, such as a deletion or rename).
    """
    from mlflow.entities.model_registry import RegisteredModelTag

    if not change.events or any(e.kind not in RECONCILABLE for e in change.events):
        return None
    key = T.INTENT_PREFIX + change.events[0].event_id
    value = json.dumps(
        {"events": [e.to_dict() for e in change.events], "versions": sorted(change.version_tags)},
        sort_keys=True,
        separators=(",", ":"),
    )
    for k, v in T.split_value(key, value, T.registered_model_tag_value_limit()).items():
        store.set_registered_model_tag(name, RegisteredModelTag(k, v))
    return key


def drop_intent(store: Any, name: str, key: str, tags: dict[str, str] | None = None) -> None:
    """Remove an intent (and the parts of a split one); one resolved already is no error."""
    from mlflow.exceptions import MlflowException

    parts = int((tags or {}).get(f"{key}.parts", "1"))
    keys = [key] + ([f"{key}.parts"] if parts > 1 else [])
    keys += [f"{key}.part{n}" for n in range(1, parts)]
    for k in keys:
        with contextlib.suppress(MlflowException):  # another client reconciled it meanwhile
            store.delete_registered_model_tag(name, k)


def _happened(store: Any, name: str, event: RegistryEvent) -> bool:
    from mlflow.exceptions import MlflowException

    from lineage_plugin.store.registry_state import ApiState

    state = ApiState(store, name)
    try:
        if event.kind == ALIAS_SET:
            return state.alias_holder(event.alias or "") == event.version
        if event.kind == ALIAS_DELETED:
            return state.alias_holder(event.alias or "") != event.version
        return state.stage_of(event.version) == event.stage
    except MlflowException:  # the version is gone: its history moved with its deletion
        return False


def reconcile_intents(store: Any, name: str, *, older_than_ms: int = 0) -> list[RegistryEvent]:
    """Resolve the leftover intents of registered model ``name`` against the registry.

    Args:
        store: The wrapped registry store.
        name: The registered model.
        older_than_ms: Leave intents younger than this: another client's change may be under
            way (``0``: resolve every one, as ``reindex`` does).

    Returns:
        The events written now (changes that happened without their events being recorded).
    """
    from mlflow.exceptions import MlflowException

    try:
        tags = dict(store.get_registered_model(name).tags or {})
    except MlflowException:
        return []  # no such model (yet): MLflow's call says so
    written: list[RegistryEvent] = []
    for key in intent_keys(tags):
        try:
            data = json.loads(T.join_value(tags, key) or "")
            events = [RegistryEvent.from_dict(e) for e in data["events"]]
            versions = [str(v) for v in data.get("versions", ())]
        except (ValueError, KeyError, TypeError) as exc:  # not ours to repair: leave it
            _logger.warning("mlflow-delta-lineage: ignoring a damaged intent %s: %s", key, exc)
            continue
        if events and older_than_ms and time.time() * 1000 - events[0].time < older_than_ms:
            continue  # perhaps a change under way in another client
        if events and _happened(store, name, events[0]):
            written += _write_events(store, name, events, versions)
        drop_intent(store, name, key, tags)
    return written


def _write_events(
    store: Any, name: str, events: list[RegistryEvent], versions: list[str]
) -> list[RegistryEvent]:
    """Write the events of a change that happened (those not there yet), and set what each
    version holds as the registry shows it now."""
    from mlflow.entities.model_registry import ModelVersionTag

    new: list[RegistryEvent] = []
    kinds = {e.kind for e in events}
    for version in versions:
        mv = store.get_model_version(name, version)
        tags = dict(mv.tags or {})
        for event in (e for e in events if e.version == version):
            if event.tag_key not in tags:  # exactly once: an event id is written once
                store.set_model_version_tag(
                    name, version, ModelVersionTag(event.tag_key, event.to_json())
                )
                new.append(event)
        if kinds & {ALIAS_SET, ALIAS_DELETED}:
            aliases = ", ".join(sorted(mv.aliases or ()))
            if aliases:
                store.set_model_version_tag(name, version, ModelVersionTag(T.ALIASES_TAG, aliases))
            elif T.ALIASES_TAG in tags:
                store.delete_model_version_tag(name, version, T.ALIASES_TAG)
        if STAGE_TRANSITION in kinds:
            store.set_model_version_tag(
                name, version, ModelVersionTag(T.STAGE_TAG, mv.current_stage)
            )
    return new
