"""``reindex``: rebuild the lineage index from what MLflow holds (the system of record)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from lineage_plugin import tags as T
from lineage_plugin.events import RegistryEvent, collect_events, events_from_tags
from lineage_plugin.queries.workspace import Workspace


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
    for run in ws.lineage_runs():
        runs.append((T.run_lineage_from_tags(run.info.run_id, run.data.tags), run_row(run.info)))
        if len(runs) % 10000 == 0:
            say(f"read {len(runs)} runs...")
    say(f"read {len(runs)} runs with lineage")

    versions, events, holdings = _registry(ws)
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


def _registry(ws: Workspace) -> tuple[list[dict], list[RegistryEvent], list[dict]]:
    from lineage_plugin.store.index_updates import model_version_row

    registered = list(ws.registered_models())
    aliases: dict[tuple[str, str], list[str]] = {}  # search_model_versions leaves them out
    for rm in registered:
        for alias, version in (rm.aliases or {}).items():
            aliases.setdefault((rm.name, str(version)), []).append(alias)
    model_versions = list(ws.model_versions())
    holdings = [
        h
        for mv in model_versions
        for h in _holdings(
            mv, aliases.get((mv.name, str(mv.version)), []), events_from_tags(mv.tags or {})
        )
    ]
    events = collect_events([*registered, *model_versions])
    return [model_version_row(mv) for mv in model_versions], events, holdings


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
