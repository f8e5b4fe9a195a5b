"""Finding the PostgreSQL server binaries the tests start their server with."""

from __future__ import annotations

import pytest
from postgres import PostgresUnavailable, find_bin_dir


def fake_binaries(directory):
    directory.mkdir(parents=True)
    for name in ("initdb", "pg_ctl"):
        (directory / name).write_text("#!/bin/sh\n")
        (directory / name).chmod(0o755)
    return directory


def test_binaries_on_path_come_first(tmp_path):
    on_path = fake_binaries(tmp_path / "path")
    fake_binaries(tmp_path / "debian" / "16" / "bin")
    assert find_bin_dir(str(on_path), str(tmp_path / "debian")) == on_path


def test_else_the_newest_debian_version(tmp_path):
    for version in ("9", "15", "16"):
        fake_binaries(tmp_path / "debian" / version / "bin")
    (tmp_path / "debian" / "17" / "bin").mkdir(parents=True)  # a leftover without binaries
    found = find_bin_dir(str(tmp_path / "empty"), str(tmp_path / "debian"))
    assert found == tmp_path / "debian" / "16" / "bin"


def test_missing_binaries_say_how_to_install_them(tmp_path):
    with pytest.raises(
        PostgresUnavailable, match=r"Run \.ci/run, or: apt-get install -y postgresql"
    ):
        find_bin_dir(str(tmp_path), str(tmp_path / "debian"))


def test_each_test_gets_a_database_of_its_own_migrated_by_mlflow(postgres, postgres_uri):
    import sqlalchemy as sa

    assert postgres_uri.startswith(f"postgresql://postgres@127.0.0.1:{postgres.port}/test_")
    engine = sa.create_engine(postgres_uri)
    try:
        with engine.connect() as conn:
            tables = set(sa.inspect(conn).get_table_names())
            assert conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()
    finally:
        engine.dispose()
    assert {"runs", "model_versions", "registered_model_aliases"} <= tables
    assert not {t for t in tables if t.startswith("lineage_")}  # the plugin makes its own
