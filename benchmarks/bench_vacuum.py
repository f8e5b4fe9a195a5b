"""``vacuum TABLE --yes`` against deltalake's own VACUUM of the same table.

A local Delta table of 20 overwrites of 500 small parquet files each (10,000 files; built once
and cached): every commit removes the last one's files, so 9,500 files are tombstoned. A model
``bench`` has three versions whose runs read table versions 5 (alias ``champion``), 12 (stage
Production) and 19 (the newest), recorded with ``lineage_plugin.log_delta_input`` in an MLflow
SQLite store (``lineage+sqlite:``). The protected versions are those three, so a VACUUM with a
retention of 0 hours that keeps them deletes the 8,500 files only other versions need. Per
repetition, a fresh copy of the table (log copied, data files hard-linked: VACUUM unlinks the
copy's names) at the same path (the registry records the path), and in fresh processes,
interleaved:

- plugin: ``lineage_plugin.recovery.vacuum.vacuum(path, retention_hours=0, confirm=None,
  tracking_uri=uri)``, what ``mlflow-lineage vacuum PATH --retention-hours 0 --yes`` does:
  the registry's protected versions, the check that they are readable, the VACUUM. Timed from
  the call to its return, after importing mlflow, deltalake, ``lineage_plugin.recovery.vacuum``
  and MLflow's SQL stores; its steps are timed as well;
- bare: ``DeltaTable(path).vacuum(retention_hours=0, enforce_retention_duration=False,
  dry_run=False, keep_versions=[5, 12, 19])``, deltalake's own, told the same versions: the
  baseline.

Both must delete the same 8,500 files, leave the protected versions readable and the others
not. Target: plugin/bare <= 1.2 on the medians. Exits 0 whether the target is met or not;
non-zero when a child crashes or a vacuum deletes the wrong files.

    python benchmarks/bench_vacuum.py            # 5 repetitions per arm
    python benchmarks/bench_vacuum.py --quick    # 2 repetitions
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
import time
from pathlib import Path

COMMITS = 20
FILES_PER_COMMIT = 500
TARGET = 1.2
MODEL = "bench"
MODEL_SOURCE = "s3://bucket/model"
# Table version -> how its model version is in use (model versions 1, 2, 3 in this order).
PROTECTED = {5: "alias champion", 12: "stage Production", COMMITS - 1: "newest"}
UNPROTECTED_PROBE = 4  # a version whose files both vacuums delete
WARMUP_CODE = (
    "import mlflow, deltalake, lineage_plugin.recovery.vacuum, lineage_plugin.queries.protected, "
    "lineage_plugin.delta.readability, lineage_plugin.delta.vacuum, "
    "mlflow.store.tracking.sqlalchemy_store, mlflow.store.model_registry.sqlalchemy_store"
    "\nprint('BENCH_RESULT {}')"
)
# The plugin's steps timed inside one vacuum call: (key, module, function). A step the
# module does not have (any more) is shown as n/a.
STEPS = (
    ("plan", "lineage_plugin.recovery.vacuum", "plan_vacuum"),
    ("open", "lineage_plugin.delta.delta_rs", "open_table"),
    ("guards", "lineage_plugin.recovery.vacuum", "guards"),
    ("protection", "lineage_plugin.recovery.vacuum", "protection"),
    ("readable", "lineage_plugin.recovery.vacuum", "_refuse_unreadable"),
    ("log_notes", "lineage_plugin.recovery.vacuum", "_log_notes"),
    ("listing", "lineage_plugin.recovery.vacuum", "_list"),
    ("bytes", "lineage_plugin.delta.vacuum", "total_bytes"),
    ("delete", "lineage_plugin.recovery.vacuum", "_delete"),
)


def digest(names: list[str]) -> str:
    """A short hash of a set of file names (children report it instead of 8,500 names)."""
    return hashlib.sha1("\n".join(sorted(names)).encode()).hexdigest()[:16]


# --------------------------------------------------------------------------- children


def child_prepare(db: str, table: str) -> None:
    """Record the runs that read ``table`` at the protected versions; register and mark them."""
    import mlflow
    from mlflow import MlflowClient

    import lineage_plugin as lp

    mlflow.set_tracking_uri(f"lineage+sqlite:///{db}")
    artifacts = Path(db).parent / "artifacts"
    experiment_id = mlflow.create_experiment("bench", artifact_location=artifacts.as_uri())
    client = MlflowClient()
    client.create_registered_model(MODEL)
    recorded = []
    for version in PROTECTED:
        with mlflow.start_run(experiment_id=experiment_id) as run:
            inp = lp.log_delta_input(table, version=version)
        recorded.append(inp.version if inp else None)
        client.create_model_version(MODEL, MODEL_SOURCE, run_id=run.info.run_id)
    client.set_registered_model_alias(MODEL, "champion", "1")
    client.transition_model_version_stage(MODEL, "2", "Production")
    lineage = [[i.version for i in lp.get_lineage(MODEL, str(mv)).inputs] for mv in (1, 2, 3)]

    from common import emit_result

    emit_result({"recorded": recorded, "lineage": lineage})


def child_plugin(db: str, table: str, profile_out: str | None) -> None:
    """One plugin vacuum in this fresh process, its steps timed; prints a BENCH_RESULT line."""
    import importlib

    import deltalake  # noqa: F401  (imported before the timer, as in the bare child)
    import mlflow  # noqa: F401

    from lineage_plugin.recovery.vacuum import vacuum

    # MLflow's SQL stores are imported by any MLflow client of a database, not by
    # `import mlflow`: imported here, timed apart.
    t = time.perf_counter()
    import mlflow.store.model_registry.sqlalchemy_store  # noqa: F401
    import mlflow.store.tracking.sqlalchemy_store  # noqa: F401

    store_imports = time.perf_counter() - t

    spent: dict[str, float | None] = {}

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
        if hasattr(mod, name):
            spent[key] = 0.0
            setattr(mod, name, timed(key, getattr(mod, name)))
        else:
            spent[key] = None

    uri = f"lineage+sqlite:///{db}"
    profiler = None
    if profile_out:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    t0 = time.perf_counter()
    report = vacuum(table, retention_hours=0, confirm=None, tracking_uri=uri)
    t1 = time.perf_counter()
    if profiler is not None:
        profiler.disable()
        profiler.dump_stats(profile_out)

    from common import emit_result

    emit_result(
        {
            "seconds": t1 - t0,
            "store_imports": store_imports,
            "steps": spent,
            "kept": report.plan.keep_versions,
            "json": report.to_dict(),
            "deleted": len(report.deleted),
            "digest": digest(list(report.deleted)),
        }
    )


def child_bare(table: str) -> None:
    """One deltalake vacuum in this fresh process; prints a BENCH_RESULT line."""
    from deltalake import DeltaTable

    t0 = time.perf_counter()
    deleted = DeltaTable(table).vacuum(
        retention_hours=0,
        enforce_retention_duration=False,
        dry_run=False,
        keep_versions=sorted(PROTECTED),
    )
    t1 = time.perf_counter()

    from common import emit_result

    emit_result({"seconds": t1 - t0, "deleted": len(deleted), "digest": digest(deleted)})


# --------------------------------------------------------------------------- parent


def version_files(table: Path) -> dict[int, set[str]]:
    """Each version's data files (relative names), from deltalake (the log only)."""
    from deltalake import DeltaTable

    def names(v: int) -> set[str]:  # every data file is at the table's root
        return {os.path.basename(u) for u in DeltaTable(str(table), version=v).file_uris()}

    return {v: names(v) for v in range(COMMITS)}


def expected_deletion(files: dict[int, set[str]]) -> set[str]:
    every = set().union(*files.values())
    kept = set().union(*(files[v] for v in PROTECTED))
    return every - kept


def check_table(table: Path, files: dict[int, set[str]], gone: set[str], what: str) -> None:
    """Exactly ``gone`` was deleted; the protected versions are readable, the probe is not."""
    on_disk = {n for n in os.listdir(table) if n.endswith(".parquet")}
    every = set().union(*files.values())
    deleted = every - on_disk
    if deleted != gone:
        raise SystemExit(
            f"{what}: {len(deleted)} files deleted, expected {len(gone)} "
            f"({len(deleted - gone)} wrongly, {len(gone - deleted)} left)"
        )
    from deltalake import DeltaTable

    for v in PROTECTED:
        live = DeltaTable(str(table), version=v).file_uris()
        missing = [f for f in live if not os.path.exists(f.removeprefix("file://"))]
        if missing or len(live) != FILES_PER_COMMIT:
            raise SystemExit(f"{what}: v{v} lost {len(missing)} of its {len(live)} files")
    if all((table / f).exists() for f in files[UNPROTECTED_PROBE]):
        raise SystemExit(f"{what}: v{UNPROTECTED_PROBE} still has its files")


def read_rows(table: Path, version: int) -> int:
    """Read a version's data (through pyarrow's own file system: see README)."""
    from deltalake import DeltaTable
    from pyarrow.fs import LocalFileSystem, SubTreeFileSystem

    fs = SubTreeFileSystem(str(table), LocalFileSystem())
    return DeltaTable(str(table), version=version).to_pyarrow_table(filesystem=fs).num_rows


def measure(ctx: dict) -> dict:
    """Both arms, interleaved; the results (raises when a vacuum is wrong)."""
    import common as C

    pristine, env, cwd, script = ctx["pristine"], ctx["env"], ctx["cwd"], ctx["script"]
    work = ctx["scratch"]
    table = work / "table"
    files = version_files(pristine)
    gone = expected_deletion(files)
    want_digest = digest(list(gone))
    C.fresh_copy(pristine, table)
    prepared = C.fresh_db(ctx["template"], work / "prepared")
    _, prep, _ = C.run_child(
        [script, "--child", "prepare", str(prepared), str(table)], env=env, cwd=cwd
    )
    if prep["recorded"] != list(PROTECTED) or prep["lineage"] != [[v] for v in PROTECTED]:
        raise SystemExit(f"the model versions' lineage is wrong: {prep}")

    def plugin(tag: str, profile_out: str | None = None) -> dict:
        C.fresh_copy(pristine, table)
        db = work / tag / "mlflow.db"
        db.parent.mkdir(parents=True)
        shutil.copyfile(prepared, db)
        cmd = [script, "--child", "plugin", str(db), str(table)]
        if profile_out:
            cmd.append(profile_out)
        _, result, _ = C.run_child(cmd, env=env, cwd=cwd)
        what = f"plugin vacuum, {tag}"
        data = result["json"]
        if (
            result["kept"] != sorted(PROTECTED)
            or result["deleted"] != len(gone)
            or result["digest"] != want_digest
            or data.get("files") != len(gone)
            or data.get("deleted") != len(gone)
        ):
            raise SystemExit(
                f"{what}: kept {result['kept']}, reported {result['deleted']} deleted "
                f"(digest {result['digest']}, want {want_digest}), JSON files/deleted "
                f"{data.get('files')}/{data.get('deleted')}; expected {len(gone)}"
            )
        check_table(table, files, gone, what)
        return result

    def bare(tag: str) -> dict:
        C.fresh_copy(pristine, table)
        _, result, _ = C.run_child([script, "--child", "bare", str(table)], env=env, cwd=cwd)
        what = f"bare vacuum, {tag}"
        if result["deleted"] != len(gone) or result["digest"] != want_digest:
            raise SystemExit(f"{what}: {result['deleted']} deleted, expected {len(gone)}")
        check_table(table, files, gone, what)
        return result

    runs: dict[str, list[dict]] = {"plugin": [], "bare": []}
    reps = ctx["reps"]
    for rep in range(reps):
        order = ("plugin", "bare") if rep % 2 == 0 else ("bare", "plugin")
        for arm in order:
            runs[arm].append(plugin(f"rep{rep}") if arm == "plugin" else bare(f"rep{rep}"))
        print(
            f"  rep {rep + 1}/{reps}: plugin {runs['plugin'][-1]['seconds']:.3f} s, "
            f"bare {runs['bare'][-1]['seconds']:.3f} s",
            flush=True,
        )
    # The last table is the plugin's or the bare arm's: its protected versions' rows read.
    rows = {v: read_rows(table, v) for v in PROTECTED}
    if any(n != FILES_PER_COMMIT * C.ROWS_PER_FILE for n in rows.values()):
        raise SystemExit(f"after the last vacuum the protected versions hold {rows} rows")
    profile = None
    if ctx["profile"]:
        profile = str(work / "vacuum.prof")
        plugin("profile", profile)
    return {"runs": runs, "gone": len(gone), "profile": profile}


def print_results(results: dict, reps: int) -> None:
    import common as C

    runs = results["runs"]

    def med(arm: str) -> float:
        return C.median([r["seconds"] for r in runs[arm]])

    plugin, bare = med("plugin"), med("bare")
    q1, q3 = C.quartiles([r["seconds"] for r in runs["plugin"]])
    b1, b3 = C.quartiles([r["seconds"] for r in runs["bare"]])
    print(
        f"\nMedian seconds over {reps} fresh processes per arm. plugin = the vacuum() call "
        "(confirm=None, as --yes), after the imports; bare = DeltaTable(path).vacuum(..., "
        "keep_versions=the same versions)."
    )
    C.print_table(
        [
            "files",
            "deleted",
            "kept versions",
            "plugin",
            "plugin IQR",
            "bare",
            "bare IQR",
            "plugin/bare",
            f"<= {TARGET}",
        ],
        [
            [
                COMMITS * FILES_PER_COMMIT,
                results["gone"],
                ",".join(map(str, sorted(PROTECTED))),
                plugin,
                f"{q1:.3f}-{q3:.3f}",
                bare,
                f"{b1:.3f}-{b3:.3f}",
                C.ratio(plugin, bare),
                C.verdict(C.ratio(plugin, bare) <= TARGET),
            ]
        ],
    )

    def step(key: str) -> float:
        values = [r["steps"].get(key) for r in runs["plugin"]]
        return float("nan") if None in values else C.median(values)

    keys = [k for k, _, _ in STEPS]
    print("\nWhere the plugin's call goes (median seconds; n/a: no such step)")
    C.print_table(
        [*keys, "(MLflow SQL imports)"],
        [[step(k) for k in keys] + [C.median([r["store_imports"] for r in runs["plugin"]])]],
    )
    print(
        "(plan = recovery.vacuum.plan_vacuum, every call of it; within it: open = "
        "delta_rs.open_table (every call, the VACUUM's own included), guards = the registry's "
        "model versions in use, protection = their lineage records -> the protected versions, "
        "readable = _refuse_unreadable (opens each protected version, checks its files exist), "
        "log_notes = what log clean-up takes, listing = _list (a dry-run VACUUM), bytes = "
        "delta.vacuum.total_bytes; delete = _delete (the VACUUM). A plugin module imported on "
        "first use counts in the step that first needs it.)"
    )
    r = C.ratio(plugin, bare)
    print(
        f"\ntarget: plugin vacuum / deltalake vacuum of {COMMITS * FILES_PER_COMMIT} files "
        f"({results['gone']} deleted) <= {TARGET} -> {r:.2f}: {C.verdict(r <= TARGET)}"
    )
    sizes = {r["json"].get("bytes") for r in runs["plugin"]}
    print(f"(the plugin reported bytes: {', '.join(map(str, sorted(sizes, key=str)))})")


def main() -> int:
    import argparse

    import common as C

    C.clean_this_process_env()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="2 repetitions (CI smoke test)")
    parser.add_argument("--reps", type=int, help="repetitions per arm (default 5, quick 2)")
    parser.add_argument("--workdir", help=f"cache directory (default {C.DEFAULT_WORKDIR})")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="also run one plugin vacuum under cProfile and print the lineage_plugin and "
        "deltalake functions",
    )
    C.add_bytecode_option(parser)
    args = parser.parse_args()
    reps = args.reps or (2 if args.quick else 5)

    wd = C.workdir(args.workdir)
    template = C.migrated_sqlite_template(wd)
    pristine = C.build_table(wd, COMMITS, files_per_commit=FILES_PER_COMMIT, mode="overwrite")
    scratch = C.scratch_dir(wd, "vacuum")
    env = C.bytecode_env(wd, args)
    cwd = str(C.REPO_DIR)
    ctx = {
        "pristine": pristine,
        "template": template,
        "scratch": scratch,
        "script": str(C.BENCH_DIR / "bench_vacuum.py"),
        "env": env,
        "cwd": cwd,
        "reps": reps,
        "profile": args.profile,
    }
    print(
        f"vacuum: {reps} repetitions per arm, fresh process and fresh table copy each, a table "
        f"of {COMMITS} overwrites of {FILES_PER_COMMIT} files, retention 0 h, protected "
        f"versions {sorted(PROTECTED)} ({', '.join(PROTECTED.values())}); {sys.executable}"
    )
    started = time.perf_counter()
    # Unmeasured: a process importing what the children import (cold disk and bytecode caches).
    C.run_child(["-c", WARMUP_CODE], env=env, cwd=cwd)
    results = measure(ctx)
    print_results(results, reps)
    aborted = sum(r["_returncode"] != 0 for rs in results["runs"].values() for r in rs)
    if aborted:
        print(f"note: {aborted} child processes exited non-zero after reporting their result")
    print(f"measured in {time.perf_counter() - started:.0f} s")
    if results["profile"]:
        print("\ncProfile of one plugin vacuum (the vacuum() call):")
        C.print_profile(results["profile"], 30, "lineage_plugin|deltalake")
    shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        kind, rest = sys.argv[2], sys.argv[3:]
        if kind == "prepare":
            child_prepare(rest[0], rest[1])
        elif kind == "plugin":
            child_plugin(rest[0], rest[1], rest[2] if len(rest) > 2 else None)
        elif kind == "bare":
            child_bare(rest[0])
        else:
            raise SystemExit(f"unknown child {kind!r}")
    else:
        from common import run_main

        sys.exit(run_main(main))
