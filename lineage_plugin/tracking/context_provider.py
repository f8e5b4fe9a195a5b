"""MLflow run-context provider: environment and code tags on every run, in ``create_run``.

MLflow asks every registered provider for tags when a run starts, so these tags cost no extra
call. The provider is active only while capture is on (``autolog()``, the environment variable,
or a loaded ``lineage+`` store).
"""

from __future__ import annotations

from mlflow.tracking.context.abstract_context import RunContextProvider


class LineageRunContextProvider(RunContextProvider):
    """Adds ``lineage.env.*`` and ``lineage.code.*`` tags to runs while capture is on."""

    def in_context(self) -> bool:
        from lineage_plugin.tracking import autolog

        return autolog.is_enabled()

    def tags(self) -> dict[str, str]:
        from lineage_plugin.tracking.capture import run_start_tags

        return run_start_tags()
