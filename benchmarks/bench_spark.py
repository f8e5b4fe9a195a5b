"""The Spark engine: version resolution through Spark, and the capture overhead of a Spark run.

Everything runs in this one process, with one local Spark session (``local[2]``, the Delta jars
through ``configure_spark_with_delta_pip``, the configuration of ``tests/spark_session.py``),
because a Spark session takes seconds to start.

1. Version resolution on the cached local tables of 10, 1,000 and 10,000 commits (``--quick``:
   10 and 1,000), five ways: Spark ``DESCRIBE HISTORY delta.`path` LIMIT 1``; Spark
   ``DESCRIBE DETAIL`` + ``DESCRIBE HISTORY ... LIMIT 1``; the plugin's Spark SQL path
   (``delta_spark.version_info``, which takes it for tables that are not local, made to take
   it here); ``deltalake.DeltaTable(path).version()`` (the baseline); the plugin's local log
   reader ``delta_log.resolve(path)``. Cold = the first call on a fresh hard-linked copy of the
   table at a path this process has never seen (so Delta's DeltaLog cache, the plugin's table-id
   cache and deltalake know nothing of it); warm = the median of repeated calls on one path.
   No target: the script reports.
2. The capture overhead of one training-like run read with Spark: start_run, 5 params, 5
   metrics, 1 text artifact, ``spark.read.format("delta").load(path).toPandas()`` of the
   1,000-commit table, a numpy least-squares fit, end_run; five ways, interleaved, each on a
   fresh copy of the pre-migrated SQLite database: bare (``sqlite:``), pinned (bare with
   ``.option("versionAsOf", latest)`` added by hand: what the plugin's pin does to Spark's read,
   without the plugin), stock (``sqlite:`` + ``mlflow.log_input(mlflow.data.from_spark(df,
   path=...))``), plugin (``lineage+sqlite:``), plugin-sql (the plugin resolving versions
   through Spark SQL, as it does for a table that is not local). Capture is switched off
   (``lineage_plugin.autolog(disable=True)``, which restores the patched methods) before each
   baseline run and on (``lineage_plugin.autolog()``) before each plugin run, and the plugin's
   caches of table facts are emptied before each plugin run. Timers around the plugin's steps
   show where its time goes. Targets on the run medians: plugin <= 1.10x bare,
   plugin <= 1.00x stock.

Exits 0 whether the targets are met or not; non-zero when a run does not record what it should
(plugin: exactly one input, the table's latest version, engine ``spark``) or when the resolvers
disagree on a version.

    python benchmarks/bench_spark.py            # 3 tables, 10 rounds, about 2 minutes
    python benchmarks/bench_spark.py --quick    # 2 tables, 3 rounds, under 1 minute
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from pathlib import Path

TABLE_COMMITS = 1000
MODES = ("bare", "pinned", "stock", "plugin", "plugin-sql")
PLUGIN_MODES = ("plugin", "plugin-sql")
TARGET_VS_BARE = 1.10
TARGET_VS_STOCK = 1.00
BASELINE = "deltalake"
RESOLVERS = (
    "spark history",
    "spark detail+history",
    "plugin spark SQL",
    "deltalake",
    "plugin log",
)
PHASES = (
    ("start_run", "start_run"),
    ("log", "log"),
    ("load", "load"),
    ("collect", "toPandas"),
    ("dataset", "from_spark"),
    ("log_input", "log_input"),
    ("fit", "fit"),
    ("end_run", "end_run"),
)


# --------------------------------------------------------------------------- Spark session


def start_spark(wd: Path):
    """The tests' local[2] Delta session; the JVM's own output goes to a log file.

    The JVM inherits this process's stderr when it starts: Ivy's resolution report and Spark's
    start-up warnings would fill the screen. Pointing fd 2 at a file while the session starts
    sends them (and anything the JVM prints later) there.
    """
    import common as C

    sys.path.insert(0, str(C.REPO_DIR / "tests"))
    from spark_session import start_session

    log = wd / "spark-jvm.log"
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(log, "w") as fh:
            os.dup2(fh.fileno(), 2)
            try:
                spark = start_session(wd / "spark-warehouse")
            finally:
                os.dup2(saved, 2)
    except Exception:
        print(f"the Spark session did not start; the JVM's output:\n{log.read_text()[-5000:]}")
        raise
    finally:
        os.close(saved)
    spark.sparkContext.setLogLevel("ERROR")
    return spark, log


# --------------------------------------------------------------------------- 1. resolution


@contextlib.contextmanager
def _as_remote_table():
    """``delta_spark.version_info`` takes its Spark SQL path, as for a table on object storage.

    It reads a ``file://`` table from the local ``_delta_log``; with ``delta_log.local_path``
    answering None (only inside this block) it runs its ``DESCRIBE DETAIL`` and
    ``DESCRIBE HISTORY`` instead.
    """
    from lineage_plugin.delta import log as delta_log

    original = delta_log.local_path
    delta_log.local_path = lambda uri: None
    try:
        yield
    finally:
        delta_log.local_path = original


def resolvers(spark) -> dict:
    """name -> function(path) returning the table's latest version."""
    from deltalake import DeltaTable

    from lineage_plugin.delta import log as delta_log
    from lineage_plugin.delta import spark as delta_spark

    def spark_history(path: str) -> int:
        return int(spark.sql(f"DESCRIBE HISTORY delta.`{path}` LIMIT 1").first()["version"])

    def spark_detail_history(path: str) -> int:
        spark.sql(f"DESCRIBE DETAIL delta.`{path}`").first()
        return int(spark.sql(f"DESCRIBE HISTORY delta.`{path}` LIMIT 1").first()["version"])

    def plugin_spark_sql(path: str) -> int:
        with _as_remote_table():
            return delta_spark.version_info(spark, path).version

    def deltalake_open(path: str) -> int:
        return DeltaTable(path).version()

    def plugin_log(path: str) -> int:
        return delta_log.resolve(path).version

    functions = {
        "spark history": spark_history,
        "spark detail+history": spark_detail_history,
        "plugin spark SQL": plugin_spark_sql,
        "deltalake": deltalake_open,
        "plugin log": plugin_log,
    }
    assert tuple(functions) == RESOLVERS
    return functions


def fresh_copy(table: Path, copies: Path, tag: str) -> str:
    """A hard-linked copy of ``table`` at a new path (the log files and data files are shared)."""
    import shutil

    dest = copies / tag
    shutil.copytree(table, dest, copy_function=os.link)
    return str(dest)


def _timed(fn, path: str) -> tuple[float, int]:
    t = time.perf_counter()
    version = fn(path)
    return (time.perf_counter() - t) * 1000, version


def measure_resolution(
    spark,
    tables: dict[int, Path],
    copies: Path,
    cold_reps: int,
    warm_reps: int,
    methods: tuple[str, ...] = RESOLVERS,
) -> tuple[dict, list[str], dict]:
    """Cold and warm samples (ms) per (commits, method); problems; session warm-up times."""
    from deltalake import DeltaTable

    from lineage_plugin.delta import log as delta_log
    from lineage_plugin.delta import spark as delta_spark

    fns = resolvers(spark)
    names = list(methods)
    problems: list[str] = []
    # Untimed: the session's first Delta statements load and compile Delta's classes; that is
    # the session's cost, not any table's. Reported on its own.
    first = min(tables)
    warmup = {}
    for name in names:
        ms, _ = _timed(fns[name], fresh_copy(tables[first], copies, f"warmup-{name}"))
        warmup[name] = ms

    samples: dict[tuple[int, str], dict[str, list[float]]] = {}
    for n, table in tables.items():
        expected = n - 1
        for name in names:
            samples[(n, name)] = {"cold": [], "warm": []}
        for rep in range(cold_reps):
            k = rep % len(names)
            for name in names[k:] + names[:k]:
                path = fresh_copy(table, copies, f"{n}-{rep}-{name.replace(' ', '_')}")
                ms, version = _timed(fns[name], path)
                samples[(n, name)]["cold"].append(ms)
                if version != expected:
                    problems.append(f"{name} cold on {n} commits: v{version}, expected {expected}")
        path = str(table)
        for name in names:  # the first call on this path is not a warm one
            fns[name](path)
        for rep in range(warm_reps):
            k = rep % len(names)
            for name in names[k:] + names[:k]:
                ms, version = _timed(fns[name], path)
                samples[(n, name)]["warm"].append(ms)
                if version != expected:
                    problems.append(f"{name} warm on {n} commits: v{version}, expected {expected}")
        # The plugin's two paths give the same facts as deltalake.
        dt = DeltaTable(path)
        with _as_remote_table():
            remote = delta_spark.version_info(spark, path)
        local = delta_log.resolve(path)
        for label, info in (("spark SQL", remote), ("log", local)):
            if (info.version, info.table_id) != (dt.version(), dt.metadata().id):
                problems.append(
                    f"plugin {label} on {n} commits: v{info.version} id {info.table_id}, "
                    f"deltalake v{dt.version()} id {dt.metadata().id}"
                )
        if remote.commit.operation != local.commit.operation:
            problems.append(
                f"{n} commits: operation {remote.commit.operation!r} (Spark) != "
                f"{local.commit.operation!r} (log)"
            )
        print(f"  resolution: measured {n} commits", flush=True)
    return samples, problems, warmup


def report_resolution(samples: dict, sizes: list[int], cold_reps: int, warm_reps: int) -> None:
    import common as C

    methods = [m for m in RESOLVERS if (sizes[0], m) in samples]
    print(
        f"\nversion resolution, ms per call. cold = first call on a fresh copy of the table "
        f"(median of {cold_reps}); warm = median of {warm_reps} calls on one path after one "
        f"untimed call; x {BASELINE} = / {BASELINE} cold or warm of the same table"
    )
    rows = []
    for n in sizes:
        base_cold = C.median(samples[(n, BASELINE)]["cold"])
        base_warm = C.median(samples[(n, BASELINE)]["warm"])
        for name in methods:
            cold, warm = samples[(n, name)]["cold"], samples[(n, name)]["warm"]
            q1, q3 = C.quartiles(warm)
            rows.append(
                [
                    n,
                    name,
                    C.median(cold),
                    C.ratio(C.median(cold), base_cold),
                    C.median(warm),
                    C.ratio(C.median(warm), base_warm),
                    f"{q1:.1f}-{q3:.1f}",
                ]
            )
    C.print_table(
        ["commits", "method", "cold", f"x {BASELINE}", "warm", f"x {BASELINE}", "warm IQR"], rows
    )
    first, last = sizes[0], sizes[-1]
    if last != first:
        print()
        for name in methods:
            c = C.ratio(
                C.median(samples[(last, name)]["cold"]), C.median(samples[(first, name)]["cold"])
            )
            w = C.ratio(
                C.median(samples[(last, name)]["warm"]), C.median(samples[(first, name)]["warm"])
            )
            print(f"scaling {name}: {last}/{first} commits = {c:.1f}x cold, {w:.1f}x warm")


# --------------------------------------------------------------------------- 2. capture


#: The plugin's steps timed in its runs: (label, module, function). "write" includes
#: "index"; "resolve" counts every version resolution (the pin and each recorded read).
STEPS = (
    ("resolve", "lineage_plugin.delta.spark", "version_info"),
    ("plan", "lineage_plugin.tracking.spark_actions", "delta_relations"),
    ("write", "lineage_plugin.tracking.writer", "write_run"),
    ("index", "lineage_plugin.store.index", "ensure_schema"),
)


@contextlib.contextmanager
def _step_timers(into: dict[str, list[float]]):
    """Timers around the plugin's steps (module attributes, restored after the block).

    ``into[label]`` gets one entry (ms) per call. The callers look these functions up in their
    module at call time, so replacing the module attribute times every call.
    """
    import functools
    import importlib

    saved = []
    for label, module_name, name in STEPS:
        module = importlib.import_module(module_name)
        original = getattr(module, name)

        def timed(*args, _original=original, _label=label, **kwargs):
            t = time.perf_counter()
            try:
                return _original(*args, **kwargs)
            finally:
                into.setdefault(_label, []).append((time.perf_counter() - t) * 1000)

        saved.append((module, name, original))
        setattr(module, name, functools.wraps(original)(timed))
    try:
        yield
    finally:
        for module, name, original in saved:
            setattr(module, name, original)


def _forget_tables(spark) -> None:
    """Empty the plugin's caches of table facts, as a fresh process starts.

    ``delta_log.table_id_at`` (a local table's id) and the remote versions described
    through Spark SQL, which the plugin keeps on the SparkSession: without this, every run
    after the first would find the table's facts cached by the run before.
    """
    from lineage_plugin.delta import log as delta_log

    delta_log.table_id_at.cache_clear()
    spark.__dict__.pop("_lineage_versions", None)


def one_run(spark, mode: str, table: str, version: int, db: Path, profiler=None) -> dict:
    """One training-like run; the phase times (ms) and what it needs checking."""
    import mlflow
    import numpy as np

    import lineage_plugin

    capture = mode in PLUGIN_MODES
    # Capture off for the baselines (restores the patched methods), on for the plugin. Loading
    # the lineage+ store below would turn it on as well.
    lineage_plugin.autolog(disable=not capture)
    scheme = "lineage+sqlite" if capture else "sqlite"
    mlflow.set_tracking_uri(f"{scheme}:///{db}")
    artifacts = db.parent / "artifacts"
    experiment_id = mlflow.create_experiment("bench", artifact_location=artifacts.as_uri())
    if capture:
        _forget_tables(spark)

    steps: dict[str, list[float]] = {}
    with contextlib.ExitStack() as stack:
        if mode == "plugin-sql":
            stack.enter_context(_as_remote_table())
        if capture and profiler is None:
            stack.enter_context(_step_timers(steps))
        if profiler is not None:
            profiler.enable()
        marks = [time.perf_counter()]
        run = mlflow.start_run(experiment_id=experiment_id)
        marks.append(time.perf_counter())
        mlflow.log_params({f"p{i}": i * 0.5 for i in range(5)})
        for i in range(5):
            mlflow.log_metric(f"m{i}", i / 10)
        mlflow.log_text("benchmark run\n", "notes.txt")
        marks.append(time.perf_counter())
        reader = spark.read.format("delta")
        if mode == "pinned":  # what the plugin's pin does to the read, without the plugin
            reader = reader.option("versionAsOf", version)
        df = reader.load(table)
        marks.append(time.perf_counter())
        pdf = df.toPandas()
        marks.append(time.perf_counter())
        dataset = mlflow.data.from_spark(df, path=table) if mode == "stock" else None
        marks.append(time.perf_counter())
        if dataset is not None:
            mlflow.log_input(dataset, context="training")
        marks.append(time.perf_counter())
        features = np.column_stack([pdf["x"].to_numpy(), np.ones(len(pdf))])
        coef = np.linalg.lstsq(features, pdf["y"].to_numpy(), rcond=None)[0]
        mlflow.log_metric("coef", float(coef[0]))
        marks.append(time.perf_counter())
        mlflow.end_run()
        marks.append(time.perf_counter())
        if profiler is not None:
            profiler.disable()

    result = {"run_id": run.info.run_id, "rows": len(pdf)}
    assert len(marks) == len(PHASES) + 1
    result["run"] = (marks[-1] - marks[0]) * 1000
    for i, (key, _) in enumerate(PHASES):
        result[key] = (marks[i + 1] - marks[i]) * 1000
    for label, _, _ in STEPS:
        result[f"step {label}"] = sum(steps.get(label, []))
        result[f"calls {label}"] = len(steps.get(label, []))
    return result


def check_run(mode: str, run_id: str, uri: str, version: int) -> str | None:
    """What the run recorded, through the current tracking URI; an error text or None."""
    from mlflow.tracking import MlflowClient

    import lineage_plugin

    run = MlflowClient().get_run(run_id)
    inputs = run.inputs.dataset_inputs if run.inputs else []
    tags = [k for k in run.data.tags if k.startswith("lineage.")]
    if mode in ("bare", "pinned") and (inputs or tags):
        return f"{mode} run recorded {len(inputs)} dataset inputs and {len(tags)} lineage tags"
    if mode == "stock":
        import json

        sources = [json.loads(i.dataset.source) for i in inputs]
        versions = [s.get("delta_table_version") for s in sources]
        if tags or versions != [version]:
            return f"stock run recorded versions {versions} and {len(tags)} lineage tags"
    if mode in PLUGIN_MODES:
        lineage = lineage_plugin.get_run_lineage(run_id)
        found = [(i.uri, i.version, i.engine) for i in lineage.inputs]
        if found != [(uri, version, "spark")] or lineage.status != "complete":
            return (
                f"{mode} run: inputs (uri, version, engine) {found}, status {lineage.status!r}, "
                f"reasons {list(lineage.reasons)}; expected [({uri!r}, {version}, 'spark')], "
                "complete"
            )
    return None


def _hooks_installed() -> bool:
    from pyspark.sql.readwriter import DataFrameReader

    return hasattr(DataFrameReader.load, "__lineage_original__")


def measure_capture(spark, template: Path, table: str, scratch: Path, rounds: int) -> dict:
    """Interleaved runs of every mode (the order rotates every round), after a warm-up round."""
    import shutil

    import common as C
    from deltalake import DeltaTable

    from lineage_plugin.delta.log import normalize_uri

    version = DeltaTable(table).version()
    uri = normalize_uri(table)

    def one(mode: str, tag: str, profiler=None) -> dict:
        run_dir = scratch / tag
        db = C.fresh_db(template, run_dir)
        result = one_run(spark, mode, table, version, db, profiler)
        if _hooks_installed() != (mode in PLUGIN_MODES):
            raise SystemExit(f"{tag}: the Spark hooks are installed={_hooks_installed()}")
        problem = check_run(mode, result["run_id"], uri, version)
        if problem:
            raise SystemExit(f"{tag}: {problem}")
        shutil.rmtree(run_dir, ignore_errors=True)
        return result

    # Unmeasured: the first run of each mode in the process pays for imports (mlflow.data's
    # Spark dataset, the plugin's writer), the Python workers of from_spark's profile job, the
    # plugin's environment tags (computed once per process) and the JIT. Kept for the report.
    first = {mode: one(mode, f"warmup-{mode}")["run"] for mode in MODES}
    results: dict[str, list[dict]] = {m: [] for m in MODES}
    for rnd in range(rounds):
        k = rnd % len(MODES)
        for mode in MODES[k:] + MODES[:k]:
            results[mode].append(one(mode, f"{rnd}-{mode}"))
        print(
            f"  capture: round {rnd + 1}/{rounds}: "
            + ", ".join(f"{m} {results[m][-1]['run']:.0f} ms" for m in MODES),
            flush=True,
        )
    return {"results": results, "first": first, "version": version, "one": one}


def report_capture(measured: dict, rounds: int) -> bool:
    """Print the tables; whether both targets are met."""
    import common as C

    results, first = measured["results"], measured["first"]

    def med(mode: str, key: str) -> float:
        return C.median([r[key] for r in results[mode]])

    print(
        f"\ncapture overhead, one Spark session, median of {rounds} interleaved rounds (ms); "
        "run = start_run .. end_run"
    )
    rows = []
    for mode in MODES:
        q1, q3 = C.quartiles([r["run"] for r in results[mode]])
        rows.append(
            [mode, med(mode, "run"), f"{q1:.0f}-{q3:.0f}"]
            + [med(mode, k) for k, _ in PHASES]
            + [first[mode]]
        )
    C.print_table(["mode", "run", "run IQR", *(h for _, h in PHASES), "1st run"], rows)
    print(
        f"(log = 5 params, 5 metrics, 1 text artifact; load = spark.read.format('delta')"
        f".load(path) of {TABLE_COMMITS} commits, where the plugin resolves and pins the version; "
        f"toPandas = {results['bare'][0]['rows']} rows, where the plugin records the read; "
        "from_spark and log_input = stock only; fit = least squares + 1 metric. pinned = bare + "
        "versionAsOf=latest by hand; plugin-sql = plugin with its Spark SQL resolution, as for "
        "a table that is not local. 1st run = the unmeasured warm-up run of that mode, in the "
        f"order {', '.join(MODES)}.)"
    )
    print("\nthe plugin's steps inside its runs (median ms per run; calls per run)")
    rows = []
    for mode in PLUGIN_MODES:
        row: list[object] = [mode]
        for label, _, _ in STEPS:
            row += [med(mode, f"step {label}"), int(med(mode, f"calls {label}"))]
        rows.append(row)
    headers = ["mode"]
    for label, _, _ in STEPS:
        headers += [label, "calls"]
    C.print_table(headers, rows)
    print(
        "(resolve = delta_spark.version_info: the pin at load and the description of each "
        "recorded read; plan = _delta_relations in the action; write = writer.write_run: tags, "
        "dataset input, manifest artifact, lineage index; index = of which creating the lineage "
        "index tables in the run's fresh database, once per database.)"
    )

    run_b, run_pin, run_s, run_p = (med(m, "run") for m in ("bare", "pinned", "stock", "plugin"))
    run_sql = med("plugin-sql", "run")
    own = C.median(
        [
            sum(r[f"step {label}"] for label, _, _ in STEPS if label != "index")
            for r in results["plugin"]
        ]
    )
    print(
        f"plugin: its timed steps take {own:.1f} ms per run (median), {own / run_b:.1%} of a bare "
        "run (a lower bound of its own work: the hooks' wrappers and the store's other calls are "
        "not in them)"
    )
    r_bare, r_stock = C.ratio(run_p, run_b), C.ratio(run_p, run_s)
    ok_bare, ok_stock = r_bare <= TARGET_VS_BARE, r_stock <= TARGET_VS_STOCK
    print()
    C.print_table(
        ["ratio", "run", "target", "result"],
        [
            ["plugin / bare", r_bare, f"<= {TARGET_VS_BARE:.2f}", C.verdict(ok_bare)],
            ["plugin / stock", r_stock, f"<= {TARGET_VS_STOCK:.2f}", C.verdict(ok_stock)],
            ["plugin / pinned", C.ratio(run_p, run_pin), "", ""],
            ["pinned / bare", C.ratio(run_pin, run_b), "", ""],
            ["stock / bare", C.ratio(run_s, run_b), "", ""],
            ["plugin-sql / bare", C.ratio(run_sql, run_b), "", ""],
            ["plugin-sql / stock", C.ratio(run_sql, run_s), "", ""],
        ],
    )
    print(
        f"plugin adds {run_p - run_b:+.1f} ms per run over bare, {run_p - run_pin:+.1f} ms over "
        f"pinned, {run_p - run_s:+.1f} ms over stock; plugin-sql adds {run_sql - run_b:+.1f} ms "
        "over bare (medians)"
    )
    return ok_bare and ok_stock


# --------------------------------------------------------------------------- main


def main() -> int:
    import argparse
    import shutil

    import common as C

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick", action="store_true", help="tables of 10 and 1000 commits, fewer repetitions"
    )
    parser.add_argument("--sizes", help="comma-separated commit counts (default 10,1000,10000)")
    parser.add_argument("--cold", type=int, help="cold calls per method (default 3, quick 1)")
    parser.add_argument("--warm", type=int, help="warm calls per method (default 10, quick 3)")
    parser.add_argument("--rounds", type=int, help="capture rounds (default 10, quick 3)")
    parser.add_argument("--workdir", help=f"cache directory (default {C.DEFAULT_WORKDIR})")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="also profile one plugin run and print lineage_plugin's functions (done anyway "
        "when a target is missed)",
    )
    args = parser.parse_args()
    C.clean_this_process_env()
    import warnings

    # MLflow's schema inference (from_spark) warns about integer columns on every stock run.
    warnings.filterwarnings("ignore", message="Hint: Inferred schema contains integer")
    if args.sizes:
        sizes = sorted(int(s) for s in args.sizes.split(","))
    else:
        sizes = [10, 1000] if args.quick else [10, 1000, 10_000]
    cold_reps = args.cold or (1 if args.quick else 3)
    warm_reps = args.warm or (3 if args.quick else 10)
    rounds = args.rounds or (3 if args.quick else 10)

    wd = C.workdir(args.workdir)
    template = C.migrated_sqlite_template(wd)
    tables = {n: C.build_table(wd, n) for n in sorted({*sizes, TABLE_COMMITS})}
    scratch = C.scratch_dir(wd, "spark")

    started = time.perf_counter()
    import mlflow  # noqa: F401  (imported before the timers, as a training script would)

    import lineage_plugin

    lineage_plugin.autolog(disable=True)
    spark, jvm_log = start_spark(wd)
    session_s = time.perf_counter() - started
    import pyspark

    print(
        f"spark: pyspark {pyspark.__version__}, local[2], session started in {session_s:.1f} s "
        f"(imports included); the JVM's output goes to {jvm_log}"
    )
    try:
        print(
            f"resolution: tables of {', '.join(map(str, sizes))} commits, {cold_reps} cold and "
            f"{warm_reps} warm calls per method; capture: {rounds} rounds x {len(MODES)} modes",
            flush=True,
        )
        # --quick leaves out the one Spark method that is a reference only, to stay short.
        methods = tuple(m for m in RESOLVERS if not (args.quick and m == "spark detail+history"))
        samples, problems, warmup = measure_resolution(
            spark, {n: tables[n] for n in sizes}, scratch / "copies", cold_reps, warm_reps, methods
        )
        shutil.rmtree(scratch / "copies", ignore_errors=True)
        t_capture = time.perf_counter()
        measured = measure_capture(
            spark, template, str(tables[TABLE_COMMITS]), scratch / "runs", rounds
        )
        capture_s = time.perf_counter() - t_capture

        report_resolution(samples, sizes, cold_reps, warm_reps)
        print(
            "first call of each method in the session (untimed warm-up on the "
            f"{min(sizes)}-commit table; Delta's classes load on the first statement): "
            + ", ".join(f"{k} {v:.0f} ms" for k, v in warmup.items())
        )
        met = report_capture(measured, rounds)
        print(f"capture measured in {capture_s:.0f} s")

        if args.profile or not met:
            import cProfile

            profiler = cProfile.Profile()
            measured["one"]("plugin", "profile-plugin", profiler)
            print("\ncProfile of one plugin run (start_run .. end_run), lineage_plugin functions:")
            C.print_profile(profiler, 25, "lineage_plugin")
    finally:
        lineage_plugin.autolog(disable=True)
        spark.stop()
    for p in problems:
        print(f"MISMATCH: {p}")
    print(f"total {time.perf_counter() - started:.0f} s (Spark session start included)")
    if problems:
        return 1
    shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    from common import run_main

    sys.exit(run_main(main))
