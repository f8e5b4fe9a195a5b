"""Whether a tracking URI names an existing MLflow store, checked before any store is built.

MLflow's stores create what they do not find (a SQLite file and its tables, a store folder),
so a mistyped URI silently becomes a new, empty store. :func:`check_tracking_uri` refuses it
instead, naming the path it looked at and a likely fix; it creates and changes nothing.
"""

from __future__ import annotations

import os

from lineage_plugin.errors import LineageError
from lineage_plugin.store.mlflow_database import (
    SQL_SCHEMES,
    MlflowDatabase,
    MlflowDatabaseError,
    safe_url,
)
from lineage_plugin.store.uris import backend_uri


class TrackingURIError(LineageError):
    """The tracking URI names no MLflow store: a missing file or folder, not MLflow's."""


def check_tracking_uri(tracking_uri: str | None = None, *, origin: str | None = None) -> str:
    """The tracking URI, checked to name an existing MLflow store; nothing is created or changed.

    MLflow's stores create what they do not find (a SQLite file, its tables, a store folder):
    a mistyped URI would silently become a new, empty store. The CLI calls this first.

    Checked: the scheme (plain or ``lineage+``) has a store; a SQLite file exists and holds
    MLflow's tables (read with a read-only connection); another SQL database holds them
    (SQLAlchemy inspection, before MLflow's store would run its migrations); a file store
    folder exists and looks like one. ``http(s):`` and Databricks URIs are left to MLflow.

    Args:
        tracking_uri: A plain or ``lineage+`` tracking URI; ``None`` uses MLflow's.
        origin: Where the URI came from, named in the error (``--tracking-uri``,
            ``MLFLOW_TRACKING_URI``); ``None`` names MLflow's default or the process's.

    Returns:
        The tracking URI checked.

    Raises:
        UnsupportedURIError: No store handles the scheme (the message lists those that do).
        TrackingURIError: The URI names no MLflow store (the message names the path looked
            at, where the URI came from, and a likely fix).

    Example:
        >>> check_tracking_uri("sqlite:///data/mlflow.db", origin="--tracking-uri")
        Traceback (most recent call last):
        lineage_plugin.store.tracking_uri.TrackingURIError: The tracking URI ...
    """
    from urllib.parse import urlparse

    import mlflow

    uri = tracking_uri or mlflow.get_tracking_uri()
    origin = origin or _default_origin()
    backend = backend_uri(uri, origin=origin)
    scheme = urlparse(backend).scheme.split("+", 1)[0].lower()
    if scheme == "sqlite":
        _check_sqlite(uri, backend, f"The tracking URI {uri} (from {origin})")
    elif scheme in SQL_SCHEMES:
        shown = f"The tracking URI {safe_url(uri)} (from {origin})"
        _check_mlflow_tables(backend, shown, safe_url(backend))
    elif len(scheme) <= 1 or scheme == "file":  # a path (C: on Windows) or file:
        _check_file_store(uri, backend, f"The tracking URI {uri} (from {origin})")
    return uri


def _default_origin() -> str:
    from mlflow.tracking._tracking_service.utils import is_tracking_uri_set

    if is_tracking_uri_set():
        return "mlflow.set_tracking_uri in this process"
    return "MLflow's default: neither --tracking-uri nor MLFLOW_TRACKING_URI is set"


_NEVER_CREATES = "mlflow-lineage reads an existing MLflow store; it never creates one."


def _check_sqlite(uri: str, backend: str, named: str) -> None:
    from sqlalchemy.engine import make_url

    url = make_url(backend)
    if url.host:  # sqlite://mlflow.db: SQLite would open a database in memory
        raise TrackingURIError(
            f"{named} has a host part ('{url.host}'), which SQLite ignores: a SQLite file takes "
            f"three slashes (four for an absolute path). Did you mean "
            f"{uri.replace('://', ':///', 1)}?"
        )
    database = url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return  # in memory, or a SQLite URI filename: nothing on disk to look for
    path = os.path.abspath(database)
    if os.path.isdir(path):
        raise TrackingURIError(f"{named} names {path}, a folder, not a SQLite database file.")
    if not os.path.exists(path):
        raise TrackingURIError(_missing_sqlite(uri, database, path, named))
    _check_mlflow_tables(backend, named, path)


def _missing_sqlite(uri: str, database: str, path: str, named: str) -> str:
    import difflib

    if os.path.isabs(database):
        said = f"{named}: {path} does not exist."
    else:
        said = f"{named}: sqlite:/// is relative to the working directory, {path} does not exist"
        absolute = "/" + database
        if os.sep in database or os.path.exists(absolute):
            cut = uri.index(":///") + 4
            there = " (it exists)" if os.path.exists(absolute) else ""
            said += f"; for an absolute path use {uri[:cut]}/{uri[cut:]}{there}"
        said += "."
    folder, name = os.path.split(path)
    if not os.path.isdir(folder):
        return f"{said} The folder {folder} does not exist either. {_NEVER_CREATES}"
    found = sorted(f for f in os.listdir(folder) if f.endswith(".db"))
    close = difflib.get_close_matches(name, found, n=1, cutoff=0.6)
    if close and name in uri:
        at = uri.rindex(name)
        said += f" Did you mean {uri[:at]}{close[0]}{uri[at + len(name) :]}?"
    listed = ", ".join(found[:10]) + (f" (and {len(found) - 10} more)" if len(found) > 10 else "")
    said += f" The .db files in {folder}: {listed}." if found else f" {folder} has no .db file."
    return f"{said} {_NEVER_CREATES}"


def _check_mlflow_tables(url: str, named: str, where: str) -> None:
    """Refuse a database without every table MLflow's store expects (it would create them)."""
    import mlflow.store.db.utils  # noqa: F401 (fills Base.metadata with every MLflow table)
    from mlflow.store.db.base_sql_model import Base
    from sqlalchemy import inspect

    try:
        with MlflowDatabase(url).connect() as conn:
            found = set(inspect(conn).get_table_names())
    except MlflowDatabaseError as exc:
        raise TrackingURIError(f"{named}: {exc}") from exc
    except Exception as exc:  # e.g. a file that is not a SQLite database
        reason = getattr(exc, "orig", None) or exc
        raise TrackingURIError(
            f"{named} names {where}, which cannot be read as a database ({reason}). "
            + _NEVER_CREATES
        ) from exc
    expected = set(Base.metadata.tables)
    missing = sorted(expected - found)
    if not missing:
        return
    if len(missing) == len(expected):
        holds = f"its tables: {', '.join(sorted(found)[:10])}" if found else "it is empty"
        raise TrackingURIError(
            f"{named} names {where}, which is not an MLflow database (none of MLflow's "
            f"tables; {holds}). Check the path. {_NEVER_CREATES}"
        )
    from importlib.metadata import version

    raise TrackingURIError(
        f"{named} names {where}, which lacks MLflow {version('mlflow')}'s tables "
        f"{', '.join(missing[:10])}{' ...' if len(missing) > 10 else ''}: an older MLflow made "
        f"it. Upgrade it first with: mlflow db upgrade {where if '://' in where else url}"
    )


def _check_file_store(uri: str, backend: str, named: str) -> None:
    from mlflow.utils.file_utils import local_file_uri_to_path

    path = os.path.abspath(local_file_uri_to_path(backend))
    if not os.path.exists(path):
        raise TrackingURIError(
            f"{named} names the file store folder {path}, which does not exist. Check the "
            f"path (a SQLite database is sqlite:///path/to/mlflow.db). {_NEVER_CREATES}"
        )
    if not os.path.isdir(path):
        with open(path, "rb") as fh:
            sqlite = fh.read(16) == b"SQLite format 3\x00"
        hint = (
            f" It is a SQLite file: use {uri[: len(uri) - len(backend)]}sqlite:///{path}."
            if sqlite
            else ""
        )
        raise TrackingURIError(f"{named} names {path}, a file, not a file store folder.{hint}")
    with os.scandir(path) as entries:
        looks = any(
            e.name in (".trash", "models")
            or (e.is_dir() and os.path.exists(os.path.join(e.path, "meta.yaml")))
            for e in entries
        )
    if not looks:
        raise TrackingURIError(
            f"{named} names {path}, which is not an MLflow file store (no experiment folders, "
            f"no models folder). Check the path. {_NEVER_CREATES}"
        )
