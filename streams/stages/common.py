"""What every handler needs: decoding with dead letters, internal messages, grouping by key."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import msgspec

from processors.context import Ctx
from processors.messages import (
    AwaitMedia,
    CelebrityFollowChanged,
    MediaObjectsChanged,
    MediaReady,
    StoryClosed,
    StoryLifecycle,
    StoryOpened,
    StorySeen,
    TrayStoryAdded,
    TrayStoryRemoved,
)
from streams.codecs.avro import AvroCodec, CodecError
from streams.codecs.registry import SchemaRegistry
from streams.runtime.context import StageContext
from streams.runtime.records import InRecord
from streams.stages.state import model_hook
from streams.topics import EVENT_ROUTES, TopicSpec

InternalMessage = (
    AwaitMedia
    | MediaReady
    | StoryOpened
    | StoryClosed
    | StoryLifecycle
    | StorySeen
    | TrayStoryAdded
    | TrayStoryRemoved
    | CelebrityFollowChanged
    | MediaObjectsChanged
)
_MESSAGES = msgspec.json.Decoder(InternalMessage, dec_hook=model_hook)
# A batch record parsed and validated in one call: this runs once per new viewer of a story
_MESSAGE_BATCH = msgspec.json.Decoder(list[tuple[str, InternalMessage]], dec_hook=model_hook)


def decode_message(data: bytes | None) -> Any:
    if data is None:
        raise CodecError("internal message without a value")
    try:
        return _MESSAGES.decode(data)
    except msgspec.DecodeError as exc:  # ValidationError too
        raise CodecError(f"invalid internal message: {exc}") from exc


def ctx_of(pctx: StageContext, record: InRecord | None = None) -> Ctx:
    """The processor context of a record (or of a timer tick)."""
    if record is None:
        return Ctx(now=pctx.now, policy=pctx.policy, partition=pctx.partition)
    return Ctx(
        now=pctx.now,
        policy=pctx.policy,
        topic=record.topic,
        partition=record.partition,
        offset=record.offset,
    )


class Decoder:
    """Decodes one topic's records to models; undecodable ones become dead letters.

    With `fast` = (reader, check), records are read by the function `reader(codec)` makes
    (raising CodecError for a record it cannot read) and checked by `check` (returning the
    reason a value is invalid, or None), without pydantic's validation: for the hot paths,
    where the Avro schema already fixes the types and only the contract's value rules remain
    to check.
    """

    def __init__(
        self,
        spec: TopicSpec,
        registry: SchemaRegistry,
        fast: tuple[
            Callable[[AvroCodec], Callable[[bytes | None], Any]], Callable[[Any], str | None]
        ]
        | None = None,
    ) -> None:
        self.spec = spec
        self._codec = AvroCodec(spec.record, registry, spec.subject)
        assert fast is None or spec.story_keyed, "a fast path reads story-keyed records only"
        self._fast = fast
        self._fast_decode: Callable[[bytes | None], Any] | None = None  # built on first use

    def models(
        self, pctx: StageContext, records: Sequence[InRecord]
    ) -> Iterator[tuple[InRecord, Any]]:
        for record in records:
            try:
                event = self._codec.decode(record.value)
            except CodecError as exc:
                pctx.dead_letter(record, str(exc))
                continue
            _, field = EVENT_ROUTES[type(event)]  # type: ignore[index]  # an input topic's event
            reason = key_mismatch(record, field, event)
            if reason is None:
                yield record, event
            else:
                pctx.dead_letter(record, reason)

    def values(self, pctx: StageContext, records: Sequence[InRecord]) -> list[Any]:
        """The valid records' values read by the fast path (see the class); the others are
        dead-lettered with the reason."""
        assert self._fast is not None, "values() needs a Decoder built with fast=(reader, check)"
        reader, check = self._fast
        decode = self._fast_decode
        if decode is None:
            decode = self._fast_decode = reader(self._codec)
        out: list[Any] = []
        append = out.append
        for record in records:
            try:
                value = decode(record.value)
            except CodecError as exc:
                pctx.dead_letter(record, str(exc))
                continue
            reason = check(value)
            if reason is not None:
                pctx.dead_letter(record, f"{self.spec.record}: invalid record: {reason}")
                continue
            if record.key == value.story_id.encode():  # fast paths: story-keyed (__init__)
                append(value)
            else:
                pctx.dead_letter(record, key_mismatch(record, "story_id", value) or "")
        return out


def key_mismatch(record: InRecord, field: str, value: Any) -> str | None:
    """Why `record`'s key is not its value's key field, or None: keyed by something else, its
    state would be kept on the partition of another story (or user, or media)."""
    own = getattr(value, field)
    if record.key == own.encode():
        return None
    key = record.key.decode(errors="replace") if record.key is not None else None
    return f"key {key!r} is not the record's {field} {own!r}"


def internal_messages(
    pctx: StageContext, records: Sequence[InRecord]
) -> Iterator[tuple[InRecord, Any]]:
    """The messages of a stage's records; a record holding a batch of forwards (a JSON array,
    see `Engine.route_stage`) gives each of its messages, as a record keyed like the message.
    A batch is taken whole or, if any message in it is invalid, dead-lettered whole."""
    for record in records:
        try:
            if record.value is not None and record.value[:1] == b"[":
                messages = _unbatched(record)
                # "processed" counts messages: the driver counted this record as one
                pctx.metrics.processed.inc(record.topic, len(messages) - 1)
                yield from messages
            else:
                yield record, decode_message(record.value)
        except CodecError as exc:
            pctx.dead_letter(record, str(exc))


def _unbatched(record: InRecord, _new: Any = tuple.__new__) -> list[tuple[InRecord, Any]]:
    try:
        items = _MESSAGE_BATCH.decode(record.value)  # type: ignore[arg-type]  # not None
    except msgspec.DecodeError as exc:  # ValidationError too
        raise CodecError(f"invalid batch of internal messages: {exc}") from exc
    topic, partition, offset, _, _, timestamp = record
    # each message as a record of its own, built as `in_record` builds one (not by `_replace`:
    # cheaper, once per message)
    return [
        (_new(InRecord, (topic, partition, offset, key.encode(), None, timestamp)), message)
        for key, message in items
    ]


def by_key(decoded: Iterable[tuple[InRecord, Any]]) -> dict[str, list[tuple[InRecord, Any]]]:
    """Decoded records grouped by their record's key, in order (keys in first-seen order)."""
    grouped: dict[str, list[tuple[InRecord, Any]]] = defaultdict(list)
    for record, item in decoded:
        grouped[record.key.decode() if record.key else ""].append((record, item))
    return grouped
