"""Replay on the real broker: it ends while producers keep publishing (its input's end is fixed
when it starts), and at equal event times it publishes what the live worker published."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from confluent_kafka import Producer

from streams.kafka.clients import producer_config
from streams.publish.publisher import Encoder, validate_line
from streams.settings import Settings
from tests.integration.cli import run
from tests.integration.workers import SECRET, Worker, publish, raw_latests, wait_for

pytestmark = pytest.mark.integration
OUTPUTS = ("story-state", "story-view-counts", "story-viewers", "story-reaction-counts")


@pytest.fixture(scope="module")
def worker(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Worker]:
    env = {
        "STORYSTREAM_BROKER": settings.bootstrap(),
        "STORYSTREAM_APP_ID": f"replay-{uuid.uuid4().hex[:6]}",
        "STORYSTREAM_API_SECRET": SECRET,
        "STORYSTREAM_PARTITIONS": str(settings.partitions),
        "STORYSTREAM_S3_ENDPOINT_URL": "http://127.0.0.1:9",
    }
    started = Worker(tmp_path_factory.mktemp("replay") / "worker", env)
    try:
        wait_for(started.partitions, 90, "worker healthy")
        yield started
    finally:
        started.stop()


def _iso(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


def _tie_events(tag: str, at: datetime) -> list[dict[str, object]]:
    """A story deleted in the millisecond a view and a reaction come; another, expired, then
    highlighted in the millisecond a view comes."""
    gone, kept, author = f"gone-{tag}", f"kept-{tag}", f"a-{tag}"
    return [
        {"type": "story_posted", "story_id": gone, "author_id": author,
         "created_at": _iso(at - timedelta(minutes=1))},
        {"type": "story_posted", "story_id": kept, "author_id": author,
         "created_at": _iso(at - timedelta(minutes=2)), "expires_at": _iso(at - timedelta(minutes=1))},
        {"type": "story_viewed", "story_id": gone, "viewer_id": f"v-{tag}", "viewed_at": _iso(at)},
        {"type": "story_reacted", "story_id": gone, "user_id": f"v-{tag}", "reaction": "wow",
         "reacted_at": _iso(at)},
        {"type": "story_deleted", "story_id": gone, "author_id": author, "deleted_at": _iso(at)},
        {"type": "story_viewed", "story_id": kept, "viewer_id": f"v-{tag}", "viewed_at": _iso(at)},
        {"type": "highlight_added", "story_id": kept, "author_id": author, "highlight_id": "h",
         "at": _iso(at)},
    ]  # fmt: skip


def _mine(
    tables: dict[str, dict[bytes, bytes]], tag: str, prefix: str = ""
) -> dict[str, dict[bytes, bytes]]:
    return {
        name: {k: v for k, v in tables[prefix + name].items() if tag.encode() in k}
        for name in OUTPUTS
    }


def test_replay_publishes_what_live_published_at_equal_times(
    settings: Settings, worker: Worker
) -> None:
    broker = settings.bootstrap()
    tag = uuid.uuid4().hex[:6]
    started = datetime.now(UTC).replace(microsecond=0)
    publish(broker, _tie_events(tag, started + timedelta(seconds=1)))

    def live() -> dict[str, dict[bytes, bytes]] | None:
        found = _mine(raw_latests(broker, OUTPUTS), tag)
        return found if found["story-view-counts"] else None

    wait_for(live, 60, "the live worker's outputs")
    time.sleep(2)  # anything else the batch made
    expected = _mine(raw_latests(broker, OUTPUTS), tag)
    prefix = f"ties-{tag}-"
    result = run(
        "replay", "--output-prefix", prefix, "--from", _iso(started - timedelta(minutes=5)),
        broker=broker, env={"STORYSTREAM_PARTITIONS": str(settings.partitions)},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    replayed = _mine(raw_latests(broker, [prefix + name for name in OUTPUTS]), tag, prefix)
    assert replayed == expected
    assert list(replayed["story-view-counts"]) == [f"kept-{tag}".encode()]  # the highlighted one
    assert not replayed["story-reaction-counts"]  # the deleted story's reaction was not applied


def test_replay_ends_while_producers_keep_publishing(settings: Settings) -> None:
    broker = settings.bootstrap()
    tag = uuid.uuid4().hex[:6]
    at = datetime.now(UTC).replace(microsecond=0)
    publish(
        broker,
        [{"type": "story_posted", "story_id": f"s-{tag}", "author_id": f"a-{tag}",
          "created_at": _iso(at)}]
        + [{"type": "story_viewed", "story_id": f"s-{tag}", "viewer_id": f"v{i}-{tag}",
            "viewed_at": _iso(at)} for i in range(50)],
    )  # fmt: skip
    stop = threading.Event()

    def keep_publishing() -> None:  # a record every 0.2 s, outside the range replayed
        producer = Producer(producer_config(broker, **{"linger.ms": 0}))
        encoder = Encoder(None)
        n = 0
        while not stop.is_set():
            line = (
                f'{{"type":"story_viewed","story_id":"busy-{tag}","viewer_id":"u{n}",'
                f'"viewed_at":"{_iso(datetime.now(UTC) + timedelta(days=1))}"}}'
            ).encode()
            topic, key, value, timestamp = encoder.encode(validate_line(line, 1))  # type: ignore[arg-type]
            producer.produce(topic, value, key, timestamp=timestamp)
            producer.poll(0)
            n += 1
            stop.wait(0.2)
        producer.flush(10)

    thread = threading.Thread(target=keep_publishing, daemon=True)
    thread.start()
    try:
        time.sleep(1)
        begun = time.monotonic()
        prefix = f"busy-{tag}-"
        result = run(
            "replay", "--output-prefix", prefix, "--from", _iso(at), "--to",
            _iso(at + timedelta(hours=1)), broker=broker,
            env={"STORYSTREAM_PARTITIONS": str(settings.partitions)}, timeout=120,
        )  # fmt: skip
        took = time.monotonic() - begun
    finally:
        stop.set()
        thread.join(10)
    assert result.returncode == 0, result.stderr
    assert took < 90
    counts = raw_latests(broker, [prefix + "story-view-counts"])[prefix + "story-view-counts"]
    assert f"s-{tag}".encode() in counts
    assert "replaying:" in result.stderr and "publishing:" in result.stderr  # progress, no tty
