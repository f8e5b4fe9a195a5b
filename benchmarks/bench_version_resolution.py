"""Version resolution against table size: the plugin's resolver vs opening the table with deltalake.

For local tables of 10, 1,000 and 10,000 small appends (checkpoint every 100 commits; built
once and cached), the median over 50 calls of:

- plugin cold: ``lineage_plugin.delta.log.resolve(path)`` (latest version, table id,
  commit info) with its table-id cache cleared before each call
  (``delta_log.table_id_at.cache_clear()``): what a fresh process pays;
- plugin warm: the same call with the cache warm (repeat reads in one process);
- deltalake open: ``DeltaTable(path).version()`` (the baseline);
- deltalake facts: ``DeltaTable(path)`` + ``.metadata().id`` + ``.history(1)``, deltalake's way
  to get the same facts.

Calls are interleaved (the order rotates every round). Target: the plugin resolves the
10,000-commit table in <= 10 ms; the 10k/10 ratio shows how it scales. The plugin's answers
are checked against deltalake's. Exits 0.

    python benchmarks/bench_version_resolution.py           # 10, 1000, 10000 commits
    python benchmarks/bench_version_resolution.py --quick   # 10, 1000 commits
"""

from __future__ import annotations

import sys
import time

TARGET_MS = 10.0
TARGET_COMMITS = 10_000


def _timer(fn, reps: int) -> list[float]:  # pragma: no cover - helper
    out = []
    for _ in range(reps):
        t = time.perf_counter_ns()
        fn()
        out.append((time.perf_counter_ns() - t) / 1e6)
    return out


def p90(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[int(0.9 * (len(ordered) - 1))]


def measure(path: str, reps: int) -> dict:
    """Interleaved samples (ms) of every method, plus diagnostics, for one table."""
    from deltalake import DeltaTable

    from lineage_plugin.delta import delta_rs
    from lineage_plugin.delta import log as delta_log

    table_id_cache = getattr(delta_log, "table_id_at", None)
    clear = getattr(table_id_cache, "cache_clear", None)

    def plugin_cold() -> None:
        if clear is not None:
            clear()
        delta_log.resolve(path)

    def plugin_warm() -> None:
        delta_log.resolve(path)

    def dl_open() -> None:
        DeltaTable(path).version()

    def dl_facts() -> None:
        dt = DeltaTable(path)
        dt.version()
        _ = dt.metadata().id
        dt.history(1)

    methods = {
        "plugin cold": plugin_cold,
        "plugin warm": plugin_warm,
        "deltalake open": dl_open,
        "deltalake facts": dl_facts,
    }
    if clear is None:
        del methods["plugin cold"]
    for fn in methods.values():  # warm-up: imports, OS page cache, the resolver's cache
        fn()
    samples: dict[str, list[float]] = {name: [] for name in methods}
    names = list(methods)
    for i in range(reps):
        k = i % len(names)
        for name in names[k:] + names[:k]:
            samples[name].extend(_timer(methods[name], 1))

    # Correctness: the plugin's answers against deltalake's.
    dt = DeltaTable(path)
    info = delta_log.resolve(path)
    hist = dt.history(1)[0]
    problems = []
    if info.version != dt.version():
        problems.append(f"version {info.version} != deltalake {dt.version()}")
    if info.table_id != dt.metadata().id:
        problems.append(f"table id {info.table_id} != deltalake {dt.metadata().id}")
    if info.commit.timestamp != hist.get("timestamp"):
        problems.append(f"timestamp {info.commit.timestamp} != history {hist.get('timestamp')}")
    if info.commit.operation != hist.get("operation"):
        problems.append(f"operation {info.commit.operation} != history {hist.get('operation')}")

    # Diagnostics: where a cold call spends its time, and whether it falls back to deltalake.
    diag: dict[str, object] = {}
    opens = []
    original_open = delta_rs.open_table
    if original_open is not None:

        def counting_open(*a, **k):
            opens.append(1)
            return original_open(*a, **k)

        delta_rs.open_table = counting_open
        try:
            if clear is not None:
                clear()
            delta_log.resolve(path)
            diag["cold_opens"] = len(opens)
            opens.clear()
            delta_log.resolve(path)
            diag["warm_opens"] = len(opens)
        finally:
            delta_rs.open_table = original_open
    try:
        log_dir = delta_log.log_dir_of(path)
        diag["latest_ms"] = min(_timer(lambda: delta_log.latest_local_version(log_dir), 20))
        if table_id_cache is not None and clear is not None:
            version = delta_log.latest_local_version(log_dir)
            stamp = delta_log.file_stamp(delta_log.commit_file(log_dir, version))

            def id_cold() -> None:
                clear()
                table_id_cache(log_dir, version, stamp)

            diag["table_id_cold_ms"] = min(_timer(id_cold, 10))
            diag["table_id_found_in_log"] = table_id_cache(log_dir, version, stamp) is not None
    except AttributeError as exc:  # the resolver's internals changed: skip the breakdown
        diag["error"] = str(exc)
    return {"samples": samples, "problems": problems, "diag": diag, "version": dt.version()}


def main() -> int:
    import argparse

    import common as C

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tables of 10 and 1000 commits")
    parser.add_argument("--reps", type=int, default=50, help="calls per method (default 50)")
    parser.add_argument("--sizes", help="comma-separated commit counts (default 10,1000,10000)")
    parser.add_argument("--workdir", help=f"cache directory (default {C.DEFAULT_WORKDIR})")
    args = parser.parse_args()
    if args.sizes:
        sizes = [int(s) for s in args.sizes.split(",")]
    else:
        sizes = [10, 1000] if args.quick else [10, 1000, TARGET_COMMITS]

    wd = C.workdir(args.workdir)
    paths = {n: str(C.build_table(wd, n)) for n in sizes}
    started = time.perf_counter()
    print(
        f"version resolution: median of {args.reps} calls per method, local tables of small "
        f"appends with a checkpoint every {C.CHECKPOINT_INTERVAL} commits"
    )
    results = {}
    for n in sizes:
        results[n] = measure(paths[n], args.reps)
        print(f"  measured {n} commits", flush=True)

    meds = {n: {m: C.median(s) for m, s in r["samples"].items()} for n, r in results.items()}
    methods = list(next(iter(meds.values())))
    print("\nms per call (median; ratio = / deltalake open)")
    rows = []
    for n in sizes:
        base = meds[n]["deltalake open"]
        row: list[object] = [n]
        for m in methods:
            row += [meds[n][m], C.ratio(meds[n][m], base)]
        rows.append(row)
    headers = ["commits"]
    for m in methods:
        headers += [m, "ratio"]
    C.print_table(headers, rows)

    print("\np90 ms per call")
    C.print_table(
        ["commits", *methods],
        [[n, *(p90(results[n]["samples"][m]) for m in methods)] for n in sizes],
    )

    print("\nresolver breakdown (min ms of a cold call's parts)")
    rows = []
    for n in sizes:
        d = results[n]["diag"]
        rows.append(
            [
                n,
                d.get("latest_ms", float("nan")),
                d.get("table_id_cold_ms", float("nan")),
                {True: "yes", False: "no"}.get(d.get("table_id_found_in_log"), "?"),
                d.get("cold_opens", "?"),
                d.get("warm_opens", "?"),
            ]
        )
    C.print_table(
        [
            "commits",
            "latest version",
            "table-id scan",
            "id found in log",
            "deltalake opens (cold)",
            "deltalake opens (warm)",
        ],
        rows,
    )
    for n in sizes:
        if results[n]["diag"].get("error"):
            print(f"  ({n}: breakdown skipped: {results[n]['diag']['error']})")

    first, last = sizes[0], sizes[-1]
    print()
    for m in methods:
        print(
            f"scaling {m}: {last}/{first} commits = {C.ratio(meds[last][m], meds[first][m]):.1f}x"
        )
    if TARGET_COMMITS in meds:
        for m in ("plugin cold", "plugin warm"):
            if m in meds[TARGET_COMMITS]:
                v = meds[TARGET_COMMITS][m]
                print(
                    f"target: {m} on {TARGET_COMMITS} commits <= {TARGET_MS:.0f} ms -> "
                    f"{v:.2f} ms: {C.verdict(v <= TARGET_MS)}"
                )
    else:
        print(
            f"(target <= {TARGET_MS:.0f} ms is checked on the {TARGET_COMMITS}-commit table; "
            "not measured in this run)"
        )
    for n in sizes:
        for p in results[n]["problems"]:
            print(f"MISMATCH on {n} commits: {p}")
    print(f"measured in {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    from common import run_main

    sys.exit(run_main(main))
