"""Read hooks for PySpark with delta-spark, the scale-out engine.

Delta on Spark does not pin a DataFrame to the snapshot it was analysed with: every action
reads the table's latest version, unless the read is time travel. So:

- reads the plugin can rewrite are **pinned** to the version resolved at read time, by adding
  ``versionAsOf``: ``spark.read.format("delta").load(path)`` (and ``load(path,
  format="delta")``), ``spark.read.table(name)`` and ``spark.table(name)`` on Delta tables,
  ``DeltaTable.forPath(...).toDF()`` and ``DeltaTable.forName(...).toDF()``. The DataFrame then
  keeps reading that version, and the read is recorded with it. A read that names its own
  ``versionAsOf`` keeps it; ``timestampAsOf`` is recorded with the version Spark resolved.
- reads it cannot rewrite (SQL such as ``SELECT * FROM delta.`/path```, or a view) are recorded
  **per action** (``collect``, ``count``, ``toPandas``, ``show``, writes...), from the query
  plan: time travel gives the version exactly; otherwise the table's latest version is read just
  before and just after the action, and recorded only when they are equal (no commit landed in
  between, so that is the version the action scanned). When they differ the run is marked
  incomplete with the reason: never a guess.

Catalog tables are recorded by location (the URI) with their catalog name as display name.
On Spark Connect (no JVM) the pinned reads (``load``, ``table``, ``spark.table`` and Delta
Connect's ``DeltaTable...toDF()``) work the same. The plan of a SQL query or a view is on the
server, so an action on a SQL query, a read of a view and a ``timestampAsOf`` read mark the run
incomplete with the reason.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

from lineage_plugin.delta import log as delta_log
from lineage_plugin.delta import spark as delta_spark
from lineage_plugin.delta.own_reads import not_recorded
from lineage_plugin.tracking import spark_write_hooks
from lineage_plugin.tracking.capture import session
from lineage_plugin.tracking.patching import after_hook, bound_arguments, bypassed, patch
from lineage_plugin.tracking.reproducing import pinned_version
from lineage_plugin.tracking.spark_actions import (
    CONNECT_ADVICE,
    OPTIONS,
    around_action,
    around_connect_action,
    catalog_table,
    plan_version,
    record_read,
    remember_option,
    remember_options,
)

_FORMAT = "_lineage_format"
_SOURCE = "_lineage_source"
_ACTIONS = (
    "collect",
    "count",
    "toPandas",
    "toArrow",
    "take",
    "head",
    "first",
    "tail",
    "show",
    "toLocalIterator",
    "foreach",
    "foreachPartition",
)
_WRITES = ("save", "saveAsTable", "insertInto")


# ------------------------------------------------------------------ resolving versions


def _pin(spark: Any, uri: str, options: dict[str, Any]) -> int | None:
    """The version to read: the one asked for, the reproduction's pin, or the latest now."""
    if "versionasof" in options:
        return int(options["versionasof"])
    if "timestampasof" in options:
        return None  # Spark resolves it; recorded from the plan
    pinned = pinned_version(delta_log.normalize_uri(uri))
    return pinned if pinned is not None else delta_spark.version_info(spark, uri).version


# ------------------------------------------------------------------ reader hooks


def _remember_format(result: Any, a: dict[str, Any]) -> None:
    a["self"].__dict__[_FORMAT] = str(a["source"]).lower()


def _pinned_read(original: Callable[..., Any], kind: str) -> Callable[..., Any]:
    """Wrap ``DataFrameReader.load`` / ``.table``: pin a Delta read and record it."""
    signature = inspect.signature(original)

    @functools.wraps(original)
    def read(self: Any, *args: Any, **kwargs: Any) -> Any:
        if bypassed():
            return original(self, *args, **kwargs)
        try:
            a = bound_arguments(signature, (self, *args), kwargs)
        except TypeError:  # a bad call: let Spark say what is wrong
            return original(self, *args, **kwargs)
        target = _delta_target(self, a, kind)
        if target is None:
            return original(self, *args, **kwargs)
        uri, name = target
        options = {
            **{str(k).lower(): v for k, v in _reader_options(self).items()},
            **{k.lower(): v for k, v in a.get("options", {}).items()},
        }
        spark = _reader_session(self)
        try:
            version = _pin(spark, uri, options)
        except Exception as exc:  # never break the read: it reads unpinned, and says so
            session().fail(f"spark {kind} of {uri}: could not resolve the version ({exc})")
            return original(self, *args, **kwargs)
        if version is not None and "versionasof" not in options:
            self.option("versionAsOf", version)
        with not_recorded():
            frame = original(self, *args, **kwargs)
        if version is None:  # timestampAsOf: Spark resolved it; the plan says which
            version = plan_version(frame, uri)
        if version is None:
            session().fail(f"spark {kind} of {uri} by timestamp: the version read is not known")
        else:
            record_read(spark, uri, version, kind, name)
        return frame

    read.__lineage_original__ = original  # type: ignore[attr-defined]
    return read


def _reader_session(reader: Any) -> Any:
    """The SparkSession of a reader (classic: ``_spark``; Spark Connect: ``_client``)."""
    return getattr(reader, "_spark", None) or reader._client


def _reader_options(reader: Any) -> dict[str, Any]:
    """The options set on a reader: remembered by the hooks (classic), or its own (Connect)."""
    return reader.__dict__.get(OPTIONS) or getattr(reader, "_options", None) or {}


def _delta_target(reader: Any, a: dict[str, Any], kind: str) -> tuple[str, str | None] | None:
    """``(location, catalog name)`` when the read is a Delta read, else ``None``."""
    if kind == "table":
        name = a["tableName"]
        return catalog_table(_reader_session(reader), name) if isinstance(name, str) else None
    fmt = a.get("format") or reader.__dict__.get(_FORMAT) or getattr(reader, "_format", None)
    fmt = (fmt or "").lower()
    path = a.get("path")
    if fmt != "delta" or not isinstance(path, str):
        return None
    return path, None


def _session_table(original: Callable[..., Any]) -> Callable[..., Any]:
    """``spark.table(name)``: the same as ``spark.read.table(name)``, so it is pinned too."""

    @functools.wraps(original)
    def table(self: Any, tableName: str) -> Any:  # noqa: N803 (PySpark's parameter name)
        if bypassed() or not isinstance(tableName, str):
            return original(self, tableName)
        return self.read.table(tableName)

    table.__lineage_original__ = original  # type: ignore[attr-defined]
    return table


# ------------------------------------------------------------------ delta.tables.DeltaTable


def _remember_source(kind: str) -> Callable[[Any, dict[str, Any]], None]:
    def after(result: Any, a: dict[str, Any]) -> None:
        where = a.get("path") if kind == "path" else a.get("tableOrViewName")
        result.__dict__[_SOURCE] = (kind, where, a["sparkSession"])

    return after


def _classic_source(table: Any) -> tuple[str, Any, Any] | None:
    """``(kind, path or name, session)`` remembered by the ``forPath``/``forName`` hooks."""
    return table.__dict__.get(_SOURCE)


def _connect_source(table: Any) -> tuple[str, Any, Any] | None:
    """``(kind, path or name, session)`` of a Delta Connect table (``None`` for a derived one
    such as ``alias()``, or one with Hadoop options)."""
    if type(table._plan).__name__ != "DeltaScan" or table._hadoopConf:
        return None
    if table._path is not None:
        return "path", table._path, table._spark
    return "name", table._tableOrViewName, table._spark


def _delta_table_to_df(
    original: Callable[..., Any],
    source_of: Callable[[Any], tuple[str, Any, Any] | None],
    unseen: str | None = None,
) -> Callable[..., Any]:
    """``DeltaTable...toDF()`` as the pinned reader read of the same table.

    ``unseen``: why a table it cannot rewrite is not recorded; the run is marked incomplete
    with it (Spark Connect, where no action shows the plan). ``None``: the actions record it.
    """

    @functools.wraps(original)
    def to_df(self: Any) -> Any:
        if bypassed():
            return original(self)
        source = source_of(self)
        if source is None:
            if unseen is not None:
                session().fail(unseen)
            return original(self)
        kind, where, spark = source
        if kind == "path":
            return spark.read.format("delta").load(where)
        return spark.read.table(where)

    to_df.__lineage_original__ = original  # type: ignore[attr-defined]
    return to_df


def owner(cls: type, name: str) -> type:
    return next(k for k in cls.__mro__ if name in k.__dict__)


def _patch_actions(frame: type, writer: type | None, wrap: Callable[..., Any]) -> None:
    """Wrap the DataFrame actions and the writer's saves (whose frame is ``writer._df``)."""
    for name in _ACTIONS:
        patch(owner(frame, name), name, lambda f, n=name: wrap(f, n))
    for name in _WRITES if writer is not None else ():
        patch(writer, name, lambda f, n=name: wrap(f, f"write.{n}", lambda w: w._df))


def install(module: Any = None) -> None:
    """Patch PySpark's reader, session and DataFrame actions (when ``pyspark.sql`` is imported)."""
    from pyspark.sql import SparkSession
    from pyspark.sql.classic.dataframe import DataFrame
    from pyspark.sql.readwriter import DataFrameReader, DataFrameWriter

    patch(DataFrameReader, "format", lambda f: after_hook(f, _remember_format, always=True))
    patch(DataFrameReader, "option", lambda f: after_hook(f, remember_option, always=True))
    patch(DataFrameReader, "options", lambda f: after_hook(f, remember_options, always=True))
    patch(DataFrameReader, "load", lambda f: _pinned_read(f, "load"))
    patch(DataFrameReader, "table", lambda f: _pinned_read(f, "table"))
    patch(owner(SparkSession, "table"), "table", _session_table)
    _patch_actions(DataFrame, None, around_action)
    # The saves record their reads (around_action) and what they write.
    spark_write_hooks.install_writers(
        owner(SparkSession, "sql"), DataFrame, DataFrameWriter, around_action
    )


def install_connect(module: Any = None) -> None:
    """Patch the Spark Connect reader (when ``pyspark.sql.connect.readwriter`` is imported).

    Pinned reads work the same; there is no JVM, so SQL plans cannot be inspected: actions on
    SQL queries mark the run incomplete.
    """
    from pyspark.sql.connect.dataframe import DataFrame
    from pyspark.sql.connect.readwriter import DataFrameReader, DataFrameWriter

    patch(DataFrameReader, "load", lambda f: _pinned_read(f, "load"))
    patch(DataFrameReader, "table", lambda f: _pinned_read(f, "table"))
    _patch_actions(DataFrame, DataFrameWriter, around_connect_action)  # writer._df is a plan


def install_delta_tables(module: Any = None) -> None:
    """Patch ``delta.tables.DeltaTable`` (when delta-spark is imported)."""
    from delta.tables import DeltaTable

    for name, kind in (("forPath", "path"), ("forName", "name")):
        patch(
            DeltaTable,
            name,
            lambda f, k=kind: classmethod(after_hook(f.__func__, _remember_source(k), always=True)),
        )
    patch(DeltaTable, "toDF", lambda f: _delta_table_to_df(f, _classic_source))
    spark_write_hooks.install_delta_tables()


def install_delta_connect(module: Any = None) -> None:
    """Patch Delta Connect's ``DeltaTable`` (when ``delta.connect.tables`` is imported)."""
    from delta.connect.tables import DeltaTable

    unseen = (
        "DeltaTable.toDF() on Spark Connect of a derived table (alias(), Hadoop options) cannot "
        f"be pinned, and its plan cannot be seen without a JVM. {CONNECT_ADVICE}"
    )
    patch(DeltaTable, "toDF", lambda f: _delta_table_to_df(f, _connect_source, unseen))
