"""Text for the graph commands: ``impact`` (transitive) and ``upstream``, paths as arrows."""

from __future__ import annotations

from typing import Any

from lineage_plugin.cli.render import table
from lineage_plugin.queries.times import format_time


def hop_text(hop: dict[str, Any]) -> str:
    """One hop of a path: ``features@5``, ``run 3f2a9c1e``, ``model churn/2``."""
    if hop["kind"] == "table_version":
        return f"{hop.get('name') or hop['uri']}@{hop['version']}"
    if hop["kind"] == "model_version":
        return f"model {hop['name']}/{hop['version']}"
    if hop.get("hidden"):
        return "run (hidden)"
    return f"run {hop['run_id'][:8]}"


def path_text(path: list[dict[str, Any]]) -> str:
    """A path as ``raw@3 -> run 3f2a9c1e -> features@5 -> run 9b0c... -> model churn/2``."""
    return " -> ".join(hop_text(h) for h in path)


def section(title: str, headers: list[str], rows: list[list[Any]]) -> list[str]:
    """A titled table, or ``(none)``, after a blank line."""
    return ["", title, table(headers, rows) if rows else "  (none)"]


def _read_versions(item: dict[str, Any]) -> str:
    """``3 (copy of 1), 4``: the versions read, restored copies named."""
    copies = item.get("restored_copies", {})
    return ", ".join(
        f"{v} (copy of {copies[str(v)]})" if str(v) in copies else str(v)
        for v in item["table_versions"]
    )


def _run_cell(run: dict[str, Any]) -> str:
    return f"{run['run_id']} (deleted)" if run.get("deleted") else run["run_id"]


def impact(report: dict[str, Any]) -> str:
    """Text for ``impact``: model versions, runs, the versions they wrote, and the paths."""
    span = f"v{report.get('from_version', 0)}..v{report.get('to_version', 'latest')}"
    out = [f"Table {report['uri']}, versions {span}"]
    mvs = report.get("model_versions", [])
    out += section(
        f"Model versions ({len(mvs)}), in use first",
        ["model", "version", "in use", "stage", "aliases", "from versions", "depth", "run"],
        [
            [
                m["name"],
                f"{m['version']} (deleted)" if m.get("deleted") else m["version"],
                "yes" if m.get("in_use") else "no",
                m.get("stage"),
                ", ".join(m.get("aliases", [])),
                _read_versions(m),
                m.get("depth"),
                m["run_id"],
            ]
            for m in mvs
        ],
    )
    runs = report.get("runs", [])
    out += section(
        f"Runs ({len(runs)})",
        ["run", "name", "started", "from versions", "depth", "model versions"],
        [
            [
                _run_cell(r),
                r.get("run_name"),
                format_time(r.get("start_time_ms")),
                _read_versions(r),
                r.get("depth"),
                ", ".join(r.get("model_versions", [])),
            ]
            for r in runs
        ],
    )
    written = report.get("written", [])
    if written:
        out += section(
            f"Table versions written downstream ({len(written)})",
            ["table", "version", "depth", "written by"],
            [[w.get("name") or w["uri"], w["version"], w["depth"], w["run_id"]] for w in written],
        )
    if mvs:
        out += ["", "Paths from the bad version"]
        out += [f"  {path_text(m['path'])}" for m in mvs if m.get("path")]
    return "\n".join(out)


def upstream(report: dict[str, Any]) -> str:
    """Text for ``upstream``: the raw table versions first, then every table version and run."""
    tables = report.get("tables", [])
    raw = [t for t in tables if t.get("raw")]
    out = [f"Model {report['name']} version {report['version']}, trained by {report['run_id']}"]
    out += ["", f"Raw table versions ({len(raw)}), no recorded run wrote them"]
    out += [f"  {path_text(t['path'])}" for t in raw] or ["  (none)"]
    out += section(
        f"Table versions ({len(tables)})",
        ["table", "version", "depth", "raw", "written by", "read by"],
        [
            [
                t.get("name") or t["uri"],
                t["version"],
                t["depth"],
                "yes" if t.get("raw") else "no",
                t.get("written_by"),
                t.get("read_by"),
            ]
            for t in tables
        ],
    )
    runs = report.get("runs", [])
    out += section(
        f"Runs ({len(runs)})",
        ["run", "name", "started", "depth"],
        [
            [_run_cell(r), r.get("run_name"), format_time(r.get("start_time_ms")), r["depth"]]
            for r in runs
        ],
    )
    return "\n".join(out)
