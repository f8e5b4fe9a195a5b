"""How lineage is written into MLflow tags, and read back.

Runs and model versions carry readable ``lineage.*`` tags (the stock MLflow UI shows them):

- ``lineage.status`` (``complete`` / ``incomplete`` / ``missing``) and ``lineage.reason``;
- ``lineage.tables``: a one-line summary such as ``sales@v3, customers@v0``;
- ``lineage.input.000``, ``lineage.input.001`` ...: one compact JSON record per Delta input;
- ``lineage.written``: a one-line summary of the table versions the run wrote;
- ``lineage.output.000``, ``lineage.output.001`` ...: one compact JSON record per Delta commit
  the run made;
- ``lineage.env.python``, ``lineage.env.platform``, ``lineage.env.pkg.<distribution>``;
- ``lineage.code.argv`` (JSON), ``lineage.code.cwd``, ``lineage.code.git_commit``,
  ``lineage.code.git_dirty``, and, when git does not pin the code, ``lineage.code.files``
  (JSON ``{"train.py": "<sha256>", "features.py": ...}``, paths relative to the script's folder);
- on model versions also ``lineage.run_id`` and ``lineage.manifest`` (the full JSON record);
- ``lineage.openlineage`` on a run whose OpenLineage events could not be sent (why).

A value longer than MLflow's limit (read from MLflow at run time) is never cut: it is split
over ``<key>``, ``<key>.part1`` ... with the count in ``<key>.parts``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

from lineage_plugin.errors import DamagedRecordError
from lineage_plugin.records import (
    SCHEMA_VERSION,
    CodeVersion,
    DeltaInput,
    DeltaOutput,
    Environment,
    ModelVersionLineage,
    RunLineage,
    to_json,
)

PREFIX = "lineage."
STATUS = "lineage.status"
REASON = "lineage.reason"
TABLES = "lineage.tables"
SCHEMA = "lineage.schema_version"
RUN_ID = "lineage.run_id"
MANIFEST = "lineage.manifest"
INPUT_PREFIX = "lineage.input."
OUTPUT_PREFIX = "lineage.output."
WRITTEN = "lineage.written"
ENV_PREFIX = "lineage.env."
PKG_PREFIX = "lineage.env.pkg."
CODE_PREFIX = "lineage.code."
CODE_FILES = "lineage.code.files"
#: On a model version registered by ``reproduce``: the version it reproduces, and the result.
REPRODUCES_VERSION = "lineage.reproduces"
VERIFICATION = "lineage.verification"
#: On a run whose OpenLineage events could not be sent: ``failed: <event>: <reason>``.
OPENLINEAGE = "lineage.openlineage"
#: Set by users on a model version (``true``) so that ``vacuum`` keeps the data it read.
PROTECT = "lineage.protect"

#: Written by the plugin on model versions to hold the registry's history (see events.py and
#: deleted.py): the events, what a version holds now, and the records of deleted versions.
EVENT_PREFIX = "lineage.event."
ALIASES_TAG = "lineage.aliases"
STAGE_TAG = "lineage.stage"
DELETED_PREFIX = "lineage.deleted."
#: On a registered model, while a client that records its own events makes a registry call:
#: the planned change (its events, with their ids), removed once the events are written.
INTENT_PREFIX = "lineage.intent."

#: Keys the plugin writes (exactly, or as a prefix, with ``.parts``/``.partN`` when split).
#: A caller may set them too: the caller's value is kept, with a warning.
RESERVED_KEYS = (
    STATUS,
    REASON,
    TABLES,
    WRITTEN,
    SCHEMA,
    RUN_ID,
    MANIFEST,
    REPRODUCES_VERSION,
    VERIFICATION,
    ALIASES_TAG,
    STAGE_TAG,
)
RESERVED_PREFIXES = (
    INPUT_PREFIX,
    OUTPUT_PREFIX,
    ENV_PREFIX,
    CODE_PREFIX,
    EVENT_PREFIX,
    DELETED_PREFIX,
    INTENT_PREFIX,
)

COMPLETE = "complete"
INCOMPLETE = "incomplete"
MISSING = "missing"

#: MLflow marks prompt versions (also created with create_model_version) with these tags.
PROMPT_TAG_PREFIX = "mlflow.prompt."

_INPUT_KEY = re.compile(r"^lineage\.input\.(\d+)$")
_OUTPUT_KEY = re.compile(r"^lineage\.output\.(\d+)$")


def is_prompt_version(tags: Iterable[str]) -> bool:
    """Whether a model version with these tag keys is a prompt version, not a model."""
    return any(k.startswith(PROMPT_TAG_PREFIX) for k in tags)


def is_reserved(key: str) -> bool:
    """Whether ``key`` is one the plugin writes (see :data:`RESERVED_KEYS`).

    Example:
        >>> is_reserved("lineage.status"), is_reserved("lineage.manifest.part1")
        (True, True)
        >>> is_reserved("lineage.protect"), is_reserved("team")
        (False, False)
    """
    if key.startswith(RESERVED_PREFIXES):
        return True
    base = re.sub(r"\.(parts|part\d+)$", "", key)
    return base in RESERVED_KEYS


def run_tag_value_limit() -> int:
    """MLflow's maximum length of a run tag value (8000 in MLflow 3.x)."""
    from mlflow.utils.validation import MAX_TAG_VAL_LENGTH

    return MAX_TAG_VAL_LENGTH


def model_version_tag_value_limit() -> int:
    """MLflow's maximum length of a model-version tag value."""
    from mlflow.utils import validation

    return getattr(validation, "MAX_MODEL_REGISTRY_TAG_VALUE_LENGTH", run_tag_value_limit())


def registered_model_tag_value_limit() -> int:
    """The longest registered-model tag value every backend stores: MLflow's SQL column holds
    5000 characters, fewer than its validation allows (longer values fail on PostgreSQL)."""
    try:
        from mlflow.store.model_registry.dbmodels.models import SqlRegisteredModelTag

        length = SqlRegisteredModelTag.__table__.c.value.type.length
    except Exception:  # an MLflow without SQL models: its validation limit is the limit
        length = None
    return min(model_version_tag_value_limit(), length or 5000)


def split_value(key: str, value: str, limit: int) -> dict[str, str]:
    """Spread ``value`` over as many tags as MLflow's value limit needs.

    Args:
        key: The tag key.
        value: The full value.
        limit: The maximum length of one tag value.

    Returns:
        ``{key: value}`` when it fits, else ``key``, ``key.part1``... and ``key.parts``.
    """
    if len(value) <= limit:
        return {key: value}
    chunks = [value[i : i + limit] for i in range(0, len(value), limit)]
    out = {key: chunks[0], f"{key}.parts": str(len(chunks))}
    out.update({f"{key}.part{n}": chunk for n, chunk in enumerate(chunks[1:], start=1)})
    return out


def join_value(tags: Mapping[str, str], key: str) -> str | None:
    """Read back a value written by :func:`split_value` (``None`` when the key is absent)."""
    if key not in tags:
        return None
    parts = int(tags.get(f"{key}.parts", "1"))
    return tags[key] + "".join(tags[f"{key}.part{n}"] for n in range(1, parts))


def input_key(index: int) -> str:
    """The tag key of the ``index``-th input of a run."""
    return f"{INPUT_PREFIX}{index:03d}"


def output_key(index: int) -> str:
    """The tag key of the ``index``-th output of a run."""
    return f"{OUTPUT_PREFIX}{index:03d}"


def tables_summary(
    records: Iterable[DeltaInput | DeltaOutput], limit: int, prefix: str = INPUT_PREFIX
) -> str:
    """``name@vN, ...``; when that is too long it ends with an explicit ``(+N more...)``
    pointing at the ``prefix*`` tags that hold every record."""
    labels = [r.label for r in records]
    text = ", ".join(labels)
    if len(text) <= limit:
        return text
    shown: list[str] = []
    for n, label in enumerate(labels):
        more = f" (+{len(labels) - n} more; see {prefix}* tags)"
        if len(", ".join([*shown, label])) + len(more) > limit:
            break
        shown.append(label)
    return ", ".join(shown) + more


def environment_tags(env: Environment) -> dict[str, str]:
    """Readable tags for an environment."""
    tags = {f"{ENV_PREFIX}python": env.python, f"{ENV_PREFIX}platform": env.platform}
    tags.update({f"{PKG_PREFIX}{name}": version for name, version in env.packages.items()})
    return tags


def code_tags(code: CodeVersion, limit: int) -> dict[str, str]:
    """Readable tags for a code version (argv is JSON and may be split)."""
    tags = split_value(f"{CODE_PREFIX}argv", json.dumps(list(code.argv)), limit)
    if code.cwd:
        tags[f"{CODE_PREFIX}cwd"] = code.cwd
    if code.git_commit:
        tags[f"{CODE_PREFIX}git_commit"] = code.git_commit
    if code.git_dirty is not None:
        tags[f"{CODE_PREFIX}git_dirty"] = str(code.git_dirty).lower()
    if code.files:
        tags.update(code_files_tags(code.files, limit))
    return tags


def code_files_tags(files: Mapping[str, str], limit: int) -> dict[str, str]:
    """The ``lineage.code.files`` tag(s): ``{relative path: sha256}`` as compact JSON."""
    value = json.dumps(dict(files), sort_keys=True, separators=(",", ":"))
    return split_value(CODE_FILES, value, limit)


def _indexed_records(tags: Mapping[str, str], pattern: re.Pattern[str]) -> list[dict[str, Any]]:
    """The JSON records of the ``<prefix>NNN`` tags matching ``pattern``, in index order."""
    indexed = sorted(
        (int(m.group(1)), key) for key in tags if (m := pattern.match(key)) is not None
    )
    return [json.loads(join_value(tags, key)) for _, key in indexed]


def inputs_from_tags(tags: Mapping[str, str]) -> tuple[DeltaInput, ...]:
    """The inputs recorded in ``lineage.input.NNN`` tags, in index order."""
    return tuple(DeltaInput.from_dict(d) for d in _indexed_records(tags, _INPUT_KEY))


def outputs_from_tags(tags: Mapping[str, str]) -> tuple[DeltaOutput, ...]:
    """The outputs recorded in ``lineage.output.NNN`` tags, in index order."""
    return tuple(DeltaOutput.from_dict(d) for d in _indexed_records(tags, _OUTPUT_KEY))


def environment_from_tags(tags: Mapping[str, str]) -> Environment | None:
    """The environment recorded in ``lineage.env.*`` tags, if any."""
    if f"{ENV_PREFIX}python" not in tags:
        return None
    packages = {k[len(PKG_PREFIX) :]: v for k, v in tags.items() if k.startswith(PKG_PREFIX)}
    return Environment(
        python=tags[f"{ENV_PREFIX}python"],
        platform=tags.get(f"{ENV_PREFIX}platform", ""),
        packages=dict(sorted(packages.items())),
    )


def code_from_tags(tags: Mapping[str, str]) -> CodeVersion | None:
    """The code version recorded in ``lineage.code.*`` tags, if any."""
    argv = join_value(tags, f"{CODE_PREFIX}argv")
    if argv is None:
        return None
    dirty = tags.get(f"{CODE_PREFIX}git_dirty")
    files = join_value(tags, CODE_FILES)
    return CodeVersion(
        argv=tuple(json.loads(argv)),
        cwd=tags.get(f"{CODE_PREFIX}cwd"),
        git_commit=tags.get(f"{CODE_PREFIX}git_commit"),
        git_dirty=None if dirty is None else dirty == "true",
        files=(json.loads(files) or None) if files else None,
    )


_DAMAGED = (ValueError, TypeError, KeyError, AttributeError)


def _damaged(what: str, exc: Exception) -> DamagedRecordError:
    return DamagedRecordError(
        f"The lineage record of {what} cannot be read: a lineage.* tag is damaged "
        f"({type(exc).__name__}: {str(exc)[:200]}). It was not written by the plugin, or was "
        "edited since; the record cannot be trusted. Re-register the model version from a "
        "run with a good record, or delete the damaged tag."
    )


def run_lineage_from_tags(run_id: str, tags: Mapping[str, str]) -> RunLineage:
    """Rebuild a run's lineage record from its tags.

    Raises:
        DamagedRecordError: A ``lineage.*`` tag is not what the plugin writes.
    """
    try:
        return _run_lineage_from_tags(run_id, tags)
    except DamagedRecordError:
        raise
    except _DAMAGED as exc:
        raise _damaged(f"run {run_id}", exc) from None


def _run_lineage_from_tags(run_id: str, tags: Mapping[str, str]) -> RunLineage:
    inputs = inputs_from_tags(tags)
    outputs = outputs_from_tags(tags)
    status = tags.get(STATUS) or (COMPLETE if inputs or outputs else MISSING)
    reason = join_value(tags, REASON)
    return RunLineage(
        run_id=run_id,
        status=status,
        inputs=inputs,
        outputs=outputs,
        reasons=tuple(reason.splitlines()) if reason else (),
        environment=environment_from_tags(tags),
        code=code_from_tags(tags),
        schema_version=int(tags.get(SCHEMA, SCHEMA_VERSION)),
    )


def manifest_json(record: RunLineage) -> str:
    """The versioned JSON manifest of a run's lineage."""
    return to_json(record.to_dict())


def model_version_lineage(mv: Any) -> ModelVersionLineage:
    """The lineage record carried by an MLflow ``ModelVersion``'s tags.

    Args:
        mv: The ``ModelVersion`` (anything with ``name``, ``version``, ``source``, ``tags``).

    Returns:
        The record attached at registration; ``status`` is ``missing`` without one.

    Raises:
        DamagedRecordError: Its ``lineage.manifest`` is not what the plugin writes.
    """
    tags = mv.tags
    manifest = join_value(tags, MANIFEST)
    try:
        run = RunLineage.from_dict(json.loads(manifest)) if manifest else None
    except _DAMAGED as exc:
        raise _damaged(f"model {mv.name} version {mv.version}", exc) from None
    status = tags.get(STATUS) or (run.status if run else MISSING)
    return ModelVersionLineage(
        name=mv.name, version=str(mv.version), status=status, run=run, source=mv.source
    )
