"""The domain: pure functions over state and events. No Kafka, Faust, boto3, av or RocksDB here."""
