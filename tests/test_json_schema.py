"""The ``--json`` of every command against the README's "JSON schemas" paragraph, and the
on-call view of a bad write (issue 12, points 5 and 7).

One real scenario for the module (tests/churn.py: ``churn`` v1 on customers@v0, a bad UPDATE
nobody read (v1), a DELETE (v2), v2 trained on it), then a real restore and a real rollback.
Every command's JSON is checked against the paragraph as the README has it, parsed here, so
the documentation cannot drift from the output: each documented top-level key is present
unless this scenario cannot have it (named per command below), each key of the output (at any
depth) is documented, every time is a UTC ISO-8601 string with its ``*_ms`` epoch
milliseconds beside it, and no epoch milliseconds hide anywhere else.
"""

from __future__ import annotations

import copy
import json
import re
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from churn import build
from click.testing import CliRunner

from lineage_plugin.cli import cli

README = Path(__file__).resolve().parent.parent / "README.md"
ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00$")
TIME_NAMES = {"time", "created", "at", "since", "until", "updated"}


# ---- the README paragraph, parsed ----


@dataclass
class Key:
    """One documented key: a list (``key[]``), a map (``{name: value}``) or an object."""

    is_list: bool = False
    is_map: bool = False
    node: Node | None = None


@dataclass
class Node:
    """An object's documented keys, and the items whose keys it shares (``{*event*, ...}``)."""

    keys: dict[str, Key] = field(default_factory=dict)
    refs: list[str] = field(default_factory=list)


_ITEM = re.compile(r"^- (?:`(\w+)`|\*(\w+)\*)(?: \([^()]*\))?: (.*)$", re.S)
_TOKEN = re.compile(r"`(\w+)(\[\])?`|\*(\w+)\*|[{}]")


def documented_schemas(readme: str) -> dict[str, Node]:
    """The items of the "JSON schemas" paragraph: command and object name -> keys."""
    start = readme.index("**JSON schemas**")
    end = readme.index("\n## ", start)
    items: list[str] = []
    for line in readme[start:end].splitlines():
        if line.startswith("- "):
            items.append(line)
        elif line.startswith("  ") and items:
            items[-1] += " " + line.strip()
    schemas = {}
    for item in items:
        match = _ITEM.match(item)
        assert match, f"README: a JSON schema item that does not start '- `name`: ': {item}"
        body = match.group(3)
        while re.search(r"\([^()]*\)", body):  # descriptions and values, never keys
            body = re.sub(r"\([^()]*\)", "", body)
        body = re.split(r"\.(?:\s|$)", body, maxsplit=1)[0]  # the prose after the keys
        node, rest = _parse(list(_TOKEN.finditer(body)), 0)
        assert rest == len(list(_TOKEN.finditer(body))), f"README: unbalanced braces in {item}"
        schemas[match.group(1) or match.group(2)] = node
    return schemas


def _parse(tokens: list[re.Match[str]], i: int) -> tuple[Node, int]:
    node = Node()
    last: Key | None = None
    while i < len(tokens):
        token = tokens[i]
        if token.group(0) == "}":
            return node, i
        if token.group(0) == "{":
            assert last is not None, "README: '{' without a key before it"
            inner, i = _parse(tokens, i + 1)
            assert i < len(tokens) and tokens[i].group(0) == "}", "README: '{' not closed"
            if inner.keys or inner.refs:
                last.node = inner
            else:
                last.is_map = True
        elif token.group(1):
            last = node.keys.setdefault(token.group(1), Key(is_list=bool(token.group(2))))
        else:
            node.refs.append(token.group(3))
        i += 1
    return node, i


def keys_of(node: Node, schemas: dict[str, Node]) -> dict[str, Key]:
    """A node's keys with those of the items it refers to."""
    keys = dict(node.keys)
    for ref in node.refs:
        assert ref in schemas, f"README: *{ref}* is not an item of the JSON schemas"
        keys.update(keys_of(schemas[ref], schemas))
    return keys


# ---- the checks ----


def is_time_key(key: str) -> bool:
    return key in TIME_NAMES or key.endswith(("timestamp", "_time"))


def undocumented(data: dict[str, Any], node: Node, schemas: dict[str, Node], path: str) -> list:
    """What in ``data`` the README does not document, or documents otherwise, and every time
    that is not an ISO string with its ``*_ms`` beside it."""
    found = []
    keys = keys_of(node, schemas)
    for key, value in data.items():
        where = f"{path}.{key}"
        if key.endswith("_ms"):
            if not isinstance(value, int) or isinstance(value, bool):
                found.append(f"{where} = {value!r} is not epoch milliseconds (an int)")
            if key[:-3] not in keys and key not in keys:
                found.append(f"{where} is not documented (nor is {key[:-3]})")
            continue
        if is_time_key(key):
            found += _time_problems(data, key, where)
        elif isinstance(value, int) and not isinstance(value, bool) and value >= 10**12:
            found.append(f"{where} = {value} looks like epoch milliseconds not named *_ms")
        if key not in keys:
            found.append(f"{where} is not documented")
            continue
        doc = keys[key]
        if doc.is_list != isinstance(value, list):
            found.append(f"{where}: documented {'as' if doc.is_list else 'not as'} a list")
            continue
        values = value if isinstance(value, list) else [value]
        if doc.is_map or doc.node is not None:
            for n, item in enumerate(values):
                at = f"{where}[{n}]" if doc.is_list else where
                if not isinstance(item, dict):
                    found.append(f"{at} = {item!r}: documented as an object or map")
                elif doc.node is not None:
                    found += undocumented(item, doc.node, schemas, at)
    return found


def _time_problems(data: dict[str, Any], key: str, where: str) -> list[str]:
    value, ms = data[key], data.get(f"{key}_ms")
    if not isinstance(value, str) or not ISO_UTC.match(value):
        return [f"{where} = {value!r} is not a UTC ISO-8601 string with milliseconds"]
    if ms is None:
        return [f"{where} has no {key}_ms beside it"]
    if round(datetime.fromisoformat(value).timestamp() * 1000) != ms:
        return [f"{where} = {value} is not {key}_ms = {ms}"]
    return []


def missing_top_level(data: dict[str, Any], node: Node, schemas: dict[str, Node]) -> set[str]:
    return set(keys_of(node, schemas)) - set(data)


# ---- the scenario, and every command's output in it ----


@pytest.fixture(scope="module")
def outputs(tmp_path_factory, _migrated_sqlite) -> dict[str, Any]:
    """Every command's output (JSON, and text where the tests read it), in on-call order:
    look (show, diff, impact, timeline, check), plan (restore --dry-run), restore, roll back,
    look again (show with --at, timeline with a window, export, reindex)."""
    where = tmp_path_factory.mktemp("json-schema")
    start = int(time.time() * 1000)
    churn = build(where, _migrated_sqlite)
    champion_v2 = int(time.time() * 1000)
    uri = churn.uri

    def run(*args: str, code: int = 0) -> str:
        result = CliRunner().invoke(cli, [*args, "--tracking-uri", uri])
        assert result.exit_code == code, result.output
        assert "Traceback" not in result.output
        return result.stdout

    def as_json(*args: str) -> dict[str, Any]:
        return json.loads(run(*args, "--json"))

    out: dict[str, Any] = {"churn": churn, "text": {}}
    out["text"]["diff"] = run("diff", "churn", "1", "2")
    out["text"]["timeline"] = run("timeline", "--model", "churn")
    out["text"]["restore_dry_run"] = run(
        "restore", "churn", "1", "--dry-run", "--allow-undo-deletes"
    )
    out["diff"] = as_json("diff", "churn", "1", "2")
    out["timeline_model"] = as_json("timeline", "--model", "churn")
    out["impact"] = as_json("impact", "customers", "--from-version", "1", "--to-version", "2")
    out["check"] = as_json("check", "churn", "1")
    out["restore_dry_run"] = as_json("restore", "churn", "1", "--dry-run", "--allow-undo-deletes")
    out["rollback_dry_run"] = as_json("rollback", "churn", "1", "--dry-run", "--allow-undo-deletes")
    out["restore"] = as_json(
        "restore", "churn", "1", "--allow-undo-deletes", "--yes", "--reason", "bad UPDATE"
    )
    out["rollback"] = as_json("rollback", "churn", "1", "--alias", "champion", "--yes")
    out["show_good"] = as_json("show", "churn", "1")
    out["show_reproduction"] = as_json("show", "churn", "3")
    out["show_at"] = as_json("show", "churn", "champion", "--at", str(champion_v2))
    out["timeline_table"] = as_json(
        "timeline", "--table", "customers", "--since", str(start), "--until", "now"
    )
    out["export"] = as_json("export", "-o", str(where / "lineage.tar.gz"))
    out["reindex"] = as_json("reindex")
    out["times"] = {"start": start, "champion_v2": champion_v2}
    # last: the damaged version 2 and its run are deleted (the history stays)
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    damaged_run = client.get_model_version("churn", "2").run_id
    client.delete_model_version("churn", "2")
    client.delete_run(damaged_run)
    out["impact_deleted"] = as_json("impact", "customers", "--include-deleted")
    out["show_deleted"] = as_json("show", "churn", "2")
    out["timeline_deleted"] = as_json("timeline", "--model", "churn")
    return out


@pytest.fixture(scope="module")
def schemas() -> dict[str, Node]:
    return documented_schemas(README.read_text(encoding="utf-8"))


# (output, command schema, documented top-level keys this scenario legitimately lacks)
CASES = [
    ("diff", "diff", set()),
    ("timeline_model", "timeline", {"table", "since", "until", "warnings"}),  # logs readable
    ("timeline_table", "timeline", {"model", "warnings"}),
    ("impact", "impact", {"include_deleted"}),
    ("impact_deleted", "impact", {"from_version", "to_version"}),
    ("check", "check", set()),
    ("restore_dry_run", "restore", {"event_id"}),  # nothing written, nothing recorded
    ("restore", "restore", set()),
    ("rollback_dry_run", "rollback", {"verified", "reproduce", "pointed", "previous_holder"}),
    ("rollback", "rollback", {"retrain"}),  # only a dry run says what it would retrain
    ("show_good", "show", {"at", "held_at", "reproduces", "deleted_at"}),  # a plain version
    ("show_reproduction", "show", {"at", "held_at", "deleted_at"}),
    ("show_at", "show", {"reproduces", "deleted_at"}),
    ("show_deleted", "show", {"at", "held_at", "reproduces", "stage"}),
    ("timeline_deleted", "timeline", {"table", "since", "until", "warnings"}),
    ("export", "export", set()),
    ("reindex", "reindex", set()),
]


@pytest.mark.parametrize(("output", "command", "absent"), CASES, ids=[c[0] for c in CASES])
def test_the_json_is_what_the_readme_documents(outputs, schemas, output, command, absent):
    data = outputs[output]
    assert command in schemas, f"README's JSON schemas have no item for `{command}`"
    assert missing_top_level(data, schemas[command], schemas) == absent
    assert undocumented(data, schemas[command], schemas, command) == []


def test_every_command_with_json_is_documented(schemas):
    for command in cli.commands:
        assert command in schemas, f"`{command} --json` is not in README's JSON schemas"


def test_the_check_fails_on_an_undocumented_key_an_epoch_time_and_a_stale_doc(outputs, schemas):
    """The checks above can fail: each kind of drift is reported."""
    data = copy.deepcopy(outputs["diff"])
    commit = data["data"][0]["commits"][0]
    commit["surprise"] = 1
    commit["timestamp"] = commit["timestamp_ms"]
    del commit["timestamp_ms"]
    data["data"][0]["when"] = 1_796_000_000_000
    found = undocumented(data, schemas["diff"], schemas, "diff")
    assert "diff.data[0].commits[0].surprise is not documented" in found
    assert any("commits[0].timestamp = 17" in p and "ISO-8601" in p for p in found)
    assert any("diff.data[0].when" in p and "epoch milliseconds" in p for p in found)
    del data["params"]
    assert missing_top_level(data, schemas["diff"], schemas) == {"params"}
    broken = documented_schemas("**JSON schemas**\n\n- `x`: `a` {*nothing*}.\n\n## next\n")
    with pytest.raises(AssertionError, match="nothing"):
        keys_of(broken["x"].keys["a"].node, broken)


def test_times_are_iso_with_ms_and_commit_metrics_are_numbers(outputs):
    show = outputs["show_good"]
    read = show["run"]["inputs"][0]
    assert ISO_UTC.match(read["commit_timestamp"]) and isinstance(read["commit_timestamp_ms"], int)
    assert all(ISO_UTC.match(e["time"]) and "time_ms" in e for e in show["history"])
    assert ISO_UTC.match(show["created"]) and isinstance(show["created_ms"], int)
    update = outputs["diff"]["data"][0]["commits"][0]
    assert update["operation"] == "UPDATE" and update["metrics"]["num_updated_rows"] == 600
    assert ISO_UTC.match(update["timestamp"]) and isinstance(update["timestamp_ms"], int)
    undone = outputs["restore"]["plan"]["tables"][0]["commits"]
    assert [c["metrics"].get("num_deleted_rows") for c in undone] == [None, 200]
    timeline = outputs["timeline_table"]
    assert timeline["since_ms"] == outputs["times"]["start"]
    assert ISO_UTC.match(timeline["since"]) and ISO_UTC.match(timeline["until"])
    assert outputs["show_at"]["at_ms"] == outputs["times"]["champion_v2"]
    assert outputs["show_at"]["held_at"] == {"stage": "None", "aliases": ["champion"]}


def test_the_stored_records_keep_epoch_milliseconds(outputs):
    """Only the output changed: the manifest tag and the event tags hold ms, as before."""
    from helpers import tracking_at
    from mlflow import MlflowClient

    from lineage_plugin import tags as T
    from lineage_plugin.events import EVENT_PREFIX

    with tracking_at(outputs["churn"].uri):
        mv = MlflowClient().get_model_version("churn", "1")
    events = [json.loads(v) for k, v in mv.tags.items() if k.startswith(EVENT_PREFIX)]
    assert {e["kind"] for e in events} >= {"alias_set", "restore", "verification"}
    assert all(isinstance(e["time"], int) for e in events)
    inputs = T.model_version_lineage(mv).inputs
    shown = outputs["show_good"]["run"]["inputs"]
    assert [i.commit_timestamp for i in inputs] == [i["commit_timestamp_ms"] for i in shown]


# ---- point 5: the damage is in the timeline and in the text diff ----


def test_the_model_timeline_shows_the_update_nobody_read(outputs):
    data = outputs["timeline_model"]
    commits = [e for e in data["entries"] if e["kind"] == "commit"]
    assert [(c["table_version"], c["operation"], c["read"]) for c in commits] == [
        (0, "WRITE", True),
        (1, "UPDATE", False),
        (2, "DELETE", True),
    ]
    runs = {e["version"]: e["run_id"] for e in data["entries"] if e["kind"] == "run"}
    assert [c.get("read_by") for c in commits] == [[runs["1"]], None, [runs["2"]]]
    assert commits[1]["parameters"] == {"predicate": "customer_id < 600"}
    assert commits[1]["metrics"]["num_updated_rows"] == 600
    text = outputs["text"]["timeline"]
    [update] = [line for line in text.splitlines() if "customers@v1" in line]
    assert "UPDATE where customer_id < 600" in update and "NOT READ by any run" in update
    [write] = [line for line in text.splitlines() if "customers@v0" in line]
    assert "read by 1 run" in write


def test_after_the_restore_the_timeline_still_shows_the_damage_and_the_restore(outputs):
    after = outputs["timeline_table"]
    commits = {e["table_version"]: e for e in after["entries"] if e["kind"] == "commit"}
    assert [commits[v]["operation"] for v in sorted(commits)] == [
        "WRITE",
        "UPDATE",
        "DELETE",
        "RESTORE",
    ]
    assert commits[1]["read"] is False and commits[3]["read"] is False
    assert len(commits[0]["read_by"]) == 2  # v1's run and its reproduction
    kinds = [e["kind"] for e in after["entries"]]
    assert "restore" in kinds and "verification" in kinds


def test_the_model_timeline_window_still_applies(outputs):
    churn = outputs["churn"]
    update = outputs["timeline_model"]["entries"]
    update_ms = next(e["time_ms"] for e in update if e.get("table_version") == 1)
    result = CliRunner().invoke(
        cli,
        ["timeline", "--model", "churn", "--until", str(update_ms), "--json"]
        + ["--tracking-uri", churn.uri],
    )
    assert result.exit_code == 0, result.output
    entries = json.loads(result.stdout)["entries"]
    assert [e["table_version"] for e in entries if e["kind"] == "commit"] == [0, 1]
    assert json.loads(result.stdout)["until_ms"] == update_ms


def test_the_text_diff_shows_each_commits_predicate(outputs):
    text = outputs["text"]["diff"]
    lines = text.splitlines()
    update = next(i for i, line in enumerate(lines) if "UPDATE" in line)
    assert lines[update + 1].strip() == "predicate: customer_id < 600"
    delete = next(i for i, line in enumerate(lines) if "DELETE" in line)
    assert lines[delete + 1].strip() == "predicate: customer_id >= 1800"
    for commit in outputs["diff"]["data"][0]["commits"]:
        for key, value in commit["parameters"].items():
            assert f"{key}: {value}" in text
    assert "predicate: customer_id >= 1800" in outputs["text"]["restore_dry_run"]


def test_a_table_whose_log_cannot_be_read_is_a_warning_in_the_documented_form(outputs, schemas):
    churn = outputs["churn"]
    moved = churn.table.with_name("customers-moved")
    churn.table.rename(moved)
    try:
        result = CliRunner().invoke(
            cli, ["timeline", "--model", "churn", "--json", "--tracking-uri", churn.uri]
        )
    finally:
        moved.rename(churn.table)
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert [e for e in data["entries"] if e["kind"] == "commit"] == []
    [warning] = data["warnings"]
    assert "Commits of file://" in warning and "are not shown" in warning
    assert missing_top_level(data, schemas["timeline"], schemas) == {"table", "since", "until"}
    assert undocumented(data, schemas["timeline"], schemas, "timeline") == []
