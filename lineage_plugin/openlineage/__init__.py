"""OpenLineage: the run events of lineage records, sent live and written by ``export``.

- :mod:`~lineage_plugin.openlineage.events`: :func:`run_event`, the one mapping from a run's
  lineage to an OpenLineage ``RunEvent`` (its module doc lists the mapping);
- :mod:`~lineage_plugin.openlineage.naming`: dataset, run and job names, event times;
- :mod:`~lineage_plugin.openlineage.kit`: the classes events are built from,
  ``openlineage-python``'s own or a stand-in with the same constructors.

Live emission (``START`` and ``COMPLETE``/``FAIL``/``ABORT`` as runs start and end) is
:mod:`lineage_plugin.tracking.openlineage_emit`.
"""

from __future__ import annotations

from lineage_plugin.openlineage.events import (
    CUSTOM_FACETS_SCHEMA,
    PRODUCER,
    TERMINAL_EVENT_TYPES,
    MlflowRunFacts,
    RunFacts,
    event_type_of,
    openlineage_event,
    run_event,
)
from lineage_plugin.openlineage.kit import (
    OPENLINEAGE_SPEC,
    PROCESSING_ENGINE_FACET_SCHEMA_URL,
    RUN_EVENT_SCHEMA_URL,
    STORAGE_FACET_SCHEMA_URL,
    VERSION_FACET_SCHEMA_URL,
    Kit,
    client_kit,
    export_kit,
    plain_kit,
)
from lineage_plugin.openlineage.naming import (
    UNKNOWN_ENTRY_POINT,
    iso_time,
    job_name,
    job_namespace,
    now_utc_ms,
    openlineage_dataset,
    openlineage_run_id,
)

__all__ = [
    "CUSTOM_FACETS_SCHEMA",
    "OPENLINEAGE_SPEC",
    "PROCESSING_ENGINE_FACET_SCHEMA_URL",
    "PRODUCER",
    "RUN_EVENT_SCHEMA_URL",
    "STORAGE_FACET_SCHEMA_URL",
    "TERMINAL_EVENT_TYPES",
    "UNKNOWN_ENTRY_POINT",
    "VERSION_FACET_SCHEMA_URL",
    "Kit",
    "MlflowRunFacts",
    "RunFacts",
    "client_kit",
    "event_type_of",
    "export_kit",
    "iso_time",
    "job_name",
    "job_namespace",
    "now_utc_ms",
    "openlineage_dataset",
    "openlineage_event",
    "openlineage_run_id",
    "plain_kit",
    "run_event",
]
