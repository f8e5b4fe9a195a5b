"""What happened to a Delta table between versions: its commits, read from the log.

:func:`commits` lists the commits of a version range (who, when, which operation, with what
metrics), :func:`commits_between` the commits that take a table from one version to another,
and :func:`commits_in_window` the commits made in a time window.

Local tables are read straight from ``_delta_log/*.json``, and of each commit file only its
``commitInfo`` action is parsed. Tables on object stores go through ``deltalake``: the latest
table's ``history()``, its entries mapped to versions by their ``version`` field.

Example:
    >>> from lineage_plugin.delta.history import commits_between
    >>> [c.operation for c in commits_between("/data/sales", 3, 5)]  # doctest: +SKIP
    ['MERGE', 'DELETE']
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from lineage_plugin.delta import delta_rs
from lineage_plugin.delta import log as delta_log
from lineage_plugin.delta.stamps import RUN_ID_KEY, stamp_of
from lineage_plugin.errors import LineageError, TableNotFoundError
from lineage_plugin.records import drop_nulls

# A commitInfo action is recognised by its line's start, so other actions are never parsed.
_COMMIT_INFO_LINE = re.compile(r'\s*\{\s*"commitInfo"\s*:')


@dataclass(frozen=True, kw_only=True)
class DeltaCommit:
    """What one commit of a Delta table says about itself.

    Attributes:
        version: The table version the commit made.
        timestamp: Milliseconds since the epoch: ``inCommitTimestamp`` when the commit has one,
            else ``commitInfo.timestamp``.
        operation: ``WRITE``, ``MERGE``, ``UPDATE``, ``DELETE``, ``RESTORE``...
        parameters: The operation's parameters (``operationParameters``), values as text
            (non-string values as JSON).
        metrics: The operation's metrics (``operationMetrics``) as written, e.g.
            ``num_updated_rows`` (deltalake) or ``numUpdatedRows`` (Spark), values as text.
        user: ``userName``, else ``userId``, else a ``user`` key of the commit's custom metadata.
        engine: ``engineInfo``, else ``clientVersion``.
        run_id: The MLflow run that made the commit, when it put ``mlflow.runId`` in the
            commit's custom metadata.
        available: ``False`` when the commit file is gone (the log was cleaned up); every other
            field is then unknown.
    """

    version: int
    timestamp: int | None = None
    operation: str | None = None
    parameters: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, str] = field(default_factory=dict)
    user: str | None = None
    engine: str | None = None
    run_id: str | None = None
    available: bool = True

    def to_dict(self) -> dict[str, Any]:
        """Return the commit as a plain dict with sorted keys, no nulls and no empty maps."""
        return {k: v for k, v in drop_nulls(asdict(self)).items() if v != {}}

    @classmethod
    def from_commit_info(cls, version: int, info: dict[str, Any]) -> DeltaCommit:
        """Build a commit from a ``commitInfo`` action (or a ``history()`` entry).

        Args:
            version: The version the commit made (never taken from ``info``).
            info: The ``commitInfo`` object; custom metadata sits in it as top-level keys.
        """
        stamp = delta_log.commit_stamp(info)
        return cls(
            version=version,
            timestamp=stamp.timestamp,
            operation=stamp.operation,
            parameters=_as_text(info.get("operationParameters")),
            metrics=_as_text(info.get("operationMetrics")),
            user=_first_text(info, ("userName", "userId", "user")),
            engine=_first_text(info, ("engineInfo", "clientVersion")),
            run_id=stamp_of(info).get(RUN_ID_KEY),
        )


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)  # the common case (metrics), without json.dumps' cost
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _as_text(values: Any) -> dict[str, str]:
    if not isinstance(values, dict):
        return {}
    return {str(k): _text(v) for k, v in values.items() if v is not None}


def _first_text(info: dict[str, Any], keys: Iterable[str]) -> str | None:
    for key in keys:
        value = info.get(key)
        if value is not None and value != "":
            return str(value)
    return None


def _check_range(start: int, end: int | None) -> None:
    if start < 0 or (end is not None and end < 0):
        raise LineageError(
            f"Versions cannot be negative (got start={start}, end={end}); the first version of "
            "a Delta table is 0."
        )
    if end is not None and start > end:
        raise LineageError(
            f"The version range is empty: start={start} is after end={end}; "
            "give start <= end (both inclusive)."
        )


def _check_end(uri: str, end: int, latest: int) -> None:
    if end > latest:
        raise TableNotFoundError(
            f"'{uri}' has no version {end} (latest is {latest}); check the version range."
        )


# ---- local tables: straight from _delta_log ----


def _read_commit_info(log_dir: str, version: int) -> dict[str, Any] | None:
    """The ``commitInfo`` of a local commit file; ``None`` when the file is gone.

    Lines of other actions are skipped without being parsed; reading stops at ``commitInfo``
    (the first line, for every writer that follows the protocol's in-commit-timestamp rule).
    """
    path = delta_log.commit_file(log_dir, version)
    try:
        with open(path, encoding="utf-8") as fh:
            for line in fh:
                if _COMMIT_INFO_LINE.match(line):
                    actions = delta_log.parse_actions(line, path)
                    return (actions[0].get("commitInfo") or {}) if actions else {}
    except FileNotFoundError:
        return None
    except UnicodeDecodeError as exc:
        raise delta_log.not_text(path, exc) from exc
    return {}


def _local_commit(log_dir: str, version: int) -> DeltaCommit:
    info = _read_commit_info(log_dir, version)
    if info is None:
        return DeltaCommit(version=version, available=False)
    return DeltaCommit.from_commit_info(version, info)


def _local_commits(path: str, start: int, end: int | None) -> list[DeltaCommit]:
    log_dir = delta_log.log_dir_of(path)
    # The commit file of `end` proves the version exists; only without it is the latest needed.
    if end is None or not os.path.exists(delta_log.commit_file(log_dir, end)):
        latest = delta_log.latest_local_version(log_dir)
        end = latest if end is None else end
        _check_end(path, max(start, end), latest)
    return [_local_commit(log_dir, v) for v in range(start, end + 1)]


# ---- tables on object stores: through deltalake ----


def _remote_commits(
    uri: str, start: int, end: int | None, storage_options: dict[str, str] | None
) -> list[DeltaCommit]:
    """Commits through ``history()`` of the latest table.

    ``history()`` labels its entries by counting down from the loaded version, so only a table
    loaded at its latest version labels them right; entries missing from it (log cleaned up)
    come back as unavailable commits.
    """
    table = delta_rs.open_table(uri, None, storage_options)
    latest = table.version()
    end = latest if end is None else end
    _check_end(uri, max(start, end), latest)
    by_version = {int(e.pop("version")): e for e in table.history(latest - start + 1)}
    return commits_from_history(by_version, start, end)


def commits_from_history(
    by_version: dict[int, dict[str, Any]], start: int, end: int
) -> list[DeltaCommit]:
    """The commits of versions ``start`` to ``end`` from history entries keyed by version
    (``history()``, ``DESCRIBE HISTORY``); a version without an entry (log cleaned up) comes
    back with ``available=False``."""
    return [
        DeltaCommit.from_commit_info(v, by_version[v])
        if v in by_version
        else DeltaCommit(version=v, available=False)
        for v in range(start, end + 1)
    ]


# ---- public API ----


def commits(
    uri: str,
    *,
    start: int | None = None,
    end: int | None = None,
    storage_options: dict[str, str] | None = None,
) -> list[DeltaCommit]:
    """The commits of versions ``start`` to ``end`` (both inclusive), oldest first.

    Args:
        uri: The table's location (path, ``file:`` URI or object-store URI).
        start: The first version; defaults to 0.
        end: The last version; defaults to the latest.
        storage_options: Credentials for object stores (used, never recorded).

    Returns:
        One commit per version; a version whose commit file is gone (log cleaned up) comes back
        with ``available=False``.

    Raises:
        LineageError: The range is negative or empty (``start > end``).
        TableNotFoundError: There is no Delta table at ``uri``, or no version ``end``.
        DeltaLogError: The ``_delta_log`` cannot be read.
    """
    start = 0 if start is None else start
    _check_range(start, end)
    path = delta_log.local_path(delta_log.normalize_uri(uri))
    if path is not None:
        return _local_commits(path, start, end)
    return _remote_commits(uri, start, end, storage_options)


def commits_between(
    uri: str,
    from_version: int,
    to_version: int,
    *,
    storage_options: dict[str, str] | None = None,
) -> list[DeltaCommit]:
    """The commits that lie between two versions of a table, oldest first.

    Forwards (``to_version > from_version``) these are versions ``from_version + 1`` to
    ``to_version``; backwards, versions ``to_version + 1`` to ``from_version`` (the commits to
    undo, still oldest first: the caller presents the direction). Equal versions give ``[]``.

    Args:
        uri: The table's location.
        from_version: The version one starts from (e.g. the one a model was trained on).
        to_version: The version one goes to (e.g. the latest).
        storage_options: Credentials for object stores (used, never recorded).

    Raises:
        LineageError: A version is negative.
        TableNotFoundError: There is no Delta table at ``uri``, or no such version.
        DeltaLogError: The ``_delta_log`` cannot be read.
    """
    _check_range(min(from_version, to_version), max(from_version, to_version))
    if from_version == to_version:
        return []
    low, high = sorted((from_version, to_version))
    return commits(uri, start=low + 1, end=high, storage_options=storage_options)


def commits_in_window(
    uri: str,
    *,
    since: int | None,
    until: int | None,
    storage_options: dict[str, str] | None = None,
) -> list[DeltaCommit]:
    """The commits whose timestamp lies in ``[since, until]``, in version order.

    Commit timestamps come from writers' clocks and are only nearly monotonic, so every commit
    is looked at (a linear scan; a bisection could miss a commit written by a skewed clock).
    Locally that costs one ``open`` and one parsed line per commit file (about 15 ms per 1,000
    commits). Commits without a known timestamp (no ``commitInfo``, or the file is gone) are
    never in a window.

    Args:
        uri: The table's location.
        since: Earliest timestamp, milliseconds since the epoch, inclusive; ``None``: open.
        until: Latest timestamp, milliseconds since the epoch, inclusive; ``None``: open.
        storage_options: Credentials for object stores (used, never recorded).

    Raises:
        LineageError: ``since`` is after ``until``.
        TableNotFoundError: There is no Delta table at ``uri``.
        DeltaLogError: The ``_delta_log`` cannot be read.
    """
    if since is not None and until is not None and since > until:
        raise LineageError(
            f"The time window is empty: since={since} is after until={until} "
            "(milliseconds since the epoch, both inclusive)."
        )

    def inside(ts: int | None) -> bool:
        return ts is not None and (since is None or ts >= since) and (until is None or ts <= until)

    path = delta_log.local_path(delta_log.normalize_uri(uri))
    if path is None:
        return [c for c in _remote_commits(uri, 0, None, storage_options) if inside(c.timestamp)]
    log_dir = delta_log.log_dir_of(path)
    delta_log.latest_local_version(log_dir)  # raises for a log without commits
    found = []
    for version in sorted(delta_log.log_listing(log_dir)[0]):
        info = _read_commit_info(log_dir, version)
        if info is not None and inside(delta_log.commit_stamp(info).timestamp):
            found.append(DeltaCommit.from_commit_info(version, info))
    return found


def commit_infos_after(
    uri: str, after: int, *, storage_options: dict[str, str] | None = None
) -> list[tuple[int, dict[str, Any]]]:
    """The ``commitInfo`` of every version after ``after`` up to the latest, oldest first.

    Args:
        uri: The table's location.
        after: The last version not wanted; ``-1`` for every version.
        storage_options: Credentials for object stores (used, never recorded).

    Returns:
        ``(version, commitInfo)`` pairs; a version whose commit file is gone is left out, and a
        commit without ``commitInfo`` comes back with ``{}``.

    Raises:
        TableNotFoundError: There is no Delta table at ``uri``.
        DeltaLogError: The ``_delta_log`` cannot be read.
    """
    path = delta_log.local_path(delta_log.normalize_uri(uri))
    if path is None:
        table = delta_rs.open_table(uri, None, storage_options)
        latest = table.version()
        if latest <= after:
            return []
        entries = {int(e.pop("version")): e for e in table.history(latest - after)}
        return sorted((v, e) for v, e in entries.items() if v > after)
    log_dir = delta_log.log_dir_of(path)
    found = []
    for version in range(after + 1, delta_log.latest_local_version(log_dir) + 1):
        info = _read_commit_info(log_dir, version)
        if info is not None:
            found.append((version, info))
    return found


def commits_with(
    uri: str,
    key: str,
    value: str,
    *,
    after: int,
    storage_options: dict[str, str] | None = None,
) -> list[tuple[int, dict[str, Any]]]:
    """The commits after version ``after`` whose stamp has ``key`` set to ``value`` (a key of
    the commit's custom metadata, or of a Spark stamp in ``userMetadata``), oldest first, with
    their ``commitInfo``.

    Raises:
        TableNotFoundError: There is no Delta table at ``uri``.
        DeltaLogError: The ``_delta_log`` cannot be read.
    """
    found = commit_infos_after(uri, after, storage_options=storage_options)
    return [(version, info) for version, info in found if stamp_of(info).get(key) == value]
