"""Turning capture on and off.

``autolog()`` registers post-import hooks: ``deltalake``, ``polars``, ``pyspark.sql`` and
``delta.tables`` (delta-spark) are patched when the user's code imports them (or at once, if
it already has), never imported by the plugin itself. Which runs the hooks then record is
decided by :func:`lineage_plugin.tracking.scope.capture_applies`.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable

from lineage_plugin.tracking import scope

_lock = threading.Lock()

#: (module imported by the user, hooks module, its install function)
_HOOKS = (
    ("mlflow.tracking.client", "lineage_plugin.tracking.mlflow_hooks", "install"),
    ("deltalake", "lineage_plugin.tracking.deltalake_hooks", "install"),
    ("deltalake", "lineage_plugin.tracking.deltalake_writes", "install"),
    ("polars", "lineage_plugin.tracking.polars_hooks", "install"),
    ("pyspark.sql", "lineage_plugin.tracking.spark_hooks", "install"),
    ("pyspark.sql.connect.readwriter", "lineage_plugin.tracking.spark_hooks", "install_connect"),
    ("delta.tables", "lineage_plugin.tracking.spark_hooks", "install_delta_tables"),
    ("delta.connect.tables", "lineage_plugin.tracking.spark_hooks", "install_delta_connect"),
)


def _installer(hooks_module: str, function: str) -> Callable[[object], None]:
    def install(module: object) -> None:
        if scope.hooks_on():
            getattr(importlib.import_module(hooks_module), function)(module)

    # MLflow's registry replaces a module's hook of the same __name__ (overwrite=True): each
    # installer has its own, so two hooks for one module (deltalake's reads and writes) both run.
    install.__name__ = install.__qualname__ = f"install_{hooks_module}.{function}"
    return install


_INSTALLERS = tuple((module, _installer(hooks, fn)) for module, hooks, fn in _HOOKS)


def _install_hooks() -> None:
    from mlflow.utils.import_hooks import register_post_import_hook

    for module_name, install in _INSTALLERS:
        register_post_import_hook(install, module_name, overwrite=True)


def autolog(disable: bool = False) -> None:
    """Record every Delta read of every run into the active run, or into the next run started,
    and every Delta commit a run makes (stamped with the run) into that run.

    Hooks ``deltalake.DeltaTable`` reads, polars ``read_delta``/``scan_delta``, PySpark Delta
    reads (``spark.read...load/table``, ``spark.table``, ``DeltaTable.forPath/forName``, SQL),
    ``mlflow.log_input`` of Delta datasets, and the writes of ``deltalake`` and polars
    (``write_deltalake``, ``DeltaTable.merge/update/delete/restore/optimize``, ``write_delta``)
    and of Spark (``df.write...save/saveAsTable/insertInto``, ``df.writeTo``, Delta SQL,
    delta-spark's ``DeltaTable`` operations),
    whatever the tracking URI. ``MLFLOW_LINEAGE_AUTOLOG=
    true`` does the same in every MLflow process. Without either, loading a ``lineage+`` store
    turns capture on for the runs tracked through ``lineage+`` stores only. Calling it again does
    nothing.

    Args:
        disable: Turn capture off for every run and restore the patched methods. Loading a
            ``lineage+`` store afterwards does not turn it back on; ``autolog()`` does.

    Example:
        >>> import lineage_plugin
        >>> lineage_plugin.autolog()
    """
    from lineage_plugin.tracking.patching import unpatch_all

    with _lock:
        if disable:
            scope.set_scope(hooks=False, explicit=False, disabled=True)
            unpatch_all()
            return
        if scope.explicit():
            return
        installed = scope.hooks_on()
        scope.set_scope(hooks=True, explicit=True)
    if not installed:
        _install_hooks()


def enable_for_lineage_stores() -> None:
    """Capture the runs tracked through ``lineage+`` stores (called when one is loaded).

    Installs the hooks without turning capture on for other runs: a run on a plain URI in the
    same process is not captured. Does nothing after ``autolog(disable=True)``, or when capture
    is already on.
    """
    with _lock:
        if scope.hooks_on() or scope.disabled_by_user():
            return
        scope.set_scope(hooks=True, explicit=False)
    _install_hooks()


def is_enabled() -> bool:
    """Whether the hooks are installed in this process (for lineage+ runs or for every run);
    :func:`lineage_plugin.tracking.scope.capture_applies` says whether a run is captured."""
    return scope.hooks_on()
