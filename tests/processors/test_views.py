"""Views of a story: counts, the exact viewer list, de-duplication, tombstones."""

from __future__ import annotations

from collections.abc import Sequence

import datasketches
import msgspec
import pytest

from processors.context import Forward, ForwardMany, Output, Put, PutMany, Tombstone
from processors.messages import StorySeen, message_from_fields
from processors.views import apply_views, view_count, viewer_tombstones
from schemas.records import StoryViewer, ViewCount
from schemas.types import millis
from tests.processors.factories_views import (
    AUTHOR,
    STORY,
    ViewsStore,
    as_view,
    at,
    ctx,
    info,
    puts_of,
    viewed,
)


def only_count(outputs: Sequence[Output]) -> ViewCount:
    counts = puts_of(outputs, ViewCount)
    assert len(counts) == 1
    value = counts[0].value
    assert isinstance(value, ViewCount)
    return value


def test_first_view_publishes_count_viewer_and_seen() -> None:
    # given a live story, when a first view arrives
    store = ViewsStore()
    outputs = store.apply([viewed("u1", 5)])
    # then the viewer, the seen message and the count are published
    assert outputs[0] == Put(
        f"{STORY}/u1", StoryViewer(story_id=STORY, viewer_id="u1", first_viewed_at=at(5))
    )
    assert outputs[1] == Forward("tray", "u1", StorySeen(user_id="u1", story_id=STORY, at=at(5)))
    count = only_count(outputs)
    assert (count.story_id, count.unique_viewers, count.total_views) == (STORY, 1, 1)
    assert datasketches.hll_sketch.deserialize(count.sketch).get_estimate() == pytest.approx(1)


def test_authors_own_views_do_not_count() -> None:
    store = ViewsStore()
    assert store.apply([viewed(AUTHOR, 1), viewed(AUTHOR, 2)]) == []
    assert store.state is None and store.viewer_list() == []


def test_batch_is_coalesced_into_one_count() -> None:
    # given a batch of 100 views by 10 viewers
    views = [viewed(f"u{i % 10}", i) for i in range(100)]
    # when applied at once
    outputs = ViewsStore().apply(views)
    # then one count, one viewer record and one seen message per viewer
    count = only_count(outputs)
    assert (count.unique_viewers, count.total_views) == (10, 100)
    assert len(puts_of(outputs, StoryViewer)) == 10
    assert len([o for o in outputs if isinstance(o, Forward)]) == 10


def test_a_known_viewer_adds_to_the_total_only() -> None:
    # given u1 viewed at minute 5, when u1 views again at minute 9
    store = ViewsStore()
    store.apply([viewed("u1", 5)])
    outputs = store.apply([viewed("u1", 9)])
    # then only the count is published; the sketch is untouched
    assert [type(o.value) for o in outputs if isinstance(o, Put)] == [ViewCount]
    assert (only_count(outputs).unique_viewers, only_count(outputs).total_views) == (1, 2)
    assert store.viewer_list() == [("u1", at(5))]


def test_an_earlier_view_arriving_late_moves_the_viewer_up() -> None:
    # given u1 first seen at minute 10 after u2 at minute 5
    store = ViewsStore()
    store.apply([viewed("u2", 5), viewed("u1", 10)])
    # when u1's view at minute 1 arrives late
    outputs = store.apply([viewed("u1", 1)])
    # then u1's first view is minute 1, the list is re-ordered, no second seen message
    assert puts_of(outputs, StoryViewer)[0].value == StoryViewer(
        story_id=STORY, viewer_id="u1", first_viewed_at=at(1)
    )
    assert not [o for o in outputs if isinstance(o, Forward)]
    assert store.viewer_list() == [("u1", at(1)), ("u2", at(5))]
    assert only_count(outputs).total_views == 3


def test_duplicate_event_changes_nothing_and_republishes() -> None:
    # given a view applied
    store = ViewsStore()
    first = store.apply([viewed("u1", 5, event_id="e1")])
    state, kv = store.state, dict(store.kv)
    # when it is redelivered
    again = store.apply([viewed("u1", 5, event_id="e1")])
    # then the state is the same and the same values are published again
    assert store.state == state and store.kv == kv
    assert set(map(repr, again)) == set(map(repr, first))


def test_duplicate_within_a_batch_counts_once() -> None:
    outputs = ViewsStore().apply([viewed("u1", 5, event_id="e1"), viewed("u1", 5, event_id="e1")])
    assert only_count(outputs).total_views == 1


def test_view_after_expiry_of_a_live_story_is_refused() -> None:
    store = ViewsStore(info("live", ttl=60))
    outputs = store.apply([viewed("u1", 61), viewed("u2", 59)])
    assert only_count(outputs).total_views == 1
    assert store.viewer_list() == [("u2", at(59))]


def test_highlighted_story_takes_views_after_expiry() -> None:
    store = ViewsStore(info("highlighted", ttl=60))
    assert only_count(store.apply([viewed("u1", 600)])).total_views == 1


@pytest.mark.parametrize("story", [None, info("ended")])
def test_unknown_or_ended_story_takes_nothing(story: object) -> None:
    views = [as_view(viewed("u1", 5))]
    result = apply_views(None, story, views, {}, set(), ctx())  # type: ignore[arg-type]
    assert (result.state, result.changed, result.outputs, result.skipped) == (None, False, (), 1)


def test_lg_k_comes_from_the_policy() -> None:
    count = only_count(ViewsStore().apply([viewed("u1")], ctx(lg_k=10)))
    sketch = datasketches.hll_sketch.deserialize(count.sketch)
    assert sketch.lg_config_k == 10 and sketch.tgt_type == datasketches.tgt_hll_type.HLL_4


def test_state_publishes_its_count() -> None:
    store = ViewsStore()
    store.apply([viewed(f"u{i}", i) for i in range(50)])
    assert store.state is not None
    assert view_count(STORY, store.state).unique_viewers == store.state.unique_viewers == 50


def test_viewer_tombstones() -> None:
    assert viewer_tombstones(STORY, ["a", "b"]) == [
        Tombstone(StoryViewer, f"{STORY}/a"),
        Tombstone(StoryViewer, f"{STORY}/b"),
    ]


def test_records_built_without_validation_are_valid_as_they_are() -> None:
    # given every kind of output of the views path (a new viewer, a repeat, the count)
    views = [as_view(viewed("u1", 5, event_id="e1"))]
    first = apply_views(None, info(), views, {}, set(), ctx())
    known = {"u1": millis(at(5))}
    views = [as_view(v) for v in (viewed("u1", 5, event_id="e1"), viewed("u2", 6))]
    again = apply_views(first.state, info(), views, known, {"e1"}, ctx())
    kinds = set()
    for output in (*first.outputs, *again.outputs):
        if isinstance(output, PutMany | ForwardMany):
            for _, fields in output.items:
                # then each record's fields validate strictly (no conversion) to themselves
                if isinstance(output, PutMany):
                    record = output.record
                    assert record.model_validate(fields, strict=True).__dict__ == fields
                else:
                    record = output.message
                    message = message_from_fields(record, fields)
                    assert {"kind": "story_seen", **msgspec.structs.asdict(message)} == fields
                kinds.add(record)
        else:
            value = output.value  # type: ignore[union-attr]
            rebuilt = type(value).model_validate(value.model_dump())
            assert rebuilt == value and repr(rebuilt) == repr(value)
            kinds.add(type(value))
    assert kinds == {StoryViewer, StorySeen, ViewCount}
