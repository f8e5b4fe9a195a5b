"""The JSON under ``/lineage/api/``: for each question, the CLI's ``--json`` data.

=========================================================  ===================================
Route                                                      Same JSON as
=========================================================  ===================================
``api/models``                                             (the models page)
``api/models/<name>[?at=T]``                               (a model's page)
``api/models/<name>/timeline[?since=T&until=T]``           ``timeline --model NAME``
``api/models/<name>/versions/<v>[?at=T]``                  ``show NAME V``
``api/models/<name>/versions/<v>/check``                   ``check NAME V``
``api/models/<name>/versions/<v>/diff/<other>``            ``diff NAME V OTHER``
``api/models/<name>/versions/<v>/restore-plan``            ``restore NAME V --dry-run``
``api/tables/<ref>[?before=N]``                            (a table's page)
``api/tables/<ref>/timeline[?since=T&until=T]``            ``timeline --table TABLE``
``api/tables/<ref>/impact[?from_version=N&to_version=M]``  ``impact TABLE --from-version N``
=========================================================  ===================================
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from lineage_plugin.ui.routes import (
    int_arg,
    json_response,
    name_arg,
    require_model,
    time_arg,
    tracking_uri,
    version_arg,
    workspace,
)

if TYPE_CHECKING:
    from flask import Blueprint, Response


def models() -> Response:
    from flask import request
    from lineage_plugin.ui.access import current
    from lineage_plugin.ui.model_pages import models as query

    found = query(workspace(), current().may_read, request.args.get("q", "")[:200])
    return json_response({"models": found})


def model(name: str) -> Response:
    from lineage_plugin.ui.model_pages import model as query

    name = name_arg(name)
    registered = require_model(name)
    return json_response(query(workspace(), name, time_arg("at"), registered=registered).data)


def model_timeline(name: str) -> Response:
    from lineage_plugin.queries.timeline import timeline

    name = name_arg(name)
    require_model(name)
    since, until = time_arg("since"), time_arg("until")
    report = timeline(model=name, since=since, until=until, tracking_uri=tracking_uri())
    return json_response(report.to_dict())


def version(name: str, number: str) -> Response:
    from lineage_plugin.ui.version_page import show

    name, number = name_arg(name), version_arg(number)
    require_model(name)
    return json_response(show(tracking_uri(), name, number, time_arg("at")))


def check(name: str, number: str) -> Response:
    from lineage_plugin.ui.version_page import check as query

    name, number = name_arg(name), version_arg(number)
    require_model(name)
    return json_response(query(tracking_uri(), name, number))


def diff(name: str, number: str, other: str) -> Response:
    from lineage_plugin.ui.version_page import diff as query

    name, number, other = name_arg(name), version_arg(number), version_arg(other)
    require_model(name)
    return json_response(query(tracking_uri(), name, number, other))


def restore_plan(name: str, number: str) -> Response:
    from lineage_plugin.ui.version_page import restore_plan as query

    name, number = name_arg(name), version_arg(number)
    require_model(name)
    return json_response(query(tracking_uri(), name, number))


def table(ref: str) -> Response:
    from lineage_plugin.ui.access import current
    from lineage_plugin.ui.table_page import table_page

    page = table_page(workspace(), name_arg(ref), before=int_arg("before"), access=current())
    return json_response(page)


def _recorded_uri(ref: str) -> str:
    from lineage_plugin.ui.table_page import recorded_table

    with workspace().require_index().begin() as conn:
        return recorded_table(conn, name_arg(ref))["uri"]


def table_timeline(ref: str) -> Response:
    from lineage_plugin.ui import visible
    from lineage_plugin.ui.access import current

    from lineage_plugin.queries.timeline import timeline

    uri = _recorded_uri(ref)
    since, until = time_arg("since"), time_arg("until")
    report = timeline(table=uri, since=since, until=until, tracking_uri=tracking_uri())
    return json_response(visible.timeline(report.to_dict(), current()))


def table_impact(ref: str) -> Response:
    from lineage_plugin.ui.access import current
    from lineage_plugin.ui.table_page import visible_impact

    report = visible_impact(
        _recorded_uri(ref),
        tracking_uri(),
        current(),
        from_version=int_arg("from_version"),
        to_version=int_arg("to_version"),
        include_deleted=_true("include_deleted"),
    )
    return json_response(report)


def _true(name: str) -> bool:
    from flask import request

    return request.args.get(name, "").lower() in ("1", "true", "yes")


def register(bp: Blueprint) -> None:
    """Add the JSON routes to the blueprint."""
    versions = "/api/models/<name>/versions/<number>"
    for rule, endpoint, view in (
        ("/api/models", "api_models", models),
        ("/api/models/<name>", "api_model", model),
        ("/api/models/<name>/timeline", "api_model_timeline", model_timeline),
        (versions, "api_version", version),
        (f"{versions}/check", "api_check", check),
        (f"{versions}/diff/<other>", "api_diff", diff),
        (f"{versions}/restore-plan", "api_restore_plan", restore_plan),
        ("/api/tables/<ref>", "api_table", table),
        ("/api/tables/<ref>/timeline", "api_table_timeline", table_timeline),
        ("/api/tables/<ref>/impact", "api_table_impact", table_impact),
    ):
        bp.add_url_rule(rule, endpoint, view)
