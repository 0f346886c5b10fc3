"""The blurhash versions of MediaTranscoded and StoryState: fixed ids, and v1 records still read."""

from __future__ import annotations

import io
import struct
from datetime import UTC, datetime

import fastavro
import pytest

from schemas.avro import history, schema_ids
from schemas.events import MediaTranscoded, Rendition
from schemas.records import StoryState
from streams.codecs.avro import AvroCodec, CodecError
from streams.codecs.registry import EmbeddedRegistry
from streams.topics import MEDIA_TRANSCODED, STORY_STATE

AT = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
AT_MS = int(AT.timestamp() * 1000)
HASH = "LEHV6nWB2yk8pyo0adR*.7kCMdnj"
RENDITION = {
    "name": "480",
    "url": "http://s3.local/media/m1/480.jpg",
    "width": 480,
    "height": 360,
    "content_type": "image/jpeg",
}


def _v1_bytes(name: str, record: dict[str, object]) -> bytes:
    """`record` as a producer with the v1 schema wrote it: Confluent framing, v1's id."""
    v1 = next(v for v in history()[name] if v.version == 1)
    assert "blurhash" not in {f["name"] for f in v1.definition["fields"]}
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, v1.parsed, record)
    return struct.pack(">bI", 0, v1.schema_id) + buf.getvalue()


def test_the_new_versions_have_fixed_ids_after_the_old_ones() -> None:
    ids = schema_ids()
    assert (ids["MediaTranscoded.v1"], ids["StoryState.v1"]) == (4, 11)
    assert (ids["MediaTranscoded.v2"], ids["StoryState.v2"]) == (17, 18)
    for name, new_id in (("MediaTranscoded", 17), ("StoryState", 18)):
        latest = history()[name][-1]
        assert (latest.version, latest.schema_id) == (2, new_id)
        field = next(f for f in latest.definition["fields"] if f["name"] == "blurhash")
        assert field["type"] == ["null", "string"] and field["default"] is None


def test_a_media_transcoded_written_with_v1_reads_with_a_null_blurhash() -> None:
    codec = AvroCodec("MediaTranscoded", EmbeddedRegistry(), MEDIA_TRANSCODED.subject)
    old = {
        "event_id": "e1",
        "type": "media_transcoded",
        "media_id": "m1",
        "renditions": [RENDITION],
        "at": AT_MS,
        "duration_ms": None,
        "error": None,
    }
    event = codec.decode(_v1_bytes("MediaTranscoded", old))
    assert isinstance(event, MediaTranscoded)
    assert event.blurhash is None
    assert (event.media_id, event.renditions, event.at) == ("m1", [Rendition(**RENDITION)], AT)


def test_a_story_state_written_with_v1_reads_with_a_null_blurhash() -> None:
    codec = AvroCodec("StoryState", EmbeddedRegistry(), STORY_STATE.subject)
    old = {
        "story_id": "s1",
        "author_id": "alice",
        "created_at": AT_MS,
        "expires_at": AT_MS + 86_400_000,
        "audience": "public",
        "status": "active",
        "renditions": [RENDITION],
        "highlight_ids": [],
        "media_id": "m1",
        "media_type": "image",
    }
    state = codec.decode(_v1_bytes("StoryState", old))
    assert isinstance(state, StoryState)
    assert state.blurhash is None
    assert (state.story_id, state.status, state.media_type) == ("s1", "active", "image")


def test_new_records_are_written_with_v2_and_keep_the_blurhash() -> None:
    registry = EmbeddedRegistry()
    media = AvroCodec("MediaTranscoded", registry, MEDIA_TRANSCODED.subject)
    event = MediaTranscoded(
        event_id="e2", media_id="m2", renditions=[Rendition(**RENDITION)], at=AT, blurhash=HASH
    )
    data = media.encode(event)
    assert struct.unpack_from(">bI", data) == (0, 17)
    assert media.decode(data) == event
    story = AvroCodec("StoryState", registry, STORY_STATE.subject)
    state = StoryState(
        story_id="s2",
        author_id="alice",
        created_at=AT,
        expires_at=AT,
        audience="followers",
        status="active",
        blurhash=HASH,
    )
    data = story.encode(state)
    assert struct.unpack_from(">bI", data) == (0, 18)
    assert story.decode(data) == state


@pytest.mark.parametrize("bad", ["", "short", "x" * 167])
def test_a_blurhash_of_an_impossible_length_is_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="blurhash"):
        MediaTranscoded(event_id="e3", media_id="m3", renditions=[], at=AT, blurhash=bad)


def test_codec_names_a_bad_blurhash_in_a_record() -> None:
    codec = AvroCodec("MediaTranscoded", EmbeddedRegistry(), MEDIA_TRANSCODED.subject)
    good = MediaTranscoded(event_id="e4", media_id="m4", renditions=[], at=AT, blurhash=HASH)
    data = codec.encode(good.model_dump() | {"blurhash": "short"})
    with pytest.raises(CodecError, match="blurhash"):
        codec.decode(data)
