"""Read hooks for the ``deltalake`` package (delta-rs), the embedded default engine.

Hooked (they read data): ``to_pyarrow_dataset`` (``to_pyarrow_table`` and ``to_pandas`` go
through it), ``to_pyarrow_table``, ``to_pandas``, ``file_uris`` (polars' native reader uses it),
``scan``, ``load_cdf``, ``__datafusion_table_provider__`` and ``QueryBuilder.execute``.
Not hooked (metadata only): ``version``, ``history``, ``schema``, ``metadata``,
``get_add_actions``, ``protocol``.

A ``DeltaTable`` object is a snapshot: every read through it reads the version it was loaded
at, so the version recorded is ``table.version()`` at the time of the read, exactly. Two reads
do not follow the snapshot, and are pinned by the hooks instead: ``load_cdf`` without
``ending_version`` reads up to the latest version of the table (the hook resolves that version
once and passes it), and ``QueryBuilder`` reads the version a table had when it was registered.
"""

from __future__ import annotations

import functools
import inspect
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from lineage_plugin.delta import log as delta_log
from lineage_plugin.records import DeltaInput
from lineage_plugin.tracking.capture import capture_read, current_read_context, session
from lineage_plugin.tracking.patching import (
    ReadDetails,
    after_hook,
    bound_arguments,
    bypassed,
    patch,
)

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
    table: DeltaTable,
    details: ReadDetails,
    version: int | None = None,
    change_data_from: int | None = None,
) -> DeltaInput:
    """Describe a read of ``table`` at ``version`` (default: the version it is loaded at)."""
    loaded = table.version()
    info = delta_log.resolve(
        table.table_uri,
        loaded if version is None else version,
        storage_options=table._storage_options,
        table=table if version in (None, loaded) else None,
    )
    return info.to_input(
        engine=details.engine,
        context=current_read_context(),
        filters=details.filters,
        partitions=details.partitions,
        columns=details.columns,
        change_data_from=change_data_from,
    )


def record_table_read(
    get_table: Callable[[], DeltaTable],
    what: str,
    details: ReadDetails,
    version: int | None = None,
    change_data_from: int | None = None,
) -> None:
    """Record a read of a table; a failure to describe it never breaks the read."""
    capture_read(
        lambda: describe_table(get_table(), details, version, change_data_from),
        what=f"{details.engine} {what}",
    )


def _on_read(method: str) -> Callable[[Any, dict[str, Any]], None]:
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
        record_table_read(lambda: a["self"], f"DeltaTable.{method}", details)

    return after


def _pinned_load_cdf(original: Callable[..., Any]) -> Callable[..., Any]:
    signature = inspect.signature(original)

    @functools.wraps(original)
    def load_cdf(self: DeltaTable, *args: Any, **kwargs: Any) -> Any:
        if bypassed():
            return original(self, *args, **kwargs)
        try:
            a = bound_arguments(signature, (self, *args), kwargs)
        except TypeError:  # a bad call: let deltalake say what is wrong
            return original(self, *args, **kwargs)
        details = ReadDetails(ENGINE, filters=_text(a["predicate"]), columns=_columns(a["columns"]))
        if a["starting_version"] is None or a["starting_timestamp"] or a["ending_timestamp"]:
            result = original(self, *args, **kwargs)
            session().fail(
                "DeltaTable.load_cdf by timestamp: the versions read are not known, so none "
                "is recorded; pass starting_version and ending_version."
            )
            return result
        if a["ending_version"] is None:
            # delta-rs reads up to the latest version of the table, not the loaded snapshot:
            # resolve that version once and pin the read to it, so the record cannot lie.
            try:
                latest = delta_log.resolve(
                    self.table_uri, storage_options=self._storage_options
                ).version
            except Exception:
                return original(self, *args, **kwargs)  # never break the read
            a["ending_version"] = latest
        result = original(**a)
        record_table_read(
            lambda: self,
            "DeltaTable.load_cdf",
            details,
            version=a["ending_version"],
            change_data_from=a["starting_version"],
        )
        return result

    load_cdf.__lineage_original__ = original  # type: ignore[attr-defined]
    return load_cdf


def _after_provider(result: Any, a: dict[str, Any]) -> None:
    record_table_read(lambda: a["self"], "DataFusion table provider", ReadDetails("datafusion"))


def _after_register(result: Any, a: dict[str, Any]) -> None:
    # The query builder reads the snapshot the table had when it was registered.
    table = a["delta_table"]
    a["self"].__dict__.setdefault("_lineage_tables", {})[a["table_name"]] = (
        table,
        table.version(),
    )


def _after_execute(result: Any, a: dict[str, Any]) -> None:
    sql = a["sql"]
    for name, (table, version) in a["self"].__dict__.get("_lineage_tables", {}).items():
        # Only the registered tables the query names are recorded.
        if re.search(rf"(?<![\w]){re.escape(name)}(?![\w])", sql, re.IGNORECASE):
            details = ReadDetails("deltalake-sql", filters=sql)
            record_table_read(lambda t=table: t, "QueryBuilder.execute", details, version=version)


_READ_METHODS = ("to_pyarrow_dataset", "to_pyarrow_table", "to_pandas", "file_uris", "scan")


def install(module: Any = None) -> None:
    """Patch ``deltalake`` (called when it is imported, or at once if it already is)."""
    from deltalake import DeltaTable, QueryBuilder

    from lineage_plugin.tracking.reproducing import install_pins

    install_pins(DeltaTable)  # only in a process started by `mlflow-lineage reproduce`
    for method in _READ_METHODS:
        patch(DeltaTable, method, lambda f, m=method: after_hook(f, _on_read(m)))
    patch(DeltaTable, "load_cdf", _pinned_load_cdf)
    patch(DeltaTable, "__datafusion_table_provider__", lambda f: after_hook(f, _after_provider))
    # register() is not a read; it only remembers which snapshot a query name stands for.
    patch(QueryBuilder, "register", lambda f: after_hook(f, _after_register, always=True))
    patch(QueryBuilder, "execute", lambda f: after_hook(f, _after_execute))
