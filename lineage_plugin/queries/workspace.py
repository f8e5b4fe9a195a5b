"""What every query needs: the MLflow stores behind a tracking URI, and its lineage index."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from lineage_plugin.errors import LineageError, LineageNotFoundError

if TYPE_CHECKING:
    from lineage_plugin.events import RegistryEvent
    from lineage_plugin.store.index import LineageIndex


_PAGE = 1000


def pages(fetch: Callable[[str | None], Any]) -> Iterator[Any]:
    """Every item of a paged MLflow search (``fetch(page_token) -> PagedList``)."""
    token = None
    while True:
        page = fetch(token)
        yield from page
        token = page.token
        if not token:
            return


def _tag(key: str, value: str) -> Any:
    from mlflow.entities.model_registry import ModelVersionTag

    return ModelVersionTag(key, value)


class UnknownModelError(LineageNotFoundError):
    """The registered model or model version does not exist."""


class IndexUnavailableError(LineageError):
    """The lineage index database cannot be opened (a server-side fault, not bad input)."""


class Workspace:
    """The MLflow stores and lineage index behind one tracking URI.

    Args:
        tracking_uri: A ``lineage+`` or plain MLflow tracking URI; ``None`` uses MLflow's
            (``MLFLOW_TRACKING_URI``). The model registry is read at the same URI.
    """

    def __init__(self, tracking_uri: str | None = None) -> None:
        import mlflow

        self.tracking_uri = tracking_uri or mlflow.get_tracking_uri()

    @functools.cached_property
    def tracking_store(self) -> Any:
        """MLflow's tracking store for the URI."""
        from mlflow.tracking._tracking_service.utils import _get_store

        return _get_store(self.tracking_uri)

    @functools.cached_property
    def registry_store(self) -> Any:
        """MLflow's model-registry store for the URI."""
        from mlflow.tracking._model_registry.utils import _get_store

        return _get_store(self.tracking_uri)

    @functools.cached_property
    def _registry_reader(self) -> Any:
        """A registry store for reading only: the backend's own, without the plugin's
        wrapper (which adds nothing to reads), so a query that only reads the registry does
        not build the ``lineage+`` store and turn capture on in its process."""
        from mlflow.tracking._model_registry.utils import _get_store

        from lineage_plugin.store.uris import inner_uri, is_lineage_uri

        if "registry_store" in self.__dict__ or not is_lineage_uri(self.tracking_uri):
            return self.registry_store
        return _get_store(inner_uri(self.tracking_uri))

    @functools.cached_property
    def index(self) -> LineageIndex:
        """The lineage index for the URI (see :func:`lineage_plugin.store.index.index_url`)."""
        from lineage_plugin.store.index import LineageIndex, index_url

        return LineageIndex(index_url(self.tracking_uri))

    def model_version(self, name: str, version: str | int) -> Any:
        """The MLflow ``ModelVersion``.

        Raises:
            UnknownModelError: No such registered model or version.
        """
        from mlflow.exceptions import MlflowException

        try:
            return self.registry_store.get_model_version(name, str(version))
        except MlflowException as exc:
            self.registered_model(name)  # a clearer error when the whole model is unknown
            raise UnknownModelError(
                f"Model '{name}' has no version {version}. "
                f"List its versions with: mlflow-lineage timeline --model '{name}'."
            ) from exc

    def registered_model(self, name: str) -> Any:
        """The MLflow ``RegisteredModel``.

        Raises:
            UnknownModelError: No such registered model (the message names the closest known
                names, or the models there are).
        """
        from mlflow.exceptions import MlflowException

        store = self.registry_store  # a store that cannot be built is not an unknown model
        try:
            return store.get_registered_model(name)
        except MlflowException as exc:
            if exc.error_code == "INVALID_PARAMETER_VALUE":  # a name MLflow cannot hold
                raise UnknownModelError(
                    f"There is no registered model '{name}': {exc.message}"
                ) from exc
            if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
                raise
            raise UnknownModelError(self._no_such_model(name)) from exc

    def _no_such_model(self, name: str) -> str:
        import difflib

        try:
            known = sorted({m.name for m in self.registered_models()})
        except Exception:  # the hint is a courtesy: the error stands without it
            known = []
        lowered = {k.lower(): k for k in known}
        close = difflib.get_close_matches(name.lower(), list(lowered), n=3, cutoff=0.6)
        if close:
            return (
                f"There is no registered model '{name}'. Did you mean: "
                f"{', '.join(lowered[c] for c in close)}?"
            )
        where = f"There is no registered model '{name}' at {self.tracking_uri}."
        if not known:
            return (
                f"{where} No model is registered there at all: check --tracking-uri (or "
                "MLFLOW_TRACKING_URI)."
            )
        more = f" (and {len(known) - 10} more)" if len(known) > 10 else ""
        return f"{where} The registered models are: {', '.join(known[:10])}{more}."

    def run(self, run_id: str) -> Any | None:
        """The MLflow ``Run``, or ``None`` when it no longer exists."""
        from mlflow.exceptions import MlflowException

        try:
            return self.tracking_store.get_run(run_id)
        except MlflowException:
            return None

    def lineage_runs(self) -> Iterator[Any]:
        """Every run (active or deleted, in every experiment) that has lineage tags."""
        from mlflow.entities import ViewType

        from lineage_plugin import tags as T

        store = self.tracking_store
        experiments = [
            e.experiment_id
            for e in pages(
                lambda token: store.search_experiments(
                    view_type=ViewType.ALL, max_results=_PAGE, page_token=token
                )
            )
        ]
        for start in range(0, len(experiments), 100):
            batch = experiments[start : start + 100]
            yield from pages(
                lambda token, batch=batch: store.search_runs(
                    experiment_ids=batch,
                    filter_string=f"tags.`{T.STATUS}` LIKE '%'",
                    run_view_type=ViewType.ALL,
                    max_results=_PAGE,
                    page_token=token,
                )
            )

    def deleted_experiment_ids(self) -> set[str]:
        """The experiments MLflow has soft-deleted (their runs count as deleted)."""
        from mlflow.entities import ViewType

        store = self.tracking_store
        return {
            e.experiment_id
            for e in pages(
                lambda token: store.search_experiments(
                    view_type=ViewType.DELETED_ONLY, max_results=_PAGE, page_token=token
                )
            )
        }

    def model_versions(self, model: str | None = None) -> Iterator[Any]:
        """Every model version (of ``model``, or of all models); prompt versions skipped."""
        from lineage_plugin import tags as T

        where = None if model is None else "name='{}'".format(model.replace("'", "''"))
        found = pages(
            lambda token: self._registry_reader.search_model_versions(
                where, max_results=_PAGE, page_token=token
            )
        )
        return (mv for mv in found if not T.is_prompt_version(mv.tags or {}))

    def registered_models(self) -> Iterator[Any]:
        """Every registered model."""
        return pages(
            lambda token: self._registry_reader.search_registered_models(
                max_results=_PAGE, page_token=token
            )
        )

    def record_event(self, event: RegistryEvent) -> None:
        """Write an event into MLflow (a tag of its model version) and into the index.

        MLflow's tag is the record; the index entry (skipped when the store indexed the tag
        already) only makes queries fast, so a failure there is a warning.
        """
        from lineage_plugin.store.recording import failed, own_tag_writes

        with own_tag_writes():
            self.registry_store.set_model_version_tag(
                event.name, event.version, _tag(event.tag_key, event.to_json())
            )
        try:
            self.require_index().record_events([event])
        except Exception as exc:
            failed(f"the {event.kind} event in the lineage index", exc)

    def require_index(self) -> LineageIndex:
        """The index, created if needed.

        Raises:
            IndexUnavailableError: The index database cannot be opened.
            LineageError: The index cannot be used (e.g. a newer schema).
        """
        try:
            self.index.ensure()
        except LineageError:
            raise
        except Exception as exc:
            raise IndexUnavailableError(
                f"Cannot open the lineage index at {self.index.url}: {exc}. Check "
                "MLFLOW_LINEAGE_INDEX_URI, or rebuild it with: mlflow-lineage reindex."
            ) from exc
        return self.index
