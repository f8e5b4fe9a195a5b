"""The plugin's own reads of Delta tables, kept out of the lineage it records.

Hooked reads that call other hooked reads are recorded once, by the outermost call; the
plugin's own reads (resolving a version through Spark, verifying predictions, planning a
restore) are not recorded at all. Both use the same flag, kept per thread and per task.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar

_in_read: ContextVar[bool] = ContextVar("lineage_in_read", default=False)


def in_read() -> bool:
    """Whether a hooked read (or the plugin's own reading) is already under way."""
    return _in_read.get()


@contextlib.contextmanager
def not_recorded() -> Iterator[None]:
    """Reads inside the block are not recorded (the plugin's own reads, e.g. verification)."""
    token = _in_read.set(True)
    try:
        yield
    finally:
        _in_read.reset(token)
