"""Reversible patches of third-party methods, with a re-entrancy guard.

A hooked read that calls other hooked reads (``to_pandas`` -> ``to_pyarrow_table`` ->
``to_pyarrow_dataset``, or polars' scan -> ``DeltaTable.file_uris``) is recorded once, by the
outermost call, which knows best what was read (engine, columns, filters).

Every hook first asks :func:`bypassed`: inside another hooked read, or when capture does not
apply to the current run (a plain tracking URI in a process that only loaded a ``lineage+``
store), the patched method runs exactly as the original.

Methods are patched on their class (:func:`patch`), so every call finds the hook. A module's
function is patched in place (:func:`patch_function`): ``from deltalake import
write_deltalake`` run before the hooks were installed holds the same function object, so a
new attribute on the module would not reach it; its code is swapped instead.
"""

from __future__ import annotations

import functools
import inspect
import threading
import types
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from lineage_plugin.delta.own_reads import in_read, not_recorded
from lineage_plugin.errors import LineageError, LineageWarning
from lineage_plugin.tracking.scope import capture_applies

_originals: dict[tuple[type, str], Any] = {}
# Functions patched in place: the function -> (its own code, the global holding the hook).
_in_place: dict[types.FunctionType, tuple[types.CodeType, str]] = {}
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


def _trampoline(*args: Any, **kwargs: Any) -> Any:
    """The code a function patched in place runs (no free variables, one global name)."""
    return __mlflow_lineage_hook__(*args, **kwargs)  # type: ignore[name-defined]  # noqa: F821


def _copy_of(function: types.FunctionType) -> types.FunctionType:
    """A new function object running ``function``'s code, with its name, defaults and doc."""
    copy = types.FunctionType(
        function.__code__,
        function.__globals__,
        function.__name__,
        function.__defaults__,
        function.__closure__,
    )
    copy.__kwdefaults__ = dict(function.__kwdefaults__) if function.__kwdefaults__ else None
    for attribute in ("__qualname__", "__doc__", "__module__", "__annotations__"):
        setattr(copy, attribute, getattr(function, attribute))
    return copy


def patch_function(module: types.ModuleType, name: str, make: Callable[[Any], Any]) -> None:
    """Make the function ``module.name`` run ``make(original)``, in place; idempotent.

    Every reference to the function runs the hook, including names bound to it by an earlier
    ``from module import name``: the function object keeps its identity and its signature
    (``inspect.signature`` follows ``__wrapped__`` to the original), its code becomes a call of
    the hook, kept in the module's globals. :func:`unpatch_all` puts the code back.
    """
    with _lock:
        function = module.__dict__[name]
        if function in _in_place:
            return
        hook_name = f"__mlflow_lineage_{name}__"
        # The trampoline's code calls the global it names: renamed, it calls this hook.
        code = _trampoline.__code__.replace(co_names=(hook_name,), co_name=name)
        original = _copy_of(function)
        function.__globals__[hook_name] = make(original)
        _in_place[function] = (function.__code__, hook_name)
        function.__code__ = code
        function.__wrapped__ = original  # type: ignore[attr-defined]


def unpatch_all() -> None:
    """Restore every patched method and function."""
    with _lock:
        for (owner, name), original in _originals.items():
            setattr(owner, name, original)
        _originals.clear()
        for function, (code, hook_name) in _in_place.items():
            function.__code__ = code
            function.__globals__.pop(hook_name, None)
            function.__dict__.pop("__wrapped__", None)
        _in_place.clear()
