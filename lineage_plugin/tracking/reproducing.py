"""The child side of ``mlflow-lineage reproduce``: pinned reads and a tagged run.

``reproduce`` starts the training in a child process with ``MLFLOW_LINEAGE_REPRODUCE`` set to
a small JSON request. In that process, with capture on:

- every ``deltalake.DeltaTable`` opened *without* a version on a pinned table is opened at the
  recorded version instead (time travel), so the training reads the data the original read,
  whether or not the table was restored. polars ``read_delta``/``scan_delta`` open tables the
  same way. A read that names its own version keeps it.
- every run started gets ``lineage.reproduces`` (``<model>/<version>``) and
  ``lineage.reproduce.token`` tags, by which the parent finds the run and its model.
"""

from __future__ import annotations

import functools
import inspect
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

REPRODUCE_ENV = "MLFLOW_LINEAGE_REPRODUCE"
REPRODUCES_TAG = "lineage.reproduces"
TOKEN_TAG = "lineage.reproduce.token"
PINNED_TAG = "lineage.reproduce.pinned"


@dataclass(frozen=True, kw_only=True)
class ReproduceRequest:
    """What a reproducing child is asked to do.

    Attributes:
        token: Unique per reproduction; tags the runs it starts.
        model: Registered model name being reproduced.
        version: Its version.
        pins: Normalised table URI -> the version to read.
    """

    token: str
    model: str
    version: str
    pins: dict[str, int] = field(default_factory=dict)

    def to_env(self) -> str:
        """The value of :data:`REPRODUCE_ENV` for the child."""
        return json.dumps(
            {"token": self.token, "model": self.model, "version": self.version, "pins": self.pins},
            sort_keys=True,
        )

    def run_tags(self) -> dict[str, str]:
        """The tags every run of the child gets."""
        return {
            REPRODUCES_TAG: f"{self.model}/{self.version}",
            TOKEN_TAG: self.token,
            PINNED_TAG: "true" if self.pins else "false",
        }


@functools.lru_cache(maxsize=4)
def _parse(value: str) -> ReproduceRequest:
    data = json.loads(value)
    pins = {str(k): int(v) for k, v in data.get("pins", {}).items()}
    return ReproduceRequest(
        token=data["token"], model=data["model"], version=str(data["version"]), pins=pins
    )


def current_request() -> ReproduceRequest | None:
    """The request of this process, when ``reproduce`` started it."""
    value = os.environ.get(REPRODUCE_ENV)
    return _parse(value) if value else None


def pinned_version(uri: str) -> int | None:
    """The version a reproduction pins table ``uri`` (normalised) to, if any."""
    request = current_request()
    return request.pins.get(uri) if request is not None else None


def _pinned_init(original: Callable[..., Any]) -> Callable[..., Any]:
    signature = inspect.signature(original)

    @functools.wraps(original)
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        from lineage_plugin.delta.log import normalize_uri

        request = current_request()
        if request is not None and request.pins:
            try:
                bound = signature.bind(self, *args, **kwargs)
            except TypeError:
                return original(self, *args, **kwargs)  # let deltalake say what is wrong
            uri = bound.arguments.get("table_uri")
            if bound.arguments.get("version") is None and isinstance(uri, str | os.PathLike):
                pinned = request.pins.get(normalize_uri(os.fspath(uri)))
                if pinned is not None:
                    bound.arguments["version"] = pinned
                    return original(*bound.args, **bound.kwargs)
        return original(self, *args, **kwargs)

    __init__.__lineage_original__ = original  # type: ignore[attr-defined]
    return __init__


def install_pins(table_class: type) -> None:
    """Open pinned tables at their recorded versions (only in a reproducing child)."""
    from lineage_plugin.tracking.patching import patch

    if current_request() is not None:
        patch(table_class, "__init__", _pinned_init)
