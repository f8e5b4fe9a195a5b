"""SQLAlchemy dialects for ``lineage+<database>`` URLs.

Some MLflow commands hand the backend URI straight to SQLAlchemy (``mlflow db upgrade``).
SQLAlchemy looks a ``lineage+sqlite://`` URL up as the dialect ``lineage.sqlite``; the entry
points in the ``sqlalchemy.dialects`` group point here, and :class:`LineageDialect` answers
with the dialect of the wrapped database, so the command works on the same database.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from lineage_plugin.store.uris import PREFIX

if TYPE_CHECKING:
    from sqlalchemy.engine import URL, Dialect


class LineageDialect:
    """Stands for the wrapped database's dialect (SQLAlchemy's ``get_dialect_cls`` protocol)."""

    @classmethod
    def get_dialect_cls(cls, url: URL) -> type[Dialect]:
        from sqlalchemy.engine import make_url

        inner = make_url(url.render_as_string(hide_password=False)[len(PREFIX) :])
        return inner.get_dialect()

    @classmethod
    def engine_created(cls, engine: object) -> None:
        """SQLAlchemy's hook after an engine is made; nothing to do."""
