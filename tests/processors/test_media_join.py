"""The media stage: a story waiting for its media meets the media's transcode result."""

from __future__ import annotations

import msgspec

from processors.context import Forward
from processors.media_join import (
    await_media,
    expire_media,
    handle,
    media_due,
    media_transcoded,
    media_type_of,
)
from processors.messages import AwaitMedia, MediaReady
from tests.processors.factories_stories import (
    GRACE_MIN,
    MEDIA,
    STORY,
    TTL_MIN,
    at,
    ctx,
    rendition,
    transcoded,
)

BLURHASH = "LEHV6nWB2yk8pyo0adR*.7kCMdnj"
KEEP = TTL_MIN + GRACE_MIN  # minutes a media's state is kept after its first message


def waiting(story_id: str = STORY) -> AwaitMedia:
    return AwaitMedia(story_id=story_id, media_id=MEDIA)


def ready_for(story_id: str = STORY, *, error: str | None = None) -> Forward:
    renditions = () if error else (rendition(),)
    message = MediaReady(
        story_id=story_id,
        media_id=MEDIA,
        renditions=renditions,
        media_type=None if error else "image",
        error=error,
    )
    return Forward("story", story_id, message)


def test_story_first_then_result_delivers_it() -> None:
    state, outputs = await_media(None, waiting(), ctx())
    assert outputs == [] and state is not None and state.waiting == {STORY}
    joined, outputs = media_transcoded(state, transcoded(minutes=1), ctx(1))
    assert outputs == [ready_for()]
    assert joined is not None and joined.waiting == frozenset() and joined.delivered == {STORY}


def test_result_first_then_story_delivers_it_at_once() -> None:
    state, outputs = media_transcoded(None, transcoded(), ctx())
    assert outputs == []
    _, outputs = await_media(state, waiting(), ctx(1))
    assert outputs == [ready_for()]


def test_a_failed_transcode_is_delivered_as_an_error() -> None:
    state, _ = await_media(None, waiting(), ctx())
    _, outputs = media_transcoded(state, transcoded(error="unsupported codec"), ctx(1))
    assert outputs == [ready_for(error="unsupported codec")]


def test_every_waiting_story_is_told_once() -> None:
    state, _ = handle(None, waiting("s1"), ctx())
    state, _ = handle(state, waiting("s2"), ctx())
    state, outputs = handle(state, transcoded(), ctx(1))
    assert outputs == [ready_for("s1"), ready_for("s2")]


def test_redelivery_changes_nothing() -> None:
    state, _ = handle(None, waiting(), ctx())
    state, _ = handle(state, transcoded(), ctx(1))
    assert handle(state, waiting(), ctx(2)) == (state, [])
    assert handle(state, transcoded(), ctx(2)) == (state, [])
    pending, _ = handle(None, waiting(), ctx())
    assert handle(pending, waiting(), ctx(1)) == (pending, [])


def test_the_first_result_wins() -> None:
    state, _ = handle(None, transcoded(error="boom"), ctx())
    state, _ = handle(state, transcoded(minutes=5), ctx(5))
    _, outputs = handle(state, waiting(), ctx(6))
    assert outputs == [ready_for(error="boom")]


def test_the_state_is_dropped_after_its_time() -> None:
    state, _ = handle(None, waiting(), ctx())
    state, _ = handle(state, transcoded(), ctx(1))
    assert media_due(state) == at(KEEP)
    assert expire_media(state, ctx(KEEP - 1)) == (state, [])
    assert expire_media(state, ctx(KEEP)) == (None, [])
    assert media_due(None) is None


def test_a_stale_state_is_replaced_even_before_the_scan() -> None:
    old, _ = handle(None, transcoded(), ctx())
    state, outputs = handle(old, waiting(), ctx(KEEP))
    assert outputs == [] and state is not None and state.result is None
    assert state.keep_until == at(2 * KEEP)


def test_media_type_from_renditions() -> None:
    assert media_type_of(()) is None
    assert media_type_of((rendition(),)) == "image"
    assert media_type_of((rendition(), rendition("v", "video/mp4"))) == "video"


def test_the_blurhash_goes_to_every_story_waiting_or_to_come() -> None:
    hashed = transcoded(blurhash=BLURHASH)
    state, _ = await_media(None, waiting("s-early"), ctx())
    state, outputs = media_transcoded(state, hashed, ctx(1))
    assert [o.message.blurhash for o in outputs if isinstance(o, Forward)] == [BLURHASH]
    _, outputs = await_media(state, waiting("s-late"), ctx(2))
    late = ready_for("s-late").message
    assert isinstance(late, MediaReady)
    assert outputs == [Forward("story", "s-late", msgspec.structs.replace(late, blurhash=BLURHASH))]
