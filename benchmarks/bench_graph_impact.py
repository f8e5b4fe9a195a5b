"""Transitive ``impact`` over a generated pipeline graph, beside a one-hop query (issue 15).

The graph, written directly with bulk SQL into the lineage index tables on SQLite (as
``registry_data.py`` fills MLflow's), 10 pipelines deep:

- level k (0..9) has 10,000 runs; run (k, t, i) (t < 100 tables, i < 100 versions) reads
  version i of the level-k tables t and t+1 (mod 100), reads 7 versions of side tables
  (500 reference tables x 200 versions no run writes, picked pseudo-randomly), and writes
  version i of the level-(k+1) table t: 10 edges a run, 100,000 runs, 1,000,000 edges;
- the 10,000 runs of the last level each registered a model version (100 models x 100
  versions), each model with a Production version, a Staging one and a ``champion`` alias.

A bad version i of a raw (level-0) table t reaches 2, 3, ..., 11 runs at levels 0..9 (65
runs, 65 written table versions and 11 model versions, paths 10 runs long).

Timed, each over the same bad versions (different ones per repetition, interleaved):

- ``transitive (API)``: ``lineage_plugin.queries.impact(path, from_version=i, to_version=i)``,
  the public call, the whole graph walk with paths, stages and aliases;
- ``one hop (SQL)``: the direct readers only, as one SQLAlchemy Core query (reads joined to
  runs and model versions) plus the holdings of their models: what impact was before the graph.

Median ms, the ratio, and the target: transitive <= 20 ms. PASS/MISS is printed; the exit code
is 0 either way (non-zero only when an answer is wrong).

    python benchmarks/bench_graph_impact.py            # full size
    python benchmarks/bench_graph_impact.py --quick    # 1/10 of the runs, 5 repetitions
"""

from __future__ import annotations

import argparse
import os
import shutil
import sqlite3
import sys
import time

from common import median, ratio, run_main, scratch_dir, verdict, workdir

LEVELS = 10
TARGET_MS = 20.0
SIDE_TABLES, SIDE_VERSIONS, SIDE_READS = 500, 200, 7


def generate(db: str, lake: str, tables: int, versions: int) -> dict[str, int]:
    """Fill the index in ``db``; returns the row counts."""
    from lineage_plugin.delta.log import normalize_uri
    from lineage_plugin.store.index import LineageIndex

    LineageIndex(f"sqlite:///{db}").ensure()
    uri = [
        [normalize_uri(os.path.join(lake, f"l{k}_t{t:03d}")) for t in range(tables)]
        for k in range(LEVELS + 1)
    ]
    side = [normalize_uri(os.path.join(lake, f"side_{s:03d}")) for s in range(SIDE_TABLES)]
    conn = sqlite3.connect(db)
    runs, reads, writes, mvs, holdings = [], [], [], [], []
    n = 0
    for k in range(LEVELS):
        for t in range(tables):
            for i in range(versions):
                run_id = f"{k:02d}{t:03d}{i:03d}".ljust(32, "0")
                start = 1_700_000_000_000 + n * 1000
                runs.append((run_id, str(k), f"level{k}-t{t}-v{i}", start, start + 500, "u", 0))
                edges = [
                    (uri[k][t], f"l{k}_t{t:03d}", i),
                    (uri[k][(t + 1) % tables], f"l{k}_t{(t + 1) % tables:03d}", i),
                ]
                for r in range(SIDE_READS):
                    h = (n * 7919 + r * 104729) % (SIDE_TABLES * SIDE_VERSIONS)
                    edges.append(
                        (
                            side[h // SIDE_VERSIONS],
                            f"side_{h // SIDE_VERSIONS:03d}",
                            h % SIDE_VERSIONS,
                        )
                    )
                reads += [
                    (run_id, p, u, name, v, "training", start)
                    for p, (u, name, v) in enumerate(edges)
                ]
                writes.append((run_id, 0, uri[k + 1][t], f"l{k + 1}_t{t:03d}", i, "WRITE", start))
                if k == LEVELS - 1:
                    mvs.append((f"model_{t:03d}", i + 1, run_id, start + 600, "READY", 0))
                n += 1
    for t in range(tables):
        name = f"model_{t:03d}"
        holdings += [
            (name, "stage", "Production", versions),
            (name, "stage", "Staging", versions - 1),
            (name, "alias", "champion", versions),
        ]
    with conn:
        conn.executemany(
            "INSERT INTO lineage_runs (run_id, experiment_id, run_name, start_time, end_time, "
            "user, status, deleted) VALUES (?, ?, ?, ?, ?, ?, 'FINISHED', ?)",
            runs,
        )
        conn.executemany(
            "INSERT INTO lineage_reads (run_id, position, table_uri, table_name, version, "
            "context, run_start) VALUES (?, ?, ?, ?, ?, ?, ?)",
            reads,
        )
        conn.executemany(
            "INSERT INTO lineage_writes (run_id, position, table_uri, table_name, version, "
            "operation, run_start) VALUES (?, ?, ?, ?, ?, ?, ?)",
            writes,
        )
        conn.executemany(
            "INSERT INTO lineage_model_versions (name, version, run_id, created, status, deleted) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            mvs,
        )
        conn.executemany(
            "INSERT INTO lineage_holdings (name, kind, label, version) VALUES (?, ?, ?, ?)",
            holdings,
        )
    conn.execute("ANALYZE")
    conn.close()
    return {"runs": len(runs), "edges": len(reads) + len(writes), "model_versions": len(mvs)}


def one_hop(conn, uri: str, version: int) -> tuple[int, int]:
    """The direct readers of one version and their model versions (what impact was)."""
    from sqlalchemy import and_, select

    from lineage_plugin.store.index_schema import tables

    t = tables()
    reads, runs, mvs, holdings = t["reads"], t["runs"], t["model_versions"], t["holdings"]
    query = (
        select(reads.c.run_id, reads.c.version, runs.c.run_name, mvs.c.name, mvs.c.version)
        .join(runs, runs.c.run_id == reads.c.run_id)
        .outerjoin(mvs, mvs.c.run_id == reads.c.run_id)
        .where(and_(reads.c.table_uri == uri, reads.c.version == version))
    )
    rows = conn.execute(query).all()
    names = sorted({r.name for r in rows if r.name is not None})
    if names:
        conn.execute(select(holdings).where(holdings.c.name.in_(names))).all()
    return len({r.run_id for r in rows}), len(names)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="1/10 of the runs, 5 repetitions")
    parser.add_argument("--workdir", help="where the generated data goes")
    args = parser.parse_args()
    tables, versions, reps = (10, 100, 5) if args.quick else (100, 100, 20)
    where = scratch_dir(workdir(args.workdir), "graph-impact")
    try:
        return measure(str(where / "mlflow.db"), str(where / "lake"), tables, versions, reps)
    finally:
        shutil.rmtree(where, ignore_errors=True)  # 420 MB at full size


def measure(db: str, lake: str, tables: int, versions: int, reps: int) -> int:
    """Generate the graph, check one answer, time both queries; 1 when the answer is wrong."""
    started = time.perf_counter()
    counts = generate(db, lake, tables, versions)
    print(f"generated {counts} in {time.perf_counter() - started:.1f} s")

    from sqlalchemy import create_engine

    from lineage_plugin.delta.log import normalize_uri
    from lineage_plugin.queries import impact

    tracking_uri = f"lineage+sqlite:///{db}"
    engine = create_engine(f"sqlite:///{db}")
    bad = [(r * 37 % tables, 1 + r * 13 % (versions - 2)) for r in range(reps)]
    paths = {t: os.path.join(lake, f"l0_t{t:03d}") for t, _ in bad}
    # checked, untimed: the answer is the one the generator implies
    report = impact(
        paths[bad[0][0]], from_version=bad[0][1], to_version=bad[0][1], tracking_uri=tracking_uri
    )
    expect_runs = sum(min(k + 2, tables) for k in range(LEVELS))
    depth = max(m["depth"] for m in report.model_versions)
    ok = (
        len(report.runs) == expect_runs
        and depth == LEVELS
        and len(report.model_versions) == min(LEVELS + 1, tables)
        and len(report.model_versions[0]["path"]) == 2 * LEVELS + 1
    )
    print(
        f"reached: {len(report.runs)} runs (expected {expect_runs}), "
        f"{len(report.model_versions)} model versions, {len(report.written)} written versions, "
        f"deepest path {len(report.model_versions[0]['path'])} hops"
    )
    with engine.connect() as conn:
        one_hop(conn, normalize_uri(paths[bad[0][0]]), bad[0][1])
        transitive_ms, hop_ms = [], []
        for t, v in bad:
            t0 = time.perf_counter()
            impact(paths[t], from_version=v, to_version=v, tracking_uri=tracking_uri)
            t1 = time.perf_counter()
            one_hop(conn, normalize_uri(paths[t]), v)
            t2 = time.perf_counter()
            transitive_ms.append((t1 - t0) * 1000)
            hop_ms.append((t2 - t1) * 1000)
    engine.dispose()
    transitive, hop = median(transitive_ms), median(hop_ms)
    print(f"transitive impact (API, {LEVELS} levels): median {transitive:.2f} ms over {reps}")
    print(f"one-hop query (SQL):                 median {hop:.2f} ms over {reps}")
    print(f"ratio transitive / one hop: {ratio(transitive, hop):.1f}x")
    print(f"target transitive <= {TARGET_MS:.0f} ms: {verdict(transitive <= TARGET_MS)}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(run_main(main))
