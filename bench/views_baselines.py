"""Baselines for `bench.views`: raw confluent-kafka loops, a naive Faust app, a Quix Streams app.

The raw loops run in the caller's process (`ceiling`, `raw_rocksdict`); Faust and Quix run as
`python -m bench.views_baselines {faust,quix} ...` subprocesses that report their progress to
a JSON file (`{"count", "first", "last"}`, wall-clock seconds) every few thousand records, so
the bench can tell when they have processed every view without trusting end offsets.
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import fastavro

from schemas.avro import current_schemas

HEADER = 5  # Confluent wire format: magic byte and 4-byte schema id
PROGRESS_EVERY = 2000


def viewed_schema() -> Any:
    """The parsed StoryViewed writer schema (what the bench published with)."""
    return fastavro.parse_schema(current_schemas()["StoryViewed"], _force=True)


class Progress:
    """Counts processed records and rewrites the progress file now and then (atomically)."""

    def __init__(self, path: Path, expected: int) -> None:
        self.path, self.expected = path, expected
        self.count = 0
        self.first = 0.0
        self.last = 0.0

    def tick(self, amount: int = 1) -> bool:
        """Count `amount` records; True once every expected record is counted."""
        now = time.time()
        if not self.count:
            self.first = now
        self.count += amount
        self.last = now
        done = self.count >= self.expected
        if done or self.count % PROGRESS_EVERY < amount:
            self.write()
        return done

    def write(self) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"count": self.count, "first": self.first, "last": self.last}))
        os.replace(tmp, self.path)


# -- raw loops (in the bench process) ------------------------------------------------------
def _reader(bootstrap: str, topic: str, partitions: int) -> Any:
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"bench-raw-{time.time_ns()}",
            "enable.auto.commit": False,
            "fetch.wait.max.ms": 50,
        }
    )
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
    return consumer


def ceiling(
    bootstrap: str, topic: str, partitions: int, expected: int, timeout: float = 120.0
) -> tuple[int, float, dict[str, int]]:
    """Consume + schemaless decode + a dict count per story: (records, seconds from the first
    record to the last, counts)."""
    schema = viewed_schema()
    reader: Callable[..., Any] = fastavro.schemaless_reader
    counts: dict[str, int] = {}
    consumer = _reader(bootstrap, topic, partitions)
    seen = 0
    started = 0.0
    deadline = time.perf_counter() + timeout
    try:
        while seen < expected and time.perf_counter() < deadline:
            for msg in consumer.consume(10_000, timeout=0.1):
                if msg.error() is not None:
                    continue
                if not seen:
                    started = time.perf_counter()
                value = reader(io.BytesIO(msg.value()[HEADER:]), schema)
                story = value["story_id"]
                counts[story] = counts.get(story, 0) + 1
                seen += 1
        return seen, time.perf_counter() - started, counts
    finally:
        consumer.close()


def raw_rocksdict(
    bootstrap: str, topic: str, partitions: int, expected: int, path: Path, timeout: float = 120.0
) -> tuple[int, float]:
    """Same as `ceiling`, with each record's count read from and written to RocksDB."""
    from rocksdict import Options, Rdict

    schema = viewed_schema()
    reader: Callable[..., Any] = fastavro.schemaless_reader
    options = Options(raw_mode=True)
    options.create_if_missing(True)
    db = Rdict(str(path), options)
    consumer = _reader(bootstrap, topic, partitions)
    seen = 0
    started = 0.0
    deadline = time.perf_counter() + timeout
    try:
        while seen < expected and time.perf_counter() < deadline:
            for msg in consumer.consume(10_000, timeout=0.1):
                if msg.error() is not None:
                    continue
                if not seen:
                    started = time.perf_counter()
                value = reader(io.BytesIO(msg.value()[HEADER:]), schema)
                key = value["story_id"].encode()
                old = db.get(key)
                db.put(
                    key,
                    (int.from_bytes(old, "big") + 1 if old is not None else 1).to_bytes(8, "big"),
                )
                seen += 1
        return seen, time.perf_counter() - started
    finally:
        consumer.close()
        db.close()


# -- naive Faust (subprocess) ----------------------------------------------------------------
def run_faust(args: argparse.Namespace) -> None:
    """An agent per event over the Avro bytes, a count Table per story (RocksDB, changelog)."""
    import faust

    logging.getLogger("aiokafka").setLevel(logging.WARNING)
    schema = viewed_schema()
    reader: Callable[..., Any] = fastavro.schemaless_reader
    progress = Progress(Path(args.progress), args.expected)
    app = faust.App(
        args.app_id,
        broker=f"kafka://{args.broker}",
        store=args.store,
        datadir=args.data_dir,
        topic_partitions=args.partitions,
        broker_session_timeout=6,
        broker_rebalance_timeout=6,
        broker_heartbeat_interval=1,
        web_enabled=False,
        autodiscover=False,
    )
    views = app.topic(
        args.topic,
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
        partitions=args.partitions,
    )
    counts = app.Table("view-counts", default=int, partitions=args.partitions)

    @app.agent(views)
    async def count_views(stream: Any) -> None:
        async for value in stream:
            event = reader(io.BytesIO(value[HEADER:]), schema)
            counts[event["story_id"]] += 1
            progress.tick()

    worker = faust.Worker(app, loglevel="WARNING", quiet=True)
    worker.execute_from_commandline()


# -- Quix Streams (subprocess) --------------------------------------------------------------
def run_quix(args: argparse.Namespace) -> None:
    """A stateful StreamingDataFrame: Avro decode, per-story count + HLL, counts produced."""
    import pickle

    from datasketches import hll_sketch
    from quixstreams import Application, State
    from quixstreams.state.rocksdb import RocksDBOptions

    schema = viewed_schema()
    reader: Callable[..., Any] = fastavro.schemaless_reader
    progress = Progress(Path(args.progress), args.expected)
    app: Application

    def processed(topic: str, partition: int, offset: int) -> None:
        if topic == args.topic and progress.tick():
            app.stop()

    app = Application(
        broker_address=args.broker,
        consumer_group=args.app_id,
        auto_offset_reset="earliest",
        state_dir=args.data_dir,
        rocksdb_options=RocksDBOptions(dumps=pickle.dumps, loads=pickle.loads),
        consumer_extra_config={
            "session.timeout.ms": 6000,
            "heartbeat.interval.ms": 1000,
            "fetch.wait.max.ms": 50,
        },
        auto_create_topics=True,
        use_changelog_topics=True,
        on_message_processed=processed,
        loglevel="WARNING",
    )
    views = app.topic(args.topic, key_deserializer="str", value_deserializer="bytes")
    out = app.topic(args.output, key_serializer="str", value_serializer="json")

    def decode(value: bytes) -> dict[str, Any]:
        event: dict[str, Any] = reader(io.BytesIO(value[HEADER:]), schema)
        return event

    def count(event: dict[str, Any], state: State[Any, Any]) -> dict[str, Any]:
        total = state.get("total", 0) + 1
        raw = state.get("hll")
        sketch = hll_sketch.deserialize(raw) if raw is not None else hll_sketch(12)
        sketch.update(event["viewer_id"])
        state.set("total", total)
        state.set("hll", sketch.serialize_compact())
        return {
            "story_id": event["story_id"],
            "total_views": total,
            "unique_viewers": round(sketch.get_estimate()),
        }

    sdf = app.dataframe(views)
    sdf = sdf.apply(decode).apply(count, stateful=True)
    sdf.to_topic(out)
    app.run()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("framework", choices=("faust", "quix"))
    parser.add_argument("--broker", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--output", default="bench-quix-view-counts")
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--expected", type=int, required=True)
    parser.add_argument("--progress", required=True)
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--app-id", required=True)
    parser.add_argument("--store", default="rocksdb://")
    args = parser.parse_args()
    (run_faust if args.framework == "faust" else run_quix)(args)


if __name__ == "__main__":
    main()
