"""The state codec: every stored value reads back as it was written, compressed past 64 KiB;
bytes that are not a value of the type are a clear error."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from processors import media_join, stories
from processors.messages import AwaitMedia
from processors.reactions import apply_reactions
from processors.trays import TrayState, TrayStory, render_tray, tray_digest
from streams.stages.follow_graph import CORES, AuthorCore
from streams.stages.parking import Held
from streams.stages.state import COMPRESS_ABOVE, Codec, StateError, Table
from streams.stages.stories import MEDIA, STORIES
from streams.stages.tray_store import TRAY_STATE
from streams.stages.views import INFO, PARKED, REACTION_STATE, VIEW_STATE, ParkedEvent
from tests.processors import factories_stories as fs
from tests.processors.factories_views import ViewsStore, as_view, info, reacted, viewed

T0 = datetime(2026, 11, 22, 10, tzinfo=UTC)


def test_a_story_round_trips() -> None:
    state = None
    for event, context in (
        (fs.posted(media_id=fs.MEDIA), fs.ctx()),
        (fs.highlight(minutes=1), fs.ctx(1)),
        (fs.ready(), fs.ctx(2)),
    ):
        state, _ = stories.handle(state, event, context)
    assert state is not None and state.renditions and state.highlights
    assert STORIES.decode(STORIES.encode(state)) == state
    failed, _ = stories.handle(state, fs.ready(error="x" * 5000), fs.ctx(3))
    assert failed is not None and STORIES.decode(STORIES.encode(failed)) == failed
    with pytest.raises(StateError, match="table story: not a stored Story"):
        STORIES.decode(b"{}")


def test_pending_media_round_trips() -> None:
    waiting = AwaitMedia(story_id=fs.STORY, media_id=fs.MEDIA)
    state, _ = media_join.handle(None, waiting, fs.ctx())
    state, _ = media_join.handle(state, fs.transcoded(), fs.ctx(1))
    assert state is not None and state.result is not None
    assert MEDIA.decode(MEDIA.encode(state)) == state


def test_story_info_and_counters_round_trip() -> None:
    story = info("highlighted", story_id="a-b_c", author_id="x" * 64)
    assert INFO.decode(INFO.encode(story)) == story
    events = [reacted("u1", "👍🏽", 1, text="nice ✨"), reacted("u2", "like", 2)]
    reactions = apply_reactions(None, info(), events, set(), fs.ctx()).state
    assert (
        reactions is not None
        and REACTION_STATE.decode(REACTION_STATE.encode(reactions)) == reactions
    )
    store = ViewsStore()
    store.apply([viewed(f"u{i}", i) for i in range(50)])
    assert store.state is not None
    assert VIEW_STATE.decode(VIEW_STATE.encode(store.state)) == store.state


@pytest.mark.parametrize("garbage", [b"", b"{}", b"\x92\x01\x02", b"\xff", b"\xc1junk"])
def test_garbage_is_a_clear_error(garbage: bytes) -> None:
    with pytest.raises(StateError, match="not a stored StoryInfo"):
        INFO.decode(garbage)
    with pytest.raises(StateError, match="not a stored ViewState"):
        VIEW_STATE.decode(garbage)


def test_parked_events_and_author_cores_round_trip() -> None:
    parked = [ParkedEvent(view=as_view(viewed("u1", 5))), ParkedEvent(reaction=reacted("u2"))]
    chunk: Codec[list[ParkedEvent]] = Codec(list[ParkedEvent])
    assert chunk.decode(chunk.encode(parked)) == parked
    held = Held(T0, 3, 1)
    held_codec: Codec[Held] = Codec(Held)
    assert held_codec.decode(held_codec.encode(held)) == held
    assert PARKED.prefix == b"parked\x01"
    core = AuthorCore((), True, 100_000, 3)
    assert CORES.decode(CORES.encode(core)) == core


def _tray(stories: int) -> TrayState:
    """A tray with `stories` stories of stories/2 authors, half of them seen."""
    items = tuple(
        TrayStory(
            f"author_{i % (stories // 2 or 1):08d}",
            f"story_{i:012d}",
            T0,
            T0 + timedelta(hours=24),
            seen=i % 2 == 0,
        )
        for i in range(stories)
    )
    state = TrayState("user_000000001", items)
    return replace(state, published=tray_digest(render_tray(state, T0)))


def test_a_tray_of_thousands_of_stories_is_stored_far_below_a_record() -> None:
    state = _tray(10_000)
    data = TRAY_STATE.encode(state)
    assert data[:1] == b"\xc1" and len(data) < 200_000
    assert TRAY_STATE.decode(data) == state


def test_a_small_value_stays_plain() -> None:
    state = _tray(4)
    data = TRAY_STATE.encode(state)
    assert data[:1] != b"\xc1" and len(data) <= COMPRESS_ABOVE
    assert TRAY_STATE.decode(data) == state


def test_a_table_puts_gets_and_deletes_under_its_prefix() -> None:
    kv: dict[bytes, bytes] = {}

    class Store:
        def get(self, key: bytes) -> bytes | None:
            return kv.get(key)

        def put(self, key: bytes, value: bytes) -> None:
            kv[key] = value

        def delete(self, key: bytes) -> None:
            kv.pop(key, None)

    table: Table[dict[str, int]] = Table("plain", dict[str, int])
    large = {f"key-{i}": i for i in range(20_000)}
    table.put(Store(), "big", large)
    assert set(kv) == {b"plain\x01big"} and kv[b"plain\x01big"][:1] == b"\xc1"
    assert table.get(Store(), "big") == large
    table.set(Store(), "small", {"a": 1})
    assert table.get(Store(), "small") == {"a": 1}
    table.set(Store(), "big", None)
    assert table.get(Store(), "big") is None and set(kv) == {b"plain\x01small"}
