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

import contextlib
import contextvars
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from lineage_plugin import settings
from lineage_plugin.errors import LineageError
from lineage_plugin.events import (
    Change,
    RegistryEvent,
    RegistryState,
)
from lineage_plugin.store.index import index_for
from lineage_plugin.store.intents import drop_intent, reconcile_intents, write_intent
from lineage_plugin.store.registry_state import ApiState, MissingVersion, SqlState
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
    index_ready: bool = True
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
    ready = True
    try:
        index.ensure()
    except Exception as exc:
        failed("the lineage index", exc)
        ready = False  # the events still go into MLflow; reindex fills the index later
    pending = _Pending(store=store, name=name, planner=planner, index_ready=ready)
    token = _pending.set(pending)
    try:
        result = call()
    finally:
        _pending.reset(token)
    if pending.change and ready and index.engine is not getattr(store, "engine", None):
        _index_events(index, pending.change.events)
    return result


def _record_around(store: Any, name: str, planner: Planner, call: Callable[[], _R]) -> _R:
    from mlflow.exceptions import MlflowException

    reconcile(store, name)  # a change of this model interrupted before its events were written
    try:
        change = planner(ApiState(store, name), current_user(), _now())
    except MlflowException:
        return call()  # the call itself will raise the right error (unknown model or version)
    except Exception as exc:
        result = call()
        failed("a registry event", exc)
        return result
    intent = None
    try:
        with own_tag_writes():
            intent = write_intent(store, name, change)
    except Exception as exc:
        failed("a registry event (its intent)", exc)
    token = client_recording.set(True)
    try:
        result = call()
    except BaseException:
        if intent is not None:  # it may have happened (a lost answer): the registry tells
            reconcile(store, name, quiet=True, grace=False)
        raise
    finally:
        client_recording.reset(token)
    try:
        write_events_with_api(store, name, change)
        _index_events(index_for(store), change.events)
        if intent is not None:
            with own_tag_writes():
                drop_intent(store, name, intent)
    except Exception as exc:
        failed("a registry event", exc)
    return result


def reconcile(
    store: Any, name: str, *, quiet: bool = False, grace: bool = True
) -> list[RegistryEvent]:
    """Resolve the leftover intents of model ``name`` (see :mod:`lineage_plugin.store.intents`)
    and index the events written for them; a failure is a warning (``quiet``: not even that).

    Returns:
        The events written now.
    """
    try:
        with own_tag_writes():
            older = settings.intent_grace_ms() if grace else 0
            events = reconcile_intents(store, name, older_than_ms=older)
    except Exception as exc:
        if not quiet:
            failed("the registry events of an interrupted change", exc)
        return []
    _index_events(index_for(store), events)
    return events


def _index_events(index: LineageIndex, events: list[RegistryEvent]) -> None:
    if not events:
        return
    try:
        index.record_events(events)
    except Exception as exc:
        failed("a registry event in the lineage index", exc)


def write_events_with_api(store: Any, name: str, change: Change) -> None:
    """Write a change's event and holding tags with the store's API, after the call."""
    from mlflow.entities.model_registry import ModelVersionTag, RegisteredModelTag

    with own_tag_writes():
        for version, tags in change.version_tags.items():
            for key, value in tags.items():
                if value is None:
                    with contextlib.suppress(Exception):  # absent already
                        store.delete_model_version_tag(name, version, key)
                else:
                    tag = ModelVersionTag(key, value)
                    _set_tag(lambda: store.set_model_version_tag(name, version, tag))  # noqa: B023
        for key, value in change.model_tags.items():
            tag = RegisteredModelTag(key, value)
            _set_tag(lambda: store.set_registered_model_tag(name, tag))  # noqa: B023


def _set_tag(write: Callable[[], Any]) -> None:
    """A tag write, tried again when it lost MLflow's race with another client setting the same
    key: MLflow's SQL store looks the tag up, then inserts it, so two at once fail on the unique
    key; the retry finds the other's row and updates it."""
    from mlflow.exceptions import MlflowException

    for attempt in range(3):
        try:
            write()
            return
        except MlflowException as exc:
            message = str(exc).lower()
            if ("unique" not in message and "duplicate" not in message) or attempt == 2:
                raise
            import time

            time.sleep(0.05 * (attempt + 1))


def writing_own_events() -> bool:
    """Whether the current tag write is the plugin's own (already indexed) event write."""
    return _writing_events.get()


@contextlib.contextmanager
def own_tag_writes() -> Iterator[None]:
    """Mark the tag writes inside the block as the plugin's own: they may use reserved keys
    without a warning, and their events are indexed by the writer."""
    token = _writing_events.set(True)
    try:
        yield
    finally:
        _writing_events.reset(token)


def warn_if_reserved(key: str) -> None:
    """Warn a caller (not the plugin, not a server serving a plugin client) who sets a tag key
    the plugin writes; the caller's value is kept."""
    from lineage_plugin import tags as T
    from lineage_plugin.store.attach import warn_reserved
    from lineage_plugin.store.request_context import in_server_request

    if T.is_reserved(key) and not writing_own_events() and not in_server_request():
        warn_reserved([key])


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


@contextlib.contextmanager
def _isolated(session: Session) -> Iterator[None]:
    """Run the plugin's statements so that their failure cannot fail MLflow's change.

    PostgreSQL aborts the whole transaction after a failed statement, so there they run in a
    SAVEPOINT; elsewhere a failed statement leaves the transaction usable.
    """
    if session.get_bind().dialect.name == "postgresql":
        with session.begin_nested():
            # The session emits the SAVEPOINT only when it next hands out its connection; the
            # plugin's statements run on a connection taken before, so take it now.
            session.connection()
            yield
    else:
        yield


def _lock_the_model(session: Session, name: str) -> None:
    """Make concurrent changes of one registered model wait for each other before the plan
    reads what the model holds: else two alias moves at once (two server workers) both read
    the same holder, and the second's event names the wrong replaced version and leaves the
    index holding the first's. SQLite: take the database's write lock now (``BEGIN
    IMMEDIATE``); PostgreSQL, MySQL: lock the model's row (``SELECT ... FOR UPDATE``)."""
    from sqlalchemy import text

    dialect = session.get_bind().dialect.name
    if dialect == "sqlite":
        dbapi = session.connection().connection.dbapi_connection
        if dbapi is not None and getattr(dbapi, "in_transaction", True) is False:
            session.connection().exec_driver_sql("BEGIN IMMEDIATE")
    elif dialect in ("postgresql", "mysql", "mariadb"):
        session.execute(
            text("SELECT name FROM registered_models WHERE name = :name FOR UPDATE"),
            {"name": name},
        )


def _plan_in_session(pending: _Pending, session: Session) -> SqlState | None:
    state = SqlState(pending.store, session, pending.name)
    try:
        with _isolated(session):
            _lock_the_model(session, pending.name)
            pending.change = pending.planner(state, current_user(), _now())
    except MissingVersion:
        return None  # MLflow raises its own "not found" error next
    except Exception as exc:
        failed("a registry event", exc)
        return None
    return state


def _write_in_session(pending: _Pending, state: SqlState, session: Session) -> None:
    change = pending.change
    try:
        with _isolated(session):
            state.write(change)
    except Exception as exc:
        pending.change = None
        failed("a registry event", exc)
        return
    index = index_for(pending.store)
    if not pending.index_ready or index.engine is not getattr(pending.store, "engine", None):
        return
    try:  # apart: a broken index must not take the event out of MLflow, the record
        with _isolated(session):
            index.record_events(change.events, conn=session.connection(), fresh=True)
    except Exception as exc:
        failed("a registry event in the lineage index", exc)
