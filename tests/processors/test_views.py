"""Views of a story: counts, the exact viewer list, de-duplication, paging, tombstones."""

from __future__ import annotations

import io
import pickle
from collections.abc import Iterator, Sequence

import datasketches
import fastavro
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from processors.context import Forward, ForwardMany, Output, Put, PutMany, Tombstone
from processors.messages import StorySeen
from processors.viewer_list import (
    decode_cursor,
    decode_index_value,
    decode_time,
    encode_cursor,
    encode_index_value,
    encode_time,
    order_key_of_index_entry,
    page_bounds,
    parse_order_key,
    read_page,
    story_view_prefixes,
    viewer_index_key,
    viewer_of_index_key,
    viewer_order_key,
)
from processors.views import (
    INLINE_EVENT_IDS,
    View,
    ViewState,
    apply_views,
    view_count,
    viewer_tombstones,
)
from schemas.avro import current_schemas
from schemas.events import StoryViewed
from schemas.records import StoryViewer, ViewCount
from schemas.types import millis
from tests.processors.factories_views import (
    AUTHOR,
    STORY,
    ViewsStore,
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
    assert viewer_order_key(STORY, at(10), "u1") not in store.kv
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
    views = [View.of_event(viewed("u1", 5))]
    result = apply_views(None, story, views, {}, set(), {}, ctx())  # type: ignore[arg-type]
    assert (result.state, result.changed, result.outputs, result.skipped) == (None, False, (), 1)


def test_lg_k_comes_from_the_policy() -> None:
    count = only_count(ViewsStore().apply([viewed("u1")], ctx(lg_k=10)))
    sketch = datasketches.hll_sketch.deserialize(count.sketch)
    assert sketch.lg_config_k == 10 and sketch.tgt_type == datasketches.tgt_hll_type.HLL_4


def test_state_round_trips_and_publishes_its_count() -> None:
    store = ViewsStore()
    store.apply([viewed(f"u{i}", i) for i in range(50)])
    assert store.state is not None
    assert ViewState.from_bytes(store.state.to_bytes()) == store.state
    assert view_count(STORY, store.state).unique_viewers == store.state.unique_viewers == 50
    with pytest.raises(ValueError, match="not a stored ViewState"):
        ViewState.from_bytes(b"short")


def test_viewer_tombstones() -> None:
    assert viewer_tombstones(STORY, ["a", "b"]) == [
        Tombstone(StoryViewer, f"{STORY}/a"),
        Tombstone(StoryViewer, f"{STORY}/b"),
    ]


# -- the viewer list's keys and pages ------------------------------------------------------


def test_pages_walk_the_list_oldest_first() -> None:
    # given 7 viewers, when paged 3 at a time
    store = ViewsStore()
    store.apply([viewed(f"u{i}", 10 - i) for i in range(7)])
    first = store.page(3)
    second = store.page(3, first.next_cursor)
    last = store.page(3, second.next_cursor)
    # then the pages hold 3, 3 and 1 viewers in first-view order, the last without a cursor
    assert [v for v, _ in first.viewers] == ["u6", "u5", "u4"]
    assert [v for v, _ in second.viewers] == ["u3", "u2", "u1"]
    assert last.viewers == (("u0", at(10)),) and last.next_cursor is None


def test_a_full_last_page_has_no_cursor() -> None:
    store = ViewsStore()
    store.apply([viewed(f"u{i}", i) for i in range(3)])
    assert store.page(3).next_cursor is None


def test_a_page_reads_at_most_limit_plus_one_keys() -> None:
    keys = [viewer_order_key(STORY, at(i), f"u{i}") for i in range(1000)]
    consumed = 0

    def counting() -> Iterator[bytes]:
        nonlocal consumed
        for key in keys:
            consumed += 1
            yield key

    start, prefix = page_bounds(STORY, None)
    page = read_page(counting(), prefix, 10)
    assert len(page.viewers) == 10 and consumed == 11


def test_keys_sort_by_story_then_time_then_viewer() -> None:
    keys = [
        viewer_order_key("a", at(5), "z"),
        viewer_order_key("a-b", at(0), "a"),
        viewer_order_key("a", at(-(10**8)), "y"),  # before 1970
        viewer_order_key("a", at(5), "b"),
    ]
    assert sorted(keys) == [keys[2], keys[3], keys[0], keys[1]]
    assert not keys[1].startswith(page_bounds("a", None)[1])


def test_key_codecs_round_trip() -> None:
    key = viewer_order_key("s-1", at(-3), "u_2")
    assert parse_order_key(key) == ("s-1", "u_2", at(-3))
    assert decode_time(encode_time(at(7))) == at(7)
    assert viewer_of_index_key(viewer_index_key("s", "u")) == "u"
    order, index, event = story_view_prefixes("s")
    assert viewer_order_key("s", at(1), "u").startswith(order)
    assert viewer_index_key("s", "u") == index + b"u"
    assert event == b"Es\x00"  # keys of an older layout, still purged with the story
    assert all(
        not a.startswith(b)
        for a in story_view_prefixes("s")
        for b in story_view_prefixes("s-")
        if a != b
    )


@pytest.mark.parametrize("garbage", ["", "!!!", "abc", "A" * 500, encode_cursor(b"Ix\x00u")])
def test_garbage_cursor_is_a_clear_error(garbage: str) -> None:
    with pytest.raises(ValueError, match="invalid cursor"):
        decode_cursor(garbage)


def test_cursor_of_another_story_is_refused() -> None:
    cursor = encode_cursor(viewer_order_key("other", at(1), "u1"))
    with pytest.raises(ValueError, match="another story"):
        page_bounds(STORY, cursor)


def test_empty_cursor_is_the_first_page() -> None:
    assert page_bounds(STORY, "") == page_bounds(STORY, None)


def test_records_built_without_validation_are_valid_as_they_are() -> None:
    # given every kind of output of the views path (a new viewer, a repeat, the count)
    views = [View.of_event(viewed("u1", 5, event_id="e1"))]
    first = apply_views(None, info(), views, {}, set(), {}, ctx())
    known = {"u1": millis(at(5))}
    views = [View.of_event(v) for v in (viewed("u1", 5, event_id="e1"), viewed("u2", 6))]
    again = apply_views(first.state, info(), views, known, {"e1"}, {"u1": ("e1",)}, ctx())
    kinds = set()
    for output in (*first.outputs, *again.outputs):
        if isinstance(output, PutMany | ForwardMany):
            record = output.record if isinstance(output, PutMany) else output.message
            for _, fields in output.items:
                # then each record's fields validate strictly (no conversion) to themselves
                assert record.model_validate(fields, strict=True).__dict__ == fields
                kinds.add(record)
        else:
            value = output.value  # type: ignore[union-attr]
            rebuilt = type(value).model_validate(value.model_dump())
            assert rebuilt == value and repr(rebuilt) == repr(value)
            kinds.add(type(value))
    assert kinds == {StoryViewer, StorySeen, ViewCount}


def test_index_values_hold_the_first_view_and_the_applied_event_ids() -> None:
    value = encode_index_value(at(7), ("e1", "e" * 64))
    assert decode_index_value(value) == (at(7), ("e1", "e" * 64))
    # a value written before event ids moved into the index holds the time alone
    assert decode_index_value(encode_time(at(7))) == (at(7), ())
    # the list key implied by an entry ignores the event ids
    key = viewer_index_key("s", "u")
    assert order_key_of_index_entry(key, value) == viewer_order_key("s", at(7), "u")


def test_a_viewer_viewing_thousands_of_times_keeps_a_small_index_entry() -> None:
    # given one viewer's 3,000 views of a story, in batches of 250
    store = ViewsStore()
    views = [viewed("u1", i % 600, event_id=f"{i:064d}") for i in range(3_000)]
    for start in range(0, 3_000, 250):
        store.apply(views[start : start + 250])
    # then the index entry keeps the smallest INLINE_EVENT_IDS ids (~2 KiB, not ~195 KiB) and
    # every other applied view is a key of its own
    entry = store.kv[viewer_index_key(STORY, "u1")]
    assert len(entry) < 8 + INLINE_EVENT_IDS * 65 + 1
    assert decode_index_value(entry)[1] == tuple(f"{i:064d}" for i in range(INLINE_EVENT_IDS))
    event_keys = [key for key in store.kv if key.startswith(story_view_prefixes(STORY)[2])]
    assert len(event_keys) == 3_000 - INLINE_EVENT_IDS
    assert store.state is not None and store.state.total_views == 3_000
    # and redelivering them all counts nothing twice
    kv = dict(store.kv)
    store.apply(views[::-1])
    assert store.state.total_views == 3_000 and store.kv == kv


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(["u1", "u2", "u3", AUTHOR]), st.integers(0, 30), st.booleans()),
        max_size=20,
    )
)
def test_views_carrying_their_viewer_record_are_applied_exactly_as_the_models(
    draws: list[tuple[str, int, bool]],
) -> None:
    # given the same views as models and as the wiring reads them: each with the Avro body of
    # the StoryViewer it makes (its record's last three fields)
    models = [viewed(viewer, minute) for viewer, minute, _ in draws]
    models += [m for m, (_, _, again) in zip(models, draws, strict=True) if again]  # redelivered
    sliced = [View.of_event(model)._replace(record=_viewer_body(model)) for model in models]
    # when each is applied in two batches, then outputs and stored state are the same
    as_models, as_sliced = ViewsStore(), ViewsStore()
    for store, views in ((as_models, models), (as_sliced, sliced)):
        half = len(views) // 2
        store.apply(views[:half])
        store.apply(views[half:])
    assert as_sliced.outputs == as_models.outputs
    assert as_sliced.kv == as_models.kv and as_sliced.state == as_models.state


def _viewer_body(view: StoryViewed) -> bytes:
    out = io.BytesIO()
    schema = fastavro.parse_schema(current_schemas()["StoryViewer"])
    fields = {"story_id": view.story_id, "viewer_id": view.viewer_id}
    fastavro.schemaless_writer(out, schema, {**fields, "first_viewed_at": view.viewed_at})
    return out.getvalue()


class _ParkedByAnOlderVersion:
    """Pickles as a View of the older layout did: four fields, the time a datetime."""

    def __reduce__(self) -> tuple[type, tuple[str, str, str, object]]:
        return View, ("s1", "u1", "e1", at(5))


def test_a_view_parked_by_an_older_version_is_applied_with_its_time_in_milliseconds() -> None:
    parked = pickle.loads(pickle.dumps(_ParkedByAnOlderVersion()))
    assert View.of_event(parked) == View("s1", "u1", "e1", millis(at(5)), b"")
    assert View.of_event(viewed("u1", 5, event_id="e1")) == View.of_event(parked)
