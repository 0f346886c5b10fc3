"""The publish fast lane accepts only what the models accept, and writes the same bytes."""

from __future__ import annotations

import io
import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ConfigDict, StringConstraints

from schemas.events import EVENT_TYPES, Event
from streams.publish.flat import FlatLane
from streams.publish.lane import PublishLane, Unsupported, _Rules, _Times
from streams.publish.publisher import (
    Encoder,
    InvalidLine,
    _packed,
    blocks,
    encode_block,
    encode_block_packed,
    encode_chunk,
    file_blocks,
    unpack,
    validate_line,
)
from tests.schemas.strategies import events

TTL = timedelta(hours=24)
ENCODER = Encoder(None)
LANE = PublishLane(ENCODER.registry, TTL)
FLAT = FlatLane(ENCODER.registry, TTL)

_TRICKY = st.sampled_from(
    [
        "",
        "abc\n",
        "a" * 65,
        "has space",
        "2026-11-22T10:00:00+01:00",
        "2026-11-22T10:00:00",
        "2026-11-22 10:00:00Z",
        "2026-11-22t10:00:00z",
        "2026-11-22T10:00:00.1234567Z",
        "2026-02-30T10:00:00Z",
        "2026-11-22T24:00:00Z",
        "2026-11-22T10:00:00.5Z",
        "2026-11-22T10:00:00-00:00",
        1795341600,
        1795341600.5,
        True,
        "like ",
        "🔥x",
        "followers",
        "video",
    ]
)
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=5,
)


@st.composite
def lines(draw: st.DrawFn) -> bytes:
    """Valid event lines, and the same with one thing broken or unusual."""
    event = draw(events)
    how = draw(st.sampled_from(["as is", "drop", "add", "replace", "tricky"]))
    field = draw(st.sampled_from(sorted(event)))
    if how == "drop":
        del event[field]
    elif how == "add":
        event[draw(st.text(max_size=10))] = draw(_JSON)
    elif how == "replace":
        event[field] = draw(_JSON)
    elif how == "tricky":
        event[field] = draw(_TRICKY)
    return json.dumps(event, ensure_ascii=draw(st.booleans())).encode()


def _model_path(line: bytes) -> tuple[str, bytes, bytes, int] | None:
    event = validate_line(line, 1, TTL)
    return ENCODER.encode(event) if isinstance(event, Event) else None


def test_the_lane_takes_every_event_type_of_the_contract() -> None:
    tags = {tag for model in EVENT_TYPES for tag in model.model_fields["type"].annotation.__args__}
    assert LANE.unsupported == {}
    assert LANE.event_types == tags


@settings(max_examples=800, deadline=None)
@given(lines())
def test_the_lanes_agree_with_the_models(line: bytes) -> None:
    fast = LANE.encode(line)
    (flat,) = FLAT.encode_lines([line])
    if fast is not None or flat is not None:
        expected = _model_path(line)
        assert fast is None or fast == expected
        assert flat is None or flat == expected


@settings(max_examples=300, deadline=None)
@given(events)
def test_the_lane_vouches_for_every_valid_line_in_the_usual_form(event: dict[str, Any]) -> None:
    line = json.dumps(event).encode()
    assert LANE.encode(line) is not None
    assert LANE.encode(line) == _model_path(line)


@settings(max_examples=300, deadline=None)
@given(events)
def test_the_flat_lane_vouches_for_every_valid_line_without_lists(event: dict[str, Any]) -> None:
    line = json.dumps(event).encode()
    (flat,) = FLAT.encode_lines([line])
    nested = any(isinstance(value, list) for value in event.values())
    assert (flat is None) == nested
    assert flat is None or flat == _model_path(line)


def test_the_flat_lane_writes_times_of_every_size_as_the_models_do() -> None:
    view = {"type": "story_viewed", "story_id": "s1", "viewer_id": "u1"}
    times = [
        "1969-12-31T23:59:59.999Z",  # negative
        "1970-01-01T00:00:00Z",
        "1970-07-28T20:49:49.184+00:00",  # 2**34 ms: the first six-byte varint
        "2039-09-07T15:47:35.551Z",  # 2**41 ms - 1: the last one
        "2039-09-07T15:47:35.552Z",
        "2026-11-22T10:00:08.191Z",  # the high bytes change between these two
        "2026-11-22T10:00:08.192Z",
        "9999-12-31T23:59:59.999999Z",
    ]
    lines = [json.dumps({**view, "viewed_at": t}).encode() for t in times]
    assert FLAT.encode_lines(lines) == [_model_path(line) for line in lines]


@settings(max_examples=300, deadline=None)
@given(
    st.datetimes(min_value=datetime(1969, 12, 1), max_value=datetime(2045, 1, 1)),
    st.sampled_from(["Z", "+00:00"]),
    st.sampled_from([0, 3, 6]),
)
def test_the_flat_lane_writes_any_millisecond_as_the_models_do(
    at: datetime, zone: str, digits: int
) -> None:
    # Times near the carries of the per-second varint parts, and across the six-byte range.
    text = at.isoformat(timespec={0: "seconds", 3: "milliseconds", 6: "microseconds"}[digits])
    view = {"type": "story_viewed", "story_id": "s1", "viewer_id": "u1", "viewed_at": text + zone}
    line = json.dumps(view).encode()
    (flat,) = FLAT.encode_lines([line])
    assert flat is not None and flat == _model_path(line)


def test_a_block_mixes_the_lanes_in_order_and_its_packed_bytes_hold_the_same() -> None:
    view = {"type": "story_viewed", "story_id": "s1", "viewer_id": "u1"}
    lines = [
        json.dumps({**view, "viewed_at": "2026-11-22T10:00:00Z"}),
        "",
        json.dumps({**view, "viewed_at": "2026-11-22T10:00:01Z", "event_id": "e-1"}),
        json.dumps({**view, "viewed_at": "yesterday"}),
        json.dumps({**view, "viewed_at": "2026-11-22T10:00:02Z", "extra": 1}),
        json.dumps(
            {
                "type": "story_posted",
                "story_id": "p",
                "author_id": "a",
                "created_at": "2026-11-22T10:00:03Z",
                "mentions": ["u1"],
            }
        ),
        # A form only the models take (a comma before the fraction), with a CR line end.
        json.dumps({**view, "viewer_id": "u2", "viewed_at": "2026-11-22T10:00:04,5Z"}) + "\r",
        json.dumps({**view, "viewed_at": 1795341604}),  # a number is not an ISO-8601 time
    ]
    block = ("\n".join(lines) + "\n").encode()
    records, invalid, count = encode_block(block, TTL, None)
    assert count == len(lines)
    expected = [_model_path(line.strip().encode()) for line in lines if line]
    assert records == [r for r in expected if r is not None]
    assert len(records) == 4 and records[1][2][5:9] == b"\x06e-1"  # the given event_id
    assert [(bad.line, bad.errors[0].split(":")[0]) for bad in invalid] == [
        (4, "viewed_at"),  # numbered within the block: publish adds the lines before it
        (5, "extra"),
        (8, "viewed_at"),
    ]
    assert unpack(encode_block_packed(block, TTL, None)) == (records, invalid, count)


@given(
    st.lists(st.tuples(st.text(), st.binary(), st.binary(), st.integers())),
    st.lists(st.builds(InvalidLine, st.integers(1), st.lists(st.text()).map(tuple))),
    st.integers(0, 1 << 40),
)
def test_a_workers_packed_result_unpacks_to_the_same_block(
    records: list[tuple[str, bytes, bytes, int]], invalid: list[InvalidLine], lines: int
) -> None:
    assert unpack(_packed(lambda _: (records, invalid, lines), None)) == (records, invalid, lines)


def test_a_chunk_mixes_both_paths_in_order_with_line_numbers() -> None:
    view = {"type": "story_viewed", "story_id": "s1", "viewer_id": "u1"}
    chunk = [
        (1, json.dumps({**view, "viewed_at": "2026-11-22T10:00:00Z"}).encode()),
        (2, json.dumps({**view, "viewed_at": "2026-11-22T10:00:00,0Z"}).encode()),  # models only
        (4, json.dumps({**view, "viewed_at": "yesterday"}).encode()),
        (5, json.dumps({**view, "viewer_id": "u2", "viewed_at": "2026-11-22T10:00:01Z"}).encode()),
    ]
    assert LANE.encode(chunk[1][1]) is None
    records, invalid = encode_chunk(chunk, TTL, None)
    assert [r[3] for r in records] == [1795341600000, 1795341600000, 1795341601000]
    assert [r[1] for r in records] == [b"s1", b"s1", b"s1"]
    assert [bad.line for bad in invalid] == [4]
    assert "viewed_at" in str(invalid[0])


def test_blocks_are_the_input_cut_at_line_ends() -> None:
    text = b"".join(f'{{"n": {i}}}\n'.encode() if i % 3 else b"\n" for i in range(1, 200)) + b"last"
    cut = list(blocks(io.BufferedReader(io.BytesIO(text)), size=37))
    assert b"".join(cut) == text
    assert len(cut) > 10 and all(block.endswith(b"\n") for block in cut[:-1])
    assert cut[-1].endswith(b"last")


def test_file_blocks_are_the_file_cut_at_line_ends(tmp_path: Path) -> None:
    lines = [f'{{"n": {i}}}' if i % 3 else "" for i in range(1, 200)] + ["x" * 100, "last"]
    path = tmp_path / "lines.jsonl"
    path.write_bytes("\n".join(lines).encode())
    with path.open("rb") as stream:
        sliced = list(file_blocks(stream.fileno(), size=37))
        assert b"".join(part.read() for part in sliced) == path.read_bytes()
        assert len(sliced) > 10 and all(part.read().endswith(b"\n") for part in sliced[:-1])
        assert encode_block(sliced[0], TTL, None) == encode_block(sliced[0].read(), TTL, None)
    (tmp_path / "empty").write_bytes(b"")
    with (tmp_path / "empty").open("rb") as stream:
        assert list(file_blocks(stream.fileno())) == []


def test_a_model_the_lane_cannot_read_takes_the_model_path() -> None:
    class Odd(BaseModel):
        model_config = ConfigDict(extra="forbid")
        name: Annotated[str, StringConstraints(pattern=r"(?<x>a)")]  # Rust syntax, not Python's

    class Loose(BaseModel):
        name: str

    for model in (Odd, Loose):
        try:
            _Rules(_Times()).model(model)
        except Unsupported:
            continue
        raise AssertionError(f"{model.__name__} compiled")
