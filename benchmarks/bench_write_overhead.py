"""Overhead of write capture on one MLflow run that reads one Delta table and writes another.

One run = start_run, log 5 params, 5 metrics and one small text artifact, read a local Delta
table of 1,000 small appends into pandas, compute a small transform (the residuals of the
line y = 2x + 1, 3,000 rows), append it with ``deltalake.write_deltalake(out, df,
mode="append")`` to a second table of 100 commits (a fresh copy per run), log one metric,
end_run. It is run two ways against the same SQLite backend (a fresh copy of one pre-migrated
database per run), each in its own fresh process, interleaved stock, plugin, stock, ...:

- stock:  ``sqlite:`` tracking URI; the read is logged as stock MLflow would be used,
          ``mlflow.log_input(mlflow.data.from_pandas(df, source=DeltaDatasetSource(path=...,
          delta_table_version=v)), context="training")``, and nothing is logged for the write;
- plugin: ``lineage+sqlite:`` URI (capture on), nothing else: the read and the write are
          recorded by the hooks and the commit is stamped with the run id.

After each child the script checks what it recorded: the output table got exactly one commit;
in the plugin mode the run is ``lineage.status=complete`` with the read's version, its
``lineage.output.000`` names the version written, ``lineage.written`` lists it and that
commit carries ``mlflow.runId`` = the run; in the stock mode no ``lineage.*`` tag, one dataset
input and no stamp. The main number is the time inside the child from just before
``start_run`` to after ``end_run``, with its phases (the write on its own among them); the
whole process wall time is reported too. Target: plugin <= 1.05x stock (medians). The script
prints PASS/MISS and exits 0 either way (non-zero only if a child crashes or a run does not
record what it should).

    python benchmarks/bench_write_overhead.py            # 15 repetitions
    python benchmarks/bench_write_overhead.py --quick    # 3 repetitions (CI smoke test)
"""

from __future__ import annotations

import sys
import time

_T_START = time.perf_counter()

MODES = ("stock", "plugin")
TABLE_COMMITS = 1000
OUT_COMMITS = 100
TARGET = 1.05
WARMUP_CODE = (
    "import mlflow, pyarrow.fs, deltalake, numpy, lineage_plugin.api, "
    "lineage_plugin.tracking.writer, lineage_plugin.tracking.deltalake_writes, "
    "mlflow.data.delta_dataset_source, mlflow.data.pandas_dataset"
    "\nprint('BENCH_RESULT {}')"
)
PHASES = (
    ("start_run_ms", "start_run"),
    ("log_ms", "log"),
    ("read_ms", "read"),
    ("log_input_ms", "log_input"),
    ("transform_ms", "transform"),
    ("write_ms", "write"),
    ("end_run_ms", "end_run"),
)


# --------------------------------------------------------------------------- child


def child_main(mode: str, db: str, table: str, out: str, profile_out: str | None = None) -> None:
    """One read-transform-write run in this fresh process; prints a BENCH_RESULT line."""
    import mlflow
    import run_overhead as O
    from deltalake import write_deltalake

    child = O.ChildRun(mode, db, _T_START)
    with O.profiled(profile_out):
        dt, df = child.start_and_read(table)
        result = df.assign(y=df["y"] - 2.0 * df["x"] - 1.0)
        child.phases.mark("transform_ms")
        write_deltalake(out, result, mode="append")
        child.phases.mark("write_ms")
        mlflow.log_metric("residual_mean", float(result["y"].mean()))
        mlflow.end_run()
        child.phases.mark("end_run_ms")
    child.emit(rows=len(df), written_rows=len(result), version=dt.version())


# --------------------------------------------------------------------------- parent


def _latest_commit(out: str) -> tuple[int, dict]:
    """The output table's latest version and its ``commitInfo``, from its ``_delta_log``."""
    import json
    from pathlib import Path

    log_dir = Path(out) / "_delta_log"
    version = max(int(p.stem) for p in log_dir.glob("*.json") if p.stem.isdigit())
    for line in (log_dir / f"{version:020d}.json").read_text().splitlines():
        if line.strip() and "commitInfo" in json.loads(line):
            return version, json.loads(line)["commitInfo"]
    return version, {}


def _check_run(db: str, out: str, result: dict, mode: str) -> str | None:
    """What the run recorded and what it committed; an error text or None."""
    import json

    import run_overhead as O

    run_id = result["run_id"]
    tags, inputs = O.recorded(db, run_id)
    written, info = _latest_commit(out)
    if written != OUT_COMMITS:
        return f"{mode} run: the output table is at version {written}, expected {OUT_COMMITS}"
    stamp = info.get("mlflow.runId")
    if mode == "stock":
        if inputs != 1 or tags or stamp is not None:
            return (
                f"stock run recorded {inputs} dataset inputs and {len(tags)} lineage tags, "
                f"commit stamp {stamp!r}"
            )
        return None
    if tags.get("lineage.status") != "complete" or inputs != 1:
        return (
            f"plugin run: lineage.status={tags.get('lineage.status')!r}, "
            f"{inputs} dataset inputs, reason={tags.get('lineage.reason')!r}"
        )
    if f"@v{result['version']}" not in tags.get("lineage.tables", ""):
        return f"plugin run recorded lineage.tables={tags.get('lineage.tables')!r}"
    try:
        output = json.loads(tags.get("lineage.output.000", ""))
    except ValueError:
        return f"plugin run recorded lineage.output.000={tags.get('lineage.output.000')!r}"
    if output.get("version") != written or f"@v{written}" not in tags.get("lineage.written", ""):
        return (
            f"plugin run recorded output version {output.get('version')!r}, "
            f"lineage.written={tags.get('lineage.written')!r}; the table is at v{written}"
        )
    if stamp != run_id:
        return f"plugin run's commit v{written} carries mlflow.runId={stamp!r}, not {run_id}"
    return None


def main() -> int:
    import shutil

    import common as C
    import run_overhead as O

    bench = O.prepare(__doc__, "bench_write_overhead.py")
    args, reps, scratch = bench.args, bench.args.reps, bench.scratch
    table = str(C.build_table(bench.wd, TABLE_COMMITS))
    out_template = C.build_table(bench.wd, OUT_COMMITS)

    def one(mode: str, tag: str, profile_out: str | None = None) -> tuple[float, dict]:
        out = str(scratch / tag / "out")
        shutil.copytree(out_template, out)

        def check(db: str, result: dict) -> str | None:
            return _check_run(db, out, result, mode)

        return bench.run(mode, tag, args=[table, out], check=check, profile_out=profile_out)

    print(
        f"write overhead: {reps} repetitions x {len(MODES)} modes, fresh process each, "
        f"read a table of {TABLE_COMMITS} commits, append to one of {OUT_COMMITS}, "
        f"{sys.executable}"
    )
    O.warm_up(WARMUP_CODE, bench.env, args.quick, one)
    started = time.perf_counter()
    results, aborted = O.interleave_modes(MODES, reps, one)

    print()
    O.print_medians(results, MODES, PHASES)
    first = results["stock"][0]
    print(
        f"(run phases: start_run; log = 5 params, 5 metrics, 1 text artifact; read = "
        f"DeltaTable(path).to_pandas() of {first['rows']} rows, with the plugin's capture; "
        "log_input = stock mlflow.log_input; transform = one pandas column; write = "
        f"write_deltalake(out, df, mode='append') of {first['written_rows']} rows, with the "
        "plugin's stamp and record; end_run = 1 metric + end_run. imports and setup "
        "(set_tracking_uri + create_experiment) come before the run.)"
    )

    run_s, run_p = (O.median_of(results, m, "run_ms") for m in MODES)
    wall_s, wall_p = (O.median_of(results, m, "wall_ms") for m in MODES)
    write_s, write_p = (O.median_of(results, m, "write_ms") for m in MODES)
    r_run = C.ratio(run_p, run_s)
    print()
    C.print_table(
        ["ratio", "run", "wall", "write", "target (run)", "result"],
        [
            [
                "plugin / stock",
                r_run,
                C.ratio(wall_p, wall_s),
                C.ratio(write_p, write_s),
                f"<= {TARGET:.2f}",
                C.verdict(r_run <= TARGET),
            ]
        ],
    )
    print(
        f"plugin adds {run_p - run_s:+.1f} ms per run over stock, {write_p - write_s:+.1f} ms "
        f"of it in the write (medians); measured in {time.perf_counter() - started:.0f} s"
    )
    return O.finish(bench, aborted, one)


if __name__ == "__main__":
    import run_overhead

    sys.exit(run_overhead.entry(main, child_main))
