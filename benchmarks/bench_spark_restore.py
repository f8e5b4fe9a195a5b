"""Restoring a model version's table through Spark, against the same work with ``deltalake``.

Everything runs in this one process, with one local Spark session (``local[2]``, the session of
``tests/spark_session.py``, started as ``bench_spark.py`` starts it), because a Spark session
takes seconds to start. The tables are ``bench_restore.py``'s (built once and cached): appends
of 10 small parquet files each, a checkpoint every 100 commits; 100 commits / 1,000 files and
1,000 commits / 10,000 files. The model version read version ``commits // 2 - 1``, recorded as
a ``DeltaInput`` (the normalised ``file://`` URI, that version, the table's ``metaData`` id,
engine ``spark``), so its restore undoes half the commits.

1. The plan of the restore, both ways: ``plan.plan_table(inp)`` (``deltalake``, the
   baseline: the plugin's log reader, ``DeltaTable`` history, files and protocol) and
   ``plan.plan_table_with_spark(inp, "benchmark")`` (Spark SQL ``DESCRIBE DETAIL``,
   ``DESCRIBE HISTORY`` and a read of the target version's schema). Cold = the first call on a
   fresh hard-linked copy of the table at a path this process has never seen (so neither
   Delta's DeltaLog cache nor the plugin's table-id cache knows it; median of 3, 1 with
   ``--quick``); warm = the median of 10 (3) calls on one path after one untimed call. Both
   plans must agree on the current version, the commits to undo and their operations, with no
   refusal.
2. The RESTORE itself, on a fresh copy of the table per repetition (log copied, data files
   hard-linked), after an untimed plan by the same engine, as ``restore()`` plans before it
   writes: ``restore.restore_with_deltalake`` (``DeltaTable.restore`` committed on the planned
   version) against ``restore_spark.restore_with_spark`` (Delta's ``RESTORE TABLE ... TO
   VERSION AS OF`` and a ``DESCRIBE HISTORY ... LIMIT 1`` to check the version it read). Median
   of 5 (2 with ``--quick``), the engines' order alternating. After each, the table's latest
   version must be a ``RESTORE`` at version ``commits`` holding the target's files and rows
   (read with ``deltalake``, from the log only).

Before anything is timed, one untimed plan and restore of each engine on the smallest table:
the session's first Delta statements load and compile Delta's classes (reported on their own).
No target: the script reports the times and the ratio Spark / deltalake. Exits 0 unless a check
fails (the plans disagree, a plan refuses, or a restore leaves the wrong table).

    python benchmarks/bench_spark_restore.py            # 100 and 1,000 commits, 2 to 2.5 minutes
    python benchmarks/bench_spark_restore.py --quick    # 100 commits, fewer reps, under 1.5 min
"""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path

ENGINES = ("deltalake", "spark")
BASELINE = "deltalake"
MODEL, MODEL_VERSION = "bench", "1"
SIZES, QUICK_SIZES = "100,1000", "100"
#: The repetitions: (option, what it counts, default, default with --quick).
COUNTS = (
    ("cold", "cold plans per engine", 3, 1),
    ("warm", "warm plans per engine after one untimed plan", 10, 3),
    ("reps", "restores per engine, a fresh copy each", 5, 2),
)
NOTE = f"mlflow-lineage restore for model '{MODEL}' version {MODEL_VERSION}: benchmark"


# --------------------------------------------------------------------------- the two engines


def delta_input(path: Path, target: int, table_id: str):
    """The model version's recorded read of the table at ``path``, at version ``target``."""
    from lineage_plugin.delta.log import normalize_uri
    from lineage_plugin.records import DeltaInput

    return DeltaInput(
        uri=normalize_uri(str(path)),
        version=target,
        engine="spark",
        table_id=table_id,
        name=path.name,
    )


def planners() -> dict:
    """engine -> function(DeltaInput) returning its TableRestorePlan."""
    from lineage_plugin.recovery.plan import plan_table, plan_table_with_spark

    return {
        "deltalake": plan_table,
        "spark": lambda inp: plan_table_with_spark(inp, "benchmark"),
    }


def restorers() -> dict:
    """engine -> function(TableRestorePlan) restoring the table; returns the new version."""
    from lineage_plugin.recovery.plan import RestorePlan
    from lineage_plugin.recovery.restore import restore_with_deltalake
    from lineage_plugin.recovery.restore_spark import restore_with_spark

    def with_deltalake(t) -> int:
        plan = RestorePlan(name=MODEL, version=MODEL_VERSION, tables=(t,))
        return restore_with_deltalake(t, plan, NOTE, "benchmark", False)

    def with_spark(t) -> int:
        new_version, moved = restore_with_spark(t, NOTE)
        if moved:
            raise SystemExit(f"Spark RESTORE of {t.uri}: {moved}")
        return new_version

    return {"deltalake": with_deltalake, "spark": with_spark}


def plan_facts(t) -> tuple:
    """What both engines' plans must agree on."""
    return (
        t.current_version,
        len(t.commits),
        tuple(c.operation for c in t.commits),
        t.refusals,
        t.missing_files,
    )


def rows(path: Path, version: int | None = None) -> int:
    """The table's rows at ``version`` (default the latest), from the log's file statistics."""
    import pyarrow as pa
    import pyarrow.compute as pc
    from deltalake import DeltaTable

    actions = pa.table(DeltaTable(str(path), version=version).get_add_actions(flatten=True))
    return pc.sum(actions["num_records"]).as_py() or 0


def _sizes(text: str) -> list[int]:
    """``--sizes``: comma-separated commit counts, smallest first."""
    return sorted(int(s) for s in text.split(","))


def _timed(fn, arg) -> tuple[float, object]:
    t = time.perf_counter()
    out = fn(arg)
    return (time.perf_counter() - t) * 1000, out


# --------------------------------------------------------------------------- measurements


class Tables:
    """The cached tables, their copies and what a correct plan or restore of them gives."""

    def __init__(self, pristine: dict[int, Path], scratch: Path) -> None:
        from bench_restore import files_at, target_version
        from deltalake import DeltaTable

        self.pristine, self.scratch = pristine, scratch
        self.table_id = {n: DeltaTable(str(p)).metadata().id for n, p in pristine.items()}
        self.target = {n: target_version(n) for n in pristine}
        self.files = {n: files_at(self.target[n]) for n in pristine}
        self.rows = {n: rows(p, self.target[n]) for n, p in pristine.items()}
        self.problems: list[str] = []
        # (commits, engine) -> whether its restores wrote a checkpoint at the new version
        self.checkpointed: dict[tuple[int, str], set[bool]] = {}

    def linked(self, n: int, tag: str):
        """A hard-linked copy at a new path (read-only use) and its DeltaInput."""
        from bench_spark import fresh_copy

        path = Path(fresh_copy(self.pristine[n], self.scratch, f"plan-{n}-{tag}"))
        return path, delta_input(path, self.target[n], self.table_id[n])

    def writable(self, n: int, tag: str):
        """A copy to restore (log copied, data files linked) at a new path and its DeltaInput."""
        from common import fresh_copy

        path = self.scratch / f"restore-{n}-{tag}"
        fresh_copy(self.pristine[n], path)
        return path, delta_input(path, self.target[n], self.table_id[n])

    def check_plan(self, n: int, engine: str, t) -> tuple:
        facts = plan_facts(t)
        undo = n - 1 - self.target[n]
        if facts[:2] != (n - 1, undo) or facts[3:] != ((), None):
            self.problems.append(
                f"{engine} plan of {n} commits: current v{facts[0]}, {facts[1]} commits to undo, "
                f"refusals {facts[3]}, missing files {facts[4]}; expected v{n - 1}, {undo}, none"
            )
        return facts

    def check_restored(self, n: int, engine: str, path: Path, new_version: int) -> None:
        from bench_restore import restored_state

        state = dict(restored_state(str(path)), rows=rows(path), returned=new_version)
        expected = {
            "version": n,
            "files": self.files[n],
            "operation": "RESTORE",
            "rows": self.rows[n],
            "returned": n,
        }
        if state != expected:
            self.problems.append(
                f"{engine} restore of {n} commits left {state}, expected {expected}"
            )
        checkpoint = path / "_delta_log" / f"{n:020d}.checkpoint.parquet"
        self.checkpointed.setdefault((n, engine), set()).add(checkpoint.exists())


def warm_up(tables: Tables) -> dict[str, float]:
    """Untimed: each engine's first plan and restore in the session (ms), on the first table."""
    plan, restore = planners(), restorers()
    n = min(tables.pristine)
    out = {}
    for engine in ENGINES:
        path, inp = tables.writable(n, f"warmup-{engine}")
        out[f"{engine} plan"], t = _timed(plan[engine], inp)
        out[f"{engine} restore"], new_version = _timed(restore[engine], t)
        tables.check_restored(n, engine, path, new_version)
        shutil.rmtree(path, ignore_errors=True)
    return out


def measure_plans(tables: Tables, n: int, cold_reps: int, warm_reps: int) -> dict:
    """Cold and warm plan samples (ms) per engine; the engines' plans are compared."""
    plan = planners()
    samples = {e: {"cold": [], "warm": []} for e in ENGINES}
    facts: dict[str, set] = {e: set() for e in ENGINES}
    for rep in range(cold_reps):
        order = ENGINES if rep % 2 == 0 else ENGINES[::-1]
        for engine in order:
            path, inp = tables.linked(n, f"cold{rep}-{engine}")
            ms, t = _timed(plan[engine], inp)
            samples[engine]["cold"].append(ms)
            facts[engine].add(tables.check_plan(n, engine, t))
            shutil.rmtree(path, ignore_errors=True)
    path, inp = tables.linked(n, "warm")
    for engine in ENGINES:  # the first call on this path is not a warm one
        facts[engine].add(tables.check_plan(n, engine, plan[engine](inp)))
    for rep in range(warm_reps):
        order = ENGINES if rep % 2 == 0 else ENGINES[::-1]
        for engine in order:
            ms, t = _timed(plan[engine], inp)
            samples[engine]["warm"].append(ms)
            facts[engine].add(tables.check_plan(n, engine, t))
    shutil.rmtree(path, ignore_errors=True)
    found = {e: sorted(f[:2] for f in facts[e]) for e in ENGINES}
    if any(len(f) != 1 for f in facts.values()) or facts["deltalake"] != facts["spark"]:
        ops = {e: sorted({op for f in facts[e] for op in f[2]}) for e in ENGINES}
        tables.problems.append(
            f"the plans of {n} commits disagree: (current version, commits to undo) "
            f"{found}, operations {ops}"
        )
    return samples


def measure_restores(tables: Tables, n: int, reps: int) -> dict[str, list[float]]:
    """Restore samples (ms) per engine, each on a fresh copy planned (untimed) by that engine."""
    plan, restore = planners(), restorers()
    samples: dict[str, list[float]] = {e: [] for e in ENGINES}
    for rep in range(reps):
        order = ENGINES if rep % 2 == 0 else ENGINES[::-1]
        for engine in order:
            path, inp = tables.writable(n, f"{rep}-{engine}")
            t = plan[engine](inp)
            tables.check_plan(n, engine, t)
            ms, new_version = _timed(restore[engine], t)
            samples[engine].append(ms)
            tables.check_restored(n, engine, path, new_version)
            shutil.rmtree(path, ignore_errors=True)
        print(
            f"  {n} commits, restore rep {rep + 1}/{reps}: "
            + ", ".join(f"{e} {samples[e][-1]:.0f} ms" for e in ENGINES),
            flush=True,
        )
    return samples


# --------------------------------------------------------------------------- report


def report(tables: Tables, results: dict, cold_reps: int, warm_reps: int, reps: int) -> None:
    import common as C
    from bench_restore import FILES_PER_COMMIT

    print(
        f"\nms per call; plan cold = first call on a fresh copy at a new path (median of "
        f"{cold_reps}), plan warm = median of {warm_reps} calls on one path after one untimed "
        f"call, restore = median of {reps}, a fresh copy each; x {BASELINE} = spark / {BASELINE}"
    )
    for n, res in results.items():
        print(
            f"\n{n} commits / {n * FILES_PER_COMMIT} files, restored from v{n - 1} to "
            f"v{tables.target[n]} ({n - 1 - tables.target[n]} commits undone, "
            f"{tables.rows[n]} rows kept)"
        )
        table_rows = []
        for label, samples in (
            ("plan cold", {e: res["plan"][e]["cold"] for e in ENGINES}),
            ("plan warm", {e: res["plan"][e]["warm"] for e in ENGINES}),
            ("restore", res["restore"]),
        ):
            q1, q3 = C.quartiles(samples["spark"])
            base, spark = C.median(samples[BASELINE]), C.median(samples["spark"])
            table_rows.append([label, base, spark, f"{q1:.0f}-{q3:.0f}", C.ratio(spark, base)])
        C.print_table(["step", BASELINE, "spark", "spark IQR", f"x {BASELINE}"], table_rows)
        wrote = {
            e: "/".join(sorted({"yes" if c else "no" for c in tables.checkpointed[(n, e)]}))
            for e in ENGINES
        }
        print(
            f"(checkpoint written at v{n} by the restore: "
            + ", ".join(f"{e} {w}" for e, w in wrote.items())
            + ")"
        )


# --------------------------------------------------------------------------- main


def main() -> int:
    import argparse

    import common as C
    from bench_restore import FILES_PER_COMMIT
    from bench_spark import start_spark

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_SIZES} commits, fewer reps")
    parser.add_argument("--sizes", type=_sizes, help=f"commit counts (default {SIZES})")
    for option, what, full, quick in COUNTS:
        parser.add_argument(f"--{option}", type=int, help=f"{what} (default {full}, quick {quick})")
    parser.add_argument("--workdir", help=f"cache directory (default {C.DEFAULT_WORKDIR})")
    args = parser.parse_args()
    C.clean_this_process_env()
    sizes = args.sizes or _sizes(QUICK_SIZES if args.quick else SIZES)
    cold_reps, warm_reps, reps = (
        getattr(args, option) or (quick if args.quick else full)
        for option, _, full, quick in COUNTS
    )

    wd = C.workdir(args.workdir)
    pristine = {n: C.build_table(wd, n, files_per_commit=FILES_PER_COMMIT) for n in sizes}
    scratch = C.scratch_dir(wd, "spark-restore")
    tables = Tables(pristine, scratch)

    started = time.perf_counter()
    spark, jvm_log = start_spark(wd)
    session_s = time.perf_counter() - started
    import pyspark

    from lineage_plugin.delta.spark import spark_session

    print(
        f"spark restore: pyspark {pyspark.__version__}, local[2], session started in "
        f"{session_s:.1f} s; the JVM's output goes to {jvm_log}"
    )
    if spark_session() is not spark:
        raise SystemExit("the plugin's spark_session() is not the benchmark's session")
    print(
        f"tables of {', '.join(map(str, sizes))} commits x {FILES_PER_COMMIT} files; plan: "
        f"{cold_reps} cold and {warm_reps} warm calls per engine; restore: {reps} per engine",
        flush=True,
    )
    try:
        warmup = warm_up(tables)
        results = {}
        for n in sizes:
            results[n] = {"plan": measure_plans(tables, n, cold_reps, warm_reps)}
            print(f"  {n} commits: plans measured", flush=True)
            results[n]["restore"] = measure_restores(tables, n, reps)
    finally:
        spark.stop()
    report(tables, results, cold_reps, warm_reps, reps)
    print(
        f"\nfirst call of each engine in the session (untimed warm-up on {min(sizes)} commits; "
        "Delta's classes load on the first statements): "
        + ", ".join(f"{k} {v:.0f} ms" for k, v in warmup.items())
    )
    for p in tables.problems:
        print(f"MISMATCH: {p}")
    print(f"total {time.perf_counter() - started:.0f} s (Spark session start included)")
    if tables.problems:
        return 1
    shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    from common import run_main

    sys.exit(run_main(main))
