"""Cost of recording a registry event: alias and stage changes, stock store against plugin store.

Two fresh copies of one pre-migrated MLflow SQLite database: one opened as ``sqlite:///...``
(stock MLflow) and one as ``lineage+sqlite:///...`` (the plugin: the event and its tags are
written in MLflow's own transaction, and indexed in ``lineage_events``). Each holds one
registered model with 5 versions whose tags carry a realistic lineage (``lineage.run_id``,
``lineage.tables``, ``lineage.manifest``, 3 Delta inputs each), registered through the store
so the plugin attaches the lineage as it does for users.

Timed, through MLflow's registry store (``mlflow.tracking._model_registry.utils._get_store``),
interleaved (stock, plugin / plugin, stock alternately) and repeated (200 times by default):

- ``set_registered_model_alias``: the ``champion`` alias moved to another version;
- ``delete_registered_model_alias``: a ``challenger`` alias (set untimed just before) deleted;
- ``transition_model_version_stage`` to ``Staging`` without ``archive_existing_versions``;
- ``transition_model_version_stage`` to ``Production`` with ``archive_existing_versions``
  (the previous Production version is archived: 2 events).

Both databases get exactly the same sequence of calls. Afterwards the script checks that the
plugin database holds every event (``lineage_events`` rows and ``lineage.event.*`` tags, by
kind) and the stock one none, so the plugin column cannot be a no-op. The same is done,
reported separately and with fewer repetitions, for a ``lineage+file:`` store against
``file:`` (``--no-file`` skips it). Target: plugin / stock <= 1.3 (medians) per call.

    python benchmarks/bench_event_cost.py              # 200 calls of each per store
    python benchmarks/bench_event_cost.py --quick      # 30 calls (CI smoke test)
    python benchmarks/bench_event_cost.py --profile    # + cProfile of the plugin's calls
"""

from __future__ import annotations

import os
import sys
import time

TARGET = 1.3
MODEL = "churn-classifier"
N_VERSIONS = 5
OPS = (
    ("set_alias", "set_registered_model_alias (move champion)"),
    ("delete_alias", "delete_registered_model_alias"),
    ("transition", "transition_model_version_stage (Staging)"),
    ("transition_archive", "transition ... (Production, archive_existing)"),
)


# --------------------------------------------------------------------------- set-up


def _lineage_for(run_id: str, n: int):
    """A realistic run lineage: 3 Delta inputs, environment and code version."""
    from lineage_plugin.records import CodeVersion, DeltaInput, Environment, RunLineage

    base = 1_760_000_000_000 + n * 3_600_000
    tables = (("sales", 412 + n), ("customers", 87 + n // 2), ("web_events", 10_233 + 7 * n))
    inputs = tuple(
        DeltaInput(
            uri=f"s3://lake-prod/gold/{name}",
            version=version,
            engine="deltalake",
            table_id=f"6f1c2a4e-9b7d-4e21-8a3f-{i:04d}5c9d2e7b",
            name=name,
            commit_timestamp=base - i * 60_000,
            timestamp_source="commitInfo.timestamp",
            operation="WRITE" if i else "MERGE",
            columns=("customer_id", "amount", "ts") if name == "sales" else None,
        )
        for i, (name, version) in enumerate(tables)
    )
    return RunLineage(
        run_id=run_id,
        status="complete",
        inputs=inputs,
        environment=Environment(
            python="3.11.9",
            platform="Linux-6.8.0-x86_64-with-glibc2.39",
            packages={"deltalake": "1.1.4", "mlflow": "3.17.2", "scikit-learn": "1.5.2"},
        ),
        code=CodeVersion(
            argv=("train.py", "--epochs", "10"),
            cwd="/home/ci/churn",
            git_commit="3f9c2b7d1e4a5c6b7d8e9f0a1b2c3d4e5f6a7b8c",
            git_dirty=False,
        ),
    )


def _run_tags(record) -> dict[str, str]:
    """The run tags the plugin writes for ``record``."""
    from lineage_plugin import tags as T
    from lineage_plugin.records import to_json

    limit = T.run_tag_value_limit()
    tags = {
        T.STATUS: record.status,
        T.TABLES: T.tables_summary(record.inputs, limit),
        T.SCHEMA: str(record.schema_version),
    }
    for n, inp in enumerate(record.inputs):
        tags.update(T.split_value(T.input_key(n), to_json(inp.to_dict()), limit))
    tags.update(T.environment_tags(record.environment))
    tags.update(T.code_tags(record.code, limit))
    return tags


def _version_tags(record) -> dict[str, str]:
    """The model-version tags the plugin attaches for ``record`` (see store/attach.py)."""
    from lineage_plugin import tags as T

    out = dict(_run_tags(record))
    out.update({T.RUN_ID: record.run_id, T.STATUS: record.status})
    out.update(
        T.split_value(T.MANIFEST, T.manifest_json(record), T.model_version_tag_value_limit())
    )
    return out


def _populate(uri: str, artifacts: str) -> None:
    """One experiment, 5 runs with lineage tags, one registered model with 5 versions."""
    from mlflow.entities import RunTag
    from mlflow.entities.model_registry import ModelVersionTag
    from mlflow.tracking._model_registry.utils import _get_store as registry_store
    from mlflow.tracking._tracking_service.utils import _get_store as tracking_store

    tracking = tracking_store(uri)
    registry = registry_store(uri)
    experiment_id = tracking.create_experiment("event-cost", artifact_location=artifacts)
    registry.create_registered_model(MODEL)
    for n in range(N_VERSIONS):
        run = tracking.create_run(experiment_id, "bench", int(time.time() * 1000), [], f"r{n}")
        run_id = run.info.run_id
        record = _lineage_for(run_id, n)
        tracking.log_batch(run_id, [], [], [RunTag(k, v) for k, v in _run_tags(record).items()])
        registry.create_model_version(
            MODEL,
            f"runs:/{run_id}/model",
            run_id,
            [ModelVersionTag(k, v) for k, v in _version_tags(record).items()],
        )
    registry.set_registered_model_alias(MODEL, "champion", "1")


# --------------------------------------------------------------------------- the calls


class Schedule:
    """The deterministic sequence of calls; both stores of a pair follow the same one."""

    def __init__(self) -> None:
        self.champion = 1

    def args(self, op: str, rep: int):
        v = rep % N_VERSIONS + 1
        if op == "set_alias":
            self.champion = self.champion % N_VERSIONS + 1
            return self.champion
        if op == "transition":
            return v
        if op == "transition_archive":
            return (rep + 2) % N_VERSIONS + 1
        return (rep + 3) % N_VERSIONS + 1  # delete_alias: the version challenger is set on


def _call(store, op: str, arg) -> None:
    if op == "set_alias":
        store.set_registered_model_alias(MODEL, "champion", str(arg))
    elif op == "delete_alias":
        store.delete_registered_model_alias(MODEL, "challenger")
    elif op == "transition":
        store.transition_model_version_stage(MODEL, str(arg), "Staging", False)
    else:
        store.transition_model_version_stage(MODEL, str(arg), "Production", True)


def _prepare(store, op: str, arg) -> None:
    """Untimed set-up a call needs (the alias it deletes)."""
    if op == "delete_alias":
        store.set_registered_model_alias(MODEL, "challenger", str(arg))


def measure(stores: dict[str, object], reps: int, warmup: int) -> dict[str, dict[str, list]]:
    """Per op and arm, the seconds of each timed call (interleaved, alternating arm order)."""
    arms = list(stores)
    schedules = {arm: Schedule() for arm in arms}
    times: dict[str, dict[str, list]] = {op: {arm: [] for arm in arms} for op, _ in OPS}
    perf = time.perf_counter
    for rep in range(-warmup, reps):
        order = arms if rep % 2 == 0 else arms[::-1]
        for op, _ in OPS:
            args = {arm: schedules[arm].args(op, rep) for arm in arms}
            for arm in order:
                store, arg = stores[arm], args[arm]
                _prepare(store, op, arg)
                t0 = perf()
                _call(store, op, arg)
                dt = perf() - t0
                if rep >= 0:
                    times[op][arm].append(dt)
    return times


# --------------------------------------------------------------------------- checks


def _count_calls(reps: int, warmup: int) -> dict[str, int]:
    total = reps + warmup
    # +1: the champion alias set once at set-up; every delete is preceded by a challenger set.
    return {
        "alias_set": 2 * total + 1,
        "alias_deleted": total,
        "stage_transition_min": 2 * total,
    }


def check_sql(db: str, plugin: bool, reps: int, warmup: int) -> str:
    """What the events in one SQLite database look like; raises when they are wrong."""
    import sqlite3

    con = sqlite3.connect(db)
    try:
        tag_rows = con.execute(
            "SELECT value FROM model_version_tags WHERE key LIKE 'lineage.event.%'"
        ).fetchall()
        has_index = con.execute(
            "SELECT COUNT(*) FROM sqlite_master WHERE name = 'lineage_events'"
        ).fetchone()[0]
        index_rows = (
            con.execute("SELECT kind, COUNT(*) FROM lineage_events GROUP BY kind").fetchall()
            if has_index
            else []
        )
        stage_tag = con.execute(
            "SELECT t.value FROM model_versions mv JOIN model_version_tags t ON "
            "t.name = mv.name AND t.version = mv.version AND t.key = 'lineage.stage' "
            "WHERE mv.current_stage = 'Production'"
        ).fetchall()
    finally:
        con.close()
    if not plugin:
        if tag_rows or index_rows:
            raise SystemExit(f"stock database {db} holds lineage events")
        return "stock: no lineage.event.* tags, no lineage_events rows (as expected)"
    text = _check_plugin([v for (v,) in tag_rows], dict(index_rows), reps, warmup, db)
    if [v for (v,) in stage_tag] != ["Production"]:
        raise SystemExit(f"plugin database: lineage.stage of the Production version: {stage_tag}")
    return text


def _check_plugin(
    tag_values: list[str], indexed: dict[str, int], reps: int, warmup: int, where: str
) -> str:
    """The plugin side of check_sql/check_file: event tag values and index rows by kind."""
    import json

    kinds: dict[str, int] = {}
    for value in tag_values:
        kind = json.loads(value)["kind"]
        kinds[kind] = kinds.get(kind, 0) + 1
    _check_kinds(kinds, indexed, reps, warmup, where)
    by_kind = ", ".join(f"{k} {n}" for k, n in sorted(kinds.items()))
    return (
        f"plugin: {len(tag_values)} lineage.event.* tags = {sum(indexed.values())} "
        f"lineage_events rows ({by_kind})"
    )


def _check_kinds(
    kinds: dict[str, int], indexed: dict[str, int], reps: int, warmup: int, where: str
) -> None:
    want = _count_calls(reps, warmup)
    problems = []
    if kinds != indexed:
        problems.append(f"event tags by kind {kinds} != lineage_events by kind {indexed}")
    if kinds.get("alias_set") != want["alias_set"]:
        problems.append(f"alias_set events {kinds.get('alias_set')}, want {want['alias_set']}")
    if kinds.get("alias_deleted") != want["alias_deleted"]:
        problems.append(
            f"alias_deleted events {kinds.get('alias_deleted')}, want {want['alias_deleted']}"
        )
    if kinds.get("stage_transition", 0) < want["stage_transition_min"]:
        problems.append(
            f"stage_transition events {kinds.get('stage_transition')}, "
            f"want >= {want['stage_transition_min']}"
        )
    if problems:
        raise SystemExit(f"plugin store {where}: " + "; ".join(problems))


def check_file(root: str, plugin: bool, reps: int, warmup: int) -> str:
    """The same checks for a file store (tags in meta files, index in <root>.lineage.db)."""
    import sqlite3
    from pathlib import Path

    tag_files = list(Path(root).glob("models/*/version-*/tags/lineage.event.*"))
    index_db = Path(root.rstrip("/") + ".lineage.db")
    indexed: dict[str, int] = {}
    if index_db.exists():
        con = sqlite3.connect(index_db)
        try:
            indexed = dict(
                con.execute("SELECT kind, COUNT(*) FROM lineage_events GROUP BY kind").fetchall()
            )
        finally:
            con.close()
    if not plugin:
        if tag_files or indexed:
            raise SystemExit(f"stock file store {root} holds lineage events")
        return "stock: no lineage.event.* tags, no index (as expected)"
    return _check_plugin([p.read_text() for p in tag_files], indexed, reps, warmup, root)


def read_cost(dbs: dict[str, str], reps: int = 50) -> None:
    """What the accumulated event tags cost MLflow's own reads (plain sqlite: store on both)."""
    import sqlite3

    import common as C
    from mlflow.tracking._model_registry.utils import _get_store

    rows = []
    for arm, db in dbs.items():
        con = sqlite3.connect(db)
        try:
            n_tags = con.execute(
                "SELECT COUNT(*) FROM model_version_tags WHERE key LIKE 'lineage.event.%'"
            ).fetchone()[0]
        finally:
            con.close()
        store = _get_store(f"sqlite:///{db}")
        timings = {"get": [], "search": []}
        for _ in range(reps):
            t0 = time.perf_counter()
            store.get_model_version(MODEL, "3")
            t1 = time.perf_counter()
            store.search_model_versions(f"name='{MODEL}'")
            t2 = time.perf_counter()
            timings["get"].append((t1 - t0) * 1000)
            timings["search"].append((t2 - t1) * 1000)
        rows.append(
            [
                f"{arm} database",
                n_tags / N_VERSIONS,
                C.median(timings["get"]),
                C.median(timings["search"]),
            ]
        )
    print(
        "  reads afterwards, through a plain sqlite: store on each database (median ms; MLflow "
        "loads every tag of a version, the plugin's event tags too):"
    )
    C.print_table(
        ["  database", "event tags per version", "get_model_version", "search (5 versions)"],
        rows,
    )


# --------------------------------------------------------------------------- report


def report(title: str, times: dict[str, dict[str, list]]) -> list[tuple[str, float]]:
    import common as C

    print(title)
    rows, ratios = [], []
    for op, label in OPS:
        s_ms = [t * 1000 for t in times[op]["stock"]]
        p_ms = [t * 1000 for t in times[op]["plugin"]]
        s_med, p_med = C.median(s_ms), C.median(p_ms)
        sq1, sq3 = C.quartiles(s_ms)
        pq1, pq3 = C.quartiles(p_ms)
        r = C.ratio(p_med, s_med)
        ratios.append((label, r))
        rows.append(
            [
                label,
                s_med,
                f"{sq1:.2f}-{sq3:.2f}",
                p_med,
                f"{pq1:.2f}-{pq3:.2f}",
                p_med - s_med,
                r,
                C.verdict(r <= TARGET),
            ]
        )
    C.print_table(
        [
            "call",
            "stock ms",
            "stock IQR",
            "plugin ms",
            "plugin IQR",
            "added ms",
            "plugin/stock",
            f"<= {TARGET}",
        ],
        rows,
    )
    # Event tags accumulate on the versions (one per event, never rewritten): does a call get
    # slower as a version's history grows?
    quarter = max(1, len(times[OPS[0][0]]["stock"]) // 4)
    growth = []
    for op, label in OPS:
        s_ms = [t * 1000 for t in times[op]["stock"]]
        p_ms = [t * 1000 for t in times[op]["plugin"]]
        growth.append(
            [
                label,
                C.median(s_ms[:quarter]),
                C.median(s_ms[-quarter:]),
                C.median(p_ms[:quarter]),
                C.median(p_ms[-quarter:]),
            ]
        )
    print(f"  first vs last {quarter} calls (median ms; the event tags accumulate on 5 versions):")
    C.print_table(["  call", "stock first", "stock last", "plugin first", "plugin last"], growth)
    return ratios


# The plugin's steps that get a timer in --profile (those missing in this version are skipped).
_STEPS = (
    ("record_change", "record_change (the whole wrapped call)"),
    ("_plan_in_session", "plan: read the state, build the events (in MLflow's session)"),
    ("SqlState.version", "  SqlState.version"),
    ("SqlState._data", "    SqlState._data (run id + tables from the version's tags)"),
    ("SqlState._alias_map", "    SqlState._alias_map"),
    ("SqlState.stage_of", "  SqlState.stage_of"),
    ("SqlState.alias_holder", "  SqlState.alias_holder"),
    ("SqlState.versions_in_stage", "  SqlState.versions_in_stage"),
    ("current_user", "  current_user"),
    ("_write_in_session", "write: tags + index (in MLflow's session)"),
    ("SqlState.write", "  SqlState.write (the event and lineage.* tags)"),
    ("LineageIndex.record_events", "  LineageIndex.record_events (lineage_events + holdings)"),
)


def _phase_timers(active: dict[str, bool]):
    """Wrap the plugin's steps with timers (counting only while ``active['on']``)."""
    import functools

    from lineage_plugin.store import index as index_mod
    from lineage_plugin.store import recording

    owners = {"SqlState": recording.SqlState, "LineageIndex": index_mod.LineageIndex}
    totals: dict[str, float] = {}
    calls: dict[str, int] = {}
    undo = []
    for name, _ in _STEPS:
        owner_name, _, attr = name.rpartition(".")
        owner = owners.get(owner_name) if owner_name else recording
        original = getattr(owner, attr, None)
        if original is None:
            continue
        totals[name], calls[name] = 0.0, 0

        def timed(*a, _original=original, _name=name, **k):
            t0 = time.perf_counter()
            try:
                return _original(*a, **k)
            finally:
                if active["on"]:
                    totals[_name] += time.perf_counter() - t0
                    calls[_name] += 1

        setattr(owner, attr, functools.wraps(original)(timed))
        undo.append((owner, attr, original))

    def restore() -> None:
        for owner, attr, original in reversed(undo):
            setattr(owner, attr, original)

    return totals, calls, restore


def _commit_timer(store, active: dict[str, bool]) -> dict[str, float]:
    """Time the SQLite commits of ``store``'s engine (while ``active['on']``)."""
    dialect = store.engine.dialect
    original = dialect.do_commit
    acc = {"seconds": 0.0, "count": 0}

    def do_commit(dbapi_connection) -> None:
        t0 = time.perf_counter()
        original(dbapi_connection)
        if active["on"]:
            acc["seconds"] += time.perf_counter() - t0
            acc["count"] += 1

    dialect.do_commit = do_commit
    return acc


def profile_plugin(uris: dict[str, str], rounds: int) -> None:
    """Where the plugin's time goes: timed steps (and a cProfile) over ``rounds`` x 4 calls."""
    import copy
    import cProfile
    import shutil
    from pathlib import Path

    import common as C
    from mlflow.tracking._model_registry.utils import _get_store

    active = {"on": False}

    def run(store, schedule, first: int, last: int, profiler=None) -> float:
        spent = 0.0
        for rep in range(first, last):
            for op, _ in OPS:
                arg = schedule.args(op, rep)
                _prepare(store, op, arg)
                if profiler:
                    profiler.enable()
                active["on"] = True
                t0 = time.perf_counter()
                _call(store, op, arg)
                spent += time.perf_counter() - t0
                active["on"] = False
                if profiler:
                    profiler.disable()
        return spent

    whole, commits, stores, schedules = {}, {}, {}, {}
    half = rounds // 2
    for arm, uri in uris.items():
        stores[arm], schedules[arm] = _get_store(uri), Schedule()
        run(stores[arm], schedules[arm], -3, 0)
        commits[arm] = _commit_timer(stores[arm], active)
        if arm == "stock":
            whole[arm] = run(stores[arm], schedules[arm], 0, rounds)
            continue
        totals, calls, restore = _phase_timers(active)
        try:
            whole[arm] = run(stores[arm], schedules[arm], 0, half)
            # Half-way, a copy of the plugin's database: MLflow alone on it (below) works on as
            # many event tags as the plugin's calls do on average.
            mid_db = Path(uri.split(":///", 1)[1]).with_name("mid.db")
            shutil.copyfile(uri.split(":///", 1)[1], mid_db)
            mid_schedule = copy.copy(schedules[arm])
            whole[arm] += run(stores[arm], schedules[arm], half, rounds)
        finally:
            restore()
    mid_store = _get_store(f"sqlite:///{mid_db}")
    run(mid_store, copy.copy(mid_schedule), half - 3, half)
    commits["mid"] = _commit_timer(mid_store, active)
    whole["mid"] = run(mid_store, mid_schedule, half, half + rounds)
    n_calls = rounds * len(OPS)

    def ms(seconds: float) -> float:
        return seconds * 1000 / n_calls

    print(
        f"\nWhere the time goes: {rounds} rounds of the 4 calls = {n_calls} calls per store, "
        "timers around the plugin's steps and around SQLite's commit, mean ms per registry "
        "call. 'MLflow on plugin db' = a plain sqlite: store on a copy of the plugin's "
        "database taken half-way (the same event tags, nothing recorded):"
    )
    rows = [
        [
            "whole registry call",
            ms(whole["stock"]),
            ms(whole["mid"]),
            ms(whole["plugin"]),
            n_calls,
        ],
        [
            "  SQLite commit (MLflow's rows + the plugin's)",
            ms(commits["stock"]["seconds"]),
            ms(commits["mid"]["seconds"]),
            ms(commits["plugin"]["seconds"]),
            commits["plugin"]["count"],
        ],
    ]
    rows += [
        [label, "", "", ms(totals[name]), calls[name]] for name, label in _STEPS if name in totals
    ]
    steps = totals.get("_plan_in_session", 0.0) + totals.get("_write_in_session", 0.0)
    rows.append(
        [
            "added by the event tags to MLflow's own work (MLflow on plugin db - stock)",
            "",
            "",
            ms(whole["mid"] - whole["stock"]),
            "",
        ]
    )
    rows.append(
        [
            "rest: plugin - MLflow on plugin db - plan - write (bigger commit, wrapper)",
            "",
            "",
            ms(whole["plugin"] - whole["mid"] - steps),
            "",
        ]
    )
    C.print_table(["step", "stock", "MLflow on plugin db", "plugin", "calls (plugin)"], rows)

    profiler = cProfile.Profile()
    run(stores["plugin"], schedules["plugin"], rounds, 2 * rounds, profiler)
    print(f"\ncProfile of {n_calls} more plugin calls, lineage_plugin functions and commits:")
    C.print_profile(profiler, 25, r"lineage_plugin|\{method 'commit'")


# --------------------------------------------------------------------------- main


def main() -> int:
    import argparse
    import logging
    import shutil
    from pathlib import Path

    import common as C

    C.clean_this_process_env()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="30 calls each (CI smoke test)")
    parser.add_argument("--reps", type=int, help="timed calls of each kind per store (200)")
    parser.add_argument("--file-reps", type=int, help="the same for the file stores (100)")
    parser.add_argument("--no-file", action="store_true", help="skip file: / lineage+file:")
    parser.add_argument("--workdir", help=f"cache directory (default {C.DEFAULT_WORKDIR})")
    parser.add_argument(
        "--db-dir",
        help="where the databases and file stores live (default <workdir>/scratch; e.g. "
        "/dev/shm to take the disk's fsync out of the numbers)",
    )
    parser.add_argument(
        "--profile", action="store_true", help="also profile the plugin's SQLite calls"
    )
    args = parser.parse_args()
    reps = args.reps or (30 if args.quick else 200)
    file_reps = args.file_reps or (20 if args.quick else 100)
    warmup = 5

    wd = C.workdir(args.workdir)
    template = C.migrated_sqlite_template(wd)
    if args.db_dir:
        scratch = Path(args.db_dir).resolve() / f"bench-events-{os.getpid()}"
        shutil.rmtree(scratch, ignore_errors=True)
        scratch.mkdir(parents=True)
    else:
        scratch = C.scratch_dir(wd, "events")
    print(f"databases in {scratch}")
    started = time.perf_counter()

    import mlflow  # noqa: F401  (imported before timing anything)

    logging.getLogger("mlflow").setLevel(logging.ERROR)

    print(
        f"event cost: {reps} interleaved calls of each kind per store (after {warmup} "
        f"warm-up rounds), one registered model with {N_VERSIONS} versions, {sys.executable}"
    )
    dbs = {arm: str(C.fresh_db(template, scratch / arm)) for arm in ("stock", "plugin")}
    uris = {
        "stock": f"sqlite:///{dbs['stock']}",
        "plugin": f"lineage+sqlite:///{dbs['plugin']}",
    }
    for arm, uri in uris.items():
        _populate(uri, (scratch / arm / "artifacts").as_uri())
    from mlflow.tracking._model_registry.utils import _get_store

    stores = {arm: _get_store(uri) for arm, uri in uris.items()}
    times = measure(stores, reps, warmup)
    print()
    ratios = report("SQLite (sqlite:/// vs lineage+sqlite:///), median ms per call:", times)
    for arm in stores:
        print("  check " + check_sql(dbs[arm], arm == "plugin", reps, warmup))
    read_cost(dbs)

    if not args.no_file:
        os.environ["MLFLOW_ALLOW_FILE_STORE"] = "true"
        roots = {arm: scratch / f"file-{arm}" / "mlruns" for arm in ("stock", "plugin")}
        furis = {
            "stock": roots["stock"].as_uri(),
            "plugin": "lineage+" + roots["plugin"].as_uri(),
        }
        for arm, uri in furis.items():
            _populate(uri, (scratch / f"file-{arm}" / "artifacts").as_uri())
        fstores = {arm: _get_store(uri) for arm, uri in furis.items()}
        ftimes = measure(fstores, file_reps, warmup)
        print()
        report(
            f"File store (file: vs lineage+file:), {file_reps} calls each, median ms per call:",
            ftimes,
        )
        for arm in fstores:
            print("  check " + check_file(str(roots[arm]), arm == "plugin", file_reps, warmup))

    worst = max(r for _, r in ratios)
    print(
        f"\nSQLite: worst plugin/stock ratio {worst:.2f} (target <= {TARGET}: "
        f"{C.verdict(worst <= TARGET)}); measured in {time.perf_counter() - started:.0f} s"
    )
    if args.profile:
        puris = {}
        for arm, scheme in (("stock", "sqlite"), ("plugin", "lineage+sqlite")):
            pdb = C.fresh_db(template, scratch / f"profile-{arm}")
            puris[arm] = f"{scheme}:///{pdb}"
            _populate(puris[arm], (scratch / f"profile-{arm}" / "artifacts").as_uri())
        profile_plugin(puris, min(reps, 100))
    shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from common import run_main

    sys.exit(run_main(main))
