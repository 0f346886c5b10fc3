"""Bounded fuzzing of every input topic's record reader: 2,700 examples, ~8 s on 2 cores.

Each input topic's records are read as its handler reads them (`Decoder.models`, or
`Decoder.values` with the view slicer for `story-viewed`) and by `AvroCodec.decode_dict`. The
inputs: random bytes after a wire header, valid records mutated (bit flips, truncations,
appended, inserted and deleted bytes, a varint such as a length replaced by an extreme one), and
records generated from the schemas with extreme values (integers past 32 and 64 bits, times past
years 1-9999, bytes that are not UTF-8, wrong lengths, bad enum indexes and union branches,
negative and huge block counts). The invariant: a record either decodes or is a CodecError
(never another exception, a hang or a huge allocation), and a record that decodes is read alike
by fastavro, to its last byte. Hypothesis runs derandomized, without an example database, so
every run tries the same inputs; the crashes it found are kept as explicit cases.

Budget: 1,000 random, 700 mutated and 1,000 generated records (`max_examples`), about 8 s of
one core; raise them locally to search longer (`FUZZ` below).
"""

from __future__ import annotations

import io
import re
import struct
from functools import cache
from typing import Any

import fastavro
import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from processors.views import View
from schemas.avro import current_schemas
from schemas.events import parse_event
from schemas.types import MAX_MILLIS, MIN_MILLIS, millis
from streams.codecs.avro import AvroCodec, CodecError
from streams.stages.common import Decoder
from streams.topics import TopicSpec, route
from tests.schemas.strategies import events
from tests.streams.test_decoder import (
    REGISTRY,
    SAMPLES,
    decode_all,
    decoder,
    input_topics,
    record_key,
    sample,
)

FUZZ = settings(
    max_examples=1000,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
TOPICS = sorted(input_topics())
_HEADER = struct.Struct(">bI")


@cache
def _codec(record: str) -> AvroCodec:
    return AvroCodec(record, REGISTRY, f"{record}-value")


@cache
def _decoder(topic: str) -> Decoder:
    return decoder(input_topics()[topic])


@cache
def _fastavro_reader(record: str) -> Any:
    return fastavro.parse_schema(current_schemas()[record], _force=True)


def _fastavro(spec: TopicSpec, data: bytes) -> dict[str, Any]:
    """The record as fastavro reads it (its writer schema from the header), to its last byte."""
    writer = REGISTRY.writer_schema(_HEADER.unpack_from(data)[1])
    buf = io.BytesIO(data)
    buf.seek(_HEADER.size)
    value: dict[str, Any] = fastavro.schemaless_reader(buf, writer, _fastavro_reader(spec.record))  # type: ignore[assignment]
    assert buf.tell() == len(data), "fastavro left bytes unread"
    return value


def _check(topic: str, data: bytes) -> str:
    """The invariant: decoded and read alike by fastavro, or a CodecError (a dead letter).
    Returns which, with the reason's kind (for hypothesis's statistics)."""
    spec = input_topics()[topic]
    try:
        raw: dict[str, Any] | None = _codec(spec.record).decode_dict(data)
    except CodecError:
        raw = None
    if raw is not None:
        assert raw == _fastavro(spec, data)
    key = record_key(topic, raw) if raw is not None else None  # as its producer keys it
    decoded, pctx = decode_all(spec, [data], _decoder(topic), key)
    assert len(decoded) + len(pctx.letters) == 1
    if pctx.letters:
        reason = pctx.letters[0][1]
        assert reason.startswith(f"{spec.record}: ")
        return "refused: " + re.sub(r"-?\d+|'.*'|b'.*'", "_", reason.split(": ", 1)[1])[:70]
    assert raw is not None, "the decoder took bytes the codec refuses"
    fast = _fastavro(spec, data)
    (item,) = decoded
    if isinstance(item, View):
        fields = (fast["story_id"], fast["viewer_id"], fast["event_id"], millis(fast["viewed_at"]))
        assert (item.story_id, item.viewer_id, item.event_id, item.viewed_at) == fields
    else:
        assert isinstance(item, BaseModel)
        assert item.model_dump() == {k: fast[k] for k in type(item).model_fields}
    return "decoded"


# -- random bytes -----------------------------------------------------------------------------
def _headers(topic: str) -> st.SearchStrategy[bytes]:
    """The topic's wire header mostly; sometimes another record's, an unknown id, a bad magic."""
    own = _codec(input_topics()[topic].record).header
    others = [_codec(record).header for record in sorted(current_schemas())]
    return st.one_of(
        st.just(own),
        st.just(own),
        st.sampled_from(others),
        st.binary(min_size=0, max_size=5),
    )


@st.composite
def random_records(draw: st.DrawFn) -> tuple[str, bytes]:
    topic = draw(st.sampled_from(TOPICS))
    return topic, draw(_headers(topic)) + draw(st.binary(max_size=120))


@settings(FUZZ, max_examples=1000)
@given(random_records())
@example(("story-viewed", b"\x00\x00\x00\x00\x0c" + b"\xff" * 100_000))  # a varint's quadratic loop
@example(
    ("story-posted", b"\x00\x00\x00\x00\x09\x02e\x00\x02s\x02a\x00\x00\x00\x02\xff\xff\xff\xff\x0f")
)
def test_any_bytes_decode_or_are_a_codec_error(case: tuple[str, bytes]) -> None:
    event(_check(*case))


# -- mutated valid records --------------------------------------------------------------------
_EXTREMES = st.sampled_from(
    [0, -1, 1, 63, 64, -65, 2**31 - 1, 2**31, -(2**31), -(2**31) - 1, 2**62, -(2**62)]
    + [2**63 - 1, 2**63, -(2**63), -(2**63) - 1, 2**64, 2**70, -(2**70)]
    + [MIN_MILLIS, MIN_MILLIS - 1, MAX_MILLIS, MAX_MILLIS + 1]
)
_PERCENT = st.integers(0, 99)


@st.composite
def _extreme_ints(draw: st.DrawFn) -> int:
    """The ends of Avro's and datetimes' ranges and just past them mostly; any integer else."""
    return draw(_EXTREMES if draw(_PERCENT) < 80 else st.integers())


EXTREME_INTS = _extreme_ints()


_ANY_BYTE = st.integers(0, 255)


def raw_varint(n: int) -> bytes:
    """The zig-zag varint of any integer, as a writer without range checks would write it."""
    z = n << 1 if n >= 0 else ((-n) << 1) - 1
    out = bytearray()
    while z > 127:
        out.append(z & 127 | 128)
        z >>= 7
    out.append(z)
    return bytes(out)


_MUTATIONS = st.sampled_from(["flip", "byte", "letter", "cut", "add", "insert", "delete", "varint"])
_LETTERS = st.sampled_from(b"az09_-/ ")


@st.composite
def mutated_records(draw: st.DrawFn) -> tuple[str, bytes]:
    event = parse_event(draw(events))
    spec, _ = route(event)
    data = bytearray(_codec(spec.record).encode(event))
    for _ in range(draw(st.integers(1, 3))):
        how = draw(_MUTATIONS)
        header = draw(_PERCENT) < 5  # the header now and then, the body mostly
        pos = draw(st.integers(0, 4) if header else st.integers(5, max(len(data) - 1, 5)))
        if how == "flip" and pos < len(data):
            data[pos] ^= 1 << draw(st.integers(0, 7))
        elif how == "byte" and pos < len(data):
            data[pos] = draw(_ANY_BYTE)
        elif how == "letter" and pos < len(data):  # keeps lengths, and UTF-8 mostly
            data[pos] = draw(_LETTERS)
        elif how == "cut":
            del data[pos:]
        elif how == "add":
            data += draw(st.binary(min_size=1, max_size=16))
        elif how == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=8))
        elif how == "delete":
            del data[pos : pos + draw(st.integers(1, 8))]
        elif how == "varint":  # the varint at pos (a length, a count, a time) made extreme
            end = pos
            while end < len(data) and data[end] > 127 and end - pos < 10:
                end += 1
            data[pos : end + 1] = raw_varint(draw(EXTREME_INTS))
    return spec.name, bytes(data)


@settings(FUZZ, max_examples=700)
@given(mutated_records())
def test_mutated_records_decode_or_are_a_codec_error(case: tuple[str, bytes]) -> None:
    event(_check(*case))


# -- records generated from the schemas, with extreme values ----------------------------------
_IDS = st.sampled_from(["s1", "u1", "a_b-9", "like", "x" * 64, "story_viewed"])
_ODD = st.sampled_from(
    ["🔥", "https://x/y", "image/jpeg", "", " ", "x" * 65, "x y", "\x00", "\ud7ff", "e\u0301"]
)
_OTHER_TEXT = _ODD | st.text(max_size=12)
_ANY_BYTES = st.binary(max_size=12)  # often not UTF-8
_COUNTS = st.integers(0, 3)
_IN_RANGE = {
    "int": st.integers(0, 5000) | st.sampled_from([2**31 - 1, -(2**31), -1, 64]),
    "long": st.integers(0, 5000) | st.sampled_from([2**63 - 1, -(2**63), 2**31, -1]),
    "time": st.integers(MIN_MILLIS, MAX_MILLIS) | st.sampled_from([MIN_MILLIS, MAX_MILLIS, 0]),
}


@cache
def _indexes(count: int) -> st.SearchStrategy[int]:
    return st.integers(0, count - 1)


class _Writer:
    """Writes Avro bytes of a schema without any writer's checks: integers and times from an
    extreme set (inside and past their types' ranges) when `extreme`, and at a rate of
    `hostile` percent a value, a malformed one (an integer past its type, a wrong length,
    bytes that are not UTF-8, a bad index, a wrong block count)."""

    def __init__(self, draw: st.DrawFn, hostile: int, extreme: bool) -> None:
        self.draw = draw
        self.hostile = hostile
        self.extreme = extreme
        self.named: dict[str, Any] = {}

    def _bad(self) -> bool:
        return self.hostile > 0 and self.draw(_PERCENT) < self.hostile

    def _int(self, kind: str) -> bytes:
        extreme = self.extreme or self._bad()
        return raw_varint(self.draw(EXTREME_INTS if extreme else _IN_RANGE[kind]))

    def _sized(self, data: bytes) -> bytes:
        return raw_varint(self.draw(EXTREME_INTS) if self._bad() else len(data)) + data

    def _text(self) -> bytes:
        if self._bad():
            return self.draw(_ANY_BYTES)
        # identifiers mostly, so that a record passes the contract's rules now and then
        return self.draw(_IDS if self.draw(_PERCENT) < 90 else _OTHER_TEXT).encode()

    def _index(self, count: int) -> int:
        return self.draw(EXTREME_INTS if self._bad() else _indexes(count))

    def write(self, schema: Any) -> bytes:
        if isinstance(schema, list):
            branch = self._index(len(schema))
            body = self.write(schema[branch]) if 0 <= branch < len(schema) else b""
            return raw_varint(branch) + body
        if isinstance(schema, str):
            if schema in self.named:
                return self.write(self.named[schema])
            if schema == "null":
                return b""
            if schema == "boolean":
                return bytes([self.draw(_ANY_BYTE) if self._bad() else 1])
            if schema in ("int", "long"):
                return self._int(schema)
            if schema in ("string", "bytes"):
                return self._sized(self._text())
            raise NotImplementedError(schema)
        kind = schema["type"]
        if schema.get("logicalType") == "timestamp-millis":
            return self._int("time")
        if kind == "record":
            self.named[schema["name"]] = self.named[schema["name"].rsplit(".", 1)[-1]] = schema
            return b"".join(self.write(field["type"]) for field in schema["fields"])
        if kind == "enum":
            return raw_varint(self._index(len(schema["symbols"])))
        if kind in ("array", "map"):
            items = [
                (self._sized(self._text()) if kind == "map" else b"")
                + self.write(schema["items" if kind == "array" else "values"])
                for _ in range(self.draw(_COUNTS))
            ]
            if not items:
                return b"\x00"
            count = self.draw(EXTREME_INTS) if self._bad() else len(items)
            body = b"".join(items)
            if self.draw(st.booleans()):  # a negative count is followed by the block's size
                return raw_varint(-count) + raw_varint(len(body)) + body + b"\x00"
            return raw_varint(count) + body + b"\x00"
        return self.write(kind)


@st.composite
def generated_records(draw: st.DrawFn) -> tuple[str, bytes]:
    topic = draw(st.sampled_from(TOPICS))
    schema = current_schemas()[input_topics()[topic].record]
    # (percent of values malformed, integers and times from the extreme set)
    hostile, extreme = draw(
        st.sampled_from([(0, False), (0, True), (0, True), (3, False), (40, False)])
    )
    header = _codec(input_topics()[topic].record).header if hostile < 10 else draw(_headers(topic))
    return topic, header + _Writer(draw, hostile, extreme).write(schema)


@FUZZ
@given(generated_records())
# What it found in the readers before they kept to Avro's ranges (each kept as a case):
# a viewed_at past any datetime sliced into a View (OverflowError when processed) ...
@example(("story-viewed", b"\x00\x00\x00\x00\x0c\x04e1\x00\x04s1\x04u1" + raw_varint(-(2**62))))
@example(
    (
        "story-viewed",
        b"\x00\x00\x00\x00\x0c\na_b-9\x00\x08like\x18story_viewed" + b"\x80" * 9 + b"\x01",
    )
)
# ... and a rendition's height of 2**63 (10 bytes) read as 2**63, where fastavro reads 0
@example(
    (
        "story-posted",
        b"\x00\x00\x00\x00\t\x04s1\x00\x04s1\x04s1\x00\x00\x00\x02\x02\x04s1\x04s1\x00"
        + b"\x80" * 9
        + b"\x02\x04s1\x00\x00\x00\x00\x00\x00",
    )
)
def test_generated_records_with_extreme_values_decode_or_are_a_codec_error(
    case: tuple[str, bytes],
) -> None:
    event(_check(*case))


@pytest.mark.parametrize("kind", sorted(SAMPLES))
def test_the_invariant_holds_on_a_valid_record_of_every_event_type(kind: str) -> None:
    # so its "decodes" side is exercised on every topic, not only refusals
    event = sample(kind)
    spec, _ = route(event)
    data = _codec(spec.record).encode(event)
    decoded, pctx = decode_all(spec, [data], _decoder(spec.name))
    assert len(decoded) == 1 and not pctx.letters
    assert _check(spec.name, data) == "decoded"
