"""Hostile publish lines (deep nesting, integers past Avro's ranges, times past year 9999):
every validation path reports them by line number and field, and publishes the rest."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from schemas.events import Event
from streams.publish.flat import FlatLane
from streams.publish.lane import PublishLane
from streams.publish.pool import OrderedPool
from streams.publish.publisher import (
    Block,
    Encoder,
    InvalidLine,
    _packed,
    blocks,
    encode_block,
    encode_chunk,
    file_blocks,
    unpack,
    validate_line,
)

TTL = timedelta(hours=24)
ENCODER = Encoder(None)
LANE = PublishLane(ENCODER.registry, TTL)
FLAT = FlatLane(ENCODER.registry, TTL)
Encoded = tuple[str, bytes, bytes, int]

VIEW = {"type": "story_viewed", "story_id": "s1", "viewer_id": "u1"}
AT = "2026-11-22T10:00:00Z"
POST = {"type": "story_posted", "story_id": "p1", "author_id": "a1", "created_at": AT}
UPLOAD = {
    "type": "media_uploaded",
    "media_id": "m1",
    "author_id": "a1",
    "object_key": "uploads/m1",
    "content_type": "image/jpeg",
    "at": AT,
}
RENDITION = {
    "name": "720",
    "url": "https://cdn.example/x.jpg",
    "width": 720,
    "height": 1280,
    "content_type": "image/jpeg",
}
TRANSCODED = {"type": "media_transcoded", "media_id": "m1", "renditions": [RENDITION], "at": AT}


def _deep(depth: int, opener: str = "[", closer: str = "]", leaf: str = "") -> str:
    return opener * depth + leaf + closer * depth


def _line(event: dict[str, Any], raw_tail: str = "") -> str:
    """The event as JSON, with raw JSON text `, "key": value` appended inside the object."""
    text = json.dumps(event)
    return text[:-1] + raw_tail + "}" if raw_tail else text


# (the line, the field its error names, a word of the reason)
DEEP = [
    # The case of the report: ~6 KB nested 1,000 deep (msgspec raised RecursionError on it).
    (_deep(1000, '{"a":', "}", "1"), "", "nested too deep"),
    (_line(VIEW, ', "x": ' + _deep(1000, '{"a":', "}", "1")), "", "nested too deep"),
    (_line(VIEW, ', "x": ' + _deep(1000)), "", "nested too deep"),
    (_line(POST, ', "media": ' + _deep(300)), "", "nested too deep"),
    (_deep(100_000), "", "nested too deep"),
    ('{"type": "story_viewed", "story_id": ' + _deep(5000, '{"a":', "}", "1") + "}", "", "deep"),
]
OUT_OF_RANGE = [
    (_line({**POST, "media": [{**RENDITION, "width": 2**31}]}), "media.0.width", "2147483647"),
    (_line({**POST, "media": [{**RENDITION, "height": 2**70}]}), "media.0.height", "2147483647"),
    (
        _line({**TRANSCODED, "renditions": [{**RENDITION, "width": 2**31}]}),
        "renditions.0.width",
        "less",
    ),
    (_line({**UPLOAD, "size_bytes": 2**63}), "size_bytes", "9223372036854775807"),
    (_line({**UPLOAD, "size_bytes": 2**64}), "size_bytes", "less"),
    (_line({**UPLOAD, "size_bytes": 2**70}), "size_bytes", "less"),
    (_line({**TRANSCODED, "duration_ms": 2**63}), "duration_ms", "less"),
    (_line({**TRANSCODED, "duration_ms": 10**30}), "duration_ms", "less"),
    # created_at + the TTL is past 9999-12-31: no Python datetime, and no time a reader takes
    (_line({**POST, "created_at": "9999-12-31T23:00:00Z"}), "expires_at", "9999"),
]
VALID = [
    _line({**VIEW, "viewed_at": AT}),
    _line({**POST, "media": [{**RENDITION, "width": 2**31 - 1}]}),
    _line({**UPLOAD, "size_bytes": 2**63 - 1}),
    _line({**TRANSCODED, "duration_ms": 2**63 - 1}),
    _line({**POST, "story_id": "p2", "created_at": "9999-12-30T23:00:00Z"}),
    _line({**VIEW, "viewer_id": "u2", "viewed_at": "9999-12-31T23:59:59.999999Z"}),
    _line({**VIEW, "viewer_id": "u3", "viewed_at": "0001-01-01T00:00:00Z"}),
]
HOSTILE = DEEP + OUT_OF_RANGE


def _mixed() -> tuple[list[str], dict[int, tuple[str, str]], list[int]]:
    """Valid and hostile lines interleaved: the lines, the hostile ones' expected errors by line
    number, and the valid ones' line numbers."""
    lines: list[str] = []
    bad: dict[int, tuple[str, str]] = {}
    good: list[int] = []
    for i, (line, field, reason) in enumerate(HOSTILE):
        valid = VALID[i % len(VALID)]
        lines.append(valid)
        good.append(len(lines))
        lines.append(line)
        bad[len(lines)] = (field, reason)
    lines.append(VALID[0].replace("u1", "last"))
    good.append(len(lines))
    return lines, bad, good


def _model_record(line: str) -> Encoded:
    event = validate_line(line.encode(), 1, TTL)
    assert isinstance(event, Event), event
    return ENCODER.encode(event)


def _check(records: list[Encoded], invalid: list[InvalidLine], lines: list[str]) -> None:
    _, bad, good = _mixed()
    assert records == [_model_record(lines[number - 1]) for number in good]
    assert [line.line for line in invalid] == sorted(bad)
    for line in invalid:
        field, reason = bad[line.line]
        text = str(line)
        assert text.startswith(f"line {line.line}: {field}"), text
        assert reason in text, text


def _by_chunk(lines: list[str], _: Path) -> Block:
    numbered = [(number, line.encode()) for number, line in enumerate(lines, start=1)]
    records, invalid = encode_chunk(numbered, TTL, None)
    return records, invalid, len(lines)


def _text(lines: list[str]) -> bytes:
    return ("\n".join(lines) + "\n").encode()


def _by_stdin_blocks(lines: list[str], _: Path) -> Block:
    """As `publish -` reads a pipe: blocks of whole lines, numbered within each block."""
    stream = io.BufferedReader(io.BytesIO(_text(lines)))
    return _joined([encode_block(block, TTL, None) for block in blocks(stream, 2000)])


def _by_pool(lines: list[str], tmp_path: Path) -> Block:
    """As `publish FILE` runs with worker processes: file slices encoded in forked workers."""
    path = tmp_path / "hostile.jsonl"
    path.write_bytes(_text(lines))
    with path.open("rb") as stream:
        work = partial(_packed, partial(encode_block, story_ttl=TTL, registry_url=None))
        with OrderedPool(work, 2) as pool:
            results = list(pool.imap(file_blocks(stream.fileno(), 2000), 2))
    return _joined([unpack(result) for result in results])


def _joined(results: list[Block]) -> Block:
    """Blocks' results with their invalid lines numbered in the whole input, as publish does."""
    records: list[Encoded] = []
    invalid: list[InvalidLine] = []
    before = 0
    for block_records, block_invalid, count in results:
        records += block_records
        invalid += [InvalidLine(before + bad.line, bad.errors) for bad in block_invalid]
        before += count
    return records, invalid, before


@pytest.mark.parametrize("encode", [_by_chunk, _by_stdin_blocks, _by_pool])
def test_hostile_lines_are_reported_by_number_and_the_others_published(
    encode: Callable[[list[str], Path], Block], tmp_path: Path
) -> None:
    lines, _, _ = _mixed()
    records, invalid, count = encode(lines, tmp_path)
    assert count == len(lines)
    _check(records, invalid, lines)


@pytest.mark.parametrize(("line", "field", "reason"), HOSTILE)
def test_no_lane_takes_a_hostile_line_and_none_raises(line: str, field: str, reason: str) -> None:
    raw = line.encode()
    assert LANE.encode(raw) is None
    assert FLAT.encode_lines([raw]) == [None]
    assert FLAT.encode_lines([raw, VALID[0].encode()]) == [None, _model_record(VALID[0])]
    invalid = validate_line(raw, 7, TTL)
    assert isinstance(invalid, InvalidLine)
    assert str(invalid).startswith(f"line 7: {field}") and reason in str(invalid)


@pytest.mark.parametrize("line", VALID)
def test_the_extremes_of_the_ranges_are_published_alike_on_every_lane(line: str) -> None:
    raw = line.encode()
    expected = _model_record(line)
    assert LANE.encode(raw) == expected
    (flat,) = FLAT.encode_lines([raw])
    assert flat is None or flat == expected
