"""Bounded fuzzing of publish's validation: 800 examples of 1-4 lines, ~10 s on 2 cores.

Lines: valid events, the same with a value made hostile (nesting hundreds to thousands deep,
integers past 32 and 64 bits, floats and huge numbers for integers, times at and past years
1-9999, NUL, lone and reversed surrogate escapes, emoji joiners), a key given twice, an unknown
key, bytes that are not UTF-8 or raw NUL bytes inserted, bytes flipped or cut, random JSON and
random bytes. Every example goes through the flat (msgspec) lane, the general (orjson) lane, the
models, a chunk as `publish_lines` encodes it, a block as `publish FILE` and `publish -` encode
it, and the forked worker pool. The invariant: each line is either published with the bytes the
pydantic models write (a record fastavro reads back to the model's values and validates against
its schema) or reported invalid with its line number and a reason naming its field (or its JSON);
never an exception, and every path gives the same records and the same invalid lines.
Hypothesis runs derandomized, without an example database; what it found is kept as cases.

Budget: 800 examples (`max_examples`), about 10 s of one core and a little of a second (the
pool's worker); raise it locally to search longer.
"""

from __future__ import annotations

import copy
import io
import json
from collections.abc import Iterator
from datetime import timedelta
from functools import cache, partial
from typing import Any

import fastavro
import pytest
from fastavro.validation import validate
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from schemas.avro import current_schemas
from schemas.events import Event
from streams.codecs.avro import AvroCodec
from streams.publish.flat import FlatLane
from streams.publish.lane import PublishLane
from streams.publish.pool import OrderedPool
from streams.publish.publisher import (
    Encoder,
    InvalidLine,
    _packed,
    encode_block,
    encode_chunk,
    unpack,
    validate_line,
)
from tests.schemas.strategies import events
from tests.streams.test_decoder import SAMPLES

TTL = timedelta(hours=24)
ENCODER = Encoder(None)
LANE = PublishLane(ENCODER.registry, TTL)
FLAT = FlatLane(ENCODER.registry, TTL)
Encoded = tuple[str, bytes, bytes, int]
FUZZ = settings(
    max_examples=800,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.function_scoped_fixture,
    ],
)

# -- hostile values, as raw JSON text ----------------------------------------------------------
DEPTHS = [100, 199, 200, 201, 255, 256, 500, 999, 1000, 1023, 1024, 1025, 3000]
NUMBERS = [str(n) for n in [0, -1, 1, 2**31 - 1, 2**31, -(2**31), -(2**31) - 1, 2**63 - 1, 2**63]]
NUMBERS += [str(n) for n in [-(2**63), -(2**63) - 1, 2**64, 2**70, -(2**70), 10**30, 10**400]]
NUMBERS += ["720.0", "720.5", "1e3", "1e400", "-1e400", "-0.0", "1e308", "5e-324", "0.1"]
NUMBERS += ["NaN", "Infinity", "-Infinity", "01", "1.", ".5", "0x10", "+1"]
TIMES = ["0001-01-01T00:00:00Z", "9999-12-31T23:59:59.999999Z", "9999-12-31T23:00:00Z"]
TIMES += ["9999-12-30T23:59:59.999Z", "0000-01-01T00:00:00Z", "10000-01-01T00:00:00Z"]
TIMES += ["+275760-09-13T00:00:00Z", "2024-02-29T00:00:00Z", "2023-02-29T00:00:00Z"]
TIMES += ["2026-11-22T23:59:60Z", "1969-12-31T23:59:59.999Z", "9999-12-31T23:59:59.9999999999Z"]
TIMES += ["2026-11-22T10:00:00.000000000Z", "0001-01-01T00:00:00+00:00", "2026-11-22T10:00:00Z "]
TEXTS = ["\\u0000", "a\\u0000b", "\\ud800", "\\udfff", "\\ud83d\\ude00", "\\ude00\\ud83d"]
TEXTS += ["\\ud800\\u0041", "\U0001f525", "\\u200d", "\U0001f468\u200d\U0001f469", "a" * 1000, ""]
RAW_VALUES = st.one_of(
    st.sampled_from(NUMBERS),
    st.sampled_from(TIMES).map(json.dumps),
    st.sampled_from(TEXTS).map(lambda text: f'"{text}"'),
    st.sampled_from(["true", "null", "[]", "{}", "[1]", '{"a": 1}', '""']),
)
BAD_BYTES = [b"\xff", b"\xc3", b"\xed\xa0\x80", b"\xc0\xaf", b"\xf4\x90\x80\x80", b"\x00", b"\x80"]


def _deep(depth: int, kind: str) -> str:
    if kind == "list":
        return "[" * depth + "]" * depth
    return '{"a":' * depth + "1" + "}" * depth


def _nested_values(event: dict[str, Any]) -> Iterator[tuple[list[Any], str]]:
    """Where a value can be replaced: (the path of containers, the key), renditions included."""
    for key, value in event.items():
        yield [], key
        if key in ("media", "renditions") and isinstance(value, list):
            for i, rendition in enumerate(value):
                for inner in rendition:
                    yield [key, i], inner


_PLACEHOLDER = "\u2603hostile\u2603"
_HOW = st.sampled_from(
    ["valid", "valid", "value", "number", "number", "time", "time", "deep", "deep"]
    + ["twice", "unknown", "bytes", "cut", "json", "any"]
)
_INTEGER_FIELDS = {"width", "height", "size_bytes", "duration_ms"}
_NUMBERS = st.sampled_from(NUMBERS)
_TIMES = st.sampled_from(TIMES)


@st.composite
def hostile_lines(draw: st.DrawFn) -> bytes:
    """A valid event line, or one made hostile in one of the ways of the module's docstring."""
    data: dict[str, Any] = draw(events)
    how = draw(_HOW)
    if how == "number":  # an event with integers (renditions, sizes, durations), one made hostile
        kind = draw(st.sampled_from(["story_posted", "media_uploaded", "media_transcoded"]))
        data = {"type": kind, **copy.deepcopy(SAMPLES[kind])}
    if how == "time":
        data[draw(st.sampled_from([key for key in data if key.endswith("at")]))] = draw(_TIMES)
    if how == "json":
        return json.dumps(draw(_JSON)).encode()
    if how == "any":
        return draw(st.binary(max_size=80)).replace(b"\n", b" ")
    raw = None
    if how in ("value", "number", "deep"):
        places = list(_nested_values(data))
        if how == "number":
            places = [(path, key) for path, key in places if key in _INTEGER_FIELDS]
        path, key = draw(st.sampled_from(places))
        target = data
        for step in path:
            target = target[step]
        target[key] = _PLACEHOLDER
        if how == "deep":
            depth, kind = draw(st.sampled_from(DEPTHS)), draw(st.sampled_from(["list", "dict"]))
            raw = _deep(depth, kind)
        else:
            raw = draw(_NUMBERS if how == "number" else RAW_VALUES)
    text = json.dumps(data, ensure_ascii=draw(st.booleans()))
    if raw is not None:
        text = text.replace(json.dumps(_PLACEHOLDER, ensure_ascii=False), raw)
        text = text.replace(json.dumps(_PLACEHOLDER), raw)
    if how == "twice":  # a key given twice: the last one counts, on every path alike
        key = draw(st.sampled_from(sorted(data)))
        text = text[:-1] + f", {json.dumps(key)}: {draw(RAW_VALUES)}}}"
    if how == "unknown":
        text = text[:-1] + f', "x": {draw(RAW_VALUES)}}}'
    line = text.encode("utf-8", "surrogatepass")
    if how == "bytes":
        at = draw(st.integers(0, len(line)))
        line = line[:at] + draw(st.sampled_from(BAD_BYTES)) + line[at:]
    if how == "cut":
        line = line[: draw(st.integers(0, len(line)))]
    return line


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=6,
)


# -- the paths --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def pool() -> Iterator[OrderedPool]:
    """publish's forked workers, as `publish FILE` runs them (one, to leave a core free)."""
    work = partial(_packed, partial(encode_block, story_ttl=TTL, registry_url=None))
    with OrderedPool(work, 1) as workers:
        yield workers


def _reference(lines: list[bytes]) -> tuple[list[Encoded], list[InvalidLine]]:
    """What the models alone make of the lines (numbered from 1; blank ones skipped)."""
    records: list[Encoded] = []
    invalid: list[InvalidLine] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        result = validate_line(line, number, TTL)
        if isinstance(result, InvalidLine):
            invalid.append(result)
            continue
        record = ENCODER.encode(result)  # the models take only what Avro holds: never raises
        _check_record(record, result)
        records.append(record)
    return records, invalid


@cache
def _codec(record: str) -> AvroCodec:
    return AvroCodec(record, ENCODER.registry, f"{record}-value")


@cache
def _parsed(record: str) -> Any:
    return fastavro.parse_schema(current_schemas()[record], _force=True)


def _check_record(record: Encoded, model: Event) -> None:
    """A published record is valid Avro of its schema and reads back as the model's values."""
    schema = _parsed(model.avro_record)
    value = record[2]
    read = fastavro.schemaless_reader(io.BytesIO(value[5:]), schema, None)
    assert isinstance(read, dict) and validate(read, schema, raise_errors=True)
    assert _codec(model.avro_record).decode_dict(value) == read
    assert _codec(model.avro_record).to_model(read) == model


def _check_invalid(bad: InvalidLine) -> None:
    assert bad.errors and all(bad.errors), bad
    for error in bad.errors:  # "field: what is wrong", "not valid JSON: ...", or the rule's text
        head = error.split(":", 1)[0]
        assert ":" in error or " " in error, error
        assert head and "\n" not in head, error


def _all_paths(lines: list[bytes], pool: OrderedPool) -> None:
    records, invalid = _reference(lines)
    for bad in invalid:
        _check_invalid(bad)
    numbered = [(n, line) for n, line in enumerate(lines, start=1) if line.strip()]
    assert encode_chunk(numbered, TTL, None) == (records, invalid)  # publish_lines
    block = b"\n".join(lines) + b"\n"
    assert encode_block(block, TTL, None) == (records, invalid, len(lines))  # publish FILE / -
    (packed,) = pool.imap([block])
    assert unpack(packed) == (records, invalid, len(lines))  # the forked workers
    expected = iter(records)
    invalid_numbers = {bad.line for bad in invalid}
    for number, line in numbered:  # each lane vouches for a line with the models' bytes or not
        model = None if number in invalid_numbers else next(expected)
        assert LANE.encode(line.strip()) in (None, model)
        assert FLAT.encode_lines([line.strip()])[0] in (None, model)
    event(f"{len(records)} published, {len(invalid)} invalid")


LINES = st.lists(hostile_lines(), min_size=1, max_size=4)
VALID = b'{"type": "story_viewed", "story_id": "s1", "viewer_id": "u1", "viewed_at": "2026-11-22T10:00:00Z"}'
POSTED = b'{"type": "story_posted", "story_id": "p1", "author_id": "a1", "created_at": '
RENDITION = (
    b'{"name": "720", "url": "https://x/y", "width": %s, "height": 1, "content_type": "image/jpeg"}'
)


@FUZZ
@given(lines=LINES)
# What it found before publish kept to Avro's ranges and depths (each kept as a case):
# msgspec's RecursionError on a line nested 1,000 deep, which ended publish without a summary;
@example(lines=[VALID, b'{"a":' * 1000 + b"1" + b"}" * 1000, VALID])
@example(lines=[VALID[:-1] + b', "x": ' + b"[" * 1000 + b"]" * 1000 + b"}"])
# a derived expiry past 9999-12-31: OverflowError out of the models, and on the lanes a time
# no reader takes;
@example(lines=[POSTED + b'"9999-12-31T23:00:00Z"}', VALID])
# a rendition's width past an Avro int, and a size past a long (wrapped bytes on 2**64):
@example(lines=[POSTED + b'"2026-11-22T10:00:00Z", "media": [' + RENDITION % b"2147483648" + b"]}"])
@example(
    lines=[POSTED + b'"2026-11-22T10:00:00Z", "media": [' + RENDITION % str(2**70).encode() + b"]}"]
)
@example(
    lines=[
        b'{"type": "media_uploaded", "media_id": "m", "author_id": "a", "object_key": "k", '
        b'"content_type": "image/jpeg", "at": "2026-11-22T10:00:00Z", "size_bytes": 18446744073709551616}'
    ]
)
def test_every_line_is_published_as_the_models_write_it_or_named_invalid(
    lines: list[bytes], pool: OrderedPool
) -> None:
    _all_paths(lines, pool)
