"""A real PostgreSQL server for the test session (Debian's ``postgresql`` package).

The cluster is made with ``initdb`` in a temporary directory and served by ``pg_ctl`` on a free
loopback port, its unix socket in the same directory. PostgreSQL refuses to run as root, so
under root the cluster belongs to the ``postgres`` user (or ``nobody``) and the server binaries
run as that user through ``runuser``. Each test gets a database of its own, copied from a
template that MLflow has already migrated.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sql_server import TEMPLATE, ServerUnavailable, SqlServer, migrate_mlflow, serve

INSTALL_HINT = (
    "PostgreSQL server binaries (initdb, pg_ctl) were not found on PATH or in "
    "/usr/lib/postgresql/*/bin. Run .ci/run, or: apt-get install -y postgresql"
)
DEBIAN_ROOT = "/usr/lib/postgresql"
#: The SQL backends the store and index tests run on, as the dialect (and driver) of the URL:
#: MLflow's SQLite file, PostgreSQL with a plain and a driver-qualified URL, and MariaDB
#: (tests/mariadb.py) through PyMySQL.
SQL_BACKENDS = ("sqlite", "postgresql", "postgresql+psycopg2", "mysql+pymysql")
#: One of each server: SQLite, PostgreSQL and MariaDB.
SERVER_KINDS = ("sqlite", "postgresql", "mysql+pymysql")


def on_backends(*backends: str) -> pytest.MarkDecorator:
    """Run a test once per backend (default :data:`SQL_BACKENDS`), each with a fresh
    ``backend_uri`` (the conftest fixture)."""
    return pytest.mark.parametrize("backend_uri", backends or SQL_BACKENDS, indirect=True)


class PostgresUnavailable(ServerUnavailable):
    """No PostgreSQL server binaries on this machine."""


def find_bin_dir(search_path: str | None = None, debian_root: str = DEBIAN_ROOT) -> Path:
    """The directory holding ``initdb`` and ``pg_ctl``: from PATH, else Debian's layout
    (``<debian_root>/<major version>/bin``, the newest).

    Raises:
        PostgresUnavailable: Neither has them.
    """
    on_path = [shutil.which(name, path=search_path) for name in ("initdb", "pg_ctl")]
    if all(on_path):
        return Path(os.path.realpath(on_path[0])).parent
    found = [
        Path(p).parent
        for p in glob.glob(os.path.join(debian_root, "*", "bin", "pg_ctl"))
        if Path(p).parents[1].name.isdigit() and os.access(Path(p).parent / "initdb", os.X_OK)
    ]
    if found:
        return max(found, key=lambda d: int(d.parent.name))
    raise PostgresUnavailable(INSTALL_HINT)


def _server_user() -> str | None:
    """Who runs the server: ``None`` (this user) unless we are root."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            continue
    raise PostgresUnavailable("Running as root, and there is no 'postgres' or 'nobody' user.")


class PostgresServer(SqlServer):
    """A running PostgreSQL cluster; ``superuser`` connects over TCP without a password."""

    superuser = "postgres"
    dialect = "postgresql"

    def __init__(self, root: Path, port: int, bin_dir: Path, user: str | None) -> None:
        super().__init__(root, port, user)
        self.bin_dir = bin_dir

    def start(self) -> None:
        data = str(self.root / "data")
        self.run(self.bin_dir / "initdb", "-D", data, "-U", self.superuser, "--auth=trust",
                 "-E", "UTF8", "--no-sync", "--locale=C")  # fmt: skip
        # Durability is not under test: no fsync keeps CREATE DATABASE and commits fast.
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.root} -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c max_connections=300"
        )
        self.run(self.bin_dir / "pg_ctl", "-D", data, "-l", str(self.root / "server.log"),
                 "-o", options, "-w", "-t", "60", "start")  # fmt: skip

    def stop(self) -> None:
        self.run(self.bin_dir / "pg_ctl", "-D", str(self.root / "data"), "-m", "immediate",
                 "-w", "stop")  # fmt: skip

    def execute(self, *statements: str, database: str = "postgres") -> None:
        """Run statements outside a transaction (as CREATE/DROP DATABASE need)."""
        import psycopg2

        conn = psycopg2.connect(self.url(database))
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                for statement in statements:
                    cur.execute(statement)
        finally:
            conn.close()

    def make_template(self) -> None:
        """A database with every MLflow migration applied, for :meth:`new_database` to copy."""
        self.execute(f"CREATE DATABASE {TEMPLATE}")
        migrate_mlflow(self.url(TEMPLATE), self.root / "template-artifacts")
        # MLflow keeps its engines (and their pooled connections) for the process's lifetime;
        # a database is copied only while no one is connected to it.
        self.execute(
            f"ALTER DATABASE {TEMPLATE} WITH ALLOW_CONNECTIONS false IS_TEMPLATE true",
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            f"WHERE datname = '{TEMPLATE}' AND pid <> pg_backend_pid()",
        )

    def _create(self, name: str, *, migrated: bool) -> None:
        template = f" TEMPLATE {TEMPLATE}" if migrated else ""
        self.execute(f"CREATE DATABASE {name}{template}")

    def drop_database(self, url: str) -> None:
        """Drop a database made by :meth:`new_database`, closing whatever is connected."""
        self.execute(f"DROP DATABASE IF EXISTS {url.rsplit('/', 1)[1]} WITH (FORCE)")


@contextmanager
def fresh_database(
    request: pytest.FixtureRequest, dialect: str, name: str = "mlflow.db", *, migrated: bool = True
) -> Iterator[str]:
    """A database of its own for a test: a SQLite file ``name`` in ``tmp_path``, or a database
    on the session's PostgreSQL (``postgresql...``) or MariaDB (``mysql...``) server, reached
    with ``dialect``; MLflow-migrated or empty."""
    if dialect != "sqlite":
        server = request.getfixturevalue("mariadb" if dialect.startswith("mysql") else "postgres")
        with server.database(dialect, migrated=migrated) as url:
            yield url
        return
    target = request.getfixturevalue("tmp_path") / name
    if migrated:
        shutil.copyfile(request.getfixturevalue("_migrated_sqlite"), target)
    yield f"sqlite:///{target}"


@contextmanager
def postgres_server(bin_dir: Path | None = None) -> Iterator[PostgresServer]:
    """Start a PostgreSQL cluster with an MLflow template database; stop and remove it after.

    Args:
        bin_dir: Where ``initdb`` and ``pg_ctl`` are (default: :func:`find_bin_dir`).

    Raises:
        PostgresUnavailable: No server binaries on this machine.
    """
    bin_dir = bin_dir or find_bin_dir()
    with serve(PostgresServer, _server_user(), bin_dir, prefix="lineage-pg-") as server:
        yield server
