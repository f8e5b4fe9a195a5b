"""Keep the lineage index up to date as the wrapped stores write lineage into MLflow.

Every function here is called after MLflow's own call succeeded, and never breaks it: a failure
is a warning (an error in strict mode), and ``mlflow-lineage reindex`` repairs the index.
"""

from __future__ import annotations

from typing import Any

from lineage_plugin import tags as T
from lineage_plugin.events import EVENT_PREFIX, RegistryEvent
from lineage_plugin.store.index import RunRow, index_for
from lineage_plugin.store.recording import failed, writing_own_events


def run_row(info: Any) -> RunRow:
    """The index's row for an MLflow ``RunInfo``."""
    return RunRow(
        experiment_id=info.experiment_id,
        run_name=info.run_name,
        start_time=info.start_time,
        end_time=info.end_time,
        user=info.user_id,
    )


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


def index_run_tags(store: Any, run_id: str, keys: list[str]) -> None:
    """Index a run again when a tag write touched its lineage (``lineage.input.*``)."""
    if not any(k.startswith(T.INPUT_PREFIX) or k == T.STATUS for k in keys):
        return
    try:
        run = store.get_run(run_id)
        record = T.run_lineage_from_tags(run_id, run.data.tags)
        index_for(store).record_run(record, run_row(run.info))
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
    """Mark a deleted model version in the index (its lineage stays queryable)."""
    try:
        index_for(store).mark_deleted(name, version)
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
