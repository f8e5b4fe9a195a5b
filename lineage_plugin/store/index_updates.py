"""Keep the lineage index up to date as the wrapped stores write lineage into MLflow.

Every function here is called after MLflow's own call succeeded, and never breaks it: a failure
is a warning (an error in strict mode), and ``mlflow-lineage reindex`` repairs the index.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from lineage_plugin import tags as T
from lineage_plugin.deleted import DeletedVersion
from lineage_plugin.events import EVENT_PREFIX, RegistryEvent
from lineage_plugin.openlineage import MlflowRunFacts
from lineage_plugin.store.deadlocks import retry_deadlocks
from lineage_plugin.store.index import LineageIndex, RunRow, index_for
from lineage_plugin.store.recording import failed, writing_own_events

#: MLflow's run-name tag (``mlflow.utils.mlflow_tags.MLFLOW_RUN_NAME``).
RUN_NAME_TAG = "mlflow.runName"


def run_row(info: Any, *, experiment_deleted: bool = False) -> RunRow:
    """The index's row for an MLflow ``RunInfo`` (deleted with its experiment, if it was)."""
    facts = dataclasses.asdict(MlflowRunFacts.of(info))
    return RunRow(**facts, deleted=experiment_deleted or info.lifecycle_stage == "deleted")


def model_version_row(mv: Any) -> dict[str, Any]:
    """The index's row for an MLflow ``ModelVersion``."""
    tags = dict(mv.tags or {})
    return {
        "name": mv.name,
        "version": int(mv.version),
        "run_id": tags.get(T.RUN_ID) or mv.run_id,
        "created": mv.creation_timestamp,
        "status": tags.get(T.STATUS),
        "deleted": 0,
    }


def deleted_version_row(name: str, record: DeletedVersion) -> dict[str, Any]:
    """The index's row for a deleted model version, from the record it left on its model
    (the same values :func:`model_version_row` gave it while it lived)."""
    return {
        "name": name,
        "version": int(record.version),
        "run_id": record.run_id,
        "created": record.created,
        "status": record.status,
        "deleted": 1,
    }


def index_run_tags(store: Any, run_id: str, tags: dict[str, str]) -> None:
    """Index a run again when a tag write touched its lineage (``lineage.input.*``,
    ``lineage.output.*``), or rename it when the write set its name (``mlflow.runName``)."""
    if not any(k.startswith((T.INPUT_PREFIX, T.OUTPUT_PREFIX)) or k == T.STATUS for k in tags):
        if RUN_NAME_TAG in tags:
            _rename_run(store, run_id, tags[RUN_NAME_TAG])
        return
    try:
        index = index_for(store)
        if in_backend_database(store, index):
            retry_deadlocks(lambda: _index_run_from_tables(index, run_id))
            return
        run = store.get_run(run_id)
        if T.STATUS not in run.data.tags:
            return  # no lineage (yet): reindex leaves such runs out too
        record = T.run_lineage_from_tags(run_id, run.data.tags)
        retry_deadlocks(lambda: index.record_run(record, run_row(run.info)))
    except Exception as exc:
        failed("a run in the lineage index", exc)


def in_backend_database(store: Any, index: LineageIndex) -> bool:
    """Whether the store's lineage index lives in the store's own SQL database (an MLflow SQL
    store without ``MLFLOW_LINEAGE_INDEX_URI``: ``index_for`` gave it the store's engine)."""
    return getattr(store, "engine", None) is not None and index.url == store.backend_uri


def _index_run_from_tables(index: LineageIndex, run_id: str) -> None:
    """Index a run read straight from MLflow's tables, in the index's own transaction: the
    run's columns and lineage tags, not the whole run ``get_run`` builds."""
    from lineage_plugin.store.mlflow_tables import lineage_run

    with index.begin() as conn:
        found = lineage_run(conn, run_id)
        if found is not None:
            index.record_run(*found, conn=conn)


def _rename_run(store: Any, run_id: str, name: str) -> None:
    from lineage_plugin.store.index_lifecycle import rename_run

    try:
        rename_run(index_for(store), run_id, name)
    except Exception as exc:
        failed("a run in the lineage index", exc)


def index_run_info(store: Any, run_id: str, info: Any) -> None:
    """Keep an indexed run's name and end time as ``update_run_info`` left them."""
    from lineage_plugin.store.index_lifecycle import update_run

    if info is None or not hasattr(info, "end_time"):
        return
    try:
        update_run(index_for(store), run_id, run_name=info.run_name, end_time=info.end_time)
    except Exception as exc:
        failed("a run in the lineage index", exc)


def index_model_version(store: Any, mv: Any) -> None:
    """Index a new model version and its source run."""
    if T.is_prompt_version(mv.tags or {}):
        return  # a prompt version, not a model (reindex skips them too)
    try:
        index_for(store).record_model_version(model_version_row(mv))
    except Exception as exc:
        failed("a model version in the lineage index", exc)


def index_deleted_version(store: Any, name: str, version: str) -> None:
    """Mark a deleted model version in the index (its lineage stays queryable), and index its
    history as the deletion left it on the registered model (what ``reindex`` reads), in one
    transaction."""
    from lineage_plugin.events import events_from_tags
    from lineage_plugin.store.index_lifecycle import replace_payloads

    try:
        tags = store.get_registered_model(name).tags or {}
        moved = [e for e in events_from_tags(tags, name=name) if e.version == str(version)]
        index = index_for(store)
        with index.begin() as conn:
            index.mark_deleted(name, version, conn=conn)
            index.record_events(moved, conn=conn)
            replace_payloads(conn, moved)
    except Exception as exc:
        failed("a deleted model version in the lineage index", exc)


def index_event_tag(store: Any, key: str, value: str) -> None:
    """Index an event a recording client wrote as a tag (server side)."""
    if not key.startswith(EVENT_PREFIX) or writing_own_events():
        return
    try:
        index_for(store).record_events([RegistryEvent.from_json(value)])
    except Exception as exc:
        failed("a registry event in the lineage index", exc)


def follow_lifecycle(store: Any, call: str, subject: str, new_name: str | None = None) -> None:
    """Bring the index in line after a lifecycle call of MLflow's store succeeded.

    Args:
        store: The wrapped store the call went through.
        call: The store method (``delete_run``, ``restore_run``, ``_hard_delete_run``,
            ``delete_experiment``, ``restore_experiment``, ``_hard_delete_experiment``,
            ``rename_registered_model``, ``delete_registered_model``).
        subject: The run id, experiment id or registered model name it was called with.
        new_name: The new name, for ``rename_registered_model``.
    """
    from lineage_plugin.store import index_lifecycle as life

    try:
        index = index_for(store)
        if call in ("delete_run", "restore_run"):
            life.mark_runs(index, [subject], deleted=call == "delete_run")
        elif call == "_hard_delete_run":
            life.forget_runs(index, [subject])
        elif call == "delete_experiment":
            life.mark_experiment(index, subject, deleted=True)
        elif call == "restore_experiment":
            life.mark_experiment(index, subject, deleted=False)
            life.mark_runs(index, _deleted_lineage_runs(store, subject), deleted=True)
        elif call == "_hard_delete_experiment":
            life.forget_experiment(index, subject)
        elif call == "rename_registered_model" and new_name is not None:
            life.rename_model(index, subject, new_name)
        elif call == "delete_registered_model":
            life.forget_model(index, subject)
        else:
            raise ValueError(f"unknown lifecycle call {call}")
    except Exception as exc:
        failed(f"{call}({subject}) in the lineage index", exc)


def _deleted_lineage_runs(store: Any, experiment_id: str) -> list[str]:
    """Runs of a restored experiment that stay deleted (the file store restores the experiment
    only; SQL stores restore its runs too)."""
    from mlflow.entities import ViewType

    found: list[str] = []
    token = None
    while True:
        page = store.search_runs(
            experiment_ids=[experiment_id],
            filter_string=f"tags.`{T.STATUS}` LIKE '%'",
            run_view_type=ViewType.DELETED_ONLY,
            max_results=1000,
            page_token=token,
        )
        found.extend(r.info.run_id for r in page)
        token = page.token
        if not token:
            return found
