"""Internal messages between stages survive the trip through their topic unchanged."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import get_args

import msgspec
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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
    message_from_fields,
)
from schemas.events import Rendition
from streams.codecs.avro import CodecError
from streams.runtime.metrics import Metrics
from streams.runtime.records import InRecord
from streams.runtime.routing import encode_message, encode_message_batch, forward_records
from streams.stages.common import InternalMessage, decode_message, internal_messages

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


@pytest.mark.parametrize("message", MESSAGES, ids=lambda m: type(m).__name__)  # repeats numbered
def test_a_message_decodes_to_what_was_sent(message) -> None:
    decoded = decode_message(encode_message(message))
    assert decoded == message
    assert type(decoded) is type(message)


def test_a_garbled_message_is_a_codec_error() -> None:
    with pytest.raises(CodecError):
        decode_message(b'{"kind": "story_seen", "user_id": "u"}')


def test_every_internal_message_type_is_exercised() -> None:
    assert {type(message) for message in MESSAGES} == set(get_args(InternalMessage))


class _Dead:
    """The part of a StageContext `internal_messages` uses: dead letters, metrics."""

    def __init__(self) -> None:
        self.letters: list[tuple[InRecord, str]] = []
        self.metrics = Metrics()

    def dead_letter(self, record: InRecord, reason: str) -> None:
        self.letters.append((record, reason))


def _record(value: bytes, offset: int = 7) -> InRecord:
    return InRecord("app-stage-tray", 3, offset, b"", value, 1_700_000_000_000)


def test_a_batch_of_forwards_gives_each_message_keyed_as_sent_in_order() -> None:
    items = [(f"key-{i}", m) for i, m in enumerate(MESSAGES)]
    batch = encode_message_batch(items)
    single = _record(encode_message(MESSAGES[0]), offset=8)
    single = single._replace(key=b"solo")
    dead = _Dead()
    decoded = list(internal_messages(dead, [_record(batch), single]))  # type: ignore[arg-type]
    assert [(r.key, m) for r, m in decoded] == [
        *((key.encode(), m) for key, m in items),
        (b"solo", MESSAGES[0]),
    ]
    assert all(
        (r.topic, r.partition, r.offset) == ("app-stage-tray", 3, 7) for r, _ in decoded[:-1]
    )
    assert dead.letters == []
    # the engine counts a record as one message; the batch's others are added
    assert dead.metrics.processed.value("app-stage-tray") == len(items) - 1


@pytest.mark.parametrize(
    "value",
    [
        b"[",  # not JSON
        b'[["k"]]',  # not a pair
        b'[[1, {"kind": "story_seen"}]]',  # not a string key
        b'[["k", {"kind": "story_seen", "user_id": "u"}]]',  # an invalid message
    ],
)
def test_a_batch_with_anything_wrong_is_dead_lettered_whole(value: bytes) -> None:
    good = encode_message_batch([("u", MESSAGES[6])])
    mixed = good[:-1] + b"," + value[1:]  # the good message, then the bad part
    dead = _Dead()
    assert list(internal_messages(dead, [_record(mixed)])) == []  # type: ignore[arg-type]
    assert len(dead.letters) == 1 and "invalid batch of internal messages" in dead.letters[0][1]


def test_a_message_given_as_its_fields_travels_as_the_model_does() -> None:
    message = MESSAGES[6]
    fields = {"kind": "story_seen", **msgspec.structs.asdict(message)}
    assert encode_message_batch([("u", fields)]) == encode_message_batch([("u", message)])
    assert encode_message(fields) == encode_message(message)
    assert message_from_fields(StorySeen, fields) == message


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.text("abc", min_size=1, max_size=5), st.text("xyz", max_size=60), st.booleans()
        )
    ),
    st.integers(30, 200),
)
def test_forward_records_keep_every_message_in_order_within_the_size_limit(
    given: list[tuple[str, str, bool]], limit: int
) -> None:
    # messages given as fields or as their JSON already encoded, mixed
    items = [(k, orjson.dumps({"m": m}) if encoded else {"m": m}) for k, m, encoded in given]
    records = list(forward_records(items, limit=limit))
    decoded = [orjson.loads(record) for record in records]
    assert [(k, v["m"]) for batch in decoded for k, v in batch] == [(k, m) for k, m, _ in given]
    assert all(decoded) or not items
    for record, batch in zip(records, decoded, strict=True):
        if len(batch) > 1:  # a message over the limit may travel alone
            assert len(record) <= limit


def test_a_large_forward_batch_fills_records_close_to_the_limit() -> None:
    items = [(f"k{i}", {"m": "x" * (5 if i < 1000 else 50)}) for i in range(20_000)]
    records = list(forward_records(items, limit=4096))
    decoded = [(k, v) for record in records for k, v in orjson.loads(record)]
    assert decoded == items
    assert all(len(record) <= 4096 for record in records)
    assert all(len(record) > 2048 for record in records[:-1])  # at least half full
