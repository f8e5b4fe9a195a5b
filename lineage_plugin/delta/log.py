"""Read what lineage needs from a Delta table's ``_delta_log``: fast, exact, no data files.

Local tables are read straight from the file system: the latest version comes from
``_last_checkpoint`` and the commit files after it, a commit's timestamp and operation from its
JSON file, the table id from the nearest ``metaData`` action. Tables on object stores go through
``deltalake``. Versions are always exact; timestamps are only ever read, never used to pick a
version.
"""

from __future__ import annotations

import functools
import json
import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlparse

from lineage_plugin.delta import delta_rs
from lineage_plugin.errors import DeltaLogError, TableNotFoundError
from lineage_plugin.records import DeltaInput, DeltaOutput, MetricValue

if TYPE_CHECKING:
    from deltalake import DeltaTable

LOG_DIR = "_delta_log"
_SCHEME_ALIASES = {"s3a": "s3", "s3n": "s3", "gcs": "gs"}
_COMMIT_NAME = re.compile(r"^(\d{20})\.json$")
# Classic, multi-part (v.checkpoint.i.n.parquet) and V2 (v.checkpoint.uuid.json) checkpoints.
_CHECKPOINT_NAME = re.compile(r"^(\d{20})\.checkpoint(\.[^/]+)?\.(parquet|json)$")
# Search this many commits back for a metaData action before opening the table instead.
_METADATA_SCAN_LIMIT = 200


@dataclass(frozen=True)
class CommitInfo:
    """What the commit of one table version says about itself."""

    timestamp: int | None
    timestamp_source: str | None
    operation: str | None
    restored_from: int | None = None


#: A commit that says nothing about itself (no ``commitInfo``, or its file is gone).
NO_COMMIT = CommitInfo(None, None, None)


def normalize_uri(uri: str) -> str:
    """Normalise a table location so the same table always has the same URI.

    Local paths become absolute ``file:///`` URIs (symlinks resolved, percent-escapes
    decoded, as deltalake does); ``s3a://`` and ``s3n://`` become ``s3://``;
    the host of ``abfss://container@account...`` is lower-cased; trailing slashes go.

    Args:
        uri: A local path, ``file:`` URI or object-store URI.

    Returns:
        The normalised URI.

    Example:
        >>> normalize_uri("s3a://Bucket/sales/")
        's3://Bucket/sales'
    """
    text = os.fspath(uri)
    parsed = urlparse(text)
    if parsed.scheme in ("", "file") or (len(parsed.scheme) == 1 and os.name == "nt"):
        path = unquote(parsed.path) if parsed.scheme == "file" else text
        # realpath: deltalake resolves symlinks too, so both spellings give one URI.
        return "file://" + os.path.realpath(os.path.expanduser(path))
    scheme = _SCHEME_ALIASES.get(parsed.scheme.lower(), parsed.scheme.lower())
    netloc = parsed.netloc.lower() if scheme in ("abfs", "abfss", "az", "adl") else parsed.netloc
    path = parsed.path.rstrip("/")
    return f"{scheme}://{netloc}{path}"


def local_path(uri: str) -> str | None:
    """The local directory of a normalised ``file://`` URI, else ``None``."""
    return uri[len("file://") :] if uri.startswith("file://") else None


def table_name(uri: str) -> str:
    """A short display name for a table: its last path segment."""
    return uri.rstrip("/").rsplit("/", 1)[-1] or uri


def commit_file(log_dir: str, version: int) -> str:
    return os.path.join(log_dir, f"{version:020d}.json")


def parse_actions(text: str, where: str) -> list[dict[str, Any]]:
    try:
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    except json.JSONDecodeError as exc:
        raise DeltaLogError(
            f"{where} is not valid JSON ({exc}); the _delta_log is corrupt."
        ) from exc


def commit_info_from_actions(actions: list[dict[str, Any]]) -> CommitInfo:
    for action in actions:
        info = action.get("commitInfo")
        if info is not None:
            if info.get("inCommitTimestamp") is not None:
                ts, source = int(info["inCommitTimestamp"]), "inCommitTimestamp"
            elif info.get("timestamp") is not None:
                ts, source = int(info["timestamp"]), "commitInfo.timestamp"
            else:
                ts, source = None, None
            return CommitInfo(ts, source, info.get("operation"), restored_from(info))
    return NO_COMMIT


def commit_stamp(info: dict[str, Any]) -> CommitInfo:
    """What one ``commitInfo`` object (or a ``history()`` entry) says of its commit."""
    return commit_info_from_actions([{"commitInfo": info}])


#: commitInfo key the plugin's restores set when they skipped missing files.
PARTIAL_RESTORE_KEY = "mlflowLineagePartialRestore"


def restored_from(info: dict[str, Any]) -> int | None:
    """The version a RESTORE commit restored, when it holds that version's content exactly.

    Delta (Spark and delta-rs) writes ``operationParameters.version``; a restore by
    timestamp, or one that skipped missing files, is not a copy of a known version.
    """
    if info.get("operation") != "RESTORE" or info.get(PARTIAL_RESTORE_KEY):
        return None
    version = (info.get("operationParameters") or {}).get("version")
    try:
        return int(version) if version is not None else None
    except (TypeError, ValueError):
        return None


def log_dir_of(path: str) -> str:
    log_dir = os.path.join(path, LOG_DIR)
    if not os.path.isdir(log_dir):
        what = "does not exist" if not os.path.exists(path) else "is not a Delta table"
        raise TableNotFoundError(f"'{path}' {what} (no {LOG_DIR} directory).")
    return log_dir


def latest_local_version(log_dir: str) -> int:
    start = -1
    try:
        with open(os.path.join(log_dir, "_last_checkpoint")) as fh:
            start = int(json.load(fh)["version"])
    except FileNotFoundError:
        pass
    except (ValueError, KeyError, TypeError) as exc:
        raise DeltaLogError(f"{log_dir}/_last_checkpoint is corrupt ({exc}).") from exc
    version = _last_contiguous(lambda v: os.path.exists(commit_file(log_dir, v)), start)
    if version < 0:
        raise TableNotFoundError(f"{log_dir} holds no commits; the table is empty or not Delta.")
    return version


def parse_listing(names: Iterable[str]) -> tuple[set[int], set[int]]:
    """The versions of the commit files and of the checkpoints among ``_delta_log`` file names."""
    commits, checkpoints = set(), set()
    for name in names:
        if match := _COMMIT_NAME.match(name):
            commits.add(int(match.group(1)))
        elif match := _CHECKPOINT_NAME.match(name):
            checkpoints.add(int(match.group(1)))
    return commits, checkpoints


def log_listing(log_dir: str) -> tuple[set[int], set[int]]:
    """The versions of the commit files and of the checkpoints in a local ``_delta_log``."""
    return parse_listing(os.listdir(log_dir))


def _last_contiguous(exists: Callable[[int], bool], known: int) -> int:
    """The last version after ``known`` whose commit exists, for commits without gaps.

    Galloping then bisecting: about 2*log2(n) probes for n commits since the checkpoint, so a
    table that is rarely checkpointed costs microseconds, not one probe per commit.
    """
    present, step = known, 1
    while exists(present + step):
        present += step
        step *= 2
    missing = present + step
    while missing - present > 1:
        middle = (present + missing) // 2
        if exists(middle):
            present = middle
        else:
            missing = middle
    return present


def not_text(where: str, exc: UnicodeDecodeError) -> DeltaLogError:
    """The error for a commit file whose bytes are not UTF-8 text (garbage, a torn write)."""
    return DeltaLogError(f"{where} is not UTF-8 text ({exc}); the _delta_log is corrupt.")


def read_commit(log_dir: str, version: int) -> list[dict[str, Any]] | None:
    path = commit_file(log_dir, version)
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except FileNotFoundError:
        return None
    except UnicodeDecodeError as exc:
        raise not_text(path, exc) from exc
    return parse_actions(text, path)


def _checkpoint_table_id(log_dir: str, version: int) -> str | None:
    path = os.path.join(log_dir, f"{version:020d}.checkpoint.parquet")
    if not os.path.exists(path):
        return None
    import pyarrow.parquet as pq

    column = pq.read_table(path, columns=["metaData"], use_threads=False).column("metaData")
    return next((row["id"] for row in column.to_pylist() if row), None)


@functools.lru_cache(maxsize=1024)
def table_id_at(log_dir: str, version: int, stamp: tuple[int, int]) -> str | None:
    """The table id in force at ``version``: from the nearest metaData action or checkpoint.

    ``stamp`` (mtime and size of the version's commit file) is part of the cache key, so a
    table re-created at the same path is not taken for the old one.
    """
    for v in range(version, max(-1, version - _METADATA_SCAN_LIMIT), -1):
        actions = read_commit(log_dir, v)
        for action in actions or ():
            if "metaData" in action:
                return action["metaData"].get("id")
        table_id = _checkpoint_table_id(log_dir, v)
        if table_id is not None:
            return table_id
        if actions is None:
            break  # the log before v was cleaned up and no checkpoint covers it
    return None


def file_stamp(path: str) -> tuple[int, int]:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return (0, 0)
    return (st.st_mtime_ns, st.st_size)


@dataclass(frozen=True)
class VersionInfo:
    """A resolved table version with what its commit says."""

    uri: str
    version: int
    table_id: str | None
    commit: CommitInfo

    def to_input(
        self, *, engine: str, context: str, name: str | None = None, **details: Any
    ) -> DeltaInput:
        """The lineage record of a read of this version.

        Args:
            engine: What read it.
            context: ``training``, ``evaluation``...
            name: Display name; defaults to the last path segment.
            **details: ``filters``, ``partitions``, ``columns``, ``change_data_from``.
        """
        return DeltaInput(
            uri=self.uri,
            version=self.version,
            engine=engine,
            context=context,
            table_id=self.table_id,
            name=name or table_name(self.uri),
            commit_timestamp=self.commit.timestamp,
            timestamp_source=self.commit.timestamp_source,
            operation=self.commit.operation,
            restored_from=self.commit.restored_from,
            **details,
        )

    def to_output(
        self,
        *,
        engine: str,
        name: str | None = None,
        operation_metrics: dict[str, MetricValue] | None = None,
    ) -> DeltaOutput:
        """The lineage record of the commit that created this version.

        Args:
            engine: What wrote it.
            name: Display name; defaults to the last path segment.
            operation_metrics: The commit's ``operationMetrics``.
        """
        return DeltaOutput(
            uri=self.uri,
            version=self.version,
            engine=engine,
            table_id=self.table_id,
            name=name or table_name(self.uri),
            commit_timestamp=self.commit.timestamp,
            timestamp_source=self.commit.timestamp_source,
            operation=self.commit.operation,
            operation_metrics=dict(operation_metrics or {}),
            restored_from=self.commit.restored_from,
        )


def latest_version(uri: str, *, storage_options: dict[str, str] | None = None) -> int:
    """The table's latest version, read from the log alone (no commit parsed).

    Raises:
        TableNotFoundError: There is no Delta table at ``uri``.
        DeltaLogError: The ``_delta_log`` cannot be read.
    """
    path = local_path(normalize_uri(uri))
    if path is not None:
        return latest_local_version(log_dir_of(path))
    return delta_rs.open_table(uri, None, storage_options).version()


def resolve(
    uri: str,
    version: int | None = None,
    *,
    storage_options: dict[str, str] | None = None,
    table: DeltaTable | None = None,
) -> VersionInfo:
    """Resolve a table version once, with its table id and commit info.

    Args:
        uri: The table's location (path or URI).
        version: The version read; ``None`` resolves the latest version now.
        storage_options: Credentials for object stores (used, never recorded).
        table: An open ``DeltaTable`` at ``version``, when the caller has one.

    Returns:
        The resolved version.

    Raises:
        TableNotFoundError: There is no Delta table at ``uri`` or no such version.
        DeltaLogError: The ``_delta_log`` cannot be read.
    """
    norm = normalize_uri(uri)
    path = local_path(norm)
    if path is not None:
        log_dir = log_dir_of(path)
        latest = latest_local_version(log_dir)
        if version is None:
            version = latest
        elif not 0 <= version <= latest:
            raise TableNotFoundError(f"'{path}' has no version {version} (latest is {latest}).")
        actions = read_commit(log_dir, version)
        commit = commit_info_from_actions(actions) if actions is not None else NO_COMMIT
        if table is not None:  # an open snapshot at this version knows its id already
            table_id = table.metadata().id
        else:
            stamp = file_stamp(commit_file(log_dir, version))
            table_id = table_id_at(log_dir, version, stamp)
            if table_id is None:
                table_id = delta_rs.open_table(path, version, None).metadata().id
        return VersionInfo(norm, version, table_id, commit)
    if table is None:
        table = delta_rs.open_table(uri, version, storage_options)
    resolved = table.version() if version is None else version
    info = delta_rs.commit_info_at(table, resolved)
    commit = commit_stamp(info) if info is not None else NO_COMMIT
    return VersionInfo(norm, resolved, table.metadata().id, commit)
