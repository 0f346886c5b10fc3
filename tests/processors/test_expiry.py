"""The expiry index, each story's next due time, and the event-time clock."""

from __future__ import annotations

from datetime import timedelta

import pytest

from processors.expiry import (
    EventTimeClock,
    ExpiryIndex,
    FixedClock,
    advance_watermark,
    bucket_of,
    due_buckets,
    next_due,
)
from processors.stories import expire, handle
from schemas.types import EPOCH, millis
from tests.processors.factories_stories import (
    GRACE_MIN,
    MEDIA,
    TTL_MIN,
    at,
    ctx,
    deleted,
    highlight,
    posted,
)

MINUTE = timedelta(minutes=1)
HOUR = timedelta(hours=1)


def test_bucket_of_is_the_bucket_start_in_epoch_millis() -> None:
    assert bucket_of(at(0), HOUR) == millis(at(0))  # T0 is on the hour
    assert bucket_of(at(59.99), HOUR) == millis(at(0))
    assert bucket_of(at(60), HOUR) == millis(at(60))
    assert bucket_of(EPOCH - MINUTE, HOUR) == -3_600_000
    with pytest.raises(ValueError):
        bucket_of(at(0), timedelta(0))


def test_due_buckets_are_those_started_by_now_sorted() -> None:
    buckets = [millis(at(120)), millis(at(0)), millis(at(60))]
    assert due_buckets(buckets, at(60), HOUR) == [millis(at(0)), millis(at(60))]
    assert due_buckets(buckets, at(-1), HOUR) == []


def test_index_add_remove_move_are_values() -> None:
    empty = ExpiryIndex(HOUR)
    one = empty.add("s1", at(10))
    assert len(empty) == 0 and len(one) == 1 and "s1" in one
    assert one.add("s1", at(20)) == one  # same bucket, already there
    assert one.add("s2", None) == one
    assert one.remove("s1", at(30)) == empty
    assert one.remove("s1", None) == one
    moved = one.move("s1", at(10), at(90))
    assert moved.buckets == {millis(at(60)): frozenset({"s1"})}
    assert moved.move("s1", at(90), None) == empty


def test_pop_due_takes_only_the_due_buckets() -> None:
    index = ExpiryIndex(HOUR).add("a", at(10)).add("b", at(30)).add("c", at(70))
    assert index.due(at(20)) == ["a", "b"]
    rest, keys = index.pop_due(at(20))
    assert keys == ["a", "b"]
    assert rest == ExpiryIndex(HOUR).add("c", at(70))
    assert rest.pop_due(at(20)) == (rest, [])


@pytest.mark.parametrize(
    ("story_minutes", "expected"),
    [
        ("live", TTL_MIN),
        ("expired", TTL_MIN + GRACE_MIN),
        ("deleted", TTL_MIN + GRACE_MIN),  # kept until expires_at + grace at least
        ("highlighted", None),
    ],
)
def test_next_due(story_minutes: str, expected: float | None) -> None:
    live, _ = handle(None, posted(media_id=MEDIA, ready=True), ctx())
    if story_minutes == "expired":
        live, _ = expire(live, ctx(TTL_MIN))
    elif story_minutes == "deleted":
        live, _ = handle(live, deleted(minutes=30), ctx(30))
    elif story_minutes == "highlighted":
        live, _ = handle(live, highlight(minutes=1), ctx(1))
        live, _ = expire(live, ctx(TTL_MIN))
    due = next_due(live, ctx().policy)
    assert due == (None if expected is None else at(expected))
    assert next_due(None, ctx().policy) is None


def test_watermark_is_max_event_time_minus_lateness_and_monotonic() -> None:
    lateness = 5 * MINUTE
    assert advance_watermark(None, at(10), lateness) == at(5)
    assert advance_watermark(at(5), at(8), lateness) == at(5)  # a late event: no move back
    assert advance_watermark(at(5), at(20), lateness) == at(15)


def test_event_time_clock_reads_the_watermark() -> None:
    clock = EventTimeClock(allowed_lateness=MINUTE)
    assert clock.now() == EPOCH
    clock = clock.observe(at(10)).observe(at(3))
    assert clock.now() == at(9)
    assert clock.observe(at(1)) is clock
    assert FixedClock(at(1)).now() == at(1)
