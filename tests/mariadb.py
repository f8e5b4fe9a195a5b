"""A real MariaDB server for the test session (Debian's ``mariadb-server`` package).

The data directory is made with ``mariadb-install-db`` (or ``mysql_install_db``) in a temporary
directory and served by ``mariadbd`` (or ``mysqld``) on a free loopback port, its socket in the
same directory, as this user (under root: ``--user=root``). Durability is not under test: no
binary log, no doublewrite, no flush at each commit, no file per table. The character set is
the one MariaDB packages ship with (``utf8mb4``, its case-insensitive default collation), the
isolation level MySQL's default (REPEATABLE READ).

MySQL has no ``CREATE DATABASE ... TEMPLATE``: the template's ``SHOW CREATE`` statements (tables
with their foreign keys and ``AUTO_INCREMENT`` counters, then triggers) are kept once, and each
test's database is made from them and filled with the template's rows (MLflow's
``alembic_version``, default experiment and workspace) - about 0.3 s, where migrating a fresh
database with MLflow takes about 2 s.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sql_server import TEMPLATE, ServerUnavailable, SqlServer, migrate_mlflow, serve

INSTALL_HINT = (
    "MariaDB server binaries (mariadbd, mariadb-install-db) were not found on PATH or in "
    "/usr/sbin. Run .ci/run, or: apt-get install -y mariadb-server"
)
SERVER_NAMES = ("mariadbd", "mysqld")
INSTALL_NAMES = ("mariadb-install-db", "mysql_install_db")
SBIN = "/usr/sbin"


class MariadbUnavailable(ServerUnavailable):
    """No MariaDB server binaries on this machine."""


def find_binaries(search_path: str | None = None, sbin: str = SBIN) -> tuple[Path, Path]:
    """The server (``mariadbd``, else ``mysqld``) and the data directory maker
    (``mariadb-install-db``, else ``mysql_install_db``): from PATH, else from ``sbin``
    (Debian puts the server there, outside a normal user's PATH).

    Raises:
        MariadbUnavailable: Either is missing.
    """
    path = os.pathsep.join(p for p in (search_path or os.environ.get("PATH", ""), sbin) if p)
    found = []
    for names in (SERVER_NAMES, INSTALL_NAMES):
        hits = [hit for hit in (shutil.which(name, path=path) for name in names) if hit]
        if not hits:
            raise MariadbUnavailable(INSTALL_HINT)
        found.append(Path(hits[0]))
    return found[0], found[1]


class MariadbServer(SqlServer):
    """A running MariaDB server; ``root`` connects over TCP without a password."""

    dialect = "mysql+pymysql"
    #: Speed over durability, which is not under test.
    tuning = (
        "--skip-log-bin", "--innodb-doublewrite=0", "--innodb-flush-log-at-trx-commit=0",
        # Tables in the system tablespace: no file made and synced per table (CREATE/DROP
        # DATABASE about twice as fast).
        "--innodb-file-per-table=0",
        # A test that waits on a metadata lock fails within minutes, not a year.
        "--lock-wait-timeout=120",
    )  # fmt: skip

    def __init__(self, root: Path, port: int, binaries: tuple[Path, Path], user: str | None):
        super().__init__(root, port, user)
        self.server_bin, self.install_bin = binaries
        self._proc: subprocess.Popen | None = None
        self._template_ddl: list[str] = []
        self._template_rows: list[str] = []

    @staticmethod
    def _as_user() -> list[str]:
        """``mariadbd`` runs as root only when told so (and the temporary directory is root's)."""
        return ["--user=root"] if os.geteuid() == 0 else []

    def start(self) -> None:
        data = str(self.root / "data")
        self.run(self.install_bin, "--no-defaults", f"--datadir={data}", "--skip-test-db",
                 "--auth-root-authentication-method=normal", "--skip-name-resolve",
                 *self._as_user())  # fmt: skip
        log = self.root / "server.log"
        cmd = [
            str(self.server_bin), "--no-defaults", f"--datadir={data}", *self._as_user(),
            f"--port={self.port}", "--bind-address=127.0.0.1", f"--socket={self.root}/mysql.sock",
            f"--pid-file={self.root}/mariadbd.pid", f"--log-error={log}", "--skip-name-resolve",
            "--character-set-server=utf8mb4", "--max-connections=300", *self.tuning,
        ]  # fmt: skip
        self._proc = subprocess.Popen(
            cmd, cwd=self.root, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                self.execute("SELECT 1")
                return
            except Exception as exc:  # noqa: BLE001 - not accepting connections yet
                if self._proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(
                        f"mariadbd did not start ({exc}):\n{self.log_tail()}"
                    ) from exc
                time.sleep(0.1)

    def stop(self) -> None:
        if self._proc is None:
            return
        self._proc.terminate()
        try:
            self._proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        self._proc = None

    def connect(self, database: str | None = None) -> Any:
        """A PyMySQL connection as ``root``, in autocommit."""
        import pymysql

        return pymysql.connect(
            host="127.0.0.1", port=self.port, user=self.superuser, database=database,
            autocommit=True, charset="utf8mb4",
        )  # fmt: skip

    def query(self, *statements: str, database: str | None = None) -> list[tuple]:
        """Run statements in autocommit on one connection; returns the rows of the last one."""
        conn = self.connect(database)
        try:
            with conn.cursor() as cur:
                rows: list[tuple] = []
                for statement in statements:
                    cur.execute(statement)
                    rows = list(cur.fetchall())
                return rows
        finally:
            conn.close()

    def execute(self, *statements: str, database: str | None = None) -> None:
        """Run statements in autocommit (as CREATE/DROP DATABASE are anyway)."""
        self.query(*statements, database=database)

    def make_template(self) -> None:
        """Migrate the template with MLflow and keep what :meth:`new_database` copies of it."""
        self.execute(f"CREATE DATABASE {TEMPLATE}")
        migrate_mlflow(self.url(TEMPLATE), self.root / "template-artifacts")
        conn = self.connect(TEMPLATE)
        try:
            with conn.cursor() as cur:

                def rows(statement: str) -> list[tuple]:
                    cur.execute(statement)
                    return list(cur.fetchall())

                tables = [t for t, kind in rows("SHOW FULL TABLES") if kind == "BASE TABLE"]
                self._template_ddl = [rows(f"SHOW CREATE TABLE `{t}`")[0][1] for t in tables]
                self._template_ddl += [
                    rows(f"SHOW CREATE TRIGGER `{trigger}`")[0][2]
                    for trigger, *_ in rows("SHOW TRIGGERS")
                ]
                self._template_rows = [
                    f"INSERT INTO `{t}` SELECT * FROM {TEMPLATE}.`{t}`"
                    for t in tables
                    if rows(f"SELECT COUNT(*) FROM `{t}`")[0][0]
                ]
        finally:
            conn.close()

    def _create(self, name: str, *, migrated: bool) -> None:
        self.execute(f"CREATE DATABASE {name}")
        if migrated:
            # Tables in any order (their foreign keys are checked from here on, not now); the
            # default experiment's id 0 copied as 0, not as the next AUTO_INCREMENT value.
            self.execute(
                "SET FOREIGN_KEY_CHECKS=0",
                "SET SESSION sql_mode = CONCAT(@@sql_mode, ',NO_AUTO_VALUE_ON_ZERO')",
                *self._template_ddl, *self._template_rows, database=name,
            )  # fmt: skip

    def drop_database(self, url: str) -> None:
        """Drop a database made by :meth:`new_database`, ending whatever is connected to it
        (an open transaction's metadata lock would make ``DROP DATABASE`` wait)."""
        name = url.rsplit("/", 1)[1]
        for (conn_id,) in self.query(
            "SELECT id FROM information_schema.processlist "
            f"WHERE db = '{name}' AND id <> CONNECTION_ID()"
        ):
            self.execute(f"KILL CONNECTION {int(conn_id)}")
        self.execute(f"DROP DATABASE IF EXISTS {name}")


@contextmanager
def mariadb_server(binaries: tuple[Path, Path] | None = None) -> Iterator[MariadbServer]:
    """Start a MariaDB server with an MLflow template database; stop and remove it after.

    Args:
        binaries: The server and ``mariadb-install-db`` (default: :func:`find_binaries`).

    Raises:
        MariadbUnavailable: No server binaries on this machine.
    """
    binaries = binaries or find_binaries()
    with serve(MariadbServer, None, binaries, prefix="lineage-mariadb-") as server:
        yield server
