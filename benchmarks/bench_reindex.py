"""``reindex`` at scale: MLflow's tables read directly (SQL path) against MLflow's API.

One generated MLflow SQLite registry (``reindex_data.py``, cached under
``<workdir>/reindex/``): 100,000 runs reading 10 Delta table versions each (1,000,000 run ->
table-version edges), with the tags the plugin writes; 2,000 model versions of 200 registered
models with aliases, stages and their ``lineage.event.*`` tags. Some runs are deleted, some
have no lineage, some carry an input split over ``.partN`` tags; some versions are deleted;
one model is a prompt.

Each path runs ``lineage_plugin.queries.reindex`` in a fresh process on its own copy of the
database (the index in MLflow's database, as by default): ``api`` once (the baseline), ``sql``
twice (into an empty index, then over the full one), then a read-only pass of the SQL reader.
The two indexes are compared row by row, every ``lineage_*`` table; the script exits 1 when
they differ (0 otherwise, targets met or not).

Target: the SQL path <= 60 s for 100,000 runs / 1,000,000 edges (``--quick``: 2,000 runs,
its time scaled to 100,000 runs).

    python benchmarks/bench_reindex.py [--quick] [--runs N] [--no-api] [--regenerate]
                                       [--profile] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
RESULT = "BENCH_RESULT "
TARGET_SECONDS = 60.0  # SQL path, per 100,000 runs
TARGET_RUNS = 100_000


def child_env() -> dict[str, str]:
    """This environment without MLflow/lineage settings, telemetry off."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "DO_NOT_TRACK"))}
    return {**env, "MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"}


def child(source: str, db: str, repeat: int, profile: bool) -> None:
    """In a fresh process: ``reindex`` from ``source``; prints the result line."""
    import resource

    import mlflow  # noqa: F401  (imports are the process's start, not reindex: out of the timing)
    import sqlalchemy  # noqa: F401

    from lineage_plugin.queries.reindex import reindex

    uri = f"lineage+sqlite:///{db}"
    timings, summaries, lines = [], [], []
    profiler = None
    if profile:
        import cProfile

        profiler = cProfile.Profile()
    for n in range(repeat):
        started = time.perf_counter()

        def progress(message: str, started: float = started, n: int = n) -> None:
            if n == 0:
                lines.append(f"{time.perf_counter() - started:7.1f} s  {message}")

        if profiler:
            profiler.enable()
        summary = reindex(tracking_uri=uri, progress=progress, source=source)
        if profiler:
            profiler.disable()
        timings.append(time.perf_counter() - started)
        summaries.append(summary.to_dict())
    result = {"seconds": timings, "summary": summaries[-1], "progress": lines}
    if source == "sql":
        result["read_only_seconds"] = _read_only_pass(db)
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if profiler:
        import pstats

        pstats.Stats(profiler, stream=sys.stderr).sort_stats("cumulative").print_stats(30)
    print(RESULT + json.dumps(result), flush=True)


def _read_only_pass(db: str) -> float:
    """The SQL reader alone (runs and registry), nothing written: the read share of a rebuild."""
    from lineage_plugin.store.mlflow_database import MlflowDatabase
    from lineage_plugin.store.mlflow_tables import MlflowTables

    started = time.perf_counter()
    with MlflowDatabase(f"sqlite:///{db}").connect() as conn:
        tables = MlflowTables(conn, workspace="default")
        tables.registered_models(), tables.model_versions()
        for _ in tables.lineage_runs():
            pass
    return time.perf_counter() - started


def run_child(source: str, db: Path, repeat: int, profile: bool) -> dict:
    args = [__file__, "--child", source, "--db", str(db), "--repeat", str(repeat)]
    proc = subprocess.run(
        [sys.executable, *args, *(["--profile"] if profile else [])],
        env=child_env(),
        capture_output=True,
        text=True,
    )
    for line in proc.stdout.splitlines():
        if line.startswith(RESULT):
            if profile:
                print(proc.stderr)
            return json.loads(line[len(RESULT) :])
    raise SystemExit(f"the {source} child failed ({proc.returncode}):\n{proc.stderr[-5000:]}")


def compare(a: Path, b: Path) -> list[str]:
    """The differences between the ``lineage_*`` tables of two databases (empty: identical)."""
    con = sqlite3.connect(a)
    con.execute("ATTACH DATABASE ? AS other", (str(b),))
    tables = "SELECT name FROM {}.sqlite_master WHERE type = 'table' AND name LIKE 'lineage%'"
    names = {db: {n for (n,) in con.execute(tables.format(db))} for db in ("main", "other")}
    problems = [f"table {n} only in one index" for n in names["main"] ^ names["other"]]
    for name in sorted(names["main"] & names["other"]):
        columns = [r[1] for r in con.execute(f"PRAGMA main.table_info({name})")]
        if columns != [r[1] for r in con.execute(f"PRAGMA other.table_info({name})")]:
            problems.append(f"{name}: other columns")
            continue
        order = ", ".join(f'"{c}"' for c in columns)
        rows = [
            con.execute(f"SELECT * FROM {db}.{name} ORDER BY {order}") for db in ("main", "other")
        ]
        differing = [(x, y) for x, y in itertools.zip_longest(*rows) if x != y]
        problems += [f"{name}: api {x} != sql {y}" for x, y in differing[:3]]
        if len(differing) > 3:
            problems.append(f"{name}: ... {len(differing)} rows differ")
    con.close()
    return problems


def index_counts(db: Path) -> dict[str, int]:
    con = sqlite3.connect(db)
    try:
        return {
            t: con.execute(f"SELECT COUNT(*) FROM lineage_{t}").fetchone()[0]
            for t in ("runs", "reads", "model_versions", "events", "holdings")
        }
    finally:
        con.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="2,000 runs (the CI smoke test)")
    parser.add_argument("--runs", type=int, help="runs to generate (default 100,000)")
    parser.add_argument("--regenerate", action="store_true", help="generate the data again")
    parser.add_argument("--profile", action="store_true", help="cProfile the SQL path")
    parser.add_argument(
        "--no-api", action="store_true", help="skip the API baseline (and the comparison)"
    )
    parser.add_argument("--workdir", help="cache directory (default benchmarks/.cache)")
    parser.add_argument("--child", choices=("api", "sql"), help=argparse.SUPPRESS)
    parser.add_argument("--db", help=argparse.SUPPRESS)
    parser.add_argument("--repeat", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.db, args.repeat, args.profile)
        return 0
    for key in [k for k in os.environ if k.startswith("MLFLOW_")]:
        del os.environ[key]
    runs = args.runs or (2_000 if args.quick else TARGET_RUNS)
    wd = Path(args.workdir).resolve() if args.workdir else BENCH_DIR / ".cache"
    wd.mkdir(parents=True, exist_ok=True)
    if not (wd / ".gitignore").exists():
        (wd / ".gitignore").write_text("*\n")
    from reindex_data import cached_database

    db, facts = cached_database(wd, runs, args.regenerate, child_env())
    scratch = wd / "scratch" / f"reindex-{os.getpid()}"
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    try:
        copies = {s: scratch / f"{s}.db" for s in ("sql", *(() if args.no_api else ("api",)))}
        for copy in copies.values():
            shutil.copyfile(db, copy)
        print(
            f"data: {facts['runs']} runs, {facts['tags']} run tags, {facts['model_versions']} "
            f"model versions, {facts['model_version_tags']} model-version tags "
            f"({db.stat().st_size / 1e9:.2f} GB, generated in {facts['seconds']} s)"
        )
        print("running the SQL path (2 rebuilds), then the API path ...", flush=True)
        sql = run_child("sql", copies["sql"], 2, args.profile)
        api = None if args.no_api else run_child("api", copies["api"], 1, False)
        problems = [] if api is None else compare(copies["api"], copies["sql"])
        counts = index_counts(copies["sql"])
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    report(runs, sql, api, counts, problems)
    return 1 if problems else 0


def report(runs: int, sql: dict, api: dict | None, counts: dict, problems: list[str]) -> None:
    first, again = sql["seconds"]
    nan = float("nan")
    base = api["seconds"][0] if api else nan
    rows = [
        ("api (baseline)", base, 1.0, api["peak_rss_mb"] if api else nan),
        ("sql, empty index", first, base / first, sql["peak_rss_mb"]),
        ("sql, over the full index", again, base / again, sql["peak_rss_mb"]),
        ("sql reader alone (no writes)", sql["read_only_seconds"], nan, nan),
    ]
    print()
    print(f"{'reindex':30} {'seconds':>9} {'api/this':>9} {'peak RSS MB':>12}")
    for name, seconds, speedup, rss in rows:
        print(f"{name:30} {seconds:9.1f} {speedup:9.1f} {rss:12.0f}".replace("nan", "  -"))
    print(
        f"\nindex: {counts['runs']} runs, {counts['reads']} reads (edges), "
        f"{counts['model_versions']} model versions, {counts['events']} events, "
        f"{counts['holdings']} holdings"
    )
    steps = [line for line in sql["progress"] if "  read " in line]
    print("SQL path, first rebuild:\n  " + "\n  ".join(steps[:2] + steps[2:][-1:]))
    scaled = first * TARGET_RUNS / runs
    label = "" if runs == TARGET_RUNS else f" (scaled from {runs} runs)"
    verdict = "PASS" if scaled <= TARGET_SECONDS else "MISS"
    print(
        f"\ntarget: sql <= {TARGET_SECONDS:.0f} s per {TARGET_RUNS} runs: "
        f"{scaled:.1f} s{label}  {verdict}"
    )
    if problems:
        print("\nTHE INDEXES DIFFER:\n  " + "\n  ".join(problems))
    elif api is None:
        print("indexes not compared (--no-api)")
    else:
        print("indexes identical: every lineage_* table, row by row (api == sql)")


if __name__ == "__main__":
    sys.exit(main())
