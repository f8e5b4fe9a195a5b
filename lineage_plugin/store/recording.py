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
import json
import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from lineage_plugin import settings
from lineage_plugin import tags as T
from lineage_plugin.errors import LineageError
from lineage_plugin.events import Change, RegistryEvent, RegistryState, VersionState
from lineage_plugin.store.index import index_for

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from lineage_plugin.store.index import LineageIndex

_logger = logging.getLogger(__name__)
_R = TypeVar("_R")

#: Header a recording client sends with its registry calls (and the user it records).
CLIENT_RECORDS_HEADER = "X-MLflow-Lineage-Client-Records"
USER_HEADER = "X-MLflow-Lineage-User"

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
#: True while this process sends a registry call whose events it records itself.
client_recording: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "lineage_client_recording", default=False
)
#: True while the plugin writes its own event tags (they are indexed already).
_writing_events: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "lineage_writing_events", default=False
)


def current_user() -> str | None:
    """Who is making the change.

    In a server request: the authenticated user, else the user a plugin client named in its
    header, else unknown (``None``). Elsewhere: ``MLFLOW_TRACKING_USERNAME`` or the OS user.
    """
    request = _flask_request()
    if request is not None:
        auth = request.authorization
        if auth is not None and auth.username:
            return auth.username
        return request.headers.get(USER_HEADER)
    from mlflow.tracking.context.default_context import _get_user

    return os.environ.get("MLFLOW_TRACKING_USERNAME") or _get_user()


def _flask_request() -> Any:
    import sys

    flask = sys.modules.get("flask")
    if flask is None or not flask.has_request_context():
        return None
    return flask.request


def client_records_events() -> bool:
    """Whether the request being served comes from a client that records its own events."""
    request = _flask_request()
    return request is not None and request.headers.get(CLIENT_RECORDS_HEADER) == "true"


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


def _version_state(
    version: str, stage: str, aliases: list[str], tags: dict[str, str]
) -> VersionState:
    manifest = T.join_value(tags, T.MANIFEST)
    tables: tuple = ()
    if manifest:
        from lineage_plugin.records import RunLineage

        tables = RunLineage.from_dict(json.loads(manifest)).inputs
    return VersionState(
        version=str(version),
        stage=stage,
        aliases=tuple(sorted(aliases)),
        run_id=tags.get(T.RUN_ID),
        tables=tables,
    )


class ApiState:
    """The state of a registered model, read through the store's public methods."""

    def __init__(self, store: Any, name: str) -> None:
        self.store = store
        self.name = name
        self._versions: dict[str, VersionState] = {}

    def version(self, version: str) -> VersionState:
        if version not in self._versions:
            mv = self.store.get_model_version(self.name, version)
            self._versions[version] = _version_state(
                str(mv.version), mv.current_stage, list(mv.aliases or ()), dict(mv.tags or {})
            )
        return self._versions[version]

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


class SqlState:
    """The state of a registered model, read inside MLflow's own SQL session."""

    def __init__(self, store: Any, session: Session, name: str) -> None:
        self.store = store
        self.session = session
        self.name = name
        self._versions: dict[str, VersionState] = {}

    def _query(self, model: Any) -> Any:
        return self.store._get_query(self.session, model)

    def version(self, version: str) -> VersionState:
        from mlflow.store.model_registry.dbmodels.models import (
            SqlModelVersion,
            SqlModelVersionTag,
            SqlRegisteredModelAlias,
        )

        if version not in self._versions:
            number = int(version)
            row = (
                self._query(SqlModelVersion)
                .filter(SqlModelVersion.name == self.name, SqlModelVersion.version == number)
                .one()
            )
            aliases = [
                a.alias
                for a in self._query(SqlRegisteredModelAlias).filter(
                    SqlRegisteredModelAlias.name == self.name,
                    SqlRegisteredModelAlias.version == number,
                )
            ]
            tag_rows = self._query(SqlModelVersionTag).filter(
                SqlModelVersionTag.name == self.name,
                SqlModelVersionTag.version == number,
                SqlModelVersionTag.key.like("lineage.%"),
                ~SqlModelVersionTag.key.like("lineage.event.%"),
            )
            tags = {t.key: t.value for t in tag_rows}
            self._versions[version] = _version_state(version, row.current_stage, aliases, tags)
        return self._versions[version]

    def alias_holder(self, alias: str) -> str | None:
        from mlflow.store.model_registry.dbmodels.models import SqlRegisteredModelAlias

        row = (
            self._query(SqlRegisteredModelAlias)
            .filter(
                SqlRegisteredModelAlias.name == self.name, SqlRegisteredModelAlias.alias == alias
            )
            .first()
        )
        return str(row.version) if row is not None else None

    def versions_in_stage(self, stage: str) -> list[str]:
        from mlflow.store.model_registry.dbmodels.models import SqlModelVersion

        rows = self._query(SqlModelVersion).filter(
            SqlModelVersion.name == self.name, SqlModelVersion.current_stage == stage
        )
        return [str(r.version) for r in rows]

    def write(self, change: Change) -> None:
        from mlflow.store.model_registry.dbmodels.models import (
            SqlModelVersionTag,
            SqlRegisteredModelTag,
        )

        workspace = self.store._get_active_workspace()
        for version, tags in change.version_tags.items():
            for key, value in tags.items():
                if value is None:
                    self._query(SqlModelVersionTag).filter(
                        SqlModelVersionTag.name == self.name,
                        SqlModelVersionTag.version == int(version),
                        SqlModelVersionTag.key == key,
                    ).delete()
                else:
                    self.session.merge(
                        SqlModelVersionTag(
                            workspace=workspace,
                            name=self.name,
                            version=int(version),
                            key=key,
                            value=value,
                        )
                    )
        for key, value in change.model_tags.items():
            self.session.merge(
                SqlRegisteredModelTag(workspace=workspace, name=self.name, key=key, value=value)
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
    from sqlalchemy.exc import NoResultFound

    state = SqlState(pending.store, session, pending.name)
    try:
        pending.change = pending.planner(state, current_user(), _now())
    except NoResultFound:
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
            index.record_events(change.events, conn=session.connection())
    except Exception as exc:
        pending.change = None
        failed("a registry event", exc)
