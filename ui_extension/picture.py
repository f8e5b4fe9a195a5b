"""The stage and alias history of a model as a picture: time across, one lane per alias and
stage, each version's span a bar labelled with the data versions it was trained on.

Only geometry is computed here; the template draws it as SVG (no script, no inline style).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import NamedTuple

from lineage_plugin.events import (
    ALIAS_DELETED,
    ALIAS_SET,
    NO_STAGE,
    STAGE_TRANSITION,
    VERSION_DELETED,
)
from lineage_plugin.events import RegistryEvent as Event

WIDTH = 960
LEFT = 150  # room for the lane labels
RIGHT = 36  # room for half the last tick's label
CHAR_WIDTH = 6.2  # px of an 11 px span label's character, about: longer labels are cut
ROW_HEIGHT = 24
TICKS = 5


class Span(NamedTuple):
    """One version holding one alias or stage from ``start`` to ``end`` (``None``: still)."""

    kind: str
    label: str
    version: str
    start: int
    end: int | None


@dataclass
class Bar:
    """A span placed in the picture."""

    span: Span
    x: float
    y: float
    width: float
    text: str
    title: str


@dataclass
class Lane:
    """One alias or stage: its label and bars (overlapping spans on rows of their own)."""

    kind: str
    label: str
    y: float
    height: float
    bars: list[Bar] = field(default_factory=list)


@dataclass
class Picture:
    """Everything the template draws."""

    width: int
    height: int
    lanes: list[Lane]
    ticks: list[tuple[float, str]]
    marker: float | None  # the "as of" time, when shown
    axis_y: float


def spans(events: Iterable[Event], versions: Collection[str] | None = None) -> list[Span]:
    """Replay a model's events (oldest first) into the spans each version held (only these
    ``versions``' spans, when given: the replay still reads every event)."""
    open_: dict[tuple[str, str, str], int] = {}  # (kind, label, version) -> start
    alias_holder: dict[str, str] = {}
    stage_of: dict[str, str] = {}
    done: list[Span] = []
    wanted = None if versions is None else set(versions)

    def close(kind: str, label: str, version: str, at: int) -> None:
        start = open_.pop((kind, label, version), None)
        if start is not None and (wanted is None or version in wanted):
            done.append(Span(kind, label, version, start, at))

    for e in events:
        if e.kind == ALIAS_SET and e.alias:
            old = alias_holder.get(e.alias)
            if old is not None and old != e.version:
                close("alias", e.alias, old, e.time)
            alias_holder[e.alias] = e.version
            open_.setdefault(("alias", e.alias, e.version), e.time)
        elif e.kind == ALIAS_DELETED and e.alias and alias_holder.get(e.alias) == e.version:
            del alias_holder[e.alias]
            close("alias", e.alias, e.version, e.time)
        elif e.kind == STAGE_TRANSITION and e.stage:
            before = stage_of.get(e.version, NO_STAGE)
            if before != e.stage:
                close("stage", before, e.version, e.time)
            stage_of[e.version] = e.stage
            if e.stage != NO_STAGE:
                open_.setdefault(("stage", e.stage, e.version), e.time)
        elif e.kind == VERSION_DELETED:
            for kind, label, version in [k for k in open_ if k[2] == e.version]:
                close(kind, label, version, e.time)
            stage_of.pop(e.version, None)
            for alias in [a for a, v in alias_holder.items() if v == e.version]:
                del alias_holder[alias]
    done += [
        Span(k, lb, v, s, None) for (k, lb, v), s in open_.items() if wanted is None or v in wanted
    ]
    return sorted(done, key=lambda s: (s.start, s.version))


_STAGE_ORDER = {"Production": 0, "Staging": 1, "Archived": 2}


def _rows(items: Sequence[Span], now: int) -> list[tuple[Span, int]]:
    """Give overlapping spans of one lane rows of their own (first fit)."""
    ends: list[int] = []
    placed = []
    for s in items:
        row = next((i for i, end in enumerate(ends) if end <= s.start), None)
        if row is None:
            row = len(ends)
            ends.append(0)
        ends[row] = s.end if s.end is not None else now
        placed.append((s, row))
    return placed


def _utc(ms: int, fmt: str = "%Y-%m-%d %H:%M:%S") -> str:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).strftime(fmt)


def _tick_format(span_ms: int) -> str:
    """Tick labels as precise as the picture's time range needs."""
    if span_ms > 3 * 86_400_000:
        return "%Y-%m-%d"
    if span_ms > 3_600_000:
        return "%m-%d %H:%M"
    return "%H:%M:%S"


def fitted(text: str, width: float) -> str:
    """``text`` cut (with an ellipsis) to what fits a bar ``width`` px wide; the bar's title
    keeps all of it."""
    room = int((width - 8) / CHAR_WIDTH)
    if len(text) <= room:
        return text
    return text[: room - 1] + "…" if room >= 2 else ""


def picture(
    events: Iterable[Event],
    data: dict[str, str],
    *,
    now: int,
    at: int | None = None,
    start: int | None = None,
    versions: Collection[str] | None = None,
) -> Picture:
    """Lay out a model's history.

    Args:
        events: The model's events, oldest first.
        data: Version -> the label of its data (``sales@v3, stores@v1``).
        now: The right edge (epoch ms).
        at: The "as of" time to mark, if any.
        start: The left edge: spans that ended before it are left out, and those that began
            earlier are drawn from it (their titles keep their times). Default: the first
            span's start.
        versions: Draw only these versions' spans; default every version's.

    Returns:
        A :class:`Picture`; with no spans it has no lanes.
    """
    all_spans = spans(events, versions)
    if start is not None:
        all_spans = [s for s in all_spans if s.end is None or s.end > start]
    if not all_spans:
        return Picture(width=WIDTH, height=0, lanes=[], ticks=[], marker=None, axis_y=0)
    t0 = start if start is not None else min(s.start for s in all_spans)
    t1 = max([now, *[s.end for s in all_spans if s.end is not None], at or 0])
    scale = (WIDTH - LEFT - RIGHT) / max(t1 - t0, 1)

    def x(t: int) -> float:
        return round(LEFT + (t - t0) * scale, 1)

    keys = sorted(
        {(s.kind, s.label) for s in all_spans},
        key=lambda k: (k[0] != "alias", _STAGE_ORDER.get(k[1], 9), k[1]),
    )
    lanes, y = [], 4.0
    for kind, label in keys:
        placed = _rows([s for s in all_spans if (s.kind, s.label) == (kind, label)], t1)
        height = ROW_HEIGHT * (1 + max(row for _, row in placed))
        lane = Lane(kind=kind, label=label, y=y, height=height)
        for s, row in placed:
            end = s.end if s.end is not None else t1
            text = f"v{s.version}" + (f" · {data[s.version]}" if data.get(s.version) else "")
            until = _utc(s.end) if s.end is not None else "now"
            left = x(max(s.start, t0))
            width = round(max(x(end) - left, 2.0), 1)
            lane.bars.append(
                Bar(
                    span=s,
                    x=left,
                    y=y + row * ROW_HEIGHT + 2,
                    width=width,
                    text=fitted(text, width),
                    title=f"{label}: version {s.version} from {_utc(s.start)} to {until}. {text}",
                )
            )
        lanes.append(lane)
        y += height + 4
    fmt = _tick_format(t1 - t0)
    moments = [t0 + (t1 - t0) * i // (TICKS - 1) for i in range(TICKS)]
    ticks = [(x(t), _utc(t, fmt)) for t in moments]
    marker = x(at) if at is not None and t0 <= at <= t1 else None
    return Picture(
        width=WIDTH, height=int(y + 22), lanes=lanes, ticks=ticks, marker=marker, axis_y=y + 14
    )
