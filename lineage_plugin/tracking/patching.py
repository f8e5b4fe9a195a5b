"""Reversible patches of third-party methods, with a re-entrancy guard.

A hooked read that calls other hooked reads (``to_pandas`` -> ``to_pyarrow_table`` ->
``to_pyarrow_dataset``) is recorded once, by the outermost call. An engine that reads through
another library's hook (polars reading through ``DeltaTable.file_uris``) says so with
:func:`reading_as`, and the inner hook records the read with the engine's name and details.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import threading
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass, replace
from typing import Any

_in_read: ContextVar[bool] = ContextVar("lineage_in_read", default=False)


@dataclass(frozen=True)
class ReadDetails:
    """What the engine that started a read knows about it."""

    engine: str
    filters: str | None = None
    partitions: str | None = None
    columns: tuple[str, ...] | None = None


_details: ContextVar[ReadDetails | None] = ContextVar("lineage_read_details", default=None)

_originals: dict[tuple[type, str], Any] = {}
_lock = threading.Lock()


def current_details(default: ReadDetails) -> ReadDetails:
    """The details an outer engine set, else ``default``; filled in from ``default``."""
    outer = _details.get()
    if outer is None:
        return default
    return replace(
        outer,
        filters=outer.filters or default.filters,
        partitions=outer.partitions or default.partitions,
        columns=outer.columns or default.columns,
    )


@contextlib.contextmanager
def reading_as(details: ReadDetails) -> Iterator[None]:
    """Attribute the reads inside the block to ``details.engine`` with its details."""
    token = _details.set(details)
    try:
        yield
    finally:
        _details.reset(token)


def in_read() -> bool:
    """Whether a hooked read is already running in this context."""
    return _in_read.get()


def after_hook(
    original: Callable[..., Any], after: Callable[[Any, dict[str, Any]], None]
) -> Callable[..., Any]:
    """Wrap a method: run it, then ``after(result, arguments)``; for reads, once per read.

    ``arguments`` maps every parameter name of ``original`` (``self`` included) to its value,
    defaults applied. ``after`` runs only when the read succeeded and only for the outermost
    hooked call.
    """
    signature = inspect.signature(original)

    @functools.wraps(original)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if _in_read.get():
            return original(*args, **kwargs)
        token = _in_read.set(True)
        try:
            result = original(*args, **kwargs)
        finally:
            _in_read.reset(token)
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        after(result, bound.arguments)
        return result

    wrapper.__lineage_original__ = original  # type: ignore[attr-defined]
    return wrapper


def around_hook(
    original: Callable[..., Any], details: Callable[..., ReadDetails]
) -> Callable[..., Any]:
    """Wrap an engine's entry point so hooked reads inside it carry its :class:`ReadDetails`."""

    @functools.wraps(original)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            info = details(*args, **kwargs)
        except Exception:  # describing the read must never break it
            return original(*args, **kwargs)
        with reading_as(info):
            return original(*args, **kwargs)

    wrapper.__lineage_original__ = original  # type: ignore[attr-defined]
    return wrapper


def patch(owner: type, name: str, make: Callable[[Any], Any]) -> None:
    """Replace ``owner.name`` with ``make(original)``; idempotent."""
    with _lock:
        if (owner, name) in _originals:
            return
        original = owner.__dict__[name]
        _originals[(owner, name)] = original
        setattr(owner, name, make(original))


def unpatch_all() -> None:
    """Restore every patched method."""
    with _lock:
        for (owner, name), original in _originals.items():
            setattr(owner, name, original)
        _originals.clear()


def is_patched(owner: type, name: str) -> bool:
    """Whether ``owner.name`` is currently patched."""
    return (owner, name) in _originals
