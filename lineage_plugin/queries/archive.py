"""Export lineage as one archive: the plugin's own records plus OpenLineage run events.

An export is a single ``.tar.gz`` (a ``.zip`` when the path ends with ``.zip``) holding:

- ``manifest.json``: the export layout version (:data:`EXPORT_SCHEMA_VERSION`), the plugin
  version, when it was written, how many records of each type it holds, and per file a short
  description, its record count, size and SHA-256;
- ``lineage.jsonl``: one record per line, sorted keys, no nulls. Runs first
  (``{"type": "run", ...}``: :meth:`RunLineage.to_dict` plus the run's MLflow fields), then model
  versions (``{"type": "model_version", ..., "created": ms}``), both in the order given, then
  registry events (``{"type": "event", ...}``) in ``event_id`` (time) order;
- ``openlineage.jsonl``: one OpenLineage ``RunEvent`` per run (spec 2-0-2), its ``eventType``
  the run's MLflow status (``COMPLETE``, ``FAIL``, ``ABORT``; ``COMPLETE`` when unknown), built
  by the code that sends events live (:func:`lineage_plugin.openlineage.run_event`): with
  ``openlineage-python``'s classes when it is installed, else with their stand-in, to the
  same JSON.

How a run maps to OpenLineage: see :mod:`lineage_plugin.openlineage.events`.

Example:
    >>> from lineage_plugin.queries.archive import read_export, write_export
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
import secrets
import shutil
import tarfile
import tempfile
import zipfile
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from typing import IO, TYPE_CHECKING, Any

from lineage_plugin.errors import LineageError
from lineage_plugin.openlineage import (
    OPENLINEAGE_SPEC,
    PRODUCER,
    export_kit,
    iso_time,
    now_utc_ms,
    openlineage_event,
)
from lineage_plugin.records import SCHEMA_VERSION, drop_nulls, to_json
from lineage_plugin.settings import __version__

if TYPE_CHECKING:
    from lineage_plugin.events import RegistryEvent
    from lineage_plugin.records import ModelVersionLineage, RunLineage
    from lineage_plugin.store.index import RunRow

#: Layout version of the archive (``manifest.json`` and the two ``.jsonl`` files).
EXPORT_SCHEMA_VERSION = 1

MANIFEST = "manifest.json"
LINEAGE = "lineage.jsonl"
OPENLINEAGE = "openlineage.jsonl"
_DESCRIPTIONS = {
    LINEAGE: (
        "The plugin's records, one JSON object per line (sorted keys, no nulls), told apart by "
        "'type': runs, then model versions, then registry events in event_id order."
    ),
    OPENLINEAGE: (
        "One OpenLineage RunEvent (spec 2-0-2) per run: eventType from the run's MLflow status "
        "(COMPLETE when unknown), the Delta table versions the run read as inputs."
    ),
}

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
    now_ms = now_utc_ms()
    counts = {"run": 0, "model_version": 0, "event": 0}
    kit = export_kit()

    with (
        tempfile.SpooledTemporaryFile(_SPOOL_BYTES) as lineage,
        tempfile.SpooledTemporaryFile(_SPOOL_BYTES) as openlineage,
    ):
        lineage_out = _Jsonl(lineage)
        openlineage_out = _Jsonl(openlineage)
        for record, row in runs:
            lineage_out.write({**asdict(row), **record.to_dict(), "type": "run"})
            openlineage_out.write(
                openlineage_event(record, row, producer=producer, default_time=now_ms, kit=kit)
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


def _fsync_directory(directory: str) -> None:
    """Make the rename durable where the platform allows it (POSIX); best effort."""
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
