"""Train one model on the diabetes Delta table and log it to MLflow (the demo's pipeline step).

The table is read with polars at its latest version; with the plugin on (a ``lineage+``
tracking URI, or ``MLFLOW_LINEAGE_AUTOLOG=true``) the run records exactly which version that
was, and ``mlflow-lineage reproduce`` can run this script again with the read pinned to it.

Usage:
    python train_diabetes.py --table PATH [--model ridge|lasso|gbm] [--alpha A] [--seed N]
                             [--register NAME]

The tracking URI comes from ``MLFLOW_TRACKING_URI``. Prints ``run_id=<id>`` at the end.
"""

from __future__ import annotations

import argparse

import mlflow
import numpy as np
import polars as pl
from mlflow.models import infer_signature

FEATURES_EXCLUDED = ("row_id", "target")


def build_model(kind: str, alpha: float, seed: int):  # noqa: ANN201 (a scikit-learn estimator)
    from sklearn.ensemble import GradientBoostingRegressor
    from sklearn.linear_model import Lasso, Ridge

    if kind == "ridge":
        return Ridge(alpha=alpha)
    if kind == "lasso":
        return Lasso(alpha=alpha)
    # Subsampling makes the fit depend on the seed: another seed, another model.
    return GradientBoostingRegressor(
        n_estimators=50, subsample=0.7, learning_rate=alpha, random_state=seed
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--table", required=True, help="Path of the Delta table.")
    parser.add_argument("--model", choices=("ridge", "lasso", "gbm"), default="ridge")
    parser.add_argument("--alpha", type=float, default=0.1, help="Regularisation / GBM rate.")
    parser.add_argument("--seed", type=int, default=0, help="Random seed (gbm).")
    parser.add_argument("--register", metavar="NAME", help="Register the model under NAME.")
    args = parser.parse_args()

    with mlflow.start_run(run_name=f"{args.model}-alpha-{args.alpha}") as run:
        frame = pl.read_delta(args.table).to_pandas()  # recorded: the exact version read
        features = frame.drop(columns=list(FEATURES_EXCLUDED))
        model = build_model(args.model, args.alpha, args.seed).fit(features, frame["target"])
        predictions = model.predict(features)
        rmse = float(np.sqrt(np.mean((predictions - frame["target"]) ** 2)))
        mlflow.log_params({"model": args.model, "alpha": args.alpha, "seed": args.seed})
        mlflow.log_metric("rmse", rmse)
        mlflow.sklearn.log_model(
            model,
            name="model",
            signature=infer_signature(features, predictions),
            registered_model_name=args.register,
            # MLflow saves scikit-learn models with skops; trees need their type trusted.
            skops_trusted_types=["sklearn.tree._tree.Tree"] if args.model == "gbm" else None,
        )
    print(f"{args.model} alpha={args.alpha}: rmse={rmse:.3f}  run_id={run.info.run_id}")


if __name__ == "__main__":
    main()
