"""Archive write rate: the archive connector reading the input topics and writing Avro files to
the object store, against a bare consume loop over the same records in the same run.

    python -m bench.archive [--views 200000] [--runs 3]

Views over an hour (two hour folders) and their posts are published to the embedded broker (or
STORYSTREAM_BROKER); each run is a fresh consumer group from the beginning to the end:
- consume: the bare loop, each record's topic, partition, offset, timestamp, key, value and
  headers taken (what the archiver reads of it), nothing written;
- archive (memory): the archiver into the in-memory object store (encoding, no upload cost);
- archive (S3): the archiver into moto's S3 server on loopback (every file uploaded).
Records/s are from the first poll to the last file written (the final flush included).
"""

from __future__ import annotations

import argparse
import time
import uuid
from datetime import timedelta

from confluent_kafka import Consumer

from bench.harness import broker, rate
from bench.views import encode, generate, produce
from connectors.memory_store import InMemoryObjectStore
from connectors.object_store import ObjectStore
from connectors.s3_store import S3ObjectStore
from infra.s3 import EmbeddedS3
from streams.kafka.admin import create_topics
from streams.kafka.offsets import end_offsets
from streams.settings import Settings
from streams.worker.archiver import Archiver, archived_topics


def ends_of(bootstrap: str) -> dict[tuple[str, int], int]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench-ends"})
    try:
        topics = consumer.list_topics(timeout=10).topics
        partitions = [(t, p) for t in archived_topics() for p in topics[t].partitions]
        return {tp: high for tp, (_, high) in end_offsets(consumer, partitions).items() if high}
    finally:
        consumer.close()


def bare_consume(bootstrap: str, ends: dict[tuple[str, int], int]) -> tuple[int, float]:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"bench-consume-{uuid.uuid4().hex[:6]}",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "fetch.wait.max.ms": 100,
        }
    )
    consumer.subscribe(archived_topics())
    left = dict(ends)
    count = 0
    started = None
    try:
        while left:
            batch = consumer.consume(10_000, timeout=0.5)
            if batch and started is None:
                started = time.perf_counter()
            for msg in batch:
                if msg.error() is not None:
                    continue
                tp = (msg.topic(), msg.partition())
                offset = msg.offset()
                msg.timestamp(), msg.key(), msg.value(), msg.headers()
                count += 1
                if offset + 1 >= left.get(tp, 0):
                    left.pop(tp, None)
        assert started is not None
        return count, time.perf_counter() - started
    finally:
        consumer.close()


def archive(
    settings: Settings, store: ObjectStore, ends: dict[tuple[str, int], int]
) -> tuple[int, float, str]:
    archiver = Archiver(settings, store, group_id=f"bench-archive-{uuid.uuid4().hex[:6]}")
    started: list[float] = []

    def done() -> bool:
        if not started and archiver.consumed:
            started.append(time.perf_counter())
        return all((archiver.writer.next_offset(tp) or 0) >= end for tp, end in ends.items())

    archiver.run(until=done)  # then writes every open file
    seconds = time.perf_counter() - started[0]
    stats = archiver.writer.stats
    return stats.records, seconds, f"{stats.files} files, {stats.bytes / 1e6:.1f} MB"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--views", type=int, default=200_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with broker() as bootstrap, EmbeddedS3() as s3:
        settings = Settings(
            broker=bootstrap,
            partitions=4,
            archive_flush_interval=timedelta(minutes=5),
        )
        create_topics(settings)
        posts, views = generate(5_000, args.views, 50_000)
        produce(bootstrap, encode(posts + views))
        ends = ends_of(bootstrap)
        total = sum(ends.values())
        print(f"{total:,} records on {len(ends)} partitions; files of up to 50,000 records")
        for run in range(args.runs):
            count, seconds = bare_consume(bootstrap, ends)
            print(f"run {run + 1} consume          {rate(count, seconds)}")
            records, seconds, files = archive(settings, InMemoryObjectStore(), ends)
            print(f"run {run + 1} archive (memory) {rate(records, seconds)}  {files}")
            bucket = f"bench-{uuid.uuid4().hex[:8]}"
            store = S3ObjectStore(
                bucket, endpoint_url=s3.endpoint_url, credentials=s3.credentials, create_bucket=True
            )
            records, seconds, files = archive(settings, store, ends)
            print(f"run {run + 1} archive (S3)     {rate(records, seconds)}  {files}")
            assert records == total, f"archived {records} of {total}"


if __name__ == "__main__":
    main()
