"""Write a run's captured lineage into MLflow: tags, dataset inputs and the manifest artifact."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from lineage_plugin import tags as T
from lineage_plugin.records import DeltaInput, DeltaOutput, RunLineage, to_json
from lineage_plugin.tracking.environment import (
    current_code,
    current_environment,
    installed_distributions,
)

if TYPE_CHECKING:
    from mlflow.entities import DatasetInput


ARTIFACT_DIR = "lineage"
MANIFEST_FILE = "manifest.json"
DISTRIBUTIONS_FILE = "installed-distributions.txt"
#: MLflow's source type of a DeltaDatasetSource.
DELTA_SOURCE_TYPE = "delta_table"


@dataclass
class RunState:
    """What this process has captured for one run so far, and what of it is written."""

    inputs: list[DeltaInput] = field(default_factory=list)
    keys: set[tuple] = field(default_factory=set)
    reasons: list[str] = field(default_factory=list)
    already_datasets: set[int] = field(default_factory=set)  # indexes the user logged already
    written: int = 0
    outputs: list[DeltaOutput] = field(default_factory=list)
    output_keys: set[tuple] = field(default_factory=set)
    outputs_written: int = 0
    env_tagged: bool = False  # lineage.env.* / lineage.code.* already on the run
    distributions_logged: bool = False
    code_files: dict[str, str] | None = None  # the lineage.code.files this process wrote
    unwritten: bool = False  # the last write failed (the database was away): retried at the end


def record_for(run_id: str, state: RunState) -> RunLineage:
    """The run's lineage record as captured so far in this process."""
    return RunLineage(
        run_id=run_id,
        status=T.INCOMPLETE if state.reasons else T.COMPLETE,
        inputs=tuple(state.inputs),
        outputs=tuple(state.outputs),
        reasons=tuple(state.reasons),
        environment=current_environment(),
        code=current_code(),
    )


def dataset_input(inp: DeltaInput) -> DatasetInput:
    """An MLflow dataset input for a captured read, so the stock run page lists it."""
    from mlflow.entities import Dataset, DatasetInput, InputTag
    from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT

    source = {"path": inp.uri, "delta_table_version": inp.version}
    if inp.table_id:
        source["delta_table_id"] = inp.table_id
    digest = hashlib.sha256(f"{inp.uri}|{inp.table_id}|{inp.version}".encode()).hexdigest()[:8]
    dataset = Dataset(
        name=f"{inp.name or inp.uri}@v{inp.version}",
        digest=digest,
        source_type=DELTA_SOURCE_TYPE,
        source=json.dumps(source, sort_keys=True),
    )
    return DatasetInput(dataset=dataset, tags=[InputTag(MLFLOW_DATASET_CONTEXT, inp.context)])


def _batches(items: list, size: int) -> list[list]:
    return [items[i : i + size] for i in range(0, len(items), size)]


#: How often ``log_inputs`` is tried when a concurrent run created the same dataset first.
LOG_INPUTS_ATTEMPTS = 3


def _log_inputs(client: Any, run_id: str, datasets: list[Any]) -> None:
    """``log_inputs``, tried again when it lost MLflow's race on the datasets table.

    MLflow's SQL store looks the (experiment, name, digest) datasets up and inserts the missing
    ones in one transaction; two runs of one experiment logging the same table version at the
    same moment both insert, and one fails on the unique key (PostgreSQL, MySQL). The failed
    transaction wrote nothing, and the retry finds the other run's dataset and links it.
    """
    from mlflow.exceptions import MlflowException

    for attempt in range(LOG_INPUTS_ATTEMPTS):
        try:
            client.log_inputs(run_id, datasets=datasets)
            return
        except MlflowException as exc:
            message = str(exc).lower()
            lost_race = "unique" in message or "duplicate" in message
            if not lost_race or attempt == LOG_INPUTS_ATTEMPTS - 1:
                raise
            time.sleep(0.05 * (attempt + 1))


def write_run(run_id: str, state: RunState) -> None:
    """Write what is new in ``state`` to the run, in as few calls as MLflow allows.

    One ``log_batch`` for the tags (split only at MLflow's per-batch limit), one
    ``log_inputs`` for the new dataset inputs, and one artifact upload: the manifest, plus the
    list of installed distributions with the first write.
    """
    from mlflow.entities import RunTag
    from mlflow.tracking import MlflowClient
    from mlflow.utils.validation import MAX_PARAMS_TAGS_PER_BATCH

    client = MlflowClient()
    limit = T.run_tag_value_limit()
    record = record_for(run_id, state)
    new = range(state.written, len(state.inputs))
    tags: dict[str, str] = {}
    if not state.env_tagged:
        tags.update({T.SCHEMA: str(T.SCHEMA_VERSION)})
        tags.update(T.environment_tags(record.environment))
        tags.update(T.code_tags(record.code, limit))
    elif record.code.files and record.code.files != state.code_files:
        # Modules imported since the run started (its start tags hashed the ones before).
        tags.update(T.code_files_tags(record.code.files, limit))
    for index in new:
        value = to_json(state.inputs[index].to_dict())
        tags.update(T.split_value(T.input_key(index), value, limit))
    tags[T.TABLES] = T.tables_summary(state.inputs, limit)
    for index in range(state.outputs_written, len(state.outputs)):
        value = to_json(state.outputs[index].to_dict())
        tags.update(T.split_value(T.output_key(index), value, limit))
    if state.outputs:
        tags[T.WRITTEN] = T.tables_summary(state.outputs, limit, T.OUTPUT_PREFIX)
    tags[T.STATUS] = record.status
    if state.reasons:
        tags.update(T.split_value(T.REASON, "\n".join(state.reasons), limit))
    run_tags = [RunTag(k, v) for k, v in tags.items()]
    for batch in _batches(run_tags, MAX_PARAMS_TAGS_PER_BATCH):
        client.log_batch(run_id, tags=batch)
    datasets = [dataset_input(state.inputs[i]) for i in new if i not in state.already_datasets]
    if datasets:
        _log_inputs(client, run_id, datasets)
    with tempfile.TemporaryDirectory(prefix="lineage-") as tmp:  # one artifact upload
        with open(os.path.join(tmp, MANIFEST_FILE), "w", encoding="utf-8") as fh:
            fh.write(T.manifest_json(record))
        if not state.distributions_logged:
            with open(os.path.join(tmp, DISTRIBUTIONS_FILE), "w", encoding="utf-8") as fh:
                fh.write(installed_distributions())
        client.log_artifacts(run_id, tmp, ARTIFACT_DIR)
    state.distributions_logged = True
    state.written = len(state.inputs)
    state.outputs_written = len(state.outputs)
    state.env_tagged = True
    state.code_files = record.code.files
