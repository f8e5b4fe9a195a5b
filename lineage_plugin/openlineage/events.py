"""OpenLineage ``RunEvent`` of a run, for live emission and for ``export`` alike (spec 2-0-2).

:func:`run_event` is the one place a run becomes an event; it builds it from a
:class:`~lineage_plugin.openlineage.kit.Kit` (``openlineage-python``'s classes, or their
stand-in for ``export`` on a plain install). How a run maps to OpenLineage:

- ``eventType``: ``START`` when the run starts (live), then on its end ``COMPLETE``
  (MLflow ``FINISHED``), ``FAIL`` (``FAILED``) or ``ABORT`` (``KILLED``); an export gives each
  run the type of its MLflow status (``RUNNING`` for a run still going, ``COMPLETE`` when the
  status is unknown). ``eventTime``: the run's start time for ``START``, else its end time,
  else its start time, else now.
- ``run.runId`` is the MLflow run id (32 hex digits) written as a UUID (8-4-4-4-12): remove the
  dashes to get back to MLflow. A run id that is not 32 hex digits gets a stable ``uuid5``
  instead; the ``mlflowLineage_record`` run facet always carries the original id.
- ``job``: namespace ``mlflow/<experiment_id>``, name the run's entry point (``train.py``; see
  :func:`~lineage_plugin.openlineage.naming.job_name`): the same for every run of the same
  code in the same experiment, so a lineage backend shows one job with many runs. The standard
  ``jobType`` facet says ``BATCH``, integration ``MLFLOW``.
- ``inputs``: one dataset per :class:`~lineage_plugin.records.DeltaInput`, named by the
  OpenLineage naming conventions, with the standard ``version`` (``datasetVersion``: the
  Delta version as text, ``"0"`` included) and ``storage`` facets, the custom
  ``mlflowLineage_deltaTable`` dataset facet (table id, commit time, operation) and the custom
  ``mlflowLineage_read`` *input* facet (context, engine, filters, columns). ``outputs``: the
  table versions the run wrote (``record.outputs``), with the same
  dataset facets.
- Run facets: ``mlflowLineage_record`` (MLflow run id, experiment, user, times, MLflow status,
  lineage status, code version), ``mlflowLineage_environment`` (Python, platform, packages)
  and the standard ``processing_engine`` (MLflow and its version) when the environment was
  captured; on ``FAIL``, the standard ``errorMessage`` when the run failed on an exception.

The custom facets' schemas are ``docs/openlineage-facets.json``.
"""

from __future__ import annotations

import traceback
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from lineage_plugin.openlineage.kit import Kit, export_kit
from lineage_plugin.openlineage.naming import (
    iso_time,
    job_name,
    job_namespace,
    now_utc_ms,
    openlineage_dataset,
    openlineage_run_id,
)
from lineage_plugin.records import drop_nulls
from lineage_plugin.settings import __version__

if TYPE_CHECKING:
    from lineage_plugin.records import DeltaInput, DeltaOutput, RunLineage


class RunFacts(Protocol):
    """What an event needs to know of a run besides its lineage (the index's run row)."""

    experiment_id: str | None
    run_name: str | None
    start_time: int | None
    end_time: int | None
    user: str | None


@dataclass(frozen=True, kw_only=True)
class MlflowRunFacts:
    """:class:`RunFacts` of an MLflow ``RunInfo``, with its status (``FINISHED``...); also
    what the lineage index's ``RunRow`` takes from it."""

    experiment_id: str | None = None
    run_name: str | None = None
    start_time: int | None = None
    end_time: int | None = None
    user: str | None = None
    run_status: str | None = None

    @classmethod
    def of(cls, info: Any) -> MlflowRunFacts:
        """The facts of an MLflow ``RunInfo``."""
        return cls(
            experiment_id=info.experiment_id,
            run_name=info.run_name,
            start_time=info.start_time,
            end_time=info.end_time,
            user=info.user_id,
            run_status=info.status,
        )


#: The default ``producer`` of the OpenLineage events and facets: this plugin at this version.
PRODUCER = f"https://github.com/mlflow-delta-lineage/mlflow-delta-lineage/tree/{__version__}"
#: Where the custom facets' schemas live (one immutable URL per plugin version).
CUSTOM_FACETS_SCHEMA = (
    "https://github.com/mlflow-delta-lineage/mlflow-delta-lineage/blob/"
    f"{__version__}/docs/openlineage-facets.json"
)

#: The event type that ends a run, by MLflow run status.
TERMINAL_EVENT_TYPES = {"FINISHED": "COMPLETE", "FAILED": "FAIL", "KILLED": "ABORT"}
_EXPORTED_EVENT_TYPES = {**TERMINAL_EVENT_TYPES, "RUNNING": "RUNNING", "SCHEDULED": "OTHER"}


def event_type_of(run_status: str | None) -> str:
    """The ``eventType`` that describes a run in this MLflow status (``COMPLETE`` if unknown).

    Example:
        >>> event_type_of("FAILED"), event_type_of(None)
        ('FAIL', 'COMPLETE')
    """
    return _EXPORTED_EVENT_TYPES.get(str(run_status).upper(), "COMPLETE")


def run_event(
    record: RunLineage,
    row: RunFacts,
    *,
    event_type: str | None = None,
    producer: str = PRODUCER,
    default_time: int | None = None,
    outputs: Sequence[DeltaOutput] | None = None,
    error: BaseException | None = None,
    kit: Kit | None = None,
) -> Any:
    """The OpenLineage ``RunEvent`` of one run (see the module doc for the mapping).

    Args:
        record: The run's lineage.
        row: The run's facts (experiment, name, times, user; ``run_status`` when it has one).
        event_type: ``START``, ``COMPLETE``, ``FAIL``, ``ABORT``...; default: the type of the
            row's ``run_status`` (:func:`event_type_of`).
        producer: The ``producer`` and facets' ``_producer`` URI.
        default_time: Epoch ms used as ``eventTime`` when the run has no time for it
            (default: now).
        outputs: The table versions the run wrote; default: the record's ``outputs``, if any.
        error: The exception a failed run ended on (an ``errorMessage`` facet on ``FAIL``).
        kit: The classes to build it from (default: the client's when installed).

    Returns:
        An instance of the kit's ``RunEvent`` (``kit.to_dict`` makes it a plain dict).

    Example:
        >>> event = run_event(record, row, event_type="START", kit=client_kit())
        >>> OpenLineageClient().emit(event)
    """
    kit = kit or export_kit()
    status = getattr(row, "run_status", None)
    kind = event_type or event_type_of(status)
    when = row.start_time if kind == "START" else row.end_time
    if when is None:
        when = row.start_time
    if when is None:
        when = default_time if default_time is not None else now_utc_ms()
    written = record.outputs if outputs is None else outputs
    return kit.RunEvent(
        eventTime=iso_time(when),
        producer=producer,
        eventType=kit.RunState[kind],
        run=kit.Run(
            runId=openlineage_run_id(record.run_id),
            facets=_run_facets(kit, record, row, producer, error if kind == "FAIL" else None),
        ),
        job=kit.Job(
            namespace=job_namespace(row.experiment_id),
            name=job_name(record.code),
            facets={
                "jobType": kit.JobTypeJobFacet(
                    producer=producer, processingType="BATCH", integration="MLFLOW", jobType="JOB"
                )
            },
        ),
        inputs=[_dataset(kit, read, producer, output=False) for read in record.inputs],
        outputs=[_dataset(kit, write, producer, output=True) for write in written],
    )


def openlineage_event(
    record: RunLineage,
    row: RunFacts,
    *,
    producer: str = PRODUCER,
    default_time: int | None = None,
    kit: Kit | None = None,
) -> dict[str, Any]:
    """The run's event as ``export`` writes it: :func:`run_event` as a plain dict.

    Example:
        >>> openlineage_event(record, RunRow(experiment_id="42"))["job"]["namespace"]
        'mlflow/42'
    """
    kit = kit or export_kit()
    event = run_event(record, row, producer=producer, default_time=default_time, kit=kit)
    return kit.to_dict(event)


def _run_facets(
    kit: Kit, record: RunLineage, row: RunFacts, producer: str, error: BaseException | None
) -> dict[str, Any]:
    facets: dict[str, Any] = {
        "mlflowLineage_record": _custom(
            kit,
            "run",
            producer,
            "MlflowLineageRecordRunFacet",
            runId=record.run_id,
            experimentId=row.experiment_id,
            runName=row.run_name,
            user=row.user,
            startTime=row.start_time,
            endTime=row.end_time,
            runStatus=getattr(row, "run_status", None),
            status=record.status,
            reasons=list(record.reasons) or None,
            code=record.code.to_dict() if record.code else None,
            schemaVersion=record.schema_version,
        )
    }
    env = record.environment
    if env is not None:
        facets["mlflowLineage_environment"] = _custom(
            kit,
            "run",
            producer,
            "MlflowLineageEnvironmentRunFacet",
            python=env.python,
            platform=env.platform,
            packages=dict(sorted(env.packages.items())),
        )
        if env.packages.get("mlflow"):
            facets["processing_engine"] = kit.ProcessingEngineRunFacet(
                producer=producer,
                version=env.packages["mlflow"],
                name="mlflow",
                openlineageAdapterVersion=__version__,
            )
    if error is not None:
        facets["errorMessage"] = kit.ErrorMessageRunFacet(
            producer=producer,
            message=f"{type(error).__name__}: {error}",
            programmingLanguage="python",
            stackTrace="".join(traceback.format_exception(error)),
        )
    return facets


def _dataset(kit: Kit, table: DeltaInput | DeltaOutput, producer: str, *, output: bool) -> Any:
    namespace, name = openlineage_dataset(table.uri)
    facets = {
        "version": kit.DatasetVersionDatasetFacet(
            producer=producer, datasetVersion=str(table.version)
        ),
        "storage": kit.StorageDatasetFacet(
            producer=producer, storageLayer="delta", fileFormat="parquet"
        ),
        "mlflowLineage_deltaTable": _custom(
            kit,
            "dataset",
            producer,
            "MlflowLineageDeltaTableDatasetFacet",
            uri=table.uri,
            version=table.version,
            tableId=table.table_id,
            displayName=table.name,
            commitTimestamp=table.commit_timestamp,
            timestampSource=table.timestamp_source,
            operation=table.operation,
        ),
    }
    if output:
        return kit.OutputDataset(namespace=namespace, name=name, facets=facets, outputFacets=None)
    read = _custom(
        kit,
        "input",
        producer,
        "MlflowLineageReadInputDatasetFacet",
        context=table.context,
        engine=table.engine,
        filters=table.filters,
        partitions=table.partitions,
        columns=list(table.columns) if table.columns is not None else None,
        changeDataFrom=table.change_data_from,
    )
    return kit.InputDataset(
        namespace=namespace, name=name, facets=facets, inputFacets={"mlflowLineage_read": read}
    )


def _custom(kit: Kit, kind: str, producer: str, definition: str, **fields: Any) -> Any:
    schema = f"{CUSTOM_FACETS_SCHEMA}#/$defs/{definition}"
    return kit.custom_facet(kind, schema, producer, drop_nulls(fields))
