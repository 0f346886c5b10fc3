"""The compiled Avro writer and reader agree with fastavro on every schema of the project."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from typing import Any

import fastavro
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.avro import current_schemas
from streams.codecs.binary import read_varint, varint
from streams.codecs.binary_reader import compile_reader
from streams.codecs.binary_writer import compile_writer

_TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=70)
_TIMES = st.integers(-(10**12), 10**13).map(
    lambda ms: datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=ms)
)


def values(schema: Any, named: dict[str, Any] | None = None) -> st.SearchStrategy[Any]:
    """Any value of an (expanded) Avro schema."""
    named = {} if named is None else named
    if isinstance(schema, list):
        return st.one_of(*(values(branch, named) for branch in schema))
    if isinstance(schema, str):
        primitives = {
            "null": st.none(),
            "boolean": st.booleans(),
            "int": st.integers(-(2**31), 2**31 - 1),
            "long": st.integers(-(2**63), 2**63 - 1),
            "string": _TEXT,
            "bytes": st.binary(max_size=70),
            "double": st.floats(allow_nan=False),
        }
        if schema in primitives:
            return primitives[schema]
        return st.deferred(lambda: named[schema.rsplit(".", 1)[-1]])
    kind = schema["type"]
    if schema.get("logicalType") == "timestamp-millis":
        return _TIMES
    if kind == "record":
        strategy = st.fixed_dictionaries(
            {f["name"]: values(f["type"], named) for f in schema["fields"]}
        )
        named[schema["name"].rsplit(".", 1)[-1]] = strategy
        return strategy
    if kind == "enum":
        named[schema["name"]] = strategy = st.sampled_from(schema["symbols"])
        return strategy
    if kind == "array":
        return st.lists(values(schema["items"], named), max_size=4)
    if kind == "map":
        return st.dictionaries(_TEXT, values(schema["values"], named), max_size=4)
    return values(kind, named)


def _fastavro_bytes(parsed: Any, value: Any) -> bytes:
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, parsed, value)
    return buf.getvalue()


@pytest.mark.parametrize("record", sorted(current_schemas()))
def test_compiled_codecs_agree_with_fastavro(record: str) -> None:
    schema = current_schemas()[record]
    parsed = fastavro.parse_schema(schema, _force=True)
    write, read = compile_writer(schema), compile_reader(schema)

    @settings(max_examples=60, deadline=None)
    @given(values(schema))
    def agree(value: Any) -> None:
        data = _fastavro_bytes(parsed, value)
        assert write(value) == data
        decoded, end = read(data, 0)
        assert end == len(data)
        assert decoded == fastavro.schemaless_reader(io.BytesIO(data), parsed, None)

    agree()


@given(st.integers(-(2**63), 2**63 - 1))
def test_varint_round_trips(n: int) -> None:
    data = varint(n)
    assert read_varint(data + b"\xff", 0) == (n, len(data))


def test_times_are_written_from_datetimes_or_milliseconds_alike() -> None:
    schema = current_schemas()["StoryViewed"]
    write = compile_writer(schema)
    at = datetime(2026, 11, 22, 10, 0, 0, 123000, tzinfo=UTC)
    base = {"event_id": "e1", "type": "story_viewed", "story_id": "s1", "viewer_id": "u1"}
    assert write({**base, "viewed_at": at}) == write({**base, "viewed_at": 1795341600123})


def test_a_truncated_string_is_an_error_not_a_short_value() -> None:
    read = compile_reader(current_schemas()["StoryViewed"])
    data = compile_writer(current_schemas()["StoryViewed"])(
        {
            "event_id": "e1",
            "type": "story_viewed",
            "story_id": "s1",
            "viewer_id": "u1",
            "viewed_at": 0,
        }
    )
    with pytest.raises((EOFError, IndexError)):
        read(data[:4], 0)


def test_unsupported_unions_are_refused_at_compile_time() -> None:
    with pytest.raises(NotImplementedError):
        compile_writer(
            {"type": "record", "name": "R", "fields": [{"name": "x", "type": ["int", "string"]}]}
        )


def test_a_missing_field_with_a_default_is_written_as_fastavro_writes_it() -> None:
    schema = current_schemas()["FollowChanged"]
    value = {
        "event_id": "e1",
        "type": "user_followed",
        "follower_id": "a",
        "followee_id": "b",
        "at": datetime(2026, 1, 1, tzinfo=UTC),
    }
    parsed = fastavro.parse_schema(schema, _force=True)
    assert compile_writer(schema)(value) == _fastavro_bytes(parsed, value)
    with pytest.raises(KeyError):
        compile_writer(schema)({k: v for k, v in value.items() if k != "at"})


# -- hostile values and bytes ------------------------------------------------------------------
_RENDITION = {
    "name": "720",
    "url": "https://x/y",
    "width": 720,
    "height": 1280,
    "content_type": "image/jpeg",
}
_VIEW = {
    "event_id": "e1",
    "type": "story_viewed",
    "story_id": "s1",
    "viewer_id": "u1",
    "viewed_at": 0,
}
_UPLOAD = {
    "event_id": "e1", "type": "media_uploaded", "media_id": "m", "author_id": "a",
    "object_key": "k", "content_type": "image/jpeg", "at": 0, "size_bytes": None, "story_id": None,
}  # fmt: skip


@pytest.mark.parametrize(
    ("record", "value", "field"),
    [
        ("Rendition", {**_RENDITION, "width": 2**31}, "width"),
        ("Rendition", {**_RENDITION, "height": -(2**31) - 1}, "height"),
        ("Rendition", {**_RENDITION, "width": 2**70}, "width"),
        ("MediaUploaded", {**_UPLOAD, "size_bytes": 2**63}, "size_bytes"),
        ("MediaUploaded", {**_UPLOAD, "size_bytes": -(2**63) - 1}, "size_bytes"),
        (
            "ViewCount",
            {"story_id": "s", "unique_viewers": 2**64, "total_views": 1, "sketch": b""},
            "unique_viewers",
        ),
        ("StoryViewed", {**_VIEW, "viewed_at": -(2**62)}, "viewed_at"),
        ("StoryViewed", {**_VIEW, "viewed_at": 253402300800000}, "viewed_at"),  # year 10000
        ("StoryViewed", {**_VIEW, "viewed_at": 2**64}, "viewed_at"),
        (
            "DeadLetter",
            {"source_topic": "t", "partition": 2**31, "offset": 0, "error": "e", "at": 0},
            "partition",
        ),
    ],
)
def test_a_writer_refuses_a_value_its_avro_type_cannot_hold(
    record: str, value: dict[str, Any], field: str
) -> None:
    # never wrapped bytes: fastavro refuses the same values
    with pytest.raises(ValueError, match=f"{field}: .* (out of range for an Avro|outside years)"):
        compile_writer(current_schemas()[record])(value)


@pytest.mark.parametrize(
    ("schema", "value"),
    [
        ({"type": "map", "values": "long"}, {"like": 2**63}),
        ({"type": "array", "items": "int"}, [2**31]),
        (["null", "int"], -(2**31) - 1),
        ({"type": "long", "logicalType": "timestamp-millis"}, -(2**62)),
        ("long", 2**63),
        ("int", 2**31),
    ],
)
def test_nested_and_standalone_integers_are_range_checked_too(schema: Any, value: Any) -> None:
    with pytest.raises(ValueError, match="out of range|outside years"):
        compile_writer(schema)(value)


@given(
    st.one_of(st.integers(2**63, 2**80), st.integers(-(2**80), -(2**63) - 1)),
)
def test_varint_refuses_what_a_long_cannot_hold(n: int) -> None:
    with pytest.raises(ValueError, match="out of range for an Avro long"):
        varint(n)


def test_the_extremes_of_each_range_are_written_as_fastavro_writes_them() -> None:
    for record, value in [
        ("Rendition", {**_RENDITION, "width": 2**31 - 1, "height": -(2**31)}),
        ("MediaUploaded", {**_UPLOAD, "size_bytes": 2**63 - 1, "at": 253402300799999}),
        ("MediaUploaded", {**_UPLOAD, "size_bytes": -(2**63), "at": -62135596800000}),
    ]:
        schema = current_schemas()[record]
        data = _fastavro_bytes(fastavro.parse_schema(schema, _force=True), value)
        assert compile_writer(schema)(value) == data
        assert compile_reader(schema)(data, 0)[1] == len(data)


def _body(record: str, value: dict[str, Any]) -> bytes:
    return compile_writer(current_schemas()[record])(value)


_VIEW_HEAD = _body("StoryViewed", _VIEW)[:-1]  # all but the time (0: one byte)
_RENDITION_HEAD = b"\x06720\x16https://x/y"  # name, url: then width


@pytest.mark.parametrize(
    ("record", "data", "reason"),
    [
        (
            "StoryViewed",
            _VIEW_HEAD + varint(-(2**62)),
            "viewed_at: -4611686018427387904 ms is outside years 1-9999",
        ),
        ("StoryViewed", _VIEW_HEAD + varint(2**63 - 1), "outside years 1-9999"),
        ("StoryViewed", _VIEW_HEAD + b"\xff" * 10 + b"\x01", "over 10 bytes"),
        ("StoryViewed", _VIEW_HEAD + b"\xff" * 1_000_000, "over 10 bytes"),  # not a hang
        (
            "Rendition",
            _RENDITION_HEAD + varint(2**31) + b"\x02\x02a",
            "out of range for an Avro int",
        ),
        (
            "Rendition",
            _RENDITION_HEAD + b"\xff" * 9 + b"\x7f" + b"\x02\x02a",
            "out of range for an Avro long",
        ),
        ("Rendition", _RENDITION_HEAD + b"\xff" * 20, "over 10 bytes"),
        ("StoryViewed", b"\x02e\x02", "type: enum index 1 out of range"),
        ("StoryViewed", b"\x02e" + varint(2**40), "out of range for an Avro int"),
        (
            "MediaUploaded",
            _body("MediaUploaded", _UPLOAD)[:-2] + b"\x04",
            "size_bytes: union branch 2 out of range",
        ),
        (
            "StoryPosted",
            b"\x02e\x00\x02s\x02a\x00\x00\x00\x02" + varint(2**62),
            "block of 4611686018427387904 items",
        ),
        (
            "StoryPosted",
            b"\x02e\x00\x02s\x02a\x00\x00\x00\x02" + varint(-(2**63)) + b"\x00",
            "block of 9223372036854775808 items",
        ),
        ("ReactionCounts", b"\x02s" + varint(2**50), "block of 1125899906842624 items"),
        ("ViewCount", b"\x02s\x00\x00" + varint(2**62), "overrun"),  # a huge declared length
        ("ViewCount", b"\x02s\x00\x00\x01", "overrun"),  # a negative one
        ("StoryViewed", b"\x02\xff\x00\x02s\x02u\x00", "decode byte 0xff"),  # not UTF-8
        ("StoryViewed", b"\x02e\x00\x02s\x02u", "index out of range"),  # truncated
    ],
)
def test_a_reader_refuses_malformed_bytes_with_a_reason(
    record: str, data: bytes, reason: str
) -> None:
    with pytest.raises((ValueError, EOFError, IndexError), match=reason):
        compile_reader(current_schemas()[record])(data, 0)


def test_an_array_of_items_that_may_take_no_bytes_is_left_to_fastavro() -> None:
    # its block count could not be bounded by the bytes left
    with pytest.raises(NotImplementedError):
        compile_reader({"type": "array", "items": "null"})
    empty = {"type": "record", "name": "Empty", "fields": []}
    with pytest.raises(NotImplementedError):
        compile_reader({"type": "array", "items": empty})
