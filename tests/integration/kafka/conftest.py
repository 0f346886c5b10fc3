"""Fixtures of the tests only Apache Kafka can answer (marked `kafka`: skipped, naming what is
missing, where Java 17+ or Maven is not installed)."""

from __future__ import annotations

import pytest

from infra.kafka import KafkaCluster, KafkaUnavailable
from infra.kafka.jars import java_binary, kafka_classpath
from streams.kafka.admin import create_topics
from streams.settings import Settings


@pytest.fixture(scope="session")
def kafka_runnable() -> None:
    """Java 17+ here and the broker's jars resolved (once), or the test is skipped."""
    try:
        java_binary()
        kafka_classpath()
    except KafkaUnavailable as exc:
        pytest.skip(f"Apache Kafka unavailable: {exc}")


@pytest.fixture(scope="session")
def kafka_settings(kafka: KafkaCluster, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """Settings pointing at the session's single-node Kafka, with every topic created."""
    built = Settings(
        broker=kafka.bootstrap, data_dir=tmp_path_factory.mktemp("kafka-data"), partitions=4
    )
    create_topics(built)
    return built
