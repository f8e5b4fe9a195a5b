"""Delta tables through the ``deltalake`` package (delta-rs): the engine for tables on object
stores, and for what the log alone cannot tell (snapshots, data files, protocol).

``deltalake`` is imported only inside these functions, never when the plugin loads.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from lineage_plugin.errors import DeltaLogError, TableNotFoundError

if TYPE_CHECKING:
    from deltalake import DeltaTable

# delta-rs appends a Rust backtrace ("   0: <unknown>", ...) to some errors: noise to a user.
_BACKTRACE = re.compile(r"\n\s*0: .*", re.DOTALL)


def without_backtrace(exc: BaseException) -> str:
    """The text of a delta-rs error without the Rust backtrace it may carry."""
    return _BACKTRACE.sub("", str(exc)).rstrip()


def open_table(uri: str, version: int | None, storage_options: dict[str, str] | None) -> DeltaTable:
    """Open a snapshot of the table at ``uri`` (the latest version when ``version`` is ``None``).

    Args:
        uri: The table's location (path or URI).
        version: The version to load.
        storage_options: Credentials for object stores (used, never recorded).

    Returns:
        The ``deltalake.DeltaTable``.

    Raises:
        TableNotFoundError: There is no Delta table at ``uri``, or no such version.
        DeltaLogError: The table could not be opened for another reason.
    """
    from deltalake import DeltaTable

    try:
        return DeltaTable(uri, version=version, storage_options=storage_options)
    except Exception as exc:
        name, text = type(exc).__name__, without_backtrace(exc)
        if (
            "TableNotFound" in name
            or "not a Delta table" in str(exc)
            or "No files in log" in str(exc)
        ):
            raise TableNotFoundError(f"'{uri}' is not a Delta table: {text}") from exc
        raise DeltaLogError(f"Could not open the Delta table '{uri}': {name}: {text}") from exc


def commit_info_at(table: DeltaTable, version: int) -> dict[str, Any] | None:
    """The ``commitInfo`` of ``version`` through deltalake; ``None`` when it has none.

    ``history()`` of a table loaded at ``version`` returns the commits from the latest one
    down to ``version`` (deltalake 1.x labels them from the loaded version, so the labels are
    wrong when the table has moved on), and in every case the last entry is the commit of
    ``version`` itself: that entry is used, never the labels.
    """
    if table.version() != version:
        table = open_table(table.table_uri, version, table._storage_options)
    entries = table.history(1)
    return entries[-1] if entries else None


def log_file_names(table_uri: str, storage_options: dict[str, str] | None) -> list[str]:
    """The names of the files in the table's ``_delta_log`` directory, on any storage."""
    import pyarrow.fs as pafs
    from deltalake.fs import DeltaStorageHandler

    handler = DeltaStorageHandler(table_uri, storage_options)
    infos = handler.get_file_info_selector(pafs.FileSelector("_delta_log"))
    return [info.base_name for info in infos]
