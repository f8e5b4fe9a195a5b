"""The generated MLflow registry ``bench_reindex.py`` rebuilds the index from (cached).

An empty database is made and migrated by MLflow's own stores; runs, tags and the registry
are then bulk-inserted with ``sqlite3``, in the shape the plugin writes them: run tags from
``lineage_plugin.tags`` (as ``tracking/writer.py`` writes them), model-version tags as
``store/attach.py`` attaches them, events planned by ``lineage_plugin.events``.

For ``runs`` runs: 10 reads each of 200 tables; 20 experiments plus a deleted one (every
50th run); ``runs // 500`` registered models of 10 versions. About 1% of the runs are
deleted, 2% have no lineage, 3% are incomplete (with a reason), 0.5% have a 1,500-column read
split over ``.partN`` tags, 0.5% have an empty ``name`` column (the name only in
``mlflow.runName``, as older MLflow left it), 1% of the reads are restored copies. Every
version goes to Staging, every second one gets ``challenger``, every third goes to Production
(archiving the previous one) with ``champion``; every fifth model has its last version
deleted (the events of its aliases on the registered model). One prompt, which reindex leaves
out. No params, metrics or dataset inputs: ``search_runs`` would also load those.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

GENERATOR_VERSION = 1
T0 = 1_730_419_200_000  # 2024-11-01T00:00:00Z
DAY = 86_400_000
USERS = ("alice", "bob", "carol", "dan", "erin", "frank", "grace", "heidi")
PYTHONS = (("3.11.9", "1.1.4", "1.5.2"), ("3.12.7", "1.2.0", "1.6.1"))
WIDE = tuple(f"feature_{c:04d}" for c in range(1500))


@dataclass(frozen=True)
class Shape:
    runs: int
    reads: int = 10
    tables: int = 200
    experiments: int = 20
    versions: int = 10

    @property
    def models(self) -> int:
        return max(4, self.runs // 500)


def run_records(s: Shape) -> Iterator[tuple[int, str, Any, dict[str, bool]]]:
    """(index, run id, ``RunLineage`` or None, flags) per run, the same every time."""
    from lineage_plugin.records import CodeVersion, DeltaInput, Environment, RunLineage

    rng = random.Random(20241101)
    envs = [
        Environment(
            python=py,
            platform="Linux-6.8.0-1017-aws-x86_64-with-glibc2.39",
            packages={"deltalake": dl, "mlflow": "3.17.2", "numpy": "2.1.3", "scikit-learn": sk},
        )
        for py, dl, sk in PYTHONS
    ]
    for i in range(s.runs):
        run_id = f"{rng.getrandbits(128):032x}"
        flags = {"deleted": i % 97 == 5, "bare": i % 53 == 7, "unnamed": i % 211 == 9}
        if flags["bare"]:
            yield i, run_id, None, flags
            continue
        inputs = []
        for n, t in enumerate(rng.sample(range(s.tables), s.reads)):
            version = rng.randrange(1000)
            restored = version - 3 if (i + n) % 101 == 13 and version > 3 else None
            inputs.append(
                DeltaInput(
                    uri=f"file:///lake/table_{t:03d}",
                    version=version,
                    engine="polars" if rng.random() < 0.2 else "deltalake",
                    context="evaluation" if n >= s.reads - 2 else "training",
                    table_id=f"{t:08d}-0000-4000-8000-{t:012d}",
                    name=f"table_{t:03d}",
                    commit_timestamp=T0 - DAY + version * 60_000,
                    timestamp_source="commitInfo.timestamp",
                    operation="RESTORE" if restored is not None else "WRITE",
                    restored_from=restored,
                    columns=WIDE if n == 0 and i % 199 == 11 else None,
                )
            )
        incomplete = i % 31 == 3
        record = RunLineage(
            run_id=run_id,
            status="incomplete" if incomplete else "complete",
            inputs=tuple(inputs),
            reasons=("a read through Spark Connect", "a derived table") if incomplete else (),
            environment=envs[i % len(envs)],
            code=CodeVersion(
                argv=("train.py", "--seed", str(i % 7)),
                cwd="/srv/ml",
                git_commit=f"{i // 100:040x}",
                git_dirty=i % 17 == 0,
            ),
        )
        yield i, run_id, record, flags


def run_tags(record: Any) -> dict[str, str]:
    """The ``lineage.*`` tags the plugin writes on a run (``tracking/writer.py``)."""
    from lineage_plugin import tags as T
    from lineage_plugin.records import to_json

    limit = T.run_tag_value_limit()
    tags = {T.SCHEMA: str(T.SCHEMA_VERSION)}
    tags.update(T.environment_tags(record.environment))
    tags.update(T.code_tags(record.code, limit))
    for n, inp in enumerate(record.inputs):
        tags.update(T.split_value(T.input_key(n), to_json(inp.to_dict()), limit))
    tags[T.TABLES] = T.tables_summary(record.inputs, limit)
    tags[T.STATUS] = record.status
    if record.reasons:
        tags.update(T.split_value(T.REASON, "\n".join(record.reasons), limit))
    return tags


def version_tags(run_id: str, record: Any, lineage: dict[str, str]) -> dict[str, str]:
    """The tags the plugin attaches to a new model version (``store/attach.py``)."""
    from lineage_plugin import tags as T

    if record is None:
        return {T.STATUS: T.MISSING, T.RUN_ID: run_id, T.REASON: "no Delta inputs"}
    out = {**lineage, T.RUN_ID: run_id, T.STATUS: record.status}
    out.update(
        T.split_value(T.MANIFEST, T.manifest_json(record), T.model_version_tag_value_limit())
    )
    return out


class State:
    """One model's registry state while its history is planned (a ``RegistryState``)."""

    def __init__(self, runs: dict[str, tuple[str, Any]]) -> None:
        self.runs = runs
        self.stage: dict[str, str] = {}
        self.aliases: dict[str, str] = {}

    def version(self, version: str) -> Any:
        from lineage_plugin.events import VersionState

        run_id, record = self.runs[version]
        held = tuple(sorted(a for a, v in self.aliases.items() if v == version))
        tables = record.inputs if record else ()
        return VersionState(version=version, aliases=held, run_id=run_id, tables=tables)

    def stage_of(self, version: str) -> str:
        return self.stage.get(version, "None")

    def alias_holder(self, alias: str) -> str | None:
        return self.aliases.get(alias)

    def versions_in_stage(self, stage: str) -> list[str]:
        return [v for v, s in self.stage.items() if s == stage]


def model_history(name: str, state: State, versions: int, t: int, delete_last: bool) -> tuple:
    """Plan one model's history with the plugin's planners (see the module doc).

    Returns:
        (tag writes per version, tags of the registered model, last change per version).
    """
    from lineage_plugin import events as E

    written: dict[str, dict[str, str | None]] = {}
    on_model: dict[str, str] = {}
    touched: dict[str, int] = {}

    def apply(change: Any, now: int) -> None:
        for version, tags in change.version_tags.items():
            written.setdefault(version, {}).update(tags)
            touched[version] = now
        on_model.update(change.model_tags)

    for k in range(versions):
        v, now = str(k + 1), t + k * DAY
        touched[v] = now
        apply(E.plan_transition(state, name, v, "Staging", False, user="ci", now=now + 1), now)
        state.stage[v] = "Staging"
        if k % 2 == 1:
            apply(E.plan_alias_set(state, name, "challenger", v, user="ci", now=now + 2), now)
            state.aliases["challenger"] = v
        if k % 3 == 2:
            plan = E.plan_transition(state, name, v, "Production", True, user="ci", now=now + 3)
            apply(plan, now)
            for other in state.versions_in_stage("Production"):
                state.stage[other] = "Archived"
            state.stage[v] = "Production"
            apply(E.plan_alias_set(state, name, "champion", v, user="ci", now=now + 4), now)
            state.aliases["champion"] = v
    if delete_last:
        last = str(versions)
        apply(E.plan_version_delete(state, name, last, user="ci", now=t + 99 * DAY), t + 99 * DAY)
        state.aliases = {a: v for a, v in state.aliases.items() if v != last}
        state.stage[last] = "Deleted_Internal"  # MLflow's soft delete
    return written, on_model, touched


RUN_INSERT = (
    "INSERT INTO runs (run_uuid, name, user_id, start_time, end_time, lifecycle_stage, "
    "deleted_time, experiment_id, source_type, source_name, entry_point_name, status, "
    "source_version, artifact_uri) VALUES "
    "(?, ?, ?, ?, ?, ?, ?, ?, 'LOCAL', 'train.py', '', 'FINISHED', '', '/artifacts')"
)


def write_runs(con: sqlite3.Connection, s: Shape, log: Callable[[str], None]) -> tuple:
    """Experiments, runs and their tags; returns (counts, the runs behind model versions)."""
    rows = [
        (e, f"team-{e:02d}", f"/artifacts/{e}", "active", T0, T0)
        for e in range(1, s.experiments + 1)
    ]
    rows.append((s.experiments + 1, "retired", "/artifacts/old", "deleted", T0, T0))
    con.executemany(
        "INSERT INTO experiments (experiment_id, name, artifact_location, lifecycle_stage, "
        "creation_time, last_update_time, workspace) VALUES (?, ?, ?, ?, ?, ?, 'default')",
        rows,
    )
    behind: dict[int, tuple[str, Any, dict[str, str]]] = {}
    stride = s.runs // (s.models * s.versions)
    counts = {"runs": 0, "tags": 0}
    runs, tags = [], []
    for i, run_id, record, flags in run_records(s):
        start, name, user = T0 + i * 60_000, f"train-{i:06d}", USERS[i % len(USERS)]
        experiment = s.experiments + 1 if i % 50 == 25 else 1 + i % s.experiments
        deleted = "deleted" if flags["deleted"] else "active"
        runs.append(
            (
                run_id,
                "" if flags["unnamed"] else name,
                user,
                start,
                start + 1_800_000,
                deleted,
                start + DAY if flags["deleted"] else None,
                experiment,
            )
        )
        lineage = run_tags(record) if record else {}
        own = {"mlflow.user": user, "mlflow.runName": name, "mlflow.source.name": "train.py"}
        tags.extend((k, v, run_id) for k, v in {**own, **lineage}.items())
        if i % stride == 0:
            behind[i // stride] = (run_id, record, lineage)
        if len(runs) == 5000 or i == s.runs - 1:
            con.executemany(RUN_INSERT, runs)
            con.executemany("INSERT INTO tags (key, value, run_uuid) VALUES (?, ?, ?)", tags)
            counts["runs"] += len(runs)
            counts["tags"] += len(tags)
            runs, tags = [], []
            if (i + 1) % max(5000, s.runs // 5) == 0:
                log(f"[setup]   runs: {i + 1}/{s.runs}")
    return counts, behind


def write_registry(con: sqlite3.Connection, s: Shape, behind: dict) -> dict[str, int]:
    """Registered models, versions, their tags and aliases, and one prompt."""
    rm, rm_tags, mv, mv_tags, aliases = [], [], [], [], []
    for m in range(s.models):
        name, t = f"model-{m:03d}", T0 + DAY * m
        sources = {str(k + 1): behind[m * s.versions + k] for k in range(s.versions)}
        state = State({v: source[:2] for v, source in sources.items()})
        written, on_model, touched = model_history(name, state, s.versions, t, m % 5 == 4)
        rm.append((name, t, t + 99 * DAY))
        rm_tags.extend((k, v, name) for k, v in on_model.items())
        for v, (run_id, record, lineage) in sources.items():
            tags = version_tags(run_id, record, lineage)
            for key, value in written.get(v, {}).items():
                if value is None:
                    tags.pop(key, None)
                else:
                    tags[key] = value
            mv.append((name, int(v), t + (int(v) - 1) * DAY, touched[v], state.stage_of(v), run_id))
            mv_tags.extend((key, value, name, int(v)) for key, value in tags.items())
        aliases.extend((a, int(v), name) for a, v in state.aliases.items())
    rm.append(("greeting", T0, T0))  # a prompt: MLflow keeps prompts as registered models
    rm_tags.append(("mlflow.prompt.is_prompt", "true", "greeting"))
    mv.append(("greeting", 1, T0, T0, "None", None))
    mv_tags += [
        ("mlflow.prompt.is_prompt", "true", "greeting", 1),
        ("mlflow.prompt.text", "Hello {{name}}", "greeting", 1),
    ]
    aliases.append(("production", 1, "greeting"))
    into = {
        "registered_models (name, creation_time, last_updated_time": rm,
        "registered_model_tags (key, value, name": rm_tags,
        "model_versions (name, version, creation_time, last_updated_time, current_stage, "
        "run_id": mv,
        "model_version_tags (key, value, name, version": mv_tags,
        "registered_model_aliases (alias, version, name": aliases,
    }
    for table, rows in into.items():
        marks = ", ".join("?" * len(rows[0]))
        con.executemany(f"INSERT INTO {table}, workspace) VALUES ({marks}, 'default')", rows)
    return {"model_versions": len(mv), "model_version_tags": len(mv_tags)}


def cached_database(wd: Path, runs: int, regenerate: bool, env: dict[str, str]) -> tuple:
    """The generated database for ``runs`` runs (made when missing or stale), and its facts."""
    from importlib.metadata import version

    s = Shape(runs)
    root = wd / "reindex" / f"r{runs}"
    db, marker = root / "mlflow.db", root / "generated.json"
    want = {"generator": GENERATOR_VERSION, "shape": asdict(s), "mlflow": version("mlflow")}
    if not regenerate and marker.exists() and db.exists():
        facts = json.loads(marker.read_text())
        if all(facts.get(k) == v for k, v in want.items()):
            return db, facts
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    partial = root / "partial.db"
    print(f"[setup] generating {runs} runs into {root} (cached) ...", flush=True)
    started = time.perf_counter()
    code = (
        "import sys; from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore as T; "
        "from mlflow.store.model_registry.sqlalchemy_store import SqlAlchemyStore as R; "
        "u = 'sqlite:///' + sys.argv[1]; T(u, sys.argv[2]); R(u)"
    )
    command = [sys.executable, "-c", code, str(partial), str(root / "artifacts")]
    subprocess.run(command, env=env, check=True, capture_output=True)  # MLflow's migrations
    con = sqlite3.connect(partial)
    con.execute("PRAGMA journal_mode=MEMORY")  # generating only: the file is thrown away
    con.execute("PRAGMA synchronous=OFF")  # if anything fails
    counts, behind = write_runs(con, s, lambda m: print(m, flush=True))
    counts.update(write_registry(con, s, behind))
    con.commit()
    con.close()
    facts = {**want, **counts, "seconds": round(time.perf_counter() - started, 1)}
    os.replace(partial, db)
    marker.write_text(json.dumps(facts, indent=1))
    return db, facts
