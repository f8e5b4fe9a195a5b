"""``restore`` against table size: the plugin's Delta RESTORE of a model version's table.

Local Delta tables of appends of 10 small parquet files each (3 rows per file, a checkpoint
every 100 commits; built once and cached): 100 commits / 1,000 files and 1,000 commits /
10,000 files. A model version was trained on the middle of the history (version
``commits // 2 - 1``), so its restore undoes half the commits and removes half the files. Per
repetition, a fresh copy of the table and a fresh copy of an MLflow SQLite store that holds the
run (which recorded the read with ``lineage_plugin.log_delta_input``) and the model version, and
in fresh processes, interleaved:

- plugin: ``lineage_plugin.recovery.restore.restore("bench", "1", confirm=None, tracking_uri=uri)``
  with a ``lineage+sqlite:`` URI: plan (commits undone, the target's files exist, protocol),
  the Delta RESTORE commit, the restore event in MLflow and the lineage index. Timed from the
  call to its return, after importing mlflow, deltalake, ``lineage_plugin.recovery.restore`` and
  MLflow's SQL stores (timed apart); its steps are timed as well;
- bare: ``deltalake.DeltaTable(path).restore(target)`` (stock, no plan, no record): the
  baseline;
- CLI (3 processes per table, 1 with ``--quick``): ``mlflow-lineage restore bench 1 --yes``,
  the wall time of the whole process (interpreter, imports, the restore, the output), next to
  a process that only imports what it imports.

Target: the plugin restores the 10,000-file table in <= 2 s. Each restore is checked (new
version, file count, ``RESTORE`` commit, the event in MLflow and in the index). Exits 0 whether
the target is met or not; non-zero when a child crashes or a restore is wrong.

    python benchmarks/bench_restore.py            # 100 and 1,000 commits, 5 repetitions
    python benchmarks/bench_restore.py --quick    # the same tables, 2 repetitions
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path

# The tables are common.build_table's, with this many files per commit.
FILES_PER_COMMIT = 10
TARGET_S = 2.0
TARGET_FILES = 10_000
MODEL = "bench"
MODEL_SOURCE = "s3://bucket/model"
CLI_CODE = "from lineage_plugin.cli import main; main()"
# A process that only imports what a CLI restore imports before it starts: the CLI's floor.
IMPORTS_CODE = (
    "import mlflow, deltalake, lineage_plugin.cli, lineage_plugin.recovery.restore, "
    "mlflow.store.tracking.sqlalchemy_store, mlflow.store.model_registry.sqlalchemy_store"
    "\nprint('BENCH_RESULT {}')"
)
WARMUP_CODE = (
    "import mlflow, deltalake, lineage_plugin.api, lineage_plugin.recovery.restore, "
    "lineage_plugin.recovery.plan, lineage_plugin.delta.history, lineage_plugin.queries.workspace, "
    "lineage_plugin.queries.show, lineage_plugin.events, lineage_plugin.cli"
    "\nprint('BENCH_RESULT {}')"
)
# The plugin's steps timed inside one restore call: (key, module, function). The first four
# run inside plan_in.
STEPS = (
    ("plan", "lineage_plugin.recovery.plan", "plan_in"),
    ("plan_files", "lineage_plugin.delta.readability", "why_unreadable"),
    ("plan_commits", "lineage_plugin.delta.history", "commits"),
    ("plan_protocol", "lineage_plugin.recovery.plan", "_protocol_refusal"),
    ("recheck", "lineage_plugin.recovery.restore", "_check_unmoved"),
    ("commit", "lineage_plugin.recovery.restore", "_restore_table"),
    ("record", "lineage_plugin.recovery.restore", "_record"),
)


def target_version(commits: int) -> int:
    """The version the model version read: half the commits come after it."""
    return commits // 2 - 1


def files_at(version: int) -> int:
    return (version + 1) * FILES_PER_COMMIT


# --------------------------------------------------------------------------- children


def child_prepare(db: str, table: str, target: int) -> None:
    """Record a run that read ``table`` at ``target`` and register a model version from it."""
    import mlflow
    from mlflow import MlflowClient

    import lineage_plugin as lp

    mlflow.set_tracking_uri(f"lineage+sqlite:///{db}")
    artifacts = Path(db).parent / "artifacts"
    experiment_id = mlflow.create_experiment("bench", artifact_location=artifacts.as_uri())
    with mlflow.start_run(experiment_id=experiment_id) as run:
        recorded = lp.log_delta_input(table, version=target)
    client = MlflowClient()
    client.create_registered_model(MODEL)
    mv = client.create_model_version(MODEL, MODEL_SOURCE, run_id=run.info.run_id)
    lineage = lp.get_lineage(MODEL, mv.version)

    from common import emit_result

    emit_result(
        {
            "run_id": run.info.run_id,
            "model_version": str(mv.version),
            "recorded_version": recorded.version if recorded else None,
            "lineage_status": lineage.status,
            "lineage_versions": [i.version for i in lineage.inputs],
        }
    )


def restored_state(table: str) -> dict:
    """The table after a restore, from deltalake (metadata only: no data file is read)."""
    from deltalake import DeltaTable

    dt = DeltaTable(table)
    return {
        "version": dt.version(),
        "files": len(dt.file_uris()),
        "operation": dt.history(1)[0].get("operation"),
    }


def child_restore(db: str, table: str, profile_out: str | None) -> None:
    """One plugin restore in this fresh process, its steps timed; prints a BENCH_RESULT line."""
    import importlib

    import deltalake  # noqa: F401  (imported before the timer, as in the bare child)
    import mlflow  # noqa: F401

    from lineage_plugin.recovery.restore import restore

    # MLflow's SQL stores (SQLAlchemy, alembic, MLflow's ORM models) are imported by any
    # MLflow client of a database, not by `import mlflow`: imported here, timed apart.
    t = time.perf_counter()
    import mlflow.store.model_registry.sqlalchemy_store  # noqa: F401
    import mlflow.store.tracking.sqlalchemy_store  # noqa: F401

    store_imports = time.perf_counter() - t

    spent: dict[str, float] = {key: 0.0 for key, _, _ in STEPS}

    def timed(key: str, fn):
        def wrapper(*args, **kwargs):
            t = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                spent[key] += time.perf_counter() - t

        return wrapper

    # The steps are looked up by name at call time (module globals or function-level imports).
    for key, module, name in STEPS:
        mod = importlib.import_module(module)
        setattr(mod, name, timed(key, getattr(mod, name)))

    uri = f"lineage+sqlite:///{db}"
    profiler = None
    if profile_out:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    t0 = time.perf_counter()
    report = restore(MODEL, "1", confirm=None, tracking_uri=uri)
    t1 = time.perf_counter()
    if profiler is not None:
        profiler.disable()
        profiler.dump_stats(profile_out)

    restored = [r.to_dict() for r in report.restored]
    from common import emit_result

    emit_result(
        {
            "seconds": t1 - t0,
            "store_imports": store_imports,
            "steps": spent,
            "restored": restored,
            "event_id": report.event_id,
            "state": restored_state(table),
        }
    )


def child_bare(table: str, target: int) -> None:
    """One stock deltalake restore in this fresh process; prints a BENCH_RESULT line."""
    from deltalake import DeltaTable

    t0 = time.perf_counter()
    DeltaTable(table).restore(target)
    t1 = time.perf_counter()

    from common import emit_result

    emit_result({"seconds": t1 - t0, "state": restored_state(table)})


# --------------------------------------------------------------------------- parent


def _check_state(state: dict, commits: int, what: str) -> None:
    expected = {
        "version": commits,
        "files": files_at(target_version(commits)),
        "operation": "RESTORE",
    }
    if state != expected:
        raise SystemExit(f"{what}: the table after the restore is {state}, expected {expected}")


def _check_recorded(db: Path, what: str) -> None:
    """The restore event is in MLflow (a model version tag) and in the lineage index."""
    import sqlite3

    con = sqlite3.connect(db)
    try:
        tags = [
            json.loads(v)
            for (v,) in con.execute(
                "SELECT value FROM model_version_tags "
                "WHERE name = ? AND key LIKE 'lineage.event.%'",
                (MODEL,),
            )
        ]
        indexed = con.execute(
            "SELECT COUNT(*) FROM lineage_events WHERE name = ? AND kind = 'restore'", (MODEL,)
        ).fetchone()[0]
    finally:
        con.close()
    in_mlflow = sum(t.get("kind") == "restore" for t in tags)
    if in_mlflow != 1 or indexed != 1:
        raise SystemExit(
            f"{what}: {in_mlflow} restore event tags in MLflow and {indexed} in the lineage "
            "index, expected 1 and 1"
        )


def _cli_restore(n: int, table: Path, prepared: Path, work: Path, ctx: dict) -> float:
    """``mlflow-lineage restore bench 1 --yes`` on a fresh copy; the process's wall seconds."""
    import subprocess

    import common as C

    C.fresh_copy(ctx["pristine"][n], table)
    db = work / "mlflow.db"
    db.parent.mkdir(parents=True)
    shutil.copyfile(prepared, db)
    cmd = [sys.executable, "-c", CLI_CODE, "restore", MODEL, "1", "--yes"]
    cmd += ["--tracking-uri", f"lineage+sqlite:///{db}", "--json"]
    t = time.perf_counter()
    proc = subprocess.run(
        cmd, env=ctx["env"], cwd=ctx["cwd"], capture_output=True, text=True, timeout=300
    )
    wall = time.perf_counter() - t
    try:
        report = json.loads(proc.stdout)
    except ValueError:
        report = {}
    new = [r.get("new_version") for r in report.get("restored", [])]
    if proc.returncode != 0 or new != [n]:
        raise C.ChildError(
            f"CLI restore failed (exit {proc.returncode}, new versions {new}): {cmd}\n"
            f"--- stdout ---\n{proc.stdout[-3000:]}\n--- stderr ---\n{proc.stderr[-5000:]}"
        )
    actions = (table / "_delta_log" / f"{n:020d}.json").read_text().splitlines()
    info = next((json.loads(a)["commitInfo"] for a in actions if '"commitInfo"' in a), {})
    if info.get("operation") != "RESTORE":
        raise SystemExit(f"CLI restore, {n} commits: commit {n} is not a RESTORE")
    _check_recorded(db, f"CLI restore, {n} commits")
    return wall


def measure(n: int, ctx: dict) -> dict:
    """Every arm on the table of ``n`` commits; the results (raises when a restore is wrong)."""
    import common as C

    pristine, template, env, cwd = ctx["pristine"], ctx["template"], ctx["env"], ctx["cwd"]
    script, reps, scratch = ctx["script"], ctx["reps"], ctx["scratch"]
    target = target_version(n)
    work = scratch / str(n)
    plugin_table, bare_table = work / "table", work / "bare"
    # One store holding the run and the model version; each plugin restore gets a copy.
    # The run recorded `plugin_table`, so every plugin repetition restores a fresh copy
    # at that path.
    C.fresh_copy(pristine[n], plugin_table)
    prepared = C.fresh_db(template, work / "prepared")
    _, prep, _ = C.run_child(
        [script, "--child", "prepare", str(prepared), str(plugin_table), str(target)],
        env=env,
        cwd=cwd,
    )
    if (
        prep["model_version"] != "1"
        or prep["recorded_version"] != target
        or prep["lineage_status"] != "complete"
        or prep["lineage_versions"] != [target]
    ):
        raise SystemExit(f"{n} commits: the model version's lineage is wrong: {prep}")

    def plugin(tag: str, profile_out: str | None = None) -> dict:
        C.fresh_copy(pristine[n], plugin_table)
        db = work / tag / "mlflow.db"
        db.parent.mkdir(parents=True)
        shutil.copyfile(prepared, db)
        cmd = [script, "--child", "restore", str(db), str(plugin_table)]
        if profile_out:
            cmd.append(profile_out)
        _, result, _ = C.run_child(cmd, env=env, cwd=cwd)
        what = f"plugin restore, {n} commits, {tag}"
        _check_state(result["state"], n, what)
        r = result["restored"]
        if (
            len(r) != 1
            or r[0].get("new_version") != n
            or r[0].get("commits_undone") != n - 1 - target
            or not result["event_id"]
        ):
            raise SystemExit(f"{what}: the report is {r}, event {result['event_id']}")
        _check_recorded(db, what)
        return result

    def bare(tag: str) -> dict:
        C.fresh_copy(pristine[n], bare_table)
        _, result, _ = C.run_child(
            [script, "--child", "bare", str(bare_table), str(target)], env=env, cwd=cwd
        )
        _check_state(result["state"], n, f"bare restore, {n} commits, {tag}")
        return result

    runs: dict[str, list[dict]] = {"plugin": [], "bare": []}
    for rep in range(reps):
        order = ("plugin", "bare") if rep % 2 == 0 else ("bare", "plugin")
        for arm in order:
            result = plugin(f"rep{rep}") if arm == "plugin" else bare(f"rep{rep}")
            runs[arm].append(result)
        print(
            f"  {n} commits, rep {rep + 1}/{reps}: plugin {runs['plugin'][-1]['seconds']:.2f}"
            f" s, bare {runs['bare'][-1]['seconds']:.2f} s",
            flush=True,
        )

    # The CLI, end to end: the whole process's wall time; before each, a process that only
    # imports (python, mlflow, deltalake, MLflow's SQL stores, the CLI).
    cli_walls, import_walls = [], []
    for i in range(ctx["cli_reps"]):
        import_walls.append(C.run_child(["-c", IMPORTS_CODE], env=env, cwd=cwd)[0])
        cli_walls.append(_cli_restore(n, plugin_table, prepared, work / f"cli{i}", ctx))
    cli_wall, imports_wall = C.median(cli_walls), C.median(import_walls)
    print(
        f"  {n} commits, CLI: {cli_wall:.2f} s wall (imports only: {imports_wall:.2f} s)"
        + (f", medians of {len(cli_walls)}" if len(cli_walls) > 1 else ""),
        flush=True,
    )

    profile = None
    if ctx["profile"] and n == ctx["profile"]:
        profile = str(work / "restore.prof")
        plugin("profile", profile)
    return {"runs": runs, "cli": cli_wall, "imports": imports_wall, "profile": profile}


def main() -> int:
    import argparse

    import common as C

    C.clean_this_process_env()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="2 repetitions (CI smoke test)")
    parser.add_argument("--reps", type=int, help="repetitions per arm (default 5, quick 2)")
    parser.add_argument("--sizes", help="comma-separated commit counts (default 100,1000)")
    parser.add_argument("--cli-reps", type=int, help="CLI processes per table (default 3, quick 1)")
    parser.add_argument("--workdir", help=f"cache directory (default {C.DEFAULT_WORKDIR})")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="also run one plugin restore of the largest table under cProfile and print "
        "the lineage_plugin and deltalake functions",
    )
    C.add_bytecode_option(parser)
    args = parser.parse_args()
    reps = args.reps or (2 if args.quick else 5)
    sizes = [int(s) for s in args.sizes.split(",")] if args.sizes else [100, 1000]

    wd = C.workdir(args.workdir)
    template = C.migrated_sqlite_template(wd)
    pristine = {n: C.build_table(wd, n, files_per_commit=FILES_PER_COMMIT) for n in sizes}
    scratch = C.scratch_dir(wd, "restore")
    env = C.bytecode_env(wd, args)
    cwd = str(C.REPO_DIR)
    ctx = {
        "pristine": pristine,
        "template": template,
        "scratch": scratch,
        "script": str(C.BENCH_DIR / "bench_restore.py"),
        "env": env,
        "cwd": cwd,
        "reps": reps,
        "cli_reps": args.cli_reps or (1 if args.quick else 3),
        "profile": sizes[-1] if args.profile else None,
    }

    print(
        f"restore: {reps} repetitions per arm, fresh process and fresh table copy each, tables of "
        f"appends of {FILES_PER_COMMIT} files (checkpoint every {C.CHECKPOINT_INTERVAL} commits), "
        f"restored to version commits/2 - 1; {sys.executable}"
    )
    started = time.perf_counter()
    # Unmeasured: a process importing what the children import (cold disk and bytecode caches).
    C.run_child(["-c", WARMUP_CODE], env=env, cwd=cwd)

    results: dict[int, dict] = {}
    for n in sizes:
        results[n] = measure(n, ctx)
    aborted = sum(
        r["_returncode"] != 0 for res in results.values() for rs in res["runs"].values() for r in rs
    )

    def med(n: int, arm: str) -> float:
        return C.median([r["seconds"] for r in results[n]["runs"][arm]])

    def step(n: int, key: str) -> float:
        return C.median([r["steps"][key] for r in results[n]["runs"]["plugin"]])

    print()
    print(
        "Median seconds over fresh processes. plugin = the restore() call, after the imports; "
        "bare = DeltaTable(path).restore(target); CLI wall = the whole `mlflow-lineage restore` "
        "process, imports only = a process that only imports what it imports (medians of "
        f"{ctx['cli_reps']} each)."
    )
    rows = []
    for n in sizes:
        target = target_version(n)
        q1, q3 = C.quartiles([r["seconds"] for r in results[n]["runs"]["plugin"]])
        big = n * FILES_PER_COMMIT >= TARGET_FILES
        rows.append(
            [
                n,
                n * FILES_PER_COMMIT,
                f"v{target}",
                n - 1 - target,
                n * FILES_PER_COMMIT - files_at(target),
                med(n, "plugin"),
                f"{q1:.2f}-{q3:.2f}",
                med(n, "bare"),
                C.ratio(med(n, "plugin"), med(n, "bare")),
                results[n]["cli"],
                results[n]["imports"],
                C.verdict(med(n, "plugin") <= TARGET_S) if big else "",
            ]
        )
    C.print_table(
        [
            "commits",
            "files",
            "target",
            "commits undone",
            "files removed",
            "plugin restore",
            "plugin IQR",
            "bare deltalake",
            "plugin/bare",
            "CLI wall",
            "imports only",
            f"<= {TARGET_S:.0f} s",
        ],
        rows,
    )

    print("\nWhere the plugin's call goes (median seconds)")
    rows = []
    for n in sizes:
        plan = step(n, "plan")
        parts = [step(n, k) for k in ("plan_files", "plan_commits", "plan_protocol")]
        timed = plan + step(n, "recheck") + step(n, "commit") + step(n, "record")
        rows.append(
            [
                n,
                plan,
                *parts,
                plan - sum(parts),
                step(n, "recheck"),
                step(n, "commit"),
                step(n, "record"),
                med(n, "plugin") - timed,
                C.median([r["store_imports"] for r in results[n]["runs"]["plugin"]]),
            ]
        )
    C.print_table(
        [
            "commits",
            "plan",
            "target files",
            "commits undone",
            "protocol",
            "plan rest",
            "recheck",
            "Delta commit",
            "record event",
            "rest",
            "(MLflow SQL imports)",
        ],
        rows,
    )
    print(
        "(plan = plan.plan_in, of which: target files = readability.why_unreadable "
        "(opens the latest and the target version, checks that every file of the target "
        "exists), commits undone = delta.history.commits, protocol = "
        "recovery.plan._protocol_refusal, plan rest = the MLflow stores, the model version, its "
        "lineage, the latest version. recheck = restore._check_unmoved; Delta commit = "
        "restore._restore_table (DeltaTable.restore); record event = restore._record (MLflow "
        "tag + lineage index row); rest = the remainder of the call. A plugin module imported "
        "on first use counts in the step that first needs it. MLflow SQL imports = MLflow's "
        "SQL stores, imported before the call and not counted in it.)"
    )

    first, last = sizes[0], sizes[-1]
    if last != first:
        print(
            f"\nscaling {last * FILES_PER_COMMIT}/{first * FILES_PER_COMMIT} files: plugin "
            f"{C.ratio(med(last, 'plugin'), med(first, 'plugin')):.1f}x, bare deltalake "
            f"{C.ratio(med(last, 'bare'), med(first, 'bare')):.1f}x, CLI "
            f"{C.ratio(results[last]['cli'], results[first]['cli']):.1f}x"
        )
    big = [n for n in sizes if n * FILES_PER_COMMIT >= TARGET_FILES]
    for n in big:
        v, cli = med(n, "plugin"), results[n]["cli"]
        print(
            f"target: plugin restore of {n * FILES_PER_COMMIT} files / {n} commits <= "
            f"{TARGET_S:.0f} s -> {v:.2f} s: {C.verdict(v <= TARGET_S)}"
        )
        print(
            f"  (CLI end to end {cli:.2f} s: {C.verdict(cli <= TARGET_S)} as a whole; "
            f"{cli - results[n]['imports']:.2f} s more than a process that only imports)"
        )
    if not big:
        print(
            f"(target <= {TARGET_S:.0f} s is checked on the {TARGET_FILES}-file table; not "
            "measured in this run)"
        )
    if aborted:
        print(f"note: {aborted} child processes exited non-zero after reporting their result")
    print(f"measured in {time.perf_counter() - started:.0f} s")

    for n in sizes:
        if results[n]["profile"]:
            print(f"\ncProfile of one plugin restore of {n} commits (the restore() call):")
            C.print_profile(results[n]["profile"], 30, "lineage_plugin|deltalake")
    shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        kind, rest = sys.argv[2], sys.argv[3:]
        if kind == "prepare":
            child_prepare(rest[0], rest[1], int(rest[2]))
        elif kind == "restore":
            child_restore(rest[0], rest[1], rest[2] if len(rest) > 2 else None)
        elif kind == "bare":
            child_bare(rest[0], int(rest[1]))
        else:
            raise SystemExit(f"unknown child {kind!r}")
    else:
        from common import run_main

        sys.exit(run_main(main))
