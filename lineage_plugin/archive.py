"""Export lineage as one archive: the plugin's own records plus OpenLineage run events.

An export is a single ``.tar.gz`` (a ``.zip`` when the path ends with ``.zip``) holding:

- ``manifest.json``: the export layout version (:data:`EXPORT_SCHEMA_VERSION`), the plugin
  version, when it was written, how many records of each type it holds, and per file a short
  description, its record count, size and SHA-256;
- ``lineage.jsonl``: one record per line, sorted keys, no nulls. Runs first
  (``{"type": "run", ...}``: :meth:`RunLineage.to_dict` plus the run's MLflow fields), then model
  versions (``{"type": "model_version", ..., "created": ms}``), both in the order given, then
  registry events (``{"type": "event", ...}``) in ``event_id`` (time) order;
- ``openlineage.jsonl``: one OpenLineage ``RunEvent`` per run (spec 2-0-2), written by hand so
  the plugin does not depend on ``openlineage-python``.

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

Example:
    >>> from lineage_plugin.archive import read_export, write_export
    >>> summary = write_export("lineage.tar.gz", runs=[(record, row)], model_versions=[], events=[])
    >>> read_export(summary.path)["manifest"]["counts"]
    {'event': 0, 'model_version': 0, 'run': 1}
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import re
import secrets
import shutil
import tarfile
import tempfile
import uuid
import zipfile
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from typing import IO, TYPE_CHECKING, Any
from urllib.parse import urlparse

from lineage_plugin import __version__
from lineage_plugin.errors import LineageError
from lineage_plugin.records import SCHEMA_VERSION, drop_nulls, to_json

if TYPE_CHECKING:
    from lineage_plugin.events import RegistryEvent
    from lineage_plugin.records import DeltaInput, ModelVersionLineage, RunLineage
    from lineage_plugin.store.index import RunRow

#: Layout version of the archive (``manifest.json`` and the two ``.jsonl`` files).
EXPORT_SCHEMA_VERSION = 1

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

MANIFEST = "manifest.json"
LINEAGE = "lineage.jsonl"
OPENLINEAGE = "openlineage.jsonl"
_DESCRIPTIONS = {
    LINEAGE: (
        "The plugin's records, one JSON object per line (sorted keys, no nulls), told apart by "
        "'type': runs, then model versions, then registry events in event_id order."
    ),
    OPENLINEAGE: (
        "One OpenLineage RunEvent (spec 2-0-2) per run: eventType COMPLETE, the Delta table "
        "versions the run read as inputs."
    ),
}

_HEX_RUN_ID = re.compile(r"^[0-9a-fA-F]{32}$")
_WINDOWS_DRIVE = re.compile(r"^[A-Za-z]:[\\/]")
_SCHEME_ALIASES = {"s3a": "s3", "s3n": "s3", "gcs": "gs", "abfs": "abfss"}
# Object stores: the name is the key inside the bucket or container, without a leading slash.
_OBJECT_STORES = frozenset({"s3", "gs", "abfss", "wasbs", "wasb", "az", "adl", "azure"})
_SPOOL_BYTES = 8 * 1024 * 1024


@dataclass(frozen=True, kw_only=True)
class ExportSummary:
    """What :func:`write_export` wrote.

    Attributes:
        path: Absolute path of the archive.
        format: ``tar.gz`` or ``zip``.
        runs: Run records written (also the number of OpenLineage events).
        model_versions: Model-version records written.
        events: Registry events written.
        bytes_written: Size of the archive in bytes.
    """

    path: str
    format: str
    runs: int
    model_versions: int
    events: int
    bytes_written: int

    def to_dict(self) -> dict[str, Any]:
        """Return the summary as a plain dict with sorted keys and no nulls."""
        return drop_nulls(asdict(self))


def write_export(
    path: str | os.PathLike[str],
    *,
    runs: Iterable[tuple[RunLineage, RunRow]],
    model_versions: Iterable[tuple[ModelVersionLineage, int | None]],
    events: Iterable[RegistryEvent],
    producer: str = PRODUCER,
) -> ExportSummary:
    """Write runs, model versions and registry events to one archive.

    The archive is written to a temporary file beside ``path`` and moved into place when it is
    complete, so a failed export leaves nothing behind and an existing file at ``path`` is
    replaced only by a whole archive.

    Args:
        path: The archive to write: a ``.zip`` when it ends with ``.zip``, else a ``.tar.gz``.
        runs: Each run's lineage record and its index row (experiment, name, times, user).
        model_versions: Each model version's lineage and its creation time (epoch ms, if known).
        events: Registry events, in any order (they are written in ``event_id`` order).
        producer: The URI written as the OpenLineage ``producer`` and facets' ``_producer``.

    Returns:
        What was written, and where.

    Raises:
        LineageError: ``path`` is a directory, its directory does not exist, or the archive
            could not be written (the message says which).

    Example:
        >>> summary = write_export("/tmp/lineage.zip", runs=runs, model_versions=[], events=[])
        >>> summary.format, summary.runs
        ('zip', 2)
    """
    target = os.path.abspath(os.path.expanduser(os.fspath(path)))
    _check_target(target)
    kind = "zip" if target.lower().endswith(".zip") else "tar.gz"
    now_ms = _now_ms()
    counts = {"run": 0, "model_version": 0, "event": 0}

    with (
        tempfile.SpooledTemporaryFile(_SPOOL_BYTES) as lineage,
        tempfile.SpooledTemporaryFile(_SPOOL_BYTES) as openlineage,
    ):
        lineage_out = _Jsonl(lineage)
        openlineage_out = _Jsonl(openlineage)
        for record, row in runs:
            lineage_out.write({**asdict(row), **record.to_dict(), "type": "run"})
            openlineage_out.write(
                openlineage_event(record, row, producer=producer, default_time=now_ms)
            )
            counts["run"] += 1
        for mv, created in model_versions:
            lineage_out.write({**mv.to_dict(), "created": created, "type": "model_version"})
            counts["model_version"] += 1
        for event in sorted(events, key=lambda e: e.event_id):
            lineage_out.write({**event.to_dict(), "type": "event"})
            counts["event"] += 1

        manifest = {
            "export_schema_version": EXPORT_SCHEMA_VERSION,
            "record_schema_version": SCHEMA_VERSION,
            "plugin_version": __version__,
            "created": iso_time(now_ms),
            "producer": producer,
            "openlineage_spec": OPENLINEAGE_SPEC,
            "counts": counts,
            "files": [
                lineage_out.describe(LINEAGE, _DESCRIPTIONS[LINEAGE]),
                openlineage_out.describe(OPENLINEAGE, _DESCRIPTIONS[OPENLINEAGE]),
            ],
        }
        members: list[tuple[str, IO[bytes], int]] = [
            (LINEAGE, lineage, lineage_out.size),
            (OPENLINEAGE, openlineage, openlineage_out.size),
        ]
        manifest_bytes = (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode()
        size = _write_atomically(target, kind, now_ms, manifest_bytes, members)

    return ExportSummary(
        path=target,
        format=kind,
        runs=counts["run"],
        model_versions=counts["model_version"],
        events=counts["event"],
        bytes_written=size,
    )


def read_export(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read an archive written by :func:`write_export`, checking it against its manifest.

    Args:
        path: A ``.tar.gz`` or ``.zip`` export (recognised by content, not by name).

    Returns:
        ``{"manifest": dict, "lineage": [record, ...], "openlineage": [event, ...]}``, the
        lists in file order.

    Raises:
        LineageError: The file is missing or not an export, a file is missing from it, does not
            match the size and SHA-256 in the manifest, or holds a line that is not JSON, or the
            export was written in a newer layout than this plugin reads.

    Example:
        >>> export = read_export("lineage.tar.gz")
        >>> [r["type"] for r in export["lineage"]]
        ['run', 'model_version', 'event']
    """
    source = os.path.abspath(os.path.expanduser(os.fspath(path)))
    if not os.path.isfile(source):
        raise LineageError(f"cannot read the export {source}: no such file")
    files = _read_members(source, (MANIFEST, LINEAGE, OPENLINEAGE))
    try:
        manifest = json.loads(files[MANIFEST])
    except ValueError as exc:
        raise LineageError(f"{source}: {MANIFEST} is not valid JSON ({exc})") from exc
    layout = manifest.get("export_schema_version") if isinstance(manifest, dict) else None
    if not isinstance(layout, int):
        raise LineageError(f"{source}: {MANIFEST} has no export_schema_version; not an export")
    if layout > EXPORT_SCHEMA_VERSION:
        raise LineageError(
            f"{source} has export layout {layout}; this plugin ({__version__}) reads up to "
            f"{EXPORT_SCHEMA_VERSION}. Upgrade mlflow-delta-lineage to read it."
        )
    export: dict[str, Any] = {"manifest": manifest}
    for key, name in (("lineage", LINEAGE), ("openlineage", OPENLINEAGE)):
        entry = next((f for f in manifest.get("files", []) if f.get("name") == name), {})
        export[key] = _parse_jsonl(source, name, files[name], entry)
    return export


def openlineage_event(
    record: RunLineage,
    row: RunRow,
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
        when = default_time if default_time is not None else _now_ms()
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


class _Jsonl:
    """Compact JSON lines into a binary file, counting lines and bytes and hashing them."""

    def __init__(self, out: IO[bytes]) -> None:
        self.out = out
        self.lines = 0
        self.size = 0
        self.sha256 = hashlib.sha256()

    def write(self, data: dict[str, Any]) -> None:
        line = (to_json(data) + "\n").encode()
        self.out.write(line)
        self.sha256.update(line)
        self.lines += 1
        self.size += len(line)

    def describe(self, name: str, description: str) -> dict[str, Any]:
        return {
            "name": name,
            "description": description,
            "records": self.lines,
            "bytes": self.size,
            "sha256": self.sha256.hexdigest(),
        }


def _check_target(target: str) -> None:
    if os.path.isdir(target):
        raise LineageError(
            f"cannot write the export to {target}: it is a directory; give a file path such as "
            f"{os.path.join(target, 'lineage-export.tar.gz')}"
        )
    parent = os.path.dirname(target)
    if not os.path.isdir(parent):
        what = "is not a directory" if os.path.exists(parent) else "does not exist"
        raise LineageError(f"cannot write the export to {target}: {parent} {what}")


def _write_atomically(
    target: str,
    kind: str,
    now_ms: int,
    manifest: bytes,
    members: list[tuple[str, IO[bytes], int]],
) -> int:
    directory, base = os.path.split(target)
    tmp = os.path.join(directory, f".{base}.{secrets.token_hex(4)}.tmp")
    try:
        # os.open with 0o666 (not mkstemp's 0o600): the archive gets the umask's usual mode.
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    except OSError as exc:
        raise LineageError(f"cannot write the export to {target}: {exc}") from exc
    try:
        with os.fdopen(fd, "wb") as fh:
            if kind == "zip":
                _write_zip(fh, now_ms, manifest, members)
            else:
                _write_tar(fh, now_ms, manifest, members)
            fh.flush()
            os.fsync(fh.fileno())
        size = os.path.getsize(tmp)
        os.replace(tmp, target)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        if isinstance(exc, OSError):
            raise LineageError(f"cannot write the export to {target}: {exc}") from exc
        raise
    _fsync_directory(directory)
    return size


def _write_tar(
    fh: IO[bytes], now_ms: int, manifest: bytes, members: list[tuple[str, IO[bytes], int]]
) -> None:
    def info(name: str, size: int) -> tarfile.TarInfo:
        entry = tarfile.TarInfo(name)
        entry.size = size
        entry.mtime = now_ms // 1000
        entry.mode = 0o644
        return entry

    with tarfile.open(fileobj=fh, mode="w:gz", format=tarfile.PAX_FORMAT) as tar:
        tar.addfile(info(MANIFEST, len(manifest)), io.BytesIO(manifest))
        for name, data, size in members:
            data.seek(0)
            tar.addfile(info(name, size), data)


def _write_zip(
    fh: IO[bytes], now_ms: int, manifest: bytes, members: list[tuple[str, IO[bytes], int]]
) -> None:
    stamp = datetime.fromtimestamp(now_ms // 1000, tz=timezone.utc).timetuple()[:6]

    def info(name: str) -> zipfile.ZipInfo:
        entry = zipfile.ZipInfo(name, date_time=stamp)
        entry.compress_type = zipfile.ZIP_DEFLATED
        entry.external_attr = 0o644 << 16
        return entry

    with zipfile.ZipFile(fh, "w") as archive:
        archive.writestr(info(MANIFEST), manifest)
        for name, data, size in members:
            data.seek(0)
            with archive.open(info(name), "w", force_zip64=size >= zipfile.ZIP64_LIMIT) as dst:
                shutil.copyfileobj(data, dst)


def _read_members(source: str, names: tuple[str, ...]) -> dict[str, bytes]:
    found: dict[str, bytes] = {}
    try:
        if zipfile.is_zipfile(source):
            with zipfile.ZipFile(source) as archive:
                present = set(archive.namelist())
                for name in names:
                    if name in present:
                        found[name] = archive.read(name)
        else:
            with tarfile.open(source, mode="r:gz") as tar:
                for name in names:
                    try:
                        member = tar.getmember(name)
                    except KeyError:
                        continue
                    data = tar.extractfile(member) if member.isfile() else None
                    if data is not None:
                        found[name] = data.read()
    except (OSError, tarfile.TarError, zipfile.BadZipFile, EOFError) as exc:
        raise LineageError(
            f"cannot read the export {source}: not a .tar.gz or .zip export ({exc})"
        ) from exc
    missing = [n for n in names if n not in found]
    if missing:
        raise LineageError(f"{source} is not a complete export: {', '.join(missing)} missing")
    return found


def _parse_jsonl(
    source: str, name: str, data: bytes, entry: dict[str, Any]
) -> list[dict[str, Any]]:
    """Parse one ``.jsonl`` member, checked against its manifest entry (size, hash, count)."""
    if "bytes" in entry and len(data) != entry["bytes"]:
        raise LineageError(
            f"{source}: {name} has {len(data)} bytes, the manifest says {entry['bytes']}"
        )
    if "sha256" in entry and hashlib.sha256(data).hexdigest() != entry["sha256"]:
        raise LineageError(f"{source}: {name} does not match its SHA-256 in the manifest")
    records = []
    for number, line in enumerate(data.decode("utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except ValueError as exc:
            raise LineageError(f"{source}: {name} line {number} is not JSON ({exc})") from exc
    if "records" in entry and len(records) != entry["records"]:
        raise LineageError(
            f"{source}: {name} holds {len(records)} records, the manifest says {entry['records']}"
        )
    return records


def _now_ms() -> int:
    return int(datetime.now(timezone.utc).timestamp() * 1000)


def _fsync_directory(directory: str) -> None:
    """Make the rename durable where the platform allows it (POSIX); best effort."""
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
