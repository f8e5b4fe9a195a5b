"""Which registered models and experiments the current request may see.

The ``lineage`` app shows everything (like the stock server without auth); the
``lineage-basic-auth`` app installs a :class:`ModelAccess` that asks MLflow's permissions.
"""

from __future__ import annotations

from typing import Protocol


class ModelAccess(Protocol):
    """Decides, inside a request, whether its user may READ a registered model or the runs of
    an experiment."""

    def may_read(self, name: str) -> bool:
        """Whether the request's user may read registered model ``name``."""
        ...

    def may_read_experiment(self, experiment_id: str) -> bool:
        """Whether the request's user may read the runs of experiment ``experiment_id``."""
        ...


class _Everything:
    def may_read(self, name: str) -> bool:
        return True

    def may_read_experiment(self, experiment_id: str) -> bool:
        return True


#: No restriction (the ``lineage`` app).
EVERYTHING: ModelAccess = _Everything()


def current() -> ModelAccess:
    """The access rule of the app serving the current request."""
    from flask import current_app

    return current_app.extensions.get("lineage", {}).get("access", EVERYTHING)
