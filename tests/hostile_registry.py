"""A small registry with hostile values, for the UI security and JSON tests: two models on two
real Delta tables.

``build(root, template)`` makes, in ``root``:

- ``sales``: v0 a WRITE of 30 rows, v1 a bad DELETE of 10 rows whose commit names a hostile user
  (``userName`` in the commit's custom metadata);
- a table whose directory name is markup (:data:`FEATS_DIR`): v0 a WRITE, v1 an overwrite, then
  vacuumed (v2, v3), so the files of v0 are gone; v4 a DELETE;
- ``unrecorded``: a real Delta table no run ever read (it must have no page);
- model ``ridge`` (a hostile description): v1 trained on sales@v0 and the feats table @v0 by a
  run with a hostile name, parameter, environment and code tags; @champion and Production;
  after the bad write v2 on sales@v1, @champion moved to it, Staging (every change made by a
  user with a hostile name);
- model :data:`EVIL_MODEL` (a hostile name and description): v1 on the feats table @v3, read
  in a context with a hostile name, before the DELETE.
"""

from __future__ import annotations

import os
import shutil
import time
import warnings
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import mlflow
import pyarrow as pa
from helpers import read_pandas, tracking_at
from mlflow import MlflowClient

import lineage_plugin as lp

SCRIPT = "<script>alert(1)</script>"
IMG = '"><img src=x onerror=alert(1)>'
#: Every hostile value the registry holds; none may appear unescaped in a page.
HOSTILE = (SCRIPT, IMG)
FEATS_DIR = 'feats"><img src=x onerror=alert(1)>'
EVIL_MODEL = 'churn "><img src=x onerror=alert(1)>'
RUN_NAME = f"train {SCRIPT}"
USER = f"{SCRIPT}{IMG}"


def rows(start: int, count: int) -> pa.Table:
    """``count`` rows of a small feature table, ``x`` from ``start``."""
    return pa.table(
        {"x": [float(i) for i in range(start, start + count)], "y": [2.0 * i for i in range(count)]}
    )


def table_id(path: str) -> str:
    """A Delta table's id (``metaData.id``), read from its log."""
    from deltalake import DeltaTable

    return DeltaTable(path).metadata().id


def _register(client: MlflowClient, name: str, run_id: str, source: str) -> str:
    return str(client.create_model_version(name, source, run_id=run_id).version)


def build(root: Path, template: Path) -> dict[str, Any]:
    """Build the registry (see the module docstring) with the migrated SQLite ``template``.

    Returns:
        ``uri`` (the ``lineage+sqlite:`` URI), ``sales`` and ``feats`` (table paths),
        ``unrecorded`` (a table path no record names) and ``root``.
    """
    from deltalake import CommitProperties, DeltaTable, write_deltalake

    shutil.copyfile(template, root / "mlflow.db")
    uri = f"lineage+sqlite:///{root / 'mlflow.db'}"
    sales, feats, unrecorded = (str(root / n) for n in ("sales", FEATS_DIR, "unrecorded"))
    write_deltalake(sales, rows(0, 30))
    write_deltalake(feats, rows(0, 5))
    write_deltalake(unrecorded, rows(0, 2))
    cwd, user = os.getcwd(), os.environ.get("MLFLOW_TRACKING_USERNAME")
    os.chdir(root)
    os.environ["MLFLOW_TRACKING_USERNAME"] = USER  # who the events say moved aliases and stages
    try:
        with tracking_at(uri), warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            mlflow.set_experiment("ui")
            client = MlflowClient()
            client.create_registered_model("ridge", description=f"ridge {SCRIPT}")
            with mlflow.start_run(run_name=RUN_NAME) as run:
                read_pandas(DeltaTable(sales))
                lp.log_delta_input(feats)
                mlflow.log_param("alpha", IMG)
                mlflow.set_tag("lineage.env.pkg.evil", SCRIPT)
                mlflow.set_tag("lineage.code.git_commit", IMG)
            _register(client, "ridge", run.info.run_id, f"runs:/{run.info.run_id}/model")
            client.set_registered_model_alias("ridge", "champion", "1")
            client.transition_model_version_stage("ridge", "1", "Production")
            time.sleep(0.05)
            DeltaTable(sales).delete(
                "x < 10.0", commit_properties=CommitProperties(custom_metadata={"userName": USER})
            )
            with mlflow.start_run(run_name="after the bad write") as run:
                read_pandas(DeltaTable(sales))
                mlflow.log_param("alpha", "0.5")
            _register(client, "ridge", run.info.run_id, f"runs:/{run.info.run_id}/model")
            client.set_registered_model_alias("ridge", "champion", "2")
            client.transition_model_version_stage("ridge", "2", "Staging")
            write_deltalake(feats, rows(100, 5), mode="overwrite")
            DeltaTable(feats).vacuum(
                retention_hours=0, enforce_retention_duration=False, dry_run=False
            )
            client.create_registered_model(EVIL_MODEL, description=SCRIPT)
            with mlflow.start_run(run_name=IMG) as run:
                lp.log_delta_input(feats, context=IMG)
            _register(client, EVIL_MODEL, run.info.run_id, f"runs:/{run.info.run_id}/model")
            client.set_registered_model_alias(EVIL_MODEL, "champion", "1")
            DeltaTable(feats).delete("x > 103.0")
    finally:
        os.chdir(cwd)
        if user is None:
            os.environ.pop("MLFLOW_TRACKING_USERNAME", None)
        else:
            os.environ["MLFLOW_TRACKING_USERNAME"] = user
        os.environ.pop("MLFLOW_EXPERIMENT_ID", None)
        mlflow.tracking.fluent._active_experiment_id = None
    return {"uri": uri, "sales": sales, "feats": feats, "unrecorded": unrecorded, "root": root}


class Page(HTMLParser):
    """A rendered page as a browser would parse it.

    Attributes:
        tags: Every start tag, with its attributes.
        scripts: The body of each ``<script>`` element.
        text: The text a person reads (character references decoded, text nodes joined by a
            space).
        rows: Per table id, the cells' text of each body row (text nodes joined by a space).
    """

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.scripts: list[str] = []
        self.rows: dict[str, list[list[str]]] = {}
        self._text: list[str] = []
        self._tables: list[str] = []
        self._cell: list[str] | None = None
        self._in_body = self._in_script = False
        self.feed(html)
        self.close()

    @property
    def text(self) -> str:
        return " ".join(" ".join(self._text).split())

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        if tag == "table":
            self._tables.append(dict(attrs).get("id") or "")
        elif tag == "tbody":
            self._in_body = True
        elif tag == "tr" and self._in_body and self._tables:
            self.rows.setdefault(self._tables[-1], []).append([])
        elif tag == "td" and self._in_body:
            self._cell = []
        elif tag == "script":
            self._in_script = True
            self.scripts.append("")

    def handle_endtag(self, tag: str) -> None:
        if tag == "table" and self._tables:
            self._tables.pop()
        elif tag == "tbody":
            self._in_body = False
        elif tag == "td" and self._cell is not None:
            self.rows[self._tables[-1]][-1].append(" ".join(" ".join(self._cell).split()))
            self._cell = None
        elif tag == "script":
            self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script:
            self.scripts[-1] += data
            return
        self._text.append(data)
        if self._cell is not None:
            self._cell.append(data)
