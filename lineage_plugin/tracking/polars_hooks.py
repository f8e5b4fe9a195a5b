"""Read hooks for polars ``read_delta`` / ``scan_delta``.

polars resolves a Delta scan when the query is collected (``DeltaDataset.to_dataset_scan``),
opening the table and reading it through ``DeltaTable.file_uris`` (native reader) or
``DeltaTable.to_pyarrow_dataset`` (``use_pyarrow=True``), which the deltalake hooks record.
This hook only tells them that polars is the reader and which columns and predicate it pushed
down, so a lazy scan is recorded with the version it read when it was collected.
"""

from __future__ import annotations

from typing import Any

from lineage_plugin.tracking.patching import ReadDetails, around_hook, patch

ENGINE = "polars"


def _details(dataset: Any, *args: Any, **kwargs: Any) -> ReadDetails:
    projection = kwargs.get("projection")
    return ReadDetails(
        ENGINE,
        filters=kwargs.get("pyarrow_predicate"),
        columns=tuple(projection) if projection else None,
    )


def install(module: Any = None) -> None:
    """Patch polars' Delta dataset (called when ``polars`` is imported)."""
    try:
        from polars.io.delta._dataset import DeltaDataset
    except ImportError:  # older polars: reads are still recorded by the deltalake hooks
        return
    if "to_dataset_scan" in DeltaDataset.__dict__:
        patch(DeltaDataset, "to_dataset_scan", lambda f: around_hook(f, _details))
