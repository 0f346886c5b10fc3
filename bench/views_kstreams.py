"""The Kafka Streams contender of `bench.views`: builds bench/kstreams once, runs it in a JVM.

The Maven project (`bench/kstreams`) is built with `mvn -q package` when its jar is missing or
older than its sources, and run with the jar and its dependencies on the classpath. The JVM runs
the views topology in passes, one after the other, each a fresh application id and state
directory over the same input: a cold pass (JIT warming while it runs), then warm ones (one
stream thread, then two). Each pass prints one JSON line of figures (see `KafkaStreamsPass`).
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from infra.process import spawn, stop
from schemas.avro import current_schemas, latest

HEADER = 5  # Confluent wire format: magic byte and 4-byte schema id

PROJECT = Path(__file__).parent / "kstreams"
JAR = PROJECT / "target" / "kstreams-views.jar"
LIB = PROJECT / "target" / "lib"
HEAP = "-Xmx512m"
PASSES = (1, 1, 2)  # stream threads of each pass: cold, warm, warm with two threads
# storystream commits each batch (up to 20,000 records), Quix every 5 s, Faust every 2.8 s.
COMMIT_MS = int(os.environ.get("STORYSTREAM_BENCH_KSTREAMS_COMMIT_MS", "1000"))
MAIN = "storystream.bench.ViewsBench"


@dataclass
class KafkaStreamsPass:
    """One pass's figures, as the JVM printed them: wall seconds and CPU seconds from its first
    view to its last view processed, and to the commit of the offsets covering every view."""

    number: int
    threads: int
    status: str
    count: int
    seconds: float = 0.0
    seconds_committed: float = 0.0
    process_cpu: float = 0.0  # the JVM's utime+stime (/proc), every thread
    process_cpu_committed: float = 0.0
    stream_threads_cpu: float = 0.0
    stream_threads_cpu_committed: float = 0.0
    first_after_launch: float = 0.0
    outputs: dict[str, int] = field(default_factory=dict)
    cpu_by_thread: dict[str, float] = field(default_factory=dict)  # to the commit
    rejected: dict[str, int] = field(default_factory=dict)

    @property
    def warm(self) -> bool:
        return self.number > 1

    @property
    def jit_cpu(self) -> float:
        """CPU seconds the JIT compiler threads took (to the commit)."""
        return sum(v for k, v in self.cpu_by_thread.items() if "CompilerThre" in k)

    def top_threads(self, top: int = 6) -> str:
        """Where the JVM's CPU went, the biggest first (seconds)."""
        ranked = sorted(
            (
                (k, v)
                for k, v in self.cpu_by_thread.items()
                if "(total)" not in k and "/proc" not in k
            ),
            key=lambda kv: -kv[1],
        )
        return ", ".join(f"{k} {v:.2f}" for k, v in ranked[:top])

    @classmethod
    def of(cls, line: dict[str, Any]) -> KafkaStreamsPass:
        return cls(
            number=int(line["pass"]),
            threads=int(line["threads"]),
            status=str(line["status"]),
            count=int(line["count"]),
            seconds=float(line.get("seconds", 0.0)),
            seconds_committed=float(line.get("seconds_committed", 0.0)),
            process_cpu=float(line.get("process_cpu", 0.0)),
            process_cpu_committed=float(line.get("process_cpu_committed", 0.0)),
            stream_threads_cpu=float(line.get("stream_threads_cpu", 0.0)),
            stream_threads_cpu_committed=float(line.get("stream_threads_cpu_committed", 0.0)),
            first_after_launch=float(line.get("first_after_launch", 0.0)),
            outputs={k: int(v) for k, v in line.get("outputs", {}).items()},
            cpu_by_thread={k: float(v) for k, v in line.get("cpu_by_thread", {}).items()},
            rejected={
                k: int(line[k]) for k in ("invalid", "unknown_story", "skipped") if line.get(k)
            },
        )


class Unavailable(RuntimeError):
    """The contender cannot run here (no JDK or Maven, a failed build); the message says why."""


def check_layouts() -> None:
    """The fields the Java decoder reads by hand are where it expects them."""
    schemas = current_schemas()
    viewed = [f["name"] for f in schemas["StoryViewed"]["fields"]]
    if viewed != ["event_id", "type", "story_id", "viewer_id", "viewed_at"]:
        raise Unavailable(f"StoryViewed fields changed ({viewed}): update Records.View")
    posted = [f["name"] for f in schemas["StoryPosted"]["fields"][:6]]
    if posted != ["event_id", "type", "story_id", "author_id", "created_at", "expires_at"]:
        raise Unavailable(f"StoryPosted's first fields changed ({posted}): update StoryInfo")


def check_broker(bootstrap: str) -> None:
    """Java clients can join a consumer group on this broker (not on the embedded one: it
    cannot decode their JoinGroup request, so Kafka Streams would wait for a group forever)."""
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": bootstrap})  # kept until the answer is read
    cluster_id = admin.describe_cluster(request_timeout=10).result(timeout=15).cluster_id or ""
    if cluster_id.startswith("tansu"):
        raise Unavailable(
            "the embedded broker (Tansu) cannot decode a Java client's JoinGroup request, so "
            "Kafka Streams never gets its partitions: run on Apache Kafka (STORYSTREAM_BROKER)"
        )


def build() -> Path:
    """The jar, built with `mvn -q package` unless it is newer than the project's sources."""
    for tool in ("java", "mvn"):
        if shutil.which(tool) is None:
            raise Unavailable(
                f"`{tool}` is not installed (a JDK 17+ and Maven build bench/kstreams)"
            )
    sources = [PROJECT / "pom.xml", *PROJECT.glob("src/**/*.java")]
    if (
        JAR.exists()
        and LIB.is_dir()
        and JAR.stat().st_mtime > max(p.stat().st_mtime for p in sources)
    ):
        return JAR
    started = time.perf_counter()
    done = subprocess.run(
        ["mvn", "-q", "package"], cwd=PROJECT, capture_output=True, text=True, timeout=900
    )
    if done.returncode != 0 or not JAR.exists():
        tail = (done.stdout + done.stderr)[-1500:]
        raise Unavailable(f"`mvn -q package` in {PROJECT} failed (exit {done.returncode}):\n{tail}")
    print(f"kstreams: built {JAR.name} in {time.perf_counter() - started:.0f}s", flush=True)
    return JAR


def run(
    bootstrap: str,
    views: int,
    partitions: int,
    state_dir: Path,
    log_path: Path,
    app_id: str,
    cap_seconds: float,
) -> list[KafkaStreamsPass]:
    """Build if needed, run every pass in one JVM, return their figures (raises Unavailable)."""
    check_layouts()
    check_broker(bootstrap)
    jar = build()
    cmd = [
        "java",
        HEAP,
        "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn",
        "-cp",
        f"{jar}:{LIB}/*",
        MAIN,
        "--broker",
        bootstrap,
        "--expected",
        str(views),
        "--passes",
        ",".join(str(threads) for threads in PASSES),
        "--partitions",
        str(partitions),
        "--commit-ms",
        str(COMMIT_MS),
        "--state-dir",
        str(state_dir),
        "--app-id",
        app_id,
        "--cap-seconds",
        str(cap_seconds),
        "--viewed-schema-id",
        str(latest("StoryViewed").schema_id),
        "--posted-schema-id",
        str(latest("StoryPosted").schema_id),
        "--viewer-schema-id",
        str(latest("StoryViewer").schema_id),
        "--count-schema-id",
        str(latest("ViewCount").schema_id),
    ]
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "wb") as log:
        proc = spawn(cmd, log=log)  # dies with the bench
        try:
            proc.wait(timeout=len(PASSES) * (cap_seconds + 180))
        finally:
            stop(proc, timeout=30)
    # One JSON line a pass (stdout), among the JVM's log lines (stderr).
    lines = log_path.read_text(errors="replace").splitlines()
    passes = [KafkaStreamsPass.of(json.loads(x)) for x in lines if x.startswith('{"pass"')]
    if not passes:
        tail = log_path.read_text(errors="replace")[-1500:]
        raise Unavailable(f"the JVM printed no pass (exit {proc.returncode}); log tail:\n{tail}")
    return passes


def _final_counts(bootstrap: str, topic: str, partitions: int) -> dict[str, tuple[int, int]]:
    """The last (unique_viewers, total_views) of every story on a ViewCount topic."""
    import fastavro
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    schema = fastavro.parse_schema(current_schemas()["ViewCount"], _force=True)
    reader: Callable[..., Any] = fastavro.schemaless_reader
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": "bench-compare", "enable.auto.commit": False}
    )
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
    counts: dict[str, tuple[int, int]] = {}
    quiet_since = time.monotonic()
    try:
        while time.monotonic() - quiet_since < 3:  # the topic is complete: its writers are done
            messages = consumer.consume(10_000, timeout=0.5)
            if messages:
                quiet_since = time.monotonic()
            for msg in messages:
                value, key = msg.value(), msg.key()
                if msg.error() is None and value is not None and key is not None:
                    record: dict[str, Any] = reader(io.BytesIO(value[HEADER:]), schema)
                    counts[key.decode()] = (record["unique_viewers"], record["total_views"])
    finally:
        consumer.close()
    return counts


def compare_counts(bootstrap: str, partitions: int, output_prefix: str = "kstreams-") -> str:
    """How Kafka Streams' final counts compare with storystream's (when storystream ran on this
    broker first): stories with equal (unique viewers, total views), and the others."""
    ours = _final_counts(bootstrap, "story-view-counts", partitions)
    if not ours:
        return "storystream's counts are not on this broker: not compared"
    theirs = _final_counts(bootstrap, f"{output_prefix}view-counts", partitions)
    differ = {k: (ours.get(k), theirs.get(k)) for k in ours.keys() | theirs.keys()}
    differ = {k: pair for k, pair in differ.items() if pair[0] != pair[1]}
    shown = ", ".join(f"{k}: {a} vs {b}" for k, (a, b) in sorted(differ.items())[:3])
    return (
        f"final (unique, total) equal to storystream's for {len(ours) - len(differ):,} of "
        f"{len(ours):,} stories" + (f"; differing: {shown}" if differ else "")
    )
