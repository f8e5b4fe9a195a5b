"""Seed demo: two model versions trained on a Delta table that changes in between.

Runs on the embedded default (deltalake + polars, no JVM) and a local SQLite MLflow backend
wrapped by the plugin (``lineage+sqlite:``). It

1. writes scikit-learn's bundled diabetes data (442 rows) to a Delta table;
2. trains a ridge model on it and registers version 1 (alias ``champion``);
3. makes a "bad write": an UPDATE that overwrites the target of about a third of the rows;
4. trains again and registers version 2;
5. prints the lineage of both versions: which table version each was trained on, when that
   version was committed and by which operation.

Usage:
    python demo_notebooks/train_two_versions.py [--workdir DIR]
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import polars as pl
from deltalake import DeltaTable, write_deltalake
from mlflow import MlflowClient
from sklearn.datasets import load_diabetes
from sklearn.linear_model import Ridge

import lineage_plugin as lp
from lineage_plugin.cli import render

MODEL = "diabetes-ridge"


def write_training_table(path: Path) -> None:
    data = load_diabetes(as_frame=True).frame.reset_index(names="row_id")
    write_deltalake(str(path), data, mode="overwrite")


def train(path: Path, alpha: float) -> str:
    """Train on the latest table version (read with polars) and register the model."""
    with mlflow.start_run(run_name=f"ridge-alpha-{alpha}") as run:
        frame = pl.read_delta(str(path)).to_pandas()  # recorded by autolog: exact version
        features = frame.drop(columns=["row_id", "target"])
        model = Ridge(alpha=alpha).fit(features, frame["target"])
        mlflow.log_param("alpha", alpha)
        rmse = float(np.sqrt(np.mean((model.predict(features) - frame["target"]) ** 2)))
        mlflow.log_metric("rmse", rmse)
        mlflow.sklearn.log_model(
            model, name="model", registered_model_name=MODEL, input_example=features.head(2)
        )
    print(f"  run {run.info.run_id}: rmse={rmse:.2f}")
    return run.info.run_id


def bad_write(path: Path) -> None:
    """Overwrite the target of about a third of the rows (an UPDATE commit)."""
    DeltaTable(str(path)).update(
        predicate="row_id % 3 = 0", updates={"target": "target * 0.5 + 40.0"}
    )


def show(version: str) -> None:
    lineage = lp.get_lineage(MODEL, version)
    print(f"\n{MODEL} v{version}: lineage {lineage.status}, run {lineage.run.run_id}")
    for inp in lineage.inputs:
        when = pd.Timestamp(inp.commit_timestamp, unit="ms", tz="UTC")
        print(
            f"  trained on {inp.name} version {inp.version} ({inp.operation} commit of "
            f"{when.isoformat(timespec='milliseconds')}) read by {inp.engine}\n    {inp.uri}"
        )
    env = lineage.run.environment
    print(f"  python {env.python}, " + ", ".join(f"{k} {v}" for k, v in env.packages.items()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", default="demo_output", type=Path)
    args = parser.parse_args()
    shutil.rmtree(args.workdir, ignore_errors=True)
    args.workdir.mkdir(parents=True)
    table = (args.workdir / "diabetes").resolve()
    uri = f"lineage+sqlite:///{(args.workdir / 'mlflow.db').resolve()}"
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    mlflow.set_experiment("lineage-demo")

    print("1. Writing the diabetes data (442 rows) to a Delta table")
    write_training_table(table)
    print("2. Training version 1")
    train(table, alpha=0.1)
    MlflowClient().set_registered_model_alias(MODEL, "champion", "1")
    print("3. A bad write: the target of every third row is overwritten")
    bad_write(table)
    print("4. Training version 2 on the changed table")
    train(table, alpha=0.1)
    print("5. Lineage")
    show("1")
    show("2")
    first, second = (lp.get_lineage(MODEL, v).inputs[0] for v in ("1", "2"))
    print(
        f"\nVersion 1 was trained on {first.name}@v{first.version}, version 2 on "
        f"{second.name}@v{second.version} (the {second.operation} commit)."
    )
    print("\n6. What changed between the versions, and what read the bad table version")
    print(f"$ mlflow-lineage diff {MODEL} 1 2")
    print(render.diff(lp.diff(MODEL, "1", "2").to_dict()))
    print(f"$ mlflow-lineage impact {table} --from-version {second.version}")
    print(render.impact(lp.impact(str(table), from_version=second.version).to_dict()))
    print(f"\nMLflow data: {uri}  (mlflow ui --backend-store-uri {uri})")
    print(f"Try: MLFLOW_TRACKING_URI={uri} mlflow-lineage timeline --model {MODEL}")


if __name__ == "__main__":
    main()
