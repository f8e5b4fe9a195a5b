"""Start a real ``mlflow server`` process for tests, and stop it."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from helpers import child_env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()


@dataclass
class ServerProcess:
    """A running ``mlflow server``: its URL, and its process group (it starts uvicorn and a job
    runner as children)."""

    url: str
    port: int
    proc: subprocess.Popen

    def kill(self) -> None:
        """SIGKILL the server and its children at once, as a crash would."""
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)


@contextmanager
def mlflow_server_process(
    backend_uri: str,
    workdir: Path,
    *extra: str,
    env: dict[str, str] | None = None,
    workers: int = 1,
    port: int | None = None,
) -> Iterator[ServerProcess]:
    """Run ``mlflow server`` (``workers`` processes) on ``port`` (default: a free loopback
    port) in a process group of its own; yields it (see :class:`ServerProcess`)."""
    port = port or free_port()
    log = open(workdir / f"server-{port}.log", "a")  # noqa: SIM115 - closed below
    cmd = [
        sys.executable, "-m", "mlflow", "server",
        "--backend-store-uri", backend_uri,
        "--artifacts-destination", str(workdir / "artifacts"),
        "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers),
        *extra,
    ]  # fmt: skip
    proc = subprocess.Popen(
        cmd,
        cwd=workdir,
        stdout=log,
        stderr=subprocess.STDOUT,
        env=child_env(**(env or {})),
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            if proc.poll() is not None:
                raise RuntimeError(
                    f"mlflow server exited with {proc.returncode}:\n"
                    + (workdir / f"server-{port}.log").read_text()[-3000:]
                )
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("mlflow server did not become healthy in 90 s")
            time.sleep(0.3)
        yield ServerProcess(url, port, proc)
    finally:
        if proc.poll() is None:
            _stop(proc)
        with contextlib.suppress(ProcessLookupError):  # no child left behind
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()


@contextmanager
def mlflow_server(
    backend_uri: str,
    workdir: Path,
    *extra: str,
    env: dict[str, str] | None = None,
    workers: int = 1,
) -> Iterator[str]:
    """Run ``mlflow server`` (``workers`` processes) on a free loopback port; yields its URL."""
    with mlflow_server_process(backend_uri, workdir, *extra, env=env, workers=workers) as server:
        yield server.url


@contextmanager
def moto_s3(workdir: Path, secret: str = "secret") -> Iterator[dict[str, str]]:
    """moto's S3 server with a bucket ``lake``, in its own process (deltalake holds the GIL
    while it waits on I/O, so a server thread inside the test process would never answer).

    Yields the ``storage_options`` that reach it.
    """
    import boto3

    port = free_port()
    log = workdir / "moto.log"
    with open(log, "w") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    endpoint = f"http://127.0.0.1:{port}"
    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id="key",
        aws_secret_access_key=secret,
        region_name="us-east-1",
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                client.create_bucket(Bucket="lake")
                break
            except Exception:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("moto server did not start:\n" + log.read_text()) from None
                time.sleep(0.3)
        yield {
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_ACCESS_KEY_ID": "key",
            "AWS_SECRET_ACCESS_KEY": secret,
            "AWS_REGION": "us-east-1",
            "AWS_ALLOW_HTTP": "true",
            "AWS_S3_ALLOW_UNSAFE_RENAME": "true",
        }
    finally:
        _stop(server)
