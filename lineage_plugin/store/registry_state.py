"""The registry's state before a change, read through the store's API or inside MLflow's own
SQL transaction (see :mod:`lineage_plugin.store.recording`)."""

from __future__ import annotations

import collections
import functools
import json
from typing import TYPE_CHECKING, Any

from lineage_plugin import tags as T
from lineage_plugin.events import EVENT_PREFIX, Change, Registration, VersionState

if TYPE_CHECKING:
    from sqlalchemy.orm import Session


def _data_from_tags(tags: dict[str, str]) -> tuple[str | None, tuple]:
    manifest = T.join_value(tags, T.MANIFEST)
    tables: tuple = ()
    if manifest:
        from lineage_plugin.records import RunLineage

        tables = RunLineage.from_dict(json.loads(manifest)).inputs
    return tags.get(T.RUN_ID), tables


class ApiState:
    """The state of a registered model, read through the store's public methods."""

    def __init__(self, store: Any, name: str) -> None:
        self.store = store
        self.name = name
        self._versions: dict[str, Any] = {}

    def _mv(self, version: str) -> Any:
        if version not in self._versions:
            self._versions[version] = self.store.get_model_version(self.name, version)
        return self._versions[version]

    def version(self, version: str) -> VersionState:
        mv = self._mv(version)
        run_id, tables = _data_from_tags(dict(mv.tags or {}))
        aliases = tuple(sorted(mv.aliases or ()))
        return VersionState(version=str(version), aliases=aliases, run_id=run_id, tables=tables)

    def stage_of(self, version: str) -> str:
        return self._mv(version).current_stage

    def registration(self, version: str) -> Registration:
        mv = self._mv(version)
        return Registration(
            created=mv.creation_timestamp,
            source=mv.source,
            run_id=mv.run_id,
            stage=mv.current_stage,
            tags=_lineage_tags(mv.tags or {}),
        )

    def alias_holder(self, alias: str) -> str | None:
        from mlflow.exceptions import MlflowException

        try:
            return str(self.store.get_model_version_by_alias(self.name, alias).version)
        except MlflowException:
            return None

    def versions_in_stage(self, stage: str) -> list[str]:
        escaped = self.name.replace("'", "''")
        found: list[str] = []
        token = None
        while True:
            page = self.store.search_model_versions(
                f"name='{escaped}'", max_results=1000, page_token=token
            )
            found.extend(str(mv.version) for mv in page if mv.current_stage == stage)
            token = page.token
            if not token:
                return found


def _lineage_tags(tags: dict[str, str] | Any) -> dict[str, str]:
    return {k: v for k, v in dict(tags).items() if k.startswith(T.PREFIX)}


class _RegistrationCache(collections.OrderedDict):
    """The run and tables of recently registered or changed versions (bounded, per store).

    A version's lineage tags are written once, when it is registered, so a store that saw the
    registration (or read the tags once) need not read them again for every event.
    """

    limit = 10_000

    def put(self, key: tuple[str, str], value: tuple[str | None, tuple]) -> None:
        self[key] = value
        if len(self) > self.limit:
            self.popitem(last=False)


def registration_cache(store: Any) -> _RegistrationCache:
    """The store's cache of version lineage, keyed by ``(name, version)``."""
    cache = store.__dict__.get("_lineage_registrations")
    if cache is None:
        cache = store.__dict__["_lineage_registrations"] = _RegistrationCache()
    return cache


def remember_registration(store: Any, mv: Any) -> None:
    """Cache the lineage a new model version was registered with."""
    registration_cache(store).put((mv.name, str(mv.version)), _data_from_tags(dict(mv.tags or {})))


def forget_registration(store: Any, name: str, version: str) -> None:
    """Drop a version from the cache (its tags changed or it was deleted)."""
    registration_cache(store).pop((name, str(version)), None)


def forget_model(store: Any, name: str) -> None:
    """Drop every version of a model from the cache (renamed or deleted)."""
    cache = registration_cache(store)
    for key in [k for k in cache if k[0] == name]:
        cache.pop(key, None)


class MissingVersion(Exception):
    """The model version does not exist (MLflow raises its own error for it next)."""


@functools.cache
def _statements() -> dict[str, Any]:
    """Statements on MLflow's registry tables (MLflow's own table definitions, so names are
    quoted right for every database), built once with bound parameters named like the
    columns: ``workspace``, ``name``, ``version``, ``key``, ``value``."""
    from mlflow.store.model_registry.dbmodels import models as m
    from sqlalchemy import bindparam, or_, select

    versions = m.SqlModelVersion.__table__
    tags = m.SqlModelVersionTag.__table__
    aliases = m.SqlRegisteredModelAlias.__table__

    def of_model(table: Any) -> Any:
        return (table.c.workspace == bindparam("workspace")) & (table.c.name == bindparam("name"))

    def of_version(table: Any) -> Any:
        return of_model(table) & (table.c.version == bindparam("version"))

    return {
        "aliases": select(aliases.c.alias, aliases.c.version).where(of_model(aliases)),
        "data": select(tags.c.key, tags.c.value).where(
            of_version(tags),
            or_(tags.c.key == bindparam("run_key"), tags.c.key.like(bindparam("manifest"))),
        ),
        "stage": select(versions.c.current_stage).where(of_version(versions)),
        "registration": select(
            versions.c.creation_time, versions.c.source, versions.c.run_id, versions.c.current_stage
        ).where(of_version(versions)),
        "lineage_tags": select(tags.c.key, tags.c.value).where(
            of_version(tags), tags.c.key.like(bindparam("prefix"))
        ),
        "in_stage": select(versions.c.version).where(
            of_model(versions), versions.c.current_stage == bindparam("stage")
        ),
        "delete_tag": tags.delete().where(of_version(tags), tags.c.key == bindparam("key")),
        "insert_tag": tags.insert(),
        "insert_model_tag": m.SqlRegisteredModelTag.__table__.insert(),
    }


class SqlState:
    """The state of a registered model, read with a few plain statements inside MLflow's own
    transaction. :meth:`write` writes the change's tags there too, as MLflow's
    ``set_model_version_tag`` would, so the event commits together with the change."""

    def __init__(self, store: Any, session: Session, name: str) -> None:
        self.store = store
        self.conn = session.connection()
        self.sql = _statements()
        self.key = {"workspace": store._get_active_workspace(), "name": name}
        self._aliases: dict[str, str] | None = None

    def _alias_map(self) -> dict[str, str]:
        if self._aliases is None:
            rows = self.conn.execute(self.sql["aliases"], self.key)
            self._aliases = {alias: str(version) for alias, version in rows}
        return self._aliases

    def _data(self, version: str) -> tuple[str | None, tuple]:
        cache = registration_cache(self.store)
        key = (self.key["name"], version)
        if key not in cache:
            params = {**self.key, "version": int(version), "run_key": T.RUN_ID}
            params["manifest"] = T.MANIFEST + "%"
            rows = self.conn.execute(self.sql["data"], params)
            cache.put(key, _data_from_tags(dict(rows.all())))
        return cache[key]

    def version(self, version: str) -> VersionState:
        aliases = tuple(sorted(a for a, v in self._alias_map().items() if v == version))
        run_id, tables = self._data(version)
        return VersionState(version=version, aliases=aliases, run_id=run_id, tables=tables)

    def stage_of(self, version: str) -> str:
        params = {**self.key, "version": int(version)}
        stage = self.conn.execute(self.sql["stage"], params).scalar()
        if stage is None:
            raise MissingVersion(version)
        return stage

    def alias_holder(self, alias: str) -> str | None:
        return self._alias_map().get(alias)

    def registration(self, version: str) -> Registration:
        params = {**self.key, "version": int(version)}
        row = self.conn.execute(self.sql["registration"], params).first()
        if row is None:
            raise MissingVersion(version)
        found = self.conn.execute(
            self.sql["lineage_tags"], {**params, "prefix": T.PREFIX + "%"}
        ).all()
        return Registration(
            created=row[0], source=row[1], run_id=row[2], stage=row[3], tags=_lineage_tags(found)
        )

    def versions_in_stage(self, stage: str) -> list[str]:
        rows = self.conn.execute(self.sql["in_stage"], {**self.key, "stage": stage})
        return [str(v) for v in rows.scalars()]

    def write(self, change: Change) -> None:
        """Replace the holding tags and add the event tags, in MLflow's transaction."""
        rows, replaced = [], []
        for version, values in change.version_tags.items():
            at = {**self.key, "version": int(version)}
            replaced += [{**at, "key": k} for k in values if not k.startswith(EVENT_PREFIX)]
            rows += [{**at, "key": k, "value": x} for k, x in values.items() if x is not None]
        if replaced:
            self.conn.execute(self.sql["delete_tag"], replaced)
        if rows:
            self.conn.execute(self.sql["insert_tag"], rows)
        if change.model_tags:
            self.conn.execute(
                self.sql["insert_model_tag"],
                [{**self.key, "key": k, "value": x} for k, x in change.model_tags.items()],
            )
