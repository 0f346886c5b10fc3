"""The view firehose's reader: StoryViewed records sliced into Views."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings

from processors.views import View
from schemas.avro import current_schemas
from schemas.types import millis
from streams.codecs import view_slicer as view_records
from streams.codecs.avro import AvroCodec, CodecError
from streams.codecs.registry import EmbeddedRegistry
from streams.codecs.view_slicer import view_reader
from tests.processors.factories_views import viewed
from tests.streams.test_avro_binary import values

VIEW = viewed("u1", 5.0021, story_id="s1")  # at a time with milliseconds


@pytest.fixture
def codec() -> AvroCodec:
    return _codec()


def _codec(record: str = "StoryViewed", registry: EmbeddedRegistry | None = None) -> AvroCodec:
    return AvroCodec(record, registry or EmbeddedRegistry(), f"{record}-value")


def test_a_view_is_sliced(codec: AvroCodec) -> None:
    view = view_reader(codec)(codec.encode(VIEW))
    assert type(view) is View
    assert view == View("s1", "u1", VIEW.event_id, millis(VIEW.viewed_at))


@settings(max_examples=300, deadline=None)
@given(values(current_schemas()["StoryViewed"]))
def test_the_reader_reads_any_record_as_the_general_reader_does(value: dict[str, Any]) -> None:
    # given any StoryViewed record (any strings, long or not, any time)
    codec = _codec()
    data = codec.encode(value)
    # when it is read, then its fields are what decode_dict reads
    view = view_reader(codec)(data)
    assert view == View.of(codec.decode_dict(data))


class _OlderIds(EmbeddedRegistry):
    """A registry whose current StoryViewed id is not the one the data was written with (as
    after a schema change): the data's id still resolves to its writer schema."""

    def id_for(self, record: str, subject: str) -> int:
        return super().id_for(record, subject) + 1000


def test_a_record_of_another_schema_id_is_read_by_the_general_reader(codec: AvroCodec) -> None:
    data = codec.encode(VIEW)
    older = _codec(registry=_OlderIds())
    view = view_reader(older)(data)
    assert view == View.of(codec.decode_dict(data))


@pytest.mark.parametrize(
    ("mangle", "reason"),
    [
        (lambda data: data[:-3], "undecodable"),
        (lambda data: data + b"\x00", "trailing"),
        (lambda data: b"", "too short"),
        (lambda data: None, "too short"),
        (lambda data: b"\x01" + data[1:], "magic byte"),
        (lambda data: b"\x00\x00\x00\x03\xe7" + data[5:], "unknown schema id 999"),
        (lambda data: data[:5] + b"\x01" + data[6:], "undecodable"),  # a negative length
        (lambda data: data[:5] + b"\xff\xff" + data[7:], "undecodable"),
    ],
)
def test_a_record_that_cannot_be_read_raises_a_codec_error(
    codec: AvroCodec, mangle: Callable[[bytes], bytes | None], reason: str
) -> None:
    with pytest.raises(CodecError, match=reason):
        view_reader(codec)(mangle(codec.encode(VIEW)))


def _changed(index: int, key: str, value: Any) -> dict[str, Any]:
    schema = copy.deepcopy(current_schemas()["StoryViewed"])
    schema["fields"][index][key] = value
    return schema


@pytest.mark.parametrize(
    ("index", "key", "value", "reason"),
    [
        (2, "name", "story", "StoryViewed fields changed"),
        (3, "type", "bytes", "field types changed"),
        (4, "type", "string", "field types changed"),
    ],
)
def test_the_slicer_refuses_schemas_of_another_shape(
    monkeypatch: pytest.MonkeyPatch, index: int, key: str, value: Any, reason: str
) -> None:
    schemas = {**current_schemas(), "StoryViewed": _changed(index, key, value)}
    monkeypatch.setattr(view_records, "current_schemas", lambda: schemas)
    with pytest.raises(TypeError, match=reason):
        view_records._check_layout()
