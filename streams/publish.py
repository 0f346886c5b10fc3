"""`storystream publish`: JSON lines -> validated events -> Avro -> idempotent keyed producer.

Validation and encoding run in chunks (one pydantic call per chunk), on worker processes
for large inputs; the producer runs in the main process and keeps the input's order.
"""

from __future__ import annotations

import multiprocessing
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from functools import partial
from itertools import islice
from typing import IO, Any

from confluent_kafka import KafkaError, Message, Producer
from pydantic import TypeAdapter, ValidationError

from schemas.events import EVENT_ADAPTER, Event, InputEvent, derive_event_id
from schemas.types import DEFAULT_STORY_TTL, millis
from streams.codecs import AvroCodec
from streams.kafka import producer_config
from streams.publish_lane import PublishLane
from streams.registry import make_registry
from streams.topics import route

CHUNK_LINES = 2000
BLOCK_BYTES = 256 * 1024  # about 2,000 lines of events
_CHUNK_ADAPTER: TypeAdapter[list[InputEvent]] = TypeAdapter(list[InputEvent])

Numbered = tuple[int, bytes]
Encoded = tuple[str, bytes, bytes, int]  # topic, key, value, timestamp (ms)


@dataclass(frozen=True)
class InvalidLine:
    """A rejected input line: its number (1-based) and what is wrong, field by field."""

    line: int
    errors: tuple[str, ...]

    def __str__(self) -> str:
        return f"line {self.line}: " + "; ".join(self.errors)


@dataclass
class PublishSummary:
    published: int = 0
    invalid: list[InvalidLine] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        text = f"published {self.published}, invalid {len(self.invalid)}"
        return text + (f", delivery failed {len(self.failed)}" if self.failed else "")


def _describe(exc: ValidationError) -> tuple[str, ...]:
    out = []
    for error in exc.errors(include_url=False):
        if error["type"] == "json_invalid":
            out.append(f"not valid JSON: {error['ctx'].get('error', error['msg'])}")
            continue
        if error["type"] == "model_attributes_type":
            out.append("a line must be a JSON object")
            continue
        # The first location item of a tagged union is the event type: drop it.
        loc = [str(part) for part in error["loc"]]
        if len(loc) > 1:
            loc = loc[1:]
        if error["type"] in ("union_tag_invalid", "union_tag_not_found"):
            loc = ["type"]
        out.append(f"{'.'.join(loc) or 'line'}: {error['msg']}")
    return tuple(out)


def validate_line(
    raw: bytes, line_no: int, story_ttl: timedelta = DEFAULT_STORY_TTL
) -> Event | InvalidLine:
    """One JSON line -> its event, or the reasons it is invalid."""
    content = raw.strip()
    context = {"story_ttl": story_ttl, "event_id": derive_event_id(content)}
    try:
        event: Event = EVENT_ADAPTER.validate_json(content, context=context)
    except ValidationError as exc:
        return InvalidLine(line_no, _describe(exc))
    return event


def _with_event_id(content: bytes) -> bytes:
    """Add the content-derived event_id to a JSON object line that has none (cheap bytes op)."""
    if content[:1] == b"{" and b'"event_id"' not in content and content[1:].lstrip()[:1] == b'"':
        return b'{"event_id":"' + derive_event_id(content).encode() + b'",' + content[1:]
    return content


def validate_chunk(chunk: list[Numbered], story_ttl: timedelta) -> list[Event | InvalidLine]:
    """Validate many lines in one pydantic call; on any error, line by line for exact reasons."""
    contents = [_with_event_id(raw.strip()) for _, raw in chunk]
    try:
        events = _CHUNK_ADAPTER.validate_json(
            b"[" + b",".join(contents) + b"]", context={"story_ttl": story_ttl}
        )
        return list[Event | InvalidLine](events)
    except ValidationError:
        return [validate_line(raw, line_no, story_ttl) for line_no, raw in chunk]


class Encoder:
    """Encodes events with the registry's ids, keyed and routed as the topic catalog says."""

    def __init__(self, registry_url: str | None) -> None:
        self.registry = make_registry(registry_url)
        self._codecs: dict[str, AvroCodec] = {}

    def encode(self, event: Event) -> Encoded:
        spec, key = route(event)
        codec = self._codecs.get(spec.name)
        if codec is None:
            codec = self._codecs[spec.name] = AvroCodec(spec.record, self.registry, spec.subject)
        return spec.name, key.encode(), codec.encode(event), millis(event.occurred_at)


_LANES: dict[tuple[str | None, timedelta], tuple[PublishLane, Encoder]] = {}


def encode_chunk(
    chunk: list[Numbered], story_ttl: timedelta, registry_url: str | None
) -> tuple[list[Encoded], list[InvalidLine]]:
    """Validate and encode a chunk, in order; runs in worker processes (one lane per process).

    Lines the fast lane vouches for are encoded by it; every other line goes through the
    models, which accept it or name what is wrong with it.
    """
    lane_and_encoder = _LANES.get((registry_url, story_ttl))
    if lane_and_encoder is None:
        encoder = Encoder(registry_url)
        lane_and_encoder = PublishLane(encoder.registry, story_ttl), encoder
        _LANES[(registry_url, story_ttl)] = lane_and_encoder
    lane, encoder = lane_and_encoder
    encoded = [lane.encode(raw.strip()) for _, raw in chunk]
    if None not in encoded:
        return encoded, []  # type: ignore[return-value]  # no None in it
    invalid: list[InvalidLine] = []
    rest = [line for line, result in zip(chunk, encoded, strict=True) if result is None]
    checked = iter(validate_chunk(rest, story_ttl))
    records: list[Encoded] = []
    for result in encoded:
        if result is None:
            event = next(checked)
            if isinstance(event, InvalidLine):
                invalid.append(event)
                continue
            result = encoder.encode(event)
        records.append(result)
    return records, invalid


def numbered_lines(stream: IO[bytes]) -> Iterator[Numbered]:
    """Non-blank lines with their 1-based line numbers."""
    for number, raw in enumerate(stream, start=1):
        if raw.strip():
            yield number, raw


def chunked(lines: Iterable[Numbered], size: int = CHUNK_LINES) -> Iterator[list[Numbered]]:
    iterator = iter(lines)
    while chunk := list(islice(iterator, size)):
        yield chunk


class Publisher:
    """An idempotent producer of pre-encoded records that accounts for every delivery."""

    def __init__(self, bootstrap: str, **producer_overrides: Any) -> None:
        self._producer = Producer(producer_config(bootstrap, **producer_overrides))
        self.queued = 0
        self.failed: list[str] = []

    def _on_delivery(self, err: KafkaError | None, msg: Message) -> None:
        if err is not None:
            self.failed.append(f"{msg.topic()} key={msg.key()!r}: {err.str()}")

    def produce(
        self, topic: str, key: bytes | None, value: bytes | None, timestamp: int = 0
    ) -> None:
        """Queue one record; `flush()` confirms delivery."""
        self._queue(topic, key, value, timestamp)
        self.queued += 1

    def produce_all(self, records: list[Encoded]) -> None:
        """Queue many records (the hot loop of `publish`: no per-record method call)."""
        produce, on_delivery = self._producer.produce, self._on_delivery
        for topic, key, value, timestamp in records:
            try:
                produce(topic, value, key, timestamp=timestamp, on_delivery=on_delivery)
            except BufferError:
                self._queue(topic, key, value, timestamp)
        self.queued += len(records)
        self._producer.poll(0)

    def _queue(self, topic: str, key: bytes | None, value: bytes | None, timestamp: int) -> None:
        while True:
            try:
                self._producer.produce(
                    topic, value, key, timestamp=timestamp, on_delivery=self._on_delivery
                )
                return
            except BufferError:  # local queue full: serve delivery reports, then retry
                self._producer.poll(0.05)

    def flush(self, timeout: float = 300.0) -> int:
        """Wait for every queued record's delivery report; returns how many are still queued."""
        remaining: int = self._producer.flush(timeout)
        return remaining


class Progress:
    """A one-line progress display on stderr, only when stderr is a terminal."""

    def __init__(self, enabled: bool) -> None:
        self._enabled = enabled
        self._last = 0.0
        self._start = time.monotonic()

    def update(self, count: int, done: bool = False) -> None:
        now = time.monotonic()
        if self._enabled and (done or now - self._last > 0.25):
            rate = count / max(now - self._start, 1e-9)
            sys.stderr.write(f"\r{count:,} events  {rate:,.0f}/s" + ("\n" if done else ""))
            sys.stderr.flush()
            self._last = now


def publish_lines(
    lines: Iterable[Numbered],
    bootstrap: str,
    story_ttl: timedelta = DEFAULT_STORY_TTL,
    registry_url: str | None = None,
    processes: int = 1,
    progress: Progress | None = None,
    stop_on_invalid: bool = False,
) -> PublishSummary:
    """Validate, encode and publish every line in order; invalid lines are never published.

    With `stop_on_invalid`, nothing after the first chunk holding an invalid line is published.
    """
    work = partial(encode_chunk, story_ttl=story_ttl, registry_url=registry_url)
    return _publish(chunked(lines), work, bootstrap, processes, progress, stop_on_invalid)


def publish_stream(
    stream: IO[bytes],
    bootstrap: str,
    story_ttl: timedelta = DEFAULT_STORY_TTL,
    registry_url: str | None = None,
    processes: int = 1,
    progress: Progress | None = None,
) -> PublishSummary:
    """`publish_lines` over a byte stream read in blocks: the main process, which produces,
    never handles single lines; the workers split, number, validate and encode them."""
    work = partial(encode_block, story_ttl=story_ttl, registry_url=registry_url)
    return _publish(blocks(stream), work, bootstrap, processes, progress, False)


def blocks(stream: IO[bytes], size: int = BLOCK_BYTES) -> Iterator[tuple[int, bytes]]:
    """Whole lines in blocks of about `size` bytes, each with the number of its first line.

    Reads what is available (`read1`), so a pipe's lines are published as they come.
    """
    read = getattr(stream, "read1", stream.read)
    first, carry = 1, b""
    while data := read(size):
        data = carry + data if carry else data
        cut = data.rfind(b"\n") + 1
        block, carry = data[:cut], data[cut:]
        if block:
            yield first, block
            first += block.count(b"\n")
    if carry:
        yield first, carry


def encode_block(
    block: tuple[int, bytes], story_ttl: timedelta, registry_url: str | None
) -> tuple[list[Encoded], list[InvalidLine]]:
    """`encode_chunk` of a block of lines from `blocks`."""
    first, data = block
    chunk = [(first + i, raw) for i, raw in enumerate(data.split(b"\n")) if raw.strip()]
    return encode_chunk(chunk, story_ttl, registry_url)


def _publish(
    chunks: Iterator[Any],
    work: Callable[[Any], tuple[list[Encoded], list[InvalidLine]]],
    bootstrap: str,
    processes: int,
    progress: Progress | None,
    stop_on_invalid: bool,
) -> PublishSummary:
    summary = PublishSummary()
    pool = multiprocessing.get_context("fork").Pool(processes) if processes > 1 else None
    publisher = Publisher(bootstrap)  # created after the fork: librdkafka threads don't fork
    try:
        results = pool.imap(work, chunks, chunksize=1) if pool else map(work, chunks)
        for records, invalid in results:
            summary.invalid.extend(invalid)
            if stop_on_invalid and invalid:
                break
            publisher.produce_all(records)
            if progress:
                progress.update(publisher.queued)
    finally:
        if pool:
            pool.terminate()
        remaining = publisher.flush()
    if progress:
        progress.update(publisher.queued, done=True)
    summary.failed = list(publisher.failed)
    if remaining:
        summary.failed.append(f"{remaining} records still undelivered after the flush timeout")
    summary.published = publisher.queued - len(publisher.failed) - remaining
    return summary
