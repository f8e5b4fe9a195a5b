"""One client process of ``test_postgres_server``: runs, registrations and alias moves.

Usage: ``python registry_client.py TRACKING_URI CLIENT_NUMBER WORKDIR CLIENTS``

Client ``n`` writes its own Delta table ``WORKDIR/table-n``; for each of its rounds it appends a
version, starts a run that logs that version with ``lineage_plugin.log_delta_input``, registers
the run in its own model ``model-n`` and in the model ``shared`` that every client registers
in, then moves alias ``champion`` of ``model-n`` and sets alias ``client-n`` of ``shared`` to
the new versions. All clients start their rounds together (a barrier of files in WORKDIR).
Prints what it did as one JSON line.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import mlflow
import pyarrow as pa
from deltalake import write_deltalake
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

import lineage_plugin as lp

ROUNDS = 3


def wait_for_everyone(workdir: Path, number: int, clients: int) -> None:
    (workdir / f"ready-{number}").touch()
    deadline = time.monotonic() + 120
    while len(list(workdir.glob("ready-*"))) < clients:
        if time.monotonic() > deadline:
            raise TimeoutError("the other clients did not start")
        time.sleep(0.05)


def main(uri: str, number: int, workdir: Path, clients: int) -> None:
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    client = MlflowClient()
    table = str(workdir / f"table-{number}")
    model = f"model-{number}"
    mlflow.set_experiment(f"client-{number}")
    wait_for_everyone(workdir, number, clients)
    client.create_registered_model(model)
    try:
        client.create_registered_model("shared")
    except MlflowException as exc:  # another client made it first
        if exc.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
    done: dict = {"client": number, "table": table, "rounds": []}
    for round_ in range(ROUNDS):
        rows = pa.table({"client": [number] * 3, "round": [round_] * 3, "x": [1.0, 2.0, 3.0]})
        write_deltalake(table, rows, mode="append")
        with mlflow.start_run(run_name=f"client-{number}-round-{round_}") as run:
            logged = lp.log_delta_input(table)
            mlflow.log_param("client", number)
        run_id = run.info.run_id
        source = f"runs:/{run_id}/model"
        own = client.create_model_version(model, source, run_id=run_id)
        shared = client.create_model_version("shared", source, run_id=run_id)
        client.set_registered_model_alias(model, "champion", own.version)
        client.set_registered_model_alias("shared", f"client-{number}", shared.version)
        done["rounds"].append(
            {
                "run_id": run_id,
                "table_version": logged.version,
                "version": own.version,
                "shared_version": shared.version,
            }
        )
    print(json.dumps(done))


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), Path(sys.argv[3]), int(sys.argv[4]))
