"""CPU a view of the engine's views path, without a broker: where `bench.views` spends its time.

    python -m bench.views_engine [--views 200000 --stories 5000] [--profile] [--trays]

The same generated input as `bench.views`, Avro-encoded as `publish` does it, is handed to the
real engine (`build_engine`: its driver, handlers, RocksDB stores, changelog, outputs,
forwards) as the consumer would hand it: batches of up to 20,000 records of one partition. Each
batch is produced and committed as the engine's loop does it (outputs, forwards, changelog,
checkpoints, RocksDB), with a producer that counts what it is given instead of sending it (so
the figure leaves out librdkafka's cost of a produce call). Times are this thread's CPU (`time.thread_time`), the
fastest of `--repeat` runs over fresh state (other work on the machine slows a run, never
speeds it up).

With `--trays`, the tray stage is measured instead: the StorySeen forwards the views made (the
records the engine produced to the tray stage's topic, as it batched them) are handed to the
engine in turn, and the figure is its CPU per StorySeen.

Baseline, in the same run: the ceiling loop of `bench.views` (decode each record with fastavro
and count it in a dict), over the same records.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import pstats
import tempfile
import time
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import fastavro

from bench.views import encode, generate
from streams.kafka.partitioning import partition_for
from streams.runtime.collector import GC_THRESHOLDS
from streams.runtime.driver import Driver, PartitionState
from streams.runtime.durability import checkpoint_value, local_checkpoint
from streams.runtime.engine import Engine
from streams.runtime.records import InRecord
from streams.runtime.routing import Router
from streams.runtime.store import CHECKPOINT_KEY, PartitionStore
from streams.settings import Settings
from streams.topics import STORY_VIEWED
from streams.worker.build import build_engine

PARTITIONS = 4
BATCH = 20_000


class CountingProducer:
    """Stands in for confluent-kafka's Producer: counts records per topic, delivers at once;
    keeps the records produced to the topics of `keep`, as consumed records."""

    def __init__(self, keep: tuple[str, ...] = ()) -> None:
        self.records: dict[str, int] = defaultdict(int)
        self.kept: list[InRecord] = []
        self._keep = keep
        self._kept_offsets: dict[int, int] = defaultdict(int)
        self._offsets: dict[tuple[str, int], int] = defaultdict(int)

    def produce(
        self,
        topic: str,
        value: bytes | None = None,
        key: bytes | None = None,
        partition: int = -1,
        on_delivery: Any = None,
        **_: Any,
    ) -> None:
        self.records[topic] += 1
        if topic in self._keep:
            offset = self._kept_offsets[partition]
            self._kept_offsets[partition] += 1
            self.kept.append(InRecord(topic, partition, offset, key, value, 0))
        if on_delivery is not None and partition >= 0:
            offset = self._offsets[topic, partition]
            self._offsets[topic, partition] += 1
            on_delivery(None, _Delivered(topic, partition, offset))

    def flush(self, timeout: float = 0) -> int:
        return 0

    def poll(self, timeout: float = 0) -> int:
        return 0


class _Delivered:
    def __init__(self, topic: str, partition: int, offset: int) -> None:
        self._where = (topic, partition, offset)

    def topic(self) -> str:
        return self._where[0]

    def partition(self) -> int:
        return self._where[1]

    def offset(self) -> int:
        return self._where[2]


def as_records(encoded: list[tuple[str, bytes, bytes, int]]) -> list[InRecord]:
    """The encoded events as consumed records, numbered per topic partition."""
    offsets: dict[tuple[str, int], int] = defaultdict(int)
    records = []
    for topic, key, value, timestamp in encoded:
        partition = partition_for(key.decode(), PARTITIONS)
        offset = offsets[topic, partition]
        offsets[topic, partition] += 1
        records.append(InRecord(topic, partition, offset, key, value, timestamp))
    return records


def engine_over(state_dir: Path, keep: tuple[str, ...] = ()) -> tuple[Engine, CountingProducer]:
    # no broker is contacted: the engine never runs its consumer loop here
    settings = Settings(
        partitions=PARTITIONS, data_dir=state_dir, app_id="bench", broker="unused:9092"
    )
    engine = build_engine(settings, lambda: datetime.now(UTC), "bench", state_dir=state_dir)
    producer = CountingProducer(tuple(f"bench-stage-{stage}" for stage in keep))
    # what Engine.run sets up, but the consumer and the producers
    engine._producer = producer  # type: ignore[assignment]
    engine._router = Router(engine.topology, engine._registry, engine.metrics)
    engine._driver = Driver(engine.topology, engine._router, engine.policy, engine.metrics)
    for partition in range(PARTITIONS):
        engine._assigned[partition] = PartitionState(PartitionStore(state_dir / f"p{partition}"))
    return engine, producer


def _commit(engine: Engine, producer: CountingProducer, touched: set[int]) -> None:
    """A batch's end as Engine.run does it (at least once): forwards and changelog produced,
    each touched partition's checkpoint produced and its RocksDB written."""
    engine._produce_forwards_and_changelog()
    for partition, state in engine._assigned.items():
        if partition in touched or state.store.dirty:
            producer.produce(
                engine.topology.changelog,
                checkpoint_value(state.applied),
                CHECKPOINT_KEY,
                partition=partition,
            )
            state.store.flush(local_checkpoint(state.applied, -1))


def feed(engine: Engine, records: list[InRecord]) -> None:
    """Batches as the consumer gives them when a partition has a backlog: up to BATCH records
    of one partition (a fetch returns about a megabyte per partition), partitions in turn."""
    by_partition: dict[int, list[InRecord]] = defaultdict(list)
    for record in records:
        by_partition[record.partition].append(record)
    for start in range(0, max(len(r) for r in by_partition.values()), BATCH):
        for partition in sorted(by_partition):
            batch = by_partition[partition][start : start + BATCH]
            if batch:
                touched = engine._driver.process(
                    engine._assigned, batch, engine.clock(), between_runs=engine._between_runs
                )
                engine._between_runs()
                _commit(engine, engine._producer, touched)  # type: ignore[arg-type]


def ceiling(records: list[InRecord]) -> float:
    """CPU seconds of the ceiling loop: fastavro decode and a count per story in a dict."""
    schema = fastavro.parse_schema(
        fastavro.schema.load_schema(str(Path("schemas") / f"{STORY_VIEWED.record}.avsc"))
    )
    started = time.thread_time()
    counts: dict[str, int] = defaultdict(int)
    for record in records:
        value = fastavro.schemaless_reader(io.BytesIO(record.value[5:]), schema, None)
        counts[value["story_id"]] += 1
    return time.thread_time() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--views", type=int, default=200_000)
    parser.add_argument("--stories", type=int, default=5_000)
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--profile", action="store_true", help="cProfile the measured stage")
    parser.add_argument("--repeat", type=int, default=3, help="runs; the fastest is reported")
    parser.add_argument(
        "--trays", action="store_true", help="measure the tray stage on the views' forwards"
    )
    args = parser.parse_args()
    gc.set_threshold(*GC_THRESHOLDS)  # as Engine.run does

    posts, views = generate(args.stories, args.views, args.users)
    post_records = as_records(encode(posts))
    view_records = as_records(encode(views))
    runs = []
    for _ in range(args.repeat):
        with tempfile.TemporaryDirectory(prefix="bench-views-engine-") as tmp:
            engine, producer = engine_over(Path(tmp), keep=("tray",) if args.trays else ())
            feed(engine, post_records)
            measured = view_records
            if args.trays:
                feed(engine, view_records)
                measured = producer.kept
            producer.records.clear()
            profiler = cProfile.Profile() if args.profile else None
            started = time.thread_time()
            if profiler is not None:
                profiler.runcall(feed, engine, measured)
            else:
                feed(engine, measured)
            runs.append(time.thread_time() - started)
            forwarded = int(engine.metrics.processed.value("bench-stage-tray"))
            for assigned in engine._assigned.values():
                assigned.store.close()
    seconds = min(runs)
    base = min(ceiling(view_records) for _ in range(args.repeat))
    print(
        f"{len(view_records):,} views of {args.stories:,} stories, CPU of this thread "
        f"(fastest of {args.repeat} runs):"
    )
    if args.trays:
        print(
            f"  engine tray stage   {seconds / forwarded * 1e6:7.1f} us a StorySeen "
            f"({forwarded:,} forwards in {len(measured)} records)"
        )
    else:
        print(f"  engine views path   {seconds / len(view_records) * 1e6:7.1f} us a view")
    print(f"  ceiling loop        {base / len(view_records) * 1e6:7.1f} us a view  (baseline)")
    print(f"  ratio               {seconds / base:7.2f}x the ceiling loop's CPU")
    print(f"  records produced    {dict(producer.records)}")
    if profiler is not None:
        stats = pstats.Stats(profiler)
        stats.strip_dirs().sort_stats("tottime").print_stats(40)


if __name__ == "__main__":
    main()
