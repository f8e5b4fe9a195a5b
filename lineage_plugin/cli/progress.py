"""Progress of long commands on the terminal: status lines and click progress bars on stderr.

Bars are drawn only when stderr is a terminal and the command was not asked for ``--json``:
piped, redirected or JSON output gets the status lines alone (on stderr, never mixed with
the result on stdout), and no bar.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from typing import Any

import click

from lineage_plugin.progress import Advance

# Erase the line the bar is drawn on, so a status line can take its place.
_CLEAR_LINE = "\r\x1b[2K"


class TerminalProgress:
    """Status lines on stderr; progress bars too when ``bars`` is on."""

    def __init__(self, *, bars: bool) -> None:
        self._bars = bars
        self._active: Any = None  # the click ProgressBar being drawn, if any

    def __call__(self, message: str) -> None:
        if self._active is None:
            click.echo(message, err=True)
            return
        click.echo(_CLEAR_LINE + message, err=True)
        self._active.render_progress()  # the bar again, below the line

    @contextlib.contextmanager
    def bar(self, label: str, total: int) -> Iterator[Advance]:
        """A click progress bar of ``total`` items, labelled ``label``; yields ``advance``."""
        if not self._bars or self._active is not None:  # no bars, or one is drawn already
            yield lambda steps=1, item=None: None
            return
        current: dict[str, str | None] = {"item": None}
        with click.progressbar(
            length=total,
            label=label,
            file=sys.stderr,
            show_pos=True,
            show_eta=True,
            item_show_func=lambda _item: current["item"],
        ) as progress_bar:
            self._active = progress_bar

            def advance(steps: int = 1, item: str | None = None) -> None:
                current["item"] = item
                progress_bar.update(steps)

            try:
                yield advance
            finally:
                self._active = None


def terminal_progress(as_json: bool) -> TerminalProgress:
    """The progress of a command: bars only on a terminal and without ``--json``."""
    return TerminalProgress(bars=not as_json and sys.stderr.isatty())
