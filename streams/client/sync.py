"""The blocking client: each call queues its event and returns a future of its delivery."""

from __future__ import annotations

from collections.abc import Iterable
from concurrent.futures import Future
from datetime import timedelta
from types import TracebackType
from typing import Any

from confluent_kafka import KafkaError, Message

from schemas.events import Event
from schemas.types import DEFAULT_STORY_TTL
from streams.client.calls import EventCalls
from streams.client.encoder import Encoder
from streams.client.producer import Delivered, KeyedProducer, OnFull, delivered


class EventClient(EventCalls["Future[Delivered]"]):
    """Produces events; `client.story_viewed(...)` returns a `concurrent.futures.Future` that
    holds where the broker put the record, or raises DeliveryError.

    With a full queue a call waits for room (`on_full="block"`, up to `block_timeout`
    seconds) or raises QueueFull at once (`"raise"`). `producer` options override the
    project's producer configuration (e.g. `{"linger.ms": 0}`).
    """

    def __init__(
        self,
        bootstrap: str,
        *,
        registry_url: str | None = None,
        story_ttl: timedelta = DEFAULT_STORY_TTL,
        on_full: OnFull = "block",
        block_timeout: float = 60.0,
        producer: dict[str, Any] | None = None,
    ) -> None:
        self.story_ttl = story_ttl
        self.encoder = Encoder(registry_url)
        self.producer = KeyedProducer(
            bootstrap, on_full=on_full, block_timeout=block_timeout, **(producer or {})
        )
        self.producer.start()

    def publish(self, event: Event) -> Future[Delivered]:
        """Queue one event (keyed, routed and encoded as the topic catalog says)."""
        future: Future[Delivered] = Future()

        def report(err: KafkaError | None, msg: Message) -> None:
            try:
                future.set_result(delivered(err, msg))
            except Exception as exc:  # DeliveryError
                future.set_exception(exc)

        self.producer.produce(*self.encoder.encode(event), on_delivery=report)
        return future

    def publish_all(self, events: Iterable[Event]) -> list[Future[Delivered]]:
        """Queue events in order; one future each."""
        return [self.publish(event) for event in events]

    def flush(self, timeout: float = 60.0) -> int:
        """Wait for every queued event's delivery; how many are still queued."""
        return self.producer.flush(timeout)

    def close(self, timeout: float = 60.0) -> int:
        """Deliver what is queued (up to `timeout`), then stop; how many were left."""
        return self.producer.close(timeout)

    def __enter__(self) -> EventClient:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
