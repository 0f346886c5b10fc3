"""View throughput: the storystream engine end to end vs raw loops, naive Faust and Quix Streams.

    python -m bench.views [--views 200000 --stories 5000] [--quick] [--only NAME ...] [--profile]
                          [--brokers tansu,kafka]

Each broker of `--brokers` in turn (the embedded Tansu and a single-node Apache Kafka by default;
STORYSTREAM_BROKER replaces them), one generated input: on each, the stories are posted first,
then the views (Avro, Confluent wire format) are published once to `story-viewed` and every
contender reads that topic with its own consumer (group), one after the other. Each
is timed from its first view record received to its last view processed, by counting records
(the embedded broker's high watermarks are wrong after batched produces), so group joins and
startup are left out alike.

storystream's engine runs in a thread of this process: a first run processes the posts, then
the views are published and a second run over the same state directory is timed, to the
commit of the batch holding the last view (its outputs to `story-view-counts` and
`story-viewers`, forwards and changelog acknowledged, checkpoints and RocksDB written: stricter
than the other contenders' last record processed, their changelog writes still in flight). Its
note adds when the trays stage (same thread) had committed every StorySeen the views forwarded
(the seen marks behind a tray's `has_unseen`), and the rate of views the worker keeps up with,
counting that work too.

`--profile` runs storystream's second run (the views, then the trays stage taking their
StorySeen forwards) under cProfile and prints the hotspots (the rate it prints is then the
profiled one); `--only storystream --profile` does just that.
"""

from __future__ import annotations

import argparse
import bisect
import cProfile
import gc
import itertools
import json
import os
import pstats
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from confluent_kafka import Producer

from bench import views_kstreams
from bench.harness import broker, brokers_argument, write_json
from bench.views_baselines import ceiling, raw_rocksdict
from streams.kafka.admin import create_topics
from streams.kafka.clients import producer_config
from streams.publish.publisher import chunked, encode_chunk
from streams.runtime.metrics import Counter
from streams.settings import Settings
from streams.worker.build import build_engine

PARTITIONS = 4
CONTENDERS = ("ceiling", "rocksdict", "storystream", "kstreams", "quix", "faust")
CAP_SECONDS = 120.0  # per framework contender
TARGET_RATE = 50_000
Event = dict[str, Any]  # a JSON line of the contract, before validation
NAMES = {
    "faust": "naive Faust (count Table, rocksdb)",
    "quix": "Quix Streams (count+HLL, RocksDB)",
}


@dataclass
class Result:
    key: str  # one of CONTENDERS
    name: str
    count: int
    seconds: float
    note: str = ""
    cpu: float = 0.0  # CPU seconds of the timed work (what `per_core` divides by)
    process_cpu: float = 0.0  # the whole process's (every thread's) over the same span
    jit_cpu: float = 0.0  # of which a JVM's JIT compiler threads

    @property
    def rate(self) -> float:
        return self.count / self.seconds if self.seconds > 0 else 0.0

    @staticmethod
    def per_core(count: int, cpu: float) -> float:
        """Records per CPU second."""
        return count / cpu if cpu > 0 else 0.0


def _iso(value: datetime) -> str:
    return value.isoformat(timespec="milliseconds").replace("+00:00", "Z")


# -- input ----------------------------------------------------------------------------------
def generate(
    stories: int, views: int, users: int, seed: int = 7
) -> tuple[list[Event], list[Event]]:
    """Posts (live now, expiring in a week) and views over the last hour, in time order.

    Story popularity is Zipf-like (s=0.8), user activity milder (s=0.5); one view in five is a
    repeat by someone who already viewed that story.
    """
    rng = random.Random(seed)
    now = datetime.now(UTC).replace(microsecond=0)
    created = now - timedelta(hours=1)
    expires = now + timedelta(days=7)
    posts = [
        {
            "type": "story_posted",
            "story_id": f"story-{i}",
            "author_id": f"author-{i % 2000}",
            "created_at": _iso(created),
            "expires_at": _iso(expires),
            "audience": "followers",
            "media": [
                {
                    "name": "1080",
                    "url": f"https://cdn.example/story-{i}.jpg",
                    "width": 1080,
                    "height": 1920,
                    "content_type": "image/jpeg",
                }
            ],
        }
        for i in range(stories)
    ]
    story_cum = list(itertools.accumulate(1 / (i + 1) ** 0.8 for i in range(stories)))
    user_cum = list(itertools.accumulate(1 / (i + 1) ** 0.5 for i in range(users)))
    story_order = rng.sample(range(stories), stories)  # popularity independent of the id
    user_order = rng.sample(range(users), users)
    viewers: list[list[str]] = [[] for _ in range(stories)]
    span_ms = 3_600_000
    out = []
    for i in range(views):
        s = story_order[bisect.bisect(story_cum, rng.random() * story_cum[-1])]
        previous = viewers[s]
        if previous and rng.random() < 0.2:
            viewer = rng.choice(previous)
        else:
            viewer = f"user-{user_order[bisect.bisect(user_cum, rng.random() * user_cum[-1])]}"
            previous.append(viewer)
        at = created + timedelta(milliseconds=i * span_ms // views)
        out.append(
            {
                "type": "story_viewed",
                "story_id": f"story-{s}",
                "viewer_id": viewer,
                "viewed_at": _iso(at),
            }
        )
    return posts, out


def encode(events: list[Event]) -> list[tuple[str, bytes, bytes, int]]:
    """Validated and Avro-encoded exactly as `storystream publish` does it."""
    lines = [(i + 1, json.dumps(e).encode()) for i, e in enumerate(events)]
    records = []
    for chunk in chunked(iter(lines)):
        encoded, invalid = encode_chunk(chunk, timedelta(hours=24), None)
        assert not invalid, invalid[:3]
        records.extend(encoded)
    return records


def produce(bootstrap: str, records: list[tuple[str, bytes, bytes, int]]) -> float:
    producer = Producer(producer_config(bootstrap))
    started = time.perf_counter()
    for topic, key, value, timestamp in records:
        while True:
            try:
                producer.produce(topic, value, key, timestamp=timestamp)
                break
            except BufferError:
                producer.poll(0.05)
    remaining = producer.flush(300)
    assert remaining == 0, f"{remaining} undelivered"
    seconds = time.perf_counter() - started
    del producer  # closed now, not when the broker is gone
    return seconds


# -- storystream ----------------------------------------------------------------------------
class EngineRun:
    """The engine in a thread of this process (optionally under cProfile); `first_views` is
    when the views stage was first handed records (a wrapper around its handler)."""

    def __init__(self, settings: Settings, profile: cProfile.Profile | None = None) -> None:
        self.engine = build_engine(settings, lambda: datetime.now(UTC), "bench")
        self.failure: BaseException | None = None
        self.first_views = 0.0
        self.first_views_cpu = 0.0  # the engine thread's CPU time then
        self.first_views_process_cpu = 0.0  # and the process's (librdkafka, RocksDB threads too)
        self._watch(self.engine.topology.stage_of("story-viewed").handler)
        self._durable: dict[str, float] = {}  # what `processed` counted, as of the last commit
        self._watch_commits()
        self._profile = profile
        self._thread = threading.Thread(target=self._run, name="engine", daemon=True)
        self._thread.start()

    def _watch(self, handler: Any) -> None:
        handle = handler.handle

        def timed(pctx: Any, records: Any) -> None:
            if not self.first_views:
                self.first_views = time.perf_counter()
                self.first_views_cpu = time.thread_time()
                self.first_views_process_cpu = time.process_time()
            handle(pctx, records)

        handler.handle = timed

    def _watch_commits(self) -> None:
        """Count what each batch commit made durable: the engine handles a batch (counted as
        processed), then commits it (outputs, forwards and changelog acknowledged, checkpoints,
        RocksDB written, offsets committed)."""
        processed = self.engine.metrics.processed

        def committed() -> None:  # in the engine thread, before the next batch starts
            self._durable = processed.values()

        self.engine._on_commit = committed

    def _run(self) -> None:
        try:
            if self._profile is not None:
                self._profile.runcall(self.engine.run)
            else:
                self.engine.run()
        except BaseException as exc:  # reported by wait()
            self.failure = exc

    def cpu_seconds(self) -> float:
        """The engine thread's CPU time so far (read from another thread)."""
        assert self._thread.ident is not None
        return time.clock_gettime(time.pthread_getcpuclockid(self._thread.ident))

    def processed(self, topic: str) -> int:
        return int(self.engine.metrics.processed.value(topic))

    def durable(self, topic: str) -> int:
        return int(self._durable.get(topic, 0))

    def wait(self, topic: str, expected: int, timeout: float) -> float:
        """Seconds until `expected` records of `topic` are processed and committed (raises on
        timeout)."""
        started = time.perf_counter()
        deadline = started + timeout
        while self.durable(topic) < expected:
            if self.failure is not None or not self._thread.is_alive():
                raise RuntimeError(f"engine stopped: {self.failure!r}")
            if time.perf_counter() > deadline:
                raise TimeoutError(f"{topic}: {self.durable(topic)} of {expected} after {timeout}s")
            time.sleep(0.005)
        return time.perf_counter() - started

    def stop(self) -> None:
        self.engine.stop()
        self._thread.join(60)
        gc.collect()  # the engine's producers close now, not after the broker is gone


def prepare_storystream(settings: Settings, stories: int) -> None:
    """First run: the posts processed into the state directory, then stopped."""
    run = EngineRun(settings)
    try:
        run.wait("story-posted", stories, 180)
    finally:
        run.stop()


def run_storystream(settings: Settings, views: int, seen: int, profile: bool) -> Result:
    """Second run over the same state: timed from its first view handed to the views stage
    to the commit of its last view (and, in the note, from its partition assignment); then,
    outside the rate, until the trays stage has committed the `seen` StorySeen forwards."""
    profiler = cProfile.Profile() if profile else None
    launched = time.perf_counter()
    run = EngineRun(settings, profiler)
    tray_topic = f"{settings.app_id}-stage-tray"
    try:
        if not run.engine.ready.wait(60):
            raise TimeoutError("engine not assigned within 60s")
        assigned = time.perf_counter()
        joined = assigned - launched
        run.wait("story-viewed", views, CAP_SECONDS * 2)
        done = time.perf_counter()
        cpu = run.cpu_seconds() - run.first_views_cpu
        process_cpu = time.process_time() - run.first_views_process_cpu
        seconds = done - run.first_views
        metrics = run.engine.metrics
        outputs = _counter(metrics.outputs)
        tray_then = run.processed(tray_topic)
        try:  # a profile covers this too: see the views and trays handlers' cumulative times
            through = seconds + run.wait(tray_topic, seen, 90)
            drained = (
                f"{through:.2f}s from the first view: with the trays' seen marks, the worker "
                f"keeps up with {views / through:,.0f} views/s"
            )
        except TimeoutError:
            drained = f"not within 90s more ({run.processed(tray_topic):,} of {seen:,})"
    finally:
        run.stop()
    rejected = _counter(metrics.rejected)
    note = (
        f"engine thread CPU {cpu:.2f}s for the views: {cpu / views * 1e6:.0f} us a view; "
        f"process CPU {process_cpu:.2f}s ({process_cpu / views * 1e6:.0f} us)\n      "
        f"joined+restored in {joined:.1f}s; from the assignment: {views / (done - assigned):,.0f}/s "
        f"({done - assigned:.2f}s)\n      outputs by the last view {outputs}; not applied "
        f"{rejected or 'none'}\n      StorySeen forwards taken by the trays stage: "
        f"{tray_then:,} by the last view, all {seen:,} after {drained}"
    )
    if profiler is not None:
        print_profile(profiler)
    name = "storystream engine" + (" (profiled)" if profile else "")
    return Result("storystream", name, views, seconds, note, cpu, process_cpu)


def _counter(counter: Counter) -> dict[str, int]:
    """A metrics counter's non-zero values by label."""
    return {label: int(value) for label, value in counter.values().items() if value}


def print_profile(profiler: cProfile.Profile, top: int = 35) -> None:
    print(f"\n-- cProfile of the engine thread: top {top} by cumulative time --")
    stats = pstats.Stats(profiler, stream=sys.stdout)
    profiler.dump_stats(os.environ.get("BENCH_PROFILE_OUT", "/tmp/storystream-views.prof"))
    stats.strip_dirs().sort_stats("cumulative").print_stats(top)
    print(f"-- top {top} by own (tottime) --")
    stats.sort_stats("tottime").print_stats(top)


# -- Faust and Quix (subprocesses) ---------------------------------------------------------
def run_framework(
    framework: str, bootstrap: str, tmp: Path, views: int, logs: Path | None = None
) -> Result:
    """Start `bench.views_baselines FRAMEWORK`, wait for its progress file to count every view
    (capped at CAP_SECONDS after its first record), stop it; rate over what it processed."""
    progress = tmp / f"{framework}.progress.json"
    log_path = (logs or tmp) / f"{framework}.log"
    data_dir = tmp / f"{framework}-data"
    cmd = [
        sys.executable,
        "-m",
        "bench.views_baselines",
        framework,
        "--broker",
        bootstrap,
        "--topic",
        "story-viewed",
        "--partitions",
        str(PARTITIONS),
        "--expected",
        str(views),
        "--progress",
        str(progress),
        "--data-dir",
        str(data_dir),
        "--app-id",
        f"bench-{framework}-{os.getpid()}",
    ]
    state: dict[str, Any] = {}
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=Path.cwd())
        launched, launched_wall = time.monotonic(), time.time()
        try:
            while True:
                if progress.exists():
                    try:
                        state = json.loads(progress.read_text())
                    except ValueError:
                        pass
                if state.get("count", 0) >= views:
                    break
                if proc.poll() is not None:
                    break
                first = state.get("first") or 0
                if first and time.time() - first > CAP_SECONDS:
                    break
                if not first and time.monotonic() - launched > 90:
                    break
                time.sleep(0.05)
        finally:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(20)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
    count = int(state.get("count", 0))
    name = NAMES[framework]
    if not count:
        tail = log_path.read_text(errors="replace")[-1500:]
        return Result(
            framework, name, 0, 0.0, f"did not run here (exit {proc.returncode}); log tail:\n{tail}"
        )
    seconds = max(state["last"] - state["first"], 1e-9)
    note = (
        f"first record {state['first'] - launched_wall:.1f}s after launch; timed from its "
        "first record to its last"
    )
    if count < views:
        note += f"; capped: {count:,} of {views:,} processed"
    return Result(framework, name, count, seconds, note)


# -- Kafka Streams (a JVM) ------------------------------------------------------------------
def run_kstreams(bootstrap: str, tmp: Path, views: int, logs: Path | None = None) -> list[Result]:
    """Kafka Streams' passes (`bench.views_kstreams`): cold, warm, warm on two stream threads;
    `kstreams` is the warm one-thread pass. Each is timed from its first view to the commit of
    the offsets covering its last (outputs and changelogs flushed before), as storystream is."""
    try:
        passes = views_kstreams.run(
            bootstrap,
            views,
            PARTITIONS,
            tmp / "kstreams-state",
            (logs or tmp) / "kstreams.log",
            f"bench-kstreams-{os.getpid()}",
            CAP_SECONDS,
        )
    except views_kstreams.Unavailable as exc:
        return [Result("kstreams", "Kafka Streams", 0, 0.0, f"skipped: {exc}")]
    results = []
    compared = views_kstreams.compare_counts(bootstrap, PARTITIONS)
    for p in passes:
        warmth = "warm" if p.warm else "cold JIT"
        key = "kstreams-cold" if not p.warm else "kstreams" if p.threads == 1 else "kstreams-2t"
        note = (
            f"{p.status}; to the last view processed {p.count / max(p.seconds, 1e-9):,.0f}/s; "
            f"JVM process CPU {p.process_cpu_committed:.2f}s "
            f"({p.process_cpu_committed / max(p.count, 1) * 1e6:.0f} us a view), stream "
            f"thread(s) {p.stream_threads_cpu_committed:.2f}s "
            f"({p.stream_threads_cpu_committed / max(p.count, 1) * 1e6:.0f} us); JIT compiling "
            f"{p.jit_cpu:.2f}s of the process's\n      "
            f"JVM CPU by thread (s): {p.top_threads()}\n      "
            f"first view {p.first_after_launch:.1f}s after the pass started; outputs "
            f"{p.outputs}; not applied {p.rejected or 'none'}"
            + (f"\n      {compared}" if p is passes[-1] else "")
        )
        results.append(
            Result(
                key,
                f"Kafka Streams ({p.threads} thread{'s' if p.threads > 1 else ''}, {warmth})",
                p.count,
                p.seconds_committed,
                note,
                p.stream_threads_cpu_committed,
                p.process_cpu_committed,
                p.jit_cpu,
            )
        )
    return results


# -- main -----------------------------------------------------------------------------------
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--views", type=int, default=200_000)
    parser.add_argument("--stories", type=int, default=5_000)
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--quick", action="store_true", help="20,000 views over 500 stories")
    parser.add_argument("--only", nargs="+", choices=CONTENDERS, default=list(CONTENDERS))
    parser.add_argument("--profile", action="store_true", help="cProfile storystream's second run")
    parser.add_argument("--logs", type=Path, help="keep the Faust and Quix logs in this folder")
    parser.add_argument("--json", type=Path, help="write the results here for bench.report")
    parser.add_argument(
        "--brokers",
        type=brokers_argument,
        default="tansu,kafka",
        help="brokers to run every contender on, one after the other (default tansu,kafka; "
        "kafka needs Java 17+ and Maven)",
    )
    args = parser.parse_args()
    if args.quick:
        args.views, args.stories, args.users = 20_000, 500, 10_000
    bench_started = time.perf_counter()

    posts, views = generate(args.stories, args.views, args.users)
    post_records, view_records = encode(posts), encode(views)
    unique = len({(v["story_id"], v["viewer_id"]) for v in views})
    print(
        f"{args.views:,} views of {args.stories:,} stories by up to {args.users:,} users "
        f"({unique:,} distinct story/viewer pairs, {args.views - unique:,} repeat views); "
        f"{os.cpu_count()} cores"
    )

    by_broker: dict[str, list[Result]] = {}
    for impl in args.brokers:
        print(f"\n== broker: {impl}", flush=True)
        by_broker[impl] = run_on(impl, args, post_records, view_records, unique)
    for impl, results in by_broker.items():
        print(f"\n== {impl}")
        report(results)
    if len(by_broker) > 1:
        print("\nsame run, by broker (events/s):")
        for key in args.only:
            rates = [
                f"{impl} {r.rate:,.0f}" if r.count else f"{impl} n/a"
                for impl, results in by_broker.items()
                for r in results
                if r.key == key
            ]
            print(f"  {key:<12} " + ", ".join(rates))
    print(f"bench wall time {time.perf_counter() - bench_started:.0f}s")
    write_json(
        args.json,
        {
            "views": args.views,
            "stories": args.stories,
            "users": args.users,
            "brokers": {
                impl: [{**asdict(r), "rate": r.rate} for r in results]
                for impl, results in by_broker.items()
            },
        },
    )


def run_on(
    impl: str,
    args: argparse.Namespace,
    post_records: list[tuple[str, bytes, bytes, int]],
    view_records: list[tuple[str, bytes, bytes, int]],
    unique: int,
) -> list[Result]:
    """Every contender of `args.only` on a fresh broker of kind `impl`."""
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="bench-views-") as tmp_name, broker(impl) as bootstrap:
        tmp = Path(tmp_name)
        settings = Settings(broker=bootstrap, data_dir=tmp / "storystream", partitions=PARTITIONS)
        create_topics(settings)
        produce(bootstrap, post_records)
        if "storystream" in args.only:
            started = time.perf_counter()
            prepare_storystream(settings, args.stories)
            print(
                f"storystream: {args.stories:,} posts processed in a first run "
                f"({time.perf_counter() - started:.1f}s incl. group join)"
            )
        seconds = produce(bootstrap, view_records)
        print(
            f"published {len(view_records):,} views in {seconds:.2f}s "
            f"({len(view_records) / seconds:,.0f}/s)"
        )

        for name in args.only:
            if name == "kstreams":
                found = run_kstreams(bootstrap, tmp, args.views, args.logs)
                for result in found[:-1]:
                    results.append(result)
                    print_result(result)
                result = found[-1]
            elif name == "ceiling":
                count, secs, counts = ceiling(bootstrap, "story-viewed", PARTITIONS, args.views)
                assert sum(counts.values()) == count
                result = Result(name, "ceiling: consume+decode+dict", count, secs)
            elif name == "rocksdict":
                count, secs = raw_rocksdict(
                    bootstrap, "story-viewed", PARTITIONS, args.views, tmp / "raw-rocksdict"
                )
                result = Result(name, "raw + rocksdict get/put", count, secs)
            elif name == "storystream":
                result = run_storystream(settings, args.views, unique, args.profile)
                gc.collect()
            else:
                result = run_framework(name, bootstrap, tmp, args.views, args.logs)
            results.append(result)
            print_result(result)
        shutil.rmtree(tmp / "raw-rocksdict", ignore_errors=True)

    return results


def print_result(result: Result) -> None:
    print(
        f"  {result.name:<38} {result.rate:>10,.0f}/s  ({result.count:,} in "
        f"{result.seconds:.2f}s)" + (f"\n      {result.note}" if result.note else ""),
        flush=True,
    )


def report(results: list[Result]) -> None:
    by_key = {r.key: r for r in results}
    top = by_key.get("ceiling")
    print(f"\n{'contender':<40} {'events/s':>10}  {'vs ceiling':>10}")
    for r in results:
        ratio = f"{r.rate / top.rate:.2f}" if top and r.rate else "-"
        shown = f"{r.rate:,.0f}" if r.count else "n/a"
        print(f"{r.name:<40} {shown:>10}  {ratio:>10}")
    ours = by_key.get("storystream")
    if ours:
        faust, quix = by_key.get("faust"), by_key.get("quix")
        if faust and faust.rate:
            x = ours.rate / faust.rate
            print(
                f"storystream / naive Faust: {x:.1f}x  (target >= 10x: "
                f"{'met' if x >= 10 else 'not met'})"
            )
        if quix and quix.rate:
            x = ours.rate / quix.rate
            print(
                f"storystream / Quix Streams: {x:.2f}x  (target ahead: "
                f"{'met' if x > 1 else 'not met'})"
            )
        for peer in (by_key.get(k) for k in ("kstreams-cold", "kstreams", "kstreams-2t")):
            if peer and peer.rate:
                report_peer(ours, peer)
        print(
            f"storystream absolute: {ours.rate:,.0f}/s  (target {TARGET_RATE:,}/s: "
            f"{'met' if ours.rate >= TARGET_RATE else 'not met'})"
        )


def report_peer(ours: Result, peer: Result) -> None:
    """storystream's ratio to a Kafka Streams pass: throughput, and views per CPU second (the
    engine thread against the JVM process, and against it less its JIT compiling; process
    against process; thread(s) against thread(s))."""
    ours_thread = Result.per_core(ours.count, ours.cpu)
    ours_process = Result.per_core(ours.count, ours.process_cpu)
    jvm = Result.per_core(peer.count, peer.process_cpu)
    jvm_compiled = Result.per_core(peer.count, peer.process_cpu - peer.jit_cpu)
    streams = Result.per_core(peer.count, peer.cpu)
    print(
        f"storystream / {peer.name}: {ours.rate / peer.rate:.2f}x throughput; per core "
        f"{ours_thread / jvm:.2f}x (engine thread vs JVM process), {ours_thread / jvm_compiled:.2f}x"
        f" (vs the JVM less JIT compiling), {ours_process / jvm:.2f}x (process vs process), "
        f"{ours_thread / streams:.2f}x (engine thread vs stream thread(s))"
    )


if __name__ == "__main__":
    main()
