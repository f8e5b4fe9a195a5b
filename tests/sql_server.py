"""What the test session's SQL servers (tests/postgres.py, tests/mariadb.py) share.

Each is a real server made in a temporary directory and served on a free loopback port for the
session; each test gets a database of its own (copied from a template MLflow has migrated, or
empty), dropped after the test.
"""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

import pytest
from server import free_port

#: The database MLflow migrates once per session, copied for each test.
TEMPLATE = "mlflow_template"


T = TypeVar("T")


class ServerUnavailable(RuntimeError):
    """The server's binaries are not on this machine (the message says how to install them)."""


def binaries_or_fail(find: Callable[[], T]) -> T:
    """``find()``, the server's binaries; when missing, fail the test with the install hint
    (not a skip: CI always has them)."""
    try:
        return find()
    except ServerUnavailable as exc:
        pytest.fail(str(exc), pytrace=False)


class SqlServer:
    """A running server of the session: its directory, port and the user it runs as.

    Subclasses say how to ``start``, ``stop``, make the ``TEMPLATE`` (``make_template``), and
    create and drop a database (``_create``, ``drop_database``).
    """

    #: The account that connects over TCP without a password.
    superuser = "root"
    #: The URL dialect when a caller names none.
    dialect = ""

    def __init__(self, root: Path, port: int, user: str | None) -> None:
        self.root = root
        self.port = port
        self.user = user
        self._names = itertools.count()

    def log_tail(self) -> str:
        """The end of the server's log (``server.log`` in its directory), for error messages."""
        log = self.root / "server.log"
        return log.read_text(errors="replace")[-3000:] if log.exists() else ""

    def run(self, tool: Path, *args: str) -> None:
        """Run a server tool (as ``user`` when set), failing with its output and the log."""
        cmd = [str(tool), *args]
        if self.user is not None:
            cmd = ["runuser", "-u", self.user, "--", *cmd]
        done = subprocess.run(cmd, capture_output=True, text=True, cwd=self.root, timeout=120)
        if done.returncode != 0:
            raise RuntimeError(
                f"{tool.name} failed ({done.returncode}):\n{done.stderr}\n{self.log_tail()}"
            )

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def make_template(self) -> None:
        raise NotImplementedError

    def _create(self, name: str, *, migrated: bool) -> None:
        raise NotImplementedError

    def drop_database(self, url: str) -> None:
        raise NotImplementedError

    def url(self, database: str, dialect: str | None = None) -> str:
        """The SQLAlchemy/MLflow URL of ``database`` (``dialect`` may name a driver)."""
        return f"{dialect or self.dialect}://{self.superuser}@127.0.0.1:{self.port}/{database}"

    def new_database(self, *, dialect: str | None = None, migrated: bool = True) -> str:
        """Create a database of its own for a test; returns its URL.

        Args:
            dialect: The URL's dialect, possibly driver-qualified (default :attr:`dialect`).
            migrated: A copy of the MLflow-migrated template (else empty).
        """
        name = f"test_{os.getpid()}_{next(self._names)}"
        self._create(name, migrated=migrated)
        return self.url(name, dialect)

    @contextmanager
    def database(self, dialect: str | None = None, *, migrated: bool = True) -> Iterator[str]:
        """A database of its own for the block (see :meth:`new_database`), dropped after."""
        url = self.new_database(dialect=dialect, migrated=migrated)
        try:
            yield url
        finally:
            self.drop_database(url)


def migrate_mlflow(url: str, artifacts: Path) -> None:
    """Apply every MLflow migration (tracking and registry) to the database at ``url``."""
    from mlflow.store.model_registry.sqlalchemy_store import SqlAlchemyStore as Registry
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    SqlAlchemyStore(url, str(artifacts))
    Registry(url)


S = TypeVar("S", bound=SqlServer)


@contextmanager
def serve(make: type[S], user: str | None, *args: object, prefix: str) -> Iterator[S]:
    """Make a server in a new temporary directory, start it and its template; stop it and
    remove the directory after.

    Args:
        make: The server class, called with ``(root, port, *args, user)``.
        user: Who runs the server (``None``: this user), the owner of the directory.
        prefix: The temporary directory's name prefix.
    """
    # Not under pytest's tmp dir: that is private to root, and the server may run as another user.
    root = Path(tempfile.mkdtemp(prefix=prefix))
    if user is not None:
        shutil.chown(root, user)
    server = make(root, free_port(), *args, user)
    try:
        server.start()
        try:
            server.make_template()
            yield server
        finally:
            server.stop()
    finally:
        shutil.rmtree(root, ignore_errors=True)
