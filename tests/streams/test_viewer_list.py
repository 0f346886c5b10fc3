"""The viewer list's store layout: keys that sort by first view, index entries, pages, cursors."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from schemas.types import millis
from streams.stages.viewer_list import (
    INDEX,
    INLINE_EVENT_IDS,
    ViewerEntry,
    decode_cursor,
    decode_time,
    encode_cursor,
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
from tests.processors.factories_views import STORY, ViewsStore, at, viewed


def test_an_earlier_view_arriving_late_moves_the_viewers_list_key() -> None:
    store = ViewsStore()
    store.apply([viewed("u2", 5), viewed("u1", 10)])
    store.apply([viewed("u1", 1)])
    assert viewer_order_key(STORY, at(10), "u1") not in store.kv
    assert viewer_order_key(STORY, at(1), "u1") in store.kv
    assert INDEX.decode(store.kv[viewer_index_key(STORY, "u1")]).first_viewed_at == millis(at(1))


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
    assert event == b"Es\x00"  # applied views past an entry's ids, purged with the story
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


def test_index_values_hold_the_first_view_and_the_applied_event_ids() -> None:
    value = INDEX.encode(ViewerEntry(millis(at(7)), ("e1", "e" * 64)))
    assert INDEX.decode(value) == (millis(at(7)), ("e1", "e" * 64))
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
    assert len(entry) < 16 + INLINE_EVENT_IDS * (64 + 2)  # each id: a length header, 64 bytes
    assert INDEX.decode(entry).event_ids == tuple(f"{i:064d}" for i in range(INLINE_EVENT_IDS))
    event_keys = [key for key in store.kv if key.startswith(story_view_prefixes(STORY)[2])]
    assert len(event_keys) == 3_000 - INLINE_EVENT_IDS
    assert store.state is not None and store.state.total_views == 3_000
    # and redelivering them all counts nothing twice
    kv = dict(store.kv)
    store.apply(views[::-1])
    assert store.state.total_views == 3_000 and store.kv == kv
