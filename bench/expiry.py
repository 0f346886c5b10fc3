"""An expiry burst: N stories (default 100,000) expiring within the same minute while views
keep arriving.

    python -m bench.expiry [--stories 100000]

Prints the delay from each story's `expires_at` to its tombstone on `story-state` (median and
worst: the last tombstone), and the view throughput during the burst next to the throughput
measured just before it, in the same run, on one worker against the embedded broker.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from confluent_kafka import OFFSET_END, Consumer, TopicPartition

from bench.harness import WorkerProcess, broker, write_json
from schemas.types import millis
from streams.kafka.admin import create_topics
from streams.publish.publisher import publish_lines
from streams.settings import Settings
from streams.topics import STORY_STATE, stage_topic


def _iso(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


def _publish(bootstrap: str, events: list[dict[str, object]], processes: int = 2) -> None:
    lines = ((i + 1, json.dumps(e).encode()) for i, e in enumerate(events))
    summary = publish_lines(lines, bootstrap, processes=processes)
    assert summary.published == len(events), summary


class ViewFeeder(threading.Thread):
    """Publishes views to long-lived stories in rounds until stopped, keeping the worker busy
    without letting a backlog grow: a round goes out only while fewer than `ahead` published
    views are still unprocessed (a backlog would make the views measured during the burst
    the ones published before it)."""

    def __init__(
        self, bootstrap: str, stories: int, now: datetime, processed: Callable[[], float]
    ) -> None:
        super().__init__(daemon=True)
        self.bootstrap, self.stories, self.now = bootstrap, stories, now
        self.processed = processed
        self.published = 0
        self.stopping = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self._feed()
        except BaseException as exc:  # reported by main(), never silently lost
            self.error = exc

    def _feed(self, round_size: int = 10_000, ahead: int = 30_000) -> None:
        round_number = 0
        while not self.stopping.is_set():
            if self.published - self.processed() >= ahead:
                time.sleep(0.1)
                continue
            round_number += 1
            _publish(
                self.bootstrap,
                [
                    {
                        "type": "story_viewed",
                        "story_id": f"live{i % self.stories}",
                        "viewer_id": f"r{round_number}v{i}",
                        "viewed_at": _iso(self.now),
                    }
                    for i in range(round_size)
                ],
                processes=1,
            )
            self.published += round_size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stories", type=int, default=100_000)
    parser.add_argument(
        "--lead",
        type=float,
        default=0.0,
        help="seconds from the end of publishing to the first expiry "
        "(default: long enough for the worker to take the posts in)",
    )
    parser.add_argument("--keep", type=Path, help="keep the worker's data and log in this folder")
    parser.add_argument("--json", type=Path, help="write the results here for bench.report")
    args = parser.parse_args()
    with broker() as bootstrap, tempfile.TemporaryDirectory() as scratch:
        tmp = args.keep or scratch
        Path(tmp).mkdir(parents=True, exist_ok=True)
        settings = Settings(broker=bootstrap, partitions=4)
        create_topics(settings)
        worker = WorkerProcess(
            bootstrap,
            f"{tmp}/worker",
            STORYSTREAM_S3_ENDPOINT_URL="http://127.0.0.1:9",
            STORYSTREAM_EXPIRY_GRACE="1h",
        )
        try:
            worker.wait(worker.healthy, 120, "worker health")
            now = datetime.now(UTC).replace(microsecond=0)
            _publish(
                bootstrap,
                [
                    {
                        "type": "story_posted",
                        "story_id": f"live{i}",
                        "author_id": "a",
                        "created_at": _iso(now),
                    }
                    for i in range(1000)
                ],
            )
            author_stage = stage_topic(settings.app_id, "author")
            # Long enough for the worker to take the posts in through every stage and then
            # measure the baseline (about 3,000 posts/s here, all stages included).
            lead = args.lead or max(60.0, args.stories / 800 + 30)
            first_expiry = datetime.now(UTC) + timedelta(seconds=lead)
            posts = [
                {
                    "type": "story_posted",
                    "story_id": f"burst{i}",
                    "author_id": f"b{i % 500}",
                    "created_at": _iso(now),
                    "expires_at": _iso(
                        first_expiry + timedelta(milliseconds=(i * 60_000) // args.stories)
                    ),
                }
                for i in range(args.stories)
            ]
            _publish(bootstrap, posts)
            worker.wait(
                lambda: (
                    worker.metric("storystream_events_processed_total", "story-posted")
                    >= args.stories + 1000
                    and worker.metric("storystream_events_processed_total", author_stage)
                    >= args.stories + 1000
                ),
                600,
                "posts processed by the story and author stages",
            )
            spare = (first_expiry - datetime.now(UTC)).total_seconds()
            if spare < 25:
                raise SystemExit(
                    f"the posts took until {spare:.0f}s before the first expiry, too late for "
                    "a baseline before the burst: run again with a larger --lead"
                )
            expires = {
                f"burst{i}".encode(): millis(first_expiry) + (i * 60_000) // args.stories
                for i in range(args.stories)
            }
            states = Consumer(
                {
                    "bootstrap.servers": bootstrap,
                    "group.id": "bench-expiry",
                    "enable.auto.commit": False,
                }
            )
            states.assign([TopicPartition(STORY_STATE.name, p, OFFSET_END) for p in range(4)])
            states.consume(1, timeout=1.0)

            views = lambda: worker.metric("storystream_events_processed_total", "story-viewed")  # noqa: E731
            feeder = ViewFeeder(bootstrap, 1000, now, views)
            feeder.start()
            # Baseline: view throughput before the burst starts.
            time.sleep(max(0.0, (first_expiry - datetime.now(UTC)).total_seconds() - 25))
            base_start, base_count = time.monotonic(), views()
            time.sleep(15)
            baseline = (views() - base_count) / (time.monotonic() - base_start)

            delays: list[float] = []
            burst_start = burst_count = None
            deadline = time.monotonic() + 600
            while len(delays) < args.stories and time.monotonic() < deadline:
                if burst_start is None and datetime.now(UTC) >= first_expiry:
                    burst_start, burst_count = time.monotonic(), views()
                for msg in states.consume(10_000, timeout=0.5):
                    if msg.error() is None and msg.value() is None and msg.key() in expires:
                        delays.append((msg.timestamp()[1] - expires[msg.key()]) / 1000)
            burst_seconds = time.monotonic() - (burst_start or time.monotonic())
            during = (views() - (burst_count or 0)) / max(burst_seconds, 1e-9)
            feeder.stopping.set()
            if feeder.error is not None:
                raise feeder.error
            states.close()
        finally:
            worker.stop()
    if len(delays) < args.stories:
        raise SystemExit(f"only {len(delays)} of {args.stories} tombstones arrived")
    print(f"stories expiring within one minute: {args.stories:,}")
    print(
        f"expires_at -> tombstone: median {statistics.median(delays):.2f}s, "
        f"worst (last tombstone) {max(delays):.2f}s"
    )
    print(
        f"view throughput: {baseline:,.0f}/s before the burst, {during:,.0f}/s during it "
        f"(ratio {during / max(baseline, 1e-9):.2f})"
    )
    write_json(
        args.json,
        {
            "stories": args.stories,
            "delays": delays,
            "views_before": baseline,
            "views_during": during,
        },
    )


if __name__ == "__main__":
    main()
