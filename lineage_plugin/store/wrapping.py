"""Stores for ``lineage+X`` that are MLflow's own stores for ``X``, plus lineage.

The store MLflow builds for the backend URI is built by MLflow's own builder, then given a
subclass of its own class that adds lineage. So a ``lineage+sqlite:`` tracking store *is* a
``SqlAlchemyStore`` (MLflow's gateway and webhooks check that with ``isinstance``), keeps every
method, async logging and paging, and changes only what lineage needs.
"""

from __future__ import annotations

import functools
import inspect
import logging
import os
import threading
from typing import TYPE_CHECKING, Any

from lineage_plugin import tags as T
from lineage_plugin.store.uris import inner_uri

if TYPE_CHECKING:
    from mlflow.store.model_registry.abstract_store import AbstractStore as RegistryStore
    from mlflow.store.tracking.abstract_store import AbstractStore as TrackingStore

_logger = logging.getLogger(__name__)

_subclasses: dict[tuple[type, type], type] = {}
_subclasses_lock = threading.Lock()


class LineageStoreMixin:
    """Marks a store as wrapped by the plugin and remembers the URIs it was built from."""

    lineage_uri: str
    backend_uri: str


class LineageTrackingStoreMixin(LineageStoreMixin):
    """Tracking-store side of the plugin.

    Capture happens in the client process (see :mod:`lineage_plugin.tracking`); the tracking
    store is the real store, switches capture on when it is loaded, and indexes the lineage
    tags written through it (on whichever side runs the plugin).
    """

    def log_batch(self, run_id: str, metrics: Any, params: Any, tags: Any) -> Any:
        # The capture writer logs lineage tags synchronously, so they come through here.
        # (MLflow's async queue keeps the original bound log_batch, so async batches do not;
        # they carry no lineage tags.)
        result = super().log_batch(run_id, metrics, params, tags)  # type: ignore[misc]
        if tags:
            from lineage_plugin.store.index_updates import index_run_tags

            index_run_tags(self, run_id, {t.key: t.value for t in tags})
        return result

    def set_tag(self, run_id: str, tag: Any) -> Any:
        result = super().set_tag(run_id, tag)  # type: ignore[misc]
        from lineage_plugin.store.index_updates import index_run_tags

        index_run_tags(self, run_id, {tag.key: tag.value})
        return result

    def update_run_info(self, run_id: str, run_status: Any, end_time: Any, run_name: Any) -> Any:
        info = super().update_run_info(run_id, run_status, end_time, run_name)  # type: ignore[misc]
        from lineage_plugin.store.index_updates import index_run_info

        index_run_info(self, run_id, info)
        return info

    # MLflow's lifecycle: each call is MLflow's own, then the index follows it.
    def delete_run(self, run_id: str) -> Any:
        return _then_follow(self, super().delete_run(run_id), "delete_run", run_id)  # type: ignore[misc]

    def restore_run(self, run_id: str) -> Any:
        return _then_follow(self, super().restore_run(run_id), "restore_run", run_id)  # type: ignore[misc]

    def delete_experiment(self, experiment_id: str) -> Any:
        result = super().delete_experiment(experiment_id)  # type: ignore[misc]
        return _then_follow(self, result, "delete_experiment", experiment_id)

    def restore_experiment(self, experiment_id: str) -> Any:
        result = super().restore_experiment(experiment_id)  # type: ignore[misc]
        return _then_follow(self, result, "restore_experiment", experiment_id)


class LineageGcTrackingStoreMixin(LineageTrackingStoreMixin):
    """The tracking side for stores that delete for good (``mlflow gc``): SQL and file stores.

    A separate class, so a store without hard deletes (REST) does not seem to have them: ``mlflow
    gc`` checks for these methods.
    """

    def _hard_delete_run(self, run_id: str) -> Any:
        result = super()._hard_delete_run(run_id)  # type: ignore[misc]
        return _then_follow(self, result, "_hard_delete_run", run_id)

    def _hard_delete_experiment(self, experiment_id: str) -> Any:
        result = super()._hard_delete_experiment(experiment_id)  # type: ignore[misc]
        return _then_follow(self, result, "_hard_delete_experiment", experiment_id)


def _then_follow(
    store: Any, result: Any, call: str, subject: str, new_name: str | None = None
) -> Any:
    from lineage_plugin.store.index_updates import follow_lifecycle

    follow_lifecycle(store, call, subject, new_name)
    return result


class LineageRegistryStoreMixin(LineageStoreMixin):
    """Registry-store side.

    Attaches the source run's lineage to every new model version, records every stage
    transition and alias change as an event (:mod:`lineage_plugin.store.recording`), and keeps
    the lineage index up to date.
    """

    # The signature is spelled out: MLflow passes ``local_model_path`` only to stores whose
    # create_model_version names it, and calls it positionally.
    def create_model_version(
        self,
        name: str,
        source: str,
        run_id: str | None = None,
        tags: list[Any] | None = None,
        run_link: str | None = None,
        description: str | None = None,
        local_model_path: str | None = None,
        model_id: str | None = None,
    ) -> Any:
        from lineage_plugin.store.attach import tags_for_new_model_version
        from lineage_plugin.store.description_link import create_with_link
        from lineage_plugin.store.recording import own_tag_writes

        tags = tags_for_new_model_version(
            # Runs live in the same backend as the registry (MLflow's default and the server's
            # set-up), so the source run is read through the registry's own URI.
            tracking_uri=self.lineage_uri,
            source=source,
            run_id=run_id,
            model_id=model_id,
            tags=tags,
        )
        create = functools.partial(
            super().create_model_version,  # type: ignore[misc]
            name,
            source,
            run_id,
            tags,
            run_link,
            description,
            local_model_path=local_model_path,
            model_id=model_id,
        )
        with own_tag_writes():  # the file store sets them one by one; warned about above
            mv = create_with_link(self, (t.key for t in tags), create)  # description: a link
        from lineage_plugin.store.index_updates import index_model_version
        from lineage_plugin.store.registry_state import remember_registration

        index_model_version(self, mv)
        remember_registration(self, mv)
        return mv

    def set_registered_model_alias(self, name: str, alias: str, version: Any) -> Any:
        from lineage_plugin.events import plan_alias_set
        from lineage_plugin.store.recording import record_change

        def plan(state: Any, user: str | None, now: int) -> Any:
            return plan_alias_set(state, name, alias, str(version), user=user, now=now)

        call = functools.partial(super().set_registered_model_alias, name, alias, version)
        return record_change(self, name, plan, call)

    def delete_registered_model_alias(self, name: str, alias: str) -> Any:
        from lineage_plugin.events import plan_alias_delete
        from lineage_plugin.store.recording import record_change

        def plan(state: Any, user: str | None, now: int) -> Any:
            return plan_alias_delete(state, name, alias, user=user, now=now)

        call = functools.partial(super().delete_registered_model_alias, name, alias)
        return record_change(self, name, plan, call)

    def transition_model_version_stage(
        self, name: str, version: Any, stage: str, archive_existing_versions: bool
    ) -> Any:
        from mlflow.entities.model_registry.model_version_stages import get_canonical_stage
        from mlflow.exceptions import MlflowException

        from lineage_plugin.events import plan_transition
        from lineage_plugin.store.recording import record_change

        call = functools.partial(
            super().transition_model_version_stage, name, version, stage, archive_existing_versions
        )
        try:
            canonical = get_canonical_stage(stage)
        except MlflowException:
            return call()  # MLflow raises its own error for the unknown stage

        def plan(state: Any, user: str | None, now: int) -> Any:
            return plan_transition(
                state, name, str(version), canonical, archive_existing_versions, user=user, now=now
            )

        return record_change(self, name, plan, call)

    def delete_model_version(self, name: str, version: Any) -> Any:
        from lineage_plugin.events import plan_version_delete
        from lineage_plugin.store.index_updates import index_deleted_version
        from lineage_plugin.store.recording import record_change
        from lineage_plugin.store.registry_state import forget_registration

        limit = T.registered_model_tag_value_limit()

        def plan(state: Any, user: str | None, now: int) -> Any:
            return plan_version_delete(state, name, str(version), user=user, now=now, limit=limit)

        call = functools.partial(super().delete_model_version, name, version)
        result = record_change(self, name, plan, call)
        index_deleted_version(self, name, str(version))
        forget_registration(self, name, str(version))
        return result

    def rename_registered_model(self, name: str, new_name: str) -> Any:
        from lineage_plugin.events import plan_rename
        from lineage_plugin.store.recording import record_change
        from lineage_plugin.store.registry_state import forget_model

        def plan(state: Any, user: str | None, now: int) -> Any:
            return plan_rename(state, name, new_name, user=user, now=now)

        call = functools.partial(super().rename_registered_model, name, new_name)
        result = record_change(self, new_name, plan, call)
        forget_model(self, name)
        return _then_follow(self, result, "rename_registered_model", name, new_name)

    def delete_registered_model(self, name: str) -> Any:
        from lineage_plugin.store.registry_state import forget_model

        result = super().delete_registered_model(name)  # type: ignore[misc]
        forget_model(self, name)
        return _then_follow(self, result, "delete_registered_model", name)

    def set_model_version_tag(self, name: str, version: Any, tag: Any) -> Any:
        from lineage_plugin.store.index_updates import index_event_tag
        from lineage_plugin.store.recording import warn_if_reserved
        from lineage_plugin.store.registry_state import forget_registration

        warn_if_reserved(tag.key)
        result = super().set_model_version_tag(name, version, tag)  # type: ignore[misc]

        if tag.key.startswith((T.RUN_ID, T.MANIFEST)):
            forget_registration(self, name, str(version))
        index_event_tag(self, tag.key, tag.value)
        return result

    def delete_model_version_tag(self, name: str, version: Any, key: str) -> Any:
        result = super().delete_model_version_tag(name, version, key)  # type: ignore[misc]
        from lineage_plugin.store.registry_state import forget_registration

        if key.startswith((T.RUN_ID, T.MANIFEST)):
            forget_registration(self, name, str(version))
        return result

    def set_registered_model_tag(self, name: str, tag: Any) -> Any:
        result = super().set_registered_model_tag(name, tag)  # type: ignore[misc]
        from lineage_plugin.store.index_updates import index_event_tag

        index_event_tag(self, tag.key, tag.value)
        return result


def _with_mixin(store: Any, mixin: type) -> Any:
    base = type(store)
    with _subclasses_lock:
        cls = _subclasses.get((base, mixin))
        if cls is None:
            cls = type(f"Lineage{base.__name__}", (mixin, base), {"__module__": __name__})
            _subclasses[(base, mixin)] = cls
    # The builder made this instance for us alone, so giving it the subclass changes nothing
    # for anyone else; the instance keeps the state MLflow's constructor set up.
    store.__class__ = cls
    return store


def build_tracking_store(store_uri: str, artifact_uri: str | None = None) -> TrackingStore:
    """Build the tracking store for ``lineage+<backend URI>``.

    Args:
        store_uri: The ``lineage+`` tracking URI.
        artifact_uri: Default artifact root, passed to MLflow's builder unchanged.

    Returns:
        MLflow's store for the backend URI, as an instance of a subclass of its own class.

    Raises:
        UnsupportedURIError: The URI wraps an unsupported or another ``lineage+`` URI.
    """
    from mlflow.tracking._tracking_service.utils import _tracking_store_registry

    backend = inner_uri(store_uri)
    builder = _tracking_store_registry.get_store_builder(backend)
    store = builder(store_uri=backend, artifact_uri=artifact_uri)
    gc = hasattr(store, "_hard_delete_run") and hasattr(store, "_hard_delete_experiment")
    store = _with_mixin(store, LineageGcTrackingStoreMixin if gc else LineageTrackingStoreMixin)
    store.lineage_uri = store_uri
    store.backend_uri = backend
    _enable_capture()
    _explain_server_limits(store_uri, backend)
    return store


def _explain_server_limits(store_uri: str, backend: str) -> None:
    """Say, once, what ``mlflow server`` cannot do with a lineage+ backend URI, and what to do."""
    from mlflow.environment_variables import MLFLOW_SERVER_ENABLE_JOB_EXECUTION

    # mlflow.server.constants.BACKEND_STORE_URI_ENV_VAR; importing mlflow.server costs seconds.
    if os.environ.get("_MLFLOW_SERVER_FILE_STORE") != store_uri:
        return  # not the backend of an mlflow server process
    if MLFLOW_SERVER_ENABLE_JOB_EXECUTION.get() and not backend.startswith(("http", "file")):
        _logger.warning(
            "mlflow-delta-lineage: MLflow's job runner (online scoring, judges, prompt "
            "optimisation, trace roll-ups) reads the raw backend URI and accepts only plain "
            "database URIs, so this server runs without jobs. Tracking, the registry, the UI, "
            "artifacts, the gateway and webhooks are unaffected. To run jobs, start a second "
            "`mlflow server --backend-store-uri %s` on the same database for them, or set "
            "MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false to silence this message.",
            backend,
        )


def build_registry_store(store_uri: str, tracking_uri: str | None = None) -> RegistryStore:
    """Build the model-registry store for ``lineage+<backend URI>``.

    Args:
        store_uri: The ``lineage+`` registry URI.
        tracking_uri: The tracking URI MLflow resolved next to it, passed to MLflow's builder.

    Returns:
        MLflow's registry store for the backend URI, as an instance of a subclass of its class.

    Raises:
        UnsupportedURIError: The URI wraps an unsupported or another ``lineage+`` URI.
    """
    from mlflow.tracking._model_registry.utils import _get_store_registry

    backend = inner_uri(store_uri)
    builder = _get_store_registry().get_store_builder(backend)
    # Call MLflow's builder the way MLflow's registry does: not every builder takes tracking_uri.
    if "tracking_uri" in inspect.signature(builder).parameters:
        store = builder(store_uri=backend, tracking_uri=tracking_uri)
    else:
        store = builder(store_uri=backend)
    store = _with_mixin(store, LineageRegistryStoreMixin)
    store.lineage_uri = store_uri
    store.backend_uri = backend
    if hasattr(store, "ManagedSessionMaker"):
        from lineage_plugin.store.recording import install_session_hook

        install_session_hook(store)
    _enable_capture()
    return store


def _enable_capture() -> None:
    # Contract: loading a lineage+ store turns capture on for the runs tracked through lineage+
    # stores; runs on a plain URI in the same process stay untouched (unless autolog() was asked).
    from lineage_plugin.tracking.autolog import enable_for_lineage_stores

    enable_for_lineage_stores()
