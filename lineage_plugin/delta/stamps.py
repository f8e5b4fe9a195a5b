"""The stamp a run puts on every Delta commit it makes, so the table's own history says which
MLflow run wrote each version (``DeltaTable.history()``, Spark's ``DESCRIBE HISTORY``).

A stamp is three keys of the commit's custom metadata, which Delta keeps as top-level keys of
the commit's ``commitInfo``:

- ``mlflow.runId``: the run that made the commit;
- ``mlflow.experimentId``: that run's experiment;
- ``mlflow.lineage.writeId``: a random id, one per write call, by which the plugin finds the
  version(s) its call created in the table's history (``write_deltalake`` returns nothing, and
  a concurrent writer may commit right after).

The user's own custom metadata is kept as given: a key the user set (``userMetadata`` or any
other, the three above included) is never overwritten, and the user's ``CommitProperties``
object is never changed (a new one is passed on).

Spark can put only one free text in a commit: ``commitInfo.userMetadata`` (the writer option
``userMetadata``, or the session conf ``spark.databricks.delta.commitInfo.userMetadata``). A
Spark write of a run carries the stamp there as a JSON object of the same three keys
(:func:`spark_user_metadata`); a user's own ``userMetadata`` is kept and the commit is then
not stamped (see :mod:`lineage_plugin.tracking.spark_writes`). :func:`stamp_of` reads either.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

from lineage_plugin.records import MetricValue

RUN_ID_KEY = "mlflow.runId"
EXPERIMENT_ID_KEY = "mlflow.experimentId"
WRITE_ID_KEY = "mlflow.lineage.writeId"
#: The keys of a stamp, in the order they are documented.
STAMP_KEYS = (RUN_ID_KEY, EXPERIMENT_ID_KEY, WRITE_ID_KEY)


@dataclass(frozen=True)
class Stamp:
    """What one write call of a run puts in its commits' custom metadata.

    Attributes:
        run_id: The MLflow run.
        experiment_id: Its experiment, when known.
        write_id: Unique to the call (see the module doc).
    """

    run_id: str
    experiment_id: str | None
    write_id: str

    @classmethod
    def new(cls, run_id: str, experiment_id: str | None) -> Stamp:
        """A stamp for a new write call of ``run_id``."""
        return cls(run_id, experiment_id, uuid.uuid4().hex)

    def metadata(self) -> dict[str, str]:
        """The custom-metadata keys of the stamp."""
        keys = {RUN_ID_KEY: self.run_id, WRITE_ID_KEY: self.write_id}
        if self.experiment_id is not None:
            keys[EXPERIMENT_ID_KEY] = str(self.experiment_id)
        return keys


def spark_user_metadata(stamp: Stamp) -> str:
    """The stamp as the ``userMetadata`` text of a Spark commit (compact JSON, sorted keys)."""
    return json.dumps(stamp.metadata(), sort_keys=True, separators=(",", ":"))


def stamp_of(info: dict[str, Any]) -> dict[str, str]:
    """The stamp keys a ``commitInfo`` carries: top-level custom metadata (deltalake), else a
    JSON object in ``userMetadata`` (Spark); ``{}`` for a commit a run did not stamp."""
    if RUN_ID_KEY in info:
        return {k: str(info[k]) for k in STAMP_KEYS if info.get(k) is not None}
    text = info.get("userMetadata")
    if not isinstance(text, str) or RUN_ID_KEY not in text:
        return {}
    try:
        parsed = json.loads(text)
    except ValueError:
        return {}
    if not isinstance(parsed, dict) or not isinstance(parsed.get(RUN_ID_KEY), str):
        return {}
    return {k: str(parsed[k]) for k in STAMP_KEYS if parsed.get(k) is not None}


def stamped_properties(given: Any, stamp: Stamp) -> Any:
    """``CommitProperties`` carrying the stamp beside what the caller gave.

    Args:
        given: The caller's ``deltalake.CommitProperties``, or ``None``.
        stamp: The run's stamp.

    Returns:
        A new ``CommitProperties``: the caller's custom metadata with the stamp's keys added
        where the caller did not set them, and the caller's retries and app transactions.
    """
    from deltalake import CommitProperties

    if given is None:
        return CommitProperties(custom_metadata=stamp.metadata())
    own = dict(getattr(given, "custom_metadata", None) or {})
    return CommitProperties(
        custom_metadata={**stamp.metadata(), **own},
        max_commit_retries=getattr(given, "max_commit_retries", None),
        app_transactions=getattr(given, "app_transactions", None),
    )


def operation_metrics(info: dict[str, Any]) -> dict[str, MetricValue]:
    """A commit's ``operationMetrics`` as written: numbers and text kept, anything else
    (booleans, nested objects) as compact JSON text."""
    metrics = info.get("operationMetrics")
    if not isinstance(metrics, dict):
        return {}
    out: dict[str, MetricValue] = {}
    for name, value in metrics.items():
        if value is None:
            continue
        if isinstance(value, (int, float, str)) and not isinstance(value, bool):
            out[str(name)] = value
        else:
            out[str(name)] = json.dumps(value, sort_keys=True, separators=(",", ":"))
    return out
