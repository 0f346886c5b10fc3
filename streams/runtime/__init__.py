"""The stream runtime: the topology as data, one driver of it, and the live Kafka loop."""
