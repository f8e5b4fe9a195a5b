"""What the request's user may see of an answer: the registered models they may READ and the
runs of the experiments they may READ (everything, without basic auth).

Applied to every answer that lists other models' versions or other people's runs (the table
page, its impact and its timeline); a page or route that names a model is gated before it runs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lineage_plugin.ui.access import ModelAccess


def run_visible(run: dict[str, Any], access: ModelAccess) -> bool:
    """Whether a run (a dict with ``experiment_id``) may be shown."""
    experiment_id = run.get("experiment_id")
    return experiment_id is None or access.may_read_experiment(str(experiment_id))


def impact(report: dict[str, Any], access: ModelAccess) -> dict[str, Any]:
    """``impact --json`` without the model versions and runs the user may not read: gone
    from the lists, the table versions they wrote, and the paths (a hidden run on the path
    of a visible item stays as a hop without its id, ``{"kind": "run", "hidden": true}``)."""
    runs = [r for r in report["runs"] if run_visible(r, access)]
    shown = {r["run_id"] for r in runs}

    def redact(item: dict[str, Any]) -> dict[str, Any]:
        if "path" not in item:
            return item
        path = [
            {"kind": "run", "hidden": True}
            if h["kind"] == "run" and h["run_id"] not in shown
            else h
            for h in item["path"]
        ]
        return {**item, "path": path}

    return {
        **report,
        "model_versions": [
            redact(m) for m in report["model_versions"] if access.may_read(m["name"])
        ],
        "runs": [redact(r) for r in runs],
        "written": [redact(w) for w in report.get("written", []) if w["run_id"] in shown],
    }


def timeline(report: dict[str, Any], access: ModelAccess) -> dict[str, Any]:
    """``timeline --json`` without the entries of models and runs the user may not read."""
    entries = [
        e
        for e in report["entries"]
        if ("model" not in e or access.may_read(e["model"])) and run_visible(e, access)
    ]
    return {**report, "entries": entries}
