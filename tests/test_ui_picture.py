"""The stage and alias history picture: spans replayed from the event log, and their layout."""

from __future__ import annotations

import itertools

from lineage_plugin.ui.picture import LEFT, RIGHT, WIDTH, picture, spans

from lineage_plugin.events import RegistryEvent

_ids = itertools.count()


def event(kind: str, version: str, time: int, **fields: str) -> RegistryEvent:
    return RegistryEvent(
        event_id=f"{time:013d}-{next(_ids):08x}",
        kind=kind,
        name="m",
        version=version,
        time=time,
        **fields,
    )


HISTORY = [
    event("alias_set", "1", 1000, alias="champion"),
    event("stage_transition", "1", 1500, stage="Production", previous_stage="None"),
    event("alias_set", "2", 2000, alias="champion"),  # takes champion from v1
    event("stage_transition", "2", 2500, stage="Production", previous_stage="None"),
    event("stage_transition", "1", 3000, stage="Archived", previous_stage="Production"),
    event("alias_deleted", "2", 4000, alias="champion"),
    event("alias_set", "3", 4500, alias="challenger"),
    event("version_deleted", "3", 5000),
]


def test_spans_follow_alias_moves_stage_changes_and_deletions():
    got = {(s.kind, s.label, s.version): (s.start, s.end) for s in spans(HISTORY)}
    assert got == {
        ("alias", "champion", "1"): (1000, 2000),
        ("alias", "champion", "2"): (2000, 4000),
        ("stage", "Production", "1"): (1500, 3000),
        ("stage", "Production", "2"): (2500, None),  # still held
        ("stage", "Archived", "1"): (3000, None),
        ("alias", "challenger", "3"): (4500, 5000),  # ended by the deletion
    }


def test_an_alias_set_again_on_the_same_version_keeps_one_span():
    history = [
        event("alias_set", "1", 1000, alias="a"),
        event("alias_set", "1", 2000, alias="a"),
    ]
    assert [(s.version, s.start, s.end) for s in spans(history)] == [("1", 1000, None)]


def test_the_layout_puts_overlapping_spans_on_their_own_rows_inside_the_picture():
    drawn = picture(HISTORY, {"1": "sales@v0", "2": "sales@v1"}, now=6000, at=2200)
    lanes = {(lane.kind, lane.label): lane for lane in drawn.lanes}
    # Aliases first, then Production before Archived.
    assert list(lanes) == [
        ("alias", "challenger"),
        ("alias", "champion"),
        ("stage", "Production"),
        ("stage", "Archived"),
    ]
    production = lanes["stage", "Production"]
    rows = sorted({bar.y for bar in production.bars})
    assert len(rows) == 2, "v1 and v2 overlap in Production (2500-3000): two rows"
    assert production.height == 2 * (rows[1] - rows[0])
    for lane in drawn.lanes:
        for bar in lane.bars:
            assert bar.x >= LEFT and bar.x + bar.width <= WIDTH - RIGHT + 0.5
    champion = {bar.span.version: bar for bar in lanes["alias", "champion"].bars}
    assert champion["1"].text == "v1 · sales@v0"
    assert champion["1"].x + champion["1"].width <= champion["2"].x + 0.5
    assert "from 1970-01-01 00:00:01 to 1970-01-01 00:00:02" in champion["1"].title
    assert champion["1"].x < drawn.marker < champion["2"].x + champion["2"].width
    assert [label for _, label in drawn.ticks][0] == "00:00:01"


def test_a_picture_from_a_later_start_clips_what_began_before_and_drops_what_ended():
    drawn = picture(HISTORY, {}, now=6000, start=2200)
    bars = {(lane.label, bar.span.version): bar for lane in drawn.lanes for bar in lane.bars}
    assert ("champion", "1") not in bars  # ended at 2000, before the picture starts
    production = bars["Production", "1"]  # 1500-3000: drawn from the left edge
    assert production.x == LEFT
    assert "from 1970-01-01 00:00:01 to 1970-01-01 00:00:03" in production.title
    assert bars["champion", "2"].x == LEFT  # 2000-4000
    assert bars["Production", "2"].x > LEFT  # from 2500
    assert [label for _, label in drawn.ticks][0] == "00:00:02"


def test_a_picture_of_some_versions_draws_only_theirs():
    drawn = picture(HISTORY, {}, now=6000, versions={"2"})
    assert {bar.span.version for lane in drawn.lanes for bar in lane.bars} == {"2"}
    assert [lane.label for lane in drawn.lanes] == ["champion", "Production"]
    assert picture(HISTORY, {}, now=6000, versions=set()).lanes == []


def test_no_events_draw_nothing():
    assert picture([], {}, now=1000).lanes == []
