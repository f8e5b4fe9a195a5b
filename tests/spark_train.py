"""A Spark training step for the tests: read a Delta table through Spark, fit, log a model.

Usage: python spark_train.py TABLE WAREHOUSE   (tracking URI from MLFLOW_TRACKING_URI)
"""

from __future__ import annotations

import sys

import mlflow
from mlflow.models import infer_signature
from sklearn.linear_model import Ridge
from spark_session import start_session


def main() -> None:
    table, warehouse = sys.argv[1], sys.argv[2]
    spark = start_session(warehouse)
    with mlflow.start_run() as run:
        frame = spark.read.format("delta").load(table).toPandas()  # pinned and recorded
        model = Ridge(alpha=0.5).fit(frame[["x"]], frame["y"])
        mlflow.sklearn.log_model(
            model,
            name="model",
            signature=infer_signature(frame[["x"]], model.predict(frame[["x"]])),
        )
    spark.stop()
    print(f"run_id={run.info.run_id}")


if __name__ == "__main__":
    main()
