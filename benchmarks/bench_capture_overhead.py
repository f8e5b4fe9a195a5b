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


def child_main(mode: str, db: str, table: str, profile_out: str | None = None) -> None:
    """One training-like run in this fresh process; prints a BENCH_RESULT line."""
    import mlflow
    import numpy as np
    import run_overhead as O

    child = O.ChildRun(mode, db, _T_START)
    with O.profiled(profile_out):
        dt, df = child.start_and_read(table)
        # A tiny model: least-squares line y = a*x + b (numpy; sklearn's import alone costs
        # ~0.7 s).
        features = np.column_stack([df["x"].to_numpy(), np.ones(len(df))])
        coef = np.linalg.lstsq(features, df["y"].to_numpy(), rcond=None)[0]
        mlflow.log_metric("coef", float(coef[0]))
        child.phases.mark("fit_ms")
        mlflow.end_run()
        child.phases.mark("end_run_ms")
    child.emit(rows=len(df), version=dt.version())


# --------------------------------------------------------------------------- parent


def _check_run(db: str, run_id: str, mode: str, version: int) -> str | None:
    """What the run recorded, read straight from the SQLite file; an error text or None."""
    import run_overhead as O

    tags, inputs = O.recorded(db, run_id)
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
    import common as C
    import run_overhead as O

    bench = O.prepare(__doc__, "bench_capture_overhead.py")
    args, reps = bench.args, bench.args.reps
    table = str(C.build_table(bench.wd, TABLE_COMMITS))

    def one(mode: str, tag: str, profile_out: str | None = None) -> tuple[float, dict]:
        def check(db: str, result: dict) -> str | None:
            return _check_run(db, result["run_id"], mode, result["version"])

        return bench.run(mode, tag, args=[table], check=check, profile_out=profile_out)

    print(
        f"capture overhead: {reps} repetitions x {len(MODES)} modes, fresh process each, "
        f"table of {TABLE_COMMITS} commits, {sys.executable}"
    )
    O.warm_up(WARMUP_CODE, bench.env, args.quick, one)
    started = time.perf_counter()
    results, aborted = O.interleave_modes(MODES, reps, one)

    def med(mode: str, key: str) -> float:
        return O.median_of(results, mode, key)

    print()
    O.print_medians(results, MODES, PHASES)
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
    return O.finish(bench, aborted, one)


if __name__ == "__main__":
    import run_overhead

    sys.exit(run_overhead.entry(main, child_main))
