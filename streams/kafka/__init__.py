"""Kafka clients: their configurations, topic creation, partitions and offsets."""
