"""`storystream publish`: JSON lines -> validated events -> Avro -> the client's keyed producer.

Validation and encoding run in chunks (one pydantic call per chunk), on worker processes
for large inputs; the producer runs in the main process and keeps the input's order.
"""

from __future__ import annotations

import gc
import marshal
import mmap
import os
import stat
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from functools import partial
from itertools import islice
from typing import IO, Any

from pydantic import ConfigDict, TypeAdapter, ValidationError

from schemas.events import EVENT_ADAPTER, Event, InputEvent, derive_event_id
from schemas.types import DEFAULT_STORY_TTL
from streams.client.encoder import Encoded, Encoder
from streams.client.producer import KeyedProducer
from streams.codecs.avro import CodecError
from streams.publish.flat import FlatLane
from streams.publish.lane import PublishLane
from streams.publish.pool import OrderedPool, forks_directly

CHUNK_LINES = 2000
# A bulk load lingers 100 ms (the shared producer config: 20 ms), so batches are bigger and
# fewer: the broker spent 0.08-0.12 s of CPU per 50k records less on this project's machine.
BULK_PRODUCER: dict[str, Any] = {"linger.ms": 100}
BLOCK_BYTES = 256 * 1024  # about 2,000 lines of events
# Built when first used: the flat lane takes most lines without it. Only publish uses it, in one
# thread of each process (pydantic's deferred builds are not thread-safe: the models themselves
# are built at import, for the workers' threads).
_DEFERRED = ConfigDict(defer_build=True)
_CHUNK_ADAPTER: TypeAdapter[list[InputEvent]] = TypeAdapter(list[InputEvent], config=_DEFERRED)


def default_processes() -> int:
    """Validation and encoding processes when not told: the cores, plus one."""
    return (os.cpu_count() or 1) + 1


Numbered = tuple[int, bytes]


@dataclass(frozen=True)
class InvalidLine:
    """A rejected input line: its number (1-based) and what is wrong, field by field."""

    line: int
    errors: tuple[str, ...]

    def __str__(self) -> str:
        return f"line {self.line}: " + "; ".join(self.errors)


Chunk = tuple[list[Encoded], list["InvalidLine"]]  # a chunk's records, and its invalid lines
# A block's records, its invalid lines numbered from 1 within the block, and its line count:
# the producing process numbers them in the input (a worker counts its own block's lines).
Block = tuple[list[Encoded], list["InvalidLine"], int]


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
            reason = str(error["ctx"].get("error", error["msg"]))
            if reason.startswith("recursion limit exceeded"):
                reason = f"nested too deep ({reason})"
            out.append(f"not valid JSON: {reason}")
            continue
        if error["type"] == "model_attributes_type":
            out.append("a line must be a JSON object")
            continue
        # The first location item of a tagged union is the event type: drop it.
        loc = [str(part) for part in error["loc"]]
        if len(loc) > 1:
            loc = loc[1:]
        elif error["type"] == "value_error":  # the event's own rule: its message names fields
            out.append(error["msg"].removeprefix("Value error, "))
            continue
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


_LANES: dict[tuple[str | None, timedelta], tuple[FlatLane, PublishLane, Encoder]] = {}


def _lanes(registry_url: str | None, story_ttl: timedelta) -> tuple[FlatLane, PublishLane, Encoder]:
    """This process's lanes and model-path encoder (built once per process)."""
    lanes = _LANES.get((registry_url, story_ttl))
    if lanes is None:
        encoder = Encoder(registry_url)
        flat, lane = FlatLane(encoder.registry, story_ttl), PublishLane(encoder.registry, story_ttl)
        lanes = _LANES[(registry_url, story_ttl)] = (flat, lane, encoder)
    return lanes


def encode_chunk(chunk: list[Numbered], story_ttl: timedelta, registry_url: str | None) -> Chunk:
    """Validate and encode a chunk, in order; runs in worker processes (lanes per process)."""
    numbers = [number for number, _ in chunk]
    return _encode_lines(numbers, [raw.strip() for _, raw in chunk], story_ttl, registry_url)


def encode_lines(contents: list[bytes], story_ttl: timedelta, registry_url: str | None) -> Chunk:
    """JSON lines (stripped, none blank) validated and encoded as `publish` does them: their
    records in order, and the invalid ones numbered from 1 in `contents`."""
    return _encode_lines(range(1, len(contents) + 1), contents, story_ttl, registry_url)


def _encode_lines(
    numbers: Sequence[int], contents: list[bytes], story_ttl: timedelta, registry_url: str | None
) -> Chunk:
    """Stripped lines (blank ones skipped) -> their records in order, and the invalid lines.

    The flat lane takes the lines it vouches for, the general lane the other lines it vouches
    for, and every remaining line goes through the models, which accept it or name what is
    wrong with it.
    """
    flat, lane, encoder = _lanes(registry_url, story_ttl)
    encoded = flat.encode_lines(contents)
    if all(encoded):  # records are non-empty tuples (`None in` compares each with None)
        return encoded, []  # type: ignore[return-value]  # no None in it
    rest: list[Numbered] = []
    for i, result in enumerate(encoded):
        if result is None and contents[i]:
            encoded[i] = lane.encode(contents[i])
            if encoded[i] is None:
                rest.append((numbers[i], contents[i]))
    checked = iter(validate_chunk(rest, story_ttl))
    records: list[Encoded] = []
    invalid: list[InvalidLine] = []
    for number, content, result in zip(numbers, contents, encoded, strict=True):
        if result is None:
            if not content:
                continue  # a blank line
            event = next(checked)
            if isinstance(event, InvalidLine):
                invalid.append(event)
                continue
            try:
                result = encoder.encode(event)
            except CodecError as exc:  # a value the models took and Avro cannot hold
                invalid.append(InvalidLine(number, (str(exc),)))
                continue
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
    work = partial(_encode_numbered, story_ttl=story_ttl, registry_url=registry_url)
    return _publish(chunked(lines), work, bootstrap, processes, progress, stop_on_invalid)


def _encode_numbered(
    chunk: list[Numbered], story_ttl: timedelta, registry_url: str | None
) -> Block:
    """`encode_chunk` as a Block: its lines carry their numbers in the input already (0 lines
    to add to the next one's)."""
    records, invalid = encode_chunk(chunk, story_ttl, registry_url)
    return records, invalid, 0


def publish_stream(
    stream: IO[bytes],
    bootstrap: str,
    story_ttl: timedelta = DEFAULT_STORY_TTL,
    registry_url: str | None = None,
    processes: int = 1,
    progress: Progress | None = None,
    block_bytes: int = BLOCK_BYTES,
) -> PublishSummary:
    """`publish_lines` over a byte stream read in blocks of about `block_bytes`: the main
    process, which produces, never handles single lines; the workers split, count, validate
    and encode them."""
    work = partial(encode_block, story_ttl=story_ttl, registry_url=registry_url)
    if registry_url is None:
        # Built once before the fork, not in every worker (~0.1 s of CPU each). A remote
        # registry's HTTP client must not cross a fork: then each worker builds its own.
        _lanes(registry_url, story_ttl)
    if _sliceable(stream) and (processes == 1 or forks_directly()):
        # A worker takes its next slice while its last result waits to be read (a slice
        # always fits the task pipe; a block of bytes might not). Workers started from a fork
        # server do not share the file's descriptor: they are sent its bytes.
        slices = file_blocks(stream.fileno(), block_bytes)
        return _publish(slices, work, bootstrap, processes, progress, False, ahead=2)
    return _publish(blocks(stream, block_bytes), work, bootstrap, processes, progress, False)


def _sliceable(stream: IO[bytes]) -> bool:
    """Whether a stream is a regular file read from its start: its blocks then go to the
    workers as slices they read themselves (the producing process only finds line ends:
    sending the bytes took it ~0.3 s of CPU per 57 MB, counting their lines ~0.07 s); any other
    stream's as bytes."""
    try:
        return stat.S_ISREG(os.fstat(stream.fileno()).st_mode) and stream.tell() == 0
    except (OSError, ValueError):  # no file descriptor (an in-memory stream) or no position
        return False


@dataclass(frozen=True)
class FileSlice:
    """Bytes of an open file, read where the block is encoded: in the process that opened it
    or a forked worker, through its descriptor; in a worker started from a fork server, which
    does not have it, through the opener's /proc entry for it (the same open file)."""

    fd: int
    offset: int
    size: int
    opener: int = field(default_factory=os.getpid)

    def read(self) -> bytes:
        if os.getpid() != self.opener and os.path.exists(f"/proc/{self.opener}/fd/{self.fd}"):
            shared = os.open(f"/proc/{self.opener}/fd/{self.fd}", os.O_RDONLY)
            try:
                return os.pread(shared, self.size, self.offset)
            finally:
                os.close(shared)
        return os.pread(self.fd, self.size, self.offset)


def file_blocks(fd: int, size: int = BLOCK_BYTES) -> Iterator[FileSlice]:
    """A regular file's whole lines in slices of about `size` bytes."""
    if os.fstat(fd).st_size == 0:
        return  # mmap refuses an empty file
    with mmap.mmap(fd, 0, access=mmap.ACCESS_READ) as view:
        start, total = 0, len(view)
        while start < total:
            end = view.rfind(b"\n", start, start + size) + 1
            if end <= start:  # a line longer than a block
                end = view.find(b"\n", start + size) + 1 or total
            yield FileSlice(fd, start, end - start)
            start = end


def blocks(stream: IO[bytes], size: int = BLOCK_BYTES) -> Iterator[bytes]:
    """Whole lines in blocks of about `size` bytes.

    Reads what is available (`read1`), so a pipe's lines are published as they come.
    """
    read = getattr(stream, "read1", stream.read)
    carry = b""
    while data := read(size):
        data = carry + data if carry else data
        cut = data.rfind(b"\n") + 1
        block, carry = data[:cut], data[cut:]
        if block:
            yield block
    if carry:
        yield carry


def encode_block_packed(
    block: bytes | FileSlice, story_ttl: timedelta, registry_url: str | None
) -> bytes:
    """`encode_block` as the bytes a worker sends back (`unpack` reads them)."""
    return _packed(partial(encode_block, story_ttl=story_ttl, registry_url=registry_url), block)


def _packed(work: Callable[[Any], Block], task: Any) -> bytes:
    """`work(task)` in marshal's format: records are tuples of str, bytes and int, and an
    invalid line goes as a tuple. It writes and reads them faster than a pickle, and its one
    copy of a topic's name is read as one string for every record of the block."""
    records, invalid, lines = work(task)
    return marshal.dumps((records, [(bad.line, bad.errors) for bad in invalid], lines), 4)


def unpack(packed: bytes) -> Block:
    """The block of `_packed`."""
    records, invalid, lines = marshal.loads(packed)
    return records, [InvalidLine(line, errors) for line, errors in invalid], lines


def encode_block(block: bytes | FileSlice, story_ttl: timedelta, registry_url: str | None) -> Block:
    """A block of whole lines (from `blocks` or `file_blocks`) encoded: its invalid lines are
    numbered from 1 within the block, and its line count comes with them."""
    data = block.read() if isinstance(block, FileSlice) else block
    lines = data.split(b"\n")
    if not lines[-1]:
        lines.pop()
    contents = [line.strip() for line in lines]
    records, invalid = _encode_lines(range(1, len(lines) + 1), contents, story_ttl, registry_url)
    return records, invalid, len(lines)


def _publish(
    chunks: Iterator[Any],
    work: Callable[[Any], Block],
    bootstrap: str,
    processes: int,
    progress: Progress | None,
    stop_on_invalid: bool,
    ahead: int = 1,
) -> PublishSummary:
    summary = PublishSummary()
    # Every record is a few new objects: with the collector's usual thresholds its full
    # collections, each walking every object of the process, took ~1/3 of the producing
    # process's time. The objects alive now are frozen out of its walks (the workers inherit
    # that) and it runs rarely: records and chunks hold no reference cycles.
    gc.freeze()
    thresholds = gc.get_threshold()
    gc.set_threshold(100_000, 50, 1000)
    pool = OrderedPool(partial(_packed, work), processes) if processes > 1 else None
    # After the fork: its threads don't fork. Only failures are reported (a bulk load).
    publisher = KeyedProducer(bootstrap, reports="failures", **BULK_PRODUCER)
    try:
        results = pool.imap(chunks, ahead) if pool else map(work, chunks)
        before = 0  # lines of the input before this result's
        for result in results:
            encoded: Block = unpack(result) if isinstance(result, bytes) else result
            records, invalid, lines = encoded
            if before:
                invalid = [InvalidLine(before + bad.line, bad.errors) for bad in invalid]
            before += lines
            summary.invalid.extend(invalid)
            if stop_on_invalid and invalid:
                break
            publisher.produce_encoded(records)
            if progress:
                progress.update(publisher.queued)
    finally:
        if pool:
            pool.close()
        remaining = publisher.flush()
        gc.set_threshold(*thresholds)
        gc.unfreeze()
    if progress:
        progress.update(publisher.queued, done=True)
    summary.failed = list(publisher.failed)
    if remaining:
        summary.failed.append(f"{remaining} records still undelivered after the flush timeout")
    summary.published = publisher.queued - len(publisher.failed) - remaining
    return summary
