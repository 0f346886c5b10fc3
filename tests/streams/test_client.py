"""The producing client on the real broker: typed calls land keyed, encoded and stamped as
`publish` writes them; delivery reports settle futures; a full queue blocks or raises."""

from __future__ import annotations

import asyncio
import socket
import time
import uuid
from datetime import UTC, datetime

import pytest
from confluent_kafka import Consumer, TopicPartition
from pydantic import ValidationError

from schemas.types import millis
from streams.client.aio import AsyncEventClient
from streams.client.producer import DeliveryError, KeyedProducer, QueueFull
from streams.client.sync import EventClient
from streams.codecs.avro import AvroCodec
from streams.codecs.registry import make_registry
from streams.kafka.clients import reader_config
from streams.kafka.partitioning import partition_for
from streams.settings import Settings
from streams.topics import STORY_REACTED, STORY_VIEWED

pytestmark = pytest.mark.integration


def _dead_broker() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{sock.getsockname()[1]}"  # closed again: nobody listens


def _read(bootstrap: str, topic: str, partition: int, offset: int) -> tuple[bytes, bytes, int]:
    consumer = Consumer(reader_config(bootstrap))
    consumer.assign([TopicPartition(topic, partition, offset)])
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is not None and msg.error() is None:
                return msg.key(), msg.value(), msg.timestamp()[1]
        raise AssertionError(f"nothing at {topic}/{partition}@{offset}")
    finally:
        consumer.close()


def test_a_typed_call_lands_keyed_encoded_and_stamped_with_event_time(settings: Settings) -> None:
    story = f"cl-{uuid.uuid4().hex[:8]}"
    viewed_at = datetime(2026, 11, 22, 10, 0, 0, 123000, tzinfo=UTC)
    with EventClient(settings.bootstrap()) as client:
        where = client.story_viewed(story_id=story, viewer_id="bob", viewed_at=viewed_at).result(20)
    assert where.topic == STORY_VIEWED.name
    assert where.partition == partition_for(story, settings.partitions)  # murmur2, as publish
    key, value, timestamp = _read(settings.bootstrap(), where.topic, where.partition, where.offset)
    assert key == story.encode() and timestamp == millis(viewed_at)
    event = AvroCodec(STORY_VIEWED.record, make_registry(None), STORY_VIEWED.subject).decode(value)
    assert (event.story_id, event.viewer_id, event.viewed_at) == (story, "bob", viewed_at)  # type: ignore[attr-defined]


def test_a_typed_call_is_validated_by_the_models(settings: Settings) -> None:
    with EventClient(settings.bootstrap()) as client:
        with pytest.raises(ValidationError, match="story_id"):
            client.story_viewed(story_id="not an id!", viewer_id="bob")
        with pytest.raises(ValidationError, match="reaction"):
            client.story_reacted(story_id="s1", user_id="bob", reaction="🔥🔥")
        assert client.producer.queued == 0


def test_the_asyncio_client_awaits_the_broker(settings: Settings) -> None:
    story = f"cla-{uuid.uuid4().hex[:8]}"

    async def run() -> list[object]:
        client = AsyncEventClient(settings.bootstrap())
        client.start()
        try:
            return list(
                await asyncio.gather(
                    client.story_reacted(story_id=story, user_id="ann", reaction="fire"),
                    client.story_reacted(story_id=story, user_id="bob", reaction="😀", text="hi"),
                )
            )
        finally:
            client.close()

    first, second = asyncio.run(run())
    assert first.topic == second.topic == STORY_REACTED.name  # type: ignore[attr-defined]
    assert second.offset == first.offset + 1  # type: ignore[attr-defined]  # one key, in order


def test_a_failed_delivery_raises_from_the_future() -> None:
    client = EventClient(_dead_broker(), producer={"message.timeout.ms": 300, "log_level": 0})
    future = client.story_viewed(story_id="s1", viewer_id="bob")
    with pytest.raises(DeliveryError, match="story-viewed"):
        future.result(timeout=20)
    assert client.close(1) == 0


def test_a_full_queue_raises_at_once_or_after_blocking() -> None:
    config = {"queue.buffering.max.messages": 1, "log_level": 0}
    raising = KeyedProducer(_dead_broker(), on_full="raise", **config)
    raising.produce("story-viewed", b"k", b"v", 1)
    with pytest.raises(QueueFull, match="queue is full"):
        raising.produce("story-viewed", b"k", b"v", 2)
    blocking = KeyedProducer(_dead_broker(), block_timeout=0.3, **config)
    blocking.produce("story-viewed", b"k", b"v", 1)
    started = time.monotonic()
    with pytest.raises(QueueFull):
        blocking.produce("story-viewed", b"k", b"v", 2)
    assert time.monotonic() - started >= 0.3
    assert (raising.queued, blocking.queued) == (1, 1)
    for producer in (raising, blocking):
        producer.close(0)


def test_the_asyncio_client_queues_a_batch_all_or_none() -> None:
    async def run() -> int:
        client = AsyncEventClient(
            _dead_broker(), on_full="raise", producer={"queue.buffering.max.messages": 3}
        )
        record = ("story-viewed", b"k", b"v", 1)
        with pytest.raises(QueueFull):
            await client.send_encoded([record] * 4)
        return client.producer.queued

    assert asyncio.run(run()) == 0  # none of the batch was queued
