"""The embedded schema registry with real clients: a worker and the command line configured
with `STORYSTREAM_SCHEMA_REGISTRY_URL` (the project's Confluent client path) publish and
process events on the embedded broker, and confluent-kafka's AvroDeserializer, pointed at the
registry, decodes every input and output topic; its AvroSerializer produces events a worker
applies."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext, StringSerializer

from infra.process import free_port
from infra.s3 import EmbeddedS3
from schemas.avro import SCHEMA_DIR, latest
from streams.settings import Settings
from streams.topics import BY_NAME, TOPICS
from tests.connectors.media_factory import make_image
from tests.integration import worker_fixture
from tests.integration.cli import run
from tests.integration.worker_fixture import WorkerProcess, launch_worker

pytestmark = pytest.mark.integration

embedded_s3 = worker_fixture.embedded_s3

TAG = uuid.uuid4().hex[:8]
AUTHOR, VIEWER, FRIEND = f"a-{TAG}", f"v-{TAG}", f"f-{TAG}"
S1, S2, S3 = f"s1-{TAG}", f"s2-{TAG}", f"s3-{TAG}"
MEDIA = f"m3-{TAG}"
BAD_KEY = f"bad-{TAG}"
GARBAGE = b"\x07not avro at all"
INPUTS = [spec.name for spec in TOPICS if spec.kind in ("input", "pipeline")]
OUTPUTS = [spec.name for spec in TOPICS if spec.kind in ("output", "dead-letters")]


@pytest.fixture(scope="module")
def env(schema_registry_url: str, embedded_s3: EmbeddedS3) -> dict[str, str]:
    """What the worker and every command get: the registry, an object store, an app of its own."""
    key_id, secret = embedded_s3.credentials
    return {
        "STORYSTREAM_SCHEMA_REGISTRY_URL": schema_registry_url,
        "STORYSTREAM_APP_ID": f"it-registry-{TAG}",
        "STORYSTREAM_S3_ENDPOINT_URL": embedded_s3.endpoint_url,
        "STORYSTREAM_S3_BUCKET": f"it-registry-{TAG}",
        "STORYSTREAM_S3_ACCESS_KEY_ID": key_id,
        "STORYSTREAM_S3_SECRET_ACCESS_KEY": secret,
    }


@pytest.fixture(scope="module")
def worker(
    settings: Settings, env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[WorkerProcess]:
    settings_env: dict[str, Any] = dict(env)
    started = launch_worker(settings, tmp_path_factory.mktemp("registry-worker"), **settings_env)
    yield started
    started.stop()


NOW = datetime.now(UTC).replace(microsecond=0)


def _at(seconds: float) -> str:
    return (NOW + timedelta(seconds=seconds)).isoformat().replace("+00:00", "Z")


def _publish(settings: Settings, env: dict[str, str], events: list[dict[str, Any]]) -> None:
    stdin = "".join(json.dumps(event) + "\n" for event in events).encode()
    result = run("publish", "-", broker=settings.bootstrap(), stdin=stdin, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "AuthlibDeprecationWarning" not in result.stderr  # the client's import stays quiet


def _read_all(
    broker: str, registry_url: str, topics: list[str], idle: float = 1.0
) -> dict[str, list[tuple[str, bytes | None, Any]]]:
    """Every record of `topics` as (key, raw value, value decoded by confluent-kafka's
    AvroDeserializer), read until nothing new came for `idle` seconds. Input records whose key
    is not this module's are not decoded: other tests put undecodable bytes there on purpose."""
    deserializer = AvroDeserializer(SchemaRegistryClient({"url": registry_url}))
    consumer = Consumer(
        {"bootstrap.servers": broker, "group.id": f"reg-{TAG}", "enable.auto.commit": False}
    )
    out: dict[str, list[tuple[str, bytes | None, Any]]] = {topic: [] for topic in topics}
    try:
        consumer.assign(
            [
                TopicPartition(topic, partition, OFFSET_BEGINNING)
                for topic in topics
                for partition in consumer.list_topics(topic, timeout=10).topics[topic].partitions
            ]
        )
        last = time.monotonic()
        while time.monotonic() - last < idle:
            for msg in consumer.consume(500, timeout=0.2):
                last = time.monotonic()
                assert msg.error() is None, msg.error()
                # other tests write null and non-UTF-8 keys to the inputs on purpose
                key, value = (msg.key() or b"").decode(errors="replace"), msg.value()
                decoded = None
                # Outputs are the workers' own (every record decodes); of the inputs, this
                # module's valid events.
                if msg.topic() in OUTPUTS:
                    wanted = value is not None
                else:
                    wanted = value is not None and TAG in key and key != BAD_KEY
                if wanted:
                    decoded = deserializer(
                        value, SerializationContext(msg.topic(), MessageField.VALUE)
                    )
                out[msg.topic()].append((key, value, decoded))
    finally:
        consumer.close()
    return out


def _latest(records: list[tuple[str, bytes | None, Any]]) -> dict[str, Any]:
    view: dict[str, Any] = {}
    for key, _, decoded in records:
        view[key] = decoded
    return {key: value for key, value in view.items() if value is not None}


def _wait(what: str, check: Callable[[], Any], missing: list[str] | None = None) -> Any:
    """`check()` once it is true; `missing` says what the last check lacked."""
    timeout = 90
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        assert time.monotonic() < deadline, f"timed out waiting for {what}: {missing}"
        time.sleep(0.5)


def test_confluent_deserializer_decodes_every_topic(
    settings: Settings,
    env: dict[str, str],
    worker: WorkerProcess,
    schema_registry_url: str,
    tmp_path: Path,
) -> None:
    rendition = {
        "name": "720",
        "url": "https://cdn.example/x.jpg",
        "width": 720,
        "height": 1280,
        "content_type": "image/jpeg",
    }
    _publish(
        settings,
        env,
        [
            {"type": "user_followed", "follower_id": VIEWER, "followee_id": AUTHOR, "at": _at(-9)},
            {"type": "close_friend_added", "user_id": AUTHOR, "friend_id": FRIEND, "at": _at(-9)},
            {
                "type": "story_posted",
                "story_id": S1,
                "author_id": AUTHOR,
                "created_at": _at(-8),
                "media": [rendition],
            },
            {"type": "story_posted", "story_id": S2, "author_id": AUTHOR, "created_at": _at(-8)},
            {"type": "story_deleted", "story_id": S2, "author_id": AUTHOR, "deleted_at": _at(-7)},
            {"type": "story_viewed", "story_id": S1, "viewer_id": VIEWER, "viewed_at": _at(-6)},
            {
                "type": "story_reacted",
                "story_id": S1,
                "user_id": VIEWER,
                "reaction": "love",
                "reacted_at": _at(-5),
            },
            {
                "type": "highlight_added",
                "story_id": S1,
                "author_id": AUTHOR,
                "highlight_id": f"h-{TAG}",
                "at": _at(-4),
            },
        ],
    )
    photo = make_image(tmp_path / "photo.jpg", 320, 240)
    posted = run(
        "post", "--author", AUTHOR, "--media", str(photo), "--story-id", S3, "--media-id", MEDIA,
        broker=settings.bootstrap(), env=env, timeout=60,
    )  # fmt: skip
    assert posted.returncode == 0, posted.stdout + posted.stderr
    producer = Producer({"bootstrap.servers": settings.bootstrap()})
    producer.produce("story-viewed", GARBAGE, BAD_KEY.encode())
    assert producer.flush(10) == 0

    missing: list[str] = []

    def outputs_complete() -> dict[str, list[tuple[str, bytes | None, Any]]] | None:
        topics = _read_all(settings.bootstrap(), schema_registry_url, [*INPUTS, *OUTPUTS])
        state = _latest(topics["story-state"])
        tray = _latest(topics["story-trays"]).get(VIEWER, {"entries": []})
        missing[:] = [
            what
            for what, done in [
                (f"{S3} active: {state.get(S3)}", state.get(S3, {}).get("status") == "active"),
                ("reaction counts", S1 in _latest(topics["story-reaction-counts"])),
                ("dead letter", BAD_KEY in _latest(topics["story-dead-letters"])),
                (f"tray {tray}", any(len(e["story_ids"]) == 2 for e in tray["entries"])),
            ]
            if not done
        ]
        return None if missing else topics

    topics = _wait("every output of the events", outputs_complete, missing)

    # Every record of every output topic decodes, and carries its record's fixed id.
    for name in OUTPUTS:
        schema_id = latest(BY_NAME[name].record).schema_id
        for key, raw, decoded in topics[name]:
            if raw is not None:
                assert raw[1:5] == schema_id.to_bytes(4, "big"), (name, key)
                assert isinstance(decoded, dict), (name, key)
    latest_of = {name: _latest(records) for name, records in topics.items()}

    inputs = {name: {k: v for k, v in latest_of[name].items() if TAG in k} for name in INPUTS}
    assert inputs["story-posted"][S1]["author_id"] == AUTHOR
    assert inputs["story-posted"][S3]["media_id"] == MEDIA
    assert inputs["story-viewed"][S1]["viewed_at"] == datetime.fromisoformat(_at(-6))
    assert inputs["story-reacted"][S1]["reaction"] == "love"
    assert inputs["story-highlights"][S1]["type"] == "highlight_added"
    assert inputs["story-deleted"][S2]["author_id"] == AUTHOR
    assert inputs["user-follows"][AUTHOR]["type"] == "close_friend_added"  # the list's owner
    assert inputs["media-uploaded"][MEDIA]["story_id"] == S3
    transcoded = inputs["media-transcoded"][MEDIA]
    assert transcoded["error"] is None and transcoded["renditions"]

    state = latest_of["story-state"]
    assert (
        state[S1]["author_id"] == AUTHOR and state[S1]["renditions"][0]["url"] == rendition["url"]
    )
    assert state[S1]["highlight_ids"] == [f"h-{TAG}"]
    assert S2 not in state  # deleted: its last record is a tombstone
    assert {r["name"] for r in state[S3]["renditions"]} == {
        r["name"] for r in transcoded["renditions"]
    }
    entry = next(e for e in latest_of["story-trays"][VIEWER]["entries"] if e["author_id"] == AUTHOR)
    assert sorted(entry["story_ids"]) == sorted([S1, S3])
    counts = latest_of["story-view-counts"][S1]
    assert (counts["unique_viewers"], counts["total_views"]) == (1, 1) and counts["sketch"]
    viewer = latest_of["story-viewers"][f"{S1}/{VIEWER}"]
    assert viewer["first_viewed_at"] == datetime.fromisoformat(_at(-6))
    assert latest_of["story-reaction-counts"][S1]["counts"] == {"love": 1}
    letter = latest_of["story-dead-letters"][BAD_KEY]
    assert (letter["source_topic"], letter["original_value"]) == ("story-viewed", GARBAGE)

    # The project's own consumer, through the registry, reads what the deserializer read.
    consumed = run(
        "consume", "story-view-counts", "--latest-per-key", "--until-idle", "1",
        broker=settings.bootstrap(), env=env,
    )  # fmt: skip
    assert consumed.returncode == 0, consumed.stderr
    mine = [json.loads(line) for line in consumed.stdout.splitlines() if S1 in line]
    assert [(r["key"], r["value"]["total_views"]) for r in mine] == [(S1, 1)]


@pytest.mark.parametrize("mode", ["use.latest.version", "lookup"])
def test_avro_serializer_produces_events_a_worker_applies(
    settings: Settings,
    env: dict[str, str],
    worker: WorkerProcess,
    schema_registry_url: str,
    mode: str,
) -> None:
    story = f"ser-{mode[:3]}-{TAG}"
    _publish(
        settings,
        env,
        [{"type": "story_posted", "story_id": story, "author_id": AUTHOR, "created_at": _at(-3)}],
    )
    client = SchemaRegistryClient({"url": schema_registry_url})
    serializer = AvroSerializer(
        client,
        (SCHEMA_DIR / "StoryViewed.avsc").read_text(),
        conf={"auto.register.schemas": False, "use.latest.version": mode == "use.latest.version"},
    )
    # Kafka's default partitioner (murmur2), as the README asks of input producers.
    producer = Producer(
        {"bootstrap.servers": settings.bootstrap(), "partitioner": "murmur2_random"}
    )
    keys = StringSerializer()
    for index in range(2):
        event = {
            "event_id": f"{story}-{index}",
            "type": "story_viewed",
            "story_id": story,
            "viewer_id": f"viewer{index}-{TAG}",
            "viewed_at": datetime.now(UTC),
        }
        context = SerializationContext("story-viewed", MessageField.VALUE)
        value = serializer(event, context)
        assert value is not None and value[1:5] == latest("StoryViewed").schema_id.to_bytes(
            4, "big"
        )
        producer.produce("story-viewed", value, keys(story))
    assert producer.flush(10) == 0

    def counted() -> Any:
        counts = _latest(
            _read_all(settings.bootstrap(), schema_registry_url, ["story-view-counts"])[
                "story-view-counts"
            ]
        )
        return counts.get(story, {}).get("total_views") == 2 and counts[story]

    counts = _wait("the serialized views counted", counted)
    assert counts["unique_viewers"] == 2


def test_dev_serves_the_registry_and_prints_its_url(tmp_path: Path) -> None:
    """`storystream dev` prints the registry beside the broker and records it for commands."""
    api_port = free_port()
    clean = {k: v for k, v in os.environ.items() if not k.startswith("STORYSTREAM_")}
    env = clean | {"STORYSTREAM_DATA_DIR": str(tmp_path), "STORYSTREAM_API_PORT": str(api_port)}
    dev = subprocess.Popen(
        [sys.executable, "-m", "streams.cli", "dev", "--broker-port", str(free_port())],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert dev.stdout is not None
        lines: list[str] = []
        deadline = time.monotonic() + 120
        while not (lines and lines[-1].startswith("ready")):
            assert time.monotonic() < deadline and dev.poll() is None, lines
            lines.append(dev.stdout.readline().strip())
        printed = [line.split(":")[0] for line in lines if line]
        assert printed[:2] == ["broker", "schema registry"]
        url = next(line for line in lines if line.startswith("schema registry:")).split()[2]
        assert json.loads((tmp_path / "dev.json").read_text())["schema_registry_url"] == url
        client = SchemaRegistryClient({"url": url})
        assert (
            client.get_latest_version("story-state-value").schema_id
            == latest("StoryState").schema_id
        )
        # Commands started beside dev find its broker and registry through dev.json.
        post = {"type": "story_posted", "story_id": "s", "author_id": "a", "created_at": _at(0)}
        cli = [sys.executable, "-m", "streams.cli"]
        published = subprocess.run(
            [*cli, "publish", "-"], input=json.dumps(post), text=True, capture_output=True, env=env
        )
        assert published.returncode == 0, published.stderr
        consumed = subprocess.run(
            [*cli, "consume", "story-posted", "--from-beginning", "--until-idle", "1"],
            text=True,
            capture_output=True,
            env=env,
        )
        assert consumed.returncode == 0, consumed.stderr
        assert json.loads(consumed.stdout)["value"]["story_id"] == "s"
    finally:
        dev.send_signal(signal.SIGINT)
        dev.wait(timeout=30)
    assert dev.returncode == 0
    with pytest.raises(OSError):
        urllib.request.urlopen(url + "/subjects", timeout=2)  # stopped with dev
