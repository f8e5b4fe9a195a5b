"""What a deleted model version leaves behind, on its registered model.

MLflow keeps a deleted version's row but hides it (and its tags) from every query, so the
version's own tags cannot carry its history any more. When a version is deleted through a
``lineage+`` store, the plugin writes, in the same call, on the *registered model*:

- ``lineage.deleted.<version>``: a :class:`DeletedVersion` record (JSON; split over
  ``.part1``... like every long value), with the registration time, the source run, the lineage
  status and the full manifest the version was registered with;
- a copy of each of the version's ``lineage.event.*`` tags (same key, same value), and a
  ``version_deleted`` event.

So "what did Production hold on date X, trained on which data" keeps its answer after the
version is gone, and ``reindex`` rebuilds it. Deleting the registered model removes all of it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from lineage_plugin import tags as T
from lineage_plugin.records import SCHEMA_VERSION, drop_nulls, to_json

DELETED_PREFIX = T.DELETED_PREFIX
_KEY = re.compile(r"^lineage\.deleted\.(\d+)$")


@dataclass(frozen=True, kw_only=True)
class DeletedVersion:
    """A model version as it was when it was deleted.

    Attributes:
        name: The registered model (at the time of deletion; a rename moves the record).
        version: The version number.
        created: Registration time (epoch ms).
        deleted: Deletion time (epoch ms).
        user: Who deleted it, when known.
        source: The version's model source URI.
        run_id: Its source run.
        status: Its ``lineage.status`` at registration.
        stage: The stage it was in when deleted.
        manifest: The full lineage manifest it was registered with (JSON text), if any.
        schema_version: Layout version of this record.
    """

    name: str
    version: str
    created: int | None = None
    deleted: int | None = None
    user: str | None = None
    source: str | None = None
    run_id: str | None = None
    status: str | None = None
    stage: str | None = None
    manifest: str | None = None
    schema_version: int = SCHEMA_VERSION

    @property
    def key(self) -> str:
        """The registered-model tag key the record is written under."""
        return f"{DELETED_PREFIX}{self.version}"

    def to_dict(self) -> dict[str, Any]:
        """A plain dict with sorted keys and no nulls (the manifest as its parsed JSON)."""
        return drop_nulls(
            {
                "schema_version": self.schema_version,
                "name": self.name,
                "version": self.version,
                "created": self.created,
                "deleted": self.deleted,
                "user": self.user,
                "source": self.source,
                "run_id": self.run_id,
                "status": self.status,
                "stage": self.stage,
                "manifest": json.loads(self.manifest) if self.manifest else None,
            }
        )

    def tags(self, limit: int) -> dict[str, str]:
        """The tag (or tags, split at MLflow's value ``limit``) that hold the record."""
        return T.split_value(self.key, to_json(self.to_dict()), limit)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DeletedVersion:
        """Build a record from :meth:`to_dict` output (unknown keys are ignored)."""
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        known["version"] = str(known["version"])
        if isinstance(known.get("manifest"), dict):
            known["manifest"] = to_json(known["manifest"])
        return cls(**known)

    def tag_view(self) -> dict[str, str]:
        """The lineage tags the version carried (what :func:`tags.model_version_lineage`
        reads), rebuilt from the record."""
        out = {T.STATUS: self.status or T.MISSING}
        if self.run_id:
            out[T.RUN_ID] = self.run_id
        if self.manifest:
            out[T.MANIFEST] = self.manifest
        return out


def deleted_versions(tags: Mapping[str, str]) -> dict[str, DeletedVersion]:
    """The deleted-version records in a registered model's tags, by version number.

    Args:
        tags: The registered model's tags.

    Returns:
        ``{version: record}``; a record whose parts are missing or unreadable is skipped.
    """
    found: dict[str, DeletedVersion] = {}
    for key in tags:
        match = _KEY.match(key)
        if match is None:
            continue
        try:
            text = T.join_value(tags, key)
            record = DeletedVersion.from_dict(json.loads(text or "{}"))
        except (KeyError, ValueError, TypeError):
            continue
        found[match.group(1)] = record
    return found


def is_deleted_key(key: str) -> bool:
    """Whether a registered-model tag key belongs to a deleted-version record."""
    return key.startswith(DELETED_PREFIX)
