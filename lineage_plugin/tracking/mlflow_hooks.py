"""Hooks into MLflow's client: runs starting, and datasets logged with ``mlflow.log_input``.

- ``MlflowClient.create_run`` (``mlflow.start_run`` goes through it): reads made while no run
  was active attach to the run just created.
- ``MlflowClient.log_inputs`` (``mlflow.log_input`` goes through it): a dataset whose source is
  a ``DeltaDatasetSource`` is recorded as a lineage input of that run.
- ``DeltaDatasetSource.to_dict``: MLflow drops ``delta_table_version`` when it is 0; the patch
  keeps it, so version 0 is recorded (and shown) as 0.
- ``MlflowClient.set_terminated`` (``mlflow.end_run`` goes through it) and ``update_run`` with
  a final status: the run ended. With ``create_run``, they send the run's OpenLineage events
  when OpenLineage is configured (:mod:`lineage_plugin.tracking.openlineage_emit`).

Each hook acts only on runs capture applies to (:mod:`lineage_plugin.tracking.scope`): for the
run hooks, the runs of a client whose tracking URI is a ``lineage+`` URI, unless capture was
asked for every run.
"""

from __future__ import annotations

import functools
import json
from typing import Any

from lineage_plugin.delta import log as delta_log
from lineage_plugin.errors import CaptureError
from lineage_plugin.records import DeltaInput
from lineage_plugin.tracking import openlineage_emit
from lineage_plugin.tracking.capture import is_plugin_writing, session
from lineage_plugin.tracking.patching import patch
from lineage_plugin.tracking.scope import capture_applies
from lineage_plugin.tracking.writer import DELTA_SOURCE_TYPE

ENGINE = "mlflow"


def _client_uri(client: Any) -> str | None:
    """The tracking URI an ``MlflowClient`` tracks through (``None``: MLflow's current one)."""
    tracking = getattr(client, "_tracking_client", None)
    return getattr(tracking, "tracking_uri", None)


def _captured(a: dict[str, Any]) -> bool:
    """Whether the client call in ``a`` is the user's, on a run capture applies to."""
    return not is_plugin_writing() and capture_applies(_client_uri(a["self"]))


def _after_create_run(run: Any, a: dict[str, Any]) -> None:
    if _captured(a):
        session().run_started(run.info.run_id, run.data.tags)
        openlineage_emit.run_started(a["self"], run.info.run_id)


def _after_set_terminated(result: Any, a: dict[str, Any]) -> None:
    if _captured(a):
        _run_ended(a)


def _after_update_run(result: Any, a: dict[str, Any]) -> None:
    if a["status"] is not None and _captured(a):  # a rename alone does not end a run
        _run_ended(a)


def _run_ended(a: dict[str, Any]) -> None:
    # The run's store answered: what a write during an outage left out is written now, so
    # the record names every read (and says complete only then).
    session().flush_unwritten(a["run_id"])
    openlineage_emit.run_ended(a["self"], a["run_id"], a["status"])


def describe_dataset_source(source: dict[str, Any], context: str) -> DeltaInput:
    """Describe a read logged as an MLflow ``DeltaDatasetSource``.

    Raises:
        CaptureError: The source names only a catalog table (needs the Spark engine), or the
            table at the path is not the table the source names.
    """
    path = source.get("path")
    if not path:
        raise CaptureError(
            f"the dataset source names the catalog table '{source.get('delta_table_name')}' "
            "without a path; catalog tables are resolved by the Spark engine only."
        )
    info = delta_log.resolve(path, source.get("delta_table_version"))
    expected_id = source.get("delta_table_id")
    if expected_id and info.table_id and expected_id != info.table_id:
        raise CaptureError(
            f"'{path}' now holds table {info.table_id}, not the logged table {expected_id} "
            "(it was re-created)."
        )
    return info.to_input(engine=ENGINE, context=context, name=source.get("delta_table_name"))


def _after_log_inputs(result: Any, a: dict[str, Any]) -> None:
    if not _captured(a):
        return
    from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT

    run_id = a["run_id"]
    for item in a.get("datasets") or ():
        dataset = item.dataset
        if dataset.source_type != DELTA_SOURCE_TYPE:
            continue
        context = next(
            (t.value for t in item.tags or () if t.key == MLFLOW_DATASET_CONTEXT), "training"
        )
        try:
            inp = describe_dataset_source(json.loads(dataset.source), context)
        except CaptureError as exc:
            session().fail(f"mlflow.log_input({dataset.name}): {exc}", run_id=run_id)
            continue
        except Exception as exc:
            session().fail(
                f"mlflow.log_input({dataset.name}): could not describe the dataset ({exc})",
                run_id=run_id,
            )
            continue
        session().record(inp, run_id=run_id, log_dataset=False)


def _keep_version_zero(original: Any) -> Any:
    def to_dict(self: Any) -> dict[Any, Any]:
        info = original(self)
        if getattr(self, "_delta_table_version", None) == 0 and capture_applies():
            info["delta_table_version"] = 0
        return info

    to_dict.__wrapped__ = original  # type: ignore[attr-defined]
    return to_dict


def install(module: Any = None) -> None:
    """Patch MLflow's client (called once MLflow's client module is imported)."""
    from mlflow.data.delta_dataset_source import DeltaDatasetSource
    from mlflow.tracking.client import MlflowClient

    from lineage_plugin.tracking.patching import after_hook

    # always: these hooks ask about the URI of the client they were called on, not the global one.
    for name, after in (
        ("create_run", _after_create_run),
        ("log_inputs", _after_log_inputs),
        ("set_terminated", _after_set_terminated),
        ("update_run", _after_update_run),
    ):
        patch(MlflowClient, name, functools.partial(after_hook, after=after, always=True))
    patch(DeltaDatasetSource, "to_dict", _keep_version_zero)
