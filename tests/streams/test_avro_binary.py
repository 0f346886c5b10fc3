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
from streams.avro_binary import compile_reader, compile_writer, read_varint, varint

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
