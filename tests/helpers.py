"""Helpers shared by the tests."""

from __future__ import annotations

import contextlib
import json
import os
import pty
import subprocess
import sys
import threading
from collections.abc import Iterator
from typing import Any

import mlflow


def read_pandas(table: Any) -> Any:
    """Read a local DeltaTable through a native pyarrow file system.

    deltalake's default (Rust object-store) file system makes the process abort at exit in this
    environment (see the README); the native one does not, and the read is still hooked.
    """
    import pyarrow.fs as pafs

    path = table.table_uri.removeprefix("file://").rstrip("/")
    return table.to_pandas(filesystem=pafs.SubTreeFileSystem(path, pafs.LocalFileSystem()))


def lineage_tags(run_id: str) -> dict[str, str]:
    """The ``lineage.*`` tags of a run."""
    tags = mlflow.get_run(run_id).data.tags
    return {k: v for k, v in tags.items() if k.startswith("lineage.")}


_MLFLOW_STATE_VARS = (
    "MLFLOW_EXPERIMENT_ID",
    "MLFLOW_EXPERIMENT_NAME",
    "MLFLOW_TRACKING_URI",
    "MLFLOW_REGISTRY_URI",
    "MLFLOW_RUN_ID",
)


def child_env(**extra: str) -> dict[str, str]:
    """The environment for a child process: this one's, without MLflow state set by tests."""
    env = {k: v for k, v in os.environ.items() if k not in _MLFLOW_STATE_VARS}
    return {**env, "MLFLOW_DISABLE_TELEMETRY": "true", **extra}


def run_python(*args: str, cwd: Any, timeout: int = 300, **env: str) -> subprocess.CompletedProcess:
    """Run ``python *args`` in a clean child environment (plus ``env``), capturing output."""
    return subprocess.run(
        [sys.executable, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=child_env(**env),
    )


def set_in_commit_timestamp(table_path: str, version: int, timestamp: int) -> None:
    """Give a commit an in-commit timestamp, as Spark writes it (deltalake cannot)."""
    log = os.path.join(table_path, "_delta_log", f"{version:020d}.json")
    with open(log) as fh:
        lines = fh.read().splitlines()
    info = json.loads(lines[0])
    info["commitInfo"]["inCommitTimestamp"] = timestamp
    with open(log, "w") as fh:
        fh.write("\n".join([json.dumps(info), *lines[1:]]) + "\n")


def indexed_events(url: str, name: str) -> list[Any]:
    """The events of model ``name`` in the lineage index at SQLAlchemy ``url``, by event id."""
    import sqlalchemy as sa

    from lineage_plugin.events import RegistryEvent

    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                sa.text("SELECT payload FROM lineage_events WHERE name = :n ORDER BY event_id"),
                {"n": name},
            )
            return [RegistryEvent.from_json(r[0]) for r in rows]
    finally:
        engine.dispose()


@contextlib.contextmanager
def tracking_at(uri: str) -> Iterator[None]:
    """Track and register at ``uri`` with capture on, for the block; state reset after."""
    import lineage_plugin
    from lineage_plugin.tracking.capture import reset_session

    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    reset_session()
    lineage_plugin.autolog()
    try:
        yield
    finally:
        mlflow.set_tracking_uri(None)
        mlflow.set_registry_uri(None)
        reset_session()


@contextlib.contextmanager
def runs_in_other_threads(count: int = 2) -> Iterator[list[str]]:
    """``count`` runs active in other threads for the block (this thread has none); yields
    their run ids."""
    started, release = threading.Barrier(count + 1), threading.Event()
    run_ids: list[str] = []

    def run_in_thread() -> None:
        with mlflow.start_run() as run:
            run_ids.append(run.info.run_id)
            started.wait()
            release.wait()

    threads = [threading.Thread(target=run_in_thread) for _ in range(count)]
    for t in threads:
        t.start()
    started.wait()
    try:
        yield run_ids
    finally:
        release.set()
        for t in threads:
            t.join()


def register_reader(path: str, name: str = "ridge", version: int | None = None) -> str:
    """A run that reads ``path`` (at ``version``), registered as a version of ``name``."""
    from deltalake import DeltaTable
    from mlflow import MlflowClient

    with mlflow.start_run() as run:
        read_pandas(DeltaTable(path, version=version))
    client = MlflowClient()
    if not client.search_registered_models(f"name='{name}'"):
        client.create_registered_model(name)
    mv = client.create_model_version(name, "s3://bucket/model", run_id=run.info.run_id)
    return str(mv.version)


def register_logged_model(run_id: str, name: str) -> str:
    """Register the model a run logged (at the current tracking URI); returns the version."""
    from mlflow import MlflowClient

    client = MlflowClient()
    [model] = client.search_logged_models(
        [client.get_run(run_id).info.experiment_id], f"source_run_id = '{run_id}'"
    )
    return str(mlflow.register_model(model.model_uri, name).version)


def cli_on_terminal(args: list[str], cwd: Any, *, tty: bool = True) -> tuple[int, str, str]:
    """Run ``mlflow-lineage ARGS`` with stderr on a pseudo-terminal (or a pipe): code, stdout,
    stderr."""
    command = [sys.executable, "-c", "from lineage_plugin.cli import main; main()", *args]
    if not tty:
        done = subprocess.run(
            command, cwd=cwd, capture_output=True, text=True, env=child_env(), timeout=300
        )
        return done.returncode, done.stdout, done.stderr
    leader, follower = pty.openpty()
    child = subprocess.Popen(
        command,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=follower,
        env=child_env(COLUMNS="120"),
    )
    os.close(follower)
    chunks: list[bytes] = []

    def drain() -> None:
        while True:
            try:
                data = os.read(leader, 4096)
            except OSError:  # EIO: the child closed the terminal
                return
            if not data:
                return
            chunks.append(data)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    stdout = child.stdout.read().decode() if child.stdout else ""
    code = child.wait(timeout=300)
    reader.join(timeout=10)
    os.close(leader)
    return code, stdout, b"".join(chunks).decode(errors="replace")
