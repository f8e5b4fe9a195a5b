"""Overhead of lineage capture on one training-like MLflow run.

One run = start_run, log 5 params and 5 metrics, log one small text artifact, read a local Delta
table of 1,000 small appends into pandas, fit a tiny least-squares model, end_run. It is run three
ways against the same SQLite backend (a fresh copy of one pre-migrated database per run), each
in its own fresh process, interleaved bare, stock, plugin, bare, stock, plugin, ...:

- bare:   ``sqlite:`` tracking URI, nothing logged about the input;
- stock:  ``sqlite:`` URI + ``mlflow.log_input(mlflow.data.from_pandas(df,
          source=DeltaDatasetSource(path=..., delta_table_version=v)), context="training")``;
- plugin: ``lineage+sqlite:`` URI (capture on), nothing else: the read is recorded by the hooks.

The main number is the time inside the child from just before ``start_run`` to after
``end_run``; the whole process wall time is reported too. Targets: plugin <= 1.10x bare and
plugin <= 1.0x stock (medians). The script prints PASS/MISS and exits 0 either way
(non-zero only if a child crashes or a run does not record what it should).

    python benchmarks/bench_capture_overhead.py            # 15 repetitions
    python benchmarks/bench_capture_overhead.py --quick    # 3 repetitions (CI smoke test)
"""

from __future__ import annotations

import sys
import time

_T_START = time.perf_counter()

MODES = ("bare", "stock", "plugin")
TABLE_COMMITS = 1000
TARGET_VS_BARE = 1.10
TARGET_VS_STOCK = 1.00
WARMUP_CODE = (
    "import mlflow, pyarrow.fs, deltalake, numpy, lineage_plugin.api, "
    "lineage_plugin.tracking.writer, mlflow.data.delta_dataset_source, mlflow.data.pandas_dataset"
    "\nprint('BENCH_RESULT {}')"
)
PHASES = (
    ("start_run_ms", "start_run"),
    ("log_ms", "log"),
    ("read_ms", "read"),
    ("log_input_ms", "log_input"),
    ("fit_ms", "fit"),
    ("end_run_ms", "end_run"),
)


# --------------------------------------------------------------------------- child


def child_main(mode: str, db: str, table: str, profile_out: str | None) -> None:
    """One training-like run in this fresh process; prints a BENCH_RESULT line."""
    from pathlib import Path

    import mlflow
    import numpy as np
    import pyarrow.fs as pafs
    from deltalake import DeltaTable
    from mlflow.data.delta_dataset_source import DeltaDatasetSource

    t_imported = time.perf_counter()

    scheme = "lineage+sqlite" if mode == "plugin" else "sqlite"
    mlflow.set_tracking_uri(f"{scheme}:///{db}")
    artifacts = Path(db).parent / "artifacts"
    experiment_id = mlflow.create_experiment("bench", artifact_location=artifacts.as_uri())
    t_setup = time.perf_counter()

    profiler = None
    if profile_out:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()

    t0 = time.perf_counter()
    run = mlflow.start_run(experiment_id=experiment_id)
    t_started = time.perf_counter()
    mlflow.log_params({f"p{i}": i * 0.5 for i in range(5)})
    for i in range(5):
        mlflow.log_metric(f"m{i}", i / 10)
    mlflow.log_text("benchmark run\n", "notes.txt")
    t_logged = time.perf_counter()
    dt = DeltaTable(table)
    # A native pyarrow file system: deltalake's default one can abort the process at exit here.
    df = dt.to_pandas(filesystem=pafs.SubTreeFileSystem(table, pafs.LocalFileSystem()))
    t_read = time.perf_counter()
    if mode == "stock":
        source = DeltaDatasetSource(path=table, delta_table_version=dt.version())
        mlflow.log_input(mlflow.data.from_pandas(df, source=source), context="training")
    t_input = time.perf_counter()
    # A tiny model: least-squares line y = a*x + b (numpy; sklearn's import alone costs ~0.7 s).
    features = np.column_stack([df["x"].to_numpy(), np.ones(len(df))])
    coef = np.linalg.lstsq(features, df["y"].to_numpy(), rcond=None)[0]
    mlflow.log_metric("coef", float(coef[0]))
    t_fit = time.perf_counter()
    mlflow.end_run()
    t1 = time.perf_counter()

    if profiler is not None:
        profiler.disable()
        profiler.dump_stats(profile_out)

    from common import emit_result

    emit_result(
        {
            "mode": mode,
            "run_id": run.info.run_id,
            "rows": len(df),
            "version": dt.version(),
            "import_ms": (t_imported - _T_START) * 1000,
            "setup_ms": (t_setup - t_imported) * 1000,
            "run_ms": (t1 - t0) * 1000,
            "start_run_ms": (t_started - t0) * 1000,
            "log_ms": (t_logged - t_started) * 1000,
            "read_ms": (t_read - t_logged) * 1000,
            "log_input_ms": (t_input - t_read) * 1000,
            "fit_ms": (t_fit - t_input) * 1000,
            "end_run_ms": (t1 - t_fit) * 1000,
        }
    )


# --------------------------------------------------------------------------- parent


def _check_run(db: str, run_id: str, mode: str, version: int) -> str | None:
    """What the run recorded, read straight from the SQLite file; an error text or None."""
    import sqlite3

    con = sqlite3.connect(db)
    try:
        tags = dict(
            con.execute(
                "SELECT key, value FROM tags WHERE run_uuid = ? AND key LIKE 'lineage.%'",
                (run_id,),
            ).fetchall()
        )
        inputs = con.execute(
            "SELECT COUNT(*) FROM inputs WHERE destination_id = ? AND source_type = 'DATASET'",
            (run_id,),
        ).fetchone()[0]
    finally:
        con.close()
    if mode == "bare" and (tags or inputs):
        return f"bare run recorded {len(tags)} lineage tags and {inputs} dataset inputs"
    if mode == "stock" and (inputs != 1 or tags):
        return f"stock run recorded {inputs} dataset inputs and {len(tags)} lineage tags"
    if mode == "plugin":
        if tags.get("lineage.status") != "complete" or inputs != 1:
            return (
                f"plugin run: lineage.status={tags.get('lineage.status')!r}, "
                f"{inputs} dataset inputs, reason={tags.get('lineage.reason')!r}"
            )
        if f"@v{version}" not in tags.get("lineage.tables", ""):
            return f"plugin run recorded lineage.tables={tags.get('lineage.tables')!r}"
    return None


def main() -> int:
    import argparse
    import shutil

    import common as C

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="3 repetitions (CI smoke test)")
    parser.add_argument("--reps", type=int, help="repetitions per mode (default 15, quick 3)")
    parser.add_argument("--workdir", help=f"cache directory (default {C.DEFAULT_WORKDIR})")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="also run one plugin child under cProfile and print lineage_plugin's functions",
    )
    C.add_bytecode_option(parser)
    args = parser.parse_args()
    reps = args.reps or (3 if args.quick else 15)

    wd = C.workdir(args.workdir)
    template = C.migrated_sqlite_template(wd)
    table = str(C.build_table(wd, TABLE_COMMITS))
    scratch = C.scratch_dir(wd, "capture")
    script = str(C.BENCH_DIR / "bench_capture_overhead.py")
    env = C.bytecode_env(wd, args)

    def one(mode: str, tag: str, profile_out: str | None = None) -> tuple[float, dict]:
        run_dir = scratch / tag
        db = str(C.fresh_db(template, run_dir))
        cmd = [script, "--child", mode, db, table]
        if profile_out:
            cmd.append(profile_out)
        # cwd = the repository, as for a training script run from its checkout.
        wall, result, _ = C.run_child(cmd, env=env, cwd=str(C.REPO_DIR))
        problem = _check_run(db, result["run_id"], mode, result["version"])
        if problem:
            raise SystemExit(f"{tag}: {problem}")
        shutil.rmtree(run_dir, ignore_errors=True)
        return wall, result

    print(
        f"capture overhead: {reps} repetitions x {len(MODES)} modes, fresh process each, "
        f"table of {TABLE_COMMITS} commits, {sys.executable}"
    )
    # Unmeasured first: a process importing what the children import (it pays for cold caches:
    # disk, bytecode), and in the default run one whole plugin run.
    C.run_child(["-c", WARMUP_CODE], env=env, cwd=str(C.REPO_DIR))
    if not args.quick:
        one("plugin", "warmup-plugin")
    results: dict[str, list[dict]] = {m: [] for m in MODES}
    aborted = 0
    started = time.perf_counter()
    for rep in range(reps):
        for mode in MODES:
            wall, result = one(mode, f"{rep}-{mode}")
            result["wall_ms"] = wall * 1000
            aborted += result["_returncode"] != 0
            results[mode].append(result)
        print(
            f"  rep {rep + 1}/{reps}: "
            + ", ".join(f"{m} {results[m][-1]['run_ms']:.0f} ms" for m in MODES),
            flush=True,
        )

    def med(mode: str, key: str) -> float:
        return C.median([r[key] for r in results[mode]])

    print()
    print(
        "Median over fresh processes (ms). run = start_run .. end_run inside the child; "
        "wall = whole process."
    )
    rows = []
    for mode in MODES:
        q1, q3 = C.quartiles([r["run_ms"] for r in results[mode]])
        rows.append(
            [mode, med(mode, "run_ms"), f"{q1:.0f}-{q3:.0f}"]
            + [med(mode, k) for k, _ in PHASES]
            + [med(mode, "import_ms"), med(mode, "setup_ms"), med(mode, "wall_ms")]
        )
    C.print_table(
        ["mode", "run", "run IQR", *(h for _, h in PHASES), "imports", "setup", "wall"], rows
    )
    rows_read = results["bare"][0]["rows"]
    print(
        f"(run phases: start_run; log = 5 params, 5 metrics, 1 text artifact; read = "
        f"DeltaTable(path).to_pandas() of {rows_read} rows, with the plugin's capture; "
        "log_input = stock mlflow.log_input; fit = least squares + 1 metric; end_run. "
        "imports and setup (set_tracking_uri + create_experiment) come before the run.)"
    )

    run_b, run_s, run_p = (med(m, "run_ms") for m in MODES)
    wall_b, wall_s, wall_p = (med(m, "wall_ms") for m in MODES)
    r_bare, r_stock = C.ratio(run_p, run_b), C.ratio(run_p, run_s)
    print()
    C.print_table(
        ["ratio", "run", "wall", "target (run)", "result"],
        [
            [
                "plugin / bare",
                r_bare,
                C.ratio(wall_p, wall_b),
                f"<= {TARGET_VS_BARE:.2f}",
                C.verdict(r_bare <= TARGET_VS_BARE),
            ],
            [
                "plugin / stock",
                r_stock,
                C.ratio(wall_p, wall_s),
                f"<= {TARGET_VS_STOCK:.2f}",
                C.verdict(r_stock <= TARGET_VS_STOCK),
            ],
            ["stock / bare", C.ratio(run_s, run_b), C.ratio(wall_s, wall_b), "", ""],
        ],
    )
    print(
        f"plugin adds {run_p - run_b:+.1f} ms per run over bare, {run_p - run_s:+.1f} ms over "
        f"stock (medians); measured in {time.perf_counter() - started:.0f} s"
    )
    if aborted:
        print(f"note: {aborted} child processes exited non-zero after reporting their result")

    if args.profile:
        prof = str(scratch / "plugin.prof")
        one("plugin", "profile-plugin", prof)
        print("\ncProfile of one plugin run (start_run .. end_run), lineage_plugin functions:")
        C.print_profile(prof, 25, "lineage_plugin")
    shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child_main(
            sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5] if len(sys.argv) > 5 else None
        )
    else:
        from common import run_main

        sys.exit(run_main(main))
