"""MLflow run-context provider: environment and code tags on every run, in ``create_run``.

MLflow asks every registered provider for tags when a run starts, so these tags cost no extra
call. The provider is active only for runs capture applies to: every run after ``autolog()``
or with ``MLFLOW_LINEAGE_AUTOLOG=true``; otherwise, once a ``lineage+`` store is loaded, the
runs started while the tracking URI is a ``lineage+`` URI.
"""

from __future__ import annotations

from mlflow.tracking.context.abstract_context import RunContextProvider


class LineageRunContextProvider(RunContextProvider):
    """Adds ``lineage.env.*`` and ``lineage.code.*`` tags to the runs capture applies to."""

    def in_context(self) -> bool:
        from lineage_plugin.tracking.scope import capture_applies

        return capture_applies()

    def tags(self) -> dict[str, str]:
        from lineage_plugin.tracking.capture import run_start_tags

        return run_start_tags()
