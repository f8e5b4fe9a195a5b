"""``check --all``: is the way back still there for every model version in use, and how long?

The model versions in use are the ones ``vacuum`` protects (:mod:`.protected`): an alias, the
Staging or Production stage, the ``keep_newest`` newest of each model, ``lineage.protect``;
and the table versions upstream of theirs. For each protected table version it says whether it
can be read now and when a plain VACUUM or log clean-up, with the table's own settings, can make
it unreadable (:mod:`lineage_plugin.delta.retention`). A risk counts when it falls within
``within_hours`` from now; every foreseeable one is listed with its date.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from lineage_plugin.queries.protected import KEEP_NEWEST, Guard, guards, protections
from lineage_plugin.queries.times import json_output
from lineage_plugin.queries.workspace import Workspace

#: How far ahead a risk counts by default: three days (run the check daily, and there are
#: three days to act).
WITHIN_HOURS = 72.0


def risks_of(
    versions_by_uri: Mapping[str, Iterable[int]], *, now_ms: int, within_hours: float
) -> dict[str, dict[str, Any]]:
    """The retention risks of some versions of some tables, as JSON by URI.

    Returns:
        URI -> ``{"risks": [...], "settings": {...}}`` or ``{"skipped": why}``; each risk has
        ``due`` (it falls within ``within_hours``).
    """
    from lineage_plugin.delta.retention import retention_risks

    out: dict[str, dict[str, Any]] = {}
    for uri, versions in versions_by_uri.items():
        report = retention_risks(uri, versions)
        if report.skipped is not None or report.settings is None:
            out[uri] = {"skipped": report.skipped}
            continue
        out[uri] = {
            "settings": vars(report.settings).copy(),
            "risks": [{**r.to_dict(), "due": r.due(now_ms, within_hours)} for r in report.risks],
        }
    return out


@dataclass(frozen=True, kw_only=True)
class CheckAllReport:
    """The state of the data behind every model version in use.

    Attributes:
        within_hours: How far ahead a risk counts.
        model_versions: The model versions checked (``name``, ``version``, ``why``).
        tables: One entry per table: ``uri``, its ``settings`` (or ``skipped``), and
            ``versions``: each protected version with ``protected_by``, ``unreadable``
            (reasons it cannot be read now) and ``risks``.
        unknown: Model versions in use whose lineage record cannot be read (not checked).
    """

    within_hours: float
    model_versions: tuple[dict[str, Any], ...]
    tables: tuple[dict[str, Any], ...]
    unknown: tuple[dict[str, Any], ...]

    def _versions(self) -> list[dict[str, Any]]:
        return [v for t in self.tables for v in t["versions"]]

    @property
    def unreadable(self) -> int:
        """How many protected table versions cannot be read now."""
        return sum(1 for v in self._versions() if v["unreadable"])

    @property
    def at_risk(self) -> int:
        """How many readable protected table versions a clean-up can take within the window."""
        return sum(
            1 for v in self._versions() if not v["unreadable"] and any(r["due"] for r in v["risks"])
        )

    @property
    def ok(self) -> bool:
        """True when every protected version is readable and none is at risk."""
        return not self.unreadable and not self.at_risk

    def to_dict(self) -> dict[str, Any]:
        """The documented JSON of ``check --all --json``."""
        return json_output(
            {
                "ok": self.ok,
                "within_hours": self.within_hours,
                "unreadable": self.unreadable,
                "at_risk": self.at_risk,
                "model_versions": list(self.model_versions),
                "tables": list(self.tables),
                "unknown": list(self.unknown),
            }
        )


def check_all(
    *,
    within_hours: float = WITHIN_HOURS,
    keep_newest: int = KEEP_NEWEST,
    tracking_uri: str | None = None,
) -> CheckAllReport:
    """Check the data of every model version in use: readable now, and for how long.

    Args:
        within_hours: A risk counts when the clean-up can happen within this many hours.
        keep_newest: How many of each model's newest versions are in use (as for ``vacuum``).
        tracking_uri: Where MLflow is (default: MLflow's tracking URI).

    Returns:
        A :class:`CheckAllReport`; ``ok`` is False when a protected table version cannot be
        read, or a plain VACUUM or log clean-up can take it within ``within_hours``.

    Raises:
        LineageError: ``within_hours`` or ``keep_newest`` is negative.
        IndexUnavailableError: The lineage index (for the upstream graph) cannot be opened.

    Example:
        >>> report = check_all(within_hours=24)
        >>> report.ok, report.at_risk
    """
    from lineage_plugin.delta.readability import check_version_readable
    from lineage_plugin.errors import LineageError

    if within_hours < 0:
        raise LineageError(f"--within must be 0 or more, not {within_hours:g} hours.")
    ws = Workspace(tracking_uri)
    in_use = guards(ws, keep_newest=keep_newest)
    found = protections(ws, in_use)
    ids = _table_ids(in_use)
    now = int(time.time() * 1000)
    risks = risks_of(
        {uri: p.versions for uri, p in found.items()}, now_ms=now, within_hours=within_hours
    )
    tables = []
    for uri, protection in found.items():
        by_version: dict[int, list[dict[str, Any]]] = defaultdict(list)
        for risk in risks[uri].get("risks", ()):
            by_version[risk["version"]].append(risk)
        versions = [
            {
                "version": version,
                "protected_by": protection.kept(version),
                "unreadable": check_version_readable(uri, version, table_id=ids.get(uri)),
                "risks": by_version[version],
            }
            for version in sorted(protection.versions)
        ]
        about = {k: v for k, v in risks[uri].items() if k != "risks"}  # settings or skipped
        tables.append({"uri": uri, **about, "versions": versions})
    return CheckAllReport(
        within_hours=within_hours,
        model_versions=tuple(g.to_dict() for g in in_use if not g.unknown),
        tables=tuple(tables),
        unknown=tuple({**g.to_dict(), "problem": g.unknown} for g in in_use if g.unknown),
    )


def _table_ids(in_use: Iterable[Guard]) -> dict[str, str]:
    """URI -> the table id the guards recorded there (to tell a re-created table)."""
    return {i.uri: i.table_id for g in in_use for i in g.inputs if i.table_id}
