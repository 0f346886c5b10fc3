"""The Confluent wire format and the codec's one error type."""

from __future__ import annotations

import struct
from datetime import UTC, datetime

import pytest

from schemas.avro import latest
from schemas.events import parse_event
from schemas.records import StoryViewer
from streams.codecs.avro import AvroCodec, CodecError
from streams.codecs.registry import EmbeddedRegistry

VIEW = parse_event(
    {
        "type": "story_viewed",
        "story_id": "s1",
        "viewer_id": "u1",
        "viewed_at": "2026-11-22T10:00:00Z",
    }
)


@pytest.fixture
def codec() -> AvroCodec:
    return AvroCodec("StoryViewed", EmbeddedRegistry(), "story-viewed-value")


def test_wire_format_is_magic_byte_schema_id_then_avro(codec: AvroCodec) -> None:
    data = codec.encode(VIEW)
    magic, schema_id = struct.unpack(">bI", data[:5])
    assert magic == 0
    assert schema_id == latest("StoryViewed").schema_id
    assert codec.decode(data) == VIEW


def test_output_records_round_trip() -> None:
    codec = AvroCodec("StoryViewer", EmbeddedRegistry(), "story-viewers-value")
    record = StoryViewer(story_id="s", viewer_id="v", first_viewed_at=VIEW.viewed_at)
    assert codec.decode(codec.encode(record)) == record


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "too short"),
        (None, "too short"),
        (b"\x01\x00\x00\x00\x0c\x00", "magic byte"),
        (b"\x00\x00\x00\x03\xe7abc", "unknown schema id 999"),
    ],
)
def test_bad_bytes_raise_codec_error(codec: AvroCodec, data: bytes | None, reason: str) -> None:
    with pytest.raises(CodecError, match=reason):
        codec.decode(data)


def test_truncated_and_trailing_bytes_raise_codec_error(codec: AvroCodec) -> None:
    data = codec.encode(VIEW)
    with pytest.raises(CodecError, match="undecodable"):
        codec.decode(data[:-3])
    with pytest.raises(CodecError, match="trailing"):
        codec.decode(data + b"\x00")


def test_encoding_a_wrong_shape_raises_codec_error(codec: AvroCodec) -> None:
    with pytest.raises(CodecError, match="cannot encode"):
        codec.encode({"story_id": 5})


def test_unknown_record_name() -> None:
    with pytest.raises(CodecError, match="no schema named"):
        AvroCodec("Nope", EmbeddedRegistry(), "x")


def test_the_engine_encoder_writes_what_encode_writes() -> None:
    codec = AvroCodec("StoryViewer", EmbeddedRegistry(), "story-viewers-value")
    viewer = StoryViewer(
        story_id="s1", viewer_id="u1", first_viewed_at=datetime(2026, 11, 22, tzinfo=UTC)
    )
    assert codec.encoder()(viewer) == codec.encode(viewer)
    assert codec.decode(codec.encoder()(viewer)) == viewer
