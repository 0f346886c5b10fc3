"""How a batch is made durable: at least once (acknowledged outputs, then checkpoints, then
local state, then offsets) or as one Kafka transaction. One interface, two strategies.

A checkpoint is a one-record batch on each touched changelog partition holding the input
offsets its state reflects; a restart restores the changelog up to the last one and resumes
the inputs right after its offsets, so state is updated exactly once either way.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Mapping
from typing import Any, Protocol

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition

from streams.kafka.clients import producer_config
from streams.runtime.driver import PartitionState
from streams.runtime.store import CHECKPOINT_KEY

log = logging.getLogger(__name__)


def checkpoint_value(applied: Mapping[str, int]) -> bytes:
    """The changelog checkpoint of a partition's state: the input offsets it reflects."""
    return json.dumps({"applied": dict(applied)}).encode()


def local_checkpoint(applied: Mapping[str, int], changelog_offset: int) -> bytes:
    """What local RocksDB records with its state: the input offsets it reflects, the changelog
    offset it matches, and when (wall clock, ms)."""
    written_at = int(time.time() * 1000)
    state = {"applied": dict(applied), "changelog_offset": changelog_offset}
    return json.dumps({**state, "written_at": written_at}).encode()


class Durability(Protocol):
    """Makes a batch durable; `producer` is where the batch's records go."""

    producer: Producer

    def begin(self) -> None:
        """A batch starts (its records may follow)."""
        ...

    def commit(
        self, partitions: Mapping[int, PartitionState], offsets: list[TopicPartition]
    ) -> None:
        """The batch's records are produced: make them, the partitions' checkpoints, their
        local state and the consumed `offsets` durable, in that order."""
        ...

    def abort(self) -> None:
        """The batch failed: nothing of it may be seen (where the strategy can promise it)."""
        ...

    def close(self) -> None: ...


class _Base:
    def __init__(self, changelog: str, stopping: threading.Event) -> None:
        self._changelog = changelog
        self._stopping = stopping
        self._errors: list[str] = []
        self._checkpoint_offsets: dict[int, int] = {}

    def _delivered(self, err: KafkaError | None, msg: Message) -> None:
        if err is not None:
            self._errors.append(f"{msg.topic()}[{msg.partition()}]: {err.str()}")

    def _checkpointed(self, err: KafkaError | None, msg: Message) -> None:
        if err is not None:
            self._errors.append(f"checkpoint {msg.partition()}: {err.str()}")
            return
        offset = msg.offset()
        if offset is None:
            # Delivered without an offset: a retry of a batch the broker had written already
            # (the idempotent producer's duplicate, after the broker was away). Where the
            # checkpoint is in the changelog is unknown, so the local state claims no position
            # (a restore then rebuilds it from the changelog).
            self._checkpoint_offsets.pop(msg.partition(), None)
        else:
            self._checkpoint_offsets[msg.partition()] = offset

    def _flush(self, producer: Producer, what: str) -> None:
        """Wait for `producer`'s acknowledgements for as long as the broker is away (librdkafka
        retries for up to delivery.timeout.ms), unless stopping; raise on a failed delivery."""
        while producer.flush(5.0) > 0:
            log.warning("waiting for the broker to acknowledge %s", what)
            if self._stopping.is_set() and producer.flush(25.0) > 0:
                raise RuntimeError("broker unavailable while stopping; state will be recovered")
        if self._errors:
            errors, self._errors = self._errors, []
            raise RuntimeError(f"{what} not acknowledged: {errors[:3]}")

    def _produce_checkpoint(
        self, producer: Producer, partition: int, state: PartitionState
    ) -> None:
        producer.produce(
            self._changelog,
            checkpoint_value(state.applied),
            CHECKPOINT_KEY,
            partition=partition,
            on_delivery=self._checkpointed,
        )

    def _write_local(self, partition: int, state: PartitionState) -> None:
        offset = self._checkpoint_offsets.get(partition, -1)
        state.store.flush(local_checkpoint(state.applied, offset))


class AtLeastOnce(_Base):
    """Outputs are acknowledged before the checkpoint that covers them: a crash in between
    republishes them (idempotent upserts and tombstones on compacted topics)."""

    def __init__(
        self, bootstrap: str, changelog: str, consumer: Consumer, stopping: threading.Event
    ) -> None:
        super().__init__(changelog, stopping)
        self._consumer = consumer
        # Failed deliveries are reported to _delivered, the default callback: produce() then
        # takes positional arguments only.
        self.producer = Producer(
            producer_config(bootstrap, **{"linger.ms": 5, "on_delivery": self._delivered})
        )
        # Checkpoints go through their own producer: each is alone in its produce batch (so
        # even a broker that misreports the high watermark after multi-record batches reports
        # it right after one), and its delivery report gives its changelog offset.
        self._checkpointer = Producer(
            producer_config(bootstrap, **{"linger.ms": 0, "delivery.report.only.error": False})
        )

    def begin(self) -> None:
        pass

    def commit(
        self, partitions: Mapping[int, PartitionState], offsets: list[TopicPartition]
    ) -> None:
        self._flush(self.producer, "produced records")
        # Every partition's checkpoint, then one wait for them all (not a round trip each):
        # each is still alone in its partition's produce batch.
        for partition, state in partitions.items():
            self._produce_checkpoint(self._checkpointer, partition, state)
        self._flush(self._checkpointer, "checkpoints")
        for partition, state in partitions.items():
            self._write_local(partition, state)
        if offsets:
            try:
                self._consumer.commit(offsets=offsets, asynchronous=False)
            except KafkaException as exc:
                # Harmless: an assignment resumes each input from its partition's checkpoint.
                log.warning("offset commit failed (the checkpoint holds them): %s", exc)

    def abort(self) -> None:
        pass

    def close(self) -> None:
        self.producer.flush(30)
        self._checkpointer.flush(30)


class Transactional(_Base):
    """Each batch is one Kafka transaction: outputs, forwards, changelog records, checkpoints
    and the consumed offsets commit or abort together; local state is written after."""

    def __init__(
        self,
        bootstrap: str,
        changelog: str,
        consumer: Consumer,
        stopping: threading.Event,
        transactional_id: str,
    ) -> None:
        super().__init__(changelog, stopping)
        self._consumer = consumer
        self._open = False
        config: dict[str, Any] = {
            "linger.ms": 5,
            "transactional.id": transactional_id,
            # librdkafka requires delivery.timeout.ms <= transaction.timeout.ms; brokers cap
            # the latter at transaction.max.timeout.ms (15 minutes by default).
            "transaction.timeout.ms": 300_000,
            "delivery.report.only.error": False,
            "on_delivery": self._delivered,  # checkpoints name their own
        }
        self.producer = Producer(producer_config(bootstrap, **config))
        try:
            self.producer.init_transactions(60)
        except KafkaException as exc:
            raise RuntimeError(
                "processing_guarantee=exactly_once needs a broker with Kafka transactions: "
                f"{exc.args[0].str()}"
            ) from exc
        log.info("batches are Kafka transactions (transactional.id %s)", transactional_id)

    def begin(self) -> None:
        if not self._open:
            self.producer.begin_transaction()
            self._open = True

    def commit(
        self, partitions: Mapping[int, PartitionState], offsets: list[TopicPartition]
    ) -> None:
        self._flush(self.producer, "produced records")  # each checkpoint then travels alone
        for partition, state in partitions.items():
            self._produce_checkpoint(self.producer, partition, state)
        if offsets:
            self.producer.send_offsets_to_transaction(
                offsets, self._consumer.consumer_group_metadata(), 60
            )
        self.producer.commit_transaction(60)  # raises on failure; the engine then aborts
        self._open = False
        if self._errors:
            errors, self._errors = self._errors, []
            raise RuntimeError(f"transaction committed with failed deliveries: {errors[:3]}")
        for partition, state in partitions.items():
            self._write_local(partition, state)

    def abort(self) -> None:
        if self._open:
            self.producer.abort_transaction(30)
            self._open = False

    def close(self) -> None:
        self.producer.flush(30)
