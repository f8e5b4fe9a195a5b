"""Whether a table version recorded in lineage can still be read, and if not, why.

:func:`why_unreadable` checks, in order: is there a Delta table at the location, is it the
recorded table (its id), does the version exist, does the ``_delta_log`` still reach it (log
retention), are all its data files still there (``VACUUM``). Each reason says what happened and
what to do next.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlparse

from lineage_plugin.delta import delta_rs
from lineage_plugin.delta import log as delta_log
from lineage_plugin.errors import DeltaLogError, LineageError, TableNotFoundError

if TYPE_CHECKING:
    from deltalake import DeltaTable

# get_file_info is asked about this many data files at a time.
_FILE_INFO_BATCH = 1000


def _oldest_readable(commits_: set[int], checkpoints: set[int]) -> int | None:
    """The oldest version a reader can rebuild from the files of the log, if any.

    A reader starts from a checkpoint, or from version 0 when its commit file is still there.
    """
    starts = checkpoints | ({0} if 0 in commits_ else set())
    return min(starts) if starts else None


def _data_locations(
    table: DeltaTable, local_dir: str | None
) -> tuple[list[str], list[str], dict[str, list[str]]]:
    """Where the data files of an open snapshot live, split by how their existence is checked.

    ``add.path`` is a URI reference (the protocol says to percent-decode it), relative to the
    table root unless absolute. ``file_uris()`` is not used: for local tables it joins the
    percent-encoded table path to the decoded file path, so a table in a directory with a
    space in its name would look vacuumed.

    Returns:
        Local file paths; paths relative to the (remote) table root; and, for absolute
        object-store URIs elsewhere, their relative names grouped by parent URI.
    """
    raw = table.get_add_actions(flatten=True).column("path").to_pylist()
    root = table.table_uri.rstrip("/") + "/"
    local: list[str] = []
    relative: list[str] = []
    elsewhere: dict[str, list[str]] = {}
    for path in raw:
        parsed = urlparse(path)
        if not parsed.scheme or (len(parsed.scheme) == 1 and os.name == "nt"):
            name = unquote(path)
            if os.path.isabs(name):
                local.append(name)
            elif local_dir is not None:
                local.append(os.path.join(local_dir, name))
            else:
                relative.append(name)
        elif parsed.scheme == "file":
            local.append(unquote(parsed.path))
        elif path.startswith(root):
            relative.append(unquote(path[len(root) :]))
        else:
            parent, _, name = path.rpartition("/")
            elsewhere.setdefault(parent, []).append(unquote(name))
    return local, relative, elsewhere


def _missing_files(
    table: DeltaTable, uri: str, local_dir: str | None, storage_options: dict[str, str] | None
) -> tuple[int, list[str]]:
    """How many data files the snapshot has, and which of them are gone (as ``uri/name``)."""
    local, relative, elsewhere = _data_locations(table, local_dir)
    missing = [p for p in local if not os.path.exists(p)]
    groups = [(root, root, names) for root, names in elsewhere.items()]
    if relative:
        groups.insert(0, (table.table_uri, uri, relative))
    if groups:
        from deltalake.fs import DeltaStorageHandler
        from pyarrow.fs import FileType

        for root, shown, names in groups:
            handler = DeltaStorageHandler(root, storage_options)
            for i in range(0, len(names), _FILE_INFO_BATCH):
                infos = handler.get_file_info(names[i : i + _FILE_INFO_BATCH])
                missing.extend(
                    f"{shown.rstrip('/')}/{info.path}"
                    for info in infos
                    if info.type == FileType.NotFound
                )
    total = len(local) + len(relative) + sum(len(v) for v in elsewhere.values())
    return total, missing


def recreated_reason(uri: str, table_id: str, current: str | None, version: int) -> str:
    return (
        f"The table at '{uri}' is not the one recorded: its table id is {current}, the "
        f"recorded one is {table_id}. The table was re-created (deleted and written again, or "
        f"replaced), so version {version} of it is other data; the recorded data cannot be "
        "read at this location. Look for a copy or backup of the old table."
    )


@dataclass(frozen=True)
class Unreadable:
    """Why a recorded table version cannot be read.

    Attributes:
        reason: What happened and what to do, for people.
        files_missing: The log reaches the version but some of its data files are gone
            (a restore can still run with ``ignore_missing_files``, losing those rows).
    """

    reason: str
    files_missing: bool = False


def check_version_readable(
    uri: str,
    version: int,
    *,
    table_id: str | None = None,
    storage_options: dict[str, str] | None = None,
    latest_table: DeltaTable | None = None,
) -> list[str]:
    """Why a recorded table version can no longer be read; an empty list when it can.

    The reasons of :func:`why_unreadable`, as text.
    """
    found = why_unreadable(
        uri,
        version,
        table_id=table_id,
        storage_options=storage_options,
        latest_table=latest_table,
    )
    return [u.reason for u in found]


def why_unreadable(
    uri: str,
    version: int,
    *,
    table_id: str | None = None,
    storage_options: dict[str, str] | None = None,
    latest_table: DeltaTable | None = None,
) -> list[Unreadable]:
    """Why a recorded table version can no longer be read; an empty list when it can.

    The checks: is there a Delta table at ``uri``; is it the recorded table (``table_id``);
    does the version exist; does the ``_delta_log`` still reach it (log retention); are all
    its data files still there (``VACUUM``). Each reason says what happened and what to do.

    Args:
        uri: The table's location.
        version: The recorded version.
        table_id: The recorded table id (``metaData.id``); ``None`` skips that check.
        storage_options: Credentials for object stores (used, never recorded).
        latest_table: The table already open at its latest version, when the caller has it
            (checking several versions of one table then opens the latest once; a version that
            is the latest is checked on it).

    Returns:
        The reasons; ``[]`` when the version can be read.

    Raises:
        LineageError: ``version`` is negative.
    """
    if version < 0:
        raise LineageError(f"Versions cannot be negative (got {version}).")
    norm = delta_log.normalize_uri(uri)
    local_dir = delta_log.local_path(norm)
    target = local_dir if local_dir is not None else uri
    try:
        if local_dir is not None:
            delta_log.latest_local_version(delta_log.log_dir_of(local_dir))
        if latest_table is None:
            latest_table = delta_rs.open_table(target, None, storage_options)
    except TableNotFoundError as exc:
        detail = str(exc).splitlines()[0]
        return [
            Unreadable(
                f"There is no Delta table at '{norm}': {detail} Check the path or URI, the "
                "storage options (credentials, endpoint), and whether the table was moved or "
                "deleted."
            )
        ]
    except DeltaLogError as exc:
        return [
            Unreadable(f"{exc} Check the storage options (credentials, endpoint) and permissions.")
        ]
    latest = latest_table.version()
    latest_id = latest_table.metadata().id

    if version > latest:
        if table_id is not None and latest_id != table_id:
            return [Unreadable(recreated_reason(norm, table_id, latest_id, version))]
        return [
            Unreadable(
                f"Version {version} of '{norm}' does not exist: the latest version is {latest}. "
                "Check the recorded version; if the table was re-created, its history restarted."
            )
        ]

    try:
        table = (
            latest_table
            if version == latest
            else delta_rs.open_table(target, version, storage_options)
        )
    except LineageError:
        if table_id is not None and latest_id != table_id:
            return [Unreadable(recreated_reason(norm, table_id, latest_id, version))]
        if local_dir is not None:
            listing = delta_log.log_listing(os.path.join(local_dir, delta_log.LOG_DIR))
        else:
            names = delta_rs.log_file_names(latest_table.table_uri, storage_options)
            listing = delta_log.parse_listing(names)
        oldest = _oldest_readable(*listing)
        since = f"; the oldest version still readable is {oldest}" if oldest is not None else ""
        return [
            Unreadable(
                f"The _delta_log of '{norm}' no longer reaches version {version}: its commit files "
                f"were cleaned up (delta.logRetentionDuration) and no checkpoint covers it{since}. "
                "The version cannot be read or restored; to keep history longer, raise "
                "delta.logRetentionDuration on the table."
            )
        ]

    current_id = table.metadata().id
    if table_id is not None and current_id != table_id:
        return [Unreadable(recreated_reason(norm, table_id, current_id, version))]

    total, missing = _missing_files(table, norm, local_dir, storage_options)
    if missing:
        return [
            Unreadable(
                f"{len(missing)} of {total} data files of version {version} of '{norm}' are gone "
                f"(removed by VACUUM or by hand), e.g. '{missing[0]}'. Reading the version fails; "
                "a restore needs --allow-missing-files (and loses the rows of the missing files), "
                "or the version cannot be rebuilt. To keep old versions readable, raise "
                "delta.deletedFileRetentionDuration and vacuum with a longer retention.",
                files_missing=True,
            )
        ]
    return []
