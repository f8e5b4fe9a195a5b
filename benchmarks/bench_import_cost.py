"""Cost of having the plugin installed, for every MLflow user of the environment.

MLflow loads the entry points of installed plugins while it is imported and when it builds its
store registries, so the plugin runs code in processes that never use it. This script reports:

(a) ``python -X importtime -c "import mlflow"``: the cumulative import time of every
    ``lineage_plugin`` module (median over a few processes) and their total. ``-X importtime``
    does not see modules imported through ``importlib.import_module`` (how entry points are
    loaded), so the time spent in ``EntryPoint.load()`` for the plugin's entry points is measured
    too, by wrapping it, in processes that import MLflow and start and end one run.
(b) the median wall time of fresh processes running ``import mlflow;
    mlflow.set_tracking_uri('sqlite:///<fresh copy of a migrated DB>'); mlflow.start_run();
    mlflow.end_run()``, interleaved, with the plugin's distribution visible and hidden. Hidden
    means the child, before importing MLflow, wraps ``importlib.metadata.Distribution.discover``
    to skip the ``mlflow-delta-lineage`` distribution, so ``entry_points()`` (which
    ``mlflow.utils.plugins.get_entry_points`` calls) never sees its entry points: what MLflow
    sees when the plugin is not installed. Both arms run the same wrapper; only the "hidden"
    arm drops the distribution. Target: <= 50 ms added.
(c) whether ``deltalake``, ``polars``, ``pyspark`` or ``pyarrow`` are in ``sys.modules`` after
    ``import mlflow`` (and after the run) with the plugin installed (they must not be).

    python benchmarks/bench_import_cost.py           # 30 processes per arm
    python benchmarks/bench_import_cost.py --quick   # 10 processes per arm
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

TARGET_ADDED_MS = 50.0
HEAVY = ("deltalake", "polars", "pyspark", "pyarrow")
DIST_NORMALIZED = "mlflow_delta_lineage"

# The child of (b) and (c). argv: with|without, path of a fresh migrated SQLite database.
CHILD_RUN = r"""
import time
_t0 = time.perf_counter()
import importlib.metadata as _md
import sys

_HIDE = sys.argv[1] == "without"
_discover = _md.Distribution.discover.__func__


def _filtered(cls, **kwargs):
    for dist in _discover(cls, **kwargs):
        # Both arms look at every distribution's name; only "without" drops the plugin's.
        if getattr(dist, "_normalized_name", None) == "@DIST@" and _HIDE:
            continue
        yield dist


_md.Distribution.discover = classmethod(_filtered)
_t1 = time.perf_counter()
import mlflow
_t2 = time.perf_counter()
_heavy_import = [m for m in @HEAVY@ if m in sys.modules]
_lineage_import = sorted(m for m in sys.modules if m.startswith("lineage_plugin"))
mlflow.set_tracking_uri("sqlite:///" + sys.argv[2])
mlflow.start_run()
mlflow.end_run()
_t3 = time.perf_counter()
import json

_visible = any(
    ep.value.startswith("lineage_plugin")
    for ep in _md.entry_points(group="mlflow.tracking_store")
)
print("BENCH_RESULT " + json.dumps({
    "import_ms": (_t2 - _t1) * 1000,
    "run_ms": (_t3 - _t2) * 1000,
    "in_process_ms": (_t3 - _t0) * 1000,
    "heavy_after_import": _heavy_import,
    "heavy_after_run": [m for m in @HEAVY@ if m in sys.modules],
    "lineage_after_import": _lineage_import,
    "lineage_after_run": sorted(m for m in sys.modules if m.startswith("lineage_plugin")),
    "plugin_entry_points_visible": _visible,
}), flush=True)
""".replace("@DIST@", DIST_NORMALIZED).replace("@HEAVY@", repr(HEAVY))

# Times every EntryPoint.load() and entry_points() call while MLflow is imported and runs once.
CHILD_LOADS = r"""
import time
import importlib.metadata as _md
import json
import sys

_loads = []
_scans = []
_phase = ["import mlflow"]
_orig_load = _md.EntryPoint.load
_orig_eps = _md.entry_points


def _load(self):
    t = time.perf_counter()
    try:
        return _orig_load(self)
    finally:
        _loads.append([_phase[0], self.group, self.name, self.value,
                       (time.perf_counter() - t) * 1000])


def _entry_points(**params):
    t = time.perf_counter()
    try:
        return _orig_eps(**params)
    finally:
        _scans.append([_phase[0], params.get("group"), (time.perf_counter() - t) * 1000])


_md.EntryPoint.load = _load
_md.entry_points = _entry_points
import mlflow
_phase[0] = "set_tracking_uri + run"
mlflow.set_tracking_uri("sqlite:///" + sys.argv[1])
mlflow.start_run()
mlflow.end_run()
print("BENCH_RESULT " + json.dumps({"loads": _loads, "scans": _scans}), flush=True)
"""

_IMPORTTIME = re.compile(r"^import time:\s+(\d+)\s+\|\s+(\d+)\s+\|(\s*)(\S+)\s*$")


def parse_importtime(stderr: str) -> list[tuple[str, int, int, int]]:
    """``(module, self_us, cumulative_us, level)`` for each line of ``-X importtime`` output."""
    out = []
    for line in stderr.splitlines():
        m = _IMPORTTIME.match(line)
        if m:
            level = (len(m.group(3)) - 1) // 2
            out.append((m.group(4), int(m.group(1)), int(m.group(2)), level))
    return out


def plugin_import_times(entries: list[tuple[str, int, int, int]]) -> dict[str, dict]:
    """Per lineage_plugin module: self and cumulative us, and whether it is outermost.

    -X importtime prints a module after the modules it imported, one indent level deeper, so
    reading the lines backwards gives every module's ancestors.
    """
    stack: list[tuple[int, str]] = []
    found: dict[str, dict] = {}
    for name, self_us, cum_us, level in reversed(entries):
        while stack and stack[-1][0] >= level:
            stack.pop()
        if name.startswith("lineage_plugin") or "mlflow_delta_lineage" in name:
            nested = any(
                a.startswith("lineage_plugin") or "mlflow_delta_lineage" in a for _, a in stack
            )
            found[name] = {"self": self_us, "cum": cum_us, "outermost": not nested}
        stack.append((level, name))
    return found


def importers(entries: list[tuple[str, int, int, int]], names: tuple[str, ...]) -> dict[str, str]:
    """For each top-level package in ``names`` -X importtime shows, the modules that imported it.

    Modules imported through ``importlib.import_module`` are not shown, so a chain skips them.
    """
    stack: list[tuple[int, str]] = []
    chains: dict[str, str] = {}
    for name, _self_us, _cum_us, level in reversed(entries):
        while stack and stack[-1][0] >= level:
            stack.pop()
        if name in names and name not in chains:
            chains[name] = " <- ".join(n for _, n in reversed(stack[-3:])) or "(top level)"
        stack.append((level, name))
    return chains


def main() -> int:
    import argparse
    import shutil
    from collections import defaultdict

    import common as C

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="10 processes per arm")
    parser.add_argument("--runs", type=int, help="processes per arm (default 30, quick 10)")
    parser.add_argument("--workdir", help=f"cache directory (default {C.DEFAULT_WORKDIR})")
    parser.add_argument(
        "--sequential",
        action="store_true",
        help="with --quick, still run the two processes of a pair one after the other",
    )
    C.add_bytecode_option(parser)
    args = parser.parse_args()
    runs = args.runs or (10 if args.quick else 30)
    samples = 1 if args.quick else 3
    parallel = args.quick and not args.sequential

    wd = C.workdir(args.workdir)
    template = C.migrated_sqlite_template(wd)
    scratch = C.scratch_dir(wd, "import")
    env = C.bytecode_env(wd, args)
    cwd = str(scratch)  # not the checkout, so its source tree is not on sys.path
    started = time.perf_counter()

    # ---------------------------------------------------------------- (a) importtime
    print(f'(a) python -X importtime -c "import mlflow"  (median of {samples} process(es))')
    per_module: dict[str, list[dict]] = defaultdict(list)
    totals_cum, totals_self, mlflow_cum = [], [], []
    heavy_chains: dict[str, str] = {}
    for _ in range(samples):
        proc = subprocess.run(
            [sys.executable, "-X", "importtime", "-c", "import mlflow"],
            env=env,
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=300,
        )
        if proc.returncode != 0:
            raise SystemExit(f"import mlflow failed:\n{proc.stderr[-3000:]}")
        entries = parse_importtime(proc.stderr)
        found = plugin_import_times(entries)
        for name, info in found.items():
            per_module[name].append(info)
        totals_cum.append(
            sum(i["cum"] for n, i in found.items() if i["outermost"] and "editable" not in n)
        )
        totals_self.append(sum(i["self"] for n, i in found.items() if "editable" not in n))
        mlflow_cum.append(next((c for n, _, c, _ in entries if n == "mlflow"), 0))
        heavy_chains = importers(entries, HEAVY)
    rows = []
    for name, infos in sorted(per_module.items(), key=lambda kv: kv[0]):
        rows.append(
            [
                name,
                C.median([i["cum"] for i in infos]) / 1000,
                C.median([i["self"] for i in infos]) / 1000,
            ]
        )
    C.print_table(["module", "cumulative ms", "self ms"], rows)
    print(
        f"lineage_plugin total: {C.median(totals_cum) / 1000:.1f} ms cumulative (outermost "
        f"lineage_plugin imports, nested ones not counted twice), "
        f"{C.median(totals_self) / 1000:.1f} ms self; 'import mlflow' itself: "
        f"{C.median(mlflow_cum) / 1000:.0f} ms cumulative."
    )
    print(
        "note: modules MLflow loads through EntryPoint.load() (importlib.import_module) are "
        "invisible to -X importtime; see the entry-point loads below.\n"
        "note: __editable___*_finder is the editable install's import hook, loaded by site at "
        "interpreter start-up (not by 'import mlflow'); a wheel install has none. Its "
        "cumulative time is mostly pathlib, which MLflow imports anyway."
    )

    print(
        f"\n    EntryPoint.load() of the plugin's entry points (median of {samples} process(es): "
        "import mlflow, set_tracking_uri(sqlite), start_run, end_run)"
    )
    load_rows: dict[tuple[str, str], list[float]] = defaultdict(list)
    load_counts: dict[tuple[str, str], int] = {}
    scan_totals: dict[str, list[float]] = defaultdict(list)
    scan_counts: dict[str, int] = {}
    plugin_load_totals = []
    for i in range(samples):
        db = C.fresh_db(template, scratch / f"loads-{i}")
        _, result, _ = C.run_child(["-c", CHILD_LOADS, str(db)], env=env, cwd=cwd)
        groups: dict[tuple[str, str], float] = defaultdict(float)
        counts: dict[tuple[str, str], int] = defaultdict(int)
        for phase, group, _name, value, ms in result["loads"]:
            if value.startswith("lineage_plugin") or "lineage" in _name:
                groups[(phase, group)] += ms
                counts[(phase, group)] += 1
        for key, ms in groups.items():
            load_rows[key].append(ms)
            load_counts[key] = counts[key]
        plugin_load_totals.append(sum(groups.values()))
        phase_scan: dict[str, float] = defaultdict(float)
        phase_n: dict[str, int] = defaultdict(int)
        for phase, _group, ms in result["scans"]:
            phase_scan[phase] += ms
            phase_n[phase] += 1
        for phase, ms in phase_scan.items():
            scan_totals[phase].append(ms)
            scan_counts[phase] = phase_n[phase]
    C.print_table(
        ["phase", "entry point group", "loads", "ms (sum)"],
        [[p, g, load_counts[(p, g)], C.median(v)] for (p, g), v in sorted(load_rows.items())],
    )
    print(f"plugin entry-point loads total: {C.median(plugin_load_totals):.1f} ms per process")
    print("importlib.metadata.entry_points() scans (all plugins; paid with or without this one):")
    C.print_table(
        ["phase", "calls", "ms (sum)"],
        [[p, scan_counts[p], C.median(v)] for p, v in scan_totals.items()],
    )

    # ---------------------------------------------------------------- (b) with / without
    print(
        f"\n(b) fresh processes: import mlflow; set_tracking_uri(sqlite); start_run; end_run "
        f"({runs} per arm, interleaved"
        + (", the two of a pair side by side on 2 cores: quicker, noisier)" if parallel else ")")
    )
    arms = ("with", "without")
    results: dict[str, list[dict]] = {a: [] for a in arms}

    def one(arm: str, tag: str) -> dict:
        run_dir = scratch / f"{tag}-{arm}"
        db = C.fresh_db(template, run_dir)
        wall, result, _ = C.run_child(["-c", CHILD_RUN, arm, str(db)], env=env, cwd=cwd)
        result["wall_ms"] = wall * 1000
        shutil.rmtree(run_dir, ignore_errors=True)
        return result

    if not args.quick:  # one unmeasured process per arm (the quick run's (a) warmed up)
        for arm in arms:
            one(arm, "warmup")
    pool = ThreadPoolExecutor(max_workers=2) if parallel else None
    for i in range(runs):
        order = arms if i % 2 == 0 else arms[::-1]
        if pool is not None:
            futures = {arm: pool.submit(one, arm, str(i)) for arm in order}
            for arm in arms:
                results[arm].append(futures[arm].result())
        else:
            for arm in order:
                results[arm].append(one(arm, str(i)))
        if (i + 1) % 10 == 0:
            print(f"  {i + 1}/{runs} pairs", flush=True)
    if pool is not None:
        pool.shutdown()
    for arm, expect in (("with", True), ("without", False)):
        seen = {r["plugin_entry_points_visible"] for r in results[arm]}
        if seen != {expect}:
            raise SystemExit(
                f"arm {arm!r}: plugin entry points visible = {seen}, "
                f"expected {expect}; the hiding does not work"
            )
    leaked = sorted({m for r in results["without"] for m in r["lineage_after_run"]})
    if leaked:
        raise SystemExit(f"'without' arm imported lineage_plugin modules: {leaked}")

    def med(arm: str, key: str) -> float:
        return C.median([r[key] for r in results[arm]])

    rows = []
    for key, label in (
        ("wall_ms", "process wall"),
        ("import_ms", "import mlflow"),
        ("run_ms", "set_tracking_uri + run"),
    ):
        w, wo = med("with", key), med("without", key)
        rows.append([label, w, wo, w - wo, C.ratio(w, wo)])
    C.print_table(["median ms", "with plugin", "without", "added", "ratio"], rows)
    added = med("with", "wall_ms") - med("without", "wall_ms")
    q_with = C.quartiles([r["wall_ms"] for r in results["with"]])
    q_without = C.quartiles([r["wall_ms"] for r in results["without"]])
    print(
        f"process wall IQR: with {q_with[0]:.0f}-{q_with[1]:.0f} ms, without "
        f"{q_without[0]:.0f}-{q_without[1]:.0f} ms"
    )
    print(
        f"target: plugin adds <= {TARGET_ADDED_MS:.0f} ms per process -> added "
        f"{added:+.1f} ms: {C.verdict(added <= TARGET_ADDED_MS)}"
    )

    # ---------------------------------------------------------------- (c) heavy modules
    print("\n(c) heavy modules in sys.modules after import mlflow (and after the run)")

    def present(arm: str, key: str, module: str) -> str:
        return "yes" if any(module in r[key] for r in results[arm]) else "no"

    rows = []
    added_by_plugin = []
    for module in HEAVY:
        with_import = present("with", "heavy_after_import", module)
        without_import = present("without", "heavy_after_import", module)
        if with_import == "yes" and without_import == "no":
            added_by_plugin.append(module)
        rows.append(
            [
                module,
                with_import,
                present("with", "heavy_after_run", module),
                without_import,
                heavy_chains.get(module, "-") if with_import == "yes" else "-",
            ]
        )
    C.print_table(
        ["module", "with plugin", "with, after run", "plugin hidden", "imported by (importtime)"],
        rows,
    )
    print(
        "target: the plugin makes import mlflow load none of them -> "
        f"{', '.join(added_by_plugin) or 'none added'}: {C.verdict(not added_by_plugin)}"
    )
    lineage_mods = sorted({m for r in results["with"] for m in r["lineage_after_import"]})
    print(f"lineage_plugin modules loaded by import mlflow: {', '.join(lineage_mods)}")
    lineage_run = sorted({m for r in results["with"] for m in r["lineage_after_run"]})
    extra = [m for m in lineage_run if m not in lineage_mods]
    print(f"... and by set_tracking_uri + start_run/end_run: {', '.join(extra) or 'none'}")
    print(f"\nmeasured in {time.perf_counter() - started:.0f} s")
    shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    from common import run_main

    sys.exit(run_main(main))
