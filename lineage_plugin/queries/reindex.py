"""``reindex``: rebuild the lineage index from what MLflow holds (the system of record).

Two ways to read MLflow, giving the same index:

- ``sql``: MLflow's own tables, read directly and page by page
  (:mod:`lineage_plugin.store.mlflow_tables`), for SQL backends (``sqlite:``, ``postgresql:``,
  ``mysql:``, ``mssql:``, with or without ``lineage+``). Fast: no ``Run`` objects are built.
- ``api``: MLflow's store API (``search_runs``, ``search_model_versions``,
  ``search_registered_models``), for every backend (``file:``, ``http(s):``).

``source="auto"`` (the default) takes ``sql`` where there is a SQL database, else ``api``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from lineage_plugin import tags as T
from lineage_plugin.deleted import deleted_versions
from lineage_plugin.errors import LineageError
from lineage_plugin.events import RegistryEvent, collect_events, events_from_tags
from lineage_plugin.progress import Advance, Progress, status_lines, tracked
from lineage_plugin.queries.workspace import Workspace

if TYPE_CHECKING:
    from lineage_plugin.records import RunLineage
    from lineage_plugin.store.index import LineageIndex, RunRow

#: The values of ``reindex(source=...)``.
SOURCES = ("auto", "api", "sql")


@dataclass(frozen=True, kw_only=True)
class ReindexSummary:
    """What ``reindex`` found in MLflow and wrote into the index."""

    index_url: str
    runs: int
    reads: int
    writes: int
    model_versions: int
    events: int
    holdings: int
    seconds: float
    #: Write edges recovered from the tables' commit stamps (not in the runs' records).
    stamped_writes: int = 0

    def to_dict(self) -> dict[str, Any]:
        """The documented JSON of ``reindex --json``."""
        return asdict(self)


def reindex(
    *,
    tracking_uri: str | None = None,
    progress: Callable[[str], None] | None = None,
    source: str = "auto",
    into: LineageIndex | None = None,
    stamps: bool = True,
) -> ReindexSummary:
    """Rebuild the lineage index from MLflow's runs, model versions and event tags, and the
    write edges from the commit stamps in the tables' own Delta history.

    Args:
        tracking_uri: Where MLflow is (default: MLflow's tracking URI).
        progress: Called with a status line as each phase finishes.
        source: ``"sql"`` reads MLflow's tables directly (SQL backends only), ``"api"``
            reads through MLflow's store API, ``"auto"`` takes ``"sql"`` when it can.
        into: Build this index instead of the tracking URI's (``reindex --check`` builds a
            scratch one to compare with); MLflow is read the same way.
        stamps: Also read the history of every table in the recorded lineage and add the
            commits stamped by an MLflow run whose record lacks them
            (:mod:`lineage_plugin.queries.stamped_writes`).

    Returns:
        A :class:`ReindexSummary`.

    Raises:
        LineageError: ``source`` is unknown, ``"sql"`` was asked for a backend without a SQL
            database, or the database lacks MLflow's tables (the message says what to do).

    Example:
        >>> reindex(progress=print).runs
    """
    from lineage_plugin.store.mlflow_database import safe_url, sql_backend_url

    if source not in SOURCES:
        raise LineageError(f"Unknown reindex source '{source}': use one of {', '.join(SOURCES)}.")
    say = status_lines(progress)
    started = time.perf_counter()
    ws = Workspace(tracking_uri)
    url = None if source == "api" else sql_backend_url(ws.tracking_uri)
    if source == "sql" and url is None:
        raise LineageError(
            f"reindex(source='sql') reads MLflow's SQL database, and {ws.tracking_uri} has "
            "none. Use source='api' (--source api) or 'auto' for file: and http(s): tracking URIs."
        )
    if url:  # a database that is not MLflow's is refused before MLflow's API touches it
        from lineage_plugin.store.mlflow_database import MlflowDatabase

        MlflowDatabase(url).check()
    if into is None:  # MLflow's record first: changes whose events a dead client never wrote
        resolved = _reconcile_intents(ws)
        if resolved:
            say(f"recorded {resolved} registry events of interrupted changes")
    target = (lambda: _ensured(into)) if into is not None else ws.require_index
    counts = _from_tables(url, target, progress) if url else _from_api(ws, target, say)
    written = into if into is not None else ws.index
    stamped = 0
    if stamps:
        from lineage_plugin.queries.stamped_writes import recover_stamped_writes

        stamped = recover_stamped_writes(ws, written)
        say(f"recovered {stamped} writes from the tables' commit stamps")
    summary = ReindexSummary(
        index_url=written.url,
        **counts,
        stamped_writes=stamped,
        seconds=round(time.perf_counter() - started, 3),
    )
    if into is None:
        say(f"wrote the index at {safe_url(written.url)}")
    return summary


def _reconcile_intents(ws: Workspace) -> int:
    """Resolve the intents left on registered models (see :mod:`lineage_plugin.store.intents`);
    returns how many events were written for changes that happened."""
    from lineage_plugin.store.intents import intent_keys, reconcile_intents
    from lineage_plugin.store.recording import own_tag_writes

    written = 0
    for model in ws.registered_models():
        if intent_keys(dict(model.tags or {})):
            with own_tag_writes():
                written += len(reconcile_intents(ws.registry_store, model.name))
    return written


def _ensured(index: LineageIndex) -> LineageIndex:
    index.ensure()
    return index


def _from_api(
    ws: Workspace, target: Callable[[], LineageIndex], say: Callable[[str], None]
) -> dict[str, int]:
    from lineage_plugin.store.index_updates import run_row

    index = target()
    say("reading MLflow through its API (search_runs, search_model_versions)")
    runs = []
    gone = ws.deleted_experiment_ids()
    for run in ws.lineage_runs():
        row = run_row(run.info, experiment_deleted=run.info.experiment_id in gone)
        runs.append((T.run_lineage_from_tags(run.info.run_id, run.data.tags), row))
        if len(runs) % 10000 == 0:
            say(f"read {len(runs)} runs...")
    say(f"read {len(runs)} runs with lineage")
    versions, events, holdings = _registry(list(ws.registered_models()), ws.model_versions())
    say(f"read {len(versions)} model versions and {len(events)} registry events")
    index.rebuild(runs=runs, model_versions=versions, events=events, holdings=holdings)
    reads = sum(len(r.inputs) for r, _ in runs)
    writes = sum(len(r.outputs) for r, _ in runs)
    return _counts(len(runs), reads, writes, versions, events, holdings)


def _from_tables(
    url: str, target: Callable[[], LineageIndex], progress: Progress | None
) -> dict[str, int]:
    from lineage_plugin.store.mlflow_database import MlflowDatabase

    say = status_lines(progress)
    database = MlflowDatabase(url)  # checked by reindex before anything was written
    index = target()
    say(f"reading MLflow's tables directly in {database.safe_url}")
    with database.rebuilding(index) as (tables, conn):
        versions, events, holdings = _registry(tables.registered_models(), tables.model_versions())
        say(f"read {len(versions)} model versions and {len(events)} registry events")
        total = tables.lineage_run_count() if getattr(progress, "bar", None) else None
        with tracked(progress, "Indexing runs", total) as advance:
            runs = _Counted(tables.lineage_runs(), say, advance)
            index.rebuild(
                runs=runs, model_versions=versions, events=events, holdings=holdings, conn=conn
            )
    say(f"read {runs.runs} runs with lineage")
    return _counts(runs.runs, runs.reads, runs.writes, versions, events, holdings)


class _Counted:
    """Runs passed through, counted (runs, reads, writes), with a status line every 10,000 (and
    the progress bar advanced, when one is drawn)."""

    def __init__(
        self,
        runs: Iterable[tuple[RunLineage, RunRow]],
        say: Callable[[str], None],
        advance: Advance,
    ) -> None:
        self._runs = runs
        self._say = say
        self._advance = advance
        self.runs = 0
        self.reads = 0
        self.writes = 0

    def __iter__(self) -> Iterator[tuple[RunLineage, RunRow]]:
        for record, row in self._runs:
            self.runs += 1
            self.reads += len(record.inputs)
            self.writes += len(record.outputs)
            if self.runs % 10000 == 0:
                self._say(f"read {self.runs} runs...")
            if self.runs % 500 == 0:
                self._advance(500)
            yield record, row
        self._advance(self.runs % 500)


def _counts(
    runs: int, reads: int, writes: int, versions: list, events: list, holdings: list
) -> dict[str, int]:
    return {
        "runs": runs,
        "reads": reads,
        "writes": writes,
        "model_versions": len(versions),
        "events": len(events),
        "holdings": len(holdings),
    }


def _registry(
    registered: list[Any], model_versions: Iterable[Any]
) -> tuple[list[dict], list[RegistryEvent], list[dict]]:
    """Index rows from registered models and model versions (MLflow's entities, or the
    records of :mod:`lineage_plugin.store.mlflow_tables`, which have the same fields)."""
    from lineage_plugin.store.index_updates import deleted_version_row, model_version_row

    aliases: dict[tuple[str, str], list[str]] = {}  # search_model_versions leaves them out
    for rm in registered:
        for alias, version in (rm.aliases or {}).items():
            aliases.setdefault((rm.name, str(version)), []).append(alias)
    model_versions = list(model_versions)
    live = {(mv.name, str(mv.version)) for mv in model_versions}
    gone = [
        deleted_version_row(rm.name, record)
        for rm in registered
        for number, record in sorted(deleted_versions(rm.tags or {}).items())
        if (rm.name, number) not in live  # a live version wins over a stale record
    ]
    holdings = [
        h
        for mv in model_versions
        for h in _holdings(
            mv,
            aliases.get((mv.name, str(mv.version)), []),
            events_from_tags(mv.tags or {}, name=mv.name),
        )
    ]
    events = collect_events([*registered, *model_versions])
    return [*(model_version_row(mv) for mv in model_versions), *gone], events, holdings


def _holdings(mv: Any, aliases: list[str], events: list[RegistryEvent]) -> list[dict[str, Any]]:
    def since(kind: str, label: str) -> int | None:
        times = [
            e.time
            for e in events
            if (kind == "alias" and e.alias == label) or (kind == "stage" and e.stage == label)
        ]
        return max(times) if times else mv.last_updated_timestamp

    held = [("alias", a) for a in sorted(aliases)]
    if mv.current_stage and mv.current_stage != "None":
        held.append(("stage", mv.current_stage))
    return [
        {
            "name": mv.name,
            "kind": kind,
            "label": label,
            "version": int(mv.version),
            "since": since(kind, label),
        }
        for kind, label in held
    ]
