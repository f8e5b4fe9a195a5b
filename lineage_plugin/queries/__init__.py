"""Lineage queries: ``show``, ``diff``, ``impact``, ``upstream``, ``timeline``, ``check``,
``check_all``, ``export``, ``reindex`` and ``check_index`` (``reindex --check``). Each returns a
typed report whose ``to_dict()`` is the documented ``--json``."""

from __future__ import annotations

from lineage_plugin.queries.at_risk import CheckAllReport, check_all
from lineage_plugin.queries.check import CheckReport, check
from lineage_plugin.queries.diff import DiffReport, diff
from lineage_plugin.queries.impact import ImpactReport, UnknownTableError, impact
from lineage_plugin.queries.index_check import IndexCheck, check_index
from lineage_plugin.queries.reindex import ReindexSummary, reindex
from lineage_plugin.queries.show import ModelVersionReport, show
from lineage_plugin.queries.timeline import Timeline, timeline
from lineage_plugin.queries.times import TimeFormatError, parse_time
from lineage_plugin.queries.upstream import UpstreamReport, upstream
from lineage_plugin.queries.workspace import UnknownModelError, Workspace

__all__ = [
    "CheckAllReport",
    "CheckReport",
    "DiffReport",
    "ImpactReport",
    "IndexCheck",
    "ModelVersionReport",
    "ReindexSummary",
    "TimeFormatError",
    "Timeline",
    "UnknownModelError",
    "UnknownTableError",
    "UpstreamReport",
    "Workspace",
    "check",
    "check_all",
    "check_index",
    "diff",
    "impact",
    "parse_time",
    "reindex",
    "show",
    "timeline",
    "upstream",
]
