"""Server time of the registry UI's pages on a large model and a large table (issue 14).

The data (generated once with ``registry_data.py``'s machinery, cached under
``<workdir>/ui/``): one registered model of 500 versions with 5,000 stage and alias events (10 per
version, within 8 hours of its registration: it takes ``@latest``, goes to Staging, takes
``@candidate``, ``@shadow`` and ``@challenger``, loses ``@challenger``, goes to Production with
archive_existing_versions (archiving the one before), takes ``@champion`` and loses
``@candidate``; version 1 also takes ``@baseline``), planned by ``lineage_plugin.events`` and
written as the plugin's tags; and one Delta table of 10,000 commits (a local ``_delta_log`` of
commit files, checkpointed every 100 commits by deltalake) read by 100,000 runs, one read each
(100,000 run -> table-version edges). Each model version comes from a distinct run. The lineage
index is filled by ``lineage_plugin.queries.reindex``.

Everything runs in this process, through Flask's test client on MLflow's own Flask app
(``mlflow.server.app``) with ``lineage_plugin.ui.app.install`` applied: the app a
``mlflow server --app-name lineage --backend-store-uri lineage+sqlite:///...`` serves, minus the
socket. The backend is given as ``mlflow server`` gives it (``_MLFLOW_SERVER_FILE_STORE``).
Timed: the whole request, routing, queries, rendering and the response body included.

Pages:

- ``GET /lineage/models/<name>``: the versions with their data and holdings (the newest 25 and
  those in use: ``?versions=all`` lists all 500), the history picture of those (replayed from
  all 5,000 events) and the newest 200 rows of the history table;
- ``GET /lineage/models/<name>?at=<time>``: the same plus what each alias and stage held then
  (the time is the middle of the model's history);
- ``GET /lineage/tables/<table id>``: the first page, the newest 50 versions with their commits
  and every run that read them, with the runs' model versions;
- ``GET /lineage/tables/<table id>?version=N``: the same plus the impact of version N onwards,
  N being the oldest version on the first page (the version a user clicks to ask what a bad
  write reached).

The stock calls, on the same client (the same server), answer the nearest question MLflow can:

- model page: ``GET /api/2.0/mlflow/registered-models/get`` (the model, its latest versions
  and aliases: what the stock model page loads first) and ``GET
  /api/2.0/mlflow/model-versions/search?filter=name='<name>'`` with ``max_results`` 200,000 (the
  most MLflow allows), every page: all versions with their tags. Stock MLflow keeps no history,
  so the plugin's ``lineage.event.*`` tags in that answer are the nearest thing to the
  page's history. The ``?at=`` page is compared with the same calls (stock has no "as of").
- table page: ``POST /ajax-api/2.0/mlflow/runs/search`` over every experiment with
  ``tags.`lineage.tables` LIKE '%<name>@v%'``, newest first, ``max_results`` = the number of
  readers the page lists: the newest readers of the table, as many as the page shows. MLflow
  has no notion of table versions; this tag search is how a stock user finds readers.
- table page with impact: the same search for every run that started after version N's
  commit (``max_results`` 50,000, every page), then ``GET
  /api/2.0/mlflow/model-versions/search?filter=run_id IN (...)`` in batches of 100 run ids:
  the runs and model versions after the bad write (approximate: a run that started later may
  have read an older version).

Each call gets untimed warm-up rounds (``--warmup``, 2), then ``--reps`` rounds (20, 5 with
``--quick``) of every call, the order alternating, with a full garbage collection (untimed)
before each. Printed: the median wall ms and IQR per call, the median CPU ms of this thread
(on a busy machine the gap is time spent waiting for a core), page / stock (the sum of the stock
calls the page is compared with), and the load average. Target: every page
<= 100 ms (median). PASS/MISS is printed; the exit code is 0 either way, and non-zero only when a
page or call fails or the data is wrong.

    python benchmarks/bench_ui_pages.py [--quick] [--reps N] [--warmup N] [--profile]
                                        [--workdir DIR] [--regenerate]
"""

from __future__ import annotations

import os
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass

TARGET_MS = 100.0
EVENTS_PER_VERSION = 10
MV_FILTER_BATCH = 100  # run ids per model-versions/search filter
RUNS_MAX = 50_000  # SEARCH_MAX_RESULTS_THRESHOLD of runs/search
MODEL_VERSIONS_MAX = 200_000  # the most max_results model-versions/search takes
SLOW_MS = 1000.0  # a call slower than this gets max(5, reps // 4) rounds
HOUR = 3_600_000
MINUTE = 60_000


def scales():
    """(full, quick): one table read once by every run, one model."""
    from registry_data import Scale

    full = Scale(100_000, 1, 10_000, 1, 1, 500, 5, 365)
    quick = Scale(10_000, 1, 1_000, 1, 1, 50, 2, 365)
    return full, quick


def retraining_history(world, model: int, records: dict, created: list[int]):
    """Ten events per version, within 8 hours of its registration (see the module doc)."""
    from registry_data import History

    h = History(world, model)
    for k in range(world.s.versions_per_model):
        v = str(k + 1)
        h.register(v, records[world.mv_run_index(model, k)])
        t = created[k]
        h.alias_set("latest", v, t + MINUTE)
        h.transition(v, "Staging", False, t + 10 * MINUTE)
        h.alias_set("candidate", v, t + 15 * MINUTE)
        h.alias_set("shadow", v, t + HOUR)
        h.alias_set("challenger", v, t + 2 * HOUR)
        h.alias_delete("challenger", t + 4 * HOUR)
        h.transition(v, "Production", True, t + 6 * HOUR)  # archives the one before: 2 events
        h.alias_set("champion", v, t + 6 * HOUR + 5 * MINUTE)
        h.alias_delete("candidate", t + 6 * HOUR + 10 * MINUTE)
        if k == 0:
            h.alias_set("baseline", v, t + 8 * HOUR)
    return h.result()


# --------------------------------------------------------------------------- the calls


class Server:
    """MLflow's Flask app with the lineage pages, serving one database, and its test client."""

    def __init__(self, db: str) -> None:
        from mlflow.server.constants import BACKEND_STORE_URI_ENV_VAR

        os.environ[BACKEND_STORE_URI_ENV_VAR] = f"lineage+sqlite:///{db}"
        # A lineage+ server runs without MLflow's job runner; this silences the notice saying so.
        os.environ["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"
        warnings.filterwarnings("ignore", message="starlette.middleware.wsgi is deprecated")
        from lineage_plugin.ui.app import install
        from mlflow.server import app

        self.client = install(app).test_client()

    def get(self, path: str, **params):
        response = self.client.get(path, query_string=params or None)
        if response.status_code != 200:
            raise SystemExit(f"GET {path} {params}: {response.status_code}\n{response.text[:2000]}")
        return response

    def post(self, path: str, body: dict):
        response = self.client.post(path, json=body)
        if response.status_code != 200:
            raise SystemExit(f"POST {path}: {response.status_code}\n{response.text[:2000]}")
        return response.get_json()

    def model_versions(self, filter_string: str) -> list[dict]:
        """Every page of ``model-versions/search``."""
        out, token = [], None
        while True:
            params = {"filter": filter_string, "max_results": MODEL_VERSIONS_MAX}
            if token:
                params["page_token"] = token
            page = self.get("/api/2.0/mlflow/model-versions/search", **params).get_json()
            out.extend(page.get("model_versions", []))
            token = page.get("next_page_token")
            if not token:
                return out

    def runs(self, experiments: list[str], filter_string: str, limit: int | None) -> list[dict]:
        """``runs/search``, newest first: one page of ``limit`` runs, or every page."""
        out, token = [], None
        while True:
            body = {
                "experiment_ids": experiments,
                "filter": filter_string,
                "order_by": ["attributes.start_time DESC"],
                "max_results": limit or RUNS_MAX,
            }
            if token:
                body["page_token"] = token
            page = self.post("/ajax-api/2.0/mlflow/runs/search", body)
            out.extend(page.get("runs", []))
            token = page.get("next_page_token")
            if limit or not token:
                return out


def facts_of(db: str, world) -> dict:
    """The model, table, moment and version the pages are asked about (read untimed)."""
    import sqlite3
    from datetime import datetime, timezone

    con = sqlite3.connect(db)
    try:
        times = [t for (t,) in con.execute("SELECT time FROM lineage_events ORDER BY event_id")]
        latest = world.s.table_versions - 1
        chosen = max(latest - 49, 0)
        experiments = [str(e) for (e,) in con.execute("SELECT experiment_id FROM experiments")]
    finally:
        con.close()
    at = datetime.fromtimestamp(times[len(times) // 2] / 1000, tz=timezone.utc)
    return {
        "model": world.model_name(0),
        "table": world.names[0],
        "table_id": world.ids[0],
        "at": at.strftime("%Y-%m-%dT%H:%M:%S"),
        "version": chosen,
        "version_ts": world.commit_ts(0, chosen),
        "experiments": experiments,
        "events": len(times),
    }


@dataclass(frozen=True)
class Call:
    """One request to time: a page (compared with the stock calls ``against``) or a stock call."""

    label: str
    call: Callable[[], object]  # returns what is checked and printed (a size or a count)
    against: tuple[str, ...] = ()

    @property
    def page(self) -> bool:
        return bool(self.against)


def calls(server: Server, f: dict, readers: int) -> list[Call]:
    """The pages and the stock calls, in the order they are timed."""
    model, ref, version = f["model"], f["table_id"], f["version"]
    like = f"tags.`lineage.tables` LIKE '%{f['table']}@v%'"

    def page(path: str, **params):
        return lambda: len(server.get(path, **params).data)

    def registered_model():
        answer = server.get("/api/2.0/mlflow/registered-models/get", name=model).get_json()
        return len(answer["registered_model"].get("aliases", []))

    def stock_impact():
        runs = server.runs(
            f["experiments"], f"{like} AND attributes.start_time >= {f['version_ts']}", None
        )
        ids = sorted(r["info"]["run_id"] for r in runs)
        found = 0
        for start in range(0, len(ids), MV_FILTER_BATCH):
            batch = ", ".join(f"'{i}'" for i in ids[start : start + MV_FILTER_BATCH])
            found += len(server.model_versions(f"run_id IN ({batch})"))
        return f"{len(runs)} runs, {found} model versions"

    model_page, table_page = f"/lineage/models/{model}", f"/lineage/tables/{ref}"
    get_model, versions = "stock registered-models/get", "stock model-versions/search name="
    newest, after = f"stock runs/search LIKE, newest {readers}", "stock impact: runs + versions"
    model_stock = (get_model, versions)
    return [
        Call("page /lineage/models/<name>", page(model_page), model_stock),
        Call("page /lineage/models/<name>?at=", page(model_page, at=f["at"]), model_stock),
        Call(get_model, registered_model),
        Call(versions, lambda: len(server.model_versions(f"name = '{model}'"))),
        Call("page /lineage/tables/<id>", page(table_page), (newest,)),
        Call(
            "page /lineage/tables/<id>?version=N",
            page(table_page, version=version),
            (newest, after),
        ),
        Call(newest, lambda: len(server.runs(f["experiments"], like, readers))),
        Call(after, stock_impact),
    ]


def time_calls(
    todo: list[Call], reps: int, warmup: int
) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """``warmup`` untimed rounds, then ``reps`` rounds of every call, the order alternating.

    A call whose warm-up took over ``SLOW_MS`` (the stock searches) gets ``max(5, reps // 4)``
    rounds only, as in ``bench_queries.py``. A full garbage collection runs (untimed) before
    each call, so that a call does not pay for the garbage the one before it left (a stock
    search of thousands of runs leaves a lot).

    Returns:
        Per call, the ms of each timed round: wall time, and this thread's CPU time (the
        request runs in this thread; on a busy machine the wall time also holds the time the
        thread waited for a core).
    """
    import gc

    wall: dict[str, list[float]] = {c.label: [] for c in todo}
    cpu: dict[str, list[float]] = {c.label: [] for c in todo}
    rounds = {c.label: reps for c in todo}
    for rep in range(-warmup, reps):
        for c in todo if rep % 2 == 0 else todo[::-1]:
            if rep >= rounds[c.label]:
                continue
            gc.collect()
            t0, c0 = time.perf_counter(), time.thread_time()
            c.call()
            ms = (time.perf_counter() - t0) * 1000
            if rep >= 0:
                wall[c.label].append(ms)
                cpu[c.label].append((time.thread_time() - c0) * 1000)
            elif ms > SLOW_MS:
                rounds[c.label] = max(5, reps // 4)
    return wall, cpu


# --------------------------------------------------------------------------- main


def main() -> int:
    import argparse
    import logging

    import common as C
    import registry_data as D

    C.clean_this_process_env()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="1/10 of the data, 5 repetitions")
    parser.add_argument("--reps", type=int, help="timed rounds (default 20, 5 with --quick)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed rounds first (default 2)")
    parser.add_argument("--profile", action="store_true", help="cProfile each page once")
    parser.add_argument("--workdir", help=f"cache directory (default {C.DEFAULT_WORKDIR})")
    parser.add_argument("--regenerate", action="store_true", help="generate the data again")
    args = parser.parse_args()
    full, quick = scales()
    scale = quick if args.quick else full
    reps = args.reps or (5 if args.quick else 20)

    logging.getLogger("mlflow").setLevel(logging.ERROR)
    wd = C.workdir(args.workdir)
    started = time.perf_counter()
    db, facts = D.ensure_data(
        wd,
        scale,
        args.regenerate,
        subdir="ui",
        history=retraining_history,
        checkpoint_every=C.CHECKPOINT_INTERVAL,
    )
    counts = D.check_data(db, scale)
    world = D.World(scale, str(D.data_root(wd, scale, "ui") / "lake"))
    f = facts_of(db, world)
    want_events = scale.versions_per_model * EVENTS_PER_VERSION
    if f["events"] != want_events:
        raise SystemExit(f"generated data is wrong: {f['events']} events, wanted {want_events}")
    print(
        f"ui pages: model {f['model']} with {counts['model versions']:,} versions and "
        f"{f['events']:,} events; table {f['table']} with {scale.table_versions:,} commits and "
        f"{counts['index reads (edges)']:,} reads by {scale.runs:,} runs"
    )
    print(f"machine: {busy()} at the start")
    print(
        f"data: {db} ({os.path.getsize(db) / 1e6:,.0f} MB); generated in "
        f"{facts['seconds_total']} s (index {facts['index']['seconds']} s by "
        f"{facts['index']['how']}); {reps} rounds after {args.warmup} warm-up round(s)"
    )

    server = Server(db)
    table = server.get(f"/lineage/api/tables/{f['table_id']}").get_json()
    readers = sum(len(v.get("readers", [])) for v in table["versions"])
    if table.get("latest") != scale.table_versions - 1 or len(table["versions"]) != 50:
        raise SystemExit(f"the table page shows {table.get('latest')} / {len(table['versions'])}")
    todo = calls(server, f, readers)
    answers = {c.label: c.call() for c in todo}
    print(
        f"asked: model {f['model']}, as of {f['at']} UTC; table {f['table_id']} (newest 50 "
        f"versions, {readers} readers), impact of v{f['version']} onwards"
    )
    print("answers: " + "; ".join(f"{c.label}: {answers[c.label]}" for c in todo if not c.page))
    print("page sizes: " + "; ".join(f"{c.label}: {answers[c.label]:,} B" for c in todo if c.page))
    if args.profile:
        profile(todo)
    times, cpu = time_calls(todo, reps, args.warmup)
    medians = {c.label: C.median(times[c.label]) for c in todo}

    number = {c.label: str(i + 1) for i, c in enumerate(todo)}
    rows = []
    for c in todo:
        q1, q3 = C.quartiles(times[c.label])
        ms, stock = medians[c.label], sum(medians[s] for s in c.against)
        rows.append(
            [
                f"{number[c.label]}. {c.label}",
                len(times[c.label]),
                ms,
                f"{q1:.1f}-{q3:.1f}",
                C.median(cpu[c.label]),
                " + ".join(number[s] for s in c.against),
                C.ratio(ms, stock) if c.page else "",
                C.verdict(ms <= TARGET_MS) if c.page else "",
            ]
        )
    print()
    print(
        f"Median ms per request over n rounds (Flask test client, in this process; n = {reps}, "
        f"or max(5, {reps} // 4) for a call slower than {SLOW_MS:.0f} ms):"
    )
    C.print_table(
        [
            "request",
            "n",
            "median ms",
            "IQR",
            "CPU ms",
            "stock",
            "page/stock",
            f"<= {TARGET_MS:.0f} ms",
        ],
        rows,
    )
    print(
        "median ms: wall time of the request; CPU ms: this thread's CPU time in it (median); "
        "stock: the stock calls (by number) a page is compared with, page/stock their sum."
    )
    print(f"machine: {busy()} at the end, on {os.cpu_count()} CPUs")
    slow = [c.label for c in todo if c.page and medians[c.label] > TARGET_MS]
    if slow:
        print("over 100 ms: " + ", ".join(slow))
    print(f"measured in {time.perf_counter() - started:.0f} s")
    C.emit_result(
        {
            "scale": scale.key,
            "reps": reps,
            "median_ms": {k: round(v, 2) for k, v in medians.items()},
            "median_cpu_ms": {k: round(C.median(v), 2) for k, v in cpu.items()},
            "over_target": slow,
        }
    )
    return 0


def busy() -> str:
    """How busy the machine is: the 1-minute load average and, where Linux reports it, the share
    of the last minute in which some task waited for a CPU (/proc/pressure/cpu)."""
    out = f"load average {os.getloadavg()[0]:.2f}" if hasattr(os, "getloadavg") else "load n/a"
    try:
        with open("/proc/pressure/cpu", encoding="ascii") as fh:
            fields = dict(f.split("=") for f in fh.readline().split()[1:])
        out += f", CPU pressure {float(fields['avg60']):.0f}% (some task waiting, last 60 s)"
    except (OSError, KeyError, ValueError):
        pass
    return out


def profile(todo: list[Call]) -> None:
    """One cProfile of each page (after the untimed first call): the project's functions."""
    import cProfile

    import common as C

    for c in todo:
        if c.page:
            prof = cProfile.Profile()
            prof.runcall(c.call)
            print(f"\n--- cProfile: {c.label}")
            C.print_profile(prof, 25, "lineage_plugin|jinja2|sqlalchemy/engine")


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from common import run_main

    sys.exit(run_main(main))
