"""The same sequence of MLflow operations, run against any tracking/registry URI.

Used to prove that ``lineage+X`` behaves exactly like ``X``: the tests run the workout on both
and compare the normalised outcomes (ids and times replaced, the plugin's ``lineage.*`` tags
set aside: adding those is the plugin's job).
"""

from __future__ import annotations

import warnings
from typing import Any

from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag, ViewType
from mlflow.exceptions import MlflowException
from mlflow.tracking._tracking_service.utils import _get_store

from lineage_plugin.tags import is_reserved

#: ``lineage.*`` keys the workout sets itself, as a caller: kept by lineage+ like any tag.
CALLER_KEYS = frozenset({"lineage.note", "lineage.status", "lineage.team"})


class _Ids:
    def __init__(self) -> None:
        self.names: dict[str, str] = {}

    def __call__(self, value: str) -> str:
        return self.names.setdefault(value, f"<id{len(self.names)}>")


def _tags(tags: dict[str, str], caller: frozenset[str] = frozenset()) -> dict[str, str]:
    """The tags, without those the plugin adds (reserved keys, unless the caller set them)."""
    return {
        k: v
        for k, v in sorted(tags.items())
        if (k in caller or not is_reserved(k)) and k != "mlflow.user"
    }


def _run(run: Any, ids: _Ids) -> dict[str, Any]:
    return {
        "id": ids(run.info.run_id),
        "name": run.info.run_name,
        "status": run.info.status,
        "lifecycle": run.info.lifecycle_stage,
        "params": dict(sorted(run.data.params.items())),
        "metrics": dict(sorted(run.data.metrics.items())),
        "tags": _tags(run.data.tags),
    }


def _error(call: Any) -> str:
    try:
        call()
    except MlflowException as exc:
        return exc.error_code
    return "no error"


def workout(uri: str) -> dict[str, Any]:
    """Run the workout against ``uri`` (tracking and registry) and return its outcome."""
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    ids = _Ids()
    out: dict[str, Any] = {}

    exp_id = client.create_experiment("workout", tags={"team": "ml"})
    out["experiment"] = (client.get_experiment_by_name("workout").tags, ids(exp_id))
    run_ids = []
    for n in range(5):
        run = client.create_run(exp_id, run_name=f"run-{n}", tags={"n": str(n)})
        run_ids.append(run.info.run_id)
        client.log_batch(
            run.info.run_id,
            metrics=[Metric("loss", 1.0 / (n + 1), 0, step) for step in range(3)],
            params=[Param("alpha", str(n / 10))],
            tags=[RunTag("kind", "even" if n % 2 == 0 else "odd")],
        )
    client.set_tag(run_ids[0], "temp", "x")
    client.delete_tag(run_ids[0], "temp")
    pending = client.log_batch(
        run_ids[1], metrics=[Metric("async_metric", 3.0, 0, 0)], synchronous=False
    )
    pending.wait()
    client.set_terminated(run_ids[2], "FAILED")
    client.delete_run(run_ids[3])

    out["runs"] = [_run(client.get_run(r), ids) for r in run_ids]
    out["history"] = [(m.value, m.step) for m in client.get_metric_history(run_ids[0], "loss")]
    pages, token = [], None
    while True:
        page = client.search_runs(
            [exp_id],
            "params.alpha != '0.9'",
            order_by=["metrics.loss ASC"],
            max_results=2,
            page_token=token,
        )
        pages.append([ids(r.info.run_id) for r in page])
        token = page.token
        if not token:
            break
    out["pages"] = pages
    out["deleted"] = [
        ids(r.info.run_id)
        for r in client.search_runs([exp_id], run_view_type=ViewType.DELETED_ONLY)
    ]
    client.restore_run(run_ids[3])
    out["restored"] = client.get_run(run_ids[3]).info.lifecycle_stage
    out["missing_run"] = _error(lambda: client.get_run("0" * 32))

    client.create_registered_model("workout-model", tags={"owner": "me"}, description="d")
    for r in run_ids[:3]:
        client.create_model_version("workout-model", f"runs:/{r}/model", run_id=r)
    client.set_registered_model_alias("workout-model", "champion", "2")
    client.transition_model_version_stage("workout-model", "1", "Production")
    # Stock MLflow 3.17 fails this one on psycopg 3 (SQLAlchemy 2.1's driver for plain
    # postgresql:// URLs): it compares the integer version column with the version string
    # (mlflow/mlflow#24592). lineage+ must then fail the same way.
    out["archiving"] = _error(
        lambda: client.transition_model_version_stage(
            "workout-model", "3", "Production", archive_existing_versions=True
        )
    )
    client.set_model_version_tag("workout-model", "3", "reviewed", "yes")
    client.update_model_version("workout-model", "2", description="second")
    versions = client.search_model_versions("name='workout-model'", max_results=2)
    out["versions_page"] = [v.version for v in versions]
    out["versions"] = [
        {
            "version": v.version,
            "stage": v.current_stage,
            "run": ids(v.run_id),
            "description": v.description,
            "tags": _tags(v.tags),
            "aliases": sorted(v.aliases),
        }
        for v in (client.get_model_version("workout-model", str(n)) for n in (1, 2, 3))
    ]
    out["alias"] = client.get_model_version_by_alias("workout-model", "champion").version
    client.delete_model_version("workout-model", "2")
    model = client.get_registered_model("workout-model")
    out["model"] = (_tags(model.tags), model.description, sorted(model.aliases))
    out["missing_version"] = _error(lambda: client.get_model_version("workout-model", "9"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # lineage+ warns about the reserved lineage.status
        out["lifecycle"] = _lifecycle(client, uri, exp_id, run_ids)
    return out


def _version(client: MlflowClient, name: str, version: str, ids: _Ids) -> dict[str, Any]:
    v = client.get_model_version(name, version)
    return {"stage": v.current_stage, "run": ids(v.run_id), "tags": _tags(v.tags, CALLER_KEYS)}


def _lifecycle(client: MlflowClient, uri: str, exp_id: str, run_ids: list[str]) -> dict:
    """Deletes, restores, hard deletes, copies, renames, and the caller's lineage.* tags."""
    ids = _Ids()
    out: dict[str, Any] = {}
    store = _get_store(uri)
    # runs: soft delete, restore, and removed for good (what `mlflow gc` calls)
    hard = hasattr(store, "_hard_delete_run")  # not over REST: `mlflow gc` runs on the backend
    client.delete_run(run_ids[4])
    if hard:
        store._hard_delete_run(run_ids[4])
        out["hard_deleted_run"] = _error(lambda: client.get_run(run_ids[4]))
    other = client.create_experiment("workout-side")
    side = client.create_run(other, run_name="side").info.run_id
    client.delete_experiment(other)
    out["side_run_deleted"] = client.get_run(side).info.lifecycle_stage
    client.restore_experiment(other)
    out["side_run_restored"] = client.get_run(side).info.lifecycle_stage
    client.delete_experiment(other)
    if hard:
        store._hard_delete_run(side)
        store._hard_delete_experiment(other)
        out["hard_deleted_experiment"] = _error(lambda: client.get_experiment(other))
    # model versions with the caller's own lineage.* tags, one of them a reserved key
    name = "workout-tags"
    client.create_registered_model(name, tags={"lineage.team": "ml"})
    tagged = {"lineage.note": "mine", "lineage.status": "audited", "plain": "x"}
    for r in run_ids[:2]:
        client.create_model_version(name, f"runs:/{r}/model", run_id=r, tags=tagged)
    client.set_model_version_tag(name, "1", "lineage.note", "changed")
    client.delete_model_version_tag(name, "2", "lineage.note")
    client.set_registered_model_alias(name, "champion", "1")
    client.transition_model_version_stage(name, "1", "Staging")
    out["tagged"] = [_version(client, name, v, ids) for v in ("1", "2")]
    # copy, delete, rename and delete a registered model
    copy = client.copy_model_version(f"models:/{name}/1", "workout-copy")
    out["copy"] = (copy.version, _version(client, "workout-copy", copy.version, ids))
    client.delete_model_version(name, "1")
    out["deleted_version"] = _error(lambda: client.get_model_version(name, "1"))
    out["alias_gone"] = _error(lambda: client.get_model_version_by_alias(name, "champion"))
    if uri.removeprefix("lineage+").startswith("file:"):
        # MLflow's (deprecated) file store cannot rename a model whose versions have tags
        # (its rename passes tag keys where tags are expected); lineage+ versions always do.
        client.delete_registered_model(name)
        client.create_registered_model(name)
        client.create_model_version(name, f"runs:/{run_ids[0]}/model", run_id=run_ids[0])
        name = "workout-renamed"
        client.create_registered_model(name, tags={"lineage.team": "ml"})
    else:
        client.rename_registered_model(name, "workout-renamed")
    renamed = client.get_registered_model("workout-renamed")
    out["renamed"] = (renamed.name, _tags(renamed.tags, CALLER_KEYS))
    out["renamed_versions"] = [
        (v.version, _tags(v.tags, CALLER_KEYS))
        for v in client.search_model_versions("name='workout-renamed'")
    ]
    out["old_name"] = _error(lambda: client.get_registered_model(name))
    out["rename_taken"] = _error(
        lambda: client.rename_registered_model("workout-renamed", "workout-copy")
    )
    client.delete_registered_model("workout-renamed")
    out["deleted_model"] = _error(lambda: client.get_registered_model("workout-renamed"))
    out["models"] = sorted(m.name for m in client.search_registered_models())
    return out
