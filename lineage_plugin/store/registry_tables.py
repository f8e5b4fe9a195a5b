"""The registry as ``vacuum`` and ``check --all`` need it, read straight from MLflow's tables.

Which model versions are in use, and what they were trained on, comes from every model
version's stage, run, aliases and ``lineage.*`` tags. Through MLflow's API that means building
the registry store (an engine and a schema check) and a ``ModelVersion`` per version with every
tag; on a SQL backend, three ``SELECT`` statements give the same answer in a few milliseconds,
which matters for a command that otherwise costs about what deltalake's own VACUUM does.

The rules are the API path's (``queries.workspace.Workspace``): versions of the active
workspace, not deleted (``Deleted_Internal``), no prompt versions (a ``mlflow.prompt.*`` tag)
nor versions of a model that is a prompt (or has a version that is one). Event tags
(``lineage.event.*``) are left out: nothing here reads them. Keys are compared again in Python,
exactly (MySQL and SQL Server collations may compare case-insensitively).
"""

from __future__ import annotations

import functools
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from lineage_plugin import tags as T

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

DELETED_VERSION = "Deleted_Internal"
IS_PROMPT = "mlflow.prompt.is_prompt"


@dataclass(frozen=True)
class RegistryVersion:
    """A model version with what decides whether its data is in use.

    Attributes:
        name: Registered model name.
        version: Its version.
        current_stage: MLflow stage (``None`` when MLflow gives none).
        run_id: The run it was logged from.
        source: Its model source.
        tags: Its ``lineage.*`` tags, event tags excepted.
        aliases: The aliases it holds.
    """

    name: str
    version: str
    current_stage: str | None
    run_id: str | None
    source: str | None
    tags: dict[str, str]
    aliases: tuple[str, ...]


@functools.cache
def _tables() -> dict[str, Any]:
    from sqlalchemy import column, table

    columns = {
        "model_versions": "workspace name version current_stage run_id source",
        "model_version_tags": "workspace name version key value",
        "registered_model_tags": "workspace name key value",
        "registered_model_aliases": "workspace name alias version",
    }
    return {n: table(n, *(column(c) for c in cs.split())) for n, cs in columns.items()}


def wanted_tag(key: str) -> bool:
    """Whether a model-version tag is one :class:`RegistryVersion` keeps."""
    return (key.startswith(T.PREFIX) and not key.startswith(T.EVENT_PREFIX)) or key.startswith(
        T.PROMPT_TAG_PREFIX
    )


def registry_versions(conn: Connection, *, workspace: str) -> list[RegistryVersion]:
    """Every model version of ``workspace`` that is a model, not deleted, with its aliases.

    Args:
        conn: A connection to MLflow's database (only ``SELECT`` is run through it).
        workspace: The MLflow workspace to read.

    Returns:
        The versions, by name, newest version first.
    """
    from sqlalchemy import and_, not_, or_, select

    t = _tables()
    mv, vtags = t["model_versions"], t["model_version_tags"]
    mtags, aliases = t["registered_model_tags"], t["registered_model_aliases"]
    prompts = {
        name
        for name, key, value in conn.execute(
            select(mtags.c.name, mtags.c.key, mtags.c.value).where(
                mtags.c.workspace == workspace, mtags.c.key == IS_PROMPT
            )
        )
        if key == IS_PROMPT and value == "true"
    }
    tags: dict[tuple[str, str], dict[str, str]] = defaultdict(dict)
    query = select(vtags.c.name, vtags.c.version, vtags.c.key, vtags.c.value).where(
        vtags.c.workspace == workspace,
        or_(
            and_(vtags.c.key.like(T.PREFIX + "%"), not_(vtags.c.key.like(T.EVENT_PREFIX + "%"))),
            vtags.c.key.like(T.PROMPT_TAG_PREFIX + "%"),
        ),
    )
    for name, version, key, value in conn.execute(query):
        if wanted_tag(key):
            tags[(name, str(version))][key] = value
            if key == IS_PROMPT and value == "true":
                prompts.add(name)  # as search_model_versions drops the whole model
    held: dict[tuple[str, str], list[str]] = defaultdict(list)
    query = select(aliases.c.name, aliases.c.alias, aliases.c.version).where(
        aliases.c.workspace == workspace
    )
    for name, alias, version in conn.execute(query):
        held[(name, str(version))].append(alias)
    columns = (mv.c.name, mv.c.version, mv.c.current_stage, mv.c.run_id, mv.c.source)
    found = []
    for name, version, stage, run_id, source in conn.execute(
        select(*columns).where(mv.c.workspace == workspace)
    ):
        key = (name, str(version))
        if stage == DELETED_VERSION or name in prompts or T.is_prompt_version(tags[key]):
            continue
        found.append(
            RegistryVersion(
                name=name,
                version=str(version),
                current_stage=stage,
                run_id=run_id or None,
                source=source,
                tags=tags[key],
                aliases=tuple(sorted(held[key])),
            )
        )
    found.sort(key=lambda v: (v.name, -int(v.version)))
    return found


def from_api(
    model_versions: Iterable[Any], registered_models: Iterable[Any]
) -> list[RegistryVersion]:
    """The same, from MLflow's API: searched ``ModelVersion`` entities (prompts already left
    out) and the ``RegisteredModel`` entities that hold their aliases.

    Args:
        model_versions: From ``search_model_versions``.
        registered_models: From ``search_registered_models``.
    """
    held: dict[tuple[str, str], set[str]] = defaultdict(set)
    for model in registered_models:
        for alias, version in (getattr(model, "aliases", None) or {}).items():
            held[(model.name, str(version))].add(alias)
    found = [
        RegistryVersion(
            name=mv.name,
            version=str(mv.version),
            current_stage=mv.current_stage,
            run_id=mv.run_id or None,
            source=mv.source,
            tags={k: v for k, v in (mv.tags or {}).items() if wanted_tag(k)},
            aliases=tuple(sorted(held[(mv.name, str(mv.version))] | set(mv.aliases or ()))),
        )
        for mv in model_versions
    ]
    found.sort(key=lambda v: (v.name, -int(v.version)))
    return found
