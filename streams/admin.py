"""`storystream topics create`: every topic of the catalog, idempotently."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from streams.settings import Settings
from streams.topics import TOPICS, TopicSpec

log = logging.getLogger(__name__)


class TopicMismatch(RuntimeError):
    """An existing topic differs from the catalog in a way that breaks co-partitioning."""


@dataclass(frozen=True)
class TopicResult:
    name: str
    created: bool
    partitions: int


def create_topics(settings: Settings, specs: tuple[TopicSpec, ...] = TOPICS) -> list[TopicResult]:
    """Create the topics that do not exist; verify the partition count of those that do."""
    admin = AdminClient({"bootstrap.servers": settings.bootstrap()})
    existing = admin.list_topics(timeout=10).topics
    retention_ms = int(settings.input_retention.total_seconds() * 1000)
    results: list[TopicResult] = []
    to_create = []
    for spec in specs:
        if spec.name in existing:
            partitions = len(existing[spec.name].partitions)
            if partitions != settings.partitions:
                raise TopicMismatch(
                    f"topic {spec.name} has {partitions} partitions, expected "
                    f"{settings.partitions} (STORYSTREAM_PARTITIONS); story topics must be "
                    "co-partitioned: recreate it or set STORYSTREAM_PARTITIONS to match"
                )
            results.append(TopicResult(spec.name, False, partitions))
        else:
            to_create.append(
                NewTopic(
                    spec.name,
                    settings.partitions,
                    settings.replication_factor,
                    config=spec.config(retention_ms),
                )
            )
    results += _create(admin, to_create, settings.partitions)
    order = {spec.name: i for i, spec in enumerate(specs)}
    if settings.output_prefix:
        results.extend(_create_prefixed_outputs(admin, settings, existing, retention_ms))
    return sorted(results, key=lambda r: (order.get(r.name, len(order)), r.name))


def _create_prefixed_outputs(
    admin: AdminClient, settings: Settings, existing: dict[str, object], retention_ms: int
) -> list[TopicResult]:
    """The output topics of a group writing under STORYSTREAM_OUTPUT_PREFIX."""
    outputs = [s for s in TOPICS if s.kind in ("output", "dead-letters")]
    wanted = [
        NewTopic(
            settings.output_prefix + spec.name,
            settings.partitions,
            settings.replication_factor,
            config=spec.config(retention_ms),
        )
        for spec in outputs
        if settings.output_prefix + spec.name not in existing
    ]
    return _create(admin, wanted, settings.partitions)


def _create(admin: AdminClient, topics: list[NewTopic], partitions: int) -> list[TopicResult]:
    """Create `topics`; one that another process created meanwhile (workers of a group start
    together) counts as existing, not as an error."""
    results = []
    if topics:
        for name, future in admin.create_topics(topics, request_timeout=30).items():
            try:
                future.result()
                results.append(TopicResult(name, True, partitions))
            except KafkaException as exc:
                if exc.args[0].code() != exc.args[0].TOPIC_ALREADY_EXISTS:
                    raise
                results.append(TopicResult(name, False, partitions))
    return results
