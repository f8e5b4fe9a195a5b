"""``reindex``: rebuild the lineage index from what MLflow holds (the system of record)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from typing import Any

from lineage_plugin import tags as T
from lineage_plugin.events import EVENT_PREFIX, RegistryEvent, events_from_tags
from lineage_plugin.queries.workspace import Workspace

_PAGE = 1000


@dataclass(frozen=True, kw_only=True)
class ReindexSummary:
    """What ``reindex`` found in MLflow and wrote into the index."""

    index_url: str
    runs: int
    reads: int
    model_versions: int
    events: int
    holdings: int
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        """The documented JSON of ``reindex --json``."""
        return asdict(self)


def _pages(fetch: Callable[[str | None], Any]) -> Iterator[Any]:
    token = None
    while True:
        page = fetch(token)
        yield from page
        token = page.token
        if not token:
            return


def _experiment_ids(store: Any) -> list[str]:
    from mlflow.entities import ViewType

    return [
        e.experiment_id
        for e in _pages(
            lambda token: store.search_experiments(
                view_type=ViewType.ALL, max_results=_PAGE, page_token=token
            )
        )
    ]


def _lineage_runs(store: Any, experiment_ids: list[str]) -> Iterator[Any]:
    from mlflow.entities import ViewType

    for start in range(0, len(experiment_ids), 100):
        batch = experiment_ids[start : start + 100]
        yield from _pages(
            lambda token, batch=batch: store.search_runs(
                experiment_ids=batch,
                filter_string=f"tags.`{T.STATUS}` LIKE '%'",
                run_view_type=ViewType.ALL,
                max_results=_PAGE,
                page_token=token,
            )
        )


def reindex(
    *, tracking_uri: str | None = None, progress: Callable[[str], None] | None = None
) -> ReindexSummary:
    """Rebuild the lineage index from MLflow's runs, model versions and event tags.

    Args:
        tracking_uri: Where MLflow is (default: MLflow's tracking URI).
        progress: Called with a status line as each phase finishes.

    Returns:
        A :class:`ReindexSummary`.

    Example:
        >>> reindex(progress=print).runs
    """
    from lineage_plugin.store.index_updates import run_row

    say = progress or (lambda _message: None)
    started = time.perf_counter()
    ws = Workspace(tracking_uri)
    index = ws.require_index()

    runs = []
    for run in _lineage_runs(ws.tracking_store, _experiment_ids(ws.tracking_store)):
        runs.append((T.run_lineage_from_tags(run.info.run_id, run.data.tags), run_row(run.info)))
        if len(runs) % 10000 == 0:
            say(f"read {len(runs)} runs...")
    say(f"read {len(runs)} runs with lineage")

    versions, events, holdings = _registry(ws.registry_store)
    say(f"read {len(versions)} model versions and {len(events)} registry events")
    index.rebuild(runs=runs, model_versions=versions, events=events, holdings=holdings)
    summary = ReindexSummary(
        index_url=index.url,
        runs=len(runs),
        reads=sum(len(r.inputs) for r, _ in runs),
        model_versions=len(versions),
        events=len(events),
        holdings=len(holdings),
        seconds=round(time.perf_counter() - started, 3),
    )
    say(f"wrote the index at {index.url}")
    return summary


def _registry(store: Any) -> tuple[list[dict], list[RegistryEvent], list[dict]]:
    versions: list[dict[str, Any]] = []
    events: dict[str, RegistryEvent] = {}
    holdings: list[dict[str, Any]] = []
    aliases: dict[tuple[str, str], list[str]] = {}  # search_model_versions leaves them out
    registered = _pages(
        lambda token: store.search_registered_models(max_results=_PAGE, page_token=token)
    )
    for rm in registered:
        for alias, version in (rm.aliases or {}).items():
            aliases.setdefault((rm.name, str(version)), []).append(alias)
        tags = {k: v for k, v in (rm.tags or {}).items() if k.startswith(EVENT_PREFIX)}
        events.update((e.event_id, e) for e in events_from_tags(tags))
    model_versions = _pages(
        lambda token: store.search_model_versions(max_results=_PAGE, page_token=token)
    )
    for mv in model_versions:
        tags = dict(mv.tags or {})
        if T.is_prompt_version(tags):
            continue  # prompt versions are not models
        own = events_from_tags(tags)
        events.update((e.event_id, e) for e in own)
        versions.append(
            {
                "name": mv.name,
                "version": int(mv.version),
                "run_id": tags.get(T.RUN_ID) or mv.run_id,
                "created": mv.creation_timestamp,
                "status": tags.get(T.STATUS),
                "deleted": 0,
            }
        )
        held = aliases.get((mv.name, str(mv.version)), [])
        holdings.extend(_holdings(mv, held, own))
    return versions, sorted(events.values(), key=lambda e: e.event_id), holdings


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
