"""The asyncio client: calls are awaited until the broker has the event; the event loop never
waits on the producer (delivery reports come from the producer's thread, a full queue is
waited out with `asyncio.sleep`)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import timedelta
from typing import Any

from confluent_kafka import KafkaError, Message

from schemas.events import Event
from schemas.types import DEFAULT_STORY_TTL
from streams.client.calls import EventCalls
from streams.client.encoder import Encoded, Encoder
from streams.client.producer import (
    Delivered,
    DeliveryError,
    KeyedProducer,
    OnFull,
    QueueFull,
    delivered,
)

ROOM_CHECK = 0.005  # seconds between looks at a full queue


class _Pending:
    """The delivery reports of some records; once all are in, `done(self)` hands it over to
    be settled on its event loop."""

    __slots__ = ("_done", "_left", "_lock", "error", "future", "last", "loop")

    def __init__(
        self, loop: asyncio.AbstractEventLoop, count: int, done: Callable[[_Pending], None]
    ) -> None:
        self.loop = loop
        self.future: asyncio.Future[Delivered | None] = loop.create_future()
        self._left = count
        self._done = done
        self._lock = threading.Lock()  # reports may be served by two threads at once
        self.error: str | None = None
        self.last: Message | None = None

    def __call__(self, err: KafkaError | None, msg: Message) -> None:
        with self._lock:
            if err is not None and self.error is None:
                self.error = f"{msg.topic()} key={msg.key()!r}: {err.str()}"
            self.last = msg
            self._left -= 1
            done = self._left == 0
        if done:
            self._done(self)

    def settle(self) -> None:
        if self.future.done():  # cancelled by its waiter
            return
        if self.error is not None:
            self.future.set_exception(DeliveryError(self.error))
        else:
            self.future.set_result(None if self.last is None else delivered(None, self.last))


def _settle_all(pending: list[_Pending]) -> None:
    for one in pending:
        one.settle()


class AsyncEventClient(EventCalls[Awaitable[Delivered]]):
    """Produces events from asyncio code: `await client.story_viewed(...)` returns where the
    broker put the record, or raises DeliveryError; QueueFull when the queue has no room
    (`on_full="raise"`, at once; `"block"`, after waiting up to `block_timeout` seconds).

    `start()` starts the delivery reports' thread; `close()` delivers what is queued and stops.
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
        self.on_full = on_full
        self.block_timeout = block_timeout
        self.producer = KeyedProducer(bootstrap, on_full="raise", **(producer or {}))
        # Settled sets of reports, handed to their loops once per poll of the producer: one
        # wake-up of a loop for all the reports a poll served, not one each.
        self._settled: list[_Pending] = []
        self._settled_lock = threading.Lock()
        self.producer.after_poll = self._hand_over

    def _completed(self, pending: _Pending) -> None:
        with self._settled_lock:
            self._settled.append(pending)

    def _hand_over(self) -> None:
        if not self._settled:
            return
        with self._settled_lock:
            settled, self._settled = self._settled, []
        by_loop: dict[asyncio.AbstractEventLoop, list[_Pending]] = {}
        for pending in settled:
            by_loop.setdefault(pending.loop, []).append(pending)
        for loop, pendings in by_loop.items():
            try:
                loop.call_soon_threadsafe(_settle_all, pendings)
            except RuntimeError:  # the loop is closed: nobody waits any more
                pass

    def start(self) -> None:
        self.producer.start()

    def close(self, timeout: float = 30.0) -> int:
        """Deliver what is queued (blocking, up to `timeout`), then stop; how many were left."""
        return self.producer.close(timeout)

    def stop(self) -> None:
        """`close` (a worker's companion stops so)."""
        self.close()

    def publish(self, event: Event) -> Awaitable[Delivered]:
        """Queue one event and wait for its delivery."""
        return self._one(self.encoder.encode(event))

    async def _one(self, record: Encoded) -> Delivered:
        result = await self.send_encoded([record])
        assert result is not None
        return result

    async def send_encoded(self, records: Sequence[Encoded]) -> Delivered | None:
        """Queue encoded records in order, all or none (as far as the queue's bound on records
        goes), and wait until the broker has every one; the last one's place (None for none).
        DeliveryError if any failed."""
        if not records:
            return None
        await self._room(len(records))
        pending = _Pending(asyncio.get_running_loop(), len(records), self._completed)
        try:
            self.producer.produce_encoded(records, pending)
        except QueueFull:  # the queue's bound on bytes: some were queued, and go on
            pending.future.cancel()
            raise
        return await pending.future

    async def _room(self, count: int) -> None:
        producer = self.producer
        if producer.has_room(count):
            return
        if self.on_full == "raise" or count > producer.max_queued:
            raise QueueFull(producer.full_message())
        deadline = time.monotonic() + self.block_timeout
        while not producer.has_room(count):
            if time.monotonic() > deadline:
                raise QueueFull(producer.full_message())
            await asyncio.sleep(ROOM_CHECK)
