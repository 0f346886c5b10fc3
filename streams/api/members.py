"""Which worker owns which partition, for the API's forwarding: every worker announces its
assignment and API URL on a compacted topic and follows everyone else's announcements."""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass
from typing import cast

from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition

from streams.kafka.clients import producer_config

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Announcement:
    worker_id: str
    url: str
    partitions: frozenset[int]
    at: float


class Members:
    """Announces this worker and keeps the latest announcement of every worker."""

    def __init__(self, bootstrap: str, topic: str, worker_id: str, url: str) -> None:
        self.topic = topic
        self.worker_id = worker_id
        self.url = url
        self._bootstrap = bootstrap
        self._producer = Producer(producer_config(bootstrap, **{"linger.ms": 0}))
        self._announcements: dict[str, Announcement] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread = threading.Thread(
            target=self._follow, name="storystream-members", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._producer.produce(self.topic, None, self.worker_id.encode(), partition=0)
        self._producer.flush(5)
        self._stopping.set()
        self._thread.join(5)

    def announce(self, partitions: set[int]) -> None:
        """Publish this worker's current partitions (called on every rebalance)."""
        value = {"url": self.url, "partitions": sorted(partitions), "at": time.time()}
        self._producer.produce(
            self.topic, json.dumps(value).encode(), self.worker_id.encode(), partition=0
        )
        self._producer.flush(10)
        self._remember(self.worker_id, value)

    def _remember(self, worker_id: str, value: dict[str, object] | None) -> None:
        with self._lock:
            if value is None:
                self._announcements.pop(worker_id, None)
            else:
                self._announcements[worker_id] = Announcement(
                    worker_id,
                    str(value["url"]),
                    frozenset(cast(list[int], value["partitions"])),
                    float(cast(float, value["at"])),
                )

    def owner(self, partition: int) -> Announcement | None:
        """The worker that most recently announced `partition`."""
        with self._lock:
            owners = [a for a in self._announcements.values() if partition in a.partitions]
        return max(owners, key=lambda a: a.at, default=None)

    def _follow(self) -> None:
        consumer = Consumer(
            {
                "bootstrap.servers": self._bootstrap,
                "group.id": f"members-{self.worker_id}",
                "enable.auto.commit": False,
            }
        )
        consumer.assign([TopicPartition(self.topic, 0, OFFSET_BEGINNING)])
        try:
            while not self._stopping.is_set():
                for msg in consumer.consume(100, timeout=0.5):
                    if msg.error() is not None or msg.key() is None:
                        continue
                    worker = msg.key().decode()
                    self._remember(worker, json.loads(msg.value()) if msg.value() else None)
        finally:
            consumer.close()
