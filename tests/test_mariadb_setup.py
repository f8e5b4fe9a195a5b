"""The MariaDB server the tests start: finding its binaries, and each test's own database."""

from __future__ import annotations

import pytest
from mariadb import MariadbUnavailable, find_binaries


def fake_binaries(directory, *names):
    directory.mkdir(parents=True, exist_ok=True)
    for name in names:
        (directory / name).write_text("#!/bin/sh\n")
        (directory / name).chmod(0o755)
    return directory


def test_mariadb_names_come_before_the_mysql_ones(tmp_path):
    on_path = fake_binaries(tmp_path / "bin", "mysqld", "mariadbd", "mysql_install_db")
    fake_binaries(tmp_path / "bin", "mariadb-install-db")
    server, install = find_binaries(str(on_path), str(tmp_path / "sbin"))
    assert (server, install) == (on_path / "mariadbd", on_path / "mariadb-install-db")


def test_the_server_is_found_in_sbin_outside_path(tmp_path):
    on_path = fake_binaries(tmp_path / "bin", "mysql_install_db")
    sbin = fake_binaries(tmp_path / "sbin", "mysqld")
    assert find_binaries(str(on_path), str(sbin)) == (sbin / "mysqld", on_path / "mysql_install_db")


@pytest.mark.parametrize("present", [("mariadbd",), ("mariadb-install-db",), ()])
def test_missing_binaries_say_how_to_install_them(tmp_path, present):
    fake_binaries(tmp_path / "bin", *present)
    with pytest.raises(
        MariadbUnavailable, match=r"Run \.ci/run, or: apt-get install -y mariadb-server"
    ):
        find_binaries(str(tmp_path / "bin"), str(tmp_path / "sbin"))


def test_each_test_gets_a_database_of_its_own_migrated_by_mlflow(mariadb, mariadb_uri):
    import sqlalchemy as sa

    assert mariadb_uri.startswith(f"mysql+pymysql://root@127.0.0.1:{mariadb.port}/test_")
    name = mariadb_uri.rsplit("/", 1)[1]
    engine = sa.create_engine(mariadb_uri)
    try:
        with engine.connect() as conn:
            inspector = sa.inspect(conn)
            tables = set(inspector.get_table_names())
            assert conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()
            experiments = conn.execute(sa.text("SELECT experiment_id, name FROM experiments"))
            experiments = [tuple(row) for row in experiments]
            keys = inspector.get_foreign_keys("model_versions")
    finally:
        engine.dispose()
    assert {"runs", "model_versions", "registered_model_aliases"} <= tables
    assert not {t for t in tables if t.startswith("lineage_")}  # the plugin makes its own
    assert experiments == [(0, "Default")]  # id 0, not the next AUTO_INCREMENT value
    assert {k["referred_table"] for k in keys} == {"registered_models"}
    # The copy is MLflow's migrated schema: the same tables, foreign keys and triggers.
    count = (
        "SELECT (SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = '{0}'), "
        "(SELECT COUNT(*) FROM information_schema.referential_constraints "
        "WHERE constraint_schema = '{0}'), "
        "(SELECT COUNT(*) FROM information_schema.triggers WHERE trigger_schema = '{0}')"
    )
    template = mariadb.query(count.format("mlflow_template"))[0]
    assert mariadb.query(count.format(name))[0] == template
    assert template[1] > 0


def test_a_database_is_dropped_after_its_test_even_while_connected(mariadb):
    import sqlalchemy as sa

    with mariadb.database() as url:
        engine = sa.create_engine(url)
        conn = engine.connect()
        conn.execute(sa.text("SELECT COUNT(*) FROM runs FOR UPDATE"))  # a transaction, locks
    name = url.rsplit("/", 1)[1]
    assert not mariadb.query(f"SHOW DATABASES LIKE '{name}'")
    engine.dispose()


def test_an_empty_database_has_no_tables(mariadb):
    with mariadb.database(migrated=False) as url:
        assert not mariadb.query("SHOW TABLES", database=url.rsplit("/", 1)[1])
