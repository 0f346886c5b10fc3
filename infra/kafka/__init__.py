"""Apache Kafka (KRaft) for dev, tests and benchmarks: its jars pinned in pom.xml, a launcher."""

from infra.kafka.cluster import KafkaCluster, KafkaError, KafkaNode
from infra.kafka.jars import KafkaUnavailable, kafka_version

__all__ = ["KafkaCluster", "KafkaError", "KafkaNode", "KafkaUnavailable", "kafka_version"]
