"""Cost of the lineage index following MLflow's lifecycle calls: stock store against plugin store.

Two fresh copies of one pre-migrated MLflow SQLite database: one opened as ``sqlite:///...``
(stock MLflow), one as ``lineage+sqlite:///...`` (the plugin: after MLflow's own call, the
lineage index follows it in one more small transaction). Both get exactly the same calls,
through MLflow's stores (``mlflow.tracking._tracking_service.utils._get_store`` and the
registry's), interleaved (stock, plugin / plugin, stock alternately), in this process.

Every run carries lineage: the ``lineage.*`` tags ``lineage_plugin.log_delta_input`` wrote for a
run that read a small cached Delta table (recorded once, in a third database), written with
``log_batch`` on both sides, so MLflow's own work is the same; the plugin indexes the run.
Each round, on a new such run: ``set_tag`` (a plain tag, then ``mlflow.runName``),
``update_run_info`` (what ``set_terminated``/``end_run`` call), ``delete_run``, ``restore_run``,
and, after an untimed ``delete_run``, ``_hard_delete_run`` (``mlflow gc``). Then
``delete_model_version`` of a new version (on a new registered model) that holds 3 events
(alias, Staging, Production), and ``rename_registered_model`` of a model with 5 versions and
19 events (renamed back and forth; each rename adds one event, and every ``REBUILD`` rounds
the model is deleted and built again, untimed, so it holds 19 to 29 events).

Afterwards ``lineage_plugin.queries.index_check.check_index`` (``reindex --check``) must find
the plugin's index in sync with MLflow, and the index must show the deletes and renames:
otherwise the script exits 1, so a plugin that did nothing cannot pass. Target: plugin / stock
<= 1.5 (medians) per call: each call is MLflow's transaction plus one small one of the index.

    python benchmarks/bench_lifecycle_cost.py            # 200 rounds
    python benchmarks/bench_lifecycle_cost.py --quick    # 15 rounds (CI smoke test)
"""

from __future__ import annotations

import os
import sys
import time

TARGET = 1.5
WARMUP = 3
RENAMED_VERSIONS = 5
OPS = (
    ("set_tag", "set_tag (a plain tag)"),
    ("set_tag_name", "set_tag (mlflow.runName)"),
    ("terminate", "update_run_info (set_terminated)"),
    ("delete_run", "delete_run"),
    ("restore_run", "restore_run"),
    ("hard_delete", "_hard_delete_run (mlflow gc)"),
    ("delete_version", "delete_model_version (3 events)"),
    ("rename", "rename_registered_model (5 versions)"),
)
REBUILD = 10


# --------------------------------------------------------------------------- set-up


def recorded_lineage(seed_uri: str, table: str, artifacts: str) -> dict[str, str]:
    """The ``lineage.*`` tags the plugin writes for a run that logged ``table`` as its input."""
    import mlflow

    import lineage_plugin as lp

    mlflow.set_tracking_uri(seed_uri)
    experiment_id = mlflow.create_experiment("seed", artifact_location=artifacts)
    with mlflow.start_run(experiment_id=experiment_id) as run:
        if lp.log_delta_input(table) is None:
            raise SystemExit(f"log_delta_input({table}) recorded nothing")
    tags = mlflow.get_run(run.info.run_id).data.tags
    lineage = {k: v for k, v in tags.items() if k.startswith("lineage.")}
    if lineage.get("lineage.status") != "complete":
        raise SystemExit(f"the seed run's lineage is not complete: {lineage}")
    return lineage


class Arm:
    """One side of the comparison: its stores and the objects its calls work on."""

    def __init__(self, uri: str, artifacts: str, lineage: dict[str, str]) -> None:
        from mlflow.entities import RunTag
        from mlflow.tracking._model_registry.utils import _get_store as registry_store
        from mlflow.tracking._tracking_service.utils import _get_store as tracking_store

        self.uri = uri
        self.plugin = uri.startswith("lineage+")
        self.tracking = tracking_store(uri)
        self.registry = registry_store(uri)
        self.tags = [RunTag(k, v) for k, v in lineage.items()]
        self.experiment_id = self.tracking.create_experiment("lifecycle", artifacts)
        self.source_run = self.new_run("source")
        self.version_tags: list = []  # stock: the lineage tags the plugin attaches to a version
        self.run_id = ""
        self.renamed = ""

    def new_run(self, name: str) -> str:
        run = self.tracking.create_run(
            self.experiment_id, "bench", int(time.time() * 1000), [], name
        )
        self.tracking.log_batch(run.info.run_id, [], [], self.tags)
        return run.info.run_id

    def new_version(self, model: str) -> str:
        run_id = self.source_run
        tags = [] if self.plugin else self.version_tags
        mv = self.registry.create_model_version(model, f"runs:/{run_id}/model", run_id, tags)
        return str(mv.version)

    def with_events(self, model: str, version: str, alias: str) -> None:
        """Three events on the version: an alias set, Staging, Production (archiving)."""
        self.registry.set_registered_model_alias(model, alias, version)
        self.registry.transition_model_version_stage(model, version, "Staging", False)
        self.registry.transition_model_version_stage(model, version, "Production", True)


def build_renamed(arm: Arm, generation: int) -> None:
    """A new model to rename (5 versions, 19 events), in place of the last one."""
    if arm.renamed:
        arm.registry.delete_registered_model(arm.renamed)
    arm.renamed = model = f"churn-{generation}"
    arm.registry.create_registered_model(model)
    for n in range(RENAMED_VERSIONS):
        version = arm.new_version(model)
        arm.with_events(model, version, f"a{n}")


def populate(arm: Arm, stock: Arm | None) -> None:
    """The first model to rename; for stock, the lineage tags the plugin gave its versions."""
    from mlflow.entities.model_registry import ModelVersionTag

    build_renamed(arm, 0)
    model = arm.renamed
    if stock is not None:
        mv = arm.registry.get_model_version(model, "1")
        stock.version_tags = [
            ModelVersionTag(k, v)
            for k, v in mv.tags.items()
            if k.startswith("lineage.") and not k.startswith("lineage.event.")
        ]


def commit_counter() -> dict[str, int]:
    """Count the SQL transactions committed in this process (every engine, MLflow's and the
    index's): ``{"n": ...}``."""
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    counter = {"n": 0}

    def on_commit(conn) -> None:
        counter["n"] += 1

    event.listen(Engine, "commit", on_commit)
    return counter


def steps(arms: dict[str, Arm], commits: dict[str, dict[str, list[int]]]):
    """The rounds' steps for :func:`common.interleave`; ``commits[op][arm]`` gets the SQL
    commits of each timed call."""
    from mlflow.entities import RunStatus, RunTag

    counter = commit_counter()

    def untimed(fn):
        def prepare(arm: str, rep: int):
            fn(arms[arm], rep)

        return prepare

    def timed(op: str, fn):
        commits[op] = {arm: [] for arm in arms}

        def prepare(arm: str, rep: int):
            a = arms[arm]

            def call() -> None:
                before = counter["n"]
                fn(a, rep)
                commits[op][arm].append(counter["n"] - before)

            return call

        return prepare

    def new_run(a: Arm, rep: int) -> None:
        a.run_id = a.new_run(f"r{rep}")

    def new_model(a: Arm, rep: int) -> None:
        a.registry.create_registered_model(f"dmv-{rep}")
        a.with_events(f"dmv-{rep}", a.new_version(f"dmv-{rep}"), "champion")

    def rebuild(a: Arm, rep: int) -> None:
        rounds = rep + WARMUP
        if rounds and rounds % REBUILD == 0:
            build_renamed(a, rounds // REBUILD)

    def rename(a: Arm, rep: int) -> None:
        base = a.renamed.removesuffix("-renamed")
        new_name = base if a.renamed.endswith("-renamed") else base + "-renamed"
        a.registry.rename_registered_model(a.renamed, new_name)
        a.renamed = new_name

    end = int(time.time() * 1000)
    calls = {
        "set_tag": lambda a, rep: a.tracking.set_tag(a.run_id, RunTag("note", str(rep))),
        "set_tag_name": lambda a, rep: a.tracking.set_tag(
            a.run_id, RunTag("mlflow.runName", f"n{rep}")
        ),
        "terminate": lambda a, rep: a.tracking.update_run_info(
            a.run_id, RunStatus.FINISHED, end, None
        ),
        "delete_run": lambda a, rep: a.tracking.delete_run(a.run_id),
        "restore_run": lambda a, rep: a.tracking.restore_run(a.run_id),
        "hard_delete": lambda a, rep: a.tracking._hard_delete_run(a.run_id),
        "delete_version": lambda a, rep: a.registry.delete_model_version(f"dmv-{rep}", "1"),
        "rename": rename,
    }
    run_steps = [(op, timed(op, calls[op])) for op, _ in OPS[:5]]
    return [
        (None, untimed(new_run)),
        *run_steps,
        (None, untimed(lambda a, rep: a.tracking.delete_run(a.run_id))),
        ("hard_delete", timed("hard_delete", calls["hard_delete"])),
        (None, untimed(new_model)),
        ("delete_version", timed("delete_version", calls["delete_version"])),
        (None, untimed(rebuild)),
        ("rename", timed("rename", calls["rename"])),
    ]


# --------------------------------------------------------------------------- checks


def check(arms: dict[str, Arm], rounds: int) -> list[str]:
    """What must hold after the loop; the problems found (none: the plugin did its work)."""
    import sqlite3

    from lineage_plugin.queries.index_check import check_index

    problems = []
    result = check_index(tracking_uri=arms["plugin"].uri)
    for t in result.tables:
        if not t.in_sync:
            problems.append(
                f"index table {t.table}: {t.missing} missing, {t.extra} extra, "
                f"{t.different} different (e.g. {t.missing_keys[:2]} {t.extra_keys[:2]} "
                f"{t.different_rows[:2]})"
            )
    dbs = {arm: a.uri.split(":///", 1)[1] for arm, a in arms.items()}
    con = sqlite3.connect(dbs["plugin"])
    try:
        deleted = con.execute(
            "SELECT COUNT(*) FROM lineage_model_versions WHERE name LIKE 'dmv-%' AND deleted = 1"
        ).fetchone()[0]
        renamed = dict(
            con.execute(
                "SELECT name, COUNT(*) FROM lineage_events WHERE name LIKE 'churn-%' GROUP BY name"
            ).fetchall()
        )
        runs = con.execute("SELECT COUNT(*) FROM lineage_runs").fetchone()[0]
    finally:
        con.close()
    final = arms["plugin"].renamed
    if deleted != rounds:
        problems.append(f"{deleted} deleted versions indexed, expected {rounds}")
    if set(renamed) != {final} or not 19 <= renamed[final] < 19 + REBUILD + 1:
        problems.append(f"events by model name {renamed}, expected only {final!r} (19 to 29)")
    if runs != 1:
        problems.append(f"{runs} runs indexed, expected 1 (the source run; the rest were purged)")
    con = sqlite3.connect(dbs["stock"])
    try:
        stock_tables = con.execute(
            "SELECT COUNT(*) FROM sqlite_master WHERE name LIKE 'lineage_%'"
        ).fetchone()[0]
    finally:
        con.close()
    if stock_tables:
        problems.append("the stock database has lineage index tables")
    print(
        f"  check: reindex --check in sync: {result.in_sync} ({result.seconds:.1f} s); "
        f"{deleted} deleted versions, {renamed.get(final, 0)} events under {final!r}, "
        f"{runs} run indexed; stock database without index tables: {not stock_tables}"
    )
    return problems


# --------------------------------------------------------------------------- main


def main() -> int:
    import argparse
    import logging
    import shutil

    import common as C

    C.clean_this_process_env()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="15 rounds (CI smoke test)")
    parser.add_argument("--reps", type=int, help="timed rounds (default 200)")
    parser.add_argument("--workdir", help=f"cache directory (default {C.DEFAULT_WORKDIR})")
    args = parser.parse_args()
    reps = args.reps or (15 if args.quick else 200)

    wd = C.workdir(args.workdir)
    template = C.migrated_sqlite_template(wd)
    table = C.build_table(wd, 10)
    scratch = C.scratch_dir(wd, "lifecycle")
    started = time.perf_counter()

    import mlflow  # noqa: F401  (imported before timing anything)

    logging.getLogger("mlflow").setLevel(logging.ERROR)
    logging.getLogger("lineage_plugin").setLevel(logging.ERROR)
    seed = C.fresh_db(template, scratch / "seed")
    lineage = recorded_lineage(
        f"lineage+sqlite:///{seed}", str(table), (scratch / "seed" / "artifacts").as_uri()
    )
    arms = {}
    for arm, scheme in (("stock", "sqlite"), ("plugin", "lineage+sqlite")):
        db = C.fresh_db(template, scratch / arm)
        arms[arm] = Arm(f"{scheme}:///{db}", (scratch / arm / "artifacts").as_uri(), lineage)
    populate(arms["plugin"], arms["stock"])
    populate(arms["stock"], None)
    print(
        f"lifecycle cost: {reps} interleaved rounds (after {WARMUP} warm-up rounds), runs with "
        f"{len(lineage)} lineage.* tags, {sys.executable}"
    )
    commits: dict[str, dict[str, list[int]]] = {}
    times = C.interleave(list(arms), steps(arms, commits), reps, WARMUP)
    print("\nSQLite (sqlite:/// vs lineage+sqlite:///), median ms per call:")
    ratios = C.print_comparison(OPS, times, TARGET)
    print("  SQL transactions committed per call (median, every engine):")
    C.print_table(
        ["  call", "stock", "plugin"],
        [[label, *(C.median(commits[op][arm]) for arm in arms)] for op, label in OPS],
    )
    problems = check(arms, reps + WARMUP)
    worst_label, worst = max(ratios, key=lambda lr: lr[1])
    print(
        f"\nworst plugin/stock ratio {worst:.2f} ({worst_label}; target <= {TARGET}: "
        f"{C.verdict(worst <= TARGET)}); measured in {time.perf_counter() - started:.0f} s"
    )
    shutil.rmtree(scratch, ignore_errors=True)
    if problems:
        print("benchmark failed: the plugin's index did not follow MLflow:", file=sys.stderr)
        for p in problems:
            print(f"  {p}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from common import run_main

    sys.exit(run_main(main))
