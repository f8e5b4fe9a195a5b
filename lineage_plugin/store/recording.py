"""Record registry events as the registry store makes the change.

A registry call that changes what a version holds (alias set or deleted, stage transition,
version deleted) is wrapped by :func:`record_change`:

- SQL stores: the state before the change is read, and the events and tags are written, inside
  the *same* database transaction as MLflow's own change (the store's ``ManagedSessionMaker`` is
  wrapped once, see :func:`install_session_hook`). An event is stored if and only if the change
  commits, and the cost is a few statements, not extra round trips.
- Other stores (``file:``, ``http(s):``): the state is read before the call through the store's
  public methods, and the events and tags are written after it with ``set_model_version_tag``.

Exactly once: a ``lineage+http(s)`` client records the event itself and tells the server so
with a request header (:mod:`lineage_plugin.store.headers`); a server running the plugin then
only indexes the event tags the client writes. A plain client talking to a plugin server gets its
events recorded by the server.
"""

from __future__ import annotations

import collections
import contextlib
import contextvars
import functools
import json
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from lineage_plugin import settings
from lineage_plugin import tags as T
from lineage_plugin.errors import LineageError
from lineage_plugin.events import (
    EVENT_PREFIX,
    Change,
    RegistryEvent,
    RegistryState,
    VersionState,
)
from lineage_plugin.store.index import index_for
from lineage_plugin.store.request_context import (
    client_recording,
    client_records_events,
    current_user,
)

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from lineage_plugin.store.index import LineageIndex

_logger = logging.getLogger(__name__)
_R = TypeVar("_R")

Planner = Callable[[RegistryState, str | None, int], Change]


@dataclass
class _Pending:
    store: Any
    name: str
    planner: Planner
    change: Change | None = None


_pending: contextvars.ContextVar[_Pending | None] = contextvars.ContextVar(
    "lineage_pending_change", default=None
)
#: True while the plugin writes its own event tags (they are indexed already).
_writing_events: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "lineage_writing_events", default=False
)


def failed(what: str, exc: Exception) -> None:
    """Warn that lineage could not be recorded (raise in strict mode)."""
    if settings.strict():
        raise LineageError(f"Could not record {what}: {exc}") from exc
    _logger.warning("mlflow-delta-lineage could not record %s: %s", what, exc)


def _now() -> int:
    import time

    return int(time.time() * 1000)


def record_change(store: Any, name: str, planner: Planner, call: Callable[[], _R]) -> _R:
    """Run the registry ``call`` and record the events ``planner`` derives from it.

    Args:
        store: The wrapped registry store.
        name: The registered model.
        planner: ``(state before, user, now) -> Change``.
        call: The stock store call.

    Returns:
        What ``call`` returns.
    """
    if client_records_events():
        return call()  # the client records this one and writes the tags through us
    if hasattr(store, "_lineage_session_hook"):
        return _record_in_transaction(store, name, planner, call)
    return _record_around(store, name, planner, call)


def _record_in_transaction(store: Any, name: str, planner: Planner, call: Callable[[], _R]) -> _R:
    index = index_for(store)
    try:
        index.ensure()
    except Exception as exc:
        failed("the lineage index", exc)
    pending = _Pending(store=store, name=name, planner=planner)
    token = _pending.set(pending)
    try:
        result = call()
    finally:
        _pending.reset(token)
    if pending.change and index.engine is not getattr(store, "engine", None):
        _index_events(index, pending.change.events)
    return result


def _record_around(store: Any, name: str, planner: Planner, call: Callable[[], _R]) -> _R:
    from mlflow.exceptions import MlflowException

    try:
        change = planner(ApiState(store, name), current_user(), _now())
    except MlflowException:
        return call()  # the call itself will raise the right error (unknown model or version)
    except Exception as exc:
        result = call()
        failed("a registry event", exc)
        return result
    token = client_recording.set(True)
    try:
        result = call()
    finally:
        client_recording.reset(token)
    try:
        _write_with_api(store, name, change)
        _index_events(index_for(store), change.events)
    except Exception as exc:
        failed("a registry event", exc)
    return result


def _index_events(index: LineageIndex, events: list[RegistryEvent]) -> None:
    if not events:
        return
    try:
        index.record_events(events)
    except Exception as exc:
        failed("a registry event in the lineage index", exc)


def _write_with_api(store: Any, name: str, change: Change) -> None:
    from mlflow.entities.model_registry import ModelVersionTag, RegisteredModelTag

    token = _writing_events.set(True)
    try:
        for version, tags in change.version_tags.items():
            for key, value in tags.items():
                if value is None:
                    with contextlib.suppress(Exception):  # absent already
                        store.delete_model_version_tag(name, version, key)
                else:
                    store.set_model_version_tag(name, version, ModelVersionTag(key, value))
        for key, value in change.model_tags.items():
            store.set_registered_model_tag(name, RegisteredModelTag(key, value))
    finally:
        _writing_events.reset(token)


def writing_own_events() -> bool:
    """Whether the current tag write is the plugin's own (already indexed) event write."""
    return _writing_events.get()


# --- state before the change ------------------------------------------------------------------


def _data_from_tags(tags: dict[str, str]) -> tuple[str | None, tuple]:
    manifest = T.join_value(tags, T.MANIFEST)
    tables: tuple = ()
    if manifest:
        from lineage_plugin.records import RunLineage

        tables = RunLineage.from_dict(json.loads(manifest)).inputs
    return tags.get(T.RUN_ID), tables


class ApiState:
    """The state of a registered model, read through the store's public methods."""

    def __init__(self, store: Any, name: str) -> None:
        self.store = store
        self.name = name
        self._versions: dict[str, Any] = {}

    def _mv(self, version: str) -> Any:
        if version not in self._versions:
            self._versions[version] = self.store.get_model_version(self.name, version)
        return self._versions[version]

    def version(self, version: str) -> VersionState:
        mv = self._mv(version)
        run_id, tables = _data_from_tags(dict(mv.tags or {}))
        aliases = tuple(sorted(mv.aliases or ()))
        return VersionState(version=str(version), aliases=aliases, run_id=run_id, tables=tables)

    def stage_of(self, version: str) -> str:
        return self._mv(version).current_stage

    def alias_holder(self, alias: str) -> str | None:
        from mlflow.exceptions import MlflowException

        try:
            return str(self.store.get_model_version_by_alias(self.name, alias).version)
        except MlflowException:
            return None

    def versions_in_stage(self, stage: str) -> list[str]:
        escaped = self.name.replace("'", "''")
        found: list[str] = []
        token = None
        while True:
            page = self.store.search_model_versions(
                f"name='{escaped}'", max_results=1000, page_token=token
            )
            found.extend(str(mv.version) for mv in page if mv.current_stage == stage)
            token = page.token
            if not token:
                return found


class _RegistrationCache(collections.OrderedDict):
    """The run and tables of recently registered or changed versions (bounded, per store).

    A version's lineage tags are written once, when it is registered, so a store that saw the
    registration (or read the tags once) need not read them again for every event.
    """

    limit = 10_000

    def put(self, key: tuple[str, str], value: tuple[str | None, tuple]) -> None:
        self[key] = value
        if len(self) > self.limit:
            self.popitem(last=False)


def registration_cache(store: Any) -> _RegistrationCache:
    """The store's cache of version lineage, keyed by ``(name, version)``."""
    cache = store.__dict__.get("_lineage_registrations")
    if cache is None:
        cache = store.__dict__["_lineage_registrations"] = _RegistrationCache()
    return cache


def remember_registration(store: Any, mv: Any) -> None:
    """Cache the lineage a new model version was registered with."""
    registration_cache(store).put((mv.name, str(mv.version)), _data_from_tags(dict(mv.tags or {})))


def forget_registration(store: Any, name: str, version: str) -> None:
    """Drop a version from the cache (its tags changed or it was deleted)."""
    registration_cache(store).pop((name, str(version)), None)


class _MissingVersion(Exception):
    """The model version does not exist (MLflow raises its own error for it next)."""


@functools.cache
def _statements() -> dict[str, Any]:
    """Plain statements on MLflow's registry tables, built once (names from MLflow's models)."""
    from mlflow.store.model_registry.dbmodels import models as m
    from sqlalchemy import text

    versions = m.SqlModelVersion.__tablename__
    tags = m.SqlModelVersionTag.__tablename__
    model_tags = m.SqlRegisteredModelTag.__tablename__
    aliases = m.SqlRegisteredModelAlias.__tablename__
    model = "workspace = :ws AND name = :name"
    return {
        "aliases": text(f"SELECT alias, version FROM {aliases} WHERE {model}"),
        "data": text(
            f"SELECT key, value FROM {tags} WHERE {model} AND version = :version "
            "AND (key = :run_key OR key LIKE :manifest)"
        ),
        "stage": text(f"SELECT current_stage FROM {versions} WHERE {model} AND version = :version"),
        "in_stage": text(
            f"SELECT version FROM {versions} WHERE {model} AND current_stage = :stage"
        ),
        "delete_tag": text(
            f"DELETE FROM {tags} WHERE {model} AND version = :version AND key = :key"
        ),
        "insert_tag": text(
            f"INSERT INTO {tags} (workspace, name, version, key, value) "
            "VALUES (:ws, :name, :version, :key, :value)"
        ),
        "insert_model_tag": text(
            f"INSERT INTO {model_tags} (workspace, name, key, value) "
            "VALUES (:ws, :name, :key, :value)"
        ),
    }


class SqlState:
    """The state of a registered model, read with a few plain statements inside MLflow's own
    transaction. :meth:`write` writes the change's tags there too, as MLflow's
    ``set_model_version_tag`` would, so the event commits together with the change."""

    def __init__(self, store: Any, session: Session, name: str) -> None:
        self.store = store
        self.conn = session.connection()
        self.sql = _statements()
        self.key = {"ws": store._get_active_workspace(), "name": name}
        self._aliases: dict[str, str] | None = None

    def _alias_map(self) -> dict[str, str]:
        if self._aliases is None:
            rows = self.conn.execute(self.sql["aliases"], self.key)
            self._aliases = {alias: str(version) for alias, version in rows}
        return self._aliases

    def _data(self, version: str) -> tuple[str | None, tuple]:
        cache = registration_cache(self.store)
        key = (self.key["name"], version)
        if key not in cache:
            params = {**self.key, "version": int(version), "run_key": T.RUN_ID}
            params["manifest"] = T.MANIFEST + "%"
            rows = self.conn.execute(self.sql["data"], params)
            cache.put(key, _data_from_tags(dict(rows.all())))
        return cache[key]

    def version(self, version: str) -> VersionState:
        aliases = tuple(sorted(a for a, v in self._alias_map().items() if v == version))
        run_id, tables = self._data(version)
        return VersionState(version=version, aliases=aliases, run_id=run_id, tables=tables)

    def stage_of(self, version: str) -> str:
        params = {**self.key, "version": int(version)}
        stage = self.conn.execute(self.sql["stage"], params).scalar()
        if stage is None:
            raise _MissingVersion(version)
        return stage

    def alias_holder(self, alias: str) -> str | None:
        return self._alias_map().get(alias)

    def versions_in_stage(self, stage: str) -> list[str]:
        rows = self.conn.execute(self.sql["in_stage"], {**self.key, "stage": stage})
        return [str(v) for v in rows.scalars()]

    def write(self, change: Change) -> None:
        """Replace the holding tags and add the event tags, in MLflow's transaction."""
        rows, replaced = [], []
        for version, values in change.version_tags.items():
            at = {**self.key, "version": int(version)}
            replaced += [{**at, "key": k} for k in values if not k.startswith(EVENT_PREFIX)]
            rows += [{**at, "key": k, "value": x} for k, x in values.items() if x is not None]
        if replaced:
            self.conn.execute(self.sql["delete_tag"], replaced)
        if rows:
            self.conn.execute(self.sql["insert_tag"], rows)
        if change.model_tags:
            self.conn.execute(
                self.sql["insert_model_tag"],
                [{**self.key, "key": k, "value": x} for k, x in change.model_tags.items()],
            )


def install_session_hook(store: Any) -> None:
    """Wrap a SQL registry store's ``ManagedSessionMaker`` so changes record in-transaction."""
    original = store.ManagedSessionMaker

    @contextlib.contextmanager
    def managed_session(read_only: bool = True) -> Iterator[Session]:
        with original(read_only=read_only) as session:
            pending = _pending.get()
            if pending is None or read_only or pending.store is not store:
                yield session
                return
            _pending.set(None)  # one change per call: later sessions of it are not ours
            state = _plan_in_session(pending, session)
            yield session
            if state is not None and pending.change is not None:
                _write_in_session(pending, state, session)

    store.ManagedSessionMaker = managed_session
    store._lineage_session_hook = True


def _plan_in_session(pending: _Pending, session: Session) -> SqlState | None:
    state = SqlState(pending.store, session, pending.name)
    try:
        pending.change = pending.planner(state, current_user(), _now())
    except _MissingVersion:
        return None  # MLflow raises its own "not found" error next
    except Exception as exc:
        failed("a registry event", exc)
        return None
    return state


def _write_in_session(pending: _Pending, state: SqlState, session: Session) -> None:
    change = pending.change
    try:
        state.write(change)
        index = index_for(pending.store)
        if index.engine is getattr(pending.store, "engine", None):
            index.record_events(change.events, conn=session.connection(), fresh=True)
    except Exception as exc:
        pending.change = None
        failed("a registry event", exc)
