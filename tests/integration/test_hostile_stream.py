"""A stream mixing valid events with every class of hostile record, written straight to the input
topics of a running worker: every valid event is in the compacted outputs, every bad record has
exactly one dead letter with its reason, and the worker never exits."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Producer

from schemas.events import parse_event
from streams.codecs.avro import AvroCodec
from streams.codecs.binary import varint
from streams.codecs.registry import EmbeddedRegistry
from streams.kafka.partitioning import partition_for
from streams.settings import Settings
from tests.integration.workers import SECRET, Worker, latest, raw_history, wait_for

pytestmark = pytest.mark.integration

PARTITIONS = 4
REGISTRY = EmbeddedRegistry()
VIEWS = AvroCodec("StoryViewed", REGISTRY, "story-viewed-value")
POSTS = AvroCodec("StoryPosted", REGISTRY, "story-posted-value")
DEAD_LETTERS = AvroCodec("DeadLetter", REGISTRY, "story-dead-letters-value")


@dataclass
class Sent:
    """One record written to an input topic: what it is, and where it landed."""

    kind: str  # "valid" or the hostile class
    topic: str
    key: bytes | None
    value: bytes | None
    partition: int
    offset: int = -1


def _iso(at: datetime) -> str:
    return at.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _view(story: str, viewer: str, at: datetime, **fields: Any) -> bytes:
    """A view's record as written, unchecked (the hostile ones break the contract's rules)."""
    event = {"type": "story_viewed", "story_id": story, "viewer_id": viewer, "viewed_at": at}
    return VIEWS.encode({**event, "event_id": f"e-{viewer}"[:64], **fields})


def _swap(data: bytes, old: bytes, new: bytes) -> bytes:
    assert data.count(old) == 1, (data, old)
    return data.replace(old, new)


def hostile_stream(story: str, author: str, now: datetime) -> list[Sent]:
    """Valid views of `story` with one record of each hostile class between every two."""
    right = partition_for(story, PARTITIONS)
    key = story.encode()

    def on_views(kind: str, value: bytes | None, k: bytes | None = key, p: int = right) -> Sent:
        return Sent(kind, "story-viewed", k, value, p)

    ok = _view(story, "marker", now)
    renditions = [{"name": "720", "url": "https://cdn.example/a.jpg", "width": 4321,
                   "height": 1280, "content_type": "image/jpeg"}]  # fmt: skip
    post = POSTS.encode(
        parse_event(
            {
                "type": "story_posted",
                "story_id": f"{story}-wide",
                "author_id": author,
                "created_at": _iso(now),
                "media": renditions,
                "media_id": f"m-{story}",
                "media_type": "image",
            }
        )  # fmt: skip
    )
    other = "elsewhere-" + story
    hostile = [
        on_views("wrong schema id", b"\x00\x00\x01\x86\xa0" + ok[5:]),
        on_views("truncated Avro", ok[:-3]),
        on_views("trailing bytes", ok + b"\x00\x02"),
        on_views("not Avro", b"not avro at all"),
        on_views("no value", None),
        on_views(
            "bad UTF-8",
            _swap(_view(story, "zz9zz", now, event_id="e-utf8"), b"zz9zz", b"z\xff\xfez"),
        ),
        on_views(
            "time past year 9999", _swap(ok, varint(int(now.timestamp() * 1000)), varint(-(2**62)))
        ),  # fmt: skip
        on_views("huge value", _view(story, "x" * 1_000_000, now)),
        on_views("invalid id", _view(story, "not an id", now)),
        on_views("null key", ok, None),
        on_views("non-UTF-8 key", ok, b"\xff\xfe", partition_for(b"\xff\xfe", PARTITIONS)),
        on_views("wrong partition", ok, key, (right + 1) % PARTITIONS),
        on_views("key is not the story", ok, other.encode(), partition_for(other, PARTITIONS)),
        Sent("not Avro", "story-posted", key, b"\x00garbage", right),
        Sent(
            "int out of range",
            "story-posted",
            f"{story}-wide".encode(),
            _swap(post, varint(4321), varint(2**31)),
            partition_for(f"{story}-wide", PARTITIONS),
        ),  # fmt: skip
    ]
    stream: list[Sent] = []
    for i in range(len(hostile) * 3):
        stream.append(on_views("valid", _view(story, f"v{i}", now + timedelta(milliseconds=i))))
        if i % 3 == 0:
            stream.append(hostile[i // 3])
    return stream


def produce(broker: str, stream: list[Sent]) -> None:
    """Write each record to its partition, as given (no partitioner), and note its offset."""
    producer = Producer({"bootstrap.servers": broker, "message.max.bytes": 4_000_000,
                         "linger.ms": 0, "enable.idempotence": True})  # fmt: skip

    def landed(sent: Sent) -> Any:
        def report(err: Any, msg: Any) -> None:
            assert err is None, err
            sent.offset = msg.offset()

        return report

    for sent in stream:
        producer.produce(sent.topic, sent.value, sent.key, partition=sent.partition,
                         on_delivery=landed(sent))  # fmt: skip
        producer.flush(30)  # one at a time: each its own batch, so it fails alone if it fails
    assert all(sent.offset >= 0 for sent in stream)


def test_every_valid_record_counts_and_every_bad_one_has_one_dead_letter(
    settings: Settings, tmp_path: Path
) -> None:
    broker = settings.bootstrap()
    tag = uuid.uuid4().hex[:6]
    prefix = f"h-{tag}-"
    story, author = f"s-{tag}", f"a-{tag}"
    now = datetime.now(UTC).replace(microsecond=0)
    env = {"STORYSTREAM_BROKER": broker, "STORYSTREAM_APP_ID": f"hostile-{tag}",
           "STORYSTREAM_API_SECRET": SECRET, "STORYSTREAM_PARTITIONS": str(PARTITIONS),
           "STORYSTREAM_OUTPUT_PREFIX": prefix,
           "STORYSTREAM_S3_ENDPOINT_URL": "http://127.0.0.1:9"}  # fmt: skip
    assert settings.partitions == PARTITIONS
    worker = Worker(tmp_path / "worker", env)
    try:
        wait_for(lambda: len(worker.partitions() or []) == PARTITIONS, 90, "the worker assigned")
        posted = POSTS.encode(parse_event({"type": "story_posted", "story_id": story,
                                           "author_id": author, "created_at": _iso(now)}))  # fmt: skip
        stream = [Sent("valid", "story-posted", story.encode(), posted,
                       partition_for(story, PARTITIONS))]  # fmt: skip
        stream += hostile_stream(story, author, now)
        produce(broker, stream)
        bad = [sent for sent in stream if sent.kind != "valid"]
        valid_views = sum(s.kind == "valid" and s.topic == "story-viewed" for s in stream)

        def counted() -> Any:
            found = latest(broker, prefix + "story-view-counts", {story}).get(story)
            return found if found and found["total_views"] >= valid_views else None

        count = wait_for(counted, 90, f"{valid_views} views counted")
        assert (count["total_views"], count["unique_viewers"]) == (valid_views, valid_views)
        viewers = latest(broker, prefix + "story-viewers")
        assert sorted(k for k in viewers if k.startswith(story + "/")) == sorted(
            f"{story}/v{i}" for i in range(valid_views)
        )

        def letters() -> Any:
            found = [DEAD_LETTERS.decode_dict(value) for _, value, _ in
                     raw_history(broker, prefix + "story-dead-letters") if value]  # fmt: skip
            ours = [d for d in found if (d["source_topic"], d["partition"], d["offset"]) in sent]
            return ours if len(ours) >= len(bad) else None

        sent = {(s.topic, s.partition, s.offset): s for s in stream}
        where = {(s.topic, s.partition, s.offset): s for s in bad}
        found = wait_for(letters, 60, f"{len(bad)} dead letters")
        placed = [(d["source_topic"], d["partition"], d["offset"]) for d in found]
        assert sorted(placed) == sorted(where), "exactly one dead letter per bad record, none else"
        reasons = {
            where[p].kind + f" @{p[0]}": d["error"] for p, d in zip(placed, found, strict=True)
        }
        assert all(reasons.values()), reasons
        assert "partition" in reasons["wrong partition @story-viewed"]
        assert "elsewhere" in reasons["key is not the story @story-viewed"]
        huge = next(d for p, d in zip(placed, found, strict=True) if where[p].kind == "huge value")
        assert huge["original_value"] is None or len(huge["original_value"]) < 1_000_000
        assert worker.proc is not None and worker.proc.poll() is None, "the worker exited"
    finally:
        worker.stop()
