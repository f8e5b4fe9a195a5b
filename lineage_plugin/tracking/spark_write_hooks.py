"""Write hooks for PySpark with delta-spark (classic Spark; not Spark Connect).

Hooked: ``DataFrameWriter.save`` / ``saveAsTable`` / ``insertInto`` of Delta tables,
``DataFrameWriterV2`` (``df.writeTo(t)...append()/overwrite()/overwritePartitions()/create()/
replace()/createOrReplace()``), Delta SQL run with ``spark.sql`` (``MERGE INTO``, ``UPDATE``,
``DELETE FROM``, ``INSERT INTO/OVERWRITE``, ``OPTIMIZE``, ``RESTORE``; statements whose
target is a Delta table) and ``delta.tables.DeltaTable``'s ``merge(...).execute()``,
``update``, ``delete``, ``restoreToVersion``, ``restoreToTimestamp`` and
``optimize()...executeCompaction()/executeZOrderBy()``. Writer writes are stamped, the others
recorded from the history: see :mod:`lineage_plugin.tracking.spark_writes`.

Not hooked: ``vacuum`` (changes no version's data), ``CREATE TABLE ... AS SELECT`` in SQL,
``DeltaTable.create()...execute()``, clones, streaming writes, Spark Connect writes.
"""

from __future__ import annotations

import functools
import inspect
import re
from collections.abc import Callable
from typing import Any

from lineage_plugin.delta.own_reads import not_recorded
from lineage_plugin.delta.stamps import spark_user_metadata
from lineage_plugin.tracking.deltalake_writes import writing_run
from lineage_plugin.tracking.patching import after_hook, bound_arguments, bypassed, patch
from lineage_plugin.tracking.spark_actions import OPTIONS, remember_option, remember_options
from lineage_plugin.tracking.spark_writes import (
    WRITER_OPERATIONS,
    SparkWrite,
    delta_table_at,
    plan,
    recorded,
    safely,
)

#: The table a ``DataFrameWriterV2`` writes (``df.writeTo(table)``).
_TARGET = "_lineage_write_target"
#: The ``DeltaTable`` a merge or optimize builder writes.
_BUILT_FROM = "_lineage_built_from"


# ------------------------------------------------------------------ DataFrameWriter (v1, v2)


def _remember_format(key: str) -> Callable[[Any, dict[str, Any]], None]:
    def after(result: Any, a: dict[str, Any]) -> None:
        a["self"].__dict__.setdefault(OPTIONS, {})["__format__"] = str(a[key]).lower()

    return after


def _writer_plan(
    spark: Any,
    what: str,
    table: Any,
    options: dict[str, Any],
    stamp_with: Callable[[str], Any] | None,
    *,
    by_path: bool = False,
    creates: bool = False,
) -> SparkWrite | None:
    """The write of a ``DataFrameWriter``/``DataFrameWriterV2``, stamped with
    ``stamp_with(userMetadata)`` unless the user has their own; ``None``: not a Delta write."""
    if not isinstance(table, str) or writing_run(f"spark {what}") is None:
        return None  # without a run: no query added, nothing stamped
    fmt = str(options.get("__format__") or "").lower()
    if fmt and fmt != "delta":
        return None
    if not fmt:  # Delta when the table is, or when the session's default source is
        default = str(spark.conf.get("spark.sql.sources.default", "parquet")).lower()
        with not_recorded():
            if (
                not (creates and default == "delta")
                and delta_table_at(spark, table, by_path) is None
            ):
                return None
    write = plan(
        f"spark {what}",
        spark,
        table,
        by_path=by_path,
        operations=WRITER_OPERATIONS,
        stampable=stamp_with is not None,
        user_metadata=options.get("usermetadata"),
    )
    if write is not None and write.stamp is not None and stamp_with is not None:
        stamp_with(spark_user_metadata(write.stamp))
    return write


def _writer_save(original: Callable[..., Any], what: str, key: str) -> Callable[..., Any]:
    signature = inspect.signature(original)

    @functools.wraps(original)
    def save(self: Any, *args: Any, **kwargs: Any) -> Any:
        if bypassed():
            return original(self, *args, **kwargs)
        try:
            a = bound_arguments(signature, (self, *args), kwargs)
        except TypeError:
            return original(self, *args, **kwargs)
        options = {
            **self.__dict__.get(OPTIONS, {}),
            **{str(k).lower(): v for k, v in a.get("options", {}).items()},
        }
        if a.get("format"):
            options["__format__"] = str(a["format"]).lower()

        def stamp_with(text: str) -> None:
            # On the JVM writer: the option hook would take it for the user's own.
            self._jwrite = self._jwrite.option("userMetadata", text)

        write = safely(
            what,
            lambda: _writer_plan(
                self._spark,
                what,
                a.get(key),
                options,
                # insertInto drops the writer's options: recorded from the history.
                stamp_with if what != "write.insertInto" else None,
                by_path=key == "path",
                creates=what == "write.saveAsTable",
            ),
        )
        return recorded(lambda: original(self, *args, **kwargs), write)

    save.__lineage_original__ = original  # type: ignore[attr-defined]
    return save


def _remember_table(result: Any, a: dict[str, Any]) -> None:
    result.__dict__[_TARGET] = a["table"]


def _v2_write(original: Callable[..., Any], name: str) -> Callable[..., Any]:
    @functools.wraps(original)
    def write_v2(self: Any, *args: Any, **kwargs: Any) -> Any:
        table = self.__dict__.get(_TARGET)
        if bypassed() or not isinstance(table, str):
            return original(self, *args, **kwargs)
        options = self.__dict__.get(OPTIONS, {})

        def make() -> SparkWrite | None:
            return _writer_plan(
                self._spark,
                f"writeTo.{name}",
                table,
                options,
                lambda text: self._jwriter.option("userMetadata", text),
                creates=name in ("create", "replace", "createOrReplace"),
            )

        return recorded(lambda: original(self, *args, **kwargs), safely(name, make))

    write_v2.__lineage_original__ = original  # type: ignore[attr-defined]
    return write_v2


_V2_WRITES = ("append", "overwrite", "overwritePartitions", "create", "replace", "createOrReplace")


def install_writers(
    spark_session: type, frame: type, writer: type, wrap_action: Callable[..., Any]
) -> None:
    """Patch ``spark.sql``, ``DataFrameWriter``'s saves (inside ``wrap_action``, which records
    their reads) and ``DataFrameWriterV2`` (classic Spark)."""
    from pyspark.sql.readwriter import DataFrameWriterV2

    patch(spark_session, "sql", _sql)

    patch(writer, "format", lambda f: after_hook(f, _remember_format("source"), always=True))
    patch(writer, "option", lambda f: after_hook(f, remember_option, always=True))
    patch(writer, "options", lambda f: after_hook(f, remember_options, always=True))
    for name, key in (("save", "path"), ("saveAsTable", "name"), ("insertInto", "tableName")):
        patch(
            writer,
            name,
            lambda f, n=name, k=key: _writer_save(
                wrap_action(f, f"write.{n}", lambda w: w._df), f"write.{n}", k
            ),
        )
    patch(frame, "writeTo", lambda f: after_hook(f, _remember_table, always=True))
    patch(
        DataFrameWriterV2,
        "using",
        lambda f: after_hook(f, _remember_format("provider"), always=True),
    )
    patch(DataFrameWriterV2, "option", lambda f: after_hook(f, remember_option, always=True))
    patch(DataFrameWriterV2, "options", lambda f: after_hook(f, remember_options, always=True))
    for name in _V2_WRITES:
        patch(DataFrameWriterV2, name, lambda f, n=name: _v2_write(f, n))


# ------------------------------------------------------------------ SQL


_IDENT = r"(delta\.`(?P<path>[^`]+)`|(?P<name>[\w`.]+))"
_SQL = re.compile(
    r"^\s*(?P<verb>MERGE\s+INTO|UPDATE|DELETE\s+FROM|INSERT\s+(?:INTO|OVERWRITE)(?:\s+TABLE)?|"
    r"OPTIMIZE|RESTORE(?:\s+TABLE)?)\s+" + _IDENT,
    re.IGNORECASE,
)
_SQL_OPERATIONS = {
    "MERGE": ("MERGE",),
    "UPDATE": ("UPDATE",),
    "DELETE": ("DELETE",),
    "INSERT": ("WRITE",),
    "OPTIMIZE": ("OPTIMIZE",),
    "RESTORE": ("RESTORE",),
}


def sql_target(query: str) -> tuple[str, str, bool] | None:
    """``(verb, table, by path)`` of a Delta write statement, ``None`` for anything else."""
    match = _SQL.match(query)
    if match is None:
        return None
    verb = match["verb"].split()[0].upper()
    if match["path"] is not None:
        return verb, match["path"], True
    return verb, match["name"], False


def _sql(original: Callable[..., Any]) -> Callable[..., Any]:
    """``spark.sql(...)``: a Delta write statement is recorded from the history."""

    @functools.wraps(original)
    def sql(self: Any, sqlQuery: str, *args: Any, **kwargs: Any) -> Any:  # noqa: N803
        target = sql_target(sqlQuery) if isinstance(sqlQuery, str) and not bypassed() else None
        if target is None:
            return original(self, sqlQuery, *args, **kwargs)
        verb, table, by_path = target

        def make() -> SparkWrite | None:
            return plan(
                f"spark.sql {verb}",
                self,
                table,
                by_path=by_path,
                operations=_SQL_OPERATIONS[verb],
                stampable=False,
                existing_only=True,
            )

        return recorded(lambda: original(self, sqlQuery, *args, **kwargs), safely(verb, make))

    sql.__lineage_original__ = original  # type: ignore[attr-defined]
    return sql


# ------------------------------------------------------------------ delta.tables.DeltaTable


def _table_of(table: Any) -> tuple[Any, str] | None:
    """``(session, location)`` of a ``DeltaTable``, from its plan."""
    from pyspark.sql.classic.dataframe import DataFrame

    from lineage_plugin.tracking.spark_actions import delta_relations

    with not_recorded():
        relations = delta_relations(DataFrame(table._jdt.toDF(), table._spark)) or []
    return (table._spark, relations[0][0]) if len(relations) == 1 else None


def _table_plan(table: Any, what: str, operations: tuple[str, ...]) -> SparkWrite | None:
    if table is None:  # a builder made before the hooks were installed
        return None
    found = _table_of(table)
    if found is None:
        return None
    spark, location = found
    return plan(
        f"DeltaTable.{what}",
        spark,
        location,
        by_path=True,
        operations=operations,
        stampable=False,
    )


def _table_op(
    original: Callable[..., Any], what: str, operations: tuple[str, ...], of: Callable[[Any], Any]
) -> Callable[..., Any]:
    """A ``DeltaTable`` (or optimize builder) operation, recorded from the history."""

    @functools.wraps(original)
    def op(self: Any, *args: Any, **kwargs: Any) -> Any:
        if bypassed():
            return original(self, *args, **kwargs)
        write = safely(what, lambda: _table_plan(of(self), what, operations))
        return recorded(lambda: original(self, *args, **kwargs), write)

    op.__lineage_original__ = original  # type: ignore[attr-defined]
    return op


def _keep_table(result: Any, a: dict[str, Any]) -> None:
    """A builder method: the builder it returns writes the same table."""
    table = a["self"].__dict__.get(_BUILT_FROM)
    if table is not None and result is not None:
        result.__dict__[_BUILT_FROM] = table


def _new_builder(result: Any, a: dict[str, Any]) -> None:
    result.__dict__[_BUILT_FROM] = a["self"]


def install_delta_tables(module: Any = None) -> None:
    """Patch ``delta.tables.DeltaTable``'s writes (when delta-spark is imported)."""
    from delta.tables import DeltaMergeBuilder, DeltaOptimizeBuilder, DeltaTable

    for name, operations in (
        ("update", ("UPDATE",)),
        ("delete", ("DELETE",)),
        ("restoreToVersion", ("RESTORE",)),
        ("restoreToTimestamp", ("RESTORE",)),
    ):
        patch(DeltaTable, name, lambda f, n=name, o=operations: _table_op(f, n, o, lambda t: t))
    for name in ("merge", "optimize"):
        patch(DeltaTable, name, lambda f: after_hook(f, _new_builder, always=True))
    for name, value in vars(DeltaMergeBuilder).items():
        if (name.startswith("when") or name == "withSchemaEvolution") and callable(value):
            patch(DeltaMergeBuilder, name, lambda f: after_hook(f, _keep_table, always=True))
    patch(
        DeltaMergeBuilder,
        "execute",
        lambda f: _table_op(f, "merge.execute", ("MERGE",), lambda b: b.__dict__.get(_BUILT_FROM)),
    )
    patch(DeltaOptimizeBuilder, "where", lambda f: after_hook(f, _keep_table, always=True))
    for name in ("executeCompaction", "executeZOrderBy"):
        patch(
            DeltaOptimizeBuilder,
            name,
            lambda f, n=name: _table_op(
                f, f"optimize.{n}", ("OPTIMIZE",), lambda b: b.__dict__.get(_BUILT_FROM)
            ),
        )
