"""Which table versions the registry still needs: the data of model versions in use.

A model version *guards* the table versions it was trained on when it holds an alias or the
Staging or Production stage, when it is one of the ``keep_newest`` newest versions of its model,
or when it carries the tag ``lineage.protect=true``. With pipeline provenance, it guards the
versions upstream of those too (what the runs that wrote its inputs read, and so on: the graph
in the lineage index).

The registry is read from MLflow itself (the system of record), not from the index, so a
registry change made by a client without the plugin still counts.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from lineage_plugin import tags as T
from lineage_plugin.errors import LineageError
from lineage_plugin.queries.workspace import Workspace
from lineage_plugin.records import DeltaInput
from lineage_plugin.store.registry_tables import RegistryVersion

#: The stages that mean "in use" (Archived and None do not).
IN_USE_STAGES = ("Production", "Staging")
#: How many of each model's newest versions ``vacuum`` keeps the data of by default.
KEEP_NEWEST = 3


@dataclass(frozen=True, kw_only=True)
class Guard:
    """A model version whose training data must stay readable, and why.

    Attributes:
        name: Registered model name.
        version: Its version.
        run_id: Its training run (``None``: none recorded).
        why: ``alias champion``, ``stage Production``, ``newest 3``, ``tag lineage.protect``.
        inputs: The table versions it read (from its lineage record).
        unknown: Why its record could not be read (then ``inputs`` is empty).
    """

    name: str
    version: str
    run_id: str | None
    why: tuple[str, ...]
    inputs: tuple[DeltaInput, ...] = ()
    unknown: str | None = None

    @property
    def label(self) -> str:
        """``name vN``."""
        return f"{self.name} v{self.version}"

    def to_dict(self) -> dict[str, Any]:
        """As JSON."""
        return {"name": self.name, "version": self.version, "why": list(self.why)}


@dataclass
class Protection:
    """The protected versions of one table.

    Attributes:
        uri: The table's normalised URI.
        versions: Version -> the guards that need it, each with ``via`` (the table version
            of theirs it is upstream of; ``None`` when they read it themselves).
        unknown: Guards whose lineage record could not be read: they may need any version.
    """

    uri: str
    versions: dict[int, list[tuple[Guard, dict[str, Any] | None]]] = field(default_factory=dict)
    unknown: list[Guard] = field(default_factory=list)

    def add(self, version: int, guard: Guard, via: dict[str, Any] | None = None) -> None:
        """Record that ``guard`` needs ``version`` (once per guard)."""
        entries = self.versions.setdefault(version, [])
        if all(g is not guard for g, _ in entries):
            entries.append((guard, via))

    def kept(self, version: int) -> list[dict[str, Any]]:
        """The guards of ``version`` as JSON."""
        return [
            {**g.to_dict(), **({"via": via} if via else {})} for g, via in self.versions[version]
        ]


def guards(ws: Workspace, *, keep_newest: int = KEEP_NEWEST) -> list[Guard]:
    """Every model version whose data must stay readable, by name, newest version first.

    Args:
        ws: Where MLflow is.
        keep_newest: How many of each model's newest versions count (0: none).

    Raises:
        LineageError: ``keep_newest`` is negative.
    """
    if keep_newest < 0:
        raise LineageError(f"--keep-newest must be 0 or more, not {keep_newest}.")
    found: list[Guard] = []
    previous, rank = None, 0
    for mv in registry_versions(ws):  # by name, newest first: rank counts from the newest
        rank = rank + 1 if mv.name == previous else 0
        previous = mv.name
        why = _reasons(mv, newest=rank < keep_newest, keep_newest=keep_newest)
        if why:
            found.append(_guard(ws, mv, why))
    return found


def registry_versions(ws: Workspace, *, direct: bool = True) -> list[RegistryVersion]:
    """Every model version with its aliases and ``lineage.*`` tags, by name, newest first.

    On a SQL backend (``direct``) they are read straight from MLflow's tables, which costs a
    few milliseconds where building MLflow's registry store costs a tenth of a second; a
    database that cannot be read so (not MLflow's schema, no workspace set) is read through
    MLflow's API, as every other backend is.

    Args:
        ws: Where MLflow is.
        direct: Read MLflow's tables when the backend is SQL.
    """
    from lineage_plugin.store import registry_tables
    from lineage_plugin.store.mlflow_database import (
        MlflowDatabase,
        MlflowDatabaseError,
        active_workspace,
        sql_backend_url,
    )

    url = sql_backend_url(ws.tracking_uri) if direct else None
    if url is not None:
        from sqlalchemy.exc import SQLAlchemyError

        try:
            with MlflowDatabase(url).connect() as conn:
                return registry_tables.registry_versions(conn, workspace=active_workspace())
        except (MlflowDatabaseError, SQLAlchemyError):
            pass  # MLflow's API says what is wrong, if anything is
    return registry_tables.from_api(ws.model_versions(), ws.registered_models())


def _reasons(mv: RegistryVersion, *, newest: bool, keep_newest: int) -> tuple[str, ...]:
    why = [f"alias {a}" for a in mv.aliases]
    if mv.current_stage in IN_USE_STAGES:
        why.append(f"stage {mv.current_stage}")
    if newest:
        why.append(f"newest {keep_newest}")
    if str(mv.tags.get(T.PROTECT, "")).strip().lower() == "true":
        why.append(f"tag {T.PROTECT}")
    return tuple(why)


def _guard(ws: Workspace, mv: RegistryVersion, why: tuple[str, ...]) -> Guard:
    """The guard of ``mv``: its inputs from its own record, else from its run's."""
    base = {"name": mv.name, "version": str(mv.version), "run_id": mv.run_id or None, "why": why}
    try:
        lineage = T.model_version_lineage(mv)
        if lineage.run is not None:
            return Guard(**base, inputs=lineage.run.inputs)
    except (ValueError, TypeError, KeyError, json.JSONDecodeError) as exc:
        problem = f"its lineage manifest cannot be read ({type(exc).__name__})"
    else:
        problem = "it has no lineage record"
    run = ws.run(mv.run_id) if mv.run_id else None
    if run is not None:
        try:
            record = T.run_lineage_from_tags(mv.run_id, run.data.tags)
        except (ValueError, TypeError, KeyError, json.JSONDecodeError) as exc:
            problem += f", nor its run's ({type(exc).__name__})"
        else:
            return Guard(**base, inputs=record.inputs)
    return Guard(**base, unknown=problem)


def needed_versions(inp: DeltaInput) -> range:
    """The versions a read needs: its version, or a change-data read's whole range."""
    start = inp.change_data_from if inp.change_data_from is not None else inp.version
    return range(min(start, inp.version), inp.version + 1)


def protection(
    ws: Workspace, uri: str, table_id: str | None, all_guards: Iterable[Guard]
) -> Protection:
    """The versions of one table the guards need.

    Args:
        ws: Where MLflow and the lineage index are.
        uri: The table's normalised URI.
        table_id: Its Delta table id now (a read recorded under another path with this id is
            the same table; a read with another id is of a table that was re-created).
        all_guards: From :func:`guards`.

    Raises:
        IndexUnavailableError: The lineage index (for the upstream graph) cannot be opened.
    """
    result = Protection(uri=uri)
    with_runs: dict[str, list[Guard]] = defaultdict(list)
    for guard in all_guards:
        if guard.unknown:
            result.unknown.append(guard)
            continue
        for inp in guard.inputs:
            same = (
                inp.uri == uri
                if inp.table_id is None or table_id is None
                else (inp.table_id == table_id)
            )
            if same:
                for version in needed_versions(inp):
                    result.add(version, guard)
        if guard.run_id:
            with_runs[guard.run_id].append(guard)
    for node_uri, version, guard, via in _upstream(ws, with_runs):
        if node_uri == uri:
            result.add(version, guard, via)
    return result


def protections(ws: Workspace, all_guards: Iterable[Guard]) -> dict[str, Protection]:
    """The protected versions of every table the guards need, by the URI they were read at.

    Args:
        ws: Where MLflow and the lineage index are.
        all_guards: From :func:`guards`.

    Raises:
        IndexUnavailableError: The lineage index (for the upstream graph) cannot be opened.
    """
    found: dict[str, Protection] = {}
    with_runs: dict[str, list[Guard]] = defaultdict(list)
    for guard in all_guards:
        for inp in guard.inputs:
            for version in needed_versions(inp):
                found.setdefault(inp.uri, Protection(uri=inp.uri)).add(version, guard)
        if guard.run_id and not guard.unknown:
            with_runs[guard.run_id].append(guard)
    for uri, version, guard, via in _upstream(ws, with_runs):
        found.setdefault(uri, Protection(uri=uri)).add(version, guard, via)
    return dict(sorted(found.items()))


def _upstream(
    ws: Workspace, with_runs: dict[str, list[Guard]]
) -> Iterator[tuple[str, int, Guard, dict[str, Any]]]:
    """Each table version upstream of the guards' runs (one walk per run), with its guard and
    ``via`` (the guard's own input it is upstream of)."""
    from lineage_plugin.queries.graph import Walk, upstream

    if not with_runs:
        return
    with ws.require_index().begin() as conn:
        for run_id, run_guards in with_runs.items():
            walk = Walk()
            walk.add_run(run_id, None, 1)
            upstream(conn, walk, {run_id})
            for node, depth in walk.table_depth.items():
                if depth < 2:
                    continue
                path = walk.table_path(node)
                via = next((hop for hop in path[1:] if hop["kind"] == "table_version"), path[0])
                for guard in run_guards:
                    yield node[0], node[1], guard, via
