"""Lineage as small, typed, keyword-only value objects.

Every record serialises to a plain dict with sorted keys and without ``None`` values, and the
manifest carries :data:`SCHEMA_VERSION`, so a reader can tell which layout it is looking at.
Layouts: 1, a run's reads (``inputs``); 2, also the table versions it wrote (``outputs``): in a
record of layout 1 no ``outputs`` means "not captured", in layout 2 "wrote no Delta table".
Every layout loads (absent keys take their defaults).

Example:
    >>> from lineage_plugin.records import DeltaInput
    >>> DeltaInput(uri="file:///data/t", version=0, engine="deltalake").to_dict()
    {'context': 'training', 'engine': 'deltalake', 'uri': 'file:///data/t', 'version': 0}
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

SCHEMA_VERSION = 2


def drop_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: drop_nulls(v) for k, v in sorted(value.items()) if v is not None}
    if isinstance(value, (list, tuple)):
        return [drop_nulls(v) for v in value]
    return value


def _fields(record: Any) -> dict[str, Any]:
    """A flat record's fields as a dict, sorted, without nulls (``asdict`` copies deeply)."""
    return drop_nulls({f: getattr(record, f) for f in record.__dataclass_fields__})


def to_json(data: dict[str, Any]) -> str:
    """Serialise a record dict compactly, with sorted keys and no nulls."""
    return json.dumps(drop_nulls(data), sort_keys=True, separators=(",", ":"))


@dataclass(frozen=True, kw_only=True)
class DeltaInput:
    """One Delta table version that a run read.

    Attributes:
        uri: Normalised table URI (``file:///abs/path``, ``s3://bucket/key``, ``abfss://...``).
        version: The table version that was read. Version 0 is a version.
        engine: What read it: ``deltalake``, ``polars``, ``mlflow`` (a logged dataset) or
            ``manual`` (``log_delta_input``).
        context: ``training``, ``evaluation`` or any label the user gives.
        table_id: The Delta table id (``metaData.id``); tells a re-created table apart.
        name: A short display name (the last path segment, or a catalog name).
        commit_timestamp: Milliseconds since the epoch of the version's commit.
        timestamp_source: ``inCommitTimestamp`` or ``commitInfo.timestamp``.
        operation: The commit's operation (``WRITE``, ``MERGE``, ``RESTORE``...).
        filters: The read's filters, as text, when given.
        partitions: The read's partition filters, as text, when given.
        columns: The columns read, when given.
        restored_from: The version was a Delta RESTORE to this version, holding the same
            content ("restored copy of version N"); not set for a restore that skipped
            missing files.
        change_data_from: For a change-data-feed read, the first version of the range (the
            range ends at ``version``).
    """

    uri: str
    version: int
    engine: str
    context: str = "training"
    table_id: str | None = None
    name: str | None = None
    commit_timestamp: int | None = None
    timestamp_source: str | None = None
    operation: str | None = None
    filters: str | None = None
    partitions: str | None = None
    columns: tuple[str, ...] | None = None
    change_data_from: int | None = None
    restored_from: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return the input as a plain dict with sorted keys and no nulls."""
        return _fields(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DeltaInput:
        """Build an input from :meth:`to_dict` output (unknown keys are ignored)."""
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        if known.get("columns") is not None:
            known["columns"] = tuple(known["columns"])
        return cls(**known)

    @property
    def key(self) -> tuple[Any, ...]:
        """What makes two reads the same read (used to de-duplicate)."""
        return (
            self.uri,
            self.table_id,
            self.version,
            self.context,
            self.filters,
            self.partitions,
            self.columns,
            self.change_data_from,
        )

    @property
    def label(self) -> str:
        """``name@vN``, for people (``name@vN (restored copy of vM)`` for a restore)."""
        label = f"{self.name or self.uri}@v{self.version}"
        if self.restored_from is not None:
            label += f" (restored copy of v{self.restored_from})"
        return label


#: A Delta operation metric as the commit's ``operationMetrics`` has it (delta-rs writes
#: numbers, Spark text).
MetricValue = int | float | str


@dataclass(frozen=True, kw_only=True)
class DeltaOutput:
    """One Delta table version that a run wrote: the commit it made.

    Attributes:
        uri: Normalised table URI, as for :class:`DeltaInput`.
        version: The table version the commit created.
        engine: What wrote it: ``deltalake``, ``polars`` or ``spark``.
        table_id: The Delta table id (``metaData.id``) at that version.
        name: A short display name (the last path segment, or a catalog name).
        commit_timestamp: Milliseconds since the epoch of the commit.
        timestamp_source: ``inCommitTimestamp`` or ``commitInfo.timestamp``.
        operation: The commit's operation (``WRITE``, ``MERGE``, ``UPDATE``, ``DELETE``,
            ``RESTORE``, ``OPTIMIZE``, ``CREATE TABLE``...).
        operation_metrics: The commit's ``operationMetrics`` as Delta wrote them (numbers stay
            numbers, text stays text; nested values as compact JSON text).
        restored_from: The commit was a RESTORE to this version, holding its content.
    """

    uri: str
    version: int
    engine: str
    table_id: str | None = None
    name: str | None = None
    commit_timestamp: int | None = None
    timestamp_source: str | None = None
    operation: str | None = None
    operation_metrics: dict[str, MetricValue] = field(default_factory=dict)
    restored_from: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return the output as a plain dict with sorted keys, no nulls and no empty map."""
        data = _fields(self)
        if not data.get("operation_metrics"):
            data.pop("operation_metrics", None)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DeltaOutput:
        """Build an output from :meth:`to_dict` output (unknown keys are ignored)."""
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        known["operation_metrics"] = dict(known.get("operation_metrics") or {})
        return cls(**known)

    @property
    def key(self) -> tuple[Any, ...]:
        """What makes two records the same write (a commit is one version of one table)."""
        return (self.uri, self.table_id, self.version)

    @property
    def label(self) -> str:
        """``name@vN``, for people."""
        return f"{self.name or self.uri}@v{self.version}"


@dataclass(frozen=True, kw_only=True)
class Environment:
    """Where a run ran: interpreter, platform and library versions.

    Attributes:
        python: The Python version.
        platform: ``platform.platform()``.
        packages: Versions of the libraries that matter for reproducing a model.
    """

    python: str
    platform: str
    packages: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Return the environment as a plain dict with sorted keys and no nulls."""
        return _fields(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Environment:
        """Build an environment from :meth:`to_dict` output."""
        return cls(
            python=data.get("python", ""),
            platform=data.get("platform", ""),
            packages=dict(data.get("packages", {})),
        )


@dataclass(frozen=True, kw_only=True)
class CodeVersion:
    """Which code produced a run, and how to start it again.

    Attributes:
        argv: The command line of the training process.
        cwd: Its working directory.
        git_commit: The commit of the repository the entry point lives in, if any.
        git_dirty: Whether that repository had uncommitted changes.
        files: When git does not pin the code (no repository, or uncommitted changes): the
            SHA-256 of the entry script and of the local modules it imported from its own
            folder, by path relative to that folder. ``None`` when not recorded (runs at a
            clean commit, and records written before file hashes existed).
    """

    argv: tuple[str, ...] = ()
    cwd: str | None = None
    git_commit: str | None = None
    git_dirty: bool | None = None
    files: dict[str, str] | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return the code version as a plain dict with sorted keys and no nulls."""
        return _fields(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CodeVersion:
        """Build a code version from :meth:`to_dict` output."""
        return cls(
            argv=tuple(data.get("argv", ())),
            cwd=data.get("cwd"),
            git_commit=data.get("git_commit"),
            git_dirty=data.get("git_dirty"),
            files=dict(data["files"]) if data.get("files") else None,
        )


@dataclass(frozen=True, kw_only=True)
class RunLineage:
    """Everything the plugin knows about the data and code behind one run.

    Attributes:
        run_id: The MLflow run.
        status: ``complete``, ``incomplete`` (see ``reasons``) or ``missing`` (nothing captured).
        inputs: The Delta table versions the run read, in the order they were first read.
        outputs: The Delta table versions the run wrote (one per commit), in commit order
            as this process saw them.
        reasons: Why the record is incomplete, when it is.
        environment: Interpreter and library versions, when captured.
        code: Entry point and code version, when captured.
        schema_version: Layout version of this record.
    """

    run_id: str
    status: str
    inputs: tuple[DeltaInput, ...] = ()
    outputs: tuple[DeltaOutput, ...] = ()
    reasons: tuple[str, ...] = ()
    environment: Environment | None = None
    code: CodeVersion | None = None
    schema_version: int = SCHEMA_VERSION

    def to_dict(self) -> dict[str, Any]:
        """Return the record as a plain dict with sorted keys and no nulls."""
        return drop_nulls(
            {
                "schema_version": self.schema_version,
                "run_id": self.run_id,
                "status": self.status,
                "inputs": [i.to_dict() for i in self.inputs],
                "outputs": [o.to_dict() for o in self.outputs] or None,
                "reasons": list(self.reasons),
                "environment": self.environment.to_dict() if self.environment else None,
                "code": self.code.to_dict() if self.code else None,
            }
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunLineage:
        """Build a record from :meth:`to_dict` output."""
        env = data.get("environment")
        code = data.get("code")
        return cls(
            run_id=data["run_id"],
            status=data.get("status", "missing"),
            inputs=tuple(DeltaInput.from_dict(i) for i in data.get("inputs", ())),
            outputs=tuple(DeltaOutput.from_dict(o) for o in data.get("outputs", ())),
            reasons=tuple(data.get("reasons", ())),
            environment=Environment.from_dict(env) if env else None,
            code=CodeVersion.from_dict(code) if code else None,
            schema_version=int(data.get("schema_version", 1)),
        )


@dataclass(frozen=True, kw_only=True)
class ModelVersionLineage:
    """The lineage attached to one registered model version.

    Attributes:
        name: Registered model name.
        version: Model version.
        status: ``complete``, ``incomplete`` or ``missing``.
        run: The source run's lineage (``None`` when the source run had none).
        source: The model version's source URI.
    """

    name: str
    version: str
    status: str
    run: RunLineage | None = None
    source: str | None = None

    @property
    def inputs(self) -> tuple[DeltaInput, ...]:
        """The Delta table versions the model was trained on."""
        return self.run.inputs if self.run else ()

    @property
    def outputs(self) -> tuple[DeltaOutput, ...]:
        """The Delta table versions the training run had written when the version was
        registered (``show`` reads the run's current ones)."""
        return self.run.outputs if self.run else ()

    def to_dict(self) -> dict[str, Any]:
        """Return the record as a plain dict with sorted keys and no nulls."""
        return drop_nulls(
            {
                "schema_version": SCHEMA_VERSION,
                "name": self.name,
                "version": self.version,
                "status": self.status,
                "source": self.source,
                "run": self.run.to_dict() if self.run else None,
            }
        )


@dataclass(frozen=True, kw_only=True)
class TableRestore:
    """One table put back to a recorded version by ``mlflow-lineage restore``.

    Attributes:
        uri: The table's normalised URI.
        name: Its display name.
        from_version: The version it was at before the restore.
        to_version: The version restored (the one the model version was trained on).
        new_version: The version the restore committed; it holds the content of
            ``to_version`` (unless ``missing_files_allowed``: then it is the FSCK commit
            after the RESTORE that drops the missing files).
        commits_undone: How many commits the restore undid.
        undid_deletes: Some of them removed rows, which the restore brought back.
        missing_files_allowed: Files of ``to_version`` were gone and were skipped
            (``--allow-missing-files``): the new version lacks their rows.
    """

    uri: str
    name: str | None
    from_version: int
    to_version: int
    new_version: int
    commits_undone: int
    undid_deletes: bool = False
    missing_files_allowed: bool = False

    def to_dict(self) -> dict[str, Any]:
        """Return the restore as a plain dict with sorted keys and no nulls."""
        return _fields(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TableRestore:
        """Build a restore from :meth:`to_dict` output (unknown keys are ignored)."""
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


@dataclass(frozen=True, kw_only=True)
class Verification:
    """The outcome of comparing a reproduced model's predictions with the original's.

    Attributes:
        verified: Every row's prediction is equal (within ``tolerance``).
        rows_compared: Rows predicted by both models.
        rows_identical: Rows whose predictions are equal (within ``tolerance``).
        max_difference: The largest absolute difference (``None`` for non-numeric outputs).
        tolerance: The allowed absolute difference (0: exact equality).
        data: The table and version compared on (``name@vN``).
        original_run_id: The run that trained the original model version.
        reproduced_run_id: The run that retrained it.
        reproduced_model_uri: The model the retraining logged.
        reproduced_version: Its registered model version, with ``--register``.
    """

    verified: bool
    rows_compared: int
    rows_identical: int
    max_difference: float | None = None
    tolerance: float = 0.0
    data: str | None = None
    original_run_id: str | None = None
    reproduced_run_id: str | None = None
    reproduced_model_uri: str | None = None
    reproduced_version: str | None = None

    def summary(self) -> str:
        """One line for people: identical or not, rows, largest difference, data."""
        outcome = "IDENTICAL" if self.verified else "DIFFERENT"
        bound = "exactly" if not self.tolerance else f"within {self.tolerance:g}"
        largest = "-" if self.max_difference is None else f"{self.max_difference:g}"
        return (
            f"Predictions {outcome} ({bound}): {self.rows_identical} of {self.rows_compared} "
            f"rows equal, largest difference {largest}, on {self.data or '-'}"
        )

    def to_dict(self) -> dict[str, Any]:
        """Return the verification as a plain dict with sorted keys and no nulls."""
        return _fields(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Verification:
        """Build a verification from :meth:`to_dict` output (unknown keys are ignored)."""
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})
