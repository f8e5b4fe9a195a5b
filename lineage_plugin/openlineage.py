"""OpenLineage run events from lineage records, written by hand (no ``openlineage-python``).

Events follow OpenLineage spec 2-0-2: plain dicts, keys sorted by the JSON writer, no nulls.
``export`` writes them now; live emission to OpenLineage backends will send the same events.

How a run maps to OpenLineage:

- ``eventType`` is always ``COMPLETE``: an export describes runs after the fact, and lineage
  consumers (Marquez, DataHub...) build their graph from terminal events. It says the lineage
  *record* is final, not that the MLflow run succeeded (the index keeps no run status).
  ``eventTime`` is the run's end time, else its start time, else the time of the export.
- ``run.runId`` is the MLflow run id (32 hex digits) written as a UUID (8-4-4-4-12): remove the
  dashes to get back to MLflow. A run id that is not 32 hex digits gets a stable ``uuid5``
  instead; the ``mlflowLineage_record`` run facet always carries the original id.
- ``job.namespace`` is ``mlflow/<experiment_id>`` (``mlflow`` when the experiment is unknown):
  MLflow groups runs by experiment and run names are unique only within one, so two runs named
  ``train`` in two experiments stay two jobs. ``job.name`` is the run name, else the run id.
- ``inputs``: one dataset per :class:`~lineage_plugin.records.DeltaInput`, named by the
  OpenLineage naming conventions (:func:`openlineage_dataset`), with the standard ``version``
  (``datasetVersion``: the Delta version as text, ``"0"`` included) and ``storage`` facets, the
  custom ``mlflowLineage_deltaTable`` dataset facet (table id, commit time, operation) and the
  custom ``mlflowLineage_read`` *input* facet (context, engine, filters, columns: facts about
  this read rather than about the table version). ``outputs`` is empty.
- Run facets: ``mlflowLineage_record`` (MLflow run id, experiment, user, times, lineage status,
  code version), ``mlflowLineage_environment`` (Python, platform, packages) and the standard
  ``processing_engine`` (MLflow and its version) when the environment was captured.
"""

from __future__ import annotations

import re
import uuid
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Protocol
from urllib.parse import urlparse

from lineage_plugin.records import drop_nulls
from lineage_plugin.settings import __version__

if TYPE_CHECKING:
    from typing import Any

    from lineage_plugin.records import DeltaInput, RunLineage


class RunFacts(Protocol):
    """What an event needs to know of a run besides its lineage (the index's run row)."""

    experiment_id: str | None
    run_name: str | None
    start_time: int | None
    end_time: int | None
    user: str | None


#: The default ``producer`` of the OpenLineage events and facets: this plugin at this version.
PRODUCER = f"https://github.com/mlflow-delta-lineage/mlflow-delta-lineage/tree/{__version__}"

OPENLINEAGE_SPEC = "https://openlineage.io/spec/2-0-2/OpenLineage.json"
RUN_EVENT_SCHEMA_URL = f"{OPENLINEAGE_SPEC}#/$defs/RunEvent"
_FACETS = "https://openlineage.io/spec/facets"
VERSION_FACET_SCHEMA_URL = (
    f"{_FACETS}/1-0-1/DatasetVersionDatasetFacet.json#/$defs/DatasetVersionDatasetFacet"
)
STORAGE_FACET_SCHEMA_URL = f"{_FACETS}/1-0-1/StorageDatasetFacet.json#/$defs/StorageDatasetFacet"
PROCESSING_ENGINE_FACET_SCHEMA_URL = (
    f"{_FACETS}/1-1-1/ProcessingEngineRunFacet.json#/$defs/ProcessingEngineRunFacet"
)
#: Where the custom facets' schemas live (one immutable URL per plugin version).
CUSTOM_FACETS_SCHEMA = (
    "https://github.com/mlflow-delta-lineage/mlflow-delta-lineage/blob/"
    f"{__version__}/docs/openlineage-facets.json"
)

_HEX_RUN_ID = re.compile(r"^[0-9a-fA-F]{32}$")
_WINDOWS_DRIVE = re.compile(r"^[A-Za-z]:[\\/]")
_SCHEME_ALIASES = {"s3a": "s3", "s3n": "s3", "gcs": "gs", "abfs": "abfss"}
# Object stores: the name is the key inside the bucket or container, without a leading slash.
_OBJECT_STORES = frozenset({"s3", "gs", "abfss", "wasbs", "wasb", "az", "adl", "azure"})


def openlineage_event(
    record: RunLineage,
    row: RunFacts,
    *,
    producer: str = PRODUCER,
    default_time: int | None = None,
) -> dict[str, Any]:
    """The OpenLineage ``RunEvent`` of one run (see the module doc for the mapping).

    Args:
        record: The run's lineage.
        row: The run's index row (experiment, name, times, user).
        producer: The ``producer`` and facets' ``_producer`` URI.
        default_time: Epoch ms used as ``eventTime`` when the run has neither an end nor a
            start time (default: now).

    Returns:
        The event as a plain dict, ready for ``json.dumps``.

    Example:
        >>> openlineage_event(record, RunRow(run_name="train"))["job"]["name"]
        'train'
    """
    when = row.end_time if row.end_time is not None else row.start_time
    if when is None:
        when = default_time if default_time is not None else now_utc_ms()
    run_facets: dict[str, Any] = {
        "mlflowLineage_record": _facet(
            producer,
            "MlflowLineageRecordRunFacet",
            runId=record.run_id,
            experimentId=row.experiment_id,
            runName=row.run_name,
            user=row.user,
            startTime=row.start_time,
            endTime=row.end_time,
            status=record.status,
            reasons=list(record.reasons) or None,
            code=record.code.to_dict() if record.code else None,
            schemaVersion=record.schema_version,
        )
    }
    env = record.environment
    if env is not None:
        run_facets["mlflowLineage_environment"] = _facet(
            producer,
            "MlflowLineageEnvironmentRunFacet",
            python=env.python,
            platform=env.platform,
            packages=dict(sorted(env.packages.items())),
        )
        if env.packages.get("mlflow"):
            run_facets["processing_engine"] = {
                "_producer": producer,
                "_schemaURL": PROCESSING_ENGINE_FACET_SCHEMA_URL,
                "name": "mlflow",
                "version": env.packages["mlflow"],
                "openlineageAdapterVersion": __version__,
            }
    namespace = f"mlflow/{row.experiment_id}" if row.experiment_id else "mlflow"
    return drop_nulls(
        {
            "eventType": "COMPLETE",
            "eventTime": iso_time(when),
            "producer": producer,
            "schemaURL": RUN_EVENT_SCHEMA_URL,
            "run": {"runId": openlineage_run_id(record.run_id), "facets": run_facets},
            "job": {"namespace": namespace, "name": row.run_name or record.run_id},
            "inputs": [_input_dataset(i, producer) for i in record.inputs],
            "outputs": [],
        }
    )


def openlineage_dataset(uri: str) -> tuple[str, str]:
    """The OpenLineage ``(namespace, name)`` of a table URI.

    Follows https://openlineage.io/docs/spec/naming: local files are namespace ``file`` and the
    absolute path; object stores are ``<scheme>://<bucket or container@account>`` and the key
    without a leading slash (``s3a``/``s3n`` become ``s3``, ``gcs`` becomes ``gs``, ``abfs``
    becomes ``abfss``); anything else (``hdfs``, ``dbfs``...) is ``<scheme>://<authority>`` (or
    just ``<scheme>`` without one) and the path.

    Args:
        uri: A normalised table URI (``file:///abs/path``, ``s3://bucket/key``...).

    Returns:
        ``(namespace, name)``.

    Example:
        >>> openlineage_dataset("s3://bucket/sales/orders")
        ('s3://bucket', 'sales/orders')
        >>> openlineage_dataset("file:///data/orders")
        ('file', '/data/orders')
    """
    if "://" not in uri and not re.match(r"^[A-Za-z][A-Za-z0-9+.-]+:", uri):
        return "file", uri.rstrip("/") or "/"  # a bare local path
    parsed = urlparse(uri)
    scheme = parsed.scheme.lower()
    scheme = _SCHEME_ALIASES.get(scheme, scheme)
    if scheme == "file":
        rest = uri[len("file://") :] if uri.startswith("file://") else parsed.path
        if _WINDOWS_DRIVE.match(rest):  # file://C:\data (Windows): no host, the rest is a path
            return "file", rest
        if parsed.netloc in ("", "localhost"):
            return "file", parsed.path.rstrip("/") or "/"
        return f"file://{parsed.netloc}", parsed.path.rstrip("/") or "/"
    if scheme in _OBJECT_STORES:
        return f"{scheme}://{parsed.netloc}", parsed.path.strip("/") or "/"
    namespace = f"{scheme}://{parsed.netloc}" if parsed.netloc else scheme
    return namespace, parsed.path.rstrip("/") or "/"


def openlineage_run_id(run_id: str) -> str:
    """An MLflow run id as an OpenLineage ``runId`` (a UUID).

    Args:
        run_id: The MLflow run id.

    Returns:
        The 32 hex digits with dashes (``8-4-4-4-12``); for any other id, a ``uuid5`` derived
        from it (stable across exports).

    Example:
        >>> openlineage_run_id("0123456789abcdef0123456789abcdef")
        '01234567-89ab-cdef-0123-456789abcdef'
    """
    if _HEX_RUN_ID.match(run_id):
        return str(uuid.UUID(hex=run_id))
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"mlflow-run:{run_id}"))


def iso_time(ms: int) -> str:
    """Epoch milliseconds as ISO-8601 UTC with milliseconds (``2024-05-01T12:00:00.123Z``)."""
    seconds, millis = divmod(int(ms), 1000)
    moment = datetime.fromtimestamp(seconds, tz=timezone.utc)
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{millis:03d}Z"


def _input_dataset(read: DeltaInput, producer: str) -> dict[str, Any]:
    namespace, name = openlineage_dataset(read.uri)
    return {
        "namespace": namespace,
        "name": name,
        "facets": {
            "version": {
                "_producer": producer,
                "_schemaURL": VERSION_FACET_SCHEMA_URL,
                "datasetVersion": str(read.version),
            },
            "storage": {
                "_producer": producer,
                "_schemaURL": STORAGE_FACET_SCHEMA_URL,
                "storageLayer": "delta",
                "fileFormat": "parquet",
            },
            "mlflowLineage_deltaTable": _facet(
                producer,
                "MlflowLineageDeltaTableDatasetFacet",
                uri=read.uri,
                version=read.version,
                tableId=read.table_id,
                displayName=read.name,
                commitTimestamp=read.commit_timestamp,
                timestampSource=read.timestamp_source,
                operation=read.operation,
            ),
        },
        "inputFacets": {
            "mlflowLineage_read": _facet(
                producer,
                "MlflowLineageReadInputDatasetFacet",
                context=read.context,
                engine=read.engine,
                filters=read.filters,
                partitions=read.partitions,
                columns=list(read.columns) if read.columns is not None else None,
                changeDataFrom=read.change_data_from,
            )
        },
    }


def _facet(producer: str, definition: str, **fields: Any) -> dict[str, Any]:
    schema = f"{CUSTOM_FACETS_SCHEMA}#/$defs/{definition}"
    return drop_nulls({"_producer": producer, "_schemaURL": schema, **fields})


def now_utc_ms() -> int:
    """Now, in milliseconds since the epoch."""
    return int(datetime.now(timezone.utc).timestamp() * 1000)
