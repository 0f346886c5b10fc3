"""The worker's own topics: stage repartitions, the state changelog, worker announcements."""

from __future__ import annotations

import logging
import time

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from streams.kafka import CHANGELOG_DELETE_RETENTION_MS
from streams.settings import Settings

log = logging.getLogger(__name__)

STAGES = ("story", "media", "author", "tray", "objects")


def stage_topic(settings: Settings, stage: str) -> str:
    return f"{settings.app_id}-stage-{stage}"


def changelog_topic(settings: Settings) -> str:
    return f"{settings.app_id}-changelog"


def members_topic(settings: Settings) -> str:
    return f"{settings.app_id}-members"


def create_internal_topics(settings: Settings) -> None:
    """Create them if missing (idempotent); configs set explicitly."""
    retention = str(int(settings.input_retention.total_seconds() * 1000))
    wanted = [
        NewTopic(
            stage_topic(settings, stage),
            settings.partitions,
            settings.replication_factor,
            config={"cleanup.policy": "delete", "retention.ms": retention},
        )
        for stage in STAGES
    ]
    compacted = {"cleanup.policy": "compact", "retention.ms": "-1"}
    tombstones = str(CHANGELOG_DELETE_RETENTION_MS)
    wanted.append(
        NewTopic(
            changelog_topic(settings),
            settings.partitions,
            settings.replication_factor,
            config={**compacted, "delete.retention.ms": tombstones},
        )
    )
    wanted.append(
        NewTopic(members_topic(settings), 1, settings.replication_factor, config=compacted)
    )
    admin = AdminClient({"bootstrap.servers": settings.bootstrap()})
    existing = admin.list_topics(timeout=10).topics
    missing = [t for t in wanted if t.topic not in existing]
    if not missing:
        return
    for future in admin.create_topics(missing, request_timeout=30).values():
        try:
            future.result()
        except KafkaException as exc:
            if exc.args[0].code() != exc.args[0].TOPIC_ALREADY_EXISTS:
                raise
    _wait_visible(admin, {t.topic for t in missing})


def _wait_visible(admin: AdminClient, names: set[str], seconds: float = 30.0) -> None:
    """Until every topic in `names` is in the broker's metadata with a leader for each
    partition. Apache Kafka acknowledges a creation before its brokers know the topic; a
    consumer subscribing in that moment leaves the topic out until its next metadata refresh
    (five minutes by default), and a worker's stages would wait that long."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
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
    log.warning("topics not visible after %ss: %s", seconds, sorted(names))
