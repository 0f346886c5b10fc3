"""Fault tolerance end to end: a worker SIGKILLed mid-stream and a broker outage leave the
compacted outputs byte-identical to an undisturbed run of the same events."""

from __future__ import annotations

import json
import random
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from infra.broker import EmbeddedBroker
from infra.process import free_port
from streams.kafka.admin import create_topics
from streams.settings import Settings
from tests.integration.tcp_proxy import TcpProxy
from tests.integration.workers import SECRET, Worker, latest, publish, raw_latests, wait_for

pytestmark = pytest.mark.integration

Event = dict[str, Any]
COMPACTED = (
    "story-state",
    "story-trays",
    "story-view-counts",
    "story-viewers",
    "story-reaction-counts",
)


def _iso(value: datetime) -> str:
    return value.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def scenario(
    tag: str,
    *,
    chunks: int = 10,
    authors: int = 20,
    followers: int = 200,
    stories: int = 60,
    views: int = 3000,
    reactions: int = 1000,
    seed: int = 11,
) -> list[list[Event]]:
    """A deterministic social graph and story traffic, split into `chunks` in event-time order.

    The first chunk holds the follow graph (and close friends); every chunk posts its share of
    the stories, and views and reactions in a chunk only touch stories posted in earlier chunks,
    so every processing schedule sees each story before its traffic.
    """
    rng = random.Random(seed)
    base = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=30)
    author_ids = [f"a{i}-{tag}" for i in range(authors)]
    user_ids = [f"u{i}-{tag}" for i in range(followers)]
    out: list[list[Event]] = [[] for _ in range(chunks)]
    following: dict[str, list[str]] = {a: [] for a in author_ids}
    for user in user_ids:
        for author in rng.sample(author_ids, 5):
            following[author].append(user)
            out[0].append(
                {
                    "type": "user_followed",
                    "follower_id": user,
                    "followee_id": author,
                    "at": _iso(base - timedelta(minutes=10)),
                }
            )
    for author in author_ids[::2]:
        for friend in rng.sample(following[author], 3):
            out[0].append(
                {
                    "type": "close_friend_added",
                    "user_id": author,
                    "friend_id": friend,
                    "at": _iso(base - timedelta(minutes=9)),
                }
            )
    audiences = ("followers", "followers", "close_friends", "public")
    posted: list[tuple[str, str]] = []  # (story, author) posted in earlier chunks
    per_chunk = stories // chunks
    views_per_chunk = views // (chunks - 1)
    reactions_per_chunk = reactions // (chunks - 1)
    for c in range(chunks):
        at = base + timedelta(minutes=2 * c)
        events = out[c]
        if posted:
            for i in range(views_per_chunk):
                story, author = rng.choice(posted)
                viewer = author if rng.random() < 0.03 else rng.choice(user_ids)
                events.append(
                    {
                        "type": "story_viewed",
                        "story_id": story,
                        "viewer_id": viewer,
                        "viewed_at": _iso(at + timedelta(milliseconds=10 * i)),
                    }
                )
            for i in range(reactions_per_chunk):
                story, _ = rng.choice(posted)
                events.append(
                    {
                        "type": "story_reacted",
                        "story_id": story,
                        "user_id": rng.choice(user_ids),
                        "reaction": rng.choice(("like", "love", "fire", "wow")),
                        "reacted_at": _iso(at + timedelta(milliseconds=10 * i + 5)),
                    }
                )
        fresh = []
        for j in range(per_chunk):
            number = c * per_chunk + j
            story, author = f"s{number}-{tag}", author_ids[number % authors]
            events.append(
                {
                    "type": "story_posted",
                    "story_id": story,
                    "author_id": author,
                    "created_at": _iso(at + timedelta(seconds=60 + j)),
                    "audience": audiences[number % len(audiences)],
                    "media": [
                        {
                            "name": "1080",
                            "url": f"https://cdn.example/{story}.jpg",
                            "width": 1080,
                            "height": 1920,
                            "content_type": "image/jpeg",
                        }
                    ],
                }
            )
            fresh.append((story, author))
        posted.extend(fresh)
    return out


def expected_total_views(chunks: list[list[Event]]) -> dict[str, int]:
    """total_views per story: every view but the author's own."""
    authors = {
        e["story_id"]: e["author_id"] for c in chunks for e in c if e["type"] == "story_posted"
    }
    totals = dict.fromkeys(authors, 0)
    for event in (e for c in chunks for e in c if e["type"] == "story_viewed"):
        if event["viewer_id"] != authors[event["story_id"]]:
            totals[event["story_id"]] += 1
    return {story: total for story, total in totals.items() if total}


def views_of(
    broker: str, prefixes: tuple[str, ...], tag: str, topics: tuple[str, ...]
) -> list[dict[str, dict]]:
    """Byte-exact latest-per-key views of `{prefix}{topic}` for each prefix, only the keys of
    this test (all topics read together)."""
    read = raw_latests(broker, [prefix + topic for prefix in prefixes for topic in topics])
    return [
        {
            topic: {k: v for k, v in read[prefix + topic].items() if tag.encode() in k}
            for topic in topics
        }
        for prefix in prefixes
    ]


def wait_equal(
    broker: str,
    prefixes: tuple[str, str],
    tag: str,
    topics: tuple[str, ...],
    stories: int,
    seconds: float,
) -> tuple[dict[str, dict], dict[str, dict]]:
    """Poll both groups' views until they are equal, complete, and stable across two polls."""
    deadline = time.monotonic() + seconds
    previous: dict[str, dict] | None = None
    while True:
        left, right = views_of(broker, prefixes, tag, topics)
        complete = len(left["story-state"]) == stories
        if complete and left == right and left == previous:
            return left, right
        if time.monotonic() > deadline:
            return left, right
        previous = left if left == right else None
        time.sleep(1)


def assert_same(left: dict[str, dict], right: dict[str, dict]) -> None:
    for topic in left:
        a, b = left[topic], right[topic]
        only_a, only_b = sorted(set(a) - set(b))[:5], sorted(set(b) - set(a))[:5]
        differ = sorted(k for k in set(a) & set(b) if a[k] != b[k])[:5]
        assert a == b, (
            f"{topic}: only in the disturbed run {only_a}, only undisturbed "
            f"{only_b}, different values for {differ}"
        )
        assert a, f"{topic}: empty"


def _env(broker: str, app_id: str, prefix: str = "") -> dict[str, str]:
    env = {
        "STORYSTREAM_BROKER": broker,
        "STORYSTREAM_APP_ID": app_id,
        "STORYSTREAM_API_SECRET": SECRET,
        "STORYSTREAM_STORY_TTL": "1h",
        "STORYSTREAM_PARTITIONS": "4",
        "STORYSTREAM_S3_ENDPOINT_URL": "http://127.0.0.1:9",  # no media in these tests
    }
    if prefix:
        env["STORYSTREAM_OUTPUT_PREFIX"] = prefix
    return env


def _log_tail(worker: Worker, lines: int = 40) -> str:
    path = worker.data_dir.with_suffix(".log")
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


# -- a worker SIGKILLed mid-stream ------------------------------------------------------------
def test_sigkilled_worker_matches_an_undisturbed_group(settings: Settings, tmp_path: Path) -> None:
    broker = settings.bootstrap()
    tag = uuid.uuid4().hex[:6]
    a_prefix, b_prefix = f"a-{tag}-", f"b-{tag}-"
    group_a = [Worker(tmp_path / f"a{i}", _env(broker, f"a-{tag}", a_prefix)) for i in range(2)]
    group_b = Worker(tmp_path / "b0", _env(broker, f"b-{tag}", b_prefix))
    everyone = [*group_a, group_b]
    try:
        wait_for(lambda: all(w.partitions() for w in everyone), 90, "both groups assigned")
        wait_for(lambda: len(group_b.partitions() or []) == 4, 30, "group B owns everything")
        chunks = scenario(tag)
        victim = group_a[0]
        for number, chunk in enumerate(chunks):
            publish(broker, chunk, env={"STORYSTREAM_STORY_TTL": "1h"})
            if number == 4:
                time.sleep(0.3)  # mid-batch, most likely
                victim.kill()
            if number == 6:
                victim.start()  # same port and data directory: its local RocksDB is reused
            time.sleep(0.7)
        wait_for(victim.partitions, 60, "the restarted worker rejoined")
        stories = sum(e["type"] == "story_posted" for c in chunks for e in c)
        disturbed, undisturbed = wait_equal(  # both groups first read what the broker holds
            broker, (a_prefix, b_prefix), tag, COMPACTED, stories, 120
        )
        assert_same(disturbed, undisturbed)
        counts = latest(broker, a_prefix + "story-view-counts")
        totals = {k: v["total_views"] for k, v in counts.items() if tag in k}
        assert totals == expected_total_views(chunks)  # no view lost or counted twice
        assert all(w.proc is not None and w.proc.poll() is None for w in everyone)
        assert "restored" in victim.data_dir.with_suffix(".log").read_text(errors="replace")
    finally:
        for worker in everyone:
            worker.stop()


# -- exactly_once: each batch one Kafka transaction ---------------------------------------------
def test_transactional_worker_matches_an_at_least_once_one(
    settings: Settings, tmp_path: Path
) -> None:
    # The embedded broker runs the transaction protocol but does not hide aborted records from
    # read_committed consumers, so this checks the transactional path end to end (and a
    # SIGKILL mid-transaction), not the isolation that only a real Kafka broker gives.
    broker = settings.bootstrap()
    tag = uuid.uuid4().hex[:6]
    a_prefix, b_prefix = f"x-{tag}-", f"y-{tag}-"
    env = {**_env(broker, f"x-{tag}", a_prefix), "STORYSTREAM_PROCESSING_GUARANTEE": "exactly_once"}
    transactional = Worker(tmp_path / "x0", env)
    plain = Worker(tmp_path / "y0", _env(broker, f"y-{tag}", b_prefix))
    try:
        for worker in (transactional, plain):
            wait_for(lambda w=worker: len(w.partitions() or []) == 4, 90, "each owns everything")
        chunks = scenario(tag, chunks=4, stories=24, views=1200, reactions=300)
        for number, chunk in enumerate(chunks):
            publish(broker, chunk, env={"STORYSTREAM_STORY_TTL": "1h"})
            if number == 2:
                time.sleep(0.3)
                transactional.kill()
                transactional.start()
            time.sleep(0.7)
        wait_for(transactional.partitions, 60, "the restarted transactional worker rejoined")
        stories = sum(e["type"] == "story_posted" for c in chunks for e in c)
        left, right = wait_equal(broker, (a_prefix, b_prefix), tag, COMPACTED, stories, 120)
        assert_same(left, right)
        counts = latest(broker, a_prefix + "story-view-counts")
        totals = {k: v["total_views"] for k, v in counts.items() if tag in k}
        assert totals == expected_total_views(chunks)
        log = transactional.data_dir.with_suffix(".log").read_text(errors="replace")
        assert "batches are Kafka transactions" in log  # the mode was on, in both runs
        assert transactional.proc is not None and transactional.proc.poll() is None
    finally:
        transactional.stop()
        plain.stop()


# -- the broker away for 30 s -----------------------------------------------------------------
@pytest.fixture
def proxied_broker(tmp_path: Path) -> Iterator[tuple[TcpProxy, EmbeddedBroker]]:
    """A dedicated broker that advertises a proxy in front of it: every client goes through
    the proxy once bootstrapped, so cutting the proxy cuts them all off."""
    broker_port = free_port()
    with TcpProxy(f"127.0.0.1:{broker_port}") as proxy:
        with EmbeddedBroker(
            port=broker_port, advertised=proxy.address, log_path=tmp_path / "broker.log"
        ) as broker:
            yield proxy, broker


def test_worker_and_publisher_ride_out_a_broker_outage(
    proxied_broker: tuple[TcpProxy, EmbeddedBroker], tmp_path: Path
) -> None:
    proxy, _ = proxied_broker
    broker = proxy.address
    tag = uuid.uuid4().hex[:6]
    create_topics(Settings(broker=broker, partitions=4, data_dir=tmp_path / "admin"))
    chunks = scenario(
        tag, chunks=3, authors=8, followers=60, stories=24, views=900, reactions=300, seed=5
    )
    worker = Worker(tmp_path / "live", _env(broker, f"live-{tag}"))
    reference: Worker | None = None
    try:
        wait_for(worker.partitions, 90, "worker assigned")
        publish(broker, chunks[0], env={"STORYSTREAM_STORY_TTL": "1h"})
        time.sleep(0.3)  # the worker has fetched the chunk: cut it off while it commits
        proxy.cut()
        second = tmp_path / "second.jsonl"
        second.write_text("".join(json.dumps(e) + "\n" for e in chunks[1]))
        publisher = subprocess.Popen(
            [sys.executable, "-m", "streams.cli", "publish", str(second)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={**worker.env, "STORYSTREAM_DATA_DIR": str(tmp_path / "publisher")},
        )
        time.sleep(30)
        assert worker.proc is not None and worker.proc.poll() is None, _log_tail(worker)
        assert publisher.poll() is None, "publish gave up while the broker was away"
        proxy.restore()
        out, err = publisher.communicate(timeout=120)
        assert publisher.returncode == 0, out.decode() + err.decode()
        assert b"published" in out

        publish(broker, chunks[2], env={"STORYSTREAM_STORY_TTL": "1h"})
        stories = sum(e["type"] == "story_posted" for c in chunks for e in c)
        # An undisturbed group over the whole log, from the beginning.
        reference = Worker(tmp_path / "reference", _env(broker, f"ref-{tag}", f"ref-{tag}-"))
        topics = ("story-state", "story-view-counts", "story-viewers", "story-trays")
        live, undisturbed = wait_equal(broker, ("", f"ref-{tag}-"), tag, topics, stories, 90)
        assert_same(live, undisturbed)
        counts = latest(broker, "story-view-counts")
        assert {k: v["total_views"] for k, v in counts.items()} == expected_total_views(chunks)
        assert worker.proc is not None and worker.proc.poll() is None, _log_tail(worker)
    finally:
        worker.stop()
        if reference is not None:
            reference.stop()
