"""Session fixtures: the real embedded broker (or STORYSTREAM_BROKER when set) and the embedded
schema registry."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from infra.broker import EmbeddedBroker
from infra.schema_registry import EmbeddedSchemaRegistry
from streams.codecs.registry import topic_subjects
from streams.kafka.admin import create_topics
from streams.settings import Settings


@pytest.fixture(scope="session")
def bootstrap() -> Iterator[str]:
    """A running Kafka-compatible broker for the whole session."""
    configured = os.environ.get("STORYSTREAM_BROKER")
    if configured:
        yield configured
        return
    with EmbeddedBroker() as broker:
        yield broker.bootstrap


@pytest.fixture(scope="session")
def settings(bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """Settings pointing at the session broker, with every topic created."""
    built = Settings(broker=bootstrap, data_dir=tmp_path_factory.mktemp("data"), partitions=4)
    create_topics(built)
    return built


@pytest.fixture(scope="session")
def schema_registry_url() -> Iterator[str]:
    """The schema registry `storystream dev` serves, started once for the session (tests that
    register a schema use subjects of their own: registrations last for the session)."""
    with EmbeddedSchemaRegistry(topic_subjects()) as registry:
        yield registry.url
