"""The processes of ``test_concurrency``: trainers and one maintainer, against one server.

Usage:
    ``python concurrent_worker.py train TRACKING_URI NUMBER ITERATIONS WORKDIR``
    ``python concurrent_worker.py maintain TRACKING_URI WORKDIR``

Every row of the shared Delta tables ``WORKDIR/tables/<t>`` carries the number of the append
(``batch``) that wrote it, so the set of batches a reader got says which content it read.

A trainer (``train``) runs ``ITERATIONS`` times: a run that reads one or both tables with
deltalake (captured by autolog), trains a tiny scikit-learn model on them and logs it; then it
registers the model in ``shared`` and in ``model-NUMBER``, moves aliases ``champion`` and
``wNUMBER`` of ``shared`` and ``champion`` of its own model to the new versions, and moves its
own version to Staging. It appends one JSON line per iteration to ``WORKDIR/out/train-N.jsonl``:
the versions and batches it read and every registry change it made.

The maintainer (``maintain``) loops until ``WORKDIR/stop`` exists: it appends a batch to each
table, restores the tables of ``shared@champion`` (``lineage_plugin.restore``) every other
round, and runs ``mlflow-lineage vacuum --yes`` on each table. It writes ``WORKDIR/maintain.json``:
the content (batches) of every table version, the restores and the vacuums it made.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

TABLES = ("alpha", "beta")
#: The maintainer's vacuums delete files removed longer ago than this. Delta's rule: longer
#: than any reader needs them; here, longer than a run's read-to-registration time (up to 41 s
#: measured under this load), since a version read by a run not yet registered is unprotected.
LOOP_RETENTION_HOURS = 0.02
#: The maintainer's pause between rounds (seconds), so the trainers get the CPU too.
PAUSE = 1.0


def batches(frame: Any) -> list[int]:
    """The appends whose rows a read returned."""
    return sorted({int(b) for b in frame["batch"]})


def append(path: str, batch: int) -> int:
    """Append batch ``batch`` (three rows) to the table at ``path``; returns the new version."""
    import pyarrow as pa
    from deltalake import DeltaTable, write_deltalake

    rows = pa.table(
        {"batch": [batch] * 3, "x": [float(batch + i) for i in range(3)], "y": [1.0, 2.0, 3.0]}
    )
    write_deltalake(path, rows, mode="append")
    return DeltaTable(path).version()


def ready_and_wait(workdir: Path, name: str, seconds: float = 180) -> None:
    """Say this process is ready (imports done), then wait for the test's ``go``."""
    (workdir / f"ready-{name}").touch()
    deadline = time.monotonic() + seconds
    while not (workdir / "go").exists():
        if time.monotonic() > deadline:
            raise TimeoutError("the test never said go")
        time.sleep(0.05)


def set_alias(client: Any, name: str, alias: str, version: str) -> int:
    """Set an alias, retrying MLflow's own race: two first settings of one alias at once
    both INSERT, and one fails on the unique key (stock MLflow too); returns the retries."""
    from mlflow.exceptions import MlflowException

    for attempt in range(3):
        try:
            client.set_registered_model_alias(name, alias, version)
            return attempt
        except MlflowException as exc:
            if "UNIQUE" not in str(exc).upper() and "DUPLICATE" not in str(exc).upper():
                raise
    raise RuntimeError(f"alias {alias} of {name}: still conflicting after 3 attempts")


def train(uri: str, number: int, iterations: int, workdir: Path) -> None:
    import mlflow
    import pandas as pd
    from deltalake import DeltaTable
    from helpers import read_pandas
    from mlflow import MlflowClient
    from sklearn.linear_model import LinearRegression

    import lineage_plugin as lp

    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    lp.autolog()  # a plain http:// user turns capture on; lineage+ does it by itself
    client = MlflowClient()
    own = f"model-{number}"
    out = workdir / "out" / f"train-{number}.jsonl"
    client.search_experiments(max_results=1)  # the client's imports, before the clock starts
    ready_and_wait(workdir, f"train-{number}")
    for i in range(iterations):
        names = TABLES if i % 2 == 0 else TABLES[number % 2 : number % 2 + 1]
        reads, frames = [], []
        with mlflow.start_run(run_name=f"w{number}-{i}") as run:
            read_at = time.monotonic()
            for name in names:
                path = str(workdir / "tables" / name)
                table = DeltaTable(path)
                frame = read_pandas(table)
                reads.append({"table": path, "version": table.version(), "batches": batches(frame)})
                frames.append(frame)
            data = pd.concat(frames)
            model = LinearRegression().fit(data[["x"]], data["y"])
            info = mlflow.sklearn.log_model(model, name="model", pip_requirements=["scikit-learn"])
        shared = mlflow.register_model(info.model_uri, "shared").version
        mine = mlflow.register_model(info.model_uri, own).version
        unprotected = time.monotonic() - read_at  # until a version guards what the run read
        changes = [
            ("alias_set", "shared", "champion", shared),
            ("alias_set", "shared", f"w{number}", shared),
            ("alias_set", own, "champion", mine),
        ]
        retries = sum(set_alias(client, m, alias, v) for _, m, alias, v in changes)
        client.transition_model_version_stage(own, mine, "Staging")
        changes.append(("stage_transition", own, "Staging", mine))
        line = {
            "worker": number,
            "iteration": i,
            "run_id": run.info.run_id,
            "reads": reads,
            "registered": [["shared", str(shared)], [own, str(mine)]],
            "changes": [list(map(str, c)) for c in changes],
            "alias_retries": retries,
            "unprotected_seconds": round(unprotected, 1),
        }
        with out.open("a") as fh:
            fh.write(json.dumps(line) + "\n")


def vacuum(path: str, uri: str, retention_hours: float) -> dict[str, Any]:
    """``mlflow-lineage vacuum PATH --yes --json`` (the click command, in this process)."""
    from click.testing import CliRunner

    from lineage_plugin.cli import cli

    args = ["vacuum", path, "--yes", "--json", "--tracking-uri", uri]
    args += ["--retention-hours", str(retention_hours)]
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    if result.exit_code != 0:
        raise RuntimeError(f"vacuum exited {result.exit_code}: {result.output}")
    return json.loads(result.stdout)


def maintain(uri: str, workdir: Path) -> None:
    from deltalake import DeltaTable
    from helpers import read_pandas
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    import lineage_plugin as lp

    paths = {t: str(workdir / "tables" / t) for t in TABLES}
    content: dict[str, dict[int, list[int]]] = {t: {} for t in TABLES}
    for t, path in paths.items():
        for v in range(DeltaTable(path).version() + 1):
            content[t][v] = batches(read_pandas(DeltaTable(path, version=v)))
    batch = max(b for c in content.values() for bs in c.values() for b in bs)
    client = MlflowClient(uri, uri)
    done: dict[str, Any] = {"content": content, "restores": [], "vacuums": [], "rounds": 0}
    client.search_registered_models(max_results=1)
    ready_and_wait(workdir, "maintain")
    while not (workdir / "stop").exists():
        time.sleep(PAUSE)
        done["rounds"] += 1
        for t, path in paths.items():
            batch += 1
            version = append(path, batch)
            content[t][version] = sorted([*content[t][version - 1], batch])
        if done["rounds"] % 2 == 0:
            try:
                champion = client.get_model_version_by_alias("shared", "champion").version
            except MlflowException:
                champion = None  # no trainer got that far yet
            if champion is not None:
                report = lp.restore(
                    "shared", champion, reason="concurrency test", allow_undo_deletes=True,
                    tracking_uri=uri,
                )  # fmt: skip
                for r in report.restored:
                    t = Path(r.uri.removeprefix("file://")).name
                    content[t][r.new_version] = content[t][r.to_version]
                done["restores"].append(
                    {
                        "version": champion,
                        "event_id": report.event_id,
                        "tables": [[r.uri, r.to_version, r.new_version] for r in report.restored],
                    }
                )
        for path in paths.values():
            done["vacuums"].append(vacuum(path, uri, LOOP_RETENTION_HOURS)["deleted"])
    (workdir / "maintain.json").write_text(json.dumps(done))


if __name__ == "__main__":
    if sys.argv[1] == "train":
        train(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), Path(sys.argv[5]))
    else:
        maintain(sys.argv[2], Path(sys.argv[3]))
