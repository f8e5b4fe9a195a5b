"""MLflow's own SQL tables, read directly: what ``reindex`` needs, on SQL backends.

``search_runs`` builds a whole ``Run`` per run (every tag, param, metric and dataset input);
the lineage index needs five columns of a run and its ``lineage.*`` tags. :class:`MlflowTables`
selects just that with SQLAlchemy Core, read-only, a page of runs at a time (keyset
pagination on ``run_uuid``, so memory is bounded by a page), and keeps what the API path
(``queries.workspace.Workspace``) keeps:

- runs: active or deleted, in any experiment of the active workspace, with a non-null
  ``lineage.status`` tag (``search_runs`` with ``tags.`lineage.status` LIKE '%'``); the run
  name falls back on the ``mlflow.runName`` tag, as ``SqlRun.to_mlflow_entity`` does;
- registered models of the workspace, prompts excluded (``mlflow.prompt.is_prompt = 'true'``);
- model versions of the workspace that are not deleted (``Deleted_Internal``) and not prompts
  (``search_model_versions`` drops a name any version of which is a prompt, ``Workspace``
  every version with an ``mlflow.prompt.*`` tag).

SQL comparisons may be case-insensitive (MySQL, SQL Server collations): every key is checked
again, exactly, in Python. The tables and columns are MLflow 3.17's
(``mlflow/store/tracking/dbmodels/models.py``, ``mlflow/store/model_registry/dbmodels/
models.py``); ``store.mlflow_database.MlflowDatabase.check`` refuses a database that lacks
them.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from lineage_plugin import tags as T
from lineage_plugin.events import EVENT_PREFIX
from lineage_plugin.store.index import RunRow

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from lineage_plugin.records import RunLineage

#: The columns the reader selects, per MLflow table.
COLUMNS: dict[str, tuple[str, ...]] = {
    name: tuple(columns.split())
    for name, columns in {
        "experiments": "experiment_id workspace lifecycle_stage",
        "runs": "run_uuid experiment_id name user_id start_time end_time lifecycle_stage",
        "tags": "run_uuid key value",
        "registered_models": "workspace name",
        "registered_model_tags": "workspace name key value",
        "registered_model_aliases": "workspace name alias version",
        "model_versions": "workspace name version creation_time last_updated_time "
        "current_stage run_id",
        "model_version_tags": "workspace name version key value",
    }.items()
}
PAGE = 1000
IS_PROMPT = "mlflow.prompt.is_prompt"
RUN_NAME = "mlflow.runName"
DELETED_VERSION = "Deleted_Internal"
#: MLflow's lifecycle stage of a deleted run or experiment (``LifecycleStage.DELETED``).
DELETED = "deleted"
#: The model-version tags the index reads (model_version_row, events, prompt checks).
_VERSION_KEYS = (T.RUN_ID, T.STATUS)


@dataclass(frozen=True)
class ModelRecord:
    """A registered model as ``reindex`` reads it (the fields of MLflow's entity it uses)."""

    name: str
    tags: dict[str, str]
    aliases: dict[str, int]


@dataclass(frozen=True)
class VersionRecord:
    """A model version as ``reindex`` reads it; ``tags`` only the keys the index uses."""

    name: str
    version: int
    creation_timestamp: int | None
    last_updated_timestamp: int | None
    current_stage: str | None
    run_id: str | None
    tags: dict[str, str]


@functools.cache
def _tables() -> dict[str, Any]:
    from sqlalchemy import column, table

    return {name: table(name, *(column(c) for c in cols)) for name, cols in COLUMNS.items()}


class MlflowTables:
    """What ``reindex`` reads from MLflow's tables, through one connection.

    Args:
        conn: A connection to MLflow's database (only ``SELECT`` is run through it).
        workspace: The MLflow workspace to read.
        page: Runs per page.
    """

    def __init__(self, conn: Connection, *, workspace: str, page: int = PAGE) -> None:
        self.conn = conn
        self.workspace = workspace
        self.page = page

    def registered_models(self) -> list[ModelRecord]:
        """The workspace's registered models that are not prompts, by name."""
        from sqlalchemy import or_, select

        t = _tables()
        rm, tags = t["registered_models"], t["registered_model_tags"]
        aliases = t["registered_model_aliases"]
        model_tags: dict[str, dict[str, str]] = {}
        query = select(tags.c.name, tags.c.key, tags.c.value).where(
            tags.c.workspace == self.workspace,
            or_(
                tags.c.key.like(EVENT_PREFIX + "%"),
                tags.c.key.like(T.DELETED_PREFIX + "%"),
                tags.c.key == IS_PROMPT,
            ),
        )
        for name, key, value in self.conn.execute(query):
            if key.startswith((EVENT_PREFIX, T.DELETED_PREFIX)) or key == IS_PROMPT:
                model_tags.setdefault(name, {})[key] = value
        held: dict[str, dict[str, int]] = {}
        query = select(aliases.c.name, aliases.c.alias, aliases.c.version).where(
            aliases.c.workspace == self.workspace
        )
        for name, alias, version in self.conn.execute(query):
            held.setdefault(name, {})[alias] = version
        names = self.conn.execute(select(rm.c.name).where(rm.c.workspace == self.workspace))
        return [
            ModelRecord(name=n, tags=model_tags.get(n, {}), aliases=held.get(n, {}))
            for n in sorted(n for (n,) in names)
            if model_tags.get(n, {}).get(IS_PROMPT) != "true"
        ]

    def model_versions(self) -> list[VersionRecord]:
        """The workspace's model versions, not deleted nor prompts, in ``search_model_versions``
        order (last updated first, then name, then version descending)."""
        from sqlalchemy import or_, select

        t = _tables()
        mv, tags = t["model_versions"], t["model_version_tags"]
        prompt_prefix = IS_PROMPT.rsplit(".", 1)[0] + "."
        version_tags: dict[tuple[str, int], dict[str, str]] = {}
        prompt_names: set[str] = set()
        query = select(tags.c.name, tags.c.version, tags.c.key, tags.c.value).where(
            tags.c.workspace == self.workspace,
            or_(
                tags.c.key.like(EVENT_PREFIX + "%"),
                tags.c.key.like(prompt_prefix + "%"),
                tags.c.key.in_(_VERSION_KEYS),
            ),
        )
        for name, version, key, value in self.conn.execute(query):
            if key.startswith((EVENT_PREFIX, prompt_prefix)) or key in _VERSION_KEYS:
                version_tags.setdefault((name, version), {})[key] = value
                if key == IS_PROMPT and value == "true":
                    prompt_names.add(name)
        columns = ("name", "version", "creation_time", "last_updated_time", "current_stage")
        query = select(*(mv.c[c] for c in (*columns, "run_id"))).where(
            mv.c.workspace == self.workspace
        )
        found = [
            VersionRecord(
                name=name,
                version=version,
                creation_timestamp=created,
                last_updated_timestamp=updated,
                current_stage=stage,
                run_id=run_id,
                tags=version_tags.get((name, version), {}),
            )
            for name, version, created, updated, stage, run_id in self.conn.execute(query)
            if stage != DELETED_VERSION
            and name not in prompt_names
            and not T.is_prompt_version(version_tags.get((name, version), {}))
        ]
        found.sort(key=lambda v: (v.name, -v.version))
        found.sort(key=lambda v: -(v.last_updated_timestamp or 0))  # stable: the rest as above
        return found

    def lineage_run_count(self) -> int:
        """How many runs :meth:`lineage_runs` yields (one ``COUNT``, for progress)."""
        from sqlalchemy import func

        return int(self.conn.execute(self._lineage_runs_query(func.count())).scalar_one())

    def _lineage_runs_query(self, *columns: Any) -> Any:
        """``SELECT columns`` over the runs with lineage (see the module doc)."""
        from mlflow.entities import LifecycleStage, ViewType
        from sqlalchemy import exists, select

        t = _tables()
        runs, experiments, tags = t["runs"], t["experiments"], t["tags"]
        stages = LifecycleStage.view_type_to_stages(ViewType.ALL)
        status = tags.alias("status")
        return (
            select(*columns)
            .select_from(
                runs.join(experiments, experiments.c.experiment_id == runs.c.experiment_id)
            )
            .where(
                experiments.c.workspace == self.workspace,
                experiments.c.lifecycle_stage.in_(stages),
                runs.c.lifecycle_stage.in_(stages),
                exists().where(
                    status.c.run_uuid == runs.c.run_uuid,
                    status.c.key == T.STATUS,
                    status.c.value.like("%"),
                ),
            )
        )

    def lineage_runs(self) -> Iterator[tuple[RunLineage, RunRow]]:
        """Every run with lineage (see the module doc), a page at a time, by run id."""
        from sqlalchemy import bindparam, select

        t = _tables()
        runs, tags = t["runs"], t["tags"]
        experiments = t["experiments"]
        columns = [runs.c[c] for c in COLUMNS["runs"]]
        page_query = (
            self._lineage_runs_query(*columns, experiments.c.lifecycle_stage.label("exp_stage"))
            .where(runs.c.run_uuid > bindparam("after"))
            .order_by(runs.c.run_uuid)
            .limit(self.page)
        )
        # Runs of a page are consecutive ids: one range over the tags' run_uuid index.
        tags_query = select(tags.c.run_uuid, tags.c.key, tags.c.value).where(
            tags.c.run_uuid >= bindparam("first"),
            tags.c.run_uuid <= bindparam("last"),
            tags.c.key.like(T.PREFIX + "%"),
        )
        after = ""
        while True:
            page = self.conn.execute(page_query, {"after": after}).all()
            if not page:
                return
            after = page[-1][0]
            wanted = {row[0] for row in page}
            run_tags: dict[str, dict[str, str]] = {}
            bounds = {"first": page[0][0], "last": after}
            for run_id, key, value in self.conn.execute(tags_query, bounds).all():
                if run_id in wanted and key.startswith(T.PREFIX):
                    run_tags.setdefault(run_id, {})[key] = value
            names = self._run_names([row[0] for row in page if not row[2]])
            for run_id, *columns, exp_stage in page:
                found = run_tags.get(run_id, {})
                if found.get(T.STATUS) is None:
                    continue  # a case-insensitive match of another key
                row = _run_row(columns, names.get(run_id), exp_stage)
                yield T.run_lineage_from_tags(run_id, found), row
            if len(page) < self.page:
                return

    def _run_names(self, run_ids: list[str]) -> dict[str, str]:
        """The ``mlflow.runName`` tags of runs whose ``name`` column is empty."""
        from sqlalchemy import select

        tags = _tables()["tags"]
        names: dict[str, str] = {}
        for start in range(0, len(run_ids), 500):
            query = select(tags.c.run_uuid, tags.c.key, tags.c.value).where(
                tags.c.key == RUN_NAME, tags.c.run_uuid.in_(run_ids[start : start + 500])
            )
            names.update((r, v) for r, k, v in self.conn.execute(query) if k == RUN_NAME and v)
        return names


def lineage_run(conn: Connection, run_id: str) -> tuple[RunLineage, RunRow] | None:
    """One run's lineage record and index row, read from MLflow's tables: its five columns
    and its ``lineage.*`` tags (what ``SqlAlchemyStore.get_run`` would give the index, without
    the run's params, metrics and dataset inputs).

    Args:
        conn: A connection to MLflow's database.
        run_id: The run.

    Returns:
        ``(record, row)``; ``None`` when the run does not exist or has no ``lineage.status``.
    """
    from sqlalchemy import or_, select

    t = _tables()
    runs, tags = t["runs"], t["tags"]
    found = conn.execute(
        select(*(runs.c[c] for c in COLUMNS["runs"][1:])).where(runs.c.run_uuid == run_id)
    ).first()
    if found is None:
        return None
    query = select(tags.c.key, tags.c.value).where(
        tags.c.run_uuid == run_id, or_(tags.c.key.like(T.PREFIX + "%"), tags.c.key == RUN_NAME)
    )
    run_tags = {key: value for key, value in conn.execute(query)}
    lineage = {k: v for k, v in run_tags.items() if k.startswith(T.PREFIX)}
    if lineage.get(T.STATUS) is None:
        return None  # no lineage (yet): reindex leaves such runs out too
    return T.run_lineage_from_tags(run_id, lineage), _run_row(found, run_tags.get(RUN_NAME))


def _run_row(columns: Any, tag_name: str | None, experiment_stage: str | None = None) -> RunRow:
    """The index row of a run from its ``COLUMNS["runs"]`` after ``run_uuid``; the name falls
    back on its ``mlflow.runName`` tag, and it is deleted with its experiment."""
    experiment_id, name, user, start, end, stage = columns
    return RunRow(
        experiment_id=str(experiment_id),
        run_name=name or tag_name or name,
        start_time=start,
        end_time=end,
        user=user,
        deleted=DELETED in (stage, experiment_stage),
    )
