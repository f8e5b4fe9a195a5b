"""Attach a source run's lineage to a new model version, in the ``create_model_version`` call."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping
from typing import Any

from lineage_plugin import settings
from lineage_plugin import tags as T
from lineage_plugin.errors import CaptureError
from lineage_plugin.store.request_context import in_server_request

_logger = logging.getLogger(__name__)

_LOGGED_MODEL_SOURCE = re.compile(r"^models:/(m-[0-9a-zA-Z]+)/?$")
#: copy_model_version's source: ``models:/<name>/<version>``.
_COPY_SOURCE = re.compile(r"^models:/[^/]+/\d+$")


def _tags_as_dict(tags: Iterable[Any] | Mapping[str, str] | None) -> dict[str, str]:
    if tags is None:
        return {}
    if isinstance(tags, Mapping):
        return {str(k): str(v) for k, v in tags.items()}
    return {t.key: t.value for t in tags}


def _source_run_id(
    store: Any, source: str | None, run_id: str | None, model_id: str | None
) -> str | None:
    if run_id:
        return run_id
    match = _LOGGED_MODEL_SOURCE.match(source or "")
    model_id = model_id or (match.group(1) if match else None)
    if not model_id:
        return None
    return store.get_logged_model(model_id).source_run_id


def lineage_tags_for_run(tracking_uri: str, run_id: str | None) -> dict[str, str]:
    """The model-version tags that carry the lineage of ``run_id``.

    Args:
        tracking_uri: Where the run lives.
        run_id: The source run (``None`` when the model version has none).

    Returns:
        ``lineage.*`` tags: the run's own, plus ``lineage.run_id``, ``lineage.status`` and the
        full ``lineage.manifest``; or ``lineage.status=missing`` when the run recorded nothing.
    """
    if not run_id:
        return {T.STATUS: T.MISSING, T.REASON: "The model version has no source run."}
    from mlflow.tracking._tracking_service.utils import _get_store

    run_tags = _get_store(tracking_uri).get_run(run_id).data.tags
    record = T.run_lineage_from_tags(run_id, run_tags)
    if not record.inputs:
        return {
            T.STATUS: T.MISSING,
            T.RUN_ID: run_id,
            T.REASON: "The source run recorded no Delta inputs.",
        }
    out = {k: v for k, v in run_tags.items() if k.startswith(T.PREFIX)}
    out.update({T.RUN_ID: run_id, T.STATUS: record.status})
    out.update(
        T.split_value(T.MANIFEST, T.manifest_json(record), T.model_version_tag_value_limit())
    )
    return out


def tags_for_new_model_version(
    *,
    tracking_uri: str,
    source: str | None,
    run_id: str | None,
    model_id: str | None,
    tags: Iterable[Any] | Mapping[str, str] | None,
) -> list[Any]:
    """Return ``tags`` plus the lineage of the model version's source run.

    Prompt versions (which MLflow also creates with ``create_model_version``) are left alone,
    and so are versions whose tags already carry the lineage of the same run (a ``lineage+``
    client talking to a ``lineage+`` server, or ``copy_model_version``).

    Args:
        tracking_uri: Where the source run lives.
        source: The model version's source URI (``runs:/...``, ``models:/m-...``...).
        run_id: The source run, when the caller gave one.
        model_id: The logged model, when the caller gave one.
        tags: The tags the caller passed.

    Returns:
        A list of ``ModelVersionTag``.

    Raises:
        CaptureError: The lineage could not be read and ``MLFLOW_LINEAGE_STRICT`` is on.
    """
    from mlflow.entities.model_registry import ModelVersionTag

    given = _tags_as_dict(tags)
    if T.is_prompt_version(given):
        return [ModelVersionTag(k, v) for k, v in given.items()]
    copy = bool(_COPY_SOURCE.match(source or ""))
    if copy:
        # copy_model_version passes the source version's tags: its lineage is the copy's, its
        # registry history (events, what it holds) is not.
        given = {k: v for k, v in given.items() if not _is_history(k)}
    from mlflow.tracking._tracking_service.utils import _get_store

    try:
        resolved_run = _source_run_id(_get_store(tracking_uri), source, run_id, model_id)
        if T.MANIFEST in given and given.get(T.RUN_ID) == resolved_run:
            # Registered by a lineage+ client, or a copy: the lineage is there already.
            return [ModelVersionTag(k, v) for k, v in given.items()]
        lineage = lineage_tags_for_run(tracking_uri, resolved_run)
    except Exception as exc:  # never break a registration for lineage
        if settings.strict():
            raise CaptureError(f"Could not attach lineage to the new model version: {exc}") from exc
        _logger.warning("Could not attach lineage to the new model version: %s", exc)
        lineage = {T.STATUS: T.INCOMPLETE, T.REASON: f"Could not read the source run: {exc}"}
    if not copy and not in_server_request():  # a plugin client's own tags reach the server
        _warn_reserved(given)
    merged = {**lineage, **given}  # the caller's own tags win, lineage.* ones too
    return [ModelVersionTag(k, v) for k, v in merged.items()]


def _is_history(key: str) -> bool:
    return key.startswith(T.EVENT_PREFIX) or key in (T.ALIASES_TAG, T.STAGE_TAG)


def _warn_reserved(given: Mapping[str, str]) -> None:
    reserved = sorted(k for k in given if T.is_reserved(k))
    if reserved:
        warn_reserved(reserved)


def warn_reserved(keys: list[str]) -> None:
    """Warn that a caller set tags the plugin writes (the caller's values are kept)."""
    import warnings

    from lineage_plugin.errors import LineageWarning

    warnings.warn(
        f"mlflow-delta-lineage: {', '.join(keys)} {'is a key' if len(keys) == 1 else 'are keys'} "
        "the plugin writes (see 'Reserved tag keys' in the README). Your value is kept, and "
        "the plugin's queries read it as lineage; pick a key outside the reserved ones to "
        "keep your own data apart.",
        LineageWarning,
        stacklevel=4,
    )
