"""Helpers shared by the benchmarks that time one MLflow run per fresh process, mode against
mode (``bench_capture_overhead.py``, ``bench_write_overhead.py``); standard library only at
import time.

- in the child: the tracking set-up of a mode (:func:`tracking_setup`), phase timing
  (:class:`Phases`) and an optional cProfile of the run (:func:`profiled`);
- in the parent: one child on a fresh copy of the migrated SQLite database (:func:`run_once`),
  the interleaved repetitions (:func:`interleave_modes`), what a run recorded, read straight
  from the SQLite file (:func:`recorded`), and the table of medians (:func:`print_medians`).
"""

from __future__ import annotations

import contextlib
import shutil
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import common as C

#: The mode whose children use a ``lineage+sqlite:`` URI (capture on); the others ``sqlite:``.
PLUGIN_MODE = "plugin"


# --------------------------------------------------------------------------- child


def import_run_modules() -> None:
    """Import what a run uses (mlflow, numpy, pyarrow.fs, deltalake, MLflow's Delta dataset
    source) before the clock starts, as a training script does at its top."""
    import deltalake  # noqa: F401
    import mlflow  # noqa: F401
    import mlflow.data.delta_dataset_source  # noqa: F401
    import numpy  # noqa: F401
    import pyarrow.fs  # noqa: F401


def tracking_setup(mode: str, db: str) -> str:
    """Point MLflow at ``db`` (``lineage+sqlite:`` for the plugin mode) and create the
    experiment, artifacts beside the database; returns the experiment id."""
    import mlflow

    scheme = "lineage+sqlite" if mode == PLUGIN_MODE else "sqlite"
    mlflow.set_tracking_uri(f"{scheme}:///{db}")
    artifacts = Path(db).parent / "artifacts"
    return mlflow.create_experiment("bench", artifact_location=artifacts.as_uri())


class Phases:
    """Milliseconds between successive marks, from the moment it is made."""

    def __init__(self) -> None:
        self.start = self.last = time.perf_counter()
        self.ms: dict[str, float] = {}

    def mark(self, key: str) -> None:
        """End the phase ``key`` now (it began at the previous mark)."""
        now = time.perf_counter()
        self.ms[key] = (now - self.last) * 1000
        self.last = now

    @property
    def total_ms(self) -> float:
        """From the start to the last mark."""
        return (self.last - self.start) * 1000


def log_a_few() -> None:
    """What the benchmark runs log besides their data: 5 params, 5 metrics, 1 text artifact."""
    import mlflow

    mlflow.log_params({f"p{i}": i * 0.5 for i in range(5)})
    for i in range(5):
        mlflow.log_metric(f"m{i}", i / 10)
    mlflow.log_text("benchmark run\n", "notes.txt")


def read_table(table: str):
    """``(DeltaTable(table), its pandas frame)``, read through a native pyarrow file system:
    deltalake's default one can abort the process at exit on this machine."""
    import pyarrow.fs as pafs
    from deltalake import DeltaTable

    dt = DeltaTable(table)
    return dt, dt.to_pandas(filesystem=pafs.SubTreeFileSystem(table, pafs.LocalFileSystem()))


def stock_log_input(df, table: str, version: int) -> None:
    """The read logged as a stock MLflow user would: ``mlflow.log_input`` of a pandas dataset
    whose source is the Delta table at ``version``."""
    import mlflow
    from mlflow.data.delta_dataset_source import DeltaDatasetSource

    source = DeltaDatasetSource(path=table, delta_table_version=version)
    mlflow.log_input(mlflow.data.from_pandas(df, source=source), context="training")


class ChildRun:
    """One benchmark run in a child process.

    Made before the clock starts: it imports what a run uses, points MLflow at ``db`` for
    ``mode`` and creates the experiment. :meth:`start_and_read` begins the timed phases,
    :meth:`emit` prints the result line.
    """

    def __init__(self, mode: str, db: str, process_start: float) -> None:
        import_run_modules()
        self.mode = mode
        self.process_start = process_start
        self.t_imported = time.perf_counter()
        self.experiment_id = tracking_setup(mode, db)
        self.t_setup = time.perf_counter()
        self.phases = Phases()
        self.run_id = ""

    def start_and_read(self, table: str):
        """The run's first phases: ``start_run``, :func:`log_a_few`, the read of ``table``,
        and in the stock mode its :func:`stock_log_input`; returns ``(DeltaTable, frame)``."""
        import mlflow

        self.phases = phases = Phases()
        self.run_id = mlflow.start_run(experiment_id=self.experiment_id).info.run_id
        phases.mark("start_run_ms")
        log_a_few()
        phases.mark("log_ms")
        dt, df = read_table(table)
        phases.mark("read_ms")
        if self.mode == "stock":
            stock_log_input(df, table, dt.version())
        phases.mark("log_input_ms")
        return dt, df

    def emit(self, **extra: object) -> None:
        """Print the result line: mode, run id, imports, set-up, the run and its phases."""
        C.emit_result(
            {
                "mode": self.mode,
                "run_id": self.run_id,
                **extra,
                "import_ms": (self.t_imported - self.process_start) * 1000,
                "setup_ms": (self.t_setup - self.t_imported) * 1000,
                "run_ms": self.phases.total_ms,
                **self.phases.ms,
            }
        )


@contextlib.contextmanager
def profiled(profile_out: str | None) -> Iterator[None]:
    """Run the block under cProfile and dump the stats to ``profile_out`` (None: no profile)."""
    if not profile_out:
        yield
        return
    import cProfile

    profiler = cProfile.Profile()
    profiler.enable()
    try:
        yield
    finally:
        profiler.disable()
        profiler.dump_stats(profile_out)


# --------------------------------------------------------------------------- parent


def recorded(db: str, run_id: str) -> tuple[dict[str, str], int]:
    """The run's ``lineage.*`` tags and its number of dataset inputs, from the SQLite file."""
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
    return tags, inputs


def run_once(
    script: str,
    mode: str,
    run_dir: Path,
    template: Path,
    *,
    args: Sequence[str],
    check: Callable[[str, dict], str | None],
    env: dict[str, str],
    profile_out: str | None = None,
) -> tuple[float, dict]:
    """One child ``script --child MODE DB *args [PROFILE]`` on a fresh copy of ``template`` in
    ``run_dir`` (removed after); returns (wall seconds, its result).

    ``check(db, result)`` says what is wrong with what the run recorded (None: nothing); a
    problem stops the benchmark (``SystemExit``).
    """
    db = str(C.fresh_db(template, run_dir))
    cmd = [script, "--child", mode, db, *args]
    if profile_out:
        cmd.append(profile_out)
    # cwd = the repository, as for a training script run from its checkout.
    wall, result, _ = C.run_child(cmd, env=env, cwd=str(C.REPO_DIR))
    problem = check(db, result)
    if problem:
        raise SystemExit(f"{run_dir.name}: {problem}")
    shutil.rmtree(run_dir, ignore_errors=True)
    return wall, result


def interleave_modes(
    modes: Sequence[str], reps: int, one: Callable[[str, str], tuple[float, dict]]
) -> tuple[dict[str, list[dict]], int]:
    """``reps`` rounds of ``one(mode, tag)`` for every mode in order, printing each round's
    ``run_ms``; returns the results per mode (with ``wall_ms``) and how many children exited
    non-zero after reporting their result."""
    results: dict[str, list[dict]] = {m: [] for m in modes}
    aborted = 0
    for rep in range(reps):
        for mode in modes:
            wall, result = one(mode, f"{rep}-{mode}")
            result["wall_ms"] = wall * 1000
            aborted += result["_returncode"] != 0
            results[mode].append(result)
        print(
            f"  rep {rep + 1}/{reps}: "
            + ", ".join(f"{m} {results[m][-1]['run_ms']:.0f} ms" for m in modes),
            flush=True,
        )
    return results, aborted


def median_of(results: dict[str, list[dict]], mode: str, key: str) -> float:
    """The median of ``key`` over the mode's results."""
    return C.median([r[key] for r in results[mode] if key in r])


def print_medians(
    results: dict[str, list[dict]], modes: Sequence[str], phases: Sequence[tuple[str, str]]
) -> None:
    """The table of medians per mode: the run, its IQR, each phase ``(key, header)``, the
    imports, the set-up and the whole process's wall time."""
    print(
        "Median over fresh processes (ms). run = start_run .. end_run inside the child; "
        "wall = whole process."
    )
    rows = []
    for mode in modes:
        q1, q3 = C.quartiles([r["run_ms"] for r in results[mode]])
        rows.append(
            [mode, median_of(results, mode, "run_ms"), f"{q1:.0f}-{q3:.0f}"]
            + [median_of(results, mode, k) for k, _ in phases]
            + [median_of(results, mode, k) for k in ("import_ms", "setup_ms", "wall_ms")]
        )
    C.print_table(
        ["mode", "run", "run IQR", *(h for _, h in phases), "imports", "setup", "wall"], rows
    )


def parse_args(doc: str, argv: Sequence[str] | None = None):
    """The options every run-overhead benchmark has: ``--quick`` (3 repetitions), ``--reps``
    (default 15), ``--workdir``, ``--profile`` and the bytecode option; ``args.reps`` is set."""
    import argparse

    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="3 repetitions (CI smoke test)")
    parser.add_argument("--reps", type=int, help="repetitions per mode (default 15, quick 3)")
    parser.add_argument("--workdir", help=f"cache directory (default {C.DEFAULT_WORKDIR})")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="also run one plugin child under cProfile and print lineage_plugin's functions",
    )
    C.add_bytecode_option(parser)
    args = parser.parse_args(argv)
    args.reps = args.reps or (3 if args.quick else 15)
    return args


@dataclass
class Bench:
    """What a run-overhead benchmark's parent works with.

    Attributes:
        args: The parsed options (:func:`parse_args`).
        script: The benchmark script, run again as each child.
        wd: The cache directory.
        template: The migrated SQLite database each run gets a copy of.
        lineage_template: The same with the lineage index made, for the ``plugin`` mode.
        scratch: Where the runs' directories go (removed at the end).
        env: The children's environment.
    """

    args: object
    script: str
    wd: Path
    template: Path
    lineage_template: Path
    scratch: Path
    env: dict[str, str]

    def run(
        self,
        mode: str,
        tag: str,
        *,
        args: Sequence[str],
        check: Callable[[str, dict], str | None],
        profile_out: str | None = None,
    ) -> tuple[float, dict]:
        """:func:`run_once` in ``scratch/tag``."""
        return run_once(
            self.script,
            mode,
            self.scratch / tag,
            self.lineage_template if mode == "plugin" else self.template,
            args=args,
            check=check,
            env=self.env,
            profile_out=profile_out,
        )


def prepare(doc: str, script: str) -> Bench:
    """Parse the options, make the cache and the migrated template, the scratch directory
    (named after ``script``, a file in ``benchmarks/``) and the children's environment."""
    args = parse_args(doc)
    wd = C.workdir(args.workdir)
    template = C.migrated_sqlite_template(wd)
    lineage_template = C.indexed_sqlite_template(wd)
    scratch = C.scratch_dir(wd, Path(script).stem.removeprefix("bench_"))
    env = C.bytecode_env(wd, args)
    return Bench(args, str(C.BENCH_DIR / script), wd, template, lineage_template, scratch, env)


def warm_up(
    warmup_code: str, env: dict[str, str], quick: bool, one: Callable[[str, str], object]
) -> None:
    """Unmeasured first: a process running ``warmup_code`` (it imports what the children
    import and pays for cold caches: disk, bytecode), and unless ``quick`` one whole plugin
    run."""
    C.run_child(["-c", warmup_code], env=env, cwd=str(C.REPO_DIR))
    if not quick:
        one(PLUGIN_MODE, "warmup-plugin")


def print_plugin_profile(scratch: Path, one: Callable[..., object]) -> None:
    """Run ``one(plugin, tag, profile_path)`` and print lineage_plugin's functions."""
    prof = str(scratch / "plugin.prof")
    one(PLUGIN_MODE, "profile-plugin", prof)
    print("\ncProfile of one plugin run (start_run .. end_run), lineage_plugin functions:")
    C.print_profile(prof, 25, "lineage_plugin")


def finish(bench: Bench, aborted: int, one: Callable[..., object]) -> int:
    """The end of a benchmark: the note on children that exited non-zero after their result,
    the profile with ``--profile``, and the scratch directory removed; returns 0."""
    if aborted:
        print(f"note: {aborted} child processes exited non-zero after reporting their result")
    if bench.args.profile:
        print_plugin_profile(bench.scratch, one)
    shutil.rmtree(bench.scratch, ignore_errors=True)
    return 0


def entry(main: Callable[[], int], child_main: Callable[..., None]) -> int:
    """A benchmark script's ``__main__``: ``--child ARGS...`` runs ``child_main(*ARGS)`` (this
    process is a child), anything else the parent's ``main`` (a crashed child reported
    without a parent traceback)."""
    import sys

    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child_main(*sys.argv[2:])
        return 0
    return C.run_main(main)
