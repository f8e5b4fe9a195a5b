"""Progress of long work (reindex, export, restores, retraining), as the caller wants it shown.

Long operations take ``progress``: any callable that receives status lines (``print`` will
do). A caller that can draw progress bars (the CLI on a terminal) passes an object that also
has a ``bar(label, total)`` method returning a context manager that yields ``advance``;
:func:`tracked` uses it when it is there, and does nothing otherwise, so library code never
needs to know where its progress goes.

Example:
    >>> with tracked(progress, "Restoring tables", total=3) as advance:
    ...     for table in tables:
    ...         restore(table)
    ...         advance(1, table.name)
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any, Protocol

#: ``advance(steps=1, item=None)``: count finished work, optionally naming what is next.
Advance = Callable[..., None]


class Progress(Protocol):
    """Receives status lines of long work."""

    def __call__(self, message: str) -> None: ...


def _ignore(steps: int = 1, item: str | None = None) -> None:
    """An ``advance`` that shows nothing."""


def tracked(progress: Any, label: str, total: int | None) -> AbstractContextManager[Advance]:
    """A counter for ``total`` items of work: a bar when ``progress`` draws bars, else nothing.

    Args:
        progress: The caller's ``progress`` (``None``, a callable, or one with ``bar``).
        label: What is being done (``Reading runs``).
        total: How many items; ``None`` when unknown (no bar is drawn then).

    Returns:
        A context manager yielding ``advance(steps=1, item=None)``.
    """
    bar = getattr(progress, "bar", None)
    if bar is None or total is None:
        return contextlib.nullcontext(_ignore)
    return bar(label, total)


def status_lines(progress: Progress | None) -> Progress:
    """``progress`` itself, or a callable that drops status lines when there is none."""
    return progress if progress is not None else (lambda _message: None)


class Indented:
    """``progress`` with each status line indented (a step's lines under its heading); its
    bars, if it draws any, are kept."""

    def __init__(self, progress: Progress | None, prefix: str) -> None:
        self._progress = status_lines(progress)
        self._prefix = prefix
        bar = getattr(progress, "bar", None)
        if bar is not None:
            self.bar = bar

    def __call__(self, message: str) -> None:
        self._progress(f"{self._prefix}{message}")
