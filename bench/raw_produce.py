"""The raw side of `bench.publish`: produce pre-encoded records, in process or as a command.

    python -m bench.raw_produce RECORDS CONFIG_JSON

As a command it loads RECORDS (a marshal file of `(topic, key, value, timestamp)` tuples),
produces them with the producer configuration CONFIG_JSON, waits for their delivery and exits:
the raw counterpart of `storystream publish FILE`, timed start to exit the same way. It imports
only confluent-kafka, and it is given what publish gives itself: no garbage collector walks over
its records, and no interpreter teardown at exit.
"""

from __future__ import annotations

import gc
import json
import marshal
import os
import sys

from confluent_kafka import Producer

Record = tuple[str, bytes, bytes, int]


def produce_all(producer: Producer, records: list[Record]) -> int:
    """Produce every record as publish does (the key's partition, the record's timestamp);
    the number still undelivered after the flush."""
    produce = producer.produce
    for topic, key, value, timestamp in records:
        while True:
            try:
                produce(topic, value, key, -1, None, None, timestamp)
                break
            except BufferError:
                producer.poll(0.05)
    remaining: int = producer.flush(300)
    return remaining


def main() -> None:
    path, config = sys.argv[1], json.loads(sys.argv[2])
    gc.disable()
    with open(path, "rb") as stream:
        records = marshal.loads(stream.read())  # marshal.load reads a file in small pieces
    remaining = produce_all(Producer(config), records)
    if remaining:
        print(f"{remaining} undelivered", file=sys.stderr)
    sys.stdout.flush()
    os._exit(1 if remaining else 0)


if __name__ == "__main__":
    main()
