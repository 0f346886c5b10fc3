"""Record size limits: what a topic takes (`max.message.bytes`), read once at start."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from confluent_kafka.admin import AdminClient, ConfigResource, ResourceType

log = logging.getLogger(__name__)

# Kafka's default max.message.bytes (a broker may report only configs set explicitly).
BROKER_DEFAULT_MAX_MESSAGE_BYTES = 1_048_588
# librdkafka's default message.max.bytes: the producer refuses larger records itself.
PRODUCER_MAX_MESSAGE_BYTES = 1_000_000
# Room for a record's framing (batch header, lengths, timestamps) around its key and value.
RECORD_OVERHEAD = 512


class RecordTooLarge(ValueError):
    """A record would be larger than its topic takes."""

    def __init__(self, what: str, size: int, limit: int) -> None:
        super().__init__(f"{what} of {size:,} bytes is over the {limit:,}-byte record limit")
        self.size = size
        self.limit = limit


def payload_limit(max_message_bytes: int) -> int:
    """The most key and value bytes one record may carry on a topic with this limit."""
    return min(max_message_bytes, PRODUCER_MAX_MESSAGE_BYTES) - RECORD_OVERHEAD


def topic_limits(bootstrap: str, topics: Iterable[str], timeout: float = 10) -> dict[str, int]:
    """Each topic's payload limit (key and value bytes), from its `max.message.bytes`; the
    broker default where the broker does not say, or the topic does not exist yet."""
    names = sorted(set(topics))
    limits = {name: payload_limit(BROKER_DEFAULT_MAX_MESSAGE_BYTES) for name in names}
    admin = AdminClient({"bootstrap.servers": bootstrap})
    resources = [ConfigResource(ResourceType.TOPIC, name) for name in names]
    try:
        futures = admin.describe_configs(resources, request_timeout=timeout)
    except Exception as exc:  # an old broker, or none: the defaults hold
        log.warning("cannot read topic configs (%s); assuming Kafka's default limits", exc)
        return limits
    for resource, future in futures.items():
        try:
            entry = future.result(timeout).get("max.message.bytes")
        except Exception:  # a topic not created yet, or a config the broker does not show
            continue
        if entry is not None and entry.value is not None and entry.value.isdigit():
            limits[resource.name] = payload_limit(int(entry.value))
    return limits
