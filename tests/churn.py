"""The on-call scenario of issue 12, built for real: a churn model, a bad write, a champion.

A new user's own project in a folder that is *not* a git repository:

- ``customers``: 2,000 generated customer rows in a Delta table (v0);
- ``train.py``: a RandomForest on it that registers its model as ``churn`` itself
  (``log_model(registered_model_name=...)``), as most training scripts do;
- version 1 trained on customers@v0 and given the ``champion`` alias;
- a bad UPDATE of 600 rows (v1) and a DELETE of 200 rows (v2);
- version 2 trained on customers@v2, and ``champion`` moved to it.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from helpers import run_python, tracking_at

TRAIN_SCRIPT = '''\
"""Train the churn model on the customers Delta table and register it (the user's script)."""
import argparse

import mlflow
import polars as pl
from mlflow.models import infer_signature
from sklearn.ensemble import RandomForestClassifier

parser = argparse.ArgumentParser()
parser.add_argument("--table", default="customers")
parser.add_argument("--trees", type=int, default=TREES)
parser.add_argument("--seed", type=int, default=0)
args = parser.parse_args()

with mlflow.start_run() as run:
    frame = pl.read_delta(args.table).to_pandas()
    features = frame[["tenure", "monthly_charges", "support_calls", "contract"]]
    model = RandomForestClassifier(n_estimators=args.trees, random_state=args.seed)
    model.fit(features, frame["churned"])
    mlflow.log_params({"trees": args.trees, "seed": args.seed})
    mlflow.sklearn.log_model(
        model,
        name="model",
        signature=infer_signature(features, model.predict(features)),
        registered_model_name="churn",
        skops_trusted_types=["sklearn.tree._tree.Tree"],
    )
print(f"run_id={run.info.run_id}")
'''

ROWS = 2000


@dataclass(frozen=True)
class Churn:
    """Where the scenario lives."""

    where: Path
    uri: str
    table: Path
    script: Path

    def train(self, *args: str) -> str:
        """Run ``train.py`` as the user does; returns the run id."""
        result = run_python(str(self.script), *args, cwd=self.where, MLFLOW_TRACKING_URI=self.uri)
        assert "run_id=" in result.stdout, result.stdout + result.stderr[-3000:]
        return result.stdout.rsplit("run_id=", 1)[1].split()[0]

    def versions(self) -> list[str]:
        """The versions of ``churn`` in the registry now."""
        from mlflow import MlflowClient

        with tracking_at(self.uri):
            found = MlflowClient().search_model_versions("name='churn'")
        return sorted((str(v.version) for v in found), key=int)

    def registry_state(self) -> dict[str, object]:
        """Versions with their stages and tags, and the aliases: to compare before and after."""
        from mlflow import MlflowClient

        with tracking_at(self.uri):
            client = MlflowClient()
            versions = {
                str(v.version): (
                    v.current_stage,
                    dict(client.get_model_version("churn", v.version).tags),
                )
                for v in client.search_model_versions("name='churn'")
            }
            aliases = dict(client.get_registered_model("churn").aliases)
        return {"versions": versions, "aliases": aliases}


def customers(rows: int = ROWS, seed: int = 12):  # noqa: ANN201 (a pandas DataFrame)
    """Generated customers: a churn label that depends on the features, with noise."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    tenure = rng.integers(1, 72, rows)
    charges = rng.uniform(20, 120, rows).round(2)
    calls = rng.poisson(2, rows)
    contract = rng.integers(0, 3, rows)
    risk = 0.04 * calls + 0.006 * charges - 0.03 * tenure - 0.5 * contract
    churned = (risk + rng.normal(0, 0.4, rows) > 0).astype("int64")
    return pd.DataFrame(
        {
            "customer_id": np.arange(rows, dtype="int64"),
            "tenure": tenure.astype("int64"),
            "monthly_charges": charges,
            "support_calls": calls.astype("int64"),
            "contract": contract.astype("int64"),
            "churned": churned,
        }
    )


def build(where: Path, migrated_sqlite: Path, *, trees: int = 30) -> Churn:
    """The whole scenario in ``where``: v1 @champion on v0, bad UPDATE + DELETE, v2 @champion."""
    from deltalake import DeltaTable, write_deltalake
    from mlflow import MlflowClient

    shutil.copyfile(migrated_sqlite, where / "mlflow.db")
    churn = Churn(
        where=where,
        uri=f"lineage+sqlite:///{where / 'mlflow.db'}",
        table=where / "customers",
        script=where / "train.py",
    )
    churn.script.write_text(TRAIN_SCRIPT.replace("TREES", str(trees)))
    write_deltalake(str(churn.table), customers())
    churn.train()
    with tracking_at(churn.uri):
        MlflowClient().set_registered_model_alias("churn", "champion", "1")
    table = DeltaTable(str(churn.table))
    table.update(predicate="customer_id < 600", updates={"churned": "1 - churned"})
    DeltaTable(str(churn.table)).delete("customer_id >= 1800")
    churn.train()
    with tracking_at(churn.uri):
        MlflowClient().set_registered_model_alias("churn", "champion", "2")
    return churn
