"""When Delta's own clean-up will make a table version unreadable, with the table's settings.

A version needs its data files and its ``_delta_log`` entries. Two kinds of clean-up take them:

- **A plain VACUUM** deletes a removed data file once it has been removed for longer than
  ``delta.deletedFileRetentionDuration`` (a week by default). A version whose files are all
  still in the current version is safe from it; otherwise it is at risk from the moment its
  first file was removed, plus the retention.
- **Log clean-up** (after a checkpoint, automatically unless ``delta.enableExpiredLogCleanup``
  is false; or ``DeltaTable.cleanup_metadata()``) deletes the commit files and checkpoints that
  are older than ``delta.logRetentionDuration`` (30 days by default) and come before the latest
  checkpoint. Reading a version needs the files from the checkpoint at or before it (or from
  version 0) up to it, so it is at risk from the oldest of those, plus the retention, once a
  checkpoint after it exists.

Neither can be stopped without a table property: raise ``delta.deletedFileRetentionDuration``
and ``delta.logRetentionDuration`` (an ``ALTER``/``set_table_properties`` commit: history is
added to, not rewritten). A checkpoint does not keep a version: it is what lets log clean-up
delete the commits before it. Only local tables are read (their files' times are what the
clean-ups compare).
"""

from __future__ import annotations

import os
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from lineage_plugin.delta import delta_rs
from lineage_plugin.delta import log as delta_log
from lineage_plugin.delta.vacuum import TableSettings, settings_from
from lineage_plugin.errors import LineageError

_HOUR_MS = 3_600_000


@dataclass(frozen=True, kw_only=True)
class Risk:
    """A clean-up that can make a table version unreadable, and from when.

    Attributes:
        version: The table version.
        kind: ``files`` (a plain VACUUM deletes its data files) or ``log`` (log clean-up
            deletes the commits it is rebuilt from).
        at: From when (milliseconds since the epoch; may be in the past: the next clean-up).
        needs_checkpoint: ``log`` only: no checkpoint after the version exists yet, so the
            clean-up waits for one (the table writes one every ``checkpoint_interval`` commits).
        detail: What goes and which setting decides it, for people.
    """

    version: int
    kind: str
    at: int
    needs_checkpoint: bool = False
    detail: str

    def due(self, now_ms: int, within_hours: float) -> bool:
        """True when the clean-up can happen within ``within_hours`` of ``now_ms``."""
        return self.at <= now_ms + within_hours * _HOUR_MS

    def to_dict(self) -> dict[str, Any]:
        """As JSON (``at`` in milliseconds since the epoch)."""
        out: dict[str, Any] = {
            "version": self.version,
            "kind": self.kind,
            "at": self.at,
            "detail": self.detail,
        }
        if self.needs_checkpoint:
            out["needs_checkpoint"] = True
        return out


@dataclass(frozen=True, kw_only=True)
class RetentionReport:
    """The risks to some versions of one table.

    Attributes:
        uri: The table.
        settings: Its retention settings now.
        risks: Every foreseeable risk, oldest first.
        skipped: Why the table could not be assessed (``None`` when it was).
    """

    uri: str
    settings: TableSettings | None
    risks: tuple[Risk, ...] = ()
    skipped: str | None = None


def retention_risks(
    uri: str,
    versions: Iterable[int],
    *,
    kinds: Collection[str] = ("files", "log"),
    current: Any = None,
) -> RetentionReport:
    """What a plain VACUUM or log clean-up with the table's settings will take of ``versions``.

    Args:
        uri: A local Delta table.
        versions: The versions to assess (versions the log no longer reaches are skipped:
            they are unreadable already, which :mod:`~lineage_plugin.delta.readability` says).
        kinds: The risks to assess: ``files`` (a plain VACUUM: opens each version's snapshot
            and reads the removes committed after it) and ``log`` (log clean-up: the log
            listing and file times only; a version is not opened, so one whose snapshot
            cannot be built is assessed too).
        current: The ``deltalake.DeltaTable`` already open at its latest version, if the
            caller has it (else it is opened).

    Returns:
        A :class:`RetentionReport`; ``skipped`` says why a table was not assessed (not a
        local table, or not a Delta table).

    Example:
        >>> [r.kind for r in retention_risks("/data/diabetes", [3]).risks]
        ['files', 'log']
    """
    path = delta_log.local_path(delta_log.normalize_uri(uri))
    if path is None:
        return RetentionReport(
            uri=uri,
            settings=None,
            skipped="only local tables are assessed (the clean-ups compare file times that "
            "are not read from object stores)",
        )
    wanted = sorted({v for v in versions if v >= 0})
    try:
        log_dir = delta_log.log_dir_of(path)
        if current is None:
            current = delta_rs.open_table(path, None, None)
    except (LineageError, OSError) as exc:
        return RetentionReport(uri=uri, settings=None, skipped=f"it cannot be opened ({exc})")
    settings = settings_from(current.metadata().configuration)
    commits, checkpoints = delta_log.log_listing(log_dir)
    latest = current.version()
    files = "files" in kinds
    now_files = _files(current) if files else set()
    removed = _first_removals(log_dir, min(wanted, default=latest) + 1, latest) if files else {}
    risks: list[Risk] = []
    for version in wanted:
        if version > latest or version not in commits | checkpoints:
            continue
        if files:
            try:
                snapshot = delta_rs.open_table(path, version, None)
            except (LineageError, OSError):  # unreadable already: not a future risk
                continue
            risks += _file_risk(version, _files(snapshot) - now_files, removed, settings)
        if "log" in kinds:
            risks += _log_risk(version, log_dir, commits, checkpoints, latest, settings)
    return RetentionReport(
        uri=uri, settings=settings, risks=tuple(sorted(risks, key=lambda r: (r.at, r.version)))
    )


def _files(table: Any) -> set[str]:
    return {unquote(p) for p in table.get_add_actions(flatten=True).column("path").to_pylist()}


def _first_removals(log_dir: str, start: int, end: int) -> dict[str, int]:
    """Data file -> when it was first removed (``remove.deletionTimestamp``) in commits
    ``start``..``end``."""
    removed: dict[str, int] = {}
    for version in range(start, end + 1):
        for action in delta_log.read_commit(log_dir, version) or ():
            remove = action.get("remove")
            if remove and remove.get("path") and remove.get("deletionTimestamp") is not None:
                removed.setdefault(unquote(remove["path"]), int(remove["deletionTimestamp"]))
    return removed


def _file_risk(
    version: int, gone: set[str], removed: dict[str, int], settings: TableSettings
) -> list[Risk]:
    """The VACUUM risk of a version whose files ``gone`` are no longer in the current one."""
    times = [removed[f] for f in gone if f in removed]
    if not times:
        return []
    return [
        Risk(
            version=version,
            kind="files",
            at=min(times) + int(settings.file_retention_hours * _HOUR_MS),
            detail=f"a plain VACUUM can delete {len(times)} of its data files (removed since; "
            f"delta.deletedFileRetentionDuration is {settings.file_retention_hours:g} h)",
        )
    ]


def _log_risk(
    version: int,
    log_dir: str,
    commits: set[int],
    checkpoints: set[int],
    latest: int,
    settings: TableSettings,
) -> list[Risk]:
    """The log clean-up risk of a version: from the oldest file it is rebuilt from."""
    start = max((c for c in checkpoints if c <= version), default=0)
    times = [
        os.stat(delta_log.commit_file(log_dir, v)).st_mtime_ns // 1_000_000
        for v in range(start, version + 1)
        if v in commits
    ]
    if not times:
        return []
    later = any(c > version for c in checkpoints)
    interval = settings.checkpoint_interval
    next_checkpoint = (latest // interval + 1) * interval
    wait = (
        ""
        if later
        else f"; it needs a checkpoint after v{version} first (the table writes one every "
        f"{interval} commits, the next at about v{next_checkpoint})"
    )
    off = (
        "; automatic clean-up is off (delta.enableExpiredLogCleanup=false) but "
        "DeltaTable.cleanup_metadata() still deletes"
        if not settings.log_cleanup
        else ""
    )
    return [
        Risk(
            version=version,
            kind="log",
            at=min(times) + int(settings.log_retention_hours * _HOUR_MS),
            needs_checkpoint=not later,
            detail=f"log clean-up can delete the commits it is rebuilt from "
            f"(delta.logRetentionDuration is {settings.log_retention_hours:g} h){wait}{off}",
        )
    ]
