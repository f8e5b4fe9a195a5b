"""Read hooks for the ``deltalake`` package (delta-rs), the embedded default engine.

Hooked (they read data): ``to_pyarrow_dataset`` (``to_pyarrow_table`` and ``to_pandas`` go
through it), ``to_pyarrow_table``, ``to_pandas``, ``file_uris`` (polars' native reader uses it),
``scan``, ``load_cdf``, ``__datafusion_table_provider__`` and ``QueryBuilder.execute``.
Not hooked (metadata only): ``version``, ``history``, ``schema``, ``metadata``,
``get_add_actions``, ``protocol``.

A ``DeltaTable`` object is a snapshot: every read through it reads the version it was loaded
at, so the version recorded is ``table.version()`` at the time of the read, exactly.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from lineage_plugin.records import DeltaInput
from lineage_plugin.tracking import delta_log
from lineage_plugin.tracking.capture import capture_read, current_read_context
from lineage_plugin.tracking.patching import ReadDetails, after_hook, current_details, patch

if TYPE_CHECKING:
    from deltalake import DeltaTable

ENGINE = "deltalake"


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return value if isinstance(value, str) else repr(value)


def _columns(value: Any) -> tuple[str, ...] | None:
    return tuple(value) if value else None


def describe_table(
    table: DeltaTable, details: ReadDetails, change_data_from: int | None = None
) -> DeltaInput:
    """Describe a read of ``table`` at the version it is loaded at."""
    info = delta_log.resolve(
        table.table_uri, table.version(), storage_options=table._storage_options, table=table
    )
    return info.to_input(
        engine=details.engine,
        context=current_read_context(),
        filters=details.filters,
        partitions=details.partitions,
        columns=details.columns,
        change_data_from=change_data_from,
    )


def _record(
    table: DeltaTable, what: str, details: ReadDetails, cdf_from: int | None = None
) -> None:
    details = current_details(details)
    capture_read(lambda: describe_table(table, details, cdf_from), what=f"{details.engine} {what}")


def _on_read(method: str) -> Any:
    """The after-hook of a ``DeltaTable`` read method, reading its arguments by name."""

    def after(result: Any, a: dict[str, Any]) -> None:
        details = ReadDetails(
            ENGINE,
            filters=_text(
                a.get("filters") or a.get("file_pruning_predicate") or a.get("predicate")
            ),
            partitions=_text(a.get("partitions") or a.get("partition_filters")),
            columns=_columns(a.get("columns")),
        )
        _record(a["self"], f"DeltaTable.{method}", details)

    return after


def _after_cdf(result: Any, a: dict[str, Any]) -> None:
    table = a["self"]
    if a.get("ending_version") is not None:
        from deltalake import DeltaTable

        table = DeltaTable(
            table.table_uri, version=a["ending_version"], storage_options=table._storage_options
        )
    details = ReadDetails(
        ENGINE, filters=_text(a.get("predicate")), columns=_columns(a.get("columns"))
    )
    _record(table, "DeltaTable.load_cdf", details, cdf_from=a.get("starting_version"))


def _after_provider(result: Any, a: dict[str, Any]) -> None:
    _record(a["self"], "DataFusion table provider", ReadDetails("datafusion"))


def _after_register(result: Any, a: dict[str, Any]) -> None:
    a["self"].__dict__.setdefault("_lineage_tables", {})[a["table_name"]] = a["delta_table"]


def _after_execute(result: Any, a: dict[str, Any]) -> None:
    sql = a["sql"]
    for name, table in a["self"].__dict__.get("_lineage_tables", {}).items():
        # Only the registered tables the query names are recorded.
        if re.search(rf"(?<![\w]){re.escape(name)}(?![\w])", sql, re.IGNORECASE):
            _record(table, "QueryBuilder.execute", ReadDetails("deltalake-sql", filters=sql))


_READ_METHODS = (
    "to_pyarrow_dataset",
    "to_pyarrow_table",
    "to_pandas",
    "file_uris",
    "scan",
)


def install(module: Any = None) -> None:
    """Patch ``deltalake`` (called when it is imported, or at once if it already is)."""
    from deltalake import DeltaTable, QueryBuilder

    for method in _READ_METHODS:
        patch(DeltaTable, method, lambda f, m=method: after_hook(f, _on_read(m)))
    patch(DeltaTable, "load_cdf", lambda f: after_hook(f, _after_cdf))
    patch(DeltaTable, "__datafusion_table_provider__", lambda f: after_hook(f, _after_provider))
    # register() is not a read; it only remembers which table a query name stands for.
    patch(QueryBuilder, "register", lambda f: after_hook(f, _after_register))
    patch(QueryBuilder, "execute", lambda f: after_hook(f, _after_execute))
