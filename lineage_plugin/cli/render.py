"""Human-readable output of the query reports (``--json`` prints ``to_dict()`` instead).

Each function renders the report's ``to_dict()``: times are read from the ``*_ms`` keys and
printed in local time.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from lineage_plugin.cli import render_risks
from lineage_plugin.queries.times import format_time
from lineage_plugin.tags import VERIFICATION as VERIFICATION_TAG


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Rows as an aligned text table (``-`` for empty cells)."""
    cells = [[("-" if v in (None, "", []) else str(v)) for v in row] for row in rows]
    widths = [
        max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)
    ]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    return "\n".join(lines)


def _metrics(metrics: dict[str, Any] | None) -> str:
    """The commit's non-zero metrics, the rows it changed first."""
    if not metrics:
        return "-"
    keep = [
        (k, v)
        for k, v in metrics.items()
        if v not in ("0", 0) and "Time" not in k and "_ms" not in k and "duration" not in k.lower()
    ]
    changed = ("updated", "deleted", "inserted", "Updated", "Deleted", "Inserted")
    keep.sort(key=lambda kv: (not any(w in kv[0] for w in changed), kv[0]))
    return ", ".join(f"{k}={v}" for k, v in keep[:6]) or "-"


def show(report: dict[str, Any]) -> str:
    """Text for ``show``."""
    out = [f"Model {report['name']} version {report['version']}  (lineage {report['status']})"]
    if report.get("at"):
        held = report.get("held_at", {})
        out.append(
            f"At {format_time(report.get('at_ms'))} ('{report['reference']}'): stage "
            f"{held.get('stage', '-')}, "
            f"aliases {', '.join(held.get('aliases', [])) or '-'}"
        )
    out.append(
        f"Now: stage {report.get('stage', '-')}, aliases "
        f"{', '.join(report.get('aliases', [])) or '-'}"
    )
    registered = format_time(report.get("created_ms"))
    out.append(f"Registered: {registered}   source: {report.get('source', '-')}")
    reproduces = report.get("reproduces")
    if reproduces:
        check = reproduces.get("verification")
        outcome = f": {_verification(check)}" if check else ""
        out.append(f"Reproduces version {reproduces['version']}{outcome}")
    run = report.get("run", {})
    out.append(f"Run: {run.get('run_id', '-')}")
    for reason in run.get("reasons", []):
        out.append(f"  incomplete: {reason}")
    inputs = run.get("inputs", [])
    out += ["", "Data"]
    out.append(
        table(
            ["table", "version", "committed", "operation", "context", "uri"],
            [
                [
                    i.get("name"),
                    _version(i),
                    format_time(i.get("commit_timestamp_ms")),
                    i.get("operation"),
                    i.get("context"),
                    i["uri"],
                ]
                for i in inputs
            ],
        )
        if inputs
        else "  (no Delta inputs recorded)"
    )
    outputs = run.get("outputs", [])
    if outputs:
        out += ["", "Written by the run"]
        out.append(
            table(
                ["table", "version", "committed", "operation", "engine", "metrics", "uri"],
                [
                    [
                        o.get("name"),
                        _version(o),
                        format_time(o.get("commit_timestamp_ms")),
                        o.get("operation"),
                        o.get("engine"),
                        _metrics(o.get("operation_metrics")),
                        o["uri"],
                    ]
                    for o in outputs
                ],
            )
        )
    env = run.get("environment")
    if env:
        out += ["", f"Environment: python {env.get('python')} on {env.get('platform')}"]
        out.append(
            "  " + ", ".join(f"{k}=={v}" for k, v in sorted(env.get("packages", {}).items()))
        )
    code = run.get("code")
    if code:
        dirty = " (uncommitted changes)" if code.get("git_dirty") else ""
        out += [
            "",
            f"Code: {' '.join(code.get('argv', []))}",
            f"  in {code.get('cwd', '-')}, git {code.get('git_commit', '-')}{dirty}",
        ]
    history = report.get("history", [])
    out += ["", "History"]
    out.append(_events(history) if history else "  (no events recorded)")
    return "\n".join(out)


def _version(read: dict[str, Any]) -> str:
    if read.get("restored_from") is None:
        return str(read["version"])
    return f"{read['version']} (restored copy of v{read['restored_from']})"


def _events(events: list[dict[str, Any]]) -> str:
    rows = []
    for e in events:
        if e.get("role") == "replaced":
            lost = f"@{e['alias']}" if e.get("alias") else e.get("stage")
            rows.append(
                [format_time(e.get("time_ms")), e["kind"], f"lost {lost} to v{e['version']}"]
            )
        else:
            rows.append([format_time(e.get("time_ms")), e["kind"], _event_detail(e)])
        rows[-1] += [
            ", ".join(e.get("replaced", [])) if e.get("role") != "replaced" else "",
            e.get("user"),
        ]
    return table(["time", "event", "detail", "replaced", "user"], rows)


def _event_detail(e: dict[str, Any]) -> str:
    if e["kind"] == "stage_transition":
        text = f"{e.get('previous_stage', '?')} -> {e.get('stage')}"
    elif e["kind"] == "restore":
        text = "; ".join(
            f"{r.get('name')} v{r['from_version']} -> v{r['new_version']} "
            f"(copy of v{r['to_version']})"
            for r in e.get("restores", [])
        )
        text += f": {e['reason']}" if e.get("reason") else ""
    elif e["kind"] == "verification":
        v = e.get("verification", {})
        text = _verification(v)
        if v.get("reproduced_version"):
            text += f"; reproduced as v{v['reproduced_version']}"
    else:
        text = f"@{e.get('alias')}"
    return f"{text} ({e['cause']})" if e.get("cause") else text


def _commit_lines(c: dict[str, Any]) -> list[str]:
    """A commit's line, then one line per operation parameter (the predicate first), as the
    JSON has them."""
    who = c.get("user") or c.get("engine") or "-"
    lines = [
        f"    v{c['version']}  {format_time(c.get('timestamp_ms'))}  "
        f"{c.get('operation', '?')}  {_metrics(c.get('metrics'))}  by {who}"
    ]
    parameters = c.get("parameters", {})
    for key in sorted(parameters, key=lambda k: (k != "predicate", k)):
        lines.append(f"        {key}: {parameters[key]}")
    return lines


def diff(report: dict[str, Any]) -> str:
    """Text for ``diff``."""
    name, a, b = report["name"], report["from_version"], report["to_version"]
    out = [f"Model {name}: version {a} -> version {b}"]
    if report.get("identical"):
        out.append("No differences in data, libraries, code or params.")
    out += ["", "Data"]
    for t in report.get("data", []):
        versions = f"v{t.get('from', '-')} -> v{t.get('to', '-')}"
        out.append(f"  {t.get('name') or t['uri']}: {t['change']} ({versions})  {t['uri']}")
        if t.get("error"):
            out.append(f"    {t['error']}")
        out += [line for c in t.get("commits", []) for line in _commit_lines(c)]
    for section, key in (("Libraries", "package"), ("Code", "field"), ("Params", "key")):
        items = report.get(section.lower(), [])
        out += ["", section]
        out += [f"  {i[key]}: {i.get('from', '-')} -> {i.get('to', '-')}" for i in items] or [
            "  (same)"
        ]
    return "\n".join(out)


def timeline(report: dict[str, Any]) -> str:
    """Text for ``timeline``."""
    subject = f"model {report['model']}" if report.get("model") else f"table {report['table']}"
    out = [f"Timeline of {subject}"]
    rows = []
    for e in report.get("entries", []):
        kind = e["kind"]
        if kind == "commit":
            what = f"{e.get('table', '').rsplit('/', 1)[-1]}@v{e['table_version']}"
            detail = _commit_detail(e)
        elif kind == "run":
            what = e["run_id"]
            versions = e.get("table_versions")
            detail = (
                f"read v{', v'.join(map(str, versions))}"
                if versions
                else f"trained {e.get('model', '')} v{e.get('version', '?')}"
            )
        elif kind == "write":
            what = f"{e.get('table', '').rsplit('/', 1)[-1]}@v{e['table_version']}"
            detail = f"{e.get('operation') or 'written'} by run {e['run_id']}"
        elif kind == "registration":
            what = f"{e['model']} v{e['version']}"
            detail = f"from run {e.get('run_id', '-')}"
        else:
            what = f"{e['model']} v{e['version']}"
            detail = _event_detail(e)
        rows.append([format_time(e.get("time_ms")), kind, what, detail, e.get("user")])
    out.append(table(["time", "kind", "what", "detail", "user"], rows) if rows else "  (empty)")
    out += [f"warning: {w}" for w in report.get("warnings", [])]
    return "\n".join(out)


def _commit_detail(e: dict[str, Any]) -> str:
    """``UPDATE where id < 600: num_updated_rows=600; NOT READ by any run`` (the JSON's
    ``read_by`` names the runs)."""
    predicate = e.get("parameters", {}).get("predicate")
    where = f" where {predicate}" if predicate else ""
    read_by = e.get("read_by", [])
    count = len(read_by)
    read = f"read by {count} run{'s' if count > 1 else ''}" if count else "NOT READ by any run"
    return f"{e.get('operation', '?')}{where}: {_metrics(e.get('metrics'))}; {read}"


def check(report: dict[str, Any]) -> str:
    """Text for ``check``."""
    head = f"Model {report['name']} version {report['version']}: "
    checked = (
        f"{report['tables_checked']} table version(s), "
        f"{report['packages_checked']} library version(s) checked"
    )
    later = [
        f"  {r['uri']}@v{r['version']} {render_risks.risk_line(r)}"
        for r in report.get("risks", [])
        if not r.get("due")
    ]
    if report["ok"]:
        lines = [head + f"retraining now would see the same inputs ({checked})."]
    else:
        lines = [head + f"retraining now would NOT reproduce it ({checked}):"]
        lines += [f"  [{p['kind']}] {p['message']}" for p in report["problems"]]
    if later:
        lines += ["Clean-ups that can make recorded versions unreadable later:", *later]
    return "\n".join(lines)


def summary(title: str, data: dict[str, Any]) -> str:
    """``key: value`` lines."""
    return "\n".join([title, *(f"  {k}: {v}" for k, v in data.items())])


def restore_plan(plan: dict[str, Any]) -> str:
    """Text for a restore plan (``restore --dry-run``, and before asking)."""
    out = [f"Restore plan for model {plan['name']} version {plan['version']}:"]
    for t in plan["tables"]:
        label = t.get("name") or t["uri"]
        if t.get("up_to_date"):
            copy = t.get("current_copy_of") is not None
            now = f"v{t['current_version']}, a restored copy of " if copy else ""
            out.append(f"  {label}: already at {now}v{t['target_version']}, nothing to undo")
            continue
        now = t.get("current_version", "?")
        out.append(f"  {label}: now v{now}, restore to v{t['target_version']}  ({t['uri']})")
        if t.get("engine") == "spark":
            out.append(f"    Through Spark: deltalake cannot reach it ({t.get('unreachable')}).")
        commits = t.get("commits", [])
        if commits:
            out.append(f"    undoes {len(commits)} commit(s):")
            out += [line for c in commits for line in _commit_lines(c)]
        if t.get("undoes_deletes"):
            out.append(
                "    Some of these commits DELETED rows: the restore brings those rows back."
            )
        if t.get("missing_files"):
            out.append(f"    Files missing: {t['missing_files']}")
        out += [f"    Refused: {r}" for r in t.get("refusals", [])]
    return "\n".join(out)


def restore(report: dict[str, Any]) -> str:
    """Text for ``restore``."""
    out = [restore_plan(report["plan"]), ""]
    if report.get("dry_run"):
        out.append("Dry run: nothing was written.")
    elif not report.get("restored"):
        out.append("Nothing to restore: every table is at its recorded version.")
    for r in report.get("restored", []):
        lost = r.get("missing_files_allowed")
        note = " (files were missing: their rows are lost)" if lost else ""
        out.append(
            f"Restored {r.get('name') or r['uri']} to v{r['to_version']}: new version "
            f"v{r['new_version']} (was v{r['from_version']}){note}"
        )
    if report.get("event_id"):
        out.append(f"Recorded as event {report['event_id']}.")
    return "\n".join(out)


def reproduce(report: dict[str, Any]) -> str:
    """Text for ``reproduce``."""
    v = report["verification"]
    out = [f"Reproduced model {report['name']} version {report['version']}"]
    out += [f"  warning: {w}" for w in report.get("warnings", [])]
    out += _upstream_steps(report.get("upstream", []), report.get("scratch"))
    out.append(f"  retrained by run {v.get('reproduced_run_id')}: {v.get('reproduced_model_uri')}")
    if v.get("reproduced_version"):
        out.append(f"  registered as version {v['reproduced_version']}")
    out.append(_verification(v))
    if report.get("likely_causes"):
        out.append("Likely causes:")
        out += [f"  - {cause}" for cause in report["likely_causes"]]
    if not report.get("verified"):
        out.append(
            f"The registry was left as it was; the result is tagged on run "
            f"{v.get('reproduced_run_id')} ({VERIFICATION_TAG})."
        )
    return "\n".join(out)


_SAME = {True: "identical", False: "DIFFERENT", None: "not compared"}


def _upstream_steps(steps: list[dict[str, Any]], scratch: str | None) -> list[str]:
    out = []
    for n, step in enumerate(steps, 1):
        out.append(
            f"  upstream step {n}: run {step['run_id']} re-run as {step['reproduced_run_id']}"
        )
        for o in step["outputs"]:
            note = f" ({o['note']})" if o.get("note") else ""
            out.append(
                f"    {o['table']}@v{o['version']} -> scratch v{o['scratch_version']}: "
                f"{_SAME[o.get('identical')]}{note}"
            )
    if steps:
        out.append(f"  scratch tables kept in {scratch}" if scratch else "  scratch tables removed")
    return out


def _verification(v: dict[str, Any]) -> str:
    from lineage_plugin.records import Verification

    return Verification.from_dict(v).summary()


def rollback(report: dict[str, Any]) -> str:
    """Text for ``rollback`` (the steps were shown as they ran)."""
    targets = ", ".join(
        t["target"] + (f" (now version {t['previous_holder']})" if t.get("previous_holder") else "")
        for t in report["targets"]
    )
    if report.get("dry_run"):
        retrain = report["retrain"]
        return "\n".join(
            [
                restore(report["restore"]),
                "",
                f"Would retrain version {report['version']}: {' '.join(retrain['command'])}",
                f"  in {retrain['cwd']}, reads pinned to "
                + (", ".join(f"{u}@v{v}" for u, v in retrain["pinned"].items()) or "nothing"),
                *(f"  warning: {w}" for w in retrain.get("warnings", [])),
                f"Would compare predictions on {retrain['data']}, then point {targets} at the "
                f"rebuilt version ({report['targets_from']}).",
            ]
        )
    out = [restore(report["restore"]), "", reproduce(report["reproduce"])]
    if report.get("pointed"):
        new = report["reproduce"]["verification"].get("reproduced_version")
        held = [t for t in report["targets"] if t.get("previous_holder")]
        if len(report["targets"]) == 1:
            was = f" (was version {held[0]['previous_holder']})" if held else ""
            out.append(f"{report['pointed']} now points at version {new}{was}.")
        else:
            were = ", ".join(f"{t['target']} on version {t['previous_holder']}" for t in held)
            out.append(
                f"{report['pointed']} now point at version {new} (before: {were or 'none'})."
            )
    elif not report.get("verified"):
        out.append(f"Not verified: nothing was registered and {targets} did not move.")
    return "\n".join(out)
