"""``vacuum TABLE``: Delta's VACUUM, keeping every version a model in use was trained on.

The plan (:func:`plan_vacuum`) finds the protected versions of the table
(:mod:`lineage_plugin.queries.protected`), refuses when one of them is already unreadable,
and lists the files that would go. :func:`vacuum` shows it, asks, plans again (a model
version registered meanwhile counts) and deletes.

deltalake keeps exactly the protected versions (``keep_versions``). Spark cannot: it keeps
everything from the oldest protected version on, by widening the retention, and the plan says so.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any

from lineage_plugin.errors import LineageError, OperationCancelledError, VacuumRefusedError
from lineage_plugin.progress import Progress, status_lines
from lineage_plugin.queries.protected import KEEP_NEWEST, Protection, guards, protection
from lineage_plugin.queries.workspace import Workspace
from lineage_plugin.records import drop_nulls

ENGINES = ("deltalake", "spark")
#: How many protected versions are checked for readability at once (threads).
_CHECKS_AT_ONCE = 4


@dataclass(frozen=True, kw_only=True)
class VacuumPlan:
    """What a vacuum would delete and what it keeps.

    Attributes:
        uri: The table's normalised URI.
        engine: ``deltalake`` or ``spark``.
        current_version: The table's latest version.
        retention_hours: The retention asked for (``None``: the table's own).
        table_retention_hours: The table's ``delta.deletedFileRetentionDuration``.
        spark_retention_hours: With Spark, the retention used to keep the oldest protected
            version's files.
        kept: Each protected version with the model versions that protect it.
        files: The files that go (relative to the table root; Spark lists them absolute).
        bytes: Their size (``None`` when the table is on an object store).
        notes: What the operator should know (short retention, Spark keeping more).
        table: The ``deltalake.DeltaTable`` the plan opened (its latest version then), which
            deltalake's VACUUM runs on, so the table is opened once; not part of the JSON.
    """

    uri: str
    engine: str
    current_version: int
    retention_hours: float | None
    table_retention_hours: float
    spark_retention_hours: float | None
    kept: tuple[dict[str, Any], ...]
    files: tuple[str, ...]
    bytes: int | None
    notes: tuple[str, ...]
    table: Any = field(default=None, repr=False, compare=False)

    @property
    def keep_versions(self) -> list[int]:
        """The protected versions."""
        return [k["version"] for k in self.kept]

    def to_dict(self) -> dict[str, Any]:
        """As JSON."""
        return drop_nulls(
            {
                "table": self.uri,
                "engine": self.engine,
                "current_version": self.current_version,
                "retention_hours": self.retention_hours,
                "table_retention_hours": self.table_retention_hours,
                "spark_retention_hours": self.spark_retention_hours,
                "kept": list(self.kept),
                "files": len(self.files),
                "bytes": self.bytes,
                "notes": list(self.notes),
            }
        )


@dataclass(frozen=True, kw_only=True)
class VacuumReport:
    """What ``vacuum`` did (or, with ``dry_run``, would do).

    Attributes:
        plan: The plan carried out.
        dry_run: Nothing was deleted.
        deleted: The files deleted.
    """

    plan: VacuumPlan
    dry_run: bool
    deleted: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """The documented JSON of ``vacuum --json``."""
        return {**self.plan.to_dict(), "dry_run": self.dry_run, "deleted": len(self.deleted)}


Confirm = Callable[[VacuumPlan], bool]


def vacuum(
    table: str,
    *,
    retention_hours: float | None = None,
    keep_newest: int = KEEP_NEWEST,
    dry_run: bool = False,
    engine: str | None = None,
    confirm: Confirm | None = None,
    progress: Progress | None = None,
    tracking_uri: str | None = None,
) -> VacuumReport:
    """VACUUM a Delta table, keeping the files of every version a model version needs.

    Protected: the versions read by a model version holding an alias or the Staging or
    Production stage, by one of the ``keep_newest`` newest versions of each model, or by a
    version tagged ``lineage.protect=true``, and the versions upstream of those (pipeline
    provenance). The rest goes as Delta's own VACUUM would remove it.

    Args:
        table: The table's path or URI (or its name, when a recorded run read it).
        retention_hours: Delete unreferenced files older than this; ``None``: the table's
            ``delta.deletedFileRetentionDuration`` (7 days by default). A shorter retention
            than the table's is allowed: protected versions keep their files either way.
        keep_newest: How many of each model's newest versions are protected.
        dry_run: Plan only; delete nothing.
        engine: ``deltalake`` (default) or ``spark`` (keeps everything from the oldest
            protected version on).
        confirm: Asked with the plan before anything is deleted; ``None`` means yes.
        progress: Receives one line per step.
        tracking_uri: Where MLflow is (default: MLflow's tracking URI).

    Returns:
        A :class:`VacuumReport`.

    Raises:
        VacuumRefusedError: A protected version is already unreadable; nothing deleted.
        OperationCancelledError: ``confirm`` said no.
        LineageError: Bad arguments, not a Delta table, or the engine failed.

    Example:
        >>> report = vacuum("/data/churn", retention_hours=0, dry_run=True)
        >>> report.plan.keep_versions, len(report.plan.files)
    """
    say = status_lines(progress)
    if engine is not None and engine not in ENGINES:
        raise LineageError(f"Unknown engine '{engine}': use one of {', '.join(ENGINES)}.")
    if retention_hours is not None and retention_hours < 0:
        raise LineageError(f"--retention-hours must be 0 or more, not {retention_hours:g}.")
    ws = Workspace(tracking_uri)
    uri = _table_uri(ws, table)
    engine = engine or "deltalake"
    if confirm is None and not dry_run and engine == "deltalake":
        return _vacuum_unasked(ws, uri, retention_hours, keep_newest, say)
    plan = plan_vacuum(ws, uri, retention_hours, keep_newest, engine, say)
    if dry_run:
        return VacuumReport(plan=plan, dry_run=True)
    if confirm is not None and not confirm(plan):
        raise OperationCancelledError(
            "Nothing was deleted: the vacuum was not confirmed (answer y, or pass --yes)."
        )
    again = plan_vacuum(ws, uri, retention_hours, keep_newest, plan.engine, say, listing=False)
    keep = sorted(set(plan.keep_versions) | set(again.keep_versions))
    say(f"Vacuuming {uri}, keeping {len(keep)} protected version(s)...")
    deleted = _delete(again, keep)
    say(f"Deleted {len(deleted)} file(s).")
    return VacuumReport(plan=plan, dry_run=False, deleted=tuple(deleted))


def _vacuum_unasked(
    ws: Workspace, uri: str, retention_hours: float | None, keep_newest: int, say: Progress
) -> VacuumReport:
    """``--yes`` with deltalake: nobody is asked, so nothing can change between the plan and
    the VACUUM and the plan need not list the files or be made again. The files are those the
    VACUUM deleted, their size what its commit records."""
    from lineage_plugin.delta import vacuum as engine_vacuum

    plan = plan_vacuum(ws, uri, retention_hours, keep_newest, "deltalake", say, listing=False)
    say(f"Vacuuming {uri}, keeping {len(plan.keep_versions)} protected version(s)...")
    deleted = tuple(_delete(plan, plan.keep_versions))
    say(f"Deleted {len(deleted)} file(s).")
    size = engine_vacuum.vacuumed_bytes(plan.table, len(deleted))
    done = replace(plan, files=deleted, bytes=size)
    return VacuumReport(plan=done, dry_run=False, deleted=deleted)


def _table_uri(ws: Workspace, table: str) -> str:
    """The normalised URI of ``table``; a name must be one a recorded run read."""
    import os

    from lineage_plugin.delta.log import normalize_uri

    if "://" in table or os.sep in table or os.path.exists(table):
        return normalize_uri(table)
    from lineage_plugin.queries.impact import resolve_table

    with ws.require_index().begin() as conn:
        return resolve_table(conn, table)


def plan_vacuum(
    ws: Workspace,
    uri: str,
    retention_hours: float | None,
    keep_newest: int,
    engine: str,
    say: Progress,
    *,
    listing: bool = True,
) -> VacuumPlan:
    """Plan the vacuum of one table (see :func:`vacuum`); ``listing=False`` skips listing
    the files (the plan is only for the versions to keep).

    Raises:
        VacuumRefusedError: A protected version is already unreadable.
    """
    from lineage_plugin.delta import vacuum as engine_vacuum
    from lineage_plugin.delta.delta_rs import open_table

    say("Finding the model versions whose data must stay...")
    # deltalake replays the log without the GIL: it opens the table while MLflow is read.
    with ThreadPoolExecutor(max_workers=1) as pool:
        opening = pool.submit(open_table, uri, None, None)
        try:
            in_use = guards(ws, keep_newest=keep_newest)
        finally:
            current = opening.result()  # not a table: that error first
    settings = engine_vacuum.settings_from(current.metadata().configuration)
    found = protection(ws, uri, current.metadata().id, in_use)
    say(f"Checking the {len(found.versions)} protected version(s) are still readable...")
    _refuse_unreadable(found, current)
    kept = tuple({"version": v, "protected_by": found.kept(v)} for v in sorted(found.versions))
    notes = _notes(found, retention_hours, settings.file_retention_hours)
    notes += _log_notes(found, current)
    spark_hours = None
    if engine == "spark":
        spark_hours = _spark_hours(uri, retention_hours, settings, sorted(found.versions))
        notes.append(_spark_note(sorted(found.versions), spark_hours))
    files: list[str] = []
    if listing:
        say("Listing the files that would go...")
        files = _list(uri, retention_hours, sorted(found.versions), spark_hours, current)
    return VacuumPlan(
        uri=uri,
        engine=engine,
        current_version=current.version(),
        retention_hours=retention_hours,
        table_retention_hours=settings.file_retention_hours,
        spark_retention_hours=spark_hours,
        kept=kept,
        files=tuple(files),
        bytes=engine_vacuum.total_bytes(uri, files) if listing else None,
        notes=tuple(notes),
        table=current,
    )


def _refuse_unreadable(found: Protection, current: Any) -> None:
    """Refuse when a protected version cannot be read (``current``: the table, latest)."""
    from lineage_plugin.delta.readability import check_version_readable

    def reasons_of(version: int) -> list[str]:
        return check_version_readable(found.uri, version, table_id=table_id, latest_table=current)

    refusals = []
    table_id = current.metadata().id
    versions = sorted(found.versions)
    # Each check opens a snapshot (deltalake, without the GIL) and stats its files: in parallel.
    with ThreadPoolExecutor(max_workers=max(1, min(_CHECKS_AT_ONCE, len(versions)))) as pool:
        checked = list(pool.map(reasons_of, versions))
    for version, reasons in zip(versions, checked, strict=True):
        if reasons:
            who = ", ".join(f"{g.label} ({', '.join(g.why)})" for g, _ in found.versions[version])
            refusals.append(
                f"v{version} is already unreadable ({'; '.join(reasons)}); it is the training "
                f"data of {who}, which lost the way back to it."
            )
    if refusals:
        raise VacuumRefusedError(
            f"Nothing was deleted: {len(refusals)} protected version(s) of {found.uri} can no "
            "longer be read. Check the model versions named (mlflow-lineage check NAME "
            "VERSION), retrain or re-register them on data that exists, then vacuum again.",
            refusals=tuple(refusals),
        )


def _notes(found: Protection, asked: float | None, table_hours: float) -> list[str]:
    notes = []
    if not found.versions:
        notes.append("No model version needs a version of this table: a plain Delta VACUUM.")
    if asked is not None and asked < table_hours:
        notes.append(
            f"The retention ({asked:g} h) is shorter than the table's "
            f"delta.deletedFileRetentionDuration ({table_hours:g} h): time travel to "
            "unprotected versions in that window goes too."
        )
    notes += [
        f"{g.label} ({', '.join(g.why)}) is protected but {g.unknown}: the versions it "
        "needs cannot be told, so none are kept for it."
        for g in found.unknown
    ]
    return notes


def _log_notes(found: Protection, current: Any) -> list[str]:
    """What log clean-up will take of the protected versions: vacuum keeps files, not logs."""
    from lineage_plugin.delta.retention import retention_risks
    from lineage_plugin.queries.times import format_time

    report = retention_risks(found.uri, found.versions, kinds=("log",), current=current)
    return [
        f"v{r.version} is kept, but {r.detail}, from {format_time(r.at)}: this vacuum "
        "keeps its files, not its log; raise delta.logRetentionDuration to keep it readable."
        for r in report.risks
        if r.kind == "log"
    ]


def _spark_hours(uri: str, asked: float | None, settings: Any, protected: list[int]) -> float:
    from lineage_plugin.delta import vacuum as engine_vacuum
    from lineage_plugin.delta.log import latest_version, resolve

    hours = settings.file_retention_hours if asked is None else asked
    if not protected or protected[0] >= latest_version(uri):
        return hours
    replaced_at = resolve(uri, protected[0] + 1).commit.timestamp
    return engine_vacuum.spark_retention_hours(hours, replaced_at, int(time.time() * 1000))


def _spark_note(protected: list[int], hours: float) -> str:
    if not protected:
        return f"Spark VACUUM with a retention of {hours:g} h."
    return (
        f"Spark's VACUUM cannot keep chosen versions: it keeps everything from v{protected[0]} "
        f"(the oldest protected version) on, with a retention of {hours:g} h."
    )


def _list(
    uri: str, asked: float | None, keep: list[int], spark_hours: float | None, current: Any
) -> list[str]:
    from lineage_plugin.delta import vacuum as engine_vacuum

    if spark_hours is not None:
        return engine_vacuum.spark_vacuum(uri, retention_hours=spark_hours, dry_run=True)
    return engine_vacuum.deltalake_vacuum(
        uri, retention_hours=asked, keep_versions=keep, dry_run=True, table=current
    )


def _delete(plan: VacuumPlan, keep: list[int]) -> list[str]:
    from lineage_plugin.delta import vacuum as engine_vacuum

    if plan.engine == "spark":  # Spark's VACUUM tells no file names: those it just listed
        hours = plan.spark_retention_hours or 0
        listed = engine_vacuum.spark_vacuum(plan.uri, retention_hours=hours, dry_run=True)
        engine_vacuum.spark_vacuum(plan.uri, retention_hours=hours, dry_run=False)
        return listed
    note = {"mlflow_lineage.vacuum.kept_versions": ",".join(map(str, keep))}
    return engine_vacuum.deltalake_vacuum(
        plan.uri,
        retention_hours=plan.retention_hours,
        keep_versions=keep,
        dry_run=False,
        note=note,
        table=plan.table,
    )
