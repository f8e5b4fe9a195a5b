"""Reversible patches of third-party methods, with a re-entrancy guard.

A hooked read that calls other hooked reads (``to_pandas`` -> ``to_pyarrow_table`` ->
``to_pyarrow_dataset``, or polars' scan -> ``DeltaTable.file_uris``) is recorded once, by the
outermost call, which knows best what was read (engine, columns, filters).

Every hook first asks :func:`bypassed`: inside another hooked read, or when capture does not
apply to the current run (a plain tracking URI in a process that only loaded a ``lineage+``
store), the patched method runs exactly as the original.
"""

from __future__ import annotations

import functools
import inspect
import threading
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from lineage_plugin.delta.own_reads import in_read, not_recorded
from lineage_plugin.errors import LineageError, LineageWarning
from lineage_plugin.tracking.scope import capture_applies

_originals: dict[tuple[type, str], Any] = {}
_lock = threading.Lock()


@dataclass(frozen=True)
class ReadDetails:
    """What the caller of a read asked for, besides the table."""

    engine: str
    filters: str | None = None
    partitions: str | None = None
    columns: tuple[str, ...] | None = None


def bound_arguments(
    signature: inspect.Signature, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> dict[str, Any]:
    """Every parameter of ``signature`` bound to its value in a call, defaults applied."""
    bound = signature.bind(*args, **kwargs)
    bound.apply_defaults()
    return dict(bound.arguments)


def bypassed() -> bool:
    """Whether a hooked call runs as the original: inside another hooked read (or the plugin's
    own), or capture does not apply to the current tracking URI."""
    return in_read() or not capture_applies()


def after_hook(
    original: Callable[..., Any],
    after: Callable[[Any, dict[str, Any]], None],
    *,
    always: bool = False,
) -> Callable[..., Any]:
    """Wrap a method: run it, then ``after(result, arguments)``; for reads, once per read.

    ``arguments`` maps every parameter name of ``original`` (``self`` included) to its value,
    defaults applied. ``after`` runs only when the call succeeded, only for the outermost
    hooked call, and only when capture applies to the current tracking URI, unless ``always``
    (hooks that only remember state, or that check the URI of their own client).
    """
    signature = inspect.signature(original)
    skip = in_read if always else bypassed

    @functools.wraps(original)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if skip():
            return original(*args, **kwargs)
        with not_recorded():
            result = original(*args, **kwargs)
        try:
            # The call succeeded, so its arguments bind.
            after(result, bound_arguments(signature, args, kwargs))
        except LineageError:
            raise  # strict mode
        except Exception as exc:  # a bug in a hook must never break the user's call
            warnings.warn(
                f"mlflow-delta-lineage: {original.__qualname__} hook failed: {exc!r}",
                LineageWarning,
                stacklevel=2,
            )
        return result

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
