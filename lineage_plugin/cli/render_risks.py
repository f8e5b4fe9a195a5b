"""Text for ``check --all`` and the retention risks ``check`` lists."""

from __future__ import annotations

from typing import Any

from lineage_plugin.cli.render_vacuum import guard_text


def risk_line(risk: dict[str, Any]) -> str:
    """``log clean-up ... from 2026-12-31T10:00:00.000+00:00 (within the window)``."""
    when = "DUE" if risk.get("due") else "later"
    return f"[{when}] {risk['kind']}: {risk['detail']}, from {risk['at']}"


def _who(version: dict[str, Any]) -> str:
    return "; ".join(guard_text(g) for g in version["protected_by"])


def check_all(report: dict[str, Any]) -> str:
    """Text for ``check --all``."""
    window = f"{report['within_hours']:g} h"
    verdict = (
        "every one is readable and none is at risk"
        if report["ok"]
        else f"{report['unreadable']} unreadable, {report['at_risk']} at risk within {window}"
    )
    count = len(report["model_versions"])
    out = [f"Data of {count} model version(s) in use: {verdict}."]
    for table in report["tables"]:
        if table.get("skipped"):
            out.append(f"{table['uri']}: risks not assessed: {table['skipped']}")
        else:
            out.append(f"{table['uri']}:")
        for version in table["versions"]:
            state = "UNREADABLE" if version["unreadable"] else "readable"
            out.append(f"  v{version['version']} {state}, for {_who(version)}")
            out += [f"    {reason}" for reason in version["unreadable"]]
            out += [f"    {risk_line(r)}" for r in version["risks"]]
    out += [
        f"Not checked: {u['name']} v{u['version']} ({', '.join(u['why'])}): {u['problem']}"
        for u in report["unknown"]
    ]
    if not report["ok"]:
        out.append(
            "To keep versions readable, raise delta.deletedFileRetentionDuration and "
            "delta.logRetentionDuration on the table, and vacuum with mlflow-lineage vacuum."
        )
    return "\n".join(out)
