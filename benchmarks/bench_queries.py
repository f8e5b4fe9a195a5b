"""Lineage queries on a large registry: the plugin's index against what stock MLflow can do.

The data (``registry_data.py``; generated once, cached under ``<workdir>/queries/``):
100,000 runs reading 10 versions each of 200 Delta tables of 1,000 versions (1,000,000 run ->
table-version edges), 10,000 model versions of 500 registered models with their stage and
alias history, the plugin's tags on all of them and its index filled.

Queries, each answered three ways when it can be, and checked to agree before timing:

- **impact**: which runs and model versions read table T between versions N and M, and which
  aliases/stages those model versions hold now;
- **model timeline**: all registrations and alias/stage events of model X plus the runs
  behind its versions, in time order;
- **table window**: all runs that read table T in a 30-day window.

``plugin API``: ``lineage_plugin.queries.impact/timeline`` (when they exist; the timeline also
reads the Delta logs for commit entries). ``index SQL``: the same question as SQLAlchemy Core
queries over the index tables (what the API costs without its extras). ``stock``: MLflow's
client only: ``search_runs`` over all experiments with a ``LIKE`` filter on
``lineage.tables`` (max_results 50,000, paged), versions parsed in Python, then
``search_model_versions`` with ``run_id IN (...)`` batches; the model timeline reads the
``lineage.event.*`` tags from ``search_model_versions`` (stock MLflow keeps no history).

Median ms over 20 warm, interleaved repetitions (after one untimed call; an answer slower
than 1 s gets 5), ratio stock / plugin, and the target: plugin <= 100 ms per query. PASS/MISS
is printed; the exit code is 0 either way (non-zero only when the answers disagree or the data
is wrong).

    python benchmarks/bench_queries.py              # full size (first run: generates, cached)
    python benchmarks/bench_queries.py --quick      # 1/10 of the data, 5 repetitions
    python benchmarks/bench_queries.py --regenerate # throw the cached data away first
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from registry_data import World

TARGET_MS = 100.0
MV_FILTER_BATCH = 100  # run ids per search_model_versions / search_runs IN (...) filter
SLOW_MS = 1000.0  # an answer slower than this is repeated max(5, reps // 4) times only


# --------------------------------------------------------------------------- the questions


@dataclass(frozen=True)
class Questions:
    table: int
    from_version: int
    to_version: int
    model: int
    since: int
    until: int


def questions(world: World) -> Questions:
    from registry_data import DAY, T0

    v = world.s.table_versions
    since = T0 + 180 * DAY
    return Questions(
        table=17 % world.s.tables,
        from_version=v // 2,
        to_version=v // 2 + 20,
        model=42 % world.s.models,
        since=since,
        until=since + 30 * DAY,
    )


# plugin: the index, with SQLAlchemy Core -----------------------------------------------------


def sql_impact(engine, uri: str, lo: int, hi: int):
    """(run ids, {(model, version): (stage, aliases)}) from the index tables."""
    from sqlalchemy import select

    from lineage_plugin.store.index_schema import tables

    t = tables()
    reads, runs, mvs, holdings = t["reads"], t["runs"], t["model_versions"], t["holdings"]
    readers = (
        select(reads.c.run_id)
        .where(reads.c.table_uri == uri, reads.c.version >= lo, reads.c.version <= hi)
        .distinct()
    )
    with engine.connect() as conn:
        run_rows = conn.execute(
            select(runs.c.run_id, runs.c.start_time, runs.c.experiment_id).where(
                runs.c.run_id.in_(readers)
            )
        ).all()
        mv_rows = conn.execute(
            select(mvs.c.name, mvs.c.version, mvs.c.run_id).where(
                mvs.c.run_id.in_(readers), mvs.c.deleted == 0
            )
        ).all()
        held_rows = conn.execute(
            select(holdings.c.name, holdings.c.version, holdings.c.kind, holdings.c.label)
            .join(mvs, (mvs.c.name == holdings.c.name) & (mvs.c.version == holdings.c.version))
            .where(mvs.c.run_id.in_(readers))
        ).all()
    held: dict[tuple[str, int], list[tuple[str, str]]] = {}
    for n, v, kind, label in held_rows:
        held.setdefault((n, v), []).append((kind, label))
    versions = {}
    for n, v, _ in mv_rows:
        h = held.get((n, v), [])
        stage = next((label for kind, label in h if kind == "stage"), None)
        versions[(n, v)] = (stage, tuple(sorted(label for kind, label in h if kind == "alias")))
    return {r.run_id for r in run_rows}, versions


def sql_model_timeline(engine, name: str):
    """Registrations, events and runs of one model, in time order."""
    from sqlalchemy import select

    from lineage_plugin.store.index_schema import tables

    t = tables()
    mvs, runs, events = t["model_versions"], t["runs"], t["events"]
    with engine.connect() as conn:
        versions = conn.execute(
            select(mvs.c.version, mvs.c.created, mvs.c.run_id).where(mvs.c.name == name)
        ).all()
        run_rows = conn.execute(
            select(runs.c.run_id, runs.c.start_time).where(
                runs.c.run_id.in_(select(mvs.c.run_id).where(mvs.c.name == name))
            )
        ).all()
        event_rows = conn.execute(
            select(events.c.event_id, events.c.kind, events.c.time, events.c.version).where(
                events.c.name == name
            )
        ).all()
    entries = [(r.start_time, 0, "run", r.run_id) for r in run_rows]
    entries += [(v.created, 1, "registration", f"{name}/{v.version}") for v in versions]
    entries += [(e.time, 2, e.kind, e.event_id) for e in event_rows]
    return sorted(entries)


def sql_table_window(engine, uri: str, since: int, until: int):
    """Run ids (in start-time order) of the runs that read a table in a window."""
    from sqlalchemy import select

    from lineage_plugin.store.index_schema import tables

    t = tables()
    reads, runs = t["reads"], t["runs"]
    with engine.connect() as conn:
        rows = conn.execute(
            select(runs.c.run_id, runs.c.start_time)
            .where(
                runs.c.run_id.in_(select(reads.c.run_id).where(reads.c.table_uri == uri)),
                runs.c.start_time >= since,
                runs.c.start_time <= until,
            )
            .order_by(runs.c.start_time, runs.c.run_id)
        ).all()
    return [r.run_id for r in rows]


# plugin: the public API ----------------------------------------------------------------------


def api_functions():
    """``(impact, timeline)`` from ``lineage_plugin.queries``, or ``None`` for each missing."""
    try:
        import lineage_plugin.queries as Q
    except ImportError:
        return None, None
    return getattr(Q, "impact", None), getattr(Q, "timeline", None)


def api_impact_answer(report):
    runs = {r["run_id"] for r in report.runs}
    versions = {
        (m["name"], int(m["version"])): (m.get("stage"), tuple(sorted(m.get("aliases") or ())))
        for m in report.model_versions
    }
    return runs, versions


def api_model_timeline_answer(report):
    out = []
    order = {"run": 0, "registration": 1}
    for e in report.entries:
        kind = e["kind"]
        if kind == "run":
            out.append((e["time_ms"], 0, kind, e["run_id"]))
        elif kind == "registration":
            out.append((e["time_ms"], 1, kind, f"{e['model']}/{e['version']}"))
        elif kind in ("stage_transition", "alias_set", "alias_deleted"):
            out.append((e["time_ms"], order.get(kind, 2), kind, e["event_id"]))
    return sorted(out)


def api_table_window_answer(report):
    runs = sorted((e["time_ms"], e["run_id"]) for e in report.entries if e["kind"] == "run")
    return [r for _, r in runs]


# stock MLflow ----------------------------------------------------------------------------------


def _all_experiment_ids(client) -> list[str]:
    ids, token = [], None
    while True:
        page = client.search_experiments(max_results=1000, page_token=token)
        ids.extend(e.experiment_id for e in page)
        token = page.token
        if not token:
            return ids


def _search_runs_all(client, experiment_ids, filter_string, order_by=None):
    runs, token = [], None
    while True:
        page = client.search_runs(
            experiment_ids,
            filter_string=filter_string,
            max_results=50_000,
            order_by=order_by,
            page_token=token,
        )
        runs.extend(page)
        token = page.token
        if not token:
            return runs


def _versions_read(run, name: str) -> list[int]:
    """The versions of table ``name`` in a run's ``lineage.tables`` summary."""
    out = []
    for label in run.data.tags.get("lineage.tables", "").split(", "):
        table, sep, version = label.rpartition("@v")
        if sep and table == name and version.isdigit():
            out.append(int(version))
    return out


def _quote(values) -> str:
    return ", ".join(f"'{v}'" for v in values)


def stock_impact(client, name: str, lo: int, hi: int):
    experiment_ids = _all_experiment_ids(client)
    candidates = _search_runs_all(
        client, experiment_ids, f"tags.`lineage.tables` LIKE '%{name}@v%'"
    )
    hits = {
        r.info.run_id for r in candidates if any(lo <= v <= hi for v in _versions_read(r, name))
    }
    versions = {}
    ordered = sorted(hits)
    for start in range(0, len(ordered), MV_FILTER_BATCH):
        batch = ordered[start : start + MV_FILTER_BATCH]
        for mv in client.search_model_versions(f"run_id IN ({_quote(batch)})", max_results=10_000):
            stage = mv.current_stage if mv.current_stage != "None" else None
            versions[(mv.name, int(mv.version))] = (stage, tuple(sorted(mv.aliases or ())))
    return hits, versions


def stock_model_timeline(client, name: str):
    from lineage_plugin.events import events_from_tags

    versions = client.search_model_versions(f"name = '{name}'", max_results=10_000)
    model = client.get_registered_model(name)  # events of deleted versions live on the model
    entries = []
    events = events_from_tags(dict(model.tags or {}))
    for mv in versions:
        entries.append((mv.creation_timestamp, 1, "registration", f"{name}/{mv.version}"))
        events.extend(events_from_tags(dict(mv.tags or {})))
    entries += [(e.time, 2, e.kind, e.event_id) for e in events]
    run_ids = sorted({mv.run_id for mv in versions if mv.run_id})
    experiment_ids = _all_experiment_ids(client)
    for start in range(0, len(run_ids), MV_FILTER_BATCH):
        batch = run_ids[start : start + MV_FILTER_BATCH]
        for run in _search_runs_all(
            client, experiment_ids, f"attributes.run_id IN ({_quote(batch)})"
        ):
            entries.append((run.info.start_time, 0, "run", run.info.run_id))
    return sorted(entries)


def stock_table_window(client, name: str, since: int, until: int):
    experiment_ids = _all_experiment_ids(client)
    runs = _search_runs_all(
        client,
        experiment_ids,
        f"tags.`lineage.tables` LIKE '%{name}@v%' AND attributes.start_time >= {since} "
        f"AND attributes.start_time <= {until}",
        order_by=["attributes.start_time ASC"],
    )
    hits = [(r.info.start_time, r.info.run_id) for r in runs if _versions_read(r, name)]
    return [r for _, r in sorted(hits)]


# --------------------------------------------------------------------------- timing


def timed(fn, reps: int) -> tuple[list[float], object]:
    """One untimed call, then ``reps`` timed ones; (ms list, last answer)."""
    answer = fn()
    out = []
    for _ in range(reps):
        t0 = time.perf_counter()
        answer = fn()
        out.append((time.perf_counter() - t0) * 1000)
    return out, answer


def interleaved(fns: dict[str, object], reps: int) -> dict[str, list[float]]:
    """Each function once untimed, then rounds of one call of each (order alternating).

    A function whose untimed call takes over ``SLOW_MS`` gets ``max(5, reps // 4)``
    repetitions instead of ``reps``, so one slow answer cannot push the script past its
    time budget; the table shows each row's count.
    """
    counts = {}
    for name, fn in fns.items():
        t0 = time.perf_counter()
        fn()
        slow = (time.perf_counter() - t0) * 1000 > SLOW_MS
        counts[name] = max(5, reps // 4) if slow else reps
    out: dict[str, list[float]] = {k: [] for k in fns}
    names = list(fns)
    for rep in range(max(counts.values())):
        for name in names if rep % 2 == 0 else names[::-1]:
            if rep >= counts[name]:
                continue
            t0 = time.perf_counter()
            fns[name]()
            out[name].append((time.perf_counter() - t0) * 1000)
    return out


def _same(what: str, answers: dict[str, object]) -> None:
    items = list(answers.items())
    base_name, base = items[0]
    for name, other in items[1:]:
        if other != base:
            detail = ""
            if isinstance(base, tuple) and isinstance(other, tuple):
                detail = "; ".join(
                    f"part {i}: only in {base_name}: {_short(_diff(a, b))}, only in {name}: "
                    f"{_short(_diff(b, a))}"
                    for i, (a, b) in enumerate(zip(base, other, strict=True))
                    if a != b
                )
            else:
                detail = (
                    f"only in {base_name}: {_short(_diff(base, other))}, "
                    f"only in {name}: {_short(_diff(other, base))}"
                )
            raise SystemExit(f"{what}: {base_name} and {name} disagree: {detail}")


def _diff(a, b):
    if isinstance(a, dict):
        return {k: v for k, v in a.items() if b.get(k) != v}
    return [x for x in a if x not in set(b)] if isinstance(a, list) else set(a) - set(b)


def _short(value) -> str:
    text = repr(value)
    return text if len(text) < 300 else text[:300] + "..."


# --------------------------------------------------------------------------- main


def main() -> int:
    import argparse
    import logging

    import common as C
    import registry_data as D

    C.clean_this_process_env()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="1/10 of the data, 5 repetitions")
    parser.add_argument("--reps", type=int, help="timed repetitions per query (default 20)")
    parser.add_argument("--workdir", help=f"cache directory (default {C.DEFAULT_WORKDIR})")
    parser.add_argument("--regenerate", action="store_true", help="generate the data again")
    args = parser.parse_args()
    scale = D.QUICK if args.quick else D.FULL
    reps = args.reps or (5 if args.quick else 20)

    logging.getLogger("mlflow").setLevel(logging.ERROR)
    wd = C.workdir(args.workdir)
    started = time.perf_counter()
    db, facts = D.ensure_data(wd, scale, args.regenerate)
    counts = D.check_data(db, scale)
    world = D.World(scale, str(D.data_root(wd, scale) / "lake"))
    size_mb = os.path.getsize(db) / 1e6

    print(
        f"queries: {scale.runs:,} runs, {counts['index reads (edges)']:,} run -> table-version "
        f"edges ({scale.tables} tables x {scale.table_versions} versions), "
        f"{counts['model versions']:,} model versions ({scale.models} models), "
        f"{counts['index events']:,} registry events"
    )
    print(
        f"data: {db} ({size_mb:,.0f} MB); generated in {facts['seconds_total']} s "
        f"(delta logs {facts['seconds_delta_logs']} s, runs + tags {facts['seconds_runs']} s, "
        f"registry {facts['seconds_registry']} s, index {facts['index']['seconds']} s by "
        f"{facts['index']['how']})"
    )
    print("rows: " + ", ".join(f"{k} {v:,}" for k, v in counts.items()) + f"; {reps} repetitions")

    from mlflow.tracking import MlflowClient
    from sqlalchemy import create_engine

    q = questions(world)
    table_name, table_uri = world.names[q.table], world.uris[q.table]
    model_name = world.model_name(q.model)
    plugin_uri = f"lineage+sqlite:///{db}"
    client = MlflowClient(tracking_uri=f"sqlite:///{db}", registry_uri=f"sqlite:///{db}")
    engine = create_engine(f"sqlite:///{db}")
    api_impact, api_timeline = api_functions()

    def api_impact_fn():
        report = api_impact(
            table_uri, from_version=q.from_version, to_version=q.to_version, tracking_uri=plugin_uri
        )
        return api_impact_answer(report)

    def api_model_fn():
        return api_model_timeline_answer(api_timeline(model=model_name, tracking_uri=plugin_uri))

    def api_window_fn():
        report = api_timeline(
            table=table_uri, since=q.since, until=q.until, tracking_uri=plugin_uri
        )
        return api_table_window_answer(report)

    # query: (label, index SQL, plugin API or None, stock)
    cases = {
        "impact": (
            f"impact: {table_name} v{q.from_version}..v{q.to_version}",
            lambda: sql_impact(engine, table_uri, q.from_version, q.to_version),
            api_impact_fn if api_impact else None,
            lambda: stock_impact(client, table_name, q.from_version, q.to_version),
        ),
        "model": (
            f"timeline --model {model_name}",
            lambda: sql_model_timeline(engine, model_name),
            api_model_fn if api_timeline else None,
            lambda: stock_model_timeline(client, model_name),
        ),
        "window": (
            f"timeline --table {table_name}, 30 days",
            lambda: sql_table_window(engine, table_uri, q.since, q.until),
            api_window_fn if api_timeline else None,
            lambda: stock_table_window(client, table_name, q.since, q.until),
        ),
    }

    print()
    rows = []
    sizes = {}
    for key, (label, sql_fn, api_fn, stock_fn) in cases.items():
        answers = {"index SQL": sql_fn(), "stock": stock_fn()}
        if api_fn:
            answers = {"plugin API": api_fn(), **answers}
        _same(label, answers)
        sizes[key] = answers["index SQL"]
        fns = {"index SQL": sql_fn, "stock": stock_fn}
        if api_fn:
            fns = {"plugin API": api_fn, **fns}
        times = interleaved(fns, reps)
        stock_ms = C.median(times["stock"])
        for arm in fns:
            ms = C.median(times[arm])
            q1, q3 = C.quartiles(times[arm])
            plugin = arm != "stock"
            rows.append(
                [
                    label if arm == next(iter(fns)) else "",
                    arm,
                    len(times[arm]),
                    ms,
                    f"{q1:.1f}-{q3:.1f}",
                    C.ratio(stock_ms, ms) if plugin else "",
                    C.verdict(ms <= TARGET_MS) if plugin else "",
                ]
            )
        print(f"  {label}: answers agree ({_describe(key, sizes[key])}); timed", flush=True)
    print()
    print(
        f"Median ms over n warm repetitions (interleaved, after one untimed call each; n = "
        f"{reps}, or max(5, {reps} // 4) for an answer slower than {SLOW_MS:.0f} ms):"
    )
    C.print_table(
        ["query", "answered by", "n", "median ms", "IQR", "stock/plugin", f"<= {TARGET_MS:.0f} ms"],
        rows,
    )
    print(
        "plugin API = lineage_plugin.queries (the timeline also reads the tables' Delta logs "
        "for commit entries); index SQL = the same question as SQLAlchemy Core over the "
        "lineage_* tables; stock = MlflowClient search_runs / search_model_versions only."
    )
    if api_timeline:
        scans = commit_scans(table_uri, q)
        for label, n_tables, files, ms in scans:
            print(
                f"  {label}: the API scans the Delta logs of {n_tables} table(s) ({files:,} "
                f"commit files) for commit entries: {ms:.0f} ms of its time "
                "(delta.history.commits_in_window, best of 3)"
            )
    if not api_impact or not api_timeline:
        print(
            "note: lineage_plugin.queries.impact/timeline not found; the plugin rows are the "
            "index SQL only."
        )
    print(f"measured in {time.perf_counter() - started:.0f} s")
    return 0


def commit_scans(table_uri: str, q: Questions, reps: int = 3):
    """What the table timeline spends reading the Delta log: [(label, tables, commit files, ms)].

    (The model timeline reads only the commits of the table versions its runs read.)
    """
    try:
        from lineage_plugin.delta.history import commits_in_window
    except ImportError:
        return []
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        commits_in_window(table_uri, since=q.since, until=q.until)
        times.append((time.perf_counter() - t0) * 1000)
    files = len(os.listdir(os.path.join(table_uri[len("file://") :], "_delta_log")))
    return [("timeline --table (30 days)", 1, files, min(times))]


def _describe(key: str, answer) -> str:
    if key == "impact":
        runs, versions = answer
        held = sum(1 for stage, aliases in versions.values() if stage or aliases)
        return f"{len(runs)} runs, {len(versions)} model versions, {held} holding a stage/alias"
    if key == "model":
        kinds: dict[str, int] = {}
        for _, _, kind, _ in answer:
            kinds[kind] = kinds.get(kind, 0) + 1
        return ", ".join(f"{n} {k}" for k, n in sorted(kinds.items()))
    return f"{len(answer)} runs"


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from common import run_main

    sys.exit(run_main(main))
