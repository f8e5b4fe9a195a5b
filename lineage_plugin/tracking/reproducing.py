"""The child side of ``mlflow-lineage reproduce``: pinned reads and a tagged run.

``reproduce`` starts the training in a child process with ``MLFLOW_LINEAGE_REPRODUCE`` set to
a small JSON request. In that process, with capture on:

- every ``deltalake.DeltaTable`` opened *without* a version on a pinned table is opened at the
  recorded version instead (time travel), so the training reads the data the original read,
  whether or not the table was restored. polars ``read_delta``/``scan_delta`` open tables the
  same way. A read that names its own version keeps it.
- every run started gets ``lineage.reproduces`` (``<model>/<version>``) and
  ``lineage.reproduce.token`` tags, by which the parent finds the run and its model.

``reproduce --upstream`` re-runs pipeline runs too, and they must never write over the real
tables. Its requests carry a **scratch** map: real table URI -> a scratch table, with the real
versions rebuilt there and their scratch versions. A ``DeltaTable`` opened on a mapped table
opens the scratch table instead (a version, asked for or pinned, is translated; one not
rebuilt there is read from the real table), and ``write_deltalake``/``DeltaTable.create``
to a mapped table write the scratch table. With ``confined`` on, a write to any other table
is refused before anything is written: the step's recorded run did not write it.
"""

from __future__ import annotations

import functools
import inspect
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from lineage_plugin.errors import LineageError

REPRODUCE_ENV = "MLFLOW_LINEAGE_REPRODUCE"
REPRODUCES_TAG = "lineage.reproduces"
TOKEN_TAG = "lineage.reproduce.token"
PINNED_TAG = "lineage.reproduce.pinned"


class ReproduceRedirectError(LineageError):
    """A reproducing child touched a table its scratch map does not allow."""


@dataclass(frozen=True, kw_only=True)
class Scratch:
    """Where a reproduction rebuilds one real table.

    Attributes:
        path: The scratch table's location.
        versions: Real version -> the scratch version holding the same data.
    """

    path: str
    versions: dict[int, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """As JSON (versions keyed by text)."""
        return {"path": self.path, "versions": {str(k): v for k, v in self.versions.items()}}


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
    scratch: dict[str, Scratch] = field(default_factory=dict)
    confined: bool = False

    def to_env(self) -> str:
        """The value of :data:`REPRODUCE_ENV` for the child."""
        data: dict[str, Any] = {
            "token": self.token,
            "model": self.model,
            "version": self.version,
            "pins": self.pins,
        }
        if self.scratch:
            data["scratch"] = {uri: s.to_dict() for uri, s in self.scratch.items()}
        if self.confined:
            data["confined"] = True
        return json.dumps(data, sort_keys=True)

    def opened(self, uri: str, version: int | None) -> tuple[str, int | None] | None:
        """Where and at which version a table opened as ``uri`` (normalised) at ``version``
        (``None``: not given) is read in this reproduction; ``None``: as asked.

        A version rebuilt in a scratch table is read there; one that was not (no recorded
        run of the chain wrote it) is read from the real table, which reading leaves as it is.
        """
        if version is None:
            version = self.pins.get(uri)
        scratch = self.scratch.get(uri)
        if scratch is not None and version is None:
            return scratch.path, None
        if scratch is not None and version in scratch.versions:
            return scratch.path, scratch.versions[version]
        return None if version is None else (uri, version)

    def written(self, uri: str) -> str | None:
        """The scratch table a write to ``uri`` (normalised) goes to; ``None``: the table itself.

        Raises:
            ReproduceRedirectError: Writes are confined and ``uri`` has no scratch table.
        """
        scratch = self.scratch.get(uri)
        if scratch is not None:
            return scratch.path
        if self.confined:
            raise ReproduceRedirectError(
                f"reproduce --upstream: refusing to write {uri}. The run this step reproduces "
                "did not write it, and a reproduction writes only to scratch tables; nothing "
                "was written."
            )
        return None

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
    scratch = {
        str(uri): Scratch(
            path=str(s["path"]), versions={int(k): int(v) for k, v in s["versions"].items()}
        )
        for uri, s in data.get("scratch", {}).items()
    }
    return ReproduceRequest(
        token=data["token"],
        model=data["model"],
        version=str(data["version"]),
        pins=pins,
        scratch=scratch,
        confined=bool(data.get("confined")),
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
        if request is not None and (request.pins or request.scratch):
            try:
                bound = signature.bind(self, *args, **kwargs)
            except TypeError:
                return original(self, *args, **kwargs)  # let deltalake say what is wrong
            uri = bound.arguments.get("table_uri")
            version = bound.arguments.get("version")
            if isinstance(uri, str | os.PathLike) and not isinstance(version, str):
                where = request.opened(normalize_uri(os.fspath(uri)), version)
                if where is not None:
                    if where[0] != normalize_uri(os.fspath(uri)):
                        bound.arguments["table_uri"] = where[0]
                    bound.arguments["version"] = where[1]
                    return original(*bound.args, **bound.kwargs)
        return original(self, *args, **kwargs)

    __init__.__lineage_original__ = original  # type: ignore[attr-defined]
    return __init__


def redirect_write(bound: Any, key: str) -> None:
    """Point a write call's target (argument ``key``: a path, or a ``DeltaTable`` opened
    through the pins) at its scratch table in a reproduction; refuse a confined one."""
    from lineage_plugin.delta.log import normalize_uri

    request = current_request()
    target = bound.arguments.get(key)
    if request is None or not (request.scratch or request.confined):
        return
    if isinstance(target, str | os.PathLike):
        scratch = request.written(normalize_uri(os.fspath(target)))
        if scratch is not None:
            bound.arguments[key] = scratch
        return
    target = getattr(target, "table", target)  # a TableOptimizer writes its DeltaTable
    if hasattr(target, "table_uri"):  # a DeltaTable: opened on its scratch table already
        uri = normalize_uri(target.table_uri)
        if request.confined and not any(
            uri == normalize_uri(s.path) for s in request.scratch.values()
        ):
            request.written(uri)  # raises


def install_pins(table_class: type) -> None:
    """Open pinned tables at their recorded versions (only in a reproducing child)."""
    from lineage_plugin.tracking.patching import patch

    if current_request() is not None:
        patch(table_class, "__init__", _pinned_init)


def install_polars_paths(utils_module: Any) -> None:
    """polars resolves a local table path strictly (it must exist) before opening it; in a
    reproduction, a real table re-made in a scratch table may be gone: let its path through,
    so the open reaches the scratch table (only in a reproducing child)."""
    from lineage_plugin.delta.log import normalize_uri
    from lineage_plugin.tracking.patching import patch_function

    request = current_request()
    if (
        request is None
        or not request.scratch
        or "_resolve_delta_lake_uri" not in vars(utils_module)
    ):
        return

    def make(original: Callable[..., Any]) -> Callable[..., Any]:
        def resolve(table_uri: Any, *, strict: bool = True) -> str:
            if strict and isinstance(table_uri, str | os.PathLike):
                path = os.path.abspath(os.path.expanduser(os.fspath(table_uri)))
                strict = normalize_uri(path) not in request.scratch
            return original(table_uri, strict=strict)

        return resolve

    patch_function(utils_module, "_resolve_delta_lake_uri", make)
