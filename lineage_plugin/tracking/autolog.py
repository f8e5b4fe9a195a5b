"""Turning capture on and off.

``autolog()`` registers post-import hooks: ``deltalake``, ``polars``, ``pyspark.sql`` and
``delta.tables`` (delta-spark) are patched when the user's code imports them (or at once, if
it already has), never imported by the plugin itself.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable

_state = {"enabled": False}
_lock = threading.Lock()

#: (module imported by the user, hooks module, its install function)
_HOOKS = (
    ("mlflow.tracking.client", "lineage_plugin.tracking.mlflow_hooks", "install"),
    ("deltalake", "lineage_plugin.tracking.deltalake_hooks", "install"),
    ("polars", "lineage_plugin.tracking.polars_hooks", "install"),
    ("pyspark.sql", "lineage_plugin.tracking.spark_hooks", "install"),
    ("pyspark.sql.connect.readwriter", "lineage_plugin.tracking.spark_hooks", "install_connect"),
    ("delta.tables", "lineage_plugin.tracking.spark_hooks", "install_delta_tables"),
    ("delta.connect.tables", "lineage_plugin.tracking.spark_hooks", "install_delta_connect"),
)


def _installer(hooks_module: str, function: str) -> Callable[[object], None]:
    def install(module: object) -> None:
        if _state["enabled"]:
            getattr(importlib.import_module(hooks_module), function)(module)

    return install


_INSTALLERS = tuple((module, _installer(hooks, fn)) for module, hooks, fn in _HOOKS)


def autolog(disable: bool = False) -> None:
    """Record every Delta read into the active run, or into the next run started.

    Hooks ``deltalake.DeltaTable`` reads, polars ``read_delta``/``scan_delta``, PySpark Delta
    reads (``spark.read...load/table``, ``spark.table``, ``DeltaTable.forPath/forName``, SQL), and
    ``mlflow.log_input`` of Delta datasets. Also turned on by ``MLFLOW_LINEAGE_AUTOLOG=true``
    and whenever a ``lineage+`` store is loaded. Calling it again does nothing.

    Args:
        disable: Turn capture off and restore the patched methods.

    Example:
        >>> import lineage_plugin
        >>> lineage_plugin.autolog()
    """
    from mlflow.utils.import_hooks import register_post_import_hook

    from lineage_plugin.tracking.patching import unpatch_all

    with _lock:
        if disable:
            _state["enabled"] = False
            unpatch_all()
            return
        if _state["enabled"]:
            return
        _state["enabled"] = True
    for module_name, install in _INSTALLERS:
        register_post_import_hook(install, module_name, overwrite=True)


def is_enabled() -> bool:
    """Whether capture is on in this process."""
    return _state["enabled"]
