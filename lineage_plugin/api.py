"""The public Python API: explicit logging and reading lineage back."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lineage_plugin import tags as T
from lineage_plugin.errors import CaptureError, DeltaLogError, LineageError, LineageNotFoundError
from lineage_plugin.records import DeltaInput, ModelVersionLineage, RunLineage

if TYPE_CHECKING:
    from deltalake import DeltaTable


def log_delta_input(
    table: str | DeltaTable,
    version: int | None = None,
    context: str = "training",
    *,
    storage_options: dict[str, str] | None = None,
    run_id: str | None = None,
) -> DeltaInput | None:
    """Record that the current run read ``table`` at ``version``.

    Without ``version`` the latest version is resolved once, now, and that exact version is
    recorded and returned: read the table at ``result.version`` so the record cannot lie.

    Args:
        table: A table path or URI, or an open ``deltalake.DeltaTable`` (its loaded version).
        version: The version read. Version 0 is a version.
        context: ``training``, ``evaluation``, or any label.
        storage_options: Object-store credentials, used to read the log and never recorded.
        run_id: The run to record into; by default the active run (or the next one started).

    Returns:
        The recorded input, or ``None`` when it could not be described (a warning says why,
        and the run is tagged ``lineage.status=incomplete``).

    Raises:
        TypeError: ``table`` is neither a path nor a ``DeltaTable``.
        CaptureError: Only when ``MLFLOW_LINEAGE_STRICT=true``.

    Example:
        >>> inp = lineage_plugin.log_delta_input("/data/sales")
        >>> df = DeltaTable("/data/sales", version=inp.version).to_pandas()
    """
    from lineage_plugin.delta import log as delta_log
    from lineage_plugin.tracking.capture import session

    is_path = isinstance(table, str) or hasattr(table, "__fspath__")
    if not is_path and not hasattr(table, "table_uri"):
        raise TypeError(
            f"log_delta_input() takes a table path or URI, or a deltalake.DeltaTable; "
            f"got {type(table).__name__}."
        )
    try:
        if is_path:
            info = delta_log.resolve(str(table), version, storage_options=storage_options)
        else:
            if version is not None and version != table.version():
                raise LineageError(
                    f"version={version} differs from the DeltaTable's loaded version "
                    f"{table.version()}; pass the path instead, or load that version."
                )
            info = delta_log.resolve(
                table.table_uri,
                table.version(),
                storage_options=table._storage_options,
                table=table,
            )
    except LineageError as exc:
        error = type(exc) if isinstance(exc, CaptureError) else CaptureError
        session().fail(f"log_delta_input({table!s}): {exc}", run_id=run_id, error=error)
        return None
    except Exception as exc:  # an unreadable log never breaks the user's run
        reason = f"log_delta_input({table!s}): could not read the table's log ({exc})"
        session().fail(reason, run_id=run_id, error=DeltaLogError)
        return None
    inp = info.to_input(engine="manual", context=context)
    session().record(inp, run_id=run_id)
    return inp


def get_run_lineage(run_id: str) -> RunLineage:
    """Return the lineage recorded on a run.

    Args:
        run_id: The MLflow run.

    Returns:
        The run's record (``status="missing"`` when it recorded nothing).
    """
    from mlflow.tracking import MlflowClient

    return T.run_lineage_from_tags(run_id, MlflowClient().get_run(run_id).data.tags)


def _model_version(name: str, version: str | int) -> Any:
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    try:
        return MlflowClient().get_model_version(name, str(version))
    except MlflowException as exc:
        raise LineageNotFoundError(
            f"Model version '{name}' version {version} was not found: {exc.message}"
        ) from exc


def get_lineage(model_name: str, version: str | int) -> ModelVersionLineage:
    """Return the typed lineage record of a registered model version.

    Args:
        model_name: Registered model name.
        version: Model version.

    Returns:
        The record attached when the version was registered; ``status`` is ``missing`` when the
        source run recorded no lineage (or the version was registered without the plugin).

    Raises:
        LineageNotFoundError: There is no such model version.

    Example:
        >>> lineage = lineage_plugin.get_lineage("diabetes", 1)
        >>> [(i.name, i.version) for i in lineage.inputs]
        [('diabetes', 3)]
    """
    return T.model_version_lineage(_model_version(model_name, version))
