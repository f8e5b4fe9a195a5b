"""The classes an OpenLineage event is built from: ``openlineage-python``'s own, or a stand-in.

:func:`lineage_plugin.openlineage.events.run_event` builds every event, live or exported, once,
from a :class:`Kit`:

- :func:`client_kit`: the client's ``event_v2`` and ``facet_v2`` classes and its ``Serde``.
  Live emission always uses it (``OpenLineageClient.emit`` takes only its own classes), and
  so does ``export`` when the client is installed.
- :func:`plain_kit`: a stand-in with the same constructors and the same serialisation, so
  ``mlflow-lineage export`` still writes ``openlineage.jsonl`` on a plain install (the
  archive is the lineage's backup: it must not need an optional package). The tests build the
  same events with both and require them to be equal, key for key.

The client is imported only by :func:`client_kit`, never when this module is imported.
"""

from __future__ import annotations

import enum
import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

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
ERROR_MESSAGE_FACET_SCHEMA_URL = (
    f"{_FACETS}/1-0-1/ErrorMessageRunFacet.json#/$defs/ErrorMessageRunFacet"
)
JOB_TYPE_FACET_SCHEMA_URL = f"{_FACETS}/2-0-4/JobTypeJobFacet.json#/$defs/JobTypeJobFacet"

#: Where a custom facet goes: its base class in the spec.
CUSTOM_FACET_KINDS = ("run", "dataset", "input", "output")


@dataclass(frozen=True)
class Kit:
    """The constructors of one implementation of the OpenLineage classes.

    Each class attribute is called with keyword arguments only, exactly as
    ``openlineage.client.event_v2`` and ``openlineage.client.facet_v2`` name them (facets take
    ``producer=``). ``custom_facet(kind, schema_url, producer, fields)`` makes a facet of one
    of :data:`CUSTOM_FACET_KINDS` with its own schema; ``to_dict(event)`` serialises an event
    as the client's ``Serde.to_dict`` does (no nulls, enums as their values).
    """

    name: str
    RunEvent: Callable[..., Any]
    Run: Callable[..., Any]
    Job: Callable[..., Any]
    InputDataset: Callable[..., Any]
    OutputDataset: Callable[..., Any]
    RunState: Any
    DatasetVersionDatasetFacet: Callable[..., Any]
    StorageDatasetFacet: Callable[..., Any]
    ProcessingEngineRunFacet: Callable[..., Any]
    ErrorMessageRunFacet: Callable[..., Any]
    JobTypeJobFacet: Callable[..., Any]
    custom_facet: Callable[[str, str, str, dict[str, Any]], Any]
    to_dict: Callable[[Any], dict[str, Any]]


@functools.cache
def client_kit() -> Kit:
    """The kit of ``openlineage-python``'s own classes.

    Raises:
        ImportError: ``openlineage-python`` is not installed.
    """
    from openlineage.client import event_v2
    from openlineage.client.constants import __version__ as client_version
    from openlineage.client.facet_v2 import (
        dataset_version_dataset,
        error_message_run,
        job_type_job,
        processing_engine_run,
        storage_dataset,
    )
    from openlineage.client.generated import base
    from openlineage.client.serde import Serde

    bases = {
        "run": base.RunFacet,
        "dataset": base.DatasetFacet,
        "input": base.InputDatasetFacet,
        "output": base.OutputDatasetFacet,
    }

    def custom_facet(kind: str, schema_url: str, producer: str, fields: dict[str, Any]) -> Any:
        # The client's way to add fields to a facet; the schema is ours, not the base class's.
        facet = bases[kind](producer=producer).with_additional_properties(**fields)
        facet._schemaURL = schema_url
        return facet

    return Kit(
        name=f"openlineage-python {client_version}",
        RunEvent=event_v2.RunEvent,
        Run=event_v2.Run,
        Job=event_v2.Job,
        InputDataset=event_v2.InputDataset,
        OutputDataset=event_v2.OutputDataset,
        RunState=event_v2.RunState,
        DatasetVersionDatasetFacet=dataset_version_dataset.DatasetVersionDatasetFacet,
        StorageDatasetFacet=storage_dataset.StorageDatasetFacet,
        ProcessingEngineRunFacet=processing_engine_run.ProcessingEngineRunFacet,
        ErrorMessageRunFacet=error_message_run.ErrorMessageRunFacet,
        JobTypeJobFacet=job_type_job.JobTypeJobFacet,
        custom_facet=custom_facet,
        to_dict=Serde.to_dict,
    )


def export_kit() -> Kit:
    """The client's kit when ``openlineage-python`` is installed, else :func:`plain_kit`."""
    try:
        return client_kit()
    except ImportError:
        return plain_kit()


class RunState(enum.Enum):
    """The stand-in of ``openlineage.client.event_v2.RunState`` (the spec's ``eventType``)."""

    START = "START"
    RUNNING = "RUNNING"
    COMPLETE = "COMPLETE"
    ABORT = "ABORT"
    FAIL = "FAIL"
    OTHER = "OTHER"


class PlainObject:
    """A stand-in instance: the fields it was built with, serialised by :func:`plain_to_dict`."""

    __slots__ = ("fields",)

    def __init__(self, fields: dict[str, Any]) -> None:
        self.fields = fields


def _plain(schema_url: str | None = None, *, facet: bool = False) -> Callable[..., PlainObject]:
    def make(**fields: Any) -> PlainObject:
        if facet:
            fields = {"_producer": fields.pop("producer"), "_schemaURL": schema_url, **fields}
        elif schema_url is not None:
            fields = {**fields, "schemaURL": schema_url}
        return PlainObject(fields)

    return make


def _plain_custom_facet(
    kind: str, schema_url: str, producer: str, fields: dict[str, Any]
) -> PlainObject:
    if kind not in CUSTOM_FACET_KINDS:
        raise KeyError(kind)
    return PlainObject({"_producer": producer, "_schemaURL": schema_url, **fields})


def plain_to_dict(value: Any) -> Any:
    """Serialise stand-in objects as the client's ``Serde.to_dict`` serialises its own.

    ``None`` values are left out of objects, ``None`` and empty objects out of lists, and
    enums become their values.
    """
    if isinstance(value, PlainObject):
        value = value.fields
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, dict):
        return {k: plain_to_dict(v) for k, v in value.items() if v is not None}
    if isinstance(value, (list, tuple)):
        items = [plain_to_dict(v) for v in value if v is not None]
        return [v for v in items if v != {}]
    return value


@functools.cache
def plain_kit() -> Kit:
    """The stand-in kit (no ``openlineage-python`` needed)."""
    return Kit(
        name="stand-in",
        RunEvent=_plain(RUN_EVENT_SCHEMA_URL),
        Run=_plain(),
        Job=_plain(),
        InputDataset=_plain(),
        OutputDataset=_plain(),
        RunState=RunState,
        DatasetVersionDatasetFacet=_plain(VERSION_FACET_SCHEMA_URL, facet=True),
        StorageDatasetFacet=_plain(STORAGE_FACET_SCHEMA_URL, facet=True),
        ProcessingEngineRunFacet=_plain(PROCESSING_ENGINE_FACET_SCHEMA_URL, facet=True),
        ErrorMessageRunFacet=_plain(ERROR_MESSAGE_FACET_SCHEMA_URL, facet=True),
        JobTypeJobFacet=_plain(JOB_TYPE_FACET_SCHEMA_URL, facet=True),
        custom_facet=_plain_custom_facet,
        to_dict=plain_to_dict,
    )
