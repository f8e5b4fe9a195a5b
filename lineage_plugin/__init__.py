"""mlflow-delta-lineage: link every MLflow model to the exact Delta data it was trained on.

Example:
    >>> import lineage_plugin as lp
    >>> lp.autolog()
    >>> lp.get_lineage("diabetes", 1).inputs

MLflow imports this package at start-up for every user who has the plugin installed (it hosts
the entry points), so nothing is imported here until it is used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lineage_plugin.settings import __version__ as __version__

_EXPORTS = {
    "autolog": "lineage_plugin.tracking.autolog",
    "log_delta_input": "lineage_plugin.api",
    "get_lineage": "lineage_plugin.api",
    "get_run_lineage": "lineage_plugin.api",
    "read_context": "lineage_plugin.tracking.capture",
    "show": "lineage_plugin.queries",
    "diff": "lineage_plugin.queries",
    "impact": "lineage_plugin.queries",
    "upstream": "lineage_plugin.queries",
    "timeline": "lineage_plugin.queries",
    "check": "lineage_plugin.queries",
    "check_all": "lineage_plugin.queries",
    "reindex": "lineage_plugin.queries",
    "check_index": "lineage_plugin.queries",
    "export": "lineage_plugin.queries.export",
    "RegistryEvent": "lineage_plugin.events",
    "plan_restore": "lineage_plugin.recovery.plan",
    "restore": "lineage_plugin.recovery.restore",
    "reproduce": "lineage_plugin.recovery.reproduce",
    "rollback": "lineage_plugin.recovery.rollback",
    "vacuum": "lineage_plugin.recovery.vacuum",
    "VacuumRefusedError": "lineage_plugin.errors",
    "TableRestore": "lineage_plugin.records",
    "Verification": "lineage_plugin.records",
    "RestoreRefusedError": "lineage_plugin.errors",
    "ConcurrentCommitError": "lineage_plugin.errors",
    "VerificationError": "lineage_plugin.errors",
    "DeltaInput": "lineage_plugin.records",
    "Environment": "lineage_plugin.records",
    "CodeVersion": "lineage_plugin.records",
    "RunLineage": "lineage_plugin.records",
    "ModelVersionLineage": "lineage_plugin.records",
    "LineageError": "lineage_plugin.errors",
    "CaptureError": "lineage_plugin.errors",
    "UnsupportedURIError": "lineage_plugin.errors",
    "LineageNotFoundError": "lineage_plugin.errors",
    "OpenLineageError": "lineage_plugin.errors",
    "LineageWarning": "lineage_plugin.errors",
}

__all__ = [
    "CaptureError",
    "ConcurrentCommitError",
    "RestoreRefusedError",
    "TableRestore",
    "Verification",
    "VerificationError",
    "reproduce",
    "restore",
    "rollback",
    "vacuum",
    "VacuumRefusedError",
    "RegistryEvent",
    "check",
    "check_all",
    "check_index",
    "diff",
    "export",
    "impact",
    "plan_restore",
    "reindex",
    "show",
    "timeline",
    "upstream",
    "CodeVersion",
    "DeltaInput",
    "Environment",
    "LineageError",
    "LineageNotFoundError",
    "LineageWarning",
    "ModelVersionLineage",
    "OpenLineageError",
    "RunLineage",
    "UnsupportedURIError",
    "autolog",
    "get_lineage",
    "get_run_lineage",
    "log_delta_input",
    "read_context",
]

if TYPE_CHECKING:
    from lineage_plugin.api import get_lineage, get_run_lineage, log_delta_input
    from lineage_plugin.errors import (
        CaptureError,
        ConcurrentCommitError,
        LineageError,
        LineageNotFoundError,
        LineageWarning,
        OpenLineageError,
        RestoreRefusedError,
        UnsupportedURIError,
        VacuumRefusedError,
        VerificationError,
    )
    from lineage_plugin.events import RegistryEvent
    from lineage_plugin.queries import (
        check,
        check_index,
        diff,
        impact,
        reindex,
        show,
        timeline,
    )
    from lineage_plugin.queries.export import export
    from lineage_plugin.records import (
        CodeVersion,
        DeltaInput,
        Environment,
        ModelVersionLineage,
        RunLineage,
        TableRestore,
        Verification,
    )
    from lineage_plugin.recovery.plan import plan_restore
    from lineage_plugin.recovery.reproduce import reproduce
    from lineage_plugin.recovery.restore import restore
    from lineage_plugin.recovery.rollback import rollback
    from lineage_plugin.recovery.vacuum import vacuum
    from lineage_plugin.tracking.autolog import autolog
    from lineage_plugin.tracking.capture import read_context


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'lineage_plugin' has no attribute '{name}'")
    import importlib

    return getattr(importlib.import_module(module), name)
