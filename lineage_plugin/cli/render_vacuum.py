"""Text for ``vacuum`` (its plan and what it deleted)."""

from __future__ import annotations

from typing import Any


def _size(n: int | None) -> str:
    if n is None:
        return ""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f" ({n:.0f} {unit})" if unit == "B" else f" ({n:.1f} {unit})"
        n /= 1024  # type: ignore[assignment]
    return ""


def guard_text(g: dict[str, Any]) -> str:
    """``churn v1 (alias champion, upstream of features v0)``."""
    via = g.get("via")
    upstream = f", upstream of {via.get('name') or via['uri']} v{via['version']}" if via else ""
    return f"{g['name']} v{g['version']} ({', '.join(g['why'])}{upstream})"


def vacuum_plan(plan: dict[str, Any]) -> str:
    """Text for a vacuum plan (``vacuum --dry-run``, and before asking)."""
    asked = plan.get("retention_hours")
    retention = f"{asked:g} h" if asked is not None else "the table's own"
    out = [
        f"Vacuum plan for {plan['table']} (now v{plan['current_version']}, engine "
        f"{plan['engine']}, retention {retention}; the table's is "
        f"{plan['table_retention_hours']:g} h):",
        f"  files that go: {plan['files']}{_size(plan.get('bytes'))}",
    ]
    kept = plan.get("kept", [])
    if kept:
        out.append(f"  versions kept for the models that need them ({len(kept)}):")
        out += [
            f"    v{k['version']}: " + "; ".join(guard_text(g) for g in k["protected_by"])
            for k in kept
        ]
    out += [f"  note: {n}" for n in plan.get("notes", [])]
    return "\n".join(out)


def vacuum(report: dict[str, Any]) -> str:
    """Text for ``vacuum``."""
    out = [vacuum_plan(report), ""]
    if report.get("dry_run"):
        out.append("Dry run: nothing was deleted.")
    else:
        out.append(f"Deleted {report['deleted']} file(s).")
    return "\n".join(out)
