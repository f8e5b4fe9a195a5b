"""Live OpenLineage: a captured run sends ``START`` as it starts and ``COMPLETE``, ``FAIL`` or
``ABORT`` as it ends.

On when OpenLineage is configured the way ``openlineage-python`` looks for its configuration:
``OPENLINEAGE_URL``, an ``openlineage.yml`` (named by ``OPENLINEAGE_CONFIG``, in the working
directory, or in ``~/.openlineage/``) or ``OPENLINEAGE__TRANSPORT__TYPE``, for any of its
transports. ``MLFLOW_LINEAGE_OPENLINEAGE=false`` keeps it off, ``=true`` turns it on wherever the
client finds a configuration (printing the events when it finds none); the client's own
``OPENLINEAGE_DISABLED=true`` turns it off too. Until then, nothing here imports the client.

The events are sent from the process that runs the code, by the hooks on ``MlflowClient``
(``create_run``, ``set_terminated``, ``update_run``; ``mlflow.start_run``/``end_run`` go
through them): there the configuration, the entry point and the run's reads are known. A
``mlflow server`` with a ``lineage+`` backend sends nothing; its clients do. Each event is
built from the run as MLflow holds it (:func:`~lineage_plugin.openlineage.events.run_event`,
the code ``export`` uses).

Sending never breaks the run: the run waits at most ``MLFLOW_LINEAGE_OPENLINEAGE_TIMEOUT``
seconds (default 2) for each event; an event that fails or takes longer is a
:class:`~lineage_plugin.errors.LineageWarning` and a ``lineage.openlineage`` tag on the run
(``failed: START: <reason>``), and with ``MLFLOW_LINEAGE_STRICT=true`` an
:class:`~lineage_plugin.errors.OpenLineageError`.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import warnings
from typing import Any

from lineage_plugin import settings
from lineage_plugin import tags as T
from lineage_plugin.errors import LineageWarning, OpenLineageError
from lineage_plugin.openlineage import TERMINAL_EVENT_TYPES, MlflowRunFacts, client_kit, run_event

_logger = logging.getLogger(__name__)

INSTALL_HINT = "pip install 'mlflow-delta-lineage[openlineage]'"
_REASON_LIMIT = 500

_lock = threading.Lock()
#: The process's client, with the configuration it was made for.
_client: tuple[tuple[Any, ...], Any] | None = None
#: Run id -> the events of the run not sent so far (``START: reason``), for its tag.
_failures: dict[str, list[str]] = {}


def configuration() -> str | None:
    """What turns OpenLineage emission on, or ``None`` when it is off.

    Returns:
        ``OPENLINEAGE_URL``, the path of the ``openlineage.yml`` found,
        ``OPENLINEAGE__TRANSPORT__TYPE`` or ``MLFLOW_LINEAGE_OPENLINEAGE``; ``None`` when none
        is set, or when ``MLFLOW_LINEAGE_OPENLINEAGE=false`` or ``OPENLINEAGE_DISABLED=true``.
    """
    choice = settings.openlineage_choice()
    if choice is False or os.environ.get("OPENLINEAGE_DISABLED", "").strip().lower() == "true":
        return None
    if os.environ.get("OPENLINEAGE_URL", "").strip():
        return "OPENLINEAGE_URL"
    found = config_file()
    if found is not None:
        return found
    if os.environ.get("OPENLINEAGE__TRANSPORT__TYPE", "").strip():
        return "OPENLINEAGE__TRANSPORT__TYPE"
    return settings.OPENLINEAGE_ENV if choice else None


def config_file() -> str | None:
    """The ``openlineage.yml`` the client reads: ``OPENLINEAGE_CONFIG``, else the one in the
    working directory, else ``~/.openlineage/openlineage.yml``; ``None`` when there is none."""
    try:
        here = os.path.join(os.getcwd(), "openlineage.yml")
    except OSError:  # the working directory was removed
        here = None
    home = os.path.join(os.path.expanduser("~/.openlineage"), "openlineage.yml")
    for path in (os.environ.get("OPENLINEAGE_CONFIG"), here, home):
        if path and os.path.isfile(path):
            return path
    return None


def run_started(client: Any, run_id: str) -> None:
    """Send the ``START`` event of a run just created (when OpenLineage is configured).

    Args:
        client: The ``MlflowClient`` that created it (the run is read and tagged through it).
        run_id: The run.

    Raises:
        OpenLineageError: The event could not be sent and ``MLFLOW_LINEAGE_STRICT`` is on.
    """
    _emit(client, run_id, "START")


def run_ended(client: Any, run_id: str, status: str | None) -> None:
    """Send the event that ends a run: ``COMPLETE``, ``FAIL`` or ``ABORT`` for MLflow's
    ``FINISHED``, ``FAILED`` or ``KILLED`` (any other status sends nothing).

    A run that fails while an exception is being handled (``with mlflow.start_run():`` left by
    an exception) carries it in the ``errorMessage`` facet.

    Raises:
        OpenLineageError: The event could not be sent and ``MLFLOW_LINEAGE_STRICT`` is on.
    """
    kind = TERMINAL_EVENT_TYPES.get(str(status or "FINISHED").upper())
    if kind is None:
        return
    try:
        _emit(client, run_id, kind, error=sys.exc_info()[1] if kind == "FAIL" else None)
    finally:
        with _lock:
            _failures.pop(run_id, None)


def openlineage_client() -> Any:
    """The process's ``OpenLineageClient``, made again when its configuration changed.

    Raises:
        ImportError: ``openlineage-python`` is not installed.
    """
    global _client
    from openlineage.client import OpenLineageClient

    with _lock:
        if _client is None or _client[0] != _fingerprint():
            made = OpenLineageClient()
            # The client copies OPENLINEAGE_URL into OPENLINEAGE__ variables as it starts:
            # remember the environment it leaves, or every run would make a new one.
            _client = (_fingerprint(), made)
        return _client[1]


def _fingerprint() -> tuple[Any, ...]:
    path = config_file()
    try:
        changed = os.stat(path).st_mtime_ns if path else None
    except OSError:
        changed = None
    env = tuple(sorted((k, v) for k, v in os.environ.items() if k.startswith("OPENLINEAGE")))
    return path, changed, env


def _emit(client: Any, run_id: str, kind: str, error: BaseException | None = None) -> None:
    if configuration() is None:
        return
    try:
        sender = openlineage_client()
    except ImportError:
        reason = f"openlineage-python is not installed ({INSTALL_HINT})"
    except Exception as exc:  # a configuration the client refuses
        reason = f"the OpenLineage client could not be set up ({_describe(exc)})"
    else:
        try:
            run = client.get_run(run_id)
            record = T.run_lineage_from_tags(run_id, run.data.tags)
            facts = MlflowRunFacts.of(run.info)
            event = run_event(record, facts, event_type=kind, error=error, kit=client_kit())
        except Exception as exc:
            reason = f"the event could not be built ({_describe(exc)})"
        else:
            reason = _send(sender, event, f"{kind} event of run {run_id}")
    if reason is not None:
        _failed(client, run_id, kind, reason)


def _send(sender: Any, event: Any, what: str) -> str | None:
    """Emit ``event`` in a worker thread, waiting at most the timeout; the failure, or None."""
    timeout = settings.openlineage_timeout()
    outcome: dict[str, Any] = {}
    guard = threading.Lock()

    def deliver() -> None:
        try:
            sender.emit(event)
        except Exception as exc:
            outcome["error"] = _describe(exc)
        with guard:
            outcome["finished"] = True
            late = outcome.get("late", False)
        if late:  # the run went on without it: say what became of it
            error = outcome.get("error")
            if error:
                _logger.warning("mlflow-delta-lineage: the OpenLineage %s failed: %s", what, error)
            else:
                _logger.info("mlflow-delta-lineage: the OpenLineage %s was sent late", what)

    worker = threading.Thread(target=deliver, name="mlflow-lineage-openlineage", daemon=True)
    worker.start()
    worker.join(timeout)
    with guard:
        if not outcome.get("finished"):
            outcome["late"] = True
            return (
                f"not sent within {timeout:g} s ({settings.OPENLINEAGE_TIMEOUT_ENV}); "
                "still trying in the background"
            )
    return outcome.get("error")


def _failed(client: Any, run_id: str, kind: str, reason: str) -> None:
    reason = reason[:_REASON_LIMIT]
    message = f"mlflow-delta-lineage: the OpenLineage {kind} event of run {run_id} was not sent: "
    message += reason
    with _lock:
        notes = _failures.setdefault(run_id, [])
        notes.append(f"{kind}: {reason}")
        value = "failed: " + "; ".join(notes)
    try:
        client.set_tag(run_id, T.OPENLINEAGE, value[: T.run_tag_value_limit()])
    except Exception as exc:
        message += f" (and the run could not be tagged {T.OPENLINEAGE}: {_describe(exc)})"
    if settings.strict():
        raise OpenLineageError(message)
    warnings.warn(message, LineageWarning, stacklevel=4)


def _describe(exc: BaseException) -> str:
    text = " ".join(f"{type(exc).__name__}: {exc}".split())
    return text[:_REASON_LIMIT]
