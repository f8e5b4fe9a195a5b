"""The capture session: collects reads and writes, attaches them to runs, never breaks the
user's run.

Reads inside a run are written to it at once (one ``log_batch`` of tags, one ``log_inputs``
and the manifest artifact), so a crash later in training loses nothing and a model registered
inside the run already sees its lineage. Reads outside a run wait for the next run started in
this process. Writes always name their run (the one whose stamp their commit carries): a write
made with no active run is neither stamped nor recorded (see ``tracking.deltalake_writes``).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import warnings
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass

from lineage_plugin import settings
from lineage_plugin import tags as T
from lineage_plugin.errors import AmbiguousRunError, CaptureError, LineageError, LineageWarning
from lineage_plugin.records import DeltaInput, DeltaOutput
from lineage_plugin.tracking.environment import current_code, current_environment
from lineage_plugin.tracking.reproducing import current_request
from lineage_plugin.tracking.runs import target_run
from lineage_plugin.tracking.writer import RunState, write_run

_logger = logging.getLogger(__name__)

# Set while the plugin itself talks to MLflow, so its own log_inputs is not captured again.
_writing: ContextVar[bool] = ContextVar("lineage_writing", default=False)


@dataclass
class _Pending:
    inp: DeltaInput | None
    reason: str | None
    log_dataset: bool
    out: DeltaOutput | None = None


def run_start_tags() -> dict[str, str]:
    """Environment and code tags for a new run (computed once per process)."""
    tags = {T.SCHEMA: str(T.SCHEMA_VERSION)}
    tags.update(T.environment_tags(current_environment()))
    tags.update(T.code_tags(current_code(), T.run_tag_value_limit()))
    request = current_request()
    if request is not None:
        tags.update(request.run_tags())
    return tags


def is_plugin_writing() -> bool:
    """Whether the current call comes from the plugin's own writes to MLflow."""
    return _writing.get()


@contextlib.contextmanager
def plugin_writing() -> Iterator[None]:
    """Mark MLflow calls made inside the block as the plugin's own."""
    token = _writing.set(True)
    try:
        yield
    finally:
        _writing.reset(token)


class CaptureSession:
    """Per-process collector of reads, keyed by run."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._runs: dict[str, RunState] = {}
        self._pending: list[_Pending] = []

    def record(
        self, inp: DeltaInput, *, run_id: str | None = None, log_dataset: bool = True
    ) -> None:
        """Attach one read to its run (or keep it for the next run)."""
        self._add(_Pending(inp, None, log_dataset), run_id)

    def record_output(self, out: DeltaOutput, *, run_id: str) -> None:
        """Attach one commit the run made (a table version it wrote) to the run."""
        self._add(_Pending(None, None, False, out), run_id)

    def fail(
        self, reason: str, *, run_id: str | None = None, error: type[CaptureError] = CaptureError
    ) -> None:
        """A read could not be captured: warn and mark the run incomplete (strict: raise)."""
        if settings.strict():
            raise error(reason)
        warnings.warn(f"mlflow-delta-lineage: {reason}", LineageWarning, stacklevel=3)
        self._add(_Pending(None, reason, False), run_id)

    def attach_pending(self, run_id: str) -> None:
        """Give the reads made outside any run to ``run_id``, the run just started."""
        with self._lock:
            pending, self._pending = self._pending, []
            for item in pending:
                self._apply(run_id, item)
            if pending:
                self._flush(run_id)

    def run_started(self, run_id: str, tags: dict[str, str]) -> None:
        """A run was created in this process: note what it already carries, attach pending."""
        if T.SCHEMA in tags:  # the run-context provider tagged environment and code already
            with self._lock:
                self._runs.setdefault(run_id, RunState()).env_tagged = True
        self.attach_pending(run_id)

    def _add(self, item: _Pending, run_id: str | None) -> None:
        if run_id is None:
            target = target_run()
            if target.ambiguous_runs:
                what = item.inp.label if item.inp else "a failed read"
                message = (
                    f"{what} was made in a thread without an active run while several runs "
                    f"are active ({', '.join(target.ambiguous_runs)}); it is not recorded. "
                    "Start the run in the reading thread, or pass run_id= to log_delta_input."
                )
                if settings.strict():
                    raise AmbiguousRunError(message)
                warnings.warn(f"mlflow-delta-lineage: {message}", LineageWarning, stacklevel=4)
                return
            run_id = target.run_id
        with self._lock:
            if run_id is None:
                self._pending.append(item)
                return
            if self._apply(run_id, item):
                self._flush(run_id)

    def _apply(self, run_id: str, item: _Pending) -> bool:
        state = self._runs.setdefault(run_id, RunState())
        if item.reason is not None:
            state.reasons.append(item.reason)
            return True
        if item.out is not None:
            if item.out.key in state.output_keys:
                return False
            state.output_keys.add(item.out.key)
            state.outputs.append(item.out)
            return True
        assert item.inp is not None
        if item.inp.key in state.keys:
            return False
        state.keys.add(item.inp.key)
        if not item.log_dataset:
            state.already_datasets.add(len(state.inputs))
        state.inputs.append(item.inp)
        return True

    def flush_unwritten(self, run_id: str) -> None:
        """Write again what a failed write left out (the run is ending, its store is back)."""
        with self._lock:
            state = self._runs.get(run_id)
            if state is not None and state.unwritten:
                self._flush(run_id)

    def _flush(self, run_id: str) -> None:
        state = self._runs[run_id]
        try:
            with plugin_writing():
                write_run(run_id, state)
            state.unwritten = False
        except LineageError:
            raise
        except Exception as exc:  # never break the user's run
            state.unwritten = True  # what was not written stays in state, retried later
            if settings.strict():
                raise CaptureError(f"Could not write lineage to run {run_id}: {exc}") from exc
            warnings.warn(
                f"mlflow-delta-lineage: could not write lineage to run {run_id}: {exc}",
                LineageWarning,
                stacklevel=4,
            )


_session: CaptureSession | None = None
_session_lock = threading.Lock()


def session() -> CaptureSession:
    """The process's capture session (created on first use)."""
    global _session
    with _session_lock:
        if _session is None:
            _session = CaptureSession()
        return _session


def reset_session() -> None:
    """Forget every captured read (pending or attached) in this process."""
    global _session
    with _session_lock:
        _session = None


def capture_read(describe: Callable[[], DeltaInput], *, what: str) -> None:
    """Describe a read and record it; a failure to describe it never breaks the read.

    Args:
        describe: Builds the :class:`DeltaInput` (resolves version, table id, commit info).
        what: A short description of the read for warnings, e.g. ``DeltaTable.to_pandas``.

    Raises:
        CaptureError: Only when ``MLFLOW_LINEAGE_STRICT`` is on.
    """
    try:
        inp = describe()
    except CaptureError as exc:
        session().fail(f"{what}: {exc}", error=type(exc))
        return
    except Exception as exc:
        session().fail(f"{what}: could not describe the read ({type(exc).__name__}: {exc})")
        return
    session().record(inp)


_read_context: ContextVar[str] = ContextVar("lineage_read_context", default="training")


def current_read_context() -> str:
    """The context label of reads made now (``training`` unless :func:`read_context` says)."""
    return _read_context.get()


@contextlib.contextmanager
def read_context(label: str) -> Iterator[None]:
    """Label the reads made inside the block, e.g. ``evaluation``.

    Example:
        >>> with lineage_plugin.read_context("evaluation"):
        ...     test = DeltaTable("/data/holdout").to_pandas()
    """
    token = _read_context.set(label)
    try:
        yield
    finally:
        _read_context.reset(token)
