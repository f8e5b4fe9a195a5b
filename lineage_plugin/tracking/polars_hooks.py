"""Hooks for polars: reads (``read_delta`` / ``scan_delta``) and writes (``write_delta``,
``sink_delta``).

polars resolves a Delta scan when the query is collected: ``DeltaDataset.to_dataset_scan``
opens the table once (the ``DeltaTable`` is then cached, so later collects of the same lazy
frame read the same version) and reads it through ``DeltaTable.file_uris`` or
``to_pyarrow_dataset``. The hook records ``dataset.table().version()`` after every collect,
including the collects that reuse a resolved scan, so a lazy frame built outside a run and
collected inside it is recorded in that run, with the version it read.

``DataFrame.write_delta`` and ``LazyFrame.sink_delta`` write through ``deltalake``
(``write_deltalake``, or ``DeltaTable.merge`` for ``mode="merge"``), whose hooks stamp and
record the commit; polars' methods only label it, so it is recorded once, with engine
``polars``. A lazy frame sunk this way reads its sources during the write: those reads are
recorded too.
"""

from __future__ import annotations

from typing import Any

from lineage_plugin.tracking.deltalake_hooks import record_table_read
from lineage_plugin.tracking.deltalake_writes import labelled
from lineage_plugin.tracking.patching import ReadDetails, after_hook, patch
from lineage_plugin.tracking.reproducing import install_polars_paths

ENGINE = "polars"


def _after_scan(result: Any, a: dict[str, Any]) -> None:
    projection = a.get("projection")
    details = ReadDetails(
        ENGINE,
        filters=a.get("pyarrow_predicate"),
        columns=tuple(projection) if projection else None,
    )
    record_table_read(lambda: a["self"].table(), "polars scan", details)


def install(module: Any = None) -> None:
    """Patch polars' Delta dataset and writers (called when ``polars`` is imported)."""
    import polars

    for owner, method in ((polars.DataFrame, "write_delta"), (polars.LazyFrame, "sink_delta")):
        if method in owner.__dict__:
            patch(owner, method, lambda f: labelled(f, ENGINE))
    try:
        from polars.io.delta import _utils
        from polars.io.delta._dataset import DeltaDataset
    except ImportError:  # older polars: reads are still recorded by the deltalake hooks
        return
    install_polars_paths(_utils)  # only in a process started by `reproduce --upstream`
    if "to_dataset_scan" in DeltaDataset.__dict__:
        patch(DeltaDataset, "to_dataset_scan", lambda f: after_hook(f, _after_scan))
