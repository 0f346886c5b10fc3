"""Restoring a partition's local state from the changelog, and standby replicas: warm copies of
the partitions a worker does not own, so taking one over replays only the changelog's tail."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, TopicPartition

from streams.kafka.clients import CHANGELOG_DELETE_RETENTION_MS, restore_consumer_config
from streams.runtime.driver import PartitionState
from streams.runtime.durability import local_checkpoint
from streams.runtime.metrics import Metrics
from streams.runtime.store import CHECKPOINT_KEY, PartitionStore, StateMemory
from streams.runtime.topology import Topology

log = logging.getLogger(__name__)

# Local state may replay the changelog's tail only while the tombstones written since its
# checkpoint are certainly still there (compaction may drop a tombstone once it is
# delete.retention.ms old); an hour's margin for the clocks of workers and brokers.
LOCAL_STATE_MAX_AGE_MS = CHANGELOG_DELETE_RETENTION_MS - 3_600_000
STANDBY_TURN_SECONDS = 0.2  # a standby catch-up's share of the engine thread per turn


class Restorer:
    """Brings a partition's local RocksDB up to its last changelog checkpoint."""

    def __init__(
        self,
        bootstrap: str,
        group_id: str,
        topology: Topology,
        state_dir: Path,
        metrics: Metrics,
        max_record_bytes: int | None = None,
        memory: StateMemory | None = None,
    ) -> None:
        self._bootstrap = bootstrap
        self._group_id = group_id
        self._topology = topology
        self._changelog = topology.changelog
        self._state_dir = state_dir
        self._metrics = metrics
        self._max_record_bytes = max_record_bytes
        self._memory = memory

    def open(self, partition: int) -> PartitionStore:
        path = self._state_dir / f"p{partition}"
        return PartitionStore(path, self._max_record_bytes, self._memory)

    def restore(
        self, partition: int, standby_turn: float | None = None
    ) -> tuple[PartitionState, bool]:
        """The partition's state caught up from the changelog to its last checkpoint (for a
        standby, `standby_turn` seconds: to the first checkpoint after that long), and
        whether it reached the end."""
        standby = standby_turn is not None
        store = self.open(partition)
        restorer = Consumer(restore_consumer_config(self._bootstrap, f"{self._group_id}-restore"))
        try:
            low, high = _watermarks(restorer, TopicPartition(self._changelog, partition))
            start = OFFSET_BEGINNING
            applied: dict[str, int] = {}
            local = store.checkpoint
            if local is not None:
                state = json.loads(local)
                position = state.get("changelog_offset")
                known = isinstance(position, int)
                if known and low <= position < high and not _outlived_tombstones(state):
                    start = position + 1
                    applied = state["applied"]
                else:  # another broker's lifetime, compacted away, or too old: rebuild
                    store.close()
                    PartitionStore.destroy(store.path)
                    store = self.open(partition)
            deadline = None if standby_turn is None else time.monotonic() + standby_turn
            restored, caught_up = self._replay(restorer, store, partition, start, high, deadline)
            if restored is not None:
                applied = restored[0]
                store.flush(local_checkpoint(applied, restored[1]))
            if not standby:
                self._metrics.restored.inc(str(partition))
            return PartitionState(store, {k: int(v) for k, v in applied.items()}), caught_up
        finally:
            restorer.close()

    def _replay(
        self,
        restorer: Consumer,
        store: PartitionStore,
        partition: int,
        start: int,
        high: int,
        deadline: float | None = None,
    ) -> tuple[tuple[dict[str, int], int] | None, bool]:
        """Apply changelog records up to the last checkpoint before `high`; records after it
        belong to a batch that never completed and are redone from the inputs instead.

        With a `deadline`, stop at the first checkpoint after it. Returns the last checkpoint
        applied (applied offsets, its changelog offset), if any, and whether the replay went
        to the end."""
        standby = deadline is not None
        if high <= 0 or (start != OFFSET_BEGINNING and start >= high):
            return None, True
        restorer.assign([TopicPartition(self._changelog, partition, start)])
        derived = [s.derived for s in self._topology.stages if s.derived is not None]
        pending: list[tuple[bytes, bytes | None]] = []
        last: tuple[dict[str, int], int] | None = None
        count = 0
        stopped = False
        idle_since = time.monotonic()
        while time.monotonic() - idle_since < 10.0:
            messages = restorer.consume(10_000, timeout=1.0)
            if messages:
                idle_since = time.monotonic()
            done = False
            for msg in messages:
                if msg.error() is not None:
                    if msg.error().code() == KafkaError._PARTITION_EOF:
                        done = True
                    continue
                if msg.key() == CHECKPOINT_KEY:
                    for key, value in pending:
                        for keys in derived:
                            keys.rebuild(store, key, store.get_committed(key), value)
                        store.apply_restored(key, value)
                    count += len(pending)
                    if not standby:
                        self._metrics.restored_records.inc(str(partition), len(pending))
                    pending = []
                    last = (json.loads(msg.value())["applied"], msg.offset())
                    if deadline is not None and time.monotonic() >= deadline:
                        stopped = msg.offset() < high - 1
                        done = True
                        break
                else:
                    pending.append((msg.key(), msg.value()))
                if msg.offset() >= high - 1:
                    done = True
            if done or not messages and last is not None and last[1] >= high - 1:
                break
        log.log(
            logging.DEBUG if standby else logging.INFO,
            "partition %s: restored %s changelog records%s",
            partition,
            count,
            " (standby)" if standby else "",
        )
        return last, not stopped


class Standbys:
    """Keeps a warm local copy of every partition the worker does not own, each at most about
    `interval` seconds old: one partition per turn, and a turn stops at the first checkpoint
    after STANDBY_TURN_SECONDS, so a cold replica is caught up over as many turns as it takes
    instead of holding the engine's batches back."""

    def __init__(self, restorer: Restorer, partitions: int, interval: float, metrics: Metrics):
        self._restorer = restorer
        self._partitions = partitions
        self._interval = interval
        self._metrics = metrics
        self._due = 0.0
        self._turn = 0

    def catch_up(self, owned: set[int]) -> None:
        """Bring the next standby partition up to date, if one is due."""
        if time.monotonic() < self._due:
            return
        others = [p for p in range(self._partitions) if p not in owned]
        if not others:
            return
        partition = others[self._turn % len(others)]
        self._due = time.monotonic() + self._interval / len(others)
        standby, caught_up = self._restorer.restore(partition, standby_turn=STANDBY_TURN_SECONDS)
        standby.store.close()
        if caught_up:
            self._turn += 1
            self._metrics.standby_caught_up.inc(str(partition))


def _watermarks(consumer: Consumer, tp: TopicPartition, seconds: float = 60.0) -> tuple[int, int]:
    """A partition's (low, high) offsets, asked again while the broker cannot tell yet: a
    topic created a moment ago is unknown to a broker's metadata, or has no leader, until the
    controller's change reaches it (Apache Kafka; the embedded broker answers at once)."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            low, high = consumer.get_watermark_offsets(tp, timeout=10)
            return int(low), int(high)
        except KafkaException as exc:
            error = exc.args[0]
            transient = error.retriable() or error.code() in _NOT_READY
            if not transient or time.monotonic() > deadline:
                raise
            time.sleep(0.2)


_NOT_READY = {
    KafkaError._UNKNOWN_PARTITION,
    KafkaError.UNKNOWN_TOPIC_OR_PART,
    KafkaError.NOT_LEADER_FOR_PARTITION,
    KafkaError.LEADER_NOT_AVAILABLE,
}


def _outlived_tombstones(local: dict[str, Any]) -> bool:
    """Whether local state is too old to replay the changelog's tail onto: a key deleted since
    may have lost its tombstone to compaction, and would live on locally."""
    written_at = local.get("written_at")
    return written_at is None or time.time() * 1000 - written_at > LOCAL_STATE_MAX_AGE_MS
