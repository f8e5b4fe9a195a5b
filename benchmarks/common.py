"""Helpers shared by the benchmark scripts (standard library only at import time).

- a cache directory (``benchmarks/.cache`` or ``--workdir``) for generated Delta tables and a
  pre-migrated MLflow SQLite database, built once and reused;
- fresh child processes (``sys.executable``) with telemetry off, their wall time and the JSON
  result line they print;
- small statistics and table printing helpers.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, MutableMapping, Sequence
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
DEFAULT_WORKDIR = BENCH_DIR / ".cache"
RESULT_PREFIX = "BENCH_RESULT "

# The first commits of a table are written one by one with deltalake.write_deltalake; later
# ones directly in deltalake's own format (see build_table), because deltalake's per-commit
# cost grows with the log: 1,000 real appends take ~1 minute here, 10,000 over an hour.
REAL_WRITE_LIMIT = 100
CHECKPOINT_INTERVAL = 100
ROWS_PER_FILE = 3


# --------------------------------------------------------------------------- processes

_INHERITED_CONFIG = ("MLFLOW_LINEAGE_", "MLFLOW_TRACKING_", "MLFLOW_REGISTRY_")


def _clean(env: MutableMapping[str, str]) -> None:
    """Telemetry off and no inherited MLflow/lineage configuration, in ``env`` itself."""
    for key in list(env):
        if key.startswith(_INHERITED_CONFIG):
            del env[key]
    env["MLFLOW_DISABLE_TELEMETRY"] = "true"
    env["DO_NOT_TRACK"] = "true"


def clean_this_process_env() -> None:
    """Telemetry off, no inherited MLflow/lineage configuration: this process's own environment.

    Benchmark scripts call it first in ``main``; their children get the same from
    :func:`child_env`.
    """
    _clean(os.environ)


def child_env(
    extra: dict[str, str] | None = None, *, pycache: Path | None = None
) -> dict[str, str]:
    """The environment of a benchmark child: telemetry off, no inherited MLflow/lineage config.

    With ``pycache``, children compile each module once into that directory and reuse the
    bytecode (``PYTHONPYCACHEPREFIX``), as an installed package does: this machine sets
    ``PYTHONDONTWRITEBYTECODE=1`` and the editable checkout has no ``__pycache__``, so without
    it every process compiles ``lineage_plugin`` from source. Without ``pycache`` the
    environment's setting is kept as it is.
    """
    env = dict(os.environ)
    _clean(env)
    env.pop("PYTHONPROFILEIMPORTTIME", None)
    if pycache is not None:
        pycache.mkdir(parents=True, exist_ok=True)
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(pycache)
    if extra:
        env.update(extra)
    return env


class ChildError(RuntimeError):
    pass


def run_child(
    args: Sequence[str],
    *,
    env: dict[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
    timeout: float = 300,
) -> tuple[float, dict, subprocess.CompletedProcess[str]]:
    """Run ``sys.executable *args``; return (wall seconds, parsed result line, process).

    The child reports by printing one line ``BENCH_RESULT {json}``. A child that printed its
    result and then died at interpreter exit (the deltalake/pyarrow exit abort, code 134) is
    still counted, and its return code is kept in the result under ``_returncode``.
    """
    cmd = [sys.executable, *args]
    start = time.perf_counter()
    proc = subprocess.run(
        cmd, env=env or child_env(), cwd=cwd, capture_output=True, text=True, timeout=timeout
    )
    wall = time.perf_counter() - start
    result = None
    for line in proc.stdout.splitlines():
        if line.startswith(RESULT_PREFIX):
            result = json.loads(line[len(RESULT_PREFIX) :])
    if result is None:
        raise ChildError(
            f"child failed (exit {proc.returncode}): {' '.join(cmd)}\n"
            f"--- stdout ---\n{proc.stdout[-3000:]}\n--- stderr ---\n{proc.stderr[-5000:]}"
        )
    result["_returncode"] = proc.returncode
    return wall, result, proc


def run_main(main: Callable[[], int]) -> int:
    """Run a script's ``main``; a crashed child is reported without a parent traceback."""
    try:
        return main()
    except ChildError as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        return 1


def emit_result(payload: dict) -> None:
    """Called in a child: print the result line and flush."""
    sys.stdout.write(RESULT_PREFIX + json.dumps(payload) + "\n")
    sys.stdout.flush()


# --------------------------------------------------------------------------- statistics


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def quartiles(values: Sequence[float]) -> tuple[float, float]:
    if len(values) < 2:
        v = values[0] if values else float("nan")
        return v, v
    q = statistics.quantiles(values, n=4, method="inclusive")
    return q[0], q[2]


def ratio(a: float, b: float) -> float:
    return a / b if b else float("nan")


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def print_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    """Print a plain fixed-width table (first column left-aligned, the rest right-aligned)."""
    cells = [[str(h) for h in headers]] + [[_fmt(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]

    def line(r: Sequence[str]) -> str:
        return "  ".join(
            c.ljust(widths[i]) if i == 0 else c.rjust(widths[i]) for i, c in enumerate(r)
        )

    print(line(cells[0]))
    print("  ".join("-" * w for w in widths))
    for r in cells[1:]:
        print(line(r))


def print_profile(profile, limit: int, pattern: str | None = None) -> None:
    """Print the ``limit`` functions of a cProfile profile with the most cumulative time.

    ``profile``: a ``cProfile.Profile`` or the path of a dumped one. With ``pattern`` (a regular
    expression), only the functions it matches count. Printed from the table's header on.
    """
    import io
    import pstats

    out = io.StringIO()
    stats = pstats.Stats(profile, stream=out).sort_stats("cumulative")
    stats.print_stats(*([pattern] if pattern else []), limit)
    text = out.getvalue()
    start = text.find("   ncalls")
    print(text[start:] if start >= 0 else text)


def _fmt(value: object) -> str:
    if isinstance(value, float):
        if value != value:  # nan
            return "n/a"
        if abs(value) >= 100:
            return f"{value:.0f}"
        if abs(value) >= 10:
            return f"{value:.1f}"
        return f"{value:.2f}"
    return str(value)


# --------------------------------------------------------------------------- cache


def workdir(path: str | None) -> Path:
    wd = Path(path).resolve() if path else DEFAULT_WORKDIR
    wd.mkdir(parents=True, exist_ok=True)
    ignore = wd / ".gitignore"
    if not ignore.exists():
        ignore.write_text("*\n")
    return wd


def add_bytecode_option(parser) -> None:
    parser.add_argument(
        "--no-bytecode-cache",
        action="store_true",
        help="keep the environment's bytecode settings (here PYTHONDONTWRITEBYTECODE=1: "
        "lineage_plugin is compiled from source in every process); default: cache bytecode "
        "under <workdir>/pycache like an installed package",
    )


def bytecode_env(wd: Path, args) -> dict[str, str]:
    """``child_env`` as chosen by ``--no-bytecode-cache``; prints which one."""
    if args.no_bytecode_cache:
        state = os.environ.get("PYTHONDONTWRITEBYTECODE")
        print(f"bytecode: environment as is (PYTHONDONTWRITEBYTECODE={state!r})")
        return child_env()
    print(f"bytecode: cached under {wd / 'pycache'} (PYTHONPYCACHEPREFIX)")
    return child_env(pycache=wd / "pycache")


def scratch_dir(wd: Path, name: str) -> Path:
    d = wd / "scratch" / f"{name}-{os.getpid()}"
    shutil.rmtree(d, ignore_errors=True)
    d.mkdir(parents=True)
    return d


def _build_marker(path: Path) -> Path:
    return path.with_name(path.name + ".built.json")


def cached_build(path: Path, expected: dict) -> dict | None:
    """The marker of a finished build of the Delta table at ``path``, if it is the one wanted.

    :func:`finish_build` writes the marker (``<path>.built.json``) after the table is in place,
    so a marker next to a ``_delta_log`` whose keys hold the values in ``expected`` means the
    table is complete and was built with those parameters: its contents are returned. Otherwise
    (no marker, an interrupted build, an unreadable marker, other parameters) None: rebuild it
    with :func:`start_build` and :func:`finish_build`.
    """
    marker = _build_marker(path)
    if not (marker.exists() and (path / "_delta_log").is_dir()):
        return None
    try:
        info = json.loads(marker.read_text())
    except ValueError:
        return None
    if isinstance(info, dict) and all(info.get(k) == v for k, v in expected.items()):
        return info
    return None


def start_build(path: Path) -> Path:
    """Remove ``path``, its marker and any interrupted build; the empty directory to build in."""
    _build_marker(path).unlink(missing_ok=True)
    partial = path.with_name(path.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    shutil.rmtree(path, ignore_errors=True)
    partial.mkdir(parents=True)
    return partial


def finish_build(partial: Path, path: Path, info: dict) -> None:
    """Move the finished build from ``partial`` to ``path``, then write its marker ``info``."""
    os.replace(partial, path)
    _build_marker(path).write_text(json.dumps(info))


def fresh_copy(src: Path, dest: Path) -> None:
    """A fresh copy of a table at ``dest``: the log copied, the data files hard-linked.

    A restore writes only into ``_delta_log`` (new commit, checkpoint, ``_last_checkpoint``),
    never into a data file, and a VACUUM deletes data files (it unlinks the copy's names; the
    originals keep their data), so linking them is a copy as far as either can tell, and
    10,000 links take a fraction of the time of 10,000 copies.
    """
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    for entry in os.scandir(src):
        if entry.is_dir():
            shutil.copytree(entry.path, dest / entry.name)
        else:
            try:
                os.link(entry.path, dest / entry.name)
            except OSError:
                shutil.copy2(entry.path, dest / entry.name)


_TEMPLATE_CODE = r"""
import sys
from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore
from mlflow.store.model_registry.sqlalchemy_store import SqlAlchemyStore as RegistryStore
db, artifacts = sys.argv[1], sys.argv[2]
SqlAlchemyStore("sqlite:///" + db, artifacts)
RegistryStore("sqlite:///" + db)
print("BENCH_RESULT {}")
"""


_INDEX_CODE = r"""
import sys
from lineage_plugin.store.index import LineageIndex, index_url
LineageIndex(index_url("lineage+sqlite:///" + sys.argv[1])).ensure()
print("BENCH_RESULT {}")
"""


def indexed_sqlite_template(wd: Path) -> Path:
    """:func:`migrated_sqlite_template` with the lineage index's tables made too: what a
    database the plugin has used once looks like (the index is made once per database, as
    MLflow's own tables are, so neither is part of what is timed per run)."""
    import hashlib

    plain = migrated_sqlite_template(wd)
    schema = REPO_DIR / "lineage_plugin" / "store" / "index_schema.py"  # a new schema, a new one
    key = hashlib.sha256(schema.read_bytes()).hexdigest()[:12]
    target = plain.with_name(f"{plain.stem}-lineage-{key}.db")
    if target.exists():
        return target
    partial = target.with_suffix(".partial.db")
    shutil.copyfile(plain, partial)
    run_child(["-c", _INDEX_CODE, str(partial)], timeout=600)
    os.replace(partial, target)
    return target


def migrated_sqlite_template(wd: Path) -> Path:
    """One MLflow SQLite database with every migration applied (built once per mlflow version).

    Built in a child process with MLflow's own stores, so the parent does not import MLflow.
    Callers copy it (:func:`fresh_db`) so migrations are never part of what is timed.
    """
    from importlib.metadata import version

    target = wd / "templates" / f"mlflow-{version('mlflow')}.db"
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".partial.db")
    partial.unlink(missing_ok=True)
    print(f"[setup] building the migrated MLflow SQLite template {target} ...", flush=True)
    run_child(
        ["-c", _TEMPLATE_CODE, str(partial), str(target.parent / "template-artifacts")],
        timeout=600,
    )
    os.replace(partial, target)
    return target


def fresh_db(template: Path, dest_dir: Path) -> Path:
    dest_dir.mkdir(parents=True, exist_ok=True)
    target = dest_dir / "mlflow.db"
    shutil.copyfile(template, target)
    return target


def _batch(file_number: int):
    import pyarrow as pa

    ids = [file_number * ROWS_PER_FILE + i for i in range(ROWS_PER_FILE)]
    xs = [float((i * 7919) % 101) / 10.0 for i in ids]
    ys = [2.0 * x + 1.0 + ((i % 5) - 2) * 0.1 for x, i in zip(xs, ids, strict=True)]
    return pa.table(
        {
            "id": pa.array(ids, pa.int64()),
            "x": pa.array(xs, pa.float64()),
            "y": pa.array(ys, pa.float64()),
        }
    )


def _write_files(root: Path, commit: int, files: int) -> list[tuple[str, int, str]]:
    """The commit's ``files`` parquet files, written with pyarrow: (name, size, stats JSON) each."""
    import uuid

    import pyarrow.parquet as pq

    out = []
    for i in range(files):
        batch = _batch(commit * files + i)
        name = f"part-{i:05d}-{uuid.uuid4()}-c000.snappy.parquet"
        pq.write_table(batch, root / name, compression="snappy")
        cols = batch.column_names
        stats = {
            "numRecords": batch.num_rows,
            "minValues": {c: min(batch[c].to_pylist()) for c in cols},
            "maxValues": {c: max(batch[c].to_pylist()) for c in cols},
            "nullCount": {c: 0 for c in cols},
        }
        out.append((name, (root / name).stat().st_size, json.dumps(stats, separators=(",", ":"))))
    return out


def _checkpoint_path(log_dir: Path, version: int) -> Path:
    return log_dir / f"{version:020d}.checkpoint.parquet"


def table_path(wd: Path, commits: int, files_per_commit: int = 1, mode: str = "append") -> Path:
    kind = "appends" if mode == "append" else "overwrites"
    if files_per_commit == 1:
        return wd / "tables" / f"{kind}_{commits}"
    return wd / "tables" / f"{kind}_{commits}x{files_per_commit}"


def build_table(
    wd: Path,
    commits: int,
    *,
    files_per_commit: int = 1,
    mode: str = "append",
    log: Callable[[str], None] = print,
) -> Path:
    """A local Delta table of ``commits`` appends of ``files_per_commit`` files, cached in ``wd``.

    With ``mode="overwrite"`` each commit replaces the last (deltalake writes the remove
    actions), so only the last commit's files are live and the rest are tombstoned; such a
    table has at most ``REAL_WRITE_LIMIT`` commits, all written by deltalake.

    Each file is a small parquet file of ``ROWS_PER_FILE`` rows.
    Commits 0 .. ``REAL_WRITE_LIMIT``-1 are real deltalake commits. With one file per commit,
    each is one ``deltalake.write_deltalake(mode="append")``. With more, deltalake would write
    one file, so the files are written with pyarrow and committed with deltalake's transaction
    API: version 0 is ``deltalake.transaction.create_table_with_add_actions``, later ones
    ``DeltaTable.create_write_transaction(mode="append")``. Each further commit is its parquet
    files written with pyarrow plus one ``_delta_log`` JSON commit whose actions are copied
    from the last commit deltalake itself wrote, with the new files' paths, sizes, stats and a
    later timestamp: the same log deltalake would write, in seconds instead of minutes
    (deltalake reads such tables, polars too). Either way a checkpoint is made every
    ``CHECKPOINT_INTERVAL`` commits (``DeltaTable.create_checkpoint()`` where deltalake did
    not make it itself). The built table is checked with deltalake (latest version, file
    count); a marker file records a finished build (:func:`cached_build`), and an interrupted
    build is started again.
    """
    if mode not in ("append", "overwrite"):
        raise ValueError(f"mode must be append or overwrite, not {mode!r}")
    if mode == "overwrite" and commits > REAL_WRITE_LIMIT:
        raise ValueError(f"an overwrite table has at most {REAL_WRITE_LIMIT} commits")
    path = table_path(wd, commits, files_per_commit, mode)
    real = min(commits, REAL_WRITE_LIMIT)
    live = files_per_commit if mode == "overwrite" else commits * files_per_commit
    expected = {
        "commits": commits,
        "files_per_commit": files_per_commit,
        "files": commits * files_per_commit,
        "written_by_deltalake": real,
    }
    if mode == "overwrite":  # (append markers predate the mode: they stay valid)
        expected.update(mode=mode, live_files=live)
    if cached_build(path, expected) is not None:
        return path
    partial = start_build(path)

    from deltalake import DeltaTable, Schema, write_deltalake
    from deltalake.transaction import AddAction, create_table_with_add_actions

    files = f" x {files_per_commit} files" if files_per_commit > 1 else ""
    log(f"[setup] building a Delta table of {commits} {mode}s{files} in {path} (cached) ...")
    start = time.perf_counter()
    log_dir = partial / "_delta_log"
    step = max(100, commits // 10)
    if files_per_commit == 1:
        write_deltalake(str(partial), _batch(0), mode="append")
        dt = DeltaTable(str(partial))

        def append(commit: int) -> None:
            write_deltalake(dt, _batch(commit), mode=mode)

    else:
        schema = Schema.from_arrow(_batch(0).schema)

        def adds(commit: int) -> list[AddAction]:
            now = int(time.time() * 1000)
            return [
                AddAction(name, size, {}, now, True, stats)
                for name, size, stats in _write_files(partial, commit, files_per_commit)
            ]

        create_table_with_add_actions(str(partial), schema, adds(0))
        dt = DeltaTable(str(partial))

        def append(commit: int) -> None:
            if mode == "overwrite":  # it removes the files of the latest version: load it
                dt.update_incremental()
            dt.create_write_transaction(adds(commit), mode=mode, schema=schema)

    for c in range(1, real):
        append(c)
        if (c + 1) % CHECKPOINT_INTERVAL == 0 and not _checkpoint_path(log_dir, c).exists():
            dt.create_checkpoint()
        if (c + 1) % step == 0:
            log(f"[setup]   {c + 1}/{commits} commits ({time.perf_counter() - start:.0f} s)")
    if commits > real:
        _synthesize_commits(partial, real, commits, files_per_commit, log, start, step)
    dt = DeltaTable(str(partial))
    found = {"commits": dt.version() + 1, "files": len(dt.file_uris())}
    wanted = {"commits": commits, "files": live}
    if found != wanted:
        raise RuntimeError(f"built table has {found}, expected {wanted}")
    finish_build(
        partial,
        path,
        {
            **expected,
            "written_as_log_files": commits - real,
            "seconds": round(time.perf_counter() - start, 1),
        },
    )
    log(f"[setup] built in {time.perf_counter() - start:.0f} s")
    return path


def _synthesize_commits(
    root: Path,
    first: int,
    commits: int,
    files_per_commit: int,
    log: Callable[[str], None],
    start: float,
    step: int,
) -> None:
    from deltalake import DeltaTable

    log_dir = root / "_delta_log"
    template = [
        json.loads(line)
        for line in (log_dir / f"{first - 1:020d}.json").read_text().splitlines()
        if line.strip()
    ]
    commit_info = next(a["commitInfo"] for a in template if "commitInfo" in a)
    add = next(a["add"] for a in template if "add" in a)
    ts = int(commit_info.get("timestamp") or time.time() * 1000)
    compact = (",", ":")
    for v in range(first, commits):
        ts += 1
        ci = dict(commit_info, timestamp=ts)
        if "readVersion" in ci:
            ci["readVersion"] = v - 1
        if isinstance(ci.get("operationMetrics"), dict):
            ci["operationMetrics"] = dict(
                ci["operationMetrics"],
                num_added_files=files_per_commit,
                num_added_rows=files_per_commit * ROWS_PER_FILE,
                execution_time_ms=1,
            )
        lines = [json.dumps({"commitInfo": ci}, separators=compact)]
        for name, size, stats in _write_files(root, v, files_per_commit):
            ad = dict(add, path=name, size=size, modificationTime=ts, stats=stats)
            lines.append(json.dumps({"add": ad}, separators=compact))
        with open(log_dir / f"{v:020d}.json", "x", encoding="utf-8") as fh:
            fh.write("\n".join(lines) + "\n")
        if (v + 1) % CHECKPOINT_INTERVAL == 0:
            DeltaTable(str(root)).create_checkpoint()
        if (v + 1) % step == 0:
            log(f"[setup]   {v + 1}/{commits} commits ({time.perf_counter() - start:.0f} s)")


# --------------------------------------------------------------------------- in-process A/B


def interleave(
    arms: Sequence[str],
    steps: Sequence[tuple[str | None, Callable[[str, int], Callable[[], object] | None]]],
    reps: int,
    warmup: int,
) -> dict[str, dict[str, list[float]]]:
    """Time the same calls on several arms (stores), interleaved, in this process.

    Each round ``rep`` (``-warmup`` .. ``reps - 1``) runs every step in order, and each step on
    every arm before the next step, the arm order alternating from round to round. A step is
    ``(op, prepare)``: ``prepare(arm, rep)`` does the untimed set-up and returns the call to
    time (or None: nothing to time); ``op`` None marks a step that is never timed.

    Returns:
        Per timed op and arm, the seconds of each call of the measured rounds, in order.
    """
    times: dict[str, dict[str, list[float]]] = {
        op: {arm: [] for arm in arms} for op, _ in steps if op is not None
    }
    perf = time.perf_counter
    for rep in range(-warmup, reps):
        order = list(arms) if rep % 2 == 0 else list(arms)[::-1]
        for op, prepare in steps:
            for arm in order:
                call = prepare(arm, rep)
                if call is None:
                    continue
                t0 = perf()
                call()
                dt = perf() - t0
                if op is not None and rep >= 0:
                    times[op][arm].append(dt)
    return times


def print_comparison(
    ops: Sequence[tuple[str, str]],
    times: dict[str, dict[str, list[float]]],
    target: float,
    *,
    base: str = "stock",
    other: str = "plugin",
) -> list[tuple[str, float]]:
    """Print median ms per call of ``base`` and ``other``, their IQRs, the difference, the ratio
    ``other/base`` and PASS/MISS against ``target``; then the first and last quarter's medians
    (does a call get slower as the database fills?).

    Args:
        ops: ``(op, label)`` pairs, in the order to print; ``times[op][arm]`` in seconds.
        times: What :func:`interleave` returned.
        target: The highest ratio that passes.
        base: The baseline arm.
        other: The arm compared with it.

    Returns:
        ``(label, ratio)`` for each op.
    """
    rows, ratios, growth = [], [], []
    for op, label in ops:
        b_ms = [t * 1000 for t in times[op][base]]
        o_ms = [t * 1000 for t in times[op][other]]
        b_med, o_med = median(b_ms), median(o_ms)
        (bq1, bq3), (oq1, oq3) = quartiles(b_ms), quartiles(o_ms)
        r = ratio(o_med, b_med)
        ratios.append((label, r))
        rows.append(
            [
                label,
                b_med,
                f"{bq1:.2f}-{bq3:.2f}",
                o_med,
                f"{oq1:.2f}-{oq3:.2f}",
                o_med - b_med,
                r,
                verdict(r <= target),
            ]
        )
        quarter = max(1, len(b_ms) // 4)
        growth.append(
            [
                label,
                median(b_ms[:quarter]),
                median(b_ms[-quarter:]),
                median(o_ms[:quarter]),
                median(o_ms[-quarter:]),
            ]
        )
    print_table(
        [
            "call",
            f"{base} ms",
            f"{base} IQR",
            f"{other} ms",
            f"{other} IQR",
            "added ms",
            f"{other}/{base}",
            f"<= {target}",
        ],
        rows,
    )
    print(f"  first vs last quarter of the calls (median ms; {quarter} calls each):")
    print_table(
        ["  call", f"{base} first", f"{base} last", f"{other} first", f"{other} last"], growth
    )
    return ratios
