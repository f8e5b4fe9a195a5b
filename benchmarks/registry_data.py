"""The generated registry that ``bench_queries.py`` queries (deterministic, cached).

At full size, 100,000 runs over one year in 20 experiments, each reading 10 versions of 200
Delta tables of 1,000 versions each (1,000,000 run -> table-version edges); 500 registered
models x 20 versions (10,000 model versions, each from a distinct run), with stage transitions
and alias changes recorded as the plugin records them (every model ends with one
``Production`` version and a ``champion`` alias). MLflow's own tables are written directly
with bulk SQL into a database MLflow created and migrated itself, with tags exactly as the
plugin writes them (built with ``lineage_plugin.tags``/``records``, events planned with
``lineage_plugin.events``). The Delta tables are local ``_delta_log`` directories (commit
files only, no data files), so queries that read table history can. The lineage index is then
filled by ``lineage_plugin.queries.reindex`` (timed) when it exists, else by
``LineageIndex.rebuild`` from the generated records.

Generated once per scale into ``<workdir>/queries/<Scale.key>/`` and reused while
``GENERATOR_VERSION``, the scale and the mlflow version are unchanged (bump
``GENERATOR_VERSION`` when what is generated changes).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass

GENERATOR_VERSION = 1
DAY = 86_400_000
T0 = 1_730_419_200_000  # 2024-11-01T00:00:00Z: the first run starts here
DOMAINS = ("sales", "customers", "orders", "events", "clicks", "inventory", "payments", "ledger")
USERS = ("alice", "bob", "carol", "dan", "erin", "frank", "grace", "heidi", "ivan", "judy")
RUN_BATCH = 5000


@dataclass(frozen=True)
class Scale:
    runs: int
    tables: int
    table_versions: int
    reads_per_run: int
    models: int
    versions_per_model: int
    experiments: int
    days: int

    @property
    def key(self) -> str:
        return f"r{self.runs}-t{self.tables}x{self.table_versions}-m{self.models}x" + str(
            self.versions_per_model
        )


FULL = Scale(100_000, 200, 1000, 10, 500, 20, 20, 365)
QUICK = Scale(10_000, 50, 200, 10, 50, 20, 5, 365)


class World:
    """Deterministic tables, runs and registry of one scale."""

    def __init__(self, scale: Scale, lake: str) -> None:
        import uuid

        from lineage_plugin.delta.log import normalize_uri

        self.s = scale
        self.span = scale.days * DAY
        self.step = self.span / scale.table_versions  # time between two commits of a table
        self.names = [f"{DOMAINS[t % len(DOMAINS)]}_{t:03d}" for t in range(scale.tables)]
        self.paths = [os.path.join(lake, n) for n in self.names]
        self.uris = [normalize_uri(p) for p in self.paths]
        self.ids = [str(uuid.uuid5(uuid.NAMESPACE_URL, u)) for u in self.uris]
        self.offsets = [(t * 7919) % 3_600_000 for t in range(scale.tables)]
        self.mv_stride = scale.runs // (scale.models * scale.versions_per_model)
        if self.mv_stride < 1:
            raise SystemExit("more model versions than runs")

    # tables -----------------------------------------------------------------------------
    def commit_ts(self, t: int, v: int) -> int:
        return int(T0 - 2 * DAY + v * self.step) + self.offsets[t]

    def latest_at(self, t: int, ts: int) -> int:
        v = int((ts - self.offsets[t] - (T0 - 2 * DAY)) // self.step)
        return max(0, min(self.s.table_versions - 1, v))

    @staticmethod
    def operation(t: int, v: int) -> str:
        if v == 0:
            return "CREATE TABLE"
        return "MERGE" if (t + v) % 3 == 0 else "WRITE"

    # runs -------------------------------------------------------------------------------
    def runs(self):
        """Yield (index, run_id, experiment_id, start, end, user, RunLineage) in order."""
        import random

        from lineage_plugin.records import CodeVersion, DeltaInput, Environment, RunLineage

        rng = random.Random(20241101)
        slot = self.span // self.s.runs
        envs = [
            Environment(
                python=py,
                platform="Linux-6.8.0-1017-aws-x86_64-with-glibc2.39",
                packages={
                    "deltalake": dl,
                    "mlflow": "3.17.2",
                    "mlflow-delta-lineage": "0.1.0",
                    "numpy": "2.1.3",
                    "pandas": "2.2.3",
                    "pyarrow": "19.0.1",
                    "scikit-learn": sk,
                },
            )
            for py, dl, sk in (
                ("3.11.9", "1.1.4", "1.5.2"),
                ("3.11.9", "1.2.0", "1.6.1"),
                ("3.12.7", "1.2.0", "1.6.1"),
            )
        ]
        lags = (0, 0, 0, 0, 1, 1, 2, 5)
        for i in range(self.s.runs):
            run_id = f"{rng.getrandbits(128):032x}"
            start = T0 + i * slot + rng.randrange(slot)
            end = start + rng.randrange(5 * 60_000, 90 * 60_000)
            experiment = 1 + i % self.s.experiments
            inputs = []
            for n, t in enumerate(rng.sample(range(self.s.tables), self.s.reads_per_run)):
                v = max(0, self.latest_at(t, start) - rng.choice(lags))
                inputs.append(
                    DeltaInput(
                        uri=self.uris[t],
                        version=v,
                        engine="polars" if rng.random() < 0.2 else "deltalake",
                        context="evaluation"
                        if n >= max(1, self.s.reads_per_run - 2)
                        else "training",
                        table_id=self.ids[t],
                        name=self.names[t],
                        commit_timestamp=self.commit_ts(t, v),
                        timestamp_source="commitInfo.timestamp",
                        operation=self.operation(t, v),
                    )
                )
            record = RunLineage(
                run_id=run_id,
                status="complete",
                inputs=tuple(inputs),
                environment=envs[(i * len(envs)) // self.s.runs],
                code=CodeVersion(
                    argv=("train.py", "--config", f"conf/exp{experiment:02d}.yaml"),
                    cwd=f"/home/{USERS[i % len(USERS)]}/ml/project-{experiment:02d}",
                    git_commit=f"{(i // 250) * 2654435761 % (1 << 160):040x}",
                    git_dirty=i % 17 == 0,
                ),
            )
            yield i, run_id, experiment, start, end, USERS[i % len(USERS)], record

    def mv_run_index(self, model: int, k: int) -> int:
        """The run behind version ``k + 1`` of model ``model`` (distinct for every pair)."""
        return (k * self.s.models + model) * self.mv_stride + model % self.mv_stride

    def model_name(self, model: int) -> str:
        return f"{DOMAINS[model % len(DOMAINS)]}-model-{model:03d}"


def run_tags(record) -> dict[str, str]:
    """The run tags the plugin writes for ``record`` (see tracking/writer.py)."""
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
    return tags


def version_tags(record, lineage_run_tags: dict[str, str]) -> dict[str, str]:
    """The model-version tags the plugin attaches (see store/attach.py)."""
    from lineage_plugin import tags as T

    out = dict(lineage_run_tags)
    out.update({T.RUN_ID: record.run_id, T.STATUS: record.status})
    out.update(
        T.split_value(T.MANIFEST, T.manifest_json(record), T.model_version_tag_value_limit())
    )
    return out


class ModelState:
    """A registered model's state while its history is generated (a RegistryState)."""

    def __init__(self) -> None:
        from lineage_plugin.events import VersionState

        self.VersionState = VersionState
        self.versions: dict[str, object] = {}
        self.stage: dict[str, str] = {}
        self.aliases: dict[str, str] = {}

    def version(self, version: str):
        base = self.versions[version]
        fields = {
            "version": version,
            "stage": self.stage_of(version),
            "aliases": tuple(sorted(a for a, v in self.aliases.items() if v == version)),
            "run_id": base.run_id,
            "tables": base.inputs,
        }
        known = self.VersionState.__dataclass_fields__
        return self.VersionState(**{k: v for k, v in fields.items() if k in known})

    def stage_of(self, version: str) -> str:
        return self.stage.get(version, "None")

    def alias_holder(self, alias: str) -> str | None:
        return self.aliases.get(alias)

    def versions_in_stage(self, stage: str) -> list[str]:
        return [v for v, s in self.stage.items() if s == stage]


class History:
    """One registered model's history as it is generated: each registry call is planned by
    ``lineage_plugin.events`` against the state before it (as the plugin's stores do), its
    events and tag writes kept, and the state changed as MLflow would change it."""

    def __init__(self, world: World, model: int) -> None:
        self.name = world.model_name(model)
        self.user = USERS[model % len(USERS)]
        self.state = ModelState()
        self.events: list = []
        self.tag_writes: dict[str, dict[str, str | None]] = {}
        self.last_touch: dict[str, int] = {}

    def register(self, version: str, record) -> None:
        """A new version, trained by the run of ``record`` (a RunLineage)."""
        self.state.versions[version] = record

    def _apply(self, change, when: int) -> None:
        self.events.extend(change.events)
        for version, tags in change.version_tags.items():
            self.tag_writes.setdefault(version, {}).update(tags)
            self.last_touch[version] = when

    def transition(self, version: str, stage: str, archive: bool, when: int) -> None:
        """``transition_model_version_stage`` (``archive``: archive_existing_versions)."""
        from lineage_plugin import events as E

        plan = E.plan_transition(
            self.state, self.name, version, stage, archive, user=self.user, now=when
        )
        self._apply(plan, when)
        if archive:
            for other in self.state.versions_in_stage(stage):
                if other != version:
                    self.state.stage[other] = "Archived"
        self.state.stage[version] = stage

    def alias_set(self, alias: str, version: str, when: int) -> None:
        """``set_registered_model_alias``."""
        from lineage_plugin import events as E

        plan = E.plan_alias_set(self.state, self.name, alias, version, user=self.user, now=when)
        self._apply(plan, when)
        self.state.aliases[alias] = version

    def alias_delete(self, alias: str, when: int) -> None:
        """``delete_registered_model_alias``."""
        from lineage_plugin import events as E

        plan = E.plan_alias_delete(self.state, self.name, alias, user=self.user, now=when)
        self._apply(plan, when)
        del self.state.aliases[alias]

    def result(self):
        """(events, tag writes per version, final state, last tag write time per version)."""
        return self.events, self.tag_writes, self.state, self.last_touch


def model_history(world: World, model: int, records: dict[int, object], created: list[int]):
    """The registry history of one model: (events, tag writes per version, final state).

    Per version k (registered at ``created[k]``): to Staging 10 minutes later; every second
    version gets the ``challenger`` alias a day later (deleted again on every 7th); versions
    with (k + model) % 4 == 3 go to Production two days later with
    archive_existing_versions=True and take the ``champion`` alias.
    """
    h = History(world, model)
    for k in range(world.s.versions_per_model):
        v = str(k + 1)
        h.register(v, records[world.mv_run_index(model, k)])
        t = created[k]
        h.transition(v, "Staging", False, t + 10 * 60_000)
        if k % 2 == 1:
            h.alias_set("challenger", v, t + DAY)
            if k % 7 == 6:
                h.alias_delete("challenger", t + DAY + 3_600_000)
        if (k + model) % 4 == 3:
            h.transition(v, "Production", True, t + 2 * DAY)
            h.alias_set("champion", v, t + 2 * DAY + 5 * 60_000)
    return h.result()


def write_delta_logs(world: World, log, checkpoint_every: int | None = None) -> None:
    """One ``_delta_log`` per table: every commit file, no data files.

    With ``checkpoint_every``, deltalake checkpoints the log after every that many commits
    (``DeltaTable.create_checkpoint()``; deltalake's own writers checkpoint every 100 by
    default), as a long-lived table's log has them.
    """
    started = time.perf_counter()
    compact = (",", ":")
    schema = json.dumps(
        {
            "type": "struct",
            "fields": [
                {"name": c, "type": ty, "nullable": True, "metadata": {}}
                for c, ty in (("id", "long"), ("x", "double"), ("y", "double"))
            ],
        },
        separators=compact,
    )
    for t, path in enumerate(world.paths):
        log_dir = os.path.join(path, "_delta_log")
        os.makedirs(log_dir, exist_ok=True)
        for v in range(world.s.table_versions):
            ts = world.commit_ts(t, v)
            op = world.operation(t, v)
            info = {
                "timestamp": ts,
                "operation": op,
                "operationParameters": {"mode": "Append"}
                if op == "WRITE"
                else {"predicate": "id = source.id"}
                if op == "MERGE"
                else {},
                "clientVersion": "delta-rs.py-1.1.4",
                "operationMetrics": {"num_added_rows": 3, "execution_time_ms": 12},
            }
            if v:
                info["readVersion"] = v - 1
            lines = [json.dumps({"commitInfo": info}, separators=compact)]
            if v == 0:
                lines.append('{"protocol":{"minReaderVersion":1,"minWriterVersion":2}}')
                meta = {
                    "id": world.ids[t],
                    "format": {"provider": "parquet", "options": {}},
                    "schemaString": schema,
                    "partitionColumns": [],
                    "configuration": {},
                    "createdTime": ts,
                }
                lines.append(json.dumps({"metaData": meta}, separators=compact))
            add = {
                "path": f"part-{v:05d}-c000.snappy.parquet",
                "partitionValues": {},
                "size": 1130,
                "modificationTime": ts,
                "dataChange": True,
            }
            lines.append(json.dumps({"add": add}, separators=compact))
            with open(os.path.join(log_dir, f"{v:020d}.json"), "w", encoding="utf-8") as fh:
                fh.write("\n".join(lines) + "\n")
            if checkpoint_every and (v + 1) % checkpoint_every == 0:
                from deltalake import DeltaTable

                DeltaTable(path).create_checkpoint()
        if (t + 1) % max(1, world.s.tables // 4) == 0:
            log(
                f"[setup]   delta logs: {t + 1}/{world.s.tables} tables "
                f"({time.perf_counter() - started:.0f} s)"
            )


def write_mlflow(world: World, db: str, artifacts: str, log, history=model_history) -> dict:
    """Experiments, runs, run tags, registered models, versions, their tags and aliases.

    ``history(world, model, records, created)`` makes each model's registry history
    (:func:`model_history` by default).
    """
    import sqlite3

    started = time.perf_counter()
    s = world.s
    con = sqlite3.connect(db)
    con.execute("PRAGMA synchronous=OFF")
    con.execute("PRAGMA journal_mode=MEMORY")
    con.executemany(
        "INSERT INTO experiments (experiment_id, name, artifact_location, lifecycle_stage, "
        "creation_time, last_update_time, workspace) VALUES (?, ?, ?, 'active', ?, ?, 'default')",
        [
            (e, f"team-{DOMAINS[e % len(DOMAINS)]}-{e:02d}", f"{artifacts}/{e}", T0 - DAY, T0)
            for e in range(1, s.experiments + 1)
        ],
    )
    mv_runs = {
        world.mv_run_index(m, k) for m in range(s.models) for k in range(s.versions_per_model)
    }
    records: dict[int, object] = {}
    lineage_tags: dict[int, dict[str, str]] = {}
    run_times: dict[int, tuple[int, int]] = {}
    runs_rows, tag_rows = [], []
    n_tags = 0

    def flush() -> None:
        nonlocal n_tags
        con.executemany(
            "INSERT INTO runs (run_uuid, name, source_type, source_name, entry_point_name, "
            "user_id, status, start_time, end_time, source_version, lifecycle_stage, "
            "artifact_uri, experiment_id) VALUES "
            "(?, ?, 'LOCAL', 'train.py', '', ?, 'FINISHED', ?, ?, '', 'active', ?, ?)",
            runs_rows,
        )
        con.executemany("INSERT INTO tags (key, value, run_uuid) VALUES (?, ?, ?)", tag_rows)
        n_tags += len(tag_rows)
        runs_rows.clear()
        tag_rows.clear()

    for i, run_id, experiment, start, end, user, record in world.runs():
        run_name = f"train-{i:06d}"
        artifact_uri = f"{artifacts}/{experiment}/{run_id}/artifacts"
        runs_rows.append((run_id, run_name, user, start, end, artifact_uri, experiment))
        tags = run_tags(record)
        mlflow_tags = {
            "mlflow.user": user,
            "mlflow.runName": run_name,
            "mlflow.source.name": "train.py",
            "mlflow.source.type": "LOCAL",
            "mlflow.source.git.commit": record.code.git_commit,
        }
        tag_rows.extend((k, v, run_id) for k, v in {**mlflow_tags, **tags}.items())
        if i in mv_runs:
            records[i] = record
            lineage_tags[i] = tags
            run_times[i] = (start, end)
        if len(runs_rows) >= RUN_BATCH:
            flush()
            if (i + 1) % (s.runs // 5) == 0:
                log(f"[setup]   runs: {i + 1}/{s.runs} ({time.perf_counter() - started:.0f} s)")
    flush()
    t_runs = time.perf_counter() - started

    rm_rows, mv_rows, mvt_rows, alias_rows = [], [], [], []
    all_events = []
    for m in range(s.models):
        name = world.model_name(m)
        created = [
            run_times[world.mv_run_index(m, k)][1] + 3_600_000 for k in range(s.versions_per_model)
        ]
        events, tag_writes, state, last_touch = history(world, m, records, created)
        all_events.extend(events)
        rm_rows.append((name, created[0] - 60_000, max([*last_touch.values(), *created])))
        for k in range(s.versions_per_model):
            v = str(k + 1)
            idx = world.mv_run_index(m, k)
            record = records[idx]
            mv_rows.append(
                (
                    name,
                    k + 1,
                    created[k],
                    last_touch.get(v, created[k]),
                    USERS[m % len(USERS)],
                    state.stage.get(v, "None"),
                    f"runs:/{record.run_id}/model",
                    record.run_id,
                    f"{artifacts}/mv/{name}/{v}",
                )
            )
            tags = version_tags(record, lineage_tags[idx])
            for key, value in tag_writes.get(v, {}).items():
                if value is None:
                    tags.pop(key, None)
                else:
                    tags[key] = value
            mvt_rows.extend((key, value, name, k + 1) for key, value in tags.items())
        for alias, v in state.aliases.items():
            alias_rows.append((alias, int(v), name))
    con.executemany(
        "INSERT INTO registered_models (name, creation_time, last_updated_time, description, "
        "workspace) VALUES (?, ?, ?, '', 'default')",
        rm_rows,
    )
    con.executemany(
        "INSERT INTO model_versions (name, version, creation_time, last_updated_time, "
        "description, user_id, current_stage, source, run_id, status, status_message, "
        "run_link, storage_location, workspace) VALUES "
        "(?, ?, ?, ?, '', ?, ?, ?, ?, 'READY', '', '', ?, 'default')",
        mv_rows,
    )
    con.executemany(
        "INSERT INTO model_version_tags (key, value, name, version, workspace) "
        "VALUES (?, ?, ?, ?, 'default')",
        mvt_rows,
    )
    con.executemany(
        "INSERT INTO registered_model_aliases (alias, version, name, workspace) "
        "VALUES (?, ?, ?, 'default')",
        alias_rows,
    )
    con.commit()
    con.close()
    return {
        "run_tags": n_tags,
        "model_version_tags": len(mvt_rows),
        "events": len(all_events),
        "aliases": len(alias_rows),
        "seconds_runs": round(t_runs, 1),
        "seconds_registry": round(time.perf_counter() - started - t_runs, 1),
        "_events": all_events,
    }


def fill_index(world: World, db: str, written: dict, log) -> dict:
    """Fill the lineage index: the plugin's reindex when it exists, else rebuild()."""
    started = time.perf_counter()
    try:
        from lineage_plugin.queries import reindex
    except ImportError:
        reindex = None
    if reindex is not None:

        def progress(message: str) -> None:
            log(f"[setup]   reindex, {time.perf_counter() - started:.0f} s: {message}")

        summary = reindex(tracking_uri=f"lineage+sqlite:///{db}", progress=progress)
        return {
            "how": "lineage_plugin.queries.reindex",
            "seconds": time.perf_counter() - started,
            "summary": summary.to_dict(),
        }
    from lineage_plugin.store.index import LineageIndex, RunRow

    def runs():
        for i, _run_id, experiment, start, end, user, record in world.runs():
            row = RunRow(
                experiment_id=str(experiment),
                run_name=f"train-{i:06d}",
                start_time=start,
                end_time=end,
                user=user,
            )
            yield record, row

    import sqlite3

    con = sqlite3.connect(db)
    try:
        mvs = [
            {"name": n, "version": v, "run_id": r, "created": c, "status": "complete", "deleted": 0}
            for n, v, r, c in con.execute(
                "SELECT name, version, run_id, creation_time FROM model_versions"
            )
        ]
    finally:
        con.close()
    events = sorted(written["_events"], key=lambda e: e.event_id)
    holdings = _replay_holdings(events)
    LineageIndex(f"sqlite:///{db}").rebuild(
        runs=runs(), model_versions=mvs, events=events, holdings=holdings
    )
    return {
        "how": "LineageIndex.rebuild (no reindex yet)",
        "seconds": time.perf_counter() - started,
    }


def _replay_holdings(events) -> list[dict]:
    """What each version holds after the events (the index's _apply_holding, in memory)."""
    held: dict[tuple[str, str, str, int], int] = {}
    for e in events:
        version = int(e.version)
        if e.kind == "alias_set":
            for key in [k for k in held if k[:3] == (e.name, "alias", e.alias)]:
                del held[key]
            held[(e.name, "alias", e.alias, version)] = e.time
        elif e.kind == "alias_deleted":
            held.pop((e.name, "alias", e.alias, version), None)
        elif e.kind == "stage_transition":
            for key in [k for k in held if k[0] == e.name and k[1] == "stage" and k[3] == version]:
                del held[key]
            if e.stage and e.stage != "None":
                held[(e.name, "stage", e.stage, version)] = e.time
    return [
        {"name": n, "kind": k, "label": label, "version": v, "since": t}
        for (n, k, label, v), t in held.items()
    ]


def data_root(wd, scale: Scale, subdir: str = "queries"):
    """Where :func:`ensure_data` keeps the data of ``scale``: ``<wd>/<subdir>/<scale.key>``."""
    return wd / subdir / scale.key


def ensure_data(
    wd,
    scale: Scale,
    regenerate: bool,
    log=print,
    *,
    subdir: str = "queries",
    history=None,
    checkpoint_every: int | None = None,
) -> tuple[str, dict]:
    """The cached database (generated when missing); returns (db path, generation facts).

    Args:
        wd: The benchmarks' cache directory.
        scale: What to generate.
        regenerate: Throw the cached data away first.
        log: Called with progress lines.
        subdir: The cache's sub-directory (one per benchmark that generates its own data).
        history: The models' history (see :func:`write_mlflow`); default :func:`model_history`.
        checkpoint_every: Checkpoint the Delta logs (see :func:`write_delta_logs`); default none.
    """
    import shutil

    import common as C

    root = data_root(wd, scale, subdir)
    db = root / "registry.db"
    marker = root / "generated.json"
    want = {"generator": GENERATOR_VERSION, "scale": asdict(scale), "mlflow": _mlflow_version()}
    if history is not None:
        want["history"] = history.__qualname__  # not its module: __main__ when run as a script
    if checkpoint_every:
        want["checkpoint_every"] = checkpoint_every
    if not regenerate and marker.exists() and db.exists():
        facts = json.loads(marker.read_text())
        if all(facts.get(k) == v for k, v in want.items()):
            return str(db), facts
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    template = C.migrated_sqlite_template(wd)
    partial = root / "registry.partial.db"
    shutil.copyfile(template, partial)
    world = World(scale, str(root / "lake"))
    log(f"[setup] generating {scale.key} into {root} (cached) ...")
    facts = dict(want)
    t0 = time.perf_counter()
    write_delta_logs(world, log, checkpoint_every)
    facts["seconds_delta_logs"] = round(time.perf_counter() - t0, 1)
    log(f"[setup] delta logs written in {facts['seconds_delta_logs']} s")
    written = write_mlflow(
        world, str(partial), (root / "artifacts").as_uri(), log, history or model_history
    )
    facts.update({k: v for k, v in written.items() if not k.startswith("_")})
    log(
        f"[setup] MLflow tables written: runs + tags in {written['seconds_runs']} s, registry "
        f"in {written['seconds_registry']} s"
    )
    index = fill_index(world, str(partial), written, log)
    facts["index"] = {k: (round(v, 1) if k == "seconds" else v) for k, v in index.items()}
    log(f"[setup] index filled by {index['how']} in {index['seconds']:.1f} s")
    facts["seconds_total"] = round(time.perf_counter() - t0, 1)
    os.replace(partial, db)
    marker.write_text(json.dumps(facts, indent=1))
    return str(db), facts


def _mlflow_version() -> str:
    from importlib.metadata import version

    return version("mlflow")


def check_data(db: str, scale: Scale) -> dict[str, int]:
    """Row counts of MLflow's tables and the index; raises when they are not what was asked."""
    import sqlite3

    con = sqlite3.connect(db)
    try:
        count = {
            name: con.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
            for name, table in (
                ("runs", "runs"),
                ("run tags", "tags"),
                ("model versions", "model_versions"),
                ("model-version tags", "model_version_tags"),
                ("aliases", "registered_model_aliases"),
                ("index runs", "lineage_runs"),
                ("index reads (edges)", "lineage_reads"),
                ("index model versions", "lineage_model_versions"),
                ("index events", "lineage_events"),
                ("index holdings", "lineage_holdings"),
            )
        }
        count["event tags"] = con.execute(
            "SELECT COUNT(*) FROM model_version_tags WHERE key LIKE 'lineage.event.%'"
        ).fetchone()[0]
        production = con.execute(
            "SELECT COUNT(*) FROM model_versions WHERE current_stage = 'Production'"
        ).fetchone()[0]
    finally:
        con.close()
    n_mv = scale.models * scale.versions_per_model
    want = {
        "runs": scale.runs,
        "index runs": scale.runs,
        "index reads (edges)": scale.runs * scale.reads_per_run,
        "model versions": n_mv,
        "index model versions": n_mv,
        "index events": count["event tags"],
    }
    wrong = {k: (count[k], v) for k, v in want.items() if count[k] != v}
    if production != scale.models:
        wrong["Production versions"] = (production, scale.models)
    if wrong:
        raise SystemExit(f"generated data is wrong (found, wanted): {wrong}")
    return count
