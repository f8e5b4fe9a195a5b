"""The retraining child process of ``reproduce``: its environment, its output, and Ctrl-C.

- The child tracks to the real tracking store (its run and its model are kept there), but
  its model registry is a **scratch** SQLite database in a temporary directory: whatever the
  training script registers itself (``log_model(registered_model_name=...)``) stays out of
  the real registry, which gets a version only when ``reproduce`` is asked to register a
  verified model.
- The child runs in its own session, so a Ctrl-C in the terminal reaches ``reproduce``
  only: it stops the child (SIGTERM, then SIGKILL) and raises
  :class:`~lineage_plugin.errors.OperationInterruptedError`, never a traceback from either
  process.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from lineage_plugin.errors import OperationInterruptedError, VerificationError

#: Seconds the child gets to exit after SIGTERM before it is killed.
STOP_GRACE = 10.0


@contextlib.contextmanager
def scratch_registry() -> Iterator[str]:
    """A registry URI for the child: a SQLite file removed when the block ends."""
    with tempfile.TemporaryDirectory(prefix="lineage-scratch-registry-") as tmp:
        yield f"sqlite:///{os.path.join(tmp, 'registry.db')}"


def child_env(tracking_uri: str, registry_uri: str, original_run: Any) -> dict[str, str]:
    """The child's environment: this one's, tracking to ``tracking_uri`` with capture on,
    registering into ``registry_uri``, in the original run's experiment."""
    from lineage_plugin.settings import AUTOLOG_ENV

    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_RUN_ID",)}
    env.update(
        {
            "MLFLOW_TRACKING_URI": tracking_uri,
            "MLFLOW_REGISTRY_URI": registry_uri,
            AUTOLOG_ENV: "true",
        }
    )
    env.pop("MLFLOW_EXPERIMENT_NAME", None)
    if original_run is not None:
        env["MLFLOW_EXPERIMENT_ID"] = original_run.info.experiment_id
    return env


def run_training(
    argv: list[str],
    cwd: str,
    env: dict[str, str],
    timeout: float | None,
    say: Callable[[str], None],
) -> int:
    """Run the training, relaying its output lines to ``say``; returns its exit code.

    Raises:
        VerificationError: It could not start, or ran past ``timeout`` (it is stopped).
        OperationInterruptedError: Ctrl-C; the child was stopped.
    """
    try:
        child = subprocess.Popen(
            argv,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            start_new_session=True,  # the terminal's Ctrl-C is ours to handle, not the child's
        )
    except OSError as exc:
        message = f"Could not start the training ({shlex.join(argv)}): {exc}"
        raise VerificationError(message) from exc
    output = child.stdout
    assert output is not None

    def relay() -> None:
        for line in output:
            say(f"  | {line.rstrip()}")

    relaying = threading.Thread(target=relay, name="lineage-reproduce-output", daemon=True)
    relaying.start()
    deadline = None if timeout is None else time.monotonic() + timeout
    try:
        while True:
            # Short waits, not one blocking waitpid: Ctrl-C's signal may land on a native
            # thread (polars, tokio), and only the main thread's Python code raises it.
            try:
                return child.wait(timeout=0.25)
            except subprocess.TimeoutExpired:
                if deadline is not None and time.monotonic() > deadline:
                    stop(child)
                    raise VerificationError(
                        f"The training ran longer than {timeout:g} s and was stopped."
                    ) from None
    except KeyboardInterrupt:
        stop(child)
        raise OperationInterruptedError(
            f"Interrupted: the training (process {child.pid}) was stopped before it finished."
        ) from None
    finally:
        relaying.join(timeout=10)


def stop(child: subprocess.Popen[str]) -> None:
    """Stop the child: SIGTERM, then SIGKILL after :data:`STOP_GRACE` seconds."""
    if child.poll() is not None:
        return
    child.terminate()
    try:
        child.wait(timeout=STOP_GRACE)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait()
