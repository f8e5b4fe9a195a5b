"""``show MODEL VERSION [--at TIME]``: the data, environment and code behind a model version."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from lineage_plugin.deleted import DeletedVersion, deleted_versions
from lineage_plugin.errors import LineageError
from lineage_plugin.events import events_from_tags
from lineage_plugin.queries.history import canonical_stage, model_events, replay, version_at
from lineage_plugin.queries.times import json_output
from lineage_plugin.queries.workspace import UnknownModelError, Workspace
from lineage_plugin.records import ModelVersionLineage, drop_nulls


@dataclass(frozen=True, kw_only=True)
class ModelVersionReport:
    """Everything ``show`` prints about one model version.

    Attributes:
        lineage: The lineage attached to the version (tables, environment, code, run), with
            the training run's outputs as the run holds them now.
        reference: What the user asked for (``3``, ``@champion``, ``Production``).
        at: The time the reference was resolved at (``--at``), if any.
        created: Registration time (epoch ms).
        stage: The stage held now.
        aliases: The aliases held now.
        held_at: Stage and aliases held at ``at``, when asked.
        reproduces: The version this one is a verified or failed reproduction of, with the
            verification (``reproduce --register``), when it is one.
        history: The version's events (stage transitions, alias changes), oldest first, each
            with ``role``: ``subject`` (the version changed) or ``replaced`` (another version
            took its alias or stage).
        deleted_at: When the version was deleted (epoch ms), for a deleted version: its record
            comes from what the deletion left on the registered model.
    """

    lineage: ModelVersionLineage
    reference: str
    at: int | None = None
    created: int | None = None
    stage: str | None = None
    aliases: tuple[str, ...] = ()
    held_at: dict[str, Any] | None = None
    history: tuple[dict[str, Any], ...] = field(default_factory=tuple)
    reproduces: dict[str, Any] | None = None
    deleted_at: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """The documented JSON of ``show --json`` (times as ISO strings with ``*_ms``)."""
        data = self.lineage.to_dict()
        data.update(
            {
                "reference": self.reference,
                "at": self.at,
                "created": self.created,
                "stage": self.stage,
                "aliases": list(self.aliases),
                "held_at": self.held_at,
                "history": list(self.history),
                "reproduces": self.reproduces,
                "deleted_at": self.deleted_at,
            }
        )
        return json_output(drop_nulls(data))


def resolve(ws: Workspace, name: str, reference: str, at: int | None = None) -> str:
    """Turn a version number, ``@alias``, alias or stage name into a version number.

    Raises:
        LineageError: The alias or stage is not held (now, or at ``at``).
    """
    from mlflow.exceptions import MlflowException

    if reference.isdigit():
        return reference
    if at is not None:
        return version_at(ws, name, reference, at)
    ws.registered_model(name)
    stage = canonical_stage(reference)
    if stage:
        latest = ws.registry_store.get_latest_versions(name, [stage])
        if not latest:
            raise LineageError(f"No version of model '{name}' is in stage '{stage}' now.")
        return str(latest[0].version)
    alias = reference.lstrip("@")
    try:
        return str(ws.registry_store.get_model_version_by_alias(name, alias).version)
    except MlflowException:
        raise LineageError(
            f"Model '{name}' has no alias '{alias}' now. Give a version number, an alias "
            "or a stage (Production, Staging); add --at TIME for the past."
        ) from None


def show(
    name: str, version: str | int, *, at: int | None = None, tracking_uri: str | None = None
) -> ModelVersionReport:
    """The lineage of a model version, with what it holds and its history.

    Args:
        name: Registered model name.
        version: A version number, ``@alias``, alias or stage name.
        at: Epoch ms: resolve an alias or stage as it was then, and report what the version
            held then.
        tracking_uri: Where the registry is (default: MLflow's tracking URI).

    Returns:
        A :class:`ModelVersionReport`.

    Raises:
        LineageError: Unknown model, version, alias or stage (subclasses say which).

    Example:
        >>> show("diabetes", "Production", at=parse_time("2026-11-17")).lineage.inputs
    """
    from lineage_plugin import tags as T

    ws = Workspace(tracking_uri)
    number = resolve(ws, name, str(version), at)
    try:
        mv = ws.model_version(name, number)
        deleted = None
        own = events_from_tags(dict(mv.tags), name=name)
    except UnknownModelError:
        deleted = deleted_versions(ws.registered_model(name).tags or {}).get(number)
        if deleted is None:
            raise
        mv = _as_model_version(deleted, name)
        own = [e for e in model_events(ws, name) if e.version == number]
    history = [{**e.to_dict(), "role": "subject"} for e in own]
    # What this version lost: events of other versions that replaced it (from the index).
    history += [
        {**e.to_dict(), "role": "replaced"}
        for e in model_events(ws, name)
        if number in e.replaced and e.version != number
    ]
    history.sort(key=lambda e: e["event_id"])
    held_at = None
    if at is not None:
        stage, aliases = replay(model_events(ws, name, until=at)).of(number)
        held_at = {"stage": stage, "aliases": aliases}
    run_id = dict(mv.tags).get(T.RUN_ID) or getattr(mv, "run_id", None)
    return ModelVersionReport(
        lineage=_with_run_outputs(ws, T.model_version_lineage(mv), run_id),
        reference=str(version),
        at=at,
        created=mv.creation_timestamp,
        stage=mv.current_stage,
        aliases=tuple(sorted(mv.aliases or ())),
        held_at=held_at,
        history=tuple(history),
        reproduces=_reproduces(dict(mv.tags)),
        deleted_at=deleted.deleted if deleted else None,
    )


def _with_run_outputs(
    ws: Workspace, lineage: ModelVersionLineage, run_id: str | None
) -> ModelVersionLineage:
    """The version's lineage with the table versions its run wrote, read from the run.

    The record attached at registration holds what the run had written by then; a run often
    writes after (predictions, scores), and the run's own tags hold every write. A version
    attached without a record (its run read no Delta table) gets the run's record when the run
    wrote one. When the run is gone, the attached record is all there is.
    """
    from lineage_plugin import tags as T

    run = ws.run(run_id) if run_id else None
    if run is None:
        return lineage
    outputs = T.outputs_from_tags(run.data.tags)
    if lineage.run is None:
        if not outputs:
            return lineage
        return replace(lineage, run=T.run_lineage_from_tags(run_id, run.data.tags))
    if outputs == lineage.run.outputs:
        return lineage
    return replace(lineage, run=replace(lineage.run, outputs=outputs))


def _as_model_version(record: DeletedVersion, name: str) -> Any:
    """A deleted version's record, shaped like the ``ModelVersion`` it was."""
    from types import SimpleNamespace

    return SimpleNamespace(
        name=name,
        version=record.version,
        source=record.source,
        tags=record.tag_view(),
        creation_timestamp=record.created,
        current_stage=None,
        aliases=(),
    )


def _reproduces(tags: dict[str, str]) -> dict[str, Any] | None:
    import json

    from lineage_plugin import tags as T

    if T.REPRODUCES_VERSION not in tags:
        return None
    verification = tags.get(T.VERIFICATION)
    return {
        "version": tags[T.REPRODUCES_VERSION],
        "verification": json.loads(verification) if verification else None,
    }
