"""Times on the command line: parse what people type, print what people read."""

from __future__ import annotations

import re
import time
from datetime import datetime, timedelta

from lineage_plugin.errors import LineageError

_RELATIVE = re.compile(r"^(\d+)\s*(s|m|h|d|w)(?:\s+ago)?$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


class TimeFormatError(LineageError):
    """A time given on the command line could not be understood."""


def parse_time(text: str, *, now_ms: int | None = None) -> int:
    """Parse a point in time into epoch milliseconds.

    Accepted: ISO 8601 dates and times (``2026-11-17``, ``2026-11-17T09:30``,
    ``2026-11-17 09:30:00+01:00``; without an offset they are local time), epoch milliseconds
    (``1763370000000``), relative times (``90m``, ``12h``, ``7d``, ``2w``, optionally followed by
    ``ago``), ``now``, ``today`` and ``yesterday`` (local midnight).

    Args:
        text: What the user typed.
        now_ms: The current time, for tests.

    Returns:
        Milliseconds since the epoch.

    Raises:
        TimeFormatError: The text is not one of the accepted forms.

    Example:
        >>> parse_time("1970-01-01T00:00:01+00:00")
        1000
    """
    value = text.strip().lower()
    now = now_ms if now_ms is not None else int(time.time() * 1000)
    if value == "now":
        return now
    if value in ("today", "yesterday"):
        day = datetime.fromtimestamp(now / 1000)
        midnight = day.replace(hour=0, minute=0, second=0, microsecond=0)
        if value == "yesterday":
            midnight -= timedelta(days=1)
        return int(midnight.timestamp() * 1000)
    if value.isdigit() and len(value) >= 10:
        return int(value)
    match = _RELATIVE.match(value)
    if match:
        return now - int(match.group(1)) * _UNITS[match.group(2)] * 1000
    try:
        parsed = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise TimeFormatError(
            f"Cannot read the time '{text}'. Use an ISO date or time such as 2026-11-17 or "
            "2026-11-17T09:30 (local time unless an offset like +00:00 is given), epoch "
            "milliseconds, a relative time such as 12h or 7d (ago), or now/today/yesterday."
        ) from None
    return int(parsed.timestamp() * 1000)


def format_time(ms: int | None) -> str:
    """Epoch milliseconds as local ISO time with offset, to the second (``-`` for none)."""
    if ms is None:
        return "-"
    return datetime.fromtimestamp(ms / 1000).astimezone().isoformat(timespec="seconds")


def iso_utc(ms: int | None) -> str | None:
    """Epoch milliseconds as UTC ISO-8601 with milliseconds (for JSON output)."""
    if ms is None:
        return None
    from datetime import timezone

    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).isoformat(timespec="milliseconds")
