"""What the templates use besides the data: time formatting and links to the stock UI."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flask import Blueprint


def when(value: Any) -> str:
    """A time (epoch ms, or the ISO text of the JSON) as ``2026-11-17 09:00:00 UTC``."""
    if value is None or value == "":
        return "-"
    try:
        if isinstance(value, (int, float)):
            moment = datetime.fromtimestamp(value / 1000, tz=timezone.utc)
        else:
            moment = datetime.fromisoformat(str(value)).astimezone(timezone.utc)
    except (ValueError, OverflowError, OSError):
        return str(value)
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def iso_input(value: int | None) -> str:
    """Epoch ms as the value of an ``<input type="datetime-local">`` (UTC, to the second)."""
    if value is None:
        return ""
    return datetime.fromtimestamp(value / 1000, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")


def data_label(tables: list[dict[str, Any]]) -> str:
    """The data a version was trained on, short: ``sales@v3, stores@v1``."""
    return ", ".join(f"{t.get('name') or t.get('uri')}@v{t.get('version')}" for t in tables)


def table_ref(t: dict[str, Any]) -> str:
    """How a table's page is addressed: its Delta table id, else its name."""
    return str(t.get("table_id") or t.get("name") or "")


def shell_join(words: list[str]) -> str:
    """A command line to copy: each word shell-quoted (``mlflow-lineage restore 'my model' 1``)."""
    import shlex

    return shlex.join(str(w) for w in words)


def link(endpoint: str, **values: Any) -> str:
    """``url_for(endpoint, **values)``, built once per request for the same arguments: a page's
    rows link to the same versions and tables over and over."""
    from flask import g, url_for

    cache = g.setdefault("lineage_links", {})
    key = (endpoint, *sorted(values.items()))
    found = cache.get(key)
    if found is None:
        found = cache[key] = url_for(endpoint, **values)
    return found


def register(bp: Blueprint) -> None:
    """Make the filters and the stock-UI link builder available to the templates."""
    from lineage_plugin.ui.routes import stock_file, stock_url

    @bp.app_template_filter("when")
    def _when(value: Any) -> str:
        return when(value)

    @bp.app_template_filter("data_label")
    def _data_label(tables: list[dict[str, Any]]) -> str:
        return data_label(tables)

    @bp.app_template_filter("table_ref")
    def _table_ref(t: dict[str, Any]) -> str:
        return table_ref(t)

    @bp.app_template_filter("shell_join")
    def _shell_join(words: list[str]) -> str:
        return shell_join(words)

    @bp.app_context_processor
    def _globals() -> dict[str, Any]:
        return {"stock_url": stock_url, "stock_file": stock_file, "iso_input": iso_input}

    # A global, not a context value: the macros imported by the templates call it too.
    bp.add_app_template_global(link, "link")
