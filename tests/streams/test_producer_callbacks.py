"""The engine produces with positional arguments only and relies on the producer's default
delivery callback to hear of failures: confluent-kafka must call it for such records."""

from __future__ import annotations

import socket
from typing import Any

from confluent_kafka import Producer

from streams.kafka.clients import producer_config


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_a_failed_delivery_reaches_the_default_callback_of_a_positional_produce() -> None:
    failures: list[Any] = []
    producer = Producer(
        producer_config(
            f"127.0.0.1:{_closed_port()}",  # nobody listens: the record times out
            **{
                "on_delivery": lambda err, msg: failures.append((err, msg.topic())),
                "message.timeout.ms": 300,
                "log_level": 0,
            },
        )
    )
    producer.produce("some-topic", b"value", b"key", 0)
    producer.flush(10)
    assert len(failures) == 1
    error, topic = failures[0]
    assert error is not None and topic == "some-topic"
