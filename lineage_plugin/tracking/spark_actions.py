"""Spark actions and what they scan: SQL, views and other reads the plugin cannot pin.

A query that names Delta tables in SQL (``SELECT ... FROM delta.`/path```, catalog tables,
views) cannot be rewritten to a pinned version, so each action on it (``collect``, ``count``,
``toPandas``, writes...) is recorded from the analysed plan: time travel gives the version
exactly; otherwise the table's latest version is read just before and just after the action
and recorded only when they are equal. On Spark Connect there is no plan on the client, so
such an action marks the run incomplete with the reason.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from lineage_plugin.delta import log as delta_log
from lineage_plugin.delta import spark as delta_spark
from lineage_plugin.delta.own_reads import not_recorded
from lineage_plugin.records import DeltaInput
from lineage_plugin.tracking.capture import capture_read, current_read_context, session
from lineage_plugin.tracking.patching import bypassed

ENGINE = "spark"
#: Where the option hooks keep a reader's or writer's options (keys lowercased).
OPTIONS = "_lineage_options"


def record_read(spark: Any, uri: str, version: int, what: str, name: str | None = None) -> None:
    def describe() -> DeltaInput:
        info = delta_spark.version_info(spark, uri, version)
        return info.to_input(engine=ENGINE, context=current_read_context(), name=name)

    capture_read(describe, what=f"spark {what}")


def delta_relations(frame: Any) -> list[tuple[str, bool, int, str | None]] | None:
    """``(location, time travel, version at analysis, catalog name)`` of each Delta scan in
    the plan; ``None`` without a JVM (Spark Connect)."""
    jdf = getattr(frame, "_jdf", None)
    if jdf is None:
        return None
    found = []
    leaves = jdf.queryExecution().analyzed().collectLeaves()
    for i in range(leaves.size()):
        leaf = leaves.apply(i)
        if not leaf.getClass().getName().endswith("LogicalRelation"):
            continue
        try:  # only file relations have a location (JDBC, Kafka... do not)
            location = leaf.relation().location()
        except Exception:  # py4j's error for a method the object does not have
            continue
        if "TahoeLogFileIndex" not in location.getClass().getName():
            continue
        catalog = leaf.catalogTable()
        found.append(
            (
                location.path().toString(),
                bool(location.isTimeTravelQuery()),
                int(location.snapshotAtAnalysis().version()),
                catalog.get().identifier().unquotedString() if catalog.isDefined() else None,
            )
        )
    return found


def plan_version(frame: Any, uri: str) -> int | None:
    try:
        relations = delta_relations(frame) or []
    except Exception:
        return None
    norm = delta_log.normalize_uri(uri)
    return next((v for loc, _, v, _ in relations if delta_log.normalize_uri(loc) == norm), None)


def around_action(
    original: Callable[..., Any], what: str, frame_of: Callable[[Any], Any] = lambda s: s
) -> Callable[..., Any]:
    """Record the Delta tables an action scans (see the module docstring)."""

    @functools.wraps(original)
    def action(self: Any, *args: Any, **kwargs: Any) -> Any:
        if bypassed():
            return original(self, *args, **kwargs)
        frame = frame_of(self)
        try:
            relations = delta_relations(frame) or []
            spark = frame.sparkSession
            before = {
                loc: delta_spark.version_info(spark, loc).version
                for loc, tt, _, _ in relations
                if not tt
            }
        except Exception as exc:
            session().fail(f"spark {what}: could not read the query plan ({exc})")
            relations, before = [], {}
        with not_recorded():
            result = original(self, *args, **kwargs)
        for location, time_travel, version, name in relations:
            if time_travel:
                record_read(spark, location, version, what, name)
                continue
            try:
                after = delta_spark.version_info(spark, location).version
            except Exception as exc:
                session().fail(f"spark {what} of {location}: {exc}")
                continue
            if after == before[location]:
                record_read(spark, location, after, what, name)
            else:
                session().fail(
                    f"spark {what} read {location} while commits v{before[location] + 1}..v"
                    f"{after} landed, so the version it scanned is not known. Read it with "
                    "spark.read.format('delta').load(path) (pinned) or with VERSION AS OF."
                )
        return result

    action.__lineage_original__ = original  # type: ignore[attr-defined]
    return action


CONNECT_ADVICE = (
    "Read Delta tables with spark.read.table(name) or spark.read.format('delta').load(path) "
    "(pinned and recorded), or log them with lineage_plugin.log_delta_input()."
)


def is_connect(spark: Any) -> bool:
    """Whether ``spark`` is a Spark Connect session."""
    return type(spark).__module__.startswith("pyspark.sql.connect")


def runs_sql(plan: Any) -> bool:
    """Whether a Spark Connect plan runs a SQL query (a ``spark.sql(...)`` relation)."""
    from pyspark.sql.connect.plan import SQL, LogicalPlan

    stack, seen = [plan], set()
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        proto = getattr(node, "_plan", None)  # CachedRelation: the server's relation
        if isinstance(node, SQL) or (
            hasattr(proto, "WhichOneof") and proto.WhichOneof("rel_type") == "sql"
        ):
            return True
        for value in vars(node).values():
            children = value if isinstance(value, (list, tuple)) else (value,)
            stack += [c for c in children if isinstance(c, LogicalPlan)]
    return False


def around_connect_action(
    original: Callable[..., Any], what: str, plan_of: Callable[[Any], Any] = lambda s: s._plan
) -> Callable[..., Any]:
    """Spark Connect has no JVM to show which tables a SQL query scans: say so, never guess."""

    @functools.wraps(original)
    def action(self: Any, *args: Any, **kwargs: Any) -> Any:
        if bypassed():
            return original(self, *args, **kwargs)
        try:
            sql = runs_sql(plan_of(self))
        except Exception:  # never break the action
            sql = False
        if sql:
            session().fail(
                f"spark {what} on Spark Connect ran a SQL query: which Delta tables and versions "
                f"it scanned cannot be seen without a JVM. {CONNECT_ADVICE}"
            )
        with not_recorded():
            return original(self, *args, **kwargs)

    action.__lineage_original__ = original  # type: ignore[attr-defined]
    return action


def catalog_table(spark: Any, name: str) -> tuple[str, str] | None:
    """``(location, full catalog name)`` of table ``name`` when it is a Delta table.

    A view is not a table: classic Spark records the Delta tables behind it per action (from
    the plan); Spark Connect cannot see them, so the run is marked incomplete.
    """
    try:
        with not_recorded():
            detail = spark.sql(f"DESCRIBE DETAIL {name}").first()
    except Exception as exc:  # a view, a temp table, not a table at all
        if is_connect(spark) and "NOT_VIEW" in str(exc):
            session().fail(
                f"spark table {name} on Spark Connect: it is a view, and the Delta tables "
                f"behind it cannot be seen without a JVM. {CONNECT_ADVICE}"
            )
        return None
    if detail is None or (detail["format"] or "").lower() != "delta":
        return None
    return detail["location"], detail["name"] or name


def remember_option(result: Any, a: dict[str, Any]) -> None:
    """After ``option(key, value)`` of a reader or writer: remember it (keys lowercased)."""
    a["self"].__dict__.setdefault(OPTIONS, {})[str(a["key"]).lower()] = a["value"]


def remember_options(result: Any, a: dict[str, Any]) -> None:
    """After ``options(**options)`` of a reader or writer: remember them."""
    options = a["self"].__dict__.setdefault(OPTIONS, {})
    options.update({str(k).lower(): v for k, v in a["options"].items()})
