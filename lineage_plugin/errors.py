"""One exception hierarchy for the whole plugin.

Every error the plugin raises on purpose is a :class:`LineageError`; the CLI turns them into
clean messages and exit codes at its boundary.
"""

from __future__ import annotations


class LineageError(Exception):
    """Base class of every error raised by mlflow-delta-lineage.

    Attributes:
        exit_code: The CLI's exit code for it (2: bad input or a refused operation).
        refusals: Why an operation refused, one reason per line (``--json`` lists them).
        go_ahead: The CLI options that would let the refused operation go ahead (for
            example ``("--allow-undo-deletes",)``); empty when no option would.
    """

    exit_code = 2
    refusals: tuple[str, ...] = ()
    go_ahead: tuple[str, ...] = ()


class UnsupportedURIError(LineageError):
    """A ``lineage+`` URI names a backend the plugin cannot wrap."""


class CaptureError(LineageError):
    """Lineage of a read could not be captured (raised only when strict mode is on)."""


class TableNotFoundError(CaptureError):
    """The path or URI is not a Delta table, or the table does not exist."""


class DeltaLogError(CaptureError):
    """The table's ``_delta_log`` could not be read or parsed."""


class AmbiguousRunError(CaptureError):
    """A read happened in a thread with no active run while several runs were active."""


class OpenLineageError(LineageError):
    """An OpenLineage event of a run could not be sent (raised only when strict mode is on)."""


class LineageNotFoundError(LineageError):
    """The model version or run has no lineage record."""


class DamagedRecordError(LineageError, ValueError):
    """A lineage record in MLflow cannot be read: a ``lineage.*`` tag that is not JSON, or not
    the shape the plugin writes (written or edited by another client). A ``ValueError`` too, as
    the JSON errors it replaces were."""


class RestoreRefusedError(LineageError):
    """A restore was refused; the tables were left exactly as they were.

    Attributes:
        plan: The :class:`~lineage_plugin.recovery.plan.RestorePlan` that refused, when known.
    """

    def __init__(
        self,
        message: str,
        plan: object | None = None,
        *,
        refusals: tuple[str, ...] = (),
        go_ahead: tuple[str, ...] = (),
    ) -> None:
        super().__init__(message)
        self.plan = plan
        self.refusals = tuple(refusals)
        self.go_ahead = tuple(go_ahead)


class ConcurrentCommitError(RestoreRefusedError):
    """A table moved on between the plan the operator approved and the restore."""


class VacuumRefusedError(LineageError):
    """A vacuum was refused (a protected version is already unreadable); nothing was deleted."""

    def __init__(self, message: str, *, refusals: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.refusals = tuple(refusals)


class OperationCancelledError(LineageError):
    """The operator answered no; nothing was written."""


class OperationInterruptedError(LineageError):
    """The operator pressed Ctrl-C; the message says what state everything was left in."""

    exit_code = 130


class VerificationError(LineageError):
    """A reproduction could not be judged (no run recorded, no model logged, no data)."""


class LineageWarning(UserWarning):
    """A read's lineage could not be captured; the run goes on, tagged incomplete."""
