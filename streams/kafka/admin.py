"""Topic creation, the one place topics are made: the contract's, the worker's own and a
prefixed run's outputs, idempotently, configs set explicitly."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from streams.settings import Settings
from streams.topics import TOPICS, TopicSpec, internal_topics, output_topics

log = logging.getLogger(__name__)


class TopicMismatch(RuntimeError):
    """An existing topic differs from the catalog in a way that breaks co-partitioning."""


class TopicsExist(RuntimeError):
    """Topics that must be fresh (a replay's outputs) exist already."""


@dataclass(frozen=True)
class TopicResult:
    name: str
    created: bool
    partitions: int


def all_topics(settings: Settings) -> tuple[TopicSpec, ...]:
    """Every topic a deployment uses: the contract's, the workers' own, and the outputs of
    STORYSTREAM_OUTPUT_PREFIX when set."""
    prefixed = output_topics(settings.output_prefix) if settings.output_prefix else ()
    return (*TOPICS, *internal_topics(settings.app_id), *prefixed)


def create_topics(
    settings: Settings, specs: Iterable[TopicSpec] | None = None, *, fresh: bool = False
) -> list[TopicResult]:
    """Create the topics of `specs` (default: `all_topics`) that do not exist, and check the
    partition count of those that do. With `fresh`, any that exists is an error."""
    wanted = list(all_topics(settings) if specs is None else specs)
    admin = AdminClient({"bootstrap.servers": settings.bootstrap()})
    existing = admin.list_topics(timeout=10).topics
    if fresh:
        taken = [spec.name for spec in wanted if spec.name in existing]
        if taken:
            raise TopicsExist(f"topics exist already: {', '.join(taken)}")
    retention_ms = int(settings.input_retention.total_seconds() * 1000)
    results: list[TopicResult] = []
    to_create = []
    for spec in wanted:
        count = spec.partitions or settings.partitions
        if spec.name in existing:
            partitions = len(existing[spec.name].partitions)
            if partitions != count:
                raise TopicMismatch(
                    f"topic {spec.name} has {partitions} partitions, expected {count} "
                    "(STORYSTREAM_PARTITIONS); story topics must be co-partitioned: recreate "
                    "it or set STORYSTREAM_PARTITIONS to match"
                )
            results.append(TopicResult(spec.name, False, partitions))
        else:
            config = spec.config(retention_ms)
            to_create.append(NewTopic(spec.name, count, settings.replication_factor, config=config))
    results += _create(admin, to_create)
    _wait_visible(admin, {t.topic for t in to_create})
    order = {spec.name: i for i, spec in enumerate(wanted)}
    return sorted(results, key=lambda r: order[r.name])


def _wait_visible(admin: AdminClient, names: set[str], seconds: float = 30.0) -> None:
    """Until every topic in `names` is in the broker's metadata with a leader for each
    partition. Apache Kafka acknowledges a creation before its brokers know the topic; a
    consumer subscribing in that moment leaves the topic out until its next metadata refresh
    (five minutes by default), and a worker's stages would wait that long."""
    deadline = time.monotonic() + seconds
    while names and time.monotonic() < deadline:
        topics = admin.list_topics(timeout=10).topics
        if all(
            name in topics
            and topics[name].error is None
            and topics[name].partitions
            and all(p.leader >= 0 for p in topics[name].partitions.values())
            for name in names
        ):
            return
        time.sleep(0.1)
    if names:
        log.warning("topics not visible after %ss: %s", seconds, sorted(names))


def _create(admin: AdminClient, topics: list[NewTopic]) -> list[TopicResult]:
    """Create `topics`; one that another process created meanwhile (workers of a group start
    together) counts as existing, not as an error."""
    results = []
    if topics:
        counts = {t.topic: t.num_partitions for t in topics}
        for name, future in admin.create_topics(topics, request_timeout=30).items():
            try:
                future.result()
                results.append(TopicResult(name, True, counts[name]))
            except KafkaException as exc:
                if exc.args[0].code() != exc.args[0].TOPIC_ALREADY_EXISTS:
                    raise
                results.append(TopicResult(name, False, counts[name]))
    return results
