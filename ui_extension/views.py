"""The lineage pages (server-rendered with Jinja2): models, a model, a version, a table."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from lineage_plugin.ui.routes import (
    int_arg,
    name_arg,
    require_model,
    time_arg,
    tracking_uri,
    version_arg,
    workspace,
)

if TYPE_CHECKING:
    from flask import Blueprint


def models_page() -> str:
    """``/lineage/models``: every registered model, with its versions in use (``?q=`` filters)."""
    from flask import render_template, request
    from lineage_plugin.ui.access import current
    from lineage_plugin.ui.model_pages import models

    query = request.args.get("q", "")[:200]
    found = models(workspace(), current().may_read, query)
    return render_template("lineage/models.html", models=found, q=query)


def model_page(name: str) -> str:
    """``/lineage/models/<name>[?at=TIME][&versions=all][&history=all]``: versions, data, and
    the stage/alias history (the newest versions and history rows, unless all are asked for)."""
    from flask import render_template
    from lineage_plugin.ui import filters
    from lineage_plugin.ui.model_pages import HISTORY_ROWS, VERSION_ROWS, model
    from lineage_plugin.ui.picture import picture

    from lineage_plugin.events import ARCHIVED

    name = name_arg(name)
    registered = require_model(name)
    at = time_arg("at")
    all_versions, all_history = _flag("versions"), _flag("history")
    page = model(
        workspace(),
        name,
        at,
        registered=registered,
        newest=None if all_versions else VERSION_ROWS,
        history=None if all_history else HISTORY_ROWS,
    )
    labels = {str(r.version): filters.data_label(list(r.tables)) for r in page.rows}
    now = int(time.time() * 1000)
    drawn = picture(page.events, labels, now=now, at=at, start=page.since, versions=labels)
    # As of a time: what was held then, and the versions Archived then (shown in one row).
    held_now, archived = [], []
    for h in page.data.get("held_at", []):
        if h["kind"] == "stage" and h["label"] == ARCHIVED:
            archived.append(h["version"])
        else:
            held_now.append(h)
    return render_template(
        "lineage/model.html",
        m=page.data,
        picture=drawn,
        history=page.data["history"],
        hidden=page.hidden_history,
        hidden_versions=page.hidden_versions,
        newest=VERSION_ROWS,
        since=page.since,
        all_versions=all_versions,
        all_history=all_history,
        at=at,
        held_now=held_now,
        archived=archived,
    )


def version_page(name: str, version: str) -> str:
    """``/lineage/models/<name>/versions/<version>[?diff=OTHER]``: the full record."""
    from flask import render_template, request
    from lineage_plugin.ui.access import current
    from lineage_plugin.ui.graph_view import version_graph
    from lineage_plugin.ui.version_page import version_page as data

    name, version = name_arg(name), version_arg(version)
    require_model(name)
    other = request.args.get("diff", "").strip()
    other = version_arg(other) if other else None
    page = data(tracking_uri(), name, version, other)
    run_id = page["record"].get("run", {}).get("run_id")
    graph = version_graph(workspace(), name, version, run_id, current())
    return render_template("lineage/version.html", name=name, version=version, p=page, graph=graph)


def table_page(ref: str) -> str:
    """``/lineage/tables/<table id or name>[?before=N][&version=N]``: history and readers."""
    from flask import render_template
    from lineage_plugin.ui.access import current
    from lineage_plugin.ui.graph_view import table_graph
    from lineage_plugin.ui.table_page import table_page as data
    from lineage_plugin.ui.table_page import visible_impact

    from lineage_plugin.queries.impact import UnknownTableError

    ref = name_arg(ref)
    chosen = int_arg("version")
    ws = workspace()
    page = data(ws, ref, before=int_arg("before"), access=current())
    uri = page["table"]["uri"]
    impact = None
    if chosen is not None:
        try:
            impact = visible_impact(uri, tracking_uri(), current(), from_version=chosen)
        except UnknownTableError:  # a table runs wrote and none read: nobody is affected
            impact = {"from_version": chosen, "model_versions": [], "runs": []}
    # Downstream of the chosen version, else of the versions this page lists.
    shown = [v["version"] for v in page["versions"]] or [0]
    span = (chosen, chosen) if chosen is not None else (min(shown), max(shown))
    graph = table_graph(ws, uri, span, current())
    return render_template(
        "lineage/table.html",
        t=page,
        ref=ref,
        chosen=chosen,
        impact=impact,
        graph=graph,
        graph_span=span,
    )


def _flag(name: str) -> bool:
    from flask import request

    return request.args.get(name, "") == "all"


def index() -> Any:
    """``/lineage/``: the models page."""
    from flask import redirect, url_for

    return redirect(url_for("lineage.models"))


def register(bp: Blueprint) -> None:
    """Add the pages to the blueprint."""
    bp.add_url_rule("/", "index", index)
    bp.add_url_rule("/models", "models", models_page)
    bp.add_url_rule("/models/<name>", "model", model_page)
    bp.add_url_rule("/models/<name>/versions/<version>", "version", version_page)
    bp.add_url_rule("/tables/<ref>", "table", table_page)
