"""Times on the command line: parse what people type, print what people read; and the JSON
form of every report (times as UTC ISO-8601 strings beside their epoch milliseconds)."""

from __future__ import annotations

import math
import re
import time
from datetime import datetime, timedelta, timezone
from typing import Any

from lineage_plugin.errors import LineageError

#: The times a datetime can hold (years 1 to 9999), in epoch milliseconds.
_EARLIEST_MS = -62_135_596_800_000
_LATEST_MS = 253_402_300_799_999
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
    ms = _parse_time(text, now_ms)
    if not _EARLIEST_MS <= ms <= _LATEST_MS:
        raise TimeFormatError(
            f"The time '{text[:80]}' is out of range: give a time between the years 1 and 9999."
        )
    return ms


def _parse_time(text: str, now_ms: int | None) -> int:
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
    if value.isascii() and value.isdigit() and len(value) >= 10:
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
    try:
        return int(parsed.timestamp() * 1000)
    except (OverflowError, OSError, ValueError):  # a date local time cannot place (year 1)
        return _EARLIEST_MS - 1


def parse_duration(text: str) -> float:
    """Parse a length of time (``90m``, ``12h``, ``7d``, ``2w``, ``0``) into hours.

    Raises:
        TimeFormatError: The text is not such a length.

    Example:
        >>> parse_duration("2d")
        48.0
    """
    value = text.strip().lower()
    if value == "0":
        return 0.0
    match = _RELATIVE.match(value)
    if match is None or value.endswith("ago"):
        raise TimeFormatError(
            f"Cannot read the length of time '{text}'. Use a number and a unit: 90m, 12h, "
            "7d or 2w (or 0)."
        )
    return int(match.group(1)) * _UNITS[match.group(2)] / 3600


def format_time(ms: int | None) -> str:
    """Epoch milliseconds as local ISO time with offset, to the second (``-`` for none)."""
    if ms is None:
        return "-"
    return datetime.fromtimestamp(ms / 1000).astimezone().isoformat(timespec="seconds")


def iso_utc(ms: int | None) -> str | None:
    """Epoch milliseconds as UTC ISO-8601 with milliseconds (for JSON output)."""
    if ms is None:
        return None
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).isoformat(timespec="milliseconds")


#: Keys whose integer values are epoch milliseconds in the records and the reports.
TIME_KEYS = frozenset(
    {
        "at",
        "commit_timestamp",
        "created",
        "deleted_at",
        "end_time",
        "since",
        "start_time",
        "time",
        "timestamp",
        "until",
    }
)
_INT = re.compile(r"-?\d+")
_FLOAT = re.compile(r"-?(\d+\.\d*|\.\d+|\d+)([eE][-+]?\d+)?")


def json_output(value: Any) -> Any:
    """The ``--json`` (and ``/lineage/api/``) form of a report's data.

    Every integer under a key of :data:`TIME_KEYS` becomes a UTC ISO-8601 string with
    milliseconds, its epoch milliseconds kept beside it as ``<key>_ms``; the values of a
    ``metrics`` map (Delta's ``operationMetrics``, text in the log) become numbers where they
    are numbers. Everything else is kept; already converted data comes back unchanged. Records
    keep their stored form (``to_dict()``): only reports call this, on their way out.

    Args:
        value: A report's plain data (dicts, lists, scalars).

    Returns:
        A converted copy.

    Example:
        >>> json_output({"time": 1000, "metrics": {"num_updated_rows": "2"}})["metrics"]
        {'num_updated_rows': 2}
        >>> json_output({"time": 1000})
        {'time': '1970-01-01T00:00:01.000+00:00', 'time_ms': 1000}
    """
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if key in TIME_KEYS and isinstance(item, int) and not isinstance(item, bool):
                out[key] = iso_utc(item)
                out[f"{key}_ms"] = item
            elif key == "metrics" and isinstance(item, dict):
                out[key] = {name: _number(metric) for name, metric in item.items()}
            else:
                out[key] = json_output(item)
        return out
    if isinstance(value, (list, tuple)):
        return [json_output(item) for item in value]
    return value


def _number(text: Any) -> Any:
    """``"600"`` -> 600, ``"0.5"`` -> 0.5; anything else as it is."""
    if not isinstance(text, str):
        return text
    if _INT.fullmatch(text):
        return int(text)
    if _FLOAT.fullmatch(text):
        number = float(text)
        return number if math.isfinite(number) else text
    return text
