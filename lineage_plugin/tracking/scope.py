"""Which runs capture applies to: the one predicate every hook asks before it records.

Capture is on in one of two ways:

- **for runs tracked through a ``lineage+`` store**: loading a ``lineage+`` store installs the
  hooks (:func:`lineage_plugin.tracking.autolog.enable_for_lineage_stores`), and they record
  only while MLflow's tracking URI (``mlflow.get_tracking_uri()``, the URI ``mlflow.start_run``
  and the capture writer use) starts with ``lineage+``. A run on a plain URI in the same
  process is left untouched: no ``lineage.*`` tag, no recorded read.
- **for every run**: the user asked for it with ``lineage_plugin.autolog()`` or
  ``MLFLOW_LINEAGE_AUTOLOG=true``.

``lineage_plugin.autolog(disable=True)`` turns both off, and loading another ``lineage+`` store
afterwards does not turn capture back on: only ``autolog()`` does.
"""

from __future__ import annotations

#: The scheme prefix of a lineage URI (``lineage_plugin.store.uris.PREFIX``, a layer above).
LINEAGE_PREFIX = "lineage+"

# hooks: the patches are (or will be, on import) installed; explicit: every run is captured;
# disabled: the user turned capture off, so loading a lineage+ store does not turn it back on.
_state = {"hooks": False, "explicit": False, "disabled": False}


def set_scope(*, hooks: bool, explicit: bool, disabled: bool = False) -> None:
    """Record how capture was turned on (called by ``autolog`` only)."""
    _state.update(hooks=hooks, explicit=explicit, disabled=disabled)


def hooks_on() -> bool:
    """Whether the hooks are installed (for lineage+ runs, or for every run)."""
    return _state["hooks"]


def explicit() -> bool:
    """Whether the user asked for capture of every run (``autolog()`` or the env var)."""
    return _state["explicit"]


def disabled_by_user() -> bool:
    """Whether the user turned capture off with ``autolog(disable=True)``."""
    return _state["disabled"]


def capture_applies(tracking_uri: str | None = None) -> bool:
    """Whether a read or a run start now is captured.

    True when the user asked for capture of every run, or when the hooks are on and the run is
    tracked through a ``lineage+`` URI. Cheap: it runs on every hooked read.

    Args:
        tracking_uri: The URI the run is tracked through (an ``MlflowClient``'s own URI);
            default: MLflow's current tracking URI.
    """
    if _state["explicit"]:
        return True
    if not _state["hooks"]:
        return False
    if tracking_uri is None:
        import mlflow

        tracking_uri = mlflow.get_tracking_uri()
    return str(tracking_uri).startswith(LINEAGE_PREFIX)
