"""Internal messages between stages survive the trip through their topic unchanged."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import get_args

import pytest

from processors.messages import (
    AwaitMedia,
    CelebrityFollowChanged,
    MediaObjectsChanged,
    MediaReady,
    StoryClosed,
    StoryLifecycle,
    StoryOpened,
    StorySeen,
    TrayStoryAdded,
    TrayStoryRemoved,
)
from schemas.events import Rendition
from streams.codecs import CodecError
from streams.handlers.common import InternalMessage, decode_message, encode_message

AT = datetime(2026, 11, 22, 10, 0, 0, 123000, tzinfo=UTC)
LATER = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
MESSAGES = [
    AwaitMedia(story_id="s1", media_id="m1"),
    MediaReady(
        story_id="s1",
        media_id="m1",
        renditions=(
            Rendition(
                name="720", url="https://x/y.mp4", width=720, height=1280, content_type="video/mp4"
            ),
        ),
        media_type="video",
        duration_ms=15_000,
    ),
    MediaReady(story_id="s1", media_id="m1", error="not a video"),
    StoryOpened(
        story_id="s1", author_id="a", created_at=AT, expires_at=LATER, audience="close_friends"
    ),
    StoryClosed(story_id="s1", author_id="a"),
    StoryLifecycle(story_id="s1", author_id="a", expires_at=LATER, phase="highlighted"),
    StorySeen(user_id="u", story_id="s1", at=AT),
    TrayStoryAdded(user_id="u", author_id="a", story_id="s1", created_at=AT, expires_at=LATER),
    TrayStoryRemoved(user_id="u", author_id="a", story_id="s1"),
    CelebrityFollowChanged(user_id="u", author_id="a", following=True),
    MediaObjectsChanged(media_id="m1", story_id="s1", action="move_to_highlights"),
]


@pytest.mark.parametrize("message", MESSAGES, ids=lambda m: m.kind + str(id(m) % 7))
def test_a_message_decodes_to_what_was_sent(message) -> None:
    decoded = decode_message(encode_message(message))
    assert decoded == message
    assert type(decoded) is type(message)


def test_a_garbled_message_is_a_codec_error() -> None:
    with pytest.raises(CodecError):
        decode_message(b'{"kind": "story_seen", "user_id": "u"}')


def test_every_internal_message_type_is_exercised() -> None:
    union = get_args(InternalMessage)[0]
    assert {type(message) for message in MESSAGES} == set(get_args(union))
